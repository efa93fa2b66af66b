#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the manager's tests on a loopback
# port and writes its DSN to /tmp/mamori-pg/dsn, where manager/pgtest looks
# for it. Tests that find no server start their own cluster, so this hook is
# a speed-up (one cluster for all packages), not a requirement.
set -euo pipefail
dir=/tmp/mamori-pg
port=55432
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$bin" ]; then echo "postgres.sh: no PostgreSQL binaries; tests will skip or fail"; exit 0; fi
dsn="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
if [ -f "$dir/data/postmaster.pid" ] && runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
	echo "$dsn" > "$dir/dsn"; exit 0
fi
rm -rf "$dir"; mkdir -p "$dir"; chown postgres: "$dir"
runuser -u postgres -- "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
	-o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off -c max_connections=300" start >/dev/null
echo "$dsn" > "$dir/dsn"
echo "postgres.sh: PostgreSQL on 127.0.0.1:$port"
