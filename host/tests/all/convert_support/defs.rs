//! Helper shared by the converter tests and the conversion benchmark (included with `#[path]`):
//! Histograms.json definitions made from a ping's own histogram parameters. Converting a ping
//! with them checks that the bucket formulas give exactly the lower bounds Firefox wrote.
#![allow(dead_code)]

use serde_json::{json, Value};

/// Definitions for every histogram (and keyed histogram) of a v4 `payload`.
pub fn definitions_from_payload(payload: &Value) -> Value {
    let mut defs = serde_json::Map::new();
    for (section, keyed) in [("histograms", false), ("keyedHistograms", true)] {
        let Some(histograms) = payload.get(section).and_then(Value::as_object) else {
            continue;
        };
        for (name, h) in histograms {
            // A keyed histogram: the parameters of its first key (none for an empty one: any kind will do).
            let h = if keyed {
                h.as_object()
                    .and_then(|keys| keys.values().next())
                    .unwrap_or(h)
            } else {
                h
            };
            let kind = h.get("histogram_type").and_then(Value::as_i64).unwrap_or(4);
            let kind =
                ["exponential", "linear", "boolean", "flag", "count"][kind.clamp(0, 4) as usize];
            let mut def = json!({"kind": kind, "keyed": keyed});
            if kind == "exponential" || kind == "linear" {
                def["low"] = h["range"][0].clone();
                def["high"] = h["range"][1].clone();
                def["n_buckets"] = h["bucket_count"].clone();
            }
            defs.insert(name.clone(), def);
        }
    }
    Value::Object(defs)
}

/// The hash of a revision URL (`…/rev/<hash>`).
pub fn revision_hash(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}
