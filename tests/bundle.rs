//! Issue 12: `sanjin device bundle export|import` end to end on real SQLite stores, the
//! devices enrolled offline with keys and certificates made in the test (no server).

use std::path::{Path, PathBuf};

use sanjin_client::bundle::testing::TestTrust;
use sanjin_core::domain::RecordData;
use sanjin_core::{RecordDoc, testdata};
use sanjin_store::{Durability, Identity, Store};
use serde_json::Value;

use crate::support::run;

const T0: i64 = 1_747_616_400_000;

fn phone(dir: &Path, t: &TestTrust, n: u8, visits: usize) -> PathBuf {
    let path = dir.join(format!("p{n}.sqlite"));
    let identity = Identity {
        member: format!("member-{n:04}"),
        device: format!("device-{n:02}"),
        actor: vec![n; 16],
    };
    let mut s = Store::init(&path, &identity, Durability::Normal).unwrap();
    t.enroll(&mut s, 100 + n, "member", Some("group-01"), T0);
    for i in 0..visits {
        let mut v = testdata::visit();
        v.title = format!("第 {i} 次走访（{n} 号）");
        let id = format!("v-{n:02}-{i:03}");
        let mut doc = RecordDoc::create(&id, &RecordData::Visit(v), &s.author(), T0).unwrap();
        s.insert(&mut doc, true).unwrap();
    }
    path
}

#[test]
fn issue12_cli_export_import_parts_and_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestTrust::new(7, &["group-01"], T0);
    let a = phone(dir.path(), &t, 1, 6);
    let b = phone(dir.path(), &t, 2, 0);

    // One file.
    let out = dir.path().join("a.sjb");
    let e = run(&a, &["device", "bundle", "export", "--out", out.to_str().unwrap()]).ok();
    assert!(e.stdout.contains("已导出 6 条记录"), "{}", e.stdout);
    assert!(e.stdout.contains("活动组 group-01"), "{}", e.stdout);
    let i = run(&b, &["device", "bundle", "import", out.to_str().unwrap()]).ok();
    assert!(i.stdout.contains("新增 6 条"), "{}", i.stdout);
    assert!(i.stdout.contains("委员 member-0001"), "{}", i.stdout);
    // Again: nothing new.
    let again = run(&b, &["device", "bundle", "import", out.to_str().unwrap()]).ok();
    assert!(again.stdout.contains("新增 0 条") && again.stdout.contains("未变 6 条"), "{}", again.stdout);
    // B holds them, to deliver: the list says 待送达.
    let list = run(&b, &["device", "list"]).ok();
    assert!(list.stdout.contains("第 3 次走访（1 号）") && list.stdout.contains("待送达"), "{}", list.stdout);
    let rows: Value = serde_json::from_str(&run(&b, &["device", "list", "--json"]).ok().stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 6);
    assert!(rows.as_array().unwrap().iter().all(|r| r["delivered"] == false));
    let shown = run(&b, &["device", "show", "v-01-000"]).ok();
    assert!(shown.stdout.contains("待送达"), "{}", shown.stdout);

    // Parts of a chosen size, as JSON, imported in reverse order into a third phone.
    let c = phone(dir.path(), &t, 3, 0);
    let parts = dir.path().join("small.sjb");
    let e = run(
        &a,
        &["device", "bundle", "export", "--out", parts.to_str().unwrap(), "--part-size", "1K", "--json"],
    )
    .ok();
    let v: Value = serde_json::from_str(&e.stdout).unwrap();
    let files: Vec<String> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    assert!(files.len() > 1, "{v}");
    assert!(files[0].ends_with(&format!("small.part1of{}.sjb", files.len())), "{files:?}");
    assert_eq!(v["records"], 6);
    let mut args = vec!["device", "bundle", "import", "--json"];
    let reversed: Vec<&str> = files.iter().rev().map(String::as_str).collect();
    args.extend(reversed);
    let i = run(&c, &args).ok();
    let added: u64 = i
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["part"]["report"]["added"].as_u64().unwrap())
        .sum();
    assert_eq!(added, 6, "{}", i.stdout);

    // A damaged file and a file that is no bundle: refused with what to do; the good one lands.
    let d = phone(dir.path(), &t, 4, 0);
    let bad = dir.path().join("bad.sjb");
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&bad, &bytes).unwrap();
    let junk = dir.path().join("photo.jpg");
    std::fs::write(&junk, b"\xff\xd8\xff\xe0 not a bundle").unwrap();
    let r = run(
        &d,
        &["device", "bundle", "import", bad.to_str().unwrap(), junk.to_str().unwrap(), &files[1]],
    )
    .fails(2, "2 个文件未能导入");
    assert!(r.stdout.contains("✗") && r.stdout.contains("bad.sjb"), "{}", r.stdout);
    assert!(r.stdout.contains("photo.jpg：未导入"), "{}", r.stdout);
    assert!(r.stdout.contains("✓"), "{}", r.stdout);

    // A bad option and a device that never synced say what to do.
    run(&a, &["device", "bundle", "export", "--out", out.to_str().unwrap(), "--part-size", "lots"])
        .fails(2, "20M");
    run(&a, &["device", "bundle", "export", "--out", out.to_str().unwrap(), "--since", "昨天"])
        .fails(2, "2025-05-19");
    let bare = dir.path().join("bare.sqlite");
    run(&bare, &["device", "init", "--member", "member-0009"]).ok();
    run(&bare, &["device", "bundle", "export", "--out", out.to_str().unwrap()]).fails(2, "同步");
    run(&bare, &["device", "bundle", "import", out.to_str().unwrap()]).fails(2, "同步");
}
