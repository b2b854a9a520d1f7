#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds the guest jobs from source, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
bash scripts/build-guests.sh
cargo build --bins
cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.txt
