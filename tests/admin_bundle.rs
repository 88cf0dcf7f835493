//! Issue 12: `sanjin admin import-bundle` — staff import bundle parts a USB stick or a chat app
//! brought, on the server's data folder: each part through the push policy of a sync push,
//! importing the same parts twice changes nothing, a tampered part is refused with a Chinese
//! message and the others still land, `--json` for scripts.

use serde_json::Value;

use crate::support::run;
use crate::sync::{Server, record_visit};

#[test]
fn issue12_admin_import_bundle_lands_once_is_idempotent_and_refuses_a_tampered_part() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"), "127.0.0.1:0");
    server
        .admin(&[
            "import-directory",
            sanjin_fixtures::committed_dir().to_str().unwrap(),
        ])
        .ok();
    // A phone enrolled in town (it has the keys), then in the village without signal.
    let phone = server.phone(dir.path(), "member-0001");
    let ids: Vec<String> = (0..3)
        .map(|i| record_visit(&phone, "group-01", "cp-001", &format!("无信号走访 {i}")))
        .collect();
    let out = dir.path().join("village.sjb");
    let e = run(
        &phone,
        &[
            "device",
            "bundle",
            "export",
            "--out",
            out.to_str().unwrap(),
            "--part-size",
            "1K",
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
    assert!(files.len() >= 2, "{v}");

    // The staff import every part, in reverse order.
    let mut args = vec!["import-bundle"];
    args.extend(files.iter().rev().map(String::as_str));
    let first = server.admin(&args).ok();
    assert!(
        first.stdout.contains("由委员 member-0001 的设备"),
        "{}",
        first.stdout
    );
    let landed: usize = first
        .stdout
        .lines()
        .filter_map(|l| {
            l.split("新收 ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum();
    assert!(landed >= ids.len(), "{}", first.stdout);
    // Again, as JSON: every document held, nothing new.
    let mut args = vec!["import-bundle", "--json"];
    args.extend(files.iter().map(String::as_str));
    let again = server.admin(&args).ok();
    let reports: Value = serde_json::from_str(&again.stdout).unwrap();
    let mut held = 0;
    for r in reports.as_array().unwrap() {
        assert!(r["refused"].is_null(), "{r}");
        for d in r["docs"].as_array().unwrap() {
            assert_eq!(d["outcome"], "held", "{d}");
            held += 1;
        }
    }
    assert!(held >= ids.len());
    let log = |id: &str| -> i64 {
        rusqlite::Connection::open(dir.path().join("server").join("sanjin.sqlite"))
            .unwrap()
            .query_row(
                "SELECT COUNT(*) FROM change_log WHERE doc_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
    };
    for id in &ids {
        assert_eq!(log(id), 1, "{id} landed once");
    }

    // A tampered part is refused with what to do; the good part beside it still imports, and
    // the command says some files were not imported (exit 2).
    let later = record_visit(&phone, "group-01", "cp-001", "再一次走访");
    let out2 = dir.path().join("second.sjb");
    run(
        &phone,
        &[
            "device",
            "bundle",
            "export",
            "--out",
            out2.to_str().unwrap(),
        ],
    )
    .ok();
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 0x40;
    let bad = dir.path().join("tampered.sjb");
    std::fs::write(&bad, &bytes).unwrap();
    let r = server
        .admin(&[
            "import-bundle",
            bad.to_str().unwrap(),
            out2.to_str().unwrap(),
        ])
        .fails(2, "1 个文件未能导入");
    assert!(
        r.stdout.contains("tampered.sjb：拒收。文件已损坏或被篡改"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("second.sjb：第 1/1 部分"), "{}", r.stdout);
    assert_eq!(log(&later), 1, "the good file's new record landed");
    // A file that is no bundle, and one that does not exist.
    let junk = dir.path().join("junk.sjb");
    std::fs::write(&junk, b"hello").unwrap();
    let r = server
        .admin(&[
            "import-bundle",
            junk.to_str().unwrap(),
            "/nonexistent/x.sjb",
        ])
        .fails(2, "2 个文件未能导入");
    assert!(r.stdout.contains("这不是三进的数据包文件"), "{}", r.stdout);
    assert!(r.stdout.contains("无法读取文件"), "{}", r.stdout);
}
