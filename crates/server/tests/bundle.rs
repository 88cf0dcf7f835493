//! Issue 12 on the server: its box keys and signed statements (`POST /v1/trust`), and bundle
//! parts imported (`POST /v1/bundle`, the same function as `sanjin admin import-bundle`)
//! through the push policy of a sync push — attributed to their authors, forged changes
//! refused with record, field and reason, a revoked exporter's and a tampered part refused,
//! cargo imported, and importing twice changing nothing.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{Device, Harness};
use sanjin_core::sign::{
    ChangeSig, DeviceCert, KeyDirectory, Receipt, Revocations, SigKind, split_changes,
};
use sanjin_core::Edit;
use sanjin_sync::bundle::{self, Audience, DocChanges, Payload};
use serde_json::{Value, json};

fn cert_of(dev: &Device) -> DeviceCert {
    DeviceCert::decode(&hex::decode(dev.creds.cert.as_ref().unwrap()).unwrap()).unwrap()
}

fn fill(b: &mut [u8]) {
    getrandom::fill(b).unwrap();
}

async fn trust(h: &Harness, dev: &Device, ids: &[&str]) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/trust")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", dev.bearer()))
        .body(Body::from(
            serde_json::to_vec(&json!({ "receipts_for": ids })).unwrap(),
        ))
        .unwrap();
    let r = h.call(req).await;
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

async fn upload(h: &Harness, dev: &Device, part: &[u8]) -> Value {
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/bundle")
        .header("content-type", sanjin_server::BUNDLE_CONTENT_TYPE)
        .header("authorization", format!("Bearer {}", dev.bearer()))
        .body(Body::from(part.to_vec()))
        .unwrap();
    let r = h.call(req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

fn decode_hex<T>(v: &Value, f: impl FnOnce(&[u8]) -> T) -> T {
    f(&hex::decode(v.as_str().unwrap()).unwrap())
}

/// The server's public signing key.
async fn server_public(h: &Harness) -> [u8; 32] {
    h.data(|d| d.server_cert().public_key).await
}

/// The recipients a group bundle is sealed to, from the signed directory.
async fn recipients(h: &Harness, group: &str) -> (u32, Vec<(String, [u8; 32])>) {
    let g = group.to_string();
    let kd = h.data(|d| d.key_directory().unwrap()).await;
    let k = kd.group(&g).unwrap().clone();
    (
        k.epoch,
        vec![
            (sanjin_server::group_recipient(&g, k.epoch), k.public),
            (sanjin_server::SERVER_RECIPIENT.into(), kd.server_box),
        ],
    )
}

/// A payload of whole documents from `dev`'s store, with the signatures a device sends.
fn payload(dev: &Device, ids: &[&str]) -> Payload {
    let mut docs = Vec::new();
    for id in ids {
        let mut doc = dev.store.load(id).unwrap();
        docs.push(DocChanges {
            id: id.to_string(),
            kind: doc.kind().code().to_string(),
            changes: doc.save_after(&[]),
        });
    }
    let sigs = dev.sigs_for(docs.iter().map(|d| d.changes.as_slice()));
    Payload {
        docs,
        sigs,
        certs: vec![cert_of(dev)],
        ..Payload::default()
    }
}

async fn export(h: &Harness, dev: &Device, p: Payload, part_limit: usize) -> Vec<Vec<u8>> {
    let (epoch, rcpt) = recipients(h, "group-01").await;
    bundle::export(
        p,
        dev.store.signing_key().unwrap(),
        &cert_of(dev),
        Audience::Group {
            group: "group-01".into(),
            epoch,
        },
        &rcpt,
        part_limit,
        common::now(),
        &mut fill,
    )
    .unwrap()
}

fn outcomes(report: &Value) -> Vec<(String, String)> {
    report["docs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["doc_id"].as_str().unwrap().to_string(),
                d["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn log_entries(h: &Harness, id: &str) -> i64 {
    let id = id.to_string();
    h.data(move |d| {
        rusqlite::Connection::open(d.dir().join(sanjin_server::DB_FILE))
            .unwrap()
            .query_row(
                "SELECT COUNT(*) FROM change_log WHERE doc_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
    })
    .await
}

#[tokio::test]
async fn issue12_trust_gives_each_role_its_secrets_receipts_in_scope_and_a_revocation_rotates_the_group()
 {
    let h = Harness::new();
    let members = common::members_of("group-01");
    let mut a = h.device(&members[0]).await;
    let b = h.device(&members[1]).await;
    let other = h.device(&common::members_of("group-02")[0]).await;
    let office = h.device("office-01").await;
    let public = server_public(&h).await;

    // A member gets its group's secret, matching the signed directory.
    let (status, t) = trust(&h, &b, &[]).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    let kd = decode_hex(&t["key_directory"], |b| KeyDirectory::decode(b).unwrap());
    kd.verify(&public).unwrap();
    let g1 = kd.group("group-01").unwrap().clone();
    assert_eq!(g1.epoch, 1);
    assert!(kd.group("group-02").is_some());
    let secrets = t["group_secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 1, "only its own group's: {t}");
    assert_eq!(secrets[0]["group"], "group-01");
    let s = sanjin_core::seal::BoxSecret::from_hex(secrets[0]["secret"].as_str().unwrap()).unwrap();
    assert_eq!(s.public(), g1.public);
    let rv = decode_hex(&t["revocations"], |b| Revocations::decode(b).unwrap());
    rv.verify(&public).unwrap();
    assert_eq!((rv.seq, rv.devices.len()), (0, 0));
    // Office devices get every group's.
    let (_, t) = trust(&h, &office, &[]).await;
    let groups: std::collections::BTreeSet<&str> = t["group_secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["group"].as_str().unwrap())
        .collect();
    assert!(groups.contains("group-01") && groups.contains("group-02"), "{groups:?}");

    // Receipts: only what the caller may read and the server holds, at the server's heads.
    let v = a.new_visit("group-01");
    h.sync_all(&mut a, 1 << 20).await;
    let (_, t) = trust(&h, &b, &[&v, "no-such-record", "../x"]).await;
    let receipts = t["receipts"].as_array().unwrap();
    assert_eq!(receipts.len(), 1, "{t}");
    let r = decode_hex(&receipts[0], |b| Receipt::decode(b).unwrap());
    r.verify(&public).unwrap();
    assert_eq!(r.doc_id, v);
    let mut heads = a.store.load(&v).unwrap().heads();
    heads.sort();
    assert_eq!(r.heads, heads);
    let (_, t) = trust(&h, &other, &[&v]).await;
    assert!(
        t["receipts"].as_array().unwrap().is_empty(),
        "another group's record gets no receipt: {t}"
    );
    let too_many: Vec<String> = (0..1001).map(|i| format!("r-{i}")).collect();
    let refs: Vec<&str> = too_many.iter().map(String::as_str).collect();
    assert_eq!(trust(&h, &b, &refs).await.0, StatusCode::BAD_REQUEST);
    // Without credentials, nothing.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/trust")
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(h.call(req).await.status, StatusCode::UNAUTHORIZED);

    // Revoking a member's device: the list's seq goes up, group-01 starts epoch 2, group-02
    // keeps its key; the revoked device gets nothing more.
    let dev_a = a.creds.device_id.clone();
    h.data(move |d| d.revoke(&dev_a).unwrap()).await;
    let (_, t) = trust(&h, &b, &[]).await;
    let kd2 = decode_hex(&t["key_directory"], |b| KeyDirectory::decode(b).unwrap());
    assert_eq!(kd2.group("group-01").unwrap().epoch, 2);
    assert_ne!(kd2.group("group-01").unwrap().public, g1.public);
    assert_eq!(kd2.group("group-02"), kd.group("group-02"));
    let epochs: Vec<u64> = t["group_secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, [1, 2], "old epochs stay readable for old bundles");
    let rv = decode_hex(&t["revocations"], |b| Revocations::decode(b).unwrap());
    assert_eq!(rv.seq, 1);
    assert!(rv.device_revoked(&a.creds.device_id));
    assert_eq!(trust(&h, &a, &[]).await.0, StatusCode::UNAUTHORIZED);
    // Revoking again changes nothing.
    let dev_a = a.creds.device_id.clone();
    h.data(move |d| d.revoke(&dev_a).unwrap()).await;
    let (_, t) = trust(&h, &b, &[]).await;
    let rv = decode_hex(&t["revocations"], |b| Revocations::decode(b).unwrap());
    assert_eq!(rv.seq, 1);
    // An office device's revocation rotates every group.
    let dev_o = office.creds.device_id.clone();
    h.data(move |d| d.revoke(&dev_o).unwrap()).await;
    let (_, t) = trust(&h, &b, &[]).await;
    let kd3 = decode_hex(&t["key_directory"], |b| KeyDirectory::decode(b).unwrap());
    assert_eq!(kd3.group("group-01").unwrap().epoch, 3);
    assert_eq!(kd3.group("group-02").unwrap().epoch, 2);
    let rv = decode_hex(&t["revocations"], |b| Revocations::decode(b).unwrap());
    assert_eq!(rv.seq, 2);
}

#[tokio::test]
async fn issue12_a_part_lands_attributed_to_its_author_once_and_importing_again_changes_nothing()
 {
    let h = Harness::new();
    let members = common::members_of("group-01");
    let mut a = h.device(&members[0]).await;
    let b = h.device(&members[1]).await;
    let v1 = a.new_visit("group-01");
    let v2 = a.new_visit("group-01");
    let parts = export(&h, &a, payload(&a, &[&v1, &v2]), 1 << 20).await;
    assert_eq!(parts.len(), 1);
    // B carries A's part; A never connected since it recorded.
    let report = upload(&h, &b, &parts[0]).await;
    assert!(report["refused"].is_null(), "{report}");
    let mut got = outcomes(&report);
    got.sort();
    let mut want = vec![(v1.clone(), "landed".into()), (v2.clone(), "landed".into())];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(report["exporter_device"], a.creds.device_id.as_str());
    assert_eq!(report["receipts"].as_array().unwrap().len(), 2);
    // On the server: once, attributed to A (member and device), A's signature kept.
    assert_eq!(log_entries(&h, &v1).await, 1);
    let (a_member, a_device) = (a.member().to_string(), a.creds.device_id.clone());
    let id = v1.clone();
    let (history, signers) = h
        .data(move |d| {
            let mut doc = d.store().load(&id).unwrap();
            let hist = doc.history();
            let hashes: Vec<_> = doc.changes().iter().map(|c| c.hash()).collect();
            let signers: Vec<String> = d
                .store()
                .sigs_for(&hashes)
                .unwrap()
                .into_iter()
                .map(|s| s.signer)
                .collect();
            (hist, signers)
        })
        .await;
    assert!(!history.is_empty());
    for e in &history {
        assert_eq!((e.member.as_str(), e.device.as_str()), (a_member.as_str(), a_device.as_str()));
    }
    assert_eq!(signers, [a_device.clone()], "A's own signature is kept");
    // Importing the same part again, by anyone: nothing changes.
    let again = upload(&h, &a, &parts[0]).await;
    assert!(outcomes(&again).iter().all(|(_, o)| o == "held"), "{again}");
    assert_eq!(log_entries(&h, &v1).await, 1);
    let again = h
        .data({
            let p = parts[0].clone();
            move |d| d.import_bundle_part(&p, None).unwrap()
        })
        .await;
    assert_eq!(again.counts(), (0, 2, 0));
    assert_eq!(log_entries(&h, &v2).await, 1);
}

#[tokio::test]
async fn issue12_forged_changes_in_a_part_are_refused_with_record_field_and_reason_and_the_rest_lands()
 {
    let h = Harness::new();
    let members = common::members_of("group-01");
    let mut a = h.device(&members[0]).await;
    let mut b = h.device(&members[1]).await;
    let v = a.new_visit("group-01");
    h.sync_all(&mut a, 1 << 20).await;
    h.sync_all(&mut b, 1 << 20).await;
    assert!(b.has(&v));
    // 1. B edits A's record under A's actor and name, and signs it with its own key as A.
    let mut forged = b.store.load(&v).unwrap();
    let before = forged.heads();
    let a_author = a.store.author();
    forged
        .edit(
            &a_author,
            common::now(),
            &[Edit::Set {
                field: "title".into(),
                value: json!("B 冒充 A 改的标题"),
            }],
        )
        .unwrap();
    let delta = forged.save_after(&before);
    let hashes: Vec<_> = split_changes(&delta).into_iter().map(|(h, _)| h).collect();
    let wrong = ChangeSig::sign(
        b.store.signing_key().unwrap(),
        &a.creds.device_id,
        SigKind::Changes,
        hashes,
    );
    // 2. B's own actor, but its change claims to be A's.
    let mut claimed = b.store.load(&v).unwrap();
    let liar =
        sanjin_core::Author::new(a.member(), &a.creds.device_id, &b.store.identity().actor)
            .unwrap();
    claimed
        .edit(
            &liar,
            common::now(),
            &[Edit::Set {
                field: "title".into(),
                value: json!("冒名改的标题"),
            }],
        )
        .unwrap();
    let delta2 = claimed.save_after(&before);
    let hashes2: Vec<_> = split_changes(&delta2).into_iter().map(|(h, _)| h).collect();
    let b_sig = ChangeSig::sign(
        b.store.signing_key().unwrap(),
        &b.creds.device_id,
        SigKind::Changes,
        hashes2,
    );
    // And a genuine new record of B in the same part.
    let honest = b.new_visit("group-01");
    let mut p = payload(&b, &[&honest]);
    p.docs.push(DocChanges {
        id: v.clone(),
        kind: "visit".into(),
        changes: delta,
    });
    p.sigs.push(wrong);
    let forged_part = export(&h, &b, p, 1 << 20).await;
    let report = upload(&h, &b, &forged_part[0]).await;
    let docs = report["docs"].as_array().unwrap();
    let refused = docs.iter().find(|d| d["doc_id"] == v.as_str()).unwrap();
    assert_eq!(refused["outcome"], "refused", "{report}");
    assert_eq!(refused["code"], "bad_signature");
    assert!(refused["reason"].as_str().unwrap().contains(&a.creds.device_id), "{refused}");
    assert!(refused["reason_zh"].as_str().is_some());
    let ok = docs.iter().find(|d| d["doc_id"] == honest.as_str()).unwrap();
    assert_eq!(ok["outcome"], "landed", "the rest of the part lands");

    let mut p = Payload::default();
    p.docs.push(DocChanges {
        id: v.clone(),
        kind: "visit".into(),
        changes: delta2,
    });
    p.sigs.push(b_sig);
    p.certs.push(cert_of(&b));
    let claimed_part = export(&h, &b, p, 1 << 20).await;
    let report = upload(&h, &b, &claimed_part[0]).await;
    let d = &report["docs"][0];
    assert_eq!((d["outcome"].as_str(), d["code"].as_str()), (Some("refused"), Some("foreign_actor")), "{report}");
    assert!(d["reason"].as_str().unwrap().contains(a.member()), "{d}");
    // The server's record is A's as it was.
    let id = v.clone();
    let title = h
        .data(move |d| d.store().index_entry(&id).unwrap().unwrap().title)
        .await;
    assert_ne!(title, "B 冒充 A 改的标题");
}

#[tokio::test]
async fn issue12_a_revoked_exporters_part_and_a_tampered_part_are_refused_and_the_other_parts_land()
 {
    let h = Harness::new();
    let members = common::members_of("group-01");
    let mut a = h.device(&members[0]).await;
    let mut b = h.device(&members[1]).await;
    let c = h.device(&common::leader_of("group-01")).await;
    let ids: Vec<String> = (0..4).map(|_| a.new_visit("group-01")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    // Small parts: one record each.
    let parts = export(&h, &a, payload(&a, &refs), 600).await;
    assert!(parts.len() >= 2, "{} parts", parts.len());
    let mut tampered = parts[0].clone();
    let n = tampered.len();
    tampered[n - 100] ^= 0x40;
    let report = upload(&h, &c, &tampered).await;
    let refusal = &report["refused"];
    assert!(
        matches!(refusal["code"].as_str(), Some("damaged" | "bad_signature")),
        "{report}"
    );
    assert!(refusal["message_zh"].as_str().unwrap().contains("重新导出"));
    assert!(report["docs"].as_array().unwrap().is_empty());
    let mut truncated = parts[1].clone();
    truncated.truncate(truncated.len() - 70);
    let report = upload(&h, &c, &truncated).await;
    assert!(report["refused"]["code"].is_string(), "{report}");
    // The other parts land, in reverse order.
    let mut landed = 0;
    for p in parts.iter().skip(2).rev() {
        let r = upload(&h, &c, p).await;
        landed += outcomes(&r).iter().filter(|(_, o)| o == "landed").count();
    }
    let r = upload(&h, &c, &parts[1]).await;
    landed += outcomes(&r).iter().filter(|(_, o)| o == "landed").count();
    assert!(landed >= 1);
    let r = upload(&h, &c, &parts[0]).await;
    landed += outcomes(&r).iter().filter(|(_, o)| o == "landed").count();
    assert_eq!(landed, 4, "every record of an intact part landed once");

    // A newer format is refused with the upgrade advice.
    let mut newer = parts[0].clone();
    newer[8] = 9;
    let r = upload(&h, &c, &newer).await;
    assert_eq!(r["refused"]["code"], "newer", "{r}");
    assert!(r["refused"]["message_zh"].as_str().unwrap().contains("升级"));

    // A revoked device's part is refused, whoever carries it.
    let v = b.new_visit("group-01");
    let b_parts = export(&h, &b, payload(&b, &[&v]), 1 << 20).await;
    let dev_b = b.creds.device_id.clone();
    h.data(move |d| d.revoke(&dev_b).unwrap()).await;
    let r = upload(&h, &c, &b_parts[0]).await;
    assert_eq!(r["refused"]["code"], "exporter_revoked", "{r}");
    assert!(r["refused"]["message_zh"].as_str().unwrap().contains(&b.creds.device_id));
    assert_eq!(log_entries(&h, &v).await, 0);
    h.sync_all(&mut a, 1 << 20).await;
}

#[tokio::test]
async fn issue12_cargo_sealed_to_the_server_inside_a_group_part_is_imported() {
    let h = Harness::new();
    let a = h.device(&common::members_of("group-01")[0]).await;
    let b = h.device(&common::members_of("group-01")[1]).await;
    let mut far = h.device(&common::members_of("group-02")[0]).await;
    let v = far.new_visit("group-02");
    // The group-02 record travels sealed to the server only, inside A's group-01 part.
    let kd = h.data(|d| d.key_directory().unwrap()).await;
    let cargo = bundle::export(
        payload(&far, &[&v]),
        far.store.signing_key().unwrap(),
        &cert_of(&far),
        Audience::Server,
        &[(sanjin_server::SERVER_RECIPIENT.into(), kd.server_box)],
        1 << 20,
        common::now(),
        &mut fill,
    )
    .unwrap();
    let p = Payload {
        cargo: cargo.clone(),
        ..Payload::default()
    };
    let outer = export(&h, &a, p, 1 << 20).await;
    let report = upload(&h, &b, &outer[0]).await;
    assert!(report["refused"].is_null(), "{report}");
    let inner = &report["cargo"][0];
    assert_eq!(outcomes(inner), [(v.clone(), "landed".to_string())], "{report}");
    assert_eq!(inner["exporter_device"], far.creds.device_id.as_str());
    assert!(
        inner["receipts"].as_array().unwrap().is_empty(),
        "the carrier may not read group-02's record: no receipt for it"
    );
    assert_eq!(log_entries(&h, &v).await, 1);
    // Sent on its own, again: held.
    let again = upload(&h, &b, &cargo[0]).await;
    assert_eq!(outcomes(&again), [(v.clone(), "held".to_string())]);
    let _ = &mut far;
}
