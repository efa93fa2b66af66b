#!/usr/bin/env bash
# Benchmarks mamori's host firewall against `nft -f` on the same rulesets,
# in throwaway network namespaces (root needed; nothing touches the host's
# own ruleset):
#   1. apply a 10,000-rule policy: `mamori firewall apply` vs `nft -f` of
#      the equivalent ruleset (mamori's own --dry-run output), same listing
#   2. re-apply of the unchanged policy (CLI wall time, and in-process)
#   3. load 100,000 addresses into the block set: `mamori firewall block
#      --file` vs `nft -f` of the same elements, same element count
#   4. iperf3 throughput and ping latency between two namespaces with and
#      without the 10,000-rule policy on the receiver
# Not part of the default test run. Figures are noisy on a shared machine.
#
#   bench/firewall/run.sh            # RUNS=5 by default
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
RUNS=${RUNS:-5}
[ "$(id -u)" = 0 ] || { echo "bench/firewall: needs root (network namespaces, nftables)"; exit 2; }
for t in nft ip iperf3 ping python3; do command -v $t >/dev/null || { echo "bench/firewall: $t missing (apt-get install nftables iproute2 iperf3 iputils-ping)"; exit 2; }; done

DATA=/tmp/benchdata/firewall
mkdir -p "$DATA"
W=$(mktemp -d)
# Namespaces are found by their prefix at exit: newns runs in $(...), a
# subshell, so a list it appended to would be lost (and was: the kept
# namespaces leaked).
cleanup() {
	[ -n "${IPERF_PID:-}" ] && kill "$IPERF_PID" 2>/dev/null
	for n in $(ip netns list | awk -v p="mfwb$$_" 'index($1, p) == 1 {print $1}'); do ip netns del "$n" 2>/dev/null || true; done
	rm -rf "$W"
}
trap cleanup EXIT
newns() { local n="mfwb$$_$1"; ip netns add "$n"; ip -n "$n" link set lo up; echo "$n"; }
now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
norm() { sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/; s/expires [0-9hms]+//'; }

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average: $LOAD0 (figures are only comparable on an idle machine)"
echo "== building mamori"
go build -o "$W/mamori" ./cmd/mamori
M="$W/mamori"
[ -s "$DATA/policy-10k.json" ] && [ -s "$DATA/block-100k.txt" ] || python3 bench/firewall/gen.py "$DATA" 10000
"$M" firewall apply --dry-run "$DATA/policy-10k.yaml" > "$DATA/policy-10k.nft"
echo "inputs: $(grep -c 'action:' "$DATA/policy-10k.yaml") policy rules -> $(grep -c comment "$DATA/policy-10k.nft") kernel rules; $(wc -l < "$DATA/block-100k.txt") block addresses"

echo "== 1. apply the 10,000-rule policy (median of $RUNS, fresh namespace each)"
# Wall time is the goal; CPU time (user+sys, children included) is printed
# too, being far less sensitive to other load on a shared machine.
TIME=(); [ -x /usr/bin/time ] && TIME=(/usr/bin/time -f "%U %S" -a -o)
cpu() { local f=$1; shift; if [ ${#TIME[@]} -gt 0 ]; then "${TIME[@]}" "$f" "$@"; else "$@"; fi; }
cpums() { [ -s "$1" ] && awk '{print int(($1+$2)*1000)}' "$1" | median || echo "?"; }
ta=(); tn=(); tj=()
for i in $(seq "$RUNS"); do
	a=$(newns a$i); b=$(newns b$i); j=$(newns j$i)
	t0=$(now); cpu "$W/cpu-a" "$M" firewall --netns "$a" --state-dir "$W/s$i" apply "$DATA/policy-10k.yaml" >/dev/null; t1=$(now)
	ta+=("$(ms "$t0" "$t1")")
	t0=$(now); "$M" firewall --netns "$j" --state-dir "$W/j$i" apply "$DATA/policy-10k.json" >/dev/null; t1=$(now)
	tj+=("$(ms "$t0" "$t1")"); ip netns del "$j"
	t0=$(now); cpu "$W/cpu-n" ip netns exec "$b" nft -f "$DATA/policy-10k.nft"; t1=$(now)
	tn+=("$(ms "$t0" "$t1")")
	if [ "$i" = 1 ]; then
		ip netns exec "$a" nft list table inet mamori | norm > "$W/la"
		ip netns exec "$b" nft list table inet mamori | norm > "$W/lb"
		if cmp -s "$W/la" "$W/lb"; then same=yes; else same=NO; diff "$W/la" "$W/lb" | head -5; fi
		KEEP_A=$a; KEEP_B=$b; KEEP_S="$W/s$i"
	else
		ip netns del "$a"; ip netns del "$b"
	fi
done
A=$(printf '%s\n' "${ta[@]}" | median); N=$(printf '%s\n' "${tn[@]}" | median)
RATIO=$(awk -v a="$A" -v n="$N" 'BEGIN{printf "%.2f", a/n}')
J=$(printf '%s\n' "${tj[@]}" | median)
echo "mamori apply: ${A} ms   nft -f: ${N} ms   ratio: ${RATIO}x   (runs: mamori ${ta[*]} / nft ${tn[*]})"
echo "mamori apply of the same policy as JSON (the manager's form): ${J} ms, ratio $(awk -v a="$J" -v n="$N" 'BEGIN{printf "%.2f", a/n}')x (runs: ${tj[*]})"
CA=$(cpums "$W/cpu-a"); CN=$(cpums "$W/cpu-n")
echo "cpu (user+sys) median: mamori ${CA} ms, nft -f ${CN} ms, ratio $(awk -v a="$CA" -v n="$CN" 'BEGIN{ if (n > 0) printf "%.2f", a/n; else print "?"}')x   (load average at start: $LOAD0)"
echo "correctness: nft list of both namespaces identical: $same"

echo "== 2. re-apply of the unchanged policy"
tr=()
for i in $(seq "$RUNS"); do
	t0=$(now); out=$("$M" firewall --netns "$KEEP_A" --state-dir "$KEEP_S" apply "$DATA/policy-10k.yaml"); t1=$(now)
	tr+=("$(ms "$t0" "$t1")")
done
R=$(printf '%s\n' "${tr[@]}" | median)
tv=()
for i in $(seq "$RUNS"); do t0=$(now); "$M" --version >/dev/null; t1=$(now); tv+=("$(ms "$t0" "$t1")"); done
V=$(printf '%s\n' "${tv[@]}" | median)
echo "mamori firewall apply (unchanged, CLI wall): ${R} ms  [$out]  (process start alone, mamori --version: ${V} ms)"
MAMORI_FW_BENCH_POLICY="$DATA/policy-10k.yaml" go test -run XXX -bench 'BenchmarkReapplyUnchanged' -benchtime 5x ./firewall/nft/ 2>/dev/null | awk '/^Benchmark/{printf "in-process %s: %.2f ms/op\n", $1, $3/1e6}'

echo "== 3. 100,000 addresses into the block set"
tb=(); tnb=()
for i in $(seq "$RUNS"); do
	a=$(newns ba$i); b=$(newns bb$i)
	"$M" firewall --netns "$a" --state-dir "$W/b$i" apply "$DATA/policy-10k.yaml" >/dev/null
	ip netns exec "$b" nft -f "$DATA/policy-10k.nft"
	t0=$(now); "$M" firewall --netns "$a" block --ttl 1h --file "$DATA/block-100k.txt" >/dev/null; t1=$(now)
	tb+=("$(ms "$t0" "$t1")")
	t0=$(now); ip netns exec "$b" nft -f "$DATA/block-100k.nft"; t1=$(now)
	tnb+=("$(ms "$t0" "$t1")")
	if [ "$i" = 1 ]; then
		ca=$("$M" firewall --netns "$a" blocked | tail -n +2 | wc -l)
		cb=$("$M" firewall --netns "$b" blocked | tail -n +2 | wc -l)
	fi
	ip netns del "$a"; ip netns del "$b"
done
B=$(printf '%s\n' "${tb[@]}" | median); NB=$(printf '%s\n' "${tnb[@]}" | median)
RATE=$(awk -v b="$B" 'BEGIN{printf "%d", 100000/(b/1000)}')
NRATE=$(awk -v b="$NB" 'BEGIN{printf "%d", 100000/(b/1000)}')
echo "mamori block --file: ${B} ms (${RATE} addr/s)   nft -f: ${NB} ms (${NRATE} addr/s)   ratio: $(awk -v a="$B" -v n="$NB" 'BEGIN{printf "%.2f", a/n}')x"
echo "correctness: entries listed: mamori-loaded ${ca}, nft-loaded ${cb} (want 100000 each)"

echo "== 4. allowed traffic between two namespaces, without and with the policy"
s=$(newns srv); c=$(newns cli)
ip link add "vs$$" netns "$s" type veth peer name "vc$$" netns "$c"
ip -n "$s" addr add 10.77.0.1/24 dev "vs$$"; ip -n "$c" addr add 10.77.0.2/24 dev "vc$$"
ip -n "$s" link set "vs$$" up; ip -n "$c" link set "vc$$" up
ip netns exec "$s" iperf3 -s -D --pidfile "$W/iperf.pid" >/dev/null 2>&1; sleep 0.5; IPERF_PID=$(cat "$W/iperf.pid")
measure() {
	local bps rtt
	bps=$(ip netns exec "$c" iperf3 -c 10.77.0.1 -t 5 -J | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]))')
	rtt=$(ip netns exec "$c" ping -q -c 200 -i 0.005 10.77.0.1 | awk -F/ '/rtt|round-trip/{print $5}')
	echo "$bps $rtt"
}
read -r bps0 rtt0 < <(measure)
"$M" firewall --netns "$s" --state-dir "$W/srv" apply "$DATA/policy-10k.yaml" >/dev/null
read -r bps1 rtt1 < <(measure)
LOSS=$(awk -v a="$bps0" -v b="$bps1" 'BEGIN{printf "%.1f", (a-b)*100/a}')
ADD=$(awk -v a="$rtt0" -v b="$rtt1" 'BEGIN{printf "%.3f", b-a}')
echo "iperf3: $(awk -v b="$bps0" 'BEGIN{printf "%.2f", b/1e9}') Gbit/s without, $(awk -v b="$bps1" 'BEGIN{printf "%.2f", b/1e9}') Gbit/s with the 10k-rule policy: ${LOSS}% loss"
echo "ping rtt avg: ${rtt0} ms without, ${rtt1} ms with: ${ADD} ms added"
echo "(note: established packets are accepted near the top of the chain; only a connection's first packet walks all 10,000 rules)"

echo "== goals"
ok() { awk -v m="$1" -v t="$2" -v dir="$3" 'BEGIN{ if ((dir=="le" && m<=t) || (dir=="ge" && m>=t)) print "ok"; else print "short"}'; }
echo "goal: apply_10k_rules_vs_nft measured=${RATIO}x target=2x $(ok "$RATIO" 2 le)"
# The re-apply figure is the CLI's wall time less a bare process start
# (`mamori --version`), both medians printed above: on a loaded machine the
# start alone can exceed the target. The in-process figures are above too.
RA=$(( R > V ? R - V : 0 ))
echo "goal: reapply_unchanged measured=${RA}ms target=50ms $(ok "$RA" 50 le)"
echo "goal: blockset_update_rate measured=${RATE}/s target=10000/s $(ok "$RATE" 10000 ge)"
