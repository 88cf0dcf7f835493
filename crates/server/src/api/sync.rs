//! Sync (`POST /v1/sync`: one exchange, answered in a group commit) and a record's document
//! (`GET /v1/records/{id}`).

use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::read_body;
use crate::error::AppError;
use crate::state::{AppState, authenticate, precheck};
use crate::sync::{Answer, Exchange};

/// The content type of sync frames.
pub const SYNC_CONTENT_TYPE: &str = "application/x-sanjin-sync";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/sync", post(sync))
        .route("/v1/records/{id}", get(record))
}

async fn sync(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let started = Instant::now();
    let authorization = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // Issue 10: who sends is checked before the body is even read; a body is decoded only for
    // a known device, by at most `decode_permits()` decodes at once, each bounded by its
    // frame's payload bound (streaming zstd, `protocol::payload_bound`).
    precheck(&state, authorization.as_deref()).await?;
    let body = read_body(&headers, body, state.0.body_limit).await?;
    let req = state.0.decodes.decode(body).await?;
    let request_id = req.request_id;
    let (caller, answer) = state
        .exchange(Exchange {
            authorization,
            request: req,
        })
        .await?;
    // Large answers are encoded (compressed) outside the writer lock.
    let out = match answer {
        Answer::Stored(out) => out,
        Answer::Fresh {
            response,
            mut outcome,
            remember,
        } => {
            outcome.response = tokio::task::spawn_blocking(move || response.encode())
                .await
                .map_err(|e| AppError::Internal(format!("encoding failed: {e}")))?;
            if remember {
                let device = caller.device_id.clone();
                let bytes = outcome.response.clone();
                state
                    .with_data(move |d| d.remember(&device, &request_id, &bytes))
                    .await?
                    .map_err(AppError::from)?;
            }
            outcome
        }
    };
    tracing::info!(
        device = %caller.device_id,
        member = %caller.account.member,
        pushed = out.pushed,
        accepted = out.accepted,
        refused = out.refused,
        pulled_docs = out.pulled_docs,
        pulled_bytes = out.pulled_bytes,
        response_bytes = out.response.len(),
        cursor = out.cursor,
        more = out.more,
        resync = out.resync,
        am_sync_in = out.am_sync_in,
        am_sync_out = out.am_sync_out,
        replayed = out.replayed,
        ms = started.elapsed().as_millis() as u64,
        "sync"
    );
    Ok(([(CONTENT_TYPE, SYNC_CONTENT_TYPE)], out.response).into_response())
}

async fn record(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let caller = authenticate(&state, &headers).await?;
    let device = caller.device_id.clone();
    let doc_id = id.clone();
    let bytes = state.with_data(move |d| d.record(&caller, &id)).await??;
    tracing::info!(device = %device, doc = %doc_id, bytes = bytes.len(), "record fetched");
    Ok(([(CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}
