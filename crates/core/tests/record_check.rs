//! Issue 10, point 3: a whole record checked as the server sees it, with the same per-field
//! checks a device runs on input. Hostile records are built with automerge directly.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, ObjType, ROOT, ReadDoc, ScalarValue, Value as AmValue};
use sanjin_core::domain::{PhotoRef, RecordData};
use sanjin_core::testdata::{self, author};
use sanjin_core::validate::{self, MAX_CHANGES_PER_PUSH, MAX_DOC_BYTES};
use sanjin_core::{Reason, RecordDoc};
use serde_json::json;

const T0: i64 = 1_747_616_400_000;

fn new_visit() -> RecordDoc {
    RecordDoc::create(
        "v-1",
        &RecordData::Visit(testdata::visit()),
        &author("member-0001", 1),
        T0,
    )
    .unwrap()
}

fn raw(doc: &mut RecordDoc) -> AutoCommit {
    AutoCommit::load(&doc.save())
        .unwrap()
        .with_actor(ActorId::from([1u8; 16].as_slice()))
}

fn commit(am: &mut AutoCommit) {
    am.commit_with(
        CommitOptions::default()
            .with_message(json!({"m": "member-0001", "d": "device-01", "a": "edit"}).to_string())
            .with_time(T0 + 9),
    );
}

fn fields(am: &AutoCommit) -> automerge::ObjId {
    match am.get(ROOT, "f").unwrap() {
        Some((AmValue::Object(ObjType::Map), id)) => id,
        other => panic!("{other:?}"),
    }
}

fn check(am: AutoCommit) -> Result<(), sanjin_core::ValidationError> {
    let mut doc = RecordDoc::from_automerge(am).unwrap();
    validate::check_record(doc.automerge())
}

fn photo(hash: &str, mime: &str) -> PhotoRef {
    let mut p = PhotoRef::new(hash);
    p.mime = mime.into();
    p.bytes = 2_000_000;
    p.width = 4000;
    p.height = 3000;
    p
}

#[test]
fn issue10_valid_records_of_every_kind_pass() {
    for (i, data) in testdata::one_of_each().into_iter().enumerate() {
        let mut doc =
            RecordDoc::create(&format!("r-{i}"), &data, &author("member-0001", 1), T0).unwrap();
        validate::check_record(doc.automerge()).unwrap_or_else(|e| panic!("{}: {e}", data.kind()));
    }
    // With a photo and its thumbnail, edits, events and a conflict of valid values.
    let mut a = new_visit();
    a.attach_photo(
        &author("member-0001", 1),
        T0 + 1,
        &photo(&"ab".repeat(32), "image/jpeg"),
        testdata::THUMBNAIL,
    )
    .unwrap();
    let mut b = RecordDoc::load(&a.save()).unwrap();
    a.edit(
        &author("member-0001", 1),
        T0 + 2,
        &[sanjin_core::Edit::Set {
            field: "summary".into(),
            value: json!("第一行\n第二行\t（制表符）"),
        }],
    )
    .unwrap();
    b.edit(
        &author("member-0002", 2),
        T0 + 3,
        &[sanjin_core::Edit::Set {
            field: "title".into(),
            value: json!("乙的标题"),
        }],
    )
    .unwrap();
    a.transition(
        &author("member-0001", 1),
        T0 + 4,
        sanjin_core::workflow::EventType::Submit,
        Some("请审核"),
    )
    .unwrap();
    a.merge(&mut b).unwrap();
    validate::check_record(a.automerge()).unwrap();
}

#[test]
fn issue10_two_million_character_title_with_control_characters_is_refused_naming_the_title() {
    let mut doc = new_visit();
    let mut am = raw(&mut doc);
    let f = fields(&am);
    let title: String = "长\u{1}标题\u{7}".repeat(400_000);
    assert_eq!(title.chars().count(), 2_000_000);
    am.put(&f, "title", title.as_str()).unwrap();
    commit(&mut am);
    let e = check(am).unwrap_err();
    assert_eq!(e.field, "title");
    assert!(matches!(e.reason, Reason::TooLong { max: 200 }), "{e}");
    let zh = e.zh(sanjin_core::domain::RecordKind::Visit);
    assert!(zh.contains("活动主题"), "{zh}");

    // Short, but with a control character: refused for that.
    let mut doc = new_visit();
    let mut am = raw(&mut doc);
    let f = fields(&am);
    am.put(&f, "title", "座谈\u{1b}[31m").unwrap();
    commit(&mut am);
    let e = check(am).unwrap_err();
    assert_eq!(
        (e.field.as_str(), &e.reason),
        ("title", &Reason::ControlCharacter)
    );
}

#[test]
fn issue10_long_text_control_characters_and_lengths() {
    for (text, bad) in [
        ("第一行\n第二行\t末尾".to_string(), false),
        ("响铃\u{7}".to_string(), true),
        ("回车\r换行".to_string(), true),
        ("长".repeat(validate::MAX_TEXT + 1), true),
    ] {
        let mut doc = new_visit();
        let mut am = raw(&mut doc);
        let f = fields(&am);
        let (_, t) = am.get(&f, "summary").unwrap().unwrap();
        am.update_text(&t, &text).unwrap();
        commit(&mut am);
        match check(am) {
            Ok(()) => assert!(!bad, "{text:?} passed"),
            Err(e) => {
                assert!(bad, "{text:?}: {e}");
                assert_eq!(e.field, "summary");
            }
        }
    }
}

#[test]
fn issue10_losing_conflict_values_are_checked_too() {
    let mut doc = new_visit();
    let mut a = raw(&mut doc);
    let mut b = raw(&mut doc).with_actor(ActorId::from([2u8; 16].as_slice()));
    let f = fields(&a);
    a.put(&f, "activity_type", "consultation").unwrap();
    b.put(&f, "activity_type", "<script>").unwrap();
    commit(&mut a);
    commit(&mut b);
    a.merge(&mut b).unwrap();
    assert_eq!(a.get_all(&f, "activity_type").unwrap().len(), 2);
    let e = check(a).unwrap_err();
    assert_eq!(e.field, "activity_type");
}

#[test]
fn issue10_photo_references_are_checked() {
    let good = "ab".repeat(32);
    for (p, ok) in [
        (photo(&good, "image/jpeg"), true),
        (photo(&good, "image/webp"), true),
        (photo(&good, ""), true),
        (photo(&good, "text/html"), false),
        (photo("/etc/sanjin/tls/key.pem", "image/jpeg"), false),
        (photo(&"AB".repeat(32), "image/jpeg"), false),
        (photo(&"ab".repeat(31), "image/jpeg"), false),
        (
            PhotoRef {
                bytes: u64::MAX,
                ..photo(&good, "image/png")
            },
            false,
        ),
        (
            PhotoRef {
                width: 1_000_000,
                ..photo(&good, "image/png")
            },
            false,
        ),
        (
            PhotoRef {
                caption: "说明\u{0}".into(),
                ..photo(&good, "image/png")
            },
            false,
        ),
    ] {
        // The device refuses it when attaching …
        let mut doc = new_visit();
        let attached = doc.attach_photo(&author("member-0001", 1), T0 + 1, &p, testdata::THUMBNAIL);
        assert_eq!(attached.is_ok(), ok, "{p:?}");
        // … and the server when it arrives by other means.
        let mut doc = new_visit();
        let mut am = raw(&mut doc);
        let f = fields(&am);
        let (_, photos) = am.get(&f, "photos").unwrap().unwrap();
        am.put(&photos, p.hash.as_str(), serde_json::to_string(&p).unwrap())
            .unwrap();
        commit(&mut am);
        match check(am) {
            Ok(()) => assert!(ok, "{p:?} passed"),
            Err(e) => {
                assert!(!ok, "{p:?}: {e}");
                assert_eq!(e.field, "photos");
            }
        }
    }
}

#[test]
fn issue10_thumbnails_must_be_real_jpegs_of_at_most_64_kib() {
    // A real thumbnail made by sanjin-media passes.
    let image = sanjin_media::testing::photo(800, 600, 7, 10);
    let original = sanjin_media::testing::jpeg(&image, 90);
    let processed = sanjin_media::process(&original, &sanjin_media::Limits::default()).unwrap();
    validate::check_jpeg(&processed.thumbnail).unwrap();
    validate::check_jpeg(testdata::THUMBNAIL).unwrap();

    let mut long = testdata::THUMBNAIL.to_vec();
    long.splice(
        2..2,
        [0xFF, 0xFE, 0xFF, 0xFF].into_iter().chain(vec![0; 65_533]),
    );
    let html = b"<html><script>alert(1)</script></html>".to_vec();
    let mut no_sof = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x4A, 0x46];
    no_sof.extend([0xFF, 0xDA, 0x00, 0x02, 0xFF, 0xD9]);
    let mut no_eoi = testdata::THUMBNAIL.to_vec();
    no_eoi.truncate(no_eoi.len() - 2);
    let mut zero_width = testdata::THUMBNAIL.to_vec();
    zero_width[10] = 0;
    for bad in [
        long,
        html,
        no_sof,
        no_eoi,
        zero_width,
        vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3],
        vec![0xFF, 0xD8, 0xFF, 0xD9],
    ] {
        assert!(
            validate::check_jpeg(&bad).is_err(),
            "{:?}",
            &bad[..8.min(bad.len())]
        );
        let mut doc = new_visit();
        assert!(
            doc.attach_photo(
                &author("member-0001", 1),
                T0 + 1,
                &photo(&"cd".repeat(32), "image/jpeg"),
                &bad
            )
            .is_err()
        );
        let mut am = raw(&mut doc);
        am.put(
            ROOT,
            format!("th:{}", "cd".repeat(32)),
            ScalarValue::Bytes(bad),
        )
        .unwrap();
        commit(&mut am);
        let e = check(am).unwrap_err();
        assert_eq!(e.field, "photos");
        assert!(matches!(e.reason, Reason::BadThumbnail { .. }), "{e}");
    }
    // A thumbnail under a key that is no photo hash.
    let mut doc = new_visit();
    let mut am = raw(&mut doc);
    am.put(
        ROOT,
        "th:../../key.pem",
        ScalarValue::Bytes(testdata::THUMBNAIL.to_vec()),
    )
    .unwrap();
    commit(&mut am);
    assert_eq!(check(am).unwrap_err().field, "photos");
}

#[test]
fn issue10_root_keys_and_layout_are_checked() {
    type Attack = fn(&mut AutoCommit);
    let attacks: [(&str, Attack); 6] = [
        ("unknown root key", |am| {
            am.put(ROOT, "payload", "x").unwrap();
        }),
        ("unknown field", |am| {
            let f = fields(am);
            am.put(&f, "secret", "x").unwrap();
        }),
        ("id not an id", |am| {
            am.put(ROOT, "id", "../../etc").unwrap();
        }),
        ("schema from the future", |am| {
            am.put(ROOT, "schema", 99).unwrap();
        }),
        ("a set holding an object", |am| {
            let f = fields(am);
            let (_, set) = am.get(&f, "participants").unwrap().unwrap();
            am.put_object(&set, "member-0003", ObjType::Map).unwrap();
        }),
        ("an event that is not a map", |am| {
            let (_, ev) = am.get(ROOT, "ev").unwrap().unwrap();
            am.insert(&ev, 0, "approve").unwrap();
        }),
    ];
    for (what, attack) in attacks {
        let mut doc = new_visit();
        let mut am = raw(&mut doc);
        attack(&mut am);
        commit(&mut am);
        let Ok(mut doc) = RecordDoc::from_automerge(am) else {
            continue; // refused before any check: fine
        };
        assert!(
            validate::check_record(doc.automerge()).is_err(),
            "{what} passed"
        );
    }
}

#[test]
fn issue10_bounds_on_document_size_and_changes_per_push() {
    validate::check_sizes(MAX_DOC_BYTES, MAX_CHANGES_PER_PUSH).unwrap();
    let e = validate::check_sizes(MAX_DOC_BYTES + 1, 1).unwrap_err();
    assert!(matches!(e.reason, Reason::TooLarge { .. }));
    let e = validate::check_sizes(1, MAX_CHANGES_PER_PUSH + 1).unwrap_err();
    assert!(matches!(e.reason, Reason::TooMany { .. }));
    assert_eq!(
        sanjin_core::rules::refusal_code(&e),
        sanjin_core::protocol::RefusalCode::TooLarge
    );
}
