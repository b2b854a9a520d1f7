//! TODO

pub mod scheduler;
