//! Issue 13, points 1, 2 and their part of 9: the console acts. A real server on loopback with
//! TLS (`Harness::live`), a member's real device store that records opinions and visits and
//! syncs them, and office staff and a group leader working in a real headless Chromium: accept,
//! return with a reason, forward to a unit with a due day, record the handling, give feedback,
//! undo a mistaken step; approve and return visits, batch-approve a group's submitted visits
//! after a confirmation page; overdue opinions flagged and the filters by state, unit and
//! overdue. Then the member's device syncs and its store shows the feedback. The role rules are
//! checked in the browser and by forged POSTs over the same TLS connection.

mod browser;
mod common;

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use browser::Chromium;
use common::console::{csrf, form};
use common::{Device, members_of, now};
use sanjin_core::domain::{Opinion, RecordData, Visit};
use sanjin_core::workflow::{self, EventType, State, StepDetails};
use sanjin_core::{Author, RecordDoc};
use serde_json::json;

const STAFF: &str = "office-01";
const ADMIN: &str = "admin-01";
const LEADER_1: &str = "member-0002";
const DAY_MS: i64 = 86_400_000;

fn units_file(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("units.jsonl");
    let line = |id: &str, name: &str| {
        json!({
            "id": id,
            "created_by": STAFF,
            "created_at_ms": 1_735_779_600_000_i64,
            "data": {"kind": "unit", "name": name, "chapter": "chapter-city"},
        })
        .to_string()
    };
    std::fs::write(
        &path,
        [
            line("unit-001", "市城市管理局"),
            line("unit-002", "市住房和城乡建设局"),
        ]
        .join("\n"),
    )
    .unwrap();
    path
}

/// An opinion of `group` recorded and submitted on the device, titled `topic`.
fn new_opinion(dev: &mut Device, group: &str, topic: &str) -> String {
    let mut o: Opinion = common::fixtures()
        .opinions
        .iter()
        .find_map(|r| match &r.data {
            RecordData::Opinion(o) if o.group == group => Some(o.clone()),
            _ => None,
        })
        .unwrap();
    o.topic = topic.into();
    o.visit = None;
    let id = sanjin_store::new_record_id();
    let author = dev.store.author();
    let mut doc = RecordDoc::create(&id, &RecordData::Opinion(o), &author, now()).unwrap();
    doc.transition(&author, now(), EventType::Submit, None)
        .unwrap();
    dev.store.insert(&mut doc, true).unwrap();
    id
}

/// A visit of `group` recorded and submitted on the device, titled `title`.
fn new_visit(dev: &mut Device, group: &str, title: &str) -> String {
    let mut v: Visit = common::fixtures()
        .visits
        .iter()
        .find_map(|r| match &r.data {
            RecordData::Visit(v) if v.group == group => Some(v.clone()),
            _ => None,
        })
        .unwrap();
    v.title = title.into();
    v.participants = vec![dev.member().to_string()];
    v.photos.clear();
    let id = sanjin_store::new_record_id();
    let author = dev.store.author();
    let mut doc = RecordDoc::create(&id, &RecordData::Visit(v), &author, now()).unwrap();
    doc.transition(&author, now(), EventType::Submit, None)
        .unwrap();
    dev.store.insert(&mut doc, true).unwrap();
    id
}

/// Opens a record's page and takes `step` with `note` (and a unit and due day for a forward).
fn step(
    c: &mut Chromium,
    base: &str,
    id: &str,
    step: &str,
    note: &str,
    unit_due: Option<(&str, &str)>,
) {
    c.goto(&format!("{base}/console/records/{id}"));
    c.wait(&format!("document.getElementById('do-{step}')"));
    if let Some((unit, due)) = unit_due {
        c.eval(&format!(
            "document.getElementById('unit-forward').value = '{unit}'; document.getElementById('due-forward').value = '{due}'; true"
        ));
    }
    c.eval(&format!(
        "document.getElementById('note-{step}').value = {}; document.getElementById('do-{step}').click(); true",
        json!(note)
    ));
    c.wait(&format!(
        "location.search.includes('msg=step-{step}') && document.getElementById('step-done')"
    ));
}

#[test]
fn issue13_console_acts_on_opinions_and_visits_in_chromium() {
    let (rt, h, base) = common::console::live_server();
    let units = units_file(h.dir.path());
    rt.block_on(h.data(move |d| {
        let report = d.import_directory(&units).unwrap();
        assert_eq!(report.added, 2, "two units imported");
        for (who, pw) in [
            (STAFF, "staff-pass-13"),
            (LEADER_1, "leader-pass-13"),
            (ADMIN, "admin-pass-13"),
        ] {
            sanjin_server::console::set_password(d, who, pw).unwrap();
        }
        // Members cannot use the console at all: no password can be set for them.
        assert!(sanjin_server::console::set_password(d, "member-0005", "member-pass-13").is_err());
    }));

    // A member of group-01 records opinions and visits on the phone and syncs them; a member
    // of group-02 one opinion.
    let member = members_of("group-01")[0].clone();
    let mut dev = rt.block_on(h.device(&member));
    let op_main = new_opinion(&mut dev, "group-01", "新华村垃圾清运不及时");
    let op_return = new_opinion(&mut dev, "group-01", "路灯损坏");
    let op_undo = new_opinion(&mut dev, "group-01", "菜市场占道经营");
    let op_leader = new_opinion(&mut dev, "group-01", "小区停车难");
    let v_approve = new_visit(&mut dev, "group-01", "新华村人居环境座谈");
    let v_return = new_visit(&mut dev, "group-01", "园区企业走访");
    let v_batch: Vec<String> = (1..=3)
        .map(|i| new_visit(&mut dev, "group-01", &format!("入户走访第{i}次")))
        .collect();
    rt.block_on(h.sync_all(&mut dev, 32 << 20));
    let mut dev2 = rt.block_on(h.device(&members_of("group-02")[0]));
    let op_other = new_opinion(&mut dev2, "group-02", "农贸市场排水不畅");
    rt.block_on(h.sync_all(&mut dev2, 32 << 20));

    // One opinion forwarded to unit-002 long ago and never handled: overdue.
    let op_overdue = {
        let fx = common::fixtures()
            .opinions
            .iter()
            .find(|r| {
                matches!(&r.data, RecordData::Opinion(o) if o.group == "group-01")
                    && r.events.iter().all(|e| e.event == EventType::Submit)
            })
            .unwrap();
        let mut doc = fx.to_doc().unwrap();
        let id = doc.id().to_string();
        let staff = Author::new(STAFF, sanjin_server::SERVER_ID, &[0x5e; 16]).unwrap();
        let by = Author::new(&member, "phone-old", &[0x0d; 16]).unwrap();
        let t0 = now() - 90 * DAY_MS;
        let state = doc.view().unwrap().status;
        if state != State::Submitted {
            assert_eq!(state, State::Recorded, "a fixture opinion still to submit");
            doc.transition(&by, t0, EventType::Submit, None).unwrap();
        }
        doc.transition(&staff, t0 + 1, EventType::Accept, None)
            .unwrap();
        let due = sanjin_core::time::beijing_date(t0 + 30 * DAY_MS);
        doc.transition_with(
            &staff,
            t0 + 2,
            EventType::Forward,
            &StepDetails {
                unit: Some("unit-002"),
                due: Some(due),
                note: None,
            },
        )
        .unwrap();
        rt.block_on(h.data(move |d| {
            d.import_docs(&mut [doc]).unwrap();
        }));
        id
    };
    let seq_before = rt.block_on(h.data(|d| d.max_seq().unwrap()));

    let downloads = tempfile::tempdir().unwrap();
    let mut c = Chromium::start(downloads.path());
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-shots");
    std::fs::create_dir_all(&shots).unwrap();
    let today = sanjin_core::time::beijing_date(now());
    let due = (today + chrono::Duration::days(30)).to_string();

    // ---------------------------------------------------------------- staff: opinions
    c.sign_in(&base, STAFF, "staff-pass-13");
    c.goto(&format!(
        "{base}/console/opinions?state=submitted&group=group-01"
    ));
    c.wait("document.getElementById('o-total')");
    let listed = c.inner_text("opinions");
    for topic in [
        "新华村垃圾清运不及时",
        "路灯损坏",
        "菜市场占道经营",
        "小区停车难",
    ] {
        assert!(listed.contains(topic), "{topic} in {listed}");
    }
    assert!(!listed.contains("农贸市场排水不畅"), "the group filter");

    // Accept, forward to a unit with a due day, record the handling, give feedback.
    step(&mut c, &base, &op_main, "accept", "", None);
    assert_eq!(c.inner_text("outcome-state"), "已采纳");
    step(
        &mut c,
        &base,
        &op_main,
        "forward",
        "请于期限内核实处理",
        Some(("unit-001", &due)),
    );
    assert_eq!(c.inner_text("outcome-state"), "已转办");
    assert_eq!(c.inner_text("outcome-unit"), "市城市管理局");
    assert!(c.inner_text("outcome-due").contains(&due));
    assert_eq!(c.inner_text("overdue"), "", "not overdue before its day");
    step(
        &mut c,
        &base,
        &op_main,
        "handle",
        "已增加清运频次，每日两次",
        None,
    );
    assert_eq!(c.inner_text("outcome-handling"), "已增加清运频次，每日两次");
    step(
        &mut c,
        &base,
        &op_main,
        "feedback",
        "办理结果已电话告知委员，委员表示满意",
        None,
    );
    assert_eq!(c.inner_text("outcome-state"), "已反馈");
    assert_eq!(
        c.inner_text("outcome-feedback"),
        "办理结果已电话告知委员，委员表示满意"
    );
    assert!(
        c.inner_text("history").contains("王芳"),
        "the trace names the staff member"
    );
    let flow = c.inner_text("flow");
    assert!(
        flow.contains("承办单位：市城市管理局") && flow.contains("办理结果已电话告知委员"),
        "{flow}"
    );
    c.screenshot(&shots.join("issue13-opinion-feedback.png"));

    // Readable on a phone: the record page with its step forms fits 390 px.
    c.page(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
    );
    c.goto(&format!("{base}/console/records/{op_return}"));
    c.wait("document.getElementById('do-return')");
    assert_eq!(
        c.eval("document.documentElement.scrollWidth <= window.innerWidth"),
        json!(true),
        "the record page with its step forms fits a phone's width"
    );
    // A member's own submission is returned, not undone, in the console.
    assert!(c.absent("do-undo"));
    c.screenshot(&shots.join("issue13-opinion-steps-phone.png"));
    c.page("Emulation.clearDeviceMetricsOverride", json!({}));

    // Return with a reason.
    step(
        &mut c,
        &base,
        &op_return,
        "return",
        "请补充具体位置和损坏路灯数量",
        None,
    );
    assert_eq!(c.inner_text("outcome-state"), "已退回");
    assert_eq!(
        c.inner_text("outcome-returned"),
        "请补充具体位置和损坏路灯数量"
    );

    // A mistaken forward undone: a new step, the forward stays in the trace.
    step(&mut c, &base, &op_undo, "accept", "", None);
    step(
        &mut c,
        &base,
        &op_undo,
        "forward",
        "",
        Some(("unit-002", &due)),
    );
    assert_eq!(c.inner_text("outcome-unit"), "市住房和城乡建设局");
    assert!(c.inner_text("do-undo").contains("转办"));
    step(&mut c, &base, &op_undo, "undo", "转错单位", None);
    assert_eq!(c.inner_text("outcome-state"), "已采纳");
    assert_eq!(
        c.inner_text("outcome-unit"),
        "",
        "the undone forward is not in force"
    );
    let history = c.inner_text("history");
    assert!(
        history.contains("转办") && history.contains("撤销"),
        "{history}"
    );
    let flow = c.inner_text("flow");
    assert!(
        flow.contains("转办（已撤销）") && flow.contains("转错单位"),
        "{flow}"
    );
    c.screenshot(&shots.join("issue13-opinion-undo.png"));

    // Overdue flagged, and the filters by unit and overdue (the undone forward to unit-002
    // does not count).
    c.goto(&format!("{base}/console/records/{op_overdue}"));
    c.wait("document.getElementById('outcome')");
    assert_eq!(c.inner_text("overdue"), "已逾期");
    c.goto(&format!("{base}/console/opinions"));
    c.eval("document.getElementById('o-overdue').value = '1'; document.getElementById('o-submit').click(); true");
    c.wait("location.search.includes('overdue=1') && document.getElementById('o-total')");
    assert_eq!(c.inner_text("o-total"), "共 1 条");
    assert!(c.inner_text("opinions").contains("已逾期"));
    c.screenshot(&shots.join("issue13-opinions-overdue.png"));
    c.goto(&format!("{base}/console/opinions?unit=unit-002"));
    c.wait("document.getElementById('o-total')");
    assert_eq!(c.inner_text("o-total"), "共 1 条");
    assert!(
        c.eval(&format!(
            "document.querySelector('#opinions a[href$=\"{op_overdue}\"]') !== null"
        ))
        .as_bool()
        .unwrap()
    );
    c.goto(&format!("{base}/console/opinions?unit=unit-001"));
    c.wait("document.getElementById('o-total')");
    assert_eq!(c.inner_text("o-total"), "共 1 条");
    assert!(c.inner_text("opinions").contains("新华村垃圾清运不及时"));
    c.goto(&format!(
        "{base}/console/opinions?state=feedback_given&group=group-01"
    ));
    c.wait("document.getElementById('o-total')");
    assert!(c.inner_text("opinions").contains("新华村垃圾清运不及时"));

    // ---------------------------------------------------------------- staff: visits
    step(&mut c, &base, &v_approve, "approve", "记录完整", None);
    assert!(c.inner_text("step-done").contains("已审核通过"));
    step(&mut c, &base, &v_return, "return", "请补充活动照片", None);
    assert!(c.inner_text("step-done").contains("已退回"));

    // Batch approval: the confirmation page counts and lists the group's submitted visits.
    c.goto(&format!("{base}/console/review"));
    c.eval("document.getElementById('r-group').value = 'group-01'; document.getElementById('r-submit').click(); true");
    c.wait("document.getElementById('batch-count')");
    assert!(c.inner_text("batch-count").contains("共 3 条"));
    let list = c.inner_text("batch-list");
    for i in 1..=3 {
        assert!(list.contains(&format!("入户走访第{i}次")), "{list}");
    }
    assert!(!list.contains("新华村人居环境座谈"), "approved already");
    c.screenshot(&shots.join("issue13-batch-confirm.png"));
    c.eval("document.getElementById('batch-note').value = '第二季度集中审核'; document.getElementById('batch-approve').click(); true");
    c.wait("document.getElementById('batch-done')");
    assert!(c.inner_text("batch-done").contains("已审核通过 3 条"));
    assert_eq!(c.inner_text("batch-empty"), "没有待审核的活动记录。");
    c.assert_no_csp_violations("on the staff's pages");

    // ---------------------------------------------------------------- the leader
    c.sign_in(&base, LEADER_1, "leader-pass-13");
    // Another group's opinion: not even readable.
    c.goto(&format!("{base}/console/records/{op_other}"));
    c.wait("document.body.innerText.includes('不属于您的活动组')");
    assert!(c.absent("actions"));
    // Another group's batch: refused in Chinese.
    c.goto(&format!("{base}/console/review?group=group-02"));
    c.wait("document.body.innerText.includes('组长只能审核本组')");
    // The own group: the list shows only it, and the leader takes the steps phones allow a
    // leader (rules.rs: review steps by the group's leader or staff).
    c.goto(&format!("{base}/console/opinions"));
    c.wait("document.getElementById('o-total')");
    assert!(c.absent("o-group"));
    assert!(!c.inner_text("opinions").contains("农贸市场排水不畅"));
    step(&mut c, &base, &op_leader, "accept", "组长初审同意", None);
    step(
        &mut c,
        &base,
        &op_leader,
        "forward",
        "",
        Some(("unit-001", &due)),
    );
    assert_eq!(c.inner_text("outcome-unit"), "市城市管理局");
    c.screenshot(&shots.join("issue13-leader-forward.png"));
    c.assert_no_csp_violations("on the leader's pages");
    drop(c);

    // ---------------------------------------------------------------- the role rules, forged
    rt.block_on(async {
        let leader = common::photos::console_session(&h, LEADER_1).await;
        let token = csrf(&h, &leader).await;
        // A leader posting a step on another group's opinion.
        let r = h
            .call(form(
                &format!("/console/records/{op_other}/step"),
                &leader,
                format!("csrf={token}&step=accept"),
            ))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(r.text().contains("不属于您的活动组"), "{}", r.text());
        let r = h
            .call(form(
                "/console/review/approve",
                &leader,
                format!("csrf={token}&group=group-02&ids=x"),
            ))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(r.text().contains("组长只能审核本组"));
        // An admin reads but does not review.
        let admin = common::photos::console_session(&h, ADMIN).await;
        let token = csrf(&h, &admin).await;
        let r = h
            .call(form(
                &format!("/console/records/{op_other}/step"),
                &admin,
                format!("csrf={token}&step=accept"),
            ))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(
            r.text().contains("管理员账户不能办理这条社情民意"),
            "{}",
            r.text()
        );
        // Staff: a return needs its reason, a forward a unit of the directory and a day not
        // past, a step must be valid from the state; a POST without the token is refused.
        let staff = common::photos::console_session(&h, STAFF).await;
        let token = csrf(&h, &staff).await;
        for (body, status, needle) in [
            (
                format!("csrf={token}&step=return&note=+"),
                StatusCode::BAD_REQUEST,
                "请填写退回理由",
            ),
            (
                format!("csrf={token}&step=accept&unit=unit-001"),
                StatusCode::OK,
                "",
            ),
            (
                format!("csrf={token}&step=forward&unit=unit-999&due={due}"),
                StatusCode::BAD_REQUEST,
                "不在单位名录中",
            ),
            (
                format!("csrf={token}&step=forward&unit=unit-001&due=2020-01-01"),
                StatusCode::BAD_REQUEST,
                "早于今天",
            ),
            (
                format!("csrf={token}&step=approve"),
                StatusCode::BAD_REQUEST,
                "没有“审核通过”这一步",
            ),
            (
                format!("csrf={token}&step=feedback&note=x"),
                StatusCode::BAD_REQUEST,
                "不能执行“反馈”",
            ),
            (format!("csrf={token}&step=undo"), StatusCode::SEE_OTHER, ""),
            (
                format!("csrf={token}&step=undo"),
                StatusCode::BAD_REQUEST,
                "是委员本人的操作",
            ),
            (
                "csrf=0000&step=accept".to_string(),
                StatusCode::FORBIDDEN,
                "页面已过期",
            ),
        ] {
            let r = h
                .call(form(
                    &format!("/console/records/{op_other}/step"),
                    &staff,
                    body.clone(),
                ))
                .await;
            if status == StatusCode::OK || status == StatusCode::SEE_OTHER {
                assert_eq!(r.status, StatusCode::SEE_OTHER, "{body}: {}", r.text());
                continue;
            }
            assert_eq!(r.status, status, "{body}: {}", r.text());
            assert!(r.text().contains(needle), "{body}: {}", r.text());
            if !needle.contains("过期") {
                assert!(
                    r.text().contains(&op_other),
                    "the refusal names the record: {}",
                    r.text()
                );
            }
        }
        // Members cannot sign in.
        let r = h
            .call(
                Request::builder()
                    .method(Method::POST)
                    .uri("/console/login")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Body::from(format!("account={member}&password=anything")))
                    .unwrap(),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    });

    // ---------------------------------------------------------------- what landed, and where
    let main_id = op_main.clone();
    let (logged, by_server) = rt.block_on(h.data(move |d| {
        let logged = d.max_seq().unwrap() - seq_before;
        let server = hex::encode(&d.store().identity().actor);
        let doc = d.store().load(&main_id).unwrap();
        let mut doc = doc;
        let by_server = doc
            .changes()
            .iter()
            .filter(|c| {
                c.actor_id().to_hex_string() == server
                    && c.message().is_some_and(|m| m.contains(STAFF))
            })
            .count();
        (logged, by_server)
    }));
    assert_eq!(
        by_server, 4,
        "accept, forward, handle, feedback: the server's actor, naming the staff member"
    );
    // 4 + 1 + 3 (op_undo) + 2 (visits) + 3 (batch) + 2 (leader) + 2 (forged accept and its
    // undo) entries.
    assert_eq!(logged, 17, "every step is in the change log");

    // The member's phone syncs and shows the feedback; the returned opinion its reason.
    rt.block_on(h.sync_all(&mut dev, 32 << 20));
    let mut doc = dev.store.load(&op_main).unwrap();
    let view = doc.view().unwrap();
    assert_eq!(view.status, State::FeedbackGiven);
    let o = workflow::outcome(&view.events);
    assert_eq!(o.assignment.as_ref().unwrap().unit, "unit-001");
    assert_eq!(
        o.handling.unwrap().note.as_deref(),
        Some("已增加清运频次，每日两次")
    );
    let f = o.feedback.unwrap();
    assert_eq!(
        (f.note.as_deref(), f.by.as_str()),
        (Some("办理结果已电话告知委员，委员表示满意"), STAFF)
    );
    let unit = dev.store.load("unit-001").unwrap().view().unwrap();
    assert!(
        matches!(unit.data, RecordData::Unit(u) if u.name == "市城市管理局"),
        "the unit reached the phone"
    );
    let view = dev.store.load(&op_return).unwrap().view().unwrap();
    assert_eq!(view.status, State::Returned);
    assert_eq!(
        workflow::outcome(&view.events)
            .returned
            .unwrap()
            .note
            .as_deref(),
        Some("请补充具体位置和损坏路灯数量")
    );
    let view = dev.store.load(&v_batch[0]).unwrap().view().unwrap();
    assert_eq!(view.status, State::Approved);
    assert_eq!(
        dev.store
            .list(&sanjin_store::Filter {
                status: Some("approved".into()),
                kind: Some(sanjin_core::domain::RecordKind::Visit),
                ..Default::default()
            })
            .unwrap()
            .len(),
        4
    );
    rt.block_on(h.live.unwrap().running.shutdown()).unwrap();
    eprintln!("screenshots in {}", shots.display());
}
