#!/usr/bin/env bash
# Load benchmark of `telemetry-server serve`: wrk POSTs a 19 KB gzip saved-session ping (made from
# ../shared/data/pings) at 32 connections, once per durability mode, and reports req/s, p50, p99.
# The load tool runs on the same machine as the server (as the goals assume).
#
#   bench/load.sh                      # modes "none batch", 3 runs of 10 s each, 32 connections
#   MODES="none batch always" DURATION=5s CONNS=64 RUNS=1 bench/load.sh
#   SHARDS=4 bench/load.sh             # writer shards (default: the server's, one per CPU)
#
# Each run starts a fresh server on an empty data dir. Runs vary (kernel writeback of ~0.5 GB/s of
# raw logs starts a few seconds in), so every run is printed and then the median of each column.
#
# Live conversion is off during the run (it would compete for the 2 cores; it is measured elsewhere).
# Every mode also checks the server's own count: records written >= 200s wrk saw, and exit 0 on SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."

. bench/wrk-defaults.sh
SHARDS=${SHARDS:-0}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --quiet -p telemetry-server --bin telemetry-server
BIN=$PWD/target/release/telemetry-server

WORK=$(mktemp -d /tmp/telemetry-load.XXXXXX)
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

gzip -6 -c "$PING" > "$WORK/ping.json.gz"
BODY_BYTES=$(stat -c %s "$WORK/ping.json.gz")
export SUBMIT_BODY="$WORK/ping.json.gz"

metric() { # metric NAME URL -> value
    curl -s "$2/metrics" | awk -v name="$1" '$1 == name { print $2 }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "body: $BODY_BYTES bytes gzip ($(basename "$PING")), $CONNS connections, $THREADS wrk threads, $RUNS x $DURATION per mode, $(nproc) cores"
ROW='%-8s %4s %10s %10s %10s %10s %12s %10s\n'
printf "$ROW" mode run req/s p50_ms p99_ms non2xx written fsyncs
: > "$WORK/rows"
for mode in $MODES; do
for run in $(seq "$RUNS"); do
    rm -rf "$WORK/data" && sync # start every run with no dirty pages left by the previous one
    LOG=$WORK/server-$mode-$run.log
    : > "$LOG" # created before the server starts, so the wait below never reads a missing or stale file
    "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --durability "$mode" --convert false \
        --shards "$SHARDS" 2>> "$LOG" &
    SERVER_PID=$!
    for _ in $(seq 100); do grep -q 'listening on' "$LOG" && break; sleep 0.1; done
    ADDR=$(sed -n 's/^listening on //p' "$LOG")
    [ -n "$ADDR" ] || { cat "$LOG"; exit 1; }
    URL=http://$ADDR
    wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s "$PWD/bench/submit.lua" "$URL" > "$WORK/wrk-$mode.txt"
    RESULT=$(grep '^RESULT' "$WORK/wrk-$mode.txt")
    eval "${RESULT#RESULT }"
    WRITTEN=$(metric telemetry_ingest_written_records_total "$URL")
    FSYNCS=$(metric telemetry_ingest_fsync_duration_seconds_count "$URL")
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || { echo "server exited with $? after SIGTERM"; cat "$LOG"; exit 1; }
    SERVER_PID=
    OK=$((requests - non2xx))
    [ "${WRITTEN%.*}" -ge "$OK" ] || { echo "only $WRITTEN records written for $OK acknowledged"; exit 1; }
    printf "$ROW" "$mode" "$run" "$rps" "$p50_ms" "$p99_ms" "$non2xx" "$WRITTEN" "${FSYNCS:-0}"
    echo "$mode $rps $p50_ms $p99_ms" >> "$WORK/rows"
done
done
echo
echo "median of $RUNS runs, per column:"
printf '%-8s %10s %10s %10s\n' mode req/s p50_ms p99_ms
for mode in $MODES; do
    col() { awk -v m="$mode" -v c="$1" '$1 == m { print $c }' "$WORK/rows" | median; }
    printf '%-8s %10.0f %10.3f %10.3f\n' "$mode" "$(col 2)" "$(col 3)" "$(col 4)"
done
echo "goals (issue 4, this 2-core machine, load tool on the same machine): none >= 30000 req/s; batch >= 10000 req/s; p99 < 10 ms"

