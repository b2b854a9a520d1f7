//! Fuzzes the raw-log reader: any bytes, read as every layout and with detection, must yield
//! records and errors without panicking, account for every byte, and every body must decode or
//! fail cleanly. The body is `telemetry_server::fuzzing::rawlog_reader`, which the fuzz smoke
//! test (`host/tests/all/fuzz_smoke.rs`) also runs in `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    telemetry_server::fuzzing::rawlog_reader(data);
});
