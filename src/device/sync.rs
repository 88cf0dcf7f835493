//! `sanjin device sync`: the records, then the photo originals as `--photos` allows on `--link`
//! (`sanjin_client::sync_then_photos`, the flow the phone bridge runs too). Progress goes to
//! standard error, the summary to standard output (`--json`: one object).

use std::path::Path;

use anyhow::Result;
use sanjin_client::{BlobOptions, Link, PhotoPolicy, SyncOptions};

use super::{open, render};
use crate::errors::{Phase, Usage, client};

pub fn sync(
    store: &Path,
    json: bool,
    batch_bytes: Option<usize>,
    photos: &str,
    link: &str,
) -> Result<()> {
    let policy = PhotoPolicy::parse(photos).ok_or_else(|| {
        Usage(format!(
            "--photos 只能是 now（立即）、wifi-only（仅 Wi-Fi）或 never（暂不上传），不是“{photos}”"
        ))
    })?;
    let link = Link::parse(link).ok_or_else(|| {
        Usage(format!(
            "--link 只能是 wifi 或 cellular（移动网络），不是“{link}”"
        ))
    })?;
    let mut s = open(store)?;
    let mut opts = SyncOptions::default();
    if let Some(b) = batch_bytes {
        if b < 1024 {
            return Err(Usage("--batch-bytes 至少为 1024".into()).into());
        }
        opts.batch_limit_bytes = b;
    }
    let blob_opts = BlobOptions {
        policy,
        link,
        ..Default::default()
    };
    let mut lines = render::SyncProgress::default();
    let done = sanjin_client::sync_then_photos(&mut s, &opts, &blob_opts, &mut |p| {
        if let Some(line) = lines.line(p) {
            eprintln!("{line}");
        }
    })
    .map_err(|e| client(*e.error, Phase::Sync, None))?;
    let out = std::io::stdout();
    let mut out = out.lock();
    if json {
        use std::io::Write;
        writeln!(out, "{}", render::sync_json(&done, policy, link))?;
    } else {
        render::sync_text(&mut out, &done, policy)?;
    }
    Ok(())
}
