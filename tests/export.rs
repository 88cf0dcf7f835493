//! Issue 5: `sanjin export` on a server data folder holding the committed fixtures.

use std::process::Output;

use crate::support::{Run, sanjin};

fn run(args: &[&str]) -> Run {
    let out: Output = sanjin()
        .env_remove("SANJIN_DATA")
        .args(args)
        .output()
        .expect("sanjin runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn issue_5_export_command_writes_xlsx_and_csv_and_checks_its_input() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("server");
    let data = data.to_str().unwrap();
    let fixtures = sanjin_fixtures::committed_dir();
    let fixtures = fixtures.to_str().unwrap();
    run(&["admin", "--data", data, "import-directory", fixtures]).ok();
    let imported = run(&[
        "admin",
        "--data",
        data,
        "import-records",
        fixtures,
        "--json",
    ])
    .ok();
    let v: serde_json::Value = serde_json::from_str(&imported.stdout).unwrap();
    assert_eq!(v["records"], 1200 + 2000 + 80 + 88);

    let xlsx = tmp.path().join("台账.xlsx");
    let out = run(&[
        "export",
        "--data",
        data,
        "--from",
        "2025-01-01",
        "--to",
        "2025-12-31",
        "--format",
        "xlsx",
        "--out",
        xlsx.to_str().unwrap(),
        "--json",
    ])
    .ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let rows = |key: &str| {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == key)
            .unwrap()["rows"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(rows("activities"), 1200);
    assert_eq!(rows("coverage"), 7);
    assert!(std::fs::metadata(&xlsx).unwrap().len() > 10_000);

    // A group's quarter as CSV, twice: byte-identical.
    let zip1 = tmp.path().join("a.zip");
    let zip2 = tmp.path().join("b.zip");
    for z in [&zip1, &zip2] {
        let out = run(&[
            "export",
            "--data",
            data,
            "--from",
            "2025-04-01",
            "--to",
            "2025-06-30",
            "--group",
            "group-02",
            "--format",
            "csv",
            "--out",
            z.to_str().unwrap(),
        ])
        .ok();
        assert!(out.stdout.contains("活动台账"), "{}", out.stdout);
    }
    assert_eq!(std::fs::read(&zip1).unwrap(), std::fs::read(&zip2).unwrap());

    // Roles: a leader exports only the group; a member cannot export.
    let leader = "member-0002";
    let accounts = run(&["admin", "--data", data, "accounts", "--json"]).ok();
    let accounts: serde_json::Value = serde_json::from_str(&accounts.stdout).unwrap();
    let acc = accounts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["role"] == "leader")
        .unwrap();
    let leader = acc["member"].as_str().unwrap_or(leader);
    let group = acc["group"].as_str().unwrap();
    let other = if group == "group-01" {
        "group-02"
    } else {
        "group-01"
    };
    let out_file = tmp.path().join("leader.xlsx");
    let out_file = out_file.to_str().unwrap();
    run(&[
        "export",
        "--data",
        data,
        "--from",
        "2025-01-01",
        "--to",
        "2025-12-31",
        "--as",
        leader,
        "--out",
        out_file,
    ])
    .ok();
    run(&[
        "export",
        "--data",
        data,
        "--from",
        "2025-01-01",
        "--to",
        "2025-12-31",
        "--as",
        leader,
        "--group",
        other,
        "--out",
        out_file,
    ])
    .fails(2, "组长只能查看本组");
    let member = accounts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["role"] == "member")
        .unwrap();
    run(&[
        "export",
        "--data",
        data,
        "--from",
        "2025-01-01",
        "--to",
        "2025-12-31",
        "--as",
        member["member"].as_str().unwrap(),
        "--out",
        out_file,
    ])
    .fails(2, "委员账户不能");

    // Bad input says what to do.
    run(&[
        "export",
        "--data",
        data,
        "--from",
        "2025/01/01",
        "--to",
        "2025-12-31",
        "--out",
        out_file,
    ])
    .fails(2, "年-月-日");
    run(&[
        "export",
        "--data",
        data,
        "--from",
        "2025-06-01",
        "--to",
        "2025-01-01",
        "--out",
        out_file,
    ])
    .fails(2, "调换");
    run(&[
        "export",
        "--data",
        data,
        "--from",
        "2025-01-01",
        "--to",
        "2025-12-31",
        "--format",
        "pdf",
        "--out",
        out_file,
    ])
    .fails(2, "xlsx 或 csv");
    let nowhere = tmp.path().join("nowhere");
    run(&[
        "export",
        "--data",
        nowhere.to_str().unwrap(),
        "--from",
        "2025-01-01",
        "--to",
        "2025-12-31",
        "--out",
        out_file,
    ])
    .fails(2, "没有服务器数据");
}

#[test]
fn issue_5_console_passwords_are_set_by_the_admin_command() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("server");
    let data = data.to_str().unwrap();
    let fixtures = sanjin_fixtures::committed_dir();
    run(&[
        "admin",
        "--data",
        data,
        "import-directory",
        fixtures.to_str().unwrap(),
    ])
    .ok();
    run(&[
        "admin",
        "--data",
        data,
        "add-staff",
        "--id",
        "office-01",
        "--name",
        "王秘书",
    ])
    .ok();
    let generated = run(&["admin", "--data", data, "set-password", "office-01"]).ok();
    assert!(
        generated.stdout.contains("工作台密码："),
        "{}",
        generated.stdout
    );
    // From standard input.
    let mut child = sanjin()
        .env_remove("SANJIN_DATA")
        .args([
            "admin",
            "--data",
            data,
            "set-password",
            "office-01",
            "--password-stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a-long-password\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    // Members use their phones, not the console; passwords are long enough.
    run(&["admin", "--data", data, "set-password", "member-0005"]).fails(2, "是委员账户");
    let mut child = sanjin()
        .env_remove("SANJIN_DATA")
        .args([
            "admin",
            "--data",
            data,
            "set-password",
            "office-01",
            "--password-stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"short\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("至少 8 个字符"));
    run(&["admin", "--data", data, "set-password", "nobody"]).fails(2, "没有账户");
}
