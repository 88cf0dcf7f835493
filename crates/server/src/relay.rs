//! Bundles on the server (issue 12): one part — from `POST /v1/bundle` (a relaying phone's
//! cargo or any bundle part) or `sanjin admin import-bundle` (a USB stick, a file sent over a
//! chat app) — verified (`sanjin_sync::bundle::verify`: format, lengths, the exporter's
//! certificate by this server, not revoked, the exporter's signature), opened with the server's
//! box key, and every document landed through **the same push policy as a sync push**
//! (`ServerData::push_doc`: per change the enrolled, unrevoked author, its message, its
//! signature — from the bundle's `ChangeSig`s checked against the registered device keys —,
//! the rules, the record check), written with its change-log entry so devices pull it; the
//! signatures kept beside what landed. Cargo inside is imported the same way. Importing a part
//! twice changes nothing (its documents are then `held`).

use std::collections::BTreeSet;

use serde::Serialize;

use sanjin_core::sign::DeviceCert;
use sanjin_sync::bundle::{self, BundleError, Header, Payload};
use sanjin_sync::server::{Landed, Refused};

use crate::data::{SERVER_ID, ServerData};
use crate::error::Result;
use crate::model::{Account, Caller, Role};
use crate::sync::Authors;

/// Cargo nests one level: a part inside a part. Deeper cargo is not opened.
const MAX_CARGO_DEPTH: usize = 1;

/// What became of one document of a part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocOutcome {
    pub doc_id: String,
    /// `landed` (new changes written), `held` (the server held every change already),
    /// `refused` (nothing of it landed, or only the changes that do not depend on the refused
    /// ones — the reason says which), `skipped` (the server's own copy is damaged).
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The refusal's words for members and staff.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_zh: Option<String>,
}

/// Why a whole part was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartRefusal {
    /// `not_a_bundle`, `newer`, `truncated`, `damaged`, `cert_not_by_server`,
    /// `exporter_revoked`, `bad_signature`, `not_for_us`, `too_large`.
    pub code: &'static str,
    pub message: String,
    /// In Chinese, with what to do.
    pub message_zh: String,
}

/// What importing one part did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PartReport {
    /// Hex of the bundle's id (empty when the part could not be read at all).
    pub bundle_id: String,
    pub part: u16,
    pub parts: u16,
    pub exporter_device: String,
    pub exporter_member: String,
    /// Set when the whole part was refused (nothing of it was imported).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<PartRefusal>,
    pub docs: Vec<DocOutcome>,
    /// Photo originals the server keeps from this part (new or already held).
    pub originals: usize,
    /// Originals left out: their bytes do not hash to their name, no record the server holds
    /// references them, or they are larger than the server accepts.
    pub originals_refused: usize,
    /// Hex of signed receipts for the documents the server now holds (those the importer may
    /// read).
    pub receipts: Vec<String>,
    /// The parts sealed to the server only that travelled inside this one.
    pub cargo: Vec<PartReport>,
}

impl PartReport {
    /// Documents landed, held and refused in this part and its cargo.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut n = (0, 0, 0);
        for d in &self.docs {
            match d.outcome {
                "landed" => n.0 += 1,
                "held" => n.1 += 1,
                _ => n.2 += 1,
            }
        }
        for c in &self.cargo {
            let (a, b, r) = c.counts();
            n = (n.0 + a, n.1 + b, n.2 + r);
        }
        n
    }
}

/// The code of a refused part.
pub fn error_code(e: &BundleError) -> &'static str {
    match e {
        BundleError::NotABundle => "not_a_bundle",
        BundleError::Newer { .. } => "newer",
        BundleError::Truncated => "truncated",
        BundleError::Damaged(_) => "damaged",
        BundleError::CertNotByServer => "cert_not_by_server",
        BundleError::ExporterRevoked { .. } => "exporter_revoked",
        BundleError::BadSignature => "bad_signature",
        BundleError::NotForUs => "not_for_us",
        BundleError::TooLarge => "too_large",
        BundleError::BadRecipient(_) => "bad_recipient",
    }
}

fn refusal_of(e: &BundleError) -> PartRefusal {
    PartRefusal {
        code: error_code(e),
        message: e.to_string(),
        message_zh: e.zh(),
    }
}

/// Who lands a bundle's documents: a writer that may write every record, so that what decides
/// is each change's own author (enrolled, unrevoked, its signature, its member's rights) —
/// exactly the per-change checks of a sync push. The relaying device or operator is only the
/// carrier.
fn carrier() -> Caller {
    Caller {
        device_id: SERVER_ID.into(),
        account: Account::new(SERVER_ID, Role::Staff, None, "bundle"),
    }
}

fn doc_outcome(doc_id: &str, landed: &Landed) -> DocOutcome {
    let mut out = DocOutcome {
        doc_id: doc_id.to_string(),
        outcome: "landed",
        code: None,
        field: None,
        reason: None,
        reason_zh: None,
    };
    match landed {
        Landed::Accepted { changed: true } => {}
        Landed::Accepted { changed: false } => out.outcome = "held",
        Landed::Refused(Refused(code, field, reason)) => {
            out.outcome = "refused";
            out.code = Some(code.code().to_string());
            out.field = Some(field.clone());
            out.reason = Some(reason.clone());
            out.reason_zh = Some(code.zh().to_string());
        }
        Landed::Skipped(reason) => {
            out.outcome = "skipped";
            out.reason = Some(reason.clone());
            out.reason_zh = Some("服务器上这条记录的副本已损坏，暂不能合并；请联系管理员".into());
        }
    }
    out
}

impl ServerData {
    /// Whether a device certificate belongs to a device this server has revoked (by its device
    /// id, or its actor).
    fn cert_revoked(&self, cert: &DeviceCert) -> bool {
        let by_id = self
            .store
            .device_auth(&cert.device)
            .ok()
            .flatten()
            .is_some_and(|d| d.revoked);
        by_id
            || self
                .store
                .device_by_actor(&hex::encode(&cert.actor))
                .ok()
                .flatten()
                .is_some_and(|d| d.revoked)
    }

    /// Imports one bundle part. `importer`: the device that sent it (`POST /v1/bundle`), or
    /// `None` for an operator (`sanjin admin import-bundle`); receipts are answered for what
    /// the importer may read. A part that fails its checks is refused whole (`refused`), and
    /// nothing of it is imported; the caller's other parts are not concerned.
    pub fn import_bundle_part(
        &mut self,
        bytes: &[u8],
        importer: Option<&Caller>,
    ) -> Result<PartReport> {
        self.import_part(bytes, importer, 0)
    }

    fn import_part(
        &mut self,
        bytes: &[u8],
        importer: Option<&Caller>,
        depth: usize,
    ) -> Result<PartReport> {
        let server_public = self.key.key.public();
        // The server's box key exists before anything is opened (made on first use).
        self.server_box()?;
        let verified = {
            // Issue 13: a device revoked because its member retired is still heard through an
            // operator's import (the office was handed the phone's bundle); what it made after
            // the retirement is refused change by change (the push policy).
            let operator = importer.is_none();
            let revoked = |c: &DeviceCert| {
                self.cert_revoked(c)
                    && !(operator && self.retirement(&c.member).ok().flatten().is_some())
            };
            bundle::verify(bytes, &server_public, &revoked)
        };
        if let Err(e) = verified {
            tracing::info!(code = error_code(&e), reason = %e, "bundle part refused");
            return Ok(PartReport {
                refused: Some(refusal_of(&e)),
                ..PartReport::default()
            });
        }
        let opened = {
            let key = |id: &str| self.box_secret_for(id);
            bundle::open(bytes, &key)
        };
        let (header, payload) = match opened {
            Ok(x) => x,
            Err(e) => {
                tracing::info!(code = error_code(&e), reason = %e, "bundle part cannot be opened");
                return Ok(PartReport {
                    refused: Some(refusal_of(&e)),
                    ..PartReport::default()
                });
            }
        };
        let mut report = self.land_payload(&header, &payload, importer)?;
        for c in &payload.cargo {
            if depth >= MAX_CARGO_DEPTH {
                break;
            }
            report.cargo.push(self.import_part(c, importer, depth + 1)?);
        }
        let (landed, held, refused) = report.counts();
        tracing::info!(
            bundle = %report.bundle_id,
            part = header.part,
            exporter = %header.exporter.device,
            landed,
            held,
            refused,
            originals = report.originals,
            "bundle part imported"
        );
        Ok(report)
    }

    /// Lands an opened part's documents, their signatures and the originals they reference, in
    /// one unit of work (each document a unit of its own inside it, as in a sync exchange).
    fn land_payload(
        &mut self,
        header: &Header,
        payload: &Payload,
        importer: Option<&Caller>,
    ) -> Result<PartReport> {
        let mut report = PartReport {
            bundle_id: hex::encode(header.bundle_id),
            part: header.part,
            parts: header.parts,
            exporter_device: header.exporter.device.clone(),
            exporter_member: header.exporter.member.clone(),
            ..PartReport::default()
        };
        let carrier = carrier();
        // The log entries are for everyone in scope, the carrier included: it may not hold
        // what it carried (cargo it cannot read, changes its own device refused), and pulling
        // back what it has costs only bytes.
        let outcomes = self.atomically(|d| -> Result<Vec<(String, Landed)>> {
            let signed = d.check_sigs(&payload.sigs)?;
            let mut authors = Authors::default();
            let mut landed = Vec::new();
            let mut out = Vec::new();
            for doc in &payload.docs {
                let one = d.atomically(|d| {
                    d.push_doc(
                        &carrier,
                        None,
                        &doc.id,
                        &doc.changes,
                        &mut authors,
                        &signed,
                        &mut landed,
                    )
                })?;
                out.push((doc.id.clone(), one));
            }
            d.keep_sigs(&signed, &landed)?;
            Ok(out)
        })?;
        for (id, landed) in &outcomes {
            if let Landed::Refused(Refused(code, field, reason)) = landed {
                tracing::info!(doc = %id, code = code.code(), %field, %reason, "bundle document refused");
            }
            report.docs.push(doc_outcome(id, landed));
        }
        self.land_originals(payload, &mut report)?;
        // Receipts: what the server now holds, for what the importer may read (an operator
        // may read everything).
        let reader = importer.cloned().unwrap_or(carrier);
        let ids: BTreeSet<&str> = outcomes.iter().map(|(id, _)| id.as_str()).collect();
        for id in ids {
            if let Some(r) = self.receipt(&reader, id)? {
                report.receipts.push(hex::encode(r.encode()));
            }
        }
        Ok(report)
    }

    /// Keeps the part's photo originals whose bytes hash to their name and that a record the
    /// server holds references, for the readers of that record's group.
    fn land_originals(&mut self, payload: &Payload, report: &mut PartReport) -> Result<()> {
        if payload.originals.is_empty() {
            return Ok(());
        }
        // Which group's record references which original.
        let mut referenced: std::collections::HashMap<String, Option<String>> =
            std::collections::HashMap::new();
        for doc in &payload.docs {
            let Ok(rec) = self.store.load(&doc.id) else {
                continue;
            };
            let group = self
                .store
                .index_entry(&doc.id)?
                .and_then(|e| crate::data::entry_scope(&e));
            for p in rec.photos().unwrap_or_default() {
                referenced.insert(p.hash.to_ascii_lowercase(), group.clone());
            }
        }
        for o in &payload.originals {
            let hash = crate::blobs::BlobHash::of(&o.bytes);
            let ok =
                hash.to_string() == o.hash && o.bytes.len() as u64 <= self.limits.max_blob_bytes;
            let Some(group) = referenced.get(&o.hash).filter(|_| ok) else {
                report.originals_refused += 1;
                continue;
            };
            let scope = group.clone().unwrap_or_default();
            if !self.store.upload_exists(hash.as_bytes(), Some(&scope))? {
                self.import_blob(&o.bytes, group.as_deref())?;
            }
            report.originals += 1;
        }
        Ok(())
    }
}
