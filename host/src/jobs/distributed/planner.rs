//! The coordinator's planner: runs an uploaded job across the coordinator and its alive
//! workers, one timely `Cluster` attempt at a time, over a shared (S3) source or over each
//! member's own storage (the `local` source).
//!
//! Per job it lists (and prunes) the source once (for `local`: its own storage). Per attempt it
//! asks every chosen worker for a fresh mesh port (`POST /cluster/prepare`; for `local` with the
//! job's filter, and the worker answers with its own matching files), uploads the component to
//! those that lack it (by hash), makes a fresh mesh secret, and starts every worker's process
//! (`POST /cluster/attempts`, with the listing — every process computes the same size-balanced
//! shares — or for `local` the filter: each worker reads only its own files) and its own process
//! 0 (which gathers the output). It then watches the members (their status, every [`POLL`], and
//! the coordinator's membership): a member that fails, stops answering or is no longer alive
//! aborts the attempt (every other process is cancelled), and the job is re-planned on the
//! survivors, up to `[cluster] max_attempts` attempts. A lost member that held `local` files
//! fails the job naming it, unless the manifest allows partial results. A job error that is not
//! a member's loss (a guest trap, a limit) is the job's error at once. Cancelling the job cancels
//! every member. The output and a cost report merged over the members (`cluster` in it: attempts,
//! per-member files, records and bytes, what is missing) are what a local run would return.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use serde_json::{json, Value};

use super::member_runs::{run_process, MemberRuns};
use super::protocol::{AttemptPlan, AttemptStatus, LocalFiles, Prepare, Prepared};
use crate::cluster::config::ClusterConfig;
use crate::cluster::handshake::MeshSecret;
use crate::cluster::membership::MemberView;
use crate::cluster::Topology;
use crate::jobs::sources::SourceConfig;
use crate::jobs::{CancelToken, CompiledJob, JobError, Listing, Progress, RunOptions, Runtime};
use crate::storage::PartitionSource;

/// Each control request waits at most this long (uploads: [`UPLOAD_TIMEOUT`]).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Uploading a component waits at most this long.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the members' status is polled while an attempt runs.
const POLL: Duration = Duration::from_millis(200);
/// A member whose status cannot be read this many times in a row is lost.
const MISSED_POLLS: u32 = 3;
/// After the coordinator's own process ends, the members have this long to report theirs.
const REPORT_WAIT: Duration = Duration::from_secs(30);
/// After an abort, the coordinator's own process has this long to drain before the attempt is
/// given up on (its thread is left to finish on its own).
const DRAIN_WAIT: Duration = Duration::from_secs(10);

/// Who lists the members the planner may use (the coordinator's membership table).
pub type AliveMembers = Box<dyn Fn() -> Vec<MemberView> + Send + Sync>;

/// The planner cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum PlannerError {
    /// The HTTP client for the control requests cannot be built.
    #[error("cannot build the cluster planner's HTTP client: {0}")]
    Client(String),
}

/// One job, as the executor hands it over.
pub struct ClusterJob<'a> {
    /// The job's id (names its attempts).
    pub id: &'a str,
    /// The runtime the component was compiled with.
    pub runtime: Arc<Runtime>,
    /// The compiled component.
    pub compiled: &'a CompiledJob,
    /// The opened source.
    pub source: Arc<dyn PartitionSource>,
    /// Its configuration (shipped to the workers, with the environment defaults applied).
    pub source_config: SourceConfig,
    /// The run options.
    pub options: &'a RunOptions,
    /// The manifest's `allow_partial`: a `local`-source job whose member is lost with files
    /// re-runs on the survivors (the result marked partial) instead of failing.
    pub allow_partial: bool,
}

/// What a cluster run returns: the output, the merged cost report (JSON) and the job log.
pub struct ClusterOutput {
    /// Sorted output lines.
    pub output: Vec<u8>,
    /// The merged cost report.
    pub cost: Value,
    /// The job log (the coordinator's process).
    pub log: String,
}

/// The coordinator's planner (see the module doc).
pub struct Planner {
    config: ClusterConfig,
    alive: AliveMembers,
    client: reqwest::blocking::Client,
    /// Attempts started.
    pub attempts: Counter,
    /// Attempts aborted because a member was lost.
    pub members_lost: Counter,
}

/// Each process's cost report (JSON) with its member id and mesh address, by process index.
type Costs = Vec<(String, String, Value)>;

/// A member of one attempt.
struct Chosen {
    member: MemberView,
    mesh_address: String,
}

/// What the processes of a job read.
enum Work {
    /// A shared (S3) source listed once by the coordinator: every process splits the same
    /// listing over all the workers.
    Shared(Listing),
    /// Each member's own storage (a `local` source): the coordinator's own listing, and the
    /// filter document every worker lists its storage with.
    Own { coordinator: Listing, filter: Value },
}

impl Work {
    fn local_filter(&self) -> Option<&Value> {
        match self {
            Work::Shared(_) => None,
            Work::Own { filter, .. } => Some(filter),
        }
    }

    /// The coordinator's own listing (process 0's).
    fn coordinator(&self) -> &Listing {
        match self {
            Work::Shared(listing)
            | Work::Own {
                coordinator: listing,
                ..
            } => listing,
        }
    }
}

/// Each member's own matching files, by member id, as reported at preparation (`local` sources).
type Held = HashMap<String, LocalFiles>;

/// Why an attempt did not produce the job's output.
enum AttemptError {
    /// A member failed or vanished: re-plan without it.
    Lost {
        member: Box<MemberView>,
        reason: String,
    },
    /// The job itself failed (or was cancelled): no retry.
    Job(JobError),
}

impl Planner {
    /// A planner for `config`, choosing among `alive()`.
    pub fn new(config: &ClusterConfig, alive: AliveMembers) -> Result<Planner, PlannerError> {
        // A blocking client cannot be built on an async runtime's thread (the server is set up
        // on one): build it on a thread of its own.
        let client = std::thread::spawn(|| {
            reqwest::blocking::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
        })
        .join()
        .map_err(|_| PlannerError::Client("the builder thread panicked".into()))?
        .map_err(|e| PlannerError::Client(e.to_string()))?;
        Ok(Planner {
            config: config.clone(),
            alive,
            client,
            attempts: Counter::default(),
            members_lost: Counter::default(),
        })
    }

    /// Runs `job` across the members, or `None` when it runs locally as without a cluster
    /// (distribution off, no alive worker, a local source, or nothing listed).
    pub fn run(
        &self,
        job: &ClusterJob<'_>,
        progress: &Progress,
        cancel: &CancelToken,
    ) -> Option<Result<ClusterOutput, JobError>> {
        if !self.config.distribute || (self.alive)().is_empty() {
            return None;
        }
        let listing = match crate::jobs::list(job.source.as_ref(), job.options) {
            Ok(listing) => listing,
            Err(e) => return Some(Err(e)),
        };
        let work = match job.source_config {
            SourceConfig::S3(_) if listing.files.is_empty() => return None,
            SourceConfig::S3(_) => Work::Shared(listing),
            SourceConfig::Local => Work::Own {
                coordinator: Listing {
                    own: true,
                    ..listing
                },
                filter: crate::storage::filter::document(&job.options.filter),
            },
        };
        Some(self.run_planned(job, &work, progress, cancel))
    }

    fn run_planned(
        &self,
        job: &ClusterJob<'_>,
        work: &Work,
        progress: &Progress,
        cancel: &CancelToken,
    ) -> Result<ClusterOutput, JobError> {
        let wasm = job.runtime.component_bytes(job.compiled.sha256())?;
        let mut excluded: Vec<String> = Vec::new();
        let mut lost: Vec<Value> = Vec::new();
        let mut missing: Vec<Value> = Vec::new();
        let mut held = Held::new();
        let max_attempts = self.config.max_attempts.max(1);
        for attempt in 1..=max_attempts {
            let members: Vec<MemberView> = (self.alive)()
                .into_iter()
                .filter(|m| !excluded.contains(&m.id))
                .collect();
            let result = self.attempt(
                job, work, &wasm, attempt, members, &mut held, progress, cancel,
            );
            match result {
                Ok((output, costs)) => {
                    let own = matches!(work, Work::Own { .. });
                    let merged = merge(output, costs, attempt, lost, own.then_some(missing));
                    // The job's progress shows every member's files, not only process 0's.
                    if let Some(files) = merged.cost["files_read"].as_u64() {
                        progress.files_done.store(files, Ordering::Relaxed);
                    }
                    return Ok(merged);
                }
                Err(AttemptError::Job(e)) => return Err(e),
                Err(AttemptError::Lost { member, reason }) => {
                    self.members_lost.inc();
                    tracing::warn!(job = job.id, attempt, member = %member.id, address = %member.report.address, %reason, "a member was lost: re-planning");
                    lost.push(json!({
                        "attempt": attempt,
                        "member": member.id,
                        "address": member.report.address,
                        "reason": reason,
                    }));
                    excluded.push(member.id.clone());
                    if matches!(work, Work::Own { .. }) {
                        // Its files are nowhere else: fail, or go on without them.
                        if let Some(gone) = self.own_files_lost(job, &member, &held, &reason)? {
                            missing.push(json!({
                                "attempt": attempt,
                                "member": member.id,
                                "address": member.report.address,
                                "files": gone.files,
                                "bytes": gone.bytes,
                            }));
                        }
                    }
                    if attempt == max_attempts {
                        return Err(JobError::Engine(format!(
                            "cluster job gave up after {max_attempts} attempts (cluster.max_attempts): \
                             member {} ({}) was lost: {reason}",
                            member.id, member.report.address
                        )));
                    }
                }
            }
        }
        Err(JobError::Engine("cluster.max_attempts is 0".into()))
    }

    /// A member lost in a job over a `local` source: the files of the job it held (none: it held
    /// nothing the job reads, so it is simply excluded), or the job's error when it held some
    /// and the manifest does not allow partial results. A member lost before it reported its
    /// matching files counts with every file it last reported.
    fn own_files_lost(
        &self,
        job: &ClusterJob<'_>,
        member: &MemberView,
        held: &Held,
        reason: &str,
    ) -> Result<Option<LocalFiles>, JobError> {
        let files = held.get(&member.id).copied().unwrap_or(LocalFiles {
            files: member.report.data_files,
            bytes: member.report.data_bytes,
            pruned: 0,
        });
        if files.files == 0 {
            return Ok(None);
        }
        if !job.allow_partial {
            return Err(JobError::MemberLost {
                member: member.id.clone(),
                address: member.report.address.clone(),
                files: files.files,
                bytes: files.bytes,
                reason: reason.to_string(),
            });
        }
        tracing::warn!(job = job.id, member = %member.id, files = files.files, "going on without a lost member's files (allow_partial)");
        Ok(Some(files))
    }

    /// One attempt over `members` (none: the coordinator alone). On success: the coordinator's
    /// output and every process's cost report, by process index.
    #[allow(clippy::too_many_arguments)]
    fn attempt(
        &self,
        job: &ClusterJob<'_>,
        work: &Work,
        wasm: &[u8],
        attempt: u32,
        members: Vec<MemberView>,
        held: &mut Held,
        progress: &Progress,
        cancel: &CancelToken,
    ) -> Result<(crate::jobs::JobOutput, Costs), AttemptError> {
        self.attempts.inc();
        let attempt_id = format!("{}-{attempt}", job.id);
        let workers = members
            .iter()
            .map(|m| m.report.workers)
            .chain([job.options.workers.max(1)])
            .min()
            .unwrap_or(1)
            .max(1);
        let own_listing = work.coordinator();
        let mut chosen = Vec::with_capacity(members.len());
        for member in members {
            let (mesh_address, local) =
                self.prepare(&member, job.compiled.sha256(), wasm, work.local_filter())?;
            if let Some(local) = local {
                held.insert(member.id.clone(), local);
            }
            chosen.push(Chosen {
                member,
                mesh_address,
            });
        }
        // Files every process reads together: the shared listing, or the members' own.
        let files_total = match work {
            Work::Shared(listing) => listing.files.len() as u64,
            Work::Own { coordinator, .. } => {
                coordinator.files.len() as u64
                    + chosen
                        .iter()
                        .map(|c| held.get(&c.member.id).map_or(0, |h| h.files))
                        .sum::<u64>()
            }
        };
        if chosen.is_empty() || files_total == 0 {
            // Every worker is gone, or no member holds a file the job reads (then the run says
            // so, or succeeds empty with `allow_empty`): the coordinator runs its listing alone.
            let out = crate::jobs::run_listed(
                &Topology::Local { workers },
                &job.runtime,
                job.compiled,
                job.source.clone(),
                job.options,
                Some(own_listing.clone()),
                progress,
                cancel,
            )
            .map_err(AttemptError::Job)?;
            let cost = serde_json::to_value(&out.cost).unwrap_or_default();
            return Ok((out, vec![("coordinator".into(), "local".into(), cost)]));
        }
        let own_address = MemberRuns::reserve_port(&self.config.mesh_host)
            .map_err(|e| AttemptError::Job(JobError::Engine(e.to_string())))?;
        let mut addresses = vec![own_address.clone()];
        addresses.extend(chosen.iter().map(|c| c.mesh_address.clone()));
        let secret =
            MeshSecret::random().map_err(|e| AttemptError::Job(JobError::Engine(e.to_string())))?;
        let source = match &job.source_config {
            SourceConfig::S3(s3) => SourceConfig::S3(Box::new((**s3).clone().with_env_defaults())),
            other => other.clone(),
        };
        tracing::info!(
            job = job.id,
            attempt,
            processes = addresses.len(),
            workers,
            files = files_total,
            own = matches!(work, Work::Own { .. }),
            "starting a cluster attempt"
        );
        for (i, c) in chosen.iter().enumerate() {
            let plan = AttemptPlan {
                attempt: attempt_id.clone(),
                sha256: job.compiled.sha256().to_string(),
                process: i + 1,
                addresses: addresses.clone(),
                secret: secret.to_hex(),
                workers,
                source: source.clone(),
                listing: match work {
                    Work::Shared(listing) => listing.clone(),
                    Work::Own { .. } => Listing::default(),
                },
                local_filter: work.local_filter().cloned(),
                param: job.options.param.clone(),
                limits: job.options.limits.clone(),
                skip_bad_records: job.options.skip_bad_records,
                sample: job.options.sample.fraction(),
            };
            if let Err(reason) = self.post(&c.member, "/cluster/attempts", &plan) {
                self.cancel_all(&chosen, &attempt_id);
                return Err(AttemptError::Lost {
                    member: Box::new(c.member.clone()),
                    reason,
                });
            }
        }

        let local_cancel = CancelToken::new();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        {
            let topology = Topology::Cluster {
                workers,
                process: 0,
                addresses: addresses.clone(),
                secret,
            };
            let (runtime, compiled, source, options, listing, process_cancel) = (
                job.runtime.clone(),
                job.compiled.clone(),
                job.source.clone(),
                RunOptions {
                    // The other members' files make the job's input; this process's own may be
                    // empty.
                    allow_empty: job.options.allow_empty || matches!(work, Work::Own { .. }),
                    ..job.options.clone()
                },
                own_listing.clone(),
                local_cancel.clone(),
            );
            let shared_progress = Arc::new(Progress::default());
            let progress_copy = shared_progress.clone();
            std::thread::Builder::new()
                .name("cluster-process-0".into())
                .spawn(move || {
                    let result = run_process(
                        &topology,
                        &runtime,
                        &compiled,
                        source,
                        &options,
                        listing,
                        &progress_copy,
                        &process_cancel,
                    );
                    let _ = done_tx.send((result, progress_copy.failure_log()));
                })
                .map_err(|e| AttemptError::Job(JobError::Engine(e.to_string())))?;
            self.watch(
                job,
                &chosen,
                &attempt_id,
                &done_rx,
                (&shared_progress, files_total),
                progress,
                cancel,
                &local_cancel,
            )
            .and_then(|(result, log)| {
                let out = result.map_err(|e| {
                    if let Ok(mut failure) = progress.failure_log.lock() {
                        *failure = log;
                    }
                    AttemptError::Job(e)
                })?;
                let mut costs = vec![(
                    "coordinator".to_string(),
                    own_address.clone(),
                    serde_json::to_value(&out.cost).unwrap_or_default(),
                )];
                costs.extend(self.collect(&chosen, &attempt_id)?);
                Ok((out, costs))
            })
        }
    }

    /// Waits for the coordinator's process while watching the members; aborts the attempt when
    /// one is lost or the job is cancelled.
    #[allow(clippy::too_many_arguments)]
    fn watch(
        &self,
        job: &ClusterJob<'_>,
        chosen: &[Chosen],
        attempt_id: &str,
        done: &std::sync::mpsc::Receiver<(Result<crate::jobs::JobOutput, JobError>, String)>,
        (local_progress, files_total): (&Progress, u64),
        progress: &Progress,
        cancel: &CancelToken,
        local_cancel: &CancelToken,
    ) -> Result<(Result<crate::jobs::JobOutput, JobError>, String), AttemptError> {
        let mut missed = vec![0u32; chosen.len()];
        loop {
            let broken = match done.recv_timeout(POLL) {
                Ok((Err(JobError::Engine(error)), _)) => Some(error),
                Ok(result) => {
                    copy_progress(local_progress, progress, files_total);
                    return Ok(result);
                }
                // timely panics the process's threads when a peer's connection breaks.
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    Some("the coordinator's process of the attempt panicked".to_string())
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
            };
            if let Some(error) = broken {
                // Find the member that was lost, if one was: then the attempt is re-planned.
                self.cancel_all(chosen, attempt_id);
                return Err(match self.find_lost(chosen, attempt_id) {
                    Some((member, reason)) => AttemptError::Lost {
                        member: Box::new(member),
                        reason,
                    },
                    None => AttemptError::Job(JobError::Engine(error)),
                });
            }
            copy_progress(local_progress, progress, files_total);
            if cancel.is_cancelled() {
                tracing::info!(job = job.id, "cancelling every member of the attempt");
                local_cancel.cancel();
                self.cancel_all(chosen, attempt_id);
                self.drain(done);
                return Err(AttemptError::Job(JobError::Cancelled));
            }
            let alive: Vec<String> = (self.alive)().into_iter().map(|m| m.id).collect();
            for (i, c) in chosen.iter().enumerate() {
                let lost = if !alive.contains(&c.member.id) {
                    Some("missed its heartbeats".to_string())
                } else {
                    match self.status(&c.member, attempt_id) {
                        Ok(AttemptStatus::Failed {
                            error,
                            retry: false,
                        }) => {
                            local_cancel.cancel();
                            self.cancel_all(chosen, attempt_id);
                            self.drain(done);
                            return Err(AttemptError::Job(JobError::Member(error)));
                        }
                        Ok(AttemptStatus::Failed { error, .. }) => {
                            // When one member dies, every survivor's process fails too (timely
                            // panics on a broken connection), often before the dead one misses
                            // a poll: blame a member that stopped answering, if one did, not
                            // the first survivor to report.
                            local_cancel.cancel();
                            self.cancel_all(chosen, attempt_id);
                            self.drain(done);
                            let (member, reason) =
                                self.find_lost(chosen, attempt_id).unwrap_or_else(|| {
                                    (c.member.clone(), format!("its process failed: {error}"))
                                });
                            return Err(AttemptError::Lost {
                                member: Box::new(member),
                                reason,
                            });
                        }
                        Ok(_) => {
                            missed[i] = 0;
                            None
                        }
                        Err(e) => {
                            missed[i] += 1;
                            (missed[i] >= MISSED_POLLS).then(|| format!("stopped answering: {e}"))
                        }
                    }
                };
                if let Some(reason) = lost {
                    local_cancel.cancel();
                    self.cancel_all(chosen, attempt_id);
                    self.drain(done);
                    return Err(AttemptError::Lost {
                        member: Box::new(c.member.clone()),
                        reason,
                    });
                }
            }
        }
    }

    /// The member lost in a broken attempt: one that is no longer alive or stops answering
    /// (asked [`MISSED_POLLS`] times), else one whose process failed for a reason another
    /// attempt may not have.
    fn find_lost(&self, chosen: &[Chosen], attempt_id: &str) -> Option<(MemberView, String)> {
        let mut failed = None;
        for round in 1..=MISSED_POLLS {
            let alive: Vec<String> = (self.alive)().into_iter().map(|m| m.id).collect();
            for c in chosen {
                if !alive.contains(&c.member.id) {
                    return Some((c.member.clone(), "missed its heartbeats".into()));
                }
                match self.status(&c.member, attempt_id) {
                    Err(e) if round == MISSED_POLLS => {
                        return Some((c.member.clone(), format!("stopped answering: {e}")))
                    }
                    Ok(AttemptStatus::Failed { error, retry: true }) if failed.is_none() => {
                        failed = Some((c.member.clone(), format!("its process failed: {error}")));
                    }
                    _ => {}
                }
            }
            std::thread::sleep(POLL);
        }
        failed
    }

    /// Waits (bounded) for the coordinator's aborted process to end.
    fn drain(
        &self,
        done: &std::sync::mpsc::Receiver<(Result<crate::jobs::JobOutput, JobError>, String)>,
    ) {
        if done.recv_timeout(DRAIN_WAIT).is_err() {
            tracing::warn!("the coordinator's process of an aborted attempt did not end within {DRAIN_WAIT:?}; left to finish");
        }
    }

    /// Every member's cost report once the attempt succeeded on the coordinator.
    fn collect(&self, chosen: &[Chosen], attempt_id: &str) -> Result<Costs, AttemptError> {
        let deadline = Instant::now() + REPORT_WAIT;
        let mut costs = Vec::with_capacity(chosen.len());
        for c in chosen {
            loop {
                match self.status(&c.member, attempt_id) {
                    Ok(AttemptStatus::Done { cost }) => {
                        costs.push((c.member.id.clone(), c.mesh_address.clone(), cost));
                        break;
                    }
                    Ok(AttemptStatus::Failed {
                        error,
                        retry: false,
                    }) => return Err(AttemptError::Job(JobError::Member(error))),
                    Ok(AttemptStatus::Failed { error, .. }) => {
                        return Err(AttemptError::Lost {
                            member: Box::new(c.member.clone()),
                            reason: format!("its process failed: {error}"),
                        })
                    }
                    Ok(AttemptStatus::Running) | Err(_) if Instant::now() < deadline => {
                        std::thread::sleep(POLL)
                    }
                    other => {
                        return Err(AttemptError::Lost {
                            member: Box::new(c.member.clone()),
                            reason: format!(
                                "no cost report within {REPORT_WAIT:?}: {:?}",
                                other.err()
                            ),
                        })
                    }
                }
            }
        }
        Ok(costs)
    }

    /// Asks `member` for a mesh port (and, with `local_filter`, its own files that match);
    /// uploads the component when it lacks it.
    fn prepare(
        &self,
        member: &MemberView,
        sha256: &str,
        wasm: &[u8],
        local_filter: Option<&Value>,
    ) -> Result<(String, Option<LocalFiles>), AttemptError> {
        let lost = |reason: String| AttemptError::Lost {
            member: Box::new(member.clone()),
            reason,
        };
        let prepared: Prepared = self
            .post(
                member,
                "/cluster/prepare",
                &Prepare {
                    sha256: sha256.to_string(),
                    local_filter: local_filter.cloned(),
                },
            )
            .and_then(|r| r.json().map_err(|e| e.to_string()))
            .map_err(|e| lost(format!("prepare: {e}")))?;
        if !prepared.have_component {
            let response = self
                .client
                .put(url(member, &format!("/cluster/components/{sha256}")))
                .bearer_auth(&member.control_key)
                .timeout(UPLOAD_TIMEOUT)
                .body(wasm.to_vec())
                .send()
                .map_err(|e| lost(format!("uploading the component: {e}")))?;
            checked(response).map_err(|e| lost(format!("uploading the component: {e}")))?;
        }
        if local_filter.is_some() && prepared.local.is_none() {
            return Err(lost(
                "prepare: the worker did not list its own files".into(),
            ));
        }
        Ok((prepared.mesh_address, prepared.local))
    }

    fn post(
        &self,
        member: &MemberView,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<reqwest::blocking::Response, String> {
        let response = self
            .client
            .post(url(member, path))
            .bearer_auth(&member.control_key)
            .json(body)
            .send()
            .map_err(|e| e.to_string())?;
        checked(response)
    }

    fn status(&self, member: &MemberView, attempt_id: &str) -> Result<AttemptStatus, String> {
        let response = self
            .client
            .get(url(member, &format!("/cluster/attempts/{attempt_id}")))
            .bearer_auth(&member.control_key)
            .timeout(Duration::from_secs(2))
            .send()
            .map_err(|e| e.to_string())?;
        checked(response)?.json().map_err(|e| e.to_string())
    }

    /// Tells every member to cancel the attempt (best effort, each request bounded).
    fn cancel_all(&self, chosen: &[Chosen], attempt_id: &str) {
        std::thread::scope(|s| {
            for c in chosen {
                s.spawn(|| {
                    let result = self
                        .client
                        .post(url(&c.member, &format!("/cluster/attempts/{attempt_id}/cancel")))
                        .bearer_auth(&c.member.control_key)
                        .timeout(Duration::from_secs(2))
                        .send();
                    if let Err(e) = result {
                        tracing::debug!(member = %c.member.id, error = %e, "cannot cancel the attempt there");
                    }
                });
            }
        });
    }
}

fn url(member: &MemberView, path: &str) -> String {
    format!("http://{}{path}", member.report.address)
}

fn checked(response: reqwest::blocking::Response) -> Result<reqwest::blocking::Response, String> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let detail = response.text().unwrap_or_default();
    Err(format!(
        "{status}: {}",
        detail.chars().take(500).collect::<String>()
    ))
}

/// The coordinator's process's progress into the job's, with the attempt's `files_total` (every
/// member's files).
fn copy_progress(from: &Progress, to: &Progress, files_total: u64) {
    to.files_total.store(files_total, Ordering::Relaxed);
    for (a, b) in [
        (&from.files_done, &to.files_done),
        (&from.records, &to.records),
        (&from.bytes, &to.bytes),
    ] {
        b.store(a.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// Counters summed over the processes.
const SUMMED: &[&str] = &[
    "files_read",
    "records_read",
    "bytes_read",
    "compressed_bytes_read",
    "bad_records",
    "records_sampled_out",
    "emits",
    "emit_bytes",
    "combine_calls",
    "reduce_calls",
    "instances",
];

/// Counters summed too when each process listed its own files (a `local` source).
const SUMMED_OWN: &[&str] = &["files_matched", "files_pruned"];

/// The coordinator's cost report with the members' counters added, the peaks the largest, and a
/// `cluster` section: attempts, members lost on the way, and each process's files, records and
/// bytes. `missing` is `Some` when each process listed its own storage (a `local` source): the
/// lost members whose files the result lacks (`partial` when there is one).
fn merge(
    out: crate::jobs::JobOutput,
    costs: Costs,
    attempts: u32,
    lost: Vec<Value>,
    missing: Option<Vec<Value>>,
) -> ClusterOutput {
    let mut cost = costs
        .first()
        .map(|c| c.2.clone())
        .unwrap_or_else(|| json!({}));
    let own: &[&str] = if missing.is_some() { SUMMED_OWN } else { &[] };
    for (_, _, other) in costs.iter().skip(1) {
        for key in SUMMED.iter().chain(own) {
            let sum = cost[*key].as_u64().unwrap_or(0) + other[*key].as_u64().unwrap_or(0);
            cost[*key] = sum.into();
        }
        for key in ["peak_guest_memory_bytes", "peak_host_memory_bytes"] {
            let max = cost[key]
                .as_u64()
                .unwrap_or(0)
                .max(other[key].as_u64().unwrap_or(0));
            cost[key] = max.into();
        }
    }
    let map_ms = cost["phases"]["map_ms"].as_f64().unwrap_or(0.0);
    if map_ms > 0.0 {
        cost["mb_per_s"] = (cost["bytes_read"].as_u64().unwrap_or(0) as f64 / 1e3 / map_ms).into();
    }
    let members: Vec<Value> = costs
        .iter()
        .enumerate()
        .map(|(process, (member, address, c))| {
            json!({
                "process": process,
                "member": member,
                "mesh_address": address,
                "files_read": c["files_read"],
                "records_read": c["records_read"],
                "bytes_read": c["bytes_read"],
                "map_ms": c["phases"]["map_ms"],
            })
        })
        .collect();
    cost["cluster"] = json!({
        "attempts": attempts,
        "processes": costs.len(),
        "members": members,
        "lost": lost,
    });
    if let Some(missing) = missing {
        cost["cluster"]["source"] = "local".into();
        cost["cluster"]["partial"] = (!missing.is_empty()).into();
        cost["cluster"]["files_missing"] = missing
            .iter()
            .map(|m| m["files"].as_u64().unwrap_or(0))
            .sum::<u64>()
            .into();
        cost["cluster"]["missing"] = missing.into();
    }
    ClusterOutput {
        output: out.output,
        cost,
        log: out.log,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{CostReport, JobOutput};

    fn cost(files: u64, records: u64, peak: u64) -> Value {
        serde_json::to_value(CostReport {
            files_matched: 10,
            files_read: files,
            records_read: records,
            peak_guest_memory_bytes: peak,
            ..CostReport::default()
        })
        .unwrap()
    }

    #[test]
    fn merging_sums_the_counters_keeps_the_peaks_and_lists_each_process() {
        let out = JobOutput {
            output: b"a\t1\n".to_vec(),
            cost: CostReport::default(),
            log: "hello\n".into(),
        };
        let lost = vec![json!({"attempt": 1, "member": "w-x"})];
        let merged = merge(
            out,
            vec![
                ("coordinator".into(), "127.0.0.1:1".into(), cost(3, 30, 5)),
                ("w-a".into(), "127.0.0.1:2".into(), cost(4, 40, 9)),
                ("w-b".into(), "127.0.0.1:3".into(), cost(3, 31, 2)),
            ],
            2,
            lost.clone(),
            None,
        );
        assert_eq!(merged.output, b"a\t1\n");
        assert_eq!(merged.log, "hello\n");
        let c = &merged.cost;
        assert_eq!(c["files_read"], 10);
        assert_eq!(c["records_read"], 101);
        assert_eq!(c["files_matched"], 10, "the listing is not summed");
        assert_eq!(c["peak_guest_memory_bytes"], 9);
        assert_eq!(c["cluster"]["attempts"], 2);
        assert_eq!(c["cluster"]["processes"], 3);
        assert_eq!(c["cluster"]["lost"], Value::Array(lost));
        let members = c["cluster"]["members"].as_array().unwrap();
        let files: Vec<u64> = members
            .iter()
            .map(|m| m["files_read"].as_u64().unwrap())
            .collect();
        assert_eq!(files, [3, 4, 3]);
        assert_eq!(members[1]["member"], "w-a");
        assert_eq!(members[2]["process"], 2);
        assert!(c["cluster"].get("partial").is_none(), "a shared source");
    }

    #[test]
    fn merging_own_listings_sums_the_matched_files_and_says_what_is_missing() {
        let out = JobOutput {
            output: Vec::new(),
            cost: CostReport::default(),
            log: String::new(),
        };
        let own = |files| {
            let mut c = cost(files, files * 10, 1);
            c["files_matched"] = files.into();
            c["files_pruned"] = 2.into();
            c
        };
        let missing = vec![json!({"member": "w-x", "files": 7, "bytes": 70})];
        let merged = merge(
            out,
            vec![
                ("coordinator".into(), "127.0.0.1:1".into(), own(3)),
                ("w-a".into(), "127.0.0.1:2".into(), own(5)),
            ],
            2,
            Vec::new(),
            Some(missing.clone()),
        );
        let c = &merged.cost;
        assert_eq!(c["files_matched"], 8);
        assert_eq!(c["files_read"], 8);
        assert_eq!(c["files_pruned"], 4);
        assert_eq!(c["cluster"]["source"], "local");
        assert_eq!(c["cluster"]["partial"], true);
        assert_eq!(c["cluster"]["files_missing"], 7);
        assert_eq!(c["cluster"]["missing"], Value::Array(missing));

        let whole = merge(
            JobOutput {
                output: Vec::new(),
                cost: CostReport::default(),
                log: String::new(),
            },
            vec![("coordinator".into(), "127.0.0.1:1".into(), own(3))],
            1,
            Vec::new(),
            Some(Vec::new()),
        );
        assert_eq!(whole.cost["cluster"]["partial"], false);
        assert_eq!(whole.cost["cluster"]["files_missing"], 0);
    }
}
