//! Merge semantics of record documents (issue 2): text by characters, sets as sets, scalars as
//! visible conflicts, workflow from the event list, tombstones, and the trace.

use automerge::{AutoCommit, ROOT, transaction::Transactable};
use sanjin_core::domain::{ActivityType, RecordData};
use sanjin_core::testdata::{self, author};
use sanjin_core::workflow::{EventType, State};
use sanjin_core::{Edit, Error, Reason, RecordDoc};
use serde_json::{Value, json};

const T0: i64 = 1_747_616_400_000;

fn new_visit() -> RecordDoc {
    RecordDoc::create(
        "v-1",
        &RecordData::Visit(testdata::visit()),
        &author("member-0001", 1),
        T0,
    )
    .unwrap()
}

/// A second replica of the same document, as another device would hold it after a sync.
fn replica(doc: &mut RecordDoc) -> RecordDoc {
    RecordDoc::load(&doc.save()).unwrap()
}

fn set(field: &str, value: Value) -> Edit {
    Edit::Set {
        field: field.into(),
        value,
    }
}

fn visit_of(doc: &RecordDoc) -> sanjin_core::domain::Visit {
    match doc.data().unwrap() {
        RecordData::Visit(v) => v,
        other => panic!("not a visit: {other:?}"),
    }
}

fn sync(a: &mut RecordDoc, b: &mut RecordDoc) {
    a.merge(b).unwrap();
    b.merge(a).unwrap();
}

#[test]
fn text_merges_by_characters() {
    let mut a = new_visit();
    let mut b = replica(&mut a);
    let base = visit_of(&a).summary;
    a.edit(
        &author("member-0001", 1),
        T0 + 1,
        &[set("summary", json!(format!("【上午】{base}")))],
    )
    .unwrap();
    b.edit(
        &author("member-0002", 2),
        T0 + 2,
        &[set("summary", json!(format!("{base}会后形成三条建议。")))],
    )
    .unwrap();
    sync(&mut a, &mut b);
    let merged = visit_of(&a).summary;
    assert_eq!(merged, format!("【上午】{base}会后形成三条建议。"));
    assert_eq!(visit_of(&b).summary, merged);
    assert!(
        a.conflicts().unwrap().is_empty(),
        "text edits are not conflicts"
    );
}

#[test]
fn sets_merge_and_add_wins_over_concurrent_remove() {
    let mut a = new_visit();
    let mut b = replica(&mut a);
    let add = |m: &str| Edit::Add {
        field: "participants".into(),
        element: json!(m),
    };
    a.edit(&author("member-0001", 1), T0 + 1, &[add("member-0003")])
        .unwrap();
    b.edit(&author("member-0002", 2), T0 + 2, &[add("member-0004")])
        .unwrap();
    // b removes member-0002 while a re-adds it: the add wins.
    b.edit(
        &author("member-0002", 2),
        T0 + 3,
        &[Edit::Remove {
            field: "participants".into(),
            key: "member-0002".into(),
        }],
    )
    .unwrap();
    a.edit(&author("member-0001", 1), T0 + 4, &[add("member-0002")])
        .unwrap();
    sync(&mut a, &mut b);
    let p = visit_of(&a).participants;
    assert_eq!(
        p,
        vec!["member-0001", "member-0002", "member-0003", "member-0004"]
    );
    assert_eq!(visit_of(&b).participants, p);
}

#[test]
fn concurrent_scalar_edits_stay_visible_until_resolved() {
    let mut a = new_visit();
    let mut b = replica(&mut a);
    a.edit(
        &author("member-0001", 1),
        T0 + 10,
        &[set("end", json!("2026-05-19T12:00:00"))],
    )
    .unwrap();
    b.edit(
        &author("member-0002", 2),
        T0 + 20,
        &[set("end", json!("2026-05-19T12:30:00"))],
    )
    .unwrap();
    sync(&mut a, &mut b);

    let conflicts = a.conflicts().unwrap();
    assert_eq!(conflicts.len(), 1);
    let c = &conflicts[0];
    assert_eq!(c.field, "end");
    let mut seen: Vec<(String, String, i64, Value)> = c
        .values
        .iter()
        .map(|v| (v.member.clone(), v.device.clone(), v.at_ms, v.value.clone()))
        .collect();
    seen.sort_by_key(|s| s.2);
    assert_eq!(
        seen,
        vec![
            (
                "member-0001".into(),
                "device-01".into(),
                T0 + 10,
                json!("2026-05-19T12:00:00")
            ),
            (
                "member-0002".into(),
                "device-02".into(),
                T0 + 20,
                json!("2026-05-19T12:30:00")
            ),
        ]
    );
    // Both replicas show the same value meanwhile.
    assert_eq!(visit_of(&a).end, visit_of(&b).end);
    assert_eq!(b.conflicts().unwrap(), conflicts);

    // A leader resolves on a third replica; the resolution reaches both phones.
    let mut leader = replica(&mut a);
    leader
        .resolve(
            &author("member-0010", 3),
            T0 + 30,
            "end",
            json!("2026-05-19T12:30:00"),
        )
        .unwrap();
    assert!(leader.conflicts().unwrap().is_empty());
    a.merge(&mut leader).unwrap();
    b.merge(&mut leader).unwrap();
    for doc in [&mut a, &mut b] {
        assert!(doc.conflicts().unwrap().is_empty());
        assert_eq!(visit_of(doc).end.to_string(), "2026-05-19 12:30:00");
    }
    let history = a.history();
    let resolve = history.iter().find(|h| h.action == "resolve").unwrap();
    assert_eq!(
        (
            resolve.member.as_str(),
            resolve.device.as_str(),
            resolve.at_ms
        ),
        ("member-0010", "device-03", T0 + 30)
    );
    assert_eq!(resolve.fields, vec!["end"]);
}

#[test]
fn resolving_a_field_without_conflict_is_refused() {
    let mut a = new_visit();
    let err = a
        .resolve(
            &author("member-0010", 3),
            T0,
            "end",
            json!("2026-05-19T12:30:00"),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::Invalid(ref v) if v.reason == Reason::NoConflict),
        "{err}"
    );
}

#[test]
fn concurrent_workflow_steps_are_all_kept_and_contested() {
    let mut a = new_visit();
    a.transition(&author("member-0001", 1), T0 + 1, EventType::Submit, None)
        .unwrap();
    let mut b = replica(&mut a);
    a.transition(&author("member-0010", 3), T0 + 2, EventType::Approve, None)
        .unwrap();
    b.transition(
        &author("member-0011", 4),
        T0 + 3,
        EventType::Return,
        Some("请补充照片"),
    )
    .unwrap();
    sync(&mut a, &mut b);
    let va = a.view().unwrap();
    let vb = b.view().unwrap();
    assert_eq!(va.status, vb.status, "every replica derives the same state");
    assert_eq!(va.events.len(), 3, "no transition is lost");
    let status = va
        .conflicts
        .iter()
        .find(|c| c.field == "status")
        .expect("contested state is a conflict");
    let mut candidates: Vec<&str> = status
        .values
        .iter()
        .map(|v| v.value.as_str().unwrap())
        .collect();
    candidates.sort();
    assert_eq!(candidates, vec!["approved", "returned"]);

    a.resolve(
        &author("member-0010", 3),
        T0 + 4,
        "status",
        json!("returned"),
    )
    .unwrap();
    b.merge(&mut a).unwrap();
    let vb = b.view().unwrap();
    assert_eq!(vb.status, State::Returned);
    assert!(vb.conflicts.is_empty());
}

#[test]
fn invalid_workflow_steps_name_the_reason() {
    let mut a = new_visit();
    let err = a
        .transition(&author("member-0010", 3), T0, EventType::Approve, None)
        .unwrap_err();
    assert!(
        matches!(err, Error::Invalid(ref v) if matches!(v.reason, Reason::InvalidTransition { .. })),
        "{err}"
    );
    let err = a
        .transition(&author("member-0010", 3), T0, EventType::Forward, None)
        .unwrap_err();
    assert!(
        matches!(err, Error::Invalid(ref v) if matches!(v.reason, Reason::NotATransition { .. })),
        "{err}"
    );
}

#[test]
fn submit_with_empty_summary_is_refused() {
    let mut v = testdata::visit();
    v.summary = "  ".into();
    let mut a =
        RecordDoc::create("v-2", &RecordData::Visit(v), &author("member-0001", 1), T0).unwrap();
    let err = a
        .transition(&author("member-0001", 1), T0 + 1, EventType::Submit, None)
        .unwrap_err();
    match err {
        Error::Invalid(v) => {
            assert_eq!(v.field, "summary");
            assert_eq!(v.reason, Reason::EmptyOnSubmit { what: "summary" });
            assert!(
                v.zh(sanjin_core::domain::RecordKind::Visit)
                    .contains("活动摘要")
            );
        }
        other => panic!("{other}"),
    }
}

#[test]
fn deletion_is_a_tombstone() {
    let mut a = new_visit();
    a.delete(&author("member-0001", 1), T0 + 1, Some("重复录入"))
        .unwrap();
    let mut b = replica(&mut a);
    let v = b.view().unwrap();
    assert!(v.deleted);
    assert_eq!(
        v.data,
        RecordData::Visit(testdata::visit()),
        "the data stays"
    );
    let err = b
        .edit(
            &author("member-0001", 1),
            T0 + 2,
            &[set("title", json!("新标题"))],
        )
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(ref e) if e.reason == Reason::Deleted));
    b.restore(&author("member-0010", 3), T0 + 3).unwrap();
    assert!(!b.view().unwrap().deleted);
}

#[test]
fn every_change_is_attributed() {
    let mut a = new_visit();
    a.edit(
        &author("member-0002", 2),
        T0 + 5,
        &[set("title", json!("座谈会"))],
    )
    .unwrap();
    a.transition(&author("member-0001", 1), T0 + 6, EventType::Submit, None)
        .unwrap();
    let h: Vec<(String, String, String, i64)> = a
        .history()
        .into_iter()
        .map(|h| (h.action, h.member, h.device, h.at_ms))
        .collect();
    assert_eq!(
        h,
        vec![
            (
                "create".into(),
                "member-0001".into(),
                "device-01".into(),
                T0
            ),
            (
                "edit".into(),
                "member-0002".into(),
                "device-02".into(),
                T0 + 5
            ),
            (
                "submit".into(),
                "member-0001".into(),
                "device-01".into(),
                T0 + 6
            ),
        ]
    );
}

/// Validation names the field and the reason: (record edits, expected field, expected reason).
#[test]
fn validation_names_field_and_reason() {
    type Case = (Vec<Edit>, &'static str, fn(&Reason) -> bool);
    let cases: Vec<Case> = vec![
        (vec![set("end", json!("2026-05-19T08:00:00"))], "end", |r| {
            *r == Reason::EndBeforeStart
        }),
        (
            vec![set("activity_type", json!("dancing"))],
            "activity_type",
            |r| matches!(r, Reason::UnknownValue { value, .. } if value == "dancing"),
        ),
        (
            vec![set("gps", json!({"lat": 120.0, "lon": 10.0}))],
            "gps",
            |r| matches!(r, Reason::OutOfRange { .. }),
        ),
        (vec![set("title", json!(""))], "title", |r| {
            *r == Reason::Empty
        }),
        (vec![set("colour", json!("red"))], "colour", |r| {
            matches!(r, Reason::UnknownField { .. })
        }),
        (
            vec![set("participants", json!(["x"]))],
            "participants",
            |r| matches!(r, Reason::WrongEdit { .. }),
        ),
        (
            vec![Edit::Add {
                field: "participants".into(),
                element: json!("bad id!"),
            }],
            "participants",
            |r| matches!(r, Reason::BadFormat { .. }),
        ),
        (vec![set("title", json!("a\u{7}b"))], "title", |r| {
            *r == Reason::ControlCharacter
        }),
    ];
    for (edits, field, reason) in cases {
        let mut a = new_visit();
        let before = a.data().unwrap();
        match a.edit(&author("member-0001", 1), T0 + 1, &edits) {
            Err(Error::Invalid(v)) => {
                assert_eq!(v.field, field, "{edits:?}");
                assert!(reason(&v.reason), "{edits:?}: {:?}", v.reason);
            }
            other => panic!("{edits:?}: expected a validation error, got {other:?}"),
        }
        assert_eq!(a.data().unwrap(), before, "a refused edit changes nothing");
        assert_eq!(a.history().len(), 1);
    }
    let mut plan = match testdata::one_of_each().remove(3) {
        RecordData::Plan(p) => p,
        _ => unreachable!(),
    };
    plan.month = 9;
    let err = RecordDoc::create(
        "p-1",
        &RecordData::Plan(plan),
        &author("member-0001", 1),
        T0,
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::Invalid(ref v) if v.field == "month" && matches!(v.reason, Reason::MonthNotInQuarter { .. }))
    );
    assert!(ActivityType::parse("调研座谈").is_some());
}

#[test]
fn every_kind_round_trips_through_a_document() {
    for (i, data) in testdata::one_of_each().into_iter().enumerate() {
        let mut doc =
            RecordDoc::create(&format!("r-{i}"), &data, &author("member-0001", 1), T0).unwrap();
        let loaded = RecordDoc::load(&doc.save()).unwrap();
        assert_eq!(loaded.data().unwrap(), data);
    }
}

#[test]
fn bad_bytes_and_unknown_schema_are_clear_errors() {
    assert!(matches!(
        RecordDoc::load(b"not a document"),
        Err(Error::Corrupt { .. })
    ));
    let mut a = new_visit();
    let mut bytes = a.save();
    let n = bytes.len();
    bytes.truncate(n / 2);
    assert!(matches!(
        RecordDoc::load(&bytes),
        Err(Error::Corrupt { .. })
    ));

    let mut doc = AutoCommit::load(&a.save()).unwrap();
    doc.put(ROOT, "schema", 99_i64).unwrap();
    let err = RecordDoc::load(&doc.save()).unwrap_err();
    assert!(
        matches!(err, Error::UnknownSchema { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade sanjin"));

    let mut empty = AutoCommit::new();
    empty.put(ROOT, "hello", "world").unwrap();
    assert!(matches!(
        RecordDoc::load(&empty.save()),
        Err(Error::Corrupt { .. })
    ));
}

/// The fallback path of the sync protocol (issue 3): automerge's sync messages between two
/// replicas until both are quiet; they end with the same heads.
#[test]
fn sync_messages_converge_two_replicas() {
    use automerge::sync::State;
    let mut a = new_visit();
    let mut b = replica(&mut a);
    a.edit(
        &author("member-0001", 1),
        T0 + 1,
        &[set("title", json!("甲"))],
    )
    .unwrap();
    b.edit(
        &author("member-0002", 2),
        T0 + 2,
        &[set("summary", json!("乙"))],
    )
    .unwrap();
    let (mut sa, mut sb) = (State::new(), State::new());
    let mut rounds = 0;
    loop {
        let ma = a.generate_sync_message(&mut sa);
        let mb = b.generate_sync_message(&mut sb);
        if ma.is_none() && mb.is_none() {
            break;
        }
        if let Some(m) = ma {
            b.receive_sync_message(&mut sb, m).unwrap();
        }
        if let Some(m) = mb {
            a.receive_sync_message(&mut sa, m).unwrap();
        }
        rounds += 1;
        assert!(rounds < 10, "sync terminates");
    }
    let (mut ha, mut hb) = (a.heads(), b.heads());
    ha.sort();
    hb.sort();
    assert_eq!(ha, hb);
    assert_eq!(a.changes().len(), 3);
}

fn photo(hash: &str, caption: &str) -> sanjin_core::domain::PhotoRef {
    let mut p = sanjin_core::domain::PhotoRef::new(hash);
    p.caption = caption.into();
    p.bytes = 1234;
    p.width = 4000;
    p.height = 3000;
    p.taken_at = Some("2026-05-19T09:30:00".parse().unwrap());
    p.gps = Some(sanjin_core::domain::Gps {
        lat: 31.2,
        lon: 121.5,
    });
    p.mime = "image/jpeg".into();
    p
}

/// Issue 4: photos attached on two devices at once merge as a keyed set, thumbnails included;
/// the same photo attached twice is one element; the thumbnail travels in the document.
#[test]
fn concurrent_photo_attaches_merge_by_hash_issue_4() {
    let thumb_a = testdata::thumbnail(1);
    let thumb_b = testdata::thumbnail(2);
    let (ha, hb) = ("aa".repeat(32), "bb".repeat(32));
    let mut a = new_visit();
    let mut b = replica(&mut a);
    a.attach_photo(
        &author("member-0001", 1),
        T0 + 1,
        &photo(&ha, "村口"),
        &thumb_a,
    )
    .unwrap();
    b.attach_photo(
        &author("member-0002", 2),
        T0 + 2,
        &photo(&hb, "座谈"),
        &thumb_b,
    )
    .unwrap();
    // The same photo again on b: still one element.
    b.attach_photo(
        &author("member-0002", 2),
        T0 + 3,
        &photo(&hb, "座谈"),
        &thumb_b,
    )
    .unwrap();
    sync(&mut a, &mut b);
    for doc in [&mut a, &mut b] {
        let photos = doc.photos().unwrap();
        let mut hashes: Vec<&str> = photos.iter().map(|p| p.hash.as_str()).collect();
        hashes.sort();
        assert_eq!(hashes, vec![ha.as_str(), hb.as_str()]);
        assert_eq!(photos[0].bytes, 1234);
        assert!(
            photos
                .iter()
                .all(|p| p.taken_at.is_some() && p.gps.is_some())
        );
        assert_eq!(doc.thumbnail(&ha).unwrap(), thumb_a);
        assert_eq!(doc.thumbnail(&hb).unwrap(), thumb_b);
        assert!(
            doc.conflicts().unwrap().is_empty(),
            "a keyed set has no conflicts"
        );
        // Still a valid record, reloadable from its bytes.
        let mut again = RecordDoc::load(&doc.save()).unwrap();
        assert_eq!(again.photos().unwrap().len(), 2);
        assert_eq!(again.view().unwrap().conflicts.len(), 0);
    }
    assert_eq!(visit_of(&a).photos.len(), 2);
}

#[test]
fn a_thumbnail_that_is_not_a_small_jpeg_is_refused_issue_4() {
    let mut a = new_visit();
    let by = author("member-0001", 1);
    let err = a
        .attach_photo(&by, T0 + 1, &photo(&"cc".repeat(32), ""), b"GIF89a")
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    let big = [&[0xFF, 0xD8, 0xFF][..], &vec![0u8; 70_000]].concat();
    assert!(
        a.attach_photo(&by, T0 + 1, &photo(&"cc".repeat(32), ""), &big)
            .is_err()
    );
    assert!(a.photos().unwrap().is_empty(), "nothing written");
}
