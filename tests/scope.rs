//! Issue 13: `sanjin admin add-staff --chapter` makes staff of a county chapter, whose ledger
//! export (`sanjin export --as`) is their chapter's, the same as city staff's `--chapter`
//! slice; a chapter that is the city's or none is refused in Chinese.

use crate::support::run_data as run;

#[test]
fn issue13_add_staff_with_a_chapter_scopes_their_export() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("server");
    let data = data.to_str().unwrap();
    let fixtures = sanjin_fixtures::committed_dir();
    let fixtures = fixtures.to_str().unwrap();
    run(&["admin", "--data", data, "import-directory", fixtures]).ok();
    run(&["admin", "--data", data, "import-records", fixtures]).ok();
    let added = run(&[
        "admin",
        "--data",
        data,
        "add-staff",
        "--id",
        "office-hc",
        "--name",
        "汉川市政协秘书",
        "--chapter",
        "chapter-hanchuan",
    ])
    .ok();
    assert!(added.stdout.contains("汉川市政协"), "{}", added.stdout);
    let accounts = run(&["admin", "--data", data, "accounts", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&accounts.stdout).unwrap();
    let hc = v
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["member"] == "office-hc")
        .unwrap();
    assert_eq!(hc["role"], "staff");
    assert_eq!(hc["chapter"], "chapter-hanchuan");

    // Refused: the city chapter (its staff see everything), a chapter that does not exist.
    run(&[
        "admin",
        "--data",
        data,
        "add-staff",
        "--id",
        "office-x",
        "--name",
        "某",
        "--chapter",
        "chapter-city",
    ])
    .fails(2, "是市政协");
    run(&[
        "admin",
        "--data",
        data,
        "add-staff",
        "--id",
        "office-y",
        "--name",
        "某",
        "--chapter",
        "chapter-nowhere",
    ])
    .fails(2, "chapter-nowhere");
    let again = run(&["admin", "--data", data, "accounts", "--json"]).ok();
    assert!(
        !again.stdout.contains("office-x") && !again.stdout.contains("office-y"),
        "a refused account is not half made"
    );

    let export = |extra: &[&str], name: &str| -> serde_json::Value {
        let out = tmp.path().join(name);
        let mut args = vec![
            "export",
            "--data",
            data,
            "--from",
            "2025-01-01",
            "--to",
            "2025-12-31",
            "--format",
            "csv",
            "--out",
        ];
        args.push(out.to_str().unwrap());
        args.extend_from_slice(extra);
        args.push("--json");
        let r = run(&args).ok();
        serde_json::from_str(&r.stdout).unwrap()
    };
    let rows = |v: &serde_json::Value| v["rows"].clone();
    let county = export(&["--as", "office-hc"], "hc.zip");
    let sliced = export(&["--chapter", "chapter-hanchuan"], "slice.zip");
    let all = export(&[], "all.zip");
    assert_eq!(rows(&county), rows(&sliced));
    assert_ne!(rows(&county), rows(&all));
    // Another chapter's group is refused, in Chinese.
    let out = tmp.path().join("other.zip");
    run(&[
        "export",
        "--data",
        data,
        "--from",
        "2025-01-01",
        "--to",
        "2025-12-31",
        "--out",
        out.to_str().unwrap(),
        "--as",
        "office-hc",
        "--group",
        "group-01",
    ])
    .fails(2, "属于其他政协组织");
}
