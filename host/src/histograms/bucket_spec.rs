//! The bucket-spec document the seed's histogram server served at `/histogram_buckets`:
//! `{"histograms": {NAME: {"kind": "0", "min": 1, "buckets": […], "max": 10000, "bucket_count": 50}}}`.
//!
//! As in the seed: definitions whose buckets cannot be computed are left out, and every
//! histogram whose name contains SQLITE, HTTP, SPDY, CACHE or DNS is repeated as `STARTUP_<name>`.
//! Unlike the seed (which crashed on them), count and categorical histograms are included with
//! kind codes "4" and "5".

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::definitions::{BucketLayout, Definition, Definitions};

/// Name fragments whose histograms Firefox also records as `STARTUP_<name>`.
const STARTUP_FRAGMENTS: [&str; 5] = ["SQLITE", "HTTP", "SPDY", "CACHE", "DNS"];

/// Serializes as the bucket-spec document, in definition order, each STARTUP_ copy right after
/// its base entry (the order of the seed's cached specs).
pub struct BucketSpec<'a>(pub &'a Definitions);

/// The bucket-spec document as a JSON value.
pub fn bucket_spec_json(defs: &Definitions) -> serde_json::Value {
    serde_json::to_value(BucketSpec(defs)).unwrap_or_default()
}

/// The bucket-spec document as minimal JSON text, in definition order.
pub fn bucket_spec_string(defs: &Definitions) -> String {
    serde_json::to_string(&BucketSpec(defs)).unwrap_or_default()
}

fn has_startup_copy(name: &str) -> bool {
    STARTUP_FRAGMENTS.iter().any(|f| name.contains(f))
}

impl Serialize for BucketSpec<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut root = serializer.serialize_map(Some(1))?;
        root.serialize_entry("histograms", &Entries(self.0))?;
        root.end()
    }
}

struct Entries<'a>(&'a Definitions);

impl Serialize for Entries<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for def in self.0.iter() {
            let Ok(layout) = &def.layout else { continue };
            map.serialize_entry(&def.name, &Entry(def, layout))?;
            if has_startup_copy(&def.name) {
                map.serialize_entry(&format!("STARTUP_{}", def.name), &Entry(def, layout))?;
            }
        }
        map.end()
    }
}

struct Entry<'a>(&'a Definition, &'a BucketLayout);

impl Serialize for Entry<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Entry(def, layout) = self;
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("kind", &def.kind.type_code().to_string())?;
        map.serialize_entry("min", &layout.low)?;
        map.serialize_entry("buckets", &layout.bounds)?;
        map.serialize_entry("max", layout.bounds.last().unwrap_or(&layout.high))?;
        map.serialize_entry("bucket_count", &layout.bounds.len())?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_copies_follow_their_base_entry() {
        let defs = Definitions::from_json(
            r#"{"XUL_CACHE_DISABLED": {"kind": "boolean"}, "A": {"kind": "flag"},
                "G": {"kind": "enumerated", "n_values": "mozilla::StartupTimeline::MAX_EVENT_ID"}}"#,
        )
        .unwrap();
        assert_eq!(
            bucket_spec_string(&defs),
            r#"{"histograms":{"XUL_CACHE_DISABLED":{"kind":"2","min":1,"buckets":[0,1,2],"max":2,"bucket_count":3},"STARTUP_XUL_CACHE_DISABLED":{"kind":"2","min":1,"buckets":[0,1,2],"max":2,"bucket_count":3},"A":{"kind":"3","min":1,"buckets":[0,1,2],"max":2,"bucket_count":3}}}"#
        );
    }
}
