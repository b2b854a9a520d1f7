//! One pass over a submitted document that answers what the converter used to ask in three:
//! is it a JSON object that serde_json's validating parse accepts (so that parse can be
//! skipped), has it whitespace outside strings (so it must be minified first), and where does
//! each `{` and `[` close (the bracket index [`super::split`] looks into nested objects with).
//!
//! The grammar is serde_json's (1.0), which decides what is rejected as invalid JSON: numbers
//! `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, the escapes `\" \\ \/ \b \f \n \r \t \uXXXX`
//! (any four hex digits: values are not decoded), no control character inside a string,
//! whitespace ` \t\n\r`, nothing after the value but whitespace. Only the root object's keys are
//! decoded by serde_json (a lone surrogate escape is an error there), so a root key with an
//! escape leaves the verdict to it. Never more permissive than serde_json: the converter relies
//! on "valid" to skip it, and `json_scan` tests and the converter fuzz target compare the two.

/// What [`scan`] found in a text that is valid JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// The value is an object serde_json accepts as the root of a document (false: another
    /// value, or a root key with an escape, which only serde_json's parse can judge).
    pub object: bool,
    /// There is whitespace outside strings.
    pub whitespace: bool,
}

/// Scans `bytes`, recording in `closes[i]` the offset of the bracket that closes the `{` or `[`
/// at offset `i`; `open` is scratch space. `None` when the text is not valid JSON (`closes` is
/// then incomplete). `closes` must be at least as long as `bytes`, and `bytes` shorter than 4 GiB.
pub fn scan(bytes: &[u8], closes: &mut [u32], open: &mut Vec<u32>) -> Option<Scan> {
    debug_assert!(closes.len() >= bytes.len() && u32::try_from(bytes.len()).is_ok());
    open.clear();
    let mut whitespace = false;
    let mut i = skip_ws(bytes, 0, &mut whitespace);
    let mut object = bytes.get(i) == Some(&b'{');
    // Whether the innermost open bracket is a `{`.
    let mut in_object = false;
    'value: loop {
        // A value starts at `i`.
        match *bytes.get(i)? {
            bracket @ (b'{' | b'[') => {
                let start = i;
                let close = if bracket == b'{' { b'}' } else { b']' };
                i = skip_ws(bytes, i + 1, &mut whitespace);
                if *bytes.get(i)? == close {
                    closes[start] = i as u32;
                    i += 1;
                } else {
                    open.push(start as u32);
                    in_object = bracket == b'{';
                    if in_object {
                        i = key(bytes, i, &mut whitespace, open.len() == 1, &mut object)?;
                    }
                    continue 'value;
                }
            }
            b'"' => i = string_end(bytes, i + 1)?,
            b'-' | b'0'..=b'9' => i = number_end(bytes, i)?,
            b't' => i = literal_end(bytes, i, b"true")?,
            b'f' => i = literal_end(bytes, i, b"false")?,
            b'n' => i = literal_end(bytes, i, b"null")?,
            _ => return None,
        }
        // A value ended at `i`: close brackets until a comma starts the next value.
        loop {
            i = skip_ws(bytes, i, &mut whitespace);
            if open.is_empty() {
                return (i == bytes.len()).then_some(Scan { object, whitespace });
            }
            match (*bytes.get(i)?, in_object) {
                (b',', true) => {
                    i = skip_ws(bytes, i + 1, &mut whitespace);
                    i = key(bytes, i, &mut whitespace, open.len() == 1, &mut object)?;
                    continue 'value;
                }
                (b',', false) => {
                    i = skip_ws(bytes, i + 1, &mut whitespace);
                    continue 'value;
                }
                (b'}', true) | (b']', false) => {
                    closes[open.pop()? as usize] = i as u32;
                    in_object = open.last().is_some_and(|&at| bytes[at as usize] == b'{');
                    i += 1;
                }
                _ => return None,
            }
        }
    }
}

/// A key and its colon at `i`; answers where the value starts. A root key with an escape
/// leaves the verdict to serde_json (`object` becomes false).
fn key(
    bytes: &[u8],
    i: usize,
    whitespace: &mut bool,
    root: bool,
    object: &mut bool,
) -> Option<usize> {
    if bytes.get(i) != Some(&b'"') {
        return None;
    }
    let end = string_end(bytes, i + 1)?;
    if root && bytes[i + 1..end].contains(&b'\\') {
        *object = false;
    }
    let i = skip_ws(bytes, end, whitespace);
    if bytes.get(i) != Some(&b':') {
        return None;
    }
    Some(skip_ws(bytes, i + 1, whitespace))
}

#[inline(always)]
fn skip_ws(bytes: &[u8], mut i: usize, whitespace: &mut bool) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(i) {
        *whitespace = true;
        i += 1;
    }
    i
}

/// The offset after the closing quote of a string whose content starts at `i`.
fn string_end(bytes: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i = super::string_scan::next_stop::<true>(bytes, i)?;
        match bytes[i] {
            b'"' => return Some(i + 1),
            b'\\' => match *bytes.get(i + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                b'u' if bytes.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) => i += 6,
                _ => return None,
            },
            _ => return None, // a control character
        }
    }
}

/// The offset after the number starting at `i`.
fn number_end(bytes: &[u8], mut i: usize) -> Option<usize> {
    let digits = |mut i: usize| {
        while let Some(b'0'..=b'9') = bytes.get(i) {
            i += 1;
        }
        i
    };
    if bytes[i] == b'-' {
        i += 1;
    }
    match *bytes.get(i)? {
        b'0' if matches!(bytes.get(i + 1), Some(b'0'..=b'9')) => return None,
        b'0' => i += 1,
        b'1'..=b'9' => i = digits(i + 1),
        _ => return None,
    }
    if bytes.get(i) == Some(&b'.') {
        let end = digits(i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
    }
    if let Some(b'e' | b'E') = bytes.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = bytes.get(i) {
            i += 1;
        }
        let end = digits(i);
        if end == i {
            return None;
        }
        i = end;
    }
    Some(i)
}

fn literal_end(bytes: &[u8], i: usize, literal: &[u8]) -> Option<usize> {
    (bytes.get(i..i + literal.len())? == literal).then_some(i + literal.len())
}

/// Panics when [`scan`] and serde_json disagree on `text`: the scan calls valid what serde_json
/// rejects, or rejects an object serde_json accepts whose root keys have no escape. The converter
/// fuzz target and the tests run it.
pub fn assert_agrees_with_serde_json(text: &str) {
    let mut closes = vec![0; text.len()];
    let scan = scan(text.as_bytes(), &mut closes, &mut Vec::new());
    let serde = crate::histograms::RawObject::parse(text);
    if scan.is_some_and(|s| s.object) {
        if let Err(e) = &serde {
            panic!("the scan accepts what serde_json rejects ({e}): {text:?}");
        }
    }
    if let Ok(root) = &serde {
        let escaped_key = root
            .0
            .iter()
            .any(|(k, _)| matches!(k, std::borrow::Cow::Owned(_)));
        assert!(
            escaped_key || scan.is_some_and(|s| s.object),
            "the scan rejects what serde_json accepts: {text:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(text: &str) -> Option<Scan> {
        let mut closes = vec![0; text.len()];
        scan(text.as_bytes(), &mut closes, &mut Vec::new())
    }

    use assert_agrees_with_serde_json as assert_agrees;

    #[test]
    fn agrees_with_serde_json_on_hand_picked_documents() {
        for text in [
            "{}",
            " {}\n",
            "{\"a\":1}",
            "{\"a\":-0,\"b\":-0.5e+3,\"c\":1E9,\"d\":0.0,\"e\":12.34e-2}",
            "{\"a\":01}",
            "{\"a\":-}",
            "{\"a\":1.}",
            "{\"a\":.5}",
            "{\"a\":1e}",
            "{\"a\":1e+}",
            "{\"a\":+1}",
            "{\"a\":[1,2,]}",
            "{\"a\":[,]}",
            "{\"a\":1,}",
            "{,}",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\" : [ true , false , null ] }",
            "{\"a\":tru}",
            "{\"a\":nul}",
            "{\"a\":truex}",
            "{\"a\":\"\\u00e9\\n\\t\\/\\\"\"}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\u12\"}",
            "{\"a\":\"\\ud800\"}",
            "{\"\\ud800\":1}",
            "{\"\\u0041\":1}",
            "{\"x\":{\"\\ud800\":1}}",
            "{\"a\":\"tab\there\"}",
            "{\"a\":\"nul\u{0}\"}",
            "{\"a\":\"é\u{7f}\"}",
            "{\"a\":1}x",
            "{\"a\":1}{}",
            "{\"a\":1",
            "{\"a\":[}",
            "{\"a\":{]}",
            "{\"a\":\"unterminated}",
            "\u{feff}{}",
            "[1]",
            "1",
            "\"s\"",
            "null",
            "",
            " ",
            "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
        ] {
            assert_agrees(text);
        }
        assert_eq!(
            verdict("{ \"a\":1}"),
            Some(Scan {
                object: true,
                whitespace: true
            })
        );
        assert_eq!(verdict("{\"a\":\" \"}").map(|s| s.whitespace), Some(false));
    }

    #[test]
    fn closes_are_where_each_bracket_closes() {
        let text = r#"{"a":[1,{"b":"]}"}],"c":{}}"#;
        let mut closes = vec![0; text.len()];
        scan(text.as_bytes(), &mut closes, &mut Vec::new()).unwrap();
        for (open, close) in [(0, 26), (5, 18), (8, 17), (24, 25)] {
            assert_eq!(closes[open], close, "the bracket at {open}");
        }
    }

    /// Thousands of single-byte mutations and truncations of a document with every kind of
    /// value (the fuzz smoke test does the same to the real pings through the converter).
    #[test]
    fn agrees_with_serde_json_on_mutated_documents() {
        let doc = br#"{"type":"main","version":4,"payload":{"info":{"reason":"x\u00e9\n"},"histograms":{"A":{"range":[1,3000],"bucket_count":10,"histogram_type":0,"values":{"0":3,"10":0},"sum":1.5e3,"log_sum":-0.25,"log_sum_squares":0}},"flags":[true,false,null,[],{}]},"key":"v\"w"}"#;
        assert!(verdict(std::str::from_utf8(doc).unwrap()).is_some_and(|s| s.object));
        let replacements = b"{}[]\",:\\ 0-.eE+tfnu\x01aZ";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for n in 0..50_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = (state % doc.len() as u64) as usize;
            let pick = replacements[(state >> 32) as usize % replacements.len()];
            let mut bytes = doc.to_vec();
            match n % 4 {
                0 => bytes.truncate(at),
                1 => {
                    bytes.remove(at);
                }
                2 => bytes.insert(at, pick),
                _ => bytes[at] = pick,
            }
            if let Ok(text) = std::str::from_utf8(&bytes) {
                assert_agrees(text);
            }
        }
    }
}
