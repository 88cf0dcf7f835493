//! The leader's side: a session on a local address that serves joiners, each on a thread of
//! its own, with the leader's store as one writer behind a mutex.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sanjin_store::Store;

use super::auth::{CodeLeader, Role, Trust};
use super::exchange::{self, ExchangeReport};
use super::tls::{self, EXPORTER_LABEL, SessionTls};
use super::wire::{Bytes, MEET_VERSION, Msg, recv, send};
use super::{Invite, MeetError};

/// Wrong codes before the code closes (the QR still works).
pub const CODE_ATTEMPTS: u32 = 3;

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where to listen (default every IPv4 interface, a free port).
    pub bind: SocketAddr,
    /// The address joiners reach (default: the bound address, or, when it is unspecified, the
    /// interface a packet to a private address would leave by).
    pub advertise: Option<IpAddr>,
    /// How long the session accepts joiners (default 10 minutes).
    pub ttl: Duration,
    /// Photo originals after the records, when a joiner asks for them too.
    pub originals: bool,
    /// Per-read/write timeout with a joiner.
    pub io_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            advertise: None,
            ttl: Duration::from_secs(600),
            originals: false,
            io_timeout: Duration::from_secs(60),
        }
    }
}

/// One joiner, as the leader saw it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerReport {
    pub address: String,
    /// The exchange, or `None` when the joiner was refused or failed (`error`).
    pub exchange: Option<ExchangeReport>,
    /// What went wrong, in Chinese (no personal data).
    pub error: Option<String>,
}

/// The session's state for a display.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MeetStatus {
    pub peers: Vec<PeerReport>,
    /// Joiners being served now.
    pub active: usize,
    pub code_open: bool,
    pub expired: bool,
    pub stopped: bool,
    pub remaining_ms: u64,
}

struct Shared {
    store: Mutex<Store>,
    trust: Trust,
    tls: SessionTls,
    key: String,
    code: String,
    expires: Instant,
    opts: ServeOptions,
    stop: AtomicBool,
    /// Wrong codes so far; held for the whole of one code attempt, so attempts count exactly.
    code_failures: Mutex<u32>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    peers: Vec<PeerReport>,
    active: usize,
    workers: Vec<JoinHandle<()>>,
}

/// A running session. Dropping it stops it.
pub struct MeetSession {
    shared: Arc<Shared>,
    invite: Invite,
    accept: Option<JoinHandle<()>>,
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS provides randomness");
    b
}

impl MeetSession {
    /// Opens a session serving `store` (its own connection: the app keeps another).
    pub fn serve(store: Store, opts: ServeOptions) -> Result<MeetSession, MeetError> {
        let trust = Trust::of(&store)?;
        let tls = SessionTls::new()?;
        let key = data_encoding::BASE32_NOPAD.encode(&random_bytes::<16>());
        let code = format!("{:06}", u32::from_le_bytes(random_bytes::<4>()) % 1_000_000);
        let listener = TcpListener::bind(opts.bind)?;
        listener.set_nonblocking(true)?;
        let bound = listener.local_addr()?;
        let ip = opts.advertise.unwrap_or_else(|| {
            if bound.ip().is_unspecified() {
                local_ip().unwrap_or(bound.ip())
            } else {
                bound.ip()
            }
        });
        let invite = Invite {
            addr: SocketAddr::new(ip, bound.port()),
            key: key.clone(),
            fingerprint: tls.fingerprint,
            code: code.clone(),
        };
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            trust,
            tls,
            key,
            code,
            expires: Instant::now() + opts.ttl,
            opts,
            stop: AtomicBool::new(false),
            code_failures: Mutex::new(0),
            state: Mutex::new(State::default()),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("sanjin-meet".into())
            .spawn(move || accept_loop(s, listener))?;
        Ok(MeetSession {
            shared,
            invite,
            accept: Some(accept),
        })
    }

    pub fn invite(&self) -> &Invite {
        &self.invite
    }

    pub fn qr_text(&self) -> String {
        self.invite.qr_text()
    }

    pub fn code(&self) -> String {
        self.invite.code.clone()
    }

    pub fn status(&self) -> MeetStatus {
        let st = self
            .shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let failures = *self
            .shared
            .code_failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        MeetStatus {
            peers: st.peers.clone(),
            active: st.active,
            code_open: failures < CODE_ATTEMPTS && now < self.shared.expires,
            expired: now >= self.shared.expires,
            stopped: self.shared.stop.load(Ordering::SeqCst),
            remaining_ms: self
                .shared
                .expires
                .saturating_duration_since(now)
                .as_millis() as u64,
        }
    }

    pub fn is_expired(&self) -> bool {
        Instant::now() >= self.shared.expires
    }

    /// Runs `f` on the leader's store between joiners' imports (e.g. to list what arrived).
    pub fn with_store<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        f(&mut self
            .shared
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner))
    }

    /// Stops accepting, waits for the joiners being served (each bounded by the I/O timeout)
    /// and answers the final status.
    pub fn stop(&mut self) -> MeetStatus {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        let workers = std::mem::take(
            &mut self
                .shared
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .workers,
        );
        for w in workers {
            let _ = w.join();
        }
        self.status()
    }
}

impl Drop for MeetSession {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The interface address a packet to a private network would leave by (no packet is sent).
fn local_ip() -> Option<IpAddr> {
    let u = UdpSocket::bind("0.0.0.0:0").ok()?;
    u.connect("10.255.255.255:9").ok()?;
    Some(u.local_addr().ok()?.ip()).filter(|ip| !ip.is_unspecified())
}

fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((sock, peer)) => {
                let s = shared.clone();
                let mut st = s.state.lock().unwrap_or_else(PoisonError::into_inner);
                st.active += 1;
                st.workers.retain(|w| !w.is_finished());
                let s2 = shared.clone();
                if let Ok(h) = std::thread::Builder::new()
                    .name("sanjin-meet-peer".into())
                    .spawn(move || serve_peer(s2, sock, peer))
                {
                    st.workers.push(h);
                } else {
                    st.active -= 1;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn serve_peer(shared: Arc<Shared>, sock: TcpStream, peer: SocketAddr) {
    let result = serve_one(&shared, sock);
    let mut st = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
    st.active -= 1;
    let (exchange, error) = match result {
        Ok(r) => (Some(r), None),
        Err(e) => (None, Some(e.zh())),
    };
    st.peers.push(PeerReport {
        address: peer.to_string(),
        exchange,
        error,
    });
}

type Stream = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

fn refuse(s: &mut Stream, bytes: &mut Bytes, e: MeetError) -> MeetError {
    if let Some((why, detail)) = e.refusal() {
        let _ = send(s, &Msg::Refused { why, detail }, bytes);
    }
    e
}

fn serve_one(shared: &Shared, sock: TcpStream) -> Result<ExchangeReport, MeetError> {
    sock.set_nonblocking(false)?;
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(shared.opts.io_timeout))?;
    sock.set_write_timeout(Some(shared.opts.io_timeout))?;
    let conn = rustls::ServerConnection::new(shared.tls.config.clone())
        .map_err(|e| MeetError::Tls(e.to_string()))?;
    let mut s = rustls::StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    let exporter: [u8; 32] = s
        .conn
        .export_keying_material([0u8; 32], EXPORTER_LABEL, None)
        .map_err(|e| MeetError::Tls(e.to_string()))?;
    let fp = shared.tls.fingerprint;
    let mut bytes = Bytes::default();
    let hello = recv(&mut s, &mut bytes)?;
    if shared.stop.load(Ordering::SeqCst) {
        return Err(refuse(&mut s, &mut bytes, MeetError::Stopped));
    }
    if Instant::now() >= shared.expires {
        return Err(refuse(&mut s, &mut bytes, MeetError::Expired));
    }
    match hello {
        Msg::HelloKey { version, .. } | Msg::HelloCode { version, .. }
            if version > MEET_VERSION =>
        {
            return Err(refuse(&mut s, &mut bytes, MeetError::Newer));
        }
        Msg::HelloKey { key, .. } => {
            if !tls::constant_eq(&key, shared.key.as_bytes()) {
                return Err(refuse(&mut s, &mut bytes, MeetError::WrongKey));
            }
        }
        Msg::HelloCode { spake, .. } => {
            let mut failures = shared
                .code_failures
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if *failures >= CODE_ATTEMPTS {
                return Err(refuse(&mut s, &mut bytes, MeetError::CodeClosed));
            }
            let (leader, m, confirm) = CodeLeader::answer(&shared.code, &spake, &fp, &exporter);
            // Counted before the answer leaves: a joiner that learns from it and hangs up has
            // used an attempt too.
            *failures += 1;
            send(&mut s, &Msg::CodeReply { spake: m, confirm }, &mut bytes)?;
            let got = match recv(&mut s, &mut bytes)? {
                Msg::CodeConfirm { confirm } => confirm,
                _ => {
                    return Err(MeetError::Protocol(
                        "unexpected message instead of the code confirmation",
                    ));
                }
            };
            if !leader.accepts(&got, &fp, &exporter) {
                let left = CODE_ATTEMPTS - *failures;
                let e = if left == 0 {
                    MeetError::CodeClosed
                } else {
                    MeetError::WrongCode { left }
                };
                return Err(refuse(&mut s, &mut bytes, e));
            }
            *failures -= 1;
        }
        _ => return Err(MeetError::Protocol("unexpected first message")),
    }
    send(
        &mut s,
        &shared.trust.proof(Role::Leader, &exporter, &fp),
        &mut bytes,
    )?;
    let joiner = match recv(&mut s, &mut bytes)? {
        Msg::Proof { cert, signature } => {
            match shared
                .trust
                .judge(Role::Joiner, &cert, &signature, &exporter, &fp)
            {
                Ok(c) => c,
                Err((why, detail)) => {
                    return Err(refuse(
                        &mut s,
                        &mut bytes,
                        MeetError::from_judged(why, detail),
                    ));
                }
            }
        }
        Msg::Refused { why, detail } => return Err(MeetError::from_refusal(why, detail)),
        _ => {
            return Err(MeetError::Protocol(
                "unexpected message instead of the joiner's proof",
            ));
        }
    };
    send(&mut s, &Msg::Accepted, &mut bytes)?;
    let mut report = exchange::leader(
        &mut s,
        &mut bytes,
        &shared.store,
        &exchange::selection(&shared.trust.cert, &joiner),
        shared.opts.originals,
    )?;
    report.peer = exchange::Peer::of(&joiner);
    report.bytes_sent = bytes.sent;
    report.bytes_received = bytes.received;
    s.conn.send_close_notify();
    let _ = s.conn.complete_io(&mut s.sock);
    Ok(report)
}
