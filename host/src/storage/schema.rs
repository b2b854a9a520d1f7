//! [`Schema`]: a `telemetry_schema.json` document, which is also the format of a job's input
//! filter (docs/formats/storage.md). As a storage schema it maps a record's raw dimension
//! values to the stored ones ([`Schema::apply`]); as a filter it decides which stored
//! partitions a job reads ([`Schema::matches`], [`Schema::matches_prefix`]).
//!
//! Differences from the seed, on purpose: min/max bounds compare numerically when both sides
//! are numbers (the seed compared strings, so `"1000" < "448"`), and timestamps at the
//! precision of the shorter one (see [`compare`]); plain-string and list values are both
//! sanitised (see [`stored_value`]) before matching stored directory and file names.
//!
//! Dimension values come from anonymous URLs and ping bodies and become directory and file
//! names, so [`Schema::apply`] bounds them ([`ValuePolicy`], issue 11): a value of a dimension
//! that allows any value (`"*"` or a range) is stored as [`OTHER`] when it is longer than
//! `max_bytes` or does not match the configured pattern.

use std::cmp::Ordering;
use std::path::Path;

use serde_json::Value;

use super::StorageError;

/// Stored value of a dimension the record does not have (before the schema is applied).
pub const UNKNOWN: &str = "UNKNOWN";
/// Stored value of a dimension whose value the schema does not allow.
pub const OTHER: &str = "OTHER";

/// What one dimension allows.
#[derive(Debug, Clone, PartialEq)]
pub enum Allowed {
    /// `"*"`: any value.
    Any,
    /// A list (or a single string): the value must equal one of them.
    Values {
        /// The values as written (compared with raw record values).
        raw: Vec<String>,
        /// The values as stored at this level ([`stored_value`]), compared with directory and
        /// file-name parts.
        stored: Vec<String>,
    },
    /// `{"min": .., "max": ..}`: an inclusive range, either bound optional.
    Range {
        /// Lower bound, inclusive.
        min: Option<String>,
        /// Upper bound, inclusive.
        max: Option<String>,
    },
}

/// One dimension of a schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Dimension {
    /// `field_name` in the document.
    pub name: String,
    /// `allowed_values` in the document.
    pub allowed: Allowed,
}

/// Default longest dimension value stored as is (`convert.dimension_max_bytes`).
pub const DEFAULT_DIMENSION_MAX_BYTES: usize = 64;
/// Default pattern of a dimension value stored as is (`convert.dimension_pattern`): letters,
/// digits and `. _ + -` (every value Firefox sends: `saved-session`, `40.0a2`, `20150522004047`).
pub const DEFAULT_DIMENSION_PATTERN: &str = "^[A-Za-z0-9._+-]*$";

/// Which values of an open dimension (`"*"` or a range) are stored as they are; the others
/// become [`OTHER`].
#[derive(Debug, Clone)]
pub struct ValuePolicy {
    max_bytes: usize,
    pattern: Option<regex::Regex>,
}

impl Default for ValuePolicy {
    /// The length cap only (a schema loaded outside the server); the server adds its pattern.
    fn default() -> Self {
        ValuePolicy {
            max_bytes: DEFAULT_DIMENSION_MAX_BYTES,
            pattern: None,
        }
    }
}

impl PartialEq for ValuePolicy {
    fn eq(&self, other: &Self) -> bool {
        self.max_bytes == other.max_bytes
            && self.pattern.as_ref().map(regex::Regex::as_str)
                == other.pattern.as_ref().map(regex::Regex::as_str)
    }
}

impl ValuePolicy {
    /// Values of at most `max_bytes` matching `pattern` (a regular expression; empty: any).
    pub fn new(max_bytes: usize, pattern: &str) -> Result<ValuePolicy, regex::Error> {
        let pattern = if pattern.is_empty() {
            None
        } else {
            Some(regex::Regex::new(pattern)?)
        };
        Ok(ValuePolicy { max_bytes, pattern })
    }

    /// Whether `value` is stored as it is.
    pub fn allows(&self, value: &str) -> bool {
        value.len() <= self.max_bytes && self.pattern.as_ref().is_none_or(|p| p.is_match(value))
    }
}

/// A parsed schema or filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    dimensions: Vec<Dimension>,
    /// Bounds on the values of open dimensions ([`Schema::apply`]).
    values: ValuePolicy,
}

impl Schema {
    /// Parses a schema or filter document.
    pub fn from_json(text: &str) -> Result<Schema, StorageError> {
        Self::parse(text, "<inline>")
    }

    /// Reads and parses a schema or filter file.
    pub fn load(path: &Path) -> Result<Schema, StorageError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| StorageError::io(path.display().to_string(), e))?;
        Self::parse(&text, &path.display().to_string())
    }

    fn parse(text: &str, origin: &str) -> Result<Schema, StorageError> {
        let invalid = |message: String| StorageError::Schema {
            origin: origin.to_string(),
            message,
        };
        let doc: Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let obj = doc
            .as_object()
            .ok_or_else(|| invalid("the document must be a JSON object".into()))?;
        match obj.get("version") {
            None => {}
            Some(v) if v.as_u64() == Some(1) => {}
            Some(v) => return Err(invalid(format!("unsupported version {v} (expected 1)"))),
        }
        let dims = obj
            .get("dimensions")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("missing \"dimensions\" array".into()))?;
        let mut dimensions = dims
            .iter()
            .enumerate()
            .map(|(i, d)| parse_dimension(d).map_err(|m| invalid(format!("dimension {i}: {m}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let levels = dimensions.len();
        for (level, dim) in dimensions.iter_mut().enumerate() {
            if let Allowed::Values { raw, stored } = &mut dim.allowed {
                *stored = raw.iter().map(|v| stored_value(v, level, levels)).collect();
            }
        }
        Ok(Schema {
            dimensions,
            values: ValuePolicy::default(),
        })
    }

    /// The same schema with `policy` bounding the values [`Schema::apply`] stores as they are.
    pub fn with_value_policy(mut self, policy: ValuePolicy) -> Schema {
        self.values = policy;
        self
    }

    /// The dimensions, in order.
    pub fn dimensions(&self) -> &[Dimension] {
        &self.dimensions
    }

    /// The dimension names, in order.
    pub fn dimension_names(&self) -> Vec<&str> {
        self.dimensions.iter().map(|d| d.name.as_str()).collect()
    }

    /// A filter with this schema's dimensions that lets every value pass (to count every file).
    pub fn all_files(&self) -> Option<Schema> {
        let dims: Vec<serde_json::Value> = self
            .dimension_names()
            .iter()
            .map(|name| serde_json::json!({"field_name": name, "allowed_values": "*"}))
            .collect();
        Schema::from_json(&serde_json::json!({"version": 1, "dimensions": dims}).to_string()).ok()
    }

    /// Number of dimensions.
    pub fn len(&self) -> usize {
        self.dimensions.len()
    }

    /// Whether the schema has no dimensions.
    pub fn is_empty(&self) -> bool {
        self.dimensions.is_empty()
    }

    /// Index of the dimension called `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.dimensions.iter().position(|d| d.name == name)
    }

    /// Maps a record's dimension values (in schema order) to stored values: a missing value
    /// becomes [`UNKNOWN`] first, then a value the schema does not allow becomes [`OTHER`], and so
    /// does a value of an open dimension that the [`ValuePolicy`] refuses (too long, or not
    /// matching the pattern).
    /// Values beyond the schema's dimensions are ignored. The result is not yet sanitised for
    /// file names (the partition layout does that).
    pub fn apply(&self, values: &[Option<&str>]) -> Vec<String> {
        self.dimensions
            .iter()
            .enumerate()
            .map(|(i, dim)| {
                let value = values.get(i).copied().flatten().unwrap_or(UNKNOWN);
                let listed = matches!(dim.allowed, Allowed::Values { .. });
                if dim.allowed.allows_raw(value) && (listed || self.values.allows(value)) {
                    value.to_string()
                } else {
                    OTHER.to_string()
                }
            })
            .collect()
    }

    /// Whether a stored value (a directory or file-name part) at `level` passes this filter.
    /// Levels beyond the filter's dimensions pass.
    pub fn matches_prefix(&self, level: usize, value: &str) -> bool {
        self.dimensions
            .get(level)
            .is_none_or(|d| d.allowed.allows_stored(value))
    }

    /// Whether a partition's stored dimension values all pass this filter. The number of values
    /// must equal the number of dimensions.
    pub fn matches(&self, dims: &[String]) -> bool {
        dims.len() == self.dimensions.len()
            && dims
                .iter()
                .enumerate()
                .all(|(i, v)| self.matches_prefix(i, v))
    }
}

fn parse_dimension(d: &Value) -> Result<Dimension, String> {
    let name = d
        .get("field_name")
        .and_then(Value::as_str)
        .ok_or("missing string \"field_name\"")?
        .to_string();
    let allowed = match d
        .get("allowed_values")
        .ok_or("missing \"allowed_values\"")?
    {
        Value::String(s) if s == "*" => Allowed::Any,
        Value::String(s) => Allowed::values(vec![s.clone()]),
        Value::Array(items) => {
            let raw = items
                .iter()
                .map(|v| {
                    scalar(v).ok_or_else(|| format!("list value {v} is not a string or number"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Allowed::values(raw)
        }
        Value::Object(range) => {
            if let Some(key) = range.keys().find(|k| *k != "min" && *k != "max") {
                return Err(format!("unknown range key {key:?} (expected min, max)"));
            }
            let bound = |key: &str| match range.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => scalar(v)
                    .map(Some)
                    .ok_or_else(|| format!("{key} {v} is not a string or number")),
            };
            Allowed::Range {
                min: bound("min")?,
                max: bound("max")?,
            }
        }
        other => {
            return Err(format!(
                "allowed_values {other} must be \"*\", a string, a list or {{min, max}}"
            ))
        }
    };
    Ok(Dimension { name, allowed })
}

/// A JSON string or number as text.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Allowed {
    /// A list; `stored` is filled in once the dimension's level is known.
    fn values(raw: Vec<String>) -> Allowed {
        Allowed::Values {
            raw,
            stored: Vec::new(),
        }
    }

    /// The allowed values as a filter document writes them: `"*"`, a list, or `{min, max}`.
    pub fn to_json(&self) -> Value {
        match self {
            Allowed::Any => Value::from("*"),
            Allowed::Values { raw, .. } => Value::from(raw.clone()),
            Allowed::Range { min, max } => {
                let mut range = serde_json::Map::new();
                for (key, bound) in [("min", min), ("max", max)] {
                    if let Some(b) = bound {
                        range.insert(key.into(), Value::from(b.clone()));
                    }
                }
                Value::Object(range)
            }
        }
    }

    /// Whether a raw record value is allowed (schema application).
    pub fn allows_raw(&self, value: &str) -> bool {
        match self {
            Allowed::Values { raw, .. } => raw.iter().any(|v| v == value),
            _ => self.allows_stored(value),
        }
    }

    /// Whether a stored (sanitised) value is allowed (filtering partitions).
    pub fn allows_stored(&self, value: &str) -> bool {
        match self {
            Allowed::Any => true,
            Allowed::Values { stored, .. } => stored.iter().any(|v| v == value),
            Allowed::Range { min, max } => {
                min.as_deref()
                    .is_none_or(|m| compare(value, m) != Ordering::Less)
                    && max
                        .as_deref()
                        .is_none_or(|m| compare(value, m) != Ordering::Greater)
            }
        }
    }
}

/// Compares two dimension values for min/max bounds:
/// - two timestamps (`YYYYMMDD[hh[mm[ss]]]` digit strings, such as build ids and submission
///   dates) compare at the precision of the shorter one, so a date bound covers its whole day:
///   `{"max": "20130607"}` admits build `20130607030201` (the seed excluded it) and
///   `{"min": "20130600"}` refuses build `20120101000000`;
/// - other numbers compare numerically (`"1000" > "448"`; the seed compared strings);
/// - anything else compares as strings.
pub fn compare(a: &str, b: &str) -> Ordering {
    if let (Some(x), Some(y)) = (as_timestamp(a), as_timestamp(b)) {
        let n = x.len().min(y.len());
        return x[..n].cmp(&y[..n]);
    }
    if let (Some(x), Some(y)) = (as_integer(a), as_integer(b)) {
        return compare_integers(x, y);
    }
    match (as_number(a), as_number(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => a.cmp(b),
    }
}

/// A `YYYYMMDD`, `YYYYMMDDhh`, `YYYYMMDDhhmm` or `YYYYMMDDhhmmss` digit string (years 19xx/20xx).
fn as_timestamp(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let shaped = matches!(b.len(), 8 | 10 | 12 | 14)
        && b.iter().all(u8::is_ascii_digit)
        && (b.starts_with(b"19") || b.starts_with(b"20"))
        && matches!(&b[4..6], [b'0', b'1'..=b'9'] | [b'1', b'0'..=b'2']);
    shaped.then_some(s)
}

/// `(negative, digits without leading zeros)` for an integer of any length.
fn as_integer(s: &str) -> Option<(bool, &str)> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let digits = digits.trim_start_matches('0');
    Some((negative && !digits.is_empty(), digits))
}

fn compare_integers((an, a): (bool, &str), (bn, b): (bool, &str)) -> Ordering {
    let magnitude = a.len().cmp(&b.len()).then_with(|| a.cmp(b));
    match (an, bn) {
        (false, false) => magnitude,
        (true, true) => magnitude.reverse(),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
    }
}

/// A finite decimal number (no `inf`, `NaN` or hex).
fn as_number(s: &str) -> Option<f64> {
    let plausible = !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'+' | b'e' | b'E'))
        && s.bytes().any(|c| c.is_ascii_digit());
    plausible
        .then(|| s.parse::<f64>().ok())
        .flatten()
        .filter(|x| x.is_finite())
}

/// Makes a dimension value safe as one path component: every character outside
/// `[A-Za-z0-9_.]` becomes `_` (so `saved-session` → `saved_session`, and `/` cannot create
/// directories, unlike the seed); an empty or all-dots value (`..`) becomes underscores.
pub fn safe_filename(value: &str) -> String {
    let mut out: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.bytes().all(|c| c == b'.') {
        out = "_".repeat(out.len().max(1));
    }
    out
}

/// A value as stored at `level` of a layout with `levels` dimensions: [`safe_filename`], and
/// for the last two levels, which form the file name (`<buildid>.<date>.v2.log…`), also `.` →
/// `_` so the name splits back into its dimensions unambiguously.
pub fn stored_value(value: &str, level: usize, levels: usize) -> String {
    let safe = safe_filename(value);
    if level + 2 >= levels && safe.contains('.') {
        safe.replace('.', "_")
    } else {
        safe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_filename_keeps_one_component() {
        assert_eq!(safe_filename("saved-session"), "saved_session");
        assert_eq!(safe_filename("40.0a2"), "40.0a2");
        assert_eq!(safe_filename("../../etc"), ".._.._etc");
        assert_eq!(safe_filename(".."), "__");
        assert_eq!(safe_filename(""), "_");
        assert_eq!(safe_filename("/abs"), "_abs");
        assert_eq!(safe_filename("Wikipédia"), "Wikip_dia");
    }

    #[test]
    fn numbers_compare_numerically_and_strings_lexicographically() {
        assert_eq!(compare("1000", "448"), Ordering::Greater);
        assert_eq!(compare("0448", "448"), Ordering::Equal);
        assert_eq!(compare("-5", "3"), Ordering::Less);
        assert_eq!(compare("-5", "-30"), Ordering::Greater);
        assert_eq!(compare("2.5", "10"), Ordering::Less);
        assert_eq!(compare("20130607030201", "20130607"), Ordering::Equal); // same day
        assert_eq!(compare("20130606235959", "20130607"), Ordering::Less);
        assert_eq!(compare("20120101000000", "20130600"), Ordering::Less); // numerically greater
        assert_eq!(compare("20140707", "20140707999999"), Ordering::Equal);
        assert_eq!(compare("20131399", "20131301"), Ordering::Greater); // month 13: a plain number
        assert_eq!(compare("123456789", "99999999"), Ordering::Greater);
        assert_eq!(
            compare(
                "123456789012345678901234567890",
                "123456789012345678901234567891"
            ),
            Ordering::Less
        );
        assert_eq!(compare("nightly", "aurora"), Ordering::Greater);
        assert_eq!(compare("inf", "5"), Ordering::Greater); // "inf" is a string here
        assert_eq!(compare("40.0a2", "5"), Ordering::Less); // not a number: string order
    }

    #[test]
    fn open_dimension_values_are_capped_and_checked_against_the_pattern() {
        let schema = Schema::from_json(
            r#"{"dimensions": [{"field_name": "reason", "allowed_values": ["saved-session"]},
                               {"field_name": "appVersion", "allowed_values": "*"},
                               {"field_name": "appBuildID", "allowed_values": {"min": "2015"}}]}"#,
        )
        .unwrap();
        let long = "9".repeat(65);
        // The length cap holds without any configuration.
        assert_eq!(
            schema.apply(&[Some("saved-session"), Some(&long), Some("20150522004047")]),
            ["saved-session", "OTHER", "20150522004047"]
        );
        assert_eq!(
            schema.apply(&[None, Some(&long[..64]), Some(&long)]),
            vec![
                "OTHER".to_string(),
                long[..64].to_string(),
                "OTHER".to_string()
            ]
        );
        let strict =
            schema.with_value_policy(ValuePolicy::new(64, DEFAULT_DIMENSION_PATTERN).unwrap());
        assert_eq!(
            strict.apply(&[None, Some("40.0a2"), Some("2016")]),
            ["OTHER", "40.0a2", "2016"]
        );
        assert_eq!(
            strict.apply(&[None, Some("../etc"), Some("2016 x")]),
            ["OTHER", "OTHER", "OTHER"]
        );
        assert_eq!(
            strict.apply(&[None, None, None]),
            ["OTHER", "UNKNOWN", "UNKNOWN"]
        );
        assert!(ValuePolicy::new(64, "([").is_err());
    }

    #[test]
    fn bad_documents_are_typed_errors() {
        for bad in [
            "[\"a\"]",
            "{}",
            "{\"version\":2,\"dimensions\":[]}",
            "{\"dimensions\":[{\"allowed_values\":\"*\"}]}",
            "{\"dimensions\":[{\"field_name\":\"a\"}]}",
            "{\"dimensions\":[{\"field_name\":\"a\",\"allowed_values\":{\"low\":1}}]}",
            "{\"dimensions\":[{\"field_name\":\"a\",\"allowed_values\":[{}]}]}",
            "{\"dimensions\":[{\"field_name\":\"a\",\"allowed_values\":true}]}",
            "not json",
        ] {
            assert!(
                matches!(Schema::from_json(bad), Err(StorageError::Schema { .. })),
                "{bad}"
            );
        }
    }
}
