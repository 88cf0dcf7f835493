//! Issue 3, end to end: a real `sanjin serve` process with a self-signed TLS certificate on
//! loopback, real device stores driven through the `sanjin` CLI.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use sanjin_fixtures::Fixtures;
use serde_json::Value;

use crate::support::{Run, run, sanjin};

/// A `sanjin serve` child process; killed (SIGKILL) when dropped.
pub(crate) struct Server {
    child: Child,
    url: String,
    cert: PathBuf,
    pub(crate) data: PathBuf,
    /// What the server printed before "listening on" (issue 12: the certificate's lines).
    banner: String,
}

impl Server {
    pub(crate) fn start(data: &Path, listen: &str) -> Server {
        Server::start_with(data, listen, &[])
    }

    /// `sanjin serve --tls-self-signed` with more arguments (`--hostname …`).
    pub(crate) fn start_with(data: &Path, listen: &str, more: &[&str]) -> Server {
        let mut child = sanjin()
            .args(["serve", "--data"])
            .arg(data)
            .args(["--listen", listen, "--tls-self-signed"])
            .args(more)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("sanjin serve starts");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut line = String::new();
        let mut banner = String::new();
        let url = loop {
            line.clear();
            assert!(
                Instant::now() < deadline,
                "the server did not say where it listens"
            );
            if out.read_line(&mut line).unwrap() == 0 {
                panic!("sanjin serve exited before listening");
            }
            if let Some(url) = line.trim().strip_prefix("listening on ") {
                break url.to_string();
            }
            banner.push_str(&line);
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in out.lines() {});
        Server {
            child,
            url,
            cert: data.join("tls").join("cert.pem"),
            data: data.to_path_buf(),
            banner,
        }
    }

    /// The server process's id (issue 10: its memory is read from /proc).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    fn port(&self) -> String {
        self.url
            .rsplit(':')
            .next()
            .unwrap()
            .trim_end_matches('/')
            .to_string()
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    pub(crate) fn admin(&self, args: &[&str]) -> Run {
        let out = sanjin()
            .arg("admin")
            .arg("--data")
            .arg(&self.data)
            .args(args)
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// A device store for `member`, initialised and enrolled.
    pub(crate) fn phone(&self, dir: &Path, member: &str) -> PathBuf {
        let store = dir.join(format!("{member}.sqlite"));
        run(&store, &["device", "init", "--member", member]).ok();
        let code: Value =
            serde_json::from_str(&self.admin(&["issue-code", member, "--json"]).ok().stdout)
                .unwrap();
        let code = code["code"].as_str().unwrap().to_string();
        run(
            &store,
            &[
                "device",
                "enroll",
                "--server",
                &self.url,
                "--code",
                &code,
                "--ca",
                self.cert.to_str().unwrap(),
            ],
        )
        .ok();
        store
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn fixtures() -> Fixtures {
    Fixtures::load(&sanjin_fixtures::committed_dir()).unwrap()
}

pub(crate) fn record_visit(store: &Path, group: &str, cp: &str, title: &str) -> String {
    run(
        store,
        &[
            "device",
            "record",
            "visit",
            "--target",
            "village",
            "--contact-point",
            cp,
            "--group",
            group,
            "--type",
            "调研座谈",
            "--start",
            "2026-05-19 09:00",
            "--end",
            "2026-05-19 11:00",
            "--title",
            title,
            "--summary",
            "听取村民意见。",
        ],
    )
    .ok()
    .stdout
    .trim()
    .to_string()
}

fn sync(store: &Path) -> Value {
    serde_json::from_str(&run(store, &["device", "sync", "--json"]).ok().stdout).unwrap()
}

fn show(store: &Path, id: &str) -> Value {
    serde_json::from_str(&run(store, &["device", "show", id, "--json"]).ok().stdout).unwrap()
}

fn visit_ids(store: &Path) -> Vec<String> {
    let rows: Value =
        serde_json::from_str(&run(store, &["device", "list", "--json"]).ok().stdout).unwrap();
    let mut ids: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// Three members and their leader record offline, sync in different orders, edit the same visit
/// concurrently: all converge, the leader sees the conflict and resolves it, the resolution
/// reaches every phone. Another group's records never arrive.
#[test]
fn a_group_syncs_converges_and_its_leader_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"), "127.0.0.1:0");
    server
        .admin(&[
            "import-directory",
            sanjin_fixtures::committed_dir().to_str().unwrap(),
        ])
        .ok();
    let fx = fixtures();
    let leader_id = fx.leader_of("group-01").unwrap().to_string();
    let members: Vec<String> = fx
        .members_of("group-01")
        .into_iter()
        .filter(|m| *m != leader_id)
        .take(3)
        .map(String::from)
        .collect();
    let other = fx.members_of("group-02")[0].to_string();

    let leader = server.phone(dir.path(), &leader_id);
    let phones: Vec<PathBuf> = members
        .iter()
        .map(|m| server.phone(dir.path(), m))
        .collect();
    let outsider = server.phone(dir.path(), &other);

    // Everyone records offline first.
    let mut ids = Vec::new();
    for (i, p) in phones.iter().enumerate() {
        ids.push(record_visit(
            p,
            "group-01",
            "cp-001",
            &format!("第{i}次走访"),
        ));
    }
    ids.push(record_visit(&leader, "group-01", "cp-001", "组长走访"));
    let secret = record_visit(&outsider, "group-02", "cp-002", "另一组的走访");

    // Sync in different orders; the first sync of each phone is one round trip.
    let first = sync(&phones[2]);
    assert_eq!(first["round_trips"], 1, "{first}");
    assert_eq!(first["sent"], 1);
    sync(&leader);
    sync(&outsider);
    sync(&phones[0]);
    sync(&phones[1]);
    sync(&phones[2]);
    sync(&leader);
    // A second round brings each phone what the others pushed after its first sync.
    for p in phones.iter().chain([&leader]) {
        sync(p);
    }
    ids.sort();
    for p in phones.iter().chain([&leader]) {
        assert_eq!(
            visit_ids(p),
            ids,
            "{} holds the group's visits, and only those",
            p.display()
        );
    }
    assert_eq!(visit_ids(&outsider), vec![secret.clone()]);

    // The same visit edited concurrently on two phones.
    let target = ids[0].clone();
    run(
        &phones[0],
        &["device", "edit", &target, "title", "甲的标题"],
    )
    .ok();
    run(
        &phones[1],
        &["device", "edit", &target, "title", "乙的标题"],
    )
    .ok();
    run(
        &phones[1],
        &[
            "device",
            "edit",
            &target,
            "summary",
            "听取村民意见。形成两条建议。",
        ],
    )
    .ok();
    sync(&phones[1]);
    sync(&phones[0]);
    let l = sync(&leader);
    assert!(l["conflicts"].as_u64().unwrap() >= 1, "{l}");
    let v = show(&leader, &target);
    let conflict = &v["record"]["conflicts"][0];
    assert_eq!(conflict["field"], "title");
    assert_eq!(conflict["values"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["record"]["data"]["summary"],
        "听取村民意见。形成两条建议。"
    );

    run(
        &leader,
        &["device", "resolve", &target, "title", "乙的标题"],
    )
    .ok();
    let after = sync(&leader);
    assert_eq!(after["round_trips"], 1, "{after}");
    for p in &phones {
        sync(p);
        let v = show(p, &target);
        assert_eq!(
            v["record"]["conflicts"],
            serde_json::json!([]),
            "{}",
            p.display()
        );
        assert_eq!(v["record"]["data"]["title"], "乙的标题");
    }
    // Every phone holds the same document.
    let reference = show(&leader, &target)["record"].clone();
    for p in &phones {
        assert_eq!(show(p, &target)["record"], reference);
    }
    // The outsider never received any of it, and asking directly is refused.
    assert_eq!(visit_ids(&outsider), vec![secret.clone()]);
    let store = sanjin_store::Store::open(&outsider, sanjin_store::Durability::Full).unwrap();
    let client = sanjin_client::client_for(&store, sanjin_client::Timeouts::default()).unwrap();
    match client.fetch_record(&target) {
        Err(sanjin_client::Error::Http { status: 403, .. }) => {}
        other => panic!("expected 403, got {:?}", other.map(|b| b.len())),
    }
    // And a member of group-01 asking for group-02's record is refused too.
    let store = sanjin_store::Store::open(&phones[0], sanjin_store::Durability::Full).unwrap();
    let client = sanjin_client::client_for(&store, sanjin_client::Timeouts::default()).unwrap();
    assert!(matches!(
        client.fetch_record(&secret),
        Err(sanjin_client::Error::Http { status: 403, .. })
    ));
    assert!(
        client.fetch_record(&target).is_ok(),
        "its own group's record is readable"
    );
}

/// A revoked device is refused and keeps what it recorded; garbage bodies get a 4xx and the
/// server keeps serving.
#[test]
fn revoked_devices_and_garbage_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"), "127.0.0.1:0");
    server
        .admin(&[
            "import-directory",
            sanjin_fixtures::committed_dir().to_str().unwrap(),
        ])
        .ok();
    let fx = fixtures();
    let members = fx.members_of("group-03");
    let a = server.phone(dir.path(), members[0]);
    let b = server.phone(dir.path(), members[1]);

    let store = sanjin_store::Store::open(&a, sanjin_store::Durability::Full).unwrap();
    let client = sanjin_client::client_for(&store, sanjin_client::Timeouts::default()).unwrap();
    for body in [
        &b""[..],
        b"garbage",
        b"SJ\x01\x00\x01\x00",
        b"SJ\x09\x00\x01\x00abc",
    ] {
        match client.post_sync(body) {
            Err(sanjin_client::Error::Http { status, .. }) => assert_eq!(status, 400, "{body:?}"),
            other => panic!("{body:?}: expected 400, got {:?}", other.map(|b| b.len())),
        }
    }
    drop(store);

    let id = record_visit(&b, "group-03", "cp-003", "停用前的记录");
    let devices: Value =
        serde_json::from_str(&server.admin(&["devices", "--json"]).ok().stdout).unwrap();
    let device = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["member"] == members[1])
        .unwrap()["device_id"]
        .as_str()
        .unwrap()
        .to_string();
    server.admin(&["revoke", &device]).ok();
    let refused = run(&b, &["device", "sync"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("停用"), "{}", refused.stderr);
    assert_eq!(
        visit_ids(&b),
        vec![id],
        "the revoked device keeps its records"
    );
    // The other device is unaffected.
    sync(&a);
}

/// The server is killed with SIGKILL in the middle of syncs and restarted: nothing it
/// acknowledged is lost, and the devices converge after retrying.
#[test]
fn a_killed_server_loses_nothing_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let mut server = Server::start(&data, "127.0.0.1:0");
    server
        .admin(&[
            "import-directory",
            sanjin_fixtures::committed_dir().to_str().unwrap(),
        ])
        .ok();
    let fx = fixtures();
    let members = fx.members_of("group-05");
    let phones: Vec<PathBuf> = members
        .iter()
        .take(3)
        .map(|m| server.phone(dir.path(), m))
        .collect();
    let mut all = Vec::new();
    for (i, p) in phones.iter().enumerate() {
        for j in 0..25 {
            all.push(record_visit(
                p,
                "group-05",
                "cp-005",
                &format!("设备{i}第{j}条"),
            ));
        }
    }
    // Syncs run concurrently with small batches (many round trips), and the server dies midway.
    let mut children: Vec<Child> = phones
        .iter()
        .map(|p| {
            let mut c = sanjin();
            c.args(["device", "sync", "--batch-bytes", "2048"])
                .arg("--store")
                .arg(p);
            c.stdout(Stdio::null()).stderr(Stdio::null());
            c.spawn().unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let port = server.port();
    server.kill();
    for c in &mut children {
        let _ = c.wait();
    }
    // What each device holds as acknowledged (not in its outbox) must be on the server.
    let server_store =
        sanjin_store::Store::open(&data.join("sanjin.sqlite"), sanjin_store::Durability::Full)
            .unwrap();
    for p in &phones {
        let s = sanjin_store::Store::open(p, sanjin_store::Durability::Full).unwrap();
        let queued: Vec<String> = s.outbox().unwrap().into_iter().map(|e| e.id).collect();
        for (id, kind) in s.ids().unwrap() {
            if kind != "visit" || queued.contains(&id) {
                continue;
            }
            let mut ours = s.load(&id).unwrap();
            let mut theirs = server_store
                .load(&id)
                .unwrap_or_else(|e| panic!("acknowledged {id} lost: {e}"));
            for h in ours.heads() {
                assert!(theirs.has_change(&h), "acknowledged change of {id} lost");
            }
        }
    }
    drop(server_store);

    let _restarted = Server::start(&data, &format!("127.0.0.1:{port}"));
    for p in &phones {
        sync(p);
    }
    for p in &phones {
        sync(p);
    }
    all.sort();
    for p in &phones {
        assert_eq!(visit_ids(p), all, "{} converged", p.display());
        let s = sanjin_store::Store::open(p, sanjin_store::Durability::Full).unwrap();
        assert!(s.outbox().unwrap().is_empty(), "everything acknowledged");
    }
}

/// Issue 10: a member records a visit of another group, which the server refuses. `device list`
/// marks it (text and `--json`), `device show` explains it in Chinese, and the next sync does
/// not send it again; a change to it takes the mark away until the server answers again.
#[test]
fn issue10_device_list_marks_a_refused_record_and_show_explains_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"), "127.0.0.1:0");
    server
        .admin(&[
            "import-directory",
            sanjin_fixtures::committed_dir().to_str().unwrap(),
        ])
        .ok();
    let fx = fixtures();
    let leader = fx.leader_of("group-01").unwrap();
    let member = fx
        .members_of("group-01")
        .into_iter()
        .find(|m| *m != leader)
        .unwrap()
        .to_string();
    let phone = server.phone(dir.path(), &member);
    // cp-006 is one of group-02's contact points (fixtures/city).
    let foreign = record_visit(&phone, "group-02", "cp-006", "第二组联系点走访");
    let own = record_visit(&phone, "group-01", "cp-001", "本组联系点走访");

    let first = sync(&phone);
    assert_eq!(first["sent"], 1, "{first}");
    let refused = first["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{first}");
    assert_eq!(refused[0]["id"], foreign.as_str());
    assert_eq!(refused[0]["code"], "forbidden");

    // The list marks the refused record only.
    let text = run(&phone, &["device", "list"]).ok().stdout;
    let line = |id: &str| text.lines().find(|l| l.contains(id)).unwrap().to_string();
    assert!(line(&foreign).contains("⛔已被服务器拒收"), "{text}");
    assert!(!line(&own).contains("拒收"), "{text}");
    assert!(text.contains("其中 1 条已被服务器拒收"), "{text}");
    let rows: Value =
        serde_json::from_str(&run(&phone, &["device", "list", "--json"]).ok().stdout).unwrap();
    let row = |id: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(row(&foreign)["refused"], true);
    assert_eq!(row(&own)["refused"], false);
    // Existing fields are still there.
    assert_eq!(row(&foreign)["title"], "第二组联系点走访");
    assert_eq!(row(&own)["group"], "group-01");

    // `device show` says why, in Chinese, and what to do.
    let shown = run(&phone, &["device", "show", &foreign]).ok().stdout;
    assert!(
        shown.contains("服务器拒收了这条记录")
            && shown.contains("无权写入这条记录（不在本人活动组的范围内）"),
        "{shown}"
    );
    let own_shown = run(&phone, &["device", "show", &own]).ok().stdout;
    assert!(!own_shown.contains("拒收"), "{own_shown}");
    assert_eq!(show(&phone, &foreign)["refused"]["code"], "forbidden");

    // Not sent again: no answer for it at all on the next sync, and it stays on the phone.
    let second = sync(&phone);
    assert_eq!(second["sent"], 0, "{second}");
    assert_eq!(second["refused"], serde_json::json!([]), "{second}");
    assert!(visit_ids(&phone).contains(&foreign));

    // Changed, it is no longer marked (it will be sent again)…
    run(
        &phone,
        &[
            "device",
            "edit",
            &foreign,
            "title",
            "第二组联系点走访（补充）",
        ],
    )
    .ok();
    let text = run(&phone, &["device", "list"]).ok().stdout;
    assert!(!text.contains("拒收"), "{text}");
    // …and the server refuses it again.
    let third = sync(&phone);
    assert_eq!(third["refused"][0]["id"], foreign.as_str(), "{third}");
    let text = run(&phone, &["device", "list"]).ok().stdout;
    assert!(text.contains("⛔已被服务器拒收"), "{text}");
}

/// Issue 12, point 6: a self-signed server moved onto a LAN address. Restarted with
/// `--hostname`, it re-issues its certificate for the new names with the same key pair (and says
/// so); a phone enrolled before keeps syncing, because devices pin the server's public key. A
/// server with another key pair on the same address is refused with a Chinese message saying
/// what to do, and nothing is sent.
#[test]
fn issue12_a_lan_server_reissues_its_certificate_and_enrolled_phones_keep_syncing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let mut server = Server::start(&data, "127.0.0.1:0");
    server
        .admin(&[
            "import-directory",
            sanjin_fixtures::committed_dir().to_str().unwrap(),
        ])
        .ok();
    let phone = server.phone(dir.path(), "member-0001");
    record_visit(&phone, "group-01", "cp-001", "新华村座谈");
    assert_eq!(sync(&phone)["sent"], 1);
    let first = std::fs::read_to_string(&server.cert).unwrap();
    let key = std::fs::read_to_string(data.join("tls/key.pem")).unwrap();
    let port = server.port();
    server.kill();

    let lan = Server::start_with(
        &data,
        &format!("127.0.0.1:{port}"),
        &["--hostname", "sanjin.lan", "--hostname", "192.168.1.10"],
    );
    assert!(
        lan.banner.contains("自签名证书已按新的主机名重新签发")
            && lan.banner.contains("sanjin.lan、192.168.1.10")
            && lan.banner.contains("无需重新注册"),
        "{}",
        lan.banner
    );
    let reissued = std::fs::read_to_string(&lan.cert).unwrap();
    assert_ne!(reissued, first);
    assert_eq!(
        std::fs::read_to_string(data.join("tls/key.pem")).unwrap(),
        key
    );
    let names = sanjin_server::certificate_names(&reissued).unwrap();
    for n in [
        "localhost",
        "127.0.0.1",
        "::1",
        "sanjin.lan",
        "192.168.1.10",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
    }
    record_visit(&phone, "group-01", "cp-001", "走访结对户");
    assert_eq!(sync(&phone)["sent"], 1, "the enrolled phone still syncs");
    // A restart with the same names keeps the certificate and says nothing about it.
    drop(lan);
    let again = Server::start_with(
        &data,
        &format!("127.0.0.1:{port}"),
        &["--hostname", "192.168.1.10", "--hostname", "sanjin.lan"],
    );
    assert!(!again.banner.contains("重新签发"), "{}", again.banner);
    assert_eq!(std::fs::read_to_string(&again.cert).unwrap(), reissued);
    drop(again);

    // Another key pair behind the same address: refused, in Chinese, saying what to do.
    std::fs::remove_dir_all(data.join("tls")).unwrap();
    let _other = Server::start(&data, &format!("127.0.0.1:{port}"));
    record_visit(&phone, "group-01", "cp-001", "园区企业座谈");
    let refused = run(&phone, &["device", "sync"]);
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert!(
        refused
            .stderr
            .contains("服务器的密钥与本设备注册时记下的不同")
            && refused.stderr.contains("向管理员核对服务器地址")
            && refused.stderr.contains("重新注册"),
        "{}",
        refused.stderr
    );
    let s = sanjin_store::Store::open(&phone, sanjin_store::Durability::Full).unwrap();
    assert_eq!(
        s.outbox().unwrap().len(),
        1,
        "the new visit waits, nothing lost"
    );
}
