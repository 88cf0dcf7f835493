//! `sanjin device …`: the member's side, working on the device store alone (no network).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use sanjin_core::domain::*;
use sanjin_core::import::{ImportRecord, ImportSet};
use sanjin_core::schema::{self, FieldKind};
use sanjin_core::workflow::EventType;
use sanjin_core::{Edit, RecordDoc, validate};
use sanjin_store::{Durability, Filter, Identity, Store, new_device, new_record_id, now_ms};
use serde_json::{Map, Value, json};

use crate::errors::{Invalid, Usage};
use crate::show;

#[derive(Subcommand)]
pub enum Command {
    /// 为一位委员创建设备数据文件
    Init {
        /// 委员编号，如 member-0001
        #[arg(long)]
        member: String,
    },
    /// 新建记录：活动记录、社情民意、困难户、年度计划
    Record {
        #[command(subcommand)]
        what: RecordCmd,
    },
    /// 列出记录（可筛选）
    List(ListArgs),
    /// 查看一条记录：当前内容、待裁定的冲突、历史（留痕）
    Show {
        id: String,
        /// 以 JSON 输出（供脚本使用）
        #[arg(long)]
        json: bool,
    },
    /// 修改一个字段。集合字段用 --add/--remove，帮扶记录用 --append
    Edit {
        id: String,
        field: String,
        value: String,
        #[arg(long, conflicts_with_all = ["remove", "append"])]
        add: bool,
        #[arg(long, conflicts_with = "append")]
        remove: bool,
        #[arg(long)]
        append: bool,
    },
    /// 裁定冲突：为字段（或 status）选定一个值
    Resolve {
        id: String,
        field: String,
        value: String,
    },
    /// 流转：submit 提交、return 退回、approve 审核通过、accept 采纳、forward 转办、handle 办理、feedback 反馈
    Step {
        id: String,
        step: String,
        /// 说明（如退回原因）
        #[arg(long)]
        note: Option<String>,
    },
    /// 删除记录（保留痕迹，可恢复）
    Delete {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// 恢复已删除的记录
    Restore { id: String },
    /// 直接合并另一台设备的数据文件（无需服务器）
    MergeFrom {
        other: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// 导入记录：fixtures 目录或 JSON Lines 文件（每行一条）
    Import {
        path: PathBuf,
        /// 每保存一条输出一行 JSON
        #[arg(long)]
        json: bool,
    },
    /// 检查每条记录能否读取
    Check {
        #[arg(long)]
        json: bool,
    },
    /// 向同步服务器注册本设备（使用管理员发放的一次性注册码）
    Enroll {
        /// 服务器地址，如 https://sanjin.example.org:8443（http:// 仅限本机地址）
        #[arg(long)]
        server: String,
        /// 一次性注册码
        #[arg(long)]
        code: String,
        /// 服务器的自签名证书（PEM 文件，由管理员提供）；指定后只信任这一证书
        #[arg(long, value_name = "CERT.pem")]
        ca: Option<PathBuf>,
        /// 设备名称，如“张委员的手机”；不填则用本机名
        #[arg(long)]
        name: Option<String>,
    },
    /// 与服务器同步：上传尚未确认的记录，接收本组新的记录和修改，再按策略上传照片原图
    Sync {
        /// 以一个 JSON 对象输出同步结果（供脚本使用）
        #[arg(long)]
        json: bool,
        /// 每次上传的最大字节数（信号差时可调小，默认 262144）
        #[arg(long, value_name = "BYTES")]
        batch_bytes: Option<usize>,
        /// 照片原图何时上传：now 立即、wifi-only 仅在 Wi-Fi 下、never 暂不上传（缩略图总是随记录同步）
        #[arg(long, value_name = "now|wifi-only|never", default_value = "now")]
        photos: String,
        /// 当前网络：wifi 或 cellular（移动网络）
        #[arg(long, value_name = "wifi|cellular", default_value = "cellular")]
        link: String,
    },
    /// 为记录添加照片：生成缩略图随记录同步，原图等待上传（JPEG、PNG、WebP）
    Attach {
        /// 记录编号
        id: String,
        /// 照片文件
        photo: PathBuf,
        /// 照片说明
        #[arg(long)]
        caption: Option<String>,
        /// 以 JSON 输出（供脚本使用）
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum RecordCmd {
    /// 活动记录（进社区、进园区、进农村）
    Visit(VisitArgs),
    /// 社情民意信息
    Opinion(OpinionArgs),
    /// 结对帮扶困难户
    Household(HouseholdArgs),
    /// 年度计划条目（安排到季度、分解到月、明确到人）
    Plan(PlanArgs),
}

#[derive(Args)]
pub struct VisitArgs {
    /// 从 JSON 文件读取整条记录（字段同 --json 输出）
    #[arg(long, value_name = "FILE", conflicts_with_all = ["target", "contact_point", "group", "activity_type", "start", "end", "title"])]
    json: Option<PathBuf>,
    /// 对象类别：community 社区 / park 园区 / village 农村
    #[arg(long, required_unless_present = "json")]
    target: Option<String>,
    /// 联系点编号
    #[arg(long, required_unless_present = "json")]
    contact_point: Option<String>,
    /// 活动组编号
    #[arg(long, required_unless_present = "json")]
    group: Option<String>,
    /// 活动类型，如 调研座谈 / research_symposium
    #[arg(long = "type", required_unless_present = "json")]
    activity_type: Option<String>,
    /// 开始时间，如 2026-05-19T09:00
    #[arg(long, required_unless_present = "json")]
    start: Option<String>,
    /// 结束时间
    #[arg(long, required_unless_present = "json")]
    end: Option<String>,
    /// 活动主题
    #[arg(long, required_unless_present = "json")]
    title: Option<String>,
    /// 活动摘要
    #[arg(long, default_value = "")]
    summary: String,
    /// 参加委员编号（可多次）；不填则为本人
    #[arg(long = "participant")]
    participants: Vec<String>,
    /// 辅助力量（非委员）姓名（可多次）
    #[arg(long = "helper")]
    helpers: Vec<String>,
    /// 位置：纬度,经度
    #[arg(long)]
    gps: Option<String>,
    /// 保存后立即提交
    #[arg(long)]
    submit: bool,
}

#[derive(Args)]
pub struct OpinionArgs {
    #[arg(long, value_name = "FILE", conflicts_with_all = ["topic", "contact_point", "group"])]
    json: Option<PathBuf>,
    /// 主题
    #[arg(long, required_unless_present = "json")]
    topic: Option<String>,
    /// 类别：opinion 社情民意 / micro_proposal 微提案 / micro_suggestion 微建言 / legal_appeal 法律诉求
    #[arg(long, default_value = "opinion")]
    kind: String,
    /// 内容
    #[arg(long, default_value = "")]
    text: String,
    /// 反映人；不填为匿名
    #[arg(long)]
    source: Option<String>,
    /// 紧急程度：normal 一般 / urgent 紧急 / very_urgent 特急
    #[arg(long, default_value = "normal")]
    urgency: String,
    #[arg(long, required_unless_present = "json")]
    contact_point: Option<String>,
    #[arg(long, required_unless_present = "json")]
    group: Option<String>,
    /// 记录日期，默认今天
    #[arg(long)]
    date: Option<String>,
    /// 所属活动记录编号
    #[arg(long)]
    visit: Option<String>,
    #[arg(long)]
    submit: bool,
}

#[derive(Args)]
pub struct HouseholdArgs {
    #[arg(long, value_name = "FILE", conflicts_with_all = ["head_name", "contact_point", "group"])]
    json: Option<PathBuf>,
    /// 户主姓名
    #[arg(long, required_unless_present = "json")]
    head_name: Option<String>,
    #[arg(long, required_unless_present = "json")]
    contact_point: Option<String>,
    #[arg(long, required_unless_present = "json")]
    group: Option<String>,
    #[arg(long, default_value = "")]
    address: String,
    /// 家庭人口
    #[arg(long, default_value = "1")]
    size: String,
    /// 困难情况
    #[arg(long, default_value = "")]
    situation: String,
    /// 结对委员编号（可多次）；不填则为本人
    #[arg(long = "member")]
    members: Vec<String>,
}

#[derive(Args)]
pub struct PlanArgs {
    #[arg(long, value_name = "FILE", conflicts_with_all = ["year", "quarter", "month", "group", "activity_type", "title"])]
    json: Option<PathBuf>,
    #[arg(long, required_unless_present = "json")]
    year: Option<String>,
    #[arg(long, required_unless_present = "json")]
    quarter: Option<String>,
    #[arg(long, required_unless_present = "json")]
    month: Option<String>,
    /// 责任委员，默认本人
    #[arg(long)]
    owner: Option<String>,
    #[arg(long, required_unless_present = "json")]
    group: Option<String>,
    #[arg(long = "type", required_unless_present = "json")]
    activity_type: Option<String>,
    #[arg(long, required_unless_present = "json")]
    title: Option<String>,
    #[arg(long)]
    contact_point: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum KindArg {
    Visit,
    Opinion,
    Household,
    Plan,
    Member,
    Committee,
    Group,
    ContactPoint,
    Chapter,
}

#[derive(Args)]
pub struct ListArgs {
    /// 记录类别
    #[arg(long, value_enum, default_value = "visit")]
    kind: KindArg,
    /// 起始日期（含），如 2026-05-01
    #[arg(long)]
    from: Option<String>,
    /// 截止日期（含）
    #[arg(long)]
    to: Option<String>,
    /// 某月，如 2026-05（等同 --from/--to）
    #[arg(long, conflicts_with_all = ["from", "to"])]
    month: Option<String>,
    #[arg(long)]
    group: Option<String>,
    #[arg(long)]
    contact_point: Option<String>,
    /// 某位委员参与的记录
    #[arg(long)]
    member: Option<String>,
    /// 活动类型或社情民意类别
    #[arg(long = "type")]
    type_code: Option<String>,
    /// 对象类别：community / park / village
    #[arg(long)]
    target: Option<String>,
    /// 状态，如 draft / submitted / approved
    #[arg(long)]
    status: Option<String>,
    /// 只列有冲突的记录
    #[arg(long)]
    conflicts: bool,
    /// 包括已删除的记录
    #[arg(long)]
    deleted: bool,
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long)]
    json: bool,
}

fn open(path: &Path) -> Result<Store> {
    Ok(Store::open(path, Durability::Full)?)
}

fn invalid(kind: RecordKind, e: sanjin_core::Error) -> anyhow::Error {
    match e {
        sanjin_core::Error::Invalid(error) => Invalid { kind, error }.into(),
        other => other.into(),
    }
}

pub fn run(store: &Path, cmd: Command) -> Result<()> {
    match cmd {
        Command::Init { member } => init(store, &member),
        Command::Record { what } => record(store, what),
        Command::List(args) => list(store, args),
        Command::Show { id, json } => {
            let s = open(store)?;
            let mut doc = s.load(&id)?;
            let view = doc.view().map_err(|e| invalid(doc.kind(), e))?;
            let history = doc.history();
            let out = std::io::stdout();
            let mut out = out.lock();
            let photos = photo_rows(&s, &doc)?;
            // The server's refusal, while the record is as it was refused (issue 10).
            let refused = s.standing_refusal(&id)?;
            if json {
                serde_json::to_writer_pretty(
                    &mut out,
                    &json!({ "record": view, "history": history, "photos": photos, "refused": refused }),
                )?;
                writeln!(out)?;
            } else {
                if let Some(r) = &refused {
                    let why = sanjin_client::RefusalCode::parse(&r.code)
                        .map_or("服务器拒收了这条记录", |c| c.zh());
                    let field = sanjin_core::schema::field(doc.kind(), &r.field)
                        .map(|f| format!("（字段：{}）", f.zh))
                        .unwrap_or_default();
                    writeln!(
                        out,
                        "⚠ 服务器拒收了这条记录{field}：{why}。修改后再同步会重新提交；需要帮助时请把记录编号告诉机关工作人员。"
                    )?;
                }
                show::record(&mut out, &view, &history)?;
                show_photos(&mut out, &photos)?;
            }
            Ok(())
        }
        Command::Edit {
            id,
            field,
            value,
            add,
            remove,
            append,
        } => {
            let mut s = open(store)?;
            let kind = s.load(&id)?.kind();
            let edit = parse_edit(kind, &field, &value, add, remove, append)?;
            s.update(&id, |d, by| d.edit(by, now_ms(), &[edit]))
                .map_err(|e| store_invalid(kind, e))?;
            eprintln!(
                "已修改 {id} 的{}",
                schema::field(kind, &field).map_or(field.as_str(), |f| f.zh)
            );
            Ok(())
        }
        Command::Resolve { id, field, value } => {
            let mut s = open(store)?;
            let kind = s.load(&id)?.kind();
            let (field_name, value) = sanjin_core::input::parse_resolution(kind, &field, &value)
                .map_err(|error| Invalid { kind, error })?;
            s.update(&id, |d, by| d.resolve(by, now_ms(), &field_name, value))
                .map_err(|e| store_invalid(kind, e))?;
            eprintln!("已裁定 {id} 的冲突：{field}");
            Ok(())
        }
        Command::Step { id, step, note } => {
            let mut s = open(store)?;
            let kind = s.load(&id)?.kind();
            let event = EventType::parse(&step)
                .filter(|e| !matches!(e, EventType::Resolve | EventType::Delete | EventType::Restore))
                .ok_or_else(|| {
                    Usage(format!(
                        "无法识别的流转“{step}”。可选：submit 提交、return 退回、approve 审核通过、accept 采纳、forward 转办、handle 办理、feedback 反馈"
                    ))
                })?;
            let (state, _) = s
                .update(&id, |d, by| {
                    d.transition(by, now_ms(), event, note.as_deref())
                })
                .map_err(|e| store_invalid(kind, e))?;
            eprintln!("{id} 已{}，当前状态：{}", event.zh(), state.zh());
            Ok(())
        }
        Command::Delete { id, note } => {
            let mut s = open(store)?;
            s.update(&id, |d, by| d.delete(by, now_ms(), note.as_deref()))?;
            eprintln!("已删除 {id}（保留痕迹，可用 sanjin device restore {id} 恢复）");
            Ok(())
        }
        Command::Restore { id } => {
            let mut s = open(store)?;
            s.update(&id, |d, by| d.restore(by, now_ms()))?;
            eprintln!("已恢复 {id}");
            Ok(())
        }
        Command::MergeFrom { other, json } => {
            let mut s = open(store)?;
            if std::fs::canonicalize(&other).ok() == std::fs::canonicalize(store).ok() {
                return Err(Usage("不能与自身合并：请给出另一台设备的数据文件".into()).into());
            }
            let report = s.merge_from(&other)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "合并完成：新增 {} 条，更新 {} 条，无变化 {} 条，新出现冲突 {} 条",
                    report.added,
                    report.updated,
                    report.unchanged,
                    report.new_conflicts.len()
                );
                for id in &report.new_conflicts {
                    println!("  有冲突待裁定：{id}（sanjin device show {id}）");
                }
                for (id, why) in &report.skipped {
                    println!("  未能读取、已跳过：{id}（{why}）");
                }
            }
            Ok(())
        }
        Command::Import { path, json } => crate::device::import(store, &path, json),
        Command::Enroll {
            server,
            code,
            ca,
            name,
        } => enroll(store, &server, &code, ca.as_deref(), name),
        Command::Sync {
            json,
            batch_bytes,
            photos,
            link,
        } => sync(store, json, batch_bytes, &photos, &link),
        Command::Attach {
            id,
            photo,
            caption,
            json,
        } => attach(store, &id, &photo, caption.as_deref().unwrap_or(""), json),
        Command::Check { json } => {
            let s = open(store)?;
            let bad = s.check()?;
            let total = s.ids()?.len();
            if json {
                println!("{}", json!({ "records": total, "damaged": bad }));
            } else if bad.is_empty() {
                println!("检查完成：{total} 条记录均可正常读取");
            } else {
                println!("检查完成：{total} 条记录中 {} 条已损坏：", bad.len());
                for (id, why) in &bad {
                    println!("  {id}：{why}");
                }
            }
            if bad.is_empty() {
                Ok(())
            } else {
                Err(Usage(format!(
                    "{} 条记录已损坏，可从组内其他设备用 merge-from 取回",
                    bad.len()
                ))
                .into())
            }
        }
    }
}

fn store_invalid(kind: RecordKind, e: sanjin_store::Error) -> anyhow::Error {
    match e {
        sanjin_store::Error::Core(c) => invalid(kind, c),
        other => other.into(),
    }
}

fn parse_edit(
    kind: RecordKind,
    field: &str,
    value: &str,
    add: bool,
    remove: bool,
    append: bool,
) -> Result<Edit> {
    use sanjin_core::input::EditMode;
    let spec =
        sanjin_core::input::field_spec(kind, field).map_err(|error| Invalid { kind, error })?;
    let single = !matches!(
        spec.kind,
        FieldKind::Set | FieldKind::KeyedSet | FieldKind::Log
    );
    if single && (add || remove || append) {
        return Err(Usage(format!(
            "字段“{}”只有一个值，请去掉 --add/--remove/--append 直接赋值",
            spec.zh
        ))
        .into());
    }
    let flags = match spec.kind {
        FieldKind::Set | FieldKind::KeyedSet if !(add || remove) => Some("--add / --remove"),
        FieldKind::Log if !append => Some("--append"),
        _ => None,
    };
    if let Some(how) = flags {
        let reason = sanjin_core::Reason::WrongEdit {
            kind: "collection",
            how,
        };
        let error = sanjin_core::ValidationError::new(spec.name, reason);
        return Err(Invalid { kind, error }.into());
    }
    let mode = match (add, remove, append) {
        (true, _, _) => EditMode::Add,
        (_, true, _) => EditMode::Remove,
        (_, _, true) => EditMode::Append,
        _ => EditMode::Set,
    };
    Ok(sanjin_core::input::parse_edit(kind, field, value, mode)
        .map_err(|error| Invalid { kind, error })?)
}

fn init(path: &Path, member: &str) -> Result<()> {
    if !validate::is_id(member) {
        return Err(Usage(format!(
            "委员编号“{member}”无效：只能用字母、数字、- 或 _，最长 64 位"
        ))
        .into());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        {
            return Err(Usage(format!(
                "目录 {} 不存在，请先创建或换一个 --store 路径",
                dir.display()
            ))
            .into());
        }
    }
    let (device, actor) = new_device();
    let identity = Identity {
        member: member.into(),
        device: device.clone(),
        actor,
    };
    Store::init(path, &identity, Durability::Full)?;
    println!(
        "已为委员 {member} 创建设备数据文件 {}（设备 {device}）",
        path.display()
    );
    Ok(())
}

/// Reads a record given as a JSON file: UTF-8, one object with the record's fields.
fn read_json_file(path: &Path, kind: RecordKind) -> Result<Map<String, Value>> {
    let bytes =
        std::fs::read(path).map_err(|e| Usage(format!("无法读取 {}：{e}", path.display())))?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Usage(format!(
            "{} 不是 UTF-8 编码的文本，请另存为 UTF-8 后重试",
            path.display()
        ))
    })?;
    let text = text.trim_start_matches('\u{feff}');
    let value: Value = serde_json::from_str(text).map_err(|e| {
        Usage(format!(
            "{} 第 {} 行第 {} 列不是有效的 JSON：{e}",
            path.display(),
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(mut map) = value else {
        return Err(Usage(format!(
            "{} 应当是一个 JSON 对象（{{…}}），列出记录的各个字段",
            path.display()
        ))
        .into());
    };
    if let Some(k) = map.remove("kind")
        && k.as_str() != Some(kind.code())
    {
        {
            return Err(Usage(format!(
                "{} 中的 kind 是 {k}，与命令中的记录类别 {} 不符",
                path.display(),
                kind.code()
            ))
            .into());
        }
    }
    Ok(map)
}

/// Builds a record from field values, checking each field so errors name it.
fn build(kind: RecordKind, fields: Map<String, Value>) -> Result<RecordData> {
    Ok(sanjin_core::input::build(kind, fields).map_err(|error| Invalid { kind, error })?)
}

/// Parses flag input for one field into the map.
fn put(
    kind: RecordKind,
    fields: &mut Map<String, Value>,
    name: &str,
    input: Option<&str>,
) -> Result<()> {
    let Some(input) = input else { return Ok(()) };
    Ok(sanjin_core::input::put(kind, fields, name, input)
        .map_err(|error| Invalid { kind, error })?)
}

fn put_list(
    kind: RecordKind,
    fields: &mut Map<String, Value>,
    name: &str,
    inputs: &[String],
) -> Result<()> {
    Ok(sanjin_core::input::put_list(kind, fields, name, inputs)
        .map_err(|error| Invalid { kind, error })?)
}

fn today() -> String {
    chrono::Utc::now()
        .with_timezone(&show::beijing())
        .date_naive()
        .to_string()
}

fn record(path: &Path, what: RecordCmd) -> Result<()> {
    let mut s = open(path)?;
    let me = s.identity().member.clone();
    let (kind, data, submit) = match what {
        RecordCmd::Visit(a) => {
            let kind = RecordKind::Visit;
            let fields = match &a.json {
                Some(file) => read_json_file(file, kind)?,
                None => {
                    let mut f = Map::new();
                    put(kind, &mut f, "target_kind", a.target.as_deref())?;
                    put(kind, &mut f, "contact_point", a.contact_point.as_deref())?;
                    put(kind, &mut f, "group", a.group.as_deref())?;
                    put(kind, &mut f, "activity_type", a.activity_type.as_deref())?;
                    put(kind, &mut f, "start", a.start.as_deref())?;
                    put(kind, &mut f, "end", a.end.as_deref())?;
                    put(kind, &mut f, "title", a.title.as_deref())?;
                    put(kind, &mut f, "summary", Some(&a.summary))?;
                    let participants = if a.participants.is_empty() {
                        vec![me.clone()]
                    } else {
                        a.participants.clone()
                    };
                    put_list(kind, &mut f, "participants", &participants)?;
                    put_list(kind, &mut f, "helpers", &a.helpers)?;
                    put(kind, &mut f, "gps", a.gps.as_deref())?;
                    f
                }
            };
            (kind, build(kind, fields)?, a.submit)
        }
        RecordCmd::Opinion(a) => {
            let kind = RecordKind::Opinion;
            let fields = match &a.json {
                Some(file) => read_json_file(file, kind)?,
                None => {
                    let mut f = Map::new();
                    put(kind, &mut f, "topic", a.topic.as_deref())?;
                    put(kind, &mut f, "opinion_kind", Some(&a.kind))?;
                    put(kind, &mut f, "text", Some(&a.text))?;
                    put(kind, &mut f, "source", a.source.as_deref())?;
                    put(kind, &mut f, "urgency", Some(&a.urgency))?;
                    put(kind, &mut f, "contact_point", a.contact_point.as_deref())?;
                    put(kind, &mut f, "group", a.group.as_deref())?;
                    put(
                        kind,
                        &mut f,
                        "recorded_on",
                        Some(&a.date.clone().unwrap_or_else(today)),
                    )?;
                    put(kind, &mut f, "visit", a.visit.as_deref())?;
                    f
                }
            };
            (kind, build(kind, fields)?, a.submit)
        }
        RecordCmd::Household(a) => {
            let kind = RecordKind::Household;
            let fields = match &a.json {
                Some(file) => read_json_file(file, kind)?,
                None => {
                    let mut f = Map::new();
                    put(kind, &mut f, "head_name", a.head_name.as_deref())?;
                    put(kind, &mut f, "contact_point", a.contact_point.as_deref())?;
                    put(kind, &mut f, "group", a.group.as_deref())?;
                    put(kind, &mut f, "address", Some(&a.address))?;
                    put(kind, &mut f, "size", Some(&a.size))?;
                    put(kind, &mut f, "situation", Some(&a.situation))?;
                    let members = if a.members.is_empty() {
                        vec![me.clone()]
                    } else {
                        a.members.clone()
                    };
                    put_list(kind, &mut f, "assisting_members", &members)?;
                    f
                }
            };
            (kind, build(kind, fields)?, false)
        }
        RecordCmd::Plan(a) => {
            let kind = RecordKind::Plan;
            let fields = match &a.json {
                Some(file) => read_json_file(file, kind)?,
                None => {
                    let mut f = Map::new();
                    put(kind, &mut f, "year", a.year.as_deref())?;
                    put(kind, &mut f, "quarter", a.quarter.as_deref())?;
                    put(kind, &mut f, "month", a.month.as_deref())?;
                    put(
                        kind,
                        &mut f,
                        "owner",
                        Some(a.owner.as_deref().unwrap_or(&me)),
                    )?;
                    put(kind, &mut f, "group", a.group.as_deref())?;
                    put(kind, &mut f, "activity_type", a.activity_type.as_deref())?;
                    put(kind, &mut f, "title", a.title.as_deref())?;
                    put(kind, &mut f, "contact_point", a.contact_point.as_deref())?;
                    f
                }
            };
            (kind, build(kind, fields)?, false)
        }
    };
    let id = new_record_id();
    let author = s.author();
    let now = now_ms();
    let mut doc = RecordDoc::create(&id, &data, &author, now).map_err(|e| invalid(kind, e))?;
    if submit {
        // Check before saving, so a record that cannot be submitted is not half-done.
        doc.transition(&author, now, EventType::Submit, None)
            .map_err(|e| invalid(kind, e))?;
    }
    s.insert(&mut doc, true)?;
    eprintln!(
        "已保存{}（{}）",
        kind.zh(),
        if submit { "已提交" } else { "草稿" }
    );
    println!("{id}");
    Ok(())
}

fn month_range(month: &str) -> Result<(String, String)> {
    let (first, last) = sanjin_core::input::month_range(month)
        .ok_or_else(|| Usage(format!("月份“{month}”格式不对，应为 2026-05 这样的形式")))?;
    Ok((first.to_string(), last.to_string()))
}

fn list(path: &Path, a: ListArgs) -> Result<()> {
    let s = open(path)?;
    let kind = match a.kind {
        KindArg::Visit => RecordKind::Visit,
        KindArg::Opinion => RecordKind::Opinion,
        KindArg::Household => RecordKind::Household,
        KindArg::Plan => RecordKind::Plan,
        KindArg::Member => RecordKind::Member,
        KindArg::Committee => RecordKind::Committee,
        KindArg::Group => RecordKind::Group,
        KindArg::ContactPoint => RecordKind::ContactPoint,
        KindArg::Chapter => RecordKind::Chapter,
    };
    for (flag, d) in [("--from", &a.from), ("--to", &a.to)] {
        if let Some(d) = d
            && validate::parse_date(d).is_none()
        {
            {
                return Err(Usage(format!(
                    "{flag} 的日期“{d}”格式不对，应为 2026-05-19 这样的形式"
                ))
                .into());
            }
        }
    }
    let (from, to) = match &a.month {
        Some(m) => {
            let (f, t) = month_range(m)?;
            (Some(f), Some(t))
        }
        None => (a.from.clone(), a.to.clone()),
    };
    let type_code = match &a.type_code {
        None => None,
        Some(t) => Some(
            ActivityType::parse(t)
                .map(|x| x.code().to_string())
                .or_else(|| OpinionKind::parse(t).map(|x| x.code().to_string()))
                .ok_or_else(|| {
                    Usage(format!(
                        "无法识别的类型“{t}”。活动类型可选：{}",
                        ActivityType::choices()
                    ))
                })?,
        ),
    };
    let target_kind = match &a.target {
        None => None,
        Some(t) => Some(
            TargetKind::parse(t)
                .ok_or_else(|| {
                    Usage(format!(
                        "无法识别的对象类别“{t}”，可选：{}",
                        TargetKind::choices()
                    ))
                })?
                .code()
                .to_string(),
        ),
    };
    let status = match &a.status {
        None => None,
        Some(st) => Some(
            sanjin_core::workflow::State::parse(st)
                .ok_or_else(|| {
                    Usage(format!(
                        "无法识别的状态“{st}”，可选：{}",
                        sanjin_core::workflow::states(kind)
                            .iter()
                            .map(|s| format!("{}（{}）", s.code(), s.zh()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?
                .code()
                .to_string(),
        ),
    };
    let filter = Filter {
        kind: Some(kind),
        from,
        to,
        group: a.group,
        contact_point: a.contact_point,
        member: a.member,
        type_code,
        target_kind,
        status,
        only_conflicts: a.conflicts,
        include_deleted: a.deleted,
        limit: a.limit,
    };
    let rows = s.list(&filter)?;
    // Records the server refused as they are now (issue 10).
    let refused: std::collections::HashSet<String> = s
        .standing_refusals()?
        .into_iter()
        .map(|r| r.doc_id)
        .collect();
    let out = std::io::stdout();
    let mut out = out.lock();
    if a.json {
        // Each row as before, with `refused` added.
        let rows = rows
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r)?;
                if let Value::Object(m) = &mut v {
                    m.insert("refused".into(), Value::Bool(refused.contains(&r.id)));
                }
                Ok(v)
            })
            .collect::<serde_json::Result<Vec<Value>>>()?;
        serde_json::to_writer(&mut out, &rows)?;
        writeln!(out)?;
    } else {
        show::list(&mut out, kind, &rows, &refused)?;
    }
    Ok(())
}

/// Imports records: a fixtures folder (directory first) or a JSON Lines file of fixture records.
/// Each record is saved in its own transaction; with `--json`, one line per saved record is
/// printed only after it is committed.
pub fn import(store: &Path, path: &Path, json: bool) -> Result<()> {
    let mut s = open(store)?;
    let read = |p: &Path| std::fs::read_to_string(p);
    let records: Vec<ImportRecord> = if path.is_dir() {
        let fx = ImportSet::load(path, read)
            .map_err(|e| Usage(format!("无法读取 {}：{e}", path.display())))?;
        fx.all().cloned().collect()
    } else {
        sanjin_core::import::read_jsonl(path, read)
            .map_err(|e| Usage(format!("无法读取 {}：{e}", path.display())))?
    };
    let total = records.len();
    let out = std::io::stdout();
    let mut out = out.lock();
    let (mut added, mut unchanged) = (0usize, 0usize);
    for (i, r) in records.iter().enumerate() {
        let kind = r.data.kind();
        let mut doc = r
            .to_doc()
            .map_err(|e| invalid(kind, e))
            .with_context(|| format!("记录 {}", r.id))?;
        let existed = s.exists(&r.id)?;
        s.insert(&mut doc, !kind.is_directory())?;
        if existed {
            unchanged += 1;
        } else {
            added += 1;
        }
        if json {
            writeln!(out, "{}", json!({ "saved": r.id, "kind": kind.code() }))?;
            out.flush()?;
        } else if (i + 1) % 500 == 0 {
            eprintln!("已导入 {}/{total}", i + 1);
        }
    }
    if !json {
        println!("导入完成：新增 {added} 条，已存在 {unchanged} 条，共 {total} 条");
    }
    Ok(())
}

fn role_zh(role: &str) -> &str {
    match role {
        "member" => "委员",
        "leader" => "活动组组长",
        "staff" => "机关工作人员",
        "admin" => "管理员",
        other => other,
    }
}

fn default_device_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h.chars().count() <= 64)
        .unwrap_or_else(|| "sanjin 命令行".to_string())
}

/// What the client was doing when an error happened: the same HTTP status means different
/// things to a member during enrollment and during sync.
#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Enroll,
    Sync,
}

/// The client's errors in members' words, with what to do: `Usage` (exit 2) for input the member
/// can correct, a plain message (exit 1) otherwise.
fn client_error(e: sanjin_client::Error, phase: Phase, ca: Option<&Path>) -> anyhow::Error {
    use sanjin_client::Error as E;
    const RETRY: &str = "已保存的记录不会丢失";
    let usage = |m: String| anyhow::Error::from(Usage(m));
    match e {
        E::NotEnrolled => usage(
            "本设备尚未注册到同步服务器。请先运行：sanjin device enroll --server 服务器地址 --code 注册码"
                .into(),
        ),
        E::BadUrl(why) => usage(format!(
            "服务器地址无效（{why}）。应为 https://主机名:端口 这样的形式"
        )),
        E::InsecureUrl => usage(
            "服务器地址必须以 https:// 开头；http:// 只能用于本机上的服务器（127.0.0.1、localhost）"
                .into(),
        ),
        E::BadCertificate => usage(match ca {
            Some(p) => format!(
                "{} 不是 PEM 格式的证书，请使用管理员提供的服务器证书文件（以 -----BEGIN CERTIFICATE----- 开头）",
                p.display()
            ),
            None => "本设备保存的服务器证书已损坏，请用 --ca 重新注册".into(),
        }),
        E::BadRecordId => usage("记录编号无效".into()),
        E::WrongMember => usage(
            "这个注册码是为另一位委员签发的，与本设备数据文件的委员不符。请向管理员索取本人的注册码，或换用该委员的数据文件（--store）"
                .into(),
        ),
        E::Network(_) | E::Timeout(_) => match phase {
            Phase::Enroll => anyhow::anyhow!(
                "无法连接服务器，请检查服务器地址，并在有信号时重试"
            ),
            Phase::Sync => anyhow::anyhow!("无法连接服务器，请在有信号时重试；{RETRY}"),
        },
        E::Tls(_) => anyhow::anyhow!(
            "无法验证服务器的证书，连接已中止。请确认服务器地址正确；如服务器使用自签名证书，请用 --ca 指定管理员提供的证书后重新注册"
        ),
        E::Http { status, code } => match (phase, status, code.as_str()) {
            (Phase::Enroll, 401 | 404 | 409, _) | (_, _, "code_used") => usage(
                "注册码无效或已使用，请向管理员索取新的注册码".into(),
            ),
            (Phase::Enroll, 403, _) => usage(
                "这个注册码是为另一位委员签发的，与本设备数据文件的委员不符。请向管理员索取本人的注册码".into(),
            ),
            (Phase::Enroll, _, "device_exists" | "actor_in_use") => usage(
                "本设备已在服务器登记过，请向管理员说明，或用 sanjin device init 新建数据文件后再注册".into(),
            ),
            (Phase::Sync, 401, _) => anyhow::anyhow!(
                "设备已被停用或凭据无效，请联系管理员；{RETRY}"
            ),
            (_, 403, _) => anyhow::anyhow!("服务器拒绝了本设备的请求（无权限），请联系管理员"),
            (_, 413, _) => anyhow::anyhow!(
                "一次上传的数据超过了服务器的限制，请联系管理员；{RETRY}"
            ),
            (_, _, "unsupported_version") => anyhow::anyhow!(
                "服务器与本程序的同步协议版本不一致，请升级 sanjin；{RETRY}"
            ),
            (_, 503, _) => anyhow::anyhow!("服务器正在维护或重启，请稍后重试；{RETRY}"),
            (_, s, c) => anyhow::anyhow!(
                "服务器返回错误（HTTP {s}{}{c}），请稍后重试或联系管理员；{RETRY}",
                if c.is_empty() { "" } else { "，" }
            ),
        },
        E::Decode(_) | E::Protocol(_) => anyhow::anyhow!(
            "服务器的应答无法识别（{e}）。请确认服务器地址正确，必要时升级 sanjin；{RETRY}"
        ),
        E::Cancelled => anyhow::anyhow!("同步已取消；已完成的部分已保存"),
        E::Store(sanjin_store::Error::Damaged { id, reason }) if phase == Phase::Sync => {
            anyhow::anyhow!(
                "记录 {id} 无法与服务器同步（{reason}），同步已在此处停止；已保存的记录不会丢失。请升级 sanjin 后重试，或联系管理员"
            )
        }
        E::Store(s) => s.into(),
        E::Media(m) if m.is_bad_input() => usage(m.zh()),
        E::Media(m) => anyhow::anyhow!("{}", m.zh()),
        E::Io(why) => anyhow::anyhow!("无法读写文件（{why}）"),
    }
}

fn enroll(
    store: &Path,
    server: &str,
    code: &str,
    ca: Option<&Path>,
    name: Option<String>,
) -> Result<()> {
    let mut s = open(store)?;
    let ca_pem = match ca {
        None => None,
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| Usage(format!("无法读取证书文件 {}：{e}", p.display())))?,
        ),
    };
    if code.trim().is_empty() {
        return Err(Usage("注册码不能为空".into()).into());
    }
    let name = name.unwrap_or_else(default_device_name);
    let e = sanjin_client::enroll(&mut s, server, code, ca_pem.as_deref(), &name)
        .map_err(|e| client_error(e, Phase::Enroll, ca))?;
    println!(
        "已注册：设备“{}”（{}）已登记到服务器 {}，委员 {}，角色：{}{}",
        e.device_name,
        e.device_id,
        e.server,
        e.member,
        role_zh(&e.role),
        e.group
            .as_deref()
            .map(|g| format!("，活动组 {g}"))
            .unwrap_or_default()
    );
    if let Some(p) = ca {
        println!("已固定服务器证书：今后同步只信任 {} 中的证书", p.display());
    }
    println!("现在可以运行 sanjin device sync 同步记录");
    Ok(())
}

fn refusal_zh(code: sanjin_client::RefusalCode) -> &'static str {
    code.zh()
}

fn sync(
    store: &Path,
    json: bool,
    batch_bytes: Option<usize>,
    photos: &str,
    link: &str,
) -> Result<()> {
    let policy = sanjin_client::PhotoPolicy::parse(photos).ok_or_else(|| {
        Usage(format!(
            "--photos 只能是 now（立即）、wifi-only（仅 Wi-Fi）或 never（暂不上传），不是“{photos}”"
        ))
    })?;
    let link = sanjin_client::Link::parse(link).ok_or_else(|| {
        Usage(format!(
            "--link 只能是 wifi 或 cellular（移动网络），不是“{link}”"
        ))
    })?;
    let mut s = open(store)?;
    let mut opts = sanjin_client::SyncOptions::default();
    if let Some(b) = batch_bytes {
        if b < 1024 {
            return Err(Usage("--batch-bytes 至少为 1024".into()).into());
        }
        opts.batch_limit_bytes = b;
    }
    let mut progress = |p: sanjin_client::Progress| {
        use sanjin_client::Progress as P;
        match p {
            P::Pushing { total: 0, .. } => {}
            P::Pushing { done, total } => eprintln!("上传 {done}/{total}"),
            P::Answered { documents: 0 } => {}
            P::Answered { documents } => eprintln!("收到 {documents} 条记录的变更，正在保存…"),
            P::Pulling { received } => eprintln!("接收 {received} 条"),
            P::Resync { docs, pending } => {
                eprintln!("服务器需要重新核对全部 {docs} 条记录，待核对 {pending} 条…")
            }
            P::Retrying { attempt, of, wait } => eprintln!(
                "网络中断，{:.1} 秒后第 {attempt}/{of} 次重试…",
                wait.as_secs_f64()
            ),
        }
    };
    let sum = sanjin_client::sync(&mut s, &opts, &mut progress)
        .map_err(|e| client_error(e, Phase::Sync, None))?;
    let blob_opts = sanjin_client::BlobOptions {
        policy,
        link,
        ..Default::default()
    };
    let mut last_shown = 0usize;
    let blobs = sanjin_client::upload_blobs(&mut s, &blob_opts, &mut |p| {
        use sanjin_client::BlobProgress as P;
        match p {
            P::Uploading {
                index,
                total,
                sent,
                size,
            } if sent == size && index + 1 > last_shown => {
                last_shown = index + 1;
                eprintln!("原图 {}/{total} 已上传", index + 1);
            }
            P::Uploading { .. } => {}
            P::Retrying { attempt, wait } => eprintln!(
                "网络中断，{:.1} 秒后第 {attempt} 次重试上传原图（从中断处继续）…",
                wait.as_secs_f64()
            ),
        }
    })
    .map_err(|e| client_error(e, Phase::Sync, None))?;
    if json {
        let refused: Vec<Value> = sum
            .refused
            .iter()
            .map(|(id, code, reason)| {
                json!({ "id": id, "code": code.code(), "reason": reason, "reason_zh": refusal_zh(*code) })
            })
            .collect();
        let unreadable: Vec<Value> = sum
            .unreadable
            .iter()
            .map(|(id, why)| json!({ "id": id, "reason": why }))
            .collect();
        println!(
            "{}",
            json!({
                "sent": sum.sent,
                "received": sum.received,
                "conflicts": sum.conflicts,
                "refused": refused,
                "unreadable": unreadable,
                "still_queued": sum.still_queued,
                "round_trips": sum.round_trips,
                "bytes_up": sum.bytes_up,
                "bytes_down": sum.bytes_down,
                "resynced": sum.resynced,
                "photos": {
                    "policy": policy,
                    "link": link,
                    "uploaded": blobs.uploaded,
                    "already_on_server": blobs.already_on_server,
                    "pending": blobs.pending,
                    "held_by_policy": blobs.held_by_policy,
                    "bytes_sent": blobs.bytes_sent,
                    "failed": blobs.failed.iter().map(|(h, why)| json!({ "hash": h, "reason": why })).collect::<Vec<_>>(),
                    "interrupted": blobs.interrupted,
                },
            })
        );
        return Ok(());
    }
    println!(
        "同步完成：已发送 {} 条、已接收 {} 条、冲突 {} 条、被拒绝 {} 条",
        sum.sent,
        sum.received,
        sum.conflicts,
        sum.refused.len()
    );
    for (id, code, _) in &sum.refused {
        println!("  被拒绝：{id}（{}）", refusal_zh(*code));
    }
    for (id, why) in &sum.unreadable {
        println!("  无法读取、未上传：{id}（{why}）");
    }
    if sum.conflicts > 0 {
        println!("  有冲突待裁定的记录可用 sanjin device list --conflicts 查看");
    }
    if !sum.refused.is_empty() {
        println!("  被拒绝的记录仍保存在本机，不会丢失；如有疑问请联系组长或管理员");
    }
    let waiting = sum.still_queued.saturating_sub(sum.refused.len());
    if waiting > 0 {
        println!("  仍有 {waiting} 条记录待上传，下次同步时继续");
    }
    if blobs.uploaded + blobs.already_on_server + blobs.pending > 0 || !blobs.failed.is_empty() {
        println!(
            "照片原图：已上传 {} 张、服务器已有 {} 张、待上传 {} 张",
            blobs.uploaded, blobs.already_on_server, blobs.pending
        );
    }
    if blobs.held_by_policy {
        println!(
            "  按设置（--photos {}）当前网络下暂不上传原图；缩略图已随记录同步",
            match policy {
                sanjin_client::PhotoPolicy::Now => "now",
                sanjin_client::PhotoPolicy::WifiOnly => "wifi-only",
                sanjin_client::PhotoPolicy::Never => "never",
            }
        );
    }
    if blobs.interrupted.is_some() {
        println!("  网络中断，原图下次同步时从中断处继续上传，不会重复");
    }
    for (hash, _) in &blobs.failed {
        println!(
            "  原图 {}… 未能上传（本机副本与其内容编号不符或服务器拒绝），仍保存在本机",
            &hash[..hash.len().min(12)]
        );
    }
    Ok(())
}

/// The photos of a record, for `show`: reference, thumbnail size, and whether the original
/// still waits in this device's blob outbox.
fn photo_rows(s: &Store, doc: &sanjin_core::RecordDoc) -> Result<Vec<Value>> {
    let pending: Vec<String> = s.pending_blobs()?.into_iter().map(|b| b.hash).collect();
    Ok(doc
        .photos()?
        .into_iter()
        .map(|p| {
            let thumb = doc.thumbnail(&p.hash).map_or(0, |t| t.len());
            let waiting = pending.contains(&p.hash);
            let mut v = serde_json::to_value(&p).expect("a photo reference serializes");
            v["thumbnail_bytes"] = json!(thumb);
            v["original_pending"] = json!(waiting);
            v
        })
        .collect())
}

fn show_photos(out: &mut impl Write, photos: &[Value]) -> Result<()> {
    if photos.is_empty() {
        return Ok(());
    }
    writeln!(out, "照片（{} 张）：", photos.len())?;
    for (i, p) in photos.iter().enumerate() {
        let hash = p["hash"].as_str().unwrap_or_default();
        let mut line = format!("  {}. {}…", i + 1, &hash[..hash.len().min(12)]);
        if let Some(c) = p["caption"].as_str() {
            line += &format!(" {c}");
        }
        if let Some(t) = p["taken_at"].as_str() {
            line += &format!("　拍摄于 {}", t.replace('T', " "));
        }
        if p["gps"].is_object() {
            line += &format!(
                "　位置 {:.5},{:.5}",
                p["gps"]["lat"].as_f64().unwrap_or(0.0),
                p["gps"]["lon"].as_f64().unwrap_or(0.0)
            );
        }
        if let (Some(w), Some(h)) = (p["width"].as_u64(), p["height"].as_u64()) {
            line += &format!("　{w}×{h}");
        }
        if let Some(b) = p["bytes"].as_u64() {
            line += &format!("　{}", size_zh(b));
        }
        match p["thumbnail_bytes"].as_u64() {
            Some(0) | None => line += "　无缩略图",
            Some(t) => line += &format!("　缩略图 {}", size_zh(t)),
        }
        if p["original_pending"].as_bool() == Some(true) {
            line += "　原图待上传";
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// A file size as members read it: KB below 1 MB, MB above.
fn size_zh(bytes: u64) -> String {
    if bytes < 1 << 20 {
        format!("{:.1} KB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MB", bytes as f64 / 1_048_576.0)
    }
}

fn attach(store: &Path, id: &str, photo: &Path, caption: &str, json: bool) -> Result<()> {
    let mut s = open(store)?;
    if !photo.is_file() {
        return Err(Usage(format!("找不到照片文件 {}，请检查路径", photo.display())).into());
    }
    let kind = s.load(id)?.kind();
    let a =
        sanjin_client::attach_photo(&mut s, id, sanjin_client::PhotoSource::Path(photo), caption)
            .map_err(|e| match e {
            sanjin_client::Error::Media(m) if m.is_bad_input() => {
                anyhow::Error::from(Usage(format!("{}：{}", photo.display(), m.zh())))
            }
            sanjin_client::Error::Media(m) => anyhow::anyhow!("{}", m.zh()),
            sanjin_client::Error::Io(why) => anyhow::Error::from(Usage(format!(
                "无法读取照片文件 {}（{why}）",
                photo.display()
            ))),
            sanjin_client::Error::Store(e) => store_invalid(kind, e),
            other => client_error(other, Phase::Sync, None),
        })?;
    if json {
        println!(
            "{}",
            json!({ "record": id, "photo": a.photo, "thumbnail_bytes": a.thumbnail_bytes })
        );
    } else {
        println!(
            "已为记录 {id} 添加照片 {}…（{}，缩略图 {}）；缩略图随下次同步上传，原图按设置上传",
            &a.photo.hash[..12],
            size_zh(a.photo.bytes),
            size_zh(a.thumbnail_bytes as u64)
        );
    }
    Ok(())
}
