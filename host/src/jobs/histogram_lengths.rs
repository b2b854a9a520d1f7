//! The bucket-count part of a histogram layout, taken from a stored document in one streaming
//! pass: for every histogram name, the length of its stored compact array (`/payload/histograms`
//! or `/histograms`; for a keyed histogram, `/payload/keyedHistograms` or `/keyedHistograms`, the
//! array of its first key). [`super::layouts`] needs only that (and a few small fields) from a
//! document, so jobs importing `histograms` need not keep whole documents, and the lengths can
//! be kept in the column cache like any field.
//!
//! A name's entry follows exactly what reading
//! `/payload/histograms/NAME`, then `/histograms/NAME`, then the keyed pointers with
//! [`super::extract::Projection`] would find: the first of them that holds an object or array
//! decides (an object where a plain array belongs, or an array where a keyed object belongs, gives
//! no length); a repeated key counts as its last occurrence; a keyed histogram's "first key" is the
//! smallest key (`serde_json::Map` order).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// What one pointer to a histogram found.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    /// An array of this many entries.
    Array(usize),
    /// An object; the length of its smallest key's value when that is an array.
    Object(Option<usize>),
    /// A string, number, boolean or null: not a histogram (as if absent).
    Scalar,
}

impl Shape {
    fn is_json(self) -> bool {
        !matches!(self, Shape::Scalar)
    }
}

/// The four places a histogram can be, in the order a layout looks at them.
const PAYLOAD_PLAIN: usize = 0;
const PLAIN: usize = 1;
const PAYLOAD_KEYED: usize = 2;
const KEYED: usize = 3;

/// Per name, what each of the four places holds.
type Found = BTreeMap<String, [Option<Shape>; 4]>;

/// The stored array length of every histogram of `doc`, by name (see the module doc). Fails only
/// if `doc` is not valid JSON.
pub fn histogram_lengths(doc: &[u8]) -> Result<BTreeMap<String, usize>, serde_json::Error> {
    let mut found = Found::new();
    let mut de = serde_json::Deserializer::from_slice(doc);
    ValueSeed {
        level: Some(Level::Root),
        found: &mut found,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(found
        .into_iter()
        .filter_map(|(name, places)| Some((name, length(&places)?)))
        .collect())
}

/// The array length a layout uses, from what the four places hold.
fn length(places: &[Option<Shape>; 4]) -> Option<usize> {
    let json = |i: usize| places[i].filter(|s| s.is_json());
    match json(PAYLOAD_PLAIN).or_else(|| json(PLAIN)) {
        Some(Shape::Array(n)) => Some(n),
        Some(_) => None,
        None => match json(PAYLOAD_KEYED).or_else(|| json(KEYED))? {
            Shape::Object(first) => first,
            _ => None,
        },
    }
}

/// Where in the document a visitor is.
#[derive(Clone, Copy)]
enum Level {
    Root,
    Payload,
    /// An object of histograms, filling this place.
    Histograms(usize),
}

impl Level {
    fn child(self, key: &str) -> Option<Level> {
        match (self, key) {
            (Level::Root, "payload") => Some(Level::Payload),
            (Level::Root, "histograms") => Some(Level::Histograms(PLAIN)),
            (Level::Root, "keyedHistograms") => Some(Level::Histograms(KEYED)),
            (Level::Payload, "histograms") => Some(Level::Histograms(PAYLOAD_PLAIN)),
            (Level::Payload, "keyedHistograms") => Some(Level::Histograms(PAYLOAD_KEYED)),
            _ => None,
        }
    }
}

/// Reads one value as its [`Shape`]; at a [`Level`] (an object on the way to histograms), also
/// walks into it and records what each histogram is in `found`.
struct ValueSeed<'f> {
    level: Option<Level>,
    found: &'f mut Found,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Shape;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Shape, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Shape;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        // The smallest key's value, the last time that key occurs (for a keyed histogram).
        let mut first: Option<(String, Option<usize>)> = None;
        while let Some(key) = map.next_key::<String>()? {
            let level = match self.level {
                Some(Level::Histograms(place)) => {
                    let shape = map.next_value_seed(ValueSeed {
                        level: None,
                        found: &mut *self.found,
                    })?;
                    self.found.entry(key).or_default()[place] = Some(shape);
                    continue;
                }
                Some(level) => level.child(&key),
                None => None,
            };
            let shape = match (level, self.level) {
                (None, Some(_)) => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                (level, _) => map.next_value_seed(ValueSeed {
                    level,
                    found: &mut *self.found,
                })?,
            };
            if first.as_ref().is_none_or(|(k, _)| key <= *k) {
                let len = match shape {
                    Shape::Array(n) => Some(n),
                    _ => None,
                };
                first = Some((key, len));
            }
        }
        Ok(Shape::Object(first.and_then(|(_, len)| len)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        let mut n = 0;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            n += 1;
        }
        Ok(Shape::Array(n))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }
    fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }
    fn visit_unit<E>(self) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lengths(doc: &str) -> serde_json::Value {
        serde_json::to_value(histogram_lengths(doc.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn plain_and_keyed_arrays_in_the_order_a_layout_reads_them() {
        let doc = r#"{"histograms":{"A":[1,2,3],"B":{"x":1},"C":[1]},
            "payload":{"histograms":{"C":[1,2],"D":"text"},
              "keyedHistograms":{"K":{"b":[1,2,3,4],"a":[1,2]},"L":[1,2]}},
            "keyedHistograms":{"K":[9],"M":{"z":[1,2,3]}},"other":{"histograms":{"X":[1]}}}"#;
        assert_eq!(
            lengths(doc),
            serde_json::json!({"A": 3, "C": 2, "K": 2, "M": 3}),
            "B is an object where an array belongs; payload's C wins; D is not a histogram; \
             K's first key is `a`; L is an array where an object belongs; X is elsewhere"
        );
        assert_eq!(lengths(r#"{"histograms":[1,2]}"#), serde_json::json!({}));
        assert!(histogram_lengths(b"{").is_err());
    }
}
