//! Building raw logs in memory for the reader tests (tests/rawlog.rs, tests/fuzz_smoke.rs).
#![allow(dead_code)]

use telemetry_server::rawlog::{record, RawRecord, Version};

/// The records in `version`'s layout, and the byte offset where each one starts.
pub fn encode_all(version: Version, records: &[RawRecord]) -> (Vec<u8>, Vec<usize>) {
    let mut log = Vec::new();
    let mut starts = Vec::new();
    for r in records {
        starts.push(log.len());
        record::encode(version, &mut log, r.timestamp_ms, &r.ip, &r.path, &r.body);
    }
    (log, starts)
}

/// What a reader of `version` returns for `r` (v0/v1 carry no ip).
pub fn as_read(version: Version, r: &RawRecord) -> RawRecord {
    RawRecord {
        ip: if version == Version::V2 {
            r.ip.clone()
        } else {
            String::new()
        },
        ..r.clone()
    }
}
