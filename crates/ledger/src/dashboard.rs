//! The console's first page: this quarter's figures, counted by the server's storage from its
//! index (no document is opened, so it stays fast at a province's size).
//!
//! Coverage here counts members named on a visit (participants and author) or recording an
//! opinion note in the period; the ledger's participation also counts assistance entries.

use chrono::{Datelike, NaiveDate};
use sanjin_core::domain::{ActivityType, RecordKind, TargetKind};
use sanjin_core::workflow::State;
use sanjin_store::server::ServerStorage;
use sanjin_store::{Filter, IndexColumn};
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

/// The dashboard of `from..=to` as `viewer` may see it (a leader: the group's).
pub fn dashboard(
    ledger: &Ledger,
    viewer: &Viewer,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Dashboard> {
    let (group, groups) = match viewer {
        Viewer::Office => (None, None),
        // Staff of a county chapter (issue 13): its groups.
        Viewer::Chapter { groups, .. } => (None, Some(groups.clone())),
        Viewer::Leader { group } => (Some(group.clone()), None),
        Viewer::Member => {
            return Err(Error::Forbidden(
                "委员账户不能查看工作台；请使用手机端记录".into(),
            ));
        }
    };
    compute(ledger.store(), from, to, group, groups)
}

fn compute(
    store: &dyn ServerStorage,
    from: NaiveDate,
    to: NaiveDate,
    group: Option<String>,
    only: Option<Vec<String>>,
) -> Result<Dashboard> {
    let (f, t) = (from.to_string(), to.to_string());
    let scope = only.clone().map(|groups| sanjin_store::ReadScope {
        groups,
        legal_appeals: false,
    });
    let period = |kind: RecordKind, from: &str| Filter {
        kind: Some(kind),
        from: Some(from.to_string()),
        to: Some(t.clone()),
        group: group.clone(),
        scope: scope.clone(),
        ..Filter::default()
    };
    // The groups counted one by one (members and active members are counted by group).
    let each: Vec<Option<String>> = match &only {
        Some(gs) => gs.iter().cloned().map(Some).collect(),
        None => vec![group.clone()],
    };
    let n = |v: u64| v as i64;
    let mut by_kind = Vec::new();
    let mut by_type = Vec::new();
    let mut visits = 0;
    {
        let mut kinds = std::collections::BTreeMap::new();
        let mut types = std::collections::BTreeMap::new();
        let counts = store.count_by(
            &period(RecordKind::Visit, &f),
            &[IndexColumn::TargetKind, IndexColumn::TypeCode],
        )?;
        for (key, count) in counts {
            let count = n(count);
            visits += count;
            if let Some(k) = key[0].as_deref().and_then(TargetKind::parse) {
                *kinds.entry(k).or_insert(0) += count;
            }
            if let Some(ty) = key[1].as_deref().and_then(ActivityType::parse) {
                *types.entry(ty).or_insert(0) += count;
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
    let mut members = 0;
    let mut members_active = 0;
    for g in &each {
        let members_filter = Filter {
            kind: Some(RecordKind::Member),
            group: g.clone(),
            ..Filter::default()
        };
        members += store
            .count_by(&members_filter, &[])?
            .first()
            .map_or(0, |(_, c)| n(*c));
        // A visit's participants and author and an opinion's author (the index's members).
        members_active += n(store.active_members(g.as_deref(), &f, &t)?);
    }
    // 六个一 for the year so far.
    let year_from = NaiveDate::from_ymd_opt(to.year(), 1, 1)
        .expect("1 January")
        .to_string();
    let mut six: std::collections::BTreeMap<String, [i64; 6]> = std::collections::BTreeMap::new();
    for (key, count) in store.count_by(
        &period(RecordKind::Visit, &year_from),
        &[IndexColumn::Group, IndexColumn::TypeCode],
    )? {
        if let (Some(gid), Some(i)) = (
            key[0].clone(),
            key[1]
                .as_deref()
                .and_then(ActivityType::parse)
                .and_then(|ty| ActivityType::SIX_ONES.iter().position(|x| *x == ty)),
        ) {
            six.entry(gid).or_default()[i] += n(count);
        }
    }
    let mut six_ones = Vec::new();
    let mut groups = store.list(&Filter {
        kind: Some(RecordKind::Group),
        ..Filter::default()
    })?;
    groups.sort_by(|a, b| a.id.cmp(&b.id));
    for g in groups {
        if group.as_ref().is_some_and(|want| *want != g.id)
            || only.as_ref().is_some_and(|gs| !gs.contains(&g.id))
        {
            continue;
        }
        let counts = six.get(&g.id).copied().unwrap_or_default();
        six_ones.push(SixOnesRow {
            group: g.id,
            name: g.title,
            counts,
        });
    }
    let mut opinions = 0;
    let mut opinions_by_status = Vec::new();
    {
        let mut map = std::collections::BTreeMap::new();
        for (key, count) in
            store.count_by(&period(RecordKind::Opinion, &f), &[IndexColumn::Status])?
        {
            opinions += n(count);
            if let Some(s) = key[0].as_deref().and_then(State::parse) {
                map.insert(s, n(count));
            }
        }
        for s in sanjin_core::workflow::states(RecordKind::Opinion) {
            opinions_by_status.push((*s, map.get(s).copied().unwrap_or(0)));
        }
    }
    let mut open_conflicts = 0;
    for kind in [RecordKind::Visit, RecordKind::Opinion] {
        let conflicted = Filter {
            only_conflicts: true,
            ..period(kind, &f)
        };
        open_conflicts += store
            .count_by(&conflicted, &[])?
            .first()
            .map_or(0, |(_, c)| n(*c));
    }
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
