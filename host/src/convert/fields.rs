//! An output JSON object under construction: keys (unescaped) and values as JSON text, either
//! borrowed from the input unchanged or generated. Written once, in order, as minimal JSON.

use std::borrow::Cow;

use super::compact::write_key;
use crate::histograms::RawObject;

/// Ordered members of an object being built.
#[derive(Debug, Default)]
pub struct Fields<'a>(pub Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'a> Fields<'a> {
    /// The members of a parsed object, values unchanged.
    pub fn from_object(obj: RawObject<'a>) -> Fields<'a> {
        Fields(
            obj.0
                .into_iter()
                .map(|(k, v)| (k, Cow::Borrowed(v.get())))
                .collect(),
        )
    }

    /// JSON text of the last member named `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// Appends a member (JSON text value).
    pub fn push(&mut self, key: impl Into<Cow<'a, str>>, json: impl Into<Cow<'a, str>>) {
        self.0.push((key.into(), json.into()));
    }

    /// Replaces the value of every member named `key`, or appends it.
    pub fn set(&mut self, key: &str, json: impl Into<Cow<'a, str>>) {
        let json = json.into();
        let mut found = false;
        for (_, v) in self.0.iter_mut().filter(|(k, _)| k == key) {
            *v = json.clone();
            found = true;
        }
        if !found {
            self.0.push((Cow::Owned(key.to_owned()), json));
        }
    }

    /// Appends the members of `other` whose keys this object does not have.
    pub fn extend_missing(&mut self, other: Fields<'a>) {
        for (key, value) in other.0 {
            if !self.contains(&key) {
                self.0.push((key, value));
            }
        }
    }

    /// Removes every member named `key`.
    pub fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| k != key);
    }

    /// Writes the object as minimal JSON.
    pub fn write(&self, out: &mut String) {
        out.push('{');
        for (i, (key, value)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_key(out, key);
            out.push_str(value);
        }
        out.push('}');
    }

    /// The object as minimal JSON.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(
            self.0
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>()
                + 2,
        );
        self.write(&mut out);
        out
    }
}

/// The string value of a JSON text (`"abc"` → `abc`, numbers and booleans as written), `None`
/// for null, objects and arrays.
pub fn scalar_text(json: &str) -> Option<Cow<'_, str>> {
    match json.as_bytes().first()? {
        b'"' if !json.contains('\\') && json.len() >= 2 => {
            Some(Cow::Borrowed(&json[1..json.len() - 1]))
        }
        b'"' => serde_json::from_str::<String>(json).ok().map(Cow::Owned),
        b'{' | b'[' | b'n' => None,
        _ => Some(Cow::Borrowed(json)),
    }
}

/// The string value of a JSON string text (not numbers).
pub fn string_value(json: &str) -> Option<Cow<'_, str>> {
    json.starts_with('"').then(|| scalar_text(json)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_writes_objects() {
        let obj = RawObject::parse(r#"{"a":1,"b":{"x":[]},"c":"s"}"#).unwrap();
        let mut fields = Fields::from_object(obj);
        fields.set("a", "2");
        fields.remove("b");
        fields.push("d\"", r#""\u00e9""#);
        assert_eq!(fields.to_json(), r#"{"a":2,"c":"s","d\"":"\u00e9"}"#);
        assert_eq!(scalar_text(fields.get("d\"").unwrap()).unwrap(), "é");
        assert_eq!(scalar_text("12").unwrap(), "12");
        assert_eq!(scalar_text("null"), None);
        assert_eq!(scalar_text("{}"), None);
    }
}
