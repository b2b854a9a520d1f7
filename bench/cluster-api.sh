# The `api` mode of bench/cluster.sh (sourced by it after the bucket is up: $BIN, $JOB, $work,
# $port, $RUNS, $WORKERS, $PINGS, $files, $mb, free_port and pids_to_stop come from there).
# A coordinator with 0, 1, 2 workers; the same job submitted over the API each time.

# A second bucket with two files: the tiny job whose wall time is mostly planning.
mkdir -p "$work/s3/tiny/v2"
find "$work/s3/bench/v2" -type f | sort | sed -n 1,2p | while read -r f; do
  rel=${f#"$work/s3/bench/v2/"}
  mkdir -p "$work/s3/tiny/v2/$(dirname "$rel")"
  cp "$f" "$work/s3/tiny/v2/$rel"
done

token_entry() { # NAME ROLE -> the token on stdout, its [[jobs.tokens]] entry appended to tokens.toml
  "$BIN" token new --name "$1" --role "$2" > "$work/token.$1"
  sed -n '/^\[\[jobs.tokens\]\]/,$p' "$work/token.$1" >> "$work/tokens.toml"
  head -1 "$work/token.$1"
}
: > "$work/tokens.toml"
ADMIN=$(token_entry bench admin)
token_entry node worker > "$work/worker.token"
chmod 600 "$work/worker.token"

source_entry() { # NAME BUCKET
  cat <<TOML
[jobs.sources.$1]
kind = "s3"
bucket = "$2"
prefix = "v2/"
endpoint = "http://127.0.0.1:$port"
region = "us-east-1"
access_key_id = "BENCHKEY"
secret_access_key = "BENCHSECRET"
TOML
}
{
  echo "data_dir = '$work/coordinator'"
  printf '[server]\nlisten = "127.0.0.1:0"\n[convert]\nenabled = false\n'
  printf '[cluster]\ndistribute = true\nheartbeat_secs = 1\nlost_after_secs = 3\n'
  cat "$work/tokens.toml"
  source_entry archive bench
  source_entry tiny tiny
} > "$work/server.toml"

"$BIN" serve --config "$work/server.toml" 2> "$work/server.log" &
pids_to_stop+=($!)
for _ in $(seq 100); do grep -q 'listening on' "$work/server.log" && break; sleep 0.1; done
URL=http://$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$work/server.log" | head -1)
[ "$URL" != http:// ] || { cat "$work/server.log"; exit 1; }

alive() { curl -sf -H "Authorization: Bearer $ADMIN" "$URL/api/v1/cluster" | python3 -c 'import json,sys; print(json.load(sys.stdin)["alive"])'; }
start_worker() {
  local i=$1
  mkdir -p "$work/worker$i"
  "$BIN" worker --coordinator "$URL" --token-file "$work/worker.token" --listen 127.0.0.1:0 \
    --data-dir "$work/worker$i" --workers "$WORKERS" 2> "$work/worker$i.log" &
  pids_to_stop+=($!)
}

# One job over SOURCE, submitted and polled until final: prints "wall_s bytes_read processes".
api_job() {
  local source=$1 id start end
  printf '{"name": "bench", "source": "%s", "workers": %s, "column_cache": false}' "$source" "$WORKERS" > "$work/manifest.json"
  start=$(date +%s.%N)
  id=$(curl -sf -H "Authorization: Bearer $ADMIN" -F "manifest=<$work/manifest.json;type=application/json" \
    -F "component=@$JOB" "$URL/api/v1/jobs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  while :; do
    curl -sf -H "Authorization: Bearer $ADMIN" "$URL/api/v1/jobs/$id" > "$work/job.json"
    python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["state"] in ("succeeded","failed","cancelled") else 1)' "$work/job.json" && break
    sleep 0.02
  done
  end=$(date +%s.%N)
  python3 - "$work/job.json" "$start" "$end" <<'PY'
import json, sys
job = json.load(open(sys.argv[1]))
assert job["state"] == "succeeded", job
cost = job["cost"]
processes = cost.get("cluster", {}).get("processes", 1)
assert cost["files_read"] == cost["files_matched"], cost
print(f"{float(sys.argv[3]) - float(sys.argv[2]):.3f} {cost['bytes_read']} {processes}")
PY
}
median() { sort -n | sed -n "$(( (RUNS + 1) / 2 ))p"; }

api_job archive > /dev/null # compile and cache the component once, outside the timings
echo "data: $PINGS pings, $files partition files, ${mb} MB compressed in s3s-fs; $RUNS runs each, median; $WORKERS worker thread(s) per process; $(nproc) cores"
echo "API jobs (submit -> succeeded, polled every 20 ms) on a coordinator with N workers"
printf '%-8s %10s %10s %10s %10s %14s\n' workers processes wall_s MB/s ratio tiny_job_ms
base=
declare -A tiny
for n in 0 1 2; do
  [ "$n" -gt 0 ] && start_worker "$n"
  for _ in $(seq 200); do [ "$(alive)" = "$n" ] && break; sleep 0.1; done
  [ "$(alive)" = "$n" ] || { echo "expected $n alive workers"; cat "$work"/worker*.log; exit 1; }
  line=$(for _ in $(seq "$RUNS"); do api_job archive; done | median)
  read -r wall bytes processes <<<"$line"
  tiny[$n]=$(for _ in $(seq "$RUNS"); do api_job tiny; done | median | cut -d' ' -f1)
  [ -z "$base" ] && base=$wall
  printf '%-8s %10s %10s %10s %10s %14s\n' "$n" "$processes" "$wall" \
    "$(python3 -c "print(f'{$bytes / 1e6 / $wall:.1f}')")" "$(python3 -c "print(f'{$base / $wall:.2f}')")" \
    "$(python3 -c "print(f'{${tiny[$n]} * 1000:.0f}')")"
done
echo "planning overhead per job (tiny job, 2 workers - 0 workers): $(python3 -c "print(f'{(${tiny[2]} - ${tiny[0]}) * 1000:.0f}')") ms"
