//! What the ledger's integration tests share: a server data folder of the committed fixtures
//! (built in place, or once per run and copied for each test), and LibreOffice's and poppler's conversions (run bounded in time, in a private profile) —
//! `tests/print.rs` (the ledgers on paper) and `tests/report.rs` (the quarterly report).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sanjin_fixtures::Fixtures;
use sanjin_server::ServerData;
use tempfile::TempDir;

/// LibreOffice gets this long to convert a workbook (it takes well under a minute here).
pub const CONVERT_LIMIT: Duration = Duration::from_secs(600);

/// The committed fixtures, loaded once.
pub fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| Fixtures::load(&sanjin_fixtures::committed_dir()).unwrap())
}

/// A server data folder holding the committed fixtures, landed as the server lands records:
/// every record reaches the change log, and importing again logs nothing.
pub fn server(dir: &Path) {
    let fx = fixtures();
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
    let report = data.import_records(&records).unwrap();
    assert_eq!(report.records, records.len());
    assert_eq!(
        report.logged,
        records.len(),
        "every record reaches the change log"
    );
    // Importing again changes nothing and logs nothing.
    assert_eq!(data.import_records(&records[..10]).unwrap().logged, 0);
}

/// A copy of a [`server`] folder built once per test run, and the fixtures.
pub fn server_copy() -> (TempDir, Fixtures) {
    static TEMPLATE: OnceLock<TempDir> = OnceLock::new();
    let template = TEMPLATE.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        server(tmp.path());
        tmp
    });
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(template.path()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
        }
    }
    (tmp, fixtures().clone())
}

/// The command `name`, which must be installed (`scripts/test` installs them).
pub fn tool(name: &str) -> Command {
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
pub fn run_bounded(mut cmd: Command, limit: Duration) -> std::process::Output {
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
/// PDF's path (in `work`).
pub fn to_pdf(xlsx: &Path, work: &Path) -> PathBuf {
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
    pdf
}

/// The pages of `pdf` as `pdftotext -layout` reads them.
pub fn pdf_text(pdf: &Path) -> Vec<String> {
    let txt = pdf.with_extension("txt");
    let mut pdftotext = tool("pdftotext");
    pdftotext.arg("-layout").arg(pdf).arg(&txt);
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

/// Converts `xlsx` to PDF with LibreOffice and returns its pages as text.
pub fn pdf_pages(xlsx: &Path, work: &Path) -> Vec<String> {
    pdf_text(&to_pdf(xlsx, work))
}

/// Page `page` (from 1) of `pdf` as a PNG image at `dpi`, written to `png`.
pub fn page_png(pdf: &Path, page: usize, png: &Path, dpi: u32) {
    let stem = png.with_extension("");
    let mut pdftoppm = tool("pdftoppm");
    pdftoppm
        .args(["-png", "-singlefile", "-f"])
        .arg(page.to_string())
        .arg("-l")
        .arg(page.to_string())
        .arg("-r")
        .arg(dpi.to_string())
        .arg(pdf)
        .arg(&stem);
    let out = run_bounded(pdftoppm, Duration::from_secs(120));
    assert!(out.status.success(), "{out:?}");
    assert!(png.exists(), "pdftoppm wrote no {}", png.display());
}

/// The file `name` of the zip archive at `path`, as text.
pub fn zip_text(path: &Path, name: &str) -> String {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut zip.by_name(name).unwrap(), &mut text).unwrap();
    text
}
