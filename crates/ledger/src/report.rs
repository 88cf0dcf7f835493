//! The quarterly report (季度通报, issue 13) for the chairman's meeting (主席会议): what the
//! activity groups did in one quarter, counted from the projection exactly as the ledgers count
//! it, and written as an XLSX workbook staff can edit before it goes out.
//!
//! **The figures are the ledger's.** Records are read from the projection alone, by the same
//! rules as the ledgers (`sheets.rs`): a visit belongs to the quarter by its start day, an
//! opinion note by its day, an assistance entry by its date, a plan item by its month; the
//! slice test is the ledgers' own [`Filter`]; a member took part when a participant of a visit,
//! the author of an opinion note or the member of an assistance entry (委员履职统计). So the
//! quarter's visits, opinion notes, assistance entries, households, members, participation,
//! planned activities and the year-to-date "六个一" equal the summary sheet (汇总) and the other
//! ledgers of the same period and scope — `tests/report.rs` checks every quarter of the
//! fixtures' year. What the ledgers do not count, the report counts on the same rows:
//!
//! - how far each opinion note got: the states on the path its applied events took (an undo
//!   takes its step back, as in the opinion ledger), so "已采纳" counts notes accepted whatever
//!   happened after; the chart shows the current state (办理状态);
//! - plan items carried out (已落实), by the plan page's rule and matching
//!   ([`crate::plans::match_rows`], [`crate::plans::RULE_ZH`]): a non-deleted visit of the item's
//!   group and type in its month, with the owner taking part, at its contact point if it names
//!   one, one visit per item of the same owner — so a quarter's figures, summed over the year,
//!   equal the plan page's; visits of the scope's groups that carried out no item are "计划外";
//! - per group (ranked by visits, then members taking part), "六个一" from 1 January to the
//!   quarter's end, notable opinion notes (特急 and 紧急 first, then those with feedback given),
//!   and the groups and members with nothing in the quarter (to be urged, 督促).
//!
//! **The workbook** has one sheet, 通报: the title, scope, period and generation date, the
//! figures as sentences, then tables, each chart beside or under the table it draws. The charts are
//! native Excel charts whose series reference those table cells, so a corrected figure redraws
//! its chart. rust_xlsxwriter fills a chart's cached values from the worksheet's cells held in
//! memory; a `constant_memory` worksheet has flushed them to disk, so the report (a few hundred
//! cells) uses a normal worksheet. Printed: A4 landscape, at the scale that fits the columns to
//! the page's width (estimated as [`crate::print`] does), page breaks before a section that
//! does not fit what is left of a page and before a chart that would be cut, the page header and
//! `第 N 页 共 M 页` of the ledgers.
//!
//! Access as everywhere: the quarter's query goes through [`Ledger::scoped`] (a leader gets the
//! group's report, a member none).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};
use rusqlite::Connection;
use rust_xlsxwriter::{
    Chart, ChartDataLabel, ChartFont, ChartLegendPosition, ChartType, DocProperties, ExcelDateTime,
    Format, FormatAlign, FormatBorder, Workbook, Worksheet, XlsxError,
};
use sanjin_core::domain::{ActivityType, OpinionKind, RecordData, RecordKind, TargetKind, Urgency};
use sanjin_core::workflow::{self, EventType, State};
use serde::Serialize;

use crate::directory::Directory;
use crate::plans;
use crate::print;
use crate::project::{self, Projected};
use crate::sheets::{self, Filter};
use crate::{Error, Ledger, Query, Result, Slice, Viewer};

/// The report's title, before the quarter.
pub const REPORT_TITLE: &str = "「三进」活动季度通报";
/// The workbook's one sheet.
pub const REPORT_SHEET: &str = "通报";
/// How many notable opinion notes the report lists at most.
pub const NOTABLE_MAX: usize = 8;
/// A notable note's text is cut to this many characters (with …).
const NOTABLE_CHARS: usize = 80;

/// A quarter of a year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Quarter {
    pub year: i32,
    /// 1 to 4.
    pub quarter: u32,
}

impl Quarter {
    /// The quarter, or [`Error::Invalid`] saying what is wrong.
    pub fn new(year: i32, quarter: u32) -> Result<Quarter> {
        if !(2000..=2100).contains(&year) {
            return Err(Error::Invalid(format!(
                "年份 {year} 不对，请输入 2000 到 2100 之间的年份，例如 2025"
            )));
        }
        if !(1..=4).contains(&quarter) {
            return Err(Error::Invalid(format!(
                "季度 {quarter} 不对，季度应为 1 到 4，例如 2025 年第 2 季度"
            )));
        }
        Ok(Quarter { year, quarter })
    }

    /// `2025Q2`, `2025-Q2`, `2025q2` or `2025年第2季度`.
    pub fn parse(s: &str) -> Result<Quarter> {
        let t = s.trim();
        let bad = || {
            Error::Invalid(format!(
                "无法识别季度“{t}”，应写成 年份Q季度，例如 2025Q2（2025 年第 2 季度）"
            ))
        };
        let (y, q) = if let Some(rest) = t.strip_suffix("季度") {
            rest.split_once("年第").ok_or_else(bad)?
        } else {
            let upper = t.to_ascii_uppercase();
            let (y, q) = upper.split_once('Q').ok_or_else(bad)?;
            let y = y.trim_end_matches('-').to_string();
            return Quarter::new(
                y.trim().parse().map_err(|_| bad())?,
                q.trim().parse().map_err(|_| bad())?,
            );
        };
        Quarter::new(
            y.trim().parse().map_err(|_| bad())?,
            q.trim().parse().map_err(|_| bad())?,
        )
    }

    /// The quarter `day` is in.
    pub fn of(day: NaiveDate) -> Quarter {
        Quarter {
            year: day.year(),
            quarter: day.month0() / 3 + 1,
        }
    }

    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.first_month(), 1).expect("a quarter's first day")
    }

    pub fn last_day(self) -> NaiveDate {
        crate::dashboard::quarter_of(self.first_day()).1
    }

    fn first_month(self) -> u32 {
        (self.quarter - 1) * 3 + 1
    }

    /// The quarter's three months.
    pub fn months(self) -> [u32; 3] {
        let m = self.first_month();
        [m, m + 1, m + 2]
    }

    pub fn previous(self) -> Quarter {
        if self.quarter == 1 {
            Quarter {
                year: self.year - 1,
                quarter: 4,
            }
        } else {
            Quarter {
                year: self.year,
                quarter: self.quarter - 1,
            }
        }
    }

    /// `2025年第2季度`.
    pub fn zh(self) -> String {
        format!("{}年第{}季度", self.year, self.quarter)
    }

    /// `2025Q2`.
    pub fn code(self) -> String {
        format!("{}Q{}", self.year, self.quarter)
    }
}

impl std::fmt::Display for Quarter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.code())
    }
}

/// The headline figures of one quarter.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Visits (活动台账's rows).
    pub visits: i64,
    /// Visits of the six "六个一" types.
    pub six_visits: i64,
    /// Visits by target kind, in [`TargetKind::ALL`] order.
    pub by_target: [i64; 3],
    /// Participants summed over the visits (参加人次).
    pub participations: i64,
    /// Members of the scope (委员人数) and those who took part (已参与委员).
    pub members: i64,
    pub members_active: i64,
    /// Groups of the scope, and those with at least one visit.
    pub groups: i64,
    pub groups_active: i64,
    /// Opinion notes (社情民意台账's rows).
    pub opinions: i64,
    /// Notes of urgency 紧急 or 特急.
    pub urgent: i64,
    /// Notes no longer only recorded (submitted at least once).
    pub submitted: i64,
    /// Notes whose path went through 已采纳, 已转办, 已办理.
    pub accepted: i64,
    pub forwarded: i64,
    pub handled: i64,
    /// Notes with feedback given (current state 已反馈).
    pub feedback: i64,
    /// Notes returned and not submitted again (current state 已退回).
    pub returned: i64,
    /// Households with an assistance entry in the quarter, and those entries.
    pub households_assisted: i64,
    pub assistance_entries: i64,
    /// Paired households with no assistance entry at all yet (the pair-assistance ledger lists
    /// them with the assisted ones).
    pub households_waiting: i64,
    /// Plan items of the quarter's months, those carried out (the plan page's rule), the visits
    /// of the scope's groups that carried out at least one, and those that carried out none
    /// (beyond the plan). A visit with several participants may carry out one item of each, so
    /// `plan_done` may exceed `plan_visits`.
    pub planned: i64,
    pub plan_done: i64,
    pub plan_visits: i64,
    pub unplanned: i64,
    /// Groups with every "六个一" type done from 1 January to the quarter's end.
    pub six_complete: i64,
}

/// A figure's value: a count, or a percentage (none when its base is zero).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Value {
    Count(i64),
    Percent(Option<f64>),
}

impl Value {
    /// As staff read it: `12`, `33.3`, or `—`.
    pub fn zh(self) -> String {
        match self {
            Value::Count(n) => n.to_string(),
            Value::Percent(Some(p)) => format!("{p:.1}"),
            Value::Percent(None) => "—".into(),
        }
    }

    /// This quarter's value less the previous one's (percentage points for a percentage).
    pub fn change(self, before: Value) -> Option<f64> {
        match (self, before) {
            (Value::Count(a), Value::Count(b)) => Some((a - b) as f64),
            (Value::Percent(Some(a)), Value::Percent(Some(b))) => Some(round1(a - b)),
            _ => None,
        }
    }
}

fn round1(f: f64) -> f64 {
    (f * 10.0).round() / 10.0
}

/// `part ÷ whole` in percent, one decimal; none when `whole` is zero.
pub fn percent(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| round1(part as f64 * 100.0 / whole as f64))
}

impl Figures {
    /// Members who took part ÷ members (the summary's 覆盖率).
    pub fn participation(&self) -> Option<f64> {
        percent(self.members_active, self.members)
    }

    /// Plan items carried out ÷ plan items.
    pub fn plan_rate(&self) -> Option<f64> {
        percent(self.plan_done, self.planned)
    }

    /// The comparison table's lines: what, and how many (the XLSX and the console print these).
    pub fn lines(&self) -> Vec<(&'static str, Value)> {
        use Value::{Count as C, Percent as P};
        vec![
            ("开展活动（次）", C(self.visits)),
            ("其中「六个一」活动（次）", C(self.six_visits)),
            ("进社区（次）", C(self.by_target[0])),
            ("进园区（次）", C(self.by_target[1])),
            ("进农村（次）", C(self.by_target[2])),
            ("委员参加活动（人次）", C(self.participations)),
            ("开展活动的活动组（个）", C(self.groups_active)),
            ("委员人数（人）", C(self.members)),
            ("参与委员（人）", C(self.members_active)),
            ("参与率（%）", P(self.participation())),
            ("收集社情民意（条）", C(self.opinions)),
            ("其中紧急、特急（条）", C(self.urgent)),
            ("已报送（条）", C(self.submitted)),
            ("已采纳（条）", C(self.accepted)),
            ("已转办（条）", C(self.forwarded)),
            ("已办理（条）", C(self.handled)),
            ("已反馈委员（条）", C(self.feedback)),
            ("帮扶困难户（户）", C(self.households_assisted)),
            ("帮扶记录（次）", C(self.assistance_entries)),
            ("计划安排活动（项）", C(self.planned)),
            ("已落实计划项（项）", C(self.plan_done)),
            ("计划落实率（%）", P(self.plan_rate())),
            ("计划外活动（次）", C(self.unplanned)),
            ("「六个一」全部完成的活动组（个）", C(self.six_complete)),
        ]
    }
}

/// One group's quarter, as ranked in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupLine {
    pub id: String,
    pub name: String,
    pub leader: String,
    /// 1 for the most visits; groups with the same visits and members taking part share a rank.
    pub rank: usize,
    pub visits: i64,
    pub members: i64,
    pub members_active: i64,
    pub opinions: i64,
    pub assistance_entries: i64,
    pub planned: i64,
    pub plan_done: i64,
}

impl GroupLine {
    pub fn participation(&self) -> Option<f64> {
        percent(self.members_active, self.members)
    }
}

/// One group's "六个一" from 1 January to the quarter's end.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SixOnesLine {
    pub id: String,
    pub name: String,
    /// Visits of each type, in [`ActivityType::SIX_ONES`] order.
    pub counts: [i64; 6],
}

impl SixOnesLine {
    /// How many of the six types have a visit.
    pub fn done(&self) -> usize {
        self.counts.iter().filter(|n| **n > 0).count()
    }

    /// The types without one.
    pub fn missing(&self) -> Vec<ActivityType> {
        ActivityType::SIX_ONES
            .iter()
            .zip(self.counts)
            .filter(|(_, n)| *n == 0)
            .map(|(t, _)| *t)
            .collect()
    }
}

/// An opinion note worth the meeting's attention.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotableOpinion {
    pub id: String,
    pub date: NaiveDate,
    pub group: String,
    pub topic: String,
    pub kind: OpinionKind,
    pub urgency: Urgency,
    pub state: State,
    /// The text, cut to 80 characters.
    pub text: String,
}

/// The members of one group who did nothing in the quarter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdleMembers {
    pub group: String,
    pub leader: String,
    pub members: Vec<String>,
}

/// The quarterly report (季度通报).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuarterlyReport {
    pub quarter: Quarter,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The scope as the ledgers name it (`全部`, `活动组：…`).
    pub scope: String,
    pub generated_on: NaiveDate,
    pub current: Figures,
    pub previous_quarter: Quarter,
    pub previous: Figures,
    /// Visits per month of the quarter by activity type (types with a visit, in
    /// [`ActivityType::ALL`] order).
    pub by_month: Vec<(ActivityType, [i64; 3])>,
    /// Opinion notes by current state, every state of an opinion in workflow order.
    pub by_state: Vec<(State, i64)>,
    /// Opinion notes by kind, every kind.
    pub by_kind: Vec<(OpinionKind, i64)>,
    /// The groups of the scope, ranked.
    pub groups: Vec<GroupLine>,
    /// "六个一" per group of the scope, year to date, in directory order.
    pub six_ones: Vec<SixOnesLine>,
    pub notable: Vec<NotableOpinion>,
    /// Names of the groups without a visit in the quarter.
    pub idle_groups: Vec<String>,
    /// Members without anything in the quarter, by group.
    pub idle_members: Vec<IdleMembers>,
}

impl QuarterlyReport {
    /// 「三进」活动季度通报（2025年第2季度）.
    pub fn title(&self) -> String {
        format!("{REPORT_TITLE}（{}）", self.quarter.zh())
    }

    /// The period as the ledgers write it.
    pub fn period(&self) -> String {
        format!("{} 至 {}", self.from, self.to)
    }

    /// The quarter's months as headers: `4月`.
    pub fn month_titles(&self) -> [String; 3] {
        self.quarter.months().map(|m| format!("{m}月"))
    }

    /// Visits per month, all types together.
    pub fn month_totals(&self) -> [i64; 3] {
        let mut t = [0; 3];
        for (_, counts) in &self.by_month {
            for (i, n) in counts.iter().enumerate() {
                t[i] += n;
            }
        }
        t
    }

    /// How many members are listed in [`QuarterlyReport::idle_members`].
    pub fn idle_member_count(&self) -> usize {
        self.idle_members.iter().map(|g| g.members.len()).sum()
    }

    /// The report's figures as sentences (一、总体情况), for the workbook and the console.
    pub fn sentences(&self) -> Vec<String> {
        let c = &self.current;
        let p = &self.previous;
        let who = if self.scope == "全部" {
            "各委员活动组".to_string()
        } else {
            format!("统计范围内（{}）", self.scope)
        };
        let change = |now: i64, before: i64, unit: &str| match now - before {
            0 => "与上季度持平".to_string(),
            d if d > 0 => format!("比上季度增加 {d} {unit}"),
            d => format!("比上季度减少 {} {unit}", -d),
        };
        let pct = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.1}%"));
        let mut out = vec![format!(
            "{}，{who}共开展「三进」活动 {} 次（进社区 {} 次、进园区 {} 次、进农村 {} 次），其中「六个一」活动 {} 次，{}；委员参加活动 {} 人次。",
            self.quarter.zh(),
            c.visits,
            c.by_target[0],
            c.by_target[1],
            c.by_target[2],
            c.six_visits,
            change(c.visits, p.visits, "次"),
            c.participations,
        )];
        out.push(format!(
            "{} 个活动组中有 {} 个开展了活动；{} 名委员中有 {} 名参加活动、记录社情民意或开展结对帮扶，参与率 {}（上季度 {}）。",
            c.groups,
            c.groups_active,
            c.members,
            c.members_active,
            pct(c.participation()),
            pct(p.participation()),
        ));
        out.push(format!(
            "收集社情民意 {} 条（其中紧急、特急 {} 条），{}；已报送 {} 条，已采纳 {} 条，已转办 {} 条，已办理 {} 条，已向委员反馈 {} 条，退回 {} 条。",
            c.opinions,
            c.urgent,
            change(c.opinions, p.opinions, "条"),
            c.submitted,
            c.accepted,
            c.forwarded,
            c.handled,
            c.feedback,
            c.returned,
        ));
        let mut help = format!(
            "结对帮扶困难户 {} 户，帮扶 {} 次",
            c.households_assisted, c.assistance_entries
        );
        if c.households_waiting > 0 {
            help.push_str(&format!(
                "；另有 {} 户结对困难户尚无帮扶记录",
                c.households_waiting
            ));
        }
        help.push('。');
        out.push(help);
        if c.planned == 0 {
            out.push(format!(
                "本季度年度计划未安排活动；开展的 {} 次活动均为计划外活动。",
                c.unplanned
            ));
        } else {
            out.push(format!(
                "年度计划本季度安排活动 {} 项，已落实 {} 项，落实率 {}；未落实任何计划项的计划外活动 {} 次。",
                c.planned,
                c.plan_done,
                pct(c.plan_rate()),
                c.unplanned
            ));
            // What 已落实 means: the plan page's own words, so the two never disagree.
            out.push(plans::RULE_ZH.to_string());
        }
        out.push(format!(
            "截至本季度末，{} 个活动组中有 {} 个已完成全部「六个一」。",
            c.groups, c.six_complete
        ));
        let idle = self.idle_member_count();
        out.push(if self.idle_groups.is_empty() && idle == 0 {
            "本季度各活动组均开展了活动，每位委员都有履职记录。".to_string()
        } else {
            let groups = if self.idle_groups.is_empty() {
                "各活动组均开展了活动".to_string()
            } else {
                format!(
                    "有 {} 个活动组没有活动记录（{}）",
                    self.idle_groups.len(),
                    self.idle_groups.join("、")
                )
            };
            format!(
                "本季度{groups}，{idle} 名委员没有参加活动、记录社情民意或帮扶记录（名单见第八部分），请相关活动组督促。"
            )
        });
        out
    }
}

/// One quarter counted (the previous quarter keeps only its figures).
struct Counted {
    figures: Figures,
    by_month: BTreeMap<ActivityType, [i64; 3]>,
    by_state: BTreeMap<State, i64>,
    by_kind: BTreeMap<OpinionKind, i64>,
    groups: Vec<GroupLine>,
    six_ones: Vec<SixOnesLine>,
    notable: Vec<NotableOpinion>,
    idle_groups: Vec<String>,
    idle_members: Vec<IdleMembers>,
}

/// What one group did in the quarter.
#[derive(Default)]
struct GroupCounts {
    visits: i64,
    opinions: i64,
    assistance: i64,
    planned: i64,
    plan_done: i64,
}

/// The states an opinion note's applied events took it through, up to its current one (an undo
/// takes back the latest step not taken back yet, as `workflow::fold` does).
fn opinion_path(p: &Projected) -> BTreeSet<State> {
    let mut state = State::Recorded;
    let mut before: Vec<State> = Vec::new();
    for e in p.events.iter().filter(|e| e.applied) {
        let to = match e.t {
            EventType::Resolve => e.to,
            EventType::Delete | EventType::Restore => None,
            EventType::Undo => before.pop(),
            t => workflow::transition(RecordKind::Opinion, t).map(|(_, to)| to),
        };
        let Some(to) = to else { continue };
        if e.t != EventType::Undo {
            before.push(state);
        }
        state = to;
    }
    before.push(state);
    before.into_iter().collect()
}

fn six_index(t: ActivityType) -> Option<usize> {
    ActivityType::SIX_ONES.iter().position(|x| *x == t)
}

fn cut(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(chars).collect();
        s.push('…');
        s
    }
}

/// How urgent, for ordering: 特急 first.
fn urgency_rank(u: Urgency) -> u8 {
    match u {
        Urgency::VeryUrgent => 2,
        Urgency::Urgent => 1,
        Urgency::Normal => 0,
    }
}

/// Counts the quarter `q.from..=q.to` (a query already scoped) from the projection.
fn count(conn: &Connection, dir: &Directory, q: &Query) -> Result<Counted> {
    let filter = Filter { q, dir };
    let members = dir.members_in(&q.slice);
    let groups = dir.groups_in(&q.slice);
    let group_ids: BTreeSet<&str> = groups.iter().map(|(id, _)| id.as_str()).collect();
    let first_month = q.from.month();
    let year_from = NaiveDate::from_ymd_opt(q.to.year(), 1, 1).expect("1 January");
    let day = |d: NaiveDate| d.to_string();

    let mut f = Figures::default();
    let mut active: BTreeSet<String> = BTreeSet::new();
    let mut per_group: BTreeMap<String, GroupCounts> = BTreeMap::new();
    let mut six: BTreeMap<String, [i64; 6]> = BTreeMap::new();
    // The quarter's visits in the slice: those that can carry out its plan items.
    let mut quarter_visits: Vec<Projected> = Vec::new();
    let mut by_month: BTreeMap<ActivityType, [i64; 3]> = BTreeMap::new();

    // Visits from 1 January: the "六个一" to date; the quarter's for everything else.
    let (from_s, to_s) = (day(year_from.min(q.from)), day(q.to));
    project::each(conn, "visit", Some((&from_s, &to_s)), |p| {
        let RecordData::Visit(v) = &p.data else {
            return Ok(());
        };
        if !filter.visit(v) {
            return Ok(());
        }
        if let Some(i) = six_index(v.activity_type)
            && v.start.date() >= year_from
        {
            six.entry(v.group.clone()).or_default()[i] += 1;
        }
        if v.start.date() < q.from {
            return Ok(());
        }
        f.visits += 1;
        if v.activity_type.is_six_ones() {
            f.six_visits += 1;
        }
        if let Some(i) = TargetKind::ALL.iter().position(|t| *t == v.target_kind) {
            f.by_target[i] += 1;
        }
        f.participations += v.participants.len() as i64;
        active.extend(v.participants.iter().cloned());
        let m = (v.start.month() as usize).saturating_sub(first_month as usize);
        if m < 3 {
            by_month.entry(v.activity_type).or_default()[m] += 1;
        }
        per_group.entry(v.group.clone()).or_default().visits += 1;
        quarter_visits.push(p);
        Ok(())
    })?;

    let mut by_state: BTreeMap<State, i64> = BTreeMap::new();
    let mut by_kind: BTreeMap<OpinionKind, i64> = BTreeMap::new();
    let mut candidates: Vec<NotableOpinion> = Vec::new();
    let (from_s, to_s) = (day(q.from), day(q.to));
    project::each(conn, "opinion", Some((&from_s, &to_s)), |p| {
        let RecordData::Opinion(o) = &p.data else {
            return Ok(());
        };
        if !filter.opinion(o, &p.created_by) {
            return Ok(());
        }
        f.opinions += 1;
        *by_kind.entry(o.opinion_kind).or_default() += 1;
        *by_state.entry(p.status).or_default() += 1;
        active.insert(p.created_by.clone());
        per_group.entry(o.group.clone()).or_default().opinions += 1;
        if o.urgency != Urgency::Normal {
            f.urgent += 1;
        }
        if p.status != State::Recorded {
            f.submitted += 1;
        }
        let path = opinion_path(&p);
        f.accepted += i64::from(path.contains(&State::Accepted));
        f.forwarded += i64::from(path.contains(&State::Forwarded));
        f.handled += i64::from(path.contains(&State::Handled));
        f.feedback += i64::from(p.status == State::FeedbackGiven);
        f.returned += i64::from(p.status == State::Returned);
        if o.urgency != Urgency::Normal || p.status == State::FeedbackGiven {
            candidates.push(NotableOpinion {
                id: p.id.clone(),
                date: o.recorded_on,
                group: dir.group_name(&o.group).to_string(),
                topic: o.topic.clone(),
                kind: o.opinion_kind,
                urgency: o.urgency,
                state: p.status,
                text: cut(&o.text, NOTABLE_CHARS),
            });
        }
        Ok(())
    })?;

    project::each(conn, "household", None, |p| {
        let RecordData::Household(h) = &p.data else {
            return Ok(());
        };
        if !filter.household(h) {
            return Ok(());
        }
        let entries: Vec<_> = h
            .log
            .iter()
            .filter(|e| e.date >= q.from && e.date <= q.to)
            .collect();
        if entries.is_empty() {
            // Never assisted: the ledger lists it; assisted only in other periods: not at all.
            if h.log.is_empty() {
                f.households_waiting += 1;
            }
            return Ok(());
        }
        f.households_assisted += 1;
        f.assistance_entries += entries.len() as i64;
        per_group.entry(h.group.clone()).or_default().assistance += entries.len() as i64;
        active.extend(entries.iter().map(|e| e.member.clone()));
        Ok(())
    })?;

    let month_from = NaiveDate::from_ymd_opt(q.from.year(), q.from.month(), 1)
        .expect("the first of a month exists");
    let (from_s, to_s) = (day(month_from), day(q.to));
    let mut items: Vec<Projected> = Vec::new();
    project::each(conn, "plan", Some((&from_s, &to_s)), |p| {
        if let RecordData::Plan(item) = &p.data
            && filter.plan(item, &group_ids)
        {
            items.push(p);
        }
        Ok(())
    })?;
    // The plan page's matching: the quarter is whole months, and the matching never looks
    // beyond an item's month, so the quarters add up to the plan page's year.
    let matched = plans::match_rows(
        &items.iter().collect::<Vec<_>>(),
        &quarter_visits.iter().collect::<Vec<_>>(),
    );
    let mut used = vec![false; quarter_visits.len()];
    for (p, m) in items.iter().zip(matched) {
        let RecordData::Plan(item) = &p.data else {
            continue;
        };
        let done = i64::from(m.is_some());
        if let Some(v) = m {
            used[v] = true;
        }
        f.planned += 1;
        f.plan_done += done;
        let g = per_group.entry(item.group.clone()).or_default();
        g.planned += 1;
        g.plan_done += done;
    }
    for (p, used) in quarter_visits.iter().zip(used) {
        if let RecordData::Visit(v) = &p.data
            && group_ids.contains(v.group.as_str())
        {
            if used {
                f.plan_visits += 1;
            } else {
                f.unplanned += 1;
            }
        }
    }

    f.members = members.len() as i64;
    f.members_active = members
        .iter()
        .filter(|(id, _)| active.contains(*id))
        .count() as i64;
    f.groups = groups.len() as i64;
    let zero = GroupCounts::default();
    let mut lines: Vec<GroupLine> = groups
        .iter()
        .map(|(id, g)| {
            let c = per_group.get(*id).unwrap_or(&zero);
            let of_group: Vec<&&String> = members
                .iter()
                .filter(|(_, m)| &m.group == *id)
                .map(|(mid, _)| mid)
                .collect();
            GroupLine {
                id: id.to_string(),
                name: g.name.clone(),
                leader: dir.member_name(&g.leader).to_string(),
                rank: 0,
                visits: c.visits,
                members: of_group.len() as i64,
                members_active: of_group.iter().filter(|m| active.contains(***m)).count() as i64,
                opinions: c.opinions,
                assistance_entries: c.assistance,
                planned: c.planned,
                plan_done: c.plan_done,
            }
        })
        .collect();
    f.groups_active = lines.iter().filter(|g| g.visits > 0).count() as i64;
    // Most visits first; then the most members taking part; then the directory's order.
    let key = |g: &GroupLine| {
        (
            std::cmp::Reverse(g.visits),
            std::cmp::Reverse(g.members_active),
        )
    };
    lines.sort_by(|a, b| key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id)));
    for i in 0..lines.len() {
        lines[i].rank = if i > 0 && key(&lines[i]) == key(&lines[i - 1]) {
            lines[i - 1].rank
        } else {
            i + 1
        };
    }
    let idle_groups = lines
        .iter()
        .filter(|g| g.visits == 0)
        .map(|g| g.name.clone())
        .collect();

    let six_ones: Vec<SixOnesLine> = groups
        .iter()
        .map(|(id, g)| SixOnesLine {
            id: id.to_string(),
            name: g.name.clone(),
            counts: six.get(*id).copied().unwrap_or_default(),
        })
        .collect();
    f.six_complete = six_ones.iter().filter(|s| s.done() == 6).count() as i64;

    let mut idle_members: Vec<IdleMembers> = Vec::new();
    for (gid, g) in &groups {
        let names: Vec<String> = members
            .iter()
            .filter(|(id, m)| &m.group == *gid && !active.contains(*id))
            .map(|(_, m)| m.name.clone())
            .collect();
        if !names.is_empty() {
            idle_members.push(IdleMembers {
                group: g.name.clone(),
                leader: dir.member_name(&g.leader).to_string(),
                members: names,
            });
        }
    }
    // Members of the scope whose group is outside it (a chapter's member in a mixed group).
    let listed: BTreeSet<&str> = group_ids.clone();
    let mut others: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (id, m) in &members {
        if !listed.contains(m.group.as_str()) && !active.contains(*id) {
            others
                .entry(m.group.as_str())
                .or_default()
                .push(m.name.clone());
        }
    }
    for (gid, names) in others {
        idle_members.push(IdleMembers {
            group: dir.group_name(gid).to_string(),
            leader: dir
                .groups
                .get(gid)
                .map_or("", |g| dir.member_name(&g.leader))
                .to_string(),
            members: names,
        });
    }

    candidates.sort_by(|a, b| {
        (
            std::cmp::Reverse(urgency_rank(a.urgency)),
            std::cmp::Reverse(a.state == State::FeedbackGiven),
            a.date,
            &a.id,
        )
            .cmp(&(
                std::cmp::Reverse(urgency_rank(b.urgency)),
                std::cmp::Reverse(b.state == State::FeedbackGiven),
                b.date,
                &b.id,
            ))
    });
    candidates.truncate(NOTABLE_MAX);

    Ok(Counted {
        figures: f,
        by_month,
        by_state,
        by_kind,
        groups: lines,
        six_ones,
        notable: candidates,
        idle_groups,
        idle_members,
    })
}

/// The report of `quarter` over the (scoped) slice, generated on `today`.
pub(crate) fn build(
    conn: &Connection,
    slice: &Slice,
    quarter: Quarter,
    today: NaiveDate,
) -> Result<QuarterlyReport> {
    let dir = Directory::load(conn)?;
    let query = |qr: Quarter| Query {
        from: qr.first_day(),
        to: qr.last_day(),
        slice: slice.clone(),
        console_url: None,
    };
    let q = query(quarter);
    let now = count(conn, &dir, &q)?;
    let previous_quarter = quarter.previous();
    let before = count(conn, &dir, &query(previous_quarter))?;
    Ok(QuarterlyReport {
        quarter,
        from: q.from,
        to: q.to,
        scope: sheets::scope(slice, &dir),
        generated_on: today,
        current: now.figures,
        previous_quarter,
        previous: before.figures,
        by_month: ActivityType::ALL
            .iter()
            .filter_map(|t| now.by_month.get(t).map(|c| (*t, *c)))
            .collect(),
        by_state: workflow::states(RecordKind::Opinion)
            .iter()
            .map(|s| (*s, now.by_state.get(s).copied().unwrap_or(0)))
            .collect(),
        by_kind: OpinionKind::ALL
            .iter()
            .map(|k| (*k, now.by_kind.get(k).copied().unwrap_or(0)))
            .collect(),
        groups: now.groups,
        six_ones: now.six_ones,
        notable: now.notable,
        idle_groups: now.idle_groups,
        idle_members: now.idle_members,
    })
}

/// Today in Beijing.
fn today() -> NaiveDate {
    sanjin_core::time::beijing_date(chrono::Utc::now().timestamp_millis())
}

impl Ledger {
    /// Refreshes the projection and counts the quarterly report (季度通报) of `quarter` of
    /// `year` as `viewer` may see it: staff the whole, a leader the group's, a member none.
    pub fn quarterly_report(
        &mut self,
        viewer: &Viewer,
        year: i32,
        quarter: u32,
    ) -> Result<QuarterlyReport> {
        let qr = Quarter::new(year, quarter)?;
        let q = self.scoped(viewer, &Query::new(qr.first_day(), qr.last_day()))?;
        self.refresh()?;
        build(&self.conn, &q.slice, qr, today())
    }

    /// The quarterly report as an XLSX workbook staff can edit (see [`QuarterlyReport::xlsx`]).
    pub fn quarterly_report_xlsx(
        &mut self,
        viewer: &Viewer,
        year: i32,
        quarter: u32,
    ) -> Result<Vec<u8>> {
        self.quarterly_report(viewer, year, quarter)?.xlsx()
    }

    /// The quarter a report opens on by default: the last full quarter before `today`'s, or,
    /// when it has no visit, the latest quarter up to `today` with one (the demo's data is of
    /// an earlier year); `today`'s quarter's predecessor when there is no visit at all.
    pub fn default_report_quarter(&mut self, today: NaiveDate) -> Result<Quarter> {
        self.refresh()?;
        let last = Quarter::of(today).previous();
        let latest: Option<String> = self.conn.query_row(
            "SELECT MAX(date) FROM rows WHERE kind = 'visit' AND deleted = 0 AND date <= ?1",
            [last.last_day().to_string()],
            |r| r.get(0),
        )?;
        Ok(latest
            .and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok())
            .map_or(last, Quarter::of))
    }
}

// ------------------------------------------------------------------ the workbook

/// The sheet's columns: A holds labels and names, B–K figures.
const COLUMNS: u16 = 11;
const FIRST_WIDTH: f64 = 30.0;
const WIDTH: f64 = 9.0;
/// Row heights in points.
const ROW_PT: f64 = 18.0;
const TITLE_PT: f64 = 30.0;
const HEADING_PT: f64 = 24.0;
/// A chart's size in pixels (below a table: as wide as the columns A–I).
const CHART_WIDTH_PX: u32 = 760;
const CHART_HEIGHT_PX: u32 = 300;
/// The room between a table and the chart beside it, in pixels.
const CHART_GAP_PX: u32 = 8;

fn xlsx_err(e: XlsxError) -> Error {
    Error::Xlsx(e.to_string())
}

/// The column widths, A first.
fn widths() -> [f64; COLUMNS as usize] {
    let mut w = [WIDTH; COLUMNS as usize];
    w[0] = FIRST_WIDTH;
    w
}

/// The print scale that fits every column on a landscape A4 page's width (LibreOffice's
/// widths, as [`print::column_mm`] estimates them, 5 % to spare).
pub fn print_scale() -> u16 {
    let total: f64 = widths().iter().map(|w| print::column_mm(*w)).sum();
    let page = (297.0 - (print::MARGINS[0] + print::MARGINS[1]) * 25.4) * 0.95;
    ((page / total) * 100.0).min(100.0).floor() as u16
}

/// The height a landscape A4 page holds at `scale` percent, in points of rows (5 % spare:
/// LibreOffice's page holds a little more, measured on its PDF).
fn page_pt(scale: u16) -> f64 {
    let mm = 210.0 - (print::MARGINS[2] + print::MARGINS[3]) * 25.4;
    mm / 25.4 * 72.0 * 100.0 / f64::from(scale) * 0.95
}

struct Formats {
    title: Format,
    sub: Format,
    heading: Format,
    text: Format,
    th: Format,
    td: Format,
    wrap: Format,
    int: Format,
    pct: Format,
    diff: Format,
    note: Format,
}

impl Formats {
    fn new() -> Formats {
        let cell = Format::new()
            .set_border(FormatBorder::Thin)
            .set_align(FormatAlign::VerticalCenter);
        Formats {
            title: Format::new()
                .set_bold()
                .set_font_size(18)
                .set_align(FormatAlign::Center)
                .set_align(FormatAlign::VerticalCenter),
            sub: Format::new().set_align(FormatAlign::Center),
            heading: Format::new()
                .set_bold()
                .set_font_size(13)
                .set_align(FormatAlign::Bottom),
            text: Format::new().set_text_wrap().set_align(FormatAlign::Top),
            th: cell
                .clone()
                .set_bold()
                .set_text_wrap()
                .set_align(FormatAlign::Center)
                .set_background_color(0xF0F1F4),
            wrap: cell.clone().set_text_wrap(),
            int: cell.clone().set_num_format("0"),
            pct: cell.clone().set_num_format("0.0"),
            diff: cell.clone().set_num_format("+0.##;-0.##;0"),
            td: cell,
            note: Format::new()
                .set_italic()
                .set_font_size(9)
                .set_text_wrap()
                .set_align(FormatAlign::Top),
        }
    }
}

/// Writes the sheet top to bottom, keeping each row's height and the sections that must not be
/// cut by a page break.
struct Writer<'a> {
    ws: &'a mut Worksheet,
    f: Formats,
    row: u32,
    heights: Vec<f64>,
    /// (first row, last row) of each section.
    sections: Vec<(u32, u32)>,
    section_start: u32,
    /// (first row, last row) of each chart's rows.
    keeps: Vec<(u32, u32)>,
}

/// A cell of a table row.
enum C<'s> {
    Text(&'s str),
    Int(i64),
    Pct(Option<f64>),
    Diff(Option<f64>),
}

impl Writer<'_> {
    fn height(&mut self, pt: f64) -> Result<()> {
        self.ws.set_row_height(self.row, pt).map_err(xlsx_err)?;
        self.heights.push(pt);
        self.row += 1;
        Ok(())
    }

    /// Text across all columns, as tall as its wrapped lines.
    fn line(&mut self, text: &str, format: &Format, min_pt: f64) -> Result<()> {
        let room: f64 = widths().iter().sum();
        let pt = (print::lines(text, room) as f64 * print::LINE_PT + 4.0).max(min_pt);
        self.ws
            .merge_range(self.row, 0, self.row, COLUMNS - 1, text, format)
            .map_err(xlsx_err)?;
        self.height(pt)
    }

    fn start_section(&mut self, heading: &str) -> Result<()> {
        self.section_start = self.row;
        self.ws
            .write_string_with_format(self.row, 0, heading, &self.f.heading)
            .map_err(xlsx_err)?;
        self.height(HEADING_PT)
    }

    fn end_section(&mut self) -> Result<()> {
        self.sections.push((self.section_start, self.row - 1));
        // A blank row between sections.
        self.height(ROW_PT / 2.0)
    }

    /// A table row: each cell with the columns it spans (merged when more than one); returns
    /// the row written.
    fn row(&mut self, cells: &[(C, u16)], header: bool) -> Result<u32> {
        let r = self.row;
        let mut col = 0u16;
        let mut lines = 1;
        for (cell, span) in cells {
            let last = col + span - 1;
            let fmt = match (header, cell) {
                (true, _) => &self.f.th,
                (_, C::Text(_)) if *span > 1 || col > 0 => &self.f.wrap,
                (_, C::Text(_)) => &self.f.td,
                (_, C::Int(_)) => &self.f.int,
                (_, C::Pct(_)) => &self.f.pct,
                (_, C::Diff(_)) => &self.f.diff,
            };
            let room: f64 = widths()[col as usize..=last as usize].iter().sum();
            match cell {
                C::Text(t) => {
                    lines = lines.max(print::lines(t, room));
                    if *span > 1 {
                        self.ws
                            .merge_range(r, col, r, last, t, fmt)
                            .map_err(xlsx_err)?;
                    } else {
                        self.ws
                            .write_string_with_format(r, col, *t, fmt)
                            .map_err(xlsx_err)?;
                    }
                }
                C::Int(n) => number(self.ws, r, (col, last), Some(*n as f64), fmt)?,
                C::Pct(v) | C::Diff(v) => number(self.ws, r, (col, last), *v, fmt)?,
            }
            col = last + 1;
        }
        self.height((lines as f64 * print::LINE_PT + 2.0).max(ROW_PT))?;
        Ok(r)
    }

    /// Inserts `chart` below the table and leaves the rows it covers (kept on one page). A thin
    /// row comes first, so that a page break before the chart never touches it (LibreOffice
    /// draws an object on every page its frame touches).
    fn chart(&mut self, chart: &mut Chart, height_px: u32) -> Result<()> {
        let spacer = self.row;
        self.height(ROW_PT / 3.0)?;
        chart.set_width(CHART_WIDTH_PX).set_height(height_px);
        self.ws.insert_chart(self.row, 0, chart).map_err(xlsx_err)?;
        self.cover(spacer, height_px)
    }

    /// Inserts `chart` beside the table that starts at row `top`, from column `col` to the
    /// last, and makes the rows from `top` at least as tall as the chart (kept on one page).
    fn chart_beside(
        &mut self,
        chart: &mut Chart,
        top: u32,
        col: u16,
        height_px: u32,
    ) -> Result<()> {
        let px: u32 = widths()[col as usize..]
            .iter()
            .map(|w| (w * 7.0 + 5.0) as u32)
            .sum();
        chart.set_width(px - 2 * CHART_GAP_PX).set_height(height_px);
        self.ws
            .insert_chart_with_offset(top, col, chart, CHART_GAP_PX, 0)
            .map_err(xlsx_err)?;
        self.cover(top, height_px)
    }

    /// Adds rows until those from `top` are `height_px` tall and a little more; the rows from
    /// `top` are kept on one page.
    fn cover(&mut self, top: u32, height_px: u32) -> Result<()> {
        let pt = f64::from(height_px) * 0.75 + ROW_PT / 2.0 + ROW_PT / 3.0;
        while self.heights[top as usize..].iter().sum::<f64>() < pt {
            self.height(ROW_PT)?;
        }
        self.keeps.push((top, self.row - 1));
        Ok(())
    }

    /// Every page break, explicit: a section starts a new page when it fits on one but not in
    /// what is left of the page (a longer one at least with its heading and first rows), a
    /// chart's rows are never cut, and any other row goes to the next page when the page is
    /// full. The page is estimated a little shorter than LibreOffice's and Excel's, so they
    /// never break on their own first: the pages are the ones counted here.
    fn page_breaks(&self, scale: u16) -> Vec<u32> {
        let room = page_pt(scale);
        let tall = |a: u32, b: u32| -> f64 { self.heights[a as usize..=b as usize].iter().sum() };
        let mut breaks = vec![];
        let mut used = 0.0;
        let mut r = 0u32;
        while (r as usize) < self.heights.len() {
            let unit = match self.sections.iter().find(|(a, _)| *a == r) {
                Some(&(a, b)) if tall(a, b) <= room => Some((a, b)),
                Some(&(a, b)) => {
                    // The heading, the table's head and two rows, and any chart starting there.
                    let head = (a + 3).min(b);
                    let end = self
                        .keeps
                        .iter()
                        .filter(|(k, _)| (a..=head).contains(k))
                        .map(|(_, e)| *e)
                        .fold(head, u32::max);
                    Some((a, end))
                }
                None => self.keeps.iter().find(|(a, _)| *a == r).copied(),
            };
            let (a, b) = unit.unwrap_or((r, r));
            let h = tall(a, b);
            if used > 0.0 && used + h > room {
                breaks.push(a);
                used = 0.0;
            }
            used += h;
            r = b + 1;
        }
        breaks
    }
}

/// A number (or — for none) in row `r`, columns `cols` merged when more than one.
fn number(
    ws: &mut Worksheet,
    r: u32,
    (col, last): (u16, u16),
    v: Option<f64>,
    fmt: &Format,
) -> Result<()> {
    if last > col {
        ws.merge_range(r, col, r, last, "", fmt).map_err(xlsx_err)?;
    }
    match v {
        Some(v) => ws.write_number_with_format(r, col, v, fmt),
        None => ws.write_string_with_format(r, col, "—", fmt),
    }
    .map_err(xlsx_err)?;
    Ok(())
}

/// A cell range of the report's sheet, for a chart: rows and columns 0-based, inclusive.
fn range(r1: u32, c1: u16, r2: u32, c2: u16) -> (&'static str, u32, u16, u32, u16) {
    (REPORT_SHEET, r1, c1, r2, c2)
}

impl QuarterlyReport {
    /// The report as an XLSX workbook: one sheet, 通报, with the figures as sentences and
    /// tables and three native charts drawing the tables' cells (see the module's notes).
    pub fn xlsx(&self) -> Result<Vec<u8>> {
        let mut book = Workbook::new();
        let fixed = ExcelDateTime::from_ymd(2017, 1, 1).expect("a valid date");
        book.set_properties(
            &DocProperties::new()
                .set_title(self.title())
                .set_author("sanjin")
                .set_creation_datetime(&fixed),
        );
        let ws = book.add_worksheet();
        ws.set_name(REPORT_SHEET).map_err(xlsx_err)?;
        for (c, w) in widths().iter().enumerate() {
            ws.set_column_width(c as u16, *w).map_err(xlsx_err)?;
        }
        let mut w = Writer {
            ws,
            f: Formats::new(),
            row: 0,
            heights: vec![],
            sections: vec![],
            section_start: 0,
            keeps: vec![],
        };
        self.write_sheet(&mut w)?;
        let last_row = w.row.saturating_sub(1);
        let scale = print_scale();
        let breaks = w.page_breaks(scale);
        let ws = w.ws;
        ws.set_landscape();
        ws.set_paper_size(print::A4);
        let [l, r, t, b, h, f] = print::MARGINS;
        ws.set_margins(l, r, t, b, h, f);
        ws.set_print_scale(scale);
        ws.set_page_breaks(&breaks).map_err(xlsx_err)?;
        ws.set_print_area(0, 0, last_row, COLUMNS - 1)
            .map_err(xlsx_err)?;
        ws.set_header(print::header(REPORT_SHEET, &self.period(), &self.scope));
        ws.set_footer(print::FOOTER);
        book.save_to_buffer().map_err(xlsx_err)
    }

    fn write_sheet(&self, w: &mut Writer) -> Result<()> {
        let title = self.title();
        let f_title = w.f.title.clone();
        let f_sub = w.f.sub.clone();
        let f_text = w.f.text.clone();
        let f_note = w.f.note.clone();
        w.line(&title, &f_title, TITLE_PT)?;
        w.line(
            &format!(
                "统计范围：{} · 统计期间：{} · 生成日期：{}",
                self.scope,
                self.period(),
                self.generated_on
            ),
            &f_sub,
            ROW_PT,
        )?;
        w.height(ROW_PT / 2.0)?;

        w.start_section("一、总体情况")?;
        for s in self.sentences() {
            w.line(&s, &f_text, ROW_PT)?;
        }
        w.end_section()?;

        self.comparison(w)?;
        self.months(w)?;
        self.opinions(w)?;
        self.groups_table(w)?;
        self.six_ones_table(w)?;
        self.notable_table(w)?;
        self.idle_table(w)?;
        w.line(
            "本通报由三进工作台根据已同步的记录生成，统计口径与《三进工作台账》相同；可在 Excel 中直接修改文字和数字，图表随表格中的数字更新。",
            &f_note,
            ROW_PT,
        )?;
        Ok(())
    }

    fn comparison(&self, w: &mut Writer) -> Result<()> {
        w.start_section(&format!(
            "二、主要数据（与{}比较）",
            self.previous_quarter.zh()
        ))?;
        w.row(
            &[
                (C::Text("项目"), 1),
                (C::Text("本季度"), 2),
                (C::Text("上季度"), 2),
                (C::Text("增减"), 2),
            ],
            true,
        )?;
        for ((what, now), (_, before)) in
            self.current.lines().into_iter().zip(self.previous.lines())
        {
            let cell = |v: Value| match v {
                Value::Count(n) => C::Int(n),
                Value::Percent(p) => C::Pct(p),
            };
            w.row(
                &[
                    (C::Text(what), 1),
                    (cell(now), 2),
                    (cell(before), 2),
                    (C::Diff(now.change(before)), 2),
                ],
                false,
            )?;
        }
        w.end_section()
    }

    fn months(&self, w: &mut Writer) -> Result<()> {
        w.start_section("三、各月活动情况（按活动形式）")?;
        let titles = self.month_titles();
        let head = w.row(
            &[
                (C::Text("活动形式"), 1),
                (C::Text(&titles[0]), 1),
                (C::Text(&titles[1]), 1),
                (C::Text(&titles[2]), 1),
                (C::Text("合计"), 1),
            ],
            true,
        )?;
        let mut rows = vec![];
        for (ty, counts) in &self.by_month {
            rows.push(w.row(
                &[
                    (C::Text(ty.zh()), 1),
                    (C::Int(counts[0]), 1),
                    (C::Int(counts[1]), 1),
                    (C::Int(counts[2]), 1),
                    (C::Int(counts.iter().sum()), 1),
                ],
                false,
            )?);
        }
        let t = self.month_totals();
        let total = w.row(
            &[
                (C::Text("合计"), 1),
                (C::Int(t[0]), 1),
                (C::Int(t[1]), 1),
                (C::Int(t[2]), 1),
                (C::Int(t.iter().sum()), 1),
            ],
            false,
        )?;
        let mut chart = Chart::new(ChartType::ColumnStacked);
        chart.title().set_name("各月活动次数（按活动形式）");
        // One series per activity type; with no visit at all, the monthly totals.
        let series = if rows.is_empty() { vec![total] } else { rows };
        for r in series {
            chart
                .add_series()
                .set_name(range(r, 0, r, 0))
                .set_categories(range(head, 1, head, 3))
                .set_values(range(r, 1, r, 3));
        }
        chart.legend().set_position(ChartLegendPosition::Bottom);
        chart.y_axis().set_name("次");
        // Beside the table (columns F–K), as tall as it or taller.
        let table_px = (w.heights[head as usize..].iter().sum::<f64>() / 0.75) as u32;
        w.chart_beside(&mut chart, head, 5, table_px.max(CHART_HEIGHT_PX + 60))?;
        w.end_section()
    }

    fn opinions(&self, w: &mut Writer) -> Result<()> {
        w.start_section("四、社情民意办理情况")?;
        let kinds: Vec<String> = self
            .by_kind
            .iter()
            .map(|(k, n)| format!("{} {n} 条", k.zh()))
            .collect();
        let f_text = w.f.text.clone();
        w.line(
            &format!("按类别：{}。下表为各条目前的办理状态。", kinds.join("、")),
            &f_text,
            ROW_PT,
        )?;
        w.row(
            &[
                (C::Text("办理状态"), 1),
                (C::Text("条数"), 1),
                (C::Text("占比（%）"), 1),
            ],
            true,
        )?;
        let mut first = None;
        let mut last = 0;
        for (state, n) in &self.by_state {
            let r = w.row(
                &[
                    (C::Text(state.zh()), 1),
                    (C::Int(*n), 1),
                    (C::Pct(percent(*n, self.current.opinions)), 1),
                ],
                false,
            )?;
            first.get_or_insert(r);
            last = r;
        }
        w.row(
            &[
                (C::Text("合计"), 1),
                (C::Int(self.current.opinions), 1),
                (
                    C::Pct(percent(self.current.opinions, self.current.opinions)),
                    1,
                ),
            ],
            false,
        )?;
        let first = first.expect("an opinion has states");
        let mut chart = Chart::new(ChartType::Column);
        chart.title().set_name("社情民意办理状态（条）");
        chart
            .add_series()
            .set_name(range(first - 1, 1, first - 1, 1))
            .set_categories(range(first, 0, last, 0))
            .set_values(range(first, 1, last, 1))
            .set_data_label(ChartDataLabel::new().show_value());
        chart.legend().set_hidden();
        // Beside the table (columns E–K).
        w.chart_beside(&mut chart, first - 1, 4, CHART_HEIGHT_PX)?;
        w.end_section()
    }

    fn groups_table(&self, w: &mut Writer) -> Result<()> {
        w.start_section("五、各活动组开展情况（按活动次数排序）")?;
        w.row(
            &[
                (C::Text("活动组"), 1),
                (C::Text("排名"), 1),
                (C::Text("组长"), 1),
                (C::Text("活动（次）"), 1),
                (C::Text("委员（人）"), 1),
                (C::Text("参与委员（人）"), 1),
                (C::Text("参与率（%）"), 1),
                (C::Text("社情民意（条）"), 1),
                (C::Text("帮扶（次）"), 1),
                (C::Text("计划（项）"), 1),
                (C::Text("已落实（项）"), 1),
            ],
            true,
        )?;
        let mut rows = vec![];
        for g in &self.groups {
            rows.push(w.row(
                &[
                    (C::Text(&g.name), 1),
                    (C::Int(g.rank as i64), 1),
                    (C::Text(&g.leader), 1),
                    (C::Int(g.visits), 1),
                    (C::Int(g.members), 1),
                    (C::Int(g.members_active), 1),
                    (C::Pct(g.participation()), 1),
                    (C::Int(g.opinions), 1),
                    (C::Int(g.assistance_entries), 1),
                    (C::Int(g.planned), 1),
                    (C::Int(g.plan_done), 1),
                ],
                false,
            )?);
        }
        if let (Some(&first), Some(&last)) = (rows.first(), rows.last()) {
            let mut chart = Chart::new(ChartType::Bar);
            chart.title().set_name("各活动组活动次数");
            chart
                .add_series()
                .set_name(range(first - 1, 3, first - 1, 3))
                .set_categories(range(first, 0, last, 0))
                .set_values(range(first, 3, last, 3))
                .set_data_label(ChartDataLabel::new().show_value());
            chart.legend().set_hidden();
            // The first ranked at the top (a bar chart's categories are on its y axis), every
            // group named.
            chart
                .y_axis()
                .set_reverse()
                .set_font(ChartFont::new().set_size(8));
            // Never taller than a page holds.
            let height = (rows.len() as u32 * 24 + 80).clamp(CHART_HEIGHT_PX - 60, 700);
            w.chart(&mut chart, height)?;
        }
        w.end_section()
    }

    fn six_ones_table(&self, w: &mut Writer) -> Result<()> {
        w.start_section(&format!(
            "六、「六个一」完成情况（{} 年 1 月 1 日至 {}）",
            self.quarter.year, self.to
        ))?;
        let mut head: Vec<(C, u16)> = vec![(C::Text("活动组"), 1)];
        head.extend(ActivityType::SIX_ONES.iter().map(|t| (C::Text(t.zh()), 1)));
        head.push((C::Text("完成项数"), 1));
        head.push((C::Text("未完成项目"), 3));
        w.row(&head, true)?;
        for s in &self.six_ones {
            let missing: Vec<&str> = s.missing().iter().map(|t| t.zh()).collect();
            let missing = if missing.is_empty() {
                "已全部完成".to_string()
            } else {
                missing.join("、")
            };
            let mut cells: Vec<(C, u16)> = vec![(C::Text(&s.name), 1)];
            cells.extend(s.counts.iter().map(|n| (C::Int(*n), 1)));
            cells.push((C::Int(s.done() as i64), 1));
            cells.push((C::Text(&missing), 3));
            w.row(&cells, false)?;
        }
        w.end_section()
    }

    fn notable_table(&self, w: &mut Writer) -> Result<()> {
        w.start_section("七、值得关注的社情民意")?;
        if self.notable.is_empty() {
            let f_text = w.f.text.clone();
            w.line("本季度没有紧急、特急或已反馈的社情民意。", &f_text, ROW_PT)?;
            return w.end_section();
        }
        w.row(
            &[
                (C::Text("活动组"), 1),
                (C::Text("日期"), 1),
                (C::Text("紧急程度"), 1),
                (C::Text("办理状态"), 1),
                (C::Text("主题"), 2),
                (C::Text("内容"), 5),
            ],
            true,
        )?;
        for n in &self.notable {
            let date = n.date.to_string();
            w.row(
                &[
                    (C::Text(&n.group), 1),
                    (C::Text(&date), 1),
                    (C::Text(n.urgency.zh()), 1),
                    (C::Text(n.state.zh()), 1),
                    (C::Text(&n.topic), 2),
                    (C::Text(&n.text), 5),
                ],
                false,
            )?;
        }
        w.end_section()
    }

    fn idle_table(&self, w: &mut Writer) -> Result<()> {
        w.start_section("八、需督促的活动组和委员")?;
        let f_text = w.f.text.clone();
        let groups = if self.idle_groups.is_empty() {
            "本季度各活动组均有活动记录。".to_string()
        } else {
            format!(
                "本季度没有活动记录的活动组（{} 个）：{}。",
                self.idle_groups.len(),
                self.idle_groups.join("、")
            )
        };
        w.line(&groups, &f_text, ROW_PT)?;
        if self.idle_members.is_empty() {
            w.line("本季度每位委员都有履职记录。", &f_text, ROW_PT)?;
            return w.end_section();
        }
        w.row(
            &[
                (C::Text("活动组"), 1),
                (C::Text("组长"), 1),
                (C::Text("未参与（人）"), 1),
                (C::Text("未参加活动、未记录社情民意、无帮扶记录的委员"), 8),
            ],
            true,
        )?;
        for g in &self.idle_members {
            let names = g.members.join("、");
            w.row(
                &[
                    (C::Text(&g.group), 1),
                    (C::Text(&g.leader), 1),
                    (C::Int(g.members.len() as i64), 1),
                    (C::Text(&names), 8),
                ],
                false,
            )?;
        }
        w.end_section()
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDateTime;
    use rusqlite::params;
    use sanjin_core::domain::{
        AssistanceEntry, Chapter, ChapterLevel, ContactPoint, Group, Household, Member, Opinion,
        PlanItem, Visit,
    };

    use super::*;
    use crate::project::Ev;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn at(day: NaiveDate) -> NaiveDateTime {
        day.and_hms_opt(9, 0, 0).unwrap()
    }

    fn record(id: &str, by: &str, data: RecordData) -> Projected {
        Projected {
            id: id.into(),
            created_by: by.into(),
            created_at_ms: 1_735_700_000_000,
            status: State::Active,
            deleted: false,
            data,
            conflicts: vec![],
            events: vec![],
            last_ms: 1_735_700_000_000,
        }
    }

    /// A row of the projection as a refresh writes it (the day each kind is filed under).
    fn put(conn: &Connection, p: &Projected) {
        let date = match &p.data {
            RecordData::Visit(v) => Some(v.start.date().to_string()),
            RecordData::Opinion(o) => Some(o.recorded_on.to_string()),
            RecordData::Plan(i) => Some(format!("{:04}-{:02}-01", i.year, i.month)),
            _ => None,
        };
        conn.execute(
            "INSERT INTO rows (id, kind, heads, date, sort, deleted, last_ms, body)
             VALUES (?1, ?2, x'00', ?3, '', ?4, ?5, ?6)",
            params![
                p.id,
                p.data.kind().code(),
                date,
                p.deleted,
                p.last_ms,
                serde_json::to_string(p).unwrap()
            ],
        )
        .unwrap();
    }

    fn visit(
        id: &str,
        group: &str,
        cp: &str,
        target: TargetKind,
        ty: ActivityType,
        day: NaiveDate,
        people: &[&str],
    ) -> Projected {
        let mut p = record(
            id,
            people[0],
            RecordData::Visit(Visit {
                target_kind: target,
                contact_point: cp.into(),
                group: group.into(),
                activity_type: ty,
                start: at(day),
                end: at(day) + chrono::Duration::hours(2),
                title: format!("{id} 活动"),
                summary: String::new(),
                participants: people.iter().map(|s| s.to_string()).collect(),
                helpers: vec![],
                gps: None,
                photos: vec![],
            }),
        );
        p.status = State::Submitted;
        p
    }

    fn opinion(
        id: &str,
        by: &str,
        group: &str,
        urgency: Urgency,
        day: NaiveDate,
        steps: &[EventType],
    ) -> Projected {
        let mut p = record(
            id,
            by,
            RecordData::Opinion(Opinion {
                topic: format!("{id} 主题"),
                opinion_kind: OpinionKind::Opinion,
                text: format!("{id} 的内容"),
                source: None,
                urgency,
                contact_point: "cp1".into(),
                group: group.into(),
                recorded_on: day,
                visit: None,
            }),
        );
        p.events = steps
            .iter()
            .enumerate()
            .map(|(i, t)| Ev {
                t: *t,
                by: "office-01".into(),
                at_ms: 1_745_000_000_000 + i as i64,
                applied: true,
                to: None,
            })
            .collect();
        // The current state as the document folds it.
        p.status = opinion_path_state(&p);
        p
    }

    /// The state the events end in (what `RecordDoc::view` gives as the status).
    fn opinion_path_state(p: &Projected) -> State {
        let mut state = State::Recorded;
        let mut before = vec![];
        for e in &p.events {
            if e.t == EventType::Undo {
                state = before.pop().unwrap();
            } else {
                before.push(state);
                state = workflow::transition(RecordKind::Opinion, e.t).unwrap().1;
            }
        }
        state
    }

    fn household(id: &str, group: &str, paired: &str, log: &[(NaiveDate, &str)]) -> Projected {
        record(
            id,
            paired,
            RecordData::Household(Household {
                head_name: format!("{id} 户主"),
                contact_point: "cp1".into(),
                group: group.into(),
                address: String::new(),
                size: 3,
                situation: String::new(),
                assisting_members: vec![paired.into()],
                log: log
                    .iter()
                    .map(|(date, m)| AssistanceEntry {
                        date: *date,
                        member: m.to_string(),
                        action: "走访慰问".into(),
                        amount_yuan: None,
                    })
                    .collect(),
            }),
        )
    }

    fn plan(id: &str, group: &str, month: i64, ty: ActivityType, owner: &str) -> Projected {
        record(
            id,
            "office-01",
            RecordData::Plan(PlanItem {
                year: 2025,
                quarter: (month - 1) / 3 + 1,
                month,
                owner: owner.into(),
                group: group.into(),
                activity_type: ty,
                title: format!("{id} 计划"),
                contact_point: None,
            }),
        )
    }

    /// Three groups, five members, and a handful of records around the second quarter of 2025.
    fn small() -> (tempfile::TempDir, Connection) {
        use ActivityType as A;
        use TargetKind as T;
        let tmp = tempfile::tempdir().unwrap();
        let conn = project::open(&tmp.path().join("ledger.sqlite")).unwrap();
        let rows = vec![
            record(
                "c1",
                "office-01",
                RecordData::Chapter(Chapter {
                    name: "孝感市政协".into(),
                    level: ChapterLevel::City,
                    parent: None,
                }),
            ),
            group("g1", "第一组", "m1", "cp1"),
            group("g2", "第二组", "m3", "cp2"),
            group("g3", "第三组", "m5", "cp3"),
            contact_point("cp1", "新华社区", T::Community),
            contact_point("cp2", "东风村", T::Village),
            contact_point("cp3", "高新园区", T::Park),
            member("m1", "张一", "g1"),
            member("m2", "李二", "g1"),
            member("m3", "王三", "g2"),
            member("m4", "赵四", "g2"),
            member("m5", "陈五", "g3"),
            // Q1: one visit, one note.
            visit(
                "v0",
                "g1",
                "cp1",
                T::Community,
                A::ContactWindowUnit,
                d(2025, 2, 1),
                &["m1"],
            ),
            opinion(
                "o0",
                "m1",
                "g1",
                Urgency::Normal,
                d(2025, 3, 3),
                &[EventType::Submit],
            ),
            // Q2.
            visit(
                "v1",
                "g1",
                "cp1",
                T::Community,
                A::ResearchSymposium,
                d(2025, 4, 10),
                &["m1", "m2"],
            ),
            visit(
                "v2",
                "g1",
                "cp1",
                T::Community,
                A::Lecture,
                d(2025, 5, 5),
                &["m1"],
            ),
            visit(
                "v3",
                "g2",
                "cp2",
                T::Village,
                A::ResearchSymposium,
                d(2025, 6, 30),
                &["m3"],
            ),
            {
                let mut gone = visit(
                    "v-deleted",
                    "g3",
                    "cp3",
                    T::Park,
                    A::Consultation,
                    d(2025, 5, 6),
                    &["m5"],
                );
                gone.deleted = true;
                gone
            },
            // Q3: not this quarter.
            visit(
                "v4",
                "g2",
                "cp2",
                T::Village,
                A::Consultation,
                d(2025, 7, 1),
                &["m4"],
            ),
            opinion(
                "o1",
                "m2",
                "g1",
                Urgency::Urgent,
                d(2025, 4, 20),
                &[
                    EventType::Submit,
                    EventType::Accept,
                    EventType::Forward,
                    EventType::Feedback,
                ],
            ),
            opinion(
                "o2",
                "m4",
                "g2",
                Urgency::Normal,
                d(2025, 5, 2),
                &[
                    EventType::Submit,
                    EventType::Accept,
                    EventType::Forward,
                    EventType::Undo,
                ],
            ),
            opinion("o3", "m3", "g2", Urgency::Normal, d(2025, 6, 1), &[]),
            opinion(
                "o4",
                "m2",
                "g1",
                Urgency::VeryUrgent,
                d(2025, 6, 15),
                &[EventType::Submit, EventType::Return],
            ),
            household(
                "h1",
                "g1",
                "m2",
                &[
                    (d(2025, 1, 5), "m2"),
                    (d(2025, 5, 10), "m2"),
                    (d(2025, 6, 11), "m2"),
                ],
            ),
            household("h2", "g2", "m4", &[]),
            household("h3", "g3", "m5", &[(d(2025, 1, 20), "m5")]),
            plan("p1", "g1", 4, A::ResearchSymposium, "m1"),
            plan("p2", "g1", 4, A::ResearchSymposium, "m2"),
            plan("p3", "g2", 5, A::Consultation, "m3"),
            plan("p4", "g3", 7, A::Consultation, "m5"),
        ];
        for p in &rows {
            put(&conn, p);
        }
        (tmp, conn)
    }

    fn group(id: &str, name: &str, leader: &str, cp: &str) -> Projected {
        record(
            id,
            "office-01",
            RecordData::Group(Group {
                name: name.into(),
                chapter: "c1".into(),
                committee: None,
                leader: leader.into(),
                contact_points: vec![cp.into()],
                legal_advisory: false,
            }),
        )
    }

    fn contact_point(id: &str, name: &str, t: TargetKind) -> Projected {
        record(
            id,
            "office-01",
            RecordData::ContactPoint(ContactPoint {
                name: name.into(),
                target_kind: t,
                chapter: "c1".into(),
                address: String::new(),
                gps: None,
            }),
        )
    }

    fn member(id: &str, name: &str, group: &str) -> Projected {
        record(
            id,
            "office-01",
            RecordData::Member(Member {
                name: name.into(),
                chapter: "c1".into(),
                committee: None,
                group: group.into(),
                sector: String::new(),
            }),
        )
    }

    fn q2() -> Quarter {
        Quarter::new(2025, 2).unwrap()
    }

    #[test]
    fn issue13_quarters_parse_and_step_back() {
        for s in ["2025Q2", "2025q2", "2025-Q2", " 2025年第2季度 "] {
            assert_eq!(Quarter::parse(s).unwrap(), q2(), "{s}");
        }
        for bad in ["2025", "2025Q5", "2025Q0", "Q2", "1999Q1", "二〇二五Q1"] {
            let e = Quarter::parse(bad).unwrap_err().zh();
            assert!(e.contains("季度") || e.contains("年份"), "{bad}: {e}");
        }
        let q = q2();
        assert_eq!(
            (q.first_day(), q.last_day()),
            (d(2025, 4, 1), d(2025, 6, 30))
        );
        assert_eq!(q.months(), [4, 5, 6]);
        assert_eq!(q.previous(), Quarter::new(2025, 1).unwrap());
        assert_eq!(
            Quarter::new(2025, 1).unwrap().previous(),
            Quarter::new(2024, 4).unwrap()
        );
        assert_eq!(Quarter::new(2024, 4).unwrap().last_day(), d(2024, 12, 31));
        assert_eq!(Quarter::of(d(2025, 9, 30)), Quarter::new(2025, 3).unwrap());
        assert_eq!(q.zh(), "2025年第2季度");
        assert_eq!(q.to_string(), "2025Q2");
    }

    /// Issue 13: every figure of a hand-built quarter, counted by hand.
    #[test]
    fn issue13_report_counts_a_small_quarter_exactly() {
        let (_tmp, conn) = small();
        let r = build(&conn, &Slice::default(), q2(), d(2025, 7, 2)).unwrap();
        assert_eq!(r.title(), "「三进」活动季度通报（2025年第2季度）");
        assert_eq!(r.scope, "全部");
        assert_eq!(r.period(), "2025-04-01 至 2025-06-30");
        let c = &r.current;
        let expected = Figures {
            // v1, v2, v3: the deleted visit and July's are left out.
            visits: 3,
            six_visits: 2,
            by_target: [2, 0, 1],
            participations: 4,
            members: 5,
            // m1, m2, m3 by visits; m4 by a note; m5 nothing.
            members_active: 4,
            groups: 3,
            groups_active: 2,
            opinions: 4,
            urgent: 2,
            submitted: 3,
            // o1 went all the way; o2's forward was undone (accepted, not forwarded).
            accepted: 2,
            forwarded: 1,
            handled: 0,
            feedback: 1,
            returned: 1,
            // h1 twice in the quarter; h2 never assisted; h3 only in January.
            households_assisted: 1,
            assistance_entries: 2,
            households_waiting: 1,
            // v1 (April symposium of g1, m1 and m2 taking part) carries out p1 (m1's) and p2
            // (m2's): one visit carries out one item of each owner taking part, as on the plan
            // page. p3 (g2, May consultation) has no visit. v2 (a lecture) and v3 (a June
            // symposium) carried out nothing: beyond the plan.
            planned: 3,
            plan_done: 2,
            plan_visits: 1,
            unplanned: 2,
            six_complete: 0,
        };
        assert_eq!(c, &expected);
        assert_eq!(c.participation(), Some(80.0));
        assert_eq!(c.plan_rate(), Some(66.7));
        let p = &r.previous;
        assert_eq!(r.previous_quarter, Quarter::new(2025, 1).unwrap());
        assert_eq!(
            (p.visits, p.six_visits, p.opinions, p.submitted),
            (1, 1, 1, 1)
        );
        assert_eq!(
            (
                p.households_assisted,
                p.assistance_entries,
                p.members_active
            ),
            (2, 2, 3),
            "h1 and h3 in January; m1, m2 and m5 took part"
        );
        assert_eq!(p.participation(), Some(60.0));

        assert_eq!(
            r.by_month,
            vec![
                (ActivityType::ResearchSymposium, [1, 0, 1]),
                (ActivityType::Lecture, [0, 1, 0]),
            ]
        );
        assert_eq!(r.month_totals(), [1, 1, 1]);
        assert_eq!(r.month_titles(), ["4月", "5月", "6月"]);
        let states: Vec<(&str, i64)> = r.by_state.iter().map(|(s, n)| (s.zh(), *n)).collect();
        assert_eq!(states.len(), 7);
        assert_eq!(states.iter().map(|(_, n)| n).sum::<i64>(), 4);
        for (state, n) in [
            (State::Recorded, 1),
            (State::Returned, 1),
            (State::Accepted, 1),
            (State::FeedbackGiven, 1),
            (State::Forwarded, 0),
        ] {
            assert_eq!(
                r.by_state.iter().find(|(s, _)| *s == state).unwrap().1,
                n,
                "{state:?}"
            );
        }
        assert_eq!(r.by_kind[0], (OpinionKind::Opinion, 4));

        let ranked: Vec<(&str, usize, i64, i64, i64)> = r
            .groups
            .iter()
            .map(|g| (g.id.as_str(), g.rank, g.visits, g.members, g.members_active))
            .collect();
        assert_eq!(
            ranked,
            [("g1", 1, 2, 2, 2), ("g2", 2, 1, 2, 2), ("g3", 3, 0, 1, 0)]
        );
        let g1 = &r.groups[0];
        assert_eq!(
            (
                g1.leader.as_str(),
                g1.opinions,
                g1.assistance_entries,
                g1.planned,
                g1.plan_done
            ),
            ("张一", 2, 2, 2, 2)
        );
        assert_eq!((r.groups[1].planned, r.groups[1].plan_done), (1, 0));
        assert_eq!(r.groups[1].participation(), Some(100.0));

        let six: Vec<(&str, [i64; 6])> = r
            .six_ones
            .iter()
            .map(|s| (s.id.as_str(), s.counts))
            .collect();
        assert_eq!(
            six,
            [
                ("g1", [1, 1, 0, 0, 0, 0]),
                ("g2", [1, 0, 0, 0, 0, 0]),
                ("g3", [0; 6])
            ],
            "year to date: February's 联系窗口单位 counts"
        );
        assert_eq!(r.six_ones[0].done(), 2);
        assert_eq!(r.six_ones[0].missing().len(), 4);

        let notable: Vec<(&str, Urgency, State)> = r
            .notable
            .iter()
            .map(|n| (n.id.as_str(), n.urgency, n.state))
            .collect();
        assert_eq!(
            notable,
            [
                ("o4", Urgency::VeryUrgent, State::Returned),
                ("o1", Urgency::Urgent, State::FeedbackGiven)
            ]
        );
        assert_eq!(r.notable[1].group, "第一组");
        assert_eq!(r.idle_groups, ["第三组"]);
        assert_eq!(
            r.idle_members,
            [IdleMembers {
                group: "第三组".into(),
                leader: "陈五".into(),
                members: vec!["陈五".into()],
            }]
        );

        let text = r.sentences().join("\n");
        for want in [
            "2025年第2季度，各委员活动组共开展「三进」活动 3 次（进社区 2 次、进园区 0 次、进农村 1 次），其中「六个一」活动 2 次，比上季度增加 2 次；委员参加活动 4 人次。",
            "3 个活动组中有 2 个开展了活动；5 名委员中有 4 名参加活动、记录社情民意或开展结对帮扶，参与率 80.0%（上季度 60.0%）。",
            "收集社情民意 4 条（其中紧急、特急 2 条），比上季度增加 3 条；已报送 3 条，已采纳 2 条，已转办 1 条，已办理 0 条，已向委员反馈 1 条，退回 1 条。",
            "结对帮扶困难户 1 户，帮扶 2 次；另有 1 户结对困难户尚无帮扶记录。",
            "年度计划本季度安排活动 3 项，已落实 2 项，落实率 66.7%；未落实任何计划项的计划外活动 2 次。",
            plans::RULE_ZH,
            "截至本季度末，3 个活动组中有 0 个已完成全部「六个一」。",
            "本季度有 1 个活动组没有活动记录（第三组），1 名委员没有参加活动",
        ] {
            assert!(text.contains(want), "{want}\n{text}");
        }
    }

    /// A leader's scope: only the group's records, members and plan.
    #[test]
    fn issue13_report_of_one_group() {
        let (_tmp, conn) = small();
        let slice = Slice {
            group: Some("g2".into()),
            ..Slice::default()
        };
        let r = build(&conn, &slice, q2(), d(2025, 7, 2)).unwrap();
        assert_eq!(r.scope, "活动组：第二组");
        let c = &r.current;
        assert_eq!(
            (
                c.visits,
                c.members,
                c.members_active,
                c.groups,
                c.groups_active
            ),
            (1, 2, 2, 1, 1)
        );
        assert_eq!((c.opinions, c.accepted, c.forwarded), (2, 1, 0));
        assert_eq!(
            (
                c.households_assisted,
                c.households_waiting,
                c.assistance_entries
            ),
            (0, 1, 0)
        );
        assert_eq!((c.planned, c.plan_done, c.unplanned), (1, 0, 1));
        assert_eq!(r.groups.len(), 1);
        assert!(r.idle_members.is_empty() && r.idle_groups.is_empty());
        assert!(
            r.sentences()
                .join("")
                .contains("统计范围内（活动组：第二组）")
        );
    }

    /// The print layout: every column on the page's width, breaks only at a section's start.
    #[test]
    fn issue13_report_prints_fitted_and_breaks_between_sections() {
        let scale = print_scale();
        assert!((print::MIN_SCALE..=100).contains(&scale), "{scale}");
        let (_tmp, conn) = small();
        let r = build(&conn, &Slice::default(), q2(), d(2025, 7, 2)).unwrap();
        let bytes = r.xlsx().unwrap();
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut sheet = String::new();
        std::io::Read::read_to_string(
            &mut zip.by_name("xl/worksheets/sheet1.xml").unwrap(),
            &mut sheet,
        )
        .unwrap();
        assert!(sheet.contains(&format!(r#"scale="{scale}""#)), "{sheet}");
        assert!(sheet.contains(r#"orientation="landscape""#));
        assert!(sheet.contains(r#"paperSize="9""#));
        assert!(
            sheet.contains("<rowBreaks"),
            "the report takes several pages"
        );
        for i in 1..=3 {
            assert!(
                zip.by_name(&format!("xl/charts/chart{i}.xml")).is_ok(),
                "chart {i}"
            );
        }
    }
}
