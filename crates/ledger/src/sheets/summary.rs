//! 汇总: the period, the slice, and the headline figures of every other ledger.

use super::{Context, Totals, members, round1, six_ones, target_zh};
use crate::directory::Directory;
use crate::sink::{Cell, Column, ColumnKind, Print, SheetSpec, Sink};
use crate::{Query, Result, Slice};

pub static SUMMARY: SheetSpec = SheetSpec {
    key: "summary",
    title: "汇总",
    columns: &[col!("项目", 28), col!("数值", 18, Number), col!("说明", 60)],
    // All three columns on one page's width: the period and the scope are in the third.
    print: Print {
        wrap: &["说明"],
        ..Print::columns("项目", "说明")
    },
};

/// One line per figure: what, how many, and where to look.
pub(super) fn write(ctx: &Context, totals: &Totals, sink: &mut dyn Sink) -> Result<usize> {
    let q = ctx.q;
    let total_members = ctx.members.len() as i64;
    let gaps = members::gaps(ctx, totals).len() as i64;
    let took_part = total_members - gaps;
    let (planned, actual) = totals.plan_sums(&ctx.group_ids);
    let coverage = if total_members == 0 {
        Cell::Empty
    } else {
        Cell::Num(round1(took_part as f64 * 100.0 / total_members as f64))
    };
    let lines: Vec<(&str, Cell, String)> = vec![
        ("统计期间", Cell::Empty, period(q)),
        ("统计范围", Cell::Empty, scope(&q.slice, ctx.dir)),
        (
            "活动记录（条）",
            Cell::Int(totals.visits as i64),
            "见“活动台账”，已删除的记录不计".into(),
        ),
        (
            "社情民意（条）",
            Cell::Int(totals.opinions as i64),
            "见“社情民意台账”".into(),
        ),
        (
            "结对帮扶困难户（户）",
            Cell::Int(totals.households as i64),
            "见“结对帮扶台账”".into(),
        ),
        (
            "帮扶记录（次）",
            Cell::Int(totals.assistance_entries as i64),
            "统计期间内的帮扶记录".into(),
        ),
        (
            "委员人数",
            Cell::Int(total_members),
            "见“委员履职统计”".into(),
        ),
        (
            "已参与委员",
            Cell::Int(took_part),
            "参加活动、记录社情民意或帮扶记录至少一次".into(),
        ),
        ("未参与委员", Cell::Int(gaps), "见“未参与委员”".into()),
        ("覆盖率（%）", coverage, "已参与委员 ÷ 委员人数".into()),
        (
            "六个一全部完成的活动组",
            Cell::Int(six_ones::complete_groups(ctx, totals) as i64),
            format!("共 {} 个活动组，见“六个一完成情况”", ctx.groups.len()),
        ),
        ("计划活动（项）", Cell::Int(planned), "见“计划执行”".into()),
        (
            "实际活动（次）",
            Cell::Int(actual),
            "同一活动组、活动形式、月份的活动记录".into(),
        ),
        (
            "有待裁定冲突的记录",
            Cell::Int(totals.conflicted as i64),
            "这些记录在“待裁定冲突”一列列出全部取值，请组长裁定".into(),
        ),
    ];
    let written = lines.len();
    for (k, v, note) in lines {
        sink.row(&[Cell::text(k), v, Cell::text(note)])?;
    }
    Ok(written)
}

/// The period as staff read it: `2025-01-01 至 2025-12-31`.
pub(crate) fn period(q: &Query) -> String {
    format!("{} 至 {}", q.from, q.to)
}

/// The slice as staff read it: `活动组：…；类别：进农村`, or 全部.
pub(crate) fn scope(s: &Slice, dir: &Directory) -> String {
    let mut scope = Vec::new();
    if let Some(c) = &s.chapter {
        scope.push(format!("政协组织：{}", dir.chapter_name(c)));
    }
    if let Some(c) = &s.committee {
        scope.push(format!("专委会：{}", dir.committee_name(c)));
    }
    if let Some(g) = &s.group {
        scope.push(format!("活动组：{}", dir.group_name(g)));
    }
    if let Some(m) = &s.member {
        scope.push(format!("委员：{}", dir.member_name(m)));
    }
    if let Some(c) = &s.contact_point {
        scope.push(format!("联系点：{}", dir.contact_point_name(c)));
    }
    if let Some(t) = s.target_kind {
        scope.push(format!("类别：{}", target_zh(t)));
    }
    if scope.is_empty() {
        "全部".into()
    } else {
        scope.join("；")
    }
}
