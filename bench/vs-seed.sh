#!/usr/bin/env bash
# Ingest side by side: the 2013 Node submission server (../shared/peers/seed-server/server.js, run
# unchanged with Debian's node: a cluster master and one worker per CPU, no fsync) and ours
# (`serve --convert false`, durability `none` and `batch`), alternated run by run under the same wrk
# load as bench/load.sh (wrk -t2 -c32, the 19 KB gzip saved-session ping, bench/submit.lua).
# Prints every run (with the server's CPU time per request, user and kernel, from /proc: the seed's
# master and workers together), then each run's ratio ours/seed (req/s) and the median of each,
# and the same for CPU time per request. On a machine busy with other work the CPU ratio is the
# steadier figure: the req/s of both servers is then capped by the CPU left to them and the loader.
#
#   bash bench/vs-seed.sh                        # 3 rounds of 10 s runs
#   RUNS=5 DURATION=20s BIN=target/release/telemetry-server bash bench/vs-seed.sh
#
# The load tool runs on the same machine as the servers, and so does anything else running there:
# on a shared machine, quote the spread of the runs, not only the medians.
set -euo pipefail
cd "$(dirname "$0")/.."

. bench/wrk-defaults.sh
SEED_DIR=$SHARED/peers/seed-server

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
command -v node >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs; }
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet -p telemetry-server --bin telemetry-server
    BIN=$PWD/target/release/telemetry-server
fi

WORK=$(mktemp -d /tmp/telemetry-vs-seed.XXXXXX)
SERVER_PID=
stop_server() { # the seed's master re-forks workers that die: stop the workers with the master
    [ -n "$SERVER_PID" ] || return 0
    local children
    children=$(pgrep -P "$SERVER_PID" || true)
    kill -TERM "$SERVER_PID" $children 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    for pid in $children; do while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done; done
    SERVER_PID=
}
cleanup() { stop_server; rm -rf "$WORK"; }
trap cleanup EXIT

gzip -6 -c "$PING" > "$WORK/ping.json.gz"
export SUBMIT_BODY="$WORK/ping.json.gz"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() { # wait_http URL: until it answers at all
    for _ in $(seq 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done
    echo "no answer from $1"; return 1
}

start_seed() { # a fresh copy with its own writable log dir and stats file
    rm -rf "$WORK/seed" && mkdir -p "$WORK/seed/data" && cp "$SEED_DIR/server.js" "$WORK/seed/"
    PORT=$(free_port)
    python3 - "$SEED_DIR/server_config.json" "$WORK/seed/config.json" "$PORT" "$WORK/seed" <<'EOF'
import json, sys
config = json.load(open(sys.argv[1]))
config.update(port=int(sys.argv[3]), log_path=sys.argv[4] + "/data", stats_log_file=sys.argv[4] + "/stats.log")
json.dump(config, open(sys.argv[2], "w"))
EOF
    node "$WORK/seed/server.js" "$WORK/seed/config.json" > "$WORK/seed/out.log" 2>&1 &
    SERVER_PID=$!
    URL=http://127.0.0.1:$PORT
    wait_http "$URL/status"
}

start_ours() { # start_ours MODE
    rm -rf "$WORK/data" && sync
    : > "$WORK/ours.log"
    "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --durability "$1" --convert false 2>> "$WORK/ours.log" &
    SERVER_PID=$!
    for _ in $(seq 100); do grep -q 'listening on' "$WORK/ours.log" && break; sleep 0.1; done
    URL=http://$(sed -n 's/^listening on //p' "$WORK/ours.log")
    wait_http "$URL/status"
}

ROW='%-6s %-12s %10s %10s %10s %8s %12s %12s\n'
echo "body: $(stat -c %s "$WORK/ping.json.gz") bytes gzip, wrk -t$THREADS -c$CONNS -d$DURATION, $RUNS rounds, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "seed: node $(node --version) $SEED_DIR/server.js (cluster, $(nproc) workers, no fsync); ours: $BIN"
printf "$ROW" round server req/s p50_ms p99_ms non2xx user_us/req sys_us/req
cpu_ticks() { # cpu_ticks: "user system" clock ticks of the server and its child processes
    local pids
    pids="$SERVER_PID $(pgrep -P "$SERVER_PID" | tr '\n' ' ')"
    for pid in $pids; do cat "/proc/$pid/stat" 2>/dev/null; done |
        awk '{ sub(/^.*\) /, ""); u += $12; s += $13 } END { print u + 0, s + 0 }'
}
: > "$WORK/rows"
measure() { # measure ROUND NAME
    local result before after
    before=$(cpu_ticks)
    wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s "$PWD/bench/submit.lua" "$URL" > "$WORK/wrk.txt"
    after=$(cpu_ticks)
    result=$(grep '^RESULT' "$WORK/wrk.txt")
    eval "${result#RESULT }"
    # shellcheck disable=SC2086 # word splitting of "user system" intended
    read -r user_us sys_us < <(echo $before $after | awk -v n="$requests" -v hz="$(getconf CLK_TCK)" \
        '{ printf "%.1f %.1f\n", ($3 - $1) * 1e6 / hz / n, ($4 - $2) * 1e6 / hz / n }')
    printf "$ROW" "$1" "$2" "$rps" "$p50_ms" "$p99_ms" "$non2xx" "$user_us" "$sys_us"
    echo "$1 $2 $rps $p50_ms $p99_ms $non2xx $user_us $sys_us" >> "$WORK/rows"
}
for round in $(seq "$RUNS"); do
    start_seed; measure "$round" seed; stop_server
    for mode in $MODES; do
        start_ours "$mode"; measure "$round" "ours-$mode"; stop_server
    done
done

echo
echo "ratios ours/seed (req/s), each round against the seed run of the same round:"
python3 - "$WORK/rows" $MODES <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
by = {(r[0], r[1]): r for r in rows}
rounds = sorted({r[0] for r in rows}, key=int)
for mode in sys.argv[2:]:
    ratios = [float(by[(n, "ours-" + mode)][2]) / float(by[(n, "seed")][2]) for n in rounds]
    p99 = [float(by[(n, "ours-" + mode)][4]) for n in rounds]
    non2xx = sum(int(by[(n, "ours-" + mode)][5]) for n in rounds)
    print(f"  {mode:<6} " + "  ".join(f"{r:.2f}x" for r in ratios) +
          f"   median {statistics.median(ratios):.2f}x, p99 max {max(p99):.2f} ms, non-2xx {non2xx}")
cpu = lambda row: float(row[6]) + float(row[7])
print("CPU time per request (user + kernel), seed/ours: how many times less CPU ours takes per request")
for mode in sys.argv[2:]:
    ratios = [cpu(by[(n, "seed")]) / cpu(by[(n, "ours-" + mode)]) for n in rounds]
    print(f"  {mode:<6} " + "  ".join(f"{r:.2f}x" for r in ratios) + f"   median {statistics.median(ratios):.2f}x")
seed = [float(by[(n, "seed")][2]) for n in rounds]
print(f"  seed median {statistics.median(seed):.0f} req/s, p99 max {max(float(by[(n, 'seed')][4]) for n in rounds):.2f} ms")
EOF
echo "goals (issue 15, 2 cores, load tool on the same machine): batch >= 2x the seed, none >= 3x, p99 < 10 ms"
