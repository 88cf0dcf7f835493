//! Issue 12: what a device keeps to carry records without signal (schema 5): group secrets,
//! the newest key directory and revocation list, receipts applied to the outbox (已送达),
//! cargo kept once, the selection a bundle or a phone-to-phone peer is made from.

use std::collections::HashMap;

use sanjin_core::domain::RecordData;
use sanjin_core::seal::BoxSecret;
use sanjin_core::sign::{DeviceCert, DeviceKey, GroupKey, KeyDirectory, Receipt, Revocations, Revoked};
use sanjin_core::{Edit, RecordDoc, testdata};
use sanjin_store::{Durability, Identity, META_SERVER_CERT, Selection, Store, group_recipient};
use serde_json::json;

const T0: i64 = 1_747_616_400_000;

fn store(dir: &tempfile::TempDir, n: u8) -> Store {
    let identity = Identity {
        member: format!("member-{n:04}"),
        device: format!("device-{n:02}"),
        actor: vec![n; 16],
    };
    Store::init(
        &dir.path().join(format!("s{n}.sqlite")),
        &identity,
        Durability::Normal,
    )
    .unwrap()
}

fn add_visit(s: &mut Store, id: &str, group: &str) {
    let mut v = testdata::visit();
    v.group = group.into();
    let mut doc = RecordDoc::create(id, &RecordData::Visit(v), &s.author(), T0).unwrap();
    s.insert(&mut doc, true).unwrap();
}

fn server() -> (DeviceKey, DeviceCert) {
    let k = DeviceKey::from_seed([7; 32]);
    let c = DeviceCert::server(&k, &[7; 16], T0);
    (k, c)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn issue12_schema_5_keeps_the_newest_statements() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir, 1);
    let (key, cert) = server();
    assert_eq!(s.server_public().unwrap(), None);
    s.set_meta(META_SERVER_CERT, Some(&hex(&cert.encode()))).unwrap();
    assert_eq!(s.server_public().unwrap(), Some(key.public()));

    // Group secrets by recipient id; never another group's.
    let g = BoxSecret::from_seed([3; 32]);
    s.put_box_secret("group-01", 2, &g).unwrap();
    let id = group_recipient("group-01", 2);
    assert_eq!(s.box_secret(&id).unwrap().unwrap().public(), g.public());
    assert!(s.box_secret(&group_recipient("group-01", 1)).unwrap().is_none());
    assert!(s.box_secret("server").unwrap().is_none());
    assert_eq!(s.box_secrets().unwrap().len(), 1);

    // The key directory: a newer one replaces, an older one does not.
    let kd = |at: i64, epoch: u32| {
        KeyDirectory::sign(
            &key,
            at,
            [9; 32],
            vec![GroupKey {
                group: "group-01".into(),
                epoch,
                public: g.public(),
            }],
        )
    };
    assert!(s.key_directory().unwrap().is_none());
    s.put_key_directory(&kd(T0 + 10, 2)).unwrap();
    s.put_key_directory(&kd(T0, 1)).unwrap();
    assert_eq!(s.key_directory().unwrap().unwrap().groups[0].epoch, 2);

    // Revocations: only a higher seq replaces.
    let revoked = Revoked {
        device: "device-09".into(),
        actor: vec![9; 16],
        revoked_at: T0,
    };
    assert!(s.put_revocations(&Revocations::sign(&key, 2, T0, vec![revoked.clone()])).unwrap());
    assert!(!s.put_revocations(&Revocations::sign(&key, 1, T0, vec![])).unwrap());
    assert!(!s.put_revocations(&Revocations::sign(&key, 2, T0, vec![])).unwrap());
    assert_eq!(s.revocations().unwrap().unwrap().devices, vec![revoked]);

    // Cargo: kept once, dropped when delivered, not taken again.
    assert!(s.put_cargo(b"sealed part").unwrap());
    assert!(!s.put_cargo(b"sealed part").unwrap());
    let c = s.cargo().unwrap();
    assert_eq!(c.len(), 1);
    s.cargo_delivered(c[0].0).unwrap();
    assert!(s.cargo().unwrap().is_empty());
    assert!(!s.put_cargo(b"sealed part").unwrap());

    // All of it survives reopening.
    let path = s.path().to_path_buf();
    drop(s);
    let s = Store::open(&path, Durability::Normal).unwrap();
    assert_eq!(s.key_directory().unwrap().unwrap().issued_at, T0 + 10);
    assert_eq!(s.revocations().unwrap().unwrap().seq, 2);
    assert_eq!(s.box_secrets().unwrap().len(), 1);
}

#[test]
fn issue12_receipts_deliver_only_what_they_cover() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir, 1);
    let (key, _) = server();
    add_visit(&mut s, "v-1", "group-01");
    add_visit(&mut s, "v-2", "group-01");
    let h1 = s.load("v-1").unwrap().heads();
    assert!(!s.delivered("v-1").unwrap());
    // An edit after the receipt's heads: v-2 stays undelivered.
    let h2 = s.load("v-2").unwrap().heads();
    s.update("v-2", |d, by| {
        d.edit(
            by,
            T0 + 5,
            &[Edit::Set {
                field: "summary".into(),
                value: json!("补充"),
            }],
        )
    })
    .unwrap();
    let n = s
        .put_receipts(&[
            Receipt::sign(&key, "v-1", &h1, T0),
            Receipt::sign(&key, "v-2", &h2, T0),
            Receipt::sign(&key, "v-elsewhere", &h1, T0),
        ])
        .unwrap();
    assert_eq!(n, 3);
    assert!(s.delivered("v-1").unwrap());
    assert!(!s.delivered("v-2").unwrap());
    assert_eq!(s.undelivered().unwrap().len(), 1);
    // Kept to pass on, the same receipt twice is not new.
    assert_eq!(s.put_receipts(&[Receipt::sign(&key, "v-1", &h1, T0)]).unwrap(), 0);
    assert_eq!(s.receipts(None).unwrap().len(), 3);
    // A receipt naming heads this device does not know covers nothing.
    add_visit(&mut s, "v-3", "group-01");
    s.put_receipts(&[Receipt::sign(&key, "v-3", &h1, T0)]).unwrap();
    assert!(!s.delivered("v-3").unwrap());
}

#[test]
fn issue12_selection_scope_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&dir, 1);
    add_visit(&mut s, "v-1", "group-01");
    add_visit(&mut s, "v-2", "group-02");
    // The whole store for group 01: v-2 is outside (cargo), not in the payload.
    let sel = Selection::group("group-01");
    let (p, docs) = s.bundle_payload(&Selection { group: None, ..sel.clone() }, None).unwrap();
    assert_eq!(p.docs.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["v-1"]);
    assert!(docs.iter().any(|d| d.id == "v-2" && d.outside));
    let outside = s.outside_payload(&["v-2".into()], false).unwrap();
    assert_eq!(outside.docs.len(), 1);
    // Group 01 only: v-2 not even listed.
    let (_, docs) = s.bundle_payload(&sel, None).unwrap();
    assert_eq!(docs.len(), 1);
    // A peer at the same heads needs nothing; a peer without it gets all of it.
    let summary: HashMap<_, _> = s.summary(&sel).unwrap().into_iter().collect();
    assert_eq!(summary.len(), 1);
    let (p, _) = s.bundle_payload(&sel, Some(&summary)).unwrap();
    assert!(p.docs.is_empty());
    let (p, _) = s.bundle_payload(&sel, Some(&HashMap::new())).unwrap();
    assert_eq!(p.docs.len(), 1);
    // A member's records (testdata's participants include member-0002), outside group 03.
    let (_, docs) = s
        .bundle_payload(
            &Selection {
                group: Some("group-03".into()),
                member: Some("member-0002".into()),
                audience: Some("group-03".into()),
                ..Selection::default()
            },
            None,
        )
        .unwrap();
    assert_eq!(docs.len(), 2, "{docs:?}");
    assert!(docs.iter().all(|d| d.outside));
}
