//! Workflow states derived from a record's append-only event list.
//!
//! Visits: draft → submitted → returned | approved (returned → submitted again).
//! Opinion notes: recorded → submitted → accepted → forwarded | handled → feedback given
//! (submitted → returned → submitted again).
//! Deletion and restoring are events too: a deleted record is a tombstone, never removed.
//! A mistaken step is undone by a new `undo` event naming it (issue 13): the state goes back to
//! what it was before that step, and both events stay in the list.

use crate::domain::RecordKind;

/// A workflow state.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Draft,
    Submitted,
    Returned,
    Approved,
    Recorded,
    Accepted,
    Forwarded,
    Handled,
    FeedbackGiven,
    Active,
}

impl State {
    pub const ALL: &'static [State] = &[
        State::Draft,
        State::Submitted,
        State::Returned,
        State::Approved,
        State::Recorded,
        State::Accepted,
        State::Forwarded,
        State::Handled,
        State::FeedbackGiven,
        State::Active,
    ];

    pub fn code(self) -> &'static str {
        match self {
            State::Draft => "draft",
            State::Submitted => "submitted",
            State::Returned => "returned",
            State::Approved => "approved",
            State::Recorded => "recorded",
            State::Accepted => "accepted",
            State::Forwarded => "forwarded",
            State::Handled => "handled",
            State::FeedbackGiven => "feedback_given",
            State::Active => "active",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            State::Draft => "草稿",
            State::Submitted => "已提交",
            State::Returned => "已退回",
            State::Approved => "已审核",
            State::Recorded => "已记录",
            State::Accepted => "已采纳",
            State::Forwarded => "已转办",
            State::Handled => "已办理",
            State::FeedbackGiven => "已反馈",
            State::Active => "有效",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        let s = s.trim();
        Self::ALL
            .iter()
            .copied()
            .find(|v| v.code() == s || v.zh() == s)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// An event in a record's event list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Submit,
    Return,
    Approve,
    Accept,
    Forward,
    Handle,
    Feedback,
    /// A leader settles a contested state; carries the chosen state.
    Resolve,
    Delete,
    Restore,
    /// Takes back the latest step (issue 13); names the event it undoes.
    Undo,
}

impl EventType {
    pub const ALL: &'static [EventType] = &[
        EventType::Submit,
        EventType::Return,
        EventType::Approve,
        EventType::Accept,
        EventType::Forward,
        EventType::Handle,
        EventType::Feedback,
        EventType::Resolve,
        EventType::Delete,
        EventType::Restore,
        EventType::Undo,
    ];

    pub fn code(self) -> &'static str {
        match self {
            EventType::Submit => "submit",
            EventType::Return => "return",
            EventType::Approve => "approve",
            EventType::Accept => "accept",
            EventType::Forward => "forward",
            EventType::Handle => "handle",
            EventType::Feedback => "feedback",
            EventType::Resolve => "resolve",
            EventType::Delete => "delete",
            EventType::Restore => "restore",
            EventType::Undo => "undo",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            EventType::Submit => "提交",
            EventType::Return => "退回",
            EventType::Approve => "审核通过",
            EventType::Accept => "采纳",
            EventType::Forward => "转办",
            EventType::Handle => "办理",
            EventType::Feedback => "反馈",
            EventType::Resolve => "裁定",
            EventType::Delete => "删除",
            EventType::Restore => "恢复",
            EventType::Undo => "撤销",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        let s = s.trim();
        Self::ALL
            .iter()
            .copied()
            .find(|v| v.code() == s || v.zh() == s)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// The state a record of this kind starts in.
pub fn initial(kind: RecordKind) -> State {
    match kind {
        RecordKind::Visit => State::Draft,
        RecordKind::Opinion => State::Recorded,
        _ => State::Active,
    }
}

/// The states a kind can be in.
pub fn states(kind: RecordKind) -> &'static [State] {
    match kind {
        RecordKind::Visit => &[
            State::Draft,
            State::Submitted,
            State::Returned,
            State::Approved,
        ],
        RecordKind::Opinion => &[
            State::Recorded,
            State::Submitted,
            State::Returned,
            State::Accepted,
            State::Forwarded,
            State::Handled,
            State::FeedbackGiven,
        ],
        _ => &[State::Active],
    }
}

/// The transition `event` makes on a record of `kind`: the states it may start from and where it
/// leads. `None` for events that are not transitions of this kind.
pub fn transition(kind: RecordKind, event: EventType) -> Option<(&'static [State], State)> {
    use EventType as E;
    use State as S;
    match (kind, event) {
        (RecordKind::Visit, E::Submit) => Some((&[S::Draft, S::Returned], S::Submitted)),
        (RecordKind::Visit, E::Return) => Some((&[S::Submitted], S::Returned)),
        (RecordKind::Visit, E::Approve) => Some((&[S::Submitted], S::Approved)),
        (RecordKind::Opinion, E::Submit) => Some((&[S::Recorded, S::Returned], S::Submitted)),
        (RecordKind::Opinion, E::Return) => Some((&[S::Submitted], S::Returned)),
        (RecordKind::Opinion, E::Accept) => Some((&[S::Submitted], S::Accepted)),
        (RecordKind::Opinion, E::Forward) => Some((&[S::Accepted], S::Forwarded)),
        (RecordKind::Opinion, E::Handle) => Some((&[S::Accepted, S::Forwarded], S::Handled)),
        (RecordKind::Opinion, E::Feedback) => Some((&[S::Forwarded, S::Handled], S::FeedbackGiven)),
        _ => None,
    }
}

/// What a step carries beyond its type (issue 13): a note (a return's reason, the handling, the
/// feedback), and for a forward the unit and the day it is to answer by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepDetails<'a> {
    pub note: Option<&'a str>,
    pub unit: Option<&'a str>,
    pub due: Option<chrono::NaiveDate>,
}

/// One event as read back from a document.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Event {
    /// The event's object id inside the document (stable across replicas).
    pub id: String,
    pub event: EventType,
    pub member: String,
    pub device: String,
    pub at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// For `resolve`: the state chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<State>,
    /// For `forward` (issue 13): the unit (a directory id) the opinion goes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// For `forward` (issue 13): the day the unit is to answer by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<chrono::NaiveDate>,
    /// For `undo` (issue 13): the id of the event taken back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undoes: Option<String>,
    /// Whether the event changed the state when the list was folded in document order.
    pub applied: bool,
}

/// The result of folding an event list.
#[derive(Debug, Clone, PartialEq)]
pub struct Folded {
    pub state: State,
    pub deleted: bool,
    /// The step an `undo` would take back now: the latest applied step not undone yet.
    pub last_step: Option<String>,
}

/// Folds events in list order (the same order on every replica) into the current state. An
/// event that is not valid from the state reached so far is kept but marked not applied.
pub fn fold(kind: RecordKind, events: &mut [Event]) -> Folded {
    let mut state = initial(kind);
    let mut deleted = false;
    // Applied steps not undone: (event id, the state before it).
    let mut steps: Vec<(String, State)> = Vec::new();
    for e in events.iter_mut() {
        let before = state;
        e.applied = match e.event {
            EventType::Delete => {
                let changed = !deleted;
                deleted = true;
                changed
            }
            EventType::Restore => {
                let changed = deleted;
                deleted = false;
                changed
            }
            EventType::Undo => match (steps.last(), e.undoes.as_deref()) {
                (Some((id, prior)), Some(target)) if id == target => {
                    state = *prior;
                    steps.pop();
                    true
                }
                _ => false,
            },
            EventType::Resolve => match e.to {
                Some(to) if states(kind).contains(&to) => {
                    state = to;
                    true
                }
                _ => false,
            },
            other => match transition(kind, other) {
                Some((from, to)) if from.contains(&state) => {
                    state = to;
                    true
                }
                _ => false,
            },
        };
        if e.applied
            && !matches!(
                e.event,
                EventType::Delete | EventType::Restore | EventType::Undo
            )
        {
            steps.push((e.id.clone(), before));
        }
    }
    Folded {
        state,
        deleted,
        last_step: steps.pop().map(|(id, _)| id),
    }
}

/// Where an opinion was forwarded and by when it is to be answered (issue 13).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Assignment {
    pub unit: String,
    pub due: Option<chrono::NaiveDate>,
    /// The `forward` event's id.
    pub event: String,
}

/// The forwarding in force after [`fold`]: the latest applied `forward` not taken back by an
/// applied `undo`.
pub fn assignment(events: &[Event]) -> Option<Assignment> {
    let undone: std::collections::HashSet<&str> = events
        .iter()
        .filter(|e| e.applied && e.event == EventType::Undo)
        .filter_map(|e| e.undoes.as_deref())
        .collect();
    events
        .iter()
        .rev()
        .find(|e| e.applied && e.event == EventType::Forward && !undone.contains(e.id.as_str()))
        .and_then(|e| {
            Some(Assignment {
                unit: e.unit.clone()?,
                due: e.due,
                event: e.id.clone(),
            })
        })
}

/// One step of an opinion's handling as the member reads it: what was written, by whom, when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StepNote {
    pub note: Option<String>,
    pub by: String,
    pub at_ms: i64,
}

/// Where an opinion stands (issue 13), from its folded events: the forwarding in force, and the
/// latest handling, feedback and return that are applied and not undone. What the member's
/// phone, the CLI's `device show` and the console show.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    pub assignment: Option<Assignment>,
    pub handling: Option<StepNote>,
    pub feedback: Option<StepNote>,
    pub returned: Option<StepNote>,
}

impl Outcome {
    /// Whether there is anything to show.
    pub fn is_empty(&self) -> bool {
        self.assignment.is_none()
            && self.handling.is_none()
            && self.feedback.is_none()
            && self.returned.is_none()
    }
}

/// The [`Outcome`] of events already folded by [`fold`].
pub fn outcome(events: &[Event]) -> Outcome {
    let undone: std::collections::HashSet<&str> = events
        .iter()
        .filter(|e| e.applied && e.event == EventType::Undo)
        .filter_map(|e| e.undoes.as_deref())
        .collect();
    let latest = |t: EventType| {
        events
            .iter()
            .rev()
            .find(|e| e.applied && e.event == t && !undone.contains(e.id.as_str()))
            .map(|e| StepNote {
                note: e.note.clone(),
                by: e.member.clone(),
                at_ms: e.at_ms,
            })
    };
    Outcome {
        assignment: assignment(events),
        handling: latest(EventType::Handle),
        feedback: latest(EventType::Feedback),
        returned: latest(EventType::Return),
    }
}

/// Whether an opinion in `state` forwarded with `assignment` is overdue on `today` (Beijing):
/// forwarded, not yet handled, its due day past.
pub fn overdue(state: State, assignment: Option<&Assignment>, today: chrono::NaiveDate) -> bool {
    state == State::Forwarded && assignment.and_then(|a| a.due).is_some_and(|d| d < today)
}

/// Where an event leads regardless of the state it came from (for showing contested states).
pub fn target(kind: RecordKind, event: &Event) -> Option<State> {
    match event.event {
        EventType::Resolve => event.to,
        other => transition(kind, other).map(|(_, to)| to),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: EventType, to: Option<State>) -> Event {
        Event {
            id: String::new(),
            event,
            member: "m".into(),
            device: "d".into(),
            at_ms: 0,
            note: None,
            to,
            unit: None,
            due: None,
            undoes: None,
            applied: false,
        }
    }

    /// (kind, events, expected state, expected deleted, which events applied)
    fn check(
        kind: RecordKind,
        events: &[(EventType, Option<State>)],
        state: State,
        deleted: bool,
        applied: &[bool],
    ) {
        let mut list: Vec<Event> = events.iter().map(|(e, to)| ev(*e, *to)).collect();
        let folded = fold(kind, &mut list);
        assert_eq!(
            (folded.state, folded.deleted),
            (state, deleted),
            "{events:?}"
        );
        assert_eq!(
            list.iter().map(|e| e.applied).collect::<Vec<_>>(),
            applied,
            "{events:?}"
        );
    }

    #[test]
    fn issue13_undo_takes_back_the_latest_step_only() {
        use EventType as E;
        let mk = |id: &str, event: E, undoes: Option<&str>| Event {
            id: id.into(),
            undoes: undoes.map(str::to_string),
            ..ev(event, None)
        };
        // submit, accept, forward, undo(forward): back to accepted; the forward is not in force.
        let mut list = vec![
            mk("1", E::Submit, None),
            mk("2", E::Accept, None),
            Event {
                unit: Some("unit-001".into()),
                due: chrono::NaiveDate::from_ymd_opt(2025, 6, 30),
                ..mk("3", E::Forward, None)
            },
            mk("4", E::Undo, Some("3")),
        ];
        let f = fold(RecordKind::Opinion, &mut list);
        assert_eq!(f.state, State::Accepted);
        assert_eq!(f.last_step.as_deref(), Some("2"));
        assert!(list.iter().all(|e| e.applied));
        assert_eq!(assignment(&list), None);
        // Undo again takes back the accept; an undo naming an older step applies nothing.
        list.push(mk("5", E::Undo, Some("2")));
        list.push(mk("6", E::Undo, Some("2")));
        let f = fold(RecordKind::Opinion, &mut list);
        assert_eq!(f.state, State::Submitted);
        assert_eq!(
            list.iter().map(|e| e.applied).collect::<Vec<_>>(),
            [true, true, true, true, true, false]
        );
        // Forward again: in force, and overdue once its day has passed.
        list.push(mk("7", E::Accept, None));
        list.push(Event {
            unit: Some("unit-002".into()),
            due: chrono::NaiveDate::from_ymd_opt(2025, 6, 30),
            ..mk("8", E::Forward, None)
        });
        let f = fold(RecordKind::Opinion, &mut list);
        assert_eq!(f.state, State::Forwarded);
        let a = assignment(&list).unwrap();
        assert_eq!(a.unit, "unit-002");
        let day = |d| chrono::NaiveDate::from_ymd_opt(2025, 7, d).unwrap();
        assert!(overdue(f.state, Some(&a), day(1)));
        assert!(!overdue(State::Handled, Some(&a), day(1)));
        assert!(!overdue(
            f.state,
            Some(&a),
            chrono::NaiveDate::from_ymd_opt(2025, 6, 30).unwrap()
        ));
    }

    #[test]
    fn folds() {
        use EventType as E;
        use RecordKind as K;
        use State as S;
        check(K::Visit, &[], S::Draft, false, &[]);
        check(
            K::Visit,
            &[(E::Submit, None), (E::Approve, None)],
            S::Approved,
            false,
            &[true, true],
        );
        check(
            K::Visit,
            &[(E::Submit, None), (E::Return, None), (E::Submit, None)],
            S::Submitted,
            false,
            &[true; 3],
        );
        // Concurrent approve and return merged in this order: the second is kept but not applied.
        check(
            K::Visit,
            &[(E::Submit, None), (E::Approve, None), (E::Return, None)],
            S::Approved,
            false,
            &[true, true, false],
        );
        check(
            K::Visit,
            &[(E::Submit, None), (E::Resolve, Some(S::Returned))],
            S::Returned,
            false,
            &[true, true],
        );
        check(
            K::Visit,
            &[(E::Resolve, Some(S::Handled))],
            S::Draft,
            false,
            &[false],
        );
        check(
            K::Visit,
            &[(E::Delete, None), (E::Delete, None), (E::Restore, None)],
            S::Draft,
            false,
            &[true, false, true],
        );
        check(
            K::Opinion,
            &[
                (E::Submit, None),
                (E::Accept, None),
                (E::Forward, None),
                (E::Handle, None),
                (E::Feedback, None),
            ],
            S::FeedbackGiven,
            false,
            &[true; 5],
        );
        check(
            K::Opinion,
            &[(E::Accept, None)],
            S::Recorded,
            false,
            &[false],
        );
        check(
            K::Household,
            &[(E::Submit, None), (E::Delete, None)],
            S::Active,
            true,
            &[false, true],
        );
    }
}
