//! What a device keeps from its server for bundles and meetings (issue 12), refreshed after
//! every successful sync (`flow::sync_then_photos`) and once at enrollment:
//!
//! - `POST /v1/trust`: the server's signed key directory (the public keys bundles are sealed
//!   to), its signed revocation list, the secrets of the device's group(s), and signed receipts
//!   for the records that reached the server through another device (`relayed_unreceipted`).
//!   **Every statement is verified with the server's key pinned at enrollment** before the store
//!   keeps it; a receipt makes its record 已送达 (`Store::put_receipts` acks the outbox) and is
//!   kept to pass on in the device's own bundles.
//! - `POST /v1/bundle`: the cargo the device carried for others (parts sealed to the server,
//!   which it cannot read), each marked delivered once the server examined it.

use sanjin_core::seal::BoxSecret;
use sanjin_core::sign::{DeviceCert, KeyDirectory, Receipt, Revocations};
use sanjin_store::Store;

use crate::{Client, Error, meta, unhex};

/// How many records one trust request asks receipts for.
const RECEIPTS_PER_REQUEST: usize = 256;
/// The largest trust answer read.
const MAX_TRUST_ANSWER: u64 = 4 << 20;
/// The largest answer to a bundle upload (a report per document).
const MAX_BUNDLE_ANSWER: u64 = 4 << 20;
/// The media type of a bundle part.
const BUNDLE_CONTENT_TYPE: &str = "application/x-sanjin-bundle";

/// What [`refresh`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TrustSummary {
    /// Group secrets kept (every epoch the server handed out).
    pub group_secrets: usize,
    /// The revocation list's number now held.
    pub revocations_seq: u64,
    /// Receipts verified and applied (records now 已送达).
    pub receipts: usize,
    /// Cargo parts handed to the server.
    pub cargo_delivered: usize,
    /// Cargo parts the server refused as damaged or forged (dropped: no retry can mend them).
    pub cargo_refused: usize,
    /// Issue 13: the server re-issued this device's certificate (its member moved to another
    /// group); the store now holds it, and the role and group it names.
    pub cert_renewed: bool,
}

/// The device's certificate from a trust answer, if it is another than the one the store
/// holds: verified with the pinned server key, for this device and its signing key.
fn renewed_cert(store: &Store, hex: &str, server: &[u8; 32]) -> Result<Option<DeviceCert>, Error> {
    let cert = decode_hex(hex, DeviceCert::decode)?;
    cert.verify(server).map_err(|_| {
        Error::Protocol("the device certificate is not signed by the pinned server key")
    })?;
    let me = &store.identity().device;
    if cert.device != *me
        || store
            .signing_key()
            .is_none_or(|k| k.public() != cert.public_key)
    {
        return Err(Error::Protocol(
            "the server sent a certificate for another device or key",
        ));
    }
    let held = store.cert(me)?;
    if held.as_ref().is_some_and(|h| h.encode() == cert.encode()) {
        return Ok(None);
    }
    Ok(Some(cert))
}

#[derive(serde::Deserialize)]
struct GroupSecretAnswer {
    group: String,
    epoch: u32,
    secret: String,
}

#[derive(serde::Deserialize)]
struct TrustAnswer {
    key_directory: String,
    revocations: String,
    #[serde(default)]
    group_secrets: Vec<GroupSecretAnswer>,
    #[serde(default)]
    receipts: Vec<String>,
    /// Issue 13: this device's certificate as the server holds it now.
    #[serde(default)]
    cert: Option<String>,
}

#[derive(serde::Deserialize)]
struct PartRefusal {
    code: String,
}

#[derive(serde::Deserialize)]
struct BundleAnswer {
    #[serde(default)]
    refused: Option<PartRefusal>,
    #[serde(default)]
    receipts: Vec<String>,
}

/// The server's public key, from the certificate pinned at enrollment (`None`: a store
/// enrolled before signatures that has not registered a key yet).
pub fn server_public(store: &Store) -> Result<Option<[u8; 32]>, Error> {
    let Some(h) = store.meta(meta::SERVER_CERT)? else {
        return Ok(None);
    };
    let b = unhex(&h).ok_or(Error::Protocol("the pinned server certificate is damaged"))?;
    let cert = DeviceCert::decode(&b).map_err(|e| Error::Decode(e.to_string()))?;
    Ok(Some(cert.public_key))
}

fn decode_hex<T, E: std::fmt::Display>(
    h: &str,
    decode: impl FnOnce(&[u8]) -> Result<T, E>,
) -> Result<T, Error> {
    let b = unhex(h).ok_or(Error::Protocol("a signed statement is not hexadecimal"))?;
    decode(&b).map_err(|e| Error::Decode(e.to_string()))
}

/// Receipts (hex) verified with the server's key; one that does not verify fails the whole
/// answer (a server never sends one).
fn verified_receipts(hexes: &[String], server: &[u8; 32]) -> Result<Vec<Receipt>, Error> {
    hexes
        .iter()
        .map(|h| {
            let r = decode_hex(h, Receipt::decode)?;
            r.verify(server)
                .map_err(|_| Error::Protocol("a receipt is not signed by the pinned server key"))?;
            Ok(r)
        })
        .collect()
}

/// Fetches and keeps the server's key directory, revocation list, the device's group secrets
/// and the receipts of relayed records, then hands the store's undelivered cargo to the server.
/// Nothing (an empty summary) for a store without a pinned server key.
pub fn refresh(store: &mut Store, client: &Client) -> Result<TrustSummary, Error> {
    let mut out = TrustSummary::default();
    let Some(server) = server_public(store)? else {
        return Ok(out);
    };
    let wanted = store.relayed_unreceipted()?;
    let mut chunks: Vec<&[String]> = wanted.chunks(RECEIPTS_PER_REQUEST).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    for (i, ids) in chunks.into_iter().enumerate() {
        let answer = client.post_json_up_to(
            "/v1/trust",
            &serde_json::json!({ "receipts_for": ids }),
            MAX_TRUST_ANSWER,
        )?;
        let a: TrustAnswer =
            serde_json::from_value(answer).map_err(|e| Error::Decode(e.to_string()))?;
        let receipts = verified_receipts(&a.receipts, &server)?;
        if i == 0 {
            let kd = decode_hex(&a.key_directory, KeyDirectory::decode)?;
            kd.verify(&server).map_err(|_| {
                Error::Protocol("the key directory is not signed by the pinned server key")
            })?;
            let rv = decode_hex(&a.revocations, Revocations::decode)?;
            rv.verify(&server).map_err(|_| {
                Error::Protocol("the revocation list is not signed by the pinned server key")
            })?;
            let mut secrets = Vec::new();
            for g in &a.group_secrets {
                let secret = BoxSecret::from_hex(&g.secret)
                    .ok_or(Error::Protocol("a group secret is not 32 bytes of hex"))?;
                // The current epoch's secret must be the one the signed directory names.
                if let Some(k) = kd.group(&g.group)
                    && k.epoch == g.epoch
                    && k.public != secret.public()
                {
                    return Err(Error::Protocol(
                        "a group secret does not match the signed key directory",
                    ));
                }
                secrets.push((g.group.clone(), g.epoch, secret));
            }
            out.revocations_seq = rv.seq;
            out.group_secrets = secrets.len();
            let renewed = match &a.cert {
                Some(h) => renewed_cert(store, h, &server)?,
                None => None,
            };
            out.cert_renewed = renewed.is_some();
            store.batch(|s| -> Result<(), Error> {
                s.put_key_directory(&kd)?;
                s.put_revocations(&rv)?;
                for (g, e, secret) in &secrets {
                    s.put_box_secret(g, *e, secret)?;
                }
                // Issue 13: a certificate re-issued (the member moved to another group, or its
                // role changed): kept, with the role and group it names.
                if let Some(cert) = &renewed {
                    s.put_cert(cert)?;
                    s.set_meta(meta::ROLE, Some(&cert.role))?;
                    s.set_meta(meta::GROUP, cert.group.as_deref())?;
                }
                Ok(())
            })?;
        }
        if !receipts.is_empty() {
            out.receipts += store.put_receipts(&receipts)?;
        }
    }
    let (delivered, refused, receipts) = upload_cargo(store, client, &server)?;
    out.cargo_delivered = delivered;
    out.cargo_refused = refused;
    out.receipts += receipts;
    Ok(out)
}

/// Hands every undelivered cargo part to the server (`POST /v1/bundle`). A part the server
/// examined is delivered (imported, or refused as damaged or forged: no retry mends it) — except
/// one from a newer sanjin than the server, kept for after the server's upgrade. Returns
/// (delivered, refused, receipts applied).
fn upload_cargo(
    store: &mut Store,
    client: &Client,
    server: &[u8; 32],
) -> Result<(usize, usize, usize), Error> {
    let (mut delivered, mut refused, mut applied) = (0, 0, 0);
    for (id, bytes) in store.cargo()? {
        let answer =
            client.post_bytes("/v1/bundle", BUNDLE_CONTENT_TYPE, &bytes, MAX_BUNDLE_ANSWER)?;
        let a: BundleAnswer =
            serde_json::from_value(answer).map_err(|e| Error::Decode(e.to_string()))?;
        match &a.refused {
            Some(r) if r.code == "newer" => continue,
            Some(_) => refused += 1,
            None => delivered += 1,
        }
        let receipts = verified_receipts(&a.receipts, server)?;
        if !receipts.is_empty() {
            applied += store.put_receipts(&receipts)?;
        }
        store.cargo_delivered(id)?;
    }
    Ok((delivered, refused, applied))
}
