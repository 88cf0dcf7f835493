//! Phone to phone (issue 12) on loopback: several device stores enrolled with a real server on
//! loopback (TLS, self-signed certificate pinned), which is then stopped; the phones meet
//! without it. Directory from the committed fixtures (`fixtures/city`): group-01 has members
//! member-0001 … member-0020 with leader member-0002; member-0027 is in group-02.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sanjin_client::enroll;
use sanjin_client::meet::{JoinOptions, MeetError, MeetSession, ServeOptions, join};
use sanjin_server::{Config, Running, ServerData, TlsMode};
use sanjin_store::{Durability, Identity, Store, new_device};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/city")
}

/// A real server in this process, only for enrolling the phones.
struct Server {
    rt: tokio::runtime::Runtime,
    running: Option<Running>,
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
        Server {
            rt,
            running: Some(running),
        }
    }

    fn with_data<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut ServerData) -> T + Send + 'static,
    ) -> T {
        let state = self.running.as_ref().unwrap().state().clone();
        self.rt.block_on(state.with_data(f)).unwrap()
    }

    /// An enrolled device store for `member` in `dir`.
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
        let running = self.running.as_ref().unwrap();
        let pem = std::fs::read_to_string(running.certificate().unwrap()).unwrap();
        enroll(&mut s, &running.url(), &code, Some(&pem), "测试设备").unwrap();
        s
    }

    fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown()).unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve_opts() -> ServeOptions {
    ServeOptions {
        bind: "127.0.0.1:0".parse().unwrap(),
        io_timeout: Duration::from_secs(20),
        ..ServeOptions::default()
    }
}

fn join_opts() -> JoinOptions<'static> {
    JoinOptions {
        timeout: Duration::from_secs(20),
        ..JoinOptions::default()
    }
}

/// A code that is not the session's.
fn wrong(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

#[test]
fn issue12_wrong_code_three_times_closes_it_and_expired_sessions_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("server"));
    let leader = server.device(dir.path(), "member-0002");
    let mut m1 = server.device(dir.path(), "member-0001");
    server.stop();

    let mut session = MeetSession::serve(leader, serve_opts()).unwrap();
    let inv = session.invite().clone();
    let bad = format!("{}@{}", wrong(&inv.code), inv.addr);
    let e = join(&mut m1, &bad, join_opts()).unwrap_err();
    assert!(matches!(e, MeetError::WrongCode { left: 2 }), "{e:?}");
    assert!(e.zh().contains("还可再试 2 次"), "{}", e.zh());
    let e = join(&mut m1, &bad, join_opts()).unwrap_err();
    assert!(matches!(e, MeetError::WrongCode { left: 1 }), "{e:?}");
    let e = join(&mut m1, &bad, join_opts()).unwrap_err();
    assert!(matches!(e, MeetError::CodeClosed), "{e:?}");
    // Closed: even the right code is refused now; the QR still works.
    let e = join(&mut m1, &inv.code_text(), join_opts()).unwrap_err();
    assert!(matches!(e, MeetError::CodeClosed), "{e:?}");
    assert!(e.zh().contains("已因连续输错三次而关闭"), "{}", e.zh());
    assert!(!session.status().code_open);
    join(&mut m1, &inv.qr_text(), join_opts()).unwrap();
    let st = session.stop();
    assert_eq!(st.peers.iter().filter(|p| p.exchange.is_some()).count(), 1);

    // An expired session refuses both the code and the QR.
    let leader = Store::open(
        &dir.path().join(leader_file(dir.path(), "member-0002")),
        Durability::Normal,
    )
    .unwrap();
    let session = MeetSession::serve(
        leader,
        ServeOptions {
            ttl: Duration::from_millis(200),
            ..serve_opts()
        },
    )
    .unwrap();
    let inv = session.invite().clone();
    std::thread::sleep(Duration::from_millis(300));
    for t in [inv.code_text(), inv.qr_text()] {
        let e = join(&mut m1, &t, join_opts()).unwrap_err();
        assert!(matches!(e, MeetError::Expired), "{e:?}");
        assert!(e.zh().contains("会面已过期"), "{}", e.zh());
    }
    assert!(session.status().expired);
}

fn leader_file(dir: &Path, member: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name().unwrap().to_string_lossy().starts_with(member)
                && p.extension().is_some_and(|x| x == "sqlite")
        })
        .unwrap()
}

#[test]
fn issue12_the_right_code_and_the_qr_join_and_a_false_fingerprint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("server"));
    let leader = server.device(dir.path(), "member-0002");
    let mut m1 = server.device(dir.path(), "member-0001");
    server.stop();
    let mut session = MeetSession::serve(leader, serve_opts()).unwrap();
    let inv = session.invite().clone();
    let started = Instant::now();
    let r = join(&mut m1, &inv.code_text(), join_opts()).unwrap();
    assert_eq!(r.peer.member, "member-0002");
    assert_eq!(r.peer.role, "leader");
    join(&mut m1, &inv.qr_text(), join_opts()).unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    // A QR whose fingerprint is not the session certificate's: a man in the middle.
    let mut forged = inv.clone();
    forged.fingerprint[0] ^= 1;
    let e = join(&mut m1, &forged.qr_text(), join_opts()).unwrap_err();
    assert!(matches!(e, MeetError::FingerprintMismatch), "{e:?}");
    assert!(e.zh().contains("证书与二维码不符"));
    // The right fingerprint with another key: refused.
    let mut forged = inv.clone();
    forged.key = "AAAAAAAAAAAAAAAAAAAAAAAAAA".into();
    let e = join(&mut m1, &forged.qr_text(), join_opts()).unwrap_err();
    assert!(matches!(e, MeetError::WrongKey), "{e:?}");
    let st = session.stop();
    assert_eq!(st.peers.iter().filter(|p| p.exchange.is_some()).count(), 2);
    assert!(st.peers.iter().any(|p| {
        p.error
            .as_deref()
            .is_some_and(|e| e.contains("二维码已失效"))
    }));
}

#[test]
fn issue12_another_group_and_a_tampered_certificate_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("server"));
    let leader = server.device(dir.path(), "member-0002");
    let mut other = server.device(dir.path(), "member-0027");
    let mut m3 = server.device(dir.path(), "member-0003");
    server.stop();
    let mut session = MeetSession::serve(leader, serve_opts()).unwrap();
    let inv = session.invite().clone();

    // member-0027 (group-02) judges the leader first: another group.
    let e = join(&mut other, &inv.qr_text(), join_opts()).unwrap_err();
    assert!(
        matches!(e, MeetError::OtherGroup { ref group } if group == "group-01"),
        "{e:?}"
    );
    assert!(e.zh().contains("另一个活动组（group-01）"), "{}", e.zh());
    // The leader's side refused it as well, for the same reason, and saved nothing.
    std::thread::sleep(Duration::from_millis(100));
    let st = session.status();
    assert!(st.peers.iter().all(|p| p.exchange.is_none()));

    // member-0003's certificate altered in its own store (it claims group-02's leader role).
    let own = m3.identity().device.clone();
    let mut cert = m3.cert(&own).unwrap().unwrap();
    cert.role = "staff".into();
    m3.put_cert(&cert).unwrap();
    let e = join(&mut m3, &inv.qr_text(), join_opts()).unwrap_err();
    match &e {
        MeetError::RefusedBy(inner) => {
            assert!(matches!(**inner, MeetError::NotByServer { .. }), "{e:?}")
        }
        _ => panic!("{e:?}"),
    }
    assert!(
        e.zh().contains("不是本机登记的服务器签发的，或已被改动"),
        "{}",
        e.zh()
    );
    let st = session.stop();
    assert!(st.peers.iter().all(|p| p.exchange.is_none()));
    assert!(
        st.peers
            .iter()
            .any(|p| p.error.as_deref().is_some_and(|e| e.contains("已被改动")))
    );
}
