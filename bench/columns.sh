#!/usr/bin/env bash
# The column cache and the Parquet export against DuckDB, one run, same data: COUNT (default 2000)
# gen-pings.py v4 pings converted into zstd storage, then os-distribution (the Rust component,
# WORKERS workers, default 1) timed as
#   first    - the job with an empty column cache (reads the JSON, writes the columns)
#   repeated - the job again (reads the columns)
#   parquet  - DuckDB's GROUP BY over the Parquet files `telemetry-server parquet` wrote
#   json     - DuckDB's GROUP BY over the same zstd partition files (read_csv + json_extract)
# Each pair is timed by farm-bench (whole process, medians, ratio pair by pair); the job's own
# map-phase throughput comes from its cost report. Needs scripts/install-deps.sh (DuckDB) and
# scripts/build-guests.sh (the component).
#   bash bench/columns.sh            # BIN defaults to target/release, else target/debug
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-target}"
BIN="${BIN:-$( [ -x "$TARGET/release/telemetry-server" ] && echo "$TARGET/release/telemetry-server" || echo "$TARGET/debug/telemetry-server" )}"
BIN="$(realpath "$BIN")"
COUNT="${COUNT:-2000}"; WORKERS="${WORKERS:-1}"; RUNS="${RUNS:-5}"
SHARED="${TELEMETRY_SHARED_DIR:-../shared}"
PY="$(pwd)/target/analysis-tools/py/bin/python"
JOB="$(pwd)/target/jobs/os-distribution-rust.wasm"
[ -x "$PY" ] || { echo "run scripts/install-deps.sh first (DuckDB)"; exit 1; }
[ -f "$JOB" ] || { echo "run scripts/build-guests.sh first"; exit 1; }
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
python3 "$SHARED/tools/gen-pings.py" --count "$COUNT" --seed 5 --kind v4 > "$work/pings.tsv"
"$BIN" convert --date 20261201 --data-dir "$work/data" "$work/pings.tsv" >/dev/null 2>&1
json_mb=$(python3 -c "import os; print(os.path.getsize('$work/pings.tsv') / 1e6)")
files=$(find "$work/data/storage" -name '*.zst' | wc -l)
stored_mb=$(du -sm "$work/data/storage" | cut -f1)
echo "input: $COUNT v4 pings, ${json_mb%.*} MB of JSON in $files zstd partition files (${stored_mb} MB); $BIN; $WORKERS worker(s); $(nproc) cores"

job=("$BIN" job run --json --workers "$WORKERS" --data-dir "$work/data" "$JOB")

start=$(date +%s.%N)
"$BIN" parquet --data-dir "$work/data" --out "$work/parquet" \
  --column os=/environment/system/os/name --column info_os=/info/OS \
  --column version=/application/version --column info_version=/info/appVersion 2>/dev/null
echo "parquet export: $(python3 -c "print(round($(date +%s.%N) - $start, 2))") s, $(du -sm "$work/parquet" | cut -f1) MB of Parquet"

cat > "$work/parquet.py" <<PY
import duckdb
for k, n in duckdb.sql("""SELECT coalesce(os, info_os, 'UNKNOWN') || ',' || coalesce(version, info_version, 'UNKNOWN') AS k, count(*)
  FROM read_parquet('$work/parquet/**/*.parquet', union_by_name = true) GROUP BY k ORDER BY k""").fetchall():
    print(f"{k}\t{n}")
PY
cat > "$work/duckdb_json.py" <<PY
import duckdb
duckdb.sql("SET threads = $WORKERS")
for k, n in duckdb.sql("""SELECT coalesce(json_extract_string(doc, '$.environment.system.os.name'), json_extract_string(doc, '$.info.OS'), 'UNKNOWN')
    || ',' || coalesce(json_extract_string(doc, '$.application.version'), json_extract_string(doc, '$.info.appVersion'), 'UNKNOWN') AS k, count(*)
  FROM read_csv('$work/data/storage/**/*.zst', delim = '\t', header = false, quote = '', escape = '',
                columns = {'id': 'VARCHAR', 'doc': 'VARCHAR'}, compression = 'zstd', max_line_size = 16000000)
  GROUP BY k ORDER BY k""").fetchall():
    print(f"{k}\t{n}")
PY
sed -i "s|^import duckdb$|import duckdb\nduckdb.sql('SET threads = $WORKERS')|" "$work/parquet.py"

# The four answers agree before anything is timed.
rm -rf "$work/data/columns"; "${job[@]}" --output "$work/out-first.txt" >/dev/null
"${job[@]}" --output "$work/out-repeated.txt" >/dev/null
"$PY" "$work/parquet.py" > "$work/out-parquet.txt"
"$PY" "$work/duckdb_json.py" > "$work/out-json.txt"
for o in repeated parquet json; do
  cmp -s "$work/out-first.txt" "$work/out-$o.txt" || { echo "$o output differs from the job's"; diff "$work/out-first.txt" "$work/out-$o.txt" | head; exit 1; }
done
echo "outputs: first, repeated, DuckDB/Parquet and DuckDB/JSON agree ($(wc -l < "$work/out-first.txt") lines)"

cat > "$work/rate.py" <<'PY'
import json, sys
c = json.load(sys.stdin)["cost"]
print(f"{c['phases']['map_ms']:.0f} ms map, {c['mb_per_s']:.0f} MB/s, {c['column_cache']['hits']} cache hits")
PY
map_rate() { python3 "$work/rate.py"; } # job JSON on stdin → map time, MB/s, hits
echo "first run:    $(rm -rf "$work/data/columns"; "${job[@]}" --output /dev/null | map_rate)"
echo "repeated run: $("${job[@]}" --output /dev/null | map_rate)"

fb() { farm-bench -n "$RUNS" --timeout 1200 "$@" 2>&1 | grep -E 'wall|ratio|A:|B:' ; }
echo "--- A = repeated run, B = first run (cold cache)"
fb --vs "sh -c 'rm -rf $work/data/columns && ${job[*]} --output /dev/null'" -- "${job[@]}" --output /dev/null
echo "--- A = repeated run, B = DuckDB over the exported Parquet"
fb --vs "$PY $work/parquet.py" -- "${job[@]}" --output /dev/null
echo "--- A = DuckDB over the zstd JSON, B = repeated run"
fb --vs "${job[*]} --output /dev/null" -- "$PY" "$work/duckdb_json.py"
