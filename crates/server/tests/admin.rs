//! The data folder and the admin functions: creation, reopening, the directory import, accounts
//! one by one, codes and devices.

mod common;

use common::*;
use sanjin_core::domain::{
    Chapter, ChapterLevel, Committee, ContactPoint, Group, Member, RecordData, RecordKind,
    TargetKind,
};
use sanjin_core::protocol::SyncRequest;
use sanjin_server::{EnrollRequest, Error, Role, ServerData};
use sanjin_store::{Durability, Filter, Identity, Store};
use tempfile::TempDir;

#[test]
fn the_data_folder_is_made_once_and_reopened() {
    let dir = TempDir::new().unwrap();
    let data_dir = dir.path().join("sanjin-data");
    let epoch = {
        let data = ServerData::open(&data_dir).unwrap();
        assert!(data_dir.join("sanjin.sqlite").is_file());
        assert!(data_dir.join("blobs").is_dir());
        assert_eq!(data.max_seq().unwrap(), 0);
        assert_eq!(data.store().identity().member, "server");
        data.epoch()
    };
    assert_ne!(epoch, [0; 16]);
    let data = ServerData::open(&data_dir).unwrap();
    assert_eq!(data.epoch(), epoch, "the epoch is made once");
    let version: String = rusqlite::Connection::open(data.dir().join(sanjin_server::DB_FILE))
        .unwrap()
        .query_row(
            "SELECT value FROM server_meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, sanjin_server::SERVER_SCHEMA_VERSION.to_string());
    drop(data);

    // A device store is no server's database.
    let other = dir.path().join("device");
    std::fs::create_dir_all(&other).unwrap();
    let (device, actor) = sanjin_store::new_device();
    Store::init(
        &other.join("sanjin.sqlite"),
        &Identity {
            member: "member-0001".into(),
            device,
            actor,
        },
        Durability::Normal,
    )
    .unwrap();
    assert!(matches!(
        ServerData::open(&other),
        Err(Error::NotServerData(_))
    ));

    // Server tables from a newer sanjin are refused.
    let data = ServerData::open(&data_dir).unwrap();
    rusqlite::Connection::open(data.dir().join(sanjin_server::DB_FILE))
        .unwrap()
        .execute(
            "UPDATE server_meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
    drop(data);
    assert!(matches!(
        ServerData::open(&data_dir),
        Err(Error::NewerSchema { found: 99, .. })
    ));
}

#[test]
fn importing_the_fixtures_directory_makes_records_and_accounts() {
    let dir = TempDir::new().unwrap();
    let mut data = ServerData::open(dir.path()).unwrap();
    let report = data
        .import_directory(&sanjin_fixtures::committed_dir())
        .unwrap();
    let f = fixtures();
    assert_eq!(report.added, f.directory.len());
    assert_eq!(report.updated + report.unchanged, 0);
    let members = f
        .directory
        .iter()
        .filter(|r| r.data.kind() == RecordKind::Member)
        .count();
    assert_eq!(report.accounts_created, members);
    assert_eq!(report.leaders, 12);
    let a = data.account(LEADER_1).unwrap().unwrap();
    assert_eq!(a.role, Role::Leader);
    assert_eq!(a.group.as_deref(), Some("group-01"));
    let m = data.account(&members_of("group-01")[0]).unwrap().unwrap();
    assert_eq!(m.role, Role::Member);
    // One change-log entry per record, in the directory's (global) scope.
    assert_eq!(data.max_seq().unwrap() as usize, f.directory.len());
    let scoped: i64 = rusqlite::Connection::open(data.dir().join(sanjin_server::DB_FILE))
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM change_log WHERE scope IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(scoped, 0);
    // The index tables answer ledger queries.
    let groups = data
        .store()
        .list(&Filter {
            kind: Some(RecordKind::Group),
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(groups.len(), 12);

    // Importing again changes nothing; a staff account keeps its role.
    data.set_role(&members_of("group-03")[0], Role::Staff)
        .unwrap();
    let again = data
        .import_directory(&sanjin_fixtures::committed_dir())
        .unwrap();
    assert_eq!(again.unchanged, f.directory.len());
    assert_eq!(again.accounts_created + again.accounts_updated, 0);
    assert_eq!(data.max_seq().unwrap() as usize, f.directory.len());
    assert_eq!(
        data.account(&members_of("group-03")[0])
            .unwrap()
            .unwrap()
            .role,
        Role::Staff
    );
    // The same documents a device gets by importing the fixtures itself: they merge cleanly.
    let mut mine = f.directory[0].to_doc().unwrap();
    let mut theirs = data.store().load(&f.directory[0].id).unwrap();
    assert_eq!(mine.heads(), theirs.heads());

    // Not a directory.
    assert!(data.import_directory(&dir.path().join("nothing")).is_err());
}

#[tokio::test]
async fn an_admin_builds_the_directory_one_by_one() {
    let dir = TempDir::new().unwrap();
    let mut data = ServerData::open(dir.path()).unwrap();
    data.add_record(
        "chapter-x",
        &RecordData::Chapter(Chapter {
            name: "某县政协".into(),
            level: ChapterLevel::County,
            parent: None,
        }),
    )
    .unwrap();
    data.add_record(
        "committee-x",
        &RecordData::Committee(Committee {
            name: "提案委员会".into(),
            chapter: "chapter-x".into(),
        }),
    )
    .unwrap();
    data.add_record(
        "cp-x",
        &RecordData::ContactPoint(ContactPoint {
            name: "新华村".into(),
            target_kind: TargetKind::Village,
            chapter: "chapter-x".into(),
            address: String::new(),
            gps: None,
        }),
    )
    .unwrap();
    data.add_record(
        "group-x",
        &RecordData::Group(Group {
            name: "第一委员活动组".into(),
            chapter: "chapter-x".into(),
            committee: Some("committee-x".into()),
            leader: "m-lead".into(),
            contact_points: vec!["cp-x".into()],
            legal_advisory: false,
        }),
    )
    .unwrap();
    let member = |name: &str| Member {
        name: name.into(),
        chapter: "chapter-x".into(),
        committee: None,
        group: "group-x".into(),
        sector: "农业界".into(),
    };
    let lead = data.add_member("m-lead", &member("张组长"), false).unwrap();
    assert_eq!(lead.role, Role::Leader, "the group record names the leader");
    let m1 = data.add_member("m-1", &member("李委员"), false).unwrap();
    assert_eq!(m1.role, Role::Member);
    let m2 = data.add_member("m-2", &member("王委员"), true).unwrap();
    assert_eq!(m2.role, Role::Leader, "made a leader explicitly");
    let staff = data.add_staff("staff-1", "赵干事", Role::Staff).unwrap();
    assert_eq!(staff.group, None);
    data.add_staff("admin-1", "钱管理", Role::Admin).unwrap();
    assert_eq!(data.accounts().unwrap().len(), 5);

    // Clear refusals.
    assert!(matches!(
        data.add_member("m-1", &member("重复"), false),
        Err(Error::Exists(_))
    ));
    let mut stray = member("无组");
    stray.group = "group-none".into();
    assert!(matches!(
        data.add_member("m-3", &stray, false),
        Err(Error::UnknownRecord(_))
    ));
    assert!(matches!(
        data.issue_code("nobody"),
        Err(Error::UnknownAccount(_))
    ));
    assert!(matches!(
        data.revoke("no-device"),
        Err(Error::UnknownDevice(_))
    ));
    assert!(matches!(
        data.add_staff("m-9", "x", Role::Member),
        Err(Error::Invalid(_))
    ));
    let visit = sanjin_core::testdata::visit();
    assert!(matches!(
        data.add_record("v-1", &RecordData::Visit(visit)),
        Err(Error::Invalid(_))
    ));

    // A member enrolls and pulls the directory the admin made (library API, no HTTP).
    let code = data.issue_code("m-1").unwrap();
    let creds = data
        .enroll(&EnrollRequest {
            code: code.code.clone(),
            device_name: "手机".into(),
            device_id: None,
            actor: None,
            member: Some("m-1".into()),
            public_key: None,
        })
        .unwrap();
    let caller = data
        .authenticate(Some(&format!(
            "Bearer {}.{}",
            creds.device_id, creds.secret
        )))
        .unwrap();
    assert_eq!(caller.account.member, "m-1");
    let out = data
        .sync(
            &caller,
            &SyncRequest {
                request_id: random16(),
                max_response_bytes: 1 << 20,
                ..Default::default()
            },
        )
        .unwrap();
    let resp = sanjin_core::protocol::SyncResponse::decode(&out.response).unwrap();
    let mut ids: Vec<_> = resp.changes.iter().map(|c| c.doc_id.as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        vec![
            "chapter-x",
            "committee-x",
            "cp-x",
            "group-x",
            "m-1",
            "m-2",
            "m-lead"
        ]
    );
    assert_eq!(out.pulled_docs, 7);

    // Devices are listed; a revoked one cannot authenticate.
    let devices = data.devices().unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].member, "m-1");
    assert_eq!(devices[0].name, "手机");
    assert!(devices[0].last_sync_at_ms.is_some());
    let revoked = data.revoke(&creds.device_id).unwrap();
    assert!(revoked.revoked_at_ms.is_some());
    assert!(
        data.authenticate(Some(&format!(
            "Bearer {}.{}",
            creds.device_id, creds.secret
        )))
        .is_err()
    );
    // Revoking twice keeps the first time.
    assert_eq!(
        data.revoke(&creds.device_id).unwrap().revoked_at_ms,
        revoked.revoked_at_ms
    );
}

/// Two processes on one data folder (the server and an admin command, or two servers in a
/// test): what one writes, the other sees, whatever it keeps in memory.
#[test]
fn two_handles_on_one_folder_see_each_others_writes() {
    let dir = TempDir::new().unwrap();
    let data_dir = dir.path().join("data");
    let mut one = ServerData::open(&data_dir).unwrap();
    one.import_directory(&small_directory(dir.path())).unwrap();
    let mut two = ServerData::open(&data_dir).unwrap();
    let [a, b, c] = [0, 1, 2].map(|i| members_of("group-01")[i].clone());
    let mut devices = Vec::new();
    for m in [&a, &b, &c] {
        let code = one.issue_code(m).unwrap();
        let (device_id, actor) = sanjin_store::new_device();
        let mut store = Store::init(
            &dir.path().join(format!("{m}.sqlite")),
            &Identity {
                member: m.clone(),
                device: device_id.clone(),
                actor: actor.clone(),
            },
            Durability::Normal,
        )
        .unwrap();
        // Issue 10: a device signs its changes with the key it enrolled.
        let key = sanjin_core::sign::DeviceKey::from_seed(random32());
        store.set_signing_key(&key).unwrap();
        let creds = one
            .enroll(&EnrollRequest {
                code: code.code,
                device_name: m.clone(),
                device_id: Some(device_id),
                actor: Some(hex::encode(&actor)),
                member: Some(m.clone()),
                public_key: Some(hex::encode(key.public())),
            })
            .unwrap();
        let caller = one
            .authenticate(Some(&format!(
                "Bearer {}.{}",
                creds.device_id, creds.secret
            )))
            .unwrap();
        devices.push((store, caller));
    }
    let exchange = |data: &mut ServerData, store: &mut Store, caller| {
        let pushes: Vec<sanjin_core::protocol::DocChanges> = store
            .outbox()
            .unwrap()
            .into_iter()
            .map(|e| {
                let mut doc = store.load(&e.id).unwrap();
                sanjin_core::protocol::DocChanges {
                    doc_id: e.id.clone(),
                    changes: doc.save_after(&e.acked_heads),
                }
            })
            .collect();
        let own: Vec<_> = pushes
            .iter()
            .flat_map(|p: &sanjin_core::protocol::DocChanges| store.own_changes(&p.changes))
            .collect();
        let sigs = vec![sanjin_core::sign::ChangeSig::sign(
            store.signing_key().unwrap(),
            &store.identity().device,
            sanjin_core::sign::SigKind::Changes,
            own,
        )];
        let req = SyncRequest {
            request_id: random16(),
            max_response_bytes: 16 << 20,
            pushes,
            sigs,
            ..Default::default()
        };
        let out = data.sync(caller, &req).unwrap();
        let resp = sanjin_core::protocol::SyncResponse::decode(&out.response).unwrap();
        assert!(resp.refused.is_empty(), "{:?}", resp.refused);
        // Acks first, with the heads pushed (nothing was edited in between).
        for pushed in resp.acked(&req) {
            let heads = store.load(&pushed.doc_id).unwrap().heads();
            store.ack(&pushed.doc_id, &heads).unwrap();
        }
        for ch in &resp.changes {
            store.apply_remote(&ch.doc_id, &ch.changes).unwrap();
        }
    };
    let edit = |store: &mut Store, id: &str, title: &str| {
        store
            .update(id, |doc, by| {
                doc.edit(
                    by,
                    now(),
                    &[sanjin_core::Edit::Set {
                        field: "title".into(),
                        value: title.into(),
                    }],
                )
            })
            .unwrap();
    };
    let (mut sa, ca) = devices.remove(0);
    let (mut sb, cb) = devices.remove(0);
    let (mut sc, cc) = devices.remove(0);
    // A records a visit through one; B gets it through two and edits it there.
    let fixture = fixtures()
        .visits
        .iter()
        .find(|r| matches!(&r.data, RecordData::Visit(v) if v.group == "group-01"))
        .unwrap();
    let mut doc =
        sanjin_core::RecordDoc::create("shared-visit", &fixture.data, &sa.author(), now()).unwrap();
    sa.insert(&mut doc, true).unwrap();
    exchange(&mut one, &mut sa, &ca);
    exchange(&mut two, &mut sb, &cb);
    edit(&mut sb, "shared-visit", "B 的标题");
    exchange(&mut two, &mut sb, &cb);
    // A gets B's edit through two, edits on top of it, and pushes through one, which last saw
    // the visit before B's edit (its copy in memory is stale: A's change depends on B's).
    exchange(&mut two, &mut sa, &ca);
    edit(&mut sa, "shared-visit", "A 的标题");
    exchange(&mut one, &mut sa, &ca);
    // C pulls everything: both edits arrive, and C holds what the server holds.
    exchange(&mut one, &mut sc, &cc);
    let mut server = two.store().load("shared-visit").unwrap();
    let mut theirs = sc.load("shared-visit").unwrap();
    assert_eq!(theirs.heads(), server.heads());
    let view = theirs.view().unwrap();
    assert!(view.conflicts.is_empty());
    match view.data {
        RecordData::Visit(v) => assert_eq!(v.title, "A 的标题"),
        _ => unreachable!(),
    }
    let history = theirs.history();
    assert!(history.iter().any(|h| h.member == b));
    assert!(history.iter().any(|h| h.member == a));
}
