//! A small DevTools client for headless Chromium (Debian's `chromium`), written for the console
//! test of issue 5 and shared by every console test in a browser (`console.rs`,
//! `console_actions.rs`, `console_directory.rs`, `console_plans.rs`, `console_report.rs`),
//! with the page helpers they all use (sign in, read and fill elements by id).

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub struct Chromium {
    child: Child,
    ws: tungstenite::WebSocket<TcpStream>,
    session: String,
    next: u64,
    _profile: tempfile::TempDir,
    /// Content-Security-Policy violations the pages reported (issue 10), from every source
    /// DevTools offers: the page's `securitypolicyviolation` events (a listener injected into
    /// every document reports them on the console), console log entries and DevTools issues.
    violations: Vec<String>,
}

/// Injected into every document before anything else runs: reports each CSP violation.
const CSP_LISTENER: &str = "document.addEventListener('securitypolicyviolation', e => console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || '(inline)') + ' in ' + e.documentURI));";

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromium_binary() -> PathBuf {
    for p in [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("headless Chromium is needed: apt-get install -y chromium (.ci/run installs it)");
}

impl Chromium {
    pub fn start(downloads: &Path) -> Chromium {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(chromium_binary())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--ignore-certificate-errors",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium starts");
        let port_file = profile.path().join("DevToolsActivePort");
        let started = Instant::now();
        let text = loop {
            if let Ok(t) = std::fs::read_to_string(&port_file)
                && t.lines().count() >= 2
            {
                break t;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromium did not open its DevTools port"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let mut lines = text.lines();
        let port: u16 = lines.next().unwrap().trim().parse().unwrap();
        let path = lines.next().unwrap().trim().to_string();
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let (ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}{path}"), stream).unwrap();
        let mut c = Chromium {
            child,
            ws,
            session: String::new(),
            next: 0,
            _profile: profile,
            violations: Vec::new(),
        };
        c.call(
            None,
            "Browser.setDownloadBehavior",
            json!({"behavior": "allow", "downloadPath": downloads.to_str().unwrap()}),
        );
        let target = c.call(None, "Target.createTarget", json!({"url": "about:blank"}));
        let session = c.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        c.session = session["sessionId"].as_str().unwrap().to_string();
        c.page("Page.enable", json!({}));
        c.page("Runtime.enable", json!({}));
        c.page("Log.enable", json!({}));
        c.page("Audits.enable", json!({}));
        c.page(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": CSP_LISTENER}),
        );
        c
    }

    /// Keeps what an event says about a CSP violation.
    fn note_event(&mut self, v: &Value) {
        let p = &v["params"];
        let found = match v["method"].as_str() {
            Some("Runtime.consoleAPICalled") => p["args"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["value"].as_str())
                .find(|t| t.starts_with("CSP violation"))
                .map(str::to_string),
            Some("Log.entryAdded") => p["entry"]["text"]
                .as_str()
                .filter(|t| {
                    t.contains("Content Security Policy") || t.contains("Content-Security-Policy")
                })
                .map(|t| format!("log: {t}")),
            Some("Audits.issueAdded") => (p["issue"]["code"] == "ContentSecurityPolicyIssue")
                .then(|| format!("issue: {}", p["issue"]["details"])),
            _ => None,
        };
        if let Some(f) = found {
            self.violations.push(f);
        }
    }

    /// The CSP violations reported so far (after reading every event already sent), cleared.
    pub fn take_violations(&mut self) -> Vec<String> {
        // Violations are reported asynchronously: give the page a moment, then a round trip
        // that reads every event queued before its answer.
        std::thread::sleep(Duration::from_millis(300));
        self.eval("true");
        std::mem::take(&mut self.violations)
    }

    /// Fails the test if any page reported a CSP violation (issue 10).
    pub fn assert_no_csp_violations(&mut self, when: &str) {
        let v = self.take_violations();
        assert!(v.is_empty(), "CSP violations {when}: {v:#?}");
    }

    pub fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(tungstenite::Message::Text(msg.to_string().into()))
            .unwrap();
        loop {
            let m = self.ws.read().unwrap();
            let tungstenite::Message::Text(t) = m else {
                continue;
            };
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["id"] == json!(id) {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
            self.note_event(&v);
        }
    }

    pub fn page(&mut self, method: &str, params: Value) -> Value {
        let s = self.session.clone();
        self.call(Some(&s), method, params)
    }

    pub fn eval(&mut self, js: &str) -> Value {
        let r = self.page(
            "Runtime.evaluate",
            json!({"expression": js, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(r.get("exceptionDetails").is_none(), "{js}: {r}");
        r["result"]["value"].clone()
    }

    /// Opens `url`; first fails the test if the page being left reported a CSP violation.
    pub fn goto(&mut self, url: &str) {
        self.assert_no_csp_violations(&format!("before opening {url}"));
        self.page("Page.navigate", json!({"url": url}));
        self.wait("document.readyState === 'complete' && location.href !== 'about:blank'");
    }

    pub fn wait(&mut self, condition: &str) {
        let started = Instant::now();
        loop {
            let ok = self.page(
                "Runtime.evaluate",
                json!({"expression": format!("(() => {{ try {{ return !!({condition}); }} catch (e) {{ return false; }} }})()"), "returnByValue": true}),
            );
            if ok["result"]["value"] == json!(true) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "timed out waiting for {condition}; page: {}",
                self.eval("document.body ? document.body.innerText.slice(0, 500) : ''")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Signs in on the console's login page as `who` (cookies cleared first) and waits for the
    /// dashboard's figures.
    pub fn sign_in(&mut self, base: &str, who: &str, password: &str) {
        self.page("Network.clearBrowserCookies", json!({}));
        self.goto(&format!("{base}/console/login"));
        self.eval(&format!(
            "document.getElementById('account').value = {}; document.getElementById('password').value = {}; document.getElementById('signin').click(); true",
            json!(who),
            json!(password)
        ));
        self.wait("location.pathname === '/console/dashboard' && document.getElementById('stats')");
    }

    /// The text of the element with id `id`, empty when there is none.
    pub fn inner_text(&mut self, id: &str) -> String {
        self.eval(&format!(
            "(document.getElementById({}) || {{innerText: ''}}).innerText",
            json!(id)
        ))
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Sets the value of the form field with id `id`.
    pub fn set_value(&mut self, id: &str, value: &str) {
        self.set_values(&[(id, value)]);
    }

    /// Sets the values of form fields by id, in one evaluation.
    pub fn set_values(&mut self, values: &[(&str, &str)]) {
        let js: String = values
            .iter()
            .map(|(id, v)| {
                format!(
                    "document.getElementById({}).value = {};",
                    json!(id),
                    json!(v)
                )
            })
            .collect();
        self.eval(&format!("{js} true"));
    }

    /// Clicks the element with id `id`.
    pub fn click(&mut self, id: &str) {
        self.eval(&format!(
            "document.getElementById({}).click(); true",
            json!(id)
        ));
    }

    /// Whether the page has no element with id `id`.
    pub fn absent(&mut self, id: &str) -> bool {
        self.eval(&format!("document.getElementById({}) === null", json!(id)))
            .as_bool()
            .unwrap()
    }

    /// Puts the file at `path` into the file input with id `id`, as a person choosing it would.
    pub fn choose_file(&mut self, id: &str, path: &Path) {
        self.page("DOM.enable", json!({}));
        let node = self.page(
            "Runtime.evaluate",
            json!({"expression": format!("document.getElementById({})", json!(id))}),
        );
        let object = node["result"]["objectId"].clone();
        assert!(object.is_string(), "no file input {id}: {node}");
        self.page(
            "DOM.setFileInputFiles",
            json!({"files": [path.to_str().unwrap()], "objectId": object}),
        );
    }

    pub fn screenshot(&mut self, path: &Path) {
        let r = self.page(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let png = base64(r["data"].as_str().unwrap());
        std::fs::write(path, png).unwrap();
    }
}

fn base64(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            _ => 63,
        }
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, c)| acc | (val(*c) << (18 - 6 * i)));
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}
