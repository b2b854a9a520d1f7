//! [`CompileGate`]: at most `jobs.max_concurrent_compiles` component compilations run at once
//! (Cranelift on an 18 MB Python guest takes seconds of CPU and hundreds of MiB); the others wait
//! in line at most `jobs.compile_wait_secs` and are then refused with a 503 naming both keys, so
//! parallel uploads queue instead of each starting a compile thread.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;

/// The compile permits and the line in front of them.
pub struct CompileGate {
    permits: Arc<Semaphore>,
    max: usize,
    wait: Duration,
    /// Compiles waiting for a permit (`telemetry_jobs_compiles_waiting`).
    pub waiting: Gauge,
    /// Compiles refused after waiting `wait` (`telemetry_jobs_compile_refusals_total`).
    pub refused: Counter,
}

impl CompileGate {
    /// At most `max` (at least 1) compiles at once, each waiting at most `wait` for its turn.
    pub fn new(max: usize, wait: Duration) -> CompileGate {
        let max = max.max(1);
        CompileGate {
            permits: Arc::new(Semaphore::new(max)),
            max,
            wait,
            waiting: Gauge::default(),
            refused: Counter::default(),
        }
    }

    /// Waits for a permit; hold it until the compile is over (also when the client has gone).
    pub async fn enter(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.waiting.inc();
        let turn = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await;
        self.waiting.dec();
        match turn {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                self.refused.inc();
                Err(ApiError::Unavailable(format!(
                    "{} component compiles are running and this one waited {} s for its turn \
                     (jobs.max_concurrent_compiles, jobs.compile_wait_secs); retry later",
                    self.max,
                    self.wait.as_secs()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_compile_waits_its_turn_and_is_refused_after_the_deadline() {
        let gate = CompileGate::new(1, Duration::from_millis(200));
        let first = gate.enter().await.unwrap();
        let started = std::time::Instant::now();
        let err = gate.enter().await.unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(
            err.to_string().contains("jobs.max_concurrent_compiles"),
            "{err}"
        );
        assert_eq!((gate.refused.get(), gate.waiting.get()), (1, 0));
        // A waiter gets the permit as soon as it is released.
        let waiter = async { gate.enter().await.map(|_| ()) };
        let release = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(first);
        };
        let (got, ()) = tokio::join!(waiter, release);
        got.unwrap();
        assert_eq!(gate.refused.get(), 1);
    }
}
