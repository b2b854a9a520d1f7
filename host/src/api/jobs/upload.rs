//! Reads a multipart upload (`component` = the Wasm component, `manifest` = the job manifest JSON)
//! with a size cap per part, streaming, so an oversize upload is refused after `limit + 1` bytes
//! instead of being buffered whole.

use axum::extract::multipart::{Field, Multipart, MultipartRejection};
use bytes::{Bytes, BytesMut};

use super::error::ApiError;
use super::types::Manifest;

/// Size caps of the two parts.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// Largest `component` part.
    pub component_bytes: u64,
    /// Largest `manifest` part.
    pub manifest_bytes: u64,
}

/// The parts of an upload that were present.
#[derive(Debug, Default)]
pub struct Upload {
    /// The component bytes.
    pub component: Option<Bytes>,
    /// The parsed manifest.
    pub manifest: Option<Manifest>,
}

/// Reads every part; unknown, repeated or oversize parts and a manifest that does not parse are a 400
/// naming the problem.
pub async fn read_upload(
    multipart: Result<Multipart, MultipartRejection>,
    limits: UploadLimits,
) -> Result<Upload, ApiError> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::bad(
            "bad_multipart",
            format!("expected a multipart/form-data body: {}", e.body_text()),
        )
    })?;
    let read = read_parts(&mut multipart, limits).await;
    if read.is_err() {
        drain_parts(multipart).await;
    }
    read
}

/// Most bytes of a refused (unauthenticated) upload read away after the answer.
pub const REFUSED_DRAIN_BYTES: u64 = 1 << 20;

/// Reads and drops at most [`REFUSED_DRAIN_BYTES`] of an upload refused before its body was read,
/// so a client still sending gets to read the error instead of a reset connection; the rest is
/// never read (the connection closes).
pub async fn drain(multipart: Result<Multipart, MultipartRejection>) {
    let Ok(mut multipart) = multipart else { return };
    let mut read = 0u64;
    while let Ok(Some(mut field)) = multipart.next_field().await {
        while let Ok(Some(chunk)) = field.chunk().await {
            read += chunk.len() as u64;
            if read > REFUSED_DRAIN_BYTES {
                return;
            }
        }
    }
}

async fn drain_parts(mut multipart: Multipart) {
    while let Ok(Some(mut field)) = multipart.next_field().await {
        while let Ok(Some(_)) = field.chunk().await {}
    }
}

async fn read_parts(multipart: &mut Multipart, limits: UploadLimits) -> Result<Upload, ApiError> {
    let mut upload = Upload::default();
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "component" => {
                if upload.component.is_some() {
                    return Err(ApiError::bad("bad_multipart", "more than one 'component' part"));
                }
                let bytes = read_capped(field, limits.component_bytes, |limit| {
                    ApiError::bad(
                        "component_too_large",
                        format!("the component is larger than the limit of {limit} bytes (jobs.max_component_bytes)"),
                    )
                })
                .await?;
                upload.component = Some(bytes);
            }
            "manifest" => {
                if upload.manifest.is_some() {
                    return Err(ApiError::bad("bad_multipart", "more than one 'manifest' part"));
                }
                let bytes = read_capped(field, limits.manifest_bytes, |limit| {
                    ApiError::bad("bad_manifest", format!("the manifest is larger than the limit of {limit} bytes"))
                })
                .await?;
                let manifest = serde_json::from_slice(&bytes)
                    .map_err(|e| ApiError::bad("bad_manifest", format!("the manifest is not valid: {e}")))?;
                upload.manifest = Some(manifest);
            }
            other => {
                return Err(ApiError::bad(
                    "bad_multipart",
                    format!("unexpected part '{other}': expected 'component' (the .wasm file) and 'manifest' (JSON)"),
                ))
            }
        }
    }
    Ok(upload)
}

async fn read_capped(
    mut field: Field<'_>,
    limit: u64,
    too_big: impl Fn(u64) -> ApiError,
) -> Result<Bytes, ApiError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(too_big(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    ApiError::bad(
        "bad_multipart",
        format!("cannot read the multipart body: {}", e.body_text()),
    )
}
