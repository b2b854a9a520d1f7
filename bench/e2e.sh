#!/usr/bin/env bash
# End-to-end capacity of `telemetry-server serve`: wrk POSTs the 19 KB gzip saved-session ping
# (every request its own document id) at increasing rates, with live conversion and continuous
# export to a local S3-compatible server (s3s-fs) on, and reports for each rate whether what was
# received was converted and exported with the backlogs bounded, and where the CPU went.
#
#   bench/e2e.sh                          # rates 1000..5000 by 1000, 20 s each
#   RATES="2000 3000 3500" STEP=30 bench/e2e.sh
#   WORKERS=1 bench/e2e.sh                # convert.workers (default: the server's, one per core)
#
# A rate is sustained when, over its step: every request was answered 2xx, the conversion
# backlog age stayed <= BACKLOG_MAX s (a log is open 2 s and retired after the 5 s flush that
# follows its conversion, so ~7-8 s is the floor; a backlog that keeps growing through a step
# passes that by several seconds: 12 s is the floor plus noise), the export lag <= EXPORT_LAG_MAX s,
# and conversion caught up with what was received within SETTLE s of the load's end. The load
# tool reaches ~90 % of a target rate (each connection waits DELAY_MS after a response), so the
# verdict names the rate received. Each step runs on the same server
# (the data dir keeps growing); the load tool shares the machine's cores with the server, and on
# a shared machine other work does too: quote results with the machine's load.
# Not run in CI. Uses target/release/telemetry-server when present, else builds it.
set -euo pipefail
cd "$(dirname "$0")/.."

. bench/wrk-defaults.sh # PING, THREADS
RATES=${RATES:-"1000 2000 3000 4000 5000"}
STEP=${STEP:-20}
SETTLE=${SETTLE:-15}
BACKLOG_MAX=${BACKLOG_MAX:-12}
EXPORT_LAG_MAX=${EXPORT_LAG_MAX:-15}
DURABILITY=${DURABILITY:-batch}
WORKERS=${WORKERS:-}
DELAY_MS=50 # per connection between a response and the next request: rate ~ connections * 20/s

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
S3S=$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")
[ -x "$S3S" ] || { echo "s3s-fs not found (scripts/install-deps.sh installs it)" >&2; exit 2; }
BIN=${BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/telemetry-server}
if [ ! -x "$BIN" ]; then
    cargo build --release --quiet -p telemetry-server --bin telemetry-server
fi

WORK=$(mktemp -d /tmp/telemetry-e2e.XXXXXX)
SERVER_PID= S3_PID=
cleanup() {
    local status=$?
    if [ "$status" != 0 ] && [ -s "$WORK/server.log" ]; then
        echo "failed (exit $status); the server's log ends:" >&2
        tail -n 20 "$WORK/server.log" >&2
    fi
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
    [ -n "$S3_PID" ] && kill "$S3_PID" 2>/dev/null && wait "$S3_PID" 2>/dev/null || true
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT

gzip -6 -c "$PING" > "$WORK/ping.json.gz"
export SUBMIT_BODY=$WORK/ping.json.gz SUBMIT_DELAY_MS=$DELAY_MS

S3_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$WORK/s3"
"$S3S" --host 127.0.0.1 --port "$S3_PORT" --access-key AKIDTEST --secret-key SECRETTEST "$WORK/s3" \
    > "$WORK/s3.log" 2>&1 &
S3_PID=$!

cat > "$WORK/server.toml" <<EOF
data_dir = "$WORK/data"
[server]
listen = "127.0.0.1:0"
[ingest]
durability = "$DURABILITY"
max_log_age_ms = 2000
[convert]
scan_interval_secs = 1
flush_secs = 5
keep_raw = false
${WORKERS:+workers = $WORKERS}
[s3]
endpoint = "http://127.0.0.1:$S3_PORT"
bucket = "telemetry"
prefix = "published/"
interval_secs = 2
EOF
LOG=$WORK/server.log
: > "$LOG"
env -u RUST_LOG AWS_ACCESS_KEY_ID=AKIDTEST AWS_SECRET_ACCESS_KEY=SECRETTEST AWS_REGION=us-east-1 \
    "$BIN" serve --config "$WORK/server.toml" 2>> "$LOG" &
SERVER_PID=$!
for _ in $(seq 100); do grep -q 'listening on' "$LOG" && break; sleep 0.1; done
ADDR=$(sed -n 's/^listening on //p' "$LOG")
[ -n "$ADDR" ] || { cat "$LOG"; exit 1; }
URL=http://$ADDR

metrics() { curl -s "$URL/metrics" > "$WORK/metrics"; }
metric() { awk -v name="$1" '$1 == name { v = $2 } END { print v + 0 }' "$WORK/metrics"; }
# CPU ticks used so far by each group of live server threads (the name without its trailing
# number), and by the whole process; threads that exited (a log's conversion threads) count in
# the process's total only, shown as "(threads that exited)".
thread_ticks() {
    { for stat in /proc/"$SERVER_PID"/task/*/stat; do cat "$stat" 2>/dev/null || true; done # a thread may exit meanwhile
      sed 's/^/(process) /' /proc/"$SERVER_PID"/stat; } |
        sed -E 's/^(\(process\) )?[0-9]+ \((.*)\) /\1\2\t/' |
        awk -F'\t' '{ split($2, f, " "); name = $1; sub(/[-_ ]?[0-9]+$/, "", name)
                      if (name ~ /^\(process\) /) total = f[12] + f[13]; else { t[name] += f[12] + f[13]; live += f[12] + f[13] } }
                    END { for (n in t) print n "\t" t[n]; print "(threads that exited)\t" total - live; print "(whole process)\t" total }'
}

TICKS=$(getconf CLK_TCK)
echo "ping: $(stat -c %s "$SUBMIT_BODY") bytes gzip ($(basename "$PING")); $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "durability $DURABILITY, convert.workers ${WORKERS:-default}, $STEP s per rate, backlog <= ${BACKLOG_MAX} s, export lag <= ${EXPORT_LAG_MAX} s"
ROW='%7s %9s %10s %10s %11s %11s %9s %s\n'
printf "$ROW" target received/s converted/s backlog_s exp_lag_s catch_up_s non2xx verdict
best=0 run=0
for rate in $RATES; do
    run=$((run + 1))
    conns=$(( (rate * DELAY_MS + 999) / 1000 ))
    threads=$(( conns < THREADS ? conns : THREADS ))
    metrics
    received0=$(metric telemetry_ingest_written_records_total)
    converted0=$(metric telemetry_convert_records_read_total)
    thread_ticks > "$WORK/ticks0"
    : > "$WORK/samples"
    ( while sleep 1; do
          metrics
          echo "$(metric telemetry_convert_backlog_age_seconds) $(metric telemetry_export_lag_seconds)"
      done >> "$WORK/samples" ) &
    SAMPLER=$!
    SUBMIT_RUN=$run wrk -t"$threads" -c"$conns" -d"${STEP}s" -s "$PWD/bench/submit.lua" "$URL" > "$WORK/wrk.txt"
    thread_ticks > "$WORK/ticks1"
    metrics
    received=$(( $(metric telemetry_ingest_written_records_total) - received0 ))
    converted=$(( $(metric telemetry_convert_records_read_total) - converted0 ))
    waited=0
    while [ "$converted" -lt "$received" ] && [ "$waited" -lt "$SETTLE" ]; do
        sleep 1; waited=$((waited + 1)); metrics
        received=$(( $(metric telemetry_ingest_written_records_total) - received0 ))
        converted=$(( $(metric telemetry_convert_records_read_total) - converted0 ))
    done
    kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null || true
    backlog=$(awk 'BEGIN { m = 0 } $1 > m { m = $1 } END { print m }' "$WORK/samples")
    lag=$(awk 'BEGIN { m = 0 } $2 > m { m = $2 } END { print m }' "$WORK/samples")
    non2xx=$(sed -n 's/^RESULT.* non2xx=\([0-9]*\).*/\1/p' "$WORK/wrk.txt")
    catch_up=$([ "$converted" -ge "$received" ] && echo "$waited" || echo ">$SETTLE")
    ok=yes
    [ "$converted" -ge "$received" ] && [ "$received" -gt 0 ] && [ "${non2xx:-1}" = 0 ] \
        && [ "$backlog" -le "$BACKLOG_MAX" ] && [ "$lag" -le "$EXPORT_LAG_MAX" ] || ok=no
    printf "$ROW" "$rate" "$((received / STEP))" "$((converted / (STEP + waited)))" "$backlog" "$lag" \
        "$catch_up" "${non2xx:-?}" "$([ $ok = yes ] && echo sustained || echo NOT sustained)"
    awk -F'\t' -v secs="$STEP" -v hz="$TICKS" 'NR == FNR { before[$1] = $2; next }
        { c = ($2 - before[$1]) / hz / secs * 100; if (c >= 1) printf "          %5.0f%% of a core  %s\n", c, $1 }' \
        "$WORK/ticks0" "$WORK/ticks1" | sort -rn
    [ $ok = yes ] && best=$((received / STEP))
    [ $ok = yes ] || break
done

# Drain, then every partition file converted must be on S3 after a clean export pass.
sleep "$SETTLE"
metrics
echo "stored $(metric telemetry_convert_records_written_total) records, rejected $(metric telemetry_convert_records_read_total | awk -v w="$(metric telemetry_convert_records_written_total)" '{ print $1 - w }'), exported $(metric telemetry_export_uploaded_files_total) files ($(( $(metric telemetry_export_uploaded_bytes_total) / 1000000 )) MB)"
missing=0
while IFS= read -r -d '' file; do
    [ -e "$WORK/s3/telemetry/published/${file#"$WORK/data/storage/"}" ] || missing=$((missing + 1))
done < <(find "$WORK/data/storage" -type f -name '*.zst' -print0)
echo "partition files not on S3 after the drain: $missing"
echo "highest sustained rate: $best pings/s (received = converted = exported, backlogs bounded)"
