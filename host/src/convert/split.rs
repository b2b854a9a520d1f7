//! Members of a JSON object found by one fast scan, for text that is already known to be valid
//! JSON: a value inside a document serde_json has parsed whole. The converter looks into nested
//! objects (payload, histogram sections, each histogram) several levels deep; parsing each level
//! again with a validating parser scanned the histogram bytes four times over.
//!
//! [`members`] answers `None` for anything it does not recognise as an object (callers then parse
//! with serde_json, whose results and errors they keep); on valid JSON its members are exactly
//! serde_json's: every member in order, duplicates included, keys unescaped, values as written.

use std::borrow::Cow;

/// Members of `text` (a valid JSON value) when it is an object: keys (unescaped) and value texts.
pub fn members(text: &str) -> Option<Vec<(Cow<'_, str>, &str)>> {
    let bytes = text.as_bytes();
    let mut i = skip_ws(bytes, 0);
    if bytes.get(i) != Some(&b'{') {
        return None;
    }
    let mut out = Vec::with_capacity(16);
    i = skip_ws(bytes, i + 1);
    if bytes.get(i) == Some(&b'}') {
        return (skip_ws(bytes, i + 1) == bytes.len()).then_some(out);
    }
    loop {
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
        let value_end = value_end(bytes, i)?;
        out.push((key, &text[i..value_end]));
        i = skip_ws(bytes, value_end);
        match bytes.get(i) {
            Some(b',') => i = skip_ws(bytes, i + 1),
            Some(b'}') => break,
            _ => return None,
        }
    }
    (skip_ws(bytes, i + 1) == bytes.len()).then_some(out)
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while matches!(bytes.get(i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
        i += 1;
    }
    i
}

/// The index of the first `"` or `\\` at or after `from`. Most strings of a ping are short keys
/// and numbers-as-keys, so the first bytes are looked at one by one before a vectorised search
/// (whose set-up costs more than a short string).
pub fn quote_or_escape(bytes: &[u8], from: usize) -> Option<usize> {
    let head = bytes.get(from..)?;
    let short = head.len().min(16);
    match head[..short].iter().position(|&b| b == b'"' || b == b'\\') {
        Some(at) => Some(from + at),
        None => memchr::memchr2(b'"', b'\\', &head[short..]).map(|at| from + short + at),
    }
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

    #[test]
    fn anything_but_an_object_is_left_to_serde_json() {
        for text in ["[1]", "7", "\"s\"", "null", "", " "] {
            assert_eq!(members(text), None, "{text}");
        }
    }
}
