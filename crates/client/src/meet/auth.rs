//! Who is on the other end: the six-digit code's SPAKE2 exchange with key confirmation of the
//! certificate fingerprint, and both devices' proofs (their certificate from the server they
//! enrolled with, and their device key's signature over this TLS channel's transcript).

use hmac::{Hmac, Mac};
use sanjin_core::sign::DeviceCert;
use sanjin_store::Store;
use sha2::Sha256;
use spake2::{Ed25519Group, Identity, Password, Spake2};

use super::MeetError;
use super::wire::Refusal;
use crate::meta;

/// The context of a device's proof (`DeviceKey::sign_context`): never valid as another statement.
const PROOF_CONTEXT: &str = "sanjin-meet-v1 proof";
const CONFIRM_DOMAIN: &[u8] = b"sanjin-meet/1 confirm\0";
const ID_JOINER: &[u8] = b"sanjin-meet joiner";
const ID_LEADER: &[u8] = b"sanjin-meet leader";

/// The two ends of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Joiner,
}

impl Role {
    fn byte(self) -> u8 {
        match self {
            Role::Leader => b'L',
            Role::Joiner => b'J',
        }
    }
}

/// What a side needs to prove itself and judge the other: its device key and certificate, the
/// server key pinned at enrollment, the server's revocation list as the store holds it.
pub struct Trust {
    key: sanjin_core::sign::DeviceKey,
    pub cert: DeviceCert,
    server_public: [u8; 32],
    revocations: Option<sanjin_core::sign::Revocations>,
}

impl Trust {
    /// The store's trust; an unenrolled store (no key or no certificate) cannot meet.
    pub fn of(store: &Store) -> Result<Trust, MeetError> {
        let key = store.signing_key().ok_or(MeetError::NotEnrolled)?.clone();
        let server_hex = store
            .meta(meta::SERVER_CERT)?
            .ok_or(MeetError::NotEnrolled)?;
        let server = crate::unhex(&server_hex)
            .and_then(|b| DeviceCert::decode(&b).ok())
            .ok_or(MeetError::NotEnrolled)?;
        let cert = store
            .cert(&store.identity().device)?
            .ok_or(MeetError::NotEnrolled)?;
        Ok(Trust {
            key,
            cert,
            server_public: server.public_key,
            revocations: store.revocations()?,
        })
    }

    /// This side's proof for a channel (`exporter`: the TLS exporter; `fingerprint`: the
    /// session certificate's).
    pub fn proof(
        &self,
        role: Role,
        exporter: &[u8; 32],
        fingerprint: &[u8; 32],
    ) -> super::wire::Msg {
        let t = transcript(role, exporter, fingerprint, &self.cert.encode());
        super::wire::Msg::Proof {
            cert: self.cert.encode(),
            signature: self.key.sign_context(PROOF_CONTEXT, &t),
        }
    }

    /// Judges the other side's proof: a certificate from our server, untampered, not revoked,
    /// of our group (unless either side is staff or admin), and a signature by its key over
    /// this channel's transcript. The refusal and its detail otherwise.
    pub fn judge(
        &self,
        peer_role: Role,
        cert: &[u8],
        signature: &[u8; 64],
        exporter: &[u8; 32],
        fingerprint: &[u8; 32],
    ) -> Result<DeviceCert, (Refusal, String)> {
        let c = DeviceCert::decode(cert).map_err(|_| (Refusal::NotByServer, String::new()))?;
        if c.verify(&self.server_public).is_err() || c.role == "server" {
            return Err((Refusal::NotByServer, c.device.clone()));
        }
        if self.revocations.as_ref().is_some_and(|r| r.revokes(&c)) {
            return Err((Refusal::Revoked, c.device.clone()));
        }
        let office = |r: &str| r == "staff" || r == "admin";
        if !office(&self.cert.role)
            && !office(&c.role)
            && (c.group.is_none() || c.group != self.cert.group)
        {
            return Err((Refusal::OtherGroup, c.group.clone().unwrap_or_default()));
        }
        let t = transcript(peer_role, exporter, fingerprint, cert);
        if !sanjin_core::sign::verify_context(&c.public_key, PROOF_CONTEXT, &t, signature) {
            return Err((Refusal::BadProof, c.device.clone()));
        }
        Ok(c)
    }
}

fn transcript(role: Role, exporter: &[u8; 32], fingerprint: &[u8; 32], cert: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(1 + 64 + cert.len());
    t.push(role.byte());
    t.extend_from_slice(exporter);
    t.extend_from_slice(fingerprint);
    t.extend_from_slice(cert);
    t
}

/// The joiner's half of the code exchange: its first message and the state to finish with.
pub struct CodeJoiner(Spake2<Ed25519Group>);

impl CodeJoiner {
    pub fn start(code: &str) -> (CodeJoiner, Vec<u8>) {
        let (s, m) = Spake2::<Ed25519Group>::start_a(
            &Password::new(code.as_bytes()),
            &Identity::new(ID_JOINER),
            &Identity::new(ID_LEADER),
        );
        (CodeJoiner(s), m)
    }

    /// Finishes with the leader's message: `Some(joiner's confirmation)` and whether the
    /// leader's confirmation matched the fingerprint this joiner saw. A wrong code or a
    /// man in the middle makes it not match.
    pub fn finish(
        self,
        leader_msg: &[u8],
        leader_confirm: &[u8; 32],
        seen_fingerprint: &[u8; 32],
        exporter: &[u8; 32],
    ) -> ([u8; 32], bool) {
        match self.0.finish(leader_msg) {
            Ok(k) => {
                let ok = check(&k, Role::Leader, seen_fingerprint, exporter, leader_confirm);
                (confirm(&k, Role::Joiner, seen_fingerprint, exporter), ok)
            }
            // A malformed message: answer something the leader will count as a failure.
            Err(_) => ([0; 32], false),
        }
    }
}

/// The leader's half: its message, its confirmation, and the key to check the joiner's.
pub struct CodeLeader {
    key: Option<Vec<u8>>,
}

impl CodeLeader {
    pub fn answer(
        code: &str,
        joiner_msg: &[u8],
        own_fingerprint: &[u8; 32],
        exporter: &[u8; 32],
    ) -> (CodeLeader, Vec<u8>, [u8; 32]) {
        let (s, m) = Spake2::<Ed25519Group>::start_b(
            &Password::new(code.as_bytes()),
            &Identity::new(ID_JOINER),
            &Identity::new(ID_LEADER),
        );
        match s.finish(joiner_msg) {
            Ok(k) => {
                let c = confirm(&k, Role::Leader, own_fingerprint, exporter);
                (CodeLeader { key: Some(k) }, m, c)
            }
            Err(_) => (CodeLeader { key: None }, m, [0; 32]),
        }
    }

    pub fn accepts(
        &self,
        joiner_confirm: &[u8; 32],
        own_fingerprint: &[u8; 32],
        exporter: &[u8; 32],
    ) -> bool {
        self.key
            .as_ref()
            .is_some_and(|k| check(k, Role::Joiner, own_fingerprint, exporter, joiner_confirm))
    }
}

fn mac(key: &[u8], role: Role, fingerprint: &[u8; 32], exporter: &[u8; 32]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(CONFIRM_DOMAIN);
    m.update(&[role.byte()]);
    m.update(fingerprint);
    m.update(exporter);
    m
}

fn confirm(key: &[u8], role: Role, fingerprint: &[u8; 32], exporter: &[u8; 32]) -> [u8; 32] {
    mac(key, role, fingerprint, exporter)
        .finalize()
        .into_bytes()
        .into()
}

fn check(
    key: &[u8],
    role: Role,
    fingerprint: &[u8; 32],
    exporter: &[u8; 32],
    got: &[u8; 32],
) -> bool {
    // `verify_slice` compares in constant time.
    mac(key, role, fingerprint, exporter)
        .verify_slice(got)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue12_code_confirms_the_fingerprint_each_side_sees() {
        let fp = [7u8; 32];
        let ex = [9u8; 32];
        // Same code, same fingerprint: both confirm.
        let (j, m1) = CodeJoiner::start("123456");
        let (l, m2, c2) = CodeLeader::answer("123456", &m1, &fp, &ex);
        let (c1, ok) = j.finish(&m2, &c2, &fp, &ex);
        assert!(ok);
        assert!(l.accepts(&c1, &fp, &ex));
        // Wrong code: neither confirms.
        let (j, m1) = CodeJoiner::start("123457");
        let (l, m2, c2) = CodeLeader::answer("123456", &m1, &fp, &ex);
        let (c1, ok) = j.finish(&m2, &c2, &fp, &ex);
        assert!(!ok);
        assert!(!l.accepts(&c1, &fp, &ex));
        // Right code, but the joiner saw another certificate (a man in the middle).
        let (j, m1) = CodeJoiner::start("123456");
        let (l, m2, c2) = CodeLeader::answer("123456", &m1, &fp, &ex);
        let (c1, ok) = j.finish(&m2, &c2, &[8u8; 32], &ex);
        assert!(!ok);
        assert!(!l.accepts(&c1, &fp, &ex));
        // Garbage from the joiner never panics and never confirms.
        let (l, _, _) = CodeLeader::answer("123456", b"junk", &fp, &ex);
        assert!(!l.accepts(&[0; 32], &fp, &ex));
    }
}
