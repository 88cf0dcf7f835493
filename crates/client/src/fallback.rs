//! The fallback when the server does not know this device's cursor (a server restored from
//! backup, a new server): automerge's own sync protocol for every document of the store, many
//! documents' messages per request, until neither side has anything to send.
//!
//! One `sync::State` per document is kept in the table `client_sync_state` of the device store
//! (per server: it is emptied when the device enrolls with another server), so an interrupted
//! fallback resumes from the heads both sides were known to share instead of from nothing.

use std::collections::{HashMap, HashSet, VecDeque};

use automerge::sync::{Message, State};
use sanjin_core::RecordDoc;
use sanjin_core::protocol::DocSync;
use sanjin_store::Store;
use sanjin_store::rusqlite::params;

use crate::Error;
use crate::sync::{Progress, Session};

/// How many messages one document may send before the fallback gives up on it (automerge
/// settles in a handful).
const MAX_MESSAGES_PER_DOC: u32 = 24;

const CREATE: &str = "CREATE TABLE IF NOT EXISTS client_sync_state (
    doc_id TEXT PRIMARY KEY,
    state BLOB NOT NULL
) WITHOUT ROWID";

fn ensure_table(store: &mut Store) -> Result<(), Error> {
    store
        .connection_mut()
        .execute_batch(CREATE)
        .map_err(sanjin_store::Error::from)?;
    Ok(())
}

/// Forgets every document's sync state (the device moves to another server).
pub(crate) fn forget_states(store: &mut Store) -> Result<(), Error> {
    ensure_table(store)?;
    store
        .connection_mut()
        .execute("DELETE FROM client_sync_state", [])
        .map_err(sanjin_store::Error::from)?;
    Ok(())
}

fn save_states<'a>(
    store: &mut Store,
    states: impl IntoIterator<Item = (&'a String, &'a State)>,
) -> Result<(), Error> {
    let tx = store
        .connection_mut()
        .savepoint()
        .map_err(sanjin_store::Error::from)?;
    {
        let mut stmt = tx
            .prepare_cached(
                "INSERT INTO client_sync_state (doc_id, state) VALUES (?1, ?2) \
                 ON CONFLICT(doc_id) DO UPDATE SET state = excluded.state",
            )
            .map_err(sanjin_store::Error::from)?;
        for (id, state) in states {
            stmt.execute(params![id, state.encode()])
                .map_err(sanjin_store::Error::from)?;
        }
    }
    tx.commit().map_err(sanjin_store::Error::from)?;
    Ok(())
}

fn load(
    s: &mut Session,
    cache: &mut HashMap<String, RecordDoc>,
    id: &str,
) -> Result<Option<RecordDoc>, Error> {
    if let Some(d) = cache.remove(id) {
        return Ok(Some(d));
    }
    match s.store.load(id) {
        Ok(d) => Ok(Some(d)),
        Err(sanjin_store::Error::NotFound(_)) => Ok(None),
        Err(e @ (sanjin_store::Error::Damaged { .. } | sanjin_store::Error::Core(_))) => {
            if !s.summary.unreadable.iter().any(|(x, _)| x == id) {
                s.summary.unreadable.push((id.to_string(), e.to_string()));
            }
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs the per-document fallback against the server of `epoch` (whose log is at `cursor`).
/// Returns when neither side has anything to send for any document.
pub(crate) fn run(s: &mut Session, epoch: [u8; 16], cursor: u64) -> Result<(), Error> {
    ensure_table(s.store)?;
    let ids: Vec<String> = s.store.ids()?.into_iter().map(|(id, _)| id).collect();
    let total = ids.len();
    let mut states: HashMap<String, State> = HashMap::with_capacity(total);
    {
        let conn = s.store.connection_mut();
        let mut stmt = conn
            .prepare("SELECT doc_id, state FROM client_sync_state")
            .map_err(sanjin_store::Error::from)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(sanjin_store::Error::from)?;
        for row in rows {
            let (id, bytes) = row.map_err(sanjin_store::Error::from)?;
            if let Ok(st) = State::decode(&bytes) {
                states.insert(id, st);
            }
        }
    }
    let mut queue: VecDeque<String> = ids.into();
    let mut queued: HashSet<String> = queue.iter().cloned().collect();
    let mut sent_count: HashMap<String, u32> = HashMap::new();
    // Documents whose message is awaiting the server's answer, kept loaded.
    let mut cache: HashMap<String, RecordDoc> = HashMap::new();
    let limit = s.opts.batch_limit_bytes.max(1);

    while !queued.is_empty() {
        (s.progress)(Progress::Resync {
            docs: total,
            pending: queued.len(),
        });
        // The request carries the server's own epoch and cursor (valid, so no resync again)
        // and asks for as little of the log as possible: it is read from cursor 0 afterwards.
        let mut request = s.fresh_request(epoch, cursor);
        request.max_response_bytes = 1;
        let mut size = 0usize;
        while let Some(id) = queue.pop_front() {
            if !queued.remove(&id) {
                continue; // settled meanwhile (refused)
            }
            let Some(mut doc) = load(s, &mut cache, &id)? else {
                continue;
            };
            let state = states.entry(id.clone()).or_default();
            if let Some(message) = doc.generate_sync_message(state) {
                let n = sent_count.entry(id.clone()).or_default();
                *n += 1;
                if *n > MAX_MESSAGES_PER_DOC {
                    return Err(Error::Protocol(
                        "the per-document fallback does not settle for a document",
                    ));
                }
                let message = message.encode();
                size += message.len() + id.len() + 8;
                request.am_sync.push(DocSync {
                    doc_id: id.clone(),
                    message,
                });
                cache.insert(id, doc);
                if size >= limit {
                    break;
                }
            }
        }
        if request.am_sync.is_empty() {
            break;
        }
        // The changes the messages carry travel with their signatures too (issue 10).
        // A sync message may carry a whole document rather than single changes, so every change
        // of each document named is covered (all of them: the fallback is rare).
        let carried: Vec<Vec<u8>> = request
            .am_sync
            .iter()
            .filter_map(|m| cache.get_mut(&m.doc_id).map(|d| d.save_after(&[])))
            .collect();
        request.sigs = crate::sync::sigs_for_changes(s.store, carried.iter().map(Vec::as_slice))?;
        let response = s.exchange(&request)?;
        s.store
            .batch(|store| crate::sync::keep_sigs(store, &response))?;
        let mut touched: HashSet<String> =
            request.am_sync.iter().map(|m| m.doc_id.clone()).collect();
        // A document the server refuses (out of this device's scope, changes it may not take)
        // is settled as far as this sync goes, and reported.
        let mut refused = HashSet::new();
        for r in response.refused {
            queued.remove(&r.doc_id);
            refused.insert(r.doc_id.clone());
            if !s.summary.refused.iter().any(|(id, _, _)| id == &r.doc_id) {
                s.summary.refused.push((r.doc_id, r.code, r.reason));
            }
        }
        for m in response.am_sync {
            if refused.contains(&m.doc_id) {
                continue;
            }
            // A document this device lacks arrives through the change log instead.
            let Some(mut doc) = load(s, &mut cache, &m.doc_id)? else {
                continue;
            };
            let message = Message::decode(&m.message)
                .map_err(|e| Error::Decode(format!("a sync message: {e}")))?;
            let state = states.entry(m.doc_id.clone()).or_default();
            let before = doc.heads();
            doc.receive_sync_message(state, message)
                .map_err(|e| Error::Decode(format!("a sync message: {e}")))?;
            if doc.heads() != before {
                let bytes = doc.save_after(&before);
                let (_, changed) = s.store.apply_remote(&m.doc_id, &bytes)?;
                if changed {
                    s.state.received.insert(m.doc_id.clone());
                    s.state.touched.insert(m.doc_id.clone());
                }
            }
            if queued.insert(m.doc_id.clone()) {
                queue.push_back(m.doc_id.clone());
            }
            touched.insert(m.doc_id.clone());
            cache.insert(m.doc_id, doc);
        }
        // A document the server did not answer is settled: it answers while it has something
        // to say. Only the queued ones stay loaded.
        cache.retain(|id, _| queued.contains(id));
        save_states(
            s.store,
            touched
                .iter()
                .filter_map(|id| states.get(id).map(|st| (id, st))),
        )?;
    }
    Ok(())
}
