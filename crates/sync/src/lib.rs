//! sanjin-sync: the sync engine of sanjin without IO (issue 11) — the device's session, its
//! automerge fallback, the server's push policy and pull plan, and the retry schedule, as state
//! machines that take events and return effects (the shape of samod-core and automerge's
//! `sync.rs`). The HTTPS client, the server's handler, the simulator (`sanjin-sim`) and later
//! bundles and phone-to-phone sync all drive these same machines.
//!
//! **Never** does it do IO: no clock, no randomness, no files, no sockets, no threads, no
//! SQLite. Request ids, time and everything read from a store come in as inputs; what to send,
//! what to write and how long to wait go out as values for the driver to carry out.
//!
//! - [`device::Session`]: what to push next, what an answer means for the outbox and the
//!   cursor, when to fall back, when the sync is done.
//! - [`fallback::Fallback`]: automerge's sync protocol per document, many per request.
//! - [`server`]: the server's exchange: the push policy of issue 10 (per document and per
//!   change), acks and refusals, the scoped pull plan.
//! - [`bundle`]: bundle parts (issue 12): export split into self-contained parts, sealed to
//!   their recipients, signed by the exporter; verify without keys, open with a box key.
//! - [`relay`]: changes received from another device judged by the server's own policy, with
//!   the facts from device certificates and the revocation list (issue 12).
//! - [`backoff::Backoff`]: the one retry schedule (sync exchanges and photo uploads).
//! - [`protocol`]: the messages (`sanjin_core::protocol`); [`same_heads`]: the one heads
//!   comparison.

pub mod backoff;
pub mod bundle;
pub mod device;
pub mod fallback;
pub mod relay;
pub mod server;

pub use sanjin_core::protocol;
pub use sanjin_core::same_heads;

use std::time::Duration;

/// What a sync is doing, for a progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Documents of the outbox the server has answered for, of those queued at the start.
    Pushing { done: usize, total: usize },
    /// The server's answer to a request has arrived (`documents`: how many documents of pulled
    /// changes it carries); it is being saved.
    Answered { documents: usize },
    /// Documents changed by pulled changes so far.
    Pulling { received: usize },
    /// Reconciling every document with automerge's sync protocol; `pending` still to settle.
    Resync { docs: usize, pending: usize },
    /// A request failed on the network; it is sent again after `wait` (same request id).
    Retrying {
        attempt: u32,
        of: u32,
        wait: Duration,
    },
}

/// The other side broke the protocol (or the driver fed the machine out of order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolError(pub &'static str);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ProtocolError {}

#[cfg(test)]
mod tests;
