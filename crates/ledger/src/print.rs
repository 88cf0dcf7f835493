//! How a ledger lies on paper (issue 13): 台账 are printed and bound for the assessment.
//!
//! Every sheet prints on A4 with the columns people read (its [`Print`](crate::sink::Print)
//! run: ids, hashes and links left out), its header row repeated on every page, a page header
//! naming the ledger, the period and the scope, and `第 N 页 共 M 页` in the footer. The width
//! decides the rest:
//!
//! - a sheet whose columns fit a portrait page at 80 % or more prints portrait, fitted to the
//!   page's width (the coverage gaps);
//! - else landscape, fitted to the page's width when that takes 60 % or more (the summary with
//!   its three columns on one page, 六个一, the plans, the topics);
//! - else (activities, opinions, pair assistance, participation) landscape at the largest scale
//!   of at least 60 % that needs no more pages across than 60 % does, the page breaking only
//!   between whole column groups (never one column alone), the row's key column (its date, the
//!   household's head, the member's name) repeated at the left of the continuation page, pages
//!   numbered over then down so the two halves of the same rows follow each other in the
//!   binder.
//!
//! Widths are estimated as LibreOffice draws them, measured on its PDF: a column of width `w`
//! (as the workbook stores it, `w + 0.71`) takes 7 pt at 100 %, a quarter more than Excel's
//! `7w + 5` pixels at 96 dpi, so what fits LibreOffice fits Excel; 5 % is kept to spare. The
//! LibreOffice test (`tests/print.rs`) checks the pages it actually makes.
//!
//! Wrapped rows get their height from their longest text ([`row_height`]): LibreOffice does not
//! fit row heights when it opens a workbook, so a wrapped cell would print its first line only.
//! Lines are counted as Excel breaks them (a CJK character 14.7 pixels of the `7w + 5`),
//! the narrower of the two, so no line is lost in either.

use crate::sink::SheetSpec;

/// Excel's paper code for A4.
pub(crate) const A4: u8 = 9;
/// No ledger prints smaller than this.
pub const MIN_SCALE: u16 = 60;
/// A sheet prints portrait when its columns fit a portrait page at this scale or more.
pub const PORTRAIT_SCALE: u16 = 80;
/// Margins in inches: left, right, top, bottom, header, footer.
pub(crate) const MARGINS: [f64; 6] = [0.5, 0.5, 0.75, 0.75, 0.3, 0.3];
/// The ledger's name in every page header.
pub const BOOK_TITLE: &str = "三进工作台账";
/// The page footer: 第 N 页 共 M 页.
pub const FOOTER: &str = "&C第 &P 页 共 &N 页";
/// Excel's limit on a page header, in UTF-16 units.
const MAX_HEADER_UNITS: usize = 255;

/// The part of the page's width planned for columns.
const SLACK: f64 = 0.95;

/// The printable width of an A4 page between the margins, in millimetres.
fn page_mm(landscape: bool) -> f64 {
    let paper = if landscape { 297.0 } else { 210.0 };
    (paper - (MARGINS[0] + MARGINS[1]) * 25.4) * SLACK
}

/// A column `width` characters wide, in millimetres at 100 % (as LibreOffice prints it).
pub fn column_mm(width: f64) -> f64 {
    (width + 0.71) * 7.0 * 25.4 / 72.0
}

/// The height of one line of 11-point text, in points (CJK fonts set it a little taller than
/// Excel's 15).
pub const LINE_PT: f64 = 16.0;
/// Excel's tallest row, in points.
const MAX_ROW_PT: f64 = 409.0;

/// How many lines `text` takes in a wrapped column `width` characters wide, as Excel breaks it:
/// `7 * width + 5` pixels less 4 of padding, a wide (CJK, full-width) character 11 points at
/// 96 dpi (14.7 pixels), any other 8 (Calibri's widest).
pub fn lines(text: &str, width: f64) -> usize {
    let room = (width * 7.0 + 5.0 - 4.0).max(15.0);
    text.split('\n')
        .map(|line| {
            let px: f64 = line
                .chars()
                .map(|c| {
                    if (c as u32) >= 0x1100 {
                        11.0 * 96.0 / 72.0
                    } else {
                        8.0
                    }
                })
                .sum();
            ((px / room).ceil() as usize).max(1)
        })
        .sum()
}

/// The height of a row whose tallest wrapped cell takes `lines` lines, in points; `None` for a
/// single line (the default height).
pub fn row_height(lines: usize) -> Option<f64> {
    (lines > 1).then(|| (lines as f64 * LINE_PT + 2.0).min(MAX_ROW_PT))
}

/// How wide the page is printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fit {
    /// Fitted to one page's width (the scale the spreadsheet computes, estimated here).
    Width { estimated: u16 },
    /// At a fixed scale, the page breaking before each of these columns.
    Scale { percent: u16, breaks: Vec<u16> },
}

/// A sheet's print layout: which columns, which way up, how wide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The first and last printed columns (0-based).
    pub first: u16,
    pub last: u16,
    pub landscape: bool,
    pub fit: Fit,
    /// The columns repeated at the left of every page after a break.
    pub repeat: Option<(u16, u16)>,
    /// The wrapped columns.
    pub wrap: Vec<u16>,
}

impl Layout {
    /// Lays `spec` out on A4. Panics when its [`Print`](crate::sink::Print) names a column it
    /// does not have (a unit test runs every sheet).
    pub fn of(spec: &SheetSpec) -> Layout {
        let index = |title: &str| -> u16 {
            spec.columns
                .iter()
                .position(|c| c.title == title)
                .unwrap_or_else(|| panic!("sheet {} has no column {title}", spec.key))
                as u16
        };
        let p = &spec.print;
        let (first, last) = (index(p.first), index(p.last));
        assert!(first <= last, "{}: print run backwards", spec.key);
        let width = |from: u16, to: u16| -> f64 {
            (from..=to)
                .map(|c| column_mm(spec.columns[c as usize].width))
                .sum()
        };
        let whole = width(first, last);
        let percent = |landscape: bool| ((page_mm(landscape) / whole) * 100.0).min(100.0) as u16;
        let repeat = p.key.map(|(a, b)| (index(a), index(b)));
        let wrap = p.wrap.iter().map(|t| index(t)).collect();
        let layout = |landscape, fit| Layout {
            first,
            last,
            landscape,
            fit,
            repeat,
            wrap,
        };
        if percent(false) >= PORTRAIT_SCALE {
            return layout(
                false,
                Fit::Width {
                    estimated: percent(false),
                },
            );
        }
        if percent(true) >= MIN_SCALE {
            return layout(
                true,
                Fit::Width {
                    estimated: percent(true),
                },
            );
        }
        // Too wide for one page at 60 %: whole groups side by side.
        let mut starts: Vec<u16> = p.groups.iter().map(|t| index(t)).collect();
        starts.push(first);
        starts.sort_unstable();
        starts.dedup();
        assert!(
            starts.iter().all(|s| (first..=last).contains(s)),
            "{}: a group outside the printed columns",
            spec.key
        );
        let groups: Vec<(u16, u16)> = starts
            .iter()
            .enumerate()
            .map(|(i, &s)| (s, starts.get(i + 1).map_or(last, |n| n - 1)))
            .collect();
        let key_mm = repeat.map_or(0.0, |(a, b)| width(a, b));
        // The columns starting a new page at `scale` percent; `None` when a group alone is
        // wider than a page.
        let pack = |scale: u16| -> Option<Vec<u16>> {
            let room = page_mm(true) * 100.0 / f64::from(scale);
            let mut breaks = vec![];
            let mut used = 0.0;
            for &(a, b) in &groups {
                let w = width(a, b);
                if used > 0.0 && used + w > room {
                    breaks.push(a);
                    used = key_mm;
                }
                used += w;
                if used > room {
                    return None;
                }
            }
            Some(breaks)
        };
        let pages = pack(MIN_SCALE).map(|b| b.len());
        let (percent, breaks) = (MIN_SCALE..=100)
            .rev()
            .find_map(|s| pack(s).filter(|b| Some(b.len()) == pages).map(|b| (s, b)))
            // A group wider than a page at 60 % (no ledger has one: a unit test checks).
            .unwrap_or_else(|| (MIN_SCALE, starts[1..].to_vec()));
        layout(true, Fit::Scale { percent, breaks })
    }

    /// The printed columns of each page across (first and last).
    pub fn pages(&self) -> Vec<(u16, u16)> {
        let breaks: &[u16] = match &self.fit {
            Fit::Width { .. } => &[],
            Fit::Scale { breaks, .. } => breaks,
        };
        let mut pages = vec![];
        let mut from = self.first;
        for &b in breaks {
            pages.push((from, b - 1));
            from = b;
        }
        pages.push((from, self.last));
        pages
    }
}

/// Escapes `&` for a page header or footer.
fn escape(s: &str) -> String {
    s.replace('&', "&&")
}

/// The page header: the ledger's name and the sheet's at the left, the period in the middle,
/// the scope at the right (cut with … to Excel's limit of 255 units).
pub fn header(sheet: &str, period: &str, scope: &str) -> String {
    let head = format!(
        "&L{} · {}&C统计期间：{}&R统计范围：",
        escape(BOOK_TITLE),
        escape(sheet),
        escape(period)
    );
    let units = |s: &str| s.chars().map(char::len_utf16).sum::<usize>();
    let whole = escape(scope);
    if units(&head) + units(&whole) <= MAX_HEADER_UNITS {
        return head + &whole;
    }
    let mut cut = String::new();
    for c in scope.chars() {
        let c = escape(c.encode_utf8(&mut [0; 4]));
        if units(&head) + units(&cut) + units(&c) + 1 > MAX_HEADER_UNITS {
            break;
        }
        cut.push_str(&c);
    }
    head + &cut + "…"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SHEETS;

    #[test]
    fn issue13_every_sheet_lays_out_at_60_percent_or_more_in_whole_groups() {
        for spec in SHEETS.iter().copied().chain([&crate::write_xlsx::OVERFLOW]) {
            let l = Layout::of(spec);
            let scale = match &l.fit {
                Fit::Width { estimated } => *estimated,
                Fit::Scale { percent, .. } => *percent,
            };
            assert!(scale >= MIN_SCALE, "{}: {scale} %", spec.key);
            let mm = |a: u16, b: u16| -> f64 {
                (a..=b)
                    .map(|c| column_mm(spec.columns[usize::from(c)].width))
                    .sum()
            };
            let room = page_mm(l.landscape) * 100.0 / f64::from(scale);
            for (n, (a, b)) in l.pages().into_iter().enumerate() {
                assert!(b > a, "{}: a page of one column ({a})", spec.key);
                // A continuation page repeats the key columns; every page fits its width.
                let key = match (n, l.repeat) {
                    (1.., Some((x, y))) => mm(x, y),
                    _ => 0.0,
                };
                assert!(
                    key + mm(a, b) <= room + 0.01,
                    "{}: page {n} {l:?}",
                    spec.key
                );
            }
            eprintln!("{}: {l:?}", spec.key);
            // Ids, hashes and links are never printed (but on the continuation sheet of cut
            // texts, whose rows the record id alone finds).
            if spec.key == "overflow" {
                continue;
            }
            for c in &spec.columns[l.first as usize..=l.last as usize] {
                assert!(
                    ![
                        "记录编号",
                        "委员编号",
                        "活动组编号",
                        "照片编号",
                        "照片链接",
                        "GPS"
                    ]
                    .contains(&c.title)
                        && !c.title.ends_with("记录编号"),
                    "{}: {}",
                    spec.key,
                    c.title
                );
            }
        }
        let by_key = |k: &str| Layout::of(SHEETS.iter().find(|s| s.key == k).unwrap());
        let summary = by_key("summary");
        assert_eq!((summary.first, summary.last), (0, 2), "all three columns");
        assert!(matches!(summary.fit, Fit::Width { .. }));
        let acts = by_key("activities");
        assert!(acts.landscape);
        let Fit::Scale { percent, breaks } = &acts.fit else {
            panic!("{acts:?}")
        };
        assert!(*percent >= MIN_SCALE && breaks.len() == 1, "{acts:?}");
    }

    #[test]
    fn issue13_page_header_fits_excels_limit_and_escapes_ampersands() {
        let h = header("活动台账", "2025-01-01 至 2025-12-31", "活动组：A&B");
        assert_eq!(
            h,
            "&L三进工作台账 · 活动台账&C统计期间：2025-01-01 至 2025-12-31&R统计范围：活动组：A&&B"
        );
        let long = header("活动台账", "2025-01-01 至 2025-12-31", &"&组".repeat(300));
        assert!(long.encode_utf16().count() <= MAX_HEADER_UNITS);
        assert!(long.encode_utf16().count() > 200 && long.ends_with('…'));
        let scope = long.split("&R").nth(1).unwrap();
        assert!(
            !scope.replace("&&", "").contains('&'),
            "no half escape: {scope}"
        );
    }
}
