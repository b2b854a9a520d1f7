//! Members of a JSON object found by one fast scan, for text that is already known to be valid
//! JSON: a value inside a document serde_json has parsed whole. The converter looks into nested
//! objects (payload, histogram sections, each histogram) several levels deep; parsing each level
//! again with a validating parser scanned the histogram bytes four times over.
//!
//! [`members`] answers `None` for anything it does not recognise as an object (callers then parse
//! with serde_json, whose results and errors they keep); on valid JSON its members are exactly
//! serde_json's: every member in order, duplicates included, keys unescaped, values as written.
//!
//! While an [`Indexed`] document is being converted, [`members`] of any object inside it skips
//! nested objects and arrays in one step: [`Indexed::new`] found where each of them closes in the
//! one pass that also validated the document ([`super::json_scan`]), so looking into a histogram
//! section costs its member count, not its bytes.

use std::borrow::Cow;
use std::cell::RefCell;

use super::json_scan::{self, Scan};

thread_local! {
    /// Where the brackets of the document this thread converts close (see [`Indexed`]).
    static INDEX: RefCell<BracketIndex> = RefCell::new(BracketIndex::default());
}

/// Brackets of one document, reused from document to document: 4 bytes per byte of document,
/// kept after a document of at most [`KEPT_BYTES`] (a real ping), released after a larger one (a
/// 32 MiB body would otherwise pin 128 MiB per conversion thread).
#[derive(Default)]
struct BracketIndex {
    /// Address of the indexed text.
    base: usize,
    /// Its length; 0 when no document is indexed.
    len: usize,
    /// `closes[i]`: offset of the bracket closing the `{` or `[` at offset `i` (meaningful at
    /// those offsets only).
    closes: Vec<u32>,
    /// Offsets of the brackets open during [`Indexed::new`]'s pass.
    open: Vec<u32>,
}

/// One member of an object: its key (unescaped) and its value's text.
pub type Member<'t> = (Cow<'t, str>, &'t str);

/// The largest document whose index is kept for the next one.
const KEPT_BYTES: usize = 1 << 20;

impl BracketIndex {
    /// The offset of `text` in the indexed document, if it lies inside it.
    fn offset_of(&self, text: &str) -> Option<usize> {
        let start = (text.as_ptr() as usize).checked_sub(self.base)?;
        (start + text.len() <= self.len).then_some(start)
    }

    /// Fills `closes` for `bytes` by the validating [`json_scan::scan`]; `None` (and nothing
    /// indexed) when `bytes` is not valid JSON.
    fn build(&mut self, bytes: &[u8]) -> Option<Scan> {
        if u32::try_from(bytes.len()).is_err() {
            return None;
        }
        if self.closes.len() < bytes.len() {
            self.closes.resize(bytes.len(), 0);
        }
        json_scan::scan(bytes, &mut self.closes, &mut self.open)
    }
}

/// Indexes the brackets of `text` for [`members`] on this thread until dropped, and says what
/// the scan that indexed it found.
pub struct Indexed(Option<Scan>);

impl Indexed {
    /// Scans and indexes `text` (left unindexed, so scanned by each [`members`], when it is not
    /// valid JSON).
    pub fn new(text: &str) -> Indexed {
        Indexed(INDEX.with(|index| {
            let mut index = index.borrow_mut();
            index.len = 0;
            let scan = index.build(text.as_bytes());
            if scan.is_some() {
                index.base = text.as_ptr() as usize;
                index.len = text.len();
            }
            scan
        }))
    }

    /// The text is an object serde_json accepts as a document (its validating parse can be
    /// skipped; false: let serde_json judge it).
    pub fn valid_object(&self) -> bool {
        self.0.is_some_and(|scan| scan.object)
    }

    /// The text is valid JSON with whitespace outside strings (to be minified before storing).
    pub fn has_whitespace(&self) -> bool {
        self.0.is_some_and(|scan| scan.whitespace)
    }
}

impl Drop for Indexed {
    fn drop(&mut self) {
        INDEX.with(|index| {
            let mut index = index.borrow_mut();
            index.len = 0;
            if index.closes.len() > KEPT_BYTES {
                index.closes = Vec::new();
                index.open = Vec::new();
            }
        });
    }
}

/// Members of `text` (a valid JSON value) when it is an object: keys (unescaped) and value texts.
pub fn members(text: &str) -> Option<Vec<Member<'_>>> {
    INDEX.with(|index| {
        let index = index.borrow();
        let closes = index
            .offset_of(text)
            .map(|offset| (&index.closes[..index.len], offset));
        members_in(text, closes)
    })
}

/// [`members`], with the bracket index of the document and `text`'s offset in it when indexed.
fn members_in<'t>(text: &'t str, closes: Option<(&[u32], usize)>) -> Option<Vec<Member<'t>>> {
    let mut out = Vec::with_capacity(16);
    for member in MemberIter::new(text, closes)? {
        out.push(member?);
    }
    Some(out)
}

/// The members of `text` (a valid JSON value) one at a time, without collecting them and without
/// the bracket index: for an object whose values are scalars (a histogram's `values`). `None`
/// when it is not an object; an item is `None` (and the last) where the text turns out not to be
/// one (a key whose escapes do not decode).
pub fn member_iter(text: &str) -> Option<MemberIter<'_, 'static>> {
    MemberIter::new(text, None)
}

/// The members of `text` (a valid JSON object) when every key is a decimal integer string and
/// every value a decimal integer (a histogram's `values`, `{"0":4029,"1":14}`): calls `each` with
/// the key's text and value, the value's text and value, in order, and answers what `each`
/// answered first as an error, else `Ok`. `None` as soon as a member has another form (escapes,
/// whitespace, signs other than a leading `-`, fractions, more than 18 digits): the caller then
/// reads the whole object the general way, whose results for such objects are the same.
pub fn integer_members<E>(
    text: &str,
    mut each: impl FnMut(&str, i64, &str, i64) -> Result<(), E>,
) -> Option<Result<(), E>> {
    let bytes = text.as_bytes();
    if bytes.first() != Some(&b'{') {
        return None;
    }
    if bytes.get(1) == Some(&b'}') {
        return (bytes.len() == 2).then_some(Ok(()));
    }
    let mut i = 1;
    loop {
        if bytes.get(i) != Some(&b'"') {
            return None;
        }
        let (key, key_end) = integer_at(bytes, i + 1)?;
        if bytes.get(key_end..key_end + 2) != Some(b"\":") {
            return None;
        }
        let (value, value_end) = integer_at(bytes, key_end + 2)?;
        if let Err(e) = each(
            &text[i + 1..key_end],
            key,
            &text[key_end + 2..value_end],
            value,
        ) {
            return Some(Err(e));
        }
        match bytes.get(value_end) {
            Some(b',') => i = value_end + 1,
            Some(b'}') if value_end + 1 == bytes.len() => return Some(Ok(())),
            _ => return None,
        }
    }
}

/// The integer `-?[0-9]{1,18}` at `i` and the offset after it.
#[inline]
fn integer_at(bytes: &[u8], mut i: usize) -> Option<(i64, usize)> {
    let negative = bytes.get(i) == Some(&b'-');
    if negative {
        i += 1;
    }
    let start = i;
    let mut value: i64 = 0;
    while let Some(&digit @ b'0'..=b'9') = bytes.get(i) {
        if i - start == 18 {
            return None; // a 19th digit could overflow
        }
        value = value * 10 + i64::from(digit - b'0');
        i += 1;
    }
    if i == start {
        return None;
    }
    Some((if negative { -value } else { value }, i))
}

/// Members of an object as they are scanned: see [`member_iter`].
pub struct MemberIter<'t, 'c> {
    text: &'t str,
    closes: Option<(&'c [u32], usize)>,
    /// Where the next member's key starts; `None` once the object has ended.
    next: Option<usize>,
}

impl<'t, 'c> MemberIter<'t, 'c> {
    fn new(text: &'t str, closes: Option<(&'c [u32], usize)>) -> Option<Self> {
        let bytes = text.as_bytes();
        let mut i = skip_ws(bytes, 0);
        if bytes.get(i) != Some(&b'{') {
            return None;
        }
        i = skip_ws(bytes, i + 1);
        let next = if bytes.get(i) == Some(&b'}') {
            if skip_ws(bytes, i + 1) != bytes.len() {
                return None;
            }
            None
        } else {
            Some(i)
        };
        Some(MemberIter { text, closes, next })
    }

    /// The member whose key starts at `i`, and where the next one starts (`None`: the last).
    fn member(&self, mut i: usize) -> Option<(Member<'t>, Option<usize>)> {
        let (text, bytes) = (self.text, self.text.as_bytes());
        if bytes.get(i) != Some(&b'"') {
            return None;
        }
        let end = string_end(bytes, i)?;
        let raw_key = &text[i + 1..end - 1];
        let key = if raw_key.contains('\\') {
            Cow::Owned(serde_json::from_str::<String>(&text[i..end]).ok()?)
        } else {
            Cow::Borrowed(raw_key)
        };
        i = skip_ws(bytes, end);
        if bytes.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(bytes, i + 1);
        let value_end = match (self.closes, bytes.get(i)) {
            (Some((closes, offset)), Some(b'{' | b'[')) => {
                let end = (closes[offset + i] as usize).checked_sub(offset)? + 1;
                match bytes.get(end.checked_sub(1)?) {
                    Some(b'}' | b']') if end > i => end,
                    _ => value_end(bytes, i)?,
                }
            }
            _ => value_end(bytes, i)?,
        };
        let member = (key, &text[i..value_end]);
        i = skip_ws(bytes, value_end);
        match bytes.get(i) {
            Some(b',') => Some((member, Some(skip_ws(bytes, i + 1)))),
            Some(b'}') if skip_ws(bytes, i + 1) == bytes.len() => Some((member, None)),
            _ => None,
        }
    }
}

impl<'t> Iterator for MemberIter<'t, '_> {
    type Item = Option<Member<'t>>;

    fn next(&mut self) -> Option<Self::Item> {
        let at = self.next.take()?;
        Some(self.member(at).map(|(member, next)| {
            self.next = next;
            member
        }))
    }
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while matches!(bytes.get(i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
        i += 1;
    }
    i
}

/// The index of the first `"` or `\\` at or after `from`.
pub fn quote_or_escape(bytes: &[u8], from: usize) -> Option<usize> {
    super::string_scan::next_stop::<false>(bytes, from)
}

/// The index after the closing quote of the string starting at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        let at = quote_or_escape(bytes, i)?;
        if bytes[at] == b'\\' {
            i = at + 2;
        } else {
            return Some(at + 1);
        }
    }
}

/// The index after the value starting at `start`.
fn value_end(bytes: &[u8], start: usize) -> Option<usize> {
    match bytes.get(start)? {
        b'"' => string_end(bytes, start),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = start;
            while i < bytes.len() {
                match bytes[i] {
                    b'"' => {
                        i = string_end(bytes, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            let len = bytes[start..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t'))
                .unwrap_or(bytes.len() - start);
            (len > 0).then_some(start + len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histograms::RawObject;

    /// serde_json's members of `text`, for comparison.
    fn serde(text: &str) -> Option<Vec<(String, String)>> {
        RawObject::parse(text).ok().map(|o| {
            o.0.into_iter()
                .map(|(k, v)| (k.into_owned(), v.get().to_owned()))
                .collect()
        })
    }

    fn fast(text: &str) -> Option<Vec<(String, String)>> {
        members(text).map(|m| {
            m.into_iter()
                .map(|(k, v)| (k.into_owned(), v.to_owned()))
                .collect()
        })
    }

    #[test]
    fn members_match_serde_json_on_valid_objects() {
        for text in [
            "{}",
            " { } ",
            r#"{"a":1,"b":{"x":[1,{"y":"}]\""}]},"a":-2.5e3,"c":"s\\\"","d":null,"e":true,"f":[]}"#,
            "{\n  \"a b\" : [ 1 , 2 ] ,\t\"k\\u0041\\n\":\"v\\\\\" , \"z\": {\"q\": []}\n}\n",
            r#"{"values":{"0":3,"10":0},"range":[1,3000],"bucket_count":10,"sum":1.5}"#,
            r#"{"é":"ü","":""}"#,
        ] {
            assert_eq!(fast(text), serde(text), "{text}");
            assert!(fast(text).is_some(), "{text}");
        }
    }

    /// The same members with the document's brackets indexed, at every level of nesting.
    #[test]
    fn indexed_documents_give_the_same_members() {
        let doc = r#"{"payload":{"histograms":{"A":{"values":{"0":1,"1":[2,{"x":"]}"}]},"sum":3},"B":{}},"s":"{["},"e":[[],{}]}"#;
        let _index = Indexed::new(doc);
        let mut pending = vec![doc];
        let mut objects = 0;
        while let Some(text) = pending.pop() {
            assert_eq!(fast(text), serde(text), "{text}");
            if let Some(members) = members(text) {
                objects += 1;
                pending.extend(members.into_iter().map(|(_, v)| v));
            }
        }
        assert_eq!(objects, 6);
        // Not indexed: text outside the document, and everything once the index is dropped.
        let other = r#"{"a":{"b":[1]}}"#.to_owned();
        assert_eq!(fast(&other), serde(&other));
        drop(_index);
        assert_eq!(fast(doc), serde(doc));
        // Text that is not valid JSON is left unindexed, whether or not its brackets pair up.
        for bad in ["{\"a\":[}", "{\"a\":tru}"] {
            let bad = Indexed::new(bad);
            assert_eq!(INDEX.with(|i| i.borrow().len), 0);
            assert!(!bad.valid_object());
        }
    }

    #[test]
    fn a_large_document_s_index_is_released_a_real_ping_s_is_kept() {
        let capacity = || INDEX.with(|i| i.borrow().closes.capacity());
        let large = format!("{{\"a\":\"{}\",\"b\":{{}}}}", "x".repeat(KEPT_BYTES * 2));
        let indexed = Indexed::new(&large);
        assert!(capacity() > KEPT_BYTES * 2);
        assert_eq!(fast(&large), serde(&large));
        drop(indexed);
        assert_eq!(capacity(), 0, "a 2 MiB document's index is not kept");
        let small = r#"{"a":{"b":[1]}}"#;
        drop(Indexed::new(small));
        assert!(
            capacity() >= small.len(),
            "a small document's index is kept for the next"
        );
    }

    #[test]
    fn anything_but_an_object_is_left_to_serde_json() {
        for text in ["[1]", "7", "\"s\"", "null", "", " "] {
            assert_eq!(members(text), None, "{text}");
        }
    }

    /// What [`integer_members`] calls `each` with, or `None` when it leaves the object to
    /// [`member_iter`].
    fn integers(text: &str) -> Option<Vec<(String, i64, String, i64)>> {
        let mut seen = Vec::new();
        integer_members(text, |key, bound, count, value| {
            seen.push((key.to_owned(), bound, count.to_owned(), value));
            Ok::<(), ()>(())
        })?
        .unwrap();
        Some(seen)
    }

    #[test]
    fn integer_members_agree_with_the_general_reading() {
        for text in [
            "{}",
            r#"{"0":4029,"1":14,"2":3,"5":1,"6":0}"#,
            r#"{"-5":-3,"007":0,"999999999999999999":-999999999999999999}"#,
        ] {
            let fast = integers(text).unwrap_or_else(|| panic!("{text}"));
            let general: Vec<_> = member_iter(text)
                .unwrap()
                .map(|m| {
                    let (key, count) = m.unwrap();
                    let bound = key.parse().unwrap();
                    (
                        key.into_owned(),
                        bound,
                        count.to_owned(),
                        count.parse().unwrap(),
                    )
                })
                .collect();
            assert_eq!(fast, general, "{text}");
        }
    }

    #[test]
    fn other_forms_are_left_to_the_general_reading() {
        for text in [
            r#"{"0":1.5}"#,
            r#"{"0":1e3}"#,
            r#"{"+1":2}"#,
            r#"{"1 ":2}"#,
            r#"{"a":1}"#,
            r#"{"\u0030":1}"#,
            r#"{"0" :1}"#,
            r#"{"0": 1}"#,
            r#"{ "0":1}"#,
            r#"{"0":1 }"#,
            r#"{"0":"1"}"#,
            r#"{"0":null}"#,
            r#"{"-":1}"#,
            r#"{"0":-}"#,
            r#"{"1234567890123456789":1}"#,
            r#"{"0":1234567890123456789}"#,
            r#"{"99999999999999999999":1}"#,
            r#"{"0":-99999999999999999999}"#,
            r#"{"0":1}x"#,
            "[1]",
        ] {
            assert_eq!(integers(text), None, "{text}");
        }
    }

    #[test]
    fn the_first_error_stops_the_reading() {
        let mut calls = 0;
        let result = integer_members(r#"{"0":1,"1":2,"2":3}"#, |key, _, _, _| {
            calls += 1;
            if key == "1" {
                Err(key.to_owned())
            } else {
                Ok(())
            }
        });
        assert_eq!(result, Some(Err("1".to_owned())));
        assert_eq!(calls, 2);
    }
}
