//! Photos on the device side (issue 4): attaching a photo to a record, uploading the originals
//! waiting in the store's blob outbox, and downloading an original, both resumable
//! (docs/PROTOCOL.md, "Blobs").
//!
//! The thumbnail travels inside the record's document, so the ordinary [`crate::sync`] carries
//! it in the same round trip as the record; the original follows here, in chunks, only as the
//! [`PhotoPolicy`] allows. Every step can be interrupted: the server keeps what reached it, the
//! device asks how much that is and sends the rest, and the original leaves the outbox only when
//! the server says the blob is complete (verified against its hash).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sanjin_core::domain::{Gps, PhotoRef};
use sanjin_core::validate;
use sanjin_store::Store;

use crate::http::{check_status, read_limited};
use crate::{Client, Error, Timeouts, client_for};

/// When originals go to the server. The phone app knows the link; the core is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhotoPolicy {
    /// On any link.
    Now,
    /// Only while the device says it is on Wi-Fi.
    WifiOnly,
    /// Not at all (the originals wait).
    Never,
}

impl PhotoPolicy {
    pub fn parse(s: &str) -> Option<PhotoPolicy> {
        match s.trim() {
            "now" => Some(PhotoPolicy::Now),
            "wifi-only" | "wifi_only" => Some(PhotoPolicy::WifiOnly),
            "never" => Some(PhotoPolicy::Never),
            _ => None,
        }
    }

    /// Whether originals may go now, on `link`.
    pub fn allows(self, link: Link) -> bool {
        match self {
            PhotoPolicy::Now => true,
            PhotoPolicy::WifiOnly => link == Link::Wifi,
            PhotoPolicy::Never => false,
        }
    }
}

/// Which link the device is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Link {
    Wifi,
    Cellular,
}

impl Link {
    pub fn parse(s: &str) -> Option<Link> {
        match s.trim() {
            "wifi" => Some(Link::Wifi),
            "cellular" | "mobile" => Some(Link::Cellular),
            _ => None,
        }
    }
}

/// How originals are uploaded and downloaded.
#[derive(Debug, Clone)]
pub struct BlobOptions {
    pub policy: PhotoPolicy,
    pub link: Link,
    /// Bytes of the first upload request of a blob (256 KiB by default), and of every request
    /// when `chunk_time` is `None`. A request costs one round trip of waiting, so larger chunks
    /// use a link better; a cut loses at most what was in flight, never more than one chunk.
    pub chunk_bytes: usize,
    /// Later chunks are sized to take about this long at the rate the previous one achieved
    /// (between 64 KiB and 8 MiB): about 100 KB on 2G, 1 MB on 3G. 8 s by default; `None`
    /// keeps every chunk at `chunk_bytes`.
    pub chunk_time: Option<Duration>,
    /// Connecting (DNS, TCP, TLS handshake).
    pub connect_timeout: Duration,
    /// The longest silence on a stalled link.
    pub idle_timeout: Duration,
    /// How often a failed request is retried **without progress** before giving up; any
    /// progress (bytes the server confirms) resets the count.
    pub retries: u32,
    /// The wait before the first retry; it doubles for each further one (at most 30 s).
    pub backoff: Duration,
    /// Set it (from another thread) to stop between requests.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for BlobOptions {
    fn default() -> Self {
        BlobOptions {
            policy: PhotoPolicy::Now,
            link: Link::Cellular,
            chunk_bytes: 256 << 10,
            chunk_time: Some(Duration::from_secs(8)),
            connect_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(30),
            retries: 5,
            backoff: Duration::from_millis(500),
            cancel: None,
        }
    }
}

impl BlobOptions {
    fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: self.connect_timeout,
            idle: self.idle_timeout,
            // A chunk on a 2G link takes minutes; the idle bound catches stalls.
            total: Duration::from_secs(3600),
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }

    /// The retry schedule (the one of `sanjin_sync::backoff`, as for sync exchanges), waits of
    /// at most 30 s.
    fn schedule(&self) -> sanjin_sync::backoff::Backoff {
        sanjin_sync::backoff::Backoff {
            first: self.backoff,
            cap: Duration::from_secs(30),
            retries: self.retries,
        }
    }
}

/// What a photo attach did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AttachedPhoto {
    pub record_id: String,
    pub photo: PhotoRef,
    pub thumbnail_bytes: usize,
}

/// Where a photo comes from.
#[derive(Debug, Clone, Copy)]
pub enum PhotoSource<'a> {
    Path(&'a Path),
    Bytes(&'a [u8]),
}

/// Attaches a photo to a record (a visit): checks and processes it (`sanjin-media`: format by
/// content, size limits, EXIF time and GPS, orientation, a thumbnail ≤ 25 KB), then writes the
/// photo's reference and thumbnail into the record and queues the original in the blob outbox,
/// in one transaction. Attaching the same photo again changes nothing but the trace.
pub fn attach_photo(
    store: &mut Store,
    record_id: &str,
    source: PhotoSource<'_>,
    caption: &str,
) -> Result<AttachedPhoto, Error> {
    let limits = sanjin_media::Limits::default();
    let owned;
    let original: &[u8] = match source {
        PhotoSource::Bytes(b) => b,
        PhotoSource::Path(p) => {
            let len = fs::metadata(p).map_err(|e| Error::Io(e.to_string()))?.len();
            if len > limits.max_file_bytes as u64 {
                return Err(Error::Media(sanjin_media::MediaError::FileTooLarge {
                    len: len as usize,
                    max: limits.max_file_bytes,
                }));
            }
            owned = fs::read(p).map_err(|e| Error::Io(e.to_string()))?;
            &owned
        }
    };
    if !validate::is_id(record_id) {
        return Err(Error::BadRecordId);
    }
    // The record must exist before the (costly) processing.
    store.load(record_id)?;
    let p = sanjin_media::process(original, &limits).map_err(Error::Media)?;
    let photo = PhotoRef {
        hash: p.hash.clone(),
        caption: caption.trim().to_string(),
        taken_at: p.taken_at,
        gps: p.gps.map(|(lat, lon)| Gps { lat, lon }),
        bytes: original.len() as u64,
        width: p.width,
        height: p.height,
        mime: p.format.mime().to_string(),
    };
    store.attach_photo(record_id, &photo, &p.thumbnail, original)?;
    Ok(AttachedPhoto {
        record_id: record_id.to_string(),
        photo,
        thumbnail_bytes: p.thumbnail.len(),
    })
}

/// What an upload run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BlobSummary {
    /// Originals the server now holds that it did not before this run.
    pub uploaded: usize,
    /// Originals the server already had (another device, or a lost acknowledgement).
    pub already_on_server: usize,
    /// Originals still in the outbox afterwards.
    pub pending: usize,
    /// Whether the policy kept the originals back on this link.
    pub held_by_policy: bool,
    /// Blob bytes sent, retries included.
    pub bytes_sent: u64,
    /// Blob bytes the server lacked when this run first asked: `bytes_sent - bytes_needed` were
    /// sent twice (lost in a cut).
    pub bytes_needed: u64,
    /// Requests that failed on the network and were retried.
    pub retries: u32,
    /// The largest chunk sent in one request.
    pub largest_chunk: u64,
    /// Originals that failed and stay queued: (hash, reason in English).
    pub failed: Vec<(String, String)>,
    /// Set when the link failed beyond the retries: the run stopped there and the rest stays
    /// queued for the next one (English, for logs).
    pub interrupted: Option<String>,
}

/// Upload progress, for a display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobProgress {
    /// `sent` of `size` bytes of the blob `index` (of `total`) are on the server.
    Uploading {
        index: usize,
        total: usize,
        sent: u64,
        size: u64,
    },
    Retrying {
        attempt: u32,
        wait: Duration,
    },
}

#[derive(serde::Deserialize)]
struct StatusAnswer {
    state: String,
    #[serde(default)]
    received: u64,
    #[serde(skip)]
    stored_now: bool,
}

/// Uploads the originals waiting in the store's blob outbox, as `opts.policy` allows on
/// `opts.link`. Resumable and idempotent: each blob starts where the server's copy ends, and a
/// blob the server already holds is only dropped from the outbox.
pub fn upload_blobs(
    store: &mut Store,
    opts: &BlobOptions,
    progress: &mut dyn FnMut(BlobProgress),
) -> Result<BlobSummary, Error> {
    let pending = store.pending_blobs()?;
    let mut summary = BlobSummary {
        pending: pending.len(),
        ..BlobSummary::default()
    };
    if pending.is_empty() {
        return Ok(summary);
    }
    if !opts.policy.allows(opts.link) {
        summary.held_by_policy = true;
        return Ok(summary);
    }
    let client = client_for(store, opts.timeouts())?;
    let total = pending.len();
    for (index, blob) in pending.iter().enumerate() {
        if opts.cancelled() {
            return Err(Error::Cancelled);
        }
        let Some(bytes) = store.pending_blob_bytes(&blob.hash)? else {
            continue;
        };
        if sanjin_media::hash(&bytes) != blob.hash {
            // The device's own copy is damaged: never send it; say so and keep it for a look.
            summary.failed.push((
                blob.hash.clone(),
                "the queued original does not match its hash".into(),
            ));
            continue;
        }
        let job = Job {
            hash: &blob.hash,
            bytes: &bytes,
            // A blob never tried before is most likely new to the server: send it straight
            // away (the server answers `offset_mismatch` or `complete` if not), saving a round
            // trip.
            ask_first: blob.attempts > 0,
            index,
            total,
        };
        match upload_one(&client, &job, opts, &mut summary, progress) {
            Ok(fresh) => {
                store.blob_uploaded(&blob.hash)?;
                if fresh {
                    summary.uploaded += 1;
                } else {
                    summary.already_on_server += 1;
                }
            }
            Err(e) if e.is_transient() => {
                // The link is gone for now: stop, keep everything queued for the next run.
                store.blob_attempt_failed(&blob.hash)?;
                summary.interrupted = Some(e.to_string());
                break;
            }
            Err(e) => {
                store.blob_attempt_failed(&blob.hash)?;
                summary.failed.push((blob.hash.clone(), e.to_string()));
            }
        }
    }
    summary.pending = store.pending_blobs()?.len();
    Ok(summary)
}

struct Job<'a> {
    hash: &'a str,
    bytes: &'a [u8],
    ask_first: bool,
    index: usize,
    total: usize,
}

/// One blob to the server. Returns whether this run stored it (false: the server had it).
fn upload_one(
    client: &Client,
    job: &Job<'_>,
    opts: &BlobOptions,
    summary: &mut BlobSummary,
    progress: &mut dyn FnMut(BlobProgress),
) -> Result<bool, Error> {
    let Job {
        hash,
        bytes,
        ask_first,
        index,
        total,
    } = *job;
    let size = bytes.len() as u64;
    let on_sent = |sent: u64, progress: &mut dyn FnMut(BlobProgress)| {
        progress(BlobProgress::Uploading {
            index,
            total,
            sent,
            size,
        })
    };
    let mut failures = 0u32;
    let mut first = true;
    let mut mismatches = 0;
    let mut assume_absent = !ask_first;
    let mut chunk = opts.chunk_bytes;
    loop {
        if opts.cancelled() {
            return Err(Error::Cancelled);
        }
        let mut step = || -> Result<bool, Error> {
            let status = if std::mem::take(&mut assume_absent) {
                StatusAnswer {
                    state: "absent".into(),
                    received: 0,
                    stored_now: false,
                }
            } else {
                blob_status(client, hash)?
            };
            if status.state == "complete" {
                first = false;
                return Ok(false);
            }
            let mut offset = status.received.min(size);
            if first {
                summary.bytes_needed += size - offset;
                first = false;
            }
            on_sent(offset, progress);
            loop {
                let end = (offset + chunk.max(1) as u64).min(size);
                summary.bytes_sent += end - offset;
                summary.largest_chunk = summary.largest_chunk.max(end - offset);
                let started = std::time::Instant::now();
                let answer = put_chunk(
                    client,
                    hash,
                    offset,
                    size,
                    &bytes[offset as usize..end as usize],
                )?;
                if let Some(target) = opts.chunk_time {
                    let rate = (end - offset) as f64 / started.elapsed().as_secs_f64().max(1e-3);
                    chunk = ((rate * target.as_secs_f64()) as usize).clamp(64 << 10, 8 << 20);
                }
                failures = 0;
                if answer.state == "complete" {
                    on_sent(size, progress);
                    return Ok(answer.stored_now);
                }
                if answer.received <= offset {
                    return Err(Error::Protocol("the server did not take the chunk"));
                }
                offset = answer.received;
                on_sent(offset, progress);
                if opts.cancelled() {
                    return Err(Error::Cancelled);
                }
            }
        };
        match step() {
            Ok(fresh) => return Ok(fresh),
            Err(Error::Http { status: 409, code }) if code == "offset_mismatch" => {
                // Another upload moved the server's copy on: ask again.
            }
            Err(Error::Http { status: 409, code }) if code == "hash_mismatch" => {
                // What reached the server was damaged in transit; it started over.
                mismatches += 1;
                if mismatches > 2 {
                    return Err(Error::Protocol("the server kept receiving damaged bytes"));
                }
            }
            Err(e) if e.is_transient() => {
                failures += 1;
                summary.retries += 1;
                let Some(w) = opts.schedule().after(failures) else {
                    return Err(e);
                };
                progress(BlobProgress::Retrying {
                    attempt: w.attempt,
                    wait: w.wait,
                });
                crate::sync::pause(w.wait, opts.cancel.as_ref())?;
            }
            Err(e) => return Err(e),
        }
    }
}

fn blob_status(client: &Client, hash: &str) -> Result<StatusAnswer, Error> {
    let (agent, auth) = client.parts()?;
    let mut resp = agent
        .get(client.url().join(&format!("/v1/blobs/{hash}")))
        .header("Authorization", auth)
        .call()
        .map_err(Error::from_transport)?;
    let body = read_limited(&mut resp, 64 << 10)?;
    check_status(resp.status().as_u16(), &body)?;
    serde_json::from_slice(&body).map_err(|e| Error::Decode(e.to_string()))
}

fn put_chunk(
    client: &Client,
    hash: &str,
    offset: u64,
    size: u64,
    chunk: &[u8],
) -> Result<StatusAnswer, Error> {
    let (agent, auth) = client.parts()?;
    let mut resp = agent
        .put(
            client
                .url()
                .join(&format!("/v1/blobs/{hash}?offset={offset}&size={size}")),
        )
        .header("Authorization", auth)
        .content_type("application/octet-stream")
        .send(chunk)
        .map_err(Error::from_transport)?;
    let status = resp.status().as_u16();
    let body = read_limited(&mut resp, 64 << 10)?;
    check_status(status, &body)?;
    let mut answer: StatusAnswer =
        serde_json::from_slice(&body).map_err(|e| Error::Decode(e.to_string()))?;
    // 201: stored by this request; 200 `complete`: the server had it already.
    answer.stored_now = status == 201;
    Ok(answer)
}

/// What a download did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DownloadSummary {
    pub size: u64,
    /// Bytes that were already on the device from an earlier, interrupted download.
    pub resumed_from: u64,
    /// Bytes received by this call, retries included.
    pub bytes_received: u64,
    pub retries: u32,
}

/// Downloads the original of photo `hash` of record `record_id` to `dest`, resuming an earlier
/// interrupted download (kept as `dest` + `.part`) with an HTTP range. The file appears at
/// `dest` only once its bytes match the hash.
pub fn download_blob(
    store: &Store,
    record_id: &str,
    hash: &str,
    dest: &Path,
    opts: &BlobOptions,
) -> Result<DownloadSummary, Error> {
    if !validate::is_id(record_id) {
        return Err(Error::BadRecordId);
    }
    let hash = hash.trim().to_ascii_lowercase();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Protocol("a photo hash is 64 hex digits"));
    }
    let client = client_for(store, opts.timeouts())?;
    let part = part_path(dest);
    let mut summary = DownloadSummary {
        resumed_from: fs::metadata(&part).map(|m| m.len()).unwrap_or(0),
        ..DownloadSummary::default()
    };
    let mut failures = 0u32;
    loop {
        if opts.cancelled() {
            return Err(Error::Cancelled);
        }
        match fetch_rest(&client, record_id, &hash, &part, &mut summary) {
            Ok(()) => break,
            Err(e) if e.is_transient() => {
                failures += 1;
                summary.retries += 1;
                // A download keeps trying (resumable) until cancelled; the waits follow the
                // same schedule.
                let schedule = sanjin_sync::backoff::Backoff {
                    retries: u32::MAX,
                    ..opts.schedule()
                };
                if let Some(w) = schedule.after(failures) {
                    crate::sync::pause(w.wait, opts.cancel.as_ref())?;
                }
            }
            Err(e) => return Err(e),
        }
    }
    let bytes = fs::read(&part).map_err(|e| Error::Io(e.to_string()))?;
    if sanjin_media::hash(&bytes) != hash {
        let _ = fs::remove_file(&part);
        return Err(Error::Protocol(
            "the downloaded original does not match its hash; it was discarded",
        ));
    }
    summary.size = bytes.len() as u64;
    File::open(&part)
        .and_then(|f| f.sync_all())
        .and_then(|_| fs::rename(&part, dest))
        .map_err(|e| Error::Io(e.to_string()))?;
    Ok(summary)
}

fn part_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// One ranged GET from the end of the partial file; what arrives is appended as it comes, so a
/// cut keeps it. Returns when the whole blob is on the device.
fn fetch_rest(
    client: &Client,
    record_id: &str,
    hash: &str,
    part: &Path,
    summary: &mut DownloadSummary,
) -> Result<(), Error> {
    let (agent, auth) = client.parts()?;
    let have = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let mut resp = agent
        .get(
            client
                .url()
                .join(&format!("/v1/records/{record_id}/blobs/{hash}")),
        )
        .header("Authorization", auth)
        .header("Range", &format!("bytes={have}-"))
        .call()
        .map_err(Error::from_transport)?;
    let status = resp.status().as_u16();
    if status == 416 {
        // Nothing after `have`: the partial file is the whole blob (checked by the caller).
        return Ok(());
    }
    if status != 206 && status != 200 {
        let body = read_limited(&mut resp, 64 << 10)?;
        check_status(status, &body)?;
        return Err(Error::Protocol("unexpected answer to a ranged download"));
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(status == 206)
        .write(true)
        .truncate(status == 200)
        .open(part)
        .map_err(|e| Error::Io(e.to_string()))?;
    let mut reader = resp
        .body_mut()
        .with_config()
        .limit(sanjin_media::Limits::default().max_file_bytes as u64)
        .reader();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                let _ = file.sync_all();
                return Err(Error::Network(e.to_string()));
            }
        };
        file.write_all(&buf[..n])
            .map_err(|e| Error::Io(e.to_string()))?;
        summary.bytes_received += n as u64;
    }
    file.sync_all().map_err(|e| Error::Io(e.to_string()))?;
    Ok(())
}

/// How much of a blob the server holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BlobOnServer {
    /// `complete`, `partial` or `absent`.
    pub state: String,
    pub received: u64,
}

/// Asks the server how much of blob `hash` it holds (`GET /v1/blobs/{hash}`).
pub fn blob_on_server(store: &Store, hash: &str) -> Result<BlobOnServer, Error> {
    let client = client_for(store, BlobOptions::default().timeouts())?;
    let a = blob_status(&client, &hash.trim().to_ascii_lowercase())?;
    Ok(BlobOnServer {
        state: a.state,
        received: a.received,
    })
}
