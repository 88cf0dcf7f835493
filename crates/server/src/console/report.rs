//! The quarterly report (季度通报, issue 13) for the chairman's meeting:
//! `GET /console/report?year=&quarter=` shows its figures as a printable page (sentences, the
//! comparison with the previous quarter, months, opinion handling, the groups ranked, "六个一",
//! notable opinion notes, the groups and members to be urged), and
//! `GET /console/report/file?year=&quarter=` downloads it as the editable XLSX workbook with
//! native charts ([`sanjin_ledger::QuarterlyReport::xlsx`]). Counted by
//! [`sanjin_ledger::Ledger::quarterly_report`], which scopes it by the viewer (staff: the whole;
//! a leader: the group; a member: refused). Without a quarter, the page opens on the last full
//! quarter with visits and says so.

use std::path::Path;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use sanjin_ledger::{Ledger, Quarter, QuarterlyReport, Value};
use serde::Deserialize;

use super::error::ConsoleError;
use super::extract::{ConsoleQuery, SignedIn};
use super::html::url;
use super::pages::signed_page;
use super::{Session, blocking, data_dir, read_page, viewer};
use crate::state::AppState;

/// The query of the report's page and file: the year and the quarter (1–4); both or neither.
#[derive(Debug, Default, Deserialize)]
pub struct ReportQuery {
    pub year: Option<String>,
    pub quarter: Option<String>,
}

fn today() -> chrono::NaiveDate {
    (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive()
}

fn ledger_error(e: sanjin_ledger::Error) -> ConsoleError {
    match e {
        sanjin_ledger::Error::Forbidden(m) => ConsoleError::forbidden(m),
        sanjin_ledger::Error::Invalid(m) => ConsoleError::bad(m),
        e => ConsoleError::internal(e),
    }
}

/// The quarter asked for, or `None` for the default; a Chinese page for anything else.
fn asked(q: &ReportQuery) -> Result<Option<Quarter>, ConsoleError> {
    let field = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    match (field(&q.year), field(&q.quarter)) {
        (None, None) => Ok(None),
        (Some(y), Some(n)) => {
            let year = y.parse::<i32>().map_err(|_| {
                ConsoleError::bad(format!("年份“{y}”不对，请输入四位数的年份，例如 2025"))
            })?;
            let quarter = n
                .parse::<u32>()
                .map_err(|_| ConsoleError::bad(format!("季度“{n}”不对，请选择第 1 到第 4 季度")))?;
            Quarter::new(year, quarter).map(Some).map_err(ledger_error)
        }
        _ => Err(ConsoleError::bad(
            "请同时选择年份和季度，例如 2025 年第 2 季度",
        )),
    }
}

/// The report of the quarter asked for (or the default one, with a note saying which).
fn load(
    dir: &Path,
    s: &Session,
    q: &ReportQuery,
) -> Result<(QuarterlyReport, Option<String>), ConsoleError> {
    let mut ledger = Ledger::open(dir).map_err(ConsoleError::internal)?;
    let (quarter, note) = match asked(q)? {
        Some(qr) => (qr, None),
        None => {
            let today = today();
            let qr = ledger.default_report_quarter(today).map_err(ledger_error)?;
            let last = Quarter::of(today).previous();
            let note = if qr == last {
                format!("默认显示上一个季度（{}）。", qr.zh())
            } else {
                format!(
                    "{}没有活动记录，显示有活动记录的最近一个季度（{}）。",
                    last.zh(),
                    qr.zh()
                )
            };
            (qr, Some(note))
        }
    };
    let report = ledger
        .quarterly_report(&viewer(s), quarter.year, quarter.quarter)
        .map_err(ledger_error)?;
    Ok((report, note))
}

fn file_link(qr: Quarter) -> String {
    format!(
        "/console/report/file?year={}&quarter={}",
        qr.year, qr.quarter
    )
}

fn page_link(qr: Quarter) -> String {
    format!("/console/report?year={}&quarter={}", qr.year, qr.quarter)
}

/// The page.
fn page(dir: &Path, s: &Session, q: &ReportQuery) -> Result<Markup, ConsoleError> {
    let (r, note) = load(dir, s, q)?;
    let title = r.title();
    Ok(signed_page(&title, s, render(&r, note.as_deref())))
}

fn render(r: &QuarterlyReport, note: Option<&str>) -> Markup {
    let qr = r.quarter;
    let next = Quarter::new(
        if qr.quarter == 4 {
            qr.year + 1
        } else {
            qr.year
        },
        qr.quarter % 4 + 1,
    )
    .ok();
    html! {
        div class="record-sheet" id="report" {
            h1 { (r.title()) }
            p { "统计范围：" (r.scope) " · 统计期间：" (r.period()) " · 生成日期：" (r.generated_on) }
            @if let Some(n) = note { p class="note noprint" { (n) } }
            form method="get" action="/console/report" class="filters noprint" {
                label { "年度" input name="year" value=(qr.year) inputmode="numeric" size="6"; }
                label { "季度"
                    select name="quarter" {
                        @for n in 1..=4u32 {
                            option value=(n) selected[n == qr.quarter] { "第" (n) "季度" }
                        }
                    }
                }
                button class="primary" type="submit" { "查看" }
                a class="button" id="report-xlsx" href=(file_link(qr)) { "下载 Excel（可编辑，含图表）" }
                a href=(page_link(qr.previous())) { "上一季度" }
                @if let Some(n) = next { a href=(page_link(n)) { "下一季度" } }
            }
            h2 { "一、总体情况" }
            div id="sentences" {
                @for s in r.sentences() { p { (s) } }
            }
            (comparison(r))
            (months(r))
            (opinions(r))
            (groups(r))
            (six_ones(r))
            (notable(r))
            (idle(r))
            p class="note" { "本通报由三进工作台根据已同步的记录生成，统计口径与《三进工作台账》相同。下载的 Excel 文件可直接修改文字和数字，图表随表格中的数字更新；打印本页时不含页面导航。" }
        }
    }
}

fn change(v: Option<f64>) -> String {
    match v {
        None => "—".into(),
        Some(d) if d > 0.0 => format!("+{}", sanjin_ledger::sink::format_num(d)),
        Some(d) => sanjin_ledger::sink::format_num(d),
    }
}

fn comparison(r: &QuarterlyReport) -> Markup {
    html! {
        h2 { "二、主要数据（与" (r.previous_quarter.zh()) "比较）" }
        div class="scroll" {
            table id="figures" {
                thead { tr { th { "项目" } th { "本季度" } th { "上季度" } th { "增减" } } }
                tbody {
                    @for ((what, now), (_, before)) in r.current.lines().into_iter().zip(r.previous.lines()) {
                        tr {
                            td { (what) }
                            td { (now.zh()) }
                            td { (before.zh()) }
                            td { (change(Value::change(now, before))) }
                        }
                    }
                }
            }
        }
    }
}

/// A bar `n` of `max` wide (a class, no inline style).
fn bar(n: i64, max: i64) -> Markup {
    let w = if max > 0 {
        (n * 100 / max).clamp(0, 100)
    } else {
        0
    };
    html! { div class="bar" { i class=(format!("w{w}")) {} } }
}

fn months(r: &QuarterlyReport) -> Markup {
    let titles = r.month_titles();
    let totals = r.month_totals();
    html! {
        h2 { "三、各月活动情况（按活动形式）" }
        div class="scroll" {
            table id="months" {
                thead { tr { th { "活动形式" } @for t in &titles { th { (t) } } th { "合计" } } }
                tbody {
                    @for (ty, counts) in &r.by_month {
                        tr { td { (ty.zh()) } @for n in counts { td { (n) } } td { (counts.iter().sum::<i64>()) } }
                    }
                    tr { th { "合计" } @for n in totals { th { (n) } } th { (totals.iter().sum::<i64>()) } }
                }
            }
        }
    }
}

fn opinions(r: &QuarterlyReport) -> Markup {
    let total = r.current.opinions;
    html! {
        h2 { "四、社情民意办理情况" }
        p {
            "按类别："
            @for (i, (k, n)) in r.by_kind.iter().enumerate() {
                @if i > 0 { "、" }
                (k.zh()) " " (n) " 条"
            }
            "。下表为各条目前的办理状态。"
        }
        div class="scroll" {
            table id="states" {
                thead { tr { th { "办理状态" } th { "条数" } th { "占比（%）" } th class="barcell" {} } }
                tbody {
                    @for (s, n) in &r.by_state {
                        tr {
                            td { (s.zh()) }
                            td { (n) }
                            td { (Value::Percent(sanjin_ledger::percent(*n, total)).zh()) }
                            td class="barcell" { (bar(*n, total)) }
                        }
                    }
                }
            }
        }
    }
}

fn groups(r: &QuarterlyReport) -> Markup {
    let max = r.groups.iter().map(|g| g.visits).max().unwrap_or(0);
    html! {
        h2 { "五、各活动组开展情况（按活动次数排序）" }
        div class="scroll" {
            table id="groups" {
                thead { tr {
                    th { "排名" } th { "活动组" } th { "组长" } th { "活动（次）" } th class="barcell" {}
                    th { "委员（人）" } th { "参与委员（人）" } th { "参与率（%）" }
                    th { "社情民意（条）" } th { "帮扶（次）" } th { "计划（项）" } th { "已落实（项）" }
                } }
                tbody {
                    @for g in &r.groups {
                        tr {
                            td { (g.rank) }
                            td { (g.name) }
                            td { (g.leader) }
                            td { (g.visits) }
                            td class="barcell" { (bar(g.visits, max)) }
                            td { (g.members) }
                            td { (g.members_active) }
                            td { (Value::Percent(g.participation()).zh()) }
                            td { (g.opinions) }
                            td { (g.assistance_entries) }
                            td { (g.planned) }
                            td {
                                (g.plan_done)
                                @if g.plan_done < g.planned { " " span class="warn" { "（差 " (g.planned - g.plan_done) "）" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn six_ones(r: &QuarterlyReport) -> Markup {
    html! {
        h2 { "六、「六个一」完成情况（" (r.quarter.year) " 年 1 月 1 日至 " (r.to) "）" }
        div class="scroll" {
            table id="six-ones" {
                thead { tr {
                    th { "活动组" }
                    @for t in sanjin_core::domain::ActivityType::SIX_ONES { th { (t.zh()) } }
                    th { "完成项数" } th { "未完成项目" }
                } }
                tbody {
                    @for s in &r.six_ones {
                        @let missing: Vec<&str> = s.missing().iter().map(|t| t.zh()).collect();
                        tr {
                            td { (s.name) }
                            @for n in s.counts { td { (n) } }
                            td { (s.done()) " / 6" }
                            td class="wrap" {
                                @if missing.is_empty() { span class="ok" { "已全部完成" } }
                                @else { span class="warn" { (missing.join("、")) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn notable(r: &QuarterlyReport) -> Markup {
    html! {
        h2 { "七、值得关注的社情民意" }
        @if r.notable.is_empty() {
            p class="note" { "本季度没有紧急、特急或已反馈的社情民意。" }
        } @else {
            div class="scroll" {
                table id="notable" {
                    thead { tr { th { "日期" } th { "活动组" } th { "紧急程度" } th { "办理状态" } th { "主题" } th { "内容" } } }
                    tbody {
                        @for n in &r.notable {
                            tr {
                                td { (n.date) }
                                td { (n.group) }
                                td { (n.urgency.zh()) }
                                td { (n.state.zh()) }
                                td { a href=(format!("/console/records/{}", url(&n.id))) { (n.topic) } }
                                td class="wrap" { (n.text) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn idle(r: &QuarterlyReport) -> Markup {
    html! {
        h2 { "八、需督促的活动组和委员" }
        @if r.idle_groups.is_empty() {
            p { "本季度各活动组均有活动记录。" }
        } @else {
            p id="idle-groups" { "本季度没有活动记录的活动组（" (r.idle_groups.len()) " 个）：" (r.idle_groups.join("、")) "。" }
        }
        @if r.idle_members.is_empty() {
            p { "本季度每位委员都有履职记录。" }
        } @else {
            div class="scroll" {
                table id="idle" {
                    thead { tr { th { "活动组" } th { "组长" } th { "未参与（人）" } th { "未参加活动、未记录社情民意、无帮扶记录的委员" } } }
                    tbody {
                        @for g in &r.idle_members {
                            tr {
                                td { (g.group) }
                                td { (g.leader) }
                                td { (g.members.len()) }
                                td class="wrap" { (g.members.join("、")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /console/report`.
pub(super) async fn report_page(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    ConsoleQuery(q): ConsoleQuery<ReportQuery>,
) -> Result<Response, ConsoleError> {
    read_page(&state, s, q, page).await
}

/// `GET /console/report/file`: the workbook, named in Chinese (RFC 5987) with an ASCII
/// fallback.
pub(super) async fn report_file(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    ConsoleQuery(q): ConsoleQuery<ReportQuery>,
) -> Result<Response, ConsoleError> {
    let who = s.clone();
    let dir = data_dir(&state).await.map_err(|e| e.seen_by(&who))?;
    let member = s.account.member.clone();
    let (report, bytes) = blocking(move || {
        let (report, _) = load(&dir, &s, &q)?;
        let bytes = report.xlsx().map_err(ConsoleError::internal)?;
        Ok::<_, ConsoleError>((report, bytes))
    })
    .await
    .and_then(|r| r)
    .map_err(|e| e.seen_by(&who))?;
    let name = format!("{}.xlsx", report.title());
    tracing::info!(member = %member, file = %name, bytes = bytes.len(), "console quarterly report");
    Ok(super::attachment(
        sanjin_ledger::Format::Xlsx.content_type(),
        &format!("sanjin-report-{}.xlsx", report.quarter.code()),
        &name,
        bytes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue13_report_query_takes_both_or_neither() {
        let q = |y: Option<&str>, n: Option<&str>| ReportQuery {
            year: y.map(str::to_string),
            quarter: n.map(str::to_string),
        };
        assert_eq!(asked(&q(None, None)).unwrap(), None);
        assert_eq!(asked(&q(Some(" "), Some(""))).unwrap(), None);
        assert_eq!(
            asked(&q(Some("2025"), Some("2"))).unwrap(),
            Some(Quarter::new(2025, 2).unwrap())
        );
        for (y, n) in [
            (Some("2025"), None),
            (None, Some("2")),
            (Some("abc"), Some("2")),
            (Some("2025"), Some("5")),
            (Some("2025"), Some("二")),
        ] {
            assert!(asked(&q(y, n)).is_err(), "{y:?} {n:?}");
        }
    }
}
