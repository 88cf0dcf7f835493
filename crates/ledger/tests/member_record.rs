//! Issue 13: the member's yearly record (履职档案) of the committed fixtures, checked against a
//! recount straight from the fixture files and against the participation ledger; access by role.

mod common;

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate};
use common::server_copy;
use sanjin_core::domain::RecordData;
use sanjin_core::workflow::EventType;
use sanjin_fixtures::Fixtures;
use sanjin_ledger::{Cell, Error, Ledger, Query, Viewer};

fn in_2025(d: NaiveDate) -> bool {
    d.year() == 2025
}

/// The member who took part in the most visits of 2025 (a member with a full record).
fn busiest(fx: &Fixtures) -> String {
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for r in &fx.visits {
        if let RecordData::Visit(v) = &r.data
            && in_2025(v.start.date())
        {
            for m in &v.participants {
                *counts.entry(m).or_default() += 1;
            }
        }
    }
    let (m, _) = counts.into_iter().max_by_key(|(m, n)| (*n, *m)).unwrap();
    m.to_string()
}

#[test]
fn issue13_member_record_matches_a_recount_of_the_fixtures() {
    let (tmp, fx) = server_copy();
    let member = busiest(&fx);
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    let rec = ledger
        .member_record(&Viewer::Office, &member, 2025)
        .unwrap();

    // Visits of 2025 with the member among the participants.
    let visits: BTreeSet<&str> = fx
        .visits
        .iter()
        .filter(|r| {
            matches!(&r.data, RecordData::Visit(v)
                if in_2025(v.start.date()) && v.participants.contains(&member))
        })
        .map(|r| r.id.as_str())
        .collect();
    assert!(visits.len() >= 3, "a busy member: {}", visits.len());
    let got: BTreeSet<&str> = rec.activities.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(got, visits);
    assert_eq!(rec.totals.visits, visits.len());
    assert!(rec.activities.windows(2).all(|w| w[0].date <= w[1].date));
    for a in &rec.activities {
        let r = fx.visits.iter().find(|r| r.id == a.id).unwrap();
        let RecordData::Visit(v) = &r.data else {
            unreachable!()
        };
        assert_eq!(a.title, v.title);
        assert_eq!(a.activity_type, v.activity_type);
        let role = if r.created_by == member {
            "记录人"
        } else {
            "参加"
        };
        assert_eq!(a.role, role, "{}", a.id);
    }

    // Opinion notes of 2025 the member recorded, and how many were submitted.
    let notes: Vec<_> = fx
        .opinions
        .iter()
        .filter(|r| {
            r.created_by == member
                && matches!(&r.data, RecordData::Opinion(o) if in_2025(o.recorded_on))
        })
        .collect();
    let got: BTreeSet<&str> = rec.opinions.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(
        got,
        notes.iter().map(|r| r.id.as_str()).collect::<BTreeSet<_>>()
    );
    let submitted = notes
        .iter()
        .filter(|r| r.events.iter().any(|e| e.event == EventType::Submit))
        .count();
    assert_eq!(rec.totals.opinions, notes.len());
    assert_eq!(rec.totals.submitted, submitted);

    // Households: paired with the member, or assisted by the member in 2025.
    let mut paired_or_assisted = BTreeSet::new();
    let mut assisted = BTreeSet::new();
    let mut entries = 0;
    for r in &fx.households {
        let RecordData::Household(h) = &r.data else {
            continue;
        };
        let mine = h
            .log
            .iter()
            .filter(|e| e.member == member && in_2025(e.date))
            .count();
        entries += mine;
        if mine > 0 {
            assisted.insert(r.id.as_str());
        }
        if mine > 0 || h.assisting_members.contains(&member) {
            paired_or_assisted.insert(r.id.as_str());
        }
    }
    let got: BTreeSet<&str> = rec.households.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(got, paired_or_assisted);
    assert_eq!(rec.totals.households_assisted, assisted.len());
    assert_eq!(rec.totals.assistance, entries);

    // Plan items of 2025 the member owns.
    let plans: BTreeSet<&str> = fx
        .plans
        .iter()
        .filter(|r| matches!(&r.data, RecordData::Plan(p) if p.year == 2025 && p.owner == member))
        .map(|r| r.id.as_str())
        .collect();
    let got: BTreeSet<&str> = rec.plan.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(got, plans);
    assert_eq!(rec.totals.plan_items, plans.len());

    // The year's figures are the participation ledger's.
    let q = Query::new(
        NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
        NaiveDate::from_ymd_opt(2025, 12, 31).unwrap(),
    );
    let t = ledger.tables(&Viewer::Office, &q).unwrap();
    let row = t
        .get("participation")
        .rows
        .iter()
        .find(|r| r[0].display() == member)
        .unwrap()
        .clone();
    let int = |c: &Cell| match c {
        Cell::Int(n) => *n as usize,
        other => panic!("{other:?}"),
    };
    assert_eq!(int(&row[6]), rec.totals.visits);
    assert_eq!(int(&row[7]), rec.totals.six_visits);
    assert_eq!(int(&row[8]), rec.totals.opinions);
    assert_eq!(int(&row[9]), rec.totals.submitted);
    assert_eq!(int(&row[10]), rec.totals.assistance);
    assert_eq!(int(&row[11]), rec.totals.six.len());
    assert_eq!(row[1].display(), rec.name);
}

#[test]
fn issue13_member_record_by_role() {
    let (tmp, fx) = server_copy();
    let member = busiest(&fx);
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    ledger.refresh().unwrap();
    let group = ledger.directory().unwrap().members[&member].group.clone();
    let lead = Viewer::Leader {
        group: group.clone(),
    };
    let mine = ledger.member_record(&lead, &member, 2025).unwrap();
    assert_eq!(mine.group_id, group);
    let other = Viewer::Leader {
        group: if group == "group-01" {
            "group-02".into()
        } else {
            "group-01".into()
        },
    };
    match ledger.member_record(&other, &member, 2025) {
        Err(Error::Forbidden(m)) => assert!(m.contains("组长只能查看本组"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        ledger.member_record(&Viewer::Member, &member, 2025),
        Err(Error::Forbidden(_))
    ));
    assert!(matches!(
        ledger.member_record(&Viewer::Office, "member-9999", 2025),
        Err(Error::Invalid(_))
    ));
    // Another year holds none of 2025's records.
    let empty = ledger
        .member_record(&Viewer::Office, &member, 2031)
        .unwrap();
    assert!(empty.activities.is_empty() && empty.opinions.is_empty() && empty.plan.is_empty());
}

#[test]
fn issue13_assessment_table_matches_the_member_records_and_reads_back() {
    use calamine::{Reader, Xlsx};

    let (tmp, fx) = server_copy();
    let member = busiest(&fx);
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    let rows = ledger.assessment(&Viewer::Office, 2025).unwrap();
    ledger.refresh().unwrap();
    let dir = ledger.directory().unwrap();
    assert_eq!(rows.len(), dir.members.len(), "every member, once");
    let rec = ledger
        .member_record(&Viewer::Office, &member, 2025)
        .unwrap();
    let row = rows.iter().find(|r| r.member == member).unwrap();
    assert_eq!(
        row.totals, rec.totals,
        "the same figures as the member's record"
    );
    // The visits column sums the participations of the fixtures' visits of 2025.
    let participations: usize = fx
        .visits
        .iter()
        .filter_map(|r| match &r.data {
            RecordData::Visit(v) if in_2025(v.start.date()) => Some(
                v.participants
                    .iter()
                    .filter(|m| dir.members.contains_key(*m))
                    .count(),
            ),
            _ => None,
        })
        .sum();
    assert_eq!(
        rows.iter().map(|r| r.totals.visits).sum::<usize>(),
        participations
    );

    // A leader's table is the group's members.
    let group = rec.group_id.clone();
    let lead = ledger
        .assessment(
            &Viewer::Leader {
                group: group.clone(),
            },
            2025,
        )
        .unwrap();
    let in_group = dir.members.values().filter(|m| m.group == group).count();
    assert_eq!(lead.len(), in_group);
    assert!(lead.iter().any(|r| r.member == member));
    assert!(matches!(
        ledger.assessment(&Viewer::Member, 2025),
        Err(Error::Forbidden(_))
    ));

    // The workbook reads back: the header, one row per member, the member's figures.
    let bytes = ledger.assessment_xlsx(&Viewer::Office, 2025).unwrap();
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let range = book.worksheet_range("2025年度履职考核").unwrap();
    let cells: Vec<Vec<String>> = range
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    assert_eq!(cells[0], sanjin_ledger::ASSESSMENT_COLUMNS);
    assert_eq!(cells.len(), rows.len() + 1);
    let mine = cells.iter().find(|r| r[0] == member).unwrap();
    assert_eq!(mine[1], rec.name);
    assert_eq!(mine[4], rec.totals.visits.to_string());
    assert_eq!(mine[7], rec.totals.opinions.to_string());
    assert_eq!(mine[11], rec.totals.assistance.to_string());
}
