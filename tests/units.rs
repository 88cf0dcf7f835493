//! Issue 13: the units opinions are forwarded to (承办单位) are directory entries: added by
//! `sanjin admin add-unit`, or imported with the directory from JSON lines.

use crate::support::run_data as run;

#[test]
fn issue13_units_are_added_and_imported_with_the_directory() {
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
    let added = run(&[
        "admin",
        "--data",
        data,
        "add-unit",
        "--id",
        "unit-001",
        "--name",
        "市城市管理局",
        "--chapter",
        "chapter-city",
    ])
    .ok();
    assert!(
        added
            .stdout
            .contains("已添加承办单位 unit-001（市城市管理局）")
    );
    // An id that exists, a chapter that does not: refused, and nothing written.
    run(&[
        "admin", "--data", data, "add-unit", "--id", "unit-001", "--name", "重复",
    ])
    .fails(2, "unit-001");
    run(&[
        "admin",
        "--data",
        data,
        "add-unit",
        "--id",
        "unit-009",
        "--name",
        "某局",
        "--chapter",
        "chapter-nowhere",
    ])
    .fails(2, "chapter-nowhere");
    // Imported from JSON lines like every directory entry.
    let file = tmp.path().join("units.jsonl");
    std::fs::write(
        &file,
        r#"{"id":"unit-002","created_by":"office-01","created_at_ms":1735779600000,"data":{"kind":"unit","name":"市民政局"}}"#,
    )
    .unwrap();
    let imported = run(&[
        "admin",
        "--data",
        data,
        "import-directory",
        file.to_str().unwrap(),
        "--json",
    ])
    .ok();
    let v: serde_json::Value = serde_json::from_str(&imported.stdout).unwrap();
    assert_eq!(v["added"], 1, "{v}");
    let conn =
        rusqlite::Connection::open(std::path::Path::new(data).join("sanjin.sqlite")).unwrap();
    let names: std::collections::HashMap<String, String> = conn
        .prepare("SELECT id, title FROM idx_directory WHERE kind = 'unit'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(names["unit-001"], "市城市管理局");
    assert_eq!(names["unit-002"], "市民政局");
    assert!(!names.contains_key("unit-009"));
}
