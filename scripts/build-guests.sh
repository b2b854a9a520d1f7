#!/usr/bin/env bash
# Builds every example job and hostile test guest from source into target/jobs/<name>.wasm
# (WebAssembly components for the `telemetry:job/mapreduce` world in wit/).
#
# Rust guests: one cargo build of the example-jobs workspace for wasm32-unknown-unknown (shared
# target dir target/guests), then `wasm-tools component new`. Tries the plain rustup target first;
# where `rustup target add` does not work (it hangs on this kind of machine) falls back to
# Debian's rustc-web 1.96 with -Zbuild-std (std built once, cached in target/guests).
# C guests: wit-bindgen C bindings + clang-19 --target=wasm32-wasi + the WASI preview1 reactor
# adapter (wasmtime 48.0.8's, fetched with cargo).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/target/jobs"
export CARGO_TARGET_DIR="$ROOT/target/guests"
mkdir -p "$OUT" "$CARGO_TARGET_DIR"

RUST_JOBS=(os-distribution histogram-aggregate simple-counter hostile)
C_JOBS=(os-distribution)

log() { echo "build-guests: $*" >&2; }

# --- tools -------------------------------------------------------------------------------------
command -v wasm-tools >/dev/null || { log "wasm-tools missing: run scripts/install-deps.sh"; exit 1; }
if ! command -v wit-bindgen >/dev/null; then
  log "installing wit-bindgen-cli (~5 min, once)"
  cargo install -q --locked wit-bindgen-cli@0.63.0
fi

# --- Rust guests -------------------------------------------------------------------------------
rust_plain_route_works() {
  # rustup's own target, if it is (or can quickly be) installed. GUEST_RUST_ROUTE=build-std forces
  # the fallback.
  [ "${GUEST_RUST_ROUTE:-}" = build-std ] && return 1
  command -v rustup >/dev/null || return 1
  local sysroot
  sysroot="$(rustc --print sysroot)"
  [ -d "$sysroot/lib/rustlib/wasm32-unknown-unknown/lib" ] && return 0
  timeout 20 rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || return 1
  [ -d "$sysroot/lib/rustlib/wasm32-unknown-unknown/lib" ]
}

build_rust() {
  local manifest="$ROOT/example-jobs/Cargo.toml"
  local pkgs=()
  for j in "${RUST_JOBS[@]}"; do pkgs+=(-p "$j"); done
  if rust_plain_route_works; then
    log "Rust guests: rustup target wasm32-unknown-unknown"
    cargo build -q --manifest-path "$manifest" --target wasm32-unknown-unknown --release "${pkgs[@]}"
  else
    log "Rust guests: Debian rustc-web + -Zbuild-std (first build compiles std, ~80 s)"
    local src=/usr/src/rustc-1.96.0/library
    [ -d "$src" ] || { log "$src missing: run scripts/install-deps.sh"; exit 1; }
    local rustlib_bin
    rustlib_bin="$(ls -d "$HOME"/.rustup/toolchains/*/lib/rustlib/x86_64-unknown-linux-gnu/bin 2>/dev/null | head -1 || true)"
    (
      export __CARGO_TESTS_ONLY_SRC_ROOT="$src"
      export RUSTC_BOOTSTRAP=1
      export PATH="${rustlib_bin:+$rustlib_bin:}/usr/bin:$PATH"
      export RUSTC=/usr/bin/rustc
      unset RUSTUP_TOOLCHAIN
      /usr/bin/cargo build -q --manifest-path "$manifest" -Zbuild-std=std,panic_abort \
        --target wasm32-unknown-unknown --release "${pkgs[@]}"
    )
  fi
  for j in "${RUST_JOBS[@]}"; do
    local core="$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/${j//-/_}.wasm"
    wasm-tools component new "$core" -o "$OUT/$j-rust.wasm"
    log "  $OUT/$j-rust.wasm ($(stat -c %s "$OUT/$j-rust.wasm") bytes)"
  done
}

# --- C guests ----------------------------------------------------------------------------------
adapter_path() {
  # Fetch the crate that ships wasmtime's preview1 reactor adapter and print the file's path.
  local manifest="$ROOT/example-jobs/c-adapter/Cargo.toml"
  cargo fetch -q --manifest-path "$manifest"
  local dir
  dir="$(cargo metadata -q --format-version 1 --manifest-path "$manifest" \
    | python3 -c 'import json,sys; m=json.load(sys.stdin); print(next(p["manifest_path"] for p in m["packages"] if p["name"]=="wasi-preview1-component-adapter-provider"))')"
  echo "$(dirname "$dir")/artefacts/wasi_snapshot_preview1.reactor.wasm"
}

build_c() {
  local adapter bind
  adapter="$(adapter_path)"
  bind="$CARGO_TARGET_DIR/c-bindings"
  rm -rf "$bind" && mkdir -p "$bind"
  wit-bindgen c "$ROOT/wit" --world mapreduce --out-dir "$bind" >/dev/null
  for j in "${C_JOBS[@]}"; do
    local dir="$ROOT/example-jobs/$j/c" core="$CARGO_TARGET_DIR/$j-c.core.wasm"
    clang-19 --target=wasm32-wasi -mexec-model=reactor -O2 -Wl,--strip-debug -I "$bind" \
      "$bind"/mapreduce.c "$dir"/*.c "$bind"/mapreduce_component_type.o -o "$core"
    wasm-tools component new "$core" --adapt "wasi_snapshot_preview1=$adapter" -o "$OUT/$j-c.wasm"
    log "  $OUT/$j-c.wasm ($(stat -c %s "$OUT/$j-c.wasm") bytes)"
  done
}

build_rust
build_c
log "done"
