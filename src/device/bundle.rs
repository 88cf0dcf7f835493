//! `sanjin device bundle export|import` (issue 12): a device's records in a file (or parts of a
//! chosen size) for a USB stick or a chat app, and landing such files, without any signal. The
//! work is `sanjin_client::bundle`'s; this module reads the options, writes and reads the
//! files, and says what happened in Chinese (or `--json`).

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Subcommand;
use sanjin_client::bundle::{self, ExportOptions, PartReport};
use sanjin_store::{Outcome, now_ms};
use serde_json::json;

use super::open;
use crate::errors::Usage;

#[derive(Subcommand)]
pub enum BundleCmd {
    /// 导出记录包：本机的记录（含签名、缩略图，可选原图），加密给本组成员和服务器，可用 U 盘或聊天软件传递
    Export {
        /// 输出文件；分成多个部分时文件名加上“.part1of3”等
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// 给这位委员：其所在活动组的记录和他参加的记录
        #[arg(long = "for", value_name = "MEMBER", conflicts_with = "group")]
        for_member: Option<String>,
        /// 给这个活动组：该组的记录
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        /// 只导出此后保存过的记录（整条记录），如 2025-05-19 或 "2025-05-19 09:30"（北京时间）
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// 同时带上尚未上传的照片原图
        #[arg(long)]
        with_originals: bool,
        /// 每个文件的最大大小，如 20M、500K（聊天软件有文件大小限制时使用）
        #[arg(long, value_name = "SIZE")]
        part_size: Option<String>,
        /// 以 JSON 输出（供脚本使用）
        #[arg(long)]
        json: bool,
    },
    /// 导入记录包（可一次给出多个文件，顺序不限，重复导入无妨）
    Import {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// 每个文件输出一行 JSON（供脚本使用）
        #[arg(long)]
        json: bool,
    },
}

pub fn run(store: &Path, cmd: BundleCmd) -> Result<()> {
    match cmd {
        BundleCmd::Export {
            out,
            for_member,
            group,
            since,
            with_originals,
            part_size,
            json,
        } => {
            let opts = ExportOptions {
                for_member,
                group,
                since: since.as_deref().map(parse_since).transpose()?,
                with_originals,
                part_size: part_size.as_deref().map(parse_size).transpose()?,
            };
            export(store, &out, &opts, json)
        }
        BundleCmd::Import { files, json } => import(store, &files, json),
    }
}

/// `20M`, `500K`, `1G` or a number of bytes.
pub fn parse_size(s: &str) -> Result<usize, Usage> {
    let t = s.trim().to_ascii_uppercase();
    let t = t.strip_suffix('B').unwrap_or(&t);
    let (num, mul) = match t.chars().last() {
        Some('K') => (&t[..t.len() - 1], 1usize << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    match num.trim().parse::<usize>() {
        Ok(n) if n > 0 => n
            .checked_mul(mul)
            .ok_or_else(|| Usage(format!("文件大小“{s}”太大"))),
        _ => Err(Usage(format!(
            "文件大小“{s}”无效：请写成 20M、500K 这样的大小"
        ))),
    }
}

/// A date (`2025-05-19`, the start of that day) or a time (`2025-05-19 09:30`), Beijing time.
pub fn parse_since(s: &str) -> Result<i64, Usage> {
    use chrono::{NaiveDate, NaiveDateTime};
    let t = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(sanjin_core::time::beijing_day_start(d));
    }
    for f in ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, f) {
            return Ok(sanjin_core::time::from_beijing(dt));
        }
    }
    Err(Usage(format!(
        "时间“{s}”无效：请写成 2025-05-19 或 \"2025-05-19 09:30\"（北京时间）"
    )))
}

/// The file of part `i` (from 1) of `n`: `out` itself for a single part, else
/// `name.part{i}of{n}.ext`.
pub fn part_path(out: &Path, i: usize, n: usize) -> PathBuf {
    if n <= 1 {
        return out.to_path_buf();
    }
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match out.extension() {
        Some(e) => format!("{stem}.part{i}of{n}.{}", e.to_string_lossy()),
        None => format!("{stem}.part{i}of{n}"),
    };
    out.with_file_name(name)
}

fn size_zh(n: usize) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MB", n as f64 / (1u64 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{:.1} KB", n as f64 / 1024.0)
    } else {
        format!("{n} 字节")
    }
}

fn export(store: &Path, out: &Path, opts: &ExportOptions, json: bool) -> Result<()> {
    let s = open(store)?;
    let exported = bundle::export_bundle(&s, opts, now_ms())?;
    let n = exported.parts.len();
    let mut files = Vec::new();
    for (i, part) in exported.parts.iter().enumerate() {
        let path = part_path(out, i + 1, n);
        std::fs::write(&path, part).map_err(|e| {
            Usage(format!(
                "无法写入 {}（{e}）：请检查目录是否存在、空间是否充足",
                path.display()
            ))
        })?;
        files.push((path, part.len()));
    }
    let inside = exported.docs.iter().filter(|d| !d.outside).count();
    let outside = exported.docs.len() - inside;
    if json {
        println!(
            "{}",
            json!({
                "files": files.iter().map(|(p, b)| json!({ "path": p, "bytes": b })).collect::<Vec<_>>(),
                "records": inside,
                "outside": outside,
                "originals": exported.originals,
                "cargo": exported.cargo,
                "audience": exported.audience,
                "docs": exported.docs,
            })
        );
        return Ok(());
    }
    let to = match &exported.audience {
        Some(g) => format!("活动组 {g} 的成员和服务器可以读取"),
        None => "只有服务器可以读取".to_string(),
    };
    println!("已导出 {inside} 条记录（{to}）");
    if outside > 0 {
        println!(
            "另有 {outside} 条不属于该组的记录已加密为只有服务器能读取的转交件，随包带给服务器"
        );
    }
    if exported.originals > 0 {
        println!("含照片原图 {} 张", exported.originals);
    }
    println!("共 {n} 个文件：");
    for (p, b) in &files {
        println!("  {}（{}）", p.display(), size_zh(*b));
    }
    println!("文件已加密并签名，可用 U 盘或聊天软件传递；对方用 sanjin device bundle import 导入");
    Ok(())
}

fn import(store: &Path, files: &[PathBuf], json: bool) -> Result<()> {
    let mut s = open(store)?;
    let mut failed = 0usize;
    for path in files {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                failed += 1;
                let why = format!("无法读取文件（{e}）：请检查路径");
                say_failed(path, &why, json);
                continue;
            }
        };
        match bundle::import_bundle(&mut s, &bytes, now_ms()) {
            Ok(r) => say_part(path, &r, json),
            // This file is refused; the others are still tried.
            Err(e @ bundle::BundleFailure::Part(_)) => {
                failed += 1;
                say_failed(path, &e.zh(), json);
            }
            // About this device (no server key yet, the database): no file can be imported.
            Err(e) => return Err(e.into()),
        }
    }
    if failed > 0 {
        return Err(Usage(format!(
            "{failed} 个文件未能导入（见上）；其余文件已导入。请向对方重新索取这些文件"
        ))
        .into());
    }
    Ok(())
}

fn say_failed(path: &Path, why: &str, json: bool) {
    if json {
        println!("{}", json!({ "file": path, "ok": false, "error": why }));
    } else {
        println!("✗ {}：未导入。{why}", path.display());
    }
}

fn say_part(path: &Path, r: &PartReport, json: bool) {
    if json {
        println!(
            "{}",
            json!({ "file": path, "ok": true, "part": r })
        );
        return;
    }
    let from = format!(
        "第 {}/{} 部分，由委员 {} 的设备导出",
        r.part + 1,
        r.parts,
        r.exporter_member
    );
    if r.carried {
        println!(
            "✓ {}（{from}）：本机无权读取（加密给其他活动组或服务器），已保存为转交件，下次同步时交给服务器",
            path.display()
        );
        return;
    }
    let rep = &r.report;
    println!(
        "✓ {}（{from}）：新增 {} 条，更新 {} 条，未变 {} 条，拒收 {} 条",
        path.display(),
        rep.added,
        rep.updated,
        rep.unchanged,
        rep.refused + rep.held
    );
    for d in &rep.records {
        match d.outcome {
            Outcome::Refused => println!("  拒收 记录 {}：{}", d.id, d.reason),
            Outcome::Held => println!("  暂未导入 记录 {}：{}", d.id, d.reason),
            _ if !d.reason.is_empty() => {
                println!("  部分修改被拒收 记录 {}：{}", d.id, d.reason)
            }
            _ => {}
        }
    }
    for id in &rep.new_conflicts {
        println!("  记录 {id} 出现冲突，请组长裁定（sanjin device show {id}）");
    }
    for (h, why) in &rep.originals_refused {
        println!("  照片原图 {}…：{why}", &h[..h.len().min(12)]);
    }
    if rep.originals > 0 {
        println!("  收到照片原图 {} 张，下次同步时上传", rep.originals);
    }
    if rep.cargo > 0 {
        println!(
            "  收到转交件 {} 个（只有服务器能读取），下次同步时交给服务器",
            rep.cargo
        );
    }
    if rep.receipts > 0 {
        println!("  收到服务器回执 {} 份", rep.receipts);
    }
    if rep.revocations {
        println!("  已更新服务器的注销设备名单");
    }
}
