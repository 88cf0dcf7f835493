//! sanjin-bench: every benchmark of sanjin, one subcommand each. Each prints one JSON object per
//! scenario per line (`--json`), with at least `bench` and `scenario`. Targets are checked by
//! running it (`docs/BENCHMARKS.md`), never by timed tests; it measures the crates through their
//! public APIs and changes none of them.
//!
//! Arguments by clap (derive): `Cli` here, each benchmark's options a struct in its module
//! (`sync::SyncArgs`, `ledger::LedgerArgs`, …); the tests below check that every command line of
//! `docs/BENCHMARKS.md` parses to the options it had.
//!
//! `sanjin-bench device --json [--visits N] [--samples N]`: the device store with N visits (plus
//! the fixtures' opinions at the same scale): save, edit, list one month of a group, cold open,
//! and bytes on disk per visit against the record's compact JSON.
//!
//! `sanjin-bench sync --json [--only SCENARIO,…]`: the sync protocol against a real server in
//! this process, over TLS, bytes counted at the TCP level (see `sync.rs`).
//!
//! `sanjin-bench bridge --prepare PATH | --store PATH [--samples N]`: the Rust side of the phone
//! bridge's benchmark, `mobile-bridge/bench.py` (see `bridge.rs`).
//!
//! `sanjin-bench ledger --json [--scale N]`: the ledger of a year at N× the fixtures as XLSX and
//! CSV (time, peak memory, rows) and the console's dashboard (see `ledger.rs`).
//!
//! `sanjin-bench media --json [--samples N]`: photo processing per 12-megapixel JPEG (decode,
//! display copy, thumbnail, whole pipeline), median of N runs (5 by default; see `media.rs`).
//!
//! `sanjin-bench signin-flood --json [--samples N] [--seconds S] [--only SCENARIO,…]`: sync
//! latency idle and during a flood of wrong-password console sign-ins (issue 10; see
//! `signin.rs`).
//!
//! `sanjin-bench weak-link --json [--samples N] [--only thumbnails,originals,resume,media]`: photos over a
//! simulated 2G/3G link (issue 4): thumbnails with their records to the leader, originals to the
//! server, a cut original resuming; each against the link's physical limit (see `weak_link.rs`).
//!
//! `sanjin-bench bundle --json [--records N] [--samples N]`: bundle bytes per record against
//! the records' zstd'd JSON, with and without thumbnails, export and import times (issue 12;
//! see `bundle.rs`).
//! `sanjin-bench meet --json [--phones N] [--records N] [--photos N] [--samples N]`: a village
//! meeting merged at the leader's phone over a simulated Wi-Fi link, against the link's
//! physical limit (issue 12; see `meet.rs`).

mod bridge;
mod bundle;
mod ledger;
mod media;
mod meet;
mod signin;
mod sync;
mod weak_link;

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use sanjin_core::domain::{RecordData, RecordKind};
use sanjin_core::{Edit, RecordDoc};
use sanjin_fixtures::FixtureRecord;
use sanjin_store::{Durability, Filter, Identity, Store};
use serde_json::{Value, json};

/// sanjin-bench: every benchmark of sanjin, one subcommand each, one JSON object per scenario.
#[derive(Parser, Debug, PartialEq)]
#[command(name = "sanjin-bench", args_override_self = true)]
struct Cli {
    /// One JSON object per line (otherwise each pretty-printed); `bridge` always prints lines.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug, PartialEq)]
enum Command {
    /// The device store: save, edit, list a month, cold open, bytes on disk.
    Device(DeviceArgs),
    /// The sync protocol against a real server in this process (see sync.rs).
    Sync(sync::SyncArgs),
    /// Photo processing per 12-megapixel JPEG (see media.rs).
    Media(media::MediaArgs),
    /// The Rust side of the phone bridge's benchmark, mobile-bridge/bench.py (see bridge.rs).
    Bridge(bridge::BridgeArgs),
    /// The ledger of a year as XLSX and CSV, and the console's dashboard (see ledger.rs).
    Ledger(ledger::LedgerArgs),
    /// Photos over a simulated 2G/3G link (see weak_link.rs).
    WeakLink(weak_link::WeakLinkArgs),
    /// Sync latency idle and during floods of wrong console passwords (see signin.rs).
    SigninFlood(signin::SigninArgs),
    /// Bundle bytes per record against the records' zstd'd JSON (see bundle.rs).
    Bundle(bundle::BundleArgs),
    /// A village meeting merged at the leader's phone over simulated Wi-Fi (see meet.rs).
    Meet(meet::MeetArgs),
}

/// `sanjin-bench device`: the store's size and the samples per scenario.
#[derive(Args, Debug, Clone, PartialEq)]
struct DeviceArgs {
    /// Visits in the store (plus the fixtures' opinion notes at the same scale).
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    visits: usize,
    /// Samples per timed scenario (cold_open takes at most 30).
    #[arg(long, default_value_t = 300, value_name = "N")]
    samples: usize,
}

impl Command {
    /// `--only a,,b` names a and b: empty names between commas are dropped.
    fn drop_empty_names(&mut self) {
        let only = match self {
            Command::Sync(a) => &mut a.only,
            Command::Ledger(a) => &mut a.only,
            Command::WeakLink(a) => &mut a.only,
            Command::SigninFlood(a) => &mut a.only,
            Command::Bundle(_) => return,
            Command::Device(_) | Command::Media(_) | Command::Bridge(_) => return,
            Command::Meet(_) => return,
        };
        only.retain(|s| !s.is_empty());
    }
}

/// The command line as parsed (errors and `--help` exit here, usage errors with code 2).
fn parse(
    args: impl IntoIterator<Item = impl Into<std::ffi::OsString> + Clone>,
) -> Result<Cli, clap::Error> {
    let mut cli = Cli::try_parse_from(args)?;
    cli.command.drop_empty_names();
    Ok(cli)
}

fn main() -> Result<()> {
    let cli = parse(std::env::args_os()).unwrap_or_else(|e| e.exit());
    let json_out = cli.json;
    let print = |l: Value| {
        if json_out {
            println!("{l}");
        } else {
            println!(
                "{}",
                serde_json::to_string_pretty(&l).expect("JSON values print")
            );
        }
    };
    match &cli.command {
        Command::Device(a) => device(a.visits, a.samples)?.into_iter().for_each(print),
        Command::Sync(a) => sync::run(a, &mut |l| print(l))?,
        Command::Media(a) => media::run(a, &mut |l| print(l))?,
        Command::Bridge(a) => bridge::run(a, &mut |l| println!("{l}"))?,
        Command::Ledger(a) => ledger::run(a, &mut |l| print(l))?,
        Command::WeakLink(a) => weak_link::run(a, &mut |l| print(l))?,
        Command::SigninFlood(a) => signin::run(a, &mut |l| print(l))?,
        Command::Bundle(a) => bundle::run(a, &mut |l| print(l))?,
        Command::Meet(a) => meet::run(a, &mut |l| print(l))?,
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn stats(bench: &str, scenario: &str, mut ms: Vec<f64>, extra: Value) -> Value {
    ms.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let mut v = json!({
        "bench": bench,
        "scenario": scenario,
        "samples": ms.len(),
        "median_ms": round(percentile(&ms, 0.5)),
        "p99_ms": round(percentile(&ms, 0.99)),
    });
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    v
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed().as_secs_f64() * 1000.0)
}

/// Fills a store with `records` in batches (bulk import: one transaction per batch).
fn fill(store: &mut Store, records: &[FixtureRecord]) -> Result<()> {
    for batch in records.chunks(1000) {
        let mut docs: Vec<RecordDoc> =
            batch.iter().map(|r| r.to_doc()).collect::<Result<_, _>>()?;
        store.insert_batch(&mut docs, !batch[0].data.kind().is_directory())?;
    }
    Ok(())
}

fn file_bytes(path: &Path) -> u64 {
    let side = |suffix: &str| {
        std::fs::metadata(format!("{}{suffix}", path.display()))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    side("") + side("-wal")
}

/// The physical floor of a durable save on this disk: one SQLite transaction (same pragmas as the
/// store) that writes a 1 KiB blob and syncs the WAL.
fn fsync_floor(dir: &Path, samples: usize) -> Result<f64> {
    let conn = rusqlite::Connection::open(dir.join("floor.sqlite"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)")?;
    let blob = vec![0x5au8; 1024];
    let mut ms = Vec::with_capacity(samples);
    for _ in 0..samples {
        let ((), t) = timed(|| {
            conn.execute("INSERT INTO t (b) VALUES (?1)", [&blob])
                .expect("insert");
        });
        ms.push(t);
    }
    ms.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    Ok(percentile(&ms, 0.5))
}

/// Drops the OS page cache (needs root on Linux); false where not allowed.
fn drop_page_cache() -> bool {
    // Dirty pages must reach the disk before clean ones can be dropped.
    let _ = std::process::Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "1").is_ok()
}

fn device(visits: usize, samples: usize) -> Result<Vec<Value>> {
    let per_scale = 1200;
    let scale = visits.div_ceil(per_scale).max(1) as u32;
    eprintln!("generating fixtures at scale {scale} …");
    let fx = sanjin_fixtures::generate(sanjin_fixtures::DEFAULT_SEED, scale);
    let field: Vec<FixtureRecord> = fx.visits.iter().take(visits).cloned().collect();
    if field.len() < visits {
        bail!("the fixtures gave only {} visits", field.len());
    }
    let opinions: Vec<FixtureRecord> = fx.opinions.clone();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("device.sqlite");
    let identity = Identity {
        member: "member-0001".into(),
        device: "bench-device".into(),
        actor: vec![7; 16],
    };
    let mut store = Store::init(&path, &identity, Durability::Full)?;
    eprintln!(
        "filling the store with {} records …",
        fx.directory.len() + field.len() + opinions.len()
    );
    fill(&mut store, &fx.directory)?;
    fill(&mut store, &field)?;
    fill(&mut store, &opinions)?;
    let mut out = Vec::new();
    let context = json!({ "visits": visits, "opinions": opinions.len(), "durability": "full" });

    // save: one new visit, committed (fsync'd) before the call returns.
    let template = match &field[0].data {
        RecordData::Visit(v) => v.clone(),
        _ => bail!("fixtures' first visit is not a visit"),
    };
    let author = store.author();
    let mut save_ms = Vec::with_capacity(samples);
    for i in 0..samples {
        let mut v = template.clone();
        v.title = format!("{} 第{i}次", template.title);
        let id = sanjin_store::new_record_id();
        let now = sanjin_store::now_ms();
        let (r, ms) = timed(|| -> Result<()> {
            let mut doc = RecordDoc::create(&id, &RecordData::Visit(v), &author, now)?;
            store.insert(&mut doc, true)?;
            Ok(())
        });
        r?;
        save_ms.push(ms);
    }
    let floor = fsync_floor(dir.path(), samples)?;
    let mut extra = context.clone();
    extra["floor_median_ms"] = json!(round(floor));
    out.push(stats("device", "save", save_ms, extra));

    // edit: one field of an existing visit.
    let mut edit_ms = Vec::with_capacity(samples);
    for i in 0..samples {
        let id = &field[(i * 7919) % field.len()].id;
        let edit = Edit::Set {
            field: "title".into(),
            value: json!(format!("修改后的主题 {i}")),
        };
        let now = sanjin_store::now_ms();
        let (r, ms) =
            timed(|| store.update(id, |d, by| d.edit(by, now, std::slice::from_ref(&edit))));
        r.with_context(|| format!("editing {id}"))?;
        edit_ms.push(ms);
    }
    out.push(stats("device", "edit", edit_ms, context.clone()));

    // list_month: one month of one group, the rows a phone's list screen shows.
    let mut list_ms = Vec::with_capacity(samples);
    let mut rows = 0;
    for i in 0..samples {
        let month = 1 + i % 12;
        let group = format!("group-{:02}", 1 + i % 12);
        let filter = Filter {
            kind: Some(RecordKind::Visit),
            group: Some(group),
            from: Some(format!("2025-{month:02}-01")),
            to: Some(format!("2025-{month:02}-31")),
            ..Filter::default()
        };
        let (r, ms) = timed(|| store.list(&filter));
        rows += r?.len();
        list_ms.push(ms);
    }
    out.push(stats(
        "device",
        "list_month",
        list_ms,
        json!({ "visits": visits, "mean_rows": rows as f64 / samples as f64 }),
    ));

    // cold_open: open the file and show the first screen (this month's list), with the page
    // cache dropped first where the machine allows it (root on Linux).
    drop(store);
    let mut open_ms = Vec::new();
    let mut dropped = true;
    for _ in 0..samples.min(30) {
        dropped &= drop_page_cache();
        let (r, ms) = timed(|| -> Result<usize> {
            let s = Store::open(&path, Durability::Full)?;
            let f = Filter {
                kind: Some(RecordKind::Visit),
                from: Some("2025-12-01".into()),
                to: Some("2025-12-31".into()),
                limit: Some(50),
                ..Filter::default()
            };
            Ok(s.list(&f)?.len())
        });
        r?;
        open_ms.push(ms);
    }
    let mut extra = context;
    extra["page_cache_dropped"] = json!(dropped);
    out.push(stats("device", "cold_open", open_ms, extra));

    // disk: a store of visits only, against the same records as compact JSON.
    let dir2 = tempfile::tempdir()?;
    let path2 = dir2.path().join("visits.sqlite");
    let mut s2 = Store::init(&path2, &identity, Durability::Normal)?;
    fill(&mut s2, &field)?;
    s2.checkpoint()?;
    let doc_bytes = s2.document_bytes()? as i64;
    drop(s2);
    let disk = file_bytes(&path2);
    let json_bytes: usize = field
        .iter()
        .map(|r| serde_json::to_string(r).map(|s| s.len()).unwrap_or(0))
        .sum();
    let n = field.len() as f64;
    out.push(json!({
        "bench": "device",
        "scenario": "disk",
        "visits": field.len(),
        "bytes_per_visit": round(disk as f64 / n),
        "doc_bytes_per_visit": round(doc_bytes as f64 / n),
        "json_bytes_per_visit": round(json_bytes as f64 / n),
        "ratio": round(disk as f64 / json_bytes as f64),
    }));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> Cli {
        let args = std::iter::once("sanjin-bench").chain(line.split_whitespace());
        parse(args).unwrap_or_else(|e| panic!("`sanjin-bench {line}` does not parse: {e}"))
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// The options each documented command had under the four hand-written parsers (issue 11):
    /// the defaults of `main`'s loop (`--visits 10000`, `--samples 300`), of `media`
    /// (`--samples 5`, also weak-link's media scenario), `bridge` (`--samples 200`), `ledger`
    /// (`--scale 100 --samples 20 --only xlsx,csv,dashboard`) and `signin-flood`
    /// (`--samples 40 --seconds 6`).
    fn before(line: &str) -> Option<Cli> {
        // Issue 13 added `search` to the scenarios `ledger` runs by default.
        let all_ledger = names(&["xlsx", "csv", "dashboard", "search"]);
        let cli = |json, command| Cli { json, command };
        Some(match line {
            "device --json" => cli(
                true,
                Command::Device(DeviceArgs {
                    visits: 10_000,
                    samples: 300,
                }),
            ),
            "device --visits 10000 --samples 300" => cli(
                false,
                Command::Device(DeviceArgs {
                    visits: 10_000,
                    samples: 300,
                }),
            ),
            "device --visits 1200 --samples 5 --json" => cli(
                true,
                Command::Device(DeviceArgs {
                    visits: 1200,
                    samples: 5,
                }),
            ),
            "media --json" => cli(true, Command::Media(media::MediaArgs { samples: 5 })),
            "weak-link --json --samples 3" => cli(
                true,
                Command::WeakLink(weak_link::WeakLinkArgs {
                    only: vec![],
                    media: media::MediaArgs { samples: 3 },
                }),
            ),
            "weak-link --only thumbnails,originals,resume,media" => cli(
                false,
                Command::WeakLink(weak_link::WeakLinkArgs {
                    only: names(&["thumbnails", "originals", "resume", "media"]),
                    media: media::MediaArgs { samples: 5 },
                }),
            ),
            "sync --json" => cli(true, Command::Sync(sync::SyncArgs { only: vec![] })),
            "sync --only push_1000,pull_10000 --json" => cli(
                true,
                Command::Sync(sync::SyncArgs {
                    only: names(&["push_1000", "pull_10000"]),
                }),
            ),
            "sync --only push_1000,edits_10 --json" => cli(
                true,
                Command::Sync(sync::SyncArgs {
                    only: names(&["push_1000", "edits_10"]),
                }),
            ),
            "sync --json --only concurrent_8,,pull_1000" => cli(
                true,
                Command::Sync(sync::SyncArgs {
                    only: names(&["concurrent_8", "pull_1000"]),
                }),
            ),
            "meet --json" => cli(
                true,
                Command::Meet(meet::MeetArgs {
                    phones: 10,
                    records: 50,
                    photos: 20,
                    samples: 3,
                }),
            ),
            "ledger --scale 100 --json" => cli(
                true,
                Command::Ledger(ledger::LedgerArgs {
                    scale: 100,
                    samples: 20,
                    only: all_ledger.clone(),
                    child: None,
                }),
            ),
            "ledger --scale 100 --only search --json" => cli(
                true,
                Command::Ledger(ledger::LedgerArgs {
                    scale: 100,
                    samples: 20,
                    only: names(&["search"]),
                    child: None,
                }),
            ),
            "ledger --scale 100 --only dashboard --json" => cli(
                true,
                Command::Ledger(ledger::LedgerArgs {
                    scale: 100,
                    samples: 20,
                    only: names(&["dashboard"]),
                    child: None,
                }),
            ),
            "ledger --only dashboard --samples 3 --scale 1" => cli(
                false,
                Command::Ledger(ledger::LedgerArgs {
                    scale: 1,
                    samples: 3,
                    only: names(&["dashboard"]),
                    child: None,
                }),
            ),
            // How `ledger` starts its own child processes.
            "ledger --child xlsx /tmp/data /tmp/out.xlsx" => cli(
                false,
                Command::Ledger(ledger::LedgerArgs {
                    scale: 100,
                    samples: 20,
                    only: all_ledger,
                    child: Some(names(&["xlsx", "/tmp/data", "/tmp/out.xlsx"])),
                }),
            ),
            "signin-flood --json" => cli(
                true,
                Command::SigninFlood(signin::SigninArgs {
                    samples: 40,
                    seconds: 6.0,
                    only: vec![],
                }),
            ),
            "signin-flood --samples 10 --seconds 2.5 --only paced_16_per_s,unpaced_health" => cli(
                false,
                Command::SigninFlood(signin::SigninArgs {
                    samples: 10,
                    seconds: 2.5,
                    only: names(&["paced_16_per_s", "unpaced_health"]),
                }),
            ),
            // How mobile-bridge/bench.py calls it.
            "bridge --prepare /tmp/template.sqlite" => cli(
                false,
                Command::Bridge(bridge::BridgeArgs {
                    target: bridge::BridgeTarget {
                        prepare: Some("/tmp/template.sqlite".into()),
                        store: None,
                    },
                    samples: 200,
                }),
            ),
            "bridge --store /tmp/rust-1.sqlite --samples 200" => cli(
                false,
                Command::Bridge(bridge::BridgeArgs {
                    target: bridge::BridgeTarget {
                        prepare: None,
                        store: Some("/tmp/rust-1.sqlite".into()),
                    },
                    samples: 200,
                }),
            ),
            "bundle --json" => cli(
                true,
                Command::Bundle(bundle::BundleArgs {
                    records: 50,
                    samples: 5,
                }),
            ),
            _ => return None,
        })
    }

    /// Every `sanjin-bench …` command line of docs/BENCHMARKS.md, comments removed.
    fn documented() -> Vec<String> {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/BENCHMARKS.md"),
        )
        .unwrap();
        doc.lines()
            .filter_map(|l| l.trim().strip_prefix("./target/release/sanjin-bench "))
            .map(|l| l.split('#').next().unwrap().trim().to_string())
            .collect()
    }

    #[test]
    fn issue11_documented_bench_commands_parse_to_the_options_they_had() {
        let documented = documented();
        assert!(documented.len() >= 8, "{documented:?}");
        for line in &documented {
            let expected = before(line)
                .unwrap_or_else(|| panic!("`{line}` (docs/BENCHMARKS.md) has no expectation here"));
            assert_eq!(parsed(line), expected, "{line}");
        }
        // Every subcommand is documented.
        for cmd in [
            "device",
            "media",
            "weak-link",
            "sync",
            "ledger",
            "signin-flood",
        ] {
            assert!(
                documented
                    .iter()
                    .any(|l| l.split_whitespace().next() == Some(cmd)),
                "{cmd} is not in docs/BENCHMARKS.md"
            );
        }
    }

    #[test]
    fn issue11_other_bench_command_lines_parse_to_the_options_they_had() {
        for line in [
            "device --visits 10000 --samples 300",
            "device --visits 1200 --samples 5 --json",
            "weak-link --only thumbnails,originals,resume,media",
            "sync --json --only concurrent_8,,pull_1000",
            "ledger --only dashboard --samples 3 --scale 1",
            "ledger --child xlsx /tmp/data /tmp/out.xlsx",
            "signin-flood --samples 10 --seconds 2.5 --only paced_16_per_s,unpaced_health",
            "bridge --prepare /tmp/template.sqlite",
            "bridge --store /tmp/rust-1.sqlite --samples 200",
        ] {
            assert_eq!(parsed(line), before(line).unwrap(), "{line}");
        }
    }

    #[test]
    fn issue11_bad_bench_command_lines_are_usage_errors() {
        for line in [
            "",
            "nothing",
            "device --bogus",
            "device --visits many",
            "sync --samples",
            "bridge",
            "bridge --prepare a --store b",
            "ledger --child xlsx /tmp/data",
        ] {
            let args = std::iter::once("sanjin-bench").chain(line.split_whitespace());
            match parse(args) {
                Ok(cli) => panic!("`{line}` parsed as {cli:?}"),
                Err(e) => assert_eq!(e.exit_code(), 2, "`{line}`: {e}"),
            }
        }
    }
}
