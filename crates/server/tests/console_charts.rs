//! Issue 13, point 6: the dashboard's charts in a real headless Chromium against a real server
//! (HTTPS on loopback) holding the committed fixtures' year of group-01 and group-02 — office
//! staff and a group leader sign in; the dashboard opens on the latest quarter with records
//! (the current one is empty) and says so; the four charts are inline SVG with a title and a
//! table, whose figures are the ledger's (`Ledger::charts`) and, for the visits per month, a
//! recount of the fixture files; the period picker opens another quarter; everything fits a
//! 390 px phone without a CSP violation. Screenshots, desktop and phone, for both roles.

mod browser;
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use browser::Chromium;
use chrono::{Datelike, NaiveDate};
use common::{Harness, LEADER_1, now};
use sanjin_core::domain::RecordData;
use sanjin_core::workflow::EventType;
use sanjin_ledger::{Charts, Ledger, Query, Viewer};
use serde_json::json;

const STAFF: &str = "office-01";
const GROUPS: [&str; 2] = ["group-01", "group-02"];

fn sign_in(c: &mut Chromium, base: &str, who: &str, password: &str) {
    c.page("Network.clearBrowserCookies", json!({}));
    c.goto(&format!("{base}/console/login"));
    c.eval(&format!(
        "document.getElementById('account').value = '{who}'; document.getElementById('password').value = '{password}'; document.getElementById('signin').click(); true"
    ));
    c.wait("location.pathname === '/console/dashboard' && document.getElementById('stats')");
}

/// The cells of a chart's table (its text alternative), row by row, header first.
fn table(c: &mut Chromium, chart: &str) -> Vec<Vec<String>> {
    let v = c.eval(&format!(
        "Array.from(document.querySelectorAll('#{chart} table.chart-data tr')).map(tr => Array.from(tr.cells).map(td => td.textContent.trim()))"
    ));
    serde_json::from_value(v).unwrap()
}

fn text_of(c: &mut Chromium, selector: &str) -> String {
    c.eval(&format!(
        "(document.querySelector('{selector}') || {{textContent: ''}}).textContent.trim()"
    ))
    .as_str()
    .unwrap_or_default()
    .to_string()
}

fn quarter(d: NaiveDate) -> (i32, u32) {
    (d.year(), d.month0() / 3 + 1)
}

fn quarter_end(y: i32, q: u32) -> NaiveDate {
    let (ny, nm) = if q == 4 { (y + 1, 1) } else { (y, q * 3 + 1) };
    NaiveDate::from_ymd_opt(ny, nm, 1)
        .unwrap()
        .pred_opt()
        .unwrap()
}

fn days(d: &sanjin_ledger::Durations) -> String {
    match d.median_days {
        Some(m) if m.fract() == 0.0 => format!("{m:.0} 天"),
        Some(m) => format!("{m:.1} 天"),
        None => "—".into(),
    }
}

/// The page shows exactly the ledger's figures `ch`: every chart's table, and the texts drawn
/// in the SVG.
fn assert_figures(c: &mut Chromium, ch: &Charts, who: &str) {
    // Four SVG charts, each an image with a title and a description.
    for id in [
        "chart-activities",
        "chart-coverage",
        "chart-handling",
        "chart-six-ones",
    ] {
        assert_eq!(
            c.eval(&format!(
                "(() => {{ const s = document.querySelector('#{id} svg'); return !!s && s.getAttribute('role') === 'img' && !!s.querySelector('title').textContent && !!s.querySelector('desc').textContent && s.getAttribute('viewBox') !== null; }})()"
            )),
            json!(true),
            "{who}: {id} is an SVG image with a title and a description"
        );
    }
    // Activities per month against the plan.
    let rows = table(c, "chart-activities");
    assert_eq!(rows[0], ["月份", "活动（次）", "计划（项）"]);
    assert_eq!(rows.len(), 13, "{who}: twelve months");
    for (row, m) in rows[1..].iter().zip(&ch.months) {
        let visits = m.visits.map_or("—".to_string(), |v| v.to_string());
        assert_eq!(
            row,
            &[format!("{}月", m.month), visits, m.planned.to_string()],
            "{who}"
        );
    }
    // Coverage, cumulative.
    let rows = table(c, "chart-coverage");
    assert_eq!(rows.len(), ch.coverage.covered.len() + 1, "{who}");
    for (i, (row, n)) in rows[1..].iter().zip(&ch.coverage.covered).enumerate() {
        assert_eq!(row[0], format!("{}月底", i + 1));
        assert_eq!(row[1], n.to_string(), "{who}: coverage at month {}", i + 1);
    }
    let last = *ch.coverage.covered.last().unwrap();
    let drawn = text_of(c, "#chart-coverage svg text.big");
    assert!(
        drawn.starts_with(&format!("已覆盖 {last} / {} 人", ch.coverage.members)),
        "{who}: {drawn}"
    );
    // Handling times.
    let rows = table(c, "chart-handling");
    let h = &ch.handling;
    for i in 0..5 {
        assert_eq!(
            rows[i + 1][1..],
            [
                h.done.buckets[i].to_string(),
                h.feedback.buckets[i].to_string()
            ],
            "{who}: bucket {i}"
        );
    }
    assert_eq!(rows[6][1..], [days(&h.done), days(&h.feedback)], "{who}");
    assert_eq!(rows[7][1], format!("{} 条", h.open), "{who}");
    assert_eq!(rows[8][1], format!("{} 条", h.awaiting_feedback), "{who}");
    assert_eq!(
        text_of(c, "#chart-handling svg text.big"),
        format!("中位数：办理 {}，反馈 {}", days(&h.done), days(&h.feedback)),
        "{who}"
    );
    // 六个一.
    let rows = table(c, "chart-six-ones");
    assert_eq!(rows.len(), 7, "{who}");
    for (row, s) in rows[1..].iter().zip(&ch.six_ones) {
        assert_eq!(
            row,
            &[
                s.activity_type.zh().to_string(),
                s.groups_done.to_string(),
                ch.groups.to_string(),
                s.visits.to_string()
            ],
            "{who}"
        );
    }
}

/// At a phone's width nothing pushes the page sideways and every chart fits the screen.
fn assert_fits_phone(c: &mut Chromium, who: &str) {
    assert_eq!(
        c.eval("document.documentElement.scrollWidth <= window.innerWidth"),
        json!(true),
        "{who}: the dashboard fits 390 px"
    );
    assert_eq!(
        c.eval("Array.from(document.querySelectorAll('#charts svg')).every(s => { const r = s.getBoundingClientRect(); return r.width > 300 && r.left >= 0 && r.right <= window.innerWidth; })"),
        json!(true),
        "{who}: every chart is as wide as the phone allows, and no wider"
    );
}

/// Decodes standard base64 (DevTools' screenshots).
fn unbase64(s: &str) -> Vec<u8> {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let vals: Vec<u32> = s
        .bytes()
        .filter_map(|c| ABC.iter().position(|a| *a == c).map(|p| p as u32))
        .collect();
    let mut out = Vec::with_capacity(vals.len() * 3 / 4);
    for chunk in vals.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, v)| acc | (v << (18 - 6 * i)));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// A screenshot of the charts alone, as the phone shows them.
fn charts_shot(c: &mut Chromium, path: &Path) {
    let r = c.eval("(() => { const r = document.getElementById('charts').getBoundingClientRect(); return [r.x, r.y + window.scrollY, r.width, r.height]; })()");
    let r: Vec<f64> = serde_json::from_value(r).unwrap();
    let shot = c.page(
        "Page.captureScreenshot",
        json!({"format": "png", "captureBeyondViewport": true,
               "clip": {"x": r[0], "y": r[1], "width": r[2], "height": r[3], "scale": 1}}),
    );
    let png = unbase64(shot["data"].as_str().unwrap());
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(path, png).unwrap();
}

fn copy_shot(from: &Path, name: &str) {
    let notes = Path::new("/work/notes/shots");
    if notes.is_dir() {
        std::fs::copy(from, notes.join(name)).unwrap();
    }
}

#[test]
fn issue13_dashboard_charts_in_chromium_for_staff_and_leader() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let h = rt.block_on(Harness::live());
    let base = h.live.as_ref().unwrap().running.url();
    let fx = common::fixtures();
    // The year of group-01 and group-02 (the groups of the harness's directory).
    let records: Vec<_> = fx
        .visits
        .iter()
        .chain(&fx.opinions)
        .chain(&fx.plans)
        .filter(|r| match &r.data {
            RecordData::Visit(v) => GROUPS.contains(&v.group.as_str()),
            RecordData::Opinion(o) => GROUPS.contains(&o.group.as_str()),
            RecordData::Plan(p) => GROUPS.contains(&p.group.as_str()),
            _ => false,
        })
        .cloned()
        .collect();
    let n = records.len();
    rt.block_on(h.data(move |d| {
        assert_eq!(d.import_records(&records).unwrap().records, n);
        sanjin_server::console::set_password(d, STAFF, "staff-pass-13").unwrap();
        sanjin_server::console::set_password(d, LEADER_1, "leader-pass-13").unwrap();
    }));
    let leader_group = fx
        .directory
        .iter()
        .find_map(|r| match &r.data {
            RecordData::Member(m) if r.id == LEADER_1 => Some(m.group.clone()),
            _ => None,
        })
        .unwrap();

    // What the page must show: the current quarter (Beijing) is after the fixtures' year, so
    // the dashboard opens on the latest quarter with records.
    let today = sanjin_core::time::beijing_date(now());
    let current = quarter(today);
    let data_dir = h.dir.path().join("data");
    let mut ledger = Ledger::open(&data_dir).unwrap();
    ledger.refresh().unwrap();
    let latest = ledger
        .latest_with_data(&Viewer::Office, quarter_end(current.0, current.1))
        .unwrap()
        .expect("the fixtures hold records");
    let shown = quarter(latest);
    assert!(shown < current, "the fixtures' year is before this quarter");
    let leader = Viewer::Leader {
        group: leader_group.clone(),
    };
    let leader_shown = quarter(
        ledger
            .latest_with_data(&leader, quarter_end(current.0, current.1))
            .unwrap()
            .unwrap(),
    );
    let charts_of = |viewer: &Viewer, (y, q): (i32, u32)| {
        let to = quarter_end(y, q);
        ledger
            .charts(
                viewer,
                &Query::new(NaiveDate::from_ymd_opt(y, 1, 1).unwrap(), to),
            )
            .unwrap()
    };
    let staff_charts = charts_of(&Viewer::Office, shown);
    let leader_charts = charts_of(&leader, leader_shown);
    let staff_q2 = charts_of(&Viewer::Office, (2025, 2));

    // The visits per month recounted from the fixture files (not deleted, of the two groups).
    let mut recount: BTreeMap<u32, i64> = BTreeMap::new();
    for r in &fx.visits {
        if let RecordData::Visit(v) = &r.data
            && GROUPS.contains(&v.group.as_str())
            && v.start.year() == shown.0
            && !r.events.iter().any(|e| e.event == EventType::Delete)
        {
            *recount.entry(v.start.month()).or_default() += 1;
        }
    }
    for m in staff_charts.months.iter().filter(|m| m.visits.is_some()) {
        assert_eq!(
            m.visits,
            Some(recount.get(&m.month).copied().unwrap_or(0)),
            "month {}",
            m.month
        );
    }
    assert!(
        staff_charts.months.iter().any(|m| m.planned > 0),
        "the plan shows"
    );
    assert!(staff_charts.handling.done.count > 0, "handled opinions");

    let downloads = tempfile::tempdir().unwrap();
    let mut c = Chromium::start(downloads.path());
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-shots");
    std::fs::create_dir_all(&shots).unwrap();

    // ---------------------------------------------------------------- office staff
    sign_in(&mut c, &base, STAFF, "staff-pass-13");
    c.wait("document.getElementById('charts')");
    let notice = text_of(&mut c, "#period-notice");
    assert!(
        notice.starts_with(&format!(
            "本季度（{}年第{}季度）暂无记录，显示最近有记录的 {}年第{}季度。",
            current.0, current.1, shown.0, shown.1
        )),
        "{notice}"
    );
    let h1 = text_of(&mut c, "h1");
    assert!(
        h1.contains(&format!("{} 年第 {} 季度", shown.0, shown.1)),
        "{h1}"
    );
    // The stat of the quarter is the charts' months of that quarter.
    let quarter_visits: i64 = staff_charts.months[(shown.1 as usize - 1) * 3..shown.1 as usize * 3]
        .iter()
        .filter_map(|m| m.visits)
        .sum();
    assert_eq!(text_of(&mut c, "#stat-visits"), quarter_visits.to_string());
    assert_figures(&mut c, &staff_charts, "staff");
    c.assert_no_csp_violations("on the staff's dashboard with charts");
    let shot = shots.join("issue13-charts-staff-desktop.png");
    c.screenshot(&shot);
    copy_shot(&shot, "issue13-charts-staff-desktop.png");

    // The period picker: another quarter, shown as asked (no notice).
    c.eval("document.querySelector('#quarter-picker select').value = '2025-2'; document.querySelector('#quarter-picker button').click(); true");
    c.wait("location.search === '?q=2025-2' && document.getElementById('charts')");
    assert!(text_of(&mut c, "h1").contains("2025 年第 2 季度"));
    assert_eq!(text_of(&mut c, "#period-notice"), "");
    assert_figures(&mut c, &staff_q2, "staff, 2025 Q2");
    // The empty current quarter can still be opened on purpose.
    c.goto(&format!("{base}/console/dashboard"));
    c.wait("document.getElementById('period-notice')");
    c.eval("document.querySelector('#period-notice a').click(); true");
    c.wait(&format!(
        "location.search === '?q={}-{}' && document.getElementById('stats')",
        current.0, current.1
    ));
    assert_eq!(text_of(&mut c, "#stat-visits"), "0");
    assert_eq!(text_of(&mut c, "#period-notice"), "");
    c.assert_no_csp_violations("on the picked quarters");

    // A phone.
    c.page(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
    );
    c.goto(&format!("{base}/console/dashboard"));
    c.wait("document.getElementById('charts')");
    assert_fits_phone(&mut c, "staff");
    let shot = shots.join("issue13-charts-staff-phone.png");
    c.screenshot(&shot);
    copy_shot(&shot, "issue13-charts-staff-phone.png");
    let shot = shots.join("issue13-charts-staff-phone-charts.png");
    charts_shot(&mut c, &shot);
    copy_shot(&shot, "issue13-charts-staff-phone-charts.png");
    c.page("Emulation.clearDeviceMetricsOverride", json!({}));

    // ---------------------------------------------------------------- the group's leader
    sign_in(&mut c, &base, LEADER_1, "leader-pass-13");
    c.wait("document.getElementById('charts')");
    let notice = text_of(&mut c, "#period-notice");
    assert!(
        notice.starts_with(&format!(
            "本季度（{}年第{}季度）暂无记录，显示最近有记录的 {}年第{}季度。",
            current.0, current.1, leader_shown.0, leader_shown.1
        )),
        "{notice}"
    );
    assert_figures(&mut c, &leader_charts, "leader");
    // The leader's figures are the group's: its members, one group's "六个一".
    let members_of_group = fx
        .directory
        .iter()
        .filter(|r| matches!(&r.data, RecordData::Member(m) if m.group == leader_group))
        .count() as i64;
    assert_eq!(leader_charts.coverage.members, members_of_group);
    assert_eq!(leader_charts.groups, 1);
    assert_ne!(
        leader_charts.months, staff_charts.months,
        "the leader sees the group's activities, not both groups'"
    );
    c.assert_no_csp_violations("on the leader's dashboard");
    let shot = shots.join("issue13-charts-leader-desktop.png");
    c.screenshot(&shot);
    copy_shot(&shot, "issue13-charts-leader-desktop.png");
    c.page(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
    );
    c.goto(&format!("{base}/console/dashboard"));
    c.wait("document.getElementById('charts')");
    assert_fits_phone(&mut c, "leader");
    let shot = shots.join("issue13-charts-leader-phone.png");
    c.screenshot(&shot);
    copy_shot(&shot, "issue13-charts-leader-phone.png");
    c.assert_no_csp_violations("on the leader's phone");
}
