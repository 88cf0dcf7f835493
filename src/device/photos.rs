//! `sanjin device attach`, and the photos of a record as `show` lists them.

use std::path::Path;

use anyhow::Result;
use sanjin_store::Store;
use serde_json::{Value, json};

use super::{open, render};
use crate::errors::{Usage, attach_error};

/// `sanjin device attach`: the photo processed (thumbnail into the record, original queued), in
/// one store transaction.
pub fn attach(store: &Path, id: &str, photo: &Path, caption: &str, json: bool) -> Result<()> {
    let mut s = open(store)?;
    if !photo.is_file() {
        return Err(Usage(format!("找不到照片文件 {}，请检查路径", photo.display())).into());
    }
    let kind = s.load(id)?.kind();
    let a =
        sanjin_client::attach_photo(&mut s, id, sanjin_client::PhotoSource::Path(photo), caption)
            .map_err(|e| attach_error(e, photo, kind))?;
    if json {
        println!(
            "{}",
            json!({ "record": id, "photo": a.photo, "thumbnail_bytes": a.thumbnail_bytes })
        );
    } else {
        println!(
            "已为记录 {id} 添加照片 {}…（{}，缩略图 {}）；缩略图随下次同步上传，原图按设置上传",
            &a.photo.hash[..12],
            render::size_zh(a.photo.bytes),
            render::size_zh(a.thumbnail_bytes as u64)
        );
    }
    Ok(())
}

/// The photos of a record, for `show`: reference, thumbnail size, and whether the original
/// still waits in this device's blob outbox.
pub fn rows(s: &Store, doc: &sanjin_core::RecordDoc) -> Result<Vec<Value>> {
    let pending: Vec<String> = s.pending_blobs()?.into_iter().map(|b| b.hash).collect();
    Ok(doc
        .photos()?
        .into_iter()
        .map(|p| {
            let thumb = doc.thumbnail(&p.hash).map_or(0, |t| t.len());
            let waiting = pending.contains(&p.hash);
            let mut v = serde_json::to_value(&p).expect("a photo reference serializes");
            v["thumbnail_bytes"] = json!(thumb);
            v["original_pending"] = json!(waiting);
            v
        })
        .collect())
}
