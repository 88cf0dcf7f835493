//! The sync server's storage (issue 11): every statement on the server's tables, behind one
//! trait, [`ServerStorage`], so that the server holds no SQL and another database can follow.
//!
//! - [`SqliteServerStorage`]: the real one. The server's record documents are a device store's
//!   tables (`docs`, `doc_chunks`, the index tables, `sigs`; the code that writes them is the
//!   device store's, shared privately), plus the server's own tables (`schema/s*.sql`, versioned
//!   in `server_meta('schema_version')`) in the same SQLite file, so a document, its index row
//!   and its change-log entry are written in one transaction.
//! - [`MemoryServerStorage`]: everything in memory. It passes the same storage tests
//!   (`tests/server_storage.rs`), which shows the trait holds no SQLite assumption.
//!
//! **The transaction rule.** The trait's writes are each atomic on their own. Several of them
//! make one unit of work with [`atomically`] (or [`ServerStorage::transaction`]): the outermost
//! unit is a transaction that reaches the disk with one sync when it ends; a unit inside another
//! is a savepoint of it, rolled back alone when it fails. That is how a group commit answers many
//! exchanges with one disk sync and rolls back a failed exchange alone. `begin`/`end` are the
//! primitives an implementation provides; callers use [`atomically`], never them.
//!
//! Nothing here is a database type: no SQL, no SQLite types or errors in the trait (errors are
//! [`crate::Error`], whose database failures are a [`crate::DbError`]).

use sanjin_core::sign::ChangeSig;
use sanjin_core::{ChangeHash, IndexEntry, Millis, RecordDoc};

use crate::{Filter, Identity, IndexColumn, Result};

mod memory;
mod sqlite;

pub use memory::MemoryServerStorage;
pub use sqlite::SqliteServerStorage;

/// The server tables' schema version this build writes (`server_meta('schema_version')`):
/// 1 accounts, devices, codes, change log, idempotency, sync states; 2 device keys (issue 10);
/// 3 console passwords and sessions, 4 blob uploads (issue 11: both were created on first use
/// before); 5 change-log links; 6 the server's box keys (issue 12); 7 an account's chapter (staff
/// of a county chapter) and the change log's second reader group (legal appeals, issue 13).
pub const SERVER_SCHEMA_VERSION: i64 = 7;

/// `server_meta` key set by the migration that creates `blob_uploads`: the originals already on
/// disk are to be vouched for once (the server clears it when it has).
pub const META_BLOB_UPLOADS_NEW: &str = "blob_uploads_new";

/// An account as stored (the server maps `role` onto its roles).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAccount {
    pub member: String,
    pub role: String,
    pub group: Option<String>,
    pub name: String,
    /// The chapter of staff of a county chapter (issue 13); `None`: the whole city.
    pub chapter: Option<String>,
}

/// An enrolled device as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDevice {
    pub device_id: String,
    pub member: String,
    pub name: String,
    /// Hex of the device's automerge actor id.
    pub actor: String,
    pub enrolled_at: Millis,
    pub revoked_at: Option<Millis>,
    pub last_sync_at: Option<Millis>,
}

/// A device to enroll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice<'a> {
    pub device_id: &'a str,
    pub member: &'a str,
    /// SHA-256 of the device's secret.
    pub secret_hash: &'a [u8],
    pub actor: &'a str,
    pub name: &'a str,
    pub enrolled_at: Millis,
}

/// What a device's credentials are checked against, with its account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuth {
    pub secret_hash: Vec<u8>,
    pub revoked: bool,
    pub account: StoredAccount,
}

/// The device behind an actor, with its account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorDevice {
    pub device_id: String,
    pub revoked: bool,
    pub account: StoredAccount,
}

/// A device's registered signing key and certificate (encoded), if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceKeys {
    pub public_key: Option<Vec<u8>>,
    pub cert: Option<Vec<u8>>,
}

/// A one-time enrollment code as stored (by its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCode {
    pub member: String,
    pub expires_at: Millis,
    pub used_at: Option<Millis>,
}

/// A change-log entry to append, for the document whose index row is written with it.
#[derive(Debug, Clone, Copy)]
pub struct NewLogEntry<'a> {
    /// The document's read scope: its activity group, `None` for the directory.
    pub scope: Option<&'a str>,
    /// A second group that reads it (issue 13: the legal advisory group, for a legal appeal of
    /// another group; `sanjin_core::rules::also_read_by`).
    pub also: Option<&'a str>,
    /// The device that pushed it (`None`: the server itself).
    pub origin: Option<&'a str>,
    /// Automerge changes, or a whole saved document.
    pub bytes: &'a [u8],
    /// The document's heads after it.
    pub heads: &'a [ChangeHash],
    pub at: Millis,
}

/// What identifies a change-log entry: its document, its heads, and its link over the log up
/// to it (`sanjin_core::protocol::log_link`; `None` for an entry logged before links existed).
/// Appending computes the link; nothing else writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogKey {
    pub doc_id: String,
    pub heads: Vec<ChangeHash>,
    pub link: Option<u64>,
}

impl LogKey {
    /// The link this entry stands for: its own, or for an entry from before links, the hash of
    /// its document and heads alone.
    pub fn link_or_own(&self) -> u64 {
        self.link.unwrap_or_else(|| {
            sanjin_core::protocol::log_link(
                sanjin_core::protocol::LOG_LINK_BASIS,
                &self.doc_id,
                &self.heads,
            )
        })
    }
}

/// Which change-log entries a reader gets.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogFilter<'a> {
    /// Entries after this position.
    pub after: u64,
    /// Every scope (city office accounts); else the directory, `group`, `groups` and the
    /// entries whose second reader is `also`.
    pub everything: bool,
    pub group: &'a str,
    /// More groups (staff of a county chapter: its groups, issue 13).
    pub groups: &'a [String],
    /// The entries a second group reads (issue 13: a member of the legal advisory group reads
    /// legal appeals of every group).
    pub also: Option<&'a str>,
    /// Leaves out the entries this device pushed.
    pub except_origin: Option<&'a str>,
}

/// One change-log entry as read.
#[derive(Debug, Clone, Copy)]
pub struct LogRow<'a> {
    pub seq: u64,
    pub doc_id: &'a str,
    pub bytes: &'a [u8],
    pub heads: &'a [ChangeHash],
}

/// A stored document's parts: its heads, its snapshot and the incremental chunks after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocParts {
    pub heads: Vec<ChangeHash>,
    pub snapshot: Vec<u8>,
    pub chunks: Vec<Vec<u8>>,
}

impl DocParts {
    /// The snapshot followed by every chunk: what `automerge::AutoCommit::load` reads at once.
    pub fn concatenated(self) -> Vec<u8> {
        let mut out = self.snapshot;
        for c in self.chunks {
            out.extend_from_slice(&c);
        }
        out
    }
}

/// One of the server's X25519 secrets that bundles are sealed to (issue 12): the server's own
/// (`owner` empty, epoch 0) or an activity group's at one epoch.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredBoxKey {
    /// `""` for the server's own key, else the activity group's id.
    pub owner: String,
    pub epoch: u32,
    /// The 32 bytes of the X25519 static secret.
    pub secret: Vec<u8>,
    pub created_at: Millis,
}

impl std::fmt::Debug for StoredBoxKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredBoxKey")
            .field("owner", &self.owner)
            .field("epoch", &self.epoch)
            .field("secret", &"…")
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A console password as stored: `iterations` 0 is an Argon2id PHC string in `hash` (empty
/// `salt`); any other value a PBKDF2-HMAC-SHA256 hash of that many iterations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPassword {
    pub salt: Vec<u8>,
    pub hash: Vec<u8>,
    pub iterations: u32,
}

/// A console session as stored (by the hash of its token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub member: String,
    pub csrf: String,
    pub expires_at: Millis,
}

/// The server's storage: its record documents, change log and tables. Every method is atomic on
/// its own; several make one unit with [`atomically`]. See the module's documentation.
pub trait ServerStorage: Send {
    // ------------------------------------------------------------ units of work

    /// Opens a unit of work: the outermost a transaction, inner ones savepoints of it. Call
    /// through [`atomically`] only.
    fn begin(&mut self) -> Result<()>;
    /// Ends the innermost unit: `commit` keeps its writes (the outermost's reach the disk),
    /// otherwise exactly its writes are undone. Call through [`atomically`] only.
    fn end(&mut self, commit: bool) -> Result<()>;
    /// Another handle on the same data that only reads, usable beside this one (its own
    /// connection), or `None` when the storage has no such thing (in memory).
    fn reader(&self) -> Result<Option<Box<dyn ServerStorage>>>;

    // ------------------------------------------------------------ documents

    /// The server's own identity (its actor signs what the server writes).
    fn identity(&self) -> &Identity;
    /// The server as the author of changes it makes.
    fn author(&self) -> sanjin_core::Author {
        self.identity()
            .author()
            .expect("checked when the storage was set up")
    }
    fn exists(&self, id: &str) -> Result<bool>;
    /// A record's document (`Error::NotFound`, `Error::Damaged`).
    fn load(&self, id: &str) -> Result<RecordDoc>;
    /// A document's stored parts, `None` if there is no such document.
    fn doc_parts(&self, id: &str) -> Result<Option<DocParts>>;
    /// A document's stored heads, `None` if there is no such document.
    fn doc_heads(&self, id: &str) -> Result<Option<Vec<ChangeHash>>>;
    /// Every document's id and stored heads, by id.
    fn all_heads(&self) -> Result<Vec<(String, Vec<ChangeHash>)>>;
    /// Every record id with its kind, by id.
    fn ids(&self) -> Result<Vec<(String, String)>>;
    fn index_entry(&self, id: &str) -> Result<Option<IndexEntry>>;
    /// Index rows, newest first (see [`Filter`]).
    fn list(&self, f: &Filter) -> Result<Vec<IndexEntry>>;
    /// One page of index rows and how many the filter matches in all.
    fn page(&self, f: &Filter, offset: usize, limit: usize) -> Result<(u64, Vec<IndexEntry>)>;
    /// Counts of index rows by the values of `by`, in ascending order of the values.
    fn count_by(&self, f: &Filter, by: &[IndexColumn]) -> Result<Vec<(Vec<Option<String>>, u64)>>;
    /// Every directory record's id and title (its name), tombstoned ones left out, by id.
    fn names(&self) -> Result<Vec<(String, String)>>;
    /// Members of the directory (of `group`) that a visit or opinion dated `from..=to` names.
    fn active_members(&self, group: Option<&str>, from: &str, to: &str) -> Result<u64>;
    /// Writes a document the caller holds in memory: `before` the heads it is stored at (`None`:
    /// new), `entry` its index row; and with them, in the same unit, its change-log entry and
    /// the signature over changes the server made.
    fn write_doc(
        &mut self,
        doc: &mut RecordDoc,
        before: Option<&[ChangeHash]>,
        entry: &IndexEntry,
        log: Option<NewLogEntry<'_>>,
        sig: Option<&ChangeSig>,
    ) -> Result<()>;
    /// Writes many documents in one unit (new ones inserted, existing ones merged); their index
    /// rows. No change-log entries: see [`ServerStorage::append_log`].
    fn insert_batch(&mut self, docs: &mut [RecordDoc]) -> Result<Vec<IndexEntry>>;

    // ------------------------------------------------------------ signatures

    /// Keeps a signature, noting which of its hashes are present here.
    fn put_sig(&mut self, sig: &ChangeSig, present: &[ChangeHash]) -> Result<()>;
    /// The signatures that cover `hashes`, each once.
    fn sigs_for(&self, hashes: &[ChangeHash]) -> Result<Vec<ChangeSig>>;

    // ------------------------------------------------------------ change log

    /// Appends a change-log entry for `doc_id`.
    fn append_log(&mut self, doc_id: &str, entry: NewLogEntry<'_>) -> Result<()>;
    /// The highest log position (0 for an empty log).
    fn max_seq(&self) -> Result<u64>;
    /// The position of the last entry of a directory record (scope none; 0 for none): what a
    /// cache of directory facts is valid for (issue 13).
    fn directory_seq(&self) -> Result<u64>;
    /// The entries `filter` selects, in log order, until `visit` returns `false`.
    fn log_since(
        &self,
        filter: &LogFilter<'_>,
        visit: &mut dyn FnMut(LogRow<'_>) -> bool,
    ) -> Result<()>;
    /// The document, heads and link of the entry at `seq`.
    fn log_entry(&self, seq: u64) -> Result<Option<LogKey>>;
    /// The documents with entries after `seq`, each once, by id.
    fn log_docs_since(&self, seq: u64) -> Result<Vec<String>>;
    /// Whether the log has an entry for `doc_id` at exactly these heads (in any order).
    fn log_has(&self, doc_id: &str, heads: &[ChangeHash]) -> Result<bool>;

    // ------------------------------------------------------------ server meta

    fn server_meta(&self, key: &str) -> Result<Option<String>>;
    /// Sets (`Some`) or removes (`None`) a value.
    fn set_server_meta(&mut self, key: &str, value: Option<&str>) -> Result<()>;

    // ------------------------------------------------------------ accounts

    fn account(&self, member: &str) -> Result<Option<StoredAccount>>;
    /// Every account, by member id.
    fn accounts(&self) -> Result<Vec<StoredAccount>>;
    /// Creates or replaces an account (its creation time stays the first).
    fn put_account(&mut self, account: &StoredAccount, now: Millis) -> Result<()>;

    // ------------------------------------------------------------ devices

    /// Every device, by member then enrollment.
    fn devices(&self) -> Result<Vec<StoredDevice>>;
    fn device_exists(&self, device_id: &str) -> Result<bool>;
    fn actor_in_use(&self, actor: &str) -> Result<bool>;
    fn insert_device(&mut self, device: &NewDevice<'_>) -> Result<()>;
    /// Revokes a device (keeping the first revocation time); `false` if there is none.
    fn revoke_device(&mut self, device_id: &str, now: Millis) -> Result<bool>;
    fn device_auth(&self, device_id: &str) -> Result<Option<DeviceAuth>>;
    fn device_by_actor(&self, actor: &str) -> Result<Option<ActorDevice>>;
    /// A device's actor (hex) and member.
    fn device_actor(&self, device_id: &str) -> Result<Option<(String, String)>>;
    fn device_keys(&self, device_id: &str) -> Result<Option<DeviceKeys>>;
    fn set_device_keys(&mut self, device_id: &str, public_key: &[u8], cert: &[u8]) -> Result<()>;
    /// Notes a sync: always, or with `min_gap_ms` only if the last noted one is older.
    fn touch_device(
        &mut self,
        device_id: &str,
        now: Millis,
        min_gap_ms: Option<Millis>,
    ) -> Result<()>;

    // ------------------------------------------------------------ enrollment codes

    fn insert_code(
        &mut self,
        code_hash: &[u8],
        member: &str,
        created_at: Millis,
        expires_at: Millis,
    ) -> Result<()>;
    fn code(&self, code_hash: &[u8]) -> Result<Option<StoredCode>>;
    /// Marks an unused code used by `device_id`; `false` if it was used already.
    fn use_code(&mut self, code_hash: &[u8], now: Millis, device_id: &str) -> Result<bool>;

    // ------------------------------------------------------------ idempotency

    /// The answer kept for a request, if kept at or after `not_before`.
    fn stored_response(
        &self,
        device_id: &str,
        request_id: &[u8; 16],
        not_before: Millis,
    ) -> Result<Option<Vec<u8>>>;
    /// Keeps an answer, forgets those older than `now - ttl_ms` and all but the device's
    /// `keep` latest, and notes the device's sync.
    fn remember_response(
        &mut self,
        device_id: &str,
        request_id: &[u8; 16],
        response: &[u8],
        now: Millis,
        ttl_ms: Millis,
        keep: u32,
    ) -> Result<()>;

    // ------------------------------------------------------------ automerge sync states

    fn sync_state(&self, device_id: &str, doc_id: &str) -> Result<Option<Vec<u8>>>;
    fn put_sync_states(
        &mut self,
        device_id: &str,
        states: &[(String, Vec<u8>)],
        now: Millis,
    ) -> Result<()>;

    // ------------------------------------------------------------ blob uploads

    /// Notes that `device_id` uploaded `hash` for `scope` (`""`: office); kept once.
    fn record_upload(
        &mut self,
        hash: &[u8; 32],
        device_id: &str,
        scope: &str,
        at: Millis,
    ) -> Result<()>;
    /// Whether an upload of `hash` exists (for `scope`, or any).
    fn upload_exists(&self, hash: &[u8; 32], scope: Option<&str>) -> Result<bool>;
    /// The uploads of `hash`: (device, scope), oldest first.
    fn uploads(&self, hash: &[u8; 32]) -> Result<Vec<(String, String)>>;

    // ------------------------------------------------------------ box keys (issue 12)

    /// The server's box keys: of one owner (`Some("")` the server's own, `Some(group)`), or all;
    /// by owner, then epoch.
    fn box_keys(&self, owner: Option<&str>) -> Result<Vec<StoredBoxKey>>;
    /// Keeps a box key; `false` (and the stored one kept) if its owner has one at that epoch.
    fn insert_box_key(&mut self, key: &StoredBoxKey) -> Result<bool>;

    // ------------------------------------------------------------ console

    fn password(&self, member: &str) -> Result<Option<StoredPassword>>;
    fn set_password(&mut self, member: &str, password: &StoredPassword, now: Millis) -> Result<()>;
    /// Replaces `old` by `new` unless the password changed meanwhile; whether it did.
    fn replace_password(
        &mut self,
        member: &str,
        old: &StoredPassword,
        new: &StoredPassword,
        now: Millis,
    ) -> Result<bool>;
    /// Opens a session (forgetting expired ones).
    fn insert_session(
        &mut self,
        token_hash: &[u8],
        session: &StoredSession,
        now: Millis,
    ) -> Result<()>;
    fn session(&self, token_hash: &[u8]) -> Result<Option<StoredSession>>;
    fn delete_session(&mut self, token_hash: &[u8]) -> Result<()>;
    fn delete_sessions_of(&mut self, member: &str) -> Result<()>;
}

/// The one way to run a unit of work on a server's storage: `f` runs on `holder` (which owns
/// the storage, reached by `storage`) inside a unit — a transaction, or a savepoint of the
/// enclosing one — committed if `f` returns `Ok`, undone if it fails.
pub fn atomically<H: ?Sized, T, E: From<crate::Error>>(
    holder: &mut H,
    storage: fn(&mut H) -> &mut dyn ServerStorage,
    f: impl FnOnce(&mut H) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    storage(holder).begin()?;
    match f(holder) {
        Ok(v) => {
            storage(holder).end(true)?;
            Ok(v)
        }
        Err(e) => {
            let _ = storage(holder).end(false);
            Err(e)
        }
    }
}

impl<'a> dyn ServerStorage + 'a {
    /// [`atomically`] on the storage itself.
    pub fn transaction<T, E: From<crate::Error>>(
        &mut self,
        f: impl FnOnce(&mut dyn ServerStorage) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        atomically(self, |s| s, |s| f(s))
    }
}
