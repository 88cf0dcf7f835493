//! A record's unresolved conflicts in its ledger row: every value in the cells of the field,
//! and who wrote which in the last column (待裁定冲突) — nothing is silently picked.

use sanjin_core::domain::{ActivityType, OpinionKind, RecordKind, TargetKind, Urgency};
use sanjin_core::schema;
use sanjin_core::time;
use sanjin_core::workflow::State;

use super::{CONFLICT_COLUMN, target_zh};
use crate::directory::Directory;
use crate::project::Projected;
use crate::sink::{Cell, SheetSpec};

/// A conflicting value as staff read it.
fn show_value(field: &str, v: &serde_json::Value, dir: &Directory) -> String {
    let s = match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => return "（空）".into(),
        other => other.to_string(),
    };
    let mapped = match field {
        "target_kind" => TargetKind::parse(&s).map(target_zh),
        "activity_type" => ActivityType::parse(&s).map(|x| x.zh().to_string()),
        "opinion_kind" => OpinionKind::parse(&s).map(|x| x.zh().to_string()),
        "urgency" => Urgency::parse(&s).map(|x| x.zh().to_string()),
        "status" => State::parse(&s).map(|x| x.zh().to_string()),
        "group" => Some(dir.group_name(&s).to_string()),
        "contact_point" => Some(dir.contact_point_name(&s).to_string()),
        "start" | "end" => time::parse_stored(&s).map(time::minutes),
        _ => None,
    };
    mapped.unwrap_or(s)
}

/// Replaces the cells of conflicted fields by every value, and fills the conflict column.
pub(super) fn flag_conflicts(spec: &SheetSpec, p: &Projected, dir: &Directory, cells: &mut [Cell]) {
    if p.conflicts.is_empty() {
        return;
    }
    let kind: RecordKind = p.data.kind();
    let mut notes = Vec::new();
    for c in &p.conflicts {
        let values: Vec<String> = c
            .values
            .iter()
            .map(|v| {
                format!(
                    "{}（{}）",
                    show_value(&c.field, &v.value, dir),
                    dir.member_name(&v.member)
                )
            })
            .collect();
        let label = if c.field == "status" {
            "状态"
        } else {
            schema::field(kind, &c.field).map_or(c.field.as_str(), |f| f.zh)
        };
        notes.push(format!("{label}：{}", values.join(" ／ ")));
        let all: Vec<String> = c
            .values
            .iter()
            .map(|v| show_value(&c.field, &v.value, dir))
            .collect();
        for (i, col) in spec.columns.iter().enumerate() {
            if col.field == Some(c.field.as_str()) {
                cells[i] = Cell::Text(format!("【冲突】{}", all.join(" ／ ")));
            }
        }
    }
    let last = spec.columns.len() - 1;
    debug_assert_eq!(spec.columns[last].title, CONFLICT_COLUMN);
    cells[last] = Cell::Text(notes.join("；"));
}
