//! The server's keys and signatures (issue 10): its own Ed25519 key and self-signed
//! certificate, device certificates issued at enrollment, the signatures a push carries checked
//! against the keys of the devices that made them, the server's own changes (console
//! resolutions, imports) signed as [`SERVER_DEVICE`], the history it held before signatures
//! vouched for once, and the signatures and certificates a pull carries.

use std::collections::{BTreeMap, HashMap, HashSet};

use automerge::ChangeHash;
use sanjin_core::protocol::DocChanges;
use sanjin_core::sign::{ChangeSig, DeviceCert, SERVER_DEVICE, SigKind, split_changes};
use sanjin_store::now_ms;

use crate::data::ServerData;
use crate::error::{AppError, Error, Result};
pub(crate) use crate::key::{change_hashes, parse_public_key};
use crate::model::{Caller, KeyRegistration};

/// server_meta keys.
const META_VOUCHED: &str = "history_vouched";

/// A device's certificate, encoded, if it has one.
type CertBytes = Option<Vec<u8>>;
/// A device's registered public key and its certificate.
type RegisteredKey = ([u8; 32], CertBytes);

/// Which device signed which of a request's changes, after checking every signature once.
#[derive(Default, Debug)]
pub(crate) struct Signed {
    by: HashMap<ChangeHash, Vec<usize>>,
    sigs: Vec<ChangeSig>,
}

impl Signed {
    /// Whether `device` signed `hash` with a signature that holds.
    pub fn signed_by(&self, hash: &ChangeHash, device: &str) -> bool {
        self.by
            .get(hash)
            .is_some_and(|v| v.iter().any(|&i| self.sigs[i].signer == device))
    }

    /// The signature by `device` that covers `hash`.
    fn sig_of(&self, hash: &ChangeHash, device: &str) -> Option<&ChangeSig> {
        self.by
            .get(hash)?
            .iter()
            .map(|&i| &self.sigs[i])
            .find(|s| s.signer == device)
    }
}

impl ServerData {
    /// The server's own certificate (devices pin it at enrollment).
    pub fn server_cert(&self) -> &DeviceCert {
        &self.key.cert
    }

    /// A device's public key and certificate, if it registered one.
    fn device_key(&self, device: &str) -> Result<Option<RegisteredKey>> {
        if device == SERVER_DEVICE {
            return Ok(Some((self.key.key.public(), Some(self.key.cert.encode()))));
        }
        let keys = self.store.device_keys(device)?;
        Ok(keys.and_then(|k| Some((<[u8; 32]>::try_from(k.public_key?.as_slice()).ok()?, k.cert))))
    }

    /// Checks every signature of a request against its signer's registered key. Signatures that
    /// do not hold, or whose signer has no key, are dropped (the changes they claim to cover are
    /// then refused as `bad_signature`).
    pub(crate) fn check_sigs(&self, sigs: &[ChangeSig]) -> Result<Signed> {
        let mut out = Signed::default();
        let mut keys: HashMap<&str, Option<[u8; 32]>> = HashMap::new();
        for s in sigs {
            if s.kind != SigKind::Changes {
                continue; // only the server vouches for history
            }
            let key = match keys.get(s.signer.as_str()) {
                Some(k) => *k,
                None => {
                    let k = self.device_key(&s.signer)?.map(|(k, _)| k);
                    keys.insert(&s.signer, k);
                    k
                }
            };
            let Some(key) = key else { continue };
            if !s.verify(&key) {
                tracing::info!(signer = %s.signer, "signature does not hold");
                continue;
            }
            let i = out.sigs.len();
            out.sigs.push(s.clone());
            for h in &s.hashes {
                out.by.entry(*h).or_default().push(i);
            }
        }
        Ok(out)
    }

    /// Keeps, beside the changes that landed, the signatures that cover them (inside the
    /// exchange's transaction). `landed`: (change, device that owns its actor).
    pub(crate) fn keep_sigs(
        &mut self,
        signed: &Signed,
        landed: &[(ChangeHash, String)],
    ) -> Result<()> {
        let mut per: BTreeMap<usize, Vec<ChangeHash>> = BTreeMap::new();
        for (h, device) in landed {
            if let Some(s) = signed.sig_of(h, device) {
                let i = signed
                    .sigs
                    .iter()
                    .position(|x| std::ptr::eq(x, s))
                    .unwrap_or(0);
                per.entry(i).or_default().push(*h);
            }
        }
        for (i, hashes) in per {
            self.store.put_sig(&signed.sigs[i], &hashes)?;
        }
        Ok(())
    }

    /// Signs changes the server made itself (a console resolution, an import) as
    /// [`SERVER_DEVICE`]: one signature over `hashes`, kept beside them.
    pub(crate) fn sign_own(&mut self, hashes: Vec<ChangeHash>) -> Result<()> {
        if let Some(sig) = self.own_sig(hashes) {
            self.store.put_sig(&sig, &sig.hashes)?;
        }
        Ok(())
    }

    /// The server's signature over changes it made (`None` for none).
    pub(crate) fn own_sig(&self, hashes: Vec<ChangeHash>) -> Option<ChangeSig> {
        (!hashes.is_empty())
            .then(|| ChangeSig::sign(&self.key.key, SERVER_DEVICE, SigKind::Changes, hashes))
    }

    /// Once, when a server from before signatures opens its data: one server signature over each
    /// scope's document heads vouches for the history it already held (every change those heads
    /// depend on), so devices can tell it from unsigned changes.
    pub(crate) fn vouch_history(&mut self) -> Result<usize> {
        if self.store.server_meta(META_VOUCHED)?.is_some() {
            return Ok(0);
        }
        let rows = self.store.all_heads()?;
        let mut by_scope: BTreeMap<Option<String>, Vec<(String, Vec<ChangeHash>)>> =
            BTreeMap::new();
        for (id, heads) in rows {
            let scope = self.store.index_entry(&id)?.and_then(|e| {
                crate::data::scope_of(
                    sanjin_core::domain::RecordKind::parse(&e.kind)?,
                    e.group.as_deref(),
                )
            });
            by_scope.entry(scope).or_default().push((id, heads));
        }
        let mut n = 0;
        let key = self.key.key.clone();
        self.atomically(|d| -> Result<()> {
            for docs in by_scope.values() {
                let heads: Vec<ChangeHash> = docs.iter().flat_map(|(_, h)| h.clone()).collect();
                let sig = ChangeSig::sign(&key, SERVER_DEVICE, SigKind::Vouch, heads);
                for (id, _) in docs {
                    // Every change of the document points at the vouching signature.
                    let Ok(mut doc) = d.store.load(id) else {
                        continue;
                    };
                    let all: Vec<ChangeHash> = doc.changes().iter().map(|c| c.hash()).collect();
                    d.store.put_sig(&sig, &all)?;
                    n += 1;
                }
            }
            d.store
                .set_server_meta(META_VOUCHED, Some(&now_ms().to_string()))?;
            Ok(())
        })?;
        Ok(n)
    }

    /// The signatures and certificates a pull answer carries for its changes.
    pub(crate) fn sigs_for_pull(
        &self,
        changes: &[DocChanges],
        heads: &[ChangeHash],
    ) -> Result<(Vec<ChangeSig>, Vec<DeviceCert>)> {
        let mut hashes: Vec<ChangeHash> = changes
            .iter()
            .flat_map(|d| split_changes(&d.changes).into_iter().map(|(h, _)| h))
            .collect();
        hashes.extend_from_slice(heads);
        let sigs = self.store.sigs_for(&hashes)?;
        let signers: HashSet<&str> = sigs.iter().map(|s| s.signer.as_str()).collect();
        let mut certs = Vec::new();
        for signer in signers {
            if let Some((_, Some(c))) = self.device_key(signer)?
                && let Ok(cert) = DeviceCert::decode(&c)
            {
                certs.push(cert);
            }
        }
        certs.sort_by(|a, b| a.device.cmp(&b.device));
        Ok((sigs, certs))
    }

    /// Issues a certificate for `device`'s public key and keeps both (inside the caller's
    /// unit of work).
    pub(crate) fn issue_cert(&mut self, device: &str, public_key: [u8; 32]) -> Result<DeviceCert> {
        let (actor, member) = self
            .store
            .device_actor(device)?
            .ok_or_else(|| Error::UnknownDevice(device.into()))?;
        let account = self
            .account(&member)?
            .ok_or_else(|| Error::Invalid(format!("device {device} has no account")))?;
        let cert = DeviceCert::issue(
            &self.key.key,
            device,
            &hex::decode(&actor).unwrap_or_default(),
            &member,
            account.role.code(),
            account.group.as_deref(),
            public_key,
            now_ms(),
        );
        self.store
            .set_device_keys(device, &public_key[..], &cert.encode())?;
        Ok(cert)
    }

    /// `POST /v1/device/key`: a device enrolled before signatures registers its public key once
    /// (authenticated by its sync secret) and gets its certificate. A device that has a key
    /// already cannot replace it: a stolen secret must not become a new signing identity.
    pub fn register_key(
        &mut self,
        caller: &Caller,
        public_key_hex: &str,
    ) -> Result<KeyRegistration, AppError> {
        let public_key = parse_public_key(public_key_hex)?;
        let existing = self.device_key(&caller.device_id)?;
        if let Some((k, Some(c))) = existing {
            if k == public_key {
                return Ok(KeyRegistration {
                    cert: hex::encode(c),
                    server_cert: hex::encode(self.key.cert.encode()),
                });
            }
            return Err(AppError::Conflict {
                code: "key_registered",
                message:
                    "this device has a signing key already; enroll the device again to change it"
                        .into(),
            });
        }
        let cert = self.atomically(|d| d.issue_cert(&caller.device_id, public_key))?;
        Ok(KeyRegistration {
            cert: hex::encode(cert.encode()),
            server_cert: hex::encode(self.key.cert.encode()),
        })
    }
}
