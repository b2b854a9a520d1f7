#!/usr/bin/env bash
# Soak test (scripts/soak.py): steady mixed real pings with live conversion and export to s3s-fs,
# checking no errors, flat RSS after warm-up (floors within ±10 %), bounded backlog, and every acknowledged id stored or
# rejected with a reason. CI runs the 60 s form; by hand, ten minutes on the release build:
#   DURATION=600 RATE=2200 BIN=target/release/telemetry-server bash scripts/soak.sh --raw-logs drop
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-$PWD/target/debug/telemetry-server}"
exec python3 scripts/soak.py --bin "$BIN" --duration "${DURATION:-60}" --rate "${RATE:-100}" "$@"
