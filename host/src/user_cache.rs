//! The user's own cache directory: `$XDG_CACHE_HOME/telemetry-server`, else
//! `~/.cache/telemetry-server` (compile caches of `job run` over S3, guest toolchains of
//! `job build`).

use std::path::PathBuf;

/// The directory, or `None` when neither `XDG_CACHE_HOME` nor `HOME` is set.
pub fn dir() -> Option<PathBuf> {
    let env = |k| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("XDG_CACHE_HOME")
        .or_else(|| env("HOME").map(|h| h.join(".cache")))
        .map(|base| base.join("telemetry-server"))
}
