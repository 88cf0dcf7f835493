//! Issue 10, the trace (留痕) read by any automerge client: a record saved by sanjin, read by the
//! official JavaScript automerge (npm `@automerge/automerge`, pinned in `tests/js/package.json`),
//! shows each change at the right date. Before issue 10 the change's `time` held milliseconds,
//! which JavaScript automerge reads as seconds: the year 58349 for a record of 2026.
//!
//! Needs node and npm (`.ci/run` installs them and runs `npm ci` in `tests/js`; when
//! `node_modules` is absent this test runs `npm ci` itself).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use chrono::{DateTime, SecondsFormat};
use sanjin_core::domain::RecordData;
use sanjin_core::testdata::{self, author};
use sanjin_core::workflow::EventType;
use sanjin_core::{Edit, RecordDoc};
use serde_json::{Value, json};

/// 2026-12-05 14:03:07.891 Beijing time.
const T0: i64 = 1_796_450_587_891;

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

/// `npm ci` in `tests/js` unless `.ci/run` (or an earlier run) already installed it; once per
/// test binary (the tests run in parallel, and `npm ci` starts by removing `node_modules`).
fn install() -> PathBuf {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let dir = js_dir();
            if !dir
                .join("node_modules/@automerge/automerge/package.json")
                .exists()
            {
                let status = Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                    .current_dir(&dir)
                    .status()
                    .unwrap_or_else(|e| {
                        panic!("this test needs node and npm (apt-get install nodejs npm): {e}")
                    });
                assert!(status.success(), "npm ci failed in {}", dir.display());
            }
            dir
        })
        .clone()
}

/// What JavaScript automerge reads from a saved document: the root line, then one per change.
fn read_with_js(bytes: &[u8], name: &str) -> (Value, Vec<Value>) {
    let dir = install();
    let file = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{name}-{}.automerge", std::process::id()));
    std::fs::write(&file, bytes).unwrap();
    let out = Command::new("node")
        .arg("read_changes.mjs")
        .arg(&file)
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("this test needs node (apt-get install nodejs): {e}"));
    std::fs::remove_file(&file).unwrap();
    assert!(
        out.status.success(),
        "node read_changes.mjs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = std::str::from_utf8(&out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap());
    let root = lines.next().expect("the root line");
    (root, lines.collect())
}

fn iso_second(ms: i64) -> String {
    DateTime::from_timestamp(ms.div_euclid(1000), 0)
        .unwrap()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[test]
fn issue10_official_javascript_automerge_reads_the_change_times() {
    let (a1, a2) = (author("member-0001", 1), author("member-0002", 2));
    let mut doc =
        RecordDoc::create("v-js-1", &RecordData::Visit(testdata::visit()), &a1, T0).unwrap();
    let mut other = RecordDoc::load(&doc.save()).unwrap();
    doc.edit(
        &a1,
        T0 + 61_234,
        &[Edit::Set {
            field: "title".into(),
            value: json!("新华村人居环境座谈"),
        }],
    )
    .unwrap();
    other
        .edit(
            &a2,
            T0 + 3_600_005,
            &[Edit::Set {
                field: "summary".into(),
                value: json!("会后形成三条建议。"),
            }],
        )
        .unwrap();
    doc.merge(&mut other).unwrap();
    doc.transition(&a1, T0 + 7_200_999, EventType::Submit, None)
        .unwrap();
    let history = doc.history();
    assert_eq!(history.len(), 4);

    let (root, changes) = read_with_js(&doc.save(), "issue10-js");
    assert_eq!(
        root,
        json!({"id": "v-js-1", "kind": "visit", "by": "member-0001"})
    );
    assert_eq!(changes.len(), history.len(), "{changes:?}");
    for h in &history {
        let c = changes
            .iter()
            .find(|c| c["hash"] == json!(h.hash))
            .unwrap_or_else(|| panic!("change {} not read by JavaScript automerge", h.hash));
        // automerge's unit: whole unix seconds, so JavaScript shows the right date (2026).
        assert_eq!(c["time"], json!(h.at_ms.div_euclid(1000)), "{c}");
        let date = c["date"].as_str().unwrap();
        assert!(date.starts_with("2026-12-05T"), "{date}");
        assert_eq!(date, iso_second(h.at_ms));
        // The milliseconds of that second, who and which device, in the message every client
        // can read: `time × 1000 + ms` is the exact time sanjin shows.
        let msg: Value = serde_json::from_str(c["message"].as_str().unwrap()).unwrap();
        assert_eq!(
            c["time"].as_i64().unwrap() * 1000 + msg["ms"].as_i64().unwrap(),
            h.at_ms,
            "{msg}"
        );
        assert_eq!(
            (msg["m"].as_str(), msg["d"].as_str()),
            (Some(h.member.as_str()), Some(h.device.as_str()))
        );
    }
    let times: Vec<i64> = history.iter().map(|h| h.at_ms).collect();
    assert_eq!(times, [T0, T0 + 61_234, T0 + 3_600_005, T0 + 7_200_999]);
}

/// Why: a document made before issue 10 (milliseconds in `time`) shows the year 58349 in
/// JavaScript automerge, while sanjin still reads it right (see `tests/trace.rs`).
#[test]
fn issue10_javascript_automerge_misread_the_legacy_millisecond_times() {
    let bytes = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/issue10-legacy-visit.automerge"),
    )
    .unwrap();
    let (root, changes) = read_with_js(&bytes, "issue10-js-legacy");
    assert_eq!(root["id"], json!("v-legacy-1"));
    assert_eq!(changes.len(), 4);
    for c in &changes {
        assert!(c["date"].as_str().unwrap().starts_with("+058349-"), "{c}");
    }
    let mut doc = RecordDoc::load(&bytes).unwrap();
    assert!(
        doc.history()
            .iter()
            .all(|h| iso_second(h.at_ms).starts_with("2026-05-19T01:0"))
    );
}
