//! End-to-end tests of the `sanjin` binary on real SQLite files.
//!
//! - `cli`: the device commands as a member uses them, two devices merging, bad input (issue 2).
//! - `crash`: SIGKILL in the middle of a stream of saves loses nothing that returned (issue 2).
//! - `sync`: a real server with TLS on loopback: a group converges, conflicts are resolved, scope
//!   and revocation are enforced, a SIGKILLed server loses nothing it acknowledged (issue 3); a
//!   refused record is marked by `device list`, explained by `device show` and not sent again
//!   (issue 10).
//! - `bundle`: `device bundle export|import` between offline-enrolled stores, parts in
//!   reverse order, a damaged file and a file that is no bundle (issue 12).
//! - `admin_bundle`: `admin import-bundle` of a phone's parts on the server's data folder, once,
//!   again (nothing changes), beside a tampered file and junk (issue 12).
//! - `meet`: `device meet --serve|--join` between processes on loopback, the code, the QR, another
//!   group's phone refused, Ctrl-C (issue 12).
//! - `export`: `sanjin export` of the fixtures' ledger as XLSX and CSV, roles, bad input;
//!   console passwords (issue 5).
//! - `quarterly`: `sanjin export --quarterly 2025Q2`, the quarterly report's workbook, a
//!   leader's, bad input (issue 13).
//! - `photos`: `device attach`, `show` with photos, `sync --photos/--link`, a leader receiving
//!   the thumbnails; bad photo files refused (issue 4).
//! - `units`: the units opinions are forwarded to, added by `sanjin admin add-unit` or imported
//!   with the directory (issue 13).
//! - `directory`: `admin move-member` and `retire-member` with phones syncing around them
//!   (issue 13).
//! - `bombs`: zstd bombs against a real `sanjin serve`, its peak memory read from /proc
//!   (issue 10).
//! - `scope`: `sanjin admin add-staff --chapter`, staff of a county chapter exporting their
//!   chapter's ledger (issue 13).

mod admin_bundle;
mod bombs;
mod bundle;
mod cli;
mod crash;
mod directory;
mod export;
mod meet;
mod photos;
mod quarterly;
mod scope;
mod support;
mod sync;
mod units;
