//! The console's first page: this quarter's figures, counted from the store's index tables
//! (no document is opened, so it stays fast at a province's size).
//!
//! Coverage here counts members named on a visit (participants and author) or recording an
//! opinion note in the period; the ledger's participation also counts assistance entries.

use chrono::{Datelike, NaiveDate};
use rusqlite::{Connection, params};
use sanjin_core::domain::{ActivityType, TargetKind};
use sanjin_core::workflow::State;
use serde::Serialize;

use crate::{Error, Ledger, Result, Viewer};

/// The quarter a day is in: its first and last day.
pub fn quarter_of(day: NaiveDate) -> (NaiveDate, NaiveDate) {
    let q0 = (day.month0() / 3) * 3;
    let from = NaiveDate::from_ymd_opt(day.year(), q0 + 1, 1).expect("a quarter's first day");
    let next = if q0 == 9 {
        NaiveDate::from_ymd_opt(day.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(day.year(), q0 + 4, 1)
    }
    .expect("the next quarter's first day");
    (from, next.pred_opt().expect("a day before"))
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SixOnesRow {
    pub group: String,
    pub name: String,
    /// Visits of each of the six types this year, in `ActivityType::SIX_ONES` order.
    pub counts: [i64; 6],
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dashboard {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub group: Option<String>,
    pub visits: i64,
    /// Visits by target kind.
    pub by_kind: Vec<(TargetKind, i64)>,
    /// Visits by activity type (types with none left out).
    pub by_type: Vec<(ActivityType, i64)>,
    pub members: i64,
    pub members_active: i64,
    /// "六个一" per group for the year of the period, up to its end.
    pub six_ones: Vec<SixOnesRow>,
    pub opinions: i64,
    pub opinions_by_status: Vec<(State, i64)>,
    /// Visits and opinion notes of the period with unresolved conflicts.
    pub open_conflicts: i64,
}

fn group_clause(group: &Option<String>, col: &str) -> String {
    match group {
        Some(_) => format!(" AND {col} = ?3"),
        None => " AND ?3 IS NULL".into(),
    }
}

/// The dashboard of `from..=to` as `viewer` may see it (a leader: the group's).
pub fn dashboard(
    ledger: &Ledger,
    viewer: &Viewer,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Dashboard> {
    let group = match viewer {
        Viewer::Office => None,
        Viewer::Leader { group } => Some(group.clone()),
        Viewer::Member => {
            return Err(Error::Forbidden(
                "委员账户不能查看工作台；请使用手机端记录".into(),
            ));
        }
    };
    compute(ledger.connection(), from, to, group)
}

fn compute(
    conn: &Connection,
    from: NaiveDate,
    to: NaiveDate,
    group: Option<String>,
) -> Result<Dashboard> {
    let (f, t) = (from.to_string(), to.to_string());
    let g = group_clause(&group, "group_id");
    let mut by_kind = Vec::new();
    let mut by_type = Vec::new();
    let mut visits = 0;
    {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT target_kind, type_code, COUNT(*) FROM store.idx_visit
             WHERE deleted = 0 AND date >= ?1 AND date <= ?2{g} GROUP BY 1, 2"
        ))?;
        let mut rows = stmt.query(params![f, t, group])?;
        let mut kinds = std::collections::BTreeMap::new();
        let mut types = std::collections::BTreeMap::new();
        while let Some(r) = rows.next()? {
            let k: Option<String> = r.get(0)?;
            let ty: Option<String> = r.get(1)?;
            let n: i64 = r.get(2)?;
            visits += n;
            if let Some(k) = k.as_deref().and_then(TargetKind::parse) {
                *kinds.entry(k).or_insert(0) += n;
            }
            if let Some(ty) = ty.as_deref().and_then(ActivityType::parse) {
                *types.entry(ty).or_insert(0) += n;
            }
        }
        for k in TargetKind::ALL {
            by_kind.push((*k, kinds.get(k).copied().unwrap_or(0)));
        }
        for ty in ActivityType::ALL {
            if let Some(n) = types.get(ty) {
                by_type.push((*ty, *n));
            }
        }
    }
    let members: i64 = conn
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM store.idx_directory WHERE kind = 'member' AND deleted = 0{}",
            match group {
                Some(_) => " AND group_id = ?1",
                None => " AND ?1 IS NULL",
            }
        ))?
        .query_row(params![group], |r| r.get(0))?;
    let members_active: i64 = conn
        .prepare_cached(&format!(
            // record_members names a visit's participants and author and an opinion's author.
            "SELECT COUNT(*) FROM store.idx_directory d WHERE d.kind = 'member' AND d.deleted = 0{} AND
               EXISTS (SELECT 1 FROM store.record_members rm WHERE rm.member = d.id AND (
                   EXISTS (SELECT 1 FROM store.idx_visit v WHERE v.id = rm.record_id
                           AND v.deleted = 0 AND v.date >= ?1 AND v.date <= ?2)
                OR EXISTS (SELECT 1 FROM store.idx_opinion o WHERE o.id = rm.record_id
                           AND o.deleted = 0 AND o.date >= ?1 AND o.date <= ?2)))",
            group_clause(&group, "d.group_id")
        ))?
        .query_row(params![f, t, group], |r| r.get(0))?;
    // 六个一 for the year so far.
    let year_from = NaiveDate::from_ymd_opt(to.year(), 1, 1)
        .expect("1 January")
        .to_string();
    let mut six: std::collections::BTreeMap<String, [i64; 6]> = std::collections::BTreeMap::new();
    {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT group_id, type_code, COUNT(*) FROM store.idx_visit
             WHERE deleted = 0 AND date >= ?1 AND date <= ?2{g} GROUP BY 1, 2"
        ))?;
        let mut rows = stmt.query(params![year_from, t, group])?;
        while let Some(r) = rows.next()? {
            let gid: Option<String> = r.get(0)?;
            let ty: Option<String> = r.get(1)?;
            let n: i64 = r.get(2)?;
            if let (Some(gid), Some(i)) = (
                gid,
                ty.as_deref()
                    .and_then(ActivityType::parse)
                    .and_then(|ty| ActivityType::SIX_ONES.iter().position(|x| *x == ty)),
            ) {
                six.entry(gid).or_default()[i] += n;
            }
        }
    }
    let mut six_ones = Vec::new();
    {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT id, title FROM store.idx_directory WHERE kind = 'group' AND deleted = 0{} ORDER BY id",
            match group {
                Some(_) => " AND id = ?1",
                None => " AND ?1 IS NULL",
            }
        ))?;
        let rows = stmt.query_map(params![group], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (id, name) = row?;
            let counts = six.get(&id).copied().unwrap_or_default();
            six_ones.push(SixOnesRow {
                group: id,
                name,
                counts,
            });
        }
    }
    let mut opinions = 0;
    let mut opinions_by_status = Vec::new();
    {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT status, COUNT(*) FROM store.idx_opinion
             WHERE deleted = 0 AND date >= ?1 AND date <= ?2{g} GROUP BY 1"
        ))?;
        let rows = stmt.query_map(params![f, t, group], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut map = std::collections::BTreeMap::new();
        for row in rows {
            let (s, n) = row?;
            opinions += n;
            if let Some(s) = State::parse(&s) {
                map.insert(s, n);
            }
        }
        for s in sanjin_core::workflow::states(sanjin_core::domain::RecordKind::Opinion) {
            opinions_by_status.push((*s, map.get(s).copied().unwrap_or(0)));
        }
    }
    let open_conflicts: i64 = conn
        .prepare_cached(&format!(
            "SELECT (SELECT COUNT(*) FROM store.idx_visit WHERE deleted = 0 AND conflicts > 0 AND date >= ?1 AND date <= ?2{g})
                  + (SELECT COUNT(*) FROM store.idx_opinion WHERE deleted = 0 AND conflicts > 0 AND date >= ?1 AND date <= ?2{g})"
        ))?
        .query_row(params![f, t, group], |r| r.get(0))?;
    Ok(Dashboard {
        from,
        to,
        group,
        visits,
        by_kind,
        by_type,
        members,
        members_active,
        six_ones,
        opinions,
        opinions_by_status,
        open_conflicts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarters() {
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(quarter_of(d(2025, 5, 19)), (d(2025, 4, 1), d(2025, 6, 30)));
        assert_eq!(
            quarter_of(d(2025, 12, 31)),
            (d(2025, 10, 1), d(2025, 12, 31))
        );
        assert_eq!(quarter_of(d(2025, 1, 1)), (d(2025, 1, 1), d(2025, 3, 31)));
    }
}
