//! The member's yearly record (履职档案, issue 13): what one member did in one calendar year —
//! the visits they took part in, the opinion notes they recorded and where each stands (the
//! unit it went to, the handling and the feedback, read from its document's workflow), the
//! households they are paired with or assisted, the plan items they own — and the year's
//! figures, counted as the participation ledger (委员履职统计) counts them. A plan item is carried
//! out (已落实) by the plan page's rule ([`crate::plans::match_rows`], [`crate::plans::RULE_ZH`]):
//! the owner's figures here and in the assessment table equal the plan page's for the member.
//!
//! Access as everywhere: office staff see any member, a leader the members of the group, a
//! member none.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use sanjin_core::domain::{ActivityType, RecordData};
use sanjin_core::workflow::{self, State};

use sanjin_store::server::ServerStorage;

use crate::plans::match_rows;
use crate::{Error, Ledger, Result, Viewer, project};

/// One visit the member took part in.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ActivityLine {
    pub id: String,
    pub date: NaiveDate,
    pub title: String,
    pub activity_type: ActivityType,
    pub group: String,
    pub contact_point: String,
    /// The member's role, in Chinese: 记录人 (recorded it and took part) or 参加.
    pub role: &'static str,
    pub state: State,
}

/// One opinion note the member recorded, and its outcome.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OpinionLine {
    pub id: String,
    pub date: NaiveDate,
    pub topic: String,
    pub text: String,
    pub state: State,
    /// The unit it was forwarded to (its name when the directory knows it), and the due day.
    pub unit: Option<String>,
    pub due: Option<NaiveDate>,
    pub handling: Option<String>,
    pub feedback: Option<String>,
    /// Why it was returned, when it was.
    pub returned: Option<String>,
}

/// One household the member is paired with or assisted in the year.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HouseholdLine {
    pub id: String,
    pub head_name: String,
    pub contact_point: String,
    /// The member is one of the household's paired members (结对委员).
    pub paired: bool,
    /// The member's assistance entries of the year: (date, action, amount).
    pub entries: Vec<(NaiveDate, String, Option<f64>)>,
}

/// One plan item of the year the member owns.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PlanLine {
    pub id: String,
    pub quarter: i64,
    pub month: i64,
    pub activity_type: ActivityType,
    pub title: String,
    /// The item was carried out (已落实) by the plan page's rule ([`crate::plans::RULE_ZH`]).
    pub done: bool,
    /// The visit that carried it out, if one did.
    pub visit: Option<String>,
}

/// The year's figures (the participation ledger's, plus the plan's and the outcomes').
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecordTotals {
    pub visits: usize,
    pub six_visits: usize,
    /// The "六个一" types the member's visits covered, in [`ActivityType::SIX_ONES`] order.
    pub six: Vec<ActivityType>,
    pub opinions: usize,
    /// Opinion notes that have been submitted (whatever became of them).
    pub submitted: usize,
    /// Opinion notes with feedback given.
    pub feedback: usize,
    /// Assistance entries the member made in the year.
    pub assistance: usize,
    /// Households with at least one of those entries.
    pub households_assisted: usize,
    pub plan_items: usize,
    pub plan_done: usize,
}

/// The member's yearly record.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MemberRecord {
    pub member: String,
    pub name: String,
    pub chapter: String,
    pub committee: Option<String>,
    pub group: String,
    /// The group's id.
    pub group_id: String,
    pub sector: String,
    pub year: i32,
    pub activities: Vec<ActivityLine>,
    pub opinions: Vec<OpinionLine>,
    pub households: Vec<HouseholdLine>,
    pub plan: Vec<PlanLine>,
    pub totals: RecordTotals,
}

impl Ledger {
    /// Refreshes the projection and gathers `member`'s record of `year` as `viewer` may see it:
    /// a leader only a member of the group, a member not at all; an unknown member is
    /// [`Error::Invalid`].
    pub fn member_record(
        &mut self,
        viewer: &Viewer,
        member: &str,
        year: i32,
    ) -> Result<MemberRecord> {
        if matches!(viewer, Viewer::Member) {
            return Err(Error::Forbidden(
                "委员账户不能查看履职档案；履职档案由机关工作人员和活动组组长使用".into(),
            ));
        }
        if !(2000..=2100).contains(&year) {
            return Err(Error::Invalid(format!(
                "年份 {year} 不对，请输入 2000 到 2100 之间的年份，例如 2025"
            )));
        }
        self.refresh()?;
        let dir = self.directory()?;
        let Some(m) = dir.members.get(member) else {
            return Err(Error::Invalid(format!(
                "没有编号为 {member} 的委员，请从委员名单或记录页进入"
            )));
        };
        if let Viewer::Chapter { chapter, groups } = viewer
            && !groups.contains(&m.group)
        {
            return Err(Error::Forbidden(format!(
                "{}（{member}）属于其他政协组织（{}）：只能查看本政协组织（{}）委员的履职档案",
                m.name,
                dir.chapter_name(&m.chapter),
                dir.chapter_name(chapter)
            )));
        }
        if let Viewer::Leader { group } = viewer
            && &m.group != group
        {
            return Err(Error::Forbidden(format!(
                "组长只能查看本组（{}）委员的履职档案；{}（{member}）属于{}",
                dir.group_name(group),
                m.name,
                dir.group_name(&m.group)
            )));
        }
        let from = NaiveDate::from_ymd_opt(year, 1, 1).expect("a valid year");
        let to = NaiveDate::from_ymd_opt(year, 12, 31).expect("a valid year");
        let (from_s, to_s) = (from.to_string(), to.to_string());
        let range = Some((from_s.as_str(), to_s.as_str()));
        let mut totals = RecordTotals::default();
        let mut six: BTreeSet<ActivityType> = BTreeSet::new();
        // The member's visits: those that can carry out the member's plan items.
        let mut took_part: Vec<project::Projected> = Vec::new();

        let mut activities = Vec::new();
        project::each(&self.conn, "visit", range, |p| {
            let RecordData::Visit(v) = &p.data else {
                return Ok(());
            };
            if !v.participants.iter().any(|x| x == member) {
                return Ok(());
            }
            totals.visits += 1;
            if v.activity_type.is_six_ones() {
                totals.six_visits += 1;
                six.insert(v.activity_type);
            }
            activities.push(ActivityLine {
                id: p.id.clone(),
                date: v.start.date(),
                title: v.title.clone(),
                activity_type: v.activity_type,
                group: dir.group_name(&v.group).to_string(),
                contact_point: dir.contact_point_name(&v.contact_point).to_string(),
                role: if p.created_by == member {
                    "记录人"
                } else {
                    "参加"
                },
                state: p.status,
            });
            took_part.push(p);
            Ok(())
        })?;
        totals.six = ActivityType::SIX_ONES
            .iter()
            .copied()
            .filter(|t| six.contains(t))
            .collect();

        let mut notes = Vec::new();
        project::each(&self.conn, "opinion", range, |p| {
            if p.created_by != member {
                return Ok(());
            }
            if let RecordData::Opinion(o) = &p.data {
                notes.push((p.id.clone(), o.clone(), p.status));
            }
            Ok(())
        })?;
        let names: BTreeMap<String, String> = self.store.names()?.into_iter().collect();
        let mut opinions = Vec::with_capacity(notes.len());
        for (id, o, state) in notes {
            // The outcome is in the document's events (notes, units), read from the store.
            let mut doc = self.store.load(&id)?;
            let view = doc.view()?;
            let outcome = workflow::outcome(&view.events);
            totals.opinions += 1;
            if state != State::Recorded {
                totals.submitted += 1;
            }
            if state == State::FeedbackGiven {
                totals.feedback += 1;
            }
            let note = |s: Option<workflow::StepNote>| s.map(|n| n.note.unwrap_or_default());
            opinions.push(OpinionLine {
                id,
                date: o.recorded_on,
                topic: o.topic,
                text: o.text,
                state,
                unit: outcome.assignment.as_ref().map(|a| {
                    names
                        .get(&a.unit)
                        .cloned()
                        .unwrap_or_else(|| a.unit.clone())
                }),
                due: outcome.assignment.as_ref().and_then(|a| a.due),
                handling: note(outcome.handling),
                feedback: note(outcome.feedback),
                returned: note(outcome.returned),
            });
        }

        let mut households = Vec::new();
        project::each(&self.conn, "household", None, |p| {
            let RecordData::Household(h) = &p.data else {
                return Ok(());
            };
            let paired = h.assisting_members.iter().any(|x| x == member);
            let mut entries: Vec<(NaiveDate, String, Option<f64>)> = h
                .log
                .iter()
                .filter(|e| e.member == member && e.date >= from && e.date <= to)
                .map(|e| (e.date, e.action.clone(), e.amount_yuan))
                .collect();
            if !paired && entries.is_empty() {
                return Ok(());
            }
            entries.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
            totals.assistance += entries.len();
            if !entries.is_empty() {
                totals.households_assisted += 1;
            }
            households.push(HouseholdLine {
                id: p.id.clone(),
                head_name: h.head_name.clone(),
                contact_point: dir.contact_point_name(&h.contact_point).to_string(),
                paired,
                entries,
            });
            Ok(())
        })?;

        let mut owned = Vec::new();
        project::each(&self.conn, "plan", range, |p| {
            if let RecordData::Plan(item) = &p.data
                && item.owner == member
                && item.year == year as i64
            {
                owned.push(p);
            }
            Ok(())
        })?;
        // Every item of the member's and every visit the member took part in: all the plan
        // page's matching looks at for these items.
        let matched = match_rows(
            &owned.iter().collect::<Vec<_>>(),
            &took_part.iter().collect::<Vec<_>>(),
        );
        let mut plan = Vec::with_capacity(owned.len());
        for (p, m) in owned.iter().zip(matched) {
            let RecordData::Plan(item) = &p.data else {
                continue;
            };
            totals.plan_items += 1;
            totals.plan_done += usize::from(m.is_some());
            plan.push(PlanLine {
                id: p.id.clone(),
                quarter: item.quarter,
                month: item.month,
                activity_type: item.activity_type,
                title: item.title.clone(),
                done: m.is_some(),
                visit: m.map(|v| took_part[v].id.clone()),
            });
        }
        plan.sort_by(|a, b| (a.month, &a.id).cmp(&(b.month, &b.id)));

        Ok(MemberRecord {
            member: member.to_string(),
            name: m.name.clone(),
            chapter: dir.chapter_name(&m.chapter).to_string(),
            committee: m
                .committee
                .as_deref()
                .map(|c| dir.committee_name(c).to_string()),
            group: dir.group_name(&m.group).to_string(),
            group_id: m.group.clone(),
            sector: m.sector.clone(),
            year,
            activities,
            opinions,
            households,
            plan,
            totals,
        })
    }
}

/// One row of the year's assessment table (履职考核表): a member and the year's figures.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AssessmentRow {
    pub member: String,
    pub name: String,
    pub group: String,
    pub sector: String,
    pub totals: RecordTotals,
}

/// The columns of the assessment table, as the workbook and the console print them.
pub const ASSESSMENT_COLUMNS: [&str; 13] = [
    "委员编号",
    "姓名",
    "活动组",
    "界别",
    "参加活动（次）",
    "其中六个一（次）",
    "六个一覆盖（项）",
    "记录社情民意（条）",
    "其中已报送（条）",
    "已反馈（条）",
    "帮扶困难户（户）",
    "帮扶记录（次）",
    "负责计划项（已落实/共）",
];

impl Ledger {
    /// Refreshes and counts the year's figures of every member `viewer` may see (staff: all, a
    /// leader: the group's), in directory order, one pass per kind of record — the figures
    /// [`Ledger::member_record`] gives each member.
    pub fn assessment(&mut self, viewer: &Viewer, year: i32) -> Result<Vec<AssessmentRow>> {
        let group = match viewer {
            Viewer::Member => {
                return Err(Error::Forbidden(
                    "委员账户不能查看履职考核表；考核表由机关工作人员和活动组组长使用".into(),
                ));
            }
            Viewer::Leader { .. } | Viewer::Chapter { .. } | Viewer::Office => viewer.groups(),
        };
        if !(2000..=2100).contains(&year) {
            return Err(Error::Invalid(format!(
                "年份 {year} 不对，请输入 2000 到 2100 之间的年份，例如 2025"
            )));
        }
        self.refresh()?;
        let dir = self.directory()?;
        let mut t: BTreeMap<&str, RecordTotals> = dir
            .members
            .iter()
            .filter(|(_, m)| group.as_ref().is_none_or(|g| g.contains(&m.group)))
            .map(|(id, _)| (id.as_str(), RecordTotals::default()))
            .collect();
        let from = NaiveDate::from_ymd_opt(year, 1, 1).expect("a valid year");
        let to = NaiveDate::from_ymd_opt(year, 12, 31).expect("a valid year");
        let (from_s, to_s) = (from.to_string(), to.to_string());
        let range = Some((from_s.as_str(), to_s.as_str()));
        let mut six: BTreeMap<String, BTreeSet<ActivityType>> = BTreeMap::new();
        // The year's visits with a member in scope: those that can carry out their plan items.
        let mut visits: Vec<project::Projected> = Vec::new();
        project::each(&self.conn, "visit", range, |p| {
            let RecordData::Visit(v) = &p.data else {
                return Ok(());
            };
            let mut ours = false;
            for m in &v.participants {
                let Some(c) = t.get_mut(m.as_str()) else {
                    continue;
                };
                ours = true;
                c.visits += 1;
                if v.activity_type.is_six_ones() {
                    c.six_visits += 1;
                    six.entry(m.clone()).or_default().insert(v.activity_type);
                }
            }
            if ours {
                visits.push(p);
            }
            Ok(())
        })?;
        project::each(&self.conn, "opinion", range, |p| {
            if let Some(c) = t.get_mut(p.created_by.as_str()) {
                c.opinions += 1;
                if p.status != State::Recorded {
                    c.submitted += 1;
                }
                if p.status == State::FeedbackGiven {
                    c.feedback += 1;
                }
            }
            Ok(())
        })?;
        project::each(&self.conn, "household", None, |p| {
            let RecordData::Household(h) = &p.data else {
                return Ok(());
            };
            let mut by: BTreeMap<&str, usize> = BTreeMap::new();
            for e in h.log.iter().filter(|e| e.date >= from && e.date <= to) {
                *by.entry(e.member.as_str()).or_default() += 1;
            }
            for (m, n) in by {
                if let Some(c) = t.get_mut(m) {
                    c.assistance += n;
                    c.households_assisted += 1;
                }
            }
            Ok(())
        })?;
        let mut items: Vec<project::Projected> = Vec::new();
        project::each(&self.conn, "plan", range, |p| {
            if let RecordData::Plan(item) = &p.data
                && item.year == year as i64
                && t.contains_key(item.owner.as_str())
            {
                items.push(p);
            }
            Ok(())
        })?;
        // The plan page's matching, over every item of the members in scope.
        let matched = match_rows(
            &items.iter().collect::<Vec<_>>(),
            &visits.iter().collect::<Vec<_>>(),
        );
        for (p, m) in items.iter().zip(matched) {
            if let RecordData::Plan(item) = &p.data
                && let Some(c) = t.get_mut(item.owner.as_str())
            {
                c.plan_items += 1;
                c.plan_done += usize::from(m.is_some());
            }
        }
        Ok(t.into_iter()
            .map(|(id, mut totals)| {
                let m = &dir.members[id];
                if let Some(s) = six.get(id) {
                    totals.six = ActivityType::SIX_ONES
                        .iter()
                        .copied()
                        .filter(|x| s.contains(x))
                        .collect();
                }
                AssessmentRow {
                    member: id.to_string(),
                    name: m.name.clone(),
                    group: dir.group_name(&m.group).to_string(),
                    sector: m.sector.clone(),
                    totals,
                }
            })
            .collect())
    }

    /// The year's assessment table as an XLSX workbook (one sheet, the header row repeated on
    /// each printed page, landscape, fit to the page's width).
    pub fn assessment_xlsx(&mut self, viewer: &Viewer, year: i32) -> Result<Vec<u8>> {
        use rust_xlsxwriter::{Format, FormatBorder, Workbook};
        let rows = self.assessment(viewer, year)?;
        let x = |e: rust_xlsxwriter::XlsxError| Error::Xlsx(e.to_string());
        let mut book = Workbook::new();
        let sheet = book.add_worksheet();
        sheet.set_name(format!("{year}年度履职考核")).map_err(x)?;
        let head = Format::new().set_bold().set_border(FormatBorder::Thin);
        let cell = Format::new().set_border(FormatBorder::Thin);
        for (c, title) in ASSESSMENT_COLUMNS.iter().enumerate() {
            sheet
                .write_with_format(0, c as u16, *title, &head)
                .map_err(x)?;
            let width = if c < 4 { 14.0 } else { 12.0 };
            sheet.set_column_width(c as u16, width).map_err(x)?;
        }
        for (i, r) in rows.iter().enumerate() {
            let row = i as u32 + 1;
            let t = &r.totals;
            for (c, text) in [&r.member, &r.name, &r.group, &r.sector]
                .into_iter()
                .enumerate()
            {
                sheet
                    .write_with_format(row, c as u16, text.as_str(), &cell)
                    .map_err(x)?;
            }
            let numbers = [
                t.visits,
                t.six_visits,
                t.six.len(),
                t.opinions,
                t.submitted,
                t.feedback,
                t.households_assisted,
                t.assistance,
            ];
            for (c, n) in numbers.into_iter().enumerate() {
                sheet
                    .write_with_format(row, c as u16 + 4, n as f64, &cell)
                    .map_err(x)?;
            }
            sheet
                .write_with_format(row, 12, format!("{}/{}", t.plan_done, t.plan_items), &cell)
                .map_err(x)?;
        }
        sheet.set_landscape();
        sheet.set_repeat_rows(0, 0).map_err(x)?;
        sheet.set_print_fit_to_pages(1, 0);
        sheet.set_freeze_panes(1, 2).map_err(x)?;
        sheet.set_header(format!("&C{year} 年度委员履职考核表"));
        sheet.set_footer("&C第 &P 页 共 &N 页");
        book.save_to_buffer().map_err(x)
    }
}
