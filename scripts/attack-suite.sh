#!/usr/bin/env bash
# Attack suite (issue 11, ingest side): drives a real `telemetry-server serve` over loopback
# (127.0.0.1 only) with each hostile input class and asserts the bound that holds it:
#   A. revision flood: N anonymous GET /histograms?revision=<random hg hash> (plus 30 KB
#      revisions): RSS grows by less than RSS_CAP_MIB, the miss cache holds at most its capacity;
#   B. gzip bombs: each ~20 KB gzip body inflating to 20 MiB, rejected: errors/ grows by at most
#      ERRORS_CAP_PER_REQUEST bytes per request;
#   C. idle, slowloris-header and slow-body connections (more of them than max_connections, and
#      in the long form more than the server's 256 file descriptors): every one is closed within
#      its timeout (+ slack, + the waves the connection cap makes) while normal POSTs keep
#      getting 200;
#   D. an unauthenticated 60 MB upload: 401 arrives after only the head was sent;
#   E. hostile dimension values (long appVersion): stored as OTHER, no long path component;
#   F. a swapped compiled artifact: another component's `.cwasm` under a component's name in
#      `cache/` is refused (counted), the component recompiled, and its own code runs.
# Then SIGTERM: the server exits 0 within its grace period.
#
#   scripts/attack-suite.sh                  # short form (< 2 min after the build)
#   LONG=1 scripts/attack-suite.sh           # long form: more requests, more connections
#   BIN=target/release/telemetry-server scripts/attack-suite.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SHARED=${TELEMETRY_SHARED_DIR:-$(cd .. && pwd)/shared}
[ -d "$SHARED/data" ] || SHARED=/work/shared
if [ -z "${BIN:-}" ]; then
    cargo build --quiet -p telemetry-server --bin telemetry-server
    BIN=${CARGO_TARGET_DIR:-$PWD/target}/debug/telemetry-server
fi
LONG=${LONG:-0}

WORK=$(mktemp -d /tmp/telemetry-attack.XXXXXX)
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill -9 "$SERVER_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

TOKEN_SHA=$(printf %s "attack-suite-token" | sha256sum | cut -d' ' -f1)
cat > "$WORK/server.toml" <<EOF
data_dir = "$WORK/data"
[server]
listen = "127.0.0.1:0"
max_connections = 64
header_read_timeout_secs = 2
idle_timeout_secs = 2
body_read_timeout_secs = 3
shutdown_grace_secs = 10
[ingest]
max_log_age_ms = 300
[convert]
scan_interval_secs = 1
flush_secs = 1
[[jobs.tokens]]
name = "attack"
sha256 = "$TOKEN_SHA"
role = "submit"
EOF

# The issue's setting: with 256 file descriptors, 300 idle sockets used to starve normal POSTs.
(ulimit -n 256 && exec "$BIN" serve --config "$WORK/server.toml") 2> "$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 200); do grep -q 'listening on' "$WORK/server.log" && break; sleep 0.1; done
ADDR=$(sed -n 's/^listening on //p' "$WORK/server.log")
[ -n "$ADDR" ] || { cat "$WORK/server.log"; exit 1; }
echo "server $SERVER_PID on $ADDR (LONG=$LONG)"

python3 - "$ADDR" "$SERVER_PID" "$WORK/data" "$SHARED/data" "$LONG" <<'PY'
import gzip, http.client, json, os, random, socket, sys, threading, time

addr, pid, data, shared, long_form = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5] == "1"
host, port = addr.rsplit(":", 1)
port = int(port)
assert host == "127.0.0.1", "loopback only"
random.seed(11)

RSS_CAP_MIB = 64                     # A: RSS growth allowed after the revision flood
ERRORS_CAP_PER_REQUEST = 96 * 1024   # B: errors/ bytes one rejected request may add (the ~20 KB bomb kept as received, base64, + fields)
SLACK = 3.0                          # C: seconds beyond a timeout before a connection must be closed
HEADER_T, IDLE_T, BODY_T = 2, 2, 3   # C: the timeouts in server.toml

def fail(msg):
    raise SystemExit("FAIL: " + msg)

def rss_mib():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    fail("no VmRSS")

def request(method, path, body=None, headers=None, timeout=15):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    text = r.read()
    conn.close()
    return r.status, text

def metrics():
    return request("GET", "/metrics")[1].decode()

def metric(name):
    for line in metrics().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            if line.startswith(name + " "):
                return float(line.split()[-1])
    return None

def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except FileNotFoundError:
                pass
    return total

ping = open(os.path.join(shared, "pings/v4.saved-session.Fx40.0a2-aurora.2015-05.uberi.json"), "rb").read()
ping_gz = gzip.compress(ping)
PING_PATH = "/submit/telemetry/{}/saved-session/Firefox/40.0a2/aurora/20150522004047"

def post_ping(doc=None, timeout=15):
    doc = doc or "%032x" % random.getrandbits(128)
    return request("POST", PING_PATH.format(doc), ping_gz, {"Content-Encoding": "gzip"}, timeout)[0]

# --- A. revision flood --------------------------------------------------------------------
n = 50_000 if long_form else 10_000
for _ in range(50):
    request("GET", "/histograms?revision=https://hg.mozilla.org/mozilla-central/rev/%040x" % random.getrandbits(160))
before = rss_mib()
deadline = time.time() + (600 if long_form else 60)
conn = http.client.HTTPConnection(host, port, timeout=15)
sent = 0
for i in range(n):
    if time.time() > deadline:
        break
    if i % 100 == 0:
        rev = "f" * 30_000           # not an hg hash: refused before any lookup
    else:
        rev = "%040x" % random.getrandbits(160)
    conn.request("GET", f"/histograms?revision=https://hg.mozilla.org/mozilla-central/rev/{rev}")
    r = conn.getresponse()
    r.read()
    if r.status != 404:
        fail(f"A: hostile revision answered {r.status}")
    sent += 1
conn.close()
after = rss_mib()
misses = metric("telemetry_revision_cache_miss_entries")
if sent < 2000:
    fail(f"A: only {sent} lookups within the time budget")
if after - before > RSS_CAP_MIB:
    fail(f"A: RSS grew {after - before:.1f} MiB after {sent} hostile lookups (cap {RSS_CAP_MIB} MiB)")
if misses is None or misses > 4096:
    fail(f"A: miss cache holds {misses} entries (capacity 4096)")
real = request("GET", "/histograms?revision=https://hg.mozilla.org/releases/mozilla-release/rev/a55c55edf302")[0]
if real != 200:
    fail(f"A: a real revision answered {real} after the flood")
print(f"A ok: {sent} hostile revision lookups, RSS {before:.1f} -> {after:.1f} MiB (cap +{RSS_CAP_MIB}), "
      f"miss cache {int(misses)} entries, real revision still 200")

# --- B. gzip bombs into errors/ --------------------------------------------------------------
bombs = 10 if long_form else 3
errors_dir = os.path.join(data, "errors")
before = dir_bytes(errors_dir)
prefix = b'{"ver": 1, "info": {"revision": "https://hg.mozilla.org/m-c/rev/'
bomb = gzip.compress(prefix + b"f" * (20 << 20), 9)
if len(bomb) > 204_800:
    fail(f"B: bomb of {len(bomb)} bytes over the body limit")
for i in range(bombs):
    status = request("POST", f"/submit/telemetry/bomb-{i}/idle-daily/Firefox/23.0.1/release/20130814063812",
                     bomb, {"Content-Encoding": "gzip"})[0]
    if status != 200:
        fail(f"B: bomb POST answered {status}")
def bomb_lines():
    found = 0
    for root, _, files in os.walk(errors_dir):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                for line in fh:
                    if line.endswith(b"\n") and b'"bomb-' in line[:20000]:
                        found += 1
    return found
deadline = time.time() + 60
while bomb_lines() < bombs:
    if time.time() > deadline:
        fail(f"B: only {bomb_lines()} of {bombs} bombs reached errors/ within 60 s")
    time.sleep(0.5)
grown = dir_bytes(errors_dir) - before
if grown > bombs * ERRORS_CAP_PER_REQUEST:
    fail(f"B: errors/ grew {grown} bytes for {bombs} bombs (cap {ERRORS_CAP_PER_REQUEST} per request)")
print(f"B ok: {bombs} gzip bombs ({len(bomb)} bytes -> 20 MiB each) added {grown} bytes to errors/ "
      f"({grown // bombs} per request, cap {ERRORS_CAP_PER_REQUEST})")

# --- C. idle, slow-header and slow-body connections -----------------------------------------
idle_n, slow_n = (300, 30) if long_form else (80, 10)   # > max_connections (64); long: > the fd limit (256)
MAX_CONNECTIONS = 64
def connect():
    s = socket.create_connection((host, port), timeout=5)
    return s
opened = time.time()
idle = []
for _ in range(idle_n):
    try:
        idle.append(connect())   # beyond the cap these wait in the backlog: still "open" sockets
    except OSError:
        break
slow_heads = [connect() for _ in range(slow_n)]
slow_bodies = [connect() for _ in range(slow_n)]
for s in slow_bodies:
    s.sendall(b"POST " + PING_PATH.format("slow").encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{")
stop_drip = threading.Event()
def drip():
    while not stop_drip.is_set():
        for s in list(slow_heads):
            try:
                s.send(b"X")
            except OSError:
                slow_heads.remove(s)
        time.sleep(0.3)
for s in slow_heads:
    s.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\nX-Drip: ")
dripper = threading.Thread(target=drip, daemon=True)
dripper.start()
# Normal POSTs keep succeeding (they may wait in the backlog until idle sockets are closed).
waves = -(-(idle_n + 2 * slow_n) // MAX_CONNECTIONS)     # the cap serves hostile sockets in waves
codes = [post_ping(timeout=waves * (max(HEADER_T, IDLE_T, BODY_T) + 1) + 10) for _ in range(10)]
if set(codes) != {200}:
    fail(f"C: normal POSTs during the attack answered {codes}")
def closed(s, within):
    s.settimeout(max(0.05, within - time.time()))
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except (socket.timeout, TimeoutError):
        return False
limit = opened + waves * (max(HEADER_T, IDLE_T, BODY_T) + 1) + SLACK   # backlog waves + own timeout
still_open = sum(not closed(s, limit) for s in idle + slow_bodies)
stop_drip.set()
dripper.join()
still_open += sum(not closed(s, limit) for s in slow_heads)
if still_open:
    fail(f"C: {still_open} hostile connections still open {time.time() - opened:.1f} s after opening")
m = metrics()
timeouts = {k: 0.0 for k in ("idle", "header", "body")}
for line in m.splitlines():
    for k in timeouts:
        if line.startswith(f'telemetry_http_timeouts_total{{kind="{k}"}}'):
            timeouts[k] = float(line.split()[-1])
if min(timeouts.values()) < 1:
    fail(f"C: timeouts not counted: {timeouts}")
print(f"C ok: {len(idle)} idle + {slow_n} slow-header + {slow_n} slow-body connections closed within "
      f"{time.time() - opened:.1f} s, 10 normal POSTs got 200; timeouts {timeouts}")

# --- D. unauthenticated 60 MB upload ---------------------------------------------------------
s = connect()
s.sendall(b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
          b"Content-Type: multipart/form-data; boundary=B\r\nContent-Length: 62914560\r\n\r\n")
s.settimeout(5)
start = time.time()
try:
    answer = s.recv(4096)
except (socket.timeout, TimeoutError):
    fail("D: no answer to an unauthenticated upload whose body was not sent")
if not answer.startswith(b"HTTP/1.1 401"):
    fail(f"D: unauthenticated upload answered {answer[:60]!r}")
s.close()
print(f"D ok: 401 for an unauthenticated 60 MB upload after {time.time() - start:.2f} s, body never sent")

# --- E. hostile dimension values --------------------------------------------------------------
import struct
log = open(os.path.join(shared, "seed/worker-test-data/telemetry1.log"), "rb").read()
if log[0] != 0x1E:
    fail("E: the seed log does not start with a record")
plen, dlen = struct.unpack_from("<HI", log, 1)       # v1 record: 0x1E, u16 path, u32 data, u64 time
path = log[15:15 + plen].decode()
body = log[15 + plen:15 + plen + dlen]
doc = json.loads(gzip.decompress(body))
doc["info"]["appVersion"] = "9" * 300
doc["info"]["appBuildID"] = "2013 ../../x"
status = request("POST", "/submit/telemetry/" + path.replace(path.split("/")[0], "dims-1", 1),
                 gzip.compress(json.dumps(doc).encode()))[0]
if status != 200:
    fail(f"E: answered {status}")
storage = os.path.join(data, "storage")
deadline = time.time() + 60
found = []
while time.time() < deadline and not found:
    for root, dirs, files in os.walk(storage):
        for name in dirs + files:
            if len(name) > 100:
                fail(f"E: a {len(name)}-byte path component under storage/")
        if "OTHER" in root and "idle_daily" in root:
            found += [f for f in files if not f.endswith(".partial")]
    time.sleep(0.5)
if not found:
    fail("E: the ping with hostile dimensions was not stored under OTHER within 60 s")
print("E ok: a 300-byte appVersion and a build id with '/' stored as OTHER")

# --- F. a swapped compiled artifact -----------------------------------------------------------
TOKEN = {"Authorization": "Bearer attack-suite-token"}
guests = os.path.join(os.getcwd(), "target", "jobs")

def multipart(parts):
    body = b""
    for name, content, ctype in parts:
        body += (b"--B\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                 b"Content-Type: %s\r\n\r\n" % (name.encode(), name.encode(), ctype.encode()))
        body += content + b"\r\n"
    return body + b"--B--\r\n", dict(TOKEN, **{"Content-Type": "multipart/form-data; boundary=B"})

def upload(guest):
    body, headers = multipart([("component", open(os.path.join(guests, guest + ".wasm"), "rb").read(),
                                "application/wasm")])
    status, text = request("POST", "/api/v1/components", body, headers, timeout=300)
    if status not in (200, 201):
        fail(f"F: uploading {guest} answered {status}: {text[:200]!r}")
    return json.loads(text)["sha256"]

counter, other = upload("simple-counter-rust"), upload("os-distribution-rust")
cache = os.path.join(data, "cache")
if os.stat(cache).st_mode & 0o077:
    fail(f"F: cache/ is mode {os.stat(cache).st_mode & 0o777:o}, not private")
refusals_before = metric("telemetry_jobs_cache_artifact_refusals_total") or 0
os.replace(os.path.join(cache, other + ".cwasm"), os.path.join(cache, counter + ".cwasm"))
manifest = {"name": "swapped", "component": counter,
            "filter": json.load(open(os.path.join(shared, "seed/mapreduce-filters/examples-v2/filter_include_all.json")))}
body, headers = multipart([("manifest", json.dumps(manifest).encode(), "application/json")])
status, text = request("POST", "/api/v1/jobs", body, headers, timeout=300)
if status != 202:
    fail(f"F: submitting by hash answered {status}: {text[:200]!r}")
job = json.loads(text)["id"]
deadline = time.time() + 120
while time.time() < deadline:
    state = json.loads(request("GET", f"/api/v1/jobs/{job}", headers=TOKEN)[1])["state"]
    if state in ("succeeded", "failed", "cancelled"):
        break
    time.sleep(0.3)
if state != "succeeded":
    fail(f"F: the job ended {state}")
status, result = request("GET", f"/api/v1/jobs/{job}/result", headers=TOKEN)
lines = result.decode().splitlines()
# simple-counter's values are `records=N duplicates=M`; os-distribution's are plain counts.
if status != 200 or not lines or not all("records=" in line for line in lines):
    fail(f"F: the job did not run its own component: {status} {result[:200]!r}")
refusals = (metric("telemetry_jobs_cache_artifact_refusals_total") or 0) - refusals_before
if refusals != 1:
    fail(f"F: {refusals} artifact refusals counted, expected 1")
print(f"F ok: a swapped .cwasm was refused (counted), recompiled, and the job ran its own code: {lines[0]!r}")
PY

kill -TERM "$SERVER_PID"
for _ in $(seq 150); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "FAIL: server still running 15 s after SIGTERM"; exit 1
fi
wait "$SERVER_PID" && rc=0 || rc=$?
SERVER_PID=
[ "$rc" = 0 ] || { echo "FAIL: server exited $rc after SIGTERM"; tail -20 "$WORK/server.log"; exit 1; }
echo "attack-suite: all attacks bounded (server exited 0 after SIGTERM)"
