//! The session's TLS: a self-signed certificate made for one session (rcgen), TLS 1.3 only with
//! rustls' ring provider, and a joiner's verifier that pins the certificate's public key (the
//! QR's fingerprint) or, with the six-digit code, lets the handshake finish so that the SPAKE2
//! key confirms the fingerprint afterwards. Either way the server must prove possession of the
//! certificate's key in the handshake (its TLS 1.3 signature is verified).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use super::MeetError;

/// The name in the session certificate and the joiner's SNI (never an address).
pub const SERVER_NAME: &str = "sanjin-meet.local";
/// The TLS exporter label binding the code confirmation and the device proofs to this channel.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-sanjin-meet-1";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// SHA-256 of a certificate's SubjectPublicKeyInfo (what the QR carries).
pub fn spki_sha256(cert: &CertificateDer<'_>) -> Result<[u8; 32], MeetError> {
    let ee = webpki::EndEntityCert::try_from(cert)
        .map_err(|_| MeetError::Protocol("the other phone's TLS certificate is unreadable"))?;
    Ok(Sha256::digest(ee.subject_public_key_info().as_ref()).into())
}

/// A session's certificate and the server side's configuration.
pub struct SessionTls {
    pub config: Arc<rustls::ServerConfig>,
    pub fingerprint: [u8; 32],
}

impl SessionTls {
    /// A fresh key pair and self-signed certificate, for this session only.
    pub fn new() -> Result<SessionTls, MeetError> {
        let ck = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string()])
            .map_err(|e| MeetError::Tls(e.to_string()))?;
        let der = CertificateDer::from(ck.cert.der().to_vec());
        let fingerprint = spki_sha256(&der)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| MeetError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![der], key)
            .map_err(|e| MeetError::Tls(e.to_string()))?;
        Ok(SessionTls {
            config: Arc::new(config),
            fingerprint,
        })
    }
}

/// The joiner's verifier: `pin` set (QR) → the certificate's public key must hash to it;
/// unset (code) → any certificate, confirmed later by the SPAKE2 key.
#[derive(Debug)]
struct Pinned {
    pin: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = spki_sha256(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        match self.pin {
            Some(pin) if !constant_eq(&pin, &seen) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // TLS 1.3 only.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The joiner's configuration, pinned to `pin` or confirmed later (see [`Pinned`]).
pub fn client_config(pin: Option<[u8; 32]>) -> Result<Arc<rustls::ClientConfig>, MeetError> {
    let provider = provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| MeetError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { pin, provider }))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Constant-time equality of two byte strings (different lengths: false).
pub fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
