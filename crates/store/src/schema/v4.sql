-- sanjin device store, schema version 4 (issue 11): the automerge-sync fallback's state per
-- document (`Store::sync_states`), kept so an interrupted fallback resumes from the heads both
-- sides were known to share. Emptied when the device enrolls with another server. IF NOT EXISTS:
-- stores of earlier builds had the client create it outside the migrations.
CREATE TABLE IF NOT EXISTS client_sync_state (
    doc_id TEXT PRIMARY KEY,
    state  BLOB NOT NULL
) WITHOUT ROWID;
