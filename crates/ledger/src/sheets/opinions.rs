//! 社情民意台账: one row per opinion note of the period in the slice, with how long it spent in
//! each state of its handling.

use chrono::Duration;
use sanjin_core::Millis;
use sanjin_core::domain::{Opinion, RecordData, RecordKind};
use sanjin_core::time;
use sanjin_core::workflow::{EventType, State};

use super::conflicts::flag_conflicts;
use super::{Context, Rows, Totals, round1};
use crate::Result;
use crate::project::Projected;
use crate::sink::{Cell, Column, ColumnKind, Print, SheetSpec, Sink};

pub static OPINIONS: SheetSpec = SheetSpec {
    key: "opinions",
    title: "社情民意台账",
    columns: &[
        col!("记录编号", 38),
        col!("日期", 12, Date, "recorded_on"),
        col!("活动组", 22, Text, "group"),
        col!("联系点", 20, Text, "contact_point"),
        col!("主题", 18, Text, "topic"),
        col!("类别", 10, Text, "opinion_kind"),
        col!("紧急程度", 9, Text, "urgency"),
        col!("反映人", 12, Text, "source"),
        col!("内容", 50, Text, "text"),
        col!("记录人", 10),
        col!("办理状态", 10, Text, "status"),
        col!("报送日期", 12, Date),
        col!("反馈日期", 12, Date),
        col!("已记录（天）", 11, Number),
        col!("已提交（天）", 11, Number),
        col!("已退回（天）", 11, Number),
        col!("已采纳（天）", 11, Number),
        col!("已转办（天）", 11, Number),
        col!("已办理（天）", 11, Number),
        col!("办理用时（天）", 13, Number),
        // The linked visit's record id: kept for lookups, not printed.
        col!("关联活动", 38, Text, "visit"),
        col!("待裁定冲突", 40),
    ],
    print: Print {
        first: "日期",
        last: "办理用时（天）",
        groups: &["记录人", "已记录（天）"],
        key: Some(("日期", "日期")),
        wrap: &["内容"],
    },
};

/// Streams the opinion notes of the period into the sink, counting each in the totals.
///
/// An open note's current state counts until the latest change of any opinion note, or the
/// period's end if earlier: the same data always gives the same figures, whatever the clock.
pub(super) fn write(
    rows: &Rows,
    ctx: &Context,
    totals: &mut Totals,
    sink: &mut dyn Sink,
) -> Result<usize> {
    let period_end = time::beijing_day_start(ctx.q.to + Duration::days(1));
    let as_of = rows
        .last_ms("opinion")?
        .unwrap_or(period_end)
        .min(period_end);
    let mut written = 0;
    rows.each("opinion", Some((ctx.q.from, ctx.q.to)), |p| {
        let RecordData::Opinion(o) = &p.data else {
            return Ok(());
        };
        if !ctx.filter.opinion(o, &p.created_by) {
            return Ok(());
        }
        let h = handling(&p, as_of);
        totals.opinion(&p, o, h.submitted.is_some());
        written += 1;
        sink.row(&row(ctx, &p, o, &h))
    })?;
    Ok(written)
}

/// The row of one opinion note.
fn row(ctx: &Context, p: &Projected, o: &Opinion, h: &Handling) -> Vec<Cell> {
    let dir = ctx.dir;
    let mut cells = vec![
        Cell::text(p.id.as_str()),
        Cell::Date(o.recorded_on),
        Cell::text(dir.group_name(&o.group)),
        Cell::text(dir.contact_point_name(&o.contact_point)),
        Cell::text(o.topic.as_str()),
        Cell::text(o.opinion_kind.zh()),
        Cell::text(o.urgency.zh()),
        Cell::text(o.source.as_deref().unwrap_or("匿名")),
        Cell::text(o.text.as_str()),
        Cell::text(dir.member_name(&p.created_by)),
        Cell::text(p.status.zh()),
        h.submitted
            .map_or(Cell::Empty, |t| Cell::Date(time::beijing_date(t))),
        h.feedback
            .map_or(Cell::Empty, |t| Cell::Date(time::beijing_date(t))),
    ];
    cells.extend(h.days.iter().map(|d| Cell::Num(*d)));
    cells.push(h.total_days.map_or(Cell::Empty, Cell::Num));
    cells.push(Cell::text(o.visit.as_deref().unwrap_or("")));
    cells.push(Cell::Empty);
    flag_conflicts(&OPINIONS, p, dir, &mut cells);
    cells
}

/// Opinion-state durations in days, in the order of the opinion sheet's columns.
const TIMED_STATES: [State; 6] = [
    State::Recorded,
    State::Submitted,
    State::Returned,
    State::Accepted,
    State::Forwarded,
    State::Handled,
];

struct Handling {
    submitted: Option<Millis>,
    feedback: Option<Millis>,
    days: [f64; 6],
    total_days: Option<f64>,
}

fn days(ms: Millis) -> f64 {
    ms.max(0) as f64 / 86_400_000.0
}

/// Time in each state, from the events that changed it (in document order).
fn handling(p: &Projected, as_of: Millis) -> Handling {
    let mut state = State::Recorded;
    let mut since = p.created_at_ms;
    let mut spent = [0i64; 6];
    let mut submitted = None;
    let mut feedback = None;
    // The state before each applied step not taken back yet: an applied undo (issue 13) always
    // takes back the latest of them (`workflow::fold`), so the state returns to the top one.
    let mut before: Vec<State> = Vec::new();
    for e in p.events.iter().filter(|e| e.applied) {
        let to = match e.t {
            EventType::Resolve => e.to,
            EventType::Delete | EventType::Restore => None,
            EventType::Undo => before.pop(),
            t => sanjin_core::workflow::transition(RecordKind::Opinion, t).map(|(_, to)| to),
        };
        let Some(to) = to else { continue };
        if e.t == EventType::Undo {
            if state == State::FeedbackGiven {
                feedback = None;
            }
        } else {
            before.push(state);
        }
        if let Some(i) = TIMED_STATES.iter().position(|s| *s == state) {
            spent[i] += e.at_ms - since;
        }
        if to == State::Submitted && submitted.is_none() {
            submitted = Some(e.at_ms);
        }
        if to == State::FeedbackGiven {
            feedback = Some(e.at_ms);
        }
        state = to;
        since = e.at_ms;
    }
    if let Some(i) = TIMED_STATES.iter().position(|s| *s == state)
        && as_of > since
    {
        spent[i] += as_of - since;
    }
    let total_days = submitted.map(|s| round1(days(feedback.unwrap_or(as_of.max(s)) - s)));
    Handling {
        submitted,
        feedback,
        days: spent.map(|ms| round1(days(ms))),
        total_days,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::Ev;

    /// Issue 13: a step taken back by an undo returns the opinion to the state before it; the
    /// time after the undo counts in that state, and an undone feedback is no feedback.
    #[test]
    fn issue13_an_undo_returns_the_time_to_the_state_before() {
        const DAY: Millis = 86_400_000;
        let ev = |t: EventType, day: i64| Ev {
            t,
            by: "office-01".into(),
            at_ms: day * DAY,
            applied: true,
            to: None,
        };
        let p = Projected {
            id: "o-1".into(),
            created_by: "member-0001".into(),
            created_at_ms: 0,
            status: State::Accepted,
            deleted: false,
            data: RecordData::Opinion(sanjin_core::testdata::opinion()),
            conflicts: vec![],
            events: vec![
                ev(EventType::Submit, 1),
                ev(EventType::Accept, 2),
                ev(EventType::Forward, 3),
                ev(EventType::Undo, 4),
            ],
            last_ms: 4 * DAY,
        };
        let h = handling(&p, 10 * DAY);
        let at = |s: State| TIMED_STATES.iter().position(|t| *t == s).unwrap();
        assert_eq!(
            h.days[at(State::Forwarded)],
            1.0,
            "forwarded from day 3 to the undo"
        );
        assert_eq!(
            h.days[at(State::Accepted)],
            7.0,
            "accepted days 2–3 and 4–10"
        );
        let mut p = p;
        p.events.push(ev(EventType::Handle, 5));
        p.events.push(ev(EventType::Feedback, 6));
        p.events.push(ev(EventType::Undo, 7));
        let h = handling(&p, 10 * DAY);
        assert_eq!(h.feedback, None, "the feedback was taken back");
        assert_eq!(h.days[at(State::Handled)], 4.0, "handled days 5–6 and 7–10");
    }
}
