//! The device's side of one sync (docs/PROTOCOL.md): which outbox documents the next request
//! pushes, what the server's answer means for the outbox, the refusals and the cursor, when the
//! per-document fallback runs, and when the sync is done.
//!
//! The driver (the HTTPS client, the simulator, later bundles and phone-to-phone sync) reads the
//! store and carries out what the session returns:
//!
//! ```text
//! loop {
//!     plan = session.plan(outbox, |id| read the document and its refusal)   // reads only
//!     ack plan.already_acked; request = session.request(plan, fresh id) (+ signatures)
//!     response = exchange(request)                  // retries: backoff::Backoff
//!     for commit in session.on_response(&response)? { one store transaction each }
//!     match session.committed(changed documents)? {
//!         After::Fallback { .. } => { run fallback::Fallback; commit session.fallback_done() }
//!         After::Pulled => if session.next(outbox ids)? == Next::Done { break }
//!     }
//! }
//! ```

use std::collections::{BTreeSet, HashSet};

use sanjin_core::protocol::{DocChanges, RefusalCode, SyncRequest, SyncResponse};
use sanjin_core::{ChangeHash, RecordDoc, same_heads};

use crate::{Progress, ProtocolError};

/// How a session batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// At most this many bytes of pushed changes per request, before compression (a single
    /// larger document goes alone).
    pub batch_limit_bytes: usize,
    /// At most this many bytes of pulled changes per answer.
    pub max_response_bytes: u32,
}

/// A deliberate bug, for the simulator to show that it catches one (issue 11). Only in tests
/// and with the `fault-injection` feature; production builds cannot name it.
#[cfg(any(test, feature = "fault-injection"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    #[default]
    None,
    /// The acks and the new cursor are committed in one transaction and the pulled changes they
    /// cover in a second one: a crash between the two loses changes the cursor has moved past.
    CursorBeforeData,
}

/// What an outbox document read by the driver turned out to be.
pub enum Read {
    /// The document, and the heads at which the server refused it (if it did).
    Doc {
        doc: Box<RecordDoc>,
        refused_at: Option<Vec<ChangeHash>>,
    },
    /// It could not be read (damaged): reported, not pushed.
    Unreadable(String),
}

/// The next request's pushes, as planned from the outbox.
#[derive(Debug, Default)]
pub struct Plan {
    pub pushes: Vec<DocChanges>,
    /// The heads each push brings the server to (what an ack of it acknowledges).
    pub pushed_heads: Vec<Vec<ChangeHash>>,
    /// Documents the server already acknowledged at their current heads: the driver acks them
    /// in the store (they leave the outbox) before sending.
    pub already_acked: Vec<(String, Vec<ChangeHash>)>,
    /// Documents that could not be read: (id, reason).
    pub unreadable: Vec<(String, String)>,
}

/// A refusal to remember at the heads pushed (not pushed again until the record changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalMark {
    pub doc_id: String,
    pub heads: Vec<ChangeHash>,
    pub code: RefusalCode,
    pub field: String,
    pub reason: String,
}

/// Writes the driver makes in **one** store transaction, in this order: acks (each also clears
/// the document's refusal), refusal marks, then — with `pulled` — the answer's signatures and
/// its changes, then the position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commit {
    pub acks: Vec<(String, Vec<ChangeHash>)>,
    pub refusals: Vec<RefusalMark>,
    /// Apply the answer's signatures and pulled changes.
    pub pulled: bool,
    /// The new (epoch, cursor), written last.
    pub position: Option<([u8; 16], u64)>,
}

/// What comes after an answer's commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// The server does not know this device's cursor: run the per-document fallback against
    /// this epoch and log position, then commit [`Session::fallback_done`].
    Fallback { epoch: [u8; 16], cursor: u64 },
    /// The answer is saved; ask [`Session::next`] whether another round is needed.
    Pulled,
}

/// Whether the sync goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Again,
    Done,
}

/// What a sync has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Documents the server acknowledged.
    pub sent: usize,
    /// Documents changed by what the server sent.
    pub received: BTreeSet<String>,
    /// Documents acked or changed by this sync (for the conflict count).
    pub touched: BTreeSet<String>,
    /// Pushes the server refused: (id, code, reason).
    pub refused: Vec<(String, RefusalCode, String)>,
    /// Whether the fallback ran.
    pub resynced: bool,
}

struct InFlight {
    request_id: [u8; 16],
    doc_ids: Vec<String>,
    heads: Vec<Vec<ChangeHash>>,
}

struct Answered {
    resync: bool,
    more: bool,
    epoch: [u8; 16],
    cursor: u64,
    pulled_any: bool,
    pushed_any: bool,
}

/// One device's sync session: events in (an outbox read, an answer, commits done), effects out
/// (a request, commits, progress). No IO, no clock, no randomness: request ids come in.
pub struct Session {
    cfg: Config,
    epoch: [u8; 16],
    cursor: u64,
    /// Outbox documents at the start (for progress).
    total: usize,
    /// Outbox documents answered for in this sync (acked or refused): not pushed again now.
    handled: HashSet<String>,
    /// Documents refused for missing dependencies: pushed once more, whole.
    resend_whole: HashSet<String>,
    tally: Tally,
    in_flight: Option<InFlight>,
    answered: Option<Answered>,
    progress: Vec<Progress>,
    #[cfg(any(test, feature = "fault-injection"))]
    fault: Fault,
}

impl Session {
    /// A session from the stored position; `queued`: the outbox's length now.
    pub fn new(cfg: Config, epoch: [u8; 16], cursor: u64, queued: usize) -> Session {
        Session {
            cfg,
            epoch,
            cursor,
            total: queued,
            handled: HashSet::new(),
            resend_whole: HashSet::new(),
            tally: Tally::default(),
            in_flight: None,
            answered: None,
            progress: Vec::new(),
            #[cfg(any(test, feature = "fault-injection"))]
            fault: Fault::None,
        }
    }

    /// Breaks the session on purpose (tests and the simulator only).
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn inject(&mut self, fault: Fault) {
        self.fault = fault;
    }

    pub fn position(&self) -> ([u8; 16], u64) {
        (self.epoch, self.cursor)
    }

    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    pub fn into_tally(self) -> Tally {
        self.tally
    }

    /// Progress events since the last call, oldest first.
    pub fn take_progress(&mut self) -> Vec<Progress> {
        std::mem::take(&mut self.progress)
    }

    /// Whether the outbox document `id` was answered for in this sync.
    pub fn handled(&self, id: &str) -> bool {
        self.handled.contains(id)
    }

    /// Plans the next request's pushes from the outbox (`(id, acked heads)`, oldest first):
    /// documents not answered for yet, skipping those refused at their current heads and those
    /// the server already holds, up to `batch_limit_bytes` (one larger document goes alone).
    /// `read` loads a document when the plan needs it.
    pub fn plan<E>(
        &mut self,
        outbox: impl IntoIterator<Item = (String, Vec<ChangeHash>)>,
        mut read: impl FnMut(&str) -> Result<Read, E>,
    ) -> Result<Plan, E> {
        let mut plan = Plan::default();
        let mut size = 0usize;
        for (id, acked) in outbox {
            if self.handled.contains(&id) {
                continue;
            }
            let (mut doc, refused_at) = match read(&id)? {
                Read::Doc { doc, refused_at } => (doc, refused_at),
                Read::Unreadable(reason) => {
                    self.handled.insert(id.clone());
                    plan.unreadable.push((id, reason));
                    continue;
                }
            };
            let heads = doc.heads();
            // Refused at these very heads: not again (issue 10).
            if refused_at.is_some_and(|at| same_heads(&at, &heads)) {
                self.handled.insert(id);
                continue;
            }
            let since: Vec<ChangeHash> = if self.resend_whole.contains(&id) {
                vec![]
            } else {
                acked
                    .iter()
                    .filter(|h| doc.has_change(h))
                    .copied()
                    .collect()
            };
            if same_heads(&since, &heads) {
                // The server already acknowledged all of it.
                self.handled.insert(id.clone());
                plan.already_acked.push((id, heads));
                continue;
            }
            let changes = doc.save_after(&since);
            let cost = id.len() + changes.len() + 4;
            if !plan.pushes.is_empty() && size + cost > self.cfg.batch_limit_bytes {
                break;
            }
            size += cost;
            plan.pushes.push(DocChanges {
                doc_id: id,
                changes,
            });
            plan.pushed_heads.push(heads);
        }
        Ok(plan)
    }

    /// The request carrying `pushes` (the driver adds the signatures), remembered as in flight.
    pub fn request(
        &mut self,
        pushes: Vec<DocChanges>,
        pushed_heads: Vec<Vec<ChangeHash>>,
        request_id: [u8; 16],
    ) -> SyncRequest {
        self.in_flight = Some(InFlight {
            request_id,
            doc_ids: pushes.iter().map(|p| p.doc_id.clone()).collect(),
            heads: pushed_heads,
        });
        self.answered = None;
        SyncRequest {
            request_id,
            epoch: self.epoch,
            cursor: self.cursor,
            max_response_bytes: self.cfg.max_response_bytes,
            pushes,
            ..SyncRequest::default()
        }
    }

    /// The server's answer to the request in flight: what to commit (one transaction per
    /// [`Commit`], in order). Acks come before pulled changes: a document both acked and
    /// changed by the pull leaves the outbox; the cursor is written with the data it covers.
    pub fn on_response(&mut self, response: &SyncResponse) -> Result<Vec<Commit>, ProtocolError> {
        let flight = self.in_flight.take().ok_or(ProtocolError(
            "an answer arrived while no request was in flight",
        ))?;
        if response.request_id != flight.request_id {
            return Err(ProtocolError("the answer is for another request"));
        }
        self.progress.push(Progress::Answered {
            documents: response.changes.len(),
        });
        let mut commit = Commit::default();
        self.push_results(&flight, response, &mut commit)?;
        self.answered = Some(Answered {
            resync: response.resync,
            more: response.more,
            epoch: response.epoch,
            cursor: response.cursor,
            pulled_any: !response.changes.is_empty(),
            pushed_any: !flight.doc_ids.is_empty(),
        });
        if response.resync {
            // Acks before anything else: a document both acked and resynced leaves the outbox.
            return Ok(vec![commit]);
        }
        commit.pulled = true;
        if response.epoch != self.epoch || response.cursor != self.cursor {
            commit.position = Some((response.epoch, response.cursor));
        }
        #[cfg(any(test, feature = "fault-injection"))]
        if self.fault == Fault::CursorBeforeData {
            let data = Commit {
                pulled: true,
                ..Commit::default()
            };
            commit.pulled = false;
            return Ok(vec![commit, data]);
        }
        Ok(vec![commit])
    }

    /// The answer's commits are done; `changed`: the documents its pulled changes changed.
    pub fn committed(
        &mut self,
        changed: impl IntoIterator<Item = String>,
    ) -> Result<After, ProtocolError> {
        for id in changed {
            self.tally.received.insert(id.clone());
            self.tally.touched.insert(id);
        }
        let a = self
            .answered
            .as_ref()
            .ok_or(ProtocolError("commits reported without an answer"))?;
        self.progress.push(Progress::Pushing {
            done: self.handled.len().min(self.total),
            total: self.total,
        });
        if a.resync {
            if self.tally.resynced {
                return Err(ProtocolError(
                    "the server asked for a resync again right after one",
                ));
            }
            self.tally.resynced = true;
            return Ok(After::Fallback {
                epoch: a.epoch,
                cursor: a.cursor,
            });
        }
        if a.pulled_any {
            self.progress.push(Progress::Pulling {
                received: self.tally.received.len(),
            });
        }
        Ok(After::Pulled)
    }

    /// The fallback has settled every document: the server now holds everything this device
    /// has, so its whole log in scope is read from cursor 0 of its epoch. Commit the position.
    pub fn fallback_done(&mut self) -> Commit {
        if let Some(a) = self.answered.take() {
            self.epoch = a.epoch;
        }
        self.cursor = 0;
        Commit {
            position: Some((self.epoch, 0)),
            ..Commit::default()
        }
    }

    /// A document the fallback changed.
    pub fn received(&mut self, id: &str) {
        self.tally.received.insert(id.to_string());
        self.tally.touched.insert(id.to_string());
    }

    /// After an answer was pulled: another round, or done. `outbox`: the outbox's ids now.
    pub fn next<'a>(
        &mut self,
        outbox: impl IntoIterator<Item = &'a str>,
    ) -> Result<Next, ProtocolError> {
        let a = self
            .answered
            .take()
            .ok_or(ProtocolError("no answer to go on from"))?;
        let stuck = a.more && a.epoch == self.epoch && a.cursor <= self.cursor;
        self.epoch = a.epoch;
        self.cursor = a.cursor;
        let more_to_push = outbox.into_iter().any(|id| !self.handled.contains(id));
        if !a.more && !more_to_push {
            return Ok(Next::Done);
        }
        if stuck && !a.pushed_any {
            return Err(ProtocolError(
                "the server said more changes wait but its cursor did not move",
            ));
        }
        Ok(Next::Again)
    }

    /// What the answer's acks and refusals mean for the outbox.
    fn push_results(
        &mut self,
        flight: &InFlight,
        response: &SyncResponse,
        commit: &mut Commit,
    ) -> Result<(), ProtocolError> {
        let pushed: HashSet<&str> = flight.doc_ids.iter().map(String::as_str).collect();
        for &i in &response.acks {
            let (Some(id), Some(heads)) =
                (flight.doc_ids.get(i as usize), flight.heads.get(i as usize))
            else {
                return Err(ProtocolError(
                    "the server acknowledged a push that was not sent",
                ));
            };
            if self.handled.insert(id.clone()) {
                commit.acks.push((id.clone(), heads.clone()));
                self.tally.touched.insert(id.clone());
                self.tally.sent += 1;
            }
        }
        let mut again = HashSet::new();
        for r in &response.refused {
            if !pushed.contains(r.doc_id.as_str()) || self.handled.contains(&r.doc_id) {
                continue;
            }
            if r.code == RefusalCode::MissingDeps && self.resend_whole.insert(r.doc_id.clone()) {
                // The server lacks earlier changes (it lost them, or an ack was wrong): send
                // the whole document once more in this sync.
                again.insert(r.doc_id.as_str());
                continue;
            }
            self.handled.insert(r.doc_id.clone());
            // Remembered at the heads pushed: not pushed again until the record changes.
            if let Some(i) = flight.doc_ids.iter().position(|p| *p == r.doc_id)
                && let Some(heads) = flight.heads.get(i)
                && r.code != RefusalCode::MissingDeps
            {
                commit.refusals.push(RefusalMark {
                    doc_id: r.doc_id.clone(),
                    heads: heads.clone(),
                    code: r.code,
                    field: r.field.clone(),
                    reason: r.reason.clone(),
                });
            }
            self.tally
                .refused
                .push((r.doc_id.clone(), r.code, r.reason.clone()));
        }
        if !response.resync {
            // A pushed document the server neither acked nor refused stays queued for next time.
            for id in pushed {
                if !again.contains(id) {
                    self.handled.insert(id.to_string());
                }
            }
        }
        Ok(())
    }
}
