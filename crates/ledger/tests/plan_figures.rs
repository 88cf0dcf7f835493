//! Issue 13: one meaning of "carried out" (已落实). On the committed fixtures for 2025, the plan
//! page's (`Ledger::plans`) carried-out counts per member equal the member record's (履职档案)
//! and the assessment table's (履职考核), and per group the quarterly report's summed over the
//! four quarters — for staff (every group) and for a group leader (the group).

mod common;

use std::collections::BTreeMap;

use common::server;
use sanjin_ledger::plans::PlanQuery;
use sanjin_ledger::{Ledger, Viewer};

const YEAR: i32 = 2025;

/// (planned, carried out) per key.
type Counts = BTreeMap<String, (usize, usize)>;

fn check(ledger: &mut Ledger, viewer: &Viewer) {
    let board = ledger
        .plans(
            viewer,
            &PlanQuery {
                year: YEAR,
                group: None,
                member: None,
            },
        )
        .unwrap();
    let page_groups: Counts = board
        .groups
        .iter()
        .map(|g| (g.group.clone(), (g.tally.planned, g.tally.done)))
        .collect();
    let page_members: Counts = board
        .members
        .iter()
        .map(|m| (m.member.clone(), (m.tally.planned, m.tally.done)))
        .collect();

    // The quarterly report, summed over the year's four quarters, per group.
    let mut report_groups: Counts = BTreeMap::new();
    let mut report_total = (0usize, 0usize);
    for quarter in 1..=4 {
        let r = ledger.quarterly_report(viewer, YEAR, quarter).unwrap();
        eprintln!(
            "{viewer:?} {YEAR}Q{quarter}: report {} planned, {} carried out, {} beyond the plan",
            r.current.planned, r.current.plan_done, r.current.unplanned
        );
        report_total.0 += r.current.planned as usize;
        report_total.1 += r.current.plan_done as usize;
        for g in &r.groups {
            let e = report_groups.entry(g.id.clone()).or_default();
            e.0 += g.planned as usize;
            e.1 += g.plan_done as usize;
        }
        // The quarter's own rows of the plan page: the same count.
        let on_page = board
            .rows
            .iter()
            .filter(|row| row.quarter == i64::from(quarter))
            .collect::<Vec<_>>();
        assert_eq!(
            (
                on_page.len(),
                on_page.iter().filter(|r| r.carried_out.is_some()).count()
            ),
            (r.current.planned as usize, r.current.plan_done as usize),
            "{viewer:?} Q{quarter}: the plan page's rows of the quarter"
        );
    }
    eprintln!(
        "{viewer:?} {YEAR}: plan page {} of {} carried out; report summed {} of {}",
        board.total.done, board.total.planned, report_total.1, report_total.0
    );
    assert_eq!(
        report_total,
        (board.total.planned, board.total.done),
        "{viewer:?}"
    );
    assert_eq!(report_groups, page_groups, "{viewer:?}: per group");

    // The assessment table and each member's record, per member (members without a plan
    // item show 0 of 0 there and are not owners on the plan page).
    let rows = ledger.assessment(viewer, YEAR).unwrap();
    let assessed: Counts = rows
        .iter()
        .filter(|r| r.totals.plan_items > 0)
        .map(|r| (r.member.clone(), (r.totals.plan_items, r.totals.plan_done)))
        .collect();
    let owners: Counts = page_members
        .iter()
        .filter(|(_, (planned, _))| *planned > 0)
        .map(|(m, c)| (m.clone(), *c))
        .collect();
    assert_eq!(assessed, owners, "{viewer:?}: the assessment per member");
    for r in &rows {
        let record = ledger.member_record(viewer, &r.member, YEAR).unwrap();
        assert_eq!(
            (record.totals.plan_items, record.totals.plan_done),
            (r.totals.plan_items, r.totals.plan_done),
            "{viewer:?} {}: the member record",
            r.member
        );
        // Item by item: the record's items carried out by the plan page's visit.
        for line in &record.plan {
            let row = board
                .rows
                .iter()
                .find(|x| x.id == line.id)
                .unwrap_or_else(|| panic!("{} not on the plan page", line.id));
            assert_eq!(
                line.visit.as_deref(),
                row.carried_out.as_ref().map(|v| v.id.as_str()),
                "{}",
                line.id
            );
        }
    }
    // Where the rules used to differ: some owner has fewer items carried out than items, so
    // the figures compared are not all trivially full.
    assert!(
        board.total.done > 0 && board.total.done < board.total.planned,
        "{viewer:?}: {:?}",
        board.total
    );
}

#[test]
fn issue13_plan_page_member_record_assessment_and_report_agree() {
    let tmp = tempfile::tempdir().unwrap();
    server(tmp.path());
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    check(&mut ledger, &Viewer::Office);
    check(
        &mut ledger,
        &Viewer::Leader {
            group: "group-01".into(),
        },
    );
}
