//! The automerge-sync fallback's state per document (schema 4, issue 11): what the client's
//! fallback keeps between requests, so an interrupted fallback resumes instead of starting over.

use rusqlite::params;

use crate::{Result, Store};

impl Store {
    /// Every document's kept sync state: (document id, encoded `automerge::sync::State`), by id.
    pub fn sync_states(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT doc_id, state FROM client_sync_state ORDER BY doc_id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Keeps these documents' sync states (replacing what was kept for them), all or none: a
    /// savepoint, which inside [`Store::batch`] joins the batch's transaction.
    pub fn put_sync_states(&mut self, states: &[(String, Vec<u8>)]) -> Result<()> {
        let tx = self.conn.savepoint()?;
        {
            let mut put = tx.prepare_cached(
                "INSERT INTO client_sync_state (doc_id, state) VALUES (?1, ?2)
                 ON CONFLICT(doc_id) DO UPDATE SET state = excluded.state",
            )?;
            for (id, state) in states {
                put.execute(params![id, state])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Forgets every document's sync state (the device moves to another server).
    pub fn forget_sync_states(&mut self) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM client_sync_state")?
            .execute([])?;
        Ok(())
    }
}
