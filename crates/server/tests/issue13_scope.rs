//! Issue 13, point 4 (second part): staff of a county chapter see and change only their
//! chapter, and legal appeals (法律诉求) go to the legal advisory group.
//!
//! A server holding the committed fixtures' whole directory (孝感市政协 and three county
//! chapters; `group-06`, 市政协法律顾问委员活动组, carries `legal_advisory`), driven through its
//! router: the console of staff of 汉川市政协 (lists, search, dashboard, export, record pages,
//! steps, members' records, assessment), the sync of their office device, and a legal appeal
//! recorded in group-01 that reaches the phone of a member of group-06 and is handled by
//! group-06's leader in the console and from a phone, while the leader of a third group cannot.

mod browser;
mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use chrono::NaiveDate;
use common::photos::{console_get, console_session};
use common::{Device, Harness, now};
use sanjin_core::domain::{Opinion, OpinionKind, RecordData, RecordKind};
use sanjin_core::protocol::RefusalCode;
use sanjin_core::workflow::EventType;
use sanjin_core::{IndexEntry, RecordDoc};
use sanjin_server::{AppState, Role, ServerData, app};
use sanjin_store::Filter;

const CITY_STAFF: &str = "office-01";
const COUNTY_STAFF: &str = "office-hc";
const HANCHUAN: &str = "chapter-hanchuan";
const HANCHUAN_GROUPS: [&str; 2] = ["group-07", "group-08"];
const LEGAL_GROUP: &str = "group-06";
const LEGAL_LEADER: &str = "member-0135";
const LEADER_2: &str = "member-0037";

/// A server with the fixtures' whole directory, (`with_records`) their visits and opinions,
/// city staff `office-01` and staff of 汉川市政协 `office-hc`.
fn harness(with_records: bool) -> Harness {
    let dir = tempfile::TempDir::new().unwrap();
    let mut data = ServerData::open(&dir.path().join("data")).unwrap();
    data.import_directory(&sanjin_fixtures::committed_dir())
        .unwrap();
    if with_records {
        let f = common::fixtures();
        let records: Vec<_> = f.visits.iter().chain(&f.opinions).cloned().collect();
        data.import_records(&records).unwrap();
    }
    data.add_staff(CITY_STAFF, "王芳", Role::Staff).unwrap();
    let a = data
        .add_county_staff(COUNTY_STAFF, "汉川市政协秘书", HANCHUAN)
        .unwrap();
    assert_eq!(a.chapter.as_deref(), Some(HANCHUAN));
    let state = AppState::new(data);
    let router = app(state.clone());
    Harness {
        dir,
        state,
        router,
        live: None,
    }
}

fn text(r: &common::Reply) -> String {
    String::from_utf8_lossy(&r.body).to_string()
}

/// The session's CSRF token, read from a page's sign-out form.
async fn csrf(h: &Harness, cookie: &str) -> String {
    let html = text(&console_get(h, "/console/dashboard", cookie).await);
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..at + html[at..].find('"').unwrap()].to_string()
}

async fn post_form(h: &Harness, path: &str, cookie: &str, body: String) -> common::Reply {
    let req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie)
        .body(Body::from(body))
        .unwrap();
    h.call(req).await
}

/// Index rows of `kind` on the server, tombstones left out.
async fn rows(h: &Harness, kind: RecordKind) -> Vec<IndexEntry> {
    h.data(move |d| {
        d.store()
            .list(&Filter {
                kind: Some(kind),
                ..Filter::default()
            })
            .unwrap()
    })
    .await
}

fn in_hanchuan(e: &IndexEntry) -> bool {
    e.group
        .as_deref()
        .is_some_and(|g| HANCHUAN_GROUPS.contains(&g))
}

/// `共 N 条` of a list page.
fn total(html: &str) -> usize {
    let at = html.find("id=\"total\"").expect("a total") + 11;
    let t = &html[at..];
    let t = &t[t.find("共 ").unwrap() + "共 ".len()..];
    t[..t.find(' ').unwrap()].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue13_county_staff_see_and_change_only_their_chapter_in_the_console() {
    let h = harness(true);
    let county = console_session(&h, COUNTY_STAFF).await;
    let city = console_session(&h, CITY_STAFF).await;
    let opinions = rows(&h, RecordKind::Opinion).await;
    let theirs = opinions.iter().filter(|e| in_hanchuan(e)).count();
    assert!(theirs > 0 && theirs < opinions.len());

    // The list: only the chapter's opinions, and its groups to choose from.
    let list = text(&console_get(&h, "/console/records?kind=opinion", &county).await);
    assert_eq!(
        total(&list),
        theirs,
        "the county list counts the chapter's opinions"
    );
    assert!(list.contains(">汉川市政协第一委员活动组<"));
    for other in [
        "市政协第一委员活动组",
        "应城市政协第一委员活动组",
        "云梦县政协第一委员活动组",
    ] {
        assert!(
            !list.contains(&format!(">{other}<")),
            "{other} is another chapter's"
        );
    }
    let all = text(&console_get(&h, "/console/records?kind=opinion", &city).await);
    assert_eq!(total(&all), opinions.len(), "city staff see every opinion");
    // Asking for another chapter's group is refused in Chinese.
    let r = console_get(&h, "/console/records?kind=opinion&group=group-01", &county).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        text(&r).contains("活动组 group-01 属于其他政协组织"),
        "{}",
        text(&r)
    );

    // Search: a word of a Hanchuan opinion and of others finds only the chapter's.
    let word: String = opinions
        .iter()
        .find(|e| in_hanchuan(e))
        .unwrap()
        .title
        .chars()
        .take(2)
        .collect();
    let everywhere = {
        let w = word.clone();
        h.data(move |d| {
            let mut ledger = sanjin_ledger::Ledger::open(d.dir()).unwrap();
            let s = sanjin_ledger::Search {
                text: w,
                limit: 10_000,
                ..Default::default()
            };
            let office = ledger.search(&sanjin_ledger::Viewer::Office, &s).unwrap();
            let account = d.account(COUNTY_STAFF).unwrap().unwrap();
            let chapter = ledger.search(&account.viewer(), &s).unwrap();
            (office.hits, chapter.hits)
        })
        .await
    };
    let (office_hits, chapter_hits) = everywhere;
    assert!(!chapter_hits.is_empty());
    assert!(chapter_hits.iter().all(|h| {
        h.group
            .as_deref()
            .is_some_and(|g| HANCHUAN_GROUPS.contains(&g))
    }));
    assert!(
        office_hits.len() > chapter_hits.len(),
        "the word occurs elsewhere too: {} vs {}",
        office_hits.len(),
        chapter_hits.len()
    );
    let found = text(
        &console_get(
            &h,
            &format!(
                "/console/records?kind=opinion&q={}",
                percent_encoding::utf8_percent_encode(&word, percent_encoding::NON_ALPHANUMERIC)
            ),
            &county,
        )
        .await,
    );
    assert!(!found.contains(">市政协第一委员活动组<"));
    assert!(found.contains("汉川市政协"));

    // Dashboard: the chapter's groups, and the figures of the chapter's slice.
    let dash = text(&console_get(&h, "/console/dashboard", &county).await);
    assert!(dash.contains("汉川市政协第一委员活动组"));
    assert!(!dash.contains(">市政协第一委员活动组<"));
    let (chapter_dash, office_dash) = h
        .data(|d| {
            let ledger = sanjin_ledger::Ledger::open(d.dir()).unwrap();
            let account = d.account(COUNTY_STAFF).unwrap().unwrap();
            let (from, to) = (
                NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
                NaiveDate::from_ymd_opt(2025, 12, 31).unwrap(),
            );
            (
                sanjin_ledger::dashboard::dashboard(&ledger, &account.viewer(), from, to).unwrap(),
                sanjin_ledger::dashboard::dashboard(
                    &ledger,
                    &sanjin_ledger::Viewer::Office,
                    from,
                    to,
                )
                .unwrap(),
            )
        })
        .await;
    let visits = rows(&h, RecordKind::Visit).await;
    let year = |e: &IndexEntry| e.date.as_deref().is_some_and(|d| d.starts_with("2025"));
    assert_eq!(
        chapter_dash.visits as usize,
        visits.iter().filter(|e| in_hanchuan(e) && year(e)).count()
    );
    assert_eq!(
        office_dash.visits as usize,
        visits.iter().filter(|e| year(e)).count()
    );
    assert_eq!(
        chapter_dash
            .six_ones
            .iter()
            .map(|r| r.group.as_str())
            .collect::<Vec<_>>(),
        HANCHUAN_GROUPS
    );
    let chapter_members = h
        .data(|d| {
            d.store()
                .list(&Filter {
                    kind: Some(RecordKind::Member),
                    ..Filter::default()
                })
                .unwrap()
                .into_iter()
                .filter(in_hanchuan)
                .count()
        })
        .await;
    assert_eq!(chapter_dash.members as usize, chapter_members);

    // Export: the county staff's workbook is the chapter's slice; another group is refused.
    let (county_rows, sliced_rows, office_rows) = h
        .data(|d| {
            let mut ledger = sanjin_ledger::Ledger::open(d.dir()).unwrap();
            let account = d.account(COUNTY_STAFF).unwrap().unwrap();
            let out = tempfile::tempdir().unwrap();
            let q = sanjin_ledger::Query::new(
                NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
                NaiveDate::from_ymd_opt(2025, 12, 31).unwrap(),
            );
            let mut sliced = q.clone();
            sliced.slice.chapter = Some(HANCHUAN.into());
            let fmt = sanjin_ledger::Format::Csv;
            let county = ledger
                .export(&account.viewer(), &q, fmt, &out.path().join("a.zip"))
                .unwrap();
            let by_city = ledger
                .export(
                    &sanjin_ledger::Viewer::Office,
                    &sliced,
                    fmt,
                    &out.path().join("b.zip"),
                )
                .unwrap();
            let office = ledger
                .export(
                    &sanjin_ledger::Viewer::Office,
                    &q,
                    fmt,
                    &out.path().join("c.zip"),
                )
                .unwrap();
            let mut other = q.clone();
            other.slice.group = Some("group-01".into());
            let refused = ledger
                .export(&account.viewer(), &other, fmt, &out.path().join("d.zip"))
                .unwrap_err();
            assert!(
                refused.zh().contains("属于其他政协组织"),
                "{}",
                refused.zh()
            );
            (county.rows, by_city.rows, office.rows)
        })
        .await;
    assert_eq!(
        county_rows, sliced_rows,
        "the same as city staff's chapter slice"
    );
    let activities =
        |r: &[sanjin_ledger::LedgerRows]| r.iter().find(|x| x.key == "activities").map(|x| x.rows);
    assert!(activities(&county_rows).unwrap() > 0);
    assert!(activities(&county_rows) < activities(&office_rows));
    let r = console_get(
        &h,
        "/console/export/file?from=2025-01-01&to=2025-12-31&format=csv",
        &county,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = console_get(
        &h,
        "/console/export/file?from=2025-01-01&to=2025-12-31&format=csv&group=group-01",
        &county,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Another chapter's record: its page and its steps are refused, naming it, in Chinese.
    let foreign = opinions
        .iter()
        .find(|e| e.group.as_deref() == Some("group-01") && e.status == "submitted")
        .expect("a submitted opinion of group-01");
    let page = console_get(&h, &format!("/console/records/{}", foreign.id), &county).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let why = text(&page);
    assert!(
        why.contains(&foreign.id) && why.contains("属于其他政协组织"),
        "{why}"
    );
    assert!(
        why.contains("孝感市政协"),
        "names the record's chapter: {why}"
    );
    let token = csrf(&h, &county).await;
    let r = post_form(
        &h,
        &format!("/console/records/{}/step", foreign.id),
        &county,
        format!("csrf={token}&step=accept"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(text(&r).contains(&foreign.id) && text(&r).contains("属于其他政协组织"));
    // Their own chapter's record opens, and a step on it lands, made by the server for them.
    let own = opinions
        .iter()
        .find(|e| in_hanchuan(e) && e.status == "submitted")
        .expect("a submitted Hanchuan opinion");
    let page = console_get(&h, &format!("/console/records/{}", own.id), &county).await;
    assert_eq!(page.status, StatusCode::OK);
    let r = post_form(
        &h,
        &format!("/console/records/{}/step", own.id),
        &county,
        format!("csrf={token}&step=accept"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", text(&r));
    let id = own.id.clone();
    let status = h
        .data(move |d| d.store().index_entry(&id).unwrap().unwrap().status)
        .await;
    assert_eq!(status, "accepted");

    // Members' records and the assessment: the chapter's members only.
    let r = console_get(&h, "/console/members/member-0001?year=2025", &county).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(text(&r).contains("属于其他政协组织"), "{}", text(&r));
    let hc_member = h
        .data(|d| {
            d.store()
                .list(&Filter {
                    kind: Some(RecordKind::Member),
                    group: Some("group-07".into()),
                    ..Filter::default()
                })
                .unwrap()[0]
                .id
                .clone()
        })
        .await;
    let r = console_get(
        &h,
        &format!("/console/members/{hc_member}?year=2025"),
        &county,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let assessment = h
        .data(|d| {
            let mut ledger = sanjin_ledger::Ledger::open(d.dir()).unwrap();
            let account = d.account(COUNTY_STAFF).unwrap().unwrap();
            ledger.assessment(&account.viewer(), 2025).unwrap()
        })
        .await;
    assert_eq!(assessment.len(), chapter_members);
    assert!(assessment.iter().all(|r| r.group.starts_with("汉川市政协")));
}

/// An opinion of kind `kind` of `group` recorded and submitted on the device.
fn record_opinion(dev: &mut Device, group: &str, kind: OpinionKind, topic: &str) -> String {
    let mut o: Opinion = common::fixtures()
        .opinions
        .iter()
        .find_map(|r| match &r.data {
            RecordData::Opinion(o) if o.group == group => Some(o.clone()),
            _ => None,
        })
        .unwrap();
    o.topic = topic.into();
    o.opinion_kind = kind;
    o.visit = None;
    let id = sanjin_store::new_record_id();
    let author = dev.store.author();
    let mut doc = RecordDoc::create(&id, &RecordData::Opinion(o), &author, now()).unwrap();
    doc.transition(&author, now(), EventType::Submit, None)
        .unwrap();
    dev.store.insert(&mut doc, true).unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue13_county_office_device_pulls_and_pushes_only_its_chapter() {
    let h = harness(true);
    let mut county = h.device(COUNTY_STAFF).await;
    h.sync_all(&mut county, 32 << 20).await;
    let mut city = h.device(CITY_STAFF).await;
    h.sync_all(&mut city, 32 << 20).await;
    let held = |d: &Device| -> Vec<(String, String)> { d.store.ids().unwrap() };
    let on_server = rows(&h, RecordKind::Opinion).await;
    let (county_ids, city_ids) = (held(&county), held(&city));
    // Every opinion and visit the county device holds is the chapter's; it holds all of them.
    let county_opinions: Vec<&String> = county_ids
        .iter()
        .filter(|(_, k)| k == "opinion")
        .map(|(id, _)| id)
        .collect();
    let expected: Vec<&String> = on_server
        .iter()
        .filter(|e| in_hanchuan(e))
        .map(|e| &e.id)
        .collect();
    assert_eq!(county_opinions.len(), expected.len());
    assert!(expected.iter().all(|id| county_opinions.contains(id)));
    for (id, kind) in &county_ids {
        if kind == "visit" || kind == "opinion" {
            let e = county.store.load(id).unwrap();
            let group = match e.data().unwrap() {
                RecordData::Visit(v) => v.group,
                RecordData::Opinion(o) => o.group,
                _ => unreachable!(),
            };
            assert!(HANCHUAN_GROUPS.contains(&group.as_str()), "{id} of {group}");
        }
    }
    // It has the whole directory, to name people; city staff have every record.
    let directory = |ids: &[(String, String)]| ids.iter().filter(|(_, k)| k == "member").count();
    assert_eq!(directory(&county_ids), directory(&city_ids));
    assert!(city_ids.len() > county_ids.len());
    assert_eq!(
        city_ids.iter().filter(|(_, k)| k == "opinion").count(),
        on_server.len()
    );

    // A record of another chapter's group made on the county device is refused; one of its own
    // chapter lands.
    let foreign = record_opinion(
        &mut county,
        "group-01",
        OpinionKind::Opinion,
        "县里写市里的记录",
    );
    let own = record_opinion(
        &mut county,
        "group-07",
        OpinionKind::Opinion,
        "汉川本地的记录",
    );
    let resp = h.sync_once(&mut county).await;
    assert_eq!(resp.refused.len(), 1, "{:?}", resp.refused);
    assert_eq!(resp.refused[0].doc_id, foreign);
    assert_eq!(resp.refused[0].code, RefusalCode::Forbidden);
    let (f, o) = (foreign.clone(), own.clone());
    let (has_foreign, has_own) = h
        .data(move |d| (d.store().exists(&f).unwrap(), d.store().exists(&o).unwrap()))
        .await;
    assert!(!has_foreign && has_own);

    // Its group secrets are its chapter's (issue 12's bundles).
    let groups = h
        .data(|d| {
            let a = d.account(COUNTY_STAFF).unwrap().unwrap();
            d.secret_groups(&a).unwrap()
        })
        .await;
    assert_eq!(groups, HANCHUAN_GROUPS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue13_legal_appeals_reach_the_legal_advisory_group_and_its_leader_handles_them() {
    let h = harness(false);
    let legal_group = h
        .data(|d| d.directory_facts().unwrap().legal_group.clone())
        .await;
    assert_eq!(
        legal_group.as_deref(),
        Some(LEGAL_GROUP),
        "a directory fact"
    );

    // A member of group-01 records two legal appeals and an ordinary opinion.
    let mut a = h.device(&common::members_of("group-01")[0]).await;
    let appeal_1 = record_opinion(
        &mut a,
        "group-01",
        OpinionKind::LegalAppeal,
        "拖欠工资讨要无门",
    );
    let appeal_2 = record_opinion(
        &mut a,
        "group-01",
        OpinionKind::LegalAppeal,
        "房屋租赁押金纠纷",
    );
    let ordinary = record_opinion(&mut a, "group-01", OpinionKind::Opinion, "小区路灯不亮");
    h.sync_all(&mut a, 32 << 20).await;

    // The phone of a member of the legal advisory group receives the appeals, not the rest.
    let legal_member = common::members_of(LEGAL_GROUP)[0].clone();
    let mut l = h.device(&legal_member).await;
    h.sync_all(&mut l, 32 << 20).await;
    assert!(l.has(&appeal_1) && l.has(&appeal_2));
    assert!(
        !l.has(&ordinary),
        "an ordinary opinion stays with its group"
    );
    // It may fetch the appeal by id too, not the ordinary opinion.
    let r = h
        .get(&format!("/v1/records/{appeal_1}"), Some(&l.bearer()))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = h
        .get(&format!("/v1/records/{ordinary}"), Some(&l.bearer()))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // An opinion its member turns into a legal appeal reaches the legal group whole: its
    // phones had none of its earlier changes.
    let turned = record_opinion(&mut a, "group-01", OpinionKind::Opinion, "工伤认定迟迟未办");
    h.sync_all(&mut a, 32 << 20).await;
    h.sync_all(&mut l, 32 << 20).await;
    assert!(!l.has(&turned));
    let mut doc = a.store.load(&turned).unwrap();
    doc.edit(
        &a.store.author(),
        now(),
        &[sanjin_core::Edit::Set {
            field: "opinion_kind".into(),
            value: serde_json::json!("legal_appeal"),
        }],
    )
    .unwrap();
    a.insert(&mut doc);
    h.sync_all(&mut a, 32 << 20).await;
    h.sync_all(&mut l, 32 << 20).await;
    let v = l.store.load(&turned).unwrap().view().unwrap();
    match v.data {
        RecordData::Opinion(o) => {
            assert_eq!(o.topic, "工伤认定迟迟未办");
            assert_eq!(o.opinion_kind, OpinionKind::LegalAppeal);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(v.status.code(), "submitted", "with its history");

    // Its leader sees them in the console's opinions list under 法律诉求, and accepts one.
    let leader = console_session(&h, LEGAL_LEADER).await;
    let list = text(&console_get(&h, "/console/opinions?kind=legal_appeal", &leader).await);
    assert!(
        list.contains("拖欠工资讨要无门") && list.contains("房屋租赁押金纠纷"),
        "{list}"
    );
    assert!(!list.contains("小区路灯不亮"));
    assert!(list.contains("id=\"o-kind\""));
    let page = console_get(&h, &format!("/console/records/{appeal_1}"), &leader).await;
    assert_eq!(page.status, StatusCode::OK);
    let token = csrf(&h, &leader).await;
    let r = post_form(
        &h,
        &format!("/console/records/{appeal_1}/step"),
        &leader,
        format!("csrf={token}&step=accept"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", text(&r));
    // Not the ordinary opinion of group-01.
    let r = console_get(&h, &format!("/console/records/{ordinary}"), &leader).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // From the leader's phone: it receives the appeals and accepts the other one.
    let mut lp = h.device(LEGAL_LEADER).await;
    h.sync_all(&mut lp, 32 << 20).await;
    assert!(lp.has(&appeal_2));
    let mut doc = lp.store.load(&appeal_2).unwrap();
    doc.transition(&lp.store.author(), now(), EventType::Accept, None)
        .unwrap();
    lp.insert(&mut doc);
    let resp = h.sync_once(&mut lp).await;
    assert!(resp.refused.is_empty(), "{:?}", resp.refused);
    let ids = [appeal_1.clone(), appeal_2.clone()];
    let states = h
        .data(move |d| {
            ids.iter()
                .map(|id| d.store().index_entry(id).unwrap().unwrap().status)
                .collect::<Vec<_>>()
        })
        .await;
    assert_eq!(states, ["accepted", "accepted"]);
    // Both steps reach the member who recorded them.
    h.sync_all(&mut a, 32 << 20).await;
    for id in [&appeal_1, &appeal_2] {
        let v = a.store.load(id).unwrap().view().unwrap();
        assert_eq!(v.status.code(), "accepted", "{id}");
    }

    // The leader of a third group can do neither: not in the console, not from a phone.
    let other = console_session(&h, LEADER_2).await;
    let r = console_get(&h, &format!("/console/records/{appeal_1}"), &other).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let token = csrf(&h, &other).await;
    let r = post_form(
        &h,
        &format!("/console/records/{appeal_1}/step"),
        &other,
        format!("csrf={token}&step=handle&note=%E5%B7%B2%E5%8A%9E"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let mut op = h.device(LEADER_2).await;
    h.sync_all(&mut op, 32 << 20).await;
    assert!(!op.has(&appeal_1), "not pulled by another group");
    let mut doc = RecordDoc::load(&a.store.load(&appeal_1).unwrap().save()).unwrap();
    doc.transition(&op.store.author(), now(), EventType::Handle, Some("已办"))
        .unwrap();
    op.insert(&mut doc);
    let resp = h.sync_once(&mut op).await;
    assert_eq!(resp.refused.len(), 1, "{:?}", resp.refused);
    assert_eq!(resp.refused[0].code, RefusalCode::Forbidden);
    let id = appeal_1.clone();
    let status = h
        .data(move |d| d.store().index_entry(&id).unwrap().unwrap().status)
        .await;
    assert_eq!(status, "accepted", "nothing of the forged step landed");
}

#[test]
fn issue13_an_older_data_folder_opens_and_its_accounts_keep_working() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("data");
    {
        let mut data = ServerData::open(&path).unwrap();
        data.import_directory(&common::small_directory(dir.path()))
            .unwrap();
        data.add_staff(CITY_STAFF, "王芳", Role::Staff).unwrap();
        sanjin_server::console::set_password(&mut data, CITY_STAFF, "staff-pass-13").unwrap();
    }
    // The folder as a server of schema 6 left it: no chapter, no second reader.
    {
        let c = rusqlite::Connection::open(path.join(sanjin_server::DB_FILE)).unwrap();
        c.execute_batch(
            "ALTER TABLE accounts DROP COLUMN chapter;
             ALTER TABLE change_log DROP COLUMN also;
             UPDATE server_meta SET value = '6' WHERE key = 'schema_version';",
        )
        .unwrap();
    }
    let mut data = ServerData::open(&path).unwrap();
    let version: String = rusqlite::Connection::open(path.join(sanjin_server::DB_FILE))
        .unwrap()
        .query_row(
            "SELECT value FROM server_meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, "7");
    let staff = data.account(CITY_STAFF).unwrap().unwrap();
    assert_eq!((staff.role, staff.chapter.as_deref()), (Role::Staff, None));
    assert!(staff.reads_everything(), "city staff as before");
    let member = data.account(common::LEADER_1).unwrap().unwrap();
    assert_eq!(member.role, Role::Leader);
    assert!(
        sanjin_server::console::sign_in(&mut data, CITY_STAFF, "staff-pass-13")
            .unwrap()
            .is_some(),
        "the console password still works"
    );
    // The new column takes a chapter; the city chapter is refused (its staff see everything).
    let county = data
        .add_county_staff("office-hc", "汉川市政协秘书", HANCHUAN)
        .unwrap();
    assert_eq!(county.county(), Some(HANCHUAN));
    let again = data.account("office-hc").unwrap().unwrap();
    assert_eq!(again.chapter.as_deref(), Some(HANCHUAN));
    assert!(data.set_chapter(CITY_STAFF, Some("chapter-city")).is_err());
    assert!(data.set_chapter(common::LEADER_1, Some(HANCHUAN)).is_err());
}

#[test]
fn issue13_legal_leader_and_county_staff_lists_in_chromium() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let data_dir = dir.path().join("data");
    let appeal = "邻里宅基地界址纠纷";
    {
        let mut data = ServerData::open(&data_dir).unwrap();
        data.import_directory(&sanjin_fixtures::committed_dir())
            .unwrap();
        let f = common::fixtures();
        let records = f.opinions.to_vec();
        data.import_records(&records).unwrap();
        data.add_county_staff(COUNTY_STAFF, "汉川市政协秘书", HANCHUAN)
            .unwrap();
        // A legal appeal recorded in group-01, as a member's phone would have pushed it.
        let mut o: Opinion = f
            .opinions
            .iter()
            .find_map(|r| match &r.data {
                RecordData::Opinion(o) if o.group == "group-01" => Some(o.clone()),
                _ => None,
            })
            .unwrap();
        o.topic = appeal.into();
        o.opinion_kind = OpinionKind::LegalAppeal;
        o.visit = None;
        // Today: the newest, on the list's first page.
        o.recorded_on = sanjin_core::time::beijing_date(now());
        let by =
            sanjin_core::Author::new(&common::members_of("group-01")[0], "phone-1", &[0x13; 16])
                .unwrap();
        let mut doc =
            RecordDoc::create("opinion-legal-1", &RecordData::Opinion(o), &by, now()).unwrap();
        doc.transition(&by, now(), EventType::Submit, None).unwrap();
        data.import_docs(&mut [doc]).unwrap();
        for who in [LEGAL_LEADER, COUNTY_STAFF] {
            sanjin_server::console::set_password(&mut data, who, "scope-pass-13").unwrap();
        }
    }
    let live = rt.block_on(common::live::Live::start(&data_dir));
    let base = live.running.url();
    let downloads = tempfile::tempdir().unwrap();
    let mut c = browser::Chromium::start(downloads.path());
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-shots");
    std::fs::create_dir_all(&shots).unwrap();
    let sign_in = |c: &mut browser::Chromium, who: &str| {
        c.page("Network.clearBrowserCookies", serde_json::json!({}));
        c.goto(&format!("{base}/console/login"));
        c.eval(&format!(
            "document.getElementById('account').value = '{who}'; document.getElementById('password').value = 'scope-pass-13'; document.getElementById('signin').click(); true"
        ));
        c.wait("location.pathname === '/console/dashboard' && document.getElementById('stats')");
    };
    let inner = |c: &mut browser::Chromium, id: &str| -> String {
        c.eval(&format!("document.getElementById('{id}').innerText"))
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    // The legal advisory group's leader picks 法律诉求 in the opinions list.
    sign_in(&mut c, LEGAL_LEADER);
    c.goto(&format!("{base}/console/opinions"));
    c.wait("document.getElementById('o-kind')");
    c.eval("document.getElementById('o-kind').value = 'legal_appeal'; document.getElementById('o-submit').click(); true");
    c.wait("location.search.includes('kind=legal_appeal') && document.getElementById('o-total')");
    let listed = inner(&mut c, "opinions");
    assert!(listed.contains(appeal), "{listed}");
    assert!(
        listed.contains("市政协第一委员活动组"),
        "recorded by group-01"
    );
    let legal_appeals = common::fixtures()
        .opinions
        .iter()
        .filter(|r| matches!(&r.data, RecordData::Opinion(o) if o.opinion_kind == OpinionKind::LegalAppeal))
        .count()
        + 1;
    assert_eq!(inner(&mut c, "o-total"), format!("共 {legal_appeals} 条"));
    c.screenshot(&shots.join("issue13-legal-leader-opinions.png"));
    c.assert_no_csp_violations("legal leader's opinions list");

    // Staff of 汉川市政协: their chapter's groups only, in the list and in the group choice.
    sign_in(&mut c, COUNTY_STAFF);
    c.goto(&format!("{base}/console/opinions"));
    c.wait("document.getElementById('o-group')");
    let choice = inner(&mut c, "o-group");
    assert!(choice.contains("汉川市政协第一委员活动组"));
    assert!(
        !choice.contains("应城市政协")
            && !choice.lines().any(|l| l.trim() == "市政协第一委员活动组")
    );
    let listed = inner(&mut c, "opinions");
    assert!(!listed.contains(appeal));
    for line in listed.lines().skip(1) {
        assert!(line.contains("汉川市政协"), "{line}");
    }
    c.screenshot(&shots.join("issue13-county-staff-opinions.png"));
    c.assert_no_csp_violations("county staff's opinions list");
    for name in [
        "issue13-legal-leader-opinions.png",
        "issue13-county-staff-opinions.png",
    ] {
        let _ = std::fs::create_dir_all("/work/notes/shots");
        let _ = std::fs::copy(shots.join(name), format!("/work/notes/shots/{name}"));
    }
}

/// Issue 13, point 4: staff of a county chapter keep only their chapter's directory — adding,
/// editing, moving and retiring another chapter's entries (or a city-wide unit) is refused in
/// Chinese, naming the entry and its chapter; city staff change every entry.
#[test]
fn issue13_county_staff_change_only_their_chapters_directory() {
    use sanjin_core::domain::{ContactPoint, TargetKind, Unit};
    let dir = tempfile::TempDir::new().unwrap();
    let mut data = ServerData::open(&dir.path().join("data")).unwrap();
    data.import_directory(&sanjin_fixtures::committed_dir())
        .unwrap();
    data.add_staff(CITY_STAFF, "王芳", Role::Staff).unwrap();
    data.add_county_staff(COUNTY_STAFF, "汉川市政协秘书", HANCHUAN)
        .unwrap();
    let forbidden = |r: sanjin_server::Result<()>, needle: &str| match r {
        Err(sanjin_server::Error::Forbidden(m)) => {
            assert!(m.contains(needle), "{m} names {needle}");
            assert!(
                m.contains("只能修改本政协组织的名录") || m.contains("全市通用"),
                "{m}"
            );
        }
        other => panic!("expected a refusal naming {needle}, got {other:?}"),
    };
    let cp = |chapter: &str| {
        RecordData::ContactPoint(ContactPoint {
            name: "新建联系点".into(),
            target_kind: TargetKind::Community,
            chapter: chapter.into(),
            address: String::new(),
            gps: None,
        })
    };

    // Adding: their chapter yes, the city's no.
    data.create_entry(COUNTY_STAFF, "cp-hc-new", &cp(HANCHUAN))
        .unwrap();
    forbidden(
        data.create_entry(COUNTY_STAFF, "cp-city-new", &cp("chapter-city")),
        "cp-city-new",
    );
    assert!(
        data.directory_entry("cp-city-new").is_err(),
        "nothing saved"
    );

    // Editing: a member of their chapter's group-07 yes; one of the city's group-01 no, and an
    // entry of theirs cannot be handed to another chapter.
    // member-0169 is of group-07, 汉川市政协's.
    let ours_id = "member-0169";
    let ours_data = data.directory_entry(ours_id).unwrap().0;
    assert!(matches!(&ours_data, RecordData::Member(m) if m.group == HANCHUAN_GROUPS[0]));
    let RecordData::Member(mut m) = ours_data else {
        unreachable!()
    };
    m.name = format!("{}（改）", m.name);
    assert_eq!(
        data.edit_entry(COUNTY_STAFF, ours_id, &RecordData::Member(m.clone()))
            .unwrap(),
        1
    );
    let mut elsewhere = m.clone();
    elsewhere.chapter = "chapter-city".into();
    match data.edit_entry(COUNTY_STAFF, ours_id, &RecordData::Member(elsewhere)) {
        Err(sanjin_server::Error::Forbidden(msg)) => assert!(msg.contains("chapter-city"), "{msg}"),
        other => panic!("moving an entry out of the chapter: {other:?}"),
    }
    let (city_member, city_data) = (
        "member-0001",
        data.directory_entry("member-0001").unwrap().0,
    );
    let RecordData::Member(mut cm) = city_data else {
        unreachable!()
    };
    assert_ne!(cm.chapter, HANCHUAN);
    cm.name = format!("{}（改）", cm.name);
    match data.edit_entry(COUNTY_STAFF, city_member, &RecordData::Member(cm.clone())) {
        Err(sanjin_server::Error::Forbidden(msg)) => {
            assert!(
                msg.contains(city_member) && msg.contains("属于其他政协组织"),
                "{msg}"
            )
        }
        other => panic!("editing the city's member: {other:?}"),
    }
    // Moving their member into a city group, and retiring the city's member: refused.
    match data.move_member(COUNTY_STAFF, ours_id, "group-01", None) {
        Err(sanjin_server::Error::Forbidden(msg)) => assert!(msg.contains("group-01"), "{msg}"),
        other => panic!("moving into another chapter's group: {other:?}"),
    }
    assert!(matches!(
        data.retire_member(COUNTY_STAFF, city_member, "任期届满", None),
        Err(sanjin_server::Error::Forbidden(_))
    ));
    // A city-wide unit (no chapter) is the city's to keep.
    data.create_entry(
        CITY_STAFF,
        "unit-city",
        &RecordData::Unit(Unit {
            name: "市信访局".into(),
            chapter: None,
        }),
    )
    .unwrap();
    forbidden(
        data.retire_entry(COUNTY_STAFF, "unit-city", "撤并"),
        "unit-city",
    );
    // City staff change every entry.
    data.edit_entry(CITY_STAFF, city_member, &RecordData::Member(cm))
        .unwrap();
    data.retire_entry(CITY_STAFF, "unit-city", "撤并").unwrap();
}
