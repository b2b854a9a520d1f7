//! HMAC-SHA-256, the one keyed MAC of the crate: the compile cache seals its artifacts with it
//! ([`crate::jobs::artifact_seal`]) and cluster members prove a run's secret with it
//! ([`crate::cluster::handshake`]). Verify tags with `verify_slice` (constant time).

use hmac::{Hmac, KeyInit, Mac};

/// HMAC-SHA-256.
pub type HmacSha256 = Hmac<sha2_mac::Sha256>;

/// HMAC-SHA-256 keyed with `key`, fed `parts` in order.
pub fn hmac(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac
}
