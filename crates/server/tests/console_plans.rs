//! Issue 13, point 3 and its part of 9: the year's plan in the console. A real server on
//! loopback with TLS (`Harness::live`), a member's real device store that records visits and
//! syncs, and office staff, a group leader and an admin in a real headless Chromium: a plan
//! item created (a field's error shown in Chinese, the values kept) and edited (the same
//! record), a sheet with good and bad rows imported (every row's errors shown, nothing saved
//! until the confirmation, then exactly the valid rows), plan vs actual per group and per
//! member with the member's visits; the leader only for the group (another group refused in
//! Chinese), the admin not at all; the member's phone syncs and holds the plan items.

mod browser;
mod common;

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use browser::Chromium;
use common::console::{csrf, form};
use common::{Device, Harness, now};
use sanjin_core::RecordDoc;
use sanjin_core::domain::{ActivityType, RecordData, RecordKind, Visit};
use serde_json::json;

const STAFF: &str = "office-01";
const ADMIN: &str = "admin-01";
/// The leader of group-01.
const LEADER: &str = "member-0002";
/// A member of group-01 (陈方敏), whose phone records visits.
const OWNER: &str = "member-0001";
/// Another member of group-01 (任永刚).
const OWNER_2: &str = "member-0004";

fn password(who: &str) -> String {
    format!("pass-{who}")
}

/// A visit of group-01 recorded on the device: `participants`, type, day, contact point.
fn visit(dev: &mut Device, people: &[&str], ty: ActivityType, day: &str, cp: &str, title: &str) {
    let mut v: Visit = common::fixtures()
        .visits
        .iter()
        .find_map(|r| match &r.data {
            RecordData::Visit(v) if v.group == "group-01" => Some(v.clone()),
            _ => None,
        })
        .unwrap();
    let start =
        chrono::NaiveDateTime::parse_from_str(&format!("{day} 09:00"), "%Y-%m-%d %H:%M").unwrap();
    v.start = start;
    v.end = start + chrono::Duration::hours(2);
    v.activity_type = ty;
    v.contact_point = cp.into();
    v.title = title.into();
    v.participants = people.iter().map(|p| p.to_string()).collect();
    v.photos.clear();
    let id = sanjin_store::new_record_id();
    let mut doc =
        RecordDoc::create(&id, &RecordData::Visit(v), &dev.store.author(), now()).unwrap();
    dev.store.insert(&mut doc, true).unwrap();
}

/// The sheet staff upload: three good rows and four with errors.
fn plan_sheet(path: &Path) {
    let rows: [[&str; 8]; 7] = [
        // Good: by names, by ids, the quarter left to the month.
        [
            "2025",
            "3",
            "7",
            "市政协第一委员活动组",
            "陈方敏",
            "入户走访",
            "走访东风村困难户",
            "闵集乡东风村",
        ],
        [
            "2025",
            "3",
            "8",
            "group-01",
            "member-0004",
            "委员讲堂",
            "政策宣讲进社区",
            "cp-005",
        ],
        [
            "2025",
            "",
            "9",
            "市政协第一委员活动组",
            "任永刚",
            "协商活动",
            "园区企业用工协商",
            "",
        ],
        // Bad: an unknown owner; a month outside its quarter; an unknown type; a duplicate.
        [
            "2025",
            "3",
            "7",
            "市政协第一委员活动组",
            "张无忌",
            "入户走访",
            "走访",
            "",
        ],
        [
            "2025",
            "1",
            "8",
            "市政协第一委员活动组",
            "陈方敏",
            "调研座谈",
            "座谈",
            "",
        ],
        [
            "2025",
            "4",
            "10",
            "市政协第一委员活动组",
            "陈方敏",
            "喝茶",
            "茶话会",
            "",
        ],
        [
            "2025",
            "3",
            "7",
            "group-01",
            "member-0001",
            "home_visit",
            "走访东风村困难户",
            "",
        ],
    ];
    let mut book = rust_xlsxwriter::Workbook::new();
    let s = book.add_worksheet();
    s.set_name("年度计划").unwrap();
    let header = [
        "年度",
        "季度",
        "月份",
        "活动组",
        "责任委员",
        "活动类型",
        "计划内容",
        "联系点（可不填）",
    ];
    for (c, h) in header.iter().enumerate() {
        s.write(0, c as u16, *h).unwrap();
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            if v.is_empty() {
                continue;
            }
            match v.parse::<f64>() {
                Ok(n) => s.write(r as u32 + 1, c as u16, n).unwrap(),
                Err(_) => s.write(r as u32 + 1, c as u16, *v).unwrap(),
            };
        }
    }
    book.save(path).unwrap();
}

/// An XLSX of `rows` under the template's header, as bytes.
fn downloads_sheet(rows: &[[&str; 8]]) -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let s = book.add_worksheet();
    for (c, h) in [
        "年度",
        "季度",
        "月份",
        "活动组",
        "责任委员",
        "活动类型",
        "计划内容",
        "联系点",
    ]
    .iter()
    .enumerate()
    {
        s.write(0, c as u16, *h).unwrap();
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            if !v.is_empty() {
                s.write(r as u32 + 1, c as u16, *v).unwrap();
            }
        }
    }
    book.save_to_buffer().unwrap()
}

/// The plan items the server holds: (id, month, title).
async fn plan_items(h: &Harness) -> Vec<(String, String, String)> {
    h.data(|d| {
        let mut v: Vec<(String, String, String)> = d
            .store()
            .list(&sanjin_store::Filter {
                kind: Some(RecordKind::Plan),
                ..Default::default()
            })
            .unwrap()
            .into_iter()
            .map(|e| (e.id, e.date.unwrap_or_default(), e.title))
            .collect();
        v.sort();
        v
    })
    .await
}

#[test]
fn issue13_plans_created_edited_imported_and_compared_in_chromium() {
    let (rt, h, base) = common::console::live_server();
    rt.block_on(h.data(|d| {
        for who in [STAFF, LEADER, ADMIN] {
            sanjin_server::console::set_password(d, who, &password(who)).unwrap();
        }
    }));
    let mut dev = rt.block_on(h.device(OWNER));
    rt.block_on(h.sync_all(&mut dev, 32 << 20));

    let downloads = tempfile::tempdir().unwrap();
    let mut c = Chromium::start(downloads.path());
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-shots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = |c: &mut Chromium, name: &str| {
        let p = shots.join(format!("issue13-plans-{name}.png"));
        c.screenshot(&p);
        let _ = std::fs::create_dir_all("/work/notes/shots");
        let _ = std::fs::copy(&p, format!("/work/notes/shots/issue13-plans-{name}.png"));
    };

    // ---------------------------------------------------------------- staff: create
    c.sign_in(&base, STAFF, &password(STAFF));
    c.goto(&format!("{base}/console/plans?year=2025"));
    c.wait("document.getElementById('plan-stats')");
    assert_eq!(c.inner_text("total-planned"), "0");
    c.eval("document.getElementById('plan-new').click(); true");
    c.wait("document.getElementById('plan-form')");
    c.set_values(&[
        ("f-year", "2025"),
        ("f-quarter", "1"),
        ("f-month", "5"),
        ("f-group", "group-01"),
        ("f-owner", OWNER),
        ("f-type", "research_symposium"),
        ("f-title", "新华社区人居环境专题调研"),
        ("f-cp", "cp-002"),
    ]);
    c.eval("document.getElementById('f-save').click(); true");
    // The month outside the quarter: the core's rule, in Chinese, naming the field; nothing
    // saved, what was typed kept.
    c.wait("document.getElementById('err-month')");
    assert_eq!(
        c.inner_text("err-month"),
        "月份（month）：5 月不在第 1 季度内，请核对季度和月份"
    );
    assert_eq!(
        c.eval("document.getElementById('f-title').value"),
        json!("新华社区人居环境专题调研")
    );
    assert_eq!(
        c.eval("document.getElementById('f-cp').value"),
        json!("cp-002")
    );
    assert_eq!(
        c.eval("document.getElementById('f-owner').value"),
        json!(OWNER)
    );
    shot(&mut c, "form-error");
    assert!(rt.block_on(plan_items(&h)).is_empty(), "nothing saved");
    c.set_values(&[("f-quarter", "2")]);
    c.eval("document.getElementById('f-save').click(); true");
    c.wait("document.getElementById('plans-done')");
    assert!(c.inner_text("plans-done").contains("已新增计划项"));
    let items = rt.block_on(plan_items(&h));
    assert_eq!(items.len(), 1);
    let created = items[0].0.clone();
    assert_eq!(items[0].1, "2025-05-01");

    // ---------------------------------------------------------------- staff: edit
    c.eval(&format!(
        "document.getElementById('edit-{created}').click(); true"
    ));
    c.wait("document.getElementById('plan-form')");
    assert_eq!(
        c.eval("document.getElementById('f-month').value"),
        json!("5")
    );
    c.set_values(&[
        ("f-month", "6"),
        ("f-title", "新华社区人居环境专题调研（六月）"),
    ]);
    c.eval("document.getElementById('f-save').click(); true");
    c.wait("document.getElementById('plans-done')");
    assert!(c.inner_text("plans-done").contains("已保存修改"));
    let items = rt.block_on(plan_items(&h));
    assert_eq!(
        items,
        vec![(
            created.clone(),
            "2025-06-01".to_string(),
            "新华社区人居环境专题调研（六月）".to_string()
        )],
        "the same record, edited"
    );
    let id = created.clone();
    let (actions, server_actor) = rt.block_on(h.data(move |d| {
        let mut doc = d.store().load(&id).unwrap();
        let actions: Vec<(String, String)> = doc
            .history()
            .into_iter()
            .map(|e| (e.action, e.member))
            .collect();
        let server = hex::encode(&d.store().identity().actor);
        let all_server = doc
            .changes()
            .iter()
            .all(|c| c.actor_id().to_hex_string() == server);
        (actions, all_server)
    }));
    assert_eq!(
        actions,
        vec![
            ("create".to_string(), STAFF.to_string()),
            ("edit".to_string(), STAFF.to_string())
        ],
        "made and edited by the server, naming the staff member"
    );
    assert!(server_actor);

    // ---------------------------------------------------------------- staff: import
    let sheet = downloads.path().join("2025年度计划.xlsx");
    plan_sheet(&sheet);
    c.goto(&format!("{base}/console/plans/import"));
    c.wait("document.getElementById('import-form')");
    c.choose_file("import-file", &sheet);
    c.eval("document.getElementById('import-preview').click(); true");
    c.wait("document.getElementById('import-summary')");
    assert_eq!(c.inner_text("rows-total"), "7");
    assert_eq!(c.inner_text("rows-valid"), "3");
    assert_eq!(c.inner_text("rows-bad"), "4");
    assert!(c.inner_text("import-summary").contains("尚未保存任何内容"));
    for (line, needle) in [
        (2, "可以导入"),
        (3, "可以导入"),
        (4, "可以导入"),
        (5, "责任委员：“张无忌”不在委员名录中"),
        (6, "月份（month）：8 月不在第 1 季度内"),
        (7, "活动类型（activity_type）：无法识别“喝茶”"),
        (8, "与第 2 行重复"),
    ] {
        let got = c.inner_text(&format!("result-{line}"));
        assert!(got.contains(needle), "row {line}: {got}");
    }
    assert_eq!(
        c.eval("document.querySelectorAll('#row-5 td.cell-err').length"),
        json!(1),
        "the owner's cell is marked"
    );
    shot(&mut c, "import-preview");
    assert_eq!(
        rt.block_on(plan_items(&h)).len(),
        1,
        "the preview saved nothing"
    );
    c.eval("document.getElementById('import-confirm').click(); true");
    c.wait("document.getElementById('plans-done')");
    assert!(
        c.inner_text("plans-done")
            .contains("已从 Excel 导入 3 条计划项")
    );
    let items = rt.block_on(plan_items(&h));
    let titles: Vec<&str> = items.iter().map(|i| i.2.as_str()).collect();
    assert_eq!(items.len(), 4, "{titles:?}");
    for t in ["走访东风村困难户", "政策宣讲进社区", "园区企业用工协商"] {
        assert!(titles.contains(&t), "{t} in {titles:?}");
    }

    // The same sheet again: every good row is now a duplicate of a saved item, nothing to
    // confirm.
    c.goto(&format!("{base}/console/plans/import"));
    c.wait("document.getElementById('import-form')");
    c.choose_file("import-file", &sheet);
    c.eval("document.getElementById('import-preview').click(); true");
    c.wait("document.getElementById('import-summary')");
    assert_eq!(c.inner_text("rows-valid"), "0");
    assert!(c.inner_text("result-2").contains("与已有计划项重复"));
    assert!(c.absent("import-confirm"));

    // ---------------------------------------------------------------- plan vs actual
    // The member's phone: a June symposium at cp-002 (carries out the edited item), a July
    // home visit at 闵集乡东风村 (cp-003) with 任永刚 too (carries out 陈方敏's item; 任永刚 has
    // none that month), a September consultation without 任永刚 (carries out nothing), a May
    // symposium (the item moved to June: nothing).
    visit(
        &mut dev,
        &[OWNER],
        ActivityType::ResearchSymposium,
        "2025-06-12",
        "cp-002",
        "高新社区人居环境座谈",
    );
    visit(
        &mut dev,
        &[OWNER, OWNER_2],
        ActivityType::HomeVisit,
        "2025-07-08",
        "cp-003",
        "东风村入户走访",
    );
    visit(
        &mut dev,
        &[OWNER],
        ActivityType::Consultation,
        "2025-09-03",
        "cp-001",
        "园区用工协商",
    );
    visit(
        &mut dev,
        &[OWNER],
        ActivityType::ResearchSymposium,
        "2025-05-20",
        "cp-002",
        "五月座谈",
    );
    rt.block_on(h.sync_all(&mut dev, 32 << 20));

    c.goto(&format!("{base}/console/plans?year=2025&group=group-01"));
    c.wait("document.getElementById('plan-items')");
    assert_eq!(c.inner_text("total-planned"), "4");
    assert_eq!(c.inner_text("total-done"), "2");
    assert_eq!(c.inner_text("total-rate"), "50.0%");
    let g = c.inner_text("g-group-01");
    assert!(g.contains("市政协第一委员活动组\t4\t2\t50.0%"), "{g}");
    let m = c.inner_text(&format!("m-{OWNER}"));
    assert!(
        m.contains("陈方敏\t市政协第一委员活动组\t2\t2\t100.0%"),
        "{m}"
    );
    let m = c.inner_text(&format!("m-{OWNER_2}"));
    assert!(
        m.contains("任永刚\t市政协第一委员活动组\t2\t0\t0.0%"),
        "{m}"
    );
    let m = c.inner_text(&format!("m-{LEADER}"));
    assert!(m.contains("0\t0\t—") && m.contains("未安排计划项"), "{m}");
    let row = c.inner_text(&format!("p-{created}"));
    assert!(
        row.contains("已落实") && row.contains("2025-06-12 高新社区人居环境座谈"),
        "{row}"
    );
    assert!(
        c.inner_text("plan-rule")
            .contains("一次活动只能落实同一委员的一项计划")
    );
    shot(&mut c, "list");
    // Per member.
    c.goto(&format!("{base}/console/plans?year=2025&member={OWNER_2}"));
    c.wait("document.getElementById('plan-items')");
    assert_eq!(c.inner_text("total-planned"), "2");
    assert_eq!(c.inner_text("total-done"), "0");
    assert!(!c.inner_text("plan-items").contains("陈方敏"));
    // Staff plans for group-02 too (for the leader's refusals below).
    c.goto(&format!("{base}/console/plans/new?year=2025"));
    c.wait("document.getElementById('plan-form')");
    c.set_values(&[
        ("f-month", "3"),
        ("f-group", "group-02"),
        ("f-owner", "member-0027"),
        ("f-type", "consultation"),
        ("f-title", "长兴社区议事协商"),
    ]);
    c.eval("document.getElementById('f-save').click(); true");
    c.wait("document.getElementById('plans-done')");
    let other = rt
        .block_on(plan_items(&h))
        .into_iter()
        .find(|i| i.2 == "长兴社区议事协商")
        .unwrap()
        .0;
    c.assert_no_csp_violations("on the staff's plan pages");

    // ---------------------------------------------------------------- the leader
    c.sign_in(&base, LEADER, &password(LEADER));
    c.goto(&format!("{base}/console/plans?year=2025"));
    c.wait("document.getElementById('plan-items')");
    assert_eq!(c.inner_text("total-planned"), "4", "the group's only");
    assert!(!c.inner_text("plan-items").contains("长兴社区议事协商"));
    assert!(c.absent("p-group"));
    c.goto(&format!("{base}/console/plans?year=2025&group=group-02"));
    c.wait("document.body.innerText.includes('组长只能查看本组（group-01）的年度计划')");
    c.goto(&format!("{base}/console/plans/{other}/edit"));
    c.wait("document.body.innerText.includes('组长只能制定和修改本组（group-01）的计划')");
    c.goto(&format!("{base}/console/plans/new?year=2025"));
    c.wait("document.getElementById('plan-form')");
    assert_eq!(
        c.eval(
            "Array.from(document.getElementById('f-group').options).map(o => o.value).join(',')"
        ),
        json!(",group-01"),
        "only the own group to choose"
    );
    c.set_values(&[
        ("f-month", "10"),
        ("f-owner", "member-0005"),
        ("f-type", "lecture"),
        ("f-title", "委员讲堂：基层治理"),
    ]);
    c.eval("document.getElementById('f-save').click(); true");
    c.wait("document.getElementById('plans-done')");
    assert_eq!(c.inner_text("total-planned"), "5");
    shot(&mut c, "leader");
    // Readable on a phone: the plan page fits 390 px (its tables scroll inside their cards).
    c.page(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
    );
    c.goto(&format!("{base}/console/plans?year=2025"));
    c.wait("document.getElementById('plan-items')");
    assert_eq!(
        c.eval("document.documentElement.scrollWidth <= window.innerWidth"),
        json!(true),
        "the plan page fits a phone's width"
    );
    shot(&mut c, "phone");
    c.page("Emulation.clearDeviceMetricsOverride", json!({}));
    c.assert_no_csp_violations("on the leader's plan pages");
    drop(c);

    // ---------------------------------------------------------------- the role rules, forged
    rt.block_on(async {
        let leader = common::photos::console_session(&h, LEADER).await;
        let token = csrf(&h, &leader).await;
        let body = |group: &str, token: &str| {
            format!(
                "csrf={token}&year=2025&quarter=2&month=5&group={group}&owner=member-0027&activity_type=consultation&title=x"
            )
        };
        let r = h.call(form("/console/plans", &leader, body("group-02", &token))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(
            r.text().contains("组长只能制定和修改本组（group-01）的计划"),
            "{}",
            r.text()
        );
        let r = h
            .call(form(
                &format!("/console/plans/{other}/edit"),
                &leader,
                body("group-01", &token),
            ))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(r.text().contains(&other), "the refusal names the item");
        // The admin: neither the form nor a forged POST.
        let admin = common::photos::console_session(&h, ADMIN).await;
        let token = csrf(&h, &admin).await;
        let r = common::photos::console_get(&h, "/console/plans/new", &admin).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(r.text().contains("管理员账户不能制定或修改年度计划"));
        let r = h.call(form("/console/plans", &admin, body("group-02", &token))).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = common::photos::console_get(&h, "/console/plans?year=2025", &admin).await;
        assert_eq!(r.status, StatusCode::OK, "the admin reads the plan");
        assert!(!r.text().contains("id=\"plan-new\""));
        // Staff: every field named; a POST without the token refused.
        let staff = common::photos::console_session(&h, STAFF).await;
        let token = csrf(&h, &staff).await;
        let r = h
            .call(form(
                "/console/plans",
                &staff,
                format!("csrf={token}&year=2025&quarter=3&month=7&group=group-01&owner=member-0027&activity_type=x&title=&contact_point=cp-009"),
            ))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        for needle in [
            "属于市政协第二委员活动组，不是市政协第一委员活动组的成员",
            "不是市政协第一委员活动组的联系点",
            "活动类型（activity_type）：无法识别“x”",
            "计划内容（title）：",
        ] {
            assert!(r.text().contains(needle), "{needle}: {}", r.text());
        }
        let r = h
            .call(form("/console/plans", &staff, "csrf=00&year=2025".into()))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(r.text().contains("页面已过期"));
        // A confirmation without a preview of this session.
        let r = h
            .call(form(
                "/console/plans/import/confirm",
                &staff,
                format!("csrf={token}&token={}", "ab".repeat(32)),
            ))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(r.text().contains("这次导入的预览已失效"));
        // A preview confirmed after the plan changed: the row is now a duplicate of an item
        // made meanwhile, so nothing of the preview is saved.
        let sheet = downloads_sheet(&[["2025", "4", "11", "group-01", "member-0005", "入户走访", "十一月走访", ""]]);
        let boundary = "sanjinTestBoundary";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{token}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"plan.xlsx\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(&sheet);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let r = h
            .call(
                Request::builder()
                    .method(Method::POST)
                    .uri("/console/plans/import")
                    .header("content-type", format!("multipart/form-data; boundary={boundary}"))
                    .header("cookie", &staff)
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let page = r.text();
        assert!(page.contains("检查通过 <b id=\"rows-valid\">1</b>"), "{page}");
        let at = page.find("name=\"token\" value=\"").unwrap() + 20;
        let preview = page[at..at + 64].to_string();
        let title = percent_encoding::utf8_percent_encode("十一月走访", percent_encoding::NON_ALPHANUMERIC);
        let r = h
            .call(form(
                "/console/plans",
                &staff,
                format!("csrf={token}&year=2025&quarter=4&month=11&group=group-01&owner=member-0005&activity_type=home_visit&title={title}"),
            ))
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
        let r = h
            .call(form(
                "/console/plans/import/confirm",
                &staff,
                format!("csrf={token}&token={preview}"),
            ))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(
            r.text().contains("自预览以来名录或已有计划有了变化，未保存任何内容。第 2 行：与已有计划项重复"),
            "{}",
            r.text()
        );
        // The template: the header row read back.
        let r = common::photos::console_get(&h, "/console/plans/template", &staff).await;
        assert_eq!(r.status, StatusCode::OK);
        use calamine::Reader;
        let mut book: calamine::Xlsx<_> =
            calamine::Xlsx::new(std::io::Cursor::new(r.body.to_vec())).unwrap();
        let range = book.worksheet_range("年度计划").unwrap();
        let header: Vec<String> = range.rows().next().unwrap().iter().map(|c| c.to_string()).collect();
        assert_eq!(
            header,
            ["年度", "季度", "月份", "活动组", "责任委员", "活动类型", "计划内容", "联系点（可不填）"]
        );
    });
    assert_eq!(
        rt.block_on(plan_items(&h)).len(),
        7,
        "nothing forged landed, only the staff's form"
    );

    // ---------------------------------------------------------------- the member's phone
    rt.block_on(h.sync_all(&mut dev, 32 << 20));
    let mut doc = dev.store.load(&created).unwrap();
    let view = doc.view().unwrap();
    let RecordData::Plan(p) = view.data else {
        panic!("a plan item")
    };
    assert_eq!(
        (
            p.month,
            p.title.as_str(),
            p.owner.as_str(),
            p.contact_point.as_deref()
        ),
        (6, "新华社区人居环境专题调研（六月）", OWNER, Some("cp-002"))
    );
    assert_eq!(view.created_by, STAFF);
    let on_phone = dev
        .store
        .list(&sanjin_store::Filter {
            kind: Some(RecordKind::Plan),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        on_phone.len(),
        6,
        "the group's plan items reach the group's phone"
    );
    rt.block_on(h.live.unwrap().running.shutdown()).unwrap();
}
