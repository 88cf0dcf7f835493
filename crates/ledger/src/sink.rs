//! Where ledger rows go: an in-memory table set (tests, the console), an XLSX workbook or a zip
//! of CSV files. Every ledger is written through the same [`Sink`], so the three agree cell for
//! cell.

use chrono::{NaiveDate, NaiveDateTime};
use sanjin_core::time;

use crate::Result;

/// One cell of a ledger row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Int(i64),
    /// A number with at most one decimal (days, yuan, percentages).
    Num(f64),
    Date(NaiveDate),
    /// Beijing wall-clock time.
    DateTime(NaiveDateTime),
    /// A web address: a hyperlink in XLSX, the address itself in CSV and tables.
    Link(String),
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Cell {
        let s = s.into();
        if s.is_empty() {
            Cell::Empty
        } else {
            Cell::Text(s)
        }
    }

    /// The cell as CSV and the console show it.
    pub fn display(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(s) => s.clone(),
            Cell::Int(i) => i.to_string(),
            Cell::Num(f) => format_num(*f),
            Cell::Date(d) => time::date(*d),
            Cell::DateTime(t) => time::minutes(*t),
            Cell::Link(u) => u.clone(),
        }
    }
}

/// `12`, `3.5`: one decimal at most, no trailing `.0`.
pub fn format_num(f: f64) -> String {
    let r = (f * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{}", r as i64)
    } else {
        format!("{r:.1}")
    }
}

/// A column: its Chinese header, its width in characters, and the record field it shows (so a
/// field with an unresolved conflict can show every value instead of one).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Column {
    pub title: &'static str,
    pub width: f64,
    pub field: Option<&'static str>,
    pub kind: ColumnKind,
}

/// How a column's cells are formatted in XLSX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Text,
    Number,
    Date,
    DateTime,
}

/// One ledger: a sheet of the workbook, a file of the CSV zip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SheetSpec {
    /// Stable English key (`activities`, …), for `--json` and tests.
    pub key: &'static str,
    /// The sheet's Chinese name (at most 31 characters, no `[]:*?/\`).
    pub title: &'static str,
    pub columns: &'static [Column],
    /// How the sheet prints.
    pub print: Print,
}

/// How a ledger prints (issue 13): the columns people read, one contiguous run from `first` to
/// `last` — ids, hashes and links stay outside it, at the ends of the sheet — grouped so that a
/// sheet too wide for one page at 60 % breaks only between whole groups; long texts wrapped so
/// they print whole. [`crate::print`] lays it out on the page.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Print {
    /// The first printed column's title.
    pub first: &'static str,
    /// The last printed column's title.
    pub last: &'static str,
    /// The titles of the columns that start a group (besides `first`): a page breaks before
    /// one of these only.
    pub groups: &'static [&'static str],
    /// The columns repeated at the left of a continuation page (first and last title, a
    /// contiguous run at the start of the printed columns): what names the row.
    pub key: Option<(&'static str, &'static str)>,
    /// The titles of the text columns wrapped (in the workbook and on paper).
    pub wrap: &'static [&'static str],
}

impl Print {
    /// Every printed column, a single group, nothing repeated or wrapped.
    pub const fn columns(first: &'static str, last: &'static str) -> Print {
        Print {
            first,
            last,
            groups: &[],
            key: None,
            wrap: &[],
        }
    }
}

/// Receives the ledgers, one sheet after another, each row in order.
pub trait Sink {
    /// Called once, before anything else, with every sheet in the order they should appear.
    fn start(&mut self, sheets: &[&'static SheetSpec]) -> Result<()>;
    /// Starts writing a sheet (one of those given to `start`; each exactly once).
    fn sheet(&mut self, sheet: &'static SheetSpec) -> Result<()>;
    /// One row of the current sheet, as many cells as it has columns.
    fn row(&mut self, cells: &[Cell]) -> Result<()>;
    /// Everything written: close files.
    fn finish(&mut self) -> Result<()>;
}

/// A ledger held in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub spec: &'static SheetSpec,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// The index of the column titled `title`.
    pub fn col(&self, title: &str) -> usize {
        self.spec
            .columns
            .iter()
            .position(|c| c.title == title)
            .unwrap_or_else(|| panic!("sheet {} has no column {title}", self.spec.key))
    }

    /// The cells of column `title`, row by row.
    pub fn column(&self, title: &str) -> Vec<&Cell> {
        let i = self.col(title);
        self.rows.iter().map(|r| &r[i]).collect()
    }
}

/// Every ledger, in sheet order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tables {
    pub tables: Vec<Table>,
}

impl Tables {
    /// The table with key `key` (`activities`, `opinions`, …).
    pub fn get(&self, key: &str) -> &Table {
        self.tables
            .iter()
            .find(|t| t.spec.key == key)
            .unwrap_or_else(|| panic!("no ledger {key}"))
    }
}

impl Sink for Tables {
    fn start(&mut self, _sheets: &[&'static SheetSpec]) -> Result<()> {
        Ok(())
    }

    fn sheet(&mut self, spec: &'static SheetSpec) -> Result<()> {
        self.tables.push(Table { spec, rows: vec![] });
        Ok(())
    }

    fn row(&mut self, cells: &[Cell]) -> Result<()> {
        let t = self.tables.last_mut().expect("sheet() before row()");
        debug_assert_eq!(cells.len(), t.spec.columns.len(), "{}", t.spec.key);
        t.rows.push(cells.to_vec());
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        let mut sorted = std::mem::take(&mut self.tables);
        // Sheets come in the order they were written; keep that.
        self.tables.append(&mut sorted);
        Ok(())
    }
}
