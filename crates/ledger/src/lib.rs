//! sanjin-ledger: the ledger (台账) — statistics and exports over the server's synced records.
//!
//! **Never:** write the server's data or read its tables by SQL (it reads through the server
//! storage's typed API, read-only); its own SQL is on its projection `ledger.sqlite` alone.
//!
//! The server's data folder holds the record store (`sanjin.sqlite`, written by the sync server).
//! The ledger keeps a **projection** beside it, `ledger.sqlite`: one row per record with what the
//! ledgers need (fields, workflow events, unresolved conflicts), refreshed incrementally from
//! every document whose heads changed since ([`Ledger::refresh`]). It is a cache: deleting it
//! costs one full rebuild, never data. The server's data is only ever read, through its storage's
//! typed API opened read-only (`sanjin_store::server`): the ledger never runs SQL on the
//! server's tables and never writes them; its own SQL is on `ledger.sqlite` alone.
//!
//! - [`Ledger::write`] computes every ledger for a period and a [`Slice`] into a [`Sink`]: the
//!   activity, opinion and pair-assistance ledgers, per-member participation and the coverage
//!   gaps, the "六个一" per group, plan vs actual by month and quarter, opinion topics, and a
//!   summary. Rows stream from SQLite; only the aggregates are held in memory.
//! - [`Ledger::export`] writes them as XLSX (one sheet per ledger) or as a zip of CSV files.
//!   Excel's limits never fail an export (a text over a cell's 32,767 UTF-16 units is cut with
//!   [`CUT_MARKER`] and kept whole in the sheet [`OVERFLOW_SHEET`]); CSV text cells that a
//!   spreadsheet would run as formulas get a leading `'` ([`csv_text`]). [`Error::zh`] says
//!   every error in Chinese with what to do, naming the record when a row is at fault.
//! - [`Ledger::search`] finds records by the words of their titles, summaries and opinion texts
//!   (Chinese by character bigrams in SQLite FTS5, see `search.rs`), with the list filters,
//!   ranked, each hit with its title and a snippet marked (issue 13).
//! - [`Ledger::member_record`] gathers one member's yearly record (履职档案, issue 13): visits,
//!   opinion notes with their outcome, households assisted, plan items owned, the year's figures.
//! - [`Ledger::quarterly_report`] counts the quarterly report (季度通报, issue 13) for the
//!   chairman's meeting with the ledgers' own rules, and [`QuarterlyReport::xlsx`] writes it as
//!   an editable workbook with native charts drawing its tables (`report.rs`).
//! - [`Ledger::charts`] gives the console's charts their figures for the year so far (issue 13):
//!   activities per month against the plan, members' coverage by month, opinion handling
//!   times, the "六个一" — from per-record facts the refresh keeps beside each row and totals
//!   kept by triggers (`charts.rs`), so no document and no row per record is read.
//! - [`dashboard`] is the console's first page, counted from the server's index (the storage's
//!   counts, no document opened).
//!
//! **Access is enforced here**, by [`Viewer`]: office staff see everything, a group leader only
//! the group's ledger, a member none.
//!
//! Tombstoned records are left out; a field with an unresolved conflict shows every value and
//! the row says so in its last column ("待裁定冲突") — nothing is silently picked.

mod charts;
pub mod dashboard;
mod directory;
mod member_record;
pub mod plans;
pub mod print;
mod project;
mod report;
mod search;
mod sheets;
pub mod sink;
mod write_csv;
mod write_xlsx;

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use rusqlite::Connection;
use sanjin_core::domain::TargetKind;
use sanjin_store::server::{ServerStorage, SqliteServerStorage};

pub use charts::{
    BUCKETS, Charts, Coverage, Durations, Handling, MonthFigures, SixOneFigures, bucket_zh,
};
pub use directory::Directory;
pub use member_record::{
    ASSESSMENT_COLUMNS, ActivityLine, AssessmentRow, HouseholdLine, MemberRecord, OpinionLine,
    PlanLine, RecordTotals,
};
pub use project::{Projected, RefreshReport};
pub use report::{
    Figures, GroupLine, IdleMembers, NOTABLE_MAX, NotableOpinion, Quarter, QuarterlyReport,
    REPORT_SHEET, REPORT_TITLE, SixOnesLine, Value, percent,
};
pub use search::{Found, Fragment, Hit, Search};
pub use sheets::{SHEETS, Summary};
pub use sink::{Cell, Column, SheetSpec, Sink, Table, Tables};
pub use write_csv::{FORMULA_PREFIXES, csv_text};
pub use write_xlsx::{CUT_MARKER, MAX_CELL_UNITS, OVERFLOW_SHEET, cell_parts, fit_cell};

/// The projection's file in the server's data folder.
pub const LEDGER_FILE: &str = "ledger.sqlite";
/// The server's record store in its data folder.
pub const STORE_FILE: &str = "sanjin.sqlite";

/// Errors of the ledger.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The server's data could not be read.
    #[error(transparent)]
    Store(#[from] sanjin_store::Error),
    #[error(transparent)]
    Core(#[from] sanjin_core::Error),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("xlsx: {0}")]
    Xlsx(String),
    #[error("zip: {0}")]
    Zip(String),
    /// The viewer may not see this ledger; the message (Chinese) says why.
    #[error("{0}")]
    Forbidden(String),
    /// Bad input (a period, a slice); the message (Chinese) says what to do.
    #[error("{0}")]
    Invalid(String),
    #[error("{0} holds no sanjin server data (no sanjin.sqlite)")]
    NoData(PathBuf),
    /// A row could not be written: its ledger, its row number as the spreadsheet shows it, its
    /// record (the row's first column and value), the column, and why with what to do
    /// (Chinese).
    #[error("{sheet} row {row} ({key}), column {column}: {reason}")]
    Row {
        sheet: &'static str,
        row: u32,
        key: String,
        column: &'static str,
        reason: String,
    },
}

impl Error {
    /// What went wrong and what to do, in Simplified Chinese, for the command line and the
    /// console: an error about one row names its ledger, row, record and column.
    pub fn zh(&self) -> String {
        match self {
            Error::Forbidden(m) | Error::Invalid(m) => m.clone(),
            Error::NoData(p) => format!(
                "{} 里没有服务器数据（sanjin.sqlite）。请检查数据目录，或先用 sanjin admin import-directory 建立",
                p.display()
            ),
            Error::Row {
                sheet,
                row,
                key,
                column,
                reason,
            } => {
                format!("导出失败：“{sheet}”第 {row} 行（{key}）的“{column}”一栏无法写入：{reason}")
            }
            Error::Io { path, source } => {
                use std::io::ErrorKind as K;
                let what = match source.kind() {
                    K::NotFound => "所在目录不存在。请先建立该目录，或换一个输出位置".to_string(),
                    K::PermissionDenied | K::ReadOnlyFilesystem => {
                        "没有写入权限。请换一个可写的输出位置，或请管理员开放该目录的写入权限"
                            .to_string()
                    }
                    K::StorageFull | K::QuotaExceeded => {
                        "磁盘空间不足。请清理磁盘空间，或换一个输出位置".to_string()
                    }
                    _ => format!("{source}。请检查磁盘空间和该目录的写入权限，或换一个输出位置"),
                };
                format!("无法写入 {}：{what}，然后重新导出", path.display())
            }
            Error::Store(e) => format!(
                "读取服务器数据出错（{e}）。请确认磁盘空间充足、数据目录未被其他程序锁住后重试"
            ),
            Error::Sqlite(e) => format!(
                "读取台账数据出错（{e}）。请确认磁盘空间充足、数据目录未被其他程序锁住后重试；如仍出错，可删除数据目录中的 ledger.sqlite（台账缓存，会自动重建）后再导出"
            ),
            Error::Core(e) => format!(
                "读取记录出错（{e}）。请把这段提示发给系统管理员，检查提示中的记录后重新导出"
            ),
            Error::Xlsx(m) => format!("生成 Excel 文件出错（{m}）。请重试，或改用 CSV 格式导出"),
            Error::Zip(m) => format!("生成 zip 文件出错（{m}）。请检查磁盘空间后重试"),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Who asks for a ledger. The server maps its accounts' roles onto this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// Office staff (and admins): every group.
    Office,
    /// Staff of a county chapter (issue 13): its groups only (`groups`, by id), as the slice of
    /// `chapter`.
    Chapter {
        chapter: String,
        groups: Vec<String>,
    },
    /// An activity-group leader: that group's ledger only.
    Leader { group: String },
    /// A member: no ledger (members see their own records on their phones).
    Member,
}

impl Viewer {
    /// Office staff of the city or of a county chapter (not a leader, not a member).
    pub fn is_office(&self) -> bool {
        matches!(self, Viewer::Office | Viewer::Chapter { .. })
    }

    /// The groups this viewer is limited to: `None` for city office staff (every group).
    pub fn groups(&self) -> Option<Vec<String>> {
        match self {
            Viewer::Office => None,
            Viewer::Chapter { groups, .. } => Some(groups.clone()),
            Viewer::Leader { group } => Some(vec![group.clone()]),
            Viewer::Member => Some(Vec::new()),
        }
    }
}

/// Which records: every field that is set narrows the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slice {
    /// A chapter (政协组织): records of its groups or with one of its members.
    pub chapter: Option<String>,
    /// A committee (专委会): records of groups attached to it or with one of its members.
    pub committee: Option<String>,
    pub group: Option<String>,
    /// Records a member took part in (participant, author, assisting member, plan owner).
    pub member: Option<String>,
    pub contact_point: Option<String>,
    pub target_kind: Option<TargetKind>,
}

/// A period (inclusive dates) and a slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub slice: Slice,
    /// The staff console's address (`https://host:8443`): when given, the activity ledger links
    /// each visit with photos to its record page's photos (`…/console/records/{id}#photos`).
    pub console_url: Option<String>,
}

impl Query {
    pub fn new(from: NaiveDate, to: NaiveDate) -> Query {
        Query {
            from,
            to,
            slice: Slice::default(),
            console_url: None,
        }
    }

    /// The link to a record's photos in the console, if the console's address is known.
    pub fn photo_link(&self, record_id: &str) -> Option<String> {
        self.console_url.as_deref().map(|base| {
            format!(
                "{}/console/records/{record_id}#photos",
                base.trim_end_matches('/')
            )
        })
    }
}

/// The output format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Xlsx,
    /// A zip with one UTF-8 (with BOM) CSV file per ledger.
    Csv,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s.trim().to_ascii_lowercase().as_str() {
            "xlsx" | "excel" => Some(Format::Xlsx),
            "csv" | "zip" => Some(Format::Csv),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Xlsx => "xlsx",
            Format::Csv => "zip",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Format::Csv => "application/zip",
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ExportReport {
    pub path: PathBuf,
    pub format: &'static str,
    /// Data rows per ledger (headers not counted), in sheet order.
    pub rows: Vec<LedgerRows>,
    pub refreshed: usize,
    /// Records that could not be read and are missing from the ledgers: (id, reason).
    pub skipped: Vec<(String, String)>,
}

/// How many data rows one ledger got.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LedgerRows {
    pub key: &'static str,
    pub title: &'static str,
    pub rows: usize,
}

impl ExportReport {
    pub fn total_rows(&self) -> usize {
        self.rows.iter().map(|r| r.rows).sum()
    }

    /// The rows of the ledger with key `key`.
    pub fn rows_of(&self, key: &str) -> usize {
        self.rows
            .iter()
            .find(|r| r.key == key)
            .map_or(0, |r| r.rows)
    }
}

/// The ledger of one server data folder.
pub struct Ledger {
    /// The projection, `ledger.sqlite`.
    pub(crate) conn: Connection,
    /// The server's data, read-only.
    store: SqliteServerStorage,
    dir: PathBuf,
}

impl Ledger {
    /// Opens the ledger of a server data folder (creating its projection file on first use).
    pub fn open(data_dir: &Path) -> Result<Ledger> {
        let store = data_dir.join(STORE_FILE);
        if !store.exists() {
            return Err(Error::NoData(data_dir.to_path_buf()));
        }
        let conn = project::open(&data_dir.join(LEDGER_FILE))?;
        let store = SqliteServerStorage::open_read_only(&store)?;
        Ok(Ledger {
            conn,
            store,
            dir: data_dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's data, read-only (its storage's typed reads: lists, pages, counts, names).
    pub fn store(&self) -> &dyn ServerStorage {
        &self.store
    }

    /// Brings the projection up to date with the store: every document whose heads changed is
    /// read again. Cheap when little changed.
    pub fn refresh(&mut self) -> Result<RefreshReport> {
        project::refresh(&mut self.conn, &self.store)
    }

    /// The query as `viewer` may run it: a leader's is narrowed to the group, a member's refused.
    pub fn scoped(&self, viewer: &Viewer, q: &Query) -> Result<Query> {
        if q.from > q.to {
            return Err(Error::Invalid(format!(
                "起始日期 {} 晚于结束日期 {}，请调换 --from 和 --to",
                q.from, q.to
            )));
        }
        match viewer {
            Viewer::Office => Ok(q.clone()),
            Viewer::Chapter { chapter, groups } => {
                if let Some(g) = &q.slice.group
                    && !groups.contains(g)
                {
                    return Err(Error::Forbidden(format!(
                        "活动组 {g} 属于其他政协组织：本政协组织（{chapter}）的工作人员只能查看本政协组织各活动组的台账"
                    )));
                }
                if let Some(c) = &q.slice.chapter
                    && c != chapter
                {
                    return Err(Error::Forbidden(format!(
                        "只能查看本政协组织（{chapter}）的台账，不能查看 {c}"
                    )));
                }
                let mut q = q.clone();
                q.slice.chapter = Some(chapter.clone());
                Ok(q)
            }
            Viewer::Member => Err(Error::Forbidden(
                "委员账户不能查看或导出台账；台账由机关工作人员和活动组组长使用".into(),
            )),
            Viewer::Leader { group } => {
                if let Some(g) = &q.slice.group
                    && g != group
                {
                    return Err(Error::Forbidden(format!(
                        "组长只能查看本组（{group}）的台账，不能查看 {g}"
                    )));
                }
                let mut q = q.clone();
                q.slice.group = Some(group.clone());
                Ok(q)
            }
        }
    }

    /// The directory (members, groups, contact points, …) as the projection holds it.
    pub fn directory(&self) -> Result<Directory> {
        Directory::load(&self.conn)
    }

    /// Computes every ledger for `q` as `viewer` may see it, into `sink`. Call
    /// [`Ledger::refresh`] first for the latest records.
    pub fn write(&self, viewer: &Viewer, q: &Query, sink: &mut dyn Sink) -> Result<Summary> {
        let q = self.scoped(viewer, q)?;
        sheets::write(&self.conn, &q, sink)
    }

    /// Refreshes and computes every ledger into memory.
    pub fn tables(&mut self, viewer: &Viewer, q: &Query) -> Result<Tables> {
        self.scoped(viewer, q)?;
        self.refresh()?;
        let mut t = Tables::default();
        self.write(viewer, q, &mut t)?;
        Ok(t)
    }

    /// Refreshes the projection and searches it (issue 13): records of the four searched kinds
    /// whose title or text holds every word of `s.text`, narrowed by its filters, best first.
    /// A leader searches only the group's records (asking for another group is refused), a
    /// member not at all; a query without a letter, digit or CJK character is refused.
    pub fn search(&mut self, viewer: &Viewer, s: &Search) -> Result<Found> {
        let (s, parsed) = search::scoped(viewer, s)?;
        self.refresh()?;
        search::run(&self.conn, &s, &parsed)
    }

    /// The charts' figures (issue 13) for the year of `q.to`, January to the month of `q.to`, as
    /// `viewer` may see them: a leader the group's, office staff everything or `q.slice`'s
    /// group, chapter or committee; a member none. Call [`Ledger::refresh`] first for the latest
    /// records.
    pub fn charts(&self, viewer: &Viewer, q: &Query) -> Result<Charts> {
        charts::charts(self, viewer, q)
    }

    /// The first day of the latest month up to `on_or_before` with a visit or an opinion note
    /// `viewer` may see (issue 13: the dashboard opens on it when the current quarter is empty).
    pub fn latest_with_data(
        &self,
        viewer: &Viewer,
        on_or_before: NaiveDate,
    ) -> Result<Option<NaiveDate>> {
        charts::latest_with_data(self, viewer, on_or_before)
    }

    /// Refreshes and exports every ledger to `out`.
    pub fn export(
        &mut self,
        viewer: &Viewer,
        q: &Query,
        format: Format,
        out: &Path,
    ) -> Result<ExportReport> {
        // Refuse before doing any work.
        self.scoped(viewer, q)?;
        let refresh = self.refresh()?;
        let summary = match format {
            Format::Xlsx => {
                // Every printed page names the period and the scope, as the summary does.
                let scoped = self.scoped(viewer, q)?;
                let dir = self.directory()?;
                let mut sink = write_xlsx::XlsxSink::new(
                    out,
                    sheets::period(&scoped),
                    sheets::scope(&scoped.slice, &dir),
                );
                self.write(viewer, q, &mut sink)?
            }
            Format::Csv => {
                let mut sink = write_csv::CsvZipSink::create(out)?;
                self.write(viewer, q, &mut sink)?
            }
        };
        Ok(ExportReport {
            path: out.to_path_buf(),
            format: format.extension(),
            rows: SHEETS
                .iter()
                .map(|s| LedgerRows {
                    key: s.key,
                    title: s.title,
                    rows: summary
                        .rows
                        .iter()
                        .find(|(k, _)| *k == s.key)
                        .map_or(0, |(_, n)| *n),
                })
                .collect(),
            refreshed: refresh.updated,
            skipped: refresh.skipped,
        })
    }
}
