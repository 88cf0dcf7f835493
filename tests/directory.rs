//! Issue 13: `sanjin admin move-member` and `retire-member` on a running `sanjin serve`, the
//! members' phones driven through the CLI: the moved member's phone lands the visit it recorded
//! in its old group before the move, is told of its new certificate and reads its new group;
//! the retired member's phone is refused with a Chinese message that says to export a bundle,
//! and the office's `admin import-bundle` of that bundle lands what was made before the
//! retirement.

use serde_json::Value;

use crate::support::run;
use crate::sync::{Server, record_visit};

#[test]
fn issue13_admin_moves_and_retires_members_and_their_phones_follow() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"), "127.0.0.1:0");
    server
        .admin(&[
            "import-directory",
            sanjin_fixtures::committed_dir().to_str().unwrap(),
        ])
        .ok();
    let mover = server.phone(dir.path(), "member-0001");
    let quitter = server.phone(dir.path(), "member-0003");
    let other = server.phone(dir.path(), "member-0027");
    let in_group2 = record_visit(&other, "group-02", "cp-001", "第二组的走访");
    run(&other, &["device", "sync"]).ok();
    run(&mover, &["device", "sync"]).ok();
    run(&quitter, &["device", "sync"]).ok();
    let pending = record_visit(&mover, "group-01", "cp-001", "调组前未同步的走访");
    let offline = record_visit(&quitter, "group-01", "cp-001", "退出前未同步的走访");

    // The leader cannot move without a successor; a member can.
    let e = server.admin(&["move-member", "member-0002", "group-03"]);
    assert_ne!(e.code, 0);
    assert!(e.stderr.contains("--new-leader"), "{}", e.stderr);
    let out = server
        .admin(&["move-member", "member-0001", "group-02"])
        .ok();
    assert!(
        out.stdout.contains("从活动组 group-01 调到 group-02")
            && out.stdout.contains("重新签发证书 1 张"),
        "{}",
        out.stdout
    );
    let s = run(&mover, &["device", "sync"]).ok();
    assert!(s.stdout.contains("重新签发证书"), "{}", s.stdout);
    assert!(s.stdout.contains("被拒绝 0 条"), "{}", s.stdout);
    let shown = run(&mover, &["device", "show", &in_group2]).ok();
    assert!(shown.stdout.contains("第二组的走访"), "{}", shown.stdout);
    let again: Value =
        serde_json::from_str(&run(&mover, &["device", "sync", "--json"]).ok().stdout).unwrap();
    assert_eq!(again["cert_renewed"], false, "{again}");
    assert_eq!(
        again["still_queued"], 0,
        "{again}: the visit made before the move landed"
    );
    assert_ne!(pending, "");

    // Retirement: the phone is refused in Chinese and told what to do.
    let out = server
        .admin(&["retire-member", "member-0003", "--reason", "任期届满"])
        .ok();
    assert!(out.stdout.contains("停用设备 1 台"), "{}", out.stdout);
    let refused = run(&quitter, &["device", "sync"]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("退出委员名录")
            && refused.stderr.contains("sanjin device bundle export"),
        "{}",
        refused.stderr
    );
    let code = server.admin(&["issue-code", "member-0003"]);
    assert_ne!(code.code, 0);
    assert!(
        code.stderr.contains("不能再为他发放设备注册码"),
        "{}",
        code.stderr
    );
    // Its bundle, handed to the office, lands what it made before the retirement.
    let file = dir.path().join("retired.sjb");
    let e = run(
        &quitter,
        &[
            "device",
            "bundle",
            "export",
            "--out",
            file.to_str().unwrap(),
            "--json",
        ],
    )
    .ok();
    let v: Value = serde_json::from_str(&e.stdout).unwrap();
    let files: Vec<String> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    let mut args = vec!["import-bundle", "--json"];
    args.extend(files.iter().map(String::as_str));
    let imported: Value = serde_json::from_str(&server.admin(&args).ok().stdout).unwrap();
    let outcome = imported
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["docs"].as_array().unwrap().iter())
        .find(|d| d["doc_id"] == offline.as_str())
        .map(|d| d["outcome"].clone());
    assert_eq!(outcome, Some(Value::from("landed")), "{imported}");
}
