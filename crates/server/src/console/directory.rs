//! The directory in the console (issue 13): `/console/directory` lists members, activity groups,
//! committees, contact points, units and chapters by kind with a search, retired entries apart;
//! office staff add and edit entries (every field parsed and checked by the core's schema, the
//! references by `crate::directory`), move a member to another group or retire it after a page
//! that says how many devices get a new certificate or are revoked and how many of the member's
//! records there are (they stay attributed), retire other entries (refused while they are still
//! used), and import the directory from an Excel sheet — a preview of every row and its errors
//! first, then one confirmation that saves the valid rows in one unit of work — or export it in
//! the same columns to edit and import again.
//!
//! Who: staff change the directory (issue 13: "staff only"). Leaders and admins read it and
//! export it; the change forms are not shown to them and their POSTs are refused (admins manage
//! accounts and devices with `sanjin admin`; the directory's business — who is in which group,
//! who retired — is the office's).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use maud::{Markup, html};
use sanjin_core::domain::{RecordData, RecordKind};
use sanjin_core::schema::{self, FieldKind, ValueType};
use serde::Deserialize;

use super::error::ConsoleError;
use super::extract::{ConsoleForm, ConsoleQuery, SignedIn};
use super::html::{self, Who, url};
use super::multipart;
use super::{Session, csrf_ok, expired, html_response, redirect, with_data};
use crate::data::ServerData;
use crate::directory::{self as dir, Listed, PlannedRow, RowAction};
use crate::error::Error;
use crate::model::Role;
use crate::state::AppState;

/// The largest sheet accepted (bytes of the upload).
pub(super) const IMPORT_BODY_BYTES: usize = 8 << 20;

/// `GET /console/directory`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DirectoryQuery {
    pub kind: Option<String>,
    pub q: Option<String>,
    pub group: Option<String>,
    pub msg: Option<String>,
}

/// A form of typed pairs (a multiple select sends its name once per choice).
type Pairs = Vec<(String, String)>;

fn get<'a>(form: &'a Pairs, key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Whether the signed-in account may change the directory, or why not.
fn refusal(s: &Session) -> Option<&'static str> {
    match s.account.role {
        Role::Staff => None,
        Role::Admin => Some(
            "名录由机关工作人员维护：管理员账户可以查看和导出名录，不能在工作台修改（账户和设备用 sanjin admin 管理）",
        ),
        Role::Leader => Some("名录由机关工作人员维护：组长可以查看和导出名录，不能修改"),
        Role::Member => Some("委员账户不能使用工作台"),
    }
}

fn must_write(s: &Session) -> Result<(), ConsoleError> {
    match refusal(s) {
        Some(why) => Err(ConsoleError::forbidden(why)),
        None => Ok(()),
    }
}

/// A library error as the console shows it: the Chinese reason of a refusal, a missing entry,
/// or the internal error page.
fn console_error(e: Error) -> ConsoleError {
    match e {
        Error::Invalid(m) => ConsoleError::bad(m),
        Error::UnknownRecord(id) => {
            ConsoleError::not_found(format!("名录中没有编号为 {id} 的条目"))
        }
        Error::Exists(id) => ConsoleError::bad(format!("编号“{id}”已被使用；请换一个编号")),
        Error::Forbidden(m) => ConsoleError::forbidden(m),
        Error::Core(sanjin_core::Error::Invalid(v)) => {
            ConsoleError::bad(format!("{}：{}", v.field, v.reason.zh()))
        }
        other => ConsoleError::internal(other),
    }
}

fn kind_of(s: Option<&str>) -> RecordKind {
    s.and_then(RecordKind::parse)
        .filter(|k| k.is_directory())
        .unwrap_or(RecordKind::Member)
}

/// What the list says after an action.
fn message(msg: &str) -> Option<String> {
    let (what, rest) = msg.split_once(':').unwrap_or((msg, ""));
    Some(match what {
        "added" => format!("已添加 {rest}。这一修改记入留痕，委员的手机下次同步时收到。"),
        "edited" => format!("已保存 {rest} 的修改。这一修改记入留痕，委员的手机下次同步时收到。"),
        "unchanged" => format!("{rest} 没有修改。"),
        "moved" => format!(
            "已办理调组：{rest}。他的手机下次同步时收到新证书和新组的记录，调组前的记录仍记在他名下。"
        ),
        "retired" => format!("已办理退出：{rest}。他的设备已停用，已有记录保留并仍记在他名下。"),
        "stopped" => format!("已停用 {rest}，今后不能再选用；原来引用它的记录不变。"),
        "imported" => format!("已导入名录：{rest}。"),
        _ => return None,
    })
}

// ------------------------------------------------------------------ the list

fn list_page(d: &ServerData, s: &Session, q: &DirectoryQuery) -> Result<Markup, ConsoleError> {
    let kind = kind_of(q.kind.as_deref());
    let all = d.directory_entries().map_err(ConsoleError::internal)?;
    let needle = q.q.as_deref().map(str::trim).unwrap_or("");
    let group = q.group.as_deref().map(str::trim).unwrap_or("");
    let groups: Vec<&Listed> = all
        .iter()
        .filter(|e| e.kind == RecordKind::Group && !e.retired)
        .collect();
    let shown: Vec<&Listed> = all
        .iter()
        .filter(|e| e.kind == kind)
        .filter(|e| needle.is_empty() || e.id.contains(needle) || e.title.contains(needle))
        .filter(|e| group.is_empty() || e.group.as_deref() == Some(group))
        .collect();
    let active: Vec<&&Listed> = shown.iter().filter(|e| !e.retired).collect();
    let retired: Vec<&&Listed> = shown.iter().filter(|e| e.retired).collect();
    let names: std::collections::HashMap<&str, &str> = all
        .iter()
        .map(|e| (e.id.as_str(), e.title.as_str()))
        .collect();
    let may = refusal(s).is_none();
    let year = chrono::Datelike::year(&sanjin_core::time::beijing_date(sanjin_store::now_ms()));
    let w = Who::of(s);
    let body = html! {
        h1 { "委员名录" }
        @if let Some(m) = q.msg.as_deref().and_then(message) {
            div class="msg" id="dir-msg" { (m) }
        }
        @if let Some(why) = refusal(s) {
            p class="note" id="dir-readonly" { (why) }
        }
        nav class="tabs" id="dir-kinds" {
            @for k in dir::KINDS.iter().rev() {
                @let n = all.iter().filter(|e| e.kind == *k && !e.retired).count();
                @if *k == kind {
                    b { (k.zh()) "（" (n) "）" }
                } @else {
                    a href={"/console/directory?kind=" (k.code())} { (k.zh()) "（" (n) "）" }
                }
            }
        }
        form method="get" action="/console/directory" class="filters card" {
            input type="hidden" name="kind" value=(kind.code());
            label class="grow" { "搜索（编号或名称）" input name="q" id="dir-q" value=(needle); }
            @if kind == RecordKind::Member {
                label { "活动组"
                    select name="group" id="dir-group" {
                        option value="" { "全部" }
                        @for g in &groups {
                            option value=(g.id) selected[g.id == group] { (g.title) }
                        }
                    }
                }
            }
            button type="submit" id="dir-search" { "查询" }
            @if may {
                a class="button" id="dir-new" href={"/console/directory/new?kind=" (kind.code())} { "新增" (kind.zh()) }
            }
        }
        div class="card scroll" {
            h2 { (kind.zh()) "（在册 " span id="dir-total" { (active.len()) } " 个）" }
            table id="dir-active" {
                thead { tr {
                    th { "编号" } th { "名称" }
                    @if kind == RecordKind::Member { th { "活动组" } th { "履职档案" } }
                    @if may { th { "操作" } }
                } }
                tbody {
                    @for e in &active {
                        tr id={"row-" (e.id)} {
                            td { (e.id) }
                            td { (e.title) }
                            @if kind == RecordKind::Member {
                                @let g = e.group.as_deref().unwrap_or("");
                                td { (names.get(g).copied().unwrap_or(g)) }
                                td { a href=(html::member_link(&e.id, year)) { "查看" } }
                            }
                            @if may {
                                td {
                                    a id={"edit-" (e.id)} href={"/console/directory/" (url(&e.id)) "/edit"} { "编辑" }
                                    " "
                                    @if kind == RecordKind::Member {
                                        a id={"move-" (e.id)} href={"/console/directory/" (url(&e.id)) "/move"} { "调整活动组" }
                                        " "
                                        a id={"retire-" (e.id)} href={"/console/directory/" (url(&e.id)) "/retire"} { "退出" }
                                    } @else {
                                        a id={"retire-" (e.id)} href={"/console/directory/" (url(&e.id)) "/retire"} { "停用" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !retired.is_empty() {
            div class="card scroll" {
                h2 { "已退出、已停用（" (retired.len()) " 个）" }
                table id="dir-retired" {
                    thead { tr { th { "编号" } th { "名称" } } }
                    tbody {
                        @for e in &retired {
                            tr { td { (e.id) } td { (e.title) } }
                        }
                    }
                }
            }
        }
        div class="card" {
            h2 { "Excel 导入导出" }
            p { a class="button" id="dir-export" href="/console/directory/export" { "导出名录（Excel）" } }
            @if may {
                p class="note" { "导出的表格可以直接修改（新增一行即新增条目，改动单元格即修改），再导入：导入前会逐行列出将做的修改和错误，确认后才保存。调整活动组和退出请在名录中办理（涉及委员手机的证书）。" }
                form method="post" action="/console/directory/import" enctype="multipart/form-data" class="filters" {
                    input type="hidden" name="csrf" value=(w.csrf);
                    label class="grow" { "选择 .xlsx 文件" input type="file" name="file" id="dir-file" accept=".xlsx" required; }
                    button type="submit" class="primary" id="dir-import" { "预览导入" }
                }
            }
        }
    };
    Ok(html::page("委员名录", Some(&w), body))
}

// ------------------------------------------------------------------ entry forms

/// The choices of a reference field: active entries of the kind it names.
fn choices(all: &[Listed], kind: RecordKind) -> Vec<(String, String)> {
    all.iter()
        .filter(|e| e.kind == kind && !e.retired)
        .map(|e| (e.id.clone(), format!("{}（{}）", e.title, e.id)))
        .collect()
}

fn reference_kind(kind: RecordKind, field: &str) -> Option<RecordKind> {
    Some(match (kind, field) {
        (_, "chapter" | "parent") => RecordKind::Chapter,
        (_, "committee") => RecordKind::Committee,
        (_, "group") => RecordKind::Group,
        (_, "leader") => RecordKind::Member,
        (_, "contact_points") => RecordKind::ContactPoint,
        _ => return None,
    })
}

fn vocabulary(ty: ValueType) -> Option<Vec<(String, String)>> {
    use sanjin_core::domain::{ChapterLevel, TargetKind};
    Some(match ty {
        ValueType::TargetKind => TargetKind::ALL
            .iter()
            .map(|v| (v.code().to_string(), v.zh().to_string()))
            .collect(),
        ValueType::ChapterLevel => ChapterLevel::ALL
            .iter()
            .map(|v| (v.code().to_string(), v.zh().to_string()))
            .collect(),
        _ => return None,
    })
}

/// The fields of an entry form, filled with `values`.
fn entry_fields(
    all: &[Listed],
    kind: RecordKind,
    values: &[(String, String)],
    editing: bool,
) -> Markup {
    let value = |f: &str| {
        values
            .iter()
            .find(|(k, _)| k == f)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    html! {
        @for spec in schema::fields(kind) {
            @let v = value(spec.name);
            @let required = matches!(spec.ty, ValueType::Str | ValueType::Id | ValueType::TargetKind | ValueType::ChapterLevel);
            @let label = format!("{}{}", spec.zh, if required { "（必填）" } else { "" });
            @if kind == RecordKind::Member && spec.name == "group" && editing {
                label { (label)
                    input type="hidden" name="group" value=(v);
                    span class="note" { (v) "（调整活动组请用“调整活动组”）" }
                }
            } @else if let Some(rk) = reference_kind(kind, spec.name) {
                @let opts = choices(all, rk);
                @if spec.kind == FieldKind::Set {
                    @let chosen: Vec<&str> = v.split('、').collect();
                    label class="grow" { (label) "（可多选）"
                        select name=(spec.name) id={"f-" (spec.name)} multiple {
                            @for (id, name) in &opts {
                                option value=(id) selected[chosen.contains(&id.as_str())] { (name) }
                            }
                        }
                    }
                } @else {
                    label { (label)
                        select name=(spec.name) id={"f-" (spec.name)} {
                            @if !required { option value="" { "（无）" } }
                            @for (id, name) in &opts {
                                option value=(id) selected[*id == v] { (name) }
                            }
                        }
                    }
                }
            } @else if let Some(opts) = vocabulary(spec.ty) {
                label { (label)
                    select name=(spec.name) id={"f-" (spec.name)} {
                        @for (code, zh) in &opts {
                            option value=(code) selected[*code == v] { (zh) }
                        }
                    }
                }
            } @else {
                label class="grow" { (label)
                    input name=(spec.name) id={"f-" (spec.name)} value=(v)
                        placeholder=[(spec.ty == ValueType::Gps).then_some("纬度,经度，如 30.27,120.15")];
                }
            }
        }
    }
}

fn new_page(d: &ServerData, s: &Session, q: &DirectoryQuery) -> Result<Markup, ConsoleError> {
    must_write(s)?;
    let kind = kind_of(q.kind.as_deref());
    let all = d.directory_entries().map_err(ConsoleError::internal)?;
    let w = Who::of(s);
    let body = html! {
        h1 { "新增" (kind.zh()) }
        div class="card" {
            form method="post" action="/console/directory/new" class="filters stack" id="entry-form" {
                input type="hidden" name="csrf" value=(w.csrf);
                input type="hidden" name="kind" value=(kind.code());
                label { "编号（必填，字母、数字、- 或 _，如 unit-003）" input name="id" id="f-id" required; }
                (entry_fields(&all, kind, &[], false))
                button type="submit" class="primary" id="entry-save" { "保存" }
            }
            @if kind == RecordKind::Member {
                p class="note" { "新增委员同时建立他的账户；再用 sanjin admin issue-code 为他发放手机注册码。" }
            }
        }
        p { a href={"/console/directory?kind=" (kind.code())} { "返回名录" } }
    };
    Ok(html::page(&format!("新增{}", kind.zh()), Some(&w), body))
}

/// The typed values of a posted entry form, sets joined.
fn typed(kind: RecordKind, form: &Pairs) -> Vec<(String, String)> {
    schema::fields(kind)
        .iter()
        .map(|spec| {
            let vals: Vec<&str> = form
                .iter()
                .filter(|(k, _)| k == spec.name)
                .map(|(_, v)| v.as_str())
                .collect();
            (spec.name.to_string(), vals.join("、"))
        })
        .collect()
}

fn built(kind: RecordKind, form: &Pairs) -> Result<RecordData, ConsoleError> {
    dir::build_entry(kind, &typed(kind, form)).map_err(|es| {
        ConsoleError::bad(es.iter().map(|e| e.zh(kind)).collect::<Vec<_>>().join("；"))
    })
}

fn create(d: &mut ServerData, s: &Session, form: &Pairs) -> Result<String, ConsoleError> {
    must_write(s)?;
    let kind = kind_of(get(form, "kind"));
    let id = get(form, "id").unwrap_or("").trim().to_string();
    let data = built(kind, form).map_err(|e| prefix(e, &format!("新增{}“{id}”", kind.zh())))?;
    d.create_entry(&s.account.member, &id, &data)
        .map_err(console_error)
        .map_err(|e| prefix(e, &format!("新增{}“{id}”", kind.zh())))?;
    Ok(format!(
        "/console/directory?kind={}&msg={}",
        kind.code(),
        url(&format!("added:{}{id}", kind.zh()))
    ))
}

/// Names what a refusal is about.
fn prefix(mut e: ConsoleError, what: &str) -> ConsoleError {
    if let super::error::ErrorKind::Bad(m) = &mut e.kind {
        *m = format!("{what}：{m}");
    }
    e
}

fn edit_page(d: &ServerData, s: &Session, id: &str) -> Result<Markup, ConsoleError> {
    must_write(s)?;
    let (data, retired) = d.directory_entry(id).map_err(console_error)?;
    let kind = data.kind();
    if retired {
        return Err(ConsoleError::bad(format!(
            "{}{id} 已退出或停用，不能再编辑",
            kind.zh()
        )));
    }
    let all = d.directory_entries().map_err(ConsoleError::internal)?;
    let w = Who::of(s);
    let values = dir::entry_inputs(&data);
    let body = html! {
        h1 { "编辑" (kind.zh()) " " (id) }
        div class="card" {
            form method="post" action={"/console/directory/" (url(id)) "/edit"} class="filters stack" id="entry-form" {
                input type="hidden" name="csrf" value=(w.csrf);
                (entry_fields(&all, kind, &values, true))
                button type="submit" class="primary" id="entry-save" { "保存修改" }
            }
            p class="note" { "修改作为一次改动记入留痕（记录修改人），委员的手机下次同步时收到；已有的记录不受影响。" }
        }
        p { a href={"/console/directory?kind=" (kind.code())} { "返回名录" } }
    };
    Ok(html::page(&format!("编辑{}", kind.zh()), Some(&w), body))
}

fn edit(d: &mut ServerData, s: &Session, id: &str, form: &Pairs) -> Result<String, ConsoleError> {
    must_write(s)?;
    let (old, _) = d.directory_entry(id).map_err(console_error)?;
    let kind = old.kind();
    let what = format!("{}“{id}”", kind.zh());
    let data = built(kind, form).map_err(|e| prefix(e, &what))?;
    let n = d
        .edit_entry(&s.account.member, id, &data)
        .map_err(console_error)
        .map_err(|e| prefix(e, &what))?;
    let msg = if n == 0 {
        format!("unchanged:{what}")
    } else {
        format!("edited:{what}")
    };
    Ok(format!(
        "/console/directory?kind={}&msg={}",
        kind.code(),
        url(&msg)
    ))
}

// ------------------------------------------------------------------ move and retire

/// What the confirmation pages say of a member's devices and records.
fn impact_card(impact: &dir::MemberImpact, moving: bool) -> Markup {
    html! {
        dl id="impact" {
            dt { "已登记的设备" } dd id="impact-devices" { (impact.devices) " 台" }
            @if moving {
                dt { "将重新签发证书" } dd id="impact-certs" { (impact.certified) " 张（设备下次同步时收到，并重新读取新组的记录）" }
            } @else {
                dt { "将停用的设备" } dd id="impact-revoke" { (impact.devices) " 台（此后不能再同步，也不能再登记新设备）" }
            }
            dt { "他的记录" } dd id="impact-records" { (impact.records) " 条：保留原样，仍记在他名下，不会改写" }
            @if let Some(g) = &impact.leads {
                dt { "现任组长" } dd { "他是活动组 " (g) " 的组长，须指定该组的新组长" }
            }
        }
    }
}

fn leader_select(all: &[Listed], group: &str, member: &str) -> Markup {
    html! {
        label { "原组新组长（必选）"
            select name="new_leader" id="f-new-leader" required {
                option value="" { "请选择" }
                @for e in all.iter().filter(|e| e.kind == RecordKind::Member && !e.retired && e.group.as_deref() == Some(group) && e.id != member) {
                    option value=(e.id) { (e.title) "（" (e.id) "）" }
                }
            }
        }
    }
}

fn member_of(d: &ServerData, id: &str) -> Result<sanjin_core::domain::Member, ConsoleError> {
    match d.directory_entry(id).map_err(console_error)? {
        (RecordData::Member(m), false) => Ok(m),
        (RecordData::Member(_), true) => Err(ConsoleError::bad(format!("委员 {id} 已经退出"))),
        _ => Err(ConsoleError::bad(format!("{id} 不是委员"))),
    }
}

fn move_page(d: &ServerData, s: &Session, id: &str) -> Result<Markup, ConsoleError> {
    must_write(s)?;
    let m = member_of(d, id)?;
    let impact = d.member_impact(id).map_err(console_error)?;
    let all = d.directory_entries().map_err(ConsoleError::internal)?;
    let w = Who::of(s);
    let body = html! {
        h1 { "调整活动组：" (m.name) "（" (id) "）" }
        div class="card" id="confirm" {
            p { "现属活动组：" b { (all.iter().find(|e| e.id == m.group).map_or(m.group.as_str(), |e| e.title.as_str())) "（" (m.group) "）" } }
            (impact_card(&impact, true))
            p class="note" { "调组后：他手机上调组前在原组做、尚未同步的记录，下次同步时照常接收；调组之后对原组记录的修改不再接受。他不再收到原组的新记录，原组的离线包密钥随之更换。" }
            form method="post" action={"/console/directory/" (url(id)) "/move"} class="filters stack" {
                input type="hidden" name="csrf" value=(w.csrf);
                label { "调入活动组（必选）"
                    select name="group" id="f-to" required {
                        option value="" { "请选择" }
                        @for e in all.iter().filter(|e| e.kind == RecordKind::Group && !e.retired && e.id != m.group) {
                            option value=(e.id) { (e.title) "（" (e.id) "）" }
                        }
                    }
                }
                @if impact.leads.as_deref() == Some(m.group.as_str()) {
                    (leader_select(&all, &m.group, id))
                }
                button type="submit" class="primary" id="move-confirm" { "确认调组" }
            }
        }
        p { a href="/console/directory?kind=member" { "返回名录" } }
    };
    Ok(html::page("调整活动组", Some(&w), body))
}

fn do_move(
    d: &mut ServerData,
    s: &Session,
    id: &str,
    form: &Pairs,
) -> Result<String, ConsoleError> {
    must_write(s)?;
    let to = get(form, "group").unwrap_or("").trim();
    if to.is_empty() {
        return Err(ConsoleError::bad("请选择调入的活动组后再确认"));
    }
    let r = d
        .move_member(&s.account.member, id, to, get(form, "new_leader"))
        .map_err(console_error)
        .map_err(|e| prefix(e, &format!("委员 {id} 调组")))?;
    Ok(format!(
        "/console/directory?kind=member&msg={}",
        url(&format!(
            "moved:委员 {id} 从 {} 调到 {}，重新签发证书 {} 张",
            r.from, r.to, r.certificates_reissued
        ))
    ))
}

fn retire_page(d: &ServerData, s: &Session, id: &str) -> Result<Markup, ConsoleError> {
    must_write(s)?;
    let (data, retired) = d.directory_entry(id).map_err(console_error)?;
    let kind = data.kind();
    if retired {
        return Err(ConsoleError::bad(format!(
            "{}{id} 已经退出或停用",
            kind.zh()
        )));
    }
    let w = Who::of(s);
    let action = format!("/console/directory/{}/retire", url(id));
    let body = if let RecordData::Member(m) = &data {
        let impact = d.member_impact(id).map_err(console_error)?;
        let all = d.directory_entries().map_err(ConsoleError::internal)?;
        html! {
            h1 { "委员退出：" (m.name) "（" (id) "）" }
            div class="card" id="confirm" {
                (impact_card(&impact, false))
                p class="note" { "退出后：他的账户不能再同步、登记设备或登录工作台；名录中显示为已退出，不能再被选用。他手机上尚未同步的记录不会丢失：手机同步时会提示他用 sanjin device bundle export 导出离线包交给机关，机关用 sanjin admin import-bundle 导入（退出前做的改动照常接收）。" }
                form method="post" action=(action) class="filters stack" {
                    input type="hidden" name="csrf" value=(w.csrf);
                    label class="grow" { "退出原因（必填，如：任期届满、工作调动）" input name="reason" id="f-reason" required; }
                    @if impact.leads.as_deref() == Some(m.group.as_str()) {
                        (leader_select(&all, &m.group, id))
                    }
                    button type="submit" class="primary" id="retire-confirm" { "确认退出" }
                }
            }
            p { a href="/console/directory?kind=member" { "返回名录" } }
        }
    } else {
        let users = d.referenced_by(id).map_err(console_error)?;
        html! {
            h1 { "停用" (kind.zh()) "：" (id) }
            div class="card" id="confirm" {
                @if users.is_empty() {
                    p { "停用后它不能再被选用；原来引用它的记录不变。" }
                    form method="post" action=(action) class="filters stack" {
                        input type="hidden" name="csrf" value=(w.csrf);
                        label class="grow" { "停用原因（可不填）" input name="reason" id="f-reason"; }
                        button type="submit" class="primary" id="retire-confirm" { "确认停用" }
                    }
                } @else {
                    div class="msg err" id="retire-refused" {
                        "还有 " (users.len()) " 个在册条目使用它，不能停用；请先把它们改到别处（或让它们退出、停用）："
                    }
                    ul {
                        @for (uid, k, t) in &users {
                            li { (k.zh()) " " (t) "（" a href={"/console/directory/" (url(uid)) "/edit"} { (uid) } "）" }
                        }
                    }
                }
            }
            p { a href={"/console/directory?kind=" (kind.code())} { "返回名录" } }
        }
    };
    Ok(html::page("退出或停用", Some(&w), body))
}

fn do_retire(
    d: &mut ServerData,
    s: &Session,
    id: &str,
    form: &Pairs,
) -> Result<String, ConsoleError> {
    must_write(s)?;
    let (data, _) = d.directory_entry(id).map_err(console_error)?;
    let reason = get(form, "reason").unwrap_or("");
    if let RecordData::Member(_) = data {
        let r = d
            .retire_member(&s.account.member, id, reason, get(form, "new_leader"))
            .map_err(console_error)
            .map_err(|e| prefix(e, &format!("委员 {id} 退出")))?;
        return Ok(format!(
            "/console/directory?kind=member&msg={}",
            url(&format!(
                "retired:委员 {id}，停用设备 {} 台，记录 {} 条",
                r.devices_revoked, r.records
            ))
        ));
    }
    let kind = data.kind();
    d.retire_entry(&s.account.member, id, reason)
        .map_err(console_error)
        .map_err(|e| prefix(e, &format!("停用{}“{id}”", kind.zh())))?;
    Ok(format!(
        "/console/directory?kind={}&msg={}",
        kind.code(),
        url(&format!("stopped:{}{id}", kind.zh()))
    ))
}

// ------------------------------------------------------------------ Excel

fn preview_page(d: &ServerData, s: &Session, bytes: &[u8]) -> Result<Markup, ConsoleError> {
    must_write(s)?;
    let plan = d.plan_sheet(bytes).map_err(console_error)?;
    let count = |a: RowAction| plan.iter().filter(|p| p.action == a).count();
    let valid = count(RowAction::Add) + count(RowAction::Update);
    let w = Who::of(s);
    let row = |p: &PlannedRow| {
        html! {
            tr id={"line-" (p.line)} class=[(p.action == RowAction::Refused).then_some("badrow")] {
                td { (p.line) }
                td { (p.kind.map_or("—", RecordKind::zh)) }
                td { (p.id) }
                td { (p.title) }
                td { (p.action.zh()) }
                td class="wrap" {
                    @for e in &p.errors { div class="badref" { (e) } }
                }
            }
        }
    };
    let body = html! {
        h1 { "导入名录：预览" }
        div class="card" {
            p id="import-summary" {
                "共 " (plan.len()) " 行：新增 " (count(RowAction::Add)) " 个，修改 " (count(RowAction::Update))
                " 个，无变化 " (count(RowAction::Unchanged)) " 个，跳过 " (count(RowAction::Skip))
                " 个，有错误 " span id="import-errors" { (count(RowAction::Refused)) } " 行（不导入）。"
            }
            p class="note" { "现在还没有保存任何内容。有错误的行不会导入；可以改正表格后重新预览，或只导入没有错误的行。" }
            @if valid > 0 {
                form method="post" action="/console/directory/import/confirm" {
                    input type="hidden" name="csrf" value=(w.csrf);
                    input type="hidden" name="file" value=(hex::encode(bytes));
                    button type="submit" class="primary" id="import-confirm" { "确认导入 " (valid) " 个条目" }
                }
            }
        }
        div class="card scroll" {
            table id="import-rows" {
                thead { tr { th { "行" } th { "类别" } th { "编号" } th { "名称" } th { "处理" } th { "错误" } } }
                tbody { @for p in &plan { (row(p)) } }
            }
        }
        p { a href="/console/directory" { "返回名录" } }
    };
    Ok(html::page("导入名录", Some(&w), body))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ConfirmForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub file: String,
}

fn confirm_import(
    d: &mut ServerData,
    s: &Session,
    form: &ConfirmForm,
) -> Result<String, ConsoleError> {
    must_write(s)?;
    let bytes = hex::decode(form.file.trim())
        .map_err(|_| ConsoleError::bad("导入的文件已损坏；请重新选择文件预览后再确认"))?;
    let r = d
        .import_sheet(&s.account.member, &bytes)
        .map_err(console_error)?;
    Ok(format!(
        "/console/directory?msg={}",
        url(&format!(
            "imported:新增 {} 个，修改 {} 个，无变化 {} 个，有错误未导入 {} 行",
            r.added, r.updated, r.unchanged, r.refused
        ))
    ))
}

// ------------------------------------------------------------------ handlers

pub(super) async fn list(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    ConsoleQuery(q): ConsoleQuery<DirectoryQuery>,
) -> Result<Response, ConsoleError> {
    let s2 = s.clone();
    let page = with_data(&state, &s, move |d| list_page(d, &s2, &q)).await?;
    Ok(html_response(StatusCode::OK, page))
}

pub(super) async fn new_form(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    ConsoleQuery(q): ConsoleQuery<DirectoryQuery>,
) -> Result<Response, ConsoleError> {
    let s2 = s.clone();
    let page = with_data(&state, &s, move |d| new_page(d, &s2, &q)).await?;
    Ok(html_response(StatusCode::OK, page))
}

/// The id a form's action names, checked before anything is looked up.
fn checked_id(id: &str) -> Result<(), ConsoleError> {
    if sanjin_core::validate::is_id(id) {
        Ok(())
    } else {
        Err(ConsoleError::not_found("没有这个名录条目"))
    }
}

pub(super) async fn entry_page(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    Path((id, what)): Path<(String, String)>,
) -> Result<Response, ConsoleError> {
    checked_id(&id).map_err(|e| e.seen_by(&s))?;
    let s2 = s.clone();
    let page = with_data(&state, &s, move |d| match what.as_str() {
        "edit" => edit_page(d, &s2, &id),
        "move" => move_page(d, &s2, &id),
        "retire" => retire_page(d, &s2, &id),
        _ => Err(ConsoleError::not_found(
            "没有这个页面，请从委员名录重新进入",
        )),
    })
    .await?;
    Ok(html_response(StatusCode::OK, page))
}

pub(super) async fn create_entry(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    uri: Uri,
    headers: HeaderMap,
    ConsoleForm(form): ConsoleForm<Pairs>,
) -> Result<Response, ConsoleError> {
    if !csrf_ok(&s, get(&form, "csrf").unwrap_or(""), &headers, &uri) {
        return Err(expired(&s));
    }
    let s2 = s.clone();
    let to = with_data(&state, &s, move |d| create(d, &s2, &form)).await?;
    Ok(redirect(&to))
}

pub(super) async fn entry_post(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    uri: Uri,
    headers: HeaderMap,
    Path((id, what)): Path<(String, String)>,
    ConsoleForm(form): ConsoleForm<Pairs>,
) -> Result<Response, ConsoleError> {
    if !csrf_ok(&s, get(&form, "csrf").unwrap_or(""), &headers, &uri) {
        return Err(expired(&s));
    }
    checked_id(&id).map_err(|e| e.seen_by(&s))?;
    let s2 = s.clone();
    let to = with_data(&state, &s, move |d| match what.as_str() {
        "edit" => edit(d, &s2, &id, &form),
        "move" => do_move(d, &s2, &id, &form),
        "retire" => do_retire(d, &s2, &id, &form),
        _ => Err(ConsoleError::not_found(
            "没有这个操作，请从委员名录重新进入",
        )),
    })
    .await?;
    Ok(redirect(&to))
}

pub(super) async fn import(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let parts = multipart::read(&headers, &body).ok_or_else(|| {
        ConsoleError::bad("上传的内容不完整；请在名录页面重新选择文件").seen_by(&s)
    })?;
    if !csrf_ok(&s, multipart::csrf(&parts), &headers, &uri) {
        return Err(expired(&s));
    }
    let file = multipart::field(&parts, "file")
        .filter(|f| !f.data.is_empty())
        .map(|f| f.data.clone())
        .ok_or_else(|| ConsoleError::bad("请选择要导入的 .xlsx 文件").seen_by(&s))?;
    let s2 = s.clone();
    let page = with_data(&state, &s, move |d| preview_page(d, &s2, &file)).await?;
    Ok(html_response(StatusCode::OK, page))
}

pub(super) async fn import_confirm(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    uri: Uri,
    headers: HeaderMap,
    ConsoleForm(form): ConsoleForm<ConfirmForm>,
) -> Result<Response, ConsoleError> {
    if !csrf_ok(&s, &form.csrf, &headers, &uri) {
        return Err(expired(&s));
    }
    let s2 = s.clone();
    let to = with_data(&state, &s, move |d| confirm_import(d, &s2, &form)).await?;
    Ok(redirect(&to))
}

pub(super) async fn export(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
) -> Result<Response, ConsoleError> {
    let bytes = with_data(&state, &s, |d| {
        d.export_sheet().map_err(ConsoleError::internal)
    })
    .await?;
    let name = format!(
        "委员名录-{}.xlsx",
        sanjin_core::time::beijing_date(sanjin_store::now_ms())
    );
    Ok(super::attachment(
        sanjin_ledger::Format::Xlsx.content_type(),
        "sanjin-directory.xlsx",
        &name,
        bytes,
    ))
}
