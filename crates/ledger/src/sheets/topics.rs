//! 社情民意主题: opinion notes of the period by kind and topic, the most frequent first.

use super::{Context, Totals};
use crate::Result;
use crate::sink::{Cell, Column, ColumnKind, Print, SheetSpec, Sink};

pub static TOPICS: SheetSpec = SheetSpec {
    key: "topics",
    title: "社情民意主题",
    columns: &[
        col!("类别", 10),
        col!("主题", 20),
        col!("条数", 8, Number),
        col!("其中紧急（条）", 13, Number),
        col!("已反馈（条）", 12, Number),
        col!("涉及活动组（个）", 15, Number),
        col!("最早日期", 12, Date),
        col!("最晚日期", 12, Date),
    ],
    print: Print::columns("类别", "最晚日期"),
};

/// One row per kind and topic, by count (most first), then kind and topic.
pub(super) fn write(_ctx: &Context, totals: &Totals, sink: &mut dyn Sink) -> Result<usize> {
    let mut by_count: Vec<_> = totals.topics.iter().collect();
    by_count.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
    for ((kind, topic), t) in &by_count {
        sink.row(&[
            Cell::text(kind.zh()),
            Cell::text(topic.as_str()),
            Cell::Int(t.count),
            Cell::Int(t.urgent),
            Cell::Int(t.feedback),
            Cell::Int(t.groups.len() as i64),
            t.first.map_or(Cell::Empty, Cell::Date),
            t.last.map_or(Cell::Empty, Cell::Date),
        ])?;
    }
    Ok(by_count.len())
}
