//! sanjin-sim: a deterministic simulated network for sanjin's sync (issue 11), in the manner of
//! samod's test harness. Many devices (real `sanjin_store::Store` files, each synced by the
//! real client driver of the `sanjin_sync` engine) and a server (a real
//! `sanjin_server::ServerData`, its exchange called in process) in one process, on one thread,
//! everything drawn from one `u64` seed: members write and edit records between steps; requests
//! are lost, duplicated, delayed and delivered late (reordered); answers are lost or cut; devices
//! crash between any two store commits and the server between exchanges or after a commit,
//! and both restart from their files. After a final clean round the invariants are checked:
//! every replica converges to the server's heads, nothing the server acknowledged is lost,
//! nothing is logged twice, every outbox drained.
//!
//! It is a test tool: **never** a dependency of a production crate (it enables the engine's
//! `fault-injection` feature). No sockets, no TLS, no HTTP, no clock in what it decides.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sanjin_client::{Error, SyncOptions, Transport, meta};
use sanjin_core::domain::{Chapter, ChapterLevel, Group, Member, RecordData};
use sanjin_core::protocol::{SyncRequest, SyncResponse};
use sanjin_core::sign::{DeviceCert, DeviceKey, split_changes};
use sanjin_core::{ChangeHash, Edit, RecordDoc, testdata};
use sanjin_server::{EnrollRequest, ServerData};
use sanjin_store::{Durability, Identity, Store};
use sanjin_sync::device::Fault;

/// A small, self-contained PRNG (SplitMix64): the same seed gives the same run everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `per_mille` / 1000.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.below(1000) < u64::from(per_mille)
    }

    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            let r = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
        out
    }
}

/// How often each fault strikes, per mille of the occasions it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faults {
    /// A request never reaches the server.
    pub lose_request: u32,
    /// A request reaches the server twice.
    pub duplicate: u32,
    /// A copy of a request is held back and delivered later, after others (reordering).
    pub delay: u32,
    /// The server's answer never reaches the device.
    pub lose_answer: u32,
    /// The answer arrives cut in the middle.
    pub cut_answer: u32,
    /// The server crashes (before the exchange, or after committing it but before answering).
    pub server_crash: u32,
    /// A device crashes between two steps that write its store.
    pub device_crash: u32,
    /// Per step: the server's folder is backed up (kept for a later restore).
    pub backup: u32,
    /// Per step: the server is restored from its backup (losing what it wrote since: devices
    /// get `resync` and run the fallback).
    pub restore: u32,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            lose_request: 80,
            duplicate: 80,
            delay: 80,
            lose_answer: 80,
            cut_answer: 30,
            server_crash: 30,
            device_crash: 60,
            backup: 40,
            restore: 25,
        }
    }
}

/// One simulation's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub devices: usize,
    pub steps: usize,
    pub faults: Faults,
    /// The engine broken on purpose: the cursor committed before the data it covers.
    pub broken: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            devices: 3,
            steps: 24,
            faults: Faults::default(),
            broken: false,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub seed: u64,
    pub records: usize,
    pub edits: usize,
    pub syncs: usize,
    /// Syncs that stopped early (network given up, cut answer, crash).
    pub interrupted: usize,
    pub device_crashes: usize,
    pub server_crashes: usize,
    /// Times the server was restored from a backup.
    pub restores: usize,
    /// Syncs that ran the per-document fallback to completion.
    pub resyncs: usize,
    pub exchanges: usize,
    /// Changes the server acknowledged (checked to survive).
    pub acked_changes: usize,
}

/// An invariant that did not hold, or a step that failed where it must not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub seed: u64,
    pub what: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seed {}: {}", self.seed, self.what)
    }
}

const GROUP: &str = "group-01";

struct Server {
    dir: PathBuf,
    backup: Option<PathBuf>,
    data: Option<ServerData>,
    /// (document, change) the server acknowledged to some device.
    acked: BTreeSet<(String, ChangeHash)>,
    exchanges: usize,
    crashes: usize,
}

impl Server {
    fn data(&mut self) -> &mut ServerData {
        let dir = self.dir.clone();
        self.data
            .get_or_insert_with(|| ServerData::open(&dir).expect("the server's data reopens"))
    }

    fn crash(&mut self) {
        self.data = None;
        self.crashes += 1;
    }

    /// A copy of the server's folder, taken while it is closed.
    fn back_up(&mut self) {
        self.data = None;
        let to = self.dir.with_extension("backup");
        let _ = std::fs::remove_dir_all(&to);
        copy_dir(&self.dir, &to).expect("a backup");
        self.backup = Some(to);
    }

    /// The server's folder as the backup left it. What the server acknowledged since is kept
    /// by the devices, which give it back through the fallback. Returns whether there was one.
    fn restore(&mut self) -> bool {
        let Some(from) = &self.backup else {
            return false;
        };
        self.data = None;
        std::fs::remove_dir_all(&self.dir).expect("the server's folder");
        copy_dir(from, &self.dir).expect("a restore");
        true
    }

    /// One exchange, in process: authenticate, answer (committed before it returns).
    fn handle(&mut self, bearer: &str, frame: &[u8]) -> Result<Vec<u8>, Error> {
        self.exchanges += 1;
        let data = self.data();
        let req = SyncRequest::decode(frame).map_err(|e| Error::Decode(e.to_string()))?;
        let caller = data
            .authenticate(Some(&format!("Bearer {bearer}")))
            .map_err(|_| Error::Http {
                status: 401,
                code: "unauthorized".into(),
            })?;
        let out = data.sync(&caller, &req).map_err(|e| Error::Http {
            status: 500,
            code: e.to_string(),
        })?;
        let resp = SyncResponse::decode(&out.response).map_err(|e| Error::Decode(e.to_string()))?;
        for &i in &resp.acks {
            if let Some(p) = req.pushes.get(i as usize) {
                for (h, _) in split_changes(&p.changes) {
                    self.acked.insert((p.doc_id.clone(), h));
                }
            }
        }
        Ok(out.response)
    }
}

struct Device {
    path: PathBuf,
    store: Option<Store>,
    bearer: String,
}

impl Device {
    fn store(&mut self) -> &mut Store {
        let path = self.path.clone();
        self.store.get_or_insert_with(|| {
            Store::open(&path, Durability::Normal).expect("a device store reopens")
        })
    }

    fn crash(&mut self) {
        self.store = None;
    }
}

/// The network between one device and the server during one sync.
struct Link<'a> {
    rng: &'a mut Rng,
    server: &'a mut Server,
    delayed: &'a mut Vec<(String, Vec<u8>)>,
    bearer: String,
    faults: Faults,
    crashed: bool,
}

const CRASH: &str = "simulated crash";

impl Transport for Link<'_> {
    fn exchange(&mut self, frame: &[u8]) -> Result<Vec<u8>, Error> {
        let f = self.faults;
        // An old request held back arrives now, before this one (its answer goes nowhere).
        if !self.delayed.is_empty() && self.rng.chance(300) {
            let i = self.rng.below(self.delayed.len() as u64) as usize;
            let (bearer, old) = self.delayed.swap_remove(i);
            let _ = self.server.handle(&bearer, &old);
        }
        if self.rng.chance(f.lose_request) {
            return Err(Error::Network("request lost".into()));
        }
        if self.rng.chance(f.server_crash) {
            self.server.crash();
            return Err(Error::Network("server down".into()));
        }
        let mut answer = self.server.handle(&self.bearer, frame)?;
        if self.rng.chance(f.duplicate) {
            answer = self.server.handle(&self.bearer, frame)?;
        }
        if self.rng.chance(f.delay) {
            self.delayed.push((self.bearer.clone(), frame.to_vec()));
        }
        if self.rng.chance(f.server_crash) {
            // Committed, then the server died before answering.
            self.server.crash();
            return Err(Error::Network("answer lost: server crashed".into()));
        }
        if self.rng.chance(f.lose_answer) {
            return Err(Error::Network("answer lost".into()));
        }
        if self.rng.chance(f.cut_answer) {
            answer.truncate(answer.len() / 2);
        }
        Ok(answer)
    }

    fn between(&mut self) -> Result<(), Error> {
        if self.rng.chance(self.faults.device_crash) {
            self.crashed = true;
            return Err(Error::Io(CRASH.into()));
        }
        Ok(())
    }

    fn request_id(&mut self) -> [u8; 16] {
        self.rng.bytes()
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex from the server"))
        .collect()
}

/// Where the simulation's files go: memory when the machine has it (`/dev/shm`).
fn temp_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::Builder::new()
            .prefix("sanjin-sim")
            .tempdir_in(shm)
    {
        return d;
    }
    tempfile::tempdir().expect("a temporary folder")
}

struct World {
    /// `SANJIN_SIM_TRACE=1`: every step on stderr (to read a failing seed).
    trace: bool,
    rng: Rng,
    cfg: Config,
    server: Server,
    devices: Vec<Device>,
    delayed: Vec<(String, Vec<u8>)>,
    clock: i64,
    report: Report,
}

impl World {
    fn new(seed: u64, cfg: Config, dir: &Path) -> World {
        let mut rng = Rng::new(seed);
        let mut server = Server {
            dir: dir.join("server"),
            backup: None,
            data: None,
            acked: BTreeSet::new(),
            exchanges: 0,
            crashes: 0,
        };
        let data = server.data();
        data.add_record(
            "chapter-01",
            &RecordData::Chapter(Chapter {
                name: "市政协".into(),
                level: ChapterLevel::City,
                parent: None,
            }),
        )
        .expect("a chapter");
        data.add_record(
            GROUP,
            &RecordData::Group(Group {
                name: "第一活动组".into(),
                chapter: "chapter-01".into(),
                committee: None,
                leader: "member-0099".into(),
                contact_points: vec![],
                legal_advisory: false,
            }),
        )
        .expect("a group");
        let mut devices = Vec::new();
        for n in 0..cfg.devices {
            let member = format!("member-{:04}", n + 1);
            let data = server.data();
            data.add_member(
                &member,
                &Member {
                    name: format!("委员{n}"),
                    chapter: "chapter-01".into(),
                    committee: None,
                    group: GROUP.into(),
                    sector: String::new(),
                },
                false,
            )
            .expect("a member account");
            let code = data.issue_code(&member).expect("an enrollment code");
            let device = format!("device-{n:02}");
            let actor: [u8; 16] = rng.bytes();
            let key = DeviceKey::from_seed(rng.bytes());
            let e = data
                .enroll(&EnrollRequest {
                    code: code.code,
                    device_name: device.clone(),
                    device_id: Some(device.clone()),
                    actor: Some(hex(&actor)),
                    member: Some(member.clone()),
                    public_key: Some(hex(&key.public())),
                })
                .expect("enrollment");
            let path = dir.join(format!("{device}.sqlite"));
            let identity = Identity {
                member: member.clone(),
                device: device.clone(),
                actor: actor.to_vec(),
            };
            let mut store =
                Store::init(&path, &identity, Durability::Normal).expect("a device store");
            let server_cert = DeviceCert::decode(&unhex(&e.server_cert)).expect("server cert");
            let cert = DeviceCert::decode(&unhex(e.cert.as_deref().expect("a device cert")))
                .expect("device cert");
            for (k, v) in [
                (meta::SERVER, "http://127.0.0.1:1".to_string()),
                (meta::DEVICE_ID, e.device_id.clone()),
                (meta::SECRET, e.secret.clone()),
                (meta::MEMBER, member.clone()),
                (meta::ROLE, "member".into()),
                (meta::GROUP, GROUP.into()),
                (meta::EPOCH, e.server_epoch.clone()),
                (meta::CURSOR, "0".into()),
                (meta::SERVER_CERT, e.server_cert.clone()),
            ] {
                store.set_meta(k, Some(&v)).expect("metadata");
            }
            store.put_cert(&server_cert).expect("cert");
            store.put_cert(&cert).expect("cert");
            store.set_signing_key(&key).expect("key");
            devices.push(Device {
                path,
                store: Some(store),
                bearer: format!("{}.{}", e.device_id, e.secret),
            });
        }
        World {
            trace: std::env::var_os("SANJIN_SIM_TRACE").is_some(),
            rng,
            cfg,
            server,
            devices,
            delayed: Vec::new(),
            clock: 1_764_000_000_000,
            report: Report {
                seed,
                ..Report::default()
            },
        }
    }

    fn tick(&mut self) -> i64 {
        self.clock += 1 + self.rng.below(5_000) as i64;
        self.clock
    }

    fn write(&mut self, d: usize) {
        let now = self.tick();
        let n = self.rng.next_u64();
        let id = format!("sim-{:016x}", n);
        let mut v = testdata::visit();
        v.title = format!("走访 {}", n % 1000);
        let store = self.devices[d].store();
        let author = store.author();
        let mut doc =
            RecordDoc::create(&id, &RecordData::Visit(v), &author, now).expect("a valid visit");
        store.insert(&mut doc, true).expect("a record saves");
        self.report.records += 1;
        self.note(|| format!("device {d} wrote {id}"));
    }

    fn edit(&mut self, d: usize) {
        let now = self.tick();
        let pick = self.rng.next_u64();
        let text = format!("补充 {}", pick % 997);
        let store = self.devices[d].store();
        let ids: Vec<String> = store
            .ids()
            .expect("ids")
            .into_iter()
            .filter(|(id, _)| id.starts_with("sim-"))
            .map(|(id, _)| id)
            .collect();
        if ids.is_empty() {
            return;
        }
        let id = &ids[(pick % ids.len() as u64) as usize];
        let edited = store.update(id, |doc, by| {
            doc.edit(
                by,
                now,
                &[Edit::Set {
                    field: "summary".into(),
                    value: serde_json::json!(text),
                }],
            )
        });
        let done = edited.is_ok();
        if done {
            self.report.edits += 1;
        }
        let id = id.clone();
        self.note(|| format!("device {d} edited {id}: {done}"));
    }

    /// One sync of device `d`; `clean`: no faults (the final rounds).
    fn sync(&mut self, d: usize, clean: bool) -> Result<(), Error> {
        let faults = if clean {
            Faults {
                lose_request: 0,
                duplicate: 0,
                delay: 0,
                lose_answer: 0,
                cut_answer: 0,
                server_crash: 0,
                device_crash: 0,
                backup: 0,
                restore: 0,
            }
        } else {
            self.cfg.faults
        };
        let opts = SyncOptions {
            retries: 3,
            backoff: std::time::Duration::ZERO,
            ..SyncOptions::default()
        };
        let broken = self.cfg.broken;
        let dev = &mut self.devices[d];
        let bearer = dev.bearer.clone();
        let mut link = Link {
            rng: &mut self.rng,
            server: &mut self.server,
            delayed: &mut self.delayed,
            bearer,
            faults,
            crashed: false,
        };
        let store = dev.store();
        let result = if broken {
            sanjin_client::sync_over_broken(
                store,
                &opts,
                &mut link,
                &mut |_| {},
                Fault::CursorBeforeData,
            )
        } else {
            sanjin_client::sync_over(store, &opts, &mut link, &mut |_| {})
        };
        let crashed = link.crashed;
        self.report.syncs += 1;
        if crashed {
            self.report.device_crashes += 1;
            self.devices[d].crash();
        }
        match result {
            Ok(summary) => {
                self.report.resyncs += usize::from(summary.resynced);
                let (sent, received, resynced) = (summary.sent, summary.received, summary.resynced);
                self.note(|| {
                    format!("device {d}: sent {sent}, received {received}, resync {resynced}")
                });
                Ok(())
            }
            Err(e) => {
                self.report.interrupted += 1;
                Err(e)
            }
        }
    }

    fn step(&mut self) {
        let f = self.cfg.faults;
        if self.rng.chance(f.backup) {
            self.server.back_up();
            self.note(|| "server backed up".into());
        }
        if self.rng.chance(f.restore) && self.server.restore() {
            self.report.restores += 1;
            self.note(|| "server restored from its backup".into());
        }
        let d = self.rng.below(self.devices.len() as u64) as usize;
        match self.rng.below(100) {
            0..=24 => self.write(d),
            25..=44 => self.edit(d),
            45..=89 => {
                let r = self.sync(d, false);
                self.note(|| format!("device {d} synced: {r:?}"));
            }
            90..=94 => {
                self.report.device_crashes += 1;
                self.devices[d].crash();
                self.note(|| format!("device {d} crashed"));
            }
            _ => {
                self.server.crash();
                self.note(|| "server crashed".into());
            }
        }
    }

    fn note(&self, what: impl FnOnce() -> String) {
        if self.trace {
            eprintln!("[sim {}] {}", self.report.seed, what());
        }
    }

    /// Everyone syncs without faults until nothing moves: two passes carry every change from
    /// any device to every other; a third shows it stays put.
    fn quiesce(&mut self) -> Result<(), String> {
        // What was held back in the network arrives at last.
        for (bearer, frame) in std::mem::take(&mut self.delayed) {
            let _ = self.server.handle(&bearer, &frame);
        }
        for pass in 0..3 {
            for d in 0..self.devices.len() {
                self.sync(d, true)
                    .map_err(|e| format!("the clean sync {pass} of device {d} failed: {e}"))?;
            }
        }
        Ok(())
    }

    fn check(&mut self) -> Result<(), String> {
        let data = self.server.data();
        let server_store = data.store();
        let mut server_heads: BTreeMap<String, Vec<ChangeHash>> = BTreeMap::new();
        for (id, _) in server_store.ids().map_err(|e| e.to_string())? {
            let mut doc = server_store
                .load(&id)
                .map_err(|e| format!("server doc {id}: {e}"))?;
            server_heads.insert(id, doc.heads());
        }
        // Nothing logged twice: one log entry per (document, heads).
        let mut seen: BTreeSet<(String, Vec<ChangeHash>)> = BTreeSet::new();
        let mut dup = 0usize;
        server_store
            .log_since(
                &sanjin_store::server::LogFilter {
                    after: 0,
                    everything: true,
                    group: "",
                    except_origin: None,
                    ..Default::default()
                },
                &mut |row| {
                    let mut heads = row.heads.to_vec();
                    heads.sort();
                    if !seen.insert((row.doc_id.to_string(), heads)) {
                        dup += 1;
                    }
                    true
                },
            )
            .map_err(|e| e.to_string())?;
        if dup > 0 {
            return Err(format!(
                "{dup} change-log entries were written again for heads already logged"
            ));
        }
        // Nothing acknowledged is lost on the server.
        let acked: Vec<(String, ChangeHash)> = self.server.acked.iter().cloned().collect();
        self.report.acked_changes = acked.len();
        let server_store = self.server.data.as_mut().expect("open").store();
        for (id, h) in &acked {
            let mut doc = server_store
                .load(id)
                .map_err(|e| format!("an acknowledged record {id} is not on the server: {e}"))?;
            if !doc.has_change(h) {
                return Err(format!("the server lost an acknowledged change of {id}"));
            }
        }
        for (n, dev) in self.devices.iter_mut().enumerate() {
            let store = dev.store();
            let outbox = store.outbox().map_err(|e| e.to_string())?;
            if !outbox.is_empty() {
                return Err(format!(
                    "device {n} still has {} document(s) in its outbox",
                    outbox.len()
                ));
            }
            let ids: BTreeSet<String> = store
                .ids()
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            for (id, heads) in &server_heads {
                let mut doc = store
                    .load(id)
                    .map_err(|e| format!("device {n} lacks record {id}: {e}"))?;
                if !sanjin_core::same_heads(&doc.heads(), heads) {
                    return Err(format!("device {n} did not converge on record {id}"));
                }
            }
            if let Some(extra) = ids.iter().find(|id| !server_heads.contains_key(*id)) {
                return Err(format!(
                    "device {n} holds record {extra}, which never reached the server"
                ));
            }
            for (id, h) in &acked {
                if !store.load(id).is_ok_and(|mut d| d.has_change(h)) {
                    return Err(format!("device {n} lacks an acknowledged change of {id}"));
                }
            }
        }
        Ok(())
    }
}

/// Runs one seed: the steps with faults, the final clean rounds, the invariants.
pub fn run(seed: u64, cfg: &Config) -> Result<Report, Failure> {
    let dir = temp_dir();
    let mut w = World::new(seed, *cfg, dir.path());
    for _ in 0..cfg.steps {
        w.step();
    }
    let out = w.quiesce().and_then(|()| w.check());
    w.report.server_crashes = w.server.crashes;
    w.report.exchanges = w.server.exchanges;
    match out {
        Ok(()) => Ok(w.report),
        Err(what) => Err(Failure { seed, what }),
    }
}

/// A committed regression seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regression {
    pub seed: u64,
    /// A known bug not fixed yet: the seed must still fail (the test flips when it is fixed,
    /// and the line loses its `known`).
    pub known: bool,
    pub why: String,
}

/// The committed regression seeds (`tests/regressions.txt`): `seed [known]  # why`, one per
/// line.
pub fn regressions(text: &str) -> Vec<Regression> {
    text.lines()
        .filter_map(|l| {
            let (head, why) = l.split_once('#').unwrap_or((l, ""));
            let mut words = head.split_whitespace();
            let seed = words.next()?.parse().ok()?;
            Some(Regression {
                seed,
                known: words.next() == Some("known"),
                why: why.trim().to_string(),
            })
        })
        .collect()
}
