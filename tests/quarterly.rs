//! Issue 13: `sanjin export --quarterly 2025Q2` writes the quarterly report (季度通报) of a
//! server data folder as an XLSX workbook with its charts; a leader's is the group's; bad input
//! is refused in Chinese.

use crate::support::run_data as run;

#[test]
fn issue13_export_quarterly_report_command() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("server");
    let data = data.to_str().unwrap();
    let fixtures = sanjin_fixtures::committed_dir();
    let fixtures = fixtures.to_str().unwrap();
    run(&["admin", "--data", data, "import-directory", fixtures]).ok();
    run(&["admin", "--data", data, "import-records", fixtures]).ok();

    let out = tmp.path().join("季度通报.xlsx");
    let done = run(&[
        "export",
        "--data",
        data,
        "--quarterly",
        "2025Q2",
        "--out",
        out.to_str().unwrap(),
    ])
    .ok();
    assert!(done.stdout.contains("已导出季度通报"), "{}", done.stdout);
    assert!(
        done.stdout
            .contains("「三进」活动季度通报（2025年第2季度）（统计范围：全部）"),
        "{}",
        done.stdout
    );
    let bytes = std::fs::read(&out).unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    for i in 1..=3 {
        assert!(zip.by_name(&format!("xl/charts/chart{i}.xml")).is_ok());
    }

    // As JSON: the figures themselves; a leader's report is the group's.
    let leader_of_3 = sanjin_fixtures::Fixtures::load(&sanjin_fixtures::committed_dir())
        .unwrap()
        .leader_of("group-03")
        .unwrap()
        .to_string();
    let all = run(&[
        "export",
        "--data",
        data,
        "--quarterly",
        "2025q2",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ])
    .ok();
    let all: serde_json::Value = serde_json::from_str(&all.stdout).unwrap();
    let mine = run(&[
        "export",
        "--data",
        data,
        "--quarterly",
        "2025-Q2",
        "--as",
        &leader_of_3,
        "--out",
        out.to_str().unwrap(),
        "--json",
    ])
    .ok();
    let mine: serde_json::Value = serde_json::from_str(&mine.stdout).unwrap();
    assert_eq!(all["quarter"]["quarter"], 2);
    assert_eq!(all["scope"], "全部");
    assert_eq!(mine["groups"].as_array().unwrap().len(), 1);
    assert_eq!(mine["groups"][0]["id"], "group-03");
    assert!(
        mine["current"]["visits"].as_i64().unwrap() < all["current"]["visits"].as_i64().unwrap()
    );

    // Bad input, in Chinese.
    run(&[
        "export",
        "--data",
        data,
        "--quarterly",
        "2025Q5",
        "--out",
        out.to_str().unwrap(),
    ])
    .fails(2, "季度");
    run(&[
        "export",
        "--data",
        data,
        "--quarterly",
        "2025Q2",
        "--group",
        "group-01",
        "--out",
        out.to_str().unwrap(),
    ])
    .fails(2, "--as");
    run(&["export", "--data", data, "--out", out.to_str().unwrap()]).fails(2, "--from");
}
