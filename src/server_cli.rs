//! `sanjin serve …` and `sanjin admin …`: the sync server and its administration, on the
//! server's data folder (`--data`, default `./sanjin-data`).

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, Subcommand};
use sanjin_core::domain::{
    Chapter, ChapterLevel, Committee, ContactPoint, Gps, Group, Member, RecordData, TargetKind,
};
use sanjin_server::{Config, Error, Limits, Role, ServerData, TlsMode};
use serde_json::json;

use crate::errors::Usage;
use crate::show;

/// Where the server keeps its data.
#[derive(Args)]
pub struct DataArg {
    /// 服务器数据目录（SQLite 数据库、照片文件夹、自签名证书），首次使用时创建
    #[arg(
        long,
        global = true,
        env = "SANJIN_DATA",
        default_value = "sanjin-data"
    )]
    data: PathBuf,
}

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    data: DataArg,
    /// 监听地址，如 127.0.0.1:8443 或 0.0.0.0:8443；端口写 0 表示任选空闲端口
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: String,
    /// TLS 证书链文件（PEM），与 --tls-key 一起使用
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// TLS 私钥文件（PEM），与 --tls-cert 一起使用
    #[arg(long, value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// 使用自签名证书（首次启动时生成并保存在 数据目录/tls/，之后沿用）；供试用，客户端需信任该证书
    #[arg(long)]
    tls_self_signed: bool,
    /// 自签名证书额外包含的主机名或 IP（可多次指定），如 --hostname sanjin.example.cn
    #[arg(long = "hostname", value_name = "NAME")]
    hostnames: Vec<String>,
    /// 明文 HTTP（不加密），只允许监听本机回环地址，仅供开发和测试
    #[arg(long)]
    plain: bool,
    /// 单个请求体的上限（MiB），超出返回 413
    #[arg(long, default_value_t = 16, value_name = "MIB")]
    max_body_mib: usize,
    /// 照片原图未完成的上传保留多久（小时），过期清除；启动时和运行中定期清理
    #[arg(long, default_value_t = 24, value_name = "HOURS")]
    partial_upload_hours: u64,
    /// 停止服务时等待进行中请求完成的最长秒数
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    shutdown_grace: u64,
}

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
}

/// The error said in Chinese, with what to do; input errors exit 2.
fn explain(e: Error) -> anyhow::Error {
    let usage = |m: String| anyhow::Error::new(Usage(m));
    match e {
        Error::Exists(id) => usage(format!("编号 {id} 已存在，请换一个编号")),
        Error::UnknownAccount(m) => usage(format!(
            "没有账户 {m}。请先用 sanjin admin import-directory、add-member 或 add-staff 添加"
        )),
        Error::UnknownDevice(d) => usage(format!(
            "没有编号为 {d} 的设备，可用 sanjin admin devices 查看"
        )),
        Error::UnknownRecord(what) => usage(format!("找不到 {what}，请先添加它")),
        Error::Invalid(m) => usage(format!("输入有误：{m}")),
        Error::Core(sanjin_core::Error::Invalid(v)) => {
            usage(format!("输入有误：{}：{}", v.field, v.reason.zh()))
        }
        Error::Core(sanjin_core::Error::BadId(id)) => usage(format!(
            "编号“{id}”无效：只能用字母、数字、- 或 _，最长 64 位"
        )),
        Error::Fixtures(f) => usage(format!("名录文件有误：{f}")),
        Error::NotServerData(p) => usage(format!(
            "{} 不是 sanjin 服务器的数据库（可能是设备数据文件），请检查 --data",
            p.display()
        )),
        Error::NewerSchema { found, supported } => anyhow::anyhow!(
            "服务器数据由更新版本的 sanjin 写入（服务器表版本 {found}，本程序支持到 {supported}），请升级 sanjin；数据未被改动"
        ),
        Error::PlainNotLoopback(addr) => usage(format!(
            "--plain（明文 HTTP）只允许监听本机回环地址（127.0.0.1 或 ::1），{addr} 不是。对外提供服务请用 --tls-cert 与 --tls-key，或 --tls-self-signed"
        )),
        Error::Bind { addr, source } => anyhow::anyhow!(
            "无法监听 {addr}：{source}。端口是否已被占用，或需要更高权限？可换一个端口（--listen）"
        ),
        Error::Tls(m) => usage(format!("TLS 证书无法使用：{m}")),
        Error::Io { path, source } => {
            anyhow::anyhow!("无法读写 {}：{source}", path.display())
        }
        Error::Store(s) => anyhow::Error::new(s),
        Error::Core(c) => anyhow::Error::new(c),
    }
}

fn open(data: &Path) -> Result<ServerData> {
    ServerData::open(data).map_err(explain)
}

fn listen_addr(s: &str) -> Result<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            Usage(format!(
                "监听地址“{s}”无效，应为 IP:端口，如 127.0.0.1:8443 或 0.0.0.0:8443"
            ))
            .into()
        })
}

/// `sanjin serve`.
pub fn serve(args: ServeArgs) -> Result<()> {
    let listen = listen_addr(&args.listen)?;
    let tls = match (
        args.tls_cert,
        args.tls_key,
        args.tls_self_signed,
        args.plain,
    ) {
        (Some(cert), Some(key), false, false) => TlsMode::Files { cert, key },
        (None, None, true, false) => TlsMode::SelfSigned {
            hostnames: args.hostnames.clone(),
        },
        (None, None, false, true) => TlsMode::Plain,
        (Some(_), None, _, _) | (None, Some(_), _, _) => {
            return Err(Usage("--tls-cert 与 --tls-key 须同时指定".into()).into());
        }
        _ => {
            return Err(Usage(
                "请选择一种连接方式（只选一种）：--tls-cert 与 --tls-key（正式证书）、--tls-self-signed（自签名证书，试用）或 --plain（明文，仅限本机）"
                    .into(),
            )
            .into());
        }
    };
    if !args.hostnames.is_empty() && !matches!(tls, TlsMode::SelfSigned { .. }) {
        return Err(Usage("--hostname 只用于 --tls-self-signed".into()).into());
    }
    if args.max_body_mib == 0 || args.max_body_mib > 1024 {
        return Err(Usage("--max-body-mib 应在 1 到 1024 之间".into()).into());
    }
    if args.partial_upload_hours == 0 || args.partial_upload_hours > 24 * 365 {
        return Err(Usage("--partial-upload-hours 应在 1 到 8760 之间".into()).into());
    }
    let mut config = Config::new(&args.data.data, listen, tls.clone());
    config.limits = Limits {
        body_bytes: args.max_body_mib << 20,
        blob_partial_ttl_ms: args.partial_upload_hours as i64 * 3600 * 1000,
        ..Limits::default()
    };
    config.shutdown_grace = std::time::Duration::from_secs(args.shutdown_grace);
    let kept_cert = args
        .data
        .data
        .join(sanjin_server::TLS_DIR)
        .join(sanjin_server::CERT_FILE)
        .exists();
    sanjin_server::init_logging();
    let data_dir = std::path::absolute(&args.data.data).unwrap_or(args.data.data.clone());
    sanjin_server::run_blocking(config, |running| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "数据目录：{}", data_dir.display());
        if let Some(cert) = running.certificate() {
            let cert = std::path::absolute(cert).unwrap_or(cert.to_path_buf());
            let _ = writeln!(
                out,
                "TLS 证书（自签名，设备注册时需信任此证书）：{}",
                cert.display()
            );
        }
        if kept_cert && !args.hostnames.is_empty() {
            let _ = writeln!(
                out,
                "沿用已有的自签名证书，--hostname 不会改变其中的主机名；如需更换，删除 {} 后重启（各设备须重新信任新证书）",
                data_dir.join(sanjin_server::TLS_DIR).display()
            );
        }
        if tls == TlsMode::Plain {
            let _ = writeln!(out, "注意：明文 HTTP，仅供本机开发和测试");
        }
        let _ = writeln!(out, "listening on {}", running.url());
        let _ = out.flush();
    })
    .map_err(explain)?;
    println!("已停止服务");
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

fn print_json(v: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("JSON serializes")
    );
}

/// `sanjin admin`.
pub fn admin(cmd: AdminCmd) -> Result<()> {
    let dir = cmd.data.data;
    match cmd.command {
        AdminCommand::ImportDirectory { path, json } => {
            let mut data = open(&dir)?;
            let r = data.import_directory(&path).map_err(explain)?;
            if json {
                print_json(&serde_json::to_value(&r)?);
            } else {
                println!(
                    "已导入名录：新增 {} 条，更新 {} 条，未变 {} 条；账户新建 {} 个，更新 {} 个（其中活动组组长 {} 个）",
                    r.added,
                    r.updated,
                    r.unchanged,
                    r.accounts_created,
                    r.accounts_updated,
                    r.leaders
                );
            }
        }
        AdminCommand::SetPassword {
            member,
            password_stdin,
        } => {
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
            let mut data = open(&dir)?;
            sanjin_server::console::set_password(&mut data, &member, &password).map_err(
                |e| match e {
                    Error::Invalid(m) if m.contains("is a member") => {
                        anyhow::Error::new(Usage(format!(
                            "{member} 是委员账户；工作台供机关工作人员、管理员和活动组组长使用"
                        )))
                    }
                    Error::Invalid(_) => anyhow::Error::new(Usage("密码至少 8 个字符".into())),
                    other => explain(other),
                },
            )?;
            if password_stdin {
                println!("已设置 {member} 的工作台密码");
            } else {
                println!("已设置 {member} 的工作台密码：{password}");
                println!("请转告本人，登录后妥善保管");
            }
        }
        AdminCommand::ImportRecords { path, json } => {
            let records = if path.join(sanjin_fixtures::MANIFEST_FILE).exists() {
                let fx = sanjin_fixtures::Fixtures::load(&path)
                    .map_err(|e| Usage(format!("记录文件有误：{e}")))?;
                fx.visits
                    .into_iter()
                    .chain(fx.opinions)
                    .chain(fx.households)
                    .chain(fx.plans)
                    .collect::<Vec<_>>()
            } else {
                sanjin_fixtures::read_jsonl(&path)
                    .map_err(|e| Usage(format!("记录文件有误：{e}")))?
                    .into_iter()
                    .filter(|r| !r.data.kind().is_directory())
                    .collect()
            };
            let mut data = open(&dir)?;
            let r = data.import_records(&records).map_err(explain)?;
            if json {
                print_json(&serde_json::to_value(&r)?);
            } else {
                println!(
                    "已导入记录 {} 条（写入同步日志 {} 条）",
                    r.records, r.logged
                );
            }
        }
        AdminCommand::AddChapter {
            id,
            name,
            level,
            parent,
        } => {
            let level = ChapterLevel::parse(&level).ok_or_else(|| {
                Usage(format!(
                    "无法识别级别“{level}”，可选：{}",
                    ChapterLevel::choices()
                ))
            })?;
            let mut data = open(&dir)?;
            data.add_record(
                &id,
                &RecordData::Chapter(Chapter {
                    name: name.clone(),
                    level,
                    parent,
                }),
            )
            .map_err(explain)?;
            println!("已添加政协组织 {id}（{name}，{}）", level.zh());
        }
        AdminCommand::AddCommittee { id, name, chapter } => {
            let mut data = open(&dir)?;
            data.add_record(
                &id,
                &RecordData::Committee(Committee {
                    name: name.clone(),
                    chapter,
                }),
            )
            .map_err(explain)?;
            println!("已添加专委会 {id}（{name}）");
        }
        AdminCommand::AddContactPoint {
            id,
            name,
            target_kind,
            chapter,
            address,
            gps,
        } => {
            let target_kind = TargetKind::parse(&target_kind).ok_or_else(|| {
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
            let mut data = open(&dir)?;
            data.add_record(
                &id,
                &RecordData::ContactPoint(ContactPoint {
                    name: name.clone(),
                    target_kind,
                    chapter,
                    address,
                    gps,
                }),
            )
            .map_err(explain)?;
            println!("已添加联系点 {id}（{name}，{}）", target_kind.zh());
        }
        AdminCommand::AddGroup {
            id,
            name,
            chapter,
            committee,
            leader,
            contact_points,
        } => {
            let mut data = open(&dir)?;
            data.add_record(
                &id,
                &RecordData::Group(Group {
                    name: name.clone(),
                    chapter,
                    committee,
                    leader: leader.clone(),
                    contact_points,
                }),
            )
            .map_err(explain)?;
            println!("已添加委员活动组 {id}（{name}），组长 {leader}");
        }
        AdminCommand::AddMember {
            id,
            name,
            chapter,
            group,
            committee,
            sector,
            leader,
        } => {
            let mut data = open(&dir)?;
            let a = data
                .add_member(
                    &id,
                    &Member {
                        name: name.clone(),
                        chapter,
                        committee,
                        group: group.clone(),
                        sector,
                    },
                    leader,
                )
                .map_err(explain)?;
            println!(
                "已添加委员 {id}（{name}），活动组 {group}，角色：{}",
                a.role.zh()
            );
        }
        AdminCommand::AddStaff { id, name } => {
            let mut data = open(&dir)?;
            data.add_staff(&id, &name, Role::Staff).map_err(explain)?;
            println!("已添加机关工作人员账户 {id}（{name}）：可读写全部记录和名录");
        }
        AdminCommand::AddAdmin { id, name } => {
            let mut data = open(&dir)?;
            data.add_staff(&id, &name, Role::Admin).map_err(explain)?;
            println!("已添加管理员账户 {id}（{name}）：管理账户和名录");
        }
        AdminCommand::SetRole { member, role } => {
            let role = parse_role(&role)?;
            let mut data = open(&dir)?;
            let a = data.set_role(&member, role).map_err(explain)?;
            println!("已将 {member}（{}）的角色设为：{}", a.name, a.role.zh());
        }
        AdminCommand::IssueCode { member, json } => {
            let mut data = open(&dir)?;
            let code = data.issue_code(&member).map_err(explain)?;
            if json {
                print_json(&serde_json::to_value(&code)?);
            } else {
                let name = data
                    .account(&member)
                    .map_err(explain)?
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
            }
        }
        AdminCommand::Devices { member, json } => {
            let data = open(&dir)?;
            let devices: Vec<_> = data
                .devices()
                .map_err(explain)?
                .into_iter()
                .filter(|d| member.as_ref().is_none_or(|m| *m == d.member))
                .collect();
            if json {
                print_json(&serde_json::to_value(&devices)?);
            } else if devices.is_empty() {
                println!(
                    "还没有设备注册。用 sanjin admin issue-code 委员编号 发放注册码，委员在设备上用它注册"
                );
            } else {
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
            }
        }
        AdminCommand::Accounts { json } => {
            let data = open(&dir)?;
            let accounts = data.accounts().map_err(explain)?;
            if json {
                print_json(&json!(accounts));
            } else {
                for a in &accounts {
                    println!(
                        "{}  {}  {}  {}",
                        a.member,
                        a.name,
                        a.role.zh(),
                        a.group.as_deref().unwrap_or("—")
                    );
                }
                println!("共 {} 个账户", accounts.len());
            }
        }
        AdminCommand::Revoke { device_id } => {
            let mut data = open(&dir)?;
            let d = data.revoke(&device_id).map_err(explain)?;
            println!(
                "已吊销设备 {}（委员 {}，“{}”）：该设备此后的请求一律拒绝，它签名的改动也不再接受",
                d.device_id, d.member, d.name
            );
        }
    }
    Ok(())
}
