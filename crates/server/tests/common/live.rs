//! A real server on loopback (issue 10): `sanjin_server::spawn` with its self-signed certificate,
//! and requests sent over a TCP socket through rustls (ring), like a phone's or a browser's. A
//! [`super::Harness`] made by [`super::Harness::live`] sends every request this way.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use sanjin_server::{Config, Running, TlsMode, spawn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use super::Reply;

/// A running server and a TLS client that trusts its certificate.
pub struct Live {
    pub running: Running,
    connector: TlsConnector,
    addr: SocketAddr,
}

impl Live {
    /// Serves `data_dir` on `127.0.0.1:<free port>` over HTTPS (self-signed, in `DATA/tls/`).
    pub async fn start(data_dir: &Path) -> Live {
        let config = Config::new(
            data_dir,
            "127.0.0.1:0".parse().unwrap(),
            TlsMode::SelfSigned { hostnames: vec![] },
        );
        let running = spawn(config).await.unwrap();
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(running.certificate().unwrap()).unwrap())
            .unwrap();
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        let addr = running.addr();
        Live {
            running,
            connector: TlsConnector::from(Arc::new(config)),
            addr,
        }
    }

    /// One HTTP/1.1 request on a fresh TLS connection (`Connection: close`).
    pub async fn call(&self, req: Request<Body>) -> Reply {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let target = parts
            .uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string());
        let mut head = format!(
            "{} {target} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\nContent-Length: {}\r\n",
            parts.method,
            self.addr.port(),
            body.len()
        );
        for (k, v) in &parts.headers {
            head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap()));
        }
        head.push_str("\r\n");
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let mut s = self
            .connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&body).await.unwrap();
        s.flush().await.unwrap();
        let mut out = Vec::new();
        // A TLS peer may close without close_notify after `Connection: close`: keep what came.
        if let Err(e) = s.read_to_end(&mut out).await {
            assert!(!out.is_empty(), "no answer: {e}");
        }
        parse_response(&out)
    }
}

/// Status, headers and body (de-chunked) of an HTTP/1.1 response.
fn parse_response(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let mut headers = HeaderMap::new();
    for line in lines {
        let (k, v) = line.split_once(':').expect("a header line");
        headers.append(
            HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
            HeaderValue::from_str(v.trim()).unwrap(),
        );
    }
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|v| v.to_str().unwrap().contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status: StatusCode::from_u16(status).unwrap(),
        headers,
        body: Bytes::from(body),
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size");
        let size_text = String::from_utf8_lossy(&b[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        b = &b[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}
