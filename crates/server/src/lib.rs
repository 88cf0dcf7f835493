//! sanjin-server: the sync server of sanjin (三进).
//!
//! **Never:** run SQL or hold a database connection (every read and write is a typed call on its
//! [`sanjin_store::server::ServerStorage`], several writes that belong together one unit of work
//! by `ServerData::atomically`), or answer before what the answer acknowledges has committed.
//!
//! Devices (phones, the CLI) push the record documents the server lacks and pull the changes in
//! their scope that they lack, in one request/response in the common case (docs/PROTOCOL.md).
//! The server enforces who may read and write what: members their own group's records, leaders
//! also the review steps of their group, staff everything, admins accounts and the directory.
//!
//! Embedded defaults: one data folder with one SQLite file (`sanjin.sqlite`, kept by
//! `sanjin_store::server::SqliteServerStorage`) and a `blobs/` folder.
//!
//! Layout by concern: `data` (the data folder's operations over the storage), `open` (opening
//! it: storage, key, one-time vouching), `key` (the server's key and pure key helpers, a leaf),
//! `sync` (one exchange), `trust` (signatures), `bulk` (imports), `state` (what every handler
//! shares: [`AppState`], device authentication), `router` ([`app`]: every route), `api::enroll`
//! and `api::sync` (the device API), `keyring` (issue 12: box keys, the key directory,
//! revocations, receipts), `api::trust`, `relay` and `api::bundle` (bundles), `blobs` (photo originals), `console` (the staff console).
//! Route modules import `state`; `state` imports none of them.
//!
//! - [`ServerData`]: the data folder — accounts, devices, enrollment codes, the directory, and
//!   one sync exchange ([`ServerData::sync`]). Blocking; used by the HTTP layer, the admin CLI
//!   and tests.
//! - [`app`]: the axum router, testable without a socket.
//! - [`spawn`], [`serve`], [`run_blocking`]: binding, TLS by rustls (ring), graceful shutdown.

mod api;
pub mod blobs;
mod bulk;
pub mod console;
mod data;
/// Issue 13: the directory kept by the office.
pub mod directory;
mod error;
mod key;
mod keyring;
mod model;
mod open;
mod relay;
mod router;
mod run;
mod state;
mod sync;
mod trust;

pub use api::bundle::{BUNDLE_BODY_BYTES, BUNDLE_CONTENT_TYPE};
pub use api::sync::SYNC_CONTENT_TYPE;
pub use blobs::{BlobHash, BlobReader, BlobState, BlobStore, FsBlobStore, Uploader};
pub use bulk::BulkReport;
pub use data::{BLOBS_DIR, DB_FILE, SERVER_ID, SERVER_SCHEMA_VERSION, ServerData};
pub use error::{AppError, Error, Result};
pub use keyring::{GroupSecret, SERVER_RECIPIENT, group_recipient};
pub use model::{
    Account, Caller, DeviceInfo, EnrollRequest, Enrollment, ImportReport, IssuedCode,
    KeyRegistration, KeyRequest, Limits, Role,
};
pub use model::{GroupSecretHex, TrustAnswer, TrustRequest};
pub use relay::{DocOutcome, PartRefusal, PartReport};
pub use router::app;
pub use run::{
    CERT_FILE, Config, KEY_FILE, Running, TLS_DIR, TlsMode, ensure_self_signed, init_logging,
    run_blocking, serve, shutdown_signal, spawn,
};
pub use run::{SelfSignedCert, certificate_names, self_signed, self_signed_names};
pub use state::AppState;
pub use sync::{Answer, Exchange, SyncOutcome};
