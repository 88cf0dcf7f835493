//! Test support: a server on a real SQLite file in a temporary folder, driven through its router
//! without a socket, and devices with real device stores whose documents are pushed.

#![allow(dead_code)]

pub mod console;
pub mod live;
pub mod photos;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use sanjin_core::RecordDoc;
use sanjin_core::domain::RecordData;
use sanjin_core::protocol::{DocChanges, SyncRequest, SyncResponse};
use sanjin_fixtures::{FixtureRecord, Fixtures};
use sanjin_server::{AppState, EnrollRequest, Enrollment, Limits, Role, ServerData, app};
use sanjin_store::{Durability, Identity, Store};
use tempfile::TempDir;
use tower::ServiceExt;

/// The committed fixtures, loaded once.
pub fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| Fixtures::load(&sanjin_fixtures::committed_dir()).expect("fixtures load"))
}

/// The leader of group-01 and group-02 in the fixtures.
pub const LEADER_1: &str = "member-0002";

/// Members of a group who do not lead it.
pub fn members_of(group: &str) -> Vec<String> {
    let f = fixtures();
    let leader = f.leader_of(group).unwrap();
    f.members_of(group)
        .into_iter()
        .filter(|m| *m != leader)
        .map(str::to_string)
        .collect()
}

pub fn leader_of(group: &str) -> String {
    fixtures().leader_of(group).unwrap().to_string()
}

/// A small directory: the chapters, committees, groups 01 and 02, their contact points and
/// members, written as a JSON-lines file.
pub fn small_directory(dir: &Path) -> PathBuf {
    let f = fixtures();
    let keep_groups = ["group-01", "group-02"];
    let mut cps = Vec::new();
    for r in &f.directory {
        if let RecordData::Group(g) = &r.data
            && keep_groups.contains(&r.id.as_str())
        {
            cps.extend(g.contact_points.iter().cloned());
        }
    }
    let lines: Vec<String> = f
        .directory
        .iter()
        .filter(|r| match &r.data {
            RecordData::Chapter(_) | RecordData::Committee(_) => true,
            RecordData::Group(_) => keep_groups.contains(&r.id.as_str()),
            RecordData::ContactPoint(_) => cps.contains(&r.id),
            RecordData::Member(m) => keep_groups.contains(&m.group.as_str()),
            _ => false,
        })
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    let path = dir.join("directory.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// The number of records in [`small_directory`].
pub fn small_directory_len() -> usize {
    let d = TempDir::new().unwrap();
    std::fs::read_to_string(small_directory(d.path()))
        .unwrap()
        .lines()
        .count()
}

/// A server with the small directory imported and a staff account `office-01`.
pub struct Harness {
    pub dir: TempDir,
    pub state: AppState,
    pub router: Router,
    /// A real server on loopback that every request goes to (issue 10), if made by
    /// [`Harness::live`]; else requests go through the router without a socket.
    pub live: Option<live::Live>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as text (a console page).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The `error` code of an error reply.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

pub fn open_data(dir: &Path, limits: Limits) -> ServerData {
    let mut data = ServerData::open_with(&dir.join("data"), limits).unwrap();
    let directory = small_directory(dir);
    data.import_directory(&directory).unwrap();
    data.add_staff("office-01", "王芳", Role::Staff).unwrap();
    data.add_staff("admin-01", "李强", Role::Admin).unwrap();
    data
}

/// [`open_data`] on the in-memory storage (issue 11): the same server, no database file.
pub fn open_memory_data(dir: &Path, limits: Limits) -> ServerData {
    let identity = Identity {
        member: sanjin_server::SERVER_ID.into(),
        device: sanjin_server::SERVER_ID.into(),
        actor: random16().to_vec(),
    };
    let storage = sanjin_store::server::MemoryServerStorage::new(identity);
    let mut data = ServerData::with_storage(Box::new(storage), &dir.join("data"), limits).unwrap();
    let directory = small_directory(dir);
    data.import_directory(&directory).unwrap();
    data.add_staff("office-01", "王芳", Role::Staff).unwrap();
    data.add_staff("admin-01", "李强", Role::Admin).unwrap();
    data
}

impl Harness {
    pub fn new() -> Harness {
        Self::with_limits(Limits::default())
    }

    /// A harness whose server keeps its data in memory (issue 11).
    pub fn in_memory() -> Harness {
        let dir = TempDir::new().unwrap();
        let data = open_memory_data(dir.path(), Limits::default());
        let state = AppState::new(data);
        let router = app(state.clone());
        Harness {
            dir,
            state,
            router,
            live: None,
        }
    }

    pub fn with_limits(limits: Limits) -> Harness {
        let dir = TempDir::new().unwrap();
        let data = open_data(dir.path(), limits);
        let state = AppState::new(data);
        let router = app(state.clone());
        Harness {
            dir,
            state,
            router,
            live: None,
        }
    }

    /// The same data served by a real server on loopback (HTTPS with its self-signed
    /// certificate, `DATA/tls/`): every request of this harness crosses a socket.
    pub async fn live() -> Harness {
        let dir = TempDir::new().unwrap();
        drop(open_data(dir.path(), Limits::default()));
        let live = live::Live::start(&dir.path().join("data")).await;
        let state = live.running.state().clone();
        let router = app(state.clone());
        Harness {
            dir,
            state,
            router,
            live: Some(live),
        }
    }

    pub async fn data<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut ServerData) -> T + Send + 'static,
    ) -> T {
        self.state.with_data(f).await.unwrap()
    }

    pub async fn call(&self, req: Request<Body>) -> Reply {
        if let Some(live) = &self.live {
            return live.call(req).await;
        }
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Reply {
        let mut b = Request::builder().method(Method::GET).uri(path);
        if let Some(t) = bearer {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        self.call(b.body(Body::empty()).unwrap()).await
    }

    pub async fn post(&self, path: &str, bearer: Option<&str>, body: impl Into<Body>) -> Reply {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("content-type", "application/x-sanjin-sync");
        if let Some(t) = bearer {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        self.call(b.body(body.into()).unwrap()).await
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> Reply {
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap();
        self.call(req).await
    }

    /// Issues a code for `member` and enrolls a new device store of that member with it.
    pub async fn device(&self, member: &str) -> Device {
        let m = member.to_string();
        let code = self.data(move |d| d.issue_code(&m).unwrap()).await;
        let dir = TempDir::new().unwrap();
        let (device_id, actor) = sanjin_store::new_device();
        let identity = Identity {
            member: member.into(),
            device: device_id.clone(),
            actor: actor.clone(),
        };
        let mut store = Store::init(
            &dir.path().join("device.sqlite"),
            &identity,
            Durability::Normal,
        )
        .unwrap();
        // Issue 10: the device's signing key; its changes are signed as they are saved.
        let key = sanjin_core::sign::DeviceKey::from_seed(random32());
        store.set_signing_key(&key).unwrap();
        let req = EnrollRequest {
            code: code.code.clone(),
            device_name: format!("{member} 的手机"),
            device_id: Some(device_id),
            actor: Some(hex::encode(&actor)),
            member: Some(member.into()),
            public_key: Some(hex::encode(key.public())),
        };
        let reply = self
            .post_json("/v1/enroll", &serde_json::to_value(&req).unwrap())
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json());
        let creds: Enrollment = serde_json::from_slice(&reply.body).unwrap();
        Device {
            _dir: dir,
            store,
            creds,
            cursor: 0,
            epoch: [0; 16],
            acked: vec![],
        }
    }

    /// One exchange over HTTP; panics on a non-200 answer.
    pub async fn sync(&self, dev: &Device, req: &SyncRequest) -> SyncResponse {
        let reply = self
            .post("/v1/sync", Some(&dev.bearer()), req.encode())
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(
            reply.headers["content-type"],
            sanjin_server::SYNC_CONTENT_TYPE
        );
        SyncResponse::decode(&reply.body).unwrap()
    }

    /// Pushes the device's outbox and pulls, once; applies the answer to the device.
    pub async fn sync_once(&self, dev: &mut Device) -> SyncResponse {
        let req = dev.request(32 << 20);
        let resp = self.sync(dev, &req).await;
        dev.apply(&req, &resp);
        resp
    }

    /// Syncs until nothing is left to push and `more` is false. Returns the round trips.
    pub async fn sync_all(&self, dev: &mut Device, max_response_bytes: u32) -> usize {
        for n in 1..1000 {
            let req = dev.request(max_response_bytes);
            let resp = self.sync(dev, &req).await;
            dev.apply(&req, &resp);
            assert!(resp.refused.is_empty(), "{:?}", resp.refused);
            if !resp.more && dev.store.outbox().unwrap().is_empty() {
                return n;
            }
        }
        panic!("sync did not finish");
    }

    /// The number of change-log entries on the server.
    pub async fn log_len(&self) -> i64 {
        self.data(|d| {
            rusqlite::Connection::open(d.dir().join(sanjin_server::DB_FILE))
                .unwrap()
                .query_row("SELECT COUNT(*) FROM change_log", [], |r| r.get(0))
                .unwrap()
        })
        .await
    }
}

/// A device: its store, its credentials, and where it is in the server's change log.
pub struct Device {
    _dir: TempDir,
    pub store: Store,
    pub creds: Enrollment,
    pub cursor: u64,
    pub epoch: [u8; 16],
    /// The documents the last applied response acknowledged.
    pub acked: Vec<String>,
}

pub fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).unwrap();
    b
}

pub fn random16() -> [u8; 16] {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).unwrap();
    b
}

pub fn now() -> i64 {
    sanjin_store::now_ms()
}

impl Device {
    pub fn bearer(&self) -> String {
        format!("{}.{}", self.creds.device_id, self.creds.secret)
    }

    pub fn member(&self) -> &str {
        &self.creds.member
    }

    /// Records a visit of `group` (data from the fixtures, authored on this device).
    pub fn new_visit(&mut self, group: &str) -> String {
        let f = fixtures();
        let mut data = f
            .visits
            .iter()
            .find_map(|r| match &r.data {
                RecordData::Visit(v) if v.group == group => Some(v.clone()),
                _ => None,
            })
            .expect("a fixture visit of the group");
        data.participants = vec![self.member().to_string()];
        let id = sanjin_store::new_record_id();
        let mut doc =
            RecordDoc::create(&id, &RecordData::Visit(data), &self.store.author(), now()).unwrap();
        self.store.insert(&mut doc, true).unwrap();
        id
    }

    /// Saves a record made elsewhere (another author) into this store, queued for the server.
    pub fn insert(&mut self, doc: &mut RecordDoc) {
        self.store.insert(doc, true).unwrap();
    }

    /// The pushes of this device's outbox.
    pub fn pushes(&self) -> Vec<DocChanges> {
        self.store
            .outbox()
            .unwrap()
            .into_iter()
            .map(|e| {
                let mut doc = self.store.load(&e.id).unwrap();
                DocChanges {
                    doc_id: e.id.clone(),
                    changes: doc.save_after(&e.acked_heads),
                }
            })
            .collect()
    }

    pub fn request(&self, max_response_bytes: u32) -> SyncRequest {
        let pushes = self.pushes();
        let sigs = self.sigs_for(pushes.iter().map(|p| p.changes.as_slice()));
        SyncRequest {
            request_id: random16(),
            epoch: self.epoch,
            cursor: self.cursor,
            max_response_bytes,
            pushes,
            sigs,
            ..SyncRequest::default()
        }
    }

    /// What a real device sends with changes (issue 10): its own under one fresh signature,
    /// others' under the signatures it holds for them.
    pub fn sigs_for<'a>(
        &self,
        blobs: impl Iterator<Item = &'a [u8]>,
    ) -> Vec<sanjin_core::sign::ChangeSig> {
        let mut own = Vec::new();
        let mut foreign = Vec::new();
        for b in blobs {
            let mine = self.store.own_changes(b);
            for (h, _) in sanjin_core::sign::split_changes(b) {
                if mine.contains(&h) {
                    own.push(h);
                } else {
                    foreign.push(h);
                }
            }
        }
        let mut sigs = self.store.sigs_for(&foreign).unwrap();
        if !own.is_empty() {
            sigs.push(sanjin_core::sign::ChangeSig::sign(
                self.store.signing_key().unwrap(),
                &self.creds.device_id,
                sanjin_core::sign::SigKind::Changes,
                own,
            ));
        }
        sigs
    }

    /// Applies a response to `req`: acks first (with the heads the device holds, which are
    /// the heads it pushed: test devices do not edit between a request and its answer), then
    /// the pulled changes.
    pub fn apply(&mut self, req: &SyncRequest, resp: &SyncResponse) {
        self.acked = resp.acked(req).map(|p| p.doc_id.clone()).collect();
        for id in &self.acked {
            let heads = self.store.load(id).unwrap().heads();
            self.store.ack(id, &heads).unwrap();
        }
        for c in &resp.changes {
            self.store.apply_remote(&c.doc_id, &c.changes).unwrap();
        }
        if !resp.resync {
            self.cursor = resp.cursor;
            self.epoch = resp.epoch;
        }
    }

    pub fn has(&self, id: &str) -> bool {
        self.store.exists(id).unwrap()
    }
}

/// A fixture record's data by id.
pub fn fixture(id: &str) -> &'static FixtureRecord {
    fixtures()
        .all()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no fixture {id}"))
}
