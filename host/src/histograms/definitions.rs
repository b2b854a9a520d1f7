//! Histogram definitions: a parsed Histograms.json (any era) or a seed bucket-spec document,
//! each definition with its kind and bucket lower bounds.

use std::collections::HashMap;

use serde_json::Value;

use super::buckets::{self, MAX_BUCKETS};
use super::params::eval_param;
use super::raw_object::RawObject;

/// Histogram kinds of every Histograms.json era.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Buckets spaced exponentially between `low` and `high`.
    Exponential,
    /// Buckets spaced evenly between `low` and `high`.
    Linear,
    /// One bucket per value `0..n_values`.
    Enumerated,
    /// A true/false measurement (fixed three-bucket layout).
    Boolean,
    /// Whether something happened at all in a session (fixed three-bucket layout).
    Flag,
    /// A single counter (fixed three-bucket layout).
    Count,
    /// One bucket per listed label.
    Categorical,
}

impl Kind {
    /// The `kind` string of Histograms.json.
    pub fn from_name(name: &str) -> Option<Kind> {
        Some(match name {
            "exponential" => Kind::Exponential,
            "linear" => Kind::Linear,
            "enumerated" => Kind::Enumerated,
            "boolean" => Kind::Boolean,
            "flag" => Kind::Flag,
            "count" => Kind::Count,
            "categorical" => Kind::Categorical,
            _ => return None,
        })
    }

    /// The `kind` string of Histograms.json.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Exponential => "exponential",
            Kind::Linear => "linear",
            Kind::Enumerated => "enumerated",
            Kind::Boolean => "boolean",
            Kind::Flag => "flag",
            Kind::Count => "count",
            Kind::Categorical => "categorical",
        }
    }

    /// The payload's `histogram_type` and the bucket spec's `kind` code (nsITelemetry constants):
    /// 0 exponential, 1 linear and enumerated, 2 boolean, 3 flag, 4 count, 5 categorical.
    pub fn type_code(self) -> u8 {
        match self {
            Kind::Exponential => 0,
            Kind::Linear | Kind::Enumerated => 1,
            Kind::Boolean => 2,
            Kind::Flag => 3,
            Kind::Count => 4,
            Kind::Categorical => 5,
        }
    }

    /// Inverse of [`Kind::type_code`] (code 1 reads as linear).
    pub fn from_type_code(code: i64) -> Option<Kind> {
        Some(match code {
            0 => Kind::Exponential,
            1 => Kind::Linear,
            2 => Kind::Boolean,
            3 => Kind::Flag,
            4 => Kind::Count,
            5 => Kind::Categorical,
            _ => return None,
        })
    }
}

/// Categorical histograms get at least this many buckets (Firefox's `MIN_CATEGORICAL_BUCKET_COUNT`).
const MIN_CATEGORICAL_BUCKETS: i64 = 50;

/// Bucket layout of one definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketLayout {
    /// Lowest non-underflow bound (`min` of the bucket spec, `range[0]` of a payload).
    pub low: i64,
    /// `high` of the definition (`range[1]` of a payload).
    pub high: i64,
    /// Lower bound of every bucket; `bounds[0] == 0`.
    pub bounds: Vec<i64>,
}

impl BucketLayout {
    /// The layout histogram_tools derives for `kind` from `low`, `high` and `n` buckets
    /// (exponential spacing for [`Kind::Exponential`], linear for every other kind), after the
    /// checks it makes: `3 <= n <= MAX_BUCKETS` and `low < high`.
    pub fn new(kind: Kind, low: i64, high: i64, n: i64) -> Result<BucketLayout, DefinitionError> {
        if !(3..=MAX_BUCKETS).contains(&n) {
            return Err(DefinitionError::BucketCount(n));
        }
        if low >= high {
            return Err(DefinitionError::Range { low, high });
        }
        let bounds = match kind {
            Kind::Exponential => buckets::exponential(low, high, n as usize),
            _ => buckets::linear(low, high, n as usize),
        };
        Ok(BucketLayout { low, high, bounds })
    }

    /// Number of buckets.
    pub fn n_buckets(&self) -> usize {
        self.bounds.len()
    }

    /// Index of the bucket whose lower bound is `bound` (the last one if bounds repeat, as the
    /// seed's `bound -> index` dict did).
    pub fn index_of(&self, bound: i64) -> Option<usize> {
        let after = self.bounds.partition_point(|&b| b <= bound);
        (after > 0 && self.bounds[after - 1] == bound).then(|| after - 1)
    }

    /// [`BucketLayout::index_of`], answered without a search when `hint` is that bucket (a
    /// payload's bucket keys mostly come in order, each the bucket after the one before).
    pub fn index_of_near(&self, bound: i64, hint: usize) -> Option<usize> {
        // Bounds never decrease: `hint` is the last bucket starting at `bound` when the next
        // one starts elsewhere.
        if self.bounds.get(hint) == Some(&bound) && self.bounds.get(hint + 1) != Some(&bound) {
            return Some(hint);
        }
        self.index_of(bound)
    }
}

/// Why a definition has no bucket layout (histogram_tools' `DefinitionException`). Such a
/// definition is kept (its name is known) but left out of bucket specs, and a payload using it is
/// rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    /// A numeric parameter holds something else.
    #[error("{field} is not a number: {value}")]
    NotANumber {
        /// The parameter's name in Histograms.json.
        field: &'static str,
        /// What it holds instead.
        value: String,
    },
    /// A parameter the kind needs is absent.
    #[error("{field} is missing")]
    Missing {
        /// The parameter's name in Histograms.json.
        field: &'static str,
    },
    /// `bucket_count` outside `3..=MAX_BUCKETS`.
    #[error("bucket count {0} out of range 3..={MAX_BUCKETS}")]
    BucketCount(i64),
    /// `low` is not below `high`.
    #[error("low {low} is not below high {high}")]
    Range {
        /// The lower bound.
        low: i64,
        /// The upper bound.
        high: i64,
    },
    /// Explicit bucket lower bounds do not match `bucket_count`.
    #[error("bucket list does not match bucket_count {0}")]
    BucketList(i64),
}

/// One histogram definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    /// The histogram's name (the payload key).
    pub name: String,
    /// Its kind, which decides the bucket formula.
    pub kind: Kind,
    /// `keyed: true`: recorded per string key, in the payload's `keyedHistograms`.
    pub keyed: bool,
    /// Bucket lower bounds, or why they cannot be computed.
    pub layout: Result<BucketLayout, DefinitionError>,
    /// A parameter was a C++ constant whose value was assumed (see
    /// [`Definitions::from_json_with_constants`]); payloads are then not held to this
    /// definition's bucket count and range, only to its bucket lower bounds.
    pub assumed: bool,
}

/// Errors that make a whole definitions document unusable.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The document is not JSON.
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A histogram's definition is not a JSON object.
    #[error("histogram {0}: definition is not an object")]
    NotAnObject(String),
    /// A histogram's definition has no `kind`.
    #[error("histogram {0}: no kind")]
    MissingKind(String),
    /// A histogram's `kind` is not one of [`Kind`].
    #[error("histogram {name}: unknown kind {kind}")]
    UnknownKind {
        /// The histogram's name.
        name: String,
        /// The `kind` it gives.
        kind: String,
    },
}

/// All definitions of one Histograms.json revision, in document order.
#[derive(Debug, Clone, Default)]
pub struct Definitions {
    defs: Vec<Definition>,
    by_name: HashMap<String, usize>,
}

impl Definitions {
    /// Parses a raw Histograms.json (`{NAME: {"kind": …}}`) or a bucket-spec document
    /// (`{"histograms": {NAME: {"kind": "0", "buckets": […], …}}}`). Never panics.
    pub fn from_json(text: &str) -> Result<Definitions, SpecError> {
        Self::from_json_with_constants(text, &[])
    }

    /// Like [`Definitions::from_json`], reading the parameter strings named in `constants` as
    /// those values (the seed patched `JS::gcreason::NUM_TELEMETRY_REASONS` to 101 and
    /// `mozilla::StartupTimeline::MAX_EVENT_ID` to 12 for every revision, although the real values
    /// changed between Firefox versions). Definitions using one are marked [`Definition::assumed`].
    pub fn from_json_with_constants(
        text: &str,
        constants: &[(&str, i64)],
    ) -> Result<Definitions, SpecError> {
        let root = RawObject::parse(text)?;
        let bucket_spec = match root.0.as_slice() {
            [(key, value)] if key == "histograms" => Some(RawObject::parse(value.get())?),
            _ => None,
        };
        let is_spec = bucket_spec.is_some();
        let members = bucket_spec.unwrap_or(root);
        let mut out = Definitions::default();
        for (name, raw) in members.0 {
            let Ok(Value::Object(def)) = serde_json::from_str::<Value>(raw.get()) else {
                return Err(SpecError::NotAnObject(name.into_owned()));
            };
            let parsed = if is_spec {
                from_spec_entry(&name, &def)?
            } else {
                from_definition(&name, &def, constants)?
            };
            out.push(parsed);
        }
        Ok(out)
    }

    fn push(&mut self, def: Definition) {
        match self.by_name.get(&def.name) {
            Some(&i) => self.defs[i] = def,
            None => {
                self.by_name.insert(def.name.clone(), self.defs.len());
                self.defs.push(def);
            }
        }
    }

    /// The definition named `name`.
    pub fn get(&self, name: &str) -> Option<&Definition> {
        self.by_name.get(name).map(|&i| &self.defs[i])
    }

    /// The definition for a payload histogram name: the name itself, else for `STARTUP_X` the
    /// definition of `X` (Firefox's startup snapshots; the seed's fallback).
    pub fn resolve(&self, name: &str) -> Option<&Definition> {
        self.get(name).or_else(|| {
            name.strip_prefix("STARTUP_")
                .and_then(|base| self.get(base))
        })
    }

    /// Definitions in document order.
    pub fn iter(&self) -> impl Iterator<Item = &Definition> {
        self.defs.iter()
    }

    /// Number of histograms defined.
    pub fn len(&self) -> usize {
        self.defs.len()
    }

    /// Whether no histogram is defined.
    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }
}

fn kind_of(name: &str, def: &serde_json::Map<String, Value>) -> Result<Kind, SpecError> {
    match def.get("kind") {
        None => Err(SpecError::MissingKind(name.to_owned())),
        Some(Value::String(s)) => Kind::from_name(s).ok_or_else(|| unknown_kind(name, s)),
        Some(other) => Err(unknown_kind(name, &other.to_string())),
    }
}

fn unknown_kind(name: &str, kind: &str) -> SpecError {
    SpecError::UnknownKind {
        name: name.to_owned(),
        kind: kind.to_owned(),
    }
}

/// A raw Histograms.json definition, bucket parameters as histogram_tools derived them.
fn from_definition(
    name: &str,
    def: &serde_json::Map<String, Value>,
    constants: &[(&str, i64)],
) -> Result<Definition, SpecError> {
    let kind = kind_of(name, def)?;
    let keyed = def.get("keyed").and_then(Value::as_bool).unwrap_or(false);
    let mut params = Params {
        def,
        constants,
        assumed: false,
    };
    let layout = layout(kind, &mut params);
    Ok(Definition {
        name: name.to_owned(),
        kind,
        keyed,
        layout,
        assumed: params.assumed,
    })
}

/// Reads numeric parameters of one definition, noting whether an assumed constant was used.
struct Params<'a> {
    def: &'a serde_json::Map<String, Value>,
    constants: &'a [(&'a str, i64)],
    assumed: bool,
}

impl Params<'_> {
    fn get(&mut self, field: &'static str, default: Option<i64>) -> Result<i64, DefinitionError> {
        let Some(value) = self.def.get(field) else {
            return default.ok_or(DefinitionError::Missing { field });
        };
        if let Some(&(_, constant)) = value
            .as_str()
            .and_then(|s| self.constants.iter().find(|(name, _)| *name == s.trim()))
        {
            self.assumed = true;
            return Ok(constant);
        }
        eval_param(value).ok_or_else(|| DefinitionError::NotANumber {
            field,
            value: value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned),
        })
    }
}

fn layout(kind: Kind, params: &mut Params) -> Result<BucketLayout, DefinitionError> {
    let def = params.def;
    let (low, high, n) = match kind {
        Kind::Boolean | Kind::Flag | Kind::Count => (1, 2, 3),
        Kind::Enumerated => {
            let n_values = params.get("n_values", None)?;
            (1, n_values, n_values.saturating_add(1))
        }
        Kind::Categorical => {
            let labels = def
                .get("labels")
                .and_then(Value::as_array)
                .map_or(0, Vec::len) as i64;
            let n_values = params
                .get("n_values", Some(0))?
                .max(labels)
                .max(MIN_CATEGORICAL_BUCKETS);
            (1, n_values, n_values.saturating_add(1))
        }
        Kind::Linear | Kind::Exponential => (
            params.get("low", Some(1))?.max(1),
            params.get("high", None)?,
            params.get("n_buckets", None)?,
        ),
    };
    BucketLayout::new(kind, low, high, n)
}

/// A bucket-spec entry (`kind` code, `min`, `max`, `bucket_count`, `buckets`), as the seed's
/// C++ `HistogramDefinition` loaded it: the bucket list must have `bucket_count` entries.
fn from_spec_entry(
    name: &str,
    def: &serde_json::Map<String, Value>,
) -> Result<Definition, SpecError> {
    let kind = match def.get("kind") {
        None => return Err(SpecError::MissingKind(name.to_owned())),
        Some(code) => {
            let text = code
                .as_str()
                .map_or_else(|| code.to_string(), str::to_owned);
            text.parse()
                .ok()
                .and_then(Kind::from_type_code)
                .ok_or_else(|| unknown_kind(name, &text))?
        }
    };
    let mut params = Params {
        def,
        constants: &[],
        assumed: false,
    };
    let layout = (|| {
        let count = params.get("bucket_count", None)?;
        let bounds: Vec<i64> = match def.get("buckets").and_then(Value::as_array) {
            Some(list) => list
                .iter()
                .map(Value::as_i64)
                .collect::<Option<_>>()
                .ok_or(DefinitionError::BucketList(count))?,
            None => return Err(DefinitionError::Missing { field: "buckets" }),
        };
        if bounds.len() as i64 != count
            || bounds.first() != Some(&0)
            || bounds.windows(2).any(|w| w[0] > w[1])
        {
            return Err(DefinitionError::BucketList(count));
        }
        Ok(BucketLayout {
            low: params.get("min", None)?,
            high: params.get("max", None)?,
            bounds,
        })
    })();
    Ok(Definition {
        name: name.to_owned(),
        kind,
        keyed: false,
        layout,
        assumed: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        let defs = Definitions::from_json(
            r#"{"B": {"kind": "boolean"}, "F": {"kind": "flag"}, "C": {"kind": "count", "keyed": true},
                "E": {"kind": "enumerated", "n_values": "80 + 1"},
                "L": {"kind": "linear", "high": "10 * 1000", "n_buckets": 50},
                "X": {"kind": "exponential", "low": 32, "high": "16 * 1024 * 1024", "n_buckets": 3},
                "K": {"kind": "categorical", "labels": ["a", "b"]},
                "G": {"kind": "enumerated", "n_values": "JS::gcreason::NUM_TELEMETRY_REASONS"}}"#,
        )
        .unwrap();
        let names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["B", "F", "C", "E", "L", "X", "K", "G"]);
        assert_eq!(
            defs.get("B").unwrap().layout.as_ref().unwrap().bounds,
            [0, 1, 2]
        );
        assert!(defs.get("C").unwrap().keyed);
        assert_eq!(
            defs.get("E").unwrap().layout.as_ref().unwrap().n_buckets(),
            82
        );
        assert_eq!(defs.get("L").unwrap().layout.as_ref().unwrap().high, 10_000);
        assert_eq!(
            defs.get("X").unwrap().layout.as_ref().unwrap().bounds,
            [0, 32, 16 << 20]
        );
        assert_eq!(
            defs.get("K").unwrap().layout.as_ref().unwrap().n_buckets(),
            51
        );
        assert!(matches!(
            defs.get("G").unwrap().layout,
            Err(DefinitionError::NotANumber {
                field: "n_values",
                ..
            })
        ));
        assert_eq!(defs.resolve("STARTUP_B").unwrap().name, "B");
        assert!(defs.resolve("STARTUP_NOPE").is_none());
    }

    #[test]
    fn whole_file_errors_are_typed() {
        assert!(matches!(
            Definitions::from_json("invalid json data"),
            Err(SpecError::Json(_))
        ));
        assert!(matches!(
            Definitions::from_json(r#"["a"]"#),
            Err(SpecError::Json(_))
        ));
        assert!(matches!(
            Definitions::from_json(r#"{"A": 1}"#),
            Err(SpecError::NotAnObject(_))
        ));
        assert!(matches!(
            Definitions::from_json(r#"{"A": {}}"#),
            Err(SpecError::MissingKind(_))
        ));
        assert!(matches!(
            Definitions::from_json(r#"{"histograms":{"MY_HISTOGRAM": { "kind":"bogus"}}}"#),
            Err(SpecError::UnknownKind { .. })
        ));
    }

    #[test]
    fn bad_parameters_stay_per_definition() {
        let defs = Definitions::from_json(
            r#"{"A": {"kind": "linear", "high": 10, "n_buckets": 2},
                "B": {"kind": "exponential", "high": 1, "n_buckets": 10},
                "C": {"kind": "exponential", "n_buckets": 10},
                "D": {"kind": "linear", "high": 10, "n_buckets": 1000000000}}"#,
        )
        .unwrap();
        assert_eq!(
            defs.get("A").unwrap().layout,
            Err(DefinitionError::BucketCount(2))
        );
        assert_eq!(
            defs.get("B").unwrap().layout,
            Err(DefinitionError::Range { low: 1, high: 1 })
        );
        assert_eq!(
            defs.get("C").unwrap().layout,
            Err(DefinitionError::Missing { field: "high" })
        );
        assert_eq!(
            defs.get("D").unwrap().layout,
            Err(DefinitionError::BucketCount(1_000_000_000))
        );
    }

    #[test]
    fn extreme_parameters_do_not_panic() {
        let defs = Definitions::from_json(
            r#"{"A": {"kind": "categorical", "n_values": 9223372036854775807, "labels": []},
                "B": {"kind": "exponential", "low": 9223372036854775806, "high": 9223372036854775807, "n_buckets": 50},
                "C": {"kind": "linear", "low": -5, "high": 9223372036854775807, "n_buckets": 10000},
                "D": {"kind": "enumerated", "n_values": -3}}"#,
        )
        .unwrap();
        assert_eq!(
            defs.get("A").unwrap().layout,
            Err(DefinitionError::BucketCount(i64::MAX))
        );
        assert_eq!(
            defs.get("B").unwrap().layout.as_ref().unwrap().n_buckets(),
            50
        );
        assert_eq!(
            defs.get("C").unwrap().layout.as_ref().unwrap().n_buckets(),
            10_000
        );
        assert!(defs.get("D").unwrap().layout.is_err());
    }

    #[test]
    fn index_of_finds_lower_bounds_only() {
        let layout = BucketLayout {
            low: 1,
            high: 3000,
            bounds: buckets::exponential(1, 3000, 10),
        };
        assert_eq!(layout.index_of(0), Some(0));
        assert_eq!(layout.index_of(414), Some(7));
        assert_eq!(layout.index_of(3000), Some(9));
        assert_eq!(layout.index_of(415), None);
        assert_eq!(layout.index_of(-1), None);
    }

    #[test]
    fn index_of_near_answers_as_index_of_for_any_hint() {
        let repeating = BucketLayout {
            low: 1,
            high: 3,
            bounds: vec![0, 1, 1, 2, 2, 2, 3],
        };
        let exponential = BucketLayout::new(Kind::Exponential, 1, 3000, 10).unwrap();
        for layout in [repeating, exponential] {
            for bound in -1..=3001 {
                for hint in 0..=layout.n_buckets() + 1 {
                    assert_eq!(
                        layout.index_of_near(bound, hint),
                        layout.index_of(bound),
                        "{:?} {bound} {hint}",
                        layout.bounds
                    );
                }
            }
        }
    }
}
