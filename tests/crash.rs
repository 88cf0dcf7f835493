//! A device process is killed with SIGKILL in the middle of a stream of saves; the store opens
//! afterwards and holds every save that returned (issue 2).

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use sanjin_store::{Durability, Store};

use crate::support::{run, sanjin};

#[test]
fn sigkill_during_saves_loses_nothing_that_returned() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("phone.sqlite");
    run(&store, &["device", "init", "--member", "member-0001"]).ok();
    // A stream of real records: the committed fixtures' visits, one JSON line each.
    let fixtures = sanjin_fixtures::Fixtures::load(&sanjin_fixtures::committed_dir()).unwrap();
    let file = dir.path().join("visits.jsonl");
    let lines: Vec<String> = fixtures
        .visits
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();

    let mut confirmed: Vec<String> = Vec::new();
    // Kill at different points; each run re-imports from the start (already saved records merge
    // as unchanged), so later runs also kill in the middle of merges.
    for kill_after in [40usize, 250, 700] {
        let mut child = sanjin()
            .args(["device", "import", "--json"])
            .arg(&file)
            .arg("--store")
            .arg(&store)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let mut seen = 0;
        while seen < kill_after {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            confirmed.push(v["saved"].as_str().unwrap().to_string());
            seen += 1;
        }
        child.kill().unwrap(); // SIGKILL
        // Lines already in the pipe were printed after their commit: they count too.
        for l in out.lines() {
            let Ok(l) = l else { break };
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&l) {
                confirmed.push(v["saved"].as_str().unwrap().to_string());
            }
        }
        let status = child.wait().unwrap();
        assert!(!status.success(), "the import was killed, not finished");

        let s = Store::open(&store, Durability::Full).unwrap();
        let ok: String = rusqlite::Connection::open(s.path())
            .unwrap()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        for id in &confirmed {
            let mut doc = s
                .load(id)
                .unwrap_or_else(|e| panic!("{id} returned but is gone: {e}"));
            doc.view().unwrap();
            assert!(s.index_entry(id).unwrap().is_some(), "{id} is indexed");
        }
        assert!(s.check().unwrap().is_empty(), "no record is half-written");
    }
    assert!(
        confirmed.len() >= 990,
        "the kills happened mid-stream: {}",
        confirmed.len()
    );
}
