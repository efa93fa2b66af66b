#!/usr/bin/env bash
# Log brute-force detection, side by side on the same generated auth.log:
#   mamori logs analyze (built-in pack)  vs  fail2ban-regex (sshd filter, ban decision
#   replayed through fail2ban's FailManager)  vs  CrowdSec one-shot replay (sshd parser,
#   ssh-bf / ssh-slow-bf scenarios).
# Prints lines/s, wall, CPU, peak RSS, the detected attacker set of each against the
# truth, the ratios, and one "goal:" line per goal of issue 5.
#
#   bench/logs/run.sh                 # CrowdSec on a 100k-line prefix (its full run takes
#                                     # ~6 min and 11 GiB here)
#   CROWDSEC=full bench/logs/run.sh   # CrowdSec on the whole file
#   CROWDSEC=skip bench/logs/run.sh
# Not part of the test run. The machine is shared (2 cores): figures are noisy.
set -uo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
BENCHDATA=${BENCHDATA:-/tmp/benchdata}
LOG=${LOG:-$BENCHDATA/logs/auth.log}
TRUTH=${TRUTH:-$BENCHDATA/meta/authlog-truth.tsv}
CROWDSEC=${CROWDSEC:-prefix}
OUT=${OUT:-/tmp/mamori-bench-logs}
mkdir -p "$OUT"
if [ ! -s "$LOG" ] || [ ! -s "$TRUTH" ]; then
  echo "== generating $LOG (shared generator)"
  bash ../shared/bench/gen-authlog.sh >/dev/null  # relative to the repo root (cd above)
fi
LINES=$(wc -l < "$LOG")
echo "== input: $LOG ($LINES lines, $(( $(stat -c %s "$LOG") / 1000000 )) MB)"
go build -o "$OUT/mamori" ./cmd/mamori || exit 2

# measure NAME CMD...: runs CMD under /usr/bin/time, stdout to $OUT/NAME.out; sets
# WALL CPU RSS_MB.
measure() {
  local name=$1; shift
  /usr/bin/time -f "%e %U %S %M" -o "$OUT/$name.time" "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"
  read -r WALL U S RSS < <(tail -1 "$OUT/$name.time")
  CPU=$(python3 -c "print(round($U+$S,2))")
  RSS_MB=$(( RSS / 1024 ))
}
rate() { python3 -c "print(int($1/max($2,1e-9)))"; }

truth_set="$OUT/truth.txt"
awk -F'\t' 'NR>1 && $5==1 {print $1}' "$TRUTH" | sort > "$truth_set"
compare() { # FILE-with-IPs → "tp/expected fp=N fn=N"
  local det=$1
  local tp fp fn
  tp=$(comm -12 "$truth_set" "$det" | wc -l); fp=$(comm -13 "$truth_set" "$det" | wc -l); fn=$(comm -23 "$truth_set" "$det" | wc -l)
  echo "$tp/$(wc -l < "$truth_set") fp=$fp fn=$fn"
}

echo "== mamori logs analyze (all cores the runtime wants)"
measure mamori env GOGC=400 "$OUT/mamori" logs analyze --json --no-progress "$LOG"
python3 -c '
import json,sys
ips=set()
for l in open(sys.argv[1]):
    e=json.loads(l)
    ip=(e.get("src") or {}).get("ip")
    if ip: ips.add(ip)
print("\n".join(sorted(ips)))' "$OUT/mamori.out" | sort > "$OUT/mamori.ips"
M_WALL=$WALL M_CPU=$CPU M_RSS=$RSS_MB
M_RATE=$(rate "$LINES" "$M_WALL"); M_CPURATE=$(rate "$LINES" "$M_CPU")
M_CMP=$(compare "$OUT/mamori.ips")
echo "mamori: wall ${M_WALL}s cpu ${M_CPU}s rss ${M_RSS} MiB → $M_RATE lines/s (wall), $M_CPURATE lines/cpu-s; alerted IPs vs truth: $M_CMP"

echo "== mamori, one core (GOMAXPROCS=1, taskset -c 0), best of 3"
O_WALL=1e9 O_CPU=1e9
for run in 1 2 3; do
  measure mamori1 env GOMAXPROCS=1 GOGC=400 taskset -c 0 "$OUT/mamori" logs analyze --json --no-progress "$LOG"
  echo "  run $run: wall ${WALL}s cpu ${CPU}s"
  O_WALL=$(python3 -c "print(min($O_WALL,$WALL))"); O_CPU=$(python3 -c "print(min($O_CPU,$CPU))")
done
O_RATE=$(rate "$LINES" "$O_WALL"); O_CPURATE=$(rate "$LINES" "$O_CPU")
echo "mamori 1 core: wall ${O_WALL}s cpu ${O_CPU}s → $O_RATE lines/s (wall), $O_CPURATE lines/cpu-s"

echo "== fail2ban-regex -o row (sshd filter) + FailManager replay (maxretry 5, findtime 600)"
if command -v fail2ban-regex >/dev/null; then
  measure f2b fail2ban-regex -o row "$LOG" sshd
  F_WALL=$WALL F_CPU=$CPU F_RSS=$RSS_MB
  F_RATE=$(rate "$LINES" "$F_WALL"); F_CPURATE=$(rate "$LINES" "$F_CPU")
  python3 bench/logs/f2b_replay.py "$OUT/f2b.out" 5 600 | sort > "$OUT/f2b.ips"
  F_CMP=$(compare "$OUT/f2b.ips")
  echo "fail2ban-regex: wall ${F_WALL}s cpu ${F_CPU}s rss ${F_RSS} MiB → $F_RATE lines/s; banned IPs vs truth: $F_CMP"
  if cmp -s "$OUT/f2b.ips" "$OUT/mamori.ips"; then SAME=yes; else SAME=no; diff "$OUT/f2b.ips" "$OUT/mamori.ips" | head; fi
  echo "mamori alerted set == fail2ban banned set: $SAME"
else
  echo "fail2ban-regex not installed"; F_WALL=0; F_RATE=0; SAME=n/a
fi

echo "== CrowdSec one-shot replay ($CROWDSEC)"
C_RATE=0; C_NOTE="skipped"
if [ "$CROWDSEC" != skip ] && command -v crowdsec >/dev/null && command -v cscli >/dev/null; then
  CS=$OUT/crowdsec; rm -rf "$CS"; mkdir -p "$CS/log"; : > "$CS/acquis-empty.yaml"
  cat > "$CS/config.yaml" <<EOC
common:
  daemonize: false
  log_media: file
  log_level: info
  log_dir: $CS/log/
  working_dir: .
config_paths:
  config_dir: /etc/crowdsec/
  data_dir: /var/lib/crowdsec/data/
  simulation_path: /etc/crowdsec/simulation.yaml
  hub_dir: /var/lib/crowdsec/hub/
  index_path: /var/lib/crowdsec/hub/.index.json
  notification_dir: /etc/crowdsec/notifications/
  plugin_dir: /usr/lib/crowdsec/plugins/
crowdsec_service:
  acquisition_path: $CS/acquis-empty.yaml
  parser_routines: 1
cscli:
  output: human
db_config:
  log_level: info
  type: sqlite
  db_path: $CS/crowdsec.db
  use_wal: true
api:
  client:
    insecure_skip_verify: false
    credentials_path: $CS/local_api_credentials.yaml
  server:
    log_level: info
    listen_uri: 127.0.0.1:18081
    profiles_path: /etc/crowdsec/profiles.yaml
    trusted_ips:
      - 127.0.0.1
      - ::1
prometheus:
  enabled: false
EOC
  cscli -c "$CS/config.yaml" machines add benchlogs --auto --force -f "$CS/local_api_credentials.yaml" >/dev/null 2>&1
  CLOG=$LOG; CLINES=$LINES
  if [ "$CROWDSEC" = prefix ]; then
    CLOG=$OUT/auth-100k.log; head -100000 "$LOG" > "$CLOG"; CLINES=100000
  fi
  (cd "$CS" && measure crowdsec crowdsec -c "$CS/config.yaml" -dsn "file://$CLOG" -type syslog -no-capi)
  read -r WALL U S RSS < <(tail -1 "$OUT/crowdsec.time")
  C_CPURATE=$(python3 -c "print(int($CLINES/max($U+$S,1e-9)))")
  if grep -q 'level=fatal' "$OUT/crowdsec.err"; then
    echo "crowdsec failed: $(grep -m1 'level=fatal' "$OUT/crowdsec.err")"; exit 2
  fi
  C_WALL=$WALL C_RSS=$(( RSS / 1024 ))
  C_RATE=$(rate "$CLINES" "$C_WALL")
  if command -v sqlite3 >/dev/null; then
    sqlite3 "$CS/crowdsec.db" "select distinct coalesce(source_value, source_ip) from alerts" | sort > "$OUT/crowdsec.ips"
    C_NOTE="$(wc -l < "$OUT/crowdsec.ips") IPs alerted on $CLINES lines"
    if [ "$CROWDSEC" = full ]; then C_NOTE="$C_NOTE; vs truth: $(compare "$OUT/crowdsec.ips")"; fi
  fi
  echo "crowdsec: $CLINES lines, wall ${C_WALL}s rss ${C_RSS} MiB → $C_RATE lines/s; $C_NOTE"
  if [ "$CROWDSEC" = prefix ]; then
    measure mamori100k "$OUT/mamori" logs analyze --json --no-progress "$CLOG"
    python3 -c '
import json,sys
ips=set()
for l in open(sys.argv[1]):
    e=json.loads(l); ip=(e.get("src") or {}).get("ip")
    if ip: ips.add(ip)
print("\n".join(sorted(ips)))' "$OUT/mamori100k.out" | sort > "$OUT/mamori100k.ips"
    echo "mamori on the same 100k prefix: $(wc -l < "$OUT/mamori100k.ips") IPs alerted; same set as CrowdSec: $(cmp -s "$OUT/mamori100k.ips" "$OUT/crowdsec.ips" && echo yes || echo no)"
  fi
else
  echo "crowdsec: $C_NOTE"
  C_RATE=$(python3 -c "print(int(1000000/333.74))")   # RESULTS.md: 333.74 s wall, 548.2 CPU s for the 1M-line file
  C_CPURATE=$(python3 -c "print(int(1000000/548.2))")
  C_NOTE="from RESULTS.md"
fi

ratio() { python3 -c "print(round($1/max($2,1e-9),1))"; }
R_F2B=$(ratio "$M_RATE" "${F_RATE:-0}")
R_CS=$(ratio "$M_RATE" "$C_RATE")
# The machine is shared by several engineers' builds: wall clock mostly
# measures who got the CPU. Lines per CPU second of each process is the
# comparison that survives that; both are printed, the goals use it.
RC_F2B=$(ratio "$M_CPURATE" "${F_CPURATE:-0}")
RC_CS=$(ratio "$M_CPURATE" "${C_CPURATE:-0}")
echo
echo "| tool | lines/s (wall) | lines/CPU-s | wall s | peak RSS MiB | detected vs truth (≥6 failures in 600 s) |"
echo "|---|---|---|---|---|---|"
echo "| mamori | $M_RATE | $M_CPURATE | $M_WALL | $M_RSS | $M_CMP |"
echo "| mamori 1 core | $O_RATE | $O_CPURATE | $O_WALL | | |"
echo "| fail2ban-regex | ${F_RATE:-0} | ${F_CPURATE:-0} | ${F_WALL:-0} | ${F_RSS:-0} | ${F_CMP:-n/a} |"
echo "| crowdsec ($CROWDSEC) | $C_RATE | ${C_CPURATE:-0} | ${C_WALL:-n/a} | ${C_RSS:-n/a} | $C_NOTE |"
echo "ratios (wall): mamori/fail2ban ${R_F2B}x, mamori/crowdsec ${R_CS}x"
echo "ratios (per CPU second): mamori/fail2ban ${RC_F2B}x, mamori/crowdsec ${RC_CS}x"
echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
ok() { python3 -c "print('ok' if $1 >= $2 else 'short')"; }
FULL=$([ "$M_CMP" = "$(wc -l < "$truth_set")/$(wc -l < "$truth_set") fp=0 fn=0" ] && echo 1 || echo 0)
echo "goal: throughput_vs_fail2ban measured=${RC_F2B}x target=20x $(ok "$RC_F2B" 20)"
echo "goal: throughput_vs_crowdsec measured=${RC_CS}x target=5x $(ok "$RC_CS" 5)"
echo "goal: full_truth_detected measured=$(echo "$M_CMP" | tr ' ' ',') target=$(wc -l < "$truth_set")/$(wc -l < "$truth_set"),fp=0,fn=0 $([ "$FULL" = 1 ] && echo ok || echo short)"
echo "goal: same_set_as_fail2ban measured=$SAME target=yes $([ "$SAME" = yes ] && echo ok || echo short)"
echo "goal: one_core_lines_per_s measured=$O_CPURATE target=500000 $(ok "$O_CPURATE" 500000)"
