//! The device commands (issue 2).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{run, sanjin};

fn init(dir: &Path, name: &str, member: &str) -> PathBuf {
    let store = dir.join(name);
    run(&store, &["device", "init", "--member", member]).ok();
    store
}

fn record_visit(store: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "device",
        "record",
        "visit",
        "--target",
        "village",
        "--contact-point",
        "cp-001",
        "--group",
        "group-01",
        "--type",
        "调研座谈",
        "--start",
        "2026-05-19 09:00",
        "--end",
        "2026-05-19T11:30",
        "--title",
        "新华村人居环境座谈",
        "--summary",
        "听取村民对垃圾清运的意见。",
    ];
    args.extend_from_slice(extra);
    let r = run(store, &args).ok();
    r.stdout.trim().to_string()
}

fn show_json(store: &Path, id: &str) -> Value {
    serde_json::from_str(&run(store, &["device", "show", id, "--json"]).ok().stdout).unwrap()
}

#[test]
fn a_member_records_lists_edits_and_submits() {
    let dir = tempfile::tempdir().unwrap();
    let store = init(dir.path(), "phone.sqlite", "member-0001");
    // The Chinese label of a target kind is accepted too.
    let r = run(
        &store,
        &[
            "device",
            "record",
            "visit",
            "--target",
            "农村",
            "--contact-point",
            "cp-001",
            "--group",
            "group-01",
            "--type",
            "调研座谈",
            "--start",
            "2026-05-19 09:00",
            "--end",
            "2026-05-19T11:30",
            "--title",
            "新华村人居环境座谈",
            "--summary",
            "听取村民对垃圾清运的意见。",
            "--participant",
            "member-0002",
            "--helper",
            "村医 王桂兰",
            "--gps",
            "30.92,113.91",
        ],
    )
    .ok();
    let id = r.stdout.trim().to_string();
    assert!(r.stderr.contains("已保存活动记录"), "{}", r.stderr);

    let list = run(
        &store,
        &[
            "device", "list", "--month", "2026-05", "--group", "group-01",
        ],
    )
    .ok();
    assert!(
        list.stdout.contains("新华村人居环境座谈") && list.stdout.contains("调研座谈"),
        "{}",
        list.stdout
    );
    assert!(list.stdout.contains("共 1 条"));
    let rows: Value =
        serde_json::from_str(&run(&store, &["device", "list", "--json"]).ok().stdout).unwrap();
    assert_eq!(rows[0]["id"], id.as_str());
    // The author took part too.
    assert_eq!(
        rows[0]["members"],
        serde_json::json!(["member-0001", "member-0002"])
    );
    let none = run(&store, &["device", "list", "--month", "2026-06"]).ok();
    assert!(none.stdout.contains("没有符合条件"));

    run(
        &store,
        &["device", "edit", &id, "结束时间", "2026-05-19T12:00"],
    )
    .ok();
    run(
        &store,
        &[
            "device",
            "edit",
            &id,
            "participants",
            "member-0003",
            "--add",
        ],
    )
    .ok();
    run(&store, &["device", "step", &id, "submit"]).ok();
    let v = show_json(&store, &id);
    assert_eq!(v["record"]["status"], "submitted");
    assert_eq!(v["record"]["data"]["end"], "2026-05-19T12:00:00");
    assert_eq!(
        v["record"]["data"]["participants"],
        serde_json::json!(["member-0002", "member-0003"])
    );
    let actions: Vec<&str> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["create", "edit", "edit", "submit"]);
    assert!(
        v["history"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["member"] == "member-0001")
    );

    let human = run(&store, &["device", "show", &id]).ok().stdout;
    for needle in [
        "活动记录",
        "状态：已提交",
        "结束时间：2026-05-19 12:00:00",
        "历史（留痕）",
        "提交",
        "农村",
    ] {
        assert!(
            human.contains(needle),
            "show should contain {needle}: {human}"
        );
    }

    run(&store, &["device", "delete", &id, "--note", "重复"]).ok();
    assert!(
        run(&store, &["device", "list"])
            .ok()
            .stdout
            .contains("没有符合条件")
    );
    assert!(
        run(&store, &["device", "list", "--deleted"])
            .ok()
            .stdout
            .contains("已删除")
    );
    run(&store, &["device", "restore", &id]).ok();
    assert!(
        run(&store, &["device", "list"])
            .ok()
            .stdout
            .contains("共 1 条")
    );
}

/// Two phones edit the same visit offline, merge directly, and a leader resolves the conflict.
#[test]
fn two_devices_merge_and_a_leader_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let a = init(dir.path(), "a.sqlite", "member-0001");
    let b = init(dir.path(), "b.sqlite", "member-0002");
    let leader = init(dir.path(), "leader.sqlite", "member-0010");
    // The leader's phone holds the directory: member-0010 leads group-01, so it may settle
    // the group's conflicts (issue 10); the phones learn it when they merge from it.
    let directory = dir.path().join("directory.jsonl");
    std::fs::write(
        &directory,
        serde_json::json!({
            "id": "group-01", "created_by": "office-01", "created_at_ms": 1_747_616_400_000i64,
            "data": {"kind": "group", "name": "第一委员活动组", "chapter": "chapter-city",
                     "committee": null, "leader": "member-0010", "contact_points": ["cp-001"]}
        })
        .to_string()
            + "\n",
    )
    .unwrap();
    run(&leader, &["device", "import", directory.to_str().unwrap()]).ok();
    let id = record_visit(
        &a,
        &[
            "--participant",
            "member-0001",
            "--participant",
            "member-0002",
        ],
    );
    run(&b, &["device", "merge-from", a.to_str().unwrap()]).ok();

    run(&a, &["device", "edit", &id, "title", "新华村座谈（上午）"]).ok();
    run(&b, &["device", "edit", &id, "title", "新华村垃圾清运座谈"]).ok();
    run(
        &a,
        &[
            "device",
            "edit",
            &id,
            "summary",
            "【补充】听取村民对垃圾清运的意见。",
        ],
    )
    .ok();
    run(
        &b,
        &[
            "device",
            "edit",
            &id,
            "summary",
            "听取村民对垃圾清运的意见。已形成两条建议。",
        ],
    )
    .ok();

    let merged = run(&leader, &["device", "merge-from", a.to_str().unwrap()]).ok();
    assert!(merged.stdout.contains("新增 1 条"), "{}", merged.stdout);
    let merged = run(
        &leader,
        &["device", "merge-from", b.to_str().unwrap(), "--json"],
    )
    .ok();
    let report: Value = serde_json::from_str(&merged.stdout).unwrap();
    assert_eq!(report["new_conflicts"], serde_json::json!([id]));

    let v = show_json(&leader, &id);
    assert_eq!(
        v["record"]["data"]["summary"], "【补充】听取村民对垃圾清运的意见。已形成两条建议。",
        "text merged"
    );
    let conflict = &v["record"]["conflicts"][0];
    assert_eq!(conflict["field"], "title");
    let mut by: Vec<&str> = conflict["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["member"].as_str().unwrap())
        .collect();
    by.sort();
    assert_eq!(by, vec!["member-0001", "member-0002"]);
    let human = run(&leader, &["device", "show", &id]).ok().stdout;
    assert!(
        human.contains("待裁定的冲突")
            && human.contains("新华村垃圾清运座谈")
            && human.contains("⚠"),
        "{human}"
    );
    assert!(
        run(&leader, &["device", "list", "--conflicts"])
            .ok()
            .stdout
            .contains("共 1 条")
    );

    // A member's phone holding the conflict refuses to settle it, by resolve or by a plain
    // edit, and says a leader must (issue 10).
    run(&b, &["device", "merge-from", leader.to_str().unwrap()]).ok();
    run(
        &b,
        &["device", "resolve", &id, "title", "新华村垃圾清运座谈"],
    )
    .fails(2, "组长");
    run(&b, &["device", "edit", &id, "title", "乙再改的标题"]).fails(2, "活动主题");
    run(
        &leader,
        &["device", "resolve", &id, "title", "新华村垃圾清运座谈"],
    )
    .ok();
    run(&leader, &["device", "resolve", &id, "title", "x"]).fails(2, "没有待裁定的冲突");
    for phone in [&a, &b] {
        run(phone, &["device", "merge-from", leader.to_str().unwrap()]).ok();
        let v = show_json(phone, &id);
        assert_eq!(v["record"]["conflicts"], serde_json::json!([]));
        assert_eq!(v["record"]["data"]["title"], "新华村垃圾清运座谈");
    }
    run(&a, &["device", "merge-from", a.to_str().unwrap()]).fails(2, "不能与自身合并");
}

#[test]
fn records_from_json_files_and_other_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let store = init(dir.path(), "phone.sqlite", "member-0001");
    let file = dir.path().join("opinion.json");
    std::fs::write(
        &file,
        r#"{"topic":"农村饮水安全","opinion_kind":"微建言","text":"管网老化，夏季常停水。","source":null,
            "urgency":"urgent","contact_point":"cp-001","group":"group-01","recorded_on":"2026-05-19"}"#,
    )
    .unwrap();
    let id = run(
        &store,
        &[
            "device",
            "record",
            "opinion",
            "--json",
            file.to_str().unwrap(),
        ],
    )
    .ok()
    .stdout;
    let v = show_json(&store, id.trim());
    assert_eq!(v["record"]["data"]["opinion_kind"], "micro_suggestion");
    assert_eq!(v["record"]["data"]["source"], Value::Null, "anonymous");
    run(&store, &["device", "step", id.trim(), "提交"]).ok();
    run(&store, &["device", "step", id.trim(), "accept"]).ok();
    assert_eq!(show_json(&store, id.trim())["record"]["status"], "accepted");

    let hh = run(
        &store,
        &[
            "device",
            "record",
            "household",
            "--head-name",
            "张秋菊",
            "--contact-point",
            "cp-001",
            "--group",
            "group-01",
            "--size",
            "3",
            "--situation",
            "因病致困",
        ],
    )
    .ok()
    .stdout;
    run(
        &store,
        &[
            "device",
            "edit",
            hh.trim(),
            "log",
            r#"{"date":"2026-05-20","member":"member-0001","action":"送去米面油"}"#,
            "--append",
        ],
    )
    .ok();
    assert_eq!(
        show_json(&store, hh.trim())["record"]["data"]["log"][0]["action"],
        "送去米面油"
    );
    let plan = run(
        &store,
        &[
            "device",
            "record",
            "plan",
            "--year",
            "2026",
            "--quarter",
            "2",
            "--month",
            "5",
            "--group",
            "group-01",
            "--type",
            "结对帮扶",
            "--title",
            "走访困难户",
        ],
    )
    .ok();
    assert!(!plan.stdout.trim().is_empty());
    assert!(
        run(&store, &["device", "list", "--kind", "plan"])
            .ok()
            .stdout
            .contains("走访困难户")
    );
    run(&store, &["device", "check"]).ok();
}

/// Bad input: each gets a clear message naming what was wrong, exit code 2, and nothing saved.
#[test]
fn bad_input_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.sqlite");
    run(&missing, &["device", "list"]).fails(2, "sanjin device init");
    let store = init(dir.path(), "phone.sqlite", "member-0001");
    run(&store, &["device", "init", "--member", "member-0002"]).fails(2, "已经初始化过");

    let base = |extra: &[(&str, &str)]| {
        let mut args: Vec<(&str, &str)> = vec![
            ("--target", "village"),
            ("--contact-point", "cp-001"),
            ("--group", "group-01"),
            ("--type", "调研座谈"),
            ("--start", "2026-05-19T09:00"),
            ("--end", "2026-05-19T11:00"),
            ("--title", "座谈"),
        ];
        for (k, v) in extra {
            args.retain(|(a, _)| a != k);
            args.push((k, v));
        }
        let mut v = vec!["device".to_string(), "record".into(), "visit".into()];
        for (k, val) in args {
            v.push(k.into());
            v.push(val.into());
        }
        v
    };
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("--end", "2026-05-19T08:00")], "结束时间早于开始时间"),
        (
            vec![("--type", "跳舞")],
            "活动类型（activity_type）：无法识别“跳舞”，可选：research_symposium（调研座谈）",
        ),
        (
            vec![("--start", "明天上午")],
            "开始时间（start）：“明天上午”格式不对",
        ),
        (vec![("--target", "moon")], "对象类别"),
        (vec![("--gps", "95,200")], "位置"),
        (vec![("--contact-point", "cp 001!")], "联系点"),
        (vec![("--title", "  ")], "活动主题（title）：不能为空"),
    ];
    for (extra, needle) in cases {
        let args = base(&extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&store, &args).fails(2, needle);
    }
    // Submitting with an empty summary is refused and nothing is saved.
    let mut args = base(&[]);
    args.push("--submit".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&store, &args).fails(2, "提交前请先填写活动摘要");
    assert!(
        run(&store, &["device", "list"])
            .ok()
            .stdout
            .contains("没有符合条件")
    );

    let bad_json = dir.path().join("bad.json");
    std::fs::write(&bad_json, "{\"title\": ").unwrap();
    run(
        &store,
        &[
            "device",
            "record",
            "visit",
            "--json",
            bad_json.to_str().unwrap(),
        ],
    )
    .fails(2, "不是有效的 JSON");
    let latin1 = dir.path().join("latin1.json");
    std::fs::write(&latin1, b"{\"title\": \"caf\xe9\"}").unwrap();
    run(
        &store,
        &[
            "device",
            "record",
            "visit",
            "--json",
            latin1.to_str().unwrap(),
        ],
    )
    .fails(2, "不是 UTF-8");
    let unknown = dir.path().join("unknown.json");
    std::fs::write(&unknown, r#"{"colour":"red"}"#).unwrap();
    run(
        &store,
        &[
            "device",
            "record",
            "visit",
            "--json",
            unknown.to_str().unwrap(),
        ],
    )
    .fails(2, "没有这个字段");
    let wrong_type = dir.path().join("wrong.json");
    std::fs::write(
        &wrong_type,
        r#"{"target_kind":"park","contact_point":"cp-1","group":"g-1","activity_type":"lecture","start":"2026-01-01T09:00:00","end":"2026-01-01T10:00:00","title":5}"#,
    )
    .unwrap();
    run(
        &store,
        &[
            "device",
            "record",
            "visit",
            "--json",
            wrong_type.to_str().unwrap(),
        ],
    )
    .fails(2, "活动主题");

    let id = record_visit(&store, &[]);
    run(&store, &["device", "edit", &id, "colour", "red"]).fails(2, "没有这个字段");
    run(
        &store,
        &["device", "edit", &id, "participants", "member-0009"],
    )
    .fails(2, "--add / --remove");
    run(&store, &["device", "step", &id, "approve"]).fails(2, "当前状态为“草稿”");
    run(&store, &["device", "step", &id, "dance"]).fails(2, "无法识别的流转");
    run(&store, &["device", "show", "no-such-id"]).fails(2, "没有编号为 no-such-id 的记录");
    run(&store, &["device", "list", "--from", "2026-13-01"]).fails(2, "格式不对");

    // A non-UTF-8 argument is a usage error, not a crash.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let out = sanjin()
            .args(["device", "edit", &id, "title"])
            .arg(std::ffi::OsStr::from_bytes(b"caf\xe9"))
            .arg("--store")
            .arg(&store)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
    }
    // Not a store at all.
    let photo = dir.path().join("photo.jpg");
    std::fs::write(&photo, [0xFFu8; 1000]).unwrap();
    run(&photo, &["device", "list"]).fails(2, "不是 sanjin 设备数据文件");
    // After all of that, the one good record is intact.
    assert_eq!(
        show_json(&store, &id)["record"]["data"]["title"],
        "新华村人居环境座谈"
    );
}

/// A damaged record is named, the others stay readable (issue 2).
#[test]
fn a_damaged_record_does_not_take_others_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = init(dir.path(), "phone.sqlite", "member-0001");
    let good = record_visit(&store, &[]);
    let bad = record_visit(&store, &[]);
    let conn = rusqlite::Connection::open(&store).unwrap();
    conn.execute(
        "UPDATE docs SET snapshot = X'00112233' WHERE id = ?1",
        [&bad],
    )
    .unwrap();
    drop(conn);
    run(&store, &["device", "show", &bad]).fails(1, &format!("记录 {bad} 的数据已损坏"));
    run(&store, &["device", "show", &good]).ok();
    assert!(
        run(&store, &["device", "list"])
            .ok()
            .stdout
            .contains("共 2 条")
    );
    let check = run(&store, &["device", "check"]).fails(2, "1 条记录已损坏");
    assert!(check.stdout.contains(&bad));
}

#[test]
fn a_store_from_a_newer_sanjin_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = init(dir.path(), "phone.sqlite", "member-0001");
    let id = record_visit(&store, &[]);
    rusqlite::Connection::open(&store)
        .unwrap()
        .pragma_update(None, "user_version", 42)
        .unwrap();
    run(&store, &["device", "list"]).fails(1, "请升级 sanjin");
    rusqlite::Connection::open(&store)
        .unwrap()
        .pragma_update(None, "user_version", 1)
        .unwrap();
    run(&store, &["device", "show", &id]).ok();
}

/// The README's main command works end to end and leaves its stores behind with `--dir`.
#[test]
fn the_demo_runs_and_converges() {
    // Issue 5 point 6: a real server (TLS, self-signed, pinned), a leader and three members,
    // a conflict through the server, a photo, the resolution on every phone, the ledger.
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("demo");
    let out = sanjin()
        .args(["demo", "--dir"])
        .arg(&keep)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("同步服务器已启动：https://127.0.0.1:"),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("的手机注册（信任服务器证书）").count(),
        4,
        "{stdout}"
    );
    assert!(stdout.contains("有 1 个待裁定冲突"), "{stdout}");
    // Every phone: approved, no open conflict, the resolved value, the photo with its thumbnail.
    assert_eq!(
        stdout
            .matches("「已审核」，未裁定冲突 0 个，照片 1 张（有缩略图），结束时间 12:30")
            .count(),
        4,
        "{stdout}"
    );
    assert!(
        stdout.contains("四部手机的这条记录完全一致；照片原图已到达服务器"),
        "{stdout}"
    );
    let vid = {
        let leader = keep.join("phone-leader.sqlite");
        let rows: Value = serde_json::from_str(
            &run(&leader, &["device", "list", "--month", "2026-05", "--json"])
                .ok()
                .stdout,
        )
        .unwrap();
        let visit = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["title"] == "人居环境整治座谈")
            .expect("the demo's visit on the leader's phone")
            .clone();
        visit["id"].as_str().unwrap().to_string()
    };
    for phone in ["phone-leader", "phone-a", "phone-b", "phone-c"] {
        let store = keep.join(format!("{phone}.sqlite"));
        let v: Value =
            serde_json::from_str(&run(&store, &["device", "show", &vid, "--json"]).ok().stdout)
                .unwrap();
        assert_eq!(v["record"]["status"], "approved", "{phone}");
        assert_eq!(v["record"]["conflicts"], serde_json::json!([]), "{phone}");
        assert_eq!(v["record"]["data"]["end"], "2026-05-19T12:30:00", "{phone}");
        assert!(
            v["photos"][0]["thumbnail_bytes"].as_u64().unwrap() > 0,
            "{phone}"
        );
    }
    // The photo's original is in the server's blob folder under its hash.
    let hash = {
        let v: Value = serde_json::from_str(
            &run(
                &keep.join("phone-a.sqlite"),
                &["device", "show", &vid, "--json"],
            )
            .ok()
            .stdout,
        )
        .unwrap();
        v["photos"][0]["hash"].as_str().unwrap().to_string()
    };
    let original = std::fs::read(keep.join("server/blobs").join(&hash[..2]).join(&hash)).unwrap();
    assert_eq!(sanjin_media::hash(&original), hash);
    // The ledger: the XLSX exists, opens, and its activity sheet has the demo's visit with its
    // photo linked to the console.
    let xlsx = keep.join("三进台账.xlsx");
    assert!(stdout.contains(&xlsx.display().to_string()), "{stdout}");
    assert!(
        stdout.contains("活动 1201 条"),
        "the city's year and the demo's visit: {stdout}"
    );
    {
        use calamine::Reader;
        let mut book: calamine::Xlsx<_> = calamine::open_workbook(&xlsx).unwrap();
        let acts = book.worksheet_range("活动台账").unwrap();
        assert_eq!(acts.height(), 1202, "header + 1201 visits");
        let header: Vec<String> = acts
            .rows()
            .next()
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect();
        let col = |t: &str| header.iter().position(|h| h == t).unwrap();
        let row = acts
            .rows()
            .find(|r| r[0].to_string() == vid)
            .expect("the demo's visit in the ledger");
        assert_eq!(row[col("照片")].to_string(), "1 张：村口座谈");
        assert_eq!(row[col("照片编号")].to_string(), hash);
        assert!(
            row[col("照片链接")]
                .to_string()
                .ends_with(&format!("/console/records/{vid}#photos"))
        );
    }
    // The console's sign-in and the command that reopens the same data.
    assert!(
        stdout.contains("/console") && stdout.contains("账号 office-01，密码 "),
        "{stdout}"
    );
    let serve = format!(
        "sanjin serve --data {} --listen 127.0.0.1:8443 --tls-self-signed",
        keep.join("server").display()
    );
    assert!(stdout.contains(&serve), "{stdout}");
    // A second run refuses to write into a folder that holds data.
    let again = sanjin()
        .args(["demo", "--dir"])
        .arg(&keep)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
}
