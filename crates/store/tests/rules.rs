//! Issue 10 on the device: records arriving by merge are judged by the same rules and checks the
//! server runs (refused and reported, never fatal), and a member's edit that would settle a
//! conflict is refused before it is saved, with a Chinese message that a leader must resolve.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, ObjType, ROOT, ReadDoc, Value as AmValue};
use sanjin_core::domain::{Group, RecordData};
use sanjin_core::protocol::RefusalCode;
use sanjin_core::workflow::EventType;
use sanjin_core::{Edit, Error as CoreError, Reason, RecordDoc, testdata};
use sanjin_store::{Durability, Error, Identity, META_GROUP, META_ROLE, Store};
use serde_json::json;

const T0: i64 = 1_747_616_400_000;
const LEADER: u8 = 10;

fn identity(n: u8) -> Identity {
    Identity {
        member: format!("member-{n:04}"),
        device: format!("device-{n:02}"),
        actor: vec![n; 16],
    }
}

fn store(dir: &tempfile::TempDir, n: u8) -> Store {
    let mut s = Store::init(
        &dir.path().join(format!("s{n}.sqlite")),
        &identity(n),
        Durability::Normal,
    )
    .unwrap();
    // Every device holds the directory: group-01 is led by member-0010.
    let group = Group {
        name: "第一委员活动组".into(),
        chapter: "chapter-city".into(),
        committee: None,
        leader: format!("member-{LEADER:04}"),
        contact_points: vec!["cp-001".into()],
        legal_advisory: false,
    };
    let mut doc = RecordDoc::create(
        "group-01",
        &RecordData::Group(group),
        &testdata::author("admin", 99),
        T0,
    )
    .unwrap();
    s.insert(&mut doc, false).unwrap();
    s
}

fn add_visit(s: &mut Store, id: &str) {
    let mut doc =
        RecordDoc::create(id, &RecordData::Visit(testdata::visit()), &s.author(), T0).unwrap();
    s.insert(&mut doc, true).unwrap();
}

fn set_title(s: &mut Store, id: &str, title: &str) -> Result<(), Error> {
    s.update(id, |d, by| {
        d.edit(
            by,
            T0 + 5,
            &[Edit::Set {
                field: "title".into(),
                value: json!(title),
            }],
        )
    })
    .map(|_| ())
}

/// `v-1` with a title conflict between member-0001 and member-0002, held by a fresh store `n`.
fn conflicted(dir: &tempfile::TempDir, n: u8) -> Store {
    let mut a = store(dir, 1);
    let mut b = store(dir, 2);
    add_visit(&mut a, "v-1");
    b.merge_from(a.path()).unwrap();
    set_title(&mut a, "v-1", "甲的标题").unwrap();
    set_title(&mut b, "v-1", "乙的标题").unwrap();
    let mut s = store(dir, n);
    s.merge_from(a.path()).unwrap();
    let r = s.merge_from(b.path()).unwrap();
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    assert_eq!(s.index_entry("v-1").unwrap().unwrap().conflicts, 1);
    s
}

#[test]
fn issue10_device_refuses_a_members_conflict_clearing_edit() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = conflicted(&dir, 3);
    let before = s.load("v-1").unwrap().heads();
    let e = set_title(&mut s, "v-1", "丙的标题").unwrap_err();
    let Error::Core(CoreError::Invalid(v)) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(v.field, "title");
    assert!(matches!(
        v.reason,
        Reason::Refused {
            code: RefusalCode::ConflictResolution,
            ..
        }
    ));
    let zh = v.zh(sanjin_core::domain::RecordKind::Visit);
    assert!(
        zh.contains("活动主题") && zh.contains("组长") && zh.contains("裁定"),
        "{zh}"
    );
    // Nothing was saved; the conflict is still there.
    assert_eq!(s.load("v-1").unwrap().heads(), before);
    assert_eq!(s.index_entry("v-1").unwrap().unwrap().conflicts, 1);
    // Its explicit `resolve` too, whatever the label.
    assert!(
        s.update("v-1", |d, by| d.resolve(
            by,
            T0 + 6,
            "title",
            json!("甲的标题")
        ))
        .is_err()
    );
    // Edits that settle nothing still work.
    s.update("v-1", |d, by| {
        d.edit(
            by,
            T0 + 7,
            &[Edit::Set {
                field: "summary".into(),
                value: json!("补充摘要"),
            }],
        )
    })
    .unwrap();
}

#[test]
fn issue10_leader_settles_the_conflict_on_the_device() {
    let dir = tempfile::tempdir().unwrap();
    // The group's leader, known from the directory record.
    let mut s = conflicted(&dir, LEADER);
    s.update("v-1", |d, by| {
        d.resolve(by, T0 + 6, "title", json!("甲的标题"))
    })
    .unwrap();
    assert_eq!(s.index_entry("v-1").unwrap().unwrap().conflicts, 0);
    // A member enrolled as staff.
    let dir = tempfile::tempdir().unwrap();
    let mut s = conflicted(&dir, 4);
    s.set_meta(META_ROLE, Some("staff")).unwrap();
    set_title(&mut s, "v-1", "丁的标题").unwrap();
    // A leader enrolled for another group is no reviewer here.
    let dir = tempfile::tempdir().unwrap();
    let mut s = conflicted(&dir, 5);
    s.set_meta(META_ROLE, Some("leader")).unwrap();
    s.set_meta(META_GROUP, Some("group-02")).unwrap();
    assert!(set_title(&mut s, "v-1", "戊的标题").is_err());
}

/// An attacker's store `n` holding `v-1` as changed by `attack` with raw automerge.
fn tampered(dir: &tempfile::TempDir, n: u8, attack: impl FnOnce(&mut AutoCommit)) -> Store {
    let mut s = store(dir, n);
    add_visit(&mut s, "v-1");
    s.update("v-1", |d, by| {
        d.transition(by, T0 + 1, EventType::Submit, None)
    })
    .unwrap();
    add_visit(&mut s, "v-ok");
    let mut am = AutoCommit::load(&s.load("v-1").unwrap().save())
        .unwrap()
        .with_actor(ActorId::from([n; 16].as_slice()));
    attack(&mut am);
    am.commit_with(
        CommitOptions::default()
            .with_message(
                json!({"m": format!("member-{n:04}"), "d": format!("device-{n:02}"), "a": "edit"})
                    .to_string(),
            )
            .with_time(T0 + 9),
    );
    // Written behind the store's back, as a tampered file would hold it.
    let mut doc = RecordDoc::from_automerge(am).unwrap();
    s.apply_remote("v-1", &doc.save()).unwrap();
    s
}

fn events(am: &AutoCommit) -> automerge::ObjId {
    match am.get(ROOT, "ev").unwrap() {
        Some((AmValue::Object(ObjType::List), id)) => id,
        other => panic!("{other:?}"),
    }
}

#[test]
fn issue10_merge_from_refuses_bad_records_and_reports_them() {
    type Attack = fn(&mut AutoCommit);
    let attacks: [(&str, Attack); 4] = [
        ("a rewritten event", |am| {
            let ev = events(am);
            let (_, e) = am.get(&ev, 0).unwrap().unwrap();
            am.put(&e, "t", "approve").unwrap();
            am.put(&e, "by", "member-0010").unwrap();
        }),
        ("a deleted event", |am| {
            let ev = events(am);
            am.delete(&ev, 0).unwrap();
        }),
        ("a review step by a member", |am| {
            let ev = events(am);
            let e = am.insert_object(&ev, 1, ObjType::Map).unwrap();
            am.put(&e, "t", "approve").unwrap();
            am.put(&e, "by", "member-0001").unwrap();
            am.put(&e, "dev", "device-01").unwrap();
            am.put(&e, "at", T0 + 9).unwrap();
            am.put(ROOT, "wf", e.to_string()).unwrap();
        }),
        (
            "a 2,000,000-character title with control characters",
            |am| {
                let (_, f) = am.get(ROOT, "f").unwrap().unwrap();
                am.put(&f, "title", "长\u{1}".repeat(1_000_000)).unwrap();
            },
        ),
    ];
    for (what, attack) in attacks {
        let dir = tempfile::tempdir().unwrap();
        let bad = tampered(&dir, 1, attack);
        // A device that has never seen the record, and one that has its earlier state.
        let mut fresh = store(&dir, 2);
        let r = fresh.merge_from(bad.path()).unwrap();
        assert_eq!(r.skipped.len(), 1, "{what}: {r:?}");
        assert_eq!(r.skipped[0].0, "v-1");
        assert!(r.skipped[0].1.starts_with("拒收："), "{what}: {r:?}");
        assert!(!fresh.exists("v-1").unwrap(), "{what}");
        assert!(fresh.exists("v-ok").unwrap(), "{what}: the rest lands");
        eprintln!("{what}: {}", r.skipped[0].1);
    }
}

#[test]
fn issue10_merge_from_refuses_a_change_claiming_this_device() {
    let dir = tempfile::tempdir().unwrap();
    let mut mine = store(&dir, 2);
    add_visit(&mut mine, "v-1");
    let mut other = store(&dir, 1);
    other.merge_from(mine.path()).unwrap();
    // member-0001's device writes a change whose message names member-0002's device.
    let mut am = AutoCommit::load(&other.load("v-1").unwrap().save())
        .unwrap()
        .with_actor(ActorId::from([1u8; 16].as_slice()));
    let (_, f) = am.get(ROOT, "f").unwrap().unwrap();
    am.put(&f, "title", "冒用乙的设备").unwrap();
    am.commit_with(
        CommitOptions::default()
            .with_message(json!({"m": "member-0002", "d": "device-02", "a": "edit"}).to_string())
            .with_time(T0 + 9),
    );
    let mut doc = RecordDoc::from_automerge(am).unwrap();
    other.apply_remote("v-1", &doc.save()).unwrap();
    let r = mine.merge_from(other.path()).unwrap();
    assert_eq!(r.skipped.len(), 1, "{r:?}");
    assert!(r.skipped[0].1.contains("冒用"), "{r:?}");
    assert_ne!(
        mine.load("v-1").unwrap().data().unwrap(),
        doc.data().unwrap()
    );
}

#[test]
fn issue10_merge_from_accepts_a_leaders_steps_and_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let mut leader = conflicted(&dir, LEADER);
    leader
        .update("v-1", |d, by| {
            d.resolve(by, T0 + 6, "title", json!("乙的标题"))
        })
        .unwrap();
    leader
        .update("v-1", |d, by| {
            d.transition(by, T0 + 7, EventType::Submit, None)
        })
        .unwrap();
    leader
        .update("v-1", |d, by| {
            d.transition(by, T0 + 8, EventType::Approve, None)
        })
        .unwrap();
    let mut a = Store::open(&dir.path().join("s1.sqlite"), Durability::Normal).unwrap();
    let r = a.merge_from(leader.path()).unwrap();
    assert!(r.skipped.is_empty(), "{r:?}");
    assert_eq!(r.updated, 1);
    let e = a.index_entry("v-1").unwrap().unwrap();
    assert_eq!((e.conflicts, e.status.as_str()), (0, "approved"));
}
