//! The XLSX workbook: one sheet per ledger, written row by row in rust_xlsxwriter's constant
//! memory mode (each sheet streams to a temporary file), so memory stays flat however many rows.
//! Chinese headers in bold, the header row frozen, a filter on every column, column widths,
//! dates as real Excel dates. The document's creation time is fixed, so the same data gives the
//! same workbook.

use std::path::{Path, PathBuf};

use chrono::{Datelike, Timelike};
use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook, XlsxError};

use crate::sink::{Cell, ColumnKind, SheetSpec, Sink};
use crate::{Error, Result};

/// Excel's limit on the characters of one cell.
const MAX_CELL_CHARS: usize = 32_767;
/// Excel's limit on hyperlinks in one worksheet; links beyond it are written as plain text.
const MAX_LINKS_PER_SHEET: u32 = 65_530;
/// Excel's limit on the characters of a hyperlink.
const MAX_URL_CHARS: usize = 2_079;

fn xlsx(e: XlsxError) -> Error {
    Error::Xlsx(e.to_string())
}

pub(crate) struct XlsxSink {
    path: PathBuf,
    book: Workbook,
    sheets: Vec<&'static SheetSpec>,
    rows: Vec<u32>,
    links: Vec<u32>,
    current: usize,
    header: Format,
    date: Format,
    datetime: Format,
    wrap: Format,
}

fn excel_date(d: chrono::NaiveDate) -> std::result::Result<ExcelDateTime, XlsxError> {
    ExcelDateTime::from_ymd(d.year() as u16, d.month() as u8, d.day() as u8)
}

impl XlsxSink {
    pub(crate) fn new(path: &Path) -> XlsxSink {
        let mut book = Workbook::new();
        let fixed = ExcelDateTime::from_ymd(2017, 1, 1).expect("a valid date");
        book.set_properties(
            &DocProperties::new()
                .set_title("三进工作台账")
                .set_author("sanjin")
                .set_creation_datetime(&fixed),
        );
        XlsxSink {
            path: path.to_path_buf(),
            book,
            sheets: vec![],
            rows: vec![],
            links: vec![],
            current: 0,
            header: Format::new().set_bold(),
            date: Format::new().set_num_format("yyyy-mm-dd"),
            datetime: Format::new().set_num_format("yyyy-mm-dd hh:mm"),
            wrap: Format::new(),
        }
    }
}

impl Sink for XlsxSink {
    fn start(&mut self, sheets: &[&'static SheetSpec]) -> Result<()> {
        for spec in sheets {
            let ws = self
                .book
                .add_worksheet_with_constant_memory()
                .map_err(xlsx)?;
            ws.set_name(spec.title).map_err(xlsx)?;
            for (i, c) in spec.columns.iter().enumerate() {
                ws.set_column_width(i as u16, c.width).map_err(xlsx)?;
                ws.write_string_with_format(0, i as u16, c.title, &self.header)
                    .map_err(xlsx)?;
            }
            ws.set_freeze_panes(1, 0).map_err(xlsx)?;
            self.sheets.push(spec);
            self.rows.push(0);
            self.links.push(0);
        }
        Ok(())
    }

    fn sheet(&mut self, sheet: &'static SheetSpec) -> Result<()> {
        self.current = self
            .sheets
            .iter()
            .position(|s| std::ptr::eq(*s, sheet))
            .expect("every sheet is announced in start()");
        Ok(())
    }

    fn row(&mut self, cells: &[Cell]) -> Result<()> {
        let spec = self.sheets[self.current];
        self.rows[self.current] += 1;
        let row = self.rows[self.current];
        let ws = self.book.worksheet_from_index(self.current).map_err(xlsx)?;
        for (i, cell) in cells.iter().enumerate() {
            let col = i as u16;
            match cell {
                Cell::Empty => {}
                Cell::Text(s) => {
                    let s: std::borrow::Cow<str> = if s.len() > MAX_CELL_CHARS {
                        s.chars().take(MAX_CELL_CHARS).collect::<String>().into()
                    } else {
                        s.into()
                    };
                    if spec.columns[i].kind == ColumnKind::Text {
                        ws.write_string(row, col, s.as_ref()).map_err(xlsx)?;
                    } else {
                        ws.write_string_with_format(row, col, s.as_ref(), &self.wrap)
                            .map_err(xlsx)?;
                    }
                }
                Cell::Link(u) => {
                    if self.links[self.current] < MAX_LINKS_PER_SHEET
                        && u.chars().count() <= MAX_URL_CHARS
                    {
                        self.links[self.current] += 1;
                        ws.write_url(row, col, u.as_str()).map_err(xlsx)?;
                    } else {
                        ws.write_string(row, col, u.as_str()).map_err(xlsx)?;
                    }
                }
                Cell::Int(n) => {
                    ws.write_number(row, col, *n as f64).map_err(xlsx)?;
                }
                Cell::Num(f) => {
                    ws.write_number(row, col, *f).map_err(xlsx)?;
                }
                Cell::Date(d) => {
                    ws.write_datetime_with_format(
                        row,
                        col,
                        excel_date(*d).map_err(xlsx)?,
                        &self.date,
                    )
                    .map_err(xlsx)?;
                }
                Cell::DateTime(t) => {
                    let dt = excel_date(t.date())
                        .and_then(|d| {
                            d.and_hms(t.hour() as u16, t.minute() as u8, t.second() as f64)
                        })
                        .map_err(xlsx)?;
                    ws.write_datetime_with_format(row, col, dt, &self.datetime)
                        .map_err(xlsx)?;
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        for (i, spec) in self.sheets.iter().enumerate() {
            let last = self.rows[i];
            let ws = self.book.worksheet_from_index(i).map_err(xlsx)?;
            ws.autofilter(0, 0, last, (spec.columns.len() - 1) as u16)
                .map_err(xlsx)?;
        }
        self.book.save(&self.path).map_err(|e| match e {
            XlsxError::IoError(source) => Error::Io {
                path: self.path.clone(),
                source,
            },
            other => xlsx(other),
        })
    }
}
