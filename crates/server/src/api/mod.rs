//! The device API (docs/PROTOCOL.md), one module per area: enrollment and device keys
//! (`enroll`), sync and record fetches (`sync`). Photo originals are `crate::blobs`.

pub(crate) mod bundle;
pub(crate) mod enroll;
pub(crate) mod sync;
pub(crate) mod trust;

use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;

use crate::error::AppError;
use crate::state::AppState;

fn too_large(limit: usize) -> AppError {
    AppError::TooLarge(format!("the body is larger than {limit} bytes"))
}

/// Reads a body of at most `limit` bytes: a larger one is refused as soon as its
/// `Content-Length` says so, or as soon as more than `limit` bytes arrived.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, AppError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let mut body = body;
    let mut out = Vec::with_capacity(declared.unwrap_or(0).min(limit as u64) as usize);
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| AppError::BadMessage(format!("the body could not be read: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(too_large(limit));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(out))
}

pub(crate) fn json_error(state: &AppState, e: JsonRejection) -> AppError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(state.0.body_limit)
    } else {
        AppError::BadMessage(e.body_text())
    }
}
