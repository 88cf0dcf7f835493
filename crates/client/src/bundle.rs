//! Bundles (issue 12): a device's records in one file, or parts of a chosen size, for a USB
//! stick or a chat app, when nobody has signal. The layout, the sealing and the signature are
//! `sanjin_sync::bundle`'s; what goes in and what lands are the store's
//! ([`Store::bundle_payload`], [`Store::import_payload`]); this module takes the keys from the
//! store and carries the bytes between them. The files themselves are the caller's.
//!
//! A bundle is sealed to the audience group's current key and the server's, taken from the
//! server's signed key directory the device received at its last sync; it is signed with the
//! device's own key and names the device by its certificate. Records outside the audience
//! group's scope (a member who joined another group's activity) go as cargo: a nested part
//! sealed to the server only, which the receiving phone keeps opaque and carries on.
//!
//! A part this device cannot open (for another group, or for the server) is carried as cargo
//! too, so any phone can be the one that reaches the county town first.

use std::collections::HashMap;

use sanjin_core::domain::RecordData;
use sanjin_core::sign::DeviceCert;
use sanjin_core::{ChangeHash, Millis};
use sanjin_store::{ExportedDoc, ImportReport, Selection, Store, group_recipient};
use sanjin_sync::bundle::{self as format, Audience, Header};
pub use sanjin_sync::bundle::BundleError;

pub use sanjin_sync::bundle::SERVER_RECIPIENT;

/// What to export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// For this member: their group's records and the records they take part in, sealed to
    /// their group's key.
    pub for_member: Option<String>,
    /// For this group: its records, sealed to its key. Neither: every record of this device,
    /// sealed to its own group's key (or, for an office device without a group, to the server
    /// only).
    pub group: Option<String>,
    /// Only records saved on this device since this instant (UTC ms), whole.
    pub since: Option<Millis>,
    /// The photo originals still waiting on this device go too.
    pub with_originals: bool,
    /// At most this many bytes per part (`None`: one part, whatever its size). A record larger
    /// than that gets a part of its own.
    pub part_size: Option<usize>,
}

/// An exported bundle: its parts (write each to its own file) and what they carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    pub parts: Vec<Vec<u8>>,
    /// The records the bundle carries (`outside`: inside cargo sealed to the server).
    pub docs: Vec<ExportedDoc>,
    /// The group whose members can read it (`None`: only the server).
    pub audience: Option<String>,
    /// Originals carried.
    pub originals: usize,
    /// Cargo parts carried (this export's and those this device carries for others).
    pub cargo: usize,
}

/// Why a bundle could not be made or read. Messages name no person and no record content.
#[derive(Debug, thiserror::Error)]
pub enum BundleFailure {
    /// No signing key or certificate yet: enroll (and sync) first.
    #[error("this device has no signing key or certificate yet: enroll first")]
    NotEnrolled,
    /// No key directory from the server yet: sync once first.
    #[error("this device has not received the server's bundle keys yet: sync once first")]
    NoKeys,
    /// The server's key directory has no key for the group.
    #[error("the server has issued no bundle key for group {0} yet: sync once first")]
    NoGroupKey(String),
    /// `--for` names a member this device's directory does not hold.
    #[error("member {0} is not in this device's directory")]
    UnknownMember(String),
    /// A part that is refused: damaged, truncated, forged, from a newer sanjin, …
    #[error("{0:?}")]
    Part(BundleError),
    #[error(transparent)]
    Store(#[from] sanjin_store::Error),
}

impl BundleFailure {
    /// What a member reads, in Chinese, with what to do.
    pub fn zh(&self) -> String {
        match self {
            BundleFailure::NotEnrolled => {
                "本设备还没有签名密钥：请先用 sanjin device enroll 注册并同步一次".into()
            }
            BundleFailure::NoKeys => {
                "本设备还没有收到服务器发放的打包密钥：请在有信号时先同步一次（sanjin device sync）"
                    .into()
            }
            BundleFailure::NoGroupKey(g) => format!(
                "服务器还没有为活动组 {g} 发放打包密钥：请在有信号时先同步一次（sanjin device sync）"
            ),
            BundleFailure::UnknownMember(m) => format!(
                "本设备的名录里没有委员 {m}：请核对委员编号，或改用 --group 指定活动组"
            ),
            BundleFailure::Part(e) => e.zh(),
            BundleFailure::Store(sanjin_store::Error::NoServerKey) => {
                "本设备还没有服务器的密钥：请先注册并在有信号时同步一次".into()
            }
            BundleFailure::Store(e) => e.to_string(),
        }
    }

    /// Whether the member can fix it (a bad file, a wrong option) rather than a fault here.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, BundleFailure::Store(e) if !matches!(e, sanjin_store::Error::NoServerKey))
    }
}

/// The group a `--for MEMBER` export is for, from the directory.
fn group_of_member(store: &Store, member: &str) -> Result<String, BundleFailure> {
    match store.load(member).ok().and_then(|d| d.data().ok()) {
        Some(RecordData::Member(m)) => Ok(m.group),
        _ => Err(BundleFailure::UnknownMember(member.to_string())),
    }
}

/// The selection and audience of an export.
pub fn selection(store: &Store, opts: &ExportOptions) -> Result<Selection, BundleFailure> {
    let (group, member) = match (&opts.for_member, &opts.group) {
        (Some(m), _) => (Some(group_of_member(store, m)?), Some(m.clone())),
        (None, Some(g)) => (Some(g.clone()), None),
        (None, None) => (None, None),
    };
    let audience = match &group {
        Some(g) => Some(g.clone()),
        None => store.meta(sanjin_store::META_GROUP)?,
    };
    Ok(Selection {
        group,
        member,
        since: opts.since,
        with_originals: opts.with_originals,
        audience,
    })
}

/// The bundle parts of `sel` for a receiver who holds `theirs` (`None`: anyone), sealed to the
/// selection's audience and the server, signed by this device: the store's payload, with the
/// records outside the audience's scope sealed to the server alone as cargo. What
/// [`export_bundle`] writes and what a phone-to-phone session sends.
pub fn build_parts(
    store: &Store,
    sel: &Selection,
    theirs: Option<&HashMap<String, Vec<ChangeHash>>>,
    part_size: Option<usize>,
    now: Millis,
    fill: &mut dyn FnMut(&mut [u8]),
) -> Result<Exported, BundleFailure> {
    let key = store.signing_key().ok_or(BundleFailure::NotEnrolled)?.clone();
    let cert: DeviceCert = store
        .cert(&store.identity().device)?
        .filter(|c| c.public_key == key.public())
        .ok_or(BundleFailure::NotEnrolled)?;
    let directory = store.key_directory()?.ok_or(BundleFailure::NoKeys)?;
    let server = (SERVER_RECIPIENT.to_string(), directory.server_box);
    let (audience, recipients) = match &sel.audience {
        Some(g) => {
            let k = directory
                .group(g)
                .ok_or_else(|| BundleFailure::NoGroupKey(g.clone()))?;
            (
                Audience::Group {
                    group: g.clone(),
                    epoch: k.epoch,
                },
                vec![(group_recipient(g, k.epoch), k.public), server.clone()],
            )
        }
        None => (Audience::Server, vec![server.clone()]),
    };
    let limit = part_size.unwrap_or(usize::MAX);
    let (mut payload, docs) = store.bundle_payload(sel, theirs)?;
    sign_own(store, &key, &mut payload);
    let outside: Vec<String> = docs
        .iter()
        .filter(|d| d.outside)
        .map(|d| d.id.clone())
        .collect();
    if !outside.is_empty() {
        let mut sealed = store.outside_payload(&outside, sel.with_originals)?;
        sign_own(store, &key, &mut sealed);
        payload.cargo.extend(format::export(
            sealed,
            &key,
            &cert,
            Audience::Server,
            std::slice::from_ref(&server),
            limit,
            now,
            fill,
        )
        .map_err(BundleFailure::Part)?);
    }
    let originals = payload.originals.len();
    let cargo = payload.cargo.len();
    let parts = format::export(payload, &key, &cert, audience, &recipients, limit, now, fill)
        .map_err(BundleFailure::Part)?;
    Ok(Exported {
        parts,
        docs,
        audience: sel.audience.clone(),
        originals,
        cargo,
    })
}

/// Adds one fresh signature over this device's own changes in `payload` that no signature it
/// carries covers (a change saved without one, e.g. a photo attached), as a push does.
fn sign_own(store: &Store, key: &sanjin_core::sign::DeviceKey, payload: &mut format::Payload) {
    let covered: std::collections::HashSet<ChangeHash> = payload
        .sigs
        .iter()
        .filter(|s| s.signer == store.identity().device)
        .flat_map(|s| s.hashes.iter().copied())
        .collect();
    let own: Vec<ChangeHash> = payload
        .docs
        .iter()
        .flat_map(|d| store.own_changes(&d.changes))
        .filter(|h| !covered.contains(h))
        .collect();
    if !own.is_empty() {
        payload.sigs.push(sanjin_core::sign::ChangeSig::sign(
            key,
            &store.identity().device,
            sanjin_core::sign::SigKind::Changes,
            own,
        ));
    }
}

/// Exports a bundle of this device's records as `opts` says (randomness from the OS).
pub fn export_bundle(
    store: &Store,
    opts: &ExportOptions,
    now: Millis,
) -> Result<Exported, BundleFailure> {
    let sel = selection(store, opts)?;
    let mut fill = |b: &mut [u8]| getrandom::fill(b).expect("the OS provides randomness");
    build_parts(store, &sel, None, opts.part_size, now, &mut fill)
}

/// What importing one part did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartReport {
    /// Which part of how many of which bundle (hex id).
    pub bundle: String,
    pub part: u16,
    pub parts: u16,
    /// The exporting device and its member.
    pub exporter_device: String,
    pub exporter_member: String,
    /// This device cannot open it (sealed to another group or to the server only): it was kept
    /// as cargo for the server.
    pub carried: bool,
    pub report: ImportReport,
}

/// Imports one bundle part: checks it (format, the exporter's certificate against the pinned
/// server key, not revoked, the signature), opens it with this device's group secrets, and
/// lands what it carries ([`Store::import_payload`]). A part this device may not read is kept
/// as cargo for the server. Any number of times, in any order.
pub fn import_bundle(
    store: &mut Store,
    bytes: &[u8],
    now: Millis,
) -> Result<PartReport, BundleFailure> {
    let server = store
        .server_public()?
        .ok_or(BundleFailure::Store(sanjin_store::Error::NoServerKey))?;
    let revocations = store.revocations()?;
    let revoked = |c: &DeviceCert| revocations.as_ref().is_some_and(|r| r.revokes(c));
    let header = format::verify(bytes, &server, &revoked).map_err(BundleFailure::Part)?;
    let secrets: HashMap<String, sanjin_core::seal::BoxSecret> =
        store.box_secrets()?.into_iter().collect();
    let opened = format::open(bytes, &|id| secrets.get(id).cloned());
    match opened {
        Ok((h, payload)) => {
            let report = store.import_payload(&h, payload, now)?;
            Ok(part_report(&h, false, report))
        }
        Err(BundleError::NotForUs) => {
            store.put_cargo(bytes)?;
            Ok(part_report(&header, true, ImportReport::default()))
        }
        Err(e) => Err(BundleFailure::Part(e)),
    }
}

fn part_report(h: &Header, carried: bool, report: ImportReport) -> PartReport {
    PartReport {
        bundle: crate::hex(&h.bundle_id),
        part: h.part,
        parts: h.parts,
        exporter_device: h.exporter.device.clone(),
        exporter_member: h.exporter.member.clone(),
        carried,
        report,
    }
}

/// A stand-in for the server's trust, for tests and benchmarks without a server: the server's
/// signing key and box key, group keys, and devices "enrolled" offline with certificates it
/// issued, the key directory and their group's secret, as `sanjin_client::trust` would leave
/// them after a sync. Never used by the apps.
pub mod testing {
    use sanjin_core::Millis;
    use sanjin_core::seal::BoxSecret;
    use sanjin_core::sign::{
        DeviceCert, DeviceKey, GroupKey, KeyDirectory, Receipt, Revocations, Revoked,
    };
    use sanjin_store::{META_GROUP, META_ROLE, Store};

    use crate::meta;

    /// The server's keys (made from `seed`) and one box key per group (epoch 1).
    pub struct TestTrust {
        pub server: DeviceKey,
        pub server_cert: DeviceCert,
        pub server_box: BoxSecret,
        pub groups: Vec<(String, BoxSecret)>,
        pub directory: KeyDirectory,
    }

    impl TestTrust {
        pub fn new(seed: u8, groups: &[&str], now: Millis) -> TestTrust {
            let server = DeviceKey::from_seed([seed; 32]);
            let server_cert = DeviceCert::server(&server, &[seed; 16], now);
            let server_box = BoxSecret::from_seed([seed.wrapping_add(1); 32]);
            let groups: Vec<(String, BoxSecret)> = groups
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    let s = BoxSecret::from_seed([seed.wrapping_add(2 + i as u8); 32]);
                    (g.to_string(), s)
                })
                .collect();
            let directory = KeyDirectory::sign(
                &server,
                now,
                server_box.public(),
                groups
                    .iter()
                    .map(|(g, s)| GroupKey {
                        group: g.clone(),
                        epoch: 1,
                        public: s.public(),
                    })
                    .collect(),
            );
            TestTrust {
                server,
                server_cert,
                server_box,
                groups,
                directory,
            }
        }

        /// Enrolls `store`'s device offline as `role` of `group`: its signing key (from
        /// `seed`), its certificate and the server's, the key directory and its group's secret
        /// (all groups' for an office role). Returns its certificate.
        pub fn enroll(
            &self,
            store: &mut Store,
            seed: u8,
            role: &str,
            group: Option<&str>,
            now: Millis,
        ) -> DeviceCert {
            let key = DeviceKey::from_seed([seed; 32]);
            let id = store.identity().clone();
            let cert = DeviceCert::issue(
                &self.server,
                &id.device,
                &id.actor,
                &id.member,
                role,
                group,
                key.public(),
                now,
            );
            let hex: String = self
                .server_cert
                .encode()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            store.set_meta(meta::SERVER_CERT, Some(&hex)).unwrap();
            store.set_meta(META_ROLE, Some(role)).unwrap();
            store.set_meta(META_GROUP, group).unwrap();
            store.put_cert(&self.server_cert).unwrap();
            store.put_cert(&cert).unwrap();
            store.set_signing_key(&key).unwrap();
            store.sign_own_unsigned().unwrap();
            store.put_key_directory(&self.directory).unwrap();
            for (g, s) in &self.groups {
                if group.is_none() || group == Some(g.as_str()) {
                    store.put_box_secret(g, 1, s).unwrap();
                }
            }
            cert
        }

        /// The server's receipt that it holds `doc_id` up to `heads`.
        pub fn receipt(
            &self,
            doc_id: &str,
            heads: &[sanjin_core::ChangeHash],
            at: Millis,
        ) -> Receipt {
            Receipt::sign(&self.server, doc_id, heads, at)
        }

        /// The server's revocation list number `seq`, revoking these devices.
        pub fn revoke(&self, seq: u64, certs: &[&DeviceCert], now: Millis) -> Revocations {
            Revocations::sign(
                &self.server,
                seq,
                now,
                certs
                    .iter()
                    .map(|c| Revoked {
                        device: c.device.clone(),
                        actor: c.actor.clone(),
                        revoked_at: now,
                    })
                    .collect(),
            )
        }
    }
}
