//! How records look to members on a terminal: Simplified Chinese labels, Beijing time.

use std::io::{self, Write};

use chrono::FixedOffset;
use sanjin_core::domain::*;
use sanjin_core::schema::{self, FieldKind, ValueType};
use sanjin_core::workflow::State;
use sanjin_core::{HistoryEntry, IndexEntry, RecordView};
use serde_json::Value;

/// The city's wall clock (UTC+8, no daylight saving).
pub fn beijing() -> FixedOffset {
    sanjin_core::time::beijing_offset()
}

/// An instant in Beijing time to the second; the raw milliseconds if no calendar holds it.
pub fn time(ms: i64) -> String {
    sanjin_core::time::beijing_seconds(ms).unwrap_or_else(|| ms.to_string())
}

fn vocab_zh(ty: ValueType, code: &str) -> Option<&'static str> {
    match ty {
        ValueType::TargetKind => TargetKind::parse(code).map(TargetKind::zh),
        ValueType::ActivityType => ActivityType::parse(code).map(ActivityType::zh),
        ValueType::OpinionKind => OpinionKind::parse(code).map(OpinionKind::zh),
        ValueType::Urgency => Urgency::parse(code).map(Urgency::zh),
        ValueType::ChapterLevel => ChapterLevel::parse(code).map(ChapterLevel::zh),
        _ => None,
    }
}

/// One value as members read it.
fn value(ty: ValueType, v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) if s.is_empty() => "—".into(),
        Value::String(s) => match vocab_zh(ty, s) {
            Some(zh) => zh.to_string(),
            None if ty == ValueType::DateTime => s.replace('T', " "),
            None => s.clone(),
        },
        Value::Array(items) if items.is_empty() => "—".into(),
        Value::Array(items) => items
            .iter()
            .map(|i| element(ty, i))
            .collect::<Vec<_>>()
            .join("、"),
        Value::Object(_) if ty == ValueType::Gps => {
            format!("{},{}", v["lat"], v["lon"])
        }
        other => other.to_string(),
    }
}

fn element(ty: ValueType, v: &Value) -> String {
    match ty {
        ValueType::Photo => {
            let hash = v["hash"].as_str().unwrap_or_default();
            let caption = v["caption"].as_str().unwrap_or_default();
            format!("{}… {caption}", &hash[..hash.len().min(12)])
        }
        ValueType::Assistance => format!(
            "{} {} {}{}",
            v["date"].as_str().unwrap_or_default(),
            v["member"].as_str().unwrap_or_default(),
            v["action"].as_str().unwrap_or_default(),
            v["amount_yuan"]
                .as_f64()
                .map(|a| format!("（{a} 元）"))
                .unwrap_or_default()
        ),
        _ => value(ty, v),
    }
}

fn action_zh(a: &str) -> String {
    match a {
        "create" => "创建".into(),
        "edit" => "修改".into(),
        "resolve" => "裁定冲突".into(),
        "delete" => "删除".into(),
        "restore" => "恢复".into(),
        other => sanjin_core::workflow::EventType::parse(other)
            .map_or(other.to_string(), |e| e.zh().to_string()),
    }
}

pub fn record(out: &mut impl Write, view: &RecordView, history: &[HistoryEntry]) -> io::Result<()> {
    let kind = view.kind;
    writeln!(out, "{} {}", kind.zh(), view.id)?;
    writeln!(
        out,
        "状态：{}{}",
        view.status.zh(),
        if view.deleted { "（已删除）" } else { "" }
    )?;
    writeln!(
        out,
        "创建：{} 设备 {} {}",
        view.created_by,
        view.created_device,
        time(view.created_at_ms)
    )?;
    let fields = sanjin_core::doc::fields_json(&view.data);
    for spec in schema::fields(kind) {
        let v = fields.get(spec.name).unwrap_or(&Value::Null);
        let conflicted = view.conflicts.iter().any(|c| c.field == spec.name);
        let mark = if conflicted { " ⚠ 有冲突" } else { "" };
        if spec.kind == FieldKind::Text {
            writeln!(out, "{}：{mark}", spec.zh)?;
            for line in value(spec.ty, v).lines() {
                writeln!(out, "    {line}")?;
            }
        } else {
            writeln!(out, "{}：{}{mark}", spec.zh, value(spec.ty, v))?;
        }
    }
    if !view.conflicts.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "待裁定的冲突（用 sanjin device resolve {} 字段 值）：",
            view.id
        )?;
        for c in &view.conflicts {
            let (label, ty) = match schema::field(kind, &c.field) {
                Some(s) => (format!("{}（{}）", s.zh, s.name), s.ty),
                None => ("状态（status）".to_string(), ValueType::Str),
            };
            writeln!(out, "  {label}：")?;
            for v in &c.values {
                let shown = if c.field == "status" {
                    v.value
                        .as_str()
                        .and_then(State::parse)
                        .map_or("—".into(), |s| format!("{}（{}）", s.zh(), s.code()))
                } else {
                    value(ty, &v.value)
                };
                writeln!(
                    out,
                    "    - {shown}    ← {} 设备 {} {}",
                    v.member,
                    v.device,
                    time(v.at_ms)
                )?;
            }
        }
    }
    if !view.events.is_empty() {
        writeln!(out)?;
        writeln!(out, "流转：")?;
        for e in &view.events {
            writeln!(
                out,
                "  {} {} {}{}{}",
                time(e.at_ms),
                e.member,
                e.event.zh(),
                e.note
                    .as_ref()
                    .map(|n| format!("：{n}"))
                    .unwrap_or_default(),
                if e.applied {
                    ""
                } else {
                    "（与并发操作冲突，未生效）"
                }
            )?;
        }
    }
    writeln!(out)?;
    writeln!(out, "历史（留痕）：")?;
    for h in history {
        let fields: Vec<&str> = h
            .fields
            .iter()
            .map(|f| schema::field(kind, f).map_or(f.as_str(), |s| s.zh))
            .collect();
        writeln!(
            out,
            "  {} {} 设备 {} {}{}",
            time(h.at_ms),
            h.member,
            h.device,
            action_zh(&h.action),
            if fields.is_empty() {
                String::new()
            } else {
                format!("：{}", fields.join("、"))
            }
        )?;
    }
    Ok(())
}

/// `refused`: ids of records the server refused as they are now (issue 10), marked in the list.
/// `undelivered` (an enrolled device): each record is marked 已送达 (the server holds all of it,
/// directly or by a receipt that came back through another phone; issue 12) or 待送达.
pub fn list(
    out: &mut impl Write,
    kind: RecordKind,
    rows: &[IndexEntry],
    refused: &std::collections::HashSet<String>,
    undelivered: Option<&std::collections::HashSet<String>>,
) -> io::Result<()> {
    if rows.is_empty() {
        return writeln!(out, "没有符合条件的{}", kind.zh());
    }
    for r in rows {
        let ty = r
            .type_code
            .as_deref()
            .and_then(|t| {
                ActivityType::parse(t)
                    .map(|a| a.zh())
                    .or_else(|| OpinionKind::parse(t).map(|o| o.zh()))
            })
            .unwrap_or("");
        let status = State::parse(&r.status).map_or(r.status.as_str(), |s| s.zh());
        let flags = format!(
            "{}{}{}",
            if r.conflicts > 0 {
                format!(" ⚠冲突{}", r.conflicts)
            } else {
                String::new()
            },
            if r.deleted { " [已删除]" } else { "" },
            if refused.contains(&r.id) {
                " ⛔已被服务器拒收"
            } else {
                ""
            }
        ) + match undelivered {
            Some(u) if u.contains(&r.id) => " ↑待送达",
            Some(_) => " ✓已送达",
            None => "",
        };
        writeln!(
            out,
            "{}  {:<8} {}  {}  {}{}  {}",
            r.date.as_deref().unwrap_or("          "),
            ty,
            r.group.as_deref().unwrap_or("-"),
            status,
            r.title,
            flags,
            r.id
        )?;
    }
    writeln!(out, "共 {} 条", rows.len())?;
    let n = rows.iter().filter(|r| refused.contains(&r.id)).count();
    if n > 0 {
        writeln!(
            out,
            "其中 {n} 条已被服务器拒收，不会再次提交：用 sanjin device show <编号> 查看原因"
        )?;
    }
    Ok(())
}
