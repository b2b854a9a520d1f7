//! [`UploadQuota`]: `jobs.upload_quota_bytes`, the most component bytes one token may keep in the
//! compile cache. Each token's uploads are listed in `jobs/uploads/<sha256 of its name>` (one
//! component hash a line); its usage is the size of the listed components still in `cache/`
//! (the cache's retention deletes components, which frees quota). An upload that adds a component
//! to the cache and would take its token above the quota is refused (413) before it is compiled.
//! A component already in the cache costs nothing. Uploads of one token checked at the same
//! moment may together overshoot by what is in flight (at most the compiles at once plus those
//! waiting).

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::Mutex;

use cap_std::fs::Dir;
use prometheus_client::metrics::counter::Counter;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::jobs::scheduler::is_sha256;

/// The per-token ledgers and the cache they are measured against.
pub struct UploadQuota {
    ledgers: Dir,
    cache: Dir,
    quota: u64,
    lock: Mutex<()>,
    /// Uploads refused for the quota (`telemetry_jobs_upload_quota_refusals_total`).
    pub refusals: Counter,
}

impl UploadQuota {
    /// Ledgers in `ledgers` (the data dir's `jobs/uploads/`), components in `cache`.
    pub fn new(ledgers: Dir, cache: Dir, quota: u64) -> UploadQuota {
        UploadQuota {
            ledgers,
            cache,
            quota,
            lock: Mutex::new(()),
            refusals: Counter::default(),
        }
    }

    /// Charges a component of `size` bytes with hash `sha256` to `token`, or refuses it.
    pub fn charge(&self, token: &str, sha256: &str, size: u64) -> Result<(), ApiError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.cached_size(sha256).is_some() {
            return Ok(());
        }
        let ledger = hex::encode(Sha256::digest(token.as_bytes()));
        let mut listed = self.read_ledger(&ledger)?;
        // Components the retention deleted free their bytes and leave the ledger.
        let mut used = 0u64;
        listed.retain(|sha| match self.cached_size(sha) {
            Some(bytes) => {
                used += bytes;
                true
            }
            None => false,
        });
        if used + size > self.quota {
            self.refusals.inc();
            return Err(ApiError::QuotaExceeded(format!(
                "token '{token}' keeps {used} bytes of components in the compile cache; this \
                 {size}-byte component would bring it to {}, above jobs.upload_quota_bytes = {}. \
                 Reuse an uploaded component by its hash, or wait for the cache's retention to \
                 delete unused ones",
                used + size,
                self.quota
            )));
        }
        listed.insert(sha256.to_string());
        let text: String = listed.iter().map(|sha| format!("{sha}\n")).collect();
        let tmp = format!("{ledger}.{}.tmp", uuid::Uuid::new_v4().simple());
        crate::storage::private::write_private(&self.ledgers, &tmp, text.as_bytes())
            .and_then(|()| self.ledgers.rename(&tmp, &self.ledgers, &ledger))
            .map_err(|e| {
                let _ = self.ledgers.remove_file(&tmp);
                ApiError::Internal(format!("recording an upload: {e}"))
            })
    }

    fn cached_size(&self, sha256: &str) -> Option<u64> {
        self.cache
            .metadata(format!("{sha256}.wasm"))
            .ok()
            .map(|m| m.len())
    }

    fn read_ledger(&self, ledger: &str) -> Result<BTreeSet<String>, ApiError> {
        let mut text = String::new();
        match self.ledgers.open(ledger) {
            Ok(mut file) => file
                .read_to_string(&mut text)
                .map_err(|e| ApiError::Internal(format!("reading an upload ledger: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(ApiError::Internal(format!("opening an upload ledger: {e}"))),
        };
        Ok(text
            .lines()
            .filter(|l| is_sha256(l))
            .map(str::to_string)
            .collect())
    }
}
