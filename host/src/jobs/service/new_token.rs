//! A new job API token: 256 random bits from the operating system, and the `[[jobs.tokens]]`
//! entry (its SHA-256, as [`super::auth`] checks it) to paste into the server config
//! (`telemetry-server token new`).

use std::io::Read;

use base64::Engine;
use serde::Serialize;

use super::auth::{hash_token, Role, TokenConfig};

/// A random token: 32 bytes from `/dev/urandom`, URL-safe base64 (43 characters), prefixed
/// `tsk_` so it is recognisable in a leaked file.
pub fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(format!(
        "tsk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// The config entry for `token`: a `[[jobs.tokens]]` TOML block with its name, hash and role.
pub fn config_entry(token: &str, name: &str, role: Role) -> String {
    #[derive(Serialize)]
    struct Root {
        jobs: Jobs,
    }
    #[derive(Serialize)]
    struct Jobs {
        tokens: Vec<TokenConfig>,
    }
    let root = Root {
        jobs: Jobs {
            tokens: vec![TokenConfig {
                name: name.to_string(),
                sha256: hash_token(token),
                role,
            }],
        },
    };
    toml::to_string(&root).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::auth::Authenticator;
    use super::*;
    use crate::config::Config;

    #[test]
    fn the_entry_loads_as_config_and_authenticates_its_token() {
        let token = random_token().unwrap();
        assert!(token.starts_with("tsk_") && token.len() == 47, "{token}");
        assert_ne!(token, random_token().unwrap());
        let entry = config_entry(&token, "ci \"bot\"", Role::Admin);
        assert!(entry.contains("[[jobs.tokens]]"), "{entry}");
        let config = Config::from_toml(&entry).unwrap();
        config.validate().unwrap();
        let caller = Authenticator::new(&config.jobs.tokens)
            .unwrap()
            .authenticate(Some(format!("Bearer {token}").as_bytes()))
            .unwrap();
        assert_eq!(
            (caller.name.as_str(), caller.role),
            ("ci \"bot\"", Role::Admin)
        );
    }
}
