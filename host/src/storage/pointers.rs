//! [`PointerCounts`]: which JSON pointers occur in a set of documents and in how many of them,
//! with the JSON types seen at each (for `telemetry-server storage sample --pointers`, so a job
//! author can pick the fields to declare). Arrays are counted as a whole, not per element, and
//! the number of distinct pointers kept is capped.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// How often each JSON pointer occurred, over the documents added.
#[derive(Debug, Default)]
pub struct PointerCounts {
    cap: usize,
    documents: u64,
    pointers: BTreeMap<String, Seen>,
    /// Pointers not kept because the cap was reached.
    dropped: u64,
}

/// What was seen at one pointer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Documents the pointer occurs in.
    pub documents: u64,
    /// JSON types found there (`object`, `array`, `string`, `number`, `boolean`, `null`).
    pub types: BTreeSet<&'static str>,
}

impl PointerCounts {
    /// Counts keeping at most `cap` distinct pointers.
    pub fn new(cap: usize) -> PointerCounts {
        PointerCounts {
            cap,
            ..PointerCounts::default()
        }
    }

    /// Adds one document: every pointer in it (objects and their members, recursively; an
    /// array is one pointer) counts once.
    pub fn add(&mut self, doc: &Value) {
        self.documents += 1;
        let mut path = String::new();
        self.walk(doc, &mut path);
    }

    fn walk(&mut self, value: &Value, path: &mut String) {
        if !path.is_empty() {
            let kind = type_name(value);
            let room = self.pointers.len() < self.cap;
            match self.pointers.get_mut(path.as_str()) {
                Some(seen) => {
                    seen.documents += 1;
                    seen.types.insert(kind);
                }
                None if room => {
                    let mut seen = Seen {
                        documents: 1,
                        ..Seen::default()
                    };
                    seen.types.insert(kind);
                    self.pointers.insert(path.clone(), seen);
                }
                None => self.dropped += 1,
            }
        }
        if let Value::Object(members) = value {
            for (key, member) in members {
                let len = path.len();
                path.push('/');
                path.push_str(&key.replace('~', "~0").replace('/', "~1"));
                self.walk(member, path);
                path.truncate(len);
            }
        }
    }

    /// Documents added.
    pub fn documents(&self) -> u64 {
        self.documents
    }

    /// Every pointer kept, sorted, with what was seen there.
    pub fn pointers(&self) -> impl Iterator<Item = (&str, &Seen)> {
        self.pointers.iter().map(|(p, s)| (p.as_str(), s))
    }

    /// Pointer occurrences not counted because the cap was reached.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_each_pointer_once_per_document_with_its_types() {
        let mut counts = PointerCounts::new(100);
        counts.add(&json!({"info": {"OS": "Linux", "a/b~c": 1}, "h": [1, 2, {"x": 1}]}));
        counts.add(&json!({"info": {"OS": null}, "ver": 4}));
        let got: Vec<(String, u64, Vec<&str>)> = counts
            .pointers()
            .map(|(p, s)| {
                (
                    p.to_string(),
                    s.documents,
                    s.types.iter().copied().collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("/h".to_string(), 1, vec!["array"]),
                ("/info".to_string(), 2, vec!["object"]),
                ("/info/OS".to_string(), 2, vec!["null", "string"]),
                ("/info/a~1b~0c".to_string(), 1, vec!["number"]),
                ("/ver".to_string(), 1, vec!["number"]),
            ]
        );
        assert_eq!((counts.documents(), counts.dropped()), (2, 0));
    }

    #[test]
    fn the_number_of_pointers_kept_is_capped() {
        let mut counts = PointerCounts::new(2);
        counts.add(&json!({"a": 1, "b": 2, "c": 3, "d": 4}));
        assert_eq!(counts.pointers().count(), 2);
        assert_eq!(counts.dropped(), 2);
    }
}
