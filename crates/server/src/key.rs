//! The server's own signing key and the pure helpers around keys and change hashes (issue 10):
//! a leaf module that the data folder (`data`) and the signature checks (`trust`) both use.

use automerge::ChangeHash;
use sanjin_core::sign::{DeviceCert, DeviceKey, split_changes};
use sanjin_store::now_ms;
use sanjin_store::server::ServerStorage;

use crate::error::{AppError, Error, Result};

/// server_meta keys.
const META_KEY: &str = "signing_key";
const META_CERT: &str = "certificate";

/// Random bytes from the OS.
pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS provides randomness");
    b
}

/// The server's signing identity.
#[derive(Clone, Debug)]
pub(crate) struct ServerKey {
    pub key: DeviceKey,
    pub cert: DeviceCert,
}

/// Loads the server's key and certificate, making them on first use.
pub(crate) fn load_or_make_key(storage: &mut dyn ServerStorage) -> Result<ServerKey> {
    if let (Some(k), Some(c)) = (
        storage.server_meta(META_KEY)?,
        storage.server_meta(META_CERT)?,
    ) {
        let key = DeviceKey::from_seed_hex(&k)
            .ok_or_else(|| Error::Invalid("the server's signing key is damaged".into()))?;
        let cert = hex::decode(&c)
            .ok()
            .and_then(|b| DeviceCert::decode(&b).ok())
            .ok_or_else(|| Error::Invalid("the server's certificate is damaged".into()))?;
        return Ok(ServerKey { key, cert });
    }
    let key = DeviceKey::from_seed(random::<32>());
    let cert = DeviceCert::server(&key, &storage.identity().actor, now_ms());
    storage.transaction(|s| -> Result<()> {
        s.set_server_meta(META_KEY, Some(&key.seed_hex()))?;
        s.set_server_meta(META_CERT, Some(&hex::encode(cert.encode())))?;
        Ok(())
    })?;
    Ok(ServerKey { key, cert })
}

/// The hashes of the change chunks in automerge change bytes.
pub(crate) fn change_hashes(bytes: &[u8]) -> Vec<ChangeHash> {
    split_changes(bytes).into_iter().map(|(h, _)| h).collect()
}

/// A hex Ed25519 public key from a device.
pub(crate) fn parse_public_key(s: &str) -> Result<[u8; 32], AppError> {
    let b = hex::decode(s.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| {
            AppError::BadMessage("public_key must be 32 bytes of Ed25519 key, hex".into())
        })?;
    if !sanjin_core::sign::valid_public_key(&b) {
        return Err(AppError::BadMessage(
            "public_key is not a valid Ed25519 key".into(),
        ));
    }
    Ok(b)
}
