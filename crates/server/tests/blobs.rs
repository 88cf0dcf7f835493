//! Photo originals on the server (issue 4): resumable content-addressed uploads that become
//! visible only when verified, ranged downloads within the device's scope, expiry of partial
//! uploads. Driven through the router on a real data folder.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::*;
use sanjin_core::domain::PhotoRef;
use sanjin_server::{BlobState, BlobStore, FsBlobStore};

const THUMB: &[u8] = sanjin_core::testdata::THUMBNAIL;

fn sha256(b: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, b))
}

fn original(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32 * 31 + seed as u32) as u8)
        .collect()
}

async fn put(h: &Harness, dev: &Device, hash: &str, offset: u64, size: u64, body: &[u8]) -> Reply {
    let req = Request::builder()
        .method(Method::PUT)
        .uri(format!("/v1/blobs/{hash}?offset={offset}&size={size}"))
        .header("authorization", format!("Bearer {}", dev.bearer()))
        .header("content-type", "application/octet-stream")
        .body(Body::from(body.to_vec()))
        .unwrap();
    h.call(req).await
}

async fn get_range(h: &Harness, dev: &Device, path: &str, range: Option<&str>) -> Reply {
    let mut b = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header("authorization", format!("Bearer {}", dev.bearer()));
    if let Some(r) = range {
        b = b.header("range", r);
    }
    h.call(b.body(Body::empty()).unwrap()).await
}

/// A device of group-01 with a synced visit that has one photo attached.
async fn visit_with_photo(h: &Harness, bytes: &[u8]) -> (Device, String, String) {
    let member = members_of("group-01")[0].clone();
    let mut dev = h.device(&member).await;
    let id = dev.new_visit("group-01");
    let hash = sha256(bytes);
    let mut photo = PhotoRef::new(&hash);
    photo.bytes = bytes.len() as u64;
    dev.store.attach_photo(&id, &photo, THUMB, bytes).unwrap();
    h.sync_all(&mut dev, 1 << 20).await;
    (dev, id, hash)
}

#[tokio::test]
async fn uploads_resume_and_become_visible_only_when_verified_issue_4() {
    let h = Harness::new();
    let blob = original(300_000, 1);
    let (dev, id, hash) = visit_with_photo(&h, &blob).await;
    let size = blob.len() as u64;
    let status = h
        .get(&format!("/v1/blobs/{hash}"), Some(&dev.bearer()))
        .await;
    assert_eq!(status.json()["state"], "absent");

    // The first part, then a wrong offset, then the rest.
    let r = put(&h, &dev, &hash, 0, size, &blob[..100_000]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["state"], "partial");
    assert_eq!(r.json()["received"], 100_000);
    let r = put(&h, &dev, &hash, 50_000, size, &blob[50_000..]).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.error(), "offset_mismatch");
    let status = h
        .get(&format!("/v1/blobs/{hash}"), Some(&dev.bearer()))
        .await;
    assert_eq!(status.json()["received"], 100_000);
    // Not downloadable while partial.
    let r = get_range(&h, &dev, &format!("/v1/records/{id}/blobs/{hash}"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = put(&h, &dev, &hash, 100_000, size, &blob[100_000..]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
    assert_eq!(r.json()["state"], "complete");

    // Uploading it again (a lost acknowledgement) stores nothing twice.
    let r = put(&h, &dev, &hash, 0, size, &blob).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["state"], "complete");
    let blobs_dir = h.dir.path().join("data").join("blobs");
    let stored = std::fs::read(blobs_dir.join(&hash[..2]).join(&hash)).unwrap();
    assert_eq!(sha256(&stored), hash);
    assert_eq!(
        std::fs::read_dir(blobs_dir.join("partial"))
            .unwrap()
            .count(),
        0,
        "no partial file left"
    );

    // Ranged and whole downloads.
    let path = format!("/v1/records/{id}/blobs/{hash}");
    let r = get_range(&h, &dev, &path, Some("bytes=123456-")).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.headers["content-range"],
        format!("bytes 123456-{}/{size}", size - 1)
    );
    assert_eq!(&r.body[..], &blob[123_456..]);
    let r = get_range(&h, &dev, &path, Some("bytes=10-19")).await;
    assert_eq!(&r.body[..], &blob[10..20]);
    let r = get_range(&h, &dev, &path, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], &blob[..]);
    let r = get_range(&h, &dev, &path, Some(&format!("bytes={size}-"))).await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
}

#[tokio::test]
async fn corrupt_or_truncated_uploads_are_never_kept_issue_4() {
    let h = Harness::new();
    let blob = original(50_000, 2);
    let (dev, _id, hash) = visit_with_photo(&h, &blob).await;
    let size = blob.len() as u64;
    let mut bad = blob.clone();
    bad[40_000] ^= 0xFF;
    let r = put(&h, &dev, &hash, 0, size, &bad).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.error(), "hash_mismatch");
    let status = h
        .get(&format!("/v1/blobs/{hash}"), Some(&dev.bearer()))
        .await;
    assert_eq!(
        status.json()["state"],
        "absent",
        "the damaged bytes are gone"
    );
    // A body longer than announced is refused; what came before stays a partial upload.
    let r = put(&h, &dev, &hash, 0, 10, &blob[..20]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let status = h
        .get(&format!("/v1/blobs/{hash}"), Some(&dev.bearer()))
        .await;
    assert_ne!(status.json()["state"], "complete");
    // Bad names and sizes.
    let r = put(&h, &dev, "not-a-hash", 0, 1, b"x").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = put(&h, &dev, &hash, 0, 1 << 40, b"x").await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = h
        .get(&format!("/v1/blobs/{hash}"), Some("device.nonsense"))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn downloads_only_for_records_in_scope_that_reference_the_blob_issue_4() {
    let h = Harness::new();
    let blob = original(10_000, 3);
    let (dev, id, hash) = visit_with_photo(&h, &blob).await;
    let r = put(&h, &dev, &hash, 0, blob.len() as u64, &blob).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let path = format!("/v1/records/{id}/blobs/{hash}");

    let leader = h.device(LEADER_1).await;
    assert_eq!(
        get_range(&h, &leader, &path, None).await.status,
        StatusCode::OK
    );
    let other = h.device(&members_of("group-02")[0]).await;
    let r = get_range(&h, &other, &path, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "another group's record");
    // A blob the record does not reference, through a record in scope.
    let other_hash = sha256(b"something else");
    let r = get_range(
        &h,
        &dev,
        &format!("/v1/records/{id}/blobs/{other_hash}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = h.get(&path, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[test]
fn partial_uploads_expire_and_complete_blobs_stay_issue_4() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::new(dir.path()).unwrap();
    let done = original(1000, 4);
    let h_done = sha256(&done);
    store.append(&h_done, 0, &done).unwrap();
    assert_eq!(store.publish(&h_done).unwrap(), 1000);
    let h_part = sha256(b"never finished");
    store.append(&h_part, 0, b"never").unwrap();
    assert_eq!(
        store.state(&h_part).unwrap(),
        BlobState::Partial { received: 5 }
    );
    assert_eq!(
        store.sweep(std::time::Duration::from_secs(3600)).unwrap(),
        0,
        "young partial uploads stay"
    );
    assert_eq!(store.sweep(std::time::Duration::ZERO).unwrap(), 1);
    assert_eq!(store.state(&h_part).unwrap(), BlobState::Absent);
    assert_eq!(
        store.state(&h_done).unwrap(),
        BlobState::Complete { size: 1000 }
    );
    let (bytes, size) = store.read(&h_done, 990, 100).unwrap().unwrap();
    assert_eq!((bytes.as_slice(), size), (&done[990..], 1000));
}
