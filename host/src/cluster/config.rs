//! `[cluster]`: how often workers heartbeat, when a silent one counts as lost, how many members
//! the coordinator keeps, and how many attempts a cluster job may take.

use serde::{Deserialize, Serialize};

/// The `[cluster]` section of the server configuration (the coordinator's side; a worker learns
/// the heartbeat interval from the coordinator when it registers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Seconds between a worker's heartbeats.
    pub heartbeat_secs: u64,
    /// Seconds without a heartbeat after which a worker is `lost` (it rejoins by heartbeating or
    /// registering again).
    pub lost_after_secs: u64,
    /// Most members the coordinator keeps; at the cap a new worker replaces the longest-silent
    /// lost one, or is refused (503) when none is lost.
    pub max_members: usize,
    /// Most attempts of one cluster job (node loss re-plans on the survivors).
    pub max_attempts: u32,
    /// Run uploaded jobs across the coordinator and its alive workers: over an S3 source each
    /// reads a share of one listing, over the local source each reads its own storage (off:
    /// every job runs on the coordinator's own cores, as without workers).
    pub distribute: bool,
    /// The host (name or IP) the workers reach the coordinator's timely mesh at; each attempt
    /// binds a fresh port on it.
    pub mesh_host: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            heartbeat_secs: 5,
            lost_after_secs: 20,
            max_members: 64,
            max_attempts: 3,
            distribute: false,
            mesh_host: "127.0.0.1".into(),
        }
    }
}

impl ClusterConfig {
    /// Rejects settings membership cannot work with.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat_secs == 0 {
            return Err("cluster.heartbeat_secs must be > 0".into());
        }
        if self.lost_after_secs <= self.heartbeat_secs {
            return Err(format!(
                "cluster.lost_after_secs ({}) must be more than cluster.heartbeat_secs ({}): \
                 a worker would be lost between two heartbeats",
                self.lost_after_secs, self.heartbeat_secs
            ));
        }
        if self.max_members == 0 || self.max_members > 10_000 {
            return Err("cluster.max_members must be 1..=10000".into());
        }
        if self.max_attempts == 0 || self.max_attempts > 100 {
            return Err("cluster.max_attempts must be 1..=100".into());
        }
        if self.mesh_host.is_empty() || self.mesh_host.len() > 255 {
            return Err("cluster.mesh_host must be a host name or IP address".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_nonsense_does_not() {
        ClusterConfig::default().validate().unwrap();
        let lost_too_soon = ClusterConfig {
            heartbeat_secs: 5,
            lost_after_secs: 5,
            ..ClusterConfig::default()
        };
        assert!(lost_too_soon
            .validate()
            .unwrap_err()
            .contains("lost_after_secs"));
        for bad in [
            ClusterConfig {
                heartbeat_secs: 0,
                ..ClusterConfig::default()
            },
            ClusterConfig {
                max_members: 0,
                ..ClusterConfig::default()
            },
            ClusterConfig {
                max_attempts: 0,
                ..ClusterConfig::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
