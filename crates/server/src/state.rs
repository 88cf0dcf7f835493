//! What every handler shares (`AppState`): the server's data behind its one writer, the queue
//! of the group commit, read-only handles for checks made outside the writer, the bounded
//! decoding of sync bodies, the blob transfer's locks and the console's sign-in guard; and the
//! device credential checks every device route starts with ([`authenticate`], [`precheck`]).
//! Route modules (`router`, `api`, `blobs::routes`, the console's pages) import this module; it
//! imports none of them (only the blob store and the sign-in guard, which import no routes).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use sanjin_core::protocol::{DecodeError, SyncRequest};
use sanjin_store::server::ServerStorage;

use crate::data::ServerData;
use crate::error::AppError;
use crate::model::Caller;
use crate::sync::{Answer, Exchange};

/// The most exchanges written in one group commit.
const MAX_GROUP: usize = 128;
/// Read-only connections kept for the credential checks made outside the writer.
const IDLE_READERS: usize = 4;

type Waiting = (
    Exchange,
    tokio::sync::oneshot::Sender<Result<(Caller, Answer), AppError>>,
);

/// What every handler shares: the data behind its one writer connection, and whether the server
/// is shutting down.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Shared>);

pub(crate) struct Shared {
    /// A fair (first come, first served) lock: under load, requests wait in arrival order.
    data: Arc<tokio::sync::Mutex<ServerData>>,
    /// Sync exchanges waiting for the next group commit.
    waiting: std::sync::Mutex<Vec<Waiting>>,
    pub(crate) body_limit: usize,
    shutting_down: AtomicBool,
    blobs: crate::blobs::Blobs,
    /// Read-only connections to the database: device credentials are checked on them, outside
    /// the writer's lock, before a body is read or decoded (issue 10).
    readers: Readers,
    /// Sync bodies decoded at once (issue 10): each decode may take up to its frame's payload
    /// bound (`protocol::payload_bound`) plus the zstd window, so their number is bounded.
    pub(crate) decodes: Decoders,
    /// Console sign-in: throttling and the bounded password hashing (issue 10).
    sign_in: crate::console::auth::SignInGuard,
}

/// Read-only handles on the server's storage (SQLite in WAL mode: readers never wait for the
/// writer), opened on demand and kept for reuse. A storage without readers (in memory) is read
/// under the writer's lock instead.
struct Readers {
    /// A reader that opens the others (`None`: the storage has none).
    first: std::sync::Mutex<Option<Box<dyn ServerStorage>>>,
    idle: std::sync::Mutex<Vec<Box<dyn ServerStorage>>>,
}

impl Readers {
    fn new(data: &ServerData) -> Readers {
        let first = data.store().reader().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "no read-only handle; credentials are checked under the writer");
            None
        });
        Readers {
            first: std::sync::Mutex::new(first),
            idle: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// A reader, or `None` when the storage has none.
    fn take(&self) -> Result<Option<Box<dyn ServerStorage>>, AppError> {
        if let Some(c) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(Some(c));
        }
        let first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        match first.as_ref() {
            Some(f) => f
                .reader()
                .map_err(|e| AppError::Internal(format!("the database cannot be read: {e}"))),
            None => Ok(None),
        }
    }

    fn give_back(&self, c: Box<dyn ServerStorage>) {
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
pub(crate) struct Decoders {
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
    pub(crate) async fn decode(&self, body: Bytes) -> Result<SyncRequest, AppError> {
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
        decoded.map_err(crate::error::decode_error)
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
        let readers = Readers::new(&data);
        AppState(Arc::new(Shared {
            data: Arc::new(tokio::sync::Mutex::new(data)),
            waiting: std::sync::Mutex::new(Vec::new()),
            body_limit,
            shutting_down: AtomicBool::new(false),
            blobs,
            readers,
            decodes: Decoders::new(),
            sign_in: crate::console::auth::SignInGuard::new(),
        }))
    }

    /// The photo originals (issue 4).
    pub fn blobs(&self) -> &crate::blobs::Blobs {
        &self.0.blobs
    }

    /// Console sign-in's throttle and password hashing (issue 10).
    pub(crate) fn sign_in_guard(&self) -> &crate::console::auth::SignInGuard {
        &self.0.sign_in
    }

    /// Runs `f` on a read-only handle of the storage, on a blocking thread, without the
    /// writer's lock (under it for a storage without readers).
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn ServerStorage) -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let readers = &state.0.readers;
            match readers.take()? {
                Some(reader) => {
                    let out = f(reader.as_ref());
                    readers.give_back(reader);
                    out
                }
                None => f(state.0.data.blocking_lock().store()),
            }
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
    pub(crate) async fn exchange(&self, ex: Exchange) -> Result<(Caller, Answer), AppError> {
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
    let row = {
        let device = device.clone();
        state
            .read(move |s| {
                s.device_auth(&device)
                    .map_err(|e| AppError::Internal(format!("credentials cannot be read: {e}")))
            })
            .await?
    };
    let Some(sanjin_store::server::DeviceAuth {
        secret_hash: hash,
        revoked,
        account,
    }) = row
    else {
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
    if revoked {
        // Issue 13: a retired member's device is told what to do with its records.
        let member = account.member;
        let retired = state
            .read(move |s| {
                Ok(crate::directory::retired_message_of(s, &member)
                    .ok()
                    .flatten())
            })
            .await?;
        if let Some(m) = retired {
            return Err(AppError::Retired(m));
        }
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
