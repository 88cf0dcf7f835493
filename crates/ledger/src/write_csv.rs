//! The CSV export: one file per ledger in a zip, each UTF-8 with a byte-order mark (so Chinese
//! Excel and WPS open it as UTF-8), CRLF line ends, fields quoted when needed (RFC 4180). The zip
//! entries carry a fixed time, so the same data gives byte-identical files and archive.
//!
//! CSV injection: a text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return would
//! be read by Excel, WPS or LibreOffice as a formula (or a DDE call); such a text gets a leading
//! `'`, which the spreadsheet shows as text. Numbers, dates and empty cells are written as they
//! are (a negative number stays a number). CSV has no cell-length limit: texts are never cut.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::sink::{Cell, SheetSpec, Sink};
use crate::{Error, Result, io_err};

/// The name of a ledger's file in the zip: `01_活动台账.csv`.
pub fn entry_name(sheets: &[&SheetSpec], spec: &SheetSpec) -> String {
    let i = sheets
        .iter()
        .position(|s| s.key == spec.key)
        .unwrap_or(sheets.len());
    format!("{:02}_{}.csv", i, spec.title)
}

/// One CSV field.
pub fn field(s: &str, out: &mut String) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// The first characters that make a spreadsheet read a text as a formula (or a DDE call).
pub const FORMULA_PREFIXES: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// The text of one cell in the CSV, before quoting: a text (or link) cell starting like a formula
/// is prefixed with `'`; numbers, dates and empty cells are as [`Cell::display`] shows them.
pub fn csv_text(c: &Cell) -> Cow<'_, str> {
    match c {
        Cell::Text(s) | Cell::Link(s) if s.starts_with(FORMULA_PREFIXES) => {
            Cow::Owned(format!("'{s}"))
        }
        Cell::Text(s) | Cell::Link(s) => Cow::Borrowed(s.as_str()),
        other => Cow::Owned(other.display()),
    }
}

fn zip_err(e: zip::result::ZipError) -> Error {
    Error::Zip(e.to_string())
}

pub(crate) struct CsvZipSink {
    path: PathBuf,
    zip: Option<ZipWriter<BufWriter<File>>>,
    sheets: Vec<&'static SheetSpec>,
    line: String,
}

impl CsvZipSink {
    pub(crate) fn create(path: &Path) -> Result<CsvZipSink> {
        let file = File::create(path).map_err(io_err(path))?;
        Ok(CsvZipSink {
            path: path.to_path_buf(),
            zip: Some(ZipWriter::new(BufWriter::with_capacity(1 << 16, file))),
            sheets: vec![],
            line: String::with_capacity(4096),
        })
    }

    fn zip(&mut self) -> &mut ZipWriter<BufWriter<File>> {
        self.zip.as_mut().expect("not finished")
    }

    fn write_line(&mut self) -> Result<()> {
        self.line.push_str("\r\n");
        let line = std::mem::take(&mut self.line);
        let r = self.zip().write_all(line.as_bytes());
        self.line = line;
        self.line.clear();
        r.map_err(io_err(&self.path))
    }
}

impl Sink for CsvZipSink {
    fn start(&mut self, sheets: &[&'static SheetSpec]) -> Result<()> {
        self.sheets = sheets.to_vec();
        Ok(())
    }

    fn sheet(&mut self, spec: &'static SheetSpec) -> Result<()> {
        let name = entry_name(&self.sheets, spec);
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            // The fastest deflate level: CSV compresses well at any level, and the export is
            // bound by it at a province's size.
            .compression_level(Some(1))
            .last_modified_time(zip::DateTime::default());
        self.zip().start_file(name, options).map_err(zip_err)?;
        let bom = "\u{feff}".as_bytes();
        let path = self.path.clone();
        self.zip().write_all(bom).map_err(io_err(&path))?;
        for (i, c) in spec.columns.iter().enumerate() {
            if i > 0 {
                self.line.push(',');
            }
            let mut f = String::new();
            field(c.title, &mut f);
            self.line.push_str(&f);
        }
        self.write_line()
    }

    fn row(&mut self, cells: &[Cell]) -> Result<()> {
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                self.line.push(',');
            }
            // A text starting like a formula is not run as one (CSV injection); numbers are
            // written as numbers.
            let mut f = String::new();
            field(&csv_text(c), &mut f);
            self.line.push_str(&f);
        }
        self.write_line()
    }

    fn finish(&mut self) -> Result<()> {
        let zip = self.zip.take().expect("finished once");
        let mut inner = zip.finish().map_err(zip_err)?;
        inner.flush().map_err(io_err(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::sink::{Column, ColumnKind};

    static SHEET: SheetSpec = SheetSpec {
        key: "test",
        title: "测试",
        columns: &[
            Column {
                title: "文字",
                width: 10.0,
                field: None,
                kind: ColumnKind::Text,
            },
            Column {
                title: "数值",
                width: 10.0,
                field: None,
                kind: ColumnKind::Number,
            },
        ],
        print: crate::sink::Print::columns("文字", "数值"),
    };

    #[test]
    fn issue10_csv_sink_neutralises_every_formula_prefix_and_keeps_numbers() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("t.zip");
        let mut sink = CsvZipSink::create(&path).unwrap();
        sink.start(&[&SHEET]).unwrap();
        sink.sheet(&SHEET).unwrap();
        let texts = [
            "=1+1",
            "+86 10 1234",
            "-2+3",
            "@SUM(A1)",
            "\t=cmd",
            "\r=cmd",
            "-",
            "普通文字",
        ];
        for (i, t) in texts.iter().enumerate() {
            sink.row(&[Cell::Text(t.to_string()), Cell::Int(-(i as i64) - 1)])
                .unwrap();
        }
        sink.row(&[Cell::Empty, Cell::Num(-2.5)]).unwrap();
        sink.finish().unwrap();
        let mut zip = zip::ZipArchive::new(File::open(&path).unwrap()).unwrap();
        let mut text = String::new();
        zip.by_index(0).unwrap().read_to_string(&mut text).unwrap();
        let expected = "\u{feff}文字,数值\r\n\
             '=1+1,-1\r\n\
             '+86 10 1234,-2\r\n\
             '-2+3,-3\r\n\
             '@SUM(A1),-4\r\n\
             '\t=cmd,-5\r\n\
             \"'\r=cmd\",-6\r\n\
             '-,-7\r\n\
             普通文字,-8\r\n\
             ,-2.5\r\n";
        assert_eq!(text, expected);
    }
}
