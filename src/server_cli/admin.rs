//! `sanjin admin …`: accounts, the directory, enrollment codes and devices on the server's data
//! folder. One function per subcommand; `admin` sends each to its function.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, Subcommand};
use sanjin_core::domain::{
    Chapter, ChapterLevel, Committee, ContactPoint, Gps, Group, Member, RecordData, TargetKind,
    Unit,
};
use sanjin_core::import::{self, ImportSet};
use sanjin_server::{Error, Role};
use serde_json::json;

use super::{DataArg, open};
use crate::errors::{self, Usage};
use crate::show;

#[derive(Args)]
pub struct AdminCmd {
    #[command(flatten)]
    data: DataArg,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// 导入名录（政协组织、专委会、活动组、联系点、委员）并为每位委员建账户：fixtures 目录或 JSON Lines 文件
    ImportDirectory {
        /// fixtures 目录（含 manifest.json 或 directory.jsonl），或名录 JSON Lines 文件
        path: PathBuf,
        /// 以 JSON 输出
        #[arg(long)]
        json: bool,
    },
    /// 导入活动记录、社情民意、困难户和年度计划（fixtures 目录或 JSON Lines 文件），如从旧台账迁移
    ImportRecords {
        /// fixtures 目录（含 manifest.json），或记录的 JSON Lines 文件
        path: PathBuf,
        /// 以 JSON 输出
        #[arg(long)]
        json: bool,
    },
    /// 添加政协组织（市政协或县市区政协）
    AddChapter {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// city（市政协）或 county（县市区政协）
        #[arg(long)]
        level: String,
        /// 上级政协组织编号
        #[arg(long)]
        parent: Option<String>,
    },
    /// 添加专委会
    AddCommittee {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// 所属政协组织编号
        #[arg(long)]
        chapter: String,
    },
    /// 添加联系点（社区、园区、农村）
    AddContactPoint {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// community（社区）、park（园区）或 village（农村）
        #[arg(long)]
        target_kind: String,
        #[arg(long)]
        chapter: String,
        #[arg(long, default_value = "")]
        address: String,
        /// 纬度,经度，如 30.92,113.91
        #[arg(long)]
        gps: Option<String>,
    },
    /// 添加承办单位（社情民意转办的对象）
    AddUnit {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// 所属政协组织编号
        #[arg(long)]
        chapter: Option<String>,
    },
    /// 添加委员活动组
    AddGroup {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        chapter: String,
        #[arg(long)]
        committee: Option<String>,
        /// 组长的委员编号
        #[arg(long)]
        leader: String,
        /// 联系点编号（可多次指定）
        #[arg(long = "contact-point")]
        contact_points: Vec<String>,
        /// 法律顾问委员活动组：各组记录的法律诉求也交由本组阅看、本组组长办理
        #[arg(long)]
        legal_advisory: bool,
    },
    /// 添加委员（及其账户）；--leader 设为活动组组长
    AddMember {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        chapter: String,
        /// 所在委员活动组编号
        #[arg(long)]
        group: String,
        #[arg(long)]
        committee: Option<String>,
        /// 界别
        #[arg(long, default_value = "")]
        sector: String,
        /// 该委员是活动组组长（可审核、退回、裁定本组记录）
        #[arg(long)]
        leader: bool,
    },
    /// 添加机关工作人员账户（可读写全部记录和名录）
    AddStaff {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// 县市区政协的工作人员：所属政协组织编号（如 chapter-hanchuan）；只能查看和办理本政协组织各活动组的记录、修改本政协组织的名录；不指定则为市政协工作人员（全部可见）
        #[arg(long)]
        chapter: Option<String>,
    },
    /// 添加管理员账户（管理账户和名录）
    AddAdmin {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
    },
    /// 修改账户角色：member（委员）、leader（组长）、staff（机关工作人员）、admin（管理员）
    SetRole { member: String, role: String },
    /// 设置工作台（网页）登录密码：机关工作人员、管理员和活动组组长可用；不指定 --password-stdin 则随机生成并显示
    SetPassword {
        /// 账户编号
        member: String,
        /// 从标准输入读取密码（一行，至少 8 个字符）
        #[arg(long)]
        password_stdin: bool,
    },
    /// 为委员发放一次性设备注册码（7 天内有效，只能用一次）
    IssueCode {
        /// 委员（或工作人员）编号
        member: String,
        /// 以 JSON 输出（供脚本使用）
        #[arg(long)]
        json: bool,
    },
    /// 列出已注册的设备
    Devices {
        /// 只列出这位委员的设备
        #[arg(long)]
        member: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// 列出账户
    Accounts {
        #[arg(long)]
        json: bool,
    },
    /// 吊销设备：此后该设备的所有请求都被拒绝，它签名的改动也不再接受
    Revoke { device_id: String },
    /// 导入离线包（U 盘拷来或聊天软件传来的 .sjb 文件，可一次给多个部件，顺序不限）：逐条核验签名和权限后入库，重复导入不会重复记录
    ImportBundle {
        /// 离线包文件（一个或多个部件）
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// 以 JSON 输出
        #[arg(long)]
        json: bool,
    },
    /// 把委员调到另一个活动组（issue 13）：重新签发他各台手机的证书，手机下次同步时收到新组的记录；调组前在原组做的记录照常接收，仍记在他名下
    MoveMember {
        /// 委员编号
        member: String,
        /// 调入的活动组编号
        group: String,
        /// 委员是原组组长时，原组的新组长（原组的另一位委员）
        #[arg(long)]
        new_leader: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// 委员退出名录（issue 13）：停用（吊销）他的所有设备，账户不能再同步或登记；已有记录保留并仍记在他名下
    RetireMember {
        /// 委员编号
        member: String,
        /// 退出原因（如：任期届满）
        #[arg(long)]
        reason: String,
        /// 委员是组长时，该组的新组长
        #[arg(long)]
        new_leader: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

fn print_json(v: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("JSON serializes")
    );
}

/// `sanjin admin`.
pub fn admin(cmd: AdminCmd) -> Result<()> {
    let dir = cmd.data.data.as_path();
    match cmd.command {
        AdminCommand::ImportDirectory { path, json } => import_directory(dir, &path, json),
        AdminCommand::ImportRecords { path, json } => import_records(dir, &path, json),
        AdminCommand::AddChapter {
            id,
            name,
            level,
            parent,
        } => add_chapter(dir, &id, name, &level, parent),
        AdminCommand::AddCommittee { id, name, chapter } => {
            let done = format!("已添加专委会 {id}（{name}）");
            add_record(
                dir,
                &id,
                RecordData::Committee(Committee { name, chapter }),
                done,
            )
        }
        AdminCommand::AddContactPoint {
            id,
            name,
            target_kind,
            chapter,
            address,
            gps,
        } => add_contact_point(dir, &id, name, &target_kind, chapter, address, gps),
        AdminCommand::AddUnit { id, name, chapter } => {
            let done = format!("已添加承办单位 {id}（{name}）");
            add_record(dir, &id, RecordData::Unit(Unit { name, chapter }), done)
        }
        AdminCommand::AddGroup {
            id,
            name,
            chapter,
            committee,
            leader,
            contact_points,
            legal_advisory,
        } => {
            let done = format!("已添加委员活动组 {id}（{name}），组长 {leader}");
            let group = Group {
                name,
                chapter,
                committee,
                leader,
                contact_points,
                legal_advisory,
            };
            add_record(dir, &id, RecordData::Group(group), done)
        }
        AdminCommand::AddMember {
            id,
            name,
            chapter,
            group,
            committee,
            sector,
            leader,
        } => add_member(
            dir,
            &id,
            &Member {
                name,
                chapter,
                committee,
                group,
                sector,
            },
            leader,
        ),
        AdminCommand::AddStaff { id, name, chapter } => {
            add_staff(dir, &id, &name, Role::Staff, chapter.as_deref())
        }
        AdminCommand::AddAdmin { id, name } => add_staff(dir, &id, &name, Role::Admin, None),
        AdminCommand::SetRole { member, role } => set_role(dir, &member, &role),
        AdminCommand::SetPassword {
            member,
            password_stdin,
        } => set_password(dir, &member, password_stdin),
        AdminCommand::IssueCode { member, json } => issue_code(dir, &member, json),
        AdminCommand::Devices { member, json } => devices(dir, member.as_deref(), json),
        AdminCommand::Accounts { json } => accounts(dir, json),
        AdminCommand::Revoke { device_id } => revoke(dir, &device_id),
        AdminCommand::ImportBundle { files, json } => import_bundle(dir, &files, json),
        AdminCommand::MoveMember {
            member,
            group,
            new_leader,
            json,
        } => move_member(dir, &member, &group, new_leader.as_deref(), json),
        AdminCommand::RetireMember {
            member,
            reason,
            new_leader,
            json,
        } => retire_member(dir, &member, &reason, new_leader.as_deref(), json),
    }
}

/// `move-member` (issue 13): made by the server's operator (named `server` in the change).
fn move_member(
    dir: &Path,
    member: &str,
    group: &str,
    new_leader: Option<&str>,
    json: bool,
) -> Result<()> {
    let mut data = open(dir)?;
    let impact = data.member_impact(member).map_err(errors::server)?;
    let r = data
        .move_member(sanjin_server::SERVER_ID, member, group, new_leader)
        .map_err(errors::server)?;
    if json {
        print_json(&serde_json::to_value(&r)?);
        return Ok(());
    }
    println!(
        "已把委员 {} 从活动组 {} 调到 {}：重新签发证书 {} 张，{} 台手机下次同步时重新读取新组的记录；原组的离线包密钥已更换（第 {} 代）",
        r.member, r.from, r.to, r.certificates_reissued, r.devices_to_resync, r.old_group_epoch
    );
    if let Some(l) = &r.new_leader {
        println!("原组 {} 的新组长：{l}", r.from);
    }
    println!(
        "他的 {} 条记录保留原样，仍记在他名下；调组前在原组做、尚未同步的记录下次同步时照常接收，调组后对原组记录的修改不再接受",
        impact.records
    );
    Ok(())
}

/// `retire-member` (issue 13).
fn retire_member(
    dir: &Path,
    member: &str,
    reason: &str,
    new_leader: Option<&str>,
    json: bool,
) -> Result<()> {
    let mut data = open(dir)?;
    let r = data
        .retire_member(sanjin_server::SERVER_ID, member, reason, new_leader)
        .map_err(errors::server)?;
    if json {
        print_json(&serde_json::to_value(&r)?);
        return Ok(());
    }
    println!(
        "委员 {} 已退出名录（{reason}）：停用设备 {} 台，账户不能再同步或登记；他的 {} 条记录保留，仍记在他名下",
        r.member, r.devices_revoked, r.records
    );
    if let Some(l) = &r.new_leader {
        println!("该组的新组长：{l}");
    }
    println!(
        "他手机上尚未同步的记录：请他在手机上执行 `sanjin device bundle export` 导出离线包交给机关，再用 `sanjin admin import-bundle` 导入（退出前做的改动照常接收）"
    );
    Ok(())
}

/// `import-directory`: the directory's records, and an account for each member.
fn import_directory(dir: &Path, path: &Path, json: bool) -> Result<()> {
    let mut data = open(dir)?;
    let r = data.import_directory(path).map_err(errors::server)?;
    if json {
        print_json(&serde_json::to_value(&r)?);
    } else {
        println!(
            "已导入名录：新增 {} 条，更新 {} 条，未变 {} 条；账户新建 {} 个，更新 {} 个（其中活动组组长 {} 个）",
            r.added, r.updated, r.unchanged, r.accounts_created, r.accounts_updated, r.leaders
        );
    }
    Ok(())
}

/// `import-records`: field records (no directory entries) from a fixtures folder or JSON Lines.
fn import_records(dir: &Path, path: &Path, json: bool) -> Result<()> {
    let read = |p: &Path| std::fs::read_to_string(p);
    let records = if path.join(import::MANIFEST_FILE).exists() {
        ImportSet::load(path, read)
            .map_err(|e| Usage(format!("记录文件有误：{e}")))?
            .into_field_records()
    } else {
        import::read_jsonl(path, read)
            .map_err(|e| Usage(format!("记录文件有误：{e}")))?
            .into_iter()
            .filter(|r| !r.data.kind().is_directory())
            .collect()
    };
    let mut data = open(dir)?;
    let r = data.import_records(&records).map_err(errors::server)?;
    if json {
        print_json(&serde_json::to_value(&r)?);
    } else {
        println!(
            "已导入记录 {} 条（写入同步日志 {} 条）",
            r.records, r.logged
        );
    }
    Ok(())
}

/// One directory record written by the server; `done` confirms it to the administrator.
fn add_record(dir: &Path, id: &str, record: RecordData, done: String) -> Result<()> {
    let mut data = open(dir)?;
    data.add_record(id, &record).map_err(errors::server)?;
    println!("{done}");
    Ok(())
}

/// `add-chapter`: a CPPCC (city or county).
fn add_chapter(
    dir: &Path,
    id: &str,
    name: String,
    level: &str,
    parent: Option<String>,
) -> Result<()> {
    let level = ChapterLevel::parse(level).ok_or_else(|| {
        Usage(format!(
            "无法识别级别“{level}”，可选：{}",
            ChapterLevel::choices()
        ))
    })?;
    let done = format!("已添加政协组织 {id}（{name}，{}）", level.zh());
    let chapter = Chapter {
        name,
        level,
        parent,
    };
    add_record(dir, id, RecordData::Chapter(chapter), done)
}

/// `add-contact-point`: a community, park or village.
fn add_contact_point(
    dir: &Path,
    id: &str,
    name: String,
    target_kind: &str,
    chapter: String,
    address: String,
    gps: Option<String>,
) -> Result<()> {
    let target_kind = TargetKind::parse(target_kind).ok_or_else(|| {
        Usage(format!(
            "无法识别联系点类型“{target_kind}”，可选：{}",
            TargetKind::choices()
        ))
    })?;
    let gps = match gps {
        Some(g) => Some(Gps::parse(&g).ok_or_else(|| {
            Usage(format!(
                "GPS“{g}”格式不对，应为 纬度,经度（如 30.92,113.91）"
            ))
        })?),
        None => None,
    };
    let done = format!("已添加联系点 {id}（{name}，{}）", target_kind.zh());
    let point = ContactPoint {
        name,
        target_kind,
        chapter,
        address,
        gps,
    };
    add_record(dir, id, RecordData::ContactPoint(point), done)
}

/// `add-member`: the member's directory entry and account (a leader with `--leader`).
fn add_member(dir: &Path, id: &str, member: &Member, leader: bool) -> Result<()> {
    let mut data = open(dir)?;
    let a = data
        .add_member(id, member, leader)
        .map_err(errors::server)?;
    println!(
        "已添加委员 {id}（{}），活动组 {}，角色：{}",
        member.name,
        member.group,
        a.role.zh()
    );
    Ok(())
}

/// `add-staff` and `add-admin`: an account outside the directory.
fn add_staff(dir: &Path, id: &str, name: &str, role: Role, chapter: Option<&str>) -> Result<()> {
    let mut data = open(dir)?;
    match chapter {
        Some(c) => data.add_county_staff(id, name, c),
        None => data.add_staff(id, name, role),
    }
    .map_err(errors::server)?;
    match (role, chapter) {
        (Role::Admin, _) => println!("已添加管理员账户 {id}（{name}）：管理账户和名录"),
        (_, Some(c)) => {
            let chapter_name = data
                .store()
                .index_entry(c)
                .ok()
                .flatten()
                .map_or(c.to_string(), |e| e.title);
            println!(
                "已添加{chapter_name}机关工作人员账户 {id}（{name}）：只能查看和办理{chapter_name}各活动组的记录，修改{chapter_name}的名录"
            )
        }
        _ => println!("已添加机关工作人员账户 {id}（{name}）：可读写全部记录和名录"),
    }
    Ok(())
}

fn parse_role(s: &str) -> Result<Role> {
    Role::parse(s).ok_or_else(|| {
        Usage(format!(
            "无法识别角色“{s}”，可选：member（委员）、leader（活动组组长）、staff（机关工作人员）、admin（管理员）"
        ))
        .into()
    })
}

/// `set-role`.
fn set_role(dir: &Path, member: &str, role: &str) -> Result<()> {
    let role = parse_role(role)?;
    let mut data = open(dir)?;
    let a = data.set_role(member, role).map_err(errors::server)?;
    println!("已将 {member}（{}）的角色设为：{}", a.name, a.role.zh());
    Ok(())
}

/// `set-password`: the console password, read from standard input or generated and shown.
fn set_password(dir: &Path, member: &str, password_stdin: bool) -> Result<()> {
    let password = if password_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        let mut b = [0u8; 12];
        getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("无法生成随机密码：{e}"))?;
        const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ";
        b.iter()
            .map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char)
            .collect()
    };
    let mut data = open(dir)?;
    sanjin_server::console::set_password(&mut data, member, &password).map_err(|e| match e {
        Error::Invalid(m) if m.contains("is a member") => anyhow::Error::new(Usage(format!(
            "{member} 是委员账户；工作台供机关工作人员、管理员和活动组组长使用"
        ))),
        Error::Invalid(_) => anyhow::Error::new(Usage("密码至少 8 个字符".into())),
        other => errors::server(other),
    })?;
    if password_stdin {
        println!("已设置 {member} 的工作台密码");
    } else {
        println!("已设置 {member} 的工作台密码：{password}");
        println!("请转告本人，登录后妥善保管");
    }
    Ok(())
}

/// `issue-code`: a one-time enrollment code and how to use it.
fn issue_code(dir: &Path, member: &str, json: bool) -> Result<()> {
    let mut data = open(dir)?;
    let code = data.issue_code(member).map_err(errors::server)?;
    if json {
        print_json(&serde_json::to_value(&code)?);
        return Ok(());
    }
    let name = data
        .account(member)
        .map_err(errors::server)?
        .map(|a| a.name)
        .unwrap_or_default();
    println!("设备注册码：{}", code.code);
    println!("委员：{member}（{name}）");
    println!(
        "有效期至：{}（北京时间），只能使用一次",
        show::time(code.expires_at_ms)
    );
    println!(
        "在该委员的设备上运行：sanjin device enroll --server 服务器地址 --code {}",
        code.code
    );
    Ok(())
}

/// `devices`: every enrolled device (or one member's), with its state and last sync.
fn devices(dir: &Path, member: Option<&str>, json: bool) -> Result<()> {
    let data = open(dir)?;
    let devices: Vec<_> = data
        .devices()
        .map_err(errors::server)?
        .into_iter()
        .filter(|d| member.is_none_or(|m| m == d.member))
        .collect();
    if json {
        print_json(&serde_json::to_value(&devices)?);
        return Ok(());
    }
    if devices.is_empty() {
        println!(
            "还没有设备注册。用 sanjin admin issue-code 委员编号 发放注册码，委员在设备上用它注册"
        );
        return Ok(());
    }
    let revoked = devices.iter().filter(|d| d.revoked_at_ms.is_some()).count();
    for d in &devices {
        let status = match d.revoked_at_ms {
            Some(t) => format!("已吊销（{}）", show::time(t)),
            None => "正常".into(),
        };
        let last = d
            .last_sync_at_ms
            .map(show::time)
            .unwrap_or_else(|| "从未同步".into());
        println!(
            "{}  委员 {}  “{}”  注册于 {}  最近同步 {}  {}",
            d.device_id,
            d.member,
            d.name,
            show::time(d.enrolled_at_ms),
            last,
            status
        );
    }
    println!("共 {} 台设备，其中已吊销 {} 台", devices.len(), revoked);
    Ok(())
}

/// `accounts`: every account with its role and group.
fn accounts(dir: &Path, json: bool) -> Result<()> {
    let data = open(dir)?;
    let accounts = data.accounts().map_err(errors::server)?;
    if json {
        print_json(&json!(accounts));
        return Ok(());
    }
    for a in &accounts {
        println!(
            "{}  {}  {}  {}",
            a.member,
            a.name,
            a.role.zh(),
            a.group.as_deref().or(a.chapter.as_deref()).unwrap_or("—")
        );
    }
    println!("共 {} 个账户", accounts.len());
    Ok(())
}

/// `revoke`: the device's requests and the changes it signs are refused from now on.
fn revoke(dir: &Path, device_id: &str) -> Result<()> {
    let mut data = open(dir)?;
    let d = data.revoke(device_id).map_err(errors::server)?;
    println!(
        "已吊销设备 {}（委员 {}，“{}”）：该设备此后的请求一律拒绝，它签名的改动也不再接受",
        d.device_id, d.member, d.name
    );
    Ok(())
}

/// `import-bundle` (issue 12): each file is one bundle part, imported on its own — a damaged,
/// forged or newer part is refused with its reason and the others still land.
fn import_bundle(dir: &Path, files: &[PathBuf], json: bool) -> Result<()> {
    let mut data = open(dir)?;
    let mut reports = Vec::new();
    let mut failed = 0usize;
    for f in files {
        let report = match std::fs::read(f) {
            Ok(bytes) => data
                .import_bundle_part(&bytes, None)
                .map_err(errors::server)?,
            Err(e) => {
                failed += 1;
                if json {
                    reports
                        .push(json!({ "file": f.display().to_string(), "error": e.to_string() }));
                } else {
                    println!("无法读取文件 {}：{e}。请检查文件路径", f.display());
                }
                continue;
            }
        };
        if report.refused.is_some() {
            failed += 1;
        }
        if json {
            let mut v = serde_json::to_value(&report)?;
            v["file"] = json!(f.display().to_string());
            reports.push(v);
        } else {
            print_part(&f.display().to_string(), &report, "");
        }
    }
    if json {
        print_json(&json!(reports));
    }
    if failed > 0 {
        return Err(errors::Usage(format!(
            "{failed} 个文件未能导入（原因见上），其余文件已导入。请向发送者索取完好的文件后再导入"
        ))
        .into());
    }
    Ok(())
}

/// One part's outcome, in Chinese, for staff.
fn print_part(file: &str, r: &sanjin_server::PartReport, indent: &str) {
    if let Some(refused) = &r.refused {
        println!("{indent}{file}：拒收。{}", refused.message_zh);
        return;
    }
    let (landed, held, refused) = r.counts();
    let own: Vec<&sanjin_server::DocOutcome> = r.docs.iter().collect();
    println!(
        "{indent}{file}：第 {}/{} 部分，由委员 {} 的设备 {} 导出；新收 {} 条，已有 {} 条，拒收 {} 条；原图 {} 张",
        r.part + 1,
        r.parts,
        r.exporter_member,
        r.exporter_device,
        landed,
        held,
        refused,
        r.originals
    );
    for d in own
        .iter()
        .filter(|d| d.outcome != "landed" && d.outcome != "held")
    {
        let field = d.field.as_deref().filter(|f| !f.is_empty()).unwrap_or("—");
        println!(
            "{indent}  拒收记录 {}（字段 {}）：{}（{}）",
            d.doc_id,
            field,
            d.reason_zh.as_deref().unwrap_or(""),
            d.reason.as_deref().unwrap_or("")
        );
    }
    for c in &r.cargo {
        print_part("代转的包", c, &format!("{indent}  "));
    }
}
