#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input (cargo-fuzz / libFuzzer, nightly) for a bounded time
# per target and prints how many inputs each one ran. Not part of the CI test command: CI runs
# the same target bodies (telemetry_server::fuzzing) deterministically in `cargo test` through
# host/tests/all/fuzz_smoke.rs. A crash found here: fix it, then copy the input from fuzz/artifacts/
# into host/tests/fuzz_regressions/<target>/ so the smoke test keeps checking it.
#
#   scripts/fuzz.sh                      # every target, 60 s each
#   FUZZ_SECONDS=300 scripts/fuzz.sh rawlog_reader
#   FUZZ_RUNS=10000000 scripts/fuzz.sh     # every target until 10 million inputs have run
#   FUZZ_RUNS=10000000 FUZZ_MAX_LEN=1024 scripts/fuzz.sh rawlog_reader   # shorter inputs, more of them
#
# Environment: FUZZ_SECONDS (per target, default 60), FUZZ_RUNS (per target: stop after this many
# inputs instead of after FUZZ_SECONDS), FUZZ_MAX_LEN (largest input in bytes; default per target
# below), FUZZ_SANITIZER (address | none, default address), TELEMETRY_SHARED_DIR (the shared data,
# default ../shared beside the repository).
# Seed corpora come from the shared data and the committed regression inputs, and are kept in
# fuzz/corpus/<target> (not committed).
# Exit status: 0 when every target ran clean, 1 when one found a crash (see fuzz/artifacts/).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${FUZZ_SECONDS:-60}
runs=${FUZZ_RUNS:-}
# Either a time bound or a count of inputs; libFuzzer stops at whichever it is given.
if [[ -n $runs ]]; then
    [[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: FUZZ_RUNS must be a positive integer" >&2; exit 2; }
    bound=(-runs="$runs")
else
    bound=(-max_total_time="$seconds")
fi
sanitizer=${FUZZ_SANITIZER:-address}
shared=${TELEMETRY_SHARED_DIR:-$root/../shared}
data=$shared/data
all_targets=(rawlog_reader histograms_parser converter)
targets=("${@:-${all_targets[@]}}")

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: needs the nightly toolchain (rustup toolchain install nightly)" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
[[ -d $data ]] || { echo "fuzz.sh: shared data not found at $data" >&2; exit 2; }

# Largest input per target: a whole raw record, a whole Histograms.json, a whole ping.
declare -A max_len=([rawlog_reader]=262144 [histograms_parser]=524288 [converter]=1048576)
if [[ -n ${FUZZ_MAX_LEN:-} ]]; then
    [[ $FUZZ_MAX_LEN =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: FUZZ_MAX_LEN must be a positive integer" >&2; exit 2; }
    for target in "${!max_len[@]}"; do max_len[$target]=$FUZZ_MAX_LEN; done
fi

seed_corpus() {
    local target=$1 dir=$root/fuzz/corpus/$1
    mkdir -p "$dir"
    if [[ -d $root/host/tests/fuzz_regressions/$target ]]; then
        cp "$root/host/tests/fuzz_regressions/$target"/* "$dir"/ 2>/dev/null || true
    fi
    case $target in
    rawlog_reader)
        cp "$data"/pings/rawlog-v2.*.finished "$data"/seed/worker-test-data/telemetry1.log \
            "$data"/seed/test/unicode.v1.packed "$dir"/ ;;
    histograms_parser)
        cp "$data"/histograms/*.json "$data"/seed/worker-test-data/*.FIREFOX_AURORA_*_BASE \
            "$data"/seed/worker-test-data/{invalid,invalid_kind,invalid_schema,missing_kind}.json "$dir"/ ;;
    converter)
        cp "$data"/pings/*.json "$data"/pings/*.tsv "$data"/seed/worker-test-data/telemetry1.record0.payload.json "$dir"/
        # Raw-record form: URL path, newline, body.
        for ping in "$data"/pings/v4.saved-session.*.json "$data"/pings/classic-v1.idle-daily.*.json; do
            { echo "0f2b8b7e-0000-4000-8000-000000000000/saved-session/Firefox/40.0a2/aurora/20150522004047"
              cat "$ping"; } > "$dir/raw.$(basename "$ping")"
        done ;;
    esac
}

# Build every target in one cargo invocation, then run the binaries directly, so a source
# change while fuzzing does not trigger a rebuild between targets.
echo "building fuzz targets (nightly, sanitizer $sanitizer) ..." >&2
(cd fuzz && cargo +nightly fuzz build --sanitizer "$sanitizer") >&2
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin_dir=$root/fuzz/target/$triple/release

mkdir -p fuzz/artifacts
declare -A execs secs status
failed=0
for target in "${targets[@]}"; do
    seed_corpus "$target"
    log=$root/fuzz/artifacts/$target.log
    echo "fuzzing $target (${bound[*]}) ..." >&2
    set +e
    (cd fuzz && "$bin_dir/$target" "corpus/$target" -artifact_prefix="artifacts/$target-" \
        "${bound[@]}" -max_len="${max_len[$target]}" -timeout=20 -rss_limit_mb=4096 \
        -print_final_stats=1) >"$log" 2>&1
    rc=$?
    set -e
    secs[$target]=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o '[0-9]* second' | grep -o '[0-9]*' | tail -n 1)
    execs[$target]=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
    if [[ $rc -eq 0 ]]; then
        status[$target]=clean
    else
        status[$target]="FAILED (exit $rc, see $log)"
        failed=1
        grep -E '^(==|SUMMARY|thread|artifact_prefix|Test unit written)' "$log" | head -n 20 >&2 || true
    fi
done

printf '\n%-20s %12s %8s  %s\n' target executions seconds result
for target in "${targets[@]}"; do
    printf '%-20s %12s %8s  %s\n' "$target" "${execs[$target]:-?}" "${secs[$target]:-?}" "${status[$target]}"
done
exit $failed
