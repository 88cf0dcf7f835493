//! The HTTP surface (docs/PROTOCOL.md): `GET /health`, `POST /v1/enroll`, `POST /v1/sync`,
//! `GET /v1/records/{id}`. [`app`] builds the router; it needs no socket, so tests drive it with
//! `tower::ServiceExt::oneshot`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sanjin_core::protocol::{self, DecodeError, SyncRequest};

use crate::data::ServerData;
use crate::error::AppError;
use crate::model::{Caller, EnrollRequest, Enrollment};
use crate::sync::{Answer, Exchange};

/// The most exchanges written in one group commit.
const MAX_GROUP: usize = 128;

type Waiting = (
    Exchange,
    tokio::sync::oneshot::Sender<Result<(Caller, Answer), AppError>>,
);

/// The content type of sync frames.
pub const SYNC_CONTENT_TYPE: &str = "application/x-sanjin-sync";

/// What every handler shares: the data behind its one writer connection, and whether the server
/// is shutting down.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

struct Shared {
    /// A fair (first come, first served) lock: under load, requests wait in arrival order.
    data: Arc<tokio::sync::Mutex<ServerData>>,
    /// Sync exchanges waiting for the next group commit.
    waiting: std::sync::Mutex<Vec<Waiting>>,
    body_limit: usize,
    shutting_down: AtomicBool,
    blobs: crate::blobs::Blobs,
}

impl AppState {
    pub fn new(data: ServerData) -> AppState {
        let blobs = crate::blobs::FsBlobStore::new(data.dir().join(crate::data::BLOBS_DIR))
            .map(|s| Arc::new(s) as Arc<dyn crate::blobs::BlobStore>)
            .unwrap_or_else(|e| panic!("the blob folder cannot be used: {e}"));
        Self::with_blob_store(data, blobs)
    }

    /// A state whose photo originals live in `blobs` (another [`crate::BlobStore`]).
    pub fn with_blob_store(data: ServerData, blobs: Arc<dyn crate::blobs::BlobStore>) -> AppState {
        let body_limit = data.limits().body_bytes;
        let blobs = crate::blobs::Blobs::new(
            blobs,
            data.limits().max_blob_bytes,
            std::time::Duration::from_millis(data.limits().blob_partial_ttl_ms.max(0) as u64),
        );
        AppState(Arc::new(Shared {
            data: Arc::new(tokio::sync::Mutex::new(data)),
            waiting: std::sync::Mutex::new(Vec::new()),
            body_limit,
            shutting_down: AtomicBool::new(false),
            blobs,
        }))
    }

    /// The photo originals (issue 4).
    pub fn blobs(&self) -> &crate::blobs::Blobs {
        &self.0.blobs
    }

    /// From now on every new request is answered `503 shutting_down`.
    pub fn begin_shutdown(&self) {
        self.0.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.0.shutting_down.load(Ordering::SeqCst)
    }

    /// Runs `f` on the data, on a blocking thread, holding the lock (the one writer).
    pub async fn with_data<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut ServerData) -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let mut data = self.0.data.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || f(&mut data))
            .await
            .map_err(|e| AppError::Internal(format!("a database task failed: {e}")))
    }
}

impl AppState {
    /// Answers one sync exchange in a group commit: the exchange waits in a queue; whoever gets
    /// the writer next answers everything waiting (at most [`MAX_GROUP`]) in one transaction, so
    /// a burst of devices costs one disk sync per group instead of one per device.
    async fn exchange(&self, ex: Exchange) -> Result<(Caller, Answer), AppError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.waiting().push((ex, tx));
        let data = self.0.data.clone().lock_owned().await;
        let group: Vec<Waiting> = {
            let mut w = self.waiting();
            let n = w.len().min(MAX_GROUP);
            w.drain(..n).collect()
        };
        if group.is_empty() {
            // Another request's group took this one along.
            drop(data);
        } else {
            let mut data = data;
            tokio::task::spawn_blocking(move || {
                let (exchanges, replies): (Vec<Exchange>, Vec<_>) = group.into_iter().unzip();
                let answers = data.answer_group(&exchanges);
                drop(data);
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(answer);
                }
            })
            .await
            .map_err(|e| AppError::Internal(format!("a database task failed: {e}")))?;
        }
        rx.await
            .map_err(|_| AppError::Internal("the exchange was dropped unanswered".into()))?
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
        self.0.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The router of the sync server.
pub fn app(state: AppState) -> Router {
    let limit = state.0.body_limit;
    Router::new()
        .route("/health", get(health))
        .route("/v1/enroll", post(enroll))
        .route("/v1/sync", post(sync))
        .route("/v1/records/{id}", get(record))
        .route("/v1/device/key", post(register_key))
        .merge(crate::console::routes())
        .merge(crate::blobs::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            refuse_when_closing,
        ))
        .with_state(state)
}

async fn refuse_when_closing(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.is_shutting_down() {
        return AppError::ShuttingDown.into_response();
    }
    next.run(req).await
}

async fn not_found() -> AppError {
    AppError::NotFound("no such endpoint".into())
}

async fn health() -> Response {
    Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": protocol::VERSION,
    }))
    .into_response()
}

fn too_large(limit: usize) -> AppError {
    AppError::TooLarge(format!("the body is larger than {limit} bytes"))
}

fn body_error(state: &AppState, e: BytesRejection) -> AppError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(state.0.body_limit)
    } else {
        AppError::BadMessage(format!("the body could not be read: {}", e.body_text()))
    }
}

fn json_error(state: &AppState, e: JsonRejection) -> AppError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(state.0.body_limit)
    } else {
        AppError::BadMessage(e.body_text())
    }
}

fn decode_error(e: DecodeError) -> AppError {
    match e {
        DecodeError::UnsupportedVersion { .. } => AppError::UnsupportedVersion(e.to_string()),
        other => AppError::BadMessage(other.to_string()),
    }
}

async fn enroll(
    State(state): State<AppState>,
    body: Result<Json<EnrollRequest>, JsonRejection>,
) -> Result<Json<Enrollment>, AppError> {
    let Json(req) = body.map_err(|e| json_error(&state, e))?;
    let out = state.with_data(move |d| d.enroll(&req)).await??;
    tracing::info!(device = %out.device_id, member = %out.member, role = %out.role, "device enrolled");
    Ok(Json(out))
}

/// A device enrolled before signatures registers its public key (issue 10).
async fn register_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<crate::model::KeyRequest>, JsonRejection>,
) -> Result<Json<crate::model::KeyRegistration>, AppError> {
    let caller = authenticate(&state, &headers).await?;
    let Json(req) = body.map_err(|e| json_error(&state, e))?;
    let device = caller.device_id.clone();
    let out = state
        .with_data(move |d| d.register_key(&caller, &req.public_key))
        .await??;
    tracing::info!(%device, "device signing key registered");
    Ok(Json(out))
}

pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Caller, AppError> {
    let auth = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    state
        .with_data(move |d| d.authenticate(auth.as_deref()))
        .await?
}

async fn sync(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let started = Instant::now();
    let authorization = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let decoded = match body {
        Ok(body) => tokio::task::spawn_blocking(move || SyncRequest::decode(&body))
            .await
            .map_err(|e| AppError::Internal(format!("decoding failed: {e}")))?
            .map_err(decode_error),
        Err(e) => Err(body_error(&state, e)),
    };
    let req = match decoded {
        Ok(req) => req,
        Err(e) => {
            // Bad credentials are reported before a bad body.
            authenticate(&state, &headers).await?;
            return Err(e);
        }
    };
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
