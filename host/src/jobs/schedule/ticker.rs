//! [`Ticker`]: the thread (`job-schedules`) that calls a tick function at once and then every
//! interval, until it is stopped or the function answers `false` (its owner is gone).

use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

/// A running tick thread; stopped (and joined) by [`Ticker::stop`] or on drop.
pub struct Ticker {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    /// Starts the thread.
    pub fn start(
        every: Duration,
        mut tick: impl FnMut() -> bool + Send + 'static,
    ) -> std::io::Result<Ticker> {
        let (stop, stopped) = channel::<()>();
        let thread = std::thread::Builder::new()
            .name("job-schedules".into())
            .spawn(move || {
                while tick() {
                    match stopped.recv_timeout(every) {
                        Err(RecvTimeoutError::Timeout) => continue,
                        _ => return,
                    }
                }
            })?;
        Ok(Ticker {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for a tick in progress (not when called from the thread
    /// itself). Idempotent.
    pub fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop();
    }
}
