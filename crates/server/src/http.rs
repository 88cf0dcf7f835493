//! The HTTP surface (docs/PROTOCOL.md): `GET /health`, `POST /v1/enroll`, `POST /v1/sync`,
//! `GET /v1/records/{id}`. [`app`] builds the router; it needs no socket, so tests drive it with
//! `tower::ServiceExt::oneshot`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use sanjin_core::protocol::{self, DecodeError, SyncRequest};

use crate::data::ServerData;
use crate::error::AppError;
use crate::model::{Caller, EnrollRequest, Enrollment};
use crate::sync::{Answer, Exchange};

/// The most exchanges written in one group commit.
const MAX_GROUP: usize = 128;
/// The largest enrollment request (a code, a device id, an actor, a label): a few hundred bytes.
const ENROLL_BODY_BYTES: usize = 64 << 10;
/// Read-only connections kept for the credential checks made outside the writer.
const IDLE_READERS: usize = 4;

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
    /// Read-only connections to the database: device credentials are checked on them, outside
    /// the writer's lock, before a body is read or decoded (issue 10).
    readers: Readers,
    /// Sync bodies decoded at once (issue 10): each decode may take up to its frame's payload
    /// bound (`protocol::payload_bound`) plus the zstd window, so their number is bounded.
    decodes: Decoders,
    /// Console sign-in: throttling and the bounded password hashing (issue 10).
    sign_in: crate::console::SignInGuard,
}

/// Read-only SQLite connections to the server's database (WAL: readers never wait for the
/// writer), opened on demand and kept for reuse.
struct Readers {
    path: std::path::PathBuf,
    idle: std::sync::Mutex<Vec<Connection>>,
}

impl Readers {
    fn take(&self) -> rusqlite::Result<Connection> {
        if let Some(c) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(c);
        }
        let c = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        c.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(c)
    }

    fn give_back(&self, c: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(c);
        }
    }
}

/// How many sync bodies may be decoded at once: one per core, at least 2, at most 4.
fn decode_permits() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 4)
}

type DecodeJob = (
    Bytes,
    tokio::sync::oneshot::Sender<Result<SyncRequest, DecodeError>>,
);

/// The decoding of sync bodies (issue 10): a semaphore lets [`decode_permits`] decodes run at
/// once, on as many threads of their own. Own threads, not the blocking pool: the allocator
/// keeps a freed buffer in the arena of the thread that used it, so decodes spread over the
/// pool's many threads would each leave their peak behind; a few fixed threads leave a few.
struct Decoders {
    permits: tokio::sync::Semaphore,
    jobs: std::sync::mpsc::Sender<DecodeJob>,
}

impl Decoders {
    fn new() -> Decoders {
        let n = decode_permits();
        let (jobs, rx) = std::sync::mpsc::channel::<DecodeJob>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..n {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("sanjin-decode-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok((body, reply)) = job else {
                            return; // the server is gone
                        };
                        let _ = reply.send(SyncRequest::decode(&body));
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "a decoding thread could not be started");
            }
        }
        Decoders {
            permits: tokio::sync::Semaphore::new(n),
            jobs,
        }
    }

    /// Decodes a sync body once a permit is free.
    async fn decode(&self, body: Bytes) -> Result<SyncRequest, AppError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| AppError::ShuttingDown)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let decoded = match self.jobs.send((body, tx)) {
            Ok(()) => rx.await.map_err(|_| {
                AppError::Internal("a decoding thread stopped without answering".into())
            })?,
            // No decoding thread could be started: decode on the blocking pool.
            Err(std::sync::mpsc::SendError((body, _))) => {
                tokio::task::spawn_blocking(move || SyncRequest::decode(&body))
                    .await
                    .map_err(|e| AppError::Internal(format!("decoding failed: {e}")))?
            }
        };
        decoded.map_err(decode_error)
    }
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
        let readers = Readers {
            path: data.dir().join(crate::data::DB_FILE),
            idle: std::sync::Mutex::new(Vec::new()),
        };
        AppState(Arc::new(Shared {
            data: Arc::new(tokio::sync::Mutex::new(data)),
            waiting: std::sync::Mutex::new(Vec::new()),
            body_limit,
            shutting_down: AtomicBool::new(false),
            blobs,
            readers,
            decodes: Decoders::new(),
            sign_in: crate::console::SignInGuard::new(),
        }))
    }

    /// The photo originals (issue 4).
    pub fn blobs(&self) -> &crate::blobs::Blobs {
        &self.0.blobs
    }

    /// Console sign-in's throttle and password hashing (issue 10).
    pub(crate) fn sign_in_guard(&self) -> &crate::console::SignInGuard {
        &self.0.sign_in
    }

    /// Runs `f` on a read-only connection, on a blocking thread, without the writer's lock.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let readers = &state.0.readers;
            let conn = readers
                .take()
                .map_err(|e| AppError::Internal(format!("the database cannot be read: {e}")))?;
            let out = f(&conn);
            readers.give_back(conn);
            out
        })
        .await
        .map_err(|e| AppError::Internal(format!("a database task failed: {e}")))?
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
        .route(
            "/v1/enroll",
            post(enroll).layer(DefaultBodyLimit::max(ENROLL_BODY_BYTES)),
        )
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

/// Reads a body of at most `limit` bytes: a larger one is refused as soon as its
/// `Content-Length` says so, or as soon as more than `limit` bytes arrived.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, AppError> {
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

/// The device id of `authorization` if its credentials are right: the same checks as
/// [`ServerData::authenticate`] (a device secret is a fast hash), made on a read-only connection
/// outside the writer's lock, so that nothing of a request is read or decoded before its sender
/// is known (issue 10). The exchange itself authenticates again under the writer.
pub(crate) async fn precheck(
    state: &AppState,
    authorization: Option<&str>,
) -> Result<String, AppError> {
    let unauthorized = |m: &str| AppError::Unauthorized(m.into());
    let (device_id, secret) = crate::data::parse_bearer(authorization)?;
    let device = device_id.to_string();
    let row: Option<(Vec<u8>, Option<i64>)> = {
        let device = device.clone();
        state
            .read(move |c| {
                c.prepare_cached("SELECT secret_hash, revoked_at FROM devices WHERE device_id = ?1")
                    .and_then(|mut s| {
                        s.query_row([&device], |r| Ok((r.get(0)?, r.get(1)?)))
                            .optional()
                    })
                    .map_err(|e| AppError::Internal(format!("credentials cannot be read: {e}")))
            })
            .await?
    };
    let Some((hash, revoked)) = row else {
        return Err(unauthorized("wrong credentials"));
    };
    let given = crate::data::sha256(&[&secret]);
    let same = hash.len() == given.len()
        && hash
            .iter()
            .zip(&given)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same {
        return Err(unauthorized("wrong credentials"));
    }
    if revoked.is_some() {
        return Err(unauthorized("this device has been revoked"));
    }
    Ok(device)
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
