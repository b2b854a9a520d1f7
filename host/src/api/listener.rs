//! The accept loop and the per-connection deadlines of the HTTP server.
//!
//! [`serve`] takes the bound listener and the router and serves HTTP/1.1 until told to stop.
//! It replaces `axum::serve`, which has no connection cap and no timeouts (issue 11: 150 idle
//! sockets stayed open for 45 s; with the fd limit at 256, 300 idle sockets made normal POSTs time
//! out). Shaped like mini-redis's `Listener`/`Handler`:
//!
//! - **connection cap with back-pressure**: a permit of a [`Semaphore`] of `max_connections` is
//!   taken *before* `accept`, moved into the connection task and given back when it ends, so at the
//!   cap the server simply stops accepting (new clients wait in the kernel backlog);
//! - **header-read timeout**: from the first byte of a request head to the request reaching the
//!   router (slowloris clients dripping header bytes);
//! - **idle timeout**: no request in flight and no byte moving (a socket that never sends, a
//!   keep-alive connection between requests, a client that stopped reading its response);
//! - **body-read timeout**: [`TimedBody`] fails the request body once `body_read_timeout` has
//!   passed since its head arrived (the submission API then answers 408).
//!
//! A small watchdog per connection checks the first two; the connection is dropped (closed) when
//! one passes. Every bound has a metric in [`ConnectionMetrics`]. Accept errors (such as `EMFILE`)
//! back off from 10 ms to 1 s and never stop the loop. On stop, every connection is asked to
//! finish its request and close ([`hyper`]'s graceful shutdown); [`Drain`] resolves when all did.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Sleep;

use crate::config::ServerConfig;

/// The connection limits of `[server]`, as durations.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// First byte of a request head → the request reaches the router.
    pub header_read_timeout: Duration,
    /// No request in flight and no byte moving.
    pub idle_timeout: Duration,
    /// Request head → end of its body.
    pub body_read_timeout: Duration,
}

impl ConnectionLimits {
    /// The limits configured in `[server]`.
    pub fn from_config(server: &ServerConfig) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: server.max_connections.max(1),
            header_read_timeout: Duration::from_secs(server.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(server.idle_timeout_secs),
            body_read_timeout: Duration::from_secs(server.body_read_timeout_secs),
        }
    }
}

/// File descriptors the server needs besides its connections (logs, storage, the job service).
const SPARE_FDS: u64 = 64;

/// Warns when `max_connections` plus some spare descriptors exceed the process's soft limit on
/// open files: the cap would then not keep `accept` from failing with `EMFILE`.
pub fn check_fd_limit(max_connections: usize) {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if let Some(soft) = limit.current {
        if max_connections as u64 + SPARE_FDS > soft {
            tracing::warn!(
                max_connections,
                open_files_limit = soft,
                "server.max_connections is close to or above the open-files limit (ulimit -n); \
                 lower it or raise the limit so the connection cap, not EMFILE, bounds connections"
            );
        }
    }
}

/// Label set `{kind="header"}`: which deadline closed a connection or cut a body.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TimeoutLabel {
    /// `header`, `idle` or `body`.
    pub kind: &'static str,
}

/// Connection metrics ([`ConnectionMetrics::register`]).
#[derive(Clone, Default)]
pub struct ConnectionMetrics {
    /// Connections open now (`telemetry_http_open_connections`).
    pub open: Gauge,
    /// Connections accepted (`telemetry_http_connections_accepted_total`).
    pub accepted: Counter,
    /// Times the accept loop found every connection permit taken and stopped accepting until one
    /// was given back (`telemetry_http_connections_throttled_total`).
    pub throttled: Counter,
    /// Connections closed or bodies cut by a deadline (`telemetry_http_timeouts_total{kind}`).
    pub timeouts: Family<TimeoutLabel, Counter>,
    /// Failed `accept` calls, such as `EMFILE` (`telemetry_http_accept_errors_total`).
    pub accept_errors: Counter,
    /// `timeouts{kind="body"}`, looked up once (at the first request) rather than per request.
    body_timeouts: Arc<std::sync::OnceLock<Counter>>,
}

impl ConnectionMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut prometheus_client::registry::Registry) -> ConnectionMetrics {
        let metrics = ConnectionMetrics::default();
        registry.register(
            "http_open_connections",
            "HTTP connections open now",
            metrics.open.clone(),
        );
        registry.register(
            "http_connections_accepted",
            "HTTP connections accepted",
            metrics.accepted.clone(),
        );
        registry.register(
            "http_connections_throttled",
            "Times every connection permit (server.max_connections) was taken and accepting paused",
            metrics.throttled.clone(),
        );
        registry.register(
            "http_timeouts",
            "Connections closed (header, idle) or request bodies cut (body) by a deadline",
            metrics.timeouts.clone(),
        );
        registry.register(
            "http_accept_errors",
            "Failed accept calls (e.g. out of file descriptors)",
            metrics.accept_errors.clone(),
        );
        metrics
    }

    fn timed_out(&self, kind: &'static str) {
        self.timeouts.get_or_create(&TimeoutLabel { kind }).inc();
    }

    /// The counter of request bodies cut by their deadline.
    fn body_timeouts(&self) -> Counter {
        self.body_timeouts
            .get_or_init(|| {
                self.timeouts
                    .get_or_create(&TimeoutLabel { kind: "body" })
                    .clone()
            })
            .clone()
    }
}

/// Resolves once every connection task has ended (each holds a permit until then).
pub struct Drain {
    permits: Arc<Semaphore>,
    max: usize,
    force: watch::Sender<bool>,
}

impl Drain {
    /// Waits until every connection has closed.
    pub async fn wait(&self) {
        let max = u32::try_from(self.max).unwrap_or(u32::MAX);
        let _all = self.permits.acquire_many(max).await;
    }

    /// Closes every remaining connection now (the grace period is over).
    pub fn force_close(&self) {
        let _ = self.force.send(true);
    }
}

/// Serves `app` on `listener` until `stop` turns true; returns a [`Drain`] to wait for the
/// connections still open (they were told to finish their request and close).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    metrics: ConnectionMetrics,
    mut stop: watch::Receiver<bool>,
) -> Drain {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (force, force_rx) = watch::channel(false);
    let mut backoff = Duration::from_millis(10);
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                metrics.throttled.inc();
                tracing::debug!(
                    max = limits.max_connections,
                    "connection cap reached; not accepting"
                );
                tokio::select! {
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = Duration::from_millis(10);
                accepted
            }
            Err(error) => {
                // Often EMFILE/ENFILE: resolves as connections close; never stop serving.
                metrics.accept_errors.inc();
                tracing::warn!(%error, backoff_ms = backoff.as_millis() as u64, "accept failed");
                drop(permit);
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        metrics.accepted.inc();
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            app: app.clone(),
            limits,
            metrics: metrics.clone(),
            stop: stop.clone(),
            force: force_rx.clone(),
        };
        tokio::spawn(async move {
            connection.metrics.open.inc();
            connection.run(stream, peer).await;
            connection.metrics.open.dec();
            drop(permit);
        });
    }
    Drain {
        permits,
        max: limits.max_connections,
        force,
    }
}

/// One accepted connection: the hyper connection plus its watchdog.
struct Connection {
    app: Router,
    limits: ConnectionLimits,
    metrics: ConnectionMetrics,
    /// Turns true on shutdown: finish the request in flight, then close.
    stop: watch::Receiver<bool>,
    /// Turns true when the grace period is over: close now.
    force: watch::Receiver<bool>,
}

impl Connection {
    async fn run(&self, stream: TcpStream, peer: SocketAddr) {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(ActivityIo {
            inner: stream,
            activity: activity.clone(),
        });
        let app = self.app.clone();
        let body_timeout = self.limits.body_read_timeout;
        let metrics = self.metrics.clone();
        let service_activity = activity.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let app = app.clone();
            let busy = service_activity.begin_request();
            let timeouts = metrics.body_timeouts();
            async move {
                let _busy = busy;
                let (mut parts, body) = request.into_parts();
                parts.extensions.insert(ConnectInfo(peer));
                let body = axum::body::Body::new(TimedBody::new(body, body_timeout, timeouts));
                let request = axum::http::Request::from_parts(parts, body);
                let response = tower_service::Service::call(&mut app.clone(), request).await;
                Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(io, service);
        tokio::pin!(connection);
        let tick = (self
            .limits
            .header_read_timeout
            .min(self.limits.idle_timeout)
            / 4)
        .clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut watchdog = tokio::time::interval(tick);
        watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop = self.stop.clone();
        let mut force = self.force.clone();
        let mut stopping = *stop.borrow();
        if stopping {
            connection.as_mut().graceful_shutdown();
        }
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, %peer, "connection ended with an error");
                    }
                    return;
                }
                _ = stop.wait_for(|s| *s), if !stopping => {
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
                _ = force.wait_for(|f| *f) => return,
                _ = watchdog.tick() => {
                    if let Some(kind) = activity.expired(self.limits.header_read_timeout, self.limits.idle_timeout) {
                        self.metrics.timed_out(kind);
                        tracing::debug!(%peer, kind, "closing connection: timeout");
                        return;
                    }
                }
            }
        }
    }
}

/// What the watchdog needs to know about a connection, updated by [`ActivityIo`] and the service.
struct Activity {
    start: Instant,
    /// Milliseconds since `start` of the last byte read or written.
    last_io_ms: AtomicU64,
    /// Milliseconds since `start` (+1) of the first byte of the request head being read; 0: none.
    head_started_ms: AtomicU64,
    /// Requests being handled (between reaching the router and its answer).
    busy: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn read(&self, bytes: usize) {
        let now = self.now_ms();
        self.last_io_ms.store(now, Ordering::Relaxed);
        if bytes > 0 && self.busy.load(Ordering::Relaxed) == 0 {
            // Bytes while no request is in flight start a request head.
            let _ = self.head_started_ms.compare_exchange(
                0,
                now + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    fn wrote(&self) {
        self.last_io_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A request reached the router: its head is complete.
    fn begin_request(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::Relaxed);
        self.head_started_ms.store(0, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// Which deadline has passed, if any.
    fn expired(&self, header: Duration, idle: Duration) -> Option<&'static str> {
        if self.busy.load(Ordering::Relaxed) > 0 {
            return None; // the body deadline and the handler own this time
        }
        let now = self.now_ms();
        let head = self.head_started_ms.load(Ordering::Relaxed);
        if head > 0 && now.saturating_sub(head - 1) > header.as_millis() as u64 {
            return Some("header");
        }
        let last = self.last_io_ms.load(Ordering::Relaxed);
        if head == 0 && now.saturating_sub(last) > idle.as_millis() as u64 {
            return Some("idle");
        }
        None
    }
}

/// A request in flight; ends when dropped.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.last_io_ms.store(self.0.now_ms(), Ordering::Relaxed);
    }
}

/// The socket, noting every byte read or written in an [`Activity`].
struct ActivityIo {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for ActivityIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if matches!(result, Poll::Ready(Ok(()))) && read > 0 {
            self.activity.read(read);
        }
        result
    }
}

impl AsyncWrite for ActivityIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The request body took longer than `server.body_read_timeout_secs`.
#[derive(Debug, thiserror::Error)]
#[error("request body not received within {0:?} (server.body_read_timeout_secs)")]
pub struct BodyTimeout(pub Duration);

/// Whether `error` (or an error in its source chain) is a [`BodyTimeout`].
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<BodyTimeout>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// A request body that fails with [`BodyTimeout`] once its deadline has passed.
///
/// The timer is only armed when the body first has to wait for bytes: a body already received
/// with its head (the common case for a submission) costs no timer.
pub struct TimedBody<B> {
    inner: B,
    timeout: Duration,
    deadline: tokio::time::Instant,
    timer: Option<Pin<Box<Sleep>>>,
    expired: bool,
    /// `telemetry_http_timeouts_total{kind="body"}`.
    metric: Counter,
}

impl<B> TimedBody<B> {
    /// `inner`, to be received completely within `timeout` from now.
    pub fn new(inner: B, timeout: Duration, metric: Counter) -> TimedBody<B> {
        TimedBody {
            inner,
            timeout,
            // As `tokio::time::sleep`: a timeout too large for the clock is ~30 years.
            deadline: {
                let now = tokio::time::Instant::now();
                now.checked_add(timeout)
                    .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
            },
            timer: None,
            expired: false,
            metric,
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout)))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|r| r.map_err(Into::into))),
            Poll::Pending => {
                let deadline = this.deadline;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.as_mut().poll(cx).is_ready() {
                    this.expired = true;
                    this.metric.inc();
                    return Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout)))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
