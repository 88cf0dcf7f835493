//! The device store (issue 2): saving, chunks and compaction, the outbox, list filters, merging
//! stores, and bad input that must fail clearly without losing anything else.

use rusqlite::Connection;
use sanjin_core::domain::{RecordData, RecordKind};
use sanjin_core::workflow::EventType;
use sanjin_core::{Edit, RecordDoc, testdata};
use sanjin_store::{COMPACT_AFTER, Durability, Error, Filter, Identity, Store};
use serde_json::json;

const T0: i64 = 1_747_616_400_000;

fn identity(n: u8) -> Identity {
    Identity {
        member: format!("member-000{n}"),
        device: format!("device-{n}"),
        actor: vec![n; 16],
    }
}

fn store(dir: &tempfile::TempDir, n: u8) -> Store {
    Store::init(
        &dir.path().join(format!("s{n}.sqlite")),
        &identity(n),
        Durability::Full,
    )
    .unwrap()
}

fn add_visit(s: &mut Store, id: &str, tweak: impl FnOnce(&mut sanjin_core::domain::Visit)) {
    let mut v = testdata::visit();
    tweak(&mut v);
    let mut doc = RecordDoc::create(id, &RecordData::Visit(v), &s.author(), T0).unwrap();
    s.insert(&mut doc, true).unwrap();
}

#[test]
fn save_reopen_and_edit_in_chunks_then_compact() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir, 1);
    // A long record collects chunks; a small one is kept as one snapshot.
    add_visit(&mut s, "v-1", |v| {
        v.summary = (0..12_000u32)
            .map(|i| char::from_u32(0x4e00 + (i * 7919) % 20_000).unwrap())
            .collect()
    });
    add_visit(&mut s, "small", |_| {});
    s.update("small", |d, by| {
        d.edit(
            by,
            T0,
            &[Edit::Set {
                field: "title".into(),
                value: json!("新"),
            }],
        )
    })
    .unwrap();
    let small: i64 = Connection::open(s.path())
        .unwrap()
        .query_row("SELECT chunk_count FROM docs WHERE id='small'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(small, 0, "small documents are rewritten whole");
    s.update("v-1", |d, by| {
        d.edit(
            by,
            T0,
            &[Edit::Set {
                field: "title".into(),
                value: json!("一"),
            }],
        )
    })
    .unwrap();
    let chunks: i64 = Connection::open(s.path())
        .unwrap()
        .query_row("SELECT chunk_count FROM docs WHERE id='v-1'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let len: i64 = Connection::open(s.path())
        .unwrap()
        .query_row(
            "SELECT LENGTH(snapshot) FROM docs WHERE id='v-1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        chunks, 1,
        "a large document's edit is one chunk (snapshot {len} bytes)"
    );
    for i in 0..(COMPACT_AFTER + 3) {
        s.update("v-1", |d, by| {
            d.edit(
                by,
                T0 + i,
                &[Edit::Set {
                    field: "title".into(),
                    value: json!(format!("第{i}次")),
                }],
            )
        })
        .unwrap();
    }
    let chunks: i64 = Connection::open(s.path())
        .unwrap()
        .query_row("SELECT chunk_count FROM docs WHERE id='v-1'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(chunks < COMPACT_AFTER, "compacted: {chunks} chunks left");
    drop(s);
    let s = Store::open(&dir.path().join("s1.sqlite"), Durability::Full).unwrap();
    assert_eq!(s.identity(), &identity(1));
    let doc = s.load("v-1").unwrap();
    match doc.data().unwrap() {
        RecordData::Visit(v) => assert_eq!(v.title, format!("第{}次", COMPACT_AFTER + 2)),
        _ => unreachable!(),
    }
    assert_eq!(
        s.load("v-1").unwrap().history().len() as i64,
        COMPACT_AFTER + 5
    );
}

#[test]
fn outbox_drains_only_for_what_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir, 1);
    add_visit(&mut s, "v-1", |_| {});
    let out = s.outbox().unwrap();
    assert_eq!(out.len(), 1);
    assert!(out[0].acked_heads.is_empty(), "the server has nothing yet");
    let acked = s.load("v-1").unwrap().heads();
    // An edit lands after the push but before the acknowledgement.
    s.update("v-1", |d, by| {
        d.edit(
            by,
            T0 + 1,
            &[Edit::Set {
                field: "title".into(),
                value: json!("新"),
            }],
        )
    })
    .unwrap();
    s.ack("v-1", &acked).unwrap();
    let out = s.outbox().unwrap();
    assert_eq!(out.len(), 1, "the later edit still waits");
    assert_eq!(out[0].acked_heads, acked);
    let now = s.load("v-1").unwrap().heads();
    s.ack("v-1", &now).unwrap();
    assert!(s.outbox().unwrap().is_empty());
    assert!(matches!(s.ack("nope", &now), Err(Error::NotFound(_))));
}

#[test]
fn list_filters_by_date_group_member_type_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir, 1);
    add_visit(&mut s, "a", |_| {});
    add_visit(&mut s, "b", |v| {
        v.group = "group-02".into();
        v.participants = vec!["member-0009".into()];
    });
    add_visit(&mut s, "c", |v| {
        v.start += chrono::Duration::days(40);
        v.end += chrono::Duration::days(40);
        v.activity_type = sanjin_core::domain::ActivityType::PairAssistance;
    });
    s.update("a", |d, by| d.transition(by, T0, EventType::Submit, None))
        .unwrap();
    let ids = |s: &Store, f: Filter| {
        s.list(&f)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&s, Filter::default()).len(), 3);
    assert_eq!(
        ids(
            &s,
            Filter {
                group: Some("group-02".into()),
                ..Default::default()
            }
        ),
        vec!["b"]
    );
    assert_eq!(
        ids(
            &s,
            Filter {
                member: Some("member-0009".into()),
                ..Default::default()
            }
        ),
        vec!["b"]
    );
    assert_eq!(
        ids(
            &s,
            Filter {
                from: Some("2026-06-01".into()),
                to: Some("2026-06-30".into()),
                ..Default::default()
            }
        ),
        vec!["c"]
    );
    assert_eq!(
        ids(
            &s,
            Filter {
                type_code: Some("pair_assistance".into()),
                ..Default::default()
            }
        ),
        vec!["c"]
    );
    assert_eq!(
        ids(
            &s,
            Filter {
                status: Some("submitted".into()),
                ..Default::default()
            }
        ),
        vec!["a"]
    );
    s.update("b", |d, by| d.delete(by, T0, None)).unwrap();
    assert_eq!(ids(&s, Filter::default()).len(), 2, "tombstones are hidden");
    assert_eq!(
        ids(
            &s,
            Filter {
                include_deleted: true,
                ..Default::default()
            }
        )
        .len(),
        3,
        "but kept"
    );
    assert!(
        ids(
            &s,
            Filter {
                kind: Some(RecordKind::Opinion),
                ..Default::default()
            }
        )
        .is_empty()
    );
}

#[test]
fn merge_from_another_store_brings_records_and_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = store(&dir, 1);
    let mut b = store(&dir, 2);
    add_visit(&mut a, "shared", |_| {});
    add_visit(&mut b, "only-b", |_| {});
    let r = b.merge_from(a.path()).unwrap();
    assert_eq!((r.added, r.updated), (1, 0));
    a.update("shared", |d, by| {
        d.edit(
            by,
            T0 + 1,
            &[Edit::Set {
                field: "title".into(),
                value: json!("甲"),
            }],
        )
    })
    .unwrap();
    b.update("shared", |d, by| {
        d.edit(
            by,
            T0 + 2,
            &[Edit::Set {
                field: "title".into(),
                value: json!("乙"),
            }],
        )
    })
    .unwrap();
    let r = a.merge_from(b.path()).unwrap();
    assert_eq!((r.added, r.updated), (1, 1));
    assert_eq!(r.new_conflicts, vec!["shared"]);
    let e = a.index_entry("shared").unwrap().unwrap();
    assert_eq!(e.conflicts, 1);
    assert_eq!(
        a.list(&Filter {
            only_conflicts: true,
            ..Default::default()
        })
        .unwrap()
        .len(),
        1
    );
    let r = a.merge_from(b.path()).unwrap();
    assert_eq!(
        (r.added, r.updated, r.unchanged),
        (0, 0, 2),
        "merging again changes nothing"
    );
}

#[test]
fn corrupt_document_is_a_clear_error_and_nothing_else_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir, 1);
    add_visit(&mut s, "good", |_| {});
    add_visit(&mut s, "bad", |_| {});
    Connection::open(s.path())
        .unwrap()
        .execute(
            "UPDATE docs SET snapshot = X'DEADBEEF' WHERE id = 'bad'",
            [],
        )
        .unwrap();
    match s.load("bad") {
        Err(e @ Error::Damaged { .. }) => assert!(e.to_string().contains("bad"), "{e}"),
        other => panic!("{:?}", other.map(|d| d.id().to_string())),
    }
    assert!(s.load("good").is_ok());
    assert_eq!(
        s.list(&Filter::default()).unwrap().len(),
        2,
        "the index still lists both"
    );
    assert_eq!(
        s.check()
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect::<Vec<_>>(),
        vec!["bad"]
    );
    let err = s.update("bad", |d, by| d.edit(by, T0, &[])).unwrap_err();
    assert!(matches!(err, Error::Damaged { .. }));
    // Merging from a store with a damaged record brings the rest and reports the damaged one.
    let mut other = store(&dir, 2);
    let r = other.merge_from(s.path()).unwrap();
    assert_eq!(r.added, 1);
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(r.skipped[0].0, "bad");
}

#[test]
fn unknown_schema_versions_are_refused_without_touching_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s1.sqlite");
    let mut s = store(&dir, 1);
    add_visit(&mut s, "v-1", |_| {});
    drop(s);
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = Store::open(&path, Durability::Full).err().unwrap();
    assert!(matches!(err, Error::NewerSchema { found: 99, .. }), "{err}");
    assert!(err.to_string().contains("upgrade sanjin"));
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 1)
        .unwrap();
    let s = Store::open(&path, Durability::Full).unwrap();
    assert!(s.load("v-1").is_ok(), "the record survived");
}

#[test]
fn files_that_are_not_stores_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("photo.jpg");
    std::fs::write(&garbage, vec![0xFFu8; 4096]).unwrap();
    assert!(matches!(
        Store::open(&garbage, Durability::Full),
        Err(Error::NotAStore(_))
    ));
    assert_eq!(
        std::fs::read(&garbage).unwrap(),
        vec![0xFFu8; 4096],
        "left as it was"
    );
    let empty_db = dir.path().join("other.sqlite");
    Connection::open(&empty_db)
        .unwrap()
        .execute_batch("CREATE TABLE t(x)")
        .unwrap();
    assert!(matches!(
        Store::open(&empty_db, Durability::Full),
        Err(Error::NotAStore(_))
    ));
    assert!(matches!(
        Store::open(&dir.path().join("nope.sqlite"), Durability::Full),
        Err(Error::Missing(_))
    ));
    let s = store(&dir, 1);
    let path = s.path().to_path_buf();
    drop(s);
    assert!(matches!(
        Store::init(&path, &identity(2), Durability::Full),
        Err(Error::AlreadyInitialized(_))
    ));
    assert_eq!(
        Store::open(&path, Durability::Full).unwrap().identity(),
        &identity(1),
        "the owner is unchanged"
    );
}

#[test]
fn a_document_from_a_newer_sanjin_is_reported_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir, 1);
    add_visit(&mut s, "v-1", |_| {});
    let mut am = automerge::AutoCommit::load(&s.load("v-1").unwrap().save()).unwrap();
    automerge::transaction::Transactable::put(&mut am, automerge::ROOT, "schema", 7_i64).unwrap();
    Connection::open(s.path())
        .unwrap()
        .execute(
            "UPDATE docs SET snapshot = ?1, chunk_count = 0 WHERE id = 'v-1'",
            [am.save()],
        )
        .unwrap();
    let err = s.load("v-1").err().unwrap();
    assert!(err.to_string().contains("upgrade sanjin"), "{err}");
}

/// Changes pulled from a server apply without being queued back, new records included (issue 3).
#[test]
fn remote_changes_apply_without_queueing() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = store(&dir, 1);
    let mut b = store(&dir, 2);
    add_visit(&mut a, "v-1", |_| {});
    let mut doc = a.load("v-1").unwrap();
    let (entry, changed) = b.apply_remote("v-1", &doc.save_after(&[])).unwrap();
    assert!(changed && entry.id == "v-1");
    assert!(
        b.outbox().unwrap().is_empty(),
        "pulled changes are not pushed back"
    );
    let before = doc.heads();
    a.update("v-1", |d, by| {
        d.edit(
            by,
            T0 + 1,
            &[Edit::Set {
                field: "title".into(),
                value: json!("新"),
            }],
        )
    })
    .unwrap();
    let mut doc = a.load("v-1").unwrap();
    let (_, changed) = b.apply_remote("v-1", &doc.save_after(&before)).unwrap();
    assert!(changed);
    let (_, changed) = b.apply_remote("v-1", &doc.save_after(&before)).unwrap();
    assert!(!changed, "applying the same changes twice changes nothing");
    assert_eq!(b.load("v-1").unwrap().heads(), doc.heads());
    assert!(matches!(
        b.apply_remote("v-2", b"garbage"),
        Err(Error::Damaged { .. })
    ));
    assert!(
        matches!(
            b.apply_remote("v-9", &doc.save()),
            Err(Error::Damaged { .. })
        ),
        "id mismatch"
    );
    b.set_meta("cursor", Some("42")).unwrap();
    assert_eq!(b.meta("cursor").unwrap().as_deref(), Some("42"));
    assert!(b.set_meta("member", Some("x")).is_err());
}

/// Issue 3: a sync lands everything in one `Store::batch` (one disk sync): all of it commits
/// together, a failed batch leaves nothing behind, and a write that fails inside a batch rolls
/// back alone while the batch goes on.
#[test]
fn a_batch_commits_all_or_nothing_and_a_failed_write_inside_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = store(&dir, 1);
    let mut b = store(&dir, 2);
    add_visit(&mut a, "v-1", |_| {});
    add_visit(&mut a, "v-2", |_| {});
    let one = a.load("v-1").unwrap().save();
    let two = a.load("v-2").unwrap().save();

    // A batch that fails: nothing of it stays, not even the metadata written first.
    let failed: Result<(), Error> = b.batch(|s| {
        s.apply_remote("v-1", &one)?;
        s.set_meta("sync_cursor", Some("7"))?;
        Err(Error::NotFound("the network went away".into()))
    });
    assert!(failed.is_err());
    assert!(matches!(b.load("v-1"), Err(Error::NotFound(_))));
    assert_eq!(b.meta("sync_cursor").unwrap(), None);

    // Inside a batch, a damaged record is refused alone; the others and the cursor land.
    b.batch(|s| -> Result<(), Error> {
        s.apply_remote("v-1", &one)?;
        assert!(matches!(
            s.apply_remote("v-bad", b"not automerge"),
            Err(Error::Damaged { .. })
        ));
        s.apply_remote("v-2", &two)?;
        s.set_meta("sync_cursor", Some("8"))?;
        Ok(())
    })
    .unwrap();
    assert!(b.load("v-1").is_ok() && b.load("v-2").is_ok());
    assert!(matches!(b.load("v-bad"), Err(Error::NotFound(_))));
    assert_eq!(b.meta("sync_cursor").unwrap().as_deref(), Some("8"));
    assert_eq!(
        b.list(&Filter::default()).unwrap().len(),
        2,
        "index rows for exactly the two records"
    );
    // Acks in a batch drain the outbox together.
    let heads = a.load("v-1").unwrap().heads();
    let heads2 = a.load("v-2").unwrap().heads();
    a.batch(|s| -> Result<(), Error> {
        s.ack("v-1", &heads)?;
        s.ack("v-2", &heads2)
    })
    .unwrap();
    assert!(a.outbox().unwrap().is_empty());
}

#[test]
fn issue11_document_bytes_and_a_checkpoint_without_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir, 1);
    assert_eq!(s.document_bytes().unwrap(), 0);
    add_visit(&mut s, "v-1", |_| {});
    let snapshot: i64 = Connection::open(s.path())
        .unwrap()
        .query_row(
            "SELECT LENGTH(snapshot) FROM docs WHERE id = 'v-1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(s.document_bytes().unwrap(), snapshot as u64);
    s.checkpoint().unwrap();
    let wal = s.path().with_extension("sqlite-wal");
    assert_eq!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0), 0);
}
