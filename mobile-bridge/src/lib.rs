//! sanjin-mobile-bridge: the phone apps' way into the Rust core, over UniFFI (proc-macros).
//!
//! **Never** does it hold domain, sync or storage logic of its own, or let a panic or a personal
//! detail cross the FFI.
//!
//! Thin wrappers only: [`DeviceStore`] holds a `sanjin_store::Store` (`{ inner }`) and calls the
//! core (`sanjin_core::input` to build records and edits, `RecordDoc` for steps, conflicts and
//! history) and the client (`enroll`, `sync_then_photos`, `attach_photo`). No record, merge,
//! sync or photo logic lives here.
//!
//! - [`ApiError`]: the one public error, with no personal data in its messages.
//! - Every exported call catches panics ([`guard`]); none crosses the FFI.
//! - Bundles (issue 12, `bundle.rs`): `export_bundle` / `import_bundle` over
//!   `sanjin_client::bundle`; records carry `delivered` (已送达).
//! - Phone to phone (issue 12, `meet.rs`): `MeetSession` (serve) and `meet_join` over
//!   `sanjin_client::meet`.
//! - Blocking calls: `enroll` and `sync` belong on a background thread (see the README).

uniffi::setup_scaffolding!();

mod bundle;
mod error;
mod guard;
mod meet;
mod store;
mod sync;
mod types;

pub use bundle::{BundleExport, BundleImport, BundleOptions, BundleRecordResult};
pub use error::ApiError;
pub use meet::{
    MeetConflict, MeetPeer, MeetRefusedRecord, MeetReport, MeetSession, MeetSettings, MeetStatus,
    meet_join,
};
pub use store::{DeviceStore, record_fields};
pub use sync::{Refusal, SyncCancel, SyncListener, SyncProgress, SyncReport, SyncSettings};
pub use types::*;
