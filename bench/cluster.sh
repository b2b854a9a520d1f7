#!/usr/bin/env bash
# One job over the same S3 data (s3s-fs on loopback, started here), two modes:
#
# `bash bench/cluster.sh` (mode `processes`): 1, 2 and 3 cluster processes of
# `job run --hosts … --process N --secret-file F`, the authenticated-mesh code path a cluster
# attempt runs. Reports wall time, MB/s (decompressed bytes read, summed over processes, per wall
# second), the ratio to 1 process, and the listing time (the planning step every job pays: list +
# prune of the bucket) from the cost report.
#
# `bash bench/cluster.sh api`: API-planned jobs. A coordinator (`serve`, `[cluster] distribute`)
# with 0, 1 and 2 `telemetry-server worker` processes; the same job is submitted over the HTTP
# API (source `archive` = the bucket) and timed from the submit to its final state. Reports wall
# time, MB/s and the ratio to 0 workers, and the planning overhead: a tiny job (source `tiny`, 2
# files) timed with 0 and 2 workers (the difference is what preparing, shipping and starting the
# members costs per job).
#
# Knobs: CLUSTER_BENCH_PINGS (20000), CLUSTER_BENCH_RUNS (3), CLUSTER_BENCH_WORKERS (1 per process).
# On a 2-core machine the processes share two cores: the ratio is bounded by the cores, not by
# the mesh, and 3 processes oversubscribe them.
set -euo pipefail
cd "$(dirname "$0")/.."
PINGS=${CLUSTER_BENCH_PINGS:-20000}
RUNS=${CLUSTER_BENCH_RUNS:-3}
WORKERS=${CLUSTER_BENCH_WORKERS:-1}
MODE=${1:-processes}
case $MODE in processes|api) ;; *) echo "usage: $0 [processes|api]" >&2; exit 2 ;; esac
SHARED=${TELEMETRY_SHARED_DIR:-$(cd .. && pwd)/shared}
command -v s3s-fs >/dev/null 2>&1 || bash scripts/install-deps.sh
[ -f target/jobs/os-distribution-rust.wasm ] || bash scripts/build-guests.sh
cargo build -q -p telemetry-server
BIN=${CARGO_TARGET_DIR:-target}/debug/telemetry-server
JOB=target/jobs/os-distribution-rust.wasm

work=$(mktemp -d)
s3_pid=
pids_to_stop=()
cleanup() {
  for p in "${pids_to_stop[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$s3_pid" ] && kill "$s3_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# Data: generated pings converted into zstd partition files, laid out as bucket `bench`, prefix
# `v2/` (s3s-fs serves ROOT/BUCKET/KEY as plain files).
python3 "$SHARED/tools/gen-pings.py" --count "$PINGS" --seed 7 > "$work/pings.tsv"
"$BIN" convert --data-dir "$work/data" --format text "$work/pings.tsv" >/dev/null 2>&1
mkdir -p "$work/s3/bench"
cp -r "$work/data/storage" "$work/s3/bench/v2"
files=$(find "$work/s3/bench/v2" -type f | wc -l)
mb=$(du -sm "$work/s3/bench/v2" | cut -f1)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
s3s-fs --host 127.0.0.1 --port "$port" --access-key BENCHKEY --secret-key BENCHSECRET "$work/s3" >/dev/null 2>&1 &
s3_pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=BENCHKEY AWS_SECRET_ACCESS_KEY=BENCHSECRET AWS_REGION=us-east-1
echo '{}' > "$work/filter.json"
python3 -c 'import secrets; print(secrets.token_hex(32))' > "$work/secret"
chmod 600 "$work/secret"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One run with $1 processes: prints "wall_s bytes_read list_ms" (bytes summed over processes).
run() {
  local n=$1 hosts="" p pids=()
  for p in $(seq "$n"); do hosts="$hosts${hosts:+,}127.0.0.1:$(free_port)"; done
  local start end
  start=$(date +%s.%N)
  for p in $(seq 0 $((n - 1))); do
    "$BIN" job run "$JOB" --data s3://bench/v2 --filter "$work/filter.json" --json \
      --workers "$WORKERS" --cache-dir "$work/cache" --no-column-cache \
      --hosts "$hosts" --process "$p" --secret-file "$work/secret" \
      > "$work/out.$p.json" 2>"$work/err.$p" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || { cat "$work"/err.*; exit 1; }; done
  end=$(date +%s.%N)
  python3 - "$work" "$n" "$start" "$end" <<'PY'
import json, sys
work, n, start, end = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
docs = [json.load(open(f"{work}/out.{p}.json")) for p in range(n)]
read = sum(d["cost"]["bytes_read"] for d in docs)
files = sum(d["cost"]["files_read"] for d in docs)
assert files == docs[0]["cost"]["files_matched"], (files, docs[0]["cost"]["files_matched"])
print(f"{end - start:.3f} {read} {docs[0]['cost']['phases']['list_ms']:.1f}")
PY
}

[ "$MODE" = api ] && { . bench/cluster-api.sh; exit 0; }

"$BIN" job run "$JOB" --data s3://bench/v2 --filter "$work/filter.json" --json \
  --cache-dir "$work/cache" --no-column-cache >/dev/null 2>&1 # compile once, outside the timings
echo "data: $PINGS pings, $files partition files, ${mb} MB compressed in s3s-fs; $RUNS runs each, median; $WORKERS worker thread(s) per process; $(nproc) cores"
printf '%-10s %10s %10s %10s %12s\n' processes wall_s MB/s ratio list_ms
base=
for n in 1 2 3; do
  results=()
  for _ in $(seq "$RUNS"); do results+=("$(run "$n")"); done
  line=$(printf '%s\n' "${results[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
  read -r wall bytes list <<<"$line"
  mbs=$(python3 -c "print(f'{$bytes / 1e6 / $wall:.1f}')")
  [ -z "$base" ] && base=$wall
  ratio=$(python3 -c "print(f'{$base / $wall:.2f}')")
  printf '%-10s %10s %10s %10s %12s\n' "$n" "$wall" "$mbs" "$ratio" "$list"
done
