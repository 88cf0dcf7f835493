//! 活动台账: one row per visit of the period in the slice.

use sanjin_core::domain::{PhotoRef, RecordData, Visit};
use sanjin_core::time;

use super::conflicts::flag_conflicts;
use super::{Context, Rows, Totals, target_zh, yes};
use crate::Result;
use crate::project::Projected;
use crate::sink::{Cell, Column, ColumnKind, Print, SheetSpec, Sink};

pub static ACTIVITIES: SheetSpec = SheetSpec {
    key: "activities",
    title: "活动台账",
    columns: &[
        col!("记录编号", 38),
        col!("日期", 12, Date, "start"),
        col!("开始时间", 17, DateTime, "start"),
        col!("结束时间", 17, DateTime, "end"),
        col!("政协组织", 12),
        col!("活动组", 22, Text, "group"),
        col!("联系点", 20, Text, "contact_point"),
        col!("类别", 8, Text, "target_kind"),
        col!("活动形式", 14, Text, "activity_type"),
        col!("六个一", 8),
        col!("标题", 30, Text, "title"),
        col!("参加委员", 36),
        col!("参加人数", 9, Number),
        col!("辅助力量", 16),
        col!("活动摘要", 50, Text, "summary"),
        col!("照片", 24),
        col!("状态", 9, Text, "status"),
        col!("记录人", 10),
        // When the record was made and last changed, its coordinates, its photos' content
        // addresses and link: kept for lookups, not printed.
        col!("记录时间", 17, DateTime),
        col!("最后修改", 17, DateTime),
        col!("GPS", 22, Text, "gps"),
        col!("照片编号", 30),
        col!("照片链接", 30),
        col!("待裁定冲突", 40),
    ],
    print: Print {
        first: "日期",
        last: "记录人",
        groups: &["政协组织", "活动形式", "参加委员", "活动摘要", "状态"],
        key: Some(("日期", "日期")),
        wrap: &["标题", "参加委员", "辅助力量", "活动摘要", "照片"],
    },
};

/// Streams the visits of the period into the sink, counting each in the totals.
pub(super) fn write(
    rows: &Rows,
    ctx: &Context,
    totals: &mut Totals,
    sink: &mut dyn Sink,
) -> Result<usize> {
    let mut written = 0;
    rows.each("visit", Some((ctx.q.from, ctx.q.to)), |p| {
        let RecordData::Visit(v) = &p.data else {
            return Ok(());
        };
        if !ctx.filter.visit(v) {
            return Ok(());
        }
        totals.visit(&p, v);
        written += 1;
        sink.row(&row(ctx, &p, v))
    })?;
    Ok(written)
}

/// The row of one visit.
fn row(ctx: &Context, p: &Projected, v: &Visit) -> Vec<Cell> {
    let dir = ctx.dir;
    let mut cells = vec![
        Cell::text(p.id.as_str()),
        Cell::Date(v.start.date()),
        Cell::DateTime(v.start),
        Cell::DateTime(v.end),
        Cell::text(
            dir.group_chapter(&v.group)
                .map_or("", |c| dir.chapter_name(c)),
        ),
        Cell::text(dir.group_name(&v.group)),
        Cell::text(dir.contact_point_name(&v.contact_point)),
        Cell::text(target_zh(v.target_kind)),
        Cell::text(v.activity_type.zh()),
        yes(v.activity_type.is_six_ones()),
        Cell::text(v.title.as_str()),
        Cell::text(dir.names(&v.participants)),
        Cell::Int(v.participants.len() as i64),
        Cell::text(v.helpers.join("、")),
        Cell::text(v.summary.as_str()),
        // How many photos and their captions.
        photo_summary(&v.photos),
        Cell::text(p.status.zh()),
        Cell::text(dir.member_name(&p.created_by)),
        Cell::DateTime(time::beijing(p.created_at_ms)),
        Cell::DateTime(time::beijing(p.last_ms)),
        v.gps.map_or(Cell::Empty, |g| Cell::Text(g.to_string())),
        // The photos' content addresses (SHA-256 of the original, the blob's name on the
        // server); the console page showing them.
        Cell::text(
            v.photos
                .iter()
                .map(|ph| ph.hash.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        match ctx.q.photo_link(&p.id) {
            Some(url) if !v.photos.is_empty() => Cell::Link(url),
            _ => Cell::Empty,
        },
        Cell::Empty,
    ];
    flag_conflicts(&ACTIVITIES, p, dir, &mut cells);
    cells
}

/// `2 张：村口座谈、入户走访` (a photo without a caption counts as 照片).
fn photo_summary(photos: &[PhotoRef]) -> Cell {
    if photos.is_empty() {
        return Cell::Empty;
    }
    let captions: Vec<&str> = photos
        .iter()
        .map(|p| {
            if p.caption.is_empty() {
                "照片"
            } else {
                p.caption.as_str()
            }
        })
        .collect();
    Cell::Text(format!("{} 张：{}", photos.len(), captions.join("、")))
}
