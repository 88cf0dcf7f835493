//! Property test (issue 2): 3–5 replicas, each its own SQLite store, make random edits and merge
//! in random orders. After everyone has merged with everyone, all replicas hold identical
//! documents and identical index rows, and no change that a save returned is missing.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sanjin_core::domain::RecordData;
use sanjin_core::rules::{Signer, message_author};
use sanjin_core::workflow::EventType;
use sanjin_core::{ChangeHash, Edit, testdata};
use sanjin_store::{Durability, Identity, META_ROLE, Store};
use serde_json::json;

#[derive(Debug, Clone)]
enum Op {
    Create {
        replica: usize,
    },
    Title {
        replica: usize,
        target: usize,
        title: usize,
    },
    End {
        replica: usize,
        target: usize,
        hours: u32,
    },
    Summary {
        replica: usize,
        target: usize,
        at: usize,
        text: usize,
    },
    AddParticipant {
        replica: usize,
        target: usize,
        member: usize,
    },
    RemoveParticipant {
        replica: usize,
        target: usize,
        member: usize,
    },
    Step {
        replica: usize,
        target: usize,
        step: usize,
    },
    Delete {
        replica: usize,
        target: usize,
    },
    Merge {
        from: usize,
        to: usize,
    },
}

const TITLES: [&str; 4] = ["入户走访", "政策宣讲", "调研座谈会", "接待日"];
const SNIPPETS: [&str; 4] = ["村民", "道路硬化", "，", "饮水"];
const STEPS: [EventType; 3] = [EventType::Submit, EventType::Approve, EventType::Return];

fn op() -> impl Strategy<Value = Op> {
    let r = 0..5usize;
    let t = 0..8usize;
    prop_oneof![
        2 => r.clone().prop_map(|replica| Op::Create { replica }),
        2 => (r.clone(), t.clone(), 0..4usize).prop_map(|(replica, target, title)| Op::Title { replica, target, title }),
        2 => (r.clone(), t.clone(), 0..6u32).prop_map(|(replica, target, hours)| Op::End { replica, target, hours }),
        2 => (r.clone(), t.clone(), 0..50usize, 0..4usize)
            .prop_map(|(replica, target, at, text)| Op::Summary { replica, target, at, text }),
        1 => (r.clone(), t.clone(), 0..5usize)
            .prop_map(|(replica, target, member)| Op::AddParticipant { replica, target, member }),
        1 => (r.clone(), t.clone(), 0..5usize)
            .prop_map(|(replica, target, member)| Op::RemoveParticipant { replica, target, member }),
        1 => (r.clone(), t.clone(), 0..3usize).prop_map(|(replica, target, step)| Op::Step { replica, target, step }),
        1 => (r.clone(), t.clone()).prop_map(|(replica, target)| Op::Delete { replica, target }),
        3 => (r.clone(), r).prop_map(|(from, to)| Op::Merge { from, to }),
    ]
}

struct Replicas {
    _dir: tempfile::TempDir,
    stores: Vec<Store>,
    paths: Vec<std::path::PathBuf>,
    /// Every change hash a successful save returned, by record id.
    saved: BTreeMap<String, Vec<ChangeHash>>,
    created: usize,
}

impl Replicas {
    fn new(n: usize) -> Replicas {
        let dir = tempfile::tempdir().unwrap();
        let mut stores = Vec::new();
        let mut paths = Vec::new();
        for i in 0..n {
            let path = dir.path().join(format!("replica-{i}.sqlite"));
            let identity = Identity {
                member: format!("member-000{}", i + 1),
                device: format!("device-{i}"),
                actor: vec![i as u8 + 1; 16],
            };
            let mut store = Store::init(&path, &identity, Durability::Normal).unwrap();
            // Convergence, not authorization, is under test: every replica's member may settle
            // conflicts and take review steps (issue 10 refuses them to members).
            store.set_meta(META_ROLE, Some("staff")).unwrap();
            stores.push(store);
            paths.push(path);
        }
        Replicas {
            _dir: dir,
            stores,
            paths,
            saved: BTreeMap::new(),
            created: 0,
        }
    }

    /// Merges `from` into `to`, every author a reviewer (see [`Replicas::new`]).
    fn merge(&mut self, from: usize, to: usize) -> sanjin_store::MergeReport {
        let path = self.paths[from].clone();
        let everyone_reviews = |c: &automerge::Change, _: Option<&str>| {
            let (member, device) = message_author(c)?;
            Some(Signer {
                member,
                device,
                reviewer: true,
            })
        };
        self.stores[to]
            .merge_from_with(&path, &everyone_reviews)
            .unwrap()
    }

    fn ids(&self, replica: usize) -> Vec<String> {
        self.stores[replica]
            .ids()
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    fn apply(&mut self, op: &Op, now: i64) {
        let n = self.stores.len();
        let edit = |s: &mut Self, replica: usize, target: usize, edits: Vec<Edit>| {
            let replica = replica % n;
            let ids = s.ids(replica);
            if ids.is_empty() {
                return;
            }
            let id = ids[target % ids.len()].clone();
            if let Ok((hash, _)) =
                s.stores[replica].update(&id, |doc, by| doc.edit(by, now, &edits))
            {
                s.saved.entry(id).or_default().push(hash);
            }
        };
        match op {
            Op::Create { replica } => {
                let replica = replica % n;
                let id = format!("v-{}", self.created);
                self.created += 1;
                let author = self.stores[replica].author();
                let mut doc = sanjin_core::RecordDoc::create(
                    &id,
                    &RecordData::Visit(testdata::visit()),
                    &author,
                    now,
                )
                .unwrap();
                self.stores[replica].insert(&mut doc, true).unwrap();
                self.saved.entry(id).or_default().extend(doc.heads());
            }
            Op::Title {
                replica,
                target,
                title,
            } => edit(
                self,
                *replica,
                *target,
                vec![Edit::Set {
                    field: "title".into(),
                    value: json!(TITLES[*title]),
                }],
            ),
            Op::End {
                replica,
                target,
                hours,
            } => edit(
                self,
                *replica,
                *target,
                // Some of these end before the start and must be refused.
                vec![Edit::Set {
                    field: "end".into(),
                    value: json!(format!("2026-05-19T{:02}:00:00", 7 + hours)),
                }],
            ),
            Op::Summary {
                replica,
                target,
                at,
                text,
            } => {
                let replica = *replica % n;
                let ids = self.ids(replica);
                if ids.is_empty() {
                    return;
                }
                let id = ids[target % ids.len()].clone();
                let current = match self.stores[replica].load(&id).unwrap().data().unwrap() {
                    RecordData::Visit(v) => v.summary,
                    _ => unreachable!(),
                };
                let chars: Vec<char> = current.chars().collect();
                let at = at % (chars.len() + 1);
                let new: String = chars[..at]
                    .iter()
                    .chain(SNIPPETS[*text].chars().collect::<Vec<_>>().iter())
                    .chain(chars[at..].iter())
                    .collect();
                edit(
                    self,
                    replica,
                    *target,
                    vec![Edit::Set {
                        field: "summary".into(),
                        value: json!(new),
                    }],
                )
            }
            Op::AddParticipant {
                replica,
                target,
                member,
            } => edit(
                self,
                *replica,
                *target,
                vec![Edit::Add {
                    field: "participants".into(),
                    element: json!(format!("member-000{member}")),
                }],
            ),
            Op::RemoveParticipant {
                replica,
                target,
                member,
            } => edit(
                self,
                *replica,
                *target,
                vec![Edit::Remove {
                    field: "participants".into(),
                    key: format!("member-000{member}"),
                }],
            ),
            Op::Step {
                replica,
                target,
                step,
            } => {
                let replica = *replica % n;
                let ids = self.ids(replica);
                if ids.is_empty() {
                    return;
                }
                let id = ids[target % ids.len()].clone();
                let store = &mut self.stores[replica];
                if store
                    .update(&id, |doc, by| doc.transition(by, now, STEPS[*step], None))
                    .is_ok()
                {
                    let h = store.load(&id).unwrap().heads();
                    self.saved.entry(id).or_default().extend(h);
                }
            }
            Op::Delete { replica, target } => {
                let replica = *replica % n;
                let ids = self.ids(replica);
                if ids.is_empty() {
                    return;
                }
                let id = ids[target % ids.len()].clone();
                if let Ok((hash, _)) =
                    self.stores[replica].update(&id, |doc, by| doc.delete(by, now, None))
                {
                    self.saved.entry(id).or_default().push(hash);
                }
            }
            Op::Merge { from, to } => {
                let (from, to) = (from % n, to % n);
                if from != to {
                    let report = self.merge(from, to);
                    assert!(report.skipped.is_empty(), "{report:?}");
                }
            }
        }
    }

    fn merge_everything(&mut self) {
        let n = self.stores.len();
        for from in 1..n {
            let report = self.merge(from, 0);
            assert!(report.skipped.is_empty(), "{report:?}");
        }
        for to in 1..n {
            let report = self.merge(0, to);
            assert!(report.skipped.is_empty(), "{report:?}");
        }
    }
}

fn check(ops: Vec<Op>, n: usize) {
    let mut r = Replicas::new(n);
    for (i, op) in ops.iter().enumerate() {
        r.apply(op, 1_700_000_000_000 + i as i64);
    }
    r.merge_everything();
    let ids = r.ids(0);
    assert_eq!(
        ids.len(),
        r.created,
        "every created record reached replica 0"
    );
    for id in &ids {
        let mut first = r.stores[0].load(id).unwrap();
        let view = serde_json::to_value(first.view().unwrap()).unwrap();
        let row = r.stores[0].index_entry(id).unwrap();
        let mut heads = first.heads();
        heads.sort();
        for hash in r.saved.get(id).into_iter().flatten() {
            assert!(first.has_change(hash), "a saved change of {id} disappeared");
        }
        for i in 1..n {
            assert_eq!(r.ids(i), ids, "replica {i} holds the same records");
            let mut other = r.stores[i].load(id).unwrap();
            let mut other_heads = other.heads();
            other_heads.sort();
            assert_eq!(
                other_heads, heads,
                "replica {i} has the same changes of {id}"
            );
            assert_eq!(
                serde_json::to_value(other.view().unwrap()).unwrap(),
                view,
                "replica {i} shows {id} alike"
            );
            assert_eq!(
                r.stores[i].index_entry(id).unwrap(),
                row,
                "replica {i} indexes {id} alike"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge(n in 3..=5usize, ops in proptest::collection::vec(op(), 1..40)) {
        check(ops, n);
    }
}

/// Two devices edit the same field concurrently, a third merges: the conflict is in every index.
#[test]
fn concurrent_edits_conflict_the_same_everywhere() {
    let ops = vec![
        Op::Create { replica: 0 },
        Op::Merge { from: 0, to: 1 },
        Op::Title {
            replica: 0,
            target: 0,
            title: 1,
        },
        Op::Title {
            replica: 1,
            target: 0,
            title: 2,
        },
    ];
    let mut r = Replicas::new(3);
    for (i, op) in ops.iter().enumerate() {
        r.apply(op, 1_700_000_000_000 + i as i64);
    }
    r.merge_everything();
    for i in 0..3 {
        let row = r.stores[i].index_entry("v-0").unwrap().unwrap();
        assert_eq!(row.conflicts, 1, "replica {i}");
    }
    check(ops, 3);
}
