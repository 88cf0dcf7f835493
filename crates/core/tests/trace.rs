//! Issue 10, the trace (留痕): each change's automerge `time` is in unix seconds (automerge's own
//! unit) with the milliseconds of that second in its message; documents written before keep reading
//! right; and the history is listed in the same order on every replica with the same heads.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{AutoCommit, ROOT};
use sanjin_core::doc::change_at_ms;
use sanjin_core::domain::RecordData;
use sanjin_core::testdata::{self, author};
use sanjin_core::workflow::EventType;
use sanjin_core::{Edit, HistoryEntry, RecordDoc};
use serde_json::{Value, json};

/// 2026-12-05 14:03:07.891 Beijing time.
const T0: i64 = 1_796_450_587_891;

fn set(field: &str, value: Value) -> Edit {
    Edit::Set {
        field: field.into(),
        value,
    }
}

fn new_visit() -> RecordDoc {
    RecordDoc::create(
        "v-1",
        &RecordData::Visit(testdata::visit()),
        &author("member-0001", 1),
        T0,
    )
    .unwrap()
}

fn message(c: &automerge::Change) -> Value {
    serde_json::from_str(c.message().expect("a message")).unwrap()
}

#[test]
fn issue10_change_time_is_unix_seconds_with_the_milliseconds_in_the_message() {
    let a1 = author("member-0001", 1);
    let mut doc = new_visit();
    doc.edit(
        &a1,
        T0 + 1_001,
        &[set("title", json!("新华村人居环境座谈"))],
    )
    .unwrap();
    // An edit that changes nothing is still a step of the trace (an empty change).
    doc.edit(
        &a1,
        T0 + 2_999,
        &[set("title", json!("新华村人居环境座谈"))],
    )
    .unwrap();
    doc.transition(&a1, T0 + 60_000, EventType::Submit, None)
        .unwrap();
    let expected = [T0, T0 + 1_001, T0 + 2_999, T0 + 60_000];

    let changes = doc.changes();
    assert_eq!(changes.len(), expected.len());
    for (c, at) in changes.iter().zip(expected) {
        assert_eq!(
            c.timestamp(),
            at.div_euclid(1000),
            "automerge time in seconds"
        );
        let msg = message(c);
        assert_eq!(msg["ms"], json!(at.rem_euclid(1000)), "{msg}");
        assert_eq!(msg["m"], json!("member-0001"));
        assert_eq!(msg["d"], json!("device-01"));
        assert_eq!(change_at_ms(c), at);
    }
    // Read back from the saved bytes, on another replica: the same exact times.
    let mut copy = RecordDoc::load(&doc.save()).unwrap();
    let times: Vec<i64> = copy.history().iter().map(|h| h.at_ms).collect();
    assert_eq!(times, expected);
    assert_eq!(copy.history(), doc.history());
    let actions: Vec<String> = copy.history().into_iter().map(|h| h.action).collect();
    assert_eq!(actions, ["create", "edit", "edit", "submit"]);
}

/// `tests/data/issue10-legacy-visit.automerge` was saved by sanjin before issue 10 (commit
/// a04c07c), which wrote milliseconds in each change's `time` and no `ms` in its message:
///
/// ```text
/// t0 = 1_779_152_400_123 (2026-05-19 09:00:00.123 Beijing time)
/// a = create("v-legacy-1", testdata::visit(), member-0001 on device-01, t0)
/// b = load(a.save())
/// a.edit(member-0001 on device-01, t0 + 60_001, title = "新华村座谈（甲）")
/// b.edit(member-0002 on device-02, t0 + 120_002, title = "新华村座谈（乙）")
/// a.merge(b); a.transition(member-0001 on device-01, t0 + 180_003, submit); save(a)
/// ```
#[test]
fn issue10_a_document_written_before_keeps_its_times() {
    const L0: i64 = 1_779_152_400_123;
    let bytes = include_bytes!("data/issue10-legacy-visit.automerge");
    let mut doc = RecordDoc::load(bytes).unwrap();
    // It really is the old format: milliseconds in `time`, no `ms`.
    for c in doc.changes() {
        assert!(c.timestamp() > 1_000_000_000_000, "{}", c.timestamp());
        assert!(message(&c).get("ms").is_none());
    }
    let history = doc.history();
    let seen: Vec<(&str, &str, i64, &str)> = history
        .iter()
        .map(|h| {
            (
                h.member.as_str(),
                h.device.as_str(),
                h.at_ms,
                h.action.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("member-0001", "device-01", L0, "create"),
            ("member-0001", "device-01", L0 + 60_001, "edit"),
            ("member-0002", "device-02", L0 + 120_002, "edit"),
            ("member-0001", "device-01", L0 + 180_003, "submit"),
        ]
    );
    // The conflict's values carry their authors' times too.
    let view = doc.view().unwrap();
    assert_eq!(view.created_at_ms, L0);
    let title = view.conflicts.iter().find(|c| c.field == "title").unwrap();
    let mut at: Vec<(String, i64)> = title
        .values
        .iter()
        .map(|v| (v.member.clone(), v.at_ms))
        .collect();
    at.sort();
    assert_eq!(
        at,
        [
            ("member-0001".to_string(), L0 + 60_001),
            ("member-0002".to_string(), L0 + 120_002)
        ]
    );

    // A change made today lands beside the old ones: both kinds read right.
    let leader = author("member-0010", 3);
    doc.resolve(&leader, T0, "title", json!("新华村座谈（乙）"))
        .unwrap();
    let history = RecordDoc::load(&doc.save()).unwrap().history();
    assert_eq!(history.len(), 5);
    let last = &history[4];
    assert_eq!(
        (last.member.as_str(), last.at_ms, last.action.as_str()),
        ("member-0010", T0, "resolve")
    );
    assert_eq!(
        history[..4].iter().map(|h| h.at_ms).collect::<Vec<_>>(),
        [L0, L0 + 60_001, L0 + 120_002, L0 + 180_003]
    );
    let newest = doc.changes().into_iter().last().unwrap();
    assert_eq!(newest.timestamp(), T0 / 1000);
}

/// A change made by another automerge client (seconds in `time`, as automerge means it, and
/// none of sanjin's message) is shown at its time, not in 1970.
#[test]
fn issue10_a_change_from_another_automerge_client_reads_in_seconds() {
    let mut doc = new_visit();
    let mut am = AutoCommit::load(&doc.save()).unwrap();
    am.set_actor(automerge::ActorId::from(&[7_u8; 16][..]));
    am.put(ROOT, "note", "from another client").unwrap();
    am.commit_with(
        CommitOptions::default()
            .with_message("hello".to_string())
            .with_time(1_796_450_600),
    );
    doc.apply_changes(&am.save()).unwrap();
    let history = doc.history();
    let last = history.last().unwrap();
    assert_eq!(last.at_ms, 1_796_450_600_000);
    assert_eq!(last.device, hex(&[7_u8; 16]));
    assert_eq!(last.member, "");

    // An `ms` outside 0–999 (no sanjin writes one) cannot move the time off its second.
    am.put(ROOT, "note", "again").unwrap();
    am.commit_with(
        CommitOptions::default()
            .with_message(r#"{"m":"member-0001","d":"device-01","a":"edit","ms":86400000}"#)
            .with_time(1_796_450_601),
    );
    let newest = am.get_changes(&[]).into_iter().last().unwrap();
    assert_eq!(change_at_ms(&newest), 1_796_450_601_000);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hashes(h: &[HistoryEntry]) -> Vec<String> {
    h.iter().map(|e| e.hash.clone()).collect()
}

/// Two (here: every) orders of receiving the same concurrent changes give the same history list:
/// causal order, then time, then change hash.
#[test]
fn issue10_replicas_with_the_same_heads_list_the_same_history() {
    let mut base = new_visit();
    // Three phones edit concurrently; two of them at the same millisecond (the hash decides).
    let mut edits = Vec::new();
    for (n, at, field, value) in [
        (2_u8, T0 + 5_000, "title", json!("乙的标题")),
        (3, T0 + 3_000, "summary", json!("丙的纪要")),
        (4, T0 + 3_000, "title", json!("丁的标题")),
    ] {
        let mut phone = RecordDoc::load(&base.save()).unwrap();
        let heads = phone.heads();
        phone
            .edit(
                &author(&format!("member-000{n}"), n),
                at,
                &[set(field, value)],
            )
            .unwrap();
        edits.push(phone.save_after(&heads));
    }
    // A change made after all of them on a phone whose clock is behind: it still comes last.
    let mut late = RecordDoc::load(&base.save()).unwrap();
    for e in &edits {
        late.apply_changes(e).unwrap();
    }
    let heads = late.heads();
    late.edit(
        &author("member-0005", 5),
        T0 - 86_400_000,
        &[set("summary", json!("戊的纪要"))],
    )
    .unwrap();
    let after = late.save_after(&heads);

    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    let mut lists = Vec::new();
    let mut raw_orders = Vec::new();
    for order in orders {
        let mut replica = RecordDoc::load(&base.save()).unwrap();
        for i in order {
            replica.apply_changes(&edits[i]).unwrap();
        }
        replica.apply_changes(&after).unwrap();
        assert_eq!(replica.heads(), late.heads());
        raw_orders.push(
            replica
                .changes()
                .iter()
                .map(|c| c.hash().to_string())
                .collect::<Vec<_>>(),
        );
        lists.push(replica.history());
    }
    // automerge itself lists them in the order each replica received them …
    assert_ne!(raw_orders[0], raw_orders[5]);
    // … the history does not.
    for l in &lists {
        assert_eq!(l, &lists[0]);
    }
    assert_eq!(late.history(), lists[0]);
    let h = &lists[0];
    let who: Vec<(&str, i64)> = h.iter().map(|e| (e.member.as_str(), e.at_ms)).collect();
    assert_eq!(who[0], ("member-0001", T0));
    // The two at T0 + 3 s by change hash, then T0 + 5 s, then the late one after all of them.
    let mut tied = vec![h[1].hash.clone(), h[2].hash.clone()];
    tied.sort();
    assert_eq!(hashes(&h[1..3]), tied);
    assert_eq!((who[1].1, who[2].1), (T0 + 3_000, T0 + 3_000));
    assert_eq!(who[3], ("member-0002", T0 + 5_000));
    assert_eq!(who[4], ("member-0005", T0 - 86_400_000));

    // Merging (not loading) in opposite orders gives the same list too.
    let mut x = RecordDoc::load(&base.save()).unwrap();
    let mut y = RecordDoc::load(&base.save()).unwrap();
    for i in [0, 1, 2] {
        x.apply_changes(&edits[i]).unwrap();
    }
    for i in [2, 1, 0] {
        y.apply_changes(&edits[i]).unwrap();
    }
    x.merge(&mut late).unwrap();
    y.merge(&mut late).unwrap();
    assert_eq!(x.history(), y.history());
    assert_eq!(x.history(), lists[0]);
}
