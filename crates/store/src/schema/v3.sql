-- sanjin device store, schema version 3 (issue 10): signatures beside the changes.
-- sigs: one Ed25519 signature by one device over a set of change hashes (sorted, 32 bytes each,
-- concatenated); kind 0 = exactly these changes, 1 = these heads and everything before them
-- (the server's vouching for history from before signatures). change_sigs: which signatures
-- cover which change. certs: device certificates (signed by the server) of signers seen.
-- refused: records the server refused, at the heads it refused them, so they are not pushed
-- again until they change; the reason is shown to the member.
CREATE TABLE IF NOT EXISTS sigs (
    id        INTEGER PRIMARY KEY,
    signer    TEXT NOT NULL,
    kind      INTEGER NOT NULL,
    signature BLOB NOT NULL UNIQUE,
    hashes    BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS change_sigs (
    hash   BLOB NOT NULL,
    sig_id INTEGER NOT NULL REFERENCES sigs(id),
    PRIMARY KEY (hash, sig_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS certs (
    device TEXT PRIMARY KEY,
    cert   BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS refused (
    doc_id TEXT PRIMARY KEY,
    heads  BLOB NOT NULL,
    code   TEXT NOT NULL,
    field  TEXT NOT NULL,
    reason TEXT NOT NULL,
    at     INTEGER NOT NULL
);
