//! Scheduler unit tests with a scripted executor (the Wasm executor is tested end to end in
//! `host/tests/all/job_service.rs`): queue order, cancellation, restart policy, queue limit, retention.

use std::time::{Duration, Instant};

use cap_std::fs::Dir;

use super::*;

/// Lets `deaf` jobs end (they ignore cancellation).
static RELEASE_DEAF: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Runs by the job parameter: `loop` spins until cancelled, `deaf` spins until [`RELEASE_DEAF`]
/// whatever the cancel token says, `fail` fails, anything else is echoed.
struct Scripted;

impl Executor for Scripted {
    fn execute(&self, job: &JobRecord, control: &RunControl) -> Result<Finished, RunFailure> {
        match job.manifest.parameter.as_deref() {
            Some("deaf") => {
                while !RELEASE_DEAF.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(RunFailure::Cancelled)
            }
            Some("loop") => {
                while !control.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(RunFailure::Cancelled)
            }
            Some("fail") => Err(RunFailure::Failed {
                error: "guest trapped".into(),
                cost: None,
                log: vec![],
            }),
            other => Ok(Finished {
                output: format!("k\t{}\n", other.unwrap_or("")).into_bytes(),
                ..Default::default()
            }),
        }
    }
}

fn config(retention_secs: u64) -> SchedulerConfig {
    SchedulerConfig {
        max_concurrent_jobs: 1,
        max_queued_jobs: 3,
        job_nice: 5,
        job_sched_idle: false,
        result_retention: Duration::from_secs(retention_secs),
        retention_sweep: Duration::from_millis(20),
    }
}

fn start(dir: &std::path::Path, retention_secs: u64) -> Scheduler {
    let dir = Dir::open_ambient_dir(dir, cap_std::ambient_authority()).unwrap();
    Scheduler::start(
        JobStore::open(&dir).unwrap(),
        Arc::new(Scripted),
        config(retention_secs),
    )
    .unwrap()
}

fn manifest(param: &str) -> Manifest {
    Manifest {
        name: param.into(),
        filter: Some(serde_json::json!({})),
        parameter: Some(param.into()),
        limits: None,
        workers: None,
        skip_bad_records: false,
        sample: None,
        allow_empty: false,
        component: None,
        source: None,
    }
}

fn wait_for(s: &Scheduler, id: &str, want: JobState) -> JobRecord {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let record = s.get(id).unwrap();
        if record.state == want {
            return record;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} stuck in {:?}, wanted {want:?}",
            record.state
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn sha() -> String {
    "ab".repeat(32)
}

#[test]
fn jobs_run_in_order_and_results_are_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), 3600);
    let a = s.submit("alice", manifest("one"), sha()).unwrap();
    let b = s.submit("alice", manifest("fail"), sha()).unwrap();
    let a = wait_for(&s, &a.id, JobState::Succeeded);
    assert_eq!(s.result(&a.id).unwrap().unwrap(), b"k\tone\n");
    assert_eq!(a.result_bytes, Some(6));
    let b = wait_for(&s, &b.id, JobState::Failed);
    assert_eq!(b.error.as_deref(), Some("guest trapped"));
    assert!(s.result(&b.id).unwrap().is_none());
    assert_eq!(
        s.list().iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![a.id, b.id]
    );
}

#[test]
fn cancel_interrupts_running_and_removes_queued() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), 3600);
    let running = s.submit("alice", manifest("loop"), sha()).unwrap();
    let queued = s.submit("alice", manifest("never"), sha()).unwrap();
    wait_for(&s, &running.id, JobState::Running);
    assert_eq!(s.cancel(&queued.id).unwrap().state, JobState::Cancelled);
    s.cancel(&running.id).unwrap();
    let done = wait_for(&s, &running.id, JobState::Cancelled);
    assert_eq!(done.error.as_deref(), Some("cancelled while running"));
    assert!(matches!(
        s.cancel(&running.id),
        Err(SchedulerError::AlreadyFinished { .. })
    ));
    assert!(matches!(s.cancel("nope"), Err(SchedulerError::NotFound(_))));
    // The queued job never ran.
    assert_eq!(s.get(&queued.id).unwrap().started_at, None);
}

#[test]
fn queue_limit_counts_unfinished_jobs() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), 3600);
    for _ in 0..3 {
        s.submit("alice", manifest("loop"), sha()).unwrap();
    }
    assert!(matches!(
        s.submit("alice", manifest("x"), sha()),
        Err(SchedulerError::QueueFull(3))
    ));
}

#[test]
fn clean_shutdown_requeues_running_and_keeps_queued() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), 3600);
    let running = s.submit("alice", manifest("loop"), sha()).unwrap();
    let queued = s.submit("alice", manifest("later"), sha()).unwrap();
    wait_for(&s, &running.id, JobState::Running);
    drop(s);
    let dir = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
    let (records, _) = JobStore::open(&dir).unwrap().load_all().unwrap();
    assert!(
        records.iter().all(|r| r.state == JobState::Queued),
        "{records:?}"
    );
    // After the restart the interrupted job runs first again.
    let s = start(tmp.path(), 3600);
    wait_for(&s, &running.id, JobState::Running);
    s.cancel(&running.id).unwrap();
    wait_for(&s, &queued.id, JobState::Succeeded);
}

#[test]
fn shutdown_gives_up_on_a_job_that_ignores_cancel_after_its_wait() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), 3600);
    let deaf = s.submit("alice", manifest("deaf"), sha()).unwrap();
    wait_for(&s, &deaf.id, JobState::Running);
    let asked = Instant::now();
    s.shutdown();
    let took = asked.elapsed();
    assert!(
        took >= SHUTDOWN_WAIT,
        "shutdown returned after {took:?} while the job still ran"
    );
    assert!(
        took < SHUTDOWN_WAIT + Duration::from_secs(5),
        "shutdown took {took:?}"
    );
    // Left behind, the job is still `running` in the store: the next start marks it failed.
    let dir = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
    let (records, _) = JobStore::open(&dir).unwrap().load_all().unwrap();
    assert_eq!(
        records.iter().map(|r| r.state).collect::<Vec<_>>(),
        vec![JobState::Running]
    );
    RELEASE_DEAF.store(true, std::sync::atomic::Ordering::Relaxed);
}

#[test]
fn crash_marks_running_jobs_failed_and_runs_queued_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
    let store = JobStore::open(&dir).unwrap();
    // What a crash leaves behind: one record still `running`, one `queued`.
    let mut crashed = JobRecord::queued("alice", manifest("x"), sha());
    crashed.state = JobState::Running;
    store.save(&crashed).unwrap();
    let queued = JobRecord::queued("alice", manifest("after"), sha());
    store.save(&queued).unwrap();
    let s = start(tmp.path(), 3600);
    let crashed = s.get(&crashed.id).unwrap();
    assert_eq!(crashed.state, JobState::Failed);
    assert_eq!(crashed.error.as_deref(), Some(RESTART_REASON));
    wait_for(&s, &queued.id, JobState::Succeeded);
    assert_eq!(s.result(&queued.id).unwrap().unwrap(), b"k\tafter\n");
}

#[test]
fn retention_deletes_finished_jobs_and_results() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), 0);
    let job = s.submit("alice", manifest("gone"), sha()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.get(&job.id).is_some() {
        assert!(Instant::now() < deadline, "retention never removed the job");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(s.result(&job.id).unwrap().is_none());
    assert!(!tmp.path().join(format!("results/{}.txt", job.id)).exists());
    assert!(!tmp.path().join(format!("queue/{}.json", job.id)).exists());
}

#[test]
fn the_cache_is_collected_at_start_keeping_what_stored_jobs_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let (jobs, cache) = (tmp.path().join("jobs"), tmp.path().join("cache"));
    std::fs::create_dir_all(&jobs).unwrap();
    std::fs::create_dir_all(&cache).unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(7200);
    let unused = "cd".repeat(32);
    for name in [
        format!("{}.wasm", sha()),
        format!("{}.cwasm", sha()),
        format!("{unused}.wasm"),
        format!("{unused}.cwasm"),
    ] {
        std::fs::write(cache.join(&name), b"component").unwrap();
        std::fs::File::options()
            .write(true)
            .open(cache.join(&name))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let jobs_dir = Dir::open_ambient_dir(&jobs, cap_std::ambient_authority()).unwrap();
    let store = JobStore::open(&jobs_dir).unwrap();
    // A job finished long ago but still retained references `sha()`.
    let mut kept = JobRecord::queued("alice", manifest("kept"), sha());
    kept.finish(JobState::Succeeded, None);
    store.save(&kept).unwrap();
    let retention = CacheRetention {
        keep_unreferenced: 0,
        max_unreferenced_bytes: 0,
        min_age: Duration::from_secs(60),
    };
    let components = Arc::new(ComponentCache::new(
        Dir::open_ambient_dir(&cache, cap_std::ambient_authority()).unwrap(),
        retention,
    ));
    let s = Scheduler::start_with_cache(
        store,
        Arc::new(Scripted),
        config(3600),
        Some(components.clone()),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while cache.join(format!("{unused}.wasm")).exists() {
        assert!(
            Instant::now() < deadline,
            "the start-up collection never ran"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!cache.join(format!("{unused}.cwasm")).exists());
    assert!(
        cache.join(format!("{}.cwasm", sha())).exists(),
        "a retained job's component was deleted"
    );
    assert_eq!(components.deleted.get(), 1);
    drop(s);
}
