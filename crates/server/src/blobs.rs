//! Photo originals (issue 4): content-addressed, resumable blob transfer (docs/PROTOCOL.md,
//! "Blobs").
//!
//! - `GET /v1/blobs/{hash}`: how much of a blob the server holds (`complete`, `partial` with the
//!   bytes received, or `absent`), so a device sends only the rest.
//! - `PUT /v1/blobs/{hash}?offset=N&size=T`: the bytes from `offset` on. The server writes them
//!   to a partial file **as they arrive**, so a connection cut mid-request keeps what crossed;
//!   once it holds `size` bytes it checks their SHA-256 against `hash` and only then makes the
//!   blob visible (fsync, atomic rename). A corrupt or truncated blob is never kept.
//! - `GET /v1/records/{id}/blobs/{hash}`: the original of a photo of a record in the device's
//!   read scope, resumable with `Range: bytes=N-`.
//!
//! Storage is behind [`BlobStore`]; [`FsBlobStore`] keeps blobs in the data folder's `blobs/`.
//! **Invariant:** a file under `blobs/<2 hex>/<hash>` is complete and verified (it got there by
//! a rename after the check), so there is no separate metadata to keep consistent with it;
//! partial uploads live in `blobs/partial/` until they complete or expire.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::header::{ACCEPT_RANGES, CONTENT_RANGE, CONTENT_TYPE, ETAG, RANGE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::BodyExt;
use sanjin_core::domain::RecordKind;

use crate::error::AppError;
use crate::http::{AppState, authenticate};

/// Bytes collected from the request before they are written to the partial file.
const WRITE_BUFFER: usize = 256 << 10;
/// The longest silence while receiving an upload's body before the server stops waiting.
const BODY_IDLE: Duration = Duration::from_secs(60);

/// What the server holds of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobState {
    Absent,
    /// An upload in progress (or broken off): this many bytes from the start.
    Partial {
        received: u64,
    },
    /// Verified and visible.
    Complete {
        size: u64,
    },
}

impl BlobState {
    fn received(self) -> u64 {
        match self {
            BlobState::Absent => 0,
            BlobState::Partial { received } => received,
            BlobState::Complete { size } => size,
        }
    }
}

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The bytes do not hash to the blob's address; the partial upload was discarded.
    #[error("the uploaded bytes do not match the hash; the partial upload was discarded")]
    HashMismatch,
    /// The write does not continue where the partial upload ends.
    #[error("the upload continues at {received}, not at {offset}")]
    OffsetMismatch { offset: u64, received: u64 },
    #[error("blob storage: {0}")]
    Io(#[from] io::Error),
}

/// Where blobs live. The filesystem is the embedded default ([`FsBlobStore`]); an object store
/// (S3-compatible) is the other intended implementation. Blocking: the HTTP layer calls it on
/// blocking threads. Hashes given to it are checked: 64 lowercase hex digits.
pub trait BlobStore: Send + Sync {
    fn state(&self, hash: &str) -> io::Result<BlobState>;
    /// Appends `data` to the partial upload, which must currently end at `offset`. Returns the
    /// bytes received so far.
    fn append(&self, hash: &str, offset: u64, data: &[u8]) -> Result<u64, BlobError>;
    /// Makes what was appended durable (fsync).
    fn flush(&self, hash: &str) -> io::Result<()>;
    /// Checks the partial upload against `hash` and makes it visible; on a mismatch it is
    /// discarded. Returns the blob's size.
    fn publish(&self, hash: &str) -> Result<u64, BlobError>;
    /// Up to `max` bytes of a complete blob from `start`, and its size; `None` if absent.
    fn read(&self, hash: &str, start: u64, max: u64) -> io::Result<Option<(Vec<u8>, u64)>>;
    /// Removes partial uploads untouched for `older_than`. Returns how many.
    fn sweep(&self, older_than: Duration) -> io::Result<usize>;
}

/// Blobs as files: `DIR/<first two hex digits>/<hash>`, partial uploads in `DIR/partial/`.
pub struct FsBlobStore {
    dir: PathBuf,
}

impl FsBlobStore {
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<FsBlobStore> {
        let dir = dir.into();
        fs::create_dir_all(dir.join("partial"))?;
        Ok(FsBlobStore { dir })
    }

    fn complete_path(&self, hash: &str) -> PathBuf {
        self.dir.join(&hash[..2]).join(hash)
    }

    fn partial_path(&self, hash: &str) -> PathBuf {
        self.dir.join("partial").join(format!("{hash}.part"))
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    Ok(())
}

fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(hex::encode(ctx.finish().as_ref()))
}

impl BlobStore for FsBlobStore {
    fn state(&self, hash: &str) -> io::Result<BlobState> {
        if let Ok(m) = fs::metadata(self.complete_path(hash)) {
            return Ok(BlobState::Complete { size: m.len() });
        }
        match fs::metadata(self.partial_path(hash)) {
            Ok(m) => Ok(BlobState::Partial { received: m.len() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BlobState::Absent),
            Err(e) => Err(e),
        }
    }

    fn append(&self, hash: &str, offset: u64, data: &[u8]) -> Result<u64, BlobError> {
        let path = self.partial_path(hash);
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        let received = f.seek(SeekFrom::End(0))?;
        if received != offset {
            return Err(BlobError::OffsetMismatch { offset, received });
        }
        f.write_all(data)?;
        Ok(received + data.len() as u64)
    }

    fn flush(&self, hash: &str) -> io::Result<()> {
        match File::open(self.partial_path(hash)) {
            Ok(f) => f.sync_all(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn publish(&self, hash: &str) -> Result<u64, BlobError> {
        let partial = self.partial_path(hash);
        File::open(&partial)?.sync_all()?;
        if sha256_file(&partial)? != hash {
            fs::remove_file(&partial)?;
            return Err(BlobError::HashMismatch);
        }
        let target = self.complete_path(hash);
        let parent = target.parent().expect("blob paths have a parent");
        fs::create_dir_all(parent)?;
        let size = fs::metadata(&partial)?.len();
        fs::rename(&partial, &target)?;
        sync_dir(parent)?;
        sync_dir(&self.dir.join("partial"))?;
        Ok(size)
    }

    fn read(&self, hash: &str, start: u64, max: u64) -> io::Result<Option<(Vec<u8>, u64)>> {
        let mut f = match File::open(self.complete_path(hash)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let size = f.metadata()?.len();
        let start = start.min(size);
        f.seek(SeekFrom::Start(start))?;
        let mut out = Vec::with_capacity((size - start).min(max) as usize);
        f.take(max).read_to_end(&mut out)?;
        Ok(Some((out, size)))
    }

    fn sweep(&self, older_than: Duration) -> io::Result<usize> {
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in fs::read_dir(self.dir.join("partial"))? {
            let entry = entry?;
            let modified = entry.metadata()?.modified()?;
            if now.duration_since(modified).unwrap_or_default() >= older_than {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// The blob side of the server's state: the store and one lock per blob being uploaded, so two
/// uploads of the same photo (two devices, or a retry racing a dying connection) take turns.
pub struct Blobs {
    store: Arc<dyn BlobStore>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    max_blob_bytes: u64,
    partial_ttl: Duration,
}

impl Blobs {
    pub fn new(store: Arc<dyn BlobStore>, max_blob_bytes: u64, partial_ttl: Duration) -> Blobs {
        Blobs {
            store,
            locks: Mutex::new(HashMap::new()),
            max_blob_bytes,
            partial_ttl,
        }
    }

    pub fn store(&self) -> &Arc<dyn BlobStore> {
        &self.store
    }

    fn lock_for(&self, hash: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().expect("blob locks");
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(hash.to_string()).or_default().clone()
    }

    /// Removes expired partial uploads now (and logs how many).
    pub async fn sweep(&self) {
        let store = self.store.clone();
        let ttl = self.partial_ttl;
        match tokio::task::spawn_blocking(move || store.sweep(ttl)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(removed = n, "expired partial uploads removed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "sweeping partial uploads failed"),
            Err(e) => tracing::warn!(error = %e, "sweeping partial uploads failed"),
        }
    }
}

/// Sweeps expired partial uploads at start-up and then every quarter of their lifetime (at most
/// hourly), until the runtime stops.
pub fn spawn_sweeper(state: &AppState) {
    let state = state.clone();
    tokio::spawn(async move {
        let every = (state.blobs().partial_ttl / 4)
            .clamp(Duration::from_secs(1), Duration::from_secs(3600));
        loop {
            state.blobs().sweep().await;
            tokio::time::sleep(every).await;
        }
    });
}

/// The blob routes, merged into the app's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/blobs/{hash}", get(status).put(upload))
        .route("/v1/records/{id}/blobs/{hash}", get(download))
}

fn check_hash(hash: &str) -> Result<(), AppError> {
    if hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(AppError::BadMessage(
            "a blob is named by its SHA-256: 64 lowercase hex digits".into(),
        ))
    }
}

fn io_error(e: impl std::fmt::Display) -> AppError {
    AppError::Internal(format!("blob storage: {e}"))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AppError::Internal(format!("a blob task failed: {e}")))
}

fn state_json(hash: &str, s: BlobState) -> serde_json::Value {
    match s {
        BlobState::Absent => serde_json::json!({"hash": hash, "state": "absent", "received": 0}),
        BlobState::Partial { received } => {
            serde_json::json!({"hash": hash, "state": "partial", "received": received})
        }
        BlobState::Complete { size } => {
            serde_json::json!({"hash": hash, "state": "complete", "received": size, "size": size})
        }
    }
}

async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    UrlPath(hash): UrlPath<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    authenticate(&state, &headers).await?;
    check_hash(&hash)?;
    let store = state.blobs().store.clone();
    let h = hash.clone();
    let s = blocking(move || store.state(&h)).await?.map_err(io_error)?;
    Ok(Json(state_json(&hash, s)))
}

struct UploadQuery {
    offset: u64,
    size: u64,
}

/// `offset=N&size=T`, in any order.
fn parse_upload_query(q: Option<&str>) -> Option<UploadQuery> {
    let (mut offset, mut size) = (None, None);
    for pair in q?.split('&') {
        match pair.split_once('=')? {
            ("offset", v) => offset = Some(v.parse().ok()?),
            ("size", v) => size = Some(v.parse().ok()?),
            _ => {}
        }
    }
    Some(UploadQuery {
        offset: offset?,
        size: size?,
    })
}

async fn upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    UrlPath(hash): UrlPath<String>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, AppError> {
    let caller = authenticate(&state, &headers).await?;
    check_hash(&hash)?;
    let q = parse_upload_query(query.as_deref()).ok_or_else(|| {
        AppError::BadMessage("PUT /v1/blobs/{hash} needs ?offset=N&size=T".into())
    })?;
    let blobs = state.blobs();
    if q.size > blobs.max_blob_bytes {
        return Err(AppError::TooLarge(format!(
            "a blob may have at most {} bytes",
            blobs.max_blob_bytes
        )));
    }
    if q.offset > q.size {
        return Err(AppError::BadMessage("offset is beyond size".into()));
    }
    let lock = blobs.lock_for(&hash);
    let _guard = lock.lock().await;
    let store = blobs.store.clone();
    let h = hash.clone();
    let current = blocking(move || store.state(&h)).await?.map_err(io_error)?;
    if let BlobState::Complete { .. } = current {
        return Ok((StatusCode::OK, Json(state_json(&hash, current))).into_response());
    }
    if current.received() != q.offset {
        return Err(AppError::Conflict {
            code: "offset_mismatch",
            message: format!(
                "the server holds {} bytes of this blob; continue from there",
                current.received()
            ),
        });
    }
    // Stream the body into the partial file; keep what arrived if the connection breaks.
    let mut received = q.offset;
    let mut buf: Vec<u8> = Vec::with_capacity(WRITE_BUFFER);
    let mut body = body;
    let mut broken: Option<AppError> = None;
    loop {
        let frame = match tokio::time::timeout(BODY_IDLE, body.frame()).await {
            Err(_) => {
                broken = Some(AppError::BadMessage("the upload stalled".into()));
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                broken = Some(AppError::BadMessage(format!("the upload broke off: {e}")));
                break;
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if received + (buf.len() + data.len()) as u64 > q.size {
            broken = Some(AppError::BadMessage(
                "the body is longer than size - offset".into(),
            ));
            break;
        }
        buf.extend_from_slice(&data);
        if buf.len() >= WRITE_BUFFER {
            received = write(&state, &hash, received, std::mem::take(&mut buf)).await?;
        }
    }
    if !buf.is_empty() {
        received = write(&state, &hash, received, buf).await?;
    }
    let store = blobs.store.clone();
    let h = hash.clone();
    blocking(move || store.flush(&h)).await?.map_err(io_error)?;
    if let Some(e) = broken {
        tracing::info!(device = %caller.device_id, blob = %hash, received, "upload broke off; kept what arrived");
        return Err(e);
    }
    if received < q.size {
        return Ok(Json(state_json(&hash, BlobState::Partial { received })).into_response());
    }
    let store = blobs.store.clone();
    let h = hash.clone();
    match blocking(move || store.publish(&h)).await? {
        Ok(size) => {
            tracing::info!(device = %caller.device_id, blob = %hash, size, "blob stored");
            Ok((
                StatusCode::CREATED,
                Json(state_json(&hash, BlobState::Complete { size })),
            )
                .into_response())
        }
        Err(BlobError::HashMismatch) => {
            tracing::info!(device = %caller.device_id, blob = %hash, "upload did not match its hash; discarded");
            Err(AppError::Conflict {
                code: "hash_mismatch",
                message: "the uploaded bytes do not match the hash; upload again from 0".into(),
            })
        }
        Err(e) => Err(io_error(e)),
    }
}

async fn write(state: &AppState, hash: &str, offset: u64, data: Vec<u8>) -> Result<u64, AppError> {
    let store = state.blobs().store.clone();
    let h = hash.to_string();
    match blocking(move || store.append(&h, offset, &data)).await? {
        Ok(n) => Ok(n),
        Err(BlobError::OffsetMismatch { received, .. }) => Err(AppError::Conflict {
            code: "offset_mismatch",
            message: format!("the server holds {received} bytes of this blob; continue from there"),
        }),
        Err(e) => Err(io_error(e)),
    }
}

/// `bytes=N-` or `bytes=N-M` (one range); `None` without a Range header.
fn parse_range(headers: &HeaderMap) -> Result<Option<(u64, Option<u64>)>, ()> {
    let Some(v) = headers.get(RANGE) else {
        return Ok(None);
    };
    let v = v.to_str().map_err(|_| ())?.trim();
    let spec = v.strip_prefix("bytes=").ok_or(())?;
    let (a, b) = spec.split_once('-').ok_or(())?;
    let start: u64 = a.trim().parse().map_err(|_| ())?;
    let end = match b.trim() {
        "" => None,
        e => Some(e.parse::<u64>().map_err(|_| ())?),
    };
    if end.is_some_and(|e| e < start) {
        return Err(());
    }
    Ok(Some((start, end)))
}

async fn download(
    State(state): State<AppState>,
    headers: HeaderMap,
    UrlPath((id, hash)): UrlPath<(String, String)>,
) -> Result<Response, AppError> {
    let caller = authenticate(&state, &headers).await?;
    check_hash(&hash)?;
    let range = parse_range(&headers)
        .map_err(|_| AppError::BadMessage("Range must be bytes=N- or bytes=N-M".into()))?;
    // The same scope check as GET /v1/records/{id}, and the record must reference the blob.
    let (rid, h, who) = (id.clone(), hash.clone(), caller.clone());
    state
        .with_data(move |d| -> Result<(), AppError> {
            let Some(entry) = d.store().index_entry(&rid)? else {
                return Err(AppError::NotFound(format!("no record {rid}")));
            };
            let kind = RecordKind::parse(&entry.kind).unwrap_or(RecordKind::Visit);
            if !who.account.may_read(kind, entry.group.as_deref()) {
                return Err(AppError::Forbidden(format!(
                    "record {rid} is not in this device's scope"
                )));
            }
            let doc = d.store().load(&rid)?;
            let photos = doc
                .photos()
                .map_err(|e| AppError::Internal(e.to_string()))?;
            if !photos.iter().any(|p| p.hash.eq_ignore_ascii_case(&h)) {
                return Err(AppError::Forbidden(format!(
                    "record {rid} has no photo {h}"
                )));
            }
            Ok(())
        })
        .await??;
    let store = state.blobs().store.clone();
    let h = hash.clone();
    let (start, end) = range.unwrap_or((0, None));
    let max = end.map_or(u64::MAX, |e| e - start + 1);
    let Some((bytes, size)) = blocking(move || store.read(&h, start, max))
        .await?
        .map_err(io_error)?
    else {
        return Err(AppError::NotFound(format!(
            "the original of {hash} has not reached the server yet"
        )));
    };
    if range.is_some() && start >= size {
        return Ok((
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(CONTENT_RANGE, format!("bytes */{size}"))],
        )
            .into_response());
    }
    tracing::info!(device = %caller.device_id, doc = %id, blob = %hash, start, bytes = bytes.len(), "blob fetched");
    let common = [
        (CONTENT_TYPE, "application/octet-stream".to_string()),
        (ACCEPT_RANGES, "bytes".to_string()),
        (ETAG, format!("\"{hash}\"")),
    ];
    if range.is_some() {
        let last = start + bytes.len() as u64 - 1;
        Ok((
            StatusCode::PARTIAL_CONTENT,
            common,
            [(CONTENT_RANGE, format!("bytes {start}-{last}/{size}"))],
            bytes,
        )
            .into_response())
    } else {
        Ok((StatusCode::OK, common, bytes).into_response())
    }
}
