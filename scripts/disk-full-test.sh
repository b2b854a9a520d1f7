#!/usr/bin/env bash
# Disk-full test of `telemetry-server serve` on a real full file system (a small tmpfs; needs root):
# 1. fill most of the tmpfs, then submit 19 KB gzip pings until the server answers 507;
# 2. check every later submission also gets 507, the raw log holds only complete records and
#    every acknowledged id, and /metrics counted the write errors;
# 3. free the space: submissions get 200 again;
# 4. SIGTERM: exit 0, every log `.finished`, complete, and holding every acknowledged id.
#
#   scripts/disk-full-test.sh            # ~5 s after the build
#   BIN=target/release/telemetry-server scripts/disk-full-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "FAIL: needs root to mount a tmpfs"; exit 1; }
SHARED=${TELEMETRY_SHARED_DIR:-$(cd .. && pwd)/shared}
PING=$SHARED/data/pings/v4.saved-session.Fx40.0a2-aurora.2015-05.uberi.json
DURABILITY=${DURABILITY:-batch}
if [ -z "${BIN:-}" ]; then
    cargo build --quiet -p telemetry-server --bin telemetry-server
    BIN=$PWD/target/debug/telemetry-server
fi

WORK=$(mktemp -d /tmp/telemetry-diskfull.XXXXXX)
DATA=$WORK/data
mkdir "$DATA"
mount -t tmpfs -o size=8m tmpfs "$DATA"
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill -9 "$SERVER_PID" 2>/dev/null
    umount "$DATA" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

gzip -6 -c "$PING" > "$WORK/ping.json.gz"
# Leave ~1.5 MB free: room for ~70 pings, then ENOSPC.
dd if=/dev/zero of="$DATA/filler" bs=1M count=6 status=none
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$DATA" --durability "$DURABILITY" --convert false \
    --max-log-age-ms 600000 2> "$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 100); do grep -q 'listening on' "$WORK/server.log" && break; sleep 0.1; done
ADDR=$(sed -n 's/^listening on //p' "$WORK/server.log")
[ -n "$ADDR" ] || { cat "$WORK/server.log"; exit 1; }

cat > "$WORK/check.py" <<'PY'
"""`load ADDR BODY DATA ACKED`: steps 1-3; `verify DATA ACKED`: step 4 after the server exited."""
import glob, http.client, os, struct, sys, uuid

mode = sys.argv[1]
if mode == "load":
    addr, body_path, data, acked_path = sys.argv[2:6]
    host, port = addr.rsplit(":", 1)
    body = open(body_path, "rb").read()
else:
    data, acked_path = sys.argv[2:4]
acked = set()

def post():
    doc = str(uuid.uuid4())
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", f"/submit/telemetry/{doc}/saved-session/Firefox/40.0a2/aurora/20150522004047", body)
    r = conn.getresponse()
    text = r.read().decode()
    conn.close()
    if r.status == 200:
        acked.add(doc)
    return r.status, text

def metric(name):
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise SystemExit(f"FAIL: {name} not in /metrics")

def check_logs(finished_only):
    """Every raw log is a run of complete v2 records; returns the stored ids."""
    stored = set()
    for path in glob.glob(os.path.join(data, "raw", "*")):
        if os.path.isdir(path):
            continue
        if finished_only and not path.endswith(".finished"):
            raise SystemExit(f"FAIL: unfinished log after SIGTERM: {path}")
        blob = open(path, "rb").read()
        pos = 0
        while pos < len(blob):
            if len(blob) - pos < 16 or blob[pos] != 0x1E:
                raise SystemExit(f"FAIL: {path}: not a record at {pos}")
            ip, plen, dlen, _ = struct.unpack_from("<BHIQ", blob, pos + 1)
            end = pos + 16 + ip + plen + dlen
            if end > len(blob):
                raise SystemExit(f"FAIL: {path}: partial record at {pos} (file {len(blob)} bytes)")
            stored.add(blob[pos + 16 + ip: pos + 16 + ip + plen].decode().split("/")[0])
            pos = end
    return stored

def fail(msg):
    raise SystemExit("FAIL: " + msg)

if mode == "verify":
    acked = set(open(acked_path).read().split())
    stored = check_logs(finished_only=True)
    if not acked <= stored:
        fail(f"{len(acked - stored)} acknowledged ids missing after shutdown")
    print(f"after SIGTERM: all {len(acked)} acknowledged ids in complete, finished logs")
    sys.exit(0)

# 1. fill the disk
codes = []
for _ in range(1000):
    code, text = post()
    codes.append(code)
    if code == 507:
        print(f"507 after {len(acked)} acknowledged: {text!r}")
        break
    if code != 200:
        fail(f"unexpected {code} {text!r} before the disk was full")
else:
    fail("never got 507")
# 2. stays full, nothing corrupt, nothing acknowledged lost
later = [post()[0] for _ in range(10)]
if set(later) != {507}:
    fail(f"expected only 507 while full, got {later}")
errors = metric("telemetry_ingest_write_errors_total")
if errors < 11:
    fail(f"write errors counted {errors}, expected >= 11")
stored = check_logs(finished_only=False)
if not acked <= stored:
    fail(f"{len(acked - stored)} acknowledged ids missing while full")
print(f"while full: {len(later)} more 507s, {int(errors)} write errors counted, raw log complete, "
      f"disk free {int(metric('telemetry_disk_free_bytes'))} bytes")
# 3. space returns
os.remove(os.path.join(data, "filler"))
again = [post()[0] for _ in range(20)]
if set(again) != {200}:
    fail(f"expected 200 after freeing space, got {again}")
print(f"after freeing space: {len(again)} x 200")
open(acked_path, "w").write("\n".join(sorted(acked)))
PY
python3 "$WORK/check.py" load "$ADDR" "$WORK/ping.json.gz" "$DATA" "$WORK/acked"
# 4. drain
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" && STATUS=0 || STATUS=$?
SERVER_PID=
[ "$STATUS" = 0 ] || { echo "FAIL: server exit status $STATUS"; tail "$WORK/server.log"; exit 1; }
python3 "$WORK/check.py" verify "$DATA" "$WORK/acked"
echo "PASS: disk full → 507, no partial record, 200 again once space returned, clean exit"
