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
    record_with(out, view, history, &|_| None)
}

/// [`record`], naming the unit an opinion went to by `unit_name` (the device's directory).
pub fn record_with(
    out: &mut impl Write,
    view: &RecordView,
    history: &[HistoryEntry],
    unit_name: &dyn Fn(&str) -> Option<String>,
) -> io::Result<()> {
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
    if kind == RecordKind::Opinion {
        outcome(out, view, unit_name)?;
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
                match (&e.unit, e.due) {
                    (Some(u), Some(d)) => format!(" → {u}（{d} 前答复）"),
                    (Some(u), None) => format!(" → {u}"),
                    _ => String::new(),
                } + &e
                    .note
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

/// An opinion's handling (issue 13): the unit it went to and by when, the handling and the
/// feedback, as they stand after the last sync.
fn outcome(
    out: &mut impl Write,
    view: &RecordView,
    unit_name: &dyn Fn(&str) -> Option<String>,
) -> io::Result<()> {
    let o = sanjin_core::workflow::outcome(&view.events);
    if o.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "办理情况：")?;
    if let Some(r) = o
        .returned
        .as_ref()
        .filter(|_| view.status == State::Returned)
    {
        writeln!(
            out,
            "  退回理由：{}（{} {}）",
            r.note.as_deref().unwrap_or("—"),
            r.by,
            time(r.at_ms)
        )?;
    }
    if let Some(a) = &o.assignment {
        let name = unit_name(&a.unit).unwrap_or_else(|| a.unit.clone());
        writeln!(
            out,
            "  承办单位：{name}{}",
            a.due.map(|d| format!("（{d} 前答复）")).unwrap_or_default()
        )?;
    }
    for (label, step) in [("办理结果", &o.handling), ("反馈", &o.feedback)] {
        if let Some(s) = step {
            writeln!(
                out,
                "  {label}：{}（{} {}）",
                s.note.as_deref().unwrap_or("—"),
                s.by,
                time(s.at_ms)
            )?;
        }
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

#[cfg(test)]
mod tests {
    use sanjin_core::RecordDoc;
    use sanjin_core::domain::RecordData;
    use sanjin_core::workflow::{EventType, StepDetails};

    /// Issue 13: `device show` of an opinion the office handled: the unit by its name, the due
    /// day, the handling and the feedback; the forward's unit in the event list.
    #[test]
    fn issue13_show_prints_an_opinions_handling() {
        let member = sanjin_core::Author::new("member-0001", "phone-x", &[1; 16]).unwrap();
        let staff = sanjin_core::Author::new("office-01", "server", &[9; 16]).unwrap();
        let t0 = 1_747_616_400_000;
        let mut doc = RecordDoc::create(
            "o-1",
            &RecordData::Opinion(sanjin_core::testdata::opinion()),
            &member,
            t0,
        )
        .unwrap();
        doc.transition(&member, t0 + 1, EventType::Submit, None)
            .unwrap();
        doc.transition(&staff, t0 + 2, EventType::Accept, None)
            .unwrap();
        doc.transition_with(
            &staff,
            t0 + 3,
            EventType::Forward,
            &StepDetails {
                unit: Some("unit-001"),
                due: chrono::NaiveDate::from_ymd_opt(2025, 6, 30),
                note: None,
            },
        )
        .unwrap();
        doc.transition(&staff, t0 + 4, EventType::Handle, Some("已清运"))
            .unwrap();
        doc.transition(&staff, t0 + 5, EventType::Feedback, Some("已答复委员"))
            .unwrap();
        let mut out = Vec::new();
        super::record_with(&mut out, &doc.view().unwrap(), &doc.history(), &|u| {
            (u == "unit-001").then(|| "市城市管理局".to_string())
        })
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        for needle in [
            "状态：已反馈",
            "办理情况：",
            "承办单位：市城市管理局（2025-06-30 前答复）",
            "办理结果：已清运（office-01",
            "反馈：已答复委员（office-01",
            "转办 → unit-001（2025-06-30 前答复）",
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
    }
}
