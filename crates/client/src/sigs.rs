//! The signatures that travel beside the changes (issue 10): what a request carries for the
//! changes it sends, and what an answer's signatures and certificates leave in the store.

use sanjin_core::protocol::SyncResponse;
use sanjin_core::sign::{ChangeSig, SigKind, change_actor, split_changes};
use sanjin_store::Store;

use crate::{Error, meta};

/// The signatures a request carries for the changes in `blobs` (issue 10): this device's own
/// changes under one fresh signature (64 bytes however many), other devices' changes it relays
/// under the signatures it holds for them.
pub(crate) fn sigs_for_changes<'a>(
    store: &Store,
    blobs: impl Iterator<Item = &'a [u8]>,
) -> Result<Vec<ChangeSig>, Error> {
    let actor = store.identity().actor.clone();
    let mut own = Vec::new();
    let mut foreign = Vec::new();
    for bytes in blobs {
        for (h, r) in split_changes(bytes) {
            if change_actor(&bytes[r]).as_deref() == Some(actor.as_slice()) {
                own.push(h);
            } else {
                foreign.push(h);
            }
        }
    }
    let mut sigs = Vec::new();
    if let Some(key) = store.signing_key()
        && !own.is_empty()
    {
        sigs.push(ChangeSig::sign(
            key,
            &store.identity().device,
            SigKind::Changes,
            own,
        ));
    }
    if !foreign.is_empty() {
        sigs.extend(store.sigs_for(&foreign)?);
    }
    Ok(sigs)
}

/// Keeps the signatures and signers' certificates an answer carries beside the changes (inside
/// the caller's transaction), so this device can pass them on with the changes. A certificate
/// that the pinned server key did not sign is not kept.
pub(crate) fn keep_sigs(store: &mut Store, response: &SyncResponse) -> Result<(), Error> {
    let server_key = store
        .meta(meta::SERVER_CERT)?
        .and_then(|h| crate::unhex(&h))
        .and_then(|b| sanjin_core::sign::DeviceCert::decode(&b).ok())
        .map(|c| c.public_key);
    for cert in &response.certs {
        // One the pinned server key did not sign is left out (a server fault: the answer came
        // over pinned TLS).
        if server_key.is_some_and(|k| cert.verify(&k).is_ok()) {
            store.put_cert(cert)?;
        }
    }
    for sig in &response.sigs {
        store.put_sig(sig, &sig.hashes)?;
    }
    Ok(())
}
