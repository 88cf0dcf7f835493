//! Issue 10: the server's refusals kept on the device stand only while the record is exactly as
//! it was refused (the same heads, in any order); a change takes the mark away.

use sanjin_core::domain::RecordData;
use sanjin_core::{Edit, RecordDoc, testdata};
use sanjin_store::{Durability, Identity, Store};
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

fn add_visit(s: &mut Store, id: &str) {
    let mut doc =
        RecordDoc::create(id, &RecordData::Visit(testdata::visit()), &s.author(), T0).unwrap();
    s.insert(&mut doc, true).unwrap();
}

fn set_summary(s: &mut Store, id: &str, text: &str) {
    s.update(id, |d, by| {
        d.edit(
            by,
            T0 + 5,
            &[Edit::Set {
                field: "summary".into(),
                value: json!(text),
            }],
        )
    })
    .unwrap();
}

#[test]
fn issue10_a_refusal_stands_only_at_the_heads_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = store(&dir, 1);
    let mut b = store(&dir, 2);
    add_visit(&mut a, "v-1");
    add_visit(&mut a, "v-2");
    b.merge_from(a.path()).unwrap();
    // Concurrent edits elsewhere in the text: after the merge, v-1 has two heads.
    set_summary(&mut a, "v-1", "甲补充的摘要");
    set_summary(&mut b, "v-1", "乙补充的摘要");
    a.merge_from(b.path()).unwrap();
    let mut heads = a.load("v-1").unwrap().heads();
    assert_eq!(heads.len(), 2);
    heads.reverse();

    a.mark_refused("v-1", &heads, "forbidden", "", "not in scope")
        .unwrap();
    let v2_heads = a.load("v-2").unwrap().heads();
    a.mark_refused("v-2", &v2_heads, "invalid_field", "title", "too long")
        .unwrap();
    let standing = a.standing_refusal("v-1").unwrap().unwrap();
    assert_eq!(
        (standing.code.as_str(), standing.field.as_str()),
        ("forbidden", "")
    );
    let ids: Vec<String> = a
        .standing_refusals()
        .unwrap()
        .into_iter()
        .map(|r| r.doc_id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"v-1".to_string()) && ids.contains(&"v-2".to_string()));

    // The member changes v-2: the refusal is kept but no longer stands.
    set_summary(&mut a, "v-2", "改过的摘要");
    assert_eq!(a.standing_refusal("v-2").unwrap(), None);
    assert!(a.refusal("v-2").unwrap().is_some());
    let ids: Vec<String> = a
        .standing_refusals()
        .unwrap()
        .into_iter()
        .map(|r| r.doc_id)
        .collect();
    assert_eq!(ids, vec!["v-1".to_string()]);

    // Accepted after all: gone.
    a.clear_refused("v-1").unwrap();
    assert_eq!(a.standing_refusal("v-1").unwrap(), None);
    assert!(a.standing_refusals().unwrap().is_empty());
    assert_eq!(a.standing_refusal("no-such-record").unwrap(), None);
}
