-- Server schema 3 (issue 11): the staff console's passwords and sessions, which servers before
-- issue 11 created on first use (hence IF NOT EXISTS).
-- console_passwords.iterations 0: `hash` is an Argon2id PHC string and `salt` is empty; any
-- other value is the iteration count of a PBKDF2-HMAC-SHA256 hash (servers before issue 10).
-- Sessions keep only the SHA-256 of their cookie token.
CREATE TABLE IF NOT EXISTS console_passwords (
    member     TEXT PRIMARY KEY REFERENCES accounts(member),
    salt       BLOB NOT NULL,
    hash       BLOB NOT NULL,
    iterations INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS console_sessions (
    token_hash BLOB PRIMARY KEY,
    member     TEXT NOT NULL REFERENCES accounts(member),
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
