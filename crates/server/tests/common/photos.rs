//! Photos for the tests of issue 10: real JPEG originals and thumbnails, visits whose photo
//! references are written with automerge directly (what a device that skips the checks sends,
//! or data from before them), blob uploads, and console sign-in.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ObjType, ReadDoc, ScalarValue, Value as AmValue};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use sanjin_core::domain::{PhotoRef, RecordData};
use sanjin_core::{Author, RecordDoc};

use super::{Device, Harness, Reply, fixtures, now};

/// A real photo: a 640 × 480 JPEG original, its 320 px thumbnail and content address.
pub struct Photo {
    pub original: Vec<u8>,
    pub thumbnail: Vec<u8>,
    pub hash: String,
}

pub fn photo(seed: u64) -> Photo {
    let original =
        sanjin_media::testing::jpeg(&sanjin_media::testing::photo(640, 480, seed, 6), 85);
    let p = sanjin_media::process(&original, &sanjin_media::Limits::default()).unwrap();
    Photo {
        original,
        thumbnail: p.thumbnail,
        hash: p.hash,
    }
}

impl Photo {
    /// The reference a phone attaches.
    pub fn reference(&self, caption: &str) -> PhotoRef {
        let mut r = PhotoRef::new(&self.hash);
        r.caption = caption.into();
        r.bytes = self.original.len() as u64;
        r.width = 640;
        r.height = 480;
        r.mime = "image/jpeg".into();
        r
    }
}

/// A visit of `group` recorded by `member`, whose photo set holds `photos` as written: each a
/// set key, the element (JSON) and the thumbnail stored under `th:<key>`, if any. Written with
/// automerge directly, so nothing checks the references.
pub fn visit_with_raw_photos(
    group: &str,
    member: &str,
    photos: &[(String, serde_json::Value, Option<Vec<u8>>)],
) -> RecordDoc {
    let mut data = fixtures()
        .visits
        .iter()
        .find_map(|r| match &r.data {
            RecordData::Visit(v) if v.group == group => Some(v.clone()),
            _ => None,
        })
        .expect("a fixture visit of the group");
    data.participants = vec![member.to_string()];
    let id = sanjin_store::new_record_id();
    let author = Author::new(member, "old-phone", &[0x5a; 16]).unwrap();
    let doc = RecordDoc::create(&id, &RecordData::Visit(data), &author, now()).unwrap();
    let mut am = doc.into_automerge();
    let f = match am.get(automerge::ROOT, "f").unwrap() {
        Some((AmValue::Object(ObjType::Map), id)) => id,
        other => panic!("no field map: {other:?}"),
    };
    let set = match am.get(&f, "photos").unwrap() {
        Some((AmValue::Object(ObjType::Map), id)) => id,
        _ => am.put_object(&f, "photos", ObjType::Map).unwrap(),
    };
    for (key, element, thumb) in photos {
        am.put(&set, key.as_str(), element.to_string()).unwrap();
        if let Some(t) = thumb {
            am.put(
                automerge::ROOT,
                format!("th:{key}"),
                ScalarValue::Bytes(t.clone()),
            )
            .unwrap();
        }
    }
    let message =
        serde_json::json!({"m": member, "d": "old-phone", "a": "attach", "f": ["photos"]});
    am.commit_with(
        CommitOptions::default()
            .with_message(message.to_string())
            .with_time(now()),
    );
    RecordDoc::from_automerge(am).unwrap()
}

/// Places records on the server by the operator's import (a server-side path: data that
/// predates the checks a push gets).
pub async fn place(h: &Harness, docs: Vec<RecordDoc>) {
    h.data(move |d| {
        let mut docs = docs;
        d.import_docs(&mut docs).unwrap();
    })
    .await;
}

/// `PUT /v1/blobs/{hash}?offset=&size=` by `dev`.
pub async fn put_blob(
    h: &Harness,
    dev: &Device,
    hash: &str,
    offset: u64,
    size: u64,
    body: &[u8],
) -> Reply {
    let req = Request::builder()
        .method(Method::PUT)
        .uri(format!("/v1/blobs/{hash}?offset={offset}&size={size}"))
        .header("authorization", format!("Bearer {}", dev.bearer()))
        .header("content-type", "application/octet-stream")
        .body(Body::from(body.to_vec()))
        .unwrap();
    h.call(req).await
}

/// Uploads a whole blob in one request; panics unless the server verified and kept it.
pub async fn upload(h: &Harness, dev: &Device, bytes: &[u8]) -> String {
    let hash = sanjin_media::hash(bytes);
    let r = put_blob(h, dev, &hash, 0, bytes.len() as u64, bytes).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
    hash
}

/// Sets a console password for `member` and signs in; returns the `Cookie` header value.
pub async fn console_session(h: &Harness, member: &str) -> String {
    let (m, password) = (member.to_string(), format!("pass-{member}"));
    let p = password.clone();
    h.data(move |d| sanjin_server::console::set_password(d, &m, &p).unwrap())
        .await;
    let req = Request::builder()
        .method(Method::POST)
        .uri("/console/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!("account={member}&password={password}")))
        .unwrap();
    let r = h.call(req).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "sign-in of {member}");
    let cookie = r.headers["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_string()
}

/// A console `GET` with the session cookie.
pub async fn console_get(h: &Harness, path: &str, cookie: &str) -> Reply {
    let req = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header("cookie", cookie)
        .body(Body::empty())
        .unwrap();
    h.call(req).await
}
