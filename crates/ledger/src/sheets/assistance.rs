//! 结对帮扶台账: one row per assistance entry of the period (a household assisted in the
//! period), or one row for a household of the slice never assisted yet.

use sanjin_core::domain::{AssistanceEntry, Household, RecordData};

use super::conflicts::flag_conflicts;
use super::{Context, Rows, Totals};
use crate::Result;
use crate::project::Projected;
use crate::sink::{Cell, Column, ColumnKind, Print, SheetSpec, Sink};

pub static ASSISTANCE: SheetSpec = SheetSpec {
    key: "assistance",
    title: "结对帮扶台账",
    columns: &[
        col!("记录编号", 38),
        col!("户主", 10, Text, "head_name"),
        col!("活动组", 22, Text, "group"),
        col!("联系点", 20, Text, "contact_point"),
        col!("地址", 30, Text, "address"),
        col!("家庭人口", 9, Number, "size"),
        col!("困难情况", 40, Text, "situation"),
        col!("结对委员", 24),
        col!("帮扶日期", 12, Date),
        col!("帮扶委员", 10),
        col!("帮扶措施", 36),
        col!("金额（元）", 11, Number),
        col!("待裁定冲突", 40),
    ],
    print: Print {
        first: "户主",
        last: "金额（元）",
        groups: &["结对委员"],
        key: Some(("户主", "户主")),
        wrap: &["地址", "困难情况", "结对委员", "帮扶措施"],
    },
};

/// Streams the households of the slice into the sink, counting them and their entries of the
/// period in the totals.
pub(super) fn write(
    rows: &Rows,
    ctx: &Context,
    totals: &mut Totals,
    sink: &mut dyn Sink,
) -> Result<usize> {
    let q = ctx.q;
    let mut written = 0;
    rows.each("household", None, |p| {
        let RecordData::Household(h) = &p.data else {
            return Ok(());
        };
        if !ctx.filter.household(h) {
            return Ok(());
        }
        let mut entries: Vec<_> = h
            .log
            .iter()
            .filter(|e| e.date >= q.from && e.date <= q.to)
            .collect();
        if entries.is_empty() && !h.log.is_empty() {
            // Assisted, but not in this period: not part of this period's ledger.
            return Ok(());
        }
        entries.sort_by(|a, b| (a.date, &a.member, &a.action).cmp(&(b.date, &b.member, &b.action)));
        totals.household(&p);
        let household = household_cells(ctx, &p, h);
        if entries.is_empty() {
            written += 1;
            sink.row(&row(ctx, &p, &household, None))?;
        }
        for e in entries {
            totals.assistance(e);
            written += 1;
            sink.row(&row(ctx, &p, &household, Some(e)))?;
        }
        Ok(())
    })?;
    Ok(written)
}

/// The household's cells, the same in each of its rows.
fn household_cells(ctx: &Context, p: &Projected, h: &Household) -> Vec<Cell> {
    let dir = ctx.dir;
    vec![
        Cell::text(p.id.as_str()),
        Cell::text(h.head_name.as_str()),
        Cell::text(dir.group_name(&h.group)),
        Cell::text(dir.contact_point_name(&h.contact_point)),
        Cell::text(h.address.as_str()),
        Cell::Int(h.size),
        Cell::text(h.situation.as_str()),
        Cell::text(dir.names(&h.assisting_members)),
    ]
}

/// The row of one entry of a household (`None`: the household, never assisted).
fn row(
    ctx: &Context,
    p: &Projected,
    household: &[Cell],
    entry: Option<&AssistanceEntry>,
) -> Vec<Cell> {
    let dir = ctx.dir;
    let mut cells = household.to_vec();
    match entry {
        Some(e) => cells.extend([
            Cell::Date(e.date),
            Cell::text(dir.member_name(&e.member)),
            Cell::text(e.action.as_str()),
            e.amount_yuan.map_or(Cell::Empty, Cell::Num),
        ]),
        None => cells.extend([Cell::Empty, Cell::Empty, Cell::Empty, Cell::Empty]),
    }
    cells.push(Cell::Empty);
    flag_conflicts(&ASSISTANCE, p, dir, &mut cells);
    cells
}
