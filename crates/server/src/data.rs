//! The server's data folder: the record store (`sanjin.sqlite`, a `sanjin_store::Store` whose
//! identity is the server's) with the server's own tables in the same file, and `blobs/`.
//!
//! [`ServerData`] holds the one writer connection. Everything here is blocking; the HTTP layer
//! keeps it behind a mutex and calls it from `spawn_blocking`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use automerge::AutoCommit;
use rusqlite::{Connection, OptionalExtension, params};
use sanjin_core::domain::{Chapter, Committee, ContactPoint, Member, RecordData, RecordKind};
use sanjin_core::import::{self, ImportRecord, ImportSet};
use sanjin_core::{ChangeHash, IndexEntry, RecordDoc};
use sanjin_store::{Durability, Identity, Store, now_ms};

use crate::error::{AppError, Error, Result, io_err};
use crate::model::{
    Account, Caller, DeviceInfo, EnrollRequest, Enrollment, ImportReport, IssuedCode, Limits, Role,
};

/// The server tables' schema version this build writes.
pub const SERVER_SCHEMA_VERSION: i64 = 2;
/// The database file in the data folder.
pub const DB_FILE: &str = "sanjin.sqlite";
/// The folder of photo blobs in the data folder.
pub const BLOBS_DIR: &str = "blobs";
/// The member and device id of the server's own store.
pub const SERVER_ID: &str = "server";

const SCHEMA: &str = include_str!("schema.sql");
/// Server schema 2 (issue 10): devices' public keys and certificates.
const SCHEMA_V2: &str = "ALTER TABLE devices ADD COLUMN public_key BLOB;
ALTER TABLE devices ADD COLUMN cert BLOB;";

/// The Crockford base32 alphabet (no I, L, O, U): what enrollment codes are written in.
const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CODE_LEN: usize = 10;

/// How many automerge documents are kept in memory between requests.
const DOC_CACHE: usize = 4096;

/// The server's data: its store, its epoch and its limits.
pub struct ServerData {
    pub(crate) store: Store,
    pub(crate) dir: PathBuf,
    pub(crate) epoch: [u8; 16],
    pub(crate) limits: Limits,
    /// Recently used documents (with the heads they were stored at): loading a document kept as
    /// a snapshot plus incremental chunks costs far more than checking its heads.
    cache: HashMap<String, (Vec<u8>, AutoCommit)>,
    /// The server's signing key and certificate (issue 10).
    pub(crate) key: crate::trust::ServerKey,
}

pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS provides randomness");
    b
}

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

/// Whether two concatenations of 32-byte hashes hold the same set.
fn same_heads(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut x: Vec<&[u8]> = a.chunks(32).collect();
    let mut y: Vec<&[u8]> = b.chunks(32).collect();
    x.sort_unstable();
    y.sort_unstable();
    x == y
}

/// The read scope of a record: its activity group, or `None` for the directory.
pub(crate) fn scope_of(kind: RecordKind, group: Option<&str>) -> Option<String> {
    if kind.is_directory() {
        None
    } else {
        group.map(str::to_string)
    }
}

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

fn account_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Account> {
    let role: String = r.get(1)?;
    Ok(Account {
        member: r.get(0)?,
        role: Role::parse(&role).unwrap_or(Role::Member),
        group: r.get(2)?,
        name: r.get(3)?,
    })
}

/// Creates the server tables on first use; refuses tables from a newer sanjin. Returns the epoch.
pub(crate) fn migrate(conn: &mut Connection) -> Result<[u8; 16]> {
    let has_meta: bool = conn
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'server_meta'")?
        .exists([])?;
    let version: i64 = if has_meta {
        conn.query_row(
            "SELECT value FROM server_meta WHERE key = 'schema_version'",
            [],
            |r| r.get::<_, String>(0),
        )
        .optional()?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
    } else {
        0
    };
    if version > SERVER_SCHEMA_VERSION {
        return Err(Error::NewerSchema {
            found: version,
            supported: SERVER_SCHEMA_VERSION,
        });
    }
    if version == 0 {
        let tx = conn.transaction()?;
        tx.execute_batch(SCHEMA)?;
        tx.execute_batch(SCHEMA_V2)?;
        tx.execute(
            "INSERT INTO server_meta (key, value) VALUES ('schema_version', ?1)",
            [SERVER_SCHEMA_VERSION.to_string()],
        )?;
        tx.execute(
            "INSERT INTO server_meta (key, value) VALUES ('epoch', ?1)",
            [hex::encode(random::<16>())],
        )?;
        // A new server has no history from before signatures to vouch for.
        tx.execute(
            "INSERT INTO server_meta (key, value) VALUES ('history_vouched', ?1)",
            [now_ms().to_string()],
        )?;
        tx.commit()?;
    } else if version == 1 {
        let tx = conn.transaction()?;
        tx.execute_batch(SCHEMA_V2)?;
        tx.execute(
            "UPDATE server_meta SET value = ?1 WHERE key = 'schema_version'",
            [SERVER_SCHEMA_VERSION.to_string()],
        )?;
        tx.commit()?;
    }
    let epoch: String = conn.query_row(
        "SELECT value FROM server_meta WHERE key = 'epoch'",
        [],
        |r| r.get(0),
    )?;
    let epoch = hex::decode(&epoch)
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .ok_or_else(|| Error::Invalid(format!("the server epoch `{epoch}` is damaged")))?;
    Ok(epoch)
}

/// Appends a change-log entry inside the transaction that writes the document.
pub(crate) fn append_log(
    tx: &Connection,
    entry: &IndexEntry,
    origin: Option<&str>,
    bytes: &[u8],
    heads: &[ChangeHash],
) -> rusqlite::Result<()> {
    let scope = scope_of(kind_of(entry), entry.group.as_deref());
    tx.prepare_cached(
        "INSERT INTO change_log (doc_id, scope, origin, bytes, heads, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        entry.id,
        scope,
        origin,
        bytes,
        heads_to_bytes(heads),
        now_ms()
    ])?;
    Ok(())
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
    /// Opens the data folder, creating it (database, server tables, epoch, `blobs/`) on first use.
    pub fn open(dir: &Path) -> Result<ServerData> {
        Self::open_with(dir, Limits::default())
    }

    pub fn open_with(dir: &Path, limits: Limits) -> Result<ServerData> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let blobs = dir.join(BLOBS_DIR);
        std::fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
        let path = dir.join(DB_FILE);
        let mut store = if path.exists() {
            let store = Store::open(&path, Durability::Full)?;
            if store.identity().device != SERVER_ID || store.identity().member != SERVER_ID {
                return Err(Error::NotServerData(path));
            }
            store
        } else {
            let identity = Identity {
                member: SERVER_ID.into(),
                device: SERVER_ID.into(),
                actor: random::<16>().to_vec(),
            };
            Store::init(&path, &identity, Durability::Full)?
        };
        let epoch = migrate(store.connection_mut())?;
        let key = crate::trust::load_or_make_key(store.connection(), &store.identity().actor)?;
        crate::blobs::create_tables(&store, &blobs)?;
        // The store's statements and the server's together exceed rusqlite's default cache of
        // 16; re-preparing them on every request costs more than the queries.
        store
            .connection_mut()
            .set_prepared_statement_cache_capacity(128);
        let mut data = ServerData {
            store,
            dir: dir.to_path_buf(),
            epoch,
            limits,
            cache: HashMap::new(),
            key,
        };
        let vouched = data.vouch_history()?;
        if vouched > 0 {
            tracing::info!(
                records = vouched,
                "history from before signatures vouched for by the server's key"
            );
        }
        Ok(data)
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

    /// The record store (read access, for ledgers and tests).
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn conn(&self) -> &Connection {
        self.store.connection()
    }

    /// The highest change-log sequence number (0 when the log is empty).
    pub fn max_seq(&self) -> Result<u64> {
        let n: i64 = self
            .conn()
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM change_log")?
            .query_row([], |r| r.get(0))?;
        Ok(n as u64)
    }

    // ------------------------------------------------------------ accounts

    pub fn account(&self, member: &str) -> Result<Option<Account>> {
        Ok(self
            .conn()
            .prepare_cached("SELECT member, role, group_id, name FROM accounts WHERE member = ?1")?
            .query_row([member], account_row)
            .optional()?)
    }

    pub fn accounts(&self) -> Result<Vec<Account>> {
        let mut stmt = self
            .conn()
            .prepare("SELECT member, role, group_id, name FROM accounts ORDER BY member")?;
        Ok(stmt
            .query_map([], account_row)?
            .collect::<rusqlite::Result<_>>()?)
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
        self.store.connection_mut().execute(
            "INSERT INTO accounts (member, role, group_id, name, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(member) DO UPDATE SET role = excluded.role, group_id = excluded.group_id, name = excluded.name",
            params![account.member, account.role.code(), account.group, account.name, now_ms()],
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
                let sig = self.own_sig(crate::trust::change_hashes(&bytes));
                self.store.apply_remote_with(&id, &bytes, |tx, entry| {
                    append_log(tx, entry, None, &bytes, &heads)?;
                    if let Some(sig) = &sig {
                        sanjin_store::put_sig_in(tx, sig, &sig.hashes)?;
                    }
                    Ok(())
                })?;
                Ok((true, true))
            }
            Err(e) => Err(e.into()),
            Ok(mut ours) => {
                let before = ours.heads();
                ours.merge(doc)?;
                let heads = ours.heads();
                if heads == before {
                    return Ok((false, false));
                }
                let delta = ours.save_after(&before);
                let sig = self.own_sig(crate::trust::change_hashes(&delta));
                let (_, changed) = self.store.apply_remote_with(&id, &delta, |tx, entry| {
                    append_log(tx, entry, None, &delta, &heads)?;
                    if let Some(sig) = &sig {
                        sanjin_store::put_sig_in(tx, sig, &sig.hashes)?;
                    }
                    Ok(())
                })?;
                Ok((false, changed))
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
        let leaders: std::collections::HashMap<String, String> = records
            .iter()
            .filter_map(|r| match &r.data {
                RecordData::Group(g) => Some((g.leader.clone(), r.id.clone())),
                _ => None,
            })
            .collect();
        for r in &records {
            let mut doc = r.to_doc()?;
            match self.land_local(&mut doc)? {
                (true, _) => report.added += 1,
                (false, true) => report.updated += 1,
                (false, false) => report.unchanged += 1,
            }
        }
        for r in &records {
            let RecordData::Member(m) = &r.data else {
                continue;
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

    /// Creates one directory record (chapter, committee, group, contact point) authored by the
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
        let account = Account {
            member: id.into(),
            role,
            group: Some(member.group.clone()),
            name: member.name.clone(),
        };
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
        let account = Account {
            member: id.into(),
            role,
            group: None,
            name: name.into(),
        };
        self.put_account(&account)?;
        Ok(account)
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
        let raw: String = random::<CODE_LEN>()
            .iter()
            .map(|b| CODE_ALPHABET[(*b & 31) as usize] as char)
            .collect();
        let now = now_ms();
        let expires_at_ms = now + self.limits.code_ttl_ms;
        self.store.connection_mut().execute(
            "INSERT INTO enrollment_codes (code_hash, member, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![code_hash(&raw), member, now, expires_at_ms],
        )?;
        let code = format!("{}-{}-{}", &raw[..4], &raw[4..8], &raw[8..]);
        Ok(IssuedCode {
            code,
            member: member.into(),
            expires_at_ms,
        })
    }

    pub fn devices(&self) -> Result<Vec<DeviceInfo>> {
        let mut stmt = self.conn().prepare(
            "SELECT device_id, member, name, actor, enrolled_at, revoked_at, last_sync_at FROM devices ORDER BY member, enrolled_at",
        )?;
        Ok(stmt
            .query_map([], |r| {
                Ok(DeviceInfo {
                    device_id: r.get(0)?,
                    member: r.get(1)?,
                    name: r.get(2)?,
                    actor: r.get(3)?,
                    enrolled_at_ms: r.get(4)?,
                    revoked_at_ms: r.get(5)?,
                    last_sync_at_ms: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Revokes a device: every request it makes is refused from now on, and changes signed by
    /// its actor are no longer accepted from anyone. Returns the device (with the time it was
    /// revoked, which is the earlier time if it was revoked already).
    pub fn revoke(&mut self, device_id: &str) -> Result<DeviceInfo> {
        let n = self.store.connection_mut().execute(
            "UPDATE devices SET revoked_at = COALESCE(revoked_at, ?2) WHERE device_id = ?1",
            params![device_id, now_ms()],
        )?;
        if n == 0 {
            return Err(Error::UnknownDevice(device_id.into()));
        }
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
        let row: Option<(String, i64, Option<i64>)> = self
            .conn()
            .prepare_cached(
                "SELECT member, expires_at, used_at FROM enrollment_codes WHERE code_hash = ?1",
            )?
            .query_row([code_hash(&normalized)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        let Some((member, expires_at, used_at)) = row else {
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
            Some(k) => Some(crate::trust::parse_public_key(k)?),
            None => None,
        };
        let secret = random::<32>();
        let tx = self.store.connection_mut().savepoint()?;
        if tx
            .prepare_cached("SELECT 1 FROM devices WHERE device_id = ?1")?
            .exists([&device_id])?
        {
            return Err(AppError::Conflict {
                code: "device_exists",
                message: format!("device {device_id} is enrolled already"),
            });
        }
        if tx
            .prepare_cached("SELECT 1 FROM devices WHERE actor = ?1")?
            .exists([&actor])?
        {
            return Err(AppError::Conflict {
                code: "actor_in_use",
                message: "this actor id belongs to another device".into(),
            });
        }
        tx.execute(
            "INSERT INTO devices (device_id, member, secret_hash, actor, name, enrolled_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![device_id, member, sha256(&[&secret]), actor, name, now],
        )?;
        let n = tx.execute(
            "UPDATE enrollment_codes SET used_at = ?2, device_id = ?3 WHERE code_hash = ?1 AND used_at IS NULL",
            params![code_hash(&normalized), now, device_id],
        )?;
        if n != 1 {
            return Err(AppError::CodeUsed(
                "this enrollment code has been used; ask an admin for a new one".into(),
            ));
        }
        tx.commit()?;
        let cert = match public_key {
            Some(k) => {
                let tx = self.conn().unchecked_transaction()?;
                let cert = self.issue_cert(&tx, &device_id, k)?;
                tx.commit()?;
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
        type Row = (Vec<u8>, Option<i64>, String, String, Option<String>, String);
        let row: Option<Row> = self
            .conn()
            .prepare_cached(
                "SELECT d.secret_hash, d.revoked_at, a.member, a.role, a.group_id, a.name
                 FROM devices d JOIN accounts a ON a.member = d.member WHERE d.device_id = ?1",
            )?
            .query_row([device_id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .optional()?;
        let Some((hash, revoked, member, role, group, name)) = row else {
            return Err(unauthorized("wrong credentials"));
        };
        if !same(&hash, &sha256(&[&secret])) {
            return Err(unauthorized("wrong credentials"));
        }
        if revoked.is_some() {
            return Err(unauthorized("this device has been revoked"));
        }
        Ok(Caller {
            device_id: device_id.into(),
            account: Account {
                member,
                role: Role::parse(&role).unwrap_or(Role::Member),
                group,
                name,
            },
        })
    }

    /// A record's saved document, if it is in the caller's read scope.
    pub fn record(&self, caller: &Caller, id: &str) -> Result<Vec<u8>, AppError> {
        let Some(entry) = self.store.index_entry(id)? else {
            return Err(AppError::NotFound(format!("no record {id}")));
        };
        if !caller
            .account
            .may_read(kind_of(&entry), entry.group.as_deref())
        {
            return Err(AppError::Forbidden(format!(
                "record {id} is not in this device's scope"
            )));
        }
        Ok(self.store.load(id)?.save())
    }

    /// The device behind an actor (hex), with its account: `None` for an actor no device has.
    pub(crate) fn device_by_actor(&self, actor: &str) -> Result<Option<(String, bool, Account)>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT d.device_id, d.revoked_at IS NOT NULL, a.member, a.role, a.group_id, a.name
                 FROM devices d JOIN accounts a ON a.member = d.member WHERE d.actor = ?1",
            )?
            .query_row([actor], |r| {
                let role: String = r.get(3)?;
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    Account {
                        member: r.get(2)?,
                        role: Role::parse(&role).unwrap_or(Role::Member),
                        group: r.get(4)?,
                        name: r.get(5)?,
                    },
                ))
            })
            .optional()?)
    }

    /// A stored document as an automerge document (for change-level checks and the fallback).
    /// Recently written documents come from memory when the stored heads still match (another
    /// process, such as the admin command line, may have written since).
    pub(crate) fn load_automerge(&mut self, id: &str) -> Result<Option<AutoCommit>> {
        let heads: Option<Vec<u8>> = self
            .conn()
            .prepare_cached("SELECT heads FROM docs WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        let Some(heads) = heads else {
            return Ok(None);
        };
        if let Some((cached, doc)) = self.cache.get(id)
            && same_heads(cached, &heads)
        {
            return Ok(Some(doc.clone()));
        }
        let doc = self.load_automerge_stored(id)?;
        if let Some(d) = &doc {
            self.remember_doc(id, &heads, d.clone());
        }
        Ok(doc)
    }

    /// [`ServerData::load_automerge`] for a caller that will change the document: the cached
    /// copy is taken out of the cache rather than cloned (the caller puts the changed document
    /// back with [`ServerData::remember_doc`] once it is stored).
    pub(crate) fn take_automerge(&mut self, id: &str) -> Result<Option<AutoCommit>> {
        let heads: Option<Vec<u8>> = self
            .conn()
            .prepare_cached("SELECT heads FROM docs WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        let Some(heads) = heads else {
            return Ok(None);
        };
        if let Some((cached, doc)) = self.cache.remove(id)
            && same_heads(&cached, &heads)
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
        let conn = self.conn();
        let row: Option<(Vec<u8>, i64)> = conn
            .prepare_cached("SELECT snapshot, chunk_count FROM docs WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((snapshot, chunk_count)) = row else {
            return Ok(None);
        };
        let damaged = |e: automerge::AutomergeError| {
            Error::Store(sanjin_store::Error::Damaged {
                id: id.into(),
                reason: e.to_string(),
            })
        };
        // One load of the snapshot followed by every chunk: automerge applies the changes in
        // one batch (a load_incremental per chunk costs a pass over the document each).
        let mut bytes = snapshot;
        if chunk_count > 0 {
            let mut stmt =
                conn.prepare_cached("SELECT bytes FROM doc_chunks WHERE doc_id = ?1 ORDER BY seq")?;
            let mut rows = stmt.query([id])?;
            while let Some(row) = rows.next()? {
                bytes.extend_from_slice(row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?);
            }
        }
        let doc = AutoCommit::load(&bytes).map_err(damaged)?;
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
