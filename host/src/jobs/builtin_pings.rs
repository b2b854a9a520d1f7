//! `job check`'s input when it is given no data: a dozen generated Firefox pings (v4 and
//! classic, several OSes, channels and versions) embedded in the binary, converted in memory
//! with the embedded schema and histogram definitions, served as a [`PartitionSource`] of one
//! file per partition. A job can be tried on a fresh clone, with no data directory.

use crate::convert::Converter;
use crate::storage::{PartitionFile, PartitionSource, Schema, StorageError};
use std::collections::BTreeMap;
use std::io::{BufRead, Cursor};

/// `id<TAB>json` lines, zstd-compressed (made by the repository's ping generator).
const PINGS_ZST: &[u8] = include_bytes!("builtin_pings.tsv.zst");
/// The submission date the pings are stored under (they carry no receive time).
pub const SUBMISSION_DATE: &str = "20261115";

/// The converted built-in pings, grouped into partitions as storage would hold them.
pub struct BuiltinPings {
    files: Vec<(PartitionFile, Vec<u8>)>,
    records: usize,
}

impl BuiltinPings {
    /// Decompresses and converts the embedded pings. Every one converts (a failure is a bug in
    /// the embedded data, reported as a storage error naming the record).
    pub fn load() -> Result<BuiltinPings, StorageError> {
        let text =
            zstd::decode_all(PINGS_ZST).map_err(|e| StorageError::io("built-in pings", e))?;
        let converter = Converter::with_defaults();
        let mut partitions: BTreeMap<Vec<String>, Vec<u8>> = BTreeMap::new();
        let mut records = 0;
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let doc = converter.convert_line(line, SUBMISSION_DATE).map_err(|e| {
                StorageError::io("built-in pings", std::io::Error::other(e.to_string()))
            })?;
            let lines = partitions.entry(doc.dims).or_default();
            lines.extend_from_slice(doc.id.as_bytes());
            lines.push(b'\t');
            lines.extend_from_slice(doc.json.as_bytes());
            lines.push(b'\n');
            records += 1;
        }
        let files = partitions
            .into_iter()
            .map(|(dims, lines)| {
                let file = PartitionFile {
                    path: format!("builtin/{}.txt", dims.join("/")),
                    dims,
                    size: lines.len() as u64,
                };
                (file, lines)
            })
            .collect();
        Ok(BuiltinPings { files, records })
    }

    /// The same partitions with every file's records `times` over (for timing: the fixed cost of
    /// a run, instances and dataflow, spreads over more records).
    pub fn repeated(&self, times: usize) -> BuiltinPings {
        let files = self
            .files
            .iter()
            .map(|(file, lines)| {
                let lines = lines.repeat(times);
                let file = PartitionFile {
                    size: lines.len() as u64,
                    ..file.clone()
                };
                (file, lines)
            })
            .collect();
        BuiltinPings {
            files,
            records: self.records * times,
        }
    }

    /// Number of pings.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Number of partitions they fall into.
    pub fn partitions(&self) -> usize {
        self.files.len()
    }
}

impl PartitionSource for BuiltinPings {
    fn list(&self, filter: &Schema) -> Result<Vec<PartitionFile>, StorageError> {
        Ok(self
            .files
            .iter()
            .filter(|(file, _)| filter.matches(&file.dims))
            .map(|(file, _)| file.clone())
            .collect())
    }

    fn open(&self, file: &PartitionFile) -> Result<Box<dyn BufRead + Send>, StorageError> {
        let (_, lines) = self
            .files
            .iter()
            .find(|(f, _)| f.path == file.path)
            .ok_or_else(|| {
                StorageError::io(file.path.clone(), std::io::ErrorKind::NotFound.into())
            })?;
        Ok(Box::new(Cursor::new(lines.clone())))
    }
}
