//! Photos over weak links (issue 4), end to end: a real server in this process (HTTPS with its
//! self-signed certificate pinned), real device stores, and `sanjin-netsim` between them with a
//! 2G round trip (600 ms) and connection cuts. Fixture photos are small synthetic JPEGs from
//! `sanjin_media::testing`, so the tests stay within a minute or two.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sanjin_client::{
    BlobOptions, BlobProgress, BlobSummary, FlowProgress, FlowStep, Link, PhotoPolicy, PhotoSource,
    SyncOptions, attach_photo, blob_on_server, download_blob, enroll, sync, sync_then_photos,
    upload_blobs,
};
use sanjin_core::domain::RecordData;
use sanjin_core::{RecordDoc, testdata};
use sanjin_media::testing;
use sanjin_netsim::{Cuts, Direction, Profile, Proxy};
use sanjin_server::{Config, Running, ServerData, TlsMode};
use sanjin_store::{Durability, Identity, Store, new_device, new_record_id, now_ms};

/// group-01: members member-0001 and member-0003, leader member-0002 (committed fixtures).
const MEMBER: &str = "member-0001";
const LEADER: &str = "member-0002";

/// The 2G round trip (600 ms) with 3G bandwidth: the round trips and cuts of a village link,
/// without spending minutes on serialization in a test (the benchmark runs the real 2G profile).
const LINK: Profile = Profile {
    one_way_latency: Duration::from_millis(300),
    bits_per_second: Some(1_000_000),
};

struct Server {
    rt: tokio::runtime::Runtime,
    running: Option<Running>,
    dir: PathBuf,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/city");
        let mut data = ServerData::open(dir).unwrap();
        data.import_directory(&fixtures).unwrap();
        drop(data);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let config = Config::new(
            dir,
            "127.0.0.1:0".parse().unwrap(),
            TlsMode::SelfSigned { hostnames: vec![] },
        );
        let running = rt.block_on(sanjin_server::spawn(config)).unwrap();
        Server {
            rt,
            running: Some(running),
            dir: dir.to_path_buf(),
        }
    }

    fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    fn code(&self, member: &str) -> String {
        let m = member.to_string();
        let state = self.running().state().clone();
        self.rt
            .block_on(state.with_data(move |d| d.issue_code(&m).unwrap().code))
            .unwrap()
    }

    fn cert_pem(&self) -> String {
        std::fs::read_to_string(self.running().certificate().unwrap()).unwrap()
    }

    /// The complete blobs on the server: (hash in the name, SHA-256 of the bytes).
    fn blobs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for shard in std::fs::read_dir(self.dir.join("blobs")).unwrap() {
            let shard = shard.unwrap().path();
            if shard.file_name().unwrap() == "partial" {
                continue;
            }
            for f in std::fs::read_dir(&shard).unwrap() {
                let f = f.unwrap().path();
                let bytes = std::fs::read(&f).unwrap();
                out.push((
                    f.file_name().unwrap().to_string_lossy().into_owned(),
                    sanjin_media::hash(&bytes),
                ));
            }
        }
        out.sort();
        out
    }

    fn partial_uploads(&self) -> usize {
        std::fs::read_dir(self.dir.join("blobs").join("partial"))
            .unwrap()
            .count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = self.rt.block_on(r.shutdown());
        }
    }
}

/// A device store of `member` enrolled through `url` (the proxy), the certificate pinned.
fn device(dir: &Path, server: &Server, url: &str, member: &str) -> Store {
    let (device, actor) = new_device();
    let mut s = Store::init(
        &dir.join(format!("{member}-{device}.sqlite")),
        &Identity {
            member: member.into(),
            device,
            actor,
        },
        Durability::Normal,
    )
    .unwrap();
    enroll(
        &mut s,
        url,
        &server.code(member),
        Some(&server.cert_pem()),
        "测试手机",
    )
    .unwrap();
    s
}

fn record_visit(s: &mut Store, title: &str) -> String {
    let mut v = testdata::visit();
    v.group = "group-01".into();
    v.contact_point = "cp-001".into();
    v.title = title.into();
    v.participants = vec![s.identity().member.clone()];
    let id = new_record_id();
    let mut doc = RecordDoc::create(&id, &RecordData::Visit(v), &s.author(), now_ms()).unwrap();
    s.insert(&mut doc, true).unwrap();
    id
}

fn small_photo(seed: u64) -> Vec<u8> {
    testing::jpeg(&testing::photo(160, 120, seed, 6), 85)
}

fn sync_opts() -> SyncOptions {
    SyncOptions {
        timeout: Duration::from_secs(60),
        connect_timeout: Duration::from_secs(10),
        backoff: Duration::from_millis(100),
        retries: 3,
        ..SyncOptions::default()
    }
}

fn blob_opts(chunk: usize, retries: u32) -> BlobOptions {
    BlobOptions {
        policy: PhotoPolicy::Now,
        link: Link::Cellular,
        chunk_bytes: chunk,
        chunk_time: None,
        connect_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(20),
        retries,
        backoff: Duration::from_millis(100),
        cancel: None,
    }
}

fn add(total: &mut BlobSummary, s: &BlobSummary) {
    total.uploaded += s.uploaded;
    total.already_on_server += s.already_on_server;
    total.bytes_sent += s.bytes_sent;
    total.retries += s.retries;
    total.failed.extend(s.failed.iter().cloned());
}

/// Issue 4: 20 visits with 3 photos each, over a 2G-latency link cut again and again at
/// seeded random intervals. The device keeps syncing as a phone would when signal returns;
/// in the end everything is on the server exactly once, every blob verified, the device's
/// outboxes empty, and the leader's device has every visit with its photos and thumbnails.
#[test]
fn twenty_visits_with_photos_arrive_once_over_a_cut_2g_link_issue_4() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"));
    let cuts = Cuts::Random {
        seed: 2017,
        min: Duration::from_millis(2500),
        max: Duration::from_millis(6000),
    };
    let proxy = Proxy::start_with(server.running().addr(), LINK, cuts).unwrap();
    let url = format!("https://{}", proxy.addr());

    // Enrolment may itself be cut: retry it like a member would.
    let mut phone = None;
    for _ in 0..10 {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            device(dir.path(), &server, &url, MEMBER)
        })) {
            Ok(s) => {
                phone = Some(s);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    let mut phone = phone.expect("enrolled within ten tries");

    let mut expected = Vec::new();
    for v in 0..20u64 {
        let id = record_visit(&mut phone, &format!("走访 {v}"));
        for p in 0..3u64 {
            let bytes = small_photo(v * 10 + p);
            let a = attach_photo(
                &mut phone,
                &id,
                PhotoSource::Bytes(&bytes),
                &format!("第 {p} 张"),
            )
            .unwrap();
            expected.push((id.clone(), a.photo.hash.clone(), bytes));
        }
    }
    // The same photo attached again is still one photo and one queued original.
    let (id0, _, bytes0) = &expected[0];
    attach_photo(&mut phone, id0, PhotoSource::Bytes(bytes0), "第 0 张").unwrap();
    assert_eq!(phone.pending_blobs().unwrap().len(), 60);

    let mut total = BlobSummary::default();
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds <= 60, "the link never let everything through");
        let synced = sync(&mut phone, &sync_opts(), &mut |_| {});
        let up = upload_blobs(&mut phone, &blob_opts(64 << 10, 3), &mut |_| {}).unwrap();
        add(&mut total, &up);
        if synced.is_ok()
            && phone.outbox().unwrap().is_empty()
            && phone.pending_blobs().unwrap().is_empty()
        {
            break;
        }
    }
    assert!(
        proxy.counters().cuts() >= 3,
        "the link was cut ({} cuts)",
        proxy.counters().cuts()
    );
    assert!(total.failed.is_empty(), "{:?}", total.failed);
    assert_eq!(
        total.uploaded + total.already_on_server,
        60,
        "every original confirmed once"
    );

    // The server: 60 blobs, each stored once under its hash, no partial upload left behind.
    let blobs = server.blobs();
    assert_eq!(blobs.len(), 60);
    for (name, actual) in &blobs {
        assert_eq!(name, actual, "a stored blob's bytes match its name");
    }
    assert_eq!(server.partial_uploads(), 0);
    for (_, hash, _) in &expected {
        assert!(blobs.iter().any(|(n, _)| n == hash));
    }

    // The leader sees every visit with its three photos and thumbnails (no cuts for this part:
    // the proxy is gone, the leader syncs straight).
    drop(proxy);
    let mut leader = device(dir.path(), &server, &server.running().url(), LEADER);
    sync(&mut leader, &sync_opts(), &mut |_| {}).unwrap();
    for (id, hash, _) in &expected {
        let doc = leader.load(id).unwrap();
        let photos = doc.photos().unwrap();
        assert_eq!(photos.len(), 3, "visit {id}");
        let p = photos.iter().find(|p| &p.hash == hash).unwrap();
        assert!(p.bytes > 0 && p.width == 160 && p.mime == "image/jpeg");
        let thumb = doc.thumbnail(hash).expect("thumbnail in the record");
        assert_eq!(sanjin_media::sniff(&thumb).unwrap().name(), "JPEG");
    }
    let visits = expected
        .iter()
        .map(|(id, _, _)| id)
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(visits.len(), 20);
    // One original downloaded by the leader matches.
    let (id, hash, bytes) = &expected[17];
    let out = dir.path().join("download.jpg");
    download_blob(&leader, id, hash, &out, &blob_opts(64 << 10, 3)).unwrap();
    assert_eq!(&std::fs::read(&out).unwrap(), bytes);
}

/// Issue 4: an original cut off halfway resumes where the server's copy ends: the bytes sent
/// twice are at most one chunk, and the second run sends exactly the rest. A download cut off
/// halfway resumes with an HTTP range and receives no byte twice.
#[test]
fn a_blob_cut_off_halfway_resumes_where_it_stopped_issue_4() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"));
    let proxy = Proxy::start(server.running().addr(), LINK).unwrap();
    let url = format!("https://{}", proxy.addr());
    let mut phone = device(dir.path(), &server, &url, MEMBER);
    let id = record_visit(&mut phone, "带照片的走访");
    let original = testing::jpeg(&testing::photo(1200, 900, 42, 6), 90);
    let size = original.len() as u64;
    assert!(size > 200_000, "a photo of some size: {size}");
    let a = attach_photo(&mut phone, &id, PhotoSource::Bytes(&original), "").unwrap();
    let hash = a.photo.hash.clone();
    sync(&mut phone, &sync_opts(), &mut |_| {}).unwrap();

    // Policies hold the original back where they should.
    let held = |policy, link| BlobOptions {
        policy,
        link,
        ..blob_opts(64 << 10, 0)
    };
    for (policy, link) in [
        (PhotoPolicy::Never, Link::Wifi),
        (PhotoPolicy::WifiOnly, Link::Cellular),
    ] {
        let s = upload_blobs(&mut phone, &held(policy, link), &mut |_| {}).unwrap();
        assert!(s.held_by_policy && s.pending == 1 && s.bytes_sent == 0);
    }

    let chunk = 64 << 10;
    proxy.cut_after(Direction::Up, size / 2);
    let first = upload_blobs(&mut phone, &blob_opts(chunk, 0), &mut |_| {}).unwrap();
    assert!(first.interrupted.is_some(), "{first:?}");
    assert_eq!(first.pending, 1);
    let on_server = blob_on_server(&phone, &hash).unwrap();
    assert_eq!(on_server.state, "partial");
    assert!(
        on_server.received > 0 && on_server.received < size,
        "{on_server:?}"
    );

    let second = upload_blobs(&mut phone, &blob_opts(chunk, 3), &mut |_| {}).unwrap();
    assert_eq!(second.uploaded, 1, "{second:?}");
    assert_eq!(
        second.bytes_sent,
        size - on_server.received,
        "the second run sends exactly the rest"
    );
    let resent = first.bytes_sent + second.bytes_sent - size;
    assert!(
        resent <= chunk as u64,
        "bytes sent twice: {resent}, one chunk: {chunk}"
    );
    assert!(phone.pending_blobs().unwrap().is_empty());
    assert_eq!(blob_on_server(&phone, &hash).unwrap().state, "complete");
    // Once more: nothing to send, nothing stored twice.
    let again = upload_blobs(&mut phone, &blob_opts(chunk, 3), &mut |_| {}).unwrap();
    assert_eq!((again.uploaded, again.bytes_sent), (0, 0));
    assert_eq!(server.blobs(), vec![(hash.clone(), hash.clone())]);

    // The download, cut halfway, retried within the call.
    let mut leader = device(dir.path(), &server, &url, LEADER);
    sync(&mut leader, &sync_opts(), &mut |_| {}).unwrap();
    let out = dir.path().join("original.jpg");
    proxy.cut_after(Direction::Down, size / 2);
    let d = download_blob(&leader, &id, &hash, &out, &blob_opts(chunk, 3)).unwrap();
    assert!(d.retries >= 1, "{d:?}");
    assert_eq!(d.bytes_received, size, "no byte received twice");
    assert_eq!(std::fs::read(&out).unwrap(), original);

    // The same photo attached on another device: the server has it, nothing is stored twice.
    let id2 = record_visit(&mut leader, "同一张照片");
    attach_photo(&mut leader, &id2, PhotoSource::Bytes(&original), "").unwrap();
    let s = upload_blobs(&mut leader, &blob_opts(chunk, 3), &mut |_| {}).unwrap();
    assert_eq!(
        (s.uploaded, s.already_on_server, s.pending),
        (0, 1, 0),
        "{s:?}"
    );
    assert_eq!(server.blobs().len(), 1);
}

/// Issue 11: the README's "sync the records, then the photos" is one call for the CLI, the
/// bridge and the demo. The records go first (every records step is reported before any photo
/// step), then the originals; a failure names its step, and a failure of the photos leaves the
/// records' sync saved.
#[test]
fn issue11_sync_then_photos_sends_the_records_then_the_originals() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"));
    let url = format!("https://{}", server.running().addr());
    let mut phone = device(dir.path(), &server, &url, MEMBER);
    let mut hashes = Vec::new();
    for n in 0..2 {
        let id = record_visit(&mut phone, &format!("先记录后照片 {n}"));
        let a = attach_photo(&mut phone, &id, PhotoSource::Bytes(&small_photo(n)), "").unwrap();
        hashes.push(a.photo.hash);
    }
    let mut steps = Vec::new();
    let done = sync_then_photos(
        &mut phone,
        &sync_opts(),
        &blob_opts(64 << 10, 3),
        &mut |p| steps.push(p),
    )
    .unwrap();
    assert_eq!(done.records.sent, 2, "{done:?}");
    assert_eq!(done.records.still_queued, 0, "{done:?}");
    assert_eq!(
        (done.photos.uploaded, done.photos.pending),
        (2, 0),
        "{done:?}"
    );
    let first_photo = steps
        .iter()
        .position(|p| matches!(p, FlowProgress::Photos(_)))
        .expect("the originals' progress");
    assert!(
        first_photo > 0,
        "the records' progress comes first: {steps:?}"
    );
    assert!(
        steps[first_photo..]
            .iter()
            .all(|p| matches!(p, FlowProgress::Photos(_))),
        "{steps:?}"
    );
    let whole: std::collections::BTreeSet<usize> = steps
        .iter()
        .filter_map(|p| match p {
            FlowProgress::Photos(BlobProgress::Uploading {
                index, sent, size, ..
            }) if sent == size => Some(*index),
            _ => None,
        })
        .collect();
    assert_eq!(whole.len(), 2, "each original reported whole: {steps:?}");
    assert!(phone.pending_blobs().unwrap().is_empty());
    hashes.sort();
    let on_server: Vec<String> = server.blobs().into_iter().map(|(h, _)| h).collect();
    assert_eq!(on_server, hashes);

    // The photos' step fails (cancelled before its first request): the records are synced.
    let id = record_visit(&mut phone, "照片被取消");
    attach_photo(&mut phone, &id, PhotoSource::Bytes(&small_photo(7)), "").unwrap();
    let cancelled = BlobOptions {
        cancel: Some(std::sync::Arc::new(std::sync::atomic::AtomicBool::new(
            true,
        ))),
        ..blob_opts(64 << 10, 3)
    };
    let e = sync_then_photos(&mut phone, &sync_opts(), &cancelled, &mut |_| {}).unwrap_err();
    assert_eq!(e.step, FlowStep::Photos);
    assert!(matches!(*e.error, sanjin_client::Error::Cancelled), "{e}");
    assert!(phone.outbox().unwrap().is_empty(), "the record went first");
    assert_eq!(phone.pending_blobs().unwrap().len(), 1);

    // The records' step fails (a store never enrolled): the photos are not tried.
    let (device, actor) = new_device();
    let mut alone = Store::init(
        &dir.path().join("alone.sqlite"),
        &Identity {
            member: MEMBER.into(),
            device,
            actor,
        },
        Durability::Normal,
    )
    .unwrap();
    let id = record_visit(&mut alone, "未注册");
    attach_photo(&mut alone, &id, PhotoSource::Bytes(&small_photo(8)), "").unwrap();
    let mut heard = 0;
    let e = sync_then_photos(
        &mut alone,
        &sync_opts(),
        &blob_opts(64 << 10, 3),
        &mut |_| heard += 1,
    )
    .unwrap_err();
    assert_eq!(e.step, FlowStep::Records);
    assert!(matches!(*e.error, sanjin_client::Error::NotEnrolled), "{e}");
    assert_eq!(heard, 0);
    assert_eq!(alone.pending_blobs().unwrap().len(), 1);
}
