#!/usr/bin/env bash
# Load benchmark of `telemetry-server serve`: wrk POSTs a 19 KB gzip saved-session ping (made from
# ../shared/data/pings) at 32 connections, once per durability mode, and reports req/s, p50, p99.
# The load tool runs on the same machine as the server (as the goals assume).
#
#   bench/load.sh                      # modes "none batch", 10 s each, 32 connections
#   MODES="none batch always" DURATION=5s CONNS=64 bench/load.sh
#
# Live conversion is off during the run (it would compete for the 2 cores; it is measured elsewhere).
# Every mode also checks the server's own count: records written >= 200s wrk saw, and exit 0 on SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."

MODES=${MODES:-"none batch"}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
SHARED=${TELEMETRY_SHARED_DIR:-$(cd .. && pwd)/shared}
PING=$SHARED/data/pings/v4.saved-session.Fx40.0a2-aurora.2015-05.uberi.json

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

echo "body: $BODY_BYTES bytes gzip ($(basename "$PING")), $CONNS connections, $THREADS wrk threads, $DURATION per mode, $(nproc) cores"
printf '%-8s %10s %10s %10s %10s %12s %10s\n' mode req/s p50_ms p99_ms non2xx written fsyncs
for mode in $MODES; do
    rm -rf "$WORK/data"
    "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --durability "$mode" --convert false \
        2> "$WORK/server-$mode.log" &
    SERVER_PID=$!
    for _ in $(seq 100); do grep -q 'listening on' "$WORK/server-$mode.log" && break; sleep 0.1; done
    ADDR=$(sed -n 's/^listening on //p' "$WORK/server-$mode.log")
    [ -n "$ADDR" ] || { cat "$WORK/server-$mode.log"; exit 1; }
    URL=http://$ADDR
    wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s "$PWD/bench/submit.lua" "$URL" > "$WORK/wrk-$mode.txt"
    RESULT=$(grep '^RESULT' "$WORK/wrk-$mode.txt")
    eval "${RESULT#RESULT }"
    WRITTEN=$(metric telemetry_ingest_written_records_total "$URL")
    FSYNCS=$(metric telemetry_ingest_fsync_duration_seconds_count "$URL")
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || { echo "server exited with $? after SIGTERM"; cat "$WORK/server-$mode.log"; exit 1; }
    SERVER_PID=
    OK=$((requests - non2xx))
    [ "${WRITTEN%.*}" -ge "$OK" ] || { echo "only $WRITTEN records written for $OK acknowledged"; exit 1; }
    printf '%-8s %10s %10s %10s %10s %12s %10s\n' "$mode" "$rps" "$p50_ms" "$p99_ms" "$non2xx" "$WRITTEN" "${FSYNCS:-0}"
done
