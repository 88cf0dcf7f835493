//! Bulk import of field records (visits, opinion notes, households, plan items) into the server:
//! migrations from the office's old ledgers, the demo and the benchmarks.
//!
//! One transaction for the documents and their index rows (`Store::insert_batch`, one disk sync
//! for the whole batch), then one for their change-log entries, so devices receive the records on
//! their next sync. Re-running an import is harmless: documents merge, and a change-log entry is
//! written only for heads the log does not hold yet (which also repairs an import that stopped
//! between the two transactions).

use sanjin_core::RecordDoc;
use sanjin_core::import::ImportRecord;

use crate::data::{ServerData, append_log};
use crate::error::{Error, Result};

/// What a bulk import did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BulkReport {
    pub records: usize,
    pub logged: usize,
}

impl ServerData {
    /// Imports field records as the fixtures describe them (author, time, workflow events), each
    /// made into its document by [`ImportRecord::to_doc`]. Directory entries are refused: they
    /// come with [`ServerData::import_directory`], which also makes the accounts.
    pub fn import_records(&mut self, records: &[ImportRecord]) -> Result<BulkReport> {
        let mut docs = Vec::with_capacity(records.len());
        for r in records {
            if r.data.kind().is_directory() {
                return Err(Error::Invalid(format!(
                    "{} is a directory entry ({}); import it with import-directory",
                    r.id,
                    r.data.kind().code()
                )));
            }
            docs.push(r.to_doc()?);
        }
        self.import_docs(&mut docs)
    }

    /// Imports ready-made documents (see [`ServerData::import_records`]).
    pub fn import_docs(&mut self, docs: &mut [RecordDoc]) -> Result<BulkReport> {
        let entries = self.store.insert_batch(docs, false)?;
        let by_id: std::collections::HashMap<&str, &sanjin_core::IndexEntry> =
            entries.iter().map(|e| (e.id.as_str(), e)).collect();
        let mut report = BulkReport {
            records: docs.len(),
            logged: 0,
        };
        // What the store holds now (a merge may have added to what was imported): its snapshot
        // when it has no chunks, else the whole document saved afresh.
        let mut pending = Vec::new();
        {
            let conn = self.store.connection();
            let mut stmt = conn.prepare_cached(
                "SELECT snapshot, heads, chunk_count, EXISTS(SELECT 1 FROM change_log l WHERE l.doc_id = d.id AND l.heads = d.heads) FROM docs d WHERE id = ?1",
            )?;
            for doc in docs.iter() {
                let (snapshot, heads, chunks, logged): (Vec<u8>, Vec<u8>, i64, bool) = stmt
                    .query_row([doc.id()], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })?;
                if !logged {
                    pending.push((doc.id().to_string(), snapshot, heads, chunks));
                }
            }
        }
        let mut rows = Vec::with_capacity(pending.len());
        // The server signs what it imports (issue 10): one signature per scope, so a device's
        // pull names each covered change by its position. Logged as raw changes for that.
        let mut by_scope: std::collections::BTreeMap<Option<String>, Vec<sanjin_core::ChangeHash>> =
            std::collections::BTreeMap::new();
        for (id, _snapshot, heads, _chunks) in pending {
            let bytes = self.store.load(&id)?.save_after(&[]);
            if let Some(entry) = by_id.get(id.as_str()) {
                let scope = crate::data::scope_of(
                    sanjin_core::domain::RecordKind::parse(&entry.kind)
                        .expect("index entries carry a known kind"),
                    entry.group.as_deref(),
                );
                by_scope
                    .entry(scope)
                    .or_default()
                    .extend(crate::trust::change_hashes(&bytes));
            }
            rows.push((id, bytes, sanjin_store::heads_from_bytes(&heads)));
        }
        let tx = self.store.connection_mut().transaction()?;
        for (id, bytes, heads) in &rows {
            let Some(entry) = by_id.get(id.as_str()) else {
                continue;
            };
            append_log(&tx, entry, None, bytes, heads)?;
            report.logged += 1;
        }
        tx.commit()?;
        for hashes in by_scope.into_values() {
            self.sign_own(hashes)?;
        }
        Ok(report)
    }
}
