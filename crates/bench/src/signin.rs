//! `sanjin-bench signin-flood`: syncs while the console is flooded with wrong passwords (issue 10
//! point 6). Before issue 10, every console sign-in hashed its password (PBKDF2) while holding
//! the server's single data lock, so about 16 wrong passwords a second stalled every sync.
//!
//! A real server in this process (HTTPS, self-signed, the fixtures' directory), a staff account
//! with a console password, one enrolled member device (`Durability::Full`). A sample is one
//! sync of that device after it recorded one new visit (push one record, pull what is new).
//! Each scenario measures the sync median idle, then during a flood, then idle again (the idle
//! figure is the median of both idle phases), each phase at least `--samples` syncs and
//! `--seconds` long:
//!
//! - `paced_16_per_s`: 16 clients, each one wrong sign-in a second (the rate), from 64
//!   loopback addresses (127.0.1.x) over three accounts (staff, a leader, an unknown id): the
//!   throttle lets every attempt through to the hashing.
//! - `unpaced_spread`: the same 16 clients without pause: the hashing slots stay busy and
//!   sign-ins queue for them (or get 429 once 32 wait).
//! - `unpaced_one_address`: 16 clients without pause, all from 127.0.0.1 against the staff
//!   account: after 5 failures every attempt is answered 429 before any hashing.
//! - `unpaced_health` (a control, no sign-in at all): 16 clients without pause, each a fresh
//!   HTTPS connection for `GET /health`: what any flood of requests costs on these cores.
//!
//! The target: the sync median during a flood within 2× of idle. The flood's clients run in
//! this process on the same cores (TLS handshakes included), so the figure is pessimistic.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use sanjin_core::RecordDoc;
use sanjin_server::Role;
use sanjin_store::{Durability, Store};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use crate::sync::{Server, device_root, enroll, group_of, new_store, sync};
use crate::{percentile, round};

const STAFF: &str = "staff-bench";
const PASSWORD: &str = "bench-password-1";
const FLOODERS: u32 = 16;

/// `sanjin-bench signin-flood`: how long each phase runs and which floods.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct SigninArgs {
    /// At least this many syncs per phase.
    #[arg(long, default_value_t = 40, value_name = "N")]
    pub samples: usize,
    /// And at least this many seconds per phase.
    #[arg(long, default_value_t = 6.0, value_name = "S")]
    pub seconds: f64,
    /// Only these floods (comma-separated: paced_16_per_s, unpaced_spread,
    /// unpaced_one_address, unpaced_health); all when not given.
    #[arg(long, value_delimiter = ',', value_name = "SCENARIO,…")]
    pub only: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flood {
    Paced,
    Spread,
    OneAddress,
    Health,
}

impl Flood {
    fn name(self) -> &'static str {
        match self {
            Flood::Paced => "paced_16_per_s",
            Flood::Spread => "unpaced_spread",
            Flood::OneAddress => "unpaced_one_address",
            Flood::Health => "unpaced_health",
        }
    }
}

/// What the flood's clients did.
#[derive(Default)]
struct Counts {
    attempts: AtomicU64,
    ok: AtomicU64,
    unauthorized: AtomicU64,
    throttled: AtomicU64,
    other: AtomicU64,
}

pub fn run(args: &SigninArgs, emit: &mut dyn FnMut(Value)) -> Result<()> {
    let fx = sanjin_fixtures::Fixtures::load(&sanjin_fixtures::committed_dir())?;
    let server = Server::start(&fx.directory)?;
    server.with_data(|d| -> Result<()> {
        d.add_staff(STAFF, "压测工作人员", Role::Staff)?;
        sanjin_server::console::set_password(d, STAFF, PASSWORD)?;
        Ok(())
    })??;
    let url = format!("https://{}", server.addr());
    let dir = tempfile::Builder::new()
        .prefix("sanjin-bench-signin-")
        .tempdir_in(device_root())?;
    let visits: Vec<_> = fx
        .visits
        .iter()
        .filter(|v| group_of(v) == Some("group-01"))
        .collect();
    let member = fx
        .members_of("group-01")
        .into_iter()
        .find(|m| Some(*m) != fx.leader_of("group-01"))
        .ok_or_else(|| anyhow!("group-01 has no member"))?
        .to_string();
    let leader = fx
        .leader_of("group-01")
        .ok_or_else(|| anyhow!("group-01 has no leader"))?
        .to_string();
    let mut store = new_store(dir.path(), &member, Durability::Full)?;
    enroll(&server, &url, &mut store)?;
    sync(&mut store)?;
    let mut next = 0usize;
    let mut one_sync = |store: &mut Store| -> Result<f64> {
        let v = visits[next % visits.len()];
        next += 1;
        let mut doc = RecordDoc::create(
            &sanjin_store::new_record_id(),
            &v.data,
            &store.author(),
            v.created_at_ms,
        )?;
        store.insert(&mut doc, true)?;
        let t = Instant::now();
        sync(store)?;
        Ok(t.elapsed().as_secs_f64() * 1000.0)
    };
    let phase = |store: &mut Store,
                 one_sync: &mut dyn FnMut(&mut Store) -> Result<f64>|
     -> Result<Vec<f64>> {
        let started = Instant::now();
        let mut ms = Vec::new();
        while ms.len() < args.samples || started.elapsed().as_secs_f64() < args.seconds {
            ms.push(one_sync(store)?);
        }
        Ok(ms)
    };
    // Warm up: connections, caches, the first Argon2 hash.
    phase(&mut store, &mut one_sync)?;

    let connector = connector(&server.cert_pem)?;
    let accounts = [STAFF.to_string(), leader, "no-such-account".to_string()];
    for flood in [
        Flood::Paced,
        Flood::Spread,
        Flood::OneAddress,
        Flood::Health,
    ] {
        if !args.only.is_empty() && !args.only.iter().any(|o| o == flood.name()) {
            continue;
        }
        let mut idle = phase(&mut store, &mut one_sync)?;
        let hashes_before = sanjin_server::console::password_hashes(server.running().state());
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let flood_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let mut tasks = Vec::new();
        for k in 0..FLOODERS {
            let (stop, counts, connector, accounts) = (
                stop.clone(),
                counts.clone(),
                connector.clone(),
                accounts.clone(),
            );
            let addr = server.addr();
            tasks.push(flood_rt.spawn(async move {
                let mut i: u32 = 0;
                let started = Instant::now();
                while !stop.load(Ordering::SeqCst) {
                    let (from, account) = match flood {
                        Flood::OneAddress | Flood::Health => {
                            (IpAddr::V4(Ipv4Addr::LOCALHOST), &accounts[0])
                        }
                        _ => (
                            IpAddr::V4(Ipv4Addr::new(127, 0, 1, (2 + (k * 4 + i) % 64) as u8)),
                            &accounts[((k + i) % 3) as usize],
                        ),
                    };
                    let status = if flood == Flood::Health {
                        request(&connector, addr, from, "GET /health", "").await
                    } else {
                        let form = format!("account={account}&password=wrong-password");
                        request(&connector, addr, from, "POST /console/login", &form).await
                    };
                    counts.attempts.fetch_add(1, Ordering::SeqCst);
                    match status {
                        Some(200) => &counts.ok,
                        Some(401) => &counts.unauthorized,
                        Some(429) => &counts.throttled,
                        _ => &counts.other,
                    }
                    .fetch_add(1, Ordering::SeqCst);
                    i += 1;
                    if flood == Flood::Paced {
                        let due = started + Duration::from_secs(u64::from(i));
                        tokio::time::sleep_until(due.into()).await;
                    }
                }
            }));
        }
        // Let the flood reach its pace before measuring.
        std::thread::sleep(Duration::from_secs(1));
        let attempts_before = counts.attempts.load(Ordering::SeqCst);
        let hashes_at = sanjin_server::console::password_hashes(server.running().state());
        let t = Instant::now();
        let mut during = phase(&mut store, &mut one_sync)?;
        let flood_s = t.elapsed().as_secs_f64();
        let attempts = counts.attempts.load(Ordering::SeqCst) - attempts_before;
        let hashed = sanjin_server::console::password_hashes(server.running().state()) - hashes_at;
        stop.store(true, Ordering::SeqCst);
        flood_rt.block_on(async {
            for t in tasks {
                let _ = t.await;
            }
        });
        drop(flood_rt);
        idle.extend(phase(&mut store, &mut one_sync)?);
        idle.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        during.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        let (idle_p50, during_p50) = (percentile(&idle, 0.5), percentile(&during, 0.5));
        let ratio = during_p50 / idle_p50;
        let mut statuses = BTreeMap::new();
        statuses.insert("200", counts.ok.load(Ordering::SeqCst));
        statuses.insert("401", counts.unauthorized.load(Ordering::SeqCst));
        statuses.insert("429", counts.throttled.load(Ordering::SeqCst));
        statuses.insert("other", counts.other.load(Ordering::SeqCst));
        emit(json!({
            "bench": "signin_flood",
            "scenario": flood.name(),
            "idle_syncs": idle.len(),
            "idle_p50_ms": round(idle_p50),
            "idle_p90_ms": round(percentile(&idle, 0.9)),
            "flood_syncs": during.len(),
            "flood_p50_ms": round(during_p50),
            "flood_p90_ms": round(percentile(&during, 0.9)),
            "flood_max_ms": round(*during.last().unwrap_or(&0.0)),
            "ratio_p50": round(ratio),
            "signins_per_s": round(attempts as f64 / flood_s),
            "hashed_per_s": round(hashed as f64 / flood_s),
            "hashed_total": sanjin_server::console::password_hashes(server.running().state()) - hashes_before,
            "statuses": statuses,
            "target_ratio": 2.0,
            "meets_target": ratio <= 2.0,
        }));
    }
    Ok(())
}

fn connector(cert_pem: &str) -> Result<TlsConnector> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(cert_pem.as_bytes())?)?;
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// One request (`form` posted as a sign-in form when not empty) on a fresh connection from the
/// local address `from`: the HTTP status, if any.
async fn request(
    connector: &TlsConnector,
    server: SocketAddr,
    from: IpAddr,
    line: &str,
    form: &str,
) -> Option<u16> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(from, 0)).ok()?;
    let tcp = socket.connect(server).await.ok()?;
    tcp.set_nodelay(true).ok()?;
    let mut tls = connector
        .connect(ServerName::try_from("localhost").ok()?, tcp)
        .await
        .ok()?;
    let request = format!(
        "{line} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    tls.write_all(request.as_bytes()).await.ok()?;
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
}
