#!/usr/bin/env bash
# The whole test suite: checks formatting, installs what it needs, builds the guest jobs from source,
# runs every test
# (cargo tests, then the crash test, the disk-full test and the attack suite against the real
# server binary, the deploy/ checks, the dashboard in headless Chromium and the 60 s soak).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== format check (cargo fmt) =="
cargo fmt --all -- --check
bash scripts/install-deps.sh
bash scripts/build-guests.sh
# Lint while building: clippy-driver compiles this workspace's crates (what `cargo clippy`
# runs, with codegen), so the lints cost no separate `cargo check` of all ~440 dependencies.
# Warnings are errors. A later plain `cargo build` rebuilds only the host crate.
lint=(env RUSTC_WORKSPACE_WRAPPER="$(command -v clippy-driver)"
  CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__")
echo "== build and lint (clippy on every target, warnings are errors) =="
"${lint[@]}" cargo build --workspace --all-targets
mkdir -p target
"${lint[@]}" cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.txt
echo "== the Rust guest SDK, natively (export_job! infers combine/reduce: tests/infer_phases.rs) =="
CARGO_TARGET_DIR="$PWD/target/sdk-tests" cargo test -q --locked --manifest-path guest-sdk/rust/Cargo.toml

echo "== crash test (kill -9 under load, zero acknowledged losses) =="
BIN="$PWD/target/debug/telemetry-server" KILLS="${KILLS:-10}" bash scripts/crash-test.sh
echo "== disk-full test (507, no corrupt file, recovery) =="
BIN="$PWD/target/debug/telemetry-server" bash scripts/disk-full-test.sh
echo "== attack suite (short form: bounded memory, disk and time under hostile input) =="
BIN="$PWD/target/debug/telemetry-server" bash scripts/attack-suite.sh
echo "== deploy check (systemd-analyze verify, promtool check rules, the image's layout) =="
BIN="$PWD/target/debug/telemetry-server" bash scripts/check-deploy.sh
echo "== the dashboard in headless Chromium (real pings, a finished job, desktop and phone widths) =="
python3 scripts/dashboard-browser-test.py --bin "$PWD/target/debug/telemetry-server"
echo "== soak, 60 s form (live conversion and export to s3s-fs; no errors, flat RSS, nothing lost) =="
BIN="$PWD/target/debug/telemetry-server" bash scripts/soak.sh
echo "test.sh: all suites passed"
