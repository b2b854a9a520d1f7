//! Fuzzes the converter: any `id<TAB>json` line, and any raw record (first line = URL path,
//! rest = body, gzip or not), must convert or become a typed bad record, never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use telemetry_server::convert::Converter;
use telemetry_server::rawlog::RawRecord;

fn converter() -> &'static Converter {
    static CONVERTER: OnceLock<Converter> = OnceLock::new();
    CONVERTER.get_or_init(|| Converter::with_defaults().with_body_limit(1 << 20))
}

fuzz_target!(|data: &[u8]| {
    let converter = converter();
    let _ = converter.convert_line(data, "20150528");
    let (path, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"00000000-0000-0000-0000-000000000000/saved-session/Firefox/40.0a2/aurora/20150522004047"[..], data),
    };
    let record = RawRecord {
        timestamp_ms: 1_432_830_425_610,
        ip: "127.0.0.1".to_string(),
        path: String::from_utf8_lossy(path).into_owned(),
        body: body.to_vec(),
    };
    if let Ok(converted) = converter.convert(&record) {
        assert!(!converted.json.contains('\n'));
    }
});
