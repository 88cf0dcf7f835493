//! Running the server: binding, TLS (rustls with ring), graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;

use crate::data::ServerData;
use crate::error::{Error, Result, io_err};
use crate::model::Limits;
use crate::router::app;
use crate::state::AppState;

/// The folder, inside the data folder, of the self-signed certificate.
pub const TLS_DIR: &str = "tls";
pub const CERT_FILE: &str = "cert.pem";
pub const KEY_FILE: &str = "key.pem";

/// How the server speaks to its clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// HTTPS with a certificate chain and private key in PEM files.
    Files { cert: PathBuf, key: PathBuf },
    /// HTTPS with a self-signed certificate kept in `DATA/tls/` (for trials and LAN servers;
    /// devices pin its public key). SANs: localhost, 127.0.0.1, ::1 and `hostnames`; a kept
    /// certificate naming other hosts is re-issued with the same key pair.
    SelfSigned { hostnames: Vec<String> },
    /// Plain HTTP: only on a loopback address.
    Plain,
}

/// What `sanjin serve` runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// `127.0.0.1:0` picks a free port (see [`Running::addr`]).
    pub listen: SocketAddr,
    pub tls: TlsMode,
    pub limits: Limits,
    /// How long in-flight requests may take to finish once shutdown begins.
    pub shutdown_grace: Duration,
}

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>, listen: SocketAddr, tls: TlsMode) -> Config {
        Config {
            data_dir: data_dir.into(),
            listen,
            tls,
            limits: Limits::default(),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// A server running in this process.
pub struct Running {
    addr: SocketAddr,
    tls: bool,
    cert: Option<PathBuf>,
    cert_done: Option<SelfSignedCert>,
    state: AppState,
    handle: Handle<SocketAddr>,
    grace: Duration,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// The address bound (with the real port when `:0` was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` (or `http://` for plain HTTP).
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.addr
        )
    }

    /// The self-signed certificate clients should pin (`DATA/tls/cert.pem`), if that is the mode.
    pub fn certificate(&self) -> Option<&Path> {
        self.cert.as_deref()
    }

    /// What this start did with the self-signed certificate (made, kept, re-issued for new names).
    pub fn self_signed(&self) -> Option<&SelfSignedCert> {
        self.cert_done.as_ref()
    }

    /// The shared state (for tests that inspect the data while it runs).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Shuts down gracefully: new requests are refused (`503 shutting_down`, or the connection
    /// is refused), in-flight ones get the grace period to finish.
    pub async fn shutdown(self) -> Result<()> {
        self.state.begin_shutdown();
        self.handle.graceful_shutdown(Some(self.grace));
        self.join().await
    }

    /// Waits until the server stops by itself (it only does on an error).
    pub async fn join(self) -> Result<()> {
        match self.task.await {
            Ok(r) => r.map_err(|source| Error::Bind {
                addr: self.addr,
                source,
            }),
            Err(e) => Err(Error::Invalid(format!("the server task failed: {e}"))),
        }
    }
}

fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// What [`self_signed`] did with the certificate in `DATA/tls/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelfSignedCert {
    /// None was there: a key pair and a certificate were made.
    Made,
    /// The kept certificate already names exactly the requested hosts.
    Kept,
    /// The kept certificate named other hosts: a new certificate for `names` was signed with the
    /// **same key pair** (devices pin the server's public key, so enrolled devices keep working).
    Reissued {
        old: Vec<String>,
        names: Vec<String>,
    },
}

/// The names a self-signed certificate carries: localhost, 127.0.0.1, ::1 and `hostnames`
/// (IP addresses in their canonical text form, host names in lower case), without duplicates.
pub fn self_signed_names(hostnames: &[String]) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for h in hostnames {
        let h = h.trim().trim_start_matches('[').trim_end_matches(']');
        let h = match h.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => h.to_ascii_lowercase(),
        };
        if !h.is_empty() && !names.contains(&h) {
            names.push(h);
        }
    }
    names
}

/// The host names and IP addresses (subject alternative names) of a PEM certificate.
pub fn certificate_names(pem: &str) -> Result<Vec<String>> {
    let bad = |why: String| Error::Tls(format!("cannot read the certificate's names: {why}"));
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&pem.contents).map_err(|e| bad(e.to_string()))?;
    let mut names = Vec::new();
    if let Some(san) = cert
        .subject_alternative_name()
        .map_err(|e| bad(e.to_string()))?
    {
        for name in &san.value.general_names {
            use x509_parser::extensions::GeneralName;
            match name {
                GeneralName::DNSName(n) => names.push(n.to_ascii_lowercase()),
                GeneralName::IPAddress(b) => match <[u8; 4]>::try_from(*b) {
                    Ok(v4) => names.push(std::net::IpAddr::from(v4).to_string()),
                    Err(_) => match <[u8; 16]>::try_from(*b) {
                        Ok(v6) => names.push(std::net::IpAddr::from(v6).to_string()),
                        Err(_) => return Err(bad("an IP address of bad length".into())),
                    },
                },
                _ => {}
            }
        }
    }
    Ok(names)
}

/// A self-signed certificate for `names`, signed by `key`, with a fresh random serial number
/// (a re-issued certificate must not repeat its predecessor's issuer and serial).
fn issue(names: &[String], key: &rcgen::KeyPair) -> Result<String> {
    let tls = |e: rcgen::Error| Error::Tls(format!("cannot make a self-signed certificate: {e}"));
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(tls)?;
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial)
        .map_err(|e| Error::Tls(format!("no randomness for a serial number: {e}")))?;
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    Ok(params.self_signed(key).map_err(tls)?.pem())
}

/// Makes (once) or reuses the self-signed certificate in `dir`. Returns the certificate's path,
/// the key's path, and what was done. A kept certificate whose names differ from the requested
/// ones (localhost, 127.0.0.1, ::1 and `hostnames`) is re-issued for them with the kept key
/// pair, so that devices, which pin the server's public key, need not enroll again.
pub fn self_signed(dir: &Path, hostnames: &[String]) -> Result<(PathBuf, PathBuf, SelfSignedCert)> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    let names = self_signed_names(hostnames);
    if cert_path.exists() && key_path.exists() {
        let advice = format!("delete {} to make a new key pair", dir.display());
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(io_err(&cert_path))?;
        let old = certificate_names(&cert_pem)
            .map_err(|e| Error::Tls(format!("{}: {e}; {advice}", cert_path.display())))?;
        let same = |a: &[String], b: &[String]| {
            a.iter().all(|n| b.contains(n)) && b.iter().all(|n| a.contains(n))
        };
        if same(&old, &names) {
            return Ok((cert_path, key_path, SelfSignedCert::Kept));
        }
        let key_pem = std::fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
        let key = rcgen::KeyPair::from_pem(&key_pem).map_err(|e| {
            Error::Tls(format!(
                "cannot read the key {}: {e}; {advice}",
                key_path.display()
            ))
        })?;
        write_file(&cert_path, issue(&names, &key)?.as_bytes(), false)?;
        tracing::info!(
            old = %old.join(","),
            names = %names.join(","),
            cert = %cert_path.display(),
            "self-signed certificate re-issued for new names with the same key pair (enrolled devices pin the key and keep working)"
        );
        return Ok((cert_path, key_path, SelfSignedCert::Reissued { old, names }));
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let key = rcgen::KeyPair::generate()
        .map_err(|e| Error::Tls(format!("cannot make a key pair: {e}")))?;
    let cert_pem = issue(&names, &key)?;
    write_file(&key_path, key.serialize_pem().as_bytes(), true)?;
    write_file(&cert_path, cert_pem.as_bytes(), false)?;
    tracing::info!(names = %names.join(","), cert = %cert_path.display(), "self-signed certificate made");
    Ok((cert_path, key_path, SelfSignedCert::Made))
}

/// [`self_signed`], answering whether the certificate was written now (made or re-issued).
pub fn ensure_self_signed(dir: &Path, hostnames: &[String]) -> Result<(PathBuf, PathBuf, bool)> {
    let (cert, key, done) = self_signed(dir, hostnames)?;
    Ok((cert, key, done != SelfSignedCert::Kept))
}

/// Writes a file atomically (temporary file, fsync, rename); `secret` files are mode 0600.
fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut f = opts.open(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// Connections waiting to be accepted (see [`spawn`]).
const ACCEPT_BACKLOG: u32 = 4096;

/// Opens the data folder, binds the address and starts serving in the background of the current
/// tokio runtime.
pub async fn spawn(config: Config) -> Result<Running> {
    if config.tls == TlsMode::Plain && !is_loopback(&config.listen) {
        return Err(Error::PlainNotLoopback(config.listen));
    }
    let dir = config.data_dir.clone();
    let limits = config.limits.clone();
    let data = tokio::task::spawn_blocking(move || ServerData::open_with(&dir, limits))
        .await
        .map_err(|e| Error::Invalid(format!("opening the data folder failed: {e}")))??;
    let mut cert_done = None;
    let (rustls, cert) = match &config.tls {
        TlsMode::Plain => (None, None),
        TlsMode::Files { cert, key } => {
            let c = RustlsConfig::from_pem_file(cert, key).await.map_err(|e| {
                Error::Tls(format!(
                    "cannot use certificate {} with key {}: {e}",
                    cert.display(),
                    key.display()
                ))
            })?;
            (Some(c), None)
        }
        TlsMode::SelfSigned { hostnames } => {
            let (cert, key, done) = self_signed(&config.data_dir.join(TLS_DIR), hostnames)?;
            cert_done = Some(done);
            let c = RustlsConfig::from_pem_file(&cert, &key)
                .await
                .map_err(|e| {
                    Error::Tls(format!(
                        "cannot use the self-signed certificate {}: {e}; delete {} to make a new one",
                        cert.display(),
                        config.data_dir.join(TLS_DIR).display()
                    ))
                })?;
            (Some(c), Some(cert))
        }
    };
    let bind = |source| Error::Bind {
        addr: config.listen,
        source,
    };
    // A deep accept queue: a burst of devices coming back into signal together (hundreds of
    // connections in the same instant) must wait in the queue, not have their handshakes dropped
    // and retried a second later. The kernel caps it at net.core.somaxconn.
    let socket = if config.listen.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(bind)?;
    socket.set_reuseaddr(true).map_err(bind)?;
    socket.bind(config.listen).map_err(bind)?;
    let listener = socket
        .listen(ACCEPT_BACKLOG)
        .and_then(|l| l.into_std())
        .map_err(bind)?;
    listener.set_nonblocking(true).map_err(bind)?;
    let addr = listener.local_addr().map_err(bind)?;
    let state = AppState::new(data);
    crate::blobs::spawn_sweeper(&state);
    let router = app(state.clone());
    let handle = Handle::new();
    // TCP_NODELAY on every connection: a response written in more than one segment (TLS
    // records, head and body) must not wait for the peer's delayed ACK (40 ms on Linux), which
    // under load put a sync's latency on that 40 ms step (docs/BENCHMARKS.md, signin-flood).
    let task = match rustls {
        Some(tls) => {
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls)
                .acceptor(axum_server::accept::NoDelayAcceptor::new());
            let server = axum_server::from_tcp(listener)
                .map_err(bind)?
                .acceptor(acceptor)
                .handle(handle.clone());
            tokio::spawn(server.serve(router.into_make_service_with_connect_info::<SocketAddr>()))
        }
        None => {
            let server = axum_server::from_tcp(listener)
                .map_err(bind)?
                .acceptor(axum_server::accept::NoDelayAcceptor::new())
                .handle(handle.clone());
            tokio::spawn(server.serve(router.into_make_service_with_connect_info::<SocketAddr>()))
        }
    };
    tracing::info!(%addr, tls = cert.is_some() || config.tls != TlsMode::Plain, data = %config.data_dir.display(), "serving");
    Ok(Running {
        addr,
        tls: config.tls != TlsMode::Plain,
        cert,
        cert_done,
        state,
        handle,
        grace: config.shutdown_grace,
        task,
    })
}

/// Serves until `shutdown` completes, then shuts down gracefully. `on_listening` is called once
/// the address is bound (the CLI prints it there).
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()>,
    on_listening: impl FnOnce(&Running),
) -> Result<()> {
    let running = spawn(config).await?;
    on_listening(&running);
    shutdown.await;
    tracing::info!("shutting down: finishing in-flight requests");
    running.shutdown().await
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// `sanjin serve`: a multi-threaded runtime, logs to stderr, serving until SIGTERM or Ctrl-C.
pub fn run_blocking(config: Config, on_listening: impl FnOnce(&Running)) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(serve(config, shutdown_signal(), on_listening))
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
