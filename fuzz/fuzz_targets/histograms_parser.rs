//! Fuzzes the Histograms.json parser: any text (C++ constants patched as the seed did) must
//! parse into definitions or fail with a typed error, and parsed definitions must produce a
//! bucket-spec document, without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telemetry_server::histograms::{bucket_spec_string, patch_cpp_constants, Definitions};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let patched = patch_cpp_constants(text);
    if let Ok(defs) = Definitions::from_json(&patched) {
        let spec = bucket_spec_string(&defs);
        assert!(spec.starts_with('{'));
    }
});
