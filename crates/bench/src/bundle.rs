//! `sanjin-bench bundle`: the size of a bundle per record (issue 12) against the records'
//! zstd'd JSON, and the time to export and import it.
//!
//! A member's phone, enrolled offline with keys and certificates made here
//! (`sanjin_client::bundle::testing::TestTrust`), holds `--records` records of the committed
//! fixtures' first group (visits and opinion notes, as the member saved them: created and,
//! where the fixture has one, submitted on the phone, each change signed). Two scenarios:
//!
//! - `records_N`: the records alone;
//! - `records_N_thumbnails`: each record with one photo attached (a generated 1600 × 1200
//!   phone-like picture through `sanjin_media::process`: its thumbnail travels in the record;
//!   the original stays in the blob outbox and is not exported).
//!
//! `bundle_bytes` is the whole file `sanjin device bundle export` writes (one part: header,
//! the exporter's certificate, the sealed body, the signature). The reference is what the
//! records are, compressed as well as the bundle is: each record's `view()` data as JSON, one
//! line each, and (with thumbnails) each thumbnail's raw bytes after it, all zstd-compressed
//! together at the level the bundle uses. `ratio` = bundle / reference; the target is ≤ 1.5.
//! `empty_bundle_bytes` is a bundle of no record (the fixed cost). Export and import times are
//! medians of `--samples` runs (import into a fresh phone each time).

use std::time::Instant;

use anyhow::{Context, Result};
use sanjin_client::bundle::{self, ExportOptions, testing::TestTrust};
use sanjin_core::domain::{PhotoRef, RecordData};
use sanjin_core::workflow::EventType;
use sanjin_core::{RecordDoc, RecordView};
use sanjin_store::{Durability, Identity, Store};
use serde_json::{Value, json};

use crate::{percentile, round};

const T0: i64 = 1_747_616_400_000;
/// The zstd level `sanjin_sync::bundle` compresses payloads at (its private `LEVEL`).
const BUNDLE_ZSTD_LEVEL: i32 = 15;

/// `sanjin-bench bundle`: how many records, how many timed runs.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct BundleArgs {
    /// Records in the bundle.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub records: usize,
    /// Timed export and import runs (the median is reported; at least 1).
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub samples: usize,
}

fn phone(dir: &std::path::Path, t: &TestTrust, n: u8, group: &str) -> Result<Store> {
    let identity = Identity {
        member: format!("member-{n:04}"),
        device: format!("bench-device-{n:02}"),
        actor: vec![n; 16],
    };
    let path = dir.join(format!("phone-{n}-{}.sqlite", sanjin_store::new_record_id()));
    let mut s = Store::init(&path, &identity, Durability::Normal)?;
    t.enroll(&mut s, 100 + n, "member", Some(group), T0);
    Ok(s)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    round(percentile(&v, 0.5))
}

pub fn run(args: &BundleArgs, emit: &mut dyn FnMut(Value)) -> Result<()> {
    let fx = sanjin_fixtures::Fixtures::load(&sanjin_fixtures::committed_dir())
        .context("reading the committed fixtures")?;
    let group = match &fx.visits[0].data {
        RecordData::Visit(v) => v.group.clone(),
        _ => unreachable!("visits are visits"),
    };
    let of_group = |r: &&sanjin_core::import::ImportRecord| match &r.data {
        RecordData::Visit(v) => v.group == group,
        RecordData::Opinion(o) => o.group == group,
        _ => false,
    };
    // Visits and opinion notes of the group, interleaved as a member records them.
    let mut records: Vec<&sanjin_core::import::ImportRecord> = Vec::new();
    let (mut vs, mut os) = (
        fx.visits.iter().filter(of_group),
        fx.opinions.iter().filter(of_group),
    );
    while records.len() < args.records {
        let (v, o) = (vs.next(), os.next());
        if v.is_none() && o.is_none() {
            break;
        }
        records.extend(v.into_iter().chain(o).take(args.records - records.len()));
    }
    let n = records.len();
    let dir = tempfile::tempdir()?;
    let t = TestTrust::new(7, &[group.as_str()], T0);
    let level = BUNDLE_ZSTD_LEVEL;

    for thumbnails in [false, true] {
        let mut a = phone(dir.path(), &t, 1, &group)?;
        let author = a.author();
        let mut reference = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let at = r.created_at_ms;
            let mut doc = RecordDoc::create(&r.id, &r.data, &author, at)?;
            if r.events.iter().any(|e| e.event == EventType::Submit) {
                doc.transition(&author, at + 60_000, EventType::Submit, None)?;
            }
            a.insert(&mut doc, true)?;
            let mut thumb = Vec::new();
            if thumbnails {
                let original = sanjin_media::testing::jpeg(
                    &sanjin_media::testing::photo(1600, 1200, 2026 + i as u64, 6),
                    90,
                );
                let p = sanjin_media::process(&original, &sanjin_media::Limits::default())?;
                let photo = PhotoRef {
                    hash: p.hash.clone(),
                    caption: String::new(),
                    taken_at: p.taken_at,
                    gps: None,
                    bytes: original.len() as u64,
                    width: p.width,
                    height: p.height,
                    mime: "image/jpeg".into(),
                };
                a.attach_photo(&r.id, &photo, &p.thumbnail, &original)?;
                thumb = p.thumbnail;
            }
            let view: RecordView = a.load(&r.id)?.view()?;
            reference.extend_from_slice(serde_json::to_string(&view.data)?.as_bytes());
            reference.push(b'\n');
            reference.extend_from_slice(&thumb);
        }
        let reference_bytes = zstd::bulk::compress(&reference, level)?.len();
        let empty = bundle::export_bundle(
            &a,
            &ExportOptions {
                since: Some(i64::MAX),
                ..ExportOptions::default()
            },
            T0,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let (mut export_ms, mut import_ms, mut sizes) = (vec![], vec![], vec![]);
        let mut parts = Vec::new();
        for s in 0..args.samples.max(1) {
            let t0 = Instant::now();
            let e = bundle::export_bundle(&a, &ExportOptions::default(), T0)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            export_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
            sizes.push(e.parts.iter().map(Vec::len).sum::<usize>());
            parts = e.parts;
            let mut b = phone(dir.path(), &t, 2 + s as u8, &group)?;
            let t0 = Instant::now();
            let mut added = 0;
            for p in &parts {
                let r = bundle::import_bundle(&mut b, p, T0)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                added += r.report.added;
                anyhow::ensure!(r.report.refused == 0, "refused: {:?}", r.report.records);
            }
            import_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(added == n, "imported {added} of {n}");
        }
        sizes.sort_unstable();
        let bundle_bytes = sizes[sizes.len() / 2];
        let ratio = bundle_bytes as f64 / reference_bytes as f64;
        emit(json!({
            "bench": "bundle",
            "scenario": if thumbnails { format!("records_{n}_thumbnails") } else { format!("records_{n}") },
            "records": n,
            "parts": parts.len(),
            "bundle_bytes": bundle_bytes,
            "bundle_bytes_per_record": round(bundle_bytes as f64 / n as f64),
            "reference_bytes": reference_bytes,
            "reference_bytes_per_record": round(reference_bytes as f64 / n as f64),
            "json_bytes": reference.len(),
            "empty_bundle_bytes": empty.parts.iter().map(Vec::len).sum::<usize>(),
            "zstd_level": level,
            "ratio": round(ratio),
            "target_ratio": 1.5,
            "meets_target": ratio <= 1.5,
            "samples": export_ms.len(),
            "export_median_ms": median(export_ms),
            "import_median_ms": median(import_ms),
        }));
    }
    Ok(())
}
