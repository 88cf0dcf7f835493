//! The driver of the sync engine (`sanjin_sync::device`) over a [`Transport`]: HTTPS in production,
//! the simulator in tests. It reads the store for the engine, sends what the engine plans, and
//! writes what the engine says an answer means, each answer in one store transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sanjin_core::protocol::{RefusalCode, SyncRequest, SyncResponse};
use sanjin_store::Store;
use sanjin_sync::backoff::Backoff;
use sanjin_sync::device::{self, After, Commit, Next, Read};

use crate::sigs::{keep_sigs, sigs_for_changes};
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
    pub(crate) fn timeouts(&self) -> Timeouts {
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

/// What a sync is doing, for a progress display (the engine's events, issue 11).
pub use sanjin_sync::Progress;

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

/// How a sync reaches its server: one exchange of encoded frames. [`Client`] is the HTTPS link;
/// the simulator (`sanjin-sim`) has one of its own, in process.
pub trait Transport {
    /// Sends one request frame and returns the answer's frame.
    fn exchange(&mut self, frame: &[u8]) -> Result<Vec<u8>, Error>;

    /// Called between any two steps that write the store (before and after each commit). An
    /// error stops the sync there, as a crash would; the simulator uses it. Nothing by default.
    fn between(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// The id of the next request (fresh randomness from the OS by default; the simulator draws
    /// from its seed).
    fn request_id(&mut self) -> [u8; 16] {
        fresh_id()
    }
}

impl Transport for Client {
    fn exchange(&mut self, frame: &[u8]) -> Result<Vec<u8>, Error> {
        self.post_sync(frame)
    }
}

/// Syncs the store with its server (see the crate docs). `progress` is called between steps.
pub fn sync(
    store: &mut Store,
    opts: &SyncOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<SyncSummary, Error> {
    let mut client = client_for(store, opts.timeouts())?;
    // A store enrolled before signatures registers its key first (issue 10).
    crate::ensure_key(store, &client)?;
    sync_over(store, opts, &mut client, progress)
}

/// [`sync`] over any [`Transport`]: the same engine and the same store writes.
pub fn sync_over(
    store: &mut Store,
    opts: &SyncOptions,
    link: &mut dyn Transport,
    progress: &mut dyn FnMut(Progress),
) -> Result<SyncSummary, Error> {
    sync_with(store, opts, link, progress, |_| {})
}

/// [`sync_over`] with a hook on the fresh engine (the simulator breaks it on purpose).
pub(crate) fn sync_with(
    store: &mut Store,
    opts: &SyncOptions,
    link: &mut dyn Transport,
    progress: &mut dyn FnMut(Progress),
    setup: impl FnOnce(&mut device::Session),
) -> Result<SyncSummary, Error> {
    let epoch = store
        .meta(meta::EPOCH)?
        .and_then(|e| unhex16(&e))
        .unwrap_or_default();
    let cursor = store
        .meta(meta::CURSOR)?
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let config = device::Config {
        batch_limit_bytes: opts.batch_limit_bytes,
        max_response_bytes: opts.max_response_bytes,
    };
    let mut engine = device::Session::new(config, epoch, cursor, store.outbox()?.len());
    setup(&mut engine);
    let mut d = Driver {
        store,
        link,
        opts,
        progress,
        summary: SyncSummary::default(),
        engine,
    };
    d.run()?;
    let Driver {
        store,
        engine,
        mut summary,
        ..
    } = d;
    let tally = engine.into_tally();
    summary.received = tally.received.len();
    summary.sent = tally.sent;
    summary.resynced = tally.resynced;
    // Refusals of pushes, then those of the fallback (which it notes in the summary itself).
    let fallback_refused = std::mem::take(&mut summary.refused);
    summary.refused = tally.refused;
    summary.refused.extend(fallback_refused);
    for id in &tally.touched {
        if store.index_entry(id)?.is_some_and(|e| e.conflicts > 0) {
            summary.conflicts += 1;
        }
    }
    summary.still_queued = store.outbox()?.len();
    store.set_meta(meta::LAST_SYNC, Some(&sanjin_store::now_ms().to_string()))?;
    Ok(summary)
}

/// One sync in progress: the engine and what carries out its effects.
pub(crate) struct Driver<'a> {
    pub(crate) store: &'a mut Store,
    link: &'a mut dyn Transport,
    pub(crate) opts: &'a SyncOptions,
    pub(crate) progress: &'a mut dyn FnMut(Progress),
    pub(crate) summary: SyncSummary,
    pub(crate) engine: device::Session,
}

impl Driver<'_> {
    fn run(&mut self) -> Result<(), Error> {
        loop {
            let outbox = self.store.outbox()?;
            let store = &*self.store;
            let plan = self
                .engine
                .plan(outbox.into_iter().map(|e| (e.id, e.acked_heads)), |id| {
                    read_outbox_doc(store, id)
                })?;
            for (id, heads) in &plan.already_acked {
                self.store.ack(id, heads)?;
                self.link.between()?;
            }
            self.summary.unreadable.extend(plan.unreadable);
            let sigs =
                sigs_for_changes(self.store, plan.pushes.iter().map(|p| p.changes.as_slice()))?;
            let id = self.link.request_id();
            let mut request = self.engine.request(plan.pushes, plan.pushed_heads, id);
            request.sigs = sigs;
            let response = self.exchange(&request)?;
            let commits = self.engine.on_response(&response);
            self.report();
            let mut changed = Vec::new();
            for c in &commits.map_err(|e| Error::Protocol(e.0))? {
                self.commit(c, &response, &mut changed)?;
            }
            let after = self.engine.committed(changed);
            self.report();
            match after.map_err(|e| Error::Protocol(e.0))? {
                After::Fallback { epoch, cursor } => {
                    fallback::run(self, epoch, cursor)?;
                    let c = self.engine.fallback_done();
                    self.commit(&c, &SyncResponse::default(), &mut Vec::new())?;
                }
                After::Pulled => {
                    let outbox = self.store.outbox()?;
                    let next = self.engine.next(outbox.iter().map(|e| e.id.as_str()));
                    if next.map_err(|e| Error::Protocol(e.0))? == Next::Done {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// The id of the next request.
    pub(crate) fn request_id(&mut self) -> [u8; 16] {
        self.link.request_id()
    }

    /// Between two steps that write the store (where the simulator crashes a device).
    pub(crate) fn between(&mut self) -> Result<(), Error> {
        self.link.between()
    }

    /// Hands the engine's progress events to the caller.
    pub(crate) fn report(&mut self) {
        for p in self.engine.take_progress() {
            (self.progress)(p);
        }
    }

    /// Carries out one commit of the engine in one store transaction (one disk sync): acks,
    /// refusal marks, the answer's signatures and pulled changes, the position. The cursor never
    /// moves past data that is not saved, and an ack never outlives a crash that lost what it
    /// acknowledged. `changed` gets the documents the pulled changes changed.
    fn commit(
        &mut self,
        c: &Commit,
        response: &SyncResponse,
        changed: &mut Vec<String>,
    ) -> Result<(), Error> {
        self.link.between()?;
        let mut now_changed = Vec::new();
        self.store.batch(|store| -> Result<(), Error> {
            for (id, heads) in &c.acks {
                store.ack(id, heads)?;
                store.clear_refused(id)?;
            }
            for r in &c.refusals {
                store.mark_refused(&r.doc_id, &r.heads, r.code.code(), &r.field, &r.reason)?;
            }
            if c.pulled {
                keep_sigs(store, response)?;
                for ch in &response.changes {
                    let (_, was_changed) = store.apply_remote(&ch.doc_id, &ch.changes)?;
                    if was_changed {
                        now_changed.push(ch.doc_id.clone());
                    }
                }
            }
            if let Some((epoch, cursor)) = c.position {
                save_position(store, epoch, cursor)?;
            }
            Ok(())
        })?;
        changed.extend(now_changed);
        self.link.between()
    }

    /// Sends one request and reads its answer, sending the identical bytes again after a network
    /// failure (on the one retry schedule, cancellable while waiting): the server answers a
    /// repeated request id from memory.
    pub(crate) fn exchange(&mut self, request: &SyncRequest) -> Result<SyncResponse, Error> {
        let frame = request.encode();
        let schedule = Backoff::uncapped(self.opts.backoff, self.opts.retries);
        let mut failures = 0u32;
        loop {
            if self.opts.cancelled() {
                return Err(Error::Cancelled);
            }
            self.summary.round_trips += 1;
            self.summary.bytes_up += frame.len() as u64;
            match self.link.exchange(&frame) {
                Ok(bytes) => {
                    self.summary.bytes_down += bytes.len() as u64;
                    let response =
                        SyncResponse::decode(&bytes).map_err(|e| Error::Decode(e.to_string()))?;
                    if response.request_id != request.request_id {
                        return Err(Error::Protocol("the answer is for another request"));
                    }
                    return Ok(response);
                }
                Err(e) if e.is_transient() => {
                    failures += 1;
                    let Some(w) = schedule.after(failures) else {
                        return Err(e);
                    };
                    (self.progress)(Progress::Retrying {
                        attempt: w.attempt,
                        of: w.of,
                        wait: w.wait,
                    });
                    pause(w.wait, self.opts.cancel.as_ref())?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Waits `total`, looking at `cancel` every 50 ms: the one cancellable wait of the client's
/// retries (sync exchanges and photo uploads).
pub(crate) fn pause(total: Duration, cancel: Option<&Arc<AtomicBool>>) -> Result<(), Error> {
    let cancelled = || cancel.is_some_and(|c| c.load(Ordering::Relaxed));
    let step = Duration::from_millis(50);
    let mut left = total;
    while !left.is_zero() {
        if cancelled() {
            return Err(Error::Cancelled);
        }
        let d = left.min(step);
        std::thread::sleep(d);
        left -= d;
    }
    Ok(())
}

/// An outbox document for the engine's plan: the document and the refusal standing on it.
fn read_outbox_doc(store: &Store, id: &str) -> Result<Read, Error> {
    let doc = match store.load(id) {
        Ok(d) => d,
        Err(e @ (sanjin_store::Error::Damaged { .. } | sanjin_store::Error::Core(_))) => {
            return Ok(Read::Unreadable(e.to_string()));
        }
        Err(e) => return Err(e.into()),
    };
    let refused_at = store.refusal(id)?.map(|(_, at)| at);
    Ok(Read::Doc {
        doc: Box::new(doc),
        refused_at,
    })
}

/// Writes the server epoch and cursor (inside the caller's transaction, if any).
fn save_position(store: &mut Store, epoch: [u8; 16], cursor: u64) -> Result<(), Error> {
    store.set_meta(meta::EPOCH, Some(&hex(&epoch)))?;
    store.set_meta(meta::CURSOR, Some(&cursor.to_string()))?;
    Ok(())
}

impl fallback::Host for Driver<'_> {
    fn store(&mut self) -> &mut Store {
        self.store
    }
    fn batch_limit(&self) -> usize {
        self.opts.batch_limit_bytes
    }
    fn progress(&mut self, p: Progress) {
        (self.progress)(p)
    }
    fn request_id(&mut self) -> [u8; 16] {
        Driver::request_id(self)
    }
    fn exchange(&mut self, request: &SyncRequest) -> Result<SyncResponse, Error> {
        Driver::exchange(self, request)
    }
    fn between(&mut self) -> Result<(), Error> {
        Driver::between(self)
    }
    fn refused(&mut self, id: String, code: RefusalCode, reason: String) {
        if !self.summary.refused.iter().any(|(x, _, _)| *x == id) {
            self.summary.refused.push((id, code, reason));
        }
    }
    fn unreadable(&mut self, id: String, reason: String) {
        if !self.summary.unreadable.iter().any(|(x, _)| *x == id) {
            self.summary.unreadable.push((id, reason));
        }
    }
    fn received(&mut self, id: &str) {
        self.engine.received(id);
    }
}

/// A fresh random request id.
pub(crate) fn fresh_id() -> [u8; 16] {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS provides randomness");
    b
}

/// [`sync_over`] with the engine broken on purpose (the simulator shows it catches the bug).
/// Only with the `fault-injection` feature, which no production crate enables.
#[cfg(feature = "fault-injection")]
pub fn sync_over_broken(
    store: &mut Store,
    opts: &SyncOptions,
    link: &mut dyn Transport,
    progress: &mut dyn FnMut(Progress),
    fault: device::Fault,
) -> Result<SyncSummary, Error> {
    sync_with(store, opts, link, progress, |e| e.inject(fault))
}
