//! The fallback: when a device's cursor is not valid on the server, the two run automerge's sync
//! protocol per document (`am_sync`), the server keeping one `sync::State` per device and
//! document, and changes arriving that way pass the same checks as pushes.

mod common;

use std::collections::HashMap;

use automerge::AutoCommit;
use automerge::sync::{self, SyncDoc};
use common::*;
use sanjin_core::Edit;
use sanjin_core::protocol::{DocSync, RefusalCode, SyncRequest};

/// The device side of one fallback round for every record in its store: the messages to send.
fn device_messages(dev: &Device, states: &mut HashMap<String, sync::State>) -> Vec<DocSync> {
    let mut out = Vec::new();
    for (id, _) in dev.store.ids().unwrap() {
        let mut am = AutoCommit::load(&dev.store.load(&id).unwrap().save()).unwrap();
        let state = states.entry(id.clone()).or_default();
        if let Some(m) = am.sync().generate_sync_message(state) {
            out.push(DocSync {
                doc_id: id,
                message: m.encode(),
            });
        }
    }
    out
}

/// Applies the server's messages to the device's store.
fn device_receive(dev: &mut Device, states: &mut HashMap<String, sync::State>, msgs: &[DocSync]) {
    for m in msgs {
        let mut am = match dev.store.load(&m.doc_id) {
            Ok(mut d) => AutoCommit::load(&d.save()).unwrap(),
            Err(_) => AutoCommit::new(),
        };
        let before = am.get_heads();
        let state = states.entry(m.doc_id.clone()).or_default();
        am.sync()
            .receive_sync_message(state, sync::Message::decode(&m.message).unwrap())
            .unwrap();
        if am.get_heads() != before {
            let bytes = if before.is_empty() {
                am.save()
            } else {
                am.save_after(&before)
            };
            dev.store.apply_remote(&m.doc_id, &bytes).unwrap();
        }
    }
}

#[tokio::test]
async fn resync_runs_the_automerge_sync_protocol_per_document() {
    let h = Harness::new();
    let mut a = h.device(&members_of("group-01")[0]).await;
    let mut d = h.device(&members_of("group-01")[1]).await;

    // A shared visit: A records it, D pulls it. Then A edits it; D does not pull again.
    let shared = a.new_visit("group-01");
    h.sync_once(&mut a).await;
    h.sync_once(&mut d).await;
    assert!(d.has(&shared));
    a.store
        .update(&shared, |doc, by| {
            doc.edit(
                by,
                now(),
                &[Edit::Set {
                    field: "title".into(),
                    value: "组员 A 修改的标题".into(),
                }],
            )
        })
        .unwrap();
    h.sync_once(&mut a).await;

    // D holds a record the server lost (restored from an older backup): acknowledged long ago,
    // so no longer in D's outbox.
    let lost = d.new_visit("group-01");
    let heads = d.store.load(&lost).unwrap().heads();
    d.store.ack(&lost, &heads).unwrap();
    assert!(d.store.outbox().unwrap().is_empty());
    // And one of another group that it got directly from a friend's phone: never accepted.
    let mut friend = h.device(&members_of("group-02")[0]).await;
    let other = friend.new_visit("group-02");
    let mut doc = friend.store.load(&other).unwrap();
    d.store.insert(&mut doc, false).unwrap();

    // D's cursor belongs to another epoch: the server says resync.
    d.epoch = random16();
    let resp = h.sync_once(&mut d).await;
    assert!(resp.resync);
    let server_epoch = resp.epoch;

    let mut states: HashMap<String, sync::State> = HashMap::new();
    let mut refusals = Vec::new();
    let mut rounds = 0;
    let mut cursor = 0;
    loop {
        rounds += 1;
        assert!(rounds < 12, "the fallback did not settle");
        let msgs = device_messages(&d, &mut states);
        if msgs.is_empty() {
            break;
        }
        // As the real client does: every change of each document named is covered (a sync
        // message may carry a whole document).
        let carried: Vec<Vec<u8>> = msgs
            .iter()
            .filter_map(|m| d.store.load(&m.doc_id).ok())
            .map(|mut doc| doc.save_after(&[]))
            .collect();
        let sigs = d.sigs_for(carried.iter().map(Vec::as_slice));
        let req = SyncRequest {
            request_id: random16(),
            epoch: d.epoch,
            cursor: d.cursor,
            max_response_bytes: 1 << 20,
            am_sync: msgs,
            sigs,
            ..Default::default()
        };
        let resp = h.sync(&d, &req).await;
        assert!(resp.resync);
        assert!(resp.changes.is_empty());
        cursor = resp.cursor;
        refusals.extend(resp.refused.iter().map(|r| (r.doc_id.clone(), r.code)));
        device_receive(&mut d, &mut states, &resp.am_sync);
        if resp.am_sync.is_empty() {
            break;
        }
    }
    assert!(rounds >= 2, "{rounds}");
    // Then D adopts the server's epoch.
    d.epoch = server_epoch;
    d.cursor = cursor;

    // The server got the lost record back, through its change log (so A pulls it) …
    let l = lost.clone();
    assert!(h.data(move |s| s.store().exists(&l).unwrap()).await);
    h.sync_once(&mut a).await;
    assert!(a.has(&lost));
    // … D got A's edit …
    let view = d.store.load(&shared).unwrap().view().unwrap();
    match view.data {
        sanjin_core::RecordData::Visit(v) => assert_eq!(v.title, "组员 A 修改的标题"),
        _ => unreachable!(),
    }
    let s = shared.clone();
    let server_heads = h.data(move |x| x.store().load(&s).unwrap().heads()).await;
    assert_eq!(d.store.load(&shared).unwrap().heads(), server_heads);
    // … and the other group's record was refused, and is not on the server.
    assert!(
        refusals.contains(&(other.clone(), RefusalCode::Forbidden)),
        "{refusals:?}"
    );
    let o = other.clone();
    assert!(!h.data(move |s| s.store().exists(&o).unwrap()).await);
    // One sync state per device and document is kept.
    let dev_id = d.creds.device_id.clone();
    let n: i64 = h
        .data(move |s| {
            rusqlite::Connection::open(s.dir().join(sanjin_server::DB_FILE))
                .unwrap()
                .query_row(
                    "SELECT COUNT(*) FROM sync_states WHERE device_id = ?1",
                    [&dev_id],
                    |r| r.get(0),
                )
                .unwrap()
        })
        .await;
    assert!(n as usize >= small_directory_len(), "{n}");

    // Back to normal: the next exchange is no resync and has nothing new for D.
    let resp = h.sync_once(&mut d).await;
    assert!(!resp.resync);
    assert!(resp.changes.is_empty(), "{:?}", resp.changes.len());
}

#[tokio::test]
async fn sync_messages_for_records_out_of_scope_are_refused() {
    let h = Harness::new();
    let mut g2 = h.device(&members_of("group-02")[0]).await;
    let theirs = g2.new_visit("group-02");
    h.sync_once(&mut g2).await;
    let g1 = h.device(&members_of("group-01")[0]).await;
    let mut am = AutoCommit::new();
    let msg = am
        .sync()
        .generate_sync_message(&mut sync::State::new())
        .unwrap();
    let req = SyncRequest {
        request_id: random16(),
        am_sync: vec![
            DocSync {
                doc_id: theirs.clone(),
                message: msg.encode(),
            },
            DocSync {
                doc_id: "x".into(),
                message: b"garbage".to_vec(),
            },
        ],
        ..Default::default()
    };
    let resp = h.sync(&g1, &req).await;
    let codes: Vec<_> = resp
        .refused
        .iter()
        .map(|r| (r.doc_id.as_str(), r.code))
        .collect();
    assert_eq!(
        codes,
        vec![
            (theirs.as_str(), RefusalCode::Forbidden),
            ("x", RefusalCode::Malformed)
        ]
    );
    assert!(resp.am_sync.is_empty(), "nothing of theirs is sent");
}
