//! [`MemoryServerStorage`]: the server's storage in memory — for tests of the server without a
//! file, and the proof that [`ServerStorage`] assumes nothing of SQLite (it passes the same
//! storage tests, `tests/server_storage.rs`). A unit of work keeps a copy of the tables to go
//! back to; nothing reaches a disk.

use std::collections::{BTreeMap, BTreeSet};

use sanjin_core::domain::RecordKind;
use sanjin_core::protocol::{LOG_LINK_BASIS, log_link};
use sanjin_core::same_heads;
use sanjin_core::sign::ChangeSig;
use sanjin_core::{ChangeHash, IndexEntry, Millis, RecordDoc};

use super::{
    ActorDevice, DeviceAuth, DeviceKeys, DocParts, LogFilter, LogKey, LogRow, NewDevice,
    NewLogEntry, ServerStorage, StoredAccount, StoredBoxKey, StoredCode, StoredDevice,
    StoredPassword, StoredSession,
};
use crate::{DbError, DbErrorKind, Error, Filter, Identity, IndexColumn, Result};

#[derive(Clone)]
struct Doc {
    kind: String,
    snapshot: Vec<u8>,
    heads: Vec<ChangeHash>,
}

#[derive(Clone)]
struct LogEntry {
    seq: u64,
    doc_id: String,
    scope: Option<String>,
    also: Option<String>,
    origin: Option<String>,
    bytes: Vec<u8>,
    heads: Vec<ChangeHash>,
    link: u64,
}

#[derive(Clone)]
struct Device {
    info: StoredDevice,
    secret_hash: Vec<u8>,
    keys: DeviceKeys,
}

#[derive(Clone)]
struct Code {
    stored: StoredCode,
}

#[derive(Clone, Default)]
struct Tables {
    docs: BTreeMap<String, Doc>,
    index: BTreeMap<String, IndexEntry>,
    sigs: Vec<ChangeSig>,
    change_sigs: BTreeMap<ChangeHash, BTreeSet<usize>>,
    log: Vec<LogEntry>,
    meta: BTreeMap<String, String>,
    accounts: BTreeMap<String, StoredAccount>,
    devices: BTreeMap<String, Device>,
    codes: BTreeMap<Vec<u8>, Code>,
    idempotency: BTreeMap<(String, [u8; 16]), (Vec<u8>, Millis)>,
    sync_states: BTreeMap<(String, String), Vec<u8>>,
    /// (hash, scope, device) → first upload.
    uploads: BTreeMap<([u8; 32], String, String), Millis>,
    passwords: BTreeMap<String, StoredPassword>,
    sessions: BTreeMap<Vec<u8>, StoredSession>,
    /// (owner, epoch) → the key (issue 12).
    box_keys: BTreeMap<(String, u32), StoredBoxKey>,
}

/// The server's storage in memory.
pub struct MemoryServerStorage {
    identity: Identity,
    t: Tables,
    /// The tables as each open unit of work found them.
    units: Vec<Tables>,
}

impl MemoryServerStorage {
    /// An empty storage for a server of `identity`, with a fresh epoch (as a new database).
    pub fn new(identity: Identity) -> MemoryServerStorage {
        let mut t = Tables::default();
        let mut epoch = [0u8; 16];
        getrandom::fill(&mut epoch).expect("the OS provides randomness");
        t.meta.insert("epoch".into(), crate::hex(&epoch));
        t.meta.insert(
            "schema_version".into(),
            super::SERVER_SCHEMA_VERSION.to_string(),
        );
        t.meta
            .insert("history_vouched".into(), crate::now_ms().to_string());
        MemoryServerStorage {
            identity,
            t,
            units: Vec::new(),
        }
    }
}

fn refused(what: String) -> Error {
    Error::Database(DbError {
        kind: DbErrorKind::Other,
        message: what,
    })
}

fn kind_of(e: &IndexEntry) -> RecordKind {
    RecordKind::parse(&e.kind).unwrap_or(RecordKind::Visit)
}

/// Whether an index row passes a filter (as the index tables' queries select).
fn passes(f: &Filter, e: &IndexEntry) -> bool {
    let kind = f.kind.unwrap_or(RecordKind::Visit);
    let eq = |want: &Option<String>, have: &Option<String>| {
        want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
    };
    let ge = |bound: &Option<String>| {
        bound
            .as_ref()
            .is_none_or(|b| e.date.as_ref().is_some_and(|d| d >= b))
    };
    let le = |bound: &Option<String>| {
        bound
            .as_ref()
            .is_none_or(|b| e.date.as_ref().is_some_and(|d| d <= b))
    };
    kind_of(e) == kind
        && ge(&f.from)
        && le(&f.to)
        && eq(&f.group, &e.group)
        && eq(&f.contact_point, &e.contact_point)
        && eq(&f.type_code, &e.type_code)
        && eq(&f.target_kind, &e.target_kind)
        && f.status.as_ref().is_none_or(|s| *s == e.status)
        && f.member.as_ref().is_none_or(|m| e.members.contains(m))
        && (!f.only_conflicts || e.conflicts > 0)
        && (f.include_deleted || !e.deleted)
        && f.scope
            .as_ref()
            .is_none_or(|s| s.admits(kind, e.group.as_deref(), e.type_code.as_deref()))
}

/// Newest first: date, then start, descending (missing values last), then id.
fn newest_first(a: &IndexEntry, b: &IndexEntry) -> std::cmp::Ordering {
    b.date
        .cmp(&a.date)
        .then_with(|| b.start.cmp(&a.start))
        .then_with(|| a.id.cmp(&b.id))
}

impl Tables {
    fn matching(&self, f: &Filter) -> Vec<IndexEntry> {
        let mut out: Vec<IndexEntry> = self
            .index
            .values()
            .filter(|e| passes(f, e))
            .cloned()
            .collect();
        out.sort_by(newest_first);
        out
    }

    fn write(&mut self, doc: &mut RecordDoc, entry: &IndexEntry) {
        let mut entry = entry.clone();
        entry.members.sort();
        entry.members.dedup();
        self.docs.insert(
            doc.id().to_string(),
            Doc {
                kind: doc.kind().code().to_string(),
                snapshot: doc.save(),
                heads: doc.heads(),
            },
        );
        self.index.insert(entry.id.clone(), entry);
    }

    fn load(&self, id: &str) -> Result<RecordDoc> {
        let d = self
            .docs
            .get(id)
            .ok_or_else(|| Error::NotFound(id.into()))?;
        let doc = RecordDoc::load(&d.snapshot).map_err(|e| crate::damaged(id, e))?;
        if doc.id() != id {
            return Err(Error::Damaged {
                id: id.into(),
                reason: format!("the document says it is {}", doc.id()),
            });
        }
        Ok(doc)
    }

    fn put_sig(&mut self, sig: &ChangeSig, present: &[ChangeHash]) {
        let i = match self.sigs.iter().position(|s| s.signature == sig.signature) {
            Some(i) => i,
            None => {
                self.sigs.push(sig.clone());
                self.sigs.len() - 1
            }
        };
        for h in present {
            self.change_sigs.entry(*h).or_default().insert(i);
        }
    }

    fn append_log(&mut self, doc_id: &str, e: NewLogEntry<'_>) {
        let seq = self.log.last().map_or(1, |l| l.seq + 1);
        let prev = self.log.last().map_or(LOG_LINK_BASIS, |l| l.link);
        self.log.push(LogEntry {
            link: log_link(prev, doc_id, e.heads),
            seq,
            doc_id: doc_id.to_string(),
            scope: e.scope.map(str::to_string),
            also: e.also.map(str::to_string),
            origin: e.origin.map(str::to_string),
            bytes: e.bytes.to_vec(),
            heads: e.heads.to_vec(),
        });
    }

    fn auth_account(&self, member: &str) -> Option<StoredAccount> {
        self.accounts.get(member).cloned()
    }
}

impl ServerStorage for MemoryServerStorage {
    fn begin(&mut self) -> Result<()> {
        self.units.push(self.t.clone());
        Ok(())
    }

    fn end(&mut self, commit: bool) -> Result<()> {
        let before = self
            .units
            .pop()
            .ok_or_else(|| refused("no unit of work is open".into()))?;
        if !commit {
            self.t = before;
        }
        Ok(())
    }

    fn reader(&self) -> Result<Option<Box<dyn ServerStorage>>> {
        Ok(None)
    }

    fn identity(&self) -> &Identity {
        &self.identity
    }

    fn exists(&self, id: &str) -> Result<bool> {
        Ok(self.t.docs.contains_key(id))
    }

    fn load(&self, id: &str) -> Result<RecordDoc> {
        self.t.load(id)
    }

    fn doc_parts(&self, id: &str) -> Result<Option<DocParts>> {
        Ok(self.t.docs.get(id).map(|d| DocParts {
            heads: d.heads.clone(),
            snapshot: d.snapshot.clone(),
            chunks: vec![],
        }))
    }

    fn doc_heads(&self, id: &str) -> Result<Option<Vec<ChangeHash>>> {
        Ok(self.t.docs.get(id).map(|d| d.heads.clone()))
    }

    fn all_heads(&self) -> Result<Vec<(String, Vec<ChangeHash>)>> {
        Ok(self
            .t
            .docs
            .iter()
            .map(|(id, d)| (id.clone(), d.heads.clone()))
            .collect())
    }

    fn ids(&self) -> Result<Vec<(String, String)>> {
        Ok(self
            .t
            .docs
            .iter()
            .map(|(id, d)| (id.clone(), d.kind.clone()))
            .collect())
    }

    fn index_entry(&self, id: &str) -> Result<Option<IndexEntry>> {
        Ok(self.t.index.get(id).cloned())
    }

    fn list(&self, f: &Filter) -> Result<Vec<IndexEntry>> {
        let mut out = self.t.matching(f);
        if let Some(limit) = f.limit {
            out.truncate(limit);
        }
        Ok(out)
    }

    fn page(&self, f: &Filter, offset: usize, limit: usize) -> Result<(u64, Vec<IndexEntry>)> {
        let all = self.t.matching(f);
        let total = all.len() as u64;
        Ok((total, all.into_iter().skip(offset).take(limit).collect()))
    }

    fn count_by(&self, f: &Filter, by: &[IndexColumn]) -> Result<Vec<(Vec<Option<String>>, u64)>> {
        let mut groups: BTreeMap<Vec<Option<String>>, u64> = BTreeMap::new();
        for e in self.t.matching(f) {
            *groups
                .entry(by.iter().map(|c| c.of(&e)).collect())
                .or_default() += 1;
        }
        if by.is_empty() && groups.is_empty() {
            groups.insert(vec![], 0);
        }
        Ok(groups.into_iter().collect())
    }

    fn names(&self) -> Result<Vec<(String, String)>> {
        Ok(self
            .t
            .index
            .values()
            .filter(|e| kind_of(e).is_directory() && !e.deleted)
            .map(|e| (e.id.clone(), e.title.clone()))
            .collect())
    }

    fn active_members(&self, group: Option<&str>, from: &str, to: &str) -> Result<u64> {
        let dated: Vec<&IndexEntry> = self
            .t
            .index
            .values()
            .filter(|e| {
                matches!(kind_of(e), RecordKind::Visit | RecordKind::Opinion)
                    && !e.deleted
                    && e.date.as_deref().is_some_and(|d| d >= from && d <= to)
            })
            .collect();
        Ok(self
            .t
            .index
            .values()
            .filter(|d| {
                kind_of(d) == RecordKind::Member
                    && !d.deleted
                    && group.is_none_or(|g| d.group.as_deref() == Some(g))
                    && dated.iter().any(|e| e.members.contains(&d.id))
            })
            .count() as u64)
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
        match before {
            Some(before) => {
                if doc.heads().as_slice() == before {
                    return Ok(());
                }
                if !self.t.docs.contains_key(&id) {
                    return Err(Error::NotFound(id));
                }
            }
            None => {
                if self.t.docs.contains_key(&id) {
                    return Err(refused(format!("document {id} exists already")));
                }
            }
        }
        self.t.write(doc, entry);
        if let Some(l) = log {
            self.t.append_log(&id, l);
        }
        if let Some(s) = sig {
            self.t.put_sig(s, &s.hashes);
        }
        Ok(())
    }

    fn insert_batch(&mut self, docs: &mut [RecordDoc]) -> Result<Vec<IndexEntry>> {
        let mut out = Vec::with_capacity(docs.len());
        let mut existing = Vec::new();
        for (i, doc) in docs.iter_mut().enumerate() {
            if self.t.docs.contains_key(doc.id()) {
                existing.push(i);
                continue;
            }
            let entry = IndexEntry::of(&doc.view()?);
            self.t.write(doc, &entry);
            out.push(entry);
        }
        for i in existing {
            let incoming = &mut docs[i];
            let mut ours = self.t.load(incoming.id())?;
            ours.merge(incoming)?;
            let entry = IndexEntry::of(&ours.view()?);
            self.t.write(&mut ours, &entry);
            out.push(entry);
        }
        Ok(out)
    }

    fn put_sig(&mut self, sig: &ChangeSig, present: &[ChangeHash]) -> Result<()> {
        self.t.put_sig(sig, present);
        Ok(())
    }

    fn sigs_for(&self, hashes: &[ChangeHash]) -> Result<Vec<ChangeSig>> {
        let mut ids: Vec<usize> = hashes
            .iter()
            .filter_map(|h| self.t.change_sigs.get(h)?.first().copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        Ok(ids.into_iter().map(|i| self.t.sigs[i].clone()).collect())
    }

    fn append_log(&mut self, doc_id: &str, entry: NewLogEntry<'_>) -> Result<()> {
        self.t.append_log(doc_id, entry);
        Ok(())
    }

    fn max_seq(&self) -> Result<u64> {
        Ok(self.t.log.last().map_or(0, |l| l.seq))
    }

    fn directory_seq(&self) -> Result<u64> {
        Ok(self
            .t
            .log
            .iter()
            .rev()
            .find(|l| l.scope.is_none())
            .map_or(0, |l| l.seq))
    }

    fn log_since(
        &self,
        filter: &LogFilter<'_>,
        visit: &mut dyn FnMut(LogRow<'_>) -> bool,
    ) -> Result<()> {
        for l in self.t.log.iter().filter(|l| l.seq > filter.after) {
            let in_scope = filter.everything
                || l.scope
                    .as_deref()
                    .is_none_or(|s| s == filter.group || filter.groups.iter().any(|g| g == s))
                || filter.also.is_some_and(|a| l.also.as_deref() == Some(a));
            let foreign = match (filter.except_origin, l.origin.as_deref()) {
                (Some(except), Some(origin)) => origin != except,
                _ => true,
            };
            if in_scope
                && foreign
                && !visit(LogRow {
                    seq: l.seq,
                    doc_id: &l.doc_id,
                    bytes: &l.bytes,
                    heads: &l.heads,
                })
            {
                break;
            }
        }
        Ok(())
    }

    fn log_entry(&self, seq: u64) -> Result<Option<LogKey>> {
        Ok(self.t.log.iter().find(|l| l.seq == seq).map(|l| LogKey {
            doc_id: l.doc_id.clone(),
            heads: l.heads.clone(),
            link: Some(l.link),
        }))
    }

    fn log_docs_since(&self, seq: u64) -> Result<Vec<String>> {
        let ids: BTreeSet<&String> = self
            .t
            .log
            .iter()
            .filter(|l| l.seq > seq)
            .map(|l| &l.doc_id)
            .collect();
        Ok(ids.into_iter().cloned().collect())
    }

    fn log_has(&self, doc_id: &str, heads: &[ChangeHash]) -> Result<bool> {
        Ok(self
            .t
            .log
            .iter()
            .any(|l| l.doc_id == doc_id && same_heads(&l.heads, heads)))
    }

    fn server_meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self.t.meta.get(key).cloned())
    }

    fn set_server_meta(&mut self, key: &str, value: Option<&str>) -> Result<()> {
        match value {
            Some(v) => self.t.meta.insert(key.into(), v.into()),
            None => self.t.meta.remove(key),
        };
        Ok(())
    }

    fn account(&self, member: &str) -> Result<Option<StoredAccount>> {
        Ok(self.t.accounts.get(member).cloned())
    }

    fn accounts(&self) -> Result<Vec<StoredAccount>> {
        Ok(self.t.accounts.values().cloned().collect())
    }

    fn put_account(&mut self, account: &StoredAccount, _now: Millis) -> Result<()> {
        self.t
            .accounts
            .insert(account.member.clone(), account.clone());
        Ok(())
    }

    fn devices(&self) -> Result<Vec<StoredDevice>> {
        let mut out: Vec<StoredDevice> = self.t.devices.values().map(|d| d.info.clone()).collect();
        out.sort_by(|a, b| {
            a.member
                .cmp(&b.member)
                .then(a.enrolled_at.cmp(&b.enrolled_at))
        });
        Ok(out)
    }

    fn device_exists(&self, device_id: &str) -> Result<bool> {
        Ok(self.t.devices.contains_key(device_id))
    }

    fn actor_in_use(&self, actor: &str) -> Result<bool> {
        Ok(self.t.devices.values().any(|d| d.info.actor == actor))
    }

    fn insert_device(&mut self, d: &NewDevice<'_>) -> Result<()> {
        if self.device_exists(d.device_id)? || self.actor_in_use(d.actor)? {
            return Err(refused(format!("device {} exists already", d.device_id)));
        }
        if !self.t.accounts.contains_key(d.member) {
            return Err(refused(format!("no account {}", d.member)));
        }
        self.t.devices.insert(
            d.device_id.to_string(),
            Device {
                info: StoredDevice {
                    device_id: d.device_id.into(),
                    member: d.member.into(),
                    name: d.name.into(),
                    actor: d.actor.into(),
                    enrolled_at: d.enrolled_at,
                    revoked_at: None,
                    last_sync_at: None,
                },
                secret_hash: d.secret_hash.to_vec(),
                keys: DeviceKeys::default(),
            },
        );
        Ok(())
    }

    fn revoke_device(&mut self, device_id: &str, now: Millis) -> Result<bool> {
        Ok(match self.t.devices.get_mut(device_id) {
            Some(d) => {
                d.info.revoked_at.get_or_insert(now);
                true
            }
            None => false,
        })
    }

    fn device_auth(&self, device_id: &str) -> Result<Option<DeviceAuth>> {
        Ok(self.t.devices.get(device_id).and_then(|d| {
            Some(DeviceAuth {
                secret_hash: d.secret_hash.clone(),
                revoked: d.info.revoked_at.is_some(),
                account: self.t.auth_account(&d.info.member)?,
            })
        }))
    }

    fn device_by_actor(&self, actor: &str) -> Result<Option<ActorDevice>> {
        Ok(self
            .t
            .devices
            .values()
            .find(|d| d.info.actor == actor)
            .and_then(|d| {
                Some(ActorDevice {
                    device_id: d.info.device_id.clone(),
                    revoked: d.info.revoked_at.is_some(),
                    account: self.t.auth_account(&d.info.member)?,
                })
            }))
    }

    fn device_actor(&self, device_id: &str) -> Result<Option<(String, String)>> {
        Ok(self
            .t
            .devices
            .get(device_id)
            .map(|d| (d.info.actor.clone(), d.info.member.clone())))
    }

    fn device_keys(&self, device_id: &str) -> Result<Option<DeviceKeys>> {
        Ok(self.t.devices.get(device_id).map(|d| d.keys.clone()))
    }

    fn set_device_keys(&mut self, device_id: &str, public_key: &[u8], cert: &[u8]) -> Result<()> {
        if let Some(d) = self.t.devices.get_mut(device_id) {
            d.keys = DeviceKeys {
                public_key: Some(public_key.to_vec()),
                cert: Some(cert.to_vec()),
            };
        }
        Ok(())
    }

    fn touch_device(
        &mut self,
        device_id: &str,
        now: Millis,
        min_gap_ms: Option<Millis>,
    ) -> Result<()> {
        if let Some(d) = self.t.devices.get_mut(device_id) {
            let due = match (min_gap_ms, d.info.last_sync_at) {
                (Some(gap), Some(last)) => last < now - gap,
                _ => true,
            };
            if due {
                d.info.last_sync_at = Some(now);
            }
        }
        Ok(())
    }

    fn insert_code(
        &mut self,
        code_hash: &[u8],
        member: &str,
        _created_at: Millis,
        expires_at: Millis,
    ) -> Result<()> {
        if self.t.codes.contains_key(code_hash) {
            return Err(refused("this enrollment code exists already".into()));
        }
        self.t.codes.insert(
            code_hash.to_vec(),
            Code {
                stored: StoredCode {
                    member: member.into(),
                    expires_at,
                    used_at: None,
                },
            },
        );
        Ok(())
    }

    fn code(&self, code_hash: &[u8]) -> Result<Option<StoredCode>> {
        Ok(self.t.codes.get(code_hash).map(|c| c.stored.clone()))
    }

    fn use_code(&mut self, code_hash: &[u8], now: Millis, _device_id: &str) -> Result<bool> {
        Ok(match self.t.codes.get_mut(code_hash) {
            Some(c) if c.stored.used_at.is_none() => {
                c.stored.used_at = Some(now);
                true
            }
            _ => false,
        })
    }

    fn stored_response(
        &self,
        device_id: &str,
        request_id: &[u8; 16],
        not_before: Millis,
    ) -> Result<Option<Vec<u8>>> {
        Ok(self
            .t
            .idempotency
            .get(&(device_id.to_string(), *request_id))
            .filter(|(_, at)| *at >= not_before)
            .map(|(r, _)| r.clone()))
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
        let t = &mut self.t;
        t.idempotency.insert(
            (device_id.to_string(), *request_id),
            (response.to_vec(), now),
        );
        t.idempotency.retain(|_, (_, at)| *at >= now - ttl_ms);
        let mut mine: Vec<([u8; 16], Millis)> = t
            .idempotency
            .iter()
            .filter(|((d, _), _)| d == device_id)
            .map(|((_, r), (_, at))| (*r, *at))
            .collect();
        mine.sort_by_key(|m| std::cmp::Reverse(m.1));
        for (r, _) in mine.into_iter().skip(keep as usize) {
            t.idempotency.remove(&(device_id.to_string(), r));
        }
        if let Some(d) = t.devices.get_mut(device_id) {
            d.info.last_sync_at = Some(now);
        }
        Ok(())
    }

    fn sync_state(&self, device_id: &str, doc_id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .t
            .sync_states
            .get(&(device_id.to_string(), doc_id.to_string()))
            .cloned())
    }

    fn put_sync_states(
        &mut self,
        device_id: &str,
        states: &[(String, Vec<u8>)],
        _now: Millis,
    ) -> Result<()> {
        for (doc, state) in states {
            self.t
                .sync_states
                .insert((device_id.to_string(), doc.clone()), state.clone());
        }
        Ok(())
    }

    fn record_upload(
        &mut self,
        hash: &[u8; 32],
        device_id: &str,
        scope: &str,
        at: Millis,
    ) -> Result<()> {
        self.t
            .uploads
            .entry((*hash, scope.to_string(), device_id.to_string()))
            .or_insert(at);
        Ok(())
    }

    fn upload_exists(&self, hash: &[u8; 32], scope: Option<&str>) -> Result<bool> {
        Ok(self
            .t
            .uploads
            .keys()
            .any(|(h, s, _)| h == hash && scope.is_none_or(|want| want == s)))
    }

    fn uploads(&self, hash: &[u8; 32]) -> Result<Vec<(String, String)>> {
        let mut out: Vec<(Millis, String, String)> = self
            .t
            .uploads
            .iter()
            .filter(|((h, _, _), _)| h == hash)
            .map(|((_, s, d), at)| (*at, d.clone(), s.clone()))
            .collect();
        out.sort();
        Ok(out.into_iter().map(|(_, d, s)| (d, s)).collect())
    }

    fn box_keys(&self, owner: Option<&str>) -> Result<Vec<StoredBoxKey>> {
        Ok(self
            .t
            .box_keys
            .values()
            .filter(|k| owner.is_none_or(|o| k.owner == o))
            .cloned()
            .collect())
    }

    fn insert_box_key(&mut self, k: &StoredBoxKey) -> Result<bool> {
        let at = (k.owner.clone(), k.epoch);
        if self.t.box_keys.contains_key(&at) {
            return Ok(false);
        }
        self.t.box_keys.insert(at, k.clone());
        Ok(true)
    }

    fn password(&self, member: &str) -> Result<Option<StoredPassword>> {
        Ok(self.t.passwords.get(member).cloned())
    }

    fn set_password(&mut self, member: &str, p: &StoredPassword, _now: Millis) -> Result<()> {
        if !self.t.accounts.contains_key(member) {
            return Err(refused(format!("no account {member}")));
        }
        self.t.passwords.insert(member.into(), p.clone());
        Ok(())
    }

    fn replace_password(
        &mut self,
        member: &str,
        old: &StoredPassword,
        new: &StoredPassword,
        _now: Millis,
    ) -> Result<bool> {
        Ok(match self.t.passwords.get_mut(member) {
            Some(p) if p.hash == old.hash && p.iterations == old.iterations => {
                *p = new.clone();
                true
            }
            _ => false,
        })
    }

    fn insert_session(
        &mut self,
        token_hash: &[u8],
        session: &StoredSession,
        now: Millis,
    ) -> Result<()> {
        self.t.sessions.retain(|_, s| s.expires_at >= now);
        self.t.sessions.insert(token_hash.to_vec(), session.clone());
        Ok(())
    }

    fn session(&self, token_hash: &[u8]) -> Result<Option<StoredSession>> {
        Ok(self.t.sessions.get(token_hash).cloned())
    }

    fn delete_session(&mut self, token_hash: &[u8]) -> Result<()> {
        self.t.sessions.remove(token_hash);
        Ok(())
    }

    fn delete_sessions_of(&mut self, member: &str) -> Result<()> {
        self.t.sessions.retain(|_, s| s.member != member);
        Ok(())
    }
}
