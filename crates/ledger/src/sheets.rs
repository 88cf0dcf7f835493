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

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime};
use rusqlite::Connection;
use sanjin_core::Millis;
use sanjin_core::domain::{
    ActivityType, Household, Opinion, OpinionKind, RecordData, RecordKind, TargetKind, Urgency,
    Visit,
};
use sanjin_core::schema;
use sanjin_core::workflow::{EventType, State};

use crate::directory::Directory;
use crate::project::{self, Projected};
use crate::sink::{Cell, Column, ColumnKind, SheetSpec, Sink};
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

/// The title of the last column of record ledgers.
pub const CONFLICT_COLUMN: &str = "待裁定冲突";

pub static SUMMARY: SheetSpec = SheetSpec {
    key: "summary",
    title: "汇总",
    columns: &[col!("项目", 28), col!("数值", 18, Number), col!("说明", 60)],
};

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
        col!("GPS", 22, Text, "gps"),
        col!("照片", 24),
        col!("照片编号", 30),
        col!("照片链接", 30),
        col!("状态", 9, Text, "status"),
        col!("记录人", 10),
        col!("记录时间", 17, DateTime),
        col!("最后修改", 17, DateTime),
        col!("待裁定冲突", 40),
    ],
};

pub static OPINIONS: SheetSpec = SheetSpec {
    key: "opinions",
    title: "社情民意台账",
    columns: &[
        col!("记录编号", 38),
        col!("日期", 12, Date, "recorded_on"),
        col!("活动组", 22, Text, "group"),
        col!("联系点", 20, Text, "contact_point"),
        col!("主题", 18, Text, "topic"),
        col!("类别", 10, Text, "opinion_kind"),
        col!("紧急程度", 9, Text, "urgency"),
        col!("反映人", 12, Text, "source"),
        col!("内容", 50, Text, "text"),
        col!("关联活动", 38, Text, "visit"),
        col!("记录人", 10),
        col!("办理状态", 10, Text, "status"),
        col!("报送日期", 12, Date),
        col!("反馈日期", 12, Date),
        col!("已记录（天）", 11, Number),
        col!("已提交（天）", 11, Number),
        col!("已退回（天）", 11, Number),
        col!("已采纳（天）", 11, Number),
        col!("已转办（天）", 11, Number),
        col!("已办理（天）", 11, Number),
        col!("办理用时（天）", 13, Number),
        col!("待裁定冲突", 40),
    ],
};

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
};

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
};

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
};

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
};

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
};

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

/// Beijing wall-clock time of a UTC millisecond instant.
pub fn beijing(ms: Millis) -> NaiveDateTime {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .naive_utc()
        + Duration::hours(8)
}

/// The UTC millisecond instant of a Beijing wall-clock time.
pub fn from_beijing(t: NaiveDateTime) -> Millis {
    (t - Duration::hours(8)).and_utc().timestamp_millis()
}

fn yes(b: bool) -> Cell {
    Cell::text(if b { "是" } else { "否" })
}

fn target_zh(t: TargetKind) -> String {
    format!("进{}", t.zh())
}

/// A conflicting value as staff read it.
fn show_value(kind: RecordKind, field: &str, v: &serde_json::Value, dir: &Directory) -> String {
    let s = match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => return "（空）".into(),
        other => other.to_string(),
    };
    let mapped = match field {
        "target_kind" => TargetKind::parse(&s).map(target_zh),
        "activity_type" => ActivityType::parse(&s).map(|x| x.zh().to_string()),
        "opinion_kind" => OpinionKind::parse(&s).map(|x| x.zh().to_string()),
        "urgency" => Urgency::parse(&s).map(|x| x.zh().to_string()),
        "status" => State::parse(&s).map(|x| x.zh().to_string()),
        "group" => Some(dir.group_name(&s).to_string()),
        "contact_point" => Some(dir.contact_point_name(&s).to_string()),
        "start" | "end" => NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S")
            .ok()
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string()),
        _ => None,
    };
    let _ = kind;
    mapped.unwrap_or(s)
}

/// Replaces the cells of conflicted fields by every value, and fills the conflict column.
/// `2 张：村口座谈、入户走访` (a photo without a caption counts as 照片).
fn photo_summary(photos: &[sanjin_core::domain::PhotoRef]) -> Cell {
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

fn flag_conflicts(spec: &SheetSpec, p: &Projected, dir: &Directory, cells: &mut [Cell]) {
    if p.conflicts.is_empty() {
        return;
    }
    let kind = p.data.kind();
    let mut notes = Vec::new();
    for c in &p.conflicts {
        let values: Vec<String> = c
            .values
            .iter()
            .map(|v| {
                format!(
                    "{}（{}）",
                    show_value(kind, &c.field, &v.value, dir),
                    dir.member_name(&v.member)
                )
            })
            .collect();
        let label = if c.field == "status" {
            "状态"
        } else {
            schema::field(kind, &c.field).map_or(c.field.as_str(), |f| f.zh)
        };
        notes.push(format!("{label}：{}", values.join(" ／ ")));
        let all: Vec<String> = c
            .values
            .iter()
            .map(|v| show_value(kind, &c.field, &v.value, dir))
            .collect();
        for (i, col) in spec.columns.iter().enumerate() {
            if col.field == Some(c.field.as_str()) {
                cells[i] = Cell::Text(format!("【冲突】{}", all.join(" ／ ")));
            }
        }
    }
    let last = spec.columns.len() - 1;
    debug_assert_eq!(spec.columns[last].title, CONFLICT_COLUMN);
    cells[last] = Cell::Text(notes.join("；"));
}

/// The slice test of each kind of record.
struct Filter<'a> {
    q: &'a Query,
    dir: &'a Directory,
}

impl Filter<'_> {
    fn place(&self, group: &str, cp: &str) -> bool {
        let s = &self.q.slice;
        s.group.as_ref().is_none_or(|g| g == group)
            && s.contact_point.as_ref().is_none_or(|c| c == cp)
            && s.target_kind.is_none_or(|t| {
                self.dir
                    .contact_points
                    .get(cp)
                    .is_some_and(|c| c.target_kind == t)
            })
    }

    fn visit(&self, v: &Visit) -> bool {
        let s = &self.q.slice;
        let people: Vec<&str> = v.participants.iter().map(String::as_str).collect();
        s.group.as_ref().is_none_or(|g| g == &v.group)
            && s.contact_point
                .as_ref()
                .is_none_or(|c| c == &v.contact_point)
            && s.target_kind.is_none_or(|t| t == v.target_kind)
            && s.member.as_ref().is_none_or(|m| v.participants.contains(m))
            && self.dir.in_org(s, &v.group, &people)
    }

    fn opinion(&self, o: &Opinion, author: &str) -> bool {
        let s = &self.q.slice;
        self.place(&o.group, &o.contact_point)
            && s.member.as_ref().is_none_or(|m| m == author)
            && self.dir.in_org(s, &o.group, &[author])
    }

    fn household(&self, h: &Household) -> bool {
        let s = &self.q.slice;
        let people: Vec<&str> = h
            .assisting_members
            .iter()
            .chain(h.log.iter().map(|e| &e.member))
            .map(String::as_str)
            .collect();
        self.place(&h.group, &h.contact_point)
            && s.member
                .as_ref()
                .is_none_or(|m| people.contains(&m.as_str()))
            && self.dir.in_org(s, &h.group, &people)
    }
}

#[derive(Default)]
struct MemberCounts {
    visits: i64,
    six_visits: i64,
    opinions: i64,
    submitted: i64,
    assistance: i64,
    six: BTreeSet<ActivityType>,
}

#[derive(Default)]
struct PlanCell {
    planned: i64,
    actual: i64,
    owners: BTreeSet<String>,
    ids: Vec<String>,
    /// Members who took part in a visit of this group, type and month.
    participants: BTreeSet<String>,
    /// Plan items whose owner took part in such a visit (明确到人: did the person do it).
    owner_done: i64,
}

#[derive(Default)]
struct TopicCounts {
    count: i64,
    urgent: i64,
    feedback: i64,
    groups: BTreeSet<String>,
    first: Option<NaiveDate>,
    last: Option<NaiveDate>,
}

/// Opinion-state durations in days, in the order of the opinion sheet's columns.
const TIMED_STATES: [State; 6] = [
    State::Recorded,
    State::Submitted,
    State::Returned,
    State::Accepted,
    State::Forwarded,
    State::Handled,
];

struct Handling {
    submitted: Option<Millis>,
    feedback: Option<Millis>,
    days: [f64; 6],
    total_days: Option<f64>,
}

fn days(ms: Millis) -> f64 {
    ms.max(0) as f64 / 86_400_000.0
}

fn round1(f: f64) -> f64 {
    (f * 10.0).round() / 10.0
}

/// Time in each state, from the events that changed it (in document order).
fn handling(p: &Projected, as_of: Millis) -> Handling {
    let mut state = State::Recorded;
    let mut since = p.created_at_ms;
    let mut spent = [0i64; 6];
    let mut submitted = None;
    let mut feedback = None;
    for e in p.events.iter().filter(|e| e.applied) {
        let to = match e.t {
            EventType::Resolve => e.to,
            EventType::Delete | EventType::Restore => None,
            t => sanjin_core::workflow::transition(RecordKind::Opinion, t).map(|(_, to)| to),
        };
        let Some(to) = to else { continue };
        if let Some(i) = TIMED_STATES.iter().position(|s| *s == state) {
            spent[i] += e.at_ms - since;
        }
        if to == State::Submitted && submitted.is_none() {
            submitted = Some(e.at_ms);
        }
        if to == State::FeedbackGiven {
            feedback = Some(e.at_ms);
        }
        state = to;
        since = e.at_ms;
    }
    if let Some(i) = TIMED_STATES.iter().position(|s| *s == state)
        && as_of > since
    {
        spent[i] += as_of - since;
    }
    let total_days = submitted.map(|s| round1(days(feedback.unwrap_or(as_of.max(s)) - s)));
    Handling {
        submitted,
        feedback,
        days: spent.map(|ms| round1(days(ms))),
        total_days,
    }
}

fn six_index(t: ActivityType) -> Option<usize> {
    ActivityType::SIX_ONES.iter().position(|x| *x == t)
}

fn quarter_of(month: u32) -> i64 {
    ((month as i64) - 1) / 3 + 1
}

pub(crate) fn write(conn: &Connection, q: &Query, sink: &mut dyn Sink) -> Result<Summary> {
    let dir = Directory::load(conn)?;
    let filter = Filter { q, dir: &dir };
    sink.start(&SHEETS)?;
    let (from, to) = (q.from.to_string(), q.to.to_string());
    let mut summary = Summary::default();

    let mut members: BTreeMap<String, MemberCounts> = BTreeMap::new();
    let mut six: BTreeMap<String, [i64; 6]> = BTreeMap::new();
    // (group, year, month, activity type) → planned / actual.
    let mut plan: BTreeMap<(String, i32, u32, ActivityType), PlanCell> = BTreeMap::new();
    let mut topics: BTreeMap<(OpinionKind, String), TopicCounts> = BTreeMap::new();
    let mut conflicted = 0usize;
    let (mut visit_rows, mut opinion_rows, mut assistance_rows) = (0usize, 0usize, 0usize);
    let mut households = 0usize;

    // ---------------------------------------------------------------- activities
    sink.sheet(&ACTIVITIES)?;
    project::each(conn, "visit", Some((&from, &to)), |p| {
        let RecordData::Visit(v) = &p.data else {
            return Ok(());
        };
        if !filter.visit(v) {
            return Ok(());
        }
        for m in &v.participants {
            let c = members.entry(m.clone()).or_default();
            c.visits += 1;
            if v.activity_type.is_six_ones() {
                c.six_visits += 1;
                c.six.insert(v.activity_type);
            }
        }
        if let Some(i) = six_index(v.activity_type) {
            six.entry(v.group.clone()).or_default()[i] += 1;
        }
        let cell = plan
            .entry((
                v.group.clone(),
                v.start.year(),
                v.start.month(),
                v.activity_type,
            ))
            .or_default();
        cell.actual += 1;
        cell.participants.extend(v.participants.iter().cloned());
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
            v.gps.map_or(Cell::Empty, |g| Cell::Text(g.to_string())),
            // How many photos and their captions; their content addresses (SHA-256 of the
            // original, the blob's name on the server); the console page showing them.
            photo_summary(&v.photos),
            Cell::text(
                v.photos
                    .iter()
                    .map(|ph| ph.hash.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            match q.photo_link(&p.id) {
                Some(url) if !v.photos.is_empty() => Cell::Link(url),
                _ => Cell::Empty,
            },
            Cell::text(p.status.zh()),
            Cell::text(dir.member_name(&p.created_by)),
            Cell::DateTime(beijing(p.created_at_ms)),
            Cell::DateTime(beijing(p.last_ms)),
            Cell::Empty,
        ];
        if !p.conflicts.is_empty() {
            conflicted += 1;
        }
        flag_conflicts(&ACTIVITIES, &p, &dir, &mut cells);
        visit_rows += 1;
        sink.row(&cells)
    })?;
    summary.rows.push((ACTIVITIES.key, visit_rows));

    // ---------------------------------------------------------------- opinions
    sink.sheet(&OPINIONS)?;
    let period_end = from_beijing((q.to + Duration::days(1)).and_time(chrono::NaiveTime::MIN));
    let as_of = project::last_ms(conn, "opinion")?
        .unwrap_or(period_end)
        .min(period_end);
    project::each(conn, "opinion", Some((&from, &to)), |p| {
        let RecordData::Opinion(o) = &p.data else {
            return Ok(());
        };
        if !filter.opinion(o, &p.created_by) {
            return Ok(());
        }
        let h = handling(&p, as_of);
        let c = members.entry(p.created_by.clone()).or_default();
        c.opinions += 1;
        if h.submitted.is_some() {
            c.submitted += 1;
        }
        let t = topics.entry((o.opinion_kind, o.topic.clone())).or_default();
        t.count += 1;
        if o.urgency != Urgency::Normal {
            t.urgent += 1;
        }
        if p.status == State::FeedbackGiven {
            t.feedback += 1;
        }
        t.groups.insert(o.group.clone());
        t.first = Some(t.first.map_or(o.recorded_on, |d| d.min(o.recorded_on)));
        t.last = Some(t.last.map_or(o.recorded_on, |d| d.max(o.recorded_on)));
        let mut cells = vec![
            Cell::text(p.id.as_str()),
            Cell::Date(o.recorded_on),
            Cell::text(dir.group_name(&o.group)),
            Cell::text(dir.contact_point_name(&o.contact_point)),
            Cell::text(o.topic.as_str()),
            Cell::text(o.opinion_kind.zh()),
            Cell::text(o.urgency.zh()),
            Cell::text(o.source.as_deref().unwrap_or("匿名")),
            Cell::text(o.text.as_str()),
            Cell::text(o.visit.as_deref().unwrap_or("")),
            Cell::text(dir.member_name(&p.created_by)),
            Cell::text(p.status.zh()),
            h.submitted
                .map_or(Cell::Empty, |t| Cell::Date(beijing(t).date())),
            h.feedback
                .map_or(Cell::Empty, |t| Cell::Date(beijing(t).date())),
        ];
        cells.extend(h.days.iter().map(|d| Cell::Num(*d)));
        cells.push(h.total_days.map_or(Cell::Empty, Cell::Num));
        cells.push(Cell::Empty);
        if !p.conflicts.is_empty() {
            conflicted += 1;
        }
        flag_conflicts(&OPINIONS, &p, &dir, &mut cells);
        opinion_rows += 1;
        sink.row(&cells)
    })?;
    summary.rows.push((OPINIONS.key, opinion_rows));

    // ---------------------------------------------------------------- pair assistance
    sink.sheet(&ASSISTANCE)?;
    let mut assistance_entries = 0usize;
    project::each(conn, "household", None, |p| {
        let RecordData::Household(h) = &p.data else {
            return Ok(());
        };
        if !filter.household(h) {
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
        households += 1;
        if !p.conflicts.is_empty() {
            conflicted += 1;
        }
        let base = vec![
            Cell::text(p.id.as_str()),
            Cell::text(h.head_name.as_str()),
            Cell::text(dir.group_name(&h.group)),
            Cell::text(dir.contact_point_name(&h.contact_point)),
            Cell::text(h.address.as_str()),
            Cell::Int(h.size),
            Cell::text(h.situation.as_str()),
            Cell::text(dir.names(&h.assisting_members)),
        ];
        let mut write_row = |entry: Option<&sanjin_core::domain::AssistanceEntry>| {
            let mut cells = base.clone();
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
            flag_conflicts(&ASSISTANCE, &p, &dir, &mut cells);
            assistance_rows += 1;
            sink.row(&cells)
        };
        if entries.is_empty() {
            write_row(None)?;
        }
        for e in entries {
            members.entry(e.member.clone()).or_default().assistance += 1;
            assistance_entries += 1;
            write_row(Some(e))?;
        }
        Ok(())
    })?;
    summary.rows.push((ASSISTANCE.key, assistance_rows));

    // ---------------------------------------------------------------- participation, coverage
    let in_slice = dir.members_in(&q.slice);
    sink.sheet(&PARTICIPATION)?;
    let empty = MemberCounts::default();
    let mut gaps = Vec::new();
    for (id, m) in &in_slice {
        let c = members.get(*id).unwrap_or(&empty);
        let took_part = c.visits + c.opinions + c.assistance > 0;
        if !took_part {
            gaps.push((*id, *m));
        }
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
            yes(took_part),
        ])?;
    }
    summary.rows.push((PARTICIPATION.key, in_slice.len()));
    sink.sheet(&COVERAGE)?;
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
    summary.rows.push((COVERAGE.key, gaps.len()));

    // ---------------------------------------------------------------- six ones
    let groups = dir.groups_in(&q.slice);
    sink.sheet(&SIX_ONES)?;
    let mut complete_groups = 0;
    for (id, g) in &groups {
        let counts = six.get(*id).copied().unwrap_or_default();
        let done = counts.iter().filter(|n| **n > 0).count();
        if done == 6 {
            complete_groups += 1;
        }
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
    summary.rows.push((SIX_ONES.key, groups.len()));

    // ---------------------------------------------------------------- plan vs actual
    let month_from = NaiveDate::from_ymd_opt(q.from.year(), q.from.month(), 1)
        .expect("the first of a month exists")
        .to_string();
    let group_ids: BTreeSet<&str> = groups.iter().map(|(id, _)| id.as_str()).collect();
    project::each(conn, "plan", Some((&month_from, &to)), |p| {
        let RecordData::Plan(item) = &p.data else {
            return Ok(());
        };
        let s = &q.slice;
        let fits = group_ids.contains(item.group.as_str())
            && s.member.as_ref().is_none_or(|m| m == &item.owner)
            && s.contact_point
                .as_ref()
                .is_none_or(|c| item.contact_point.as_ref() == Some(c))
            && s.target_kind.is_none_or(|t| {
                item.contact_point
                    .as_ref()
                    .and_then(|c| dir.contact_points.get(c))
                    .is_some_and(|c| c.target_kind == t)
            });
        if !fits {
            return Ok(());
        }
        let cell = plan
            .entry((
                item.group.clone(),
                item.year as i32,
                item.month as u32,
                item.activity_type,
            ))
            .or_default();
        cell.planned += 1;
        if cell.participants.contains(&item.owner) {
            cell.owner_done += 1;
        }
        cell.owners.insert(item.owner.clone());
        cell.ids.push(p.id.clone());
        Ok(())
    })?;
    let rate = |planned: i64, actual: i64| {
        if planned == 0 {
            Cell::Empty
        } else {
            Cell::Num(round1(actual as f64 * 100.0 / planned as f64))
        }
    };
    sink.sheet(&PLAN_MONTH)?;
    let mut quarters: BTreeMap<(String, i32, i64, ActivityType), PlanCell> = BTreeMap::new();
    let (mut planned_total, mut actual_total) = (0, 0);
    let mut month_rows = 0;
    for ((group, year, month, ty), c) in &plan {
        if !group_ids.contains(group.as_str()) {
            continue;
        }
        planned_total += c.planned;
        actual_total += c.actual;
        let qc = quarters
            .entry((group.clone(), *year, quarter_of(*month), *ty))
            .or_default();
        qc.planned += c.planned;
        qc.actual += c.actual;
        qc.owners.extend(c.owners.iter().cloned());
        qc.owner_done += c.owner_done;
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
        month_rows += 1;
    }
    summary.rows.push((PLAN_MONTH.key, month_rows));
    sink.sheet(&PLAN_QUARTER)?;
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
    summary.rows.push((PLAN_QUARTER.key, quarters.len()));

    // ---------------------------------------------------------------- topics
    sink.sheet(&TOPICS)?;
    let mut by_count: Vec<_> = topics.iter().collect();
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
    summary.rows.push((TOPICS.key, by_count.len()));

    // ---------------------------------------------------------------- summary
    sink.sheet(&SUMMARY)?;
    let s = &q.slice;
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
    let total_members = in_slice.len() as i64;
    let took_part = total_members - gaps.len() as i64;
    let coverage = if total_members == 0 {
        Cell::Empty
    } else {
        Cell::Num(round1(took_part as f64 * 100.0 / total_members as f64))
    };
    let lines: Vec<(&str, Cell, String)> = vec![
        ("统计期间", Cell::Empty, format!("{} 至 {}", q.from, q.to)),
        (
            "统计范围",
            Cell::Empty,
            if scope.is_empty() {
                "全部".into()
            } else {
                scope.join("；")
            },
        ),
        (
            "活动记录（条）",
            Cell::Int(visit_rows as i64),
            "见“活动台账”，已删除的记录不计".into(),
        ),
        (
            "社情民意（条）",
            Cell::Int(opinion_rows as i64),
            "见“社情民意台账”".into(),
        ),
        (
            "结对帮扶困难户（户）",
            Cell::Int(households as i64),
            "见“结对帮扶台账”".into(),
        ),
        (
            "帮扶记录（次）",
            Cell::Int(assistance_entries as i64),
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
        (
            "未参与委员",
            Cell::Int(gaps.len() as i64),
            "见“未参与委员”".into(),
        ),
        ("覆盖率（%）", coverage, "已参与委员 ÷ 委员人数".into()),
        (
            "六个一全部完成的活动组",
            Cell::Int(complete_groups),
            format!("共 {} 个活动组，见“六个一完成情况”", groups.len()),
        ),
        (
            "计划活动（项）",
            Cell::Int(planned_total),
            "见“计划执行”".into(),
        ),
        (
            "实际活动（次）",
            Cell::Int(actual_total),
            "同一活动组、活动形式、月份的活动记录".into(),
        ),
        (
            "有待裁定冲突的记录",
            Cell::Int(conflicted as i64),
            "这些记录在“待裁定冲突”一列列出全部取值，请组长裁定".into(),
        ),
    ];
    summary.rows.push((SUMMARY.key, lines.len()));
    for (k, v, note) in lines {
        sink.row(&[Cell::text(k), v, Cell::text(note)])?;
    }
    sink.finish()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_round_trips() {
        let t = NaiveDate::from_ymd_opt(2025, 5, 19)
            .unwrap()
            .and_hms_opt(9, 30, 0)
            .unwrap();
        assert_eq!(beijing(from_beijing(t)), t);
        assert_eq!(from_beijing(t), 1747618200000);
    }

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
}
