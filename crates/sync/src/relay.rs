//! Judging changes that arrive from another device (issue 12): in a bundle or a phone-to-phone
//! session, with no server to ask. The policy is **the server's own** — [`judge_changes`] and
//! [`judge_record`] of [`crate::server`], the functions the server runs on every push — with
//! the facts taken from the server's signed statements instead of its device table:
//!
//! - an actor's device, member, role and group: its [`DeviceCert`] (signed by the server key);
//! - revoked: the server's signed [`sanjin_core::sign::Revocations`] list;
//! - signed: a [`ChangeSig`] by the actor's device, verified with its certificate's key.
//!
//! Changes the server made itself (console resolutions, imports), under a valid signature of
//! the server's key, are taken as the server holds them, together with every change they depend
//! on (the server signs only changes it made on its own copy, which holds nothing its policy
//! refused); so are histories the server vouched for. Everything else is judged change by
//! change: its author's certificate, its message, its signature, its author's right to write
//! the record, and what it does.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;

use automerge::{AutoCommit, ChangeHash};
use sanjin_core::domain::RecordKind;
use sanjin_core::protocol::RefusalCode;
use sanjin_core::sign::{ChangeSig, DeviceCert, Revocations, SERVER_DEVICE, SigKind};
use sanjin_core::{IndexEntry, Millis, RecordDoc};

use crate::server::{
    Author, Before, Changes, Facts, Refused, Writer, check_envelope, check_pusher, judge_changes,
    judge_record,
};

/// The largest change bytes judged for one document (the server's default limit).
pub const MAX_DOC_BYTES: usize = 8 << 20;

/// Who writes, as the policy sees it: a certificate's member, role and group, or the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertWriter {
    /// The author of changes, from its device certificate.
    Cert {
        member: String,
        /// `member`, `leader`, `staff`, `admin`, `server`.
        role: String,
        group: Option<String>,
    },
    /// The device that carried the changes here. It is **not** their author: a bundle or a
    /// session passes on other members' changes, so the pusher's own checks (may it write the
    /// record before and after) would judge the carrier, not the authors. The relay may carry
    /// anything; whether each change lands is decided by the per-change checks of the policy,
    /// where **each change's author** (the device that owns its actor) must be enrolled,
    /// unrevoked, named by the change's message, have signed it, and be allowed to write the
    /// record as it was and as the changes leave it.
    Relay,
}

impl CertWriter {
    pub fn of(cert: &DeviceCert) -> CertWriter {
        CertWriter::Cert {
            member: cert.member.clone(),
            role: cert.role.clone(),
            group: cert.group.clone(),
        }
    }
}

impl Writer for CertWriter {
    fn member(&self) -> &str {
        match self {
            CertWriter::Cert { member, .. } => member,
            CertWriter::Relay => "relay",
        }
    }

    fn role(&self) -> String {
        match self {
            CertWriter::Cert { role, .. } => role.clone(),
            CertWriter::Relay => "relay".into(),
        }
    }

    /// Exactly the server's `Account::may_write` (crates/server/src/model.rs): staff write
    /// everything, admins the directory, members and leaders their own group's records (never
    /// the directory). The server's own certificate writes like staff.
    fn may_write(&self, kind: RecordKind, group: Option<&str>) -> bool {
        match self {
            CertWriter::Relay => true,
            CertWriter::Cert {
                role, group: own, ..
            } => match role.as_str() {
                "staff" | "server" => true,
                "admin" => kind.is_directory(),
                "member" | "leader" => {
                    !kind.is_directory() && group.is_some() && own.as_deref() == group
                }
                _ => false,
            },
        }
    }

    /// A leader's certificate names its group.
    fn leads(&self, group: &str) -> bool {
        matches!(self, CertWriter::Cert { role, group: Some(own), .. } if role == "leader" && own == group)
    }
}

/// The facts of [`crate::server::Facts`] from device certificates and the revocation list.
#[derive(Debug, Clone)]
pub struct CertFacts {
    server_public: [u8; 32],
    /// Actor (hex) → the newest certificate with that actor, and whether it is revoked.
    by_actor: HashMap<String, (DeviceCert, bool)>,
    /// Device id → the keys of its certificates.
    keys: HashMap<String, Vec<[u8; 32]>>,
    /// Signatures already checked (by their signature bytes and signer).
    checked: HashMap<([u8; 64], String), bool>,
    /// The legal advisory group of the receiver's directory (issue 13), if it knows one.
    legal_group: Option<String>,
}

/// Whether a certificate is on the revocation list (`None`: nobody is revoked).
pub fn revoked_by(list: Option<&Revocations>) -> impl Fn(&DeviceCert) -> bool + '_ {
    move |c| list.is_some_and(|l| l.revokes(c))
}

impl CertFacts {
    /// The legal advisory group of the receiver's directory (issue 13,
    /// `sanjin_core::rules::legal_group`): legal appeals of other groups are also written and
    /// reviewed by its leader, as on the server.
    pub fn with_legal_group(mut self, group: Option<String>) -> CertFacts {
        self.legal_group = group;
        self
    }

    /// The facts from `certs`: those the server key `server_public` did not sign are left out
    /// (devices trust nothing another device sends); `revoked` says which are revoked.
    pub fn new(
        server_public: &[u8; 32],
        certs: impl IntoIterator<Item = DeviceCert>,
        revoked: &dyn Fn(&DeviceCert) -> bool,
    ) -> CertFacts {
        let mut f = CertFacts {
            server_public: *server_public,
            by_actor: HashMap::new(),
            keys: HashMap::new(),
            checked: HashMap::new(),
            legal_group: None,
        };
        for c in certs {
            f.add(c, revoked);
        }
        f
    }

    /// Adds one certificate (ignored unless the server key signed it).
    pub fn add(&mut self, cert: DeviceCert, revoked: &dyn Fn(&DeviceCert) -> bool) {
        if cert.verify(&self.server_public).is_err() {
            return;
        }
        let keys = self.keys.entry(cert.device.clone()).or_default();
        if !keys.contains(&cert.public_key) {
            keys.push(cert.public_key);
        }
        let actor = hex(&cert.actor);
        let is_revoked = revoked(&cert);
        match self.by_actor.get_mut(&actor) {
            Some((old, r)) => {
                // The newest certificate of the actor speaks for it; a revocation of any stays.
                *r |= is_revoked;
                if cert.issued_at > old.issued_at {
                    *old = cert;
                }
            }
            None => {
                self.by_actor.insert(actor, (cert, is_revoked));
            }
        }
    }

    /// The certificate of the device with this actor id.
    pub fn cert_of_actor(&self, actor: &[u8]) -> Option<&DeviceCert> {
        self.by_actor.get(&hex(actor)).map(|(c, _)| c)
    }

    /// Whether `sig` holds for a key of its signer's certificates (the server key for the
    /// server's signatures).
    pub fn sig_holds(&mut self, sig: &ChangeSig) -> bool {
        let k = (sig.signature, sig.signer.clone());
        if let Some(&ok) = self.checked.get(&k) {
            return ok;
        }
        let ok = if sig.signer == SERVER_DEVICE {
            sig.verify(&self.server_public)
        } else {
            self.keys
                .get(&sig.signer)
                .is_some_and(|keys| keys.iter().any(|key| sig.verify(key)))
        };
        self.checked.insert(k, ok);
        ok
    }
}

impl Facts for CertFacts {
    type Account = CertWriter;
    type Error = Infallible;

    fn author(&mut self, actor: &str) -> Result<Option<Author<CertWriter>>, Infallible> {
        Ok(self.by_actor.get(actor).map(|(c, revoked)| Author {
            device: c.device.clone(),
            revoked: *revoked,
            account: CertWriter::of(c),
        }))
    }

    /// The server's rule: staff review everything, a leader the records of its own group (and
    /// the legal advisory group's leader legal appeals, issue 13), nobody else (admins keep the
    /// directory and take no review steps). The server's own certificate reviews like staff.
    fn may_review(
        &mut self,
        account: &CertWriter,
        group: Option<&str>,
        also: Option<&str>,
    ) -> Result<bool, Infallible> {
        Ok(match account {
            CertWriter::Relay => false,
            CertWriter::Cert {
                role, group: own, ..
            } => match role.as_str() {
                "staff" | "server" => true,
                "leader" => own
                    .as_deref()
                    .is_some_and(|own| group == Some(own) || also == Some(own)),
                _ => false,
            },
        })
    }

    fn legal_group(&mut self) -> Result<Option<String>, Infallible> {
        Ok(self.legal_group.clone())
    }
}

/// What became of the changes received for one record.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per document judged; the document is the point
pub enum Judged {
    /// Save `doc`: the receiver's copy plus the changes that hold (`new_changes` of them).
    /// `refusal`: some changes were refused (and those depending on them), the rest landed.
    Land {
        doc: RecordDoc,
        new_changes: usize,
        refusal: Option<Refused>,
    },
    /// Nothing new: the receiver already holds every change.
    Held,
    /// Nothing lands.
    Refused(Refused),
}

fn refused(code: RefusalCode, reason: impl Into<String>) -> Judged {
    Judged::Refused(Refused(code, String::new(), reason.into()))
}

fn before_of(
    am: &mut AutoCommit,
    heads: &[ChangeHash],
    legal_group: Option<&str>,
) -> Option<Before> {
    if heads.is_empty() {
        return None;
    }
    let fork = am.fork_at(heads).ok()?;
    let mut rec = RecordDoc::from_automerge(fork).ok()?;
    let view = rec.view().ok()?;
    let entry = IndexEntry::of(&view);
    RecordKind::parse(&entry.kind)?;
    Some(Before::with_also(&entry, legal_group))
}

/// Judges the changes `incoming` (automerge change chunks) received for record `doc_id` from
/// another device, on top of the receiver's copy `current` (`None`: new here), with the
/// signatures `sigs` that travelled with them: the server's push policy, with `facts` from
/// certificates. `now_ms` bounds the dates of new workflow steps, as on the server.
pub fn judge(
    facts: &mut CertFacts,
    doc_id: &str,
    current: Option<&[u8]>,
    incoming: &[u8],
    sigs: &[ChangeSig],
    now_ms: Millis,
) -> Judged {
    if let Err(r) = check_envelope(doc_id, incoming, MAX_DOC_BYTES) {
        return Judged::Refused(r);
    }
    let mut am = match current.map(AutoCommit::load) {
        None => AutoCommit::new(),
        Some(Ok(am)) => am,
        Some(Err(e)) => {
            return refused(
                RefusalCode::Malformed,
                format!("this device's copy of the record cannot be read: {e}"),
            );
        }
    };
    let current_heads = am.get_heads();
    let legal_group = facts.legal_group.clone();
    let before = before_of(&mut am, &current_heads, legal_group.as_deref());
    if let Err(r) = check_pusher(&CertWriter::Relay, before.as_ref(), incoming) {
        return Judged::Refused(r);
    }
    if am.load_incremental(incoming).is_err() {
        return refused(
            RefusalCode::Malformed,
            "the bytes are not automerge changes",
        );
    }

    // What the server made or vouched for, with everything it depends on, is taken as held.
    let arrived: HashSet<ChangeHash> = am
        .get_changes(&current_heads)
        .iter()
        .map(|c| c.hash())
        .collect();
    let mut server_signed: HashSet<ChangeHash> = HashSet::new();
    let mut vouched: Vec<ChangeHash> = Vec::new();
    for s in sigs.iter().filter(|s| s.signer == SERVER_DEVICE) {
        if !s.hashes.iter().any(|h| arrived.contains(h)) || !facts.sig_holds(s) {
            continue;
        }
        match s.kind {
            SigKind::Changes => server_signed.extend(s.hashes.iter().copied()),
            SigKind::Vouch => vouched.extend(s.hashes.iter().filter(|h| arrived.contains(h))),
        }
    }
    // The server signs as its own only changes it made on its copy (whatever actor they
    // carry, its signature says it holds them): no certificate of its is needed.
    let mut trusted_heads = current_heads.clone();
    trusted_heads.extend(vouched);
    trusted_heads.extend(server_signed.intersection(&arrived).copied());
    trusted_heads.sort_unstable();
    trusted_heads.dedup();
    let mut trusted = 0;
    let (before_heads, before) = if trusted_heads.len() == current_heads.len() {
        (current_heads.clone(), before)
    } else {
        if !am.get_missing_deps(&[]).is_empty() {
            // Judged below as missing dependencies, without forking a document that lacks some.
            (current_heads.clone(), before)
        } else {
            trusted = am
                .get_changes(&current_heads)
                .len()
                .saturating_sub(am.get_changes(&trusted_heads).len());
            let b = before_of(&mut am, &trusted_heads, legal_group.as_deref());
            (trusted_heads, b)
        }
    };
    let exists = !before_heads.is_empty();

    // Which device signed which change, each signature checked once.
    let mut signed_by: HashMap<ChangeHash, Vec<String>> = HashMap::new();
    for s in sigs
        .iter()
        .filter(|s| s.kind == SigKind::Changes && s.signer != SERVER_DEVICE)
    {
        if s.hashes.iter().any(|h| arrived.contains(h)) && facts.sig_holds(s) {
            for h in &s.hashes {
                signed_by.entry(*h).or_default().push(s.signer.clone());
            }
        }
    }
    let signed = |h: &ChangeHash, device: &str| {
        signed_by
            .get(h)
            .is_some_and(|v| v.iter().any(|d| d == device))
    };

    let relay = CertWriter::Relay;
    let judged = match judge_changes(
        facts,
        &relay,
        &mut am,
        exists,
        &before_heads,
        before.as_ref(),
        incoming.len(),
        &signed,
    ) {
        Ok(j) => j,
        Err(never) => match never {},
    };
    let (am, kept, refusal) = match judged {
        Changes::Refused(r) => return Judged::Refused(r),
        Changes::Held if trusted == 0 => return Judged::Held,
        Changes::Held => (am, Vec::new(), None),
        Changes::All { changes, .. } => (am, changes, None),
        Changes::Some { kept, refusal, .. } => {
            // The receiver's copy and what the server made, plus only the changes that hold.
            let Ok(mut again) = am.fork_at(&before_heads) else {
                return Judged::Refused(refusal);
            };
            if again.apply_changes(kept.clone()).is_err() {
                return Judged::Refused(refusal);
            }
            (again, kept, Some(refusal))
        }
    };
    let landed = match judge_record(
        facts,
        &relay,
        doc_id,
        am,
        before.as_ref(),
        &kept,
        exists,
        now_ms,
    ) {
        Ok(j) => j,
        Err(never) => match never {},
    };
    match landed {
        Ok((doc, _)) => Judged::Land {
            doc,
            new_changes: kept.len() + trusted,
            refusal,
        },
        // As on the server: the record's own refusal when what would land does not hold.
        Err(r) => Judged::Refused(r),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod issue13_legal_appeals {
    use super::*;

    fn cert(role: &str, group: &str) -> CertWriter {
        CertWriter::Cert {
            member: "member-0135".into(),
            role: role.into(),
            group: Some(group.into()),
        }
    }

    /// The relay judges a legal appeal as the server does: the legal advisory group's leader
    /// writes and reviews it, nobody else beyond the record's group.
    #[test]
    fn issue13_relays_let_the_legal_groups_leader_handle_legal_appeals() {
        let mut facts = CertFacts::new(&[0; 32], [], &revoked_by(None))
            .with_legal_group(Some("group-06".into()));
        assert_eq!(facts.legal_group().unwrap().as_deref(), Some("group-06"));
        let legal_leader = cert("leader", "group-06");
        let other_leader = cert("leader", "group-02");
        let legal_member = cert("member", "group-06");
        let o = RecordKind::Opinion;
        for (who, writes, reviews) in [
            (&legal_leader, true, true),
            (&other_leader, false, false),
            (&legal_member, false, false),
        ] {
            assert_eq!(
                who.may_write_record(o, Some("group-01"), Some("group-06")),
                writes,
                "{who:?}"
            );
            assert_eq!(
                facts
                    .may_review(who, Some("group-01"), Some("group-06"))
                    .unwrap(),
                reviews,
                "{who:?}"
            );
        }
        // Not a legal appeal: only the group's own.
        assert!(!legal_leader.may_write_record(o, Some("group-01"), None));
        assert!(
            !facts
                .may_review(&legal_leader, Some("group-01"), None)
                .unwrap()
        );
    }
}
