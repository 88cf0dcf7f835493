//! Console sign-in: passwords (PBKDF2-HMAC-SHA256, salted) and sessions (a random token in an
//! HttpOnly, SameSite=Strict, Secure cookie; only its SHA-256 is stored), each session with its
//! own CSRF token that every form posts back.
//!
//! The tables live in the server's database and are created on first use.

use std::num::NonZeroU32;

use rusqlite::{OptionalExtension, params};
use sanjin_store::now_ms;

use crate::data::{ServerData, random, sha256};
use crate::error::{Error, Result};
use crate::model::{Account, Role};

const PBKDF2_ITERATIONS: u32 = 100_000;
/// How long a session lasts without signing in again.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// The session cookie's name.
pub const COOKIE: &str = "sanjin_console";

const TABLES: &str = "
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
";

fn tables(data: &ServerData) -> Result<()> {
    data.conn().execute_batch(TABLES)?;
    Ok(())
}

/// Whether an account may use the console: staff, admins and group leaders.
pub fn may_sign_in(a: &Account) -> bool {
    matches!(a.role, Role::Staff | Role::Admin | Role::Leader)
}

fn derive(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(iterations).expect("iterations > 0"),
        salt,
        password.as_bytes(),
        &mut out,
    );
    out
}

/// Sets an account's console password (staff, admins and leaders only).
pub fn set_password(data: &mut ServerData, member: &str, password: &str) -> Result<()> {
    let account = data
        .account(member)?
        .ok_or_else(|| Error::UnknownAccount(member.into()))?;
    if !may_sign_in(&account) {
        return Err(Error::Invalid(format!(
            "{member} is a member; the console is for staff, admins and group leaders"
        )));
    }
    if password.chars().count() < 8 {
        return Err(Error::Invalid(
            "a password has at least 8 characters".into(),
        ));
    }
    tables(data)?;
    let salt = random::<16>();
    let hash = derive(password, &salt, PBKDF2_ITERATIONS);
    data.conn().execute(
        "INSERT INTO console_passwords (member, salt, hash, iterations, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(member) DO UPDATE SET salt = excluded.salt, hash = excluded.hash,
             iterations = excluded.iterations, updated_at = excluded.updated_at",
        params![member, salt.to_vec(), hash.to_vec(), PBKDF2_ITERATIONS, now_ms()],
    )?;
    // A new password ends every session of the account.
    data.conn()
        .execute("DELETE FROM console_sessions WHERE member = ?1", [member])?;
    Ok(())
}

/// A signed-in session.
#[derive(Debug, Clone)]
pub struct Session {
    pub account: Account,
    pub csrf: String,
}

/// Checks a password; on success opens a session and returns its cookie token.
pub fn sign_in(data: &mut ServerData, member: &str, password: &str) -> Result<Option<String>> {
    tables(data)?;
    let row: Option<(Vec<u8>, Vec<u8>, u32)> = data
        .conn()
        .prepare_cached("SELECT salt, hash, iterations FROM console_passwords WHERE member = ?1")?
        .query_row([member], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let account = data.account(member)?;
    let (Some((salt, hash, iterations)), Some(account)) = (row, account) else {
        // Same work for an unknown account as for a wrong password.
        let _ = derive(password, b"sanjin-no-account", PBKDF2_ITERATIONS);
        return Ok(None);
    };
    let ok = ring::pbkdf2::verify(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(iterations.max(1)).expect("iterations > 0"),
        &salt,
        password.as_bytes(),
        &hash,
    )
    .is_ok();
    if !ok || !may_sign_in(&account) {
        return Ok(None);
    }
    let token = hex::encode(random::<32>());
    let csrf = hex::encode(random::<16>());
    let now = now_ms();
    let conn = data.conn();
    conn.execute("DELETE FROM console_sessions WHERE expires_at < ?1", [now])?;
    conn.execute(
        "INSERT INTO console_sessions (token_hash, member, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![sha256(&[token.as_bytes()]), member, csrf, now, now + SESSION_TTL_MS],
    )?;
    Ok(Some(token))
}

/// The session of a cookie token, if it is valid.
pub fn session(data: &ServerData, token: &str) -> Result<Option<Session>> {
    tables(data)?;
    let row: Option<(String, String, i64)> = data
        .conn()
        .prepare_cached(
            "SELECT member, csrf, expires_at FROM console_sessions WHERE token_hash = ?1",
        )?
        .query_row([sha256(&[token.as_bytes()])], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let Some((member, csrf, expires)) = row else {
        return Ok(None);
    };
    if expires < now_ms() {
        return Ok(None);
    }
    let Some(account) = data.account(&member)? else {
        return Ok(None);
    };
    if !may_sign_in(&account) {
        return Ok(None);
    }
    Ok(Some(Session { account, csrf }))
}

/// Ends a session.
pub fn sign_out(data: &ServerData, token: &str) -> Result<()> {
    tables(data)?;
    data.conn().execute(
        "DELETE FROM console_sessions WHERE token_hash = ?1",
        [sha256(&[token.as_bytes()])],
    )?;
    Ok(())
}
