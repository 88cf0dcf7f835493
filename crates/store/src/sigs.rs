//! Signatures beside the changes (issue 10): the device's signing key, the signatures that cover
//! each change (its own, and those that came with other devices' changes), signers'
//! certificates, and the records the server refused.

use rusqlite::{OptionalExtension, params};
use sanjin_core::sign::{ChangeSig, DeviceCert, DeviceKey, SigKind, change_actor, split_changes};
use sanjin_core::{ChangeHash, Millis, RecordDoc};

use crate::{Result, Store, heads_from_bytes, heads_to_bytes, now_ms};

/// Meta key of the device's signing key (hex seed). Never leaves the store: not in merges,
/// exports or anything sent.
pub(crate) const SIGNING_KEY: &str = "signing_key";

/// A record the server refused, as the member's phone keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refused {
    pub doc_id: String,
    /// The refusal code (`bad_signature`, `forbidden`, …).
    pub code: String,
    /// The field it is about, empty for the whole record.
    pub field: String,
    /// The server's reason (English, for support).
    pub reason: String,
    pub at: Millis,
}

impl Store {
    /// The device's signing key, once it has one (at enrollment).
    pub fn signing_key(&self) -> Option<&DeviceKey> {
        self.key.as_ref()
    }

    /// Keeps the device's signing key. Changes made from now on are signed as they are saved.
    pub fn set_signing_key(&mut self, key: &DeviceKey) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![SIGNING_KEY, key.seed_hex()])?;
        self.key = Some(key.clone());
        Ok(())
    }

    /// The hashes of this device's own changes among automerge change bytes.
    pub fn own_changes(&self, bytes: &[u8]) -> Vec<ChangeHash> {
        split_changes(bytes)
            .into_iter()
            .filter(|(_, r)| {
                change_actor(&bytes[r.clone()]).as_deref() == Some(&self.identity.actor[..])
            })
            .map(|(h, _)| h)
            .collect()
    }

    /// The signature of this device's own changes that `doc` gained since `before`, to keep in
    /// the transaction that saves them. `None` without a key or without own changes.
    pub(crate) fn local_sig(
        &self,
        doc: &mut RecordDoc,
        before: &[ChangeHash],
    ) -> Option<ChangeSig> {
        let key = self.key.as_ref()?;
        let own = self.own_changes(&doc.save_after(before));
        if own.is_empty() {
            return None;
        }
        Some(ChangeSig::sign(
            key,
            &self.identity.device,
            SigKind::Changes,
            own,
        ))
    }

    /// Signs every change of this device that no signature covers yet (a store that recorded
    /// before it was enrolled, or from before signatures): one signature. Returns how many.
    pub fn sign_own_unsigned(&mut self) -> Result<usize> {
        let Some(key) = self.key.clone() else {
            return Ok(0);
        };
        let ids: Vec<String> = {
            let mut stmt = self.conn.prepare("SELECT id FROM docs ORDER BY id")?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        let mut unsigned = Vec::new();
        for id in ids {
            let Ok(mut doc) = self.load(&id) else {
                continue;
            };
            for h in self.own_changes(&doc.save_after(&[])) {
                if !self.is_signed(&h)? {
                    unsigned.push(h);
                }
            }
        }
        if unsigned.is_empty() {
            return Ok(0);
        }
        let n = unsigned.len();
        let sig = ChangeSig::sign(&key, &self.identity.device, SigKind::Changes, unsigned);
        let tx = self.conn.savepoint()?;
        put_sig(&tx, &sig, &sig.hashes)?;
        tx.commit()?;
        Ok(n)
    }

    fn is_signed(&self, h: &ChangeHash) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM change_sigs WHERE hash = ?1")?
            .exists([&h.0[..]])?)
    }

    /// Keeps a signature, noting that it covers `present` (the hashes of it this store holds).
    pub fn put_sig(&self, sig: &ChangeSig, present: &[ChangeHash]) -> Result<()> {
        put_sig(&self.conn, sig, present)
    }

    /// The signatures that cover `hashes` (one per hash, the first kept), each once.
    pub fn sigs_for(&self, hashes: &[ChangeHash]) -> Result<Vec<ChangeSig>> {
        let mut ids: Vec<i64> = Vec::new();
        {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT sig_id FROM change_sigs WHERE hash = ?1 LIMIT 1")?;
            for h in hashes {
                if let Some(id) = stmt
                    .query_row([&h.0[..]], |r| r.get::<_, i64>(0))
                    .optional()?
                {
                    ids.push(id);
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT signer, kind, signature, hashes FROM sigs WHERE id = ?1")?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let (signer, kind, signature, hashes): (String, i64, Vec<u8>, Vec<u8>) =
                stmt.query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            let (Some(kind), Ok(signature)) = (
                SigKind::from_u8(kind as u8),
                <[u8; 64]>::try_from(signature.as_slice()),
            ) else {
                continue;
            };
            out.push(ChangeSig {
                signer,
                kind,
                hashes: heads_from_bytes(&hashes),
                signature,
            });
        }
        Ok(out)
    }

    /// Keeps a signer's certificate (the caller has verified it).
    pub fn put_cert(&self, cert: &DeviceCert) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO certs (device, cert) VALUES (?1, ?2) ON CONFLICT(device) DO UPDATE SET cert = excluded.cert",
            )?
            .execute(params![cert.device, cert.encode()])?;
        Ok(())
    }

    /// A signer's certificate, if this store has seen it.
    pub fn cert(&self, device: &str) -> Result<Option<DeviceCert>> {
        let bytes: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT cert FROM certs WHERE device = ?1")?
            .query_row([device], |r| r.get(0))
            .optional()?;
        Ok(bytes.and_then(|b| DeviceCert::decode(&b).ok()))
    }

    /// Notes that the server refused `doc_id` at `heads`: it is not pushed again until it changes.
    pub fn mark_refused(
        &self,
        doc_id: &str,
        heads: &[ChangeHash],
        code: &str,
        field: &str,
        reason: &str,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO refused (doc_id, heads, code, field, reason, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(doc_id) DO UPDATE SET heads = excluded.heads, code = excluded.code,
                 field = excluded.field, reason = excluded.reason, at = excluded.at",
            )?
            .execute(params![doc_id, heads_to_bytes(heads), code, field, reason, now_ms()])?;
        Ok(())
    }

    /// The server's refusal of a record, if it still stands (the record has not changed since).
    pub fn refusal(&self, doc_id: &str) -> Result<Option<(Refused, Vec<ChangeHash>)>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT doc_id, code, field, reason, at, heads FROM refused WHERE doc_id = ?1",
            )?
            .query_row([doc_id], |r| {
                Ok((refused_row(r)?, heads_from_bytes(&r.get::<_, Vec<u8>>(5)?)))
            })
            .optional()?)
    }

    /// Every standing refusal.
    pub fn refusals(&self) -> Result<Vec<Refused>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT doc_id, code, field, reason, at FROM refused ORDER BY at, doc_id",
        )?;
        Ok(stmt
            .query_map([], refused_row)?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// The refusal of `doc_id` if it still stands: the record is exactly as it was when refused
    /// (the same heads, in any order). A record changed since will be pushed again, so an
    /// older refusal no longer describes it (issue 10).
    pub fn standing_refusal(&self, doc_id: &str) -> Result<Option<Refused>> {
        Ok(self.standing(Some(doc_id))?.into_iter().next())
    }

    /// Every refusal that still stands (see `standing_refusal`), oldest first.
    pub fn standing_refusals(&self) -> Result<Vec<Refused>> {
        self.standing(None)
    }

    fn standing(&self, doc_id: Option<&str>) -> Result<Vec<Refused>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.doc_id, r.code, r.field, r.reason, r.at, r.heads, d.heads
             FROM refused r JOIN docs d ON d.id = r.doc_id
             WHERE ?1 IS NULL OR r.doc_id = ?1 ORDER BY r.at, r.doc_id",
        )?;
        let rows = stmt.query_map([doc_id], |r| {
            Ok((
                refused_row(r)?,
                r.get::<_, Vec<u8>>(5)?,
                r.get::<_, Vec<u8>>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (refused, at, now) = row?;
            if sanjin_core::same_heads(&heads_from_bytes(&at), &heads_from_bytes(&now)) {
                out.push(refused);
            }
        }
        Ok(out)
    }

    /// Forgets a refusal (the record was accepted after all).
    pub fn clear_refused(&self, doc_id: &str) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM refused WHERE doc_id = ?1")?
            .execute([doc_id])?;
        Ok(())
    }
}

/// A refusal from a row whose first columns are `doc_id, code, field, reason, at`.
fn refused_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Refused> {
    Ok(Refused {
        doc_id: r.get(0)?,
        code: r.get(1)?,
        field: r.get(2)?,
        reason: r.get(3)?,
        at: r.get(4)?,
    })
}

/// Keeps a signature inside a transaction the caller holds on the store's connection (the
/// server writes it with the change-log entry of the changes it covers).
pub(crate) fn put_sig(
    conn: &rusqlite::Connection,
    sig: &ChangeSig,
    present: &[ChangeHash],
) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO sigs (signer, kind, signature, hashes) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        sig.signer,
        sig.kind as u8,
        &sig.signature[..],
        heads_to_bytes(&sig.hashes)
    ])?;
    let id: i64 = conn
        .prepare_cached("SELECT id FROM sigs WHERE signature = ?1")?
        .query_row([&sig.signature[..]], |r| r.get(0))?;
    let mut ins =
        conn.prepare_cached("INSERT OR IGNORE INTO change_sigs (hash, sig_id) VALUES (?1, ?2)")?;
    for h in present {
        ins.execute(params![&h.0[..], id])?;
    }
    Ok(())
}
