#!/usr/bin/env bash
# Crash test of `telemetry-server serve`: several clients submit real pings with unique document ids
# while the server is killed with SIGKILL at random moments and restarted, KILLS times. Clients
# record an id only after its 200. At the end the server is stopped with SIGTERM (must exit 0) and
# every acknowledged id must be in a raw log (raw/, raw/converted/, raw/failed/), every raw log must
# be a run of complete v2 records (recovery cut torn tails), and no log may be left unfinished.
#
#   scripts/crash-test.sh                     # 10 kills, durability batch, 4 client processes
#   KILLS=3 DURABILITY=always scripts/crash-test.sh
#   BIN=target/release/telemetry-server scripts/crash-test.sh
#
# Loopback only; every loop is bounded. Takes ~1.5 s per kill plus the build.
set -euo pipefail
cd "$(dirname "$0")/.."

KILLS=${KILLS:-10}
CLIENTS=${CLIENTS:-4}
DURABILITY=${DURABILITY:-batch}
CONVERT=${CONVERT:-true}
SHARED=${TELEMETRY_SHARED_DIR:-$(cd .. && pwd)/shared}
PING=$SHARED/data/pings/v4.saved-session.Fx40.0a2-aurora.2015-05.uberi.json
if [ -z "${BIN:-}" ]; then
    cargo build --quiet -p telemetry-server --bin telemetry-server
    BIN=$PWD/target/debug/telemetry-server
fi

WORK=$(mktemp -d /tmp/telemetry-crash.XXXXXX)
PORT=$((20000 + RANDOM % 20000))
SERVER_PID=
CLIENT_PIDS=()
cleanup() {
    touch "$WORK/stop"
    [ -n "$SERVER_PID" ] && kill -9 "$SERVER_PID" 2>/dev/null
    for pid in "${CLIENT_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
gzip -6 -c "$PING" > "$WORK/ping.json.gz"

cat > "$WORK/client.py" <<'PY'
"""Submits pings with fresh ids until the stop file exists; appends each id to `acked` after its 200."""
import http.client, os, sys, threading, time, uuid

port, acked_path, body_path, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
body = open(body_path, "rb").read()
lock = threading.Lock()
acked = open(acked_path, "a")

def run():
    conn = None
    while not os.path.exists(stop):
        doc = str(uuid.uuid4())
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", f"/submit/telemetry/{doc}/saved-session/Firefox/40.0a2/aurora/20150522004047",
                         body, {"Content-Encoding": "gzip"})
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                with lock:
                    acked.write(doc + "\n")
                    acked.flush()
        except (OSError, http.client.HTTPException):
            conn = None
            time.sleep(0.02)

threads = [threading.Thread(target=run) for _ in range(2)]
for t in threads: t.start()
for t in threads: t.join()
PY

start_server() {
    "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" --durability "$DURABILITY" \
        --convert "$CONVERT" --max-log-size 2000000 --max-log-age-ms 700 >> "$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 200); do
        if curl -sf "http://127.0.0.1:$PORT/status" >/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "server did not start"; tail -20 "$WORK/server.log"; exit 1
}

SECONDS=0
start_server
for i in $(seq "$CLIENTS"); do
    python3 "$WORK/client.py" "$PORT" "$WORK/acked.$i" "$WORK/ping.json.gz" "$WORK/stop" &
    CLIENT_PIDS+=($!)
done
sleep 1 # let the clients get going
for kill in $(seq "$KILLS"); do
    sleep "0.$((3 + RANDOM % 7))"
    before=$(cat "$WORK"/acked.* 2>/dev/null | wc -l)
    kill -9 "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    echo "kill $kill: $before acknowledged so far"
    start_server
done
sleep 1
touch "$WORK/stop"
for pid in "${CLIENT_PIDS[@]}"; do wait "$pid"; done
CLIENT_PIDS=()
kill -TERM "$SERVER_PID"
if ! wait "$SERVER_PID"; then echo "FAIL: server did not exit 0 on SIGTERM"; tail -20 "$WORK/server.log"; exit 1; fi
SERVER_PID=
ELAPSED=$SECONDS
TORN=$(grep -c 'cut a torn tail' "$WORK/server.log" || true)
RECOVERED=$(grep -c 'recovered raw log' "$WORK/server.log" || true)

python3 - "$WORK" <<'PY'
import glob, os, struct, sys

work = sys.argv[1]
acked = set()
for path in glob.glob(os.path.join(work, "acked.*")):
    acked.update(line.strip() for line in open(path) if line.strip())
raw = os.path.join(work, "data", "raw")
stored, problems, logs = {}, [], 0
for path in sorted(glob.glob(os.path.join(raw, "**", "*"), recursive=True)):
    if os.path.isdir(path):
        continue
    name = os.path.basename(path)
    if not name.endswith(".finished"):
        problems.append(f"unfinished log after a clean stop: {name}")
        continue
    logs += 1
    data = open(path, "rb").read()
    pos = 0
    while pos < len(data):
        if len(data) - pos < 16 or data[pos] != 0x1E:
            problems.append(f"{name}: bad record at {pos}")
            break
        ip_len, path_len, data_len, _ts = struct.unpack_from("<BHIQ", data, pos + 1)
        end = pos + 16 + ip_len + path_len + data_len
        if end > len(data):
            problems.append(f"{name}: torn record at {pos}")
            break
        doc = data[pos + 16 + ip_len: pos + 16 + ip_len + path_len].decode().split("/")[0]
        stored[doc] = stored.get(doc, 0) + 1
        pos = end
missing = acked - stored.keys()
dups = sum(1 for c in stored.values() if c > 1)
print(f"acknowledged {len(acked)}, stored {len(stored)} ids in {logs} logs, "
      f"missing {len(missing)}, stored but unacknowledged {len(stored.keys() - acked)}, duplicated {dups}")
for p in problems[:10]:
    print("PROBLEM:", p)
if missing:
    print("LOST:", sorted(missing)[:10])
sys.exit(1 if missing or problems or not acked else 0)
PY
echo "PASS: $KILLS kills (durability $DURABILITY), $RECOVERED logs recovered at restart, $TORN torn tails cut, ${ELAPSED}s"
