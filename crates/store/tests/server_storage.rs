//! The server's storage (issue 11): one suite of behaviour, run against the SQLite storage and
//! the in-memory one alike — which shows that `ServerStorage` holds no SQLite assumption.
//! Plus, for SQLite only, that a data folder of the schema before issue 11 opens and keeps
//! everything.

use sanjin_core::domain::{Member, RecordData};
use sanjin_core::protocol::{LOG_LINK_BASIS, log_link};
use sanjin_core::sign::{ChangeSig, DeviceKey, SigKind};
use sanjin_core::{ChangeHash, IndexEntry, RecordDoc, testdata};
use sanjin_store::server::{
    LogFilter, MemoryServerStorage, NewDevice, NewLogEntry, SERVER_SCHEMA_VERSION, ServerStorage,
    SqliteServerStorage, StoredAccount, StoredBoxKey, StoredPassword, StoredSession, atomically,
};
use sanjin_store::{Error, Filter, Identity, IndexColumn};

const T0: i64 = 1_747_616_400_000;

fn identity() -> Identity {
    Identity {
        member: "server".into(),
        device: "server".into(),
        actor: vec![9; 16],
    }
}

/// A storage to test, and the folder that holds its file (if any).
struct Fixture {
    s: Box<dyn ServerStorage>,
    _dir: Option<tempfile::TempDir>,
}

fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteServerStorage::open(&dir.path().join("sanjin.sqlite"), &identity()).unwrap();
    Fixture {
        s: Box::new(s),
        _dir: Some(dir),
    }
}

fn memory() -> Fixture {
    Fixture {
        s: Box::new(MemoryServerStorage::new(identity())),
        _dir: None,
    }
}

fn visit(id: &str, group: &str, day: u32, people: &[&str]) -> RecordDoc {
    let mut v = testdata::visit();
    v.group = group.into();
    v.start = chrono::NaiveDate::from_ymd_opt(2026, 5, day)
        .unwrap()
        .and_hms_opt(9, 0, 0)
        .unwrap();
    v.end = v.start + chrono::Duration::hours(2);
    v.participants = people.iter().map(|p| p.to_string()).collect();
    RecordDoc::create(
        id,
        &RecordData::Visit(v),
        &testdata::author(people[0], 1),
        T0,
    )
    .unwrap()
}

fn member(id: &str, group: &str) -> RecordDoc {
    let m = Member {
        name: format!("委员{id}"),
        chapter: "chapter-city".into(),
        committee: None,
        group: group.into(),
        sector: "农业和农村界".into(),
    };
    RecordDoc::create(
        id,
        &RecordData::Member(m),
        &testdata::author("admin", 2),
        T0,
    )
    .unwrap()
}

fn entry(doc: &mut RecordDoc) -> IndexEntry {
    IndexEntry::of(&doc.view().unwrap())
}

/// Writes a new document with its log entry.
fn land(s: &mut dyn ServerStorage, doc: &mut RecordDoc, origin: Option<&str>) {
    let e = entry(doc);
    let bytes = doc.save_after(&[]);
    let heads = doc.heads();
    let scope = e.group.clone();
    s.write_doc(
        doc,
        None,
        &e,
        Some(NewLogEntry {
            scope: scope.as_deref(),
            also: None,
            origin,
            bytes: &bytes,
            heads: &heads,
            at: T0,
        }),
        None,
    )
    .unwrap();
}

fn log_docs(s: &dyn ServerStorage, f: &LogFilter<'_>) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    s.log_since(f, &mut |row| {
        out.push((row.seq, row.doc_id.to_string()));
        true
    })
    .unwrap();
    out
}

fn account(member: &str, role: &str, group: Option<&str>) -> StoredAccount {
    StoredAccount {
        member: member.into(),
        role: role.into(),
        group: group.map(str::to_string),
        name: format!("name of {member}"),
        chapter: None,
    }
}

fn a_failure() -> Error {
    Error::NotFound("on purpose".into())
}

// ------------------------------------------------------------------ the suite

fn issue11_a_document_its_index_row_and_its_log_entry_land_together(s: &mut dyn ServerStorage) {
    let mut a = visit("v-a", "group-01", 1, &["member-0001"]);
    land(s, &mut a, Some("dev-1"));
    assert!(s.exists("v-a").unwrap());
    assert_eq!(s.load("v-a").unwrap().heads(), a.heads());
    assert_eq!(s.doc_heads("v-a").unwrap(), Some(a.heads()));
    assert_eq!(
        s.index_entry("v-a").unwrap().unwrap().group.as_deref(),
        Some("group-01")
    );
    assert_eq!(s.max_seq().unwrap(), 1);
    let key = s.log_entry(1).unwrap().expect("the entry");
    assert_eq!((key.doc_id.as_str(), &key.heads), ("v-a", &a.heads()));
    // A unit that writes a document and its log entry and then fails leaves neither.
    let mut b = visit("v-b", "group-01", 2, &["member-0001"]);
    let r: Result<(), Error> = s.transaction(|s| {
        land(s, &mut b, Some("dev-1"));
        assert!(s.exists("v-b")?);
        Err(a_failure())
    });
    assert!(r.is_err());
    assert!(!s.exists("v-b").unwrap());
    assert_eq!(s.index_entry("v-b").unwrap(), None);
    assert_eq!(s.max_seq().unwrap(), 1);
    // A change to a stored document: new heads, index and log entry.
    let before = a.heads();
    a.delete(&testdata::author("member-0001", 1), T0 + 1, None)
        .unwrap();
    let e = entry(&mut a);
    let delta = a.save_after(&before);
    let heads = a.heads();
    s.write_doc(
        &mut a,
        Some(&before),
        &e,
        Some(NewLogEntry {
            scope: Some("group-01"),
            also: None,
            origin: None,
            bytes: &delta,
            heads: &heads,
            at: T0,
        }),
        None,
    )
    .unwrap();
    assert!(s.index_entry("v-a").unwrap().unwrap().deleted);
    assert_eq!(s.load("v-a").unwrap().heads(), heads);
    assert!(s.log_has("v-a", &heads).unwrap());
    assert!(!s.log_has("v-a", &[ChangeHash([7; 32])]).unwrap());
    assert_eq!(s.max_seq().unwrap(), 2);
    // Unchanged heads write nothing, not even a log entry.
    let e = entry(&mut a);
    s.write_doc(
        &mut a,
        Some(&heads),
        &e,
        Some(NewLogEntry {
            scope: Some("group-01"),
            also: None,
            origin: None,
            bytes: b"",
            heads: &heads,
            at: T0,
        }),
        None,
    )
    .unwrap();
    assert_eq!(s.max_seq().unwrap(), 2);
    assert!(matches!(s.load("nope"), Err(Error::NotFound(_))));
}

fn issue11_a_group_commit_rolls_back_a_failed_exchange_alone(s: &mut dyn ServerStorage) {
    let mut docs: Vec<RecordDoc> = (0..3)
        .map(|i| visit(&format!("v-{i}"), "group-01", 3, &["member-0001"]))
        .collect();
    let answers: Vec<Result<(), Error>> = s
        .transaction(|s| -> Result<_, Error> {
            let mut answers = Vec::new();
            for (i, doc) in docs.iter_mut().enumerate() {
                answers.push(s.transaction(|s| {
                    land(s, doc, Some("dev-1"));
                    s.put_sync_states("dev-1", &[(doc.id().to_string(), vec![i as u8])], T0)?;
                    if i == 1 { Err(a_failure()) } else { Ok(()) }
                }));
            }
            Ok(answers)
        })
        .unwrap();
    assert!(answers[0].is_ok() && answers[1].is_err() && answers[2].is_ok());
    assert!(s.exists("v-0").unwrap());
    assert!(!s.exists("v-1").unwrap());
    assert!(s.exists("v-2").unwrap());
    assert_eq!(s.sync_state("dev-1", "v-1").unwrap(), None);
    assert_eq!(s.sync_state("dev-1", "v-2").unwrap(), Some(vec![2]));
    let f = LogFilter {
        after: 0,
        everything: true,
        group: "",
        except_origin: None,
        ..Default::default()
    };
    let logged: Vec<String> = log_docs(s, &f).into_iter().map(|(_, d)| d).collect();
    assert_eq!(logged, ["v-0", "v-2"]);
    // A failed outer unit undoes the units that succeeded inside it.
    let mut d = visit("v-9", "group-01", 4, &["member-0001"]);
    let r: Result<(), Error> = s.transaction(|s| {
        s.transaction(|s| -> Result<(), Error> {
            land(s, &mut d, None);
            Ok(())
        })?;
        Err(a_failure())
    });
    assert!(r.is_err());
    assert!(!s.exists("v-9").unwrap());
}

fn issue11_the_log_since_a_cursor_by_scope_and_origin(s: &mut dyn ServerStorage) {
    let mut m = member("member-0001", "group-01");
    land(s, &mut m, None); // the directory: scope none
    let mut a = visit("v-a", "group-01", 1, &["member-0001"]);
    land(s, &mut a, Some("dev-1"));
    let mut b = visit("v-b", "group-02", 1, &["member-0003"]);
    land(s, &mut b, Some("dev-2"));
    let mut c = visit("v-c", "group-01", 2, &["member-0002"]);
    land(s, &mut c, Some("dev-3"));
    let group01 = |after, except| LogFilter {
        after,
        everything: false,
        group: "group-01",
        except_origin: except,
        ..Default::default()
    };
    let ids = |v: Vec<(u64, String)>| v.into_iter().map(|(_, d)| d).collect::<Vec<_>>();
    assert_eq!(
        ids(log_docs(s, &group01(0, None))),
        ["member-0001", "v-a", "v-c"]
    );
    assert_eq!(
        ids(log_docs(s, &group01(0, Some("dev-1")))),
        ["member-0001", "v-c"]
    );
    assert_eq!(ids(log_docs(s, &group01(2, None))), ["v-c"]);
    let all = log_docs(
        s,
        &LogFilter {
            after: 0,
            everything: true,
            group: "",
            except_origin: Some("dev-2"),
            ..Default::default()
        },
    );
    assert_eq!(ids(all.clone()), ["member-0001", "v-a", "v-c"]);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "in log order");
    // The reader stops when it says so.
    let mut seen = 0;
    s.log_since(&group01(0, None), &mut |_| {
        seen += 1;
        seen < 2
    })
    .unwrap();
    assert_eq!(seen, 2);
    // The bytes and heads as logged.
    let mut got = None;
    s.log_since(&group01(3, None), &mut |row| {
        got = Some((row.bytes.to_vec(), row.heads.to_vec()));
        false
    })
    .unwrap();
    assert_eq!(got, Some((c.save_after(&[]), c.heads())));
    assert_eq!(s.max_seq().unwrap(), 4);
    assert_eq!(s.log_docs_since(1).unwrap(), ["v-a", "v-b", "v-c"]);
    assert_eq!(s.log_entry(9).unwrap(), None);
}

/// Each log entry's link stands for the whole log up to it: the same document at the same heads
/// logged after different entries has a different link, so a cursor from a log that a restore
/// replaced is not taken for one of the new log (issue 11, found by the simulated network).
fn issue11_log_links_chain_over_the_whole_log(s: &mut dyn ServerStorage) {
    let mut a = visit("v-a", "group-01", 1, &["member-0001"]);
    let mut b = visit("v-b", "group-01", 2, &["member-0001"]);
    land(s, &mut a, None);
    land(s, &mut b, None);
    let first = s.log_entry(1).unwrap().unwrap();
    let second = s.log_entry(2).unwrap().unwrap();
    assert_eq!(
        first.link,
        Some(log_link(LOG_LINK_BASIS, "v-a", &a.heads()))
    );
    assert_eq!(
        second.link,
        Some(log_link(first.link.unwrap(), "v-b", &b.heads()))
    );
    // Logging v-a again at the same heads after v-b (as a fallback re-lands a record whole):
    // same document and heads as entry 1, but another link.
    let (a_bytes, a_heads) = (a.save_after(&[]), a.heads());
    let again = NewLogEntry {
        scope: Some("group-01"),
        also: None,
        origin: None,
        bytes: &a_bytes,
        heads: &a_heads,
        at: T0,
    };
    s.append_log("v-a", again).unwrap();
    let third = s.log_entry(3).unwrap().unwrap();
    assert_eq!((third.doc_id.as_str(), &third.heads), ("v-a", &a.heads()));
    assert_ne!(third.link, first.link);
    // A unit rolled back leaves the chain as it was: the next entry links on from entry 3.
    let r: Result<(), Error> = s.transaction(|s| {
        s.append_log("v-b", again)?;
        Err(a_failure())
    });
    assert!(r.is_err());
    assert_eq!(s.max_seq().unwrap(), 3);
    s.append_log("v-a", again).unwrap();
    assert_eq!(
        s.log_entry(4).unwrap().unwrap().link,
        Some(log_link(third.link.unwrap(), "v-a", &a_heads))
    );
}

fn issue11_idempotency_is_kept_for_its_ttl_and_a_few_per_device(s: &mut dyn ServerStorage) {
    s.put_account(&account("member-0001", "member", Some("group-01")), T0)
        .unwrap();
    s.insert_device(&NewDevice {
        device_id: "dev-1",
        member: "member-0001",
        secret_hash: &[1; 32],
        actor: "01",
        name: "phone",
        enrolled_at: T0,
    })
    .unwrap();
    let ttl = 1000;
    for i in 0..3u8 {
        s.remember_response("dev-1", &[i; 16], &[i], T0 + i as i64, ttl, 2)
            .unwrap();
    }
    // Only the latest two of the device are kept.
    assert_eq!(s.stored_response("dev-1", &[0; 16], 0).unwrap(), None);
    assert_eq!(
        s.stored_response("dev-1", &[1; 16], 0).unwrap(),
        Some(vec![1])
    );
    assert_eq!(
        s.stored_response("dev-1", &[2; 16], 0).unwrap(),
        Some(vec![2])
    );
    // Older than asked for: not answered.
    assert_eq!(s.stored_response("dev-1", &[2; 16], T0 + 3).unwrap(), None);
    // Another device's answers are its own.
    s.remember_response("dev-2", &[1; 16], &[9], T0 + 5, ttl, 2)
        .unwrap();
    assert_eq!(
        s.stored_response("dev-1", &[1; 16], 0).unwrap(),
        Some(vec![1])
    );
    assert_eq!(
        s.stored_response("dev-2", &[1; 16], 0).unwrap(),
        Some(vec![9])
    );
    // Past the TTL they are forgotten at the next remember.
    s.remember_response("dev-2", &[2; 16], &[8], T0 + 5000, ttl, 2)
        .unwrap();
    assert_eq!(s.stored_response("dev-1", &[2; 16], 0).unwrap(), None);
    assert_eq!(s.stored_response("dev-2", &[1; 16], 0).unwrap(), None);
    assert_eq!(
        s.stored_response("dev-2", &[2; 16], 0).unwrap(),
        Some(vec![8])
    );
    // Remembering notes the device's sync.
    assert_eq!(s.devices().unwrap()[0].last_sync_at, Some(T0 + 2));
}

fn issue11_sync_states_per_device_and_document(s: &mut dyn ServerStorage) {
    assert_eq!(s.sync_state("dev-1", "v-1").unwrap(), None);
    s.put_sync_states(
        "dev-1",
        &[("v-1".into(), vec![1]), ("v-2".into(), vec![2])],
        T0,
    )
    .unwrap();
    s.put_sync_states("dev-1", &[("v-1".into(), vec![3])], T0 + 1)
        .unwrap();
    s.put_sync_states("dev-2", &[("v-1".into(), vec![4])], T0)
        .unwrap();
    assert_eq!(s.sync_state("dev-1", "v-1").unwrap(), Some(vec![3]));
    assert_eq!(s.sync_state("dev-1", "v-2").unwrap(), Some(vec![2]));
    assert_eq!(s.sync_state("dev-2", "v-1").unwrap(), Some(vec![4]));
}

fn issue11_accounts_devices_codes_and_keys(s: &mut dyn ServerStorage) {
    s.put_account(&account("member-0002", "member", Some("group-01")), T0)
        .unwrap();
    s.put_account(&account("member-0001", "member", Some("group-01")), T0)
        .unwrap();
    s.put_account(&account("member-0001", "leader", Some("group-01")), T0 + 1)
        .unwrap();
    assert_eq!(s.account("member-0001").unwrap().unwrap().role, "leader");
    assert_eq!(s.account("nobody").unwrap(), None);
    let members: Vec<String> = s
        .accounts()
        .unwrap()
        .into_iter()
        .map(|a| a.member)
        .collect();
    assert_eq!(members, ["member-0001", "member-0002"]);
    let dev = |id: &'static str, member: &'static str, actor: &'static str, at| NewDevice {
        device_id: id,
        member,
        secret_hash: &[7; 32],
        actor,
        name: "phone",
        enrolled_at: at,
    };
    s.insert_device(&dev("dev-b", "member-0001", "bb", T0 + 5))
        .unwrap();
    s.insert_device(&dev("dev-a", "member-0002", "aa", T0))
        .unwrap();
    s.insert_device(&dev("dev-c", "member-0001", "cc", T0 + 1))
        .unwrap();
    let order: Vec<String> = s
        .devices()
        .unwrap()
        .into_iter()
        .map(|d| d.device_id)
        .collect();
    assert_eq!(
        order,
        ["dev-c", "dev-b", "dev-a"],
        "by member, then enrollment"
    );
    assert!(s.device_exists("dev-a").unwrap() && !s.device_exists("dev-z").unwrap());
    assert!(s.actor_in_use("aa").unwrap() && !s.actor_in_use("zz").unwrap());
    let auth = s.device_auth("dev-b").unwrap().unwrap();
    assert_eq!((auth.secret_hash, auth.revoked), (vec![7; 32], false));
    assert_eq!(auth.account.role, "leader");
    assert_eq!(s.device_auth("dev-z").unwrap(), None);
    let by_actor = s.device_by_actor("cc").unwrap().unwrap();
    assert_eq!(by_actor.device_id, "dev-c");
    assert_eq!(by_actor.account.member, "member-0001");
    assert_eq!(
        s.device_actor("dev-a").unwrap(),
        Some(("aa".into(), "member-0002".into()))
    );
    // Revoking keeps the first time.
    assert!(s.revoke_device("dev-a", T0 + 10).unwrap());
    assert!(s.revoke_device("dev-a", T0 + 20).unwrap());
    assert!(!s.revoke_device("dev-z", T0).unwrap());
    let a = s
        .devices()
        .unwrap()
        .into_iter()
        .find(|d| d.device_id == "dev-a")
        .unwrap();
    assert_eq!(a.revoked_at, Some(T0 + 10));
    assert!(s.device_by_actor("aa").unwrap().unwrap().revoked);
    // Keys.
    assert_eq!(s.device_keys("dev-b").unwrap().unwrap().public_key, None);
    s.set_device_keys("dev-b", &[1; 32], b"cert").unwrap();
    let k = s.device_keys("dev-b").unwrap().unwrap();
    assert_eq!(
        (k.public_key, k.cert),
        (Some(vec![1; 32]), Some(b"cert".to_vec()))
    );
    assert_eq!(s.device_keys("dev-z").unwrap(), None);
    // A pull-only touch waits for its gap; a plain one does not.
    s.touch_device("dev-b", T0 + 100, Some(60_000)).unwrap();
    s.touch_device("dev-b", T0 + 200, Some(60_000)).unwrap();
    let last = |s: &dyn ServerStorage| {
        s.devices()
            .unwrap()
            .into_iter()
            .find(|d| d.device_id == "dev-b")
            .unwrap()
            .last_sync_at
    };
    assert_eq!(last(s), Some(T0 + 100));
    s.touch_device("dev-b", T0 + 300, None).unwrap();
    assert_eq!(last(s), Some(T0 + 300));
    // One-time codes.
    s.insert_code(b"hash-1", "member-0001", T0, T0 + 1000)
        .unwrap();
    let c = s.code(b"hash-1").unwrap().unwrap();
    assert_eq!(
        (c.member.as_str(), c.expires_at, c.used_at),
        ("member-0001", T0 + 1000, None)
    );
    assert!(s.use_code(b"hash-1", T0 + 1, "dev-b").unwrap());
    assert!(!s.use_code(b"hash-1", T0 + 2, "dev-c").unwrap());
    assert_eq!(s.code(b"hash-1").unwrap().unwrap().used_at, Some(T0 + 1));
    assert_eq!(s.code(b"hash-2").unwrap(), None);
    // Server meta.
    assert!(s.server_meta("epoch").unwrap().is_some());
    s.set_server_meta("x", Some("1")).unwrap();
    assert_eq!(s.server_meta("x").unwrap().as_deref(), Some("1"));
    s.set_server_meta("x", None).unwrap();
    assert_eq!(s.server_meta("x").unwrap(), None);
}

fn issue11_signatures_beside_the_changes(s: &mut dyn ServerStorage) {
    let key = DeviceKey::from_seed([3; 32]);
    let (h1, h2, h3) = (
        ChangeHash([1; 32]),
        ChangeHash([2; 32]),
        ChangeHash([3; 32]),
    );
    let one = ChangeSig::sign(&key, "dev-1", SigKind::Changes, vec![h1, h2]);
    let two = ChangeSig::sign(&key, "dev-1", SigKind::Changes, vec![h3]);
    s.put_sig(&one, &[h1]).unwrap();
    s.put_sig(&one, &[h2]).unwrap(); // the same signature, kept once
    s.put_sig(&two, &[h3]).unwrap();
    assert_eq!(s.sigs_for(&[h1, h2]).unwrap(), vec![one.clone()]);
    assert_eq!(
        s.sigs_for(&[h3, h1]).unwrap(),
        vec![one.clone(), two.clone()]
    );
    assert_eq!(s.sigs_for(&[ChangeHash([4; 32])]).unwrap(), vec![]);
    // A document written with the server's signature keeps it in the same unit.
    let mut d = visit("v-s", "group-01", 1, &["member-0001"]);
    let e = entry(&mut d);
    let hashes: Vec<ChangeHash> = d.changes().iter().map(|c| c.hash()).collect();
    let own = ChangeSig::sign(&key, "server", SigKind::Changes, hashes.clone());
    s.write_doc(&mut d, None, &e, None, Some(&own)).unwrap();
    assert_eq!(s.sigs_for(&hashes).unwrap(), vec![own]);
}

fn issue11_console_passwords_and_sessions(s: &mut dyn ServerStorage) {
    s.put_account(&account("staff-01", "staff", None), T0)
        .unwrap();
    assert_eq!(s.password("staff-01").unwrap(), None);
    let old = StoredPassword {
        salt: b"salt".to_vec(),
        hash: b"old".to_vec(),
        iterations: 1000,
    };
    let new = StoredPassword {
        salt: vec![],
        hash: b"$argon2id$new".to_vec(),
        iterations: 0,
    };
    s.set_password("staff-01", &old, T0).unwrap();
    assert_eq!(s.password("staff-01").unwrap(), Some(old.clone()));
    assert!(s.replace_password("staff-01", &old, &new, T0 + 1).unwrap());
    // Replaced meanwhile: the upgrade does not overwrite it.
    assert!(!s.replace_password("staff-01", &old, &old, T0 + 2).unwrap());
    assert_eq!(s.password("staff-01").unwrap(), Some(new));
    let session = |expires_at| StoredSession {
        member: "staff-01".into(),
        csrf: "csrf".into(),
        expires_at,
    };
    s.insert_session(b"t1", &session(T0 + 10), T0).unwrap();
    s.insert_session(b"t2", &session(T0 + 1000), T0).unwrap();
    assert_eq!(s.session(b"t1").unwrap(), Some(session(T0 + 10)));
    // Opening a session forgets the expired ones.
    s.insert_session(b"t3", &session(T0 + 1000), T0 + 100)
        .unwrap();
    assert_eq!(s.session(b"t1").unwrap(), None);
    s.delete_session(b"t2").unwrap();
    assert_eq!(s.session(b"t2").unwrap(), None);
    assert!(s.session(b"t3").unwrap().is_some());
    s.delete_sessions_of("staff-01").unwrap();
    assert_eq!(s.session(b"t3").unwrap(), None);
}

fn issue11_blob_uploads_per_scope(s: &mut dyn ServerStorage) {
    let (h, other) = ([1u8; 32], [2u8; 32]);
    assert!(!s.upload_exists(&h, None).unwrap());
    s.record_upload(&h, "dev-2", "group-02", T0 + 1).unwrap();
    s.record_upload(&h, "dev-1", "group-01", T0).unwrap();
    s.record_upload(&h, "dev-1", "group-01", T0 + 5).unwrap(); // kept once, first time
    assert!(s.upload_exists(&h, None).unwrap());
    assert!(s.upload_exists(&h, Some("group-01")).unwrap());
    assert!(!s.upload_exists(&h, Some("group-03")).unwrap());
    assert!(!s.upload_exists(&other, None).unwrap());
    assert_eq!(
        s.uploads(&h).unwrap(),
        [
            ("dev-1".to_string(), "group-01".to_string()),
            ("dev-2".into(), "group-02".into())
        ]
    );
}

fn issue11_lists_pages_and_counts_from_the_index(s: &mut dyn ServerStorage) {
    let mut docs = vec![
        visit("v-1", "group-01", 1, &["member-0001"]),
        visit("v-2", "group-01", 2, &["member-0001", "member-0002"]),
        visit("v-3", "group-02", 3, &["member-0003"]),
        visit("v-4", "group-01", 20, &["member-0002"]),
        member("member-0001", "group-01"),
        member("member-0002", "group-01"),
        member("member-0003", "group-02"),
        member("member-0004", "group-01"),
    ];
    let entries = s.insert_batch(&mut docs).unwrap();
    assert_eq!(entries.len(), 8);
    // Importing again merges (nothing new).
    let again = s.insert_batch(&mut docs[..1]).unwrap();
    assert_eq!(again[0].id, "v-1");
    let visits = Filter::default();
    let (total, page) = s.page(&visits, 1, 2).unwrap();
    assert_eq!(total, 4);
    let ids: Vec<&str> = page.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        ["v-3", "v-2"],
        "newest first, second page of two from 1"
    );
    let g1 = Filter {
        group: Some("group-01".into()),
        ..Filter::default()
    };
    assert_eq!(s.page(&g1, 0, 10).unwrap().0, 3);
    let may = Filter {
        from: Some("2026-05-01".into()),
        to: Some("2026-05-03".into()),
        ..Filter::default()
    };
    let ids: Vec<String> = s.list(&may).unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(ids, ["v-3", "v-2", "v-1"]);
    let of = Filter {
        member: Some("member-0002".into()),
        ..Filter::default()
    };
    let ids: Vec<String> = s.list(&of).unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(ids, ["v-4", "v-2"]);
    let v2 = s.index_entry("v-2").unwrap().unwrap();
    assert_eq!(v2.members, ["member-0001", "member-0002"]);
    let by_group = s.count_by(&visits, &[IndexColumn::Group]).unwrap();
    assert_eq!(
        by_group,
        [
            (vec![Some("group-01".to_string())], 3),
            (vec![Some("group-02".to_string())], 1)
        ]
    );
    assert_eq!(s.count_by(&may, &[]).unwrap(), [(vec![], 3)]);
    let members = Filter {
        kind: Some(sanjin_core::domain::RecordKind::Member),
        group: Some("group-01".into()),
        ..Filter::default()
    };
    assert_eq!(s.count_by(&members, &[]).unwrap(), [(vec![], 3)]);
    let names: Vec<String> = s
        .list(&members)
        .unwrap()
        .into_iter()
        .map(|e| e.title)
        .collect();
    assert_eq!(names.len(), 3);
    let all_names = s.names().unwrap();
    assert_eq!(all_names.len(), 4, "the directory's names");
    assert_eq!(
        all_names[0],
        ("member-0001".to_string(), "委员member-0001".to_string())
    );
    assert_eq!(
        s.active_members(None, "2026-05-01", "2026-05-03").unwrap(),
        3
    );
    assert_eq!(
        s.active_members(Some("group-01"), "2026-05-01", "2026-05-03")
            .unwrap(),
        2
    );
    assert_eq!(
        s.active_members(None, "2026-06-01", "2026-06-30").unwrap(),
        0
    );
    let ids: Vec<String> = s.ids().unwrap().into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), 8);
    assert_eq!(s.all_heads().unwrap().len(), 8);
    let parts = s.doc_parts("v-1").unwrap().unwrap();
    assert_eq!(parts.heads, s.doc_heads("v-1").unwrap().unwrap());
    let whole = RecordDoc::load(&parts.concatenated()).unwrap();
    assert_eq!(whole.id(), "v-1");
    assert_eq!(s.doc_parts("nope").unwrap(), None);
}

fn issue11_units_nest_through_a_holder(s: &mut dyn ServerStorage) {
    // `atomically` on a holder that owns the storage, as the server's data does.
    struct Holder<'a> {
        storage: &'a mut dyn ServerStorage,
        noted: Vec<&'static str>,
    }
    let mut h = Holder {
        storage: s,
        noted: vec![],
    };
    let r: Result<(), Error> = atomically(
        &mut h,
        |h| &mut *h.storage,
        |h| {
            h.noted.push("outer");
            h.storage.set_server_meta("k", Some("outer"))?;
            let inner: Result<(), Error> = atomically(
                h,
                |h| &mut *h.storage,
                |h| {
                    h.storage.set_server_meta("k", Some("inner"))?;
                    Err(a_failure())
                },
            );
            assert!(inner.is_err());
            Ok(())
        },
    );
    r.unwrap();
    assert_eq!(h.noted, ["outer"]);
    assert_eq!(
        h.storage.server_meta("k").unwrap().as_deref(),
        Some("outer")
    );
}

fn issue12_box_keys_per_owner_and_epoch_kept_once(s: &mut dyn ServerStorage) {
    let key = |owner: &str, epoch: u32, b: u8| StoredBoxKey {
        owner: owner.into(),
        epoch,
        secret: vec![b; 32],
        created_at: T0 + b as i64,
    };
    assert!(s.box_keys(None).unwrap().is_empty());
    assert!(s.insert_box_key(&key("group-02", 1, 1)).unwrap());
    assert!(s.insert_box_key(&key("", 0, 2)).unwrap());
    assert!(s.insert_box_key(&key("group-01", 2, 3)).unwrap());
    assert!(s.insert_box_key(&key("group-01", 1, 4)).unwrap());
    // A second key at the same owner and epoch is not kept: the first stays (two writers that
    // both made one agree on the stored one).
    assert!(!s.insert_box_key(&key("group-01", 1, 5)).unwrap());
    let all: Vec<(String, u32, u8)> = s
        .box_keys(None)
        .unwrap()
        .into_iter()
        .map(|k| (k.owner, k.epoch, k.secret[0]))
        .collect();
    assert_eq!(
        all,
        [
            ("".to_string(), 0, 2),
            ("group-01".to_string(), 1, 4),
            ("group-01".to_string(), 2, 3),
            ("group-02".to_string(), 1, 1),
        ],
        "by owner, then epoch"
    );
    let g1 = s.box_keys(Some("group-01")).unwrap();
    assert_eq!(g1.len(), 2);
    assert_eq!(g1[1], key("group-01", 2, 3));
    assert_eq!(s.box_keys(Some("")).unwrap(), [key("", 0, 2)]);
    assert!(s.box_keys(Some("group-09")).unwrap().is_empty());
    // Inside a unit that fails, nothing is kept.
    let failed = s.transaction(|s| -> Result<(), Error> {
        s.insert_box_key(&key("group-03", 1, 6))?;
        Err(a_failure())
    });
    assert!(failed.is_err());
    assert!(s.box_keys(Some("group-03")).unwrap().is_empty());
    // The secret is never printed.
    assert!(!format!("{:?}", key("", 0, 0xab)).contains("171, 171"));
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(&mut *super::sqlite().s) } )*
        }
        mod memory {
            $( #[test] fn $name() { super::$name(&mut *super::memory().s) } )*
        }
    };
}

suite!(
    issue11_a_document_its_index_row_and_its_log_entry_land_together,
    issue11_a_group_commit_rolls_back_a_failed_exchange_alone,
    issue11_the_log_since_a_cursor_by_scope_and_origin,
    issue11_log_links_chain_over_the_whole_log,
    issue11_idempotency_is_kept_for_its_ttl_and_a_few_per_device,
    issue11_sync_states_per_device_and_document,
    issue11_accounts_devices_codes_and_keys,
    issue11_signatures_beside_the_changes,
    issue11_console_passwords_and_sessions,
    issue11_blob_uploads_per_scope,
    issue11_lists_pages_and_counts_from_the_index,
    issue11_units_nest_through_a_holder,
    issue12_box_keys_per_owner_and_epoch_kept_once,
);

// ------------------------------------------------------------------ SQLite: the file format

/// The server tables as a server before issue 11 left them (schema 2, console and blob tables
/// created on first use), with a record, an account, a device, a log entry, a password.
#[test]
fn issue11_a_data_folder_from_before_issue_11_opens_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sanjin.sqlite");
    let mut doc = visit("v-1", "group-01", 1, &["member-0001"]);
    {
        let mut s =
            sanjin_store::Store::init(&path, &identity(), sanjin_store::Durability::Full).unwrap();
        s.insert(&mut doc, false).unwrap();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(include_str!("../src/server/schema/s1.sql"))
        .unwrap();
    conn.execute_batch(include_str!("../src/server/schema/s2.sql"))
        .unwrap();
    conn.execute_batch(
        "INSERT INTO server_meta (key, value) VALUES ('schema_version', '2'), ('epoch', '000102030405060708090a0b0c0d0e0f');
         INSERT INTO accounts (member, role, group_id, name, created_at) VALUES ('member-0001', 'leader', 'group-01', '张三', 1);
         INSERT INTO devices (device_id, member, secret_hash, actor, name, enrolled_at) VALUES ('dev-1', 'member-0001', x'00', 'aa', 'phone', 2);
         INSERT INTO change_log (doc_id, scope, origin, bytes, heads, at) VALUES ('v-1', 'group-01', 'dev-1', x'01', x'', 3);
         CREATE TABLE console_passwords (member TEXT PRIMARY KEY REFERENCES accounts(member), salt BLOB NOT NULL, hash BLOB NOT NULL, iterations INTEGER NOT NULL, updated_at INTEGER NOT NULL);
         CREATE TABLE console_sessions (token_hash BLOB PRIMARY KEY, member TEXT NOT NULL REFERENCES accounts(member), csrf TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
         INSERT INTO console_passwords VALUES ('member-0001', x'', CAST('$argon2id$x' AS BLOB), 0, 4);
         CREATE TABLE blob_uploads (hash BLOB NOT NULL, device_id TEXT NOT NULL, scope TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (hash, scope, device_id)) WITHOUT ROWID;",
    )
    .unwrap();
    conn.execute(
        "INSERT INTO blob_uploads VALUES (?1, 'dev-1', 'group-01', 5)",
        [vec![1u8; 32]],
    )
    .unwrap();
    drop(conn);
    let s = SqliteServerStorage::open(&path, &identity()).unwrap();
    assert_eq!(
        s.server_meta("schema_version").unwrap(),
        Some(SERVER_SCHEMA_VERSION.to_string())
    );
    assert_eq!(
        s.server_meta("epoch").unwrap().as_deref(),
        Some("000102030405060708090a0b0c0d0e0f"),
        "the epoch stays, so devices' cursors stay valid"
    );
    assert_eq!(s.load("v-1").unwrap().heads(), doc.heads());
    assert_eq!(s.account("member-0001").unwrap().unwrap().name, "张三");
    assert_eq!(s.devices().unwrap()[0].device_id, "dev-1");
    assert_eq!(s.max_seq().unwrap(), 1);
    assert_eq!(s.password("member-0001").unwrap().unwrap().iterations, 0);
    assert!(s.upload_exists(&[1; 32], Some("group-01")).unwrap());
    assert_eq!(
        s.server_meta(sanjin_store::server::META_BLOB_UPLOADS_NEW)
            .unwrap(),
        None,
        "the uploads table was there: nothing to vouch for again"
    );
    // The entry from before links has none and stands for itself, as its cursors' tag always
    // did: devices that read up to it keep their cursor (issue 11).
    let old = s.log_entry(1).unwrap().unwrap();
    assert_eq!(old.link, None);
    assert_eq!(
        old.link_or_own(),
        log_link(LOG_LINK_BASIS, "v-1", &[]),
        "the tag of an old entry is what it was"
    );
    drop(s);
    // Opening again runs no step twice.
    let mut s = SqliteServerStorage::open(&path, &identity()).unwrap();
    assert_eq!(s.max_seq().unwrap(), 1);
    // A new entry links on from the old one.
    let mut v2 = visit("v-2", "group-01", 2, &["member-0001"]);
    land(&mut s, &mut v2, None);
    let new = s.log_entry(2).unwrap().unwrap();
    assert_eq!(
        new.link,
        Some(log_link(old.link_or_own(), "v-2", &v2.heads()))
    );
}

#[test]
fn issue11_a_new_uploads_table_asks_for_the_originals_on_disk_to_be_vouched_for() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteServerStorage::open(&dir.path().join("sanjin.sqlite"), &identity()).unwrap();
    assert_eq!(
        s.server_meta(sanjin_store::server::META_BLOB_UPLOADS_NEW)
            .unwrap()
            .as_deref(),
        Some("1")
    );
}

#[test]
fn issue11_a_device_store_is_not_server_data_and_newer_tables_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("phone.sqlite");
    let phone = Identity {
        member: "member-0001".into(),
        device: "dev-1".into(),
        actor: vec![1; 16],
    };
    drop(sanjin_store::Store::init(&path, &phone, sanjin_store::Durability::Full).unwrap());
    assert!(matches!(
        SqliteServerStorage::open(&path, &identity()),
        Err(Error::NotServerData(_))
    ));
    let path = dir.path().join("sanjin.sqlite");
    drop(SqliteServerStorage::open(&path, &identity()).unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE server_meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
    assert!(matches!(
        SqliteServerStorage::open(&path, &identity()),
        Err(Error::NewerServerSchema { found: 99, .. })
    ));
}

#[test]
fn issue11_a_reader_sees_what_the_writer_committed() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = SqliteServerStorage::open(&dir.path().join("sanjin.sqlite"), &identity()).unwrap();
    let r = w.reader().unwrap().expect("SQLite has readers");
    w.put_account(&account("member-0001", "member", Some("group-01")), T0)
        .unwrap();
    assert_eq!(r.account("member-0001").unwrap().unwrap().role, "member");
    assert!(r.server_meta("epoch").unwrap().is_some());
    assert!(
        MemoryServerStorage::new(identity())
            .reader()
            .unwrap()
            .is_none()
    );
}
