//! [`records`]: every stored record `(id, dims, json)` of the partition files that pass a
//! filter, read through any [`PartitionSource`] (pruned listing, then each file in path order).
//! A convenience for tools and tests; the job executor reads files itself, in parallel.

use std::io::BufRead;
use std::sync::Arc;

use super::{split_line, PartitionFile, PartitionSource, Schema, StorageError};

/// One stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Document id.
    pub id: String,
    /// Stored dimension values of its partition (shared by the file's records).
    pub dims: Arc<[String]>,
    /// The JSON document, one line.
    pub json: String,
}

/// Iterator over the records of the files a filter selects.
pub struct Records<'a> {
    source: &'a dyn PartitionSource,
    files: std::vec::IntoIter<PartitionFile>,
    current: Option<Open>,
    line: Vec<u8>,
}

struct Open {
    path: String,
    dims: Arc<[String]>,
    reader: Box<dyn BufRead + Send>,
    line_number: u64,
}

/// Lists the files of `source` that pass `filter` and reads their records in path order.
pub fn records<'a>(
    source: &'a dyn PartitionSource,
    filter: &Schema,
) -> Result<Records<'a>, StorageError> {
    let files = source.list(filter)?;
    Ok(Records {
        source,
        files: files.into_iter(),
        current: None,
        line: Vec::with_capacity(1 << 16),
    })
}

impl Iterator for Records<'_> {
    type Item = Result<Record, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let Some(open) = self.current.as_mut() else {
                let file = self.files.next()?;
                match self.source.open(&file) {
                    Ok(reader) => {
                        self.current = Some(Open {
                            path: file.path,
                            dims: file.dims.into(),
                            reader,
                            line_number: 0,
                        });
                        continue;
                    }
                    Err(e) => return Some(Err(e)),
                }
            };
            self.line.clear();
            match open.reader.read_until(b'\n', &mut self.line) {
                Ok(0) => self.current = None,
                Ok(_) => {
                    open.line_number += 1;
                    let line = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
                    let Some((id, json)) = split_line(line) else {
                        return Some(Err(StorageError::BadLine {
                            path: open.path.clone(),
                            line: open.line_number,
                        }));
                    };
                    return Some(Ok(Record {
                        id: String::from_utf8_lossy(id).into_owned(),
                        dims: open.dims.clone(),
                        json: String::from_utf8_lossy(json).into_owned(),
                    }));
                }
                Err(e) => {
                    let path = open.path.clone();
                    self.current = None; // a corrupt stream ends its file, not the listing
                    return Some(Err(StorageError::io(path, e)));
                }
            }
        }
    }
}
