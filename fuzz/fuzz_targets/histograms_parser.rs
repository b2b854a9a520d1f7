//! Fuzzes the Histograms.json parser: any text (C++ constants patched as the seed did) must
//! parse into definitions or fail with a typed error, and parsed definitions must produce a
//! bucket-spec document that parses back to the same buckets. The body is
//! `telemetry_server::fuzzing::histograms_parser`, shared with `host/tests/all/fuzz_smoke.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    telemetry_server::fuzzing::histograms_parser(data);
});
