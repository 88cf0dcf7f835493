//! The console's pages.
// Page functions return the response to send instead (an error page) as their `Err`: one per
// request, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::path::Path;

use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Datelike, NaiveDate};
use sanjin_core::domain::{ActivityType, OpinionKind, RecordKind, TargetKind};
use sanjin_core::workflow::State;
use sanjin_core::{Author, schema};
use sanjin_ledger::{Format, Ledger, Query, Slice, Viewer};
use sanjin_store::now_ms;
use serde_json::Value;

use super::html::{Html, esc, page, url};
use super::{Session, error_page, internal, viewer};
use crate::blobs::{BlobHash, BlobReader};
use crate::data::{SERVER_ID, ServerData};
use crate::model::Role;

const PAGE_SIZE: i64 = 50;

fn who(s: &Session) -> Option<(&str, &str, &str)> {
    Some((
        s.account.name.as_str(),
        s.account.role.zh(),
        s.csrf.as_str(),
    ))
}

fn forbidden(s: &Session, msg: &str) -> Response {
    error_page(StatusCode::FORBIDDEN, msg, Some(s))
}

fn bad(s: &Session, msg: &str) -> Response {
    error_page(StatusCode::BAD_REQUEST, msg, Some(s))
}

fn open_ledger(dir: &Path, s: &Session) -> Result<Ledger, Response> {
    Ledger::open(dir).map_err(|e| internal(e, Some(s)))
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
fn names(
    store: &dyn sanjin_store::server::ServerStorage,
) -> sanjin_store::Result<HashMap<String, String>> {
    Ok(store.names()?.into_iter().collect())
}

fn name<'a>(names: &'a HashMap<String, String>, id: &'a str) -> &'a str {
    names.get(id).map_or(id, String::as_str)
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

// ------------------------------------------------------------------ sign-in

pub fn login(error: Option<&str>) -> String {
    let mut b = Html::default();
    b.raw("<div class=\"card narrow\"><h1>登录三进工作台</h1>");
    if let Some(e) = error {
        b.raw("<div class=\"msg err\">").text(e).raw("</div>");
    }
    b.raw("<form method=\"post\" action=\"/console/login\" class=\"filters stack\">")
        .raw("<label>账号（委员编号或工作人员编号）<input name=\"account\" id=\"account\" autocomplete=\"username\" required></label>")
        .raw("<label>密码<input name=\"password\" id=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>")
        .raw("<button class=\"primary\" type=\"submit\" id=\"signin\">登录</button></form>")
        .raw("<p class=\"note\">工作台供机关工作人员和活动组组长使用。密码由管理员用 sanjin admin set-password 设置。</p></div>");
    page("登录", None, b)
}

// ------------------------------------------------------------------ dashboard

fn parse_quarter(s: &str) -> Option<(i32, u32)> {
    let (y, q) = s.split_once('-')?;
    let y: i32 = y.parse().ok()?;
    let q: u32 = q.trim_start_matches(['Q', 'q']).parse().ok()?;
    ((1..=4).contains(&q) && (2000..=2100).contains(&y)).then_some((y, q))
}

pub fn dashboard(dir: &Path, s: &Session, q: &HashMap<String, String>) -> Result<String, Response> {
    let (year, quarter) = match q.get("q").filter(|v| !v.is_empty()) {
        Some(v) => parse_quarter(v).ok_or_else(|| bad(s, "季度格式应为 年-季度，如 2025-2"))?,
        None => {
            let t = today();
            (t.year(), t.month0() / 3 + 1)
        }
    };
    let from =
        NaiveDate::from_ymd_opt(year, (quarter - 1) * 3 + 1, 1).expect("a quarter's first day");
    let (from, to) = sanjin_ledger::dashboard::quarter_of(from);
    let ledger = open_ledger(dir, s)?;
    let d = sanjin_ledger::dashboard::dashboard(&ledger, &viewer(s), from, to).map_err(
        |e| match e {
            sanjin_ledger::Error::Forbidden(m) => forbidden(s, &m),
            other => internal(other, Some(s)),
        },
    )?;
    let mut b = Html::default();
    b.raw("<h1>工作概况 · ")
        .num(year)
        .raw(" 年第 ")
        .num(quarter)
        .raw(" 季度");
    if let Some(g) = &d.group {
        let n = d.six_ones.first().map_or(g.as_str(), |r| r.name.as_str());
        b.raw("（").text(n).raw("）");
    }
    b.raw("</h1><p class=\"pager\">");
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
    b.link(&format!("/console/dashboard?q={py}-{pq}"), "‹ 上一季度")
        .link("/console/dashboard", "本季度")
        .link(&format!("/console/dashboard?q={ny}-{nq}"), "下一季度 ›")
        .raw("</p>");
    let coverage = if d.members > 0 {
        d.members_active as f64 * 100.0 / d.members as f64
    } else {
        0.0
    };
    b.raw("<div class=\"grid\" id=\"stats\">")
        .raw("<div class=\"stat\">活动记录<b id=\"stat-visits\">")
        .num(d.visits)
        .raw("</b>次</div>")
        .raw("<div class=\"stat\">参与委员<b>")
        .num(d.members_active)
        .raw("</b>共 ")
        .num(d.members)
        .raw(" 人，覆盖率 ")
        .num(format!("{coverage:.1}"))
        .raw("%</div>")
        .raw("<div class=\"stat\">社情民意<b>")
        .num(d.opinions)
        .raw("</b>条</div>")
        .raw("<div class=\"stat\">待裁定冲突<b>")
        .num(d.open_conflicts)
        .raw("</b>");
    b.link(
        &format!("/console/records?kind=visit&conflicts=1&from={from}&to={to}"),
        "查看",
    );
    b.raw("</div></div>");

    b.raw("<div class=\"card\"><h2>按类别（进社区、进园区、进农村）</h2><div class=\"scroll\"><table><tr><th>类别</th><th>次数</th><th></th></tr>");
    let max = d.by_kind.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    for (k, n) in &d.by_kind {
        b.raw("<tr><td>进")
            .text(k.zh())
            .raw("</td><td>")
            .num(n)
            .raw("</td><td class=\"barcell\"><div class=\"bar\"><i class=\"w")
            .num((n * 100 / max).min(100))
            .raw("\"></i></div></td></tr>");
    }
    b.raw("</table></div></div>");

    b.raw("<div class=\"card\"><h2>按活动形式</h2><div class=\"scroll\"><table><tr><th>活动形式</th><th>六个一</th><th>次数</th></tr>");
    for (t, n) in &d.by_type {
        b.raw("<tr><td>")
            .text(t.zh())
            .raw("</td><td>")
            .raw(if t.is_six_ones() { "是" } else { "" })
            .raw("</td><td>")
            .num(n)
            .raw("</td></tr>");
    }
    b.raw("</table></div></div>");

    b.raw("<div class=\"card\"><h2>“六个一”完成情况（").num(to.year()).raw(" 年截至本季度末）</h2><div class=\"scroll\"><table id=\"six-ones\"><tr><th>活动组</th>");
    for t in ActivityType::SIX_ONES {
        b.el("<th>", t.zh(), "</th>");
    }
    b.raw("<th>完成</th></tr>");
    for row in &d.six_ones {
        let done = row.counts.iter().filter(|n| **n > 0).count();
        b.raw("<tr><td>")
            .link(
                &format!("/console/records?kind=visit&group={}", url(&row.group)),
                &row.name,
            )
            .raw("</td>");
        for n in row.counts {
            if n > 0 {
                b.raw("<td class=\"ok\">").num(n).raw("</td>");
            } else {
                b.raw("<td class=\"warn\">缺</td>");
            }
        }
        b.raw("<td>").num(done).raw("/6</td></tr>");
    }
    b.raw("</table></div></div>");

    b.raw("<div class=\"card\"><h2>社情民意办理状态</h2><div class=\"scroll\"><table><tr><th>状态</th><th>条数</th></tr>");
    for (st, n) in &d.opinions_by_status {
        b.raw("<tr><td>")
            .link(
                &format!(
                    "/console/records?kind=opinion&status={}&from={from}&to={to}",
                    st.code()
                ),
                st.zh(),
            )
            .raw("</td><td>")
            .num(n)
            .raw("</td></tr>");
    }
    b.raw("</table></div></div>");
    b.raw("<p><a class=\"button\" href=\"/console/export?from=")
        .text(&from.to_string())
        .raw("&amp;to=")
        .text(&to.to_string())
        .raw("\">导出本季度台账</a></p>");
    Ok(page("工作概况", who(s), b))
}

// ------------------------------------------------------------------ lists

fn kind_of(q: &HashMap<String, String>) -> RecordKind {
    match q.get("kind").map(String::as_str) {
        Some("opinion") => RecordKind::Opinion,
        Some("household") => RecordKind::Household,
        Some("plan") => RecordKind::Plan,
        _ => RecordKind::Visit,
    }
}

fn date_param(
    s: &Session,
    q: &HashMap<String, String>,
    key: &str,
) -> Result<Option<NaiveDate>, Response> {
    match q.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| {
                bad(
                    s,
                    &format!("日期“{v}”格式不对，应为 年-月-日，如 2025-04-01"),
                )
            }),
    }
}

/// The group a list or export is about: a leader's own, whatever was asked.
fn group_param(s: &Session, q: &HashMap<String, String>) -> Result<Option<String>, Response> {
    let asked = q
        .get("group")
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty());
    match viewer(s) {
        Viewer::Office => Ok(asked),
        Viewer::Leader { group } => {
            if asked.as_ref().is_some_and(|a| a != &group) {
                return Err(forbidden(s, &format!("组长只能查看本组（{group}）的记录")));
            }
            Ok(Some(group))
        }
        Viewer::Member => Err(forbidden(s, "委员账户不能使用工作台")),
    }
}

pub fn records(dir: &Path, s: &Session, q: &HashMap<String, String>) -> Result<String, Response> {
    let kind = kind_of(q);
    let group = group_param(s, q)?;
    let from = date_param(s, q, "from")?;
    let to = date_param(s, q, "to")?;
    let status = q.get("status").filter(|v| !v.is_empty()).cloned();
    let ty = q.get("type").filter(|v| !v.is_empty()).cloned();
    let conflicts = q.get("conflicts").is_some_and(|v| v == "1");
    let page_no: i64 = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let filter = sanjin_store::Filter {
        kind: Some(kind),
        group: group.clone(),
        from: from.map(|d| d.to_string()),
        to: to.map(|d| d.to_string()),
        status: status.clone(),
        type_code: ty.clone(),
        only_conflicts: conflicts,
        ..sanjin_store::Filter::default()
    };
    let ledger = open_ledger(dir, s)?;
    let store = ledger.store();
    let fail = |e: sanjin_store::Error| internal(e, Some(s));
    let (total, found) = store
        .page(
            &filter,
            ((page_no - 1) * PAGE_SIZE) as usize,
            PAGE_SIZE as usize,
        )
        .map_err(fail)?;
    let total = total as i64;
    type Row = (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
        i64,
        String,
        String,
    );
    let rows: Vec<Row> = found
        .into_iter()
        .map(|e| {
            (
                e.id,
                e.date,
                e.start,
                e.group,
                e.contact_point,
                e.type_code,
                e.status,
                i64::from(e.conflicts),
                e.title,
                e.created_by,
            )
        })
        .collect();
    let names = names(store).map_err(fail)?;

    let mut b = Html::default();
    b.raw("<h1>").text(kind.zh()).raw("</h1>");
    // Filters.
    b.raw(
        "<form class=\"filters card\" method=\"get\" action=\"/console/records\" id=\"filters\">",
    )
    .hidden("kind", kind.code());
    if matches!(viewer(s), Viewer::Office) {
        b.raw(
            "<label>活动组<select name=\"group\" id=\"f-group\"><option value=\"\">全部</option>",
        );
        let mut groups: Vec<(&String, &String)> = names
            .iter()
            .filter(|(k, _)| k.starts_with("group-"))
            .collect();
        groups.sort();
        for (id, n) in groups {
            b.raw("<option value=\"").text(id).raw("\"");
            if group.as_deref() == Some(id.as_str()) {
                b.raw(" selected");
            }
            b.raw(">").text(n).raw("</option>");
        }
        b.raw("</select></label>");
    }
    b.raw("<label>起始日期<input type=\"date\" name=\"from\" id=\"f-from\" value=\"")
        .text(&from.map(|d| d.to_string()).unwrap_or_default())
        .raw("\"></label><label>结束日期<input type=\"date\" name=\"to\" id=\"f-to\" value=\"")
        .text(&to.map(|d| d.to_string()).unwrap_or_default())
        .raw("\"></label>");
    if matches!(kind, RecordKind::Visit | RecordKind::Opinion) {
        b.raw(
            "<label>状态<select name=\"status\" id=\"f-status\"><option value=\"\">全部</option>",
        );
        for st in sanjin_core::workflow::states(kind) {
            b.raw("<option value=\"").raw(st.code()).raw("\"");
            if status.as_deref() == Some(st.code()) {
                b.raw(" selected");
            }
            b.raw(">").text(st.zh()).raw("</option>");
        }
        b.raw("</select></label><label>");
        b.raw(if kind == RecordKind::Visit {
            "活动形式"
        } else {
            "类别"
        });
        b.raw("<select name=\"type\" id=\"f-type\"><option value=\"\">全部</option>");
        let codes: Vec<(&str, &str)> = if kind == RecordKind::Visit {
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
        for (code, zh) in codes {
            b.raw("<option value=\"").text(code).raw("\"");
            if ty.as_deref() == Some(code) {
                b.raw(" selected");
            }
            b.raw(">").text(zh).raw("</option>");
        }
        b.raw("</select></label>");
    }
    b.raw("<label>只看冲突<select name=\"conflicts\" id=\"f-conflicts\"><option value=\"\">否</option><option value=\"1\"");
    if conflicts {
        b.raw(" selected");
    }
    b.raw(">是</option></select></label><button class=\"primary\" type=\"submit\" id=\"f-submit\">筛选</button></form>");

    b.raw("<p id=\"total\">共 ").num(total).raw(" 条</p><div class=\"scroll\"><table id=\"records\"><tr><th>日期</th><th>标题</th><th>活动组</th><th>联系点</th><th>类型</th><th>状态</th><th>记录人</th><th>冲突</th></tr>");
    for (id, date, start, g, cp, code, status, conflicts, title, by) in &rows {
        let when = start
            .as_deref()
            .map(|s| s.replace('T', " "))
            .or(date.clone())
            .unwrap_or_default();
        b.raw("<tr><td>")
            .text(when.get(..16).unwrap_or(&when))
            .raw("</td><td>")
            .link(
                &format!("/console/records/{}", url(id)),
                if title.is_empty() { id } else { title },
            )
            .raw("</td><td>")
            .text(g.as_deref().map_or("", |g| name(&names, g)))
            .raw("</td><td>")
            .text(cp.as_deref().map_or("", |c| name(&names, c)))
            .raw("</td><td>")
            .text(
                &code
                    .as_deref()
                    .map(|c| type_zh(kind, c))
                    .unwrap_or_default(),
            )
            .raw("</td><td>")
            .text(state_zh(status))
            .raw("</td><td>")
            .text(name(&names, by))
            .raw("</td><td>");
        if *conflicts > 0 {
            b.raw("<span class=\"warn\">")
                .num(conflicts)
                .raw(" 处待裁定</span>");
        }
        b.raw("</td></tr>");
    }
    b.raw("</table></div>");
    // Paging keeps the filters.
    let mut base = format!("/console/records?kind={}", kind.code());
    for key in ["group", "from", "to", "status", "type", "conflicts"] {
        if let Some(v) = q.get(key).filter(|v| !v.is_empty()) {
            base.push_str(&format!("&{key}={}", url(v)));
        }
    }
    let pages = (total + PAGE_SIZE - 1) / PAGE_SIZE;
    b.raw("<div class=\"pager\">");
    if page_no > 1 {
        b.link(&format!("{base}&page={}", page_no - 1), "‹ 上一页");
    }
    b.raw("<span>第 ")
        .num(page_no)
        .raw(" / ")
        .num(pages.max(1))
        .raw(" 页</span>");
    if page_no < pages {
        b.link(&format!("{base}&page={}", page_no + 1), "下一页 ›");
    }
    b.raw("</div>");
    Ok(page(kind.zh(), who(s), b))
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

/// Whether the signed-in account may read a record of `group`, and resolve its conflicts.
fn access(s: &Session, kind: RecordKind, group: Option<&str>) -> (bool, bool) {
    match s.account.role {
        Role::Staff => (true, !kind.is_directory()),
        Role::Admin => (true, false),
        Role::Leader => {
            let own = group.is_some() && s.account.group.as_deref() == group;
            (kind.is_directory() || own, own && !kind.is_directory())
        }
        Role::Member => (false, false),
    }
}

pub fn record(
    data: &mut ServerData,
    blobs: &dyn crate::blobs::BlobStore,
    s: &Session,
    id: &str,
    q: &HashMap<String, String>,
) -> Result<String, Response> {
    let entry = data
        .store()
        .index_entry(id)
        .map_err(|e| internal(e, Some(s)))?
        .ok_or_else(|| {
            error_page(
                StatusCode::NOT_FOUND,
                &format!("没有编号为 {id} 的记录"),
                Some(s),
            )
        })?;
    let kind = RecordKind::parse(&entry.kind).unwrap_or(RecordKind::Visit);
    let (may_read, may_resolve) = access(s, kind, entry.group.as_deref());
    if !may_read {
        return Err(forbidden(s, "这条记录不属于您的活动组"));
    }
    let mut doc = data.store().load(id).map_err(|e| internal(e, Some(s)))?;
    let view = doc.view().map_err(|e| internal(e, Some(s)))?;
    let history = doc.history();
    let devices: HashMap<String, String> = data
        .devices()
        .map_err(|e| internal(e, Some(s)))?
        .into_iter()
        .map(|d| (d.device_id, d.name))
        .collect();
    let names: HashMap<String, String> = names(data.store()).map_err(|e| internal(e, Some(s)))?;
    let device = |d: &str| -> String {
        match devices.get(d) {
            Some(n) => format!("{n}（{}）", d.get(..8).unwrap_or(d)),
            None if d == SERVER_ID => "服务器（工作台）".into(),
            None => d.to_string(),
        }
    };
    let fields = sanjin_core::doc::fields_json(&view.data);
    let mut b = Html::default();
    if q.get("msg").is_some_and(|m| m == "resolved") {
        b.raw("<div class=\"msg\" id=\"resolved\">已裁定。裁定作为一次修改记入留痕，各设备下次同步时收到。</div>");
    }
    b.raw("<h1>")
        .text(kind.zh())
        .raw("：")
        .text(&entry.title)
        .raw("</h1>");
    b.raw("<div class=\"card\"><dl><dt>记录编号</dt><dd id=\"record-id\">")
        .text(id)
        .raw("</dd><dt>状态</dt><dd>")
        .text(view.status.zh());
    if view.deleted {
        b.raw("（已删除）");
    }
    b.raw("</dd><dt>记录人</dt><dd>")
        .text(name(&names, &view.created_by))
        .raw("</dd><dt>记录时间</dt><dd>")
        .text(&beijing(view.created_at_ms))
        .raw("</dd>");
    for spec in schema::fields(kind) {
        let v = fields.get(spec.name).cloned().unwrap_or(Value::Null);
        if spec.name == "photos" {
            continue;
        }
        b.raw("<dt>")
            .text(spec.zh)
            .raw("</dt><dd>")
            .text(&show_value(&v, &names, spec.name))
            .raw("</dd>");
    }
    b.raw("</dl></div>");
    if schema::field(kind, "photos").is_some() {
        let photos = doc.photos().map_err(|e| internal(e, Some(s)))?;
        b.raw("<div class=\"card\" id=\"photos\"><h2>照片</h2>");
        if photos.is_empty() {
            b.raw("<p>没有照片</p>");
        }
        b.raw("<div class=\"photos\">");
        let reader = BlobReader::of(&s.account);
        for p in &photos {
            b.raw("<figure class=\"photo\">");
            // Links are built only from a valid content address; anything else a device wrote
            // is shown as text and opens nothing.
            let Some(hash) = BlobHash::of_reference(&p.hash) else {
                b.raw("<div class=\"nothumb\">无缩略图</div><figcaption><span class=\"badref\">照片引用无效（不是合法的照片编号），无法查看，请联系记录人重新上传</span><br><code>")
                    .text(p.hash.get(..24).unwrap_or(&p.hash))
                    .raw("</code></figcaption></figure>");
                continue;
            };
            let hex = hash.to_hex();
            let base = format!("/console/records/{}/photos/{hex}", url(id));
            if doc.thumbnail(&hex).is_some() {
                b.raw("<img src=\"")
                    .text(&format!("{base}/thumb"))
                    .raw("\" alt=\"")
                    .text(if p.caption.is_empty() {
                        "照片"
                    } else {
                        &p.caption
                    })
                    .raw("\" loading=\"lazy\">");
            } else {
                b.raw("<div class=\"nothumb\">无缩略图</div>");
            }
            b.raw("<figcaption>");
            if !p.caption.is_empty() {
                b.el("<b>", &p.caption, "</b><br>");
            }
            if let Some(t) = p.taken_at {
                b.text(&format!("拍摄于 {}", t.format("%Y-%m-%d %H:%M")))
                    .raw("<br>");
            }
            if let Some(g) = p.gps {
                b.text(&format!("位置 {g}")).raw("<br>");
            }
            // Held for this reader: uploaded by a device within the reader's scope (proof of
            // possession), and on disk.
            let held = data
                .blob_proven_for(&hash, reader)
                .map_err(|e| internal(e, Some(s)))?
                && matches!(blobs.size(&hash), Ok(Some(_)));
            if held {
                b.raw("<a class=\"original\" href=\"")
                    .text(&base)
                    .raw("\">查看原图");
                if p.bytes > 0 {
                    b.text(&format!("（{:.1} MB）", p.bytes as f64 / 1_048_576.0));
                }
                b.raw("</a>");
            } else {
                b.raw("<span class=\"pending\">原图尚未上传</span>");
            }
            b.raw("<br><code title=\"")
                .text(&hex)
                .raw("\">")
                .text(&hex[..12])
                .raw("</code></figcaption></figure>");
        }
        b.raw("</div></div>");
    }
    b.raw("<div class=\"card\" id=\"conflicts\"><h2>待裁定的冲突</h2>");
    if view.conflicts.is_empty() {
        b.raw("<p id=\"no-conflicts\">没有待裁定的冲突</p>");
    }
    for (i, c) in view.conflicts.iter().enumerate() {
        let label = if c.field == "status" {
            "状态"
        } else {
            schema::field(kind, &c.field).map_or(c.field.as_str(), |f| f.zh)
        };
        b.raw("<div class=\"conflict\"><b>")
            .text(label)
            .raw("</b> 有 ")
            .num(c.values.len())
            .raw(" 个同时修改的值：");
        if may_resolve {
            b.raw("<form method=\"post\" action=\"/console/records/")
                .text(&url(id))
                .raw("/resolve\">")
                .hidden("csrf", &s.csrf)
                .hidden("field", &c.field);
        }
        b.raw("<ul>");
        for (j, v) in c.values.iter().enumerate() {
            b.raw("<li><label>");
            if may_resolve {
                let json = serde_json::to_string(&v.value).unwrap_or_default();
                b.raw("<input type=\"radio\" name=\"value\" id=\"c")
                    .num(i)
                    .raw("-")
                    .num(j)
                    .raw("\" value=\"")
                    .text(&json)
                    .raw("\"");
                if j == 0 {
                    b.raw(" checked");
                }
                b.raw("> ");
            }
            b.text(&show_value(&v.value, &names, &c.field))
                .raw("</label> —— ")
                .text(name(&names, &v.member))
                .raw("，")
                .text(&device(&v.device))
                .raw("，")
                .text(&beijing(v.at_ms))
                .raw("</li>");
        }
        b.raw("</ul>");
        if may_resolve {
            b.raw("<button class=\"primary\" type=\"submit\" id=\"resolve-")
                .num(i)
                .raw("\">以所选的值裁定</button></form>");
        }
        b.raw("</div>");
    }
    if !view.conflicts.is_empty() && !may_resolve {
        b.raw("<p>只有本组组长或机关工作人员可以裁定。</p>");
    }
    b.raw("</div>");
    b.raw("<div class=\"card\"><h2>留痕（修改历史）</h2><div class=\"scroll\"><table id=\"history\"><tr><th>时间</th><th>委员</th><th>设备</th><th>操作</th><th>字段</th></tr>");
    for h in &history {
        let fields: Vec<&str> = h
            .fields
            .iter()
            .map(|f| {
                if f == "status" {
                    "状态"
                } else {
                    schema::field(kind, f).map_or(f.as_str(), |s| s.zh)
                }
            })
            .collect();
        b.raw("<tr><td>")
            .text(&beijing(h.at_ms))
            .raw("</td><td>")
            .text(name(&names, &h.member))
            .raw("</td><td>")
            .text(&device(&h.device))
            .raw("</td><td>")
            .text(&action_zh(&h.action))
            .raw("</td><td>")
            .text(&fields.join("、"))
            .raw("</td></tr>");
    }
    b.raw("</table></div></div>");
    Ok(page(kind.zh(), who(s), b))
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
) -> Result<PhotoOut, Response> {
    let not_found = |msg: &str| error_page(StatusCode::NOT_FOUND, msg, Some(s));
    let Some(hash) = BlobHash::parse(hash) else {
        return Err(not_found("照片编号不对：应为 64 位小写十六进制数字"));
    };
    let entry = data
        .store()
        .index_entry(id)
        .map_err(|e| internal(e, Some(s)))?
        .ok_or_else(|| not_found(&format!("没有编号为 {id} 的记录")))?;
    let kind = RecordKind::parse(&entry.kind).unwrap_or(RecordKind::Visit);
    if !access(s, kind, entry.group.as_deref()).0 {
        return Err(forbidden(s, "这条记录不属于您的活动组"));
    }
    let doc = data.store().load(id).map_err(|e| internal(e, Some(s)))?;
    if !crate::blobs::references(&doc, &hash).map_err(|e| internal(e, Some(s)))? {
        return Err(not_found("这条记录没有这张照片"));
    }
    match part {
        PhotoPart::Thumbnail => doc
            .thumbnail(&hash.to_hex())
            .map(PhotoOut::Thumbnail)
            .ok_or_else(|| not_found("这张照片没有缩略图")),
        PhotoPart::Original => {
            let proven = data
                .blob_proven_for(&hash, BlobReader::of(&s.account))
                .map_err(|e| internal(e, Some(s)))?;
            if proven {
                Ok(PhotoOut::Original(hash))
            } else {
                Err(not_found(ORIGINAL_NOT_HERE))
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
    form: &HashMap<String, String>,
) -> Result<(), Response> {
    let entry = data
        .store()
        .index_entry(id)
        .map_err(|e| internal(e, Some(s)))?
        .ok_or_else(|| {
            error_page(
                StatusCode::NOT_FOUND,
                &format!("没有编号为 {id} 的记录"),
                Some(s),
            )
        })?;
    let kind = RecordKind::parse(&entry.kind).unwrap_or(RecordKind::Visit);
    let (_, may_resolve) = access(s, kind, entry.group.as_deref());
    if !may_resolve {
        return Err(forbidden(
            s,
            "只有本组组长或机关工作人员可以裁定这条记录的冲突",
        ));
    }
    let field = form.get("field").cloned().unwrap_or_default();
    let value: Value = form
        .get("value")
        .and_then(|v| serde_json::from_str(v).ok())
        .ok_or_else(|| bad(s, "请选择一个值再裁定"))?;
    let mut doc = data.store().load(id).map_err(|e| internal(e, Some(s)))?;
    // The server's own actor; the member who resolved is named in the change.
    let actor = data.store().identity().actor.clone();
    let author =
        Author::new(&s.account.member, SERVER_ID, &actor).map_err(|e| internal(e, Some(s)))?;
    match doc.resolve(&author, now_ms(), &field, value) {
        Ok(_) => {}
        Err(sanjin_core::Error::Invalid(v)) => {
            return Err(bad(s, &format!("无法裁定：{}", v.zh(kind))));
        }
        Err(e) => return Err(internal(e, Some(s))),
    }
    data.land_local(&mut doc)
        .map_err(|e| internal(e, Some(s)))?;
    tracing::info!(member = %s.account.member, doc = %id, field = %field, "conflict resolved in the console");
    Ok(())
}

// ------------------------------------------------------------------ export

fn export_query(s: &Session, q: &HashMap<String, String>) -> Result<(Query, Format), Response> {
    export_query_at(s, q, None)
}

fn export_query_at(
    s: &Session,
    q: &HashMap<String, String>,
    console_url: Option<String>,
) -> Result<(Query, Format), Response> {
    let t = today();
    let from = date_param(s, q, "from")?
        .unwrap_or_else(|| NaiveDate::from_ymd_opt(t.year(), 1, 1).expect("1 January"));
    let to = date_param(s, q, "to")?.unwrap_or(t);
    if from > to {
        return Err(bad(s, "起始日期晚于结束日期，请调换"));
    }
    let format = match q.get("format").map(String::as_str) {
        Some("csv") => Format::Csv,
        _ => Format::Xlsx,
    };
    let group = group_param(s, q)?;
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

pub fn export_page(
    dir: &Path,
    s: &Session,
    q: &HashMap<String, String>,
) -> Result<String, Response> {
    let (query, _) = export_query(s, q)?;
    let ledger = open_ledger(dir, s)?;
    let names = names(ledger.store()).map_err(|e| internal(e, Some(s)))?;
    let mut b = Html::default();
    b.raw("<h1>导出台账</h1><div class=\"card\"><p>每个台账一个工作表：活动台账、社情民意台账（含各办理状态用时）、结对帮扶台账、委员履职统计、未参与委员、六个一完成情况、计划执行（按月、按季度）、社情民意主题、汇总。CSV 为 UTF-8 编码，每个台账一个文件，打包为 zip。</p>")
        .raw("<form class=\"filters\" method=\"get\" action=\"/console/export/file\" id=\"export\">")
        .raw("<label>起始日期<input type=\"date\" name=\"from\" id=\"e-from\" value=\"").text(&query.from.to_string())
        .raw("\"></label><label>结束日期<input type=\"date\" name=\"to\" id=\"e-to\" value=\"").text(&query.to.to_string()).raw("\"></label>");
    if matches!(viewer(s), Viewer::Office) {
        b.raw("<label>活动组<select name=\"group\"><option value=\"\">全部</option>");
        let mut groups: Vec<(&String, &String)> = names
            .iter()
            .filter(|(k, _)| k.starts_with("group-"))
            .collect();
        groups.sort();
        for (id, n) in groups {
            b.raw("<option value=\"")
                .text(id)
                .raw("\">")
                .text(n)
                .raw("</option>");
        }
        b.raw("</select></label>");
    } else if let Some(g) = &query.slice.group {
        b.raw("<span>活动组：").text(name(&names, g)).raw("</span>");
    }
    b.raw("<button class=\"primary\" type=\"submit\" name=\"format\" value=\"xlsx\" id=\"export-xlsx\">导出 Excel</button>")
        .raw("<button class=\"primary\" type=\"submit\" name=\"format\" value=\"csv\" id=\"export-csv\">导出 CSV（zip）</button></form></div>");
    let _ = esc;
    Ok(page("导出台账", who(s), b))
}

/// The export file; `console_url` (this console's address as the browser reached it) lets
/// the activity ledger link photos back to the record pages.
pub fn export_file(
    dir: &Path,
    s: &Session,
    q: &HashMap<String, String>,
    console_url: Option<String>,
) -> Result<(String, Format, Vec<u8>), Response> {
    let (query, format) = export_query_at(s, q, console_url)?;
    let mut ledger = open_ledger(dir, s)?;
    let tmp = tempfile_path(dir, format);
    let result = ledger.export(&viewer(s), &query, format, &tmp);
    let out = match result {
        Ok(_) => std::fs::read(&tmp).map_err(|e| internal(e, Some(s))),
        Err(sanjin_ledger::Error::Forbidden(m)) => Err(forbidden(s, &m)),
        Err(sanjin_ledger::Error::Invalid(m)) => Err(bad(s, &m)),
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
fn export_failed(e: &sanjin_ledger::Error, s: &Session) -> Response {
    tracing::error!(member = %s.account.member, error = %e, "console export failed");
    let status = match e {
        // The data of one record, not the server: nothing a retry would fix.
        sanjin_ledger::Error::Row { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error_page(status, &e.zh(), Some(s))
}

fn tempfile_path(dir: &Path, format: Format) -> std::path::PathBuf {
    let n: [u8; 8] = crate::data::random();
    dir.join(format!(".export-{}.{}", hex::encode(n), format.extension()))
}

#[cfg(test)]
mod issue10_export_errors {
    use super::*;
    use crate::model::Account;

    #[tokio::test]
    async fn issue10_console_export_failure_names_the_record_in_chinese() {
        let s = Session {
            account: Account {
                member: "office-01".into(),
                role: Role::Staff,
                group: None,
                name: "王秘书".into(),
            },
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
        let r = export_failed(&e, &s);
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
        let r = export_failed(&io, &s);
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
