//! [`LocalSource`]: the partition files under a local storage directory as a
//! [`PartitionSource`]. Listing walks the layout one level at a time and descends only into
//! directories whose name passes the filter at that level (partition pruning), then checks
//! the two dimensions in each file name. Files still being written (`.partial`) and files of
//! unknown type are ignored.

use cap_std::fs::Dir;

use super::codec::{decompress, Container};
use super::partition::parse_partition_path;
use super::{PartitionFile, PartitionSource, Schema, StorageError};

/// Partition files in a local storage directory.
pub struct LocalSource {
    dir: Dir,
}

impl LocalSource {
    /// A source over `storage_dir` (usually `DataDir::sub("storage")`).
    pub fn new(storage_dir: Dir) -> LocalSource {
        LocalSource { dir: storage_dir }
    }

    /// Appends the matching files under `dir` (at `prefix`, depth `level`) to `out`.
    fn walk(
        &self,
        dir: &Dir,
        prefix: &str,
        level: usize,
        filter: &Schema,
        out: &mut Vec<PartitionFile>,
    ) -> Result<(), StorageError> {
        let levels = filter.len();
        let dir_levels = levels.saturating_sub(2);
        let shown = |name: &str| {
            if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}/{name}")
            }
        };
        let entries = dir.entries().map_err(|e| StorageError::io(shown(""), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io(shown(""), e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let path = shown(&name);
            let kind = entry
                .file_type()
                .map_err(|e| StorageError::io(path.clone(), e))?;
            if level < dir_levels {
                if kind.is_dir() && filter.matches_prefix(level, &name) {
                    let sub = entry
                        .open_dir()
                        .map_err(|e| StorageError::io(path.clone(), e))?;
                    self.walk(&sub, &path, level + 1, filter, out)?;
                }
                continue;
            }
            if !kind.is_file() || Container::from_name(&name).is_none() {
                continue;
            }
            let Some(dims) = parse_partition_path(&path, levels) else {
                continue;
            };
            if filter.matches(&dims) {
                let size = entry
                    .metadata()
                    .map_err(|e| StorageError::io(path.clone(), e))?
                    .len();
                out.push(PartitionFile { path, dims, size });
            }
        }
        Ok(())
    }
}

impl PartitionSource for LocalSource {
    /// Files whose dimensions pass `filter`, sorted by path. The filter's number of dimensions
    /// gives the layout's depth.
    fn list(&self, filter: &Schema) -> Result<Vec<PartitionFile>, StorageError> {
        let mut out = Vec::new();
        self.walk(&self.dir, "", 0, filter, &mut out)?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn open(&self, file: &PartitionFile) -> Result<Box<dyn std::io::BufRead + Send>, StorageError> {
        let handle = self
            .dir
            .open(&file.path)
            .map_err(|e| StorageError::io(file.path.clone(), e))?;
        decompress(&file.path, handle)
    }

    /// The modification time, in nanoseconds since the epoch.
    fn version(&self, file: &PartitionFile) -> Result<String, StorageError> {
        let modified = self
            .dir
            .metadata(&file.path)
            .and_then(|m| m.modified())
            .map_err(|e| StorageError::io(file.path.clone(), e))?
            .into_std();
        let nanos = modified
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        Ok(format!("mtime:{nanos}"))
    }
}
