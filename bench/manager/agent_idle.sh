#!/usr/bin/env bash
# Measures an idle `mamori agent run`: a manager and one agent in a
# throwaway network namespace (so a firewall module changes nothing on this
# host), the default policy switched to every module enabled, the agent's
# file-scanning modules rooted in an empty directory, then RSS (peak VmRSS)
# and CPU (utime+stime over wall time) sampled for SECONDS after a settling
# period. Prints one line: "agent_idle rss_mb=… cpu_percent=… modules=…" or
# "agent_idle error=…". Called by run.sh; needs root (unshare -n).
#
#   bench/manager/agent_idle.sh MAMORI_BINARY WORK_DIR SECONDS
set -uo pipefail
MAMORI=$1 W=$2 SECS=${3:-30}
if [ "${IN_NS:-}" != 1 ]; then
	command -v unshare >/dev/null || { echo "agent_idle error=no-unshare"; exit 0; }
	IN_NS=1 exec unshare -n -- "$0" "$@"
fi
ip link set lo up 2>/dev/null || { echo "agent_idle error=cannot-bring-up-loopback-in-namespace"; exit 0; }
M=$W/idle-manager A=$W/idle-agent R=$W/idle-root
mkdir -p "$M" "$A" "$R/etc" "$R/var/log"
# The agent reads its machine identity under --root: give it this host's,
# or the manager takes the agent for a cloned image.
cp /etc/machine-id "$R/etc/machine-id" 2>/dev/null || true
URL=https://127.0.0.1:18443
"$MAMORI" manager run --data-dir "$M" --listen 127.0.0.1:18443 >"$M.log" 2>&1 &
MP=$!
AP=""
trap 'kill $AP $MP 2>/dev/null; wait 2>/dev/null' EXIT
for _ in $(seq 1 100); do
	curl -sf --cacert "$M/ca.crt" "$URL/healthz" >/dev/null 2>&1 && break
	sleep 0.2
done
KEY=$("$MAMORI" manager apikey create --data-dir "$M" 2>/dev/null | tail -1)
[ -n "$KEY" ] || { echo "agent_idle error=apikey"; exit 0; }
api() { curl -sf --cacert "$M/ca.crt" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' "$@"; }
# Every module the agent knows, enabled in the default policy.
MODS=$("$MAMORI" agent run --help >/dev/null 2>&1; printf '%s' "${IDLE_MODULES:-antimalware integrity loginspect firewall ips dnsfilter}")
# The firewall needs a policy: give it the watch-only one `mamori up` uses.
FW_SETTINGS='"settings":{"policy":{"defaults":{"in":"allow","out":"allow"},"recon":{"ports":20,"window":"60s"},"rules":[]}}'
body=$(for m in $MODS; do
	if [ "$m" = firewall ]; then printf '"%s":{"enabled":true,%s},' "$m" "$FW_SETTINGS"; else printf '"%s":{"enabled":true},' "$m"; fi
done)
PID_DEFAULT=$(api "$URL/api/v1/policies" | jq -r '(.items // .)[] | select(.name=="default") | .id' | head -1)
if [ -n "$PID_DEFAULT" ]; then
	api -X PUT -d "{\"name\":\"default\",\"modules\":{${body%,}}}" "$URL/api/v1/policies/$PID_DEFAULT" >/dev/null ||
		echo "agent_idle note=could-not-enable-all-modules" >&2
fi
TOK=$("$MAMORI" manager token create --data-dir "$M" 2>/dev/null | tail -1)
"$MAMORI" agent enroll --manager "$URL" --token "$TOK" --ca-cert "$M/ca.crt" --data-dir "$A" >"$A.enroll.log" 2>&1 ||
	{ echo "agent_idle error=enroll:$(tail -1 "$A.enroll.log" | tr ' ' _)"; exit 0; }
"$MAMORI" agent run --data-dir "$A" --root "$R" >"$A.log" 2>&1 &
AP=$!
sleep 15 # start-up (policy, rule packs, first scans) is not idle
kill -0 "$AP" 2>/dev/null || { echo "agent_idle error=agent-exited:$(tail -1 "$A.log" | tr ' ' _)"; exit 0; }
c0=$(awk '{print $14+$15}' "/proc/$AP/stat"); t0=$(date +%s.%N); rss=0
for _ in $(seq 1 "$SECS"); do
	r=$(awk '/VmRSS/{print $2}' "/proc/$AP/status" 2>/dev/null); r=${r:-0}
	[ "$r" -gt "$rss" ] && rss=$r
	sleep 1
done
c1=$(awk '{print $14+$15}' "/proc/$AP/stat"); t1=$(date +%s.%N)
states=$("$MAMORI" agent status --data-dir "$A" --json 2>/dev/null | jq -r '[.modules[]? | "\(.name):\(.state)"] | join(",")' 2>/dev/null)
awk -v k="$rss" -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" -v m="${states:-unknown}" \
	'BEGIN{printf "agent_idle rss_mb=%.1f cpu_percent=%.2f modules=%s\n", k/1024, 100*(b-a)/100/(e-s), m}'
