//! Histogram objects → the compact array form (seed reference §5.2):
//! `[bucket_0 … bucket_{N-1}, sum, log_sum, log_sum_squares, sum_squares_lo, sum_squares_hi]`,
//! N from the definition, missing buckets 0, absent statistics −1, statistics copied as given.
//!
//! Each payload histogram is validated against its definition: `histogram_type`,
//! `bucket_count` and `range` must match when present, every `values` key must be a bucket
//! lower bound and every count an integer. Unknown names are dropped (as in the seed) and counted.

use std::fmt::Write;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::bad_record::BadRecord;
use crate::histograms::{BucketLayout, Definition, Definitions, RawObject};

/// The trailing statistics, in array order.
const STATS: [&str; 5] = [
    "sum",
    "log_sum",
    "log_sum_squares",
    "sum_squares_lo",
    "sum_squares_hi",
];

/// One histogram object of a payload; sections not needed stay unparsed.
#[derive(Deserialize)]
struct Histogram<'a> {
    #[serde(borrow)]
    values: Option<RawObject<'a>>,
    #[serde(borrow)]
    range: Option<&'a RawValue>,
    #[serde(borrow)]
    bucket_count: Option<&'a RawValue>,
    #[serde(borrow)]
    histogram_type: Option<&'a RawValue>,
    #[serde(borrow)]
    sum: Option<&'a RawValue>,
    #[serde(borrow)]
    log_sum: Option<&'a RawValue>,
    #[serde(borrow)]
    log_sum_squares: Option<&'a RawValue>,
    #[serde(borrow)]
    sum_squares_lo: Option<&'a RawValue>,
    #[serde(borrow)]
    sum_squares_hi: Option<&'a RawValue>,
}

impl<'a> Histogram<'a> {
    fn stats(&self) -> [Option<&'a RawValue>; 5] {
        [
            self.sum,
            self.log_sum,
            self.log_sum_squares,
            self.sum_squares_lo,
            self.sum_squares_hi,
        ]
    }
}

/// Counts of one conversion.
#[derive(Debug, Default, Clone, Copy)]
pub struct HistogramCounts {
    /// Histograms converted (keyed: one per key).
    pub converted: u32,
    /// Names without a definition, dropped.
    pub unknown: u32,
    /// Histograms that did not validate against approximate definitions, dropped
    /// ([`Validation::DropInvalid`] only).
    pub dropped: u32,
}

/// What a histogram that does not validate against its definition does to the record.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// The record is rejected (`bad_payload`): the definitions are the ping's own.
    #[default]
    Reject,
    /// The histogram is dropped and counted: the definitions only approximate the ping's.
    DropInvalid,
}

/// Writes the compact form of a `histograms` section (`{NAME: histogram}`) to `out`.
pub fn write_histograms(
    section: &RawValue,
    defs: &Definitions,
    validation: Validation,
    out: &mut String,
    counts: &mut HistogramCounts,
) -> Result<(), BadRecord> {
    write_section(
        section,
        "histograms",
        defs,
        validation,
        out,
        counts,
        |name, def, raw, out, counts| {
            write_one(name, def, raw, out)?;
            counts.converted += 1;
            Ok(())
        },
    )
}

/// Writes the compact form of a `keyedHistograms` section (`{NAME: {KEY: histogram}}`).
pub fn write_keyed_histograms(
    section: &RawValue,
    defs: &Definitions,
    validation: Validation,
    out: &mut String,
    counts: &mut HistogramCounts,
) -> Result<(), BadRecord> {
    write_section(
        section,
        "keyedHistograms",
        defs,
        validation,
        out,
        counts,
        |name, def, raw, out, counts| {
            let keys = object(raw, name)?;
            out.push('{');
            for (i, (key, hist)) in keys.0.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_key(out, key);
                write_one(name, def, hist, out)?;
                counts.converted += 1;
            }
            out.push('}');
            Ok(())
        },
    )
}

type WriteValue =
    fn(&str, &Definition, &RawValue, &mut String, &mut HistogramCounts) -> Result<(), BadRecord>;

/// Writes `{NAME: value}` for every defined name of a section (unknown names are counted and
/// dropped), the value written by `write_value`. With [`Validation::DropInvalid`] a value that
/// fails is taken back out (a keyed histogram as a whole) and counted as dropped.
fn write_section(
    section: &RawValue,
    what: &str,
    defs: &Definitions,
    validation: Validation,
    out: &mut String,
    counts: &mut HistogramCounts,
    write_value: WriteValue,
) -> Result<(), BadRecord> {
    let members = object(section, what)?;
    out.push('{');
    let mut first = true;
    for (name, raw) in &members.0 {
        let Some(def) = defs.resolve(name) else {
            counts.unknown += 1;
            continue;
        };
        let (rollback, converted) = (out.len(), counts.converted);
        if !first {
            out.push(',');
        }
        write_key(out, name);
        match write_value(name, def, raw, out, counts) {
            Ok(()) => first = false,
            Err(_) if validation == Validation::DropInvalid => {
                out.truncate(rollback);
                counts.converted = converted;
                counts.dropped += 1;
            }
            Err(err) => return Err(err),
        }
    }
    out.push('}');
    Ok(())
}

fn object<'a>(raw: &'a RawValue, what: &str) -> Result<RawObject<'a>, BadRecord> {
    RawObject::parse(raw.get())
        .map_err(|e| BadRecord::payload(format!("{what} is not an object: {e}")))
}

/// Writes `"key":`, escaping only when needed.
pub fn write_key(out: &mut String, key: &str) {
    if key.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(&serde_json::to_string(key).unwrap_or_default());
    } else {
        out.push('"');
        out.push_str(key);
        out.push('"');
    }
    out.push(':');
}

fn write_one(
    name: &str,
    def: &Definition,
    raw: &RawValue,
    out: &mut String,
) -> Result<(), BadRecord> {
    let hist: Histogram = serde_json::from_str(raw.get())
        .map_err(|e| BadRecord::payload(format!("{name} is not a histogram object: {e}")))?;
    let layout = def.layout.as_ref().map_err(|e| {
        BadRecord::payload(format!("Bad Histogram definition for {}: {e}", def.name))
    })?;
    validate(name, def, layout, &hist)?;
    let values = hist
        .values
        .as_ref()
        .ok_or_else(|| BadRecord::payload(format!("Bad Histogram key: {name} has no 'values'")))?;
    let mut counts = vec![0i64; layout.n_buckets()];
    for (key, count) in &values.0 {
        let index = key
            .parse::<i64>()
            .ok()
            .and_then(|bound| layout.index_of(bound))
            .ok_or_else(|| {
                BadRecord::payload(format!("Found invalid bucket {name}.values[{key}]"))
            })?;
        counts[index] = count.get().parse::<i64>().map_err(|_| {
            BadRecord::payload(format!(
                "Found non-integer bucket value: {name}.values[{key}] = {}",
                count.get()
            ))
        })?;
    }
    out.push('[');
    for count in counts {
        if count == 0 {
            out.push('0');
        } else {
            let _ = write!(out, "{count}");
        }
        out.push(',');
    }
    for (i, (stat, value)) in STATS.iter().zip(hist.stats()).enumerate() {
        if i > 0 {
            out.push(',');
        }
        match value.map(RawValue::get) {
            None | Some("null") => out.push_str("-1"),
            Some(number) if is_number(number) => out.push_str(number),
            Some(other) => {
                return Err(BadRecord::payload(format!(
                    "{name}.{stat} is not a number: {other}"
                )))
            }
        }
    }
    out.push(']');
    Ok(())
}

fn is_number(text: &str) -> bool {
    text.bytes()
        .next()
        .is_some_and(|b| b == b'-' || b.is_ascii_digit())
}

fn as_int(raw: &RawValue) -> Option<i64> {
    let text = raw.get();
    text.parse::<i64>().ok().or_else(|| {
        text.parse::<f64>()
            .ok()
            .filter(|f| f.fract() == 0.0)
            .map(|f| f as i64)
    })
}

/// Kind, bucket count and range of the payload against the definition (each when present;
/// bucket count and range not for definitions with assumed parameters).
fn validate(
    name: &str,
    def: &Definition,
    layout: &BucketLayout,
    hist: &Histogram,
) -> Result<(), BadRecord> {
    if let Some(raw) = hist.histogram_type {
        let code = def.kind.type_code();
        if as_int(raw) != Some(code.into()) {
            return Err(BadRecord::payload(format!(
                "{name}: histogram_type {} does not match the definition ({}, type {code})",
                raw.get(),
                def.kind.name()
            )));
        }
    }
    if def.assumed {
        return Ok(());
    }
    if let Some(raw) = hist.bucket_count {
        if as_int(raw) != Some(layout.n_buckets() as i64) {
            return Err(BadRecord::payload(format!(
                "{name}: bucket_count {} does not match the definition ({})",
                raw.get(),
                layout.n_buckets()
            )));
        }
    }
    if let Some(raw) = hist.range {
        let range: Option<Vec<&RawValue>> = serde_json::from_str(raw.get()).ok();
        let range = range.and_then(|r| match r.as_slice() {
            [lo, hi] => Some((as_int(lo)?, as_int(hi)?)),
            _ => None,
        });
        if range != Some((layout.low, layout.high)) {
            return Err(BadRecord::payload(format!(
                "{name}: range {} does not match the definition ([{}, {}])",
                raw.get(),
                layout.low,
                layout.high
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::BadRecordKind;

    fn defs() -> Definitions {
        Definitions::from_json(
            r#"{"DOM_TIMERS_FIRED_PER_NATIVE_TIMEOUT": {"kind": "exponential", "high": 3000, "n_buckets": 10},
                "CYCLE_COLLECTOR_NEED_GC": {"kind": "boolean"},
                "STARTUP_CRASH_DETECTED": {"kind": "flag"},
                "A11Y_IATABLE_USAGE_FLAG": {"kind": "flag"},
                "HTTP_X": {"kind": "enumerated", "n_values": 3},
                "K": {"kind": "count", "keyed": true}}"#,
        )
        .unwrap()
    }

    fn convert(json: &str) -> Result<(String, HistogramCounts), BadRecord> {
        let raw: &RawValue = serde_json::from_str(json).unwrap();
        let mut out = String::new();
        let mut counts = HistogramCounts::default();
        write_histograms(raw, &defs(), Validation::Reject, &mut out, &mut counts)?;
        Ok((out, counts))
    }

    #[test]
    fn seed_storage_format_examples() {
        let (out, _) = convert(
            r#"{"DOM_TIMERS_FIRED_PER_NATIVE_TIMEOUT": {"range": [1, 3000], "bucket_count": 10, "histogram_type": 0,
                 "values": {"0":0, "1":1232, "3":7, "8":2, "414":1, "1114":0},
                 "sum": 1279, "log_sum": 873.474196434021, "log_sum_squares": 624.027626294358},
                "CYCLE_COLLECTOR_NEED_GC": {"values": {"0":3116,"1":1,"2":0}, "sum": 1, "sum_squares_lo": 1, "sum_squares_hi": 0},
                "STARTUP_CRASH_DETECTED": {"values": {"0":1,"1":0}, "sum": 0, "sum_squares_lo": 0, "sum_squares_hi": 0},
                "A11Y_IATABLE_USAGE_FLAG": {"values": {"0":1}, "sum": 4984161763, "sum_squares_lo": 1.23415, "sum_squares_hi": 1.01}}"#,
        )
        .unwrap();
        assert_eq!(
            out,
            concat!(
                r#"{"DOM_TIMERS_FIRED_PER_NATIVE_TIMEOUT":[0,1232,7,2,0,0,0,1,0,0,1279,873.474196434021,624.027626294358,-1,-1],"#,
                r#""CYCLE_COLLECTOR_NEED_GC":[3116,1,0,1,-1,-1,1,0],"STARTUP_CRASH_DETECTED":[1,0,0,0,-1,-1,0,0],"#,
                r#""A11Y_IATABLE_USAGE_FLAG":[1,0,0,4984161763,-1,-1,1.23415,1.01]}"#
            )
        );
    }

    #[test]
    fn startup_fallback_keeps_the_key_and_unknown_names_are_counted() {
        let (out, counts) =
            convert(r#"{"STARTUP_HTTP_X": {"values": {"2": 5}}, "NOPE": {"values": {}}}"#).unwrap();
        assert_eq!(out, r#"{"STARTUP_HTTP_X":[0,0,5,0,-1,-1,-1,-1,-1]}"#);
        assert_eq!((counts.converted, counts.unknown), (1, 1));
    }

    #[test]
    fn validation_failures_are_bad_payload() {
        let cases = [
            (
                r#"{"HTTP_X": {"values": {"7": 1}}}"#,
                "invalid bucket HTTP_X.values[7]",
            ),
            (r#"{"HTTP_X": {"values": {"2 09": 1}}}"#, "invalid bucket"),
            (
                r#"{"HTTP_X": {"values": {"1": 1.5}}}"#,
                "non-integer bucket value",
            ),
            (
                r#"{"HTTP_X": {"values": {"1": true}}}"#,
                "non-integer bucket value",
            ),
            (
                r#"{"HTTP_X": {"histogram_type": 0, "values": {}}}"#,
                "histogram_type 0",
            ),
            (
                r#"{"HTTP_X": {"bucket_count": 5, "values": {}}}"#,
                "bucket_count 5",
            ),
            (
                r#"{"HTTP_X": {"range": [1, 4], "values": {}}}"#,
                "range [1, 4]",
            ),
            (r#"{"HTTP_X": {"value s": {}}}"#, "has no 'values'"),
            (
                r#"{"HTTP_X": {"values": {}, "sum": "x"}}"#,
                "sum is not a number",
            ),
            (r#"{"HTTP_X": [1]}"#, "not a histogram object"),
            (r#"[1]"#, "histograms is not an object"),
        ];
        for (json, expected) in cases {
            let err = convert(json).unwrap_err();
            assert_eq!(err.kind, BadRecordKind::BadPayload, "{json}");
            assert!(err.detail.contains(expected), "{json}: {}", err.detail);
        }
    }

    #[test]
    fn drop_invalid_drops_only_the_failing_histograms() {
        let raw: &RawValue = serde_json::from_str(
            r#"{"HTTP_X": {"values": {"7": 1}}, "STARTUP_CRASH_DETECTED": {"values": {"0": 1}}, "NOPE": {}, "A11Y_IATABLE_USAGE_FLAG": {"values": {}, "sum": "x"}}"#,
        )
        .unwrap();
        let mut out = String::new();
        let mut counts = HistogramCounts::default();
        write_histograms(raw, &defs(), Validation::DropInvalid, &mut out, &mut counts).unwrap();
        assert_eq!(out, r#"{"STARTUP_CRASH_DETECTED":[1,0,0,-1,-1,-1,-1,-1]}"#);
        assert_eq!(
            (counts.converted, counts.unknown, counts.dropped),
            (1, 1, 2)
        );
        let keyed: &RawValue = serde_json::from_str(
            r#"{"K": {"a": {"values": {"0": 3}}, "b": {"values": {"x": 1}}}}"#,
        )
        .unwrap();
        let (mut out, mut counts) = (String::new(), HistogramCounts::default());
        write_keyed_histograms(
            keyed,
            &defs(),
            Validation::DropInvalid,
            &mut out,
            &mut counts,
        )
        .unwrap();
        assert_eq!(out, "{}");
        assert_eq!((counts.converted, counts.dropped), (0, 1));
        let (mut out, mut counts) = (String::new(), HistogramCounts::default());
        let section: &RawValue = serde_json::from_str("[1]").unwrap();
        assert!(write_histograms(
            section,
            &defs(),
            Validation::DropInvalid,
            &mut out,
            &mut counts
        )
        .is_err());
    }

    #[test]
    fn keyed_histograms_convert_per_key() {
        let raw: &RawValue = serde_json::from_str(
            r#"{"K": {"a": {"values": {"0": 3}, "sum": 3}, "b\"": {"values": {}}}, "X": {}}"#,
        )
        .unwrap();
        let mut out = String::new();
        let mut counts = HistogramCounts::default();
        write_keyed_histograms(raw, &defs(), Validation::Reject, &mut out, &mut counts).unwrap();
        assert_eq!(
            out,
            r#"{"K":{"a":[3,0,0,3,-1,-1,-1,-1],"b\"":[0,0,0,-1,-1,-1,-1,-1]}}"#
        );
        assert_eq!((counts.converted, counts.unknown), (2, 1));
    }
}
