//! Uploaded jobs across the cluster: the coordinator's [`planner`] lists a job's source once,
//! plans timely `Cluster` attempts over its alive workers and re-plans when one is lost; each
//! worker runs its process of an attempt with [`member_runs`]; they talk the control
//! [`protocol`] over the worker's HTTP port.

pub mod member_runs;
pub mod planner;
pub mod protocol;
