//! Full-text search over records' titles, summaries and opinion texts (issue 13), with the list
//! filters, in the projection `ledger.sqlite`.
//!
//! **Why here and how.** The projection is the ledger's read model, refreshed from the server's
//! change log; its search tables (`search_rows`, `search_members`, the FTS5 table `search_fts`)
//! are written in the same transaction as a record's projected row ([`put`], called by the
//! refresh), so an edited record's old words stop matching and its new ones match, and a deleted
//! record leaves the index, in the same commit. The server's write path (sync exchanges, group
//! commit) pays nothing for search, and the server's storage needs no new schema.
//!
//! Chinese is written without spaces and most words are two characters (垃圾, 养老): a trigram
//! index cannot find them, and a dictionary segmenter (jieba) misses names and new words and
//! splits differently in a query than in a text. So the text is cut here, in Rust, into the
//! tokens SQLite's FTS5 then indexes as they are (`unicode61` only splits on our spaces):
//!
//! - a run of CJK characters becomes its **overlapping character bigrams** (垃圾分类 → 垃圾 圾分
//!   分类) in the columns `title` / `body`, and its **single characters** in `title1` / `body1`;
//! - a run of letters and digits is one lower-cased word (full-width forms folded), in place
//!   between the bigrams, so `5G基站` is the phrase `5g 基站`;
//! - spaces and punctuation leave one gap token, so no phrase spans them.
//!
//! A query is cut the same way: each term (split at spaces and punctuation) becomes one FTS5
//! phrase over the
//! bigram columns (a two-character word is one bigram, a longer one the phrase of its bigrams);
//! a single CJK character searches the single-character columns; terms are ANDed. Tokens are
//! quoted and hold only letters, digits and CJK, so no query can inject FTS5 syntax. Results are
//! ranked by BM25 (a title hit weighs three times a body hit), then newest first; the snippet is
//! cut from the original text around the first hit, the hits marked as [`Fragment`]s (the
//! console escapes them when rendering).

use chrono::NaiveDate;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, Transaction, params};
use sanjin_core::IndexEntry;
use sanjin_core::doc::RecordView;
use sanjin_core::domain::{RecordData, RecordKind};
use serde::Serialize;

use crate::{Error, Result, Viewer};

/// The search tables of the projection (created with it, dropped with it).
pub(crate) const SCHEMA: &str = "
    CREATE TABLE search_rows (
        rid         INTEGER PRIMARY KEY,
        id          TEXT NOT NULL UNIQUE,
        kind        TEXT NOT NULL,
        date        TEXT,
        start       TEXT,
        grp         TEXT,
        cp          TEXT,
        type_code   TEXT,
        target_kind TEXT,
        status      TEXT NOT NULL,
        deleted     INTEGER NOT NULL,
        conflicts   INTEGER NOT NULL,
        created_by  TEXT NOT NULL,
        title       TEXT NOT NULL,
        body        TEXT NOT NULL
    );
    CREATE TABLE search_members (
        member TEXT NOT NULL,
        rid    INTEGER NOT NULL,
        PRIMARY KEY (member, rid)
    ) WITHOUT ROWID;
    CREATE INDEX search_members_rid ON search_members(rid);
    CREATE VIRTUAL TABLE search_fts USING fts5(
        title, body, title1, body1,
        content = '', contentless_delete = 1,
        tokenize = 'unicode61 remove_diacritics 0'
    );";

/// The tables [`SCHEMA`] creates, for a rebuild.
pub(crate) const TABLES: &[&str] = &["search_fts", "search_members", "search_rows"];

/// BM25 weights of `title`, `body`, `title1`, `body1`.
const RANK: &str = "bm25(search_fts, 3.0, 1.0, 3.0, 1.0)";

/// Characters of a snippet around the first hit.
const SNIPPET_CHARS: usize = 120;
/// Characters shown before the first hit.
const SNIPPET_BEFORE: usize = 30;

// ------------------------------------------------------------------ tokens

/// Han ideographs (with extensions and compatibility forms), 〇, kana and hangul: scripts
/// written without spaces between words.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3007 | 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF
        | 0xF900..=0xFAFF | 0x20000..=0x323AF)
}

/// Folds full-width ASCII (ＡＢＣ１２３) to ASCII and lower-cases, one char for one char.
fn fold(c: char) -> char {
    let c = match c as u32 {
        0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    };
    c.to_lowercase().next().unwrap_or(c)
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() && !is_cjk(c)
}

/// A stretch of text of one kind.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Run {
    Cjk(Vec<char>),
    Word(String),
    /// Spaces or punctuation between two runs.
    Gap,
}

/// The token a gap leaves in the index (a private-use character: `unicode61` keeps it as a
/// token, and no query can produce it), so that a phrase never spans two runs: `垃圾分` does
/// not match `垃圾，圾分`.
const GAP: &str = "\u{E000}";

fn runs(text: &str) -> Vec<Run> {
    let mut out = Vec::new();
    let mut cur: Option<Run> = None;
    for c in text.chars().map(fold) {
        let next = if is_cjk(c) {
            match &mut cur {
                Some(Run::Cjk(v)) => {
                    v.push(c);
                    continue;
                }
                _ => Some(Run::Cjk(vec![c])),
            }
        } else if is_word(c) {
            match &mut cur {
                Some(Run::Word(w)) => {
                    w.push(c);
                    continue;
                }
                _ => Some(Run::Word(c.to_string())),
            }
        } else {
            match cur {
                None | Some(Run::Gap) => continue,
                _ => Some(Run::Gap),
            }
        };
        if let Some(done) = std::mem::replace(&mut cur, next) {
            out.push(done);
        }
    }
    out.extend(cur.filter(|r| *r != Run::Gap));
    out
}

impl Run {
    /// The run's tokens in the bigram columns.
    fn bigrams(&self, out: &mut Vec<String>) {
        match self {
            Run::Word(w) => out.push(w.clone()),
            Run::Cjk(v) if v.len() == 1 => out.push(v[0].to_string()),
            Run::Cjk(v) => out.extend(v.windows(2).map(|p| p.iter().collect())),
            Run::Gap => out.push(GAP.to_string()),
        }
    }
}

/// A text's tokens for the bigram column and for the single-character column.
pub(crate) fn tokens(text: &str) -> (String, String) {
    let mut bi = Vec::new();
    let mut uni = Vec::new();
    for r in runs(text) {
        r.bigrams(&mut bi);
        if let Run::Cjk(v) = &r {
            uni.extend(v.iter().map(char::to_string));
        }
    }
    (bi.join(" "), uni.join(" "))
}

/// A query cut into its FTS5 expression and the needles its hits are marked by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub(crate) expr: String,
    needles: Vec<Run>,
}

fn phrase(cols: &str, toks: &[String]) -> String {
    format!("{{{cols}}} : \"{}\"", toks.join(" "))
}

/// The FTS5 expression of a query, or `None` when it holds no letter, digit or CJK character.
pub(crate) fn parse(query: &str) -> Option<Parsed> {
    let mut parts = Vec::new();
    let mut needles = Vec::new();
    let all = runs(query);
    for rs in all.split(|r| *r == Run::Gap) {
        let single = |r: &Run| matches!(r, Run::Cjk(v) if v.len() == 1);
        if !rs.iter().any(single) {
            // One phrase: `5G基站` is `5g 基站`, `垃圾分类` is `垃圾 圾分 分类`.
            let mut toks = Vec::new();
            for r in rs {
                r.bigrams(&mut toks);
            }
            if !toks.is_empty() {
                parts.push(phrase("title body", &toks));
            }
        } else {
            // A single character is only ever a token of the single-character columns.
            for r in rs {
                if let Run::Cjk(v) = r
                    && v.len() == 1
                {
                    parts.push(phrase("title1 body1", &[v[0].to_string()]));
                } else {
                    let mut toks = Vec::new();
                    r.bigrams(&mut toks);
                    parts.push(phrase("title body", &toks));
                }
            }
        }
        needles.extend(rs.iter().cloned());
    }
    if parts.is_empty() {
        return None;
    }
    Some(Parsed {
        expr: parts.join(" AND "),
        needles,
    })
}

// ------------------------------------------------------------------ what is indexed

/// The searchable text of a record: its title line and its body (a visit's summary, an
/// opinion's text, a household's situation and assistance, with every value of a conflicted
/// field, so that each side of an open conflict is found).
fn texts(v: &RecordView) -> Option<(String, String)> {
    let (title, mut body, fields): (String, String, &[&str]) = match &v.data {
        RecordData::Visit(x) => (x.title.clone(), x.summary.clone(), &["title", "summary"]),
        RecordData::Opinion(x) => (x.topic.clone(), x.text.clone(), &["topic", "text"]),
        RecordData::Household(x) => {
            let mut body = x.situation.clone();
            for e in &x.log {
                body.push('\n');
                body.push_str(&e.action);
            }
            (x.head_name.clone(), body, &["head_name", "situation"])
        }
        RecordData::Plan(x) => (x.title.clone(), String::new(), &["title"]),
        _ => return None,
    };
    let mut title = title;
    for c in v
        .conflicts
        .iter()
        .filter(|c| fields.contains(&c.field.as_str()))
    {
        for val in &c.values {
            if let Some(s) = val.value.as_str()
                && !title.contains(s)
                && !body.contains(s)
            {
                let into = if c.field == fields[0] {
                    &mut title
                } else {
                    &mut body
                };
                into.push_str(" ／ ");
                into.push_str(s);
            }
        }
    }
    Some((title, body))
}

/// What the search tables get of one record, computed beside its projection (on the refresh's
/// worker threads).
pub(crate) struct Indexed {
    entry: IndexEntry,
    title: String,
    body: String,
    /// Bigram and single-character tokens of the title and the body.
    tokens: [String; 4],
}

/// A record's search row, for the four kinds that are searched.
pub(crate) fn indexed(v: &RecordView) -> Option<Indexed> {
    let (title, body) = texts(v)?;
    let (t_bi, t_uni) = tokens(&title);
    let (b_bi, b_uni) = tokens(&body);
    Some(Indexed {
        entry: IndexEntry::of(v),
        title,
        body,
        tokens: [t_bi, b_bi, t_uni, b_uni],
    })
}

/// Writes a record's search rows, inside the refresh's transaction: its filter columns and
/// members, and its tokens (removed first, so an edit leaves no old word behind; a deleted
/// record keeps no tokens).
pub(crate) fn put(tx: &Transaction, ix: &Indexed) -> Result<()> {
    let e = &ix.entry;
    let rid: i64 = tx
        .prepare_cached(
            "INSERT INTO search_rows (id, kind, date, start, grp, cp, type_code, target_kind,
                 status, deleted, conflicts, created_by, title, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (id) DO UPDATE SET kind = ?2, date = ?3, start = ?4, grp = ?5, cp = ?6,
                 type_code = ?7, target_kind = ?8, status = ?9, deleted = ?10, conflicts = ?11,
                 created_by = ?12, title = ?13, body = ?14
             RETURNING rid",
        )?
        .query_row(
            params![
                e.id,
                e.kind,
                e.date,
                e.start,
                e.group,
                e.contact_point,
                e.type_code,
                e.target_kind,
                e.status,
                e.deleted,
                e.conflicts,
                e.created_by,
                ix.title,
                ix.body
            ],
            |r| r.get(0),
        )?;
    tx.prepare_cached("DELETE FROM search_fts WHERE rowid = ?1")?
        .execute([rid])?;
    tx.prepare_cached("DELETE FROM search_members WHERE rid = ?1")?
        .execute([rid])?;
    if e.deleted {
        return Ok(());
    }
    let mut member = tx.prepare_cached("INSERT OR IGNORE INTO search_members VALUES (?1, ?2)")?;
    for m in &e.members {
        member.execute(params![m, rid])?;
    }
    let [t_bi, b_bi, t_uni, b_uni] = &ix.tokens;
    tx.prepare_cached(
        "INSERT INTO search_fts (rowid, title, body, title1, body1) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![rid, t_bi, b_bi, t_uni, b_uni])?;
    Ok(())
}

// ------------------------------------------------------------------ the query

/// A search: the words and the list filters (every field that is set narrows the result).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Search {
    /// What to look for: words separated by spaces, all of which must occur.
    pub text: String,
    /// Visits, opinion notes, households or plan items; none: all four.
    pub kind: Option<RecordKind>,
    /// Inclusive, by the record's day (a visit's start, an opinion's date, …).
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub group: Option<String>,
    pub contact_point: Option<String>,
    /// Records a member took part in (participant, author, paired member, plan owner).
    pub member: Option<String>,
    /// Activity type or opinion kind code.
    pub type_code: Option<String>,
    pub target_kind: Option<String>,
    /// A workflow state's code.
    pub status: Option<String>,
    pub only_conflicts: bool,
    pub offset: usize,
    /// Hits per page (0: 50).
    pub limit: usize,
    /// Only records of these groups, when not empty (set from the viewer's scope: staff of a
    /// county chapter, issue 13).
    pub groups: Vec<String>,
}

/// A piece of a title or snippet; `hit` when it matched the query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fragment {
    pub text: String,
    pub hit: bool,
}

/// One record found, with what a list shows of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub id: String,
    pub kind: String,
    pub date: Option<String>,
    pub start: Option<String>,
    pub group: Option<String>,
    pub contact_point: Option<String>,
    pub type_code: Option<String>,
    pub status: String,
    pub conflicts: i64,
    pub created_by: String,
    pub title: String,
    /// BM25 (lower is better).
    pub score: f64,
    /// The title with its hits marked.
    pub title_marked: Vec<Fragment>,
    /// Up to [`SNIPPET_CHARS`] characters of the body around its first hit, hits marked.
    pub snippet: Vec<Fragment>,
}

/// A page of hits and how many records match in all.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Found {
    pub total: usize,
    pub hits: Vec<Hit>,
}

/// `search` as `viewer` may run it: a leader's narrowed to the group (refused for another
/// group), a member's refused, an empty query refused.
pub(crate) fn scoped(viewer: &Viewer, s: &Search) -> Result<(Search, Parsed)> {
    let mut s = s.clone();
    match viewer {
        Viewer::Office => {}
        Viewer::Chapter { chapter, groups } => {
            if let Some(g) = &s.group
                && !groups.contains(g)
            {
                return Err(Error::Forbidden(format!(
                    "活动组 {g} 属于其他政协组织：只能搜索本政协组织（{chapter}）各活动组的记录"
                )));
            }
            // No group of the chapter: nothing to find (never everything).
            s.groups = if groups.is_empty() {
                vec![String::new()]
            } else {
                groups.clone()
            };
        }
        Viewer::Member => {
            return Err(Error::Forbidden(
                "委员账户不能使用工作台搜索；请在手机上查看本人的记录".into(),
            ));
        }
        Viewer::Leader { group } => {
            if let Some(g) = &s.group
                && g != group
            {
                return Err(Error::Forbidden(format!(
                    "组长只能搜索本组（{group}）的记录，不能搜索 {g}"
                )));
            }
            s.group = Some(group.clone());
        }
    }
    if let (Some(f), Some(t)) = (s.from, s.to)
        && f > t
    {
        return Err(Error::Invalid(format!(
            "起始日期 {f} 晚于结束日期 {t}，请调换后再搜索"
        )));
    }
    let Some(p) = parse(&s.text) else {
        return Err(Error::Invalid(format!(
            "搜索词“{}”里没有可查找的文字（汉字、字母或数字），请换一个词",
            s.text.trim()
        )));
    };
    Ok((s, p))
}

/// Runs a scoped search on the projection.
pub(crate) fn run(conn: &Connection, s: &Search, p: &Parsed) -> Result<Found> {
    let mut args: Vec<SqlValue> = vec![SqlValue::Text(p.expr.clone())];
    let mut sql = format!(
        "SELECT r.rid, {RANK}, r.date FROM search_fts JOIN search_rows r ON r.rid = search_fts.rowid
         WHERE search_fts MATCH ?1 AND r.deleted = 0"
    );
    let mut cond = |clause: &str, v: Option<String>| {
        if let Some(v) = v {
            args.push(SqlValue::Text(v));
            sql.push_str(&format!(" AND {clause} ?{}", args.len()));
        }
    };
    cond("r.kind =", s.kind.map(|k| k.code().to_string()));
    cond("r.date >=", s.from.map(|d| d.to_string()));
    cond("r.date <=", s.to.map(|d| d.to_string()));
    cond("r.grp =", s.group.clone());
    cond("r.cp =", s.contact_point.clone());
    cond("r.type_code =", s.type_code.clone());
    cond("r.target_kind =", s.target_kind.clone());
    cond("r.status =", s.status.clone());
    cond(
        "r.rid IN (SELECT rid FROM search_members WHERE member =",
        s.member.clone(),
    );
    if s.member.is_some() {
        sql.push(')');
    }
    if s.only_conflicts {
        sql.push_str(" AND r.conflicts > 0");
    }
    if !s.groups.is_empty() {
        let mut any = Vec::new();
        for g in &s.groups {
            args.push(SqlValue::Text(g.clone()));
            any.push(format!("?{}", args.len()));
        }
        sql.push_str(&format!(" AND r.grp IN ({})", any.join(", ")));
    }
    // One pass over the matches: rank them all, keep the page.
    let mut all: Vec<(f64, Option<String>, i64)> = conn
        .prepare(&sql)?
        .query_map(rusqlite::params_from_iter(args.iter()), |r| {
            Ok((r.get(1)?, r.get(2)?, r.get(0)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    all.sort_by(|a, b| {
        a.0.total_cmp(&b.0)
            .then_with(|| b.1.cmp(&a.1))
            .then_with(|| a.2.cmp(&b.2))
    });
    let limit = if s.limit == 0 { 50 } else { s.limit };
    let mut row = conn.prepare_cached(
        "SELECT id, kind, date, start, grp, cp, type_code, status, conflicts, created_by, title,
                body
         FROM search_rows WHERE rid = ?1",
    )?;
    let hits = all
        .iter()
        .skip(s.offset)
        .take(limit)
        .map(|(score, _, rid)| {
            row.query_row([rid], |r| {
                let title: String = r.get(10)?;
                let body: String = r.get(11)?;
                Ok(Hit {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    date: r.get(2)?,
                    start: r.get(3)?,
                    group: r.get(4)?,
                    contact_point: r.get(5)?,
                    type_code: r.get(6)?,
                    status: r.get(7)?,
                    conflicts: r.get(8)?,
                    created_by: r.get(9)?,
                    title_marked: mark(&title, &p.needles, None),
                    snippet: mark(&body, &p.needles, Some(SNIPPET_CHARS)),
                    title,
                    score: *score,
                })
            })
        })
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Found {
        total: all.len(),
        hits,
    })
}

// ------------------------------------------------------------------ snippets

/// `text` cut into fragments with the needles' occurrences marked; with `window`, only that
/// many characters around the first hit (ellipses where cut).
fn mark(text: &str, needles: &[Run], window: Option<usize>) -> Vec<Fragment> {
    let orig: Vec<char> = text.chars().collect();
    let folded: Vec<char> = orig.iter().map(|c| fold(*c)).collect();
    let mut hit = vec![false; orig.len()];
    for n in needles {
        let (pat, word): (Vec<char>, bool) = match n {
            Run::Cjk(v) => (v.clone(), false),
            Run::Word(w) => (w.chars().collect(), true),
            Run::Gap => continue,
        };
        if pat.is_empty() || pat.len() > folded.len() {
            continue;
        }
        for i in 0..=folded.len() - pat.len() {
            if folded[i..i + pat.len()] != pat[..] {
                continue;
            }
            let end = i + pat.len();
            // A word matches whole words only, as the index does.
            if word
                && ((i > 0 && is_word(folded[i - 1]))
                    || (end < folded.len() && is_word(folded[end])))
            {
                continue;
            }
            hit[i..end].iter_mut().for_each(|h| *h = true);
        }
    }
    let (from, to) = match window {
        None => (0, orig.len()),
        Some(w) => {
            let first = hit.iter().position(|h| *h).unwrap_or(0);
            let from = first.saturating_sub(SNIPPET_BEFORE);
            (from, (from + w).min(orig.len()))
        }
    };
    let mut out: Vec<Fragment> = Vec::new();
    if from > 0 {
        out.push(Fragment {
            text: "…".into(),
            hit: false,
        });
    }
    for i in from..to {
        match out.last_mut() {
            Some(f) if f.hit == hit[i] && !(i == from && from > 0) => f.text.push(orig[i]),
            _ => out.push(Fragment {
                text: orig[i].to_string(),
                hit: hit[i],
            }),
        }
    }
    if to < orig.len() {
        out.push(Fragment {
            text: "…".into(),
            hit: false,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue13_chinese_is_cut_into_bigrams_and_single_characters() {
        assert_eq!(
            tokens("垃圾分类，5G基站"),
            (
                "垃圾 圾分 分类 \u{E000} 5g 基站".to_string(),
                "垃 圾 分 类 基 站".to_string()
            )
        );
        assert_eq!(
            tokens(" ＡＢＣ１２３ 养。"),
            ("abc123 \u{E000} 养".into(), "养".into())
        );
    }

    #[test]
    fn issue13_queries_become_quoted_phrases_without_fts_syntax() {
        let p = parse("养老 垃圾分类").unwrap();
        assert_eq!(
            p.expr,
            r#"{title body} : "养老" AND {title body} : "垃圾 圾分 分类""#
        );
        assert_eq!(parse("5G基站").unwrap().expr, r#"{title body} : "5g 基站""#);
        assert_eq!(parse("桥").unwrap().expr, r#"{title1 body1} : "桥""#);
        assert_eq!(
            parse("A股").unwrap().expr,
            r#"{title body} : "a" AND {title1 body1} : "股""#
        );
        // Quotes, stars, colons and parentheses are separators, never syntax.
        assert_eq!(
            parse(r#"养老" OR title:*"#).unwrap().expr,
            r#"{title body} : "养老" AND {title body} : "or" AND {title body} : "title""#
        );
        assert_eq!(parse(" ，。!* "), None);
    }

    #[test]
    fn issue13_snippets_mark_hits_around_the_first_one() {
        let needles = parse("养老 5G").unwrap().needles;
        let f = mark("社区养老服务站用上5G网络，不是45g", &needles, None);
        let hits: Vec<&str> = f
            .iter()
            .filter(|f| f.hit)
            .map(|f| f.text.as_str())
            .collect();
        assert_eq!(hits, ["养老", "5G"], "{f:?}");
        let long = format!("{}养老{}", "前".repeat(50), "后".repeat(200));
        let f = mark(&long, &needles, Some(SNIPPET_CHARS));
        assert_eq!(f[0].text, "…");
        assert_eq!(f.last().unwrap().text, "…");
        let shown: String = f[1..f.len() - 1].iter().map(|f| f.text.as_str()).collect();
        assert_eq!(shown.chars().count(), SNIPPET_CHARS);
        assert!(shown.starts_with(&"前".repeat(SNIPPET_BEFORE)));
    }
}
