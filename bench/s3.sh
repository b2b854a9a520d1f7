#!/usr/bin/env bash
# S3 export MB/s and job-on-S3 vs job-on-local time, same data, one run, against a real s3s-fs
# started on loopback by the bench. Knobs: S3_BENCH_PINGS (2000), S3_BENCH_RUNS (3), S3_BENCH_BIG_MB (256).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v s3s-fs >/dev/null 2>&1 || bash scripts/install-deps.sh
[ -f target/jobs/os-distribution-rust.wasm ] || bash scripts/build-guests.sh
cargo bench -p telemetry-server --bench s3 2>&1 | grep -v '^\s*Compiling\|^\s*Finished\|^\s*Running'
