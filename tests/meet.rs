//! Issue 12: `sanjin device meet --serve` / `--join` end to end between processes on loopback,
//! the phones enrolled offline with keys and certificates made in the test (no server).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use sanjin_client::bundle::testing::TestTrust;
use sanjin_core::domain::RecordData;
use sanjin_core::{RecordDoc, testdata};
use sanjin_store::{Durability, Identity, Store};
use serde_json::Value;

use crate::support::{run, sanjin};

const T0: i64 = 1_747_616_400_000;

fn phone(dir: &Path, t: &TestTrust, n: u8, role: &str, group: &str, visits: usize) -> PathBuf {
    let path = dir.join(format!("p{n}.sqlite"));
    let identity = Identity {
        member: format!("member-{n:04}"),
        device: format!("device-{n:02}"),
        actor: vec![n; 16],
    };
    let mut s = Store::init(&path, &identity, Durability::Normal).unwrap();
    t.enroll(&mut s, 100 + n, role, Some(group), T0);
    for i in 0..visits {
        let mut v = testdata::visit();
        v.group = group.into();
        v.title = format!("第 {i} 次走访（{n} 号）");
        let id = format!("v-{n:02}-{i:03}");
        let mut doc = RecordDoc::create(&id, &RecordData::Visit(v), &s.author(), T0).unwrap();
        s.insert(&mut doc, true).unwrap();
    }
    path
}

#[test]
fn issue12_cli_meet_serve_and_join_with_the_code_and_the_qr() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestTrust::new(7, &["group-01", "group-02"], T0);
    let leader = phone(dir.path(), &t, 2, "leader", "group-01", 1);
    let member = phone(dir.path(), &t, 1, "member", "group-01", 3);
    let stranger = phone(dir.path(), &t, 27, "member", "group-02", 1);

    let mut serve = sanjin()
        .args([
            "device",
            "meet",
            "--serve",
            "--bind",
            "127.0.0.1:0",
            "--minutes",
            "1",
            "--json",
            "--store",
        ])
        .arg(&leader)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(serve.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["event"], "serving");
    let qr = first["qr"].as_str().unwrap().to_string();
    let code = first["code"].as_str().unwrap().to_string();
    assert!(qr.starts_with("sanjin-meet:1:127.0.0.1:"), "{qr}");

    // With the typed code: the member's three visits go, the leader's one comes.
    let j = run(&member, &["device", "meet", "--join", &code]).ok();
    assert!(
        j.stdout.contains("已与 member-0002（设备 device-02）同步"),
        "{}",
        j.stdout
    );
    assert!(
        j.stdout
            .contains("收到 1 条新的或更新的记录，发给组长 3 条；组长收下 3 条"),
        "{}",
        j.stdout
    );
    assert!(j.stderr.contains("正在核对双方的设备证书"), "{}", j.stderr);
    // With the QR, as JSON: nothing new either way.
    let j = run(&member, &["device", "meet", "--join", &qr, "--json"]).ok();
    let r: Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(
        (r["sent"].as_u64(), r["landed"].as_u64()),
        (Some(0), Some(0)),
        "{r}"
    );
    assert_eq!(r["peer"]["member"], "member-0002");
    // Another group's phone, and a code that is no code: refused, exit 2, in Chinese.
    run(&stranger, &["device", "meet", "--join", &qr]).fails(2, "另一个活动组（group-01）");
    run(&member, &["device", "meet", "--join", "12345@127.0.0.1:1"]).fails(2, "无法识别的会面码");
    let listed = run(&member, &["device", "list", "--json"]).ok();
    let rows: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 4);

    // Ctrl-C: the leader's phone says who joined and closes.
    let pid = serve.id().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    let started = Instant::now();
    while serve.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the session did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let rest: Vec<Value> = lines
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    let peers: Vec<&Value> = rest.iter().filter(|v| v["event"] == "peer").collect();
    assert_eq!(peers.len(), 3, "{rest:?}");
    assert!(peers.iter().any(|p| {
        p["peer"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("不是同一个活动组"))
    }));
    let closed = rest.last().unwrap();
    assert_eq!(closed["event"], "closed");
    assert_eq!(closed["joined"], 2);
    assert_eq!(closed["landed"], 3);
    let held = run(&leader, &["device", "list", "--json"]).ok();
    let rows: Value = serde_json::from_str(&held.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 4);
}
