//! Whole stores: `sanjin device merge-from` (another device's store, no server), `import` (a
//! fixtures folder or JSON Lines of records) and `check` (can every record be read).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use sanjin_core::import::{ImportRecord, ImportSet};
use serde_json::json;

use super::{open, render};
use crate::errors::{Usage, invalid};

/// `sanjin device merge-from OTHER`: every record of the other store merged in; records it
/// cannot read or must refuse are reported and skipped.
pub fn merge_from(store: &Path, other: &Path, json: bool) -> Result<()> {
    let mut s = open(store)?;
    if std::fs::canonicalize(other).ok() == std::fs::canonicalize(store).ok() {
        return Err(Usage("不能与自身合并：请给出另一台设备的数据文件".into()).into());
    }
    let report = s.merge_from(other)?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        render::merge_report(&mut std::io::stdout().lock(), &report)?;
    }
    Ok(())
}

/// `sanjin device check`: reads every record; damaged ones are listed and make it exit 2.
pub fn check(store: &Path, json: bool) -> Result<()> {
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

/// `sanjin device import`: records from a fixtures folder (directory first) or a JSON Lines file
/// of fixture records. Each record is saved in its own transaction; with `--json`, one line per
/// saved record is printed only after it is committed.
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
