//! 六个一完成情况: per group of the slice, the visits of each of the six types in the period;
//! complete when each type has at least one.

use sanjin_core::domain::ActivityType;

use super::yes;
use super::{Context, Totals};
use crate::Result;
use crate::sink::{Cell, Column, ColumnKind, Print, SheetSpec, Sink};

pub static SIX_ONES: SheetSpec = SheetSpec {
    key: "six_ones",
    title: "六个一完成情况",
    columns: &[
        col!("活动组编号", 11),
        col!("活动组", 22),
        col!("政协组织", 12),
        col!("组长", 10),
        col!("调研座谈", 9, Number),
        col!("联系窗口单位", 12, Number),
        col!("反映建议", 9, Number),
        col!("化解矛盾", 9, Number),
        col!("协商活动", 9, Number),
        col!("结对帮扶", 9, Number),
        col!("完成项数", 9, Number),
        col!("是否完成", 9),
        col!("未完成项目", 30),
    ],
    print: Print {
        wrap: &["未完成项目"],
        ..Print::columns("活动组", "未完成项目")
    },
};

/// One row per group of the slice.
pub(super) fn write(ctx: &Context, totals: &Totals, sink: &mut dyn Sink) -> Result<usize> {
    let dir = ctx.dir;
    for (id, g) in &ctx.groups {
        let counts = totals.six_ones(id);
        let done = done(&counts);
        let missing: Vec<&str> = ActivityType::SIX_ONES
            .iter()
            .zip(counts)
            .filter(|(_, n)| *n == 0)
            .map(|(t, _)| t.zh())
            .collect();
        let mut cells = vec![
            Cell::text(id.as_str()),
            Cell::text(g.name.as_str()),
            Cell::text(dir.chapter_name(&g.chapter)),
            Cell::text(dir.member_name(&g.leader)),
        ];
        cells.extend(counts.iter().map(|n| Cell::Int(*n)));
        cells.extend([
            Cell::Int(done as i64),
            yes(done == 6),
            Cell::text(missing.join("、")),
        ]);
        sink.row(&cells)?;
    }
    Ok(ctx.groups.len())
}

/// How many of the six types have at least one visit.
fn done(counts: &[i64; 6]) -> usize {
    counts.iter().filter(|n| **n > 0).count()
}

/// The groups of the slice that did all six.
pub(super) fn complete_groups(ctx: &Context, totals: &Totals) -> usize {
    ctx.groups
        .iter()
        .filter(|(id, _)| done(&totals.six_ones(id)) == 6)
        .count()
}
