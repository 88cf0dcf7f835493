//! Bundles on the device (issue 12): what to put in one ([`Store::bundle_payload`], the
//! selection of records and what a receiver may lack), what this device holds
//! ([`Store::summary`], for phone-to-phone sessions), and landing what one brings
//! ([`Store::import_payload`]).
//!
//! Sealing, signing and the byte layout are `sanjin_sync::bundle`'s; judging received changes is
//! `sanjin_sync::relay::judge`, with the facts taken from device certificates verified against
//! the server key the device pinned at enrollment. **Devices trust nothing another device
//! sends:** every document of a payload is judged change by change as the server judges a push
//! (enrolled unrevoked author by certificate, signature, rules, the whole record), and a
//! refused one leaves nothing behind. A payload lands in **one transaction** (a savepoint inside
//! a [`Store::batch`]); importing it again changes nothing.

use std::collections::{HashMap, HashSet};

use rusqlite::params;
use sanjin_core::domain::RecordKind;
use sanjin_core::protocol::RefusalCode;
use sanjin_core::sign::{ChangeSig, DeviceCert, split_changes};
use sanjin_core::{ChangeHash, Millis, RecordDoc};
use sanjin_sync::bundle::{Audience, DocChanges, Header, Original, Payload};
use sanjin_sync::relay::{CertFacts, Judged};
use sha2::{Digest, Sha256};

use crate::{Error, Result, Store, heads_from_bytes, write_new_entry};

/// Which records a bundle (or a phone-to-phone session) is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// The records of this group (`None` with no `member` either: every record).
    pub group: Option<String>,
    /// The records this member takes part in (participants, authors, paired members, plan
    /// owners), beside the group's.
    pub member: Option<String>,
    /// Only records saved on this device at or after this instant (whole documents all the
    /// same, so a receiver missing earlier changes can still apply them).
    pub since: Option<Millis>,
    /// The originals of their photos still waiting on this device go too.
    pub with_originals: bool,
    /// The group whose key the bundle is sealed to: selected records outside its scope are
    /// not in the payload but listed as `outside` (they travel as cargo sealed to the server
    /// only, [`Store::outside_payload`]). `None`: the server alone reads the bundle.
    pub audience: Option<String>,
}

impl Selection {
    /// Every record of `group`, for that group's key.
    pub fn group(group: &str) -> Selection {
        Selection {
            group: Some(group.to_string()),
            audience: Some(group.to_string()),
            ..Selection::default()
        }
    }
}

/// One record a payload carries (or, `outside`, leaves to cargo).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExportedDoc {
    pub id: String,
    pub kind: String,
    pub group: Option<String>,
    /// Outside the audience's scope: not in the payload (see [`Store::outside_payload`]).
    pub outside: bool,
    /// Bytes of changes carried.
    pub bytes: usize,
}

/// What became of one record of an imported payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Added,
    Updated,
    Unchanged,
    /// Refused: nothing of it was saved (or, with `Added`/`Updated` and a reason, some of its
    /// changes were left out).
    Refused,
    /// Its changes build on changes this device does not have yet: import the earlier bundle
    /// (or the whole record) first. Nothing was saved.
    Held,
}

/// One record's line of an [`ImportReport`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImportedDoc {
    pub id: String,
    pub kind: String,
    pub outcome: Outcome,
    /// The refusal's code (`bad_signature`, `forbidden`, …), empty when none.
    pub code: String,
    /// The field a refusal is about, empty for the whole record.
    pub field: String,
    /// Why, in Chinese (what a member reads), empty when nothing was refused.
    pub reason: String,
    /// The reason in English (for support).
    pub detail: String,
}

/// What [`Store::import_payload`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    pub records: Vec<ImportedDoc>,
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub refused: usize,
    pub held: usize,
    /// Originals kept to upload at the next sync (new ones).
    pub originals: usize,
    /// Originals refused (bytes not matching their name, or no record of this payload or
    /// store shows them): (hash, reason in Chinese).
    pub originals_refused: Vec<(String, String)>,
    /// Cargo parts kept to carry on (new ones).
    pub cargo: usize,
    /// Cargo parts refused (not a bundle part for the server, a revoked exporter, …).
    pub cargo_refused: usize,
    /// Receipts kept (new ones).
    pub receipts: usize,
    /// A newer revocation list was kept.
    pub revocations: bool,
    /// Records that became conflicted.
    pub new_conflicts: Vec<String>,
}

/// The Chinese reason of a refusal, naming the field when there is one.
pub fn refusal_zh(kind: Option<RecordKind>, code: RefusalCode, field: &str) -> String {
    let label = kind
        .and_then(|k| sanjin_core::schema::field(k, field))
        .map(|f| f.zh.to_string())
        .or_else(|| (!field.is_empty()).then(|| field.to_string()));
    match label {
        Some(l) => format!("字段“{l}”：{}", code.zh()),
        None => code.zh().to_string(),
    }
}

/// A row of the documents with what selection needs.
struct Row {
    id: String,
    kind: String,
    group: Option<String>,
    updated_at: Millis,
}

impl Store {
    /// Every record with its kind, group (from its index row) and last save.
    fn rows(&self) -> Result<Vec<Row>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT d.id, d.kind, d.updated_at,
                    COALESCE(v.group_id, o.group_id, h.group_id, p.group_id)
             FROM docs d
             LEFT JOIN idx_visit v ON v.id = d.id
             LEFT JOIN idx_opinion o ON o.id = d.id
             LEFT JOIN idx_household h ON h.id = d.id
             LEFT JOIN idx_plan p ON p.id = d.id
             ORDER BY d.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Row {
                id: r.get(0)?,
                kind: r.get(1)?,
                updated_at: r.get(2)?,
                group: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn member_records(&self, member: &str) -> Result<HashSet<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT record_id FROM record_members WHERE member = ?1")?;
        Ok(stmt
            .query_map([member], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// The selected records, each with whether it is outside the audience's scope.
    fn selected(&self, sel: &Selection) -> Result<Vec<(Row, bool)>> {
        let members = match &sel.member {
            Some(m) => Some(self.member_records(m)?),
            None => None,
        };
        let mut out = Vec::new();
        for row in self.rows()? {
            let directory = RecordKind::parse(&row.kind).is_none_or(|k| k.is_directory());
            if sel.since.is_some_and(|t| row.updated_at < t) {
                continue;
            }
            let chosen = directory
                || (sel.group.is_none() && sel.member.is_none())
                || (sel.group.is_some() && row.group == sel.group)
                || members.as_ref().is_some_and(|m| m.contains(&row.id));
            if !chosen {
                continue;
            }
            let outside = !directory
                && sel
                    .audience
                    .as_ref()
                    .is_some_and(|a| row.group.as_ref() != Some(a));
            out.push((row, outside));
        }
        Ok(out)
    }

    /// What this device holds of the selection (in the audience's scope): each record's id
    /// and heads. What a phone-to-phone peer compares with its own.
    pub fn summary(&self, sel: &Selection) -> Result<Vec<(String, Vec<ChangeHash>)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT heads FROM docs WHERE id = ?1")?;
        let mut out = Vec::new();
        for (row, outside) in self.selected(sel)? {
            if outside {
                continue;
            }
            let heads: Vec<u8> = stmt.query_row([&row.id], |r| r.get(0))?;
            out.push((row.id, heads_from_bytes(&heads)));
        }
        Ok(out)
    }

    /// What a receiver may lack of the selection: `theirs` is a peer's summary (the changes
    /// after heads of theirs this device knows; nothing for a record at the same heads), `None`
    /// a bundle for anyone (every selected record whole). The payload carries the records in
    /// the audience's scope with the signatures covering their changes and the signers'
    /// certificates, the receipts this device holds for them, its newest revocation list, the
    /// originals waiting here (`with_originals`) and the cargo it carries; records outside the
    /// scope are only listed (`outside`). A damaged record is left out.
    pub fn bundle_payload(
        &self,
        sel: &Selection,
        theirs: Option<&HashMap<String, Vec<ChangeHash>>>,
    ) -> Result<(Payload, Vec<ExportedDoc>)> {
        let mut exported = Vec::new();
        let mut inside = Vec::new();
        for (row, outside) in self.selected(sel)? {
            if outside {
                exported.push(ExportedDoc {
                    id: row.id,
                    kind: row.kind,
                    group: row.group,
                    outside: true,
                    bytes: 0,
                });
                continue;
            }
            let Ok(mut doc) = self.load(&row.id) else {
                continue;
            };
            let changes = match theirs.and_then(|t| t.get(&row.id)) {
                // What is not behind the peer's heads that this device knows (heads it does not
                // know are of changes it lacks; all it has is sent when it knows none).
                Some(their_heads) => {
                    let am = doc.automerge();
                    let known: Vec<ChangeHash> = their_heads
                        .iter()
                        .filter(|h| am.get_change_meta_by_hash(h).is_some())
                        .copied()
                        .collect();
                    doc.save_after(&known)
                }
                None => doc.save_after(&[]),
            };
            if changes.is_empty() {
                continue;
            }
            exported.push(ExportedDoc {
                id: row.id.clone(),
                kind: row.kind.clone(),
                group: row.group,
                outside: false,
                bytes: changes.len(),
            });
            inside.push(DocChanges {
                id: row.id,
                kind: row.kind,
                changes,
            });
        }
        let mut payload = self.payload_of(inside, sel.with_originals)?;
        let ids: HashSet<String> = self
            .selected(sel)?
            .into_iter()
            .filter(|(_, outside)| !outside)
            .map(|(r, _)| r.id)
            .collect();
        payload.receipts = self.receipts(Some(&ids))?;
        payload.revocations = self.revocations()?;
        payload.cargo = self.cargo()?.into_iter().map(|(_, b)| b).collect();
        Ok((payload, exported))
    }

    /// The payload of records outside a bundle's audience (whole, with their signatures,
    /// certificates and, `with_originals`, originals): what goes as cargo sealed to the server
    /// only.
    pub fn outside_payload(&self, ids: &[String], with_originals: bool) -> Result<Payload> {
        let mut docs = Vec::new();
        for id in ids {
            let Ok(mut doc) = self.load(id) else {
                continue;
            };
            docs.push(DocChanges {
                id: id.clone(),
                kind: doc.kind().code().to_string(),
                changes: doc.save_after(&[]),
            });
        }
        self.payload_of(docs, with_originals)
    }

    /// A payload of `docs` with the signatures of their changes, the signers' certificates and
    /// (`with_originals`) the originals of theirs waiting here.
    fn payload_of(&self, docs: Vec<DocChanges>, with_originals: bool) -> Result<Payload> {
        let hashes: Vec<ChangeHash> = docs
            .iter()
            .flat_map(|d| split_changes(&d.changes).into_iter().map(|(h, _)| h))
            .collect();
        let sigs = self.sigs_for(&hashes)?;
        let mut certs: Vec<DeviceCert> = Vec::new();
        let mut seen = HashSet::new();
        for s in &sigs {
            if seen.insert(s.signer.clone())
                && let Some(c) = self.cert(&s.signer)?
            {
                certs.push(c);
            }
        }
        let mut originals = Vec::new();
        if with_originals {
            let ids: HashSet<&str> = docs.iter().map(|d| d.id.as_str()).collect();
            for b in self.pending_blobs()? {
                if ids.contains(b.record_id.as_str())
                    && let Some(bytes) = self.pending_blob_bytes(&b.hash)?
                {
                    originals.push(Original {
                        hash: b.hash,
                        mime: b.mime,
                        bytes,
                    });
                }
            }
        }
        Ok(Payload {
            docs,
            sigs,
            certs,
            revocations: None,
            receipts: Vec::new(),
            originals,
            cargo: Vec::new(),
        })
    }

    /// Lands what a bundle part (or a phone-to-phone peer) brings, in one transaction:
    ///
    /// 1. a newer revocation list and the certificates, each verified against the pinned
    ///    server key (others are ignored);
    /// 2. each record judged by `sanjin_sync::relay::judge` against this device's copy; what
    ///    lands is saved, queued for the server (the relaying phone pushes it at its next sync,
    ///    with the signatures copied here) and noted as relayed; a refused record is reported
    ///    and nothing of it saved;
    /// 3. the verified receipts (the outbox is acknowledged as by the server: 已送达);
    /// 4. the originals whose bytes hash to their names and that a record shows, into the blob
    ///    outbox; cargo parts (verified as parts for the server), kept opaque to carry on.
    ///
    /// `header` is the part's, already verified (`sanjin_sync::bundle::verify`). Importing the
    /// same payload again changes nothing and reports every record unchanged.
    pub fn import_payload(
        &mut self,
        header: &Header,
        payload: Payload,
        now_ms: Millis,
    ) -> Result<ImportReport> {
        let Some(server) = self.server_public()? else {
            return Err(Error::NoServerKey);
        };
        self.conn.execute_batch("SAVEPOINT import_payload")?;
        match self.import_inner(&server, header, payload, now_ms) {
            Ok(r) => {
                self.conn.execute_batch("RELEASE import_payload")?;
                Ok(r)
            }
            Err(e) => {
                let _ = self
                    .conn
                    .execute_batch("ROLLBACK TO import_payload; RELEASE import_payload");
                Err(e)
            }
        }
    }

    fn import_inner(
        &mut self,
        server: &[u8; 32],
        header: &Header,
        payload: Payload,
        now_ms: Millis,
    ) -> Result<ImportReport> {
        let mut report = ImportReport::default();
        if let Some(r) = &payload.revocations
            && r.verify(server).is_ok()
        {
            report.revocations = self.put_revocations(r)?;
        }
        let revocations = self.revocations()?;
        for c in &payload.certs {
            if c.verify(server).is_ok() {
                self.put_cert(c)?;
            }
        }
        let exporter_revoked = revocations
            .as_ref()
            .is_some_and(|r| r.revokes(&header.exporter));
        let revoked = sanjin_sync::relay::revoked_by(revocations.as_ref());
        let mut facts = CertFacts::new(server, self.verified_certs(server)?, &revoked)
            .with_legal_group(self.legal_group()?);

        // The directory first, as in `merge_from`.
        let mut docs = payload.docs;
        docs.sort_by_key(|d| !RecordKind::parse(&d.kind).is_some_and(|k| k.is_directory()));
        for d in docs {
            let kind = RecordKind::parse(&d.kind);
            let line =
                |outcome, code: &str, field: &str, reason: String, detail: String| ImportedDoc {
                    id: d.id.clone(),
                    kind: d.kind.clone(),
                    outcome,
                    code: code.to_string(),
                    field: field.to_string(),
                    reason,
                    detail,
                };
            if exporter_revoked {
                report.refused += 1;
                report.records.push(line(
                    Outcome::Refused,
                    RefusalCode::Revoked.code(),
                    "",
                    "导出这个文件的设备已被注销，其中的记录不予接收".into(),
                    format!("the exporting device {} is revoked", header.exporter.device),
                ));
                continue;
            }
            let current = match self.load(&d.id) {
                Ok(doc) => Some(doc),
                Err(Error::NotFound(_)) => None,
                Err(Error::Damaged { reason, .. }) => {
                    report.refused += 1;
                    report.records.push(line(
                        Outcome::Refused,
                        RefusalCode::Malformed.code(),
                        "",
                        "本机的这条记录已损坏，无法合并；可用 sanjin device check 检查".into(),
                        reason,
                    ));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let conflicts_before = match &current {
                Some(_) => self.index_entry(&d.id)?.map_or(0, |e| e.conflicts),
                None => 0,
            };
            let mut current = current;
            let before = current.as_mut().map(|c| c.heads());
            let current_bytes = current.as_mut().map(|c| c.save());
            let judged = sanjin_sync::relay::judge(
                &mut facts,
                &d.id,
                current_bytes.as_deref(),
                &d.changes,
                &payload.sigs,
                now_ms,
            );
            match judged {
                // Missing earlier changes: not refused for good, imported once they are here.
                Judged::Refused(sanjin_sync::server::Refused(RefusalCode::MissingDeps, _, why)) => {
                    report.held += 1;
                    report.records.push(line(
                        Outcome::Held,
                        RefusalCode::MissingDeps.code(),
                        "",
                        "这些修改基于本机还没有的更早修改：请先导入更早的文件，或请对方导出整条记录"
                            .into(),
                        why,
                    ));
                }
                Judged::Refused(sanjin_sync::server::Refused(code, field, why)) => {
                    report.refused += 1;
                    report.records.push(line(
                        Outcome::Refused,
                        code.code(),
                        &field,
                        refusal_zh(kind, code, &field),
                        why,
                    ));
                }
                // This device holds every change already.
                Judged::Held => {
                    report.unchanged += 1;
                    report.records.push(line(
                        Outcome::Unchanged,
                        "",
                        "",
                        String::new(),
                        String::new(),
                    ));
                }
                Judged::Land {
                    mut doc,
                    new_changes,
                    refusal,
                } => {
                    let (code, field, reason, detail) = match &refusal {
                        Some(sanjin_sync::server::Refused(c, f, w)) => {
                            (c.code(), f.clone(), refusal_zh(kind, *c, f), w.clone())
                        }
                        None => ("", String::new(), String::new(), String::new()),
                    };
                    if new_changes == 0 || before.as_deref() == Some(&doc.heads()[..]) {
                        report.unchanged += 1;
                        report
                            .records
                            .push(line(Outcome::Unchanged, code, &field, reason, detail));
                        continue;
                    }
                    if !self.in_scope(&mut doc)? {
                        report.refused += 1;
                        report.records.push(line(
                            Outcome::Refused,
                            RefusalCode::Forbidden.code(),
                            "group",
                            "这条记录不属于本机所在的活动组，本机不保存；如需转交服务器，请导出方按本组重新导出".into(),
                            "the record is outside this device's scope".into(),
                        ));
                        continue;
                    }
                    let entry = self.land(&mut doc, before.as_deref(), &payload.sigs)?;
                    let outcome = if before.is_some() {
                        report.updated += 1;
                        Outcome::Updated
                    } else {
                        report.added += 1;
                        Outcome::Added
                    };
                    if entry.conflicts > conflicts_before {
                        report.new_conflicts.push(d.id.clone());
                    }
                    report
                        .records
                        .push(line(outcome, code, &field, reason, detail));
                }
            }
        }

        let receipts: Vec<_> = payload
            .receipts
            .into_iter()
            .filter(|r| r.verify(server).is_ok())
            .collect();
        report.receipts = self.put_receipts(&receipts)?;

        for o in payload.originals {
            match self.keep_original(&o)? {
                Ok(true) => report.originals += 1,
                Ok(false) => {}
                Err(why) => report.originals_refused.push((o.hash, why.into())),
            }
        }

        for part in payload.cargo {
            match sanjin_sync::bundle::verify(&part, server, &revoked) {
                Ok(h) if matches!(h.audience, Audience::Server) => {
                    if self.put_cargo(&part)? {
                        report.cargo += 1;
                    }
                }
                _ => report.cargo_refused += 1,
            }
        }
        Ok(report)
    }

    /// Whether a record that arrived from another device is one this device may hold: the
    /// directory, its own group's records and those its member takes part in, or anything on an
    /// office device (staff, admin) or one not enrolled in a group. The server's scope, as far
    /// as the device knows it.
    fn in_scope(&self, doc: &mut RecordDoc) -> Result<bool> {
        if doc.kind().is_directory()
            || matches!(
                self.meta(crate::META_ROLE)?.as_deref(),
                Some("staff" | "admin")
            )
        {
            return Ok(true);
        }
        let Some(own) = self.meta(crate::META_GROUP)? else {
            return Ok(true);
        };
        let entry = sanjin_core::IndexEntry::of(&doc.view()?);
        Ok(entry.group.as_deref() == Some(own.as_str())
            || entry.members.contains(&self.identity.member))
    }

    /// Saves a record that arrived relayed and landed: the document, its index row, its outbox
    /// entry (a directory record is not queued: only the server writes those), the signatures
    /// covering its changes, and its relayed mark, in one savepoint.
    fn land(
        &mut self,
        doc: &mut RecordDoc,
        before: Option<&[ChangeHash]>,
        sigs: &[ChangeSig],
    ) -> Result<sanjin_core::IndexEntry> {
        let queue = !doc.kind().is_directory();
        let hashes: HashSet<ChangeHash> = split_changes(&doc.save_after(before.unwrap_or(&[])))
            .into_iter()
            .map(|(h, _)| h)
            .collect();
        let heads = doc.heads();
        let entry = sanjin_core::IndexEntry::of(&doc.view()?);
        let doc_id = entry.id.clone();
        let keep = |tx: &rusqlite::Connection| -> Result<()> {
            for s in sigs {
                let present: Vec<ChangeHash> = s
                    .hashes
                    .iter()
                    .filter(|h| hashes.contains(h))
                    .copied()
                    .collect();
                if !present.is_empty() {
                    crate::sigs::put_sig(tx, s, &present)?;
                }
            }
            if queue {
                tx.prepare_cached(
                    "INSERT INTO relayed (doc_id, heads) VALUES (?1, ?2)
                     ON CONFLICT(doc_id) DO UPDATE SET heads = excluded.heads",
                )?
                .execute(params![doc_id, crate::heads_to_bytes(&heads)])?;
            }
            Ok(())
        };
        match before {
            Some(b) => self.save_changes_entry(doc, b, queue, entry, |tx, _| keep(tx)),
            None => {
                let tx = self.conn.savepoint()?;
                write_new_entry(&tx, doc, queue, &entry)?;
                keep(&tx)?;
                tx.commit()?;
                Ok(entry)
            }
        }
    }

    /// Keeps an original that came in a bundle in the blob outbox, to upload at the next sync:
    /// `Ok(true)` new, `Ok(false)` already here, `Err(reason)` refused.
    fn keep_original(&mut self, o: &Original) -> Result<std::result::Result<bool, &'static str>> {
        let hash = o.hash.to_ascii_lowercase();
        let digest = Sha256::digest(&o.bytes);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        if hex != hash {
            return Ok(Err("原图内容与其编号不符（文件可能已损坏），未保存"));
        }
        if !sanjin_core::validate::PHOTO_MIME_TYPES.contains(&o.mime.as_str()) {
            return Ok(Err("原图类型不受支持，未保存"));
        }
        let Some(record) = self.record_showing(&hash)? else {
            return Ok(Err("没有哪条记录包含这张照片，未保存"));
        };
        let n = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO blob_outbox (hash, record_id, mime, size, bytes, queued_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                hash,
                record,
                o.mime,
                o.bytes.len() as i64,
                o.bytes,
                crate::now_ms()
            ])?;
        Ok(Ok(n > 0))
    }

    /// A record of this store whose photos include `hash`.
    fn record_showing(&self, hash: &str) -> Result<Option<String>> {
        for (id, kind) in self.ids()? {
            if RecordKind::parse(&kind).is_none_or(|k| k.is_directory()) {
                continue;
            }
            let Ok(doc) = self.load(&id) else { continue };
            if doc
                .photos()
                .is_ok_and(|ps| ps.iter().any(|p| p.hash.eq_ignore_ascii_case(hash)))
            {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }
}
