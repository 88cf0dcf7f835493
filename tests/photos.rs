//! Issue 4, end to end through the CLI: `sanjin device attach`, `show` listing photos, `sync`
//! uploading originals by policy, a leader receiving the thumbnails with the records; bad photo
//! files refused with a clear message and nothing saved.

use sanjin_media::testing;
use serde_json::Value;

use crate::support::run;
use crate::sync::{Server, record_visit};

fn sync_json(store: &std::path::Path, extra: &[&str]) -> Value {
    let mut args = vec!["device", "sync", "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&run(store, &args).ok().stdout).unwrap()
}

#[test]
fn attach_show_and_sync_photos_by_policy_issue_4() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"), "127.0.0.1:0");
    server
        .admin(&[
            "import-directory",
            sanjin_fixtures::committed_dir().to_str().unwrap(),
        ])
        .ok();
    let phone = server.phone(dir.path(), "member-0001");
    let leader = server.phone(dir.path(), "member-0002");
    let id = record_visit(&phone, "group-01", "cp-001", "村口座谈");

    let photo = dir.path().join("村口.jpg");
    let jpeg = testing::jpeg(&testing::photo(640, 480, 7, 6), 88);
    let spec = testing::ExifSpec {
        orientation: None,
        taken_at: Some("2026:05:19 09:41:00".into()),
        gps: Some((31.23, 121.47)),
    };
    std::fs::write(&photo, testing::with_exif(&jpeg, &spec)).unwrap();
    let out = run(
        &phone,
        &[
            "device",
            "attach",
            &id,
            photo.to_str().unwrap(),
            "--caption",
            "村口",
        ],
    )
    .ok();
    assert!(out.stdout.contains("已为记录"), "{}", out.stdout);

    // Bad input: a text file named .jpg, a record that does not exist, a missing file.
    let fake = dir.path().join("假照片.jpg");
    std::fs::write(&fake, "这不是照片").unwrap();
    run(&phone, &["device", "attach", &id, fake.to_str().unwrap()])
        .fails(2, "只支持 JPEG、PNG、WebP");
    run(
        &phone,
        &[
            "device",
            "attach",
            "no-such-record",
            photo.to_str().unwrap(),
        ],
    )
    .fails(2, "没有编号为");
    run(&phone, &["device", "attach", &id, "/nonexistent/p.jpg"]).fails(2, "找不到照片文件");

    let shown = run(&phone, &["device", "show", &id]).ok().stdout;
    assert!(shown.contains("照片（1 张）"), "{shown}");
    assert!(
        shown.contains("村口") && shown.contains("原图待上传"),
        "{shown}"
    );
    assert!(shown.contains("拍摄于 2026-05-19 09:41"), "{shown}");

    // On a cellular link with wifi-only, the record (and its thumbnail) goes, the original waits.
    let s = sync_json(&phone, &["--photos", "wifi-only", "--link", "cellular"]);
    assert_eq!(s["sent"], 1);
    assert_eq!(s["photos"]["held_by_policy"], true);
    assert_eq!(s["photos"]["pending"], 1);
    run(&phone, &["device", "sync", "--photos", "sometimes"]).fails(2, "--photos 只能是");

    // The leader has the photo with its thumbnail before the original moved.
    sync_json(&leader, &["--photos", "never"]);
    let v: Value =
        serde_json::from_str(&run(&leader, &["device", "show", &id, "--json"]).ok().stdout)
            .unwrap();
    let p = &v["photos"][0];
    assert_eq!(p["caption"], "村口");
    assert_eq!(p["taken_at"], "2026-05-19T09:41:00");
    assert!((p["gps"]["lat"].as_f64().unwrap() - 31.23).abs() < 1e-4);
    assert!(p["thumbnail_bytes"].as_u64().unwrap() > 0);
    assert_eq!(p["width"], 640);

    let s = sync_json(&phone, &["--photos", "wifi-only", "--link", "wifi"]);
    assert_eq!(s["photos"]["uploaded"], 1);
    assert_eq!(s["photos"]["pending"], 0);
    let hash = p["hash"].as_str().unwrap();
    let stored = std::fs::read(server.data.join("blobs").join(&hash[..2]).join(hash)).unwrap();
    assert_eq!(sanjin_media::hash(&stored), hash);
    let s = sync_json(&phone, &[]);
    assert_eq!(s["photos"]["uploaded"], 0);
    let shown = run(&phone, &["device", "show", &id]).ok().stdout;
    assert!(!shown.contains("原图待上传"), "{shown}");
}
