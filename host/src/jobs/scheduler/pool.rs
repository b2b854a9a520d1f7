//! Threads for job work at a lower CPU priority. On Linux the nice value and the scheduling policy
//! are per thread and inherited by the threads a thread creates, so the executor's workers started
//! from a runner thread run at the same priority, and the kernel prefers ingest threads when both
//! want a core. With `SCHED_IDLE` a waking ingest thread preempts a job thread at once; with nice
//! alone it may wait for the end of the job thread's time slice (a few ms of ingest latency).

use std::thread::JoinHandle;

/// How job threads are scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority {
    /// Nice value, 0–19 (only ever raised: lowering would need `CAP_SYS_NICE`).
    pub nice: i32,
    /// Also switch to the `SCHED_IDLE` policy (Linux).
    pub sched_idle: bool,
}

/// Spawns a named thread that lowers its own priority before `body` runs. Failure to lower the
/// priority is logged, not fatal.
pub fn spawn_low_priority(
    name: String,
    priority: Priority,
    body: impl FnOnce() + Send + 'static,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            lower_priority(&name, priority);
            body()
        })
        .expect("cannot spawn a job thread")
}

fn lower_priority(name: &str, priority: Priority) {
    let nice = priority.nice.clamp(0, 19).max(current_nice());
    let tid = rustix::thread::gettid();
    if let Err(error) = rustix::process::setpriority_process(Some(tid), nice) {
        tracing::warn!(thread = name, nice, error = %error, "cannot lower job thread priority");
    }
    if priority.sched_idle {
        if let Err(error) = set_sched_idle() {
            tracing::warn!(thread = name, error = %error, "cannot switch job thread to SCHED_IDLE");
        }
    }
}

/// The calling thread's nice value.
pub fn current_nice() -> i32 {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(0)
}

/// Puts the calling thread under `SCHED_IDLE` (Linux: pid 0 = the calling thread).
#[cfg(target_os = "linux")]
fn set_sched_idle() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `sched_setscheduler` only reads `param`, a valid, initialised local that outlives
    // the call; pid 0 names the calling thread, and no memory is shared with the kernel after.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn set_sched_idle() -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "SCHED_IDLE is Linux only",
    ))
}

/// Whether the calling thread runs under `SCHED_IDLE`.
#[cfg(all(test, target_os = "linux"))]
fn is_sched_idle() -> bool {
    // SAFETY: `sched_getscheduler` takes a pid by value and touches no memory of ours.
    unsafe { libc::sched_getscheduler(0) == libc::SCHED_IDLE }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_and_its_children_run_at_the_lowered_priority() {
        let (tx, rx) = std::sync::mpsc::channel();
        spawn_low_priority(
            "test-low".into(),
            Priority {
                nice: 7,
                sched_idle: true,
            },
            move || {
                let own = (current_nice(), is_sched_idle());
                let child = std::thread::spawn(|| (current_nice(), is_sched_idle()))
                    .join()
                    .unwrap();
                tx.send((own, child)).unwrap();
            },
        )
        .join()
        .unwrap();
        let base = current_nice();
        let (own, child) = rx.recv().unwrap();
        // Raising niceness is always allowed; when the test itself already runs nicer, it stays.
        assert_eq!(own, (base.max(7), true));
        assert_eq!(
            child, own,
            "threads started by a job thread inherit its priority"
        );
        assert!(!is_sched_idle(), "the spawning thread is unchanged");
    }
}
