//! Bundles (issue 12), sans-IO: the changes a receiver may lack, with their signatures and the
//! signers' certificates, receipts, the revocation list, photo originals and sealed cargo, in
//! files that travel on a USB stick or through a chat app — compressed, sealed to their
//! recipients and signed by the exporting device. The byte layout is specified in
//! `docs/PROTOCOL.md` ("Bundles (format 1)"); this module is its reference implementation.
//!
//! A bundle is one or more **parts**, each self-contained: a part carries the signatures and
//! certificates its own changes need, so parts import in any order, any number of times, and a
//! damaged part spoils no other.
//!
//! ```text
//! part:   "SANJINB\0" | format u16 | header length u32 | header | body length u32 | body
//!         | Ed25519 signature (64) by the exporter over everything before it
//! header: bundle id [16] | part u16 | parts u16 | created_at i64 | exporter certificate
//!         (u32 length + DeviceCert::encode) | audience
//! body:   seal(zstd(payload)), the header as associated data (sanjin_core::seal)
//! ```
//!
//! [`verify`] needs no key (magic, format, lengths, the exporter's certificate against the
//! server key, revocation, signature); [`open`] needs a box key the part is sealed to. Neither
//! panics on any bytes, and neither allocates more than the bytes present justify (the payload's
//! decompression is bounded as sync frames' are).

use std::collections::{BTreeSet, HashMap, HashSet};

use automerge::ChangeHash;
use sanjin_core::Millis;
use sanjin_core::seal::{self, BoxSecret, SealError, Sealed};
use sanjin_core::sign::{
    ChangeSig, DeviceCert, DeviceKey, Receipt, Revocations, SigKind, change_actor, split_changes,
    verify_context,
};

/// The bundle format this build writes and reads.
pub const BUNDLE_FORMAT: u16 = 1;
/// The first bytes of every part.
pub const MAGIC: [u8; 8] = *b"SANJINB\0";
/// The recipient id of the server's box key.
pub const SERVER_RECIPIENT: &str = "server";
/// The context of the exporter's signature over a part.
const SIGN_CONTEXT: &str = "sanjin-bundle-v1";
/// The largest header accepted (a certificate and a group name: a few hundred bytes).
pub const MAX_HEADER: usize = 16 << 10;
/// The largest sealed body accepted (the decompressed payload is bounded again by
/// `sanjin_core::protocol::MAX_PAYLOAD`).
pub const MAX_BODY: usize = 96 << 20;
/// The zstd level of payloads: bundles are written once and carried over slow links.
const LEVEL: i32 = 15;
/// magic + format + two lengths.
const FIXED: usize = 8 + 2 + 4 + 4;

/// The recipient id of a group's box key at an epoch.
pub fn group_recipient(group: &str, epoch: u32) -> String {
    format!("group:{group}:{epoch}")
}

/// Who a bundle is for: a group (its members' phones and the server), or the server only
/// (cargo, and bundles for staff).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    Group { group: String, epoch: u32 },
    Server,
}

/// The changes of one record, in automerge's incremental format (change chunks, concatenated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocChanges {
    pub id: String,
    /// The record's kind code (`visit`, …), so a receiver can tell its scope before loading.
    pub kind: String,
    pub changes: Vec<u8>,
}

/// A photo's original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original {
    /// SHA-256 of the bytes, 64 hex digits.
    pub hash: String,
    pub mime: String,
    pub bytes: Vec<u8>,
}

/// What a bundle carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Payload {
    pub docs: Vec<DocChanges>,
    pub sigs: Vec<ChangeSig>,
    pub certs: Vec<DeviceCert>,
    pub revocations: Option<Revocations>,
    pub receipts: Vec<Receipt>,
    pub originals: Vec<Original>,
    /// Whole bundle parts sealed to the server only, which the carrier cannot read.
    pub cargo: Vec<Vec<u8>>,
}

/// A part's header: readable without any key, bound to the sealed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub bundle_id: [u8; 16],
    /// This part's index, from 0.
    pub part: u16,
    pub parts: u16,
    pub created_at: Millis,
    pub exporter: DeviceCert,
    pub audience: Audience,
}

/// Why a part is refused. Each is a clean refusal, never a panic; [`BundleError::zh`] says
/// what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("not a sanjin bundle")]
    NotABundle,
    #[error("bundle format {found} is newer than this build's {supported}")]
    Newer { found: u16, supported: u16 },
    #[error("the bundle is truncated")]
    Truncated,
    #[error("the bundle is damaged: {0}")]
    Damaged(String),
    #[error("the exporter's certificate is not signed by this server")]
    CertNotByServer,
    #[error("the exporting device {device} has been revoked")]
    ExporterRevoked { device: String },
    #[error("the exporter's signature does not hold")]
    BadSignature,
    #[error("the bundle is not sealed to any key held here")]
    NotForUs,
    #[error("the bundle is larger than accepted")]
    TooLarge,
    /// Export only: a recipient's public key cannot be sealed to.
    #[error("cannot seal to recipient {0}")]
    BadRecipient(String),
}

impl BundleError {
    /// What a member, leader or staff reads: what happened and what to do.
    pub fn zh(&self) -> String {
        match self {
            BundleError::NotABundle => "这不是三进的数据包文件，请检查选择的文件是否正确".into(),
            BundleError::Newer { found, supported } => format!(
                "这个数据包由更新版本的三进导出（格式 {found}，本机只支持到格式 {supported}），请升级三进到最新版本后再导入"
            ),
            BundleError::Truncated => {
                "文件不完整（可能没有下载或复制完），请重新接收，或让对方重新导出".into()
            }
            BundleError::Damaged(_) | BundleError::BadSignature => {
                "文件已损坏或被篡改，请让对方重新导出".into()
            }
            BundleError::CertNotByServer => {
                "导出这个数据包的设备证书不是本系统签发的，文件可能是伪造的；请不要导入，并告知机关工作人员".into()
            }
            BundleError::ExporterRevoked { device } => format!(
                "导出这个数据包的设备（{device}）已被停用，数据包不能导入；请让对方用已登记的设备重新导出，或联系机关工作人员"
            ),
            BundleError::NotForUs => {
                "这个数据包不是发给本机所在小组的，本机无法打开；请让对方按本组重新导出，或有信号时先同步一次以取得本组密钥".into()
            }
            BundleError::TooLarge => {
                "文件超过允许的大小，请让对方分成较小的几部分重新导出".into()
            }
            BundleError::BadRecipient(_) => {
                "接收方的密钥无效，无法导出；请有信号时先同步一次以更新密钥".into()
            }
        }
    }
}

impl Audience {
    fn encode(&self, w: &mut Vec<u8>) {
        match self {
            Audience::Server => w.push(0),
            Audience::Group { group, epoch } => {
                w.push(1);
                put_str16(w, group);
                w.extend_from_slice(&epoch.to_le_bytes());
            }
        }
    }
}

impl Header {
    pub fn encode(&self) -> Vec<u8> {
        let cert = self.exporter.encode();
        let mut w = Vec::with_capacity(40 + cert.len() + 64);
        w.extend_from_slice(&self.bundle_id);
        w.extend_from_slice(&self.part.to_le_bytes());
        w.extend_from_slice(&self.parts.to_le_bytes());
        w.extend_from_slice(&self.created_at.to_le_bytes());
        w.extend_from_slice(&(cert.len() as u32).to_le_bytes());
        w.extend_from_slice(&cert);
        self.audience.encode(&mut w);
        w
    }

    pub fn decode(bytes: &[u8]) -> Result<Header, BundleError> {
        let mut r = Reader::new(bytes);
        let bundle_id: [u8; 16] = r.array("bundle id")?;
        let part = u16::from_le_bytes(r.array("part")?);
        let parts = u16::from_le_bytes(r.array("parts")?);
        if parts == 0 || part >= parts {
            return Err(damaged("part index out of range"));
        }
        let created_at = i64::from_le_bytes(r.array("created_at")?);
        let len = u32::from_le_bytes(r.array("certificate length")?) as usize;
        let exporter = DeviceCert::decode(r.take(len, "certificate")?)
            .map_err(|e| BundleError::Damaged(format!("exporter certificate: {e}")))?;
        let audience = match r.u8("audience")? {
            0 => Audience::Server,
            1 => {
                let group = r.str16("audience group")?;
                let epoch = u32::from_le_bytes(r.array("audience epoch")?);
                Audience::Group { group, epoch }
            }
            _ => return Err(damaged("unknown audience")),
        };
        r.end()?;
        Ok(Header {
            bundle_id,
            part,
            parts,
            created_at,
            exporter,
            audience,
        })
    }
}

// ---------------------------------------------------------------- the payload's bytes

/// The payload's encoding (what is compressed and sealed). Counts and lengths are LEB128; a
/// signature names the changes of this part it covers by position (in the order of the parts'
/// documents and their chunks, delta-coded), and the others by literal hash.
fn encode_payload(p: &Payload) -> Vec<u8> {
    let mut w = Vec::with_capacity(
        p.docs.iter().map(|d| d.changes.len() + 32).sum::<usize>()
            + p.originals
                .iter()
                .map(|o| o.bytes.len() + 96)
                .sum::<usize>()
            + p.cargo.iter().map(|c| c.len() + 8).sum::<usize>()
            + 1024,
    );
    varint(&mut w, p.docs.len() as u64);
    for d in &p.docs {
        bytes(&mut w, d.id.as_bytes());
        bytes(&mut w, d.kind.as_bytes());
        bytes(&mut w, &d.changes);
    }
    let positions: HashMap<ChangeHash, u64> = frame_hashes(&p.docs)
        .into_iter()
        .enumerate()
        .map(|(i, h)| (h, i as u64))
        .collect();
    varint(&mut w, p.sigs.len() as u64);
    for s in &p.sigs {
        bytes(&mut w, s.signer.as_bytes());
        w.push(s.kind as u8);
        w.extend_from_slice(&s.signature);
        let mut refs: Vec<u64> = Vec::new();
        let mut lits: Vec<&ChangeHash> = Vec::new();
        for h in &s.hashes {
            match positions.get(h) {
                Some(&p) => refs.push(p),
                None => lits.push(h),
            }
        }
        refs.sort_unstable();
        refs.dedup();
        varint(&mut w, refs.len() as u64);
        let mut next = 0u64;
        for p in refs {
            varint(&mut w, p - next);
            next = p + 1;
        }
        varint(&mut w, lits.len() as u64);
        for h in lits {
            w.extend_from_slice(&h.0);
        }
    }
    varint(&mut w, p.certs.len() as u64);
    for c in &p.certs {
        bytes(&mut w, &c.encode());
    }
    match &p.revocations {
        Some(r) => {
            w.push(1);
            bytes(&mut w, &r.encode());
        }
        None => w.push(0),
    }
    varint(&mut w, p.receipts.len() as u64);
    for r in &p.receipts {
        bytes(&mut w, &r.encode());
    }
    varint(&mut w, p.originals.len() as u64);
    for o in &p.originals {
        bytes(&mut w, o.hash.as_bytes());
        bytes(&mut w, o.mime.as_bytes());
        bytes(&mut w, &o.bytes);
    }
    varint(&mut w, p.cargo.len() as u64);
    for c in &p.cargo {
        bytes(&mut w, c);
    }
    w
}

fn frame_hashes(docs: &[DocChanges]) -> Vec<ChangeHash> {
    docs.iter()
        .flat_map(|d| split_changes(&d.changes).into_iter().map(|(h, _)| h))
        .collect()
}

fn decode_payload(b: &[u8]) -> Result<Payload, BundleError> {
    let mut r = Reader::new(b);
    let n = r.count("documents")?;
    let mut docs = Vec::with_capacity(n.min(256));
    for _ in 0..n {
        docs.push(DocChanges {
            id: r.string("document id")?,
            kind: r.string("document kind")?,
            changes: r.bytes("changes")?.to_vec(),
        });
    }
    let mut all: Option<Vec<ChangeHash>> = None;
    let mut total_refs = 0usize;
    let n = r.count("signatures")?;
    let mut sigs = Vec::with_capacity(n.min(256));
    for _ in 0..n {
        let signer = r.string("signer")?;
        let kind = SigKind::from_u8(r.u8("signature kind")?)
            .ok_or_else(|| damaged("unknown signature kind"))?;
        let signature: [u8; 64] = r.array("signature")?;
        let nrefs = r.count("signature references")?;
        let mut hashes = Vec::with_capacity(nrefs.min(256));
        if nrefs > 0 {
            let all = all.get_or_insert_with(|| frame_hashes(&docs));
            // A change is covered by a few signatures at most (its author's, a vouch): more
            // references than that would allocate 32 bytes per byte read.
            total_refs += nrefs;
            if total_refs > 4 * all.len() {
                return Err(damaged("too many signature references"));
            }
            let mut next = 0u64;
            for _ in 0..nrefs {
                let p = next.saturating_add(r.varint("signature reference")?);
                let h = usize::try_from(p)
                    .ok()
                    .and_then(|p| all.get(p))
                    .ok_or_else(|| damaged("a signature names a change the part lacks"))?;
                hashes.push(*h);
                next = p.saturating_add(1);
            }
        }
        let nlit = r.count("signed hashes")?;
        for _ in 0..nlit {
            hashes.push(ChangeHash(r.array("signed hash")?));
        }
        hashes.sort_unstable();
        hashes.dedup();
        sigs.push(ChangeSig {
            signer,
            kind,
            hashes,
            signature,
        });
    }
    let n = r.count("certificates")?;
    let mut certs = Vec::with_capacity(n.min(256));
    for _ in 0..n {
        certs.push(
            DeviceCert::decode(r.bytes("certificate")?)
                .map_err(|e| BundleError::Damaged(format!("certificate: {e}")))?,
        );
    }
    let revocations = match r.u8("revocations flag")? {
        0 => None,
        1 => Some(
            Revocations::decode(r.bytes("revocations")?)
                .map_err(|e| BundleError::Damaged(format!("revocations: {e}")))?,
        ),
        _ => return Err(damaged("bad revocations flag")),
    };
    let n = r.count("receipts")?;
    let mut receipts = Vec::with_capacity(n.min(256));
    for _ in 0..n {
        receipts.push(
            Receipt::decode(r.bytes("receipt")?)
                .map_err(|e| BundleError::Damaged(format!("receipt: {e}")))?,
        );
    }
    let n = r.count("originals")?;
    let mut originals = Vec::with_capacity(n.min(256));
    for _ in 0..n {
        originals.push(Original {
            hash: r.string("original hash")?,
            mime: r.string("original type")?,
            bytes: r.bytes("original")?.to_vec(),
        });
    }
    let n = r.count("cargo")?;
    let mut cargo = Vec::with_capacity(n.min(256));
    for _ in 0..n {
        cargo.push(r.bytes("cargo")?.to_vec());
    }
    r.end()?;
    Ok(Payload {
        docs,
        sigs,
        certs,
        revocations,
        receipts,
        originals,
        cargo,
    })
}

// ---------------------------------------------------------------- export

/// One thing a part carries besides what every part carries (the revocation list).
#[derive(Debug, Clone, Copy)]
enum Item {
    Doc(usize),
    Original(usize),
    Cargo(usize),
    Receipt(usize),
}

/// Splits the payload into parts of at most `part_limit` bytes each (a document, an original or
/// a cargo part larger than that gets a part of its own), seals each to `recipients` with its
/// header as associated data, and signs it with the exporter's key. Each part carries the
/// signatures covering its own changes and the certificates of their signers and authors, and
/// the revocation list. `fill` gives random bytes (the bundle id, the sealing keys).
#[allow(clippy::too_many_arguments)]
pub fn export(
    payload: Payload,
    exporter: &DeviceKey,
    cert: &DeviceCert,
    audience: Audience,
    recipients: &[(String, [u8; 32])],
    part_limit: usize,
    created_at: Millis,
    fill: &mut dyn FnMut(&mut [u8]),
) -> Result<Vec<Vec<u8>>, BundleError> {
    let mut bundle_id = [0u8; 16];
    fill(&mut bundle_id);
    // What every part costs before its payload: the frame, the header, the sealing, the
    // signature, the revocation list, zstd's frame.
    let header_len = Header {
        bundle_id,
        part: 0,
        parts: 1,
        created_at,
        exporter: cert.clone(),
        audience: audience.clone(),
    }
    .encode()
    .len();
    let seal_len = 1
        + 24
        + 2
        + recipients
            .iter()
            .map(|(id, _)| 1 + id.len() + 32 + 48)
            .sum::<usize>()
        + 16;
    let rev_len = payload
        .revocations
        .as_ref()
        .map_or(1, |r| 11 + r.encode().len());
    let fixed = FIXED + header_len + seal_len + 64 + rev_len + 7 * 10 + 32;

    // Per document: the hashes and actors of its changes.
    let doc_changes: Vec<(Vec<ChangeHash>, HashSet<Vec<u8>>)> = payload
        .docs
        .iter()
        .map(|d| {
            let mut hashes = Vec::new();
            let mut actors = HashSet::new();
            for (h, r) in split_changes(&d.changes) {
                hashes.push(h);
                if let Some(a) = change_actor(&d.changes[r]) {
                    actors.insert(a);
                }
            }
            (hashes, actors)
        })
        .collect();
    let mut sigs_of: HashMap<ChangeHash, Vec<usize>> = HashMap::new();
    for (i, s) in payload.sigs.iter().enumerate() {
        for h in &s.hashes {
            sigs_of.entry(*h).or_default().push(i);
        }
    }
    // An upper bound of a signature's and a certificate's bytes in a part.
    let sig_cost = |s: &ChangeSig| 10 + s.signer.len() + 1 + 64 + 20 + 32 * s.hashes.len();
    let cert_costs: Vec<usize> = payload
        .certs
        .iter()
        .map(|c| 10 + c.encode().len())
        .collect();
    let certs_of = |sig_ids: &BTreeSet<usize>, actors: &HashSet<Vec<u8>>| -> BTreeSet<usize> {
        let signers: HashSet<&str> = sig_ids
            .iter()
            .map(|&i| payload.sigs[i].signer.as_str())
            .collect();
        payload
            .certs
            .iter()
            .enumerate()
            .filter(|(_, c)| signers.contains(c.device.as_str()) || actors.contains(&c.actor))
            .map(|(i, _)| i)
            .collect()
    };

    let mut items: Vec<Item> = (0..payload.docs.len()).map(Item::Doc).collect();
    items.extend((0..payload.receipts.len()).map(Item::Receipt));
    items.extend((0..payload.originals.len()).map(Item::Original));
    items.extend((0..payload.cargo.len()).map(Item::Cargo));

    // Greedy packing by an upper bound of each part's compressed size.
    struct Part {
        items: Vec<Item>,
        sigs: BTreeSet<usize>,
        certs: BTreeSet<usize>,
        actors: HashSet<Vec<u8>>,
        size: usize,
    }
    let new_part = || Part {
        items: Vec::new(),
        sigs: BTreeSet::new(),
        certs: BTreeSet::new(),
        actors: HashSet::new(),
        size: fixed,
    };
    let zstd_bound = |n: usize| n + n / (128 << 10) * 3 + 3;
    let mut parts: Vec<Part> = Vec::new();
    let mut cur = new_part();
    for item in items {
        let (own, sigs, actors) = match item {
            Item::Doc(i) => {
                let d = &payload.docs[i];
                let sigs: BTreeSet<usize> = doc_changes[i]
                    .0
                    .iter()
                    .flat_map(|h| sigs_of.get(h).into_iter().flatten().copied())
                    .collect();
                (
                    30 + d.id.len() + d.kind.len() + d.changes.len(),
                    sigs,
                    doc_changes[i].1.clone(),
                )
            }
            Item::Receipt(i) => (
                10 + payload.receipts[i].encode().len(),
                BTreeSet::new(),
                HashSet::new(),
            ),
            Item::Original(i) => {
                let o = &payload.originals[i];
                (
                    30 + o.hash.len() + o.mime.len() + o.bytes.len(),
                    BTreeSet::new(),
                    HashSet::new(),
                )
            }
            Item::Cargo(i) => (10 + payload.cargo[i].len(), BTreeSet::new(), HashSet::new()),
        };
        let grow = |p: &Part| -> (usize, BTreeSet<usize>, BTreeSet<usize>, HashSet<Vec<u8>>) {
            let new_sigs: BTreeSet<usize> = sigs.difference(&p.sigs).copied().collect();
            let mut all_actors = p.actors.clone();
            all_actors.extend(actors.iter().cloned());
            let mut all_sigs = p.sigs.clone();
            all_sigs.extend(new_sigs.iter().copied());
            let certs = certs_of(&all_sigs, &all_actors);
            let extra = own
                + new_sigs
                    .iter()
                    .map(|&i| sig_cost(&payload.sigs[i]))
                    .sum::<usize>()
                + certs
                    .difference(&p.certs)
                    .map(|&i| cert_costs[i])
                    .sum::<usize>();
            (extra, all_sigs, certs, all_actors)
        };
        let (extra, s, c, a) = grow(&cur);
        if !cur.items.is_empty() && zstd_bound(cur.size + extra) > part_limit {
            parts.push(std::mem::replace(&mut cur, new_part()));
            let (extra, s, c, a) = grow(&cur);
            cur.size += extra;
            (cur.sigs, cur.certs, cur.actors) = (s, c, a);
        } else {
            cur.size += extra;
            (cur.sigs, cur.certs, cur.actors) = (s, c, a);
        }
        cur.items.push(item);
    }
    if !cur.items.is_empty() || parts.is_empty() {
        parts.push(cur);
    }
    if parts.len() > usize::from(u16::MAX) {
        return Err(BundleError::TooLarge);
    }

    let count = parts.len() as u16;
    let mut out = Vec::with_capacity(parts.len());
    for (n, part) in parts.into_iter().enumerate() {
        let mut p = Payload {
            revocations: payload.revocations.clone(),
            sigs: part.sigs.iter().map(|&i| payload.sigs[i].clone()).collect(),
            certs: part
                .certs
                .iter()
                .map(|&i| payload.certs[i].clone())
                .collect(),
            ..Payload::default()
        };
        for item in part.items {
            match item {
                Item::Doc(i) => p.docs.push(payload.docs[i].clone()),
                Item::Receipt(i) => p.receipts.push(payload.receipts[i].clone()),
                Item::Original(i) => p.originals.push(payload.originals[i].clone()),
                Item::Cargo(i) => p.cargo.push(payload.cargo[i].clone()),
            }
        }
        let header = Header {
            bundle_id,
            part: n as u16,
            parts: count,
            created_at,
            exporter: cert.clone(),
            audience: audience.clone(),
        };
        out.push(seal_part(&header, &p, exporter, recipients, fill)?);
    }
    Ok(out)
}

/// One part: the payload compressed, sealed with the header as associated data, signed.
pub fn seal_part(
    header: &Header,
    payload: &Payload,
    exporter: &DeviceKey,
    recipients: &[(String, [u8; 32])],
    fill: &mut dyn FnMut(&mut [u8]),
) -> Result<Vec<u8>, BundleError> {
    let plain = encode_payload(payload);
    let compressed = zstd::bulk::compress(&plain, LEVEL)
        .map_err(|e| BundleError::Damaged(format!("compression failed: {e}")))?;
    let head = header.encode();
    let sealed = seal::seal(&compressed, &head, recipients, fill).map_err(|e| match e {
        SealError::BadRecipient(id) => BundleError::BadRecipient(id),
        other => BundleError::Damaged(other.to_string()),
    })?;
    let body = sealed.encode();
    let mut out = Vec::with_capacity(FIXED + head.len() + body.len() + 64);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&BUNDLE_FORMAT.to_le_bytes());
    out.extend_from_slice(&(head.len() as u32).to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    let signature = exporter.sign_context(SIGN_CONTEXT, &out);
    out.extend_from_slice(&signature);
    Ok(out)
}

// ---------------------------------------------------------------- verify and open

/// A part's pieces, located without any key.
struct Frame<'a> {
    header: &'a [u8],
    body: &'a [u8],
    signed: &'a [u8],
    signature: [u8; 64],
}

fn frame(bytes: &[u8]) -> Result<Frame<'_>, BundleError> {
    if bytes.len() < MAGIC.len() {
        return Err(if !bytes.is_empty() && MAGIC.starts_with(bytes) {
            BundleError::Truncated
        } else {
            BundleError::NotABundle
        });
    }
    if bytes[..8] != MAGIC {
        return Err(BundleError::NotABundle);
    }
    let mut r = Reader::new(&bytes[8..]);
    let format = u16::from_le_bytes(r.array("format").map_err(|_| BundleError::Truncated)?);
    if format > BUNDLE_FORMAT {
        return Err(BundleError::Newer {
            found: format,
            supported: BUNDLE_FORMAT,
        });
    }
    if format == 0 {
        return Err(damaged("format 0"));
    }
    let len = u32::from_le_bytes(
        r.array("header length")
            .map_err(|_| BundleError::Truncated)?,
    );
    if len as usize > MAX_HEADER {
        return Err(damaged("header length out of range"));
    }
    let header = r
        .take(len as usize, "header")
        .map_err(|_| BundleError::Truncated)?;
    let len = u32::from_le_bytes(r.array("body length").map_err(|_| BundleError::Truncated)?);
    if len as usize > MAX_BODY {
        return Err(BundleError::TooLarge);
    }
    let body = r
        .take(len as usize, "body")
        .map_err(|_| BundleError::Truncated)?;
    let signature: [u8; 64] = r.array("signature").map_err(|_| BundleError::Truncated)?;
    if r.left() != 0 {
        return Err(damaged("bytes after the signature"));
    }
    Ok(Frame {
        header,
        body,
        signed: &bytes[..bytes.len() - 64],
        signature,
    })
}

/// Checks a part without any box key: the magic, the format (a newer one is `Newer`), the
/// lengths, the exporter's certificate (signed by `server_public`, the pinned server key), that
/// the exporter is not `revoked`, and the exporter's signature over the part.
pub fn verify(
    bytes: &[u8],
    server_public: &[u8; 32],
    revoked: &dyn Fn(&DeviceCert) -> bool,
) -> Result<Header, BundleError> {
    let f = frame(bytes)?;
    let header = Header::decode(f.header)?;
    if header.exporter.verify(server_public).is_err() {
        return Err(BundleError::CertNotByServer);
    }
    if revoked(&header.exporter) {
        return Err(BundleError::ExporterRevoked {
            device: header.exporter.device.clone(),
        });
    }
    if !verify_context(
        &header.exporter.public_key,
        SIGN_CONTEXT,
        f.signed,
        &f.signature,
    ) {
        return Err(BundleError::BadSignature);
    }
    Ok(header)
}

/// Opens a part with the first recipient entry that a key from `key(id)` opens, checking the
/// exporter's signature with the key of the certificate in the header (callers run [`verify`]
/// first for the certificate itself). The payload's decompression is bounded as sync frames'
/// (`sanjin_core::protocol::decompress_bounded`).
pub fn open(
    bytes: &[u8],
    key: &dyn Fn(&str) -> Option<BoxSecret>,
) -> Result<(Header, Payload), BundleError> {
    let f = frame(bytes)?;
    let header = Header::decode(f.header)?;
    if !verify_context(
        &header.exporter.public_key,
        SIGN_CONTEXT,
        f.signed,
        &f.signature,
    ) {
        return Err(BundleError::BadSignature);
    }
    let sealed = Sealed::decode(f.body).map_err(|e| BundleError::Damaged(e.to_string()))?;
    let mut tampered = false;
    let mut plain = None;
    let mut tried: HashSet<&str> = HashSet::new();
    for id in sealed.recipient_ids() {
        if !tried.insert(id) {
            continue;
        }
        let Some(secret) = key(id) else { continue };
        match seal::open(&sealed, f.header, id, &secret) {
            Ok(p) => {
                plain = Some(p);
                break;
            }
            Err(SealError::Tampered) => tampered = true,
            Err(_) => {}
        }
    }
    let Some(compressed) = plain else {
        return Err(if tampered {
            damaged("the sealed contents were changed")
        } else {
            BundleError::NotForUs
        });
    };
    let raw = sanjin_core::protocol::decompress_bounded(&compressed).map_err(|e| match e {
        sanjin_core::protocol::DecodeError::Bomb { .. } => BundleError::TooLarge,
        other => BundleError::Damaged(format!("payload: {other}")),
    })?;
    Ok((header, decode_payload(&raw)?))
}

// ---------------------------------------------------------------- bytes

fn damaged(what: &str) -> BundleError {
    BundleError::Damaged(what.to_string())
}

fn varint(w: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            w.push(b);
            return;
        }
        w.push(b | 0x80);
    }
}

fn bytes(w: &mut Vec<u8>, b: &[u8]) {
    varint(w, b.len() as u64);
    w.extend_from_slice(b);
}

fn put_str16(w: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    w.extend_from_slice(&(b.len() as u16).to_le_bytes());
    w.extend_from_slice(b);
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Reader<'a> {
        Reader { b, at: 0 }
    }
    fn left(&self) -> usize {
        self.b.len() - self.at
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], BundleError> {
        if self.left() < n {
            return Err(BundleError::Damaged(format!("truncated at {what}")));
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], BundleError> {
        Ok(self.take(N, what)?.try_into().expect("N bytes"))
    }
    fn u8(&mut self, what: &str) -> Result<u8, BundleError> {
        Ok(self.take(1, what)?[0])
    }
    fn varint(&mut self, what: &str) -> Result<u64, BundleError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8(what)?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(BundleError::Damaged(format!("{what}: number too long")))
    }
    /// A count of items, each at least one byte: never more than the bytes left.
    fn count(&mut self, what: &str) -> Result<usize, BundleError> {
        let n = self.varint(what)?;
        if n > self.left() as u64 {
            return Err(BundleError::Damaged(format!("{what}: count out of range")));
        }
        Ok(n as usize)
    }
    fn bytes(&mut self, what: &str) -> Result<&'a [u8], BundleError> {
        let n = self.varint(what)?;
        if n > self.left() as u64 {
            return Err(BundleError::Damaged(format!("truncated at {what}")));
        }
        self.take(n as usize, what)
    }
    fn string(&mut self, what: &str) -> Result<String, BundleError> {
        let b = self.bytes(what)?;
        if b.len() > 4096 {
            return Err(BundleError::Damaged(format!("{what} too long")));
        }
        String::from_utf8(b.to_vec())
            .map_err(|_| BundleError::Damaged(format!("{what}: not UTF-8")))
    }
    fn str16(&mut self, what: &str) -> Result<String, BundleError> {
        let n = u16::from_le_bytes(self.array(what)?) as usize;
        String::from_utf8(self.take(n, what)?.to_vec())
            .map_err(|_| BundleError::Damaged(format!("{what}: not UTF-8")))
    }
    fn end(&self) -> Result<(), BundleError> {
        match self.left() {
            0 => Ok(()),
            n => Err(BundleError::Damaged(format!("{n} unexpected bytes"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Payload {
        let server = DeviceKey::from_seed([1; 32]);
        let cert = DeviceCert::issue(
            &server,
            "dev-1",
            &[1; 16],
            "m-1",
            "member",
            Some("g"),
            [5; 32],
            9,
        );
        let mut doc = automerge::AutoCommit::new();
        use automerge::transaction::Transactable;
        doc.put(automerge::ROOT, "k", "v").unwrap();
        doc.commit();
        doc.put(automerge::ROOT, "k", "w").unwrap();
        doc.commit();
        let changes = doc.save_after(&[]);
        let hashes: Vec<ChangeHash> = split_changes(&changes)
            .into_iter()
            .map(|(h, _)| h)
            .collect();
        Payload {
            docs: vec![DocChanges {
                id: "rec-1".into(),
                kind: "visit".into(),
                changes,
            }],
            sigs: vec![ChangeSig::sign(
                &server,
                "dev-1",
                SigKind::Changes,
                hashes.into_iter().chain([ChangeHash([3; 32])]),
            )],
            certs: vec![cert],
            revocations: Some(Revocations::sign(&server, 1, 2, vec![])),
            receipts: vec![Receipt::sign(&server, "rec-1", &[ChangeHash([4; 32])], 3)],
            originals: vec![Original {
                hash: "ab".repeat(32),
                mime: "image/jpeg".into(),
                bytes: vec![1, 2, 3],
            }],
            cargo: vec![vec![9; 10]],
        }
    }

    #[test]
    fn issue12_payload_round_trips_by_position_and_literal() {
        let p = sample();
        let bytes = encode_payload(&p);
        assert_eq!(decode_payload(&bytes).unwrap(), p);
    }

    /// The payload's decoder, reached only through a valid signature and seal but written by
    /// any exporter with a certificate: every flip and every cut decodes or fails, never panics.
    #[test]
    fn issue12_payload_decoding_never_panics_on_flips_or_cuts() {
        let enc = encode_payload(&sample());
        for i in 0..enc.len() {
            for bit in [0x01u8, 0x40, 0x80] {
                let mut b = enc.clone();
                b[i] ^= bit;
                let _ = decode_payload(&b);
            }
        }
        for n in 0..enc.len() {
            assert!(decode_payload(&enc[..n]).is_err(), "cut at {n}");
        }
        for h in 0..64u8 {
            let _ = Header::decode(&[h; 40]);
        }
        // Many references to the same few changes: refused before the hashes are allocated.
        let mut w = Vec::new();
        varint(&mut w, 1);
        bytes_into(&mut w, &sample().docs[0]);
        varint(&mut w, 1000);
        for _ in 0..1000 {
            bytes(&mut w, b"s");
            w.push(0);
            w.extend_from_slice(&[0; 64]);
            varint(&mut w, 1);
            varint(&mut w, 0);
            varint(&mut w, 0);
        }
        assert_eq!(
            decode_payload(&w),
            Err(damaged("too many signature references"))
        );
    }

    fn bytes_into(w: &mut Vec<u8>, d: &DocChanges) {
        bytes(w, d.id.as_bytes());
        bytes(w, d.kind.as_bytes());
        bytes(w, &d.changes);
    }
}
