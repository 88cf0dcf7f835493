//! `GET /console/opinions` (issue 13): the opinions to handle, with their state, the unit each
//! went to, its due day and whether it is overdue; filters by state, group, unit and overdue.
//!
//! State and group are the store's index; the unit and due day live in the forward event of
//! the document, so they are read from the documents: of the page shown, or — when filtering
//! by unit or overdue — of the opinions in the states that can have a unit (forwarded and
//! after), never of all of them.
//!
//! Issue 13: the list is the account's scope (`Account::read_scope`): staff of a county chapter
//! see its groups' opinions; the legal advisory group's leader sees the group's own and every
//! group's legal appeals (法律诉求), which the 类别 filter picks out.

use std::collections::HashMap;
use std::path::Path;

use chrono::NaiveDate;
use maud::{Markup, html};
use sanjin_core::IndexEntry;
use sanjin_core::domain::{OpinionKind, RecordKind};
use sanjin_core::workflow::{self, Assignment, State};
use sanjin_store::server::ServerStorage;
use serde::Deserialize;

use super::Session;
use super::actions::{today, units};
use super::error::ConsoleError;
use super::html::url;
use super::pages::{self, group_param};

const PAGE_SIZE: usize = 50;

/// `/console/opinions?state=…&group=…&unit=…&overdue=1&page=2`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct OpinionsQuery {
    pub state: Option<String>,
    pub group: Option<String>,
    pub unit: Option<String>,
    pub overdue: Option<String>,
    pub page: Option<String>,
    /// The opinion kind's code (`legal_appeal`: 法律诉求).
    pub kind: Option<String>,
}

/// One opinion of the list.
pub(crate) struct Row {
    pub entry: IndexEntry,
    pub state: State,
    pub assignment: Option<Assignment>,
    pub overdue: bool,
}

pub(crate) struct OpinionsData {
    pub total: usize,
    pub rows: Vec<Row>,
    pub names: HashMap<String, String>,
    pub units: Vec<(String, String)>,
    pub groups: Vec<(String, String)>,
}

struct Filters {
    state: Option<State>,
    kind: Option<OpinionKind>,
    group: Option<String>,
    /// What the account may list (issue 13).
    scope: Option<sanjin_store::ReadScope>,
    unit: Option<String>,
    overdue: bool,
    page_no: usize,
}

pub(super) fn opinions(dir: &Path, s: &Session, q: &OpinionsQuery) -> Result<Markup, ConsoleError> {
    fn nonempty(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }
    let state = match nonempty(&q.state) {
        None => None,
        Some(v) => Some(
            State::parse(v)
                .filter(|st| workflow::states(RecordKind::Opinion).contains(st))
                .ok_or_else(|| ConsoleError::bad(format!("没有“{v}”这个办理状态")))?,
        ),
    };
    let kind = match nonempty(&q.kind) {
        None => None,
        Some(v) => Some(
            OpinionKind::parse(v).ok_or_else(|| ConsoleError::bad(format!("没有“{v}”这个类别")))?,
        ),
    };
    let scope = super::read_scope(s);
    let mut group = group_param(s, q.group.as_deref())?;
    // The legal advisory group's leader: the group's opinions and every group's legal appeals
    // (the scope says which), unless one group is asked for.
    if nonempty(&q.group).is_none() && scope.as_ref().is_some_and(|sc| sc.legal_appeals) {
        group = None;
    }
    let f = Filters {
        state,
        kind,
        group,
        scope,
        unit: nonempty(&q.unit).map(str::to_string),
        overdue: q.overdue.as_deref() == Some("1"),
        page_no: q
            .page
            .as_deref()
            .and_then(|p| p.parse().ok())
            .unwrap_or(1)
            .max(1),
    };
    let ledger = sanjin_ledger::Ledger::open(dir).map_err(ConsoleError::internal)?;
    let mut data = load(ledger.store(), &f)?;
    if let Some(sc) = &f.scope {
        data.groups.retain(|(g, _)| sc.groups.contains(g));
    }
    Ok(pages::signed_page(
        "社情民意办理",
        s,
        render(s, q, &f, &data),
    ))
}

fn row_of(
    store: &dyn ServerStorage,
    entry: IndexEntry,
    today: NaiveDate,
) -> Result<Row, ConsoleError> {
    let mut doc = store.load(&entry.id).map_err(ConsoleError::internal)?;
    let view = doc.view().map_err(ConsoleError::internal)?;
    let assignment = workflow::assignment(&view.events);
    let overdue = workflow::overdue(view.status, assignment.as_ref(), today);
    Ok(Row {
        entry,
        state: view.status,
        assignment,
        overdue,
    })
}

fn load(store: &dyn ServerStorage, f: &Filters) -> Result<OpinionsData, ConsoleError> {
    let today = today();
    let base = sanjin_store::Filter {
        kind: Some(RecordKind::Opinion),
        group: f.group.clone(),
        status: f.state.map(|s| s.code().to_string()),
        type_code: f.kind.map(|k| k.code().to_string()),
        scope: f.scope.clone(),
        ..sanjin_store::Filter::default()
    };
    let offset = (f.page_no - 1) * PAGE_SIZE;
    let (total, rows) = if f.unit.is_some() || f.overdue {
        // Only opinions that went to a unit can match: read those documents.
        let can_have_unit = [State::Forwarded, State::Handled, State::FeedbackGiven];
        let states: Vec<State> = match f.state {
            Some(st) => vec![st],
            None if f.overdue => vec![State::Forwarded],
            None => can_have_unit.to_vec(),
        };
        let mut matching = Vec::new();
        for st in states {
            let filter = sanjin_store::Filter {
                status: Some(st.code().into()),
                ..base.clone()
            };
            for e in store.list(&filter).map_err(ConsoleError::internal)? {
                let row = row_of(store, e, today)?;
                let unit_ok = f
                    .unit
                    .as_deref()
                    .is_none_or(|u| row.assignment.as_ref().is_some_and(|a| a.unit == u));
                if unit_ok && (!f.overdue || row.overdue) {
                    matching.push(row);
                }
            }
        }
        matching.sort_by(|a, b| {
            b.entry
                .date
                .cmp(&a.entry.date)
                .then(a.entry.id.cmp(&b.entry.id))
        });
        let total = matching.len();
        (
            total,
            matching.into_iter().skip(offset).take(PAGE_SIZE).collect(),
        )
    } else {
        let (total, page) = store
            .page(&base, offset, PAGE_SIZE)
            .map_err(ConsoleError::internal)?;
        let rows = page
            .into_iter()
            .map(|e| row_of(store, e, today))
            .collect::<Result<Vec<_>, _>>()?;
        (total as usize, rows)
    };
    let names: HashMap<String, String> = store
        .names()
        .map_err(ConsoleError::internal)?
        .into_iter()
        .collect();
    let mut groups: Vec<(String, String)> = names
        .iter()
        .filter(|(k, _)| k.starts_with("group-"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    groups.sort();
    Ok(OpinionsData {
        total,
        rows,
        units: units(store)?,
        names,
        groups,
    })
}

fn render(s: &Session, q: &OpinionsQuery, f: &Filters, d: &OpinionsData) -> Markup {
    let name = |id: &str| d.names.get(id).cloned().unwrap_or_else(|| id.to_string());
    let mut base = "/console/opinions?".to_string();
    for (k, v) in [
        ("state", &q.state),
        ("kind", &q.kind),
        ("group", &q.group),
        ("unit", &q.unit),
        ("overdue", &q.overdue),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            base.push_str(&format!("{k}={}&", url(v)));
        }
    }
    let pages = d.total.div_ceil(PAGE_SIZE).max(1);
    html! {
        h1 { "社情民意办理" }
        form class="filters card" method="get" action="/console/opinions" id="o-filters" {
            label {
                "办理状态"
                select name="state" id="o-state" {
                    option value="" { "全部" }
                    @for st in workflow::states(RecordKind::Opinion) {
                        option value=(st.code()) selected[f.state == Some(*st)] { (st.zh()) }
                    }
                }
            }
            label {
                "类别"
                select name="kind" id="o-kind" {
                    option value="" { "全部" }
                    @for k in OpinionKind::ALL {
                        option value=(k.code()) selected[f.kind == Some(*k)] { (k.zh()) }
                    }
                }
            }
            @if super::viewer(s).is_office() {
                label {
                    "活动组"
                    select name="group" id="o-group" {
                        option value="" { "全部" }
                        @for (id, n) in &d.groups {
                            option value=(id) selected[f.group.as_deref() == Some(id.as_str())] { (n) }
                        }
                    }
                }
            }
            label {
                "承办单位"
                select name="unit" id="o-unit" {
                    option value="" { "全部" }
                    @for (id, n) in &d.units {
                        option value=(id) selected[f.unit.as_deref() == Some(id.as_str())] { (n) }
                    }
                }
            }
            label {
                "只看逾期"
                select name="overdue" id="o-overdue" {
                    option value="" { "否" }
                    option value="1" selected[f.overdue] { "是" }
                }
            }
            button class="primary" type="submit" id="o-submit" { "筛选" }
        }
        p id="o-total" { "共 " (d.total) " 条" }
        div class="scroll" {
            table id="opinions" {
                tr {
                    th { "记录日期" } th { "主题" } th { "活动组" } th { "类别" }
                    th { "状态" } th { "承办单位" } th { "答复期限" } th {}
                }
                @for r in &d.rows {
                    tr {
                        td { (r.entry.date.clone().unwrap_or_default()) }
                        td {
                            a href=(format!("/console/records/{}", url(&r.entry.id))) {
                                (if r.entry.title.is_empty() { &r.entry.id } else { &r.entry.title })
                            }
                        }
                        td { (r.entry.group.as_deref().map(&name).unwrap_or_default()) }
                        td { (r.entry.type_code.as_deref().and_then(OpinionKind::parse).map_or("", |k| k.zh())) }
                        td { (r.state.zh()) }
                        td { (r.assignment.as_ref().map(|a| name(&a.unit)).unwrap_or_default()) }
                        td { (r.assignment.as_ref().and_then(|a| a.due).map(|d| d.to_string()).unwrap_or_default()) }
                        td {
                            @if r.overdue { span class="warn overdue" { "已逾期" } }
                        }
                    }
                }
            }
        }
        div class="pager" {
            @if f.page_no > 1 {
                a href=(format!("{base}page={}", f.page_no - 1)) { "‹ 上一页" }
            }
            span { "第 " (f.page_no) " / " (pages) " 页" }
            @if f.page_no < pages {
                a href=(format!("{base}page={}", f.page_no + 1)) { "下一页 ›" }
            }
        }
    }
}
