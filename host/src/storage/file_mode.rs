//! Who may read what the server writes: the data directory holds raw logs with client IPs and
//! full pings, so the server runs with a restrictive umask (`[server] umask`, default `077`:
//! files `0600`, directories `0700`) and tightens the data directory itself when it was created
//! more open, which also closes everything already beneath it.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Permission bits taken away from every file and directory the process creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Umask(u32);

impl Umask {
    /// `077`: owner only.
    pub const PRIVATE: Umask = Umask(0o077);

    /// Parses octal text such as `"077"` or `"027"`.
    pub fn parse(text: &str) -> Result<Umask, String> {
        let bits = u32::from_str_radix(text, 8)
            .map_err(|_| format!("umask {text:?} is not an octal number such as \"077\""))?;
        if bits > 0o777 {
            return Err(format!("umask {text:?} is larger than 777"));
        }
        if bits & 0o700 != 0 {
            return Err(format!(
                "umask {text:?} takes permissions from the server's own user; it could not read its data"
            ));
        }
        Ok(Umask(bits))
    }

    /// The bits.
    pub fn bits(self) -> u32 {
        self.0
    }
}

impl Default for Umask {
    fn default() -> Self {
        Umask::PRIVATE
    }
}

impl fmt::Display for Umask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03o}", self.0)
    }
}

impl Serialize for Umask {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Umask {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Umask::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Sets the process umask and makes `data_dir` (when it exists) no more open than the umask
/// allows. Call once at start, before any thread creates files.
pub fn apply(umask: Umask, data_dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(umask.bits()));
    match std::fs::metadata(data_dir) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & umask.bits() != 0 {
                let tightened = mode & !umask.bits();
                std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(tightened))?;
                tracing::warn!(
                    dir = %data_dir.display(),
                    was = format!("{mode:03o}"),
                    now = format!("{tightened:03o}"),
                    "data directory was more open than the umask; tightened it"
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_octal_and_refuses_what_would_lock_the_server_out() {
        assert_eq!(Umask::parse("077").unwrap().bits(), 0o077);
        assert_eq!(Umask::parse("027").unwrap().to_string(), "027");
        assert!(Umask::parse("999").unwrap_err().contains("octal"));
        assert!(Umask::parse("1777").unwrap_err().contains("larger"));
        assert!(Umask::parse("277").unwrap_err().contains("own user"));
    }
}
