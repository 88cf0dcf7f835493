-- sanjin device store, schema version 5 (issue 12): bundles and relaying without signal.
-- box_keys: the secrets of the groups' sealing keys this device may open bundles with (from the
-- server over its authenticated channel; never exported). key_directory and revocations: the
-- newest verified statement of each, as the server signed it (one row each). receipts: the
-- server's signed statements that it holds a record up to some heads, kept to pass on.
-- cargo: bundle parts sealed to the server only, carried opaque until the server has them.
-- relayed: records that arrived by bundle or phone to phone, at the heads they arrived with,
-- until a receipt covers them.
CREATE TABLE IF NOT EXISTS box_keys (
    group_id TEXT NOT NULL,
    epoch    INTEGER NOT NULL,
    secret   TEXT NOT NULL,
    PRIMARY KEY (group_id, epoch)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS key_directory (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    issued_at INTEGER NOT NULL,
    bytes     BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS revocations (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   INTEGER NOT NULL,
    bytes BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS receipts (
    doc_id TEXT PRIMARY KEY,
    heads  BLOB NOT NULL,
    at     INTEGER NOT NULL,
    bytes  BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS cargo (
    id          INTEGER PRIMARY KEY,
    hash        BLOB NOT NULL UNIQUE,
    bytes       BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    delivered   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS relayed (
    doc_id TEXT PRIMARY KEY,
    heads  BLOB NOT NULL
);
