//! The client's errors. Messages name no person and no record content: they are for logs; the
//! CLI and the apps show their own words for each variant.

/// What went wrong while enrolling or syncing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store has no server credentials: enroll first.
    #[error("this device is not enrolled with a sync server")]
    NotEnrolled,
    #[error("bad server address: {0}")]
    BadUrl(&'static str),
    /// `http://` for a host that is not this machine.
    #[error("plain http:// is allowed only for a server on this machine (loopback)")]
    InsecureUrl,
    #[error("the certificate is not an X.509 certificate in PEM form")]
    BadCertificate,
    #[error("not a valid record id")]
    BadRecordId,
    /// The enrollment code was issued for another member than the store's.
    #[error("the enrollment code is for another member than this device store's")]
    WrongMember,
    /// The server could not be reached, or the connection broke. Retrying later is safe.
    #[error("network: {0}")]
    Network(String),
    /// A timeout (connect, a stalled link, or the whole exchange). Retrying later is safe.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The TLS handshake failed: the certificate is not trusted or does not match the name.
    #[error("TLS: {0}")]
    Tls(String),
    /// The server showed another public key than the one pinned at enrollment: another server
    /// behind this address, or the server's key pair was replaced (issue 12).
    #[error("the server's public key is not the one pinned at enrollment")]
    ServerKeyMismatch,
    /// The server answered with an error status; `code` is its JSON `error` field (may be empty).
    #[error("the server answered HTTP {status} {code}")]
    Http { status: u16, code: String },
    /// The answer could not be decoded.
    #[error("the server's answer could not be read: {0}")]
    Decode(String),
    /// The answer was well-formed but not what the protocol allows.
    #[error("protocol: {0}")]
    Protocol(&'static str),
    /// The caller's cancel flag was set; everything applied until then is saved.
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Store(#[from] sanjin_store::Error),
    /// The photo was refused or could not be processed (see its `zh()` for members).
    #[error(transparent)]
    Media(sanjin_media::MediaError),
    /// A local file (a photo to attach, a download's destination) could not be used.
    #[error("file: {0}")]
    Io(String),
}

impl Error {
    /// Whether the same request may be sent again (with the same request id).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Network(_) | Error::Timeout(_) => true,
            Error::Http { status, .. } => matches!(status, 502..=504),
            _ => false,
        }
    }

    /// Whether the server refused the device's credentials (revoked, or never valid).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Error::Http { status: 401, .. })
    }

    pub(crate) fn from_transport(e: ureq::Error) -> Error {
        use ureq::Error as U;
        match e {
            U::Timeout(t) => Error::Timeout(t.to_string()),
            U::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                Error::Timeout(io.to_string())
            }
            // A connection that ended mid-exchange (a cut link; rustls says "peer closed
            // connection without sending TLS close_notify") is the network, not trust: retry.
            U::Io(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::BrokenPipe
                ) =>
            {
                Error::Network(io.to_string())
            }
            U::Io(io) => {
                // rustls reports handshake failures through io errors wrapping rustls::Error.
                if io
                    .get_ref()
                    .is_some_and(|inner| inner.downcast_ref::<ureq::Error>().is_some())
                {
                    return Error::from_transport(ureq::Error::from(io));
                }
                if io.to_string().contains("certificate") || io.to_string().contains("TLS") {
                    return Error::Tls(io.to_string());
                }
                Error::Network(io.to_string())
            }
            U::Rustls(e) if crate::pin::is_key_mismatch(&e) => Error::ServerKeyMismatch,
            U::Rustls(e) => Error::Tls(e.to_string()),
            U::Tls(e) => Error::Tls(e.to_string()),
            U::Pem(_) => Error::BadCertificate,
            U::HostNotFound => Error::Network("host not found".into()),
            U::ConnectionFailed => Error::Network("connection failed".into()),
            U::BodyExceedsLimit(n) => Error::Decode(format!("answer larger than {n} bytes")),
            U::BadUri(_) => Error::BadUrl("not a URL such as https://host:port"),
            U::Protocol(e) => Error::Network(format!("HTTP: {e}")),
            other => Error::Network(other.to_string()),
        }
    }
}
