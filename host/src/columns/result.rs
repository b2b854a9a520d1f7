//! A job's result (`key<TAB>value` lines, tab, newline, carriage return and backslash escaped)
//! as a Parquet file with a `key` and a `value` column; `value` is typed like an export column
//! ([`super::typing`]) from the values that are JSON numbers or `true`/`false`, else strings.

use std::io::Write;
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::ArrayRef;
use arrow_schema::{DataType, Field as ArrowField, Schema};

use super::typing::{self, ColumnType};
use crate::jobs::extract::Field;

/// Writes `output` (a job's result) to `out` as Parquet.
pub fn result_to_parquet(
    output: &[u8],
    out: impl Write + Send,
) -> Result<(), parquet::errors::ParquetError> {
    let text = String::from_utf8_lossy(output);
    let mut keys = StringBuilder::new();
    let mut values = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let (key, value) = line.split_once('\t').unwrap_or((line, ""));
        keys.append_value(unescape(key));
        let value = unescape(value);
        values.push(match value.as_str() {
            "true" => Field::Boolean(true),
            "false" => Field::Boolean(false),
            v if serde_json::from_str::<serde_json::Number>(v).is_ok() => Field::Number(value),
            _ => Field::Text(value),
        });
    }
    let kind = match typing::infer(&values) {
        // Mixed values stay the strings the job wrote, not JSON text.
        ColumnType::Json => ColumnType::String,
        kind => kind,
    };
    let values: Vec<Field> = match kind {
        ColumnType::String => values
            .into_iter()
            .map(|v| match v {
                Field::Boolean(b) => Field::Text(b.to_string()),
                Field::Number(n) => Field::Text(n),
                other => other,
            })
            .collect(),
        _ => values,
    };
    let (array, _) = typing::build(kind, &values);
    let schema = Arc::new(Schema::new(vec![
        ArrowField::new("key", DataType::Utf8, false),
        ArrowField::new("value", kind.data_type(), true),
    ]));
    let keys: ArrayRef = Arc::new(keys.finish());
    super::export::write_parquet(schema, vec![keys, array], out)
}

/// Undoes the executor's escaping of `\t`, `\n`, `\r` and `\\`.
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Int64Array, StringArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn read(output: &str) -> arrow_array::RecordBatch {
        let mut bytes = Vec::new();
        result_to_parquet(output.as_bytes(), &mut bytes).unwrap();
        let mut reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
            .unwrap()
            .build()
            .unwrap();
        reader.next().unwrap().unwrap()
    }

    #[test]
    fn numeric_results_become_integers_and_keys_are_unescaped() {
        let batch = read("Linux\t3\nWindows\\tNT\t12\n");
        let keys = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let values = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!((keys.value(1), values.value(1)), ("Windows\tNT", 12));
    }

    #[test]
    fn mixed_results_stay_strings() {
        let batch = read("a\t1\nb\tx\n");
        let values = batch
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(
            (values.value(0), values.value(1), values.len()),
            ("1", "x", 2)
        );
    }
}
