//! Device keys, device certificates and change signatures (issue 10), sans-IO.
//!
//! Every device holds an Ed25519 key pair made at enrollment (the caller draws the 32-byte seed;
//! this module never reads a clock or a random source). The server signs a [`DeviceCert`] for
//! the device's public key: device id, actor id, member, role and scope at issue, time. The
//! server's own key has a self-signed certificate that devices receive at enrollment and pin.
//!
//! A [`ChangeSig`] is one signature over a set of automerge change hashes (a hash covers the
//! change's bytes, its message and its dependencies), by one device:
//!
//! - [`SigKind::Changes`]: the signer vouches that it made exactly these changes. A device signs
//!   each of its local commits, and a push signs all of the device's own changes it carries in
//!   one signature, so a thousand new records cost 64 bytes of signature, not 64 kB.
//! - [`SigKind::Vouch`]: the server vouches for whole histories: the hashes are document heads,
//!   and the signature covers every change they depend on (used once, when a server from before
//!   signatures migrates the history it already held).
//!
//! The signed bytes are domain-separated and canonical: `sanjin-sig-v1`, the kind, the signer,
//! and the hashes sorted ascending, so the order in which they travel does not matter.
//!
//! Issue 12 adds the server's signed statements, which travel through phones without signal:
//! a [`Receipt`] (the server holds a record up to its heads: 已送达), the [`Revocations`] list,
//! and the [`KeyDirectory`] of the box keys bundles are sealed to. Each has its own domain string.

use std::collections::BTreeSet;

use automerge::ChangeHash;
use ed25519_dalek::{Signer as _, Verifier as _};
use sha2::{Digest, Sha256};

use crate::time::Millis;

/// The device id the server signs its own changes under (console resolutions, imports).
pub const SERVER_DEVICE: &str = "server";
/// Certificate encoding version.
const CERT_VERSION: u8 = 1;
const CERT_DOMAIN: &[u8] = b"sanjin-cert-v1\0";
const SIG_DOMAIN: &[u8] = b"sanjin-sig-v1\0";

/// Why a certificate or signature could not be read or does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("the certificate is damaged: {0}")]
    BadCert(&'static str),
    #[error("the certificate of device {0} is not signed by this server")]
    CertNotByServer(String),
    #[error("the signature by device {0} does not match the changes it claims")]
    BadSignature(String),
    #[error("the public key of device {0} is not a valid Ed25519 key")]
    BadKey(String),
    /// A server statement (receipt, revocation list, key directory) could not be read (issue 12).
    #[error("the statement is damaged: {0}")]
    BadStatement(&'static str),
    /// A server statement's signature does not hold for the pinned server key (issue 12).
    #[error("the {0} is not signed by this server")]
    NotByServer(&'static str),
}

/// A device's (or the server's) signing key. Its seed is the only secret: it never leaves the
/// device's store, and nothing in the protocol carries it.
#[derive(Clone)]
pub struct DeviceKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceKey({})", hex(&self.public()))
    }
}

impl DeviceKey {
    /// The key for a 32-byte seed the caller drew from a secure random source.
    pub fn from_seed(seed: [u8; 32]) -> DeviceKey {
        DeviceKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// The seed, hex, to keep in the device's own store.
    pub fn seed_hex(&self) -> String {
        hex(&self.0.to_bytes())
    }

    /// The key from its stored hex seed.
    pub fn from_seed_hex(s: &str) -> Option<DeviceKey> {
        let b = unhex(s)?;
        Some(DeviceKey::from_seed(b.try_into().ok()?))
    }

    pub fn public(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    fn sign_bytes(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }
}

impl DeviceKey {
    /// Signs `msg` under a named context (issue 12: a bundle part, a phone-to-phone session's
    /// transcript). The signed bytes are `sanjin-ctx-v1\0`, the context's length and the context,
    /// then `msg`, so they can never be taken for a certificate, a change signature or a server
    /// statement, nor for another context's.
    pub fn sign_context(&self, context: &str, msg: &[u8]) -> [u8; 64] {
        self.sign_bytes(&context_message(context, msg))
    }
}

/// Whether `signature` is `public`'s signature of `msg` under `context`
/// ([`DeviceKey::sign_context`]).
pub fn verify_context(public: &[u8; 32], context: &str, msg: &[u8], signature: &[u8; 64]) -> bool {
    verify_bytes(public, &context_message(context, msg), signature)
}

const CONTEXT_DOMAIN: &[u8] = b"sanjin-ctx-v1\0";

fn context_message(context: &str, msg: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT_DOMAIN.len() + 4 + context.len() + msg.len());
    m.extend_from_slice(CONTEXT_DOMAIN);
    put_bytes(&mut m, context.as_bytes());
    m.extend_from_slice(msg);
    m
}

/// Whether 32 bytes are a valid Ed25519 public key.
pub fn valid_public_key(key: &[u8; 32]) -> bool {
    ed25519_dalek::VerifyingKey::from_bytes(key).is_ok()
}

fn verify_bytes(public: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(public) else {
        return false;
    };
    key.verify(msg, &ed25519_dalek::Signature::from_bytes(sig))
        .is_ok()
}

/// A device's certificate: the server's signed statement that `public_key` belongs to `device`,
/// which writes as `actor` for `member`, with `role` and `group` as they were at `issued_at`.
/// The server's own certificate has `device == SERVER_DEVICE` and is signed by its own key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCert {
    pub device: String,
    /// The automerge actor id the device's changes carry (16 bytes).
    pub actor: Vec<u8>,
    pub member: String,
    /// `member`, `leader`, `staff`, `admin`, or `server`.
    pub role: String,
    /// The member's activity group at issue (members and leaders).
    pub group: Option<String>,
    pub public_key: [u8; 32],
    pub issued_at: Millis,
    /// By the server's key, over everything above.
    pub signature: [u8; 64],
}

impl DeviceCert {
    fn body(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(160);
        w.extend_from_slice(CERT_DOMAIN);
        w.push(CERT_VERSION);
        put_bytes(&mut w, self.device.as_bytes());
        put_bytes(&mut w, &self.actor);
        put_bytes(&mut w, self.member.as_bytes());
        put_bytes(&mut w, self.role.as_bytes());
        match &self.group {
            Some(g) => {
                w.push(1);
                put_bytes(&mut w, g.as_bytes());
            }
            None => w.push(0),
        }
        w.extend_from_slice(&self.public_key);
        w.extend_from_slice(&self.issued_at.to_le_bytes());
        w
    }

    /// Issues a certificate signed by `server` (the server's key).
    #[allow(clippy::too_many_arguments)]
    pub fn issue(
        server: &DeviceKey,
        device: &str,
        actor: &[u8],
        member: &str,
        role: &str,
        group: Option<&str>,
        public_key: [u8; 32],
        issued_at: Millis,
    ) -> DeviceCert {
        let mut c = DeviceCert {
            device: device.into(),
            actor: actor.to_vec(),
            member: member.into(),
            role: role.into(),
            group: group.map(Into::into),
            public_key,
            issued_at,
            signature: [0; 64],
        };
        c.signature = server.sign_bytes(&c.body());
        c
    }

    /// The server's self-signed certificate.
    pub fn server(server: &DeviceKey, actor: &[u8], issued_at: Millis) -> DeviceCert {
        DeviceCert::issue(
            server,
            SERVER_DEVICE,
            actor,
            SERVER_DEVICE,
            "server",
            None,
            server.public(),
            issued_at,
        )
    }

    /// Checks the server's signature (`server_public`: the key from the pinned server
    /// certificate).
    pub fn verify(&self, server_public: &[u8; 32]) -> Result<(), SignError> {
        if verify_bytes(server_public, &self.body(), &self.signature) {
            Ok(())
        } else {
            Err(SignError::CertNotByServer(self.device.clone()))
        }
    }

    /// The certificate's bytes: its body (without the domain prefix) and the signature.
    pub fn encode(&self) -> Vec<u8> {
        let body = self.body();
        let mut out = Vec::with_capacity(body.len() + 64);
        out.extend_from_slice(&body[CERT_DOMAIN.len()..]);
        out.extend_from_slice(&self.signature);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<DeviceCert, SignError> {
        let mut r = bytes;
        let version = take(&mut r, 1)?[0];
        if version != CERT_VERSION {
            return Err(SignError::BadCert("unknown certificate version"));
        }
        let device = take_str(&mut r)?;
        let actor = take_bytes(&mut r)?.to_vec();
        let member = take_str(&mut r)?;
        let role = take_str(&mut r)?;
        let group = match take(&mut r, 1)?[0] {
            0 => None,
            1 => Some(take_str(&mut r)?),
            _ => return Err(SignError::BadCert("bad group flag")),
        };
        let public_key: [u8; 32] = take(&mut r, 32)?.try_into().expect("32 bytes");
        let issued_at = Millis::from_le_bytes(take(&mut r, 8)?.try_into().expect("8 bytes"));
        let signature: [u8; 64] = take(&mut r, 64)?.try_into().expect("64 bytes");
        if !r.is_empty() {
            return Err(SignError::BadCert("trailing bytes"));
        }
        Ok(DeviceCert {
            device,
            actor,
            member,
            role,
            group,
            public_key,
            issued_at,
            signature,
        })
    }

    /// Hex of the certificate's SHA-256, to show or pin.
    pub fn fingerprint(&self) -> String {
        hex(&Sha256::digest(self.encode()))
    }
}

/// What a [`ChangeSig`] vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SigKind {
    /// Exactly the listed changes, made by the signer.
    Changes = 0,
    /// The listed heads and every change they depend on (the server's migration of old history).
    Vouch = 1,
}

impl SigKind {
    pub fn from_u8(b: u8) -> Option<SigKind> {
        match b {
            0 => Some(SigKind::Changes),
            1 => Some(SigKind::Vouch),
            _ => None,
        }
    }
}

/// One signature by one device over a set of change hashes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChangeSig {
    /// The signing device's id ([`SERVER_DEVICE`] for the server).
    pub signer: String,
    pub kind: SigKind,
    /// Sorted ascending, no duplicates.
    pub hashes: Vec<ChangeHash>,
    pub signature: [u8; 64],
}

fn sig_message(kind: SigKind, signer: &str, hashes: &[ChangeHash]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIG_DOMAIN.len() + 8 + signer.len() + 32 * hashes.len());
    m.extend_from_slice(SIG_DOMAIN);
    m.push(kind as u8);
    put_bytes(&mut m, signer.as_bytes());
    m.extend_from_slice(&(hashes.len() as u64).to_le_bytes());
    for h in hashes {
        m.extend_from_slice(&h.0);
    }
    m
}

impl ChangeSig {
    /// Signs `hashes` (any order, duplicates ignored) as `signer`.
    pub fn sign(
        key: &DeviceKey,
        signer: &str,
        kind: SigKind,
        hashes: impl IntoIterator<Item = ChangeHash>,
    ) -> ChangeSig {
        let hashes: Vec<ChangeHash> = hashes
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let signature = key.sign_bytes(&sig_message(kind, signer, &hashes));
        ChangeSig {
            signer: signer.into(),
            kind,
            hashes,
            signature,
        }
    }

    /// Whether the signature holds for `public` (the signer's key from its certificate). The
    /// hashes must be sorted and unique, as [`ChangeSig::sign`] makes them.
    pub fn verify(&self, public: &[u8; 32]) -> bool {
        self.hashes.windows(2).all(|w| w[0] < w[1])
            && verify_bytes(
                public,
                &sig_message(self.kind, &self.signer, &self.hashes),
                &self.signature,
            )
    }
}

/// The change chunks in automerge's incremental format (what `save_after` writes and pushes
/// carry), each with its hash and byte range. Chunks that are not plain changes (a whole saved
/// document, a compressed change) are skipped: they still apply, but cannot be named by position.
/// Stops at the first bytes that are not a chunk.
pub fn split_changes(bytes: &[u8]) -> Vec<(ChangeHash, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some((typ, end)) = chunk_at(bytes, at) {
        if typ == 1 {
            let digest = Sha256::digest(&bytes[at + 8..end]);
            if digest[..4] == bytes[at + 4..at + 8] {
                let mut h = [0u8; 32];
                h.copy_from_slice(&digest);
                out.push((ChangeHash(h), at..end));
            }
        } else if typ == 2 {
            // A deflated change (automerge's sync messages carry large changes so): its hash is
            // that of the change inflated, which automerge computes.
            if let Ok(c) = automerge::Change::try_from(&bytes[at..end]) {
                out.push((c.hash(), at..end));
            }
        }
        at = end;
    }
    out
}

/// The automerge chunk starting at `at`: its type byte and where it ends. `None` when the bytes
/// there are not a whole chunk (magic, checksum, type, LEB128 length, body).
fn chunk_at(bytes: &[u8], at: usize) -> Option<(u8, usize)> {
    const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
    if bytes.len().checked_sub(at)? < 9 || bytes[at..at + 4] != MAGIC {
        return None;
    }
    let mut p = at + 9;
    let len = uleb(bytes, &mut p)?;
    let end = p.checked_add(usize::try_from(len).ok()?)?;
    (end <= bytes.len()).then_some((bytes[at + 8], end))
}

/// An unsigned LEB128 number at `*p`, moving `*p` past it.
fn uleb(b: &[u8], p: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let x = *b.get(*p)?;
        *p += 1;
        v |= u64::from(x & 0x7f) << shift;
        if x & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Whether `bytes` are entirely automerge chunks (changes, deflated changes, or saved
/// documents), with nothing before, between or after them that is not one. automerge's own
/// incremental loading skips what it cannot read; a server must not acknowledge that.
pub fn all_chunks(bytes: &[u8]) -> bool {
    let mut at = 0;
    while at < bytes.len() {
        match chunk_at(bytes, at) {
            Some((typ, end)) if typ <= 2 => at = end,
            _ => return false,
        }
    }
    true
}

/// The actor id of a change chunk as [`split_changes`] finds them, plain or deflated.
pub fn change_actor(chunk: &[u8]) -> Option<Vec<u8>> {
    match chunk.get(8) {
        Some(1) => chunk_actor(chunk).map(<[u8]>::to_vec),
        Some(2) => automerge::Change::try_from(chunk)
            .ok()
            .map(|c| c.actor_id().to_bytes().to_vec()),
        _ => None,
    }
}

/// The actor id of one plain change chunk (as [`split_changes`] finds them), read from its header
/// without decoding the operations: the dependencies come first, then the actor.
pub fn chunk_actor(chunk: &[u8]) -> Option<&[u8]> {
    if chunk.len() < 9 || chunk[8] != 1 {
        return None;
    }
    let mut p = 9;
    uleb(chunk, &mut p)?; // the chunk's length
    let deps = uleb(chunk, &mut p)? as usize;
    p = p.checked_add(deps.checked_mul(32)?)?;
    let len = uleb(chunk, &mut p)? as usize;
    chunk.get(p..p.checked_add(len)?)
}

// ---------------------------------------------------------------- the server's statements

// Issue 12: what the server states about devices and records, signed by its own key, so that a
// statement can travel through phones (bundles, phone-to-phone sessions) and still be believed.
// Each has its own domain string and a version byte; decoding never panics and never allocates
// more than the bytes present justify.

const STATEMENT_VERSION: u8 = 1;
const RECEIPT_DOMAIN: &[u8] = b"sanjin-receipt-v1\0";
const REVOCATIONS_DOMAIN: &[u8] = b"sanjin-revocations-v1\0";
const KEYS_DOMAIN: &[u8] = b"sanjin-keys-v1\0";

/// The server's statement that it holds record `doc_id` at least up to `heads`, made at `at`.
/// A device that verifies it acknowledges its outbox as if the server had answered it (已送达),
/// even when the receipt came back through another phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub doc_id: String,
    /// Sorted ascending, no duplicates.
    pub heads: Vec<ChangeHash>,
    pub at: Millis,
    /// By the server's key.
    pub signature: [u8; 64],
}

impl Receipt {
    fn fields(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(16 + self.doc_id.len() + 32 * self.heads.len());
        w.push(STATEMENT_VERSION);
        put_bytes(&mut w, self.doc_id.as_bytes());
        put_hashes(&mut w, &self.heads);
        w.extend_from_slice(&self.at.to_le_bytes());
        w
    }

    /// Signs that the server holds `doc_id` up to `heads` (any order, duplicates ignored).
    pub fn sign(server: &DeviceKey, doc_id: &str, heads: &[ChangeHash], at: Millis) -> Receipt {
        let heads: Vec<ChangeHash> = heads
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut r = Receipt {
            doc_id: doc_id.into(),
            heads,
            at,
            signature: [0; 64],
        };
        r.signature = server.sign_bytes(&domain(RECEIPT_DOMAIN, &r.fields()));
        r
    }

    /// Checks the server's signature.
    pub fn verify(&self, server_public: &[u8; 32]) -> Result<(), SignError> {
        check_statement(
            server_public,
            RECEIPT_DOMAIN,
            &self.fields(),
            &self.signature,
            "receipt",
        )
    }

    pub fn encode(&self) -> Vec<u8> {
        with_signature(self.fields(), &self.signature)
    }

    pub fn decode(bytes: &[u8]) -> Result<Receipt, SignError> {
        let mut r = bytes;
        statement_version(&mut r)?;
        let doc_id = take_str(&mut r).map_err(damaged)?;
        let heads = take_hashes(&mut r)?;
        let at = take_i64(&mut r)?;
        let signature = take_signature(&mut r)?;
        Ok(Receipt {
            doc_id,
            heads,
            at,
            signature,
        })
    }
}

/// One revoked device in the server's [`Revocations`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub device: String,
    /// The device's automerge actor id.
    pub actor: Vec<u8>,
    pub revoked_at: Millis,
}

/// The server's whole revocation list, numbered: a list with a higher `seq` replaces one with a
/// lower. It travels in bundles and syncs, so a phone without signal still refuses what a
/// revoked device made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocations {
    pub seq: u64,
    pub issued_at: Millis,
    pub devices: Vec<Revoked>,
    /// By the server's key.
    pub signature: [u8; 64],
}

impl Revocations {
    fn fields(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(24 + 64 * self.devices.len());
        w.push(STATEMENT_VERSION);
        w.extend_from_slice(&self.seq.to_le_bytes());
        w.extend_from_slice(&self.issued_at.to_le_bytes());
        w.extend_from_slice(&(self.devices.len() as u32).to_le_bytes());
        for d in &self.devices {
            put_bytes(&mut w, d.device.as_bytes());
            put_bytes(&mut w, &d.actor);
            w.extend_from_slice(&d.revoked_at.to_le_bytes());
        }
        w
    }

    /// Signs the list as the server's `seq`-th.
    pub fn sign(
        server: &DeviceKey,
        seq: u64,
        issued_at: Millis,
        devices: Vec<Revoked>,
    ) -> Revocations {
        let mut r = Revocations {
            seq,
            issued_at,
            devices,
            signature: [0; 64],
        };
        r.signature = server.sign_bytes(&domain(REVOCATIONS_DOMAIN, &r.fields()));
        r
    }

    /// Checks the server's signature.
    pub fn verify(&self, server_public: &[u8; 32]) -> Result<(), SignError> {
        check_statement(
            server_public,
            REVOCATIONS_DOMAIN,
            &self.fields(),
            &self.signature,
            "revocation list",
        )
    }

    /// Whether the device with this id is on the list.
    pub fn device_revoked(&self, device: &str) -> bool {
        self.devices.iter().any(|d| d.device == device)
    }

    /// Whether the device of this certificate is on the list (by its id or its actor).
    pub fn revokes(&self, cert: &DeviceCert) -> bool {
        self.devices
            .iter()
            .any(|d| d.device == cert.device || (!d.actor.is_empty() && d.actor == cert.actor))
    }

    pub fn encode(&self) -> Vec<u8> {
        with_signature(self.fields(), &self.signature)
    }

    pub fn decode(bytes: &[u8]) -> Result<Revocations, SignError> {
        let mut r = bytes;
        statement_version(&mut r)?;
        let seq = u64::from_le_bytes(take(&mut r, 8).map_err(damaged)?.try_into().expect("8"));
        let issued_at = take_i64(&mut r)?;
        // Each entry takes at least 16 bytes (two lengths and a time).
        let n = take_count(&mut r, 16)?;
        let mut devices = Vec::with_capacity(n);
        for _ in 0..n {
            devices.push(Revoked {
                device: take_str(&mut r).map_err(damaged)?,
                actor: take_bytes(&mut r).map_err(damaged)?.to_vec(),
                revoked_at: take_i64(&mut r)?,
            });
        }
        let signature = take_signature(&mut r)?;
        Ok(Revocations {
            seq,
            issued_at,
            devices,
            signature,
        })
    }
}

/// One activity group's box key in the [`KeyDirectory`]. A revocation in the group starts a new
/// epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupKey {
    pub group: String,
    pub epoch: u32,
    /// X25519 public key ([`crate::seal::BoxSecret::public`]).
    pub public: [u8; 32],
}

/// The public keys bundles are sealed to: the server's box key and each group's current one.
/// Secrets are never in it: a device receives its own group's secret over its authenticated
/// channel to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDirectory {
    pub issued_at: Millis,
    pub server_box: [u8; 32],
    pub groups: Vec<GroupKey>,
    /// By the server's key.
    pub signature: [u8; 64],
}

impl KeyDirectory {
    fn fields(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(48 + 48 * self.groups.len());
        w.push(STATEMENT_VERSION);
        w.extend_from_slice(&self.issued_at.to_le_bytes());
        w.extend_from_slice(&self.server_box);
        w.extend_from_slice(&(self.groups.len() as u32).to_le_bytes());
        for g in &self.groups {
            put_bytes(&mut w, g.group.as_bytes());
            w.extend_from_slice(&g.epoch.to_le_bytes());
            w.extend_from_slice(&g.public);
        }
        w
    }

    pub fn sign(
        server: &DeviceKey,
        issued_at: Millis,
        server_box: [u8; 32],
        groups: Vec<GroupKey>,
    ) -> KeyDirectory {
        let mut k = KeyDirectory {
            issued_at,
            server_box,
            groups,
            signature: [0; 64],
        };
        k.signature = server.sign_bytes(&domain(KEYS_DOMAIN, &k.fields()));
        k
    }

    /// Checks the server's signature.
    pub fn verify(&self, server_public: &[u8; 32]) -> Result<(), SignError> {
        check_statement(
            server_public,
            KEYS_DOMAIN,
            &self.fields(),
            &self.signature,
            "key directory",
        )
    }

    /// The group's newest key (highest epoch).
    pub fn group(&self, group: &str) -> Option<&GroupKey> {
        self.groups
            .iter()
            .filter(|g| g.group == group)
            .max_by_key(|g| g.epoch)
    }

    pub fn encode(&self) -> Vec<u8> {
        with_signature(self.fields(), &self.signature)
    }

    pub fn decode(bytes: &[u8]) -> Result<KeyDirectory, SignError> {
        let mut r = bytes;
        statement_version(&mut r)?;
        let issued_at = take_i64(&mut r)?;
        let server_box: [u8; 32] = take(&mut r, 32).map_err(damaged)?.try_into().expect("32");
        // Each entry takes at least 40 bytes (a length, an epoch, a key).
        let n = take_count(&mut r, 40)?;
        let mut groups = Vec::with_capacity(n);
        for _ in 0..n {
            let group = take_str(&mut r).map_err(damaged)?;
            let epoch =
                u32::from_le_bytes(take(&mut r, 4).map_err(damaged)?.try_into().expect("4"));
            let public: [u8; 32] = take(&mut r, 32).map_err(damaged)?.try_into().expect("32");
            groups.push(GroupKey {
                group,
                epoch,
                public,
            });
        }
        let signature = take_signature(&mut r)?;
        Ok(KeyDirectory {
            issued_at,
            server_box,
            groups,
            signature,
        })
    }
}

fn domain(domain: &[u8], fields: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(domain.len() + fields.len());
    m.extend_from_slice(domain);
    m.extend_from_slice(fields);
    m
}

fn check_statement(
    server_public: &[u8; 32],
    dom: &[u8],
    fields: &[u8],
    signature: &[u8; 64],
    what: &'static str,
) -> Result<(), SignError> {
    if verify_bytes(server_public, &domain(dom, fields), signature) {
        Ok(())
    } else {
        Err(SignError::NotByServer(what))
    }
}

fn with_signature(mut fields: Vec<u8>, signature: &[u8; 64]) -> Vec<u8> {
    fields.extend_from_slice(signature);
    fields
}

fn damaged(e: SignError) -> SignError {
    match e {
        SignError::BadCert(why) => SignError::BadStatement(why),
        other => other,
    }
}

fn statement_version(r: &mut &[u8]) -> Result<(), SignError> {
    match take(r, 1).map_err(damaged)?[0] {
        STATEMENT_VERSION => Ok(()),
        _ => Err(SignError::BadStatement("unknown statement version")),
    }
}

fn take_i64(r: &mut &[u8]) -> Result<i64, SignError> {
    Ok(i64::from_le_bytes(
        take(r, 8).map_err(damaged)?.try_into().expect("8 bytes"),
    ))
}

/// A u32 count of entries of at least `min` bytes each, bounded by the bytes left.
fn take_count(r: &mut &[u8], min: usize) -> Result<usize, SignError> {
    let n = u32::from_le_bytes(take(r, 4).map_err(damaged)?.try_into().expect("4 bytes")) as usize;
    if n.saturating_mul(min) > r.len() {
        return Err(SignError::BadStatement("truncated"));
    }
    Ok(n)
}

fn put_hashes(w: &mut Vec<u8>, hashes: &[ChangeHash]) {
    w.extend_from_slice(&(hashes.len() as u32).to_le_bytes());
    for h in hashes {
        w.extend_from_slice(&h.0);
    }
}

fn take_hashes(r: &mut &[u8]) -> Result<Vec<ChangeHash>, SignError> {
    let n = take_count(r, 32)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(ChangeHash(
            take(r, 32).map_err(damaged)?.try_into().expect("32 bytes"),
        ));
    }
    Ok(out)
}

/// The signature that ends a statement: exactly 64 bytes, nothing after.
fn take_signature(r: &mut &[u8]) -> Result<[u8; 64], SignError> {
    let s: [u8; 64] = take(r, 64).map_err(damaged)?.try_into().expect("64 bytes");
    if !r.is_empty() {
        return Err(SignError::BadStatement("trailing bytes"));
    }
    Ok(s)
}

// ---------------------------------------------------------------- bytes

fn put_bytes(w: &mut Vec<u8>, b: &[u8]) {
    w.extend_from_slice(&(b.len() as u32).to_le_bytes());
    w.extend_from_slice(b);
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Result<&'a [u8], SignError> {
    if r.len() < n {
        return Err(SignError::BadCert("truncated"));
    }
    let (a, b) = r.split_at(n);
    *r = b;
    Ok(a)
}

fn take_bytes<'a>(r: &mut &'a [u8]) -> Result<&'a [u8], SignError> {
    let n = u32::from_le_bytes(take(r, 4)?.try_into().expect("4 bytes")) as usize;
    if n > 4096 {
        return Err(SignError::BadCert("field too long"));
    }
    take(r, n)
}

fn take_str(r: &mut &[u8]) -> Result<String, SignError> {
    String::from_utf8(take_bytes(r)?.to_vec()).map_err(|_| SignError::BadCert("not UTF-8"))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::{CommitOptions, Transactable};
    use automerge::{AutoCommit, ROOT};

    fn key(n: u8) -> DeviceKey {
        DeviceKey::from_seed([n; 32])
    }

    #[test]
    fn issue10_certificates_round_trip_and_only_the_server_key_verifies_them() {
        let server = key(1);
        let cert = DeviceCert::issue(
            &server,
            "dev-1",
            &[7; 16],
            "member-0001",
            "member",
            Some("group-01"),
            key(2).public(),
            1_780_000_000_000,
        );
        let back = DeviceCert::decode(&cert.encode()).unwrap();
        assert_eq!(back, cert);
        back.verify(&server.public()).unwrap();
        assert!(back.verify(&key(3).public()).is_err());
        // Any field changed: the signature no longer holds.
        let mut forged = back.clone();
        forged.role = "leader".into();
        assert!(forged.verify(&server.public()).is_err());
        let mut forged = back;
        forged.public_key = key(4).public();
        assert!(forged.verify(&server.public()).is_err());
        assert!(DeviceCert::decode(&cert.encode()[..50]).is_err());
        let own = DeviceCert::server(&server, &[9; 16], 5);
        own.verify(&server.public()).unwrap();
        assert_eq!(own.public_key, server.public());
    }

    #[test]
    fn issue10_a_signature_holds_for_its_hashes_in_any_order_and_nothing_else() {
        let k = key(5);
        let h = |n: u8| ChangeHash([n; 32]);
        let s = ChangeSig::sign(&k, "dev-1", SigKind::Changes, [h(3), h(1), h(2), h(1)]);
        assert_eq!(s.hashes, vec![h(1), h(2), h(3)]);
        assert!(s.verify(&k.public()));
        assert!(!s.verify(&key(6).public()));
        let mut other = s.clone();
        other.hashes.push(h(4));
        assert!(!other.verify(&k.public()));
        let mut other = s.clone();
        other.signer = "dev-2".into();
        assert!(
            !other.verify(&k.public()),
            "the signer is part of what is signed"
        );
        let mut other = s;
        other.kind = SigKind::Vouch;
        assert!(!other.verify(&k.public()));
        assert_eq!(
            DeviceKey::from_seed_hex(&k.seed_hex()).unwrap().public(),
            k.public()
        );
    }

    #[test]
    fn issue10_split_changes_finds_each_change_and_its_automerge_hash() {
        let mut doc = AutoCommit::new();
        for i in 0..3 {
            doc.put(ROOT, "n", i as i64).unwrap();
            doc.commit_with(CommitOptions::default().with_message(format!("c{i}")));
        }
        let bytes = doc.save_after(&[]);
        let found = split_changes(&bytes);
        let expected: Vec<ChangeHash> = doc.get_changes(&[]).iter().map(|c| c.hash()).collect();
        assert_eq!(found.iter().map(|(h, _)| *h).collect::<Vec<_>>(), expected);
        for (h, r) in &found {
            let c = automerge::Change::try_from(&bytes[r.clone()]).unwrap();
            assert_eq!(c.hash(), *h);
            assert_eq!(
                chunk_actor(&bytes[r.clone()]),
                Some(c.actor_id().to_bytes())
            );
        }
        assert!(all_chunks(&bytes) && all_chunks(&doc.save()) && all_chunks(&[]));
        assert!(!all_chunks(b"<html>not automerge changes</html>"));
        let mut junk = bytes.clone();
        junk.extend_from_slice(b"trailing");
        assert!(!all_chunks(&junk));
        // A whole saved document is skipped, garbage ends the walk without a panic.
        assert!(split_changes(&doc.save()).is_empty());
        assert!(split_changes(&[0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 1, 0xff]).is_empty());
        let mut cut = bytes.clone();
        cut.truncate(bytes.len() - 3);
        assert_eq!(split_changes(&cut).len(), 2);
    }

    /// Every single-bit flip of a statement's bytes is refused: by decoding or by verifying.
    fn check_flips<T>(
        bytes: &[u8],
        decode: fn(&[u8]) -> Result<T, SignError>,
        verify: impl Fn(&T) -> bool,
    ) {
        assert!(verify(&decode(bytes).unwrap()));
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut b = bytes.to_vec();
                b[i] ^= bit;
                assert!(
                    !decode(&b).is_ok_and(|t| verify(&t)),
                    "byte {i} bit {bit:#x} flipped still verifies"
                );
            }
        }
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "cut at {n} decodes");
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(decode(&longer).is_err());
    }

    #[test]
    fn issue12_receipts_sign_verify_round_trip_and_refuse_any_flip() {
        let server = key(1);
        let h = |n: u8| ChangeHash([n; 32]);
        let r = Receipt::sign(&server, "rec-a", &[h(2), h(1), h(2)], 1_780_000_000_000);
        assert_eq!(r.heads, vec![h(1), h(2)]);
        r.verify(&server.public()).unwrap();
        assert_eq!(
            r.verify(&key(2).public()),
            Err(SignError::NotByServer("receipt"))
        );
        let back = Receipt::decode(&r.encode()).unwrap();
        assert_eq!(back, r);
        let mut other = back.clone();
        other.doc_id = "rec-b".into();
        assert!(other.verify(&server.public()).is_err());
        let p = server.public();
        check_flips(&r.encode(), Receipt::decode, |t| t.verify(&p).is_ok());
    }

    #[test]
    fn issue12_revocations_sign_verify_round_trip_and_refuse_any_flip() {
        let server = key(1);
        let list = Revocations::sign(
            &server,
            3,
            1_780_000_000_000,
            vec![Revoked {
                device: "dev-2".into(),
                actor: vec![2; 16],
                revoked_at: 1_779_000_000_000,
            }],
        );
        list.verify(&server.public()).unwrap();
        assert!(list.verify(&key(9).public()).is_err());
        let back = Revocations::decode(&list.encode()).unwrap();
        assert_eq!(back, list);
        assert!(back.device_revoked("dev-2") && !back.device_revoked("dev-1"));
        let cert = |device: &str, actor: u8| {
            DeviceCert::issue(
                &server,
                device,
                &[actor; 16],
                "m",
                "member",
                Some("g"),
                key(3).public(),
                0,
            )
        };
        assert!(back.revokes(&cert("dev-2", 5)) && back.revokes(&cert("dev-7", 2)));
        assert!(!back.revokes(&cert("dev-1", 1)));
        // A statement of another kind is not a revocation list, even with the same key.
        let receipt = Receipt::sign(&server, "x", &[], 0);
        assert!(Revocations::decode(&receipt.encode()).is_err());
        let p = server.public();
        check_flips(&list.encode(), Revocations::decode, |t| {
            t.verify(&p).is_ok()
        });
        // A count claiming more entries than the bytes hold is refused before allocating.
        let mut huge = list.encode();
        huge[17..21].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            Revocations::decode(&huge),
            Err(SignError::BadStatement("truncated"))
        );
        let empty = Revocations::sign(&server, 0, 0, vec![]);
        assert_eq!(Revocations::decode(&empty.encode()).unwrap(), empty);
    }

    #[test]
    fn issue12_key_directories_sign_verify_round_trip_and_refuse_any_flip() {
        let server = key(1);
        let kd = KeyDirectory::sign(
            &server,
            1_780_000_000_000,
            [7; 32],
            vec![
                GroupKey {
                    group: "group-01".into(),
                    epoch: 1,
                    public: [8; 32],
                },
                GroupKey {
                    group: "group-01".into(),
                    epoch: 2,
                    public: [9; 32],
                },
            ],
        );
        kd.verify(&server.public()).unwrap();
        assert!(kd.verify(&key(2).public()).is_err());
        let back = KeyDirectory::decode(&kd.encode()).unwrap();
        assert_eq!(back, kd);
        assert_eq!(back.group("group-01").unwrap().epoch, 2);
        assert!(back.group("group-02").is_none());
        let mut forged = back;
        forged.server_box = [6; 32];
        assert!(forged.verify(&server.public()).is_err());
        let p = server.public();
        check_flips(&kd.encode(), KeyDirectory::decode, |t| t.verify(&p).is_ok());
    }

    #[test]
    fn issue12_context_signatures_hold_only_for_their_context_and_bytes() {
        let k = key(3);
        let s = k.sign_context("sanjin-bundle-v1", b"part");
        assert!(verify_context(&k.public(), "sanjin-bundle-v1", b"part", &s));
        assert!(!verify_context(&k.public(), "sanjin-meet-v1", b"part", &s));
        assert!(!verify_context(
            &k.public(),
            "sanjin-bundle-v1",
            b"parT",
            &s
        ));
        assert!(!verify_context(
            &key(4).public(),
            "sanjin-bundle-v1",
            b"part",
            &s
        ));
    }
}
