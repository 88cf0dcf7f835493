//! What a device keeps to carry records without signal (issue 12, schema 5): the secrets of
//! the group keys it opens bundles with, the server's newest key directory and revocation list,
//! the server's receipts (kept to pass on, and applied to the outbox: 已送达), cargo (bundle
//! parts sealed to the server only, carried opaque) and the records that arrived relayed, to
//! ask the server receipts for.
//!
//! **Invariant:** every statement kept here was verified by the caller against the server key
//! the device pinned at enrollment ([`Store::server_public`]); the store keeps the newest one
//! and never lets a group secret out (not in bundles, merges or anything sent).

use std::collections::HashSet;

use rusqlite::{OptionalExtension, params};
use sanjin_core::ChangeHash;
use sanjin_core::seal::BoxSecret;
use sanjin_core::sign::{DeviceCert, KeyDirectory, Receipt, Revocations};
use sha2::{Digest, Sha256};

use crate::{Error, Result, Store, heads_from_bytes, heads_to_bytes, now_ms};

/// Meta key of the server's certificate pinned at enrollment (hex; `sanjin_client::meta`'s
/// `SERVER_CERT`).
pub const META_SERVER_CERT: &str = "sync_server_cert";

pub use sanjin_sync::bundle::group_recipient;

impl Store {
    /// The public key of the server this device enrolled with (from its pinned certificate),
    /// `None` before enrollment.
    pub fn server_public(&self) -> Result<Option<[u8; 32]>> {
        let Some(hex) = self.meta(META_SERVER_CERT)? else {
            return Ok(None);
        };
        let cert = crate::unhex(&hex);
        Ok(DeviceCert::decode(&cert)
            .ok()
            .filter(|c| c.verify(&c.public_key).is_ok())
            .map(|c| c.public_key))
    }

    /// Keeps the secret of `group`'s key of `epoch` (received from the server over its
    /// authenticated channel).
    pub fn put_box_secret(&self, group: &str, epoch: u32, secret: &BoxSecret) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO box_keys (group_id, epoch, secret) VALUES (?1, ?2, ?3)
                 ON CONFLICT(group_id, epoch) DO UPDATE SET secret = excluded.secret",
            )?
            .execute(params![group, epoch, secret.to_hex()])?;
        Ok(())
    }

    /// The secret a bundle's recipient entry `id` (`group:<g>:<epoch>`) opens with, if this
    /// device holds it.
    pub fn box_secret(&self, id: &str) -> Result<Option<BoxSecret>> {
        let Some((group, epoch)) = id
            .strip_prefix("group:")
            .and_then(|r| r.rsplit_once(':'))
            .and_then(|(g, e)| Some((g, e.parse::<u32>().ok()?)))
        else {
            return Ok(None);
        };
        let hex: Option<String> = self
            .conn
            .prepare_cached("SELECT secret FROM box_keys WHERE group_id = ?1 AND epoch = ?2")?
            .query_row(params![group, epoch], |r| r.get(0))
            .optional()?;
        Ok(hex.and_then(|h| BoxSecret::from_hex(&h)))
    }

    /// Every group secret this device holds, as the recipient ids bundles name them.
    pub fn box_secrets(&self) -> Result<Vec<(String, BoxSecret)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT group_id, epoch, secret FROM box_keys ORDER BY group_id, epoch")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?, r.get::<_, String>(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (g, e, s) = row?;
            if let Some(secret) = BoxSecret::from_hex(&s) {
                out.push((group_recipient(&g, e), secret));
            }
        }
        Ok(out)
    }

    /// Keeps the server's key directory (the caller verified it) unless an equally new or newer
    /// one is kept already.
    pub fn put_key_directory(&self, kd: &KeyDirectory) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO key_directory (id, issued_at, bytes) VALUES (1, ?1, ?2)
                 ON CONFLICT(id) DO UPDATE SET issued_at = excluded.issued_at, bytes = excluded.bytes
                 WHERE excluded.issued_at >= key_directory.issued_at",
            )?
            .execute(params![kd.issued_at, kd.encode()])?;
        Ok(())
    }

    /// The newest key directory this device holds.
    pub fn key_directory(&self) -> Result<Option<KeyDirectory>> {
        let bytes: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT bytes FROM key_directory WHERE id = 1")?
            .query_row([], |r| r.get(0))
            .optional()?;
        Ok(bytes.and_then(|b| KeyDirectory::decode(&b).ok()))
    }

    /// Keeps the server's revocation list (the caller verified it) if it is newer (a higher
    /// `seq`) than the one kept. Returns whether it was.
    pub fn put_revocations(&self, r: &Revocations) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO revocations (id, seq, bytes) VALUES (1, ?1, ?2)
                 ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, bytes = excluded.bytes
                 WHERE excluded.seq > revocations.seq",
            )?
            .execute(params![r.seq as i64, r.encode()])?;
        Ok(n > 0)
    }

    /// The newest revocation list this device holds.
    pub fn revocations(&self) -> Result<Option<Revocations>> {
        let bytes: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT bytes FROM revocations WHERE id = 1")?
            .query_row([], |r| r.get(0))
            .optional()?;
        Ok(bytes.and_then(|b| Revocations::decode(&b).ok()))
    }

    /// Whether the kept revocation list revokes the device of `cert`.
    pub fn is_revoked(&self, cert: &DeviceCert) -> Result<bool> {
        Ok(self.revocations()?.is_some_and(|r| r.revokes(cert)))
    }

    /// Keeps the server's receipts (the caller verified them) to pass on, and applies each to
    /// the outbox as the server's own acknowledgement would: a record the server holds
    /// everything of leaves the outbox (已送达), a relayed record it covers stops waiting for a
    /// receipt. A receipt for a record this device does not hold is kept all the same (it is
    /// carried on to the record's author). Returns how many receipts were new.
    pub fn put_receipts(&mut self, receipts: &[Receipt]) -> Result<usize> {
        let mut new = 0;
        for r in receipts {
            let tx = self.conn.savepoint()?;
            let kept: Option<(Vec<u8>, i64)> = tx
                .prepare_cached("SELECT heads, at FROM receipts WHERE doc_id = ?1")?
                .query_row([&r.doc_id], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            let same = kept.as_ref().is_some_and(|(h, _)| {
                sanjin_core::same_heads(&heads_from_bytes(h), &r.heads)
            });
            if !same && kept.as_ref().is_none_or(|(_, at)| *at <= r.at) {
                tx.prepare_cached(
                    "INSERT INTO receipts (doc_id, heads, at, bytes) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(doc_id) DO UPDATE SET heads = excluded.heads, at = excluded.at,
                     bytes = excluded.bytes",
                )?
                .execute(params![r.doc_id, heads_to_bytes(&r.heads), r.at, r.encode()])?;
                new += 1;
            }
            tx.commit()?;
            self.apply_receipt(&r.doc_id, &r.heads)?;
        }
        Ok(new)
    }

    /// The outbox and the relayed list as `heads` (held by the server) leave them.
    fn apply_receipt(&mut self, doc_id: &str, heads: &[ChangeHash]) -> Result<()> {
        let mut doc = match self.load(doc_id) {
            Ok(d) => d,
            Err(Error::NotFound(_) | Error::Damaged { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        if !covers(&mut doc, heads) {
            return Ok(());
        }
        let ours = doc.heads();
        let queued = self
            .conn
            .prepare_cached("SELECT 1 FROM outbox WHERE doc_id = ?1")?
            .exists([doc_id])?;
        if queued {
            self.ack(doc_id, &ours)?;
            self.clear_refused(doc_id)?;
        }
        self.conn
            .prepare_cached("DELETE FROM relayed WHERE doc_id = ?1")?
            .execute([doc_id])?;
        Ok(())
    }

    /// The receipts kept for `ids` (all kept receipts for `None`).
    pub fn receipts(&self, ids: Option<&HashSet<String>>) -> Result<Vec<Receipt>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT doc_id, bytes FROM receipts ORDER BY doc_id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, bytes) = row?;
            if ids.is_none_or(|s| s.contains(&id))
                && let Ok(r) = Receipt::decode(&bytes)
            {
                out.push(r);
            }
        }
        Ok(out)
    }


    /// The records that arrived relayed and that no receipt covers yet: the doc ids to ask the
    /// server receipts for.
    pub fn relayed_unreceipted(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT doc_id FROM relayed ORDER BY doc_id")?;
        Ok(stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Keeps a cargo part (a bundle part sealed to the server only) unless it is kept already.
    /// Returns whether it was new.
    pub fn put_cargo(&self, bytes: &[u8]) -> Result<bool> {
        let hash = Sha256::digest(bytes);
        Ok(self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO cargo (hash, bytes, received_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![&hash[..], bytes, now_ms()])?
            > 0)
    }

    /// The cargo parts the server does not hold yet, oldest first: (id, bytes).
    pub fn cargo(&self) -> Result<Vec<(i64, Vec<u8>)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, bytes FROM cargo WHERE delivered = 0 ORDER BY id")?;
        Ok(stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// The server holds cargo part `id`: it is not carried any further. Its bytes are dropped;
    /// its hash stays, so the same part arriving again is not carried again.
    pub fn cargo_delivered(&self, id: i64) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE cargo SET delivered = 1, bytes = X'' WHERE id = ?1")?
            .execute([id])?;
        Ok(())
    }

    /// Whether the server holds everything this device has of record `id` (it acknowledged it
    /// to this device, or a receipt said so): 已送达. `false` for a record this device does not
    /// hold.
    pub fn delivered(&self, id: &str) -> Result<bool> {
        Ok(self.exists(id)?
            && !self
                .conn
                .prepare_cached("SELECT 1 FROM outbox WHERE doc_id = ?1")?
                .exists([id])?)
    }

    /// The records the server does not hold everything of yet (the outbox's), for lists that
    /// mark 已送达.
    pub fn undelivered(&self) -> Result<HashSet<String>> {
        let mut stmt = self.conn.prepare_cached("SELECT doc_id FROM outbox")?;
        Ok(stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Every kept certificate that the pinned server key signed.
    pub(crate) fn verified_certs(&self, server: &[u8; 32]) -> Result<Vec<DeviceCert>> {
        let mut stmt = self.conn.prepare_cached("SELECT cert FROM certs")?;
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for row in rows {
            if let Ok(c) = DeviceCert::decode(&row?)
                && c.verify(server).is_ok()
            {
                out.push(c);
            }
        }
        Ok(out)
    }
}

/// Whether holding `heads` means holding every change of `doc`: each of the document's
/// changes is one of `heads` or one of their ancestors. Heads the document does not know may
/// descend from its changes, but that cannot be told here: only the known ones count, so a
/// receipt is never read as covering more than it provably does.
fn covers(doc: &mut sanjin_core::RecordDoc, heads: &[ChangeHash]) -> bool {
    let am = doc.automerge();
    let known: Vec<ChangeHash> = heads
        .iter()
        .filter(|h| am.get_change_meta_by_hash(h).is_some())
        .copied()
        .collect();
    !known.is_empty() && am.get_changes(&known).is_empty()
}
