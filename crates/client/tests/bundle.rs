//! Issue 12: bundles between real SQLite device stores, without a server or any signal. The
//! server's keys, device certificates, its key directory, receipts and revocation lists are
//! made in the test (`bundle::testing::TestTrust`), as a server would have issued them.

use std::collections::HashSet;

use sanjin_client::bundle::{
    self, BundleError, BundleFailure, ExportOptions, PartReport, testing::TestTrust,
};
use sanjin_core::domain::{PhotoRef, RecordData};
use sanjin_core::sign::{ChangeSig, DeviceCert, DeviceKey, SigKind, split_changes};
use sanjin_core::{Author, ChangeHash, Edit, RecordDoc, testdata};
use sanjin_store::{Durability, Identity, Outcome, Store};
use sanjin_sync::bundle::{Audience, DocChanges, Payload};
use serde_json::json;

const T0: i64 = 1_747_616_400_000;
const NOW: i64 = T0 + 3_600_000;

struct Phone {
    store: Store,
    cert: DeviceCert,
    key: DeviceKey,
}

fn phone(dir: &tempfile::TempDir, trust: &TestTrust, n: u8, group: &str) -> Phone {
    let identity = Identity {
        member: format!("member-{n:04}"),
        device: format!("device-{n:02}"),
        actor: vec![n; 16],
    };
    let mut store = Store::init(
        &dir.path().join(format!("p{n}.sqlite")),
        &identity,
        Durability::Normal,
    )
    .unwrap();
    let cert = trust.enroll(&mut store, 100 + n, "member", Some(group), T0);
    Phone {
        store,
        cert,
        key: DeviceKey::from_seed([100 + n; 32]),
    }
}

fn trust() -> TestTrust {
    TestTrust::new(7, &["group-01", "group-02"], T0)
}

/// A visit of `group` by the phone's member, saved (and signed) on the phone.
fn visit(p: &mut Phone, id: &str, title: &str, group: &str) -> String {
    let mut v = testdata::visit();
    v.title = title.into();
    v.group = group.into();
    v.participants = vec![p.store.identity().member.clone()];
    let mut doc = RecordDoc::create(id, &RecordData::Visit(v), &p.store.author(), T0).unwrap();
    p.store.insert(&mut doc, true).unwrap();
    id.to_string()
}

fn title(s: &Store, id: &str) -> String {
    match s.load(id).unwrap().data().unwrap() {
        RecordData::Visit(v) => v.title,
        other => panic!("not a visit: {other:?}"),
    }
}

fn heads(s: &Store, id: &str) -> Vec<ChangeHash> {
    s.load(id).unwrap().heads()
}

fn export(p: &Phone, opts: &ExportOptions) -> Vec<Vec<u8>> {
    bundle::export_bundle(&p.store, opts, NOW).unwrap().parts
}

fn import(p: &mut Phone, part: &[u8]) -> PartReport {
    bundle::import_bundle(&mut p.store, part, NOW).unwrap()
}

fn outcome(r: &PartReport, id: &str) -> Outcome {
    r.report
        .records
        .iter()
        .find(|d| d.id == id)
        .unwrap_or_else(|| panic!("{id} not in {r:?}"))
        .outcome
}

fn ids(s: &Store) -> HashSet<String> {
    s.ids().unwrap().into_iter().map(|(id, _)| id).collect()
}

/// A to B in one file: every record lands with its author's signature, queued for the
/// server from B (B is the one who will reach the county town), noted as relayed.
#[test]
fn issue12_round_trip_a_to_b() {
    let dir = tempfile::tempdir().unwrap();
    let t = trust();
    let mut a = phone(&dir, &t, 1, "group-01");
    let mut b = phone(&dir, &t, 2, "group-01");
    let v1 = visit(&mut a, "v-0001", "杨店镇座谈", "group-01");
    let v2 = visit(&mut a, "v-0002", "新华村走访", "group-01");
    let parts = export(&a, &ExportOptions::default());
    assert_eq!(parts.len(), 1);
    let r = import(&mut b, &parts[0]);
    assert_eq!((r.report.added, r.report.refused), (2, 0), "{r:?}");
    assert_eq!(r.exporter_member, "member-0001");
    assert_eq!(title(&b.store, &v1), "杨店镇座谈");
    assert_eq!(heads(&b.store, &v2), heads(&a.store, &v2));
    // A's signature came along, by A's device, covering the changes.
    let hashes: Vec<ChangeHash> = split_changes(&b.store.load(&v1).unwrap().save_after(&[]))
        .into_iter()
        .map(|(h, _)| h)
        .collect();
    let sigs = b.store.sigs_for(&hashes).unwrap();
    assert!(!sigs.is_empty());
    assert!(sigs.iter().all(|s| s.signer == "device-01"));
    assert!(sigs.iter().all(|s| s.verify(&a.cert.public_key)));
    assert!(b.store.cert("device-01").unwrap().is_some());
    // Queued for the server on B, and waiting for a receipt.
    let outbox: HashSet<String> = b.store.outbox().unwrap().into_iter().map(|e| e.id).collect();
    assert!(outbox.contains(&v1) && outbox.contains(&v2));
    assert_eq!(b.store.relayed_unreceipted().unwrap(), vec![v1.clone(), v2.clone()]);
    // Nothing of A's secrets: B cannot sign as A (its key is B's), and the bundle's bytes do
    // not carry the record's words in the clear.
    assert_ne!(b.store.signing_key().unwrap().public(), a.key.public());
    let words = "杨店镇座谈".as_bytes();
    assert!(!parts[0].windows(words.len()).any(|w| w == words));
}

/// Parts of a chosen size, imported in reverse order, then all again: the same records, and
/// the second time nothing changes.
#[test]
fn issue12_parts_in_reverse_order_and_twice() {
    let dir = tempfile::tempdir().unwrap();
    let t = trust();
    let mut a = phone(&dir, &t, 1, "group-01");
    let mut b = phone(&dir, &t, 2, "group-01");
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(visit(&mut a, &format!("v-{i:04}"), &format!("走访 {i}"), "group-01"));
    }
    let parts = export(
        &a,
        &ExportOptions {
            part_size: Some(1),
            ..ExportOptions::default()
        },
    );
    assert!(parts.len() >= 5, "{} parts", parts.len());
    let mut added = 0;
    for p in parts.iter().rev() {
        let r = import(&mut b, p);
        assert_eq!(r.report.refused, 0, "{r:?}");
        added += r.report.added;
    }
    assert_eq!(added, 5);
    for id in &made {
        assert_eq!(heads(&b.store, id), heads(&a.store, id));
    }
    // Twice: unchanged, nothing written.
    let before: Vec<_> = made.iter().map(|id| heads(&b.store, id)).collect();
    for p in &parts {
        let r = import(&mut b, p);
        assert_eq!((r.report.added, r.report.updated), (0, 0), "{r:?}");
        for d in &r.report.records {
            assert_eq!(d.outcome, Outcome::Unchanged, "{d:?}");
        }
    }
    let after: Vec<_> = made.iter().map(|id| heads(&b.store, id)).collect();
    assert_eq!(before, after);
}

/// A damaged part is refused with a Chinese message; the other parts land.
#[test]
fn issue12_tampered_part_refused_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let t = trust();
    let mut a = phone(&dir, &t, 1, "group-01");
    let mut b = phone(&dir, &t, 2, "group-01");
    for i in 0..3 {
        visit(&mut a, &format!("v-{i:04}"), &format!("走访 {i}"), "group-01");
    }
    let mut parts = export(
        &a,
        &ExportOptions {
            part_size: Some(1),
            ..ExportOptions::default()
        },
    );
    assert!(parts.len() >= 3);
    let mid = parts[1].len() / 2;
    parts[1][mid] ^= 0x40;
    let mut landed = 0;
    for (i, p) in parts.iter().enumerate() {
        match bundle::import_bundle(&mut b.store, p, NOW) {
            Ok(r) => {
                assert_ne!(i, 1, "the tampered part was imported: {r:?}");
                landed += r.report.added;
            }
            Err(e) => {
                assert_eq!(i, 1);
                assert!(matches!(e, BundleFailure::Part(_)), "{e:?}");
                assert!(e.is_bad_input());
                let zh = e.zh();
                assert!(zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)), "{zh}");
            }
        }
    }
    assert_eq!(landed, parts.len() - 1);
    // A truncated part too.
    let cut = &parts[0][..parts[0].len() - 10];
    assert!(matches!(
        bundle::import_bundle(&mut b.store, cut, NOW),
        Err(BundleFailure::Part(_))
    ));
    // Not a bundle at all.
    assert!(matches!(
        bundle::import_bundle(&mut b.store, b"PK\x03\x04 a zip file", NOW),
        Err(BundleFailure::Part(BundleError::NotABundle))
    ));
}

/// A part made by a newer sanjin (a higher format number) is refused: update sanjin.
#[test]
fn issue12_newer_format_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = trust();
    let mut a = phone(&dir, &t, 1, "group-01");
    let mut b = phone(&dir, &t, 2, "group-01");
    visit(&mut a, "v-0001", "走访", "group-01");
    let mut part = export(&a, &ExportOptions::default()).remove(0);
    let newer = sanjin_sync::bundle::BUNDLE_FORMAT + 1;
    part[8..10].copy_from_slice(&newer.to_le_bytes());
    let e = bundle::import_bundle(&mut b.store, &part, NOW).unwrap_err();
    assert!(
        matches!(e, BundleFailure::Part(BundleError::Newer { found, .. }) if found == newer),
        "{e:?}"
    );
    assert!(e.zh().contains("升级"), "{}", e.zh());
    assert!(ids(&b.store).is_empty());
}

/// B edits A's record while claiming to be A (B's actor, B's key, A's name in the message):
/// C refuses that record, keeps its own copy as it was, and lands the rest of B's bundle.
#[test]
fn issue12_forged_change_refused_nothing_else_touched() {
    let dir = tempfile::tempdir().unwrap();
    let t = trust();
    let mut a = phone(&dir, &t, 1, "group-01");
    let mut b = phone(&dir, &t, 2, "group-01");
    let mut c = phone(&dir, &t, 3, "group-01");
    let v = visit(&mut a, "v-0001", "杨店镇座谈", "group-01");
    let from_a = export(&a, &ExportOptions::default()).remove(0);
    import(&mut b, &from_a);
    import(&mut c, &from_a);
    let own = visit(&mut b, "v-0002", "B 的走访", "group-01");
    // B writes as "member-0001 on device-01", with B's actor.
    let forged = Author::new("member-0001", "device-01", &[2; 16]).unwrap();
    b.store
        .update(&v, |d, _| {
            d.edit(
                &forged,
                T0 + 10,
                &[Edit::Set {
                    field: "summary".into(),
                    value: json!("（被篡改的内容）"),
                }],
            )
        })
        .unwrap();
    let c_before = heads(&c.store, &v);
    let r = import(&mut c, &export(&b, &ExportOptions::default()).remove(0));
    assert_eq!(outcome(&r, &v), Outcome::Refused, "{r:?}");
    let line = r.report.records.iter().find(|d| d.id == v).unwrap();
    assert!(!line.reason.is_empty() && !line.code.is_empty(), "{line:?}");
    assert_eq!(heads(&c.store, &v), c_before);
    assert_eq!(outcome(&r, &own), Outcome::Added);
    assert_eq!(title(&c.store, &own), "B 的走访");
}

/// A change relayed with a signature that does not hold (B relays A's record with A's
/// signature altered) is refused; a change of A's relayed with no signature at all too.
#[test]
fn issue12_wrong_signature_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = trust();
    let mut a = phone(&dir, &t, 1, "group-01");
    let b = phone(&dir, &t, 2, "group-01");
    let mut c = phone(&dir, &t, 3, "group-01");
    let v = visit(&mut a, "v-0001", "杨店镇座谈", "group-01");
    let changes = a.store.load(&v).unwrap().save_after(&[]);
    let hashes: Vec<ChangeHash> = split_changes(&changes).into_iter().map(|(h, _)| h).collect();
    let mut bad = a.store.sigs_for(&hashes).unwrap();
    bad[0].signature[0] ^= 1;
    let unsigned: Vec<ChangeSig> = Vec::new();
    for sigs in [bad, unsigned] {
        let payload = Payload {
            docs: vec![DocChanges {
                id: v.clone(),
                kind: "visit".into(),
                changes: changes.clone(),
            }],
            sigs,
            certs: vec![a.cert.clone()],
            ..Payload::default()
        };
        let g = &t.groups[0];
        let parts = sanjin_sync::bundle::export(
            payload,
            &b.key,
            &b.cert,
            Audience::Group {
                group: "group-01".into(),
                epoch: 1,
            },
            &[
                ("group:group-01:1".into(), g.1.public()),
                ("server".into(), t.server_box.public()),
            ],
            usize::MAX,
            NOW,
            &mut |buf| buf.fill(9),
        )
        .unwrap();
        let r = import(&mut c, &parts[0]);
        assert_eq!(outcome(&r, &v), Outcome::Refused, "{r:?}");
        assert!(!c.store.exists(&v).unwrap());
    }
    // Signed by A's key, the same bytes land.
    let good = ChangeSig::sign(&a.key, "device-01", SigKind::Changes, hashes.clone());
    let payload = Payload {
        docs: vec![DocChanges {
            id: v.clone(),
            kind: "visit".into(),
            changes,
        }],
        sigs: vec![good],
        certs: vec![a.cert.clone()],
        ..Payload::default()
    };
    let parts = sanjin_sync::bundle::export(
        payload,
        &b.key,
        &b.cert,
        Audience::Group {
            group: "group-01".into(),
            epoch: 1,
        },
        &[
            ("group:group-01:1".into(), t.groups[0].1.public()),
            ("server".into(), t.server_box.public()),
        ],
        usize::MAX,
        NOW,
        &mut |buf| buf.fill(9),
    )
    .unwrap();
    assert_eq!(outcome(&import(&mut c, &parts[0]), &v), Outcome::Added);
}

/// A revoked exporter's bundle is refused, once the revocation list reached the device — it
/// travels in bundles too.
#[test]
fn issue12_revoked_exporter_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = trust();
    let mut a = phone(&dir, &t, 1, "group-01");
    let mut b = phone(&dir, &t, 2, "group-01");
    let mut c = phone(&dir, &t, 3, "group-01");
    visit(&mut b, "v-0002", "B 的走访", "group-01");
    let from_b = export(&b, &ExportOptions::default()).remove(0);
    // A received the server's list revoking B (at A's last sync).
    assert!(a.store.put_revocations(&t.revoke(1, &[&b.cert], T0)).unwrap());
    visit(&mut a, "v-0001", "A 的走访", "group-01");
    // A's bundle carries the list to C.
    let r = import(&mut c, &export(&a, &ExportOptions::default()).remove(0));
    assert!(r.report.revocations, "{r:?}");
    let e = bundle::import_bundle(&mut c.store, &from_b, NOW).unwrap_err();
    assert!(
        matches!(e, BundleFailure::Part(BundleError::ExporterRevoked { .. })),
        "{e:?}"
    );
    assert!(!e.zh().is_empty());
    assert!(!c.store.exists("v-0002").unwrap());
    // An older list does not replace the newer one.
    assert!(!c.store.put_revocations(&t.revoke(0, &[], T0)).unwrap());
}

/// A record of another group (A took part in group 02's activity) travels as cargo sealed to
/// the server: B keeps it opaque, exports it again, and only the server can open it.
#[test]
fn issue12_cargo_opaque_and_carried_on() {
    let dir = tempfile::tempdir().unwrap();
    let t = trust();
    let mut a = phone(&dir, &t, 1, "group-01");
    let mut b = phone(&dir, &t, 2, "group-01");
    let mut c = phone(&dir, &t, 3, "group-01");
    let mut e = phone(&dir, &t, 5, "group-02");
    // E's group-02 visit, which A holds (A took part; it came with A's last sync).
    let other = visit(&mut e, "v-0202", "第二组的活动", "group-02");
    let bytes = e.store.load(&other).unwrap().save();
    a.store.apply_remote(&other, &bytes).unwrap();
    let hashes: Vec<ChangeHash> = split_changes(&e.store.load(&other).unwrap().save_after(&[]))
        .into_iter()
        .map(|(h, _)| h)
        .collect();
    for s in e.store.sigs_for(&hashes).unwrap() {
        a.store.put_sig(&s, &s.hashes).unwrap();
    }
    a.store.put_cert(&e.cert).unwrap();
    let own = visit(&mut a, "v-0001", "A 的走访", "group-01");

    let exported = bundle::export_bundle(&a.store, &ExportOptions::default(), NOW).unwrap();
    assert!(exported.docs.iter().any(|d| d.id == other && d.outside));
    assert_eq!(exported.cargo, 1);
    let r = import(&mut b, &exported.parts[0]);
    assert_eq!(r.report.cargo, 1, "{r:?}");
    assert!(b.store.exists(&own).unwrap());
    assert!(!b.store.exists(&other).unwrap(), "B cannot read group 02's record");
    let cargo = b.store.cargo().unwrap();
    assert_eq!(cargo.len(), 1);
    let words = "第二组的活动".as_bytes();
    assert!(!cargo[0].1.windows(words.len()).any(|w| w == words));
    // Not for B's group key.
    let b_secrets = b.store.box_secrets().unwrap();
    assert!(matches!(
        sanjin_sync::bundle::open(&cargo[0].1, &|id| b_secrets
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, s)| s.clone())),
        Err(BundleError::NotForUs)
    ));
    // B carries it on to C, the same bytes; importing again adds no second copy.
    let from_b = export(&b, &ExportOptions::default()).remove(0);
    let r = import(&mut c, &from_b);
    assert_eq!(r.report.cargo, 1, "{r:?}");
    assert_eq!(c.store.cargo().unwrap()[0].1, cargo[0].1);
    assert_eq!(import(&mut c, &from_b).report.cargo, 0);
    // The server opens it: E's record, E's signature.
    let (h, payload) = sanjin_sync::bundle::open(&cargo[0].1, &|id| {
        (id == "server").then(|| t.server_box.clone())
    })
    .unwrap();
    assert_eq!(h.audience, Audience::Server);
    assert_eq!(payload.docs.len(), 1);
    assert_eq!(payload.docs[0].id, other);
    assert!(payload.sigs.iter().any(|s| s.signer == "device-05"));
    // Delivered: not carried any more.
    let id = c.store.cargo().unwrap()[0].0;
    c.store.cargo_delivered(id).unwrap();
    assert!(c.store.cargo().unwrap().is_empty());
    assert_eq!(import(&mut c, &from_b).report.cargo, 0);
}

/// The server's receipt travels back through B: A's record shows 已送达 before A has signal.
#[test]
fn issue12_receipt_makes_record_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let t = trust();
    let mut a = phone(&dir, &t, 1, "group-01");
    let mut b = phone(&dir, &t, 2, "group-01");
    let v = visit(&mut a, "v-0001", "杨店镇座谈", "group-01");
    let w = visit(&mut a, "v-0002", "还没送出的走访", "group-01");
    assert!(!a.store.delivered(&v).unwrap());
    import(&mut b, &export(&a, &ExportOptions::default()).remove(0));
    // B syncs in town: the server holds v (receipt); w was edited on A after the bundle.
    a.store
        .update(&w, |d, by| {
            d.edit(
                by,
                T0 + 20,
                &[Edit::Set {
                    field: "summary".into(),
                    value: json!("补充"),
                }],
            )
        })
        .unwrap();
    let receipts = vec![
        t.receipt(&v, &heads(&b.store, &v), NOW),
        t.receipt(&w, &heads(&b.store, &w), NOW),
    ];
    assert_eq!(b.store.put_receipts(&receipts).unwrap(), 2);
    assert!(b.store.relayed_unreceipted().unwrap().is_empty());
    assert!(b.store.delivered(&v).unwrap());
    // Back at the village, B's bundle for A carries the receipts.
    let r = import(
        &mut a,
        &export(
            &b,
            &ExportOptions {
                for_member: None,
                group: Some("group-01".into()),
                ..ExportOptions::default()
            },
        )
        .remove(0),
    );
    assert_eq!(r.report.receipts, 2, "{r:?}");
    assert!(a.store.delivered(&v).unwrap(), "已送达");
    assert!(!a.store.delivered(&w).unwrap(), "A's later edit is not on the server yet");
    let outbox: Vec<String> = a.store.outbox().unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(outbox, vec![w.clone()]);
    // A receipt not signed by the server's key is not believed.
    let fake = TestTrust::new(99, &["group-01"], T0);
    let mut d = phone(&dir, &t, 4, "group-01");
    let y = visit(&mut d, "v-0004", "D 的走访", "group-01");
    let mut carrier = phone(&dir, &t, 6, "group-01");
    let bytes = d.store.load(&y).unwrap().save();
    carrier.store.apply_remote(&y, &bytes).unwrap();
    carrier
        .store
        .put_receipts(&[fake.receipt(&y, &heads(&d.store, &y), NOW)])
        .unwrap();
    let r = import(&mut d, &export(&carrier, &ExportOptions::default()).remove(0));
    assert_eq!(r.report.receipts, 0, "{r:?}");
    assert!(!d.store.delivered(&y).unwrap());
}

/// `--for MEMBER`: the member's group's records and those they take part in; a member this
/// device does not know is named in the error.
#[test]
fn issue12_for_member_and_since() {
    let dir = tempfile::tempdir().unwrap();
    let t = trust();
    let mut a = phone(&dir, &t, 1, "group-01");
    visit(&mut a, "v-0001", "走访", "group-01");
    let e = bundle::export_bundle(
        &a.store,
        &ExportOptions {
            for_member: Some("member-0009".into()),
            ..ExportOptions::default()
        },
        NOW,
    )
    .unwrap_err();
    assert!(matches!(e, BundleFailure::UnknownMember(_)), "{e:?}");
    assert!(e.zh().contains("member-0009"));
    // Everything saved before `since` is left out.
    let later = bundle::export_bundle(
        &a.store,
        &ExportOptions {
            since: Some(sanjin_store::now_ms() + 60_000),
            ..ExportOptions::default()
        },
        NOW,
    )
    .unwrap();
    assert!(later.docs.is_empty(), "{:?}", later.docs);
    // A device without the server's keys says to sync first.
    let identity = Identity {
        member: "member-0008".into(),
        device: "device-08".into(),
        actor: vec![8; 16],
    };
    let bare = Store::init(&dir.path().join("bare.sqlite"), &identity, Durability::Normal).unwrap();
    let e = bundle::export_bundle(&bare, &ExportOptions::default(), NOW).unwrap_err();
    assert!(e.zh().contains("同步") || e.zh().contains("注册"), "{}", e.zh());
}

/// An original waiting on A travels with `with_originals` and waits on B's blob outbox.
#[test]
fn issue12_originals_travel() {
    let dir = tempfile::tempdir().unwrap();
    let t = trust();
    let mut a = phone(&dir, &t, 1, "group-01");
    let mut b = phone(&dir, &t, 2, "group-01");
    let v = visit(&mut a, "v-0001", "走访", "group-01");
    let original = b"\xff\xd8 not really a jpeg but bytes of an original".to_vec();
    let hash: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&original)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let photo = PhotoRef {
        hash: hash.clone(),
        caption: "村口".into(),
        taken_at: None,
        gps: None,
        bytes: original.len() as u64,
        width: 1,
        height: 1,
        mime: "image/jpeg".into(),
    };
    a.store
        .attach_photo(&v, &photo, &testdata::thumbnail(3), &original)
        .unwrap();
    let without = export(&a, &ExportOptions::default()).remove(0);
    let with = export(
        &a,
        &ExportOptions {
            with_originals: true,
            ..ExportOptions::default()
        },
    )
    .remove(0);
    assert!(with.len() > without.len());
    import(&mut b, &without);
    assert!(b.store.pending_blobs().unwrap().is_empty());
    let r = import(&mut b, &with);
    assert_eq!(r.report.originals, 1, "{r:?}");
    assert_eq!(b.store.pending_blob_bytes(&hash).unwrap().unwrap(), original);
    assert_eq!(b.store.pending_blobs().unwrap()[0].record_id, v);
}
