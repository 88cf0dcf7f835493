//! 委员履职统计 (every member of the slice, what each did) and 未参与委员 (the coverage gaps:
//! members who did nothing in the period).

use sanjin_core::domain::Member;

use super::yes;
use super::{Context, Totals};
use crate::Result;
use crate::sink::{Cell, Column, ColumnKind, Print, SheetSpec, Sink};

pub static PARTICIPATION: SheetSpec = SheetSpec {
    key: "participation",
    title: "委员履职统计",
    columns: &[
        col!("委员编号", 13),
        col!("姓名", 10),
        col!("政协组织", 12),
        col!("专委会", 18),
        col!("活动组", 22),
        col!("界别", 12),
        col!("参加活动（次）", 13, Number),
        col!("其中六个一（次）", 15, Number),
        col!("记录社情民意（条）", 17, Number),
        col!("其中已报送（条）", 15, Number),
        col!("帮扶记录（次）", 13, Number),
        col!("六个一覆盖（项）", 15, Number),
        col!("已覆盖的六个一", 40),
        col!("是否参与", 9),
    ],
    print: Print {
        groups: &["参加活动（次）"],
        key: Some(("姓名", "姓名")),
        wrap: &["已覆盖的六个一"],
        ..Print::columns("姓名", "是否参与")
    },
};

pub static COVERAGE: SheetSpec = SheetSpec {
    key: "coverage",
    title: "未参与委员",
    columns: &[
        col!("委员编号", 13),
        col!("姓名", 10),
        col!("政协组织", 12),
        col!("专委会", 18),
        col!("活动组", 22),
        col!("组长", 10),
    ],
    print: Print::columns("姓名", "组长"),
};

/// Every member of the slice and what each did.
pub(super) fn participation(ctx: &Context, totals: &Totals, sink: &mut dyn Sink) -> Result<usize> {
    let dir = ctx.dir;
    for (id, m) in &ctx.members {
        let c = totals.member(id);
        sink.row(&[
            Cell::text(id.as_str()),
            Cell::text(m.name.as_str()),
            Cell::text(dir.chapter_name(&m.chapter)),
            Cell::text(m.committee.as_deref().map_or("", |c| dir.committee_name(c))),
            Cell::text(dir.group_name(&m.group)),
            Cell::text(m.sector.as_str()),
            Cell::Int(c.visits),
            Cell::Int(c.six_visits),
            Cell::Int(c.opinions),
            Cell::Int(c.submitted),
            Cell::Int(c.assistance),
            Cell::Int(c.six.len() as i64),
            Cell::text(c.six.iter().map(|t| t.zh()).collect::<Vec<_>>().join("、")),
            yes(c.took_part()),
        ])?;
    }
    Ok(ctx.members.len())
}

/// The members of the slice who did nothing in the period, with their group's leader.
pub(super) fn coverage(ctx: &Context, totals: &Totals, sink: &mut dyn Sink) -> Result<usize> {
    let dir = ctx.dir;
    let gaps = gaps(ctx, totals);
    for (id, m) in &gaps {
        let leader = dir
            .groups
            .get(&m.group)
            .map_or("", |g| dir.member_name(&g.leader));
        sink.row(&[
            Cell::text(id.as_str()),
            Cell::text(m.name.as_str()),
            Cell::text(dir.chapter_name(&m.chapter)),
            Cell::text(m.committee.as_deref().map_or("", |c| dir.committee_name(c))),
            Cell::text(dir.group_name(&m.group)),
            Cell::text(leader),
        ])?;
    }
    Ok(gaps.len())
}

/// The coverage gaps (全覆盖缺口), in directory order.
pub(super) fn gaps<'a>(ctx: &Context<'a>, totals: &Totals) -> Vec<(&'a String, &'a Member)> {
    ctx.members
        .iter()
        .filter(|(id, _)| !totals.member(id).took_part())
        .copied()
        .collect()
}
