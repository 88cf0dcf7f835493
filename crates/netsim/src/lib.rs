//! sanjin-netsim: a loopback TCP proxy for tests and benchmarks.
//!
//! It sits between a client and a server on `127.0.0.1`, counts the bytes that cross it in each
//! direction (everything: TLS, HTTP headers, bodies), and can impose a link profile: one-way
//! latency, bandwidth, and connection cuts. Plain threads, no async runtime, so it measures the
//! link and not itself.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

/// A link's character.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// Added to every chunk in each direction (half the round-trip time).
    pub one_way_latency: Duration,
    /// Bits per second in each direction; `None` for unlimited.
    pub bits_per_second: Option<u64>,
}

impl Profile {
    /// Nothing imposed: only counting.
    pub const LOOPBACK: Profile = Profile {
        one_way_latency: Duration::ZERO,
        bits_per_second: None,
    };
    /// 2G-grade: about 100 kbit/s and 600 ms round trips.
    pub const G2: Profile = Profile {
        one_way_latency: Duration::from_millis(300),
        bits_per_second: Some(100_000),
    };
    /// 3G: about 1 Mbit/s and 200 ms round trips.
    pub const G3: Profile = Profile {
        one_way_latency: Duration::from_millis(100),
        bits_per_second: Some(1_000_000),
    };
    /// Wi-Fi: about 20 Mbit/s and 20 ms round trips.
    pub const WIFI: Profile = Profile {
        one_way_latency: Duration::from_millis(10),
        bits_per_second: Some(20_000_000),
    };

    pub fn by_name(name: &str) -> Option<Profile> {
        match name {
            "loopback" => Some(Profile::LOOPBACK),
            "2g" => Some(Profile::G2),
            "3g" => Some(Profile::G3),
            "wifi" => Some(Profile::WIFI),
            _ => None,
        }
    }
}

/// Byte and connection counts since the proxy started (or since `reset`).
#[derive(Debug, Default)]
pub struct Counters {
    /// Client → server.
    pub up: AtomicU64,
    /// Server → client.
    pub down: AtomicU64,
    pub connections: AtomicU64,
}

impl Counters {
    pub fn up(&self) -> u64 {
        self.up.load(Ordering::Relaxed)
    }
    pub fn down(&self) -> u64 {
        self.down.load(Ordering::Relaxed)
    }
    pub fn total(&self) -> u64 {
        self.up() + self.down()
    }
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
    pub fn reset(&self) {
        self.up.store(0, Ordering::Relaxed);
        self.down.store(0, Ordering::Relaxed);
        self.connections.store(0, Ordering::Relaxed);
    }
}

/// A running proxy. Dropping it stops accepting new connections.
pub struct Proxy {
    addr: SocketAddr,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Starts a proxy on an ephemeral loopback port that forwards to `target`.
    pub fn start(target: SocketAddr, profile: Profile) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (counters.clone(), stop.clone());
        thread::Builder::new()
            .name("netsim-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(client) = conn else { continue };
                    let Ok(server) = TcpStream::connect(target) else {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    };
                    c.connections.fetch_add(1, Ordering::Relaxed);
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (c1, c2) = (c.clone(), c.clone());
                    let (client2, server2) = match (client.try_clone(), server.try_clone()) {
                        (Ok(a), Ok(b)) => (a, b),
                        _ => continue,
                    };
                    let _ = thread::Builder::new()
                        .name("netsim-up".into())
                        .spawn(move || pump(client, server, profile, &c1.up));
                    let _ = thread::Builder::new()
                        .name("netsim-down".into())
                        .spawn(move || pump(server2, client2, profile, &c2.down));
                }
            })?;
        Ok(Proxy {
            addr,
            counters,
            stop,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, profile: Profile, count: &AtomicU64) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !profile.one_way_latency.is_zero() {
            thread::sleep(profile.one_way_latency);
        }
        if let Some(bps) = profile.bits_per_second {
            thread::sleep(Duration::from_secs_f64(n as f64 * 8.0 / bps as f64));
        }
        // Counted before forwarding, so a peer that has read the bytes sees them counted.
        count.fetch_add(n as u64, Ordering::Relaxed);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_and_counts_both_directions() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = server.local_addr().unwrap();
        let echo = thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            s.write_all(b"pong!pong!").unwrap();
        });
        let proxy = Proxy::start(target, Profile::LOOPBACK).unwrap();
        let mut c = TcpStream::connect(proxy.addr()).unwrap();
        c.write_all(b"ping!").unwrap();
        let mut got = [0u8; 10];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"pong!pong!");
        echo.join().unwrap();
        assert_eq!(proxy.counters().up(), 5);
        assert_eq!(proxy.counters().down(), 10);
        assert_eq!(proxy.counters().connections(), 1);
    }

    #[test]
    fn imposes_latency() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = server.local_addr().unwrap();
        thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut buf = [0u8; 1];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        });
        let profile = Profile {
            one_way_latency: Duration::from_millis(50),
            bits_per_second: None,
        };
        let proxy = Proxy::start(target, profile).unwrap();
        let t = std::time::Instant::now();
        let mut c = TcpStream::connect(proxy.addr()).unwrap();
        c.write_all(b"x").unwrap();
        let mut got = [0u8; 1];
        c.read_exact(&mut got).unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(100),
            "one round trip = 2 × one-way latency"
        );
    }
}
