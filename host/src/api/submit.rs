//! The Bagheera-compatible submission API and the seed's answers for everything else.
//!
//! `POST`/`PUT /submit/<namespace>/<path…>` is checked in the seed's order (docs/api/submission.md):
//! 1. no, bad or zero `Content-Length` → 411 (chunked bodies have none);
//! 2. `Content-Length` over the body limit → 202 (or 413), body not read;
//! 3. unknown prefix or namespace → 404;
//! 4. path over the path limit → 202 (or 414);
//! 5. the body is read, framed as a v2 record with the client IP and the receive time, and appended
//!    to a raw log: 200 once it is in the log (and synced, per the durability mode), 507 when the disk
//!    is full, 503 when the writers are overloaded or shutting down, 500 on another write error;
//!    a body not received within `server.body_read_timeout_secs` gets 408.
//!
//! The stored path is the URL path after `/submit/telemetry/` exactly as sent (not percent-decoded,
//! query dropped), for other namespaces `<namespace>/<rest>`. It is only ever data inside a record,
//! never a file name, so no URL can name a file. `GET /status` is 200; other `GET`s 404; other
//! methods 405. All answers are `text/plain`.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::config::{Config, OversizeStatus};
use crate::ingest::{Record, WriteError};
use crate::rawlog::logname::now_ms;

/// What the stats log needs from a response: raw log bytes written and the message sent.
#[derive(Clone, Debug)]
pub struct StatsNote {
    /// Raw log bytes written for this submission (0 when rejected).
    pub size: usize,
    /// The message sent to the client.
    pub message: Cow<'static, str>,
}

/// A `text/plain` answer carrying its [`StatsNote`].
fn answer(code: StatusCode, message: impl Into<Cow<'static, str>>, size: usize) -> Response {
    let message = message.into();
    let mut response = (
        code,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
        message.clone(),
    )
        .into_response();
    response
        .extensions_mut()
        .insert(StatsNote { size, message });
    response
}

/// `POST`/`PUT /submit/…`.
pub async fn submit(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let received_ms = now_ms();
    let config = &state.config;
    let length = match check_length(request.headers(), config) {
        Ok(length) => length,
        Err((code, message)) => return answer(code, message, 0),
    };
    let (parts, body) = request.into_parts();
    let Some(path) = stored_path(parts.uri.path(), &config.server.namespaces) else {
        return answer(StatusCode::NOT_FOUND, "Not Found", 0);
    };
    let max_path = usize::from(config.server.max_path_length);
    if path.len() > max_path {
        let code = oversize(config, StatusCode::URI_TOO_LONG);
        return answer(
            code,
            format!(
                "Path too long ({} bytes). Limit is {max_path} bytes",
                path.len()
            ),
            0,
        );
    }
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let ip = client_ip(config, &parts.headers, peer);
    let series = state.submissions.key(parts.uri.path());
    let body = match axum::body::to_bytes(body, length as usize).await {
        Ok(body) => body,
        Err(err) if super::listener::is_body_timeout(&err) => {
            return answer(
                StatusCode::REQUEST_TIMEOUT,
                format!("Cannot read request body: {err}"),
                0,
            )
        }
        Err(err) => {
            return answer(
                StatusCode::BAD_REQUEST,
                format!("Cannot read request body: {err}"),
                0,
            )
        }
    };
    let body_len = body.len() as u64;
    let record = Record::v2(received_ms, &ip, &path, body);
    let size = record.len();
    match state.writer.append(record).await {
        Ok(()) => {
            state.metrics.http.received_bytes.inc_by(body_len);
            state.submissions.count(series, body_len);
            answer(StatusCode::OK, "OK", size)
        }
        Err(err @ WriteError::DiskFull(_)) => {
            answer(StatusCode::INSUFFICIENT_STORAGE, err.to_string(), 0)
        }
        Err(err @ (WriteError::Overloaded | WriteError::ShuttingDown)) => {
            let mut response = answer(StatusCode::SERVICE_UNAVAILABLE, err.to_string(), 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
        Err(err @ WriteError::Io(_)) => {
            answer(StatusCode::INTERNAL_SERVER_ERROR, err.to_string(), 0)
        }
    }
}

/// Seed steps 1-2: the `Content-Length` must be present, positive and within the limit.
/// The error is the answer to send.
fn check_length(
    headers: &HeaderMap,
    config: &Config,
) -> Result<u64, (StatusCode, Cow<'static, str>)> {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&n| n > 0)
        .ok_or((
            StatusCode::LENGTH_REQUIRED,
            Cow::Borrowed("Missing content length"),
        ))?;
    let max = u64::from(config.server.max_data_length);
    if length > max {
        let code = oversize(config, StatusCode::PAYLOAD_TOO_LARGE);
        let message = format!("Request too large ({length} bytes). Limit is {max} bytes. Server will discard submission.");
        return Err((code, Cow::Owned(message)));
    }
    Ok(length)
}

fn oversize(config: &Config, http_code: StatusCode) -> StatusCode {
    match config.server.oversize_status {
        OversizeStatus::Seed => StatusCode::ACCEPTED,
        OversizeStatus::Http => http_code,
    }
}

/// The path stored in the record, or `None` when the URL is not under an accepted namespace.
pub fn stored_path<'a>(url_path: &'a str, namespaces: &[String]) -> Option<Cow<'a, str>> {
    let rest = url_path.strip_prefix("/submit/")?;
    let (namespace, tail) = rest.split_once('/')?;
    if !namespaces.iter().any(|ns| ns == namespace) {
        return None;
    }
    if namespace == "telemetry" {
        Some(Cow::Borrowed(tail))
    } else {
        Some(Cow::Borrowed(rest))
    }
}

/// The client IP: the configured proxy header (verbatim, may be a list) when the peer is one of
/// `trusted_proxies`, else the socket peer (fail closed: with no trusted proxy listed nobody may set
/// it); longer than the IP limit → `0.0.0.0`, as in the seed.
fn client_ip(config: &Config, headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    let server = &config.server;
    let from_header = server.client_ip_header.as_deref().and_then(|name| {
        let trusted = peer.is_some_and(|p| server.trusted_proxies.contains(&p.ip()));
        if !trusted {
            return None;
        }
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    });
    let ip = from_header.unwrap_or_else(|| peer.map(|p| p.ip().to_string()).unwrap_or_default());
    if ip.len() > usize::from(server.max_ip_length) {
        tracing::debug!(length = ip.len(), "client IP too long; stored as 0.0.0.0");
        "0.0.0.0".to_string()
    } else {
        ip
    }
}

/// `GET /status`: the load balancer health check.
pub async fn status() -> Response {
    answer(StatusCode::OK, "OK", 0)
}

/// Every request no route matches: `POST`/`PUT /submit/…` is a submission ([`submit`]), the rest
/// goes to [`fallback`]. Submissions are matched here rather than by a `/submit/{*path}` route,
/// which would percent-decode the path into a route parameter on every request (unused: the stored
/// path is the raw one). Other methods on `/submit/<something>` answer as that route's method
/// fallback did, with `Allow: POST,PUT`.
pub async fn unrouted(state: State<Arc<AppState>>, request: Request) -> Response {
    let under_submit = request
        .uri()
        .path()
        .strip_prefix("/submit/")
        .is_some_and(|rest| !rest.is_empty());
    let method = request.method();
    if !under_submit {
        return fallback(state, request).await;
    }
    if method == Method::POST || method == Method::PUT {
        return submit(state, request).await;
    }
    let mut response = fallback(state, request).await;
    response
        .headers_mut()
        .entry(header::ALLOW)
        .or_insert(HeaderValue::from_static("POST,PUT"));
    response
}

/// Every other path or method: `POST`/`PUT` go through the seed's length checks then 404; `GET` 404;
/// anything else 405.
pub async fn fallback(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let method = request.method();
    if method == Method::POST || method == Method::PUT {
        if let Err((code, message)) = check_length(request.headers(), &state.config) {
            return answer(code, message, 0);
        }
        return answer(StatusCode::NOT_FOUND, "Not Found", 0);
    }
    if method == Method::GET {
        return answer(StatusCode::NOT_FOUND, "Not Found", 0);
    }
    answer(StatusCode::METHOD_NOT_ALLOWED, "Wrong request type", 0)
}

/// Middleware on every route: counts responses by code, times submissions, writes the stats log.
pub async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let is_submission = request.uri().path().starts_with("/submit/");
    let url = state.stats_log.as_ref().map(|_| request.uri().to_string());
    let response = next.run(request).await;
    let code = response.status().as_u16();
    state.metrics.count_response(code);
    let elapsed = start.elapsed();
    if is_submission {
        state.metrics.http.latency.observe(elapsed.as_secs_f64());
    }
    if let (Some(log), Some(url)) = (&state.stats_log, url) {
        let (size, message) = match response.extensions().get::<StatsNote>() {
            Some(note) => (note.size, note.message.as_ref()),
            None => (0, response.status().canonical_reason().unwrap_or("")),
        };
        log.log(url, elapsed.as_secs_f64() * 1000.0, code, size, message);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_paths_follow_the_seed() {
        let ns = vec!["telemetry".to_string(), "sslreports".to_string()];
        assert_eq!(
            stored_path("/submit/telemetry/abc/main/Firefox", &ns).as_deref(),
            Some("abc/main/Firefox")
        );
        assert_eq!(stored_path("/submit/telemetry/", &ns).as_deref(), Some(""));
        assert_eq!(
            stored_path("/submit/sslreports/x", &ns).as_deref(),
            Some("sslreports/x")
        );
        assert_eq!(
            stored_path("/submit/telemetry/..%2F..%2Fetc", &ns).as_deref(),
            Some("..%2F..%2Fetc")
        );
        assert_eq!(stored_path("/submit/telemetry", &ns), None);
        assert_eq!(stored_path("/submit/other/x", &ns), None);
        assert_eq!(stored_path("/status", &ns), None);
    }

    #[test]
    fn client_ip_prefers_a_trusted_header_and_caps_length() {
        let mut config = Config::default();
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.2.3.4, 10.0.0.1"),
        );
        assert_eq!(
            client_ip(&config, &headers, Some(peer)),
            "10.0.0.1",
            "header ignored unless configured"
        );
        config.server.client_ip_header = Some("X-Forwarded-For".into());
        assert_eq!(
            client_ip(&config, &headers, Some(peer)),
            "10.0.0.1",
            "no trusted proxy: nobody may set it"
        );
        config.server.trusted_proxies = vec!["10.9.9.9".parse().unwrap()];
        assert_eq!(
            client_ip(&config, &headers, Some(peer)),
            "10.0.0.1",
            "untrusted peer"
        );
        config.server.trusted_proxies.push(peer.ip());
        assert_eq!(
            client_ip(&config, &headers, Some(peer)),
            "1.2.3.4, 10.0.0.1"
        );
        config.server.max_ip_length = 5;
        assert_eq!(client_ip(&config, &headers, Some(peer)), "0.0.0.0");
    }
}
