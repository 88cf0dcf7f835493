//! `sanjin export`: the ledger (台账) of a server's data folder as XLSX or as a zip of CSV files.

use std::path::PathBuf;

use anyhow::Result;
use chrono::NaiveDate;
use clap::Args;
use sanjin_core::domain::TargetKind;
use sanjin_ledger::{Error, Format, Ledger, Quarter, Query, Slice, Viewer};
use sanjin_server::ServerData;

use crate::errors::Usage;

#[derive(Args)]
pub struct ExportArgs {
    /// 服务器数据目录
    #[arg(long, env = "SANJIN_DATA", default_value = "sanjin-data")]
    data: PathBuf,
    /// 起始日期（含），如 2025-01-01
    #[arg(long, required_unless_present = "quarterly")]
    from: Option<String>,
    /// 结束日期（含），如 2025-12-31
    #[arg(long, required_unless_present = "quarterly")]
    to: Option<String>,
    /// 改为导出这一季度的季度通报（Excel，含图表，可编辑），如 2025Q2
    #[arg(long, value_name = "YYYYQN", conflicts_with_all = ["from", "to", "format", "console_url"])]
    quarterly: Option<String>,
    /// 只导出这个委员活动组，如 group-03
    #[arg(long)]
    group: Option<String>,
    /// 只导出这个政协组织，如 chapter-city
    #[arg(long)]
    chapter: Option<String>,
    /// 只导出这个专委会，如 committee-2
    #[arg(long)]
    committee: Option<String>,
    /// 只导出这位委员参与的记录，如 member-0005
    #[arg(long)]
    member: Option<String>,
    /// 只导出这个联系点，如 cp-012
    #[arg(long)]
    contact_point: Option<String>,
    /// 只导出这一类：community（社区）、park（园区）、village（农村）
    #[arg(long)]
    target_kind: Option<String>,
    /// xlsx（Excel 工作簿）或 csv（每个台账一个 CSV 文件，打包为 zip）
    #[arg(long, default_value = "xlsx")]
    format: String,
    /// 输出文件
    #[arg(long)]
    out: PathBuf,
    /// 以谁的身份导出（账户编号）：组长只能导出本组，委员不能导出；不填则为机关工作人员
    #[arg(long = "as", value_name = "ACCOUNT")]
    as_account: Option<String>,
    /// 工作台地址（如 https://192.168.1.10:8443）：填写后，活动台账为有照片的记录加上工作台照片链接
    #[arg(long, value_name = "URL")]
    console_url: Option<String>,
    /// 以 JSON 输出结果（供脚本使用）
    #[arg(long)]
    json: bool,
}

fn date(s: &str, what: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| Usage(format!("{what}“{s}”格式不对，应为 年-月-日，如 2025-01-01")).into())
}

/// The ledger's errors said in Chinese with what to do (a row's error names its ledger, row,
/// record and column); bad input and refusals exit 2.
pub fn explain(e: Error) -> anyhow::Error {
    match e {
        Error::Forbidden(m) | Error::Invalid(m) => Usage(m).into(),
        Error::NoData(p) => Usage(format!(
            "{} 里没有服务器数据（sanjin.sqlite）。请检查 --data，或先用 sanjin admin import-directory 建立",
            p.display()
        ))
        .into(),
        other => anyhow::anyhow!("{}", other.zh()),
    }
}

/// `sanjin export`.
pub fn run(args: ExportArgs) -> Result<()> {
    if let Some(q) = &args.quarterly {
        return quarterly(&args, q);
    }
    let from = date(args.from.as_deref().unwrap_or_default(), "--from")?;
    let to = date(args.to.as_deref().unwrap_or_default(), "--to")?;
    let format = Format::parse(&args.format)
        .ok_or_else(|| Usage(format!("无法识别格式“{}”，可选：xlsx 或 csv", args.format)))?;
    if let Some(u) = &args.console_url
        && !(u.starts_with("https://") || u.starts_with("http://"))
    {
        return Err(Usage(format!(
            "--console-url 应以 https:// 开头，例如 https://192.168.1.10:8443（收到“{u}”）"
        ))
        .into());
    }
    let target_kind = match &args.target_kind {
        Some(t) => Some(TargetKind::parse(t).ok_or_else(|| {
            Usage(format!(
                "无法识别类别“{t}”，可选：{}",
                TargetKind::choices()
            ))
        })?),
        None => None,
    };
    let viewer = viewer(&args)?;
    let query = Query {
        from,
        to,
        slice: Slice {
            chapter: args.chapter,
            committee: args.committee,
            group: args.group,
            member: args.member,
            contact_point: args.contact_point,
            target_kind,
        },
        console_url: args.console_url,
    };
    let mut ledger = Ledger::open(&args.data).map_err(explain)?;
    let report = ledger
        .export(&viewer, &query, format, &args.out)
        .map_err(explain)?;
    for (id, reason) in &report.skipped {
        eprintln!(
            "注意：记录 {id} 无法读取（{reason}），未列入台账。请从录入该记录的手机再同步一次，或联系管理员检查这条记录后重新导出"
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let path = std::path::absolute(&report.path).unwrap_or(report.path.clone());
        println!("已导出台账：{}", path.display());
        println!("统计期间：{from} 至 {to}");
        for r in &report.rows {
            println!("  {}：{} 行", r.title, r.rows);
        }
    }
    Ok(())
}

/// Whom `--as` names (office staff when left out).
fn viewer(args: &ExportArgs) -> Result<Viewer> {
    Ok(match &args.as_account {
        None => Viewer::Office,
        Some(id) => {
            let data = ServerData::open(&args.data)
                .map_err(|e| anyhow::anyhow!("无法打开服务器数据：{e}"))?;
            let account = data
                .account(id)
                .map_err(|e| anyhow::anyhow!("无法读取账户：{e}"))?
                .ok_or_else(|| Usage(format!("没有账户 {id}，可用 sanjin admin accounts 查看")))?;
            account.viewer()
        }
    })
}

/// `sanjin export --quarterly 2025Q2 --out FILE`: the quarterly report (季度通报) as an XLSX
/// workbook with native charts, scoped like the ledger by `--as`.
fn quarterly(args: &ExportArgs, q: &str) -> Result<()> {
    let slice_given = args.group.is_some()
        || args.chapter.is_some()
        || args.committee.is_some()
        || args.member.is_some()
        || args.contact_point.is_some()
        || args.target_kind.is_some();
    if slice_given {
        return Err(Usage(
            "季度通报按账户的范围统计（工作人员为全部，组长为本组），不能与 --group 等筛选一起使用；要导出某个活动组的通报，请用 --as 该组组长的账户"
                .into(),
        )
        .into());
    }
    let quarter = Quarter::parse(q).map_err(explain)?;
    let viewer = viewer(args)?;
    let mut ledger = Ledger::open(&args.data).map_err(explain)?;
    let report = ledger
        .quarterly_report(&viewer, quarter.year, quarter.quarter)
        .map_err(explain)?;
    let bytes = report.xlsx().map_err(explain)?;
    std::fs::write(&args.out, &bytes).map_err(|source| {
        explain(Error::Io {
            path: args.out.clone(),
            source,
        })
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let path = std::path::absolute(&args.out).unwrap_or(args.out.clone());
        println!("已导出季度通报：{}", path.display());
        println!("{}（统计范围：{}）", report.title(), report.scope);
        for s in report.sentences() {
            println!("  {s}");
        }
    }
    Ok(())
}
