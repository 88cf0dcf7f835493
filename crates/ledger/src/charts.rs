//! The figures of the console's charts (issue 13): activities per month against the plan,
//! members' coverage (全覆盖) over the year, opinion handling times and the "六个一" — for a
//! year up to a month and the viewer's scope, read from the projection without opening a
//! document and without reading a row per record.
//!
//! **How.** When the refresh projects a record it also writes the record's *chart facts*
//! ([`facts`]: a few short rows — a visit's month, group and activity type; a plan item's month,
//! group and type; an opinion's month, group and state and, from its folded workflow events,
//! the days from its submission to its handling and to the feedback; the members who took part
//! and the month) into `chart_facts`, in the refresh's transaction (the old facts removed
//! first, none kept for a tombstoned record). Two triggers keep `chart_totals`, the count of
//! facts per (kind, month, group, key, days): the charts read only those totals, a few thousand
//! rows for a province's year, so a dashboard costs the same whether the year holds a hundred
//! visits or a hundred thousand.
//!
//! **What is counted.**
//! - Activities: every visit record (not deleted) by the month it started, as the dashboard's
//!   "活动记录" counts them; the plan: plan items by their year and month.
//! - Coverage (全覆盖, PRODUCT.md: every member takes part at least once a year): members of
//!   the scope named on a visit (participant or author) or recording an opinion note, counted
//!   from January, cumulatively by month, against the members of the scope in the directory.
//! - Handling: opinion notes recorded in the months counted; days (a started day counts as a
//!   whole one) from the first submission to the handling (办理; feedback given without a
//!   handling step counts as handled then) and to the feedback to the member (反馈), for notes
//!   whose state is there now; the median and five buckets; notes still open (submitted,
//!   accepted, forwarded) and handled awaiting feedback, by their state.
//! - "六个一": per type the year's visits, and the groups of the scope with at least one
//!   against the groups of the scope (the target is one of each per group per year).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{Datelike, NaiveDate};
use rusqlite::{Connection, Transaction, params};
use sanjin_core::doc::RecordView;
use sanjin_core::domain::{ActivityType, RecordData};
use sanjin_core::workflow::{self, Event, EventType, State};
use sanjin_core::{Millis, domain::RecordKind};
use serde::Serialize;

use crate::{Directory, Error, Ledger, Query, Result, Slice, Viewer};

/// The chart tables of the projection (created with it, dropped with it).
pub(crate) const SCHEMA: &str = "
    CREATE TABLE chart_facts (
        id    TEXT NOT NULL,
        kind  TEXT NOT NULL,
        month TEXT NOT NULL,
        grp   TEXT NOT NULL,
        key   TEXT NOT NULL,
        days  INTEGER NOT NULL
    );
    CREATE INDEX chart_facts_id ON chart_facts(id);
    CREATE TABLE chart_totals (
        kind  TEXT NOT NULL,
        month TEXT NOT NULL,
        grp   TEXT NOT NULL,
        key   TEXT NOT NULL,
        days  INTEGER NOT NULL,
        n     INTEGER NOT NULL,
        PRIMARY KEY (kind, month, grp, key, days)
    ) WITHOUT ROWID;
    CREATE TRIGGER chart_facts_added AFTER INSERT ON chart_facts BEGIN
        INSERT INTO chart_totals (kind, month, grp, key, days, n)
        VALUES (new.kind, new.month, new.grp, new.key, new.days, 1)
        ON CONFLICT (kind, month, grp, key, days) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER chart_facts_removed AFTER DELETE ON chart_facts BEGIN
        UPDATE chart_totals SET n = n - 1
        WHERE kind = old.kind AND month = old.month AND grp = old.grp AND key = old.key
          AND days = old.days;
        DELETE FROM chart_totals
        WHERE kind = old.kind AND month = old.month AND grp = old.grp AND key = old.key
          AND days = old.days AND n <= 0;
    END;";

/// The tables [`SCHEMA`] creates, for a rebuild (dropping a table drops its triggers).
pub(crate) const TABLES: &[&str] = &["chart_facts", "chart_totals"];

/// Kinds of chart facts.
const VISIT: &str = "visit";
const PLAN: &str = "plan";
const OPINION: &str = "opinion";
/// Days from submission to handling (or feedback without a handling step).
const DONE: &str = "op_done";
/// Days from submission to feedback.
const FEEDBACK: &str = "op_feedback";
/// A member who took part (key: the member id, no group).
const MEMBER: &str = "member";

/// One chart fact of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fact {
    kind: &'static str,
    month: String,
    grp: String,
    key: String,
    days: i64,
}

fn month_key(year: i32, month: u32) -> String {
    format!("{year:04}-{month:02}")
}

fn month_of(d: NaiveDate) -> String {
    month_key(d.year(), d.month())
}

/// When an opinion's handling reached its steps, from its folded events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Timeline {
    /// The first submission.
    pub submitted: Option<Millis>,
    /// Handled (or feedback given without a handling step), if that is where it stands now.
    pub done: Option<Millis>,
    /// Feedback given, if that is where it stands now.
    pub feedback: Option<Millis>,
}

/// The timeline of an opinion's events as [`workflow::fold`] marked them: the applied steps in
/// order, an applied undo taking back the latest step not taken back yet (the state it left is
/// no longer reached), the first submission kept as the opinion ledger keeps it.
pub(crate) fn timeline(events: &[Event], state: State) -> Timeline {
    let mut reached: HashMap<State, Millis> = HashMap::new();
    let mut submitted = None;
    let mut current = workflow::initial(RecordKind::Opinion);
    let mut before: Vec<State> = Vec::new();
    for e in events.iter().filter(|e| e.applied) {
        let to = match e.event {
            EventType::Resolve => e.to,
            EventType::Delete | EventType::Restore => None,
            EventType::Undo => before.pop(),
            t => workflow::transition(RecordKind::Opinion, t).map(|(_, to)| to),
        };
        let Some(to) = to else { continue };
        if e.event == EventType::Undo {
            reached.remove(&current);
        } else {
            before.push(current);
            reached.insert(to, e.at_ms);
            if to == State::Submitted && submitted.is_none() {
                submitted = Some(e.at_ms);
            }
        }
        current = to;
    }
    let handled = reached.get(&State::Handled).copied();
    let fed = reached.get(&State::FeedbackGiven).copied();
    Timeline {
        submitted,
        done: match state {
            State::Handled => handled,
            State::FeedbackGiven => handled.or(fed),
            _ => None,
        },
        feedback: (state == State::FeedbackGiven).then_some(fed).flatten(),
    }
}

/// Whole days from `from` to `to`, a started day counting as one (never negative).
fn days_between(from: Millis, to: Millis) -> i64 {
    const DAY: i64 = 86_400_000;
    (to - from).max(0).div_euclid(DAY) + i64::from((to - from).max(0) % DAY != 0)
}

/// The chart facts of a record as its view reads (none for a tombstoned record or a kind the
/// charts do not count).
pub(crate) fn facts(v: &RecordView) -> Vec<Fact> {
    if v.deleted {
        return Vec::new();
    }
    let fact = |kind, month: &str, grp: &str, key: &str, days| Fact {
        kind,
        month: month.to_string(),
        grp: grp.to_string(),
        key: key.to_string(),
        days,
    };
    let mut out = Vec::new();
    let mut people = BTreeSet::new();
    let month = match &v.data {
        RecordData::Visit(visit) => {
            let month = month_of(visit.start.date());
            out.push(fact(
                VISIT,
                &month,
                &visit.group,
                visit.activity_type.code(),
                0,
            ));
            people.extend(visit.participants.iter().map(String::as_str));
            people.insert(v.created_by.as_str());
            month
        }
        RecordData::Opinion(o) => {
            let month = month_of(o.recorded_on);
            out.push(fact(OPINION, &month, &o.group, v.status.code(), 0));
            let t = timeline(&v.events, v.status);
            if let Some(s) = t.submitted {
                if let Some(d) = t.done {
                    out.push(fact(DONE, &month, &o.group, "", days_between(s, d)));
                }
                if let Some(f) = t.feedback {
                    out.push(fact(FEEDBACK, &month, &o.group, "", days_between(s, f)));
                }
            }
            people.insert(v.created_by.as_str());
            month
        }
        RecordData::Plan(p) => {
            if (1..=12).contains(&p.month) && (0..=9999).contains(&p.year) {
                out.push(fact(
                    PLAN,
                    &month_key(p.year as i32, p.month as u32),
                    &p.group,
                    p.activity_type.code(),
                    0,
                ));
            }
            return out;
        }
        _ => return out,
    };
    for m in people.into_iter().filter(|m| !m.is_empty()) {
        out.push(fact(MEMBER, &month, "", m, 0));
    }
    out
}

/// Writes a record's chart facts inside the refresh's transaction, its old ones removed first
/// (the triggers keep the totals).
pub(crate) fn put(tx: &Transaction, id: &str, facts: &[Fact]) -> Result<()> {
    tx.prepare_cached("DELETE FROM chart_facts WHERE id = ?1")?
        .execute([id])?;
    let mut add = tx.prepare_cached(
        "INSERT INTO chart_facts (id, kind, month, grp, key, days) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for f in facts {
        add.execute(params![id, f.kind, f.month, f.grp, f.key, f.days])?;
    }
    Ok(())
}

// ------------------------------------------------------------------ figures

/// One month of the activities chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthFigures {
    /// 1–12.
    pub month: u32,
    /// Visits that started in the month; `None` for a month after the ones counted.
    pub visits: Option<i64>,
    /// Plan items due in the month.
    pub planned: i64,
}

/// Members who took part, cumulatively by month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// Members of the scope in the directory.
    pub members: i64,
    /// For each month counted (January first), the members of the scope who took part from
    /// January up to the end of that month.
    pub covered: Vec<i64>,
}

/// Handling times' buckets, in days: (lowest, highest) inclusive; the last has no highest.
pub const BUCKETS: [(i64, Option<i64>); 5] = [
    (0, Some(7)),
    (8, Some(15)),
    (16, Some(30)),
    (31, Some(60)),
    (61, None),
];

/// A bucket's label in Chinese (`≤7天`, `8–15天`, `>60天`).
pub fn bucket_zh(i: usize) -> String {
    match BUCKETS.get(i) {
        Some((0, Some(hi))) => format!("≤{hi}天"),
        Some((lo, Some(hi))) => format!("{lo}–{hi}天"),
        Some((lo, None)) => format!(">{}天", lo - 1),
        None => String::new(),
    }
}

/// The distribution of one handling time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Durations {
    pub count: i64,
    /// The median in days (the mean of the two middle ones for an even count).
    pub median_days: Option<f64>,
    /// Counts per [`BUCKETS`] entry.
    pub buckets: [i64; 5],
}

impl Durations {
    /// From a histogram: days → count.
    fn of(hist: &BTreeMap<i64, i64>) -> Durations {
        let count: i64 = hist.values().sum();
        let mut buckets = [0; 5];
        for (d, n) in hist {
            let i = BUCKETS
                .iter()
                .position(|(lo, hi)| d >= lo && hi.is_none_or(|hi| *d <= hi))
                .unwrap_or(0);
            buckets[i] += n;
        }
        // The values at 0-based ranks (count-1)/2 and count/2.
        let at = |rank: i64| {
            let mut seen = 0;
            for (d, n) in hist {
                seen += n;
                if seen > rank {
                    return *d;
                }
            }
            0
        };
        let median_days = (count > 0).then(|| (at((count - 1) / 2) + at(count / 2)) as f64 / 2.0);
        Durations {
            count,
            median_days,
            buckets,
        }
    }
}

/// Opinion handling of the opinion notes recorded in the months counted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Handling {
    /// Opinion notes recorded.
    pub recorded: i64,
    /// Submission to handling (办理).
    pub done: Durations,
    /// Submission to feedback (反馈).
    pub feedback: Durations,
    /// Submitted, accepted or forwarded: not handled yet.
    pub open: i64,
    /// Handled, feedback not given yet.
    pub awaiting_feedback: i64,
}

/// One of the "六个一".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SixOneFigures {
    pub activity_type: ActivityType,
    /// Visits of the type in the months counted.
    pub visits: i64,
    /// Groups of the scope with at least one.
    pub groups_done: i64,
}

/// Everything the charts show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Charts {
    pub year: i32,
    /// The months counted are January to this one (1–12).
    pub through: u32,
    /// Twelve months.
    pub months: Vec<MonthFigures>,
    pub coverage: Coverage,
    pub handling: Handling,
    /// Groups of the scope: the "六个一" target of each type (one per group per year).
    pub groups: i64,
    /// In [`ActivityType::SIX_ONES`] order.
    pub six_ones: Vec<SixOneFigures>,
}

/// The groups and members a scope covers.
struct Scope {
    /// Records of these groups; `None`: of every group (office staff, no slice).
    groups: Option<BTreeSet<String>>,
    /// The directory's members of the scope (coverage counts no one else).
    members: BTreeSet<String>,
    /// Groups the "六个一" target counts.
    target_groups: BTreeSet<String>,
}

impl Scope {
    fn of(slice: &Slice, dir: &Directory) -> Result<Scope> {
        if slice.member.is_some() || slice.contact_point.is_some() || slice.target_kind.is_some() {
            return Err(Error::Invalid(
                "图表按活动组、政协组织或专委会统计，不能按委员、联系点或类别筛选；请去掉这些筛选条件"
                    .into(),
            ));
        }
        let target_groups: BTreeSet<String> = dir
            .groups_in(slice)
            .into_iter()
            .map(|(id, _)| id.clone())
            .collect();
        let members: BTreeSet<String> = dir
            .members_in(slice)
            .into_iter()
            .map(|(id, _)| id.clone())
            .collect();
        let narrowed =
            slice.group.is_some() || slice.chapter.is_some() || slice.committee.is_some();
        Ok(Scope {
            groups: narrowed.then(|| target_groups.clone()),
            members,
            target_groups,
        })
    }

    fn has_group(&self, g: &str) -> bool {
        self.groups.as_ref().is_none_or(|s| s.contains(g))
    }

    fn has_member(&self, m: &str) -> bool {
        self.members.contains(m)
    }
}

/// A row of `chart_totals`.
struct Total {
    month: String,
    grp: String,
    key: String,
    days: i64,
    n: i64,
}

/// The totals of `kind` from month `from` to `to` (`YYYY-MM`, inclusive).
fn totals(conn: &Connection, kind: &str, from: &str, to: &str) -> Result<Vec<Total>> {
    let mut stmt = conn.prepare_cached(
        "SELECT month, grp, key, days, n FROM chart_totals
         WHERE kind = ?1 AND month >= ?2 AND month <= ?3",
    )?;
    let rows = stmt.query_map(params![kind, from, to], |r| {
        Ok(Total {
            month: r.get(0)?,
            grp: r.get(1)?,
            key: r.get(2)?,
            days: r.get(3)?,
            n: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The month number of a `YYYY-MM` key.
fn month_no(key: &str) -> Option<u32> {
    key.get(5..7)?.parse().ok().filter(|m| (1..=12).contains(m))
}

/// The scope of `viewer` asking for `slice` in `year`.
fn scope(ledger: &Ledger, viewer: &Viewer, year: i32, slice: &Slice) -> Result<Scope> {
    let from = NaiveDate::from_ymd_opt(year, 1, 1)
        .ok_or_else(|| Error::Invalid(format!("年份 {year} 无效")))?;
    let q = ledger.scoped(
        viewer,
        &Query {
            slice: slice.clone(),
            ..Query::new(from, from)
        },
    )?;
    Scope::of(&q.slice, &ledger.directory()?)
}

/// The charts' figures for the year of `q.to`, January to the month of `q.to`, as `viewer` may
/// see them (`q.from` is not used: the charts are the year's so far).
pub(crate) fn charts(ledger: &Ledger, viewer: &Viewer, q: &Query) -> Result<Charts> {
    let (year, through) = (q.to.year(), q.to.month());
    let scope = scope(ledger, viewer, year, &q.slice)?;
    let conn = &ledger.conn;
    let (first, last, december) = (
        month_key(year, 1),
        month_key(year, through),
        month_key(year, 12),
    );

    let mut months: Vec<MonthFigures> = (1..=12)
        .map(|m| MonthFigures {
            month: m,
            visits: (m <= through).then_some(0),
            planned: 0,
        })
        .collect();
    let mut six: BTreeMap<&str, (i64, BTreeSet<String>)> = BTreeMap::new();
    for t in totals(conn, VISIT, &first, &last)? {
        if !scope.has_group(&t.grp) {
            continue;
        }
        if let Some(v) = month_no(&t.month)
            .and_then(|m| months.get_mut(m as usize - 1))
            .and_then(|m| m.visits.as_mut())
        {
            *v += t.n;
        }
        if let Some(ty) = ActivityType::SIX_ONES.iter().find(|ty| ty.code() == t.key) {
            let e = six.entry(ty.code()).or_default();
            e.0 += t.n;
            if scope.target_groups.contains(&t.grp) {
                e.1.insert(t.grp);
            }
        }
    }
    for t in totals(conn, PLAN, &first, &december)? {
        if let Some(m) = month_no(&t.month).filter(|_| scope.has_group(&t.grp)) {
            months[m as usize - 1].planned += t.n;
        }
    }

    let mut first_month: BTreeMap<String, u32> = BTreeMap::new();
    for t in totals(conn, MEMBER, &first, &last)? {
        if let Some(m) = month_no(&t.month).filter(|_| scope.has_member(&t.key)) {
            let e = first_month.entry(t.key).or_insert(m);
            *e = (*e).min(m);
        }
    }
    let mut covered = vec![0i64; through as usize];
    for m in first_month.values() {
        for c in covered.iter_mut().skip(*m as usize - 1) {
            *c += 1;
        }
    }

    let (mut recorded, mut open, mut awaiting_feedback) = (0, 0, 0);
    for t in totals(conn, OPINION, &first, &last)? {
        if !scope.has_group(&t.grp) {
            continue;
        }
        recorded += t.n;
        match State::parse(&t.key) {
            Some(State::Submitted | State::Accepted | State::Forwarded) => open += t.n,
            Some(State::Handled) => awaiting_feedback += t.n,
            _ => {}
        }
    }
    let histogram = |kind| -> Result<BTreeMap<i64, i64>> {
        let mut h = BTreeMap::new();
        for t in totals(conn, kind, &first, &last)? {
            if scope.has_group(&t.grp) {
                *h.entry(t.days).or_insert(0) += t.n;
            }
        }
        Ok(h)
    };
    let handling = Handling {
        recorded,
        done: Durations::of(&histogram(DONE)?),
        feedback: Durations::of(&histogram(FEEDBACK)?),
        open,
        awaiting_feedback,
    };

    Ok(Charts {
        year,
        through,
        months,
        coverage: Coverage {
            members: scope.members.len() as i64,
            covered,
        },
        handling,
        groups: scope.target_groups.len() as i64,
        six_ones: ActivityType::SIX_ONES
            .iter()
            .map(|ty| {
                let (visits, done) = six.remove(ty.code()).unwrap_or_default();
                SixOneFigures {
                    activity_type: *ty,
                    visits,
                    groups_done: done.len() as i64,
                }
            })
            .collect(),
    })
}

/// The first day of the latest month up to `on_or_before` with a visit or an opinion note in
/// `viewer`'s scope (the dashboard opens on it when the current quarter is empty).
pub(crate) fn latest_with_data(
    ledger: &Ledger,
    viewer: &Viewer,
    on_or_before: NaiveDate,
) -> Result<Option<NaiveDate>> {
    let scope = scope(ledger, viewer, on_or_before.year(), &Slice::default())?;
    let last = month_of(on_or_before);
    let mut stmt = ledger.conn.prepare_cached(
        "SELECT month, grp FROM chart_totals
         WHERE kind = ?1 AND month <= ?2 AND n > 0 ORDER BY month DESC",
    )?;
    let mut latest: Option<String> = None;
    for kind in [VISIT, OPINION] {
        let mut rows = stmt.query(params![kind, last])?;
        while let Some(r) = rows.next()? {
            let month = r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
            if latest.as_deref().is_some_and(|l| l >= month) {
                break;
            }
            let grp = r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
            if scope.has_group(grp) {
                latest = Some(month.to_string());
                break;
            }
        }
    }
    Ok(latest.and_then(|m| NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn ev(event: EventType, at_days: f64, id: &str, undoes: Option<&str>) -> Event {
        Event {
            id: id.into(),
            event,
            member: "m".into(),
            device: "d".into(),
            at_ms: (at_days * DAY as f64) as i64,
            note: None,
            to: None,
            unit: None,
            due: None,
            undoes: undoes.map(String::from),
            applied: false,
        }
    }

    fn folded(mut events: Vec<Event>) -> (Vec<Event>, State) {
        let f = workflow::fold(RecordKind::Opinion, &mut events);
        (events, f.state)
    }

    #[test]
    fn issue13_timeline_follows_the_applied_steps() {
        use EventType as E;
        // Submitted day 1, accepted 2, forwarded 3, handled 10.5, feedback 12.
        let (events, state) = folded(vec![
            ev(E::Submit, 1.0, "a", None),
            ev(E::Accept, 2.0, "b", None),
            ev(E::Forward, 3.0, "c", None),
            ev(E::Handle, 10.5, "d", None),
            ev(E::Feedback, 12.0, "e", None),
        ]);
        let t = timeline(&events, state);
        assert_eq!(t.submitted, Some(DAY));
        assert_eq!(t.done, Some(10 * DAY + DAY / 2));
        assert_eq!(t.feedback, Some(12 * DAY));
        assert_eq!(days_between(t.submitted.unwrap(), t.done.unwrap()), 10);
        assert_eq!(days_between(t.submitted.unwrap(), t.feedback.unwrap()), 11);

        // Feedback straight after forwarding: handled then; a handling undone is not handled;
        // a re-submission after a return keeps the first submission.
        let (events, state) = folded(vec![
            ev(E::Submit, 1.0, "a", None),
            ev(E::Return, 2.0, "b", None),
            ev(E::Submit, 3.0, "c", None),
            ev(E::Accept, 4.0, "d", None),
            ev(E::Forward, 5.0, "e", None),
            ev(E::Feedback, 9.0, "f", None),
        ]);
        let t = timeline(&events, state);
        assert_eq!(
            (t.submitted, t.done, t.feedback),
            (Some(DAY), Some(9 * DAY), Some(9 * DAY))
        );
        let (events, state) = folded(vec![
            ev(E::Submit, 1.0, "a", None),
            ev(E::Accept, 2.0, "b", None),
            ev(E::Handle, 3.0, "c", None),
            ev(E::Undo, 4.0, "d", Some("c")),
        ]);
        assert_eq!(state, State::Accepted);
        let t = timeline(&events, state);
        assert_eq!((t.submitted, t.done, t.feedback), (Some(DAY), None, None));
        // Never submitted: no time.
        let (events, state) = folded(vec![]);
        assert_eq!(timeline(&events, state), Timeline::default());
    }

    #[test]
    fn issue13_days_count_a_started_day_as_one() {
        assert_eq!(days_between(0, 0), 0);
        assert_eq!(days_between(0, 1), 1);
        assert_eq!(days_between(0, DAY), 1);
        assert_eq!(days_between(0, DAY + 1), 2);
        assert_eq!(days_between(5 * DAY, DAY), 0);
    }

    #[test]
    fn issue13_medians_and_buckets_from_a_histogram() {
        let h: BTreeMap<i64, i64> = [(3, 2), (7, 1), (8, 1), (20, 1), (61, 1)].into();
        let d = Durations::of(&h);
        assert_eq!(d.count, 6);
        // 3 3 7 8 20 61: the middle ones 7 and 8.
        assert_eq!(d.median_days, Some(7.5));
        assert_eq!(d.buckets, [3, 1, 1, 0, 1]);
        let d = Durations::of(&[(40, 3)].into());
        assert_eq!((d.median_days, d.buckets), (Some(40.0), [0, 0, 0, 3, 0]));
        assert_eq!(Durations::of(&BTreeMap::new()).median_days, None);
        assert_eq!(
            (0..5).map(bucket_zh).collect::<Vec<_>>(),
            ["≤7天", "8–15天", "16–30天", "31–60天", ">60天"]
        );
    }

    #[test]
    fn issue13_totals_follow_facts_replaced_and_removed() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        let f = |kind, month: &str, grp: &str, key: &str| Fact {
            kind,
            month: month.into(),
            grp: grp.into(),
            key: key.into(),
            days: 0,
        };
        let tx = conn.transaction().unwrap();
        put(&tx, "v1", &[f(VISIT, "2025-03", "g1", "lecture")]).unwrap();
        put(&tx, "v2", &[f(VISIT, "2025-03", "g1", "lecture")]).unwrap();
        put(&tx, "v3", &[f(VISIT, "2025-04", "g2", "lecture")]).unwrap();
        // v1 edited: moved to April; v2 deleted (no facts).
        put(&tx, "v1", &[f(VISIT, "2025-04", "g2", "lecture")]).unwrap();
        put(&tx, "v2", &[]).unwrap();
        tx.commit().unwrap();
        let rows: Vec<(String, String, i64)> = conn
            .prepare("SELECT month, grp, n FROM chart_totals ORDER BY month")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows, [("2025-04".to_string(), "g2".to_string(), 2)]);
    }
}
