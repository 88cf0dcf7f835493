//! The aggregates every ledger shares, filled by one pass per kind over the projected records:
//! per member, per group, per (group, month, activity type), per opinion topic, and the record
//! counts of the summary. Only these are held in memory; rows stream.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};
use sanjin_core::domain::{
    ActivityType, AssistanceEntry, Opinion, OpinionKind, PlanItem, Urgency, Visit,
};
use sanjin_core::workflow::State;

use crate::project::Projected;

/// What one member did in the period.
#[derive(Debug, Default, PartialEq)]
pub(super) struct MemberCounts {
    pub(super) visits: i64,
    pub(super) six_visits: i64,
    pub(super) opinions: i64,
    pub(super) submitted: i64,
    pub(super) assistance: i64,
    /// The "六个一" types of the visits the member took part in.
    pub(super) six: BTreeSet<ActivityType>,
}

impl MemberCounts {
    /// At least one visit, opinion note or assistance entry: not a coverage gap.
    pub(super) fn took_part(&self) -> bool {
        self.visits + self.opinions + self.assistance > 0
    }
}

/// A member who did nothing in the period.
static NOTHING: MemberCounts = MemberCounts {
    visits: 0,
    six_visits: 0,
    opinions: 0,
    submitted: 0,
    assistance: 0,
    six: BTreeSet::new(),
};

/// Plan vs actual of one group, activity type and month (or quarter).
#[derive(Debug, Default, PartialEq)]
pub(super) struct PlanCell {
    pub(super) planned: i64,
    pub(super) actual: i64,
    pub(super) owners: BTreeSet<String>,
    pub(super) ids: Vec<String>,
    /// Members who took part in a visit of this group, type and month.
    pub(super) participants: BTreeSet<String>,
    /// Plan items whose owner took part in such a visit (明确到人: did the person do it).
    pub(super) owner_done: i64,
}

/// (group, year, month, activity type).
pub(super) type MonthKey = (String, i32, u32, ActivityType);
/// (group, year, quarter, activity type).
pub(super) type QuarterKey = (String, i32, i64, ActivityType);

/// One opinion topic of one kind.
#[derive(Debug, Default, PartialEq)]
pub(super) struct TopicCounts {
    pub(super) count: i64,
    pub(super) urgent: i64,
    pub(super) feedback: i64,
    pub(super) groups: BTreeSet<String>,
    pub(super) first: Option<NaiveDate>,
    pub(super) last: Option<NaiveDate>,
}

/// Everything the ledgers count, shared by all sheets.
#[derive(Debug, Default)]
pub(super) struct Totals {
    pub(super) members: BTreeMap<String, MemberCounts>,
    /// Visits of each "六个一" type per group, in the order of [`ActivityType::SIX_ONES`].
    pub(super) six: BTreeMap<String, [i64; 6]>,
    pub(super) plan: BTreeMap<MonthKey, PlanCell>,
    pub(super) topics: BTreeMap<(OpinionKind, String), TopicCounts>,
    /// Visits in the activity ledger.
    pub(super) visits: usize,
    /// Opinion notes in the opinion ledger.
    pub(super) opinions: usize,
    /// Households in the pair-assistance ledger.
    pub(super) households: usize,
    /// Assistance entries within the period.
    pub(super) assistance_entries: usize,
    /// Records of the three record ledgers with an unresolved conflict.
    pub(super) conflicted: usize,
}

impl Totals {
    /// Counts a visit of the activity ledger.
    pub(super) fn visit(&mut self, p: &Projected, v: &Visit) {
        for m in &v.participants {
            let c = self.members.entry(m.clone()).or_default();
            c.visits += 1;
            if v.activity_type.is_six_ones() {
                c.six_visits += 1;
                c.six.insert(v.activity_type);
            }
        }
        if let Some(i) = six_index(v.activity_type) {
            self.six.entry(v.group.clone()).or_default()[i] += 1;
        }
        let cell = self
            .plan
            .entry((
                v.group.clone(),
                v.start.year(),
                v.start.month(),
                v.activity_type,
            ))
            .or_default();
        cell.actual += 1;
        cell.participants.extend(v.participants.iter().cloned());
        self.visits += 1;
        self.conflict(p);
    }

    /// Counts an opinion note of the opinion ledger (`submitted`: it has been submitted).
    pub(super) fn opinion(&mut self, p: &Projected, o: &Opinion, submitted: bool) {
        let c = self.members.entry(p.created_by.clone()).or_default();
        c.opinions += 1;
        if submitted {
            c.submitted += 1;
        }
        let t = self
            .topics
            .entry((o.opinion_kind, o.topic.clone()))
            .or_default();
        t.count += 1;
        if o.urgency != Urgency::Normal {
            t.urgent += 1;
        }
        if p.status == State::FeedbackGiven {
            t.feedback += 1;
        }
        t.groups.insert(o.group.clone());
        t.first = Some(t.first.map_or(o.recorded_on, |d| d.min(o.recorded_on)));
        t.last = Some(t.last.map_or(o.recorded_on, |d| d.max(o.recorded_on)));
        self.opinions += 1;
        self.conflict(p);
    }

    /// Counts a household of the pair-assistance ledger (its entries come one by one).
    pub(super) fn household(&mut self, p: &Projected) {
        self.households += 1;
        self.conflict(p);
    }

    /// Counts an assistance entry within the period.
    pub(super) fn assistance(&mut self, e: &AssistanceEntry) {
        self.members.entry(e.member.clone()).or_default().assistance += 1;
        self.assistance_entries += 1;
    }

    /// Counts a plan item against the visits already counted (read the visits first).
    pub(super) fn plan_item(&mut self, p: &Projected, item: &PlanItem) {
        let cell = self
            .plan
            .entry((
                item.group.clone(),
                item.year as i32,
                item.month as u32,
                item.activity_type,
            ))
            .or_default();
        cell.planned += 1;
        if cell.participants.contains(&item.owner) {
            cell.owner_done += 1;
        }
        cell.owners.insert(item.owner.clone());
        cell.ids.push(p.id.clone());
    }

    fn conflict(&mut self, p: &Projected) {
        if !p.conflicts.is_empty() {
            self.conflicted += 1;
        }
    }

    /// What member `id` did (nothing, if not counted).
    pub(super) fn member(&self, id: &str) -> &MemberCounts {
        self.members.get(id).unwrap_or(&NOTHING)
    }

    /// Visits of each "六个一" type of group `id`.
    pub(super) fn six_ones(&self, id: &str) -> [i64; 6] {
        self.six.get(id).copied().unwrap_or_default()
    }

    /// The month cells of `groups`, by group, year, month and type.
    pub(super) fn plan_months<'a>(
        &'a self,
        groups: &'a BTreeSet<&str>,
    ) -> impl Iterator<Item = (&'a MonthKey, &'a PlanCell)> + 'a {
        self.plan
            .iter()
            .filter(|((group, ..), _)| groups.contains(group.as_str()))
    }

    /// The month cells of `groups` summed by quarter (owners merged, no plan ids).
    pub(super) fn plan_quarters(&self, groups: &BTreeSet<&str>) -> BTreeMap<QuarterKey, PlanCell> {
        let mut quarters: BTreeMap<QuarterKey, PlanCell> = BTreeMap::new();
        for ((group, year, month, ty), c) in self.plan_months(groups) {
            let qc = quarters
                .entry((group.clone(), *year, quarter_of(*month), *ty))
                .or_default();
            qc.planned += c.planned;
            qc.actual += c.actual;
            qc.owners.extend(c.owners.iter().cloned());
            qc.owner_done += c.owner_done;
        }
        quarters
    }

    /// Planned and actual activities of `groups`, over every month.
    pub(super) fn plan_sums(&self, groups: &BTreeSet<&str>) -> (i64, i64) {
        self.plan_months(groups)
            .fold((0, 0), |(p, a), (_, c)| (p + c.planned, a + c.actual))
    }
}

fn six_index(t: ActivityType) -> Option<usize> {
    ActivityType::SIX_ONES.iter().position(|x| *x == t)
}

pub(super) fn quarter_of(month: u32) -> i64 {
    ((month as i64) - 1) / 3 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue11_quarters_sum_the_slice_months() {
        let mut t = Totals::default();
        let ty = ActivityType::SIX_ONES[0];
        for (group, month, planned, actual, owner) in [
            ("g1", 1, 1, 2, "m1"),
            ("g1", 3, 2, 0, "m2"),
            ("g1", 4, 1, 1, "m1"),
            ("g2", 2, 5, 5, "m3"),
        ] {
            let c = t.plan.entry((group.into(), 2025, month, ty)).or_default();
            c.planned = planned;
            c.actual = actual;
            c.owners.insert(owner.into());
            c.ids.push(format!("{group}-{month}"));
        }
        let only_g1: BTreeSet<&str> = ["g1"].into();
        assert_eq!(t.plan_months(&only_g1).count(), 3);
        assert_eq!(t.plan_sums(&only_g1), (4, 3));
        let q = t.plan_quarters(&only_g1);
        assert_eq!(q.len(), 2);
        let q1 = &q[&("g1".to_string(), 2025, 1, ty)];
        assert_eq!((q1.planned, q1.actual), (3, 2));
        assert_eq!(q1.owners.iter().collect::<Vec<_>>(), ["m1", "m2"]);
        assert!(q1.ids.is_empty());
        assert_eq!(q[&("g1".to_string(), 2025, 2, ty)].planned, 1);
        assert_eq!([1, 3, 4, 6, 7, 12].map(quarter_of), [1, 1, 2, 2, 3, 4]);
    }

    #[test]
    fn issue11_unknown_members_and_groups_count_nothing() {
        let t = Totals::default();
        assert_eq!(t.member("member-9999"), &MemberCounts::default());
        assert!(!t.member("member-9999").took_part());
        assert_eq!(t.six_ones("group-99"), [0; 6]);
    }
}
