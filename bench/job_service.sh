#!/usr/bin/env bash
# Job service on the real server process: upload-to-result time of a small job with a warm compile
# cache, and ingest p50/p99 (wrk, 32 connections, 19 KB gzip ping) with no job, with a heavy job
# under the default core share (cores-1 workers, nice 19, SCHED_IDLE), and with the job on every core at nice 0.
#   bash bench/job_service.sh
#   JOB_BENCH_SECS=5 JOB_BENCH_RUNS=20 JOB_BENCH_DURABILITY=none bash bench/job_service.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
bash scripts/build-guests.sh
cargo bench -p telemetry-server --bench job_service
