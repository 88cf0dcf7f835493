//! Issue 10, point 9: the committed corpus of hostile pushes under `fixtures/bad/`, each with the
//! refusal code it must get, run against a real server on loopback (HTTPS, its self-signed
//! certificate pinned) by one test.
//!
//! A case is declarative (see `fixtures/bad/README.md`): device keys and actor ids are random per
//! run, so the hostile bytes are built here, by the honest code paths where they suffice and by
//! plain automerge where `RecordDoc` and the store refuse to make them — as an attacker with an
//! enrolled phone would. Every case runs on fresh enrolled devices of the committed fixtures'
//! members (`fixtures/city`: group-01 has member-0001, member-0003 and its leader member-0002;
//! member-0027 is in group-02), sends its hostile push together with an honest new record in the
//! same request, and must get exactly its code (and field), leave nothing of the hostile changes
//! on the server, and let the honest record land. Cases that push what the server lacks run a
//! second time with the hostile changes sent through the automerge-sync fallback.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Duration;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, ObjId, ObjType, Prop, ROOT, ReadDoc, ScalarValue, Value};
use sanjin_client::{RefusalCode, SyncOptions, enroll, sync};
use sanjin_core::domain::RecordData;
use sanjin_core::protocol::{DocChanges, DocSync, SyncRequest, SyncResponse};
use sanjin_core::sign::{ChangeSig, DeviceKey, SigKind, split_changes};
use sanjin_core::workflow::EventType;
use sanjin_core::{Author, ChangeHash, Edit, RecordDoc, testdata};
use sanjin_server::{Config, Running, ServerData, TlsMode};
use sanjin_store::{Durability, Identity, Store, new_device, new_record_id, now_ms};
use serde::Deserialize;
use serde_json::Value as Json;

/// The version of the case format this runner reads (`"format"` in every case file).
const FORMAT: u32 = 1;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

// ------------------------------------------------------------------------------ the format

/// One case file, `fixtures/bad/<name>.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    format: u32,
    name: String,
    issue: u32,
    about: String,
    /// The refusal code the hostile push must get (`RefusalCode::code`).
    code: String,
    /// The field the refusal must name, if any (`Refusal::field`).
    #[serde(default)]
    field: Option<String>,
    /// A text the refusal's (English) reason must contain.
    #[serde(default)]
    reason_contains: Option<String>,
    steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Step {
    /// `by` records a new visit of `group` (it becomes "the record"); synced unless `offline`.
    Create {
        by: String,
        group: String,
        #[serde(default)]
        offline: bool,
    },
    /// `by` sets a field of the record.
    Edit {
        by: String,
        field: String,
        value: Json,
        #[serde(default)]
        offline: bool,
    },
    /// `by` takes a workflow step on the record (`submit`, `approve`, …).
    #[serde(rename = "step")]
    Transition {
        by: String,
        event: String,
        #[serde(default)]
        note: Option<String>,
        #[serde(default)]
        offline: bool,
    },
    /// `by` syncs (pushes its outbox, pulls).
    Sync { by: String },
    /// The office revokes `member`'s device.
    Revoke { member: String },
    /// The hostile push.
    Push(Push),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Push {
    /// The enrolled member whose device sends the request (with its own credentials).
    by: String,
    /// Other members' copies of the record merged into what is pushed (relayed changes, carried
    /// with the signatures their devices made).
    #[serde(default)]
    include: Vec<String>,
    /// What the attacker makes, in order, on the pusher's copy of the record (or, if the pusher
    /// has none, the server's copy: an attacker can get those bytes elsewhere).
    #[serde(default)]
    make: Vec<Make>,
    /// How the changes made by `make` are signed: `own` (honestly, by the pusher's device),
    /// `none`, `wrong_key` (a key the server never saw, claiming the pusher's device),
    /// `claim:<member>` (the pusher's key, claiming that member's device).
    #[serde(default = "own")]
    sign: String,
    /// Which bytes are pushed: `since_server` (all the server lacks), `made_only` (only what
    /// `make` made, without what it depends on), `not_automerge` (bytes that are no changes).
    #[serde(default = "since_server")]
    bytes: String,
}

fn own() -> String {
    "own".into()
}

fn since_server() -> String {
    "since_server".into()
}

#[derive(Debug, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case", deny_unknown_fields)]
enum Make {
    /// A new visit of `group` made through `RecordDoc` (it becomes "the record"); with `root`,
    /// made with plain automerge and those root keys overridden (a record "by" someone else).
    Create {
        group: String,
        #[serde(default)]
        root: BTreeMap<String, Json>,
        #[serde(default, rename = "as")]
        as_: Option<String>,
        /// An honest creation (what follows it is the attack): it must land.
        #[serde(default)]
        honest: bool,
    },
    /// A workflow step through `RecordDoc`, made with the actor of `as` (default: the pusher).
    Step {
        event: String,
        #[serde(default, rename = "as")]
        as_: Option<String>,
        #[serde(default)]
        note: Option<String>,
        #[serde(default)]
        honest: bool,
        #[serde(default)]
        fork: bool,
    },
    /// A plain edit through `RecordDoc`.
    Edit {
        field: String,
        value: Json,
        #[serde(default, rename = "as")]
        as_: Option<String>,
        /// An honest change of `as`, signed by its own device: it must land.
        #[serde(default)]
        honest: bool,
        /// Made on a copy of the record as it was before this push, merged at the end
        /// (concurrent with the other changes made).
        #[serde(default)]
        fork: bool,
    },
    /// A conflict resolution through `RecordDoc` (the store refuses it for a member).
    Resolve {
        field: String,
        value: Json,
        #[serde(default, rename = "as")]
        as_: Option<String>,
    },
    /// Operations with plain automerge, committed `times` times (`{i}` in strings is the
    /// repetition), with the actor of `as` (or a random one with `actor: "random"`) and the
    /// message `message` (default: naming `as`'s member and device honestly).
    Raw {
        ops: Vec<Op>,
        #[serde(default, rename = "as")]
        as_: Option<String>,
        #[serde(default)]
        actor: Option<String>,
        #[serde(default)]
        message: Option<BTreeMap<String, Json>>,
        #[serde(default = "one")]
        times: usize,
    },
}

fn one() -> usize {
    1
}

/// A plain automerge operation. A path is a list of map keys and list indices from the root.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
struct Op {
    #[serde(default)]
    put: Option<Vec<Json>>,
    #[serde(default)]
    delete: Option<Vec<Json>>,
    /// Inserts a map at the path's last index of a list.
    #[serde(default)]
    insert_map: Option<Vec<Json>>,
    /// Puts a new, empty map at the path (replacing what was there).
    #[serde(default)]
    put_map: Option<Vec<Json>>,
    #[serde(default)]
    value: Option<Json>,
}

// ------------------------------------------------------------------------------ the server

/// A real server in this process, on loopback, with TLS.
struct Server {
    rt: tokio::runtime::Runtime,
    running: Option<Running>,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let mut data = ServerData::open(dir).unwrap();
        data.import_directory(&repo().join("fixtures/city"))
            .unwrap();
        drop(data);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut config = Config::new(dir, addr, TlsMode::SelfSigned { hostnames: vec![] });
        config.shutdown_grace = Duration::from_secs(2);
        let running = rt.block_on(sanjin_server::spawn(config)).unwrap();
        Server {
            rt,
            running: Some(running),
        }
    }

    fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    fn with_data<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut ServerData) -> T + Send + 'static,
    ) -> T {
        let state = self.running().state().clone();
        self.rt.block_on(state.with_data(f)).unwrap()
    }

    /// The server's copy of a record, if it holds one.
    fn doc(&self, id: &str) -> Option<AutoCommit> {
        let id = id.to_string();
        self.with_data(move |d| {
            d.store().exists(&id).unwrap().then(|| {
                let mut doc = d.store().load(&id).unwrap();
                AutoCommit::load(&doc.save()).unwrap()
            })
        })
    }

    fn log_entries(&self, id: &str) -> i64 {
        let id = id.to_string();
        self.with_data(move |d| {
            rusqlite::Connection::open(d.dir().join(sanjin_server::DB_FILE))
                .unwrap()
                .query_row(
                    "SELECT count(*) FROM change_log WHERE doc_id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .unwrap()
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown()).unwrap();
        }
    }
}

// ------------------------------------------------------------------------------ the runner

/// The group of a fixture member that cases use.
fn group_of(member: &str) -> &'static str {
    match member {
        "member-0027" => "group-02",
        _ => "group-01",
    }
}

struct Run<'a> {
    server: &'a Server,
    dir: &'a Path,
    devices: HashMap<String, Store>,
    record: Option<String>,
    /// Send the hostile changes through the automerge-sync fallback, not as a push.
    fallback: bool,
}

impl Run<'_> {
    fn device(&mut self, member: &str) -> &mut Store {
        if !self.devices.contains_key(member) {
            let (device, actor) = new_device();
            let mut s = Store::init(
                &self.dir.join(format!("{member}-{device}.sqlite")),
                &Identity {
                    member: member.into(),
                    device,
                    actor,
                },
                Durability::Normal,
            )
            .unwrap();
            let m = member.to_string();
            let code = self
                .server
                .with_data(move |d| d.issue_code(&m).unwrap().code);
            let running = self.server.running();
            let pem = std::fs::read_to_string(running.certificate().unwrap()).unwrap();
            enroll(&mut s, &running.url(), &code, Some(&pem), "测试设备").unwrap();
            self.devices.insert(member.to_string(), s);
        }
        self.devices.get_mut(member).unwrap()
    }

    fn author(&mut self, member: &str) -> Author {
        self.device(member).author()
    }

    fn sync(&mut self, member: &str) {
        let opts = SyncOptions {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            backoff: Duration::from_millis(20),
            ..SyncOptions::default()
        };
        let sum = sync(self.device(member), &opts, &mut |_| {}).unwrap();
        assert!(
            sum.refused.is_empty(),
            "an honest step was refused: {sum:?}"
        );
    }

    fn record(&self) -> String {
        self.record.clone().expect("no record made yet")
    }

    /// The record, on `member`'s device: a device that lacks it syncs first.
    fn record_on(&mut self, member: &str) -> String {
        let id = self.record();
        if !self.device(member).exists(&id).unwrap() {
            self.sync(member);
        }
        id
    }

    fn step(&mut self, step: &Step) -> Option<Outcome> {
        match step {
            Step::Create { by, group, offline } => {
                let id = new_visit(self.device(by), group);
                self.record = Some(id);
                if !offline {
                    self.sync(by);
                }
            }
            Step::Edit {
                by,
                field,
                value,
                offline,
            } => {
                let id = self.record_on(by);
                let edit = [Edit::Set {
                    field: field.clone(),
                    value: value.clone(),
                }];
                self.device(by)
                    .update(&id, |d, a| d.edit(a, now_ms(), &edit))
                    .unwrap();
                if !offline {
                    self.sync(by);
                }
            }
            Step::Transition {
                by,
                event,
                note,
                offline,
            } => {
                let id = self.record_on(by);
                let ev = event_type(event);
                self.device(by)
                    .update(&id, |d, a| d.transition(a, now_ms(), ev, note.as_deref()))
                    .unwrap();
                if !offline {
                    self.sync(by);
                }
            }
            Step::Sync { by } => self.sync(by),
            Step::Revoke { member } => {
                let device = self.device(member).identity().device.clone();
                self.server.with_data(move |d| d.revoke(&device).unwrap());
            }
            Step::Push(p) => return Some(self.push(p)),
        }
        None
    }

    /// Makes the hostile changes, sends them with an honest new record in one request.
    fn push(&mut self, p: &Push) -> Outcome {
        for m in p.include.iter().chain([&p.by]) {
            self.device(m);
        }
        let starts_new = matches!(p.make.first(), Some(Make::Create { .. }));
        if !starts_new && self.record.is_none() {
            // A push for a record id the server never saw.
            self.record = Some(new_record_id());
        }
        // The pusher's copy of the record if it has one, else the server's (an attacker can get
        // those bytes elsewhere), else nothing (a record nobody has seen).
        let mut am = if starts_new {
            AutoCommit::new()
        } else {
            let id = self.record();
            let pusher = &self.devices[&p.by];
            if pusher.exists(&id).unwrap() {
                let mut d = pusher.load(&id).unwrap();
                AutoCommit::load(&d.save()).unwrap()
            } else {
                self.server.doc(&id).unwrap_or_default()
            }
        };
        // Relayed copies, with the signatures their devices hold for them.
        let mut relayed_sigs = Vec::new();
        for m in &p.include {
            let id = self.record();
            let s = &self.devices[m];
            let mut d = s.load(&id).unwrap();
            let bytes = d.save_after(&[]);
            let mut theirs = AutoCommit::load(&bytes).unwrap();
            am.merge(&mut theirs).unwrap();
            relayed_sigs.extend(sigs_of(s, &bytes));
        }
        let start = am.get_heads();
        let mut fork = am.fork();
        let mut hostile: Vec<ChangeHash> = Vec::new();
        let mut honest: Vec<(String, ChangeHash)> = Vec::new();
        for make in &p.make {
            let (made, as_member, is_honest) =
                if let Make::Edit { fork: true, .. } | Make::Step { fork: true, .. } = make {
                    self.make(&mut fork, make, &p.by)
                } else {
                    self.make(&mut am, make, &p.by)
                };
            if is_honest {
                honest.extend(made.into_iter().map(|h| (as_member.clone(), h)));
            } else {
                hostile.extend(made);
            }
        }
        am.merge(&mut fork).unwrap();
        let id = match p.make.first() {
            Some(Make::Create { .. }) => {
                let id = root_str(&am, "id");
                self.record = Some(id.clone());
                id
            }
            _ => self.record(),
        };
        let server_heads = self
            .server
            .doc(&id)
            .map(|mut d| d.get_heads())
            .unwrap_or_default();
        let bytes = match p.bytes.as_str() {
            "since_server" => am.save_after(&server_heads),
            "made_only" => am.save_after(&start),
            "not_automerge" => b"<html>not automerge changes</html>".to_vec(),
            other => panic!("unknown `bytes`: {other}"),
        };

        // Signatures: the hostile changes as the case says; honest ones by their authors;
        // the rest (the pusher's unsynced changes, relayed ones) as a real device would.
        let pusher = &self.devices[&p.by];
        let mut sigs = relayed_sigs;
        if !hostile.is_empty() {
            let key = pusher.signing_key().unwrap();
            let my_device = pusher.identity().device.clone();
            match p.sign.as_str() {
                "own" => sigs.push(ChangeSig::sign(
                    key,
                    &my_device,
                    SigKind::Changes,
                    hostile.clone(),
                )),
                "none" => {}
                "wrong_key" => sigs.push(ChangeSig::sign(
                    &DeviceKey::from_seed(random32()),
                    &my_device,
                    SigKind::Changes,
                    hostile.clone(),
                )),
                claim if claim.starts_with("claim:") => {
                    let other = &self.devices[&claim["claim:".len()..]];
                    sigs.push(ChangeSig::sign(
                        key,
                        &other.identity().device,
                        SigKind::Changes,
                        hostile.clone(),
                    ))
                }
                other => panic!("unknown `sign`: {other}"),
            }
        }
        for (member, h) in &honest {
            let s = &self.devices[member];
            sigs.push(ChangeSig::sign(
                s.signing_key().unwrap(),
                &s.identity().device,
                SigKind::Changes,
                [*h],
            ));
        }
        let others: Vec<ChangeHash> = split_changes(&bytes)
            .into_iter()
            .map(|(h, _)| h)
            .filter(|h| !hostile.contains(h) && !honest.iter().any(|(_, x)| x == h))
            .collect();
        let own: Vec<ChangeHash> = pusher
            .own_changes(&bytes)
            .into_iter()
            .filter(|h| others.contains(h))
            .collect();
        if !own.is_empty() {
            sigs.push(ChangeSig::sign(
                pusher.signing_key().unwrap(),
                &pusher.identity().device,
                SigKind::Changes,
                own,
            ));
        }
        sigs.extend(pusher.sigs_for(&others).unwrap());

        // The honest record in the same request, signed by the pusher.
        let group = group_of(&p.by);
        let honest_id = new_record_id();
        let mut honest_doc = RecordDoc::create(
            &honest_id,
            &RecordData::Visit(visit_of(group, &p.by)),
            &pusher.author(),
            now_ms(),
        )
        .unwrap();
        let honest_bytes = honest_doc.save_after(&[]);
        sigs.push(ChangeSig::sign(
            pusher.signing_key().unwrap(),
            &pusher.identity().device,
            SigKind::Changes,
            split_changes(&honest_bytes).into_iter().map(|(h, _)| h),
        ));

        let log_before = self.server.log_entries(&id);
        let req = SyncRequest {
            request_id: random16(),
            max_response_bytes: 1 << 20,
            pushes: vec![
                DocChanges {
                    doc_id: id.clone(),
                    changes: bytes.clone(),
                },
                DocChanges {
                    doc_id: honest_id.clone(),
                    changes: honest_bytes,
                },
            ],
            sigs,
            ..SyncRequest::default()
        };
        let client = sanjin_client::client_for(pusher, sanjin_client::Timeouts::default()).unwrap();
        let post = |req: &SyncRequest| {
            let answer = client.post_sync(&req.encode()).unwrap();
            SyncResponse::decode(&answer).unwrap()
        };
        let resp = if !self.fallback {
            post(&req)
        } else {
            // The same changes through the automerge-sync fallback: the honest record as an
            // ordinary push (position 0) in the first request, the hostile record's changes in
            // the sync messages, rounds until the server has nothing more to say.
            let SyncRequest {
                mut pushes, sigs, ..
            } = req;
            pushes.remove(0);
            let mut state = automerge::sync::State::new();
            let mut all = SyncResponse::default();
            for round in 0..8 {
                use automerge::sync::SyncDoc;
                let Some(msg) = am.sync().generate_sync_message(&mut state) else {
                    break;
                };
                let r = post(&SyncRequest {
                    request_id: random16(),
                    max_response_bytes: 1 << 20,
                    pushes: if round == 0 {
                        std::mem::take(&mut pushes)
                    } else {
                        vec![]
                    },
                    am_sync: vec![DocSync {
                        doc_id: id.clone(),
                        message: msg.encode(),
                    }],
                    sigs: sigs.clone(),
                    ..SyncRequest::default()
                });
                if round == 0 {
                    all.acks = r.acks.clone();
                }
                all.refused.extend(r.refused);
                if r.am_sync.is_empty() {
                    break;
                }
                for m in r.am_sync {
                    let msg = automerge::sync::Message::decode(&m.message).unwrap();
                    am.sync().receive_sync_message(&mut state, msg).unwrap();
                }
            }
            all
        };

        let mut on_server = self.server.doc(&id);
        let mut landed = |h: &ChangeHash| {
            on_server
                .as_mut()
                .is_some_and(|d| d.get_change_by_hash(h).is_some())
        };
        // Every change of the hostile push but the honest ones must stay off the server: those
        // made here and those relayed or left unsynced that the case pushes with them.
        let hostile_landed: Vec<String> = split_changes(&bytes)
            .into_iter()
            .map(|(h, _)| h)
            .filter(|h| !honest.iter().any(|(_, x)| x == h))
            .filter(|h| landed(h))
            .map(|h| h.to_string())
            .collect();
        let honest_missing: Vec<String> = honest
            .iter()
            .filter(|(_, h)| !landed(h))
            .map(|(_, h)| h.to_string())
            .collect();
        let hostile_pushed = split_changes(&bytes)
            .into_iter()
            .filter(|(h, _)| !honest.iter().any(|(_, x)| x == h))
            .count();
        Outcome {
            resp,
            honest_push: if self.fallback { 0 } else { 1 },
            hostile_pushed,
            hostile_landed,
            honest_missing,
            honest_changes: !honest.is_empty(),
            log_grew: self.server.log_entries(&id) > log_before,
            honest_record_landed: self.server.log_entries(&honest_id) == 1,
        }
    }

    /// Applies one `make`; returns the changes it made, whose they are, and whether honest.
    fn make(
        &mut self,
        am: &mut AutoCommit,
        make: &Make,
        pusher: &str,
    ) -> (Vec<ChangeHash>, String, bool) {
        let before = am.get_heads();
        let who = |as_: &Option<String>| as_.clone().unwrap_or_else(|| pusher.to_string());
        let (member, honest) = match make {
            Make::Create {
                group,
                root,
                as_,
                honest,
            } => {
                let member = who(as_);
                let author = self.author(&member);
                let id = new_record_id();
                let mut doc = RecordDoc::create(
                    &id,
                    &RecordData::Visit(visit_of(group, &member)),
                    &author,
                    now_ms(),
                )
                .unwrap();
                if root.is_empty() {
                    *am = AutoCommit::load(&doc.save()).unwrap();
                } else {
                    // The same record, made with plain automerge, its root keys overridden.
                    let template = AutoCommit::load(&doc.save()).unwrap();
                    let mut raw = AutoCommit::new().with_actor(actor_of(&author));
                    copy_map(&template, &ROOT, &mut raw, &ROOT, |k| !root.contains_key(k));
                    for (k, v) in root {
                        let v = self.value(v, 0);
                        raw.put(ROOT, k.as_str(), v).unwrap();
                    }
                    commit(&mut raw, &message_of(&author, "create"));
                    *am = raw;
                }
                (member, *honest)
            }
            Make::Step {
                event,
                as_,
                note,
                honest,
                ..
            } => {
                let member = who(as_);
                let author = self.author(&member);
                with_doc(am, |d| {
                    d.transition(&author, now_ms(), event_type(event), note.as_deref())
                        .map(|_| ())
                });
                (member, *honest)
            }
            Make::Edit {
                field,
                value,
                as_,
                honest,
                ..
            } => {
                let member = who(as_);
                let author = self.author(&member);
                let edit = [Edit::Set {
                    field: field.clone(),
                    value: value.clone(),
                }];
                with_doc(am, |d| d.edit(&author, now_ms(), &edit).map(|_| ()));
                (member, *honest)
            }
            Make::Resolve { field, value, as_ } => {
                let member = who(as_);
                let author = self.author(&member);
                with_doc(am, |d| {
                    d.resolve(&author, now_ms(), field, value.clone())
                        .map(|_| ())
                });
                (member, false)
            }
            Make::Raw {
                ops,
                as_,
                actor,
                message,
                times,
            } => {
                let member = who(as_);
                let author = self.author(&member);
                let actor = match actor.as_deref() {
                    None => actor_of(&author),
                    Some("random") => ActorId::from(random16().as_slice()),
                    Some(other) => panic!("unknown `actor`: {other}"),
                };
                am.set_actor(actor);
                let mut msg = message_of(&author, "edit");
                if let Some(m) = message {
                    for (k, v) in m {
                        let v = self.string(v.as_str().expect("message values are strings"));
                        msg[k] = Json::String(v);
                    }
                }
                for i in 0..*times {
                    for op in ops {
                        self.op(am, op, i);
                    }
                    commit(am, &msg);
                }
                (member, false)
            }
        };
        let made = am.get_changes(&before).iter().map(|c| c.hash()).collect();
        (made, member, honest)
    }

    /// `@device:<member>` is that member's device id (enrolled on first use).
    fn string(&mut self, s: &str) -> String {
        if let Some(m) = s.strip_prefix("@device:") {
            return self.device(m).identity().device.clone();
        }
        s.to_string()
    }

    /// A value of a case: a string (`{i}` replaced, `@device:<m>` resolved), a number, a bool,
    /// or `{"repeat": s, "times": n}`, `{"json": v}` (the JSON text of v), `{"utf8_bytes": s}`,
    /// `{"random_bytes": n}`, `{"now": true}`.
    fn value(&mut self, v: &Json, i: usize) -> ScalarValue {
        match v {
            Json::String(s) => {
                ScalarValue::Str(self.string(&s.replace("{i}", &i.to_string())).into())
            }
            Json::Number(n) => match n.as_i64() {
                Some(n) => ScalarValue::Int(n),
                None => ScalarValue::F64(n.as_f64().unwrap()),
            },
            Json::Bool(b) => ScalarValue::Boolean(*b),
            Json::Object(o) => {
                if let (Some(s), Some(n)) = (o.get("repeat"), o.get("times")) {
                    ScalarValue::Str(
                        s.as_str()
                            .unwrap()
                            .repeat(n.as_u64().unwrap() as usize)
                            .into(),
                    )
                } else if let Some(j) = o.get("json") {
                    ScalarValue::Str(j.to_string().into())
                } else if let Some(s) = o.get("utf8_bytes") {
                    ScalarValue::Bytes(s.as_str().unwrap().as_bytes().to_vec())
                } else if let Some(n) = o.get("random_bytes") {
                    let mut b = vec![0u8; n.as_u64().unwrap() as usize];
                    getrandom::fill(&mut b).unwrap();
                    ScalarValue::Bytes(b)
                } else if o.get("now").is_some() {
                    ScalarValue::Int(now_ms())
                } else {
                    panic!("unknown value {v}")
                }
            }
            other => panic!("unknown value {other}"),
        }
    }

    fn op(&mut self, am: &mut AutoCommit, op: &Op, i: usize) {
        if let Some(path) = &op.put {
            let (obj, prop) = resolve(am, path);
            let value = op.value.as_ref().expect("put needs a value");
            let v = match value.as_str().and_then(|s| s.strip_prefix("@event:")) {
                // The id of an existing workflow event (what `wf` holds).
                Some(n) => {
                    let at = n.parse::<u64>().expect("@event:<index>");
                    let (ev, prop) = resolve(am, &[Json::from("ev"), Json::from(at)]);
                    let (_, id) = am.get(&ev, prop).unwrap().expect("no such event");
                    ScalarValue::Str(id.to_string().into())
                }
                None => self.value(value, i),
            };
            am.put(&obj, prop, v).unwrap();
        } else if let Some(path) = &op.put_map {
            let (obj, prop) = resolve(am, path);
            am.put_object(&obj, prop, ObjType::Map).unwrap();
        } else if let Some(path) = &op.delete {
            let (obj, prop) = resolve(am, path);
            am.delete(&obj, prop).unwrap();
        } else if let Some(path) = &op.insert_map {
            let (obj, prop) = resolve(am, path);
            let Prop::Seq(at) = prop else {
                panic!("insert_map needs a list index")
            };
            let m = am.insert_object(&obj, at, ObjType::Map).unwrap();
            let Some(Json::Object(fields)) = &op.value else {
                panic!("insert_map needs an object value")
            };
            for (k, v) in fields {
                let v = self.value(v, i);
                am.put(&m, k.as_str(), v).unwrap();
            }
        } else {
            panic!("an op needs put, put_map, delete or insert_map")
        }
    }
}

/// What the server did with a case's request.
struct Outcome {
    resp: SyncResponse,
    /// The position of the honest record among the request's pushes.
    honest_push: u32,
    /// How many changes of the hostile record's push are not marked honest.
    hostile_pushed: usize,
    hostile_landed: Vec<String>,
    honest_missing: Vec<String>,
    honest_changes: bool,
    log_grew: bool,
    honest_record_landed: bool,
}

fn sigs_of(s: &Store, bytes: &[u8]) -> Vec<ChangeSig> {
    let hashes: Vec<ChangeHash> = split_changes(bytes).into_iter().map(|(h, _)| h).collect();
    s.sigs_for(&hashes).unwrap()
}

fn with_doc(am: &mut AutoCommit, f: impl FnOnce(&mut RecordDoc) -> Result<(), sanjin_core::Error>) {
    let mut doc = RecordDoc::from_automerge(std::mem::take(am)).unwrap();
    f(&mut doc).unwrap();
    *am = doc.into_automerge();
}

fn actor_of(a: &Author) -> ActorId {
    let hex = a.actor_hex();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    ActorId::from(bytes.as_slice())
}

fn message_of(a: &Author, action: &str) -> Json {
    serde_json::json!({"m": a.member(), "d": a.device(), "a": action, "ms": now_ms()})
}

fn commit(am: &mut AutoCommit, msg: &Json) {
    am.commit_with(
        CommitOptions::default()
            .with_message(msg.to_string())
            .with_time(now_ms() / 1000),
    )
    .expect("the hostile operations change something");
}

fn root_str(am: &AutoCommit, key: &str) -> String {
    match am.get(ROOT, key).unwrap() {
        Some((Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Str(s) => s.to_string(),
            other => panic!("`{key}` is {other:?}"),
        },
        other => panic!("`{key}` is {other:?}"),
    }
}

/// The object and property a path names (its last element), from the root.
fn resolve(am: &AutoCommit, path: &[Json]) -> (ObjId, Prop) {
    let prop = |j: &Json| match j {
        Json::String(s) => Prop::Map(s.clone()),
        Json::Number(n) => Prop::Seq(n.as_u64().unwrap() as usize),
        other => panic!("bad path element {other}"),
    };
    let (last, parents) = path.split_last().expect("an empty path");
    let mut obj = ROOT;
    for p in parents {
        obj = match am.get(&obj, prop(p)).unwrap() {
            Some((Value::Object(_), id)) => id,
            other => panic!("{p} is not an object: {other:?}"),
        };
    }
    (obj, prop(last))
}

/// Copies a map of one document into another, recursively.
fn copy_map(
    from: &AutoCommit,
    src: &ObjId,
    to: &mut AutoCommit,
    dst: &ObjId,
    keep: impl Fn(&str) -> bool,
) {
    for key in from.keys(src).filter(|k| keep(k)).collect::<Vec<_>>() {
        let (v, id) = from.get(src, key.as_str()).unwrap().unwrap();
        match v {
            Value::Scalar(s) => {
                to.put(dst, key.as_str(), s.into_owned()).unwrap();
            }
            Value::Object(t) => {
                let new = to.put_object(dst, key.as_str(), t).unwrap();
                copy_obj(from, &id, t, to, &new);
            }
        }
    }
}

fn copy_obj(from: &AutoCommit, src: &ObjId, t: ObjType, to: &mut AutoCommit, dst: &ObjId) {
    match t {
        ObjType::Map | ObjType::Table => copy_map(from, src, to, dst, |_| true),
        ObjType::Text => {
            let text = from.text(src).unwrap();
            to.splice_text(dst, 0, 0, &text).unwrap();
        }
        ObjType::List => {
            for i in 0..from.length(src) {
                let (v, id) = from.get(src, i).unwrap().unwrap();
                match v {
                    Value::Scalar(s) => to.insert(dst, i, s.into_owned()).unwrap(),
                    Value::Object(t) => {
                        let new = to.insert_object(dst, i, t).unwrap();
                        copy_obj(from, &id, t, to, &new);
                    }
                }
            }
        }
    }
}

fn event_type(code: &str) -> EventType {
    EventType::parse(code).unwrap_or_else(|| panic!("unknown event `{code}`"))
}

fn visit_of(group: &str, member: &str) -> sanjin_core::domain::Visit {
    let mut v = testdata::visit();
    v.group = group.into();
    v.contact_point = if group == "group-01" {
        "cp-001"
    } else {
        "cp-006"
    }
    .into();
    v.title = "恶意推送语料中的记录".into();
    v.participants = vec![member.to_string()];
    v
}

fn new_visit(s: &mut Store, group: &str) -> String {
    let id = new_record_id();
    let data = RecordData::Visit(visit_of(group, &s.identity().member.clone()));
    let mut doc = RecordDoc::create(&id, &data, &s.author(), now_ms()).unwrap();
    s.insert(&mut doc, true).unwrap();
    id
}

fn random16() -> [u8; 16] {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).unwrap();
    b
}

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).unwrap();
    b
}

// ------------------------------------------------------------------------------ the test

fn load_cases() -> Vec<(PathBuf, Case)> {
    let dir = repo().join("fixtures/bad");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let case: Case = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not a case: {e}", p.display()));
            (p, case)
        })
        .collect()
}

/// Checks a case file's header; runs it; returns what went wrong, if anything.
fn run_case(
    server: &Server,
    dir: &Path,
    path: &Path,
    case: &Case,
    fallback: bool,
) -> Result<(), String> {
    let stem = path.file_stem().unwrap().to_string_lossy();
    if case.format != FORMAT {
        return Err(format!(
            "format {} (this runner reads {FORMAT})",
            case.format
        ));
    }
    if case.name != stem || case.issue != 10 || case.about.trim().is_empty() {
        return Err("`name` must be the file's name, `issue` 10, `about` said".into());
    }
    let Some(code) = RefusalCode::parse(&case.code) else {
        return Err(format!("`{}` is no refusal code", case.code));
    };
    let pushes = case
        .steps
        .iter()
        .filter(|s| matches!(s, Step::Push(_)))
        .count();
    if pushes != 1 || !matches!(case.steps.last(), Some(Step::Push(_))) {
        return Err("a case ends with its one `push` step".into());
    }
    let case_dir = dir.join(format!(
        "{}{}",
        case.name,
        if fallback { "-am" } else { "" }
    ));
    std::fs::create_dir_all(&case_dir).unwrap();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut run = Run {
            server,
            dir: &case_dir,
            devices: HashMap::new(),
            record: None,
            fallback,
        };
        let mut out = None;
        for step in &case.steps {
            out = run.step(step);
        }
        out.unwrap()
    }))
    .map_err(|e| {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("the case did not run: {msg}")
    })?;
    let r = &outcome.resp;
    let mut problems = Vec::new();
    match r.refused.as_slice() {
        [one] => {
            if one.code != code {
                problems.push(format!(
                    "refused as `{}`, the case says `{}` ({})",
                    one.code.code(),
                    case.code,
                    one.reason
                ));
            }
            if let Some(f) = &case.field
                && one.field != *f
            {
                problems.push(format!(
                    "refusal names field `{}`, the case says `{f}`",
                    one.field
                ));
            }
            if let Some(t) = &case.reason_contains
                && !one.reason.contains(t.as_str())
            {
                problems.push(format!("reason `{}` does not say `{t}`", one.reason));
            }
        }
        other => problems.push(format!(
            "expected one refusal `{}`, got {:?}",
            case.code,
            other
                .iter()
                .map(|r| (r.code.code(), r.reason.as_str()))
                .collect::<Vec<_>>()
        )),
    }
    if r.acks != [outcome.honest_push] {
        problems.push(format!(
            "only the honest record (push {}) is acknowledged, got acks {:?}",
            outcome.honest_push, r.acks
        ));
    }
    if outcome.hostile_pushed == 0 && code != RefusalCode::Malformed {
        problems.push("the push carries no hostile change: the case tests nothing".into());
    }
    if !outcome.honest_record_landed {
        problems.push("the honest record in the same request did not land".into());
    }
    if !outcome.hostile_landed.is_empty() {
        problems.push(format!(
            "hostile changes reached the server: {:?}",
            outcome.hostile_landed
        ));
    }
    if !outcome.honest_missing.is_empty() {
        problems.push(format!(
            "honest changes did not land: {:?}",
            outcome.honest_missing
        ));
    }
    if outcome.log_grew != outcome.honest_changes {
        problems.push(format!(
            "the record's change log {} (honest changes in the push: {})",
            if outcome.log_grew {
                "grew"
            } else {
                "did not grow"
            },
            outcome.honest_changes
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[test]
fn issue10_every_hostile_push_in_fixtures_bad_gets_its_refusal() {
    let cases = load_cases();
    assert!(cases.len() >= 20, "{} cases", cases.len());
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"));
    let mut failed = Vec::new();
    let mut codes = std::collections::BTreeSet::new();
    let mut by_fallback = 0;
    for (path, case) in &cases {
        // Every case as a push; those whose bytes are what the server lacks also through the
        // automerge-sync fallback, which must refuse them the same way.
        let fallback_too = case
            .steps
            .iter()
            .any(|s| matches!(s, Step::Push(p) if p.bytes == "since_server"));
        for fallback in [false, true] {
            if fallback && !fallback_too {
                continue;
            }
            let how = if fallback {
                " (automerge-sync fallback)"
            } else {
                ""
            };
            let started = std::time::Instant::now();
            match run_case(&server, dir.path(), path, case, fallback) {
                Ok(()) => {
                    codes.insert(case.code.clone());
                    by_fallback += usize::from(fallback);
                    eprintln!(
                        "ok   {}{how} ({}, {:?})",
                        case.name,
                        case.code,
                        started.elapsed()
                    );
                }
                Err(e) => {
                    eprintln!("FAIL {}{how}: {e}", case.name);
                    failed.push(format!("fixtures/bad/{}.json{how}: {e}", case.name));
                }
            }
        }
    }
    eprintln!(
        "{} cases, {by_fallback} also through the fallback",
        cases.len()
    );
    assert!(
        failed.is_empty(),
        "{} case(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );

    // Every code a hostile device can provoke is in the corpus.
    for code in [
        "forbidden",
        "foreign_actor",
        "malformed",
        "role",
        "missing_deps",
        "too_large",
        "bad_signature",
        "revoked",
        "invalid_field",
        "history_rewrite",
        "impersonation",
        "conflict_resolution",
    ] {
        assert!(codes.contains(code), "no case gets `{code}`");
    }

    // A case file whose code is wrong fails, naming what the server said.
    let (path, case) = cases
        .iter()
        .find(|(_, c)| c.code == "malformed")
        .expect("a malformed case");
    let wrong = Case {
        format: case.format,
        name: case.name.clone(),
        issue: case.issue,
        about: case.about.clone(),
        code: "role".into(),
        field: None,
        reason_contains: None,
        steps: serde_json::from_str(&std::fs::read_to_string(path).unwrap())
            .map(|c: Case| c.steps)
            .unwrap(),
    };
    let e = run_case(&server, &dir.path().join("wrong"), path, &wrong, false).unwrap_err();
    assert!(
        e.contains("refused as `malformed`, the case says `role`"),
        "{e}"
    );
}
