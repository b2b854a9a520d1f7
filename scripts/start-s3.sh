#!/usr/bin/env bash
# Starts a local S3-compatible server (s3s-fs) for manual runs of `export` and `job run --data s3://…`,
# and prints the environment to use with it. Objects are plain files under DIR.
#
#   scripts/start-s3.sh [DIR] [PORT]      (defaults: ./s3-data, 8014)
#   eval "$(scripts/start-s3.sh /tmp/s3 9000 | tail -n 4)"   # to export the variables
#
# Stop it with: kill $(cat DIR/.s3s-fs.pid)
set -euo pipefail
dir=${1:-./s3-data}
port=${2:-8014}
if ! command -v s3s-fs >/dev/null 2>&1; then
  echo "s3s-fs not found: cargo install --locked s3s-fs@0.14.1 --features binary (or scripts/install-deps.sh)" >&2
  exit 2
fi
mkdir -p "$dir"
s3s-fs --host 127.0.0.1 --port "$port" --access-key AKIDTEST --secret-key SECRETTEST "$dir" \
  >"$dir/.s3s-fs.log" 2>&1 &
echo $! >"$dir/.s3s-fs.pid"
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "s3s-fs did not start; see $dir/.s3s-fs.log" >&2; exit 1; }
echo "s3s-fs (pid $(cat "$dir/.s3s-fs.pid")) serving $dir on http://127.0.0.1:$port" >&2
echo "export AWS_ENDPOINT_URL=http://127.0.0.1:$port"
echo "export AWS_ACCESS_KEY_ID=AKIDTEST"
echo "export AWS_SECRET_ACCESS_KEY=SECRETTEST"
echo "export AWS_REGION=us-east-1"
