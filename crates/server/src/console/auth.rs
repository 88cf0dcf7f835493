//! Console sign-in: passwords (Argon2id; PBKDF2-HMAC-SHA256 hashes of older servers are still
//! verified and replaced by Argon2id at the account's next successful sign-in) and sessions (a
//! random token in an HttpOnly, SameSite=Strict, Secure cookie; only its SHA-256 is stored), each
//! session with its own CSRF token that every form posts back.
//!
//! Issue 10: a password is hashed outside the data lock, by at most [`SignInGuard`]'s few
//! hashing slots, and only for an attempt the throttle lets through: per (account, address),
//! 5 failures lock that pair for 15 minutes, each further lockout twice as long (at most a day);
//! per address, 50 failures over any accounts lock the address the same way. A throttled attempt
//! is answered 429 before anything is looked up or hashed. A lockout is local to the address, so
//! nobody can lock staff out from elsewhere.
//!
//! The passwords and sessions are kept by the server's storage (`console_passwords`,
//! `console_sessions`: server schema 3).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use sanjin_store::now_ms;
use sanjin_store::server::{StoredPassword, StoredSession};

use crate::data::{ServerData, random, sha256};
use crate::error::{Error, Result};
use crate::model::{Account, Role};

/// `StoredPassword::iterations` of an Argon2id password: its `hash` is the PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$…`, parameters and salt included) and `salt` is empty.
/// Any other value is the iteration count of a PBKDF2-HMAC-SHA256 hash (servers before
/// issue 10), upgraded at the next successful sign-in.
const ARGON2_ROW: u32 = 0;
/// How long a session lasts without signing in again.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// The session cookie's name.
pub const COOKIE: &str = "sanjin_console";

/// Failures of one account from one address before that pair is locked.
pub const ACCOUNT_FAILURES: u32 = 5;
/// Failures from one address, over any accounts, before the address is locked.
pub const ADDRESS_FAILURES: u32 = 50;
/// The first lockout; each further one doubles, up to [`MAX_LOCKOUT`].
pub const LOCKOUT: Duration = Duration::from_secs(15 * 60);
pub const MAX_LOCKOUT: Duration = Duration::from_secs(24 * 3600);
/// Strikes are forgotten after this long without a failure.
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Above this many remembered (account, address) pairs, old unlocked ones are dropped.
const MAX_TRACKED: usize = 100_000;
/// Sign-ins waiting for a hashing slot beyond which new ones are answered 429 at once.
const MAX_WAITING: usize = 32;
/// The most password hashes started per second, whatever the number of slots: an Argon2id
/// hash takes about 25 ms of a core, so a flood of wrong passwords from many addresses costs
/// the server at most half a core, and the syncs keep the rest.
pub const MAX_HASHES_PER_S: u32 = 20;

/// Whether an account may use the console: staff, admins and group leaders.
pub fn may_sign_in(a: &Account) -> bool {
    matches!(a.role, Role::Staff | Role::Admin | Role::Leader)
}

/// A password as stored.
#[derive(Clone)]
pub(crate) enum Stored {
    /// An Argon2id PHC string.
    Argon2(String),
    /// PBKDF2-HMAC-SHA256 of a server before issue 10.
    Pbkdf2 {
        salt: Vec<u8>,
        hash: Vec<u8>,
        iterations: u32,
    },
}

impl Stored {
    pub(crate) fn is_legacy(&self) -> bool {
        matches!(self, Stored::Pbkdf2 { .. })
    }
}

/// An Argon2id hash of `password` (OWASP's parameters: 19 MiB, 2 passes, 1 lane), as a PHC
/// string.
pub(crate) fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&random::<16>())
        .map_err(|e| Error::Invalid(format!("a salt cannot be encoded: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Invalid(format!("the password cannot be hashed: {e}")))
}

/// Checks `password` against `stored`; without a stored password, does the same work against a
/// fixed hash (an unknown account costs what a known one does) and fails.
pub(crate) fn verify(stored: Option<&Stored>, password: &str) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    match stored {
        Some(Stored::Argon2(phc)) => PasswordHash::new(phc).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        }),
        Some(Stored::Pbkdf2 {
            salt,
            hash,
            iterations,
        }) => ring::pbkdf2::verify(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            NonZeroU32::new((*iterations).max(1)).expect("iterations > 0"),
            salt,
            password.as_bytes(),
            hash,
        )
        .is_ok(),
        None => {
            let dummy = DUMMY
                .get_or_init(|| hash_password(&hex::encode(random::<16>())).unwrap_or_default());
            let _ = PasswordHash::new(dummy)
                .map(|h| Argon2::default().verify_password(password.as_bytes(), &h));
            false
        }
    }
}

/// What the database says about an account trying to sign in.
pub(crate) struct Lookup {
    /// The account, if it exists (whatever its role).
    pub account: Option<Account>,
    /// Its password, if it has one and may use the console.
    pub stored: Option<Stored>,
}

/// Reads an account and its stored password (a quick query; the hashing happens elsewhere).
pub(crate) fn lookup(data: &ServerData, member: &str) -> Result<Lookup> {
    let account = data.account(member)?;
    let row = data.store().password(member)?;
    let stored = match (&account, row) {
        (
            Some(a),
            Some(StoredPassword {
                salt,
                hash,
                iterations,
            }),
        ) if may_sign_in(a) => Some(if iterations == ARGON2_ROW {
            Stored::Argon2(String::from_utf8_lossy(&hash).into_owned())
        } else {
            Stored::Pbkdf2 {
                salt,
                hash,
                iterations,
            }
        }),
        _ => None,
    };
    Ok(Lookup { account, stored })
}

/// Opens a session for `member` (whose password was just verified) and returns its cookie
/// token. `upgrade` replaces the old (PBKDF2) hash `from` by an Argon2id PHC string, unless the
/// password was changed meanwhile.
pub(crate) fn open_session(
    data: &mut ServerData,
    member: &str,
    upgrade: Option<(&Stored, String)>,
) -> Result<String> {
    let now = now_ms();
    let token = hex::encode(random::<32>());
    let csrf = hex::encode(random::<16>());
    data.atomically(|d| -> Result<()> {
        if let Some((
            Stored::Pbkdf2 {
                salt,
                hash,
                iterations,
            },
            phc,
        )) = upgrade
        {
            let old = StoredPassword {
                salt: salt.clone(),
                hash: hash.clone(),
                iterations: *iterations,
            };
            let new = argon2_row(&phc);
            if d.store.replace_password(member, &old, &new, now)? {
                tracing::info!(member = %member, "console password rehashed with Argon2id");
            }
        }
        d.store.insert_session(
            &sha256(&[token.as_bytes()]),
            &StoredSession {
                member: member.into(),
                csrf,
                expires_at: now + SESSION_TTL_MS,
            },
            now,
        )?;
        Ok(())
    })?;
    Ok(token)
}

/// An Argon2id PHC string as stored.
fn argon2_row(phc: &str) -> StoredPassword {
    StoredPassword {
        salt: vec![],
        hash: phc.as_bytes().to_vec(),
        iterations: ARGON2_ROW,
    }
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
    let phc = hash_password(password)?;
    data.atomically(|d| -> Result<()> {
        d.store.set_password(member, &argon2_row(&phc), now_ms())?;
        // A new password ends every session of the account.
        d.store.delete_sessions_of(member)?;
        Ok(())
    })
}

/// A signed-in session.
#[derive(Debug, Clone)]
pub struct Session {
    pub account: Account,
    pub csrf: String,
}

/// Checks a password; on success opens a session and returns its cookie token. Everything
/// happens on `data` (for callers without the HTTP layer); the console's sign-in route uses
/// [`lookup`], [`verify`] and [`open_session`] so that the hashing runs outside the data lock.
pub fn sign_in(data: &mut ServerData, member: &str, password: &str) -> Result<Option<String>> {
    let found = lookup(data, member)?;
    if !verify(found.stored.as_ref(), password) {
        return Ok(None);
    }
    let Some(stored) = found.stored else {
        return Ok(None);
    };
    let upgrade = if stored.is_legacy() {
        Some((&stored, hash_password(password)?))
    } else {
        None
    };
    open_session(data, member, upgrade).map(Some)
}

/// The session of a cookie token, if it is valid.
pub fn session(data: &ServerData, token: &str) -> Result<Option<Session>> {
    let row = data.store().session(&sha256(&[token.as_bytes()]))?;
    let Some(StoredSession {
        member,
        csrf,
        expires_at: expires,
    }) = row
    else {
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
pub fn sign_out(data: &mut ServerData, token: &str) -> Result<()> {
    data.store.delete_session(&sha256(&[token.as_bytes()]))?;
    Ok(())
}

// ------------------------------------------------------------------ throttling

/// The address part of a throttle key: an IPv4 address, or the /64 network of an IPv6 one (a
/// single host usually holds a whole /64).
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// The account part of a throttle key (bounded, whatever was typed).
fn account_key(account: &str) -> String {
    let mut end = account.len().min(128);
    while !account.is_char_boundary(end) {
        end -= 1;
    }
    account[..end].to_string()
}

#[derive(Debug, Clone)]
struct Strikes {
    failures: u32,
    /// Attempts let through and not finished yet (they count towards the limit, so a burst of
    /// parallel attempts cannot get more than the limit hashed).
    pending: u32,
    lockouts: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

impl Strikes {
    fn new(now: Instant) -> Strikes {
        Strikes {
            failures: 0,
            pending: 0,
            lockouts: 0,
            locked_until: None,
            last: now,
        }
    }

    /// Forgets what expired by `now`.
    fn age(&mut self, now: Instant) {
        if self.locked_until.is_some_and(|t| t <= now) {
            self.locked_until = None;
            self.failures = 0;
        }
        if self.locked_until.is_none() && now.duration_since(self.last) >= FORGET_AFTER {
            self.failures = 0;
            self.lockouts = 0;
        }
    }

    /// How long the key stays locked, or whether one more attempt would pass the limit.
    fn refusal(&self, now: Instant, limit: u32) -> Option<Duration> {
        if let Some(t) = self.locked_until {
            return Some(t.saturating_duration_since(now));
        }
        (self.failures + self.pending >= limit).then_some(Duration::from_secs(1))
    }

    fn fail(&mut self, now: Instant, limit: u32) {
        self.failures += 1;
        self.last = now;
        if self.failures >= limit {
            self.lockouts += 1;
            let factor = 1u32 << (self.lockouts - 1).min(16);
            self.locked_until = Some(now + (LOCKOUT * factor).min(MAX_LOCKOUT));
            self.failures = 0;
        }
    }

    fn idle(&self, now: Instant) -> bool {
        self.pending == 0
            && self.locked_until.is_none_or(|t| t <= now)
            && now.duration_since(self.last) >= FORGET_AFTER
    }
}

fn prune<K: Clone + Eq + std::hash::Hash>(map: &mut HashMap<K, Strikes>, now: Instant) {
    if map.len() < MAX_TRACKED {
        return;
    }
    map.retain(|_, s| !s.idle(now));
    if map.len() >= MAX_TRACKED {
        // Still full: keep only what is locked or in flight.
        map.retain(|_, s| s.pending > 0 || s.locked_until.is_some_and(|t| t > now));
    }
}

#[derive(Default)]
struct Tables {
    pairs: HashMap<(String, IpAddr), Strikes>,
    addresses: HashMap<IpAddr, Strikes>,
}

/// Console sign-in's throttle and its bounded password hashing (issue 10), one per server.
pub struct SignInGuard {
    tables: Mutex<Tables>,
    hashing: tokio::sync::Semaphore,
    /// When the next hash may start (the pace of [`MAX_HASHES_PER_S`]).
    next_hash: tokio::sync::Mutex<tokio::time::Instant>,
    waiting: AtomicUsize,
    hashes: AtomicU64,
}

impl Default for SignInGuard {
    fn default() -> Self {
        Self::new()
    }
}

/// An attempt the throttle let through; finish it with [`Attempt::finish`]. Dropped
/// unfinished (the client went away, an internal error), it counts as nothing.
pub(crate) struct Attempt<'a> {
    guard: &'a SignInGuard,
    pair: (String, IpAddr),
    done: bool,
}

impl Attempt<'_> {
    /// Records the outcome: a failure counts towards the lockouts, a success clears the
    /// (account, address) pair's strikes.
    pub(crate) fn finish(self, ok: bool) {
        self.finish_at(ok, Instant::now());
    }

    fn finish_at(mut self, ok: bool, now: Instant) {
        self.guard.finish(&self.pair, Some(ok), now);
        self.done = true;
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.guard.finish(&self.pair, None, Instant::now());
        }
    }
}

/// Too many sign-ins are waiting for a hashing slot.
pub(crate) struct Busy;

impl SignInGuard {
    pub fn new() -> SignInGuard {
        let slots = std::thread::available_parallelism()
            .map(|n| n.get() / 2)
            .unwrap_or(1)
            .max(1);
        SignInGuard {
            tables: Mutex::new(Tables::default()),
            hashing: tokio::sync::Semaphore::new(slots),
            next_hash: tokio::sync::Mutex::new(tokio::time::Instant::now()),
            waiting: AtomicUsize::new(0),
            hashes: AtomicU64::new(0),
        }
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many passwords this server has hashed for sign-ins (verifications and upgrades).
    pub fn hashes(&self) -> u64 {
        self.hashes.load(Ordering::SeqCst)
    }

    /// Lets an attempt of `account` from `ip` through, or says how long it is locked.
    pub(crate) fn begin(
        &self,
        account: &str,
        ip: IpAddr,
        now: Instant,
    ) -> std::result::Result<Attempt<'_>, Duration> {
        let pair = (account_key(account), address_key(ip));
        let mut t = self.tables();
        let t = &mut *t;
        prune(&mut t.pairs, now);
        prune(&mut t.addresses, now);
        let by_pair = t
            .pairs
            .entry(pair.clone())
            .or_insert_with(|| Strikes::new(now));
        by_pair.age(now);
        let by_address = t
            .addresses
            .entry(pair.1)
            .or_insert_with(|| Strikes::new(now));
        by_address.age(now);
        let wait = match (
            by_pair.refusal(now, ACCOUNT_FAILURES),
            by_address.refusal(now, ADDRESS_FAILURES),
        ) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let Some(wait) = wait {
            return Err(wait.max(Duration::from_secs(1)));
        }
        by_pair.pending += 1;
        by_address.pending += 1;
        Ok(Attempt {
            guard: self,
            pair,
            done: false,
        })
    }

    fn finish(&self, pair: &(String, IpAddr), ok: Option<bool>, now: Instant) {
        let mut t = self.tables();
        if let Some(s) = t.pairs.get_mut(pair) {
            s.pending = s.pending.saturating_sub(1);
            match ok {
                Some(true) => {
                    s.failures = 0;
                    s.lockouts = 0;
                    s.locked_until = None;
                }
                Some(false) => s.fail(now, ACCOUNT_FAILURES),
                None => {}
            }
        }
        if let Some(s) = t.addresses.get_mut(&pair.1) {
            s.pending = s.pending.saturating_sub(1);
            if ok == Some(false) {
                s.fail(now, ADDRESS_FAILURES);
            }
        }
    }

    /// Runs `f` (which hashes `n` passwords) on a blocking thread once a hashing slot is free;
    /// refuses at once when too many sign-ins already wait.
    pub(crate) async fn hash<T: Send + 'static>(
        &self,
        n: u64,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::result::Result<T, Busy> {
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Busy);
        }
        let permit = self.hashing.acquire().await;
        {
            // Keep the pace: each hash starts at least 1/MAX_HASHES_PER_S after the previous.
            let mut next = self.next_hash.lock().await;
            tokio::time::sleep_until(*next).await;
            let gap = Duration::from_secs(1) / MAX_HASHES_PER_S * n.max(1) as u32;
            *next = tokio::time::Instant::now() + gap;
        }
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let _permit = permit.map_err(|_| Busy)?;
        self.hashes.fetch_add(n, Ordering::SeqCst);
        tokio::task::spawn_blocking(f).await.map_err(|_| Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn issue10_five_failures_lock_the_pair_for_15_minutes_then_doubling() {
        let g = SignInGuard::new();
        let t0 = Instant::now();
        let a = ip("192.0.2.7");
        for _ in 0..ACCOUNT_FAILURES {
            g.begin("staff-01", a, t0).unwrap().finish_at(false, t0);
        }
        let wait = g.begin("staff-01", a, t0).err().expect("locked");
        assert_eq!(wait, LOCKOUT);
        // Another address, and another account from the same address, are not locked.
        g.begin("staff-01", ip("198.51.100.1"), t0)
            .unwrap()
            .finish_at(true, t0);
        g.begin("staff-02", a, t0).unwrap().finish_at(true, t0);
        // The lockout expires.
        let t1 = t0 + LOCKOUT;
        g.begin("staff-01", a, t1).unwrap().finish_at(false, t1);
        for _ in 1..ACCOUNT_FAILURES {
            g.begin("staff-01", a, t1).unwrap().finish_at(false, t1);
        }
        // The second lockout lasts twice as long.
        assert_eq!(g.begin("staff-01", a, t1).err(), Some(LOCKOUT * 2));
        assert!(g.begin("staff-01", a, t1 + LOCKOUT).is_err());
        // A success (after the lockout) clears the pair's strikes.
        g.begin("staff-01", a, t1 + LOCKOUT * 2)
            .unwrap()
            .finish_at(true, t1 + LOCKOUT * 2);
        for _ in 0..ACCOUNT_FAILURES - 1 {
            g.begin("staff-01", a, t1 + LOCKOUT * 2)
                .unwrap()
                .finish_at(false, t1 + LOCKOUT * 2);
        }
        assert!(g.begin("staff-01", a, t1 + LOCKOUT * 2).is_ok());
    }

    #[test]
    fn issue10_parallel_attempts_cannot_exceed_the_limit() {
        let g = SignInGuard::new();
        let t0 = Instant::now();
        let a = ip("192.0.2.8");
        let open: Vec<_> = (0..ACCOUNT_FAILURES)
            .map(|_| g.begin("staff-01", a, t0).unwrap())
            .collect();
        assert!(
            g.begin("staff-01", a, t0).is_err(),
            "five in flight already"
        );
        drop(open); // abandoned: they count as nothing
        assert!(g.begin("staff-01", a, t0).is_ok());
    }

    #[test]
    fn issue10_an_address_spraying_accounts_is_locked() {
        let g = SignInGuard::new();
        let t0 = Instant::now();
        let a = ip("2001:db8::1");
        for i in 0..ADDRESS_FAILURES {
            g.begin(&format!("guess-{i}"), a, t0)
                .unwrap()
                .finish_at(false, t0);
        }
        // The same /64 is the same address; another network is not.
        assert!(g.begin("staff-01", ip("2001:db8::2"), t0).is_err());
        assert!(g.begin("staff-01", ip("2001:db8:1::2"), t0).is_ok());
    }

    #[test]
    fn issue10_pbkdf2_hashes_verify_and_argon2_is_the_new_format() {
        let salt = b"0123456789abcdef".to_vec();
        let mut hash = [0u8; 32];
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            NonZeroU32::new(1000).unwrap(),
            &salt,
            b"correct horse",
            &mut hash,
        );
        let old = Stored::Pbkdf2 {
            salt,
            hash: hash.to_vec(),
            iterations: 1000,
        };
        assert!(verify(Some(&old), "correct horse"));
        assert!(!verify(Some(&old), "wrong horse"));
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        let new = Stored::Argon2(phc);
        assert!(verify(Some(&new), "correct horse"));
        assert!(!verify(Some(&new), "wrong horse"));
        assert!(!verify(None, "correct horse"));
    }
}
