//! The automerge-sync fallback's state on the device (issue 11): a table of the store's
//! migrations with a typed API, no longer created by the client.

use rusqlite::Connection;
use sanjin_store::{Durability, Error, Identity, SCHEMA_VERSION, Store};

fn identity() -> Identity {
    Identity {
        member: "member-0001".into(),
        device: "device-1".into(),
        actor: vec![1; 16],
    }
}

#[test]
fn issue11_sync_states_are_kept_replaced_and_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::init(&dir.path().join("s.sqlite"), &identity(), Durability::Full).unwrap();
    assert!(s.sync_states().unwrap().is_empty());
    s.put_sync_states(&[("v-2".into(), vec![2]), ("v-1".into(), vec![1])])
        .unwrap();
    s.put_sync_states(&[("v-2".into(), vec![3])]).unwrap();
    assert_eq!(
        s.sync_states().unwrap(),
        [("v-1".to_string(), vec![1]), ("v-2".to_string(), vec![3])]
    );
    s.forget_sync_states().unwrap();
    assert!(s.sync_states().unwrap().is_empty());
}

#[test]
fn issue11_sync_states_join_a_batch_and_roll_back_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::init(&dir.path().join("s.sqlite"), &identity(), Durability::Full).unwrap();
    let r: Result<(), Error> = s.batch(|s| {
        s.put_sync_states(&[("v-1".into(), vec![1])])?;
        assert_eq!(s.sync_states()?.len(), 1);
        Err(Error::NotFound("on purpose".into()))
    });
    assert!(r.is_err());
    assert!(s.sync_states().unwrap().is_empty());
    s.batch(|s| s.put_sync_states(&[("v-1".into(), vec![1])]))
        .unwrap();
    assert_eq!(s.sync_states().unwrap().len(), 1);
}

#[test]
fn issue11_a_store_whose_client_created_the_table_migrates_and_keeps_its_states() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    drop(Store::init(&path, &identity(), Durability::Full).unwrap());
    // As a store of schema 3 whose client created the table itself, with a state in it.
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TABLE client_sync_state;
         CREATE TABLE IF NOT EXISTS client_sync_state (
             doc_id TEXT PRIMARY KEY,
             state BLOB NOT NULL
         ) WITHOUT ROWID;
         INSERT INTO client_sync_state (doc_id, state) VALUES ('v-1', x'0102');
         PRAGMA user_version = 3;",
    )
    .unwrap();
    drop(conn);
    let s = Store::open(&path, Durability::Full).unwrap();
    assert_eq!(s.sync_states().unwrap(), [("v-1".to_string(), vec![1, 2])]);
    let version: i64 = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    // A store of schema 3 without the table gets it.
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("DROP TABLE client_sync_state; PRAGMA user_version = 3;")
        .unwrap();
    drop(conn);
    drop(s);
    let s = Store::open(&path, Durability::Full).unwrap();
    assert!(s.sync_states().unwrap().is_empty());
}
