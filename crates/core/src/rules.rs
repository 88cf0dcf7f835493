//! Who may write what, judged from the operations of new changes (issue 10): one pure function
//! that the server runs on every push and a device runs on every change arriving by merge.
//!
//! The labels a change carries (its message's action, the `t` of an event) say what the author
//! claims to do; the operations say what the change does. These rules read the operations:
//!
//! - The workflow event list `ev` is append-only: a change may insert new event maps and write
//!   inside the event maps it creates, nothing else (no op on an existing event, no deletion).
//! - The immutable root keys (`schema`, `kind`, `id`, `by`, `dev`, `at`, and the containers `f`
//!   and `ev`) are written once, when the record is created, and never again.
//! - At creation `by`/`dev`, like `by`/`dev` of every new event, are the signer's member and
//!   device.
//! - A put (or delete) on a single-value field (`Scalar`, `Json`) or on `wf` that overwrites more
//!   than one concurrent, *different* value settles a conflict: only a reviewer (the group's
//!   leader, or staff) may do that, whatever the message says. Sets, keyed sets, logs and texts
//!   merge without conflicts and are not affected.
//! - A log (`Log` field) is append-only too.
//! - Review steps (return, approve, resolve, accept, forward, handle, feedback, and undoing a
//!   step, issue 13) only by reviewers.
//! - The change message (`{"m": member, "d": device, …}`) names the signer.
//!
//! Who signed a change is the caller's business (a certificate on the server, the message and the
//! device's own actor on a phone): it comes in as a lookup, so this module stays sans-IO.

use std::collections::{HashMap, HashSet};

use automerge::legacy::{self, OpType};
use automerge::{
    ActorId, Automerge, Change, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue,
    Value as AmValue,
};

use crate::domain::RecordKind;
use crate::protocol::RefusalCode;
use crate::schema::{self, FieldKind, FieldSpec};
use crate::workflow::EventType;

/// Root keys written once, when the record is created.
pub const IMMUTABLE_ROOT_KEYS: &[&str] = &["schema", "kind", "id", "by", "dev", "at"];
/// Root keys holding the record's containers, also written only at creation.
const CONTAINER_ROOT_KEYS: &[&str] = &["f", "ev"];

/// Who made a change, as the caller established it (certificate, or message and actor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub member: String,
    pub device: String,
    /// The group's leader, or staff, for this record: may settle conflicts and take review
    /// steps.
    pub reviewer: bool,
}

/// One rule a change breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub change: ChangeHash,
    pub code: RefusalCode,
    /// The field concerned (a schema field name, `status` for the workflow state), if any.
    pub field: Option<String>,
    /// The record's kind, so that [`Violation::zh`] can name the field by its label.
    pub kind: Option<RecordKind>,
    /// English, for logs and operators.
    pub reason: String,
    /// The same in Simplified Chinese, for members.
    pub reason_zh: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = self.change.to_string();
        write!(f, "change {}: {}", &h[..12.min(h.len())], self.reason)
    }
}

impl Violation {
    /// What a member reads: the field by its label, what is wrong, and what to do.
    pub fn zh(&self) -> String {
        let label =
            self.field
                .as_deref()
                .map(|f| match self.kind.and_then(|k| schema::field(k, f)) {
                    Some(spec) => format!("{}（{}）", spec.zh, spec.name),
                    None if f == "status" => "状态".to_string(),
                    None => f.to_string(),
                });
        match label {
            Some(l) => format!("{l}：{}。{}", self.reason_zh, self.code.zh()),
            None => format!("{}。{}", self.reason_zh, self.code.zh()),
        }
    }
}

impl Violation {
    /// The violation as the error a device shows when it refuses its member's own edit.
    pub fn into_validation(self) -> crate::ValidationError {
        crate::ValidationError::new(
            self.field.clone().unwrap_or_else(|| "record".into()),
            crate::Reason::Refused {
                code: self.code,
                reason: self.reason,
                zh: self.reason_zh,
            },
        )
    }
}

/// Workflow steps only a reviewer (the group's leader, or staff) may take.
pub fn is_review_step(event: EventType) -> bool {
    matches!(
        event,
        EventType::Return
            | EventType::Approve
            | EventType::Resolve
            | EventType::Accept
            | EventType::Forward
            | EventType::Handle
            | EventType::Feedback
            | EventType::Undo
    )
}

// ------------------------------------------------------------ legal appeals (issue 13)

/// Whether a record is a legal appeal (法律诉求): an opinion of kind `legal_appeal`.
/// `opinion_kind` is the opinion kind's code (an index row's `type_code`).
pub fn is_legal_appeal(kind: RecordKind, opinion_kind: Option<&str>) -> bool {
    kind == RecordKind::Opinion
        && opinion_kind == Some(crate::domain::OpinionKind::LegalAppeal.code())
}

/// The legal advisory group of a directory: the group whose record carries `legal_advisory`
/// (the first by id if several do; tombstoned groups are the caller's to leave out). `None`
/// when no group does: legal appeals then stay with the group that recorded them.
pub fn legal_group<'a>(
    groups: impl IntoIterator<Item = (&'a str, &'a crate::domain::Group)>,
) -> Option<&'a str> {
    groups
        .into_iter()
        .filter(|(_, g)| g.legal_advisory)
        .map(|(id, _)| id)
        .min()
}

/// The group that reads a record besides its own (issue 13): for a legal appeal recorded by
/// another group, the legal advisory group (`legal_group`), whose members read it and whose
/// leader handles it. `None` for every other record.
///
/// The rule, the same on the server (reads, the change log's scope, pushes) and on devices
/// (relayed bundles): a legal appeal, whatever group recorded it, is also read by the members of
/// the legal advisory group, and its handling steps (accept, return, forward, handle, feedback,
/// undo) may be taken by that group's leader as by the recording group's leader and staff.
pub fn also_read_by<'a>(
    kind: RecordKind,
    group: Option<&str>,
    opinion_kind: Option<&str>,
    legal_group: Option<&'a str>,
) -> Option<&'a str> {
    let legal = legal_group?;
    (is_legal_appeal(kind, opinion_kind) && group != Some(legal)).then_some(legal)
}

/// Whether the leader of group `leads` reviews (takes review steps on, settles conflicts of) a
/// record of `group`: its own group's records, and legal appeals when `leads` is the legal
/// advisory group ([`also_read_by`]).
pub fn leader_reviews(
    leads: &str,
    kind: RecordKind,
    group: Option<&str>,
    opinion_kind: Option<&str>,
    legal_group: Option<&str>,
) -> bool {
    group == Some(leads) || also_read_by(kind, group, opinion_kind, legal_group) == Some(leads)
}

/// The member and device a change's message names, if it is a sanjin message.
pub fn message_author(change: &Change) -> Option<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Msg {
        m: String,
        d: String,
    }
    let m: Msg = serde_json::from_str(change.message()?).ok()?;
    Some((m.m, m.d))
}

/// Where an object sits in the record's layout.
#[derive(Debug, Clone, Copy)]
enum Loc {
    Root,
    /// The map `f` of fields.
    Fields,
    /// The container (text, set map, log list) of a field.
    Field(&'static FieldSpec),
    /// The event list `ev`.
    Events,
    /// One event map inside `ev`.
    Event,
    /// Anywhere else: not part of a sanjin record.
    Other,
}

type ObjKey = (u64, ActorId);

/// Where an object was made: its parent object and the key it was made at.
type Made = (legacy::ObjectId, legacy::Key);

struct Judge<'a> {
    doc: &'a Automerge,
    kind: Option<RecordKind>,
    /// The record's objects as the document holds them now, with their ids (for reads).
    known: HashMap<ObjKey, (Loc, ObjId)>,
    /// Objects made by the changes being judged.
    made: HashMap<ObjKey, Made>,
    /// Objects made anywhere in the document's history, read only when an op targets an object
    /// neither visible now nor made by the changes judged (e.g. a deleted event).
    history: Option<HashMap<ObjKey, Made>>,
    /// Locations found so far.
    cache: HashMap<ObjKey, Loc>,
}

fn obj_key(id: &ObjId) -> Option<ObjKey> {
    match id {
        ObjId::Id(ctr, actor, _) => Some((*ctr, actor.clone())),
        ObjId::Root => None,
    }
}

fn makes(change: &legacy::Change) -> impl Iterator<Item = (ObjKey, Made)> + '_ {
    let start = change.start_op.get();
    change
        .operations
        .iter()
        .enumerate()
        .filter(|(_, op)| matches!(op.action, OpType::Make(_)))
        .map(move |(i, op)| {
            (
                (start + i as u64, change.actor_id.clone()),
                (op.obj.clone(), op.key.clone()),
            )
        })
}

impl<'a> Judge<'a> {
    /// The record's objects from the document's current state. (Not `ReadDoc::parents`: in
    /// automerge 0.12 it panics on an object inside a deleted list element.)
    fn new(doc: &'a Automerge, kind: Option<RecordKind>, expanded: &[legacy::Change]) -> Self {
        let mut known = HashMap::new();
        let objects = |obj: &ObjId, key: &str| -> Vec<ObjId> {
            doc.get_all(obj, key)
                .unwrap_or_default()
                .into_iter()
                .filter(|(v, _)| matches!(v, AmValue::Object(_)))
                .map(|(_, id)| id)
                .collect()
        };
        for f in objects(&ROOT, "f") {
            if let Some(kind) = kind {
                for spec in schema::fields(kind) {
                    for c in objects(&f, spec.name) {
                        if let Some(k) = obj_key(&c) {
                            known.insert(k, (Loc::Field(spec), c));
                        }
                    }
                }
            }
            if let Some(k) = obj_key(&f) {
                known.insert(k, (Loc::Fields, f));
            }
        }
        for ev in objects(&ROOT, "ev") {
            for item in doc.list_range(&ev, ..) {
                if let automerge::ValueRef::Object(_) = item.value {
                    let id = item.id();
                    if let Some(k) = obj_key(&id) {
                        known.insert(k, (Loc::Event, id));
                    }
                }
            }
            if let Some(k) = obj_key(&ev) {
                known.insert(k, (Loc::Events, ev));
            }
        }
        let made = expanded.iter().flat_map(makes).collect();
        Judge {
            doc,
            kind,
            known,
            made,
            history: None,
            cache: HashMap::new(),
        }
    }

    /// Where `obj` sits, and its id if the document shows it now (else `ROOT`, only used for
    /// reads that then find nothing relevant).
    fn locate(&mut self, obj: &legacy::ObjectId) -> (Loc, ObjId) {
        let legacy::ObjectId::Id(id) = obj else {
            return (Loc::Root, ROOT);
        };
        let key = (id.counter(), id.actor().clone());
        let loc = self.loc_of(&key, 0);
        let exid = self.known.get(&key).map(|(_, id)| id.clone());
        (loc, exid.unwrap_or(ROOT))
    }

    fn loc_of(&mut self, key: &ObjKey, depth: usize) -> Loc {
        if let Some((loc, _)) = self.known.get(key) {
            return *loc;
        }
        if let Some(loc) = self.cache.get(key) {
            return *loc;
        }
        if depth > 8 {
            return Loc::Other;
        }
        let made = match self.made.get(key) {
            Some(m) => Some(m.clone()),
            None => {
                let doc = self.doc;
                self.history
                    .get_or_insert_with(|| {
                        doc.get_changes(&[])
                            .iter()
                            .flat_map(|c| makes(&c.decode()).collect::<Vec<_>>())
                            .collect()
                    })
                    .get(key)
                    .cloned()
            }
        };
        let loc = match made {
            None => Loc::Other,
            Some((parent, at)) => {
                let parent_loc = match &parent {
                    legacy::ObjectId::Root => Loc::Root,
                    legacy::ObjectId::Id(p) => {
                        self.loc_of(&(p.counter(), p.actor().clone()), depth + 1)
                    }
                };
                self.child(parent_loc, &at)
            }
        };
        self.cache.insert(key.clone(), loc);
        loc
    }

    fn child(&self, parent: Loc, at: &legacy::Key) -> Loc {
        match (parent, at) {
            (Loc::Root, legacy::Key::Map(k)) if k == "f" => Loc::Fields,
            (Loc::Root, legacy::Key::Map(k)) if k == "ev" => Loc::Events,
            (Loc::Fields, legacy::Key::Map(k)) => {
                match self.kind.and_then(|kind| schema::field(kind, k)) {
                    Some(spec) if spec.name == k => Loc::Field(spec),
                    _ => Loc::Other,
                }
            }
            (Loc::Events, legacy::Key::Seq(_)) => Loc::Event,
            _ => Loc::Other,
        }
    }
}

fn key_str(key: &legacy::Key) -> Option<&str> {
    match key {
        legacy::Key::Map(s) => Some(s.as_str()),
        legacy::Key::Seq(_) => None,
    }
}

/// Whether the op (a put of `new_value`, or a delete, with these preds, made on top of `deps`)
/// settles a conflict: the field held several different concurrent values and the op makes one
/// of them disappear. Automerge writes a put of one of the conflicting values as a delete of the
/// others, so both are judged by their effect.
fn settles_conflict(
    doc: &Automerge,
    obj: &ObjId,
    key: &str,
    new_value: Option<&ScalarValue>,
    pred: &[legacy::OpId],
    deps: &[ChangeHash],
) -> bool {
    if pred.is_empty() {
        return false;
    }
    let Ok(values) = doc.get_all_at(obj, key, deps) else {
        return false;
    };
    let mut distinct: Vec<&AmValue<'_>> = Vec::new();
    for (v, _) in &values {
        if !distinct.contains(&v) {
            distinct.push(v);
        }
    }
    if distinct.len() < 2 {
        return false;
    }
    let removed = |id: &ObjId| match id {
        ObjId::Id(ctr, actor, _) => pred
            .iter()
            .any(|p| p.counter() == *ctr && p.actor() == actor),
        ObjId::Root => false,
    };
    let new_value = new_value.map(|v| AmValue::Scalar(std::borrow::Cow::Borrowed(v)));
    let remains = |v: &AmValue<'_>| {
        new_value.as_ref() == Some(v) || values.iter().any(|(w, id)| w == v && !removed(id))
    };
    values.iter().any(|(v, id)| removed(id) && !remains(v))
}

fn op_value(action: &OpType) -> Option<&ScalarValue> {
    match action {
        OpType::Put(v) => Some(v),
        _ => None,
    }
}

fn scalar_str(v: &ScalarValue) -> Option<&str> {
    match v {
        ScalarValue::Str(s) => Some(s.as_str()),
        _ => None,
    }
}

/// Judges `new` changes, already applied to `doc`, from their operations. `before_heads`: the
/// heads the judging side held the document at before (empty: the record is new to it).
/// `signer` tells who made a change (`None`: no known device; the change is refused as
/// `ForeignActor`). Returns every rule broken, in the order of `new`; empty: all may land.
pub fn check_changes(
    doc: &Automerge,
    before_heads: &[ChangeHash],
    new: &[Change],
    signer: &dyn Fn(&Change) -> Option<Signer>,
) -> Vec<Violation> {
    let kind = match doc.get(ROOT, "kind") {
        Ok(Some((AmValue::Scalar(s), _))) => s.as_str().and_then(RecordKind::parse),
        _ => None,
    };
    let mut out = Vec::new();
    let expanded: Vec<legacy::Change> = new.iter().map(Change::decode).collect();
    let mut judge = Judge::new(doc, kind, &expanded);
    let is_new_record = before_heads.is_empty();
    for (change, expanded) in new.iter().zip(&expanded) {
        let hash = change.hash();
        let mut seen: HashSet<(RefusalCode, Option<String>, String)> = HashSet::new();
        let mut push = |code: RefusalCode, field: Option<&str>, reason: String, zh: String| {
            if seen.insert((code, field.map(str::to_string), reason.clone())) {
                out.push(Violation {
                    change: hash,
                    code,
                    field: field.map(str::to_string),
                    kind,
                    reason,
                    reason_zh: zh,
                });
            }
        };
        let Some(signer) = signer(change) else {
            push(
                RefusalCode::ForeignActor,
                None,
                format!(
                    "made by actor {}, which belongs to no known device",
                    change.actor_id().to_hex_string()
                ),
                "修改来自一台未登记的设备".into(),
            );
            continue;
        };
        if kind.is_none() {
            push(
                RefusalCode::Malformed,
                None,
                "the document is not a sanjin record (no known kind)".into(),
                "记录缺少有效的类别".into(),
            );
            continue;
        }
        match message_author(change) {
            None => push(
                RefusalCode::Impersonation,
                None,
                "the change message does not name its member and device".into(),
                "修改没有注明委员和设备".into(),
            ),
            Some((m, d)) if m != signer.member || d != signer.device => push(
                RefusalCode::Impersonation,
                None,
                format!(
                    "the message names member {m} on device {d}, but the change was made by {} on {}",
                    signer.member, signer.device
                ),
                format!(
                    "修改注明的是委员 {m}（设备 {d}），实际做出修改的是委员 {}（设备 {}）",
                    signer.member, signer.device
                ),
            ),
            Some(_) => {}
        }
        let start = change.start_op().get();
        let actor = change.actor_id();
        let here = |id: &legacy::OpId| {
            id.actor() == actor
                && id.counter() >= start
                && id.counter() < start + change.len() as u64
        };
        // New events of this change: their object and what they say.
        let mut events: Vec<(ObjKey, HashMap<String, ScalarValue>)> = Vec::new();
        let mut wf_puts: Vec<String> = Vec::new();
        for (i, op) in expanded.operations.iter().enumerate() {
            let op_id = (start + i as u64, actor.clone());
            let (loc, obj) = judge.locate(&op.obj);
            let created_here = match &op.obj {
                legacy::ObjectId::Root => false,
                legacy::ObjectId::Id(id) => here(id),
            };
            let pred: Vec<legacy::OpId> = op.pred.iter().cloned().collect();
            let is_delete = matches!(op.action, OpType::Delete);
            match loc {
                Loc::Root => {
                    let Some(k) = key_str(&op.key) else { continue };
                    if IMMUTABLE_ROOT_KEYS.contains(&k) || CONTAINER_ROOT_KEYS.contains(&k) {
                        let concurrent = doc.get_all(ROOT, k).map(|v| v.len()).unwrap_or(0) > 1;
                        if !is_new_record || !pred.is_empty() || is_delete || concurrent {
                            push(
                                RefusalCode::HistoryRewrite,
                                None,
                                format!(
                                    "writes the root key `{k}`, which is set once when the record is created"
                                ),
                                format!("改写了记录的基本信息“{k}”，它在记录创建后不可更改"),
                            );
                            continue;
                        }
                        if let OpType::Put(v) = &op.action {
                            let want = match k {
                                "by" => Some(&signer.member),
                                "dev" => Some(&signer.device),
                                _ => None,
                            };
                            if let Some(want) = want
                                && scalar_str(v) != Some(want.as_str())
                            {
                                push(
                                    RefusalCode::Impersonation,
                                    None,
                                    format!(
                                        "creates the record with `{k}` = {v}, but was made by {} on {}",
                                        signer.member, signer.device
                                    ),
                                    format!(
                                        "以他人名义创建记录（{k} 为 {v}，实际为委员 {}、设备 {}）",
                                        signer.member, signer.device
                                    ),
                                );
                            }
                        }
                    } else if k == "wf" {
                        match &op.action {
                            OpType::Put(v) => {
                                wf_puts.push(scalar_str(v).unwrap_or_default().to_string());
                                if !signer.reviewer
                                    && settles_conflict(
                                        doc,
                                        &ROOT,
                                        k,
                                        op_value(&op.action),
                                        &pred,
                                        change.deps(),
                                    )
                                {
                                    push(
                                        RefusalCode::ConflictResolution,
                                        Some("status"),
                                        "settles a contested workflow state; only the group's leader or staff may".into(),
                                        "裁定了有争议的流转状态，这只能由组长或机关工作人员进行".into(),
                                    );
                                }
                            }
                            _ => push(
                                RefusalCode::HistoryRewrite,
                                Some("status"),
                                "deletes or replaces the workflow state pointer `wf`".into(),
                                "删除或改写了流转状态".into(),
                            ),
                        }
                    }
                    // `th:<hash>` and unknown root keys: values are checked by
                    // `validate::check_record`.
                }
                Loc::Fields => {
                    let Some(k) = key_str(&op.key) else { continue };
                    let Some(spec) = kind.and_then(|kind| schema::field(kind, k)) else {
                        continue; // an unknown field: `validate::check_record` names it
                    };
                    match spec.kind {
                        FieldKind::Scalar | FieldKind::Json => {
                            if matches!(op.action, OpType::Put(_) | OpType::Delete)
                                && !signer.reviewer
                                && settles_conflict(
                                    doc,
                                    &obj,
                                    k,
                                    op_value(&op.action),
                                    &pred,
                                    change.deps(),
                                )
                            {
                                push(
                                    RefusalCode::ConflictResolution,
                                    Some(spec.name),
                                    format!(
                                        "overwrites several different concurrent values of `{}`: settling a conflict is for the group's leader or staff",
                                        spec.name
                                    ),
                                    "覆盖了多个并存的不同取值（即裁定冲突），这只能由组长或机关工作人员进行".into(),
                                );
                            }
                        }
                        FieldKind::Text | FieldKind::Set | FieldKind::KeyedSet | FieldKind::Log => {
                            let concurrent = doc.get_all(&obj, k).map(|v| v.len()).unwrap_or(0) > 1;
                            if !created_here || !pred.is_empty() || is_delete || concurrent {
                                push(
                                    RefusalCode::HistoryRewrite,
                                    Some(spec.name),
                                    format!(
                                        "replaces the container of `{}` (and what it held)",
                                        spec.name
                                    ),
                                    "整体替换或删除了该字段的内容".into(),
                                );
                            }
                        }
                    }
                }
                Loc::Field(spec) => match (spec.kind, &op.action) {
                    (_, OpType::Make(_)) => push(
                        RefusalCode::Malformed,
                        Some(spec.name),
                        format!("creates an object inside `{}`", spec.name),
                        "在字段中嵌入了不应有的对象".into(),
                    ),
                    (FieldKind::Log, OpType::Put(_)) if op.insert && pred.is_empty() => {}
                    (FieldKind::Log, _) => push(
                        RefusalCode::HistoryRewrite,
                        Some(spec.name),
                        format!(
                            "changes or removes an entry of the append-only log `{}`",
                            spec.name
                        ),
                        "修改或删除了已有的记录条目，该字段只能追加".into(),
                    ),
                    _ => {}
                },
                Loc::Events => match (&op.action, op.insert) {
                    (OpType::Make(ObjType::Map), true) => {
                        events.push((op_id, HashMap::new()));
                    }
                    (_, true) => push(
                        RefusalCode::Malformed,
                        Some("status"),
                        "inserts a workflow event that is not a map".into(),
                        "流转记录的格式不对".into(),
                    ),
                    (_, false) => push(
                        RefusalCode::HistoryRewrite,
                        Some("status"),
                        "deletes or replaces an existing workflow event".into(),
                        "删除或改写了已有的流转记录".into(),
                    ),
                },
                Loc::Event => {
                    let legacy::ObjectId::Id(id) = &op.obj else {
                        continue;
                    };
                    if !created_here {
                        push(
                            RefusalCode::HistoryRewrite,
                            Some("status"),
                            "changes an existing workflow event".into(),
                            "改写了已有的流转记录".into(),
                        );
                        continue;
                    }
                    let key = (id.counter(), id.actor().clone());
                    match (key_str(&op.key), &op.action) {
                        (Some(k), OpType::Put(v)) => {
                            if let Some((_, fields)) = events.iter_mut().find(|(e, _)| *e == key) {
                                fields.insert(k.to_string(), v.clone());
                            }
                        }
                        (_, OpType::Make(_)) => push(
                            RefusalCode::Malformed,
                            Some("status"),
                            "creates an object inside a workflow event".into(),
                            "流转记录的格式不对".into(),
                        ),
                        _ => {
                            if let Some((_, fields)) = events.iter_mut().find(|(e, _)| *e == key)
                                && let Some(k) = key_str(&op.key)
                            {
                                fields.remove(k);
                            }
                        }
                    }
                }
                Loc::Other => push(
                    RefusalCode::Malformed,
                    None,
                    "writes an object outside the layout of a sanjin record".into(),
                    "修改了记录结构之外的数据".into(),
                ),
            }
        }
        // `wf` names the workflow event the same change makes: pointing it anywhere else (an
        // old approval, say) would rewrite the shown state without a step.
        for target in &wf_puts {
            let made_here = events
                .iter()
                .any(|((ctr, a), _)| *target == format!("{ctr}@{}", a.to_hex_string()));
            if !made_here {
                push(
                    RefusalCode::HistoryRewrite,
                    Some("status"),
                    "points the workflow state `wf` at an event this change does not make".into(),
                    "把流转状态指向了不是本次修改产生的流转记录".into(),
                );
            }
        }
        for (_, fields) in &events {
            let text = |k: &str| fields.get(k).and_then(scalar_str).map(str::to_string);
            let (by, dev) = (text("by"), text("dev"));
            if by.as_deref() != Some(signer.member.as_str())
                || dev.as_deref() != Some(signer.device.as_str())
            {
                push(
                    RefusalCode::Impersonation,
                    Some("status"),
                    format!(
                        "a new workflow event names member {} on device {}, but was made by {} on {}",
                        by.as_deref().unwrap_or("(none)"),
                        dev.as_deref().unwrap_or("(none)"),
                        signer.member,
                        signer.device
                    ),
                    format!(
                        "新的流转记录注明的是委员 {}（设备 {}），实际做出修改的是委员 {}（设备 {}）",
                        by.as_deref().unwrap_or("（无）"),
                        dev.as_deref().unwrap_or("（无）"),
                        signer.member,
                        signer.device
                    ),
                );
            }
            match text("t").as_deref().and_then(EventType::parse) {
                None => push(
                    RefusalCode::Malformed,
                    Some("status"),
                    "a new workflow event has no known step `t`".into(),
                    "新的流转记录没有有效的步骤".into(),
                ),
                Some(t) if is_review_step(t) && !signer.reviewer => push(
                    RefusalCode::Role,
                    Some("status"),
                    format!(
                        "takes the review step `{}`, which only the group's leader or staff may take",
                        t.code()
                    ),
                    format!("进行了“{}”，这一步只能由组长或机关工作人员进行", t.zh()),
                ),
                Some(_) => {}
            }
        }
    }
    out
}

/// The changes of `new` that depend, directly or through other changes of `new`, on a change in
/// `refused`: they cannot land without it (`depends_on_refused`). The refused ones themselves
/// are not included.
pub fn dependents(new: &[Change], refused: &HashSet<ChangeHash>) -> HashSet<ChangeHash> {
    let mut out: HashSet<ChangeHash> = HashSet::new();
    loop {
        let mut grew = false;
        for c in new {
            let h = c.hash();
            if refused.contains(&h) || out.contains(&h) {
                continue;
            }
            if c.deps()
                .iter()
                .any(|d| refused.contains(d) || out.contains(d))
            {
                out.insert(h);
                grew = true;
            }
        }
        if !grew {
            return out;
        }
    }
}

/// The most telling violation of a list, for one message to a member: conflicts and roles first
/// (what the member can act on), then impersonation, history, and the rest.
pub fn most_telling(violations: &[Violation]) -> Option<&Violation> {
    let rank = |c: RefusalCode| match c {
        RefusalCode::ConflictResolution => 0,
        RefusalCode::Role => 1,
        RefusalCode::Impersonation => 2,
        RefusalCode::HistoryRewrite => 3,
        _ => 4,
    };
    violations.iter().min_by_key(|v| rank(v.code))
}

/// The refusal code for a record that fails `validate::check_record` / `check_sizes`.
pub fn refusal_code(e: &crate::ValidationError) -> RefusalCode {
    match e.reason {
        crate::Reason::TooLarge { .. } => RefusalCode::TooLarge,
        crate::Reason::TooMany { what, .. } if what.contains("changes") => RefusalCode::TooLarge,
        crate::Reason::Malformed { .. } if e.field == "record" => RefusalCode::Malformed,
        _ => RefusalCode::InvalidField,
    }
}

#[cfg(test)]
mod issue13_legal_appeals {
    use super::*;
    use crate::domain::Group;

    fn group(legal: bool) -> Group {
        Group {
            name: "组".into(),
            chapter: "chapter-city".into(),
            committee: None,
            leader: "member-0001".into(),
            contact_points: vec![],
            legal_advisory: legal,
        }
    }

    #[test]
    fn issue13_the_legal_group_is_the_flagged_one() {
        let (plain, legal) = (group(false), group(true));
        assert_eq!(
            legal_group([("group-01", &plain), ("group-06", &legal)]),
            Some("group-06")
        );
        assert_eq!(legal_group([("group-01", &plain)]), None);
    }

    #[test]
    fn issue13_only_legal_appeals_of_other_groups_go_to_the_legal_group() {
        let o = RecordKind::Opinion;
        let legal = Some("group-06");
        let appeal = Some("legal_appeal");
        assert_eq!(also_read_by(o, Some("group-01"), appeal, legal), legal);
        assert_eq!(
            also_read_by(o, Some("group-01"), Some("opinion"), legal),
            None
        );
        assert_eq!(
            also_read_by(o, Some("group-06"), appeal, legal),
            None,
            "its own"
        );
        assert_eq!(
            also_read_by(o, Some("group-01"), appeal, None),
            None,
            "no such group"
        );
        assert_eq!(
            also_read_by(RecordKind::Visit, Some("group-01"), appeal, legal),
            None
        );
        assert!(leader_reviews(
            "group-06",
            o,
            Some("group-01"),
            appeal,
            legal
        ));
        assert!(leader_reviews(
            "group-01",
            o,
            Some("group-01"),
            appeal,
            legal
        ));
        assert!(!leader_reviews(
            "group-02",
            o,
            Some("group-01"),
            appeal,
            legal
        ));
        assert!(!leader_reviews(
            "group-06",
            o,
            Some("group-01"),
            Some("opinion"),
            legal
        ));
    }
}
