//! The blob routes (docs/PROTOCOL.md, "Blobs"): status, resumable upload and ranged download
//! of photo originals, each checked against the caller's scope and proof of possession.

use std::io;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::header::{
    ACCEPT_RANGES, CONTENT_DISPOSITION, CONTENT_RANGE, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG,
    RANGE, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::BodyExt;

use super::{BlobError, BlobHash, BlobReader, BlobState, Uploader, references};
use crate::error::AppError;
use crate::model::Caller;
use crate::state::{AppState, authenticate};

/// Bytes collected from the request before they are written to the partial file.
const WRITE_BUFFER: usize = 256 << 10;
/// The longest silence while receiving an upload's body before the server stops waiting.
const BODY_IDLE: Duration = Duration::from_secs(60);

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

fn parse_hash(hash: &str) -> Result<BlobHash, AppError> {
    BlobHash::parse(hash).ok_or_else(|| {
        AppError::BadMessage("a blob is named by its SHA-256: 64 lowercase hex digits".into())
    })
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

/// Whether a device within the caller's scope has uploaded `hash`.
async fn proven_for(state: &AppState, caller: &Caller, hash: BlobHash) -> Result<bool, AppError> {
    let account = caller.account.clone();
    Ok(state
        .with_data(move |d| d.blob_proven_for(&hash, BlobReader::of(&account)))
        .await??)
}

fn state_json(hash: &BlobHash, s: BlobState) -> serde_json::Value {
    match s {
        BlobState::Absent => {
            serde_json::json!({"hash": hash.to_hex(), "state": "absent", "received": 0})
        }
        BlobState::Partial { received } => {
            serde_json::json!({"hash": hash.to_hex(), "state": "partial", "received": received})
        }
        BlobState::Complete { size } => {
            serde_json::json!({"hash": hash.to_hex(), "state": "complete", "received": size, "size": size})
        }
    }
}

/// What the caller may know of a blob: `complete` if a device within its scope uploaded it,
/// otherwise its own upload's progress (as if nobody else held the blob).
async fn state_for(
    state: &AppState,
    caller: &Caller,
    hash: BlobHash,
    by: Uploader,
) -> Result<BlobState, AppError> {
    let proven = proven_for(state, caller, hash).await?;
    let store = state.blobs().store.clone();
    blocking(move || -> io::Result<BlobState> {
        if proven && let Some(size) = store.size(&hash)? {
            return Ok(BlobState::Complete { size });
        }
        Ok(match store.partial(&hash, &by)? {
            Some(received) => BlobState::Partial { received },
            None => BlobState::Absent,
        })
    })
    .await?
    .map_err(io_error)
}

async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    UrlPath(hash): UrlPath<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    let caller = authenticate(&state, &headers).await?;
    let hash = parse_hash(&hash)?;
    let by = Uploader::device(&caller.device_id);
    let s = state_for(&state, &caller, hash, by).await?;
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
    let hash = parse_hash(&hash)?;
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
    let by = Uploader::device(&caller.device_id);
    let lock = blobs.lock_for(hash, by);
    let _guard = lock.lock().await;
    let current = state_for(&state, &caller, hash, by).await?;
    let held = match current {
        // Within the caller's scope already: nothing to prove, nothing to store.
        BlobState::Complete { .. } => {
            return Ok((StatusCode::OK, Json(state_json(&hash, current))).into_response());
        }
        BlobState::Partial { received } => received,
        BlobState::Absent => 0,
    };
    if held != q.offset {
        return Err(AppError::Conflict {
            code: "offset_mismatch",
            message: format!("the server holds {held} bytes of this blob; continue from there"),
        });
    }
    // Stream the body into the caller's partial file; keep what arrived if the connection
    // breaks.
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
            received = write(&state, hash, by, received, std::mem::take(&mut buf)).await?;
        }
    }
    if !buf.is_empty() {
        received = write(&state, hash, by, received, buf).await?;
    }
    let store = blobs.store.clone();
    blocking(move || store.flush(&hash, &by))
        .await?
        .map_err(io_error)?;
    if let Some(e) = broken {
        tracing::info!(device = %caller.device_id, blob = %hash, received, "upload broke off; kept what arrived");
        return Err(e);
    }
    if received < q.size {
        return Ok(Json(state_json(&hash, BlobState::Partial { received })).into_response());
    }
    let store = blobs.store.clone();
    match blocking(move || store.publish(&hash, &by)).await? {
        Ok(size) => {
            // The device sent every byte and they hash to the name: it holds the blob.
            let (device, account) = (caller.device_id.clone(), caller.account.clone());
            state
                .with_data(move |d| d.record_upload(&hash, &device, &account))
                .await??;
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

async fn write(
    state: &AppState,
    hash: BlobHash,
    by: Uploader,
    offset: u64,
    data: Vec<u8>,
) -> Result<u64, AppError> {
    let store = state.blobs().store.clone();
    match blocking(move || store.append(&hash, &by, offset, &data)).await? {
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

/// The policy of responses that carry a blob's bytes: nothing in them may run or load.
const BLOB_CSP: &str = "default-src 'none'; frame-ancestors 'none'; sandbox";

async fn download(
    State(state): State<AppState>,
    headers: HeaderMap,
    UrlPath((id, hash)): UrlPath<(String, String)>,
) -> Result<Response, AppError> {
    let caller = authenticate(&state, &headers).await?;
    let hash = parse_hash(&hash)?;
    let range = parse_range(&headers)
        .map_err(|_| AppError::BadMessage("Range must be bytes=N- or bytes=N-M".into()))?;
    let not_here = || {
        AppError::NotFound(format!(
            "the original of {hash} has not reached the server yet"
        ))
    };
    // The same scope check as GET /v1/records/{id}, the record must reference the blob, and a
    // device within the caller's scope must have uploaded it.
    let (rid, who) = (id.clone(), caller.clone());
    let proven = state
        .with_data(move |d| -> Result<bool, AppError> {
            let Some(entry) = d.store().index_entry(&rid)? else {
                return Err(AppError::NotFound(format!("no record {rid}")));
            };
            if !who.account.may_read_entry(&entry) {
                return Err(AppError::Forbidden(format!(
                    "record {rid} is not in this device's scope"
                )));
            }
            let doc = d.store().load(&rid)?;
            if !references(&doc, &hash)? {
                return Err(AppError::Forbidden(format!(
                    "record {rid} has no photo {hash}"
                )));
            }
            Ok(d.blob_proven_for(&hash, BlobReader::of(&who.account))?)
        })
        .await??;
    if !proven {
        // Whether another scope holds it is not the caller's to know.
        return Err(not_here());
    }
    let store = state.blobs().store.clone();
    let (start, end) = range.unwrap_or((0, None));
    let max = end.map_or(u64::MAX, |e| e - start + 1);
    let Some((bytes, size)) = blocking(move || store.read(&hash, start, max))
        .await?
        .map_err(io_error)?
    else {
        return Err(not_here());
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
        (
            CONTENT_DISPOSITION,
            format!("attachment; filename=\"{hash}\""),
        ),
        (X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        (CONTENT_SECURITY_POLICY, BLOB_CSP.to_string()),
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
