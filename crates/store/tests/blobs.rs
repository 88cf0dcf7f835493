//! The blob outbox (issue 4): attaching a photo writes the record's change and the original in
//! one transaction; the same photo twice is stored once; a store of schema 1 migrates.

use rusqlite::Connection;
use sanjin_core::domain::{PhotoRef, RecordData};
use sanjin_core::{RecordDoc, testdata};
use sanjin_store::{Durability, Identity, SCHEMA_VERSION, Store};

const T0: i64 = 1_747_616_400_000;
const THUMB: &[u8] = sanjin_core::testdata::THUMBNAIL;

fn identity() -> Identity {
    Identity {
        member: "member-0001".into(),
        device: "device-1".into(),
        actor: vec![1; 16],
    }
}

fn add_visit(s: &mut Store, id: &str) {
    let mut doc =
        RecordDoc::create(id, &RecordData::Visit(testdata::visit()), &s.author(), T0).unwrap();
    s.insert(&mut doc, true).unwrap();
}

fn photo(hash: &str, bytes: u64) -> PhotoRef {
    let mut p = PhotoRef::new(hash);
    p.bytes = bytes;
    p.mime = "image/jpeg".into();
    p
}

#[test]
fn attach_queues_the_original_once_and_drains_on_upload_issue_4() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let mut s = Store::init(&path, &identity(), Durability::Full).unwrap();
    add_visit(&mut s, "v-1");
    add_visit(&mut s, "v-2");
    let (h1, h2) = ("ab".repeat(32), "cd".repeat(32));
    s.attach_photo("v-1", &photo(&h1, 3), THUMB, b"one")
        .unwrap();
    s.attach_photo("v-1", &photo(&h1, 3), THUMB, b"one")
        .unwrap();
    s.attach_photo("v-2", &photo(&h1, 3), THUMB, b"one")
        .unwrap();
    s.attach_photo("v-2", &photo(&h2, 3), THUMB, b"two")
        .unwrap();
    let pending = s.pending_blobs().unwrap();
    assert_eq!(pending.len(), 2, "one row per content address");
    assert_eq!(s.pending_blob_bytes(&h2).unwrap().unwrap(), b"two");
    let mut doc = s.load("v-1").unwrap();
    assert_eq!(doc.photos().unwrap().len(), 1);
    assert_eq!(doc.thumbnail(&h1).unwrap(), THUMB);
    assert_eq!(s.load("v-2").unwrap().photos().unwrap().len(), 2);
    assert!(s.outbox().unwrap().iter().any(|e| e.id == "v-1"));
    assert!(doc.history().iter().any(|h| h.action == "attach"));
    // Survives reopening; drains only for what was uploaded.
    drop(s);
    let mut s = Store::open(&path, Durability::Full).unwrap();
    assert!(s.blob_uploaded(&h1).unwrap());
    assert!(!s.blob_uploaded(&h1).unwrap());
    assert_eq!(s.pending_blobs().unwrap().len(), 1);
    assert_eq!(s.pending_blobs().unwrap()[0].hash, h2);
}

#[test]
fn attaching_to_a_missing_record_or_with_a_bad_thumbnail_saves_nothing_issue_4() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::init(&dir.path().join("s.sqlite"), &identity(), Durability::Full).unwrap();
    add_visit(&mut s, "v-1");
    let h = "ef".repeat(32);
    assert!(s.attach_photo("nope", &photo(&h, 1), THUMB, b"x").is_err());
    assert!(s.attach_photo("v-1", &photo(&h, 1), b"GIF8", b"x").is_err());
    assert!(s.pending_blobs().unwrap().is_empty());
    assert!(s.load("v-1").unwrap().photos().unwrap().is_empty());
}

/// A store made by a sanjin of store schema 1 (no blob outbox) opens, migrates and attaches.
#[test]
fn a_schema_1_store_migrates_to_the_blob_outbox_issue_4() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("../src/schema/v1.sql"))
            .unwrap();
        conn.execute_batch(
            "INSERT INTO meta VALUES ('member','member-0001'),('device','device-1'),
             ('actor','01010101010101010101010101010101');
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let mut s = Store::open(&path, Durability::Full).unwrap();
    add_visit(&mut s, "v-1");
    drop(s);
    // Opening it again does not run the step twice.
    let mut s = Store::open(&path, Durability::Full).unwrap();
    let version: i64 = Connection::open(s.path())
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let h = "12".repeat(32);
    s.attach_photo("v-1", &photo(&h, 5), THUMB, b"bytes")
        .unwrap();
    assert_eq!(s.pending_blobs().unwrap()[0].size, 5);
}
