//! Issue 10 point 5, measured: a real `sanjin serve` process (TLS, self-signed, loopback) gets
//! 16 concurrent zstd bombs of about 2 KB that each claim 64 MiB of payload, first without
//! valid credentials, then from an enrolled device; its peak resident memory (VmHWM of
//! /proc/PID/status) stays within 64 MiB of what it was idle. Before issue 10 the server decoded
//! bodies before authenticating and reserved 64 MiB per body: 16 bombs took it to 1.95 GB.

use std::io::Write;

use sanjin_client::{Client, Credentials, ServerUrl, Timeouts};
use sanjin_core::protocol::{MAGIC, VERSION};
use sanjin_store::{Durability, Store};

use crate::sync::Server;

/// A request frame whose zstd payload is 64 MiB of zeros: ~2 KB on the wire. With
/// `declare_size` the zstd frame says 64 MiB up front; without, only decoding tells.
fn bomb(declare_size: bool) -> Vec<u8> {
    let zeros = vec![0u8; 64 << 20];
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.push(1); // a request
    out.push(1); // zstd
    let body = if declare_size {
        zstd::bulk::compress(&zeros, 19).unwrap()
    } else {
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
        e.include_contentsize(false).unwrap();
        // The largest window the server accepts (a larger one is refused before decoding).
        e.window_log(sanjin_core::protocol::MAX_WINDOW_LOG).unwrap();
        e.write_all(&zeros).unwrap();
        e.finish().unwrap()
    };
    out.extend_from_slice(&body);
    out
}

/// (VmHWM, VmRSS) of a process, in bytes.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
            * 1024
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Sends `frame` 16 times at once, each on its own connection; the HTTP statuses.
fn fire(clients: &[Client], frame: &[u8]) -> Vec<u16> {
    std::thread::scope(|s| {
        let handles: Vec<_> = clients
            .iter()
            .map(|c| {
                s.spawn(move || match c.post_sync(frame) {
                    Ok(_) => 200,
                    Err(sanjin_client::Error::Http { status, .. }) => status,
                    Err(e) => panic!("the server did not answer: {e}"),
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

const MIB: u64 = 1 << 20;

#[test]
fn issue10_unauthenticated_zstd_bombs_leave_the_servers_memory_flat() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"), "127.0.0.1:0");
    server
        .admin(&[
            "import-directory",
            sanjin_fixtures::committed_dir().to_str().unwrap(),
        ])
        .ok();
    let phone = server.phone(dir.path(), "member-0001");
    let store = Store::open(&phone, Durability::Normal).unwrap();
    let device = sanjin_client::client_for(&store, Timeouts::default()).unwrap();
    let device_id = store.meta(sanjin_client::meta::DEVICE_ID).unwrap().unwrap();
    let cert = std::fs::read_to_string(dir.path().join("server/tls/cert.pem")).unwrap();
    let url = ServerUrl::parse(server.url()).unwrap();
    let client = |creds: Credentials| {
        Client::new(url.clone(), Some(&creds), Some(&cert), Timeouts::default()).unwrap()
    };
    // Without valid credentials: an unknown device, and the real device with a wrong secret.
    let strangers: Vec<Client> = (0..16)
        .map(|i| {
            client(Credentials {
                device_id: if i % 2 == 0 {
                    "no-such-device".into()
                } else {
                    device_id.clone()
                },
                secret: "00".repeat(32),
            })
        })
        .collect();
    let devices: Vec<Client> = (0..16)
        .map(|_| sanjin_client::client_for(&store, Timeouts::default()).unwrap())
        .collect();

    // Idle: started, the device enrolled and synced once (the directory pulled).
    sanjin_client::sync(
        &mut Store::open(&phone, Durability::Normal).unwrap(),
        &sanjin_client::SyncOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert!(device.health().is_ok());
    let (idle, idle_rss) = memory(server.pid());

    let declared = bomb(true);
    let undeclared = bomb(false);
    for b in [&declared, &undeclared] {
        assert!(b.len() < 4 << 10, "a bomb of {} bytes", b.len());
    }
    let mut report = Vec::new();
    for (who, clients, expected) in [
        ("without credentials", &strangers, 401),
        ("enrolled", &devices, 400),
    ] {
        for (kind, frame) in [("declared", &declared), ("undeclared", &undeclared)] {
            let statuses = fire(clients, frame);
            assert!(
                statuses.iter().all(|&s| s == expected),
                "{who}, {kind}: {statuses:?}"
            );
            let (peak, rss) = memory(server.pid());
            report.push(format!(
                "{who}, {kind} size: peak {} MiB, now {} MiB",
                peak / MIB,
                rss / MIB
            ));
        }
    }
    let (peak, rss) = memory(server.pid());
    eprintln!(
        "sanjin serve idle: peak {} MiB, resident {} MiB; after 4 × 16 bombs of {} / {} bytes: {}; \
         peak {} MiB (+{} MiB), resident {} MiB",
        idle / MIB,
        idle_rss / MIB,
        declared.len(),
        undeclared.len(),
        report.join("; "),
        peak / MIB,
        (peak - idle) / MIB,
        rss / MIB,
    );
    assert!(
        peak <= idle + 64 * MIB,
        "the bombs took the server from {} MiB to {} MiB",
        idle / MIB,
        peak / MIB
    );
    // The server still serves its device.
    sanjin_client::sync(
        &mut Store::open(&phone, Durability::Normal).unwrap(),
        &sanjin_client::SyncOptions::default(),
        &mut |_| {},
    )
    .unwrap();
}
