//! The record-import format: records as JSON, one per line, and sets of them in a folder.
//!
//! This is what `sanjin device import`, `sanjin admin import-directory` / `import-records`, the
//! demo and the server's bulk import read, and what the test-data generator (`sanjin-fixtures`)
//! writes. An [`ImportRecord`] is one record with its author, time and workflow events; it
//! becomes the same automerge document byte for byte wherever it is imported
//! ([`ImportRecord::to_doc`], under the fixed actor [`IMPORT_ACTOR`]), so stores that imported
//! the same file merge cleanly.
//!
//! A set ([`ImportSet`]) is a folder: `manifest.json` ([`Manifest`]) and one JSON-lines file per
//! kind ([`DIRECTORY_FILE`], [`VISITS_FILE`], …). Sans-IO like the rest of the core: the caller
//! reads the files (a `read` function from a path to its text); this module parses and checks
//! them, and every error names the file and the line ([`ImportError`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::{RecordData, RecordKind};
use crate::workflow::EventType;
use crate::{Author, Millis, RecordDoc};

/// The device imported records come from. Imports are deterministic: the same record becomes
/// byte-identical documents in every store that imports it, so such stores merge cleanly.
pub const IMPORT_DEVICE: &str = "import";
/// The automerge actor of [`IMPORT_DEVICE`] (reserved: no device may enroll with it).
pub const IMPORT_ACTOR: &[u8; 16] = b"sanjin-import-01";

/// One workflow event of a record: what happened, which member did it, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportEvent {
    pub event: EventType,
    /// A member id.
    pub by: String,
    /// Milliseconds since the Unix epoch.
    pub at_ms: Millis,
}

/// One record: its id, who created it and when, its workflow events in order, and its data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportRecord {
    pub id: String,
    /// A member id; the office (`office-01` in the test data) for directory entries.
    pub created_by: String,
    pub created_at_ms: Millis,
    #[serde(default)]
    pub events: Vec<ImportEvent>,
    pub data: RecordData,
}

impl ImportRecord {
    /// The record as a document: created by its author at its time, then taken through its
    /// events in order.
    pub fn to_doc(&self) -> Result<RecordDoc, crate::Error> {
        let author = Author::new(&self.created_by, IMPORT_DEVICE, IMPORT_ACTOR)?;
        let mut doc = RecordDoc::create(&self.id, &self.data, &author, self.created_at_ms)?;
        for e in &self.events {
            let by = Author::new(&e.by, IMPORT_DEVICE, IMPORT_ACTOR)?;
            doc.transition(&by, e.at_ms, e.event, None)?;
        }
        Ok(doc)
    }
}

/// The file names of a set, in the order they are written.
pub const MANIFEST_FILE: &str = "manifest.json";
pub const DIRECTORY_FILE: &str = "directory.jsonl";
pub const VISITS_FILE: &str = "visits.jsonl";
pub const OPINIONS_FILE: &str = "opinions.jsonl";
pub const HOUSEHOLDS_FILE: &str = "households.jsonl";
pub const PLANS_FILE: &str = "plans.jsonl";

/// A whole set of records, as a folder holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportSet {
    /// The generator's seed and scale (what `manifest.json` says).
    pub seed: u64,
    pub scale: u32,
    /// Chapters, committees, groups, contact points, members — in that order.
    pub directory: Vec<ImportRecord>,
    pub visits: Vec<ImportRecord>,
    pub opinions: Vec<ImportRecord>,
    pub households: Vec<ImportRecord>,
    pub plans: Vec<ImportRecord>,
}

/// How many records of each kind a set holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub chapter: usize,
    pub committee: usize,
    pub group: usize,
    pub contact_point: usize,
    pub member: usize,
    pub visit: usize,
    pub opinion: usize,
    pub household: usize,
    pub plan: usize,
    /// Units opinions are forwarded to (issue 13); absent from older manifests.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unit: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Counts {
    /// Counts one record of `kind`.
    pub fn add(&mut self, kind: RecordKind) {
        match kind {
            RecordKind::Chapter => self.chapter += 1,
            RecordKind::Committee => self.committee += 1,
            RecordKind::Group => self.group += 1,
            RecordKind::ContactPoint => self.contact_point += 1,
            RecordKind::Member => self.member += 1,
            RecordKind::Visit => self.visit += 1,
            RecordKind::Opinion => self.opinion += 1,
            RecordKind::Household => self.household += 1,
            RecordKind::Plan => self.plan += 1,
            RecordKind::Unit => self.unit += 1,
        }
    }

    /// Directory entries.
    pub fn directory(&self) -> usize {
        self.chapter + self.committee + self.group + self.contact_point + self.member + self.unit
    }
}

/// `manifest.json`: what a set holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub seed: u64,
    pub scale: u32,
    pub counts: Counts,
    /// Members who take part in no visit and record nothing (the coverage gaps).
    pub members_without_visits: Vec<String>,
}

/// Reading a set or a JSON-lines file failed: which file, which line, why.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line (or the manifest) is not valid JSON of the expected shape. `line` counts from 1.
    #[error("{}:{line}:{}: {}", path.display(), source.column(), without_position(source))]
    Parse {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    /// Well-formed but wrong: a record of the wrong kind in a file, an empty line, counts that
    /// disagree with the manifest. `line` is 0 when it concerns the whole file.
    #[error("{}:{line}: {reason}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// serde_json's message without its ` at line 1 column 40`: the file's line is given instead.
fn without_position(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    }
}

/// Parses the text of a JSON-lines file (`path` only names it in errors): one record per line,
/// no empty line, each of a kind that `fits` (`what` says what the file holds, for errors).
pub fn parse_lines(
    path: &Path,
    text: &str,
    fits: impl Fn(RecordKind) -> bool,
    what: &str,
) -> Result<Vec<ImportRecord>, ImportError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            return Err(ImportError::Invalid {
                path: path.to_path_buf(),
                line: line_no,
                reason: "empty line".into(),
            });
        }
        let record: ImportRecord =
            serde_json::from_str(line).map_err(|source| ImportError::Parse {
                path: path.to_path_buf(),
                line: line_no,
                source,
            })?;
        let kind = record.data.kind();
        if !fits(kind) {
            return Err(ImportError::Invalid {
                path: path.to_path_buf(),
                line: line_no,
                reason: format!("a {kind} record does not belong in a file of {what}"),
            });
        }
        out.push(record);
    }
    Ok(out)
}

/// Reads a JSON Lines file of records of any kind (what `sanjin device import` takes), its
/// text given by `read` (e.g. `|p| std::fs::read_to_string(p)`).
pub fn read_jsonl(
    path: &Path,
    read: impl FnOnce(&Path) -> std::io::Result<String>,
) -> Result<Vec<ImportRecord>, ImportError> {
    let text = read_text(path, read)?;
    parse_lines(path, &text, |_| true, "records")
}

fn read_text(
    path: &Path,
    read: impl FnOnce(&Path) -> std::io::Result<String>,
) -> Result<String, ImportError> {
    read(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

impl ImportSet {
    /// Reads the set in folder `dir`, each file's text given by `read` (e.g.
    /// `|p| std::fs::read_to_string(p)`). A line that is not a record of the file's kind is an
    /// error naming the file and the line; so are counts that disagree with the manifest.
    pub fn load(
        dir: &Path,
        mut read: impl FnMut(&Path) -> std::io::Result<String>,
    ) -> Result<ImportSet, ImportError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let text = read_text(&manifest_path, &mut read)?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|source| ImportError::Parse {
                line: source.line(),
                path: manifest_path.clone(),
                source,
            })?;
        let mut lines = |file: &str, fits: &dyn Fn(RecordKind) -> bool, what: &str| {
            let path = dir.join(file);
            let text = read_text(&path, &mut read)?;
            parse_lines(&path, &text, fits, what)
        };
        let only = |k: RecordKind| move |kind: RecordKind| kind == k;
        let set = ImportSet {
            seed: manifest.seed,
            scale: manifest.scale,
            directory: lines(
                DIRECTORY_FILE,
                &RecordKind::is_directory,
                "directory entries",
            )?,
            visits: lines(VISITS_FILE, &only(RecordKind::Visit), "visits")?,
            opinions: lines(OPINIONS_FILE, &only(RecordKind::Opinion), "opinion notes")?,
            households: lines(HOUSEHOLDS_FILE, &only(RecordKind::Household), "households")?,
            plans: lines(PLANS_FILE, &only(RecordKind::Plan), "plan items")?,
        };
        let found = set.manifest();
        if found.counts != manifest.counts {
            return Err(ImportError::Invalid {
                path: manifest_path,
                line: 0,
                reason: format!(
                    "the manifest's counts {:?} disagree with the files' {:?}",
                    manifest.counts, found.counts
                ),
            });
        }
        Ok(set)
    }

    /// Every record: the directory first, then visits, opinion notes, households and plan items.
    pub fn all(&self) -> impl Iterator<Item = &ImportRecord> {
        self.directory
            .iter()
            .chain(&self.visits)
            .chain(&self.opinions)
            .chain(&self.households)
            .chain(&self.plans)
    }

    /// Every field record (no directory entries): visits, opinion notes, households and plan
    /// items, taken out of the set.
    pub fn into_field_records(self) -> Vec<ImportRecord> {
        let mut out = self.visits;
        out.extend(self.opinions);
        out.extend(self.households);
        out.extend(self.plans);
        out
    }

    /// The counts and coverage gaps of this set, as written to `manifest.json`.
    pub fn manifest(&self) -> Manifest {
        let mut counts = Counts::default();
        for r in self.all() {
            counts.add(r.data.kind());
        }
        let mut with_visits = std::collections::BTreeSet::new();
        for r in &self.visits {
            if let RecordData::Visit(v) = &r.data {
                with_visits.extend(v.participants.iter().map(String::as_str));
            }
        }
        let members_without_visits = self
            .directory
            .iter()
            .filter(|r| r.data.kind() == RecordKind::Member && !with_visits.contains(r.id.as_str()))
            .map(|r| r.id.clone())
            .collect();
        Manifest {
            seed: self.seed,
            scale: self.scale,
            counts,
            members_without_visits,
        }
    }

    /// The leader of a group, by group id.
    pub fn leader_of(&self, group: &str) -> Option<&str> {
        self.directory
            .iter()
            .find(|r| r.id == group)
            .and_then(|r| match &r.data {
                RecordData::Group(g) => Some(g.leader.as_str()),
                _ => None,
            })
    }

    /// The members of a group, by id, in directory order.
    pub fn members_of(&self, group: &str) -> Vec<&str> {
        self.directory
            .iter()
            .filter(|r| matches!(&r.data, RecordData::Member(m) if m.group == group))
            .map(|r| r.id.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const CHAPTER: &str = r#"{"id":"chapter-city","created_by":"office-01","created_at_ms":1735779600000,"events":[],"data":{"kind":"chapter","name":"孝感市政协","level":"city","parent":null}}"#;

    /// An in-memory folder: the core never touches files.
    fn folder(files: &[(&str, String)]) -> impl FnMut(&Path) -> std::io::Result<String> {
        let files: BTreeMap<PathBuf, String> = files
            .iter()
            .map(|(name, text)| (Path::new("/set").join(name), text.clone()))
            .collect();
        move |p: &Path| {
            files
                .get(p)
                .cloned()
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        }
    }

    fn manifest(chapters: usize) -> String {
        let m = Manifest {
            seed: 7,
            scale: 1,
            counts: Counts {
                chapter: chapters,
                ..Counts::default()
            },
            members_without_visits: vec![],
        };
        serde_json::to_string(&m).unwrap()
    }

    fn set_files(directory: &str, chapters: usize) -> Vec<(&'static str, String)> {
        vec![
            (MANIFEST_FILE, manifest(chapters)),
            (DIRECTORY_FILE, directory.to_string()),
            (VISITS_FILE, String::new()),
            (OPINIONS_FILE, String::new()),
            (HOUSEHOLDS_FILE, String::new()),
            (PLANS_FILE, String::new()),
        ]
    }

    #[test]
    fn issue11_a_set_loads_from_any_reader() {
        let set = ImportSet::load(
            Path::new("/set"),
            folder(&set_files(&format!("{CHAPTER}\n"), 1)),
        )
        .unwrap();
        assert_eq!((set.seed, set.scale), (7, 1));
        assert_eq!(set.directory.len(), 1);
        assert_eq!(set.all().count(), 1);
        assert_eq!(set.manifest().counts.directory(), 1);
        assert!(set.into_field_records().is_empty());
        let doc = ImportSet::load(
            Path::new("/set"),
            folder(&set_files(&format!("{CHAPTER}\n"), 1)),
        )
        .unwrap()
        .directory[0]
            .to_doc()
            .unwrap();
        assert_eq!(doc.id(), "chapter-city");
    }

    #[test]
    fn issue11_errors_name_file_and_line() {
        let err = ImportSet::load(
            Path::new("/set"),
            folder(&set_files(&format!("{CHAPTER}\n{}\n", &CHAPTER[..40]), 2)),
        )
        .unwrap_err();
        assert!(
            matches!(&err, ImportError::Parse { line: 2, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("/set/directory.jsonl:2:40: EOF while parsing"),
            "{err}"
        );
        let err = ImportSet::load(
            Path::new("/set"),
            folder(&set_files(&format!("{CHAPTER}\n"), 2)),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("manifest.json:0: the manifest's counts"),
            "{err}"
        );
        let err = ImportSet::load(Path::new("/elsewhere"), folder(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "/elsewhere/manifest.json: {}",
                std::io::Error::from(std::io::ErrorKind::NotFound)
            )
        );
        let err = parse_lines(
            Path::new("v.jsonl"),
            &format!("{CHAPTER}\n"),
            |k| k == RecordKind::Visit,
            "visits",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "v.jsonl:1: a chapter record does not belong in a file of visits"
        );
        let err = read_jsonl(Path::new("r.jsonl"), |_| Ok(format!("{CHAPTER}\n\n"))).unwrap_err();
        assert_eq!(err.to_string(), "r.jsonl:2: empty line");
    }

    #[test]
    fn issue11_imported_documents_are_identical_everywhere() {
        let r: ImportRecord = serde_json::from_str(CHAPTER).unwrap();
        let mut a = r.to_doc().unwrap();
        let mut b = r.to_doc().unwrap();
        assert_eq!(a.save(), b.save());
        assert_eq!(IMPORT_ACTOR.len(), 16);
    }
}
