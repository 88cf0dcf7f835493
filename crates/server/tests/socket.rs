//! The server on a real socket: HTTPS with the self-signed certificate (a rustls client with
//! ring that trusts it), plain HTTP refused off loopback, graceful shutdown.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use sanjin_core::protocol::SyncResponse;
use sanjin_server::{Config, EnrollRequest, Enrollment, Error, TlsMode, spawn};
use tempfile::TempDir;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// One HTTP/1.1 request on a fresh connection (`Connection: close`): status and body.
async fn http(
    mut s: impl AsyncRead + AsyncWrite + Unpin,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    s.flush().await?;
    let mut out = Vec::new();
    // A TLS peer may close without close_notify after `Connection: close`: keep what came.
    if let Err(e) = s.read_to_end(&mut out).await
        && out.is_empty()
    {
        return Err(e);
    }
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP head"))?;
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    Ok((status, out[split + 4..].to_vec()))
}

fn client_trusting(cert_pem: &std::path::Path) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(cert_pem).unwrap())
        .unwrap();
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn tls_call(
    connector: &TlsConnector,
    addr: SocketAddr,
    name: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let tcp = TcpStream::connect(addr).await?;
    let tls = connector
        .connect(ServerName::try_from(name.to_string()).unwrap(), tcp)
        .await?;
    http(tls, method, path, headers, body).await
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[tokio::test]
async fn https_with_the_self_signed_certificate() {
    let dir = TempDir::new().unwrap();
    let data_dir = dir.path().join("data");
    {
        // The directory and a member, as an admin would set them up before the first start.
        let mut data = sanjin_server::ServerData::open(&data_dir).unwrap();
        data.import_directory(&small_directory(dir.path())).unwrap();
    }
    let config = Config::new(
        &data_dir,
        loopback(),
        TlsMode::SelfSigned {
            hostnames: vec!["sanjin.test".into()],
        },
    );
    let running = spawn(config.clone()).await.unwrap();
    let addr = running.addr();
    assert_ne!(addr.port(), 0);
    assert_eq!(running.url(), format!("https://{addr}"));
    let cert = running.certificate().unwrap().to_path_buf();
    assert_eq!(cert, data_dir.join("tls").join("cert.pem"));
    let pem = std::fs::read(&cert).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data_dir.join("tls/key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key is private");
    }

    let tls = client_trusting(&cert);
    for name in ["localhost", "127.0.0.1", "sanjin.test"] {
        let (status, body) = tls_call(&tls, addr, name, "GET", "/health", &[], b"")
            .await
            .unwrap();
        assert_eq!(status, 200, "{name}");
        let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(j["status"], "ok");
    }
    // A client that does not trust the certificate does not get through.
    let webpki_only = TlsConnector::from(Arc::new(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth(),
    ));
    assert!(
        tls_call(&webpki_only, addr, "localhost", "GET", "/health", &[], b"")
            .await
            .is_err()
    );
    // Plain HTTP on the TLS port gets nothing useful.
    let plain = TcpStream::connect(addr).await.unwrap();
    assert!(
        http(plain, "GET", "/health", &[], b"")
            .await
            .map(|(s, _)| s != 200)
            .unwrap_or(true)
    );

    // Enroll and sync over HTTPS.
    let member = members_of("group-01")[0].clone();
    let code = running
        .state()
        .with_data(move |d| d.issue_code(&member).unwrap())
        .await
        .unwrap();
    let enroll = serde_json::to_vec(&EnrollRequest {
        code: code.code,
        device_name: "测试手机".into(),
        device_id: None,
        actor: None,
        member: None,
        public_key: None,
    })
    .unwrap();
    let (status, body) = tls_call(
        &tls,
        addr,
        "localhost",
        "POST",
        "/v1/enroll",
        &[("Content-Type", "application/json")],
        &enroll,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let creds: Enrollment = serde_json::from_slice(&body).unwrap();
    let req = sanjin_core::protocol::SyncRequest {
        request_id: random16(),
        max_response_bytes: 16 << 20,
        ..Default::default()
    };
    let bearer = format!("Bearer {}.{}", creds.device_id, creds.secret);
    let (status, body) = tls_call(
        &tls,
        addr,
        "localhost",
        "POST",
        "/v1/sync",
        &[
            ("Authorization", &bearer),
            ("Content-Type", sanjin_server::SYNC_CONTENT_TYPE),
        ],
        &req.encode(),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let resp = SyncResponse::decode(&body).unwrap();
    assert_eq!(resp.changes.len(), small_directory_len());
    running.shutdown().await.unwrap();

    // A second start keeps the certificate (clients pinned it).
    let running = spawn(config).await.unwrap();
    assert_eq!(std::fs::read(running.certificate().unwrap()).unwrap(), pem);
    let (status, _) = tls_call(
        &client_trusting(&cert),
        running.addr(),
        "localhost",
        "GET",
        "/health",
        &[],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn https_with_given_certificate_files() {
    let dir = TempDir::new().unwrap();
    let (cert, key, made) =
        sanjin_server::ensure_self_signed(&dir.path().join("pki"), &[]).unwrap();
    assert!(made);
    let config = Config::new(
        dir.path().join("data"),
        loopback(),
        TlsMode::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
    );
    let running = spawn(config).await.unwrap();
    assert!(running.certificate().is_none());
    let (status, _) = tls_call(
        &client_trusting(&cert),
        running.addr(),
        "localhost",
        "GET",
        "/health",
        &[],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    running.shutdown().await.unwrap();

    // Files that are not a certificate and key are a clear error.
    let bad = Config::new(
        dir.path().join("data"),
        loopback(),
        TlsMode::Files {
            cert: key.clone(),
            key: cert.clone(),
        },
    );
    assert!(matches!(spawn(bad).await, Err(Error::Tls(_))));
}

#[tokio::test]
async fn plain_http_only_on_loopback() {
    let dir = TempDir::new().unwrap();
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.10:8443"] {
        let config = Config::new(
            dir.path().join("data"),
            addr.parse().unwrap(),
            TlsMode::Plain,
        );
        match spawn(config).await {
            Err(Error::PlainNotLoopback(a)) => assert_eq!(a.to_string(), addr),
            Err(e) => panic!("{addr}: {e}"),
            Ok(_) => panic!("{addr}: plain HTTP off loopback was allowed"),
        }
    }
    let running = spawn(Config::new(
        dir.path().join("data"),
        loopback(),
        TlsMode::Plain,
    ))
    .await
    .unwrap();
    assert!(running.url().starts_with("http://127.0.0.1:"));
    let tcp = TcpStream::connect(running.addr()).await.unwrap();
    let (status, _) = http(tcp, "GET", "/health", &[], b"").await.unwrap();
    assert_eq!(status, 200);
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_syncs_and_refuses_new_ones() {
    let dir = TempDir::new().unwrap();
    let data_dir = dir.path().join("data");
    drop(open_data(dir.path(), Default::default()));
    let running = spawn(Config::new(&data_dir, loopback(), TlsMode::Plain))
        .await
        .unwrap();
    let addr = running.addr();
    let state = running.state().clone();
    let member = members_of("group-01")[0].clone();
    let code = state
        .with_data(move |d| d.issue_code(&member).unwrap())
        .await
        .unwrap();
    let body = serde_json::json!({"code": code.code, "device_name": "x"}).to_string();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (status, body) = http(
        tcp,
        "POST",
        "/v1/enroll",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let creds: Enrollment = serde_json::from_slice(&body).unwrap();
    let bearer = format!("Bearer {}.{}", creds.device_id, creds.secret);

    // Keep the database busy so that a sync is in flight when shutdown begins.
    let busy = {
        let state = state.clone();
        tokio::spawn(async move {
            state
                .with_data(|_| std::thread::sleep(Duration::from_millis(1500)))
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let in_flight = tokio::spawn(async move {
        let req = sanjin_core::protocol::SyncRequest {
            request_id: random16(),
            max_response_bytes: 16 << 20,
            ..Default::default()
        };
        let tcp = TcpStream::connect(addr).await.unwrap();
        http(
            tcp,
            "POST",
            "/v1/sync",
            &[("Authorization", &bearer)],
            &req.encode(),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let shutdown = tokio::spawn(running.shutdown());
    tokio::time::sleep(Duration::from_millis(100)).await;

    // A new request after shutdown began: refused (connection refused, or 503).
    if let Ok(tcp) = TcpStream::connect(addr).await
        && let Ok((status, _)) = http(tcp, "GET", "/health", &[], b"").await
    {
        assert_eq!(status, 503);
    }
    assert!(state.is_shutting_down());

    // The in-flight sync finished with a full answer.
    let (status, body) = in_flight.await.unwrap().unwrap();
    assert_eq!(status, 200);
    let resp = SyncResponse::decode(&body).unwrap();
    assert_eq!(resp.changes.len(), small_directory_len());
    busy.await.unwrap();
    shutdown.await.unwrap().unwrap();
    assert!(TcpStream::connect(addr).await.is_err());
}
