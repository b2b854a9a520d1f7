//! Removes insignificant whitespace from JSON text, so pretty-printed submissions become one
//! stored line and untouched sections can be copied through verbatim.

/// Copies `json` without whitespace outside strings. Strings (with their escapes) are copied
/// unchanged; JSON forbids raw newlines inside strings, so the result has no line breaks.
/// The input need not be valid JSON (the parser that follows reports errors).
pub fn minify(json: &str) -> String {
    let bytes = json.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\n' | b'\r' | b'\t' => i += 1,
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() {
                    match super::split::quote_or_escape(bytes, i) {
                        None => i = bytes.len(),
                        Some(at) if bytes[at] == b'\\' => i = at + 2,
                        Some(at) => {
                            i = at + 1;
                            break;
                        }
                    }
                }
                out.extend_from_slice(&bytes[start..i.min(bytes.len())]);
            }
            _ => {
                let start = i;
                while i < bytes.len() && !matches!(bytes[i], b' ' | b'\n' | b'\r' | b'\t' | b'"') {
                    i += 1;
                }
                out.extend_from_slice(&bytes[start..i]);
            }
        }
    }
    // Only ASCII whitespace outside strings was removed and strings were copied whole, so
    // the bytes are still UTF-8; the fallback is unreachable but panic-free.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::minify;

    #[test]
    fn strips_whitespace_outside_strings_only() {
        assert_eq!(
            minify("{\n  \"a b\": [1, 2],\t\"c\\\" d\": \"x\\\\\" }\r\n"),
            r#"{"a b":[1,2],"c\" d":"x\\"}"#
        );
        assert_eq!(minify("\"unterminated \\"), "\"unterminated \\");
        assert_eq!(minify("  Wikipédia "), "Wikipédia");
    }
}
