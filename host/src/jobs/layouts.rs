//! Histogram layouts for jobs (`telemetry:job/histograms`): how histogram NAME of one stored
//! document is laid out — the layout the converter noted in the document (`conversion.layouts`,
//! when it was not laid out by the build's own definitions), else the definitions of the
//! document's build (revision, then the revision table), as the host's [`RevisionCache`] has them.

use super::bindings::{Field, HistogramKind, HistogramLayout, Source};
use super::extract::Projection;
use crate::histograms::{BucketLayout, Kind, Query, RevisionCache};

/// Trailing statistics after the buckets of a compact histogram.
const STATS: usize = 5;

/// Why a document could not be read for a layout (the guest call traps with it).
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("histogram name {0:?} is empty or longer than 1000 bytes")]
    Name(String),
    #[error("document is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Pointer positions in [`pointers`].
const NOTED: usize = 0;
const ARRAYS: std::ops::Range<usize> = 1..3;
const KEYED: std::ops::Range<usize> = 3..5;
const REVISION: std::ops::Range<usize> = 5..7;
const CHANNEL: usize = 7;
const BUILD_ID: usize = 8;
const APP_VERSION: usize = 9;

/// Everything one lookup reads from the document, in one pass.
fn pointers(name: &str) -> Vec<String> {
    let n = name.replace('~', "~0").replace('/', "~1");
    vec![
        format!("/conversion/layouts/{n}"),
        format!("/payload/histograms/{n}"),
        format!("/histograms/{n}"),
        format!("/payload/keyedHistograms/{n}"),
        format!("/keyedHistograms/{n}"),
        "/info/revision".into(),
        "/payload/info/revision".into(),
        "/info/appUpdateChannel".into(),
        "/info/appBuildID".into(),
        "/info/appVersion".into(),
    ]
}

/// The layout of histogram `name` in stored document `doc` (its JSON text), `None` when neither
/// the document nor the definitions know one.
pub fn layout(
    revisions: &RevisionCache,
    doc: &[u8],
    name: &str,
) -> Result<Option<HistogramLayout>, LayoutError> {
    if name.is_empty() || name.len() > 1000 {
        return Err(LayoutError::Name(name.to_owned()));
    }
    let projection =
        Projection::new(&pointers(name)).map_err(|_| LayoutError::Name(name.into()))?;
    let fields = projection.extract(doc)?;
    if let Field::Json(noted) = &fields[NOTED] {
        return Ok(noted_layout(noted, &fields));
    }
    let text = |i: usize| match &fields[i] {
        Field::Text(s) | Field::Number(s) => Some(s.as_str()),
        _ => None,
    };
    let query = Query {
        revision: REVISION.clone().find_map(text),
        channel: text(CHANNEL),
        build_id: text(BUILD_ID),
        app_version: text(APP_VERSION),
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
    if stored_buckets(&fields).is_some_and(|n| n != layout.n_buckets()) {
        return Ok(None);
    }
    Ok(Some(wit_layout(def.kind, layout, Source::Definitions)))
}

/// A noted `[histogram_type, low, high]` with the bucket count of the stored array.
fn noted_layout(noted: &str, fields: &[Field]) -> Option<HistogramLayout> {
    let [code, low, high]: [i64; 3] = serde_json::from_str(noted).ok()?;
    let kind = Kind::from_type_code(code)?;
    let n = stored_buckets(fields)?;
    let layout = BucketLayout::new(kind, low, high, n as i64).ok()?;
    Some(wit_layout(kind, &layout, Source::Noted))
}

/// Buckets of the stored compact array (of the first key, for a keyed histogram: every key of
/// one name shares a layout).
fn stored_buckets(fields: &[Field]) -> Option<usize> {
    let json = |i: usize| match &fields[i] {
        Field::Json(s) => Some(s.as_str()),
        _ => None,
    };
    let array_len = |text: &str| {
        serde_json::from_str::<Vec<serde::de::IgnoredAny>>(text)
            .ok()
            .map(|a| a.len())
    };
    let len = match ARRAYS.clone().find_map(json) {
        Some(array) => array_len(array)?,
        None => {
            let keyed = KEYED.clone().find_map(json)?;
            let keys: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(keyed).ok()?;
            keys.values().next()?.as_array()?.len()
        }
    };
    len.checked_sub(STATS)
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
        let gc = layout(&cache, doc, "GC_MS").unwrap().unwrap();
        assert_eq!(gc.kind, HistogramKind::Exponential);
        assert_eq!((gc.low, gc.high, gc.bounds.len()), (1, 10000, 50));
        assert_eq!(gc.bounds[..3], [0, 1, 2]);
        assert_eq!(gc.source, Source::Definitions);
        let startup = layout(&cache, doc, "STARTUP_GC_MS").unwrap().unwrap();
        assert_eq!(startup.bounds, gc.bounds);
        assert_eq!(
            layout(&cache, doc, "FLAGGED").unwrap().unwrap().bounds,
            [0, 1, 2]
        );
        assert!(layout(&cache, doc, "NOT_DEFINED").unwrap().is_none());
        // Definitions that do not fit the stored array (3 buckets, not 50) give no layout.
        let short =
            br#"{"info":{"revision":"https://hg.mozilla.org/mozilla-central/rev/0123456789ab"},
            "histograms":{"GC_MS":[1,2,3,6,-1,-1,-1,-1]}}"#;
        assert!(layout(&cache, short, "GC_MS").unwrap().is_none());
        // Another revision: no definitions here.
        let other =
            br#"{"info":{"revision":"https://hg.mozilla.org/mozilla-central/rev/fedcba987654"}}"#;
        assert!(layout(&cache, other, "GC_MS").unwrap().is_none());
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
        let gc = layout(&cache, doc, "GC_MS").unwrap().unwrap();
        assert_eq!(gc.kind, HistogramKind::Linear);
        // 4 buckets: the array's 9 entries minus the 5 statistics, by the linear formula.
        let expected = BucketLayout::new(Kind::Linear, 1, 100, 4).unwrap().bounds;
        assert_eq!(gc.bounds, expected);
        assert_eq!((gc.bounds.len(), gc.bounds[0], gc.bounds[3]), (4, 0, 100));
        assert_eq!(gc.source, Source::Noted);
        // A noted layout whose array is missing has no bucket count.
        let bare = br#"{"conversion":{"layouts":{"GC_MS":[1,1,100]}}}"#;
        assert!(layout(&cache, bare, "GC_MS").unwrap().is_none());
        assert!(matches!(
            layout(&cache, b"{", "GC_MS"),
            Err(LayoutError::Json(_))
        ));
        assert!(matches!(layout(&cache, doc, ""), Err(LayoutError::Name(_))));
    }
}
