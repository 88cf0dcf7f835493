//! The year's plan from an Excel sheet (issue 13): `GET /console/plans/import` (the upload
//! form and the template's link), `POST /console/plans/import` (the sheet checked row by row
//! and shown — **nothing saved**), `POST /console/plans/import/confirm` (exactly the previewed
//! valid rows saved, in one unit of work), `GET /console/plans/template` (the template XLSX with
//! the header row, drop-downs and the directory the account may plan for).
//!
//! The upload is `multipart/form-data` (what a form without script sends), read by
//! [`multipart`] (the console's one strict parser, shared with the directory import), within
//! [`UPLOAD_BYTES`]. The sheet is read by calamine's streaming cell reader after its
//! zip entries' real sizes were bounded ([`read_sheet`]): no cell position or compression ratio
//! can make it allocate beyond [`MAX_UNZIPPED`]. Each row is then checked like the console's
//! form (`plans::check`: the directory, who may, `sanjin_core::input`), plus duplicates within
//! the sheet and against the plan items the server holds ([`check_rows`]).
//!
//! Between preview and confirm the parsed rows stay on the server ([`Pending`]), under a random
//! token bound to the session (its member and CSRF token), for [`PENDING_TTL`]; nothing of them
//! travels through the page. The confirmation checks the rows again against the directory and
//! the plan as they are then: if any row's outcome changed, nothing is saved and the page says
//! which rows.

use std::collections::{BTreeMap, HashMap};
use std::io::{Cursor, Read};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};
use sanjin_core::domain::{ActivityType, PlanItem};
use serde::Deserialize;

use super::error::ConsoleError;
use super::extract::{ConsoleForm, SignedIn};
use super::multipart;
use super::pages::signed_page;
use super::plans::{
    FIELDS, FieldError, PlanDir, PlanKey, RawPlan, author, check, existing, key_of, label, new_doc,
};
use super::{
    FORM_BODY_BYTES, Session, blocking, csrf_ok, expired, html_response, redirect, with_data,
};
use crate::model::Account;
use crate::state::AppState;

/// The largest upload (the multipart body: the sheet and the CSRF token).
pub const UPLOAD_BYTES: usize = 5 << 20;
/// The most the sheet's zip entries may unpack to, together.
pub const MAX_UNZIPPED: u64 = 64 << 20;
/// The most data rows one import takes.
pub const MAX_ROWS: u32 = 2000;
/// Columns beyond this one are not read.
const MAX_COLUMN: u32 = 40;
/// How long a preview can be confirmed.
pub const PENDING_TTL: Duration = Duration::from_secs(30 * 60);
/// Previews kept at once (the oldest goes first).
const MAX_PENDING: usize = 64;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/console/plans/import",
            get(upload_page)
                .post(preview)
                .layer(DefaultBodyLimit::max(UPLOAD_BYTES)),
        )
        .route(
            "/console/plans/import/confirm",
            post(confirm).layer(DefaultBodyLimit::max(FORM_BODY_BYTES)),
        )
        .route("/console/plans/template", get(template))
        .layer(Extension(Pending::default()))
}

// ------------------------------------------------------------------ the sheet

/// One data row of the sheet: its row number as Excel shows it, and its cells by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RawRow {
    pub line: u32,
    pub raw: RawPlan,
}

/// The field a header cell names (its text up to a bracket: `联系点（可不填）` is 联系点).
fn header_field(text: &str) -> Option<&'static str> {
    let t = text
        .split(['（', '('])
        .next()
        .unwrap_or("")
        .trim()
        .to_lowercase();
    Some(match t.as_str() {
        "年度" | "年份" | "年" | "year" => "year",
        "季度" | "quarter" => "quarter",
        "月份" | "月" | "month" => "month",
        "活动组" | "组" | "group" => "group",
        "责任委员" | "负责委员" | "负责人" | "委员" | "owner" => "owner",
        "活动类型" | "类型" | "活动形式" | "activity_type" => "activity_type",
        "计划内容" | "内容" | "活动内容" | "title" => "title",
        "联系点" | "contact_point" => "contact_point",
        _ => return None,
    })
}

/// The columns a sheet must have.
const REQUIRED: [&str; 6] = ["year", "month", "group", "owner", "activity_type", "title"];

/// A cell as text: numbers as typed (2025, not 2025.0), dates as 年-月-日.
fn cell_text(v: &calamine::DataRef) -> String {
    use calamine::DataRef as D;
    match v {
        D::String(s) | D::DateTimeIso(s) | D::DurationIso(s) => s.trim().to_string(),
        D::SharedString(s) => s.trim().to_string(),
        D::Int(i) => i.to_string(),
        D::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        D::Float(f) => f.to_string(),
        D::Bool(b) => if *b { "是" } else { "否" }.to_string(),
        D::DateTime(d) => {
            let days = d.as_f64().floor() as i64;
            chrono::NaiveDate::from_ymd_opt(1899, 12, 30)
                .and_then(|base| base.checked_add_signed(chrono::Duration::days(days)))
                .map_or_else(|| d.as_f64().to_string(), |x| x.to_string())
        }
        D::Error(e) => format!("#{e:?}"),
        D::Empty => String::new(),
    }
}

/// Reads the plan rows of an XLSX file: the sheet named 年度计划, else the first; the header
/// row is the first of the first ten rows naming three or more of the columns; empty rows are
/// skipped. A file that is no XLSX, too large unpacked, without the required columns or with
/// more than [`MAX_ROWS`] rows is an error in Chinese.
pub(super) fn read_sheet(bytes: &[u8]) -> Result<Vec<RawRow>, String> {
    use calamine::Reader;
    if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
        return Err(
            "这是旧版 Excel（.xls）文件，请在 Excel 或 WPS 中“另存为”.xlsx 格式后再上传".into(),
        );
    }
    let not_xlsx = "文件不是有效的 Excel（.xlsx）文件，请用导入模板填写后上传";
    if !bytes.starts_with(b"PK\x03\x04") {
        return Err(not_xlsx.into());
    }
    // The real unpacked size of every entry, before calamine reads any of them.
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|_| not_xlsx.to_string())?;
    let mut total = 0u64;
    for i in 0..zip.len() {
        let entry = zip.by_index(i).map_err(|_| not_xlsx.to_string())?;
        let read = std::io::copy(
            &mut entry.take(MAX_UNZIPPED - total + 1),
            &mut std::io::sink(),
        )
        .map_err(|_| not_xlsx.to_string())?;
        total += read;
        if total > MAX_UNZIPPED {
            return Err(format!(
                "文件解压后超过 {} MiB，请删去多余的工作表或内容，只保留年度计划后再上传",
                MAX_UNZIPPED >> 20
            ));
        }
    }
    let mut book: calamine::Xlsx<_> =
        calamine::Xlsx::new(Cursor::new(bytes)).map_err(|_| not_xlsx.to_string())?;
    let names = book.sheet_names();
    let sheet = names
        .iter()
        .find(|n| n.trim() == "年度计划")
        .or_else(|| names.first())
        .cloned()
        .ok_or_else(|| not_xlsx.to_string())?;
    let mut cells: BTreeMap<u32, BTreeMap<u32, String>> = BTreeMap::new();
    {
        let mut reader = book
            .worksheet_cells_reader(&sheet)
            .map_err(|_| not_xlsx.to_string())?;
        // Rows past the header's possible rows and the data limit are not kept.
        let last_row = MAX_ROWS + 10;
        while let Some(cell) = reader.next_cell().map_err(|_| not_xlsx.to_string())? {
            let (r, c) = cell.get_position();
            let text = cell_text(cell.get_value());
            if text.is_empty() || c > MAX_COLUMN {
                continue;
            }
            if r > last_row {
                return Err(format!("表格超过 {MAX_ROWS} 行，请分成几个文件分批导入"));
            }
            cells.entry(r).or_default().insert(c, text);
        }
    }
    let header = cells
        .iter()
        .take(10)
        .find(|(_, row)| row.values().filter_map(|t| header_field(t)).count() >= 3)
        .map(|(r, row)| (*r, row.clone()))
        .ok_or_else(|| {
            format!("工作表“{sheet}”的前 10 行里找不到表头（年度、季度、月份、活动组、责任委员、活动类型、计划内容、联系点），请使用导入模板")
        })?;
    let mut columns: BTreeMap<u32, &'static str> = BTreeMap::new();
    for (c, t) in &header.1 {
        if let Some(f) = header_field(t)
            && !columns.values().any(|x| *x == f)
        {
            columns.insert(*c, f);
        }
    }
    let missing: Vec<&str> = REQUIRED
        .iter()
        .filter(|f| !columns.values().any(|x| x == *f))
        .map(|f| label(f))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "表头缺少“{}”列，请使用导入模板（表头：年度、季度、月份、活动组、责任委员、活动类型、计划内容、联系点）",
            missing.join("”“")
        ));
    }
    let mut rows = Vec::new();
    for (r, row) in cells.range(header.0 + 1..) {
        let mut raw = RawPlan::default();
        let mut any = false;
        for (c, f) in &columns {
            if let Some(t) = row.get(c) {
                raw.set(f, t.clone());
                any = true;
            }
        }
        if any {
            rows.push(RawRow { line: r + 1, raw });
        }
    }
    if rows.len() > MAX_ROWS as usize {
        return Err(format!("表格超过 {MAX_ROWS} 行，请分成几个文件分批导入"));
    }
    Ok(rows)
}

/// One row as checked: what it gives, or every error of it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RowCheck {
    pub line: u32,
    pub raw: RawPlan,
    pub item: Option<PlanItem>,
    pub errors: Vec<FieldError>,
}

/// Checks each row like the console's form (the directory, who may, the core's fields), then
/// refuses a row equal to an earlier valid row of the sheet or to a plan item the server holds.
pub(super) fn check_rows(
    rows: &[RawRow],
    dir: &PlanDir,
    held: &HashMap<PlanKey, String>,
    account: &Account,
) -> Vec<RowCheck> {
    let mut seen: HashMap<PlanKey, u32> = HashMap::new();
    rows.iter()
        .map(|r| {
            let mut out = RowCheck {
                line: r.line,
                raw: r.raw.clone(),
                item: None,
                errors: vec![],
            };
            match check(&r.raw, dir, account) {
                Err(e) => out.errors = e,
                Ok(item) => {
                    let key = key_of(&item);
                    if let Some(first) = seen.get(&key) {
                        out.errors.push((
                            "record",
                            format!("与第 {first} 行重复（同一年份、月份、活动组、责任委员、活动类型和计划内容），请删去一行"),
                        ));
                    } else if let Some(id) = held.get(&key) {
                        out.errors.push((
                            "record",
                            format!("与已有计划项重复（编号 {id}），已有的不必再导入；如需修改请在年度计划页面修改"),
                        ));
                    } else {
                        seen.insert(key, r.line);
                        out.item = Some(item);
                    }
                }
            }
            out
        })
        .collect()
}

/// The valid rows of a check, by line, with their plan items.
fn valid_items(checked: &[RowCheck]) -> Vec<(u32, PlanItem)> {
    checked
        .iter()
        .filter_map(|c| c.item.clone().map(|i| (c.line, i)))
        .collect()
}

// ------------------------------------------------------------------ previews kept for confirmation

/// A preview waiting for its confirmation.
struct PendingImport {
    member: String,
    csrf: String,
    at: Instant,
    rows: Vec<RawRow>,
    /// The rows the preview showed as valid, by line, with the plan items they gave.
    valid: Vec<(u32, PlanItem)>,
}

/// The previews waiting for confirmation, by token.
#[derive(Clone, Default)]
pub(super) struct Pending(Arc<Mutex<HashMap<String, PendingImport>>>);

impl Pending {
    fn put(&self, s: &Session, rows: Vec<RawRow>, valid: Vec<(u32, PlanItem)>) -> String {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).expect("the OS provides randomness");
        let token = hex::encode(b);
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, p| p.at.elapsed() < PENDING_TTL);
        // One preview per session: a new upload replaces the last.
        map.retain(|_, p| !(p.member == s.account.member && p.csrf == s.csrf));
        while map.len() >= MAX_PENDING {
            let oldest = map
                .iter()
                .min_by_key(|(_, p)| p.at)
                .map(|(k, _)| k.clone())
                .expect("not empty");
            map.remove(&oldest);
        }
        map.insert(
            token.clone(),
            PendingImport {
                member: s.account.member.clone(),
                csrf: s.csrf.clone(),
                at: Instant::now(),
                rows,
                valid,
            },
        );
        token
    }

    /// Takes the preview of `token` if it is this session's and not expired.
    fn take(&self, s: &Session, token: &str) -> Option<PendingImport> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let p = map.get(token)?;
        if p.member != s.account.member || p.csrf != s.csrf || p.at.elapsed() >= PENDING_TTL {
            return None;
        }
        map.remove(token)
    }
}

// ------------------------------------------------------------------ handlers

async fn upload_page(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
) -> Result<Response, ConsoleError> {
    let s2 = s.clone();
    let page = with_data(&state, &s, move |d| {
        let dir = PlanDir::load(d.store())?;
        may_import(&dir, &s2)?;
        Ok(upload_form(&s2, None))
    })
    .await?;
    Ok(html_response(StatusCode::OK, page))
}

fn may_import(dir: &PlanDir, s: &Session) -> Result<(), ConsoleError> {
    if dir.writable(&s.account).next().is_some() {
        Ok(())
    } else {
        Err(ConsoleError::forbidden(match s.account.role {
            crate::model::Role::Admin => {
                "管理员账户不能导入年度计划：计划由机关工作人员或活动组组长制定"
            }
            _ => "您的账户不能导入年度计划",
        }))
    }
}

fn upload_form(s: &Session, error: Option<&str>) -> Markup {
    let body = html! {
        h1 { "从 Excel 导入年度计划" }
        @if let Some(e) = error {
            div class="msg err" id="import-error" { (e) }
        }
        div class="card" {
            p {
                "每行一项计划，表头为：年度、季度、月份、活动组、责任委员、活动类型、计划内容、联系点（可不填）。"
                "活动组、责任委员、联系点可填名称或编号；季度不填时按月份推算。"
            }
            p { a id="plan-template" href="/console/plans/template" { "下载导入模板（.xlsx）" } }
            form class="filters" method="post" action="/console/plans/import" enctype="multipart/form-data" id="import-form" {
                input type="hidden" name="csrf" value=(s.csrf);
                label {
                    "Excel 文件（.xlsx，不超过 5 MiB）"
                    input type="file" name="file" id="import-file" accept=".xlsx,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" required;
                }
                button class="primary" type="submit" id="import-preview" { "上传并检查" }
            }
            p class="note" { "上传后先逐行检查并显示结果，此时不保存任何内容；确认后才保存检查通过的行。" }
        }
        p { a href="/console/plans" { "返回年度计划" } }
    };
    signed_page("导入年度计划", s, body)
}

async fn preview(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    Extension(pending): Extension<Pending>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ConsoleError> {
    let body = body.map_err(|_| {
        ConsoleError::bad(format!(
            "文件过大：上传内容不能超过 {} MiB，请删去多余内容或分批导入",
            UPLOAD_BYTES >> 20
        ))
        .seen_by(&s)
    })?;
    let parts = multipart::read(&headers, &body).ok_or_else(|| {
        ConsoleError::bad("上传的内容格式不对，请从导入页面选择文件后提交").seen_by(&s)
    })?;
    if !csrf_ok(&s, multipart::csrf(&parts), &headers, &uri) {
        return Err(expired(&s));
    }
    let Some(file) = multipart::field(&parts, "file").filter(|f| !f.data.is_empty()) else {
        return Ok(html_response(
            StatusCode::BAD_REQUEST,
            upload_form(&s, Some("请选择要导入的 Excel 文件后再上传")),
        ));
    };
    let name = file.filename.clone().unwrap_or_default();
    let bytes = file.data.clone();
    drop(parts);
    let rows = match blocking(move || read_sheet(&bytes)).await? {
        Ok(rows) => rows,
        Err(m) => {
            return Ok(html_response(
                StatusCode::BAD_REQUEST,
                upload_form(&s, Some(&format!("{name}：{m}"))),
            ));
        }
    };
    let s2 = s.clone();
    let page = with_data(&state, &s, move |d| {
        let dir = PlanDir::load(d.store())?;
        may_import(&dir, &s2)?;
        let held = existing(d.store())?;
        let checked = check_rows(&rows, &dir, &held, &s2.account);
        let token = (!valid_items(&checked).is_empty())
            .then(|| pending.put(&s2, rows, valid_items(&checked)));
        Ok(preview_page(&s2, &dir, &name, &checked, token.as_deref()))
    })
    .await?;
    Ok(html_response(StatusCode::OK, page))
}

fn preview_page(
    s: &Session,
    dir: &PlanDir,
    file: &str,
    rows: &[RowCheck],
    token: Option<&str>,
) -> Markup {
    let valid = rows.iter().filter(|r| r.item.is_some()).count();
    let bad = rows.len() - valid;
    let shown = |r: &RowCheck, f: &str| -> String {
        match (&r.item, f) {
            (Some(p), "group") => dir.group_name(&p.group).to_string(),
            (Some(p), "owner") => dir.member_name(&p.owner).to_string(),
            (Some(p), "activity_type") => p.activity_type.zh().to_string(),
            (Some(p), "quarter") => p.quarter.to_string(),
            (Some(p), "contact_point") => p
                .contact_point
                .as_deref()
                .map_or(String::new(), |c| dir.contact_point_name(c).to_string()),
            _ => r.raw.get(f).to_string(),
        }
    };
    let body = html! {
        h1 { "导入预览：" (file) }
        div class="msg" id="import-summary" {
            "共 " b id="rows-total" { (rows.len()) } " 行：检查通过 " b id="rows-valid" { (valid) } " 行，有错误 "
            b id="rows-bad" { (bad) } " 行。"
            strong { "尚未保存任何内容。" }
        }
        div class="scroll card" {
            table id="import-rows" {
                tr {
                    th { "行号" }
                    @for f in FIELDS { th { (label(f)) } }
                    th { "检查结果" }
                }
                @for r in rows {
                    tr id={ "row-" (r.line) } class=(if r.item.is_some() { "row-ok" } else { "row-bad" }) {
                        td { (r.line) }
                        @for f in FIELDS {
                            td class=(if r.errors.iter().any(|(x, _)| *x == f) { "cell-err" } else { "" }) { (shown(r, f)) }
                        }
                        td class="wrap" id={ "result-" (r.line) } {
                            @if r.item.is_some() { span class="ok" { "可以导入" } }
                            @else {
                                ul class="row-errors" { @for (_, m) in &r.errors { li { (m) } } }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(t) = token {
            form class="filters card" method="post" action="/console/plans/import/confirm" id="confirm-form" {
                input type="hidden" name="csrf" value=(s.csrf);
                input type="hidden" name="token" value=(t);
                p {
                    "确认后保存上表中检查通过的 " (valid) " 行，作为新的计划项，委员的手机下次同步时收到。"
                    @if bad > 0 { "有错误的 " (bad) " 行不保存：可改正表格后重新上传（已保存的行再次上传会提示重复）。" }
                }
                button class="primary" type="submit" id="import-confirm" { "确认导入 " (valid) " 项" }
            }
        } @else {
            p id="nothing-to-import" { "没有检查通过的行，请改正表格后重新上传。" }
        }
        p { a href="/console/plans/import" id="import-again" { "重新选择文件" } " · " a href="/console/plans" { "返回年度计划" } }
    };
    signed_page("导入预览", s, body)
}

/// `POST /console/plans/import/confirm`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ConfirmForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub token: String,
}

async fn confirm(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    Extension(pending): Extension<Pending>,
    uri: Uri,
    headers: HeaderMap,
    ConsoleForm(form): ConsoleForm<ConfirmForm>,
) -> Result<Response, ConsoleError> {
    if !csrf_ok(&s, &form.csrf, &headers, &uri) {
        return Err(expired(&s));
    }
    let Some(p) = pending.take(&s, form.token.trim()) else {
        return Err(ConsoleError::bad(format!(
            "这次导入的预览已失效（预览 {} 分钟内有效，且只能由上传的账户在同一次登录中确认，确认过的不能再确认）。请重新上传文件并检查",
            PENDING_TTL.as_secs() / 60
        ))
        .seen_by(&s));
    };
    let s2 = s.clone();
    let (year, n) = with_data(&state, &s, move |d| {
        let dir = PlanDir::load(d.store())?;
        may_import(&dir, &s2)?;
        let held = existing(d.store())?;
        let checked = check_rows(&p.rows, &dir, &held, &s2.account);
        // Exactly what the preview showed: the same rows valid, giving the same items.
        if valid_items(&checked) != p.valid {
            let changed: Vec<String> = checked
                .iter()
                .filter(|c| {
                    let before = p.valid.iter().find(|(l, _)| *l == c.line).map(|(_, i)| i);
                    before != c.item.as_ref()
                })
                .map(|c| {
                    let why = match (c.errors.first(), &c.item) {
                        (Some((_, m)), _) => m.clone(),
                        (None, Some(_)) if p.valid.iter().any(|(l, _)| *l == c.line) => {
                            "按现在的名录解读与预览时不同".to_string()
                        }
                        (None, _) => "现在可以导入".to_string(),
                    };
                    format!("第 {} 行：{why}", c.line)
                })
                .collect();
            return Err(ConsoleError::bad(format!(
                "自预览以来名录或已有计划有了变化，未保存任何内容。{}。请重新上传文件并检查",
                changed.join("；")
            )));
        }
        let items: Vec<PlanItem> = checked.into_iter().filter_map(|c| c.item).collect();
        if items.is_empty() {
            return Err(ConsoleError::bad("没有检查通过的行，未保存任何内容"));
        }
        let author = author(d, &s2)?;
        let mut docs = items
            .iter()
            .map(|i| new_doc(&author, i))
            .collect::<Result<Vec<_>, _>>()?;
        d.atomically(|d| {
            for doc in &mut docs {
                d.land_local(doc)?;
            }
            Ok::<_, crate::error::Error>(())
        })
        .map_err(ConsoleError::internal)?;
        tracing::info!(member = %s2.account.member, items = docs.len(), "plan items imported in the console");
        Ok((items[0].year, docs.len()))
    })
    .await?;
    Ok(redirect(&format!(
        "/console/plans?year={year}&msg=imported&n={n}"
    )))
}

// ------------------------------------------------------------------ the template

async fn template(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
) -> Result<Response, ConsoleError> {
    let s2 = s.clone();
    let dir = with_data(&state, &s, move |d| {
        let dir = PlanDir::load(d.store())?;
        may_import(&dir, &s2)?;
        Ok(dir)
    })
    .await?;
    let s3 = s.clone();
    let bytes = blocking(move || template_xlsx(&dir, &s3.account))
        .await
        .and_then(|r| r.map_err(ConsoleError::internal))
        .map_err(|e| e.seen_by(&s))?;
    Ok(super::attachment(
        sanjin_ledger::Format::Xlsx.content_type(),
        "sanjin-plan-template.xlsx",
        "年度计划导入模板.xlsx",
        bytes,
    ))
}

/// The import template: the sheet 年度计划 with the header row, drop-downs for the quarter,
/// month and activity type, and the sheet 填写说明 with the rules and the groups, members and
/// contact points `account` may plan for.
pub(super) fn template_xlsx(
    dir: &PlanDir,
    account: &Account,
) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{DataValidation, DataValidationRule, Format, Workbook};
    let mut book = Workbook::new();
    let head = Format::new().set_bold();
    let headers = [
        ("年度", 8.0),
        ("季度", 8.0),
        ("月份", 8.0),
        ("活动组", 22.0),
        ("责任委员", 14.0),
        ("活动类型", 16.0),
        ("计划内容", 48.0),
        ("联系点（可不填）", 24.0),
    ];
    let last = MAX_ROWS;
    {
        let sheet = book.add_worksheet();
        sheet.set_name("年度计划")?;
        for (c, (h, w)) in headers.iter().enumerate() {
            sheet.write_with_format(0, c as u16, *h, &head)?;
            sheet.set_column_width(c as u16, *w)?;
        }
        sheet.set_freeze_panes(1, 0)?;
        let quarter = DataValidation::new()
            .allow_whole_number(DataValidationRule::Between(1, 4))
            .set_error_message("季度填 1 到 4")?;
        sheet.add_data_validation(1, 1, last, 1, &quarter)?;
        let month = DataValidation::new()
            .allow_whole_number(DataValidationRule::Between(1, 12))
            .set_error_message("月份填 1 到 12")?;
        sheet.add_data_validation(1, 2, last, 2, &month)?;
        let types: Vec<&str> = ActivityType::ALL.iter().map(|t| t.zh()).collect();
        let ty = DataValidation::new().allow_list_strings(&types)?;
        sheet.add_data_validation(1, 5, last, 5, &ty)?;
    }
    let sheet = book.add_worksheet();
    sheet.set_name("填写说明")?;
    sheet.set_column_width(0, 16.0)?;
    sheet.set_column_width(1, 28.0)?;
    sheet.set_column_width(2, 40.0)?;
    let notes = [
        "在“年度计划”工作表中每行填一项计划，第一行表头不要改动。",
        "活动组、责任委员、联系点可填名称或编号（下表）；责任委员须是该活动组的委员，联系点须是该组的联系点，可不填。",
        "季度填 1–4，月份填 1–12，月份须在该季度内；季度不填时按月份推算。",
        "活动类型从下拉列表中选择。同一年份、月份、活动组、责任委员、活动类型和计划内容的计划不能重复。",
        "上传后先逐行检查并显示结果，确认后才保存检查通过的行。",
    ];
    let mut row = 0u32;
    for n in notes {
        sheet.write(row, 0, n)?;
        row += 1;
    }
    row += 1;
    for (c, h) in ["活动组编号", "活动组", "联系点（编号：名称）"]
        .iter()
        .enumerate()
    {
        sheet.write_with_format(row, c as u16, *h, &head)?;
    }
    row += 1;
    let groups: Vec<&str> = dir.writable(account).collect();
    for g in &groups {
        let info = &dir.groups[*g];
        let cps: Vec<String> = info
            .contact_points
            .iter()
            .map(|c| format!("{c}：{}", dir.contact_point_name(c)))
            .collect();
        sheet.write(row, 0, *g)?;
        sheet.write(row, 1, info.name.as_str())?;
        sheet.write(row, 2, cps.join("；"))?;
        row += 1;
    }
    row += 1;
    for (c, h) in ["委员编号", "姓名", "活动组"].iter().enumerate() {
        sheet.write_with_format(row, c as u16, *h, &head)?;
    }
    row += 1;
    for (id, (name, g)) in &dir.members {
        if groups.contains(&g.as_str()) {
            sheet.write(row, 0, id.as_str())?;
            sheet.write(row, 1, name.as_str())?;
            sheet.write(row, 2, dir.group_name(g))?;
            row += 1;
        }
    }
    book.save_to_buffer()
}

#[cfg(test)]
mod tests {
    use super::super::plans::tests::{account, dir};
    use super::*;
    use crate::model::Role;

    /// An XLSX file with `rows` under `header` (empty strings are empty cells; numbers as
    /// numbers).
    fn sheet(header: &[&str], rows: &[Vec<&str>], title_row: bool) -> Vec<u8> {
        let mut book = rust_xlsxwriter::Workbook::new();
        let s = book.add_worksheet();
        s.set_name("年度计划").unwrap();
        let mut r = 0;
        if title_row {
            s.write(0, 0, "2025 年度委员活动计划").unwrap();
            r = 1;
        }
        for (c, h) in header.iter().enumerate() {
            s.write(r, c as u16, *h).unwrap();
        }
        for (i, row) in rows.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                if v.is_empty() {
                    continue;
                }
                let at = (r + 1 + i as u32, c as u16);
                match v.parse::<f64>() {
                    Ok(n) => s.write(at.0, at.1, n).unwrap(),
                    Err(_) => s.write(at.0, at.1, *v).unwrap(),
                };
            }
        }
        book.save_to_buffer().unwrap()
    }

    const HEADER: [&str; 8] = [
        "年度",
        "季度",
        "月份",
        "活动组",
        "责任委员",
        "活动类型",
        "计划内容",
        "联系点（可不填）",
    ];

    #[test]
    fn issue13_a_sheet_is_read_and_checked_row_by_row() {
        let rows = vec![
            vec![
                "2025",
                "2",
                "5",
                "第一组",
                "张三",
                "调研座谈",
                "新华社区人居环境座谈",
                "新华社区",
            ],
            vec![],
            vec![
                "2025",
                "1",
                "5",
                "第一组",
                "李四",
                "入户走访",
                "走访困难户",
                "",
            ],
            vec!["2025", "2", "6", "第九组", "张三", "调研座谈", "座谈", ""],
            vec![
                "2025",
                "3",
                "7",
                "第一组",
                "王五",
                "喝茶",
                "座谈",
                "高新园区",
            ],
            vec![
                "2025",
                "2",
                "5",
                "group-01",
                "member-0001",
                "research_symposium",
                "新华社区人居环境座谈",
                "",
            ],
            vec![
                "2025",
                "",
                "11",
                "第一组",
                "李四",
                "委员讲堂",
                "政策宣讲",
                "cp-002",
            ],
            vec![
                "2025",
                "4",
                "12",
                "第一组",
                "李四",
                "委员接待日",
                "已有的计划",
                "",
            ],
        ];
        let bytes = sheet(&HEADER, &rows, true);
        let read = read_sheet(&bytes).unwrap();
        assert_eq!(
            read.iter().map(|r| r.line).collect::<Vec<_>>(),
            [3, 5, 6, 7, 8, 9, 10],
            "Excel's row numbers, the empty row skipped, under a title row"
        );
        assert_eq!(read[0].raw.year, "2025", "a number cell as typed");
        let mut held = HashMap::new();
        held.insert(
            (
                2025,
                12,
                "group-01".into(),
                "member-0002".into(),
                "reception_day".into(),
                "已有的计划".into(),
            ),
            "plan-old".to_string(),
        );
        let checked = check_rows(&read, &dir(), &held, &account(Role::Staff, None));
        let summary: Vec<(u32, Vec<&str>)> = checked
            .iter()
            .map(|c| (c.line, c.errors.iter().map(|(f, _)| *f).collect()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (3, vec![]),
                (5, vec!["month"]),
                (6, vec!["group", "owner"]),
                (7, vec!["owner", "contact_point", "activity_type"]),
                (8, vec!["record"]),
                (9, vec![]),
                (10, vec!["record"]),
            ]
        );
        let msg = |line: u32| {
            checked.iter().find(|c| c.line == line).unwrap().errors[0]
                .1
                .clone()
        };
        assert_eq!(
            msg(5),
            "月份（month）：5 月不在第 1 季度内，请核对季度和月份"
        );
        assert!(msg(6).contains("“第九组”不在名录中"), "{}", msg(6));
        assert!(
            msg(7).contains("属于第二组，不是第一组的成员"),
            "{}",
            msg(7)
        );
        assert!(msg(8).starts_with("与第 3 行重复"), "{}", msg(8));
        assert!(
            msg(10).contains("与已有计划项重复（编号 plan-old）"),
            "{}",
            msg(10)
        );
        let p = checked[5].item.as_ref().unwrap();
        assert_eq!((p.quarter, p.contact_point.as_deref()), (4, Some("cp-002")));
        assert_eq!(p.activity_type, ActivityType::Lecture);

        // A leader: another group's rows are refused.
        let checked = check_rows(
            &read[..1],
            &dir(),
            &HashMap::new(),
            &account(Role::Leader, Some("group-02")),
        );
        assert!(
            checked[0].errors[0]
                .1
                .contains("组长只能制定和修改本组（group-02）的计划")
        );
    }

    #[test]
    fn issue13_unreadable_sheets_are_refused_in_chinese() {
        assert!(
            read_sheet(b"year,month\n2025,5\n")
                .unwrap_err()
                .contains("不是有效的 Excel")
        );
        assert!(
            read_sheet(&[0xD0, 0xCF, 0x11, 0xE0, 0, 0])
                .unwrap_err()
                .contains(".xls")
        );
        let no_month = sheet(
            &["年度", "活动组", "责任委员", "活动类型", "计划内容"],
            &[],
            false,
        );
        let e = read_sheet(&no_month).unwrap_err();
        assert!(e.contains("表头缺少“月份”列"), "{e}");
        let no_header = sheet(&["甲", "乙"], &[vec!["1", "2"]], false);
        assert!(read_sheet(&no_header).unwrap_err().contains("找不到表头"));
        // Too many rows.
        let many: Vec<Vec<&str>> = (0..=MAX_ROWS)
            .map(|_| vec!["2025", "1", "1", "第一组", "张三", "调研座谈", "x"])
            .collect();
        let e = read_sheet(&sheet(&HEADER, &many, false)).unwrap_err();
        assert!(e.contains("超过 2000 行"), "{e}");
        // A cell far away allocates nothing (no dense range): refused by its row.
        let far = |row: u32, col: u16| {
            let mut book = rust_xlsxwriter::Workbook::new();
            let s = book.add_worksheet();
            for (c, h) in HEADER.iter().enumerate() {
                s.write(0, c as u16, *h).unwrap();
            }
            s.write(row, col, "x").unwrap();
            read_sheet(&book.save_to_buffer().unwrap())
        };
        // The last column: not read; the last row: refused by its number.
        assert_eq!(far(1, 16_383).unwrap(), vec![]);
        let e = far(1_048_575, 0).unwrap_err();
        assert!(e.contains("超过 2000 行"), "{e}");
        // A bomb: a small file unpacking to more than the limit.
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        zip.start_file(
            "xl/worksheets/sheet1.xml",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        let zeros = vec![b' '; 1 << 20];
        for _ in 0..=(MAX_UNZIPPED >> 20) {
            std::io::Write::write_all(&mut zip, &zeros).unwrap();
        }
        let bomb = zip.finish().unwrap().into_inner();
        assert!(bomb.len() < UPLOAD_BYTES, "{} bytes", bomb.len());
        assert!(read_sheet(&bomb).unwrap_err().contains("解压后超过 64 MiB"));
    }

    #[test]
    fn issue13_the_template_reads_back_as_an_empty_plan() {
        let bytes = template_xlsx(&dir(), &account(Role::Leader, Some("group-01"))).unwrap();
        assert_eq!(read_sheet(&bytes).unwrap(), vec![]);
        use calamine::Reader;
        let mut book: calamine::Xlsx<_> = calamine::Xlsx::new(Cursor::new(bytes)).unwrap();
        let notes = book.worksheet_range("填写说明").unwrap();
        let text: Vec<String> = notes.rows().flatten().map(|c| c.to_string()).collect();
        assert!(text.contains(&"第一组".to_string()));
        assert!(text.contains(&"member-0002".to_string()));
        assert!(
            !text.contains(&"member-0003".to_string()),
            "another group's member"
        );
    }
}
