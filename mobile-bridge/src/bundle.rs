//! Bundles on the phone (issue 12): `DeviceStore.export_bundle` gives the bytes of each part
//! for the app to share (the share sheet, a chat app, a USB stick), `import_bundle` lands one
//! part received. Thin wrappers over `sanjin_client::bundle`: no logic of its own, and no
//! personal data in its errors (codes and fixed Chinese words).

use sanjin_client::bundle::{self, BundleError, BundleFailure, ExportOptions};
use sanjin_store::{Outcome, now_ms};

use crate::error::ApiError;
use crate::guard::guard;
use crate::store::DeviceStore;

/// What to put in a bundle. Neither `for_member` nor `group`: every record of the device,
/// for its own group (records of other groups go sealed to the server only).
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct BundleOptions {
    /// For this member: their group's records and the records they take part in.
    #[uniffi(default)]
    pub for_member: Option<String>,
    /// For this group: its records.
    #[uniffi(default)]
    pub group: Option<String>,
    /// Only records saved on this device since this instant (UTC ms), whole.
    #[uniffi(default)]
    pub since_ms: Option<i64>,
    /// The photo originals still waiting on this device go too.
    #[uniffi(default)]
    pub with_originals: bool,
    /// At most this many bytes per part (chat apps' limits); `None`: one part.
    #[uniffi(default)]
    pub part_size: Option<u64>,
}

/// A bundle made: the bytes of each part (share each as its own file, named by the app, e.g.
/// `sanjin-<date>.part1of3.sjb`) and what it carries.
#[derive(Debug, Clone, uniffi::Record)]
pub struct BundleExport {
    pub parts: Vec<Vec<u8>>,
    /// Records the group can read.
    pub records: u32,
    /// Records of other groups, sealed to the server only (cargo).
    pub outside: u32,
    pub originals: u32,
    pub cargo: u32,
    /// The group that can read it; `None`: only the server.
    pub audience_group: Option<String>,
}

/// What became of one record of an imported part.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BundleRecordResult {
    pub id: String,
    /// The record kind's code (`visit`, `opinion`, …).
    pub kind: String,
    /// `added`, `updated`, `unchanged`, `refused` or `held` (needs an earlier part first).
    pub outcome: String,
    /// The refusal code (`bad_signature`, `forbidden`, …), empty when none.
    pub code: String,
    /// The field a refusal is about (schema name), empty for the whole record.
    pub field: String,
    /// Why, in fixed Chinese words; empty when nothing was refused.
    pub message_zh: String,
}

/// What importing one part did.
#[derive(Debug, Clone, uniffi::Record)]
pub struct BundleImport {
    /// The bundle's id (hex) and this part's number of how many.
    pub bundle_id: String,
    pub part: u16,
    pub parts: u16,
    /// The device cannot read it (for another group, or the server only): it was kept to hand
    /// to the server at the next sync.
    pub carried: bool,
    pub added: u32,
    pub updated: u32,
    pub unchanged: u32,
    pub refused: u32,
    pub held: u32,
    pub records: Vec<BundleRecordResult>,
    /// New originals kept to upload at the next sync.
    pub originals: u32,
    /// New cargo parts kept to hand to the server.
    pub cargo: u32,
    /// New server receipts (records shown 已送达).
    pub receipts: u32,
    pub revocations_updated: bool,
    /// Records that became conflicted (a leader resolves them).
    pub new_conflicts: Vec<String>,
}

fn n(x: usize) -> u32 {
    u32::try_from(x).unwrap_or(u32::MAX)
}

/// A bundle failure for the app: a stable code and the client's Chinese words (which name no
/// person and no record content).
fn bundle_error(e: BundleFailure) -> ApiError {
    let e = match e {
        BundleFailure::Store(s) => return s.into(),
        other => other,
    };
    let reason = match &e {
        BundleFailure::NotEnrolled => "not_enrolled",
        BundleFailure::NoKeys => "no_keys",
        BundleFailure::NoGroupKey(_) => "no_group_key",
        BundleFailure::UnknownMember(_) => "unknown_member",
        BundleFailure::Part(p) => match p {
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
        },
        BundleFailure::Store(_) => "storage",
    };
    ApiError::BundleRefused {
        reason: reason.into(),
        message_zh: e.zh(),
    }
}

#[uniffi::export]
impl DeviceStore {
    /// Makes a bundle of the device's records (sealed to the group's key and the server's,
    /// signed by this device). Needs the server's keys from one earlier sync.
    pub fn export_bundle(&self, options: BundleOptions) -> Result<BundleExport, ApiError> {
        guard(|| {
            self.with(|s| {
                let opts = ExportOptions {
                    for_member: options.for_member.clone(),
                    group: options.group.clone(),
                    since: options.since_ms,
                    with_originals: options.with_originals,
                    part_size: options
                        .part_size
                        .map(|p| usize::try_from(p).unwrap_or(usize::MAX)),
                };
                let e = bundle::export_bundle(s, &opts, now_ms()).map_err(bundle_error)?;
                let outside = e.docs.iter().filter(|d| d.outside).count();
                Ok(BundleExport {
                    records: n(e.docs.len() - outside),
                    outside: n(outside),
                    originals: n(e.originals),
                    cargo: n(e.cargo),
                    audience_group: e.audience,
                    parts: e.parts,
                })
            })
        })
    }

    /// Imports one part of a bundle (any order, any number of times): every record is checked
    /// as the server checks it; refused ones are listed and nothing of them is saved.
    pub fn import_bundle(&self, part: Vec<u8>) -> Result<BundleImport, ApiError> {
        guard(|| {
            self.with(|s| {
                let r = bundle::import_bundle(s, &part, now_ms()).map_err(bundle_error)?;
                let rep = r.report;
                Ok(BundleImport {
                    bundle_id: r.bundle,
                    part: r.part,
                    parts: r.parts,
                    carried: r.carried,
                    added: n(rep.added),
                    updated: n(rep.updated),
                    unchanged: n(rep.unchanged),
                    refused: n(rep.refused),
                    held: n(rep.held),
                    records: rep
                        .records
                        .into_iter()
                        .map(|d| BundleRecordResult {
                            outcome: match d.outcome {
                                Outcome::Added => "added",
                                Outcome::Updated => "updated",
                                Outcome::Unchanged => "unchanged",
                                Outcome::Refused => "refused",
                                Outcome::Held => "held",
                            }
                            .into(),
                            id: d.id,
                            kind: d.kind,
                            code: d.code,
                            field: d.field,
                            message_zh: d.reason,
                        })
                        .collect(),
                    originals: n(rep.originals),
                    cargo: n(rep.cargo),
                    receipts: n(rep.receipts),
                    revocations_updated: rep.revocations,
                    new_conflicts: rep.new_conflicts,
                })
            })
        })
    }
}
