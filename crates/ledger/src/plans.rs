//! The year's plan against what was done (计划执行, issue 13): every plan item of a year with
//! the visit that carried it out, if one did, and the totals per activity group and per member
//! (planned, carried out, %). Read from the projection's rows alone — the plan items and the
//! visits of the year and the directory — so no document is opened per view.
//!
//! **The rule** ([`RULE_ZH`] says it to staff): a plan item is carried out (已落实) by a visit
//! that is not deleted (in any workflow state, as the ledgers count visits) of the same activity
//! group and activity type, started in the item's year and month, with the item's owner among
//! its participants and — when the item names a contact point — at that contact point. One visit
//! carries out at most one item of the same owner: within each (group, owner, month, type) the
//! items are matched to visits by a maximum matching (items naming a contact point first, then
//! by id; visits by start, then id), so two items of one owner in one month need two visits, and
//! a visit with several participants carries out one item of each.
//!
//! Access as everywhere: office staff see every group, a leader the group (asking for another
//! group, or another group's member, is refused), a member nothing.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};
use sanjin_core::domain::{ActivityType, RecordData};

use crate::directory::Directory;
use crate::project::{self, Projected};
use crate::{Error, Ledger, Result, Viewer};

/// The matching rule as the console shows it.
pub const RULE_ZH: &str = "计划项“已落实”的判定：同一活动组、同一活动类型、在计划的年份和月份内开展的活动记录（未删除，任何审核状态都计入，与台账一致），计划的责任委员是该活动的参加委员之一；计划指定了联系点的，活动须在该联系点开展。一次活动只能落实同一委员的一项计划（同一委员同月同类型有两项计划，需要两次活动）；一次活动有多位参加委员的，可分别落实每位委员各自的一项计划。";

/// What the plan page asks for: a year, and optionally a group and a member (the owner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanQuery {
    pub year: i32,
    pub group: Option<String>,
    pub member: Option<String>,
}

/// The visit that carried out a plan item.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VisitLine {
    pub id: String,
    pub date: NaiveDate,
    pub title: String,
}

/// One plan item and whether it was carried out.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PlanRow {
    pub id: String,
    pub year: i64,
    pub quarter: i64,
    pub month: i64,
    pub owner: String,
    pub owner_name: String,
    pub group: String,
    pub group_name: String,
    pub activity_type: ActivityType,
    pub title: String,
    pub contact_point: Option<String>,
    pub contact_point_name: Option<String>,
    /// The visit that carried it out, if one did.
    pub carried_out: Option<VisitLine>,
    /// The item has an unresolved conflict (the row shows one of the values).
    pub conflicted: bool,
}

/// Planned and carried out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub planned: usize,
    pub done: usize,
}

impl Tally {
    fn add(&mut self, done: bool) {
        self.planned += 1;
        self.done += usize::from(done);
    }

    /// Carried out ÷ planned in percent, one decimal; `None` when nothing was planned.
    pub fn percent(&self) -> Option<f64> {
        (self.planned > 0).then(|| (self.done as f64 * 1000.0 / self.planned as f64).round() / 10.0)
    }
}

/// One group's totals.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupTally {
    pub group: String,
    pub name: String,
    pub tally: Tally,
}

/// One member's totals (as the owner of plan items).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MemberTally {
    pub member: String,
    pub name: String,
    pub group: String,
    pub group_name: String,
    pub tally: Tally,
}

/// The year's plan against what was done, as the viewer may see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PlanBoard {
    pub year: i32,
    /// The group the board is narrowed to (a leader's own, always).
    pub group: Option<String>,
    pub member: Option<String>,
    /// By quarter, month, owner (id), then id.
    pub rows: Vec<PlanRow>,
    /// The groups in scope (with nothing planned too), by id.
    pub groups: Vec<GroupTally>,
    /// The owners of the rows, and with a group chosen every member of the group, by group then
    /// id.
    pub members: Vec<MemberTally>,
    pub total: Tally,
    /// The years that have plan items in scope, newest first.
    pub years: Vec<i32>,
}

impl Ledger {
    /// Refreshes the projection and compares the year's plan with the visits (see the module's
    /// rule), as `viewer` may see it.
    pub fn plans(&mut self, viewer: &Viewer, q: &PlanQuery) -> Result<PlanBoard> {
        let mut q = q.clone();
        match viewer {
            Viewer::Member => {
                return Err(Error::Forbidden(
                    "委员账户不能查看年度计划执行情况；由机关工作人员和活动组组长使用".into(),
                ));
            }
            Viewer::Leader { group } => {
                if let Some(g) = &q.group
                    && g != group
                {
                    return Err(Error::Forbidden(format!(
                        "组长只能查看本组（{group}）的年度计划，不能查看 {g} 的"
                    )));
                }
                q.group = Some(group.clone());
            }
            Viewer::Chapter { chapter, groups } => {
                if let Some(g) = &q.group
                    && !groups.contains(g)
                {
                    return Err(Error::Forbidden(format!(
                        "活动组 {g} 属于其他政协组织：本政协组织（{chapter}）的工作人员只能查看本政协组织各活动组的年度计划"
                    )));
                }
            }
            Viewer::Office => {}
        }
        // Staff of a county chapter: its groups only (issue 13).
        let allowed = match viewer {
            Viewer::Chapter { groups, .. } => Some(groups.clone()),
            _ => None,
        };
        let in_scope = |g: &String| allowed.as_ref().is_none_or(|a| a.contains(g));
        if !(2000..=2100).contains(&q.year) {
            return Err(Error::Invalid(format!(
                "年份 {} 不对，请输入 2000 到 2100 之间的年份，例如 2025",
                q.year
            )));
        }
        self.refresh()?;
        let dir = self.directory()?;
        if let (Viewer::Leader { group }, Some(m)) = (viewer, &q.member)
            && let Some(mm) = dir.members.get(m)
            && &mm.group != group
        {
            return Err(Error::Forbidden(format!(
                "组长只能查看本组（{}）委员的计划；{}（{m}）属于{}",
                dir.group_name(group),
                mm.name,
                dir.group_name(&mm.group)
            )));
        }
        let mut items = Vec::new();
        let mut years = BTreeSet::new();
        project::each(&self.conn, "plan", None, |p| {
            if let RecordData::Plan(item) = &p.data
                && q.group.as_ref().is_none_or(|g| g == &item.group)
                && in_scope(&item.group)
            {
                years.insert(item.year as i32);
                if item.year == i64::from(q.year) {
                    items.push(p);
                }
            }
            Ok(())
        })?;
        let from = format!("{:04}-01-01", q.year);
        let to = format!("{:04}-12-31", q.year);
        let mut visits = Vec::new();
        project::each(
            &self.conn,
            "visit",
            Some((from.as_str(), to.as_str())),
            |p| {
                if let RecordData::Visit(v) = &p.data
                    && q.group.as_ref().is_none_or(|g| g == &v.group)
                    && in_scope(&v.group)
                {
                    visits.push(p);
                }
                Ok(())
            },
        )?;
        let mut board = assemble(&q, &dir, &items, &visits);
        if let Some(a) = &allowed {
            board.groups.retain(|t| a.contains(&t.group));
            board.members.retain(|t| a.contains(&t.group));
        }
        board.years = years.into_iter().rev().collect();
        Ok(board)
    }
}

/// What the matching needs of a plan item.
struct Item<'a> {
    id: &'a str,
    group: &'a str,
    owner: &'a str,
    year: i32,
    month: u32,
    ty: ActivityType,
    contact_point: Option<&'a str>,
}

/// What the matching needs of a visit.
#[derive(Clone, Copy)]
struct Done<'a> {
    id: &'a str,
    group: &'a str,
    participants: &'a [String],
    year: i32,
    month: u32,
    ty: ActivityType,
    contact_point: &'a str,
    start: chrono::NaiveDateTime,
}

type Bucket<'a> = (&'a str, &'a str, i32, u32, ActivityType);

/// For each item, the index of the visit that carried it out (the module's rule).
fn carried_out(items: &[Item], visits: &[Done]) -> Vec<Option<usize>> {
    let mut buckets: BTreeMap<Bucket, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
    for (i, it) in items.iter().enumerate() {
        buckets
            .entry((it.group, it.owner, it.year, it.month, it.ty))
            .or_default()
            .0
            .push(i);
    }
    for (v, d) in visits.iter().enumerate() {
        for p in d.participants {
            if let Some(b) = buckets.get_mut(&(d.group, p.as_str(), d.year, d.month, d.ty)) {
                b.1.push(v);
            }
        }
    }
    let mut out = vec![None; items.len()];
    for (mut its, mut vs) in buckets.into_values() {
        if vs.is_empty() {
            continue;
        }
        its.sort_by(|a, b| {
            let (a, b) = (&items[*a], &items[*b]);
            (a.contact_point.is_none(), a.id).cmp(&(b.contact_point.is_none(), b.id))
        });
        vs.sort_by(|a, b| {
            (visits[*a].start, visits[*a].id).cmp(&(visits[*b].start, visits[*b].id))
        });
        vs.dedup();
        let fits = |i: usize, v: usize| {
            items[i]
                .contact_point
                .is_none_or(|cp| cp == visits[v].contact_point)
        };
        // Kuhn's augmenting paths: a maximum matching of the bucket's items to its visits.
        let mut owner_of: BTreeMap<usize, usize> = BTreeMap::new();
        fn augment(
            i: usize,
            vs: &[usize],
            fits: &dyn Fn(usize, usize) -> bool,
            seen: &mut BTreeSet<usize>,
            owner_of: &mut BTreeMap<usize, usize>,
        ) -> bool {
            for &v in vs {
                if !fits(i, v) || !seen.insert(v) {
                    continue;
                }
                let free = match owner_of.get(&v).copied() {
                    None => true,
                    Some(other) => augment(other, vs, fits, seen, owner_of),
                };
                if free {
                    owner_of.insert(v, i);
                    return true;
                }
            }
            false
        }
        for &i in &its {
            let mut seen = BTreeSet::new();
            augment(i, &vs, &fits, &mut seen, &mut owner_of);
        }
        for (v, i) in owner_of {
            out[i] = Some(v);
        }
    }
    out
}

/// Which visit carried out each plan item, by the module's rule — the one matching the plan
/// page, the member record and assessment ([`crate::member_record`]) and the quarterly report
/// ([`crate::report`]) all use, so their figures agree. `items` are plan rows and `visits`
/// visit rows of the projection; for each item, the index in `visits` of the visit that carried
/// it out. Deleted rows and rows of other kinds carry out nothing and are never carried out.
///
/// The matching is done within each (group, owner, year, month, type), so any caller gets the
/// same answer for an item as long as it passes the item together with every other item of the
/// same owner, group, month and type, and every visit of the item's group, month and type with
/// the owner among the participants (a superset does no harm): a whole year, a quarter, one
/// member's items and the visits they took part in, one group's.
pub(crate) fn match_rows(items: &[&Projected], visits: &[&Projected]) -> Vec<Option<usize>> {
    let mut item_at = Vec::with_capacity(items.len());
    let facts: Vec<Item> = items
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match &p.data {
            RecordData::Plan(it) if !p.deleted => {
                item_at.push(i);
                Some(Item {
                    id: &p.id,
                    group: &it.group,
                    owner: &it.owner,
                    year: it.year as i32,
                    month: it.month as u32,
                    ty: it.activity_type,
                    contact_point: it.contact_point.as_deref(),
                })
            }
            _ => None,
        })
        .collect();
    let mut visit_at = Vec::with_capacity(visits.len());
    let done: Vec<Done> = visits
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match &p.data {
            RecordData::Visit(v) if !p.deleted => {
                visit_at.push(i);
                Some(Done {
                    id: &p.id,
                    group: &v.group,
                    participants: &v.participants,
                    year: v.start.year(),
                    month: v.start.month(),
                    ty: v.activity_type,
                    contact_point: &v.contact_point,
                    start: v.start,
                })
            }
            _ => None,
        })
        .collect();
    let mut out = vec![None; items.len()];
    for (f, m) in carried_out(&facts, &done).into_iter().enumerate() {
        out[item_at[f]] = m.map(|v| visit_at[v]);
    }
    out
}

/// The board from the year's plan items and visits (already narrowed to the query's group).
fn assemble(
    q: &PlanQuery,
    dir: &Directory,
    items: &[Projected],
    visits: &[Projected],
) -> PlanBoard {
    let plan: Vec<(&Projected, &sanjin_core::domain::PlanItem)> = items
        .iter()
        .filter_map(|p| match &p.data {
            RecordData::Plan(it) => Some((p, it)),
            _ => None,
        })
        .filter(|(_, it)| q.member.as_ref().is_none_or(|m| m == &it.owner))
        .collect();
    let matched = match_rows(
        &plan.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        &visits.iter().collect::<Vec<_>>(),
    );

    let mut rows = Vec::with_capacity(plan.len());
    let mut total = Tally::default();
    let mut by_group: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_member: BTreeMap<String, (String, Tally)> = BTreeMap::new();
    for ((p, it), m) in plan.iter().zip(matched) {
        let visit = m.and_then(|v| match &visits[v].data {
            RecordData::Visit(x) => Some(VisitLine {
                id: visits[v].id.clone(),
                date: x.start.date(),
                title: x.title.clone(),
            }),
            _ => None,
        });
        let ok = visit.is_some();
        total.add(ok);
        by_group.entry(it.group.clone()).or_default().add(ok);
        by_member
            .entry(it.owner.clone())
            .or_insert_with(|| (it.group.clone(), Tally::default()))
            .1
            .add(ok);
        rows.push(PlanRow {
            id: p.id.clone(),
            year: it.year,
            quarter: it.quarter,
            month: it.month,
            owner: it.owner.clone(),
            owner_name: dir.member_name(&it.owner).to_string(),
            group: it.group.clone(),
            group_name: dir.group_name(&it.group).to_string(),
            activity_type: it.activity_type,
            title: it.title.clone(),
            contact_point: it.contact_point.clone(),
            contact_point_name: it
                .contact_point
                .as_deref()
                .map(|c| dir.contact_point_name(c).to_string()),
            carried_out: visit,
            conflicted: !p.conflicts.is_empty(),
        });
    }
    rows.sort_by(|a, b| {
        (a.quarter, a.month, &a.owner, &a.id).cmp(&(b.quarter, b.month, &b.owner, &b.id))
    });

    // Groups in scope, with nothing planned too: the chosen one, the member's, or all.
    let member_group = q
        .member
        .as_ref()
        .and_then(|m| dir.members.get(m))
        .map(|m| m.group.clone());
    for g in dir.groups.keys() {
        let in_scope = match (&q.group, &member_group, &q.member) {
            (Some(x), _, _) => x == g,
            (None, Some(x), _) => x == g,
            (None, None, Some(_)) => false,
            (None, None, None) => true,
        };
        if in_scope {
            by_group.entry(g.clone()).or_default();
        }
    }
    // With a group chosen, every member of it (those without a plan item show 0).
    if let Some(g) = &q.group {
        for (id, m) in &dir.members {
            if &m.group == g && q.member.as_ref().is_none_or(|x| x == id) {
                by_member
                    .entry(id.clone())
                    .or_insert_with(|| (g.clone(), Tally::default()));
            }
        }
    }
    let groups = by_group
        .into_iter()
        .map(|(g, tally)| GroupTally {
            name: dir.group_name(&g).to_string(),
            group: g,
            tally,
        })
        .collect();
    let mut members: Vec<MemberTally> = by_member
        .into_iter()
        .map(|(m, (g, tally))| MemberTally {
            name: dir.member_name(&m).to_string(),
            group_name: dir.group_name(&g).to_string(),
            member: m,
            group: g,
            tally,
        })
        .collect();
    members.sort_by(|a, b| (&a.group, &a.member).cmp(&(&b.group, &b.member)));
    PlanBoard {
        year: q.year,
        group: q.group.clone(),
        member: q.member.clone(),
        rows,
        groups,
        members,
        total,
        years: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sanjin_core::domain::{Group, Member, PlanItem, TargetKind, Visit};
    use sanjin_core::workflow::State;

    fn member(group: &str, name: &str) -> Member {
        Member {
            name: name.into(),
            chapter: "chapter-city".into(),
            committee: None,
            group: group.into(),
            sector: String::new(),
        }
    }

    fn dir() -> Directory {
        let mut d = Directory::default();
        for (g, name) in [
            ("group-01", "第一组"),
            ("group-02", "第二组"),
            ("group-03", "第三组"),
        ] {
            d.groups.insert(
                g.into(),
                Group {
                    name: name.into(),
                    chapter: "chapter-city".into(),
                    committee: None,
                    leader: "m-a".into(),
                    contact_points: vec!["cp-x".into(), "cp-y".into()],
                    legal_advisory: false,
                },
            );
        }
        for (id, g, name) in [
            ("m-a", "group-01", "张三"),
            ("m-b", "group-01", "李四"),
            ("m-c", "group-01", "王五"),
            ("m-d", "group-02", "赵六"),
        ] {
            d.members.insert(id.into(), member(g, name));
        }
        d
    }

    fn row(id: &str, data: RecordData) -> Projected {
        Projected {
            id: id.into(),
            created_by: "office-01".into(),
            created_at_ms: 0,
            status: State::Active,
            deleted: false,
            data,
            conflicts: vec![],
            events: vec![],
            last_ms: 0,
        }
    }

    fn plan(
        id: &str,
        group: &str,
        owner: &str,
        month: i64,
        ty: ActivityType,
        cp: Option<&str>,
    ) -> Projected {
        row(
            id,
            RecordData::Plan(PlanItem {
                year: 2025,
                quarter: (month - 1) / 3 + 1,
                month,
                owner: owner.into(),
                group: group.into(),
                activity_type: ty,
                title: format!("计划{id}"),
                contact_point: cp.map(str::to_string),
            }),
        )
    }

    fn visit(
        id: &str,
        group: &str,
        people: &[&str],
        date: &str,
        ty: ActivityType,
        cp: &str,
    ) -> Projected {
        let start =
            chrono::NaiveDateTime::parse_from_str(&format!("{date} 09:00"), "%Y-%m-%d %H:%M")
                .unwrap();
        row(
            id,
            RecordData::Visit(Visit {
                target_kind: TargetKind::Community,
                contact_point: cp.into(),
                group: group.into(),
                activity_type: ty,
                start,
                end: start + chrono::Duration::hours(2),
                title: format!("活动{id}"),
                summary: String::new(),
                participants: people.iter().map(|p| p.to_string()).collect(),
                helpers: vec![],
                gps: None,
                photos: vec![],
            }),
        )
    }

    const T: ActivityType = ActivityType::ResearchSymposium;
    const H: ActivityType = ActivityType::HomeVisit;

    fn q(group: Option<&str>, member: Option<&str>) -> PlanQuery {
        PlanQuery {
            year: 2025,
            group: group.map(str::to_string),
            member: member.map(str::to_string),
        }
    }

    fn done(b: &PlanBoard) -> BTreeMap<&str, Option<&str>> {
        b.rows
            .iter()
            .map(|r| (r.id.as_str(), r.carried_out.as_ref().map(|v| v.id.as_str())))
            .collect()
    }

    /// The rule, case by case, with exact figures per item, group and member.
    #[test]
    fn issue13_plan_items_are_matched_to_visits_by_the_rule() {
        let items = vec![
            // A, May, symposium at cp-x; and one without a contact point: two visits needed.
            plan("p1", "group-01", "m-a", 5, T, Some("cp-x")),
            plan("p2", "group-01", "m-a", 5, T, None),
            // A third May symposium of A: no third visit.
            plan("p3", "group-01", "m-a", 5, T, None),
            // B, May symposium: B took part in v1 too (one visit, one item per owner).
            plan("p4", "group-01", "m-b", 5, T, None),
            // B, June home visit at cp-y: the only June visit is at cp-x.
            plan("p5", "group-01", "m-b", 6, H, Some("cp-y")),
            // C, July: visit of the right month and type, C not a participant.
            plan("p6", "group-01", "m-c", 7, T, None),
            // D (group-02), May symposium: the visit is group-01's.
            plan("p7", "group-02", "m-d", 5, T, None),
            // D, August home visit: a home visit of another type in August does not count,
            // the one in September neither.
            plan("p8", "group-02", "m-d", 8, H, None),
        ];
        let visits = vec![
            // The first May visit is at cp-x: a greedy pass taking p2 first would leave p1
            // without its visit; the maximum matching gives p1 v1 and p2 v2.
            visit(
                "v1",
                "group-01",
                &["m-a", "m-b", "m-d"],
                "2025-05-03",
                T,
                "cp-x",
            ),
            visit("v2", "group-01", &["m-a"], "2025-05-20", T, "cp-y"),
            visit("v3", "group-01", &["m-b"], "2025-06-10", H, "cp-x"),
            visit("v4", "group-01", &["m-a", "m-b"], "2025-07-10", T, "cp-x"),
            visit("v5", "group-02", &["m-d"], "2025-08-02", T, "cp-x"),
            visit("v6", "group-02", &["m-d"], "2025-09-02", H, "cp-x"),
            // Not this year.
            visit("v7", "group-01", &["m-a"], "2024-05-03", T, "cp-x"),
        ];
        let b = assemble(&q(None, None), &dir(), &items, &visits);
        assert_eq!(
            done(&b),
            BTreeMap::from([
                ("p1", Some("v1")),
                ("p2", Some("v2")),
                ("p3", None),
                ("p4", Some("v1")),
                ("p5", None),
                ("p6", None),
                ("p7", None),
                ("p8", None),
            ])
        );
        assert_eq!(
            b.total,
            Tally {
                planned: 8,
                done: 3
            }
        );
        assert_eq!(b.total.percent(), Some(37.5));
        let groups: Vec<(&str, usize, usize, Option<f64>)> = b
            .groups
            .iter()
            .map(|g| {
                (
                    g.group.as_str(),
                    g.tally.planned,
                    g.tally.done,
                    g.tally.percent(),
                )
            })
            .collect();
        assert_eq!(
            groups,
            vec![
                ("group-01", 6, 3, Some(50.0)),
                ("group-02", 2, 0, Some(0.0)),
                ("group-03", 0, 0, None),
            ],
            "every group in scope, the one without a plan too"
        );
        let members: Vec<(&str, &str, usize, usize, Option<f64>)> = b
            .members
            .iter()
            .map(|m| {
                (
                    m.member.as_str(),
                    m.name.as_str(),
                    m.tally.planned,
                    m.tally.done,
                    m.tally.percent(),
                )
            })
            .collect();
        assert_eq!(
            members,
            vec![
                ("m-a", "张三", 3, 2, Some(66.7)),
                ("m-b", "李四", 2, 1, Some(50.0)),
                ("m-c", "王五", 1, 0, Some(0.0)),
                ("m-d", "赵六", 2, 0, Some(0.0)),
            ]
        );
        // By quarter, month, owner.
        let order: Vec<&str> = b.rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(order, ["p1", "p2", "p3", "p4", "p7", "p5", "p6", "p8"]);
        assert_eq!(b.rows[0].contact_point_name.as_deref(), Some("cp-x"));
        assert_eq!(b.rows[0].group_name, "第一组");
        assert_eq!(b.rows[0].owner_name, "张三");
        assert_eq!(
            b.rows[0].carried_out.as_ref().unwrap().date.to_string(),
            "2025-05-03"
        );
    }

    /// `match_rows` on a part — one owner's items with the visits the owner took part in (the
    /// member record), one quarter's items and visits (the quarterly report) — gives each item
    /// the visit the whole year's matching gives it (the plan page).
    #[test]
    fn issue13_match_rows_on_a_part_agrees_with_the_whole() {
        let items = [
            plan("p1", "group-01", "m-a", 5, T, Some("cp-x")),
            plan("p2", "group-01", "m-a", 5, T, None),
            plan("p3", "group-01", "m-a", 5, T, None),
            plan("p4", "group-01", "m-b", 5, T, None),
            plan("p5", "group-01", "m-b", 7, T, Some("cp-y")),
            plan("p6", "group-01", "m-c", 7, T, None),
            plan("p7", "group-02", "m-d", 8, H, None),
        ];
        let visits = [
            visit("v1", "group-01", &["m-a", "m-b"], "2025-05-03", T, "cp-x"),
            visit("v2", "group-01", &["m-a"], "2025-05-20", T, "cp-y"),
            visit("v3", "group-01", &["m-b", "m-c"], "2025-07-10", T, "cp-y"),
            visit("v4", "group-02", &["m-d"], "2025-08-02", H, "cp-x"),
        ];
        let all_items: Vec<&Projected> = items.iter().collect();
        let all_visits: Vec<&Projected> = visits.iter().collect();
        let whole: BTreeMap<&str, Option<&str>> = all_items
            .iter()
            .zip(match_rows(&all_items, &all_visits))
            .map(|(p, m)| (p.id.as_str(), m.map(|v| visits[v].id.as_str())))
            .collect();
        assert_eq!(
            whole,
            BTreeMap::from([
                ("p1", Some("v1")),
                ("p2", Some("v2")),
                ("p3", None),
                ("p4", Some("v1")),
                ("p5", Some("v3")),
                ("p6", Some("v3")),
                ("p7", Some("v4")),
            ])
        );
        let part = |keep_item: &dyn Fn(&PlanItem) -> bool, keep_visit: &dyn Fn(&Visit) -> bool| {
            let its: Vec<&Projected> = items
                .iter()
                .filter(|p| matches!(&p.data, RecordData::Plan(i) if keep_item(i)))
                .collect();
            let vs: Vec<&Projected> = visits
                .iter()
                .filter(|p| matches!(&p.data, RecordData::Visit(v) if keep_visit(v)))
                .collect();
            let got: Vec<(&str, Option<&str>)> = its
                .iter()
                .zip(match_rows(&its, &vs))
                .map(|(p, m)| (p.id.as_str(), m.map(|v| vs[v].id.as_str())))
                .collect();
            assert!(!got.is_empty());
            for (id, m) in got {
                assert_eq!(m, whole[id], "{id}");
            }
        };
        for owner in ["m-a", "m-b", "m-c", "m-d"] {
            part(&|i| i.owner == owner, &|v| {
                v.participants.iter().any(|p| p == owner)
            });
        }
        for quarter in [2, 3] {
            part(&|i| i.quarter == quarter, &|v| {
                (v.start.month() as i64 - 1) / 3 + 1 == quarter
            });
        }
    }

    /// A deleted visit carries out nothing; the filters by group and member narrow rows and
    /// totals; with a group chosen every member of it is listed.
    #[test]
    fn issue13_plan_board_filters_and_deleted_visits() {
        let items = vec![
            plan("p1", "group-01", "m-a", 3, T, None),
            plan("p2", "group-01", "m-b", 3, T, None),
        ];
        let mut gone = visit("v1", "group-01", &["m-a", "m-b"], "2025-03-03", T, "cp-x");
        gone.deleted = true;
        let kept = visit("v2", "group-01", &["m-b"], "2025-03-09", T, "cp-y");
        let b = assemble(&q(Some("group-01"), None), &dir(), &items, &[gone, kept]);
        assert_eq!(done(&b), BTreeMap::from([("p1", None), ("p2", Some("v2"))]));
        assert_eq!(b.groups.len(), 1);
        assert_eq!(
            b.groups[0].tally,
            Tally {
                planned: 2,
                done: 1
            }
        );
        let members: Vec<(&str, usize, usize)> = b
            .members
            .iter()
            .map(|m| (m.member.as_str(), m.tally.planned, m.tally.done))
            .collect();
        assert_eq!(
            members,
            vec![("m-a", 1, 0), ("m-b", 1, 1), ("m-c", 0, 0)],
            "the group's member without a plan item is listed with 0"
        );
        let b = assemble(&q(None, Some("m-b")), &dir(), &items, &[]);
        assert_eq!(b.rows.len(), 1);
        assert_eq!(
            b.total,
            Tally {
                planned: 1,
                done: 0
            }
        );
        assert_eq!(
            b.groups
                .iter()
                .map(|g| g.group.as_str())
                .collect::<Vec<_>>(),
            ["group-01"],
            "the member's group"
        );
        assert_eq!(b.members.len(), 1);
    }

    /// The committed fixtures through `Ledger::plans`: every 2025 plan item listed once, the
    /// totals adding up, every match obeying the rule, one visit per owner's item; access by
    /// role.
    #[test]
    fn issue13_ledger_plans_of_the_fixtures_by_role() {
        use sanjin_fixtures::Fixtures;
        let fx = Fixtures::load(&sanjin_fixtures::committed_dir()).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let mut data = sanjin_server::ServerData::open(tmp.path()).unwrap();
        data.import_directory(&sanjin_fixtures::committed_dir())
            .unwrap();
        let records: Vec<_> = fx.visits.iter().chain(&fx.plans).cloned().collect();
        data.import_records(&records).unwrap();
        drop(data);
        let mut ledger = Ledger::open(tmp.path()).unwrap();
        let b = ledger.plans(&Viewer::Office, &q(None, None)).unwrap();
        let planned: BTreeSet<&str> = fx
            .plans
            .iter()
            .filter(|r| matches!(&r.data, RecordData::Plan(p) if p.year == 2025))
            .map(|r| r.id.as_str())
            .collect();
        let listed: BTreeSet<&str> = b.rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(listed, planned);
        assert_eq!(b.total.planned, planned.len());
        assert_eq!(b.years, vec![2025]);
        let done = b.rows.iter().filter(|r| r.carried_out.is_some()).count();
        assert_eq!(b.total.done, done);
        assert!(
            done > 0 && done < planned.len(),
            "{done} of {}",
            planned.len()
        );
        eprintln!(
            "fixtures 2025: {done} of {} plan items carried out",
            planned.len()
        );
        assert_eq!(
            b.groups.iter().map(|g| g.tally.planned).sum::<usize>(),
            b.total.planned
        );
        assert_eq!(b.groups.iter().map(|g| g.tally.done).sum::<usize>(), done);
        assert_eq!(b.members.iter().map(|m| m.tally.done).sum::<usize>(), done);
        let visits: BTreeMap<&str, &Visit> = fx
            .visits
            .iter()
            .filter_map(|r| match &r.data {
                RecordData::Visit(v) => Some((r.id.as_str(), v)),
                _ => None,
            })
            .collect();
        let mut used = BTreeSet::new();
        for r in &b.rows {
            let Some(line) = &r.carried_out else { continue };
            let v = visits[line.id.as_str()];
            assert_eq!(
                (
                    v.group.as_str(),
                    v.activity_type,
                    v.start.year() as i64,
                    v.start.month() as i64
                ),
                (r.group.as_str(), r.activity_type, r.year, r.month),
                "{}",
                r.id
            );
            assert!(v.participants.contains(&r.owner), "{}", r.id);
            assert!(
                r.contact_point
                    .as_ref()
                    .is_none_or(|c| c == &v.contact_point),
                "{}",
                r.id
            );
            assert!(
                used.insert((line.id.clone(), r.owner.clone())),
                "one visit, one item of the owner"
            );
        }

        let leader = Viewer::Leader {
            group: "group-01".into(),
        };
        let own = ledger.plans(&leader, &q(None, None)).unwrap();
        assert!(own.rows.iter().all(|r| r.group == "group-01"));
        assert_eq!(
            own.total,
            b.groups
                .iter()
                .find(|g| g.group == "group-01")
                .unwrap()
                .tally
        );
        assert!(matches!(
            ledger.plans(&leader, &q(Some("group-02"), None)),
            Err(Error::Forbidden(m)) if m.contains("组长只能查看本组（group-01）的年度计划")
        ));
        let other = fx
            .directory
            .iter()
            .find(|r| matches!(&r.data, RecordData::Member(m) if m.group == "group-02"))
            .unwrap()
            .id
            .clone();
        assert!(matches!(
            ledger.plans(&leader, &q(None, Some(&other))),
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(
            ledger.plans(&Viewer::Member, &q(None, None)),
            Err(Error::Forbidden(_))
        ));
        let mut bad = q(None, None);
        bad.year = 1999;
        assert!(matches!(
            ledger.plans(&Viewer::Office, &bad),
            Err(Error::Invalid(_))
        ));
    }
}
