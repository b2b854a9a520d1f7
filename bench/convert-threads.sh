#!/usr/bin/env bash
# Conversion on one thread vs every core (`convert --threads`), side by side on the same input:
# gen-pings.py v4 pings (COUNT, default 1500), each mode run RUNS times (default 3) alternately on
# a fresh data dir; prints each run's wall time and MB/s, the medians and their ratio.
#   bash bench/convert-threads.sh                 # BIN defaults to target/release, else target/debug
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-$( [ -x target/release/telemetry-server ] && echo target/release/telemetry-server || echo target/debug/telemetry-server )}"
COUNT="${COUNT:-1500}"; RUNS="${RUNS:-3}"; THREADS="${THREADS:-$(nproc)}"
SHARED="${TELEMETRY_SHARED_DIR:-../shared}"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
python3 "$SHARED/tools/gen-pings.py" --count "$COUNT" --seed 3 --kind v4 > "$work/pings.tsv"
bytes=$(stat -c %s "$work/pings.tsv")
echo "input: $COUNT v4 pings, $((bytes / 1000000)) MB; binary $BIN; $(nproc) cores"
run() { # threads → seconds
  rm -rf "$work/data"
  local start end
  start=$(date +%s.%N)
  "$BIN" convert --json --date 20261201 --threads "$1" --data-dir "$work/data" "$work/pings.tsv" >/dev/null || true
  end=$(date +%s.%N)
  python3 -c "print($end - $start)"
}
one=(); many=()
for i in $(seq "$RUNS"); do
  a=$(run 1); b=$(run "$THREADS")
  one+=("$a"); many+=("$b")
  printf 'run %d  1 thread %6.2fs (%5.1f MB/s)   %d threads %6.2fs (%5.1f MB/s)\n' "$i" "$a" "$(python3 -c "print($bytes/$a/1e6)")" "$THREADS" "$b" "$(python3 -c "print($bytes/$b/1e6)")"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m1=$(median "${one[@]}"); mn=$(median "${many[@]}")
printf 'median  1 thread %.2fs   %d threads %.2fs   speed-up %.2fx\n' "$m1" "$THREADS" "$mn" "$(python3 -c "print($m1/$mn)")"
