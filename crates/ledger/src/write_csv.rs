//! The CSV export: one file per ledger in a zip, each UTF-8 with a byte-order mark (so Chinese
//! Excel and WPS open it as UTF-8), CRLF line ends, fields quoted when needed (RFC 4180). The zip
//! entries carry a fixed time, so the same data gives byte-identical files and archive.

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
            match c {
                Cell::Text(s) => {
                    let mut f = String::new();
                    // A text starting like a formula is not run as one by Excel (CSV injection).
                    if s.starts_with(['=', '+', '@']) {
                        field(&format!("'{s}"), &mut f);
                    } else {
                        field(s, &mut f);
                    }
                    self.line.push_str(&f);
                }
                other => self.line.push_str(&other.display()),
            }
        }
        self.write_line()
    }

    fn finish(&mut self) -> Result<()> {
        let zip = self.zip.take().expect("finished once");
        let mut inner = zip.finish().map_err(zip_err)?;
        inner.flush().map_err(io_err(&self.path))
    }
}
