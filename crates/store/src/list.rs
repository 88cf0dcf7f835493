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
    /// The reader's scope (issue 13), when it does not read every record.
    pub scope: Option<ReadScope>,
}

/// The records a reader may see when not all (issue 13): those of `groups` (staff of a county
/// chapter: its groups; a leader: the group), and with `legal_appeals` every legal appeal
/// (法律诉求; the legal advisory group, see `sanjin_core::rules::also_read_by`). Directory
/// records are not narrowed: everyone reads the directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadScope {
    pub groups: Vec<String>,
    pub legal_appeals: bool,
}

impl ReadScope {
    /// Whether a record of `kind` in `group` (an opinion of kind `type_code`) is in the scope.
    pub fn admits(&self, kind: RecordKind, group: Option<&str>, type_code: Option<&str>) -> bool {
        kind.is_directory()
            || group.is_some_and(|g| self.groups.iter().any(|x| x == g))
            || (self.legal_appeals && sanjin_core::rules::is_legal_appeal(kind, type_code))
    }
}

/// A column of the index tables to count by ([`Store::count_by`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexColumn {
    Group,
    TypeCode,
    TargetKind,
    Status,
}

impl IndexColumn {
    fn column(self) -> &'static str {
        match self {
            IndexColumn::Group => "group_id",
            IndexColumn::TypeCode => "type_code",
            IndexColumn::TargetKind => "target_kind",
            IndexColumn::Status => "status",
        }
    }

    /// This column's value in an index row.
    pub fn of(self, e: &IndexEntry) -> Option<String> {
        match self {
            IndexColumn::Group => e.group.clone(),
            IndexColumn::TypeCode => e.type_code.clone(),
            IndexColumn::TargetKind => e.target_kind.clone(),
            IndexColumn::Status => Some(e.status.clone()),
        }
    }
}

/// The index table of a filter's kind and its `WHERE` clause (the table is aliased `t`).
fn where_clause(f: &Filter, id: Option<&str>) -> (&'static str, String, Vec<SqlValue>) {
    let kind = f.kind.unwrap_or(RecordKind::Visit);
    let table = kind_table(kind);
    let mut sql = String::from("1=1");
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
    if let Some(scope) = &f.scope
        && !kind.is_directory()
    {
        let mut any = Vec::new();
        for g in &scope.groups {
            args.push(SqlValue::Text(g.clone()));
            any.push(format!("?{}", args.len()));
        }
        let mut clause = format!("t.group_id IN ({})", any.join(", "));
        if any.is_empty() {
            clause = "0".into();
        }
        if scope.legal_appeals && kind == RecordKind::Opinion {
            args.push(SqlValue::Text(
                sanjin_core::domain::OpinionKind::LegalAppeal.code().into(),
            ));
            clause = format!("{clause} OR t.type_code = ?{}", args.len());
        }
        sql.push_str(&format!(" AND ({clause})"));
    }
    if f.only_conflicts {
        sql.push_str(" AND t.conflicts > 0");
    }
    if !f.include_deleted {
        sql.push_str(" AND t.deleted = 0");
    }
    (table, sql, args)
}

impl Store {
    /// Lists index rows, newest first. Without a kind, lists visits.
    pub fn list(&self, f: &Filter) -> Result<Vec<IndexEntry>> {
        self.query(f, None)
    }

    /// One page of index rows, newest first, and how many rows the filter matches in all
    /// (`f.limit` is ignored): what a paged list shows.
    pub fn page(&self, f: &Filter, offset: usize, limit: usize) -> Result<(u64, Vec<IndexEntry>)> {
        let (table, where_sql, args) = where_clause(f, None);
        let total: i64 = self
            .conn
            .prepare_cached(&format!("SELECT COUNT(*) FROM {table} t WHERE {where_sql}"))?
            .query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?;
        let f = Filter {
            limit: Some(limit),
            ..f.clone()
        };
        let rows = self.query_offset(&f, None, offset)?;
        Ok((total as u64, rows))
    }

    /// How many index rows the filter matches (`f.limit` is ignored), grouped by the values of
    /// `by` (none: one group). Groups in ascending order of their values.
    pub fn count_by(
        &self,
        f: &Filter,
        by: &[IndexColumn],
    ) -> Result<Vec<(Vec<Option<String>>, u64)>> {
        let (table, where_sql, args) = where_clause(f, None);
        let cols: Vec<String> = by.iter().map(|c| format!("t.{}", c.column())).collect();
        let sql = if cols.is_empty() {
            format!("SELECT COUNT(*) FROM {table} t WHERE {where_sql}")
        } else {
            let c = cols.join(", ");
            format!(
                "SELECT {c}, COUNT(*) FROM {table} t WHERE {where_sql} GROUP BY {c} ORDER BY {c}"
            )
        };
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let n = by.len();
        let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
            let mut key = Vec::with_capacity(n);
            for i in 0..n {
                key.push(r.get::<_, Option<String>>(i)?);
            }
            Ok((key, r.get::<_, i64>(n)? as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Members of the directory (of `group`, if given; tombstoned ones left out) whom a visit
    /// or an opinion note dated within `from..=to` (not deleted) names: as participant, author
    /// or paired member.
    pub fn active_members(&self, group: Option<&str>, from: &str, to: &str) -> Result<u64> {
        let n: i64 = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*) FROM idx_directory d WHERE d.kind = 'member' AND d.deleted = 0
                   AND (?3 IS NULL OR d.group_id = ?3) AND
                   EXISTS (SELECT 1 FROM record_members rm WHERE rm.member = d.id AND (
                       EXISTS (SELECT 1 FROM idx_visit v WHERE v.id = rm.record_id
                               AND v.deleted = 0 AND v.date >= ?1 AND v.date <= ?2)
                    OR EXISTS (SELECT 1 FROM idx_opinion o WHERE o.id = rm.record_id
                               AND o.deleted = 0 AND o.date >= ?1 AND o.date <= ?2)))",
            )?
            .query_row(rusqlite::params![from, to, group], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// Every directory record's id and title (its name), tombstoned ones left out, by id.
    pub fn names(&self) -> Result<Vec<(String, String)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, title FROM idx_directory WHERE deleted = 0 ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn query(&self, f: &Filter, id: Option<&str>) -> Result<Vec<IndexEntry>> {
        self.query_offset(f, id, 0)
    }

    fn query_offset(&self, f: &Filter, id: Option<&str>, offset: usize) -> Result<Vec<IndexEntry>> {
        let kind = f.kind.unwrap_or(RecordKind::Visit);
        let (table, where_sql, args) = where_clause(f, id);
        let mut sql = format!(
            "SELECT t.id, t.date, t.start, t.\"end\", t.group_id, t.contact_point, t.type_code, t.target_kind, \
             t.urgency, t.created_by, t.status, t.deleted, t.conflicts, t.title FROM {table} t WHERE {where_sql}"
        );
        sql.push_str(" ORDER BY t.date DESC, t.start DESC, t.id");
        if let Some(limit) = f.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
            if offset > 0 {
                sql.push_str(&format!(" OFFSET {offset}"));
            }
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
