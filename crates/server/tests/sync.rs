//! The sync server through its router (no socket): enrollment, push and pull, scopes, roles,
//! refusals, idempotent retries, batches and the fallback. Real SQLite files in temporary
//! folders; request bodies built from real device stores.

mod common;

use axum::http::StatusCode;
use common::*;
use sanjin_core::domain::RecordData;
use sanjin_core::protocol::{DocChanges, RefusalCode, SyncRequest};
use sanjin_core::workflow::EventType;
use sanjin_core::{Author, Edit, RecordDoc};
use sanjin_server::{EnrollRequest, Role};

#[tokio::test]
async fn health_answers() {
    let h = Harness::new();
    let r = h.get("/health", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let j = r.json();
    assert_eq!(j["status"], "ok");
    assert_eq!(j["protocol"], sanjin_core::protocol::VERSION);
    assert!(j["version"].is_string());
    let r = h.get("/no/such/thing", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error(), "not_found");
}

#[tokio::test]
async fn a_code_enrolls_once_and_only_its_member() {
    let h = Harness::new();
    let m = members_of("group-01")[0].clone();
    let other = members_of("group-01")[1].clone();
    let mm = m.clone();
    let code = h.data(move |d| d.issue_code(&mm).unwrap()).await;
    assert_eq!(code.code.len(), 12, "{}", code.code);
    assert_eq!(code.code.matches('-').count(), 2);

    // Another member's store cannot use it.
    let wrong = serde_json::json!({"code": code.code, "device_name": "x", "member": other});
    let r = h.post_json("/v1/enroll", &wrong).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.json());
    assert_eq!(r.error(), "forbidden");

    // Typed in lower case with spaces: still the code.
    let typed = code.code.to_lowercase().replace('-', " ");
    let (device_id, actor) = sanjin_store::new_device();
    let ok = serde_json::json!({"code": typed, "device_name": "手机", "member": m,
        "device_id": device_id, "actor": hex::encode(&actor)});
    let r = h.post_json("/v1/enroll", &ok).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    let j = r.json();
    assert_eq!(j["device_id"], device_id.as_str());
    assert_eq!(j["member"], m.as_str());
    assert_eq!(j["role"], "member");
    assert_eq!(j["group"], "group-01");
    assert_eq!(j["actor"], hex::encode(&actor).as_str());
    assert_eq!(j["secret"].as_str().unwrap().len(), 64);
    let epoch = h.data(|d| hex::encode(d.epoch())).await;
    assert_eq!(j["server_epoch"], epoch.as_str());

    // Second use of the code.
    let (device_id2, actor2) = sanjin_store::new_device();
    let again = serde_json::json!({"code": code.code, "device_name": "另一部", "member": m,
        "device_id": device_id2, "actor": hex::encode(&actor2)});
    let r = h.post_json("/v1/enroll", &again).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.error(), "code_used");

    // Unknown code, and an actor that belongs to another device.
    let r = h
        .post_json(
            "/v1/enroll",
            &serde_json::json!({"code": "AAAA-BBBB-CC", "device_name": "x"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let mm = m.clone();
    let code2 = h.data(move |d| d.issue_code(&mm).unwrap()).await;
    let reuse = serde_json::json!({"code": code2.code, "device_name": "x", "member": m,
        "actor": hex::encode(&actor)});
    let r = h.post_json("/v1/enroll", &reuse).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.error(), "actor_in_use");
    // Without a store's ids the server chooses them; the code was not used up by the refusal.
    let fresh = EnrollRequest {
        code: code2.code,
        device_name: "平板".into(),
        device_id: None,
        actor: None,
        member: None,
        public_key: None,
    };
    let r = h
        .post_json("/v1/enroll", &serde_json::to_value(&fresh).unwrap())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    assert_eq!(r.json()["actor"].as_str().unwrap().len(), 32);
    let devices = h.data(|d| d.devices().unwrap()).await;
    assert_eq!(devices.len(), 2);

    // Bad JSON is a bad message.
    let r = h.post("/v1/enroll", None, "{not json").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error(), "bad_message");
}

#[tokio::test]
async fn two_members_of_a_group_push_and_pull_in_one_request_each() {
    let h = Harness::new();
    let [a, b] = [&members_of("group-01")[0], &members_of("group-01")[1]];
    let mut a = h.device(a).await;
    let mut b = h.device(b).await;
    let visit = a.new_visit("group-01");

    // A: one request pushes the visit (and pulls the directory).
    let resp = h.sync_once(&mut a).await;
    assert!(resp.refused.is_empty(), "{:?}", resp.refused);
    assert_eq!(resp.acks.len(), 1);
    assert_eq!(a.acked, vec![visit.clone()]);
    assert!(!resp.more && !resp.resync);
    assert!(
        a.store.outbox().unwrap().is_empty(),
        "the ack drains the outbox"
    );
    assert_eq!(
        resp.changes.len(),
        small_directory_len(),
        "the directory, not its own visit"
    );
    assert!(resp.changes.iter().all(|c| c.doc_id != visit));

    // B: one request pulls the directory and A's visit.
    let resp = h.sync_once(&mut b).await;
    assert!(!resp.more);
    assert_eq!(resp.changes.len(), small_directory_len() + 1);
    assert!(b.has(&visit));
    assert_eq!(b.cursor, resp.cursor);
    let mut theirs = b.store.load(&visit).unwrap();
    let mut ours = a.store.load(&visit).unwrap();
    assert_eq!(theirs.heads(), ours.heads());
    assert!(
        b.store.outbox().unwrap().is_empty(),
        "pulled records are not queued"
    );

    // B edits it; A gets the edit in one request; the server's copy has both.
    b.store
        .update(&visit, |doc, by| {
            doc.edit(
                by,
                now(),
                &[Edit::Set {
                    field: "title".into(),
                    value: "修改后的标题".into(),
                }],
            )
        })
        .unwrap();
    let resp = h.sync_once(&mut b).await;
    assert_eq!(resp.acks.len(), 1);
    assert!(
        resp.changes.is_empty(),
        "nothing new for B but its own edit"
    );
    let resp = h.sync_once(&mut a).await;
    assert_eq!(resp.changes.len(), 1);
    let view = a.store.load(&visit).unwrap().view().unwrap();
    match view.data {
        RecordData::Visit(v) => assert_eq!(v.title, "修改后的标题"),
        _ => unreachable!(),
    }
    let v = visit.clone();
    let server_bytes = h.data(move |d| d.store().load(&v).unwrap().save()).await;
    let mut server_doc = RecordDoc::load(&server_bytes).unwrap();
    let mut b_doc = b.store.load(&visit).unwrap();
    assert_eq!(server_doc.heads(), b_doc.heads());
}

#[tokio::test]
async fn another_groups_record_is_refused_and_the_rest_lands() {
    let h = Harness::new();
    let mut a = h.device(&members_of("group-01")[0]).await;
    let ours = a.new_visit("group-01");
    let theirs = a.new_visit("group-02");
    let resp = h.sync_once(&mut a).await;
    assert_eq!(resp.acks.len(), 1);
    assert_eq!(a.acked, vec![ours.clone()]);
    assert_eq!(resp.refused.len(), 1);
    assert_eq!(resp.refused[0].doc_id, theirs);
    assert_eq!(resp.refused[0].code, RefusalCode::Forbidden);
    let outbox: Vec<String> = a
        .store
        .outbox()
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(outbox, vec![theirs.clone()], "the refused one stays queued");
    let t = theirs.clone();
    assert!(!h.data(move |d| d.store().exists(&t).unwrap()).await);
    let o = ours.clone();
    assert!(h.data(move |d| d.store().exists(&o).unwrap()).await);

    // Moving our own record into another group is refused as well.
    a.store
        .update(&ours, |doc, by| {
            doc.edit(
                by,
                now(),
                &[Edit::Set {
                    field: "group".into(),
                    value: "group-02".into(),
                }],
            )
        })
        .unwrap();
    let resp = h.sync_once(&mut a).await;
    let codes: Vec<_> = resp
        .refused
        .iter()
        .map(|r| (r.doc_id.clone(), r.code))
        .collect();
    assert!(
        codes.contains(&(ours.clone(), RefusalCode::Forbidden)),
        "{codes:?}"
    );

    // And a member may not write the directory.
    let mut b = h.device(&members_of("group-01")[1]).await;
    h.sync_once(&mut b).await;
    b.store
        .update("group-01", |doc, by| {
            doc.edit(
                by,
                now(),
                &[Edit::Set {
                    field: "name".into(),
                    value: "改名".into(),
                }],
            )
        })
        .unwrap();
    let resp = h.sync_once(&mut b).await;
    assert_eq!(resp.refused.len(), 1);
    assert_eq!(resp.refused[0].code, RefusalCode::Forbidden);
}

#[tokio::test]
async fn review_steps_need_the_groups_leader_or_staff() {
    let h = Harness::new();
    let mut member = h.device(&members_of("group-01")[0]).await;
    let mut other = h.device(&members_of("group-01")[1]).await;
    let mut leader = h.device(LEADER_1).await;
    let mut leader2 = h.device(&leader_of("group-02")).await;
    let mut staff = h.device("office-01").await;
    assert_eq!(leader.creds.role, Role::Leader);
    assert_eq!(staff.creds.role, Role::Staff);

    let visit = member.new_visit("group-01");
    member
        .store
        .update(&visit, |doc, by| {
            doc.transition(by, now(), EventType::Submit, None)
        })
        .unwrap();
    let resp = h.sync_once(&mut member).await;
    assert_eq!(resp.acks.len(), 1, "submitting is the member's own step");

    // Another member approves: role.
    h.sync_once(&mut other).await;
    other
        .store
        .update(&visit, |doc, by| {
            doc.transition(by, now(), EventType::Approve, None)
        })
        .unwrap();
    let resp = h.sync_once(&mut other).await;
    assert_eq!(resp.refused.len(), 1);
    assert_eq!(
        resp.refused[0].code,
        RefusalCode::Role,
        "{:?}",
        resp.refused
    );

    // The member itself approves its own visit: role too.
    member
        .store
        .update(&visit, |doc, by| {
            doc.transition(by, now(), EventType::Approve, None)
        })
        .unwrap();
    let resp = h.sync_once(&mut member).await;
    assert_eq!(resp.refused[0].code, RefusalCode::Role);

    // Another group's leader may not even write it.
    let mut doc = RecordDoc::load(
        &h.data({
            let v = visit.clone();
            move |d| d.store().load(&v).unwrap().save()
        })
        .await,
    )
    .unwrap();
    doc.transition(&leader2.store.author(), now(), EventType::Approve, None)
        .unwrap();
    leader2.insert(&mut doc);
    let resp = h.sync_once(&mut leader2).await;
    let refused: Vec<_> = resp.refused.iter().filter(|r| r.doc_id == visit).collect();
    assert_eq!(refused[0].code, RefusalCode::Forbidden);

    // The group's leader approves: accepted, and it reaches the member.
    h.sync_once(&mut leader).await;
    leader
        .store
        .update(&visit, |doc, by| {
            doc.transition(by, now(), EventType::Approve, None)
        })
        .unwrap();
    let resp = h.sync_once(&mut leader).await;
    assert!(resp.refused.is_empty(), "{:?}", resp.refused);
    assert_eq!(resp.acks.len(), 1);

    // Staff return an opinion of any group.
    let f = fixtures();
    let op = f
        .opinions
        .iter()
        .find_map(|r| match &r.data {
            RecordData::Opinion(o) if o.group == "group-02" => Some(o.clone()),
            _ => None,
        })
        .unwrap();
    let mut doc = RecordDoc::create(
        "opinion-by-staff",
        &RecordData::Opinion(op),
        &staff.store.author(),
        now(),
    )
    .unwrap();
    doc.transition(&staff.store.author(), now(), EventType::Submit, None)
        .unwrap();
    doc.transition(&staff.store.author(), now(), EventType::Accept, None)
        .unwrap();
    staff.insert(&mut doc);
    let resp = h.sync_once(&mut staff).await;
    assert!(resp.refused.is_empty(), "{:?}", resp.refused);
}

#[tokio::test]
async fn changes_by_unknown_or_impersonated_actors_are_foreign() {
    let h = Harness::new();
    let m = members_of("group-01")[0].clone();
    let mut dev = h.device(&m).await;
    let visit = fixtures()
        .visits
        .iter()
        .find(|r| matches!(&r.data, RecordData::Visit(v) if v.group == "group-01"))
        .unwrap();

    // Signed by an actor no device has.
    let stranger = Author::new(&m, "stolen-phone", &[9; 16]).unwrap();
    let mut doc = RecordDoc::create("v-stranger", &visit.data, &stranger, now()).unwrap();
    dev.insert(&mut doc);
    // Signed with this device's actor, but naming another member.
    let actor = hex::decode(&dev.creds.actor).unwrap();
    let liar = Author::new(&members_of("group-01")[1], &dev.creds.device_id, &actor).unwrap();
    let mut doc = RecordDoc::create("v-liar", &visit.data, &liar, now()).unwrap();
    dev.insert(&mut doc);
    // The fixtures' import actor is no device either.
    let mut imported = visit.to_doc().unwrap();
    dev.insert(&mut imported);
    let ok = dev.new_visit("group-01");

    let resp = h.sync_once(&mut dev).await;
    let mut refused: Vec<_> = resp
        .refused
        .iter()
        .map(|r| (r.doc_id.as_str(), r.code as u8))
        .collect();
    refused.sort();
    let mut want = vec![
        ("v-stranger", RefusalCode::ForeignActor as u8),
        ("v-liar", RefusalCode::ForeignActor as u8),
        (visit.id.as_str(), RefusalCode::ForeignActor as u8),
    ];
    want.sort();
    assert_eq!(refused, want);
    assert_eq!(resp.acks.len(), 1);
    assert_eq!(dev.acked, vec![ok.clone()]);
}

#[tokio::test]
async fn a_member_never_pulls_another_groups_records() {
    let h = Harness::new();
    let mut g2 = h.device(&members_of("group-02")[0]).await;
    let theirs = g2.new_visit("group-02");
    h.sync_once(&mut g2).await;

    let mut g1 = h.device(&members_of("group-01")[0]).await;
    let mine = g1.new_visit("group-01");
    let resp = h.sync_once(&mut g1).await;
    assert!(resp.changes.iter().all(|c| c.doc_id != theirs));
    assert!(!g1.has(&theirs));
    // … nor later.
    g2.store
        .update(&theirs, |doc, by| {
            doc.edit(
                by,
                now(),
                &[Edit::Set {
                    field: "title".into(),
                    value: "二组的新标题".into(),
                }],
            )
        })
        .unwrap();
    h.sync_once(&mut g2).await;
    let resp = h.sync_once(&mut g1).await;
    assert!(resp.changes.is_empty(), "{:?}", resp.changes);

    // Its leader sees its own group only; staff see both.
    let mut leader = h.device(LEADER_1).await;
    h.sync_once(&mut leader).await;
    assert!(leader.has(&mine) && !leader.has(&theirs));
    let mut staff = h.device("office-01").await;
    h.sync_once(&mut staff).await;
    assert!(staff.has(&mine) && staff.has(&theirs));
}

#[tokio::test]
async fn records_endpoint_answers_in_scope_only() {
    let h = Harness::new();
    let mut g1 = h.device(&members_of("group-01")[0]).await;
    let mut g2 = h.device(&members_of("group-02")[0]).await;
    let mine = g1.new_visit("group-01");
    let theirs = g2.new_visit("group-02");
    h.sync_once(&mut g1).await;
    h.sync_once(&mut g2).await;

    let r = h
        .get(&format!("/v1/records/{mine}"), Some(&g1.bearer()))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/octet-stream");
    let mut doc = RecordDoc::load(&r.body).unwrap();
    assert_eq!(doc.id(), mine);
    assert_eq!(doc.heads(), g1.store.load(&mine).unwrap().heads());

    let r = h
        .get(&format!("/v1/records/{theirs}"), Some(&g1.bearer()))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.error(), "forbidden");
    let r = h.get("/v1/records/group-02", Some(&g1.bearer())).await;
    assert_eq!(r.status, StatusCode::OK, "the directory is readable");
    let r = h
        .get("/v1/records/no-such-record", Some(&g1.bearer()))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = h.get(&format!("/v1/records/{mine}"), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let wrong = format!("{}.{}", g1.creds.device_id, "00".repeat(32));
    let r = h.get(&format!("/v1/records/{mine}"), Some(&wrong)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_revoked_device_is_refused_and_its_actor_too() {
    let h = Harness::new();
    let m = members_of("group-01")[0].clone();
    let mut phone = h.device(&m).await;
    let mut tablet = h.device(&m).await;
    h.sync_once(&mut phone).await;
    // The phone records offline, the tablet gets the record directly (merge), then the phone is
    // lost and revoked.
    let visit = phone.new_visit("group-01");
    let mut doc = phone.store.load(&visit).unwrap();
    tablet.insert(&mut doc);
    let id = phone.creds.device_id.clone();
    let revoked = h.data(move |d| d.revoke(&id).unwrap()).await;
    assert!(revoked.revoked_at_ms.is_some());

    let req = phone.request(1 << 20);
    let r = h
        .post("/v1/sync", Some(&phone.bearer()), req.encode())
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error(), "unauthorized");
    let r = h.get("/v1/records/group-01", Some(&phone.bearer())).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Changes signed by the revoked phone are not accepted through the tablet either (issue 10:
    // refused as `revoked`, a more precise code than the `foreign_actor` of before).
    let resp = h.sync_once(&mut tablet).await;
    assert_eq!(resp.refused.len(), 1);
    assert_eq!(resp.refused[0].code, RefusalCode::Revoked);
    // The tablet itself still works.
    let own = tablet.new_visit("group-01");
    h.sync_once(&mut tablet).await;
    assert!(tablet.acked.contains(&own));
}

#[tokio::test]
async fn bad_bodies_get_clear_errors_and_the_server_keeps_serving() {
    let h = Harness::with_limits(sanjin_server::Limits {
        body_bytes: 64 << 10,
        ..Default::default()
    });
    let mut dev = h.device(&members_of("group-01")[0]).await;
    let bearer = dev.bearer();
    dev.new_visit("group-01");
    let good = dev.request(1 << 20).encode();

    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "garbage",
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            StatusCode::BAD_REQUEST,
            "bad_message",
        ),
        ("empty", vec![], StatusCode::BAD_REQUEST, "bad_message"),
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            StatusCode::BAD_REQUEST,
            "bad_message",
        ),
        (
            "header only",
            good[..3].to_vec(),
            StatusCode::BAD_REQUEST,
            "bad_message",
        ),
        (
            "random",
            (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect(),
            StatusCode::BAD_REQUEST,
            "bad_message",
        ),
        (
            "oversized",
            vec![7u8; 65 << 10],
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            "version 1 (issue 3: the layout before acks by position)",
            {
                let mut b = good.clone();
                b[2] = 1;
                b
            },
            StatusCode::BAD_REQUEST,
            "unsupported_version",
        ),
        (
            "a future version",
            {
                let mut b = good.clone();
                b[2] = 99;
                b
            },
            StatusCode::BAD_REQUEST,
            "unsupported_version",
        ),
        (
            "a response frame",
            sanjin_core::protocol::SyncResponse::default().encode(),
            StatusCode::BAD_REQUEST,
            "bad_message",
        ),
    ];
    for (what, body, status, code) in cases {
        let r = h.post("/v1/sync", Some(&bearer), body).await;
        assert_eq!(
            r.status,
            status,
            "{what}: {:?}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.error(), code, "{what}");
        assert!(r.json()["message"].is_string(), "{what}");
    }
    // Bad credentials.
    let r = h.post("/v1/sync", None, good.clone()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = h.post("/v1/sync", Some("not-a-token"), good.clone()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = h
        .post(
            "/v1/sync",
            Some(&format!("nobody.{}", "ab".repeat(32))),
            good.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // A pushed document that is not a sanjin record is refused, not an error.
    let mut req = dev.request(1 << 20);
    req.pushes.push(DocChanges {
        doc_id: "junk".into(),
        changes: b"not automerge at all".to_vec(),
    });
    let resp = h.sync(&dev, &req).await;
    assert_eq!(resp.refused.len(), 1);
    assert_eq!(resp.refused[0].code, RefusalCode::Malformed);
    assert_eq!(resp.acks.len(), 1, "the rest of the batch lands");

    // Still serving.
    let r = h.get("/health", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let resp = h.sync_once(&mut dev).await;
    assert!(resp.refused.is_empty());
}

#[tokio::test]
async fn a_retried_request_writes_nothing_twice() {
    let h = Harness::new();
    let mut a = h.device(&members_of("group-01")[0]).await;
    h.sync_once(&mut a).await;
    let visit = a.new_visit("group-01");
    let req = a.request(1 << 20);
    let first = h.post("/v1/sync", Some(&a.bearer()), req.encode()).await;
    assert_eq!(first.status, StatusCode::OK);
    let log = h.log_len().await;
    // The answer was lost; the device retries the same request.
    let second = h.post("/v1/sync", Some(&a.bearer()), req.encode()).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(first.body, second.body, "the same answer");
    assert_eq!(h.log_len().await, log, "nothing logged twice");
    let v = visit.clone();
    let chunks: i64 = h
        .data(move |d| {
            rusqlite::Connection::open(d.dir().join(sanjin_server::DB_FILE))
                .unwrap()
                .query_row("SELECT chunk_count FROM docs WHERE id = ?1", [&v], |r| {
                    r.get(0)
                })
                .unwrap()
        })
        .await;
    assert_eq!(chunks, 0, "written once");
    let resp = sanjin_core::protocol::SyncResponse::decode(&second.body).unwrap();
    assert_eq!(resp.request_id, req.request_id);
    a.apply(&req, &resp);
    assert!(a.store.outbox().unwrap().is_empty());

    // A new request with the same pushes (a retry after the device lost its own state) lands
    // nothing new either, and is acked.
    let again = SyncRequest {
        request_id: random16(),
        ..req
    };
    let resp = h.sync(&a, &again).await;
    assert_eq!(resp.acks.len(), 1);
    assert_eq!(h.log_len().await, log);
}

#[tokio::test]
async fn batches_continue_with_more() {
    let h = Harness::new();
    let mut writer = h.device(&members_of("group-01")[0]).await;
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(writer.new_visit("group-01"));
    }
    h.sync_all(&mut writer, 1 << 20).await;

    let mut reader = h.device(&members_of("group-01")[1]).await;
    // A small bound: every answer carries at least one entry, stays near the bound, sets more.
    let mut rounds = 0;
    let mut last_cursor = 0;
    loop {
        rounds += 1;
        let req = reader.request(8 << 10);
        let resp = h.sync(&reader, &req).await;
        let bytes: usize = resp.changes.iter().map(|c| c.changes.len()).sum();
        assert!(!resp.changes.is_empty() || !resp.more);
        assert!(
            bytes <= 8 << 10 || resp.changes.len() == 1,
            "{bytes} bytes in {} documents",
            resp.changes.len()
        );
        assert!(resp.cursor > last_cursor || !resp.more);
        last_cursor = resp.cursor;
        reader.apply(&req, &resp);
        if !resp.more {
            break;
        }
        assert!(rounds < 500);
    }
    assert!(rounds > 3, "{rounds} rounds");
    for id in &ids {
        assert!(reader.has(id), "{id}");
    }
    let max = h.data(|d| d.max_seq().unwrap()).await;
    assert_eq!(
        reader.cursor >> 20,
        max,
        "the cursor stands for the end of the log"
    );
    // Nothing left.
    let resp = h.sync_once(&mut reader).await;
    assert!(resp.changes.is_empty() && !resp.more);
}

#[tokio::test]
async fn a_foreign_epoch_or_a_cursor_beyond_the_log_asks_for_resync() {
    let h = Harness::new();
    let mut dev = h.device(&members_of("group-01")[0]).await;
    h.sync_once(&mut dev).await;
    let server_epoch = h.data(|d| d.epoch()).await;
    assert_eq!(dev.epoch, server_epoch);
    let max = h.data(|d| d.max_seq().unwrap()).await;

    // The device's cursor belongs to another server (restored from backup, …).
    let mut req = dev.request(1 << 20);
    req.epoch = random16();
    let resp = h.sync(&dev, &req).await;
    assert!(resp.resync);
    assert_eq!(resp.epoch, server_epoch);
    assert_eq!(
        resp.cursor >> 20,
        max,
        "cursors carry the log position in their high bits"
    );
    assert!(resp.changes.is_empty());

    let mut req = dev.request(1 << 20);
    req.cursor = (max + 100) << 20;
    let resp = h.sync(&dev, &req).await;
    assert!(resp.resync);
    assert_eq!(resp.cursor >> 20, max);

    // A first sync (zero epoch, cursor 0) is no resync.
    let mut req = dev.request(1 << 20);
    req.epoch = [0; 16];
    req.cursor = 0;
    let resp = h.sync(&dev, &req).await;
    assert!(!resp.resync);
}

/// A server restored from a backup that has since written other entries at the positions a
/// device already read must not let that device skip them: its cursor no longer matches, and the
/// server asks for a resync (issue 3).
#[tokio::test]
async fn a_cursor_into_a_rewritten_log_asks_for_resync() {
    let h = Harness::new();
    let mut dev = h.device(&members_of("group-01")[0]).await;
    dev.new_visit("group-01");
    h.sync_once(&mut dev).await;
    assert!(!h.sync_once(&mut dev).await.resync, "the cursor is valid");
    let seq = dev.cursor >> 20;
    // What a restore followed by new writes looks like at that position: another entry (its
    // link, which the storage computes when it appends, is another one too: since issue 11 the
    // tag comes from it; NULL makes the entry stand for itself, as entries from before links).
    h.data(move |d| {
        rusqlite::Connection::open(d.dir().join(sanjin_server::DB_FILE))
            .unwrap()
            .execute(
                "UPDATE change_log SET doc_id = 'another-record', link = NULL WHERE seq = ?1",
                [seq as i64],
            )
            .unwrap();
    })
    .await;
    let resp = h.sync(&dev, &dev.request(1 << 20)).await;
    assert!(resp.resync, "a cursor into a rewritten log is not trusted");
}

/// Issue 3: exchanges answered together in one group commit (one transaction, one disk sync)
/// are each answered on their own: one with bad credentials gets its 401, the others land, a
/// retry of one of them is answered from memory, and what landed is visible to the next pull.
#[tokio::test]
async fn a_group_commit_answers_each_exchange_on_its_own() {
    use sanjin_server::{Answer, AppError, Exchange};
    let h = Harness::new();
    let mut a = h.device(&members_of("group-01")[0]).await;
    let mut b = h.device(&members_of("group-01")[1]).await;
    let va = a.new_visit("group-01");
    let vb = b.new_visit("group-01");
    let (ra, rb) = (a.request(1 << 20), b.request(1 << 20));
    let log_before = h.log_len().await;
    let exchanges = vec![
        Exchange {
            authorization: Some(format!("Bearer {}", a.bearer())),
            request: ra.clone(),
        },
        Exchange {
            authorization: Some("Bearer nobody.00".into()),
            request: rb.clone(),
        },
        Exchange {
            authorization: Some(format!("Bearer {}", b.bearer())),
            request: rb.clone(),
        },
        // The same request again in the same group: answered from memory, nothing twice.
        Exchange {
            authorization: Some(format!("Bearer {}", a.bearer())),
            request: ra.clone(),
        },
    ];
    let answers = h.data(move |d| d.answer_group(&exchanges)).await;
    assert_eq!(answers.len(), 4);
    assert!(matches!(answers[1], Err(AppError::Unauthorized(_))));
    let frame = |i: usize| match &answers[i] {
        Ok((_, Answer::Stored(out))) => out.clone(),
        other => panic!("exchange {i}: {other:?}"),
    };
    let (first, second, retry) = (frame(0), frame(2), frame(3));
    assert!(!first.replayed && !second.replayed && retry.replayed);
    assert_eq!(
        retry.response, first.response,
        "the retry gets the same answer"
    );
    let resp_a = sanjin_core::protocol::SyncResponse::decode(&first.response).unwrap();
    let resp_b = sanjin_core::protocol::SyncResponse::decode(&second.response).unwrap();
    a.apply(&ra, &resp_a);
    b.apply(&rb, &resp_b);
    assert_eq!(a.acked, vec![va.clone()]);
    assert_eq!(b.acked, vec![vb.clone()]);
    assert_eq!(h.log_len().await, log_before + 2, "each visit logged once");
    // B's answer was computed after A's push landed in the same transaction: A's visit is in it.
    assert!(resp_b.changes.iter().any(|c| c.doc_id == va));
    // And A gets B's visit on its next pull.
    h.sync_once(&mut a).await;
    assert!(a.store.load(&vb).is_ok());
}
