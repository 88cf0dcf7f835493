//! The device's fallback when the server does not know its cursor (a server restored from
//! backup, a new server): automerge's own sync protocol for every document, many documents'
//! messages per request, until neither side has anything to send.
//!
//! The machine keeps one `sync::State` per document (the driver loads them from the store at
//! the start and saves those [`Answer::states`] names after each answer), the queue of documents
//! still talking, and the documents whose message awaits an answer. The driver reads documents
//! when asked (`read`), sends the request, applies the changes an answer brings.

use std::collections::{HashMap, HashSet, VecDeque};

use automerge::sync::{Message, State};
use sanjin_core::RecordDoc;
use sanjin_core::protocol::{DocSync, RefusalCode, SyncRequest, SyncResponse};

use crate::Progress;

/// How many messages one document may send before the fallback gives up on it (automerge
/// settles in a handful).
pub const MAX_MESSAGES_PER_DOC: u32 = 24;

/// A document as the driver read it.
pub enum Read {
    Doc(Box<RecordDoc>),
    /// Not in the store (it arrives through the change log instead).
    Missing,
    /// Damaged: reported once, skipped.
    Unreadable(String),
}

/// Why the fallback stopped.
#[derive(Debug)]
pub enum Error<E> {
    /// The driver's read failed.
    Read(E),
    Protocol(&'static str),
    Decode(String),
}

/// What one answer means.
#[derive(Debug, Default)]
pub struct Answer {
    /// Documents the server refused: (id, code, reason). Settled for this sync.
    pub refused: Vec<(String, RefusalCode, String)>,
    /// Changes to apply to the store, per document (each its own write).
    pub apply: Vec<(String, Vec<u8>)>,
    /// Sync states to save, in one transaction after the changes.
    pub states: Vec<(String, State)>,
    /// Documents that could not be read.
    pub unreadable: Vec<(String, String)>,
}

/// The fallback of one sync.
pub struct Fallback {
    epoch: [u8; 16],
    cursor: u64,
    limit: usize,
    total: usize,
    states: HashMap<String, State>,
    queue: VecDeque<String>,
    queued: HashSet<String>,
    sent_count: HashMap<String, u32>,
    /// Documents whose message is awaiting the server's answer, kept loaded.
    cache: HashMap<String, RecordDoc>,
    in_flight: Option<([u8; 16], Vec<String>)>,
}

impl Fallback {
    /// The fallback against the server of `epoch` (whose log is at `cursor`) for the store's
    /// documents `ids`, with the sync states kept from an earlier fallback.
    pub fn new(
        ids: Vec<String>,
        stored: impl IntoIterator<Item = (String, Vec<u8>)>,
        epoch: [u8; 16],
        cursor: u64,
        batch_limit_bytes: usize,
    ) -> Fallback {
        let states = stored
            .into_iter()
            .filter_map(|(id, b)| Some((id, State::decode(&b).ok()?)))
            .collect();
        let total = ids.len();
        let queue: VecDeque<String> = ids.into();
        Fallback {
            epoch,
            cursor,
            limit: batch_limit_bytes.max(1),
            total,
            states,
            queued: queue.iter().cloned().collect(),
            queue,
            sent_count: HashMap::new(),
            cache: HashMap::new(),
            in_flight: None,
        }
    }

    /// Whether every document has settled.
    pub fn settled(&self) -> bool {
        self.queued.is_empty()
    }

    pub fn progress(&self) -> Progress {
        Progress::Resync {
            docs: self.total,
            pending: self.queued.len(),
        }
    }

    fn load<E>(
        &mut self,
        id: &str,
        read: &mut impl FnMut(&str) -> Result<Read, E>,
        unreadable: &mut Vec<(String, String)>,
    ) -> Result<Option<RecordDoc>, Error<E>> {
        if let Some(d) = self.cache.remove(id) {
            return Ok(Some(d));
        }
        match read(id).map_err(Error::Read)? {
            Read::Doc(d) => Ok(Some(*d)),
            Read::Missing => Ok(None),
            Read::Unreadable(reason) => {
                unreadable.push((id.to_string(), reason));
                Ok(None)
            }
        }
    }

    /// The next request (`None`: nothing left to say), with the documents that could not be
    /// read. The request carries the server's own epoch and cursor (valid, so no resync again)
    /// and asks for as little of the log as possible: it is read from cursor 0 afterwards.
    #[allow(clippy::type_complexity)]
    pub fn next_request<E>(
        &mut self,
        request_id: [u8; 16],
        mut read: impl FnMut(&str) -> Result<Read, E>,
    ) -> Result<(Option<SyncRequest>, Vec<(String, String)>), Error<E>> {
        let mut unreadable = Vec::new();
        if self.queued.is_empty() {
            return Ok((None, unreadable));
        }
        let mut request = SyncRequest {
            request_id,
            epoch: self.epoch,
            cursor: self.cursor,
            max_response_bytes: 1,
            ..SyncRequest::default()
        };
        let mut size = 0usize;
        while let Some(id) = self.queue.pop_front() {
            if !self.queued.remove(&id) {
                continue; // settled meanwhile (refused)
            }
            let Some(mut doc) = self.load(&id, &mut read, &mut unreadable)? else {
                continue;
            };
            let state = self.states.entry(id.clone()).or_default();
            if let Some(message) = doc.generate_sync_message(state) {
                let n = self.sent_count.entry(id.clone()).or_default();
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
                self.cache.insert(id, doc);
                if size >= self.limit {
                    break;
                }
            }
        }
        if request.am_sync.is_empty() {
            return Ok((None, unreadable));
        }
        self.in_flight = Some((
            request_id,
            request.am_sync.iter().map(|m| m.doc_id.clone()).collect(),
        ));
        Ok((Some(request), unreadable))
    }

    /// Every change of each document the request in flight names (a sync message may carry a
    /// whole document rather than single changes), for the signatures that go with them.
    pub fn carried(&mut self) -> Vec<Vec<u8>> {
        let Some((_, ids)) = &self.in_flight else {
            return Vec::new();
        };
        ids.iter()
            .filter_map(|id| self.cache.get_mut(id).map(|d| d.save_after(&[])))
            .collect()
    }

    /// The server's answer to the request in flight.
    pub fn on_response<E>(
        &mut self,
        response: SyncResponse,
        mut read: impl FnMut(&str) -> Result<Read, E>,
    ) -> Result<Answer, Error<E>> {
        let (_, sent) = self.in_flight.take().ok_or(Error::Protocol(
            "an answer arrived while no request was in flight",
        ))?;
        let mut out = Answer::default();
        let mut touched: HashSet<String> = sent.into_iter().collect();
        // A document the server refuses (out of this device's scope, changes it may not take)
        // is settled as far as this sync goes, and reported.
        let mut refused = HashSet::new();
        for r in response.refused {
            self.queued.remove(&r.doc_id);
            refused.insert(r.doc_id.clone());
            out.refused.push((r.doc_id, r.code, r.reason));
        }
        for m in response.am_sync {
            if refused.contains(&m.doc_id) {
                continue;
            }
            // A document this device lacks arrives through the change log instead.
            let Some(mut doc) = self.load(&m.doc_id, &mut read, &mut out.unreadable)? else {
                continue;
            };
            let message = Message::decode(&m.message)
                .map_err(|e| Error::Decode(format!("a sync message: {e}")))?;
            let state = self.states.entry(m.doc_id.clone()).or_default();
            let before = doc.heads();
            doc.receive_sync_message(state, message)
                .map_err(|e| Error::Decode(format!("a sync message: {e}")))?;
            if !crate::same_heads(&doc.heads(), &before) {
                out.apply.push((m.doc_id.clone(), doc.save_after(&before)));
            }
            if self.queued.insert(m.doc_id.clone()) {
                self.queue.push_back(m.doc_id.clone());
            }
            touched.insert(m.doc_id.clone());
            self.cache.insert(m.doc_id, doc);
        }
        // A document the server did not answer is settled: it answers while it has something
        // to say. Only the queued ones stay loaded.
        let queued = &self.queued;
        self.cache.retain(|id, _| queued.contains(id));
        let mut touched: Vec<String> = touched.into_iter().collect();
        touched.sort();
        out.states = touched
            .into_iter()
            .filter_map(|id| {
                let s = self.states.get(&id)?.clone();
                Some((id, s))
            })
            .collect();
        Ok(out)
    }
}
