//! End-to-end tests of sanjin-client against the real sanjin-server, running in this process on
//! loopback (HTTPS with its self-signed certificate pinned, or plain HTTP where a test proxy must
//! see the bytes). Directory and accounts come from the committed fixtures (`fixtures/city`):
//! group-01 has members member-0001 and member-0003 and its leader member-0002; member-0027 is
//! in group-02.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use sanjin_client::{Error, RefusalCode, SyncOptions, SyncSummary, enroll, meta, sync};
use sanjin_core::domain::RecordData;
use sanjin_core::workflow::EventType;
use sanjin_core::{Edit, RecordDoc, testdata};
use sanjin_server::{Config, Running, ServerData, TlsMode};
use sanjin_store::{Durability, Identity, Store, new_device, new_record_id, now_ms};
use serde_json::json;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/city")
}

/// A real server in this process.
struct Server {
    rt: tokio::runtime::Runtime,
    running: Option<Running>,
    dir: PathBuf,
    tls: TlsMode,
    addr: SocketAddr,
}

impl Server {
    fn start(dir: &Path, tls: TlsMode) -> Server {
        let mut data = ServerData::open(dir).unwrap();
        data.import_directory(&fixtures()).unwrap();
        drop(data);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut s = Server {
            rt,
            running: None,
            dir: dir.to_path_buf(),
            tls,
            addr: "127.0.0.1:0".parse().unwrap(),
        };
        s.restart();
        s
    }

    /// (Re)starts on the same address (a fresh port the first time).
    fn restart(&mut self) {
        let mut config = Config::new(&self.dir, self.addr, self.tls.clone());
        config.shutdown_grace = Duration::from_secs(2);
        let running = self.rt.block_on(sanjin_server::spawn(config)).unwrap();
        self.addr = running.addr();
        self.running = Some(running);
    }

    fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown()).unwrap();
        }
    }

    fn url(&self) -> String {
        self.running.as_ref().unwrap().url()
    }

    fn cert_pem(&self) -> Option<String> {
        let path = self.running.as_ref()?.certificate()?;
        Some(std::fs::read_to_string(path).unwrap())
    }

    fn with_data<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut ServerData) -> T + Send + 'static,
    ) -> T {
        let state = self.running.as_ref().unwrap().state().clone();
        self.rt.block_on(state.with_data(f)).unwrap()
    }

    fn code(&self, member: &str) -> String {
        let m = member.to_string();
        self.with_data(move |d| d.issue_code(&m).unwrap().code)
    }

    /// How many change-log entries the server holds for a record.
    fn log_entries(&self, doc: &str) -> i64 {
        let doc = doc.to_string();
        self.with_data(move |d| {
            d.store()
                .connection()
                .query_row(
                    "SELECT count(*) FROM change_log WHERE doc_id = ?1",
                    [doc],
                    |r| r.get(0),
                )
                .unwrap()
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn self_signed() -> TlsMode {
    TlsMode::SelfSigned { hostnames: vec![] }
}

/// A device store for `member`, enrolled with the server (its certificate pinned under TLS).
fn device(dir: &Path, server: &Server, member: &str) -> Store {
    let mut s = new_store(dir, member);
    let code = server.code(member);
    let e = enroll(
        &mut s,
        &server.url(),
        &code,
        server.cert_pem().as_deref(),
        "测试设备",
    )
    .unwrap();
    assert_eq!(e.member, member);
    s
}

fn new_store(dir: &Path, member: &str) -> Store {
    let (device, actor) = new_device();
    Store::init(
        &dir.join(format!("{member}-{device}.sqlite")),
        &Identity {
            member: member.into(),
            device,
            actor,
        },
        Durability::Normal,
    )
    .unwrap()
}

fn opts() -> SyncOptions {
    SyncOptions {
        timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(5),
        backoff: Duration::from_millis(20),
        ..SyncOptions::default()
    }
}

fn sync_ok(s: &mut Store) -> SyncSummary {
    sync(s, &opts(), &mut |_| {}).unwrap()
}

fn record_visit(s: &mut Store, group: &str, cp: &str, title: &str) -> String {
    let mut v = testdata::visit();
    v.group = group.into();
    v.contact_point = cp.into();
    v.title = title.into();
    v.participants = vec![s.identity().member.clone()];
    let id = new_record_id();
    let mut doc = RecordDoc::create(&id, &RecordData::Visit(v), &s.author(), now_ms()).unwrap();
    s.insert(&mut doc, true).unwrap();
    id
}

fn set_title(s: &mut Store, id: &str, title: &str) {
    s.update(id, |d, by| {
        d.edit(
            by,
            now_ms(),
            &[Edit::Set {
                field: "title".into(),
                value: json!(title),
            }],
        )
    })
    .unwrap();
}

/// The store's field records (not the directory), with their heads.
fn field_records(s: &Store) -> Vec<(String, Vec<sanjin_core::ChangeHash>)> {
    let mut out = Vec::new();
    for (id, kind) in s.ids().unwrap() {
        if kind == "visit" || kind == "opinion" || kind == "household" || kind == "plan" {
            let mut heads = s.load(&id).unwrap().heads();
            heads.sort();
            out.push((id, heads));
        }
    }
    out
}

fn title(s: &Store, id: &str) -> String {
    s.index_entry(id).unwrap().unwrap().title
}

fn conflicts(s: &Store, id: &str) -> u32 {
    s.index_entry(id).unwrap().unwrap().conflicts
}

#[test]
fn members_and_leader_sync_in_any_order_and_converge() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"), self_signed());
    let mut m1 = device(dir.path(), &server, "member-0001");
    let mut m3 = device(dir.path(), &server, "member-0003");
    let mut lead = device(dir.path(), &server, "member-0002");

    // Everyone records offline, then they sync in different orders.
    let mut mine = Vec::new();
    for (s, who) in [(&mut m1, "一"), (&mut m3, "三"), (&mut lead, "组长")] {
        for i in 0..2 {
            mine.push(record_visit(
                s,
                "group-01",
                "cp-001",
                &format!("{who}的走访 {i}"),
            ));
        }
    }
    let first = sync_ok(&mut m3);
    assert_eq!(first.sent, 2);
    assert_eq!(
        first.round_trips, 1,
        "one round trip: push 2, pull the directory"
    );
    assert!(first.received > 400, "the directory arrives: {first:?}");
    assert_eq!(sync_ok(&mut lead).sent, 2);
    let s = sync_ok(&mut m1);
    assert_eq!((s.sent, s.round_trips), (2, 1));
    sync_ok(&mut m3);
    sync_ok(&mut lead);
    let all = field_records(&m1);
    assert_eq!(all.len(), 6);
    assert_eq!(field_records(&m3), all);
    assert_eq!(field_records(&lead), all);
    for s in [&m1, &m3, &lead] {
        assert!(s.outbox().unwrap().is_empty());
    }

    // The same visit edited on two phones offline: a real conflict.
    let v = mine[0].clone();
    set_title(&mut m1, &v, "委员一改的标题");
    set_title(&mut m3, &v, "委员三改的标题");
    sync_ok(&mut m1);
    let s3 = sync_ok(&mut m3);
    assert_eq!((s3.sent, s3.received, s3.conflicts), (1, 1, 1));
    let sl = sync_ok(&mut lead);
    assert_eq!(sl.conflicts, 1, "{sl:?}");
    assert_eq!(conflicts(&lead, &v), 1);

    // A member may not settle it: the phone refuses first (issue 10) …
    assert_eq!(sync_ok(&mut m1).conflicts, 1);
    assert!(
        m1.update(&v, |d, by| {
            d.resolve(by, now_ms(), "title", json!("委员一改的标题"))
        })
        .is_err()
    );
    // … and a phone that makes it anyway (written past the store's check) is refused by the
    // server, the change stays queued.
    let mut d = m1.load(&v).unwrap();
    d.resolve(&m1.author(), now_ms(), "title", json!("委员一改的标题"))
        .unwrap();
    m1.insert(&mut d, true).unwrap();
    let s1 = sync_ok(&mut m1);
    assert_eq!(s1.refused.len(), 1);
    assert_eq!(s1.refused[0].1, RefusalCode::Role);
    assert_eq!(m1.outbox().unwrap().len(), 1);

    // The leader resolves; the resolution reaches every phone.
    lead.update(&v, |d, by| {
        d.resolve(by, now_ms(), "title", json!("委员三改的标题"))
    })
    .unwrap();
    assert_eq!(sync_ok(&mut lead).sent, 1);
    sync_ok(&mut m3);
    for s in [&lead, &m3] {
        assert_eq!(title(s, &v), "委员三改的标题");
        assert_eq!(conflicts(s, &v), 0);
    }
    // member-0001's refused resolve stays on its phone only; the leader's resolution arrives.
    sync_ok(&mut m1);
    let mut on_m1 = m1.load(&v).unwrap();
    for h in lead.load(&v).unwrap().heads() {
        assert!(on_m1.has_change(&h));
    }
    assert_eq!(
        m1.outbox().unwrap().len(),
        1,
        "its own resolve is still refused, still queued"
    );
    assert_eq!(field_records(&m3), field_records(&lead));
    assert_eq!(field_records(&lead).len(), 6);
}

#[test]
fn a_pinned_certificate_is_the_only_trust() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"), self_signed());
    let other = Server::start(&dir.path().join("other"), self_signed());
    let mut s = new_store(dir.path(), "member-0001");
    let code = server.code("member-0001");

    // The webpki roots do not trust a self-signed certificate.
    let e = enroll(&mut s, &server.url(), &code, None, "手机").unwrap_err();
    assert!(matches!(e, Error::Tls(_)), "{e:?}");
    // Another server's certificate does not match.
    let e = enroll(
        &mut s,
        &server.url(),
        &code,
        other.cert_pem().as_deref(),
        "手机",
    )
    .unwrap_err();
    assert!(matches!(e, Error::Tls(_)), "{e:?}");
    assert!(sanjin_client::enrollment(&s).unwrap().is_none());

    let pem = server.cert_pem().unwrap();
    let e = enroll(&mut s, &server.url(), &code, Some(&pem), "手机").unwrap();
    assert!(e.pinned_certificate);
    assert_eq!(s.meta(meta::CA_PEM).unwrap(), Some(pem));
    let sum = sync_ok(&mut s);
    assert!(sum.received > 0);

    // The code worked once.
    let mut s2 = new_store(dir.path(), "member-0001");
    let e = enroll(
        &mut s2,
        &server.url(),
        &code,
        server.cert_pem().as_deref(),
        "另一部手机",
    )
    .unwrap_err();
    assert!(matches!(e, Error::Http { status: 409, .. }), "{e:?}");
    // A code for someone else is refused before anything is kept.
    let code3 = server.code("member-0003");
    let e = enroll(
        &mut s2,
        &server.url(),
        &code3,
        server.cert_pem().as_deref(),
        "手机",
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::Http { status: 403, .. } | Error::WrongMember),
        "{e:?}"
    );
    assert!(sanjin_client::enrollment(&s2).unwrap().is_none());
}

/// A loopback TCP proxy that can swallow the server's next answer and cut the connection, as a
/// weak link does after the request got through.
struct CuttingProxy {
    addr: SocketAddr,
    cut_next_answer: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl CuttingProxy {
    fn start(target: SocketAddr) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (cut2, cuts2, stop2) = (cut.clone(), cuts.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(upstream) = TcpStream::connect(target) else {
                    continue;
                };
                for s in [&client, &upstream] {
                    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                }
                let (c2, u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                std::thread::spawn(move || pump(c2, u2, None, None));
                let (cut3, cuts3) = (cut2.clone(), cuts2.clone());
                std::thread::spawn(move || pump(upstream, client, Some(cut3), Some(cuts3)));
            }
        });
        CuttingProxy {
            addr,
            cut_next_answer: cut,
            cuts,
            stop,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    cut: Option<Arc<AtomicBool>>,
    cuts: Option<Arc<AtomicUsize>>,
) {
    let mut buf = [0u8; 16 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(c) = &cut
            && c.swap(false, Ordering::SeqCst)
        {
            // The answer is lost on the way back.
            cuts.as_ref().unwrap().fetch_add(1, Ordering::SeqCst);
            break;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

#[test]
fn a_lost_answer_is_retried_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"), TlsMode::Plain);
    let mut m1 = device(dir.path(), &server, "member-0001");
    sync_ok(&mut m1);
    let ids: Vec<String> = (0..3)
        .map(|i| {
            record_visit(
                &mut m1,
                "group-01",
                "cp-002",
                &format!("信号不好时的记录 {i}"),
            )
        })
        .collect();

    let proxy = CuttingProxy::start(server.addr);
    m1.set_meta(meta::SERVER, Some(&proxy.url())).unwrap();
    proxy.cut_next_answer.store(true, Ordering::SeqCst);
    let mut retried = 0;
    let sum = sync(&mut m1, &opts(), &mut |p| {
        if matches!(p, sanjin_client::Progress::Retrying { .. }) {
            retried += 1;
        }
    })
    .unwrap();
    assert_eq!(
        proxy.cuts.load(Ordering::SeqCst),
        1,
        "the first answer was lost"
    );
    assert_eq!(retried, 1);
    assert_eq!((sum.sent, sum.round_trips), (3, 2), "{sum:?}");
    assert!(m1.outbox().unwrap().is_empty());
    for id in &ids {
        assert_eq!(server.log_entries(id), 1, "written once, answered twice");
    }

    // Another phone of the group gets each record once.
    let mut m3 = device(dir.path(), &server, "member-0003");
    sync_ok(&mut m3);
    let got: Vec<String> = field_records(&m3).into_iter().map(|(id, _)| id).collect();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn refused_records_stay_queued_and_never_reach_another_group() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"), self_signed());
    let mut m1 = device(dir.path(), &server, "member-0001");
    let mut m27 = device(dir.path(), &server, "member-0027");
    let foreign = record_visit(&mut m1, "group-02", "cp-006", "别组的活动");
    let approved = record_visit(&mut m1, "group-01", "cp-001", "自己审核的活动");
    m1.update(&approved, |d, by| {
        d.transition(by, now_ms(), EventType::Submit, None)?;
        d.transition(by, now_ms(), EventType::Approve, None)
    })
    .unwrap();
    let fine = record_visit(&mut m1, "group-01", "cp-001", "正常的活动");

    let sum = sync_ok(&mut m1);
    assert_eq!(sum.sent, 1);
    let mut refused: Vec<(String, RefusalCode)> = sum
        .refused
        .iter()
        .map(|(id, c, _)| (id.clone(), *c))
        .collect();
    refused.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want = vec![
        (foreign.clone(), RefusalCode::Forbidden),
        (approved.clone(), RefusalCode::Role),
    ];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(refused, want);
    let mut queued: Vec<String> = m1.outbox().unwrap().into_iter().map(|e| e.id).collect();
    queued.sort();
    let mut want: Vec<String> = vec![foreign.clone(), approved.clone()];
    want.sort();
    assert_eq!(queued, want, "refused records stay queued");
    assert_eq!(sum.still_queued, 2);
    // Syncing again asks again and is refused again; nothing is lost.
    assert_eq!(sync_ok(&mut m1).refused.len(), 2);

    // group-02's member never gets group-01's records, nor the refused one.
    sync_ok(&mut m27);
    assert!(field_records(&m27).is_empty());
    assert!(!m27.exists(&foreign).unwrap());
    // Asking directly: the record of another group is forbidden, one's own is served.
    let c27 = sanjin_client::client_for(&m27, Default::default()).unwrap();
    let e = c27.fetch_record(&fine).unwrap_err();
    assert!(matches!(e, Error::Http { status: 403, .. }), "{e:?}");
    let c1 = sanjin_client::client_for(&m1, Default::default()).unwrap();
    let bytes = c1.fetch_record(&fine).unwrap();
    assert_eq!(RecordDoc::load(&bytes).unwrap().id(), fine);
}

#[test]
fn a_revoked_device_is_refused_and_keeps_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"), self_signed());
    let mut m1 = device(dir.path(), &server, "member-0001");
    sync_ok(&mut m1);
    let id = record_visit(&mut m1, "group-01", "cp-001", "停用前的记录");
    let device_id = m1.identity().device.clone();
    server.with_data(move |d| d.revoke(&device_id).unwrap());
    let e = sync(&mut m1, &opts(), &mut |_| {}).unwrap_err();
    assert!(e.is_unauthorized(), "{e:?}");
    assert_eq!(
        m1.outbox()
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect::<Vec<_>>(),
        vec![id]
    );
}

#[test]
fn a_server_restored_from_backup_gets_back_what_it_lost() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let mut server = Server::start(&data, self_signed());
    let mut m1 = device(dir.path(), &server, "member-0001");
    let mut m3 = device(dir.path(), &server, "member-0003");
    let early = record_visit(&mut m1, "group-01", "cp-001", "备份前的记录");
    sync_ok(&mut m1);
    sync_ok(&mut m3);

    // Backup.
    server.stop();
    let backup = dir.path().join("backup");
    copy_dir(&data, &backup);
    server.restart();

    // After the backup: a new record and an edit, both acknowledged by the server.
    let late = record_visit(&mut m1, "group-01", "cp-001", "备份后的记录");
    set_title(&mut m1, &early, "备份后改的标题");
    assert_eq!(sync_ok(&mut m1).sent, 2);
    assert!(m1.outbox().unwrap().is_empty());

    // The server is restored from the backup: it lost both.
    server.stop();
    std::fs::remove_dir_all(&data).unwrap();
    copy_dir(&backup, &data);
    server.restart();

    let mut resync_seen = false;
    let sum = sync(&mut m1, &opts(), &mut |p| {
        resync_seen |= matches!(p, sanjin_client::Progress::Resync { .. });
    })
    .unwrap();
    assert!(sum.resynced && resync_seen, "{sum:?}");
    assert!(sum.refused.is_empty(), "{sum:?}");

    // The other phone gets them from the restored server.
    sync_ok(&mut m3);
    assert!(m3.exists(&late).unwrap());
    assert_eq!(title(&m3, &early), "备份后改的标题");
    assert_eq!(field_records(&m3), field_records(&m1));
    // And the next sync of the first phone is an ordinary one.
    let again = sync_ok(&mut m1);
    assert!(!again.resynced);
    assert_eq!(again.round_trips, 1);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
