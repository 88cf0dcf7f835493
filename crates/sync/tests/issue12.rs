//! Issue 12: bundles (sealed, signed, split into self-contained parts) and the relay's judge
//! (the server's push policy with facts from device certificates), driven with no IO: real
//! automerge records, real keys, bytes in memory.

use sanjin_core::domain::RecordData;
use sanjin_core::protocol::RefusalCode;
use sanjin_core::seal::BoxSecret;
use sanjin_core::sign::{
    ChangeSig, DeviceCert, DeviceKey, Receipt, Revocations, Revoked, SERVER_DEVICE, SigKind,
};
use sanjin_core::{Author, ChangeHash, Edit, RecordDoc, testdata};
use sanjin_sync::bundle::{
    self, Audience, BUNDLE_FORMAT, BundleError, DocChanges, Original, Payload, group_recipient,
};
use sanjin_sync::relay::{CertFacts, Judged, judge, revoked_by};
use sanjin_sync::server::Refused;

const T: i64 = 1_780_000_000_000;
const GROUP: &str = "group-01";

struct Dev {
    key: DeviceKey,
    cert: DeviceCert,
    author: Author,
}

fn server() -> DeviceKey {
    DeviceKey::from_seed([1; 32])
}

fn server_actor() -> Vec<u8> {
    vec![0xee; 16]
}

fn server_cert() -> DeviceCert {
    DeviceCert::server(&server(), &server_actor(), T - 10)
}

fn dev(n: u8, role: &str, group: Option<&str>) -> Dev {
    let key = DeviceKey::from_seed([n; 32]);
    let device = format!("dev-{n}");
    let member = format!("member-{n:04}");
    let actor = [n; 16];
    let cert = DeviceCert::issue(
        &server(),
        &device,
        &actor,
        &member,
        role,
        group,
        key.public(),
        T - 5,
    );
    Dev {
        key,
        cert,
        author: Author::new(&member, &device, &actor).unwrap(),
    }
}

fn a() -> Dev {
    dev(10, "member", Some(GROUP))
}
fn b() -> Dev {
    dev(11, "member", Some(GROUP))
}
fn c_other_group() -> Dev {
    dev(12, "member", Some("group-02"))
}

fn visit(id: &str, title: &str, by: &Author) -> RecordDoc {
    let mut v = testdata::visit();
    v.title = title.into();
    RecordDoc::create(id, &RecordData::Visit(v), by, T).unwrap()
}

fn set_title(doc: &mut RecordDoc, by: &Author, title: &str) {
    doc.edit(
        by,
        T + 1,
        &[Edit::Set {
            field: "title".into(),
            value: serde_json::json!(title),
        }],
    )
    .unwrap();
}

/// A signature by `key` as `signer` over every change of `doc` after `since` made by `actor`.
fn sign_changes(
    doc: &mut RecordDoc,
    since: &[ChangeHash],
    actor: &[u8],
    key: &DeviceKey,
    signer: &str,
) -> ChangeSig {
    let mut am = automerge::AutoCommit::load(&doc.save()).unwrap();
    let hashes: Vec<ChangeHash> = am
        .get_changes(since)
        .iter()
        .filter(|c| c.actor_id().to_bytes() == actor)
        .map(|c| c.hash())
        .collect();
    ChangeSig::sign(key, signer, SigKind::Changes, hashes)
}

fn facts(certs: Vec<DeviceCert>, revocations: Option<&Revocations>) -> CertFacts {
    CertFacts::new(&server().public(), certs, &revoked_by(revocations))
}

fn all_certs() -> Vec<DeviceCert> {
    vec![server_cert(), a().cert, b().cert, c_other_group().cert]
}

fn refused(j: Judged) -> Refused {
    match j {
        Judged::Refused(r) => r,
        other => panic!("not refused: {other:?}"),
    }
}

/// A's record, created and signed by A: (the document, its bytes, A's signature).
fn a_record(id: &str) -> (RecordDoc, Vec<u8>, ChangeSig) {
    let a = a();
    let mut doc = visit(id, "杨店镇座谈", &a.author);
    let sig = sign_changes(&mut doc, &[], &[10; 16], &a.key, "dev-10");
    let bytes = doc.save_after(&[]);
    (doc, bytes, sig)
}

// ---------------------------------------------------------------- relay judge

#[test]
fn issue12_relay_a_change_by_a_signed_by_a_lands_once() {
    let (_, bytes, sig) = a_record("rec-a");
    let mut f = facts(all_certs(), None);
    let Judged::Land {
        mut doc,
        new_changes,
        refusal,
    } = judge(
        &mut f,
        "rec-a",
        None,
        &bytes,
        std::slice::from_ref(&sig),
        T + 100,
    )
    else {
        panic!("not landed")
    };
    assert_eq!((new_changes, refusal), (1, None));
    let saved = doc.save();
    // Again, on top of what landed: nothing new.
    assert!(matches!(
        judge(&mut f, "rec-a", Some(&saved), &bytes, &[sig], T + 100),
        Judged::Held
    ));
    // Without the signature: refused as the server would.
    let r = refused(judge(&mut f, "rec-a", None, &bytes, &[], T + 100));
    assert_eq!(r.0, RefusalCode::BadSignature);
    // Without A's certificate: no known device for its actor.
    let mut f = facts(vec![server_cert(), b().cert], None);
    let (_, bytes, sig) = a_record("rec-a");
    let r = refused(judge(&mut f, "rec-a", None, &bytes, &[sig], T + 100));
    assert_eq!(r.0, RefusalCode::ForeignActor);
}

#[test]
fn issue12_relay_b_editing_as_a_with_bs_actor_is_a_foreign_actor() {
    let (mut doc, bytes, sig_a) = a_record("rec-a");
    let heads = doc.heads();
    let b = b();
    // B's actor, a message claiming A's member and device, signed with B's key as B.
    let forged = Author::new("member-0010", "dev-10", &[11; 16]).unwrap();
    set_title(&mut doc, &forged, "B 改的");
    let sig_b = sign_changes(&mut doc, &heads, &[11; 16], &b.key, "dev-11");
    let edit = doc.save_after(&heads);
    let mut f = facts(all_certs(), None);
    let Judged::Land { doc: mut held, .. } = judge(
        &mut f,
        "rec-a",
        None,
        &bytes,
        std::slice::from_ref(&sig_a),
        T + 100,
    ) else {
        panic!()
    };
    let r = refused(judge(
        &mut f,
        "rec-a",
        Some(&held.save()),
        &edit,
        &[sig_a, sig_b],
        T + 100,
    ));
    assert_eq!(r.0, RefusalCode::ForeignActor, "{r:?}");
    assert!(
        r.2.contains("names member member-0010 on device dev-10"),
        "{}",
        r.2
    );
}

#[test]
fn issue12_relay_as_actor_signed_with_bs_key_is_a_bad_signature() {
    let (mut doc, bytes, sig_a) = a_record("rec-a");
    let heads = doc.heads();
    let a = a();
    let b = b();
    set_title(&mut doc, &a.author, "冒名");
    let edit = doc.save_after(&heads);
    // B's key, claiming to be A's signature; and B's key under B's own name.
    let claims_a = sign_changes(&mut doc, &heads, &[10; 16], &b.key, "dev-10");
    let as_b = sign_changes(&mut doc, &heads, &[10; 16], &b.key, "dev-11");
    let mut f = facts(all_certs(), None);
    let Judged::Land { doc: mut held, .. } =
        judge(&mut f, "rec-a", None, &bytes, &[sig_a], T + 100)
    else {
        panic!()
    };
    let held = held.save();
    for sigs in [vec![claims_a], vec![as_b]] {
        let r = refused(judge(&mut f, "rec-a", Some(&held), &edit, &sigs, T + 100));
        assert_eq!(r.0, RefusalCode::BadSignature, "{r:?}");
    }
    // The same edit signed by A's own key lands.
    let good = sign_changes(&mut doc, &heads, &[10; 16], &a.key, "dev-10");
    assert!(matches!(
        judge(&mut f, "rec-a", Some(&held), &edit, &[good], T + 100),
        Judged::Land {
            new_changes: 1,
            refusal: None,
            ..
        }
    ));
}

#[test]
fn issue12_relay_a_revoked_authors_change_is_refused() {
    let (_, bytes, sig) = a_record("rec-a");
    let list = Revocations::sign(
        &server(),
        1,
        T,
        vec![Revoked {
            device: "dev-10".into(),
            actor: vec![10; 16],
            revoked_at: T,
        }],
    );
    let mut f = facts(all_certs(), Some(&list));
    let r = refused(judge(&mut f, "rec-a", None, &bytes, &[sig], T + 100));
    assert_eq!(r.0, RefusalCode::Revoked);
}

#[test]
fn issue12_relay_a_member_writing_another_groups_record_is_refused() {
    let c = c_other_group();
    // C creates a record of group-01.
    let mut doc = visit("rec-c", "别组的记录", &c.author);
    let sig = sign_changes(&mut doc, &[], &[12; 16], &c.key, "dev-12");
    let mut f = facts(all_certs(), None);
    let r = refused(judge(
        &mut f,
        "rec-c",
        None,
        &doc.save_after(&[]),
        &[sig],
        T + 100,
    ));
    assert_eq!(r.0, RefusalCode::Forbidden, "{r:?}");
    // C edits A's record.
    let (mut doc, bytes, sig_a) = a_record("rec-a");
    let heads = doc.heads();
    set_title(&mut doc, &c.author, "别组改");
    let sig_c = sign_changes(&mut doc, &heads, &[12; 16], &c.key, "dev-12");
    let Judged::Land { doc: mut held, .. } =
        judge(&mut f, "rec-a", None, &bytes, &[sig_a], T + 100)
    else {
        panic!()
    };
    let r = refused(judge(
        &mut f,
        "rec-a",
        Some(&held.save()),
        &doc.save_after(&heads),
        &[sig_c],
        T + 100,
    ));
    assert_eq!(r.0, RefusalCode::Forbidden, "{r:?}");
}

#[test]
fn issue12_relay_keeps_the_good_changes_and_refuses_the_forged_one() {
    let (mut doc, bytes, sig_a) = a_record("rec-a");
    let heads = doc.heads();
    let a = a();
    let b = b();
    let mut other = RecordDoc::load(&doc.save()).unwrap();
    set_title(&mut doc, &a.author, "A 改");
    let sig_a2 = sign_changes(&mut doc, &heads, &[10; 16], &a.key, "dev-10");
    // B, concurrently, edits as A with its own actor.
    let forged = Author::new("member-0010", "dev-10", &[11; 16]).unwrap();
    other
        .edit(
            &forged,
            T + 2,
            &[Edit::Set {
                field: "summary".into(),
                value: serde_json::json!("伪造"),
            }],
        )
        .unwrap();
    let sig_b = sign_changes(&mut other, &heads, &[11; 16], &b.key, "dev-11");
    doc.merge(&mut other).unwrap();
    let mut f = facts(all_certs(), None);
    let Judged::Land { doc: mut held, .. } =
        judge(&mut f, "rec-a", None, &bytes, &[sig_a], T + 100)
    else {
        panic!()
    };
    let Judged::Land {
        doc: mut landed,
        new_changes,
        refusal: Some(r),
    } = judge(
        &mut f,
        "rec-a",
        Some(&held.save()),
        &doc.save_after(&heads),
        &[sig_a2, sig_b],
        T + 100,
    )
    else {
        panic!("not a partial landing")
    };
    assert_eq!(new_changes, 1);
    assert_eq!(r.0, RefusalCode::ForeignActor);
    let view = landed.view().unwrap();
    assert_eq!(
        view.data,
        {
            let mut v = testdata::visit();
            v.title = "A 改".into();
            RecordData::Visit(v)
        },
        "A's edit landed, B's forged one did not"
    );
}

#[test]
fn issue12_relay_takes_the_servers_own_signed_changes_as_held() {
    // A console resolution: the server's actor, a message naming the staff member.
    let (mut doc, bytes, sig_a) = a_record("rec-a");
    let heads = doc.heads();
    let staff = Author::new("staff-01", SERVER_DEVICE, &server_actor()).unwrap();
    set_title(&mut doc, &staff, "机关改");
    let by_server = sign_changes(&mut doc, &heads, &server_actor(), &server(), SERVER_DEVICE);
    let all = doc.save_after(&[]);
    let mut f = facts(all_certs(), None);
    // A's creation and the server's change, to a device that has neither.
    let Judged::Land {
        new_changes,
        refusal,
        ..
    } = judge(
        &mut f,
        "rec-a",
        None,
        &all,
        &[sig_a.clone(), by_server.clone()],
        T + 100,
    )
    else {
        panic!("not landed")
    };
    assert_eq!((new_changes, refusal), (2, None));
    // Even without A's signature: the server's signature covers what its change depends on.
    assert!(matches!(
        judge(
            &mut f,
            "rec-a",
            None,
            &all,
            std::slice::from_ref(&by_server),
            T + 100
        ),
        Judged::Land {
            new_changes: 2,
            refusal: None,
            ..
        }
    ));
    // The server's signature is enough: its certificate need not travel.
    let mut without = facts(vec![a().cert], None);
    assert!(matches!(
        judge(
            &mut without,
            "rec-a",
            None,
            &all,
            std::slice::from_ref(&by_server),
            T + 100
        ),
        Judged::Land {
            new_changes: 2,
            refusal: None,
            ..
        }
    ));
    // Signed by anyone else, the server's actor is no author a device may relay.
    let fake = sign_changes(&mut doc, &heads, &server_actor(), &a().key, SERVER_DEVICE);
    let Judged::Land {
        new_changes: 1,
        refusal: Some(r),
        ..
    } = judge(&mut f, "rec-a", None, &all, &[sig_a, fake], T + 100)
    else {
        panic!("A's record lands alone")
    };
    assert_eq!(r.0, RefusalCode::ForeignActor, "{r:?}");
    let _ = bytes;
}

// ---------------------------------------------------------------- bundles

fn group_key() -> BoxSecret {
    BoxSecret::from_seed([40; 32])
}
fn server_box() -> BoxSecret {
    BoxSecret::from_seed([41; 32])
}
fn recipients() -> Vec<(String, [u8; 32])> {
    vec![
        (group_recipient(GROUP, 1), group_key().public()),
        (bundle::SERVER_RECIPIENT.into(), server_box().public()),
    ]
}
fn audience() -> Audience {
    Audience::Group {
        group: GROUP.into(),
        epoch: 1,
    }
}

fn fill(seed: u8) -> impl FnMut(&mut [u8]) {
    let mut n: u32 = 0;
    move |buf: &mut [u8]| {
        for x in buf.iter_mut() {
            n = n
                .wrapping_mul(1_103_515_245)
                .wrapping_add(12_345 + seed as u32);
            *x = (n >> 16) as u8;
        }
    }
}

fn group_keys(id: &str) -> Option<BoxSecret> {
    (id == group_recipient(GROUP, 1)).then(group_key)
}

/// `n` records of A, each with its own signature, and B's certificate as exporter.
fn payload(n: usize) -> Payload {
    let a = a();
    let mut p = Payload {
        certs: vec![a.cert.clone(), server_cert()],
        ..Payload::default()
    };
    for i in 0..n {
        let id = format!("rec-{i:03}");
        let mut doc = visit(&id, &format!("第{i}次走访"), &a.author);
        p.sigs
            .push(sign_changes(&mut doc, &[], &[10; 16], &a.key, "dev-10"));
        p.docs.push(DocChanges {
            id,
            kind: "visit".into(),
            changes: doc.save_after(&[]),
        });
    }
    p
}

fn export(p: Payload, limit: usize) -> Vec<Vec<u8>> {
    let b = b();
    bundle::export(
        p,
        &b.key,
        &b.cert,
        audience(),
        &recipients(),
        limit,
        T,
        &mut fill(3),
    )
    .unwrap()
}

fn not_revoked(_: &DeviceCert) -> bool {
    false
}

#[test]
fn issue12_bundle_round_trip_for_the_group_and_the_server() {
    let mut p = payload(2);
    p.revocations = Some(Revocations::sign(&server(), 4, T, vec![]));
    p.receipts = vec![Receipt::sign(&server(), "rec-000", &[], T)];
    p.originals = vec![Original {
        hash: "ab".repeat(32),
        mime: "image/jpeg".into(),
        bytes: vec![0xff, 0xd8, 0xff, 1, 2, 3],
    }];
    p.cargo = vec![b"a part sealed to the server".to_vec()];
    let parts = export(p.clone(), 1 << 20);
    assert_eq!(parts.len(), 1);
    let part = &parts[0];
    // The residents' words do not show in the file.
    assert!(!part.windows("走访".len()).any(|w| w == "走访".as_bytes()));
    let header = bundle::verify(part, &server().public(), &not_revoked).unwrap();
    assert_eq!((header.part, header.parts), (0, 1));
    assert_eq!(header.exporter, b().cert);
    assert_eq!(header.audience, audience());
    for key in [
        &group_keys as &dyn Fn(&str) -> Option<BoxSecret>,
        &|id: &str| (id == "server").then(server_box),
    ] {
        let (h, back) = bundle::open(part, key).unwrap();
        assert_eq!(h, header);
        assert_eq!(back.docs, p.docs);
        assert_eq!(back.sigs, p.sigs);
        assert_eq!(
            back.certs,
            vec![a().cert],
            "only the certificates the changes need"
        );
        assert_eq!(back.revocations, p.revocations);
        assert_eq!(back.receipts, p.receipts);
        assert_eq!(back.originals, p.originals);
        assert_eq!(back.cargo, p.cargo);
    }
    // Another group's key, an older epoch: not for us.
    let e = bundle::open(part, &|id: &str| {
        (id == group_recipient("group-02", 1) || id == group_recipient(GROUP, 0))
            .then(|| BoxSecret::from_seed([9; 32]))
    })
    .unwrap_err();
    assert_eq!(e, BundleError::NotForUs);
    assert!(e.zh().contains("不是发给本机"));
    // A key under the right id that is not the group's: not opened either.
    let e = bundle::open(part, &|_: &str| Some(BoxSecret::from_seed([9; 32]))).unwrap_err();
    assert_eq!(e, BundleError::NotForUs);
}

#[test]
fn issue12_bundle_every_flipped_byte_is_refused_never_a_panic() {
    let parts = export(payload(1), 1 << 20);
    let part = &parts[0];
    assert!(part.len() < 4096, "a small part: {} bytes", part.len());
    for i in 0..part.len() {
        let mut b = part.clone();
        b[i] ^= 0x20;
        let v = bundle::verify(&b, &server().public(), &not_revoked);
        let o = bundle::open(&b, &group_keys);
        assert!(v.is_err(), "byte {i} flipped: verify accepts");
        assert!(o.is_err(), "byte {i} flipped: open accepts");
        assert!(!v.unwrap_err().zh().is_empty());
    }
}

#[test]
fn issue12_bundle_truncated_parts_are_refused() {
    let parts = export(payload(1), 1 << 20);
    let part = &parts[0];
    for n in 0..part.len() {
        let cut = &part[..n];
        let e = bundle::verify(cut, &server().public(), &not_revoked).unwrap_err();
        assert!(bundle::open(cut, &group_keys).is_err());
        if n >= 1 {
            assert_eq!(e, BundleError::Truncated, "cut at {n}");
        }
    }
    assert!(
        BundleError::Truncated.zh().contains("重新"),
        "{}",
        BundleError::Truncated.zh()
    );
    // More bytes after the signature: damaged, not silently ignored.
    let mut longer = part.clone();
    longer.push(0);
    assert!(matches!(
        bundle::verify(&longer, &server().public(), &not_revoked),
        Err(BundleError::Damaged(_))
    ));
    assert_eq!(
        bundle::verify(b"PK\x03\x04 a zip file", &server().public(), &not_revoked),
        Err(BundleError::NotABundle)
    );
}

#[test]
fn issue12_bundle_a_newer_format_asks_to_upgrade() {
    let parts = export(payload(1), 1 << 20);
    let mut newer = parts[0].clone();
    newer[8..10].copy_from_slice(&(BUNDLE_FORMAT + 1).to_le_bytes());
    let e = bundle::verify(&newer, &server().public(), &not_revoked).unwrap_err();
    assert_eq!(
        e,
        BundleError::Newer {
            found: BUNDLE_FORMAT + 1,
            supported: BUNDLE_FORMAT
        }
    );
    assert!(
        e.zh().contains("请升级三进到最新版本后再导入"),
        "{}",
        e.zh()
    );
    assert_eq!(bundle::open(&newer, &group_keys).unwrap_err(), e);
}

#[test]
fn issue12_bundle_a_tampered_or_foreign_exporter_certificate_is_refused() {
    let b = b();
    // The exporter promotes itself to leader and signs the part with its own key: the
    // certificate no longer holds for the server's key.
    let mut promoted = b.cert.clone();
    promoted.role = "leader".into();
    let forged = bundle::export(
        payload(1),
        &b.key,
        &promoted,
        audience(),
        &recipients(),
        1 << 20,
        T,
        &mut fill(5),
    )
    .unwrap();
    let e = bundle::verify(&forged[0], &server().public(), &not_revoked).unwrap_err();
    assert_eq!(e, BundleError::CertNotByServer);
    assert!(e.zh().contains("伪造"));
    // A certificate by another "server".
    let rogue = DeviceKey::from_seed([66; 32]);
    let cert = DeviceCert::issue(
        &rogue,
        "dev-11",
        &[11; 16],
        "member-0011",
        "member",
        Some(GROUP),
        b.key.public(),
        T,
    );
    let forged = bundle::export(
        payload(1),
        &b.key,
        &cert,
        audience(),
        &recipients(),
        1 << 20,
        T,
        &mut fill(5),
    )
    .unwrap();
    assert_eq!(
        bundle::verify(&forged[0], &server().public(), &not_revoked),
        Err(BundleError::CertNotByServer)
    );
    // A genuine certificate of B, but the part signed by another key.
    let other = DeviceKey::from_seed([67; 32]);
    let forged = bundle::export(
        payload(1),
        &other,
        &b.cert,
        audience(),
        &recipients(),
        1 << 20,
        T,
        &mut fill(5),
    )
    .unwrap();
    assert_eq!(
        bundle::verify(&forged[0], &server().public(), &not_revoked),
        Err(BundleError::BadSignature)
    );
    assert_eq!(
        bundle::open(&forged[0], &group_keys).unwrap_err(),
        BundleError::BadSignature
    );
}

#[test]
fn issue12_bundle_from_a_revoked_exporter_is_refused() {
    let parts = export(payload(1), 1 << 20);
    let list = Revocations::sign(
        &server(),
        2,
        T,
        vec![Revoked {
            device: "dev-11".into(),
            actor: vec![11; 16],
            revoked_at: T,
        }],
    );
    let e = bundle::verify(&parts[0], &server().public(), &revoked_by(Some(&list))).unwrap_err();
    assert_eq!(
        e,
        BundleError::ExporterRevoked {
            device: "dev-11".into()
        }
    );
    assert!(e.zh().contains("dev-11") && e.zh().contains("停用"));
}

#[test]
fn issue12_bundle_split_under_a_limit_each_part_opens_and_judges_alone() {
    let p = payload(12);
    let whole: usize = export(p.clone(), usize::MAX).iter().map(Vec::len).sum();
    let limit = 3000;
    let parts = export(p.clone(), limit);
    assert!(parts.len() > 2, "{} parts", parts.len());
    let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
    assert!(
        sizes.iter().all(|&n| n <= limit),
        "{sizes:?} (whole: {whole})"
    );
    let mut ids = Vec::new();
    let mut bundle_ids = std::collections::HashSet::new();
    // Opened in reverse order, each part alone: every document judged with only that part's
    // signatures and certificates lands.
    for (i, part) in parts.iter().enumerate().rev() {
        let h = bundle::verify(part, &server().public(), &not_revoked).unwrap();
        assert_eq!((h.part as usize, h.parts as usize), (i, parts.len()));
        bundle_ids.insert(h.bundle_id);
        let (_, got) = bundle::open(part, &group_keys).unwrap();
        assert!(!got.docs.is_empty());
        let mut f = facts(got.certs.clone(), got.revocations.as_ref());
        for d in &got.docs {
            let j = judge(&mut f, &d.id, None, &d.changes, &got.sigs, T + 100);
            assert!(
                matches!(j, Judged::Land { refusal: None, .. }),
                "{}: {j:?}",
                d.id
            );
            ids.push(d.id.clone());
        }
    }
    assert_eq!(bundle_ids.len(), 1);
    ids.sort();
    assert_eq!(ids, p.docs.iter().map(|d| d.id.clone()).collect::<Vec<_>>());
    // A record larger than the limit gets a part of its own.
    let mut big = payload(2);
    big.originals.push(Original {
        hash: "cd".repeat(32),
        mime: "image/jpeg".into(),
        bytes: (0..20_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect(),
    });
    let parts = export(big, 8000);
    assert_eq!(parts.len(), 2);
    let (_, first) = bundle::open(&parts[0], &group_keys).unwrap();
    let (_, second) = bundle::open(&parts[1], &group_keys).unwrap();
    assert_eq!((first.docs.len(), first.originals.len()), (2, 0));
    assert_eq!((second.docs.len(), second.originals.len()), (0, 1));
    assert!(second.certs.is_empty() && second.sigs.is_empty());
}

#[test]
fn issue12_bundle_a_decompression_bomb_or_garbage_payload_is_refused() {
    let b = b();
    let header = bundle::Header {
        bundle_id: [7; 16],
        part: 0,
        parts: 1,
        created_at: T,
        exporter: b.cert.clone(),
        audience: audience(),
    };
    // A valid part whose payload lists a thousand documents it does not hold.
    let part = bundle::seal_part(
        &header,
        &Payload::default(),
        &b.key,
        &recipients(),
        &mut fill(1),
    )
    .unwrap();
    let (_, p) = bundle::open(&part, &group_keys).unwrap();
    assert_eq!(p, Payload::default());
    // Sealed garbage with a valid signature: damaged, no panic.
    let sealed = sanjin_core::seal::seal(
        b"\x28\xb5\x2f\xfd garbage",
        &header.encode(),
        &recipients(),
        &mut fill(2),
    )
    .unwrap()
    .encode();
    let forged = frame(&header, &sealed, &b.key);
    assert!(matches!(
        bundle::open(&forged, &group_keys),
        Err(BundleError::Damaged(_))
    ));
    // 16 MiB of zeros compressed to a few hundred bytes: refused at the ratio bound.
    let zeros = zstd::bulk::compress(&vec![0u8; 16 << 20], 3).unwrap();
    let sealed = sanjin_core::seal::seal(&zeros, &header.encode(), &recipients(), &mut fill(3))
        .unwrap()
        .encode();
    let bomb = frame(&header, &sealed, &b.key);
    bundle::verify(&bomb, &server().public(), &not_revoked).unwrap();
    assert_eq!(bundle::open(&bomb, &group_keys), Err(BundleError::TooLarge));
    // A payload counting more documents than it has bytes.
    let mut lie = Vec::new();
    lie.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    let z = zstd::bulk::compress(&lie, 3).unwrap();
    let sealed = sanjin_core::seal::seal(&z, &header.encode(), &recipients(), &mut fill(4))
        .unwrap()
        .encode();
    assert!(matches!(
        bundle::open(&frame(&header, &sealed, &b.key), &group_keys),
        Err(BundleError::Damaged(_))
    ));
}

/// A part framed and signed by hand around any sealed body.
fn frame(header: &bundle::Header, sealed: &[u8], key: &DeviceKey) -> Vec<u8> {
    let head = header.encode();
    let mut out = bundle::MAGIC.to_vec();
    out.extend_from_slice(&BUNDLE_FORMAT.to_le_bytes());
    out.extend_from_slice(&(head.len() as u32).to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
    out.extend_from_slice(sealed);
    let sig = key.sign_context("sanjin-bundle-v1", &out);
    out.extend_from_slice(&sig);
    out
}

#[test]
fn issue12_bundle_one_signature_over_many_records_travels_whole_with_each_part() {
    // As a push signs: one signature by A over all of its changes in every record.
    let a = a();
    let mut p = payload(10);
    let hashes: Vec<ChangeHash> = p
        .docs
        .iter()
        .flat_map(|d| sanjin_core::sign::split_changes(&d.changes))
        .map(|(h, _)| h)
        .collect();
    p.sigs = vec![ChangeSig::sign(&a.key, "dev-10", SigKind::Changes, hashes)];
    let parts = export(p, 3000);
    assert!(parts.len() > 2, "{} parts", parts.len());
    for part in parts.iter().rev() {
        assert!(part.len() <= 3000, "{}", part.len());
        let (_, got) = bundle::open(part, &group_keys).unwrap();
        assert_eq!(got.sigs.len(), 1);
        assert!(
            got.sigs[0].verify(&a.key.public()),
            "the signature arrives whole"
        );
        let mut f = facts(got.certs.clone(), None);
        for d in &got.docs {
            assert!(matches!(
                judge(&mut f, &d.id, None, &d.changes, &got.sigs, T + 100),
                Judged::Land { refusal: None, .. }
            ));
        }
    }
}
