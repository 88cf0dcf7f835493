//! Issue 5: the ledgers of the committed fixtures, checked against figures recounted here
//! straight from the fixture files and by direct SQL on the server's store; the XLSX read back
//! with calamine; the CSV zip read back; access by role.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use chrono::NaiveDate;
use common::server_copy;
use sanjin_core::domain::{ActivityType, RecordData};
use sanjin_core::workflow::EventType;
use sanjin_core::{Author, Edit, RecordDoc};
use sanjin_fixtures::Fixtures;
use sanjin_ledger::{Cell, Error, Format, Ledger, Query, Slice, Tables, Viewer};
use sanjin_server::ServerData;
use serde_json::json;

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn year() -> Query {
    Query::new(d(2025, 1, 1), d(2025, 12, 31))
}

fn text(c: &Cell) -> String {
    c.display()
}

fn int(c: &Cell) -> i64 {
    match c {
        Cell::Int(n) => *n,
        other => panic!("not an integer: {other:?}"),
    }
}

fn visits_in(
    fx: &Fixtures,
    from: NaiveDate,
    to: NaiveDate,
) -> Vec<(&str, &sanjin_core::domain::Visit)> {
    fx.visits
        .iter()
        .filter_map(|r| match &r.data {
            RecordData::Visit(v) if v.start.date() >= from && v.start.date() <= to => {
                Some((r.id.as_str(), v))
            }
            _ => None,
        })
        .collect()
}

/// Per member: (visits, opinions recorded, opinions submitted, assistance entries, six types).
type Recount = BTreeMap<String, (i64, i64, i64, i64, BTreeSet<ActivityType>)>;

fn recount(fx: &Fixtures, from: NaiveDate, to: NaiveDate) -> Recount {
    let mut out = Recount::new();
    for (_, v) in visits_in(fx, from, to) {
        for m in &v.participants {
            let e = out.entry(m.clone()).or_default();
            e.0 += 1;
            if v.activity_type.is_six_ones() {
                e.4.insert(v.activity_type);
            }
        }
    }
    for r in &fx.opinions {
        let RecordData::Opinion(o) = &r.data else {
            continue;
        };
        if o.recorded_on < from || o.recorded_on > to {
            continue;
        }
        let e = out.entry(r.created_by.clone()).or_default();
        e.1 += 1;
        if r.events.iter().any(|e| e.event == EventType::Submit) {
            e.2 += 1;
        }
    }
    for r in &fx.households {
        let RecordData::Household(h) = &r.data else {
            continue;
        };
        for l in &h.log {
            if l.date >= from && l.date <= to {
                out.entry(l.member.clone()).or_default().3 += 1;
            }
        }
    }
    out
}

#[test]
fn issue_5_ledgers_of_the_fixtures_match_a_recount() {
    let (tmp, fx) = server_copy();
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    let t = ledger.tables(&Viewer::Office, &year()).unwrap();

    // Activity ledger: one row per visit, ids and order as in the fixtures.
    let acts = t.get("activities");
    let ids: Vec<String> = acts.column("记录编号").iter().map(|c| text(c)).collect();
    let mut expected: Vec<_> = visits_in(&fx, d(2025, 1, 1), d(2025, 12, 31));
    expected.sort_by(|a, b| (a.1.start, a.0).cmp(&(b.1.start, b.0)));
    assert_eq!(
        ids,
        expected
            .iter()
            .map(|(id, _)| id.to_string())
            .collect::<Vec<_>>()
    );
    assert_eq!(acts.rows.len(), 1200);
    let first = &acts.rows[0];
    let (_, v0) = expected[0];
    assert_eq!(first[acts.col("日期")], Cell::Date(v0.start.date()));
    assert_eq!(first[acts.col("开始时间")], Cell::DateTime(v0.start));
    assert_eq!(
        int(&first[acts.col("参加人数")]),
        v0.participants.len() as i64
    );
    assert!(acts.column("待裁定冲突").iter().all(|c| **c == Cell::Empty));

    // Opinion ledger: every note, statuses as the events say.
    let ops = t.get("opinions");
    assert_eq!(ops.rows.len(), fx.opinions.len());
    let fed_back = fx
        .opinions
        .iter()
        .filter(|r| {
            r.events
                .last()
                .is_some_and(|e| e.event == EventType::Feedback)
        })
        .count();
    assert_eq!(
        ops.column("办理状态")
            .iter()
            .filter(|c| text(c) == "已反馈")
            .count(),
        fed_back
    );
    // Time in states adds up to the whole handling time for notes that got feedback.
    for row in &ops.rows {
        if text(&row[ops.col("办理状态")]) == "已反馈" {
            assert!(row[ops.col("办理用时（天）")] != Cell::Empty);
        }
    }

    // Participation and coverage against the recount.
    let rc = recount(&fx, d(2025, 1, 1), d(2025, 12, 31));
    let part = t.get("participation");
    assert_eq!(part.rows.len(), 360);
    for row in &part.rows {
        let id = text(&row[part.col("委员编号")]);
        let e = rc.get(&id).cloned().unwrap_or_default();
        assert_eq!(int(&row[part.col("参加活动（次）")]), e.0, "{id}");
        assert_eq!(int(&row[part.col("记录社情民意（条）")]), e.1, "{id}");
        assert_eq!(int(&row[part.col("其中已报送（条）")]), e.2, "{id}");
        assert_eq!(int(&row[part.col("帮扶记录（次）")]), e.3, "{id}");
        assert_eq!(
            int(&row[part.col("六个一覆盖（项）")]),
            e.4.len() as i64,
            "{id}"
        );
    }
    let gaps: Vec<String> = t
        .get("coverage")
        .column("委员编号")
        .iter()
        .map(|c| text(c))
        .collect();
    let manifest = fx.manifest();
    assert_eq!(
        gaps, manifest.members_without_visits,
        "the seven members who did nothing"
    );
    assert_eq!(gaps.len(), 7);

    // 六个一 per group: counts as recounted; exactly two groups miss one type.
    let six = t.get("six_ones");
    assert_eq!(six.rows.len(), 12);
    let mut per_group: BTreeMap<String, [i64; 6]> = BTreeMap::new();
    for (_, v) in visits_in(&fx, d(2025, 1, 1), d(2025, 12, 31)) {
        if let Some(i) = ActivityType::SIX_ONES
            .iter()
            .position(|x| *x == v.activity_type)
        {
            per_group.entry(v.group.clone()).or_default()[i] += 1;
        }
    }
    for row in &six.rows {
        let g = text(&row[0]);
        let counts: Vec<i64> = (4..10).map(|i| int(&row[i])).collect();
        assert_eq!(counts, per_group[&g].to_vec(), "{g}");
    }
    assert_eq!(
        six.column("是否完成")
            .iter()
            .filter(|c| text(c) == "否")
            .count(),
        2
    );

    // Plan vs actual by month: against direct SQL on the server's index tables.
    let conn = rusqlite::Connection::open(tmp.path().join("sanjin.sqlite")).unwrap();
    let sql_counts = |table: &str| -> BTreeMap<(String, String, String), i64> {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT group_id, substr(date, 1, 7), type_code, COUNT(*) FROM {table}
                 WHERE deleted = 0 AND date BETWEEN '2025-01-01' AND '2025-12-31' GROUP BY 1, 2, 3"
            ))
            .unwrap();
        stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let planned = sql_counts("idx_plan");
    let actual = sql_counts("idx_visit");
    let pm = t.get("plan_month");
    let mut seen = 0;
    for row in &pm.rows {
        let g = text(&row[0]);
        let month = format!("{}-{:02}", int(&row[2]), int(&row[4]));
        let ty = ActivityType::parse(&text(&row[5]))
            .unwrap()
            .code()
            .to_string();
        let key = (g, month, ty);
        assert_eq!(
            int(&row[pm.col("计划数")]),
            planned.get(&key).copied().unwrap_or(0),
            "{key:?}"
        );
        assert_eq!(
            int(&row[pm.col("实际数")]),
            actual.get(&key).copied().unwrap_or(0),
            "{key:?}"
        );
        seen += 1;
    }
    let keys: BTreeSet<_> = planned.keys().chain(actual.keys()).collect();
    assert_eq!(
        seen,
        keys.len(),
        "one row per (group, month, type) planned or done"
    );
    // Quarters add up the months.
    let pq = t.get("plan_quarter");
    let sum = |tab: &sanjin_ledger::Table, col: &str| -> i64 {
        tab.column(col).iter().map(|c| int(c)).sum()
    };
    assert_eq!(sum(pq, "计划数"), sum(pm, "计划数"));
    assert_eq!(sum(pq, "实际数"), 1200);
    assert_eq!(sum(pm, "计划数"), 88);
    // 明确到人: a plan item's owner took part in a visit of the group, type and month.
    let mut done: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    for r in &fx.plans {
        let RecordData::Plan(p) = &r.data else {
            continue;
        };
        let took_part = fx.visits.iter().any(|v| match &v.data {
            RecordData::Visit(v) => {
                v.group == p.group
                    && v.activity_type == p.activity_type
                    && v.start.date().format("%Y-%m").to_string()
                        == format!("{}-{:02}", p.year, p.month)
                    && v.participants.contains(&p.owner)
            }
            _ => false,
        });
        *done
            .entry((
                p.group.clone(),
                format!("{}-{:02}", p.year, p.month),
                p.activity_type.code().to_string(),
            ))
            .or_default() += took_part as i64;
    }
    for row in &pm.rows {
        let key = (
            text(&row[0]),
            format!("{}-{:02}", int(&row[2]), int(&row[4])),
            ActivityType::parse(&text(&row[5]))
                .unwrap()
                .code()
                .to_string(),
        );
        assert_eq!(
            int(&row[pm.col("负责人已参加（项）")]),
            done.get(&key).copied().unwrap_or(0),
            "{key:?}"
        );
    }
    let owners_done: i64 = done.values().sum();
    assert!(owners_done < 88, "some owners did nothing all year");
    assert_eq!(sum(pq, "负责人已参加（项）"), owners_done);
    // Plans whose owner did nothing all year show as plans with a named owner.
    assert!(pm.column("计划负责人").iter().any(|c| !text(c).is_empty()));

    // Topics: counts by (kind, topic) as recounted.
    let mut topics: BTreeMap<(String, String), i64> = BTreeMap::new();
    for r in &fx.opinions {
        if let RecordData::Opinion(o) = &r.data {
            *topics
                .entry((o.opinion_kind.zh().to_string(), o.topic.clone()))
                .or_default() += 1;
        }
    }
    let tp = t.get("topics");
    assert_eq!(tp.rows.len(), topics.len());
    for row in &tp.rows {
        assert_eq!(int(&row[2]), topics[&(text(&row[0]), text(&row[1]))]);
    }
    let counts: Vec<i64> = tp.column("条数").iter().map(|c| int(c)).collect();
    assert!(
        counts.windows(2).all(|w| w[0] >= w[1]),
        "most frequent first"
    );

    // Pair assistance: one row per log entry in the period.
    let entries: usize = fx
        .households
        .iter()
        .map(|r| match &r.data {
            RecordData::Household(h) => h.log.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(t.get("assistance").rows.len(), entries);

    // The summary agrees with the sheets.
    let summary = t.get("summary");
    let line = |k: &str| -> Cell {
        summary
            .rows
            .iter()
            .find(|r| text(&r[0]) == k)
            .unwrap_or_else(|| panic!("{k}"))[1]
            .clone()
    };
    assert_eq!(line("活动记录（条）"), Cell::Int(1200));
    assert_eq!(line("未参与委员"), Cell::Int(7));
    assert_eq!(line("委员人数"), Cell::Int(360));
    assert_eq!(line("六个一全部完成的活动组"), Cell::Int(10));
}

#[test]
fn issue_5_period_and_slices_narrow_the_ledgers() {
    let (tmp, fx) = server_copy();
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    let (from, to) = (d(2025, 4, 1), d(2025, 6, 30));
    let mut q = Query::new(from, to);
    q.slice.group = Some("group-03".into());
    let t = ledger.tables(&Viewer::Office, &q).unwrap();
    let expected: Vec<_> = visits_in(&fx, from, to)
        .into_iter()
        .filter(|(_, v)| v.group == "group-03")
        .collect();
    assert_eq!(t.get("activities").rows.len(), expected.len());
    assert!(!expected.is_empty());
    let members = fx.members_of("group-03");
    assert_eq!(t.get("participation").rows.len(), members.len());
    let rc = recount(&fx, from, to);
    let part = t.get("participation");
    for row in &part.rows {
        let id = text(&row[0]);
        // Within one group's slice, a member's visits are those of the group.
        let n = expected
            .iter()
            .filter(|(_, v)| v.participants.contains(&id))
            .count() as i64;
        assert_eq!(int(&row[part.col("参加活动（次）")]), n, "{id}");
        assert!(n <= rc.get(&id).map_or(0, |e| e.0));
    }
    // Quarter's plan rows only name months 4–6 of group-03.
    for row in &t.get("plan_month").rows {
        assert_eq!(text(&row[0]), "group-03");
        assert!((4..=6).contains(&int(&row[4])));
    }

    // A member slice: exactly the visits the member took part in.
    let mut q = year();
    q.slice.member = Some("member-0005".into());
    let t = ledger.tables(&Viewer::Office, &q).unwrap();
    let n = visits_in(&fx, d(2025, 1, 1), d(2025, 12, 31))
        .iter()
        .filter(|(_, v)| v.participants.iter().any(|p| p == "member-0005"))
        .count();
    assert_eq!(t.get("activities").rows.len(), n);
    assert_eq!(t.get("participation").rows.len(), 1);

    // A target-kind slice: only villages.
    let mut q = year();
    q.slice.target_kind = Some(sanjin_core::domain::TargetKind::Village);
    let t = ledger.tables(&Viewer::Office, &q).unwrap();
    assert!(
        t.get("activities")
            .column("类别")
            .iter()
            .all(|c| text(c) == "进农村")
    );
    let villages = visits_in(&fx, d(2025, 1, 1), d(2025, 12, 31))
        .iter()
        .filter(|(_, v)| v.target_kind == sanjin_core::domain::TargetKind::Village)
        .count();
    assert_eq!(t.get("activities").rows.len(), villages);

    // A chapter slice includes the visits of mixed groups its members took part in.
    let mut q = year();
    q.slice.chapter = Some("chapter-yunmeng".into());
    let t = ledger.tables(&Viewer::Office, &q).unwrap();
    let chapter_members: BTreeSet<&str> = fx
        .directory
        .iter()
        .filter(|r| matches!(&r.data, RecordData::Member(m) if m.chapter == "chapter-yunmeng"))
        .map(|r| r.id.as_str())
        .collect();
    let chapter_groups: BTreeSet<&str> = fx
        .directory
        .iter()
        .filter(|r| matches!(&r.data, RecordData::Group(g) if g.chapter == "chapter-yunmeng"))
        .map(|r| r.id.as_str())
        .collect();
    let n = visits_in(&fx, d(2025, 1, 1), d(2025, 12, 31))
        .iter()
        .filter(|(_, v)| {
            chapter_groups.contains(v.group.as_str())
                || v.participants
                    .iter()
                    .any(|p| chapter_members.contains(p.as_str()))
        })
        .count();
    assert_eq!(t.get("activities").rows.len(), n);
    assert_eq!(t.get("participation").rows.len(), chapter_members.len());

    // A committee slice: visits of its groups or with one of its members.
    let committee = "committee-4";
    let mut q = year();
    q.slice.committee = Some(committee.into());
    let t = ledger.tables(&Viewer::Office, &q).unwrap();
    let in_committee = |id: &str| {
        fx.directory.iter().any(|r| {
            r.id == id && matches!(&r.data, RecordData::Member(m) if m.committee.as_deref() == Some(committee))
        })
    };
    let committee_groups: BTreeSet<&str> = fx
        .directory
        .iter()
        .filter(|r| matches!(&r.data, RecordData::Group(g) if g.committee.as_deref() == Some(committee)))
        .map(|r| r.id.as_str())
        .collect();
    let n = visits_in(&fx, d(2025, 1, 1), d(2025, 12, 31))
        .iter()
        .filter(|(_, v)| {
            committee_groups.contains(v.group.as_str())
                || v.participants.iter().any(|p| in_committee(p))
        })
        .count();
    assert!(n > 0);
    assert_eq!(t.get("activities").rows.len(), n);

    // A contact point: its visits and opinion notes.
    let mut q = year();
    q.slice.contact_point = Some("cp-012".into());
    let t = ledger.tables(&Viewer::Office, &q).unwrap();
    let visits = visits_in(&fx, d(2025, 1, 1), d(2025, 12, 31))
        .iter()
        .filter(|(_, v)| v.contact_point == "cp-012")
        .count();
    let opinions = fx
        .opinions
        .iter()
        .filter(|r| matches!(&r.data, RecordData::Opinion(o) if o.contact_point == "cp-012"))
        .count();
    assert!(visits > 0 && opinions > 0);
    assert_eq!(t.get("activities").rows.len(), visits);
    assert_eq!(t.get("opinions").rows.len(), opinions);
}

#[test]
fn issue_5_tombstones_are_left_out_and_conflicts_are_flagged() {
    let (tmp, fx) = server_copy();
    let visit = &fx.visits[0];
    let deleted = &fx.visits[1];
    let (id, title_a, title_b) = (visit.id.clone(), "甲方标题", "乙方标题");
    {
        let mut data = ServerData::open(tmp.path()).unwrap();
        let mut base = visit.to_doc().unwrap();
        let a = Author::new("member-0001", "phone-a", &[1; 16]).unwrap();
        let b = Author::new("member-0002", "phone-b", &[2; 16]).unwrap();
        let mut other = RecordDoc::load(&base.save()).unwrap();
        base.edit(
            &a,
            1_750_000_000_000,
            &[Edit::Set {
                field: "title".into(),
                value: json!(title_a),
            }],
        )
        .unwrap();
        other
            .edit(
                &b,
                1_750_000_000_001,
                &[Edit::Set {
                    field: "title".into(),
                    value: json!(title_b),
                }],
            )
            .unwrap();
        base.merge(&mut other).unwrap();
        let mut gone = deleted.to_doc().unwrap();
        gone.delete(&a, 1_750_000_000_002, Some("重复录入"))
            .unwrap();
        data.import_docs(&mut [base, gone]).unwrap();
    }
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    let t = ledger.tables(&Viewer::Office, &year()).unwrap();
    let acts = t.get("activities");
    assert_eq!(acts.rows.len(), 1199, "the tombstoned visit is left out");
    assert!(
        !acts
            .column("记录编号")
            .iter()
            .any(|c| text(c) == deleted.id)
    );
    let row = acts.rows.iter().find(|r| text(&r[0]) == id).unwrap();
    let title = text(&row[acts.col("标题")]);
    assert!(title.starts_with("【冲突】"), "{title}");
    assert!(
        title.contains(title_a) && title.contains(title_b),
        "both values shown: {title}"
    );
    let note = text(&row[acts.col("待裁定冲突")]);
    assert!(
        note.contains("标题") && note.contains(title_a) && note.contains(title_b),
        "{note}"
    );
    let summary = t.get("summary");
    let conflicted = summary
        .rows
        .iter()
        .find(|r| text(&r[0]) == "有待裁定冲突的记录")
        .unwrap();
    assert_eq!(conflicted[1], Cell::Int(1));
}

#[test]
fn issue_5_access_by_role() {
    let (tmp, _fx) = server_copy();
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    let leader = Viewer::Leader {
        group: "group-05".into(),
    };
    let t = ledger.tables(&leader, &year()).unwrap();
    let acts = t.get("activities");
    assert!(!acts.rows.is_empty());
    assert!(
        acts.column("活动组")
            .iter()
            .all(|c| text(c) == text(acts.column("活动组")[0]))
    );
    assert_eq!(t.get("six_ones").rows.len(), 1);
    for row in &t.get("plan_month").rows {
        assert_eq!(text(&row[0]), "group-05");
    }
    let office = ledger.tables(&Viewer::Office, &year()).unwrap();
    assert!(office.get("activities").rows.len() > acts.rows.len());

    let mut other = year();
    other.slice.group = Some("group-06".into());
    assert!(matches!(
        ledger.tables(&leader, &other),
        Err(Error::Forbidden(_))
    ));
    let out = tmp.path().join("member.xlsx");
    assert!(matches!(
        ledger.export(&Viewer::Member, &year(), Format::Xlsx, &out),
        Err(Error::Forbidden(_))
    ));
    assert!(!out.exists(), "nothing is written for a refused export");
    assert!(matches!(
        ledger.tables(&Viewer::Member, &year()),
        Err(Error::Forbidden(_))
    ));
    let backwards = Query::new(d(2025, 6, 1), d(2025, 1, 1));
    assert!(matches!(
        ledger.tables(&Viewer::Office, &backwards),
        Err(Error::Invalid(_))
    ));
}

/// Excel's serial day number of a date.
fn serial(day: NaiveDate) -> f64 {
    (day - d(1899, 12, 30)).num_days() as f64
}

fn read_xlsx(path: &Path) -> BTreeMap<String, Vec<Vec<calamine::Data>>> {
    use calamine::Reader;
    let mut book: calamine::Xlsx<_> = calamine::open_workbook(path).unwrap();
    let mut out = BTreeMap::new();
    for name in book.sheet_names() {
        let range = book.worksheet_range(&name).unwrap();
        out.insert(name.clone(), range.rows().map(|r| r.to_vec()).collect());
    }
    out
}

fn same_cell(ours: &Cell, theirs: &calamine::Data) -> bool {
    use calamine::Data;
    match (ours, theirs) {
        (Cell::Empty, Data::Empty) => true,
        (Cell::Text(a), Data::String(b)) => a == b,
        (Cell::Link(a), Data::String(b)) => a == b,
        (Cell::Int(a), Data::Float(b)) => *a as f64 == *b,
        (Cell::Int(a), Data::Int(b)) => a == b,
        (Cell::Num(a), Data::Float(b)) => (a - b).abs() < 1e-9,
        (Cell::Date(a), Data::DateTime(b)) => (serial(*a) - b.as_f64()).abs() < 1e-9,
        (Cell::DateTime(a), Data::DateTime(b)) => {
            let secs = (*a - a.date().and_hms_opt(0, 0, 0).unwrap()).num_seconds() as f64;
            (serial(a.date()) + secs / 86_400.0 - b.as_f64()).abs() < 1e-6
        }
        _ => false,
    }
}

#[test]
fn issue_5_xlsx_reads_back_as_the_ledgers() {
    let (tmp, _fx) = server_copy();
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    let t: Tables = ledger.tables(&Viewer::Office, &year()).unwrap();
    let out = tmp.path().join("ledger.xlsx");
    let report = ledger
        .export(&Viewer::Office, &year(), Format::Xlsx, &out)
        .unwrap();
    assert_eq!(report.rows_of("activities"), 1200);
    let book = read_xlsx(&out);
    let names: Vec<&str> = sanjin_ledger::SHEETS.iter().map(|s| s.title).collect();
    assert_eq!(book.len(), names.len());
    for table in &t.tables {
        let sheet = &book[table.spec.title];
        let header: Vec<String> = sheet[0].iter().map(|c| c.to_string()).collect();
        let titles: Vec<&str> = table.spec.columns.iter().map(|c| c.title).collect();
        assert_eq!(header, titles, "{}", table.spec.key);
        assert_eq!(sheet.len() - 1, table.rows.len(), "{}", table.spec.key);
        for (r, row) in table.rows.iter().enumerate() {
            let theirs = &sheet[r + 1];
            for (c, cell) in row.iter().enumerate() {
                let other = theirs.get(c).cloned().unwrap_or(calamine::Data::Empty);
                assert!(
                    same_cell(cell, &other),
                    "{} row {} col {}: {cell:?} vs {other:?}",
                    table.spec.key,
                    r + 1,
                    table.spec.columns[c].title
                );
            }
        }
    }
    // Same data, same cells.
    let again = tmp.path().join("again.xlsx");
    ledger
        .export(&Viewer::Office, &year(), Format::Xlsx, &again)
        .unwrap();
    assert_eq!(read_xlsx(&again), book);
}

#[test]
fn issue_5_csv_zip_is_utf8_with_bom_and_deterministic() {
    let (tmp, _fx) = server_copy();
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    let t = ledger.tables(&Viewer::Office, &year()).unwrap();
    let out = tmp.path().join("ledger.zip");
    ledger
        .export(&Viewer::Office, &year(), Format::Csv, &out)
        .unwrap();
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
    assert_eq!(zip.len(), sanjin_ledger::SHEETS.len());
    for (i, spec) in sanjin_ledger::SHEETS.iter().enumerate() {
        let name = format!("{i:02}_{}.csv", spec.title);
        let mut bytes = Vec::new();
        zip.by_name(&name).unwrap().read_to_end(&mut bytes).unwrap();
        assert!(
            bytes.starts_with(&[0xEF, 0xBB, 0xBF]),
            "{name} starts with a BOM"
        );
        let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
        let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
        let table = t.get(spec.key);
        // Text with commas, quotes or line breaks is quoted; count records, not lines.
        let records = parse_csv(&text);
        assert_eq!(records.len(), table.rows.len() + 1, "{name}");
        assert_eq!(
            records[0],
            spec.columns
                .iter()
                .map(|c| c.title.to_string())
                .collect::<Vec<_>>()
        );
        for (r, row) in table.rows.iter().enumerate() {
            let ours: Vec<String> = row.iter().map(|c| c.display()).collect();
            assert_eq!(records[r + 1], ours, "{name} row {}", r + 1);
        }
        assert!(!lines.is_empty());
    }
    let again = tmp.path().join("again.zip");
    ledger
        .export(&Viewer::Office, &year(), Format::Csv, &again)
        .unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&again).unwrap(),
        "byte-identical"
    );
}

/// Issue 5 with photos: the activity ledger names each visit's photos (count and captions),
/// their content addresses, and — when the console's address is given — a hyperlink to the
/// record's photos in the console; CSV carries the same hashes and link as text.
#[test]
fn issue_5_photos_in_the_activity_ledger_xlsx_and_csv() {
    let (tmp, fx) = server_copy();
    let visit = &fx.visits[7];
    let mut doc = visit.to_doc().unwrap();
    let by = sanjin_core::Author::new("member-0001", "phone-a", &[0xa1; 16]).unwrap();
    let mut hashes = vec![];
    for (i, caption) in ["村口座谈", ""].into_iter().enumerate() {
        let original = sanjin_media::testing::jpeg(
            &sanjin_media::testing::photo(400, 300, 40 + i as u64, 6),
            85,
        );
        let p = sanjin_media::process(&original, &sanjin_media::Limits::default()).unwrap();
        let photo = sanjin_core::domain::PhotoRef {
            caption: caption.into(),
            bytes: original.len() as u64,
            width: p.width,
            height: p.height,
            mime: "image/jpeg".into(),
            ..sanjin_core::domain::PhotoRef::new(&p.hash)
        };
        doc.attach_photo(&by, 1_760_000_000_000 + i as i64, &photo, &p.thumbnail)
            .unwrap();
        hashes.push(p.hash);
    }
    ServerData::open(tmp.path())
        .unwrap()
        .import_docs(&mut [doc])
        .unwrap();
    let base = "https://192.168.1.10:8443";
    let q = Query {
        console_url: Some(base.into()),
        ..year()
    };
    let link = format!("{base}/console/records/{}#photos", visit.id);
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    let acts_spec = &sanjin_ledger::SHEETS
        .iter()
        .find(|s| s.key == "activities")
        .unwrap();
    let col = |title: &str| {
        acts_spec
            .columns
            .iter()
            .position(|c| c.title == title)
            .unwrap()
    };
    let (photos, ids, links) = (col("照片"), col("照片编号"), col("照片链接"));

    // XLSX, read back with calamine: the visit's row and nobody else's has photos.
    let out = tmp.path().join("ledger.xlsx");
    ledger
        .export(&Viewer::Office, &q, Format::Xlsx, &out)
        .unwrap();
    let book = read_xlsx(&out);
    let sheet = &book[acts_spec.title];
    let row = sheet
        .iter()
        .find(|r| r[0].to_string() == visit.id)
        .expect("the visit's row");
    assert_eq!(row[photos].to_string(), "2 张：村口座谈、照片");
    let mut got: Vec<String> = row[ids]
        .to_string()
        .split(' ')
        .map(str::to_string)
        .collect();
    got.sort();
    hashes.sort();
    assert_eq!(got, hashes);
    assert_eq!(row[links].to_string(), link);
    let with_photos = sheet[1..]
        .iter()
        .filter(|r| r[links] != calamine::Data::Empty || r[ids] != calamine::Data::Empty)
        .count();
    assert_eq!(with_photos, 1, "the fixtures' other visits have no photos");
    // The link is a real hyperlink: the sheet's relationships name it as an external target.
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
    let rels: Vec<String> = (0..zip.len())
        .filter_map(|i| {
            let mut f = zip.by_index(i).unwrap();
            f.name()
                .unwrap()
                .starts_with("xl/worksheets/_rels/")
                .then(|| {
                    let mut s = String::new();
                    f.read_to_string(&mut s).unwrap();
                    s
                })
        })
        .collect();
    assert_eq!(
        rels.iter()
            .map(|r| r.matches("TargetMode=\"External\"").count())
            .sum::<usize>(),
        1
    );
    // (XLSX keeps the `#photos` anchor as the hyperlink's location, apart from the target.)
    let target = format!("Target=\"{base}/console/records/{}\"", visit.id);
    assert!(rels.iter().any(|r| r.contains(&target)), "{rels:?}");

    // CSV: the same texts, the link as the address.
    let out = tmp.path().join("ledger.zip");
    ledger
        .export(&Viewer::Office, &q, Format::Csv, &out)
        .unwrap();
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
    let i = sanjin_ledger::SHEETS
        .iter()
        .position(|s| s.key == "activities")
        .unwrap();
    let mut text = String::new();
    zip.by_name(&format!("{i:02}_{}.csv", acts_spec.title))
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let records = parse_csv(text.trim_start_matches('\u{feff}'));
    let row = records.iter().find(|r| r[0] == visit.id).unwrap();
    assert_eq!(row[photos], "2 张：村口座谈、照片");
    assert_eq!(row[links], link);
    let mut got: Vec<&str> = row[ids].split(' ').collect();
    got.sort();
    assert_eq!(got, hashes);

    // Without the console's address there is no link, the rest is the same.
    let t = ledger.tables(&Viewer::Office, &year()).unwrap();
    let acts = t.get("activities");
    let row = acts
        .rows
        .iter()
        .find(|r| text_of(&r[0]) == visit.id)
        .unwrap();
    assert_eq!(row[links], Cell::Empty);
    assert_eq!(text_of(&row[photos]), "2 张：村口座谈、照片");
}

fn text_of(c: &Cell) -> String {
    c.display()
}

/// A straightforward RFC 4180 reader for the test.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut out = vec![];
    let mut row = vec![];
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {
                chars.next();
                row.push(std::mem::take(&mut field));
                out.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    out
}

#[test]
fn issue_5_refresh_is_incremental() {
    let (tmp, fx) = server_copy();
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    let first = ledger.refresh().unwrap();
    assert_eq!(first.updated, 441 + 1200 + 2000 + 80 + 88);
    assert!(first.skipped.is_empty());
    assert_eq!(ledger.refresh().unwrap().updated, 0, "nothing changed");
    {
        let mut data = ServerData::open(tmp.path()).unwrap();
        let mut doc = fx.visits[5].to_doc().unwrap();
        let a = Author::new("member-0001", "phone-a", &[1; 16]).unwrap();
        doc.edit(
            &a,
            1_750_000_000_000,
            &[Edit::Set {
                field: "summary".into(),
                value: json!("补充：已回访。"),
            }],
        )
        .unwrap();
        data.import_docs(&mut [doc]).unwrap();
    }
    assert_eq!(ledger.refresh().unwrap().updated, 1);
    let t = ledger
        .tables(
            &Viewer::Office,
            &Query {
                slice: Slice::default(),
                ..year()
            },
        )
        .unwrap();
    let acts = t.get("activities");
    let row = acts
        .rows
        .iter()
        .find(|r| text(&r[0]) == fx.visits[5].id)
        .unwrap();
    assert_eq!(text(&row[acts.col("活动摘要")]), "补充：已回访。");
}

#[test]
fn issue_5_dashboard_counts_match_a_recount() {
    let (tmp, fx) = server_copy();
    let ledger = Ledger::open(tmp.path()).unwrap();
    let (from, to) = (d(2025, 4, 1), d(2025, 6, 30));
    let dash = sanjin_ledger::dashboard::dashboard(&ledger, &Viewer::Office, from, to).unwrap();
    let visits = visits_in(&fx, from, to);
    assert_eq!(dash.visits, visits.len() as i64);
    let by_kind: i64 = dash.by_kind.iter().map(|(_, n)| n).sum();
    assert_eq!(by_kind, dash.visits);
    let mut active: BTreeSet<String> = BTreeSet::new();
    for r in &fx.visits {
        if let RecordData::Visit(v) = &r.data
            && v.start.date() >= from
            && v.start.date() <= to
        {
            active.extend(v.participants.iter().cloned());
            active.insert(r.created_by.clone());
        }
    }
    let mut opinions = 0;
    for r in &fx.opinions {
        if let RecordData::Opinion(o) = &r.data
            && o.recorded_on >= from
            && o.recorded_on <= to
        {
            active.insert(r.created_by.clone());
            opinions += 1;
        }
    }
    assert_eq!(dash.members, 360);
    assert_eq!(dash.members_active, active.len() as i64);
    assert_eq!(dash.opinions, opinions);
    // 六个一 for the year up to the quarter's end.
    let mut per_group: BTreeMap<String, [i64; 6]> = BTreeMap::new();
    for (_, v) in visits_in(&fx, d(2025, 1, 1), to) {
        if let Some(i) = ActivityType::SIX_ONES
            .iter()
            .position(|x| *x == v.activity_type)
        {
            per_group.entry(v.group.clone()).or_default()[i] += 1;
        }
    }
    for row in &dash.six_ones {
        assert_eq!(
            row.counts,
            per_group.get(&row.group).copied().unwrap_or_default(),
            "{}",
            row.group
        );
    }
    // A leader's dashboard is the group's; a member has none.
    let leader = Viewer::Leader {
        group: "group-04".into(),
    };
    let mine = sanjin_ledger::dashboard::dashboard(&ledger, &leader, from, to).unwrap();
    assert_eq!(mine.six_ones.len(), 1);
    assert_eq!(
        mine.visits,
        visits.iter().filter(|(_, v)| v.group == "group-04").count() as i64
    );
    assert!(sanjin_ledger::dashboard::dashboard(&ledger, &Viewer::Member, from, to).is_err());
}

// ------------------------------------------------------------------ issue 10: exports

/// Opinion notes of the fixtures' first 2025 note's group, each with its own text, landed
/// through the server's import (the core's validation runs on each).
fn with_notes(tmp: &Path, fx: &Fixtures, texts: &[(&str, String)]) {
    let base = fx
        .opinions
        .iter()
        .find(|r| matches!(&r.data, RecordData::Opinion(o) if o.recorded_on.to_string().starts_with("2025-")))
        .unwrap();
    let records: Vec<_> = texts
        .iter()
        .map(|(id, text)| {
            let mut r = base.clone();
            r.id = id.to_string();
            r.events.clear();
            let RecordData::Opinion(o) = &mut r.data else {
                unreachable!()
            };
            o.text = text.clone();
            r
        })
        .collect();
    let mut data = ServerData::open(tmp).unwrap();
    assert_eq!(data.import_records(&records).unwrap().records, texts.len());
}

fn zip_entry(path: &Path, name: &str) -> String {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut bytes = Vec::new();
    zip.by_name(name).unwrap().read_to_end(&mut bytes).unwrap();
    String::from_utf8(bytes[3..].to_vec()).unwrap()
}

#[test]
fn issue10_csv_text_cells_starting_like_a_formula_are_neutralised_numbers_stay_numbers() {
    // What a spreadsheet would run: each prefix, on a cell as the ledger writes it.
    for p in ['=', '+', '-', '@', '\t', '\r'] {
        let s = format!("{p}HYPERLINK(\"http://evil\")");
        assert_eq!(
            sanjin_ledger::csv_text(&Cell::Text(s.clone())),
            format!("'{s}")
        );
    }
    assert_eq!(sanjin_ledger::csv_text(&Cell::Int(-12)), "-12");
    assert_eq!(sanjin_ledger::csv_text(&Cell::Num(-2.5)), "-2.5");
    assert_eq!(sanjin_ledger::csv_text(&Cell::Text("普通".into())), "普通");

    // Through the export: notes whose text starts with each prefix the core accepts (it refuses
    // a carriage return in any field, so that one is covered above and in the sink's own test).
    let (tmp, fx) = server_copy();
    let notes: Vec<(&str, String)> = vec![
        ("issue10-eq", "=1+2".into()),
        ("issue10-plus", "+86 138 0000 0000".into()),
        ("issue10-minus", "-1+2".into()),
        ("issue10-at", "@SUM(1,2)".into()),
        ("issue10-tab", "\t=1+2".into()),
        ("issue10-dash", "-".into()),
    ];
    with_notes(tmp.path(), &fx, &notes);
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    let out = tmp.path().join("ledger.zip");
    ledger
        .export(&Viewer::Office, &year(), Format::Csv, &out)
        .unwrap();
    let spec = sanjin_ledger::SHEETS
        .iter()
        .position(|s| s.key == "opinions")
        .unwrap();
    let csv = parse_csv(&zip_entry(
        &out,
        &format!("{spec:02}_{}.csv", sanjin_ledger::SHEETS[spec].title),
    ));
    let header = &csv[0];
    let col = |t: &str| header.iter().position(|h| h == t).unwrap();
    for (id, text) in &notes {
        let row = csv.iter().find(|r| r[0] == *id).unwrap();
        assert_eq!(row[col("内容")], format!("'{text}"), "{id}");
        // The handling days are numbers, written as numbers.
        let days = &row[col("已记录（天）")];
        assert!(days.parse::<f64>().is_ok(), "{id}: {days:?}");
    }
    // Every text cell of every ledger that starts like a formula carries the guard; no number
    // does.
    let t = ledger.tables(&Viewer::Office, &year()).unwrap();
    for (i, spec) in sanjin_ledger::SHEETS.iter().enumerate() {
        let csv = parse_csv(&zip_entry(&out, &format!("{i:02}_{}.csv", spec.title)));
        for (r, row) in t.get(spec.key).rows.iter().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                let written = &csv[r + 1][c];
                match cell {
                    Cell::Text(s) if s.starts_with(sanjin_ledger::FORMULA_PREFIXES) => {
                        assert_eq!(*written, format!("'{s}"))
                    }
                    other => assert_eq!(*written, other.display()),
                }
            }
        }
    }
}

#[test]
fn issue10_xlsx_cuts_an_overlong_note_and_keeps_it_whole_in_a_continuation_sheet() {
    use calamine::Data;
    let (tmp, fx) = server_copy();
    // 16,384 × 𠮷: 16,384 characters (the core allows 20,000) but 32,768 UTF-16 units, one more
    // than an Excel cell holds.
    let long = format!("{}完", "𠮷".repeat(16_384));
    let id = "issue10-long-note";
    with_notes(tmp.path(), &fx, &[(id, long.clone())]);
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    let out = tmp.path().join("ledger.xlsx");
    let report = ledger
        .export(&Viewer::Office, &year(), Format::Xlsx, &out)
        .unwrap();
    assert!(report.rows_of("opinions") > 0);
    let book = read_xlsx(&out);
    let opinions = &book["社情民意台账"];
    let header: Vec<String> = opinions[0].iter().map(|c| c.to_string()).collect();
    let col = |t: &str| header.iter().position(|h| h == t).unwrap();
    let row = opinions
        .iter()
        .find(|r| r[0] == Data::String(id.into()))
        .expect("the note's row is in the workbook");
    let Data::String(cell) = &row[col("内容")] else {
        panic!("{:?}", row[col("内容")]);
    };
    assert!(cell.encode_utf16().count() <= sanjin_ledger::MAX_CELL_UNITS);
    assert!(
        cell.ends_with(sanjin_ledger::CUT_MARKER),
        "a visible marker"
    );
    assert!(long.starts_with(cell.strip_suffix(sanjin_ledger::CUT_MARKER).unwrap()));
    // The full text, from the continuation sheet's parts in order.
    let more = &book[sanjin_ledger::OVERFLOW_SHEET];
    assert_eq!(
        more[0],
        ["台账", "行号", "记录编号", "列", "第几段", "共几段", "内容"]
            .map(|s| Data::String(s.into()))
            .to_vec()
    );
    let parts: Vec<&Vec<Data>> = more[1..]
        .iter()
        .filter(|r| r[2] == Data::String(id.into()))
        .collect();
    assert_eq!(parts.len(), 2);
    let mut full = String::new();
    for (k, p) in parts.iter().enumerate() {
        assert_eq!(p[0], Data::String("社情民意台账".into()));
        assert_eq!(p[3], Data::String("内容".into()));
        assert_eq!(p[4], Data::Float((k + 1) as f64));
        assert_eq!(p[5], Data::Float(2.0));
        // The row number points at the note's row as the spreadsheet numbers it.
        let at = opinions
            .iter()
            .position(|r| r[0] == Data::String(id.into()))
            .unwrap();
        assert_eq!(p[1], Data::Float((at + 1) as f64));
        let Data::String(s) = &p[6] else { panic!() };
        assert!(s.encode_utf16().count() <= sanjin_ledger::MAX_CELL_UNITS);
        full.push_str(s);
    }
    assert_eq!(full, long, "the whole text is recoverable");
    // Every other cell is as before; no continuation sheet without an overlong text.
    assert_eq!(book.len(), sanjin_ledger::SHEETS.len() + 1);

    // CSV has no cell limit: the full text.
    let zip = tmp.path().join("ledger.zip");
    ledger
        .export(&Viewer::Office, &year(), Format::Csv, &zip)
        .unwrap();
    let i = sanjin_ledger::SHEETS
        .iter()
        .position(|s| s.key == "opinions")
        .unwrap();
    let csv = parse_csv(&zip_entry(&zip, &format!("{i:02}_社情民意台账.csv")));
    let row = csv.iter().find(|r| r[0] == id).unwrap();
    assert!(row.contains(&long));
}

#[test]
fn issue10_export_errors_name_the_record_and_say_what_to_do() {
    let e = Error::Row {
        sheet: "社情民意台账",
        row: 12,
        key: "记录编号 op-0001".into(),
        column: "内容",
        reason: "超过 Excel 每个工作表 1,048,576 行的上限。请缩短统计期间".into(),
    };
    let zh = e.zh();
    assert!(
        zh.contains("社情民意台账") && zh.contains("第 12 行") && zh.contains("op-0001"),
        "{zh}"
    );
    assert!(zh.contains("内容") && zh.contains("请"), "{zh}");
    // An output that cannot be written: says where and what to do.
    let (tmp, _fx) = server_copy();
    let mut ledger = Ledger::open(tmp.path()).unwrap();
    let nowhere = tmp.path().join("no-such-dir").join("台账.xlsx");
    let e = ledger
        .export(&Viewer::Office, &year(), Format::Xlsx, &nowhere)
        .unwrap_err();
    let zh = e.zh();
    assert!(
        zh.contains("无法写入") && zh.contains("目录不存在") && zh.contains("请"),
        "{zh}"
    );
}
