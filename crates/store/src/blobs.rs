//! The blob outbox (issue 4): originals of attached photos waiting for the server.
//!
//! A photo is attached in one transaction: the record's new change (the photo's reference and
//! its thumbnail, see `RecordDoc::attach_photo`), its index row, its entry in the document outbox
//! and the original's row here. The original leaves only when the server confirms it holds the
//! blob (`blob_uploaded`), so an interrupted upload never loses it. Rows are keyed by content
//! address: the same photo queued twice is stored once.

use rusqlite::{OptionalExtension, params};
use sanjin_core::IndexEntry;
use sanjin_core::domain::PhotoRef;

use crate::{Result, Store, now_ms};

/// An original waiting in the blob outbox (without its bytes).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PendingBlob {
    /// Hex SHA-256 of the bytes: the blob's content address.
    pub hash: String,
    /// The record it was first attached to.
    pub record_id: String,
    pub mime: String,
    pub size: u64,
    pub queued_at: i64,
    /// Upload attempts that did not finish.
    pub attempts: u32,
}

impl Store {
    /// Attaches a photo to a record: the reference and thumbnail go into the record's document,
    /// the original into the blob outbox, in one transaction. The caller has computed `photo`
    /// (hash, size, EXIF) and `thumbnail` from `original` (`sanjin-media`); the store does not
    /// decode images. Attaching a photo the record has already changes nothing but the trace.
    pub fn attach_photo(
        &mut self,
        record_id: &str,
        photo: &PhotoRef,
        thumbnail: &[u8],
        original: &[u8],
    ) -> Result<IndexEntry> {
        let mut doc = self.load(record_id)?;
        let before = doc.heads();
        let author = self.author();
        doc.attach_photo(&author, now_ms(), photo, thumbnail)?;
        let hash = photo.hash.to_ascii_lowercase();
        let mime = photo.mime.clone();
        self.save_changes_with(&mut doc, &before, true, |tx, _| {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO blob_outbox (hash, record_id, mime, size, bytes, queued_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                hash,
                record_id,
                mime,
                original.len() as i64,
                original,
                now_ms()
            ])?;
            Ok(())
        })
    }

    /// Originals waiting for the server, oldest first.
    pub fn pending_blobs(&self) -> Result<Vec<PendingBlob>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT hash, record_id, mime, size, queued_at, attempts FROM blob_outbox
             ORDER BY queued_at, hash",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(PendingBlob {
                hash: r.get(0)?,
                record_id: r.get(1)?,
                mime: r.get(2)?,
                size: r.get::<_, i64>(3)? as u64,
                queued_at: r.get(4)?,
                attempts: r.get::<_, i64>(5)? as u32,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The bytes of a waiting original.
    pub fn pending_blob_bytes(&self, hash: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn
            .prepare_cached("SELECT bytes FROM blob_outbox WHERE hash = ?1")?
            .query_row([hash.to_ascii_lowercase()], |r| r.get(0))
            .optional()?)
    }

    /// The server holds the blob: it leaves the outbox. Returns whether it was there.
    pub fn blob_uploaded(&mut self, hash: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM blob_outbox WHERE hash = ?1")?
            .execute([hash.to_ascii_lowercase()])?
            > 0)
    }

    /// Counts an upload attempt that did not finish (for status displays).
    pub fn blob_attempt_failed(&mut self, hash: &str) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE blob_outbox SET attempts = attempts + 1 WHERE hash = ?1")?
            .execute([hash.to_ascii_lowercase()])?;
        Ok(())
    }
}
