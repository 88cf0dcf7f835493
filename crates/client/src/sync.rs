//! The sync loop: batches from the outbox, one request/response per batch, acks, pulls, cursor.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sanjin_core::ChangeHash;
use sanjin_core::protocol::{DocChanges, RefusalCode, SyncRequest, SyncResponse};
use sanjin_core::sign::{ChangeSig, SigKind, change_actor, split_changes};
use sanjin_store::Store;

use crate::{Client, Error, Timeouts, client_for, fallback, hex, meta, unhex16};

/// How a sync runs.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// At most this many bytes of pushed changes per request, before compression (a single
    /// larger document goes alone). 2 MiB by default: about 250–350 KB on the wire, since
    /// records compress best together.
    pub batch_limit_bytes: usize,
    /// At most this many bytes of pulled changes per answer, before compression (the server
    /// sends at least one entry). 4 MiB by default.
    pub max_response_bytes: u32,
    /// The whole of one HTTP exchange.
    pub timeout: Duration,
    /// Connecting (DNS, TCP, TLS handshake).
    pub connect_timeout: Duration,
    /// How often a request that failed on the network is sent again (same bytes, same request
    /// id) before the sync gives up.
    pub retries: u32,
    /// The wait before the first retry; it doubles for each further one.
    pub backoff: Duration,
    /// Set it (from another thread) to stop between round trips and during waits.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            batch_limit_bytes: 2 << 20,
            max_response_bytes: 4 << 20,
            timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(20),
            retries: 3,
            backoff: Duration::from_millis(500),
            cancel: None,
        }
    }
}

impl SyncOptions {
    fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: self.connect_timeout,
            idle: self
                .timeout
                .min(Duration::from_secs(30))
                .max(self.connect_timeout),
            total: self.timeout,
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }
}

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
    /// The server lost track of this device (restored from backup, new server): reconciling
    /// every document with automerge's sync protocol; `pending` still to settle.
    Resync { docs: usize, pending: usize },
    /// A request failed on the network; it is sent again after `wait` (same request id).
    Retrying {
        attempt: u32,
        of: u32,
        wait: Duration,
    },
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncSummary {
    /// Documents the server acknowledged (all their changes pushed at the time).
    pub sent: usize,
    /// Documents changed by what the server sent.
    pub received: usize,
    /// Documents touched by this sync that now have open conflicts.
    pub conflicts: usize,
    /// Documents the server refused: (id, code, the server's reason in English). They stay in
    /// the outbox.
    pub refused: Vec<(String, RefusalCode, String)>,
    /// Local documents that could not be read and were not pushed: (id, reason).
    pub unreadable: Vec<(String, String)>,
    pub round_trips: usize,
    /// Request bodies sent, retries included.
    pub bytes_up: u64,
    /// Response bodies received.
    pub bytes_down: u64,
    /// Whether the per-document fallback ran.
    pub resynced: bool,
    /// Documents still in the outbox afterwards (refused, or changed during the sync).
    pub still_queued: usize,
}

/// Syncs the store with its server (see the crate docs). `progress` is called between steps.
pub fn sync(
    store: &mut Store,
    opts: &SyncOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<SyncSummary, Error> {
    let client = client_for(store, opts.timeouts())?;
    // A store enrolled before signatures registers its key first (issue 10).
    crate::ensure_key(store, &client)?;
    let mut s = Session {
        epoch: store
            .meta(meta::EPOCH)?
            .and_then(|e| unhex16(&e))
            .unwrap_or_default(),
        cursor: store
            .meta(meta::CURSOR)?
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        store,
        client: &client,
        opts,
        progress,
        summary: SyncSummary::default(),
        state: Tally::default(),
    };
    s.run()?;
    let mut summary = s.summary;
    summary.received = s.state.received.len();
    summary.sent = s.state.sent;
    // Refusals of pushes, then those of the fallback (which it notes in the summary itself).
    let fallback_refused = std::mem::take(&mut summary.refused);
    summary.refused = std::mem::take(&mut s.state.refused);
    summary.refused.extend(fallback_refused);
    for id in &s.state.touched {
        if s.store.index_entry(id)?.is_some_and(|e| e.conflicts > 0) {
            summary.conflicts += 1;
        }
    }
    summary.still_queued = s.store.outbox()?.len();
    s.store
        .set_meta(meta::LAST_SYNC, Some(&sanjin_store::now_ms().to_string()))?;
    Ok(summary)
}

pub(crate) struct Session<'a> {
    pub(crate) store: &'a mut Store,
    client: &'a Client,
    pub(crate) opts: &'a SyncOptions,
    pub(crate) progress: &'a mut dyn FnMut(Progress),
    pub(crate) summary: SyncSummary,
    epoch: [u8; 16],
    cursor: u64,
    pub(crate) state: Tally,
}

/// What a sync has done so far, per document.
#[derive(Default)]
pub(crate) struct Tally {
    /// Outbox documents answered for in this sync (acked or refused): not pushed again now.
    handled: HashSet<String>,
    /// Documents refused for missing dependencies: pushed once more, whole.
    resend_whole: HashSet<String>,
    /// Documents acked or changed by this sync (for the conflict count).
    pub(crate) touched: BTreeSet<String>,
    pub(crate) received: HashSet<String>,
    sent: usize,
    refused: Vec<(String, RefusalCode, String)>,
}

impl Session<'_> {
    fn run(&mut self) -> Result<(), Error> {
        let total = self.store.outbox()?.len();
        let mut resynced = false;
        loop {
            let (pushes, pushed_heads, skipped) = self.next_batch()?;
            self.summary.unreadable.extend(skipped);
            let sigs = sigs_for_changes(self.store, pushes.iter().map(|p| p.changes.as_slice()))?;
            let request = SyncRequest {
                request_id: fresh_id(),
                epoch: self.epoch,
                cursor: self.cursor,
                max_response_bytes: self.opts.max_response_bytes,
                pushes,
                sigs,
                ..SyncRequest::default()
            };
            let response = self.exchange(&request)?;
            (self.progress)(Progress::Answered {
                documents: response.changes.len(),
            });
            if response.resync {
                // Acks before anything else: a document both acked and resynced leaves the outbox.
                self.store.batch(|store| {
                    apply_push_results(store, &mut self.state, &request, &pushed_heads, &response)
                })?;
                (self.progress)(Progress::Pushing {
                    done: self.state.handled.len().min(total),
                    total,
                });
                if resynced {
                    return Err(Error::Protocol(
                        "the server asked for a resync again right after one",
                    ));
                }
                resynced = true;
                self.summary.resynced = true;
                fallback::run(self, response.epoch, response.cursor)?;
                // The server now holds everything this device has: read its whole log in scope.
                self.epoch = response.epoch;
                self.cursor = 0;
                self.save_position()?;
                continue;
            }
            // Acks, the pulled changes and the cursor in one transaction (one disk sync): the
            // cursor never moves past data that is not saved, and an ack never outlives a crash
            // that lost what it acknowledged. Acks first: a document both acked and changed by
            // the pull leaves the outbox.
            let moved = response.epoch != self.epoch || response.cursor != self.cursor;
            let (epoch, cursor) = (response.epoch, response.cursor);
            self.store.batch(|store| -> Result<(), Error> {
                apply_push_results(store, &mut self.state, &request, &pushed_heads, &response)?;
                keep_sigs(store, &response)?;
                for c in &response.changes {
                    let (_, changed) = store.apply_remote(&c.doc_id, &c.changes)?;
                    if changed {
                        self.state.received.insert(c.doc_id.clone());
                        self.state.touched.insert(c.doc_id.clone());
                    }
                }
                if moved {
                    save_position(store, epoch, cursor)?;
                }
                Ok(())
            })?;
            (self.progress)(Progress::Pushing {
                done: self.state.handled.len().min(total),
                total,
            });
            if !response.changes.is_empty() {
                (self.progress)(Progress::Pulling {
                    received: self.state.received.len(),
                });
            }
            let stuck =
                response.more && response.epoch == self.epoch && response.cursor <= self.cursor;
            self.epoch = epoch;
            self.cursor = cursor;
            let more_to_push = self
                .store
                .outbox()?
                .iter()
                .any(|e| !self.state.handled.contains(&e.id));
            if !response.more && !more_to_push {
                return Ok(());
            }
            if stuck && request.pushes.is_empty() {
                return Err(Error::Protocol(
                    "the server said more changes wait but its cursor did not move",
                ));
            }
        }
    }

    fn save_position(&mut self) -> Result<(), Error> {
        let (epoch, cursor) = (self.epoch, self.cursor);
        self.store.batch(|s| save_position(s, epoch, cursor))
    }

    /// The next batch of the outbox: documents not yet answered for in this sync, oldest first,
    /// up to `batch_limit_bytes` (one larger document goes alone).
    fn next_batch(&mut self) -> Result<Batch, Error> {
        let mut batch = Vec::new();
        let mut pushed_heads = Vec::new();
        let mut skipped = Vec::new();
        let mut size = 0usize;
        for entry in self.store.outbox()? {
            if self.state.handled.contains(&entry.id) {
                continue;
            }
            let mut doc = match self.store.load(&entry.id) {
                Ok(d) => d,
                Err(e @ (sanjin_store::Error::Damaged { .. } | sanjin_store::Error::Core(_))) => {
                    self.state.handled.insert(entry.id.clone());
                    skipped.push((entry.id, e.to_string()));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let heads = doc.heads();
            // Refused at these very heads: not again (issue 10).
            if let Some((_, at)) = self.store.refusal(&entry.id)?
                && same_heads(&at, &heads)
            {
                self.state.handled.insert(entry.id);
                continue;
            }
            let since: Vec<ChangeHash> = if self.state.resend_whole.contains(&entry.id) {
                vec![]
            } else {
                entry
                    .acked_heads
                    .iter()
                    .filter(|h| doc.has_change(h))
                    .copied()
                    .collect()
            };
            let mut sorted_since = since.clone();
            sorted_since.sort();
            let mut sorted_heads = heads.clone();
            sorted_heads.sort();
            if sorted_since == sorted_heads {
                // The server already acknowledged all of it.
                self.store.ack(&entry.id, &heads)?;
                self.state.handled.insert(entry.id);
                continue;
            }
            let changes = doc.save_after(&since);
            let cost = entry.id.len() + changes.len() + 4;
            if !batch.is_empty() && size + cost > self.opts.batch_limit_bytes {
                break;
            }
            size += cost;
            batch.push(DocChanges {
                doc_id: entry.id,
                changes,
            });
            pushed_heads.push(heads);
        }
        Ok((batch, pushed_heads, skipped))
    }

    /// Sends one request and reads its answer, sending the identical bytes again after a network
    /// failure (bounded, with backoff): the server answers a repeated request id from memory.
    pub(crate) fn exchange(&mut self, request: &SyncRequest) -> Result<SyncResponse, Error> {
        let frame = request.encode();
        let mut attempt = 0u32;
        loop {
            if self.opts.cancelled() {
                return Err(Error::Cancelled);
            }
            self.summary.round_trips += 1;
            self.summary.bytes_up += frame.len() as u64;
            match self.client.post_sync(&frame) {
                Ok(bytes) => {
                    self.summary.bytes_down += bytes.len() as u64;
                    let response =
                        SyncResponse::decode(&bytes).map_err(|e| Error::Decode(e.to_string()))?;
                    if response.request_id != request.request_id {
                        return Err(Error::Protocol("the answer is for another request"));
                    }
                    return Ok(response);
                }
                Err(e) if e.is_transient() && attempt < self.opts.retries => {
                    attempt += 1;
                    let wait = self.opts.backoff.saturating_mul(1 << (attempt - 1).min(6));
                    (self.progress)(Progress::Retrying {
                        attempt,
                        of: self.opts.retries,
                        wait,
                    });
                    self.sleep(wait)?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn sleep(&self, total: Duration) -> Result<(), Error> {
        let step = Duration::from_millis(50);
        let mut left = total;
        while !left.is_zero() {
            if self.opts.cancelled() {
                return Err(Error::Cancelled);
            }
            let d = left.min(step);
            std::thread::sleep(d);
            left -= d;
        }
        Ok(())
    }

    pub(crate) fn fresh_request(&self, epoch: [u8; 16], cursor: u64) -> SyncRequest {
        SyncRequest {
            request_id: fresh_id(),
            epoch,
            cursor,
            max_response_bytes: self.opts.max_response_bytes,
            ..SyncRequest::default()
        }
    }
}

/// The pushes of one request, and the local documents that could not be read: (id, reason).
/// The pushes of the next request, the heads each of them brings the server to (what an ack
/// acknowledges), and the documents that could not be read.
/// Writes the server epoch and cursor (inside the caller's transaction, if any).
fn save_position(store: &mut Store, epoch: [u8; 16], cursor: u64) -> Result<(), Error> {
    store.set_meta(meta::EPOCH, Some(&hex(&epoch)))?;
    store.set_meta(meta::CURSOR, Some(&cursor.to_string()))?;
    Ok(())
}

/// Applies the acks of a response (the outbox drains where they cover the document) and records
/// which pushed documents the server answered for. `pushed_heads[i]`: the heads push `i` brings
/// the server to.
fn apply_push_results(
    store: &mut Store,
    st: &mut Tally,
    request: &SyncRequest,
    pushed_heads: &[Vec<ChangeHash>],
    response: &SyncResponse,
) -> Result<(), Error> {
    let pushed: HashSet<&str> = request.pushes.iter().map(|p| p.doc_id.as_str()).collect();
    for &i in &response.acks {
        let (Some(push), Some(heads)) =
            (request.pushes.get(i as usize), pushed_heads.get(i as usize))
        else {
            return Err(Error::Protocol(
                "the server acknowledged a push that was not sent",
            ));
        };
        if st.handled.insert(push.doc_id.clone()) {
            store.ack(&push.doc_id, heads)?;
            store.clear_refused(&push.doc_id)?;
            st.touched.insert(push.doc_id.clone());
            st.sent += 1;
        }
    }
    let mut again = HashSet::new();
    for r in &response.refused {
        if !pushed.contains(r.doc_id.as_str()) || st.handled.contains(&r.doc_id) {
            continue;
        }
        if r.code == RefusalCode::MissingDeps && st.resend_whole.insert(r.doc_id.clone()) {
            // The server lacks earlier changes (it lost them, or an ack was wrong): send the
            // whole document once more in this sync.
            again.insert(r.doc_id.as_str());
            continue;
        }
        st.handled.insert(r.doc_id.clone());
        // Remembered at the heads pushed: not pushed again until the record changes (a member
        // who fixes the record, or a leader's change, gives it a new chance), and shown.
        if let Some(i) = request.pushes.iter().position(|p| p.doc_id == r.doc_id)
            && let Some(heads) = pushed_heads.get(i)
            && r.code != RefusalCode::MissingDeps
        {
            store.mark_refused(&r.doc_id, heads, r.code.code(), &r.field, &r.reason)?;
        }
        st.refused
            .push((r.doc_id.clone(), r.code, r.reason.clone()));
    }
    if !response.resync {
        // A pushed document the server neither acked nor refused stays queued for next time.
        for id in pushed {
            if !again.contains(id) {
                st.handled.insert(id.to_string());
            }
        }
    }
    Ok(())
}

type Batch = (Vec<DocChanges>, Vec<Vec<ChangeHash>>, Vec<(String, String)>);

fn same_heads(a: &[ChangeHash], b: &[ChangeHash]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

/// The signatures a request carries for the changes in `blobs` (issue 10): this device's own
/// changes under one fresh signature (64 bytes however many), other devices' changes it relays
/// under the signatures it holds for them.
pub(crate) fn sigs_for_changes<'a>(
    store: &Store,
    blobs: impl Iterator<Item = &'a [u8]>,
) -> Result<Vec<ChangeSig>, Error> {
    let actor = store.identity().actor.clone();
    let mut own = Vec::new();
    let mut foreign = Vec::new();
    for bytes in blobs {
        for (h, r) in split_changes(bytes) {
            if change_actor(&bytes[r]).as_deref() == Some(actor.as_slice()) {
                own.push(h);
            } else {
                foreign.push(h);
            }
        }
    }
    let mut sigs = Vec::new();
    if let Some(key) = store.signing_key()
        && !own.is_empty()
    {
        sigs.push(ChangeSig::sign(
            key,
            &store.identity().device,
            SigKind::Changes,
            own,
        ));
    }
    if !foreign.is_empty() {
        sigs.extend(store.sigs_for(&foreign)?);
    }
    Ok(sigs)
}

/// Keeps the signatures and signers' certificates an answer carries beside the changes (inside
/// the caller's transaction), so this device can pass them on with the changes. A certificate
/// that the pinned server key did not sign is not kept.
pub(crate) fn keep_sigs(store: &mut Store, response: &SyncResponse) -> Result<(), Error> {
    let server_key = store
        .meta(meta::SERVER_CERT)?
        .and_then(|h| crate::unhex(&h))
        .and_then(|b| sanjin_core::sign::DeviceCert::decode(&b).ok())
        .map(|c| c.public_key);
    for cert in &response.certs {
        // One the pinned server key did not sign is left out (a server fault: the answer came
        // over pinned TLS).
        if server_key.is_some_and(|k| cert.verify(&k).is_ok()) {
            store.put_cert(cert)?;
        }
    }
    for sig in &response.sigs {
        store.put_sig(sig, &sig.hashes)?;
    }
    Ok(())
}

/// A fresh random request id.
pub(crate) fn fresh_id() -> [u8; 16] {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS provides randomness");
    b
}
