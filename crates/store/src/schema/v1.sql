-- sanjin device store, schema version 1.
-- Documents: a compact snapshot plus incremental chunks, compacted from time to time.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE docs (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    snapshot    BLOB NOT NULL,
    -- The document's heads after the last save: concatenated 32-byte change hashes.
    heads       BLOB NOT NULL,
    chunk_count INTEGER NOT NULL DEFAULT 0,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE doc_chunks (
    doc_id TEXT NOT NULL REFERENCES docs(id),
    seq    INTEGER NOT NULL,
    bytes  BLOB NOT NULL,
    PRIMARY KEY (doc_id, seq)
);

-- Documents with changes the server has not acknowledged: what it has acknowledged so far.
CREATE TABLE outbox (
    doc_id      TEXT PRIMARY KEY REFERENCES docs(id),
    acked_heads BLOB NOT NULL,
    queued_at   INTEGER NOT NULL
);

-- One index table per record kind, all of the same row shape (sanjin_core::IndexEntry), so one
-- query builder serves every list.
CREATE TABLE idx_visit (
    id TEXT PRIMARY KEY, date TEXT, start TEXT, "end" TEXT, group_id TEXT, contact_point TEXT,
    type_code TEXT, target_kind TEXT, urgency TEXT, created_by TEXT NOT NULL, status TEXT NOT NULL,
    deleted INTEGER NOT NULL, conflicts INTEGER NOT NULL, title TEXT NOT NULL
);
CREATE INDEX idx_visit_group_date ON idx_visit(group_id, date);
CREATE INDEX idx_visit_date ON idx_visit(date);
CREATE INDEX idx_visit_contact_point ON idx_visit(contact_point, date);

CREATE TABLE idx_opinion AS SELECT * FROM idx_visit WHERE 0;
CREATE UNIQUE INDEX idx_opinion_id ON idx_opinion(id);
CREATE INDEX idx_opinion_group_date ON idx_opinion(group_id, date);
CREATE INDEX idx_opinion_date ON idx_opinion(date);

CREATE TABLE idx_household AS SELECT * FROM idx_visit WHERE 0;
CREATE UNIQUE INDEX idx_household_id ON idx_household(id);
CREATE INDEX idx_household_group ON idx_household(group_id);

CREATE TABLE idx_plan AS SELECT * FROM idx_visit WHERE 0;
CREATE UNIQUE INDEX idx_plan_id ON idx_plan(id);
CREATE INDEX idx_plan_group_date ON idx_plan(group_id, date);

CREATE TABLE idx_directory AS SELECT * FROM idx_visit WHERE 0;
ALTER TABLE idx_directory ADD COLUMN kind TEXT;
CREATE UNIQUE INDEX idx_directory_id ON idx_directory(id);
CREATE INDEX idx_directory_kind ON idx_directory(kind, title);

-- Who a record is about (participants, paired members, a plan's owner), for "member" filters.
CREATE TABLE record_members (
    member    TEXT NOT NULL,
    record_id TEXT NOT NULL,
    PRIMARY KEY (member, record_id)
) WITHOUT ROWID;
CREATE INDEX record_members_record ON record_members(record_id);
