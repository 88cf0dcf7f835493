//! `sanjin-bench weak-link`: photos over weak links (issue 4). A real server in this process
//! (HTTPS, its self-signed certificate pinned), real device stores, and `sanjin-netsim` between
//! them imposing the link profile (`2g`: 100 kbit/s each way, 600 ms round trip; `3g`: 1 Mbit/s,
//! 200 ms), counting every byte on the TCP connections (TLS and HTTP included).
//!
//! Scenarios (one JSON line each):
//!
//! - `thumbnails` (2g, no cuts): a member's device holds 20 new visits with one 12-megapixel
//!   photo each (attached before the clock starts: the thumbnail is made at capture). Timed from
//!   the member's `sync` to the end of the leader's `sync`, after which the leader's device shows
//!   the 20 visits with their thumbnails. Both devices are on the 2g link, so everything crosses
//!   it twice (up from the member, down to the leader).
//! - `originals` (3g, no cuts): six 12-megapixel JPEGs, attached and their records synced, are
//!   uploaded by `upload_blobs` (policy `now`, default chunking) until the server holds them.
//! - `resume` (2g): one original, the connection cut once when about half of it has crossed;
//!   `upload_blobs` resumes: `resent_bytes` (blob bytes sent twice) against `chunk_bytes` (the
//!   largest chunk of the run).
//! - `media`: `sanjin-bench media`'s figures per 12-megapixel photo (thumbnail, display copy).
//!
//! `limit_ms` is the physical limit: the bytes that must cross ÷ the bandwidth + one round trip.
//! The bytes that must cross are the payload: for `thumbnails` the thumbnails plus the visits'
//! data (their compact JSON, zstd level 3), twice (member → server, server → leader); for
//! `originals` the originals' bytes. `wire_limit_ms` is the same with the bytes measured on the
//! wire, so `ms / wire_limit_ms` is the time lost to waiting (round trips) and
//! `wire_limit_ms / limit_ms` the bytes added (TLS, HTTP, automerge, heads).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use sanjin_client::{BlobOptions, PhotoSource, SyncOptions};
use sanjin_core::RecordDoc;
use sanjin_core::domain::RecordData;
use sanjin_media::testing;
use sanjin_netsim::{Direction, Profile, Proxy};
use sanjin_server::{Config, Running, ServerData, TlsMode};
use sanjin_store::{Durability, Identity, Store};
use serde_json::{Value, json};

use crate::round;

const MEMBER: &str = "member-0001";
const LEADER: &str = "member-0002";
const VISITS: usize = 20;
const ORIGINALS: usize = 6;

fn profile_name(p: &Profile) -> &'static str {
    if *p == Profile::G2 {
        "2g"
    } else if *p == Profile::G3 {
        "3g"
    } else {
        "custom"
    }
}

fn rtt_ms(p: &Profile) -> f64 {
    p.one_way_latency.as_secs_f64() * 2000.0
}

/// Bytes ÷ bandwidth + one round trip, in ms.
fn limit_ms(p: &Profile, bytes: u64) -> f64 {
    let bps = p.bits_per_second.expect("a limited profile") as f64;
    bytes as f64 * 8.0 / bps * 1000.0 + rtt_ms(p)
}

/// A 12-megapixel JPEG like a phone's (quality 90), distinct per seed.
fn photo_12mp(seed: u64) -> Vec<u8> {
    testing::jpeg(&testing::photo(4000, 3000, seed, 6), 90)
}

struct Server {
    rt: tokio::runtime::Runtime,
    running: Option<Running>,
    cert_pem: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Result<Server> {
        let dir = tempfile::Builder::new()
            .prefix("sanjin-bench-weak-")
            .tempdir()?;
        let data_dir = dir.path().join("data");
        let mut data = ServerData::open(&data_dir)?;
        data.import_directory(&sanjin_fixtures::committed_dir())?;
        drop(data);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let config = Config::new(
            &data_dir,
            "127.0.0.1:0".parse().expect("an address"),
            TlsMode::SelfSigned { hostnames: vec![] },
        );
        let running = rt.block_on(sanjin_server::spawn(config))?;
        let cert = running
            .certificate()
            .ok_or_else(|| anyhow!("no self-signed certificate"))?;
        let cert_pem = std::fs::read_to_string(cert)?;
        Ok(Server {
            rt,
            running: Some(running),
            cert_pem,
            _dir: dir,
        })
    }

    fn running(&self) -> &Running {
        self.running.as_ref().expect("running until dropped")
    }

    /// An enrolled device store of `member`, talking to the server through `proxy`, synced once
    /// (the directory: setup, not measured).
    fn device(&self, dir: &std::path::Path, proxy: &Proxy, member: &str) -> Result<Store> {
        let (device, actor) = sanjin_store::new_device();
        let mut store = Store::init(
            &dir.join(format!("{member}-{device}.sqlite")),
            &Identity {
                member: member.into(),
                device,
                actor,
            },
            Durability::Full,
        )?;
        let m = member.to_string();
        let state = self.running().state().clone();
        let code = self
            .rt
            .block_on(state.with_data(move |d| d.issue_code(&m).map_err(|e| e.to_string())))
            .map_err(|e| anyhow!("{e}"))?
            .map_err(|e| anyhow!("{e}"))?
            .code;
        sanjin_client::enroll(
            &mut store,
            &format!("https://{}", proxy.addr()),
            &code,
            Some(&self.cert_pem),
            "sanjin-bench",
        )?;
        sanjin_client::sync(&mut store, &SyncOptions::default(), &mut |_| {})?;
        Ok(store)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = self.rt.block_on(r.shutdown());
        }
    }
}

/// A new visit of group-01 on `store`; returns its id and its data.
fn new_visit(store: &mut Store, n: usize) -> Result<(String, RecordData)> {
    let mut v = sanjin_core::testdata::visit();
    v.group = "group-01".into();
    v.contact_point = "cp-001".into();
    v.title = format!("走访 {n}");
    v.participants = vec![store.identity().member.clone()];
    let id = sanjin_store::new_record_id();
    let data = RecordData::Visit(v);
    let mut doc = RecordDoc::create(&id, &data, &store.author(), sanjin_store::now_ms())?;
    store.insert(&mut doc, true)?;
    Ok((id, data))
}

/// Waits until no byte has crossed the proxy for 200 ms.
fn settle(proxy: &Proxy) {
    let mut last = proxy.counters().total();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = proxy.counters().total();
        if now == last {
            return;
        }
        last = now;
    }
}

/// `sanjin-bench weak-link`: which scenarios, and the runs of its `media` scenario.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct WeakLinkArgs {
    /// Only these scenarios (comma-separated: thumbnails, originals, resume, media); all when
    /// not given.
    #[arg(long, value_delimiter = ',', value_name = "SCENARIO,…")]
    pub only: Vec<String>,
    #[command(flatten)]
    pub media: crate::media::MediaArgs,
}

pub fn run(args: &WeakLinkArgs, emit: &mut dyn FnMut(Value)) -> Result<()> {
    let only = &args.only;
    let all = ["thumbnails", "originals", "resume", "media"];
    for o in only {
        if !all.contains(&o.as_str()) {
            bail!("unknown weak-link scenario {o}; known: {}", all.join(", "));
        }
    }
    let wanted = |s: &str| only.is_empty() || only.iter().any(|o| o == s);
    if wanted("media") {
        crate::media::run(&args.media, &mut |mut v| {
            v["bench"] = json!("weak-link");
            emit(v)
        })?;
    }
    if wanted("thumbnails") {
        emit(thumbnails()?);
    }
    if wanted("originals") {
        emit(originals()?);
    }
    if wanted("resume") {
        emit(resume()?);
    }
    Ok(())
}

fn thumbnails() -> Result<Value> {
    let profile = Profile::G2;
    let server = Server::start()?;
    let proxy = Proxy::start(server.running().addr(), profile)?;
    let dir = tempfile::tempdir()?;
    eprintln!("thumbnails: enrolling two devices over 2g …");
    let mut member = server.device(dir.path(), &proxy, MEMBER)?;
    let mut leader = server.device(dir.path(), &proxy, LEADER)?;
    eprintln!("thumbnails: {VISITS} visits with a 12-megapixel photo each …");
    let mut thumbs = 0u64;
    let mut records = Vec::new();
    let mut expected = Vec::new();
    for n in 0..VISITS {
        let (id, data) = new_visit(&mut member, n)?;
        let photo = photo_12mp(1000 + n as u64);
        let a = sanjin_client::attach_photo(
            &mut member,
            &id,
            PhotoSource::Bytes(&photo),
            &format!("第 {n} 次走访"),
        )?;
        thumbs += a.thumbnail_bytes as u64;
        records.push(serde_json::to_string(&json!({ "id": id, "data": data }))?);
        expected.push((id, a.photo.hash));
    }
    let records_ref = zstd::bulk::compress((records.join("\n") + "\n").as_bytes(), 3)?.len() as u64;
    let must_cross = 2 * (thumbs + records_ref);

    eprintln!("thumbnails: member syncs, then the leader …");
    settle(&proxy);
    proxy.counters().reset();
    let t = Instant::now();
    let up = sanjin_client::sync(&mut member, &SyncOptions::default(), &mut |_| {})?;
    let down = sanjin_client::sync(&mut leader, &SyncOptions::default(), &mut |_| {})?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    settle(&proxy);
    let (bytes, bytes_up, bytes_down, connections) = (
        proxy.counters().total(),
        proxy.counters().up(),
        proxy.counters().down(),
        proxy.counters().connections(),
    );
    for (id, hash) in &expected {
        let doc = leader.load(id)?;
        ensure!(
            doc.thumbnail(hash).is_some_and(|t| !t.is_empty()),
            "the leader lacks the thumbnail of {id}"
        );
    }
    let limit = limit_ms(&profile, must_cross);
    Ok(json!({
        "bench": "weak-link",
        "scenario": "thumbnails",
        "profile": profile_name(&profile),
        "visits": VISITS,
        "photos_per_visit": 1,
        "ms": round(ms),
        "limit_ms": round(limit),
        "ratio": round(ms / limit),
        "target_ratio": 1.3,
        "bytes": bytes,
        "bytes_up": bytes_up,
        "bytes_down": bytes_down,
        "must_cross_bytes": must_cross,
        "thumbnail_bytes": thumbs,
        "records_reference_bytes": records_ref,
        "wire_limit_ms": round(limit_ms(&profile, bytes)),
        "round_trips": up.round_trips + down.round_trips,
        "connections": connections,
    }))
}

fn originals() -> Result<Value> {
    let profile = Profile::G3;
    let server = Server::start()?;
    let proxy = Proxy::start(server.running().addr(), profile)?;
    let dir = tempfile::tempdir()?;
    eprintln!("originals: enrolling over 3g …");
    let mut member = server.device(dir.path(), &proxy, MEMBER)?;
    let (id, _) = new_visit(&mut member, 0)?;
    let mut must_cross = 0u64;
    let mut hashes = Vec::new();
    eprintln!("originals: {ORIGINALS} 12-megapixel photos …");
    for n in 0..ORIGINALS {
        let photo = photo_12mp(2000 + n as u64);
        must_cross += photo.len() as u64;
        let a = sanjin_client::attach_photo(&mut member, &id, PhotoSource::Bytes(&photo), "")?;
        hashes.push(a.photo.hash);
    }
    sanjin_client::sync(&mut member, &SyncOptions::default(), &mut |_| {})?;
    eprintln!("originals: uploading {must_cross} bytes …");
    settle(&proxy);
    proxy.counters().reset();
    let t = Instant::now();
    let s = sanjin_client::upload_blobs(&mut member, &BlobOptions::default(), &mut |_| {})?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    settle(&proxy);
    let (bytes, bytes_up, bytes_down, connections) = (
        proxy.counters().total(),
        proxy.counters().up(),
        proxy.counters().down(),
        proxy.counters().connections(),
    );
    ensure!(
        s.uploaded == ORIGINALS && s.pending == 0,
        "not every original arrived: {s:?}"
    );
    for h in &hashes {
        let on = sanjin_client::blob_on_server(&member, h)?;
        ensure!(on.state == "complete", "{h} is {}", on.state);
    }
    let limit = limit_ms(&profile, must_cross);
    Ok(json!({
        "bench": "weak-link",
        "scenario": "originals",
        "profile": profile_name(&profile),
        "photos": ORIGINALS,
        "ms": round(ms),
        "limit_ms": round(limit),
        "ratio": round(ms / limit),
        "target_ratio": 1.2,
        "bytes": bytes,
        "bytes_up": bytes_up,
        "bytes_down": bytes_down,
        "must_cross_bytes": must_cross,
        "wire_limit_ms": round(limit_ms(&profile, bytes)),
        "blob_bytes_sent": s.bytes_sent,
        "largest_chunk_bytes": s.largest_chunk,
        "connections": connections,
    }))
}

fn resume() -> Result<Value> {
    let profile = Profile::G2;
    let server = Server::start()?;
    let proxy = Proxy::start(server.running().addr(), profile)?;
    let dir = tempfile::tempdir()?;
    eprintln!("resume: enrolling over 2g …");
    let mut member = server.device(dir.path(), &proxy, MEMBER)?;
    let (id, _) = new_visit(&mut member, 0)?;
    let photo = photo_12mp(3000);
    let size = photo.len() as u64;
    let a = sanjin_client::attach_photo(&mut member, &id, PhotoSource::Bytes(&photo), "")?;
    sanjin_client::sync(&mut member, &SyncOptions::default(), &mut |_| {})?;
    settle(&proxy);
    proxy.counters().reset();
    proxy.cut_after(Direction::Up, size / 2);
    eprintln!("resume: uploading {size} bytes over 2g, cut once halfway (a few minutes) …");
    let t = Instant::now();
    let s = sanjin_client::upload_blobs(&mut member, &BlobOptions::default(), &mut |_| {})
        .context("the upload")?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    settle(&proxy);
    let (bytes, connections) = (proxy.counters().total(), proxy.counters().connections());
    ensure!(
        !proxy.cut_pending(Direction::Up) && proxy.counters().cuts() == 1,
        "the cut did not happen"
    );
    ensure!(s.uploaded == 1 && s.pending == 0, "not uploaded: {s:?}");
    ensure!(
        sanjin_client::blob_on_server(&member, &a.photo.hash)?.state == "complete",
        "the server does not hold the photo"
    );
    let resent = s.bytes_sent.saturating_sub(s.bytes_needed);
    Ok(json!({
        "bench": "weak-link",
        "scenario": "resume",
        "profile": profile_name(&profile),
        "original_bytes": size,
        "cut_after_bytes": size / 2,
        "resent_bytes": resent,
        "chunk_bytes": s.largest_chunk,
        "met": resent <= s.largest_chunk,
        "retries": s.retries,
        "ms": round(ms),
        "limit_ms": round(limit_ms(&profile, size)),
        "bytes": bytes,
        "connections": connections,
    }))
}
