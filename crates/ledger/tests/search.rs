//! Issue 13: full-text search over the committed fixtures (titles, summaries, opinion texts in
//! Chinese), every result count checked against a recount straight from the fixture records
//! (substring search) and, with filters, against the server's own index (`list`); edits and
//! deletions after indexing; the leader's scope.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use chrono::NaiveDate;
use common::server_copy;
use sanjin_core::domain::{RecordData, RecordKind};
use sanjin_core::{Author, Edit};
use sanjin_fixtures::Fixtures;
use sanjin_ledger::{Error, Found, Ledger, Search, Viewer};
use sanjin_server::ServerData;
use sanjin_store::Filter;
use serde_json::json;

/// What is searched of a record: its title line and its text.
fn texts(data: &RecordData) -> Option<(String, String)> {
    Some(match data {
        RecordData::Visit(v) => (v.title.clone(), v.summary.clone()),
        RecordData::Opinion(o) => (o.topic.clone(), o.text.clone()),
        RecordData::Household(h) => (
            h.head_name.clone(),
            std::iter::once(h.situation.as_str())
                .chain(h.log.iter().map(|e| e.action.as_str()))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        RecordData::Plan(p) => (p.title.clone(), String::new()),
        _ => return None,
    })
}

/// The ids of fixture records (with `extra` records' texts) holding every word, recounted by
/// plain substring search.
fn recount(fx: &Fixtures, words: &[&str]) -> BTreeSet<String> {
    fx.visits
        .iter()
        .chain(&fx.opinions)
        .chain(&fx.households)
        .chain(&fx.plans)
        .filter(|r| {
            let Some((t, b)) = texts(&r.data) else {
                return false;
            };
            words.iter().all(|w| t.contains(w) || b.contains(w))
        })
        .map(|r| r.id.clone())
        .collect()
}

fn search(text: &str) -> Search {
    Search {
        text: text.into(),
        limit: 100_000,
        ..Search::default()
    }
}

fn ids(found: &Found) -> BTreeSet<String> {
    found.hits.iter().map(|h| h.id.clone()).collect()
}

/// Every hit shows at least one of `words` marked, in its title or its snippet.
fn assert_marked(found: &Found, words: &[&str]) {
    for h in &found.hits {
        let marked: Vec<&str> = h
            .title_marked
            .iter()
            .chain(&h.snippet)
            .filter(|f| f.hit)
            .map(|f| f.text.as_str())
            .collect();
        assert!(
            marked.iter().any(|m| words.iter().any(|w| m.contains(w))),
            "{}: {marked:?} in {:?} / {:?}",
            h.id,
            h.title_marked,
            h.snippet
        );
    }
}

/// Opinion notes with the given texts, cut from the fixtures' first note, landed by the server.
fn with_notes(tmp: &Path, fx: &Fixtures, texts: &[(&str, &str)]) {
    let records: Vec<_> = texts
        .iter()
        .map(|(id, text)| {
            let mut r = fx.opinions[0].clone();
            r.id = id.to_string();
            r.events.clear();
            let RecordData::Opinion(o) = &mut r.data else {
                unreachable!()
            };
            o.text = text.to_string();
            o.topic = "测试".into();
            r
        })
        .collect();
    let mut data = ServerData::open(tmp).unwrap();
    assert_eq!(data.import_records(&records).unwrap().records, texts.len());
}

#[test]
fn issue13_two_character_words_are_found_as_a_recount_finds_them() {
    let (tmp, fx) = server_copy();
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    for word in ["养老", "垃圾", "医保", "路灯", "老人"] {
        let found = ledger.search(&Viewer::Office, &search(word)).unwrap();
        let expected = recount(&fx, &[word]);
        assert!(!expected.is_empty(), "{word} occurs in the fixtures");
        assert_eq!(found.total, expected.len(), "{word}");
        assert_eq!(ids(&found), expected, "{word}");
        assert_marked(&found, &[word]);
        // Ranked: best first, and a title hit before text-only hits.
        assert!(found.hits.windows(2).all(|w| w[0].score <= w[1].score));
        if found.hits.iter().any(|h| h.title.contains(word)) {
            assert!(
                found.hits[0].title.contains(word),
                "{word}: {:?}",
                found.hits[0]
            );
        }
    }
    // A page of a result: the same order, cut.
    let all = ledger.search(&Viewer::Office, &search("养老")).unwrap();
    let page = ledger
        .search(
            &Viewer::Office,
            &Search {
                offset: 10,
                limit: 5,
                ..search("养老")
            },
        )
        .unwrap();
    assert_eq!(page.total, all.total);
    assert_eq!(page.hits, all.hits[10..15]);
}

#[test]
fn issue13_one_character_longer_words_and_several_words() {
    let (tmp, fx) = server_copy();
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    for words in [
        vec!["灯"],
        vec!["路"],
        vec!["社区养老"],
        vec!["生活服务中心"],
        vec!["养老", "服务"],
        vec!["医保", "老人"],
    ] {
        let q = words.join(" ");
        let found = ledger.search(&Viewer::Office, &search(&q)).unwrap();
        let expected = recount(&fx, &words);
        assert_eq!(ids(&found), expected, "{q}");
        assert_eq!(found.total, expected.len(), "{q}");
        assert_marked(&found, &words);
    }
    assert!(!recount(&fx, &["灯"]).is_empty());
    assert!(!recount(&fx, &["生活服务中心"]).is_empty());
    // Punctuation in a query separates words like spaces do.
    let a = ledger
        .search(&Viewer::Office, &search("养老，服务"))
        .unwrap();
    let b = ledger
        .search(&Viewer::Office, &search("养老 服务"))
        .unwrap();
    assert_eq!(ids(&a), ids(&b));
}

#[test]
fn issue13_mixed_chinese_latin_and_digits() {
    let (tmp, fx) = server_copy();
    with_notes(
        tmp.path(),
        &fx,
        &[
            (
                "note-5g",
                "建议在新华村建设5G基站，解决WiFi信号差的问题，涉及120户。",
            ),
            (
                "note-wide",
                "村委会ＷｉＦｉ全覆盖，手机号１３８开头的都能连。",
            ),
            ("note-gap", "门口堆垃圾；圾分拣站离得远。"),
        ],
    );
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    let find = |l: &mut Ledger, q: &str| ids(&l.search(&Viewer::Office, &search(q)).unwrap());
    // (id, query, found): each note is found, or not, as said; fixture records may match too.
    for (q, yes, no) in [
        ("5G基站", &["note-5g"][..], &["note-wide", "note-gap"][..]),
        ("5g", &["note-5g"], &["note-wide"]),
        ("wifi", &["note-5g", "note-wide"], &["note-gap"]),
        ("ＷＩＦＩ信号", &["note-5g"], &["note-wide"]),
        ("120户", &["note-5g"], &["note-wide"]),
        ("138", &["note-wide"], &["note-5g"]),
        ("12", &[], &["note-5g", "note-wide"]),
        ("手机号", &["note-wide"], &["note-5g"]),
    ] {
        let found = find(&mut ledger, q);
        for id in yes {
            assert!(found.contains(*id), "{q} finds {id}");
        }
        for id in no {
            assert!(
                !found.contains(*id),
                "{q} does not find {id} (whole words only)"
            );
        }
    }
    // A phrase never spans punctuation: 垃圾分 is not in 垃圾；圾分.
    assert_eq!(find(&mut ledger, "垃圾分"), BTreeSet::new());
    assert!(find(&mut ledger, "圾分拣").contains("note-gap"));
    let mut with_gap = recount(&fx, &["垃圾"]);
    with_gap.insert("note-gap".into());
    assert_eq!(find(&mut ledger, "垃圾"), with_gap);
    // FTS5 syntax in a query is only text.
    for q in [
        r#"养老" OR "垃圾"#,
        "title:养老",
        "养老*",
        "(养老) NOT 垃圾",
        "NEAR(养老",
    ] {
        let words: Vec<&str> = q
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let found = ledger.search(&Viewer::Office, &search(q)).unwrap();
        let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
        let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
        assert_eq!(ids(&found), recount(&fx, &lower), "{q}");
    }
    // Nothing to look for: refused, saying what to do.
    match ledger.search(&Viewer::Office, &search(" ，。！ ")) {
        Err(Error::Invalid(m)) => assert!(m.contains("请换一个词"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn issue13_search_with_the_list_filters_matches_the_servers_index() {
    let (tmp, fx) = server_copy();
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let some_member = fx
        .opinions
        .iter()
        .find(|r| matches!(&r.data, RecordData::Opinion(o) if o.topic.contains("养老")))
        .unwrap()
        .created_by
        .clone();
    let cases: Vec<(&str, Search, Filter)> = vec![
        (
            "opinions",
            Search {
                kind: Some(RecordKind::Opinion),
                ..search("养老")
            },
            Filter {
                kind: Some(RecordKind::Opinion),
                ..Filter::default()
            },
        ),
        (
            "visits of group-03 in the first half",
            Search {
                kind: Some(RecordKind::Visit),
                group: Some("group-03".into()),
                from: Some(d("2025-01-01")),
                to: Some(d("2025-06-30")),
                ..search("垃圾")
            },
            Filter {
                kind: Some(RecordKind::Visit),
                group: Some("group-03".into()),
                from: Some("2025-01-01".into()),
                to: Some("2025-06-30".into()),
                ..Filter::default()
            },
        ),
        (
            "a member's opinions",
            Search {
                kind: Some(RecordKind::Opinion),
                member: Some(some_member.clone()),
                ..search("养老")
            },
            Filter {
                kind: Some(RecordKind::Opinion),
                member: Some(some_member.clone()),
                ..Filter::default()
            },
        ),
        (
            "handled opinions of a kind",
            Search {
                kind: Some(RecordKind::Opinion),
                status: Some("handled".into()),
                type_code: Some("opinion".into()),
                ..search("医保")
            },
            Filter {
                kind: Some(RecordKind::Opinion),
                status: Some("handled".into()),
                type_code: Some("opinion".into()),
                ..Filter::default()
            },
        ),
    ];
    for (what, s, f) in cases {
        let found = ledger.search(&Viewer::Office, &s).unwrap();
        let listed: BTreeSet<String> = ledger
            .store()
            .list(&f)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        let expected: BTreeSet<String> = recount(&fx, &[s.text.as_str()])
            .intersection(&listed)
            .cloned()
            .collect();
        assert!(!expected.is_empty(), "{what}: the case finds something");
        assert!(
            expected.len() < recount(&fx, &[s.text.as_str()]).len(),
            "{what}: the filter narrows"
        );
        assert_eq!(ids(&found), expected, "{what}");
        assert_eq!(found.total, expected.len(), "{what}");
    }
}

#[test]
fn issue13_an_edited_record_is_found_by_its_new_words_a_deleted_one_not_at_all() {
    let (tmp, fx) = server_copy();
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    // Indexed first.
    let before = ledger.search(&Viewer::Office, &search("养老")).unwrap();
    let (edited, old) = fx
        .visits
        .iter()
        .find_map(|r| match &r.data {
            RecordData::Visit(v) if v.summary.contains("养老") => {
                Some((r.clone(), format!("{}。{}", v.title, v.summary)))
            }
            _ => None,
        })
        .unwrap();
    let deleted = fx
        .opinions
        .iter()
        .find(|r| matches!(&r.data, RecordData::Opinion(o) if o.topic.contains("养老")))
        .unwrap();
    assert!(ids(&before).contains(&edited.id) && ids(&before).contains(&deleted.id));
    assert!(
        ledger
            .search(&Viewer::Office, &search("石桥"))
            .unwrap()
            .hits
            .is_empty()
    );
    {
        let mut data = ServerData::open(tmp.path()).unwrap();
        let a = Author::new("member-0001", "phone-a", &[1; 16]).unwrap();
        let mut doc = edited.to_doc().unwrap();
        doc.edit(
            &a,
            1_760_000_000_000,
            &[
                Edit::Set {
                    field: "title".into(),
                    value: json!(NEW_TITLE),
                },
                Edit::Set {
                    field: "summary".into(),
                    value: json!(NEW_SUMMARY),
                },
            ],
        )
        .unwrap();
        let mut gone = deleted.to_doc().unwrap();
        gone.delete(&a, 1_760_000_000_001, Some("重复录入"))
            .unwrap();
        data.import_docs(&mut [doc, gone]).unwrap();
    }
    // The search refreshes first: the old words are gone, the new ones found.
    let after = ledger.search(&Viewer::Office, &search("养老")).unwrap();
    let mut expected = ids(&before);
    expected.remove(&edited.id);
    expected.remove(&deleted.id);
    assert_eq!(ids(&after), expected);
    assert_eq!(after.total, before.total - 2);
    let bridge = ledger.search(&Viewer::Office, &search("石桥")).unwrap();
    assert_eq!(bridge.total, 1);
    assert_eq!(bridge.hits[0].id, edited.id);
    let marked: Vec<&str> = bridge.hits[0]
        .snippet
        .iter()
        .filter(|f| f.hit)
        .map(|f| f.text.as_str())
        .collect();
    assert_eq!(marked, ["石桥"]);
    assert_eq!(
        ids(&ledger.search(&Viewer::Office, &search("桥")).unwrap()),
        BTreeSet::from([edited.id.clone()]),
        "one character"
    );
    // Whatever words of the old summary the record no longer holds, it is not found by them.
    let old_words: Vec<String> = old
        .split(|c: char| !('\u{4e00}'..='\u{9fff}').contains(&c))
        .filter(|w| w.chars().count() >= 2)
        .map(|w| w.chars().take(2).collect())
        .filter(|w: &String| !NEW_TITLE.contains(w.as_str()) && !NEW_SUMMARY.contains(w.as_str()))
        .collect();
    assert!(!old_words.is_empty());
    for w in old_words {
        let found = ledger.search(&Viewer::Office, &search(&w)).unwrap();
        assert!(!ids(&found).contains(&edited.id), "{w}");
        assert!(!ids(&found).contains(&deleted.id), "{w}");
    }
}

const NEW_TITLE: &str = "回访新建石桥";
const NEW_SUMMARY: &str = "村里新建了一座石桥，孩子上学不再绕路。";

#[test]
fn issue13_a_leader_searches_only_the_groups_records() {
    let (tmp, fx) = server_copy();
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    let leader = Viewer::Leader {
        group: "group-05".into(),
    };
    let found = ledger.search(&leader, &search("养老")).unwrap();
    let listed: BTreeSet<String> = [
        RecordKind::Visit,
        RecordKind::Opinion,
        RecordKind::Household,
        RecordKind::Plan,
    ]
    .into_iter()
    .flat_map(|k| {
        ledger
            .store()
            .list(&Filter {
                kind: Some(k),
                group: Some("group-05".into()),
                ..Filter::default()
            })
            .unwrap()
    })
    .map(|e| e.id)
    .collect();
    let expected: BTreeSet<String> = recount(&fx, &["养老"])
        .intersection(&listed)
        .cloned()
        .collect();
    assert!(!expected.is_empty());
    assert!(expected.len() < recount(&fx, &["养老"]).len());
    assert_eq!(ids(&found), expected);
    assert!(
        found
            .hits
            .iter()
            .all(|h| h.group.as_deref() == Some("group-05"))
    );
    match ledger.search(
        &leader,
        &Search {
            group: Some("group-06".into()),
            ..search("养老")
        },
    ) {
        Err(Error::Forbidden(m)) => assert!(m.contains("group-05"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        ledger.search(&Viewer::Member, &search("养老")),
        Err(Error::Forbidden(_))
    ));
}
