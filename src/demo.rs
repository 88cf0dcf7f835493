//! `sanjin demo`: the mission in one command, on embedded defaults (issue 5). A real server
//! (`sanjin_server::spawn`, HTTPS with a self-signed certificate, on loopback) in a folder of its
//! own holds the city's directory and year; a leader and three members of one activity group
//! enroll their phones (pinned to the certificate), record offline — one real conflict, one
//! photo — and sync through the server; the leader resolves the conflict and every phone
//! converges. Then the ledger is exported as XLSX and a staff sign-in for the console is made.
//! Everything is real: SQLite files, automerge documents, TLS, the same code paths as the device
//! commands and `sanjin serve`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sanjin_core::domain::{
    ActivityType, Gps, Opinion, OpinionKind, RecordData, TargetKind, Urgency, Visit,
};
use sanjin_core::import::ImportSet;
use sanjin_core::workflow::EventType;
use sanjin_core::{Edit, RecordDoc};
use sanjin_store::{Durability, Identity, Store, new_device, new_record_id, now_ms};
use serde_json::json;

use crate::show;

/// A phone of the demo: its store and who holds it.
struct Phone {
    store: Store,
    label: String,
}

fn name_of(fx: &ImportSet, member: &str) -> String {
    fx.directory
        .iter()
        .find_map(|r| match &r.data {
            RecordData::Member(m) if r.id == member => Some(m.name.clone()),
            _ => None,
        })
        .unwrap_or_else(|| member.to_string())
}

/// A password for the demo's staff account: 12 letters and digits, random.
fn password() -> Result<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("无法生成随机密码：{e}"))?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

/// A small JPEG as a phone would take it: EXIF time and GPS of the visit.
fn demo_photo() -> Vec<u8> {
    let jpeg = sanjin_media::testing::jpeg(&sanjin_media::testing::photo(800, 600, 2017, 6), 85);
    sanjin_media::testing::with_exif(
        &jpeg,
        &sanjin_media::testing::ExifSpec {
            orientation: None,
            taken_at: Some("2026:05:19 09:41:00".into()),
            gps: Some((30.9245, 113.9101)),
        },
    )
}

/// A phone syncs as `sanjin device sync` does: the records, then the photo originals
/// (`sanjin_client::sync_then_photos`, default options: originals on any link).
fn sync(p: &mut Phone) -> Result<sanjin_client::SyncSummary> {
    match sanjin_client::sync_then_photos(
        &mut p.store,
        &sanjin_client::SyncOptions::default(),
        &sanjin_client::BlobOptions::default(),
        &mut |_| {},
    ) {
        Ok(done) => Ok(done.records),
        Err(e) => {
            let step = match e.step {
                sanjin_client::FlowStep::Records => "同步失败",
                sanjin_client::FlowStep::Photos => "上传原图失败",
            };
            Err(anyhow::Error::from(*e.error).context(format!("{} {step}", p.label)))
        }
    }
}

fn choose_dir(dir: Option<PathBuf>) -> Result<PathBuf> {
    match dir {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            if std::fs::read_dir(&d)?.next().is_some() {
                bail!(
                    "{} 不是空目录；请给出一个新目录，以免覆盖已有数据",
                    d.display()
                );
            }
            Ok(std::path::absolute(&d).unwrap_or(d))
        }
        // Kept after the demo, so the printed `sanjin serve --data …` reopens it.
        None => Ok(tempfile::Builder::new()
            .prefix("sanjin-demo-")
            .tempdir()?
            .keep()),
    }
}

/// Who takes part: one activity group's leader and three of its members, at one of its
/// contact points.
struct Cast {
    group: &'static str,
    leader: String,
    members: [String; 3],
    contact_point: String,
}

impl Cast {
    fn of(fx: &ImportSet) -> Result<Cast> {
        let group = "group-01";
        let leader = fx
            .leader_of(group)
            .context("演示数据中 group-01 没有组长")?
            .to_string();
        let members: Vec<String> = fx
            .members_of(group)
            .into_iter()
            .filter(|m| *m != leader)
            .take(3)
            .map(str::to_string)
            .collect();
        let Ok(members) = <[String; 3]>::try_from(members) else {
            bail!("演示数据中 group-01 成员不足")
        };
        let contact_point = fx
            .directory
            .iter()
            .find_map(|r| match &r.data {
                RecordData::Group(g) if r.id == group => g.contact_points.first().cloned(),
                _ => None,
            })
            .context("group-01 没有联系点")?;
        Ok(Cast {
            group,
            leader,
            members,
            contact_point,
        })
    }
}

/// The demo's server: its data folder, the running HTTPS server and its certificate, the staff
/// sign-in for the console.
struct DemoServer {
    rt: tokio::runtime::Runtime,
    running: sanjin_server::Running,
    dir: PathBuf,
    url: String,
    cert: PathBuf,
    /// The certificate's PEM text, pinned by every phone.
    ca: String,
    staff: &'static str,
    password: String,
}

impl DemoServer {
    /// Step 1: the server's data folder (the city's directory and year, a staff account with a
    /// console password), then the server on loopback; with `serve` at the usual port if free.
    fn start(dir: &Path, fixtures_dir: &Path, fx: &ImportSet, serve: bool) -> Result<DemoServer> {
        let server_dir = dir.join("server");
        let staff = "office-01";
        let password = password()?;
        {
            let mut data = sanjin_server::ServerData::open(&server_dir)?;
            data.import_directory(fixtures_dir)?;
            let year: Vec<_> = fx
                .visits
                .iter()
                .chain(&fx.opinions)
                .chain(&fx.households)
                .chain(&fx.plans)
                .cloned()
                .collect();
            data.import_records(&year)?;
            data.add_staff(staff, "机关工作人员", sanjin_server::Role::Staff)?;
            sanjin_server::console::set_password(&mut data, staff, &password)?;
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let spawn = |listen: SocketAddr| {
            rt.block_on(sanjin_server::spawn(sanjin_server::Config::new(
                &server_dir,
                listen,
                sanjin_server::TlsMode::SelfSigned { hostnames: vec![] },
            )))
            .map_err(anyhow::Error::from)
        };
        // With --serve the console stays at the usual port if it is free.
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        let running = match serve {
            true => spawn(SocketAddr::from(([127, 0, 0, 1], 8443))).or_else(|_| spawn(any_port)),
            false => spawn(any_port),
        }
        .context("无法启动演示服务器")?;
        let url = running.url();
        let cert = running
            .certificate()
            .context("自签名证书未生成")?
            .to_path_buf();
        let ca = std::fs::read_to_string(&cert)?;
        Ok(DemoServer {
            rt,
            running,
            dir: server_dir,
            url,
            cert,
            ca,
            staff,
            password,
        })
    }

    /// A one-time enrollment code for `member`, issued by the running server.
    fn code(&self, member: &str) -> Result<String> {
        let m = member.to_string();
        self.rt.block_on(self.running.state().with_data(move |d| {
            d.issue_code(&m)
                .map(|c| c.code)
                .map_err(anyhow::Error::from)
        }))?
    }

    /// Whether the server holds the original of the photo `hash`.
    fn has_original(&self, hash: &str) -> Result<bool> {
        let blobs = self.running.state().blobs().store().clone();
        Ok(match sanjin_server::BlobHash::parse(hash) {
            Some(h) => blobs.size(&h)?.is_some(),
            None => false,
        })
    }
}

/// Step 2: the leader's and the members' phones, each a new store enrolled with a one-time
/// code and the server's certificate pinned.
fn enroll_phones(
    server: &DemoServer,
    fx: &ImportSet,
    cast: &Cast,
    dir: &Path,
) -> Result<Vec<Phone>> {
    let [m1, m2, m3] = &cast.members;
    let mut phones = Vec::new();
    for (i, (member, role)) in [
        (cast.leader.as_str(), "组长"),
        (m1.as_str(), "委员"),
        (m2.as_str(), "委员"),
        (m3.as_str(), "委员"),
    ]
    .into_iter()
    .enumerate()
    {
        let (device, actor) = new_device();
        let file = if i == 0 {
            "phone-leader".to_string()
        } else {
            format!("phone-{}", (b'a' + i as u8 - 1) as char)
        };
        let mut store = Store::init(
            &dir.join(format!("{file}.sqlite")),
            &Identity {
                member: member.into(),
                device,
                actor,
            },
            Durability::Full,
        )?;
        let code = server.code(member)?;
        let label = format!("{role} {}（{member}）", name_of(fx, member));
        sanjin_client::enroll(
            &mut store,
            &server.url,
            &code,
            Some(&server.ca),
            &format!("演示手机 {file}"),
        )
        .with_context(|| format!("{label} 的手机注册失败"))?;
        phones.push(Phone { store, label });
    }
    Ok(phones)
}

/// Step 3: a member in a village without signal records a visit and attaches a photo; the id
/// of the visit and the photo as attached.
fn record_visit_with_photo(
    phone: &mut Phone,
    cast: &Cast,
    now: i64,
) -> Result<(String, sanjin_client::AttachedPhoto)> {
    let [m1, m2, m3] = &cast.members;
    let visit = Visit {
        target_kind: TargetKind::Village,
        contact_point: cast.contact_point.clone(),
        group: cast.group.into(),
        activity_type: ActivityType::ResearchSymposium,
        start: sanjin_core::validate::parse_datetime("2026-05-19T09:00").expect("valid"),
        end: sanjin_core::validate::parse_datetime("2026-05-19T11:30").expect("valid"),
        title: "人居环境整治座谈".into(),
        summary: "与村两委和村民代表座谈，听取对垃圾清运和道路硬化的意见。".into(),
        participants: vec![m1.clone(), m2.clone(), m3.clone()],
        helpers: vec![],
        gps: Some(Gps {
            lat: 30.9245,
            lon: 113.9101,
        }),
        photos: vec![],
    };
    let vid = new_record_id();
    let by = phone.store.author();
    let mut doc = RecordDoc::create(&vid, &RecordData::Visit(visit), &by, now)?;
    phone.store.insert(&mut doc, true)?;
    let photo = sanjin_client::attach_photo(
        &mut phone.store,
        &vid,
        sanjin_client::PhotoSource::Bytes(&demo_photo()),
        "村口座谈",
    )?;
    Ok((vid, photo))
}

/// Step 5: offline again, two members change the visit's end time (a real conflict) and more;
/// a third records an opinion note about the visit.
fn edit_offline(phones: &mut [Phone], cast: &Cast, vid: &str, now: i64) -> Result<()> {
    phones[1].store.update(vid, |d, by| {
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
    phones[2].store.update(vid, |d, by| {
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
        contact_point: cast.contact_point.clone(),
        group: cast.group.into(),
        recorded_on: chrono::NaiveDate::from_ymd_opt(2026, 5, 19).expect("valid"),
        visit: Some(vid.to_string()),
    };
    let oid = new_record_id();
    let c = &mut phones[3];
    let by = c.store.author();
    let mut doc = RecordDoc::create(&oid, &RecordData::Opinion(opinion), &by, now + 3000)?;
    c.store.insert(&mut doc, true)?;
    Ok(())
}

/// Step 7: the leader resolves the conflict on the phone; the member submits, the leader
/// approves; each step synced, then every phone once more.
fn resolve_and_review(phones: &mut [Phone], vid: &str, now: i64) -> Result<()> {
    phones[0].store.update(vid, |d, by| {
        d.resolve(by, now + 4000, "end", json!("2026-05-19T12:30:00"))
    })?;
    sync(&mut phones[0])?;
    sync(&mut phones[1])?;
    phones[1].store.update(vid, |d, by| {
        d.transition(by, now + 5000, EventType::Submit, None)
    })?;
    sync(&mut phones[1])?;
    sync(&mut phones[0])?;
    phones[0].store.update(vid, |d, by| {
        d.transition(by, now + 6000, EventType::Approve, Some("内容完整"))
    })?;
    sync(&mut phones[0])?;
    for p in phones.iter_mut() {
        sync(p)?;
    }
    Ok(())
}

/// After step 7: each phone's view of the visit, then whether all four agree and the server
/// holds the photo's original. Fails the demo when not.
fn check_converged(
    out: &mut impl Write,
    phones: &[Phone],
    server: &DemoServer,
    vid: &str,
    hash: &str,
) -> Result<()> {
    let mut heads = Vec::new();
    for p in phones {
        let mut doc = p.store.load(vid)?;
        let v = doc.view()?;
        let has_thumb = doc.thumbnail(hash).is_some();
        heads.push(doc.heads());
        writeln!(
            out,
            "   {}：本次记录状态「{}」，未裁定冲突 {} 个，照片 {} 张{}，结束时间 {}",
            p.label,
            v.status.zh(),
            v.conflicts.len(),
            doc.photos()?.len(),
            if has_thumb { "（有缩略图）" } else { "" },
            match &v.data {
                RecordData::Visit(v) => v.end.format("%H:%M").to_string(),
                _ => String::new(),
            }
        )?;
    }
    let converged = heads.windows(2).all(|w| w[0] == w[1]);
    let original = server.has_original(hash)?;
    writeln!(
        out,
        "   四部手机的这条记录{}；照片原图{}",
        if converged {
            "完全一致"
        } else {
            "尚不一致"
        },
        if original {
            "已到达服务器"
        } else {
            "尚未到达服务器"
        }
    )?;
    if !converged || !original {
        bail!("演示未能收敛：请查看上面的输出");
    }
    Ok(())
}

/// Step 8: the office exports the ledger of 2025–2026 as XLSX, photos linked to the console.
fn export_ledger(out: &mut impl Write, server: &DemoServer, dir: &Path) -> Result<()> {
    let xlsx = dir.join("三进台账.xlsx");
    let mut ledger = sanjin_ledger::Ledger::open(&server.dir).map_err(crate::export::explain)?;
    let mut q = sanjin_ledger::Query::new(
        chrono::NaiveDate::from_ymd_opt(2025, 1, 1).expect("a date"),
        chrono::NaiveDate::from_ymd_opt(2026, 12, 31).expect("a date"),
    );
    q.console_url = Some(server.url.clone());
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
        "\n8. 机关工作人员导出台账（2025-01-01 至 2026-12-31，活动 {} 条、社情民意 {} 条、未参与委员 {} 人；照片链接到工作台）：\n   {}",
        report.rows_of("activities"),
        report.rows_of("opinions"),
        report.rows_of("coverage"),
        xlsx.display()
    )?;
    Ok(())
}

/// Step 9: the console's sign-in. With `serve` the server keeps running until Ctrl-C;
/// otherwise it stops and the command that reopens the same data is printed.
fn finish(
    out: &mut impl Write,
    server: DemoServer,
    serve: bool,
    vid: &str,
    leader_store: &Path,
    dir: &Path,
) -> Result<()> {
    let DemoServer {
        rt,
        running,
        dir: server_dir,
        url,
        staff,
        password,
        ..
    } = server;
    let record_page = format!("{url}/console/records/{vid}");
    let serve_cmd = format!(
        "sanjin serve --data {} --listen 127.0.0.1:8443 --tls-self-signed",
        server_dir.display()
    );
    if serve {
        writeln!(
            out,
            "9. 工作台（网页）：{url}/console\n   账号 {staff}，密码 {password}\n   本次记录（含照片）：{record_page}\n   浏览器会提示证书不受信任（自签名证书），选择继续访问即可。\n\n服务器运行中，按 Ctrl-C 停止。"
        )?;
        out.flush()?;
        rt.block_on(sanjin_server::shutdown_signal());
        rt.block_on(running.shutdown())?;
        writeln!(
            out,
            "\n服务器已停止。再次打开同一份数据：\n   {serve_cmd}\n（演示数据在 {}，不再需要时可删除）",
            dir.display()
        )?;
    } else {
        rt.block_on(running.shutdown())?;
        writeln!(
            out,
            "9. 工作台（网页）：用下面的命令重新打开同一份数据，\n   {serve_cmd}\n   然后用浏览器打开 https://127.0.0.1:8443/console ，账号 {staff}，密码 {password}\n   （或运行 sanjin demo --serve，演示结束后服务器继续运行）"
        )?;
        writeln!(
            out,
            "\n演示完成。继续查看组长的手机：sanjin device list --store {}\n（演示数据在 {}，不再需要时可删除）",
            leader_store.display(),
            dir.display()
        )?;
    }
    Ok(())
}

/// The demo's data: the committed test data of the source tree (`fixtures/city`).
fn demo_data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join("city")
}

/// `sanjin demo`: the steps above in order, each saying what happened.
pub fn run(dir: Option<PathBuf>, serve: bool) -> Result<()> {
    let fixtures_dir = demo_data_dir();
    let fx = ImportSet::load(&fixtures_dir, |p| std::fs::read_to_string(p)).with_context(|| {
        format!(
            "读取演示数据 {} 失败；请在 sanjin 源码目录中运行",
            fixtures_dir.display()
        )
    })?;
    let dir = choose_dir(dir)?;
    let out = std::io::stdout();
    let mut out = out.lock();
    let cast = Cast::of(&fx)?;
    let group = cast.group;
    writeln!(
        out,
        "sanjin（三进）演示：同步服务器、{group} 的组长和三位委员的手机、离线记录、冲突与裁定、台账导出"
    )?;
    writeln!(out, "数据目录：{}\n", dir.display())?;

    let server = DemoServer::start(&dir, &fixtures_dir, &fx, serve)?;
    writeln!(
        out,
        "1. 同步服务器已启动：{}（HTTPS，自签名证书 {}），导入名录和全市一年的记录",
        server.url,
        server.cert.display()
    )?;

    let mut phones = enroll_phones(&server, &fx, &cast, &dir)?;
    for p in &mut phones {
        let s = sync(p)?;
        writeln!(
            out,
            "2. {} 的手机注册（信任服务器证书）并首次同步：收到 {} 条记录",
            p.label, s.received
        )?;
    }

    let now = now_ms();
    let (vid, photo) = record_visit_with_photo(&mut phones[1], &cast, now)?;
    writeln!(
        out,
        "3. {} 在村里（无信号）记录一次调研座谈 {vid}，并拍了一张照片（缩略图 {} 字节随记录同步，原图待上传）",
        phones[1].label, photo.thumbnail_bytes
    )?;
    sync(&mut phones[1])?;
    sync(&mut phones[2])?;
    sync(&mut phones[3])?;
    writeln!(
        out,
        "4. 回到有信号的地方，记录和原图上传到服务器；另两位委员同步后也有了这条记录"
    )?;

    edit_offline(&mut phones, &cast, &vid, now)?;
    writeln!(
        out,
        "5. 离线状态下，{} 把结束时间改为 12:00，{} 改为 12:30 并补充了摘要；{} 记录一条社情民意",
        phones[1].label, phones[2].label, phones[3].label
    )?;
    for i in [1, 2, 3, 0] {
        sync(&mut phones[i])?;
    }
    let conflicts = phones[0].store.load(&vid)?.view()?.conflicts;
    writeln!(
        out,
        "6. 各自同步后，组长手机上这条记录有 {} 个待裁定冲突：\n",
        conflicts.len()
    )?;
    {
        let mut ldoc = phones[0].store.load(&vid)?;
        show::record(&mut out, &ldoc.view()?, &ldoc.history())?;
    }

    resolve_and_review(&mut phones, &vid, now)?;
    writeln!(
        out,
        "\n7. 组长裁定：结束时间取 12:30；{} 提交，组长审核通过；全部经服务器同步到每部手机\n",
        phones[1].label
    )?;
    check_converged(&mut out, &phones, &server, &vid, &photo.photo.hash)?;

    export_ledger(&mut out, &server, &dir)?;
    finish(&mut out, server, serve, &vid, phones[0].store.path(), &dir)
}
