//! One record as one automerge document.
//!
//! Layout of every document:
//!
//! ```text
//! ROOT { schema: 1, kind: "visit", id: "…", by: member, dev: device, at: ms,
//!        f:  { <field>: scalar | Text | Map(set) | List(log) },   // see schema.rs
//!        ev: [ { t, by, dev, at, note?, to?, unit?, due?, undo? } … ], // append-only events
//!        wf: "<event object id>" }                                 // last workflow event
//! ```
//!
//! Every change carries a message `{"m":member,"d":device,"a":action,"f":[fields],"ms":0–999}`
//! and the caller's time (automerge `time` in whole unix seconds, the milliseconds of that second
//! in `ms`), so the change list *is* the trace (留痕), readable by any automerge client. A scalar
//! written concurrently on two devices is an automerge conflict; `conflicts()` shows every value
//! with its author and time.
//! Two concurrent workflow events both land in `ev`, and both write `wf`, so a contested state
//! shows up as a conflict on `status` too.

use automerge::{
    ActorId, AutoCommit, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value as AmValue,
    transaction::{CommitOptions, Transactable},
};
use serde::Serialize;
use serde_json::{Map, Value};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::domain::{PhotoRef, RecordData, RecordKind};
use crate::error::{Error, Reason, ValidationError};
use crate::schema::{self, FieldKind, FieldSpec, SCHEMA_VERSION};
use crate::validate;
use crate::workflow::{self, Event, EventType, State, StepDetails};

/// Root keys `th:<hash>` hold the thumbnails of attached photos (JPEG bytes).
pub const THUMBNAIL_PREFIX: &str = "th:";
/// The largest thumbnail a document accepts (`sanjin-media` makes them ≤ 25 KB).
pub const MAX_THUMBNAIL_BYTES: usize = 64 << 10;

pub use crate::time::Millis;

/// Who makes a change: a member on a device. The device's actor id signs its changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    member: String,
    device: String,
    actor: ActorId,
}

impl Author {
    /// `actor` is the device's automerge actor id (16 random bytes chosen when the device was set
    /// up, or assigned by the server when it enrolls).
    pub fn new(member: &str, device: &str, actor: &[u8]) -> Result<Author, Error> {
        if !validate::is_id(member) {
            return Err(Error::BadId(member.into()));
        }
        if !validate::is_id(device) {
            return Err(Error::BadId(device.into()));
        }
        Ok(Author {
            member: member.into(),
            device: device.into(),
            actor: ActorId::from(actor),
        })
    }

    pub fn member(&self) -> &str {
        &self.member
    }

    pub fn device(&self) -> &str {
        &self.device
    }

    pub fn actor_hex(&self) -> String {
        self.actor.to_hex_string()
    }
}

/// A change to one field.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// Replace a scalar, a structured value or a whole text (texts are diffed, so concurrent
    /// edits elsewhere in the text survive).
    Set { field: String, value: Value },
    /// Add an element to a set (for photos, the element is the photo object).
    Add { field: String, element: Value },
    /// Remove an element from a set, by value (or by hash, for photos).
    Remove { field: String, key: String },
    /// Append an entry to a log.
    Append { field: String, entry: Value },
}

impl Edit {
    pub fn field(&self) -> &str {
        match self {
            Edit::Set { field, .. }
            | Edit::Add { field, .. }
            | Edit::Remove { field, .. }
            | Edit::Append { field, .. } => field,
        }
    }
}

/// One value of a conflicted field, with who wrote it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConflictValue {
    pub value: Value,
    pub member: String,
    pub device: String,
    pub at_ms: Millis,
}

/// A field with more than one concurrent value, waiting for someone to resolve it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conflict {
    /// A field name, or `status` for a contested workflow state.
    pub field: String,
    /// The value shown until it is resolved (the same on every replica).
    pub shown: Value,
    pub values: Vec<ConflictValue>,
}

/// One change in a record's history (留痕).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub hash: String,
    pub member: String,
    pub device: String,
    pub at_ms: Millis,
    pub action: String,
    pub fields: Vec<String>,
}

/// The current state of a record, as read from its document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordView {
    pub id: String,
    pub kind: RecordKind,
    pub created_by: String,
    pub created_device: String,
    pub created_at_ms: Millis,
    pub status: State,
    pub deleted: bool,
    pub data: RecordData,
    pub conflicts: Vec<Conflict>,
    pub events: Vec<Event>,
}

/// A record document.
#[derive(Debug)]
pub struct RecordDoc {
    id: String,
    kind: RecordKind,
    doc: AutoCommit,
}

#[derive(Serialize, serde::Deserialize)]
struct Message {
    m: String,
    d: String,
    a: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    f: Vec<String>,
    /// The milliseconds of the change's second (0–999): the change's automerge `time` holds whole
    /// unix seconds, automerge's own unit, so its exact time is `time × 1000 + ms`. Only the part
    /// `time` cannot hold, so the two can never disagree. Absent in changes made before issue 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ms: Option<i64>,
}

/// Below this, a change's automerge `time` without `ms` in its message is read as seconds
/// (10^11 s is the year 5138; as milliseconds it would be 1973, before any sanjin record).
const LEGACY_SECONDS_BELOW: i64 = 100_000_000_000;

/// When a change was made, in milliseconds since the Unix epoch. sanjin writes whole unix
/// seconds in the change's automerge `time` (what every automerge client reads) and the
/// milliseconds within that second in its message (`"ms"`). Documents written before issue 10
/// have milliseconds in `time` and no `ms`; a change from another automerge client has seconds
/// and no `ms`. Both read right.
pub fn change_at_ms(change: &automerge::Change) -> Millis {
    let msg: Option<Message> = change.message().and_then(|m| serde_json::from_str(m).ok());
    at_ms_of(change, msg.as_ref())
}

fn at_ms_of(change: &automerge::Change, msg: Option<&Message>) -> Millis {
    let time = change.timestamp();
    match msg.and_then(|m| m.ms) {
        Some(ms) if (0..1000).contains(&ms) => time.saturating_mul(1000).saturating_add(ms),
        // sanjin's message, but an `ms` no sanjin writes: the whole second.
        Some(_) => time.saturating_mul(1000),
        None if time.unsigned_abs() < LEGACY_SECONDS_BELOW as u64 => time.saturating_mul(1000),
        None => time,
    }
}

/// The automerge `time` of a change made at `now` (whole unix seconds) and the milliseconds
/// within that second, which its message keeps.
fn split_time(now: Millis) -> (i64, i64) {
    (now.div_euclid(1000), now.rem_euclid(1000))
}

fn scalar_of(v: &Value) -> ScalarValue {
    match v {
        Value::Null => ScalarValue::Null,
        Value::Bool(b) => ScalarValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => ScalarValue::Int(i),
            None => ScalarValue::F64(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => ScalarValue::Str(s.as_str().into()),
        other => ScalarValue::Str(other.to_string().into()),
    }
}

pub(crate) fn json_of(s: &ScalarValue) -> Option<Value> {
    Some(match s {
        ScalarValue::Null => Value::Null,
        ScalarValue::Boolean(b) => Value::Bool(*b),
        ScalarValue::Int(i) => Value::from(*i),
        ScalarValue::Uint(u) => Value::from(*u),
        ScalarValue::F64(f) => Value::from(*f),
        ScalarValue::Str(s) => Value::String(s.to_string()),
        ScalarValue::Timestamp(t) => Value::from(*t),
        _ => return None,
    })
}

/// The key of a set element: the string itself, or a photo's hash.
fn set_key(spec: &FieldSpec, element: &Value) -> String {
    match spec.kind {
        FieldKind::KeyedSet => element
            .get("hash")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => element.as_str().unwrap_or_default().to_string(),
    }
}

/// The value stored under a set element's key. For plain sets it is the time of the add, so that
/// adding an element again is a new op and wins over a concurrent remove (add-wins).
fn encode_element(spec: &FieldSpec, element: &Value, now: Millis) -> ScalarValue {
    match spec.kind {
        FieldKind::Set => ScalarValue::Int(now),
        _ => ScalarValue::Str(element.to_string().into()),
    }
}

impl RecordDoc {
    /// Creates a record. `id` comes from the caller (a UUID for field records, a readable id for
    /// directory entries).
    pub fn create(
        id: &str,
        data: &RecordData,
        by: &Author,
        now: Millis,
    ) -> Result<RecordDoc, Error> {
        if !validate::is_id(id) {
            return Err(Error::BadId(id.into()));
        }
        let kind = data.kind();
        let fields = fields_json(data);
        validate::check_fields(kind, &fields)?;
        validate::record(data)?;
        let mut doc = AutoCommit::new().with_actor(by.actor.clone());
        doc.put(ROOT, "schema", SCHEMA_VERSION)?;
        doc.put(ROOT, "kind", kind.code())?;
        doc.put(ROOT, "id", id)?;
        doc.put(ROOT, "by", by.member.as_str())?;
        doc.put(ROOT, "dev", by.device.as_str())?;
        doc.put(ROOT, "at", now)?;
        let f = doc.put_object(ROOT, "f", ObjType::Map)?;
        for spec in schema::fields(kind) {
            let v = fields.get(spec.name).cloned().unwrap_or(Value::Null);
            // A false (or absent) flag is not written: flags were added to kinds after records
            // of them existed, whose documents must stay byte for byte what they were.
            if spec.ty == schema::ValueType::Bool && matches!(v, Value::Null | Value::Bool(false)) {
                continue;
            }
            write_new(&mut doc, &f, spec, &v, now)?;
        }
        doc.put_object(ROOT, "ev", ObjType::List)?;
        let mut rec = RecordDoc {
            id: id.into(),
            kind,
            doc,
        };
        rec.commit(by, now, "create", vec![]);
        Ok(rec)
    }

    /// Loads a saved document (a snapshot, optionally followed by incremental changes).
    pub fn load(bytes: &[u8]) -> Result<RecordDoc, Error> {
        let doc = AutoCommit::load(bytes).map_err(|e| Error::Corrupt {
            id: "?".into(),
            reason: e.to_string(),
        })?;
        Self::from_automerge(doc)
    }

    /// Loads a document kept as a snapshot plus incremental chunks.
    pub fn load_parts<'a>(
        snapshot: &[u8],
        chunks: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<RecordDoc, Error> {
        let mut doc = AutoCommit::load(snapshot).map_err(|e| Error::Corrupt {
            id: "?".into(),
            reason: e.to_string(),
        })?;
        for c in chunks {
            doc.load_incremental(c).map_err(|e| Error::Corrupt {
                id: "?".into(),
                reason: e.to_string(),
            })?;
        }
        Self::from_automerge(doc)
    }

    /// A record from an automerge document already in memory (checked as [`RecordDoc::load`]
    /// checks a loaded one).
    pub fn from_automerge(doc: AutoCommit) -> Result<RecordDoc, Error> {
        let corrupt = |reason: &str| Error::Corrupt {
            id: "?".into(),
            reason: reason.into(),
        };
        let id = match doc.get(ROOT, "id")? {
            Some((AmValue::Scalar(s), _)) => match s.as_ref() {
                ScalarValue::Str(s) => s.to_string(),
                _ => return Err(corrupt("id is not a string")),
            },
            _ => return Err(corrupt("no record id")),
        };
        let with_id = |reason: &str| Error::Corrupt {
            id: id.clone(),
            reason: reason.into(),
        };
        let schema_version = match doc.get(ROOT, "schema")? {
            Some((AmValue::Scalar(s), _)) => match s.as_ref() {
                ScalarValue::Int(i) => *i,
                _ => return Err(with_id("schema is not a number")),
            },
            _ => return Err(with_id("no schema version")),
        };
        if schema_version > SCHEMA_VERSION || schema_version < 1 {
            return Err(Error::UnknownSchema {
                id,
                found: schema_version,
                supported: SCHEMA_VERSION,
            });
        }
        let kind = match doc.get(ROOT, "kind")? {
            Some((AmValue::Scalar(s), _)) => s.as_str().and_then(RecordKind::parse),
            _ => None,
        }
        .ok_or_else(|| with_id("unknown record kind"))?;
        match (doc.get(ROOT, "f")?, doc.get(ROOT, "ev")?) {
            (
                Some((AmValue::Object(ObjType::Map), _)),
                Some((AmValue::Object(ObjType::List), _)),
            ) => {}
            _ => return Err(with_id("fields or events missing")),
        }
        Ok(RecordDoc { id, kind, doc })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn kind(&self) -> RecordKind {
        self.kind
    }

    /// The document's heads: what it contains, in hashes.
    pub fn heads(&mut self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// The compact snapshot.
    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save()
    }

    /// The automerge document underneath.
    pub fn into_automerge(self) -> AutoCommit {
        self.doc
    }

    /// The automerge document underneath, for reading (e.g. `rules::check_changes`).
    pub fn automerge(&mut self) -> &automerge::Automerge {
        self.doc.document()
    }

    /// The changes since `heads`, in the incremental format (`load_parts` reads them).
    pub fn save_after(&mut self, heads: &[ChangeHash]) -> Vec<u8> {
        self.doc.save_after(heads)
    }

    /// Applies changes made elsewhere (incremental bytes or a whole saved document).
    pub fn apply_changes(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.doc
            .load_incremental(bytes)
            .map_err(|e| Error::Corrupt {
                id: self.id.clone(),
                reason: e.to_string(),
            })?;
        Ok(())
    }

    /// Merges another replica of the same record into this one.
    pub fn merge(&mut self, other: &mut RecordDoc) -> Result<(), Error> {
        if other.id != self.id || other.kind != self.kind {
            return Err(Error::Mismatch {
                left: self.id.clone(),
                left_kind: self.kind.code().into(),
                right: other.id.clone(),
                right_kind: other.kind.code().into(),
            });
        }
        self.doc.merge(&mut other.doc)?;
        Ok(())
    }

    /// The next automerge sync-protocol message for a peer (`None`: nothing to send). Used by
    /// the fallback path of the sync protocol; keep one `state` per document per peer.
    pub fn generate_sync_message(
        &mut self,
        state: &mut automerge::sync::State,
    ) -> Option<automerge::sync::Message> {
        use automerge::sync::SyncDoc;
        self.doc.sync().generate_sync_message(state)
    }

    /// Applies an automerge sync-protocol message from a peer.
    pub fn receive_sync_message(
        &mut self,
        state: &mut automerge::sync::State,
        message: automerge::sync::Message,
    ) -> Result<(), Error> {
        use automerge::sync::SyncDoc;
        self.doc.sync().receive_sync_message(state, message)?;
        Ok(())
    }

    /// The changes of this document, in causal order (for servers that check each change's
    /// actor and message before accepting it).
    pub fn changes(&mut self) -> Vec<automerge::Change> {
        self.doc.get_changes(&[])
    }

    /// Whether the change with this hash is part of the document.
    pub fn has_change(&mut self, hash: &ChangeHash) -> bool {
        self.doc.get_change_by_hash(hash).is_some()
    }

    /// Makes `by`'s device the actor of the ops that follow. Must come before the first op of a
    /// change: switching actors closes any open transaction.
    fn act_as(&mut self, by: &Author) {
        if self.doc.get_actor() != &by.actor {
            self.doc.set_actor(by.actor.clone());
        }
    }

    fn commit(
        &mut self,
        by: &Author,
        now: Millis,
        action: &str,
        fields: Vec<String>,
    ) -> ChangeHash {
        debug_assert_eq!(
            self.doc.get_actor(),
            &by.actor,
            "act_as before the first op"
        );
        let (time, ms) = split_time(now);
        let msg = Message {
            m: by.member.clone(),
            d: by.device.clone(),
            a: action.into(),
            f: fields,
            ms: Some(ms),
        };
        let msg = serde_json::to_string(&msg).expect("message serializes");
        match self
            .doc
            .commit_with(CommitOptions::default().with_message(msg).with_time(time))
        {
            Some(h) => h,
            // Nothing changed (an edit that set a field to the value it had): record the step
            // anyway, so the trace shows it.
            None => self.doc.empty_change(
                CommitOptions::default()
                    .with_message(
                        serde_json::to_string(&Message {
                            m: by.member.clone(),
                            d: by.device.clone(),
                            a: action.into(),
                            f: vec![],
                            ms: Some(ms),
                        })
                        .expect("message serializes"),
                    )
                    .with_time(time),
            ),
        }
    }

    fn fields_obj(&self) -> Result<ObjId, Error> {
        match self.doc.get(ROOT, "f")? {
            Some((AmValue::Object(ObjType::Map), id)) => Ok(id),
            _ => Err(self.corrupt("fields missing")),
        }
    }

    fn events_obj(&self) -> Result<ObjId, Error> {
        match self.doc.get(ROOT, "ev")? {
            Some((AmValue::Object(ObjType::List), id)) => Ok(id),
            _ => Err(self.corrupt("events missing")),
        }
    }

    fn corrupt(&self, reason: &str) -> Error {
        Error::Corrupt {
            id: self.id.clone(),
            reason: reason.into(),
        }
    }

    fn root_str(&self, key: &str) -> String {
        match self.doc.get(ROOT, key) {
            Ok(Some((AmValue::Scalar(s), _))) => s.as_str().unwrap_or_default().to_string(),
            _ => String::new(),
        }
    }

    /// The record's fields as JSON (the winning value of any conflict).
    fn read_fields(&self) -> Result<Map<String, Value>, Error> {
        let f = self.fields_obj()?;
        let mut out = Map::new();
        for spec in schema::fields(self.kind) {
            let v = self.read_field(&f, spec)?;
            out.insert(spec.name.into(), v);
        }
        Ok(out)
    }

    fn read_field(&self, f: &ObjId, spec: &FieldSpec) -> Result<Value, Error> {
        let got = self.doc.get(f, spec.name)?;
        let bad = || self.corrupt(&format!("field {} has the wrong shape", spec.name));
        Ok(match spec.kind {
            FieldKind::Scalar => match got {
                Some((AmValue::Scalar(s), _)) => json_of(&s).ok_or_else(bad)?,
                None => Value::Null,
                _ => return Err(bad()),
            },
            FieldKind::Json => match got {
                Some((AmValue::Scalar(s), _)) => match s.as_ref() {
                    ScalarValue::Str(s) => serde_json::from_str(s).map_err(|_| bad())?,
                    ScalarValue::Null => Value::Null,
                    _ => return Err(bad()),
                },
                None => Value::Null,
                _ => return Err(bad()),
            },
            FieldKind::Text => match got {
                Some((AmValue::Object(ObjType::Text), id)) => Value::String(self.doc.text(&id)?),
                _ => return Err(bad()),
            },
            FieldKind::Set | FieldKind::KeyedSet => match got {
                Some((AmValue::Object(ObjType::Map), id)) => {
                    let mut items = Vec::new();
                    for item in self.doc.map_range(&id, ..) {
                        let element = match (&spec.kind, item.value) {
                            (FieldKind::Set, _) => Value::String(item.key.to_string()),
                            (_, automerge::ValueRef::Scalar(automerge::ScalarValueRef::Str(s))) => {
                                serde_json::from_str(&s).map_err(|_| bad())?
                            }
                            _ => return Err(bad()),
                        };
                        items.push(element);
                    }
                    Value::Array(items)
                }
                _ => return Err(bad()),
            },
            FieldKind::Log => match got {
                Some((AmValue::Object(ObjType::List), id)) => {
                    let mut items = Vec::new();
                    for item in self.doc.list_range(&id, ..) {
                        match item.value {
                            automerge::ValueRef::Scalar(automerge::ScalarValueRef::Str(s)) => {
                                items.push(serde_json::from_str(&s).map_err(|_| bad())?)
                            }
                            _ => return Err(bad()),
                        }
                    }
                    Value::Array(items)
                }
                _ => return Err(bad()),
            },
        })
    }

    fn typed(&self, fields: &Map<String, Value>) -> Result<RecordData, Error> {
        let mut obj = fields.clone();
        obj.insert("kind".into(), Value::String(self.kind.code().into()));
        serde_json::from_value(Value::Object(obj)).map_err(|e| self.corrupt(&e.to_string()))
    }

    /// The record's data (the shown value of any conflict).
    pub fn data(&self) -> Result<RecordData, Error> {
        self.typed(&self.read_fields()?)
    }

    fn read_events(&self) -> Result<Vec<Event>, Error> {
        let ev = self.events_obj()?;
        let mut out = Vec::new();
        for item in self.doc.list_range(&ev, ..) {
            let id = item.id().clone();
            let get = |k: &str| match self.doc.get(&id, k) {
                Ok(Some((AmValue::Scalar(s), _))) => Some(s.into_owned()),
                _ => None,
            };
            let str_of = |k: &str| get(k).and_then(|s| s.as_str().map(str::to_string));
            let event = str_of("t")
                .and_then(|t| EventType::parse(&t))
                .ok_or_else(|| self.corrupt("event type"))?;
            let at_ms = match get("at") {
                Some(ScalarValue::Int(i)) => i,
                _ => 0,
            };
            out.push(Event {
                id: id.to_string(),
                event,
                member: str_of("by").unwrap_or_default(),
                device: str_of("dev").unwrap_or_default(),
                at_ms,
                note: str_of("note"),
                to: str_of("to").and_then(|s| State::parse(&s)),
                unit: str_of("unit"),
                due: str_of("due")
                    .and_then(|s| chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok()),
                undoes: str_of("undo"),
                applied: false,
            });
        }
        Ok(out)
    }

    /// Who wrote the op `id`, and when: found through the change that contains it.
    fn author_of(&mut self, id: &ObjId) -> (String, String, Millis) {
        let ObjId::Id(counter, actor, _) = id else {
            return (String::new(), String::new(), 0);
        };
        for change in self.doc.get_changes(&[]) {
            let start = change.start_op().get();
            if change.actor_id() == actor
                && start <= *counter
                && *counter < start + change.len() as u64
            {
                let msg: Option<Message> =
                    change.message().and_then(|m| serde_json::from_str(m).ok());
                let at_ms = at_ms_of(&change, msg.as_ref());
                return match msg {
                    Some(m) => (m.m, m.d, at_ms),
                    None => (String::new(), actor.to_hex_string(), at_ms),
                };
            }
        }
        (String::new(), actor.to_hex_string(), 0)
    }

    /// Fields with concurrent values, and a contested workflow state.
    pub fn conflicts(&mut self) -> Result<Vec<Conflict>, Error> {
        let f = self.fields_obj()?;
        let mut out = Vec::new();
        for spec in schema::fields(self.kind) {
            if !matches!(spec.kind, FieldKind::Scalar | FieldKind::Json) {
                continue;
            }
            let all: Vec<(Value, ObjId)> = self
                .doc
                .get_all(&f, spec.name)?
                .into_iter()
                .map(|(v, id)| {
                    let value = match v {
                        AmValue::Scalar(s) => match (spec.kind, s.as_ref()) {
                            (FieldKind::Json, ScalarValue::Str(s)) => {
                                serde_json::from_str(s).unwrap_or(Value::Null)
                            }
                            (_, s) => json_of(s).unwrap_or(Value::Null),
                        },
                        _ => Value::Null,
                    };
                    (value, id)
                })
                .collect();
            if all.len() < 2 {
                continue;
            }
            let shown = self.read_field(&f, spec)?;
            let mut values = Vec::new();
            for (value, id) in all {
                let (member, device, at_ms) = self.author_of(&id);
                values.push(ConflictValue {
                    value,
                    member,
                    device,
                    at_ms,
                });
            }
            out.push(Conflict {
                field: spec.name.into(),
                shown,
                values,
            });
        }
        let tips: Vec<String> = self
            .doc
            .get_all(ROOT, "wf")?
            .into_iter()
            .filter_map(|(v, _)| match v {
                AmValue::Scalar(s) => s.as_str().map(str::to_string),
                _ => None,
            })
            .collect();
        if tips.len() > 1 {
            let mut events = self.read_events()?;
            let folded = workflow::fold(self.kind, &mut events);
            let mut values = Vec::new();
            for tip in tips {
                if let Some(e) = events.iter().find(|e| e.id == tip) {
                    let to = workflow::target(self.kind, e).unwrap_or(folded.state);
                    values.push(ConflictValue {
                        value: Value::String(to.code().into()),
                        member: e.member.clone(),
                        device: e.device.clone(),
                        at_ms: e.at_ms,
                    });
                }
            }
            out.push(Conflict {
                field: "status".into(),
                shown: Value::String(folded.state.code().into()),
                values,
            });
        }
        Ok(out)
    }

    /// The current state of the record.
    pub fn view(&mut self) -> Result<RecordView, Error> {
        let data = self.data()?;
        let mut events = self.read_events()?;
        let folded = workflow::fold(self.kind, &mut events);
        let conflicts = self.conflicts()?;
        let created_at_ms = match self.doc.get(ROOT, "at")? {
            Some((AmValue::Scalar(s), _)) => match s.as_ref() {
                ScalarValue::Int(i) => *i,
                _ => 0,
            },
            _ => 0,
        };
        Ok(RecordView {
            id: self.id.clone(),
            kind: self.kind,
            created_by: self.root_str("by"),
            created_device: self.root_str("dev"),
            created_at_ms,
            status: folded.state,
            deleted: folded.deleted,
            data,
            conflicts,
            events,
        })
    }

    /// Every change, oldest first, with who, which device and when: the 留痕. The order is the
    /// same on every replica with the same heads, whatever order it received changes in: causal
    /// (a change after the changes it depends on), then time, then change hash.
    pub fn history(&mut self) -> Vec<HistoryEntry> {
        let changes = self.doc.get_changes(&[]);
        let index: HashMap<ChangeHash, usize> = changes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.hash(), i))
            .collect();
        let mut waiting = vec![0_usize; changes.len()];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); changes.len()];
        for (i, c) in changes.iter().enumerate() {
            for dep in c.deps() {
                if let Some(&j) = index.get(dep) {
                    waiting[i] += 1;
                    dependents[j].push(i);
                }
            }
        }
        let mut entries: Vec<Option<HistoryEntry>> = changes
            .iter()
            .map(|c| {
                let msg: Option<Message> = c.message().and_then(|m| serde_json::from_str(m).ok());
                let at_ms = at_ms_of(c, msg.as_ref());
                let (member, device, action, fields) = match msg {
                    Some(m) => (m.m, m.d, m.a, m.f),
                    None => (
                        String::new(),
                        c.actor_id().to_hex_string(),
                        String::new(),
                        vec![],
                    ),
                };
                Some(HistoryEntry {
                    hash: c.hash().to_string(),
                    member,
                    device,
                    at_ms,
                    action,
                    fields,
                })
            })
            .collect();
        let at: Vec<Millis> = entries.iter().flatten().map(|e| e.at_ms).collect();
        // Kahn's topological sort, taking the earliest (time, hash) among the ready changes.
        let key = |i: usize| Reverse((at[i], changes[i].hash(), i));
        let mut ready: BinaryHeap<_> = (0..changes.len())
            .filter(|&i| waiting[i] == 0)
            .map(key)
            .collect();
        let mut out = Vec::with_capacity(changes.len());
        while let Some(Reverse((_, _, i))) = ready.pop() {
            out.extend(entries[i].take());
            for &d in &dependents[i] {
                waiting[d] -= 1;
                if waiting[d] == 0 {
                    ready.push(key(d));
                }
            }
        }
        out
    }

    /// Applies edits as one change, after checking that the result is a valid record.
    pub fn edit(&mut self, by: &Author, now: Millis, edits: &[Edit]) -> Result<ChangeHash, Error> {
        self.edit_as(by, now, edits, "edit")
    }

    fn edit_as(
        &mut self,
        by: &Author,
        now: Millis,
        edits: &[Edit],
        action: &str,
    ) -> Result<ChangeHash, Error> {
        self.edit_with(by, now, edits, action, |_| Ok(()))
    }

    /// Attaches a photo to the record (a visit) as one change: its reference joins the `photos`
    /// set (keyed by hash, so attaching the same photo twice, or on two devices at once, keeps
    /// one element) and its thumbnail is stored as bytes under the root key `th:<hash>`, so it
    /// travels with the record's ordinary sync. A key per photo, not a shared map: two devices
    /// attaching concurrently never create competing containers.
    pub fn attach_photo(
        &mut self,
        by: &Author,
        now: Millis,
        photo: &PhotoRef,
        thumbnail: &[u8],
    ) -> Result<ChangeHash, Error> {
        // The same check a server runs on every thumbnail (issue 10).
        validate::check_thumbnail(thumbnail)?;
        let element = serde_json::to_value(photo).expect("a photo reference serializes");
        let key = format!("{THUMBNAIL_PREFIX}{}", photo.hash.to_ascii_lowercase());
        let edit = Edit::Add {
            field: "photos".into(),
            element,
        };
        self.edit_with(by, now, &[edit], "attach", |doc| {
            doc.put(ROOT, key.as_str(), ScalarValue::Bytes(thumbnail.to_vec()))?;
            Ok(())
        })
    }

    /// The thumbnail (JPEG) stored with the photo `hash`, if the document has it.
    pub fn thumbnail(&self, hash: &str) -> Option<Vec<u8>> {
        let key = format!("{THUMBNAIL_PREFIX}{}", hash.to_ascii_lowercase());
        match self.doc.get(ROOT, key.as_str()) {
            Ok(Some((AmValue::Scalar(s), _))) => match s.as_ref() {
                ScalarValue::Bytes(b) => Some(b.clone()),
                _ => None,
            },
            _ => None,
        }
    }

    /// The photos attached to the record (empty for kinds without photos).
    pub fn photos(&self) -> Result<Vec<PhotoRef>, Error> {
        let Some(spec) = schema::field(self.kind, "photos") else {
            return Ok(vec![]);
        };
        let f = self.fields_obj()?;
        let v = self.read_field(&f, spec)?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| serde_json::from_value(e.clone()).ok())
            .collect())
    }

    fn edit_with(
        &mut self,
        by: &Author,
        now: Millis,
        edits: &[Edit],
        action: &str,
        extra: impl FnOnce(&mut AutoCommit) -> Result<(), Error>,
    ) -> Result<ChangeHash, Error> {
        let mut events = self.read_events()?;
        if workflow::fold(self.kind, &mut events).deleted {
            return Err(ValidationError::new("record", Reason::Deleted).into());
        }
        let mut fields = self.read_fields()?;
        let mut touched = Vec::new();
        let edits: Vec<Edit> = edits
            .iter()
            .map(|e| {
                let spec = self.spec(e.field())?;
                Ok(normalize_edit(spec, e))
            })
            .collect::<Result<_, Error>>()?;
        for e in &edits {
            let spec = self.spec(e.field())?;
            apply_json(&mut fields, spec, e)?;
            if !touched.contains(&spec.name.to_string()) {
                touched.push(spec.name.to_string());
            }
        }
        validate::check_fields(self.kind, &fields)?;
        let data = self.typed(&fields)?;
        validate::record(&data)?;
        let f = self.fields_obj()?;
        self.act_as(by);
        for e in &edits {
            let spec = self.spec(e.field())?;
            self.write_edit(&f, spec, e, now)?;
        }
        extra(&mut self.doc)?;
        Ok(self.commit(by, now, action, touched))
    }

    fn spec(&self, field: &str) -> Result<&'static FieldSpec, Error> {
        schema::field(self.kind, field).ok_or_else(|| {
            ValidationError::new(
                field,
                Reason::UnknownField {
                    choices: schema::field_choices(self.kind),
                },
            )
            .into()
        })
    }

    fn write_edit(
        &mut self,
        f: &ObjId,
        spec: &FieldSpec,
        e: &Edit,
        now: Millis,
    ) -> Result<(), Error> {
        match (spec.kind, e) {
            (FieldKind::Scalar, Edit::Set { value, .. }) => {
                self.doc.put(f, spec.name, scalar_of(value))?;
            }
            (FieldKind::Json, Edit::Set { value, .. }) => {
                let v = if value.is_null() {
                    ScalarValue::Null
                } else {
                    ScalarValue::Str(value.to_string().into())
                };
                self.doc.put(f, spec.name, v)?;
            }
            (FieldKind::Text, Edit::Set { value, .. }) => {
                let text = match self.doc.get(f, spec.name)? {
                    Some((AmValue::Object(ObjType::Text), id)) => id,
                    _ => return Err(self.corrupt("text field missing")),
                };
                self.doc
                    .update_text(&text, value.as_str().unwrap_or_default())?;
            }
            (FieldKind::Set | FieldKind::KeyedSet, Edit::Add { element, .. }) => {
                let set = self.obj_of(f, spec.name, ObjType::Map)?;
                self.doc.put(
                    &set,
                    set_key(spec, element),
                    encode_element(spec, element, now),
                )?;
            }
            (FieldKind::Set | FieldKind::KeyedSet, Edit::Remove { key, .. }) => {
                let set = self.obj_of(f, spec.name, ObjType::Map)?;
                if self.doc.get(&set, key.as_str())?.is_some() {
                    self.doc.delete(&set, key.as_str())?;
                }
            }
            (FieldKind::Log, Edit::Append { entry, .. }) => {
                let log = self.obj_of(f, spec.name, ObjType::List)?;
                let n = self.doc.length(&log);
                self.doc
                    .insert(&log, n, ScalarValue::Str(entry.to_string().into()))?;
            }
            _ => unreachable!("apply_json checked the edit against the field kind"),
        }
        Ok(())
    }

    fn obj_of(&self, f: &ObjId, name: &str, ty: ObjType) -> Result<ObjId, Error> {
        match self.doc.get(f, name)? {
            Some((AmValue::Object(t), id)) if t == ty => Ok(id),
            _ => Err(self.corrupt(&format!("field {name} missing"))),
        }
    }

    /// Takes a workflow step (submit, return, approve, accept, …). Checks the step is valid from
    /// the current state, and what submitting requires.
    pub fn transition(
        &mut self,
        by: &Author,
        now: Millis,
        event: EventType,
        note: Option<&str>,
    ) -> Result<State, Error> {
        self.transition_with(
            by,
            now,
            event,
            &StepDetails {
                note,
                ..StepDetails::default()
            },
        )
    }

    /// [`RecordDoc::transition`] with what a step may carry beyond a note (issue 13): a forward
    /// names its unit and due day.
    pub fn transition_with(
        &mut self,
        by: &Author,
        now: Millis,
        event: EventType,
        details: &StepDetails<'_>,
    ) -> Result<State, Error> {
        let mut events = self.read_events()?;
        let folded = workflow::fold(self.kind, &mut events);
        if folded.deleted {
            return Err(ValidationError::new("record", Reason::Deleted).into());
        }
        let Some((from, to)) = workflow::transition(self.kind, event) else {
            return Err(ValidationError::new(
                "status",
                Reason::NotATransition { event: event.zh() },
            )
            .into());
        };
        if !from.contains(&folded.state) {
            return Err(ValidationError::new(
                "status",
                Reason::InvalidTransition {
                    event: event.zh(),
                    state: folded.state.zh(),
                },
            )
            .into());
        }
        if event == EventType::Submit {
            validate::on_submit(&self.data()?)?;
        }
        if let Some(unit) = details.unit
            && !validate::is_id(unit)
        {
            return Err(ValidationError::new(
                "unit",
                Reason::BadFormat {
                    value: unit.into(),
                    expected: "id",
                },
            )
            .into());
        }
        self.act_as(by);
        let e = self.append_event(event, by, now, details.note, None, true)?;
        if let Some(unit) = details.unit {
            self.doc.put(&e, "unit", unit)?;
        }
        if let Some(due) = details.due {
            self.doc
                .put(&e, "due", due.format("%Y-%m-%d").to_string())?;
        }
        self.commit(by, now, event.code(), vec![]);
        Ok(to)
    }

    /// Takes back the latest step (issue 13): a new `undo` event naming it; the state returns to
    /// what it was before that step. Nothing is deleted.
    pub fn undo(&mut self, by: &Author, now: Millis, note: Option<&str>) -> Result<State, Error> {
        let mut events = self.read_events()?;
        let folded = workflow::fold(self.kind, &mut events);
        if folded.deleted {
            return Err(ValidationError::new("record", Reason::Deleted).into());
        }
        let Some(last) = folded.last_step else {
            return Err(ValidationError::new(
                "status",
                Reason::InvalidTransition {
                    event: EventType::Undo.zh(),
                    state: folded.state.zh(),
                },
            )
            .into());
        };
        self.act_as(by);
        let e = self.append_event(EventType::Undo, by, now, note, None, true)?;
        self.doc.put(&e, "undo", last.as_str())?;
        self.commit(by, now, EventType::Undo.code(), vec![]);
        let mut events = self.read_events()?;
        Ok(workflow::fold(self.kind, &mut events).state)
    }

    fn append_event(
        &mut self,
        event: EventType,
        by: &Author,
        now: Millis,
        note: Option<&str>,
        to: Option<State>,
        workflow_step: bool,
    ) -> Result<ObjId, Error> {
        let ev = self.events_obj()?;
        let n = self.doc.length(&ev);
        let e = self.doc.insert_object(&ev, n, ObjType::Map)?;
        self.doc.put(&e, "t", event.code())?;
        self.doc.put(&e, "by", by.member.as_str())?;
        self.doc.put(&e, "dev", by.device.as_str())?;
        self.doc.put(&e, "at", now)?;
        if let Some(note) = note {
            self.doc.put(&e, "note", note)?;
        }
        if let Some(to) = to {
            self.doc.put(&e, "to", to.code())?;
        }
        if workflow_step {
            self.doc.put(ROOT, "wf", e.to_string())?;
        }
        Ok(e)
    }

    /// Resolves a conflict on `field` by choosing `value` (any valid value, usually one of the
    /// conflicting ones). For `status`, `value` is the state to settle on.
    pub fn resolve(
        &mut self,
        by: &Author,
        now: Millis,
        field: &str,
        value: Value,
    ) -> Result<ChangeHash, Error> {
        let conflicts = self.conflicts()?;
        if !conflicts.iter().any(|c| {
            c.field == field || schema::field(self.kind, field).is_some_and(|s| s.name == c.field)
        }) {
            return Err(ValidationError::new(field, Reason::NoConflict).into());
        }
        if field == "status" {
            let code = value.as_str().unwrap_or_default();
            let state = State::parse(code)
                .filter(|s| workflow::states(self.kind).contains(s))
                .ok_or_else(|| {
                    ValidationError::new(
                        "status",
                        Reason::UnknownValue {
                            what: "status",
                            value: code.into(),
                            choices: workflow::states(self.kind)
                                .iter()
                                .map(|s| format!("{}（{}）", s.code(), s.zh()))
                                .collect::<Vec<_>>()
                                .join(", "),
                        },
                    )
                })?;
            self.act_as(by);
            self.append_event(EventType::Resolve, by, now, None, Some(state), true)?;
            return Ok(self.commit(by, now, "resolve", vec!["status".into()]));
        }
        let name = self.spec(field)?.name;
        self.edit_as(
            by,
            now,
            &[Edit::Set {
                field: name.into(),
                value,
            }],
            "resolve",
        )
    }

    /// Marks the record deleted (a tombstone: the document and its history stay).
    pub fn delete(
        &mut self,
        by: &Author,
        now: Millis,
        note: Option<&str>,
    ) -> Result<ChangeHash, Error> {
        self.act_as(by);
        self.append_event(EventType::Delete, by, now, note, None, false)?;
        Ok(self.commit(by, now, "delete", vec![]))
    }

    /// Undoes a deletion.
    pub fn restore(&mut self, by: &Author, now: Millis) -> Result<ChangeHash, Error> {
        self.act_as(by);
        self.append_event(EventType::Restore, by, now, None, None, false)?;
        Ok(self.commit(by, now, "restore", vec![]))
    }
}

/// The fields of a record as a JSON map (no `kind`).
pub fn fields_json(data: &RecordData) -> Map<String, Value> {
    match serde_json::to_value(data).expect("records serialize") {
        Value::Object(mut m) => {
            m.remove("kind");
            m
        }
        _ => unreachable!("records serialize to objects"),
    }
}

fn write_new(
    doc: &mut AutoCommit,
    f: &ObjId,
    spec: &FieldSpec,
    v: &Value,
    now: Millis,
) -> Result<(), Error> {
    match spec.kind {
        FieldKind::Scalar => {
            doc.put(f, spec.name, scalar_of(v))?;
        }
        FieldKind::Json => {
            let s = if v.is_null() {
                ScalarValue::Null
            } else {
                ScalarValue::Str(v.to_string().into())
            };
            doc.put(f, spec.name, s)?;
        }
        FieldKind::Text => {
            let t = doc.put_object(f, spec.name, ObjType::Text)?;
            doc.splice_text(&t, 0, 0, v.as_str().unwrap_or_default())?;
        }
        FieldKind::Set | FieldKind::KeyedSet => {
            let m = doc.put_object(f, spec.name, ObjType::Map)?;
            for e in v.as_array().into_iter().flatten() {
                doc.put(&m, set_key(spec, e), encode_element(spec, e, now))?;
            }
        }
        FieldKind::Log => {
            let l = doc.put_object(f, spec.name, ObjType::List)?;
            for (i, e) in v.as_array().into_iter().flatten().enumerate() {
                doc.insert(&l, i, ScalarValue::Str(e.to_string().into()))?;
            }
        }
    }
    Ok(())
}

/// The edit with its value in canonical form (labels to codes, ISO dates), field by its name.
fn normalize_edit(spec: &FieldSpec, e: &Edit) -> Edit {
    let field = spec.name.to_string();
    match e {
        Edit::Set { value, .. } => Edit::Set {
            field,
            value: validate::normalize(spec, value),
        },
        Edit::Add { element, .. } => Edit::Add {
            field,
            element: validate::normalize(spec, element),
        },
        Edit::Remove { key, .. } => Edit::Remove {
            field,
            key: key.trim().to_string(),
        },
        Edit::Append { entry, .. } => Edit::Append {
            field,
            entry: validate::normalize(spec, entry),
        },
    }
}

/// Applies an edit to the JSON form, checking it fits the field's kind.
fn apply_json(fields: &mut Map<String, Value>, spec: &FieldSpec, e: &Edit) -> Result<(), Error> {
    let wrong = |how: &'static str| -> Error {
        ValidationError::new(
            spec.name,
            Reason::WrongEdit {
                kind: "collection",
                how,
            },
        )
        .into()
    };
    match (spec.kind, e) {
        (FieldKind::Scalar | FieldKind::Json | FieldKind::Text, Edit::Set { value, .. }) => {
            validate::check_element(spec, value)?;
            fields.insert(spec.name.into(), validate::normalize(spec, value));
        }
        (FieldKind::Set | FieldKind::KeyedSet, Edit::Add { element, .. }) => {
            validate::check_element(spec, element)?;
            let element = &validate::normalize(spec, element);
            let key = set_key(spec, element);
            let items = fields
                .entry(spec.name)
                .or_insert_with(|| Value::Array(vec![]));
            if let Value::Array(items) = items {
                items.retain(|i| set_key(spec, i) != key);
                items.push(element.clone());
            }
        }
        (FieldKind::Set | FieldKind::KeyedSet, Edit::Remove { key, .. }) => {
            if let Some(Value::Array(items)) = fields.get_mut(spec.name) {
                items.retain(|i| set_key(spec, i) != *key);
            }
        }
        (FieldKind::Log, Edit::Append { entry, .. }) => {
            validate::check_element(spec, entry)?;
            if let Some(Value::Array(items)) = fields.get_mut(spec.name) {
                items.push(validate::normalize(spec, entry));
            }
        }
        (FieldKind::Set | FieldKind::KeyedSet, _) => return Err(wrong("add / remove")),
        (FieldKind::Log, _) => return Err(wrong("append")),
        (_, _) => {
            return Err(ValidationError::new(
                spec.name,
                Reason::WrongEdit {
                    kind: "single value",
                    how: "set",
                },
            )
            .into());
        }
    }
    Ok(())
}
