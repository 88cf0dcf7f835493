//! `sanjin device list` and `sanjin device show`: reading the store (the index for lists, the
//! document for one record).

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use clap::{Args, ValueEnum};
use sanjin_core::domain::{ActivityType, OpinionKind, RecordKind, TargetKind};
use sanjin_core::validate;
use sanjin_store::Filter;
use serde_json::{Value, json};

use super::{open, photos, render};
use crate::errors::{Usage, invalid};
use crate::show;

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
    Unit,
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

fn month_range(month: &str) -> Result<(String, String)> {
    let (first, last) = sanjin_core::input::month_range(month)
        .ok_or_else(|| Usage(format!("月份“{month}”格式不对，应为 2026-05 这样的形式")))?;
    Ok((first.to_string(), last.to_string()))
}

/// `sanjin device list`: the index rows matching the filters, marked where the server refused
/// the record as it is now.
pub fn list(path: &Path, a: ListArgs) -> Result<()> {
    let s = open(path)?;
    let kind = RecordKind::from(a.kind);
    let json = a.json;
    let filter = a.filter(kind)?;
    let rows = s.list(&filter)?;
    // Records the server refused as they are now (issue 10).
    let refused: std::collections::HashSet<String> = s
        .standing_refusals()?
        .into_iter()
        .map(|r| r.doc_id)
        .collect();
    // 已送达 (issue 12): on an enrolled device, whether the server holds all of each record.
    let undelivered = match s.server_public()? {
        Some(_) if !kind.is_directory() => Some(s.undelivered()?),
        _ => None,
    };
    let out = std::io::stdout();
    let mut out = out.lock();
    if json {
        // Each row as before, with `refused` (and `delivered`) added.
        let rows = rows
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r)?;
                if let Value::Object(m) = &mut v {
                    m.insert("refused".into(), Value::Bool(refused.contains(&r.id)));
                    if let Some(u) = &undelivered {
                        m.insert("delivered".into(), Value::Bool(!u.contains(&r.id)));
                    }
                }
                Ok(v)
            })
            .collect::<serde_json::Result<Vec<Value>>>()?;
        serde_json::to_writer(&mut out, &rows)?;
        writeln!(out)?;
    } else {
        show::list(&mut out, kind, &rows, &refused, undelivered.as_ref())?;
    }
    Ok(())
}

impl From<KindArg> for RecordKind {
    fn from(k: KindArg) -> RecordKind {
        match k {
            KindArg::Visit => RecordKind::Visit,
            KindArg::Opinion => RecordKind::Opinion,
            KindArg::Household => RecordKind::Household,
            KindArg::Plan => RecordKind::Plan,
            KindArg::Member => RecordKind::Member,
            KindArg::Committee => RecordKind::Committee,
            KindArg::Group => RecordKind::Group,
            KindArg::ContactPoint => RecordKind::ContactPoint,
            KindArg::Chapter => RecordKind::Chapter,
            KindArg::Unit => RecordKind::Unit,
        }
    }
}

impl ListArgs {
    /// The store's filter for these flags, each checked (dates, month, type, target, status) so
    /// a mistake is named.
    fn filter(self, kind: RecordKind) -> Result<Filter> {
        let a = self;
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
        Ok(Filter {
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
            // A device holds only what it may read.
            scope: None,
        })
    }
}

/// `sanjin device show`: the record's values, open conflicts, history (留痕), photos, and the
/// server's standing refusal; `--json` prints them as one object.
pub fn show(path: &Path, id: &str, json: bool) -> Result<()> {
    let s = open(path)?;
    let mut doc = s.load(id)?;
    let view = doc.view().map_err(|e| invalid(doc.kind(), e))?;
    let history = doc.history();
    let out = std::io::stdout();
    let mut out = out.lock();
    let photos = photos::rows(&s, &doc)?;
    // The server's refusal, while the record is as it was refused (issue 10).
    let refused = s.standing_refusal(id)?;
    // 已送达 (issue 12), on an enrolled device.
    let delivered = match s.server_public()? {
        Some(_) if !doc.kind().is_directory() => Some(s.delivered(id)?),
        _ => None,
    };
    if json {
        serde_json::to_writer_pretty(
            &mut out,
            &json!({ "record": view, "history": history, "photos": photos, "refused": refused, "delivered": delivered }),
        )?;
        writeln!(out)?;
    } else {
        if let Some(r) = &refused {
            render::refusal(&mut out, doc.kind(), &r.code, &r.field)?;
        }
        match delivered {
            Some(true) => writeln!(out, "✓ 已送达：服务器已收到这条记录的全部内容")?,
            Some(false) => writeln!(
                out,
                "↑ 待送达：还有修改未送到服务器。有信号时同步，或用 sanjin device bundle export 托组员带去"
            )?,
            None => {}
        }
        // Issue 13: the unit an opinion went to, by its name in this device's directory.
        let unit_name = |unit: &str| -> Option<String> {
            match s.load(unit).ok()?.view().ok()?.data {
                sanjin_core::RecordData::Unit(u) => Some(u.name),
                _ => None,
            }
        };
        show::record_with(&mut out, &view, &history, &unit_name)?;
        render::photos(&mut out, &photos)?;
    }
    Ok(())
}
