//! Fuzzes the converter: any `id<TAB>json` line, and any raw record (first line = URL path,
//! rest = body, gzip or not), must convert to one line of JSON or become a typed bad record,
//! never a panic. The body is `telemetry_server::fuzzing::converter`, shared with
//! `host/tests/all/fuzz_smoke.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    telemetry_server::fuzzing::converter(data);
});
