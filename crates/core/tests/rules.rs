//! Issue 10, point 2: rules judged from the operations of new changes, not from their labels.
//! Hostile changes are built with automerge directly, where `RecordDoc` refuses to make them:
//! that is what an attacker with an enrolled phone does.

use std::collections::HashSet;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, Change, ObjType, ROOT, ReadDoc, Value as AmValue};
use sanjin_core::domain::RecordData;
use sanjin_core::protocol::RefusalCode;
use sanjin_core::rules::{self, Signer, Violation};
use sanjin_core::testdata::{self, author};
use sanjin_core::workflow::EventType;
use sanjin_core::{ChangeHash, Edit, RecordDoc};
use serde_json::{Value, json};

const T0: i64 = 1_747_616_400_000;
/// Actor byte of the group's leader (member-0010 on device-10); 11 is staff.
const LEADER: u8 = 10;
const STAFF: u8 = 11;

/// Who owns which actor: `[n; 16]` is `device-nn` of `member-00nn`; the leader reviews.
fn signer(c: &Change) -> Option<Signer> {
    let bytes = c.actor_id().to_bytes();
    let n = bytes[0];
    if bytes.iter().any(|b| *b != n) || !(1..=STAFF).contains(&n) {
        return None;
    }
    Some(Signer {
        member: format!("member-{n:04}"),
        device: format!("device-{n:02}"),
        reviewer: n >= LEADER,
    })
}

fn member(n: u8) -> sanjin_core::Author {
    author(&format!("member-{n:04}"), n)
}

fn new_visit() -> RecordDoc {
    RecordDoc::create("v-1", &RecordData::Visit(testdata::visit()), &member(1), T0).unwrap()
}

fn replica(doc: &mut RecordDoc) -> RecordDoc {
    RecordDoc::load(&doc.save()).unwrap()
}

fn set(field: &str, value: Value) -> Edit {
    Edit::Set {
        field: field.into(),
        value,
    }
}

/// What `after` gained since `before`, judged.
fn judge(before: &[ChangeHash], after: &mut RecordDoc) -> Vec<Violation> {
    let new = after.automerge().get_changes(before);
    rules::check_changes(after.automerge(), before, &new, &signer)
}

fn codes(v: &[Violation]) -> Vec<RefusalCode> {
    v.iter().map(|v| v.code).collect()
}

/// An attacker's raw automerge copy of `doc`, acting as `actor`.
fn raw(doc: &mut RecordDoc, actor: u8) -> AutoCommit {
    AutoCommit::load(&doc.save())
        .unwrap()
        .with_actor(ActorId::from([actor; 16].as_slice()))
}

fn commit(am: &mut AutoCommit, m: &str, d: &str, action: &str) {
    am.commit_with(
        CommitOptions::default()
            .with_message(json!({"m": m, "d": d, "a": action}).to_string())
            .with_time(T0 + 99),
    )
    .expect("the attack changes something");
}

fn back(am: AutoCommit) -> RecordDoc {
    RecordDoc::from_automerge(am).unwrap()
}

fn events_obj(am: &AutoCommit) -> automerge::ObjId {
    match am.get(ROOT, "ev").unwrap() {
        Some((AmValue::Object(ObjType::List), id)) => id,
        other => panic!("no event list: {other:?}"),
    }
}

fn fields_obj(am: &AutoCommit) -> automerge::ObjId {
    match am.get(ROOT, "f").unwrap() {
        Some((AmValue::Object(ObjType::Map), id)) => id,
        other => panic!("no fields: {other:?}"),
    }
}

/// A visit submitted by member-0001 and approved by the leader, as every device holds it.
fn approved_visit() -> RecordDoc {
    let mut doc = new_visit();
    doc.transition(&member(1), T0 + 1, EventType::Submit, None)
        .unwrap();
    doc.transition(&member(LEADER), T0 + 2, EventType::Approve, None)
        .unwrap();
    doc
}

#[test]
fn issue10_ordinary_changes_break_no_rule() {
    let mut doc = new_visit();
    assert_eq!(judge(&[], &mut doc), vec![], "creation by its author");
    let before = doc.heads();
    doc.edit(&member(1), T0 + 1, &[set("title", json!("新标题"))])
        .unwrap();
    doc.transition(&member(1), T0 + 2, EventType::Submit, None)
        .unwrap();
    doc.transition(
        &member(LEADER),
        T0 + 3,
        EventType::Return,
        Some("请补充照片"),
    )
    .unwrap();
    doc.delete(&member(2), T0 + 4, None).unwrap();
    doc.restore(&member(2), T0 + 5).unwrap();
    assert_eq!(judge(&before, &mut doc), vec![]);
    // The whole history judged at once (a record new to the server): still nothing.
    assert_eq!(judge(&[], &mut doc), vec![]);
}

#[test]
fn issue10_record_created_by_another_member_is_impersonation() {
    // member-0001's phone (actor 1) creates a visit claiming member-0002 made it, with an honest
    // message: the operations say `by` is someone else.
    let mut am = AutoCommit::new().with_actor(ActorId::from([1u8; 16].as_slice()));
    let mut honest = new_visit();
    let template = honest.automerge().clone();
    for key in ["schema", "kind", "id", "at"] {
        let (v, _) = template.get(ROOT, key).unwrap().unwrap();
        am.put(ROOT, key, v.into_scalar().unwrap()).unwrap();
    }
    am.put(ROOT, "by", "member-0002").unwrap();
    am.put(ROOT, "dev", "device-01").unwrap();
    let f = am.put_object(ROOT, "f", ObjType::Map).unwrap();
    am.put(&f, "title", "冒名记录").unwrap();
    am.put_object(ROOT, "ev", ObjType::List).unwrap();
    commit(&mut am, "member-0001", "device-01", "create");
    let mut doc = back(am);
    let v = judge(&[], &mut doc);
    assert!(
        v.iter()
            .any(|v| v.code == RefusalCode::Impersonation && v.reason.contains("`by`")),
        "{v:?}"
    );

    // The same through RecordDoc with another member's name (message and `by` both lie).
    let mut doc = RecordDoc::create(
        "v-2",
        &RecordData::Visit(testdata::visit()),
        &sanjin_core::Author::new("member-0002", "device-02", &[1; 16]).unwrap(),
        T0,
    )
    .unwrap();
    let v = judge(&[], &mut doc);
    assert!(
        v.iter().all(|v| v.code == RefusalCode::Impersonation)
            && v.iter().any(|v| v.reason.contains("message"))
            && v.iter().any(|v| v.reason.contains("`by`")),
        "{v:?}"
    );
}

#[test]
fn issue10_rewritten_event_is_history_rewrite() {
    let mut doc = new_visit();
    doc.transition(&member(1), T0 + 1, EventType::Submit, None)
        .unwrap();
    let before = doc.heads();
    // member-0001 turns their own submit into an approval by the leader.
    let mut am = raw(&mut doc, 1);
    let ev = events_obj(&am);
    let (_, first) = am.get(&ev, 0).unwrap().unwrap();
    am.put(&first, "t", "approve").unwrap();
    am.put(&first, "by", "member-0010").unwrap();
    am.put(ROOT, "wf", first.to_string()).unwrap();
    commit(&mut am, "member-0001", "device-01", "edit");
    let mut doc = back(am);
    let v = judge(&before, &mut doc);
    assert!(codes(&v).contains(&RefusalCode::HistoryRewrite), "{v:?}");
    assert!(v[0].zh().contains("改写了已有的流转记录"), "{}", v[0].zh());
}

#[test]
fn issue10_workflow_state_pointed_at_an_old_event_is_history_rewrite() {
    let mut doc2 = new_visit();
    doc2.transition(&member(1), T0 + 1, EventType::Submit, None)
        .unwrap();
    doc2.transition(&member(LEADER), T0 + 2, EventType::Return, Some("补充"))
        .unwrap();
    let before = doc2.heads();
    // member-0001 points `wf` back at its own submit event: no new step, state rewritten.
    let mut am = raw(&mut doc2, 1);
    let ev = events_obj(&am);
    let (_, first) = am.get(&ev, 0).unwrap().unwrap();
    am.put(ROOT, "wf", first.to_string()).unwrap();
    commit(&mut am, "member-0001", "device-01", "edit");
    let mut doc2 = back(am);
    let v = judge(&before, &mut doc2);
    assert_eq!(codes(&v), vec![RefusalCode::HistoryRewrite], "{v:?}");
}

#[test]
fn issue10_deleted_event_is_history_rewrite() {
    let mut doc = approved_visit();
    let before = doc.heads();
    let mut am = raw(&mut doc, 1);
    let ev = events_obj(&am);
    am.delete(&ev, 1).unwrap(); // the leader's approval
    commit(&mut am, "member-0001", "device-01", "edit");
    let mut doc = back(am);
    assert_eq!(doc.view().unwrap().events.len(), 1, "the approval is gone");
    let v = judge(&before, &mut doc);
    assert_eq!(codes(&v), vec![RefusalCode::HistoryRewrite], "{v:?}");
    assert_eq!(v[0].field.as_deref(), Some("status"));
    // The whole history judged at once (a server or device that never saw the record): the
    // ops that made the deleted event are located without automerge's `parents` (which panics
    // on an object inside a deleted list element), and the deletion is still found.
    let v = judge(&[], &mut doc);
    assert_eq!(codes(&v), vec![RefusalCode::HistoryRewrite], "{v:?}");
}

/// Two members wrote different titles concurrently: the record shows a conflict.
fn conflicted_title() -> RecordDoc {
    let mut a = new_visit();
    let mut b = replica(&mut a);
    a.edit(&member(1), T0 + 1, &[set("title", json!("甲的标题"))])
        .unwrap();
    b.edit(&member(2), T0 + 2, &[set("title", json!("乙的标题"))])
        .unwrap();
    a.merge(&mut b).unwrap();
    assert_eq!(a.conflicts().unwrap().len(), 1);
    a
}

#[test]
fn issue10_members_conflict_clearing_put_is_refused_and_a_leaders_is_allowed() {
    // A plain edit: "edit" in the message, but it overwrites both values.
    let mut doc = conflicted_title();
    let before = doc.heads();
    doc.edit(&member(1), T0 + 3, &[set("title", json!("甲的标题"))])
        .unwrap();
    assert!(doc.conflicts().unwrap().is_empty(), "the edit cleared it");
    let v = judge(&before, &mut doc);
    assert_eq!(codes(&v), vec![RefusalCode::ConflictResolution], "{v:?}");
    assert_eq!(v[0].field.as_deref(), Some("title"));
    let zh = v[0].zh();
    assert!(zh.contains("活动主题") && zh.contains("组长"), "{zh}");

    // The same by the leader: allowed, whatever the message says.
    let mut doc = conflicted_title();
    let before = doc.heads();
    doc.edit(&member(LEADER), T0 + 3, &[set("title", json!("甲的标题"))])
        .unwrap();
    assert_eq!(judge(&before, &mut doc), vec![]);
    let mut doc = conflicted_title();
    let before = doc.heads();
    doc.resolve(&member(LEADER), T0 + 3, "title", json!("乙的标题"))
        .unwrap();
    assert_eq!(judge(&before, &mut doc), vec![]);

    // A member's `resolve` is refused for what it does, not for its label.
    let mut doc = conflicted_title();
    let before = doc.heads();
    doc.resolve(&member(2), T0 + 3, "title", json!("乙的标题"))
        .unwrap();
    assert_eq!(
        codes(&judge(&before, &mut doc)),
        vec![RefusalCode::ConflictResolution]
    );
}

#[test]
fn issue10_edits_without_a_conflict_to_clear_are_allowed() {
    // A plain edit of a field with one value.
    let mut doc = new_visit();
    let before = doc.heads();
    doc.edit(&member(2), T0 + 1, &[set("title", json!("新标题"))])
        .unwrap();
    assert_eq!(judge(&before, &mut doc), vec![]);

    // Concurrent writes of the same value are no conflict; overwriting them is no resolution.
    let mut a = new_visit();
    let mut b = replica(&mut a);
    a.edit(&member(1), T0 + 1, &[set("title", json!("同一个标题"))])
        .unwrap();
    b.edit(&member(2), T0 + 2, &[set("title", json!("同一个标题"))])
        .unwrap();
    a.merge(&mut b).unwrap();
    let before = a.heads();
    a.edit(&member(1), T0 + 3, &[set("title", json!("再改一次"))])
        .unwrap();
    assert_eq!(judge(&before, &mut a), vec![]);

    // Concurrent adds to a set are not a conflict; adding again is no resolution.
    let mut a = new_visit();
    let mut b = replica(&mut a);
    let add = |m: &str| Edit::Add {
        field: "participants".into(),
        element: json!(m),
    };
    a.edit(&member(1), T0 + 1, &[add("member-0003")]).unwrap();
    b.edit(&member(2), T0 + 2, &[add("member-0003")]).unwrap();
    a.merge(&mut b).unwrap();
    let before = a.heads();
    a.edit(
        &member(1),
        T0 + 3,
        &[add("member-0003"), add("member-0004")],
    )
    .unwrap();
    a.edit(
        &member(1),
        T0 + 4,
        &[Edit::Remove {
            field: "participants".into(),
            key: "member-0002".into(),
        }],
    )
    .unwrap();
    assert_eq!(judge(&before, &mut a), vec![]);
}

#[test]
fn issue10_members_status_resolution_is_refused() {
    // A member returns and the leader approves concurrently: the state is contested.
    let mut a = new_visit();
    a.transition(&member(1), T0 + 1, EventType::Submit, None)
        .unwrap();
    let mut b = replica(&mut a);
    a.transition(&member(LEADER), T0 + 2, EventType::Approve, None)
        .unwrap();
    b.transition(&member(STAFF), T0 + 3, EventType::Return, Some("补充"))
        .unwrap();
    a.merge(&mut b).unwrap();
    assert!(a.conflicts().unwrap().iter().any(|c| c.field == "status"));
    let mut by_member = replica(&mut a);
    let before = a.heads();
    by_member
        .resolve(&member(1), T0 + 4, "status", json!("approved"))
        .unwrap();
    let v = judge(&before, &mut by_member);
    let c = codes(&v);
    assert!(
        c.contains(&RefusalCode::ConflictResolution) && c.contains(&RefusalCode::Role),
        "{v:?}"
    );
    assert_eq!(
        rules::most_telling(&v).unwrap().code,
        RefusalCode::ConflictResolution
    );
    a.resolve(&member(LEADER), T0 + 4, "status", json!("approved"))
        .unwrap();
    assert_eq!(judge(&before, &mut a), vec![]);
}

#[test]
fn issue10_root_key_changed_is_history_rewrite() {
    for (key, value) in [
        ("by", json!("member-0002")),
        ("at", json!(0)),
        ("kind", json!("opinion")),
    ] {
        let mut doc = new_visit();
        let before = doc.heads();
        let mut am = raw(&mut doc, 1);
        match value {
            Value::String(s) => am.put(ROOT, key, s).unwrap(),
            Value::Number(n) => am.put(ROOT, key, n.as_i64().unwrap()).unwrap(),
            _ => unreachable!(),
        }
        commit(&mut am, "member-0001", "device-01", "edit");
        let mut doc = RecordDoc::from_automerge(am).unwrap();
        let v = judge(&before, &mut doc);
        assert_eq!(codes(&v), vec![RefusalCode::HistoryRewrite], "{key}: {v:?}");
    }
    // Deleting one, or replacing the field map, too.
    let mut doc = new_visit();
    let before = doc.heads();
    let mut am = raw(&mut doc, 1);
    am.delete(ROOT, "dev").unwrap();
    am.put_object(ROOT, "f", ObjType::Map).unwrap();
    commit(&mut am, "member-0001", "device-01", "edit");
    let mut doc = back(am);
    assert_eq!(
        codes(&judge(&before, &mut doc)),
        vec![RefusalCode::HistoryRewrite, RefusalCode::HistoryRewrite],
        "one for `dev`, one for `f`"
    );
}

#[test]
fn issue10_concurrent_second_creation_is_history_rewrite() {
    // A change that does not depend on the creation but sets `by` again (empty pred): the
    // record would show two authors.
    let mut doc = new_visit();
    let before = doc.heads();
    let mut am = AutoCommit::new().with_actor(ActorId::from([2u8; 16].as_slice()));
    am.put(ROOT, "by", "member-0002").unwrap();
    commit(&mut am, "member-0002", "device-02", "create");
    let theirs = am.save();
    let mut am = raw(&mut doc, 1);
    am.load_incremental(&theirs).unwrap();
    let mut doc = back(am);
    let v = judge(&before, &mut doc);
    assert_eq!(codes(&v), vec![RefusalCode::HistoryRewrite], "{v:?}");
}

#[test]
fn issue10_message_naming_another_device_is_impersonation() {
    let mut doc = new_visit();
    let before = doc.heads();
    let mut am = raw(&mut doc, 1);
    let f = fields_obj(&am);
    am.put(&f, "title", "改标题").unwrap();
    commit(&mut am, "member-0001", "device-99", "edit");
    let mut doc = back(am);
    let v = judge(&before, &mut doc);
    assert_eq!(codes(&v), vec![RefusalCode::Impersonation], "{v:?}");

    // A leader's actor with the leader's name: the signer lookup says whose actor it is, so a
    // change made with another's actor is only caught by the signature (the lead's point 1);
    // an actor nobody owns is foreign.
    let mut am = raw(&mut doc, 77);
    let f = fields_obj(&am);
    am.put(&f, "title", "再改").unwrap();
    commit(&mut am, "member-0077", "device-77", "edit");
    let mut doc2 = back(am);
    let before2 = doc.heads();
    assert_eq!(
        codes(&judge(&before2, &mut doc2)),
        vec![RefusalCode::ForeignActor]
    );
}

#[test]
fn issue10_review_step_by_a_member_is_role() {
    let mut doc = new_visit();
    doc.transition(&member(1), T0 + 1, EventType::Submit, None)
        .unwrap();
    let before = doc.heads();
    doc.transition(&member(2), T0 + 2, EventType::Approve, None)
        .unwrap();
    let v = judge(&before, &mut doc);
    assert_eq!(codes(&v), vec![RefusalCode::Role], "{v:?}");
    assert!(v[0].zh().contains("审核通过"), "{}", v[0].zh());

    // An event claiming to be by the leader, made on member-0002's device.
    let mut doc = new_visit();
    doc.transition(&member(1), T0 + 1, EventType::Submit, None)
        .unwrap();
    let before = doc.heads();
    let mut am = raw(&mut doc, 2);
    let ev = events_obj(&am);
    let e = am.insert_object(&ev, 1, ObjType::Map).unwrap();
    am.put(&e, "t", "submit").unwrap();
    am.put(&e, "by", "member-0010").unwrap();
    am.put(&e, "dev", "device-10").unwrap();
    am.put(&e, "at", T0 + 5).unwrap();
    commit(&mut am, "member-0002", "device-02", "submit");
    let mut doc = back(am);
    assert_eq!(
        codes(&judge(&before, &mut doc)),
        vec![RefusalCode::Impersonation]
    );
}

#[test]
fn issue10_log_is_append_only() {
    let mut doc = RecordDoc::create(
        "h-1",
        &RecordData::Household(testdata::household()),
        &member(1),
        T0,
    )
    .unwrap();
    let before = doc.heads();
    doc.edit(
        &member(2),
        T0 + 1,
        &[Edit::Append {
            field: "log".into(),
            entry: json!({"date": "2026-04-01", "member": "member-0002", "action": "送药"}),
        }],
    )
    .unwrap();
    assert_eq!(judge(&before, &mut doc), vec![]);
    let before = doc.heads();
    let mut am = raw(&mut doc, 2);
    let f = fields_obj(&am);
    let (_, log) = am.get(&f, "log").unwrap().unwrap();
    am.delete(&log, 0).unwrap();
    commit(&mut am, "member-0002", "device-02", "edit");
    let mut doc = back(am);
    let v = judge(&before, &mut doc);
    assert_eq!(codes(&v), vec![RefusalCode::HistoryRewrite], "{v:?}");
    assert!(v[0].zh().contains("帮扶记录"), "{}", v[0].zh());
}

#[test]
fn issue10_dependents_of_refused_changes() {
    let mut doc = new_visit();
    let before = doc.heads();
    let mut a = replica(&mut doc);
    a.edit(&member(1), T0 + 1, &[set("title", json!("一"))])
        .unwrap();
    let h1 = a.heads()[0];
    a.edit(&member(1), T0 + 2, &[set("title", json!("二"))])
        .unwrap();
    let h2 = a.heads()[0];
    let mut b = replica(&mut doc);
    b.edit(
        &member(2),
        T0 + 3,
        &[set("end", json!("2026-05-19T12:00:00"))],
    )
    .unwrap();
    let h3 = b.heads()[0];
    a.merge(&mut b).unwrap();
    a.edit(&member(1), T0 + 4, &[set("helpers", json!(null))])
        .unwrap_err();
    a.edit(&member(1), T0 + 4, &[set("title", json!("四"))])
        .unwrap();
    let h4 = a.heads()[0];
    let new = a.automerge().get_changes(&before);
    let refused: HashSet<ChangeHash> = [h1].into();
    let deps = rules::dependents(&new, &refused);
    assert_eq!(deps, [h2, h4].into_iter().collect::<HashSet<_>>());
    assert!(!deps.contains(&h3) && !deps.contains(&h1));
}
