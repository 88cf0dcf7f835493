//! `sanjin device record visit|opinion|household|plan`: a new record from flags or from a JSON
//! file, every field checked by `sanjin_core::input` so an error names the field.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, Subcommand};
use sanjin_core::RecordDoc;
use sanjin_core::domain::{RecordData, RecordKind};
use sanjin_core::workflow::EventType;
use sanjin_store::{new_record_id, now_ms};
use serde_json::{Map, Value};

use super::open;
use crate::errors::{Invalid, Usage, invalid};
use crate::show;

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

impl VisitArgs {
    /// The visit's fields from `--json FILE`, or from the flags (participants: the member alone
    /// unless given).
    fn fields(&self, me: &str) -> Result<Map<String, Value>> {
        let kind = RecordKind::Visit;
        if let Some(file) = &self.json {
            return read_json_file(file, kind);
        }
        let a = self;
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
            vec![me.to_string()]
        } else {
            a.participants.clone()
        };
        put_list(kind, &mut f, "participants", &participants)?;
        put_list(kind, &mut f, "helpers", &a.helpers)?;
        put(kind, &mut f, "gps", a.gps.as_deref())?;
        Ok(f)
    }
}

impl OpinionArgs {
    /// The opinion note's fields from `--json FILE`, or from the flags (dated today unless
    /// `--date`).
    fn fields(&self) -> Result<Map<String, Value>> {
        let kind = RecordKind::Opinion;
        if let Some(file) = &self.json {
            return read_json_file(file, kind);
        }
        let a = self;
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
        Ok(f)
    }
}

impl HouseholdArgs {
    /// The household's fields from `--json FILE`, or from the flags (assisted by the member
    /// alone unless given).
    fn fields(&self, me: &str) -> Result<Map<String, Value>> {
        let kind = RecordKind::Household;
        if let Some(file) = &self.json {
            return read_json_file(file, kind);
        }
        let a = self;
        let mut f = Map::new();
        put(kind, &mut f, "head_name", a.head_name.as_deref())?;
        put(kind, &mut f, "contact_point", a.contact_point.as_deref())?;
        put(kind, &mut f, "group", a.group.as_deref())?;
        put(kind, &mut f, "address", Some(&a.address))?;
        put(kind, &mut f, "size", Some(&a.size))?;
        put(kind, &mut f, "situation", Some(&a.situation))?;
        let members = if a.members.is_empty() {
            vec![me.to_string()]
        } else {
            a.members.clone()
        };
        put_list(kind, &mut f, "assisting_members", &members)?;
        Ok(f)
    }
}

impl PlanArgs {
    /// The plan item's fields from `--json FILE`, or from the flags (owned by the member unless
    /// `--owner`).
    fn fields(&self, me: &str) -> Result<Map<String, Value>> {
        let kind = RecordKind::Plan;
        if let Some(file) = &self.json {
            return read_json_file(file, kind);
        }
        let a = self;
        let mut f = Map::new();
        put(kind, &mut f, "year", a.year.as_deref())?;
        put(kind, &mut f, "quarter", a.quarter.as_deref())?;
        put(kind, &mut f, "month", a.month.as_deref())?;
        put(
            kind,
            &mut f,
            "owner",
            Some(a.owner.as_deref().unwrap_or(me)),
        )?;
        put(kind, &mut f, "group", a.group.as_deref())?;
        put(kind, &mut f, "activity_type", a.activity_type.as_deref())?;
        put(kind, &mut f, "title", a.title.as_deref())?;
        put(kind, &mut f, "contact_point", a.contact_point.as_deref())?;
        Ok(f)
    }
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

/// `sanjin device record …`: builds the record, checks it (and the submission, with `--submit`)
/// before anything is saved, saves it, prints its id.
pub fn run(path: &Path, what: RecordCmd) -> Result<()> {
    let mut s = open(path)?;
    let me = s.identity().member.clone();
    let (kind, fields, submit) = match what {
        RecordCmd::Visit(a) => (RecordKind::Visit, a.fields(&me)?, a.submit),
        RecordCmd::Opinion(a) => (RecordKind::Opinion, a.fields()?, a.submit),
        RecordCmd::Household(a) => (RecordKind::Household, a.fields(&me)?, false),
        RecordCmd::Plan(a) => (RecordKind::Plan, a.fields(&me)?, false),
    };
    let data = build(kind, fields)?;
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
