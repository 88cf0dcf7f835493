//! [`SqliteServerStorage`]: the server's storage in one SQLite file — a device store's tables
//! for the documents (written by the device store's own code) and the server's tables beside
//! them, versioned in `server_meta('schema_version')`.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use sanjin_core::protocol::{LOG_LINK_BASIS, log_link};
use sanjin_core::same_heads;
use sanjin_core::sign::ChangeSig;
use sanjin_core::{ChangeHash, IndexEntry, Millis, RecordDoc};

use super::{
    ActorDevice, DeviceAuth, DeviceKeys, DocParts, LogFilter, LogKey, LogRow,
    META_BLOB_UPLOADS_NEW, NewDevice, NewLogEntry, SERVER_SCHEMA_VERSION, ServerStorage,
    StoredAccount, StoredBoxKey, StoredCode, StoredDevice, StoredPassword, StoredSession,
};
use crate::{
    Durability, Error, Filter, Identity, IndexColumn, Result, Store, heads_from_bytes,
    heads_to_bytes, now_ms, sigs,
};

/// The server tables' migrations: step `i` brings the tables to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("schema/s1.sql"),
    include_str!("schema/s2.sql"),
    include_str!("schema/s3.sql"),
    include_str!("schema/s4.sql"),
    include_str!("schema/s5.sql"),
    include_str!("schema/s6.sql"),
    include_str!("schema/s7.sql"),
];

/// The server's storage in its SQLite file. Holds the one writer connection (or, from
/// [`ServerStorage::reader`], a read-only one).
pub struct SqliteServerStorage {
    store: Store,
    /// Units of work open (see [`ServerStorage::begin`]).
    depth: usize,
}

fn account_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<StoredAccount> {
    Ok(StoredAccount {
        member: r.get(at)?,
        role: r.get(at + 1)?,
        group: r.get(at + 2)?,
        name: r.get(at + 3)?,
        chapter: r.get(at + 4)?,
    })
}

impl SqliteServerStorage {
    /// Opens the server's database at `path`, creating it for `identity` if it does not exist;
    /// refuses a file whose store belongs to another identity (a device's store). Runs the
    /// server tables' migrations; the first creates the server's epoch.
    pub fn open(path: &Path, identity: &Identity) -> Result<SqliteServerStorage> {
        let mut store = if path.exists() {
            let store = Store::open(path, Durability::Full)?;
            if store.identity().device != identity.device
                || store.identity().member != identity.member
            {
                return Err(Error::NotServerData(path.into()));
            }
            store
        } else {
            Store::init(path, identity, Durability::Full)?
        };
        migrate(&mut store.conn)?;
        // The store's statements and the server's together exceed rusqlite's default cache of
        // 16; re-preparing them on every request costs more than the queries.
        store.conn.set_prepared_statement_cache_capacity(128);
        Ok(SqliteServerStorage { store, depth: 0 })
    }

    /// Opens the server's database read-only (WAL: never waits for the writer): for the ledger
    /// and other readers beside a running server. The database must exist and be migrated.
    pub fn open_read_only(path: &Path) -> Result<SqliteServerStorage> {
        if !path.exists() {
            return Err(Error::Missing(path.into()));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.set_prepared_statement_cache_capacity(64);
        let identity = crate::read_identity(&conn).map_err(|_| Error::NotAStore(path.into()))?;
        Ok(SqliteServerStorage {
            store: Store {
                conn,
                path: path.into(),
                identity,
                key: None,
            },
            depth: 0,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        self.store.path()
    }

    fn conn(&self) -> &Connection {
        &self.store.conn
    }

    fn path_buf(&self) -> PathBuf {
        self.store.path().to_path_buf()
    }
}

/// Creates or upgrades the server tables; refuses tables from a newer sanjin.
fn migrate(conn: &mut Connection) -> Result<()> {
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
        return Err(Error::NewerServerSchema {
            found: version,
            supported: SERVER_SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let step = i as i64 + 1;
        let tx = conn.transaction()?;
        if step == 4 {
            // Servers before issue 11 created the table on first use: only a new one asks for
            // the originals already on disk to be vouched for.
            let existed = tx
                .prepare(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'blob_uploads'",
                )?
                .exists([])?;
            if !existed {
                tx.execute(
                    "INSERT OR REPLACE INTO server_meta (key, value) VALUES (?1, '1')",
                    [META_BLOB_UPLOADS_NEW],
                )?;
            }
        }
        // Step 5 adds a column, which SQLite cannot do "if not exists": a file whose version
        // was set back (a test that plays an older server) may have it already.
        let has_link = step == 5
            && tx
                .prepare("SELECT 1 FROM pragma_table_info('change_log') WHERE name = 'link'")?
                .exists([])?;
        // Step 7 likewise.
        let has_chapter = step == 7
            && tx
                .prepare("SELECT 1 FROM pragma_table_info('accounts') WHERE name = 'chapter'")?
                .exists([])?;
        if !has_link && !has_chapter {
            tx.execute_batch(sql)?;
        }
        if step == 1 {
            let mut epoch = [0u8; 16];
            getrandom::fill(&mut epoch).expect("the OS provides randomness");
            tx.execute(
                "INSERT INTO server_meta (key, value) VALUES ('epoch', ?1)",
                [crate::hex(&epoch)],
            )?;
            // A new server has no history from before signatures to vouch for.
            tx.execute(
                "INSERT INTO server_meta (key, value) VALUES ('history_vouched', ?1)",
                [now_ms().to_string()],
            )?;
        }
        tx.execute(
            "INSERT INTO server_meta (key, value) VALUES ('schema_version', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [step.to_string()],
        )?;
        tx.commit()?;
    }
    Ok(())
}

impl ServerStorage for SqliteServerStorage {
    fn begin(&mut self) -> Result<()> {
        let sql = if self.depth == 0 {
            "BEGIN IMMEDIATE".to_string()
        } else {
            format!("SAVEPOINT unit{}", self.depth)
        };
        self.conn().execute_batch(&sql)?;
        self.depth += 1;
        Ok(())
    }

    fn end(&mut self, commit: bool) -> Result<()> {
        self.depth = self.depth.saturating_sub(1);
        let d = self.depth;
        if d == 0 {
            if commit {
                if let Err(e) = self.conn().execute_batch("COMMIT") {
                    let _ = self.conn().execute_batch("ROLLBACK");
                    return Err(e.into());
                }
            } else {
                self.conn().execute_batch("ROLLBACK")?;
            }
        } else if commit {
            self.conn().execute_batch(&format!("RELEASE unit{d}"))?;
        } else {
            self.conn()
                .execute_batch(&format!("ROLLBACK TO unit{d}; RELEASE unit{d}"))?;
        }
        Ok(())
    }

    fn reader(&self) -> Result<Option<Box<dyn ServerStorage>>> {
        Ok(Some(Box::new(SqliteServerStorage::open_read_only(
            &self.path_buf(),
        )?)))
    }

    fn identity(&self) -> &Identity {
        self.store.identity()
    }

    fn exists(&self, id: &str) -> Result<bool> {
        self.store.exists(id)
    }

    fn load(&self, id: &str) -> Result<RecordDoc> {
        self.store.load(id)
    }

    fn doc_parts(&self, id: &str) -> Result<Option<DocParts>> {
        let row: Option<(Vec<u8>, Vec<u8>, i64)> = self
            .conn()
            .prepare_cached("SELECT heads, snapshot, chunk_count FROM docs WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((heads, snapshot, n)) = row else {
            return Ok(None);
        };
        let chunks = if n > 0 {
            self.conn()
                .prepare_cached("SELECT bytes FROM doc_chunks WHERE doc_id = ?1 ORDER BY seq")?
                .query_map([id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        } else {
            vec![]
        };
        Ok(Some(DocParts {
            heads: heads_from_bytes(&heads),
            snapshot,
            chunks,
        }))
    }

    fn doc_heads(&self, id: &str) -> Result<Option<Vec<ChangeHash>>> {
        let heads: Option<Vec<u8>> = self
            .conn()
            .prepare_cached("SELECT heads FROM docs WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        Ok(heads.map(|h| heads_from_bytes(&h)))
    }

    fn all_heads(&self) -> Result<Vec<(String, Vec<ChangeHash>)>> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT id, heads FROM docs ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get(0)?, heads_from_bytes(&r.get::<_, Vec<u8>>(1)?)))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn ids(&self) -> Result<Vec<(String, String)>> {
        self.store.ids()
    }

    fn index_entry(&self, id: &str) -> Result<Option<IndexEntry>> {
        self.store.index_entry(id)
    }

    fn list(&self, f: &Filter) -> Result<Vec<IndexEntry>> {
        self.store.list(f)
    }

    fn page(&self, f: &Filter, offset: usize, limit: usize) -> Result<(u64, Vec<IndexEntry>)> {
        self.store.page(f, offset, limit)
    }

    fn count_by(&self, f: &Filter, by: &[IndexColumn]) -> Result<Vec<(Vec<Option<String>>, u64)>> {
        self.store.count_by(f, by)
    }

    fn names(&self) -> Result<Vec<(String, String)>> {
        self.store.names()
    }

    fn active_members(&self, group: Option<&str>, from: &str, to: &str) -> Result<u64> {
        self.store.active_members(group, from, to)
    }

    fn write_doc(
        &mut self,
        doc: &mut RecordDoc,
        before: Option<&[ChangeHash]>,
        entry: &IndexEntry,
        log: Option<NewLogEntry<'_>>,
        sig: Option<&ChangeSig>,
    ) -> Result<()> {
        let id = doc.id().to_string();
        self.store
            .write_remote_with(doc, before, entry.clone(), |tx, _| {
                if let Some(l) = log {
                    append_log(tx, &id, l)?;
                }
                if let Some(s) = sig {
                    sigs::put_sig(tx, s, &s.hashes)?;
                }
                Ok(())
            })?;
        Ok(())
    }

    fn insert_batch(&mut self, docs: &mut [RecordDoc]) -> Result<Vec<IndexEntry>> {
        self.store.insert_batch(docs, false)
    }

    fn put_sig(&mut self, sig: &ChangeSig, present: &[ChangeHash]) -> Result<()> {
        let tx = self.store.conn.savepoint()?;
        sigs::put_sig(&tx, sig, present)?;
        tx.commit()?;
        Ok(())
    }

    fn sigs_for(&self, hashes: &[ChangeHash]) -> Result<Vec<ChangeSig>> {
        self.store.sigs_for(hashes)
    }

    fn append_log(&mut self, doc_id: &str, entry: NewLogEntry<'_>) -> Result<()> {
        append_log(self.conn(), doc_id, entry)
    }

    fn max_seq(&self) -> Result<u64> {
        let n: i64 = self
            .conn()
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM change_log")?
            .query_row([], |r| r.get(0))?;
        Ok(n as u64)
    }

    fn directory_seq(&self) -> Result<u64> {
        let n: i64 = self
            .conn()
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM change_log WHERE scope IS NULL")?
            .query_row([], |r| r.get(0))?;
        Ok(n as u64)
    }

    fn log_since(
        &self,
        filter: &LogFilter<'_>,
        visit: &mut dyn FnMut(LogRow<'_>) -> bool,
    ) -> Result<()> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT seq, doc_id, bytes, heads FROM change_log
             WHERE seq > ?1
               AND (?2 OR scope IS NULL OR scope = ?3
                    OR (?5 <> '[]' AND scope IN (SELECT value FROM json_each(?5)))
                    OR (?6 IS NOT NULL AND also = ?6))
               AND (?4 IS NULL OR origin IS NULL OR origin <> ?4)
             ORDER BY seq",
        )?;
        let groups = serde_json::to_string(filter.groups).expect("strings serialize");
        let mut rows = stmt.query(params![
            filter.after as i64,
            filter.everything,
            filter.group,
            filter.except_origin,
            groups,
            filter.also
        ])?;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let doc_id = row.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
            let bytes = row.get_ref(2)?.as_blob().map_err(rusqlite::Error::from)?;
            let heads = heads_from_bytes(row.get_ref(3)?.as_blob().map_err(rusqlite::Error::from)?);
            if !visit(LogRow {
                seq: seq as u64,
                doc_id,
                bytes,
                heads: &heads,
            }) {
                break;
            }
        }
        Ok(())
    }

    fn log_entry(&self, seq: u64) -> Result<Option<LogKey>> {
        log_key(self.conn(), Some(seq))
    }

    fn log_docs_since(&self, seq: u64) -> Result<Vec<String>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT DISTINCT doc_id FROM change_log WHERE seq > ?1 ORDER BY doc_id",
        )?;
        let rows = stmt.query_map([seq as i64], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn log_has(&self, doc_id: &str, heads: &[ChangeHash]) -> Result<bool> {
        // Heads are logged in the order the document reports them; compare as sets.
        let mut stmt = self.conn().prepare_cached(
            "SELECT heads FROM change_log WHERE doc_id = ?1 AND LENGTH(heads) = ?2",
        )?;
        let rows = stmt.query_map(params![doc_id, (heads.len() * 32) as i64], |r| {
            r.get::<_, Vec<u8>>(0)
        })?;
        for row in rows {
            if same_heads(&heads_from_bytes(&row?), heads) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn server_meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .prepare_cached("SELECT value FROM server_meta WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    fn set_server_meta(&mut self, key: &str, value: Option<&str>) -> Result<()> {
        match value {
            Some(v) => self
                .conn()
                .prepare_cached("INSERT OR REPLACE INTO server_meta (key, value) VALUES (?1, ?2)")?
                .execute(params![key, v])?,
            None => self
                .conn()
                .prepare_cached("DELETE FROM server_meta WHERE key = ?1")?
                .execute([key])?,
        };
        Ok(())
    }

    fn account(&self, member: &str) -> Result<Option<StoredAccount>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT member, role, group_id, name, chapter FROM accounts WHERE member = ?1",
            )?
            .query_row([member], |r| account_row(r, 0))
            .optional()?)
    }

    fn accounts(&self) -> Result<Vec<StoredAccount>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT member, role, group_id, name, chapter FROM accounts ORDER BY member",
        )?;
        let rows = stmt.query_map([], |r| account_row(r, 0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn put_account(&mut self, a: &StoredAccount, now: Millis) -> Result<()> {
        self.conn().prepare_cached(
            "INSERT INTO accounts (member, role, group_id, name, created_at, chapter) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(member) DO UPDATE SET role = excluded.role, group_id = excluded.group_id, name = excluded.name, chapter = excluded.chapter",
        )?
        .execute(params![a.member, a.role, a.group, a.name, now, a.chapter])?;
        Ok(())
    }

    fn devices(&self) -> Result<Vec<StoredDevice>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT device_id, member, name, actor, enrolled_at, revoked_at, last_sync_at FROM devices ORDER BY member, enrolled_at",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(StoredDevice {
                device_id: r.get(0)?,
                member: r.get(1)?,
                name: r.get(2)?,
                actor: r.get(3)?,
                enrolled_at: r.get(4)?,
                revoked_at: r.get(5)?,
                last_sync_at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn device_exists(&self, device_id: &str) -> Result<bool> {
        Ok(self
            .conn()
            .prepare_cached("SELECT 1 FROM devices WHERE device_id = ?1")?
            .exists([device_id])?)
    }

    fn actor_in_use(&self, actor: &str) -> Result<bool> {
        Ok(self
            .conn()
            .prepare_cached("SELECT 1 FROM devices WHERE actor = ?1")?
            .exists([actor])?)
    }

    fn insert_device(&mut self, d: &NewDevice<'_>) -> Result<()> {
        self.conn().prepare_cached(
            "INSERT INTO devices (device_id, member, secret_hash, actor, name, enrolled_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![d.device_id, d.member, d.secret_hash, d.actor, d.name, d.enrolled_at])?;
        Ok(())
    }

    fn revoke_device(&mut self, device_id: &str, now: Millis) -> Result<bool> {
        let n = self
            .conn()
            .prepare_cached(
                "UPDATE devices SET revoked_at = COALESCE(revoked_at, ?2) WHERE device_id = ?1",
            )?
            .execute(params![device_id, now])?;
        Ok(n > 0)
    }

    fn device_auth(&self, device_id: &str) -> Result<Option<DeviceAuth>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT d.secret_hash, d.revoked_at IS NOT NULL, a.member, a.role, a.group_id, a.name, a.chapter
                 FROM devices d JOIN accounts a ON a.member = d.member WHERE d.device_id = ?1",
            )?
            .query_row([device_id], |r| {
                Ok(DeviceAuth {
                    secret_hash: r.get(0)?,
                    revoked: r.get(1)?,
                    account: account_row(r, 2)?,
                })
            })
            .optional()?)
    }

    fn device_by_actor(&self, actor: &str) -> Result<Option<ActorDevice>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT d.device_id, d.revoked_at IS NOT NULL, a.member, a.role, a.group_id, a.name, a.chapter
                 FROM devices d JOIN accounts a ON a.member = d.member WHERE d.actor = ?1",
            )?
            .query_row([actor], |r| {
                Ok(ActorDevice {
                    device_id: r.get(0)?,
                    revoked: r.get(1)?,
                    account: account_row(r, 2)?,
                })
            })
            .optional()?)
    }

    fn device_actor(&self, device_id: &str) -> Result<Option<(String, String)>> {
        Ok(self
            .conn()
            .prepare_cached("SELECT actor, member FROM devices WHERE device_id = ?1")?
            .query_row([device_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    fn device_keys(&self, device_id: &str) -> Result<Option<DeviceKeys>> {
        Ok(self
            .conn()
            .prepare_cached("SELECT public_key, cert FROM devices WHERE device_id = ?1")?
            .query_row([device_id], |r| {
                Ok(DeviceKeys {
                    public_key: r.get(0)?,
                    cert: r.get(1)?,
                })
            })
            .optional()?)
    }

    fn set_device_keys(&mut self, device_id: &str, public_key: &[u8], cert: &[u8]) -> Result<()> {
        self.conn()
            .prepare_cached("UPDATE devices SET public_key = ?2, cert = ?3 WHERE device_id = ?1")?
            .execute(params![device_id, public_key, cert])?;
        Ok(())
    }

    fn touch_device(
        &mut self,
        device_id: &str,
        now: Millis,
        min_gap_ms: Option<Millis>,
    ) -> Result<()> {
        match min_gap_ms {
            None => self
                .conn()
                .prepare_cached("UPDATE devices SET last_sync_at = ?2 WHERE device_id = ?1")?
                .execute(params![device_id, now])?,
            Some(gap) => self
                .conn()
                .prepare_cached(
                    "UPDATE devices SET last_sync_at = ?2 WHERE device_id = ?1 AND (last_sync_at IS NULL OR last_sync_at < ?2 - ?3)",
                )?
                .execute(params![device_id, now, gap])?,
        };
        Ok(())
    }

    fn insert_code(
        &mut self,
        code_hash: &[u8],
        member: &str,
        created_at: Millis,
        expires_at: Millis,
    ) -> Result<()> {
        self.conn().prepare_cached(
            "INSERT INTO enrollment_codes (code_hash, member, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![code_hash, member, created_at, expires_at])?;
        Ok(())
    }

    fn code(&self, code_hash: &[u8]) -> Result<Option<StoredCode>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT member, expires_at, used_at FROM enrollment_codes WHERE code_hash = ?1",
            )?
            .query_row([code_hash], |r| {
                Ok(StoredCode {
                    member: r.get(0)?,
                    expires_at: r.get(1)?,
                    used_at: r.get(2)?,
                })
            })
            .optional()?)
    }

    fn use_code(&mut self, code_hash: &[u8], now: Millis, device_id: &str) -> Result<bool> {
        let n = self.conn().prepare_cached(
            "UPDATE enrollment_codes SET used_at = ?2, device_id = ?3 WHERE code_hash = ?1 AND used_at IS NULL",
        )?
        .execute(params![code_hash, now, device_id])?;
        Ok(n == 1)
    }

    fn stored_response(
        &self,
        device_id: &str,
        request_id: &[u8; 16],
        not_before: Millis,
    ) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT response FROM idempotency WHERE device_id = ?1 AND request_id = ?2 AND at >= ?3",
            )?
            .query_row(params![device_id, &request_id[..], not_before], |r| r.get(0))
            .optional()?)
    }

    fn remember_response(
        &mut self,
        device_id: &str,
        request_id: &[u8; 16],
        response: &[u8],
        now: Millis,
        ttl_ms: Millis,
        keep: u32,
    ) -> Result<()> {
        let tx = self.store.conn.savepoint()?;
        tx.prepare_cached(
            "INSERT OR REPLACE INTO idempotency (device_id, request_id, response, at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![device_id, &request_id[..], response, now])?;
        tx.prepare_cached("DELETE FROM idempotency WHERE at < ?1")?
            .execute([now - ttl_ms])?;
        tx.prepare_cached(
            "DELETE FROM idempotency WHERE device_id = ?1 AND request_id NOT IN
             (SELECT request_id FROM idempotency WHERE device_id = ?1 ORDER BY at DESC LIMIT ?2)",
        )?
        .execute(params![device_id, keep])?;
        tx.prepare_cached("UPDATE devices SET last_sync_at = ?2 WHERE device_id = ?1")?
            .execute(params![device_id, now])?;
        tx.commit()?;
        Ok(())
    }

    fn sync_state(&self, device_id: &str, doc_id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn()
            .prepare_cached("SELECT state FROM sync_states WHERE device_id = ?1 AND doc_id = ?2")?
            .query_row([device_id, doc_id], |r| r.get(0))
            .optional()?)
    }

    fn put_sync_states(
        &mut self,
        device_id: &str,
        states: &[(String, Vec<u8>)],
        now: Millis,
    ) -> Result<()> {
        let tx = self.store.conn.savepoint()?;
        {
            let mut put = tx.prepare_cached(
                "INSERT INTO sync_states (device_id, doc_id, state, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(device_id, doc_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
            )?;
            for (doc_id, state) in states {
                put.execute(params![device_id, doc_id, state, now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn record_upload(
        &mut self,
        hash: &[u8; 32],
        device_id: &str,
        scope: &str,
        at: Millis,
    ) -> Result<()> {
        self.conn()
            .prepare_cached(
                "INSERT INTO blob_uploads (hash, device_id, scope, at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![&hash[..], device_id, scope, at])?;
        Ok(())
    }

    fn upload_exists(&self, hash: &[u8; 32], scope: Option<&str>) -> Result<bool> {
        Ok(match scope {
            None => self
                .conn()
                .prepare_cached("SELECT 1 FROM blob_uploads WHERE hash = ?1 LIMIT 1")?
                .exists(params![&hash[..]])?,
            Some(s) => self
                .conn()
                .prepare_cached("SELECT 1 FROM blob_uploads WHERE hash = ?1 AND scope = ?2")?
                .exists(params![&hash[..], s])?,
        })
    }

    fn uploads(&self, hash: &[u8; 32]) -> Result<Vec<(String, String)>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT device_id, scope FROM blob_uploads WHERE hash = ?1 ORDER BY at, device_id",
        )?;
        let rows = stmt.query_map(params![&hash[..]], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn box_keys(&self, owner: Option<&str>) -> Result<Vec<StoredBoxKey>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT owner, epoch, secret, created_at FROM server_box_keys
             WHERE ?1 IS NULL OR owner = ?1 ORDER BY owner, epoch",
        )?;
        let rows = stmt.query_map([owner], |r| {
            Ok(StoredBoxKey {
                owner: r.get(0)?,
                epoch: r.get(1)?,
                secret: r.get(2)?,
                created_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn insert_box_key(&mut self, k: &StoredBoxKey) -> Result<bool> {
        let n = self
            .conn()
            .prepare_cached(
                "INSERT INTO server_box_keys (owner, epoch, secret, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![k.owner, k.epoch, k.secret, k.created_at])?;
        Ok(n == 1)
    }

    fn password(&self, member: &str) -> Result<Option<StoredPassword>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT salt, hash, iterations FROM console_passwords WHERE member = ?1",
            )?
            .query_row([member], |r| {
                Ok(StoredPassword {
                    salt: r.get(0)?,
                    hash: r.get(1)?,
                    iterations: r.get(2)?,
                })
            })
            .optional()?)
    }

    fn set_password(&mut self, member: &str, p: &StoredPassword, now: Millis) -> Result<()> {
        self.conn().prepare_cached(
            "INSERT INTO console_passwords (member, salt, hash, iterations, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(member) DO UPDATE SET salt = excluded.salt, hash = excluded.hash,
                 iterations = excluded.iterations, updated_at = excluded.updated_at",
        )?
        .execute(params![member, p.salt, p.hash, p.iterations, now])?;
        Ok(())
    }

    fn replace_password(
        &mut self,
        member: &str,
        old: &StoredPassword,
        new: &StoredPassword,
        now: Millis,
    ) -> Result<bool> {
        let n = self.conn().prepare_cached(
            "UPDATE console_passwords SET salt = ?1, hash = ?2, iterations = ?3, updated_at = ?4
             WHERE member = ?5 AND hash = ?6 AND iterations = ?7",
        )?
        .execute(params![new.salt, new.hash, new.iterations, now, member, old.hash, old.iterations])?;
        Ok(n == 1)
    }

    fn insert_session(&mut self, token_hash: &[u8], s: &StoredSession, now: Millis) -> Result<()> {
        let tx = self.store.conn.savepoint()?;
        tx.prepare_cached("DELETE FROM console_sessions WHERE expires_at < ?1")?
            .execute([now])?;
        tx.prepare_cached(
            "INSERT INTO console_sessions (token_hash, member, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![token_hash, s.member, s.csrf, now, s.expires_at])?;
        tx.commit()?;
        Ok(())
    }

    fn session(&self, token_hash: &[u8]) -> Result<Option<StoredSession>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT member, csrf, expires_at FROM console_sessions WHERE token_hash = ?1",
            )?
            .query_row([token_hash], |r| {
                Ok(StoredSession {
                    member: r.get(0)?,
                    csrf: r.get(1)?,
                    expires_at: r.get(2)?,
                })
            })
            .optional()?)
    }

    fn delete_session(&mut self, token_hash: &[u8]) -> Result<()> {
        self.conn()
            .prepare_cached("DELETE FROM console_sessions WHERE token_hash = ?1")?
            .execute([token_hash])?;
        Ok(())
    }

    fn delete_sessions_of(&mut self, member: &str) -> Result<()> {
        self.conn()
            .prepare_cached("DELETE FROM console_sessions WHERE member = ?1")?
            .execute([member])?;
        Ok(())
    }
}

/// The key of the entry at `seq`, or of the last entry (`None`).
fn log_key(conn: &Connection, seq: Option<u64>) -> Result<Option<LogKey>> {
    let sql = match seq {
        Some(_) => "SELECT doc_id, heads, link FROM change_log WHERE seq = ?1",
        None => {
            "SELECT doc_id, heads, link FROM change_log WHERE ?1 IS NULL ORDER BY seq DESC LIMIT 1"
        }
    };
    let row: Option<(String, Vec<u8>, Option<i64>)> = conn
        .prepare_cached(sql)?
        .query_row(params![seq.map(|s| s as i64)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    Ok(row.map(|(doc_id, heads, link)| LogKey {
        doc_id,
        heads: heads_from_bytes(&heads),
        // Stored as SQLite's signed integer: the same 64 bits.
        link: link.map(|l| l as u64),
    }))
}

/// Appends a change-log entry on `conn` (inside the caller's transaction or savepoint), linked
/// to the entry before it.
fn append_log(conn: &Connection, doc_id: &str, e: NewLogEntry<'_>) -> Result<()> {
    let prev = log_key(conn, None)?.map_or(LOG_LINK_BASIS, |k| k.link_or_own());
    let link = log_link(prev, doc_id, e.heads);
    conn.prepare_cached(
        "INSERT INTO change_log (doc_id, scope, origin, bytes, heads, at, link, also) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![doc_id, e.scope, e.origin, e.bytes, heads_to_bytes(e.heads), e.at, link as i64, e.also])?;
    Ok(())
}
