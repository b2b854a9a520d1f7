//! Result formats: a job's stored output is sorted `key<TAB>value` lines (the text format); this
//! renders it, one line at a time ([`render_line`]), as NDJSON (`{"key":…,"value":…}` per line) or
//! CSV (`key,value` header, RFC 4180 quoting).

use serde::{Deserialize, Serialize};

/// `?format=` of `GET /api/v1/jobs/{id}/result`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultFormat {
    /// `key<TAB>value` lines, exactly as `job run` prints them.
    #[default]
    Text,
    /// One JSON object per line.
    Ndjson,
    /// Comma-separated with a header line.
    Csv,
}

impl ResultFormat {
    /// The response `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            ResultFormat::Text => "text/plain; charset=utf-8",
            ResultFormat::Ndjson => "application/x-ndjson",
            ResultFormat::Csv => "text/csv; charset=utf-8",
        }
    }
}

impl ResultFormat {
    /// What comes before the first line (CSV's header).
    pub fn header(self) -> &'static str {
        match self {
            ResultFormat::Csv => "key,value\r\n",
            ResultFormat::Text | ResultFormat::Ndjson => "",
        }
    }
}

/// Appends one stored line (without its line break) rendered in `format`. A line without a tab
/// becomes a key with an empty value.
pub fn render_line(out: &mut String, line: &str, format: ResultFormat) {
    let (key, value) = line.split_once('\t').unwrap_or((line, ""));
    match format {
        ResultFormat::Text => {
            out.push_str(line);
            out.push('\n');
        }
        ResultFormat::Ndjson => {
            let obj = serde_json::json!({ "key": key, "value": value });
            out.push_str(&obj.to_string());
            out.push('\n');
        }
        ResultFormat::Csv => {
            push_csv_field(out, key);
            out.push(',');
            push_csv_field(out, value);
            out.push_str("\r\n");
        }
    }
}

/// First characters that make a spreadsheet read a cell as a formula (or, for tab and CR, hide one
/// after them).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Appends `field` as one CSV cell: a cell a spreadsheet would evaluate (starting with one of
/// [`FORMULA_STARTS`]) gets a leading `'` so it stays text (CSV/formula injection), then the cell is
/// quoted when it holds a comma, quote or line break.
fn push_csv_field(out: &mut String, field: &str) {
    let neutralised;
    let field = if field.starts_with(FORMULA_STARTS) {
        neutralised = format!("'{field}");
        neutralised.as_str()
    } else {
        field
    };
    if field.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole stored output rendered line by line, as the result stream does.
    fn render(output: &[u8], format: ResultFormat) -> Vec<u8> {
        if format == ResultFormat::Text {
            return output.to_vec();
        }
        let mut out = format.header().to_string();
        for line in String::from_utf8_lossy(output).lines() {
            render_line(&mut out, line, format);
        }
        out.into_bytes()
    }

    const OUTPUT: &[u8] = b"Linux,nightly\t12\nWindows_NT\t{\"a\":\"b\"}\n";

    #[test]
    fn text_is_unchanged() {
        assert_eq!(render(OUTPUT, ResultFormat::Text), OUTPUT);
    }

    #[test]
    fn ndjson_has_one_object_per_line() {
        let out = String::from_utf8(render(OUTPUT, ResultFormat::Ndjson)).unwrap();
        let rows: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            rows[0],
            serde_json::json!({"key": "Linux,nightly", "value": "12"})
        );
        assert_eq!(rows[1]["value"], "{\"a\":\"b\"}");
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let out = String::from_utf8(render(OUTPUT, ResultFormat::Csv)).unwrap();
        assert_eq!(
            out,
            "key,value\r\n\"Linux,nightly\",12\r\nWindows_NT,\"{\"\"a\"\":\"\"b\"\"}\"\r\n"
        );
    }

    #[test]
    fn csv_cells_a_spreadsheet_would_evaluate_are_kept_text() {
        let output =
            b"=HYPERLINK(\"http://x\")\t+1\n-2+3\t@SUM(A1)\nx\t\tcmd\ny\t\rz\nsafe=1\t4-2\n";
        let out = String::from_utf8(render(output, ResultFormat::Csv)).unwrap();
        let expected = "key,value\r\n\
                        \"'=HYPERLINK(\"\"http://x\"\")\",'+1\r\n\
                        '-2+3,'@SUM(A1)\r\n\
                        x,'\tcmd\r\n\
                        y,\"'\rz\"\r\n\
                        safe=1,4-2\r\n";
        assert_eq!(out, expected);
    }
}
