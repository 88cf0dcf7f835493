//! The server's side of one exchange, without IO: the push policy (issue 10) — which pushed
//! changes land and which are refused, with which code, field and reason —, the acks and
//! refusals of the answer, and whether the device's cursor is pulled from or sent to resync.
//!
//! The server gathers what the policy needs from its storage (its copy of the document, the
//! record's index entry, the authors' devices and accounts through [`Facts`]), calls the
//! policy, and writes what it decides: a document, its index row and its change-log entry in one
//! transaction. Time (`now_ms`) is an input.

use std::collections::{HashMap, HashSet};

use automerge::{AutoCommit, Change, ChangeHash};
use sanjin_core::domain::RecordKind;
use sanjin_core::protocol::{Refusal, RefusalCode, SyncRequest, SyncResponse};
use sanjin_core::{IndexEntry, RecordDoc};

/// The earliest time a workflow step may carry: 2000-01-01 UTC.
pub const EARLIEST_EVENT_MS: i64 = 946_684_800_000;
/// How far ahead of the server's clock a device's clock may be for a step it dates.
pub const EVENT_CLOCK_SKEW_MS: i64 = 24 * 3600 * 1000;

/// An account as the policy sees it (the server's `Account` implements it).
pub trait Writer: Clone {
    fn member(&self) -> &str;
    /// The role's code (`member`, `leader`, `staff`, `admin`), for reasons.
    fn role(&self) -> String;
    /// Whether it may write a record of `kind` in `group` (`None`: the directory).
    fn may_write(&self, kind: RecordKind, group: Option<&str>) -> bool;
    /// Whether a change its device made at `at_ms` (the change's own time, the device's
    /// claim) may write a record of `kind` in `group`. By default what it may write now; a
    /// member moved to another group or retired (issue 13) still lands what it made before.
    fn may_write_at(&self, kind: RecordKind, group: Option<&str>, at_ms: i64) -> bool {
        let _ = at_ms;
        self.may_write(kind, group)
    }
    /// Whether it may write such a record now or could at some earlier time: the pusher's
    /// check, before each change is judged by its own time ([`Writer::may_write_at`]).
    fn may_have_written(&self, kind: RecordKind, group: Option<&str>) -> bool {
        self.may_write(kind, group)
    }
    /// When the member retired (issue 13), if it did: its devices are revoked, but changes they
    /// made before then still land through an operator's import of their bundle.
    fn retired_at(&self) -> Option<i64> {
        None
    }
    /// Whether it is the leader of `group` (issue 13: the legal advisory group's leader also
    /// writes the legal appeals of other groups). None by default.
    fn leads(&self, group: &str) -> bool {
        let _ = group;
        false
    }
    /// Whether it may write a record of `kind` in `group` that `also` reads besides its group
    /// (`sanjin_core::rules::also_read_by`): as [`Writer::may_write`] says, or as the leader of
    /// `also` (a legal appeal handled by the legal advisory group's leader).
    fn may_write_record(&self, kind: RecordKind, group: Option<&str>, also: Option<&str>) -> bool {
        self.may_write(kind, group) || also.is_some_and(|a| self.leads(a))
    }
    /// [`Writer::may_have_written`], or as the leader of `also`: the pusher's check.
    fn may_have_written_record(
        &self,
        kind: RecordKind,
        group: Option<&str>,
        also: Option<&str>,
    ) -> bool {
        self.may_have_written(kind, group) || also.is_some_and(|a| self.leads(a))
    }
    /// [`Writer::may_write_at`], or as the leader of `also`: one change judged by its time.
    fn may_write_record_at(
        &self,
        kind: RecordKind,
        group: Option<&str>,
        also: Option<&str>,
        at_ms: i64,
    ) -> bool {
        self.may_write_at(kind, group, at_ms) || also.is_some_and(|a| self.leads(a))
    }
}

/// The enrolled device whose actor made a change.
#[derive(Debug, Clone)]
pub struct Author<A> {
    pub device: String,
    pub revoked: bool,
    pub account: A,
}

/// What the policy asks the server's storage (cached by the server per exchange).
pub trait Facts {
    type Account: Writer;
    type Error;
    /// The device with this actor (hex), if one is enrolled.
    fn author(&mut self, actor: &str) -> Result<Option<Author<Self::Account>>, Self::Error>;
    /// Whether `account` may take review steps on a record of `group` that `also` reads too
    /// (the legal advisory group for a legal appeal, issue 13: its leader reviews it as well).
    fn may_review(
        &mut self,
        account: &Self::Account,
        group: Option<&str>,
        also: Option<&str>,
    ) -> Result<bool, Self::Error>;
    /// The legal advisory group, as far as the judge knows (`sanjin_core::rules::legal_group`):
    /// legal appeals of other groups are also read by it and handled by its leader. `None`
    /// (the default): nobody besides a record's group.
    fn legal_group(&mut self) -> Result<Option<String>, Self::Error> {
        Ok(None)
    }
}

/// A refusal of one document: code, the field it is about (or empty), the reason in English.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub RefusalCode, pub String, pub String);

fn refuse(code: RefusalCode, reason: String) -> Refused {
    Refused(code, String::new(), reason)
}

/// The record as the server holds it before the push: its kind, group and read scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Before {
    pub kind: RecordKind,
    pub group: Option<String>,
    pub scope: Option<String>,
    /// The group that reads it besides its own (issue 13, a legal appeal's legal advisory
    /// group; see [`Before::with_also`]).
    pub also: Option<String>,
}

/// The read scope of a record: its activity group, or `None` for the directory.
pub fn scope_of(kind: RecordKind, group: Option<&str>) -> Option<String> {
    if kind.is_directory() {
        None
    } else {
        group.map(str::to_string)
    }
}

impl Before {
    pub fn of(entry: &IndexEntry) -> Before {
        let kind = RecordKind::parse(&entry.kind).expect("index entries carry a known kind");
        Before {
            kind,
            group: entry.group.clone(),
            scope: scope_of(kind, entry.group.as_deref()),
            also: None,
        }
    }

    /// [`Before::of`], with the group that also reads the record given the legal advisory group
    /// (`sanjin_core::rules::also_read_by`).
    pub fn with_also(entry: &IndexEntry, legal_group: Option<&str>) -> Before {
        let mut b = Before::of(entry);
        b.also = sanjin_core::rules::also_read_by(
            b.kind,
            entry.group.as_deref(),
            entry.type_code.as_deref(),
            legal_group,
        )
        .map(str::to_string);
        b
    }
}

/// The checks before the server's copy is read: the id and the size.
pub fn check_envelope(doc_id: &str, bytes: &[u8], max_doc_bytes: usize) -> Result<(), Refused> {
    use RefusalCode::*;
    if !sanjin_core::validate::is_id(doc_id) {
        return Err(refuse(Malformed, format!("`{doc_id}` is not a record id")));
    }
    if bytes.len() > max_doc_bytes {
        return Err(refuse(
            TooLarge,
            format!(
                "{} bytes of changes; the server accepts at most {max_doc_bytes} per document",
                bytes.len()
            ),
        ));
    }
    Ok(())
}

fn where_(kind: RecordKind, group: Option<&str>) -> String {
    match (kind.is_directory(), group) {
        (true, _) => format!("a {} record of the directory", kind.code()),
        (false, Some(g)) => format!("a {} of group {g}", kind.code()),
        (false, None) => format!("a {} without a group", kind.code()),
    }
}

fn may_not_write<A: Writer>(a: &A, kind: RecordKind, group: Option<&str>) -> Refused {
    refuse(
        RefusalCode::Forbidden,
        format!(
            "{} ({}) may not write {}",
            a.member(),
            a.role(),
            where_(kind, group)
        ),
    )
}

fn short(h: &ChangeHash) -> String {
    h.to_string()[..12].to_string()
}

/// The pusher may write the record as the server holds it; the bytes are automerge chunks
/// (automerge skips what it cannot read: junk for an existing record would be acknowledged).
pub fn check_pusher<A: Writer>(
    pusher: &A,
    before: Option<&Before>,
    bytes: &[u8],
) -> Result<(), Refused> {
    if let Some(b) = before
        && !pusher.may_have_written_record(b.kind, b.group.as_deref(), b.also.as_deref())
    {
        return Err(may_not_write(pusher, b.kind, b.group.as_deref()));
    }
    if !sanjin_core::sign::all_chunks(bytes) {
        return Err(refuse(
            RefusalCode::Malformed,
            "the bytes are not automerge changes".into(),
        ));
    }
    Ok(())
}

/// The kind and activity group a document says it has (root `kind`, field `group`), read
/// without building its view; `None` when it does not say.
pub fn peek_scope(am: &AutoCommit) -> Option<(RecordKind, Option<String>)> {
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

/// The opinion kind a document says it has (field `opinion_kind`), read without building its
/// view; `None` when it says none.
pub fn peek_opinion_kind(am: &AutoCommit) -> Option<String> {
    use automerge::ReadDoc;
    let (automerge::Value::Object(_), f) = am.get(automerge::ROOT, "f").ok()?? else {
        return None;
    };
    match am.get(&f, "opinion_kind").ok()??.0 {
        automerge::Value::Scalar(s) => match s.as_ref() {
            automerge::ScalarValue::Str(s) => Some(s.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// What the changes of a push come to.
#[derive(Debug)]
pub enum Changes {
    /// Refused as a whole.
    Refused(Refused),
    /// Nothing new: the server already holds every change (acknowledged, nothing written).
    Held,
    /// Every new change holds: land the document as loaded, if the record passes
    /// [`judge_record`]. `owners`: the device of each change (for its signature).
    All {
        changes: Vec<Change>,
        owners: HashMap<ChangeHash, String>,
    },
    /// Some changes are refused: land the server's copy plus `kept` only (if that passes
    /// [`judge_record`]), and answer `refusal` whatever happens.
    Some {
        kept: Vec<Change>,
        owners: HashMap<ChangeHash, String>,
        refusal: Refused,
    },
}

/// Judges the changes of a push, loaded into `am` (the server's copy, or an empty document
/// when `!exists`) on top of `before_heads`: missing dependencies, sizes, the record's scope,
/// then **each** change (its actor's enrolled, unrevoked device, its message, that device's
/// signature — `signed(change, device)` —, its member's right to write the record as it was)
/// and what the changes do (`sanjin_core::rules::check_changes`). Refused changes and those
/// depending on them are left out.
#[allow(clippy::too_many_arguments)]
pub fn judge_changes<F: Facts>(
    facts: &mut F,
    pusher: &F::Account,
    am: &mut AutoCommit,
    exists: bool,
    before_heads: &[ChangeHash],
    before: Option<&Before>,
    bytes_len: usize,
    signed: &dyn Fn(&ChangeHash, &str) -> bool,
) -> Result<Changes, F::Error> {
    use RefusalCode::*;
    let missing_deps = am.get_missing_deps(&[]);
    if !missing_deps.is_empty() {
        return Ok(Changes::Refused(refuse(
            MissingDeps,
            format!(
                "the changes depend on {} changes the server has not seen; push the whole document",
                missing_deps.len()
            ),
        )));
    }
    let new_changes: Vec<Change> = am.get_changes(before_heads);
    if new_changes.is_empty() {
        if !exists {
            return Ok(Changes::Refused(refuse(
                Malformed,
                "no changes, and no such record".into(),
            )));
        }
        return Ok(Changes::Held);
    }
    // A record outside the pusher's scope is refused as such before its changes are judged
    // one by one.
    let scope = peek_scope(am);
    let legal_group = facts.legal_group()?;
    let also = scope.as_ref().and_then(|(kind, group)| {
        sanjin_core::rules::also_read_by(
            *kind,
            group.as_deref(),
            peek_opinion_kind(am).as_deref(),
            legal_group.as_deref(),
        )
        .map(str::to_string)
    });
    if let Some((kind, group)) = &scope
        && !pusher.may_have_written_record(*kind, group.as_deref(), also.as_deref())
    {
        return Ok(Changes::Refused(may_not_write(
            pusher,
            *kind,
            group.as_deref(),
        )));
    }
    if let Err(e) = sanjin_core::validate::check_sizes(bytes_len, new_changes.len()) {
        return Ok(Changes::Refused(Refused(
            sanjin_core::rules::refusal_code(&e),
            e.field.clone(),
            e.to_string(),
        )));
    }
    let mut refused: Vec<(ChangeHash, RefusalCode, String, String)> = Vec::new();
    let mut owners: HashMap<ChangeHash, String> = HashMap::new();
    for c in &new_changes {
        match check_change(facts, c, signed, before)? {
            Ok(device) => {
                owners.insert(c.hash(), device);
            }
            Err((code, reason)) => refused.push((c.hash(), code, String::new(), reason)),
        }
    }
    // What the changes do, judged from their operations by the same function devices run on
    // merges (issue 10): history, authorship, conflicts settled, review steps.
    let group = scope.and_then(|(_, g)| g);
    let mut signers: HashMap<String, Option<sanjin_core::rules::Signer>> = HashMap::new();
    for c in &new_changes {
        let actor = c.actor_id().to_hex_string();
        if signers.contains_key(&actor) {
            continue;
        }
        let signer = match facts.author(&actor)? {
            Some(a) => Some(sanjin_core::rules::Signer {
                reviewer: facts.may_review(&a.account, group.as_deref(), also.as_deref())?,
                member: a.account.member().to_string(),
                device: a.device,
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
        sanjin_core::rules::check_changes(am.document(), before_heads, &new_changes, &lookup);
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
    if refused.is_empty() {
        return Ok(Changes::All {
            changes: new_changes,
            owners,
        });
    }
    // Refused changes and those that depend on them are left out; the rest lands.
    let bad: HashSet<ChangeHash> = refused.iter().map(|r| r.0).collect();
    let dependents = sanjin_core::rules::dependents(&new_changes, &bad);
    let kept: Vec<Change> = new_changes
        .into_iter()
        .filter(|c| !bad.contains(&c.hash()) && !dependents.contains(&c.hash()))
        .collect();
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
    let refusal = Refused(*code, field.clone(), reason);
    if kept.is_empty() {
        return Ok(Changes::Refused(refusal));
    }
    Ok(Changes::Some {
        kept,
        owners,
        refusal,
    })
}

/// The checks of one new change that need no document: its actor's device, that device's
/// signature, its message, its member's right to write the record as it was. `Ok(device)`.
#[allow(clippy::type_complexity)]
pub fn check_change<F: Facts>(
    facts: &mut F,
    c: &Change,
    signed: &dyn Fn(&ChangeHash, &str) -> bool,
    before: Option<&Before>,
) -> Result<Result<String, (RefusalCode, String)>, F::Error> {
    use RefusalCode::*;
    let actor = c.actor_id().to_hex_string();
    let Some(Author {
        device: device_id,
        revoked,
        account,
    }) = facts.author(&actor)?
    else {
        return Ok(Err((
            ForeignActor,
            format!("made by actor {actor}, which is no enrolled device"),
        )));
    };
    let msg = c.message().and_then(parse_message);
    let Some((m, d)) = msg else {
        return Ok(Err((
            ForeignActor,
            "the change does not name its member and device".into(),
        )));
    };
    if m != account.member() || d != device_id {
        return Ok(Err((
            ForeignActor,
            format!(
                "names member {m} on device {d}, but was made by device {device_id} of member {}",
                account.member()
            ),
        )));
    }
    let at_ms = sanjin_core::doc::change_at_ms(c);
    // A device revoked because its member retired: what it made before still lands (through
    // an operator's import of its bundle; the device itself can no longer sync).
    if revoked && account.retired_at().is_none_or(|t| at_ms > t) {
        return Ok(Err((
            Revoked,
            format!("made by device {device_id}, which has been revoked"),
        )));
    }
    if !signed(&c.hash(), &device_id) {
        return Ok(Err((
            BadSignature,
            format!("no valid signature by device {device_id}, whose actor made it"),
        )));
    }
    if let Some(b) = before
        && !account.may_write_record_at(b.kind, b.group.as_deref(), b.also.as_deref(), at_ms)
    {
        return Ok(Err((
            Forbidden,
            format!(
                "{} ({}) may not write {}",
                account.member(),
                account.role(),
                where_(b.kind, b.group.as_deref())
            ),
        )));
    }
    Ok(Ok(device_id))
}

/// The member and device every sanjin change's message names (`{"m": member, "d": device,
/// …}`). The action label (`"a"`) is never trusted: what a change does is read from its
/// operations.
#[derive(serde::Deserialize)]
struct ChangeMessage {
    m: String,
    d: String,
}

fn parse_message(m: &str) -> Option<(String, String)> {
    let msg: ChangeMessage = serde_json::from_str(m).ok()?;
    Some((msg.m, msg.d))
}

/// Where a landing goes and what it logs.
#[derive(Debug)]
pub struct Landing {
    /// The index row after the changes.
    pub after: IndexEntry,
    pub heads: Vec<ChangeHash>,
    /// Log the whole record (new to the server, or moved into another scope: whoever pulls it
    /// may have none of its earlier changes), else only the changes after `before_heads`.
    pub log_whole: bool,
    /// The group that reads the record besides its own, after the changes (issue 13): the log
    /// entry's second reader.
    pub also: Option<String>,
}

/// The checks of the record as the new changes leave it (`am`): a sanjin record of this id,
/// every value as devices check it, the same kind, the pusher's and every change's member's
/// right to write it after, new workflow events dated plausibly (`now_ms`), naming the member
/// whose device made them, review steps only by reviewers. The record and where it lands.
#[allow(clippy::too_many_arguments)]
pub fn judge_record<F: Facts>(
    facts: &mut F,
    pusher: &F::Account,
    doc_id: &str,
    am: AutoCommit,
    before: Option<&Before>,
    new_changes: &[Change],
    exists: bool,
    now_ms: i64,
) -> Result<Result<(RecordDoc, Landing), Refused>, F::Error> {
    use RefusalCode::*;
    let mut rec = match RecordDoc::from_automerge(am) {
        Ok(r) => r,
        Err(e) => return Ok(Err(refuse(Malformed, format!("not a sanjin record: {e}")))),
    };
    if rec.id() != doc_id {
        return Ok(Err(refuse(
            Malformed,
            format!("the changes are for record {}, not {doc_id}", rec.id()),
        )));
    }
    let view = match rec.view() {
        Ok(v) => v,
        Err(e) => {
            return Ok(Err(refuse(
                Malformed,
                format!("not a valid sanjin record: {e}"),
            )));
        }
    };
    // Every field value, photo reference and thumbnail, as the device checks them (issue 10).
    if let Err(e) = sanjin_core::validate::check_record(rec.automerge()) {
        return Ok(Err(Refused(
            sanjin_core::rules::refusal_code(&e),
            e.field.clone(),
            e.to_string(),
        )));
    }
    let after = IndexEntry::of(&view);
    let kind = rec.kind();
    let group = after.group.clone();
    if let Some(b) = before
        && b.kind != kind
    {
        return Ok(Err(refuse(
            Malformed,
            format!("a {} record cannot become a {}", b.kind.code(), kind.code()),
        )));
    }
    let legal_group = facts.legal_group()?;
    let also = sanjin_core::rules::also_read_by(
        kind,
        group.as_deref(),
        after.type_code.as_deref(),
        legal_group.as_deref(),
    )
    .map(str::to_string);
    if !pusher.may_have_written_record(kind, group.as_deref(), also.as_deref()) {
        return Ok(Err(may_not_write(pusher, kind, group.as_deref())));
    }
    // Every new change's member may write the record as it is after them (by the change's
    // time: a member moved to another group lands what it made in its former group before).
    for c in new_changes {
        let actor = c.actor_id().to_hex_string();
        let Some(a) = facts.author(&actor)? else {
            continue; // checked before: unreachable
        };
        if !a.account.may_write_record_at(
            kind,
            group.as_deref(),
            also.as_deref(),
            sanjin_core::doc::change_at_ms(c),
        ) {
            return Ok(Err(refuse(
                Forbidden,
                format!(
                    "change {} by {} ({}) writes {}",
                    short(&c.hash()),
                    a.account.member(),
                    a.account.role(),
                    where_(kind, group.as_deref())
                ),
            )));
        }
    }
    // New workflow events: review steps only by the group's leader or staff, and each event
    // must name the member whose device made it.
    for ev in &view.events {
        let Some(c) = change_of(new_changes, &ev.id) else {
            continue;
        };
        let actor = c.actor_id().to_hex_string();
        let Some(a) = facts.author(&actor)? else {
            continue; // checked above: unreachable for new changes
        };
        let account = a.account;
        // A step's time is the member's claim, but not an absurd one: not before 2000, not
        // more than a day after the server received it (issue 10).
        if ev.at_ms < EARLIEST_EVENT_MS || ev.at_ms > now_ms + EVENT_CLOCK_SKEW_MS {
            return Ok(Err(Refused(
                InvalidField,
                "status".into(),
                format!(
                    "a {} step dated {} ms since 1970 is not a plausible time",
                    ev.event.code(),
                    ev.at_ms
                ),
            )));
        }
        if ev.member != account.member() {
            return Ok(Err(refuse(
                Role,
                format!(
                    "a {} step names member {}, but was made on a device of {}",
                    ev.event.code(),
                    ev.member,
                    account.member()
                ),
            )));
        }
        if sanjin_core::rules::is_review_step(ev.event)
            && !facts.may_review(&account, group.as_deref(), also.as_deref())?
        {
            return Ok(Err(refuse(
                Role,
                format!(
                    "{} ({}) may not {} {}: only the group's leader or staff may (and for a legal appeal, the legal advisory group's leader)",
                    account.member(),
                    account.role(),
                    ev.event.code(),
                    where_(kind, group.as_deref())
                ),
            )));
        }
    }
    let heads = rec.heads();
    let after_scope = scope_of(kind, group.as_deref());
    // A record whose second reader changes (an opinion that became a legal appeal) is logged
    // whole too: the new reader has none of it.
    let moved = before.is_some_and(|b| b.scope != after_scope || b.also != also);
    Ok(Ok((
        rec,
        Landing {
            after,
            heads,
            log_whole: !exists || moved,
            also,
        },
    )))
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

/// What became of one pushed document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Landed {
    /// The server holds the changes (`changed`: some were new and were written).
    Accepted { changed: bool },
    /// Refused. Changes of the push that do not depend on a refused one may still have landed.
    Refused(Refused),
    /// The server could not check it (its own copy is damaged): no ack, no refusal; the device
    /// keeps it queued.
    Skipped(String),
}

/// An answer being assembled: one entry per push, in order.
pub fn answer_push(resp: &mut SyncResponse, i: usize, doc_id: &str, landed: &Landed) {
    match landed {
        Landed::Accepted { .. } => resp.acks.push(i as u32),
        Landed::Refused(Refused(code, field, reason)) => resp.refused.push(Refusal {
            doc_id: doc_id.to_string(),
            code: *code,
            field: field.clone(),
            reason: reason.clone(),
        }),
        Landed::Skipped(_) => {}
    }
}

/// Where the pull of an exchange starts, or that the device must resync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pull {
    /// Read the log after `seq`, at most `budget` bytes.
    From { seq: u64, budget: u32 },
    /// The cursor is not valid here: answer `resync` with the server's current cursor.
    Resync,
}

/// The pull plan: `seq` is what the device's cursor stands for on this log (`None`: not
/// recognised), `max_seq` the log's end. A device that never synced (zero epoch, cursor 0) is
/// welcome; a budget of 0 means the server's default, others are capped.
#[allow(clippy::too_many_arguments)]
pub fn plan_pull(
    req: &SyncRequest,
    epoch: [u8; 16],
    seq: Option<u64>,
    max_seq: u64,
    default_budget: u32,
    max_budget: u32,
) -> Pull {
    let epoch_ok = req.epoch == epoch || (req.epoch == [0; 16] && req.cursor == 0);
    match seq {
        Some(seq) if epoch_ok && seq <= max_seq => Pull::From {
            seq,
            budget: match req.max_response_bytes {
                0 => default_budget,
                n => n.min(max_budget),
            },
        },
        _ => Pull::Resync,
    }
}

/// Whether an answer is kept for retries of the same request id: a keyed request that pushed
/// something (a pull alone is idempotent by construction).
pub fn remember(req: &SyncRequest) -> bool {
    req.request_id != [0; 16] && (!req.pushes.is_empty() || !req.am_sync.is_empty())
}
