//! Issue 13: the figures of the console's charts (`Ledger::charts`, `Ledger::latest_with_data`)
//! over a small hand-built year whose every figure is worked out by hand below, by role and
//! after new records land; and the monthly figures of the committed fixtures against a recount.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use sanjin_core::domain::{ActivityType, RecordData};
use sanjin_core::import::{ImportEvent, ImportRecord};
use sanjin_core::workflow::EventType;
use sanjin_fixtures::Fixtures;
use sanjin_ledger::{Charts, Error, Ledger, Query, Slice, Viewer};
use sanjin_server::ServerData;
use serde_json::json;

const DAY: i64 = 86_400_000;
/// 2025-01-01 00:00 Beijing.
const JAN1: i64 = 1_735_660_800_000;

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn record(
    id: &str,
    by: &str,
    events: &[(EventType, f64)],
    data: serde_json::Value,
) -> ImportRecord {
    ImportRecord {
        id: id.into(),
        created_by: by.into(),
        created_at_ms: JAN1,
        events: events
            .iter()
            .map(|(e, at_day)| ImportEvent {
                event: *e,
                by: "office-01".into(),
                at_ms: JAN1 + (at_day * DAY as f64) as i64,
            })
            .collect(),
        data: serde_json::from_value(data).unwrap(),
    }
}

fn directory() -> Vec<ImportRecord> {
    let e = &[];
    let mut out = vec![
        record(
            "chapter-city",
            "office-01",
            e,
            json!({"kind": "chapter", "name": "市政协", "level": "city", "parent": null}),
        ),
        record(
            "cp-1",
            "office-01",
            e,
            json!({"kind": "contact_point", "name": "东风社区", "target_kind": "community", "chapter": "chapter-city"}),
        ),
        record(
            "cp-2",
            "office-01",
            e,
            json!({"kind": "contact_point", "name": "胜利村", "target_kind": "village", "chapter": "chapter-city"}),
        ),
    ];
    for (g, name, leader, cp) in [
        ("group-a", "第一活动组", "member-a1", "cp-1"),
        ("group-b", "第二活动组", "member-b1", "cp-2"),
    ] {
        out.push(record(
            g,
            "office-01",
            e,
            json!({"kind": "group", "name": name, "chapter": "chapter-city", "leader": leader, "contact_points": [cp]}),
        ));
    }
    for (m, name, g) in [
        ("member-a1", "甲一", "group-a"),
        ("member-a2", "甲二", "group-a"),
        ("member-a3", "甲三", "group-a"),
        ("member-b1", "乙一", "group-b"),
        ("member-b2", "乙二", "group-b"),
    ] {
        out.push(record(
            m,
            "office-01",
            e,
            json!({"kind": "member", "name": name, "chapter": "chapter-city", "group": g}),
        ));
    }
    out
}

fn visit(
    id: &str,
    by: &str,
    group: &str,
    ty: ActivityType,
    day: NaiveDate,
    people: &[&str],
    events: &[(EventType, f64)],
) -> ImportRecord {
    let cp = if group == "group-a" { "cp-1" } else { "cp-2" };
    record(
        id,
        by,
        events,
        json!({
            "kind": "visit", "target_kind": "community", "contact_point": cp, "group": group,
            "activity_type": ty.code(),
            "start": format!("{day}T09:00:00"), "end": format!("{day}T11:00:00"),
            "title": format!("{}活动", ty.zh()), "summary": "座谈了解情况", "participants": people,
        }),
    )
}

fn opinion(
    id: &str,
    by: &str,
    group: &str,
    day: NaiveDate,
    events: &[(EventType, f64)],
) -> ImportRecord {
    let cp = if group == "group-a" { "cp-1" } else { "cp-2" };
    record(
        id,
        by,
        events,
        json!({
            "kind": "opinion", "topic": "道路", "opinion_kind": "opinion", "text": "路灯不亮",
            "source": null, "urgency": "normal", "contact_point": cp, "group": group,
            "recorded_on": day.to_string(),
        }),
    )
}

fn plan(id: &str, group: &str, month: u32, ty: ActivityType) -> ImportRecord {
    record(
        id,
        "member-a1",
        &[],
        json!({
            "kind": "plan", "year": 2025, "quarter": (month - 1) / 3 + 1, "month": month,
            "owner": if group == "group-a" { "member-a2" } else { "member-b2" },
            "group": group, "activity_type": ty.code(), "title": "计划", "contact_point": null,
        }),
    )
}

/// Still open (accepted).
fn o3() -> ImportRecord {
    use EventType as E;
    opinion(
        "o3",
        "member-b1",
        "group-b",
        d(2025, 2, 20),
        &[(E::Submit, 50.0), (E::Accept, 51.0)],
    )
}

/// The hand-built year (days of events counted from 1 January 2025, Beijing).
fn server() -> tempfile::TempDir {
    use ActivityType as T;
    use EventType as E;
    let tmp = tempfile::tempdir().unwrap();
    let dir_file = tmp.path().join("directory.jsonl");
    std::fs::write(
        &dir_file,
        directory()
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect::<String>(),
    )
    .unwrap();
    let data_dir = tmp.path().join("server");
    let mut data = ServerData::open(&data_dir).unwrap();
    data.import_directory(&dir_file).unwrap();
    let records = vec![
        visit(
            "v1",
            "member-a1",
            "group-a",
            T::ResearchSymposium,
            d(2025, 1, 10),
            &["member-a1", "member-a2"],
            &[],
        ),
        visit(
            "v2",
            "member-a1",
            "group-a",
            T::Lecture,
            d(2025, 1, 20),
            &["member-a1"],
            &[(E::Submit, 20.0)],
        ),
        visit(
            "v3",
            "member-a1",
            "group-a",
            T::Consultation,
            d(2025, 3, 5),
            &["member-a3"],
            &[],
        ),
        visit(
            "v4",
            "member-b1",
            "group-b",
            T::ResearchSymposium,
            d(2025, 2, 14),
            &["member-b1"],
            &[],
        ),
        visit(
            "v5",
            "member-b1",
            "group-b",
            T::PairAssistance,
            d(2025, 5, 2),
            &["member-b1", "member-b2"],
            &[],
        ),
        // Submitted day 14, handled day 19.5 (6 started days), feedback day 23 (9 days).
        opinion(
            "o1",
            "member-a2",
            "group-a",
            d(2025, 1, 15),
            &[
                (E::Submit, 14.0),
                (E::Accept, 15.0),
                (E::Forward, 16.0),
                (E::Handle, 19.5),
                (E::Feedback, 23.0),
            ],
        ),
        // Handled after 20 days, no feedback yet.
        opinion(
            "o2",
            "member-a1",
            "group-a",
            d(2025, 2, 3),
            &[(E::Submit, 33.0), (E::Accept, 34.0), (E::Handle, 53.0)],
        ),
        o3(),
        // Only recorded; its author takes part in March.
        opinion("o4", "member-b2", "group-b", d(2025, 3, 1), &[]),
        // Feedback straight after forwarding, 40 days after submission: handled and fed back.
        opinion(
            "o5",
            "member-b1",
            "group-b",
            d(2025, 3, 2),
            &[
                (E::Submit, 60.0),
                (E::Accept, 61.0),
                (E::Forward, 62.0),
                (E::Feedback, 100.0),
            ],
        ),
        plan("p1", "group-a", 1, T::ResearchSymposium),
        plan("p2", "group-a", 2, T::Lecture),
        plan("p3", "group-b", 3, T::Consultation),
        plan("p4", "group-b", 4, T::PairAssistance),
        plan("p5", "group-b", 4, T::Lecture),
    ];
    data.import_records(&records).unwrap();
    // A visit deleted (a tombstone): counted nowhere.
    let mut gone = visit(
        "v6",
        "member-a2",
        "group-a",
        T::Lecture,
        d(2025, 3, 9),
        &["member-a2"],
        &[],
    )
    .to_doc()
    .unwrap();
    let by = sanjin_core::Author::new("member-a2", "phone-a2", &[6; 16]).unwrap();
    gone.delete(&by, JAN1 + 70 * DAY, Some("重复录入")).unwrap();
    data.import_docs(&mut [gone]).unwrap();
    tmp
}

fn charts(ledger: &Ledger, viewer: &Viewer, to: NaiveDate) -> Charts {
    ledger
        .charts(viewer, &Query::new(d(2025, 1, 1), to))
        .unwrap()
}

fn visits(c: &Charts) -> Vec<Option<i64>> {
    c.months.iter().map(|m| m.visits).collect()
}

fn planned(c: &Charts) -> Vec<i64> {
    c.months.iter().map(|m| m.planned).collect()
}

/// (visits, groups done) per "六个一" type.
fn six(c: &Charts) -> Vec<(i64, i64)> {
    c.six_ones
        .iter()
        .map(|s| (s.visits, s.groups_done))
        .collect()
}

#[test]
fn issue13_chart_figures_of_a_hand_built_year_by_role() {
    let tmp = server();
    let mut ledger = Ledger::open(&tmp.path().join("server")).unwrap();
    ledger.refresh().unwrap();

    // Office staff, the first quarter.
    let c = charts(&ledger, &Viewer::Office, d(2025, 3, 31));
    assert_eq!((c.year, c.through), (2025, 3));
    let none = None;
    assert_eq!(
        visits(&c),
        [
            Some(2),
            Some(1),
            Some(1),
            none,
            none,
            none,
            none,
            none,
            none,
            none,
            none,
            none
        ]
    );
    assert_eq!(planned(&c), [1, 1, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0]);
    // January a1, a2; February + b1; March + a3 (visit) and b2 (an opinion note's author).
    assert_eq!(c.coverage.members, 5);
    assert_eq!(c.coverage.covered, [2, 3, 5]);
    let h = &c.handling;
    assert_eq!((h.recorded, h.open, h.awaiting_feedback), (5, 1, 1));
    // Handled after 6, 20 and 40 days; fed back after 9 and 40.
    assert_eq!(h.done.count, 3);
    assert_eq!(h.done.median_days, Some(20.0));
    assert_eq!(h.done.buckets, [1, 0, 1, 1, 0]);
    assert_eq!(h.feedback.count, 2);
    assert_eq!(h.feedback.median_days, Some(24.5));
    assert_eq!(h.feedback.buckets, [0, 1, 0, 1, 0]);
    assert_eq!(c.groups, 2);
    // 调研座谈 in both groups; 协商活动 in group-a; 结对帮扶 only in May.
    assert_eq!(six(&c), [(2, 2), (0, 0), (0, 0), (0, 0), (1, 1), (0, 0)]);

    // The whole year: May's pair assistance counts.
    let c = charts(&ledger, &Viewer::Office, d(2025, 12, 31));
    assert_eq!(c.through, 12);
    assert_eq!(c.months[4].visits, Some(1));
    assert_eq!(c.coverage.covered.len(), 12);
    assert_eq!(c.coverage.covered[11], 5);
    assert_eq!(six(&c)[5], (1, 1));

    // group-a's leader: the group's records and members only.
    let leader = Viewer::Leader {
        group: "group-a".into(),
    };
    let c = charts(&ledger, &leader, d(2025, 3, 31));
    assert_eq!(&visits(&c)[..3], [Some(2), Some(0), Some(1)]);
    assert_eq!(&planned(&c)[..4], [1, 1, 0, 0]);
    assert_eq!(
        (c.coverage.members, c.coverage.covered.clone()),
        (3, vec![2, 2, 3])
    );
    let h = &c.handling;
    assert_eq!((h.recorded, h.open, h.awaiting_feedback), (2, 0, 1));
    assert_eq!((h.done.count, h.done.median_days), (2, Some(13.0)));
    assert_eq!((h.feedback.count, h.feedback.median_days), (1, Some(9.0)));
    assert_eq!(c.groups, 1);
    assert_eq!(six(&c), [(1, 1), (0, 0), (0, 0), (0, 0), (1, 1), (0, 0)]);
    // A leader asking for another group is refused; a member sees no chart.
    let other = Query {
        slice: Slice {
            group: Some("group-b".into()),
            ..Slice::default()
        },
        ..Query::new(d(2025, 1, 1), d(2025, 3, 31))
    };
    assert!(matches!(
        ledger.charts(&leader, &other),
        Err(Error::Forbidden(_))
    ));
    assert!(matches!(
        ledger.charts(&Viewer::Member, &Query::new(d(2025, 1, 1), d(2025, 3, 31))),
        Err(Error::Forbidden(_))
    ));
    // Office staff narrowing to group-b see what its leader would.
    let c = ledger.charts(&Viewer::Office, &other).unwrap();
    assert_eq!(&visits(&c)[..3], [Some(0), Some(1), Some(0)]);
    assert_eq!(c.coverage.covered, [0, 1, 2]);

    // The latest month with a record, up to a day.
    assert_eq!(
        ledger
            .latest_with_data(&Viewer::Office, d(2026, 12, 31))
            .unwrap(),
        Some(d(2025, 5, 1))
    );
    assert_eq!(
        ledger.latest_with_data(&leader, d(2026, 12, 31)).unwrap(),
        Some(d(2025, 3, 1))
    );
    assert_eq!(
        ledger
            .latest_with_data(&Viewer::Office, d(2025, 2, 28))
            .unwrap(),
        Some(d(2025, 2, 1))
    );
    assert_eq!(
        ledger
            .latest_with_data(&Viewer::Office, d(2024, 12, 31))
            .unwrap(),
        None
    );
}

#[test]
fn issue13_chart_figures_follow_new_records_and_steps() {
    use EventType as E;
    let tmp = server();
    let data_dir = tmp.path().join("server");
    let mut ledger = Ledger::open(&data_dir).unwrap();
    ledger.refresh().unwrap();
    let before = charts(&ledger, &Viewer::Office, d(2025, 3, 31));
    // Nothing changed: the same figures after another refresh (no fact counted twice).
    assert_eq!(ledger.refresh().unwrap().updated, 0);
    assert_eq!(charts(&ledger, &Viewer::Office, d(2025, 3, 31)), before);

    // A new January visit of group-b, and the open opinion o3 handled on day 55 (5 days after
    // its submission on day 50) through a new step landed on the server.
    let mut data = ServerData::open(&data_dir).unwrap();
    data.import_records(&[visit(
        "v7",
        "member-b2",
        "group-b",
        ActivityType::ContactWindowUnit,
        d(2025, 1, 28),
        &["member-b2"],
        &[],
    )])
    .unwrap();
    let mut doc = o3().to_doc().unwrap();
    let by = sanjin_core::Author::new("office-01", "console", &[7; 16]).unwrap();
    doc.transition(&by, JAN1 + 55 * DAY, E::Handle, None)
        .unwrap();
    data.import_docs(&mut [doc]).unwrap();
    drop(data);
    assert_eq!(ledger.refresh().unwrap().updated, 2);
    let c = charts(&ledger, &Viewer::Office, d(2025, 3, 31));
    assert_eq!(c.months[0].visits, Some(3));
    // b2 now takes part in January.
    assert_eq!(c.coverage.covered, [3, 4, 5]);
    assert_eq!(six(&c)[1], (1, 1));
    let h = &c.handling;
    assert_eq!((h.open, h.awaiting_feedback), (0, 2));
    assert_eq!(h.done.count, 4);
    // 5, 6, 20, 40.
    assert_eq!(h.done.median_days, Some(13.0));
    assert_eq!(h.done.buckets, [2, 0, 1, 1, 0]);
}

#[test]
fn issue13_monthly_figures_of_the_fixtures_match_a_recount() {
    let fx = Fixtures::load(&sanjin_fixtures::committed_dir()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut data = ServerData::open(tmp.path()).unwrap();
    data.import_directory(&sanjin_fixtures::committed_dir())
        .unwrap();
    let records: Vec<_> = fx
        .visits
        .iter()
        .chain(&fx.opinions)
        .chain(&fx.plans)
        .cloned()
        .collect();
    data.import_records(&records).unwrap();
    drop(data);
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    ledger.refresh().unwrap();
    let c = charts(&ledger, &Viewer::Office, d(2025, 12, 31));
    let mut by_month: BTreeMap<u32, i64> = BTreeMap::new();
    let mut plans: BTreeMap<u32, i64> = BTreeMap::new();
    for r in &fx.visits {
        if let RecordData::Visit(v) = &r.data
            && v.start.year() == 2025
            && !r.events.iter().any(|e| e.event == EventType::Delete)
        {
            *by_month.entry(v.start.month()).or_default() += 1;
        }
    }
    for r in &fx.plans {
        if let RecordData::Plan(p) = &r.data
            && p.year == 2025
        {
            *plans.entry(p.month as u32).or_default() += 1;
        }
    }
    for m in &c.months {
        assert_eq!(
            m.visits,
            Some(by_month.get(&m.month).copied().unwrap_or(0)),
            "month {}",
            m.month
        );
        assert_eq!(
            m.planned,
            plans.get(&m.month).copied().unwrap_or(0),
            "month {}",
            m.month
        );
    }
    assert!(c.months.iter().filter_map(|m| m.visits).sum::<i64>() > 0);
    // The quarter's visits are the dashboard's.
    let dash = sanjin_ledger::dashboard::dashboard(
        &ledger,
        &Viewer::Office,
        d(2025, 10, 1),
        d(2025, 12, 31),
    )
    .unwrap();
    assert_eq!(
        c.months[9..].iter().filter_map(|m| m.visits).sum::<i64>(),
        dash.visits
    );
}
