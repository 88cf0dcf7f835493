//! The server's keys that bundles are sealed to, and its signed statements about them (issue
//! 12): its own X25519 box key and one per activity group and epoch (server storage schema 6,
//! made on first use), the [`KeyDirectory`] of their public halves, the [`Revocations`] list
//! (its `seq` bumped by every revocation, which also starts a new epoch for the groups whose
//! secrets the revoked device held), and [`Receipt`]s of what the server holds. Every statement
//! is signed by the server's Ed25519 key (`crate::key`), which devices pinned at enrollment.

use std::collections::BTreeSet;

use sanjin_core::domain::RecordKind;
use sanjin_core::seal::BoxSecret;
use sanjin_core::sign::{GroupKey, KeyDirectory, Receipt, Revocations, Revoked};
use sanjin_store::now_ms;
use sanjin_store::server::StoredBoxKey;

use crate::data::{ServerData, random};
use crate::error::{Error, Result};
use crate::model::{Account, Caller, Role};

/// The owner of the server's own box key in the storage.
const SERVER_OWNER: &str = "";
/// `server_meta` key: the revocation list's sequence number.
const META_REVOCATIONS_SEQ: &str = "revocations_seq";

/// The recipient ids of a sealed bundle: the server's box key (`server`), a group's key at an
/// epoch (`group:<group>:<epoch>`).
pub use sanjin_sync::bundle::{SERVER_RECIPIENT, group_recipient};

/// A group's secret as `POST /v1/trust` hands it to the group's devices.
#[derive(Clone)]
pub struct GroupSecret {
    pub group: String,
    pub epoch: u32,
    pub secret: BoxSecret,
}

impl std::fmt::Debug for GroupSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupSecret")
            .field("group", &self.group)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

fn secret_of(k: &StoredBoxKey) -> Result<BoxSecret> {
    let seed = <[u8; 32]>::try_from(k.secret.as_slice()).map_err(|_| {
        Error::Invalid(format!(
            "the server's box key of `{}` epoch {} is damaged",
            k.owner, k.epoch
        ))
    })?;
    Ok(BoxSecret::from_seed(seed))
}

impl ServerData {
    /// A key of `owner` at `epoch`: the stored one, or a new one kept now (if another writer
    /// kept one first, that one).
    fn box_key_at(&mut self, owner: &str, epoch: u32) -> Result<BoxSecret> {
        if let Some(k) = self
            .store
            .box_keys(Some(owner))?
            .into_iter()
            .find(|k| k.epoch == epoch)
        {
            return secret_of(&k);
        }
        let new = StoredBoxKey {
            owner: owner.to_string(),
            epoch,
            secret: random::<32>().to_vec(),
            created_at: now_ms(),
        };
        let kept = self.atomically(|d| d.store.insert_box_key(&new))?;
        if kept {
            if !owner.is_empty() {
                tracing::info!(group = %owner, epoch, "group box key made");
            }
            return secret_of(&new);
        }
        self.box_key_at(owner, epoch)
    }

    /// The server's own box key (recipient [`SERVER_RECIPIENT`] of every bundle), made on first
    /// use.
    pub fn server_box(&mut self) -> Result<BoxSecret> {
        self.box_key_at(SERVER_OWNER, 0)
    }

    /// A group's current epoch and key, made (epoch 1) on first use.
    pub fn group_box(&mut self, group: &str) -> Result<(u32, BoxSecret)> {
        let latest = self.store.box_keys(Some(group))?.into_iter().last();
        match latest {
            Some(k) => Ok((k.epoch, secret_of(&k)?)),
            None => Ok((1, self.box_key_at(group, 1)?)),
        }
    }

    /// Every epoch's key of a group the server has made (none made here).
    pub fn group_secrets(&self, group: &str) -> Result<Vec<GroupSecret>> {
        self.store
            .box_keys(Some(group))?
            .iter()
            .map(|k| {
                Ok(GroupSecret {
                    group: k.owner.clone(),
                    epoch: k.epoch,
                    secret: secret_of(k)?,
                })
            })
            .collect()
    }

    /// The secret for a recipient id of a sealed bundle, if the server holds it: its own
    /// ([`SERVER_RECIPIENT`]) or a group's at an epoch (`group:<g>:<e>`).
    pub fn box_secret_for(&self, id: &str) -> Option<BoxSecret> {
        let (owner, epoch) = if id == SERVER_RECIPIENT {
            (SERVER_OWNER, 0)
        } else {
            let rest = id.strip_prefix("group:")?;
            let (g, e) = rest.rsplit_once(':')?;
            (g, e.parse::<u32>().ok()?)
        };
        let k = self
            .store
            .box_keys(Some(owner))
            .ok()?
            .into_iter()
            .find(|k| k.epoch == epoch)?;
        secret_of(&k).ok()
    }

    /// The activity groups the server knows: the directory's group records and the groups of
    /// its accounts.
    pub fn known_groups(&self) -> Result<BTreeSet<String>> {
        // From the directory's index (a few rows), not the list of every record.
        let filter = sanjin_store::Filter {
            kind: Some(RecordKind::Group),
            include_deleted: true,
            ..sanjin_store::Filter::default()
        };
        let mut groups: BTreeSet<String> = self
            .store
            .list(&filter)?
            .into_iter()
            .map(|e| e.id)
            .collect();
        groups.extend(self.store.accounts()?.into_iter().filter_map(|a| a.group));
        Ok(groups)
    }

    /// The signed key directory: the server's box key and every known group's current key
    /// (made for groups that have none yet).
    pub fn key_directory(&mut self) -> Result<KeyDirectory> {
        let server_box = self.server_box()?.public();
        let mut groups = Vec::new();
        for g in self.known_groups()? {
            let (epoch, secret) = self.group_box(&g)?;
            groups.push(GroupKey {
                group: g,
                epoch,
                public: secret.public(),
            });
        }
        Ok(KeyDirectory::sign(
            &self.key.key,
            now_ms(),
            server_box,
            groups,
        ))
    }

    /// The revocation list's sequence number: the stored one, or for a server that revoked
    /// devices before issue 12, their number.
    fn revocations_seq(&self, revoked: usize) -> Result<u64> {
        Ok(match self.store.server_meta(META_REVOCATIONS_SEQ)? {
            Some(s) => s.parse().map_err(|_| {
                Error::Invalid(format!("the revocation list's number `{s}` is damaged"))
            })?,
            None => revoked as u64,
        })
    }

    fn revoked_devices(&self) -> Result<Vec<Revoked>> {
        Ok(self
            .store
            .devices()?
            .into_iter()
            .filter_map(|d| {
                Some(Revoked {
                    actor: hex::decode(&d.actor).unwrap_or_default(),
                    revoked_at: d.revoked_at?,
                    device: d.device_id,
                })
            })
            .collect())
    }

    /// The signed revocation list: every revoked device with its actor and when.
    pub fn revocations(&self) -> Result<Revocations> {
        let devices = self.revoked_devices()?;
        let seq = self.revocations_seq(devices.len())?;
        Ok(Revocations::sign(&self.key.key, seq, now_ms(), devices))
    }

    /// After a device was revoked (inside the revocation's unit of work): the list's `seq` goes
    /// up, and every group whose secret the device could hold starts a new epoch — its own
    /// group's, or every group's for an office device — so bundles sealed from now on are
    /// closed to it.
    pub(crate) fn after_revocation(&mut self, account: Option<&Account>) -> Result<()> {
        let before = self.revoked_devices()?.len().saturating_sub(1);
        let seq = self.revocations_seq(before)? + 1;
        self.store
            .set_server_meta(META_REVOCATIONS_SEQ, Some(&seq.to_string()))?;
        let groups: Vec<String> = match account {
            Some(a) if a.reads_everything() => self.known_groups()?.into_iter().collect(),
            // Staff of a county chapter: its groups (issue 13).
            Some(a) if a.county().is_some() => a.scope.chapter_groups.clone(),
            Some(a) => a.group.iter().cloned().collect(),
            None => Vec::new(),
        };
        for g in groups {
            let next = self
                .store
                .box_keys(Some(&g))?
                .last()
                .map_or(1, |k| k.epoch + 1);
            self.store.insert_box_key(&StoredBoxKey {
                owner: g.clone(),
                epoch: next,
                secret: random::<32>().to_vec(),
                created_at: now_ms(),
            })?;
            tracing::info!(group = %g, epoch = next, "group box key rotated after a revocation");
        }
        Ok(())
    }

    /// The groups whose secrets `account`'s devices get: its own, or every group for office
    /// accounts (staff and admin receive bundles from anywhere; staff of a county chapter from
    /// its groups, issue 13).
    pub fn secret_groups(&self, account: &Account) -> Result<Vec<String>> {
        Ok(match account.role {
            Role::Staff if account.county().is_some() => account.scope.chapter_groups.clone(),
            Role::Staff | Role::Admin => self.known_groups()?.into_iter().collect(),
            Role::Member | Role::Leader => account.group.iter().cloned().collect(),
        })
    }

    /// A receipt for a record the caller may read and the server holds: the server holds it at
    /// least up to its current heads. `None` otherwise (unknown, or outside the caller's scope:
    /// a receipt would say the record exists).
    pub fn receipt(&self, caller: &Caller, doc_id: &str) -> Result<Option<Receipt>> {
        let Some(entry) = self.store.index_entry(doc_id)? else {
            return Ok(None);
        };
        if !caller.account.may_read_entry(&entry) {
            return Ok(None);
        }
        let Some(heads) = self.store.doc_heads(doc_id)? else {
            return Ok(None);
        };
        Ok(Some(Receipt::sign(&self.key.key, doc_id, &heads, now_ms())))
    }
}

/// The most records one `POST /v1/trust` may ask receipts for.
pub const MAX_RECEIPTS_PER_REQUEST: usize = 1000;

impl ServerData {
    /// `POST /v1/trust` (issue 12): the key directory, the revocation list, the caller's group
    /// secrets and receipts for the records it asks about (those it may read and the server
    /// holds; others are left out without a word).
    pub fn trust(
        &mut self,
        caller: &Caller,
        req: &crate::model::TrustRequest,
    ) -> Result<crate::model::TrustAnswer, crate::error::AppError> {
        if req.receipts_for.len() > MAX_RECEIPTS_PER_REQUEST {
            return Err(crate::error::AppError::BadMessage(format!(
                "at most {MAX_RECEIPTS_PER_REQUEST} records per request, not {}",
                req.receipts_for.len()
            )));
        }
        let key_directory = self.key_directory()?.encode();
        let revocations = self.revocations()?.encode();
        let mut group_secrets = Vec::new();
        for g in self.secret_groups(&caller.account)? {
            // The current epoch exists (the directory made it); older ones stay readable.
            self.group_box(&g)?;
            for s in self.group_secrets(&g)? {
                group_secrets.push(crate::model::GroupSecretHex {
                    group: s.group,
                    epoch: s.epoch,
                    secret: s.secret.to_hex(),
                });
            }
        }
        let mut receipts = Vec::new();
        let mut seen = BTreeSet::new();
        for id in &req.receipts_for {
            if !sanjin_core::validate::is_id(id) || !seen.insert(id.as_str()) {
                continue;
            }
            if let Some(r) = self.receipt(caller, id)? {
                receipts.push(hex::encode(r.encode()));
            }
        }
        // Issue 13: the caller's certificate as it stands (re-issued when its member moved).
        let cert = self
            .store
            .device_keys(&caller.device_id)?
            .and_then(|k| k.cert)
            .map(hex::encode);
        Ok(crate::model::TrustAnswer {
            cert,
            key_directory: hex::encode(key_directory),
            revocations: hex::encode(revocations),
            group_secrets,
            receipts,
        })
    }
}
