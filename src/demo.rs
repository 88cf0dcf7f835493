//! `sanjin demo`: the mission in one command, on embedded defaults. Three phones of one activity
//! group record offline, exchange stores directly, hit a real conflict, and the leader resolves
//! it. Everything is real: SQLite files in a folder, automerge documents, the same code paths as
//! the device commands. At the end the office's side (issue 5): a server data folder with the
//! city's year and the group's records, the ledger exported as XLSX, a console sign-in.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sanjin_core::domain::{
    ActivityType, Opinion, OpinionKind, RecordData, RecordKind, Urgency, Visit,
};
use sanjin_core::workflow::EventType;
use sanjin_core::{Edit, RecordDoc};
use sanjin_fixtures::Fixtures;
use sanjin_store::{Durability, Filter, Identity, Store, new_device, new_record_id, now_ms};
use serde_json::json;

use crate::show;

fn phone(dir: &Path, name: &str, member: &str, fx: &Fixtures) -> Result<Store> {
    let (device, actor) = new_device();
    let path = dir.join(format!("{name}.sqlite"));
    let mut s = Store::init(
        &path,
        &Identity {
            member: member.into(),
            device,
            actor,
        },
        Durability::Full,
    )?;
    let mut docs: Vec<RecordDoc> = fx
        .directory
        .iter()
        .map(|r| r.to_doc())
        .collect::<Result<_, _>>()?;
    s.insert_batch(&mut docs, false)?;
    Ok(s)
}

fn name_of(fx: &Fixtures, member: &str) -> String {
    fx.directory
        .iter()
        .find_map(|r| match &r.data {
            RecordData::Member(m) if r.id == member => Some(m.name.clone()),
            _ => None,
        })
        .unwrap_or_else(|| member.to_string())
}

pub fn run(dir: Option<PathBuf>) -> Result<()> {
    let fixtures_dir = sanjin_fixtures::committed_dir();
    let fx = Fixtures::load(&fixtures_dir).with_context(|| {
        format!(
            "读取演示数据 {} 失败；请在 sanjin 源码目录中运行",
            fixtures_dir.display()
        )
    })?;
    let (dir, _keep) = match dir {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            if std::fs::read_dir(&d)?.next().is_some() {
                bail!(
                    "{} 不是空目录；请给出一个新目录，以免覆盖已有数据",
                    d.display()
                );
            }
            (d, None)
        }
        None => {
            let t = tempfile::Builder::new().prefix("sanjin-demo-").tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let out = std::io::stdout();
    let mut out = out.lock();
    let group = "group-01";
    let leader = fx
        .leader_of(group)
        .context("演示数据中 group-01 没有组长")?
        .to_string();
    let members: Vec<String> = fx
        .members_of(group)
        .into_iter()
        .filter(|m| *m != leader)
        .take(2)
        .map(str::to_string)
        .collect();
    let [m1, m2] = &members[..] else {
        bail!("演示数据中 group-01 成员不足")
    };
    let cp = fx
        .directory
        .iter()
        .find_map(|r| match &r.data {
            RecordData::Group(g) if r.id == group => g.contact_points.first().cloned(),
            _ => None,
        })
        .context("group-01 没有联系点")?;
    writeln!(
        out,
        "sanjin（三进）演示：{group} 的三部手机离线记录、直接合并、组长裁定冲突"
    )?;
    writeln!(out, "数据目录：{}\n", dir.display())?;

    let mut a = phone(&dir, "phone-a", m1, &fx)?;
    let mut b = phone(&dir, "phone-b", m2, &fx)?;
    let mut l = phone(&dir, "phone-leader", &leader, &fx)?;
    writeln!(
        out,
        "1. 三部手机各自初始化：委员 {}（{m1}）、委员 {}（{m2}）、组长 {}（{leader}），导入名录 {} 条",
        name_of(&fx, m1),
        name_of(&fx, m2),
        name_of(&fx, &leader),
        fx.directory.len()
    )?;

    let now = now_ms();
    let visit = Visit {
        target_kind: sanjin_core::domain::TargetKind::Village,
        contact_point: cp.clone(),
        group: group.into(),
        activity_type: ActivityType::ResearchSymposium,
        start: sanjin_core::validate::parse_datetime("2026-05-19T09:00").expect("valid"),
        end: sanjin_core::validate::parse_datetime("2026-05-19T11:30").expect("valid"),
        title: "人居环境整治座谈".into(),
        summary: "与村两委和村民代表座谈，听取对垃圾清运和道路硬化的意见。".into(),
        participants: vec![m1.clone(), m2.clone()],
        helpers: vec![],
        gps: Some(sanjin_core::domain::Gps {
            lat: 30.9245,
            lon: 113.9101,
        }),
        photos: vec![],
    };
    let vid = new_record_id();
    let mut doc = RecordDoc::create(&vid, &RecordData::Visit(visit), &a.author(), now)?;
    a.insert(&mut doc, true)?;
    writeln!(out, "2. {m1} 在村里（无信号）记录一次调研座谈：{vid}")?;

    b.merge_from(a.path())?;
    writeln!(
        out,
        "3. 两部手机碰面，{m2} 直接合并了 {m1} 的数据（无需服务器）"
    )?;

    a.update(&vid, |d, by| {
        d.edit(
            by,
            now + 1000,
            &[
                Edit::Set {
                    field: "end".into(),
                    value: json!("2026-05-19T12:00:00"),
                },
                Edit::Add {
                    field: "helpers".into(),
                    element: json!("村医 王桂兰"),
                },
            ],
        )
    })?;
    b.update(&vid, |d, by| {
        d.edit(
            by,
            now + 2000,
            &[
                Edit::Set {
                    field: "end".into(),
                    value: json!("2026-05-19T12:30:00"),
                },
                Edit::Set {
                    field: "summary".into(),
                    value: json!(
                        "与村两委和村民代表座谈，听取对垃圾清运和道路硬化的意见。会后形成三条建议。"
                    ),
                },
            ],
        )
    })?;
    let opinion = Opinion {
        topic: "农村饮水安全".into(),
        opinion_kind: OpinionKind::MicroSuggestion,
        text: "村民反映自来水管网老化，夏季常停水，建议纳入明年改造计划。".into(),
        source: None,
        urgency: Urgency::Urgent,
        contact_point: cp,
        group: group.into(),
        recorded_on: chrono::NaiveDate::from_ymd_opt(2026, 5, 19).expect("valid"),
        visit: Some(vid.clone()),
    };
    let oid = new_record_id();
    let mut odoc = RecordDoc::create(&oid, &RecordData::Opinion(opinion), &b.author(), now + 3000)?;
    b.insert(&mut odoc, true)?;
    writeln!(
        out,
        "4. 离线状态下，两人都改了结束时间（12:00 与 12:30）；{m2} 补充了摘要并记录一条社情民意"
    )?;

    let ra = l.merge_from(a.path())?;
    let rb = l.merge_from(b.path())?;
    writeln!(
        out,
        "5. 组长合并两部手机：新增 {} 条，更新 {} 条，新出现冲突 {} 条\n",
        ra.added + rb.added,
        ra.updated + rb.updated,
        ra.new_conflicts.len() + rb.new_conflicts.len()
    )?;
    let mut ldoc = l.load(&vid)?;
    show::record(&mut out, &ldoc.view()?, &ldoc.history())?;

    l.update(&vid, |d, by| {
        d.resolve(by, now + 4000, "end", json!("2026-05-19T12:30:00"))
    })?;
    writeln!(out, "\n6. 组长裁定：结束时间取 12:30")?;
    a.merge_from(l.path())?;
    b.merge_from(l.path())?;
    a.update(&vid, |d, by| {
        d.transition(by, now + 5000, EventType::Submit, None)
    })?;
    l.merge_from(a.path())?;
    l.update(&vid, |d, by| {
        d.transition(by, now + 6000, EventType::Approve, Some("内容完整"))
    })?;
    a.merge_from(l.path())?;
    b.merge_from(l.path())?;
    writeln!(
        out,
        "7. {m1} 提交，组长审核通过；裁定与审核结果同步回两部手机\n"
    )?;

    for (who, s) in [(m1.as_str(), &a), (m2.as_str(), &b), (leader.as_str(), &l)] {
        let rows = s.list(&Filter {
            kind: Some(RecordKind::Visit),
            ..Filter::default()
        })?;
        let v = s.load(&vid)?.view()?;
        writeln!(
            out,
            "   {who}：活动记录 {} 条，本次记录状态「{}」，未裁定冲突 {} 个",
            rows.len(),
            v.status.zh(),
            v.conflicts.len()
        )?;
    }
    writeln!(out)?;
    let mut ldoc = l.load(&vid)?;
    show::record(&mut out, &ldoc.view()?, &ldoc.history())?;
    // 8. The office's side: a server data folder with the city's year and the group's new
    //    records (with their history), the ledger exported, a staff account for the console.
    let server_dir = dir.join("server");
    let mut data = sanjin_server::ServerData::open(&server_dir)?;
    data.import_directory(&fixtures_dir)?;
    let year: Vec<_> = fx
        .visits
        .iter()
        .chain(&fx.opinions)
        .chain(&fx.households)
        .chain(&fx.plans)
        .cloned()
        .collect();
    data.import_records(&year)?;
    let mut ours: Vec<RecordDoc> = Vec::new();
    for (id, kind) in l.ids()? {
        if !RecordKind::parse(&kind).is_some_and(RecordKind::is_directory) {
            ours.push(l.load(&id)?);
        }
    }
    data.import_docs(&mut ours)?;
    let staff = "office-01";
    let password = "sanjin-demo-2017";
    if data.account(staff)?.is_none() {
        data.add_staff(staff, "机关工作人员", sanjin_server::Role::Staff)?;
    }
    sanjin_server::console::set_password(&mut data, staff, password)?;
    drop(data);
    let xlsx = dir.join("三进台账.xlsx");
    let mut ledger = sanjin_ledger::Ledger::open(&server_dir).map_err(crate::export::explain)?;
    let q = sanjin_ledger::Query::new(
        chrono::NaiveDate::from_ymd_opt(2025, 1, 1).expect("a date"),
        chrono::NaiveDate::from_ymd_opt(2026, 12, 31).expect("a date"),
    );
    let report = ledger
        .export(
            &sanjin_ledger::Viewer::Office,
            &q,
            sanjin_ledger::Format::Xlsx,
            &xlsx,
        )
        .map_err(crate::export::explain)?;
    writeln!(
        out,
        "\n8. 机关工作人员导出台账（2025-01-01 至 2026-12-31，活动 {} 条、社情民意 {} 条、未参与委员 {} 人）：\n   {}",
        report.rows_of("activities"),
        report.rows_of("opinions"),
        report.rows_of("coverage"),
        xlsx.display()
    )?;
    writeln!(
        out,
        "9. 工作台（网页）：sanjin serve --data {} --tls-self-signed\n   然后用浏览器打开 https://127.0.0.1:8443/console ，账号 {staff}，密码 {password}",
        server_dir.display()
    )?;
    writeln!(
        out,
        "\n演示完成。继续查看：sanjin device list --store {}",
        l.path().display()
    )?;
    if _keep.is_some() {
        writeln!(
            out,
            "（临时目录将在退出时删除；用 sanjin demo --dir 目录 保留数据）"
        )?;
    }
    Ok(())
}
