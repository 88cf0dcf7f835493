//! sanjin-netsim: a loopback TCP proxy for tests and benchmarks.
//!
//! **Never** used by production code, and never anything but loopback: tests and benchmarks only.
//!
//! It sits between a client and a server on `127.0.0.1`, counts the bytes that cross it in each
//! direction (everything: TLS, HTTP headers, bodies), and can impose a link profile: one-way
//! latency, bandwidth, and connection cuts. Plain threads, no async runtime, so it measures the
//! link and not itself.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

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

/// When the proxy cuts connections (a village link dropping).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cuts {
    /// Never (only [`Proxy::cut_all`] and [`Proxy::cut_after`] cut).
    None,
    /// Every open connection is cut at random intervals, uniform in `min..=max`, from a
    /// deterministic generator seeded with `seed` (the same seed gives the same intervals).
    Random {
        seed: u64,
        min: Duration,
        max: Duration,
    },
}

/// Which way bytes cross.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client → server.
    Up,
    /// Server → client.
    Down,
}

/// Byte and connection counts since the proxy started (or since `reset`).
#[derive(Debug, Default)]
pub struct Counters {
    /// Client → server.
    pub up: AtomicU64,
    /// Server → client.
    pub down: AtomicU64,
    pub connections: AtomicU64,
    /// Connections cut by the proxy.
    pub cuts: AtomicU64,
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
    pub fn cuts(&self) -> u64 {
        self.cuts.load(Ordering::Relaxed)
    }
    pub fn reset(&self) {
        self.up.store(0, Ordering::Relaxed);
        self.down.store(0, Ordering::Relaxed);
        self.connections.store(0, Ordering::Relaxed);
        self.cuts.store(0, Ordering::Relaxed);
    }
}

/// One proxied connection: both sockets, so a cut can close them.
struct Conn {
    client: TcpStream,
    server: TcpStream,
    cut: AtomicBool,
}

impl Conn {
    /// Closes both sides (counted first, so whoever sees the end sees the count); returns
    /// whether this call did it.
    fn cut(&self, counters: &Counters) -> bool {
        if self.cut.swap(true, Ordering::SeqCst) {
            return false;
        }
        counters.cuts.fetch_add(1, Ordering::SeqCst);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
        true
    }
}

/// A one-shot cut armed by [`Proxy::cut_after`]: bytes left to pass in one direction.
#[derive(Default)]
struct Trigger {
    up: Mutex<Option<u64>>,
    down: Mutex<Option<u64>>,
}

impl Trigger {
    fn slot(&self, d: Direction) -> &Mutex<Option<u64>> {
        match d {
            Direction::Up => &self.up,
            Direction::Down => &self.down,
        }
    }
}

struct Shared {
    counters: Counters,
    stop: AtomicBool,
    conns: Mutex<Vec<Arc<Conn>>>,
    trigger: Trigger,
}

impl Shared {
    fn cut_all(&self) -> usize {
        let conns = std::mem::take(&mut *self.conns.lock().expect("netsim connections"));
        let mut n = 0;
        for c in conns {
            if c.cut(&self.counters) {
                n += 1;
            }
        }
        n
    }
}

/// A running proxy. Dropping it stops accepting new connections and the random cuts.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Starts a proxy on an ephemeral loopback port that forwards to `target`.
    pub fn start(target: SocketAddr, profile: Profile) -> std::io::Result<Proxy> {
        Proxy::start_with(target, profile, Cuts::None)
    }

    /// Starts a proxy with a cut schedule.
    pub fn start_with(target: SocketAddr, profile: Profile, cuts: Cuts) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            trigger: Trigger::default(),
        });
        let sh = shared.clone();
        thread::Builder::new()
            .name("netsim-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if sh.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(client) = conn else { continue };
                    let Ok(server) = TcpStream::connect(target) else {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (Ok(c1), Ok(c2), Ok(s1), Ok(s2)) = (
                        client.try_clone(),
                        client.try_clone(),
                        server.try_clone(),
                        server.try_clone(),
                    ) else {
                        continue;
                    };
                    sh.counters.connections.fetch_add(1, Ordering::Relaxed);
                    let handle = Arc::new(Conn {
                        client,
                        server,
                        cut: AtomicBool::new(false),
                    });
                    {
                        let mut conns = sh.conns.lock().expect("netsim connections");
                        conns.retain(|c| !c.cut.load(Ordering::Relaxed));
                        conns.push(handle.clone());
                    }
                    let (sh1, sh2, h1, h2) = (sh.clone(), sh.clone(), handle.clone(), handle);
                    let _ = thread::Builder::new()
                        .name("netsim-up".into())
                        .spawn(move || link(c1, s1, profile, Direction::Up, &sh1, &h1));
                    let _ = thread::Builder::new()
                        .name("netsim-down".into())
                        .spawn(move || link(s2, c2, profile, Direction::Down, &sh2, &h2));
                }
            })?;
        if let Cuts::Random { seed, min, max } = cuts {
            let sh = shared.clone();
            thread::Builder::new()
                .name("netsim-cuts".into())
                .spawn(move || {
                    let mut rng = SplitMix(seed);
                    let span = max.saturating_sub(min).as_millis() as u64;
                    while !sh.stop.load(Ordering::Relaxed) {
                        let wait = min + Duration::from_millis(rng.next() % (span + 1));
                        // Sleep in small steps so dropping the proxy ends the thread soon.
                        let until = Instant::now() + wait;
                        while Instant::now() < until && !sh.stop.load(Ordering::Relaxed) {
                            thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
                        }
                        if !sh.stop.load(Ordering::Relaxed) {
                            sh.cut_all();
                        }
                    }
                })?;
        }
        Ok(Proxy { addr, shared })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// Cuts every open connection now. Returns how many.
    pub fn cut_all(&self) -> usize {
        self.shared.cut_all()
    }

    /// Cuts, once, the connection that carries the `bytes`-th byte from now in `direction`
    /// (that byte and the rest of its connection never arrive). A later call re-arms it.
    pub fn cut_after(&self, direction: Direction, bytes: u64) {
        *self
            .shared
            .trigger
            .slot(direction)
            .lock()
            .expect("netsim trigger") = Some(bytes);
    }

    /// Whether a cut armed by [`Proxy::cut_after`] is still waiting for its bytes.
    pub fn cut_pending(&self, direction: Direction) -> bool {
        self.shared
            .trigger
            .slot(direction)
            .lock()
            .expect("netsim trigger")
            .is_some()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// A small deterministic generator (SplitMix64) for the cut schedule.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Bytes read at a time: small enough that a slow link paces smoothly.
const READ_CHUNK: usize = 8 * 1024;

/// One direction of a link: a reader that timestamps what it reads and a writer that delivers
/// each chunk when the link would have: after the chunks before it have been serialized at the
/// link's bandwidth, plus the one-way latency. Bytes in flight are bounded (about one
/// bandwidth-delay product plus a small queue), so a sender feels the link's pace and a cut
/// loses what was in flight, as on a real link.
fn link(
    mut from: TcpStream,
    mut to: TcpStream,
    profile: Profile,
    direction: Direction,
    shared: &Arc<Shared>,
    conn: &Arc<Conn>,
) {
    let in_flight = match profile.bits_per_second {
        Some(bps) => {
            let bdp = (bps as f64 / 8.0 * profile.one_way_latency.as_secs_f64() * 2.0) as usize;
            ((bdp + 32 * 1024) / READ_CHUNK).max(4)
        }
        None => 64,
    };
    let (tx, rx) = mpsc::sync_channel::<(Instant, Vec<u8>)>(in_flight);
    let from_handle = from.try_clone();
    let _ = thread::Builder::new()
        .name("netsim-read".into())
        .spawn(move || {
            let mut buf = vec![0u8; READ_CHUNK];
            let mut free_at = Instant::now();
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let now = Instant::now();
                let serialize = profile
                    .bits_per_second
                    .map(|bps| Duration::from_secs_f64(n as f64 * 8.0 / bps as f64))
                    .unwrap_or_default();
                free_at = free_at.max(now) + serialize;
                if tx
                    .send((free_at + profile.one_way_latency, buf[..n].to_vec()))
                    .is_err()
                {
                    break;
                }
            }
            let _ = from.shutdown(Shutdown::Read);
        });
    let count = match direction {
        Direction::Up => &shared.counters.up,
        Direction::Down => &shared.counters.down,
    };
    for (at, mut bytes) in rx.iter() {
        let now = Instant::now();
        if at > now {
            thread::sleep(at - now);
        }
        if conn.cut.load(Ordering::SeqCst) {
            break;
        }
        let mut cut_here = false;
        {
            let mut slot = shared
                .trigger
                .slot(direction)
                .lock()
                .expect("netsim trigger");
            if let Some(left) = *slot {
                if (bytes.len() as u64) >= left {
                    bytes.truncate(left as usize);
                    *slot = None;
                    cut_here = true;
                } else {
                    *slot = Some(left - bytes.len() as u64);
                }
            }
        }
        // Counted before forwarding, so a peer that has read the bytes sees them counted.
        count.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if to.write_all(&bytes).is_err() {
            break;
        }
        if cut_here {
            let _ = to.flush();
            conn.cut(&shared.counters);
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    // Unblock the reader if it still waits for bytes nobody will deliver.
    drop(rx);
    if let Ok(f) = from_handle {
        let _ = f.shutdown(Shutdown::Read);
    }
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

    fn echo_server() -> SocketAddr {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = server.local_addr().unwrap();
        thread::spawn(move || {
            for s in server.incoming() {
                let Ok(mut s) = s else { continue };
                thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        });
        target
    }

    /// Issue 4: "cut once after N bytes" lets exactly N bytes through, then the connection ends
    /// on both sides; later connections pass again.
    #[test]
    fn cuts_once_after_n_bytes() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = server.local_addr().unwrap();
        let sink = thread::spawn(move || {
            let mut sizes = Vec::new();
            for _ in 0..2 {
                let (mut s, _) = server.accept().unwrap();
                let mut got = Vec::new();
                let _ = s.read_to_end(&mut got);
                sizes.push(got.len());
            }
            sizes
        });
        let proxy = Proxy::start(target, Profile::LOOPBACK).unwrap();
        proxy.cut_after(Direction::Up, 1000);
        let mut c = TcpStream::connect(proxy.addr()).unwrap();
        c.write_all(&[7u8; 3000]).unwrap();
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
        assert!(rest.is_empty(), "the client's side ended too");
        assert_eq!(proxy.counters().cuts(), 1);
        assert!(!proxy.cut_pending(Direction::Up));
        let mut c = TcpStream::connect(proxy.addr()).unwrap();
        c.write_all(&[8u8; 3000]).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(sink.join().unwrap(), vec![1000, 3000]);
        assert_eq!(proxy.counters().up(), 4000);
    }

    /// Random cuts from a seed end open connections repeatedly.
    #[test]
    fn random_cuts_end_open_connections() {
        let cuts = Cuts::Random {
            seed: 7,
            min: Duration::from_millis(30),
            max: Duration::from_millis(60),
        };
        let proxy = Proxy::start_with(echo_server(), Profile::LOOPBACK, cuts).unwrap();
        for _ in 0..3 {
            let mut c = TcpStream::connect(proxy.addr()).unwrap();
            c.write_all(b"x").unwrap();
            let mut got = Vec::new();
            // The echo server never closes: only a cut ends this read.
            let _ = c.read_to_end(&mut got);
            assert_eq!(got, b"x");
        }
        assert!(proxy.counters().cuts() >= 3, "{}", proxy.counters().cuts());
    }

    /// Bandwidth and latency are pipelined: a bulk transfer takes bytes ÷ bandwidth plus one
    /// latency, not a latency per chunk.
    #[test]
    fn bulk_transfer_pays_latency_once() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = server.local_addr().unwrap();
        let sink = thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            got.len()
        });
        let profile = Profile {
            one_way_latency: Duration::from_millis(100),
            bits_per_second: Some(8_000_000),
        };
        let proxy = Proxy::start(target, profile).unwrap();
        let t = Instant::now();
        let mut c = TcpStream::connect(proxy.addr()).unwrap();
        c.write_all(&vec![1u8; 500_000]).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(sink.join().unwrap(), 500_000);
        let took = t.elapsed();
        // At least 0.5 s of serialization + 0.1 s latency (how close to that it comes is a
        // figure of the weak-link benchmark, not a test).
        assert!(took >= Duration::from_millis(600), "{took:?}");
    }
}
