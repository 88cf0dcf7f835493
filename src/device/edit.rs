//! `sanjin device edit`, `resolve`, `step`, `delete`, `restore`: one change to one record, checked
//! before anything is saved, in one store transaction.

use std::path::Path;

use anyhow::Result;
use sanjin_core::Edit;
use sanjin_core::domain::RecordKind;
use sanjin_core::schema::{self, FieldKind};
use sanjin_core::workflow::EventType;
use sanjin_store::now_ms;

use super::open;
use crate::errors::{Invalid, Usage, store_invalid};

/// How `edit` changes a field (`--add`, `--remove`, `--append`; none: set it).
#[derive(Clone, Copy)]
pub struct Mode {
    pub add: bool,
    pub remove: bool,
    pub append: bool,
}

/// `sanjin device edit ID FIELD VALUE [--add|--remove|--append]`.
pub fn edit(store: &Path, id: &str, field: &str, value: &str, mode: Mode) -> Result<()> {
    let mut s = open(store)?;
    let kind = s.load(id)?.kind();
    let edit = parse_edit(kind, field, value, mode)?;
    s.update(id, |d, by| d.edit(by, now_ms(), &[edit]))
        .map_err(|e| store_invalid(kind, e))?;
    eprintln!(
        "已修改 {id} 的{}",
        schema::field(kind, field).map_or(field, |f| f.zh)
    );
    Ok(())
}

/// `sanjin device resolve ID FIELD VALUE`: settles a conflict (a field, or `status`).
pub fn resolve(store: &Path, id: &str, field: &str, value: &str) -> Result<()> {
    let mut s = open(store)?;
    let kind = s.load(id)?.kind();
    let (field_name, value) = sanjin_core::input::parse_resolution(kind, field, value)
        .map_err(|error| Invalid { kind, error })?;
    s.update(id, |d, by| d.resolve(by, now_ms(), &field_name, value))
        .map_err(|e| store_invalid(kind, e))?;
    eprintln!("已裁定 {id} 的冲突：{field}");
    Ok(())
}

/// `sanjin device step ID STEP [--note …]`: a workflow event (submit, return, approve, …).
pub fn step(store: &Path, id: &str, step: &str, note: Option<&str>) -> Result<()> {
    let mut s = open(store)?;
    let kind = s.load(id)?.kind();
    let event = EventType::parse(step)
        .filter(|e| !matches!(e, EventType::Resolve | EventType::Delete | EventType::Restore))
        .ok_or_else(|| {
            Usage(format!(
                "无法识别的流转“{step}”。可选：submit 提交、return 退回、approve 审核通过、accept 采纳、forward 转办、handle 办理、feedback 反馈"
            ))
        })?;
    let (state, _) = s
        .update(id, |d, by| d.transition(by, now_ms(), event, note))
        .map_err(|e| store_invalid(kind, e))?;
    eprintln!("{id} 已{}，当前状态：{}", event.zh(), state.zh());
    Ok(())
}

/// `sanjin device delete ID [--note …]`: a delete event (the trace stays; `restore` undoes it).
pub fn delete(store: &Path, id: &str, note: Option<&str>) -> Result<()> {
    let mut s = open(store)?;
    s.update(id, |d, by| d.delete(by, now_ms(), note))?;
    eprintln!("已删除 {id}（保留痕迹，可用 sanjin device restore {id} 恢复）");
    Ok(())
}

/// `sanjin device restore ID`.
pub fn restore(store: &Path, id: &str) -> Result<()> {
    let mut s = open(store)?;
    s.update(id, |d, by| d.restore(by, now_ms()))?;
    eprintln!("已恢复 {id}");
    Ok(())
}

/// The edit typed on the command line: the flags must fit the field's storage (a single value
/// is set, a set takes `--add`/`--remove`, a log `--append`).
fn parse_edit(kind: RecordKind, field: &str, value: &str, mode: Mode) -> Result<Edit> {
    let Mode {
        add,
        remove,
        append,
    } = mode;
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
