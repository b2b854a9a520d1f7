//! Entry points shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`) and the fuzz smoke
//! test that runs in `cargo test` (`host/tests/all/fuzz_smoke.rs`): each feeds arbitrary bytes to one
//! parser of untrusted input, checks the invariants that hold for every input (panicking when
//! one does not, which is how libFuzzer notices), and returns what happened so tests can assert
//! more about inputs whose structure they know. Not part of the server's API.

use std::io::Cursor;
use std::sync::OnceLock;

use crate::convert::{BadRecord, Converted, Converter};
use crate::histograms::{bucket_spec_string, patch_cpp_constants, Definitions, Kind, SpecError};
use crate::rawlog::{decode_body, BodyError, Limits, LogReader, RawRecord, RecordError, Version};

/// Small limits, so short inputs reach the "too large" paths.
pub const FUZZ_LIMITS: Limits = Limits {
    max_path_bytes: 512,
    max_data_bytes: 4096,
};

/// Inflated-body limit of the fuzz entries (gzip bombs must stop here).
pub const FUZZ_BODY_LIMIT: usize = 1 << 16;

/// Everything one pass of a [`LogReader`] over a byte string produced.
#[derive(Debug)]
pub struct LogRead {
    /// The layout read (given or detected).
    pub version: Version,
    /// Good records, in order.
    pub records: Vec<RawRecord>,
    /// Damaged records, in order.
    pub errors: Vec<RecordError>,
    /// Bytes that did not become a good record.
    pub skipped_bytes: u64,
}

/// Reads all of `data` as `version` (`None`: detected) and checks the byte accounting:
/// every byte is in exactly one good record or skipped, each good record holds at least its
/// header, and each damaged record costs at least one skipped byte.
pub fn read_log(data: &[u8], version: Option<Version>, limits: Limits) -> LogRead {
    let mut reader = LogReader::with_limits(Cursor::new(data), version, limits);
    let (mut records, mut errors) = (Vec::new(), Vec::new());
    for item in reader.by_ref() {
        match item {
            Ok(record) => records.push(record),
            Err(error) => errors.push(error),
        }
    }
    let version = reader.version().unwrap_or(Version::V2);
    let len = data.len() as u64;
    let skipped = reader.skipped_bytes();
    assert_eq!(
        reader.bytes_read(),
        len,
        "the reader stopped before the end"
    );
    assert!(skipped <= len, "skipped {skipped} of {len} bytes");
    let in_records = len - skipped;
    let bodies: u64 = records.iter().map(|r| r.body.len() as u64).sum();
    let headers = records.len() as u64 * version.header_len() as u64;
    assert!(
        headers + bodies <= in_records,
        "{} records with {bodies} body bytes in {in_records} record bytes",
        records.len()
    );
    assert!(
        errors.len() as u64 <= skipped,
        "{} errors in {skipped} skipped bytes",
        errors.len()
    );
    assert_eq!(
        (reader.records(), reader.errors()),
        (records.len() as u64, errors.len() as u64)
    );
    LogRead {
        version,
        records,
        errors,
        skipped_bytes: skipped,
    }
}

/// The `rawlog_reader` fuzz target: `data` read with detection and as every layout under
/// [`FUZZ_LIMITS`], every good body decoded (gzip bounded by [`FUZZ_BODY_LIMIT`]).
pub fn rawlog_reader(data: &[u8]) -> Vec<LogRead> {
    [
        None,
        Some(Version::V0),
        Some(Version::V1),
        Some(Version::V2),
    ]
    .into_iter()
    .map(|version| {
        let read = read_log(data, version, FUZZ_LIMITS);
        for record in &read.records {
            let _ = check_decode(&record.body);
        }
        read
    })
    .collect()
}

/// Decodes a body and checks the result respects the limit.
fn check_decode(body: &[u8]) -> Result<usize, BodyError> {
    let decoded = decode_body(body, FUZZ_BODY_LIMIT)?;
    assert!(decoded.len() <= FUZZ_BODY_LIMIT.max(body.len()));
    Ok(decoded.len())
}

/// What the `histograms_parser` target made of one input.
#[derive(Debug)]
pub enum HistogramsOutcome {
    /// Not UTF-8: never reaches the parser.
    NotText,
    /// Parsed: definitions, and how many of them have a bucket layout.
    Parsed {
        definitions: usize,
        with_layout: usize,
    },
    /// Rejected with a typed error.
    Rejected(SpecError),
}

/// The `histograms_parser` fuzz target: the text, C++ constants patched as the seed did, parses
/// into definitions or a typed error; parsed definitions produce a bucket-spec document that
/// parses back to the same kinds and bucket bounds.
pub fn histograms_parser(data: &[u8]) -> HistogramsOutcome {
    let Ok(text) = std::str::from_utf8(data) else {
        return HistogramsOutcome::NotText;
    };
    let defs = match Definitions::from_json(&patch_cpp_constants(text)) {
        Ok(defs) => defs,
        Err(error) => return HistogramsOutcome::Rejected(error),
    };
    let spec = bucket_spec_string(&defs);
    let reparsed = Definitions::from_json(&spec)
        .unwrap_or_else(|e| panic!("the bucket-spec document does not parse back: {e}\n{spec}"));
    let mut with_layout = 0;
    for def in defs.iter() {
        let Ok(layout) = &def.layout else { continue };
        with_layout += 1;
        if def.name.starts_with("STARTUP_") {
            continue; // may be shadowed by the STARTUP_ copy of another definition
        }
        let back = reparsed
            .get(&def.name)
            .unwrap_or_else(|| panic!("{} missing from the bucket-spec document", def.name));
        let back_layout = back
            .layout
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: bucket-spec entry does not load back: {e}", def.name));
        assert_eq!(back.kind, spec_kind(def.kind), "{}: kind", def.name);
        assert_eq!(
            back_layout.bounds, layout.bounds,
            "{}: bucket bounds",
            def.name
        );
    }
    HistogramsOutcome::Parsed {
        definitions: defs.len(),
        with_layout,
    }
}

/// The kind a definition has once written to and read from a bucket-spec document.
fn spec_kind(kind: Kind) -> Kind {
    Kind::from_type_code(kind.type_code() as i64).unwrap_or(kind)
}

/// The converter every `converter` run uses: default schema and definitions, 1 MiB body limit.
pub fn fuzz_converter() -> &'static Converter {
    static CONVERTER: OnceLock<Converter> = OnceLock::new();
    CONVERTER.get_or_init(|| Converter::with_defaults().with_body_limit(1 << 20))
}

/// A path with one component per dimension of the default schema.
pub const DEFAULT_PATH: &str =
    "00000000-0000-0000-0000-000000000000/saved-session/Firefox/40.0a2/aurora/20150522004047";

/// What the `converter` target made of one input, read both ways.
#[derive(Debug)]
pub struct ConverterOutcome {
    /// The input as one `id<TAB>json` line.
    pub line: Result<Converted, BadRecord>,
    /// The input as a raw record: first line the URL path, the rest the body (no newline: the
    /// whole input is the body of a record at [`DEFAULT_PATH`]).
    pub record: Result<Converted, BadRecord>,
}

/// Splits a converter input into a raw record (see [`ConverterOutcome::record`]).
pub fn raw_record(data: &[u8]) -> RawRecord {
    let (path, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (DEFAULT_PATH.as_bytes(), data),
    };
    RawRecord {
        timestamp_ms: 1_432_830_425_610,
        ip: "127.0.0.1".to_string(),
        path: String::from_utf8_lossy(path).into_owned(),
        body: body.to_vec(),
    }
}

/// The `converter` fuzz target: `data` converted as a line and as a raw record; each converts
/// or becomes a typed bad record; a converted record is one line of JSON with the path's id.
/// The converter's one-pass JSON check agrees with serde_json on every text it could be given
/// (the whole input, and what follows its first tab or newline).
pub fn converter(data: &[u8]) -> ConverterOutcome {
    let after = |b: u8| data.iter().position(|&c| c == b).map(|i| &data[i + 1..]);
    for text in [Some(data), after(b'\t'), after(b'\n')]
        .into_iter()
        .flatten()
    {
        if let Ok(text) = std::str::from_utf8(text) {
            crate::convert::assert_agrees_with_serde_json(text);
        }
    }
    let converter = fuzz_converter();
    let line = converter.convert_line(data, "20150528");
    let record = raw_record(data);
    let converted = converter.convert(&record);
    for (out, id) in [
        (
            &line,
            data.split(|&b| b == b'\t').next().unwrap_or_default(),
        ),
        (
            &converted,
            record
                .path
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or_default()
                .as_bytes(),
        ),
    ] {
        if let Ok(c) = out {
            assert!(!c.json.contains('\n'), "converted JSON spans lines");
            assert_eq!(c.id.as_bytes(), id, "converted id");
            assert_eq!(
                c.dims.len(),
                converter.schema().len(),
                "one value per dimension"
            );
            if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&c.json) {
                panic!("converted output is not JSON: {e}");
            }
        }
    }
    ConverterOutcome {
        line,
        record: converted,
    }
}
