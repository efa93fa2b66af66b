#!/usr/bin/env bash
# Benchmark: mamori integrity init/check against AIDE (aide --init/--check
# --workers=2, sha256 rule p+i+n+u+g+s+m+c+sha256) on the shared ~1 GB /
# 20k-file corpus and on /usr, plus the hashing limit (sha256sum one core and
# both cores, a warm parallel read, openssl's sha256 speed). Prints wall,
# files/s, MB/s, peak RSS and ratios, a correctness comparison (the same
# modifications seen by both tools on a copied part of the corpus, which is
# never modified itself), the real-time latency test, and one goal line per
# goal of issue 4. Not part of the default test run.
#
#   bench/integrity/run.sh              # RUNS=1 by default; RUNS=3 for medians
#   SKIP_USR=1 bench/integrity/run.sh   # without /usr
#   PARTS='corpus correctness' bench/integrity/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
BENCHDATA=${BENCHDATA:-/tmp/benchdata}
CORPUS=$BENCHDATA/corpus
RUNS=${RUNS:-1}
W=$BENCHDATA/integrity-bench
rm -rf "$W"; mkdir -p "$W"

command -v aide >/dev/null || { echo "aide not installed (apt-get install aide)"; exit 2; }
if [ ! -d "$CORPUS" ]; then
	echo "== no corpus in $CORPUS: generating it with ../shared/bench/gen-corpus.sh"
	BENCHDATA=$BENCHDATA bash ../shared/bench/gen-corpus.sh
fi
echo "== build"
go build -o "$W/mamori" ./cmd/mamori
M=$W/mamori
export MAMORI_INTEGRITY_DIR=$W/db
# The MAC key is kept apart from the baselines (by default
# /etc/mamori/integrity.key as root): the bench keeps its own.
export MAMORI_INTEGRITY_KEY=$W/keys/integrity.key
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine makes figures noisy)"

# timed NAME CMD…: runs CMD RUNS times; NAME.wall is the median wall time,
# NAME.rss the largest peak RSS (KiB), NAME.rc the last exit code.
timed() {
	local n=$1; shift
	local walls=() rss=0 rc=0 cpu=0
	for _ in $(seq "$RUNS"); do
		/usr/bin/time -o "$W/$n.time" -f '%e %M %x %U %S' "$@" > "$W/$n.out" 2> "$W/$n.err" || true
		read -r wall r rc u s < <(tail -1 "$W/$n.time")
		walls+=("$wall"); [ "$r" -gt "$rss" ] && rss=$r
		cpu=$(awk -v u="$u" -v s="$s" 'BEGIN {print u + s}')
	done
	printf '%s\n' "${walls[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}' > "$W/$n.wall"
	echo "$rss" > "$W/$n.rss"; echo "$rc" > "$W/$n.rc"; echo "$cpu" > "$W/$n.cpu"
}
wall() { cat "$W/$1.wall"; }
rssmb() { awk '{printf "%.0f", $1/1024}' "$W/$1.rss"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}'; }
row() { # name tool task bytes files
	local w; w=$(wall "$1")
	awk -v n="$2" -v t="$3" -v w="$w" -v b="$4" -v f="$5" -v r="$(rssmb "$1")" -v rc="$(cat "$W/$1.rc")" \
		-v c="$(cat "$W/$1.cpu")" 'BEGIN {printf "| %-9s | %-44s | %7.2f s | %6.1f s | %8.0f | %7.0f | %5s MiB | %3s |\n", n, t, w, c, f / w, b / 1e6 / w, r, rc}'
}

cat > "$W/readall.py" <<'PY'
import os, sys
from concurrent.futures import ThreadPoolExecutor
paths = []
for d, _, fs in os.walk(sys.argv[1]):
    for f in fs:
        p = os.path.join(d, f)
        if os.path.isfile(p) and not os.path.islink(p):
            paths.append(p)
def rd(chunk):
    n, buf = 0, bytearray(1 << 20)
    for p in chunk:
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            continue
        with os.fdopen(fd, 'rb', buffering=0) as f:
            while k := f.readinto(buf):
                n += k
    return n
with ThreadPoolExecutor(2) as ex:
    print(sum(ex.map(rd, [paths[0::2], paths[1::2]])))
PY

SHA_CORE=$(openssl speed -seconds 2 -bytes 16384 -evp sha256 2>/dev/null | tail -1 | awk '{v=$NF; sub(/k$/, "", v); print v * 1000}')
echo "openssl sha256, one core: $(awk -v s="$SHA_CORE" 'BEGIN {printf "%.0f MB/s", s / 1e6}')"

GOALS=()
goal() { GOALS+=("goal: $1 measured=$2 target=$3 $4"); }
okge() { awk -v a="$1" -v b="$2" 'BEGIN {print (a >= b ? "ok" : "short")}'; }
okle() { awk -v a="$1" -v b="$2" 'BEGIN {print (a <= b ? "ok" : "short")}'; }

bench_tree() { # LABEL ROOT
	local L=$1 R=$2 files bytes
	files=$(find "$R" -xdev -type f | wc -l)
	bytes=$(find "$R" -xdev -type f -printf '%s\n' | awk '{s += $1} END {printf "%.0f", s}')
	echo
	echo "== $L: $R, $files files, $((bytes / 1000000)) MB"
	find "$R" -xdev -type f -print0 | xargs -0 -P2 -n 500 cat > /dev/null 2>&1 || true
	# The read floor: every byte read once, two threads, 1 MiB reads. (GNU
	# cat into /dev/null spent ~8 s of system time per GB here, so it is
	# not used as the floor.)
	timed "$L-read" python3 "$W/readall.py" "$R"
	timed "$L-sha1" bash -c "find '$R' -xdev -type f -print0 | xargs -0 sha256sum > /dev/null 2>&1"
	timed "$L-sha2" bash -c "find '$R' -xdev -type f -print0 | xargs -0 -P2 -n 500 sha256sum > /dev/null 2>&1"
	cat > "$W/$L-aide.conf" <<EOC
database_in=file:$W/$L-aide.db
database_out=file:$W/$L-aide.db.new
gzip_dbout=no
report_url=stdout
log_level=warning
Sha = p+i+n+u+g+s+m+c+sha256
$R Sha
EOC
	printf 'name: %s\nrules:\n  - path: %s\n    attributes: [meta, sha256]\n' "$L" "$R" > "$W/$L.yaml"
	timed "$L-aide-init" aide -c "$W/$L-aide.conf" --workers=2 --init
	mv "$W/$L-aide.db.new" "$W/$L-aide.db"
	timed "$L-aide-check" aide -c "$W/$L-aide.conf" --workers=2 --check
	timed "$L-m-init" "$M" integrity init --force --no-progress --policy "$W/$L.yaml" --baseline "$W/$L.fimdb"
	timed "$L-m-check" "$M" integrity check --no-progress --policy "$W/$L.yaml" --baseline "$W/$L.fimdb"
	timed "$L-m-trust" "$M" integrity check --trust-metadata --no-progress --policy "$W/$L.yaml" --baseline "$W/$L.fimdb"

	echo "| tool      | task                                         |      wall | CPU (u+s) |  files/s |    MB/s |  peak RSS |  rc |"
	echo "|---|---|---|---|---|---|---|---|"
	row "$L-read" "python3" "warm read, 2 threads, 1 MiB reads" "$bytes" "$files"
	row "$L-sha1" "sha256sum" "hash every file, 1 process" "$bytes" "$files"
	row "$L-sha2" "sha256sum" "hash every file, xargs -P2" "$bytes" "$files"
	row "$L-aide-init" "aide" "--init --workers=2 (sha256 rule)" "$bytes" "$files"
	row "$L-aide-check" "aide" "--check --workers=2 (unchanged)" "$bytes" "$files"
	row "$L-m-init" "mamori" "integrity init ([meta, sha256])" "$bytes" "$files"
	row "$L-m-check" "mamori" "integrity check (rehash, unchanged)" "$bytes" "$files"
	row "$L-m-trust" "mamori" "integrity check --trust-metadata" "$bytes" "$files"

	local floor hashfloor
	hashfloor=$(awk -v b="$bytes" -v s="$SHA_CORE" 'BEGIN {printf "%.2f", b / (2 * s)}')
	floor=$(awk -v a="$(wall "$L-read")" -v b="$hashfloor" 'BEGIN {printf "%.2f", (a > b ? a : b)}')
	echo "floor = max(warm read $(wall "$L-read") s, bytes / both cores' sha256 $hashfloor s) = $floor s"
	echo "CPU: mamori init used $(cat "$W/$L-m-init.cpu") CPU-s; hashing alone at openssl's speed needs $(awk -v h="$hashfloor" 'BEGIN {print 2 * h}') CPU-s (a loaded machine inflates wall times, not CPU)"
	local ri rc rt finit fcheck
	ri=$(ratio "$(wall "$L-aide-init")" "$(wall "$L-m-init")")
	rc=$(ratio "$(wall "$L-aide-check")" "$(wall "$L-m-check")")
	rt=$(ratio "$(wall "$L-aide-check")" "$(wall "$L-m-trust")")
	finit=$(ratio "$(wall "$L-m-init")" "$floor")
	fcheck=$(ratio "$(wall "$L-m-check")" "$floor")
	echo "ratios: aide init / mamori init = ${ri}x, aide check / mamori check = ${rc}x, aide check / mamori check --trust-metadata = ${rt}x; mamori init / floor = $finit, check / floor = $fcheck"
	echo "unchanged tree: aide --check exit $(cat "$W/$L-aide-check.rc"), mamori check exit $(cat "$W/$L-m-check.rc") (0 = nothing reported)"
	goal "init-vs-aide-$L" "${ri}x" "3x" "$(okge "$ri" 3)"
	goal "check-vs-aide-$L" "${rc}x" "3x" "$(okge "$rc" 3)"
	goal "init-vs-floor-$L" "${finit}x" "1.5x" "$(okle "$finit" 1.5)"
	goal "check-vs-floor-$L" "${fcheck}x" "1.5x" "$(okle "$fcheck" 1.5)"
	goal "trust-metadata-check-vs-aide-check-$L" "${rt}x" "20x" "$(okge "$rt" 20)"
	local mr ar
	mr=$(cat "$W/$L-m-init.rss" "$W/$L-m-check.rss" | sort -n | tail -1)
	ar=$(cat "$W/$L-aide-init.rss" "$W/$L-aide-check.rss" | sort -n | tail -1)
	goal "peak-rss-$L" "$((mr / 1024))MiB" "<=aide:$((ar / 1024))MiB" "$(okle "$mr" "$ar")"
}

# Correctness: copy part of the corpus, baseline it with both tools, make
# the same modifications, compare the reported path sets.
correctness() {
	local C=$W/parity/tree
	mkdir -p "$C"
	cp -a "$CORPUS"/d000 "$CORPUS"/d001 "$C"/
	cat > "$W/parity-aide.conf" <<EOC
database_in=file:$W/parity-aide.db
database_out=file:$W/parity-aide.db.new
gzip_dbout=no
report_url=stdout
log_level=warning
Sha = p+i+n+u+g+s+m+c+sha256
$C Sha
EOC
	printf 'name: parity\nrules:\n  - path: %s\n    attributes: [meta, sha256]\n' "$C" > "$W/parity.yaml"
	aide -c "$W/parity-aide.conf" --init > /dev/null
	mv "$W/parity-aide.db.new" "$W/parity-aide.db"
	"$M" integrity init --force --no-progress --policy "$W/parity.yaml" --baseline "$W/parity.fimdb" 2> /dev/null
	sleep 1.1 # AIDE keeps whole-second times
	mapfile -t fs < <(find "$C" -type f -size +4k | sort | awk 'NR % 23 == 1' | head -12)
	for i in 0 1 2 3; do echo tampered >> "${fs[$i]}"; done
	for i in 4 5 6; do m=$(stat -c %Y "${fs[$i]}"); printf 'TAMPERED-0123456' | dd of="${fs[$i]}" bs=1 seek=100 conv=notrunc status=none; touch -d "@$m" "${fs[$i]}"; done
	chmod 0755 "${fs[7]}" "${fs[8]}"
	truncate -s 100 "${fs[9]}"
	rm "${fs[10]}"
	mv "${fs[11]}" "${fs[11]}.moved"
	echo new > "$C/d000/new-file"
	aide -c "$W/parity-aide.conf" --check > "$W/parity-aide.out" || true
	"$M" integrity check --json --no-progress --policy "$W/parity.yaml" --baseline "$W/parity.fimdb" > "$W/parity-mamori.json" 2> /dev/null || true
	python3 - "$W/parity-aide.out" "$W/parity-mamori.json" <<'PY'
import json, re, sys
aide = set(); sect = None
for line in open(sys.argv[1], errors='replace'):
    m = re.match(r'^(Added|Removed|Changed) entries:', line)
    if m: sect = m.group(1).lower(); continue
    if line.startswith('Detailed information') or line.startswith('The attributes'): sect = None
    m = re.match(r'^[fdlcbps?]\S*\s*[^:]*:\s*(/.*)$', line.rstrip('\n'))
    if sect and m: aide.add(sect + ' ' + m.group(1))
mam = set()
for line in open(sys.argv[2]):
    e = json.loads(line)
    mam.add(e['fields']['change'] + ' ' + e['file']['path'])
same = aide == mam
print(f"correctness: 12 files modified (4 appended, 3 overwritten keeping size+mtime, 2 chmod, 1 truncated, 1 deleted, 1 renamed) + 1 created")
print(f"correctness: AIDE reported {len(aide)} entries, mamori {len(mam)}; identical sets: {'yes' if same else 'NO'}")
for x in sorted(aide - mam): print('  only AIDE:  ', x)
for x in sorted(mam - aide): print('  only mamori:', x)
open(sys.argv[2] + '.same', 'w').write('1' if same else '0')
PY
	local same; same=$(cat "$W/parity-mamori.json.same")
	goal "parity-with-aide" "$([ "$same" = 1 ] && echo identical || echo different)" "identical" "$([ "$same" = 1 ] && echo ok || echo short)"
}

realtime() {
	echo
	echo "== real time: 1,000 modifications by a child process, fanotify"
	local line p99
	line=$(go test -count=1 -run 'TestFanotifyWhoDidIt' -v ./integrity/watch/ 2>&1 | grep -E '^realtime fanotify|FAIL|attributed' || true)
	echo "$line"
	p99=$(echo "$line" | sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' | head -1)
	[ -n "$p99" ] || p99=9999
	goal "realtime-p99-latency" "${p99}ms" "200ms" "$(okle "$p99" 200)"
}

PARTS=${PARTS:-corpus usr correctness realtime}
[ "${SKIP_USR:-0}" = 1 ] && PARTS=${PARTS/usr/}
for part in $PARTS; do
	case $part in
	corpus) bench_tree corpus "$CORPUS" ;;
	usr) bench_tree usr /usr ;;
	correctness) echo; echo "== correctness against AIDE"; correctness ;;
	realtime) realtime ;;
	esac
done
echo
printf '%s\n' "${GOALS[@]}"
