//! Issue 10, the trace (留痕) on the server: records it imports and the resolutions its console
//! makes are written with automerge's unit of time (unix seconds, the milliseconds of that second
//! in the change's message), and a record written before issue 10 (milliseconds in `time`) still
//! shows its right times in the console.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use sanjin_core::RecordDoc;
use sanjin_fixtures::Fixtures;
use sanjin_server::{AppState, ServerData, app};
use serde_json::Value;
use tower::ServiceExt;

const LEADER_PASSWORD: &str = "leader-pass-01";
/// Saved by sanjin before issue 10; see `crates/core/tests/trace.rs` for how it was made.
const LEGACY: &[u8] = include_bytes!("../../core/tests/data/issue10-legacy-visit.automerge");

async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, String) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn post(path: &str, body: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::post(path).header("content-type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

fn get(path: &str, cookie: &str) -> Request<Body> {
    Request::get(path)
        .header("cookie", cookie)
        .body(Body::empty())
        .unwrap()
}

/// The history table of a record's console page, one line of cell texts per row.
fn history_rows(page: &str) -> Vec<String> {
    let table = page
        .split("<table id=\"history\">")
        .nth(1)
        .unwrap()
        .split("</table>")
        .next()
        .unwrap();
    table
        .split("<tr>")
        .skip(2)
        .map(|row| {
            row.split("<td>")
                .skip(1)
                .map(|c| c.split("</td>").next().unwrap())
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect()
}

fn beijing_today() -> String {
    (chrono::Utc::now().naive_utc() + chrono::Duration::hours(8))
        .format("%Y-%m-%d")
        .to_string()
}

/// Every change: whole seconds in `time`, the rest of the millisecond time in the message.
fn assert_seconds(doc: &mut RecordDoc) {
    for c in doc.changes() {
        let msg: Value = serde_json::from_str(c.message().unwrap()).unwrap();
        let ms = msg["ms"].as_i64().expect("the milliseconds in the message");
        assert!((0..1000).contains(&ms), "{msg}");
        assert!(
            (1_500_000_000..4_000_000_000).contains(&c.timestamp()),
            "seconds, not milliseconds: {}",
            c.timestamp()
        );
        assert_eq!(
            sanjin_core::doc::change_at_ms(&c),
            c.timestamp() * 1000 + ms
        );
    }
}

#[tokio::test]
async fn issue10_imports_and_console_resolutions_write_seconds_and_legacy_times_still_show() {
    let fx = Fixtures::load(&sanjin_fixtures::committed_dir()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut data = ServerData::open(tmp.path()).unwrap();
    data.import_directory(&sanjin_fixtures::committed_dir())
        .unwrap();
    // Imports (`sanjin admin import-records`) go through the core's records.
    let visits: Vec<_> = fx
        .visits
        .iter()
        .filter(|r| !r.events.is_empty())
        .take(20)
        .cloned()
        .collect();
    data.import_records(&visits).unwrap();
    for r in &visits {
        let mut doc = data.store().load(&r.id).unwrap();
        assert_seconds(&mut doc);
        let times: Vec<i64> = doc.history().iter().map(|h| h.at_ms).collect();
        let expected: Vec<i64> = std::iter::once(r.created_at_ms)
            .chain(r.events.iter().map(|e| e.at_ms))
            .collect();
        assert_eq!(times, expected, "{}", r.id);
    }

    // A record written before issue 10, with a conflict on its title.
    data.import_docs(&mut [RecordDoc::load(LEGACY).unwrap()])
        .unwrap();
    let leader = fx.leader_of("group-01").unwrap().to_string();
    sanjin_server::console::set_password(&mut data, &leader, LEADER_PASSWORD).unwrap();
    let state = AppState::new(data);
    let app = app(state.clone());
    let (status, _) = send(
        &app,
        post(
            "/console/login",
            &format!("account={leader}&password={LEADER_PASSWORD}"),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let res = app
        .clone()
        .oneshot(post(
            "/console/login",
            &format!("account={leader}&password={LEADER_PASSWORD}"),
            None,
        ))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();

    let (status, page) = send(&app, get("/console/records/v-legacy-1", &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains("58349"), "no year 58349");
    let rows = history_rows(&page);
    assert_eq!(rows.len(), 4, "{rows:?}");
    for (row, at) in rows.iter().zip([
        "2026-05-19 09:00",
        "2026-05-19 09:01",
        "2026-05-19 09:02",
        "2026-05-19 09:03",
    ]) {
        assert!(row.starts_with(at), "{row} should start with {at}");
    }
    // The conflict's two values with their authors' times.
    let conflicts = page
        .split("id=\"conflicts\"")
        .nth(1)
        .unwrap()
        .split("</div>")
        .next()
        .unwrap();
    assert!(
        conflicts.contains("2026-05-19 09:01") && conflicts.contains("2026-05-19 09:02"),
        "{conflicts}"
    );

    // The leader resolves it in the console: the server's change is in seconds too.
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let before = beijing_today();
    let (status, _) = send(
        &app,
        post(
            "/console/records/v-legacy-1/resolve",
            &format!("field=title&value=%22%E6%96%B0%22&csrf={csrf}"),
            Some(&cookie),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, page) = send(&app, get("/console/records/v-legacy-1", &cookie)).await;
    let after = beijing_today();
    let rows = history_rows(&page);
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert!(
        rows[4].starts_with(&before) || rows[4].starts_with(&after),
        "{}",
        rows[4]
    );
    assert!(rows[4].contains("裁定冲突"), "{}", rows[4]);
    let newest = state
        .with_data(|d| {
            let mut doc = d.store().load("v-legacy-1").unwrap();
            doc.changes()
                .into_iter()
                .find(|c| c.message().is_some_and(|m| m.contains(r#""a":"resolve""#)))
                .expect("the resolution's change")
        })
        .await
        .unwrap();
    let msg: Value = serde_json::from_str(newest.message().unwrap()).unwrap();
    assert_eq!(msg["m"], leader.as_str());
    let ms = msg["ms"].as_i64().unwrap();
    assert!((0..1000).contains(&ms));
    let now = chrono::Utc::now().timestamp();
    assert!(
        (now - 600..=now).contains(&newest.timestamp()),
        "the resolution's time in seconds: {}",
        newest.timestamp()
    );
}
