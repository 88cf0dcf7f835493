//! The driver of the fallback (`sanjin_sync::fallback`) when the server does not know this
//! device's cursor (a server restored from backup, a new server): automerge's own sync protocol
//! for every document of the store, many documents' messages per request, until neither side
//! has anything to send.
//!
//! One `sync::State` per document is kept in the table `client_sync_state` of the device store
//! (per server: it is emptied when the device enrolls with another server), so an interrupted
//! fallback resumes from the heads both sides were known to share instead of from nothing.

use sanjin_store::Store;
use sanjin_sync::fallback::{self, Fallback, Read};

use sanjin_core::protocol::{RefusalCode, SyncRequest, SyncResponse};
use sanjin_sync::Progress;

use crate::Error;
use crate::sigs::{keep_sigs, sigs_for_changes};

/// What the fallback needs of the sync that runs it (the sync's driver): the store, the
/// exchange over its transport, and where to report. The fallback imports nothing of the sync.
pub(crate) trait Host {
    fn store(&mut self) -> &mut Store;
    /// At most this many bytes of messages per request.
    fn batch_limit(&self) -> usize;
    fn progress(&mut self, p: Progress);
    fn request_id(&mut self) -> [u8; 16];
    fn exchange(&mut self, request: &SyncRequest) -> Result<SyncResponse, Error>;
    /// Between two steps (where the simulator may crash the device).
    fn between(&mut self) -> Result<(), Error>;
    /// A document the server refused (reported once).
    fn refused(&mut self, id: String, code: RefusalCode, reason: String);
    /// A local document that could not be read (reported once).
    fn unreadable(&mut self, id: String, reason: String);
    /// A document the fallback changed.
    fn received(&mut self, id: &str);
}

/// Forgets every document's sync state (the device moves to another server).
pub(crate) fn forget_states(store: &mut Store) -> Result<(), Error> {
    Ok(store.forget_sync_states()?)
}

/// A document for the fallback machine.
fn read(store: &Store, id: &str) -> Result<Read, Error> {
    match store.load(id) {
        Ok(d) => Ok(Read::Doc(Box::new(d))),
        Err(sanjin_store::Error::NotFound(_)) => Ok(Read::Missing),
        Err(e @ (sanjin_store::Error::Damaged { .. } | sanjin_store::Error::Core(_))) => {
            Ok(Read::Unreadable(e.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

fn machine_error(e: fallback::Error<Error>) -> Error {
    match e {
        fallback::Error::Read(e) => e,
        fallback::Error::Protocol(p) => Error::Protocol(p),
        fallback::Error::Decode(d) => Error::Decode(d),
    }
}

/// Runs the per-document fallback against the server of `epoch` (whose log is at `cursor`).
/// Returns when neither side has anything to send for any document.
pub(crate) fn run(d: &mut dyn Host, epoch: [u8; 16], cursor: u64) -> Result<(), Error> {
    let ids: Vec<String> = d.store().ids()?.into_iter().map(|(id, _)| id).collect();
    let stored = d.store().sync_states()?;
    let mut fb = Fallback::new(ids, stored, epoch, cursor, d.batch_limit());
    while !fb.settled() {
        d.progress(fb.progress());
        let id = d.request_id();
        let store = &*d.store();
        let (request, unreadable) = fb
            .next_request(id, |id| read(store, id))
            .map_err(machine_error)?;
        for (id, reason) in unreadable {
            d.unreadable(id, reason);
        }
        let Some(mut request) = request else {
            break;
        };
        // The changes the messages carry travel with their signatures too (issue 10).
        let carried = fb.carried();
        request.sigs = sigs_for_changes(d.store(), carried.iter().map(Vec::as_slice))?;
        let response = d.exchange(&request)?;
        d.between()?;
        d.store().batch(|store| keep_sigs(store, &response))?;
        d.between()?;
        let store = &*d.store();
        let answer = fb
            .on_response(response, |id| read(store, id))
            .map_err(machine_error)?;
        for (id, code, reason) in answer.refused {
            d.refused(id, code, reason);
        }
        for (id, reason) in answer.unreadable {
            d.unreadable(id, reason);
        }
        for (id, bytes) in &answer.apply {
            let (_, changed) = d.store().apply_remote(id, bytes)?;
            if changed {
                d.received(id);
            }
            d.between()?;
        }
        let states: Vec<(String, Vec<u8>)> = answer
            .states
            .iter()
            .map(|(id, st)| (id.clone(), st.encode()))
            .collect();
        d.store().put_sync_states(&states)?;
        d.between()?;
    }
    Ok(())
}
