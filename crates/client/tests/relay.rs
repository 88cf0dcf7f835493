//! Issue 12 end to end: member A has no signal; A's records and photo reach the server through
//! member B's phone (a bundle), land once attributed to A with A's signature, and the server's
//! receipt comes back to A in a bundle from B — 已送达 on A's phone while A never connected.
//! A real server in this process on loopback with its self-signed TLS certificate pinned, real
//! device stores (the harness of `tests/server.rs`). Directory and accounts come from the
//! committed fixtures (`fixtures/city`): group-01 has members member-0001 and member-0003 and its
//! leader member-0002; member-0027 is in group-02.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sanjin_client::bundle::{ExportOptions, export_bundle, import_bundle};
use sanjin_client::{
    BlobOptions, Link, PhotoPolicy, PhotoSource, SyncOptions, attach_photo, enroll,
    sync_then_photos,
};
use sanjin_core::RecordDoc;
use sanjin_core::domain::RecordData;
use sanjin_core::testdata;
use sanjin_media::testing;
use sanjin_server::{BlobHash, BlobReader, Config, Running, ServerData, TlsMode};
use sanjin_store::{Durability, Identity, Store, new_device, new_record_id, now_ms};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/city")
}

/// A real server in this process.
struct Server {
    rt: tokio::runtime::Runtime,
    running: Option<Running>,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let mut data = ServerData::open(dir).unwrap();
        data.import_directory(&fixtures()).unwrap();
        drop(data);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut config = Config::new(dir, addr, TlsMode::SelfSigned { hostnames: vec![] });
        config.shutdown_grace = Duration::from_secs(2);
        let running = rt.block_on(sanjin_server::spawn(config)).unwrap();
        Server {
            rt,
            running: Some(running),
        }
    }

    fn with_data<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut ServerData) -> T + Send + 'static,
    ) -> T {
        let state = self.running.as_ref().unwrap().state().clone();
        self.rt.block_on(state.with_data(f)).unwrap()
    }

    fn url(&self) -> String {
        self.running.as_ref().unwrap().url()
    }

    fn cert_pem(&self) -> String {
        let path = self.running.as_ref().unwrap().certificate().unwrap();
        std::fs::read_to_string(path).unwrap()
    }

    /// How many change-log entries the server holds for a record.
    fn log_entries(&self, doc: &str) -> i64 {
        let doc = doc.to_string();
        self.with_data(move |d| {
            rusqlite::Connection::open(d.dir().join(sanjin_server::DB_FILE))
                .unwrap()
                .query_row(
                    "SELECT count(*) FROM change_log WHERE doc_id = ?1",
                    [doc],
                    |r| r.get(0),
                )
                .unwrap()
        })
    }

    /// When the server last heard from a device.
    fn last_sync(&self, device: &str) -> Option<i64> {
        let device = device.to_string();
        self.with_data(move |d| {
            d.devices()
                .unwrap()
                .into_iter()
                .find(|x| x.device_id == device)
                .unwrap()
                .last_sync_at_ms
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown()).unwrap();
        }
    }
}

/// A device store for `member`, enrolled with the server (its certificate pinned).
fn device(dir: &Path, server: &Server, member: &str) -> Store {
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
    let m = member.to_string();
    let code = server.with_data(move |d| d.issue_code(&m).unwrap().code);
    enroll(&mut s, &server.url(), &code, Some(&server.cert_pem()), "测试设备").unwrap();
    s
}

fn opts() -> SyncOptions {
    SyncOptions {
        timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(5),
        backoff: Duration::from_millis(20),
        ..SyncOptions::default()
    }
}

fn photos() -> BlobOptions {
    BlobOptions {
        policy: PhotoPolicy::Now,
        link: Link::Wifi,
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(20),
        backoff: Duration::from_millis(20),
        ..BlobOptions::default()
    }
}

fn sync_all(s: &mut Store) -> sanjin_client::FlowSummary {
    let out = sync_then_photos(s, &opts(), &photos(), &mut |_| {}).unwrap();
    assert_eq!(out.trust_error, None, "{out:?}");
    out
}

fn record_visit(s: &mut Store, group: &str, title: &str, resident: &str) -> String {
    record_visit_with(s, group, title, resident, &[])
}

/// A visit with other members taking part (`with`).
fn record_visit_with(
    s: &mut Store,
    group: &str,
    title: &str,
    resident: &str,
    with: &[&str],
) -> String {
    let mut v = testdata::visit();
    v.group = group.into();
    v.title = title.into();
    v.summary = format!("{resident}家屋顶漏雨，已联系村委会");
    v.participants = vec![s.identity().member.clone()];
    v.participants.extend(with.iter().map(|m| m.to_string()));
    let id = new_record_id();
    let mut doc = RecordDoc::create(&id, &RecordData::Visit(v), &s.author(), now_ms()).unwrap();
    s.insert(&mut doc, true).unwrap();
    id
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn issue12_records_and_a_photo_reach_the_server_through_anothers_bundle_and_come_back_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"));
    let mut a = device(dir.path(), &server, "member-0001");
    let mut b = device(dir.path(), &server, "member-0003");
    // Enrollment fetched the keys: a phone enrolled in town can export in the village.
    let kd = a.key_directory().unwrap().expect("the key directory at enrollment");
    assert!(kd.group("group-01").is_some());
    sync_all(&mut a);
    sync_all(&mut b);
    let a_device = a.identity().device.clone();
    let a_seen = server.last_sync(&a_device);

    // In the village, without signal: two visits and a photo.
    let v1 = record_visit(&mut a, "group-01", "走访甲村", "张桂兰");
    let v2 = record_visit(&mut a, "group-01", "走访乙村", "李秀英");
    let photo = testing::jpeg(&testing::photo(640, 480, 12, 6), 85);
    let attached = attach_photo(&mut a, &v1, PhotoSource::Bytes(&photo), "屋顶").unwrap();
    let exported = export_bundle(
        &a,
        &ExportOptions {
            with_originals: true,
            ..ExportOptions::default()
        },
        now_ms(),
    )
    .unwrap();
    assert_eq!(exported.originals, 1);
    // Sent over a chat app, the file exposes no resident's name.
    for p in &exported.parts {
        assert!(!contains(p, "张桂兰".as_bytes()) && !contains(p, "李秀英".as_bytes()));
    }
    // B imports (the parts in reverse order), then reaches town and syncs.
    for p in exported.parts.iter().rev() {
        import_bundle(&mut b, p, now_ms()).unwrap();
    }
    assert!(b.exists(&v1).unwrap() && b.exists(&v2).unwrap());
    let out = sync_all(&mut b);
    assert_eq!(out.trust.receipts, 2, "B's trust refresh brings the receipts: {out:?}");
    assert!(b.relayed_unreceipted().unwrap().is_empty());

    // On the server: each record once, attributed to A, with A's signature; the original too.
    for v in [&v1, &v2] {
        assert_eq!(server.log_entries(v), 1, "{v} arrives once");
        let (id, dev) = (v.to_string(), a_device.clone());
        let (members, signers) = server.with_data(move |d| {
            let mut doc = d.store().load(&id).unwrap();
            let members: Vec<(String, String)> = doc
                .history()
                .into_iter()
                .map(|e| (e.member, e.device))
                .collect();
            let hashes: Vec<_> = doc.changes().iter().map(|c| c.hash()).collect();
            let signers: Vec<String> = d
                .store()
                .sigs_for(&hashes)
                .unwrap()
                .into_iter()
                .map(|s| s.signer)
                .collect();
            let _ = dev;
            (members, signers)
        });
        assert!(!members.is_empty());
        for m in &members {
            assert_eq!(m, &("member-0001".to_string(), a_device.clone()));
        }
        assert!(signers.iter().all(|s| *s == a_device), "{signers:?}");
        assert!(!signers.is_empty(), "A's signature is kept");
    }
    let hash = BlobHash::parse(&attached.photo.hash).unwrap();
    assert!(
        server.with_data(move |d| d.blob_proven_for(&hash, BlobReader::Group("group-01")).unwrap()),
        "the photo original reached the server"
    );

    // B's bundle back to A: A's records are 已送达, and A never connected.
    assert_eq!(a.outbox().unwrap().len(), 2);
    let back = export_bundle(&b, &ExportOptions::default(), now_ms()).unwrap();
    for p in &back.parts {
        import_bundle(&mut a, p, now_ms()).unwrap();
    }
    assert!(a.outbox().unwrap().is_empty(), "已送达: A's outbox is empty");
    assert!(a.delivered(&v1).unwrap() && a.delivered(&v2).unwrap());
    assert_eq!(server.last_sync(&a_device), a_seen, "A never connected");
}

#[test]
fn issue12_cargo_for_another_group_is_carried_opaque_and_handed_to_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"));
    let mut far = device(dir.path(), &server, "member-0027");
    let mut b = device(dir.path(), &server, "member-0003");
    sync_all(&mut far);
    sync_all(&mut b);
    // member-0003 (group-01) joined group-02's activity; member-0027 records it and exports for
    // member-0003: the group-02 record travels as cargo sealed to the server, which B carries
    // but cannot read.
    let v = record_visit_with(&mut far, "group-02", "走访丙村", "王建国", &["member-0003"]);
    let exported = export_bundle(
        &far,
        &ExportOptions {
            for_member: Some("member-0003".into()),
            ..ExportOptions::default()
        },
        now_ms(),
    )
    .unwrap();
    assert!(exported.cargo >= 1, "{} cargo parts", exported.cargo);
    for p in &exported.parts {
        import_bundle(&mut b, p, now_ms()).unwrap();
    }
    assert!(!b.exists(&v).unwrap(), "B cannot read group-02's record");
    assert_eq!(b.cargo().unwrap().len(), 1);
    let out = sync_all(&mut b);
    assert_eq!(out.trust.cargo_delivered, 1, "{out:?}");
    assert!(b.cargo().unwrap().is_empty());
    assert_eq!(server.log_entries(&v), 1);
    let id = v.clone();
    let author = server.with_data(move |d| {
        d.store().load(&id).unwrap().history()[0].member.clone()
    });
    assert_eq!(author, "member-0027");
    // Its author's phone learns 已送达 at its next sync as usual.
    sync_all(&mut far);
    assert!(far.outbox().unwrap().is_empty());
}
