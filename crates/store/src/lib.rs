//! sanjin-store: the owner of every SQL statement on sanjin's SQLite files — a device's records
//! (documents, index tables, the outbox, signatures, the fallback's sync state) and, behind the
//! `server` feature, the sync server's storage ([`server`]: a trait, its SQLite implementation
//! and an in-memory one).
//!
//! **Never:** let SQL, a connection or a SQLite type out of this crate (no `rusqlite` in any
//! public signature; database failures are [`DbError`]), or create a table outside the versioned
//! migrations (`src/schema/v*.sql` by `PRAGMA user_version`; the server's `src/server/schema/`).
//!
//! One writer connection in WAL mode. Every save writes the document's new bytes, its index row
//! and its outbox entry in one transaction, so a crash at any instant leaves the old or the new
//! record, never half of one. Documents are kept as a compact snapshot plus incremental chunks,
//! compacted every [`COMPACT_AFTER`] chunks.

use std::path::{Path, PathBuf};

use std::collections::HashMap;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use sanjin_core::rules::{self, Signer};
use sanjin_core::{Author, ChangeHash, IndexEntry, Millis, RecordDoc, domain::RecordKind};
use sanjin_core::{domain::RecordData, protocol::RefusalCode, validate};

mod blobs;
mod bundle;
mod list;
mod relay;
mod sigs;
mod sync_state;

pub use blobs::PendingBlob;
pub use bundle::{ExportedDoc, ImportReport, ImportedDoc, Outcome, Selection, refusal_zh};
pub use relay::{META_SERVER_CERT, group_recipient};
pub use sigs::Refused;

pub use list::{Filter, IndexColumn, ReadScope};

#[cfg(feature = "server")]
pub mod server;

/// The newest store schema this build knows.
pub const SCHEMA_VERSION: i64 = 5;
/// How many incremental chunks a document collects before it is rewritten as one snapshot.
pub const COMPACT_AFTER: i64 = 16;

/// Documents whose snapshot is smaller than this are rewritten whole on every save instead of
/// collecting incremental chunks.
pub const SMALL_DOC_BYTES: i64 = 16 * 1024;

const MIGRATIONS: &[&str] = &[
    include_str!("schema/v1.sql"),
    include_str!("schema/v2.sql"),
    include_str!("schema/v3.sql"),
    include_str!("schema/v4.sql"),
    include_str!("schema/v5.sql"),
];

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] DbError),
    #[error(transparent)]
    Core(#[from] sanjin_core::Error),
    #[error("no record with id {0}")]
    NotFound(String),
    #[error("{0} is not a sanjin device store")]
    NotAStore(PathBuf),
    #[error("{0} does not exist; create it with `sanjin device init`")]
    Missing(PathBuf),
    #[error(
        "{path} was written by a newer sanjin (store schema {found}, this one knows up to {supported}); upgrade sanjin"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("{0} is already set up for a member; use another file")]
    AlreadyInitialized(PathBuf),
    #[error("record {id} is stored damaged: {reason}")]
    Damaged { id: String, reason: String },
    /// A server's data file that is a device store, or another server's.
    #[error("{0} is not a sanjin server database")]
    NotServerData(PathBuf),
    /// The server tables were written by a newer sanjin.
    #[error("the server tables are of schema {found}; this sanjin knows up to {supported}")]
    NewerServerSchema { found: i64, supported: i64 },
    /// Bundles need the server key pinned at enrollment (issue 12).
    #[error("this device holds no server key yet: enroll and sync once first")]
    NoServerKey,
}

/// What went wrong in the database, without the database's own types: what a caller can act
/// on (`kind`) and the database's message (for logs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DbError {
    pub kind: DbErrorKind,
    pub message: String,
}

/// The kinds of database failure a caller can tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorKind {
    /// The file cannot be opened (no such folder, no permission).
    CannotOpen,
    /// The file is not a database, or is damaged.
    NotADatabase,
    /// The disk is full.
    DiskFull,
    /// Another process holds the database too long.
    Busy,
    /// A write on a read-only handle.
    ReadOnly,
    Other,
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> DbError {
        use rusqlite::ErrorCode as C;
        let kind = match e.sqlite_error_code() {
            Some(C::CannotOpen) => DbErrorKind::CannotOpen,
            Some(C::NotADatabase | C::DatabaseCorrupt) => DbErrorKind::NotADatabase,
            Some(C::DiskFull) => DbErrorKind::DiskFull,
            Some(C::DatabaseBusy | C::DatabaseLocked) => DbErrorKind::Busy,
            Some(C::ReadOnly) => DbErrorKind::ReadOnly,
            _ => DbErrorKind::Other,
        };
        DbError {
            kind,
            message: e.to_string(),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        Error::Database(e.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync on every commit: a save that returned survives power loss (the default).
    Full,
    /// No fsync per commit: a save that returned survives the app being killed, not power loss.
    Normal,
}

/// Who the store belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub member: String,
    pub device: String,
    /// The device's automerge actor id (16 bytes).
    pub actor: Vec<u8>,
}

impl Identity {
    pub fn author(&self) -> Result<Author> {
        Ok(Author::new(&self.member, &self.device, &self.actor)?)
    }
}

/// A document with changes not yet acknowledged by the server.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    pub id: String,
    pub kind: String,
    pub acked_heads: Vec<ChangeHash>,
    pub queued_at: Millis,
}

/// What `merge_from` did.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct MergeReport {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Records that became conflicted by the merge.
    pub new_conflicts: Vec<String>,
    /// Records of the other store that could not be read: (id, reason).
    pub skipped: Vec<(String, String)>,
}

/// Meta keys an enrolled device keeps (written by `sanjin-client`): the role and group the
/// server enrolled its member with.
pub const META_ROLE: &str = "sync_role";
pub const META_GROUP: &str = "sync_group";

/// Who may settle conflicts and take review steps, as far as this device knows (issue 10): each
/// group's leader from the directory records it holds, and its own member's enrolled role.
/// Anyone unknown is not a reviewer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reviewers {
    /// Group id → its leader's member id.
    pub leaders: HashMap<String, String>,
    pub own_member: String,
    /// `member`, `leader`, `staff` or `admin`, if the device is enrolled.
    pub own_role: Option<String>,
    pub own_group: Option<String>,
    /// The legal advisory group of the directory this device holds (issue 13): its leader also
    /// reviews legal appeals of other groups (`sanjin_core::rules::also_read_by`).
    pub legal_group: Option<String>,
}

impl Reviewers {
    /// Whether `member` reviews records of `group` (`None`: a record without a group).
    pub fn is_reviewer(&self, member: &str, group: Option<&str>) -> bool {
        if group.is_some_and(|g| self.leaders.get(g).is_some_and(|l| l == member)) {
            return true;
        }
        member == self.own_member
            && match self.own_role.as_deref() {
                Some("staff" | "admin") => true,
                Some("leader") => group.is_some() && self.own_group.as_deref() == group,
                _ => false,
            }
    }
}

/// Who made a change, for judging changes that arrive by merge: the record's group comes as
/// the second argument (reviewers are per group). `None`: no known device. The default,
/// [`message_signer`], reads the change's message; a caller holding device certificates passes
/// its own lookup to [`Store::merge_from_with`].
pub type SignerLookup<'a> = dyn Fn(&automerge::Change, Option<&str>) -> Option<Signer> + 'a;

/// The signer of a change as a device can tell it without certificates: a change made with
/// this device's actor is this device's member and device; any other actor is whoever its
/// message names, except this device (a message claiming this device from another actor is
/// an impersonation, found by `rules::check_changes`). Reviewer-ness from `reviewers`.
pub fn message_signer(
    identity: &Identity,
    reviewers: &Reviewers,
    change: &automerge::Change,
    group: Option<&str>,
) -> Option<Signer> {
    let own = change.actor_id().to_bytes() == identity.actor.as_slice();
    let (member, device) = if own {
        (identity.member.clone(), identity.device.clone())
    } else {
        let (m, d) = rules::message_author(change)?;
        if d == identity.device {
            (m, format!("actor {}", change.actor_id().to_hex_string()))
        } else {
            (m, d)
        }
    };
    let reviewer = reviewers.is_reviewer(&member, group);
    Some(Signer {
        member,
        device,
        reviewer,
    })
}

/// The group that reads a record besides its own (issue 13): the legal advisory group for a
/// legal appeal of another group.
fn also_of(doc: &RecordDoc, legal_group: Option<&str>) -> Option<String> {
    match doc.data().ok()? {
        RecordData::Opinion(o) => rules::also_read_by(
            RecordKind::Opinion,
            Some(&o.group),
            Some(o.opinion_kind.code()),
            legal_group,
        )
        .map(str::to_string),
        _ => None,
    }
}

/// A lookup that also counts the reviewers of `also` (the legal advisory group's leader, for a
/// legal appeal) as the record's reviewers, as the server does.
fn with_also<'a>(
    signer: &'a SignerLookup<'a>,
    also: Option<String>,
) -> impl Fn(&automerge::Change, Option<&str>) -> Option<Signer> + 'a {
    move |c, group| {
        let mut s = signer(c, group)?;
        if !s.reviewer
            && let Some(a) = also.as_deref()
        {
            s.reviewer = signer(c, Some(a)).is_some_and(|x| x.reviewer);
        }
        Some(s)
    }
}

/// The group of a record (from its data), if it has one.
fn group_of(doc: &RecordDoc) -> Option<String> {
    match doc.data().ok()? {
        RecordData::Visit(v) => Some(v.group),
        RecordData::Opinion(o) => Some(o.group),
        RecordData::Household(h) => Some(h.group),
        RecordData::Plan(p) => Some(p.group),
        _ => None,
    }
}

/// Judges what `doc` gained since `before` (issue 10): the size bounds, the whole record
/// (`validate::check_record`) and the rules of `rules::check_changes`. `Err`: what a member
/// reads, in Chinese.
fn judge(
    doc: &mut RecordDoc,
    before: &[ChangeHash],
    signer: &SignerLookup,
    legal_group: Option<&str>,
) -> std::result::Result<(), String> {
    let new = doc.automerge().get_changes(before);
    if new.is_empty() {
        return Ok(());
    }
    let kind = doc.kind();
    validate::check_sizes(0, new.len()).map_err(|e| e.zh(kind))?;
    validate::check_record(doc.automerge()).map_err(|e| e.zh(kind))?;
    let group = group_of(doc);
    let signer = with_also(signer, also_of(doc, legal_group));
    let violations = rules::check_changes(doc.automerge(), before, &new, &|c| {
        signer(c, group.as_deref())
    });
    match rules::most_telling(&violations) {
        Some(v) => Err(v.zh()),
        None => Ok(()),
    }
}

/// The device store.
pub struct Store {
    pub(crate) conn: Connection,
    path: PathBuf,
    identity: Identity,
    /// The device's signing key (issue 10), from enrollment on.
    key: Option<sanjin_core::sign::DeviceKey>,
}

/// Heads as stored: concatenated 32-byte change hashes.
pub fn heads_to_bytes(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

/// Heads from their stored form (see [`heads_to_bytes`]).
pub fn heads_from_bytes(bytes: &[u8]) -> Vec<ChangeHash> {
    bytes
        .chunks_exact(32)
        .map(|c| ChangeHash(c.try_into().expect("32-byte chunks")))
        .collect()
}

/// A fresh record id (UUID v4).
pub fn new_record_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS provides randomness");
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

/// A fresh device: its id and its actor id.
pub fn new_device() -> (String, Vec<u8>) {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS provides randomness");
    let id = uuid::Builder::from_random_bytes(b).into_uuid();
    (id.to_string(), id.as_bytes().to_vec())
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

fn configure(conn: &Connection, durability: Durability) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        },
    )?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

fn user_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let found = user_version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(Error::NewerSchema {
            path: path.into(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

pub(crate) fn kind_table(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Visit => "idx_visit",
        RecordKind::Opinion => "idx_opinion",
        RecordKind::Household => "idx_household",
        RecordKind::Plan => "idx_plan",
        _ => "idx_directory",
    }
}

fn write_index(tx: &Connection, e: &IndexEntry) -> Result<()> {
    let kind = RecordKind::parse(&e.kind).expect("index entries carry a known kind");
    let table = kind_table(kind);
    let extra = if kind.is_directory() { ", kind" } else { "" };
    let extra_v = if kind.is_directory() { ", ?15" } else { "" };
    let sql = format!(
        "INSERT OR REPLACE INTO {table} (id, date, start, \"end\", group_id, contact_point, type_code, \
         target_kind, urgency, created_by, status, deleted, conflicts, title{extra}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14{extra_v})"
    );
    let mut stmt = tx.prepare_cached(&sql)?;
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![
        &e.id,
        &e.date,
        &e.start,
        &e.end,
        &e.group,
        &e.contact_point,
        &e.type_code,
        &e.target_kind,
        &e.urgency,
        &e.created_by,
        &e.status,
        &e.deleted,
        &e.conflicts,
        &e.title,
    ];
    if kind.is_directory() {
        values.push(&e.kind);
    }
    stmt.execute(&values[..])?;
    tx.prepare_cached("DELETE FROM record_members WHERE record_id = ?1")?
        .execute([&e.id])?;
    let mut ins = tx.prepare_cached(
        "INSERT OR IGNORE INTO record_members (member, record_id) VALUES (?1, ?2)",
    )?;
    for m in &e.members {
        ins.execute([m, &e.id])?;
    }
    Ok(())
}

impl Store {
    /// Creates a store for `identity` at `path`. Refuses a file that already holds a store.
    pub fn init(path: &Path, identity: &Identity, durability: Durability) -> Result<Store> {
        identity.author()?;
        let mut conn = Connection::open(path)?;
        configure(&conn, durability).map_err(|e| not_a_store(e, path))?;
        migrate(&mut conn, path).map_err(|e| not_a_store(e, path))?;
        let existing: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'member'", [], |r| {
                r.get(0)
            })
            .optional()?;
        if existing.is_some() {
            return Err(Error::AlreadyInitialized(path.into()));
        }
        let tx = conn.transaction()?;
        for (k, v) in [
            ("member", identity.member.clone()),
            ("device", identity.device.clone()),
            ("actor", hex(&identity.actor)),
        ] {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                params![k, v],
            )?;
        }
        tx.commit()?;
        Ok(Store {
            conn,
            path: path.into(),
            identity: identity.clone(),
            key: None,
        })
    }

    /// Opens an existing store (migrating an older schema forward).
    pub fn open(path: &Path, durability: Durability) -> Result<Store> {
        if !path.exists() {
            return Err(Error::Missing(path.into()));
        }
        let mut conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        configure(&conn, durability).map_err(|e| not_a_store(e, path))?;
        let found = user_version(&conn).map_err(|e| not_a_store(e, path))?;
        if found == 0 {
            return Err(Error::NotAStore(path.into()));
        }
        migrate(&mut conn, path)?;
        let identity = read_identity(&conn).map_err(|_| Error::NotAStore(path.into()))?;
        let key: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [sigs::SIGNING_KEY],
                |r| r.get(0),
            )
            .optional()?;
        let key = key.and_then(|k| sanjin_core::sign::DeviceKey::from_seed_hex(&k));
        Ok(Store {
            conn,
            path: path.into(),
            identity,
            key,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn author(&self) -> Author {
        self.identity
            .author()
            .expect("checked when the store was set up")
    }

    /// Saves a record made on this device (or imported): snapshot, index row and outbox entry in
    /// one transaction. `queue` puts it in the outbox for the server.
    pub fn insert(&mut self, doc: &mut RecordDoc, queue: bool) -> Result<IndexEntry> {
        if self.exists(doc.id())? {
            return self.merge_in(doc, queue).map(|(e, _)| e);
        }
        self.insert_new(doc, queue, queue)
    }

    /// Writes a record new to the store; `sign`: this device's own changes in it are signed in
    /// the same transaction (a record made here, not one merged from elsewhere).
    fn insert_new(&mut self, doc: &mut RecordDoc, queue: bool, sign: bool) -> Result<IndexEntry> {
        let sig = if sign { self.local_sig(doc, &[]) } else { None };
        let tx = self.conn.savepoint()?;
        let entry = write_new(&tx, doc, queue)?;
        if let Some(s) = &sig {
            sigs::put_sig(&tx, s, &s.hashes)?;
        }
        tx.commit()?;
        Ok(entry)
    }

    /// Runs `f` in one transaction: every write of the store's methods inside it (each of them a
    /// savepoint of its own, so a failed one leaves no trace) reaches the disk with one sync at
    /// the end, or not at all if `f` fails. What a sync exchange uses to land a batch of
    /// documents, acks and the cursor at once instead of one disk sync per document.
    pub fn batch<T, E: From<Error>>(
        &mut self,
        f: impl FnOnce(&mut Store) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| E::from(Error::from(e)))?;
        match f(self) {
            Ok(v) => {
                if let Err(e) = self.conn.execute_batch("COMMIT") {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    return Err(E::from(Error::from(e)));
                }
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Loads a record's document.
    pub fn load(&self, id: &str) -> Result<RecordDoc> {
        let row: Option<(Vec<u8>, i64)> = self
            .conn
            .prepare_cached("SELECT snapshot, chunk_count FROM docs WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (snapshot, chunk_count) = row.ok_or_else(|| Error::NotFound(id.into()))?;
        let chunks: Vec<Vec<u8>> = if chunk_count > 0 {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT bytes FROM doc_chunks WHERE doc_id = ?1 ORDER BY seq")?;
            stmt.query_map([id], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        } else {
            vec![]
        };
        let doc = RecordDoc::load_parts(&snapshot, chunks.iter().map(Vec::as_slice))
            .map_err(|e| damaged(id, e))?;
        if doc.id() != id {
            return Err(Error::Damaged {
                id: id.into(),
                reason: format!("the document says it is {}", doc.id()),
            });
        }
        Ok(doc)
    }

    /// Changes a record: loads it, lets `f` edit it, and saves the new changes, index row and
    /// outbox entry in one transaction. Nothing is written if `f` fails.
    pub fn update<T>(
        &mut self,
        id: &str,
        f: impl FnOnce(&mut RecordDoc, &Author) -> Result<T, sanjin_core::Error>,
    ) -> Result<(T, IndexEntry)> {
        let mut doc = self.load(id)?;
        let before = doc.heads();
        let author = self.author();
        let out = f(&mut doc, &author)?;
        self.refuse_what_the_server_would(&mut doc, &before)?;
        let sig = self.local_sig(&mut doc, &before);
        let entry = self.save_changes_with(&mut doc, &before, true, |tx, _| match &sig {
            Some(s) => sigs::put_sig(tx, s, &s.hashes),
            None => Ok(()),
        })?;
        Ok((out, entry))
    }

    /// Refuses a local change that breaks a rule the server enforces (issue 10), before it is
    /// saved: above all a member's edit that would settle a conflict, which a leader must
    /// resolve. The error names the field and says what to do, in Chinese.
    fn refuse_what_the_server_would(
        &mut self,
        doc: &mut RecordDoc,
        before: &[ChangeHash],
    ) -> Result<()> {
        let group = group_of(doc);
        let mut reviewers = self.reviewers(group.as_deref())?;
        let also = also_of(doc, self.legal_group()?.as_deref());
        if let Some(a) = &also {
            // The legal advisory group's leader reviews legal appeals too (issue 13).
            reviewers.leaders.extend(self.reviewers(Some(a))?.leaders);
        }
        let identity = self.identity.clone();
        let lookup = move |c: &automerge::Change, g: Option<&str>| {
            message_signer(&identity, &reviewers, c, g)
        };
        let lookup = with_also(&lookup, also);
        // The record's values were checked field by field as they were typed (the same checks
        // `validate::check_record` runs), so only the rules are judged here. Of those, the
        // device refuses its own member's conflict settling; a review step by someone it does
        // not know as a reviewer is left to the server (the device may not know its member's
        // role before it enrolls), which refuses it and reports why.
        let new = doc.automerge().get_changes(before);
        if new.is_empty() {
            return Ok(());
        }
        let violations = rules::check_changes(doc.automerge(), before, &new, &|c| {
            lookup(c, group.as_deref())
        });
        match violations
            .into_iter()
            .find(|v| v.code == RefusalCode::ConflictResolution)
        {
            Some(v) => Err(Error::Core(v.into_validation().into())),
            None => Ok(()),
        }
    }

    /// Who reviews what, as far as this device knows: the leader of `group` (or of every group
    /// in the directory, for `None`) and its own enrolled role.
    pub fn reviewers(&self, group: Option<&str>) -> Result<Reviewers> {
        let ids: Vec<String> = match group {
            Some(g) => vec![g.to_string()],
            None => {
                let mut stmt = self
                    .conn
                    .prepare_cached("SELECT id FROM docs WHERE kind = 'group'")?;
                stmt.query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?
            }
        };
        let mut leaders = HashMap::new();
        for id in ids {
            let kind: Option<String> = self
                .conn
                .prepare_cached("SELECT kind FROM docs WHERE id = ?1")?
                .query_row([&id], |r| r.get(0))
                .optional()?;
            if kind.as_deref() != Some("group") {
                continue;
            }
            // A damaged group record names no leader: nobody reviews on its strength.
            if let Ok(RecordData::Group(g)) = self.load(&id).and_then(|d| Ok(d.data()?)) {
                leaders.insert(id, g.leader);
            }
        }
        Ok(Reviewers {
            leaders,
            own_member: self.identity.member.clone(),
            own_role: self.meta(META_ROLE)?,
            own_group: self.meta(META_GROUP)?,
            legal_group: self.legal_group()?,
        })
    }

    /// The legal advisory group of the directory this device holds (issue 13,
    /// `sanjin_core::rules::legal_group`), tombstoned groups left out.
    pub fn legal_group(&self) -> Result<Option<String>> {
        let ids: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT id FROM docs WHERE kind = 'group'")?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        let mut groups = Vec::new();
        for id in ids {
            if let Ok(mut d) = self.load(&id)
                && let Ok(v) = d.view()
                && !v.deleted
                && let RecordData::Group(g) = v.data
            {
                groups.push((id, g));
            }
        }
        Ok(rules::legal_group(groups.iter().map(|(id, g)| (id.as_str(), g))).map(str::to_string))
    }

    /// Writes what `doc` gained since `before` as one chunk (compacting when due).
    fn save_changes(
        &mut self,
        doc: &mut RecordDoc,
        before: &[ChangeHash],
        queue: bool,
    ) -> Result<IndexEntry> {
        self.save_changes_with(doc, before, queue, |_, _| Ok(()))
    }

    fn save_changes_with(
        &mut self,
        doc: &mut RecordDoc,
        before: &[ChangeHash],
        queue: bool,
        extra: impl FnOnce(&Connection, &IndexEntry) -> Result<()>,
    ) -> Result<IndexEntry> {
        let entry = IndexEntry::of(&doc.view()?);
        self.save_changes_entry(doc, before, queue, entry, extra)
    }

    fn save_changes_entry(
        &mut self,
        doc: &mut RecordDoc,
        before: &[ChangeHash],
        queue: bool,
        entry: IndexEntry,
        extra: impl FnOnce(&Connection, &IndexEntry) -> Result<()>,
    ) -> Result<IndexEntry> {
        let heads = doc.heads();
        if heads.as_slice() == before {
            return Ok(entry);
        }
        let chunk = doc.save_after(before);
        let tx = self.conn.savepoint()?;
        let (chunk_count, snapshot_len): (i64, i64) = tx
            .prepare_cached("SELECT chunk_count, LENGTH(snapshot) FROM docs WHERE id = ?1")?
            .query_row([doc.id()], |r| Ok((r.get(0)?, r.get(1)?)))?;
        // Small documents (nearly all records) are rewritten whole: one compact snapshot loads
        // several times faster than a snapshot plus chunks, and costs a few tens of µs to save.
        if snapshot_len < SMALL_DOC_BYTES || chunk_count + 1 >= COMPACT_AFTER {
            tx.prepare_cached("DELETE FROM doc_chunks WHERE doc_id = ?1")?
                .execute([doc.id()])?;
            tx.prepare_cached(
                "UPDATE docs SET snapshot = ?2, heads = ?3, chunk_count = 0, updated_at = ?4 WHERE id = ?1",
            )?
            .execute(params![doc.id().to_string(), doc.save(), heads_to_bytes(&heads), now_ms()])?;
        } else {
            tx.prepare_cached("INSERT INTO doc_chunks (doc_id, seq, bytes) VALUES (?1, ?2, ?3)")?
                .execute(params![doc.id(), chunk_count + 1, chunk])?;
            tx.prepare_cached(
                "UPDATE docs SET heads = ?2, chunk_count = ?3, updated_at = ?4 WHERE id = ?1",
            )?
            .execute(params![
                doc.id(),
                heads_to_bytes(&heads),
                chunk_count + 1,
                now_ms()
            ])?;
        }
        write_index(&tx, &entry)?;
        if queue {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO outbox (doc_id, acked_heads, queued_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![doc.id(), heads_to_bytes(before), now_ms()])?;
        }
        extra(&tx, &entry)?;
        tx.commit()?;
        Ok(entry)
    }

    /// Applies changes that arrived from elsewhere (a sync pull): automerge change bytes or a
    /// saved document, for a record this store may not have yet. Nothing is queued for the
    /// server: it sent them. Returns the index row and whether anything changed.
    pub fn apply_remote(&mut self, id: &str, bytes: &[u8]) -> Result<(IndexEntry, bool)> {
        self.apply_remote_with(id, bytes, |_, _| Ok(()))
    }

    /// [`Store::apply_remote`], running `extra` inside the same transaction (the server writes
    /// its change log there). `extra` is not called when nothing changed.
    fn apply_remote_with(
        &mut self,
        id: &str,
        bytes: &[u8],
        extra: impl FnOnce(&Connection, &IndexEntry) -> Result<()>,
    ) -> Result<(IndexEntry, bool)> {
        match self.load(id) {
            Err(Error::NotFound(_)) => {
                let mut doc = RecordDoc::load(bytes).map_err(|e| damaged(id, e))?;
                if doc.id() != id {
                    return Err(Error::Damaged {
                        id: id.into(),
                        reason: format!("the changes are for {}", doc.id()),
                    });
                }
                let tx = self.conn.savepoint()?;
                let entry = write_new(&tx, &mut doc, false)?;
                extra(&tx, &entry)?;
                tx.commit()?;
                Ok((entry, true))
            }
            Err(e) => Err(e),
            Ok(mut doc) => {
                let before = doc.heads();
                doc.apply_changes(bytes).map_err(|e| damaged(id, e))?;
                if doc.heads() == before {
                    return Ok((IndexEntry::of(&doc.view()?), false));
                }
                let entry = self.save_changes_with(&mut doc, &before, false, extra)?;
                Ok((entry, true))
            }
        }
    }

    /// Writes a record the caller holds in memory with changes made elsewhere: `before` the
    /// heads the store holds it at (`None`: a record new to the store). Document, index row and
    /// whatever `extra` writes in one transaction (a savepoint inside a [`Store::batch`]). Unlike
    /// [`Store::apply_remote_with`] it does not load and re-apply the document.
    /// `entry` is the record's index row as the caller computed it from `doc` (so the document
    /// is not read a second time).
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn write_remote_with(
        &mut self,
        doc: &mut RecordDoc,
        before: Option<&[ChangeHash]>,
        entry: IndexEntry,
        extra: impl FnOnce(&Connection, &IndexEntry) -> Result<()>,
    ) -> Result<IndexEntry> {
        match before {
            Some(before) => self.save_changes_entry(doc, before, false, entry, extra),
            None => {
                let tx = self.conn.savepoint()?;
                write_new_entry(&tx, doc, false, &entry)?;
                extra(&tx, &entry)?;
                tx.commit()?;
                Ok(entry)
            }
        }
    }

    /// A value of the store's own metadata (sync cursor, server address, …).
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    /// Sets (or with `None` removes) a metadata value. The identity keys cannot be changed.
    pub fn set_meta(&mut self, key: &str, value: Option<&str>) -> Result<()> {
        if matches!(key, "member" | "device" | "actor") {
            return Err(Error::Damaged {
                id: key.into(),
                reason: "the store's identity cannot be changed".into(),
            });
        }
        match value {
            Some(v) => self
                .conn
                .prepare_cached(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                )?
                .execute(params![key, v])?,
            None => self.conn.prepare_cached("DELETE FROM meta WHERE key = ?1")?.execute([key])?,
        };
        Ok(())
    }

    /// Merges another replica of a record into the store (adding it if new). Returns the index
    /// row and whether anything changed.
    pub fn merge_in(
        &mut self,
        incoming: &mut RecordDoc,
        queue: bool,
    ) -> Result<(IndexEntry, bool)> {
        match self.load(incoming.id()) {
            Err(Error::NotFound(_)) => {
                let e = self.insert_new(incoming, queue, false)?;
                Ok((e, true))
            }
            Err(e) => Err(e),
            Ok(mut ours) => {
                let before = ours.heads();
                ours.merge(incoming)?;
                let changed = ours.heads() != before;
                let e = self.save_changes(&mut ours, &before, queue)?;
                Ok((e, changed))
            }
        }
    }

    /// Merges a record that arrived from another device, after judging what it brings
    /// ([`judge`]): `Ok(Err(reason))` (in Chinese) when it is refused, and nothing is written.
    fn merge_judged(
        &mut self,
        incoming: &mut RecordDoc,
        queue: bool,
        signer: &SignerLookup,
        legal_group: Option<&str>,
    ) -> Result<std::result::Result<(IndexEntry, bool), String>> {
        match self.load(incoming.id()) {
            Err(Error::NotFound(_)) => {
                if let Err(why) = judge(incoming, &[], signer, legal_group) {
                    return Ok(Err(why));
                }
                // Never signed here: these changes were made elsewhere.
                let e = self.insert_new(incoming, queue, false)?;
                Ok(Ok((e, true)))
            }
            Err(e) => Err(e),
            Ok(mut ours) => {
                let before = ours.heads();
                ours.merge(incoming)?;
                if let Err(why) = judge(&mut ours, &before, signer, legal_group) {
                    return Ok(Err(why));
                }
                let changed = ours.heads() != before;
                let e = self.save_changes(&mut ours, &before, queue)?;
                Ok(Ok((e, changed)))
            }
        }
    }

    /// Merges every record of another device's store into this one. Records of the other store
    /// that cannot be read, or that bring changes breaking the rules the server enforces
    /// (issue 10: `rules::check_changes`, `validate::check_record`), are reported, not fatal.
    /// Who made each change is read from its message ([`message_signer`]).
    ///
    /// The directory records go first, so that a group's leader the other store knows of is
    /// known when that group's records are judged.
    pub fn merge_from(&mut self, other: &Path) -> Result<MergeReport> {
        let mut report = MergeReport::default();
        for directory in [true, false] {
            let reviewers = self.reviewers(None)?;
            let identity = self.identity.clone();
            let lookup = move |c: &automerge::Change, group: Option<&str>| {
                message_signer(&identity, &reviewers, c, group)
            };
            let part = self.merge_part(other, &lookup, Some(directory))?;
            report.added += part.added;
            report.updated += part.updated;
            report.unchanged += part.unchanged;
            report.new_conflicts.extend(part.new_conflicts);
            report.skipped.extend(part.skipped);
        }
        Ok(report)
    }

    /// [`Store::merge_from`] with the caller's lookup of who made a change (e.g. from device
    /// certificates).
    pub fn merge_from_with(&mut self, other: &Path, signer: &SignerLookup) -> Result<MergeReport> {
        self.merge_part(other, signer, None)
    }

    /// Merges the records of `other`: only its directory records (`Some(true)`), only the
    /// others (`Some(false)`), or all.
    fn merge_part(
        &mut self,
        other: &Path,
        signer: &SignerLookup,
        directory: Option<bool>,
    ) -> Result<MergeReport> {
        if !other.exists() {
            return Err(Error::Missing(other.into()));
        }
        let conn = Connection::open_with_flags(other, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let version = user_version(&conn).map_err(|e| not_a_store(e, other))?;
        if version == 0 {
            return Err(Error::NotAStore(other.into()));
        }
        if version > SCHEMA_VERSION {
            return Err(Error::NewerSchema {
                path: other.into(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        let theirs = Store {
            conn,
            path: other.into(),
            identity: self.identity.clone(),
            key: None,
        };
        let ids: Vec<String> = {
            let mut stmt = theirs
                .conn
                .prepare("SELECT id, kind FROM docs ORDER BY id")?;
            let rows: Vec<(String, String)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            rows.into_iter()
                .filter(|(_, kind)| {
                    directory.is_none_or(|d| {
                        RecordKind::parse(kind).is_some_and(|k| k.is_directory()) == d
                    })
                })
                .map(|(id, _)| id)
                .collect()
        };
        let mut report = MergeReport::default();
        // The legal advisory group as the directory says before the merge (issue 13).
        let legal_group = self.legal_group()?;
        for id in ids {
            let mut doc = match theirs.load(&id) {
                Ok(d) => d,
                Err(e) => {
                    report.skipped.push((id, e.to_string()));
                    continue;
                }
            };
            let existed = self.exists(&id)?;
            let conflicts_before = if existed {
                self.index_entry(&id)?.map_or(0, |e| e.conflicts)
            } else {
                0
            };
            let queue = !doc.kind().is_directory();
            // The signatures travel with the changes (issue 10): the other store's signatures
            // over this record's changes, and their signers' certificates.
            let hashes: Vec<ChangeHash> = sanjin_core::sign::split_changes(&doc.save_after(&[]))
                .into_iter()
                .map(|(h, _)| h)
                .collect();
            let their_sigs = theirs.sigs_for(&hashes).unwrap_or_default();
            match self.merge_judged(&mut doc, queue, signer, legal_group.as_deref()) {
                Ok(Err(why)) => report.skipped.push((id, format!("拒收：{why}"))),
                Ok(Ok((entry, changed))) => {
                    for sig in &their_sigs {
                        let present: Vec<ChangeHash> = sig
                            .hashes
                            .iter()
                            .filter(|h| hashes.contains(h))
                            .copied()
                            .collect();
                        self.put_sig(sig, &present)?;
                        if let Ok(Some(cert)) = theirs.cert(&sig.signer) {
                            self.put_cert(&cert)?;
                        }
                    }
                    match (existed, changed) {
                        (false, _) => report.added += 1,
                        (true, true) => report.updated += 1,
                        (true, false) => report.unchanged += 1,
                    }
                    if entry.conflicts > conflicts_before {
                        report.new_conflicts.push(id);
                    }
                }
                Err(Error::Damaged { id, reason }) => report.skipped.push((id, reason)),
                Err(Error::Core(e)) => report.skipped.push((id, e.to_string())),
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    pub fn exists(&self, id: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM docs WHERE id = ?1")?
            .exists([id])?)
    }

    /// The documents waiting for the server's acknowledgement.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT o.doc_id, d.kind, o.acked_heads, o.queued_at FROM outbox o JOIN docs d ON d.id = o.doc_id ORDER BY o.queued_at, o.doc_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(OutboxEntry {
                id: r.get(0)?,
                kind: r.get(1)?,
                acked_heads: heads_from_bytes(&r.get::<_, Vec<u8>>(2)?),
                queued_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records that the server holds `id` up to `heads`. The entry leaves the outbox once the
    /// server holds everything this device has.
    pub fn ack(&mut self, id: &str, heads: &[ChangeHash]) -> Result<()> {
        let tx = self.conn.savepoint()?;
        let ours: Option<Vec<u8>> = tx
            .prepare_cached("SELECT heads FROM docs WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        let Some(ours) = ours else {
            return Err(Error::NotFound(id.into()));
        };
        if sanjin_core::same_heads(&heads_from_bytes(&ours), heads) {
            tx.prepare_cached("DELETE FROM outbox WHERE doc_id = ?1")?
                .execute([id])?;
        } else {
            tx.prepare_cached("UPDATE outbox SET acked_heads = ?2 WHERE doc_id = ?1")?
                .execute(params![id, heads_to_bytes(heads)])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Rewrites a record as one compact snapshot.
    pub fn compact(&mut self, id: &str) -> Result<()> {
        let mut doc = self.load(id)?;
        let tx = self.conn.savepoint()?;
        tx.execute("DELETE FROM doc_chunks WHERE doc_id = ?1", [id])?;
        let (snapshot, heads) = (doc.save(), doc.heads());
        tx.execute(
            "UPDATE docs SET snapshot = ?2, heads = ?3, chunk_count = 0 WHERE id = ?1",
            params![id, snapshot, heads_to_bytes(&heads)],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Every record id with its kind.
    pub fn ids(&self) -> Result<Vec<(String, String)>> {
        let mut stmt = self.conn.prepare("SELECT id, kind FROM docs ORDER BY id")?;
        Ok(stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?)
    }

    /// The bytes of every document as stored (snapshots and chunks), for size measurements.
    pub fn document_bytes(&self) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT COALESCE(SUM(LENGTH(snapshot)), 0)
                  + COALESCE((SELECT SUM(LENGTH(bytes)) FROM doc_chunks), 0) FROM docs",
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// Moves what the write-ahead log holds into the file itself (the file's size is then the
    /// store's), as SQLite does from time to time on its own.
    pub fn checkpoint(&self) -> Result<()> {
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }

    /// Reads every document and reports the ones that cannot be read.
    pub fn check(&self) -> Result<Vec<(String, String)>> {
        let mut bad = Vec::new();
        for (id, _) in self.ids()? {
            if let Err(e) = self
                .load(&id)
                .and_then(|mut d| d.view().map_err(Error::from))
            {
                bad.push((id, e.to_string()));
            }
        }
        Ok(bad)
    }

    /// Saves many new records in one transaction (bulk imports: one disk sync for all of them).
    /// Records that already exist are merged instead.
    pub fn insert_batch(&mut self, docs: &mut [RecordDoc], queue: bool) -> Result<Vec<IndexEntry>> {
        let mut out = Vec::with_capacity(docs.len());
        let mut existing = Vec::new();
        let tx = self.conn.savepoint()?;
        for (i, doc) in docs.iter_mut().enumerate() {
            if tx
                .prepare_cached("SELECT 1 FROM docs WHERE id = ?1")?
                .exists([doc.id()])?
            {
                existing.push(i);
                continue;
            }
            out.push(write_new(&tx, doc, queue)?);
        }
        tx.commit()?;
        for i in existing {
            out.push(self.merge_in(&mut docs[i], queue)?.0);
        }
        Ok(out)
    }
}

fn write_new(tx: &Connection, doc: &mut RecordDoc, queue: bool) -> Result<IndexEntry> {
    let entry = IndexEntry::of(&doc.view()?);
    write_new_entry(tx, doc, queue, &entry)?;
    Ok(entry)
}

fn write_new_entry(
    tx: &Connection,
    doc: &mut RecordDoc,
    queue: bool,
    entry: &IndexEntry,
) -> Result<()> {
    let snapshot = doc.save();
    let heads = doc.heads();
    tx.prepare_cached(
        "INSERT INTO docs (id, kind, snapshot, heads, chunk_count, updated_at) VALUES (?1, ?2, ?3, ?4, 0, ?5)",
    )?
    .execute(params![doc.id(), doc.kind().code(), snapshot, heads_to_bytes(&heads), now_ms()])?;
    write_index(tx, entry)?;
    if queue {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO outbox (doc_id, acked_heads, queued_at) VALUES (?1, X'', ?2)",
        )?
        .execute(params![doc.id(), now_ms()])?;
    }
    Ok(())
}

fn read_identity(conn: &Connection) -> Result<Identity> {
    let get = |k: &str| -> Result<String> {
        Ok(conn.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))?)
    };
    Ok(Identity {
        member: get("member")?,
        device: get("device")?,
        actor: unhex(&get("actor")?),
    })
}

fn damaged(id: &str, e: sanjin_core::Error) -> Error {
    match e {
        sanjin_core::Error::Corrupt { reason, .. } => Error::Damaged {
            id: id.into(),
            reason,
        },
        sanjin_core::Error::UnknownSchema {
            found, supported, ..
        } => Error::Damaged {
            id: id.into(),
            reason: format!(
                "document schema {found}, this sanjin reads up to {supported}: upgrade sanjin"
            ),
        },
        other => Error::Damaged {
            id: id.into(),
            reason: other.to_string(),
        },
    }
}

fn not_a_store(e: Error, path: &Path) -> Error {
    match e {
        Error::Database(DbError {
            kind: DbErrorKind::NotADatabase,
            ..
        }) => Error::NotAStore(path.into()),
        other => other,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .collect()
}
