//! The seed histogram server's endpoints (docs/formats/histograms.md), served from the revision cache:
//! `GET /histograms?revision=<url>` (patched Histograms.json text) and
//! `GET /histogram_buckets?revision=<url>` (bucket spec JSON). `HEAD` answers 200. Lookups run on
//! the blocking pool: they may read spec files or fetch from the histogram server.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::histograms::{bucket_spec_string, ResolveError};

type Params = Query<Vec<(String, String)>>;

/// `GET /histograms?revision=…`.
pub async fn definitions(State(state): State<Arc<AppState>>, Query(params): Params) -> Response {
    blocking(move || answer(&params, |url| state.revisions.text_by_url(url))).await
}

/// `GET /histogram_buckets?revision=…`.
pub async fn buckets(State(state): State<Arc<AppState>>, Query(params): Params) -> Response {
    blocking(move || {
        answer(&params, |url| {
            state
                .revisions
                .by_url(url)
                .map(|defs| bucket_spec_string(&defs))
        })
    })
    .await
}

/// Runs a lookup off the async runtime: it may read spec files or fetch from the histogram server.
async fn blocking(lookup: impl FnOnce() -> Response + Send + 'static) -> Response {
    tokio::task::spawn_blocking(lookup)
        .await
        .unwrap_or_else(|err| {
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("histogram lookup failed: {err}"),
            )
        })
}

/// `HEAD` on either path: 200, as the seed did.
pub async fn head() -> StatusCode {
    StatusCode::OK
}

fn answer(
    params: &[(String, String)],
    lookup: impl FnOnce(&str) -> Result<String, ResolveError>,
) -> Response {
    // Only the first `revision` value counts (the seed's `parse_qs(...)["revision"][0]`).
    let Some((_, revision)) = params.iter().find(|(k, _)| k == "revision") else {
        return text(
            StatusCode::BAD_REQUEST,
            "Must provide a revision URL".to_string(),
        );
    };
    match lookup(revision) {
        Ok(body) => text(StatusCode::OK, body),
        Err(ResolveError::NotFound(_)) => text(
            StatusCode::NOT_FOUND,
            format!("Not Found: {}", shorten(revision)),
        ),
        Err(ResolveError::InvalidUrl(_)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Invalid revision URL: {}", shorten(revision)),
        ),
        Err(err) => text(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    }
}

/// Longest part of a client's revision echoed in an answer.
const ECHO_BYTES: usize = 256;

/// The client's revision as echoed: at most [`ECHO_BYTES`] (a URL can be megabytes long).
fn shorten(revision: &str) -> String {
    if revision.len() <= ECHO_BYTES {
        return revision.to_owned();
    }
    let mut end = ECHO_BYTES;
    while !revision.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &revision[..end], revision.len())
}

fn text(code: StatusCode, body: String) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain")], body).into_response()
}
