//! Raw log file names: `<base>.v2.<host>.<pid>_<shard>.<epoch_ms>` while being written, then `.finished`.
//!
//! This is the seed's pattern (`telemetry.log.v2.<host>.<pid>.<ms>`) with the writer shard added to the
//! pid field, so several writers in one process never share a name, and the seed's exporter pattern
//! `^telemetry.log.*[.]finished$` still matches.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Called with the file name of every log renamed `.finished` (the writers announce, live
/// conversion listens).
pub type OnFinished = Arc<dyn Fn(&str) + Send + Sync>;

/// Suffix of a complete raw log, ready for conversion and export.
pub const FINISHED_SUFFIX: &str = ".finished";

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// This machine's host name, reduced to `[A-Za-z0-9-]` so it cannot add dots or slashes to a name.
pub fn host_name() -> String {
    let uname = rustix::system::uname();
    let raw = uname.nodename().to_string_lossy();
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.is_empty() {
        "localhost".to_string()
    } else {
        clean
    }
}

/// Generates unique active-log names for one writer shard.
#[derive(Debug)]
pub struct LogNamer {
    prefix: String,
    last_ms: u64,
}

impl LogNamer {
    pub(crate) fn new(base: &str, shard: usize) -> LogNamer {
        let prefix = format!("{base}.v2.{}.{}_{shard}.", host_name(), std::process::id());
        LogNamer { prefix, last_ms: 0 }
    }

    /// The next name; its timestamp is strictly greater than the previous one's, so a shard never
    /// reuses a name (and never overwrites a `.finished` file when it renames).
    pub fn next_name(&mut self) -> String {
        self.last_ms = now_ms().max(self.last_ms + 1);
        format!("{}{}", self.prefix, self.last_ms)
    }
}

/// True for a log still being written (or left behind by a crash): `<base>.v2.….<digits>`.
pub fn is_active_log(base: &str, name: &str) -> bool {
    name.strip_prefix(base)
        .and_then(|rest| rest.strip_prefix(".v2."))
        .and_then(|rest| rest.rsplit_once('.'))
        .is_some_and(|(_, ms)| !ms.is_empty() && ms.bytes().all(|b| b.is_ascii_digit()))
}

/// The epoch milliseconds in a log's name (when its first record was written; the log is
/// opened on its first record), for an active or finished log.
pub fn created_ms(name: &str) -> Option<u64> {
    let active = name.strip_suffix(FINISHED_SUFFIX).unwrap_or(name);
    active.rsplit_once('.')?.1.parse().ok()
}

/// True for a complete log: `<base>.v2.….<digits>.finished`.
pub fn is_finished_log(base: &str, name: &str) -> bool {
    name.strip_suffix(FINISHED_SUFFIX)
        .is_some_and(|active| is_active_log(base, active))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_recognised() {
        let mut namer = LogNamer::new("telemetry.log", 3);
        let a = namer.next_name();
        let b = namer.next_name();
        assert_ne!(a, b);
        assert!(a.starts_with("telemetry.log.v2."), "{a}");
        assert!(a.contains(&format!(".{}_3.", std::process::id())), "{a}");
        assert!(is_active_log("telemetry.log", &a));
        assert!(!is_finished_log("telemetry.log", &a));
        let finished = format!("{a}{FINISHED_SUFFIX}");
        let ms = created_ms(&finished).expect("a timestamp");
        assert_eq!(Some(ms), created_ms(&a));
        assert!(ms.abs_diff(now_ms()) < 60_000, "{ms}");
        assert!(is_finished_log("telemetry.log", &finished));
        assert!(!is_active_log("telemetry.log", &finished));
    }

    #[test]
    fn seed_names_are_recognised_and_others_are_not() {
        assert!(is_finished_log(
            "telemetry.log",
            "telemetry.log.v2.osboxes.1965.1432830357331.finished"
        ));
        assert!(!is_active_log(
            "telemetry.log",
            "telemetry.log.v1.osboxes.1965.1432830357331"
        ));
        assert!(!is_active_log("telemetry.log", "other.v2.h.1.2"));
        assert!(!is_finished_log(
            "telemetry.log",
            "telemetry.log.v2.h.1.x.finished"
        ));
    }
}
