//! One sync exchange on the server side (docs/PROTOCOL.md): pushes checked and landed with their
//! change-log entries, the pull of the change log in the device's read scope, the automerge
//! sync-protocol fallback, and idempotent retries.

use std::collections::HashMap;

use automerge::sync::{self, SyncDoc};
use automerge::{Change, ChangeHash};
use sanjin_core::domain::RecordKind;
use sanjin_core::protocol::{DocChanges, DocSync, Refusal, RefusalCode, SyncRequest, SyncResponse};
use sanjin_core::{IndexEntry, RecordDoc};
use sanjin_store::now_ms;

/// The earliest time a workflow step may carry: 2000-01-01 UTC.
const EARLIEST_EVENT_MS: i64 = 946_684_800_000;
/// How far ahead of the server's clock a device's clock may be for a step it dates.
const EVENT_CLOCK_SKEW_MS: i64 = 24 * 3600 * 1000;

/// Low bits of a cursor that hold the tag of its log entry.
const CURSOR_TAG_BITS: u32 = 20;

use std::collections::HashSet;

use crate::data::{ServerData, heads_to_bytes, log_entry, scope_of};
use crate::error::{AppError, Error, Result};
use crate::model::{Account, Caller, Role};
use crate::trust::Signed;
use sanjin_store::server::LogFilter;

/// What one exchange did, for the request's log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]

pub struct SyncOutcome {
    /// The encoded SyncResponse frame.
    pub response: Vec<u8>,
    /// The answer was stored from an earlier request with the same id (nothing was done again).
    pub replayed: bool,
    pub pushed: usize,
    pub accepted: usize,
    pub refused: usize,
    pub pulled_docs: usize,
    pub pulled_bytes: usize,
    pub cursor: u64,
    pub more: bool,
    pub resync: bool,
    pub am_sync_in: usize,
    pub am_sync_out: usize,
}

/// One device's exchange waiting to be answered in a group ([`ServerData::answer_group`]).
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The request's `Authorization` header.
    pub authorization: Option<String>,
    pub request: SyncRequest,
}

/// The answer to one exchange.
#[derive(Debug, Clone)]
pub enum Answer {
    /// The encoded frame is in `outcome.response`, ready to send: answered before (nothing was
    /// done again: `outcome.replayed`), or encoded and kept for retries already.
    Stored(SyncOutcome),
    /// A new answer; `remember`: keep its encoding for retries ([`ServerData::remember`]).
    Fresh {
        response: SyncResponse,
        outcome: SyncOutcome,
        remember: bool,
    },
}

/// What became of one pushed document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Landed {
    /// The server holds the changes (`changed`: some were new and were written).
    Accepted { changed: bool },
    /// Refused (the code, the field it is about or empty, the reason). Changes of the push that
    /// do not depend on a refused one may still have landed.
    Refused(RefusalCode, String, String),
    /// The server could not check it (its own copy is damaged): no ack, no refusal; the device
    /// keeps it queued. Logged.
    Skipped(String),
}

/// The member and device every sanjin change's message names (`{"m": member, "d": device, …}`).
/// The action label (`"a"`) is never trusted: what a change does is read from its operations.
#[derive(serde::Deserialize)]
struct ChangeMessage {
    m: String,
    d: String,
}

/// Devices by actor, looked up once per exchange.
#[derive(Default)]
pub(crate) struct Authors(HashMap<String, Option<(String, bool, Account)>>);

impl Authors {
    fn get(&mut self, data: &ServerData, actor: &str) -> Result<Option<&(String, bool, Account)>> {
        if !self.0.contains_key(actor) {
            let found = data.device_by_actor(actor)?;
            self.0.insert(actor.to_string(), found);
        }
        Ok(self.0.get(actor).and_then(Option::as_ref))
    }
}

/// The change that made the op `ctr@actor`, among `changes`.
fn change_of<'a>(changes: &'a [Change], op_id: &str) -> Option<&'a Change> {
    let (ctr, actor) = op_id.split_once('@')?;
    let ctr: u64 = ctr.parse().ok()?;
    changes.iter().find(|c| {
        let start = c.start_op().get();
        c.actor_id().to_hex_string() == actor && start <= ctr && ctr < start + c.len() as u64
    })
}

/// The kind and activity group a document says it has (root `kind`, field `group`), read
/// without building its view; `None` when it does not say.
fn peek_scope(am: &automerge::AutoCommit) -> Option<(RecordKind, Option<String>)> {
    use automerge::ReadDoc;
    let str_at = |obj: &automerge::ObjId, key: &str| -> Option<String> {
        match am.get(obj, key).ok()??.0 {
            automerge::Value::Scalar(s) => match s.as_ref() {
                automerge::ScalarValue::Str(s) => Some(s.to_string()),
                _ => None,
            },
            _ => None,
        }
    };
    let kind = RecordKind::parse(&str_at(&automerge::ROOT, "kind")?)?;
    let group = match am.get(automerge::ROOT, "f").ok()? {
        Some((automerge::Value::Object(_), f)) => str_at(&f, "group"),
        _ => None,
    };
    Some((kind, group))
}

/// The changes among `changes` that depend, directly or through others among them, on one in
/// `bad`.
fn depending_on(changes: &[Change], bad: &HashSet<ChangeHash>) -> HashSet<ChangeHash> {
    let mut out: HashSet<ChangeHash> = HashSet::new();
    loop {
        let before = out.len();
        for c in changes {
            let h = c.hash();
            if !bad.contains(&h)
                && !out.contains(&h)
                && c.deps().iter().any(|d| bad.contains(d) || out.contains(d))
            {
                out.insert(h);
            }
        }
        if out.len() == before {
            return out;
        }
    }
}

fn short(h: &ChangeHash) -> String {
    h.to_string()[..12].to_string()
}

fn kind_of(e: &IndexEntry) -> RecordKind {
    RecordKind::parse(&e.kind).expect("index entries carry a known kind")
}

fn where_(kind: RecordKind, group: Option<&str>) -> String {
    match (kind.is_directory(), group) {
        (true, _) => format!("a {} record of the directory", kind.code()),
        (false, Some(g)) => format!("a {} of group {g}", kind.code()),
        (false, None) => format!("a {} without a group", kind.code()),
    }
}

impl ServerData {
    /// Answers one SyncRequest from an authenticated device: [`ServerData::answer`], the frame
    /// encoded, and kept for retries ([`ServerData::remember`]).
    pub fn sync(&mut self, caller: &Caller, req: &SyncRequest) -> Result<SyncOutcome> {
        match self.answer(caller, req)? {
            Answer::Stored(outcome) => Ok(outcome),
            Answer::Fresh {
                response,
                mut outcome,
                remember,
            } => {
                outcome.response = response.encode();
                if remember {
                    self.remember(&caller.device_id, &req.request_id, &outcome.response)?;
                }
                Ok(outcome)
            }
        }
    }

    /// Does the work of one exchange (pushes, fallback, pull) and returns the answer unencoded,
    /// so that the caller can encode it without holding the writer. A request answered before
    /// (same device, same request id) is answered from the store without doing anything again.
    pub fn answer(&mut self, caller: &Caller, req: &SyncRequest) -> Result<Answer> {
        // Everything the exchange writes (documents, index rows, log entries, sync states)
        // reaches the disk with one sync, before the answer leaves.
        self.atomically(|data| data.answer_in_tx(caller, req))
    }

    /// [`ServerData::answer`] for many devices' exchanges at once, in one transaction: a group
    /// commit. A disk sync costs milliseconds; one per exchange would bound the server to a few
    /// hundred exchanges a second whatever its CPUs, so exchanges that arrive while another
    /// group is being written wait and go together. Each exchange is a savepoint of its own: one
    /// that fails is rolled back alone and answered with its error, the others land. Answers
    /// small enough to encode cheaply are encoded and remembered for retries inside the same
    /// transaction; larger ones come back as [`Answer::Fresh`] for the caller to encode outside
    /// the writer.
    pub fn answer_group(
        &mut self,
        exchanges: &[Exchange],
    ) -> Vec<Result<(Caller, Answer), AppError>> {
        let group = self.atomically(|data| -> Result<Vec<Result<(Caller, Answer), AppError>>> {
            let mut out = Vec::with_capacity(exchanges.len());
            for ex in exchanges {
                let caller = match data.authenticate(ex.authorization.as_deref()) {
                    Ok(c) => c,
                    Err(e) => {
                        out.push(Err(e));
                        continue;
                    }
                };
                // Each exchange a unit of its own inside the group's: rolled back alone.
                let one = data.atomically(|data| {
                    let answer = data.answer_in_tx(&caller, &ex.request)?;
                    data.encode_if_small(&caller, &ex.request, answer)
                });
                out.push(one.map(|a| (caller, a)).map_err(AppError::from));
            }
            Ok(out)
        });
        match group {
            Ok(out) => out,
            Err(e) => {
                let e = AppError::from(e);
                exchanges.iter().map(|_| Err(e.clone())).collect()
            }
        }
    }

    /// Encodes a fresh answer whose changes are small (the cheap compression level) and keeps
    /// it for retries, inside the caller's transaction.
    fn encode_if_small(
        &mut self,
        caller: &Caller,
        req: &SyncRequest,
        answer: Answer,
    ) -> Result<Answer> {
        let Answer::Fresh {
            response,
            mut outcome,
            remember,
        } = answer
        else {
            return Ok(answer);
        };
        let estimate: usize = response
            .changes
            .iter()
            .map(|c| c.changes.len() + 40)
            .sum::<usize>()
            + response
                .am_sync
                .iter()
                .map(|m| m.message.len() + 40)
                .sum::<usize>()
            + response
                .refused
                .iter()
                .map(|r| r.reason.len() + 40)
                .sum::<usize>()
            + response.acks.len() * 2
            + 64;
        if sanjin_core::protocol::compression_level(estimate)
            > sanjin_core::protocol::compression_level(0)
        {
            return Ok(Answer::Fresh {
                response,
                outcome,
                remember,
            });
        }
        outcome.response = response.encode();
        if remember {
            self.remember(&caller.device_id, &req.request_id, &outcome.response)?;
        }
        Ok(Answer::Stored(outcome))
    }

    /// [`ServerData::answer`] inside a transaction the caller holds.
    fn answer_in_tx(&mut self, caller: &Caller, req: &SyncRequest) -> Result<Answer> {
        // A zero request id is no idempotency key (a client that does not set one).
        let keyed = req.request_id != [0; 16];
        if keyed && let Some(response) = self.stored_response(&caller.device_id, &req.request_id)? {
            return Ok(Answer::Stored(SyncOutcome {
                response,
                replayed: true,
                pushed: req.pushes.len(),
                ..SyncOutcome::default()
            }));
        }
        self.answer_fresh(caller, req, keyed)
    }

    fn answer_fresh(&mut self, caller: &Caller, req: &SyncRequest, keyed: bool) -> Result<Answer> {
        let mut resp = SyncResponse {
            request_id: req.request_id,
            epoch: self.epoch,
            ..SyncResponse::default()
        };
        let mut authors = Authors::default();
        let mut accepted = 0;
        // Every signature of the request checked once, against its signer's registered key.
        let signed = self.check_sigs(&req.sigs)?;
        let mut landed = Vec::new();
        for (i, push) in req.pushes.iter().enumerate() {
            match self.push_doc(
                caller,
                &push.doc_id,
                &push.changes,
                &mut authors,
                &signed,
                &mut landed,
            )? {
                Landed::Accepted { .. } => {
                    accepted += 1;
                    resp.acks.push(i as u32);
                }
                Landed::Refused(code, field, reason) => {
                    tracing::info!(device = %caller.device_id, doc = %push.doc_id, code = code.code(), %field, %reason, "push refused");
                    resp.refused.push(Refusal {
                        doc_id: push.doc_id.clone(),
                        code,
                        field,
                        reason,
                    });
                }
                Landed::Skipped(reason) => {
                    tracing::error!(device = %caller.device_id, doc = %push.doc_id, %reason, "push skipped");
                }
            }
        }
        self.answer_am_sync(
            caller,
            &req.am_sync,
            &mut resp,
            &mut authors,
            &signed,
            &mut landed,
        )?;
        // The signatures of what landed are kept beside it, to travel on with it.
        self.keep_sigs(&signed, &landed)?;
        let max_seq = self.max_seq()?;
        let epoch_ok = req.epoch == self.epoch || (req.epoch == [0; 16] && req.cursor == 0);
        let mut pulled_bytes = 0;
        match self.cursor_seq(req.cursor)? {
            Some(seq) if epoch_ok && seq <= max_seq => {
                let budget = match req.max_response_bytes {
                    0 => self.limits.default_response_bytes,
                    n => n.min(self.limits.max_response_bytes),
                };
                pulled_bytes = self.pull(caller, seq, budget as usize, max_seq, &mut resp)?;
            }
            _ => {
                resp.resync = true;
                resp.cursor = self.cursor_of(max_seq)?;
            }
        }
        // Fallback messages carry changes too: their signatures go with them (all of each
        // document's, named by hash: the fallback is rare).
        if !resp.am_sync.is_empty() {
            let mut hashes = Vec::new();
            for m in &resp.am_sync {
                if let Ok(Some(mut am)) = self.load_automerge(&m.doc_id) {
                    hashes.extend(am.get_changes(&[]).iter().map(|c| c.hash()));
                }
            }
            let (sigs, certs) = self.sigs_for_pull(&[], &hashes)?;
            for s in sigs {
                if !resp.sigs.contains(&s) {
                    resp.sigs.push(s);
                }
            }
            for c in certs {
                if !resp.certs.contains(&c) {
                    resp.certs.push(c);
                }
            }
        }
        let remember = keyed && (!req.pushes.is_empty() || !req.am_sync.is_empty());
        if !remember {
            self.touch(&caller.device_id)?;
        }
        let outcome = SyncOutcome {
            response: Vec::new(),
            replayed: false,
            pushed: req.pushes.len(),
            accepted,
            refused: resp.refused.len(),
            pulled_docs: resp.changes.len(),
            pulled_bytes,
            cursor: resp.cursor,
            more: resp.more,
            resync: resp.resync,
            am_sync_in: req.am_sync.len(),
            am_sync_out: resp.am_sync.len(),
        };
        Ok(Answer::Fresh {
            response: resp,
            outcome,
            remember,
        })
    }

    /// Checks one pushed document and, if every check passes, writes it, its index row and its
    /// change-log entry in one transaction.
    pub(crate) fn push_doc(
        &mut self,
        caller: &Caller,
        doc_id: &str,
        bytes: &[u8],
        authors: &mut Authors,
        signed: &Signed,
        landed: &mut Vec<(ChangeHash, String)>,
    ) -> Result<Landed> {
        use RefusalCode::*;
        let refuse = |code, reason: String| Ok(Landed::Refused(code, String::new(), reason));
        if !sanjin_core::validate::is_id(doc_id) {
            return refuse(Malformed, format!("`{doc_id}` is not a record id"));
        }
        if bytes.len() > self.limits.max_doc_bytes {
            return refuse(
                TooLarge,
                format!(
                    "{} bytes of changes; the server accepts at most {} per document",
                    bytes.len(),
                    self.limits.max_doc_bytes
                ),
            );
        }
        let before = self.store.index_entry(doc_id)?;
        let am_before = match self.take_automerge(doc_id) {
            Ok(d) => d,
            Err(Error::Store(sanjin_store::Error::Damaged { reason, .. })) => {
                return Ok(Landed::Skipped(format!(
                    "the server's copy is damaged: {reason}"
                )));
            }
            Err(e) => return Err(e),
        };
        let before_scope = before.as_ref().map(|e| {
            (
                kind_of(e),
                e.group.clone(),
                scope_of(kind_of(e), e.group.as_deref()),
            )
        });
        if let Some((kind, group, _)) = &before_scope
            && !caller.account.may_write(*kind, group.as_deref())
        {
            return refuse(
                Forbidden,
                format!(
                    "{} ({}) may not write {}",
                    caller.account.member,
                    caller.account.role,
                    where_(*kind, group.as_deref())
                ),
            );
        }
        // Every byte must be an automerge chunk: automerge skips what it cannot read, and a push
        // of junk for an existing record would otherwise be acknowledged (issue 10).
        if !sanjin_core::sign::all_chunks(bytes) {
            return refuse(Malformed, "the bytes are not automerge changes".into());
        }
        let exists = am_before.is_some();
        let mut am = am_before.unwrap_or_default();
        let before_heads = am.get_heads();
        if am.load_incremental(bytes).is_err() {
            return refuse(Malformed, "the bytes are not automerge changes".into());
        }
        let missing_deps = am.get_missing_deps(&[]);
        if !missing_deps.is_empty() {
            return refuse(
                MissingDeps,
                format!(
                    "the changes depend on {} changes the server has not seen; push the whole document",
                    missing_deps.len()
                ),
            );
        }
        let new_changes: Vec<Change> = am.get_changes(&before_heads);
        if new_changes.is_empty() {
            if !exists {
                return refuse(Malformed, "no changes, and no such record".into());
            }
            return Ok(Landed::Accepted { changed: false });
        }
        // A record outside the pusher's scope is refused as such before its changes are judged
        // one by one.
        if let Some((kind, group)) = peek_scope(&am)
            && !caller.account.may_write(kind, group.as_deref())
        {
            return refuse(
                Forbidden,
                format!(
                    "{} ({}) may not write {}",
                    caller.account.member,
                    caller.account.role,
                    where_(kind, group.as_deref())
                ),
            );
        }
        // Each new change on its own: made by an enrolled device that was not revoked when the
        // server received it, signed by that device's key, its message naming that device and
        // member, and its member allowed to write the record before (issue 10).
        if let Err(e) = sanjin_core::validate::check_sizes(bytes.len(), new_changes.len()) {
            return Ok(Landed::Refused(
                sanjin_core::rules::refusal_code(&e),
                e.field.clone(),
                e.to_string(),
            ));
        }
        let mut refused: Vec<(ChangeHash, RefusalCode, String, String)> = Vec::new();
        let mut owners: HashMap<ChangeHash, String> = HashMap::new();
        for c in &new_changes {
            match self.check_change(c, authors, signed, before_scope.as_ref())? {
                Ok(device) => {
                    owners.insert(c.hash(), device);
                }
                Err((code, reason)) => refused.push((c.hash(), code, String::new(), reason)),
            }
        }
        // What the changes do, judged from their operations by the same function devices run
        // on merges (issue 10): history, authorship, conflicts settled, review steps.
        let group = peek_scope(&am).and_then(|(_, g)| g);
        let mut signers: HashMap<String, Option<sanjin_core::rules::Signer>> = HashMap::new();
        for c in &new_changes {
            let actor = c.actor_id().to_hex_string();
            if signers.contains_key(&actor) {
                continue;
            }
            let signer = match authors.get(self, &actor)?.cloned() {
                Some((device, _, account)) => Some(sanjin_core::rules::Signer {
                    reviewer: self.may_review(&account, group.as_deref())?,
                    member: account.member,
                    device,
                }),
                None => None,
            };
            signers.insert(actor, signer);
        }
        let lookup = |c: &Change| {
            signers
                .get(&c.actor_id().to_hex_string())
                .cloned()
                .flatten()
        };
        let mut violations =
            sanjin_core::rules::check_changes(am.document(), &before_heads, &new_changes, &lookup);
        // Per change, the most telling first (what the member can act on).
        violations.sort_by_key(|v| match v.code {
            ConflictResolution => 0,
            Role => 1,
            _ => 2,
        });
        for v in violations {
            if !refused.iter().any(|r| r.0 == v.change) {
                refused.push((
                    v.change,
                    v.code,
                    v.field.clone().unwrap_or_default(),
                    v.reason,
                ));
            }
        }
        // Refused changes and those that depend on them are left out; the rest lands.
        if !refused.is_empty() {
            let bad: HashSet<ChangeHash> = refused.iter().map(|r| r.0).collect();
            let dependents = depending_on(&new_changes, &bad);
            let keep: Vec<&Change> = new_changes
                .iter()
                .filter(|c| !bad.contains(&c.hash()) && !dependents.contains(&c.hash()))
                .collect();
            let (code, field, reason) = {
                let (h, code, field, reason) = &refused[0];
                let more = refused.len() - 1 + dependents.len();
                let reason = if more > 0 {
                    format!(
                        "change {}: {reason} ({more} more change(s) refused with it)",
                        short(h)
                    )
                } else {
                    format!("change {}: {reason}", short(h))
                };
                (*code, field.clone(), reason)
            };
            if keep.is_empty() {
                return Ok(Landed::Refused(code, field, reason));
            }
            // The server's copy again, plus only the changes that hold.
            let mut again = self.load_automerge(doc_id)?.unwrap_or_default();
            let kept: Vec<Change> = keep.into_iter().cloned().collect();
            if again.apply_changes(kept.clone()).is_err() {
                return Ok(Landed::Refused(code, field, reason));
            }
            match self.land_checked(
                caller,
                doc_id,
                again,
                exists,
                &before_heads,
                before_scope.as_ref(),
                authors,
                &kept,
            )? {
                Landed::Accepted { .. } => {
                    landed.extend(
                        kept.iter()
                            .filter_map(|c| Some((c.hash(), owners.get(&c.hash())?.clone()))),
                    );
                    return Ok(Landed::Refused(code, field, reason));
                }
                other => return Ok(other),
            }
        }
        let out = self.land_checked(
            caller,
            doc_id,
            am,
            exists,
            &before_heads,
            before_scope.as_ref(),
            authors,
            &new_changes,
        )?;
        if matches!(out, Landed::Accepted { .. }) {
            landed.extend(owners);
        }
        Ok(out)
    }

    /// The checks of one new change that need no document: its actor's device, that device's
    /// signature, its message, its member's right to write the record as it was. `Ok(device)`.
    fn check_change(
        &self,
        c: &Change,
        authors: &mut Authors,
        signed: &Signed,
        before_scope: Option<&(RecordKind, Option<String>, Option<String>)>,
    ) -> Result<Result<String, (RefusalCode, String)>> {
        use RefusalCode::*;
        let actor = c.actor_id().to_hex_string();
        let Some((device_id, revoked, account)) = authors.get(self, &actor)?.cloned() else {
            return Ok(Err((
                ForeignActor,
                format!("made by actor {actor}, which is no enrolled device"),
            )));
        };
        let msg: Option<ChangeMessage> = c.message().and_then(|m| serde_json::from_str(m).ok());
        let Some(msg) = msg else {
            return Ok(Err((
                ForeignActor,
                "the change does not name its member and device".into(),
            )));
        };
        if msg.m != account.member || msg.d != device_id {
            return Ok(Err((
                ForeignActor,
                format!(
                    "names member {} on device {}, but was made by device {device_id} of member {}",
                    msg.m, msg.d, account.member
                ),
            )));
        }
        if revoked {
            return Ok(Err((
                Revoked,
                format!("made by device {device_id}, which has been revoked"),
            )));
        }
        if !signed.signed_by(&c.hash(), &device_id) {
            return Ok(Err((
                BadSignature,
                format!("no valid signature by device {device_id}, whose actor made it"),
            )));
        }
        if let Some((before_kind, before_group, _)) = before_scope
            && !account.may_write(*before_kind, before_group.as_deref())
        {
            return Ok(Err((
                Forbidden,
                format!(
                    "{} ({}) may not write {}",
                    account.member,
                    account.role,
                    where_(*before_kind, before_group.as_deref())
                ),
            )));
        }
        Ok(Ok(device_id))
    }

    /// The checks of the record as the new changes leave it, then the landing.
    #[allow(clippy::too_many_arguments)]
    fn land_checked(
        &mut self,
        caller: &Caller,
        doc_id: &str,
        am: automerge::AutoCommit,
        exists: bool,
        before_heads: &[ChangeHash],
        before_scope: Option<&(RecordKind, Option<String>, Option<String>)>,
        authors: &mut Authors,
        new_changes: &[Change],
    ) -> Result<Landed> {
        use RefusalCode::*;
        let refuse = |code, reason: String| Ok(Landed::Refused(code, String::new(), reason));
        // The record as it would be.
        let mut rec = match RecordDoc::from_automerge(am) {
            Ok(r) => r,
            Err(e) => return refuse(Malformed, format!("not a sanjin record: {e}")),
        };
        if rec.id() != doc_id {
            return refuse(
                Malformed,
                format!("the changes are for record {}, not {doc_id}", rec.id()),
            );
        }
        let view = match rec.view() {
            Ok(v) => v,
            Err(e) => return refuse(Malformed, format!("not a valid sanjin record: {e}")),
        };
        // Every field value, photo reference and thumbnail, as the device checks them (issue 10).
        if let Err(e) = sanjin_core::validate::check_record(rec.automerge()) {
            return Ok(Landed::Refused(
                sanjin_core::rules::refusal_code(&e),
                e.field.clone(),
                e.to_string(),
            ));
        }
        let after = IndexEntry::of(&view);
        let kind = rec.kind();
        let group = after.group.clone();
        if let Some((before_kind, _, _)) = &before_scope
            && *before_kind != kind
        {
            return refuse(
                Malformed,
                format!(
                    "a {} record cannot become a {}",
                    before_kind.code(),
                    kind.code()
                ),
            );
        }
        if !caller.account.may_write(kind, group.as_deref()) {
            return refuse(
                Forbidden,
                format!(
                    "{} ({}) may not write {}",
                    caller.account.member,
                    caller.account.role,
                    where_(kind, group.as_deref())
                ),
            );
        }
        // Every new change's member may write the record as it is after them.
        for c in new_changes {
            let actor = c.actor_id().to_hex_string();
            let Some((_, _, account)) = authors.get(self, &actor)?.cloned() else {
                continue; // checked before: unreachable
            };
            if !account.may_write(kind, group.as_deref()) {
                return refuse(
                    Forbidden,
                    format!(
                        "change {} by {} ({}) writes {}",
                        short(&c.hash()),
                        account.member,
                        account.role,
                        where_(kind, group.as_deref())
                    ),
                );
            }
        }
        // New workflow events: review steps only by the group's leader or staff, and each event
        // must name the member whose device made it.
        for ev in &view.events {
            let Some(c) = change_of(new_changes, &ev.id) else {
                continue;
            };
            let actor = c.actor_id().to_hex_string();
            let Some((_, _, account)) = authors.get(self, &actor)?.cloned() else {
                continue; // checked above: unreachable for new changes
            };
            // A step's time is the member's claim, but not an absurd one: not before 2000, not
            // more than a day after the server received it (issue 10).
            if ev.at_ms < EARLIEST_EVENT_MS || ev.at_ms > now_ms() + EVENT_CLOCK_SKEW_MS {
                return Ok(Landed::Refused(
                    InvalidField,
                    "status".into(),
                    format!(
                        "a {} step dated {} ms since 1970 is not a plausible time",
                        ev.event.code(),
                        ev.at_ms
                    ),
                ));
            }
            if ev.member != account.member {
                return refuse(
                    Role,
                    format!(
                        "a {} step names member {}, but was made on a device of {}",
                        ev.event.code(),
                        ev.member,
                        account.member
                    ),
                );
            }
            if sanjin_core::rules::is_review_step(ev.event)
                && !self.may_review(&account, group.as_deref())?
            {
                return refuse(
                    Role,
                    format!(
                        "{} ({}) may not {} {}: only the group's leader or staff may",
                        account.member,
                        account.role,
                        ev.event.code(),
                        where_(kind, group.as_deref())
                    ),
                );
            }
        }
        // Land it: document, index row and change-log entry in one transaction (a savepoint of
        // the exchange's batch).
        let heads = rec.heads();
        let after_scope = scope_of(kind, group.as_deref());
        let moved = before_scope
            .as_ref()
            .is_some_and(|(_, _, s)| *s != after_scope);
        // A record new to the server, or moved into another scope, is logged whole: whoever
        // pulls it may have none of its earlier changes. Logged as raw changes, not a deflated
        // snapshot: answers are compressed as a whole, and deflate would hide what records share.
        let log_bytes = if !exists || moved {
            rec.save_after(&[])
        } else {
            rec.save_after(before_heads)
        };
        let origin = caller.device_id.as_str();
        let before = exists.then_some(before_heads);
        let log = log_entry(after_scope.as_deref(), Some(origin), &log_bytes, &heads);
        let landed = self
            .store
            .write_doc(&mut rec, before, &after, Some(log), None);
        match landed {
            Ok(_) => {
                self.remember_doc(doc_id, &heads_to_bytes(&heads), rec.into_automerge());
                Ok(Landed::Accepted { changed: true })
            }
            Err(sanjin_store::Error::Damaged { reason, .. }) => {
                refuse(Malformed, format!("not a sanjin record: {reason}"))
            }
            Err(sanjin_store::Error::Core(e)) => {
                refuse(Malformed, format!("not a sanjin record: {e}"))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `account` may take review steps (return, approve, resolve, opinion handling) on a
    /// record of `group`.
    fn may_review(&self, account: &Account, group: Option<&str>) -> Result<bool> {
        Ok(match account.role {
            Role::Staff => true,
            Role::Admin => false,
            Role::Member | Role::Leader => match group {
                Some(g) => self.is_leader_of(&account.member, g)?,
                None => false,
            },
        })
    }

    /// Fills `resp.changes` with the change-log entries after `cursor` in the caller's read
    /// scope (minus its own), at most `budget` bytes (at least one entry). Returns the bytes.
    fn pull(
        &self,
        caller: &Caller,
        cursor: u64,
        budget: usize,
        max_seq: u64,
        resp: &mut SyncResponse,
    ) -> Result<usize> {
        let group = caller.account.group.clone().unwrap_or_default();
        let filter = LogFilter {
            after: cursor,
            everything: caller.account.reads_everything(),
            group: &group,
            except_origin: Some(&caller.device_id),
        };
        let mut total = 0usize;
        let mut last = cursor;
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut more = false;
        let mut heads: Vec<ChangeHash> = Vec::new();
        self.store.log_since(&filter, &mut |row| {
            let bytes = row.bytes;
            if total > 0 && total + bytes.len() > budget {
                more = true;
                return false;
            }
            heads.extend_from_slice(row.heads);
            total += bytes.len();
            last = row.seq;
            match index.get(row.doc_id) {
                Some(&i) => {
                    let d = &mut resp.changes[i];
                    d.changes.extend_from_slice(bytes);
                }
                None => {
                    index.insert(row.doc_id.to_string(), resp.changes.len());
                    resp.changes.push(DocChanges {
                        doc_id: row.doc_id.to_string(),
                        changes: bytes.to_vec(),
                    });
                }
            }
            true
        })?;
        resp.more = more;
        resp.cursor = self.cursor_of(if more { last } else { max_seq.max(cursor) })?;
        // The signatures of what is pulled, and their signers' certificates (issue 10).
        let (sigs, certs) = self.sigs_for_pull(&resp.changes, &heads)?;
        resp.sigs = sigs;
        resp.certs = certs;
        Ok(total)
    }

    /// The cursor a device keeps for log position `seq`: the sequence number in the high bits
    /// and a 20-bit tag of that log entry (its document and heads) in the low bits. Opaque to
    /// devices, monotonic in `seq`. A server restored from a backup that has since written other
    /// entries at the same positions no longer recognises the cursor, and asks for a resync
    /// instead of silently skipping entries.
    pub(crate) fn cursor_of(&self, seq: u64) -> Result<u64> {
        if seq == 0 {
            return Ok(0);
        }
        let tag = self.entry_tag(seq)?.unwrap_or(0);
        Ok((seq << CURSOR_TAG_BITS) | tag)
    }

    /// The log position a cursor stands for, if it matches this server's log.
    pub(crate) fn cursor_seq(&self, cursor: u64) -> Result<Option<u64>> {
        if cursor == 0 {
            return Ok(Some(0));
        }
        let seq = cursor >> CURSOR_TAG_BITS;
        let tag = cursor & ((1 << CURSOR_TAG_BITS) - 1);
        Ok(match self.entry_tag(seq)? {
            Some(t) if t == tag => Some(seq),
            _ => None,
        })
    }

    fn entry_tag(&self, seq: u64) -> Result<Option<u64>> {
        let row = self.store.log_entry(seq)?;
        Ok(row.map(|(doc, heads)| {
            // FNV-1a over the entry's document id and heads (as stored: 32 bytes each).
            let heads = heads_to_bytes(&heads);
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in doc.as_bytes().iter().chain(&heads) {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            h & ((1 << CURSOR_TAG_BITS) - 1)
        }))
    }

    /// The fallback: answers automerge sync messages per document, with one `sync::State` per
    /// device and document kept between requests. Changes they carry go through the same checks
    /// and the change log as pushes.
    fn answer_am_sync(
        &mut self,
        caller: &Caller,
        msgs: &[DocSync],
        resp: &mut SyncResponse,
        authors: &mut Authors,
        signed: &Signed,
        landed: &mut Vec<(ChangeHash, String)>,
    ) -> Result<()> {
        let mut states: Vec<(String, Vec<u8>)> = Vec::new();
        for m in msgs {
            let doc_id = m.doc_id.as_str();
            let mut refuse = |code: RefusalCode, field: String, reason: String| {
                resp.refused.push(Refusal {
                    doc_id: doc_id.to_string(),
                    code,
                    field,
                    reason,
                });
            };
            if !sanjin_core::validate::is_id(doc_id) {
                refuse(
                    RefusalCode::Malformed,
                    String::new(),
                    format!("`{doc_id}` is not a record id"),
                );
                continue;
            }
            let Ok(mut msg) = sync::Message::decode(&m.message) else {
                refuse(
                    RefusalCode::Malformed,
                    String::new(),
                    "not an automerge sync message".into(),
                );
                continue;
            };
            if let Some(e) = self.store.index_entry(doc_id)?
                && !caller.account.may_read(kind_of(&e), e.group.as_deref())
            {
                refuse(
                    RefusalCode::Forbidden,
                    String::new(),
                    format!("record {doc_id} is not in this device's scope"),
                );
                continue;
            }
            let mut state = self.sync_state(&caller.device_id, doc_id)?;
            // A document refused now gets no answer this round: the refusal is the answer (an
            // answer would ask for the refused changes again).
            let mut refused_now = false;
            if !msg.changes.is_empty() {
                let bytes: Vec<u8> = msg.changes.iter().flatten().copied().collect();
                match self.push_doc(caller, doc_id, &bytes, authors, signed, landed)? {
                    Landed::Accepted { .. } => {}
                    Landed::Refused(code, field, reason) => {
                        tracing::info!(device = %caller.device_id, doc = %doc_id, code = code.code(), %field, %reason, "sync changes refused");
                        refuse(code, field, reason);
                        refused_now = true;
                        msg.changes = sync::ChunkList::empty();
                    }
                    Landed::Skipped(reason) => {
                        tracing::error!(device = %caller.device_id, doc = %doc_id, %reason, "sync changes skipped");
                        msg.changes = sync::ChunkList::empty();
                    }
                }
            }
            let mut doc = match self.load_automerge(doc_id) {
                Ok(d) => d.unwrap_or_default(),
                Err(Error::Store(sanjin_store::Error::Damaged { reason, .. })) => {
                    tracing::error!(doc = %doc_id, %reason, "stored document damaged");
                    continue;
                }
                Err(e) => return Err(e),
            };
            if doc.sync().receive_sync_message(&mut state, msg).is_err() {
                refuse(
                    RefusalCode::Malformed,
                    String::new(),
                    "the sync message could not be applied".into(),
                );
                continue;
            }
            // Documents the server has not got answer too: that asks the device for them.
            let readable = match self.store.index_entry(doc_id)? {
                Some(e) => caller.account.may_read(kind_of(&e), e.group.as_deref()),
                None => true,
            };
            if readable
                && !refused_now
                && let Some(out) = doc.sync().generate_sync_message(&mut state)
            {
                resp.am_sync.push(DocSync {
                    doc_id: doc_id.to_string(),
                    message: out.encode(),
                });
            }
            states.push((doc_id.to_string(), state.encode()));
        }
        // Every document's sync state in one transaction (one disk sync, not one per document).
        if !states.is_empty() {
            self.store
                .put_sync_states(&caller.device_id, &states, now_ms())?;
        }
        Ok(())
    }

    fn sync_state(&self, device_id: &str, doc_id: &str) -> Result<sync::State> {
        let bytes = self.store.sync_state(device_id, doc_id)?;
        Ok(bytes
            .and_then(|b| sync::State::decode(&b).ok())
            .unwrap_or_default())
    }

    fn stored_response(&self, device_id: &str, request_id: &[u8; 16]) -> Result<Option<Vec<u8>>> {
        Ok(self.store.stored_response(
            device_id,
            request_id,
            now_ms() - self.limits.idempotency_ttl_ms,
        )?)
    }

    /// Keeps the encoded answer to a request for retries (forgetting old ones), and notes when
    /// the device synced.
    pub fn remember(
        &mut self,
        device_id: &str,
        request_id: &[u8; 16],
        response: &[u8],
    ) -> Result<()> {
        let ttl = self.limits.idempotency_ttl_ms;
        let keep = self.limits.idempotency_per_device;
        self.store
            .remember_response(device_id, request_id, response, now_ms(), ttl, keep)?;
        Ok(())
    }

    /// Notes when the device last synced (at most once a minute for pull-only exchanges).
    fn touch(&mut self, device_id: &str) -> Result<()> {
        self.store.touch_device(device_id, now_ms(), Some(60_000))?;
        Ok(())
    }
}
