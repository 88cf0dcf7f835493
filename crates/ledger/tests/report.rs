//! Issue 13 (point 7): the quarterly report (季度通报) for the chairman's meeting. Over the
//! committed fixtures, every quarter of 2025: its figures equal the ledgers' own (the summary,
//! the activity, opinion, "六个一" and coverage ledgers of the same period and scope), for staff
//! and for a group leader; its workbook's native charts draw cells of the 通报 sheet that hold
//! the report's figures; and LibreOffice prints it (title, figures, page header and footer on
//! every page), its first page kept as a PNG.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::{Path, PathBuf};

use calamine::{Data, Reader};
use chrono::{Datelike, NaiveDate};
use common::{page_png, pdf_text, server, to_pdf};
use sanjin_core::domain::{ActivityType, TargetKind};
use sanjin_ledger::{
    Cell, Error, Ledger, Quarter, QuarterlyReport, Query, REPORT_SHEET, Table, Tables, Viewer,
};

const YEAR: i32 = 2025;

fn text(c: &Cell) -> String {
    c.display()
}

/// A number cell of a ledger (none when empty).
fn num(c: &Cell) -> Option<f64> {
    match c {
        Cell::Int(n) => Some(*n as f64),
        Cell::Num(f) => Some(*f),
        Cell::Empty => None,
        other => panic!("not a number: {other:?}"),
    }
}

/// The summary's figure `what`.
fn figure(t: &Tables, what: &str) -> Option<f64> {
    let summary = t.get("summary");
    let row = summary
        .rows
        .iter()
        .find(|r| text(&r[0]) == what)
        .unwrap_or_else(|| panic!("no {what} in the summary"));
    num(&row[1])
}

/// Rows of `table` counted by the text of `column`.
fn count_by(table: &Table, column: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for c in table.column(column) {
        *out.entry(text(c)).or_default() += 1;
    }
    out
}

/// The report's figures against the ledgers of the same quarter and scope.
fn check_against_the_ledgers(ledger: &mut Ledger, viewer: &Viewer, r: &QuarterlyReport) {
    let qr = r.quarter;
    let t = ledger
        .tables(viewer, &Query::new(qr.first_day(), qr.last_day()))
        .unwrap();
    let c = &r.current;
    let at = format!("{} {viewer:?}", qr.zh());
    let n = |v: i64| Some(v as f64);
    assert_eq!(figure(&t, "活动记录（条）"), n(c.visits), "{at}");
    assert_eq!(figure(&t, "社情民意（条）"), n(c.opinions), "{at}");
    assert_eq!(
        figure(&t, "结对帮扶困难户（户）"),
        n(c.households_assisted + c.households_waiting),
        "{at}"
    );
    assert_eq!(
        figure(&t, "帮扶记录（次）"),
        n(c.assistance_entries),
        "{at}"
    );
    assert_eq!(figure(&t, "委员人数"), n(c.members), "{at}");
    assert_eq!(figure(&t, "已参与委员"), n(c.members_active), "{at}");
    assert_eq!(figure(&t, "覆盖率（%）"), c.participation(), "{at}");
    assert_eq!(figure(&t, "计划活动（项）"), n(c.planned), "{at}");
    // Every visit of the scope's groups either carried out plan items or is beyond the plan;
    // a visit carries out at most one item of each owner taking part, so never more items than
    // participations of the visits that did.
    assert_eq!(
        figure(&t, "实际活动（次）"),
        n(c.plan_visits + c.unplanned),
        "{at}"
    );
    assert!(
        c.plan_visits <= c.plan_done && c.plan_done <= c.planned,
        "{at}"
    );

    // The activity ledger's rows by group, target kind, and month and type.
    let acts = t.get("activities");
    assert_eq!(acts.rows.len() as i64, c.visits);
    let by_group = count_by(acts, "活动组");
    for g in &r.groups {
        assert_eq!(
            by_group.get(&g.name).copied().unwrap_or(0),
            g.visits,
            "{at} {}",
            g.name
        );
    }
    let by_target = count_by(acts, "类别");
    for (i, k) in TargetKind::ALL.iter().enumerate() {
        assert_eq!(
            by_target
                .get(&format!("进{}", k.zh()))
                .copied()
                .unwrap_or(0),
            c.by_target[i],
            "{at} {k:?}"
        );
    }
    let mut month_type: BTreeMap<(u32, String), i64> = BTreeMap::new();
    let (day, ty) = (acts.col("日期"), acts.col("活动形式"));
    for row in &acts.rows {
        let Cell::Date(d) = row[day] else {
            panic!("{:?}", row[day])
        };
        *month_type.entry((d.month(), text(&row[ty]))).or_default() += 1;
    }
    let months = qr.months();
    let mut from_report: BTreeMap<(u32, String), i64> = BTreeMap::new();
    for (t, counts) in &r.by_month {
        for (i, n) in counts.iter().enumerate() {
            if *n > 0 {
                from_report.insert((months[i], t.zh().to_string()), *n);
            }
        }
    }
    assert_eq!(from_report, month_type, "{at}");
    let six: i64 = acts
        .column("六个一")
        .iter()
        .filter(|c| text(c) == "是")
        .count() as i64;
    assert_eq!(six, c.six_visits, "{at}");
    let people: i64 = acts
        .column("参加人数")
        .iter()
        .filter_map(|c| num(c))
        .sum::<f64>() as i64;
    assert_eq!(people, c.participations, "{at}");

    // The opinion ledger's states.
    let states = count_by(t.get("opinions"), "办理状态");
    for (s, n) in &r.by_state {
        assert_eq!(states.get(s.zh()).copied().unwrap_or(0), *n, "{at} {s:?}");
    }
    assert_eq!(
        states.get("已反馈").copied().unwrap_or(0),
        c.feedback,
        "{at}"
    );

    // The coverage gaps are the members to be urged.
    let gaps: BTreeSet<String> = t
        .get("coverage")
        .column("姓名")
        .iter()
        .map(|c| text(c))
        .collect();
    let idle: BTreeSet<String> = r
        .idle_members
        .iter()
        .flat_map(|g| g.members.iter().cloned())
        .collect();
    assert_eq!(gaps, idle, "{at}");

    // "六个一" from 1 January to the quarter's end, as that period's ledger counts it.
    let ytd = ledger
        .tables(
            viewer,
            &Query::new(
                NaiveDate::from_ymd_opt(qr.year, 1, 1).unwrap(),
                qr.last_day(),
            ),
        )
        .unwrap();
    let six_sheet = ytd.get("six_ones");
    assert_eq!(six_sheet.rows.len(), r.six_ones.len(), "{at}");
    for (row, s) in six_sheet.rows.iter().zip(&r.six_ones) {
        assert_eq!(text(&row[0]), s.id, "{at}");
        for (i, t) in ActivityType::SIX_ONES.iter().enumerate() {
            assert_eq!(
                num(&row[six_sheet.col(t.zh())]),
                Some(s.counts[i] as f64),
                "{at} {} {t:?}",
                s.id
            );
        }
    }
    assert_eq!(
        figure(&ytd, "六个一全部完成的活动组"),
        n(c.six_complete),
        "{at}"
    );
}

/// Issue 13: every quarter of the fixtures' year, for staff and for a leader, counts what the
/// ledgers count; each quarter's "previous" is the quarter before; the four quarters add up to
/// the year's summary.
#[test]
fn issue13_quarterly_report_equals_the_ledgers_figures() {
    let tmp = tempfile::tempdir().unwrap();
    server(tmp.path());
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    let leader = Viewer::Leader {
        group: "group-03".into(),
    };
    let mut sum = 0;
    let mut reports = vec![];
    for q in 1..=4 {
        let r = ledger.quarterly_report(&Viewer::Office, YEAR, q).unwrap();
        assert_eq!(r.scope, "全部");
        assert!(r.current.visits > 0, "{q}");
        check_against_the_ledgers(&mut ledger, &Viewer::Office, &r);
        let mine = ledger.quarterly_report(&leader, YEAR, q).unwrap();
        assert!(mine.scope.starts_with("活动组："), "{}", mine.scope);
        assert_eq!(mine.groups.len(), 1);
        assert_eq!(mine.groups[0].id, "group-03");
        check_against_the_ledgers(&mut ledger, &leader, &mine);
        sum += r.current.visits;
        reports.push(r);
    }
    for w in reports.windows(2) {
        assert_eq!(w[1].previous_quarter, w[0].quarter);
        assert_eq!(w[1].previous, w[0].current);
    }
    let year = ledger
        .tables(
            &Viewer::Office,
            &Query::new(
                NaiveDate::from_ymd_opt(YEAR, 1, 1).unwrap(),
                NaiveDate::from_ymd_opt(YEAR, 12, 31).unwrap(),
            ),
        )
        .unwrap();
    assert_eq!(figure(&year, "活动记录（条）"), Some(sum as f64));
    let q2 = &reports[1];
    eprintln!(
        "2025Q2: {} visits, {} of {} members took part ({:?} %), {} notes ({} accepted, {} with feedback), {} planned / {} carried out",
        q2.current.visits,
        q2.current.members_active,
        q2.current.members,
        q2.current.participation(),
        q2.current.opinions,
        q2.current.accepted,
        q2.current.feedback,
        q2.current.planned,
        q2.current.plan_done
    );
    // The ranking: most visits first.
    assert!(q2.groups.windows(2).all(|w| w[0].visits >= w[1].visits));
    assert_eq!(q2.groups[0].rank, 1);
    assert!(!q2.notable.is_empty() && q2.notable.len() <= sanjin_ledger::NOTABLE_MAX);
}

#[test]
fn issue13_quarterly_report_is_refused_to_members_and_checks_its_input() {
    let tmp = tempfile::tempdir().unwrap();
    server(tmp.path());
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    let e = ledger
        .quarterly_report(&Viewer::Member, YEAR, 2)
        .unwrap_err();
    assert!(matches!(e, Error::Forbidden(_)), "{e:?}");
    assert!(e.zh().contains("委员账户"), "{}", e.zh());
    for (y, q) in [(YEAR, 5), (YEAR, 0), (1999, 1)] {
        let e = ledger.quarterly_report(&Viewer::Office, y, q).unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e:?}");
    }
    // The default quarter: the last one before today's that has visits (the fixtures' year).
    let today = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
    assert_eq!(
        ledger.default_report_quarter(today).unwrap(),
        Quarter::new(YEAR, 4).unwrap()
    );
    let in_q3 = NaiveDate::from_ymd_opt(2025, 8, 1).unwrap();
    assert_eq!(
        ledger.default_report_quarter(in_q3).unwrap(),
        Quarter::new(YEAR, 2).unwrap()
    );
}

// ------------------------------------------------------------------ the workbook

/// (row, column), 0-based, of an A1 reference such as `$B$12`.
fn cell_of(a1: &str) -> (u32, u32) {
    let a1 = a1.replace('$', "");
    let split = a1.find(|c: char| c.is_ascii_digit()).unwrap();
    let (letters, digits) = a1.split_at(split);
    let col = letters
        .bytes()
        .fold(0u32, |acc, b| acc * 26 + u32::from(b - b'A' + 1))
        - 1;
    (digits.parse::<u32>().unwrap() - 1, col)
}

/// The cells of a chart's reference (`通报!$B$12:$D$12`), row by row; the sheet must be 通报.
fn cells(reference: &str) -> Vec<(u32, u32)> {
    let (sheet, area) = reference.rsplit_once('!').unwrap();
    assert_eq!(sheet.trim_matches('\''), REPORT_SHEET, "{reference}");
    let (a, b) = area.split_once(':').unwrap_or((area, area));
    let ((r1, c1), (r2, c2)) = (cell_of(a), cell_of(b));
    let mut out = vec![];
    for r in r1..=r2 {
        for c in c1..=c2 {
            out.push((r, c));
        }
    }
    out
}

/// A cell's value as text (numbers without a trailing `.0`).
fn value(sheet: &calamine::Range<Data>, at: (u32, u32)) -> String {
    match sheet.get_value(at) {
        Some(Data::Float(f)) if f.fract() == 0.0 => format!("{}", *f as i64),
        Some(Data::Float(f)) => f.to_string(),
        Some(Data::Int(i)) => i.to_string(),
        Some(Data::String(s)) => s.clone(),
        other => panic!("cell {at:?}: {other:?}"),
    }
}

/// The text between the first `open` and the next `close` after it.
fn between<'a>(xml: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = xml.find(open)? + open.len();
    let end = start + xml[start..].find(close)?;
    Some(&xml[start..end])
}

/// One series of a chart: the references of its name, categories and values.
#[derive(Debug)]
struct Series {
    name: String,
    categories: String,
    values: String,
}

/// A chart's title and series, read from its XML.
fn chart(xml: &str) -> (String, Vec<Series>) {
    let title = between(
        between(xml, "<c:title>", "</c:title>").unwrap(),
        "<a:t>",
        "</a:t>",
    )
    .unwrap()
    .to_string();
    let series = xml
        .split("<c:ser>")
        .skip(1)
        .map(|ser| Series {
            name: between(
                between(ser, "<c:tx>", "</c:tx>").unwrap(),
                "<c:f>",
                "</c:f>",
            )
            .unwrap()
            .to_string(),
            categories: between(
                between(ser, "<c:cat>", "</c:cat>").unwrap(),
                "<c:f>",
                "</c:f>",
            )
            .unwrap()
            .to_string(),
            values: between(
                between(ser, "<c:val>", "</c:val>").unwrap(),
                "<c:f>",
                "</c:f>",
            )
            .unwrap()
            .to_string(),
        })
        .collect();
    (title, series)
}

fn q2_report(tmp: &Path) -> (Ledger, QuarterlyReport) {
    server(tmp);
    let mut ledger = Ledger::open(tmp).unwrap();
    let r = ledger.quarterly_report(&Viewer::Office, YEAR, 2).unwrap();
    (ledger, r)
}

/// Issue 13: the workbook holds three native charts (chart parts, not pictures) whose series
/// reference cells of the 通报 sheet, and those cells hold the report's figures; the sheet's
/// text holds the title, scope, period and sentences; the print setup is the ledgers'.
#[test]
fn issue13_quarterly_report_xlsx_charts_draw_the_reports_cells() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut ledger, r) = q2_report(tmp.path());
    let bytes = ledger
        .quarterly_report_xlsx(&Viewer::Office, YEAR, 2)
        .unwrap();
    let path = tmp.path().join("季度通报.xlsx");
    std::fs::write(&path, &bytes).unwrap();

    let mut zip = zip::ZipArchive::new(Cursor::new(bytes.clone())).unwrap();
    let names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
    let charts: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("xl/charts/chart"))
        .collect();
    assert_eq!(charts.len(), 3, "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("xl/media/")),
        "no pictures: {names:?}"
    );
    let drawing_rels = common::zip_text(&path, "xl/drawings/_rels/drawing1.xml.rels");
    for i in 1..=3 {
        assert!(drawing_rels.contains(&format!("../charts/chart{i}.xml")));
    }
    drop(zip.by_name("xl/drawings/drawing1.xml").unwrap());

    let mut book: calamine::Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes)).unwrap();
    assert_eq!(book.sheet_names(), [REPORT_SHEET]);
    let sheet = book.worksheet_range(REPORT_SHEET).unwrap();
    assert_eq!(
        value(&sheet, (0, 0)),
        "「三进」活动季度通报（2025年第2季度）"
    );
    let sub = value(&sheet, (1, 0));
    assert!(
        sub.contains("统计范围：全部") && sub.contains("2025-04-01 至 2025-06-30"),
        "{sub}"
    );
    let all_text: Vec<String> = sheet
        .cells()
        .filter_map(|(_, _, d)| match d {
            Data::String(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    for s in r.sentences() {
        assert!(all_text.contains(&s), "the sentence is a cell: {s}");
    }
    for g in &r.groups {
        assert!(all_text.contains(&g.name));
    }

    let mut seen = BTreeSet::new();
    for name in &charts {
        let xml = common::zip_text(&path, name);
        let (title, series) = chart(&xml);
        seen.insert(title.clone());
        let names: Vec<String> = series
            .iter()
            .map(|s| value(&sheet, cells(&s.name)[0]))
            .collect();
        let cats = |s: &Series| -> Vec<String> {
            cells(&s.categories)
                .into_iter()
                .map(|c| value(&sheet, c))
                .collect()
        };
        let vals = |s: &Series| -> Vec<String> {
            cells(&s.values)
                .into_iter()
                .map(|c| value(&sheet, c))
                .collect()
        };
        match title.as_str() {
            "各月活动次数（按活动形式）" => {
                assert_eq!(series.len(), r.by_month.len());
                for (s, (ty, counts)) in series.iter().zip(&r.by_month) {
                    assert_eq!(value(&sheet, cells(&s.name)[0]), ty.zh());
                    assert_eq!(cats(s), r.month_titles().to_vec());
                    assert_eq!(vals(s), counts.map(|n| n.to_string()).to_vec(), "{ty:?}");
                }
                assert!(xml.contains(r#"<c:grouping val="stacked"/>"#));
            }
            "社情民意办理状态（条）" => {
                assert_eq!(names, ["条数"]);
                let s = &series[0];
                let states: Vec<String> =
                    r.by_state.iter().map(|(s, _)| s.zh().to_string()).collect();
                let counts: Vec<String> = r.by_state.iter().map(|(_, n)| n.to_string()).collect();
                assert_eq!(cats(s), states);
                assert_eq!(vals(s), counts);
                assert_eq!(
                    r.by_state.iter().map(|(_, n)| n).sum::<i64>(),
                    r.current.opinions
                );
            }
            "各活动组活动次数" => {
                assert_eq!(names, ["活动（次）"]);
                let s = &series[0];
                let groups: Vec<String> = r.groups.iter().map(|g| g.name.clone()).collect();
                let visits: Vec<String> = r.groups.iter().map(|g| g.visits.to_string()).collect();
                assert_eq!(cats(s), groups);
                assert_eq!(vals(s), visits);
                assert!(xml.contains(r#"<c:barDir val="bar"/>"#));
            }
            other => panic!("unexpected chart {other}"),
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");

    // Printed like the ledgers: A4 landscape, every column on the page's width, the page
    // header naming the report, period and scope, and 第 N 页 共 M 页.
    let xml = common::zip_text(&path, "xl/worksheets/sheet1.xml");
    assert!(xml.contains(r#"paperSize="9""#) && xml.contains(r#"orientation="landscape""#));
    let scale: u16 = between(&xml, r#"scale=""#, "\"").unwrap().parse().unwrap();
    assert!(
        (sanjin_ledger::print::MIN_SCALE..=100).contains(&scale),
        "{scale}"
    );
    assert!(xml.contains(
        "<oddHeader>&amp;L三进工作台账 · 通报&amp;C统计期间：2025-04-01 至 2025-06-30&amp;R统计范围：全部</oddHeader>"
    ));
    assert!(xml.contains("<oddFooter>&amp;C第 &amp;P 页 共 &amp;N 页</oddFooter>"));
    let workbook = common::zip_text(&path, "xl/workbook.xml");
    assert!(
        workbook.contains(r#"<definedName name="_xlnm.Print_Area" localSheetId="0">通报!$A$1:$K$"#),
        "{workbook}"
    );
}

/// Where the PNG of the printed report's first page goes: `SANJIN_REPORT_PNG`, or the test's
/// temporary folder.
fn png_path() -> PathBuf {
    std::env::var_os("SANJIN_REPORT_PNG").map_or_else(
        || PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("issue13-report.png"),
        PathBuf::from,
    )
}

/// Issue 13: LibreOffice prints the report: the title on the first page, the figures in the
/// text, each section's heading on the same page as its chart's title (no chart cut from its
/// table), the page header and 第 N 页 共 M 页 on every page.
#[test]
fn issue13_quarterly_report_prints_with_libreoffice() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, r) = q2_report(tmp.path());
    let xlsx = tmp.path().join("季度通报.xlsx");
    std::fs::write(&xlsx, r.xlsx().unwrap()).unwrap();
    let pdf = to_pdf(&xlsx, tmp.path());
    let pages = pdf_text(&pdf);
    if let Some(keep) = std::env::var_os("SANJIN_REPORT_KEEP") {
        for f in [&xlsx, &pdf] {
            std::fs::copy(f, Path::new(&keep).join(f.file_name().unwrap())).unwrap();
        }
    }
    let total = pages.len();
    eprintln!("the report prints on {total} pages");
    assert!((2..=10).contains(&total), "{total} pages");
    // Every break is the workbook's own: LibreOffice broke no page by itself.
    let sheet = common::zip_text(&xlsx, "xl/worksheets/sheet1.xml");
    let breaks: usize = between(&sheet, r#"<rowBreaks count=""#, "\"")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        total,
        breaks + 1,
        "pages: {total}, breaks in the workbook: {breaks}"
    );
    let flat = |s: &str| s.split_whitespace().collect::<String>();
    assert!(
        flat(&pages[0]).contains("「三进」活动季度通报（2025年第2季度）"),
        "{}",
        pages[0]
    );
    for (n, page) in pages.iter().enumerate() {
        let lines: Vec<&str> = page.lines().filter(|l| !l.trim().is_empty()).collect();
        // No section heading left alone at the foot of a page.
        let before_footer = lines[lines.len() - 2].trim();
        assert!(
            ![
                "一、", "二、", "三、", "四、", "五、", "六、", "七、", "八、"
            ]
            .iter()
            .any(|h| before_footer.starts_with(h)),
            "page {}: {before_footer}",
            n + 1
        );
        let head = lines.first().unwrap();
        assert!(
            head.contains("三进工作台账 · 通报")
                && head.contains("统计期间：2025-04-01 至 2025-06-30")
                && head.contains("统计范围：全部"),
            "page {}: {page}",
            n + 1
        );
        assert_eq!(
            flat(lines.last().unwrap()),
            format!("第{}页共{total}页", n + 1),
            "page {}",
            n + 1
        );
    }
    let all = flat(&pages.join("\n"));
    let c = &r.current;
    for want in [
        format!("共开展「三进」活动{}次", c.visits),
        format!("收集社情民意{}条", c.opinions),
        format!("已采纳{}条", c.accepted),
        format!("已向委员反馈{}条", c.feedback),
        format!(
            "结对帮扶困难户{}户，帮扶{}次",
            c.households_assisted, c.assistance_entries
        ),
        format!(
            "年度计划本季度安排活动{}项，已落实{}项",
            c.planned, c.plan_done
        ),
        // What 已落实 means, in the plan page's words.
        "计划项“已落实”的判定".to_string(),
        r.groups[0].name.clone(),
    ] {
        assert!(all.contains(&want), "{want} not printed:\n{all}");
    }
    // Each chart on the page of its section.
    let mut chart_pages = vec![];
    for (heading, chart) in [
        ("三、各月活动情况", "各月活动次数（按活动形式）"),
        ("四、社情民意办理情况", "社情民意办理状态（条）"),
        ("五、各活动组开展情况", "各活动组活动次数"),
    ] {
        let page = pages
            .iter()
            .position(|p| flat(p).contains(heading))
            .unwrap_or_else(|| panic!("{heading} not printed"));
        assert!(
            flat(&pages[page]).contains(chart),
            "{chart} not on the page of {heading} (page {}):\n{}",
            page + 1,
            pages[page]
        );
        chart_pages.push(page + 1);
    }
    let png = png_path();
    page_png(&pdf, 1, &png, 80);
    // And the page of the first chart, beside it.
    let charts = png.with_file_name(format!(
        "{}-charts.png",
        png.file_stem().unwrap().to_str().unwrap()
    ));
    page_png(&pdf, chart_pages[0], &charts, 80);
    eprintln!(
        "first page: {}; charts: {}",
        png.display(),
        charts.display()
    );
}
