//! Issue 5: `sanjin export` on a server data folder holding the committed fixtures.

use crate::support::{run_data as run, sanjin};

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

/// Issue 10: `sanjin export` of a note longer than an Excel cell holds and of notes starting like
/// formulas. The notes go in through `sanjin admin import-records` (the core's checks run).
#[test]
fn issue10_export_command_cuts_overlong_cells_guards_csv_and_explains_errors() {
    use calamine::{Data, Reader};
    use std::io::Read;
    use std::path::Path;

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
    let fx = sanjin_fixtures::Fixtures::load(&fixtures).unwrap();
    let base = fx
        .opinions
        .iter()
        .find(|r| matches!(&r.data, sanjin_core::RecordData::Opinion(o) if o.recorded_on.to_string().starts_with("2025-")))
        .unwrap();
    // 16,384 × 𠮷: within the core's 20,000 characters, one UTF-16 unit over Excel's cell.
    let long = "𠮷".repeat(16_384);
    let notes = [
        ("issue10-long", long.clone()),
        ("issue10-eq", "=1+2".to_string()),
        ("issue10-plus", "+1+2".to_string()),
        ("issue10-minus", "-1+2".to_string()),
        ("issue10-at", "@SUM(A1)".to_string()),
        ("issue10-tab", "\t=1+2".to_string()),
    ];
    let mut jsonl = String::new();
    for (id, text) in &notes {
        let mut r = base.clone();
        r.id = id.to_string();
        r.events.clear();
        let sanjin_core::RecordData::Opinion(o) = &mut r.data else {
            unreachable!()
        };
        o.text = text.clone();
        jsonl.push_str(&serde_json::to_string(&r).unwrap());
        jsonl.push('\n');
    }
    let file = tmp.path().join("notes.jsonl");
    std::fs::write(&file, jsonl).unwrap();
    run(&[
        "admin",
        "--data",
        data,
        "import-records",
        file.to_str().unwrap(),
    ])
    .ok();

    // XLSX: the export succeeds; the cell is cut with the marker; the full text is in the
    // continuation sheet.
    let xlsx = tmp.path().join("台账.xlsx");
    let export = |format: &str, out: &Path| {
        run(&[
            "export",
            "--data",
            data,
            "--from",
            "2025-01-01",
            "--to",
            "2025-12-31",
            "--format",
            format,
            "--out",
            out.to_str().unwrap(),
        ])
    };
    export("xlsx", &xlsx).ok();
    let mut book: calamine::Xlsx<_> = calamine::open_workbook(&xlsx).unwrap();
    let opinions = book.worksheet_range("社情民意台账").unwrap();
    let header: Vec<String> = opinions
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let text_col = header.iter().position(|h| h == "内容").unwrap();
    let row = opinions
        .rows()
        .find(|r| r[0] == Data::String("issue10-long".into()))
        .unwrap();
    let Data::String(cell) = &row[text_col] else {
        panic!("{:?}", row[text_col])
    };
    assert!(cell.encode_utf16().count() <= 32_767);
    assert!(
        cell.ends_with("【内容过长，已截断，全文见“超长内容”工作表】"),
        "marker"
    );
    let more = book.worksheet_range("超长内容").unwrap();
    let full: String = more
        .rows()
        .skip(1)
        .filter(|r| r[2] == Data::String("issue10-long".into()))
        .map(|r| match &r[6] {
            Data::String(s) => {
                assert!(s.encode_utf16().count() <= 32_767);
                s.clone()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(full, long);

    // CSV: full text, formula-like texts guarded, numbers left alone.
    let zip = tmp.path().join("台账.zip");
    export("csv", &zip).ok();
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip).unwrap()).unwrap();
    let mut text = String::new();
    archive
        .by_name("02_社情民意台账.csv")
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.contains("issue10-long,") && text.contains(&long));
    for (id, t) in &notes[1..] {
        let line = text.lines().find(|l| l.starts_with(id)).unwrap();
        assert!(line.contains(&format!(",'{t},")), "{line}");
    }
    // The summary's figures are numbers, written as numbers (never guarded).
    let mut summary = String::new();
    archive
        .by_name("00_汇总.csv")
        .unwrap()
        .read_to_string(&mut summary)
        .unwrap();
    let mut figures = 0;
    for line in summary.trim_start_matches('\u{feff}').lines().skip(1) {
        let value = line.split(',').nth(1).unwrap_or("");
        if !value.is_empty() {
            assert!(value.parse::<f64>().is_ok(), "{line}");
            figures += 1;
        }
    }
    assert!(figures > 0, "{summary}");

    // An export that cannot be written says where and what to do, in Chinese.
    let nowhere = tmp.path().join("no-such-dir").join("台账.xlsx");
    export("xlsx", &nowhere).fails(1, "目录不存在");
}
