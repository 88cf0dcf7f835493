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

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use sanjin_core::RecordDoc;
use sanjin_fixtures::FixtureRecord;
use sanjin_ledger::{Format, Ledger, Query, Viewer};
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
    /// Only these scenarios (comma-separated: xlsx, csv, dashboard).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "SCENARIO,…",
        default_values = ["xlsx", "csv", "dashboard"]
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
