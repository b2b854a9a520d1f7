//! Schedules driven by a manual clock over a real scheduler and store, with an executor that
//! answers with the date range its (resolved) filter asks for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cap_std::fs::Dir;
use chrono::{DateTime, Utc};

use super::*;
use crate::jobs::scheduler::{
    Executor, Finished, JobRecord, JobStore, RunControl, RunFailure, SchedulerConfig,
};

/// Answers `submission_date<TAB>min..max` from the job's filter.
struct EchoDates;

impl Executor for EchoDates {
    fn execute(&self, job: &JobRecord, _: &RunControl) -> Result<Finished, RunFailure> {
        let range = &job.manifest.filter.as_ref().unwrap()["dimensions"][0]["allowed_values"];
        Ok(Finished {
            output: format!(
                "submission_date\t{}..{}\n",
                range["min"].as_str().unwrap(),
                range["max"].as_str().unwrap()
            )
            .into_bytes(),
            ..Default::default()
        })
    }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct Fixture {
    scheduler: Scheduler,
    schedules: Schedules,
}

fn open(dir: &std::path::Path, clock: Arc<ManualClock>, history_runs: usize) -> Fixture {
    let jobs = Dir::open_ambient_dir(dir, cap_std::ambient_authority()).unwrap();
    let scheduler = Scheduler::start(
        JobStore::open(&jobs).unwrap(),
        Arc::new(EchoDates),
        SchedulerConfig {
            max_concurrent_jobs: 1,
            max_queued_jobs: 10,
            job_nice: 0,
            job_sched_idle: false,
            result_retention: Duration::from_secs(3600),
            retention_sweep: Duration::from_secs(3600),
        },
    )
    .unwrap();
    let schedules = Schedules::open(
        ScheduleStore::open(&jobs).unwrap(),
        clock,
        ScheduleConfig {
            history_runs,
            max_schedules: 2,
        },
    )
    .unwrap();
    Fixture {
        scheduler,
        schedules,
    }
}

/// Ticks until no run of `id` is unfinished.
fn settle(f: &Fixture, id: &str) -> ScheduleRecord {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        f.schedules.tick(&f.scheduler);
        let record = f.schedules.get(id).unwrap();
        if record.runs.iter().all(|r| r.state.is_final()) {
            return record;
        }
        assert!(Instant::now() < deadline, "runs never finished: {record:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn daily_manifest() -> Manifest {
    serde_json::from_value(serde_json::json!({
        "name": "daily dates",
        "schedule": "daily 02:00",
        "filter": {"dimensions": [{"field_name": "submission_date", "allowed_values": {"min": "-1d", "max": "-1d"}}]}
    }))
    .unwrap()
}

#[test]
fn daily_runs_resolve_yesterday_keep_history_and_run_once_after_downtime() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(at("2026-12-01T12:00:00Z")));
    let f = open(tmp.path(), clock.clone(), 3);
    let created = f
        .schedules
        .create("alice", daily_manifest(), "ab".repeat(32))
        .unwrap();
    assert_eq!(created.next_run.as_deref(), Some("2026-12-02T02:00:00Z"));
    // Before the slot nothing runs.
    clock.set(at("2026-12-02T01:59:00Z"));
    assert!(settle(&f, &created.id).runs.is_empty());
    for day in ["02", "03"] {
        clock.set(at(&format!("2026-12-{day}T02:00:00Z")));
        settle(&f, &created.id);
        // A second tick in the same minute starts nothing more.
        clock.set(at(&format!("2026-12-{day}T02:00:30Z")));
        settle(&f, &created.id);
    }
    // Restart mid-schedule, down over three slots (04, 05, 06): one run, for the latest slot.
    drop(f);
    clock.set(at("2026-12-06T09:00:00Z"));
    let f = open(tmp.path(), clock.clone(), 3);
    let record = settle(&f, &created.id);
    assert_eq!(record.runs.len(), 3, "{record:?}");
    let got: Vec<(u64, &str, &str)> = record
        .runs
        .iter()
        .map(|r| (r.seq, r.scheduled_for.as_str(), r.run_at.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "2026-12-02T02:00:00Z", "2026-12-02T02:00:00Z"),
            (2, "2026-12-03T02:00:00Z", "2026-12-03T02:00:00Z"),
            (3, "2026-12-06T02:00:00Z", "2026-12-06T09:00:00Z"),
        ]
    );
    assert_eq!(record.next_run.as_deref(), Some("2026-12-07T02:00:00Z"));
    let results: Vec<String> = record
        .runs
        .iter()
        .map(|r| {
            assert_eq!(r.state, JobState::Succeeded, "{r:?}");
            String::from_utf8(f.schedules.result(&record.id, r.seq).unwrap().unwrap()).unwrap()
        })
        .collect();
    assert_eq!(
        results,
        [
            "submission_date\t20261201..20261201\n",
            "submission_date\t20261202..20261202\n",
            "submission_date\t20261205..20261205\n"
        ]
    );
    // A fourth run drops the first from the history of 3, with its result file.
    clock.set(at("2026-12-07T02:00:00Z"));
    let record = settle(&f, &created.id);
    assert_eq!(
        record.runs.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    assert!(f.schedules.result(&record.id, 1).unwrap().is_none());
    assert_eq!(f.schedules.metrics.runs_expired.get(), 1);
    assert_eq!(f.schedules.metrics.runs_failed.get(), 0);
}

#[test]
fn the_schedule_count_is_bounded_and_removal_deletes_history() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(at("2026-12-01T12:00:00Z")));
    let f = open(tmp.path(), clock.clone(), 3);
    let a = f
        .schedules
        .create("alice", daily_manifest(), "ab".repeat(32))
        .unwrap();
    f.schedules
        .create("bob", daily_manifest(), "ab".repeat(32))
        .unwrap();
    assert!(matches!(
        f.schedules
            .create("carol", daily_manifest(), "ab".repeat(32)),
        Err(ScheduleError::Full(2))
    ));
    clock.set(at("2026-12-02T02:00:00Z"));
    settle(&f, &a.id);
    assert!(f.schedules.result(&a.id, 1).unwrap().is_some());
    f.schedules.remove(&a.id).unwrap();
    assert!(f.schedules.result(&a.id, 1).unwrap().is_none());
    assert!(f.schedules.get(&a.id).is_none());
    let never = Manifest {
        schedule: Some("0 0 31 2 *".into()),
        ..daily_manifest()
    };
    assert!(matches!(
        f.schedules.create("alice", never, "ab".repeat(32)),
        Err(ScheduleError::Never(_))
    ));
}
