//! Issue 12, point 6: a self-signed server on a LAN address. Devices pin the server's public
//! key, not its certificate: a server restarted with other `--hostname`s re-issues its
//! certificate with the same key pair and enrolled devices keep syncing; a server with another
//! key pair behind the same address is refused. A real server in this process on loopback
//! (HTTPS), the committed city fixtures (group-01: member-0001).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sanjin_client::{Error, SyncOptions, enroll, meta, pin, sync};
use sanjin_core::RecordDoc;
use sanjin_core::domain::RecordData;
use sanjin_core::testdata;
use sanjin_server::{Config, Running, SelfSignedCert, ServerData, TlsMode};
use sanjin_store::{Durability, Identity, Store, new_device, new_record_id, now_ms};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/city")
}

struct Server {
    rt: tokio::runtime::Runtime,
    running: Option<Running>,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Server {
    fn new(dir: &Path) -> Server {
        let mut data = ServerData::open(dir).unwrap();
        data.import_directory(&fixtures()).unwrap();
        drop(data);
        Server {
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
            running: None,
            dir: dir.to_path_buf(),
            addr: "127.0.0.1:0".parse().unwrap(),
        }
    }

    /// (Re)starts on the same address with a self-signed certificate for `hostnames`.
    fn start(&mut self, hostnames: &[&str]) -> SelfSignedCert {
        self.stop();
        let tls = TlsMode::SelfSigned {
            hostnames: hostnames.iter().map(|h| h.to_string()).collect(),
        };
        let mut config = Config::new(&self.dir, self.addr, tls);
        config.shutdown_grace = Duration::from_secs(2);
        let running = self.rt.block_on(sanjin_server::spawn(config)).unwrap();
        self.addr = running.addr();
        let done = running.self_signed().cloned().expect("self-signed");
        self.running = Some(running);
        done
    }

    fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown()).unwrap();
        }
    }

    fn url(&self) -> String {
        self.running.as_ref().unwrap().url()
    }

    fn cert_pem(&self) -> String {
        std::fs::read_to_string(self.running.as_ref().unwrap().certificate().unwrap()).unwrap()
    }

    fn key_pem(&self) -> String {
        std::fs::read_to_string(self.dir.join("tls").join("key.pem")).unwrap()
    }

    fn code(&self, member: &str) -> String {
        let m = member.to_string();
        let state = self.running.as_ref().unwrap().state().clone();
        self.rt
            .block_on(state.with_data(move |d| d.issue_code(&m).unwrap().code))
            .unwrap()
    }

    /// Whether the server holds record `id`.
    fn holds(&self, id: &str) -> bool {
        let id = id.to_string();
        let state = self.running.as_ref().unwrap().state().clone();
        self.rt
            .block_on(state.with_data(move |d| d.store().index_entry(&id).unwrap().is_some()))
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn phone(dir: &Path, server: &Server, member: &str) -> Store {
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
    let code = server.code(member);
    enroll(
        &mut s,
        &server.url(),
        &code,
        Some(&server.cert_pem()),
        "手机",
    )
    .unwrap();
    s
}

fn visit(s: &mut Store, title: &str) -> String {
    let mut v = testdata::visit();
    v.group = "group-01".into();
    v.contact_point = "cp-001".into();
    v.title = title.into();
    v.participants = vec![s.identity().member.clone()];
    let id = new_record_id();
    let mut doc = RecordDoc::create(&id, &RecordData::Visit(v), &s.author(), now_ms()).unwrap();
    s.insert(&mut doc, true).unwrap();
    id
}

fn opts() -> SyncOptions {
    SyncOptions {
        timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(5),
        backoff: Duration::from_millis(20),
        ..SyncOptions::default()
    }
}

#[test]
fn issue12_a_certificate_reissued_for_new_names_keeps_enrolled_devices_syncing() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::new(&dir.path().join("server"));
    assert_eq!(server.start(&[]), SelfSignedCert::Made);
    let (first_pem, key_pem) = (server.cert_pem(), server.key_pem());
    assert_eq!(
        sanjin_server::certificate_names(&first_pem).unwrap(),
        ["localhost", "127.0.0.1", "::1"]
    );
    let mut me = phone(dir.path(), &server, "member-0001");
    let v1 = visit(&mut me, "新华村座谈");
    sync(&mut me, &opts(), &mut |_| {}).unwrap();
    assert!(server.holds(&v1));

    // The same names again: the kept certificate, byte for byte.
    assert_eq!(server.start(&[]), SelfSignedCert::Kept);
    assert_eq!(server.cert_pem(), first_pem);

    // The server moves onto the LAN: new names, a new certificate, the same key pair.
    let done = server.start(&["sanjin.lan", "192.168.1.10"]);
    assert_eq!(
        done,
        SelfSignedCert::Reissued {
            old: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            names: vec![
                "localhost".into(),
                "127.0.0.1".into(),
                "::1".into(),
                "sanjin.lan".into(),
                "192.168.1.10".into()
            ],
        }
    );
    let lan_pem = server.cert_pem();
    assert_ne!(lan_pem, first_pem, "a new certificate");
    assert_eq!(server.key_pem(), key_pem, "the same key pair");
    let names = sanjin_server::certificate_names(&lan_pem).unwrap();
    assert!(
        names.contains(&"sanjin.lan".to_string()) && names.contains(&"192.168.1.10".to_string())
    );
    assert_eq!(
        pin::public_key_of(&lan_pem).unwrap(),
        pin::public_key_of(&first_pem).unwrap()
    );
    // Same names in another order, or spelt differently: kept.
    assert_eq!(
        server.start(&["192.168.1.10", "SANJIN.lan", " sanjin.lan "]),
        SelfSignedCert::Kept
    );
    assert_eq!(server.cert_pem(), lan_pem);

    // The phone enrolled before still holds the first certificate and still syncs.
    assert_eq!(me.meta(meta::CA_PEM).unwrap(), Some(first_pem.clone()));
    let v2 = visit(&mut me, "走访结对户");
    let sum = sync(&mut me, &opts(), &mut |_| {}).unwrap();
    assert_eq!(sum.sent, 1);
    assert!(server.holds(&v2));
    // A phone enrolled now, with the new certificate, too.
    let mut other = phone(dir.path(), &server, "member-0003");
    sync(&mut other, &opts(), &mut |_| {}).unwrap();
}

#[test]
fn issue12_a_server_with_another_key_pair_behind_the_same_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::new(&dir.path().join("server"));
    server.start(&[]);
    let mut me = phone(dir.path(), &server, "member-0001");
    sync(&mut me, &opts(), &mut |_| {}).unwrap();

    // Someone else's server (here: the same data with its tls folder replaced) on the address.
    server.stop();
    std::fs::remove_dir_all(dir.path().join("server/tls")).unwrap();
    assert_eq!(server.start(&[]), SelfSignedCert::Made);
    let v = visit(&mut me, "新华村座谈");
    let e = sync(&mut me, &opts(), &mut |_| {}).unwrap_err();
    assert!(matches!(e, Error::ServerKeyMismatch), "{e:?}");
    assert!(!e.is_transient(), "not retried as a network failure");
    // Nothing was sent; the record waits in the outbox.
    assert!(!server.holds(&v));
    assert_eq!(me.outbox().unwrap().len(), 1);
    // Enrolling with a certificate of another key pair is refused the same way.
    let mut fresh = phone(dir.path(), &server, "member-0003");
    let code = server.code("member-0003");
    let old = me.meta(meta::CA_PEM).unwrap().unwrap();
    let e = enroll(&mut fresh, &server.url(), &code, Some(&old), "手机").unwrap_err();
    assert!(matches!(e, Error::ServerKeyMismatch), "{e:?}");
}
