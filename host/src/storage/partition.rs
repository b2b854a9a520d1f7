//! The partition layout (docs/formats/storage.md): where a record with given dimensions is stored,
//! and the reverse mapping from a stored path back to its dimensions.
//!
//! `<d0>/<d1>/…/<d(n-3)>/<d(n-2)>.<d(n-1)>.v<N>.log.<uuid32>.<ext>`, e.g.
//! `saved_session/Firefox/nightly/22.0a1/20130226031002.20131011.v2.log.e28a4032eb744f089a1828ac7399e5d8.zst`
//! with the production schema (reason, appName, appUpdateChannel, appVersion, appBuildID,
//! submission_date). Every value goes through [`stored_value`], so each is exactly one path
//! component and the file name splits back into its two dimensions.

use super::schema::stored_value;

/// Suffix of a partition file still being written; readers and listings ignore it.
pub const PARTIAL_SUFFIX: &str = ".partial";

/// Where one partition's files go.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionName {
    /// Directory components under the storage directory.
    pub dirs: Vec<String>,
    /// File-name stem, `<buildid>.<date>.v<N>.log`; a file adds `.<uuid32>.<ext>`.
    pub stem: String,
    /// The stored dimension values (sanitised), as [`parse_partition_path`] returns them.
    pub dims: Vec<String>,
}

impl PartitionName {
    /// The partition for schema-applied dimension values and a payload version. With one
    /// dimension the stem is `<d0>.v<N>.log`; with none it is `v<N>.log`.
    pub fn new(dims: &[String], version: u32) -> PartitionName {
        let levels = dims.len();
        let stored: Vec<String> = dims
            .iter()
            .enumerate()
            .map(|(i, v)| stored_value(v, i, levels))
            .collect();
        let split = levels.saturating_sub(2);
        let mut stem: Vec<&str> = stored[split..].iter().map(String::as_str).collect();
        let suffix = format!("v{version}.log");
        stem.push(&suffix);
        PartitionName {
            dirs: stored[..split].to_vec(),
            stem: stem.join("."),
            dims: stored,
        }
    }

    /// The directory, `/`-separated and relative to the storage directory (empty at the top).
    pub fn dir(&self) -> String {
        self.dirs.join("/")
    }

    /// A file of this partition: `<dir>/<stem>.<uuid32>.<ext>`.
    pub fn file_path(&self, uuid32: &str, extension: &str) -> String {
        let name = format!("{}.{uuid32}.{extension}", self.stem);
        if self.dirs.is_empty() {
            name
        } else {
            format!("{}/{name}", self.dir())
        }
    }
}

/// Dimension values of a stored file, for a layout of `levels` dimensions: the directory
/// components, then the first dot-separated parts of the file name (as the seed's
/// `get_dimensions`; older `<buildid>.<date>.log.<uuid>.lzma` names parse the same).
/// `None` when the path has the wrong depth or too few name parts.
pub fn parse_partition_path(path: &str, levels: usize) -> Option<Vec<String>> {
    let mut parts: Vec<&str> = path.split('/').collect();
    let name = parts.pop()?;
    let in_name = levels.min(2);
    if parts.len() != levels - in_name {
        return None;
    }
    let mut dims: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
    let mut name_parts = name.split('.');
    for _ in 0..in_name {
        match name_parts.next() {
            Some(part) if !part.is_empty() => dims.push(part.to_string()),
            _ => return None,
        }
    }
    // Something must follow the dimensions (at least `log`), or this is not a partition file.
    name_parts.next()?;
    Some(dims)
}

/// The submission date (`YYYYMMDD`, UTC) of a record received at `timestamp_ms`. The seed's
/// Python converter used the converting host's local time zone; this uses UTC, as its C++ worker.
pub fn submission_date(timestamp_ms: u64) -> String {
    let ms = i64::try_from(timestamp_ms).unwrap_or(i64::MAX);
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y%m%d").to_string(),
        None => "UNKNOWN".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn seed_naming_example() {
        // The seed's own test (docs/formats/storage.md).
        let name = PartitionName::new(
            &dims(&[
                "saved-session",
                "someAppName",
                "nightly",
                "someAppVersion",
                "someBuildID",
                "20130908",
            ]),
            99,
        );
        assert_eq!(
            name.dir(),
            "saved_session/someAppName/nightly/someAppVersion"
        );
        assert_eq!(name.stem, "someBuildID.20130908.v99.log");
    }

    #[test]
    fn names_parse_back_to_their_dimensions() {
        let d = dims(&[
            "saved-session",
            "Firefox",
            "nightly",
            "22.0a1",
            "2013.0226",
            "20131011",
        ]);
        let name = PartitionName::new(&d, 2);
        let path = name.file_path("e28a4032eb744f089a1828ac7399e5d8", "zst");
        assert_eq!(
            path,
            "saved_session/Firefox/nightly/22.0a1/2013_0226.20131011.v2.log.e28a4032eb744f089a1828ac7399e5d8.zst"
        );
        assert_eq!(parse_partition_path(&path, 6).unwrap(), name.dims);
        // The seed's published key (older name without .vN) parses the same way.
        let seed = "saved_session/Firefox/nightly/22.0a1/20130226031002.20131011.v2.log.e28a4032eb744f089a1828ac7399e5d8.lzma";
        assert_eq!(
            parse_partition_path(seed, 6).unwrap(),
            dims(&[
                "saved_session",
                "Firefox",
                "nightly",
                "22.0a1",
                "20130226031002",
                "20131011"
            ])
        );
        assert_eq!(parse_partition_path(seed, 5), None);
        assert_eq!(parse_partition_path("a/b.log", 6), None);
    }

    #[test]
    fn one_dimension_layouts() {
        let name = PartitionName::new(&dims(&["20140715"]), 2);
        assert_eq!(name.file_path("u", "xz"), "20140715.v2.log.u.xz");
        assert_eq!(
            parse_partition_path("20140715.v2.log.u.xz", 1).unwrap(),
            dims(&["20140715"])
        );
    }

    #[test]
    fn submission_dates_are_utc() {
        assert_eq!(submission_date(1432830425610), "20150528");
        assert_eq!(submission_date(1378857599999), "20130910"); // 23:59:59.999 UTC
        assert_eq!(submission_date(1378857600000), "20130911");
    }
}
