//! The WASI 0.2 a job sees, and why no WASI call can hold a worker past a deadline.
//!
//! [`context`] grants nothing: no preopened directories, no environment, arguments or cwd, TCP,
//! UDP and name lookup denied, stdin closed, stdout and stderr into the capped job log.
//!
//! [`add_to_linker`] links wasmtime-wasi's synchronous WASI, then replaces `wasi:io/poll` — the
//! one place where WASI waits (`pollable.block`, `poll`; a Rust `thread::sleep` or a
//! `monotonic-clock` subscription ends there). Epoch interruption cannot stop a guest that is
//! inside a host call, so wasmtime's own implementation would sleep for as long as the guest
//! asks, ignoring the call time limit, the wall-time limit and cancellation (and so holding a
//! scheduler runner and server shutdown). Ours waits on the same pollable but races it against
//! [`State::stop_now`](super::guest::State::stop_now), checked every [`WAIT_CHECK`]: when the job is
//! cancelled or a deadline passes, the call returns that `Stop` as a trap and the job ends with
//! `Cancelled` or `LimitExceeded` exactly as if the guest had been spinning. A short wait that
//! finishes first behaves as in any WASI host, so guests that sleep briefly still work.
//!
//! The stream methods that wait (`blocking-read`, `blocking-write-and-flush`, …) are left as
//! wasmtime implements them because no stream a job can reach ever waits: stdin is closed (reads
//! end at once), stdout and stderr go to an in-memory log that is always ready, there are no
//! files, and sockets cannot be created or connected. A capability that adds a stream that can
//! wait must route it through the same race.

use super::guest::{Shared, State};
use super::joblog::LogStream;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Linker, Resource, ResourceType};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};
use wasmtime_wasi_io::bindings::wasi::io::poll as wasi_poll;

/// The `wasi:io/poll` instance wasmtime-wasi links (the version of its WIT), which we replace.
/// Guests built against any 0.2.x release import it through semver matching.
pub(crate) const POLL_INTERFACE: &str = "wasi:io/poll@0.2.12";

/// How often a waiting WASI call checks for cancellation and deadlines: the latency of cancel
/// and of the time limits while a guest waits.
pub(crate) const WAIT_CHECK: Duration = Duration::from_millis(10);

/// A WASI context that grants nothing but output into the job log.
pub(crate) fn context(log: LogStream) -> WasiCtx {
    WasiCtxBuilder::new()
        .stdout(log.clone())
        .stderr(log)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

/// Adds WASI 0.2 to `linker`, with `wasi:io/poll` bounded by the job's deadlines and cancel.
pub(crate) fn add_to_linker(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    // Replacing an instance wasmtime-wasi did not link (after an upgrade that moved the WASI
    // version) would leave its unbounded `poll` in place: make that a loud error instead. With
    // shadowing off, defining `poll` again fails exactly when wasmtime-wasi linked it.
    let probe = linker
        .instance(POLL_INTERFACE)?
        .func_wrap("poll", |_, (): ()| Ok(()));
    if probe.is_ok() {
        wasmtime::bail!(
            "wasmtime-wasi does not link `{POLL_INTERFACE}`: update jobs::wasi::POLL_INTERFACE"
        );
    }
    linker.allow_shadowing(true);
    let mut poll = linker.instance(POLL_INTERFACE)?;
    poll.resource(
        "pollable",
        ResourceType::host::<DynPollable>(),
        |mut store, rep| {
            wasi_poll::HostPollable::drop(store.data_mut().table_mut(), Resource::new_own(rep))
        },
    )?;
    poll.func_wrap(
        "[method]pollable.ready",
        |mut store, (pollable,): (Resource<DynPollable>,)| {
            // `ready` never waits, but it is async in wasmtime-wasi-io: run it to completion.
            let ready = wasmtime_wasi::runtime::in_tokio(wasi_poll::HostPollable::ready(
                store.data_mut().table_mut(),
                pollable,
            ))?;
            Ok((ready,))
        },
    )?;
    poll.func_wrap(
        "[method]pollable.block",
        |mut store, (pollable,): (Resource<DynPollable>,)| {
            let (table, shared, call_deadline) = store.data_mut().table_and_deadline();
            until_stopped(
                &shared,
                call_deadline,
                wasi_poll::HostPollable::block(table, pollable),
            )??;
            Ok(())
        },
    )?;
    poll.func_wrap(
        "poll",
        |mut store, (pollables,): (Vec<Resource<DynPollable>>,)| {
            let (table, shared, call_deadline) = store.data_mut().table_and_deadline();
            let ready = until_stopped(
                &shared,
                call_deadline,
                wasi_poll::Host::poll(table, pollables),
            )??;
            Ok((ready,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Runs `wait` until it finishes or the running call must stop (cancel, wall time, call time),
/// whichever comes first; the stop is returned as an error the caller raises as a trap.
fn until_stopped<F: Future>(
    shared: &Arc<Shared>,
    call_deadline: Instant,
    wait: F,
) -> Result<F::Output, wasmtime::Error> {
    let stopped = async {
        loop {
            if let Some(stop) = State::stop_now(shared, call_deadline) {
                return stop;
            }
            tokio::time::sleep(WAIT_CHECK).await;
        }
    };
    wasmtime_wasi::runtime::in_tokio(async {
        tokio::select! {
            biased;
            done = wait => Ok(done),
            stop = stopped => Err(wasmtime::Error::from(stop)),
        }
    })
}
