//! Phone to phone (issue 12) on loopback: several device stores enrolled with a real server on
//! loopback (TLS, self-signed certificate pinned), which is then stopped; the phones meet
//! without it. Directory from the committed fixtures (`fixtures/city`): group-01 has members
//! member-0001 … member-0020 with leader member-0002; member-0027 is in group-02.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sanjin_client::meet::{
    ExchangeReport, JoinOptions, MeetError, MeetSession, ServeOptions, join,
};
use sanjin_client::{PhotoSource, Timeouts, attach_photo, client_for, enroll};
use sanjin_core::domain::RecordData;
use sanjin_core::{Edit, RecordDoc, testdata};
use sanjin_server::{Config, Running, ServerData, TlsMode};
use sanjin_store::{Durability, Identity, Store, new_device, new_record_id, now_ms};
use serde_json::json;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/city")
}

/// A real server in this process, only for enrolling the phones.
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
        let mut config = Config::new(
            dir,
            "127.0.0.1:0".parse().unwrap(),
            TlsMode::SelfSigned { hostnames: vec![] },
        );
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

    /// An enrolled device store for `member` in `dir`.
    fn device(&self, dir: &Path, member: &str) -> Store {
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
        let code = self.with_data(move |d| d.issue_code(&m).unwrap().code);
        let running = self.running.as_ref().unwrap();
        let pem = std::fs::read_to_string(running.certificate().unwrap()).unwrap();
        enroll(&mut s, &running.url(), &code, Some(&pem), "测试设备").unwrap();
        refresh(&mut s);
        s
    }

    /// Revokes `store`'s device on the server.
    fn revoke(&self, store: &Store) {
        let device = store.identity().device.clone();
        self.with_data(move |d| d.revoke(&device).unwrap());
    }

    fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown()).unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve_opts() -> ServeOptions {
    ServeOptions {
        bind: "127.0.0.1:0".parse().unwrap(),
        io_timeout: Duration::from_secs(20),
        ..ServeOptions::default()
    }
}

fn join_opts() -> JoinOptions<'static> {
    JoinOptions {
        timeout: Duration::from_secs(20),
        ..JoinOptions::default()
    }
}

/// A code that is not the session's.
fn wrong(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

#[test]
fn issue12_wrong_code_three_times_closes_it_and_expired_sessions_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("server"));
    let leader = server.device(dir.path(), "member-0002");
    let mut m1 = server.device(dir.path(), "member-0001");
    server.stop();

    let mut session = MeetSession::serve(leader, serve_opts()).unwrap();
    let inv = session.invite().clone();
    let bad = format!("{}@{}", wrong(&inv.code), inv.addr);
    let e = join(&mut m1, &bad, join_opts()).unwrap_err();
    assert!(matches!(e, MeetError::WrongCode { left: 2 }), "{e:?}");
    assert!(e.zh().contains("还可再试 2 次"), "{}", e.zh());
    let e = join(&mut m1, &bad, join_opts()).unwrap_err();
    assert!(matches!(e, MeetError::WrongCode { left: 1 }), "{e:?}");
    let e = join(&mut m1, &bad, join_opts()).unwrap_err();
    assert!(matches!(e, MeetError::CodeClosed), "{e:?}");
    // Closed: even the right code is refused now; the QR still works.
    let e = join(&mut m1, &inv.code_text(), join_opts()).unwrap_err();
    assert!(matches!(e, MeetError::CodeClosed), "{e:?}");
    assert!(e.zh().contains("已因连续输错三次而关闭"), "{}", e.zh());
    assert!(!session.status().code_open);
    join(&mut m1, &inv.qr_text(), join_opts()).unwrap();
    let st = session.stop();
    assert_eq!(st.peers.iter().filter(|p| p.exchange.is_some()).count(), 1);

    // An expired session refuses both the code and the QR.
    let leader = Store::open(
        &dir.path().join(leader_file(dir.path(), "member-0002")),
        Durability::Normal,
    )
    .unwrap();
    let session = MeetSession::serve(
        leader,
        ServeOptions {
            ttl: Duration::from_millis(200),
            ..serve_opts()
        },
    )
    .unwrap();
    let inv = session.invite().clone();
    std::thread::sleep(Duration::from_millis(300));
    for t in [inv.code_text(), inv.qr_text()] {
        let e = join(&mut m1, &t, join_opts()).unwrap_err();
        assert!(matches!(e, MeetError::Expired), "{e:?}");
        assert!(e.zh().contains("会面已过期"), "{}", e.zh());
    }
    assert!(session.status().expired);
}

fn leader_file(dir: &Path, member: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name().unwrap().to_string_lossy().starts_with(member)
                && p.extension().is_some_and(|x| x == "sqlite")
        })
        .unwrap()
}

#[test]
fn issue12_the_right_code_and_the_qr_join_and_a_false_fingerprint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("server"));
    let leader = server.device(dir.path(), "member-0002");
    let mut m1 = server.device(dir.path(), "member-0001");
    server.stop();
    let mut session = MeetSession::serve(leader, serve_opts()).unwrap();
    let inv = session.invite().clone();
    let started = Instant::now();
    let r = join(&mut m1, &inv.code_text(), join_opts()).unwrap();
    assert_eq!(r.peer.member, "member-0002");
    assert_eq!(r.peer.role, "leader");
    join(&mut m1, &inv.qr_text(), join_opts()).unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    // A QR whose fingerprint is not the session certificate's: a man in the middle.
    let mut forged = inv.clone();
    forged.fingerprint[0] ^= 1;
    let e = join(&mut m1, &forged.qr_text(), join_opts()).unwrap_err();
    assert!(matches!(e, MeetError::FingerprintMismatch), "{e:?}");
    assert!(e.zh().contains("证书与二维码不符"));
    // The right fingerprint with another key: refused.
    let mut forged = inv.clone();
    forged.key = "AAAAAAAAAAAAAAAAAAAAAAAAAA".into();
    let e = join(&mut m1, &forged.qr_text(), join_opts()).unwrap_err();
    assert!(matches!(e, MeetError::WrongKey), "{e:?}");
    let st = session.stop();
    assert_eq!(st.peers.iter().filter(|p| p.exchange.is_some()).count(), 2);
    assert!(st.peers.iter().any(|p| {
        p.error
            .as_deref()
            .is_some_and(|e| e.contains("二维码已失效"))
    }));
}

#[test]
fn issue12_another_group_and_a_tampered_certificate_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("server"));
    let leader = server.device(dir.path(), "member-0002");
    let mut other = server.device(dir.path(), "member-0027");
    let mut m3 = server.device(dir.path(), "member-0003");
    server.stop();
    let mut session = MeetSession::serve(leader, serve_opts()).unwrap();
    let inv = session.invite().clone();

    // member-0027 (group-02) judges the leader first: another group.
    let e = join(&mut other, &inv.qr_text(), join_opts()).unwrap_err();
    assert!(
        matches!(e, MeetError::OtherGroup { ref group } if group == "group-01"),
        "{e:?}"
    );
    assert!(e.zh().contains("另一个活动组（group-01）"), "{}", e.zh());
    // The leader's side refused it as well, for the same reason, and saved nothing.
    std::thread::sleep(Duration::from_millis(100));
    let st = session.status();
    assert!(st.peers.iter().all(|p| p.exchange.is_none()));

    // member-0003's certificate altered in its own store (it claims group-02's leader role).
    let own = m3.identity().device.clone();
    let mut cert = m3.cert(&own).unwrap().unwrap();
    cert.role = "staff".into();
    m3.put_cert(&cert).unwrap();
    let e = join(&mut m3, &inv.qr_text(), join_opts()).unwrap_err();
    match &e {
        MeetError::RefusedBy(inner) => {
            assert!(matches!(**inner, MeetError::NotByServer { .. }), "{e:?}")
        }
        _ => panic!("{e:?}"),
    }
    assert!(
        e.zh().contains("对方手机拒绝了本机：本机（设备") && e.zh().contains("或已被改动"),
        "{}",
        e.zh()
    );
    let st = session.stop();
    assert!(st.peers.iter().all(|p| p.exchange.is_none()));
    assert!(
        st.peers
            .iter()
            .any(|p| p.error.as_deref().is_some_and(|e| e.contains("已被改动")))
    );
}

/// The server's keys, revocation list and receipts, as after a sync (`/v1/trust`).
fn refresh(s: &mut Store) {
    let client = client_for(s, Timeouts::default()).unwrap();
    sanjin_client::trust::refresh(s, &client).unwrap();
}

fn record_visit(s: &mut Store, title: &str) -> String {
    let mut v = testdata::visit();
    v.group = "group-01".into();
    v.title = title.into();
    v.participants = vec![s.identity().member.clone()];
    let id = new_record_id();
    let mut doc = RecordDoc::create(&id, &RecordData::Visit(v), &s.author(), now_ms()).unwrap();
    s.insert(&mut doc, true).unwrap();
    id
}

fn set_field(s: &mut Store, id: &str, field: &str, value: &str) {
    s.update(id, |d, by| {
        d.edit(
            by,
            now_ms(),
            &[Edit::Set {
                field: field.into(),
                value: json!(value),
            }],
        )
    })
    .unwrap();
}

/// The store's visits with their heads, sorted.
fn visits(s: &Store) -> Vec<(String, Vec<sanjin_core::ChangeHash>)> {
    let mut out: Vec<_> = s
        .ids()
        .unwrap()
        .into_iter()
        .filter(|(_, k)| k == "visit")
        .map(|(id, _)| {
            let mut h = s.load(&id).unwrap().heads();
            h.sort();
            (id, h)
        })
        .collect();
    out.sort();
    out
}

fn title(s: &Store, id: &str) -> String {
    s.index_entry(id).unwrap().unwrap().title
}

#[test]
fn issue12_two_phones_merge_both_ways_and_received_records_are_relayed() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("server"));
    let leader = server.device(dir.path(), "member-0002");
    let mut m1 = server.device(dir.path(), "member-0001");
    server.stop();
    let leader_path = leader.path().to_path_buf();
    let mut leader = leader;
    let l1 = record_visit(&mut leader, "组长的走访一");
    let l2 = record_visit(&mut leader, "组长的走访二");
    let m = [
        record_visit(&mut m1, "委员的走访一"),
        record_visit(&mut m1, "委员的走访二"),
        record_visit(&mut m1, "委员的走访三"),
    ];

    let mut session = MeetSession::serve(leader, serve_opts()).unwrap();
    let r = join(&mut m1, &session.qr_text(), join_opts()).unwrap();
    assert_eq!((r.sent, r.landed, r.peer_landed), (3, 2, 3), "{r:?}");
    assert!(r.refused.is_empty() && r.conflicts.is_empty(), "{r:?}");
    let st = session.stop();
    let lr = st.peers[0].exchange.as_ref().unwrap();
    assert_eq!((lr.landed, lr.sent), (3, 2));
    drop(session);

    let leader = Store::open(&leader_path, Durability::Normal).unwrap();
    assert_eq!(visits(&leader), visits(&m1));
    assert_eq!(visits(&leader).len(), 5);
    assert_eq!(title(&m1, &l1), "组长的走访一");
    assert_eq!(title(&leader, &m[2]), "委员的走访三");
    // What arrived by phone is queued for the server and asked a receipt for, like a bundle's.
    let outbox: Vec<String> = m1.outbox().unwrap().into_iter().map(|e| e.id).collect();
    assert!(outbox.contains(&l1) && outbox.contains(&l2), "{outbox:?}");
    let relayed = m1.relayed_unreceipted().unwrap();
    assert!(
        relayed.contains(&l1) && relayed.contains(&l2),
        "{relayed:?}"
    );
    let relayed = leader.relayed_unreceipted().unwrap();
    assert!(m.iter().all(|id| relayed.contains(id)), "{relayed:?}");

    // Again: nothing to send, nothing lands, nothing changes.
    let before = visits(&leader);
    let mut session = MeetSession::serve(
        Store::open(&leader_path, Durability::Normal).unwrap(),
        serve_opts(),
    )
    .unwrap();
    let r = join(&mut m1, &session.qr_text(), join_opts()).unwrap();
    assert_eq!((r.sent, r.landed), (0, 0), "{r:?}");
    session.stop();
    leader.checkpoint().unwrap();
    assert_eq!(visits(&leader), before);
}

#[test]
fn issue12_a_leader_merges_five_phones_and_sees_exactly_the_real_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("server"));
    let leader = server.device(dir.path(), "member-0002");
    let members = [
        "member-0001",
        "member-0003",
        "member-0004",
        "member-0005",
        "member-0006",
    ];
    let mut phones: Vec<Store> = members
        .iter()
        .map(|m| server.device(dir.path(), m))
        .collect();
    // One shared record, on every phone before the meeting (they met last week).
    let shared = record_visit(&mut phones[0], "村委会座谈");
    for p in phones.iter_mut() {
        sanjin_client::sync(p, &Default::default(), &mut |_| {}).unwrap();
    }
    assert!(phones.iter().all(|p| p.exists(&shared).unwrap()));
    server.stop();

    // Without signal: two members change the same field of it, others other fields, and every
    // member records two visits of their own.
    set_field(&mut phones[1], &shared, "title", "村委会座谈（吕）");
    set_field(&mut phones[2], &shared, "title", "村委会座谈（任）");
    set_field(&mut phones[3], &shared, "summary", "补充了会议纪要");
    let mut own = Vec::new();
    for (i, p) in phones.iter_mut().enumerate() {
        own.push(record_visit(p, &format!("走访 {i}-1")));
        own.push(record_visit(p, &format!("走访 {i}-2")));
    }

    let leader_path = leader.path().to_path_buf();
    let mut session = MeetSession::serve(leader, serve_opts()).unwrap();
    let qr = session.qr_text();
    let code = session.invite().code_text();
    let started = Instant::now();
    // All five at once (some with the code), then each again for what the later ones brought.
    let reports: Vec<ExchangeReport> = std::thread::scope(|sc| {
        let hs: Vec<_> = phones
            .iter_mut()
            .enumerate()
            .map(|(i, p)| {
                let t = if i % 2 == 0 { qr.clone() } else { code.clone() };
                sc.spawn(move || join(p, &t, join_opts()).unwrap())
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &reports {
        assert!(r.refused.is_empty(), "{r:?}");
    }
    for p in phones.iter_mut() {
        let r = join(p, &qr, join_opts()).unwrap();
        assert!(r.refused.is_empty(), "{r:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    let st = session.stop();
    drop(session);
    assert_eq!(st.peers.len(), 10);
    assert!(st.peers.iter().all(|p| p.error.is_none()), "{:?}", st.peers);
    // The leader saw exactly one conflict: the shared record's title.
    let conflicts: Vec<_> = st
        .peers
        .iter()
        .flat_map(|p| p.exchange.as_ref().unwrap().conflicts.clone())
        .collect();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0].doc_id, shared);
    assert_eq!(conflicts[0].fields, vec!["title".to_string()]);
    let leader = Store::open(&leader_path, Durability::Normal).unwrap();
    let view = leader.load(&shared).unwrap().view().unwrap();
    assert_eq!(view.conflicts.len(), 1, "{:?}", view.conflicts);
    match &view.data {
        RecordData::Visit(v) => assert_eq!(v.summary, "补充了会议纪要"),
        other => panic!("{other:?}"),
    }
    // Every phone holds every record, at the same heads.
    let all = visits(&leader);
    assert_eq!(all.len(), 1 + 10);
    for p in &phones {
        assert_eq!(visits(p), all);
    }
    // And nothing else on the leader's phone is conflicted.
    for (id, _) in &all {
        if *id != shared {
            assert!(
                leader
                    .load(id)
                    .unwrap()
                    .view()
                    .unwrap()
                    .conflicts
                    .is_empty(),
                "{id}"
            );
        }
    }
    leader.checkpoint().unwrap();
}

#[test]
fn issue12_a_forged_change_from_a_joiner_is_refused_and_nothing_else_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("server"));
    let mut leader = server.device(dir.path(), "member-0002");
    let mut a = server.device(dir.path(), "member-0001");
    let mut b = server.device(dir.path(), "member-0003");
    let v = record_visit(&mut a, "杨店镇座谈");
    sanjin_client::sync(&mut a, &Default::default(), &mut |_| {}).unwrap();
    sanjin_client::sync(&mut b, &Default::default(), &mut |_| {}).unwrap();
    sanjin_client::sync(&mut leader, &Default::default(), &mut |_| {}).unwrap();
    server.stop();
    let own = record_visit(&mut b, "B 的走访");
    // B writes as member-0001 on A's device, with its own actor, signed by B's key.
    let forged =
        sanjin_core::Author::new("member-0001", &a.identity().device, &b.identity().actor).unwrap();
    b.update(&v, |d, _| {
        d.edit(
            &forged,
            now_ms(),
            &[Edit::Set {
                field: "summary".into(),
                value: json!("（被篡改的内容）"),
            }],
        )
    })
    .unwrap();
    let before = leader.load(&v).unwrap().heads();
    let leader_path = leader.path().to_path_buf();
    let mut session = MeetSession::serve(leader, serve_opts()).unwrap();
    let r = join(&mut b, &session.qr_text(), join_opts()).unwrap();
    assert_eq!(r.peer_refused, 1, "{r:?}");
    assert_eq!(r.peer_landed, 1, "{r:?}");
    let st = session.stop();
    let lr = st.peers[0].exchange.as_ref().unwrap();
    assert_eq!(lr.refused.len(), 1, "{lr:?}");
    assert_eq!(lr.refused[0].doc_id, v);
    assert!(!lr.refused[0].reason.is_empty());
    drop(session);
    let leader = Store::open(&leader_path, Durability::Normal).unwrap();
    assert_eq!(leader.load(&v).unwrap().heads(), before);
    assert_eq!(title(&leader, &own), "B 的走访");
}

#[test]
fn issue12_a_revoked_phone_is_refused_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("server"));
    let mut leader = server.device(dir.path(), "member-0002");
    let mut m1 = server.device(dir.path(), "member-0001");
    server.revoke(&m1);
    refresh(&mut leader);
    server.stop();
    let mine = record_visit(&mut m1, "注销后的记录");
    let before = visits(&leader);
    let leader_path = leader.path().to_path_buf();
    let mut session = MeetSession::serve(leader, serve_opts()).unwrap();
    let e = join(&mut m1, &session.qr_text(), join_opts()).unwrap_err();
    match &e {
        MeetError::RefusedBy(inner) => {
            assert!(matches!(**inner, MeetError::Revoked { .. }), "{e:?}")
        }
        _ => panic!("{e:?}"),
    }
    assert!(
        e.zh().contains("对方手机拒绝了本机：本机（设备") && e.zh().contains("已被注销"),
        "{}",
        e.zh()
    );
    let st = session.stop();
    assert!(st.peers[0].error.as_deref().unwrap().contains("已被注销"));
    drop(session);
    let leader = Store::open(&leader_path, Durability::Normal).unwrap();
    assert_eq!(visits(&leader), before);
    assert!(!leader.exists(&mine).unwrap());
}

/// The issue's chain, phone to phone: A's record and photo reach B by a bundle, and C (the
/// leader) by meeting B, original after the records; on C they wait for the server like any
/// relayed record (outbox, relayed table, blob outbox).
#[test]
fn issue12_a_record_and_photo_reach_a_third_phone_by_bundle_then_meeting() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("server"));
    let mut a = server.device(dir.path(), "member-0001");
    let mut b = server.device(dir.path(), "member-0003");
    let c = server.device(dir.path(), "member-0002");
    server.stop();
    let v = record_visit(&mut a, "带照片的走访");
    let jpeg = sanjin_media::testing::jpeg(&sanjin_media::testing::photo(1600, 1200, 7, 20), 85);
    let photo = attach_photo(&mut a, &v, PhotoSource::Bytes(&jpeg), "村口").unwrap();
    let parts = sanjin_client::bundle::export_bundle(
        &a,
        &sanjin_client::bundle::ExportOptions {
            with_originals: true,
            ..Default::default()
        },
        now_ms(),
    )
    .unwrap()
    .parts;
    for p in &parts {
        sanjin_client::bundle::import_bundle(&mut b, p, now_ms()).unwrap();
    }
    assert!(b.exists(&v).unwrap());

    let c_path = c.path().to_path_buf();
    let mut session = MeetSession::serve(
        c,
        ServeOptions {
            originals: true,
            ..serve_opts()
        },
    )
    .unwrap();
    let r = join(
        &mut b,
        &session.qr_text(),
        JoinOptions {
            originals: true,
            ..join_opts()
        },
    )
    .unwrap();
    assert_eq!(r.sent, 1, "{r:?}");
    assert_eq!(r.originals_sent, 1, "{r:?}");
    session.stop();
    drop(session);
    let c = Store::open(&c_path, Durability::Normal).unwrap();
    let hash = photo.photo.hash.clone();
    let doc = c.load(&v).unwrap();
    assert!(doc.thumbnail(&hash).is_some_and(|t| !t.is_empty()));
    assert!(c.outbox().unwrap().iter().any(|e| e.id == v));
    assert!(c.relayed_unreceipted().unwrap().contains(&v));
    let pending = c.pending_blobs().unwrap();
    assert!(
        pending.iter().any(|p| p.hash == hash && p.record_id == v),
        "{pending:?}"
    );
    assert_eq!(
        c.pending_blob_bytes(&hash).unwrap().unwrap(),
        jpeg_bytes_on(&a, &hash)
    );
}

fn jpeg_bytes_on(s: &Store, hash: &str) -> Vec<u8> {
    s.pending_blob_bytes(hash).unwrap().unwrap()
}
