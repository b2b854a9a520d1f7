//! Fuzzes the raw-log reader: any bytes, read as every layout and with detection, must yield
//! records and errors without panicking, and every body must decode or fail cleanly.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use telemetry_server::rawlog::{decode_body, Limits, LogReader, Version};

fuzz_target!(|data: &[u8]| {
    // Small limits so the fuzzer reaches the "too large" paths with short inputs.
    let limits = Limits {
        max_path_bytes: 512,
        max_data_bytes: 4096,
    };
    let versions = [
        None,
        Some(Version::V0),
        Some(Version::V1),
        Some(Version::V2),
    ];
    for version in versions {
        let mut reader = LogReader::with_limits(Cursor::new(data), version, limits);
        let mut good_bytes = 0u64;
        for item in reader.by_ref() {
            if let Ok(record) = item {
                good_bytes += (record.body.len()) as u64;
                let _ = decode_body(&record.body, 1 << 16);
            }
        }
        // Every byte is either in a record or counted as skipped.
        assert!(reader.skipped_bytes() + good_bytes <= data.len() as u64);
        assert!(reader.records() + reader.errors() <= data.len() as u64);
    }
});
