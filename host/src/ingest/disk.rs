//! File-system facts the writer needs: free space and "is this error a full disk?".

use std::io;

/// Free bytes available to unprivileged users on the file system holding `dir`.
pub fn free_bytes(dir: &cap_std::fs::Dir) -> io::Result<u64> {
    let stat = rustix::fs::fstatvfs(dir)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// True for the errors that mean "no space left": `ENOSPC` and `EDQUOT` (quota exceeded).
pub fn is_disk_full(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || err.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error())
        || err.raw_os_error() == Some(rustix::io::Errno::DQUOT.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_full_disk_errors() {
        assert!(is_disk_full(&io::Error::from_raw_os_error(28)));
        assert!(is_disk_full(&io::Error::from_raw_os_error(122)));
        assert!(!is_disk_full(&io::Error::from_raw_os_error(5)));
    }

    #[test]
    fn reports_free_space() {
        let tmp = tempfile::tempdir().unwrap();
        let dir =
            cap_std::fs::Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
        assert!(free_bytes(&dir).unwrap() > 0);
    }
}
