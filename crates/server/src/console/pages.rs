//! The console's pages. Each page is two steps: gathering its data (`load_*`, the only code
//! here that reads the store or the ledger) and rendering it (`maud` templates, one function per
//! part of the page). Every failure is a [`ConsoleError`].

use std::collections::HashMap;
use std::path::Path;

use chrono::{Datelike, NaiveDate};
use maud::{Markup, html};
use sanjin_core::doc::{HistoryEntry, RecordView};
use sanjin_core::domain::{ActivityType, OpinionKind, PhotoRef, RecordKind, TargetKind};
use sanjin_core::workflow::State;
use sanjin_core::{Author, IndexEntry, schema};
use sanjin_ledger::dashboard::Dashboard;
use sanjin_ledger::{Format, Fragment, Ledger, Query, Search, Slice, Viewer};
use sanjin_store::now_ms;
use sanjin_store::server::ServerStorage;
use serde_json::Value;

use super::error::{ConsoleError, ErrorKind};
use super::extract::{DashboardQuery, ExportQuery, RecordsQuery, ResolveForm};
use super::html::Who;
use super::html::{page, url};
use super::{Session, viewer};
use crate::blobs::{BlobHash, BlobReader};
use crate::data::{SERVER_ID, ServerData};
use crate::model::Role;

const PAGE_SIZE: i64 = 50;

/// A page of the signed-in account: the layout with its header line around `body`.
pub(super) fn signed_page(title: &str, s: &Session, body: Markup) -> Markup {
    page(title, Some(&Who::of(s)), body)
}

fn open_ledger(dir: &Path) -> Result<Ledger, ConsoleError> {
    Ledger::open(dir).map_err(ConsoleError::internal)
}

fn beijing(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            (t.naive_utc() + chrono::Duration::hours(8))
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_default()
}

fn today() -> NaiveDate {
    chrono::DateTime::from_timestamp_millis(now_ms())
        .map(|t| (t.naive_utc() + chrono::Duration::hours(8)).date())
        .unwrap_or_default()
}

/// Member and group names from the server's directory index.
fn names(store: &dyn ServerStorage) -> sanjin_store::Result<HashMap<String, String>> {
    Ok(store.names()?.into_iter().collect())
}

fn name<'a>(names: &'a HashMap<String, String>, id: &'a str) -> &'a str {
    names.get(id).map_or(id, String::as_str)
}

/// The directory's groups, by id.
/// The groups of the directory the signed-in account sees (staff of a county chapter: its
/// own, issue 13), by id.
fn groups<'a>(s: &Session, names: &'a HashMap<String, String>) -> Vec<(&'a String, &'a String)> {
    let mut groups: Vec<(&String, &String)> = names
        .iter()
        .filter(|(k, _)| k.starts_with("group-") && super::group_refusal(s, k).is_none())
        .collect();
    groups.sort();
    groups
}

fn type_zh(kind: RecordKind, code: &str) -> String {
    match kind {
        RecordKind::Opinion => OpinionKind::parse(code).map_or(code.to_string(), |k| k.zh().into()),
        _ => ActivityType::parse(code).map_or(code.to_string(), |k| k.zh().into()),
    }
}

fn state_zh(code: &str) -> &str {
    State::parse(code).map_or(code, |s| s.zh())
}

/// A field's Chinese label (`status` is the workflow state).
fn field_zh(kind: RecordKind, field: &str) -> &str {
    if field == "status" {
        "状态"
    } else {
        schema::field(kind, field).map_or(field, |f| f.zh)
    }
}

// ------------------------------------------------------------------ sign-in

// ------------------------------------------------------------------ dashboard

fn parse_quarter(s: &str) -> Option<(i32, u32)> {
    let (y, q) = s.split_once('-')?;
    let y: i32 = y.parse().ok()?;
    let q: u32 = q.trim_start_matches(['Q', 'q']).parse().ok()?;
    ((1..=4).contains(&q) && (2000..=2100).contains(&y)).then_some((y, q))
}

/// The dashboard's figures for one quarter.
pub struct DashboardData {
    pub year: i32,
    pub quarter: u32,
    /// The quarter's first and last day.
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub d: Dashboard,
    /// The charts' figures for the year up to the quarter's end (issue 13).
    pub charts: sanjin_ledger::Charts,
    /// Why another quarter than the one asked for is shown (issue 13).
    pub notice: Option<Notice>,
}

/// The current quarter is empty (issue 13): the dashboard says so, and which one it shows.
pub enum Notice {
    /// Shows the latest quarter with records instead of the empty current one.
    Latest { current: (i32, u32) },
    /// No record at all up to the current quarter.
    Nothing,
}

fn quarter_no(day: NaiveDate) -> (i32, u32) {
    (day.year(), day.month0() / 3 + 1)
}

pub fn dashboard(dir: &Path, s: &Session, q: &DashboardQuery) -> Result<Markup, ConsoleError> {
    let asked = match q.q.as_deref().filter(|v| !v.is_empty()) {
        Some(v) => Some(
            parse_quarter(v).ok_or_else(|| ConsoleError::bad("季度格式应为 年-季度，如 2025-2"))?,
        ),
        None => None,
    };
    let data = load_dashboard(dir, s, asked)?;
    Ok(signed_page("工作概况", s, render_dashboard(&data)))
}

fn ledger_err(e: sanjin_ledger::Error) -> ConsoleError {
    match e {
        sanjin_ledger::Error::Forbidden(m) => ConsoleError::forbidden(m),
        sanjin_ledger::Error::Invalid(m) => ConsoleError::bad(m),
        other => ConsoleError::internal(other),
    }
}

/// The dashboard of the quarter asked for; without one, the current quarter, or when the
/// current quarter holds no visit and no opinion note in the viewer's scope, the latest quarter
/// that does (issue 13).
fn load_dashboard(
    dir: &Path,
    s: &Session,
    asked: Option<(i32, u32)>,
) -> Result<DashboardData, ConsoleError> {
    let viewer = viewer(s);
    let mut ledger = open_ledger(dir)?;
    // Refused before any work for an account that may not see the dashboard.
    let now = today();
    ledger
        .scoped(&viewer, &Query::new(now, now))
        .map_err(ledger_err)?;
    // The charts read the projection: bring it up to date (cheap when little changed).
    ledger.refresh().map_err(ConsoleError::internal)?;
    let (year, quarter, notice) = match asked {
        Some((y, q)) => (y, q, None),
        None => {
            let current = quarter_no(now);
            let (current_start, current_end) = sanjin_ledger::dashboard::quarter_of(now);
            match ledger
                .latest_with_data(&viewer, current_end)
                .map_err(ledger_err)?
            {
                Some(day) if day < current_start => {
                    let (y, q) = quarter_no(day);
                    (y, q, Some(Notice::Latest { current }))
                }
                Some(_) => (current.0, current.1, None),
                None => (current.0, current.1, Some(Notice::Nothing)),
            }
        }
    };
    let from =
        NaiveDate::from_ymd_opt(year, (quarter - 1) * 3 + 1, 1).expect("a quarter's first day");
    let (from, to) = sanjin_ledger::dashboard::quarter_of(from);
    let d = sanjin_ledger::dashboard::dashboard(&ledger, &viewer, from, to).map_err(ledger_err)?;
    let charts = ledger
        .charts(&viewer, &Query::new(from, to))
        .map_err(ledger_err)?;
    Ok(DashboardData {
        year,
        quarter,
        from,
        to,
        d,
        charts,
        notice,
    })
}

fn render_dashboard(data: &DashboardData) -> Markup {
    let d = &data.d;
    let (from, to) = (data.from, data.to);
    html! {
        (dashboard_heading(data))
        (dashboard_notice(data))
        (dashboard_stats(data))
        (super::charts::all(&data.charts))
        (dashboard_by_kind(d))
        (dashboard_by_type(d))
        (dashboard_six_ones(data))
        (dashboard_opinions(data))
        p { a class="button" href=(format!("/console/export?from={from}&to={to}")) { "导出本季度台账" } }
    }
}

/// What the dashboard says when the current quarter is empty (issue 13).
fn dashboard_notice(data: &DashboardData) -> Markup {
    match &data.notice {
        None => html! {},
        Some(Notice::Latest { current: (cy, cq) }) => html! {
            div class="msg" id="period-notice" {
                "本季度（" (cy) "年第" (cq) "季度）暂无记录，显示最近有记录的 "
                (data.year) "年第" (data.quarter) "季度。"
                a href=(format!("/console/dashboard?q={cy}-{cq}")) { "仍查看本季度" }
            }
        },
        Some(Notice::Nothing) => html! {
            div class="msg" id="period-notice" {
                "本季度（" (data.year) "年第" (data.quarter) "季度）暂无记录，之前也没有任何活动记录或社情民意。"
            }
        },
    }
}

/// The title (with the leader's group) and the quarter's pager.
fn dashboard_heading(data: &DashboardData) -> Markup {
    let (year, quarter) = (data.year, data.quarter);
    let group = data.d.group.as_ref().map(|g| {
        data.d
            .six_ones
            .first()
            .map_or(g.as_str(), |r| r.name.as_str())
    });
    let (py, pq) = if quarter == 1 {
        (year - 1, 4)
    } else {
        (year, quarter - 1)
    };
    let (ny, nq) = if quarter == 4 {
        (year + 1, 1)
    } else {
        (year, quarter + 1)
    };
    html! {
        h1 {
            "工作概况 · " (year) " 年第 " (quarter) " 季度"
            @if let Some(n) = group { "（" (n) "）" }
        }
        p class="pager" {
            a href=(format!("/console/dashboard?q={py}-{pq}")) { "‹ 上一季度" }
            a href="/console/dashboard" { "本季度" }
            a href=(format!("/console/dashboard?q={ny}-{nq}")) { "下一季度 ›" }
        }
        (quarter_picker(year, quarter))
    }
}

/// A form choosing any quarter of the shown year, the year before and the current year.
fn quarter_picker(year: i32, quarter: u32) -> Markup {
    let this_year = today().year();
    let (first, last) = ((year - 1).min(this_year - 1), year.max(this_year));
    html! {
        form class="filters noprint" method="get" action="/console/dashboard" id="quarter-picker" {
            label {
                "选择季度"
                select name="q" {
                    @for y in (first..=last).rev() {
                        @for q in (1..=4).rev() {
                            option value=(format!("{y}-{q}")) selected[y == year && q == quarter] {
                                (y) "年第" (q) "季度"
                            }
                        }
                    }
                }
            }
            button type="submit" { "查看" }
        }
    }
}

fn dashboard_stats(data: &DashboardData) -> Markup {
    let (d, from, to) = (&data.d, data.from, data.to);
    let coverage = if d.members > 0 {
        d.members_active as f64 * 100.0 / d.members as f64
    } else {
        0.0
    };
    html! {
        div class="grid" id="stats" {
            div class="stat" { "活动记录" b id="stat-visits" { (d.visits) } "次" }
            div class="stat" {
                "参与委员" b { (d.members_active) }
                "共 " (d.members) " 人，覆盖率 " (format!("{coverage:.1}")) "%"
            }
            div class="stat" { "社情民意" b { (d.opinions) } "条" }
            div class="stat" {
                "待裁定冲突" b { (d.open_conflicts) }
                a href=(format!("/console/records?kind=visit&conflicts=1&from={from}&to={to}")) { "查看" }
            }
        }
    }
}

fn dashboard_by_kind(d: &Dashboard) -> Markup {
    let max = d.by_kind.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    html! {
        div class="card" {
            h2 { "按类别（进社区、进园区、进农村）" }
            div class="scroll" {
                table {
                    tr { th { "类别" } th { "次数" } th {} }
                    @for (k, n) in &d.by_kind {
                        tr {
                            td { "进" (k.zh()) }
                            td { (n) }
                            td class="barcell" {
                                div class="bar" { i class={ "w" ((n * 100 / max).min(100)) } {} }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn dashboard_by_type(d: &Dashboard) -> Markup {
    html! {
        div class="card" {
            h2 { "按活动形式" }
            div class="scroll" {
                table {
                    tr { th { "活动形式" } th { "六个一" } th { "次数" } }
                    @for (t, n) in &d.by_type {
                        tr {
                            td { (t.zh()) }
                            td { @if t.is_six_ones() { "是" } }
                            td { (n) }
                        }
                    }
                }
            }
        }
    }
}

fn dashboard_six_ones(data: &DashboardData) -> Markup {
    let d = &data.d;
    html! {
        div class="card" {
            h2 { "“六个一”完成情况（" (data.to.year()) " 年截至本季度末）" }
            div class="scroll" {
                table id="six-ones" {
                    tr {
                        th { "活动组" }
                        @for t in ActivityType::SIX_ONES { th { (t.zh()) } }
                        th { "完成" }
                    }
                    @for row in &d.six_ones {
                        tr {
                            td {
                                a href=(format!("/console/records?kind=visit&group={}", url(&row.group))) { (row.name) }
                            }
                            @for n in row.counts {
                                @if n > 0 {
                                    td class="ok" { (n) }
                                } @else {
                                    td class="warn" { "缺" }
                                }
                            }
                            td { (row.counts.iter().filter(|n| **n > 0).count()) "/6" }
                        }
                    }
                }
            }
        }
    }
}

fn dashboard_opinions(data: &DashboardData) -> Markup {
    let (d, from, to) = (&data.d, data.from, data.to);
    html! {
        div class="card" {
            h2 { "社情民意办理状态" }
            div class="scroll" {
                table {
                    tr { th { "状态" } th { "条数" } }
                    @for (st, n) in &d.opinions_by_status {
                        tr {
                            td {
                                a href=(format!("/console/records?kind=opinion&status={}&from={from}&to={to}", st.code())) { (st.zh()) }
                            }
                            td { (n) }
                        }
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------------ lists

fn kind_of(kind: Option<&str>) -> RecordKind {
    match kind {
        Some("opinion") => RecordKind::Opinion,
        Some("household") => RecordKind::Household,
        Some("plan") => RecordKind::Plan,
        _ => RecordKind::Visit,
    }
}

fn date_param(value: Option<&str>) -> Result<Option<NaiveDate>, ConsoleError> {
    match value.map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| {
                ConsoleError::bad(format!("日期“{v}”格式不对，应为 年-月-日，如 2025-04-01"))
            }),
    }
}

/// The group a list or export is about: a leader's own, whatever was asked.
pub(super) fn group_param(
    s: &Session,
    asked: Option<&str>,
) -> Result<Option<String>, ConsoleError> {
    let asked = asked
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty());
    match viewer(s) {
        Viewer::Office => Ok(asked),
        // Staff of a county chapter (issue 13): one of its groups, or all of them (the lists
        // narrow to the chapter by `read_scope`).
        Viewer::Chapter { .. } => match asked.as_deref().and_then(|g| super::group_refusal(s, g)) {
            Some(why) => Err(ConsoleError::forbidden(why)),
            None => Ok(asked),
        },
        Viewer::Leader { group } => {
            if asked.as_ref().is_some_and(|a| a != &group) {
                return Err(ConsoleError::forbidden(format!(
                    "组长只能查看本组（{group}）的记录"
                )));
            }
            Ok(Some(group))
        }
        Viewer::Member => Err(ConsoleError::forbidden("委员账户不能使用工作台")),
    }
}

/// A record list's filters, checked.
pub struct RecordsFilter {
    pub kind: RecordKind,
    pub group: Option<String>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub status: Option<String>,
    pub ty: Option<String>,
    pub conflicts: bool,
    pub page_no: i64,
    /// Words to search for in titles and texts (issue 13).
    pub q: Option<String>,
}

impl RecordsFilter {
    fn of(s: &Session, q: &RecordsQuery) -> Result<RecordsFilter, ConsoleError> {
        let kind = kind_of(q.kind.as_deref());
        let group = group_param(s, q.group.as_deref())?;
        let from = date_param(q.from.as_deref())?;
        let to = date_param(q.to.as_deref())?;
        let nonempty = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        Ok(RecordsFilter {
            kind,
            group,
            from,
            to,
            status: nonempty(&q.status),
            ty: nonempty(&q.ty),
            conflicts: q.conflicts.as_deref() == Some("1"),
            q: q.q
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string),
            page_no: q
                .page
                .as_deref()
                .and_then(|p| p.parse().ok())
                .unwrap_or(1)
                .max(1),
        })
    }
}

/// One row of a record list, from the store's index.
pub struct RecordRow {
    pub id: String,
    pub date: Option<String>,
    pub start: Option<String>,
    pub group: Option<String>,
    pub contact_point: Option<String>,
    pub type_code: Option<String>,
    pub status: String,
    pub conflicts: i64,
    pub title: String,
    pub created_by: String,
    /// When searching: the title and a snippet of the text with the words marked.
    pub marked: Option<(Vec<Fragment>, Vec<Fragment>)>,
}

/// A page of a record list: how many match, this page's rows, and the directory's names.
pub struct RecordsData {
    pub total: i64,
    pub rows: Vec<RecordRow>,
    pub names: HashMap<String, String>,
}

pub fn records(dir: &Path, s: &Session, q: &RecordsQuery) -> Result<Markup, ConsoleError> {
    let f = RecordsFilter::of(s, q)?;
    let data = load_records(dir, s, &f)?;
    let body = html! {
        h1 { (f.kind.zh()) }
        (records_filters(s, &f, &data.names))
        (records_table(&f, &data))
        (records_pager(q, &f, data.total))
    };
    Ok(signed_page(f.kind.zh(), s, body))
}

fn load_records(dir: &Path, s: &Session, f: &RecordsFilter) -> Result<RecordsData, ConsoleError> {
    if let Some(q) = &f.q {
        return search_records(dir, s, f, q);
    }
    let filter = sanjin_store::Filter {
        kind: Some(f.kind),
        group: f.group.clone(),
        scope: super::read_scope(s),
        from: f.from.map(|d| d.to_string()),
        to: f.to.map(|d| d.to_string()),
        status: f.status.clone(),
        type_code: f.ty.clone(),
        only_conflicts: f.conflicts,
        ..sanjin_store::Filter::default()
    };
    let ledger = open_ledger(dir)?;
    let store = ledger.store();
    let fail = ConsoleError::internal;
    let offset = ((f.page_no - 1) * PAGE_SIZE) as usize;
    let (total, page) = store
        .page(&filter, offset, PAGE_SIZE as usize)
        .map_err(fail)?;
    let total = total as i64;
    let rows: Vec<RecordRow> = page
        .into_iter()
        .map(|e| RecordRow {
            id: e.id,
            date: e.date,
            start: e.start,
            group: e.group,
            contact_point: e.contact_point,
            type_code: e.type_code,
            status: e.status,
            conflicts: i64::from(e.conflicts),
            title: e.title,
            created_by: e.created_by,
            marked: None,
        })
        .collect();
    let names = names(store).map_err(fail)?;
    Ok(RecordsData { total, rows, names })
}

/// A record list searched by words (issue 13): the ledger's search, as the account may run it,
/// best matches first.
fn search_records(
    dir: &Path,
    s: &Session,
    f: &RecordsFilter,
    q: &str,
) -> Result<RecordsData, ConsoleError> {
    let search = Search {
        text: q.to_string(),
        kind: Some(f.kind),
        from: f.from,
        to: f.to,
        group: f.group.clone(),
        status: f.status.clone(),
        type_code: f.ty.clone(),
        only_conflicts: f.conflicts,
        offset: ((f.page_no - 1) * PAGE_SIZE) as usize,
        limit: PAGE_SIZE as usize,
        ..Search::default()
    };
    let mut ledger = open_ledger(dir)?;
    let found = ledger.search(&viewer(s), &search).map_err(|e| match e {
        sanjin_ledger::Error::Forbidden(m) => ConsoleError::forbidden(m),
        sanjin_ledger::Error::Invalid(m) => ConsoleError::bad(m),
        e => ConsoleError::internal(e),
    })?;
    let rows = found
        .hits
        .into_iter()
        .map(|h| RecordRow {
            id: h.id,
            date: h.date,
            start: h.start,
            group: h.group,
            contact_point: h.contact_point,
            type_code: h.type_code,
            status: h.status,
            conflicts: h.conflicts,
            title: h.title,
            created_by: h.created_by,
            marked: Some((h.title_marked, h.snippet)),
        })
        .collect();
    let names = names(ledger.store()).map_err(ConsoleError::internal)?;
    Ok(RecordsData {
        total: found.total as i64,
        rows,
        names,
    })
}

/// Text with the search's hits in `mark` elements (escaped like every other text).
fn marked(parts: &[Fragment]) -> Markup {
    html! {
        @for p in parts {
            @if p.hit { mark { (p.text) } } @else { (p.text) }
        }
    }
}

/// The filter form (a GET to the list itself).
fn records_filters(s: &Session, f: &RecordsFilter, names: &HashMap<String, String>) -> Markup {
    let kind = f.kind;
    let types: Vec<(&str, &str)> = if kind == RecordKind::Visit {
        ActivityType::ALL
            .iter()
            .map(|t| (t.code(), t.zh()))
            .collect()
    } else {
        OpinionKind::ALL
            .iter()
            .map(|t| (t.code(), t.zh()))
            .collect()
    };
    html! {
        form class="filters card" method="get" action="/console/records" id="filters" {
            input type="hidden" name="kind" value=(kind.code());
            label {
                "搜索"
                input type="search" name="q" id="f-q" value=(f.q.as_deref().unwrap_or_default())
                    placeholder="标题、摘要、意见内容中的词" maxlength="100";
            }
            @if viewer(s).is_office() {
                label {
                    "活动组"
                    select name="group" id="f-group" {
                        option value="" { "全部" }
                        @for (id, n) in groups(s, names) {
                            option value=(id) selected[f.group.as_deref() == Some(id.as_str())] { (n) }
                        }
                    }
                }
            }
            label {
                "起始日期"
                input type="date" name="from" id="f-from" value=(f.from.map(|d| d.to_string()).unwrap_or_default());
            }
            label {
                "结束日期"
                input type="date" name="to" id="f-to" value=(f.to.map(|d| d.to_string()).unwrap_or_default());
            }
            @if matches!(kind, RecordKind::Visit | RecordKind::Opinion) {
                label {
                    "状态"
                    select name="status" id="f-status" {
                        option value="" { "全部" }
                        @for st in sanjin_core::workflow::states(kind) {
                            option value=(st.code()) selected[f.status.as_deref() == Some(st.code())] { (st.zh()) }
                        }
                    }
                }
                label {
                    (if kind == RecordKind::Visit { "活动形式" } else { "类别" })
                    select name="type" id="f-type" {
                        option value="" { "全部" }
                        @for (code, zh) in types {
                            option value=(code) selected[f.ty.as_deref() == Some(code)] { (zh) }
                        }
                    }
                }
            }
            label {
                "只看冲突"
                select name="conflicts" id="f-conflicts" {
                    option value="" { "否" }
                    option value="1" selected[f.conflicts] { "是" }
                }
            }
            button class="primary" type="submit" id="f-submit" { "筛选" }
        }
    }
}

fn records_table(f: &RecordsFilter, data: &RecordsData) -> Markup {
    let names = &data.names;
    html! {
        p id="total" { "共 " (data.total) " 条" }
        @if let Some(q) = &f.q {
            p class="note" id="search-note" { "搜索“" (q) "”的结果，按相关程度排序" }
        }
        div class="scroll" {
            table id="records" {
                tr {
                    th { "日期" } th { "标题" } th { "活动组" } th { "联系点" }
                    th { "类型" } th { "状态" } th { "记录人" } th { "冲突" }
                }
                @for r in &data.rows {
                    @let when = r
                        .start
                        .as_deref()
                        .map(|s| s.replace('T', " "))
                        .or(r.date.clone())
                        .unwrap_or_default();
                    tr {
                        td { (when.get(..16).unwrap_or(&when)) }
                        @if let Some((title, snippet)) = &r.marked {
                            td class="snippet" {
                                a href=(format!("/console/records/{}", url(&r.id))) {
                                    @if r.title.is_empty() { (r.id) } @else { (marked(title)) }
                                }
                                @if !snippet.is_empty() {
                                    div class="hit" { (marked(snippet)) }
                                }
                            }
                        } @else {
                            td {
                                a href=(format!("/console/records/{}", url(&r.id))) {
                                    (if r.title.is_empty() { &r.id } else { &r.title })
                                }
                            }
                        }
                        td { (r.group.as_deref().map_or("", |g| name(names, g))) }
                        td { (r.contact_point.as_deref().map_or("", |c| name(names, c))) }
                        td { (r.type_code.as_deref().map(|c| type_zh(f.kind, c)).unwrap_or_default()) }
                        td { (state_zh(&r.status)) }
                        td { (member_name(names, &r.created_by, r.date.as_deref())) }
                        td {
                            @if r.conflicts > 0 {
                                span class="warn" { (r.conflicts) " 处待裁定" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Paging keeps the filters as they were sent.
fn records_pager(q: &RecordsQuery, f: &RecordsFilter, total: i64) -> Markup {
    let mut base = format!("/console/records?kind={}", f.kind.code());
    for (key, v) in q.kept() {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            base.push_str(&format!("&{key}={}", url(v)));
        }
    }
    let page_no = f.page_no;
    let pages = (total + PAGE_SIZE - 1) / PAGE_SIZE;
    html! {
        div class="pager" {
            @if page_no > 1 {
                a href=(format!("{base}&page={}", page_no - 1)) { "‹ 上一页" }
            }
            span { "第 " (page_no) " / " (pages.max(1)) " 页" }
            @if page_no < pages {
                a href=(format!("{base}&page={}", page_no + 1)) { "下一页 ›" }
            }
        }
    }
}

// ------------------------------------------------------------------ one record

fn show_value(v: &Value, names: &HashMap<String, String>, field: &str) -> String {
    match v {
        Value::Null => "（空）".into(),
        Value::String(s) => match field {
            "target_kind" => TargetKind::parse(s).map_or(s.clone(), |t| format!("进{}", t.zh())),
            "activity_type" => ActivityType::parse(s).map_or(s.clone(), |t| t.zh().into()),
            "opinion_kind" => OpinionKind::parse(s).map_or(s.clone(), |t| t.zh().into()),
            "urgency" => {
                sanjin_core::domain::Urgency::parse(s).map_or(s.clone(), |t| t.zh().into())
            }
            "status" => state_zh(s).to_string(),
            "start" | "end" => s.replace('T', " "),
            _ => name(names, s).to_string(),
        },
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => name(names, s).to_string(),
                Value::Object(o) => o
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{k}: {}",
                            match v {
                                Value::String(s) => name(names, s).to_string(),
                                other => other.to_string(),
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("，"),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join("；"),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("，"),
        other => other.to_string(),
    }
}

/// A member's name linked to their yearly record (履职档案, issue 13) of the year `day` starts
/// with (this year without one); any other author's name as it is.
fn member_name(names: &HashMap<String, String>, id: &str, day: Option<&str>) -> Markup {
    if !id.starts_with("member-") {
        return html! { (name(names, id)) };
    }
    let href = match day
        .and_then(|d| d.get(..4))
        .and_then(|y| y.parse::<i32>().ok())
    {
        Some(year) => super::html::member_link(id, year),
        None => format!("/console/members/{}", url(id)),
    };
    html! { a href=(href) { (name(names, id)) } }
}

/// Whether the signed-in account may read the record of `entry`, and resolve its conflicts:
/// the account's rules (`Account::may_read_entry`, `may_write`; staff of a county chapter
/// their chapter's records, the legal advisory group's leader legal appeals too, issue 13).
pub(super) fn access(s: &Session, entry: &IndexEntry) -> (bool, bool) {
    let kind = RecordKind::parse(&entry.kind).unwrap_or(RecordKind::Visit);
    let a = &s.account;
    let resolve = !kind.is_directory()
        && match a.role {
            Role::Staff => a.may_write(kind, entry.group.as_deref()),
            Role::Leader => a.may_write_entry(entry),
            Role::Admin | Role::Member => false,
        };
    (a.role != Role::Member && a.may_read_entry(entry), resolve)
}

/// One photo of a record as the page shows it.
pub struct PhotoItem {
    pub photo: PhotoRef,
    /// A valid content address; `None` for a reference a device wrote that is not one (shown as
    /// text, linking nothing).
    pub hash: Option<BlobHash>,
    /// The record's document holds its thumbnail.
    pub thumbnail: bool,
    /// The server holds the original for this reader: uploaded by a device within the reader's
    /// scope (proof of possession), and on disk.
    pub held: bool,
}

/// What the record page shows.
pub struct RecordPage {
    pub id: String,
    pub kind: RecordKind,
    pub title: String,
    pub may_resolve: bool,
    pub view: RecordView,
    pub history: Vec<HistoryEntry>,
    /// Device names by device id.
    pub devices: HashMap<String, String>,
    /// Member and group names by id.
    pub names: HashMap<String, String>,
    /// The record's fields as JSON, by name.
    pub fields: serde_json::Map<String, Value>,
    /// `None` for a kind without photos.
    pub photos: Option<Vec<PhotoItem>>,
}

impl RecordPage {
    fn device(&self, d: &str) -> String {
        match self.devices.get(d) {
            Some(n) => format!("{n}（{}）", d.get(..8).unwrap_or(d)),
            None if d == SERVER_ID => "服务器（工作台）".into(),
            None => d.to_string(),
        }
    }
}

pub(super) fn load_record(
    data: &mut ServerData,
    blobs: &dyn crate::blobs::BlobStore,
    s: &Session,
    id: &str,
) -> Result<RecordPage, ConsoleError> {
    let entry = data
        .store()
        .index_entry(id)
        .map_err(ConsoleError::internal)?
        .ok_or_else(|| ConsoleError::not_found(format!("没有编号为 {id} 的记录")))?;
    let kind = RecordKind::parse(&entry.kind).unwrap_or(RecordKind::Visit);
    let (may_read, may_resolve) = access(s, &entry);
    if !may_read {
        return Err(ConsoleError::forbidden(super::read_refusal(
            data, s, &entry,
        )));
    }
    let mut doc = data.store().load(id).map_err(ConsoleError::internal)?;
    let view = doc.view().map_err(ConsoleError::internal)?;
    let history = doc.history();
    let devices: HashMap<String, String> = data
        .devices()
        .map_err(ConsoleError::internal)?
        .into_iter()
        .map(|d| (d.device_id, d.name))
        .collect();
    let mut names = names(data.store()).map_err(ConsoleError::internal)?;
    // Issue 13: staff who took steps in the console are named by their account's name.
    for a in data.accounts().map_err(ConsoleError::internal)? {
        names.entry(a.member).or_insert(a.name);
    }
    let fields = sanjin_core::doc::fields_json(&view.data);
    let photos = if schema::field(kind, "photos").is_some() {
        let reader = BlobReader::of(&s.account);
        let mut items = vec![];
        for p in doc.photos().map_err(ConsoleError::internal)? {
            let hash = BlobHash::of_reference(&p.hash);
            let (thumbnail, held) = match &hash {
                Some(h) => (
                    doc.thumbnail(&h.to_hex()).is_some(),
                    data.blob_proven_for(h, reader)
                        .map_err(ConsoleError::internal)?
                        && matches!(blobs.size(h), Ok(Some(_))),
                ),
                None => (false, false),
            };
            items.push(PhotoItem {
                photo: p,
                hash,
                thumbnail,
                held,
            });
        }
        Some(items)
    } else {
        None
    };
    Ok(RecordPage {
        id: id.to_string(),
        kind,
        title: entry.title,
        may_resolve,
        view,
        history,
        devices,
        names,
        fields,
        photos,
    })
}

/// The record's number, state, author and time, then every field but the photos.
pub(super) fn record_fields(r: &RecordPage) -> Markup {
    html! {
        div class="card" {
            dl {
                dt { "记录编号" } dd id="record-id" { (r.id) }
                dt { "状态" } dd { (r.view.status.zh()) @if r.view.deleted { "（已删除）" } }
                dt { "记录人" } dd {
                    @let day = ["start", "recorded_on"].iter().find_map(|f| r.fields.get(*f).and_then(Value::as_str));
                    (member_name(&r.names, &r.view.created_by, day))
                }
                dt { "记录时间" } dd { (beijing(r.view.created_at_ms)) }
                @for spec in schema::fields(r.kind).iter().filter(|f| f.name != "photos") {
                    @let v = r.fields.get(spec.name).cloned().unwrap_or(Value::Null);
                    dt { (spec.zh) } dd { (show_value(&v, &r.names, spec.name)) }
                }
            }
        }
    }
}

pub(super) fn record_photos(id: &str, photos: &[PhotoItem]) -> Markup {
    html! {
        div class="card" id="photos" {
            h2 { "照片" }
            @if photos.is_empty() { p { "没有照片" } }
            div class="photos" {
                @for p in photos { (photo_figure(id, p)) }
            }
        }
    }
}

/// One photo: its thumbnail, caption, taking time and place, and the original's link once the
/// server holds it for this reader. Links are built only from a valid content address; anything
/// else a device wrote is shown as text and opens nothing.
fn photo_figure(id: &str, item: &PhotoItem) -> Markup {
    let p = &item.photo;
    let Some(hash) = &item.hash else {
        return html! {
            figure class="photo" {
                div class="nothumb" { "无缩略图" }
                figcaption {
                    span class="badref" { "照片引用无效（不是合法的照片编号），无法查看，请联系记录人重新上传" }
                    br;
                    code { (p.hash.get(..24).unwrap_or(&p.hash)) }
                }
            }
        };
    };
    let hex = hash.to_hex();
    let base = format!("/console/records/{}/photos/{hex}", url(id));
    html! {
        figure class="photo" {
            @if item.thumbnail {
                img src=(format!("{base}/thumb")) alt=(if p.caption.is_empty() { "照片" } else { p.caption.as_str() }) loading="lazy";
            } @else {
                div class="nothumb" { "无缩略图" }
            }
            figcaption {
                @if !p.caption.is_empty() { b { (p.caption) } br; }
                @if let Some(t) = p.taken_at { (format!("拍摄于 {}", t.format("%Y-%m-%d %H:%M"))) br; }
                @if let Some(g) = p.gps { (format!("位置 {g}")) br; }
                @if item.held {
                    a class="original" href=(base) {
                        "查看原图"
                        @if p.bytes > 0 { (format!("（{:.1} MB）", p.bytes as f64 / 1_048_576.0)) }
                    }
                } @else {
                    span class="pending" { "原图尚未上传" }
                }
                br;
                code title=(hex) { (&hex[..12]) }
            }
        }
    }
}

/// Open conflicts, each with its values (who, on which device, when) and, for whoever may
/// resolve, a form choosing one.
pub(super) fn record_conflicts(s: &Session, r: &RecordPage) -> Markup {
    let conflicts = &r.view.conflicts;
    html! {
        div class="card" id="conflicts" {
            h2 { "待裁定的冲突" }
            @if conflicts.is_empty() {
                p id="no-conflicts" { "没有待裁定的冲突" }
            }
            @for (i, c) in conflicts.iter().enumerate() {
                @let values = html! {
                    ul {
                        @for (j, v) in c.values.iter().enumerate() {
                            li {
                                label {
                                    @if r.may_resolve {
                                        input type="radio" name="value" id={ "c" (i) "-" (j) } value=(serde_json::to_string(&v.value).unwrap_or_default()) checked[j == 0];
                                        " "
                                    }
                                    (show_value(&v.value, &r.names, &c.field))
                                }
                                " —— " (name(&r.names, &v.member)) "，" (r.device(&v.device)) "，" (beijing(v.at_ms))
                            }
                        }
                    }
                };
                div class="conflict" {
                    b { (field_zh(r.kind, &c.field)) } " 有 " (c.values.len()) " 个同时修改的值："
                    @if r.may_resolve {
                        form method="post" action=(format!("/console/records/{}/resolve", url(&r.id))) {
                            input type="hidden" name="csrf" value=(s.csrf);
                            input type="hidden" name="field" value=(c.field);
                            (values)
                            button class="primary" type="submit" id={ "resolve-" (i) } { "以所选的值裁定" }
                        }
                    } @else {
                        (values)
                    }
                }
            }
            @if !conflicts.is_empty() && !r.may_resolve {
                p { "只有本组组长或机关工作人员可以裁定。" }
            }
        }
    }
}

/// The trace (留痕): every change, when, by whom, on which device, what it did to which fields.
pub(super) fn record_history(r: &RecordPage) -> Markup {
    html! {
        div class="card" {
            h2 { "留痕（修改历史）" }
            div class="scroll" {
                table id="history" {
                    tr { th { "时间" } th { "委员" } th { "设备" } th { "操作" } th { "字段" } }
                    @for h in &r.history {
                        @let fields: Vec<&str> = h.fields.iter().map(|f| field_zh(r.kind, f)).collect();
                        tr {
                            td { (beijing(h.at_ms)) }
                            td { (name(&r.names, &h.member)) }
                            td { (r.device(&h.device)) }
                            td { (action_zh(&h.action)) }
                            td { (fields.join("、")) }
                        }
                    }
                }
            }
        }
    }
}

/// What a photo request of the console answers with.
pub enum PhotoPart {
    /// The thumbnail inside the record's document.
    Thumbnail,
    /// The original, from the blob store, if the server holds it.
    Original,
}

/// What to send for a photo request, once the checks have passed.
pub enum PhotoOut {
    /// The thumbnail's bytes, from the record's document.
    Thumbnail(Vec<u8>),
    /// The original: read from the blob store (outside the data lock).
    Original(BlobHash),
}

/// A photo of a record the signed-in account may read. Only valid content addresses the record
/// references are served, with the same scope checks as the record page; an original only if a
/// device within the reader's scope uploaded it (proof of possession) — otherwise the answer is
/// the same as for an original not uploaded yet.
pub fn photo(
    data: &mut ServerData,
    s: &Session,
    id: &str,
    hash: &str,
    part: PhotoPart,
) -> Result<PhotoOut, ConsoleError> {
    let Some(hash) = BlobHash::parse(hash) else {
        return Err(ConsoleError::not_found(
            "照片编号不对：应为 64 位小写十六进制数字",
        ));
    };
    let entry = data
        .store()
        .index_entry(id)
        .map_err(ConsoleError::internal)?
        .ok_or_else(|| ConsoleError::not_found(format!("没有编号为 {id} 的记录")))?;
    if !access(s, &entry).0 {
        return Err(ConsoleError::forbidden(super::read_refusal(
            data, s, &entry,
        )));
    }
    let doc = data.store().load(id).map_err(ConsoleError::internal)?;
    if !crate::blobs::references(&doc, &hash).map_err(ConsoleError::internal)? {
        return Err(ConsoleError::not_found("这条记录没有这张照片"));
    }
    match part {
        PhotoPart::Thumbnail => doc
            .thumbnail(&hash.to_hex())
            .map(PhotoOut::Thumbnail)
            .ok_or_else(|| ConsoleError::not_found("这张照片没有缩略图")),
        PhotoPart::Original => {
            let proven = data
                .blob_proven_for(&hash, BlobReader::of(&s.account))
                .map_err(ConsoleError::internal)?;
            if proven {
                Ok(PhotoOut::Original(hash))
            } else {
                Err(ConsoleError::not_found(ORIGINAL_NOT_HERE))
            }
        }
    }
}

/// What a reader is told about an original the server does not hold for them.
pub const ORIGINAL_NOT_HERE: &str = "原图尚未上传：拍摄的手机下次按策略同步时上传";

fn action_zh(a: &str) -> String {
    match a {
        "create" => "创建".into(),
        "edit" => "修改".into(),
        "resolve" => "裁定冲突".into(),
        other => sanjin_core::workflow::EventType::parse(other)
            .map_or(other.to_string(), |e| e.zh().to_string()),
    }
}

pub fn resolve(
    data: &mut ServerData,
    s: &Session,
    id: &str,
    form: &ResolveForm,
) -> Result<(), ConsoleError> {
    let entry = data
        .store()
        .index_entry(id)
        .map_err(ConsoleError::internal)?
        .ok_or_else(|| ConsoleError::not_found(format!("没有编号为 {id} 的记录")))?;
    let kind = RecordKind::parse(&entry.kind).unwrap_or(RecordKind::Visit);
    let (may_read, may_resolve) = access(s, &entry);
    if !may_read {
        return Err(ConsoleError::forbidden(super::read_refusal(
            data, s, &entry,
        )));
    }
    if !may_resolve {
        return Err(ConsoleError::forbidden(
            "只有本组组长或机关工作人员可以裁定这条记录的冲突",
        ));
    }
    let field = form.field.clone();
    let value: Value = form
        .value
        .as_deref()
        .and_then(|v| serde_json::from_str(v).ok())
        .ok_or_else(|| ConsoleError::bad("请选择一个值再裁定"))?;
    let mut doc = data.store().load(id).map_err(ConsoleError::internal)?;
    // The server's own actor; the member who resolved is named in the change.
    let actor = data.store().identity().actor.clone();
    let author =
        Author::new(&s.account.member, SERVER_ID, &actor).map_err(ConsoleError::internal)?;
    match doc.resolve(&author, now_ms(), &field, value) {
        Ok(_) => {}
        Err(sanjin_core::Error::Invalid(v)) => {
            return Err(ConsoleError::bad(format!("无法裁定：{}", v.zh(kind))));
        }
        Err(e) => return Err(ConsoleError::internal(e)),
    }
    data.land_local(&mut doc).map_err(ConsoleError::internal)?;
    tracing::info!(member = %s.account.member, doc = %id, field = %field, "conflict resolved in the console");
    Ok(())
}

// ------------------------------------------------------------------ export

fn export_query(
    s: &Session,
    q: &ExportQuery,
    console_url: Option<String>,
) -> Result<(Query, Format), ConsoleError> {
    let t = today();
    let from = date_param(q.from.as_deref())?
        .unwrap_or_else(|| NaiveDate::from_ymd_opt(t.year(), 1, 1).expect("1 January"));
    let to = date_param(q.to.as_deref())?.unwrap_or(t);
    if from > to {
        return Err(ConsoleError::bad("起始日期晚于结束日期，请调换"));
    }
    let format = match q.format.as_deref() {
        Some("csv") => Format::Csv,
        _ => Format::Xlsx,
    };
    let group = group_param(s, q.group.as_deref())?;
    Ok((
        Query {
            from,
            to,
            slice: Slice {
                group,
                ..Slice::default()
            },
            console_url,
        },
        format,
    ))
}

pub fn export_page(dir: &Path, s: &Session, q: &ExportQuery) -> Result<Markup, ConsoleError> {
    let (query, _) = export_query(s, q, None)?;
    let names = load_export_names(dir)?;
    Ok(signed_page("导出台账", s, render_export(s, &query, &names)))
}

/// The directory's names, for the group choice.
fn load_export_names(dir: &Path) -> Result<HashMap<String, String>, ConsoleError> {
    let ledger = open_ledger(dir)?;
    names(ledger.store()).map_err(ConsoleError::internal)
}

fn render_export(s: &Session, query: &Query, names: &HashMap<String, String>) -> Markup {
    html! {
        h1 { "导出台账" }
        div class="card" {
            p { "每个台账一个工作表：活动台账、社情民意台账（含各办理状态用时）、结对帮扶台账、委员履职统计、未参与委员、六个一完成情况、计划执行（按月、按季度）、社情民意主题、汇总。CSV 为 UTF-8 编码，每个台账一个文件，打包为 zip。" }
            form class="filters" method="get" action="/console/export/file" id="export" {
                label { "起始日期" input type="date" name="from" id="e-from" value=(query.from.to_string()); }
                label { "结束日期" input type="date" name="to" id="e-to" value=(query.to.to_string()); }
                @if viewer(s).is_office() {
                    label {
                        "活动组"
                        select name="group" {
                            option value="" { "全部" }
                            @for (id, n) in groups(s, names) {
                                option value=(id) { (n) }
                            }
                        }
                    }
                } @else if let Some(g) = &query.slice.group {
                    span { "活动组：" (name(names, g)) }
                }
                button class="primary" type="submit" name="format" value="xlsx" id="export-xlsx" { "导出 Excel" }
                button class="primary" type="submit" name="format" value="csv" id="export-csv" { "导出 CSV（zip）" }
            }
        }
    }
}

/// The export file; `console_url` (this console's address as the browser reached it) lets
/// the activity ledger link photos back to the record pages.
pub fn export_file(
    dir: &Path,
    s: &Session,
    q: &ExportQuery,
    console_url: Option<String>,
) -> Result<(String, Format, Vec<u8>), ConsoleError> {
    let (query, format) = export_query(s, q, console_url)?;
    let mut ledger = open_ledger(dir)?;
    let tmp = tempfile_path(dir, format);
    let result = ledger.export(&viewer(s), &query, format, &tmp);
    let out = match result {
        Ok(_) => std::fs::read(&tmp).map_err(ConsoleError::internal),
        Err(sanjin_ledger::Error::Forbidden(m)) => Err(ConsoleError::forbidden(m)),
        Err(sanjin_ledger::Error::Invalid(m)) => Err(ConsoleError::bad(m)),
        Err(e) => Err(export_failed(&e, s)),
    };
    let _ = std::fs::remove_file(&tmp);
    let name = format!(
        "三进台账_{}_{}.{}",
        query.from,
        query.to,
        format.extension()
    );
    Ok((name, format, out?))
}

/// An export that failed: logged, and said to the staff member in Chinese with what to do (a
/// row's error names its ledger, row, record and column).
fn export_failed(e: &sanjin_ledger::Error, s: &Session) -> ConsoleError {
    tracing::error!(member = %s.account.member, error = %e, "console export failed");
    match e {
        // The data of one record, not the server: nothing a retry would fix.
        sanjin_ledger::Error::Row { .. } => ErrorKind::Unprocessable(e.zh()),
        _ => ErrorKind::Internal(e.zh()),
    }
    .into()
}

fn tempfile_path(dir: &Path, format: Format) -> std::path::PathBuf {
    let n: [u8; 8] = crate::data::random();
    dir.join(format!(".export-{}.{}", hex::encode(n), format.extension()))
}

#[cfg(test)]
mod issue10_export_errors {
    use super::*;
    use crate::model::Account;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    #[tokio::test]
    async fn issue10_console_export_failure_names_the_record_in_chinese() {
        let s = Session {
            account: Account::new("office-01", Role::Staff, None, "王秘书"),
            csrf: "t".into(),
        };
        let e = sanjin_ledger::Error::Row {
            sheet: "社情民意台账",
            row: 7,
            key: "记录编号 opinion-0042".into(),
            column: "内容",
            reason: "Excel 无法保存这一格。请在工作台打开该记录核对这一栏，或改用 CSV 格式导出"
                .into(),
        };
        let r = export_failed(&e, &s).seen_by(&s).into_response();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        for needle in ["社情民意台账", "第 7 行", "opinion-0042", "内容", "CSV"] {
            assert!(body.contains(needle), "{needle}: {body}");
        }
        // Not a record's fault: still Chinese, still says what to do.
        let io = sanjin_ledger::Error::Io {
            path: "/data/.export-1.xlsx".into(),
            source: std::io::Error::other("disk full"),
        };
        let r = export_failed(&io, &s).seen_by(&s).into_response();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            body.contains("无法写入") && body.contains("请检查磁盘空间"),
            "{body}"
        );
    }
}
