//! `sanjin-bench meet`: a village meeting (issue 12). `--phones` phones of one group (the
//! leader's and its members'), each holding `--records` records of the committed fixtures'
//! first group (visits and opinion notes, saved and signed on the phone) of which `--photos`
//! carry a photo's thumbnail (a generated 1600 × 1200 picture through `sanjin_media::process`,
//! as at capture; originals stay home). The phones are enrolled offline with keys and
//! certificates made here (`sanjin_client::bundle::testing::TestTrust`).
//!
//! The leader's phone serves a session (`sanjin_client::meet`) behind a simulated Wi-Fi link
//! (`sanjin-netsim`, profile `wifi`: 20 Mbit/s, 20 ms round trips): every byte to or from the
//! leader crosses it. The members join one at a time (the link is one shared medium, and the
//! proxy paces each connection on its own, so joining one at a time keeps the model honest),
//! then every member but the last joins again to get what later ones brought. The clock runs
//! from the first join to the moment every phone holds every record (checked after: all
//! phones at the same heads for every record, thumbnails included).
//!
//! `limit_ms` is the link's physical limit: the bytes that must cross the leader's link (each
//! member's records up once, every other phone's records down to each member: the records'
//! automerge bytes, thumbnails inside) ÷ the bandwidth, plus the round trips a join needs
//! (`ROUND_TRIPS_PER_JOIN`: TCP, TLS 1.3, key, proofs, summaries, the two batches of parts)
//! × the round-trip time. `ratio` = `ms` / `limit_ms`, target ≤ 1.5; `wire_bytes` is what
//! crossed (TLS, framing, bundle sealing, signatures, certificates). Median of `--samples`
//! runs, each from fresh copies of the phones.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sanjin_client::bundle::testing::TestTrust;
use sanjin_client::meet::{Invite, JoinOptions, MeetSession, ServeOptions, join};
use sanjin_core::domain::{PhotoRef, RecordData};
use sanjin_core::import::ImportRecord;
use sanjin_core::workflow::EventType;
use sanjin_core::{ChangeHash, RecordDoc};
use sanjin_netsim::{Profile, Proxy};
use sanjin_store::{Durability, Identity, Store};
use serde_json::{Value, json};

use crate::{percentile, round};

const T0: i64 = 1_747_616_400_000;
/// TCP connect, TLS 1.3, the key and the leader's proof, the joiner's proof and the
/// acceptance, the summaries, the joiner's parts and the leader's report, the leader's parts
/// and the joiner's report.
const ROUND_TRIPS_PER_JOIN: u64 = 7;

/// `sanjin-bench meet`: the meeting's size and the timed runs.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct MeetArgs {
    /// Phones at the meeting, the leader's included.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub phones: usize,
    /// Records on each phone.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub records: usize,
    /// Of which with a photo's thumbnail.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub photos: usize,
    /// Timed runs (the median is reported; at least 1).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub samples: usize,
}

/// The fixtures' first group's visits and opinion notes, `per_phone` for each of `phones`
/// phones: the first `photos` of each phone are visits (a photo goes with a visit), the rest
/// alternate; reused (under new ids) when the fixtures hold fewer.
fn group_records(
    phones: usize,
    per_phone: usize,
    photos: usize,
) -> Result<(String, Vec<Vec<ImportRecord>>)> {
    let fx = sanjin_fixtures::Fixtures::load(&sanjin_fixtures::committed_dir())
        .context("reading the committed fixtures")?;
    let group = match &fx.visits[0].data {
        RecordData::Visit(v) => v.group.clone(),
        _ => bail!("the first fixture visit is not a visit"),
    };
    let visits: Vec<&ImportRecord> = fx
        .visits
        .iter()
        .filter(|r| matches!(&r.data, RecordData::Visit(v) if v.group == group))
        .collect();
    let opinions: Vec<&ImportRecord> = fx
        .opinions
        .iter()
        .filter(|r| matches!(&r.data, RecordData::Opinion(o) if o.group == group))
        .collect();
    if visits.is_empty() || opinions.is_empty() {
        bail!("no fixture visits or opinion notes of {group}");
    }
    let (mut nv, mut no) = (0usize, 0usize);
    let mut out = Vec::new();
    for _ in 0..phones {
        let mut recs = Vec::new();
        for i in 0..per_phone {
            if i < photos || i % 2 == 0 {
                recs.push(visits[nv % visits.len()].clone());
                nv += 1;
            } else {
                recs.push(opinions[no % opinions.len()].clone());
                no += 1;
            }
        }
        out.push(recs);
    }
    Ok((group, out))
}

/// One phone's store, enrolled offline, with its records; the bytes of its records.
fn phone(
    dir: &Path,
    t: &TestTrust,
    n: usize,
    group: &str,
    records: &[ImportRecord],
    photos: usize,
) -> Result<(PathBuf, u64)> {
    let identity = Identity {
        member: format!("member-{:04}", n + 1),
        device: format!("bench-phone-{n:02}"),
        actor: vec![n as u8 + 1; 16],
    };
    let path = dir.join(format!("phone-{n:02}.sqlite"));
    let mut s = Store::init(&path, &identity, Durability::Normal)?;
    let role = if n == 0 { "leader" } else { "member" };
    t.enroll(&mut s, 50 + n as u8, role, Some(group), T0);
    let author = s.author();
    let mut bytes = 0u64;
    for (i, r) in records.iter().enumerate() {
        let id = format!("meet-{n:02}-{i:03}");
        let at = r.created_at_ms;
        let mut doc = RecordDoc::create(&id, &r.data, &author, at)?;
        if r.events.iter().any(|e| e.event == EventType::Submit) {
            doc.transition(&author, at + 60_000, EventType::Submit, None)?;
        }
        s.insert(&mut doc, true)?;
        if i < photos {
            let original = sanjin_media::testing::jpeg(
                &sanjin_media::testing::photo(1600, 1200, (n * 1000 + i) as u64, 6),
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
            s.attach_photo(&id, &photo, &p.thumbnail, &original)?;
        }
        bytes += s.load(&id)?.save_after(&[]).len() as u64;
    }
    s.checkpoint()?;
    Ok((path, bytes))
}

/// Every record's heads on a phone, sorted.
fn holdings(s: &Store) -> Result<Vec<(String, Vec<ChangeHash>)>> {
    let mut out = Vec::new();
    for (id, kind) in s.ids()? {
        if kind == "visit" || kind == "opinion" {
            let mut h = s.load(&id)?.heads();
            h.sort();
            out.push((id, h));
        }
    }
    out.sort();
    Ok(out)
}

struct Run {
    ms: f64,
    wire_bytes: u64,
    joins: u64,
}

fn meeting(template: &[PathBuf], dir: &Path, profile: Profile) -> Result<Run> {
    let mut paths = Vec::new();
    for (i, p) in template.iter().enumerate() {
        let to = dir.join(format!("run-phone-{i:02}.sqlite"));
        std::fs::copy(p, &to)?;
        paths.push(to);
    }
    let open = |p: &Path| Store::open(p, Durability::Normal);
    let mut session = MeetSession::serve(
        open(&paths[0])?,
        ServeOptions {
            bind: "127.0.0.1:0".parse()?,
            io_timeout: Duration::from_secs(120),
            ..ServeOptions::default()
        },
    )?;
    let proxy = Proxy::start(session.invite().addr, profile)?;
    let qr = Invite {
        addr: proxy.addr(),
        ..session.invite().clone()
    }
    .qr_text();
    let mut members: Vec<Store> = paths[1..]
        .iter()
        .map(|p| open(p))
        .collect::<Result<_, _>>()?;
    let opts = || JoinOptions {
        timeout: Duration::from_secs(120),
        ..JoinOptions::default()
    };
    let t0 = Instant::now();
    let mut joins = 0;
    let mut reports = Vec::new();
    for m in members.iter_mut() {
        reports.push(join(m, &qr, opts())?);
        joins += 1;
    }
    let last = members.len().saturating_sub(1);
    for m in members.iter_mut().take(last) {
        reports.push(join(m, &qr, opts())?);
        joins += 1;
    }
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let wire_bytes = proxy.counters().total();
    let st = session.stop();
    if let Some(e) = st.peers.iter().find_map(|p| p.error.clone()) {
        bail!("a join failed at the leader: {e}");
    }
    drop(session);
    let all = holdings(&open(&paths[0])?)?;
    for (i, m) in members.iter().enumerate() {
        let mine = holdings(m)?;
        if mine != all {
            let missing = all.iter().filter(|r| !mine.contains(r)).count();
            let extra = mine.iter().filter(|r| !all.contains(r)).count();
            let joins: Vec<_> = reports
                .iter()
                .enumerate()
                .filter(|(k, _)| k % members.len() == i)
                .map(|(_, r)| {
                    (
                        r.sent,
                        r.landed,
                        r.refused.clone(),
                        r.peer_landed,
                        r.peer_refused,
                    )
                })
                .collect();
            bail!(
                "phone {} does not hold every record after the meeting ({missing} of {} missing \
                 or different, {extra} not on the leader's); its joins: {joins:?}",
                i + 1,
                all.len(),
            );
        }
    }
    Ok(Run {
        ms,
        wire_bytes,
        joins,
    })
}

pub fn run(args: &MeetArgs, emit: &mut dyn FnMut(Value)) -> Result<()> {
    if args.phones < 2 || args.phones > 100 || args.photos > args.records {
        bail!("--phones must be 2–100 and --photos at most --records");
    }
    let profile = Profile::WIFI;
    let (group, pool) = group_records(args.phones, args.records, args.photos)?;
    // Seed 200: the test server's actor ([200; 16]) and keys differ from every phone's.
    let t = TestTrust::new(200, &[group.as_str()], T0);
    let dir = tempfile::tempdir()?;
    eprintln!(
        "meet: {} phones × {} records ({} with a thumbnail) …",
        args.phones, args.records, args.photos
    );
    let mut template = Vec::new();
    let mut own = Vec::new();
    for (n, records) in pool.iter().enumerate() {
        let (p, b) = phone(dir.path(), &t, n, &group, records, args.photos)?;
        template.push(p);
        own.push(b);
    }
    let total: u64 = own.iter().sum();
    // Each member's records up to the leader once; every other phone's records down to each
    // member.
    let must_cross: u64 = own[1..].iter().map(|b| b + (total - b)).sum();
    let rtt_ms = profile.one_way_latency.as_secs_f64() * 2000.0;
    let bps = profile.bits_per_second.expect("wifi is limited") as f64;
    let mut runs = Vec::new();
    for s in 0..args.samples.max(1) {
        eprintln!("meet: run {} …", s + 1);
        let run_dir = dir.path().join(format!("run-{s}"));
        std::fs::create_dir_all(&run_dir)?;
        runs.push(meeting(&template, &run_dir, profile)?);
    }
    let joins = runs[0].joins;
    let limit =
        must_cross as f64 * 8.0 / bps * 1000.0 + (joins * ROUND_TRIPS_PER_JOIN) as f64 * rtt_ms;
    let mut ms: Vec<f64> = runs.iter().map(|r| r.ms).collect();
    ms.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let median = percentile(&ms, 0.5);
    let wire = runs.iter().map(|r| r.wire_bytes).max().unwrap_or(0);
    emit(json!({
        "bench": "meet",
        "scenario": format!("{}_phones_{}_records_{}_thumbnails_wifi", args.phones, args.records, args.photos),
        "samples": runs.len(),
        "ms": round(median),
        "ms_min": round(ms[0]),
        "ms_max": round(ms[ms.len() - 1]),
        "limit_ms": round(limit),
        "ratio": round(median / limit),
        "must_cross_bytes": must_cross,
        "wire_bytes": wire,
        "wire_over_must": round(wire as f64 / must_cross as f64),
        "records_bytes_per_phone": total / args.phones as u64,
        "joins": joins,
        "round_trips": joins * ROUND_TRIPS_PER_JOIN,
        "link": "wifi: 20 Mbit/s, 20 ms round trips",
    }));
    Ok(())
}
