//! Issue 13 (point 8): the ledger prints the way staff file it. The workbook of the committed
//! fixtures over the demo's period (2025–2026, photos linked to the console) is converted to PDF
//! by LibreOffice (Debian's `libreoffice-calc`, headless, in a private profile, bounded in time),
//! and every page is read back with poppler's `pdftotext`: each page names its ledger, period
//! and scope in the page header, carries its ledger's header row, numbers itself 第 N 页 共 M 页,
//! and no page holds a single printed column. `scripts/test` installs both tools.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use sanjin_ledger::{Format, Ledger, Query, SHEETS, Viewer};
use sanjin_server::ServerData;

/// LibreOffice gets this long to convert the workbook (it takes well under a minute here).
const CONVERT_LIMIT: Duration = Duration::from_secs(600);

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

/// The demo's export: two years of the committed fixtures, photos linked to the console.
fn demo_query() -> Query {
    let mut q = Query::new(d(2025, 1, 1), d(2026, 12, 31));
    q.console_url = Some("https://127.0.0.1:8443".into());
    q
}

/// A server data folder holding the committed fixtures, landed as the server lands records.
fn server(dir: &Path) {
    let fx = sanjin_fixtures::Fixtures::load(&sanjin_fixtures::committed_dir()).unwrap();
    let mut data = ServerData::open(dir).unwrap();
    data.import_directory(&sanjin_fixtures::committed_dir())
        .unwrap();
    let records: Vec<_> = fx
        .visits
        .iter()
        .chain(&fx.opinions)
        .chain(&fx.households)
        .chain(&fx.plans)
        .cloned()
        .collect();
    assert_eq!(
        data.import_records(&records).unwrap().records,
        records.len()
    );
}

fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{name} is missing: run scripts/test, which installs libreoffice-calc and poppler-utils"
    );
    Command::new(name)
}

/// Runs `cmd`, killing it after `limit`.
fn run_bounded(mut cmd: Command, limit: Duration) -> std::process::Output {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            child.kill().ok();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} took over {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Converts `xlsx` to PDF with LibreOffice in a profile of its own under `work`; returns the
/// PDF's pages as `pdftotext -layout` reads them.
fn pdf_pages(xlsx: &Path, work: &Path) -> Vec<String> {
    let profile = work.join("lo-profile");
    let mut soffice = tool("soffice");
    soffice
        .arg(format!(
            "-env:UserInstallation=file://{}",
            profile.to_str().unwrap()
        ))
        .args([
            "--headless",
            "--norestore",
            "--convert-to",
            "pdf",
            "--outdir",
        ])
        .arg(work)
        .arg(xlsx)
        .env("HOME", work);
    let started = Instant::now();
    let out = run_bounded(soffice, CONVERT_LIMIT);
    let pdf = work.join(xlsx.with_extension("pdf").file_name().unwrap());
    assert!(
        out.status.success() && pdf.exists(),
        "LibreOffice made no PDF: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "LibreOffice converted the workbook in {:?}",
        started.elapsed()
    );
    let txt = work.join("ledger.txt");
    let mut pdftotext = tool("pdftotext");
    pdftotext.arg("-layout").arg(&pdf).arg(&txt);
    let out = run_bounded(pdftotext, Duration::from_secs(120));
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&txt).unwrap();
    let mut pages: Vec<String> = text.split('\u{c}').map(str::to_string).collect();
    // pdftotext ends every page with a form feed: the last piece is empty.
    if pages.last().is_some_and(|p| p.trim().is_empty()) {
        pages.pop();
    }
    pages
}

#[test]
fn issue13_libreoffice_prints_every_page_with_its_header_row_and_no_lone_column() {
    let tmp = tempfile::tempdir().unwrap();
    server(tmp.path());
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    let xlsx = tmp.path().join("三进台账.xlsx");
    ledger
        .export(&Viewer::Office, &demo_query(), Format::Xlsx, &xlsx)
        .unwrap();
    let pages = pdf_pages(&xlsx, tmp.path());
    eprintln!("the workbook prints on {} pages", pages.len());
    if let Ok(keep) = std::env::var("SANJIN_PRINT_KEEP") {
        std::fs::copy(&xlsx, Path::new(&keep).join("ledger.xlsx")).unwrap();
        std::fs::write(Path::new(&keep).join("ledger.txt"), pages.join("\u{c}")).unwrap();
    }
    let total = pages.len();
    let period = "统计期间：2025-01-01 至 2026-12-31";
    let mut seen: BTreeMap<&str, (usize, BTreeSet<&str>)> = BTreeMap::new();
    for (n, page) in pages.iter().enumerate() {
        let lines: Vec<&str> = page.lines().filter(|l| !l.trim().is_empty()).collect();
        let at = || format!("page {} of {total}:\n{page}", n + 1);
        // The page header: the ledger's name, the sheet's, the period and the scope.
        let head = lines.first().unwrap_or_else(|| panic!("{}", at()));
        let spec = SHEETS
            .iter()
            .find(|s| head.contains(&format!("三进工作台账 · {}", s.title)))
            .unwrap_or_else(|| panic!("no ledger named in the page header, {}", at()));
        assert!(
            head.contains(period) && head.contains("统计范围：全部"),
            "{}",
            at()
        );
        // The footer: 第 N 页 共 M 页.
        assert_eq!(
            lines.last().unwrap().trim(),
            format!("第 {} 页 共 {total} 页", n + 1),
            "{}",
            at()
        );
        // The header row, right under the page header: nothing but the sheet's titles.
        let mut row = lines[1].to_string();
        let mut titles: Vec<&str> = spec.columns.iter().map(|c| c.title).collect();
        titles.sort_by_key(|t| std::cmp::Reverse(t.len()));
        let mut found = BTreeSet::new();
        for t in titles {
            if row.contains(t) {
                row = row.replacen(t, " ", 1);
                found.insert(t);
            }
        }
        assert!(
            row.trim().is_empty() && !found.is_empty(),
            "the header row is missing ({row:?} left), {}",
            at()
        );
        // No printed column on a page of its own: two or more besides the repeated key.
        let key: BTreeSet<&str> = spec.print.key.map_or(BTreeSet::new(), |(a, b)| {
            let i = spec.columns.iter().position(|c| c.title == a).unwrap();
            let j = spec.columns.iter().position(|c| c.title == b).unwrap();
            spec.columns[i..=j].iter().map(|c| c.title).collect()
        });
        assert!(
            found.difference(&key).count() >= 2,
            "a column alone on a page: {found:?}, {}",
            at()
        );
        if spec.key == "summary" {
            assert_eq!(
                found.len(),
                3,
                "the summary's three columns together, {}",
                at()
            );
        }
        let entry = seen.entry(spec.title).or_default();
        entry.0 += 1;
        entry.1.extend(found);
    }
    // Every ledger printed, every column people read on paper, no id, hash or link.
    for spec in SHEETS {
        let (count, printed) = &seen[spec.title];
        let first = spec
            .columns
            .iter()
            .position(|c| c.title == spec.print.first)
            .unwrap();
        let last = spec
            .columns
            .iter()
            .position(|c| c.title == spec.print.last)
            .unwrap();
        let wanted: BTreeSet<&str> = spec.columns[first..=last].iter().map(|c| c.title).collect();
        assert_eq!(printed, &wanted, "{}", spec.title);
        eprintln!("{}: {count} pages", spec.title);
    }
}
