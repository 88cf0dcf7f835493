//! One sync exchange on the server side (docs/PROTOCOL.md): pushes checked and landed with their
//! change-log entries, the pull of the change log in the device's read scope, the automerge
//! sync-protocol fallback, and idempotent retries.

use std::collections::HashMap;

use automerge::ChangeHash;
use automerge::sync::{self, SyncDoc};
use sanjin_core::domain::RecordKind;
use sanjin_core::protocol::{DocChanges, DocSync, Refusal, RefusalCode, SyncRequest, SyncResponse};
use sanjin_store::now_ms;
use sanjin_sync::server::{self as policy, Author, Before, Changes, Facts, Landed, Pull, Refused};

/// Low bits of a cursor that hold the tag of its log entry.
const CURSOR_TAG_BITS: u32 = 20;

use crate::data::{ServerData, heads_to_bytes, log_entry};
use crate::directory::Membership;
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

/// Devices by actor (with their member's history, issue 13), and pushers' histories, looked
/// up once per exchange.
#[derive(Default)]
pub(crate) struct Authors {
    by_actor: HashMap<String, Option<(String, bool, Membership)>>,
    pushers: HashMap<String, Membership>,
}

impl Authors {
    fn get(
        &mut self,
        data: &ServerData,
        actor: &str,
    ) -> Result<Option<&(String, bool, Membership)>> {
        if !self.by_actor.contains_key(actor) {
            let found = match data.device_by_actor(actor)? {
                Some((device, revoked, account)) => {
                    Some((device, revoked, data.membership(&account)?))
                }
                None => None,
            };
            self.by_actor.insert(actor.to_string(), found);
        }
        Ok(self.by_actor.get(actor).and_then(Option::as_ref))
    }

    fn pusher(&mut self, data: &ServerData, account: &Account) -> Result<Membership> {
        if let Some(m) = self.pushers.get(&account.member)
            && m.account == *account
        {
            return Ok(m.clone());
        }
        let m = data.membership(account)?;
        self.pushers.insert(account.member.clone(), m.clone());
        Ok(m)
    }
}

/// What the push policy asks the server: authors and reviewers, from its tables (cached per
/// exchange).
struct Lookups<'a> {
    data: &'a ServerData,
    authors: &'a mut Authors,
}

impl Facts for Lookups<'_> {
    // Issue 13: an account with its former groups and retirement, so that each change is
    // judged by what its member could write when it was made.
    type Account = Membership;
    type Error = Error;

    fn author(&mut self, actor: &str) -> Result<Option<Author<Membership>>> {
        Ok(self
            .authors
            .get(self.data, actor)?
            .cloned()
            .map(|(device, revoked, account)| Author {
                device,
                revoked,
                account,
            }))
    }

    fn may_review(
        &mut self,
        account: &Membership,
        group: Option<&str>,
        also: Option<&str>,
    ) -> Result<bool> {
        self.data.may_review(&account.account, group, also)
    }

    fn legal_group(&mut self) -> Result<Option<String>> {
        Ok(self.data.directory_facts()?.legal_group.clone())
    }
}

impl policy::Writer for Account {
    fn member(&self) -> &str {
        &self.member
    }

    fn role(&self) -> String {
        self.role.to_string()
    }

    fn may_write(&self, kind: RecordKind, group: Option<&str>) -> bool {
        Account::may_write(self, kind, group)
    }

    fn leads(&self, group: &str) -> bool {
        Account::leads(self, group)
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
            let out = self.push_doc(
                caller,
                Some(&caller.device_id),
                &push.doc_id,
                &push.changes,
                &mut authors,
                &signed,
                &mut landed,
            )?;
            match &out {
                Landed::Accepted { .. } => accepted += 1,
                Landed::Refused(Refused(code, field, reason)) => {
                    tracing::info!(device = %caller.device_id, doc = %push.doc_id, code = code.code(), %field, %reason, "push refused");
                }
                Landed::Skipped(reason) => {
                    tracing::error!(device = %caller.device_id, doc = %push.doc_id, %reason, "push skipped");
                }
            }
            policy::answer_push(&mut resp, i, &push.doc_id, &out);
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
        let mut pulled_bytes = 0;
        let seq = self.cursor_seq(req.cursor)?;
        // Issue 13: a device whose member moved to another group holds none of the new group's
        // history: it reads the log again from the start (a resync), once.
        let plan = if self.rescan_due(&caller.device_id, req.cursor)? {
            Pull::Resync
        } else {
            policy::plan_pull(
                req,
                self.epoch,
                seq,
                max_seq,
                self.limits.default_response_bytes,
                self.limits.max_response_bytes,
            )
        };
        match plan {
            Pull::From { seq, budget } => {
                pulled_bytes = self.pull(caller, seq, budget as usize, max_seq, &mut resp)?;
            }
            Pull::Resync => {
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
        let remember = keyed && policy::remember(req);
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

    /// Checks one pushed document by the push policy (`sanjin_sync::server`) and, if it holds,
    /// writes it, its index row and its change-log entry in one transaction. The server
    /// gathers (index entry, its copy, authors), the policy decides, the server writes.
    /// `origin`: the device the log entry leaves out of its pulls (`None`: nobody — a bundle
    /// landed by an operator, issue 12).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push_doc(
        &mut self,
        caller: &Caller,
        origin: Option<&str>,
        doc_id: &str,
        bytes: &[u8],
        authors: &mut Authors,
        signed: &Signed,
        landed: &mut Vec<(ChangeHash, String)>,
    ) -> Result<Landed> {
        if let Err(r) = policy::check_envelope(doc_id, bytes, self.limits.max_doc_bytes) {
            return Ok(Landed::Refused(r));
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
        let legal_group = self.directory_facts()?.legal_group.clone();
        let before = before
            .as_ref()
            .map(|e| Before::with_also(e, legal_group.as_deref()));
        let pusher = authors.pusher(self, &caller.account)?;
        if let Err(r) = policy::check_pusher(&pusher, before.as_ref(), bytes) {
            return Ok(Landed::Refused(r));
        }
        let exists = am_before.is_some();
        let mut am = am_before.unwrap_or_default();
        let before_heads = am.get_heads();
        if am.load_incremental(bytes).is_err() {
            return Ok(Landed::Refused(Refused(
                RefusalCode::Malformed,
                String::new(),
                "the bytes are not automerge changes".into(),
            )));
        }
        let signed_by = |h: &ChangeHash, device: &str| signed.signed_by(h, device);
        let judged = policy::judge_changes(
            &mut Lookups {
                data: self,
                authors,
            },
            &pusher,
            &mut am,
            exists,
            &before_heads,
            before.as_ref(),
            bytes.len(),
            &signed_by,
        )?;
        match judged {
            Changes::Refused(r) => Ok(Landed::Refused(r)),
            Changes::Held => Ok(Landed::Accepted { changed: false }),
            Changes::All { changes, owners } => {
                let out = self.land_checked(
                    origin,
                    doc_id,
                    am,
                    exists,
                    &before_heads,
                    before.as_ref(),
                    authors,
                    &changes,
                    &pusher,
                )?;
                if matches!(out, Landed::Accepted { .. }) {
                    landed.extend(owners);
                }
                Ok(out)
            }
            Changes::Some {
                kept,
                owners,
                refusal,
            } => {
                // The server's copy again, plus only the changes that hold.
                let mut again = self.load_automerge(doc_id)?.unwrap_or_default();
                if again.apply_changes(kept.clone()).is_err() {
                    return Ok(Landed::Refused(refusal));
                }
                match self.land_checked(
                    origin,
                    doc_id,
                    again,
                    exists,
                    &before_heads,
                    before.as_ref(),
                    authors,
                    &kept,
                    &pusher,
                )? {
                    Landed::Accepted { .. } => {
                        landed.extend(
                            kept.iter()
                                .filter_map(|c| Some((c.hash(), owners.get(&c.hash())?.clone()))),
                        );
                        Ok(Landed::Refused(refusal))
                    }
                    other => Ok(other),
                }
            }
        }
    }

    /// The policy's checks of the record as the new changes leave it, then the landing:
    /// document, index row and change-log entry in one transaction (a savepoint of the
    /// exchange's batch).
    #[allow(clippy::too_many_arguments)]
    fn land_checked(
        &mut self,
        origin: Option<&str>,
        doc_id: &str,
        am: automerge::AutoCommit,
        exists: bool,
        before_heads: &[ChangeHash],
        before: Option<&Before>,
        authors: &mut Authors,
        new_changes: &[automerge::Change],
        pusher: &Membership,
    ) -> Result<Landed> {
        let judged = policy::judge_record(
            &mut Lookups {
                data: self,
                authors,
            },
            pusher,
            doc_id,
            am,
            before,
            new_changes,
            exists,
            now_ms(),
        )?;
        let (mut rec, landing) = match judged {
            Ok(x) => x,
            Err(r) => return Ok(Landed::Refused(r)),
        };
        // Logged as raw changes, not a deflated snapshot: answers are compressed as a whole,
        // and deflate would hide what records share.
        let log_bytes = if landing.log_whole {
            rec.save_after(&[])
        } else {
            rec.save_after(before_heads)
        };
        let heads = landing.heads;
        let before = exists.then_some(before_heads);
        let after_scope = crate::data::entry_scope(&landing.after);
        let log = log_entry(
            after_scope.as_deref(),
            landing.also.as_deref(),
            origin,
            &log_bytes,
            &heads,
        );
        let landed = self
            .store
            .write_doc(&mut rec, before, &landing.after, Some(log), None);
        let refuse = |reason: String| {
            Ok(Landed::Refused(Refused(
                RefusalCode::Malformed,
                String::new(),
                reason,
            )))
        };
        match landed {
            Ok(_) => {
                self.remember_doc(doc_id, &heads_to_bytes(&heads), rec.into_automerge());
                Ok(Landed::Accepted { changed: true })
            }
            Err(sanjin_store::Error::Damaged { reason, .. }) => {
                refuse(format!("not a sanjin record: {reason}"))
            }
            Err(sanjin_store::Error::Core(e)) => refuse(format!("not a sanjin record: {e}")),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `account` may take review steps (return, approve, resolve, opinion handling) on a
    /// record of `group` that `also` reads too: staff (of a county chapter: on its groups'
    /// records), the group's leader, and for a legal appeal the legal advisory group's leader
    /// (issue 13).
    pub(crate) fn may_review(
        &self,
        account: &Account,
        group: Option<&str>,
        also: Option<&str>,
    ) -> Result<bool> {
        Ok(match account.role {
            Role::Staff => {
                account.county().is_none() || account.may_write(RecordKind::Opinion, group)
            }
            Role::Admin => false,
            Role::Member | Role::Leader => {
                let leads = |g: Option<&str>| match g {
                    Some(g) => self.is_leader_of(&account.member, g),
                    None => Ok(false),
                };
                leads(group)? || leads(also)?
            }
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
            // Staff of a county chapter: its groups (issue 13).
            groups: &caller.account.scope.chapter_groups,
            // A member of the legal advisory group: legal appeals of every group (issue 13;
            // no other group is any entry's second reader).
            also: caller.account.group.as_deref(),
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

    /// The tag of the log entry at `seq`: the low bits of its link, which stands for the whole
    /// log up to it (`sanjin_core::protocol::log_link`).
    fn entry_tag(&self, seq: u64) -> Result<Option<u64>> {
        Ok(self
            .store
            .log_entry(seq)?
            .map(|k| k.link_or_own() & ((1 << CURSOR_TAG_BITS) - 1)))
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
                && !caller.account.may_read_entry(&e)
            {
                // Issue 13: a record of a group the member has left is no longer followed: the
                // changes made in it before the move still land (the push policy judges each by
                // its time), and nothing is sent back or refused, so the phone's fallback
                // settles it quietly.
                let pusher = authors.pusher(self, &caller.account)?;
                if policy::Writer::may_have_written(
                    &pusher,
                    RecordKind::parse(&e.kind).expect("index entries carry a known kind"),
                    e.group.as_deref(),
                ) {
                    if !msg.changes.is_empty() {
                        let bytes: Vec<u8> = msg.changes.iter().flatten().copied().collect();
                        if let Landed::Refused(Refused(code, field, reason)) = self.push_doc(
                            caller,
                            Some(&caller.device_id),
                            doc_id,
                            &bytes,
                            authors,
                            signed,
                            landed,
                        )? {
                            refuse(code, field, reason);
                        }
                    }
                    continue;
                }
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
                match self.push_doc(
                    caller,
                    Some(&caller.device_id),
                    doc_id,
                    &bytes,
                    authors,
                    signed,
                    landed,
                )? {
                    Landed::Accepted { .. } => {}
                    Landed::Refused(Refused(code, field, reason)) => {
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
                Some(e) => caller.account.may_read_entry(&e),
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
