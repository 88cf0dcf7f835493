//! The member's yearly record (履职档案, issue 13): `/console/members/{id}?year=YYYY`, one
//! printable page per member — the year's figures, the visits they took part in, their opinion
//! notes and where each stands, the households they are paired with or assisted, the plan
//! items they own. Gathered by [`sanjin_ledger::Ledger::member_record`], which enforces the
//! roles (staff: any member; a leader: the group's members). Printed, the page drops the
//! header's navigation (the stylesheet's `@media print`).

use std::path::Path;

use chrono::Datelike;
use maud::{Markup, html};
use sanjin_core::workflow::State;
use sanjin_ledger::{Ledger, MemberRecord};
use serde::Deserialize;

use super::error::ConsoleError;
use super::html::{member_link as link, url};
use super::pages::signed_page;
use super::{Session, viewer};

/// The query of the member page: the year (this year by default).
#[derive(Debug, Default, Deserialize)]
pub struct MemberQuery {
    pub year: Option<String>,
}

fn this_year() -> i32 {
    (chrono::Utc::now() + chrono::Duration::hours(8)).year()
}

/// The page of `member` (the path's id) for the signed-in account.
pub(super) fn member_page(
    dir: &Path,
    s: &Session,
    member: &str,
    q: &MemberQuery,
) -> Result<Markup, ConsoleError> {
    let year = year_of(q)?;
    let mut ledger = Ledger::open(dir).map_err(ConsoleError::internal)?;
    let rec = ledger
        .member_record(&viewer(s), member, year)
        .map_err(ledger_error)?;
    let title = format!("{} {} 年度履职档案", rec.name, rec.year);
    Ok(signed_page(&title, s, render(&title, &rec)))
}

fn render(title: &str, r: &MemberRecord) -> Markup {
    html! {
        div class="record-sheet" {
            h1 { (title) }
            p {
                "委员编号 " (r.member) " · " (r.chapter)
                @if let Some(c) = &r.committee { " · " (c) }
                " · " (r.group)
                @if !r.sector.is_empty() { " · 界别：" (r.sector) }
            }
            form method="get" action=(format!("/console/members/{}", url(&r.member))) class="filters noprint" {
                label { "年度" input name="year" value=(r.year) inputmode="numeric" size="6"; }
                button class="primary" type="submit" { "查看" }
                a href=(link(&r.member, r.year - 1)) { "上一年" }
                a href=(link(&r.member, r.year + 1)) { "下一年" }
            }
            (figures(r))
            (activities(r))
            (opinions(r))
            (households(r))
            (plan(r))
            p class="note" { "本档案由三进工作台根据已同步的记录生成；打印时不含页面导航。" }
        }
    }
}

fn figures(r: &MemberRecord) -> Markup {
    let t = &r.totals;
    let six: Vec<&str> = t.six.iter().map(|a| a.zh()).collect();
    html! {
        h2 { "年度统计" }
        div class="grid" id="figures" {
            div class="stat" { b { (t.visits) } "参加活动（次）" }
            div class="stat" { b { (t.six_visits) } "其中六个一（次）" }
            div class="stat" { b { (t.opinions) } "记录社情民意（条）" }
            div class="stat" { b { (t.submitted) } "其中已报送（条）" }
            div class="stat" { b { (t.feedback) } "已反馈（条）" }
            div class="stat" { b { (t.households_assisted) } "帮扶困难户（户）" }
            div class="stat" { b { (t.assistance) } "帮扶记录（次）" }
            div class="stat" { b { (t.plan_done) " / " (t.plan_items) } "负责计划已落实 / 计划项" }
        }
        p { "六个一覆盖：" @if six.is_empty() { "无" } @else { (six.join("、")) } }
    }
}

fn activities(r: &MemberRecord) -> Markup {
    html! {
        h2 { "参加的活动（" (r.activities.len()) "）" }
        @if r.activities.is_empty() {
            p class="note" { "本年度没有参加活动的记录。" }
        } @else {
            div class="scroll" {
                table id="activities" {
                    thead { tr { th { "日期" } th { "标题" } th { "活动形式" } th { "活动组" } th { "联系点" } th { "角色" } th { "状态" } } }
                    tbody {
                        @for a in &r.activities {
                            tr {
                                td { (a.date) }
                                td class="wrap" { a href=(format!("/console/records/{}", url(&a.id))) { (a.title) } }
                                td { (a.activity_type.zh()) }
                                td { (a.group) }
                                td { (a.contact_point) }
                                td { (a.role) }
                                td { (a.state.zh()) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn opinions(r: &MemberRecord) -> Markup {
    html! {
        h2 { "社情民意及办理结果（" (r.opinions.len()) "）" }
        @if r.opinions.is_empty() {
            p class="note" { "本年度没有记录社情民意。" }
        } @else {
            div class="scroll" {
                table id="opinions" {
                    thead { tr { th { "日期" } th { "主题" } th { "内容" } th { "状态" } th { "承办单位" } th { "办理情况" } th { "反馈" } } }
                    tbody {
                        @for o in &r.opinions {
                            tr {
                                td { (o.date) }
                                td { a href=(format!("/console/records/{}", url(&o.id))) { (o.topic) } }
                                td class="wrap" { (o.text) }
                                td {
                                    (o.state.zh())
                                    @if o.state == State::Returned {
                                        @if let Some(why) = o.returned.as_deref().filter(|w| !w.is_empty()) { "：" (why) }
                                    }
                                }
                                td {
                                    @if let Some(u) = &o.unit { (u) }
                                    @if let Some(d) = o.due { br; span class="note" { "限 " (d) " 前" } }
                                }
                                td class="wrap" { @if let Some(h) = &o.handling { (h) } }
                                td class="wrap" { @if let Some(f) = &o.feedback { (f) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn households(r: &MemberRecord) -> Markup {
    html! {
        h2 { "结对帮扶（" (r.households.len()) " 户）" }
        @if r.households.is_empty() {
            p class="note" { "本年度没有结对或帮扶困难户的记录。" }
        } @else {
            div class="scroll" {
                table id="households" {
                    thead { tr { th { "户主" } th { "联系点" } th { "结对" } th { "本年帮扶" } } }
                    tbody {
                        @for h in &r.households {
                            tr {
                                td { a href=(format!("/console/records/{}", url(&h.id))) { (h.head_name) } }
                                td { (h.contact_point) }
                                td { @if h.paired { "结对委员" } @else { "—" } }
                                td class="wrap" {
                                    @if h.entries.is_empty() { "本年度无帮扶记录" }
                                    @for (d, action, amount) in &h.entries {
                                        div { (d) " " (action) @if let Some(a) = amount { "（" (a) " 元）" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn plan(r: &MemberRecord) -> Markup {
    html! {
        h2 { "负责的计划项（" (r.plan.len()) "）" }
        p class="note" id="plan-rule" { (sanjin_ledger::plans::RULE_ZH) }
        @if r.plan.is_empty() {
            p class="note" { "本年度没有由本人负责的计划项。" }
        } @else {
            div class="scroll" {
                table id="plan" {
                    thead { tr { th { "季度" } th { "月" } th { "活动形式" } th { "计划内容" } th { "已落实" } } }
                    tbody {
                        @for p in &r.plan {
                            tr {
                                td { (p.quarter) }
                                td { (p.month) }
                                td { (p.activity_type.zh()) }
                                td class="wrap" { a href=(format!("/console/records/{}", url(&p.id))) { (p.title) } }
                                td {
                                    @if let Some(v) = &p.visit {
                                        span class="ok" { "是" } "（" a href=(format!("/console/records/{}", url(v))) { "活动" } "）"
                                    } @else { span class="warn" { "否" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The year of a query: this year by default, a Chinese page for anything but a number.
fn year_of(q: &MemberQuery) -> Result<i32, ConsoleError> {
    match q.year.as_deref().map(str::trim).filter(|y| !y.is_empty()) {
        None => Ok(this_year()),
        Some(y) => y.parse::<i32>().map_err(|_| {
            ConsoleError::bad(format!("年份“{y}”不对，请输入四位数的年份，例如 2025"))
        }),
    }
}

fn ledger_error(e: sanjin_ledger::Error) -> ConsoleError {
    match e {
        sanjin_ledger::Error::Forbidden(m) => ConsoleError::forbidden(m),
        sanjin_ledger::Error::Invalid(m) => ConsoleError::bad(m),
        e => ConsoleError::internal(e),
    }
}

/// The year's assessment table (履职考核表): every member the account may see, each name
/// linked to the member's record, and the XLSX download.
pub(super) fn assessment_page(
    dir: &Path,
    s: &Session,
    q: &MemberQuery,
) -> Result<Markup, ConsoleError> {
    let year = year_of(q)?;
    let mut ledger = Ledger::open(dir).map_err(ConsoleError::internal)?;
    let rows = ledger.assessment(&viewer(s), year).map_err(ledger_error)?;
    let title = format!("{year} 年度委员履职考核");
    let body = html! {
        h1 { (title) }
        form method="get" action="/console/assessment" class="filters noprint" {
            label { "年度" input name="year" value=(year) inputmode="numeric" size="6"; }
            button class="primary" type="submit" { "查看" }
            a class="button" id="assessment-xlsx" href=(format!("/console/assessment/file?year={year}")) { "下载 Excel" }
        }
        p { "共 " (rows.len()) " 位委员。点姓名查看本人履职档案。" }
        div class="scroll" {
            table id="assessment" {
                thead { tr { @for c in sanjin_ledger::ASSESSMENT_COLUMNS { th { (c) } } } }
                tbody {
                    @for r in &rows {
                        @let t = &r.totals;
                        tr {
                            td { (r.member) }
                            td { a href=(link(&r.member, year)) { (r.name) } }
                            td { (r.group) }
                            td { (r.sector) }
                            td { (t.visits) }
                            td { (t.six_visits) }
                            td { (t.six.len()) }
                            td { (t.opinions) }
                            td { (t.submitted) }
                            td { (t.feedback) }
                            td { (t.households_assisted) }
                            td { (t.assistance) }
                            td { (t.plan_done) "/" (t.plan_items) }
                        }
                    }
                }
            }
        }
    };
    Ok(signed_page(&title, s, body))
}

/// The assessment table as an XLSX workbook: (file name, bytes).
pub(super) fn assessment_file(
    dir: &Path,
    s: &Session,
    q: &MemberQuery,
) -> Result<(String, Vec<u8>), ConsoleError> {
    let year = year_of(q)?;
    let mut ledger = Ledger::open(dir).map_err(ConsoleError::internal)?;
    let bytes = ledger
        .assessment_xlsx(&viewer(s), year)
        .map_err(ledger_error)?;
    Ok((format!("{year}年度委员履职考核.xlsx"), bytes))
}
