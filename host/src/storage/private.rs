//! Private directories: [`ensure_private_dir`] checks that a directory the server keeps secrets or
//! executable artifacts in (the compile cache) is owned by the server's user, and takes group and
//! other permissions away when it is not yet `0700`; [`write_private`] writes a `0600` file.

use cap_std::fs::Dir;
use rustix::fs::{AtFlags, Mode};

use super::StorageError;

/// Refuses a directory another user owns (whoever owns it can swap its files); makes one the
/// server's user owns `0700` when it was more open. `shown` names it in errors.
pub fn ensure_private_dir(dir: &Dir, shown: &str) -> Result<(), StorageError> {
    let stat = rustix::fs::fstat(dir).map_err(|e| StorageError::io(shown, e.into()))?;
    let me = rustix::process::geteuid().as_raw();
    if stat.st_uid != me {
        return Err(StorageError::NotPrivate {
            path: shown.to_string(),
            reason: format!("owned by uid {}, not by this user (uid {me})", stat.st_uid),
        });
    }
    if stat.st_mode & 0o077 != 0 {
        // `chmodat(dir, ".")`: cap-std may hold the directory as an `O_PATH` descriptor, which
        // `fchmod` refuses.
        rustix::fs::chmodat(dir, ".", Mode::from_raw_mode(0o700), AtFlags::empty())
            .map_err(|e| StorageError::io(shown, e.into()))?;
        tracing::info!(
            dir = shown,
            was = format!("{:o}", stat.st_mode & 0o777),
            "made a private directory 0700"
        );
    }
    Ok(())
}

/// Writes a new file `name` in `dir`, `0600`, synced (it must not exist yet).
pub fn write_private(dir: &Dir, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use cap_std::fs::{OpenOptions, OpenOptionsExt};
    use std::io::Write;
    let mut options = OpenOptions::new();
    options.write(true).create_new(true).mode(0o600);
    let mut file = dir.open_with(name, &options)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn an_open_directory_of_ours_becomes_0700() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
        ensure_private_dir(&dir, "t").unwrap();
        let mode = std::fs::metadata(tmp.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
