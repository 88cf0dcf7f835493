//! Issue 13 (point 8): the ledger prints the way staff file it. The workbook of the committed
//! fixtures over the demo's period (2025–2026, photos linked to the console) is converted to PDF
//! by LibreOffice (Debian's `libreoffice-calc`, headless, in a private profile, bounded in time),
//! and every page is read back with poppler's `pdftotext`: each page names its ledger, period
//! and scope in the page header, carries its ledger's header row, numbers itself 第 N 页 共 M 页,
//! and no page holds a single printed column. `scripts/test` installs both tools.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::NaiveDate;
use common::{pdf_pages, server, zip_text};
use sanjin_ledger::print::{FOOTER, Fit, Layout, MIN_SCALE};
use sanjin_ledger::{Format, Ledger, Query, SHEETS, Viewer};

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

/// The demo's export: two years of the committed fixtures, photos linked to the console.
fn demo_query() -> Query {
    let mut q = Query::new(d(2025, 1, 1), d(2026, 12, 31));
    q.console_url = Some("https://127.0.0.1:8443".into());
    q
}

/// The attributes of the first `<tag …>` element of `xml`, as name → value.
fn attrs(xml: &str, tag: &str) -> Option<BTreeMap<String, String>> {
    let start = xml.find(&format!("<{tag} "))? + tag.len() + 2;
    let end = start + xml[start..].find('>')?;
    let mut out = BTreeMap::new();
    for part in xml[start..end]
        .trim_end_matches('/')
        .split('"')
        .collect::<Vec<_>>()
        .chunks(2)
    {
        if let [name, value] = part {
            out.insert(
                name.trim().trim_end_matches('=').to_string(),
                value.to_string(),
            );
        }
    }
    Some(out)
}

/// The text of `<definedName name="{name}" localSheetId="{sheet}">`, sheet names unquoted.
fn defined_name(workbook: &str, name: &str, sheet: usize) -> Option<String> {
    let open = format!(r#"<definedName name="{name}" localSheetId="{sheet}">"#);
    let start = workbook.find(&open)? + open.len();
    let end = start + workbook[start..].find("</definedName>")?;
    Some(workbook[start..end].replace('\'', ""))
}

/// The column's letters: 0 → A, 27 → AB.
fn letters(mut col: usize) -> String {
    let mut s = String::new();
    loop {
        s.insert(0, (b'A' + (col % 26) as u8) as char);
        if col < 26 {
            return s;
        }
        col = col / 26 - 1;
    }
}

/// Issue 13: the print setup of every sheet, read from the workbook's XML — paper, orientation,
/// fit to width or scale with its column breaks, the print area (the columns people read), the
/// print titles (the header row, and the key column on continuation pages), the page header
/// (ledger, period, scope as the viewer may see it) and footer; long texts wrapped in rows as
/// tall as their text.
#[test]
fn issue13_xlsx_holds_the_print_setup_of_every_sheet() {
    let tmp = tempfile::tempdir().unwrap();
    server(tmp.path());
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    let xlsx = tmp.path().join("台账.xlsx");
    // A group leader's export: the scope in every page header is the leader's group.
    let leader = Viewer::Leader {
        group: "group-03".into(),
    };
    let report = ledger
        .export(
            &leader,
            &Query::new(d(2025, 1, 1), d(2025, 12, 31)),
            Format::Xlsx,
            &xlsx,
        )
        .unwrap();
    let workbook = zip_text(&xlsx, "xl/workbook.xml");
    let styles = zip_text(&xlsx, "xl/styles.xml");
    assert!(styles.contains(r#"<alignment vertical="top" wrapText="1"/>"#));
    for (i, spec) in SHEETS.iter().enumerate() {
        let xml = zip_text(&xlsx, &format!("xl/worksheets/sheet{}.xml", i + 1));
        let layout = Layout::of(spec);
        let setup =
            attrs(&xml, "pageSetup").unwrap_or_else(|| panic!("{}: no pageSetup", spec.key));
        let at = |k: &str| setup.get(k).map(String::as_str);
        assert_eq!(at("paperSize"), Some("9"), "{}: A4", spec.key);
        let wide = spec.columns.len() > 8;
        assert_eq!(
            at("orientation"),
            Some(if layout.landscape {
                "landscape"
            } else {
                "portrait"
            }),
            "{}",
            spec.key
        );
        assert_eq!(
            layout.landscape,
            wide || spec.key == "summary" || spec.key == "topics",
            "{}",
            spec.key
        );
        match &layout.fit {
            Fit::Width { .. } => {
                assert_eq!(
                    attrs(&xml, "pageSetUpPr").and_then(|a| a.get("fitToPage").cloned()),
                    Some("1".into()),
                    "{}",
                    spec.key
                );
                // One page wide (Excel's default when fitToWidth is left out), any pages long.
                assert!(matches!(at("fitToWidth"), None | Some("1")), "{}", spec.key);
                assert_eq!(at("fitToHeight"), Some("0"), "{}", spec.key);
                assert!(!xml.contains("<colBreaks"), "{}", spec.key);
            }
            Fit::Scale { percent, breaks } => {
                assert!(*percent >= MIN_SCALE && *percent <= 100);
                assert_eq!(
                    at("scale"),
                    Some(percent.to_string().as_str()),
                    "{}",
                    spec.key
                );
                assert_eq!(at("pageOrder"), Some("overThenDown"), "{}", spec.key);
                assert!(!xml.contains("fitToPage"), "{}", spec.key);
                // Breaks only before a column that starts a group.
                assert!(!breaks.is_empty());
                for b in breaks {
                    assert!(xml.contains(&format!(r#"<brk id="{b}" max="1048575" man="1"/>"#)));
                    assert!(
                        spec.print
                            .groups
                            .contains(&spec.columns[usize::from(*b)].title)
                    );
                }
            }
        }
        // The print area: the columns people read, every row.
        let col = |t: &str| spec.columns.iter().position(|c| c.title == t).unwrap();
        let (first, last) = (col(spec.print.first), col(spec.print.last));
        assert_eq!(
            defined_name(&workbook, "_xlnm.Print_Area", i),
            Some(format!(
                "{}!${}$1:${}${}",
                spec.title,
                letters(first),
                letters(last),
                report.rows_of(spec.key) + 1
            )),
            "{}",
            spec.key
        );
        let ids = [
            "记录编号",
            "委员编号",
            "活动组编号",
            "照片编号",
            "照片链接",
            "GPS",
            "关联活动",
        ];
        for c in &spec.columns[first..=last] {
            assert!(
                !ids.contains(&c.title) && !c.title.ends_with("编号"),
                "{}: {}",
                spec.key,
                c.title
            );
        }
        // The header row on every page; on continuation pages the row's key column too.
        let titles = match (&layout.fit, spec.print.key) {
            (Fit::Scale { .. }, Some((a, b))) => format!(
                "{t}!${}:${},{t}!$1:$1",
                letters(col(a)),
                letters(col(b)),
                t = spec.title
            ),
            _ => format!("{}!$1:$1", spec.title),
        };
        assert_eq!(
            defined_name(&workbook, "_xlnm.Print_Titles", i),
            Some(titles),
            "{}",
            spec.key
        );
        // Page header and footer.
        let header = format!(
            "<oddHeader>&amp;L三进工作台账 · {}&amp;C统计期间：2025-01-01 至 2025-12-31&amp;R统计范围：活动组：市政协第三委员活动组</oddHeader>",
            spec.title
        );
        assert!(xml.contains(&header), "{}: {header}", spec.key);
        assert_eq!(FOOTER, "&C第 &P 页 共 &N 页");
        assert!(xml.contains("<oddFooter>&amp;C第 &amp;P 页 共 &amp;N 页</oddFooter>"));
    }
    // The summary prints its three columns on one page's width; the long ledgers at 60 % or
    // more, two pages across.
    let sheet = |key: &str| Layout::of(SHEETS.iter().find(|s| s.key == key).unwrap());
    assert!(matches!(sheet("summary").fit, Fit::Width { .. }));
    for key in ["activities", "opinions"] {
        let Fit::Scale { breaks, .. } = sheet(key).fit else {
            panic!("{key}")
        };
        assert_eq!(breaks.len(), 1, "{key}: two pages across");
    }
    // A visit's summary wraps, in a row as tall as its text.
    let acts = zip_text(&xlsx, "xl/worksheets/sheet2.xml");
    assert!(
        acts.contains(r#"customHeight="1""#),
        "rows with wrapped text get their height"
    );
}

#[test]
fn issue13_libreoffice_prints_every_page_with_its_header_row_and_no_lone_column() {
    let tmp = tempfile::tempdir().unwrap();
    server(tmp.path());
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    let xlsx = tmp.path().join("三进台账.xlsx");
    ledger
        .export(&Viewer::Office, &demo_query(), Format::Xlsx, &xlsx)
        .unwrap();
    let pages = pdf_pages(&xlsx, tmp.path());
    eprintln!("the workbook prints on {} pages", pages.len());
    if let Ok(keep) = std::env::var("SANJIN_PRINT_KEEP") {
        std::fs::copy(&xlsx, Path::new(&keep).join("ledger.xlsx")).unwrap();
        std::fs::write(Path::new(&keep).join("ledger.txt"), pages.join("\u{c}")).unwrap();
    }
    let total = pages.len();
    let period = "统计期间：2025-01-01 至 2026-12-31";
    let mut seen: BTreeMap<&str, (usize, BTreeSet<&str>)> = BTreeMap::new();
    for (n, page) in pages.iter().enumerate() {
        let lines: Vec<&str> = page.lines().filter(|l| !l.trim().is_empty()).collect();
        let at = || format!("page {} of {total}:\n{page}", n + 1);
        // The page header: the ledger's name, the sheet's, the period and the scope.
        let head = lines.first().unwrap_or_else(|| panic!("{}", at()));
        let spec = SHEETS
            .iter()
            .find(|s| head.contains(&format!("三进工作台账 · {}", s.title)))
            .unwrap_or_else(|| panic!("no ledger named in the page header, {}", at()));
        assert!(
            head.contains(period) && head.contains("统计范围：全部"),
            "{}",
            at()
        );
        // The footer: 第 N 页 共 M 页.
        assert_eq!(
            lines.last().unwrap().trim(),
            format!("第 {} 页 共 {total} 页", n + 1),
            "{}",
            at()
        );
        // The header row, right under the page header: nothing but the sheet's titles.
        let mut row = lines[1].to_string();
        let mut titles: Vec<&str> = spec.columns.iter().map(|c| c.title).collect();
        titles.sort_by_key(|t| std::cmp::Reverse(t.len()));
        let mut found = BTreeSet::new();
        for t in titles {
            if row.contains(t) {
                row = row.replacen(t, " ", 1);
                found.insert(t);
            }
        }
        assert!(
            row.trim().is_empty() && !found.is_empty(),
            "the header row is missing ({row:?} left), {}",
            at()
        );
        // No printed column on a page of its own: two or more besides the repeated key.
        let key: BTreeSet<&str> = spec.print.key.map_or(BTreeSet::new(), |(a, b)| {
            let i = spec.columns.iter().position(|c| c.title == a).unwrap();
            let j = spec.columns.iter().position(|c| c.title == b).unwrap();
            spec.columns[i..=j].iter().map(|c| c.title).collect()
        });
        assert!(
            found.difference(&key).count() >= 2,
            "a column alone on a page: {found:?}, {}",
            at()
        );
        if spec.key == "summary" {
            assert_eq!(
                found.len(),
                3,
                "the summary's three columns together, {}",
                at()
            );
        }
        let entry = seen.entry(spec.title).or_default();
        entry.0 += 1;
        entry.1.extend(found);
    }
    // Every ledger printed, every column people read on paper, no id, hash or link.
    for spec in SHEETS {
        let (count, printed) = &seen[spec.title];
        let first = spec
            .columns
            .iter()
            .position(|c| c.title == spec.print.first)
            .unwrap();
        let last = spec
            .columns
            .iter()
            .position(|c| c.title == spec.print.last)
            .unwrap();
        let wanted: BTreeSet<&str> = spec.columns[first..=last].iter().map(|c| c.title).collect();
        assert_eq!(printed, &wanted, "{}", spec.title);
        eprintln!("{}: {count} pages", spec.title);
    }
}
