//! `sanjin-bench sync`: the sync protocol (issue 3) against a real server in this process, over
//! HTTPS (its self-signed certificate pinned), with the devices' bytes counted at the TCP level
//! by a loopback proxy (`sanjin-netsim`: TLS records, HTTP headers and bodies, both directions).
//!
//! Scenarios (one JSON line each):
//!
//! - `pull_directory`: a freshly enrolled member device's first sync (its group has no records
//!   yet): the directory alone. The setup of the next three, printed because it is the fixed cost
//!   every fresh device pays.
//! - `push_1000`: that device (a member of group-01, up to date) holds 1,000 new visits of its
//!   group from the fixtures, re-created with its own author, and syncs them up.
//! - `pull_1000`: a fresh device of another group-01 member pulls its scope: those 1,000 visits
//!   plus the directory (the peers' "fresh client down").
//! - `edits_10`: the first device edits one field (`end`) of 10 of the visits; its sync plus the
//!   second device's sync bring the edits across.
//! - `pull_10000`: a fresh device of group-08 pulls its scope: 10,000 visits and opinion notes
//!   (pushed in the setup by another group-08 member's device) plus the directory.
//! - `concurrent_N` (100 and 500 by default): N enrolled devices, each with its own store, up to
//!   date, each with 5 one-field edits of its own records, start one sync each at the same
//!   instant (blocking `sanjin_client::sync` on one thread per device, straight to the server,
//!   no proxy): syncs per second and the latency percentiles. Two bursts: `gated`, where a
//!   device holds its answer (in the progress callback) until every device has one, so that
//!   the devices' work of applying the others' changes does not take the server's cores — its
//!   answers per second and time to the answer are the scenario's `syncs_per_s`, `p50_ms`,
//!   `p99_ms`; and `free`, where nothing waits.
//!
//! The reference size of (a) and (b) is the zstd (level 3) compressed compact JSON of the same
//! records, as JSON lines in the fixtures' shape (id, author, time, data), compressed as a whole;
//! of (c) the compact JSON of just the changed fields with their record ids.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use sanjin_client::{Client, ServerUrl, SyncOptions, SyncSummary, Timeouts};
use sanjin_core::domain::RecordData;
use sanjin_core::{Edit, RecordDoc};
use sanjin_fixtures::FixtureRecord;
use sanjin_netsim::{Profile, Proxy};
use sanjin_server::{Config, Running, ServerData, TlsMode};
use sanjin_store::{Durability, Identity, Store};
use serde_json::{Value, json};

use crate::{percentile, round};

/// The fixture scale that gives group-08 ≥ 10,000 visits and opinion notes (417 a scale) and
/// group-01 ≥ 1,000 visits (67 a scale).
const SCALE: u32 = 25;
const PUSH_GROUP: &str = "group-01";
const PULL_GROUP: &str = "group-08";
const EDITS_PER_DEVICE: usize = 5;

/// `sanjin-bench sync`: which scenarios to run.
#[derive(clap::Args, Debug, Clone, Default, PartialEq)]
pub struct SyncArgs {
    /// Only these scenarios (comma-separated: pull_directory, push_1000, pull_1000, edits_10,
    /// pull_10000, concurrent_N); all when not given.
    #[arg(long, value_delimiter = ',', value_name = "SCENARIO,…")]
    pub only: Vec<String>,
}

fn wanted(args: &SyncArgs, name: &str) -> bool {
    args.only.is_empty() || args.only.iter().any(|o| o == name)
}

pub fn run(args: &SyncArgs, emit: &mut dyn FnMut(Value)) -> Result<()> {
    let flow = ["pull_directory", "push_1000", "pull_1000", "edits_10"];
    let mut concurrent: Vec<usize> = vec![];
    for o in &args.only {
        if let Some(n) = o.strip_prefix("concurrent_") {
            concurrent.push(n.parse().with_context(|| format!("scenario {o}"))?);
        } else if !flow.contains(&o.as_str()) && o != "pull_10000" {
            bail!("unknown sync scenario {o}");
        }
    }
    if args.only.is_empty() {
        concurrent = vec![100, 500];
    }
    let need_fixtures = args.only.is_empty()
        || args
            .only
            .iter()
            .any(|o| flow.contains(&o.as_str()) || o == "pull_10000");
    let fx = if need_fixtures {
        eprintln!("generating fixtures at scale {SCALE} …");
        sanjin_fixtures::generate(sanjin_fixtures::DEFAULT_SEED, SCALE)
    } else {
        sanjin_fixtures::generate(sanjin_fixtures::DEFAULT_SEED, 1)
    };
    if flow.iter().any(|s| wanted(args, s)) {
        for line in peer_flow(&fx)? {
            if wanted(args, line["scenario"].as_str().unwrap_or_default()) {
                emit(line);
            }
        }
    }
    if wanted(args, "pull_10000") {
        emit(pull_10000(&fx)?);
    }
    for n in concurrent {
        emit(concurrent_syncs(&fx, n)?);
    }
    Ok(())
}

// ------------------------------------------------------------------ the server and devices

/// A real sanjin server in this process: TLS with its self-signed certificate, the fixtures'
/// directory imported (accounts for its 360 members).
pub(crate) struct Server {
    pub(crate) rt: tokio::runtime::Runtime,
    running: Option<Running>,
    pub(crate) cert_pem: String,
    _dir: tempfile::TempDir,
}

impl Server {
    pub(crate) fn start(directory: &[FixtureRecord]) -> Result<Server> {
        let dir = tempfile::Builder::new()
            .prefix("sanjin-bench-server-")
            .tempdir()?;
        let data_dir = dir.path().join("data");
        let dir_file = dir.path().join("directory.jsonl");
        write_jsonl(&dir_file, directory)?;
        let mut data = ServerData::open(&data_dir)?;
        data.import_directory(&dir_file)?;
        drop(data);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let config = Config::new(
            &data_dir,
            "127.0.0.1:0".parse().expect("an address"),
            TlsMode::SelfSigned { hostnames: vec![] },
        );
        let running = rt.block_on(sanjin_server::spawn(config))?;
        let cert = running
            .certificate()
            .ok_or_else(|| anyhow!("the server has no self-signed certificate"))?;
        let cert_pem = std::fs::read_to_string(cert)?;
        Ok(Server {
            rt,
            running: Some(running),
            cert_pem,
            _dir: dir,
        })
    }

    pub(crate) fn running(&self) -> &Running {
        self.running.as_ref().expect("running until dropped")
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.running().addr()
    }

    pub(crate) fn with_data<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut ServerData) -> T + Send + 'static,
    ) -> Result<T> {
        let state = self.running().state().clone();
        self.rt
            .block_on(state.with_data(f))
            .map_err(|e| anyhow!("{e}"))
    }

    fn code(&self, member: &str) -> Result<String> {
        let m = member.to_string();
        let code = self.with_data(move |d| d.issue_code(&m).map_err(anyhow::Error::from))??;
        Ok(code.code)
    }

    /// The bytes of each change-log entry a member of `group` reads (its group and the
    /// directory), oldest first, excluding entries pushed by `except_device`.
    fn log_sizes(&self, group: &str, except_device: Option<&str>) -> Result<Vec<usize>> {
        let g = group.to_string();
        let except = except_device.unwrap_or("").to_string();
        self.with_data(move |d| -> Result<Vec<usize>> {
            let filter = sanjin_store::server::LogFilter {
                after: 0,
                everything: false,
                group: &g,
                except_origin: Some(&except),
                ..Default::default()
            };
            let mut sizes = Vec::new();
            d.store().log_since(&filter, &mut |row| {
                sizes.push(row.bytes.len());
                true
            })?;
            Ok(sizes)
        })?
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = self.rt.block_on(r.shutdown());
        }
    }
}

fn write_jsonl(path: &Path, records: &[FixtureRecord]) -> Result<()> {
    let mut s = String::new();
    for r in records {
        s.push_str(&serde_json::to_string(r)?);
        s.push('\n');
    }
    std::fs::write(path, s)?;
    Ok(())
}

/// A new device store for `member` in `dir`.
pub(crate) fn new_store(dir: &Path, member: &str, durability: Durability) -> Result<Store> {
    let (device, actor) = sanjin_store::new_device();
    let path = dir.join(format!("{member}-{device}.sqlite"));
    Ok(Store::init(
        &path,
        &Identity {
            member: member.into(),
            device,
            actor,
        },
        durability,
    )?)
}

/// Enrolls `store` with the server at `url` (the server itself or a proxy in front of it).
pub(crate) fn enroll(server: &Server, url: &str, store: &mut Store) -> Result<()> {
    let member = store.identity().member.clone();
    let code = server.code(&member)?;
    sanjin_client::enroll(store, url, &code, Some(&server.cert_pem), "sanjin-bench")?;
    Ok(())
}

fn opts() -> SyncOptions {
    SyncOptions::default()
}

pub(crate) fn sync(store: &mut Store) -> Result<SyncSummary> {
    let s = sanjin_client::sync(store, &opts(), &mut |_| {})?;
    if !s.refused.is_empty() {
        bail!(
            "{} documents refused, the first: {:?}",
            s.refused.len(),
            s.refused[0]
        );
    }
    Ok(s)
}

/// What crossed the proxy during one measured step.
struct Wire {
    ms: f64,
    cpu_ms: f64,
    /// CPU of the device side (the calling thread: `sanjin_client::sync` and its store).
    device_cpu_ms: f64,
    other_cpu_ms: f64,
    up: u64,
    down: u64,
    connections: u64,
}

/// Runs `f` with the proxy's counters reset, and reads them once the connections have gone
/// quiet (a closing TLS alert is sent after the answer is read).
fn on_wire<T>(proxy: &Proxy, f: impl FnOnce() -> Result<T>) -> Result<(T, Wire)> {
    settle(proxy);
    proxy.counters().reset();
    let cpu = CpuMeter::start();
    let device_cpu = thread_cpu_ns();
    let t = Instant::now();
    let out = f()?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    let device_cpu_ms = thread_cpu_ns().saturating_sub(device_cpu) as f64 / 1e6;
    let (cpu_ms, other_cpu_ms) = cpu.read();
    settle(proxy);
    let c = proxy.counters();
    Ok((
        out,
        Wire {
            ms,
            cpu_ms,
            device_cpu_ms,
            other_cpu_ms,
            up: c.up(),
            down: c.down(),
            connections: c.connections(),
        },
    ))
}

/// Waits until no byte has crossed the proxy for 100 ms.
fn settle(proxy: &Proxy) {
    let mut last = proxy.counters().total();
    loop {
        thread::sleep(Duration::from_millis(100));
        let now = proxy.counters().total();
        if now == last {
            return;
        }
        last = now;
    }
}

/// The bytes of one fresh HTTPS connection doing `GET /health`: the TLS handshake and the
/// smallest HTTP exchange, the fixed cost of every sync on a new connection.
fn floor_bytes(server: &Server, proxy: &Proxy) -> Result<u64> {
    let url = ServerUrl::parse(&format!("https://{}", proxy.addr()))?;
    let ((), w) = on_wire(proxy, || {
        let client = Client::new(url, None, Some(&server.cert_pem), Timeouts::default())?;
        client.health()?;
        Ok(())
    })?;
    Ok(w.up + w.down)
}

// ------------------------------------------------------------------ references

/// The records as the device made them, in the fixtures' JSON shape: id, author, time, data.
fn as_made(r: &FixtureRecord, member: &str) -> FixtureRecord {
    FixtureRecord {
        id: r.id.clone(),
        created_by: member.into(),
        created_at_ms: r.created_at_ms,
        events: vec![],
        data: r.data.clone(),
    }
}

/// zstd level 3 of the records' compact JSON, one per line, compressed as a whole. Returns
/// (compressed, uncompressed).
fn reference(records: &[&FixtureRecord]) -> Result<(usize, usize)> {
    let mut s = Vec::new();
    for r in records {
        serde_json::to_writer(&mut s, r)?;
        s.push(b'\n');
    }
    Ok((zstd::bulk::compress(&s, 3)?.len(), s.len()))
}

/// The batches a sequence of entries of these sizes needs under `limit`, packed the way the
/// client packs pushes and the server packs answers (at least one entry each).
fn batches(sizes: impl IntoIterator<Item = usize>, limit: usize) -> usize {
    let mut n = 0;
    let mut size = 0;
    for s in sizes {
        if n == 0 || (size > 0 && size + s > limit) {
            n += 1;
            size = 0;
        }
        size += s;
    }
    n.max(1)
}

/// Re-creates a fixture record on `store` (signed by the store's own actor), queued for the
/// server.
fn make_docs(store: &Store, records: &[FixtureRecord]) -> Result<Vec<RecordDoc>> {
    let author = store.author();
    records
        .iter()
        .map(|r| Ok(RecordDoc::create(&r.id, &r.data, &author, r.created_at_ms)?))
        .collect()
}

fn insert_all(store: &mut Store, docs: &mut [RecordDoc]) -> Result<()> {
    for chunk in docs.chunks_mut(1000) {
        store.insert_batch(chunk, true)?;
    }
    Ok(())
}

fn members_of(fx: &sanjin_fixtures::Fixtures, group: &str) -> Vec<String> {
    fx.directory
        .iter()
        .filter_map(|r| match &r.data {
            RecordData::Member(m) if m.group == group => Some(r.id.clone()),
            _ => None,
        })
        .collect()
}

pub(crate) fn group_of(r: &FixtureRecord) -> Option<&str> {
    match &r.data {
        RecordData::Visit(v) => Some(&v.group),
        RecordData::Opinion(o) => Some(&o.group),
        _ => None,
    }
}

/// One line for a measured exchange of (a)–(c).
#[allow(clippy::too_many_arguments)]
fn line(
    scenario: &str,
    records: usize,
    sums: &[&SyncSummary],
    w: &Wire,
    expected_round_trips: usize,
    changes_bytes: usize,
    (reference_bytes, reference_json_bytes): (usize, usize),
    floor: u64,
    target_ratio: Option<f64>,
    extra: Value,
) -> Value {
    let round_trips: usize = sums.iter().map(|s| s.round_trips).sum();
    let frame_bytes: u64 = sums.iter().map(|s| s.bytes_up + s.bytes_down).sum();
    let bytes = w.up + w.down;
    let ratio = bytes as f64 / reference_bytes as f64;
    let o = opts();
    let mut v = json!({
        "bench": "sync",
        "scenario": scenario,
        "records": records,
        "round_trips": round_trips,
        "expected_round_trips": expected_round_trips,
        "batch_limit_bytes": o.batch_limit_bytes,
        "max_response_bytes": o.max_response_bytes,
        "bytes": bytes,
        "bytes_up": w.up,
        "bytes_down": w.down,
        "connections": w.connections,
        "frame_bytes": frame_bytes,
        "changes_bytes": changes_bytes,
        "tls_http_floor_bytes": floor,
        "reference_bytes": reference_bytes,
        "reference_json_bytes": reference_json_bytes,
        "ratio": round(ratio),
        "ms": round(w.ms),
        "cpu_ms": round(w.cpu_ms),
        "device_cpu_ms": round(w.device_cpu_ms),
        "other_cpu_ms": round(w.other_cpu_ms),
        "sent": sums.iter().map(|s| s.sent).sum::<usize>(),
        "received": sums.iter().map(|s| s.received).sum::<usize>(),
    });
    if let Some(t) = target_ratio {
        v["target_ratio"] = json!(t);
        v["meets_bytes"] = json!(ratio <= t);
    }
    v["meets_round_trips"] = json!(round_trips <= expected_round_trips);
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    v
}

// ------------------------------------------------------------------ (a), the fresh pull, (c)

/// The peers' workload: 1,000 visits up from one device, a fresh device pulls them, 10 edits
/// reach it. Also the directory-only first sync.
fn peer_flow(fx: &sanjin_fixtures::Fixtures) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let server = Server::start(&fx.directory)?;
    let proxy = Proxy::start(server.addr(), Profile::LOOPBACK)?;
    let url = format!("https://{}", proxy.addr());
    let floor = floor_bytes(&server, &proxy)?;
    let dir = tempfile::Builder::new()
        .prefix("sanjin-bench-devices-")
        .tempdir()?;
    let members = members_of(fx, PUSH_GROUP);
    let (ma, mb) = match members.as_slice() {
        [a, b, ..] => (a.clone(), b.clone()),
        _ => bail!("{PUSH_GROUP} has fewer than two members"),
    };
    let directory: Vec<&FixtureRecord> = fx.directory.iter().collect();

    // A fresh device: its first sync pulls the directory.
    let mut a = new_store(dir.path(), &ma, Durability::Full)?;
    enroll(&server, &url, &mut a)?;
    let dir_sizes = server.log_sizes(PUSH_GROUP, None)?;
    let (s, w) = on_wire(&proxy, || sync(&mut a))?;
    out.push(line(
        "pull_directory",
        directory.len(),
        &[&s],
        &w,
        batches(
            dir_sizes.iter().copied(),
            opts().max_response_bytes as usize,
        ),
        dir_sizes.iter().sum(),
        reference(&directory)?,
        floor,
        None,
        json!({ "member": ma }),
    ));

    // (a) push_1000.
    let visits: Vec<FixtureRecord> = fx
        .visits
        .iter()
        .filter(|r| group_of(r) == Some(PUSH_GROUP))
        .take(1000)
        .cloned()
        .collect();
    if visits.len() < 1000 {
        bail!(
            "the fixtures hold only {} visits of {PUSH_GROUP}",
            visits.len()
        );
    }
    let mut docs = make_docs(&a, &visits)?;
    let push_sizes: Vec<usize> = docs
        .iter_mut()
        .map(|d| {
            let heads = d.heads().len();
            d.id().len() + 32 * heads + d.save_after(&[]).len() + 16
        })
        .collect();
    let push_changes: usize = docs.iter_mut().map(|d| d.save_after(&[]).len()).sum();
    insert_all(&mut a, &mut docs)?;
    let made: Vec<FixtureRecord> = visits.iter().map(|r| as_made(r, &ma)).collect();
    let made_refs: Vec<&FixtureRecord> = made.iter().collect();
    let (s, w) = on_wire(&proxy, || sync(&mut a))?;
    if s.sent != 1000 || s.still_queued != 0 {
        bail!(
            "push_1000: sent {}, still queued {}",
            s.sent,
            s.still_queued
        );
    }
    out.push(line(
        "push_1000",
        1000,
        &[&s],
        &w,
        batches(push_sizes, opts().batch_limit_bytes),
        push_changes,
        reference(&made_refs)?,
        floor,
        Some(1.5),
        json!({ "member": ma }),
    ));

    // The fresh pull of those 1,000 (and the directory).
    let mut b = new_store(dir.path(), &mb, Durability::Full)?;
    enroll(&server, &url, &mut b)?;
    let b_sizes = server.log_sizes(PUSH_GROUP, None)?;
    let (s, w) = on_wire(&proxy, || sync(&mut b))?;
    if s.received != 1000 + directory.len() {
        bail!("pull_1000: received {} documents", s.received);
    }
    let mut pulled: Vec<&FixtureRecord> = directory.clone();
    pulled.extend(made.iter());
    out.push(line(
        "pull_1000",
        1000 + directory.len(),
        &[&s],
        &w,
        batches(b_sizes.iter().copied(), opts().max_response_bytes as usize),
        b_sizes.iter().sum(),
        reference(&pulled)?,
        floor,
        Some(1.5),
        json!({ "member": mb, "includes_directory": true }),
    ));

    // (c) edits_10: one field (`end`, as the peers' `ended_at`) of 10 visits on A, to B.
    let mut changed = Vec::new();
    let now = sanjin_store::now_ms();
    let mut edit_changes = 0usize;
    for (i, v) in visits
        .iter()
        .step_by(visits.len() / 10)
        .take(10)
        .enumerate()
    {
        let RecordData::Visit(data) = &v.data else {
            bail!("not a visit");
        };
        let end = (data.end + chrono::Duration::minutes(30 + i as i64))
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string();
        let edit = Edit::Set {
            field: "end".into(),
            value: json!(end),
        };
        let (size, _) = a.update(&v.id, |d, by| {
            let before = d.heads();
            d.edit(by, now, std::slice::from_ref(&edit))?;
            Ok(d.save_after(&before).len())
        })?;
        edit_changes += size;
        changed.push(json!({ "id": v.id, "end": end }));
    }
    let mut json_lines = Vec::new();
    for c in &changed {
        serde_json::to_writer(&mut json_lines, c)?;
        json_lines.push(b'\n');
    }
    let edits_reference = (
        zstd::bulk::compress(&json_lines, 3)?.len(),
        json_lines.len(),
    );
    let ((sa, sb), w) = on_wire(&proxy, || {
        let sa = sync(&mut a)?;
        let sb = sync(&mut b)?;
        Ok((sa, sb))
    })?;
    if sa.sent != 10 || sb.received != 10 {
        bail!("edits_10: sent {}, received {}", sa.sent, sb.received);
    }
    out.push(line(
        "edits_10",
        10,
        &[&sa, &sb],
        &w,
        2,
        edit_changes,
        edits_reference,
        floor,
        Some(2.0),
        json!({
            "round_trips_sender": sa.round_trips,
            "round_trips_receiver": sb.round_trips,
            "field": "end",
        }),
    ));
    Ok(out)
}

// ------------------------------------------------------------------ (b) pull_10000

fn pull_10000(fx: &sanjin_fixtures::Fixtures) -> Result<Value> {
    let server = Server::start(&fx.directory)?;
    let proxy = Proxy::start(server.addr(), Profile::LOOPBACK)?;
    let url = format!("https://{}", proxy.addr());
    let floor = floor_bytes(&server, &proxy)?;
    let dir = tempfile::Builder::new()
        .prefix("sanjin-bench-devices-")
        .tempdir()?;
    let members = members_of(fx, PULL_GROUP);
    let (ma, mb) = match members.as_slice() {
        [a, b, ..] => (a.clone(), b.clone()),
        _ => bail!("{PULL_GROUP} has fewer than two members"),
    };
    // The group's visits and opinion notes in the order they were recorded, the first 10,000.
    let mut records: Vec<&FixtureRecord> = fx
        .visits
        .iter()
        .chain(&fx.opinions)
        .filter(|r| group_of(r) == Some(PULL_GROUP))
        .collect();
    records.sort_by_key(|r| r.created_at_ms);
    records.truncate(10_000);
    if records.len() < 10_000 {
        bail!(
            "the fixtures hold only {} records of {PULL_GROUP}",
            records.len()
        );
    }
    let records: Vec<FixtureRecord> = records.into_iter().map(|r| as_made(r, &ma)).collect();
    let visits = records
        .iter()
        .filter(|r| matches!(r.data, RecordData::Visit(_)))
        .count();

    // Setup (not measured): a device of the group records and pushes them.
    eprintln!("pull_10000: pushing 10,000 records in the setup …");
    let mut a = new_store(dir.path(), &ma, Durability::Normal)?;
    enroll(&server, &url, &mut a)?;
    let mut docs = make_docs(&a, &records)?;
    insert_all(&mut a, &mut docs)?;
    drop(docs);
    let s = sync(&mut a)?;
    if s.sent != 10_000 {
        bail!("pull_10000 setup: sent {}", s.sent);
    }

    let mut b = new_store(dir.path(), &mb, Durability::Full)?;
    enroll(&server, &url, &mut b)?;
    let sizes = server.log_sizes(PULL_GROUP, None)?;
    let (s, w) = on_wire(&proxy, || sync(&mut b))?;
    if s.received != 10_000 + fx.directory.len() {
        bail!("pull_10000: received {} documents", s.received);
    }
    let mut pulled: Vec<&FixtureRecord> = fx.directory.iter().collect();
    pulled.extend(records.iter());
    Ok(line(
        "pull_10000",
        10_000 + fx.directory.len(),
        &[&s],
        &w,
        batches(sizes.iter().copied(), opts().max_response_bytes as usize),
        sizes.iter().sum(),
        reference(&pulled)?,
        floor,
        Some(1.5),
        json!({
            "member": mb,
            "group": PULL_GROUP,
            "visits": visits,
            "opinions": 10_000 - visits,
            "includes_directory": true,
        }),
    ))
}

// ------------------------------------------------------------------ (d) concurrent

/// CPU time of the calling thread (ns), from `/proc/thread-self/schedstat`.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU time of the whole process (ms), from `/proc/self/stat` (user + system, 100 Hz ticks).
fn process_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which is in parentheses).
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = f.get(11)?.parse().ok()?;
            let stime: f64 = f.get(12)?.parse().ok()?;
            Some((utime + stime) * 10.0)
        })
        .unwrap_or(0.0)
}

/// CPU time all processes on the machine have used (ms), from `/proc/stat`: a run during which
/// other processes were busy (`other_cpu_ms`) was not measured alone.
fn machine_busy_ms() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let f: Vec<f64> = s
                .lines()
                .next()?
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal
            let busy = f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)? + f.get(7)?;
            Some(busy * 10.0)
        })
        .unwrap_or(0.0)
}

/// CPU used by this process and by everything else on the machine while `f` ran.
struct CpuMeter {
    process: f64,
    machine: f64,
}

impl CpuMeter {
    fn start() -> CpuMeter {
        CpuMeter {
            process: process_cpu_ms(),
            machine: machine_busy_ms(),
        }
    }

    /// (this process, other processes) in ms.
    fn read(&self) -> (f64, f64) {
        let p = process_cpu_ms() - self.process;
        let m = machine_busy_ms() - self.machine;
        (p, (m - p).max(0.0))
    }
}

/// Runs `f` on each item with `workers` threads.
fn parallel<T: Send, R: Send>(
    items: Vec<T>,
    workers: usize,
    f: impl Fn(T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let n = items.len();
    let queue = Mutex::new(items.into_iter().enumerate().collect::<Vec<_>>());
    let results = Mutex::new((0..n).map(|_| None).collect::<Vec<Option<R>>>());
    let error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let Some((i, item)) = queue.lock().expect("no panics").pop() else {
                        return;
                    };
                    match f(item) {
                        Ok(r) => results.lock().expect("no panics")[i] = Some(r),
                        Err(e) => {
                            *error.lock().expect("no panics") = Some(e);
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = error.into_inner().expect("no panics") {
        return Err(e);
    }
    Ok(results
        .into_inner()
        .expect("no panics")
        .into_iter()
        .map(|r| r.expect("every item done"))
        .collect())
}

/// Where the simulated devices keep their stores: a RAM disk if there is one, so that their
/// SQLite work costs the load generator as little as it can.
pub(crate) fn device_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Holds every device after it has the server's answer until all devices have theirs: the
/// devices' own work on the answer (applying the others' changes to their stores) then waits
/// until the server has answered everyone, so the first burst measures the server and not the
/// load generator sharing its two cores.
struct Gate {
    count: Mutex<usize>,
    all: std::sync::Condvar,
    n: usize,
}

impl Gate {
    fn new(n: usize) -> Gate {
        Gate {
            count: Mutex::new(0),
            all: std::sync::Condvar::new(),
            n,
        }
    }

    fn arrive(&self) {
        let mut c = self.count.lock().expect("no panics");
        *c += 1;
        if *c >= self.n {
            self.all.notify_all();
        }
    }

    fn arrive_and_wait(&self) {
        let mut c = self.count.lock().expect("no panics");
        *c += 1;
        if *c >= self.n {
            self.all.notify_all();
        }
        while *c < self.n {
            c = self.all.wait(c).expect("no panics");
        }
    }
}

/// What one device's sync in a burst did.
struct DeviceRun {
    /// From the start of the sync to the server's first answer (acks applied).
    response_ms: f64,
    /// From the start to the end of the sync (the answer applied to the store).
    complete_ms: f64,
    responded: Instant,
    done: Instant,
    cpu_ns: u64,
    summary: Option<SyncSummary>,
    error: Option<String>,
}

/// The figures of one burst.
struct Burst {
    runs: Vec<DeviceRun>,
    start: Instant,
    process_cpu_ms: f64,
    other_cpu_ms: f64,
    log_entries: u64,
}

impl Burst {
    fn figures(&self, gated: bool) -> Value {
        let n = self.runs.len();
        let mut resp: Vec<f64> = self.runs.iter().map(|r| r.response_ms).collect();
        let mut comp: Vec<f64> = self.runs.iter().map(|r| r.complete_ms).collect();
        resp.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        comp.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        let last_resp = self
            .runs
            .iter()
            .map(|r| r.responded)
            .max()
            .unwrap_or(self.start);
        let last_done = self.runs.iter().map(|r| r.done).max().unwrap_or(self.start);
        let resp_s = last_resp.duration_since(self.start).as_secs_f64();
        let done_s = last_done.duration_since(self.start).as_secs_f64();
        let devices_cpu_ms = self.runs.iter().map(|r| r.cpu_ns).sum::<u64>() as f64 / 1e6;
        let ok: Vec<&SyncSummary> = self
            .runs
            .iter()
            .filter_map(|r| r.summary.as_ref())
            .collect();
        let failed = self.runs.iter().filter(|r| r.error.is_some()).count()
            + ok.iter()
                .filter(|s| !s.refused.is_empty() || s.still_queued > 0)
                .count();
        let mut v = json!({
            "gated": gated,
            "answered_per_s": round(n as f64 / resp_s),
            "answer_p50_ms": round(percentile(&resp, 0.5)),
            "answer_p99_ms": round(percentile(&resp, 0.99)),
            "completed_per_s": round(n as f64 / done_s),
            "complete_p50_ms": round(percentile(&comp, 0.5)),
            "complete_p99_ms": round(percentile(&comp, 0.99)),
            "failed": failed,
            "first_error": self.runs.iter().find_map(|r| r.error.clone()),
            "round_trips": ok.iter().map(|s| s.round_trips).sum::<usize>(),
            "docs_sent": ok.iter().map(|s| s.sent).sum::<usize>(),
            "docs_received": ok.iter().map(|s| s.received).sum::<usize>(),
            "log_entries": self.log_entries,
            "process_cpu_ms": round(self.process_cpu_ms),
            "other_cpu_ms": round(self.other_cpu_ms),
            "devices_cpu_ms": round(devices_cpu_ms),
            "server_cpu_ms_per_sync": round((self.process_cpu_ms - devices_cpu_ms).max(0.0) / n as f64),
        });
        if gated {
            // The server's figures: answers per second, and the time to the answer.
            v["syncs_per_s"] = v["answered_per_s"].clone();
            v["p50_ms"] = v["answer_p50_ms"].clone();
            v["p99_ms"] = v["answer_p99_ms"].clone();
        } else {
            v["syncs_per_s"] = v["completed_per_s"].clone();
            v["p50_ms"] = v["complete_p50_ms"].clone();
            v["p99_ms"] = v["complete_p99_ms"].clone();
        }
        v
    }
}

/// A simulated device: its store and the ids of its own visits.
type Device = (Store, Vec<String>);

/// Every device makes `EDITS_PER_DEVICE` one-field edits of its own visits, then all start one
/// `sanjin_client::sync` at the same instant, one thread each, straight to the server.
fn burst(
    server: &Server,
    devices: Vec<Device>,
    round: usize,
    gated: bool,
) -> Result<(Vec<Device>, Burst)> {
    let n = devices.len();
    let now = sanjin_store::now_ms();
    let devices = parallel(devices, 8, |(mut s, ids)| {
        for (k, id) in ids.iter().enumerate() {
            let edit = Edit::Set {
                field: "title".into(),
                value: json!(format!("修订后的活动主题 第{round}轮 {k}")),
            };
            s.update(id, |d, by| d.edit(by, now, std::slice::from_ref(&edit)))?;
        }
        Ok((s, ids))
    })?;
    let log_before = server.with_data(|d| d.max_seq().map_err(anyhow::Error::from))??;
    let barrier = Arc::new(Barrier::new(n + 1));
    let gate = Arc::new(Gate::new(n));
    let mut handles = Vec::with_capacity(n);
    for (mut s, ids) in devices {
        let (barrier, gate) = (barrier.clone(), gate.clone());
        handles.push(thread::Builder::new().name("device".into()).spawn(
            move || -> (Store, Vec<String>, DeviceRun) {
                barrier.wait();
                let cpu = thread_cpu_ns();
                let t = Instant::now();
                let mut responded: Option<Instant> = None;
                let r = sanjin_client::sync(&mut s, &opts(), &mut |p| {
                    if responded.is_none() && matches!(p, sanjin_client::Progress::Answered { .. })
                    {
                        responded = Some(Instant::now());
                        if gated {
                            gate.arrive_and_wait();
                        }
                    }
                });
                let done = Instant::now();
                if responded.is_none() && gated {
                    gate.arrive();
                }
                let responded = responded.unwrap_or(done);
                let ms = |i: Instant| i.duration_since(t).as_secs_f64() * 1000.0;
                let run = DeviceRun {
                    response_ms: ms(responded),
                    complete_ms: ms(done),
                    responded,
                    done,
                    cpu_ns: thread_cpu_ns().saturating_sub(cpu),
                    error: r.as_ref().err().map(|e| e.to_string()),
                    summary: r.ok(),
                };
                (s, ids, run)
            },
        )?);
    }
    let cpu = CpuMeter::start();
    barrier.wait();
    let start = Instant::now();
    let mut devices = Vec::with_capacity(n);
    let mut runs = Vec::with_capacity(n);
    for h in handles {
        let (s, ids, run) = h.join().map_err(|_| anyhow!("a device thread panicked"))?;
        devices.push((s, ids));
        runs.push(run);
    }
    let (process_cpu_ms, other_cpu_ms) = cpu.read();
    let log_after = server.with_data(|d| d.max_seq().map_err(anyhow::Error::from))??;
    Ok((
        devices,
        Burst {
            runs,
            start,
            process_cpu_ms,
            other_cpu_ms,
            log_entries: log_after - log_before,
        },
    ))
}

fn concurrent_syncs(fx: &sanjin_fixtures::Fixtures, n: usize) -> Result<Value> {
    let server = Server::start(&fx.directory)?;
    let url = format!("https://{}", server.addr());
    let dir = tempfile::Builder::new()
        .prefix("sanjin-bench-devices-")
        .tempdir_in(device_root())?;
    // Devices are dealt to the groups in turn, and within a group to its members in turn (at
    // 500 devices some members have two phones): about n/12 devices per group.
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &fx.directory {
        if let RecordData::Member(m) = &r.data {
            groups
                .entry(m.group.clone())
                .or_default()
                .push(r.id.clone());
        }
    }
    let groups: Vec<(String, Vec<String>)> = groups.into_iter().collect();
    let members: Vec<(String, String)> = (0..n)
        .map(|i| {
            let (g, ms) = &groups[i % groups.len()];
            (ms[(i / groups.len()) % ms.len()].clone(), g.clone())
        })
        .collect();
    let mut by_group: BTreeMap<String, Vec<&FixtureRecord>> = BTreeMap::new();
    for v in &fx.visits {
        if let Some(g) = group_of(v) {
            by_group.entry(g.to_string()).or_default().push(v);
        }
    }
    eprintln!("concurrent_{n}: enrolling {n} devices, each pushing {EDITS_PER_DEVICE} visits …");
    let workers = 8;
    // Setup 1: enroll, record 5 visits of the group, sync (pushes them, pulls the directory).
    let devices = parallel((0..n).collect(), workers, |i| {
        let (member, group) = &members[i];
        let mut s = new_store(dir.path(), member, Durability::Normal)?;
        enroll(&server, &url, &mut s)?;
        let pool = by_group
            .get(group)
            .ok_or_else(|| anyhow!("no visits of {group}"))?;
        let author = s.author();
        let mut ids = Vec::new();
        for k in 0..EDITS_PER_DEVICE {
            let v = pool[(i * EDITS_PER_DEVICE + k) % pool.len()];
            let id = sanjin_store::new_record_id();
            let mut doc = RecordDoc::create(&id, &v.data, &author, v.created_at_ms)?;
            s.insert(&mut doc, true)?;
            ids.push(id);
        }
        sync(&mut s)?;
        Ok((s, ids))
    })?;
    // Setup 2: everyone pulls what the others pushed: all devices are up to date.
    let up_to_date = |devices| {
        parallel(devices, workers, |(mut s, ids): (Store, Vec<String>)| {
            sync(&mut s)?;
            Ok((s, ids))
        })
    };
    let devices = up_to_date(devices)?;
    eprintln!("concurrent_{n}: {n} syncs at once, the devices' work held until all are answered …");
    let (devices, gated) = burst(&server, devices, 1, true)?;
    let devices = up_to_date(devices)?;
    eprintln!("concurrent_{n}: {n} syncs at once, free-running …");
    let (_, free) = burst(&server, devices, 2, false)?;
    let g = gated.figures(true);
    let mut v = json!({
        "bench": "sync",
        "scenario": format!("concurrent_{n}"),
        "devices": n,
        "groups": groups.len(),
        "changes_per_device": EDITS_PER_DEVICE,
        "syncs_per_s": g["syncs_per_s"],
        "p50_ms": g["p50_ms"],
        "p99_ms": g["p99_ms"],
        "server_cpu_ms_per_sync": g["server_cpu_ms_per_sync"],
        "gated": g,
        "free": free.figures(false),
    });
    if n >= 500 {
        let sps = v["syncs_per_s"].as_f64().unwrap_or(0.0);
        let p99 = v["p99_ms"].as_f64().unwrap_or(f64::MAX);
        v["meets_target"] = json!(sps >= 300.0 && p99 < 1000.0);
    }
    Ok(v)
}
