//! [`Converter`]: one raw record (or one `id<TAB>json` line) → a stored record or a
//! [`BadRecord`], with the seed's checks in the seed's order (docs/convert.md): body decoding,
//! empty body, path shape, then the payload.

use std::sync::Arc;

use super::bad_record::{BadRecord, BadRecordKind};
use super::compact::{Basis, HistogramCounts};
use super::document::{self, Lookup};
use super::fields::scalar_text;
use super::minify::minify;
use super::options::ConvertOptions;
use super::split::Indexed;
use crate::histograms::RevisionCache;
use crate::rawlog::{decode_body, RawRecord, DEFAULT_BODY_LIMIT};
use crate::storage::{submission_date, Schema};

/// The seed's production schema (`telemetry/telemetry_schema.json`), the default.
pub const DEFAULT_SCHEMA: &str = include_str!("../../assets/telemetry_schema.json");

/// A record ready for storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// Document id (first path component).
    pub id: String,
    /// Storage dimensions, schema applied (`UNKNOWN`/`OTHER` substituted).
    pub dims: Vec<String>,
    /// Document format: 2 classic (`ver: 2`), 5 converted unified (`version: 5`).
    pub version: u32,
    /// Minimal one-line JSON.
    pub json: String,
    /// Histograms converted (keyed: one per key).
    pub histograms: u32,
    /// Histogram names without a definition, dropped (as the seed did).
    pub unknown_histograms: u32,
    /// Histograms that did not validate, dropped (every mode but strict).
    pub histograms_dropped: u32,
    /// Of `histograms`, laid out by their own parameters.
    pub histograms_self_described: u32,
    /// Of `histograms`, laid out by approximate definitions.
    pub histograms_nearest: u32,
    /// How the histograms were validated (`None`: the document had none).
    pub validation: Option<Basis>,
}

/// Converts submissions; shareable between threads (`&self`).
pub struct Converter {
    schema: Schema,
    revisions: Arc<RevisionCache>,
    body_limit: usize,
    options: ConvertOptions,
}

impl Converter {
    /// A converter for `schema`'s dimensions, resolving histogram definitions with `revisions`; options default.
    pub fn new(schema: Schema, revisions: Arc<RevisionCache>) -> Converter {
        Converter {
            schema,
            revisions,
            body_limit: DEFAULT_BODY_LIMIT,
            options: ConvertOptions::default(),
        }
    }

    /// The seed's production schema and the embedded histogram definitions.
    pub fn with_defaults() -> Converter {
        let schema = Schema::from_json(DEFAULT_SCHEMA)
            .unwrap_or_else(|e| unreachable!("embedded schema: {e}"));
        Converter::new(schema, Arc::new(RevisionCache::embedded()))
    }

    /// Limit on an inflated gzip body (bomb protection).
    pub fn with_body_limit(mut self, limit: usize) -> Converter {
        self.body_limit = limit;
        self
    }

    /// Conversion options (default: keep every valid ping).
    pub fn with_options(mut self, options: ConvertOptions) -> Converter {
        self.options = options;
        self
    }

    /// The options this converter applies.
    pub fn options(&self) -> ConvertOptions {
        self.options
    }

    /// The dimensions records are partitioned by.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Where histogram definitions are resolved.
    pub fn revisions(&self) -> &RevisionCache {
        &self.revisions
    }

    /// Converts one raw-log record. Never panics.
    pub fn convert(&self, rec: &RawRecord) -> Result<Converted, BadRecord> {
        let body = self.decode(rec)?;
        self.convert_decoded(rec, &body)
    }

    /// The record's body, inflated when gzip (`corrupted_data` when that fails or exceeds the
    /// body limit).
    pub fn decode<'r>(&self, rec: &'r RawRecord) -> Result<std::borrow::Cow<'r, [u8]>, BadRecord> {
        decode_body(&rec.body, self.body_limit)
            .map_err(|e| BadRecord::new(BadRecordKind::CorruptedData, e.to_string()))
    }

    /// [`Converter::convert`] with the body already decoded.
    pub fn convert_decoded(&self, rec: &RawRecord, body: &[u8]) -> Result<Converted, BadRecord> {
        if body.is_empty() {
            return Err(BadRecord::new(BadRecordKind::EmptyData, "empty body"));
        }
        let id = self.path_id(&rec.path)?;
        self.convert_body(id, body, &submission_date(rec.timestamp_ms))
    }

    /// The document id of a submission path, which must have one component per schema dimension
    /// (id + the 5 URL dimensions for the seed's schema).
    fn path_id<'p>(&self, path: &'p str) -> Result<&'p str, BadRecord> {
        let path = path.strip_prefix('/').unwrap_or(path);
        let components = path.split('/').count();
        if components != self.schema.len() {
            let kind = if is_uuid(path) {
                BadRecordKind::UuidOnlyPath
            } else {
                BadRecordKind::InvalidPath
            };
            return Err(BadRecord::new(
                kind,
                format!(
                    "path has {components} components, expected {}: {path}",
                    self.schema.len()
                ),
            ));
        }
        Ok(path.split('/').next().unwrap_or_default())
    }

    /// Converts one document (the seed converter's `id<TAB>json` input) received on
    /// `submission_date` (`YYYYMMDD`).
    pub fn convert_body(
        &self,
        id: &str,
        body: &[u8],
        submission_date: &str,
    ) -> Result<Converted, BadRecord> {
        let text = std::str::from_utf8(body)
            .map_err(|e| BadRecord::conversion(format!("body is not UTF-8: {e}")))?;
        // One pass validates and indexes the text; only text with whitespace outside strings
        // (real pings have none) is copied, minified, and indexed again.
        let mut index = Indexed::new(text);
        let minified;
        let text = if index.has_whitespace() {
            drop(index);
            minified = minify(text);
            index = Indexed::new(&minified);
            minified.as_str()
        } else {
            text
        };
        let lookup = Lookup {
            revisions: &self.revisions,
            unknown_revision: self.options.unknown_revision,
        };
        let doc = document::convert(text, index.valid_object(), lookup)?;
        let values: Vec<Option<String>> = self
            .schema
            .dimension_names()
            .into_iter()
            .map(|name| match name {
                "submission_date" => Some(submission_date.to_owned()),
                _ => doc
                    .info
                    .get(name)
                    .and_then(scalar_text)
                    .map(|v| v.into_owned()),
            })
            .collect();
        let values: Vec<Option<&str>> = values.iter().map(Option::as_deref).collect();
        let HistogramCounts {
            converted,
            unknown,
            dropped,
            self_described,
            nearest,
        } = doc.histograms;
        Ok(Converted {
            id: id.to_owned(),
            dims: self.schema.apply(&values),
            version: doc.version,
            json: doc.json,
            histograms: converted,
            unknown_histograms: unknown,
            histograms_dropped: dropped,
            histograms_self_described: self_described,
            histograms_nearest: nearest,
            validation: doc.validation,
        })
    }

    /// Converts one `id<TAB>json` line (without its newline).
    pub fn convert_line(&self, line: &[u8], submission_date: &str) -> Result<Converted, BadRecord> {
        let Some((id, json)) = crate::storage::split_line(line) else {
            return Err(BadRecord::new(
                BadRecordKind::InvalidPath,
                "line has no tab between id and JSON",
            ));
        };
        let id = std::str::from_utf8(id)
            .map_err(|_| BadRecord::new(BadRecordKind::InvalidPath, "id is not UTF-8"))?;
        if json.is_empty() {
            return Err(BadRecord::new(BadRecordKind::EmptyData, "empty JSON"));
        }
        self.convert_body(id, json, submission_date)
    }
}

/// A lowercase UUID (`8-4-4-4-12` hex digits).
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| {
            g.len() == n
                && g.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 2013 converter's rules ([`UnknownRevision::Reject`]).
    fn strict() -> Converter {
        Converter::with_defaults().with_options(ConvertOptions {
            unknown_revision: crate::convert::UnknownRevision::Reject,
        })
    }

    fn record(path: &str, body: &str) -> RawRecord {
        RawRecord {
            timestamp_ms: 1_378_822_911_255,
            ip: String::new(),
            path: path.into(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn path_checks_come_first() {
        let c = Converter::with_defaults();
        let kind = |path: &str, body: &str| c.convert(&record(path, body)).unwrap_err().kind;
        assert_eq!(kind("a/b", ""), BadRecordKind::EmptyData);
        assert_eq!(
            kind("17caa68c-25f5-450a-9cce-7d31318846d8", "{}"),
            BadRecordKind::UuidOnlyPath
        );
        assert_eq!(
            kind("17caa68c/idle-daily", "{}"),
            BadRecordKind::InvalidPath
        );
        assert_eq!(kind("id/a/b/c/d/e", "{}"), BadRecordKind::ConversionError);
        assert_eq!(kind("id/a/b/c/d/e", "[1]"), BadRecordKind::ConversionError);
        assert_eq!(
            kind("id/a/b/c/d/e", "{\"ver\":1,\"a\":\"x\u{1}\"}"),
            BadRecordKind::InvalidControlChar
        );
        assert_eq!(
            c.convert(&RawRecord {
                body: vec![0x1f, 0x8b, 1, 2],
                ..record("x", "")
            })
            .unwrap_err()
            .kind,
            BadRecordKind::CorruptedData
        );
    }

    #[test]
    fn hostile_documents_are_errors_not_panics() {
        let c = Converter::with_defaults();
        let deep = format!(
            "{{\"ver\":1,\"x\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(
            c.convert_body("id", deep.as_bytes(), "20150101")
                .unwrap_err()
                .kind,
            BadRecordKind::ConversionError
        );
        for body in [
            &b"\xff\xfe"[..],
            b"{",
            b"\"",
            b"{\"version\":4,\"type\":\"main\",\"application\":1,\"payload\":{}}",
            b"{\"ver\":1,\"info\":[]}",
        ] {
            assert!(c.convert_body("id", body, "20150101").is_err());
        }
        let rec = RawRecord {
            body: vec![0x1f, 0x8b],
            ..record("a/b/c/d/e/f", "")
        };
        assert_eq!(
            c.convert(&rec).unwrap_err().kind,
            BadRecordKind::CorruptedData
        );
    }

    #[test]
    fn classic_without_histograms_converts_with_dims() {
        let c = Converter::with_defaults();
        let body = r#"{"ver": 1, "info": {"reason": "idle-daily", "appName": "Firefox", "appVersion": "23.0", "appUpdateChannel": "esr", "appBuildID": "2013"}}"#;
        let out = c.convert(&record("/id/r/a/v/c/b", body)).unwrap();
        assert_eq!(out.id, "id");
        assert_eq!(
            out.dims,
            ["idle-daily", "Firefox", "OTHER", "23.0", "2013", "20130910"]
        );
        assert_eq!(out.version, 2);
        assert_eq!(
            out.json,
            r#"{"ver":2,"info":{"reason":"idle-daily","appName":"Firefox","appVersion":"23.0","appUpdateChannel":"esr","appBuildID":"2013"}}"#
        );
    }

    #[test]
    fn classic_versions() {
        let c = strict();
        let err = |body: &str| {
            c.convert_body("id", body.as_bytes(), "20150101")
                .unwrap_err()
        };
        assert_eq!(err(r#"{"ver": 7}"#).detail, "Unknown payload version: 7");
        assert_eq!(err(r#"{"a": 1}"#).detail, "Missing payload version");
        assert_eq!(err(r#"{"ver": 1}"#).detail, "Missing in payload: info");
        let missing = err(r#"{"ver": 1, "info": {"appVersion": "8.0"}, "histograms": {}}"#);
        assert_eq!(
            (missing.kind, missing.detail.as_str()),
            (
                BadRecordKind::MissingRevision,
                "Missing in payload: info.revision"
            )
        );
        let repo = err(r#"{"ver": 1, "info": {"revision": "/rev/"}, "histograms": {}}"#);
        assert_eq!(repo.kind, BadRecordKind::MissingRevisionRepo);
        assert_eq!(
            err(r#"{"ver": 1, "info": {"revision": "https://hg.mozilla.org/x/rev/abc"}}"#).detail,
            "Missing in payload: histograms"
        );
        let fxos = c
            .convert_body("id", br#"{"ver": 3, "pingID": "p", "deviceinfo": {"update_channel": "nightly", "platform_version": "1.3"}}"#, "20140101")
            .unwrap();
        assert_eq!(
            fxos.json,
            r#"{"ver":2,"deviceinfo":{"update_channel":"nightly","platform_version":"1.3"},"info":{"reason":"ftu","appUpdateChannel":"nightly","appBuildID":"UNKNOWN","appName":"FirefoxOS","appVersion":"1.3"}}"#
        );
        assert_eq!(
            fxos.dims,
            ["ftu", "FirefoxOS", "nightly", "1.3", "UNKNOWN", "20140101"]
        );
    }

    #[test]
    fn unified_other_types_pass_through_with_info() {
        let c = Converter::with_defaults();
        let body = r#"{"type": "crash", "version": 4, "application": {"name": "Firefox", "version": "61.0a1", "channel": "nightly", "buildId": "20180409100035"}, "payload": {"x": [1, 2]}}"#;
        let out = c.convert_body("id", body.as_bytes(), "20180410").unwrap();
        assert_eq!(out.version, 5);
        assert_eq!(
            out.json,
            r#"{"type":"crash","version":5,"application":{"name":"Firefox","version":"61.0a1","channel":"nightly","buildId":"20180409100035"},"payload":{"x":[1,2]},"info":{"appName":"Firefox","appUpdateChannel":"nightly","appVersion":"61.0a1","appBuildID":"20180409100035","reason":"crash"}}"#
        );
        assert_eq!(
            out.dims,
            [
                "OTHER",
                "Firefox",
                "nightly",
                "61.0a1",
                "20180409100035",
                "20180410"
            ]
        );
        let strict = strict();
        let err = |b: &str| {
            strict
                .convert_body("id", b.as_bytes(), "20180410")
                .unwrap_err()
                .detail
        };
        assert_eq!(
            err(r#"{"version": 4, "application": {}, "payload": {}}"#),
            "Unified ping has no top-level 'type' field"
        );
        assert_eq!(err(r#"{"version": 3}"#), "Unknown unified ping version: 3");
        assert_eq!(
            err(r#"{"version": 4, "type": "main", "application": {}}"#),
            "Unified ping has no top-level 'payload' field"
        );
        assert_eq!(
            err(r#"{"version": 4, "type": "main", "application": {}, "payload": {}, "info": {}}"#),
            "Raw unified ping has an existing ping.info field"
        );
    }

    /// By default (keep) what strict mode rejects for its shape alone is stored: no revision,
    /// no histograms section, no type, no application, no payload.
    #[test]
    fn keep_stores_what_strict_rejects_for_shape() {
        let c = Converter::with_defaults();
        for body in [
            r#"{"ver": 1, "info": {"appVersion": "8.0"}, "histograms": {}}"#,
            r#"{"ver": 1, "info": {"revision": "/rev/"}, "histograms": {}}"#,
            r#"{"ver": 1, "info": {"revision": "https://hg.mozilla.org/x/rev/abc"}}"#,
            r#"{"version": 4, "application": {"name": "Firefox"}, "payload": {}}"#,
            r#"{"version": 4, "type": "main", "environment": {"build": {"applicationName": "Firefox", "version": "45.0", "buildId": "20151103030248"}}}"#,
            r#"{"version": 4, "type": "main", "application": {}, "payload": {}}"#,
            r#"{"version": 4, "type": "saved-session", "application": {}, "payload": {"histograms": {}}}"#,
        ] {
            let out = c
                .convert_body("id", body.as_bytes(), "20180410")
                .unwrap_or_else(|e| panic!("{body}: {e}"));
            assert!(
                strict()
                    .convert_body("id", body.as_bytes(), "20180410")
                    .is_err(),
                "{body}"
            );
            assert!(
                serde_json::from_str::<serde_json::Value>(&out.json).is_ok(),
                "{body}"
            );
        }
        let out = c
            .convert_body("id", br#"{"version": 4, "type": "main", "environment": {"build": {"applicationName": "Firefox", "version": "45.0", "buildId": "20151103030248"}}}"#, "20180410")
            .unwrap();
        // No channel anywhere: UNKNOWN, which the channel dimension does not allow: OTHER.
        assert_eq!(
            out.dims,
            [
                "main",
                "Firefox",
                "OTHER",
                "45.0",
                "20151103030248",
                "20180410"
            ]
        );
        // A client-sent classic `info` beside `application`: one `info` is stored, what the
        // unified ping says winning over what the client added.
        let out = c
            .convert_body(
                "id",
                br#"{"version": 4, "type": "main", "application": {"name": "Firefox", "channel": "beta", "version": "45.0", "buildId": "20151103030248"}, "info": {"appUpdateChannel": "release", "OS": "Linux"}}"#,
                "20180410",
            )
            .unwrap();
        let doc: serde_json::Value = serde_json::from_str(&out.json).unwrap();
        assert_eq!(doc["info"]["appUpdateChannel"], "beta");
        assert_eq!(doc["info"]["OS"], "Linux");
        assert_eq!(out.json.matches(r#""info":"#).count(), 1, "{}", out.json);
        assert_eq!(out.dims[2], "beta");
        // A Heka frame with more frame metadata than `fields`: the ping inside is stored.
        let framed = br#"{"fields": {"docType": "main"}, "info": {"OS": "x"}, "payload": {"version": 4, "type": "main", "application": {"name": "Firefox", "channel": "nightly", "version": "54.0a1", "buildId": "20170101030203"}}}"#;
        let out = c.convert_body("id", framed, "20180410").unwrap();
        assert_eq!(out.dims[..3], ["main", "Firefox", "nightly"]);
        // Still rejected: not an object, no version, an `info` that is not an object.
        for body in [
            "[1]",
            r#"{"a": 1}"#,
            r#"{"version": 4, "type": "main", "application": {}, "payload": {}, "info": 7}"#,
        ] {
            assert!(
                c.convert_body("id", body.as_bytes(), "20180410").is_err(),
                "{body}"
            );
        }
    }
}
