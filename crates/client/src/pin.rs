//! Pinning the server's public key (issue 12). A device enrolled with a server's self-signed
//! certificate trusts that certificate's **public key** (its DER SubjectPublicKeyInfo), not the
//! certificate: a server that re-issues its certificate for new host names with the same key
//! pair (`sanjin serve --hostname`) is still the same server, and enrolled devices keep
//! syncing. A server with another key pair behind the same address is refused
//! ([`Error::ServerKeyMismatch`]).
//!
//! The TLS handshake itself proves the server holds the pinned key (the handshake's signature
//! is verified with it), so the certificate's names and dates are not what is trusted and are
//! not checked. Stores enrolled before this change keep the PEM they were given; the key is
//! derived from it at every connection.
//!
//! ureq has no setting for a custom certificate verifier, so a pinned client gets its own TLS
//! connector (rustls with ring, as the rest of the workspace) at the end of ureq's TCP chain.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, OtherError};
use rustls::{SignatureScheme, StreamOwned};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

use crate::Error;

/// Checks that `pem` holds an X.509 certificate in PEM form.
pub fn parse_certificate(pem: &str) -> Result<ureq::tls::Certificate<'static>, Error> {
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(Error::BadCertificate);
    }
    ureq::tls::Certificate::from_pem(pem.as_bytes()).map_err(|_| Error::BadCertificate)
}

/// The server's public key (DER SubjectPublicKeyInfo) of the certificate in `pem`.
pub fn public_key_of(pem: &str) -> Result<Vec<u8>, Error> {
    let cert = parse_certificate(pem)?;
    let der = CertificateDer::from(cert.der().to_vec());
    let parsed = webpki::EndEntityCert::try_from(&der).map_err(|_| Error::BadCertificate)?;
    Ok(parsed.subject_public_key_info().as_ref().to_vec())
}

/// The verifier's error when the server shows another key than the pinned one.
#[derive(Debug)]
pub(crate) struct KeyMismatch;

impl std::fmt::Display for KeyMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the server's public key is not the one pinned at enrollment")
    }
}

impl std::error::Error for KeyMismatch {}

/// Whether a rustls error is [`KeyMismatch`].
pub(crate) fn is_key_mismatch(e: &rustls::Error) -> bool {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
            inner.downcast_ref::<KeyMismatch>().is_some()
        }
        _ => false,
    }
}

/// Accepts exactly the server certificates that carry the pinned public key.
#[derive(Debug)]
struct KeyPin {
    spki: Vec<u8>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for KeyPin {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if cert.subject_public_key_info().as_ref() != self.spki.as_slice() {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(KeyMismatch)),
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    // The handshake's signature is checked with the key of the certificate accepted above,
    // i.e. the pinned key: the server proves it holds the private key.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
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

/// The TLS connector of a pinned client.
#[derive(Debug)]
pub(crate) struct PinnedTls {
    config: Arc<ClientConfig>,
}

impl PinnedTls {
    pub(crate) fn new(pem: &str) -> Result<PinnedTls, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = KeyPin {
            spki: public_key_of(pem)?,
            provider: provider.clone(),
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(PinnedTls {
            config: Arc::new(config),
        })
    }
}

impl<In: Transport> Connector<In> for PinnedTls {
    type Out = Either<In, PinnedTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details
            .uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| ureq::Error::Tls("invalid host name"))?;
        let mut conn = ClientConnection::new(self.config.clone(), name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        if let Err(e) = conn.complete_io(&mut sock) {
            // A verification failure comes back as an io error wrapping the rustls error.
            let rustls_error = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .cloned();
            return Err(match rustls_error {
                Some(r) => ureq::Error::Rustls(r),
                None => ureq::Error::from(e),
            });
        }
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(PinnedTransport {
            buffers,
            stream: StreamOwned { conn, sock },
        })))
    }
}

/// A TLS connection to the pinned server (as ureq's own rustls transport).
pub(crate) struct PinnedTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl std::fmt::Debug for PinnedTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinnedTransport").finish_non_exhaustive()
    }
}

impl Transport for PinnedTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
