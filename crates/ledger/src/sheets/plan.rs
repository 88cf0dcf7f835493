//! 计划执行（按月）and（按季度）: plan items against the visits of the same group, activity
//! type and month (quarter); a plan item's owner "took part" when a participant of such a visit.

use chrono::{Datelike, NaiveDate};
use sanjin_core::domain::RecordData;

use super::totals::quarter_of;
use super::{Context, Rows, Totals, round1};
use crate::Result;
use crate::sink::{Cell, Column, ColumnKind, Print, SheetSpec, Sink};

pub static PLAN_MONTH: SheetSpec = SheetSpec {
    key: "plan_month",
    title: "计划执行（按月）",
    columns: &[
        col!("活动组编号", 11),
        col!("活动组", 22),
        col!("年", 7, Number),
        col!("季度", 7, Number),
        col!("月", 6, Number),
        col!("活动形式", 14),
        col!("计划数", 8, Number),
        col!("实际数", 8, Number),
        col!("差额", 8, Number),
        col!("完成率（%）", 11, Number),
        col!("计划负责人", 20),
        col!("负责人已参加（项）", 16, Number),
        col!("计划记录编号", 40),
    ],
    print: Print {
        wrap: &["计划负责人"],
        ..Print::columns("活动组", "负责人已参加（项）")
    },
};

pub static PLAN_QUARTER: SheetSpec = SheetSpec {
    key: "plan_quarter",
    title: "计划执行（按季度）",
    columns: &[
        col!("活动组编号", 11),
        col!("活动组", 22),
        col!("年", 7, Number),
        col!("季度", 7, Number),
        col!("活动形式", 14),
        col!("计划数", 8, Number),
        col!("实际数", 8, Number),
        col!("差额", 8, Number),
        col!("完成率（%）", 11, Number),
        col!("计划负责人", 20),
        col!("负责人已参加（项）", 16, Number),
    ],
    print: Print {
        wrap: &["计划负责人"],
        ..Print::columns("活动组", "负责人已参加（项）")
    },
};

/// Counts the plan items of the slice's groups in the months that overlap the period (after
/// the visits: an owner's participation is looked up among them).
pub(super) fn read_items(rows: &Rows, ctx: &Context, totals: &mut Totals) -> Result<()> {
    let q = ctx.q;
    let month_from = NaiveDate::from_ymd_opt(q.from.year(), q.from.month(), 1)
        .expect("the first of a month exists");
    rows.each("plan", Some((month_from, q.to)), |p| {
        let RecordData::Plan(item) = &p.data else {
            return Ok(());
        };
        if ctx.filter.plan(item, &ctx.group_ids) {
            totals.plan_item(&p, item);
        }
        Ok(())
    })
}

/// One row per group, month and activity type with a plan item or a visit.
pub(super) fn by_month(ctx: &Context, totals: &Totals, sink: &mut dyn Sink) -> Result<usize> {
    let dir = ctx.dir;
    let mut written = 0;
    for ((group, year, month, ty), c) in totals.plan_months(&ctx.group_ids) {
        let owners: Vec<String> = c.owners.iter().cloned().collect();
        sink.row(&[
            Cell::text(group.as_str()),
            Cell::text(dir.group_name(group)),
            Cell::Int(*year as i64),
            Cell::Int(quarter_of(*month)),
            Cell::Int(*month as i64),
            Cell::text(ty.zh()),
            Cell::Int(c.planned),
            Cell::Int(c.actual),
            Cell::Int(c.actual - c.planned),
            rate(c.planned, c.actual),
            Cell::text(dir.names(&owners)),
            Cell::Int(c.owner_done),
            Cell::text(c.ids.join(" ")),
        ])?;
        written += 1;
    }
    Ok(written)
}

/// The months summed by quarter.
pub(super) fn by_quarter(ctx: &Context, totals: &Totals, sink: &mut dyn Sink) -> Result<usize> {
    let dir = ctx.dir;
    let quarters = totals.plan_quarters(&ctx.group_ids);
    for ((group, year, quarter, ty), c) in &quarters {
        let owners: Vec<String> = c.owners.iter().cloned().collect();
        sink.row(&[
            Cell::text(group.as_str()),
            Cell::text(dir.group_name(group)),
            Cell::Int(*year as i64),
            Cell::Int(*quarter),
            Cell::text(ty.zh()),
            Cell::Int(c.planned),
            Cell::Int(c.actual),
            Cell::Int(c.actual - c.planned),
            rate(c.planned, c.actual),
            Cell::text(dir.names(&owners)),
            Cell::Int(c.owner_done),
        ])?;
    }
    Ok(quarters.len())
}

/// Actual ÷ planned in percent, one decimal; empty when nothing was planned.
fn rate(planned: i64, actual: i64) -> Cell {
    if planned == 0 {
        Cell::Empty
    } else {
        Cell::Num(round1(actual as f64 * 100.0 / planned as f64))
    }
}
