//! The HTTP transport: one blocking `ureq` agent per client, rustls with the ring provider,
//! webpki roots by default or the pinned public key of the server's certificate (`pin.rs`),
//! bounded timeouts.

use std::net::IpAddr;
use std::time::Duration;

use ureq::Agent;
use ureq::http::Uri;
use ureq::tls::{RootCerts, TlsConfig, TlsProvider};
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{ConnectProxyConnector, Connector, TcpConnector};

use crate::Error;
pub use crate::pin::parse_certificate;

/// The media type of sync frames.
pub const SYNC_CONTENT_TYPE: &str = "application/x-sanjin-sync";
/// The largest response body read: the protocol's bound on a decoded payload.
const MAX_BODY: u64 = sanjin_core::protocol::MAX_PAYLOAD as u64 + 64;
/// The largest JSON body read (enrollment answers, errors, health).
const MAX_JSON: u64 = 64 << 10;

/// A device's credentials on one server.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub device_id: String,
    pub secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("device_id", &self.device_id)
            .field("secret", &"…")
            .finish()
    }
}

/// Bounds on how long one HTTP exchange may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// DNS, TCP and the TLS handshake.
    pub connect: Duration,
    /// The longest silence while sending or receiving (a stalled link).
    pub idle: Duration,
    /// The whole exchange, request body to the last byte of the answer.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(20),
            idle: Duration::from_secs(30),
            total: Duration::from_secs(120),
        }
    }
}

/// A checked server base URL: `https://…`, or `http://…` on a loopback host only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    base: String,
    loopback: bool,
}

impl ServerUrl {
    pub fn parse(s: &str) -> Result<ServerUrl, Error> {
        let s = s.trim();
        let uri: Uri = s
            .parse()
            .map_err(|_| Error::BadUrl("not a URL such as https://host:port"))?;
        let scheme = uri
            .scheme_str()
            .ok_or(Error::BadUrl("the address must start with https://"))?;
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or(Error::BadUrl("no host name"))?;
        if uri.query().is_some() || s.contains('#') {
            return Err(Error::BadUrl("no query or fragment allowed"));
        }
        let loopback = is_loopback(host);
        match scheme {
            "https" => {}
            "http" if loopback => {}
            "http" => return Err(Error::InsecureUrl),
            _ => return Err(Error::BadUrl("the address must start with https://")),
        }
        Ok(ServerUrl {
            base: s.trim_end_matches('/').to_string(),
            loopback,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.base
    }

    pub(crate) fn join(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl std::fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.base)
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A blocking client for one sync server.
pub struct Client {
    url: ServerUrl,
    auth: Option<String>,
    agent: Agent,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url.as_str())
            .field("authenticated", &self.auth.is_some())
            .finish()
    }
}

impl Client {
    /// A client for `url`. With `ca_pem` (a server's self-signed certificate, given at
    /// enrollment), that certificate's public key is the only trust: the server must prove it
    /// holds that key, whatever names its current certificate carries (`pin.rs`). Otherwise the
    /// webpki roots are used.
    pub fn new(
        url: ServerUrl,
        credentials: Option<&Credentials>,
        ca_pem: Option<&str>,
        timeouts: Timeouts,
    ) -> Result<Client, Error> {
        let pinned = ca_pem.map(crate::pin::PinnedTls::new).transpose()?;
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(RootCerts::WebPki)
            .build();
        let mut config = Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("sanjin/", env!("CARGO_PKG_VERSION")))
            .accept_encoding("identity")
            .timeout_connect(Some(timeouts.connect))
            .timeout_resolve(Some(timeouts.connect))
            .timeout_per_read(Some(timeouts.idle))
            .timeout_per_write(Some(timeouts.idle))
            .timeout_global(Some(timeouts.total));
        if url.loopback {
            // A proxy from the environment never applies to this machine.
            config = config.proxy(None);
        }
        let agent = match pinned {
            // ureq's own chain (an HTTP CONNECT proxy from the environment, TCP), then TLS
            // pinned to the server's key instead of ureq's rustls connector.
            Some(tls) => Agent::with_parts(
                config.build(),
                ().chain(ConnectProxyConnector::default())
                    .chain(TcpConnector::default())
                    .chain(tls),
                DefaultResolver::default(),
            ),
            None => config.build().into(),
        };
        Ok(Client {
            auth: credentials.map(|c| format!("Bearer {}.{}", c.device_id, c.secret)),
            url,
            agent,
        })
    }

    pub fn url(&self) -> &ServerUrl {
        &self.url
    }

    /// The agent and the `Authorization` value, for the blob transfers (`blobs.rs`).
    pub(crate) fn parts(&self) -> Result<(&Agent, &str), Error> {
        Ok((&self.agent, self.auth.as_deref().ok_or(Error::NotEnrolled)?))
    }

    /// `GET /health`.
    pub fn health(&self) -> Result<serde_json::Value, Error> {
        let mut resp = self
            .agent
            .get(self.url.join("/health"))
            .call()
            .map_err(Error::from_transport)?;
        let body = read_limited(&mut resp, MAX_JSON)?;
        check_status(resp.status().as_u16(), &body)?;
        serde_json::from_slice(&body).map_err(|e| Error::Decode(e.to_string()))
    }

    /// `POST path` with a JSON body, answering JSON.
    /// `POST` of a JSON body (enrollment, key registration); the answer as JSON.
    pub fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, Error> {
        let bytes = serde_json::to_vec(body).expect("JSON values serialize");
        let mut req = self
            .agent
            .post(self.url.join(path))
            .content_type("application/json");
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        let mut resp = req.send(&bytes[..]).map_err(Error::from_transport)?;
        let body = read_limited(&mut resp, MAX_JSON)?;
        check_status(resp.status().as_u16(), &body)?;
        serde_json::from_slice(&body).map_err(|e| Error::Decode(e.to_string()))
    }

    /// `POST` of a JSON body whose JSON answer may be up to `limit` bytes (issue 12: the trust
    /// answer with its receipts).
    pub(crate) fn post_json_up_to(
        &self,
        path: &str,
        body: &serde_json::Value,
        limit: u64,
    ) -> Result<serde_json::Value, Error> {
        let bytes = serde_json::to_vec(body).expect("JSON values serialize");
        self.post_bytes(path, "application/json", &bytes, limit)
    }

    /// `POST` of raw bytes (issue 12: a bundle part) with the device's credentials; the JSON
    /// answer, at most `limit` bytes.
    pub(crate) fn post_bytes(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
        limit: u64,
    ) -> Result<serde_json::Value, Error> {
        let auth = self.auth.as_deref().ok_or(Error::NotEnrolled)?;
        let mut resp = self
            .agent
            .post(self.url.join(path))
            .content_type(content_type)
            .header("Authorization", auth)
            .send(body)
            .map_err(Error::from_transport)?;
        let body = read_limited(&mut resp, limit)?;
        check_status(resp.status().as_u16(), &body)?;
        serde_json::from_slice(&body).map_err(|e| Error::Decode(e.to_string()))
    }

    /// `POST /v1/sync` with an encoded request frame; the answer's bytes (a response frame).
    pub fn post_sync(&self, frame: &[u8]) -> Result<Vec<u8>, Error> {
        let auth = self.auth.as_deref().ok_or(Error::NotEnrolled)?;
        let mut resp = self
            .agent
            .post(self.url.join("/v1/sync"))
            .content_type(SYNC_CONTENT_TYPE)
            .header("Authorization", auth)
            .send(frame)
            .map_err(Error::from_transport)?;
        let body = read_limited(&mut resp, MAX_BODY)?;
        check_status(resp.status().as_u16(), &body)?;
        Ok(body)
    }

    /// `GET /v1/records/{id}`: the server's saved document of a record in this device's scope.
    pub fn fetch_record(&self, id: &str) -> Result<Vec<u8>, Error> {
        let auth = self.auth.as_deref().ok_or(Error::NotEnrolled)?;
        if !sanjin_core::validate::is_id(id) {
            return Err(Error::BadRecordId);
        }
        let mut resp = self
            .agent
            .get(self.url.join(&format!("/v1/records/{id}")))
            .header("Authorization", auth)
            .call()
            .map_err(Error::from_transport)?;
        let body = read_limited(&mut resp, MAX_BODY)?;
        check_status(resp.status().as_u16(), &body)?;
        Ok(body)
    }
}

pub(crate) fn read_limited(
    resp: &mut ureq::http::Response<ureq::Body>,
    limit: u64,
) -> Result<Vec<u8>, Error> {
    resp.body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(Error::from_transport)
}

/// A 4xx/5xx answer becomes [`Error::Http`] with the server's JSON error code.
pub(crate) fn check_status(status: u16, body: &[u8]) -> Result<(), Error> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let code = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_string))
        .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_default();
    Err(Error::Http { status, code })
}
