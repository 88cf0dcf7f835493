//! `sanjin-bench bridge`: the Rust side of the phone bridge's benchmark
//! (`mobile-bridge/bench.py`, which runs the same calls from Python through the bindings).
//!
//! - `--prepare PATH`: a device store for member-0001 holding the committed city fixtures.
//! - `--store PATH [--samples N]`: on that store, `save_visit` (one visit, typed fields parsed,
//!   checked, saved durably: the steps `DeviceStore.record_visit` takes; dated 2026, outside the
//!   listed month), `list_month` (the visits of the busiest group-month of the fixtures,
//!   group-11 in 2025-05) and `list_month_all` (every group's visits of 2025-05), the steps of
//!   `DeviceStore.list`, and `list_month_empty` (a month without visits: the fixed cost of a
//!   call), done directly with sanjin-core and sanjin-store; one JSON line per
//!   scenario with the median `rust_ms` and the rows listed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sanjin_core::RecordDoc;
use sanjin_core::domain::RecordKind;
use sanjin_core::input;
use sanjin_store::{Durability, Filter, Identity, Store, new_device, new_record_id, now_ms};
use serde_json::{Map, Value, json};

use crate::{percentile, round, timed};

/// `sanjin-bench bridge`: prepare a store, or measure on one.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct BridgeArgs {
    #[command(flatten)]
    pub target: BridgeTarget,
    /// Calls per scenario (the median is reported).
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub samples: usize,
}

/// Exactly one of `--prepare PATH` and `--store PATH`.
#[derive(clap::Args, Debug, Clone, PartialEq)]
#[group(required = true, multiple = false)]
pub struct BridgeTarget {
    /// Make a device store for member-0001 holding the committed city fixtures at PATH.
    #[arg(long, value_name = "PATH")]
    pub prepare: Option<PathBuf>,
    /// Measure on the store at PATH (made by --prepare).
    #[arg(long, value_name = "PATH")]
    pub store: Option<PathBuf>,
}

pub fn run(args: &BridgeArgs, print: &mut dyn FnMut(Value)) -> Result<()> {
    match (&args.target.prepare, &args.target.store) {
        (Some(p), None) => prepare_store(p),
        (None, Some(s)) => measure(s, args.samples, print),
        _ => bail!("usage: sanjin-bench bridge --prepare PATH | --store PATH [--samples N]"),
    }
}

fn prepare_store(path: &Path) -> Result<()> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/city");
    let fx = sanjin_fixtures::Fixtures::load(&fixtures)?;
    let (device, actor) = new_device();
    let identity = Identity {
        member: "member-0001".into(),
        device,
        actor,
    };
    let mut store = Store::init(path, &identity, Durability::Full)?;
    let records: Vec<_> = fx.all().cloned().collect();
    for batch in records.chunks(1000) {
        let mut docs: Vec<RecordDoc> =
            batch.iter().map(|r| r.to_doc()).collect::<Result<_, _>>()?;
        store.insert_batch(&mut docs, false)?;
    }
    Ok(())
}

/// The typed fields of the benchmark's visit, as the app would send them.
pub const VISIT: &[(&str, &str)] = &[
    ("target_kind", "village"),
    ("contact_point", "cp-001"),
    ("group", "group-01"),
    ("activity_type", "调研座谈"),
    ("start", "2026-05-19T09:00"),
    ("end", "2026-05-19T11:30"),
    ("title", "新华村人居环境座谈"),
    ("summary", "听取村民对垃圾清运的意见。"),
    ("gps", "30.92,113.91"),
];

fn save_visit(store: &mut Store) -> Result<String> {
    let kind = RecordKind::Visit;
    let mut fields = Map::new();
    for (name, value) in VISIT {
        input::put(kind, &mut fields, name, value)?;
    }
    input::put_list(kind, &mut fields, "participants", &["member-0001".into()])?;
    input::put_list(kind, &mut fields, "helpers", &[])?;
    let now = now_ms();
    input::fill_defaults(kind, &mut fields, "member-0001", input::beijing_date(now));
    let data = input::build(kind, fields)?;
    let id = new_record_id();
    let mut doc = RecordDoc::create(&id, &data, &store.author(), now)?;
    store.insert(&mut doc, true)?;
    Ok(id)
}

/// The listed month and group (`None`: every group).
pub const MONTH: &str = "2025-05";
pub const GROUP: &str = "group-11";

/// The list scenarios: `list_month_empty` (a month with no visits) is the fixed cost of a call.
const SCENARIOS: &[(&str, &str, Option<&str>)] = &[
    ("list_month", MONTH, Some(GROUP)),
    ("list_month_all", MONTH, None),
    ("list_month_empty", "2030-01", Some(GROUP)),
];

fn list_month(store: &Store, month: &str, group: Option<&str>) -> Result<usize> {
    let (from, to) = input::month_range(month).context("a month")?;
    let filter = Filter {
        kind: Some(RecordKind::Visit),
        from: Some(from.to_string()),
        to: Some(to.to_string()),
        group: group.map(str::to_string),
        ..Default::default()
    };
    Ok(store.list(&filter)?.len())
}

fn median(mut ms: Vec<f64>) -> f64 {
    ms.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    round(percentile(&ms, 0.5))
}

fn measure(path: &Path, samples: usize, print: &mut dyn FnMut(Value)) -> Result<()> {
    let mut store = Store::open(path, Durability::Full)?;
    // Warm up like the Python side does (first statements prepared, pages cached).
    save_visit(&mut store)?;
    let mut save = Vec::with_capacity(samples);
    for _ in 0..samples {
        let (r, t) = timed(|| save_visit(&mut store));
        r?;
        save.push(t);
    }
    print(
        json!({ "bench": "bridge", "scenario": "save_visit", "samples": samples, "rust_ms": median(save) }),
    );
    for (scenario, month, group) in SCENARIOS {
        let rows = list_month(&store, month, *group)?;
        let mut list = Vec::with_capacity(samples);
        for _ in 0..samples {
            let (r, t) = timed(|| list_month(&store, month, *group));
            r?;
            list.push(t);
        }
        print(
            json!({ "bench": "bridge", "scenario": scenario, "samples": samples, "rows": rows, "rust_ms": median(list) }),
        );
    }
    Ok(())
}
