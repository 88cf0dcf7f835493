//! Unit tests of the client against a scripted HTTP server on loopback (`mini`): batching, one
//! round trip in the common case, retries with the same request id, acks and the outbox, the
//! cursor, refusals, the automerge fallback, enrollment and URL rules.
//!
//! The end-to-end tests against the real `sanjin-server` are in `crates/client/tests/`.

mod mini;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use automerge::sync::{Message, State, SyncDoc};
use sanjin_core::domain::RecordData;
use sanjin_core::protocol::{DocChanges, DocSync, Refusal, SyncRequest, SyncResponse};
use sanjin_core::{Edit, RecordDoc, testdata};
use sanjin_store::{Durability, Identity, Store, new_record_id, now_ms};
use serde_json::json;

use self::mini::{MiniServer, Reply};
use crate::*;

fn identity(n: u8) -> Identity {
    Identity {
        member: format!("member-000{n}"),
        device: format!("device-{n}"),
        actor: vec![n; 16],
    }
}

fn new_store(dir: &Path, n: u8) -> Store {
    Store::init(
        &dir.join(format!("s{n}.sqlite")),
        &identity(n),
        Durability::Normal,
    )
    .unwrap()
}

/// Marks the store as enrolled with `url` (what `enroll` writes), at `epoch` cursor 0.
fn enrolled(store: &mut Store, url: &str, epoch: [u8; 16]) {
    for (k, v) in [
        (meta::SERVER, url.to_string()),
        (meta::DEVICE_ID, store.identity().device.clone()),
        (meta::SECRET, "s3cret".to_string()),
        (meta::MEMBER, store.identity().member.clone()),
        (meta::ROLE, "member".to_string()),
        (meta::EPOCH, hex(&epoch)),
        (meta::CURSOR, "0".to_string()),
    ] {
        store.set_meta(k, Some(&v)).unwrap();
    }
    // What `enroll` keeps since issue 10: the device's key and the server's certificate.
    let server = sanjin_core::sign::DeviceKey::from_seed([0xee; 32]);
    let key = sanjin_core::sign::DeviceKey::from_seed([store.identity().actor[0]; 32]);
    let server_cert = sanjin_core::sign::DeviceCert::server(&server, &[0xee; 16], 1);
    store
        .set_meta(meta::SERVER_CERT, Some(&hex(&server_cert.encode())))
        .unwrap();
    store.set_signing_key(&key).unwrap();
}

fn record_visit(store: &mut Store, title: &str) -> String {
    let mut v = testdata::visit();
    v.title = title.into();
    let id = new_record_id();
    let mut doc = RecordDoc::create(&id, &RecordData::Visit(v), &store.author(), now_ms()).unwrap();
    store.insert(&mut doc, true).unwrap();
    id
}

fn edit_title(store: &mut Store, id: &str, title: &str) {
    store
        .update(id, |d, by| {
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

fn opts() -> SyncOptions {
    SyncOptions {
        timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        backoff: Duration::from_millis(10),
        ..SyncOptions::default()
    }
}

fn outbox_ids(store: &Store) -> Vec<String> {
    let mut v: Vec<String> = store.outbox().unwrap().into_iter().map(|e| e.id).collect();
    v.sort();
    v
}

fn ack_all(req: &SyncRequest) -> Vec<u32> {
    (0..req.pushes.len() as u32).collect()
}

const EPOCH: [u8; 16] = [0xE1; 16];

/// Answers every sync request by acking all pushes, with nothing to pull.
fn acking_server() -> MiniServer {
    MiniServer::start(|r| {
        let req = SyncRequest::decode(&r.body).unwrap();
        Reply::frame(
            SyncResponse {
                request_id: req.request_id,
                epoch: EPOCH,
                cursor: req.cursor,
                acks: ack_all(&req),
                ..SyncResponse::default()
            }
            .encode(),
        )
    })
}

#[test]
fn url_rules() {
    assert!(ServerUrl::parse("https://sanjin.example.org").is_ok());
    assert_eq!(
        ServerUrl::parse("https://sanjin.example.org:8443/")
            .unwrap()
            .as_str(),
        "https://sanjin.example.org:8443"
    );
    for ok in [
        "http://127.0.0.1:8080",
        "http://localhost:8080",
        "http://[::1]:9",
        "http://127.1.2.3",
    ] {
        assert!(ServerUrl::parse(ok).is_ok(), "{ok}");
    }
    for insecure in ["http://sanjin.example.org", "http://192.168.1.10:8080"] {
        assert!(
            matches!(ServerUrl::parse(insecure), Err(Error::InsecureUrl)),
            "{insecure}"
        );
    }
    for bad in [
        "sanjin.example.org",
        "ftp://x",
        "https://",
        "https://x/?a=1",
        "",
    ] {
        assert!(
            matches!(ServerUrl::parse(bad), Err(Error::BadUrl(_))),
            "{bad}"
        );
    }
    assert!(matches!(
        parse_certificate("not a pem"),
        Err(Error::BadCertificate)
    ));
}

#[test]
fn sync_without_enrollment_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = new_store(dir.path(), 1);
    assert!(matches!(
        sync(&mut s, &opts(), &mut |_| {}),
        Err(Error::NotEnrolled)
    ));
    assert!(enrollment(&s).unwrap().is_none());
}

#[test]
fn enroll_keeps_credentials_epoch_and_pin() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = new_store(dir.path(), 1);
    let server = MiniServer::start(|r| {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/v1/enroll"));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        match body["code"].as_str().unwrap() {
            "GOOD-CODE" => {
                assert_eq!(body["device_id"], "device-1");
                assert_eq!(body["member"], "member-0001");
                assert_eq!(body["actor"], "01".repeat(16));
                assert_eq!(body["device_name"], "测试手机");
                Reply::json(
                    200,
                    json!({"device_id": "device-1", "secret": "abc", "member": "member-0001",
                           "role": "leader", "group": "group-01", "actor": "01".repeat(16),
                           "server_epoch": hex(&EPOCH)}),
                )
            }
            "OTHER-MEMBER" => Reply::json(
                200,
                json!({"device_id": "device-1", "secret": "abc", "member": "member-0009",
                       "role": "member", "group": "group-01", "server_epoch": hex(&EPOCH)}),
            ),
            _ => Reply::json(409, json!({"error": "code_used", "message": "used"})),
        }
    });
    let used = enroll(&mut s, &server.url(), "USED", None, "测试手机").unwrap_err();
    assert!(
        matches!(&used, Error::Http { status: 409, code } if code == "code_used"),
        "{used:?}"
    );
    assert!(matches!(
        enroll(&mut s, &server.url(), "OTHER-MEMBER", None, "测试手机"),
        Err(Error::WrongMember)
    ));
    assert!(enrollment(&s).unwrap().is_none(), "nothing kept on failure");

    let e = enroll(&mut s, &server.url(), " GOOD-CODE\n", None, "测试手机").unwrap();
    assert_eq!(e.role, "leader");
    assert_eq!(e.group.as_deref(), Some("group-01"));
    assert_eq!(enrollment(&s).unwrap().unwrap(), e);
    assert_eq!(s.meta(meta::SECRET).unwrap().as_deref(), Some("abc"));
    assert_eq!(s.meta(meta::EPOCH).unwrap(), Some(hex(&EPOCH)));
    assert_eq!(s.meta(meta::CURSOR).unwrap().as_deref(), Some("0"));
    assert!(!e.pinned_certificate);
}

#[test]
fn common_case_is_one_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut other = new_store(dir.path(), 2);
    let theirs = record_visit(&mut other, "另一位委员的走访");
    let their_bytes = other.load(&theirs).unwrap().save();
    let theirs2 = theirs.clone();
    let server = MiniServer::start(move |r| {
        assert_eq!(r.header("authorization"), Some("Bearer device-1.s3cret"));
        assert_eq!(r.header("content-type"), Some(SYNC_CONTENT_TYPE));
        let req = SyncRequest::decode(&r.body).unwrap();
        assert_eq!((req.epoch, req.cursor), (EPOCH, 0));
        Reply::frame(
            SyncResponse {
                request_id: req.request_id,
                epoch: EPOCH,
                cursor: 41,
                acks: ack_all(&req),
                changes: vec![DocChanges {
                    doc_id: theirs2.clone(),
                    changes: their_bytes.clone(),
                }],
                ..SyncResponse::default()
            }
            .encode(),
        )
    });
    let mut s = new_store(dir.path(), 1);
    enrolled(&mut s, &server.url(), EPOCH);
    for i in 0..3 {
        record_visit(&mut s, &format!("走访 {i}"));
    }
    let mut seen = Vec::new();
    let sum = sync(&mut s, &opts(), &mut |p| seen.push(p)).unwrap();
    assert_eq!(sum.round_trips, 1, "{sum:?}");
    assert_eq!((sum.sent, sum.received, sum.conflicts), (3, 1, 0));
    assert!(sum.refused.is_empty());
    assert!(s.outbox().unwrap().is_empty(), "everything acked");
    assert!(s.exists(&theirs).unwrap());
    assert!(
        !outbox_ids(&s).contains(&theirs),
        "pulled records are not queued back"
    );
    assert_eq!(s.meta(meta::CURSOR).unwrap().as_deref(), Some("41"));
    assert!(s.meta(meta::LAST_SYNC).unwrap().is_some());
    assert!(seen.contains(&Progress::Pushing { done: 3, total: 3 }));
    assert!(seen.contains(&Progress::Pulling { received: 1 }));
    assert!(sum.bytes_up > 0 && sum.bytes_down > 0);
}

#[test]
fn batches_are_bounded_and_a_large_doc_goes_alone() {
    let dir = tempfile::tempdir().unwrap();
    let server = acking_server();
    let mut s = new_store(dir.path(), 1);
    enrolled(&mut s, &server.url(), EPOCH);
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(record_visit(&mut s, &format!("走访 {i}")));
    }
    let one = s.load(&ids[0]).unwrap().save().len();
    // About three documents per batch.
    let limit = one * 3 + one / 2;
    let o = SyncOptions {
        batch_limit_bytes: limit,
        ..opts()
    };
    let sum = sync(&mut s, &o, &mut |_| {}).unwrap();
    let bodies = server.sync_bodies();
    assert_eq!(sum.round_trips, bodies.len());
    assert!((4..=6).contains(&bodies.len()), "{} requests", bodies.len());
    let mut pushed = Vec::new();
    let mut ids_seen = std::collections::HashSet::new();
    for b in &bodies {
        let req = SyncRequest::decode(b).unwrap();
        assert!(ids_seen.insert(req.request_id), "a fresh id per request");
        let bytes: usize = req.pushes.iter().map(|p| p.changes.len()).sum();
        assert!(bytes <= limit, "{bytes} > {limit}");
        pushed.extend(req.pushes.into_iter().map(|p| p.doc_id));
    }
    pushed.sort();
    ids.sort();
    assert_eq!(pushed, ids, "every document pushed exactly once");
    assert_eq!(sum.sent, 12);
    assert!(s.outbox().unwrap().is_empty());

    // A limit below one document's size: one document per request, none left behind.
    for i in 0..3 {
        record_visit(&mut s, &format!("大记录 {i}"));
    }
    let o = SyncOptions {
        batch_limit_bytes: 10,
        ..opts()
    };
    let before = server.sync_bodies().len();
    let sum = sync(&mut s, &o, &mut |_| {}).unwrap();
    assert_eq!(sum.round_trips, 3);
    for b in &server.sync_bodies()[before..] {
        assert_eq!(SyncRequest::decode(b).unwrap().pushes.len(), 1);
    }
    assert!(s.outbox().unwrap().is_empty());
}

#[test]
fn a_retry_resends_the_identical_request() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let server = MiniServer::start(move |r| {
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            return Reply::Drop; // the response is lost
        }
        let req = SyncRequest::decode(&r.body).unwrap();
        Reply::frame(
            SyncResponse {
                request_id: req.request_id,
                epoch: EPOCH,
                cursor: 3,
                acks: ack_all(&req),
                ..SyncResponse::default()
            }
            .encode(),
        )
    });
    let mut s = new_store(dir.path(), 1);
    enrolled(&mut s, &server.url(), EPOCH);
    record_visit(&mut s, "走访");
    let mut seen = Vec::new();
    let sum = sync(&mut s, &opts(), &mut |p| seen.push(p)).unwrap();
    let bodies = server.sync_bodies();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0], bodies[1], "the retry sends the same bytes");
    assert_eq!(sum.round_trips, 2);
    assert!(
        seen.iter()
            .any(|p| matches!(p, Progress::Retrying { attempt: 1, .. }))
    );
    assert!(s.outbox().unwrap().is_empty());

    // The next sync is a new request with a new id.
    sync(&mut s, &opts(), &mut |_| {}).unwrap();
    let bodies = server.sync_bodies();
    let (a, b) = (
        SyncRequest::decode(&bodies[1]).unwrap(),
        SyncRequest::decode(&bodies[2]).unwrap(),
    );
    assert_ne!(a.request_id, b.request_id);
    assert_eq!(b.cursor, 3);
}

#[test]
fn retries_are_bounded_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let server = MiniServer::start(|_| Reply::Drop);
    let mut s = new_store(dir.path(), 1);
    enrolled(&mut s, &server.url(), EPOCH);
    let id = record_visit(&mut s, "走访");
    let err = sync(&mut s, &opts(), &mut |_| {}).unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let bodies = server.sync_bodies();
    assert_eq!(bodies.len(), 4, "the first try and 3 retries");
    assert!(bodies.iter().all(|b| b == &bodies[0]));
    assert_eq!(outbox_ids(&s), vec![id]);
    assert_eq!(s.meta(meta::CURSOR).unwrap().as_deref(), Some("0"));

    // Nobody listening: a network error, quickly.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    s.set_meta(meta::SERVER, Some(&format!("http://127.0.0.1:{port}")))
        .unwrap();
    let o = SyncOptions {
        retries: 1,
        ..opts()
    };
    assert!(matches!(
        sync(&mut s, &o, &mut |_| {}),
        Err(Error::Network(_))
    ));
}

#[test]
fn cancel_stops_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let server = acking_server();
    let mut s = new_store(dir.path(), 1);
    enrolled(&mut s, &server.url(), EPOCH);
    record_visit(&mut s, "走访");
    let o = SyncOptions {
        cancel: Some(Arc::new(AtomicBool::new(true))),
        ..opts()
    };
    assert!(matches!(
        sync(&mut s, &o, &mut |_| {}),
        Err(Error::Cancelled)
    ));
    assert!(server.sync_bodies().is_empty());
    assert_eq!(s.outbox().unwrap().len(), 1);
}

#[test]
fn changes_made_during_a_sync_stay_queued() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s1.sqlite");
    let mut s = new_store(dir.path(), 1);
    let id = record_visit(&mut s, "走访");
    let calls = Arc::new(AtomicUsize::new(0));
    let (c, p, id2) = (calls.clone(), path.clone(), id.clone());
    let server = MiniServer::start(move |r| {
        let req = SyncRequest::decode(&r.body).unwrap();
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            // The member edits the record while the first request is in flight.
            let mut other = Store::open(&p, Durability::Normal).unwrap();
            edit_title(&mut other, &id2, "途中修改的标题");
        }
        Reply::frame(
            SyncResponse {
                request_id: req.request_id,
                epoch: EPOCH,
                cursor: 0,
                acks: ack_all(&req),
                ..SyncResponse::default()
            }
            .encode(),
        )
    });
    enrolled(&mut s, &server.url(), EPOCH);
    let sum = sync(&mut s, &opts(), &mut |_| {}).unwrap();
    assert_eq!((sum.sent, sum.round_trips, sum.still_queued), (1, 1, 1));
    let entry = &s.outbox().unwrap()[0];
    let first_push = &SyncRequest::decode(&server.sync_bodies()[0])
        .unwrap()
        .pushes[0];
    // The first push was the whole record: the heads it brings the server to are its heads.
    let first_heads = RecordDoc::load(&first_push.changes).unwrap().heads();
    assert_eq!(
        entry.acked_heads, first_heads,
        "acked up to what was pushed"
    );

    // The next sync pushes only the change made meanwhile, and then the outbox is empty.
    let sum = sync(&mut s, &opts(), &mut |_| {}).unwrap();
    assert_eq!(sum.sent, 1);
    let second = &SyncRequest::decode(&server.sync_bodies()[1])
        .unwrap()
        .pushes[0];
    let mut doc = s.load(&id).unwrap();
    assert_eq!(second.changes, doc.save_after(&first_heads));
    assert!(second.changes.len() < first_push.changes.len());
    assert!(s.outbox().unwrap().is_empty());
}

#[test]
fn refused_records_stay_queued_and_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = new_store(dir.path(), 1);
    let forbidden = record_visit(&mut s, "别组的记录");
    let fine = record_visit(&mut s, "本组的记录");
    let (f2, ok2) = (forbidden.clone(), fine.clone());
    let server = MiniServer::start(move |r| {
        let req = SyncRequest::decode(&r.body).unwrap();
        let mut resp = SyncResponse {
            request_id: req.request_id,
            epoch: EPOCH,
            ..SyncResponse::default()
        };
        for (i, p) in req.pushes.iter().enumerate() {
            if p.doc_id == f2 {
                resp.refused.push(Refusal {
                    doc_id: p.doc_id.clone(),
                    code: RefusalCode::Forbidden,
                    field: String::new(),
                    reason: "not in the device's write scope".into(),
                });
            } else {
                assert_eq!(p.doc_id, ok2);
                resp.acks.push(i as u32);
            }
        }
        Reply::frame(resp.encode())
    });
    enrolled(&mut s, &server.url(), EPOCH);
    let sum = sync(&mut s, &opts(), &mut |_| {}).unwrap();
    assert_eq!(
        sum.round_trips, 1,
        "a refused record is not retried in the same sync"
    );
    assert_eq!(sum.sent, 1);
    assert_eq!(
        sum.refused,
        vec![(
            forbidden.clone(),
            RefusalCode::Forbidden,
            "not in the device's write scope".to_string()
        )]
    );
    assert_eq!(outbox_ids(&s), vec![forbidden]);
    assert_eq!(sum.still_queued, 1);
}

#[test]
fn missing_deps_resends_the_whole_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = new_store(dir.path(), 1);
    let id = record_visit(&mut s, "走访");
    let server = acking_server();
    enrolled(&mut s, &server.url(), EPOCH);
    sync(&mut s, &opts(), &mut |_| {}).unwrap();
    edit_title(&mut s, &id, "改过的标题");
    drop(server);

    // This server lost the record (restored from an older backup but kept its epoch).
    let server = MiniServer::start(|r| {
        let req = SyncRequest::decode(&r.body).unwrap();
        let mut resp = SyncResponse {
            request_id: req.request_id,
            epoch: EPOCH,
            ..SyncResponse::default()
        };
        for (i, p) in req.pushes.iter().enumerate() {
            if RecordDoc::load(&p.changes).is_ok() {
                resp.acks.push(i as u32);
            } else {
                resp.refused.push(Refusal {
                    doc_id: p.doc_id.clone(),
                    code: RefusalCode::MissingDeps,
                    field: String::new(),
                    reason: "missing dependencies".into(),
                });
            }
        }
        Reply::frame(resp.encode())
    });
    s.set_meta(meta::SERVER, Some(&server.url())).unwrap();
    let sum = sync(&mut s, &opts(), &mut |_| {}).unwrap();
    assert_eq!(sum.round_trips, 2);
    assert_eq!(sum.sent, 1);
    assert!(sum.refused.is_empty());
    assert!(s.outbox().unwrap().is_empty());
}

#[test]
fn pulls_page_and_the_cursor_moves_only_after_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut other = new_store(dir.path(), 2);
    let docs: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| {
            let id = record_visit(&mut other, &format!("远端 {i}"));
            let bytes = other.load(&id).unwrap().save();
            (id, bytes)
        })
        .collect();
    let pages = docs.clone();
    let server = MiniServer::start(move |r| {
        let req = SyncRequest::decode(&r.body).unwrap();
        // One record per page, at cursors 10, 20, 30; cursor 30 answers garbage once.
        let at = req.cursor as usize / 10;
        let (changes, more) = if at < pages.len() {
            let (id, bytes) = &pages[at];
            let bytes = if at == 2 && req.max_response_bytes == 77 {
                b"garbage".to_vec()
            } else {
                bytes.clone()
            };
            (
                vec![DocChanges {
                    doc_id: id.clone(),
                    changes: bytes,
                }],
                at + 1 < pages.len(),
            )
        } else {
            (vec![], false)
        };
        Reply::frame(
            SyncResponse {
                request_id: req.request_id,
                epoch: EPOCH,
                cursor: if changes.is_empty() {
                    req.cursor
                } else {
                    req.cursor + 10
                },
                more,
                changes,
                ..SyncResponse::default()
            }
            .encode(),
        )
    });
    let mut s = new_store(dir.path(), 1);
    enrolled(&mut s, &server.url(), EPOCH);
    let bad = SyncOptions {
        max_response_bytes: 77,
        ..opts()
    };
    let err = sync(&mut s, &bad, &mut |_| {}).unwrap_err();
    assert!(matches!(err, Error::Store(_)), "{err:?}");
    assert_eq!(
        s.meta(meta::CURSOR).unwrap().as_deref(),
        Some("20"),
        "pages applied before the bad one are kept; the bad one is not skipped"
    );
    assert!(s.exists(&docs[1].0).unwrap() && !s.exists(&docs[2].0).unwrap());

    let sum = sync(&mut s, &opts(), &mut |_| {}).unwrap();
    assert_eq!((sum.round_trips, sum.received), (1, 1));
    assert_eq!(s.meta(meta::CURSOR).unwrap().as_deref(), Some("30"));
    for (id, _) in &docs {
        assert!(s.exists(id).unwrap());
    }
    assert!(
        s.outbox().unwrap().is_empty(),
        "pulled records are not queued back"
    );
}

/// The server side of the fallback for the test: plain automerge documents and one sync state
/// per document, as a server restored from backup would keep them.
#[derive(Default)]
struct Peer {
    docs: HashMap<String, automerge::AutoCommit>,
    states: HashMap<String, State>,
}

impl Peer {
    fn answer(&mut self, msgs: &[DocSync]) -> Vec<DocSync> {
        let mut out = Vec::new();
        for m in msgs {
            let doc = self.docs.entry(m.doc_id.clone()).or_default();
            let st = self.states.entry(m.doc_id.clone()).or_default();
            doc.sync()
                .receive_sync_message(st, Message::decode(&m.message).unwrap())
                .unwrap();
            if let Some(reply) = doc.sync().generate_sync_message(st) {
                out.push(DocSync {
                    doc_id: m.doc_id.clone(),
                    message: reply.encode(),
                });
            }
        }
        out
    }
}

#[test]
fn resync_runs_the_automerge_fallback_then_reads_the_log_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = new_store(dir.path(), 1);
    let shared = record_visit(&mut s, "双方都有");
    let lost = record_visit(&mut s, "服务器丢失的记录");
    // Acked by the old server: neither is in the outbox any more.
    let server = acking_server();
    enrolled(&mut s, &server.url(), EPOCH);
    sync(&mut s, &opts(), &mut |_| {}).unwrap();
    assert!(s.outbox().unwrap().is_empty());
    drop(server);

    // The restored server has `shared` with a change made by another device, not `lost`; and a
    // record in the device's scope that it lacks, `theirs`, which comes through the log.
    let mut other = new_store(dir.path(), 2);
    other
        .apply_remote(&shared, &s.load(&shared).unwrap().save())
        .unwrap();
    edit_title(&mut other, &shared, "组长改的标题");
    let theirs = record_visit(&mut other, "别的委员的记录");
    let theirs_bytes = other.load(&theirs).unwrap().save();
    let mut peer = Peer::default();
    peer.docs.insert(
        shared.clone(),
        automerge::AutoCommit::load(&other.load(&shared).unwrap().save()).unwrap(),
    );
    let peer = Arc::new(Mutex::new(peer));
    let new_epoch = [0xE2; 16];
    let p2 = peer.clone();
    let theirs2 = theirs.clone();
    let server = MiniServer::start(move |r| {
        let req = SyncRequest::decode(&r.body).unwrap();
        let mut resp = SyncResponse {
            request_id: req.request_id,
            epoch: new_epoch,
            cursor: 500,
            ..SyncResponse::default()
        };
        if req.epoch != new_epoch {
            resp.resync = true;
        } else if !req.am_sync.is_empty() {
            assert_eq!(req.cursor, 500);
            resp.am_sync = p2.lock().unwrap().answer(&req.am_sync);
        } else {
            assert_eq!(req.cursor, 0, "the log is read from 0 of the new epoch");
            resp.cursor = 7;
            resp.changes = vec![DocChanges {
                doc_id: theirs2.clone(),
                changes: theirs_bytes.clone(),
            }];
        }
        Reply::frame(resp.encode())
    });
    s.set_meta(meta::SERVER, Some(&server.url())).unwrap();
    let mut seen = Vec::new();
    let sum = sync(&mut s, &opts(), &mut |p| seen.push(p)).unwrap();
    assert!(sum.resynced);
    assert!(
        seen.iter()
            .any(|p| matches!(p, Progress::Resync { docs: 2, .. }))
    );
    assert_eq!(s.meta(meta::EPOCH).unwrap(), Some(hex(&new_epoch)));
    assert_eq!(s.meta(meta::CURSOR).unwrap().as_deref(), Some("7"));

    // Both sides now hold the same documents.
    let mut peer = peer.lock().unwrap();
    for id in [&shared, &lost] {
        let mine = s.load(id).unwrap().heads();
        let theirs = peer
            .docs
            .get_mut(id)
            .expect("the server got it")
            .get_heads();
        assert_eq!(mine, theirs, "{id}");
    }
    assert_eq!(
        s.index_entry(&shared).unwrap().unwrap().title,
        "组长改的标题"
    );
    assert!(s.exists(&theirs).unwrap());
    assert_eq!(sum.received, 2, "the edited record and the new one");
    // States are kept per document for the next time.
    let n = s.sync_states().unwrap().len();
    assert_eq!(n, 2);
    assert!(s.outbox().unwrap().is_empty());
}

#[test]
fn http_errors_carry_the_servers_code() {
    let dir = tempfile::tempdir().unwrap();
    let server = MiniServer::start(|_| {
        Reply::json(401, json!({"error": "unauthorized", "message": "revoked"}))
    });
    let mut s = new_store(dir.path(), 1);
    enrolled(&mut s, &server.url(), EPOCH);
    record_visit(&mut s, "走访");
    let err = sync(&mut s, &opts(), &mut |_| {}).unwrap_err();
    assert!(err.is_unauthorized(), "{err:?}");
    assert!(!err.is_transient());
    assert_eq!(server.sync_bodies().len(), 1, "not retried");
    assert_eq!(s.outbox().unwrap().len(), 1);
}

#[test]
fn a_server_whose_cursor_does_not_move_cannot_loop_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = MiniServer::start(|r| {
        let req = SyncRequest::decode(&r.body).unwrap();
        Reply::frame(
            SyncResponse {
                request_id: req.request_id,
                epoch: EPOCH,
                cursor: req.cursor,
                more: true,
                ..SyncResponse::default()
            }
            .encode(),
        )
    });
    let mut s = new_store(dir.path(), 1);
    enrolled(&mut s, &server.url(), EPOCH);
    assert!(matches!(
        sync(&mut s, &opts(), &mut |_| {}),
        Err(Error::Protocol(_))
    ));
    assert_eq!(server.sync_bodies().len(), 1);
}
