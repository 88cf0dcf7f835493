//! Issue 13, point 4, on a real phone: a device store enrolled with a real server on loopback
//! (TLS, self-signed certificate pinned) whose member staff move to another group. Its next
//! ordinary sync (`sync_then_photos`, what the app and `sanjin device sync` run) lands the visit
//! it recorded in its old group before the move, reads its new scope again (the server asks for
//! a resync), keeps the certificate the server re-issued for the new group with the role and
//! group it names, and holds the new group's records. Directory from the committed fixtures:
//! member-0001 is in group-01, member-0027 in group-02.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sanjin_client::{BlobOptions, SyncOptions, enroll, meta, sync_then_photos};
use sanjin_core::domain::RecordData;
use sanjin_core::{RecordDoc, testdata};
use sanjin_server::{Config, Running, ServerData, TlsMode};
use sanjin_store::{Durability, Identity, Store, new_device, new_record_id, now_ms};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/city")
}

struct Server {
    rt: tokio::runtime::Runtime,
    running: Running,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let mut data = ServerData::open(dir).unwrap();
        data.import_directory(&fixtures()).unwrap();
        drop(data);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut config = Config::new(
            dir,
            "127.0.0.1:0".parse().unwrap(),
            TlsMode::SelfSigned { hostnames: vec![] },
        );
        config.shutdown_grace = Duration::from_secs(2);
        let running = rt.block_on(sanjin_server::spawn(config)).unwrap();
        Server { rt, running }
    }

    fn with_data<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut ServerData) -> T + Send + 'static,
    ) -> T {
        let state = self.running.state().clone();
        self.rt.block_on(state.with_data(f)).unwrap()
    }

    fn device(&self, dir: &Path, member: &str) -> Store {
        let (device, actor) = new_device();
        let mut s = Store::init(
            &dir.join(format!("{member}-{device}.sqlite")),
            &Identity {
                member: member.into(),
                device,
                actor,
            },
            Durability::Normal,
        )
        .unwrap();
        let m = member.to_string();
        let code = self.with_data(move |d| d.issue_code(&m).unwrap().code);
        let pem = std::fs::read_to_string(self.running.certificate().unwrap()).unwrap();
        enroll(&mut s, &self.running.url(), &code, Some(&pem), "测试手机").unwrap();
        s
    }
}

fn visit(s: &mut Store, group: &str, title: &str) -> String {
    let mut v = testdata::visit();
    v.group = group.into();
    v.title = title.into();
    v.participants = vec![s.identity().member.clone()];
    let id = new_record_id();
    let mut doc = RecordDoc::create(&id, &RecordData::Visit(v), &s.author(), now_ms()).unwrap();
    s.insert(&mut doc, true).unwrap();
    id
}

fn sync(s: &mut Store) -> sanjin_client::FlowSummary {
    sync_then_photos(
        s,
        &SyncOptions::default(),
        &BlobOptions::default(),
        &mut |_| {},
    )
    .unwrap()
}

#[test]
fn issue13_a_moved_members_phone_keeps_its_new_certificate_and_reads_its_new_group() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"));
    let mut a = server.device(tmp.path(), "member-0001");
    let mut b = server.device(tmp.path(), "member-0027");
    let mut first = sync(&mut a);
    assert!(!first.trust.cert_renewed, "nothing re-issued yet");
    let in_group2 = visit(&mut b, "group-02", "第二组入户走访");
    sync(&mut b);
    let before = visit(&mut a, "group-01", "调组前已同步的走访");
    first = sync(&mut a);
    assert!(
        first.records.refused.is_empty(),
        "{:?}",
        first.records.refused
    );
    assert!(!a.exists(&in_group2).unwrap());
    // Recorded offline in group-01, still on the phone when staff move the member.
    let pending = visit(&mut a, "group-01", "调组前未同步的走访");

    let report = server.with_data(|d| {
        d.move_member("office-01", "member-0001", "group-02", None)
            .unwrap()
    });
    assert_eq!(report.certificates_reissued, 1);

    let s = sync(&mut a);
    assert!(s.records.resynced, "the phone read its new scope again");
    assert!(s.trust.cert_renewed, "{:?}", s.trust);
    assert_eq!(a.meta(meta::GROUP).unwrap().as_deref(), Some("group-02"));
    let device = a.identity().device.clone();
    let cert = a.cert(&device).unwrap().unwrap();
    assert_eq!(cert.group.as_deref(), Some("group-02"));
    assert!(a.exists(&in_group2).unwrap(), "the new group's records");
    // The visit made before the move landed on the server, attributed to its author; the
    // one synced before stays as it was.
    let p = pending.clone();
    let (landed, author) = server.with_data(move |d| {
        let landed = d.store().exists(&p).unwrap();
        let mut doc = d.store().load(&before).unwrap();
        (landed, doc.history()[0].member.clone())
    });
    assert!(landed, "{:?}", s.records.refused);
    assert_eq!(author, "member-0001");
    assert!(
        !s.records.refused.iter().any(|(id, _, _)| *id == pending),
        "{:?}",
        s.records.refused
    );
    // The next sync is an ordinary one.
    let again = sync(&mut a);
    assert!(!again.records.resynced);
    assert!(!again.trust.cert_renewed);
}
