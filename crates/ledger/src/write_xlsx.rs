//! The XLSX workbook: one sheet per ledger, written row by row in rust_xlsxwriter's constant
//! memory mode (each sheet streams to a temporary file), so memory stays flat however many rows.
//! Chinese headers in bold, the header row frozen, a filter on every column, column widths,
//! dates as real Excel dates. The document's creation time is fixed, so the same data gives the
//! same workbook.
//!
//! Every sheet prints as [`crate::print`] lays it out (issue 13): A4, the columns people read as
//! the print area, the header row on every page, a page header with the ledger's name, period
//! and scope, `第 N 页 共 M 页` in the footer; long texts wrap and every cell sits at the top of
//! its row, so a printed row reads whole.
//!
//! Excel's limits never fail an export:
//! - a text longer than a cell holds (32,767 UTF-16 units; a character outside the Basic
//!   Multilingual Plane such as 𠮷 counts two) is cut at the limit, on a character boundary, and
//!   ends with [`CUT_MARKER`]; its full text goes, in parts that each fit a cell, to the sheet
//!   [`OVERFLOW_SHEET`] (which ledger, row, record, column, part i of n), added only when needed;
//! - a link beyond 65,530 per sheet or 2,079 units is written as text;
//! - a date outside Excel's range (years 1900–9999) is written as text (`YYYY-MM-DD`).
//!
//! Anything else that goes wrong while writing a row is reported as [`Error::Row`], naming the
//! ledger, the row, its record and the column.

use std::path::{Path, PathBuf};

use chrono::{Datelike, Timelike};
use rust_xlsxwriter::{
    DocProperties, ExcelDateTime, Format, FormatAlign, Workbook, Worksheet, XlsxError,
};

use crate::print::{self, Fit, Layout};
use crate::sink::{Cell, Column, ColumnKind, Print, SheetSpec, Sink};
use crate::{Error, Result};

/// Excel's limit on one cell's text, in UTF-16 code units.
pub const MAX_CELL_UNITS: usize = 32_767;
/// Ends a text cut at [`MAX_CELL_UNITS`].
pub const CUT_MARKER: &str = "…【内容过长，已截断，全文见“超长内容”工作表】";
/// The sheet holding the full text of every cut cell.
pub const OVERFLOW_SHEET: &str = "超长内容";
/// Excel's limit on hyperlinks in one worksheet; links beyond it are written as plain text.
const MAX_LINKS_PER_SHEET: u32 = 65_530;
/// Excel's limit on a hyperlink, in UTF-16 code units.
const MAX_URL_UNITS: usize = 2_079;
/// Excel's last row (0-based), the header included.
const MAX_ROW: u32 = 1_048_575;

const fn text_col(title: &'static str, width: f64, kind: ColumnKind) -> Column {
    Column {
        title,
        width,
        field: None,
        kind,
    }
}

/// The continuation sheet: one row per part of a cut text.
pub static OVERFLOW: SheetSpec = SheetSpec {
    key: "overflow",
    title: OVERFLOW_SHEET,
    columns: &[
        text_col("台账", 16.0, ColumnKind::Text),
        text_col("行号", 8.0, ColumnKind::Number),
        text_col("记录编号", 38.0, ColumnKind::Text),
        text_col("列", 14.0, ColumnKind::Text),
        text_col("第几段", 8.0, ColumnKind::Number),
        text_col("共几段", 8.0, ColumnKind::Number),
        text_col("内容", 100.0, ColumnKind::Text),
    ],
    print: Print {
        first: "台账",
        last: "内容",
        groups: &["第几段"],
        key: Some(("台账", "行号")),
        wrap: &["内容"],
    },
};

fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// The longest prefix of `s` within `units` UTF-16 units, cut on a character boundary.
fn prefix_within(s: &str, units: usize) -> &str {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        used += c.len_utf16();
        if used > units {
            return &s[..i];
        }
    }
    s
}

/// `s` as it fits in one cell: itself, or cut with [`CUT_MARKER`] at the end.
pub fn fit_cell(s: &str) -> std::borrow::Cow<'_, str> {
    // A character never takes more UTF-16 units than UTF-8 bytes: most texts need no count.
    if s.len() <= MAX_CELL_UNITS || utf16_len(s) <= MAX_CELL_UNITS {
        return s.into();
    }
    let head = prefix_within(s, MAX_CELL_UNITS - utf16_len(CUT_MARKER));
    format!("{head}{CUT_MARKER}").into()
}

/// `s` in parts of at most [`MAX_CELL_UNITS`] each, cut on character boundaries.
pub fn cell_parts(s: &str) -> Vec<&str> {
    let mut parts = vec![];
    let mut rest = s;
    while !rest.is_empty() {
        let part = prefix_within(rest, MAX_CELL_UNITS);
        parts.push(part);
        rest = &rest[part.len()..];
    }
    parts
}

fn xlsx(e: XlsxError) -> Error {
    Error::Xlsx(e.to_string())
}

/// Why a cell could not be written, in Chinese, with what to do.
fn reason_zh(e: &XlsxError) -> String {
    match e {
        XlsxError::RowColumnLimitError => "超过 Excel 每个工作表 1,048,576 行的上限。请缩短统计期间或按活动组分别导出，或改用 CSV 格式（不限行数）".into(),
        XlsxError::MaxStringLengthExceeded => "内容超过 Excel 一格 32,767 个字符的上限。请在工作台打开该记录精简这一栏，或改用 CSV 格式导出（不限长度）".into(),
        XlsxError::DateTimeRangeError(_) => "日期超出 Excel 支持的范围（1900–9999 年）。请在工作台打开该记录核对日期，或改用 CSV 格式导出".into(),
        XlsxError::IoError(io) => format!(
            "写入临时文件失败（{io}）。请检查磁盘空间和临时目录的写入权限后重新导出"
        ),
        other => format!(
            "Excel 无法保存这一格（{other}）。请在工作台打开该记录核对这一栏，或改用 CSV 格式导出"
        ),
    }
}

pub(crate) struct XlsxSink {
    path: PathBuf,
    book: Workbook,
    /// The period and the scope, for every page header.
    period: String,
    scope: String,
    sheets: Vec<&'static SheetSpec>,
    /// Each sheet's print layout, in workbook order (the continuation sheet's last).
    layouts: Vec<Layout>,
    rows: Vec<u32>,
    links: Vec<u32>,
    current: usize,
    /// The continuation sheet's index and its last row, once a text was cut.
    overflow: Option<(usize, u32)>,
    header: Format,
    date: Format,
    datetime: Format,
    /// Any other cell: at the top of its row.
    top: Format,
    /// A cell of a wrapped column.
    wrap: Format,
}

fn excel_date(d: chrono::NaiveDate) -> std::result::Result<ExcelDateTime, XlsxError> {
    let year = u16::try_from(d.year())
        .map_err(|_| XlsxError::DateTimeRangeError(format!("year {}", d.year())))?;
    ExcelDateTime::from_ymd(year, d.month() as u8, d.day() as u8)
}

fn excel_datetime(t: &chrono::NaiveDateTime) -> std::result::Result<ExcelDateTime, XlsxError> {
    excel_date(t.date())
        .and_then(|d| d.and_hms(t.hour() as u16, t.minute() as u8, t.second() as f64))
}

impl XlsxSink {
    /// A workbook at `path`; every printed page names `period` and `scope`.
    pub(crate) fn new(path: &Path, period: String, scope: String) -> XlsxSink {
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
            period,
            scope,
            sheets: vec![],
            layouts: vec![],
            rows: vec![],
            links: vec![],
            current: 0,
            overflow: None,
            header: Format::new().set_bold(),
            date: Format::new()
                .set_num_format("yyyy-mm-dd")
                .set_align(FormatAlign::Top),
            datetime: Format::new()
                .set_num_format("yyyy-mm-dd hh:mm")
                .set_align(FormatAlign::Top),
            top: Format::new().set_align(FormatAlign::Top),
            wrap: Format::new().set_text_wrap().set_align(FormatAlign::Top),
        }
    }

    /// The sheet's page setup: all but the print area, which needs the last row.
    fn print_setup(
        ws: &mut Worksheet,
        spec: &SheetSpec,
        layout: &Layout,
        period: &str,
        scope: &str,
    ) -> std::result::Result<(), XlsxError> {
        ws.set_paper_size(print::A4);
        if layout.landscape {
            ws.set_landscape();
        } else {
            ws.set_portrait();
        }
        let [left, right, top, bottom, header, footer] = print::MARGINS;
        ws.set_margins(left, right, top, bottom, header, footer);
        match &layout.fit {
            Fit::Width { .. } => {
                ws.set_print_fit_to_pages(1, 0);
            }
            Fit::Scale { percent, breaks } => {
                ws.set_print_scale(*percent);
                let breaks: Vec<u32> = breaks.iter().map(|&b| u32::from(b)).collect();
                ws.set_vertical_page_breaks(&breaks)?;
                // Over, then down: the two halves of the same rows follow each other.
                ws.set_page_order(false);
                if let Some((a, b)) = layout.repeat {
                    ws.set_repeat_columns(a, b)?;
                }
            }
        }
        ws.set_repeat_rows(0, 0)?;
        ws.set_header(print::header(spec.title, period, scope));
        ws.set_footer(print::FOOTER);
        Ok(())
    }

    /// Adds a sheet with its headers; returns its index.
    fn add_sheet(&mut self, spec: &'static SheetSpec) -> std::result::Result<usize, XlsxError> {
        let layout = Layout::of(spec);
        let ws = self.book.add_worksheet_with_constant_memory()?;
        ws.set_name(spec.title)?;
        for (i, c) in spec.columns.iter().enumerate() {
            ws.set_column_width(i as u16, c.width)?;
            ws.write_string_with_format(0, i as u16, c.title, &self.header)?;
        }
        ws.set_freeze_panes(1, 0)?;
        Self::print_setup(ws, spec, &layout, &self.period, &self.scope)?;
        self.layouts.push(layout);
        Ok(self.book.worksheets().len() - 1)
    }

    /// Writes the full text of a cut cell to the continuation sheet.
    fn keep_full_text(
        &mut self,
        spec: &SheetSpec,
        row: u32,
        key: &str,
        column: &str,
        text: &str,
    ) -> std::result::Result<(), XlsxError> {
        let (index, mut last) = match self.overflow {
            Some(o) => o,
            None => (self.add_sheet(&OVERFLOW)?, 0),
        };
        let parts = cell_parts(text);
        let width = OVERFLOW.columns[6].width;
        let ws = self.book.worksheet_from_index(index)?;
        for (k, part) in parts.iter().enumerate() {
            last += 1;
            if last > MAX_ROW {
                return Err(XlsxError::RowColumnLimitError);
            }
            if let Some(height) = print::row_height(print::lines(part, width)) {
                ws.set_row_height(last, height)?;
            }
            let top = &self.top;
            ws.write_string_with_format(last, 0, spec.title, top)?;
            ws.write_number_with_format(last, 1, f64::from(row + 1), top)?;
            ws.write_string_with_format(last, 2, key, top)?;
            ws.write_string_with_format(last, 3, column, top)?;
            ws.write_number_with_format(last, 4, (k + 1) as f64, top)?;
            ws.write_number_with_format(last, 5, parts.len() as f64, top)?;
            ws.write_string_with_format(last, 6, *part, &self.wrap)?;
        }
        self.overflow = Some((index, last));
        Ok(())
    }

    /// A text cell: cut with its full text kept when it exceeds a cell.
    fn text(
        &mut self,
        spec: &SheetSpec,
        row: u32,
        i: usize,
        key: &str,
        s: &str,
    ) -> std::result::Result<(), XlsxError> {
        let fitted = fit_cell(s);
        if let std::borrow::Cow::Owned(_) = fitted {
            self.keep_full_text(spec, row, key, spec.columns[i].title, s)?;
        }
        let format = if self.layouts[self.current].wrap.contains(&(i as u16)) {
            &self.wrap
        } else {
            &self.top
        };
        let ws = self.book.worksheet_from_index(self.current)?;
        ws.write_string_with_format(row, i as u16, fitted.as_ref(), format)?;
        Ok(())
    }

    fn cell(
        &mut self,
        spec: &SheetSpec,
        row: u32,
        i: usize,
        key: &str,
        cell: &Cell,
    ) -> std::result::Result<(), XlsxError> {
        let col = i as u16;
        match cell {
            Cell::Empty => Ok(()),
            Cell::Text(s) => self.text(spec, row, i, key, s),
            Cell::Link(u) => {
                if self.links[self.current] < MAX_LINKS_PER_SHEET && utf16_len(u) <= MAX_URL_UNITS {
                    let ws = self.book.worksheet_from_index(self.current)?;
                    if ws.write_url(row, col, u.as_str()).is_ok() {
                        self.links[self.current] += 1;
                        return Ok(());
                    }
                }
                self.text(spec, row, i, key, u)
            }
            Cell::Int(n) => {
                let ws = self.book.worksheet_from_index(self.current)?;
                ws.write_number_with_format(row, col, *n as f64, &self.top)?;
                Ok(())
            }
            Cell::Num(f) => {
                let ws = self.book.worksheet_from_index(self.current)?;
                ws.write_number_with_format(row, col, *f, &self.top)?;
                Ok(())
            }
            Cell::Date(d) => match excel_date(*d) {
                Ok(dt) => {
                    let ws = self.book.worksheet_from_index(self.current)?;
                    ws.write_datetime_with_format(row, col, dt, &self.date)?;
                    Ok(())
                }
                // Outside Excel's calendar: the date as text.
                Err(_) => self.text(spec, row, i, key, &cell.display()),
            },
            Cell::DateTime(t) => match excel_datetime(t) {
                Ok(dt) => {
                    let ws = self.book.worksheet_from_index(self.current)?;
                    ws.write_datetime_with_format(row, col, dt, &self.datetime)?;
                    Ok(())
                }
                Err(_) => self.text(spec, row, i, key, &cell.display()),
            },
        }
    }
}

impl Sink for XlsxSink {
    fn start(&mut self, sheets: &[&'static SheetSpec]) -> Result<()> {
        for spec in sheets {
            self.add_sheet(spec).map_err(xlsx)?;
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
        // The row's record (or member, group …): its first cell.
        let key = cells.first().map(Cell::display).unwrap_or_default();
        let fail = |i: usize, reason: String| Error::Row {
            sheet: spec.title,
            row: row + 1,
            key: format!("{} {key}", spec.columns[0].title),
            column: spec.columns[i.min(spec.columns.len() - 1)].title,
            reason,
        };
        if row > MAX_ROW {
            return Err(fail(0, reason_zh(&XlsxError::RowColumnLimitError)));
        }
        // As tall as its longest wrapped text, so the row prints whole.
        let tallest = self.layouts[self.current]
            .wrap
            .iter()
            .filter_map(|&c| match cells.get(usize::from(c)) {
                Some(Cell::Text(s)) => Some(print::lines(s, spec.columns[usize::from(c)].width)),
                _ => None,
            })
            .max();
        if let Some(height) = tallest.and_then(print::row_height) {
            let ws = self.book.worksheet_from_index(self.current).map_err(xlsx)?;
            ws.set_row_height(row, height)
                .map_err(|e| fail(0, reason_zh(&e)))?;
        }
        for (i, cell) in cells.iter().enumerate() {
            self.cell(spec, row, i, &key, cell)
                .map_err(|e| fail(i, reason_zh(&e)))?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        let mut filters: Vec<(usize, u32, usize)> = self
            .sheets
            .iter()
            .enumerate()
            .map(|(i, spec)| (i, self.rows[i], spec.columns.len()))
            .collect();
        if let Some((index, last)) = self.overflow {
            filters.push((index, last, OVERFLOW.columns.len()));
        }
        for (i, last, columns) in filters {
            let (first_col, last_col) = (self.layouts[i].first, self.layouts[i].last);
            let ws = self.book.worksheet_from_index(i).map_err(xlsx)?;
            ws.autofilter(0, 0, last, (columns - 1) as u16)
                .map_err(xlsx)?;
            ws.set_print_area(0, first_col, last, last_col)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue10_fit_cell_counts_utf16_units_and_cuts_on_a_char_boundary() {
        let short = "𠮷".repeat(16_383);
        assert_eq!(fit_cell(&short), short.as_str(), "32,766 units fit");
        let long = "𠮷".repeat(16_384);
        assert_eq!(utf16_len(&long), 32_768);
        let fitted = fit_cell(&long);
        assert!(utf16_len(&fitted) <= MAX_CELL_UNITS);
        assert!(fitted.ends_with(CUT_MARKER));
        let head = fitted.strip_suffix(CUT_MARKER).unwrap();
        assert!(long.starts_with(head));
        assert!(head.chars().all(|c| c == '𠮷'));
        // An odd budget: never half a surrogate pair.
        assert_eq!(prefix_within("a𠮷", 2), "a");
        assert_eq!(prefix_within("a𠮷", 3), "a𠮷");
        let parts = cell_parts(&long);
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| utf16_len(p) <= MAX_CELL_UNITS));
        assert_eq!(parts.concat(), long);
        assert!(cell_parts("").is_empty());
    }

    static SHEET: SheetSpec = SheetSpec {
        key: "test",
        title: "测试",
        columns: &[
            text_col("记录编号", 10.0, ColumnKind::Text),
            text_col("文字", 10.0, ColumnKind::Text),
            text_col("数值", 10.0, ColumnKind::Number),
            text_col("日期", 10.0, ColumnKind::Date),
            text_col("链接", 10.0, ColumnKind::Text),
        ],
        print: Print {
            wrap: &["文字"],
            ..Print::columns("文字", "日期")
        },
    };

    #[test]
    fn issue10_xlsx_sink_never_fails_on_excel_limits() {
        use calamine::{Data, Reader};
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("t.xlsx");
        let long = format!("甲{}", "𠮷".repeat(40_000));
        let link = format!("https://example.org/{}", "a".repeat(3_000));
        let old = chrono::NaiveDate::from_ymd_opt(1850, 3, 1).unwrap();
        let mut sink = XlsxSink::new(&path, "2025-01-01 至 2025-12-31".into(), "全部".into());
        sink.start(&[&SHEET]).unwrap();
        sink.sheet(&SHEET).unwrap();
        sink.row(&[
            Cell::Text("r-1".into()),
            Cell::Text(long.clone()),
            // A long text in a number column (a conflict shows every value as text).
            Cell::Text(long.clone()),
            Cell::Date(old),
            Cell::Link(link.clone()),
        ])
        .unwrap();
        sink.row(&[
            Cell::Text("r-2".into()),
            Cell::Text("短".into()),
            Cell::Int(-3),
            Cell::Empty,
            Cell::Empty,
        ])
        .unwrap();
        sink.finish().unwrap();

        let mut book: calamine::Xlsx<_> = calamine::open_workbook(&path).unwrap();
        let rows: Vec<Vec<Data>> = book
            .worksheet_range("测试")
            .unwrap()
            .rows()
            .map(|r| r.to_vec())
            .collect();
        for c in [1, 2] {
            let Data::String(s) = &rows[1][c] else {
                panic!("{:?}", rows[1][c])
            };
            assert!(utf16_len(s) <= MAX_CELL_UNITS && s.ends_with(CUT_MARKER));
        }
        assert_eq!(rows[1][3], Data::String("1850-03-01".into()));
        assert_eq!(rows[1][4], Data::String(link));
        assert_eq!(rows[2][2], Data::Float(-3.0), "numbers stay numbers");
        let more: Vec<Vec<Data>> = book
            .worksheet_range(OVERFLOW_SHEET)
            .unwrap()
            .rows()
            .map(|r| r.to_vec())
            .collect();
        for column in ["文字", "数值"] {
            let parts: Vec<&Vec<Data>> = more
                .iter()
                .filter(|r| r[3] == Data::String(column.into()))
                .collect();
            assert_eq!(parts.len(), 3, "80,001 units in three parts");
            let full: String = parts.iter().map(|r| r[6].to_string()).collect();
            assert_eq!(full, long);
            assert!(parts.iter().all(|r| r[0] == Data::String("测试".into())
                && r[1] == Data::Float(2.0)
                && r[2] == Data::String("r-1".into())));
        }
        for e in [
            XlsxError::MaxStringLengthExceeded,
            XlsxError::RowColumnLimitError,
            XlsxError::DateTimeRangeError("year".into()),
        ] {
            assert!(reason_zh(&e).contains("请"), "{e}");
        }
    }
}
