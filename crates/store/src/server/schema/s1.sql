-- sanjin sync server tables, server schema version 1.
--
-- They live in the same SQLite file as the server's record store (the device store's tables:
-- docs, index tables), which owns PRAGMA user_version; this schema's version is kept in
-- server_meta('schema_version'), together with the server epoch. Each step is applied once, in
-- one transaction, by sanjin_store::server::SqliteServerStorage.

CREATE TABLE IF NOT EXISTS server_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Who may do what. Members and leaders belong to one activity group; staff and admins to none.
CREATE TABLE accounts (
    member     TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('member', 'leader', 'staff', 'admin')),
    group_id   TEXT,
    name       TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
);
CREATE INDEX accounts_group ON accounts(group_id);

-- Enrolled devices. The secret is kept only as its SHA-256; the actor (hex) signs the device's
-- automerge changes and belongs to one device forever (also after it is revoked).
CREATE TABLE devices (
    device_id    TEXT PRIMARY KEY,
    member       TEXT NOT NULL REFERENCES accounts(member),
    secret_hash  BLOB NOT NULL,
    actor        TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    enrolled_at  INTEGER NOT NULL,
    revoked_at   INTEGER,
    last_sync_at INTEGER
);
CREATE INDEX devices_member ON devices(member);

-- One-time enrollment codes, kept only as their SHA-256.
CREATE TABLE enrollment_codes (
    code_hash  BLOB PRIMARY KEY,
    member     TEXT NOT NULL REFERENCES accounts(member),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    device_id  TEXT
);

-- Every accepted document change, in order. scope: the document's activity group, NULL for the
-- directory (read by everyone). origin: the device that pushed it (NULL for admin imports).
-- bytes: automerge changes (incremental format) or a whole saved document; heads: the document's
-- heads after it (concatenated 32-byte hashes).
CREATE TABLE change_log (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL,
    scope  TEXT,
    origin TEXT,
    bytes  BLOB NOT NULL,
    heads  BLOB NOT NULL,
    at     INTEGER NOT NULL
);
CREATE INDEX change_log_scope ON change_log(scope, seq);
CREATE INDEX change_log_doc ON change_log(doc_id, seq);

-- The encoded answer to each (device, request id), so a retried request is answered the same
-- without writing twice. Kept 24 hours, and only the latest few per device.
CREATE TABLE idempotency (
    device_id  TEXT NOT NULL,
    request_id BLOB NOT NULL,
    response   BLOB NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (device_id, request_id)
);
CREATE INDEX idempotency_at ON idempotency(at);

-- The automerge sync::State (encoded) of the fallback protocol, per device and document.
CREATE TABLE sync_states (
    device_id  TEXT NOT NULL,
    doc_id     TEXT NOT NULL,
    state      BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, doc_id)
) WITHOUT ROWID;
