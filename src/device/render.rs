//! What the device commands print beyond one line, in one place: the members' Chinese texts
//! and the `--json` shapes scripts read. Records and lists themselves are `crate::show`'s.

use std::io::Write;

use anyhow::Result;
use sanjin_client::{
    BlobProgress, FlowProgress, FlowSummary, Link, PhotoPolicy, Progress, RefusalCode,
};
use sanjin_core::domain::RecordKind;
use serde_json::{Value, json};

/// The line `show` puts above a record the server refused as it is now (issue 10): why, and on
/// which field (`code` and `field` as the store keeps them).
pub fn refusal(out: &mut impl Write, kind: RecordKind, code: &str, field: &str) -> Result<()> {
    let why = RefusalCode::parse(code).map_or("服务器拒收了这条记录", |c| c.zh());
    let field = sanjin_core::schema::field(kind, field)
        .map(|f| format!("（字段：{}）", f.zh))
        .unwrap_or_default();
    writeln!(
        out,
        "⚠ 服务器拒收了这条记录{field}：{why}。修改后再同步会重新提交；需要帮助时请把记录编号告诉机关工作人员。"
    )?;
    Ok(())
}

/// The photo lines of `show`: reference, caption, time, place, size, thumbnail, whether the
/// original still waits for the server.
pub fn photos(out: &mut impl Write, photos: &[Value]) -> Result<()> {
    if photos.is_empty() {
        return Ok(());
    }
    writeln!(out, "照片（{} 张）：", photos.len())?;
    for (i, p) in photos.iter().enumerate() {
        let hash = p["hash"].as_str().unwrap_or_default();
        let mut line = format!("  {}. {}…", i + 1, &hash[..hash.len().min(12)]);
        if let Some(c) = p["caption"].as_str() {
            line += &format!(" {c}");
        }
        if let Some(t) = p["taken_at"].as_str() {
            line += &format!("　拍摄于 {}", t.replace('T', " "));
        }
        if p["gps"].is_object() {
            line += &format!(
                "　位置 {:.5},{:.5}",
                p["gps"]["lat"].as_f64().unwrap_or(0.0),
                p["gps"]["lon"].as_f64().unwrap_or(0.0)
            );
        }
        if let (Some(w), Some(h)) = (p["width"].as_u64(), p["height"].as_u64()) {
            line += &format!("　{w}×{h}");
        }
        if let Some(b) = p["bytes"].as_u64() {
            line += &format!("　{}", size_zh(b));
        }
        match p["thumbnail_bytes"].as_u64() {
            Some(0) | None => line += "　无缩略图",
            Some(t) => line += &format!("　缩略图 {}", size_zh(t)),
        }
        if p["original_pending"].as_bool() == Some(true) {
            line += "　原图待上传";
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// A file size as members read it: KB below 1 MB, MB above.
pub fn size_zh(bytes: u64) -> String {
    if bytes < 1 << 20 {
        format!("{:.1} KB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MB", bytes as f64 / 1_048_576.0)
    }
}

/// `sync --json`: one object with the records' summary and, under `photos`, the originals'.
pub fn sync_json(done: &FlowSummary, policy: PhotoPolicy, link: Link) -> Value {
    let (sum, blobs) = (&done.records, &done.photos);
    let refused: Vec<Value> = sum
        .refused
        .iter()
        .map(|(id, code, reason)| {
            json!({ "id": id, "code": code.code(), "reason": reason, "reason_zh": code.zh() })
        })
        .collect();
    let unreadable: Vec<Value> = sum
        .unreadable
        .iter()
        .map(|(id, why)| json!({ "id": id, "reason": why }))
        .collect();
    json!({
        "sent": sum.sent,
        "received": sum.received,
        "conflicts": sum.conflicts,
        "refused": refused,
        "unreadable": unreadable,
        "still_queued": sum.still_queued,
        "round_trips": sum.round_trips,
        "bytes_up": sum.bytes_up,
        "bytes_down": sum.bytes_down,
        "resynced": sum.resynced,
        "cert_renewed": done.trust.cert_renewed,
        "photos": {
            "policy": policy,
            "link": link,
            "uploaded": blobs.uploaded,
            "already_on_server": blobs.already_on_server,
            "pending": blobs.pending,
            "held_by_policy": blobs.held_by_policy,
            "bytes_sent": blobs.bytes_sent,
            "failed": blobs.failed.iter().map(|(h, why)| json!({ "hash": h, "reason": why })).collect::<Vec<_>>(),
            "interrupted": blobs.interrupted,
        },
    })
}

/// `sync` for members: what went and came, what was refused and why, what waits, the photos.
pub fn sync_text(out: &mut impl Write, done: &FlowSummary, policy: PhotoPolicy) -> Result<()> {
    let (sum, blobs) = (&done.records, &done.photos);
    writeln!(
        out,
        "同步完成：已发送 {} 条、已接收 {} 条、冲突 {} 条、被拒绝 {} 条",
        sum.sent,
        sum.received,
        sum.conflicts,
        sum.refused.len()
    )?;
    for (id, code, _) in &sum.refused {
        writeln!(out, "  被拒绝：{id}（{}）", code.zh())?;
    }
    for (id, why) in &sum.unreadable {
        writeln!(out, "  无法读取、未上传：{id}（{why}）")?;
    }
    if sum.conflicts > 0 {
        writeln!(
            out,
            "  有冲突待裁定的记录可用 sanjin device list --conflicts 查看"
        )?;
    }
    if !sum.refused.is_empty() {
        writeln!(
            out,
            "  被拒绝的记录仍保存在本机，不会丢失；如有疑问请联系组长或管理员"
        )?;
    }
    let waiting = sum.still_queued.saturating_sub(sum.refused.len());
    if waiting > 0 {
        writeln!(out, "  仍有 {waiting} 条记录待上传，下次同步时继续")?;
    }
    // Issue 12: what the trust refresh after the records did, when there is something to say.
    if done.trust.receipts > 0 {
        writeln!(
            out,
            "  经他人转交的 {} 条记录已确认送达服务器",
            done.trust.receipts
        )?;
    }
    if done.trust.cargo_delivered + done.trust.cargo_refused > 0 {
        writeln!(
            out,
            "  已把代其他小组携带的 {} 个数据包交给服务器",
            done.trust.cargo_delivered + done.trust.cargo_refused
        )?;
    }
    if done.trust_error.is_some() {
        writeln!(
            out,
            "  未能更新离线传递所需的密钥和送达回执，下次同步时再试；记录已同步，不受影响"
        )?;
    }
    // Issue 13: the member was moved to another group (or its role changed).
    if done.trust.cert_renewed {
        writeln!(
            out,
            "  服务器已为本机重新签发证书（您的活动组或角色有变动），今后按新的活动组记录和同步；原组的记录仍记在您的名下"
        )?;
    }
    if blobs.uploaded + blobs.already_on_server + blobs.pending > 0 || !blobs.failed.is_empty() {
        writeln!(
            out,
            "照片原图：已上传 {} 张、服务器已有 {} 张、待上传 {} 张",
            blobs.uploaded, blobs.already_on_server, blobs.pending
        )?;
    }
    if blobs.held_by_policy {
        writeln!(
            out,
            "  按设置（--photos {}）当前网络下暂不上传原图；缩略图已随记录同步",
            match policy {
                PhotoPolicy::Now => "now",
                PhotoPolicy::WifiOnly => "wifi-only",
                PhotoPolicy::Never => "never",
            }
        )?;
    }
    if blobs.interrupted.is_some() {
        writeln!(out, "  网络中断，原图下次同步时从中断处继续上传，不会重复")?;
    }
    for (hash, _) in &blobs.failed {
        writeln!(
            out,
            "  原图 {}… 未能上传（本机副本与其内容编号不符或服务器拒绝），仍保存在本机",
            &hash[..hash.len().min(12)]
        )?;
    }
    Ok(())
}

/// The progress lines `sync` writes to standard error while it runs, one at a time: the
/// records' steps, then each original once it is wholly on the server.
#[derive(Default)]
pub struct SyncProgress {
    /// Originals already announced as uploaded (a blob's last chunk is reported once).
    photos_shown: usize,
}

impl SyncProgress {
    /// The line for `p`, if it deserves one.
    pub fn line(&mut self, p: FlowProgress) -> Option<String> {
        match p {
            FlowProgress::Records(p) => match p {
                Progress::Pushing { total: 0, .. } => None,
                Progress::Pushing { done, total } => Some(format!("上传 {done}/{total}")),
                Progress::Answered { documents: 0 } => None,
                Progress::Answered { documents } => {
                    Some(format!("收到 {documents} 条记录的变更，正在保存…"))
                }
                Progress::Pulling { received } => Some(format!("接收 {received} 条")),
                Progress::Resync { docs, pending } => Some(format!(
                    "服务器需要重新核对全部 {docs} 条记录，待核对 {pending} 条…"
                )),
                Progress::Retrying { attempt, of, wait } => Some(format!(
                    "网络中断，{:.1} 秒后第 {attempt}/{of} 次重试…",
                    wait.as_secs_f64()
                )),
            },
            FlowProgress::Photos(p) => match p {
                BlobProgress::Uploading {
                    index,
                    total,
                    sent,
                    size,
                } if sent == size && index + 1 > self.photos_shown => {
                    self.photos_shown = index + 1;
                    Some(format!("原图 {}/{total} 已上传", index + 1))
                }
                BlobProgress::Uploading { .. } => None,
                BlobProgress::Retrying { attempt, wait } => Some(format!(
                    "网络中断，{:.1} 秒后第 {attempt} 次重试上传原图（从中断处继续）…",
                    wait.as_secs_f64()
                )),
            },
        }
    }
}

/// `merge-from` for members: counts, then each new conflict and each record skipped.
pub fn merge_report(out: &mut impl Write, report: &sanjin_store::MergeReport) -> Result<()> {
    writeln!(
        out,
        "合并完成：新增 {} 条，更新 {} 条，无变化 {} 条，新出现冲突 {} 条",
        report.added,
        report.updated,
        report.unchanged,
        report.new_conflicts.len()
    )?;
    for id in &report.new_conflicts {
        writeln!(out, "  有冲突待裁定：{id}（sanjin device show {id}）")?;
    }
    for (id, why) in &report.skipped {
        writeln!(out, "  未能读取、已跳过：{id}（{why}）")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Issue 11: the progress lines moved here unchanged: nothing for an empty push or answer,
    /// each original announced once when it is whole, retries with their wait.
    #[test]
    fn issue11_sync_progress_lines_are_the_ones_members_read() {
        let mut lines = SyncProgress::default();
        let mut said = |p| lines.line(p);
        let records = |p| FlowProgress::Records(p);
        let photo = |index, sent| {
            FlowProgress::Photos(BlobProgress::Uploading {
                index,
                total: 2,
                sent,
                size: 10,
            })
        };
        assert_eq!(said(records(Progress::Pushing { done: 0, total: 0 })), None);
        assert_eq!(
            said(records(Progress::Pushing { done: 1, total: 3 })).as_deref(),
            Some("上传 1/3")
        );
        assert_eq!(said(records(Progress::Answered { documents: 0 })), None);
        assert_eq!(
            said(records(Progress::Answered { documents: 4 })).as_deref(),
            Some("收到 4 条记录的变更，正在保存…")
        );
        assert_eq!(
            said(records(Progress::Pulling { received: 4 })).as_deref(),
            Some("接收 4 条")
        );
        assert_eq!(
            said(records(Progress::Resync {
                docs: 9,
                pending: 2
            }))
            .as_deref(),
            Some("服务器需要重新核对全部 9 条记录，待核对 2 条…")
        );
        assert_eq!(
            said(records(Progress::Retrying {
                attempt: 1,
                of: 3,
                wait: Duration::from_millis(500)
            }))
            .as_deref(),
            Some("网络中断，0.5 秒后第 1/3 次重试…")
        );
        assert_eq!(said(photo(0, 4)), None);
        assert_eq!(said(photo(0, 10)).as_deref(), Some("原图 1/2 已上传"));
        assert_eq!(said(photo(0, 10)), None, "announced once");
        assert_eq!(
            said(FlowProgress::Photos(BlobProgress::Retrying {
                attempt: 2,
                wait: Duration::from_secs(1)
            }))
            .as_deref(),
            Some("网络中断，1.0 秒后第 2 次重试上传原图（从中断处继续）…")
        );
        assert_eq!(said(photo(1, 10)).as_deref(), Some("原图 2/2 已上传"));
    }

    /// Issue 11: `sync --json` keeps its shape: the records' figures at the top, the originals'
    /// under `photos`.
    #[test]
    fn issue11_sync_json_keeps_its_shape() {
        let mut done = FlowSummary::default();
        done.records
            .refused
            .push(("r1".into(), RefusalCode::Forbidden, "not your group".into()));
        done.photos.failed.push(("ab".into(), "damaged".into()));
        let v = sync_json(&done, PhotoPolicy::WifiOnly, Link::Cellular);
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            keys(&v),
            [
                "bytes_down",
                "bytes_up",
                // Issue 13: a certificate re-issued after the member moved.
                "cert_renewed",
                "conflicts",
                "photos",
                "received",
                "refused",
                "resynced",
                "round_trips",
                "sent",
                "still_queued",
                "unreadable"
            ]
        );
        assert_eq!(
            keys(&v["photos"]),
            [
                "already_on_server",
                "bytes_sent",
                "failed",
                "held_by_policy",
                "interrupted",
                "link",
                "pending",
                "policy",
                "uploaded"
            ]
        );
        assert_eq!(v["photos"]["policy"], "wifi-only");
        assert_eq!(v["photos"]["link"], "cellular");
        assert_eq!(
            v["refused"][0],
            json!({ "id": "r1", "code": "forbidden", "reason": "not your group", "reason_zh": RefusalCode::Forbidden.zh() })
        );
        assert_eq!(
            v["photos"]["failed"][0],
            json!({ "hash": "ab", "reason": "damaged" })
        );
    }

    /// Issue 12: after the records, `sync` says when relayed records were confirmed delivered,
    /// when cargo was handed on, and when the keys could not be refreshed; nothing otherwise.
    #[test]
    fn issue12_sync_text_tells_of_receipts_cargo_and_a_failed_refresh() {
        let text = |done: &FlowSummary| {
            let mut out = Vec::new();
            sync_text(&mut out, done, PhotoPolicy::Now).unwrap();
            String::from_utf8(out).unwrap()
        };
        let quiet = text(&FlowSummary::default());
        assert!(
            !quiet.contains("转交") && !quiet.contains("密钥"),
            "{quiet}"
        );
        let mut done = FlowSummary::default();
        done.trust.receipts = 2;
        done.trust.cargo_delivered = 1;
        let said = text(&done);
        assert!(
            said.contains("经他人转交的 2 条记录已确认送达服务器"),
            "{said}"
        );
        assert!(
            said.contains("已把代其他小组携带的 1 个数据包交给服务器"),
            "{said}"
        );
        done.trust_error = Some("network: connection failed".into());
        let said = text(&done);
        assert!(
            said.contains("未能更新离线传递所需的密钥和送达回执，下次同步时再试"),
            "{said}"
        );
        assert!(!said.contains("network"), "no English for members: {said}");
    }
}
