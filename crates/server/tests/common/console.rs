//! Console requests through the router, shared by the console tests (`console_actions.rs`,
//! `console_directory.rs`, `console_plans.rs`, `console.rs`, `console_report.rs`): a data folder
//! with the fixtures and a staff account, a form post with the session cookie and the session's
//! CSRF token. Signing in is [`super::photos::console_session`].

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use tower::ServiceExt;

use sanjin_server::{Role, ServerData};

use super::{Harness, fixtures};

/// A data folder holding the committed fixtures (the directory, visits, opinions, households,
/// plans) and the staff account `staff` (王秘书) with the console password `password`.
pub fn fixture_data(staff: &str, password: &str) -> (tempfile::TempDir, ServerData) {
    let fx = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let mut data = ServerData::open(tmp.path()).unwrap();
    data.import_directory(&sanjin_fixtures::committed_dir())
        .unwrap();
    let records: Vec<_> = fx
        .visits
        .iter()
        .chain(&fx.opinions)
        .chain(&fx.households)
        .chain(&fx.plans)
        .cloned()
        .collect();
    data.import_records(&records).unwrap();
    data.add_staff(staff, "王秘书", Role::Staff).unwrap();
    sanjin_server::console::set_password(&mut data, staff, password).unwrap();
    (tmp, data)
}

/// A console form `POST` (`application/x-www-form-urlencoded`) with the session cookie.
pub fn form(path: &str, cookie: &str, body: String) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie)
        .body(Body::from(body))
        .unwrap()
}

/// The session's CSRF token, read from a page's sign-out form.
pub async fn csrf(h: &Harness, cookie: &str) -> String {
    let html = super::photos::console_get(h, "/console/dashboard", cookie)
        .await
        .text();
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..at + html[at..].find('"').unwrap()].to_string()
}

/// A [`Harness::live`] server for a browser test, on a runtime of its own (the test drives
/// Chromium from its thread), and the server's URL.
pub fn live_server() -> (tokio::runtime::Runtime, Harness, String) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let h = rt.block_on(Harness::live());
    let base = h.live.as_ref().unwrap().running.url();
    (rt, h, base)
}

/// A real server (self-signed TLS on loopback) on the data folder `dir`, on a runtime of its
/// own (a browser test drives Chromium from its thread), and the server's URL.
pub fn serve_folder(
    dir: &std::path::Path,
) -> (tokio::runtime::Runtime, sanjin_server::Running, String) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = sanjin_server::Config::new(
        dir,
        "127.0.0.1:0".parse().unwrap(),
        sanjin_server::TlsMode::SelfSigned { hostnames: vec![] },
    );
    let running = rt.block_on(sanjin_server::spawn(config)).unwrap();
    let base = running.url();
    (rt, running, base)
}

/// A reply of the router itself (no [`Harness`]): status, headers as text, body.
pub struct RouterReply {
    pub status: StatusCode,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl RouterReply {
    /// The body as text (a console page).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `req` through `app`.
pub async fn send(app: &axum::Router, req: Request<Body>) -> RouterReply {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    RouterReply {
        status,
        headers,
        body,
    }
}

/// A console `GET` of `path` with the session cookie.
pub fn get(path: &str, cookie: &str) -> Request<Body> {
    Request::get(path)
        .header("cookie", cookie)
        .body(Body::empty())
        .unwrap()
}
