//! [`DataDir`]: the server's data directory as a `cap_std::fs::Dir` capability. Every file the
//! server reads or writes under it goes through this handle or a subdirectory handle from
//! [`DataDir::sub`], so no dimension value, URL or job name can reach outside it (`..` and
//! absolute paths are refused by cap-std).

use std::path::{Component, Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;

use super::StorageError;

/// Raw submission logs written by ingest.
pub const RAW: &str = "raw";
/// Where converted raw logs are kept (under `raw/`).
pub const CONVERTED_DIR: &str = "converted";
/// Where raw logs that failed to convert as a whole are put aside (under `raw/`).
pub const FAILED_DIR: &str = "failed";
/// Partition files.
pub const STORAGE: &str = "storage";
/// Rejected records with their reasons.
pub const ERRORS: &str = "errors";
/// The job service's state.
pub const JOBS: &str = "jobs";
/// Compiled job components.
pub const CACHE: &str = "cache";
/// Histograms.json files fetched from the histogram server (`<repo>/<rev>/Histograms.json`).
pub const HISTOGRAMS: &str = "histograms";

/// The opened data directory.
#[derive(Debug)]
pub struct DataDir {
    dir: Dir,
    path: PathBuf,
}

impl DataDir {
    /// Opens the data directory, creating it (and its parents) if needed. This is the one
    /// place the data directory is opened by ambient path.
    pub fn open(path: &Path) -> Result<DataDir, StorageError> {
        let shown = || path.display().to_string();
        std::fs::create_dir_all(path).map_err(|e| StorageError::io(shown(), e))?;
        let dir = Dir::open_ambient_dir(path, ambient_authority())
            .map_err(|e| StorageError::io(shown(), e))?;
        Ok(DataDir {
            dir,
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing data directory to read from it: the path must be a directory holding
    /// [`STORAGE`]. Nothing is created, so a mistyped path is an error rather than a new, empty
    /// data directory.
    pub fn open_existing(path: &Path) -> Result<DataDir, StorageError> {
        let not = |reason: &str| StorageError::NotDataDir {
            path: path.display().to_string(),
            reason: reason.to_string(),
        };
        if !path.is_dir() {
            return Err(not("no such directory"));
        }
        if !path.join(STORAGE).is_dir() {
            return Err(not(
                "it has no storage/ subdirectory (`telemetry-server convert --data-dir DIR …` makes one)",
            ));
        }
        let dir = Dir::open_ambient_dir(path, ambient_authority())
            .map_err(|e| StorageError::io(path.display().to_string(), e))?;
        Ok(DataDir {
            dir,
            path: path.to_path_buf(),
        })
    }

    /// The directory handle.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// The path it was opened at (for messages only; never reopen through it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates (if needed) and opens the subdirectory `name`, which must be one plain path
    /// component such as [`STORAGE`] or [`RAW`].
    pub fn sub(&self, name: &str) -> Result<Dir, StorageError> {
        let mut components = Path::new(name).components();
        let plain =
            matches!(components.next(), Some(Component::Normal(_))) && components.next().is_none();
        if !plain || name.contains('/') || name.contains('\\') {
            return Err(StorageError::InvalidName {
                name: name.to_string(),
            });
        }
        self.dir
            .create_dir_all(name)
            .map_err(|e| StorageError::io(name, e))?;
        self.dir
            .open_dir(name)
            .map_err(|e| StorageError::io(name, e))
    }
}
