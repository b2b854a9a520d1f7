//! Where a job's timely workers run: threads of this process now, several processes (and machines)
//! later. The MapReduce dataflow in [`crate::jobs`] is written against any [`Topology`]: it reads
//! only `worker.index()` / `worker.peers()` and exchanges serialisable `(String, String)` pairs,
//! so moving to `Cluster` needs no change to it.
//!
//! A `Cluster` run connects its processes itself ([`mesh`]): every connection passes the
//! [`handshake`] (a per-attempt secret) before timely's own protocol sees it.
//!
//! Membership: workers ([`worker`]) register with the coordinator and heartbeat; the coordinator
//! keeps them in a bounded [`membership`] table, configured by `[cluster]` ([`config`]).

pub mod config;
pub mod handshake;
pub mod membership;
pub mod mesh;
pub mod worker;

use handshake::MeshSecret;
use timely::communication::AllocatorBuilder;

/// The set of timely workers for one job run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// `workers` threads in this process.
    Local {
        /// Worker threads (≥ 1).
        workers: usize,
    },
    /// `workers` threads in each of several processes that find each other at `addresses`
    /// (`host:port`, one per process, the same list everywhere); this process is `process`.
    Cluster {
        /// Worker threads per process (the same in every process).
        workers: usize,
        /// Index of this process in `addresses`.
        process: usize,
        /// Every process's address.
        addresses: Vec<String>,
        /// The attempt's secret every mesh connection must prove.
        secret: MeshSecret,
    },
}

impl Topology {
    /// One worker per core (at least one).
    pub fn local_default() -> Self {
        Topology::Local {
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        }
    }

    /// Total workers across all processes.
    pub fn peers(&self) -> usize {
        match self {
            Topology::Local { workers } => *workers,
            Topology::Cluster {
                workers, addresses, ..
            } => workers * addresses.len(),
        }
    }

    /// The global indexes of this process's workers (timely numbers process `p`'s workers
    /// `p * workers ..`).
    pub fn local_worker_indexes(&self) -> std::ops::Range<usize> {
        let workers = self.local_workers();
        let first = match self {
            Topology::Local { .. } => 0,
            Topology::Cluster { process, .. } => process * workers,
        };
        first..first + workers
    }

    /// Worker threads in this process.
    pub fn local_workers(&self) -> usize {
        match self {
            Topology::Local { workers } | Topology::Cluster { workers, .. } => (*workers).max(1),
        }
    }

    /// timely's allocators for this topology, for `timely::execute::execute_from` (the
    /// [`mesh::Network`] must live as long as the run). For a cluster this makes the
    /// authenticated mesh.
    pub fn allocators(&self) -> Result<(Vec<AllocatorBuilder>, mesh::Network), String> {
        match self {
            Topology::Local { workers } => timely::CommunicationConfig::Process((*workers).max(1))
                .try_build()
                .map(|(builders, guard)| (builders, mesh::Network::local(guard))),
            Topology::Cluster {
                workers,
                process,
                addresses,
                secret,
            } => {
                let config = mesh::MeshConfig::new(addresses.clone(), *process, secret.clone());
                let connected = mesh::connect(&config).map_err(|e| e.to_string())?;
                mesh::allocators(connected.sockets, *process, (*workers).max(1))
                    .map_err(|e| e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_count_every_process() {
        assert_eq!(Topology::Local { workers: 3 }.peers(), 3);
        let t = Topology::Cluster {
            workers: 2,
            process: 1,
            addresses: vec!["a:1".into(), "b:1".into()],
            secret: MeshSecret::random().unwrap(),
        };
        assert_eq!(t.peers(), 4);
        assert_eq!(t.local_workers(), 2);
        assert_eq!(t.local_worker_indexes(), 2..4);
        assert_eq!(Topology::Local { workers: 3 }.local_worker_indexes(), 0..3);
    }
}
