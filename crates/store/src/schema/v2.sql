-- sanjin device store, schema version 2 (issue 4): the blob outbox.
-- Originals of attached photos wait here, by content address, until the server holds them.
-- The record's document (with the photo's reference and thumbnail) and this row are written in
-- one transaction. IF NOT EXISTS: re-running the step on a store that has it changes nothing.
CREATE TABLE IF NOT EXISTS blob_outbox (
    hash      TEXT PRIMARY KEY,
    record_id TEXT NOT NULL,
    mime      TEXT NOT NULL,
    size      INTEGER NOT NULL,
    bytes     BLOB NOT NULL,
    queued_at INTEGER NOT NULL,
    attempts  INTEGER NOT NULL DEFAULT 0
);
