//! Histogram layouts for jobs (`telemetry:job/histograms`): how histogram NAME of one stored
//! document is laid out — the layout the converter noted in the document (`conversion.layouts`,
//! when it was not laid out by the build's own definitions), else the definitions of the
//! document's build (revision, then the revision table), as the host's [`RevisionCache`] has them.
//!
//! A layout reads only a few small parts of a document, its *layout keys*: `conversion.layouts`,
//! the revision, channel, build id and version, and the stored arrays' lengths
//! ([`super::histogram_lengths`]). The executor extracts them with each record's fields into one
//! JSON value ([`keys_field`]), which the column cache keeps like a field ([`KEYS_COLUMN`]), so no
//! job keeps whole documents for layouts.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::bindings::{Field, HistogramKind, HistogramLayout, Source};
use crate::histograms::{BucketLayout, Kind, Query, RevisionCache};

/// Trailing statistics after the buckets of a compact histogram.
const STATS: usize = 5;

/// Why a layout cannot be looked up (the guest call traps with it).
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("histogram name {0:?} is empty or longer than 1000 bytes")]
    Name(String),
    #[error("the record's layout keys do not read back: {0}")]
    Keys(#[from] serde_json::Error),
}

/// The JSON pointers a layout reads (besides the arrays' lengths), extracted with a record's
/// fields; positions below.
const POINTERS: [&str; 6] = [
    "/conversion/layouts",
    "/info/revision",
    "/payload/info/revision",
    "/info/appUpdateChannel",
    "/info/appBuildID",
    "/info/appVersion",
];
const NOTED: usize = 0;
const REVISION: std::ops::Range<usize> = 1..3;
const CHANNEL: usize = 3;
const BUILD_ID: usize = 4;
const APP_VERSION: usize = 5;

/// The column cache's name for the layout keys column. Not a JSON pointer (those start with
/// `/`), so no job field can share it.
pub const KEYS_COLUMN: &str = "#histogram-layout-keys";

/// The pointers to extract for [`keys_field`], after the job's own.
pub fn key_pointers() -> impl Iterator<Item = String> {
    POINTERS.iter().map(|p| p.to_string())
}

/// A record's layout keys, as [`keys_field`] writes them and [`layout`] reads them.
#[derive(Serialize, Deserialize)]
struct Keys<'a> {
    /// `conversion.layouts` when it is an object or array.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    noted: Option<&'a RawValue>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    revision: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    channel: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    build_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    app_version: Option<Cow<'a, str>>,
    /// Stored array length per histogram name.
    #[serde(default)]
    lengths: BTreeMap<String, usize>,
}

/// The layout keys of a record from the fields [`key_pointers`] extracted and the document's
/// array lengths, as one [`Field::Json`].
pub fn keys_field(pointed: &[Field], lengths: BTreeMap<String, usize>) -> Field {
    let field = |i: usize| pointed.get(i).unwrap_or(&Field::Missing);
    let text = |i: usize| match field(i) {
        Field::Text(s) | Field::Number(s) => Some(s.as_str()),
        _ => None,
    };
    let noted = match field(NOTED) {
        Field::Json(text) => serde_json::from_str::<&RawValue>(text).ok(),
        _ => None,
    };
    let keys = Keys {
        noted,
        revision: REVISION.clone().find_map(text).map(Cow::Borrowed),
        channel: text(CHANNEL).map(Cow::Borrowed),
        build_id: text(BUILD_ID).map(Cow::Borrowed),
        app_version: text(APP_VERSION).map(Cow::Borrowed),
        lengths,
    };
    Field::Json(serde_json::to_string(&keys).unwrap_or_default())
}

/// The layout keys of one stored document (its JSON text), as the executor extracts them.
#[cfg(test)]
fn layout_keys(doc: &[u8]) -> Result<Field, serde_json::Error> {
    let projection = super::extract::Projection::new(&key_pointers().collect::<Vec<_>>())
        .map_err(serde::de::Error::custom)?;
    let (pointed, lengths) = super::histogram_lengths::extract_with_lengths(&projection, doc)?;
    Ok(keys_field(&pointed, lengths))
}

/// The layout of histogram `name` in the record whose layout keys ([`keys_field`]) are `keys`,
/// `None` when neither the record nor the definitions know one.
pub fn layout(
    revisions: &RevisionCache,
    keys: &Field,
    name: &str,
) -> Result<Option<HistogramLayout>, LayoutError> {
    if name.is_empty() || name.len() > 1000 {
        return Err(LayoutError::Name(name.to_owned()));
    }
    let keys: Keys = match keys {
        Field::Json(text) => serde_json::from_str(text)?,
        _ => return Ok(None),
    };
    let stored = keys.lengths.get(name).and_then(|n| n.checked_sub(STATS));
    if let Some(noted) = keys.noted.and_then(|n| noted(n, name)) {
        return Ok(noted_layout(noted, stored));
    }
    let query = Query {
        revision: keys.revision.as_deref(),
        channel: keys.channel.as_deref(),
        build_id: keys.build_id.as_deref(),
        app_version: keys.app_version.as_deref(),
    };
    let Ok(resolved) = revisions.resolve(&query) else {
        return Ok(None);
    };
    let Some(def) = resolved.definitions.resolve(name) else {
        return Ok(None);
    };
    let Ok(layout) = &def.layout else {
        return Ok(None);
    };
    // Definitions other than the converter's (e.g. the table's nearest set, when this host lacks
    // the record's own revision) must at least fit the stored array.
    if stored.is_some_and(|n| n != layout.n_buckets()) {
        return Ok(None);
    }
    Ok(Some(wit_layout(def.kind, layout, Source::Definitions)))
}

/// The text of `name`'s entry in `conversion.layouts` when it is an object or array (what the
/// pointer `/conversion/layouts/NAME` would give as JSON).
fn noted<'a>(layouts: &'a RawValue, name: &str) -> Option<&'a str> {
    let entries: HashMap<String, &RawValue> = serde_json::from_str(layouts.get()).ok()?;
    let text = entries.get(name)?.get();
    text.starts_with(['[', '{']).then_some(text)
}

/// A noted `[histogram_type, low, high]` with the bucket count of the stored array.
fn noted_layout(noted: &str, stored: Option<usize>) -> Option<HistogramLayout> {
    let [code, low, high]: [i64; 3] = serde_json::from_str(noted).ok()?;
    let kind = Kind::from_type_code(code)?;
    let layout = BucketLayout::new(kind, low, high, stored? as i64).ok()?;
    Some(wit_layout(kind, &layout, Source::Noted))
}

fn wit_layout(kind: Kind, layout: &BucketLayout, source: Source) -> HistogramLayout {
    HistogramLayout {
        kind: match kind {
            Kind::Exponential => HistogramKind::Exponential,
            Kind::Linear => HistogramKind::Linear,
            Kind::Enumerated => HistogramKind::Enumerated,
            Kind::Boolean => HistogramKind::Boolean,
            Kind::Flag => HistogramKind::Flag,
            Kind::Count => HistogramKind::Count,
            Kind::Categorical => HistogramKind::Categorical,
        },
        low: layout.low,
        high: layout.high,
        bounds: layout.bounds.clone(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(doc: &[u8]) -> Field {
        layout_keys(doc).unwrap()
    }

    fn defs_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let rev = dir.path().join("mozilla-central/0123456789ab");
        std::fs::create_dir_all(&rev).unwrap();
        std::fs::write(
            rev.join("Histograms.json"),
            r#"{"GC_MS": {"kind": "exponential", "low": 1, "high": 10000, "n_buckets": 50, "description": "x"},
                "FLAGGED": {"kind": "flag", "description": "y"}}"#,
        )
        .unwrap();
        dir
    }

    #[test]
    fn definitions_of_the_documents_revision_and_startup_copies() {
        let dir = defs_dir();
        let cache = RevisionCache::empty().with_dir(dir.path()).unwrap();
        let doc = br#"{"ver":2,"info":{"revision":"https://hg.mozilla.org/mozilla-central/rev/0123456789ab"},
            "histograms":{"GC_MS":[0,1,2]}}"#;
        let gc = layout(&cache, &keys(doc), "GC_MS").unwrap().unwrap();
        assert_eq!(gc.kind, HistogramKind::Exponential);
        assert_eq!((gc.low, gc.high, gc.bounds.len()), (1, 10000, 50));
        assert_eq!(gc.bounds[..3], [0, 1, 2]);
        assert_eq!(gc.source, Source::Definitions);
        let startup = layout(&cache, &keys(doc), "STARTUP_GC_MS")
            .unwrap()
            .unwrap();
        assert_eq!(startup.bounds, gc.bounds);
        assert_eq!(
            layout(&cache, &keys(doc), "FLAGGED")
                .unwrap()
                .unwrap()
                .bounds,
            [0, 1, 2]
        );
        assert!(layout(&cache, &keys(doc), "NOT_DEFINED").unwrap().is_none());
        // Definitions that do not fit the stored array (3 buckets, not 50) give no layout.
        let short =
            br#"{"info":{"revision":"https://hg.mozilla.org/mozilla-central/rev/0123456789ab"},
            "histograms":{"GC_MS":[1,2,3,6,-1,-1,-1,-1]}}"#;
        assert!(layout(&cache, &keys(short), "GC_MS").unwrap().is_none());
        // Another revision: no definitions here.
        let other =
            br#"{"info":{"revision":"https://hg.mozilla.org/mozilla-central/rev/fedcba987654"}}"#;
        assert!(layout(&cache, &keys(other), "GC_MS").unwrap().is_none());
    }

    #[test]
    fn a_noted_layout_wins_and_takes_the_stored_bucket_count() {
        let dir = defs_dir();
        let cache = RevisionCache::empty().with_dir(dir.path()).unwrap();
        // Unified layout: keyed, noted as linear 1..100 with 4 buckets (4 + 5 entries).
        let doc =
            br#"{"info":{"revision":"https://hg.mozilla.org/mozilla-central/rev/0123456789ab"},
            "conversion":{"layouts":{"GC_MS":[1,1,100]}},
            "payload":{"keyedHistograms":{"GC_MS":{"a":[1,2,3,4,10,-1,-1,-1,-1]}}}}"#;
        let gc = layout(&cache, &keys(doc), "GC_MS").unwrap().unwrap();
        assert_eq!(gc.kind, HistogramKind::Linear);
        // 4 buckets: the array's 9 entries minus the 5 statistics, by the linear formula.
        let expected = BucketLayout::new(Kind::Linear, 1, 100, 4).unwrap().bounds;
        assert_eq!(gc.bounds, expected);
        assert_eq!((gc.bounds.len(), gc.bounds[0], gc.bounds[3]), (4, 0, 100));
        assert_eq!(gc.source, Source::Noted);
        // A noted layout whose array is missing has no bucket count.
        let bare = br#"{"conversion":{"layouts":{"GC_MS":[1,1,100]}}}"#;
        assert!(layout(&cache, &keys(bare), "GC_MS").unwrap().is_none());
        assert!(layout_keys(b"{").is_err());
        assert!(matches!(
            layout(&cache, &keys(doc), ""),
            Err(LayoutError::Name(_))
        ));
    }
}
