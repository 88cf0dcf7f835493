//! Issue 13: an opinion's steps as the console takes them — forward with a unit and a due day,
//! handling and feedback as notes, and undoing a mistaken step as a new event — read back on
//! another replica, accepted by the whole-record checks, and review-only by the rules.

use automerge::Change;
use sanjin_core::domain::{RecordData, Unit};
use sanjin_core::protocol::RefusalCode;
use sanjin_core::rules::{self, Signer};
use sanjin_core::testdata::{self, author};
use sanjin_core::validate;
use sanjin_core::workflow::{self, EventType, State, StepDetails};
use sanjin_core::{IndexEntry, RecordDoc};

const T0: i64 = 1_747_616_400_000;

fn signer(reviewer: bool) -> impl Fn(&Change) -> Option<Signer> {
    move |c: &Change| {
        let (m, d) = rules::message_author(c)?;
        Some(Signer {
            member: m,
            device: d,
            reviewer,
        })
    }
}

#[test]
fn issue13_forward_handle_feedback_and_undo_travel_as_events() {
    let member = author("member-0001", 1);
    let staff = author("office-01", 11);
    let mut doc = RecordDoc::create(
        "o-1",
        &RecordData::Opinion(testdata::opinion()),
        &member,
        T0,
    )
    .unwrap();
    doc.transition(&member, T0 + 1, EventType::Submit, None)
        .unwrap();
    let before = doc.heads();
    doc.transition(&staff, T0 + 2, EventType::Accept, None)
        .unwrap();
    let due = chrono::NaiveDate::from_ymd_opt(2025, 6, 30).unwrap();
    doc.transition_with(
        &staff,
        T0 + 3,
        EventType::Forward,
        &StepDetails {
            note: Some("请核实后答复"),
            unit: Some("unit-002"),
            due: Some(due),
        },
    )
    .unwrap();
    // A mistaken forward (wrong unit) is taken back, then forwarded again.
    assert_eq!(
        doc.undo(&staff, T0 + 4, Some("转错单位")).unwrap(),
        State::Accepted
    );
    doc.transition_with(
        &staff,
        T0 + 5,
        EventType::Forward,
        &StepDetails {
            note: None,
            unit: Some("unit-001"),
            due: Some(due),
        },
    )
    .unwrap();
    doc.transition(
        &staff,
        T0 + 6,
        EventType::Handle,
        Some("已清运，设置临时堆放点"),
    )
    .unwrap();
    doc.transition(&staff, T0 + 7, EventType::Feedback, Some("已电话告知委员"))
        .unwrap();

    // What another replica reads.
    let mut other = RecordDoc::load(&doc.save()).unwrap();
    let view = other.view().unwrap();
    assert_eq!(view.status, State::FeedbackGiven);
    let undo = view
        .events
        .iter()
        .find(|e| e.event == EventType::Undo)
        .unwrap();
    let first_forward = view
        .events
        .iter()
        .find(|e| e.event == EventType::Forward)
        .unwrap();
    assert_eq!(undo.undoes.as_deref(), Some(first_forward.id.as_str()));
    assert_eq!(undo.note.as_deref(), Some("转错单位"));
    let a = workflow::assignment(&view.events).unwrap();
    assert_eq!((a.unit.as_str(), a.due), ("unit-001", Some(due)));
    assert_eq!(view.events.len(), 7, "nothing deleted");
    assert_eq!(IndexEntry::of(&view).status, "feedback_given");

    // The whole record passes the server's checks; the steps are for reviewers only.
    validate::check_record(doc.automerge()).unwrap();
    let new = doc.automerge().get_changes(&before);
    assert!(rules::check_changes(doc.automerge(), &before, &new, &signer(true)).is_empty());
    let refused = rules::check_changes(doc.automerge(), &before, &new, &signer(false));
    assert_eq!(refused.len(), new.len(), "{refused:?}");
    assert!(refused.iter().all(|v| v.code == RefusalCode::Role));

    // Nothing to undo on a fresh record; a unit must be an id.
    let mut fresh = RecordDoc::create(
        "o-2",
        &RecordData::Opinion(testdata::opinion()),
        &member,
        T0,
    )
    .unwrap();
    let e = fresh.undo(&staff, T0, None).unwrap_err();
    assert!(e.to_string().contains("cannot"), "{e}");
    fresh
        .transition(&member, T0 + 1, EventType::Submit, None)
        .unwrap();
    fresh
        .transition(&staff, T0 + 2, EventType::Accept, None)
        .unwrap();
    assert!(
        fresh
            .transition_with(
                &staff,
                T0 + 3,
                EventType::Forward,
                &StepDetails {
                    unit: Some("城管局 二科"),
                    ..StepDetails::default()
                },
            )
            .is_err()
    );
}

#[test]
fn issue13_a_unit_is_a_directory_entry() {
    let unit = RecordData::Unit(Unit {
        name: "市城市管理局".into(),
        chapter: Some("chapter-city".into()),
    });
    assert!(unit.kind().is_directory());
    let mut doc = RecordDoc::create("unit-001", &unit, &author("server", 1), T0).unwrap();
    let view = doc.view().unwrap();
    assert_eq!(view.data, unit);
    let e = IndexEntry::of(&view);
    assert_eq!(
        (e.kind.as_str(), e.title.as_str()),
        ("unit", "市城市管理局")
    );
    validate::check_record(doc.automerge()).unwrap();
    // Importable like every directory line.
    let line = r#"{"id":"unit-002","created_by":"office-01","created_at_ms":0,"data":{"kind":"unit","name":"市民政局"}}"#;
    let r: sanjin_core::import::ImportRecord = serde_json::from_str(line).unwrap();
    assert_eq!(r.data.kind(), sanjin_core::domain::RecordKind::Unit);
}

#[test]
fn issue13_the_outcome_leaves_out_what_was_undone() {
    let member = author("member-0001", 1);
    let staff = author("office-01", 11);
    let mut doc = RecordDoc::create(
        "o-3",
        &RecordData::Opinion(testdata::opinion()),
        &member,
        T0,
    )
    .unwrap();
    for (i, (e, note)) in [
        (EventType::Submit, None),
        (EventType::Accept, None),
        (EventType::Handle, Some("第一次办理")),
    ]
    .into_iter()
    .enumerate()
    {
        let by = if i == 0 { &member } else { &staff };
        doc.transition(by, T0 + i as i64, e, note).unwrap();
    }
    doc.undo(&staff, T0 + 5, None).unwrap();
    let view = doc.view().unwrap();
    assert_eq!(view.status, State::Accepted);
    assert!(workflow::outcome(&view.events).is_empty());
    doc.transition(&staff, T0 + 6, EventType::Handle, Some("已办结"))
        .unwrap();
    doc.transition(&staff, T0 + 7, EventType::Feedback, Some("已答复"))
        .unwrap();
    let o = workflow::outcome(&doc.view().unwrap().events);
    assert_eq!(o.handling.unwrap().note.as_deref(), Some("已办结"));
    let f = o.feedback.unwrap();
    assert_eq!(
        (f.note.as_deref(), f.by.as_str()),
        (Some("已答复"), "office-01")
    );
    assert!(o.assignment.is_none() && o.returned.is_none());
}
