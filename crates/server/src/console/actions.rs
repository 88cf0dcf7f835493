//! The console acts (issue 13): the workflow steps staff and leaders take on a record —
//! opinions accepted, returned with a reason, forwarded to a unit with a due day, their handling
//! recorded, feedback given to the member; visits approved or returned with a note, a group's
//! submitted visits approved together after a confirmation page; and a mistaken step undone.
//!
//! Each step is a workflow event made by the server under its own actor id, naming the staff
//! member or leader who took it (as a leader's conflict resolution), landed with `land_local`
//! (the store and the change log in one transaction), so the member's phone receives it at its
//! next sync. Nothing is ever deleted: an undo is a new event naming the step it takes back.
//!
//! Who may take a step is the rule phones follow (`sanjin_core::rules::is_review_step`): the
//! group's leader for the group's records, or office staff; admins manage accounts and do not
//! review. Every refusal is a Chinese page naming the record and the reason.

use std::collections::HashMap;

use chrono::NaiveDate;
use maud::{Markup, html};
use sanjin_core::Author;
use sanjin_core::domain::RecordKind;
use sanjin_core::workflow::{self, EventType, State, StepDetails};
use sanjin_store::now_ms;
use sanjin_store::server::ServerStorage;
use serde::Deserialize;

use super::error::{ConsoleError, ErrorKind};
use super::extract::RecordQuery;
use super::html::url;
use super::pages::{self, RecordPage};
use super::{Session, viewer};
use crate::data::{SERVER_ID, ServerData};
use crate::model::Role;

/// The steps the console offers, in the order of the record page.
pub(super) const STEPS: &[EventType] = &[
    EventType::Approve,
    EventType::Accept,
    EventType::Return,
    EventType::Forward,
    EventType::Handle,
    EventType::Feedback,
];

/// `POST /console/records/{id}/step`: one workflow step.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct StepForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub step: String,
    pub note: Option<String>,
    pub unit: Option<String>,
    pub due: Option<String>,
}

/// `GET /console/review?group=…`: the confirmation page of a batch approval.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ReviewQuery {
    pub group: Option<String>,
    pub done: Option<String>,
    pub skipped: Option<String>,
}

/// `POST /console/review/approve`: the visits the confirmation page listed.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct BatchForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub group: String,
    /// The listed visits' ids, comma-separated.
    #[serde(default)]
    pub ids: String,
    pub note: Option<String>,
}

/// Today in Beijing.
pub(super) fn today() -> NaiveDate {
    sanjin_core::time::beijing_date(now_ms())
}

/// Why the signed-in account may not take review steps on a record of `group` that `also`
/// reads too (the legal advisory group, for a legal appeal: its leader handles it, issue 13),
/// if it may not.
pub(super) fn refusal(
    s: &Session,
    kind: RecordKind,
    group: Option<&str>,
    also: Option<&str>,
) -> Option<String> {
    let what = if kind == RecordKind::Opinion {
        "办理这条社情民意"
    } else {
        "审核这条记录"
    };
    match s.account.role {
        Role::Staff if !s.account.may_write(kind, group) => Some(format!(
            "这条记录属于其他政协组织（活动组 {}），本政协组织（{}）的工作人员不能{what}",
            group.unwrap_or("—"),
            s.account.chapter.as_deref().unwrap_or("—")
        )),
        Role::Staff => None,
        Role::Admin => Some(format!(
            "管理员账户不能{what}：审核和办理由机关工作人员或本组组长进行"
        )),
        Role::Leader => {
            let own = s.account.group.as_deref();
            if own.is_some() && (own == group || own == also) {
                None
            } else {
                Some(format!(
                    "组长只能审核和办理本组（{}）的记录，不能{what}（属于 {}）",
                    own.unwrap_or("—"),
                    group.unwrap_or("—")
                ))
            }
        }
        Role::Member => Some("委员账户不能使用工作台".into()),
    }
}

/// A note as typed in a text box: line ends made `\n`, trimmed, checked like every note a
/// device writes (length, control characters). `required`: what to ask for when it is empty.
fn note_of(raw: Option<&str>, required: Option<&str>) -> Result<Option<String>, ConsoleError> {
    let note = raw.unwrap_or("").replace("\r\n", "\n").trim().to_string();
    if note.is_empty() {
        return match required {
            Some(what) => Err(ConsoleError::bad(format!("请填写{what}后再提交"))),
            None => Ok(None),
        };
    }
    if note.chars().count() > sanjin_core::validate::MAX_TEXT {
        return Err(ConsoleError::bad(format!(
            "内容超过 {} 个字，请精简后再提交",
            sanjin_core::validate::MAX_TEXT
        )));
    }
    if note
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ConsoleError::bad("内容含有控制字符，请删除后再提交"));
    }
    Ok(Some(note))
}

/// What the record page's step form asks for, by step.
pub(super) fn note_required(step: EventType) -> Option<&'static str> {
    match step {
        EventType::Return => Some("退回理由"),
        EventType::Handle => Some("办理情况"),
        EventType::Feedback => Some("反馈内容"),
        _ => None,
    }
}

/// The author of a change the server makes for `s`: its own actor, the member named.
fn author(data: &ServerData, s: &Session) -> Result<Author, ConsoleError> {
    let actor = data.store().identity().actor.clone();
    Author::new(&s.account.member, SERVER_ID, &actor).map_err(ConsoleError::internal)
}

/// The units of the directory, by id, with their names.
pub(super) fn units(store: &dyn ServerStorage) -> Result<Vec<(String, String)>, ConsoleError> {
    let f = sanjin_store::Filter {
        kind: Some(RecordKind::Unit),
        ..sanjin_store::Filter::default()
    };
    let mut out: Vec<(String, String)> = store
        .list(&f)
        .map_err(ConsoleError::internal)?
        .into_iter()
        .map(|e| (e.id, e.title))
        .collect();
    out.sort();
    Ok(out)
}

/// Takes one step on record `id` for the signed-in account. Returns the step taken. A refusal
/// names the record.
pub(super) fn take_step(
    data: &mut ServerData,
    s: &Session,
    id: &str,
    form: &StepForm,
) -> Result<EventType, ConsoleError> {
    step_on(data, s, id, form).map_err(|mut e| {
        if let ErrorKind::Bad(m) = &mut e.kind
            && !m.contains(id)
        {
            *m = format!("记录 {id}：{m}");
        }
        e
    })
}

fn step_on(
    data: &mut ServerData,
    s: &Session,
    id: &str,
    form: &StepForm,
) -> Result<EventType, ConsoleError> {
    let entry = data
        .store()
        .index_entry(id)
        .map_err(ConsoleError::internal)?
        .ok_or_else(|| ConsoleError::not_found(format!("没有编号为 {id} 的记录")))?;
    let kind = RecordKind::parse(&entry.kind).unwrap_or(RecordKind::Visit);
    let (may_read, _) = pages::access(s, &entry);
    if !may_read {
        return Err(ConsoleError::forbidden(super::read_refusal(
            data, s, &entry,
        )));
    }
    let step = EventType::parse(&form.step)
        .filter(|e| STEPS.contains(e) || *e == EventType::Undo)
        .ok_or_else(|| ConsoleError::bad("没有这个办理步骤，请从记录页面重新操作"))?;
    if let Some(why) = refusal(s, kind, entry.group.as_deref(), s.account.also_of(&entry)) {
        return Err(ConsoleError::forbidden(format!("记录 {id}：{why}")));
    }
    if step != EventType::Undo && workflow::transition(kind, step).is_none() {
        return Err(ConsoleError::bad(format!(
            "{}没有“{}”这一步",
            kind.zh(),
            step.zh()
        )));
    }
    let note = note_of(form.note.as_deref(), note_required(step))?;
    let mut details = StepDetails {
        note: note.as_deref(),
        ..StepDetails::default()
    };
    let unit;
    if step == EventType::Forward {
        unit = form
            .unit
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| ConsoleError::bad("请选择承办单位后再转办"))?
            .to_string();
        match data
            .store()
            .index_entry(&unit)
            .map_err(ConsoleError::internal)?
        {
            Some(e) if e.kind == RecordKind::Unit.code() && !e.deleted => {}
            _ => {
                return Err(ConsoleError::bad(format!(
                    "承办单位 {unit} 不在单位名录中，请从列表中选择"
                )));
            }
        }
        let due = form
            .due
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .ok_or_else(|| ConsoleError::bad("请填写答复期限后再转办"))?;
        let due = NaiveDate::parse_from_str(due, "%Y-%m-%d").map_err(|_| {
            ConsoleError::bad(format!(
                "答复期限“{due}”格式不对，应为 年-月-日，如 2025-06-30"
            ))
        })?;
        if due < today() {
            return Err(ConsoleError::bad(format!(
                "答复期限 {due} 早于今天，请重新选择"
            )));
        }
        details.unit = Some(unit.as_str());
        details.due = Some(due);
    }
    let author = author(data, s)?;
    let mut doc = data.store().load(id).map_err(ConsoleError::internal)?;
    if step == EventType::Undo {
        // The console takes back review steps only: a member's own submission is returned,
        // not undone.
        let view = doc.view().map_err(ConsoleError::internal)?;
        let mut events = view.events;
        let last = workflow::fold(kind, &mut events)
            .last_step
            .and_then(|l| events.iter().find(|e| e.id == l).map(|e| e.event));
        match last {
            Some(e) if sanjin_core::rules::is_review_step(e) => {}
            Some(e) => {
                return Err(ConsoleError::bad(format!(
                    "上一步“{}”是委员本人的操作，工作台不能撤销；如需修改请用“退回”",
                    e.zh()
                )));
            }
            None => {
                return Err(ConsoleError::bad(format!(
                    "当前状态为“{}”，没有可以撤销的步骤",
                    view.status.zh()
                )));
            }
        }
    }
    let done = match step {
        EventType::Undo => doc.undo(&author, now_ms(), details.note),
        _ => doc.transition_with(&author, now_ms(), step, &details),
    };
    match done {
        Ok(_) => {}
        Err(sanjin_core::Error::Invalid(v)) => {
            return Err(ConsoleError::bad(format!(
                "记录 {id} 无法{}：{}",
                step.zh(),
                v.zh(kind)
            )));
        }
        Err(e) => return Err(ConsoleError::internal(e)),
    }
    data.land_local(&mut doc).map_err(ConsoleError::internal)?;
    tracing::info!(member = %s.account.member, doc = %id, step = %step, "workflow step taken in the console");
    Ok(step)
}

/// What the record page says after a step.
pub(super) fn done_message(msg: &str) -> Option<String> {
    let step = EventType::parse(msg.strip_prefix("step-")?)?;
    Some(format!(
        "已{}。这一步作为一次修改记入留痕，委员的手机下次同步时收到。",
        step.zh()
    ))
}

// ------------------------------------------------------------------ the record page's part

/// What the record page shows of a record's handling and the steps the account may take.
pub struct Actions {
    pub state: State,
    pub deleted: bool,
    /// The steps valid from the current state.
    pub steps: Vec<EventType>,
    /// The step an undo would take back, and what it was.
    pub undo: Option<EventType>,
    /// Why the account may not act, if it may not.
    pub refused: Option<String>,
    pub outcome: workflow::Outcome,
    pub overdue: bool,
    pub units: Vec<(String, String)>,
    pub today: NaiveDate,
}

pub(super) fn load_actions(
    data: &ServerData,
    s: &Session,
    r: &RecordPage,
    group: Option<&str>,
) -> Result<Option<Actions>, ConsoleError> {
    if !matches!(r.kind, RecordKind::Visit | RecordKind::Opinion) {
        return Ok(None);
    }
    // A legal appeal is handled by the legal advisory group's leader too (issue 13).
    let also = match &r.view.data {
        sanjin_core::domain::RecordData::Opinion(o) => sanjin_core::rules::also_read_by(
            r.kind,
            group,
            Some(o.opinion_kind.code()),
            s.account.scope.legal_group.as_deref(),
        )
        .map(str::to_string),
        _ => None,
    };
    let mut events = r.view.events.clone();
    let folded = workflow::fold(r.kind, &mut events);
    let steps = STEPS
        .iter()
        .copied()
        .filter(|e| {
            workflow::transition(r.kind, *e).is_some_and(|(from, _)| from.contains(&folded.state))
        })
        .collect();
    // Only review steps are undone in the console (a member's submission is returned).
    let undo = folded
        .last_step
        .as_deref()
        .and_then(|id| events.iter().find(|e| e.id == id))
        .map(|e| e.event)
        .filter(|e| sanjin_core::rules::is_review_step(*e));
    let outcome = workflow::outcome(&events);
    let today = today();
    let overdue = workflow::overdue(folded.state, outcome.assignment.as_ref(), today);
    let units = if r.kind == RecordKind::Opinion {
        units(data.store())?
    } else {
        vec![]
    };
    Ok(Some(Actions {
        state: folded.state,
        deleted: folded.deleted,
        steps,
        undo,
        refused: refusal(s, r.kind, group, also.as_deref()),
        outcome,
        overdue,
        units,
        today,
    }))
}

fn step_label(kind: RecordKind, step: EventType) -> &'static str {
    match (kind, step) {
        (_, EventType::Approve) => "审核通过",
        (RecordKind::Visit, EventType::Return) => "退回修改",
        (_, EventType::Return) => "退回",
        (_, EventType::Accept) => "采纳",
        (_, EventType::Forward) => "转办",
        (_, EventType::Handle) => "记录办理情况",
        (_, EventType::Feedback) => "反馈委员",
        (_, other) => other.zh(),
    }
}

fn note_label(step: EventType) -> &'static str {
    match step {
        EventType::Approve => "审核意见（可不填）",
        EventType::Return => "退回理由（必填）",
        EventType::Accept => "采纳意见（可不填）",
        EventType::Forward => "转办说明（可不填）",
        EventType::Handle => "办理情况（必填）",
        EventType::Feedback => "反馈内容（必填，委员在手机上看到）",
        _ => "撤销原因（可不填）",
    }
}

/// The handling of an opinion (unit, due day, overdue, handling, feedback) and the step forms.
pub(super) fn render_actions(
    s: &Session,
    r: &RecordPage,
    a: &Actions,
    names: &HashMap<String, String>,
) -> Markup {
    let id = &r.id;
    let action = format!("/console/records/{}/step", url(id));
    let o = &a.outcome;
    let unit_name = |u: &str| names.get(u).cloned().unwrap_or_else(|| u.to_string());
    html! {
        @if r.kind == RecordKind::Opinion {
            div class="card" id="outcome" {
                h2 { "办理情况" }
                dl {
                    dt { "状态" } dd id="outcome-state" { (a.state.zh()) }
                    @if let Some(x) = &o.assignment {
                        dt { "承办单位" } dd id="outcome-unit" { (unit_name(&x.unit)) }
                        @if let Some(d) = x.due {
                            dt { "答复期限" }
                            dd id="outcome-due" {
                                (d.to_string())
                                @if a.overdue { " " span class="warn" id="overdue" { "已逾期" } }
                            }
                        }
                    }
                    @if let Some(h) = o.returned.as_ref().filter(|_| a.state == State::Returned) {
                        dt { "退回理由" } dd id="outcome-returned" { (h.note.as_deref().unwrap_or("—")) }
                    }
                    @if let Some(h) = &o.handling {
                        dt { "办理结果" } dd id="outcome-handling" { (h.note.as_deref().unwrap_or("—")) }
                    }
                    @if let Some(h) = &o.feedback {
                        dt { "反馈" } dd id="outcome-feedback" { (h.note.as_deref().unwrap_or("—")) }
                    }
                }
            }
        }
        (render_flow(r, names))
        div class="card" id="actions" {
            h2 { (if r.kind == RecordKind::Opinion { "办理" } else { "审核" }) }
            @if a.deleted {
                p { "记录已删除，不能审核或办理。" }
            } @else if let Some(why) = &a.refused {
                p id="not-allowed" { (why) }
            } @else {
                @if a.steps.is_empty() && a.undo.is_none() {
                    p id="no-steps" { "当前状态（" (a.state.zh()) "）没有可以进行的步骤。" }
                }
                @for step in &a.steps {
                    form class="filters step" method="post" action=(action) id={ "form-" (step.code()) } {
                        input type="hidden" name="csrf" value=(s.csrf);
                        input type="hidden" name="step" value=(step.code());
                        @if *step == EventType::Forward {
                            label {
                                "承办单位"
                                select name="unit" id="unit-forward" required {
                                    option value="" { "请选择" }
                                    @for (uid, n) in &a.units {
                                        option value=(uid) { (n) }
                                    }
                                }
                            }
                            label {
                                "答复期限"
                                input type="date" name="due" id="due-forward" min=(a.today.to_string()) required;
                            }
                        }
                        label class="grow" {
                            (note_label(*step))
                            textarea name="note" id={ "note-" (step.code()) } rows="2" required[note_required(*step).is_some()] {}
                        }
                        button class="primary" type="submit" id={ "do-" (step.code()) } { (step_label(r.kind, *step)) }
                    }
                }
                @if let Some(last) = a.undo {
                    form class="filters step" method="post" action=(action) id="form-undo" {
                        input type="hidden" name="csrf" value=(s.csrf);
                        input type="hidden" name="step" value="undo";
                        label class="grow" {
                            (note_label(EventType::Undo))
                            textarea name="note" id="note-undo" rows="1" {}
                        }
                        button type="submit" id="do-undo" { "撤销上一步（" (last.zh()) "）" }
                    }
                    p class="note" { "撤销不会删除任何记录：它作为新的一步记入流转和留痕。" }
                }
            }
        }
    }
}

/// The workflow events in order, with their notes (reasons, handling, feedback), units and due
/// days; a step taken back by an undo is marked, nothing is left out.
fn render_flow(r: &RecordPage, names: &HashMap<String, String>) -> Markup {
    let name = |id: &str| names.get(id).cloned().unwrap_or_else(|| id.to_string());
    let events = &r.view.events;
    let undone: Vec<&str> = events
        .iter()
        .filter(|e| e.applied && e.event == EventType::Undo)
        .filter_map(|e| e.undoes.as_deref())
        .collect();
    html! {
        div class="card" {
            h2 { "流转记录" }
            @if events.is_empty() { p { "尚无流转记录" } }
            @else {
                div class="scroll" {
                    table id="flow" {
                        tr { th { "时间" } th { "人员" } th { "步骤" } th { "说明" } }
                        @for e in events {
                            tr {
                                td { (sanjin_core::time::beijing_minutes(e.at_ms).unwrap_or_default()) }
                                td { (name(&e.member)) }
                                td {
                                    (e.event.zh())
                                    @if undone.contains(&e.id.as_str()) { span class="warn" { "（已撤销）" } }
                                    @if !e.applied { span class="note" { "（未生效）" } }
                                }
                                td class="wrap" {
                                    @if let Some(u) = &e.unit { "承办单位：" (name(u)) " " }
                                    @if let Some(d) = e.due { "答复期限：" (d.to_string()) " " }
                                    @if let Some(n) = &e.note { (n) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------------ batch approval

/// The submitted visits of a group, for the confirmation page and the approval.
pub struct Batch {
    pub group: String,
    pub group_name: String,
    pub rows: Vec<sanjin_core::IndexEntry>,
}

/// The group a batch is about: a leader's own (another is refused), staff's choice.
fn batch_group(s: &Session, asked: Option<&str>) -> Result<Option<String>, ConsoleError> {
    let asked = asked.map(str::trim).filter(|g| !g.is_empty());
    match s.account.role {
        Role::Staff => match asked.and_then(|g| super::group_refusal(s, g)) {
            Some(why) => Err(ConsoleError::forbidden(why)),
            None => Ok(asked.map(str::to_string)),
        },
        Role::Leader => {
            let own = s.account.group.clone().unwrap_or_default();
            match asked {
                Some(g) if g != own => Err(ConsoleError::forbidden(format!(
                    "组长只能审核本组（{own}）的活动记录，不能审核 {g} 的"
                ))),
                _ => Ok(Some(own)),
            }
        }
        Role::Admin => Err(ConsoleError::forbidden(
            "管理员账户不能审核活动记录：审核由机关工作人员或本组组长进行",
        )),
        Role::Member => Err(ConsoleError::forbidden("委员账户不能使用工作台")),
    }
}

fn submitted_visits(
    store: &dyn ServerStorage,
    group: &str,
) -> Result<Vec<sanjin_core::IndexEntry>, ConsoleError> {
    let f = sanjin_store::Filter {
        kind: Some(RecordKind::Visit),
        group: Some(group.to_string()),
        status: Some(State::Submitted.code().into()),
        ..sanjin_store::Filter::default()
    };
    let mut rows = store.list(&f).map_err(ConsoleError::internal)?;
    rows.sort_by(|a, b| a.start.cmp(&b.start).then(a.id.cmp(&b.id)));
    Ok(rows)
}

pub(super) fn review_page(
    data: &mut ServerData,
    s: &Session,
    q: &ReviewQuery,
) -> Result<Markup, ConsoleError> {
    let group = batch_group(s, q.group.as_deref())?;
    let names: HashMap<String, String> = data
        .store()
        .names()
        .map_err(ConsoleError::internal)?
        .into_iter()
        .collect();
    let mut groups: Vec<(String, String)> = names
        .iter()
        .filter(|(k, _)| k.starts_with("group-"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    groups.sort();
    super::visible_groups(s, &mut groups);
    let batch = match &group {
        Some(g) => Some(Batch {
            group: g.clone(),
            group_name: names.get(g).cloned().unwrap_or_else(|| g.clone()),
            rows: submitted_visits(data.store(), g)?,
        }),
        None => None,
    };
    let body = render_review(s, q, batch.as_ref(), &names, &groups);
    Ok(pages::signed_page("批量审核", s, body))
}

fn render_review(
    s: &Session,
    q: &ReviewQuery,
    batch: Option<&Batch>,
    names: &HashMap<String, String>,
    groups: &[(String, String)],
) -> Markup {
    let name = |id: &str| names.get(id).cloned().unwrap_or_else(|| id.to_string());
    html! {
        h1 { "批量审核活动记录" }
        @if let Some(n) = q.done.as_deref() {
            div class="msg" id="batch-done" {
                "已审核通过 " (n) " 条活动记录，委员的手机下次同步时收到。"
                @if let Some(k) = q.skipped.as_deref().filter(|k| *k != "0") {
                    " 另有 " (k) " 条在确认期间已被他人审核、退回或修改，未处理。"
                }
            }
        }
        @if matches!(viewer(s), sanjin_ledger::Viewer::Office) {
            form class="filters card" method="get" action="/console/review" id="review-group" {
                label {
                    "活动组"
                    select name="group" id="r-group" {
                        option value="" { "请选择" }
                        @for (id, n) in groups {
                            option value=(id) selected[batch.is_some_and(|b| &b.group == id)] { (n) }
                        }
                    }
                }
                button class="primary" type="submit" id="r-submit" { "查看待审核记录" }
            }
        }
        @if let Some(b) = batch {
            div class="card" id="confirm" {
                h2 { (b.group_name) "：待审核（已提交）的活动记录" }
                @if b.rows.is_empty() {
                    p id="batch-empty" { "没有待审核的活动记录。" }
                } @else {
                    p id="batch-count" { "共 " b { (b.rows.len()) } " 条。请核对下列记录，确认后全部审核通过：" }
                    div class="scroll" {
                        table id="batch-list" {
                            tr { th { "日期" } th { "标题" } th { "联系点" } th { "记录人" } }
                            @for r in &b.rows {
                                @let when = r.start.as_deref().map(|s| s.replace('T', " ")).or(r.date.clone()).unwrap_or_default();
                                tr {
                                    td { (when.get(..16).unwrap_or(&when)) }
                                    td { a href=(format!("/console/records/{}", url(&r.id))) { (if r.title.is_empty() { &r.id } else { &r.title }) } }
                                    td { (r.contact_point.as_deref().map(&name).unwrap_or_default()) }
                                    td { (name(&r.created_by)) }
                                }
                            }
                        }
                    }
                    form class="filters" method="post" action="/console/review/approve" id="batch-form" {
                        input type="hidden" name="csrf" value=(s.csrf);
                        input type="hidden" name="group" value=(b.group);
                        input type="hidden" name="ids" value=(b.rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>().join(","));
                        label class="grow" {
                            "审核意见（可不填，记入每条记录）"
                            textarea name="note" id="batch-note" rows="1" {}
                        }
                        button class="primary" type="submit" id="batch-approve" { "确认全部审核通过（" (b.rows.len()) " 条）" }
                    }
                }
            }
        }
    }
}

/// Approves the listed visits of the group that are still submitted, in one transaction.
/// Returns how many were approved and how many were skipped (no longer submitted, or not of
/// the group).
pub(super) fn approve_batch(
    data: &mut ServerData,
    s: &Session,
    form: &BatchForm,
) -> Result<(String, usize, usize), ConsoleError> {
    let group =
        batch_group(s, Some(&form.group))?.ok_or_else(|| ConsoleError::bad("请先选择活动组"))?;
    let note = note_of(form.note.as_deref(), None)?;
    let ids: Vec<&str> = form
        .ids
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .collect();
    if ids.is_empty() {
        return Err(ConsoleError::bad(
            "没有要审核的记录，请从批量审核页面重新进入",
        ));
    }
    let author = author(data, s)?;
    let now = now_ms();
    let mut docs = Vec::new();
    let mut skipped = 0;
    for id in ids {
        let entry = data
            .store()
            .index_entry(id)
            .map_err(ConsoleError::internal)?;
        let ok = entry.as_ref().is_some_and(|e| {
            e.kind == RecordKind::Visit.code()
                && e.group.as_deref() == Some(group.as_str())
                && e.status == State::Submitted.code()
                && !e.deleted
        });
        if !ok {
            skipped += 1;
            continue;
        }
        let mut doc = data.store().load(id).map_err(ConsoleError::internal)?;
        match doc.transition(&author, now, EventType::Approve, note.as_deref()) {
            Ok(_) => docs.push(doc),
            Err(sanjin_core::Error::Invalid(_)) => skipped += 1,
            Err(e) => return Err(ConsoleError::internal(e)),
        }
    }
    let approved = docs.len();
    data.atomically(|d| {
        for doc in &mut docs {
            d.land_local(doc)?;
        }
        Ok::<_, crate::error::Error>(())
    })
    .map_err(ConsoleError::internal)?;
    tracing::info!(member = %s.account.member, group = %group, approved, skipped, "batch approval in the console");
    Ok((group, approved, skipped))
}

/// The record page (issue 13): its parts from `pages` and the steps this account may take.
/// Here rather than in `pages`, so that `pages` does not import the actions that use it.
pub(super) fn record_page(
    data: &mut ServerData,
    blobs: &dyn crate::blobs::BlobStore,
    s: &Session,
    id: &str,
    q: &RecordQuery,
) -> Result<Markup, ConsoleError> {
    let r = pages::load_record(data, blobs, s, id)?;
    // Issue 13: the record's handling and the steps this account may take.
    let group = data
        .store()
        .index_entry(id)
        .map_err(ConsoleError::internal)?
        .and_then(|e| e.group);
    let actions = load_actions(data, s, &r, group.as_deref())?;
    let body = html! {
        @if q.msg.as_deref() == Some("resolved") {
            div class="msg" id="resolved" { "已裁定。裁定作为一次修改记入留痕，各设备下次同步时收到。" }
        }
        @if let Some(m) = q.msg.as_deref().and_then(done_message) {
            div class="msg" id="step-done" { (m) }
        }
        h1 { (r.kind.zh()) "：" (r.title) }
        (pages::record_fields(&r))
        @if let Some(a) = &actions {
            (render_actions(s, &r, a, &r.names))
        }
        @if let Some(photos) = &r.photos {
            (pages::record_photos(&r.id, photos))
        }
        (pages::record_conflicts(s, &r))
        (pages::record_history(&r))
    };
    Ok(pages::signed_page(r.kind.zh(), s, body))
}
