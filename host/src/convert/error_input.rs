//! Reading the error stream (`errors/*.ndjson`, written by [`super::ErrorStream`]) back as
//! input, so rejected records can be converted again (backfill) once what they lacked (e.g.
//! their Histograms.json) is available. Each line becomes the record it was rejected as:
//!
//! - with a `path` (raw-log and live records): a [`RawRecord`] with its `timestamp_ms`, `ip`
//!   and body (`body`, or `body_base64`);
//! - without a `path`, a body starting with `{`: a JSON document whose id is the `source` file
//!   name without `.json`;
//! - without a `path`, any other body: an `id<TAB>json` line of a text input.
//!
//! `duplicate` entries (ids only: their record is stored) are skipped; entries without a body
//! (records that could not even be read) or with only a prefix of it (`body_truncated`) cannot
//! be converted.

use base64::Engine;
use serde::Deserialize;

use crate::rawlog::RawRecord;

/// One error-stream line as read back.
#[derive(Debug, Deserialize)]
struct Entry {
    kind: String,
    #[serde(default)]
    source: String,
    path: Option<String>,
    timestamp_ms: Option<u64>,
    #[serde(default)]
    ip: String,
    body: Option<String>,
    body_base64: Option<String>,
    /// Only a prefix of the body was kept ([`super::ErrorStream`]'s body limit).
    #[serde(default)]
    body_truncated: bool,
}

/// What an error-stream line is converted as.
#[derive(Debug)]
pub enum ErrorInput {
    /// A received submission.
    Raw(RawRecord),
    /// A line of a text input (`id<TAB>json`).
    Line(Vec<u8>),
    /// A JSON document with its id.
    Document { id: String, body: Vec<u8> },
    /// A duplicate entry: nothing to convert.
    Skip,
    /// An entry that cannot be converted, with the reason.
    Unusable(String),
}

/// Parses one error-stream line; `timestamp_ms` stands in for entries with a path but no time.
pub fn parse(line: &[u8], default_timestamp_ms: u64) -> ErrorInput {
    let entry: Entry = match serde_json::from_slice(line) {
        Ok(entry) => entry,
        Err(e) => return ErrorInput::Unusable(format!("not an error-stream entry: {e}")),
    };
    if entry.kind == "duplicate" {
        return ErrorInput::Skip;
    }
    if entry.body_truncated {
        return ErrorInput::Unusable(
            "only a prefix of the body was kept in the error stream (errors.max_body_bytes); the record cannot be converted again".into(),
        );
    }
    let body = match (entry.body, entry.body_base64) {
        (Some(text), _) => text.into_bytes(),
        (None, Some(b64)) => match base64::engine::general_purpose::STANDARD.decode(b64) {
            Ok(bytes) => bytes,
            Err(e) => return ErrorInput::Unusable(format!("invalid body_base64: {e}")),
        },
        (None, None) => {
            return ErrorInput::Unusable(format!("{} entry without a body", entry.kind))
        }
    };
    if let Some(path) = entry.path {
        return ErrorInput::Raw(RawRecord {
            timestamp_ms: entry.timestamp_ms.unwrap_or(default_timestamp_ms),
            ip: entry.ip,
            path,
            body,
        });
    }
    if body.trim_ascii_start().starts_with(b"{") {
        let name = entry.source.rsplit('/').next().unwrap_or_default();
        let id = name.strip_suffix(".json").unwrap_or(name).to_string();
        return ErrorInput::Document { id, body };
    }
    ErrorInput::Line(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_entry_shape_becomes_its_record() {
        let raw = br#"{"kind":"missing_histograms","detail":"d","source":"raw/x.finished","path":"id1/main/Firefox","timestamp_ms":5,"ip":"::1","body":"{}"}"#;
        match parse(raw, 9) {
            ErrorInput::Raw(r) => {
                assert_eq!(
                    (r.timestamp_ms, r.ip.as_str(), r.path.as_str()),
                    (5, "::1", "id1/main/Firefox")
                );
                assert_eq!(r.body, b"{}");
            }
            other => panic!("{other:?}"),
        }
        let b64 = br#"{"kind":"corrupted_data","detail":"d","source":"s","path":"p","body_base64":"AAE="}"#;
        match parse(b64, 9) {
            ErrorInput::Raw(r) => assert_eq!((r.timestamp_ms, r.body), (9, vec![0, 1])),
            other => panic!("{other:?}"),
        }
        let line =
            br#"{"kind":"conversion_error","detail":"d","source":"in.tsv","body":"id2\t{}"}"#;
        assert!(matches!(parse(line, 0), ErrorInput::Line(l) if l == b"id2\t{}"));
        let doc =
            br#"{"kind":"conversion_error","detail":"d","source":"dir/id3.json","body":" {}"}"#;
        assert!(matches!(parse(doc, 0), ErrorInput::Document { id, .. } if id == "id3"));
        let dup = br#"{"kind":"duplicate","detail":"id4","source":"s","path":"id4"}"#;
        assert!(matches!(parse(dup, 0), ErrorInput::Skip));
        let bodyless = br#"{"kind":"corrupted_data","detail":"d","source":"s"}"#;
        assert!(matches!(parse(bodyless, 0), ErrorInput::Unusable(_)));
        assert!(matches!(parse(b"not json", 0), ErrorInput::Unusable(_)));
        let truncated = br#"{"kind":"corrupted_data","detail":"d","source":"s","path":"p","body":"{\"a","body_bytes":90000,"body_truncated":true}"#;
        assert!(
            matches!(parse(truncated, 0), ErrorInput::Unusable(reason) if reason.contains("prefix"))
        );
    }
}
