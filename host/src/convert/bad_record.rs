//! The bad-record taxonomy: why a submission was not stored. Labels are the seed's
//! `bad_record_type` stats keys (docs/convert.md), plus `missing_histograms` for a revision
//! whose definitions are not available (the seed counted that as `conversion_error`).

use serde::Serialize;

/// Why a record was rejected. [`BadRecordKind::as_str`] is the stable label used in summaries,
/// metrics and the error stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BadRecordKind {
    /// The body starts like gzip but does not inflate (or inflates past the limit).
    CorruptedData,
    /// The body is empty.
    EmptyData,
    /// The path does not have one component per schema dimension.
    InvalidPath,
    /// The path is a bare lowercase UUID (an old client bug; the bulk of the seed's bad records).
    UuidOnlyPath,
    /// The payload contradicts its histogram definitions (unknown bucket, non-integer count,
    /// kind/bucket count/range mismatch, malformed histogram).
    BadPayload,
    /// Histograms but no `info.revision`, and no revision-table entry for the build.
    MissingRevision,
    /// A revision URL without repository (`/rev/`).
    MissingRevisionRepo,
    /// The JSON contains a raw control character inside a string.
    InvalidControlChar,
    /// Definitions for the revision are not available (and no table entry matched).
    MissingHistograms,
    /// Any other conversion failure: invalid JSON, unknown version, missing required fields.
    ConversionError,
    /// Storage refused the record.
    WriteFailed,
}

impl BadRecordKind {
    /// Every kind, in label order of the seed's stats.
    pub const ALL: [BadRecordKind; 11] = [
        BadRecordKind::CorruptedData,
        BadRecordKind::EmptyData,
        BadRecordKind::InvalidPath,
        BadRecordKind::UuidOnlyPath,
        BadRecordKind::BadPayload,
        BadRecordKind::MissingRevision,
        BadRecordKind::MissingRevisionRepo,
        BadRecordKind::InvalidControlChar,
        BadRecordKind::MissingHistograms,
        BadRecordKind::ConversionError,
        BadRecordKind::WriteFailed,
    ];

    /// The stable snake_case label (`bad_records.<label>` in the seed's stats).
    pub fn as_str(self) -> &'static str {
        match self {
            BadRecordKind::CorruptedData => "corrupted_data",
            BadRecordKind::EmptyData => "empty_data",
            BadRecordKind::InvalidPath => "invalid_path",
            BadRecordKind::UuidOnlyPath => "uuid_only_path",
            BadRecordKind::BadPayload => "bad_payload",
            BadRecordKind::MissingRevision => "missing_revision",
            BadRecordKind::MissingRevisionRepo => "missing_revision_repo",
            BadRecordKind::InvalidControlChar => "invalid_control_char",
            BadRecordKind::MissingHistograms => "missing_histograms",
            BadRecordKind::ConversionError => "conversion_error",
            BadRecordKind::WriteFailed => "write_failed",
        }
    }
}

impl std::fmt::Display for BadRecordKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected record: its class and a precise human-readable reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct BadRecord {
    /// What kind of rejection (the bad-record stream's `kind`).
    pub kind: BadRecordKind,
    /// The detail for the operator.
    pub detail: String,
}

impl BadRecord {
    pub(crate) fn new(kind: BadRecordKind, detail: impl Into<String>) -> BadRecord {
        BadRecord {
            kind,
            detail: detail.into(),
        }
    }

    /// `bad_payload` with a detail.
    pub fn payload(detail: impl Into<String>) -> BadRecord {
        BadRecord::new(BadRecordKind::BadPayload, detail)
    }

    /// `conversion_error` with a detail.
    pub fn conversion(detail: impl Into<String>) -> BadRecord {
        BadRecord::new(BadRecordKind::ConversionError, detail)
    }

    /// Classifies a JSON syntax error (a raw control character is its own class, as in the seed).
    pub fn json(err: &serde_json::Error) -> BadRecord {
        let text = err.to_string();
        if text.starts_with("control character") {
            BadRecord::new(
                BadRecordKind::InvalidControlChar,
                format!("JSONDecodeError: Invalid control character: {text}"),
            )
        } else {
            BadRecord::conversion(format!("JSONDecodeError: {text}"))
        }
    }
}
