//! Issue 10: the console's export of a note longer than an Excel cell holds (16,384 × 𠮷, which
//! the core's 20,000-character check allows) is a workbook, not a server error: the cell is cut
//! with a visible marker and the full text is in the continuation sheet. Through the router.

use std::io::{Cursor, Read};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use calamine::{Data, Reader};
use sanjin_core::RecordData;
use sanjin_fixtures::Fixtures;
use sanjin_server::{AppState, Role, ServerData, app};
use tower::ServiceExt;

const STAFF: &str = "office-01";
const STAFF_PASSWORD: &str = "console-pass-01";

async fn send(
    app: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, Vec<(String, String)>, Vec<u8>) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, body.to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header"))
}

#[tokio::test]
async fn issue10_console_export_of_an_overlong_note_is_a_workbook() {
    let fx = Fixtures::load(&sanjin_fixtures::committed_dir()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut data = ServerData::open(tmp.path()).unwrap();
    data.import_directory(&sanjin_fixtures::committed_dir())
        .unwrap();
    let mut note = fx
        .opinions
        .iter()
        .find(|r| matches!(&r.data, RecordData::Opinion(o) if o.recorded_on.to_string().starts_with("2025-")))
        .unwrap()
        .clone();
    let long = "𠮷".repeat(16_384);
    note.id = "issue10-console-long".into();
    let RecordData::Opinion(o) = &mut note.data else {
        unreachable!()
    };
    o.text = long.clone();
    // The server's own import: the core validates the record.
    data.import_records(std::slice::from_ref(&note)).unwrap();
    data.add_staff(STAFF, "王秘书", Role::Staff).unwrap();
    sanjin_server::console::set_password(&mut data, STAFF, STAFF_PASSWORD).unwrap();
    let app = app(AppState::new(data));

    let (status, headers, _) = send(
        &app,
        Request::post("/console/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!(
                "account={STAFF}&password={STAFF_PASSWORD}"
            )))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = header(&headers, "set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let get = |path: &str| {
        Request::get(path)
            .header("cookie", &cookie)
            .body(Body::empty())
            .unwrap()
    };

    let (status, headers, bytes) = send(
        &app,
        get("/console/export/file?from=2025-01-01&to=2025-12-31&format=xlsx"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(
        header(&headers, "content-type"),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    let mut book = calamine::Xlsx::new(Cursor::new(bytes)).unwrap();
    let opinions = book.worksheet_range("社情民意台账").unwrap();
    let titles: Vec<String> = opinions
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let text = titles.iter().position(|t| t == "内容").unwrap();
    let row = opinions
        .rows()
        .find(|r| r[0] == Data::String(note.id.clone()))
        .expect("the note is in the ledger");
    let Data::String(cell) = &row[text] else {
        panic!("{:?}", row[text])
    };
    assert!(cell.encode_utf16().count() <= sanjin_ledger::MAX_CELL_UNITS);
    assert!(cell.ends_with(sanjin_ledger::CUT_MARKER));
    let more = book.worksheet_range(sanjin_ledger::OVERFLOW_SHEET).unwrap();
    let full: String = more
        .rows()
        .skip(1)
        .filter(|r| r[2] == Data::String(note.id.clone()))
        .map(|r| r[6].to_string())
        .collect();
    assert_eq!(full, long, "the full text is recoverable");

    // The CSV zip keeps the whole text in its cell.
    let (status, _, bytes) = send(
        &app,
        get("/console/export/file?from=2025-01-01&to=2025-12-31&format=csv"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut zip = zip_archive(bytes);
    let mut csv = String::new();
    zip.by_name("02_社情民意台账.csv")
        .unwrap()
        .read_to_string(&mut csv)
        .unwrap();
    assert!(csv.contains(&long));
}

fn zip_archive(bytes: Vec<u8>) -> zip::ZipArchive<Cursor<Vec<u8>>> {
    zip::ZipArchive::new(Cursor::new(bytes)).unwrap()
}
