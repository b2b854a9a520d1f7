//! [`ParquetExport`]: one partition file → one Parquet file with the record `id`, the
//! partition's dimensions and the chosen JSON pointers as typed columns ([`super::typing`]).
//! Records are read through the storage [`PartitionSource`] and their fields extracted by the
//! jobs' [`Projection`], so an export sees exactly what a job declaring the same pointers sees.

use std::io::Write;
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field as ArrowField, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::typing::{self, ColumnType};
use crate::jobs::extract::{Field, Projection};
use crate::storage::{read_line, split_line, PartitionFile, PartitionSource, StorageError};

/// Most bytes of extracted values one partition file may hold in memory while it is exported
/// (a file's columns are typed from all of its values, so they are gathered first).
pub const MAX_FILE_VALUE_BYTES: usize = 512 << 20;
/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 64 * 1024;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A `--column` is not `NAME[:TYPE]=/json/pointer`, or its name is taken.
    #[error("column {spec:?}: {reason}")]
    BadColumn {
        /// The column as given.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// Reading the partition file failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The partition file's values are larger than [`MAX_FILE_VALUE_BYTES`].
    #[error("{path}: the chosen columns hold more than {MAX_FILE_VALUE_BYTES} bytes in this partition file; export fewer or smaller columns")]
    TooBig {
        /// The partition file.
        path: String,
    },
    /// Writing Parquet failed.
    #[error("{path}: writing Parquet: {source}")]
    Parquet {
        /// The partition file.
        path: String,
        /// The cause.
        #[source]
        source: parquet::errors::ParquetError,
    },
}

/// One exported column: `NAME[:TYPE]=/json/pointer`.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    /// Column name in the Parquet file.
    pub name: String,
    /// RFC 6901 pointer into each document.
    pub pointer: String,
    /// Its type (default [`ColumnType::Auto`]).
    pub kind: ColumnType,
}

impl std::str::FromStr for ColumnSpec {
    type Err = ExportError;
    fn from_str(spec: &str) -> Result<Self, ExportError> {
        let bad = |reason: &str| ExportError::BadColumn {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (head, pointer) = spec
            .split_once('=')
            .ok_or_else(|| bad("expected NAME=/json/pointer or NAME:TYPE=/json/pointer"))?;
        let (name, kind) = match head.split_once(':') {
            Some((name, kind)) => (name, kind.parse().map_err(|e: String| bad(&e))?),
            None => (head, ColumnType::Auto),
        };
        if name.is_empty() {
            return Err(bad("the name is empty"));
        }
        if !pointer.starts_with('/') {
            return Err(bad("the pointer must start with '/'"));
        }
        Ok(ColumnSpec {
            name: name.to_string(),
            pointer: pointer.to_string(),
            kind,
        })
    }
}

/// What exporting one partition file did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FileReport {
    /// Rows written.
    pub rows: u64,
    /// Stored JSON bytes read.
    pub json_bytes: u64,
    /// Lines that were not `id<TAB>json` or not valid JSON: skipped (their ids, or `path:line`).
    pub bad: Vec<String>,
    /// Values that did not fit a column type given by the user (written as null).
    pub misfits: u64,
}

/// Exports partition files as Parquet with fixed columns.
pub struct ParquetExport {
    columns: Vec<ColumnSpec>,
    dimensions: Vec<String>,
    projection: Projection,
}

impl ParquetExport {
    /// An export of `columns` beside `id` and the storage schema's `dimensions`.
    pub fn new(columns: Vec<ColumnSpec>, dimensions: Vec<String>) -> Result<Self, ExportError> {
        let mut names: Vec<&str> = vec!["id"];
        names.extend(dimensions.iter().map(String::as_str));
        for c in &columns {
            if names.contains(&c.name.as_str()) {
                return Err(ExportError::BadColumn {
                    spec: c.name.clone(),
                    reason: "the name is already a column (id, a dimension, or another --column)"
                        .into(),
                });
            }
            names.push(&c.name);
        }
        let pointers: Vec<String> = columns.iter().map(|c| c.pointer.clone()).collect();
        let projection = Projection::new(&pointers).map_err(|reason| ExportError::BadColumn {
            spec: pointers.join(" "),
            reason,
        })?;
        Ok(ParquetExport {
            columns,
            dimensions,
            projection,
        })
    }

    /// The Parquet file's path for a partition file: its path with the codec extension
    /// replaced by `.parquet`.
    pub fn output_path(file: &PartitionFile) -> String {
        let stem = file
            .path
            .strip_suffix(".zst")
            .or_else(|| file.path.strip_suffix(".xz"))
            .unwrap_or(&file.path);
        format!("{stem}.parquet")
    }

    /// Reads `file` from `source` and writes it to `out` as Parquet.
    pub fn export_file(
        &self,
        source: &dyn PartitionSource,
        file: &PartitionFile,
        out: impl Write + Send,
    ) -> Result<FileReport, ExportError> {
        let mut report = FileReport::default();
        let mut ids = StringBuilder::new();
        let mut values: Vec<Vec<Field>> = vec![Vec::new(); self.columns.len()];
        let mut held = 0usize;
        let mut reader = source.open(file)?;
        let mut line = Vec::with_capacity(64 << 10);
        let mut number = 0u64;
        loop {
            let n = read_line(&mut reader, &file.path, &mut line)?;
            if n == 0 {
                break;
            }
            number += 1;
            report.json_bytes += n as u64;
            let text = &line[..];
            if text.is_empty() {
                continue;
            }
            let Some((id, json)) = split_line(text) else {
                report.bad.push(format!("{}:{number}", file.path));
                continue;
            };
            let id = String::from_utf8_lossy(id);
            let Ok(fields) = self.projection.extract(json) else {
                report.bad.push(id.into_owned());
                continue;
            };
            held += id.len();
            for (column, field) in values.iter_mut().zip(fields) {
                held += match &field {
                    Field::Number(s) | Field::Text(s) | Field::Json(s) => s.len() + 8,
                    _ => 8,
                };
                column.push(field);
            }
            if held > MAX_FILE_VALUE_BYTES {
                return Err(ExportError::TooBig {
                    path: file.path.clone(),
                });
            }
            ids.append_value(&id);
            report.rows += 1;
        }
        let rows = report.rows as usize;
        let mut fields = vec![ArrowField::new("id", DataType::Utf8, false)];
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(ids.finish())];
        for (name, value) in self.dimensions.iter().zip(&file.dims) {
            fields.push(ArrowField::new(name, DataType::Utf8, false));
            arrays.push(Arc::new(arrow_array::StringArray::from(vec![
                value.as_str();
                rows
            ])));
        }
        for (spec, column) in self.columns.iter().zip(values) {
            let kind = match spec.kind {
                ColumnType::Auto => typing::infer(&column),
                kind => kind,
            };
            let (array, misfits) = typing::build(kind, &column);
            report.misfits += misfits;
            fields.push(ArrowField::new(&spec.name, kind.data_type(), true));
            arrays.push(array);
        }
        write_parquet(Arc::new(Schema::new(fields)), arrays, out).map_err(|source| {
            ExportError::Parquet {
                path: file.path.clone(),
                source,
            }
        })?;
        Ok(report)
    }
}

/// Writes one batch of `arrays` as a zstd-compressed Parquet file.
pub(super) fn write_parquet(
    schema: Arc<Schema>,
    arrays: Vec<ArrayRef>,
    out: impl Write + Send,
) -> Result<(), parquet::errors::ParquetError> {
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let mut writer = ArrowWriter::try_new(out, schema, Some(props))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_specs_parse_with_and_without_a_type() {
        let c: ColumnSpec = "os=/environment/system/os/name".parse().unwrap();
        assert_eq!((c.name.as_str(), c.kind), ("os", ColumnType::Auto));
        let c: ColumnSpec = "mem:int=/a:b/c".parse().unwrap();
        assert_eq!((c.pointer.as_str(), c.kind), ("/a:b/c", ColumnType::Int));
        assert!("x=nopointer".parse::<ColumnSpec>().is_err());
        assert!("x:decimal=/a".parse::<ColumnSpec>().is_err());
        assert!("/a".parse::<ColumnSpec>().is_err());
        let taken = ParquetExport::new(vec!["id=/a".parse().unwrap()], vec![]);
        assert!(taken.is_err(), "id is always a column");
    }
}
