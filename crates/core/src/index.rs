//! The index row of a record: the columns list and filter queries use.
//!
//! Computed from the document alone, so every replica that holds the same document computes the
//! same row.

use serde::Serialize;

use crate::doc::RecordView;
use crate::domain::RecordData;

/// What the store's index tables hold for one record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexEntry {
    pub id: String,
    pub kind: String,
    /// The day it happened (`YYYY-MM-DD`): a visit's start, an opinion's date, a plan's month's
    /// first day.
    pub date: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub group: Option<String>,
    pub contact_point: Option<String>,
    pub created_by: String,
    /// Activity type, opinion kind.
    pub type_code: Option<String>,
    pub target_kind: Option<String>,
    pub urgency: Option<String>,
    pub status: String,
    pub deleted: bool,
    pub conflicts: u32,
    /// A short line for lists.
    pub title: String,
    /// Members the record is about: participants (and the author), paired members, the owner.
    pub members: Vec<String>,
}

fn dt(d: &chrono::NaiveDateTime) -> String {
    crate::time::stored(*d)
}

impl IndexEntry {
    pub fn of(view: &RecordView) -> IndexEntry {
        let mut e = IndexEntry {
            id: view.id.clone(),
            kind: view.kind.code().into(),
            date: None,
            start: None,
            end: None,
            group: None,
            contact_point: None,
            created_by: view.created_by.clone(),
            type_code: None,
            target_kind: None,
            urgency: None,
            status: view.status.code().into(),
            deleted: view.deleted,
            conflicts: view.conflicts.len() as u32,
            title: String::new(),
            members: vec![],
        };
        match &view.data {
            RecordData::Visit(v) => {
                e.date = Some(v.start.date().to_string());
                e.start = Some(dt(&v.start));
                e.end = Some(dt(&v.end));
                e.group = Some(v.group.clone());
                e.contact_point = Some(v.contact_point.clone());
                e.type_code = Some(v.activity_type.code().into());
                e.target_kind = Some(v.target_kind.code().into());
                e.title = v.title.clone();
                e.members = v.participants.clone();
            }
            RecordData::Opinion(o) => {
                e.date = Some(o.recorded_on.to_string());
                e.group = Some(o.group.clone());
                e.contact_point = Some(o.contact_point.clone());
                e.type_code = Some(o.opinion_kind.code().into());
                e.urgency = Some(o.urgency.code().into());
                e.title = o.topic.clone();
            }
            RecordData::Household(h) => {
                e.group = Some(h.group.clone());
                e.contact_point = Some(h.contact_point.clone());
                e.title = h.head_name.clone();
                e.members = h.assisting_members.clone();
                e.date = h.log.iter().map(|l| l.date).max().map(|d| d.to_string());
            }
            RecordData::Plan(p) => {
                e.date = Some(format!("{:04}-{:02}-01", p.year, p.month));
                e.group = Some(p.group.clone());
                e.contact_point = p.contact_point.clone();
                e.type_code = Some(p.activity_type.code().into());
                e.title = p.title.clone();
                e.members = vec![p.owner.clone()];
            }
            RecordData::Member(m) => {
                e.group = Some(m.group.clone());
                e.title = m.name.clone();
                e.members = vec![view.id.clone()];
            }
            RecordData::Committee(c) => e.title = c.name.clone(),
            RecordData::Group(g) => {
                e.group = Some(view.id.clone());
                e.title = g.name.clone();
                e.members = vec![g.leader.clone()];
            }
            RecordData::ContactPoint(c) => {
                e.target_kind = Some(c.target_kind.code().into());
                e.title = c.name.clone();
            }
            RecordData::Chapter(c) => e.title = c.name.clone(),
            RecordData::Unit(u) => e.title = u.name.clone(),
        }
        if !e.members.contains(&e.created_by)
            && matches!(view.data, RecordData::Visit(_) | RecordData::Opinion(_))
        {
            e.members.push(e.created_by.clone());
        }
        e.members.sort();
        e.members.dedup();
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RecordDoc;
    use crate::testdata;

    #[test]
    fn rows_of_every_kind() {
        for (i, data) in testdata::one_of_each().into_iter().enumerate() {
            let mut doc = RecordDoc::create(
                &format!("r-{i}"),
                &data,
                &testdata::author("member-0009", 1),
                0,
            )
            .unwrap();
            let e = IndexEntry::of(&doc.view().unwrap());
            assert_eq!(e.kind, data.kind().code());
            assert!(!e.title.is_empty(), "{e:?}");
            match data {
                RecordData::Visit(_) => {
                    assert_eq!(e.date.as_deref(), Some("2026-05-19"));
                    assert_eq!(e.start.as_deref(), Some("2026-05-19T09:00:00"));
                    assert_eq!(
                        e.members,
                        vec!["member-0001", "member-0002", "member-0009"],
                        "participants and author"
                    );
                    assert_eq!(e.status, "draft");
                }
                RecordData::Opinion(_) => assert_eq!(e.urgency.as_deref(), Some("urgent")),
                RecordData::Household(_) => {
                    assert_eq!(e.date.as_deref(), Some("2026-03-02"), "last assistance")
                }
                RecordData::Plan(_) => assert_eq!(e.date.as_deref(), Some("2026-05-01")),
                _ => assert_eq!(e.status, "active"),
            }
        }
    }
}
