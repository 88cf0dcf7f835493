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
use sanjin_core::protocol::SyncResponse;
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
    // Issue 10: judged from what the change does (it settles a conflict), not its label.
    assert_eq!(s1.refused[0].1, RefusalCode::ConflictResolution);
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
    // Another server's certificate does not match: its public key is not this server's
    // (issue 12: devices pin the key, and say so).
    let e = enroll(
        &mut s,
        &server.url(),
        &code,
        other.cert_pem().as_deref(),
        "手机",
    )
    .unwrap_err();
    assert!(matches!(e, Error::ServerKeyMismatch), "{e:?}");
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
    // Syncing again does not ask again while they are unchanged (issue 10: a refused record is
    // not retried forever); they stay queued, marked with the server's reason; nothing is lost.
    assert_eq!(sync_ok(&mut m1).refused.len(), 0);
    let mut marked: Vec<(String, String)> = m1
        .refusals()
        .unwrap()
        .into_iter()
        .map(|r| (r.doc_id, r.code))
        .collect();
    marked.sort();
    let mut want = vec![
        (foreign.clone(), "forbidden".to_string()),
        (approved.clone(), "role".to_string()),
    ];
    want.sort();
    assert_eq!(marked, want);
    assert_eq!(m1.outbox().unwrap().len(), 2);

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

// ------------------------------------------------------------------ issue 10: signed changes

/// Sends a hand-made request with `store`'s credentials over the real TLS connection.
fn post_raw(store: &Store, req: &sanjin_core::protocol::SyncRequest) -> SyncResponse {
    let client = sanjin_client::client_for(store, sanjin_client::Timeouts::default()).unwrap();
    let bytes = client.post_sync(&req.encode()).unwrap();
    SyncResponse::decode(&bytes).unwrap()
}

/// The leader's identity, as any member can read it off a document's changes.
fn author_of(s: &Store) -> sanjin_core::Author {
    s.author()
}

fn server_status(server: &Server, id: &str) -> String {
    let id = id.to_string();
    server.with_data(move |d| d.store().index_entry(&id).unwrap().unwrap().status)
}

#[test]
fn issue10_a_change_made_with_the_leaders_actor_is_refused_by_sync_and_by_the_fallback() {
    use sanjin_core::protocol::{DocChanges, DocSync, SyncRequest};
    use sanjin_core::sign::{ChangeSig, SigKind};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"), self_signed());
    let mut m1 = device(dir.path(), &server, "member-0001");
    let lead = device(dir.path(), &server, "member-0002");
    let v = record_visit(&mut m1, "group-01", "cp-001", "待审核的活动");
    m1.update(&v, |d, by| {
        d.transition(by, now_ms(), EventType::Submit, None)
    })
    .unwrap();
    sync_ok(&mut m1);
    assert_eq!(server_status(&server, &v), "submitted");
    let entries = server.log_entries(&v);

    // The attack: an approval made with the leader's actor id and a message naming the
    // leader's device (both visible in any document), pushed by the member.
    let mut doc = m1.load(&v).unwrap();
    let before = doc.heads();
    doc.transition(&author_of(&lead), now_ms(), EventType::Approve, None)
        .unwrap();
    let forged = doc.save_after(&before);
    let forged_hashes: Vec<_> = sanjin_core::sign::split_changes(&forged)
        .into_iter()
        .map(|(h, _)| h)
        .collect();
    let key = m1.signing_key().unwrap().clone();
    for sigs in [
        // no signature at all
        vec![],
        // signed with the member's key but claiming to be the leader's device
        vec![ChangeSig::sign(
            &key,
            &lead.identity().device,
            SigKind::Changes,
            forged_hashes.clone(),
        )],
        // signed honestly by the member's device (which does not own the leader's actor)
        vec![ChangeSig::sign(
            &key,
            &m1.identity().device,
            SigKind::Changes,
            forged_hashes.clone(),
        )],
    ] {
        let req = SyncRequest {
            request_id: [7; 16],
            max_response_bytes: 1 << 20,
            pushes: vec![DocChanges {
                doc_id: v.clone(),
                changes: forged.clone(),
            }],
            sigs,
            ..SyncRequest::default()
        };
        let resp = post_raw(
            &m1,
            &SyncRequest {
                request_id: rand16(),
                ..req
            },
        );
        assert!(resp.acks.is_empty());
        assert_eq!(resp.refused.len(), 1, "{:?}", resp.refused);
        assert_eq!(resp.refused[0].code, RefusalCode::BadSignature);
        assert_eq!(server_status(&server, &v), "submitted");
    }

    // The same change through the automerge-sync fallback.
    let mut am = doc.into_automerge();
    let mut state = automerge::sync::State::new();
    let mut refused = Vec::new();
    for _ in 0..6 {
        use automerge::sync::SyncDoc;
        let Some(msg) = am.sync().generate_sync_message(&mut state) else {
            break;
        };
        let req = SyncRequest {
            request_id: rand16(),
            max_response_bytes: 1,
            am_sync: vec![DocSync {
                doc_id: v.clone(),
                message: msg.encode(),
            }],
            sigs: vec![ChangeSig::sign(
                &key,
                &lead.identity().device,
                SigKind::Changes,
                forged_hashes.clone(),
            )],
            ..SyncRequest::default()
        };
        let resp = post_raw(&m1, &req);
        refused.extend(resp.refused.iter().map(|r| r.code));
        if resp.am_sync.is_empty() {
            break;
        }
        for m in resp.am_sync {
            let msg = automerge::sync::Message::decode(&m.message).unwrap();
            am.sync().receive_sync_message(&mut state, msg).unwrap();
        }
    }
    assert_eq!(refused, vec![RefusalCode::BadSignature]);
    assert_eq!(server_status(&server, &v), "submitted");
    // Nothing of it reached the log.
    assert_eq!(server.log_entries(&v), entries);
}

fn rand16() -> [u8; 16] {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).unwrap();
    b
}

#[test]
fn issue10_changes_depending_on_a_refused_change_are_refused_and_the_rest_lands() {
    use sanjin_core::protocol::{DocChanges, SyncRequest};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"), self_signed());
    let mut m1 = device(dir.path(), &server, "member-0001");
    let lead = device(dir.path(), &server, "member-0002");
    let m3 = device(dir.path(), &server, "member-0003");
    let v = record_visit(&mut m1, "group-01", "cp-001", "原标题");
    sync_ok(&mut m1);
    let mut doc = m1.load(&v).unwrap();
    let at_server = doc.heads();
    let edit = |doc: &mut RecordDoc, me: &sanjin_core::Author, field: &str, value: &str| {
        doc.edit(
            me,
            now_ms(),
            &[Edit::Set {
                field: field.into(),
                value: json!(value),
            }],
        )
        .unwrap()
    };
    // A: an honest edit. Then, on one branch, B forged as the leader and C on top of it; on a
    // concurrent branch, D by another member's phone (relayed, with that phone's signature).
    let a = edit(&mut doc, &m1.author(), "title", "标题甲");
    let mut other = RecordDoc::load(&doc.save()).unwrap();
    doc.transition(&author_of(&lead), now_ms(), EventType::Submit, Some("伪造"))
        .unwrap();
    let b = doc.heads()[0];
    let c = edit(&mut doc, &m1.author(), "summary", "建立在伪造之上");
    let d = edit(&mut other, &m3.author(), "summary", "并行的正当修改");
    doc.merge(&mut other).unwrap();
    let bytes = doc.save_after(&at_server);
    let own: Vec<_> = m1.own_changes(&bytes);
    assert_eq!(own.len(), 2);
    let req = SyncRequest {
        request_id: rand16(),
        max_response_bytes: 1 << 20,
        pushes: vec![DocChanges {
            doc_id: v.clone(),
            changes: bytes,
        }],
        sigs: vec![
            sanjin_core::sign::ChangeSig::sign(
                m1.signing_key().unwrap(),
                &m1.identity().device,
                sanjin_core::sign::SigKind::Changes,
                own,
            ),
            sanjin_core::sign::ChangeSig::sign(
                m3.signing_key().unwrap(),
                &m3.identity().device,
                sanjin_core::sign::SigKind::Changes,
                [d],
            ),
        ],
        ..SyncRequest::default()
    };
    let resp = post_raw(&m1, &req);
    assert!(resp.acks.is_empty());
    assert_eq!(resp.refused.len(), 1);
    assert_eq!(resp.refused[0].code, RefusalCode::BadSignature);
    assert!(
        resp.refused[0].reason.contains("1 more"),
        "{}",
        resp.refused[0].reason
    );
    // A and D landed, B and C did not.
    let id = v.clone();
    let held = server.with_data(move |s| {
        let mut doc = s.store().load(&id).unwrap();
        [a, b, c, d].map(|h| doc.has_change(&h))
    });
    assert_eq!(held, [true, false, false, true]);
}

#[test]
fn issue10_signatures_and_certificates_travel_with_the_changes_and_secrets_never_do() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"), self_signed());
    let mut m1 = device(dir.path(), &server, "member-0001");
    let mut m3 = device(dir.path(), &server, "member-0003");
    let v = record_visit(&mut m1, "group-01", "cp-001", "带签名的活动");
    sync_ok(&mut m1);
    sync_ok(&mut m3);
    // m3 holds m1's signature over the record's changes and m1's certificate, which the server
    // key m3 pinned at enrollment signed: m3 can verify the author offline.
    let mut doc = m3.load(&v).unwrap();
    let hashes: Vec<_> = doc.changes().iter().map(|c| c.hash()).collect();
    let sigs = m3.sigs_for(&hashes).unwrap();
    assert_eq!(sigs.len(), 1);
    assert_eq!(sigs[0].signer, m1.identity().device);
    let cert = m3.cert(&m1.identity().device).unwrap().unwrap();
    let server_cert = sanjin_core::sign::DeviceCert::decode(&hex_decode(
        &m3.meta(meta::SERVER_CERT).unwrap().unwrap(),
    ))
    .unwrap();
    cert.verify(&server_cert.public_key).unwrap();
    assert_eq!(cert.member, "member-0001");
    assert_eq!(cert.actor, m1.identity().actor);
    assert!(sigs[0].verify(&cert.public_key));
    assert!(hashes.iter().all(|h| sigs[0].hashes.contains(h)));

    // A merge between phones carries signatures, never the other phone's secrets.
    let m3_path = m3.path().to_path_buf();
    drop(m3);
    let m3 = Store::open(&m3_path, Durability::Normal).unwrap();
    let secret = m3.meta(meta::SECRET).unwrap().unwrap();
    let seed = m3.signing_key().unwrap().seed_hex();
    drop(m3);
    let mut lead = device(dir.path(), &server, "member-0002");
    let own = record_visit(&mut lead, "group-01", "cp-001", "组长的活动");
    lead.merge_from(&m3_path).unwrap();
    assert!(lead.exists(&v).unwrap());
    assert!(
        !lead.sigs_for(&hashes).unwrap().is_empty(),
        "signatures came along"
    );
    let lead_path = lead.path().to_path_buf();
    drop(lead);
    let bytes = std::fs::read(&lead_path).unwrap();
    let wal = std::fs::read(lead_path.with_extension("sqlite-wal")).unwrap_or_default();
    for hay in [&bytes, &wal] {
        for needle in [secret.as_bytes(), seed.as_bytes()] {
            assert!(
                !hay.windows(needle.len()).any(|w| w == needle),
                "another phone's secret reached this store"
            );
        }
    }
    let _ = own;
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn issue10_a_store_enrolled_before_signatures_gets_a_key_and_its_changes_land() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"), self_signed());
    // Enrolled the way sanjin did before signatures: no public key, no certificates.
    let mut old = new_store(dir.path(), "member-0001");
    let code = server.code("member-0001");
    let id = old.identity().clone();
    let creds = server.with_data(move |d| {
        d.enroll(&sanjin_server::EnrollRequest {
            code,
            device_name: "旧手机".into(),
            device_id: Some(id.device.clone()),
            actor: Some(id.actor.iter().map(|b| format!("{b:02x}")).collect()),
            member: Some(id.member.clone()),
            public_key: None,
        })
        .unwrap()
    });
    assert!(creds.cert.is_none());
    for (k, v) in [
        (meta::SERVER, server.url()),
        (meta::DEVICE_ID, creds.device_id.clone()),
        (meta::SECRET, creds.secret.clone()),
        (meta::MEMBER, creds.member.clone()),
        (meta::ROLE, "member".into()),
        (meta::EPOCH, creds.server_epoch.clone()),
        (meta::CURSOR, "0".into()),
        (meta::CA_PEM, server.cert_pem().unwrap()),
    ] {
        old.set_meta(k, Some(&v)).unwrap();
    }
    // Recorded offline before the upgrade: unsigned.
    let a = record_visit(&mut old, "group-01", "cp-001", "升级前的记录一");
    let b = record_visit(&mut old, "group-01", "cp-001", "升级前的记录二");
    assert!(old.signing_key().is_none());
    let sum = sync_ok(&mut old);
    assert!(sum.refused.is_empty(), "{sum:?}");
    assert_eq!(sum.sent, 2);
    assert!(old.signing_key().is_some());
    let device = creds.device_id.clone();
    let has_cert = server.with_data(move |d| {
        rusqlite::Connection::open(d.dir().join(sanjin_server::DB_FILE))
            .unwrap()
            .query_row(
                "SELECT cert IS NOT NULL FROM devices WHERE device_id = ?1",
                [device],
                |r| r.get::<_, bool>(0),
            )
            .unwrap()
    });
    assert!(has_cert);
    for id in [a, b] {
        assert_eq!(server.log_entries(&id), 1);
    }
    // The key cannot be replaced with the sync secret alone.
    let client = sanjin_client::client_for(&old, sanjin_client::Timeouts::default()).unwrap();
    let other = sanjin_core::sign::DeviceKey::from_seed([5; 32]);
    let e = client
        .post_json(
            "/v1/device/key",
            &json!({ "public_key": other.public().iter().map(|b| format!("{b:02x}")).collect::<String>() }),
        )
        .unwrap_err();
    assert!(format!("{e:?}").contains("key_registered"), "{e:?}");
}
