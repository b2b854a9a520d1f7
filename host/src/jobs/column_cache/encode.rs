//! The column cache's file format: one Arrow IPC file per partition file for the record ids
//! ([`Rows`]) and one per JSON pointer for that pointer's [`Field`]s, built while a job reads the
//! partition file ([`Pending`]) and read back as [`Cached`]. A field is two columns: a `tag`
//! (`u8`: missing, null, false, true, number, text, json) and a `value` (the number's text as
//! written, the unescaped string, or the JSON text; null for the other tags), so every field comes
//! back exactly as [`super::super::extract::Projection`] produced it. Each file's schema metadata
//! names the partition file and pointer it belongs to, and the reader checks them.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use arrow_array::builder::{StringBuilder, UInt32Builder, UInt8Builder};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, UInt32Array, UInt8Array};
use arrow_schema::{ArrowError, DataType, Field as ArrowField, Schema};

use super::super::extract::Field;

const TAG_MISSING: u8 = 0;
const TAG_NULL: u8 = 1;
const TAG_FALSE: u8 = 2;
const TAG_TRUE: u8 = 3;
const TAG_NUMBER: u8 = 4;
const TAG_TEXT: u8 = 5;
const TAG_JSON: u8 = 6;

/// Schema metadata key: the partition file's identity (path, size, version).
pub(super) const META_PARTITION: &str = "telemetry.partition";
/// Schema metadata key: the JSON pointer of a field file (absent in the rows file).
pub(super) const META_POINTER: &str = "telemetry.pointer";
/// Rows file metadata: blank lines of the partition file, and their bytes.
const META_BLANK_LINES: &str = "telemetry.blank_lines";
const META_BLANK_BYTES: &str = "telemetry.blank_bytes";

/// The columns of one partition file being built while a job reads it as JSON.
pub struct Pending {
    ids: StringBuilder,
    /// Bytes the reader consumed for the line (newline included), as the cost report counts them.
    raw_len: UInt32Builder,
    /// Bytes of the line without its line end, as `map-batch` batching counts them.
    line_len: UInt32Builder,
    fields: Vec<(UInt8Builder, StringBuilder)>,
    blank_lines: u64,
    blank_bytes: u64,
    /// Bytes held by the builders (approximately).
    held: usize,
    /// Most bytes held before the file is given up on.
    cap: usize,
    /// Not cacheable any more (a bad record was skipped, or `cap` was passed).
    given_up: bool,
}

impl Pending {
    /// Columns for `pointers` fields per record, holding at most `cap` bytes.
    pub(super) fn new(pointers: usize, cap: usize) -> Pending {
        Pending {
            ids: StringBuilder::new(),
            raw_len: UInt32Builder::new(),
            line_len: UInt32Builder::new(),
            fields: (0..pointers)
                .map(|_| (UInt8Builder::new(), StringBuilder::new()))
                .collect(),
            blank_lines: 0,
            blank_bytes: 0,
            held: 0,
            cap,
            given_up: false,
        }
    }

    /// A line with nothing on it (`raw_len` bytes read).
    pub fn blank(&mut self, raw_len: usize) {
        self.blank_lines += 1;
        self.blank_bytes += raw_len as u64;
    }

    /// One record as the guest saw it.
    pub fn record(&mut self, id: &str, raw_len: usize, line_len: usize, fields: &[Field]) {
        if self.given_up {
            return;
        }
        // An id that was not UTF-8 reads back otherwise: its record is not cacheable.
        let (Ok(raw), Ok(line), false) = (
            u32::try_from(raw_len),
            u32::try_from(line_len),
            id.contains(char::REPLACEMENT_CHARACTER),
        ) else {
            return self.give_up();
        };
        self.ids.append_value(id);
        self.raw_len.append_value(raw);
        self.line_len.append_value(line);
        self.held += id.len() + 8;
        for ((tags, values), field) in self.fields.iter_mut().zip(fields) {
            let (tag, value) = match field {
                Field::Missing => (TAG_MISSING, None),
                Field::Null => (TAG_NULL, None),
                Field::Boolean(false) => (TAG_FALSE, None),
                Field::Boolean(true) => (TAG_TRUE, None),
                Field::Number(n) => (TAG_NUMBER, Some(n.as_str())),
                Field::Text(t) => (TAG_TEXT, Some(t.as_str())),
                Field::Json(j) => (TAG_JSON, Some(j.as_str())),
            };
            tags.append_value(tag);
            values.append_option(value);
            self.held += 1 + value.map_or(0, str::len);
        }
        if self.held > self.cap {
            self.give_up();
        }
    }

    /// Stops building: this partition file will not be cached by this run.
    pub fn give_up(&mut self) {
        self.given_up = true;
        self.ids = StringBuilder::new();
        self.fields.clear();
    }

    /// Whether the file can still be cached.
    pub fn usable(&self) -> bool {
        !self.given_up
    }

    /// The rows file, then one file per pointer, as Arrow IPC bytes.
    pub(super) fn finish(
        mut self,
        partition: &str,
        pointers: &[String],
    ) -> Result<(Vec<u8>, Vec<Vec<u8>>), ArrowError> {
        let mut meta = HashMap::from([
            (META_PARTITION.to_string(), partition.to_string()),
            (META_BLANK_LINES.to_string(), self.blank_lines.to_string()),
            (META_BLANK_BYTES.to_string(), self.blank_bytes.to_string()),
        ]);
        let rows = ipc_file(
            meta.clone(),
            vec![
                (
                    "id",
                    DataType::Utf8,
                    false,
                    Arc::new(self.ids.finish()) as ArrayRef,
                ),
                (
                    "raw_len",
                    DataType::UInt32,
                    false,
                    Arc::new(self.raw_len.finish()),
                ),
                (
                    "line_len",
                    DataType::UInt32,
                    false,
                    Arc::new(self.line_len.finish()),
                ),
            ],
        )?;
        meta.remove(META_BLANK_LINES);
        meta.remove(META_BLANK_BYTES);
        let mut files = Vec::with_capacity(pointers.len());
        for (pointer, (mut tags, mut values)) in pointers.iter().zip(self.fields) {
            let mut meta = meta.clone();
            meta.insert(META_POINTER.to_string(), pointer.clone());
            files.push(ipc_file(
                meta,
                vec![
                    (
                        "tag",
                        DataType::UInt8,
                        false,
                        Arc::new(tags.finish()) as ArrayRef,
                    ),
                    ("value", DataType::Utf8, true, Arc::new(values.finish())),
                ],
            )?);
        }
        Ok((rows, files))
    }
}

fn ipc_file(
    meta: HashMap<String, String>,
    columns: Vec<(&str, DataType, bool, ArrayRef)>,
) -> Result<Vec<u8>, ArrowError> {
    let fields: Vec<ArrowField> = columns
        .iter()
        .map(|(name, kind, nullable, _)| ArrowField::new(*name, kind.clone(), *nullable))
        .collect();
    let schema = Arc::new(Schema::new_with_metadata(fields, meta));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, _, _, a)| a).collect(),
    )?;
    let mut out = Vec::new();
    let mut writer = arrow_ipc::writer::FileWriter::try_new(&mut out, &schema)?;
    writer.write(&batch)?;
    writer.finish()?;
    drop(writer);
    Ok(out)
}

/// The record ids of a cached partition file.
pub(super) struct Rows {
    ids: StringArray,
    raw_len: UInt32Array,
    line_len: UInt32Array,
    pub(super) blank_lines: u64,
    pub(super) blank_bytes: u64,
}

/// Why a cache file cannot be used (it is then treated as missing and deleted).
#[derive(Debug, thiserror::Error)]
pub enum BadCacheFile {
    /// Not a readable Arrow IPC file.
    #[error("not an Arrow IPC file: {0}")]
    Arrow(#[from] ArrowError),
    /// Written for another partition file, pointer or layout.
    #[error("{0}")]
    Mismatch(String),
}

/// Reads one cache file: its only batch (an empty file has none) and its schema metadata.
fn read_ipc(
    bytes: Vec<u8>,
) -> Result<(Option<RecordBatch>, HashMap<String, String>), BadCacheFile> {
    let mut reader = arrow_ipc::reader::FileReader::try_new(Cursor::new(bytes), None)?;
    let meta = reader.schema().metadata().clone();
    let batch = reader.next().transpose()?;
    if reader.next().is_some() {
        return Err(BadCacheFile::Mismatch("more than one batch".into()));
    }
    Ok((batch, meta.into()))
}

fn check_meta(meta: &HashMap<String, String>, key: &str, want: &str) -> Result<(), BadCacheFile> {
    match meta.get(key) {
        Some(got) if got == want => Ok(()),
        got => Err(BadCacheFile::Mismatch(format!(
            "{key} is {got:?}, expected {want:?}"
        ))),
    }
}

fn column<T: Array + Clone + 'static>(
    batch: &Option<RecordBatch>,
    index: usize,
    empty: impl FnOnce() -> T,
) -> Result<T, BadCacheFile> {
    let Some(batch) = batch else {
        return Ok(empty());
    };
    batch
        .columns()
        .get(index)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .cloned()
        .ok_or_else(|| BadCacheFile::Mismatch(format!("column {index} has the wrong type")))
}

impl Rows {
    /// Records.
    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Reads a rows file written for `partition`.
    pub(super) fn read(bytes: Vec<u8>, partition: &str) -> Result<Rows, BadCacheFile> {
        let (batch, meta) = read_ipc(bytes)?;
        check_meta(&meta, META_PARTITION, partition)?;
        let number = |key: &str| -> Result<u64, BadCacheFile> {
            meta.get(key)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| BadCacheFile::Mismatch(format!("no {key}")))
        };
        Ok(Rows {
            ids: column(&batch, 0, || StringArray::from(Vec::<&str>::new()))?,
            raw_len: column(&batch, 1, || UInt32Array::from(Vec::<u32>::new()))?,
            line_len: column(&batch, 2, || UInt32Array::from(Vec::<u32>::new()))?,
            blank_lines: number(META_BLANK_LINES)?,
            blank_bytes: number(META_BLANK_BYTES)?,
        })
    }
}

/// One pointer's fields for every record of a cached partition file.
pub(super) struct FieldColumn {
    tags: UInt8Array,
    values: StringArray,
}

impl FieldColumn {
    /// Reads a field file written for `partition` and `pointer`, with `rows` records.
    pub(super) fn read(
        bytes: Vec<u8>,
        partition: &str,
        pointer: &str,
        rows: usize,
    ) -> Result<FieldColumn, BadCacheFile> {
        let (batch, meta) = read_ipc(bytes)?;
        check_meta(&meta, META_PARTITION, partition)?;
        check_meta(&meta, META_POINTER, pointer)?;
        let column = FieldColumn {
            tags: column(&batch, 0, || UInt8Array::from(Vec::<u8>::new()))?,
            values: column(&batch, 1, || StringArray::from(Vec::<&str>::new()))?,
        };
        if column.tags.len() != rows || column.values.len() != rows {
            return Err(BadCacheFile::Mismatch(format!(
                "{} fields for {rows} records",
                column.tags.len()
            )));
        }
        Ok(column)
    }

    fn field(&self, i: usize) -> Field {
        let value = || self.values.value(i).to_string();
        match self.tags.value(i) {
            TAG_NULL => Field::Null,
            TAG_FALSE => Field::Boolean(false),
            TAG_TRUE => Field::Boolean(true),
            TAG_NUMBER => Field::Number(value()),
            TAG_TEXT => Field::Text(value()),
            TAG_JSON => Field::Json(value()),
            _ => Field::Missing,
        }
    }
}

/// A partition file's records as the cache holds them: what a job reads instead of the JSON.
pub struct Cached {
    pub(super) rows: Rows,
    pub(super) fields: Vec<FieldColumn>,
    /// Bytes of the cache files read.
    pub file_bytes: u64,
}

impl Cached {
    /// Records (blank lines not included).
    pub fn len(&self) -> usize {
        self.rows.ids.len()
    }

    /// Whether the partition file had no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Blank lines of the partition file and the bytes they took.
    pub fn blank(&self) -> (u64, u64) {
        (self.rows.blank_lines, self.rows.blank_bytes)
    }

    /// Record `i`'s document id.
    pub fn id(&self, i: usize) -> &str {
        self.rows.ids.value(i)
    }

    /// Bytes the JSON reader consumed for record `i` (line end included), and its line's length.
    pub fn lens(&self, i: usize) -> (usize, usize) {
        (
            self.rows.raw_len.value(i) as usize,
            self.rows.line_len.value(i) as usize,
        )
    }

    /// Record `i`'s fields, in pointer order.
    pub fn fields(&self, i: usize) -> Vec<Field> {
        self.fields.iter().map(|c| c.field(i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_kind_comes_back_as_it_went_in() {
        let pointers = vec!["/a".to_string(), "/b".to_string()];
        let mut p = Pending::new(2, 1 << 20);
        let rows = [
            vec![Field::Missing, Field::Null],
            vec![Field::Boolean(true), Field::Boolean(false)],
            vec![Field::Number("1.5e3".into()), Field::Text("é\t\"x".into())],
            vec![Field::Json("[1, 2]".into()), Field::Text(String::new())],
        ];
        p.blank(1);
        for (i, fields) in rows.iter().enumerate() {
            p.record(&format!("id{i}"), 10 + i, 9 + i, fields);
        }
        let (ids, files) = p.finish("part", &pointers).unwrap();
        let rows_read = Rows::read(ids.clone(), "part").unwrap();
        let n = rows_read.ids.len();
        let fields = files
            .into_iter()
            .zip(&pointers)
            .map(|(f, ptr)| FieldColumn::read(f, "part", ptr, n).unwrap())
            .collect();
        let cached = Cached {
            rows: rows_read,
            fields,
            file_bytes: 0,
        };
        assert_eq!(cached.len(), 4);
        assert_eq!(cached.blank(), (1, 1));
        for (i, want) in rows.iter().enumerate() {
            assert_eq!(cached.id(i), format!("id{i}"));
            assert_eq!(cached.lens(i), (10 + i, 9 + i));
            assert_eq!(format!("{:?}", cached.fields(i)), format!("{want:?}"));
        }
        assert!(
            Rows::read(ids, "other").is_err(),
            "a file of another partition is refused"
        );
    }

    #[test]
    fn passing_the_cap_gives_up() {
        let mut p = Pending::new(1, 100);
        p.record("a", 10, 9, &[Field::Text("x".repeat(200))]);
        assert!(!p.usable());
    }
}
