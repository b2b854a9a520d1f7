#!/usr/bin/env bash
# Benchmarks os-distribution (Rust, C, JavaScript and Python components) against the same job native in the host and
# against bare decompression, with 1 and 2 workers, on gen-pings.py data in zstd storage.
# JOBS_BENCH_PINGS (default 3000) and JOBS_BENCH_RUNS (default 5) size it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-guests.sh
cargo bench -p telemetry-server --bench jobs
