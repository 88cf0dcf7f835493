//! The staff web console (工作台), served by the sync server under `/console`: sign-in for
//! office staff, admins and group leaders, the dashboard, record lists with filters and paging,
//! a record page (fields, photos, history with who / when / which device, open conflicts with a
//! resolve action), and the ledger export. Simplified Chinese, server-rendered HTML that reads on
//! a phone, no script.
//!
//! A leader's resolution is a real automerge change made by the server under its own actor id
//! (the member who resolved is named in the change), landed like any other change: in the store
//! and the change log in one transaction, so devices receive it on their next sync.
//!
//! Security: passwords hashed with Argon2id outside the data lock, sign-in throttled per
//! (account, address) with expiring lockouts (issue 10, `auth.rs`); session cookie HttpOnly,
//! Secure, SameSite=Strict, scoped to `/console`; every POST carries the session's CSRF token
//! and, when the browser sends them, an `Origin` of this host and `Sec-Fetch-Site:
//! same-origin`. Leaders see and export only their group; members cannot sign in. Every
//! response under `/console` (pages, errors, redirects, the stylesheet, photos, exports, unknown
//! paths) carries [`SECURITY_HEADERS`] and [`CONTENT_SECURITY_POLICY`] (photos the stricter
//! [`MEDIA_CSP`]); originals are served with the type sniffed from their bytes, anything but
//! JPEG, PNG or WebP as a download.
//!
//! Layout (issue 11): `extract.rs` reads requests (the session, query strings and forms through
//! axum's `Query` and `Form`), `pages.rs` gathers each page's data and renders it with the
//! `maud` templates of `pages.rs` and `html.rs`, and every handler answers
//! `Result<Response, ConsoleError>` (`error.rs`), so every failure is the same Chinese page.

mod actions;
pub(crate) mod auth;
mod charts;
mod directory;
mod error;
mod extract;
mod html;
mod member_page;
mod multipart;
mod opinions;
mod pages;
mod plans;
mod plans_import;
mod report;

use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_SECURITY_POLICY as CSP_HEADER, CONTENT_TYPE, HOST,
    HeaderName, LOCATION, ORIGIN, SET_COOKIE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use maud::Markup;

pub use auth::{
    ACCOUNT_FAILURES, ADDRESS_FAILURES, COOKIE as SESSION_COOKIE, LOCKOUT, MAX_HASHES_PER_S,
    MAX_LOCKOUT, Session, SignInGuard, may_sign_in, set_password, sign_in,
};
use error::ConsoleError;
use extract::{
    ClientIp, ConsoleForm, ConsoleQuery, CsrfForm, DashboardQuery, ExportQuery, LoginForm,
    RecordQuery, RecordsQuery, ResolveForm, SignedIn, token,
};

/// The largest sign-in form (an account and a password).
const LOGIN_BODY_BYTES: usize = 16 << 10;
/// The largest other console form (a resolution carries one field's value).
const FORM_BODY_BYTES: usize = 1 << 20;

/// How many passwords the server behind `state` has hashed for console sign-ins (issue 10: a
/// throttled attempt hashes nothing).
pub fn password_hashes(state: &AppState) -> u64 {
    state.sign_in_guard().hashes()
}

use crate::state::AppState;

/// The Content-Security-Policy of every console response: nothing but the console's own images,
/// its one stylesheet and forms posting to itself; no script at all, no inline style, no
/// framing, no `<base>`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The policy of photo responses (thumbnails and originals): opened on their own, they run in
/// a sandbox (an opaque origin, no script), whatever their bytes are.
pub const MEDIA_CSP: &str = "default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; sandbox";

/// The other headers on every console response.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("strict-transport-security", "max-age=31536000"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    ),
];

/// Adds the security headers to a console response (a handler may have set a stricter CSP).
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    if !h.contains_key(CSP_HEADER) {
        h.insert(
            CSP_HEADER,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
    }
    for (name, value) in SECURITY_HEADERS {
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    if !h.contains_key(CACHE_CONTROL) {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// The console's routes (merged into [`crate::app`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { redirect("/console/dashboard") }))
        .route(
            "/console/",
            get(|| async { redirect("/console/dashboard") }),
        )
        .route(
            "/console/login",
            get(login_page)
                .post(login)
                .layer(DefaultBodyLimit::max(LOGIN_BODY_BYTES)),
        )
        .route(
            "/console/logout",
            post(logout).layer(DefaultBodyLimit::max(FORM_BODY_BYTES)),
        )
        .route("/console/dashboard", get(dashboard))
        .route("/console/records", get(records))
        .route("/console/records/{id}", get(record))
        .route(
            "/console/records/{id}/resolve",
            post(resolve).layer(DefaultBodyLimit::max(FORM_BODY_BYTES)),
        )
        // Issue 13: workflow steps, the opinions to handle, batch approval.
        .route(
            "/console/records/{id}/step",
            post(step).layer(DefaultBodyLimit::max(FORM_BODY_BYTES)),
        )
        .route("/console/opinions", get(opinions_page))
        // Issue 13: the member's yearly record (履职档案).
        .route("/console/members/{id}", get(member_record))
        .route("/console/assessment", get(assessment_page))
        .route("/console/assessment/file", get(assessment_file))
        // Issue 13: the quarterly report (季度通报) for the chairman's meeting.
        .route("/console/report", get(report::report_page))
        .route("/console/report/file", get(report::report_file))
        .route("/console/review", get(review_page))
        .route(
            "/console/review/approve",
            post(approve_batch).layer(DefaultBodyLimit::max(FORM_BODY_BYTES)),
        )
        .route(
            "/console/records/{id}/photos/{hash}",
            get(|st, h, p| photo(st, h, p, pages::PhotoPart::Original)),
        )
        .route(
            "/console/records/{id}/photos/{hash}/thumb",
            get(|st, h, p| photo(st, h, p, pages::PhotoPart::Thumbnail)),
        )
        // Issue 13: the directory kept by staff.
        .route("/console/directory", get(directory::list))
        .route(
            "/console/directory/new",
            get(directory::new_form)
                .post(directory::create_entry)
                .layer(DefaultBodyLimit::max(FORM_BODY_BYTES)),
        )
        .route("/console/directory/export", get(directory::export))
        .route(
            "/console/directory/import",
            post(directory::import).layer(DefaultBodyLimit::max(
                directory::IMPORT_BODY_BYTES + (64 << 10),
            )),
        )
        .route(
            "/console/directory/import/confirm",
            post(directory::import_confirm).layer(DefaultBodyLimit::max(
                2 * directory::IMPORT_BODY_BYTES + (64 << 10),
            )),
        )
        .route(
            "/console/directory/{id}/{what}",
            get(directory::entry_page)
                .post(directory::entry_post)
                .layer(DefaultBodyLimit::max(FORM_BODY_BYTES)),
        )
        .route("/console/export", get(export_page))
        .route("/console/export/file", get(export_file))
        .route("/console/style.css", get(stylesheet))
        // Issue 13: the year's plan, its forms and its Excel import.
        .merge(plans::routes())
        .merge(plans_import::routes())
        // Unknown console paths get a console page (with the console's headers), not the API's
        // JSON.
        .route("/console/{*rest}", any(unknown_page))
        .layer(middleware::map_response(security_headers))
}

async fn stylesheet() -> Response {
    (
        StatusCode::OK,
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        html::stylesheet(),
    )
        .into_response()
}

async fn unknown_page() -> ConsoleError {
    ConsoleError::not_found("没有这个页面，请从工作概况重新进入")
}

pub(crate) fn redirect(to: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(
            LOCATION,
            HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/console")),
        )],
    )
        .into_response()
}

/// A file to download: `content_type`, saved as `name` (UTF-8, RFC 5987), or as the ASCII
/// `fallback` by clients that cannot read that.
fn attachment(content_type: &'static str, fallback: &str, name: &str, bytes: Vec<u8>) -> Response {
    let disposition = format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{}",
        html::url(name)
    );
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition).expect("an ASCII header"),
            ),
        ],
        Body::from(bytes),
    )
        .into_response()
}

/// A rendered page as a response.
fn html_response(status: StatusCode, page: Markup) -> Response {
    (
        status,
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        page.into_string(),
    )
        .into_response()
}

/// A POST is accepted only with the session's CSRF token and, if the browser says where it
/// comes from, from this host. Browsers say it in `Sec-Fetch-Site` (whatever the referrer
/// policy) and in `Origin`, which under `Referrer-Policy: no-referrer` is `null` on a POST; a
/// `null` origin is accepted only when `Sec-Fetch-Site` vouches for it.
fn same_origin(headers: &HeaderMap, uri: &Uri) -> bool {
    let site = headers
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or(""));
    if site.is_some_and(|s| s != "same-origin") {
        return false;
    }
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if origin == "null" {
        return site == Some("same-origin");
    }
    // HTTP/1.1 names the host in `Host`, HTTP/2 in the URI's authority.
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

fn csrf_ok(session: &Session, sent: &str, headers: &HeaderMap, uri: &Uri) -> bool {
    same_origin(headers, uri)
        && !sent.is_empty()
        && sent.len() == session.csrf.len()
        && sent
            .bytes()
            .zip(session.csrf.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The page a POST without the session's token (or from elsewhere) gets.
fn expired(s: &Session) -> ConsoleError {
    ConsoleError::forbidden("页面已过期，请刷新后重试").seen_by(s)
}

async fn data_dir(state: &AppState) -> Result<PathBuf, ConsoleError> {
    state
        .with_data(|d| d.dir().to_path_buf())
        .await
        .map_err(ConsoleError::internal)
}

/// The ledger's view of a signed-in account.
pub(crate) fn viewer(s: &Session) -> sanjin_ledger::Viewer {
    s.account.viewer()
}

/// Why the signed-in account may not read the record of `entry`, in Chinese, naming the record
/// and, for staff of a county chapter, that it belongs to another chapter (issue 13).
pub(crate) fn read_refusal(
    data: &crate::data::ServerData,
    s: &Session,
    entry: &sanjin_core::IndexEntry,
) -> String {
    use crate::model::Role;
    let id = &entry.id;
    let title = |id: &str| -> String {
        match data.store().index_entry(id) {
            Ok(Some(e)) if !e.title.is_empty() => format!("{}（{id}）", e.title),
            _ => id.to_string(),
        }
    };
    let group = entry.group.as_deref().map_or("—".to_string(), title);
    match (s.account.role, s.account.county()) {
        (Role::Member, _) => "委员账户不能使用工作台".into(),
        (Role::Staff, Some(chapter)) => {
            let theirs = entry
                .group
                .as_deref()
                .and_then(|g| data.directory_facts().ok()?.group_chapter.get(g).cloned())
                .map_or("其他政协组织".to_string(), |c| title(&c));
            format!(
                "记录 {id} 属于其他政协组织（{theirs}，活动组 {group}）：{} 的工作人员只能查看和办理本政协组织各活动组的记录",
                title(chapter)
            )
        }
        _ => format!("记录 {id} 不属于您的活动组（它属于活动组 {group}），不能查看或办理"),
    }
}

/// Why staff of a county chapter may not look at `group` (another chapter's group), if so
/// (issue 13), in Chinese.
pub(crate) fn group_refusal(s: &Session, group: &str) -> Option<String> {
    let chapter = s.account.county()?;
    (!s.account.scope.chapter_groups.iter().any(|g| g == group)).then(|| {
        format!(
            "活动组 {group} 属于其他政协组织：本政协组织（{chapter}）的工作人员只能查看和办理本政协组织各活动组的记录"
        )
    })
}

/// Leaves out of a group choice the groups the signed-in account does not see (issue 13).
pub(crate) fn visible_groups(s: &Session, groups: &mut Vec<(String, String)>) {
    if s.account.county().is_some() {
        groups.retain(|(g, _)| s.account.scope.chapter_groups.contains(g));
    }
}

/// The records the signed-in account may list (issue 13), for the store's list queries
/// (`sanjin_store::Filter::scope`): `None` for city staff and admins; the chapter's groups for
/// staff of a county chapter; a leader's group, and for the legal advisory group's leader every
/// legal appeal. Every list page sets it, so a list never shows a record its page refuses.
pub(crate) fn read_scope(s: &Session) -> Option<sanjin_store::ReadScope> {
    s.account.read_scope()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ConsoleError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ConsoleError::internal)
}

/// Runs `f` on the data folder (under the data lock, on a blocking thread); its errors are the
/// signed-in account's pages.
async fn with_data<T: Send + 'static>(
    state: &AppState,
    s: &Session,
    f: impl FnOnce(&mut crate::data::ServerData) -> Result<T, ConsoleError> + Send + 'static,
) -> Result<T, ConsoleError> {
    state
        .with_data(f)
        .await
        .map_err(ConsoleError::internal)
        .and_then(|r| r)
        .map_err(|e| e.seen_by(s))
}

/// A page that only reads the data folder: rendered by `render` on a blocking thread.
async fn read_page<Q: Send + 'static>(
    state: &AppState,
    s: Session,
    q: Q,
    render: fn(&std::path::Path, &Session, &Q) -> Result<Markup, ConsoleError>,
) -> Result<Response, ConsoleError> {
    let who = s.clone();
    let dir = data_dir(state).await.map_err(|e| e.seen_by(&who))?;
    let page = blocking(move || render(&dir, &s, &q))
        .await
        .and_then(|r| r)
        .map_err(|e| e.seen_by(&who))?;
    Ok(html_response(StatusCode::OK, page))
}

// ------------------------------------------------------------------ handlers

async fn login_page() -> Response {
    html_response(StatusCode::OK, html::login(None))
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    uri: Uri,
    headers: HeaderMap,
    ConsoleForm(form): ConsoleForm<LoginForm>,
) -> Result<Response, ConsoleError> {
    if !same_origin(&headers, &uri) {
        return Err(ConsoleError::forbidden("请求来源不符，请从工作台页面登录"));
    }
    let member = form.account.trim().to_string();
    let password = form.password;
    if member.is_empty() || password.is_empty() {
        return Err(ConsoleError::login(
            StatusCode::BAD_REQUEST,
            "请输入账号和密码",
        ));
    }
    // Issue 10: the throttle first (nothing looked up, nothing hashed when it says no), then a
    // quick look-up under the data lock, then the hashing on a hashing slot outside it.
    let ip = ip.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let guard = state.sign_in_guard();
    let attempt = match guard.begin(&member, ip, std::time::Instant::now()) {
        Ok(a) => a,
        Err(wait) => {
            tracing::warn!(address = %ip, retry_after_s = wait.as_secs(), "console sign-in throttled");
            return Err(ConsoleError::throttled(wait));
        }
    };
    let m = member.clone();
    let found = state
        .with_data(move |d| auth::lookup(d, &m))
        .await
        .map_err(ConsoleError::internal)?
        .map_err(ConsoleError::internal)?;
    let stored = found.stored.clone();
    let legacy = stored.as_ref().is_some_and(auth::Stored::is_legacy);
    let pw = password.clone();
    let checked = guard
        .hash(if legacy { 2 } else { 1 }, move || {
            if !auth::verify(stored.as_ref(), &pw) {
                return Ok(None);
            }
            // An old PBKDF2 hash is replaced by Argon2id now that the password is known.
            if legacy {
                auth::hash_password(&pw).map(Some)
            } else {
                Ok(Some(String::new()))
            }
        })
        .await;
    let verified = match checked {
        Ok(v) => v.map_err(ConsoleError::internal)?,
        Err(auth::Busy) => {
            tracing::warn!(address = %ip, "console sign-in refused: too many waiting to be checked");
            return Err(ConsoleError::throttled(std::time::Duration::from_secs(5)));
        }
    };
    let (Some(upgrade), Some(stored)) = (verified, found.stored) else {
        attempt.finish(false);
        match &found.account {
            Some(a) => {
                tracing::info!(member = %a.member, address = %ip, "console sign-in refused")
            }
            None => tracing::info!(address = %ip, "console sign-in refused (no such account)"),
        }
        return Err(ConsoleError::login(
            StatusCode::UNAUTHORIZED,
            "账号或密码不对，或该账户不能使用工作台（工作台供机关工作人员和活动组组长使用）",
        ));
    };
    let who = member.clone();
    let token = state
        .with_data(move |d| {
            let upgrade = (!upgrade.is_empty()).then_some((&stored, upgrade));
            auth::open_session(d, &member, upgrade)
        })
        .await
        .map_err(ConsoleError::internal)?
        .map_err(ConsoleError::internal)?;
    attempt.finish(true);
    tracing::info!(member = %who, address = %ip, "console sign-in");
    let cookie = format!(
        "{}={token}; Path=/console; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        auth::COOKIE,
        auth::SESSION_TTL_MS / 1000
    );
    let mut r = redirect("/console/dashboard");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(SET_COOKIE, v);
    }
    Ok(r)
}

async fn logout(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    uri: Uri,
    headers: HeaderMap,
    ConsoleForm(form): ConsoleForm<CsrfForm>,
) -> Result<Response, ConsoleError> {
    if !csrf_ok(&session, &form.csrf, &headers, &uri) {
        return Err(expired(&session));
    }
    if let Some(t) = token(&headers) {
        let _ = state.with_data(move |d| auth::sign_out(d, &t)).await;
    }
    let mut r = redirect("/console/login");
    r.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{}=; Path=/console; HttpOnly; Secure; SameSite=Strict; Max-Age=0",
            auth::COOKIE
        ))
        .expect("a valid header"),
    );
    Ok(r)
}

async fn dashboard(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    ConsoleQuery(q): ConsoleQuery<DashboardQuery>,
) -> Result<Response, ConsoleError> {
    read_page(&state, s, q, pages::dashboard).await
}

async fn records(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    ConsoleQuery(q): ConsoleQuery<RecordsQuery>,
) -> Result<Response, ConsoleError> {
    read_page(&state, s, q, pages::records).await
}

async fn record(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    Path(id): Path<String>,
    ConsoleQuery(q): ConsoleQuery<RecordQuery>,
) -> Result<Response, ConsoleError> {
    let s2 = s.clone();
    let blobs = state.blobs().store().clone();
    let page = with_data(&state, &s, move |d| {
        actions::record_page(d, blobs.as_ref(), &s2, &id, &q)
    })
    .await?;
    Ok(html_response(StatusCode::OK, page))
}

async fn photo(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    Path((id, hash)): Path<(String, String)>,
    part: pages::PhotoPart,
) -> Result<Response, ConsoleError> {
    let s2 = s.clone();
    let out = with_data(&state, &s, move |d| pages::photo(d, &s2, &id, &hash, part)).await?;
    let (bytes, name) = match out {
        pages::PhotoOut::Thumbnail(bytes) => (bytes, None),
        pages::PhotoOut::Original(hash) => {
            // Read outside the data lock: an original may be tens of megabytes.
            let store = state.blobs().store().clone();
            match blocking(move || store.read(&hash, 0, u64::MAX)).await {
                Ok(Ok(Some((bytes, _)))) => (bytes, Some(hash)),
                Ok(Ok(None)) => {
                    return Err(ConsoleError::not_found(pages::ORIGINAL_NOT_HERE).seen_by(&s));
                }
                Ok(Err(e)) => return Err(ConsoleError::internal(e).seen_by(&s)),
                Err(e) => return Err(e.seen_by(&s)),
            }
        }
    };
    Ok(photo_response(bytes, name))
}

/// A photo's bytes with the type sniffed from them: JPEG, PNG or WebP are shown; anything else
/// (whatever the record claims) is a download of opaque bytes. `original` names the file.
fn photo_response(bytes: Vec<u8>, original: Option<crate::blobs::BlobHash>) -> Response {
    let name = original.map_or_else(|| "thumbnail".to_string(), |h| h.to_hex());
    let (mime, disposition) = match sanjin_media::sniff(&bytes) {
        Ok(format) => (
            format.mime(),
            format!("inline; filename=\"{name}.{}\"", format.extension()),
        ),
        Err(_) => (
            "application/octet-stream",
            format!("attachment; filename=\"{name}.bin\""),
        ),
    };
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, HeaderValue::from_static(mime)),
            (
                CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition).expect("an ASCII header"),
            ),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=3600"),
            ),
            (CSP_HEADER, HeaderValue::from_static(MEDIA_CSP)),
        ],
        Body::from(bytes),
    )
        .into_response()
}

async fn resolve(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
    ConsoleForm(form): ConsoleForm<ResolveForm>,
) -> Result<Response, ConsoleError> {
    if !csrf_ok(&session, &form.csrf, &headers, &uri) {
        return Err(expired(&session));
    }
    let s2 = session.clone();
    let id2 = id.clone();
    with_data(&state, &session, move |d| {
        pages::resolve(d, &s2, &id2, &form)
    })
    .await?;
    Ok(redirect(&format!(
        "/console/records/{}?msg=resolved",
        html::url(&id)
    )))
}

async fn step(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
    ConsoleForm(form): ConsoleForm<actions::StepForm>,
) -> Result<Response, ConsoleError> {
    if !csrf_ok(&session, &form.csrf, &headers, &uri) {
        return Err(expired(&session));
    }
    let s2 = session.clone();
    let id2 = id.clone();
    let step = with_data(&state, &session, move |d| {
        actions::take_step(d, &s2, &id2, &form)
    })
    .await?;
    Ok(redirect(&format!(
        "/console/records/{}?msg=step-{}",
        html::url(&id),
        step.code()
    )))
}

async fn opinions_page(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    ConsoleQuery(q): ConsoleQuery<opinions::OpinionsQuery>,
) -> Result<Response, ConsoleError> {
    read_page(&state, s, q, opinions::opinions).await
}

async fn member_record(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    Path(id): Path<String>,
    ConsoleQuery(q): ConsoleQuery<member_page::MemberQuery>,
) -> Result<Response, ConsoleError> {
    let who = s.clone();
    let dir = data_dir(&state).await.map_err(|e| e.seen_by(&who))?;
    let page = blocking(move || member_page::member_page(&dir, &s, &id, &q))
        .await
        .and_then(|r| r)
        .map_err(|e| e.seen_by(&who))?;
    Ok(html_response(StatusCode::OK, page))
}

async fn assessment_page(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    ConsoleQuery(q): ConsoleQuery<member_page::MemberQuery>,
) -> Result<Response, ConsoleError> {
    read_page(&state, s, q, member_page::assessment_page).await
}

async fn assessment_file(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    ConsoleQuery(q): ConsoleQuery<member_page::MemberQuery>,
) -> Result<Response, ConsoleError> {
    let who = s.clone();
    let dir = data_dir(&state).await.map_err(|e| e.seen_by(&who))?;
    let (name, bytes) = blocking(move || member_page::assessment_file(&dir, &s, &q))
        .await
        .and_then(|r| r)
        .map_err(|e| e.seen_by(&who))?;
    Ok(attachment(
        sanjin_ledger::Format::Xlsx.content_type(),
        "sanjin-assessment.xlsx",
        &name,
        bytes,
    ))
}

async fn review_page(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    ConsoleQuery(q): ConsoleQuery<actions::ReviewQuery>,
) -> Result<Response, ConsoleError> {
    let s2 = s.clone();
    let page = with_data(&state, &s, move |d| actions::review_page(d, &s2, &q)).await?;
    Ok(html_response(StatusCode::OK, page))
}

async fn approve_batch(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    uri: Uri,
    headers: HeaderMap,
    ConsoleForm(form): ConsoleForm<actions::BatchForm>,
) -> Result<Response, ConsoleError> {
    if !csrf_ok(&session, &form.csrf, &headers, &uri) {
        return Err(expired(&session));
    }
    let s2 = session.clone();
    let (group, approved, skipped) = with_data(&state, &session, move |d| {
        actions::approve_batch(d, &s2, &form)
    })
    .await?;
    Ok(redirect(&format!(
        "/console/review?group={}&done={approved}&skipped={skipped}",
        html::url(&group)
    )))
}

async fn export_page(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    ConsoleQuery(q): ConsoleQuery<ExportQuery>,
) -> Result<Response, ConsoleError> {
    read_page(&state, s, q, pages::export_page).await
}

async fn export_file(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    headers: HeaderMap,
    ConsoleQuery(q): ConsoleQuery<ExportQuery>,
) -> Result<Response, ConsoleError> {
    let s = session.clone();
    let dir = data_dir(&state).await.map_err(|e| e.seen_by(&s))?;
    let who = session.account.member.clone();
    // The console is served over HTTPS (its cookie is Secure); the host is the one the browser
    // used, so the links in the workbook open the same console.
    let console_url = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .map(|h| format!("https://{h}"));
    let (name, format, bytes) =
        blocking(move || pages::export_file(&dir, &session, &q, console_url))
            .await
            .and_then(|r| r)
            .map_err(|e| e.seen_by(&s))?;
    tracing::info!(member = %who, file = %name, bytes = bytes.len(), "console export");
    Ok(attachment(
        format.content_type(),
        &format!("sanjin-ledger.{}", format.extension()),
        &name,
        bytes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origins_and_fetch_metadata() {
        let uri: Uri = "/console/login".parse().unwrap();
        let host = ("host", "console.example:8443");
        for (ok, pairs) in [
            (true, vec![host]),
            (true, vec![host, ("origin", "https://console.example:8443")]),
            (false, vec![host, ("origin", "https://evil.example")]),
            (false, vec![host, ("origin", "null")]),
            (
                true,
                vec![host, ("origin", "null"), ("sec-fetch-site", "same-origin")],
            ),
            (
                false,
                vec![host, ("origin", "null"), ("sec-fetch-site", "cross-site")],
            ),
            (
                false,
                vec![
                    host,
                    ("origin", "https://console.example:8443"),
                    ("sec-fetch-site", "same-site"),
                ],
            ),
        ] {
            assert_eq!(same_origin(&headers(&pairs), &uri), ok, "{pairs:?}");
        }
    }

    #[test]
    fn photos_get_the_type_of_their_bytes() {
        let html = b"<!doctype html><script>alert(document.cookie)</script>".to_vec();
        let r = photo_response(html, crate::blobs::BlobHash::parse(&"ab".repeat(32)));
        assert_eq!(r.headers()[CONTENT_TYPE], "application/octet-stream");
        assert!(
            r.headers()[CONTENT_DISPOSITION]
                .to_str()
                .unwrap()
                .starts_with("attachment;")
        );
        assert_eq!(r.headers()[CSP_HEADER], MEDIA_CSP);
        let png = b"\x89PNG\r\n\x1a\n0000".to_vec();
        assert_eq!(
            photo_response(png, None).headers()[CONTENT_TYPE],
            "image/png"
        );
    }
}
