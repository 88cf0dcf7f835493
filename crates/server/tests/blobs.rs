//! Photo originals on the server (issue 4): resumable content-addressed uploads that become
//! visible only when verified, ranged downloads within the device's scope, expiry of partial
//! uploads. Driven through the router on a real data folder.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::photos;
use common::*;
use sanjin_core::domain::PhotoRef;
use sanjin_server::{BlobHash, BlobReader, BlobState, BlobStore, FsBlobStore, Uploader};

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
    // Issue 10: blobs are named by a parsed hash, partial uploads also by their uploader.
    let by = Uploader::device("phone-1");
    let done = original(1000, 4);
    let h_done = BlobHash::parse(&sha256(&done)).unwrap();
    store.append(&h_done, &by, 0, &done).unwrap();
    assert_eq!(store.publish(&h_done, &by).unwrap(), 1000);
    let h_part = BlobHash::parse(&sha256(b"never finished")).unwrap();
    store.append(&h_part, &by, 0, b"never").unwrap();
    assert_eq!(
        store.state(&h_part, &by).unwrap(),
        BlobState::Partial { received: 5 }
    );
    assert_eq!(
        store.sweep(std::time::Duration::from_secs(3600)).unwrap(),
        0,
        "young partial uploads stay"
    );
    assert_eq!(store.sweep(std::time::Duration::ZERO).unwrap(), 1);
    assert_eq!(store.state(&h_part, &by).unwrap(), BlobState::Absent);
    assert_eq!(
        store.state(&h_done, &by).unwrap(),
        BlobState::Complete { size: 1000 }
    );
    let (bytes, size) = store.read(&h_done, 990, 100).unwrap().unwrap();
    assert_eq!((bytes.as_slice(), size), (&done[990..], 1000));
}

// ------------------------------------------------------------------ issue 10, on loopback

/// A visit of `group` on `dev` with `photo` attached (reference and thumbnail); synced. The
/// device's blob outbox gets `original` (the bytes it would upload).
async fn synced_visit_with(
    h: &Harness,
    dev: &mut Device,
    group: &str,
    photo: &sanjin_core::domain::PhotoRef,
    thumbnail: &[u8],
    original: &[u8],
) -> String {
    let id = dev.new_visit(group);
    dev.store
        .attach_photo(&id, photo, thumbnail, original)
        .unwrap();
    h.sync_all(dev, 1 << 20).await;
    id
}

#[tokio::test]
async fn issue10_cross_group_blob_read_is_refused_for_a_device_and_a_leader() {
    let h = Harness::live().await;
    let p = photos::photo(101);
    // A member of group-01 photographs a visit and uploads the original.
    let mut a = h.device(&members_of("group-01")[0]).await;
    let a_visit = synced_visit_with(
        &h,
        &mut a,
        "group-01",
        &p.reference("村口座谈"),
        &p.thumbnail,
        &p.original,
    )
    .await;
    photos::upload(&h, &a, &p.original).await;
    let r = get_range(
        &h,
        &a,
        &format!("/v1/records/{a_visit}/blobs/{}", p.hash),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], &p.original[..]);

    // A member of group-02 learns the hash (it is in exports, logs, any record referencing it)
    // and copies it into a record of their own, with a thumbnail of their own.
    let mut b = h.device(&members_of("group-02")[0]).await;
    let b_visit = synced_visit_with(
        &h,
        &mut b,
        "group-02",
        &p.reference("复制的照片"),
        &photos::photo(7).thumbnail,
        b"",
    )
    .await;
    let via_own = format!("/v1/records/{b_visit}/blobs/{}", p.hash);
    let r = get_range(&h, &b, &via_own, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "the hash opens nothing");
    assert_eq!(r.error(), "not_found");
    assert!(r.body.len() < 1000, "no bytes of the original");
    // The same answer as for a photo nobody has uploaded: nothing tells the blob exists.
    let unknown = photos::photo(102);
    let mut doc = b.store.load(&b_visit).unwrap();
    doc.attach_photo(
        &b.store.author(),
        now(),
        &unknown.reference(""),
        &unknown.thumbnail,
    )
    .unwrap();
    b.insert(&mut doc);
    h.sync_all(&mut b, 1 << 20).await;
    let r2 = get_range(
        &h,
        &b,
        &format!("/v1/records/{b_visit}/blobs/{}", unknown.hash),
        None,
    )
    .await;
    assert_eq!((r2.status, r2.error()), (r.status, r.error()));
    // Ranged, too.
    let r = get_range(&h, &b, &via_own, Some("bytes=0-")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Through group-01's record: not in the device's scope.
    let r = get_range(
        &h,
        &b,
        &format!("/v1/records/{a_visit}/blobs/{}", p.hash),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The status route: absent, as if the server had never seen it.
    let r = h
        .get(&format!("/v1/blobs/{}", p.hash), Some(&b.bearer()))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        (r.json()["state"].as_str(), r.json()["received"].as_u64()),
        (Some("absent"), Some(0))
    );
    assert!(r.json().get("size").is_none());
    // Bytes that are not the photo prove nothing.
    let fake = vec![0u8; p.original.len()];
    let r = photos::put_blob(&h, &b, &p.hash, 0, fake.len() as u64, &fake).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "hash_mismatch".to_string())
    );
    assert_eq!(
        get_range(&h, &b, &via_own, None).await.status,
        StatusCode::NOT_FOUND
    );

    // The leader of group-02 in the console: the record page offers no original, the photo
    // route answers as for one not uploaded.
    let leader2 = leader_of("group-02");
    let cookie = photos::console_session(&h, &leader2).await;
    let page = photos::console_get(&h, &format!("/console/records/{b_visit}"), &cookie).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = String::from_utf8_lossy(&page.body);
    assert!(
        !html.contains("class=\"original\""),
        "no link to an original"
    );
    assert!(html.contains("原图尚未上传"));
    let r = photos::console_get(
        &h,
        &format!("/console/records/{b_visit}/photos/{}", p.hash),
        &cookie,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&r.body).contains("原图尚未上传"));
    assert!(!r.body.windows(16).any(|w| w == &p.original[..16]));
    // And group-01's record stays closed to them.
    let r = photos::console_get(
        &h,
        &format!("/console/records/{a_visit}/photos/{}", p.hash),
        &cookie,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Group-01's leader sees it: a device of the group uploaded it.
    let cookie1 = photos::console_session(&h, &leader_of("group-01")).await;
    let r = photos::console_get(
        &h,
        &format!("/console/records/{a_visit}/photos/{}", p.hash),
        &cookie1,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "image/jpeg");
    assert_eq!(&r.body[..], &p.original[..]);
}

#[tokio::test]
async fn issue10_a_second_group_proves_possession_by_uploading_and_one_copy_serves_both() {
    let h = Harness::live().await;
    let p = photos::photo(103);
    let size = p.original.len() as u64;
    let mut a = h.device(&members_of("group-01")[0]).await;
    let a_visit = synced_visit_with(
        &h,
        &mut a,
        "group-01",
        &p.reference(""),
        &p.thumbnail,
        &p.original,
    )
    .await;
    photos::upload(&h, &a, &p.original).await;
    // A member of group-02 really has the same photo (it was shared with them) and attaches it.
    let mut b = h.device(&members_of("group-02")[0]).await;
    let b_visit = synced_visit_with(
        &h,
        &mut b,
        "group-02",
        &p.reference(""),
        &p.thumbnail,
        &p.original,
    )
    .await;
    // Their upload is resumable like any other: its own progress, cut after the first part.
    let half = size / 2;
    let r = photos::put_blob(&h, &b, &p.hash, 0, size, &p.original[..half as usize]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        (r.json()["state"].as_str(), r.json()["received"].as_u64()),
        (Some("partial"), Some(half))
    );
    let st = h
        .get(&format!("/v1/blobs/{}", p.hash), Some(&b.bearer()))
        .await;
    assert_eq!(
        (st.json()["state"].as_str(), st.json()["received"].as_u64()),
        (Some("partial"), Some(half))
    );
    // Group-01's device still sees its blob complete; nothing of b's upload shows there.
    let st = h
        .get(&format!("/v1/blobs/{}", p.hash), Some(&a.bearer()))
        .await;
    assert_eq!(
        (st.json()["state"].as_str(), st.json()["size"].as_u64()),
        (Some("complete"), Some(size))
    );
    // Half the bytes open nothing.
    let path_b = format!("/v1/records/{b_visit}/blobs/{}", p.hash);
    assert_eq!(
        get_range(&h, &b, &path_b, None).await.status,
        StatusCode::NOT_FOUND
    );
    // A wrong offset is told the caller's own progress.
    let r = photos::put_blob(&h, &b, &p.hash, 0, size, &p.original).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "offset_mismatch".to_string())
    );
    let r = photos::put_blob(&h, &b, &p.hash, half, size, &p.original[half as usize..]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
    assert_eq!(r.json()["state"], "complete");
    // Now both groups read it, from one copy on disk.
    let r = get_range(&h, &b, &path_b, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], &p.original[..]);
    let r = get_range(
        &h,
        &a,
        &format!("/v1/records/{a_visit}/blobs/{}", p.hash),
        None,
    )
    .await;
    assert_eq!(&r.body[..], &p.original[..]);
    let blobs_dir = h.dir.path().join("data").join("blobs");
    let copies: Vec<_> = walk(&blobs_dir)
        .into_iter()
        .filter(|f| std::fs::read(f).unwrap() == p.original)
        .collect();
    assert_eq!(
        copies,
        vec![blobs_dir.join(&p.hash[..2]).join(&p.hash)],
        "one copy"
    );
    assert_eq!(
        std::fs::read_dir(blobs_dir.join("partial"))
            .unwrap()
            .count(),
        0
    );
    let hash = BlobHash::parse(&p.hash).unwrap();
    let uploaders = h.data(move |d| d.blob_uploaders(&hash).unwrap()).await;
    assert_eq!(
        uploaders,
        vec![
            (a.creds.device_id.clone(), "group-01".to_string()),
            (b.creds.device_id.clone(), "group-02".to_string())
        ]
    );
    // A device of group-02 that did not upload it now finds it complete (its group proved it),
    // and re-sending it stores nothing.
    let b2 = h.device(&leader_of("group-02")).await;
    let st = h
        .get(&format!("/v1/blobs/{}", p.hash), Some(&b2.bearer()))
        .await;
    assert_eq!(st.json()["state"], "complete");
    let r = photos::put_blob(&h, &b2, &p.hash, 0, size, &p.original).await;
    assert_eq!(
        (r.status, r.json()["state"].as_str()),
        (StatusCode::OK, Some("complete"))
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn issue10_originals_already_on_a_server_stay_readable_by_their_group_after_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let p = photos::photo(401);
    let stray = photos::photo(402);
    let member = members_of("group-01")[0].clone();
    let element = |ph: &photos::Photo| {
        (
            ph.hash.clone(),
            serde_json::to_value(ph.reference("")).unwrap(),
            Some(ph.thumbnail.clone()),
        )
    };
    {
        // A server from before issue 10: originals in blobs/, nobody recorded as uploading them.
        let mut data = open_data(dir.path(), sanjin_server::Limits::default());
        let doc = photos::visit_with_raw_photos("group-01", &member, &[element(&p)]);
        data.import_docs(&mut [doc]).unwrap();
        for ph in [&p, &stray] {
            let shard = data_dir.join("blobs").join(&ph.hash[..2]);
            std::fs::create_dir_all(&shard).unwrap();
            std::fs::write(shard.join(&ph.hash), &ph.original).unwrap();
        }
        rusqlite::Connection::open(data.dir().join(sanjin_server::DB_FILE))
            .unwrap()
            // As a server that never created it: server tables of schema 2 (issue 11 made the
            // table a versioned migration).
            .execute_batch(
                "DROP TABLE blob_uploads;
                 UPDATE server_meta SET value = '2' WHERE key = 'schema_version';",
            )
            .unwrap();
    }
    let data = sanjin_server::ServerData::open(&data_dir).unwrap();
    let (h, s) = (
        BlobHash::parse(&p.hash).unwrap(),
        BlobHash::parse(&stray.hash).unwrap(),
    );
    let proven = |d: &sanjin_server::ServerData, h: &BlobHash, r: BlobReader<'_>| {
        d.blob_proven_for(h, r).unwrap()
    };
    assert!(
        proven(&data, &h, BlobReader::Group("group-01")),
        "the group keeps its original"
    );
    assert!(proven(&data, &h, BlobReader::Office));
    assert!(!proven(&data, &h, BlobReader::Group("group-02")));
    assert!(
        proven(&data, &s, BlobReader::Office),
        "staff keep every original"
    );
    assert!(
        !proven(&data, &s, BlobReader::Group("group-01")),
        "no record: no group"
    );
    drop(data);
    // Vouched once: a hash copied into another group's record after the upgrade opens nothing.
    let mut data = sanjin_server::ServerData::open(&data_dir).unwrap();
    let copy =
        photos::visit_with_raw_photos("group-02", &members_of("group-02")[0], &[element(&p)]);
    data.import_docs(&mut [copy]).unwrap();
    drop(data);
    let data = sanjin_server::ServerData::open(&data_dir).unwrap();
    assert!(!proven(&data, &h, BlobReader::Group("group-02")));
}
