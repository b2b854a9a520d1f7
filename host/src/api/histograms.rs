//! The seed histogram server's endpoints (seed reference §6.3), served from the revision cache:
//! `GET /histograms?revision=<url>` (patched Histograms.json text) and
//! `GET /histogram_buckets?revision=<url>` (bucket spec JSON). `HEAD` answers 200.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::histograms::{bucket_spec_string, ResolveError};

type Params = Query<Vec<(String, String)>>;

/// `GET /histograms?revision=…`.
pub async fn definitions(State(state): State<Arc<AppState>>, Query(params): Params) -> Response {
    answer(&params, |url| state.revisions.text_by_url(url))
}

/// `GET /histogram_buckets?revision=…`.
pub async fn buckets(State(state): State<Arc<AppState>>, Query(params): Params) -> Response {
    answer(&params, |url| {
        state
            .revisions
            .by_url(url)
            .map(|defs| bucket_spec_string(&defs))
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
        Err(ResolveError::NotFound(_)) => {
            text(StatusCode::NOT_FOUND, format!("Not Found: {revision}"))
        }
        Err(err) => text(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    }
}

fn text(code: StatusCode, body: String) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain")], body).into_response()
}
