//! Sync for the apps: blocking, on a thread the app chooses, with progress reported to a foreign
//! callback and a cancel token another thread can set.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sanjin_core::domain::RecordKind;

use crate::error::ApiError;
use crate::types::field_zh;

/// What a sync is doing, for a progress display.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum SyncProgress {
    /// Records of the outbox the server has answered for, of those queued at the start.
    Pushing { done: u32, total: u32 },
    /// The server's answer has arrived (`documents`: records of changes it carries) and is
    /// being saved.
    Answered { documents: u32 },
    /// Records changed by what the server sent so far.
    Pulling { received: u32 },
    /// The server lost track of this device (restored from a backup, a new server): every
    /// record is being reconciled; `pending` still to settle.
    Resync { docs: u32, pending: u32 },
    /// The link broke; the same request is sent again after `wait_ms`.
    Retrying { attempt: u32, of: u32, wait_ms: u64 },
    /// After the records: `sent` of `size` bytes of the original photo `index` (from 0, of
    /// `total` waiting) are on the server. Only when the photo policy allows it on this link.
    UploadingPhoto {
        index: u32,
        total: u32,
        sent: u64,
        size: u64,
    },
}

impl SyncProgress {
    /// A step of the client's records-then-photos flow; `retries` is the photo upload's retry
    /// budget (the records' own retries carry theirs).
    pub(crate) fn of(p: sanjin_client::FlowProgress, retries: u32) -> Self {
        match p {
            sanjin_client::FlowProgress::Records(p) => p.into(),
            sanjin_client::FlowProgress::Photos(p) => SyncProgress::photo(p, retries),
        }
    }

    fn photo(p: sanjin_client::BlobProgress, retries: u32) -> Self {
        use sanjin_client::BlobProgress as P;
        match p {
            P::Uploading {
                index,
                total,
                sent,
                size,
            } => SyncProgress::UploadingPhoto {
                index: n(index),
                total: n(total),
                sent,
                size,
            },
            P::Retrying { attempt, wait } => SyncProgress::Retrying {
                attempt,
                of: retries,
                wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            },
        }
    }
}

fn n(x: usize) -> u32 {
    u32::try_from(x).unwrap_or(u32::MAX)
}

impl From<sanjin_client::Progress> for SyncProgress {
    fn from(p: sanjin_client::Progress) -> Self {
        use sanjin_client::Progress as P;
        match p {
            P::Pushing { done, total } => SyncProgress::Pushing {
                done: n(done),
                total: n(total),
            },
            P::Answered { documents } => SyncProgress::Answered {
                documents: n(documents),
            },
            P::Pulling { received } => SyncProgress::Pulling {
                received: n(received),
            },
            P::Resync { docs, pending } => SyncProgress::Resync {
                docs: n(docs),
                pending: n(pending),
            },
            P::Retrying { attempt, of, wait } => SyncProgress::Retrying {
                attempt,
                of,
                wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            },
        }
    }
}

/// Implemented by the app to follow a sync. Called on the thread that called `sync`, between
/// round trips: keep it short and hand the value to the UI thread yourself.
#[uniffi::export(callback_interface)]
pub trait SyncListener: Send + Sync {
    fn on_progress(&self, progress: SyncProgress);
}

/// Cancels a running sync from any thread. The sync stops between round trips and during
/// waits, and returns `ApiError::Cancelled`; everything applied until then is saved.
#[derive(uniffi::Object, Default)]
pub struct SyncCancel {
    pub(crate) flag: Arc<AtomicBool>,
}

#[uniffi::export]
impl SyncCancel {
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(SyncCancel::default())
    }

    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
}

/// How a sync runs on a weak link; `None` keeps the default.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct SyncSettings {
    /// At most this many bytes of changes per upload request (256 KiB by default; at least
    /// 1024). Smaller batches lose less to a dropped connection on a 2G link.
    #[uniffi(default)]
    pub batch_bytes: Option<u32>,
    /// The whole of one HTTP exchange, in seconds (120 by default).
    #[uniffi(default)]
    pub timeout_seconds: Option<u32>,
    /// When originals of photos go, with the link type from `set_link_type` (`WifiOnly` by
    /// default: a phone's mobile data is metered; thumbnails go with the records anyway).
    #[uniffi(default)]
    pub photos: Option<crate::types::PhotoPolicy>,
}

/// A server's refusal of one record (it stays in the outbox, on the device, and is not sent
/// again until it changes; `DeviceStore.show` keeps saying why). No personal data: the server's
/// own words are not passed on.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Refusal {
    pub id: String,
    /// `forbidden`, `role`, `bad_signature`, `depends_on_refused`, `revoked`, `invalid_field`,
    /// `history_rewrite`, `impersonation`, `conflict_resolution`, `foreign_actor`, `malformed`,
    /// `missing_deps` or `too_large` (see `docs/PROTOCOL.md`).
    pub code: String,
    /// Why, and what to do, in Chinese, for the member (issue 10).
    pub message_zh: String,
    /// The field it is about (schema name, or `status` for a workflow step), if any.
    pub field: Option<String>,
    /// What members call that field.
    pub field_zh: Option<String>,
}

/// What a sync did.
#[derive(Debug, Clone, uniffi::Record)]
pub struct SyncReport {
    /// Records the server acknowledged.
    pub sent: u32,
    /// Records changed by what the server sent.
    pub received: u32,
    /// Records touched by this sync that now have open conflicts.
    pub conflicts: u32,
    pub refused: Vec<Refusal>,
    /// Ids of local records that could not be read and were not sent.
    pub unreadable: Vec<String>,
    /// Records still waiting to be sent (refused, or changed during the sync).
    pub still_queued: u32,
    pub round_trips: u32,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Whether the per-record reconciliation ran.
    pub resynced: bool,
    /// Originals of photos this sync stored on the server.
    pub photos_uploaded: u32,
    /// Originals the server already had (sent by another device, or an earlier cut sync).
    pub photos_already_on_server: u32,
    /// Originals still waiting on this device after the sync.
    pub photos_pending: u32,
    /// Whether the photo policy kept the originals back on this link.
    pub photos_held_by_policy: bool,
    /// Bytes of originals sent, retries included.
    pub photo_bytes_sent: u64,
    /// Hashes of originals that failed and stay queued (a damaged local copy, a refusal).
    pub photos_failed: Vec<String>,
    /// The link broke during the originals: the rest stays queued, and the next sync resumes
    /// each where the server's copy ends.
    pub photos_interrupted: bool,
}

impl SyncReport {
    /// `store` is the syncing store: it kept the field each refusal names.
    pub(crate) fn of(
        store: &sanjin_store::Store,
        s: sanjin_client::SyncSummary,
        b: sanjin_client::BlobSummary,
    ) -> Result<Self, ApiError> {
        let mut refused = Vec::with_capacity(s.refused.len());
        for (id, code, _) in s.refused {
            let field = match store.refusal(&id)? {
                Some((r, _)) if !r.field.is_empty() && r.code == code.code() => Some(r.field),
                _ => None,
            };
            let kind = store
                .index_entry(&id)?
                .and_then(|e| RecordKind::parse(&e.kind));
            refused.push(Refusal {
                message_zh: code.zh().into(),
                field_zh: field.as_deref().zip(kind).and_then(|(f, k)| field_zh(k, f)),
                field,
                code: code.code().into(),
                id,
            });
        }
        Ok(SyncReport {
            sent: n(s.sent),
            received: n(s.received),
            conflicts: n(s.conflicts),
            refused,
            unreadable: s.unreadable.into_iter().map(|(id, _)| id).collect(),
            still_queued: n(s.still_queued),
            round_trips: n(s.round_trips),
            bytes_up: s.bytes_up,
            bytes_down: s.bytes_down,
            resynced: s.resynced,
            photos_uploaded: n(b.uploaded),
            photos_already_on_server: n(b.already_on_server),
            photos_pending: n(b.pending),
            photos_held_by_policy: b.held_by_policy,
            photo_bytes_sent: b.bytes_sent,
            photos_failed: b.failed.into_iter().map(|(hash, _)| hash).collect(),
            photos_interrupted: b.interrupted.is_some(),
        })
    }
}
