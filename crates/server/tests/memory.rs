//! The whole server on the in-memory storage (issue 11): what runs on SQLite runs on any
//! `ServerStorage` — enrollment, push and pull through the router, idempotent retries, a group
//! commit with an exchange that fails alone, the console's typed reads.

mod common;

use axum::http::StatusCode;
use common::*;
use sanjin_core::Edit;
use sanjin_core::domain::RecordData;
use sanjin_server::{Answer, AppError, Exchange};

#[tokio::test]
async fn issue11_two_members_push_and_pull_on_the_in_memory_storage() {
    let h = Harness::in_memory();
    assert!(
        !h.dir
            .path()
            .join("data")
            .join(sanjin_server::DB_FILE)
            .exists()
    );
    let [a, b] = [&members_of("group-01")[0], &members_of("group-01")[1]];
    let mut a = h.device(a).await;
    let mut b = h.device(b).await;
    let visit = a.new_visit("group-01");
    let resp = h.sync_once(&mut a).await;
    assert!(resp.refused.is_empty(), "{:?}", resp.refused);
    assert_eq!(a.acked, vec![visit.clone()]);
    assert_eq!(resp.changes.len(), small_directory_len());
    let resp = h.sync_once(&mut b).await;
    assert_eq!(resp.changes.len(), small_directory_len() + 1);
    assert!(b.has(&visit));
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
    assert_eq!(h.sync_once(&mut b).await.acks.len(), 1);
    assert_eq!(h.sync_once(&mut a).await.changes.len(), 1);
    match a.store.load(&visit).unwrap().view().unwrap().data {
        RecordData::Visit(v) => assert_eq!(v.title, "修改后的标题"),
        _ => unreachable!(),
    }
    // The server's copy, index row and log as the storage keeps them.
    let v = visit.clone();
    let (entry, seq) = h
        .data(move |d| (d.store().index_entry(&v).unwrap(), d.max_seq().unwrap()))
        .await;
    assert_eq!(entry.unwrap().group.as_deref(), Some("group-01"));
    assert_eq!(seq as usize, small_directory_len() + 2);
}

#[tokio::test]
async fn issue11_a_retry_and_a_group_commit_on_the_in_memory_storage() {
    let h = Harness::in_memory();
    let mut a = h.device(&members_of("group-01")[0]).await;
    let mut b = h.device(&members_of("group-01")[1]).await;
    h.sync_once(&mut a).await;
    a.new_visit("group-01");
    let req = a.request(1 << 20);
    let first = h.post("/v1/sync", Some(&a.bearer()), req.encode()).await;
    assert_eq!(first.status, StatusCode::OK);
    let log = h.data(|d| d.max_seq().unwrap()).await;
    let second = h.post("/v1/sync", Some(&a.bearer()), req.encode()).await;
    assert_eq!(first.body, second.body, "the same answer");
    assert_eq!(h.data(|d| d.max_seq().unwrap()).await, log, "nothing twice");

    // A group: B's exchange, one with wrong credentials, and B's again (replayed).
    let vb = b.new_visit("group-01");
    let rb = b.request(1 << 20);
    let exchanges = vec![
        Exchange {
            authorization: Some(format!("Bearer {}", b.bearer())),
            request: rb.clone(),
        },
        Exchange {
            authorization: Some("Bearer nobody.00".into()),
            request: rb.clone(),
        },
        Exchange {
            authorization: Some(format!("Bearer {}", b.bearer())),
            request: rb.clone(),
        },
    ];
    let answers = h.data(move |d| d.answer_group(&exchanges)).await;
    assert!(matches!(answers[1], Err(AppError::Unauthorized(_))));
    let frame = |i: usize| match &answers[i] {
        Ok((_, Answer::Stored(out))) => out.clone(),
        other => panic!("exchange {i}: {other:?}"),
    };
    let (first, retry) = (frame(0), frame(2));
    assert!(!first.replayed && retry.replayed);
    assert_eq!(first.response, retry.response);
    let resp = sanjin_core::protocol::SyncResponse::decode(&first.response).unwrap();
    b.apply(&rb, &resp);
    assert_eq!(b.acked, vec![vb.clone()]);
    assert_eq!(h.data(|d| d.max_seq().unwrap()).await, log + 1);
    // The console's typed reads on the same storage: a page of the group's visits.
    let (total, rows) = h
        .data(|d| {
            let f = sanjin_store::Filter {
                group: Some("group-01".into()),
                ..sanjin_store::Filter::default()
            };
            d.store().page(&f, 0, 50).unwrap()
        })
        .await;
    assert_eq!(total, 2);
    assert!(rows.iter().any(|e| e.id == vb));
}
