//! The server's data folder: its storage (`sanjin.sqlite`, a
//! [`sanjin_store::server::SqliteServerStorage`] — or any other [`ServerStorage`], such as the
//! in-memory one in tests) and `blobs/`.
//!
//! [`ServerData`] holds the storage (the one writer). It never runs SQL: every read and write
//! is a typed call on the storage, and several writes that belong together run in one unit of
//! work ([`ServerData::atomically`]). Everything here is blocking; the HTTP layer keeps it
//! behind a mutex and calls it from `spawn_blocking`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use automerge::AutoCommit;
use sanjin_core::domain::{Chapter, Committee, ContactPoint, Member, RecordData, RecordKind};
use sanjin_core::import::{self, ImportRecord, ImportSet};
use sanjin_core::{ChangeHash, IndexEntry, RecordDoc, same_heads};
use sanjin_store::now_ms;
use sanjin_store::server::{NewDevice, NewLogEntry, ServerStorage, StoredAccount, atomically};

pub(crate) use sanjin_sync::server::scope_of;

use crate::error::{AppError, Error, Result};
use crate::model::{
    Account, Caller, DeviceInfo, EnrollRequest, Enrollment, ImportReport, IssuedCode, Limits, Role,
};

/// The server tables' schema version this build writes.
pub const SERVER_SCHEMA_VERSION: i64 = sanjin_store::server::SERVER_SCHEMA_VERSION;
/// The database file in the data folder.
pub const DB_FILE: &str = "sanjin.sqlite";
/// The folder of photo blobs in the data folder.
pub const BLOBS_DIR: &str = "blobs";
/// The member and device id of the server's own store.
pub const SERVER_ID: &str = "server";

/// The Crockford base32 alphabet (no I, L, O, U): what enrollment codes are written in.
const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CODE_LEN: usize = 10;

/// How many automerge documents are kept in memory between requests.
const DOC_CACHE: usize = 4096;

/// The server's data: its storage, its epoch and its limits.
pub struct ServerData {
    pub(crate) store: Box<dyn ServerStorage>,
    pub(crate) dir: PathBuf,
    pub(crate) epoch: [u8; 16],
    pub(crate) limits: Limits,
    /// Recently used documents (with the heads they were stored at): loading a document kept as
    /// a snapshot plus incremental chunks costs far more than checking its heads.
    pub(crate) cache: HashMap<String, (Vec<u8>, AutoCommit)>,
    /// The server's signing key and certificate (issue 10).
    pub(crate) key: crate::key::ServerKey,
    /// The directory facts accounts' rights depend on (issue 13), with the change-log position
    /// of the last directory entry they were read at ([`ServerData::directory_facts`]).
    pub(crate) facts: std::sync::Mutex<Option<(u64, std::sync::Arc<DirectoryFacts>)>>,
}

/// What the directory says about who reads what (issue 13): each group's chapter, and the
/// legal advisory group. Read from the group records; cached until a directory record changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryFacts {
    /// Group id → its chapter, tombstoned groups left out.
    pub group_chapter: std::collections::BTreeMap<String, String>,
    pub legal_group: Option<String>,
}

impl DirectoryFacts {
    /// The groups of `chapter`, by id.
    pub fn groups_of(&self, chapter: &str) -> Vec<String> {
        self.group_chapter
            .iter()
            .filter(|(_, c)| *c == chapter)
            .map(|(g, _)| g.clone())
            .collect()
    }
}

pub(crate) use crate::key::random;

pub(crate) fn sha256(parts: &[&[u8]]) -> Vec<u8> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    ctx.finish().as_ref().to_vec()
}

/// Equal without an early exit.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) use sanjin_store::heads_to_bytes;

fn kind_of(e: &IndexEntry) -> RecordKind {
    RecordKind::parse(&e.kind).expect("index entries carry a known kind")
}

/// An enrollment code without dashes, spaces or case; O reads as 0, I and L as 1.
fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\t'))
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect()
}

fn code_hash(normalized: &str) -> Vec<u8> {
    sha256(&[b"sanjin-enroll:", normalized.as_bytes()])
}

/// An account as the server stores it, before its scope is resolved
/// ([`ServerData::resolve`]).
pub(crate) fn account_of(a: StoredAccount) -> Account {
    Account {
        role: Role::parse(&a.role).unwrap_or(Role::Member),
        member: a.member,
        group: a.group,
        name: a.name,
        chapter: a.chapter,
        scope: Default::default(),
    }
}

/// A change-log entry of a document in `scope` (see [`entry_scope`]) also read by `also` (see
/// [`ServerData::entry_also`]), pushed by `origin` (`None`: the server), at `heads` after
/// `bytes`, now.
pub(crate) fn log_entry<'a>(
    scope: Option<&'a str>,
    also: Option<&'a str>,
    origin: Option<&'a str>,
    bytes: &'a [u8],
    heads: &'a [ChangeHash],
) -> NewLogEntry<'a> {
    NewLogEntry {
        scope,
        also,
        origin,
        bytes,
        heads,
        at: now_ms(),
    }
}

/// The read scope of a record's index row (see [`scope_of`]).
pub(crate) fn entry_scope(entry: &IndexEntry) -> Option<String> {
    scope_of(kind_of(entry), entry.group.as_deref())
}

/// The device id and secret of an `Authorization: Bearer <device_id>.<secret>` header value.
pub(crate) fn parse_bearer(authorization: Option<&str>) -> Result<(&str, Vec<u8>), AppError> {
    let unauthorized = |m: &str| AppError::Unauthorized(m.into());
    let value = authorization.ok_or_else(|| unauthorized("missing credentials"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| unauthorized("expected `Authorization: Bearer <device_id>.<secret>`"))?
        .trim();
    let (device_id, secret) = token
        .split_once('.')
        .ok_or_else(|| unauthorized("expected `Bearer <device_id>.<secret>`"))?;
    let secret = hex::decode(secret).map_err(|_| unauthorized("wrong credentials"))?;
    if device_id.len() > 256 {
        return Err(unauthorized("wrong credentials"));
    }
    Ok((device_id, secret))
}

impl ServerData {
    /// Runs `f` as one unit of work on the storage: a transaction (one disk sync at its end),
    /// or a savepoint of the enclosing unit; undone if `f` fails. The only way the server opens
    /// a transaction.
    pub(crate) fn atomically<T, E: From<sanjin_store::Error>>(
        &mut self,
        f: impl FnOnce(&mut ServerData) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        atomically(self, |d| d.store.as_mut(), f)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn epoch(&self) -> [u8; 16] {
        self.epoch
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The server's storage (read access, for the console, ledgers and tests).
    pub fn store(&self) -> &dyn ServerStorage {
        self.store.as_ref()
    }

    /// The highest change-log sequence number (0 when the log is empty).
    pub fn max_seq(&self) -> Result<u64> {
        Ok(self.store.max_seq()?)
    }

    // ------------------------------------------------------------ accounts

    /// An account, its scope resolved from the directory ([`ServerData::resolve`]).
    pub fn account(&self, member: &str) -> Result<Option<Account>> {
        match self.store.account(member)? {
            Some(a) => Ok(Some(self.resolve(account_of(a))?)),
            None => Ok(None),
        }
    }

    /// Fills in what the directory says about an account's reach (issue 13): the groups of a
    /// county staff member's chapter, the legal advisory group.
    pub fn resolve(&self, mut account: Account) -> Result<Account> {
        let facts = self.directory_facts()?;
        account.scope.legal_group = facts.legal_group.clone();
        account.scope.chapter_groups = match account.county() {
            Some(c) => facts.groups_of(c),
            None => Vec::new(),
        };
        Ok(account)
    }

    /// Each group's chapter and the legal advisory group, from the group records. Cached: read
    /// again only when a directory record was logged since (the change log's last directory
    /// entry, one indexed lookup), whoever wrote it (this process, the admin command line).
    pub fn directory_facts(&self) -> Result<std::sync::Arc<DirectoryFacts>> {
        let at = self.store.directory_seq()?;
        let mut cached = self.facts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seq, facts)) = cached.as_ref()
            && *seq == at
        {
            return Ok(facts.clone());
        }
        let mut groups = Vec::new();
        for e in self.store.list(&sanjin_store::Filter {
            kind: Some(RecordKind::Group),
            ..sanjin_store::Filter::default()
        })? {
            // A damaged group record gives its group no chapter: county staff do not see it.
            if let Ok(RecordData::Group(g)) = self.store.load(&e.id).and_then(|d| Ok(d.data()?)) {
                groups.push((e.id, g));
            }
        }
        let facts = std::sync::Arc::new(DirectoryFacts {
            legal_group: sanjin_core::rules::legal_group(
                groups.iter().map(|(id, g)| (id.as_str(), g)),
            )
            .map(str::to_string),
            group_chapter: groups.into_iter().map(|(id, g)| (id, g.chapter)).collect(),
        });
        *cached = Some((at, facts.clone()));
        Ok(facts)
    }

    /// The group that reads a record besides its own (issue 13): the legal advisory group for
    /// a legal appeal of another group (`sanjin_core::rules::also_read_by`).
    pub(crate) fn entry_also(&self, entry: &IndexEntry) -> Result<Option<String>> {
        let facts = self.directory_facts()?;
        Ok(sanjin_core::rules::also_read_by(
            kind_of(entry),
            entry.group.as_deref(),
            entry.type_code.as_deref(),
            facts.legal_group.as_deref(),
        )
        .map(str::to_string))
    }

    pub fn accounts(&self) -> Result<Vec<Account>> {
        Ok(self.store.accounts()?.into_iter().map(account_of).collect())
    }

    /// Creates or replaces an account.
    pub fn put_account(&mut self, account: &Account) -> Result<bool> {
        if !sanjin_core::validate::is_id(&account.member) {
            return Err(Error::Invalid(format!(
                "invalid member id `{}`: use letters, digits, `-` or `_`",
                account.member
            )));
        }
        let existed = self.account(&account.member)?.is_some();
        self.store.put_account(
            &StoredAccount {
                member: account.member.clone(),
                role: account.role.code().into(),
                group: account.group.clone(),
                name: account.name.clone(),
                chapter: account.chapter.clone(),
            },
            now_ms(),
        )?;
        Ok(!existed)
    }

    /// Whether `member` leads `group`: an account with role leader in that group, or the group
    /// record's `leader`.
    pub fn is_leader_of(&self, member: &str, group: &str) -> Result<bool> {
        if let Some(a) = self.account(member)?
            && a.role == Role::Leader
            && a.group.as_deref() == Some(group)
        {
            return Ok(true);
        }
        // The group record's leader, as its index row lists it.
        Ok(match self.store.index_entry(group)? {
            Some(e) if e.kind == RecordKind::Group.code() => e.members.iter().any(|m| m == member),
            _ => false,
        })
    }

    // ------------------------------------------------------------ directory

    /// Lands a record made on the server (an import, an admin command): merged into what the
    /// server has, with a change-log entry, in one transaction. Returns whether it was new and
    /// whether anything changed.
    pub(crate) fn land_local(&mut self, doc: &mut RecordDoc) -> Result<(bool, bool)> {
        let id = doc.id().to_string();
        match self.store.load(&id) {
            Err(sanjin_store::Error::NotFound(_)) => {
                // Logged as raw changes (a pull names each of them for its signature).
                let bytes = doc.save_after(&[]);
                let heads = doc.heads();
                let sig = self.own_sig(crate::key::change_hashes(&bytes));
                let mut new = RecordDoc::load(&bytes)?;
                let entry = IndexEntry::of(&new.view()?);
                let scope = entry_scope(&entry);
                let also = self.entry_also(&entry)?;
                let log = log_entry(scope.as_deref(), also.as_deref(), None, &bytes, &heads);
                self.store
                    .write_doc(&mut new, None, &entry, Some(log), sig.as_ref())?;
                Ok((true, true))
            }
            Err(e) => Err(e.into()),
            Ok(mut ours) => {
                let before = ours.heads();
                ours.merge(doc)?;
                let heads = ours.heads();
                if same_heads(&heads, &before) {
                    return Ok((false, false));
                }
                let entry = IndexEntry::of(&ours.view()?);
                let scope = entry_scope(&entry);
                let also = self.entry_also(&entry)?;
                // A record that gained a second reader (an opinion that became a legal appeal)
                // or moved to another scope is logged whole: its new readers have none of it.
                let old = self.store.index_entry(&id)?;
                let moved = match &old {
                    Some(o) => entry_scope(o) != scope || self.entry_also(o)? != also,
                    None => true,
                };
                // The server signs only the changes it adds, whatever the entry carries.
                let new = ours.save_after(&before);
                let sig = self.own_sig(crate::key::change_hashes(&new));
                let delta = if moved { ours.save_after(&[]) } else { new };
                let log = log_entry(scope.as_deref(), also.as_deref(), None, &delta, &heads);
                self.store
                    .write_doc(&mut ours, Some(&before), &entry, Some(log), sig.as_ref())?;
                Ok((false, true))
            }
        }
    }

    /// Imports the directory (chapters, committees, groups, contact points, members) and makes
    /// an account per member: `leader` for each group's leader, `member` otherwise. `path` is a
    /// fixtures folder (with `manifest.json` or a `directory.jsonl`) or a JSON-lines file.
    /// Records are the fixtures' deterministic documents, so a device that imported the same
    /// file holds byte-identical ones. Staff and admin accounts keep their role.
    pub fn import_directory(&mut self, path: &Path) -> Result<ImportReport> {
        let read = |p: &Path| std::fs::read_to_string(p);
        let records: Vec<ImportRecord> = if path.is_dir() {
            if path.join(import::MANIFEST_FILE).exists() {
                ImportSet::load(path, read)?.directory
            } else {
                import::read_jsonl(&path.join(import::DIRECTORY_FILE), read)?
            }
        } else {
            import::read_jsonl(path, read)?
        };
        let records: Vec<ImportRecord> = records
            .into_iter()
            .filter(|r| r.data.kind().is_directory())
            .collect();
        if records.is_empty() {
            return Err(Error::Invalid(format!(
                "{} holds no directory records",
                path.display()
            )));
        }
        let mut report = ImportReport::default();
        for r in &records {
            let mut doc = r.to_doc()?;
            match self.land_local(&mut doc)? {
                (true, _) => report.added += 1,
                (false, true) => report.updated += 1,
                (false, false) => report.unchanged += 1,
            }
        }
        // Each group's leader as its record stands after the import (issue 13: staff may have
        // named another since the file was written).
        let mut leaders: std::collections::HashMap<String, String> = HashMap::new();
        for r in &records {
            if let RecordData::Group(_) = r.data
                && let Ok((RecordData::Group(g), false)) = self.directory_entry(&r.id)
            {
                leaders.insert(g.leader, r.id.clone());
            }
        }
        for r in &records {
            if !matches!(r.data, RecordData::Member(_)) {
                continue;
            }
            // Issue 13: the record as it stands after the import (staff may have moved the
            // member since the file was written), and no account for a retired member.
            let m = match self.directory_entry(&r.id) {
                Ok((RecordData::Member(m), false)) => m,
                _ => continue,
            };
            let existing = self.account(&r.id)?;
            if existing
                .as_ref()
                .is_some_and(|a| matches!(a.role, Role::Staff | Role::Admin))
            {
                continue;
            }
            let role = if leaders.get(&r.id) == Some(&m.group) {
                Role::Leader
            } else {
                Role::Member
            };
            let account = Account {
                member: r.id.clone(),
                role,
                group: Some(m.group.clone()),
                name: m.name.clone(),
                chapter: None,
                scope: existing
                    .as_ref()
                    .map(|a| a.scope.clone())
                    .unwrap_or_default(),
            };
            if existing.as_ref() == Some(&account) {
                continue;
            }
            if self.put_account(&account)? {
                report.accounts_created += 1;
            } else {
                report.accounts_updated += 1;
            }
            if role == Role::Leader {
                report.leaders += 1;
            }
        }
        Ok(report)
    }

    /// Creates one directory record (chapter, committee, group, contact point, unit) authored by the
    /// server. Refuses an id that exists. For members use [`ServerData::add_member`].
    pub fn add_record(&mut self, id: &str, data: &RecordData) -> Result<()> {
        let kind = data.kind();
        if !kind.is_directory() {
            return Err(Error::Invalid(format!(
                "{} records are recorded on devices, not created by an admin",
                kind.code()
            )));
        }
        if self.store.exists(id)? {
            return Err(Error::Exists(id.into()));
        }
        match data {
            RecordData::Member(m) => self.check_group(&m.group)?,
            RecordData::Group(g) => {
                self.check_exists(&g.chapter, RecordKind::Chapter)?;
                if let Some(c) = &g.committee {
                    self.check_exists(c, RecordKind::Committee)?;
                }
                for cp in &g.contact_points {
                    self.check_exists(cp, RecordKind::ContactPoint)?;
                }
            }
            RecordData::Committee(Committee { chapter, .. })
            | RecordData::ContactPoint(ContactPoint { chapter, .. }) => {
                self.check_exists(chapter, RecordKind::Chapter)?
            }
            RecordData::Chapter(Chapter {
                parent: Some(parent),
                ..
            }) => self.check_exists(parent, RecordKind::Chapter)?,
            // Issue 13: a unit opinions are forwarded to.
            RecordData::Unit(sanjin_core::domain::Unit {
                chapter: Some(chapter),
                ..
            }) => self.check_exists(chapter, RecordKind::Chapter)?,
            _ => {}
        }
        let author = self.store.author();
        let mut doc = RecordDoc::create(id, data, &author, now_ms())?;
        self.land_local(&mut doc)?;
        if let RecordData::Group(g) = data
            && let Some(mut a) = self.account(&g.leader)?
            && a.role == Role::Member
            && a.group.as_deref() == Some(id)
        {
            a.role = Role::Leader;
            self.put_account(&a)?;
        }
        Ok(())
    }

    fn check_exists(&self, id: &str, kind: RecordKind) -> Result<()> {
        match self.store.index_entry(id)? {
            Some(e) if e.kind == kind.code() => Ok(()),
            _ => Err(Error::UnknownRecord(format!("{} {id}", kind.code()))),
        }
    }

    fn check_group(&self, group: &str) -> Result<()> {
        self.check_exists(group, RecordKind::Group)
    }

    /// Creates a member: the member record and an account (`leader` when `leader` is set or the
    /// group record names the member its leader).
    pub fn add_member(&mut self, id: &str, member: &Member, leader: bool) -> Result<Account> {
        if self.account(id)?.is_some() {
            return Err(Error::Exists(id.into()));
        }
        self.add_record(id, &RecordData::Member(member.clone()))?;
        let role = if leader || self.is_leader_of(id, &member.group)? {
            Role::Leader
        } else {
            Role::Member
        };
        let account = Account::new(id, role, Some(&member.group), &member.name);
        self.put_account(&account)?;
        Ok(account)
    }

    /// Creates a staff or admin account (no member record, no group).
    pub fn add_staff(&mut self, id: &str, name: &str, role: Role) -> Result<Account> {
        if !matches!(role, Role::Staff | Role::Admin) {
            return Err(Error::Invalid(
                "add_staff makes staff or admin accounts; members come with add_member".into(),
            ));
        }
        if self.account(id)?.is_some() {
            return Err(Error::Exists(id.into()));
        }
        let account = Account::new(id, role, None, name);
        self.put_account(&account)?;
        Ok(account)
    }

    /// Creates an account of staff of the county chapter `chapter` (issue 13): the account and
    /// its chapter together, or neither.
    pub fn add_county_staff(&mut self, id: &str, name: &str, chapter: &str) -> Result<Account> {
        self.atomically(|d| {
            d.add_staff(id, name, Role::Staff)?;
            d.set_chapter(id, Some(chapter))
        })
    }

    /// Makes a staff account staff of a county chapter (`Some`), who read and write only its
    /// records and directory entries, or city staff again (`None`) (issue 13).
    pub fn set_chapter(&mut self, member: &str, chapter: Option<&str>) -> Result<Account> {
        let mut a = self
            .account(member)?
            .ok_or_else(|| Error::UnknownAccount(member.into()))?;
        if a.role != Role::Staff {
            return Err(Error::Invalid(format!(
                "账户 {member} 是{}，不是机关工作人员：只有机关工作人员账户可以属于县市区政协",
                a.role.zh()
            )));
        }
        if let Some(c) = chapter {
            self.check_exists(c, RecordKind::Chapter)?;
            if let Ok(RecordData::Chapter(ch)) = self.store.load(c).and_then(|d| Ok(d.data()?))
                && ch.level == sanjin_core::domain::ChapterLevel::City
            {
                return Err(Error::Invalid(format!(
                    "{c}（{}）是市政协：市政协的工作人员可以查看各政协组织的记录，不要指定 --chapter",
                    ch.name
                )));
            }
        }
        a.chapter = chapter.map(str::to_string);
        self.put_account(&a)?;
        self.resolve(a)
    }

    /// Sets an account's role (e.g. makes a member the leader of its group).
    pub fn set_role(&mut self, member: &str, role: Role) -> Result<Account> {
        let mut a = self
            .account(member)?
            .ok_or_else(|| Error::UnknownAccount(member.into()))?;
        if matches!(role, Role::Member | Role::Leader) && a.group.is_none() {
            return Err(Error::Invalid(format!(
                "{member} belongs to no activity group, so cannot be a {}",
                role.code()
            )));
        }
        a.role = role;
        self.put_account(&a)?;
        Ok(a)
    }

    // ------------------------------------------------------------ devices

    /// Issues a one-time enrollment code for `member`, valid for the configured time.
    pub fn issue_code(&mut self, member: &str) -> Result<IssuedCode> {
        if self.account(member)?.is_none() {
            return Err(Error::UnknownAccount(member.into()));
        }
        // Issue 13: a retired member gets no new device.
        self.check_not_retired(member)?;
        let raw: String = random::<CODE_LEN>()
            .iter()
            .map(|b| CODE_ALPHABET[(*b & 31) as usize] as char)
            .collect();
        let now = now_ms();
        let expires_at_ms = now + self.limits.code_ttl_ms;
        self.store
            .insert_code(&code_hash(&raw), member, now, expires_at_ms)?;
        let code = format!("{}-{}-{}", &raw[..4], &raw[4..8], &raw[8..]);
        Ok(IssuedCode {
            code,
            member: member.into(),
            expires_at_ms,
        })
    }

    pub fn devices(&self) -> Result<Vec<DeviceInfo>> {
        Ok(self
            .store
            .devices()?
            .into_iter()
            .map(|d| DeviceInfo {
                device_id: d.device_id,
                member: d.member,
                name: d.name,
                actor: d.actor,
                enrolled_at_ms: d.enrolled_at,
                revoked_at_ms: d.revoked_at,
                last_sync_at_ms: d.last_sync_at,
            })
            .collect())
    }

    /// Revokes a device: every request it makes is refused from now on, and changes signed by
    /// its actor are no longer accepted from anyone. Returns the device (with the time it was
    /// revoked, which is the earlier time if it was revoked already).
    ///
    /// Issue 12: a first revocation also bumps the signed revocation list's `seq` and starts a
    /// new epoch of the box keys of the groups whose secrets the device held (its group's, or
    /// every group's for an office device), in the same unit of work.
    pub fn revoke(&mut self, device_id: &str) -> Result<DeviceInfo> {
        self.atomically(|d| -> Result<()> {
            let was = d
                .store
                .devices()?
                .into_iter()
                .find(|x| x.device_id == device_id)
                .ok_or_else(|| Error::UnknownDevice(device_id.into()))?;
            if !d.store.revoke_device(device_id, now_ms())? {
                return Err(Error::UnknownDevice(device_id.into()));
            }
            if was.revoked_at.is_none() {
                let account = d.account(&was.member)?;
                d.after_revocation(account.as_ref())?;
            }
            Ok(())
        })?;
        self.devices()?
            .into_iter()
            .find(|d| d.device_id == device_id)
            .ok_or_else(|| Error::UnknownDevice(device_id.into()))
    }

    /// Enrolls a device with a one-time code.
    pub fn enroll(&mut self, req: &EnrollRequest) -> Result<Enrollment, AppError> {
        let normalized = normalize_code(&req.code);
        if normalized.is_empty() || normalized.len() > 64 {
            return Err(AppError::Unauthorized("unknown enrollment code".into()));
        }
        let row = self.store.code(&code_hash(&normalized))?;
        let Some(sanjin_store::server::StoredCode {
            member,
            expires_at,
            used_at,
        }) = row
        else {
            return Err(AppError::Unauthorized("unknown enrollment code".into()));
        };
        if used_at.is_some() {
            return Err(AppError::CodeUsed(
                "this enrollment code has been used; ask an admin for a new one".into(),
            ));
        }
        let now = now_ms();
        if expires_at < now {
            return Err(AppError::Unauthorized(
                "this enrollment code has expired; ask an admin for a new one".into(),
            ));
        }
        if let Some(m) = &req.member
            && *m != member
        {
            return Err(AppError::Forbidden(format!(
                "this enrollment code is not for member {m}"
            )));
        }
        let account = self
            .account(&member)?
            .ok_or_else(|| AppError::Internal(format!("code for unknown account {member}")))?;
        // Issue 13: a code issued before the member retired enrolls nothing.
        if let Some(m) = self.retired_message(&member)? {
            return Err(AppError::Retired(m));
        }
        let device_id = match &req.device_id {
            Some(d) if sanjin_core::validate::is_id(d) => d.clone(),
            Some(d) => {
                return Err(AppError::BadMessage(format!(
                    "invalid device id `{d}`: use letters, digits, `-` or `_`, at most 64"
                )));
            }
            None => uuid::Builder::from_random_bytes(random::<16>())
                .into_uuid()
                .to_string(),
        };
        let actor = match &req.actor {
            Some(a) => {
                let bytes = hex::decode(a)
                    .map_err(|_| AppError::BadMessage(format!("actor `{a}` is not hexadecimal")))?;
                if bytes.len() != 16 {
                    return Err(AppError::BadMessage(format!(
                        "actor must be 16 bytes, not {}",
                        bytes.len()
                    )));
                }
                hex::encode(bytes)
            }
            None => hex::encode(random::<16>()),
        };
        if actor == hex::encode(self.store.identity().actor.as_slice())
            || actor == hex::encode(import::IMPORT_ACTOR)
        {
            return Err(AppError::Conflict {
                code: "actor_in_use",
                message: "this actor id is reserved; use another".into(),
            });
        }
        let name = req.device_name.trim();
        if name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(AppError::BadMessage(
                "device_name must be at most 200 characters, without control characters".into(),
            ));
        }
        let public_key = match &req.public_key {
            Some(k) => Some(crate::key::parse_public_key(k)?),
            None => None,
        };
        let secret = random::<32>();
        let secret_hash = sha256(&[&secret]);
        self.atomically(|d| -> Result<(), AppError> {
            if d.store.device_exists(&device_id)? {
                return Err(AppError::Conflict {
                    code: "device_exists",
                    message: format!("device {device_id} is enrolled already"),
                });
            }
            if d.store.actor_in_use(&actor)? {
                return Err(AppError::Conflict {
                    code: "actor_in_use",
                    message: "this actor id belongs to another device".into(),
                });
            }
            d.store.insert_device(&NewDevice {
                device_id: &device_id,
                member: &member,
                secret_hash: &secret_hash,
                actor: &actor,
                name,
                enrolled_at: now,
            })?;
            if !d.store.use_code(&code_hash(&normalized), now, &device_id)? {
                return Err(AppError::CodeUsed(
                    "this enrollment code has been used; ask an admin for a new one".into(),
                ));
            }
            Ok(())
        })?;
        let cert = match public_key {
            Some(k) => {
                let cert = self.atomically(|d| d.issue_cert(&device_id, k))?;
                Some(hex::encode(cert.encode()))
            }
            None => None,
        };
        Ok(Enrollment {
            device_id,
            secret: hex::encode(secret),
            member,
            role: account.role,
            group: account.group,
            actor,
            server_epoch: hex::encode(self.epoch),
            cert,
            server_cert: hex::encode(self.key.cert.encode()),
        })
    }

    /// Checks an `Authorization` header value (`Bearer <device_id>.<secret>`).
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AppError> {
        let unauthorized = |m: &str| AppError::Unauthorized(m.into());
        let (device_id, secret) = parse_bearer(authorization)?;
        let Some(auth) = self.store.device_auth(device_id)? else {
            return Err(unauthorized("wrong credentials"));
        };
        if !same(&auth.secret_hash, &sha256(&[&secret])) {
            return Err(unauthorized("wrong credentials"));
        }
        if auth.revoked {
            // Issue 13: a retired member's device is told what to do with its records.
            if let Some(m) = self.retired_message(&auth.account.member)? {
                return Err(AppError::Retired(m));
            }
            return Err(unauthorized("this device has been revoked"));
        }
        Ok(Caller {
            device_id: device_id.into(),
            account: self.resolve(account_of(auth.account))?,
        })
    }

    /// A record's saved document, if it is in the caller's read scope.
    pub fn record(&self, caller: &Caller, id: &str) -> Result<Vec<u8>, AppError> {
        let Some(entry) = self.store.index_entry(id)? else {
            return Err(AppError::NotFound(format!("no record {id}")));
        };
        if !caller.account.may_read_entry(&entry) {
            return Err(AppError::Forbidden(format!(
                "record {id} is not in this device's scope"
            )));
        }
        Ok(self.store.load(id)?.save())
    }

    /// The device behind an actor (hex), with its account: `None` for an actor no device has.
    pub(crate) fn device_by_actor(&self, actor: &str) -> Result<Option<(String, bool, Account)>> {
        match self.store.device_by_actor(actor)? {
            Some(d) => Ok(Some((
                d.device_id,
                d.revoked,
                self.resolve(account_of(d.account))?,
            ))),
            None => Ok(None),
        }
    }

    /// A stored document as an automerge document (for change-level checks and the fallback).
    /// Recently written documents come from memory when the stored heads still match (another
    /// process, such as the admin command line, may have written since).
    pub(crate) fn load_automerge(&mut self, id: &str) -> Result<Option<AutoCommit>> {
        let Some(heads) = self.store.doc_heads(id)? else {
            return Ok(None);
        };
        if let Some((cached, doc)) = self.cache.get(id)
            && same_heads(&sanjin_store::heads_from_bytes(cached), &heads)
        {
            return Ok(Some(doc.clone()));
        }
        let doc = self.load_automerge_stored(id)?;
        if let Some(d) = &doc {
            self.remember_doc(id, &heads_to_bytes(&heads), d.clone());
        }
        Ok(doc)
    }

    /// [`ServerData::load_automerge`] for a caller that will change the document: the cached
    /// copy is taken out of the cache rather than cloned (the caller puts the changed document
    /// back with [`ServerData::remember_doc`] once it is stored).
    pub(crate) fn take_automerge(&mut self, id: &str) -> Result<Option<AutoCommit>> {
        let Some(heads) = self.store.doc_heads(id)? else {
            return Ok(None);
        };
        if let Some((cached, doc)) = self.cache.remove(id)
            && same_heads(&sanjin_store::heads_from_bytes(&cached), &heads)
        {
            return Ok(Some(doc));
        }
        self.load_automerge_stored(id)
    }

    /// Keeps a document in memory as the store holds it at `heads`.
    pub(crate) fn remember_doc(&mut self, id: &str, heads: &[u8], doc: AutoCommit) {
        if self.cache.len() >= DOC_CACHE && !self.cache.contains_key(id) {
            // Crude but bounded: start afresh (the hot documents come back at once).
            self.cache.clear();
        }
        self.cache.insert(id.to_string(), (heads.to_vec(), doc));
    }

    fn load_automerge_stored(&self, id: &str) -> Result<Option<AutoCommit>> {
        let Some(parts) = self.store.doc_parts(id)? else {
            return Ok(None);
        };
        // One load of the snapshot followed by every chunk: automerge applies the changes in
        // one batch (a load_incremental per chunk costs a pass over the document each).
        let doc = AutoCommit::load(&parts.concatenated()).map_err(|e| {
            Error::Store(sanjin_store::Error::Damaged {
                id: id.into(),
                reason: e.to_string(),
            })
        })?;
        Ok(Some(doc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_normalize() {
        assert_eq!(normalize_code("k7qm-2xpd 9b"), "K7QM2XPD9B");
        assert_eq!(normalize_code("OIL"), "011");
    }

    #[test]
    fn same_compares() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
