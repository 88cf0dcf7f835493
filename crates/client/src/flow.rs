//! The README's "sync the records, then the photos" as one call, for every front end: the CLI's
//! `sanjin device sync`, the phone bridge's `DeviceStore.sync` and the demo run exactly this.
//!
//! First [`sync`](crate::sync) (push the outbox, pull the member's scope); only when that
//! succeeded, the trust refresh (issue 12, [`crate::trust::refresh`]: the server's key
//! directory, revocation list, group secrets and receipts of relayed records, then the cargo
//! carried for others; a failure there is noted in the summary, never fatal: the records are
//! saved and bundles keep the keys they had), then [`upload_blobs`](crate::upload_blobs) (the photo originals waiting on the device,
//! as the policy allows on the link). Records always go first: a record's thumbnail travels
//! inside it, so the server knows a photo before its original arrives, and a link that only
//! lasts a minute is spent on what members and leaders need first.
//!
//! Nothing here talks to the network or the store itself; it only orders the two public steps,
//! tags their progress, and says which step failed.

use sanjin_store::Store;

use crate::trust::TrustSummary;
use crate::{
    BlobOptions, BlobProgress, BlobSummary, Error, Progress, SyncOptions, SyncSummary, upload_blobs,
};

/// What [`sync_then_photos`] is doing: the records' progress, then the originals'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowProgress {
    Records(Progress),
    Photos(BlobProgress),
}

/// What [`sync_then_photos`] did: the records' summary and the originals'.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowSummary {
    pub records: SyncSummary,
    pub photos: BlobSummary,
    /// What the trust refresh after the records' sync did (issue 12).
    pub trust: TrustSummary,
    /// Why the trust refresh failed, if it did (the flow went on to the photos).
    pub trust_error: Option<String>,
}

/// The step of the flow that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowStep {
    /// Syncing the records (nothing of the photos was tried).
    Records,
    /// Uploading the originals (the records' sync had completed and is saved).
    Photos,
}

/// A failed flow: which step, and the client's error (boxed: a failed sync is rare and the
/// client's error is large).
#[derive(Debug, thiserror::Error)]
#[error("{}: {error}", match step { FlowStep::Records => "syncing the records", FlowStep::Photos => "uploading the photo originals" })]
pub struct FlowError {
    pub step: FlowStep,
    #[source]
    pub error: Box<Error>,
}

impl FlowError {
    fn new(step: FlowStep, error: Error) -> FlowError {
        FlowError {
            step,
            error: Box::new(error),
        }
    }
}

impl From<FlowError> for Error {
    fn from(e: FlowError) -> Error {
        *e.error
    }
}

/// Syncs the store's records with its server, then uploads the photo originals waiting on the
/// device as `photos.policy` allows on `photos.link`. `progress` hears both steps in order.
/// When the records' sync fails, the originals are not tried; when the originals fail, what the
/// records' sync did is saved (the store holds it) but not returned.
pub fn sync_then_photos(
    store: &mut Store,
    records: &SyncOptions,
    photos: &BlobOptions,
    progress: &mut dyn FnMut(FlowProgress),
) -> Result<FlowSummary, FlowError> {
    let options = records;
    let records = crate::sync(store, options, &mut |p| progress(FlowProgress::Records(p)))
        .map_err(|e| FlowError::new(FlowStep::Records, e))?;
    let cancelled = options
        .cancel
        .as_ref()
        .is_some_and(|c| c.load(std::sync::atomic::Ordering::SeqCst));
    let (trust, trust_error) = if cancelled {
        (TrustSummary::default(), Some(Error::Cancelled.to_string()))
    } else {
        match crate::client_for(store, options.timeouts())
            .and_then(|client| crate::trust::refresh(store, &client))
        {
            Ok(t) => (t, None),
            Err(e) => (TrustSummary::default(), Some(e.to_string())),
        }
    };
    let photos = upload_blobs(store, photos, &mut |p| progress(FlowProgress::Photos(p)))
        .map_err(|e| FlowError::new(FlowStep::Photos, e))?;
    Ok(FlowSummary {
        records,
        photos,
        trust,
        trust_error,
    })
}
