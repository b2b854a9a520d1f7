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
//!
//! The executor takes the lengths in the same pass as the job's fields
//! ([`extract_with_lengths`]): one walk over each document, not two.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::extract::{ignore_scalars, Field, KeyRef, Node, NodeSeed, Projection};

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

/// The stored array length of every histogram of `doc`, by name (see the module doc), in a pass
/// of its own: the reference [`extract_with_lengths`] is tested against. Fails only if `doc` is
/// not valid JSON.
#[cfg(test)]
pub fn histogram_lengths(doc: &[u8]) -> Result<BTreeMap<String, usize>, serde_json::Error> {
    let mut found = Found::new();
    let mut de = serde_json::Deserializer::from_slice(doc);
    ValueSeed {
        level: Some(Level::Root),
        found: &mut found,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(lengths(found))
}

/// `projection`'s fields of `doc` (as [`Projection::extract`]) and its histogram lengths (as
/// [`histogram_lengths`]), in one pass. Fails only if `doc` is not valid JSON.
pub fn extract_with_lengths(
    projection: &Projection,
    doc: &[u8],
) -> Result<(Vec<Field>, BTreeMap<String, usize>), serde_json::Error> {
    let mut out = projection.missing();
    let mut found = Found::new();
    let mut de = serde_json::Deserializer::from_slice(doc);
    BothSeed {
        node: projection.root(),
        level: Level::Root,
        out: &mut out,
        found: &mut found,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((out, lengths(found)))
}

fn lengths(found: Found) -> BTreeMap<String, usize> {
    found
        .into_iter()
        .filter_map(|(name, places)| Some((name, length(&places)?)))
        .collect()
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

/// A value that both the projection (pointers through `node`) and the lengths (at `level`) walk
/// into. Where only one of them goes on, the walk hands over to [`NodeSeed`] or [`ValueSeed`].
struct BothSeed<'n, 'o, 'f> {
    node: &'n Node,
    level: Level,
    out: &'o mut [Field],
    found: &'f mut Found,
}

impl BothSeed<'_, '_, '_> {
    /// Both walks over a value already read as text (a requested value, kept whole).
    fn walk_text(self, text: &str) -> Result<(), serde_json::Error> {
        NodeSeed {
            node: self.node,
            out: self.out,
        }
        .deserialize(&mut serde_json::Deserializer::from_str(text))?;
        ValueSeed {
            level: Some(self.level),
            found: self.found,
        }
        .deserialize(&mut serde_json::Deserializer::from_str(text))?;
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for BothSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if !self.node.is_target() {
            return d.deserialize_any(self);
        }
        // A pointer asks for this whole value (rare on the way to histograms): read it once as
        // text, then walk the text for each.
        let raw: &'de RawValue = de::Deserialize::deserialize(d)?;
        self.walk_text(raw.get()).map_err(de::Error::custom)
    }
}

impl<'de> Visitor<'de> for BothSeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let BothSeed {
            node,
            level,
            out,
            found,
        } = self;
        while let Some(key) = map.next_key::<KeyRef<'de>>()? {
            let key = key.as_str();
            let child = node.child(key);
            if let Level::Histograms(place) = level {
                // Every histogram's shape, and the projection's value where a pointer goes on.
                let shape = match child {
                    None => map.next_value_seed(ValueSeed {
                        level: None,
                        found: &mut *found,
                    })?,
                    Some(child) => {
                        let raw: &'de RawValue = map.next_value()?;
                        shape_of_text(raw.get(), child, out).map_err(de::Error::custom)?
                    }
                };
                found.entry(key.to_owned()).or_default()[place] = Some(shape);
                continue;
            }
            match (child, level.child(key)) {
                (None, None) => {
                    map.next_value::<IgnoredAny>()?;
                }
                (Some(child), None) => map.next_value_seed(NodeSeed {
                    node: child,
                    out: &mut *out,
                })?,
                (None, Some(level)) => {
                    map.next_value_seed(ValueSeed {
                        level: Some(level),
                        found: &mut *found,
                    })?;
                }
                (Some(child), Some(level)) => map.next_value_seed(BothSeed {
                    node: child,
                    level,
                    out: &mut *out,
                    found: &mut *found,
                })?,
            }
        }
        Ok(())
    }
    // An array or a scalar on the way to histograms holds none: only the projection looks.
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        NodeSeed {
            node: self.node,
            out: self.out,
        }
        .visit_seq(seq)
    }
    ignore_scalars!();
}

/// One histogram's [`Shape`] from its text, and the projection's pointers through `node` in it.
fn shape_of_text(text: &str, node: &Node, out: &mut [Field]) -> Result<Shape, serde_json::Error> {
    NodeSeed { node, out }.deserialize(&mut serde_json::Deserializer::from_str(text))?;
    let mut unused = Found::new();
    ValueSeed {
        level: None,
        found: &mut unused,
    }
    .deserialize(&mut serde_json::Deserializer::from_str(text))
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

    #[test]
    fn one_pass_gives_what_the_projection_and_the_lengths_give_apart() {
        let docs = [
            r#"{"histograms":{"A":[1,2,3],"B":{"x":1},"C":[1]},
            "payload":{"histograms":{"C":[1,2],"D":"text"},"info":{"reason":"daily"},
              "keyedHistograms":{"K":{"b":[1,2,3,4],"a":[1,2]},"L":[1,2]}},
            "keyedHistograms":{"K":[9],"M":{"z":[1,2,3]}},"other":{"histograms":{"X":[1]}}}"#,
            r#"{"payload":[{"histograms":{"A":[1]}}],"histograms":"none","keyedHistograms":{"K":7}}"#,
            r#"{"payload":{"histograms":{"A":[1],"A":[1,2,3,4]}},"info":{"revision":"r"}}"#,
            r#"[1,{"histograms":{"A":[1]}}]"#,
            r#"{"payload":{"histograms":{"A":[]}},"payload":{"histograms":{"B":[1]}}}"#,
        ];
        let pointer_sets: [&[&str]; 5] = [
            &[],
            &["/payload/info/reason", "/info/revision", "/0"],
            &[
                "/payload/histograms/C",
                "/payload/histograms/C/1",
                "/histograms/B/x",
            ],
            &[
                "/payload/histograms",
                "/keyedHistograms",
                "/payload/keyedHistograms/K/a",
            ],
            &["", "/payload", "/1/histograms/A/0"],
        ];
        for pointers in pointer_sets {
            let owned: Vec<String> = pointers.iter().map(|p| p.to_string()).collect();
            let projection = Projection::new(&owned).unwrap();
            for doc in docs {
                let (fields, lengths) = extract_with_lengths(&projection, doc.as_bytes()).unwrap();
                let apart = projection.extract(doc.as_bytes()).unwrap();
                assert_eq!(
                    format!("{fields:?}"),
                    format!("{apart:?}"),
                    "{pointers:?} in {doc}"
                );
                assert_eq!(
                    lengths,
                    histogram_lengths(doc.as_bytes()).unwrap(),
                    "{pointers:?} in {doc}"
                );
            }
            for bad in [
                &b"{"[..],
                b"{\"payload\":{\"histograms\":{\"A\":[1,}}}",
                b"{} x",
            ] {
                assert!(extract_with_lengths(&projection, bad).is_err());
            }
        }
    }
}
