//! The projection: one row per record in `ledger.sqlite`, refreshed from the server's documents
//! as its storage gives them (never by reading the server's tables).

use std::path::Path;

use rusqlite::{Connection, params};
use sanjin_core::domain::RecordData;
use sanjin_core::workflow::{EventType, State};
use sanjin_core::{Millis, RecordDoc};
use sanjin_store::server::ServerStorage;
use serde::{Deserialize, Serialize};

use crate::Result;

/// Bumped whenever [`Projected`] changes shape: an older projection is dropped and rebuilt.
/// 2 (issue 13): the search tables (`search.rs`) beside the rows.
/// 3 (issue 13): the chart facts and totals (`charts.rs`).
const PROJECTION_VERSION: i64 = 3;
/// Documents read per batch (and per transaction) during a refresh.
const BATCH: usize = 2048;

/// A conflicted field's values, with who wrote each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    pub field: String,
    pub values: Vec<FlagValue>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlagValue {
    pub value: serde_json::Value,
    pub member: String,
    pub device: String,
    pub at_ms: Millis,
}

/// One workflow event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ev {
    pub t: EventType,
    pub by: String,
    pub at_ms: Millis,
    pub applied: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<State>,
}

/// What the ledger keeps of one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Projected {
    pub id: String,
    pub created_by: String,
    pub created_at_ms: Millis,
    pub status: State,
    pub deleted: bool,
    pub data: RecordData,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<Flag>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Ev>,
    /// The time of the latest change (creation or event).
    pub last_ms: Millis,
}

impl Projected {
    pub fn of(doc: &mut RecordDoc) -> Result<Projected> {
        let v = doc.view()?;
        Ok(Projected::of_view(doc, v))
    }

    /// The projection of `doc` from its view, already read.
    fn of_view(doc: &mut RecordDoc, v: sanjin_core::doc::RecordView) -> Projected {
        let events: Vec<Ev> = v
            .events
            .iter()
            .map(|e| Ev {
                t: e.event,
                by: e.member.clone(),
                at_ms: e.at_ms,
                applied: e.applied,
                to: e.to,
            })
            .collect();
        let last_ms = doc
            .history()
            .iter()
            .map(|h| h.at_ms)
            .chain(events.iter().map(|e| e.at_ms))
            .max()
            .unwrap_or(v.created_at_ms)
            .max(v.created_at_ms);
        Projected {
            id: v.id,
            created_by: v.created_by,
            created_at_ms: v.created_at_ms,
            status: v.status,
            deleted: v.deleted,
            data: v.data,
            conflicts: v
                .conflicts
                .into_iter()
                .map(|c| Flag {
                    field: c.field,
                    values: c
                        .values
                        .into_iter()
                        .map(|x| FlagValue {
                            value: x.value,
                            member: x.member,
                            device: x.device,
                            at_ms: x.at_ms,
                        })
                        .collect(),
                })
                .collect(),
            events,
            last_ms,
        }
    }

    /// The day the ledgers file it under, and its order within the day.
    fn date_and_sort(&self) -> (Option<String>, String) {
        match &self.data {
            RecordData::Visit(v) => (
                Some(v.start.date().to_string()),
                v.start.format("%Y-%m-%dT%H:%M:%S").to_string(),
            ),
            RecordData::Opinion(o) => (Some(o.recorded_on.to_string()), String::new()),
            RecordData::Plan(p) => (
                Some(format!("{:04}-{:02}-01", p.year, p.month)),
                String::new(),
            ),
            _ => (None, String::new()),
        }
    }
}

/// What a refresh did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RefreshReport {
    /// Records (re)projected.
    pub updated: usize,
    /// Records that could not be read: (id, reason). They are left out of the ledgers.
    pub skipped: Vec<(String, String)>,
}

/// Opens (creating or rebuilding) the projection.
pub(crate) fn open(ledger: &Path) -> Result<Connection> {
    let conn = Connection::open(ledger)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // A cache: losing the last commits to a power cut only means reading those records again.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version != PROJECTION_VERSION {
        for t in crate::search::TABLES.iter().chain(crate::charts::TABLES) {
            conn.execute_batch(&format!("DROP TABLE IF EXISTS {t};"))?;
        }
        conn.execute_batch(&format!(
            "DROP TABLE IF EXISTS rows;
             CREATE TABLE rows (
                 id      TEXT PRIMARY KEY,
                 kind    TEXT NOT NULL,
                 heads   BLOB NOT NULL,
                 date    TEXT,
                 sort    TEXT NOT NULL,
                 deleted INTEGER NOT NULL,
                 last_ms INTEGER NOT NULL,
                 body    TEXT NOT NULL
             );
             CREATE INDEX rows_kind_date ON rows(kind, date, sort, id);
             DROP TABLE IF EXISTS meta;
             {}
             {}
             PRAGMA user_version = {PROJECTION_VERSION};",
            crate::search::SCHEMA,
            crate::charts::SCHEMA
        ))?;
    }
    // The change-log position read up to (see `candidates`).
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
    )?;
    Ok(conn)
}

/// A record projected with its JSON body, its search row and its chart facts, or why it could
/// not be read.
type Outcome = std::result::Result<
    (
        Projected,
        String,
        Option<crate::search::Indexed>,
        Vec<crate::charts::Fact>,
    ),
    String,
>;

struct Stale {
    id: String,
    heads: Vec<u8>,
    snapshot: Vec<u8>,
    chunks: Vec<Vec<u8>>,
}

/// A document's id and its heads as stored (concatenated hashes).
type StoredHeads = (String, Vec<u8>);

/// The documents that may have changed since the last refresh, with their stored heads, and the
/// log position read up to. On a server every write of a document appends to its change log, so
/// after the first refresh only the documents logged since are compared; a first refresh, or a
/// log that went backwards (a restored backup), compares all.
fn candidates(
    conn: &Connection,
    store: &dyn ServerStorage,
) -> Result<(Vec<StoredHeads>, Option<i64>)> {
    let max_seq = store.max_seq()?;
    let max_seq = (max_seq > 0).then_some(max_seq as i64);
    let last: Option<i64> = conn
        .query_row("SELECT value FROM meta WHERE key = 'last_seq'", [], |r| {
            r.get(0)
        })
        .ok();
    let stored: Vec<StoredHeads> = match (last, max_seq) {
        (Some(last), Some(max)) if last <= max => {
            let mut out = Vec::new();
            for id in store.log_docs_since(last as u64)? {
                if let Some(heads) = store.doc_heads(&id)? {
                    out.push((id, sanjin_store::heads_to_bytes(&heads)));
                }
            }
            out
        }
        _ => store
            .all_heads()?
            .into_iter()
            .map(|(id, h)| (id, sanjin_store::heads_to_bytes(&h)))
            .collect(),
    };
    // Only those whose projected heads differ.
    let mut projected = conn.prepare_cached("SELECT heads FROM rows WHERE id = ?1")?;
    let mut ids = Vec::new();
    for (id, heads) in stored {
        let have: Option<Vec<u8>> = projected.query_row([&id], |r| r.get(0)).ok();
        if have.as_deref() != Some(heads.as_slice()) {
            ids.push((id, heads));
        }
    }
    Ok((ids, max_seq))
}

pub(crate) fn refresh(conn: &mut Connection, store: &dyn ServerStorage) -> Result<RefreshReport> {
    // The log position is read before the documents: whatever lands meanwhile is read next time.
    let (ids, max_seq) = candidates(conn, store)?;
    let mut report = RefreshReport::default();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    for batch in ids.chunks(BATCH) {
        let mut stale = Vec::with_capacity(batch.len());
        for (id, _) in batch {
            let Some(parts) = store.doc_parts(id)? else {
                continue; // gone since (a store is never pruned, but a backup may be restored)
            };
            stale.push(Stale {
                id: id.clone(),
                heads: sanjin_store::heads_to_bytes(&parts.heads),
                snapshot: parts.snapshot,
                chunks: parts.chunks,
            });
        }
        // Reading documents is the costly part: spread it over the cores.
        let per = stale.len().div_ceil(threads).max(1);
        let results: Vec<(usize, Outcome)> = std::thread::scope(|s| {
            let handles: Vec<_> = stale
                .chunks(per)
                .enumerate()
                .map(|(k, part)| {
                    s.spawn(move || {
                        part.iter()
                            .enumerate()
                            .map(|(i, st)| (k * per + i, project_one(st)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("projection threads do not panic"))
                .collect()
        });
        let tx = conn.transaction()?;
        {
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO rows (id, kind, heads, date, sort, deleted, last_ms, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for (i, r) in results {
                let st = &stale[i];
                match r {
                    Ok((p, body, indexed, facts)) => {
                        let (date, sort) = p.date_and_sort();
                        put.execute(params![
                            p.id,
                            p.data.kind().code(),
                            st.heads,
                            date,
                            sort,
                            p.deleted,
                            p.last_ms,
                            body
                        ])?;
                        // The search index in the same transaction as the row (issue 13).
                        if let Some(ix) = &indexed {
                            crate::search::put(&tx, ix)?;
                        }
                        // The charts' facts too (issue 13), so the dashboard opens no document.
                        crate::charts::put(&tx, &p.id, &facts)?;
                        report.updated += 1;
                    }
                    Err(reason) => report.skipped.push((st.id.clone(), reason)),
                }
            }
        }
        tx.commit()?;
    }
    if let Some(max) = max_seq {
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_seq', ?1)",
            [max],
        )?;
    }
    Ok(report)
}

fn project_one(st: &Stale) -> Outcome {
    let mut doc = RecordDoc::load_parts(&st.snapshot, st.chunks.iter().map(Vec::as_slice))
        .map_err(|e| e.to_string())?;
    if doc.id() != st.id {
        return Err(format!("the document says it is {}", doc.id()));
    }
    let v = doc.view().map_err(|e| e.to_string())?;
    let indexed = crate::search::indexed(&v);
    let facts = crate::charts::facts(&v);
    let p = Projected::of_view(&mut doc, v);
    let body = serde_json::to_string(&p).map_err(|e| e.to_string())?;
    Ok((p, body, indexed, facts))
}

/// Reads projected records of `kind` (not deleted), in file order (date, time, id); with a date
/// range for kinds that have a date.
pub(crate) fn each(
    conn: &Connection,
    kind: &str,
    range: Option<(&str, &str)>,
    mut f: impl FnMut(Projected) -> Result<()>,
) -> Result<()> {
    let mut sql = String::from("SELECT body, id FROM rows WHERE kind = ?1 AND deleted = 0");
    if range.is_some() {
        sql.push_str(" AND date >= ?2 AND date <= ?3");
    }
    sql.push_str(" ORDER BY date, sort, id");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = match range {
        Some((from, to)) => stmt.query(params![kind, from, to])?,
        None => stmt.query(params![kind])?,
    };
    while let Some(row) = rows.next()? {
        let body = row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
        let p: Projected = serde_json::from_str(body).map_err(|e| {
            let id: String = row.get(1).unwrap_or_default();
            crate::Error::Invalid(format!(
                "台账缓存中记录 {id} 损坏（{e}），请删除数据目录中的 ledger.sqlite（台账缓存，会自动重建）后重试"
            ))
        })?;
        f(p)?;
    }
    Ok(())
}

/// The latest change time of any record of `kind` (the ledgers' "as of" for open durations).
pub(crate) fn last_ms(conn: &Connection, kind: &str) -> Result<Option<Millis>> {
    Ok(conn.query_row(
        "SELECT MAX(last_ms) FROM rows WHERE kind = ?1 AND deleted = 0",
        [kind],
        |r| r.get(0),
    )?)
}
