//! sanjin-core: the 三进 domain as automerge documents, shared by the phone apps and the server.
//!
//! **Never** does it do IO or depend on a store, a transport or a runtime: no clock, no
//! randomness, no files, no sockets, no SQLite, no tokio.
//!
//! This crate is sans-IO: it has no clock, no randomness, no files and no sockets. Ids, time
//! (`Millis`) and the device's actor id come in from the caller; bytes go out to whoever stores
//! or sends them.
//!
//! - [`domain`]: visits, opinion notes, households, plan items and the directory, in their words.
//! - [`schema`]: which field is stored how (scalar, text, set, log), and what members call it.
//! - [`validate`]: errors that name the field and the reason.
//! - [`doc`]: one record as one automerge document; edits, conflicts, history, merging.
//! - [`workflow`]: states derived from the append-only event list.
//! - [`index`]: the row a store indexes for list and filter queries.
//! - [`import`]: the record-import format (JSON lines, sets with a manifest), parsed sans-IO.
//! - [`sign`]: device keys, certificates, change signatures, and the server's signed statements
//!   (receipts, the revocation list, the key directory of issue 12).
//! - [`seal`]: bytes sealed to several recipients' X25519 keys (bundles, issue 12).
//! - [`time`]: Beijing time (UTC+8): instants to wall times and days, the display formats.

pub mod doc;
pub mod domain;
pub mod error;
pub mod import;
pub mod index;
pub mod input;
pub mod protocol;
mod record_check;
pub mod rules;
pub mod schema;
pub mod seal;
pub mod sign;
pub mod testdata;
pub mod time;
pub mod validate;
pub mod workflow;

pub use automerge::ChangeHash;
pub use doc::{Author, Conflict, ConflictValue, Edit, HistoryEntry, Millis, RecordDoc, RecordView};
pub use domain::RecordData;
pub use error::{Error, Reason, ValidationError};
pub use index::IndexEntry;

/// Whether two lists of change hashes name the same heads: equal as sets, in any order. The
/// one heads comparison of the workspace (issue 11): the device's sync engine (refusals at the
/// current heads, documents already acknowledged), its fallback and the simulator use it.
pub fn same_heads(a: &[ChangeHash], b: &[ChangeHash]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}
