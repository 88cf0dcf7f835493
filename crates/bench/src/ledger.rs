//! `sanjin-bench ledger --scale N --json`: the ledger of a province-sized year (issue 5).
//!
//! A server data folder with the fixtures at `--scale N` (100: 120,000 visits and 200,000 opinion
//! notes, plus households, plans and the directory) is built once through the server's bulk path
//! (`ServerData::import_docs`: documents made on all cores, one transaction per 20,000) and kept
//! in the system's temporary folder under `sanjin-bench-ledger/scale-N`, so later runs reuse it.
//! The ledger's projection is brought up to date there too (`refresh`, timed on the first build).
//!
//! Scenarios:
//! - `xlsx`, `csv`: a whole year, every ledger, as the office exports it (`Ledger::export`), each
//!   in a fresh child process so that `peak_rss_mb` (VmHWM) is that export's alone.
//! - `dashboard`: the console's dashboard page for the last quarter of the data (2025 Q4), the
//!   server's time for the whole request through its router, median of `--samples` runs.
//! - `refresh`: the projection rebuilt from every document (only when the folder is built).
//! - `search` (issue 13): `Ledger::search` as office staff and a leader run it (the refresh it
//!   starts with included), over a set of queries staff type — two-character words (养老, 垃圾,
//!   …), a single character, longer words, two words, with the list's filters — `--samples`
//!   rounds of all of them: `median_ms` and `p95_ms` over every search, per query its median and
//!   how many records it found; and the console's records page searched through the router
//!   (`console_median_ms`, `console_p95_ms`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use sanjin_core::RecordDoc;
use sanjin_core::domain::RecordKind;
use sanjin_fixtures::FixtureRecord;
use sanjin_ledger::{Format, Ledger, Query, Search, Viewer};
use sanjin_server::ServerData;
use serde_json::{Value, json};

/// Bump when the data folder's content would change.
const CACHE_VERSION: &str = "1";

/// `sanjin-bench ledger`: the fixture scale, the dashboard's runs, which scenarios.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct LedgerArgs {
    /// The fixtures at N× (100: 120,000 visits and 200,000 opinion notes).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub scale: u32,
    /// Runs of the dashboard scenario (the median is reported).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub samples: usize,
    /// Only these scenarios (comma-separated: xlsx, csv, dashboard, search).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "SCENARIO,…",
        default_values = ["xlsx", "csv", "dashboard", "search"]
    )]
    pub only: Vec<String>,
    /// Internal: one export (SCENARIO of the data folder DATA into OUT) in this child process,
    /// so that its peak memory is its own.
    #[arg(long, num_args = 3, value_names = ["SCENARIO", "DATA", "OUT"], hide = true)]
    pub child: Option<Vec<String>>,
}

fn year() -> Query {
    Query::new(
        NaiveDate::from_ymd_opt(2025, 1, 1).expect("a date"),
        NaiveDate::from_ymd_opt(2025, 12, 31).expect("a date"),
    )
}

/// Peak resident memory of this process, in MiB (VmHWM).
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| (kb / 1024.0 * 10.0).round() / 10.0)
}

pub fn run(args: &LedgerArgs, print: &mut dyn FnMut(Value)) -> Result<()> {
    let LedgerArgs {
        scale,
        samples,
        ref only,
        ref child,
    } = *args;
    if let Some([scenario, data, out]) = child.as_deref() {
        print(export_once(scenario, Path::new(data), Path::new(out))?);
        return Ok(());
    }
    let (dir, built) = data_folder(scale)?;
    if let Some(b) = built {
        print(b);
    }
    for scenario in only {
        match scenario.as_str() {
            "xlsx" | "csv" => {
                let out = dir.join(format!(
                    "bench-export.{}",
                    if scenario == "xlsx" { "xlsx" } else { "zip" }
                ));
                let exe = std::env::current_exe()?;
                let output = std::process::Command::new(exe)
                    .args(["ledger", "--child", scenario])
                    .arg(&dir)
                    .arg(&out)
                    .output()?;
                if !output.status.success() {
                    bail!(
                        "{scenario} export failed: {}",
                        String::from_utf8_lossy(&output.stderr)
                    );
                }
                let mut v: Value = serde_json::from_slice(&output.stdout)
                    .context("the child prints one JSON object")?;
                v["scale"] = json!(scale);
                v["bytes"] = json!(std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0));
                let _ = std::fs::remove_file(&out);
                print(v);
            }
            "dashboard" => print(dashboard(&dir, scale, samples)?),
            "search" => print(search(&dir, scale, samples)?),
            other => bail!("unknown scenario {other}"),
        }
    }
    Ok(())
}

fn export_once(scenario: &str, dir: &Path, out: &Path) -> Result<Value> {
    let format = if scenario == "xlsx" {
        Format::Xlsx
    } else {
        Format::Csv
    };
    let t = Instant::now();
    let mut ledger = Ledger::open(dir)?;
    let report = ledger.export(&Viewer::Office, &year(), format, out)?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    Ok(json!({
        "bench": "ledger",
        "scenario": scenario,
        "ms": (ms * 10.0).round() / 10.0,
        "peak_rss_mb": peak_rss_mb(),
        "rows": report.total_rows(),
        "activities": report.rows_of("activities"),
        "opinions": report.rows_of("opinions"),
        "refreshed": report.refreshed,
    }))
}

/// The console's dashboard page for the last quarter of the data, as a signed-in staff member
/// asks for it: the whole request through the server's router (session check, the counts from
/// the index tables, the HTML), no socket.
fn dashboard(dir: &Path, scale: u32, samples: usize) -> Result<Value> {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    const STAFF: &str = "bench-staff";
    const PASSWORD: &str = "bench-password-1";
    let mut data = ServerData::open(dir)?;
    if data.account(STAFF)?.is_none() {
        data.add_staff(STAFF, "基准测试", sanjin_server::Role::Staff)?;
    }
    sanjin_server::console::set_password(&mut data, STAFF, PASSWORD)?;
    let app = sanjin_server::app(sanjin_server::AppState::new(data));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let res = app
            .clone()
            .oneshot(
                Request::post("/console/login")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Body::from(format!("account={STAFF}&password={PASSWORD}")))?,
            )
            .await?;
        let cookie = res
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .context("signed in")?
            .to_string();
        let mut ms = Vec::with_capacity(samples);
        let mut bytes = 0;
        for _ in 0..samples.max(1) {
            let t = Instant::now();
            let res = app
                .clone()
                .oneshot(
                    Request::get("/console/dashboard?q=2025-4")
                        .header("cookie", &cookie)
                        .body(Body::empty())?,
                )
                .await?;
            if res.status() != StatusCode::OK {
                bail!("dashboard answered {}", res.status());
            }
            let body = axum::body::to_bytes(res.into_body(), usize::MAX).await?;
            if let Ok(path) = std::env::var("SANJIN_BENCH_DUMP") {
                std::fs::write(path, &body)?;
            }
            bytes = body.len();
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        Ok(json!({
            "bench": "ledger",
            "scenario": "dashboard",
            "scale": scale,
            "samples": ms.len(),
            "median_ms": (ms[ms.len() / 2] * 1000.0).round() / 1000.0,
            "max_ms": (ms[ms.len() - 1] * 1000.0).round() / 1000.0,
            "page_bytes": bytes,
        }))
    })
}

/// The queries of the `search` scenario: (what is typed, the list kind, a group filter, a leader
/// asking). Words of the fixtures' texts, mostly two characters as Chinese words are.
const QUERIES: &[(&str, Option<RecordKind>, Option<&str>, bool)] = &[
    ("养老", None, None, false),
    ("垃圾", None, None, false),
    ("医保", Some(RecordKind::Opinion), None, false),
    ("路灯", Some(RecordKind::Opinion), None, false),
    ("老人", Some(RecordKind::Opinion), Some("group-03"), false),
    ("道路", Some(RecordKind::Visit), None, true),
    ("灯", None, None, false),
    ("生活服务中心", None, None, false),
    ("养老 服务", Some(RecordKind::Visit), None, false),
    (
        "垃圾清运",
        Some(RecordKind::Opinion),
        Some("group-05"),
        false,
    ),
];

/// Median and 95th percentile (nearest rank) of sorted times, in ms rounded to µs.
fn median_p95(ms: &mut [f64]) -> (f64, f64) {
    ms.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let r = |v: f64| (v * 1000.0).round() / 1000.0;
    let p95 = ((ms.len() as f64 * 0.95).ceil() as usize).clamp(1, ms.len()) - 1;
    (r(ms[ms.len() / 2]), r(ms[p95]))
}

/// Searches as staff type them (see [`QUERIES`]), through the ledger's API and through the
/// console's records page.
fn search(dir: &Path, scale: u32, samples: usize) -> Result<Value> {
    let t = Instant::now();
    let mut ledger = Ledger::open(dir)?;
    // Brings the projection (and its search index) up to date: a full build the first time
    // after the projection's version changed, then nothing.
    let refreshed = ledger.refresh()?;
    let refresh_ms = t.elapsed().as_secs_f64() * 1000.0;
    let mut all = Vec::new();
    let mut per = Vec::new();
    for (text, kind, group, leader) in QUERIES {
        let viewer = if *leader {
            Viewer::Leader {
                group: "group-01".into(),
            }
        } else {
            Viewer::Office
        };
        let s = Search {
            text: text.to_string(),
            kind: *kind,
            group: group.map(str::to_string),
            limit: 50,
            ..Search::default()
        };
        let mut ms = Vec::with_capacity(samples);
        let mut total = 0;
        for _ in 0..samples.max(1) {
            let t = Instant::now();
            let found = ledger.search(&viewer, &s)?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            total = found.total;
        }
        all.extend_from_slice(&ms);
        let (median, p95) = median_p95(&mut ms);
        per.push(json!({
            "q": text,
            "kind": kind.map(|k| k.code()),
            "group": group,
            "leader": leader,
            "found": total,
            "median_ms": median,
            "p95_ms": p95,
        }));
    }
    drop(ledger);
    let (median, p95) = median_p95(&mut all);
    let mut console = console_search(dir, samples)?;
    let (c_median, c_p95) = median_p95(&mut console);
    Ok(json!({
        "bench": "ledger",
        "scenario": "search",
        "scale": scale,
        "samples": all.len(),
        "median_ms": median,
        "p95_ms": p95,
        "console_samples": console.len(),
        "console_median_ms": c_median,
        "console_p95_ms": c_p95,
        "refresh_ms": refresh_ms.round(),
        "refreshed": refreshed.updated,
        "queries": per,
    }))
}

/// The console's records page searched (the first four queries), whole requests through the
/// router as a signed-in staff member makes them.
fn console_search(dir: &Path, samples: usize) -> Result<Vec<f64>> {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    let (app, cookie) = signed_in_app(dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut ms = Vec::new();
        for (text, kind, _, _) in &QUERIES[..4] {
            let q: String = text.bytes().map(|b| format!("%{b:02X}")).collect();
            let kind = kind.unwrap_or(RecordKind::Visit).code();
            for _ in 0..samples.max(1) {
                let t = Instant::now();
                let res = app
                    .clone()
                    .oneshot(
                        Request::get(format!("/console/records?kind={kind}&q={q}"))
                            .header("cookie", &cookie)
                            .body(Body::empty())?,
                    )
                    .await?;
                if res.status() != StatusCode::OK {
                    bail!("the search page answered {}", res.status());
                }
                let body = axum::body::to_bytes(res.into_body(), usize::MAX).await?;
                if !String::from_utf8_lossy(&body).contains("id=\"search-note\"") {
                    bail!("the records page did not search for {text}");
                }
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        Ok(ms)
    })
}

/// The server's router over `dir` and a signed-in staff member's session cookie.
fn signed_in_app(dir: &Path) -> Result<(axum::Router, String)> {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    const STAFF: &str = "bench-staff";
    const PASSWORD: &str = "bench-password-1";
    let mut data = ServerData::open(dir)?;
    if data.account(STAFF)?.is_none() {
        data.add_staff(STAFF, "基准测试", sanjin_server::Role::Staff)?;
    }
    sanjin_server::console::set_password(&mut data, STAFF, PASSWORD)?;
    let app = sanjin_server::app(sanjin_server::AppState::new(data));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let cookie = rt.block_on(async {
        let res = app
            .clone()
            .oneshot(
                Request::post("/console/login")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Body::from(format!("account={STAFF}&password={PASSWORD}")))?,
            )
            .await?;
        res.headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::to_string)
            .context("signed in")
    })?;
    Ok((app, cookie))
}

/// The cached data folder for `scale`, built when missing; with the build's figures if built now.
fn data_folder(scale: u32) -> Result<(PathBuf, Option<Value>)> {
    let dir = std::env::temp_dir()
        .join("sanjin-bench-ledger")
        .join(format!("scale-{scale}"));
    let marker = dir.join("READY");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(CACHE_VERSION) {
        return Ok((dir.join("server"), None));
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let t = Instant::now();
    let fx = sanjin_fixtures::generate(sanjin_fixtures::DEFAULT_SEED, scale);
    let directory = dir.join("directory.jsonl");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&directory)?);
        for r in &fx.directory {
            serde_json::to_writer(&mut f, r)?;
            f.write_all(b"\n")?;
        }
    }
    let mut data = ServerData::open(&dir.join("server"))?;
    data.import_directory(&directory)?;
    let records: Vec<&FixtureRecord> = fx
        .visits
        .iter()
        .chain(&fx.opinions)
        .chain(&fx.households)
        .chain(&fx.plans)
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for batch in records.chunks(20_000) {
        let per = batch.len().div_ceil(threads);
        let mut docs: Vec<RecordDoc> = std::thread::scope(|s| {
            let handles: Vec<_> = batch
                .chunks(per)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|r| r.to_doc())
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("no panic"))
                .collect::<Result<Vec<Vec<_>>, _>>()
        })?
        .into_iter()
        .flatten()
        .collect();
        data.import_docs(&mut docs)?;
    }
    drop(data);
    let build_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    let mut ledger = Ledger::open(&dir.join("server"))?;
    let refreshed = ledger.refresh()?;
    let refresh_ms = t.elapsed().as_secs_f64() * 1000.0;
    let bytes = std::fs::metadata(dir.join("server").join("sanjin.sqlite"))?.len();
    std::fs::write(&marker, CACHE_VERSION)?;
    let _ = std::fs::remove_file(&directory);
    Ok((
        dir.join("server"),
        Some(json!({
            "bench": "ledger",
            "scenario": "build",
            "scale": scale,
            "records": records.len(),
            "build_ms": build_ms.round(),
            "refresh_ms": refresh_ms.round(),
            "refreshed": refreshed.updated,
            "store_bytes": bytes,
        })),
    ))
}
