//! Histogram objects → the compact array form (docs/formats/compact-histograms.md):
//! `[bucket_0 … bucket_{N-1}, sum, log_sum, log_sum_squares, sum_squares_lo, sum_squares_hi]`,
//! N from the definition, missing buckets 0, absent statistics −1, statistics copied as given.
//!
//! Each payload histogram is validated against its definition: `histogram_type`,
//! `bucket_count` and `range` must match when present, every `values` key must be a bucket
//! lower bound and every count an integer. Unknown names are dropped (as in the seed) and counted.

use std::rc::Rc;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::bad_record::BadRecord;
use super::split;
use crate::histograms::{BucketLayout, Definition, Definitions, Kind, RawObject};

/// The trailing statistics, in array order.
const STATS: [&str; 5] = [
    "sum",
    "log_sum",
    "log_sum_squares",
    "sum_squares_lo",
    "sum_squares_hi",
];

/// Empty buckets as written in the compact array, 32 of them.
const ZEROS: &str = "0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,";

/// Members of an object: keys (unescaped) and value texts.
type Members<'a> = Vec<split::Member<'a>>;

/// A histogram's `values` object: its text, whose members are read one at a time as the compact
/// array is written, or (from serde_json's reading) its members.
enum Values<'a> {
    Text(&'a str),
    Members(Members<'a>),
}

/// One histogram object of a payload: its values and the members a layout and the statistics
/// need, as JSON texts (a `null` member reads as absent); everything else stays unparsed.
#[derive(Default)]
struct Histogram<'a> {
    values: Option<Values<'a>>,
    range: Option<&'a str>,
    bucket_count: Option<&'a str>,
    histogram_type: Option<&'a str>,
    sum: Option<&'a str>,
    log_sum: Option<&'a str>,
    log_sum_squares: Option<&'a str>,
    sum_squares_lo: Option<&'a str>,
    sum_squares_hi: Option<&'a str>,
}

impl<'a> Histogram<'a> {
    fn stats(&self) -> [Option<&'a str>; 5] {
        [
            self.sum,
            self.log_sum,
            self.log_sum_squares,
            self.sum_squares_lo,
            self.sum_squares_hi,
        ]
    }

    /// The histogram `text` (valid JSON) by one fast scan; `None` leaves it to serde_json
    /// (not an object, `values` not an object, a member given twice).
    fn scan(text: &'a str) -> Option<Histogram<'a>> {
        let mut hist = Histogram::default();
        let mut seen = 0u16;
        for (key, value) in split::members(text)? {
            let (bit, slot) = match key.as_ref() {
                "values" => {
                    if seen & 1 != 0 {
                        return None;
                    }
                    seen |= 1;
                    if value != "null" {
                        if !value.starts_with('{') {
                            return None;
                        }
                        hist.values = Some(Values::Text(value));
                    }
                    continue;
                }
                "range" => (1 << 1, &mut hist.range),
                "bucket_count" => (1 << 2, &mut hist.bucket_count),
                "histogram_type" => (1 << 3, &mut hist.histogram_type),
                "sum" => (1 << 4, &mut hist.sum),
                "log_sum" => (1 << 5, &mut hist.log_sum),
                "log_sum_squares" => (1 << 6, &mut hist.log_sum_squares),
                "sum_squares_lo" => (1 << 7, &mut hist.sum_squares_lo),
                "sum_squares_hi" => (1 << 8, &mut hist.sum_squares_hi),
                _ => continue,
            };
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            *slot = (value != "null").then_some(value);
        }
        Some(hist)
    }
}

/// serde_json's reading of a histogram object, for what [`Histogram::scan`] leaves to it.
#[derive(Deserialize)]
struct ParsedHistogram<'a> {
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

impl<'a> From<ParsedHistogram<'a>> for Histogram<'a> {
    fn from(h: ParsedHistogram<'a>) -> Histogram<'a> {
        let text = |v: Option<&'a RawValue>| v.map(RawValue::get);
        Histogram {
            values: h.values.map(|values| Values::Members(members_of(values))),
            range: text(h.range),
            bucket_count: text(h.bucket_count),
            histogram_type: text(h.histogram_type),
            sum: text(h.sum),
            log_sum: text(h.log_sum),
            log_sum_squares: text(h.log_sum_squares),
            sum_squares_lo: text(h.sum_squares_lo),
            sum_squares_hi: text(h.sum_squares_hi),
        }
    }
}

fn members_of(object: RawObject<'_>) -> Members<'_> {
    object.0.into_iter().map(|(k, v)| (k, v.get())).collect()
}

/// Counts of one conversion.
#[derive(Debug, Default, Clone, Copy)]
pub struct HistogramCounts {
    /// Histograms converted (keyed: one per key).
    pub converted: u32,
    /// Names without a definition (and, when self-description is on, without parameters of
    /// their own), dropped.
    pub unknown: u32,
    /// Histograms that did not validate, dropped (every mode but strict).
    pub dropped: u32,
    /// Of `converted`, laid out by their own parameters ([`Basis::SelfDescribed`]).
    pub self_described: u32,
    /// Of `converted`, laid out by approximate definitions ([`Basis::Nearest`]).
    pub nearest: u32,
}

/// What a histogram that does not validate does to the record.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// The record is rejected (`bad_payload`): the 2013 converter's strict behaviour.
    #[default]
    Reject,
    /// The histogram is dropped and counted; the rest of the record is kept.
    DropInvalid,
}

/// Where one histogram's bucket layout came from, from most to least exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Basis {
    /// The definitions of the ping's own revision.
    Definitions,
    /// The histogram's own `histogram_type`, `bucket_count` and `range`.
    SelfDescribed,
    /// Definitions of another revision (build-id table, app version or the newest set).
    Nearest,
}

/// How the histograms of one payload are laid out and checked.
#[derive(Debug, Clone, Copy)]
pub struct Layouts<'d> {
    /// Definitions to look names up in, if any are available.
    pub definitions: Option<&'d Definitions>,
    /// `definitions` are the ping's own revision (else they only approximate it).
    pub own: bool,
    /// A histogram's own parameters come before approximate definitions.
    pub self_describe: bool,
    pub validation: Validation,
}

/// The layout chosen for one payload histogram.
enum Choice<'d> {
    Defined(&'d Definition, Basis),
    Described(Kind, Rc<BucketLayout>),
}

/// Writes compact histogram sections of one payload, counting what it keeps and drops and
/// noting the layout of every histogram not laid out by the ping's own definitions (an analyst
/// needs it to read the array: `"NAME":[histogram_type,low,high]`, the bucket count being the
/// array length minus the 5 statistics).
pub struct SectionWriter<'d> {
    layouts: Layouts<'d>,
    pub counts: HistogramCounts,
    /// `"NAME":[type,low,high]` members, comma-separated, in payload order.
    pub noted_layouts: String,
}

impl<'d> SectionWriter<'d> {
    pub fn new(layouts: Layouts<'d>) -> SectionWriter<'d> {
        SectionWriter {
            layouts,
            counts: HistogramCounts::default(),
            noted_layouts: String::new(),
        }
    }

    /// Writes the compact form of a `histograms` section (`{NAME: histogram}`) to `out`.
    pub fn write_histograms(&mut self, section: &str, out: &mut String) -> Result<(), BadRecord> {
        self.write_section(section, "histograms", out, |w, name, raw, out| {
            if !w.layouts.self_describe && w.defined(name).is_none() {
                return Ok(false);
            }
            let hist = parse(name, raw)?;
            let Some(choice) = w.choose(name, &hist) else {
                return Ok(false);
            };
            let basis = write_one(name, &choice, &hist, out)?;
            w.count(basis);
            w.note_layout(name, &choice, basis);
            Ok(true)
        })
    }

    /// Writes the compact form of a `keyedHistograms` section (`{NAME: {KEY: histogram}}`).
    /// Every key of a name shares the first key's layout: keys whose own parameters describe
    /// another one make the histogram invalid, like any key that does not validate.
    pub fn write_keyed_histograms(
        &mut self,
        section: &str,
        out: &mut String,
    ) -> Result<(), BadRecord> {
        self.write_section(section, "keyedHistograms", out, |w, name, raw, out| {
            if !w.layouts.self_describe && w.defined(name).is_none() {
                return Ok(false);
            }
            let keys = object(raw, name)?;
            let mut first: Option<Choice> = None;
            out.push('{');
            for (i, (key, raw)) in keys.iter().enumerate() {
                let hist = parse(name, raw)?;
                let Some(choice) = w.choose(name, &hist) else {
                    return Ok(false);
                };
                if let (Some(Choice::Described(_, a)), Choice::Described(_, b)) = (&first, &choice)
                {
                    if a != b {
                        return Err(BadRecord::payload(format!(
                            "{name}[{key}]: histogram parameters differ from the first key's"
                        )));
                    }
                }
                if i > 0 {
                    out.push(',');
                }
                write_key(out, key);
                let basis = write_one(name, &choice, &hist, out)?;
                w.count(basis);
                if first.is_none() {
                    w.note_layout(name, &choice, basis);
                    first = Some(choice);
                }
            }
            out.push('}');
            Ok(true)
        })
    }

    /// A histogram that does not validate: an error in strict mode, else dropped and counted.
    fn reject(&mut self, detail: String) -> Result<(), BadRecord> {
        match self.layouts.validation {
            Validation::Reject => Err(BadRecord::payload(detail)),
            Validation::DropInvalid => {
                self.counts.dropped += 1;
                Ok(())
            }
        }
    }

    fn count(&mut self, basis: Basis) {
        self.counts.converted += 1;
        match basis {
            Basis::Definitions => {}
            Basis::SelfDescribed => self.counts.self_described += 1,
            Basis::Nearest => self.counts.nearest += 1,
        }
    }

    fn note_layout(&mut self, name: &str, choice: &Choice, basis: Basis) {
        if basis == Basis::Definitions {
            return;
        }
        let (kind, layout) = match choice {
            Choice::Defined(def, _) => match &def.layout {
                Ok(layout) => (def.kind, layout),
                Err(_) => return,
            },
            Choice::Described(kind, layout) => (*kind, &**layout),
        };
        if !self.noted_layouts.is_empty() {
            self.noted_layouts.push(',');
        }
        write_key(&mut self.noted_layouts, name);
        let mut digits = itoa::Buffer::new();
        let noted = &mut self.noted_layouts;
        noted.push('[');
        noted.push_str(digits.format(kind.type_code()));
        noted.push(',');
        noted.push_str(digits.format(layout.low));
        noted.push(',');
        noted.push_str(digits.format(layout.high));
        noted.push(']');
    }

    /// The definition of `name`, with its basis.
    fn defined(&self, name: &str) -> Option<Choice<'d>> {
        let basis = if self.layouts.own {
            Basis::Definitions
        } else {
            Basis::Nearest
        };
        let def = self.layouts.definitions?.resolve(name)?;
        Some(Choice::Defined(def, basis))
    }

    /// The layout of histogram `name`: its own parameters first when self-description is on,
    /// else (or when it has none that make a layout) its definition. `None`: unknown.
    fn choose(&self, name: &str, hist: &Histogram) -> Option<Choice<'d>> {
        if self.layouts.self_describe {
            if let Some((kind, layout)) = described_layout(hist) {
                return Some(Choice::Described(kind, layout));
            }
        }
        self.defined(name)
    }

    /// Writes `{NAME: value}` for every histogram `write_value` keeps. One it answers `false`
    /// for has no layout (an unknown name) and is counted as unknown; one that fails is taken
    /// back out and, unless strict, counted as dropped.
    fn write_section(
        &mut self,
        section: &str,
        what: &str,
        out: &mut String,
        write_value: impl Fn(&mut Self, &str, &str, &mut String) -> Result<bool, BadRecord>,
    ) -> Result<(), BadRecord> {
        let members = object(section, what)?;
        out.push('{');
        let mut first = true;
        for (name, raw) in &members {
            let (rollback, counts, noted) = (out.len(), self.counts, self.noted_layouts.len());
            if !first {
                out.push(',');
            }
            write_key(out, name);
            match write_value(self, name, raw, out) {
                Ok(true) => first = false,
                Ok(false) => {
                    out.truncate(rollback);
                    self.noted_layouts.truncate(noted);
                    self.counts = counts;
                    self.counts.unknown += 1;
                }
                Err(err) => {
                    out.truncate(rollback);
                    self.noted_layouts.truncate(noted);
                    self.counts = counts;
                    self.reject(err.detail)?;
                }
            }
        }
        out.push('}');
        Ok(())
    }
}

/// The layout a histogram's own `histogram_type`, `bucket_count` and `range` describe, by the
/// same formulas as a definition's; `None` when it lacks any of them or they make no layout
/// (unknown kind, non-integers, a bucket count or range a definition could not have).
fn described_layout(hist: &Histogram) -> Option<(Kind, Rc<BucketLayout>)> {
    let kind = as_int(hist.histogram_type?).and_then(Kind::from_type_code)?;
    let count = as_int(hist.bucket_count?)?;
    let (low, high) = int_pair(hist.range?)?;
    let layout = super::layout_cache::layout(kind, low.max(1), high, count)?;
    Some((kind, layout))
}

fn parse<'a>(name: &str, text: &'a str) -> Result<Histogram<'a>, BadRecord> {
    if let Some(hist) = Histogram::scan(text) {
        return Ok(hist);
    }
    serde_json::from_str::<ParsedHistogram>(text)
        .map(Histogram::from)
        .map_err(|e| BadRecord::payload(format!("{name} is not a histogram object: {e}")))
}

/// The members of `text` (valid JSON), which must be an object.
fn object<'a>(text: &'a str, what: &str) -> Result<Members<'a>, BadRecord> {
    if let Some(members) = split::members(text) {
        return Ok(members);
    }
    RawObject::parse(text)
        .map(members_of)
        .map_err(|e| BadRecord::payload(format!("{what} is not an object: {e}")))
}

/// Writes `"key":`, escaping only when needed.
pub fn write_key(out: &mut String, key: &str) {
    if super::string_scan::next_stop::<true>(key.as_bytes(), 0).is_some() {
        out.push_str(&serde_json::to_string(key).unwrap_or_default());
        out.push(':');
    } else {
        out.reserve(key.len() + 3);
        out.push('"');
        out.push_str(key);
        out.push_str("\":");
    }
}

/// Validates `hist` against the chosen layout and writes its compact array; answers the basis.
fn write_one(
    name: &str,
    choice: &Choice,
    hist: &Histogram,
    out: &mut String,
) -> Result<Basis, BadRecord> {
    let (layout, basis) = match choice {
        Choice::Defined(def, basis) => {
            let layout = def.layout.as_ref().map_err(|e| {
                BadRecord::payload(format!("Bad Histogram definition for {}: {e}", def.name))
            })?;
            validate(name, def, layout, hist)?;
            (layout, *basis)
        }
        Choice::Described(_, layout) => (&**layout, Basis::SelfDescribed),
    };
    let values = hist
        .values
        .as_ref()
        .ok_or_else(|| BadRecord::payload(format!("Bad Histogram key: {name} has no 'values'")))?;
    let mut counts = vec![0i64; layout.n_buckets()];
    // Where the next key's bucket probably is: the one after the last key's.
    let mut next = 0;
    // One member: its key's text and value (`None`: not an integer), its count's text and value.
    let mut count_one = |key: &str, bound: Option<i64>, count: &str, value: Option<i64>| {
        let index = bound
            .and_then(|bound| layout.index_of_near(bound, next))
            .ok_or_else(|| {
                BadRecord::payload(format!("Found invalid bucket {name}.values[{key}]"))
            })?;
        let value = value.ok_or_else(|| {
            BadRecord::payload(format!(
                "Found non-integer bucket value: {name}.values[{key}] = {count}"
            ))
        })?;
        if value < 0 && basis != Basis::Definitions {
            return Err(BadRecord::payload(format!(
                "Found negative bucket value: {name}.values[{key}] = {value}"
            )));
        }
        counts[index] = value;
        next = index + 1;
        Ok(())
    };
    match values {
        Values::Members(members) => {
            for (key, count) in members {
                count_one(key, key.parse().ok(), count, count.parse().ok())?;
            }
        }
        Values::Text(text) => {
            // Real values objects are all integers: read in one tight pass, else member by member.
            let fast = split::integer_members(text, |key, bound, count, value| {
                count_one(key, Some(bound), count, Some(value))
            });
            match fast {
                Some(result) => result?,
                None => {
                    for member in split::member_iter(text).into_iter().flatten() {
                        let (key, count) = member.ok_or_else(|| {
                            BadRecord::payload(format!(
                                "{name}.values has a key that does not decode"
                            ))
                        })?;
                        count_one(&key, key.parse().ok(), count, count.parse().ok())?;
                    }
                }
            }
        }
    }
    out.reserve(2 * counts.len() + 64);
    out.push('[');
    let mut digits = itoa::Buffer::new();
    let mut rest = &counts[..];
    while let Some((&count, after)) = rest.split_first() {
        if count == 0 {
            // Most buckets are empty: a run of them is one copy.
            let run = rest
                .iter()
                .take(ZEROS.len() / 2)
                .take_while(|&&c| c == 0)
                .count();
            out.push_str(&ZEROS[..2 * run]);
            rest = &rest[run..];
        } else {
            out.push_str(digits.format(count));
            out.push(',');
            rest = after;
        }
    }
    for (i, (stat, value)) in STATS.iter().zip(hist.stats()).enumerate() {
        if i > 0 {
            out.push(',');
        }
        match value {
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
    Ok(basis)
}

fn int_pair(text: &str) -> Option<(i64, i64)> {
    // Fast path for the usual minified `[low,high]` of integers; anything else is parsed.
    let plain = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
    if let Some((lo, hi)) = plain.and_then(|t| t.split_once(',')) {
        if let (Ok(lo), Ok(hi)) = (lo.parse::<i64>(), hi.parse::<i64>()) {
            return Some((lo, hi));
        }
    }
    let range: Vec<&RawValue> = serde_json::from_str(text).ok()?;
    match range.as_slice() {
        [lo, hi] => Some((as_int(lo.get())?, as_int(hi.get())?)),
        _ => None,
    }
}

fn is_number(text: &str) -> bool {
    text.bytes()
        .next()
        .is_some_and(|b| b == b'-' || b.is_ascii_digit())
}

fn as_int(text: &str) -> Option<i64> {
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
                raw,
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
                raw,
                layout.n_buckets()
            )));
        }
    }
    if let Some(raw) = hist.range {
        if int_pair(raw) != Some((layout.low, layout.high)) {
            return Err(BadRecord::payload(format!(
                "{name}: range {} does not match the definition ([{}, {}])",
                raw, layout.low, layout.high
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

    fn layouts(defs: &Definitions, validation: Validation) -> Layouts<'_> {
        Layouts {
            definitions: Some(defs),
            own: true,
            self_describe: false,
            validation,
        }
    }

    fn write(
        json: &str,
        layouts: Layouts,
        keyed: bool,
    ) -> Result<(String, HistogramCounts, String), BadRecord> {
        let raw: &RawValue = serde_json::from_str(json).unwrap();
        let raw = raw.get();
        let mut out = String::new();
        let mut writer = SectionWriter::new(layouts);
        if keyed {
            writer.write_keyed_histograms(raw, &mut out)?;
        } else {
            writer.write_histograms(raw, &mut out)?;
        }
        Ok((out, writer.counts, writer.noted_layouts))
    }

    fn convert(json: &str) -> Result<(String, HistogramCounts), BadRecord> {
        let (out, counts, _) = write(json, layouts(&defs(), Validation::Reject), false)?;
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
    fn bucket_keys_are_read_unescaped() {
        let (out, _) =
            convert(r#"{"HTTP_X": {"values": {"\u0030": 4, "1": 0, "\u0032": 2}}}"#).unwrap();
        assert_eq!(out, r#"{"HTTP_X":[4,0,2,0,-1,-1,-1,-1,-1]}"#);
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
            (r#"{"HTTP_X": {"values": [1]}}"#, "not a histogram object"),
            (
                r#"{"HTTP_X": {"values": {"0": 1, "\ud800": 1}}}"#,
                "HTTP_X.values has a key that does not decode",
            ),
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
        let defs = defs();
        let drop = layouts(&defs, Validation::DropInvalid);
        let (out, counts, _) = write(
            r#"{"HTTP_X": {"values": {"7": 1}}, "STARTUP_CRASH_DETECTED": {"values": {"0": 1}}, "NOPE": {}, "A11Y_IATABLE_USAGE_FLAG": {"values": {}, "sum": "x"}}"#,
            drop,
            false,
        )
        .unwrap();
        assert_eq!(out, r#"{"STARTUP_CRASH_DETECTED":[1,0,0,-1,-1,-1,-1,-1]}"#);
        assert_eq!(
            (counts.converted, counts.unknown, counts.dropped),
            (1, 1, 2)
        );
        let (out, counts, _) = write(
            r#"{"K": {"a": {"values": {"0": 3}}, "b": {"values": {"x": 1}}}}"#,
            drop,
            true,
        )
        .unwrap();
        assert_eq!(out, "{}");
        assert_eq!((counts.converted, counts.dropped), (0, 1));
        assert!(write("[1]", drop, false).is_err());
    }

    /// A histogram carrying `histogram_type`, `bucket_count` and `range` (as every v4 and most
    /// classic ones do) converts without definitions, checked against that layout.
    #[test]
    fn self_described_histograms_need_no_definitions() {
        let none = Layouts {
            definitions: None,
            own: false,
            self_describe: true,
            validation: Validation::DropInvalid,
        };
        let (out, counts, noted) = write(
            r#"{"EXP": {"range": [1, 3000], "bucket_count": 10, "histogram_type": 0, "values": {"0": 2, "8": 3, "1114": 1}, "sum": 1200},
                "ENUM": {"range": [1, 3], "bucket_count": 4, "histogram_type": 1, "values": {"2": 5}, "sum": 10},
                "BAD_KEY": {"range": [1, 3000], "bucket_count": 10, "histogram_type": 0, "values": {"9": 1}},
                "NEGATIVE": {"range": [1, 2], "bucket_count": 3, "histogram_type": 2, "values": {"0": -1}},
                "NO_PARAMS": {"values": {"0": 1}},
                "BAD_KIND": {"range": [1, 2], "bucket_count": 3, "histogram_type": 9, "values": {}}}"#,
            none,
            false,
        )
        .unwrap();
        assert_eq!(
            out,
            r#"{"EXP":[2,0,0,3,0,0,0,0,1,0,1200,-1,-1,-1,-1],"ENUM":[0,0,5,0,10,-1,-1,-1,-1]}"#
        );
        assert_eq!(noted, r#""EXP":[0,1,3000],"ENUM":[1,1,3]"#);
        assert_eq!(
            (counts.converted, counts.self_described, counts.nearest),
            (2, 2, 0)
        );
        assert_eq!((counts.dropped, counts.unknown), (2, 2));
        // Without self-description (strict) the same histograms are unknown names.
        let strict = Layouts {
            self_describe: false,
            validation: Validation::Reject,
            ..none
        };
        let (out, counts, _) = write(r#"{"EXP": {"range": [1, 3000], "bucket_count": 10, "histogram_type": 0, "values": {}}}"#, strict, false).unwrap();
        assert_eq!((out.as_str(), counts.unknown), ("{}", 1));
    }

    /// Approximate definitions serve histograms without parameters; a histogram's own
    /// parameters win over them.
    #[test]
    fn own_parameters_come_before_approximate_definitions() {
        let defs = defs();
        let nearest = Layouts {
            definitions: Some(&defs),
            own: false,
            self_describe: true,
            validation: Validation::DropInvalid,
        };
        let (out, counts, noted) = write(
            r#"{"HTTP_X": {"values": {"2": 1}}, "DOM_TIMERS_FIRED_PER_NATIVE_TIMEOUT": {"range": [1, 10], "bucket_count": 3, "histogram_type": 1, "values": {"10": 4}}}"#,
            nearest,
            false,
        )
        .unwrap();
        assert_eq!(
            out,
            r#"{"HTTP_X":[0,0,1,0,-1,-1,-1,-1,-1],"DOM_TIMERS_FIRED_PER_NATIVE_TIMEOUT":[0,0,4,-1,-1,-1,-1,-1]}"#
        );
        assert_eq!(
            noted,
            r#""HTTP_X":[1,1,3],"DOM_TIMERS_FIRED_PER_NATIVE_TIMEOUT":[1,1,10]"#
        );
        assert_eq!((counts.self_described, counts.nearest), (1, 1));
        // Keyed: every key must share the first key's layout.
        let (out, counts, _) = write(
            r#"{"KD": {"a": {"range": [1, 2], "bucket_count": 3, "histogram_type": 4, "values": {"0": 7}}, "b": {"range": [1, 2], "bucket_count": 3, "histogram_type": 4, "values": {}}},
                "KX": {"a": {"range": [1, 2], "bucket_count": 3, "histogram_type": 4, "values": {}}, "b": {"range": [1, 9], "bucket_count": 3, "histogram_type": 1, "values": {}}}}"#,
            nearest,
            true,
        )
        .unwrap();
        assert_eq!(
            out,
            r#"{"KD":{"a":[7,0,0,-1,-1,-1,-1,-1],"b":[0,0,0,-1,-1,-1,-1,-1]}}"#
        );
        assert_eq!((counts.converted, counts.dropped), (2, 1));
    }

    #[test]
    fn keyed_histograms_convert_per_key() {
        let defs = defs();
        let (out, counts, _) = write(
            r#"{"K": {"a": {"values": {"0": 3}, "sum": 3}, "b\"": {"values": {}}}, "X": {}}"#,
            layouts(&defs, Validation::Reject),
            true,
        )
        .unwrap();
        assert_eq!(
            out,
            r#"{"K":{"a":[3,0,0,3,-1,-1,-1,-1],"b\"":[0,0,0,-1,-1,-1,-1,-1]}}"#
        );
        assert_eq!((counts.converted, counts.unknown), (2, 1));
    }
}
