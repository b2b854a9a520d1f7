//! Threads for job work at a lower CPU priority. On Linux the nice value is per thread and threads
//! inherit it from the thread that creates them, so the executor's workers started from a runner
//! thread run at the same lowered priority, and the kernel prefers ingest threads when both want a core.

use std::thread::JoinHandle;

/// Spawns a named thread whose nice value is raised to `nice` (0–19) before `body` runs.
/// Failure to lower the priority is logged, not fatal.
pub fn spawn_low_priority(name: String, nice: i32, body: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            lower_priority(&name, nice);
            body()
        })
        .expect("cannot spawn a job thread")
}

/// Sets the calling thread's nice value (Linux: `setpriority(PRIO_PROCESS, tid)` is per thread).
fn lower_priority(name: &str, nice: i32) {
    // Only ever lower the priority (a raise would need CAP_SYS_NICE, and is not ours to do).
    let nice = nice.clamp(0, 19).max(current_nice());
    let tid = rustix::thread::gettid();
    if let Err(error) = rustix::process::setpriority_process(Some(tid), nice) {
        tracing::warn!(thread = name, nice, error = %error, "cannot lower job thread priority");
    }
}

/// The calling thread's nice value.
pub fn current_nice() -> i32 {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_and_its_children_run_at_the_lowered_priority() {
        let (tx, rx) = std::sync::mpsc::channel();
        spawn_low_priority("test-low".into(), 7, move || {
            let own = current_nice();
            let child = std::thread::spawn(current_nice).join().unwrap();
            tx.send((own, child)).unwrap();
        })
        .join()
        .unwrap();
        let base = current_nice();
        let (own, child) = rx.recv().unwrap();
        // Raising niceness is always allowed; when the test itself already runs nicer, it stays.
        assert_eq!(own, base.max(7));
        assert_eq!(child, own, "threads started by a job thread inherit its priority");
    }
}
