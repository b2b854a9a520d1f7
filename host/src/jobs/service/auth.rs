//! Bearer-token authentication for `/api/v1`: tokens are configured as SHA-256 hashes, a presented
//! token is hashed and compared against every configured hash in constant time, and each token has a
//! role. Ingest routes never pass through here.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Upload components, submit jobs, and see, fetch and cancel its own jobs.
    Submit,
    /// Everything `submit` may do, on every token's jobs; sees the cluster (`GET /api/v1/cluster`).
    Admin,
    /// Registers and heartbeats as a cluster worker (`telemetry-server worker`); nothing else.
    Worker,
}

impl Role {
    /// The role's name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Submit => "submit",
            Role::Admin => "admin",
            Role::Worker => "worker",
        }
    }
}

/// One `[[jobs.tokens]]` entry. `telemetry-server token new` makes a token and its entry; a hash
/// from `printf %s "$TOKEN" | sha256sum` may be pasted as printed (see [`TokenConfig::digest`]).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who the token belongs to; recorded as the owner of the jobs it submits.
    pub name: String,
    /// Lower-case hex SHA-256 of the token (the token itself is never stored).
    pub sha256: String,
    /// What the token may do.
    pub role: Role,
}

impl TokenConfig {
    /// The configured hash as bytes: 64 hex digits, surrounding spaces ignored, and so is the
    /// `  -` that `sha256sum` prints after the hash of its standard input. The one check of a
    /// token hash, shared by config validation (`serve --print-config`) and the server.
    pub fn digest(&self) -> Result<[u8; 32], BadTokenConfig> {
        let text = self.sha256.trim();
        let text = text
            .strip_suffix('-')
            .filter(|rest| rest.ends_with([' ', '\t']))
            .map_or(text, str::trim_end);
        let mut hash = [0u8; 32];
        hex::decode_to_slice(text, &mut hash).map_err(|_| BadTokenConfig {
            name: self.name.clone(),
        })?;
        Ok(hash)
    }
}

/// A configured token that failed to load.
#[derive(Debug, thiserror::Error)]
#[error("jobs.tokens entry '{name}': sha256 must be 64 hex digits, the SHA-256 of the token (`telemetry-server token new` prints a token and its entry)")]
pub struct BadTokenConfig {
    /// The entry's `name`.
    pub name: String,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's configured name.
    pub name: String,
    /// The token's role.
    pub role: Role,
}

impl Caller {
    /// Allows the request when the caller owns `owner`'s job or is an admin. Another token's job
    /// answers exactly like a job that does not exist (404 `not_found`, no owner named), so a token
    /// cannot probe which job ids exist or who owns them.
    pub fn check_owner(&self, owner: &str, job_id: &str) -> Result<(), ApiError> {
        if self.sees(owner) {
            Ok(())
        } else {
            Err(ApiError::no_job(job_id))
        }
    }

    /// Allows job requests (upload, submit, list, fetch, cancel) to `submit` and `admin` tokens;
    /// a `worker` token is refused (403): it may only take part in the cluster.
    pub fn check_jobs(self) -> Result<Self, ApiError> {
        if self.role == Role::Worker {
            Err(ApiError::Forbidden(format!(
                "token '{}' has the worker role: it may only register with the cluster",
                self.name
            )))
        } else {
            Ok(self)
        }
    }

    /// Whether the caller may see a job owned by `owner` (used to filter listings).
    pub fn sees(&self, owner: &str) -> bool {
        self.role == Role::Admin || self.name == owner
    }
}

/// The configured tokens, ready for constant-time lookup.
#[derive(Debug, Clone)]
pub struct Authenticator {
    tokens: Vec<([u8; 32], Caller)>,
}

impl Authenticator {
    /// Loads the configured tokens, rejecting hashes that are not 64 hex digits.
    pub fn new(tokens: &[TokenConfig]) -> Result<Self, BadTokenConfig> {
        let tokens = tokens
            .iter()
            .map(|t| {
                let hash = t.digest()?;
                Ok((
                    hash,
                    Caller {
                        name: t.name.clone(),
                        role: t.role,
                    },
                ))
            })
            .collect::<Result<_, _>>()?;
        Ok(Authenticator { tokens })
    }

    /// The caller for an `Authorization` header value, or a 401 saying what is wrong.
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Caller, ApiError> {
        let header = authorization.ok_or_else(|| {
            ApiError::Unauthorized(
                "missing bearer token: send 'Authorization: Bearer <token>' (ingest routes need none)".into(),
            )
        })?;
        let token = header
            .strip_prefix(b"Bearer ")
            .or_else(|| header.strip_prefix(b"bearer "))
            .map(|t| t.trim_ascii())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "malformed Authorization header: expected 'Bearer <token>'".into(),
                )
            })?;
        let digest: [u8; 32] = Sha256::digest(token).into();
        // Compare against every token without stopping early, so timing does not reveal which
        // (or whether an) entry matched.
        let mut found = None;
        for (hash, caller) in &self.tokens {
            if bool::from(hash.ct_eq(&digest)) {
                found = Some(caller);
            }
        }
        found
            .cloned()
            .ok_or_else(|| ApiError::Unauthorized("unknown bearer token".into()))
    }
}

/// Lower-case hex SHA-256 of a token, as written into `[[jobs.tokens]] sha256`.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        Authenticator::new(&[
            TokenConfig {
                name: "alice".into(),
                sha256: hash_token("alice-secret"),
                role: Role::Submit,
            },
            TokenConfig {
                name: "root".into(),
                sha256: hash_token("root-secret"),
                role: Role::Admin,
            },
        ])
        .unwrap()
    }

    #[test]
    fn known_tokens_map_to_their_caller() {
        let caller = auth().authenticate(Some(b"Bearer alice-secret")).unwrap();
        assert_eq!(
            caller,
            Caller {
                name: "alice".into(),
                role: Role::Submit
            }
        );
        assert_eq!(
            auth()
                .authenticate(Some(b"Bearer root-secret"))
                .unwrap()
                .role,
            Role::Admin
        );
    }

    #[test]
    fn missing_malformed_and_unknown_tokens_are_401() {
        let a = auth();
        for header in [
            None,
            Some(&b"Basic abc"[..]),
            Some(b"Bearer "),
            Some(b"Bearer alice-secreT"),
        ] {
            let err = a.authenticate(header).unwrap_err();
            assert_eq!(
                err.status(),
                axum::http::StatusCode::UNAUTHORIZED,
                "{header:?}"
            );
        }
    }

    #[test]
    fn submit_tokens_only_reach_their_own_jobs() {
        let alice = Caller {
            name: "alice".into(),
            role: Role::Submit,
        };
        assert!(alice.check_owner("alice", "j1").is_ok());
        let err = alice.check_owner("bob", "j1").unwrap_err();
        assert_eq!(err.status(), axum::http::StatusCode::NOT_FOUND);
        assert_eq!(err.code(), "not_found");
        assert!(!err.to_string().contains("bob"), "{err}");
        let root = Caller {
            name: "root".into(),
            role: Role::Admin,
        };
        assert!(root.check_owner("bob", "j1").is_ok());
    }

    #[test]
    fn bad_hash_in_config_is_rejected() {
        let err = Authenticator::new(&[TokenConfig {
            name: "x".into(),
            sha256: "abc".into(),
            role: Role::Admin,
        }])
        .unwrap_err();
        assert!(err.to_string().contains("'x'"));
    }

    #[test]
    fn sha256sum_output_is_accepted_as_printed_and_other_junk_is_not() {
        let hash = hash_token("t0ken");
        let entry = |sha256: String| TokenConfig {
            name: "ci".into(),
            sha256,
            role: Role::Submit,
        };
        let want: [u8; 32] = Sha256::digest(b"t0ken").into();
        for pasted in [
            hash.clone(),
            format!("{hash}  -"),
            format!(" {hash}\t-\n"),
            hash.to_uppercase(),
        ] {
            assert_eq!(entry(pasted.clone()).digest().unwrap(), want, "{pasted:?}");
        }
        for bad in [
            format!("{hash}-"),
            format!("{hash}  file.txt"),
            format!("{hash}  - -"),
            hash[..63].to_string(),
            String::new(),
        ] {
            let err = entry(bad.clone()).digest().unwrap_err().to_string();
            assert!(
                err.contains("'ci'") && err.contains("64 hex digits"),
                "{bad:?}: {err}"
            );
        }
        // The server accepts the same pasted line and authenticates the token with it.
        let auth = Authenticator::new(&[entry(format!("{hash}  -"))]).unwrap();
        assert_eq!(auth.authenticate(Some(b"Bearer t0ken")).unwrap().name, "ci");
    }
}
