//! The ledgers themselves: which rows, which columns, which counts.
//!
//! Definitions (what office staff get, and what the tests recount):
//! - A record belongs to the period by its day: a visit's start, an opinion note's date, a plan
//!   item's month (a month that overlaps the period), an assistance entry's date.
//! - Participation of a member: visits the member is a participant of, opinion notes the member
//!   recorded, assistance entries the member made. No participation in the period = a coverage
//!   gap (全覆盖缺口).
//! - "六个一": per group, the visits of each of the six types in the period; complete when each
//!   type has at least one.
//! - Plan vs actual: plan items and visits of the same group, activity type and month (quarter);
//!   a plan item's owner "took part" when a participant of such a visit.
//! - Opinion handling: time in each state from the events that changed the state; the current
//!   state counts until the latest change of any opinion note, or the period's end if earlier,
//!   so the same data always gives the same figures.
//!
//! How it is built (issue 11): one pass per kind over the projected records ([`Rows`]) fills
//! the shared [`Totals`]; the three record ledgers (activities, opinions, pair assistance) write
//! their rows during that pass, since rows stream and only aggregates are held in memory. Every
//! other sheet is one function that renders from the [`Context`] and the [`Totals`] alone. One
//! file per sheet (or family of sheets) under `sheets/`, each with its [`SheetSpec`]:
//!
//! - `activities.rs` 活动台账, `opinions.rs` 社情民意台账 (and the handling times),
//!   `assistance.rs` 结对帮扶台账 — record ledgers; `conflicts.rs` shows a record's unresolved
//!   conflicts in its row;
//! - `members.rs` 委员履职统计 and 未参与委员, `six_ones.rs` 六个一完成情况, `plan.rs` 计划执行
//!   (按月, 按季度) and the plan items' pass, `topics.rs` 社情民意主题, `summary.rs` 汇总;
//! - `totals.rs` the shared [`Totals`], `filter.rs` the slice test of each kind of record.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use rusqlite::Connection;
use sanjin_core::Millis;
use sanjin_core::domain::{Group, Member, TargetKind};

use crate::directory::Directory;
use crate::project::{self, Projected};
use crate::sink::{Cell, SheetSpec, Sink};
use crate::{Query, Result};

macro_rules! col {
    ($title:literal, $w:literal) => {
        Column {
            title: $title,
            width: $w as f64,
            field: None,
            kind: ColumnKind::Text,
        }
    };
    ($title:literal, $w:literal, $kind:ident) => {
        Column {
            title: $title,
            width: $w as f64,
            field: None,
            kind: ColumnKind::$kind,
        }
    };
    ($title:literal, $w:literal, $kind:ident, $field:literal) => {
        Column {
            title: $title,
            width: $w as f64,
            field: Some($field),
            kind: ColumnKind::$kind,
        }
    };
}

mod activities;
mod assistance;
mod conflicts;
mod filter;
mod members;
mod opinions;
mod plan;
mod six_ones;
mod summary;
mod topics;
mod totals;

pub use activities::ACTIVITIES;
pub use assistance::ASSISTANCE;
pub use members::{COVERAGE, PARTICIPATION};
pub use opinions::OPINIONS;
pub use plan::{PLAN_MONTH, PLAN_QUARTER};
pub use six_ones::SIX_ONES;
pub use summary::SUMMARY;
pub(crate) use summary::{period, scope};
pub use topics::TOPICS;

pub(crate) use filter::Filter;
use totals::Totals;

/// The title of the last column of record ledgers.
pub const CONFLICT_COLUMN: &str = "待裁定冲突";

/// Every ledger, in the order of the workbook's sheets.
pub static SHEETS: [&SheetSpec; 10] = [
    &SUMMARY,
    &ACTIVITIES,
    &OPINIONS,
    &ASSISTANCE,
    &PARTICIPATION,
    &COVERAGE,
    &SIX_ONES,
    &PLAN_MONTH,
    &PLAN_QUARTER,
    &TOPICS,
];

/// What was written: data rows per ledger.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub rows: Vec<(&'static str, usize)>,
}

/// What every sheet reads besides the totals: the query, the directory, the slice's test of a
/// record, and the members and groups the slice is about.
struct Context<'a> {
    q: &'a Query,
    dir: &'a Directory,
    filter: Filter<'a>,
    /// The members of the slice (participation, coverage), in directory order.
    members: Vec<(&'a String, &'a Member)>,
    /// The groups of the slice ("六个一", plan vs actual), in directory order.
    groups: Vec<(&'a String, &'a Group)>,
    /// The ids of [`Context::groups`].
    group_ids: BTreeSet<&'a str>,
}

impl<'a> Context<'a> {
    fn new(q: &'a Query, dir: &'a Directory) -> Context<'a> {
        let groups = dir.groups_in(&q.slice);
        Context {
            q,
            dir,
            filter: Filter { q, dir },
            members: dir.members_in(&q.slice),
            group_ids: groups.iter().map(|(id, _)| id.as_str()).collect(),
            groups,
        }
    }
}

/// The projected records, kind by kind, in the projection's order (date, time, id); deleted
/// records are never read.
struct Rows<'a> {
    conn: &'a Connection,
}

impl Rows<'_> {
    /// Every record of `kind`; with `days`, only those whose day is within them.
    fn each(
        &self,
        kind: &str,
        days: Option<(NaiveDate, NaiveDate)>,
        f: impl FnMut(Projected) -> Result<()>,
    ) -> Result<()> {
        match days {
            Some((from, to)) => {
                let (from, to) = (from.to_string(), to.to_string());
                project::each(self.conn, kind, Some((&from, &to)), f)
            }
            None => project::each(self.conn, kind, None, f),
        }
    }

    /// The latest change of any record of `kind`.
    fn last_ms(&self, kind: &str) -> Result<Option<Millis>> {
        project::last_ms(self.conn, kind)
    }
}

/// A record ledger: streams the records of its kind into the sink, filling the totals as it
/// goes; returns the rows written.
type RecordLedger = fn(&Rows, &Context, &mut Totals, &mut dyn Sink) -> Result<usize>;

/// Any other sheet: rendered from the context and the totals alone; returns the rows written.
type TotalsSheet = fn(&Context, &Totals, &mut dyn Sink) -> Result<usize>;

/// The record ledgers, in the order they are written (and their records read).
static RECORD_LEDGERS: [(&SheetSpec, RecordLedger); 3] = [
    (&ACTIVITIES, activities::write),
    (&OPINIONS, opinions::write),
    (&ASSISTANCE, assistance::write),
];

/// The sheets rendered from the totals, in the order they are written: the summary last, since
/// it counts what the others show (its place in the workbook is first, by [`SHEETS`]).
static TOTALS_SHEETS: [(&SheetSpec, TotalsSheet); 7] = [
    (&PARTICIPATION, members::participation),
    (&COVERAGE, members::coverage),
    (&SIX_ONES, six_ones::write),
    (&PLAN_MONTH, plan::by_month),
    (&PLAN_QUARTER, plan::by_quarter),
    (&TOPICS, topics::write),
    (&SUMMARY, summary::write),
];

pub(crate) fn write(conn: &Connection, q: &Query, sink: &mut dyn Sink) -> Result<Summary> {
    let dir = Directory::load(conn)?;
    let ctx = Context::new(q, &dir);
    let rows = Rows { conn };
    let mut totals = Totals::default();
    let mut summary = Summary::default();
    sink.start(&SHEETS)?;
    for &(spec, ledger) in &RECORD_LEDGERS {
        sink.sheet(spec)?;
        let written = ledger(&rows, &ctx, &mut totals, sink)?;
        summary.rows.push((spec.key, written));
    }
    // Plan items count against the visits read above; they have no record ledger.
    plan::read_items(&rows, &ctx, &mut totals)?;
    for &(spec, sheet) in &TOTALS_SHEETS {
        sink.sheet(spec)?;
        let written = sheet(&ctx, &totals, sink)?;
        summary.rows.push((spec.key, written));
    }
    sink.finish()?;
    Ok(summary)
}

fn yes(b: bool) -> Cell {
    Cell::text(if b { "是" } else { "否" })
}

fn target_zh(t: TargetKind) -> String {
    format!("进{}", t.zh())
}

fn round1(f: f64) -> f64 {
    (f * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheet_names_fit_excel() {
        for s in SHEETS {
            assert!(s.title.chars().count() <= 31, "{}", s.title);
            assert!(!s.title.contains(['[', ']', ':', '*', '?', '/', '\\']));
        }
        for s in [&ACTIVITIES, &OPINIONS, &ASSISTANCE] {
            assert_eq!(s.columns.last().unwrap().title, CONFLICT_COLUMN);
            assert_eq!(s.columns[0].title, "记录编号");
        }
    }

    /// The sheets after the record ledgers need no database: a directory and totals suffice.
    #[test]
    fn issue11_totals_sheets_render_from_the_totals_alone() {
        use sanjin_core::domain::ActivityType;

        use crate::sink::Tables;

        let mut dir = Directory::default();
        for (id, leader) in [("g1", "m1"), ("g2", "m3")] {
            dir.groups.insert(
                id.into(),
                Group {
                    name: format!("{id} 组"),
                    chapter: "c".into(),
                    committee: None,
                    leader: leader.into(),
                    contact_points: vec![],
                    legal_advisory: false,
                },
            );
        }
        for (id, name, group) in [("m1", "甲", "g1"), ("m2", "乙", "g1"), ("m3", "丙", "g2")] {
            dir.members.insert(
                id.into(),
                Member {
                    name: name.into(),
                    chapter: "c".into(),
                    committee: None,
                    group: group.into(),
                    sector: String::new(),
                },
            );
        }
        let mut totals = Totals::default();
        totals.six.insert("g1".into(), [1; 6]);
        totals.six.insert("g2".into(), [2, 0, 0, 0, 0, 1]);
        let m1 = totals.members.entry("m1".into()).or_default();
        m1.visits = 7;
        m1.six.insert(ActivityType::SIX_ONES[0]);
        let q = Query::new(
            NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
            NaiveDate::from_ymd_opt(2025, 12, 31).unwrap(),
        );
        let ctx = Context::new(&q, &dir);
        let mut tables = Tables::default();
        for &(spec, sheet) in &TOTALS_SHEETS {
            tables.sheet(spec).unwrap();
            assert_eq!(
                sheet(&ctx, &totals, &mut tables).unwrap(),
                tables.tables.last().unwrap().rows.len(),
                "{}",
                spec.key
            );
        }
        let text = |c: &Cell| c.display();
        let participation = tables.get("participation");
        assert_eq!(participation.rows.len(), 3);
        assert_eq!(text(&participation.rows[0][6]), "7");
        assert_eq!(text(participation.rows[0].last().unwrap()), "是");
        let coverage = tables.get("coverage");
        let gaps: Vec<String> = coverage.rows.iter().map(|r| text(&r[1])).collect();
        assert_eq!(gaps, ["乙", "丙"]);
        assert_eq!(text(&coverage.rows[1][5]), "丙", "m3 leads g2");
        let six = tables.get("six_ones");
        assert_eq!(text(&six.rows[0][11]), "是");
        assert_eq!(text(&six.rows[1][11]), "否");
        assert_eq!(text(&six.rows[1][10]), "2");
        let summary = tables.get("summary");
        let figure = |what: &str| {
            summary
                .rows
                .iter()
                .find(|r| text(&r[0]) == what)
                .map(|r| text(&r[1]))
                .unwrap()
        };
        assert_eq!(figure("委员人数"), "3");
        assert_eq!(figure("未参与委员"), "2");
        assert_eq!(figure("覆盖率（%）"), "33.3");
        assert_eq!(figure("六个一全部完成的活动组"), "1");
        assert!(tables.get("plan_month").rows.is_empty());
        assert!(tables.get("topics").rows.is_empty());
    }

    #[test]
    fn issue11_every_sheet_written_once_in_the_old_order() {
        let order: Vec<&str> = RECORD_LEDGERS
            .iter()
            .map(|(s, _)| s.key)
            .chain(TOTALS_SHEETS.iter().map(|(s, _)| s.key))
            .collect();
        assert_eq!(
            order,
            [
                "activities",
                "opinions",
                "assistance",
                "participation",
                "coverage",
                "six_ones",
                "plan_month",
                "plan_quarter",
                "topics",
                "summary"
            ]
        );
        let mut sorted: Vec<&str> = SHEETS.iter().map(|s| s.key).collect();
        sorted.sort();
        let mut written = order.clone();
        written.sort();
        assert_eq!(written, sorted);
    }
}
