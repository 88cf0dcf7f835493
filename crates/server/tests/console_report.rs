//! Issue 13: the quarterly report (季度通报) in the console, through the router: staff get the
//! whole report, a leader the group's; the page shows the ledger's figures (the sentences and
//! tables of `Ledger::quarterly_report`), the download is the workbook with its charts under a
//! Chinese file name (RFC 5987); without a quarter the page opens on the default one; bad input
//! is a Chinese page. In real Chromium: the page as staff and a leader see it, printed without
//! the navigation, no Content-Security-Policy violation.

mod browser;
mod common;

use std::io::Cursor;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use calamine::{Data, Reader};
use common::console::{get, send};
use sanjin_ledger::{Ledger, QuarterlyReport, Viewer};
use sanjin_server::{AppState, ServerData, app};

const STAFF: &str = "office-01";
const STAFF_PASSWORD: &str = "console-pass-01";
const LEADER_PASSWORD: &str = "leader-pass-01";
const GROUP: &str = "group-03";

/// A data folder with the fixtures, a staff account and a leader of group-03 with passwords.
fn data_folder() -> (tempfile::TempDir, String) {
    let fx = common::fixtures();
    let (tmp, mut data) = common::console::fixture_data(STAFF, STAFF_PASSWORD);
    let leader = fx.leader_of(GROUP).unwrap().to_string();
    sanjin_server::console::set_password(&mut data, &leader, LEADER_PASSWORD).unwrap();
    (tmp, leader)
}

async fn sign_in(app: &axum::Router, who: &str, password: &str) -> String {
    let r = send(
        app,
        Request::post("/console/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!("account={who}&password={password}")))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    r.headers["set-cookie"]
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// The rows of the table with id `id` in `page`.
fn rows(page: &str, id: &str) -> usize {
    page.split(&format!("id=\"{id}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no table {id}"))
        .split("</table>")
        .next()
        .unwrap()
        .split("<tbody>")
        .nth(1)
        .unwrap()
        .matches("<tr>")
        .count()
}

/// Percent-decodes an RFC 5987 value.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn expected(dir: &std::path::Path, viewer: &Viewer) -> QuarterlyReport {
    Ledger::open(dir)
        .unwrap()
        .quarterly_report(viewer, 2025, 2)
        .unwrap()
}

#[tokio::test]
async fn issue13_quarterly_report_page_and_file_by_role() {
    let (tmp, leader) = data_folder();
    let whole = expected(tmp.path(), &Viewer::Office);
    let ours = expected(
        tmp.path(),
        &Viewer::Leader {
            group: GROUP.into(),
        },
    );
    let app = app(AppState::new(ServerData::open(tmp.path()).unwrap()));
    let staff = sign_in(&app, STAFF, STAFF_PASSWORD).await;
    let lead = sign_in(&app, &leader, LEADER_PASSWORD).await;

    for (who, r) in [(&staff, &whole), (&lead, &ours)] {
        let page = send(&app, get("/console/report?year=2025&quarter=2", who)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let html = page.text();
        assert!(html.contains("「三进」活动季度通报（2025年第2季度）"));
        assert!(
            html.contains(&format!("统计范围：{}", r.scope)),
            "{}",
            r.scope
        );
        assert!(
            html.contains("href=\"/console/report\""),
            "the navigation links the report"
        );
        for s in r.sentences() {
            assert!(html.contains(&format!("<p>{s}</p>")), "{s}");
        }
        assert_eq!(rows(&html, "groups"), r.groups.len());
        assert_eq!(rows(&html, "six-ones"), r.six_ones.len());
        assert_eq!(rows(&html, "figures"), r.current.lines().len());
        assert_eq!(rows(&html, "states"), 7);
        for g in &r.groups {
            assert!(html.contains(&format!("<td>{}</td>", g.name)), "{}", g.name);
        }
        assert!(html.contains("href=\"/console/report/file?year=2025&amp;quarter=2\""));

        let file = send(&app, get("/console/report/file?year=2025&quarter=2", who)).await;
        assert_eq!(file.status, StatusCode::OK);
        assert_eq!(
            file.headers["content-type"],
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        );
        let disposition = &file.headers["content-disposition"];
        let (ascii, utf8) = disposition.split_once("; filename*=UTF-8''").unwrap();
        assert_eq!(ascii, "attachment; filename=\"sanjin-report-2025Q2.xlsx\"");
        assert_eq!(decode(utf8), "「三进」活动季度通报（2025年第2季度）.xlsx");
        let mut zip = zip::ZipArchive::new(Cursor::new(file.body.clone())).unwrap();
        for i in 1..=3 {
            assert!(zip.by_name(&format!("xl/charts/chart{i}.xml")).is_ok());
        }
        let mut book: calamine::Xlsx<_> =
            calamine::open_workbook_from_rs(Cursor::new(file.body)).unwrap();
        let sheet = book.worksheet_range(sanjin_ledger::REPORT_SHEET).unwrap();
        let Some(Data::String(scope)) = sheet.get_value((1, 0)) else {
            panic!("no scope line")
        };
        assert!(
            scope.starts_with(&format!("统计范围：{}", r.scope)),
            "{scope}"
        );
    }
    assert!(ours.scope.contains("活动组："), "{}", ours.scope);
    assert!(ours.current.visits < whole.current.visits);

    // Without a quarter: the default one, said so.
    let page = send(&app, get("/console/report", &staff)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let today = (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive();
    let default = Ledger::open(tmp.path())
        .unwrap()
        .default_report_quarter(today)
        .unwrap();
    let html = page.text();
    assert!(
        html.contains(&format!("「三进」活动季度通报（{}）", default.zh())),
        "{default}"
    );
    assert!(html.contains(&default.zh()) && html.contains("class=\"note noprint\""));

    // Bad input: a Chinese page saying what to do.
    for (q, needle) in [
        ("year=abc&quarter=2", "年份"),
        ("year=2025&quarter=5", "季度"),
        ("year=2025", "同时选择年份和季度"),
    ] {
        for path in ["/console/report", "/console/report/file"] {
            let r = send(&app, get(&format!("{path}?{q}"), &lead)).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}?{q}");
            assert!(r.text().contains(needle), "{path}?{q}: {}", r.text());
        }
    }
    // Signed out: the sign-in page, never the figures.
    let r = send(
        &app,
        Request::get("/console/report/file?year=2025&quarter=2")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_ne!(r.status, StatusCode::OK);
    assert!(!r.body.starts_with(b"PK"));
}

/// Issue 13: the report's page in headless Chromium, for staff and for a leader, from the nav
/// link; the sentences shown are the ledger's; printed, the navigation and the filters are
/// hidden; no CSP violation.
#[test]
fn issue13_quarterly_report_page_in_chromium() {
    let (rt, h, base) = common::console::live_server();
    // The harness's directory holds groups 01 and 02: their records of the fixtures.
    let leader = common::LEADER_1;
    rt.block_on(h.data(move |d| {
        let fx = common::fixtures();
        let ours = |g: &str| g == "group-01" || g == "group-02";
        let records: Vec<_> = fx
            .visits
            .iter()
            .chain(&fx.opinions)
            .chain(&fx.households)
            .chain(&fx.plans)
            .filter(|r| match &r.data {
                sanjin_core::RecordData::Visit(v) => ours(&v.group),
                sanjin_core::RecordData::Opinion(o) => ours(&o.group),
                sanjin_core::RecordData::Household(x) => ours(&x.group),
                sanjin_core::RecordData::Plan(p) => ours(&p.group),
                _ => false,
            })
            .cloned()
            .collect();
        d.import_records(&records).unwrap();
        sanjin_server::console::set_password(d, STAFF, STAFF_PASSWORD).unwrap();
        sanjin_server::console::set_password(d, leader, LEADER_PASSWORD).unwrap();
    }));
    let data_dir = h.dir.path().join("data");
    let whole = expected(&data_dir, &Viewer::Office);
    let group = common::fixtures()
        .directory
        .iter()
        .find_map(|r| match &r.data {
            sanjin_core::RecordData::Group(g) if g.leader == leader => Some(r.id.clone()),
            _ => None,
        })
        .unwrap();
    let ours = expected(&data_dir, &Viewer::Leader { group });
    assert!(whole.current.visits > ours.current.visits && ours.current.visits > 0);

    let downloads = tempfile::tempdir().unwrap();
    let mut c = browser::Chromium::start(downloads.path());
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-shots");
    std::fs::create_dir_all(&shots).unwrap();
    for (who, password, r, shot) in [
        (STAFF, STAFF_PASSWORD, &whole, "issue13-report-console.png"),
        (
            leader,
            LEADER_PASSWORD,
            &ours,
            "issue13-report-console-leader.png",
        ),
    ] {
        c.sign_in(&base, who, password);
        // From the navigation, to the quarter asked for.
        c.eval("document.querySelector('header a[href=\"/console/report\"]').click(); true");
        c.wait("location.pathname === '/console/report' && document.getElementById('report')");
        c.goto(&format!("{base}/console/report?year=2025&quarter=2"));
        c.wait("document.getElementById('groups')");
        let shown: Vec<String> = c
            .eval("Array.from(document.querySelectorAll('#sentences p')).map(p => p.innerText)")
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(shown, r.sentences(), "{who}");
        let groups = c.eval("document.querySelectorAll('#groups tbody tr').length");
        assert_eq!(groups.as_u64(), Some(r.groups.len() as u64), "{who}");
        let link = c.eval("document.getElementById('report-xlsx').getAttribute('href')");
        assert_eq!(
            link.as_str(),
            Some("/console/report/file?year=2025&quarter=2")
        );
        c.screenshot(&shots.join(shot));
        // Printed: no navigation, no filters.
        c.page(
            "Emulation.setEmulatedMedia",
            serde_json::json!({"media": "print"}),
        );
        let hidden = c.eval(
            "getComputedStyle(document.querySelector('header')).display === 'none' && getComputedStyle(document.querySelector('form.filters')).display === 'none'",
        );
        assert_eq!(hidden.as_bool(), Some(true), "{who}");
        c.page(
            "Emulation.setEmulatedMedia",
            serde_json::json!({"media": ""}),
        );
        c.assert_no_csp_violations(&format!("on the report page of {who}"));
    }
    eprintln!("screenshots in {}", shots.display());
    rt.block_on(h.live.unwrap().running.shutdown()).unwrap();
}
