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
# JavaScript guests: componentize-qjs (QuickJS, pinned by guest-sdk/js/package-lock.json).
# A JavaScript module must export `job` (guest-sdk/js/check-job-module.mjs checks it first).
# Python guests: componentize-py (pinned by guest-sdk/python/requirements.txt). Both toolchains are
# installed into target/guest-tools/ by scripts/install-deps.sh; both generate their bindings from
# wit/ and stub out WASI, so the components import only `telemetry:job/host` and `histograms`. A JS or Python
# guest is rebuilt only when its inputs (wit/, its SDK and pins, its job directory) change.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/target/jobs"
export CARGO_TARGET_DIR="$ROOT/target/guests"
mkdir -p "$OUT" "$CARGO_TARGET_DIR"

RUST_JOBS=(os-distribution histogram-aggregate simple-counter simple-counter-v0-1 hostile)
C_JOBS=(os-distribution histogram-aggregate)
JS_JOBS=(os-distribution histogram-aggregate hostile)
PY_JOBS=(os-distribution histogram-aggregate hostile)
# Test guests under host/tests/guests/ (JavaScript and Python): SDK misuse the host must report.
TEST_JOBS=(bad-return)
TOOLS="$ROOT/target/guest-tools"

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
    clang-19 --target=wasm32-wasi -mexec-model=reactor -O2 -Wl,--strip-debug -I "$bind" -I "$ROOT/guest-sdk/c" \
      "$bind"/mapreduce.c "$dir"/*.c "$bind"/mapreduce_component_type.o -o "$core"
    wasm-tools component new "$core" --adapt "wasi_snapshot_preview1=$adapter" -o "$OUT/$j-c.wasm"
    log "  $OUT/$j-c.wasm ($(stat -c %s "$OUT/$j-c.wasm") bytes)"
  done
}

# --- JavaScript and Python guests --------------------------------------------------------------
# SHA-256 over the paths and contents of every file under the given directories.
inputs_hash() {
  find "$@" -type f ! -path '*/__pycache__/*' ! -path '*/node_modules/*' -print0 | sort -z \
    | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}

# Runs `build OUTPUT` for guest NAME unless target/jobs/NAME.wasm was built from inputs with this
# hash; the output appears atomically, with the hash beside it in NAME.inputs.
build_if_changed() {
  local name="$1" hash="$2"
  shift 2
  if [ -f "$OUT/$name.wasm" ] && [ "$(cat "$OUT/$name.inputs" 2>/dev/null)" = "$hash" ]; then
    log "  $OUT/$name.wasm up to date"
    return
  fi
  "$@" "$OUT/$name.wasm.tmp"
  mv "$OUT/$name.wasm.tmp" "$OUT/$name.wasm"
  echo "$hash" >"$OUT/$name.inputs"
  log "  $OUT/$name.wasm ($(stat -c %s "$OUT/$name.wasm") bytes)"
}

# Fails unless scripts/install-deps.sh installed toolchain DIR from the current PIN file.
need_tool() {
  local dir="$1" pin="$2"
  [ "$(cat "$TOOLS/$dir/.stamp" 2>/dev/null)" = "$(sha256sum "$pin" | cut -d' ' -f1)" ] \
    || { log "$TOOLS/$dir missing or older than $pin: run scripts/install-deps.sh"; exit 1; }
}

qjs() { # DIR OUTPUT (DIR holds job.js)
  # A module without the `job` export would build and then trap without a word: refuse it here.
  node "$ROOT/guest-sdk/js/check-job-module.mjs" "$1/job.js"
  "$TOOLS/js/node_modules/.bin/componentize-qjs" --wit wit -n mapreduce --module-root "$ROOT" \
    --js "$1/job.js" --sync --stub-wasi -o "$2" >/dev/null
}

build_js() {
  need_tool js guest-sdk/js/package-lock.json
  for j in "${JS_JOBS[@]}"; do
    build_if_changed "$j-js" "$(inputs_hash wit guest-sdk/js "example-jobs/$j/js")" qjs "example-jobs/$j/js"
  done
  for j in "${TEST_JOBS[@]}"; do
    build_if_changed "$j-js" "$(inputs_hash wit guest-sdk/js "host/tests/guests/$j/js")" qjs "host/tests/guests/$j/js"
  done
}

componentize_py() { # DIR OUTPUT (DIR holds app.py)
  PYTHONDONTWRITEBYTECODE=1 "$TOOLS/py/bin/componentize-py" -d wit -w mapreduce componentize app \
    -p "$1" -p guest-sdk/python -o "$2" --stub-wasi >/dev/null
}

build_py() {
  need_tool py guest-sdk/python/requirements.txt
  # componentize-py takes ~15 s a guest, mostly single-threaded: build them side by side.
  local pids=()
  for j in "${PY_JOBS[@]}"; do
    build_if_changed "$j-py" "$(inputs_hash wit guest-sdk/python "example-jobs/$j/py")" componentize_py "example-jobs/$j/py" &
    pids+=($!)
  done
  for j in "${TEST_JOBS[@]}"; do
    build_if_changed "$j-py" "$(inputs_hash wit guest-sdk/python "host/tests/guests/$j/py")" componentize_py "host/tests/guests/$j/py" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
}

# `build-guests.sh js DIR OUTPUT` / `py DIR OUTPUT`: build one JavaScript or Python job directory.
case "${1:-}" in
  js) need_tool js guest-sdk/js/package-lock.json; qjs "$2" "$3"; exit ;;
  py) need_tool py guest-sdk/python/requirements.txt; componentize_py "$2" "$3"; exit ;;
esac

build_rust
build_c
build_js
build_py
log "done"
