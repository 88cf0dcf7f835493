//! The directory as the ledgers need it: names and memberships by id.

use std::collections::BTreeMap;

use rusqlite::Connection;
use sanjin_core::domain::{Chapter, Committee, ContactPoint, Group, Member, RecordData};

use crate::{Result, Slice, project};

/// Chapters, committees, groups, contact points and members (tombstoned entries left out), each
/// by id in id order.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub chapters: BTreeMap<String, Chapter>,
    pub committees: BTreeMap<String, Committee>,
    pub groups: BTreeMap<String, Group>,
    pub contact_points: BTreeMap<String, ContactPoint>,
    pub members: BTreeMap<String, Member>,
}

impl Directory {
    pub(crate) fn load(conn: &Connection) -> Result<Directory> {
        let mut d = Directory::default();
        for kind in ["chapter", "committee", "group", "contact_point", "member"] {
            project::each(conn, kind, None, |p| {
                match p.data {
                    RecordData::Chapter(c) => {
                        d.chapters.insert(p.id, c);
                    }
                    RecordData::Committee(c) => {
                        d.committees.insert(p.id, c);
                    }
                    RecordData::Group(g) => {
                        d.groups.insert(p.id, g);
                    }
                    RecordData::ContactPoint(c) => {
                        d.contact_points.insert(p.id, c);
                    }
                    RecordData::Member(m) => {
                        d.members.insert(p.id, m);
                    }
                    _ => {}
                }
                Ok(())
            })?;
        }
        Ok(d)
    }

    /// A member's name, or the id when the directory does not know it.
    pub fn member_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.members.get(id).map_or(id, |m| m.name.as_str())
    }

    pub fn group_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.groups.get(id).map_or(id, |g| g.name.as_str())
    }

    pub fn contact_point_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.contact_points.get(id).map_or(id, |c| c.name.as_str())
    }

    pub fn chapter_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.chapters.get(id).map_or(id, |c| c.name.as_str())
    }

    pub fn committee_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.committees.get(id).map_or(id, |c| c.name.as_str())
    }

    /// The chapter of a group.
    pub fn group_chapter(&self, group: &str) -> Option<&str> {
        self.groups.get(group).map(|g| g.chapter.as_str())
    }

    /// Names of members joined with `、`.
    pub fn names(&self, ids: &[String]) -> String {
        ids.iter()
            .map(|m| self.member_name(m))
            .collect::<Vec<_>>()
            .join("、")
    }

    /// Whether a record of `group` with these `people` is in the slice's chapter and committee.
    pub(crate) fn in_org(&self, slice: &Slice, group: &str, people: &[&str]) -> bool {
        let g = self.groups.get(group);
        if let Some(c) = &slice.chapter {
            let by_group = g.is_some_and(|g| &g.chapter == c);
            let by_people = people
                .iter()
                .any(|p| self.members.get(*p).is_some_and(|m| &m.chapter == c));
            if !by_group && !by_people {
                return false;
            }
        }
        if let Some(c) = &slice.committee {
            let by_group = g.is_some_and(|g| g.committee.as_ref() == Some(c));
            let by_people = people.iter().any(|p| {
                self.members
                    .get(*p)
                    .is_some_and(|m| m.committee.as_ref() == Some(c))
            });
            if !by_group && !by_people {
                return false;
            }
        }
        true
    }

    /// The members a slice is about (participation and coverage): by chapter, committee, group
    /// and member; a contact point narrows to the groups that hold it.
    pub fn members_in(&self, slice: &Slice) -> Vec<(&String, &Member)> {
        self.members
            .iter()
            .filter(|(id, m)| {
                slice.chapter.as_ref().is_none_or(|c| &m.chapter == c)
                    && slice
                        .committee
                        .as_ref()
                        .is_none_or(|c| m.committee.as_ref() == Some(c))
                    && slice.group.as_ref().is_none_or(|g| &m.group == g)
                    && slice.member.as_ref().is_none_or(|x| x == *id)
                    && slice.contact_point.as_ref().is_none_or(|cp| {
                        self.groups
                            .get(&m.group)
                            .is_some_and(|g| g.contact_points.contains(cp))
                    })
            })
            .collect()
    }

    /// The groups a slice is about ("六个一", plan vs actual).
    pub fn groups_in(&self, slice: &Slice) -> Vec<(&String, &Group)> {
        self.groups
            .iter()
            .filter(|(id, g)| {
                slice.group.as_ref().is_none_or(|x| x == *id)
                    && slice.chapter.as_ref().is_none_or(|c| {
                        &g.chapter == c
                            || self
                                .members
                                .values()
                                .any(|m| &m.group == *id && &m.chapter == c)
                    })
                    && slice.committee.as_ref().is_none_or(|c| {
                        g.committee.as_ref() == Some(c)
                            || self
                                .members
                                .values()
                                .any(|m| &m.group == *id && m.committee.as_ref() == Some(c))
                    })
                    && slice
                        .contact_point
                        .as_ref()
                        .is_none_or(|cp| g.contact_points.contains(cp))
                    && slice
                        .member
                        .as_ref()
                        .is_none_or(|m| self.members.get(m).is_some_and(|mm| &mm.group == *id))
            })
            .collect()
    }
}
