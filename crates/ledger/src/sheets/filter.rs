//! Whether a record is in the slice a ledger is asked for.

use std::collections::BTreeSet;

use sanjin_core::domain::{Household, Opinion, PlanItem, Visit};

use crate::Query;
use crate::directory::Directory;

/// The slice test of each kind of record.
pub(crate) struct Filter<'a> {
    pub(crate) q: &'a Query,
    pub(crate) dir: &'a Directory,
}

impl Filter<'_> {
    fn place(&self, group: &str, cp: &str) -> bool {
        let s = &self.q.slice;
        s.group.as_ref().is_none_or(|g| g == group)
            && s.contact_point.as_ref().is_none_or(|c| c == cp)
            && s.target_kind.is_none_or(|t| {
                self.dir
                    .contact_points
                    .get(cp)
                    .is_some_and(|c| c.target_kind == t)
            })
    }

    pub(crate) fn visit(&self, v: &Visit) -> bool {
        let s = &self.q.slice;
        let people: Vec<&str> = v.participants.iter().map(String::as_str).collect();
        s.group.as_ref().is_none_or(|g| g == &v.group)
            && s.contact_point
                .as_ref()
                .is_none_or(|c| c == &v.contact_point)
            && s.target_kind.is_none_or(|t| t == v.target_kind)
            && s.member.as_ref().is_none_or(|m| v.participants.contains(m))
            && self.dir.in_org(s, &v.group, &people)
    }

    pub(crate) fn opinion(&self, o: &Opinion, author: &str) -> bool {
        let s = &self.q.slice;
        self.place(&o.group, &o.contact_point)
            && s.member.as_ref().is_none_or(|m| m == author)
            && self.dir.in_org(s, &o.group, &[author])
    }

    pub(crate) fn household(&self, h: &Household) -> bool {
        let s = &self.q.slice;
        let people: Vec<&str> = h
            .assisting_members
            .iter()
            .chain(h.log.iter().map(|e| &e.member))
            .map(String::as_str)
            .collect();
        self.place(&h.group, &h.contact_point)
            && s.member
                .as_ref()
                .is_none_or(|m| people.contains(&m.as_str()))
            && self.dir.in_org(s, &h.group, &people)
    }
}

impl Filter<'_> {
    /// A plan item of one of `groups` (the slice's groups), owned by the slice's member, at its
    /// contact point and of its target kind.
    pub(crate) fn plan(&self, item: &PlanItem, groups: &BTreeSet<&str>) -> bool {
        let s = &self.q.slice;
        groups.contains(item.group.as_str())
            && s.member.as_ref().is_none_or(|m| m == &item.owner)
            && s.contact_point
                .as_ref()
                .is_none_or(|c| item.contact_point.as_ref() == Some(c))
            && s.target_kind.is_none_or(|t| {
                item.contact_point
                    .as_ref()
                    .and_then(|c| self.dir.contact_points.get(c))
                    .is_some_and(|c| c.target_kind == t)
            })
    }
}
