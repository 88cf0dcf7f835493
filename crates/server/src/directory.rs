//! The directory kept by the office (issue 13): members, activity groups, committees, contact
//! points, units and chapters added, edited and retired by staff (console, Excel, the admin
//! command line), as automerge changes the server makes under its own actor naming the staff
//! member, landed with `land_local` so that phones receive them at their next sync.
//!
//! **Moving a member** to another group changes the member record's `group` and the account's
//! group; a member who led its old group stops leading it, and the old group's record names the
//! new leader staff chose (a group always has a leader: moving its leader without naming the
//! next one is refused). Each of the member's enrolled devices gets a new certificate for the
//! new group (handed out by `POST /v1/trust`, which every sync is followed by), is asked to
//! read the change log again from the start (a resync: it has none of the new group's history),
//! and the old group's box key starts a new epoch (the devices held its secret). Changes the
//! member's devices made in the old group **before** the move still land (the push policy
//! judges each change by its own time, [`Membership`]); later ones are refused.
//!
//! **Retiring a member** puts a `delete` event with the reason on the member record (a
//! tombstone: it stays, and every record keeps naming its author), revokes each of its devices
//! (signed revocation list, box keys rotated) and marks the account retired: it can no longer
//! sync, enroll or sign in to the console. A device that tries is told in Chinese to export its
//! unsynced records as a bundle (`sanjin device bundle export`) and hand it to the office, which
//! imports it with `sanjin admin import-bundle`: an operator's import accepts the changes that
//! device made before the retirement, and refuses later ones.
//!
//! **Retiring another entry** (group, committee, contact point, unit, chapter) is refused while
//! an active entry of the directory still names it (the refusal lists them); otherwise it is a
//! tombstone too, and it can no longer be chosen. Records that named it keep naming it.
//!
//! Nothing here rewrites a record's history: every change is a new change, and records already
//! on the server keep their authors.

use std::collections::{BTreeMap, HashMap, HashSet};

use sanjin_core::domain::{RecordData, RecordKind};
use sanjin_core::input;
use sanjin_core::schema::{self, FieldKind};
use sanjin_core::{Author, Edit, RecordDoc, ValidationError};
use sanjin_store::now_ms;
use sanjin_store::server::{ServerStorage, StoredBoxKey};
use sanjin_sync::server as policy;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::data::{SERVER_ID, ServerData, random};
use crate::error::{Error, Result};
use crate::model::{Account, Role};

/// `server_meta` key prefix: a member's former groups (JSON list of [`FormerGroup`]).
const META_FORMER: &str = "directory.former:";
/// `server_meta` key prefix: a retired member's [`Retirement`].
const META_RETIRED: &str = "directory.retired:";
/// `server_meta` key prefix: a device that must read the change log again (its member moved).
const META_RESCAN: &str = "directory.rescan:";

/// The directory's kinds, in the order the console lists them and an import lands them
/// (referenced kinds first).
pub const KINDS: &[RecordKind] = &[
    RecordKind::Chapter,
    RecordKind::Committee,
    RecordKind::ContactPoint,
    RecordKind::Unit,
    RecordKind::Group,
    RecordKind::Member,
];

/// A group a member belonged to, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormerGroup {
    pub group: String,
    pub until_ms: i64,
}

/// When and why a member retired, and which staff member recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retirement {
    pub at_ms: i64,
    pub by: String,
    pub reason: String,
}

/// An account with its history, as the push policy judges its devices' changes: what it may
/// write now, what it could write in a former group until it moved, and nothing made after it
/// retired.
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    pub account: Account,
    pub former: Vec<FormerGroup>,
    pub retired_at: Option<i64>,
}

impl Membership {
    fn wrote_in_former(&self, kind: RecordKind, group: Option<&str>, at: Option<i64>) -> bool {
        matches!(self.account.role, Role::Member | Role::Leader)
            && !kind.is_directory()
            && self
                .former
                .iter()
                .any(|f| group == Some(f.group.as_str()) && at.is_none_or(|at| at <= f.until_ms))
    }
}

impl policy::Writer for Membership {
    fn member(&self) -> &str {
        &self.account.member
    }

    fn role(&self) -> String {
        self.account.role.to_string()
    }

    fn may_write(&self, kind: RecordKind, group: Option<&str>) -> bool {
        self.retired_at.is_none() && self.account.may_write(kind, group)
    }

    fn may_write_at(&self, kind: RecordKind, group: Option<&str>, at_ms: i64) -> bool {
        if self.retired_at.is_some_and(|t| at_ms > t) {
            return false;
        }
        self.account.may_write(kind, group) || self.wrote_in_former(kind, group, Some(at_ms))
    }

    fn may_have_written(&self, kind: RecordKind, group: Option<&str>) -> bool {
        self.account.may_write(kind, group) || self.wrote_in_former(kind, group, None)
    }

    fn retired_at(&self) -> Option<i64> {
        self.retired_at
    }

    fn leads(&self, group: &str) -> bool {
        self.retired_at.is_none() && self.account.leads(group)
    }
}

/// What a member's move or retirement concerns: shown on the confirmation page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemberImpact {
    /// Enrolled devices not revoked.
    pub devices: usize,
    /// Of them, those with a certificate (re-issued on a move).
    pub certified: usize,
    /// Records the member took part in or authored (they stay attributed).
    pub records: usize,
    /// The group the member leads, if any.
    pub leads: Option<String>,
}

/// What a move did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MoveReport {
    pub member: String,
    pub from: String,
    pub to: String,
    pub certificates_reissued: usize,
    pub devices_to_resync: usize,
    /// The old group's new leader, when the member led it.
    pub new_leader: Option<String>,
    /// The old group's box-key epoch now.
    pub old_group_epoch: u32,
}

/// What a retirement did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetireReport {
    pub member: String,
    pub devices_revoked: usize,
    pub records: usize,
    pub new_leader: Option<String>,
}

/// A typed field value of an entry form or sheet row: the field's name or Chinese label, and
/// what was typed.
pub type Inputs = [(String, String)];

/// Builds a directory entry of `kind` from typed values, each parsed and checked by the core's
/// schema (`sanjin_core::input`), the way devices build records. Empty values are left out
/// (optional fields stay empty, a required one is refused as empty). Sets (a group's contact
/// points) are typed separated by `、`, `,`, `，`, `;` or spaces. Every error is returned,
/// each naming its field.
pub fn build_entry(
    kind: RecordKind,
    inputs: &Inputs,
) -> std::result::Result<RecordData, Vec<ValidationError>> {
    let mut fields = Map::new();
    let mut errors = Vec::new();
    for (name, value) in inputs {
        if value.trim().is_empty() {
            continue;
        }
        let spec = match input::field_spec(kind, name) {
            Ok(s) => s,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let done = match spec.kind {
            FieldKind::Set | FieldKind::KeyedSet | FieldKind::Log => {
                let items: Vec<String> = value
                    .split(['、', ',', '，', ';', '；', ' ', '\n', '\t'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                input::put_list(kind, &mut fields, spec.name, &items)
            }
            _ => input::put(kind, &mut fields, spec.name, value),
        };
        if let Err(e) = done {
            errors.push(e);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Optional text left empty is an empty text (what the record's type holds), not nothing.
    for spec in schema::fields(kind) {
        if spec.ty == schema::ValueType::OptStr && !fields.contains_key(spec.name) {
            fields.insert(spec.name.into(), Value::String(String::new()));
        }
    }
    input::build(kind, fields).map_err(|e| vec![e])
}

/// A validation error in Chinese, naming the field.
pub fn zh_error(kind: RecordKind, e: &ValidationError) -> String {
    e.zh(kind)
}

/// The typed values of an entry, as a form or a sheet shows them (sets joined by `、`).
pub fn entry_inputs(data: &RecordData) -> Vec<(String, String)> {
    let kind = data.kind();
    let fields = sanjin_core::doc::fields_json(data);
    schema::fields(kind)
        .iter()
        .map(|spec| {
            let v = fields.get(spec.name).cloned().unwrap_or(Value::Null);
            (spec.name.to_string(), value_text(&v))
        })
        .collect()
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(value_text).collect::<Vec<_>>().join("、"),
        Value::Object(o) => {
            // A GPS fix: `lat,lon`.
            match (o.get("lat"), o.get("lon")) {
                (Some(a), Some(b)) => format!("{a},{b}"),
                _ => Value::Object(o.clone()).to_string(),
            }
        }
        other => other.to_string(),
    }
}

/// The ids an entry names, with the kind each must be: what a reference check looks up.
fn references(data: &RecordData) -> Vec<(&str, &str, RecordKind)> {
    let mut out = Vec::new();
    match data {
        RecordData::Member(m) => {
            out.push(("chapter", m.chapter.as_str(), RecordKind::Chapter));
            out.push(("group", m.group.as_str(), RecordKind::Group));
            if let Some(c) = &m.committee {
                out.push(("committee", c.as_str(), RecordKind::Committee));
            }
        }
        RecordData::Group(g) => {
            out.push(("chapter", g.chapter.as_str(), RecordKind::Chapter));
            if let Some(c) = &g.committee {
                out.push(("committee", c.as_str(), RecordKind::Committee));
            }
            out.push(("leader", g.leader.as_str(), RecordKind::Member));
            for cp in &g.contact_points {
                out.push(("contact_points", cp.as_str(), RecordKind::ContactPoint));
            }
        }
        RecordData::Committee(c) => out.push(("chapter", c.chapter.as_str(), RecordKind::Chapter)),
        RecordData::ContactPoint(c) => {
            out.push(("chapter", c.chapter.as_str(), RecordKind::Chapter))
        }
        RecordData::Chapter(c) => {
            if let Some(p) = &c.parent {
                out.push(("parent", p.as_str(), RecordKind::Chapter));
            }
        }
        RecordData::Unit(u) => {
            if let Some(c) = &u.chapter {
                out.push(("chapter", c.as_str(), RecordKind::Chapter));
            }
        }
        _ => {}
    }
    out
}

/// The directory as the checks of an entry see it: every entry's kind, whether it is retired,
/// and each member's group.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// id → (kind, retired).
    pub entries: HashMap<String, (RecordKind, bool)>,
    /// member id → group.
    pub member_group: HashMap<String, String>,
}

impl Known {
    /// Why `data` (entry `id`) cannot be saved against this directory, in Chinese: unknown or
    /// retired references, a group leader who is not a member of the group.
    /// `existing_group`: a group that already exists must be led by one of its members (a new
    /// group may name a member of another group, to be moved into it).
    pub fn check(&self, id: &str, data: &RecordData, existing_group: bool) -> Vec<String> {
        let kind = data.kind();
        let mut out = Vec::new();
        for (field, target, want) in references(data) {
            let label = schema::field(kind, field).map_or(field, |f| f.zh);
            match self.entries.get(target) {
                Some((k, false)) if *k == want => {}
                Some((k, true)) if *k == want => out.push(format!(
                    "{label}：{}“{target}”已停用，不能再选用；请选择在册的{}",
                    want.zh(),
                    want.zh()
                )),
                Some((k, _)) => out.push(format!(
                    "{label}：“{target}”是{}，不是{}；请填写{}的编号",
                    k.zh(),
                    want.zh(),
                    want.zh()
                )),
                None => out.push(format!(
                    "{label}：名录中没有编号为“{target}”的{}；请先添加它，或改正编号",
                    want.zh()
                )),
            }
        }
        if let RecordData::Group(g) = data
            && existing_group
            && let Some(group) = self.member_group.get(&g.leader)
            && group != id
        {
            out.push(format!(
                "组长（leader）：委员 {} 属于活动组 {group}，不是本组（{id}）的委员；请先把他调入本组，或选择本组的委员",
                g.leader
            ));
        }
        out
    }
}

/// An entry as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub id: String,
    pub kind: RecordKind,
    pub title: String,
    pub group: Option<String>,
    pub retired: bool,
}

/// A member's retirement as `storage` holds it.
fn retirement_in(storage: &dyn ServerStorage, member: &str) -> Result<Option<Retirement>> {
    Ok(
        match storage.server_meta(&format!("{META_RETIRED}{member}"))? {
            Some(s) => Some(
                serde_json::from_str(&s)
                    .map_err(|e| Error::Invalid(format!("retirement of {member}: {e}")))?,
            ),
            None => None,
        },
    )
}

/// What a retired member's device is told when it tries to sync or enroll (Chinese), from any
/// storage handle (the credential pre-check reads a read-only one).
pub(crate) fn retired_message_of(
    storage: &dyn ServerStorage,
    member: &str,
) -> Result<Option<String>> {
    Ok(retirement_in(storage, member)?.map(|r| {
        let day = sanjin_core::time::beijing_date(r.at_ms);
        format!(
            "委员 {member} 已于 {day} 退出委员名录（{}），本机已停用，不能再同步或登记。手机上尚未同步的记录没有丢失：请在手机上执行 `sanjin device bundle export` 导出离线包，交给政协机关，由机关用 `sanjin admin import-bundle` 导入；已经同步的记录仍记在您的名下。",
            r.reason
        )
    }))
}

impl ServerData {
    // ------------------------------------------------------------ reading

    /// Every directory entry (retired ones too), by kind then id.
    pub fn directory_entries(&self) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        for kind in KINDS {
            let f = sanjin_store::Filter {
                kind: Some(*kind),
                include_deleted: true,
                ..sanjin_store::Filter::default()
            };
            for e in self.store.list(&f)? {
                out.push(Listed {
                    id: e.id,
                    kind: *kind,
                    title: e.title,
                    group: e.group.filter(|_| *kind == RecordKind::Member),
                    retired: e.deleted,
                });
            }
        }
        out.sort_by(|a, b| (a.kind.code(), &a.id).cmp(&(b.kind.code(), &b.id)));
        Ok(out)
    }

    /// The directory as the reference checks see it.
    pub fn known_directory(&self) -> Result<Known> {
        let mut k = Known::default();
        for e in self.directory_entries()? {
            if e.kind == RecordKind::Member
                && let Some(g) = &e.group
            {
                k.member_group.insert(e.id.clone(), g.clone());
            }
            k.entries.insert(e.id, (e.kind, e.retired));
        }
        Ok(k)
    }

    /// A directory entry's data and whether it is retired.
    pub fn directory_entry(&self, id: &str) -> Result<(RecordData, bool)> {
        let entry = self
            .store
            .index_entry(id)?
            .filter(|e| RecordKind::parse(&e.kind).is_some_and(RecordKind::is_directory))
            .ok_or_else(|| Error::UnknownRecord(id.into()))?;
        let doc = self.store.load(id)?;
        Ok((doc.data()?, entry.deleted))
    }

    /// A member's former groups (oldest first).
    pub fn former_groups(&self, member: &str) -> Result<Vec<FormerGroup>> {
        Ok(
            match self.store.server_meta(&format!("{META_FORMER}{member}"))? {
                Some(s) => serde_json::from_str(&s)
                    .map_err(|e| Error::Invalid(format!("former groups of {member}: {e}")))?,
                None => Vec::new(),
            },
        )
    }

    /// A member's retirement, if it retired.
    pub fn retirement(&self, member: &str) -> Result<Option<Retirement>> {
        retirement_in(self.store.as_ref(), member)
    }

    /// An account with its history, for the push policy.
    pub(crate) fn membership(&self, account: &Account) -> Result<Membership> {
        Ok(Membership {
            former: self.former_groups(&account.member)?,
            retired_at: self.retirement(&account.member)?.map(|r| r.at_ms),
            account: account.clone(),
        })
    }

    /// What a retired member's device is told when it tries to sync or enroll (Chinese).
    pub fn retired_message(&self, member: &str) -> Result<Option<String>> {
        retired_message_of(self.store.as_ref(), member)
    }

    /// The devices, certificates and records a move or retirement of `member` concerns.
    pub fn member_impact(&self, member: &str) -> Result<MemberImpact> {
        let mut out = MemberImpact::default();
        for d in self.store.devices()? {
            if d.member != member || d.revoked_at.is_some() {
                continue;
            }
            out.devices += 1;
            if self
                .store
                .device_keys(&d.device_id)?
                .is_some_and(|k| k.public_key.is_some())
            {
                out.certified += 1;
            }
        }
        let f = sanjin_store::Filter {
            member: Some(member.into()),
            include_deleted: true,
            ..sanjin_store::Filter::default()
        };
        out.records = self
            .store
            .list(&f)?
            .iter()
            .filter(|e| RecordKind::parse(&e.kind).is_some_and(|k| !k.is_directory()))
            .count();
        out.leads = self.led_group(member)?;
        Ok(out)
    }

    /// The group whose record names `member` its leader (an active group).
    fn led_group(&self, member: &str) -> Result<Option<String>> {
        for e in self.directory_entries()? {
            if e.kind != RecordKind::Group || e.retired {
                continue;
            }
            if let (RecordData::Group(g), _) = self.directory_entry(&e.id)?
                && g.leader == member
            {
                return Ok(Some(e.id));
            }
        }
        Ok(None)
    }

    /// The active entries that name `id` (id, kind, title).
    pub fn referenced_by(&self, id: &str) -> Result<Vec<(String, RecordKind, String)>> {
        let mut out = Vec::new();
        for e in self.directory_entries()? {
            if e.retired || e.id == id {
                continue;
            }
            let (data, _) = self.directory_entry(&e.id)?;
            if references(&data).iter().any(|(_, t, _)| *t == id) {
                out.push((e.id, e.kind, e.title));
            }
        }
        Ok(out)
    }

    // ------------------------------------------------------------ changing

    /// The author of a change the server makes for staff member `by` (its own actor, `by`
    /// named in the change, as console steps are).
    fn staff_author(&self, by: &str) -> Result<Author> {
        let actor = self.store.identity().actor.clone();
        Ok(Author::new(by, SERVER_ID, &actor)?)
    }

    /// Staff of a county chapter change only their chapter's directory entries (issue 13):
    /// refuses `by` when it is such an account and the entry `id` (as `data` says) belongs to
    /// another chapter or to none (a city-wide unit). The operator's CLI (`by` no account) and
    /// city staff may change every entry.
    fn check_directory_chapter(&self, by: &str, id: &str, data: &RecordData) -> Result<()> {
        let Some(account) = self.account(by)? else {
            return Ok(());
        };
        let chapter = entry_chapter(id, data);
        if account.may_write_directory(chapter) {
            return Ok(());
        }
        let mine = account.chapter.as_deref().unwrap_or("");
        Err(Error::Forbidden(match chapter {
            Some(c) => format!(
                "{}{id} 属于其他政协组织（{c}）：{mine} 的工作人员只能修改本政协组织的名录；请联系市政协机关办理",
                data.kind().zh()
            ),
            None => format!(
                "{}{id} 不属于任何县级政协组织（全市通用）：{mine} 的工作人员不能修改；请联系市政协机关办理",
                data.kind().zh()
            ),
        }))
    }

    /// Creates a directory entry for staff member `by`, after the reference checks. A member
    /// gets an account (`member`; `leader` if a group record names it). Refuses an existing id.
    pub fn create_entry(&mut self, by: &str, id: &str, data: &RecordData) -> Result<()> {
        let kind = data.kind();
        if !kind.is_directory() {
            return Err(Error::Invalid(format!(
                "{}不是名录条目，由委员在手机上记录",
                kind.zh()
            )));
        }
        if !sanjin_core::validate::is_id(id) {
            return Err(Error::Invalid(format!(
                "编号“{id}”不合格式：只能用字母、数字、- 或 _，最长 64 个字符"
            )));
        }
        sanjin_core::validate::record(data).map_err(|e| Error::Invalid(e.zh(kind)))?;
        if self.store.exists(id)? || self.account(id)?.is_some() {
            return Err(Error::Invalid(format!(
                "编号“{id}”已被使用；请换一个编号，或编辑已有的条目"
            )));
        }
        self.check_directory_chapter(by, id, data)?;
        let problems = self.known_directory()?.check(id, data, false);
        if !problems.is_empty() {
            return Err(Error::Invalid(problems.join("；")));
        }
        let author = self.staff_author(by)?;
        self.atomically(|d| -> Result<()> {
            let mut doc = RecordDoc::create(id, data, &author, now_ms())?;
            d.land_local(&mut doc)?;
            if let RecordData::Member(m) = data {
                let leads = d.led_group(id)?.as_deref() == Some(m.group.as_str());
                d.put_account(&Account::new(
                    id,
                    if leads { Role::Leader } else { Role::Member },
                    Some(&m.group),
                    &m.name,
                ))?;
            }
            if let RecordData::Group(g) = data {
                d.make_leader(&g.leader, id)?;
            }
            Ok(())
        })?;
        tracing::info!(by = %by, id = %id, kind = kind.code(), "directory entry created");
        Ok(())
    }

    /// Edits a directory entry for staff member `by`: the fields that differ from `data` (of
    /// the same kind), after the reference checks. A member's group is changed by
    /// [`ServerData::move_member`] (its devices' certificates), not here. A group's new leader
    /// becomes its leader account; the former leader a member. Returns how many fields changed.
    pub fn edit_entry(&mut self, by: &str, id: &str, data: &RecordData) -> Result<usize> {
        let (old, retired) = self.directory_entry(id)?;
        let kind = old.kind();
        if data.kind() != kind {
            return Err(Error::Invalid(format!(
                "{id} 是{}，不能改成{}",
                kind.zh(),
                data.kind().zh()
            )));
        }
        if retired {
            return Err(Error::Invalid(format!("{id} 已退出或停用，不能再编辑")));
        }
        // The entry as it is and as it would be: neither may leave a county staff's chapter.
        self.check_directory_chapter(by, id, &old)?;
        self.check_directory_chapter(by, id, data)?;
        sanjin_core::validate::record(data).map_err(|e| Error::Invalid(e.zh(kind)))?;
        if let (RecordData::Member(a), RecordData::Member(b)) = (&old, data)
            && a.group != b.group
        {
            return Err(Error::Invalid(format!(
                "委员 {id} 的活动组要用“调整活动组”办理（会为他的手机重新签发证书），不能在编辑中修改"
            )));
        }
        let problems = self.known_directory()?.check(id, data, true);
        if !problems.is_empty() {
            return Err(Error::Invalid(problems.join("；")));
        }
        let edits = diff(&old, data);
        if edits.is_empty() {
            return Ok(0);
        }
        let n = edits.len();
        let author = self.staff_author(by)?;
        self.atomically(|d| -> Result<()> {
            let mut doc = d.store.load(id)?;
            doc.edit(&author, now_ms(), &edits)?;
            d.land_local(&mut doc)?;
            match (&old, data) {
                (RecordData::Member(_), RecordData::Member(m)) => {
                    if let Some(mut a) = d.account(id)?
                        && a.name != m.name
                    {
                        a.name = m.name.clone();
                        d.put_account(&a)?;
                    }
                }
                (RecordData::Group(a), RecordData::Group(b)) if a.leader != b.leader => {
                    d.unmake_leader(&a.leader, id)?;
                    d.make_leader(&b.leader, id)?;
                }
                _ => {}
            }
            Ok(())
        })?;
        tracing::info!(by = %by, id = %id, fields = n, "directory entry edited");
        Ok(n)
    }

    /// Makes `member`'s account the leader of `group` if it is a member of that group.
    fn make_leader(&mut self, member: &str, group: &str) -> Result<()> {
        if let Some(mut a) = self.account(member)?
            && a.role == Role::Member
            && a.group.as_deref() == Some(group)
        {
            a.role = Role::Leader;
            self.put_account(&a)?;
        }
        Ok(())
    }

    /// A leader account of `group` becomes a member account.
    fn unmake_leader(&mut self, member: &str, group: &str) -> Result<()> {
        if let Some(mut a) = self.account(member)?
            && a.role == Role::Leader
            && a.group.as_deref() == Some(group)
        {
            a.role = Role::Member;
            self.put_account(&a)?;
            // A leader's console sessions end with the role.
            self.store.delete_sessions_of(member)?;
        }
        Ok(())
    }

    /// The group `member` leads (by account or group record), checked against `new_leader`:
    /// a group always has a leader, so the one who leaves names the next (a member of that
    /// group). Returns the group and its new leader.
    fn succession(
        &self,
        member: &str,
        from: &str,
        new_leader: Option<&str>,
    ) -> Result<Option<(String, String)>> {
        let by_record = self.led_group(member)?.filter(|g| g == from);
        let by_account = self
            .account(member)?
            .filter(|a| a.role == Role::Leader)
            .and_then(|a| a.group)
            .filter(|g| g == from);
        let Some(group) = by_record.or(by_account) else {
            return Ok(None);
        };
        let new = new_leader.map(str::trim).filter(|s| !s.is_empty());
        let Some(new) = new else {
            return Err(Error::Invalid(format!(
                "委员 {member} 是活动组 {group} 的组长；请先指定该组的另一位委员担任新组长（工作台：“原组新组长”；命令行：--new-leader），再办理"
            )));
        };
        if new == member {
            return Err(Error::Invalid(format!(
                "新组长不能是 {member} 本人；请选择活动组 {group} 的另一位委员"
            )));
        }
        let known = self.known_directory()?;
        match (known.entries.get(new), known.member_group.get(new)) {
            (Some((RecordKind::Member, false)), Some(g)) if *g == group => {}
            _ => {
                return Err(Error::Invalid(format!(
                    "新组长 {new} 不是活动组 {group} 的在册委员；请选择该组的委员"
                )));
            }
        }
        Ok(Some((group, new.to_string())))
    }

    /// The old group gets `new` as its leader (group record and accounts).
    fn hand_over(&mut self, author: &Author, group: &str, old: &str, new: &str) -> Result<()> {
        let mut doc = self.store.load(group)?;
        doc.edit(
            author,
            now_ms(),
            &[Edit::Set {
                field: "leader".into(),
                value: Value::String(new.into()),
            }],
        )?;
        self.land_local(&mut doc)?;
        self.unmake_leader(old, group)?;
        self.make_leader(new, group)
    }

    /// Starts a new box-key epoch for `group` (as after a revocation): bundles sealed from now
    /// on are closed to devices that held its secret. Returns the new epoch.
    fn rotate_group_key(&mut self, group: &str) -> Result<u32> {
        let next = self
            .store
            .box_keys(Some(group))?
            .last()
            .map_or(1, |k| k.epoch + 1);
        self.store.insert_box_key(&StoredBoxKey {
            owner: group.to_string(),
            epoch: next,
            secret: random::<32>().to_vec(),
            created_at: now_ms(),
        })?;
        tracing::info!(group = %group, epoch = next, "group box key rotated after a member moved");
        Ok(next)
    }

    /// Moves `member` to `to` for staff member `by` (see the module's documentation).
    /// `new_leader`: the old group's next leader, required when the member leads it.
    pub fn move_member(
        &mut self,
        by: &str,
        member: &str,
        to: &str,
        new_leader: Option<&str>,
    ) -> Result<MoveReport> {
        let (data, retired) = self
            .directory_entry(member)
            .map_err(|_| Error::Invalid(format!("名录中没有编号为 {member} 的委员")))?;
        let RecordData::Member(m) = data else {
            return Err(Error::Invalid(format!("{member} 不是委员，不能调整活动组")));
        };
        if retired || self.retirement(member)?.is_some() {
            return Err(Error::Invalid(format!(
                "委员 {member} 已退出，不能调整活动组"
            )));
        }
        self.check_directory_chapter(by, member, &RecordData::Member(m.clone()))?;
        if let Ok((target @ RecordData::Group(_), _)) = self.directory_entry(to) {
            self.check_directory_chapter(by, to, &target)?;
        }
        let from = m.group.clone();
        if from == to {
            return Err(Error::Invalid(format!(
                "委员 {member} 已在活动组 {to}；请选择另一个活动组"
            )));
        }
        let known = self.known_directory()?;
        match known.entries.get(to) {
            Some((RecordKind::Group, false)) => {}
            Some((RecordKind::Group, true)) => {
                return Err(Error::Invalid(format!(
                    "活动组 {to} 已停用，不能调入；请选择在册的活动组"
                )));
            }
            _ => {
                return Err(Error::Invalid(format!(
                    "名录中没有编号为 {to} 的活动组；请从列表中选择"
                )));
            }
        }
        let succession = self.succession(member, &from, new_leader)?;
        let author = self.staff_author(by)?;
        let now = now_ms();
        let report = self.atomically(|d| -> Result<MoveReport> {
            let mut report = MoveReport {
                member: member.into(),
                from: from.clone(),
                to: to.into(),
                ..MoveReport::default()
            };
            if let Some((group, new)) = &succession {
                d.hand_over(&author, group, member, new)?;
                report.new_leader = Some(new.clone());
            }
            // The member record.
            let mut doc = d.store.load(member)?;
            doc.edit(
                &author,
                now,
                &[Edit::Set {
                    field: "group".into(),
                    value: Value::String(to.into()),
                }],
            )?;
            d.land_local(&mut doc)?;
            // The account: a member of the new group (a leader of it if its record says so).
            let mut account = d
                .account(member)?
                .ok_or_else(|| Error::UnknownAccount(member.into()))?;
            account.group = Some(to.into());
            account.role = if d.led_group(member)?.as_deref() == Some(to) {
                Role::Leader
            } else {
                Role::Member
            };
            d.put_account(&account)?;
            d.store.delete_sessions_of(member)?;
            // Changes made in the old group until now still land.
            let mut former = d.former_groups(member)?;
            former.push(FormerGroup {
                group: from.clone(),
                until_ms: now,
            });
            d.store.set_server_meta(
                &format!("{META_FORMER}{member}"),
                Some(&serde_json::to_string(&former).expect("serializes")),
            )?;
            // Each device: a certificate for the new group, and the log read again.
            for dev in d.store.devices()? {
                if dev.member != member || dev.revoked_at.is_some() {
                    continue;
                }
                if let Some(k) = d.store.device_keys(&dev.device_id)?
                    && let Some(pk) = k.public_key
                    && let Ok(pk) = <[u8; 32]>::try_from(pk.as_slice())
                {
                    d.issue_cert(&dev.device_id, pk)?;
                    report.certificates_reissued += 1;
                }
                d.store
                    .set_server_meta(&format!("{META_RESCAN}{}", dev.device_id), Some(to))?;
                report.devices_to_resync += 1;
            }
            report.old_group_epoch = d.rotate_group_key(&from)?;
            Ok(report)
        })?;
        tracing::info!(by = %by, member = %member, from = %report.from, to = %report.to, certificates = report.certificates_reissued, "member moved to another group");
        Ok(report)
    }

    /// Retires `member` for staff member `by` (see the module's documentation). `new_leader`:
    /// the group's next leader, required when the member leads it.
    pub fn retire_member(
        &mut self,
        by: &str,
        member: &str,
        reason: &str,
        new_leader: Option<&str>,
    ) -> Result<RetireReport> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Error::Invalid(
                "请填写退出原因（如：任期届满、工作调动），再办理".into(),
            ));
        }
        if reason.chars().count() > 200 || reason.chars().any(char::is_control) {
            return Err(Error::Invalid(
                "退出原因最多 200 个字，且不能有控制字符；请精简后再办理".into(),
            ));
        }
        let (data, retired) = self
            .directory_entry(member)
            .map_err(|_| Error::Invalid(format!("名录中没有编号为 {member} 的委员")))?;
        self.check_directory_chapter(by, member, &data)?;
        let RecordData::Member(m) = data else {
            return Err(Error::Invalid(format!(
                "{member} 不是委员；其他条目请用“停用”"
            )));
        };
        if retired || self.retirement(member)?.is_some() {
            return Err(Error::Invalid(format!("委员 {member} 已经退出")));
        }
        let succession = self.succession(member, &m.group, new_leader)?;
        let impact = self.member_impact(member)?;
        let author = self.staff_author(by)?;
        let now = now_ms();
        let mut report = self.atomically(|d| -> Result<RetireReport> {
            let mut report = RetireReport {
                member: member.into(),
                records: impact.records,
                ..RetireReport::default()
            };
            if let Some((group, new)) = &succession {
                d.hand_over(&author, group, member, new)?;
                report.new_leader = Some(new.clone());
            }
            let mut doc = d.store.load(member)?;
            doc.delete(&author, now, Some(&format!("退出：{reason}")))?;
            d.land_local(&mut doc)?;
            let r = Retirement {
                at_ms: now,
                by: by.into(),
                reason: reason.into(),
            };
            d.store.set_server_meta(
                &format!("{META_RETIRED}{member}"),
                Some(&serde_json::to_string(&r).expect("serializes")),
            )?;
            d.store.delete_sessions_of(member)?;
            Ok(report)
        })?;
        // Each device revoked (its own unit of work: the signed list's number and box keys).
        for dev in self.store.devices()? {
            if dev.member == member && dev.revoked_at.is_none() {
                self.revoke(&dev.device_id)?;
                report.devices_revoked += 1;
            }
        }
        tracing::info!(by = %by, member = %member, devices = report.devices_revoked, "member retired");
        Ok(report)
    }

    /// Retires a group, committee, contact point, unit or chapter for staff member `by`: a
    /// tombstone with the reason, refused while an active entry names it (the refusal lists
    /// them).
    pub fn retire_entry(&mut self, by: &str, id: &str, reason: &str) -> Result<()> {
        let (data, retired) = self
            .directory_entry(id)
            .map_err(|_| Error::Invalid(format!("名录中没有编号为 {id} 的条目")))?;
        self.check_directory_chapter(by, id, &data)?;
        let kind = data.kind();
        if kind == RecordKind::Member {
            return Err(Error::Invalid(format!(
                "{id} 是委员；委员退出请用“退出”（会停用他的手机）"
            )));
        }
        if retired {
            return Err(Error::Invalid(format!("{}{id} 已经停用", kind.zh())));
        }
        let reason = reason.trim();
        if reason.chars().count() > 200 || reason.chars().any(char::is_control) {
            return Err(Error::Invalid(
                "停用原因最多 200 个字，且不能有控制字符；请精简后再办理".into(),
            ));
        }
        let users = self.referenced_by(id)?;
        if !users.is_empty() {
            let names: Vec<String> = users
                .iter()
                .take(20)
                .map(|(i, k, t)| format!("{}{t}（{i}）", k.zh()))
                .collect();
            let more = if users.len() > 20 {
                format!(" 等 {} 个", users.len())
            } else {
                String::new()
            };
            return Err(Error::Invalid(format!(
                "{}{id} 还被 {}{more} 使用，不能停用；请先把它们改到别处（或让它们退出、停用），再停用",
                kind.zh(),
                names.join("、")
            )));
        }
        let author = self.staff_author(by)?;
        let mut doc = self.store.load(id)?;
        let note = if reason.is_empty() {
            "停用".to_string()
        } else {
            format!("停用：{reason}")
        };
        doc.delete(&author, now_ms(), Some(&note))?;
        self.land_local(&mut doc)?;
        tracing::info!(by = %by, id = %id, "directory entry retired");
        Ok(())
    }

    /// Whether the device must read the change log again because its member moved: yes until
    /// it comes back with cursor 0 (it then reads its new scope from the start).
    pub(crate) fn rescan_due(&mut self, device_id: &str, cursor: u64) -> Result<bool> {
        let key = format!("{META_RESCAN}{device_id}");
        if self.store.server_meta(&key)?.is_none() {
            return Ok(false);
        }
        if cursor == 0 {
            self.store.set_server_meta(&key, None)?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Whether `member` may get a new device (not retired), with the Chinese refusal.
    pub(crate) fn check_not_retired(&self, member: &str) -> Result<()> {
        match self.retirement(member)? {
            Some(r) => Err(Error::Invalid(format!(
                "委员 {member} 已于 {} 退出委员名录（{}），不能再为他发放设备注册码",
                sanjin_core::time::beijing_date(r.at_ms),
                r.reason
            ))),
            None => Ok(()),
        }
    }
}

/// The edits that turn `old` into `new` (same kind): scalars set, set elements added and
/// removed.
fn diff(old: &RecordData, new: &RecordData) -> Vec<Edit> {
    let a = sanjin_core::doc::fields_json(old);
    let b = sanjin_core::doc::fields_json(new);
    let mut out = Vec::new();
    for spec in schema::fields(old.kind()) {
        let (x, y) = (
            a.get(spec.name).cloned().unwrap_or(Value::Null),
            b.get(spec.name).cloned().unwrap_or(Value::Null),
        );
        if x == y {
            continue;
        }
        match spec.kind {
            FieldKind::Set => {
                let xs: HashSet<String> = strings(&x);
                let ys: HashSet<String> = strings(&y);
                let mut adds: Vec<&String> = ys.difference(&xs).collect();
                adds.sort();
                let mut removes: Vec<&String> = xs.difference(&ys).collect();
                removes.sort();
                for r in removes {
                    out.push(Edit::Remove {
                        field: spec.name.into(),
                        key: r.clone(),
                    });
                }
                for add in adds {
                    out.push(Edit::Add {
                        field: spec.name.into(),
                        element: Value::String(add.clone()),
                    });
                }
            }
            FieldKind::KeyedSet | FieldKind::Log => {}
            _ => out.push(Edit::Set {
                field: spec.name.into(),
                value: y,
            }),
        }
    }
    out
}

fn strings(v: &Value) -> HashSet<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => HashSet::new(),
    }
}

// ------------------------------------------------------------------ Excel

/// The columns of the directory sheet (export and import): header, and the field it holds
/// (`""` for the kind, the id and the state).
pub const SHEET_COLUMNS: &[(&str, &str)] = &[
    ("类别", ""),
    ("编号", ""),
    ("名称", "name"),
    ("所属政协", "chapter"),
    ("专委会", "committee"),
    ("活动组", "group"),
    ("界别", "sector"),
    ("组长", "leader"),
    ("联系点", "contact_points"),
    ("对象类别", "target_kind"),
    ("地址", "address"),
    ("位置", "gps"),
    ("级别", "level"),
    ("上级", "parent"),
    ("状态", ""),
];

/// The sheet's name.
pub const SHEET_NAME: &str = "名录";
/// The state column's values.
pub const ACTIVE: &str = "在册";
pub const RETIRED: &str = "已退出";

/// One row of a directory sheet as typed (1-based line as Excel numbers it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SheetRow {
    pub line: usize,
    pub kind: String,
    pub id: String,
    /// (field, value) for the kind's fields found in the sheet's columns.
    pub values: Vec<(String, String)>,
    pub state: String,
}

/// Reads a directory sheet (XLSX bytes): the first sheet named [`SHEET_NAME`] or else the
/// first sheet, headers in its first row (any order; unknown headers are refused, so a typo is
/// not silently ignored), one entry per following non-empty row.
/// The chapter a directory entry belongs to (issue 13): the one a member, group, committee,
/// contact point or unit names; a chapter its own id; `None` for a city-wide unit.
pub fn entry_chapter<'a>(id: &'a str, data: &'a RecordData) -> Option<&'a str> {
    match data {
        RecordData::Member(m) => Some(&m.chapter),
        RecordData::Group(g) => Some(&g.chapter),
        RecordData::Committee(c) => Some(&c.chapter),
        RecordData::ContactPoint(c) => Some(&c.chapter),
        RecordData::Chapter(_) => Some(id),
        RecordData::Unit(u) => u.chapter.as_deref(),
        _ => None,
    }
}

pub fn parse_sheet(bytes: &[u8]) -> std::result::Result<Vec<SheetRow>, String> {
    use calamine::{Data, Reader, Xlsx};
    let mut book: Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).map_err(|_| {
            "这不是 Excel 工作簿（.xlsx）文件；请用“导出名录”得到的表格修改后再导入".to_string()
        })?;
    let names = book.sheet_names().to_vec();
    let name = names
        .iter()
        .find(|n| n.as_str() == SHEET_NAME)
        .or_else(|| names.first())
        .cloned()
        .ok_or("工作簿里没有工作表")?;
    let range = book
        .worksheet_range(&name)
        .map_err(|e| format!("读不了工作表“{name}”：{e}"))?;
    let text = |c: &Data| -> String {
        match c {
            Data::Empty => String::new(),
            Data::String(s) => s.trim().to_string(),
            Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
            other => other.to_string().trim().to_string(),
        }
    };
    let mut rows = range.rows();
    let header: Vec<String> = rows
        .next()
        .ok_or_else(|| format!("工作表“{name}”是空的"))?
        .iter()
        .map(text)
        .collect();
    let mut cols: Vec<Option<usize>> = Vec::with_capacity(header.len());
    for h in &header {
        if h.is_empty() {
            cols.push(None);
            continue;
        }
        match SHEET_COLUMNS.iter().position(|(c, _)| c == h) {
            Some(i) => cols.push(Some(i)),
            None => {
                return Err(format!(
                    "第 1 行有不认识的列“{h}”；列名应为：{}",
                    SHEET_COLUMNS
                        .iter()
                        .map(|(c, _)| *c)
                        .collect::<Vec<_>>()
                        .join("、")
                ));
            }
        }
    }
    for need in ["类别", "编号"] {
        if !header.iter().any(|h| h == need) {
            return Err(format!("第 1 行缺少“{need}”列"));
        }
    }
    let mut out = Vec::new();
    for (i, row) in rows.enumerate() {
        let cells: Vec<String> = row.iter().map(text).collect();
        if cells.iter().all(String::is_empty) {
            continue;
        }
        let mut r = SheetRow {
            line: i + 2,
            kind: String::new(),
            id: String::new(),
            values: Vec::new(),
            state: String::new(),
        };
        for (j, cell) in cells.into_iter().enumerate() {
            let Some(Some(c)) = cols.get(j) else { continue };
            let (header, field) = SHEET_COLUMNS[*c];
            match header {
                "类别" => r.kind = cell,
                "编号" => r.id = cell,
                "状态" => r.state = cell,
                _ => r.values.push((field.to_string(), cell)),
            }
        }
        out.push(r);
    }
    Ok(out)
}

/// What an import would do with one row.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRow {
    pub line: usize,
    pub id: String,
    pub kind: Option<RecordKind>,
    pub title: String,
    pub action: RowAction,
    /// Why the row cannot be saved (Chinese, naming the column); empty for a valid row.
    pub errors: Vec<String>,
    pub data: Option<RecordData>,
}

/// What a valid row does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowAction {
    Add,
    Update,
    Unchanged,
    /// A row marked retired: retiring is done in the console (devices are concerned).
    Skip,
    /// The row has errors.
    Refused,
}

impl RowAction {
    pub fn zh(self) -> &'static str {
        match self {
            RowAction::Add => "新增",
            RowAction::Update => "修改",
            RowAction::Unchanged => "无变化",
            RowAction::Skip => "跳过",
            RowAction::Refused => "有错误，不导入",
        }
    }
}

/// The existing entries an import is checked against: `known`, and each entry's current data
/// (for what changes).
pub struct Existing<'a> {
    pub known: &'a Known,
    pub data: &'a HashMap<String, RecordData>,
}

/// Checks every row of a sheet against the directory and the sheet itself (pure: no store):
/// the kind, the id (format, duplicates in the sheet, another kind's id), each field by the
/// core's schema, references (to the directory or to valid rows of the sheet), a member's
/// group not changed by import (a move is done in the console).
pub fn plan_rows(rows: &[SheetRow], existing: &Existing<'_>) -> Vec<PlannedRow> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut planned: Vec<PlannedRow> = Vec::with_capacity(rows.len());
    for r in rows {
        let mut p = PlannedRow {
            line: r.line,
            id: r.id.clone(),
            kind: RecordKind::parse(&r.kind),
            title: r
                .values
                .iter()
                .find(|(f, _)| f == "name")
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
            action: RowAction::Refused,
            errors: Vec::new(),
            data: None,
        };
        let kind = match p.kind {
            Some(k) if k.is_directory() => Some(k),
            _ => {
                p.errors.push(format!(
                    "类别：“{}”不是名录的类别；应为 {}",
                    r.kind,
                    KINDS.iter().map(|k| k.zh()).collect::<Vec<_>>().join("、")
                ));
                None
            }
        };
        if r.id.is_empty() {
            p.errors.push("编号：不能为空，请填写".into());
        } else if !sanjin_core::validate::is_id(&r.id) {
            p.errors.push(format!(
                "编号：“{}”不合格式，只能用字母、数字、- 或 _",
                r.id
            ));
        } else if let Some(first) = seen.get(&r.id) {
            p.errors.push(format!(
                "编号：“{}”与第 {first} 行重复；每个条目只能出现一次",
                r.id
            ));
        } else {
            seen.insert(r.id.clone(), r.line);
        }
        if r.state == RETIRED || r.state == "已停用" {
            if p.errors.is_empty() {
                p.action = RowAction::Skip;
            }
            planned.push(p);
            continue;
        }
        if let Some(kind) = kind {
            if let Some((k, _)) = existing.known.entries.get(&r.id)
                && *k != kind
            {
                p.errors.push(format!(
                    "编号：“{}”在名录中是{}，不是{}；请换一个编号",
                    r.id,
                    k.zh(),
                    kind.zh()
                ));
            }
            let inputs: Vec<(String, String)> = r
                .values
                .iter()
                .filter(|(f, _)| schema::field(kind, f).is_some())
                .cloned()
                .collect();
            match build_entry(kind, &inputs) {
                Ok(d) => p.data = Some(d),
                Err(es) => p.errors.extend(es.iter().map(|e| e.zh(kind))),
            }
        }
        planned.push(p);
    }
    // References: the directory plus the sheet's valid rows.
    let mut known = existing.known.clone();
    for p in &planned {
        if p.errors.is_empty()
            && let (Some(k), Some(d)) = (p.kind, &p.data)
        {
            known.entries.insert(p.id.clone(), (k, false));
            if let RecordData::Member(m) = d {
                known
                    .member_group
                    .entry(p.id.clone())
                    .or_insert_with(|| m.group.clone());
            }
        }
    }
    for p in &mut planned {
        if p.action == RowAction::Skip {
            continue;
        }
        let Some(d) = &p.data else { continue };
        if !p.errors.is_empty() {
            continue;
        }
        let existing_group = existing.known.entries.contains_key(&p.id);
        p.errors.extend(known.check(&p.id, d, existing_group));
        match existing.data.get(&p.id) {
            None => p.action = RowAction::Add,
            Some(old) => {
                if let (RecordData::Member(a), RecordData::Member(b)) = (old, d)
                    && a.group != b.group
                {
                    p.errors.push(format!(
                        "活动组：委员 {} 现属 {}，导入不能调组；请在名录中用“调整活动组”办理（会为他的手机重新签发证书）",
                        p.id, a.group
                    ));
                }
                if existing.known.entries.get(&p.id).is_some_and(|e| e.1) {
                    p.errors.push(format!(
                        "状态：{} 已退出或停用，不能再修改；如需恢复请联系管理员",
                        p.id
                    ));
                }
                p.action = if diff(old, d).is_empty() {
                    RowAction::Unchanged
                } else {
                    RowAction::Update
                };
            }
        }
        if !p.errors.is_empty() {
            p.action = RowAction::Refused;
        }
    }
    for p in &mut planned {
        if !p.errors.is_empty() {
            p.action = RowAction::Refused;
        }
    }
    planned
}

/// What an import saved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SheetImport {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub refused: usize,
    pub skipped: usize,
}

impl ServerData {
    /// Every existing entry's data, for [`plan_rows`].
    pub fn directory_data(&self) -> Result<HashMap<String, RecordData>> {
        let mut out = HashMap::new();
        for e in self.directory_entries()? {
            let (d, _) = self.directory_entry(&e.id)?;
            out.insert(e.id, d);
        }
        Ok(out)
    }

    /// The preview of importing a sheet: every row with what it would do and its errors.
    pub fn plan_sheet(&self, bytes: &[u8]) -> Result<Vec<PlannedRow>> {
        let rows = parse_sheet(bytes).map_err(Error::Invalid)?;
        let known = self.known_directory()?;
        let data = self.directory_data()?;
        Ok(plan_rows(
            &rows,
            &Existing {
                known: &known,
                data: &data,
            },
        ))
    }

    /// Imports a sheet for staff member `by`: the valid rows (checked again now), in one unit
    /// of work, referenced kinds first. Rows with errors are left out and counted.
    pub fn import_sheet(&mut self, by: &str, bytes: &[u8]) -> Result<SheetImport> {
        let plan = self.plan_sheet(bytes)?;
        let mut out = SheetImport::default();
        let mut order: Vec<&PlannedRow> = plan.iter().collect();
        order.sort_by_key(|p| {
            p.kind
                .and_then(|k| KINDS.iter().position(|x| *x == k))
                .unwrap_or(usize::MAX)
        });
        self.atomically(|d| -> Result<()> {
            for p in order {
                match (p.action, &p.data) {
                    (RowAction::Add, Some(data)) => {
                        d.create_entry(by, &p.id, data)?;
                        out.added += 1;
                    }
                    (RowAction::Update, Some(data)) => {
                        d.edit_entry(by, &p.id, data)?;
                        out.updated += 1;
                    }
                    (RowAction::Unchanged, _) => out.unchanged += 1,
                    (RowAction::Skip, _) => out.skipped += 1,
                    _ => out.refused += 1,
                }
            }
            Ok(())
        })?;
        tracing::info!(by = %by, added = out.added, updated = out.updated, refused = out.refused, "directory sheet imported");
        Ok(out)
    }

    /// The directory as an XLSX workbook in the import's columns, retired entries marked.
    pub fn export_sheet(&self) -> Result<Vec<u8>> {
        let entries = self.directory_entries()?;
        let mut rows = Vec::with_capacity(entries.len());
        for e in &entries {
            let (data, retired) = self.directory_entry(&e.id)?;
            rows.push((e.kind, e.id.clone(), entry_inputs(&data), retired));
        }
        write_sheet(&rows).map_err(Error::Invalid)
    }
}

/// One entry as the sheet shows it: kind, id, typed values (field, text), retired.
pub type SheetEntry = (RecordKind, String, Vec<(String, String)>, bool);

/// Writes directory rows as a workbook.
pub fn write_sheet(rows: &[SheetEntry]) -> std::result::Result<Vec<u8>, String> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let sheet = book.add_worksheet();
    sheet
        .set_name(SHEET_NAME)
        .map_err(|e| format!("工作表：{e}"))?;
    let e = |e: rust_xlsxwriter::XlsxError| format!("写表格出错：{e}");
    for (c, (h, _)) in SHEET_COLUMNS.iter().enumerate() {
        sheet
            .write_string_with_format(0, c as u16, *h, &bold)
            .map_err(e)?;
        sheet
            .set_column_width(c as u16, if c == 8 { 30 } else { 14 })
            .map_err(e)?;
    }
    for (i, (kind, id, values, retired)) in rows.iter().enumerate() {
        let r = (i + 1) as u32;
        for (c, (h, field)) in SHEET_COLUMNS.iter().enumerate() {
            let v = match *h {
                "类别" => kind.zh().to_string(),
                "编号" => id.clone(),
                "状态" => (if *retired { RETIRED } else { ACTIVE }).to_string(),
                _ => values
                    .iter()
                    .find(|(f, _)| f == field)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default(),
            };
            if !v.is_empty() {
                sheet.write_string(r, c as u16, &v).map_err(e)?;
            }
        }
    }
    sheet.set_freeze_panes(1, 2).map_err(e)?;
    book.save_to_buffer().map_err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: usize, kind: &str, id: &str, values: &[(&str, &str)]) -> SheetRow {
        SheetRow {
            line,
            kind: kind.into(),
            id: id.into(),
            values: values
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            state: String::new(),
        }
    }

    fn known() -> Known {
        let mut k = Known::default();
        k.entries
            .insert("chapter-city".into(), (RecordKind::Chapter, false));
        k.entries
            .insert("group-01".into(), (RecordKind::Group, false));
        k.entries
            .insert("group-09".into(), (RecordKind::Group, true));
        k.entries.insert("m-1".into(), (RecordKind::Member, false));
        k.member_group.insert("m-1".into(), "group-01".into());
        k
    }

    #[test]
    fn issue13_sheet_round_trips_through_xlsx() {
        let rows = vec![
            (
                RecordKind::Unit,
                "unit-001".to_string(),
                vec![
                    ("name".to_string(), "市城市管理局".to_string()),
                    ("chapter".to_string(), "chapter-city".to_string()),
                ],
                false,
            ),
            (
                RecordKind::Member,
                "m-1".to_string(),
                vec![
                    ("name".to_string(), "张三".to_string()),
                    ("group".to_string(), "group-01".to_string()),
                ],
                true,
            ),
        ];
        let bytes = write_sheet(&rows).unwrap();
        let parsed = parse_sheet(&bytes).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].line, 2);
        assert_eq!(parsed[0].kind, "承办单位");
        assert_eq!(parsed[0].id, "unit-001");
        assert!(
            parsed[0]
                .values
                .contains(&("name".to_string(), "市城市管理局".to_string()))
        );
        assert_eq!(parsed[0].state, ACTIVE);
        assert_eq!(parsed[1].state, RETIRED);
    }

    #[test]
    fn issue13_sheet_refuses_unknown_columns_and_garbage() {
        assert!(parse_sheet(b"not a workbook").unwrap_err().contains("xlsx"));
        let mut book = rust_xlsxwriter::Workbook::new();
        let s = book.add_worksheet();
        s.write_string(0, 0, "类别").unwrap();
        s.write_string(0, 1, "编号").unwrap();
        s.write_string(0, 2, "电话").unwrap();
        let bytes = book.save_to_buffer().unwrap();
        let e = parse_sheet(&bytes).unwrap_err();
        assert!(e.contains("不认识的列“电话”"), "{e}");
    }

    #[test]
    fn issue13_rows_are_checked_one_by_one() {
        let k = known();
        let mut old = HashMap::new();
        old.insert(
            "m-1".to_string(),
            build_entry(
                RecordKind::Member,
                &[
                    ("name".into(), "张三".into()),
                    ("chapter".into(), "chapter-city".into()),
                    ("group".into(), "group-01".into()),
                ],
            )
            .unwrap(),
        );
        let rows = vec![
            // A valid new unit.
            row(
                2,
                "承办单位",
                "unit-001",
                &[("name", "市城市管理局"), ("chapter", "chapter-city")],
            ),
            // A member of a group the directory does not have.
            row(
                3,
                "委员",
                "m-2",
                &[
                    ("name", "李四"),
                    ("chapter", "chapter-city"),
                    ("group", "group-77"),
                ],
            ),
            // The same id twice.
            row(4, "承办单位", "unit-001", &[("name", "重复的单位")]),
            // A kind that is not the directory's.
            row(5, "活动记录", "v-1", &[("name", "x")]),
            // A required field empty.
            row(
                6,
                "联系点",
                "cp-9",
                &[("chapter", "chapter-city"), ("target_kind", "community")],
            ),
            // A member of a group defined further down the sheet.
            row(
                7,
                "委员",
                "m-3",
                &[
                    ("name", "王五"),
                    ("chapter", "chapter-city"),
                    ("group", "group-02"),
                ],
            ),
            row(
                8,
                "委员活动组",
                "group-02",
                &[
                    ("name", "第二组"),
                    ("chapter", "chapter-city"),
                    ("leader", "m-3"),
                ],
            ),
            // An existing member renamed: an update; and one moved by the sheet: refused.
            row(
                9,
                "委员",
                "m-1",
                &[
                    ("name", "张三丰"),
                    ("chapter", "chapter-city"),
                    ("group", "group-01"),
                ],
            ),
            // A retired group chosen.
            row(
                10,
                "委员",
                "m-4",
                &[
                    ("name", "赵六"),
                    ("chapter", "chapter-city"),
                    ("group", "group-09"),
                ],
            ),
        ];
        let plan = plan_rows(
            &rows,
            &Existing {
                known: &k,
                data: &old,
            },
        );
        let by_line = |l: usize| plan.iter().find(|p| p.line == l).unwrap();
        assert_eq!(by_line(2).action, RowAction::Add, "{:?}", by_line(2).errors);
        assert_eq!(by_line(3).action, RowAction::Refused);
        assert!(
            by_line(3).errors[0].contains("没有编号为“group-77”的委员活动组"),
            "{:?}",
            by_line(3).errors
        );
        assert!(
            by_line(4)
                .errors
                .iter()
                .any(|e| e.contains("与第 2 行重复"))
        );
        assert!(
            by_line(5)
                .errors
                .iter()
                .any(|e| e.contains("不是名录的类别"))
        );
        assert!(
            by_line(6).errors.iter().any(|e| e.contains("名称")),
            "{:?}",
            by_line(6).errors
        );
        assert_eq!(by_line(7).action, RowAction::Add, "{:?}", by_line(7).errors);
        assert_eq!(by_line(8).action, RowAction::Add, "{:?}", by_line(8).errors);
        assert_eq!(
            by_line(9).action,
            RowAction::Update,
            "{:?}",
            by_line(9).errors
        );
        assert!(
            by_line(10).errors.iter().any(|e| e.contains("已停用")),
            "{:?}",
            by_line(10).errors
        );
        let moved = plan_rows(
            &[row(
                2,
                "委员",
                "m-1",
                &[
                    ("name", "张三"),
                    ("chapter", "chapter-city"),
                    ("group", "group-02"),
                ],
            )],
            &Existing {
                known: &{
                    let mut k = known();
                    k.entries
                        .insert("group-02".into(), (RecordKind::Group, false));
                    k
                },
                data: &old,
            },
        );
        assert!(
            moved[0].errors.iter().any(|e| e.contains("导入不能调组")),
            "{:?}",
            moved[0].errors
        );
    }

    #[test]
    fn issue13_membership_lands_what_was_made_before_a_move_or_retirement() {
        use policy::Writer;
        let m = Membership {
            account: Account::new("m-1", Role::Member, Some("group-02"), "张三"),
            former: vec![FormerGroup {
                group: "group-01".into(),
                until_ms: 1_000,
            }],
            retired_at: None,
        };
        let v = RecordKind::Visit;
        assert!(m.may_write_at(v, Some("group-01"), 999));
        assert!(m.may_write_at(v, Some("group-01"), 1_000));
        assert!(!m.may_write_at(v, Some("group-01"), 1_001));
        assert!(m.may_write_at(v, Some("group-02"), 5_000));
        assert!(!m.may_write(v, Some("group-01")));
        assert!(m.may_have_written(v, Some("group-01")));
        assert!(!m.may_have_written(v, Some("group-03")));
        assert!(!m.may_have_written(RecordKind::Member, None));
        let retired = Membership {
            retired_at: Some(3_000),
            ..m
        };
        assert!(retired.may_write_at(v, Some("group-02"), 2_999));
        assert!(!retired.may_write_at(v, Some("group-02"), 3_001));
        assert!(!retired.may_write(v, Some("group-02")));
        assert_eq!(retired.retired_at(), Some(3_000));
    }
}
