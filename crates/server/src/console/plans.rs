//! The year's plan in the console (issue 13): `/console/plans` lists the plan items of a year
//! (by quarter, month and owner) with whether each was carried out and the totals per group and
//! per member (`sanjin_ledger::Ledger::plans`, from the projection, the rule on the page);
//! `/console/plans/new` and `/console/plans/{id}/edit` create and edit items; the Excel import
//! is `plans_import.rs`.
//!
//! A plan item made or edited here is an automerge change made by the server under its own
//! actor, naming the staff member or leader (留痕), landed with `land_local` (store and change
//! log in one transaction), so phones receive it at their next sync; an edit changes the
//! item's document (only the fields that changed), never makes a new record. The fields are read
//! by `sanjin_core::input` — what phones build records with — plus the directory's checks: the
//! group exists, the owner is one of its members, the contact point one of its contact points.
//! Who may: `Account::may_write` (the phones' rule): staff any group, a leader the group's own
//! items, admins and members not.

use std::collections::{BTreeMap, HashMap};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use chrono::Datelike;
use maud::{Markup, html};
use sanjin_core::domain::{ActivityType, PlanItem, RecordData, RecordKind};
use sanjin_core::{Author, RecordDoc, doc::Edit, input};
use sanjin_ledger::plans::{PlanBoard, PlanQuery, RULE_ZH};
use sanjin_ledger::{Ledger, Viewer};
use sanjin_store::server::ServerStorage;
use sanjin_store::{Filter, now_ms};
use serde::Deserialize;
use serde_json::Value;

use super::error::ConsoleError;
use super::extract::{ConsoleForm, ConsoleQuery, SignedIn};
use super::html::{member_link, url};
use super::pages::signed_page;
use super::{
    FORM_BODY_BYTES, Session, blocking, csrf_ok, data_dir, expired, html_response, redirect,
    viewer, with_data,
};
use crate::data::{SERVER_ID, ServerData};
use crate::model::{Account, Role};
use crate::state::AppState;

/// The plan's routes (merged into the console's by a line of `mod.rs`; the import's are
/// `plans_import::routes`).
pub(super) fn routes() -> Router<AppState> {
    let limit = || DefaultBodyLimit::max(FORM_BODY_BYTES);
    Router::new()
        .route("/console/plans", get(list_page).post(create).layer(limit()))
        .route("/console/plans/new", get(new_page))
        .route(
            "/console/plans/{id}/edit",
            get(edit_page).post(edit).layer(limit()),
        )
}

// ------------------------------------------------------------------ the directory as plans need it

/// A group as the plan forms need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GroupInfo {
    pub name: String,
    pub contact_points: Vec<String>,
}

/// Groups, members and contact points of the directory (tombstoned entries left out), read from
/// the server's storage when a plan item is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct PlanDir {
    pub groups: BTreeMap<String, GroupInfo>,
    /// Member id → (name, group).
    pub members: BTreeMap<String, (String, String)>,
    pub contact_points: BTreeMap<String, String>,
}

impl PlanDir {
    pub(super) fn load(store: &dyn ServerStorage) -> Result<PlanDir, ConsoleError> {
        let list = |kind: RecordKind| {
            store
                .list(&Filter {
                    kind: Some(kind),
                    ..Filter::default()
                })
                .map_err(ConsoleError::internal)
        };
        let mut d = PlanDir::default();
        for e in list(RecordKind::Group)? {
            if e.deleted {
                continue;
            }
            let doc = store.load(&e.id).map_err(ConsoleError::internal)?;
            if let RecordData::Group(g) = doc.data().map_err(ConsoleError::internal)? {
                d.groups.insert(
                    e.id,
                    GroupInfo {
                        name: g.name,
                        contact_points: g.contact_points,
                    },
                );
            }
        }
        for e in list(RecordKind::Member)? {
            if !e.deleted {
                d.members
                    .insert(e.id, (e.title, e.group.unwrap_or_default()));
            }
        }
        for e in list(RecordKind::ContactPoint)? {
            if !e.deleted {
                d.contact_points.insert(e.id, e.title);
            }
        }
        Ok(d)
    }

    pub(super) fn group_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.groups.get(id).map_or(id, |g| g.name.as_str())
    }

    pub(super) fn member_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.members.get(id).map_or(id, |m| m.0.as_str())
    }

    pub(super) fn contact_point_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.contact_points.get(id).map_or(id, String::as_str)
    }

    /// The groups `account` may plan for.
    pub(super) fn writable<'a>(&'a self, account: &'a Account) -> impl Iterator<Item = &'a str> {
        self.groups
            .keys()
            .map(String::as_str)
            .filter(|g| account.may_write(RecordKind::Plan, Some(g)))
    }
}

/// Why `account` may not plan for `group`, if it may not (the phones' rule, `may_write`).
pub(super) fn refusal(account: &Account, group: &str, name: &str) -> Option<String> {
    if account.may_write(RecordKind::Plan, Some(group)) {
        return None;
    }
    Some(match account.role {
        Role::Leader => format!(
            "组长只能制定和修改本组（{}）的计划，不能为{name}（{group}）制定或修改",
            account.group.as_deref().unwrap_or("—")
        ),
        Role::Admin => {
            "管理员账户不能制定或修改年度计划：计划由机关工作人员或活动组组长制定".into()
        }
        Role::Staff => format!("您的账户不能为{name}（{group}）制定或修改计划"),
        Role::Member => "委员账户不能使用工作台".into(),
    })
}

/// Refuses an account that may plan for no group at all.
fn may_plan(dir: &PlanDir, s: &Session) -> Result<(), ConsoleError> {
    if dir.writable(&s.account).next().is_some() {
        return Ok(());
    }
    let why = match s.account.role {
        Role::Admin => {
            "管理员账户不能制定或修改年度计划：计划由机关工作人员或活动组组长制定".to_string()
        }
        _ => "您的账户不能制定或修改年度计划".to_string(),
    };
    Err(ConsoleError::forbidden(why))
}

// ------------------------------------------------------------------ checking a plan item

/// A plan item as typed in the form or read from a sheet's row: every field as text, ids or
/// names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub(super) struct RawPlan {
    #[serde(default)]
    pub year: String,
    #[serde(default)]
    pub quarter: String,
    #[serde(default)]
    pub month: String,
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub activity_type: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub contact_point: String,
}

/// The fields in the order of the form, the sheet and the preview.
pub(super) const FIELDS: [&str; 8] = [
    "year",
    "quarter",
    "month",
    "group",
    "owner",
    "activity_type",
    "title",
    "contact_point",
];

/// What members call a plan item's field (the schema's label), `记录` for the whole item.
pub(super) fn label(field: &str) -> &'static str {
    sanjin_core::schema::field(RecordKind::Plan, field).map_or("整行", |f| f.zh)
}

impl RawPlan {
    pub(super) fn get(&self, field: &str) -> &str {
        match field {
            "year" => &self.year,
            "quarter" => &self.quarter,
            "month" => &self.month,
            "group" => &self.group,
            "owner" => &self.owner,
            "activity_type" => &self.activity_type,
            "title" => &self.title,
            _ => &self.contact_point,
        }
    }

    pub(super) fn set(&mut self, field: &str, value: String) {
        match field {
            "year" => self.year = value,
            "quarter" => self.quarter = value,
            "month" => self.month = value,
            "group" => self.group = value,
            "owner" => self.owner = value,
            "activity_type" => self.activity_type = value,
            "title" => self.title = value,
            _ => self.contact_point = value,
        }
    }

    /// The item as the form shows it (ids, codes).
    pub(super) fn of(p: &PlanItem) -> RawPlan {
        RawPlan {
            year: p.year.to_string(),
            quarter: p.quarter.to_string(),
            month: p.month.to_string(),
            group: p.group.clone(),
            owner: p.owner.clone(),
            activity_type: p.activity_type.code().into(),
            title: p.title.clone(),
            contact_point: p.contact_point.clone().unwrap_or_default(),
        }
    }
}

/// One field's error: the field (or `record`) and the message in Chinese naming it.
pub(super) type FieldError = (&'static str, String);

/// An id of `ids` given as itself or as the one entry whose name it is; `Err(n)` when `n > 1`
/// entries have that name, `Ok(None)` when none has.
fn resolve<'a>(
    input: &str,
    mut entries: impl Iterator<Item = (&'a String, &'a str)>,
) -> Result<Option<String>, usize> {
    let mut by_name = Vec::new();
    for (id, name) in &mut entries {
        if id == input {
            return Ok(Some(id.clone()));
        }
        if name == input {
            by_name.push(id.clone());
        }
    }
    match by_name.len() {
        0 => Ok(None),
        1 => Ok(by_name.pop()),
        n => Err(n),
    }
}

/// Checks a plan item typed by `account`: the directory (group, owner of the group, contact
/// point of the group), who may plan for the group, then every field and the rules spanning
/// fields by `sanjin_core::input` (what phones run). An empty quarter is the month's.
pub(super) fn check(
    raw: &RawPlan,
    dir: &PlanDir,
    account: &Account,
) -> Result<PlanItem, Vec<FieldError>> {
    let mut errors: Vec<FieldError> = Vec::new();
    let t = |s: &str| s.trim().to_string();
    let (group, owner, cp) = (t(&raw.group), t(&raw.owner), t(&raw.contact_point));

    let group_id = if group.is_empty() {
        errors.push(("group", "活动组：不能为空，请选择活动组".into()));
        None
    } else {
        match resolve(
            &group,
            dir.groups.iter().map(|(id, g)| (id, g.name.as_str())),
        ) {
            Ok(Some(g)) => Some(g),
            Ok(None) => {
                errors.push((
                    "group",
                    format!("活动组：“{group}”不在名录中，请填写名录中活动组的名称或编号"),
                ));
                None
            }
            Err(n) => {
                errors.push((
                    "group",
                    format!("活动组：名录中有 {n} 个活动组叫“{group}”，请改填编号"),
                ));
                None
            }
        }
    };
    if let Some(g) = &group_id
        && let Some(why) = refusal(account, g, dir.group_name(g))
    {
        errors.push(("group", format!("活动组：{why}")));
    }

    let owner_id = if owner.is_empty() {
        errors.push(("owner", "责任委员：不能为空，请选择本组委员".into()));
        None
    } else {
        // A name is looked up in the group first (two members of different groups may share it).
        let in_group = group_id.as_ref().and_then(|g| {
            resolve(
                &owner,
                dir.members
                    .iter()
                    .filter(|(_, m)| &m.1 == g)
                    .map(|(id, m)| (id, m.0.as_str())),
            )
            .ok()
            .flatten()
        });
        let found = match in_group {
            Some(m) => Ok(Some(m)),
            None => resolve(&owner, dir.members.iter().map(|(id, m)| (id, m.0.as_str()))),
        };
        match found {
            Ok(Some(m)) => Some(m),
            Ok(None) => {
                errors.push((
                    "owner",
                    format!("责任委员：“{owner}”不在委员名录中，请填写本组委员的姓名或编号"),
                ));
                None
            }
            Err(n) => {
                errors.push((
                    "owner",
                    format!("责任委员：名录中有 {n} 位委员叫“{owner}”，请改填委员编号"),
                ));
                None
            }
        }
    };
    if let (Some(g), Some(m)) = (&group_id, &owner_id)
        && let Some((name, mg)) = dir.members.get(m)
        && mg != g
    {
        errors.push((
            "owner",
            format!(
                "责任委员：{name}（{m}）属于{}，不是{}的成员；请填写本组委员",
                dir.group_name(mg),
                dir.group_name(g)
            ),
        ));
    }

    let cp_id = if cp.is_empty() {
        Some(String::new())
    } else {
        match resolve(
            &cp,
            dir.contact_points.iter().map(|(id, n)| (id, n.as_str())),
        ) {
            Ok(Some(c)) => {
                if let Some(g) = &group_id
                    && let Some(info) = dir.groups.get(g)
                    && !info.contact_points.contains(&c)
                {
                    errors.push((
                        "contact_point",
                        format!(
                            "联系点：{}（{c}）不是{}的联系点；请填写本组的联系点，或不填",
                            dir.contact_point_name(&c),
                            info.name
                        ),
                    ));
                }
                Some(c)
            }
            Ok(None) => {
                errors.push((
                    "contact_point",
                    format!("联系点：“{cp}”不在联系点名录中，请填写名录中的名称或编号，或不填"),
                ));
                None
            }
            Err(n) => {
                errors.push((
                    "contact_point",
                    format!("联系点：名录中有 {n} 个联系点叫“{cp}”，请改填编号"),
                ));
                None
            }
        }
    };

    // Every field by the core, as a phone reads it.
    let kind = RecordKind::Plan;
    let mut fields = serde_json::Map::new();
    let month = month_number(&t(&raw.month));
    let quarter = match (t(&raw.quarter), month.parse::<i64>()) {
        (q, Ok(m)) if q.is_empty() && (1..=12).contains(&m) => ((m - 1) / 3 + 1).to_string(),
        (q, _) => quarter_number(&q),
    };
    let typed = [
        ("year", t(&raw.year)),
        ("quarter", quarter),
        ("month", month),
        ("group", group_id.clone().unwrap_or_default()),
        ("owner", owner_id.clone().unwrap_or_default()),
        ("activity_type", t(&raw.activity_type)),
        ("title", t(&raw.title)),
        ("contact_point", cp_id.clone().unwrap_or_default()),
    ];
    for (field, value) in &typed {
        let resolved_elsewhere = matches!(*field, "group" | "owner" | "contact_point");
        if resolved_elsewhere && errors.iter().any(|(f, _)| f == field) {
            continue;
        }
        // Parsed as typed, then checked as a value of the field (empty, length, id) — both the
        // core's, so every field's error shows at once.
        let checked = input::put(kind, &mut fields, field, value).and_then(|()| {
            let spec = input::field_spec(kind, field)?;
            sanjin_core::validate::check_element(spec, &fields[spec.name])
        });
        if let Err(e) = checked {
            errors.push((field_of(&e.field), e.zh(kind)));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    match input::build(kind, fields) {
        Ok(RecordData::Plan(p)) => Ok(p),
        Ok(_) => Err(vec![("record", "记录：不是计划项".into())]),
        Err(e) => Err(vec![(field_of(&e.field), e.zh(kind))]),
    }
}

/// The field of [`FIELDS`] an error names (`record` for any other).
fn field_of(name: &str) -> &'static str {
    FIELDS
        .iter()
        .copied()
        .find(|f| *f == name)
        .unwrap_or("record")
}

/// A quarter as typed: `2`, `第二季度`, `二季度`, `Q2` become `2`; anything else is left for
/// the core to refuse.
fn quarter_number(s: &str) -> String {
    let core = s
        .trim_start_matches('第')
        .trim_end_matches("季度")
        .trim_start_matches(['Q', 'q'])
        .trim();
    match core {
        "一" | "1" => "1",
        "二" | "2" => "2",
        "三" | "3" => "3",
        "四" | "4" => "4",
        _ => return s.to_string(),
    }
    .to_string()
}

/// A month as typed: `5`, `05`, `5月`, `五月` become `5`; anything else is left for the core
/// to refuse.
fn month_number(s: &str) -> String {
    const ZH: [&str; 12] = [
        "一", "二", "三", "四", "五", "六", "七", "八", "九", "十", "十一", "十二",
    ];
    let core = s.trim_end_matches('月').trim();
    if let Ok(n) = core.parse::<i64>() {
        return n.to_string();
    }
    match ZH.iter().position(|z| *z == core) {
        Some(i) => (i + 1).to_string(),
        None => s.to_string(),
    }
}

/// What makes two plan items the same: year, month, group, owner, type and title.
pub(super) type PlanKey = (i64, i64, String, String, String, String);

pub(super) fn key_of(p: &PlanItem) -> PlanKey {
    (
        p.year,
        p.month,
        p.group.clone(),
        p.owner.clone(),
        p.activity_type.code().to_string(),
        p.title.trim().to_string(),
    )
}

/// The plan items the server holds, by key (from the index: no document opened).
pub(super) fn existing(
    store: &dyn ServerStorage,
) -> Result<HashMap<PlanKey, String>, ConsoleError> {
    let rows = store
        .list(&Filter {
            kind: Some(RecordKind::Plan),
            ..Filter::default()
        })
        .map_err(ConsoleError::internal)?;
    let mut out = HashMap::new();
    for e in rows.into_iter().filter(|e| !e.deleted) {
        let date = e.date.clone().unwrap_or_default();
        let year = date.get(..4).and_then(|y| y.parse().ok()).unwrap_or(0);
        let month = date.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(0);
        let key = (
            year,
            month,
            e.group.clone().unwrap_or_default(),
            e.members.first().cloned().unwrap_or_default(),
            e.type_code.clone().unwrap_or_default(),
            e.title.trim().to_string(),
        );
        out.insert(key, e.id);
    }
    Ok(out)
}

/// The author of a change the server makes for `s`: its own actor, the member named.
pub(super) fn author(data: &ServerData, s: &Session) -> Result<Author, ConsoleError> {
    let actor = data.store().identity().actor.clone();
    Author::new(&s.account.member, SERVER_ID, &actor).map_err(ConsoleError::internal)
}

/// A new plan item's document, made by the server for `s`.
pub(super) fn new_doc(author: &Author, item: &PlanItem) -> Result<RecordDoc, ConsoleError> {
    let id = sanjin_store::new_record_id();
    RecordDoc::create(&id, &RecordData::Plan(item.clone()), author, now_ms())
        .map_err(ConsoleError::internal)
}

// ------------------------------------------------------------------ the list

/// `/console/plans?year=&group=&member=&msg=&n=`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PlansQuery {
    pub year: Option<String>,
    pub group: Option<String>,
    pub member: Option<String>,
    pub msg: Option<String>,
    pub n: Option<String>,
}

pub(super) fn this_year() -> i32 {
    sanjin_core::time::beijing_date(now_ms()).year()
}

/// A year parameter: this year when absent, a Chinese page when not a year.
pub(super) fn year_param(y: Option<&str>) -> Result<i32, ConsoleError> {
    match y.map(str::trim).filter(|y| !y.is_empty()) {
        None => Ok(this_year()),
        Some(y) => y
            .parse::<i32>()
            .ok()
            .filter(|y| (2000..=2100).contains(y))
            .ok_or_else(|| {
                ConsoleError::bad(format!(
                    "年份“{y}”不对，请输入 2000 到 2100 之间的四位年份，例如 2025"
                ))
            }),
    }
}

fn opt(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn ledger_error(e: sanjin_ledger::Error) -> ConsoleError {
    match e {
        sanjin_ledger::Error::Forbidden(m) => ConsoleError::forbidden(m),
        sanjin_ledger::Error::Invalid(m) => ConsoleError::bad(m),
        e => ConsoleError::internal(e),
    }
}

async fn list_page(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    ConsoleQuery(q): ConsoleQuery<PlansQuery>,
) -> Result<Response, ConsoleError> {
    let who = s.clone();
    let dir = data_dir(&state).await.map_err(|e| e.seen_by(&who))?;
    let page = blocking(move || list(&dir, &s, &q))
        .await
        .and_then(|r| r)
        .map_err(|e| e.seen_by(&who))?;
    Ok(html_response(StatusCode::OK, page))
}

fn list(dir: &std::path::Path, s: &Session, q: &PlansQuery) -> Result<Markup, ConsoleError> {
    let year = year_param(q.year.as_deref())?;
    let query = PlanQuery {
        year,
        group: opt(q.group.as_deref()),
        member: opt(q.member.as_deref()),
    };
    let mut ledger = Ledger::open(dir).map_err(ConsoleError::internal)?;
    let board = ledger.plans(&viewer(s), &query).map_err(ledger_error)?;
    let directory = ledger.directory().map_err(ConsoleError::internal)?;
    let groups: Vec<(String, String)> = match viewer(s) {
        Viewer::Office => directory
            .groups
            .iter()
            .map(|(id, g)| (id.clone(), g.name.clone()))
            .collect(),
        _ => vec![],
    };
    let writable = |g: &str| s.account.may_write(RecordKind::Plan, Some(g));
    let may_plan = directory.groups.keys().any(|g| writable(g.as_str()));
    let title = format!("{year} 年度计划执行");
    let body = render_list(s, q, &board, &groups, may_plan, &writable);
    Ok(signed_page(&title, s, body))
}

fn percent(t: &sanjin_ledger::plans::Tally) -> String {
    t.percent().map_or("—".into(), |p| format!("{p:.1}%"))
}

fn quarter_zh(q: i64) -> &'static str {
    match q {
        1 => "第一季度",
        2 => "第二季度",
        3 => "第三季度",
        4 => "第四季度",
        _ => "—",
    }
}

fn list_link(year: i32, group: Option<&str>, member: Option<&str>) -> String {
    let mut href = format!("/console/plans?year={year}");
    if let Some(g) = group {
        href.push_str(&format!("&group={}", url(g)));
    }
    if let Some(m) = member {
        href.push_str(&format!("&member={}", url(m)));
    }
    href
}

fn done_message(q: &PlansQuery) -> Option<String> {
    let n = q.n.as_deref().unwrap_or("");
    Some(match q.msg.as_deref()? {
        "created" => {
            "已新增计划项。它作为服务器代您做的一次修改记入留痕，委员的手机下次同步时收到。".into()
        }
        "saved" => "已保存修改（对原计划项的修改，记入留痕），委员的手机下次同步时收到。".into(),
        "unchanged" => "没有改动，未保存。".into(),
        "imported" => format!("已从 Excel 导入 {n} 条计划项，委员的手机下次同步时收到。"),
        _ => return None,
    })
}

fn render_list(
    s: &Session,
    q: &PlansQuery,
    b: &PlanBoard,
    groups: &[(String, String)],
    may_plan: bool,
    writable: &dyn Fn(&str) -> bool,
) -> Markup {
    let year = b.year;
    let office = matches!(viewer(s), Viewer::Office);
    let today = sanjin_core::time::beijing_date(now_ms());
    let now = (i64::from(today.year()), i64::from(today.month()));
    html! {
        @if let Some(m) = done_message(q) {
            div class="msg" id="plans-done" { (m) }
        }
        h1 { (year) " 年度计划执行" }
        form class="filters card noprint" method="get" action="/console/plans" id="plans-filter" {
            label {
                "年度"
                input name="year" id="p-year" value=(year) inputmode="numeric" size="6";
            }
            @if office {
                label {
                    "活动组"
                    select name="group" id="p-group" {
                        option value="" { "全部" }
                        @for (id, n) in groups {
                            option value=(id) selected[b.group.as_deref() == Some(id.as_str())] { (n) }
                        }
                    }
                }
            }
            @if let Some(m) = &b.member {
                input type="hidden" name="member" value=(m);
            }
            button class="primary" type="submit" id="p-submit" { "查看" }
            @if may_plan {
                a class="button" id="plan-new" href=(format!("/console/plans/new?year={year}")) { "新增计划项" }
                a class="button" id="plan-import" href="/console/plans/import" { "从 Excel 导入" }
            }
        }
        @if !b.years.is_empty() {
            p class="note noprint" id="plan-years" {
                "有计划的年度："
                @for y in &b.years {
                    a href=(list_link(*y, b.group.as_deref(), None)) { (y) } " "
                }
            }
        }
        @if b.member.is_some() || (office && b.group.is_some()) {
            p class="noprint" { a href=(list_link(year, None, None)) id="plans-all" { "查看全部" } }
        }
        div class="grid" id="plan-stats" {
            div class="stat" { b id="total-planned" { (b.total.planned) } "计划项" }
            div class="stat" { b id="total-done" { (b.total.done) } "已落实" }
            div class="stat" { b id="total-rate" { (percent(&b.total)) } "落实率" }
        }
        div class="card" id="plan-rule" {
            h2 { "判定规则" }
            p { (RULE_ZH) }
        }
        div class="card" {
            h2 { "各活动组" }
            div class="scroll" {
                table id="plan-groups" {
                    tr { th { "活动组" } th { "计划项" } th { "已落实" } th { "落实率" } }
                    @for g in &b.groups {
                        tr id={ "g-" (g.group) } {
                            td { a href=(list_link(year, Some(&g.group), None)) { (g.name) } }
                            td { (g.tally.planned) }
                            td { (g.tally.done) }
                            td { (percent(&g.tally)) @if g.tally.planned == 0 { " " span class="warn" { "未制定计划" } } }
                        }
                    }
                }
            }
        }
        div class="card" {
            h2 { "各委员（明确到人）" }
            @if b.members.is_empty() { p { "没有计划项。" } }
            @else {
                div class="scroll" {
                    table id="plan-members" {
                        tr { th { "委员" } th { "活动组" } th { "负责计划项" } th { "已落实" } th { "落实率" } th { "" } }
                        @for m in &b.members {
                            tr id={ "m-" (m.member) } {
                                td { a href=(list_link(year, b.group.as_deref(), Some(&m.member))) { (m.name) } }
                                td { (m.group_name) }
                                td { (m.tally.planned) }
                                td { (m.tally.done) }
                                td { (percent(&m.tally)) @if m.tally.planned == 0 { " " span class="warn" { "未安排计划项" } } }
                                td { a href=(member_link(&m.member, year)) { "履职档案" } }
                            }
                        }
                    }
                }
            }
        }
        div class="card" {
            h2 { "计划项（按季度、月份、责任委员）" }
            @if b.rows.is_empty() { p id="plans-empty" { (year) " 年没有计划项。" } }
            @else {
                div class="scroll" {
                    table id="plan-items" {
                        tr {
                            th { "季度" } th { "月份" } th { "责任委员" } th { "活动组" } th { "活动类型" }
                            th { "计划内容" } th { "联系点" } th { "落实情况" } th { "" }
                        }
                        @for r in &b.rows {
                            tr id={ "p-" (r.id) } {
                                td { (quarter_zh(r.quarter)) }
                                td { (r.month) "月" }
                                td { (r.owner_name) }
                                td { (r.group_name) }
                                td { (r.activity_type.zh()) }
                                td class="wrap" {
                                    a href=(format!("/console/records/{}", url(&r.id))) { (r.title) }
                                    @if r.conflicted { " " span class="warn" { "有待裁定的冲突" } }
                                }
                                td { (r.contact_point_name.as_deref().unwrap_or("—")) }
                                td class="wrap" {
                                    @match &r.carried_out {
                                        Some(v) => {
                                            span class="ok" { "已落实" } " "
                                            a href=(format!("/console/records/{}", url(&v.id))) { (v.date.to_string()) " " (v.title) }
                                        }
                                        None if (r.year, r.month) > now => { span class="note" { "未落实（尚未到该月）" } }
                                        None => { span class="warn" { "未落实" } }
                                    }
                                }
                                td {
                                    @if writable(r.group.as_str()) {
                                        a href=(format!("/console/plans/{}/edit", url(&r.id))) id={ "edit-" (r.id) } { "修改" }
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

// ------------------------------------------------------------------ the forms

/// `POST /console/plans` and `POST /console/plans/{id}/edit`: the CSRF token and the plan
/// item's fields as [`RawPlan`] reads them.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PlanForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(flatten)]
    pub plan: RawPlan,
}

/// `GET /console/plans/new?year=&group=`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct NewQuery {
    pub year: Option<String>,
    pub group: Option<String>,
}

async fn new_page(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    ConsoleQuery(q): ConsoleQuery<NewQuery>,
) -> Result<Response, ConsoleError> {
    let s2 = s.clone();
    let page = with_data(&state, &s, move |d| {
        let dir = PlanDir::load(d.store())?;
        may_plan(&dir, &s2)?;
        let year = year_param(q.year.as_deref())?;
        let mut raw = RawPlan {
            year: year.to_string(),
            ..RawPlan::default()
        };
        // A leader plans for the group; staff may come from a group's page.
        raw.group = opt(q.group.as_deref())
            .or_else(|| {
                let mut w = dir.writable(&s2.account);
                match (w.next(), w.next()) {
                    (Some(only), None) => Some(only.to_string()),
                    _ => None,
                }
            })
            .unwrap_or_default();
        Ok(form_page(&s2, &dir, None, &raw, &[]))
    })
    .await?;
    Ok(html_response(StatusCode::OK, page))
}

async fn create(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    uri: Uri,
    headers: HeaderMap,
    ConsoleForm(form): ConsoleForm<PlanForm>,
) -> Result<Response, ConsoleError> {
    if !csrf_ok(&s, &form.csrf, &headers, &uri) {
        return Err(expired(&s));
    }
    let s2 = s.clone();
    with_data(&state, &s, move |d| save(d, &s2, None, &form.plan)).await
}

async fn edit_page(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let s2 = s.clone();
    let page = with_data(&state, &s, move |d| {
        let dir = PlanDir::load(d.store())?;
        let (item, _) = load_item(d, &s2, &dir, &id)?;
        Ok(form_page(&s2, &dir, Some(&id), &RawPlan::of(&item), &[]))
    })
    .await?;
    Ok(html_response(StatusCode::OK, page))
}

async fn edit(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
    ConsoleForm(form): ConsoleForm<PlanForm>,
) -> Result<Response, ConsoleError> {
    if !csrf_ok(&s, &form.csrf, &headers, &uri) {
        return Err(expired(&s));
    }
    let s2 = s.clone();
    with_data(&state, &s, move |d| save(d, &s2, Some(&id), &form.plan)).await
}

/// The plan item `id` as the account may edit it: its data and its conflicted fields. Not a plan
/// item, deleted, or of a group the account may not plan for: a Chinese page naming it.
fn load_item(
    data: &ServerData,
    s: &Session,
    dir: &PlanDir,
    id: &str,
) -> Result<(PlanItem, Vec<String>), ConsoleError> {
    let entry = data
        .store()
        .index_entry(id)
        .map_err(ConsoleError::internal)?
        .filter(|e| e.kind == RecordKind::Plan.code())
        .ok_or_else(|| ConsoleError::not_found(format!("没有编号为 {id} 的计划项")))?;
    let group = entry.group.clone().unwrap_or_default();
    if let Some(why) = refusal(&s.account, &group, dir.group_name(&group)) {
        return Err(ConsoleError::forbidden(format!("计划项 {id}：{why}")));
    }
    if entry.deleted {
        return Err(ConsoleError::bad(format!(
            "计划项 {id} 已删除，不能修改；如需恢复请在手机上恢复"
        )));
    }
    let mut doc = data.store().load(id).map_err(ConsoleError::internal)?;
    let view = doc.view().map_err(ConsoleError::internal)?;
    let RecordData::Plan(item) = view.data else {
        return Err(ConsoleError::not_found(format!("没有编号为 {id} 的计划项")));
    };
    Ok((item, view.conflicts.into_iter().map(|c| c.field).collect()))
}

/// Creates (`id` none) or edits a plan item from the form; the form again with every field's
/// error when it does not check.
fn save(
    data: &mut ServerData,
    s: &Session,
    id: Option<&str>,
    raw: &RawPlan,
) -> Result<Response, ConsoleError> {
    let dir = PlanDir::load(data.store())?;
    may_plan(&dir, s)?;
    let before = match id {
        Some(id) => Some(load_item(data, s, &dir, id)?),
        None => None,
    };
    let invalid = |errors: &[FieldError]| -> Result<Response, ConsoleError> {
        Ok(html_response(
            StatusCode::BAD_REQUEST,
            form_page(s, &dir, id, raw, errors),
        ))
    };
    let item = match check(raw, &dir, &s.account) {
        Ok(item) => item,
        Err(errors) => return invalid(&errors),
    };
    if let Some(other) = existing(data.store())?
        .get(&key_of(&item))
        .filter(|other| Some(other.as_str()) != id)
    {
        return invalid(&[(
            "record",
            format!(
                "与已有计划项重复（编号 {other}：同一年份、月份、活动组、责任委员、活动类型和计划内容）；请修改后再保存"
            ),
        )]);
    }
    let author = author(data, s)?;
    let year = item.year;
    let Some((old, conflicted)) = before else {
        let mut doc = new_doc(&author, &item)?;
        data.land_local(&mut doc).map_err(ConsoleError::internal)?;
        tracing::info!(member = %s.account.member, doc = %doc.id(), "plan item created in the console");
        return Ok(redirect(&format!(
            "/console/plans?year={year}&msg=created&group={}",
            url(&item.group)
        )));
    };
    let id = id.expect("an edit has an id");
    // Only the fields that changed: a phone's concurrent edit of another field stays.
    let new_fields = fields_json(&item);
    let old_fields = fields_json(&old);
    let mut edits = Vec::new();
    let mut errors = Vec::new();
    for f in FIELDS {
        let (a, b) = (old_fields.get(f), new_fields.get(f));
        if a == b {
            continue;
        }
        if conflicted.iter().any(|c| c == f) {
            errors.push((
                field_of(f),
                format!(
                    "{}：有待裁定的冲突（手机上同时作了不同的修改），请先在记录页面裁定后再修改",
                    label(f)
                ),
            ));
            continue;
        }
        edits.push(Edit::Set {
            field: f.to_string(),
            value: b.cloned().unwrap_or(Value::Null),
        });
    }
    if !errors.is_empty() {
        return invalid(&errors);
    }
    if edits.is_empty() {
        return Ok(redirect(&format!(
            "/console/plans?year={year}&msg=unchanged"
        )));
    }
    let mut doc = data.store().load(id).map_err(ConsoleError::internal)?;
    match doc.edit(&author, now_ms(), &edits) {
        Ok(_) => {}
        Err(sanjin_core::Error::Invalid(v)) => {
            return invalid(&[(field_of(&v.field), v.zh(RecordKind::Plan))]);
        }
        Err(e) => return Err(ConsoleError::internal(e)),
    }
    data.land_local(&mut doc).map_err(ConsoleError::internal)?;
    tracing::info!(member = %s.account.member, doc = %id, fields = edits.len(), "plan item edited in the console");
    Ok(redirect(&format!(
        "/console/plans?year={year}&msg=saved&group={}",
        url(&item.group)
    )))
}

/// A plan item's fields as the document stores them (the record's JSON without `kind`).
fn fields_json(p: &PlanItem) -> serde_json::Map<String, Value> {
    match serde_json::to_value(RecordData::Plan(p.clone())) {
        Ok(Value::Object(mut m)) => {
            m.remove("kind");
            m
        }
        _ => serde_json::Map::new(),
    }
}

/// The new / edit form with what was typed and every field's error.
fn form_page(
    s: &Session,
    dir: &PlanDir,
    id: Option<&str>,
    raw: &RawPlan,
    errors: &[FieldError],
) -> Markup {
    let title = if id.is_some() {
        "修改计划项"
    } else {
        "新增计划项"
    };
    let action = match id {
        Some(id) => format!("/console/plans/{}/edit", url(id)),
        None => "/console/plans".to_string(),
    };
    let err = |f: &str| -> Vec<&String> {
        errors
            .iter()
            .filter(|(x, _)| *x == f)
            .map(|(_, m)| m)
            .collect()
    };
    let groups: Vec<&str> = dir.writable(&s.account).collect();
    let field_errors = |f: &'static str| {
        html! {
            @for m in err(f) { span class="field-err" id={ "err-" (f) } { (m) } }
        }
    };
    let v = |f: &str| raw.get(f).trim().to_string();
    let body = html! {
        h1 { (title) }
        @if id.is_some() {
            p class="note" { "修改的是原计划项本身（记入留痕，委员的手机下次同步时收到），不会另建新计划项。" }
        }
        @if !errors.is_empty() {
            div class="msg err" id="form-errors" {
                "未保存，请修改以下内容后再提交："
                ul { @for (_, m) in errors { li { (m) } } }
            }
        }
        form class="filters stack card" method="post" action=(action) id="plan-form" {
            input type="hidden" name="csrf" value=(s.csrf);
            label {
                "年度"
                input name="year" id="f-year" value=(v("year")) inputmode="numeric" required;
                (field_errors("year"))
            }
            label {
                "季度"
                select name="quarter" id="f-quarter" {
                    option value="" { "按月份" }
                    @for q in 1..=4 {
                        option value=(q) selected[v("quarter") == q.to_string()] { (quarter_zh(q)) }
                    }
                }
                (field_errors("quarter"))
            }
            label {
                "月份"
                select name="month" id="f-month" required {
                    option value="" { "请选择" }
                    @for m in 1..=12 {
                        option value=(m) selected[v("month") == m.to_string()] { (m) "月" }
                    }
                }
                (field_errors("month"))
            }
            label {
                "活动组"
                select name="group" id="f-group" required {
                    option value="" { "请选择" }
                    @for g in &groups {
                        option value=(g) selected[v("group") == *g] { (dir.group_name(g)) }
                    }
                }
                (field_errors("group"))
            }
            label {
                "责任委员"
                select name="owner" id="f-owner" required {
                    option value="" { "请选择" }
                    @for g in &groups {
                        optgroup label=(dir.group_name(g)) {
                            @for (mid, (name, mg)) in &dir.members {
                                @if mg.as_str() == *g {
                                    option value=(mid) selected[v("owner") == *mid] { (name) "（" (mid) "）" }
                                }
                            }
                        }
                    }
                }
                (field_errors("owner"))
            }
            label {
                "活动类型"
                select name="activity_type" id="f-type" required {
                    option value="" { "请选择" }
                    @for t in ActivityType::ALL {
                        option value=(t.code()) selected[v("activity_type") == t.code() || v("activity_type") == t.zh()] { (t.zh()) }
                    }
                }
                (field_errors("activity_type"))
            }
            label {
                "计划内容"
                input name="title" id="f-title" value=(raw.title) maxlength="200" required;
                (field_errors("title"))
            }
            label {
                "联系点（可不填）"
                select name="contact_point" id="f-cp" {
                    option value="" { "不指定" }
                    @for g in &groups {
                        @if let Some(info) = dir.groups.get(*g) {
                            optgroup label=(info.name) {
                                @for c in &info.contact_points {
                                    option value=(c) selected[v("contact_point") == *c] { (dir.contact_point_name(c)) }
                                }
                            }
                        }
                    }
                }
                (field_errors("contact_point"))
            }
            (field_errors("record"))
            button class="primary" type="submit" id="f-save" { "保存" }
        }
        p { a href="/console/plans" { "返回年度计划" } }
    };
    signed_page(title, s, body)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::console) fn dir() -> PlanDir {
        let mut d = PlanDir::default();
        d.groups.insert(
            "group-01".into(),
            GroupInfo {
                name: "第一组".into(),
                contact_points: vec!["cp-001".into(), "cp-002".into()],
            },
        );
        d.groups.insert(
            "group-02".into(),
            GroupInfo {
                name: "第二组".into(),
                contact_points: vec!["cp-003".into()],
            },
        );
        for (id, name, g) in [
            ("member-0001", "张三", "group-01"),
            ("member-0002", "李四", "group-01"),
            ("member-0003", "王五", "group-02"),
            ("member-0004", "张三", "group-02"),
        ] {
            d.members.insert(id.into(), (name.into(), g.into()));
        }
        for (id, name) in [
            ("cp-001", "新华社区"),
            ("cp-002", "东风村"),
            ("cp-003", "高新园区"),
        ] {
            d.contact_points.insert(id.into(), name.into());
        }
        d
    }

    pub(in crate::console) fn account(role: Role, group: Option<&str>) -> Account {
        Account::new("office-01", role, group, "王芳")
    }

    fn raw(cells: [&str; 8]) -> RawPlan {
        let mut r = RawPlan::default();
        for (f, v) in FIELDS.iter().zip(cells) {
            r.set(f, v.to_string());
        }
        r
    }

    #[test]
    fn issue13_a_plan_item_is_checked_field_by_field() {
        let staff = account(Role::Staff, None);
        let p = check(
            &raw([
                "2025",
                "第二季度",
                "5月",
                "第一组",
                "张三",
                "调研座谈",
                " 座谈 ",
                "新华社区",
            ]),
            &dir(),
            &staff,
        )
        .unwrap();
        assert_eq!(
            (
                p.year,
                p.quarter,
                p.month,
                p.group.as_str(),
                p.owner.as_str()
            ),
            (2025, 2, 5, "group-01", "member-0001"),
            "张三 is the group's, not group-02's namesake"
        );
        assert_eq!(p.activity_type, ActivityType::ResearchSymposium);
        assert_eq!(p.contact_point.as_deref(), Some("cp-001"));
        assert_eq!(p.title, "座谈");
        // An empty quarter is the month's.
        let p = check(
            &raw([
                "2025",
                "",
                "11",
                "group-01",
                "member-0002",
                "home_visit",
                "走访",
                "",
            ]),
            &dir(),
            &staff,
        )
        .unwrap();
        assert_eq!((p.quarter, p.contact_point), (4, None));

        let errs = check(
            &raw(["2025", "1", "5", "第一组", "王五", "喝茶", "", "高新园区"]),
            &dir(),
            &staff,
        )
        .unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            fields,
            ["owner", "contact_point", "activity_type", "title"],
            "{errs:?}"
        );
        assert!(
            errs[0]
                .1
                .contains("王五（member-0003）属于第二组，不是第一组的成员"),
            "{errs:?}"
        );
        assert!(errs[1].1.contains("不是第一组的联系点"), "{errs:?}");
        assert!(
            errs[2]
                .1
                .starts_with("活动类型（activity_type）：无法识别“喝茶”"),
            "{errs:?}"
        );
        assert!(errs[3].1.starts_with("计划内容（title）："), "{errs:?}");
        // The month within the quarter: the core's rule.
        let errs = check(
            &raw(["2025", "1", "5", "group-01", "张三", "调研座谈", "座谈", ""]),
            &dir(),
            &staff,
        )
        .unwrap_err();
        assert_eq!(
            errs,
            vec![(
                "month",
                "月份（month）：5 月不在第 1 季度内，请核对季度和月份".to_string()
            )]
        );
        // Unknown group, year out of range.
        let errs = check(
            &raw(["1999", "1", "1", "第九组", "张三", "调研座谈", "座谈", ""]),
            &dir(),
            &staff,
        )
        .unwrap_err();
        assert_eq!(errs[0].0, "group");
        assert!(errs[0].1.contains("“第九组”不在名录中"), "{errs:?}");
        // 张三 is two members when the group is unknown.
        assert!(
            errs.iter()
                .any(|(f, m)| *f == "owner" && m.contains("有 2 位委员叫“张三”")),
            "{errs:?}"
        );
    }

    #[test]
    fn issue13_who_may_plan_for_a_group() {
        let ok = raw(["2025", "2", "5", "group-02", "王五", "调研座谈", "座谈", ""]);
        let leader = account(Role::Leader, Some("group-01"));
        let errs = check(&ok, &dir(), &leader).unwrap_err();
        assert_eq!(errs[0].0, "group");
        assert!(
            errs[0]
                .1
                .contains("组长只能制定和修改本组（group-01）的计划"),
            "{errs:?}"
        );
        assert!(check(&ok, &dir(), &account(Role::Leader, Some("group-02"))).is_ok());
        let errs = check(&ok, &dir(), &account(Role::Admin, None)).unwrap_err();
        assert!(
            errs[0].1.contains("管理员账户不能制定或修改年度计划"),
            "{errs:?}"
        );
        assert!(
            may_plan(
                &dir(),
                &Session {
                    account: account(Role::Admin, None),
                    csrf: String::new()
                }
            )
            .is_err()
        );
        assert!(
            may_plan(
                &dir(),
                &Session {
                    account: leader,
                    csrf: String::new()
                }
            )
            .is_ok()
        );
    }
}
