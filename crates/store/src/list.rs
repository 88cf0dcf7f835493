//! List and filter queries over the index tables.

use rusqlite::types::Value as SqlValue;
use sanjin_core::{IndexEntry, domain::RecordKind};

use crate::{Result, Store, kind_table};

/// What to list. Empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub kind: Option<RecordKind>,
    /// Inclusive, `YYYY-MM-DD`.
    pub from: Option<String>,
    /// Inclusive, `YYYY-MM-DD`.
    pub to: Option<String>,
    pub group: Option<String>,
    pub contact_point: Option<String>,
    /// Records a member took part in (participants, authors, paired members, plan owners).
    pub member: Option<String>,
    /// Activity type or opinion kind code.
    pub type_code: Option<String>,
    pub target_kind: Option<String>,
    pub status: Option<String>,
    pub only_conflicts: bool,
    pub include_deleted: bool,
    pub limit: Option<usize>,
}

impl Store {
    /// Lists index rows, newest first. Without a kind, lists visits.
    pub fn list(&self, f: &Filter) -> Result<Vec<IndexEntry>> {
        self.query(f, None)
    }

    fn query(&self, f: &Filter, id: Option<&str>) -> Result<Vec<IndexEntry>> {
        let kind = f.kind.unwrap_or(RecordKind::Visit);
        let table = kind_table(kind);
        let mut sql = format!(
            "SELECT t.id, t.date, t.start, t.\"end\", t.group_id, t.contact_point, t.type_code, t.target_kind, \
             t.urgency, t.created_by, t.status, t.deleted, t.conflicts, t.title FROM {table} t WHERE 1=1"
        );
        let mut args: Vec<SqlValue> = Vec::new();
        let mut cond = |sql: &mut String, clause: &str, v: &Option<String>| {
            if let Some(v) = v {
                args.push(SqlValue::Text(v.clone()));
                sql.push_str(&format!(" AND {clause} ?{}", args.len()));
            }
        };
        if kind.is_directory() {
            cond(&mut sql, "t.kind =", &Some(kind.code().to_string()));
        }
        cond(&mut sql, "t.id =", &id.map(str::to_string));
        cond(&mut sql, "t.date >=", &f.from);
        cond(&mut sql, "t.date <=", &f.to);
        cond(&mut sql, "t.group_id =", &f.group);
        cond(&mut sql, "t.contact_point =", &f.contact_point);
        cond(&mut sql, "t.type_code =", &f.type_code);
        cond(&mut sql, "t.target_kind =", &f.target_kind);
        cond(&mut sql, "t.status =", &f.status);
        if let Some(m) = &f.member {
            args.push(SqlValue::Text(m.clone()));
            sql.push_str(&format!(
                " AND t.id IN (SELECT record_id FROM record_members WHERE member = ?{})",
                args.len()
            ));
        }
        if f.only_conflicts {
            sql.push_str(" AND t.conflicts > 0");
        }
        if !f.include_deleted {
            sql.push_str(" AND t.deleted = 0");
        }
        sql.push_str(" ORDER BY t.date DESC, t.start DESC, t.id");
        if let Some(limit) = f.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
            Ok(IndexEntry {
                id: r.get(0)?,
                kind: kind.code().into(),
                date: r.get(1)?,
                start: r.get(2)?,
                end: r.get(3)?,
                group: r.get(4)?,
                contact_point: r.get(5)?,
                type_code: r.get(6)?,
                target_kind: r.get(7)?,
                urgency: r.get(8)?,
                created_by: r.get(9)?,
                status: r.get(10)?,
                deleted: r.get(11)?,
                conflicts: r.get(12)?,
                title: r.get(13)?,
                members: vec![],
            })
        })?;
        let mut out: Vec<IndexEntry> = rows.collect::<Result<_, _>>()?;
        let mut members = self.conn.prepare_cached(
            "SELECT member FROM record_members WHERE record_id = ?1 ORDER BY member",
        )?;
        for e in &mut out {
            e.members = members
                .query_map([&e.id], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
        }
        Ok(out)
    }

    /// The index row of one record, if it exists.
    pub fn index_entry(&self, id: &str) -> Result<Option<IndexEntry>> {
        let kind: Option<String> = rusqlite::OptionalExtension::optional(
            self.conn
                .prepare_cached("SELECT kind FROM docs WHERE id = ?1")?
                .query_row([id], |r| r.get(0)),
        )?;
        let Some(kind) = kind.and_then(|k| RecordKind::parse(&k)) else {
            return Ok(None);
        };
        let f = Filter {
            kind: Some(kind),
            include_deleted: true,
            ..Filter::default()
        };
        Ok(self.query(&f, Some(id))?.into_iter().next())
    }
}
