-- Server schema 4 (issue 11): who uploaded which photo original (proof of possession, issue 10),
-- which servers before issue 11 created on first use (hence IF NOT EXISTS). The server vouches
-- for originals already on its disk once when the table is new (`blob_uploads_new` in
-- server_meta, set by the migration, cleared by the server when it has vouched).
CREATE TABLE IF NOT EXISTS blob_uploads (
    hash      BLOB NOT NULL,    -- the blob's SHA-256 (32 bytes)
    device_id TEXT NOT NULL,    -- the device that sent all of its bytes ('server': an operator's import)
    scope     TEXT NOT NULL,    -- the uploader's activity group then; '' for office accounts
    at        INTEGER NOT NULL, -- first upload by this device in this scope (ms)
    PRIMARY KEY (hash, scope, device_id)
) WITHOUT ROWID;
