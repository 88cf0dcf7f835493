//! sanjin-client: the device side of sanjin's sync (docs/PROTOCOL.md), used by the `sanjin`
//! CLI now and by the phone bridge later.
//!
//! **Never** does it decide what to sync (that is `sanjin-sync`'s engine), write SQL (the
//! store's), or hold a lock or a thread across a member's wait: it carries out the engine's
//! effects over HTTPS and the store.
//!
//! Blocking: call it from a background thread. HTTPS by rustls (ring provider) with the webpki
//! roots, or with the server's own certificate pinned at enrollment; plain HTTP only on loopback.
//!
//! - [`enroll`] trades a one-time code for the device's credentials and keeps them, the server
//!   address and the pinned certificate in the device store's metadata.
//! - [`sync`] pushes the outbox in bounded batches and pulls the server's change log after the
//!   device's cursor — one round trip in the common case — and falls back to automerge's own
//!   sync protocol per document when the server says `resync`.
//!
//! - [`attach_photo`] puts a photo's reference and thumbnail into a record and its original into
//!   the blob outbox; [`upload_blobs`] sends the originals (resumable, per [`PhotoPolicy`]) and
//!   [`download_blob`] fetches one (resumable by HTTP range).
//!
//! Nothing is lost by an interrupted sync: the outbox drains only for what the server
//! acknowledged, and the cursor is written only after the changes it covers are applied.

mod blobs;
pub mod bundle;
mod error;
mod fallback;
mod flow;
mod http;
pub mod meet;
pub mod pin;
mod sigs;
mod sync;
#[cfg(test)]
mod tests;
pub mod trust;

pub use blobs::{
    AttachedPhoto, BlobOnServer, BlobOptions, BlobProgress, BlobSummary, DownloadSummary, Link,
    PhotoPolicy, PhotoSource, attach_photo, blob_on_server, download_blob, upload_blobs,
};
pub use error::Error;
pub use flow::{FlowError, FlowProgress, FlowStep, FlowSummary, sync_then_photos};
pub use http::{Client, Credentials, SYNC_CONTENT_TYPE, ServerUrl, Timeouts, parse_certificate};
pub use sanjin_core::protocol::RefusalCode;
#[cfg(feature = "fault-injection")]
pub use sync::sync_over_broken;
pub use sync::{Progress, SyncOptions, SyncSummary, Transport, sync, sync_over};
pub use trust::TrustSummary;

use sanjin_store::Store;

/// Keys of the device store's metadata used by the client.
pub mod meta {
    pub const SERVER: &str = "sync_server";
    pub const DEVICE_ID: &str = "sync_device_id";
    pub const SECRET: &str = "sync_secret";
    pub const MEMBER: &str = "sync_member";
    pub const ROLE: &str = "sync_role";
    pub const GROUP: &str = "sync_group";
    pub const DEVICE_NAME: &str = "sync_device_name";
    /// The pinned server certificate (PEM); absent: the webpki roots are trusted.
    pub const CA_PEM: &str = "sync_ca_pem";
    /// The server epoch the cursor belongs to (32 hex digits).
    pub const EPOCH: &str = "sync_epoch";
    /// The last change-log sequence number applied.
    pub const CURSOR: &str = "sync_cursor";
    /// When the last sync finished (UTC milliseconds).
    pub const LAST_SYNC: &str = "sync_last_at";
    /// Hex of the server's certificate (issue 10): its key signs device certificates and the
    /// server's own changes. Pinned at enrollment.
    pub const SERVER_CERT: &str = "sync_server_cert";
}

/// What a device is enrolled as, on which server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Enrollment {
    pub server: String,
    pub device_id: String,
    pub device_name: String,
    pub member: String,
    /// `member`, `leader`, `staff` or `admin`.
    pub role: String,
    pub group: Option<String>,
    /// Whether a server certificate is pinned (the only trusted root).
    pub pinned_certificate: bool,
}

/// The store's enrollment, if it has one.
pub fn enrollment(store: &Store) -> Result<Option<Enrollment>, Error> {
    let Some(server) = store.meta(meta::SERVER)? else {
        return Ok(None);
    };
    let get = |k: &str| -> Result<String, Error> { Ok(store.meta(k)?.unwrap_or_default()) };
    Ok(Some(Enrollment {
        server,
        device_id: get(meta::DEVICE_ID)?,
        device_name: get(meta::DEVICE_NAME)?,
        member: get(meta::MEMBER)?,
        role: get(meta::ROLE)?,
        group: store.meta(meta::GROUP)?,
        pinned_certificate: store.meta(meta::CA_PEM)?.is_some(),
    }))
}

/// A client for the store's server with its credentials and pinned certificate.
pub fn client_for(store: &Store, timeouts: Timeouts) -> Result<Client, Error> {
    let (Some(server), Some(device_id), Some(secret)) = (
        store.meta(meta::SERVER)?,
        store.meta(meta::DEVICE_ID)?,
        store.meta(meta::SECRET)?,
    ) else {
        return Err(Error::NotEnrolled);
    };
    let url = ServerUrl::parse(&server)?;
    let ca = store.meta(meta::CA_PEM)?;
    Client::new(
        url,
        Some(&Credentials { device_id, secret }),
        ca.as_deref(),
        timeouts,
    )
}

#[derive(serde::Deserialize)]
struct EnrollAnswer {
    device_id: String,
    secret: String,
    member: String,
    role: String,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    actor: Option<String>,
    server_epoch: String,
    #[serde(default)]
    cert: Option<String>,
    #[serde(default)]
    server_cert: String,
}

#[derive(serde::Deserialize)]
struct KeyAnswer {
    cert: String,
    server_cert: String,
}

/// The device's signing key: the store's, or a new one drawn from the OS (issue 10).
fn device_key(store: &Store) -> sanjin_core::sign::DeviceKey {
    if let Some(k) = store.signing_key() {
        return k.clone();
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the OS provides randomness");
    sanjin_core::sign::DeviceKey::from_seed(seed)
}

/// Checks the certificates the server issued and keeps them with the key, then signs what the
/// device recorded before it had a key. Inside the caller's transaction.
fn keep_certs(
    s: &mut Store,
    key: &sanjin_core::sign::DeviceKey,
    cert_hex: &str,
    server_cert_hex: &str,
) -> Result<(), Error> {
    use sanjin_core::sign::DeviceCert;
    let decode = |h: &str| -> Result<DeviceCert, Error> {
        let b = unhex(h).ok_or(Error::Protocol("a certificate is not hexadecimal"))?;
        DeviceCert::decode(&b).map_err(|e| Error::Decode(e.to_string()))
    };
    let server = decode(server_cert_hex)?;
    server
        .verify(&server.public_key)
        .map_err(|_| Error::Protocol("the server's certificate is not self-signed"))?;
    let cert = decode(cert_hex)?;
    cert.verify(&server.public_key)
        .map_err(|_| Error::Protocol("the device certificate is not signed by the server"))?;
    if cert.public_key != key.public() || cert.device != s.identity().device {
        return Err(Error::Protocol(
            "the server certified another key or device than this one",
        ));
    }
    s.set_meta(meta::SERVER_CERT, Some(server_cert_hex))?;
    s.put_cert(&server)?;
    s.put_cert(&cert)?;
    s.set_signing_key(key)?;
    s.sign_own_unsigned()?;
    Ok(())
}

/// A store enrolled before signatures gets its key now: made on the device, registered with the
/// server (authenticated by the sync secret), certified. Nothing when it has one.
pub(crate) fn ensure_key(store: &mut Store, client: &Client) -> Result<(), Error> {
    if store.signing_key().is_some() && store.meta(meta::SERVER_CERT)?.is_some() {
        return Ok(());
    }
    let key = device_key(store);
    let answer = client.post_json(
        "/v1/device/key",
        &serde_json::json!({ "public_key": hex(&key.public()) }),
    )?;
    let a: KeyAnswer = serde_json::from_value(answer).map_err(|e| Error::Decode(e.to_string()))?;
    store.batch(|s| keep_certs(s, &key, &a.cert, &a.server_cert))
}

/// Enrolls the store's device with `server` using a one-time `code`: `POST /v1/enroll`, then
/// keeps the server address, the credentials, the member's role and group, and the pinned
/// certificate (`ca_pem`, the server's self-signed certificate) in the store's metadata, in one
/// transaction.
///
/// The device keeps its own id and actor id (chosen at `device init`); the server registers
/// them. A store that already synced with a server of another epoch keeps its old epoch, so its
/// first sync runs the per-document fallback and the new server gets everything it lacks.
pub fn enroll(
    store: &mut Store,
    server: &str,
    code: &str,
    ca_pem: Option<&str>,
    device_name: &str,
) -> Result<Enrollment, Error> {
    let url = ServerUrl::parse(server)?;
    let client = Client::new(url.clone(), None, ca_pem, Timeouts::default())?;
    let id = store.identity().clone();
    let key = device_key(store);
    let answer = client.post_json(
        "/v1/enroll",
        &serde_json::json!({
            "code": code.trim(),
            "device_name": device_name,
            "device_id": id.device,
            "actor": hex(&id.actor),
            "member": id.member,
            "public_key": hex(&key.public()),
        }),
    )?;
    let a: EnrollAnswer =
        serde_json::from_value(answer).map_err(|e| Error::Decode(e.to_string()))?;
    if a.member != id.member {
        return Err(Error::WrongMember);
    }
    if a.device_id != id.device {
        return Err(Error::Protocol(
            "the server registered another device id than this device's",
        ));
    }
    if a.actor
        .as_deref()
        .is_some_and(|x| !x.eq_ignore_ascii_case(&hex(&id.actor)))
    {
        return Err(Error::Protocol(
            "the server registered another actor id than this device's",
        ));
    }
    let epoch = unhex16(&a.server_epoch).ok_or(Error::Protocol("server epoch is not 16 bytes"))?;

    let previous_server = store.meta(meta::SERVER)?;
    let had_epoch = store.meta(meta::EPOCH)?;
    store.batch(|s| -> Result<(), Error> {
        s.set_meta(meta::SERVER, Some(url.as_str()))?;
        s.set_meta(meta::DEVICE_ID, Some(&a.device_id))?;
        s.set_meta(meta::SECRET, Some(&a.secret))?;
        s.set_meta(meta::MEMBER, Some(&a.member))?;
        s.set_meta(meta::ROLE, Some(&a.role))?;
        s.set_meta(meta::GROUP, a.group.as_deref())?;
        s.set_meta(meta::DEVICE_NAME, Some(device_name))?;
        s.set_meta(meta::CA_PEM, ca_pem)?;
        if had_epoch.is_none() {
            // A device that never synced starts at the head of this server's log at cursor 0:
            // its first sync is one round trip, no fallback.
            s.set_meta(meta::EPOCH, Some(&hex(&epoch)))?;
            s.set_meta(meta::CURSOR, Some("0"))?;
        }
        if previous_server.as_deref() != Some(url.as_str()) {
            fallback::forget_states(s)?;
        }
        if let Some(cert) = &a.cert {
            keep_certs(s, &key, cert, &a.server_cert)?;
        }
        Ok(())
    })?;
    // Issue 12: the keys bundles are sealed to, once now, so that a phone enrolled in town can
    // export a bundle in the village before it ever synced. Best effort: the enrollment holds,
    // and the next sync fetches them again.
    if let Ok(c) = client_for(store, Timeouts::default()) {
        let _ = trust::refresh(store, &c);
    }
    Ok(Enrollment {
        server: url.to_string(),
        device_id: a.device_id,
        device_name: device_name.to_string(),
        member: a.member,
        role: a.role,
        group: a.group,
        pinned_certificate: ca_pem.is_some(),
    })
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

pub(crate) fn unhex16(s: &str) -> Option<[u8; 16]> {
    let s = s.trim();
    if s.len() != 32 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}
