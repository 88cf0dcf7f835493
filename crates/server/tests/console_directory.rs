//! Issue 13, point 4 (the directory): office staff keep the directory in a real headless
//! Chromium against a real server on loopback (`Harness::live`) — add a unit and a contact
//! point, edit a member's name, move a member to another group after a confirmation page that
//! counts the devices re-issued and the records kept, retire a member after one that counts the
//! devices revoked, import an Excel sheet after a preview of every row and its errors — while
//! real device stores of the members sync around it: the moved member's phone lands the visit
//! it recorded in its old group before the move, is told to read the log again, receives its
//! new certificate and the new group's records and no longer the old group's, and its earlier
//! records keep their author; the retired member's phone is refused with a Chinese message that
//! says what to do with its records. A leader and an admin read the directory but cannot
//! change it (in the browser and by forged POSTs).

mod browser;
mod common;

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use browser::Chromium;
use common::console::{csrf, form};
use common::{Device, Harness, members_of, now};
use sanjin_core::Edit;
use sanjin_core::domain::RecordKind;
use sanjin_core::sign::DeviceCert;
use serde_json::json;

const STAFF: &str = "office-01";
const ADMIN: &str = "admin-01";
const LEADER_1: &str = "member-0002";

/// Who made each change of a record on the server.
async fn authors(h: &Harness, id: &str) -> Vec<String> {
    let id = id.to_string();
    h.data(move |d| {
        let mut doc = d.store().load(&id).unwrap();
        doc.history().into_iter().map(|e| e.member).collect()
    })
    .await
}

/// Syncs a device whose member moved: the first exchange lands its pushes and asks it to read
/// the log again (`resync`); a real device then settles its documents with the fallback and
/// reads its new scope from cursor 0, as this one does.
async fn sync_after_move(h: &Harness, dev: &mut Device) -> sanjin_core::protocol::SyncResponse {
    let first = h.sync_once(dev).await;
    if first.resync {
        dev.cursor = 0;
        dev.epoch = first.epoch;
        h.sync_all(dev, 32 << 20).await;
    }
    first
}

#[test]
fn issue13_directory_in_the_console_in_chromium() {
    let (rt, h, base) = common::console::live_server();
    rt.block_on(h.data(move |d| {
        for (who, pw) in [
            (STAFF, "staff-pass-13"),
            (LEADER_1, "leader-pass-13"),
            (ADMIN, "admin-pass-13"),
        ] {
            sanjin_server::console::set_password(d, who, pw).unwrap();
        }
    }));

    // The member who will move (group-01 → group-02) records a visit and syncs it, then
    // records another offline (still on the phone when staff move him).
    let mover = members_of("group-01")[0].clone();
    let retiree = members_of("group-01")[1].clone();
    let renamed = members_of("group-02")[1].clone();
    let mut dev_m = rt.block_on(h.device(&mover));
    let v_synced = dev_m.new_visit("group-01");
    rt.block_on(h.sync_all(&mut dev_m, 32 << 20));
    let v_pending = dev_m.new_visit("group-01");
    // A member of group-02 has a visit on the server: the mover receives it after the move.
    let mut dev_b = rt.block_on(h.device(&members_of("group-02")[0]));
    let v_group2 = dev_b.new_visit("group-02");
    rt.block_on(h.sync_all(&mut dev_b, 32 << 20));
    // The member who will retire has a visit on the server.
    let mut dev_r = rt.block_on(h.device(&retiree));
    let v_retiree = dev_r.new_visit("group-01");
    rt.block_on(h.sync_all(&mut dev_r, 32 << 20));
    assert!(
        !dev_m.has(&v_group2),
        "group-02's records are not the mover's yet"
    );

    let downloads = tempfile::tempdir().unwrap();
    let mut c = Chromium::start(downloads.path());
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-shots");
    std::fs::create_dir_all(&shots).unwrap();
    let notes = PathBuf::from("/work/notes/shots");
    let shot = |c: &mut Chromium, name: &str| {
        let p = shots.join(name);
        c.screenshot(&p);
        if notes.is_dir() {
            let _ = std::fs::copy(&p, notes.join(name));
        }
    };

    // ---------------------------------------------------------------- staff: add
    c.sign_in(&base, STAFF, "staff-pass-13");
    c.goto(&format!("{base}/console/directory?kind=unit"));
    c.wait("document.getElementById('dir-new')");
    c.click("dir-new");
    c.wait("document.getElementById('entry-form')");
    c.set_value("f-id", "unit-101");
    c.set_value("f-name", "市交通运输局");
    c.set_value("f-chapter", "chapter-city");
    c.click("entry-save");
    c.wait("document.getElementById('dir-msg')");
    assert!(c.inner_text("dir-msg").contains("已添加 承办单位unit-101"));
    assert!(c.inner_text("dir-active").contains("市交通运输局"));

    c.goto(&format!("{base}/console/directory/new?kind=contact_point"));
    c.wait("document.getElementById('entry-form')");
    // A contact point without its name is refused, naming the field.
    c.set_value("f-id", "cp-new-01");
    c.set_value("f-target_kind", "community");
    c.set_value("f-chapter", "chapter-city");
    c.click("entry-save");
    c.wait("document.body.innerText.includes('名称')  && document.querySelector('.msg.err')");
    let refusal = c.eval("document.querySelector('.msg.err').innerText");
    assert!(
        refusal.as_str().unwrap().contains("新增联系点“cp-new-01”"),
        "{refusal}"
    );
    c.goto(&format!("{base}/console/directory/new?kind=contact_point"));
    c.wait("document.getElementById('entry-form')");
    c.set_value("f-id", "cp-new-01");
    c.set_value("f-name", "新华社区活动室");
    c.set_value("f-target_kind", "community");
    c.set_value("f-chapter", "chapter-city");
    c.set_value("f-address", "新华路 12 号");
    c.click("entry-save");
    c.wait("document.getElementById('dir-msg')");
    assert!(c.inner_text("dir-active").contains("新华社区活动室"));

    // ---------------------------------------------------------------- staff: edit a name
    c.goto(&format!("{base}/console/directory/{renamed}/edit"));
    c.wait("document.getElementById('entry-form')");
    c.set_value("f-name", "张新名");
    c.click("entry-save");
    c.wait("document.getElementById('dir-msg')");
    assert!(c.inner_text("dir-msg").contains("已保存"));
    assert!(c.inner_text(&format!("row-{renamed}")).contains("张新名"));
    shot(&mut c, "issue13-directory-list.png");
    let r2 = renamed.clone();
    let (name, history_by) = rt.block_on(h.data(move |d| {
        let mut doc = d.store().load(&r2).unwrap();
        let by = doc.history().last().unwrap().member.clone();
        (d.account(&r2).unwrap().unwrap().name, by)
    }));
    assert_eq!(name, "张新名", "the account follows the record");
    assert_eq!(
        history_by, STAFF,
        "the change names the staff member (留痕)"
    );

    // ---------------------------------------------------------------- staff: move
    c.goto(&format!("{base}/console/directory/{mover}/move"));
    c.wait("document.getElementById('confirm')");
    assert_eq!(c.inner_text("impact-devices"), "1 台");
    assert!(c.inner_text("impact-certs").starts_with("1 张"));
    assert!(
        c.inner_text("impact-records").starts_with("1 条"),
        "the synced visit: {}",
        c.inner_text("impact-records")
    );
    c.set_value("f-to", "group-02");
    shot(&mut c, "issue13-directory-move-confirm.png");
    c.click("move-confirm");
    c.wait("document.getElementById('dir-msg')");
    let msg = c.inner_text("dir-msg");
    assert!(
        msg.contains("从 group-01 调到 group-02") && msg.contains("重新签发证书 1 张"),
        "{msg}"
    );

    // The mover's phone syncs: the visit recorded in group-01 before the move lands, the
    // phone is asked to read the log again and then holds group-02's records.
    let first = rt.block_on(sync_after_move(&h, &mut dev_m));
    assert!(first.refused.is_empty(), "{:?}", first.refused);
    assert!(
        first.resync,
        "the moved device reads its new scope from the start"
    );
    assert!(
        dev_m.has(&v_group2),
        "the new group's records reach the phone"
    );
    assert_eq!(
        rt.block_on(authors(&h, &v_pending))[0],
        mover,
        "the visit made before the move landed, attributed to its author"
    );
    assert_eq!(rt.block_on(authors(&h, &v_synced))[0], mover);
    // Its new certificate, from the trust answer every sync is followed by.
    let trust = rt.block_on(async {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/v1/trust")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", dev_m.bearer()))
            .body(Body::from("{}"))
            .unwrap();
        h.call(req).await
    });
    assert_eq!(trust.status, StatusCode::OK);
    let cert = DeviceCert::decode(
        &hex::decode(trust.json()["cert"].as_str().expect("the device's cert")).unwrap(),
    )
    .unwrap();
    assert_eq!(cert.group.as_deref(), Some("group-02"));
    assert_eq!(cert.member, mover);
    // A change the phone makes to its old group's record after the move is refused.
    let mut doc = dev_m.store.load(&v_synced).unwrap();
    doc.edit(
        &dev_m.store.author(),
        now(),
        &[Edit::Set {
            field: "title".into(),
            value: json!("调组后修改原组记录"),
        }],
    )
    .unwrap();
    dev_m.insert(&mut doc);
    let after = rt.block_on(h.sync_once(&mut dev_m));
    assert_eq!(after.refused.len(), 1, "{:?}", after.refused);
    assert_eq!(after.refused[0].doc_id, v_synced);
    // New records of the old group no longer reach the phone; the new group's do.
    let mut dev_a = rt.block_on(h.device(&members_of("group-01")[2]));
    let v_old_group = dev_a.new_visit("group-01");
    rt.block_on(h.sync_all(&mut dev_a, 32 << 20));
    let v_new_group = dev_b.new_visit("group-02");
    rt.block_on(h.sync_all(&mut dev_b, 32 << 20));
    rt.block_on(h.sync_once(&mut dev_m));
    assert!(
        !dev_m.has(&v_old_group),
        "the old group's new records stay away"
    );
    assert!(dev_m.has(&v_new_group));

    // ---------------------------------------------------------------- staff: retire
    c.goto(&format!("{base}/console/directory/{retiree}/retire"));
    c.wait("document.getElementById('confirm')");
    assert!(c.inner_text("impact-revoke").starts_with("1 台"));
    assert!(c.inner_text("impact-records").starts_with("1 条"));
    c.set_value("f-reason", "任期届满");
    shot(&mut c, "issue13-directory-retire-confirm.png");
    c.click("retire-confirm");
    c.wait("document.getElementById('dir-msg')");
    assert!(c.inner_text("dir-msg").contains("停用设备 1 台"));
    assert!(c.inner_text("dir-retired").contains(&retiree));
    assert!(!c.inner_text("dir-active").contains(&retiree));
    // The retired member's phone is refused, in Chinese, with what to do.
    let refused = rt.block_on(h.post(
        "/v1/sync",
        Some(&dev_r.bearer()),
        dev_r.request(32 << 20).encode(),
    ));
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let why = refused.json()["message"].as_str().unwrap().to_string();
    assert!(
        why.contains("退出委员名录")
            && why.contains("sanjin device bundle export")
            && why.contains("sanjin admin import-bundle"),
        "{why}"
    );
    assert_eq!(
        rt.block_on(authors(&h, &v_retiree))[0],
        retiree,
        "records stay"
    );
    // A retired group is refused while members are in it, naming them.
    c.goto(&format!("{base}/console/directory/group-01/retire"));
    c.wait("document.getElementById('confirm')");
    assert!(c.inner_text("retire-refused").contains("不能停用"));

    // ---------------------------------------------------------------- staff: Excel
    let sheet = tempfile::tempdir().unwrap();
    let path = sheet.path().join("名录.xlsx");
    let rows = vec![
        (
            RecordKind::Unit,
            "unit-102".to_string(),
            vec![
                ("name".to_string(), "市水务局".to_string()),
                ("chapter".to_string(), "chapter-city".to_string()),
            ],
            false,
        ),
        (
            RecordKind::Member,
            "member-9001".to_string(),
            vec![
                ("name".to_string(), "周新".to_string()),
                ("chapter".to_string(), "chapter-city".to_string()),
                ("group".to_string(), "group-77".to_string()),
            ],
            false,
        ),
        (
            RecordKind::Unit,
            "unit-102".to_string(),
            vec![("name".to_string(), "重复".to_string())],
            false,
        ),
    ];
    // A row whose kind is not the directory's (a visit).
    let mut rows = rows;
    rows.push((RecordKind::Visit, "v-1".into(), vec![], false));
    let bytes = sanjin_server::directory::write_sheet(&rows).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    c.goto(&format!("{base}/console/directory"));
    c.wait("document.getElementById('dir-file')");
    c.choose_file("dir-file", &path);
    c.click("dir-import");
    c.wait("document.getElementById('import-summary')");
    assert_eq!(c.inner_text("import-errors"), "3");
    let line3 = c.inner_text("line-3");
    assert!(
        line3.contains("没有编号为“group-77”的委员活动组"),
        "{line3}"
    );
    assert!(c.inner_text("line-4").contains("与第 2 行重复"));
    assert!(c.inner_text("line-5").contains("不是名录的类别"));
    assert!(c.inner_text("line-2").contains("新增"));
    shot(&mut c, "issue13-directory-import-preview.png");
    assert!(
        !rt.block_on(h.data(|d| d.store().exists("unit-102").unwrap())),
        "nothing saved before the confirmation"
    );
    c.click("import-confirm");
    c.wait("document.getElementById('dir-msg')");
    assert!(
        c.inner_text("dir-msg").contains("新增 1 个"),
        "{}",
        c.inner_text("dir-msg")
    );
    assert!(rt.block_on(h.data(|d| d.store().exists("unit-102").unwrap())));
    c.assert_no_csp_violations("on the staff's directory pages");

    // ---------------------------------------------------------------- leader and admin
    for (who, pw, says) in [
        (LEADER_1, "leader-pass-13", "组长可以查看和导出名录"),
        (ADMIN, "admin-pass-13", "管理员账户可以查看和导出名录"),
    ] {
        c.sign_in(&base, who, pw);
        c.goto(&format!("{base}/console/directory"));
        c.wait("document.getElementById('dir-readonly')");
        assert!(c.inner_text("dir-readonly").contains(says));
        assert!(
            c.eval("document.getElementById('dir-new') === null && document.getElementById('dir-import') === null && document.querySelector('[id^=\"move-\"]') === null")
                .as_bool()
                .unwrap()
        );
        if who == LEADER_1 {
            shot(&mut c, "issue13-directory-leader.png");
        }
        c.goto(&format!("{base}/console/directory/new?kind=unit"));
        c.wait(&format!("document.body.innerText.includes('{says}')"));
    }
    c.assert_no_csp_violations("on the read-only directory pages");
    drop(c);

    rt.block_on(async {
        for who in [LEADER_1, ADMIN] {
            let cookie = common::photos::console_session(&h, who).await;
            let token = csrf(&h, &cookie).await;
            let r = h
                .call(form(
                    "/console/directory/new",
                    &cookie,
                    format!("csrf={token}&kind=unit&id=unit-666&name=x"),
                ))
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{who}");
            let r = h
                .call(form(
                    &format!("/console/directory/{mover}/move"),
                    &cookie,
                    format!("csrf={token}&group=group-01"),
                ))
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{who}");
            assert!(r.text().contains("名录由机关工作人员维护"), "{}", r.text());
        }
        // Staff: the export in the import's columns, the retired member marked.
        let staff = common::photos::console_session(&h, STAFF).await;
        let r = common::photos::console_get(&h, "/console/directory/export", &staff).await;
        assert_eq!(r.status, StatusCode::OK);
        let rows = sanjin_server::directory::parse_sheet(&r.body).unwrap();
        let row = |id: &str| rows.iter().find(|r| r.id == id).unwrap().clone();
        assert_eq!(row(&retiree).state, "已退出");
        assert_eq!(row("unit-101").kind, "承办单位");
        assert!(
            row(&mover)
                .values
                .contains(&("group".to_string(), "group-02".to_string()))
        );
        // A POST without the page's token is refused.
        let token = csrf(&h, &staff).await;
        let r = h
            .call(form(
                "/console/directory/new",
                &staff,
                "kind=unit&id=unit-667&name=x".to_string(),
            ))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(!token.is_empty());
    });
    assert!(
        !rt.block_on(h.data(|d| d.store().exists("unit-666").unwrap())),
        "nothing a refused POST asked for"
    );
}

fn cert_of(dev: &Device) -> DeviceCert {
    DeviceCert::decode(&hex::decode(dev.creds.cert.as_ref().unwrap()).unwrap()).unwrap()
}

/// A bundle part of `ids` from `dev`'s store, sealed to its group and the server (what
/// `sanjin device bundle export` makes).
async fn bundle_of(h: &Harness, dev: &Device, group: &str, ids: &[&str]) -> Vec<u8> {
    use sanjin_sync::bundle::{self, Audience, DocChanges, Payload};
    let g = group.to_string();
    let kd = h.data(|d| d.key_directory().unwrap()).await;
    let k = kd.group(&g).unwrap().clone();
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
    let p = Payload {
        docs,
        sigs,
        certs: vec![cert_of(dev)],
        ..Payload::default()
    };
    let mut parts = bundle::export(
        p,
        dev.store.signing_key().unwrap(),
        &cert_of(dev),
        Audience::Group {
            group: g.clone(),
            epoch: k.epoch,
        },
        &[
            (sanjin_server::group_recipient(&g, k.epoch), k.public),
            (sanjin_server::SERVER_RECIPIENT.into(), kd.server_box),
        ],
        1 << 20,
        now(),
        &mut |b: &mut [u8]| getrandom::fill(b).unwrap(),
    )
    .unwrap();
    assert_eq!(parts.len(), 1);
    parts.remove(0)
}

fn data_of(kind: RecordKind, pairs: &[(&str, &str)]) -> sanjin_core::RecordData {
    let inputs: Vec<(String, String)> = pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    sanjin_server::directory::build_entry(kind, &inputs).unwrap()
}

#[tokio::test]
async fn issue13_directory_operations_on_server_data() {
    let h = Harness::new();
    // Entries: references checked in Chinese, ids unique, the change names the staff member.
    let e = h
        .data(|d| {
            d.create_entry(
                STAFF,
                "unit-201",
                &data_of(
                    RecordKind::Unit,
                    &[("name", "市民政局"), ("chapter", "chapter-x")],
                ),
            )
            .unwrap_err()
            .to_string()
        })
        .await;
    assert!(e.contains("没有编号为“chapter-x”的政协组织"), "{e}");
    h.data(|d| {
        let unit = data_of(
            RecordKind::Unit,
            &[("name", "市民政局"), ("chapter", "chapter-city")],
        );
        d.create_entry(STAFF, "unit-201", &unit).unwrap();
        let e = d
            .create_entry(STAFF, "unit-201", &unit)
            .unwrap_err()
            .to_string();
        assert!(e.contains("已被使用"), "{e}");
        let mut doc = d.store().load("unit-201").unwrap();
        assert_eq!(doc.history()[0].member, STAFF);
        // A contact point retired can no longer be chosen.
        let cp = data_of(
            RecordKind::ContactPoint,
            &[
                ("name", "东湖村"),
                ("target_kind", "village"),
                ("chapter", "chapter-city"),
            ],
        );
        d.create_entry(STAFF, "cp-201", &cp).unwrap();
        d.retire_entry(STAFF, "cp-201", "并村").unwrap();
        let (sanjin_core::RecordData::Group(mut g), false) = d.directory_entry("group-02").unwrap()
        else {
            panic!("group-02 is a group")
        };
        g.contact_points.push("cp-201".into());
        let e = d
            .edit_entry(STAFF, "group-02", &sanjin_core::RecordData::Group(g))
            .unwrap_err()
            .to_string();
        assert!(e.contains("已停用，不能再选用"), "{e}");
        // A group still used is not retired; the refusal names who uses it.
        let e = d
            .retire_entry(STAFF, "group-01", "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("还被") && e.contains("委员"), "{e}");
    })
    .await;

    // A member's group is not changed by an edit.
    let m0 = members_of("group-01")[0].clone();
    let m = m0.clone();
    h.data(move |d| {
        let (sanjin_core::RecordData::Member(mut x), _) = d.directory_entry(&m).unwrap() else {
            panic!()
        };
        x.group = "group-02".into();
        let e = d
            .edit_entry(STAFF, &m, &sanjin_core::RecordData::Member(x))
            .unwrap_err()
            .to_string();
        assert!(e.contains("调整活动组"), "{e}");
    })
    .await;

    // Moving a leader: refused until the old group's next leader is named; then the group
    // record, both accounts and the mover's role follow.
    let (from, to) = h
        .data(|d| {
            let a = d.account(LEADER_1).unwrap().unwrap();
            let from = a.group.clone().unwrap();
            let to = if from == "group-01" {
                "group-02"
            } else {
                "group-01"
            };
            (from, to.to_string())
        })
        .await;
    let successor = members_of(&from)[0].clone();
    let (f, t, s) = (from.clone(), to.clone(), successor.clone());
    h.data(move |d| {
        let e = d
            .move_member(STAFF, LEADER_1, &t, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("请先指定该组的另一位委员担任新组长"), "{e}");
        let e = d
            .move_member(STAFF, LEADER_1, &t, Some(&members_of(&t)[0]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("不是活动组"), "{e}");
        let r = d.move_member(STAFF, LEADER_1, &t, Some(&s)).unwrap();
        assert_eq!(r.new_leader.as_deref(), Some(s.as_str()));
        let (sanjin_core::RecordData::Group(g), _) = d.directory_entry(&f).unwrap() else {
            panic!()
        };
        assert_eq!(g.leader, s, "the group record names its new leader");
        assert_eq!(
            d.account(&s).unwrap().unwrap().role,
            sanjin_server::Role::Leader
        );
        let moved = d.account(LEADER_1).unwrap().unwrap();
        assert_eq!(moved.group.as_deref(), Some(t.as_str()));
        assert!(
            !d.is_leader_of(LEADER_1, &f).unwrap(),
            "no longer leads the old group"
        );
        assert_eq!(d.former_groups(LEADER_1).unwrap()[0].group, f);
    })
    .await;
    // Importing the directory file again (written before the move) undoes none of it.
    let file = common::small_directory(h.dir.path());
    let (t, s) = (to.clone(), successor.clone());
    h.data(move |d| {
        d.import_directory(&file).unwrap();
        let moved = d.account(LEADER_1).unwrap().unwrap();
        assert_eq!(moved.group.as_deref(), Some(t.as_str()));
        assert_eq!(
            d.account(&s).unwrap().unwrap().role,
            sanjin_server::Role::Leader
        );
    })
    .await;

    // Retiring a member: its devices revoked, no new code or enrollment, its phone told what
    // to do; its bundle, handed to the office, lands what it made before the retirement.
    let quitter = members_of(&from)[1].clone();
    let mut dev = h.device(&quitter).await;
    let synced = dev.new_visit(&from);
    h.sync_all(&mut dev, 32 << 20).await;
    let pending = dev.new_visit(&from);
    let q = quitter.clone();
    let code = h.data(move |d| d.issue_code(&q).unwrap()).await;
    let q = quitter.clone();
    let r = h
        .data(move |d| d.retire_member(STAFF, &q, "任期届满", None).unwrap())
        .await;
    assert_eq!(r.devices_revoked, 1);
    assert_eq!(r.records, 1);
    let late = dev.new_visit(&from);
    let q = quitter.clone();
    h.data(move |d| {
        let e = d.issue_code(&q).unwrap_err().to_string();
        assert!(e.contains("退出委员名录"), "{e}");
        assert!(
            d.devices()
                .unwrap()
                .iter()
                .all(|x| x.member != q || x.revoked_at_ms.is_some())
        );
        assert!(d.revocations().unwrap().devices.len() == 1);
    })
    .await;
    let enroll = h
        .post_json(
            "/v1/enroll",
            &json!({"code": code.code, "device_name": "新手机", "member": quitter}),
        )
        .await;
    assert_eq!(enroll.status, StatusCode::UNAUTHORIZED);
    assert_eq!(enroll.json()["error"], "member_retired");
    assert!(
        enroll.json()["message"]
            .as_str()
            .unwrap()
            .contains("退出委员名录")
    );
    let refused = h
        .post(
            "/v1/sync",
            Some(&dev.bearer()),
            dev.request(1 << 20).encode(),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(
        refused.json()["message"]
            .as_str()
            .unwrap()
            .contains("sanjin device bundle export")
    );
    // The office imports the phone's bundle: the visit made before the retirement lands, the
    // one made after is refused.
    let part = bundle_of(&h, &dev, &from, &[&pending, &late]).await;
    let relayed = part.clone();
    let report = h
        .data(move |d| d.import_bundle_part(&part, None).unwrap())
        .await;
    assert!(report.refused.is_none(), "{report:?}");
    let outcome = |id: &str| {
        report
            .docs
            .iter()
            .find(|x| x.doc_id == id)
            .map(|x| x.outcome)
            .unwrap()
    };
    assert_eq!(outcome(&pending), "landed");
    assert_eq!(outcome(&late), "refused");
    assert_eq!(authors(&h, &pending).await[0], quitter);
    assert_eq!(
        authors(&h, &synced).await[0],
        quitter,
        "records stay attributed"
    );
    // A phone relaying the retired device's bundle is refused, as for any revoked exporter.
    let other = h.device(&members_of(&from)[2]).await.bearer();
    let report = h
        .data(move |d| {
            let caller = d.authenticate(Some(&format!("Bearer {other}"))).unwrap();
            d.import_bundle_part(&relayed, Some(&caller)).unwrap()
        })
        .await;
    assert_eq!(report.refused.unwrap().code, "exporter_revoked");
}
