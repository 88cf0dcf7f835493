//! The machines driven with no IO at all: documents in memory, answers written by hand (or by
//! automerge itself for the fallback), one `check` per behaviour.

use std::collections::HashMap;

use sanjin_core::domain::RecordData;
use sanjin_core::protocol::{DocChanges, Refusal, RefusalCode, SyncRequest, SyncResponse};
use sanjin_core::{Author, ChangeHash, Edit, RecordDoc, testdata};

use crate::Progress;
use crate::device::{After, Commit, Config, Fault, Next, Read, Session};
use crate::fallback::{self, Fallback};

const T: i64 = 1_764_000_000_000;

fn author() -> Author {
    Author::new("member-0001", "device-1", &[1; 16]).unwrap()
}

fn visit(id: &str, title: &str) -> RecordDoc {
    let mut v = testdata::visit();
    v.title = title.into();
    RecordDoc::create(id, &RecordData::Visit(v), &author(), T).unwrap()
}

fn edit(doc: &mut RecordDoc, title: &str) {
    doc.edit(
        &author(),
        T + 1,
        &[Edit::Set {
            field: "title".into(),
            value: serde_json::json!(title),
        }],
    )
    .unwrap();
}

/// A device's documents and outbox, in memory.
#[derive(Default)]
struct Mem {
    docs: HashMap<String, Vec<u8>>,
    outbox: Vec<(String, Vec<ChangeHash>)>,
    refused: HashMap<String, Vec<ChangeHash>>,
}

impl Mem {
    fn put(&mut self, mut doc: RecordDoc) {
        let id = doc.id().to_string();
        self.docs.insert(id.clone(), doc.save_after(&[]));
        if !self.outbox.iter().any(|(x, _)| *x == id) {
            self.outbox.push((id, vec![]));
        }
    }

    fn read(&self, id: &str) -> Result<Read, ()> {
        Ok(Read::Doc {
            doc: Box::new(RecordDoc::load(&self.docs[id]).unwrap()),
            refused_at: self.refused.get(id).cloned(),
        })
    }

    fn plan(&self, s: &mut Session) -> crate::device::Plan {
        s.plan(self.outbox.clone(), |id| self.read(id)).unwrap()
    }

    /// What the store would do with a commit (acks drain the outbox when they cover it).
    fn commit(&mut self, c: &Commit) {
        for (id, heads) in &c.acks {
            let mut doc = RecordDoc::load(&self.docs[id]).unwrap();
            if crate::same_heads(&doc.heads(), heads) {
                self.outbox.retain(|(x, _)| x != id);
            } else if let Some(e) = self.outbox.iter_mut().find(|(x, _)| x == id) {
                e.1 = heads.clone();
            }
        }
        for r in &c.refusals {
            self.refused.insert(r.doc_id.clone(), r.heads.clone());
        }
    }
}

fn config(batch: usize) -> Config {
    Config {
        batch_limit_bytes: batch,
        max_response_bytes: 1 << 20,
    }
}

fn answer(req: &SyncRequest, acks: &[u32], cursor: u64, more: bool) -> SyncResponse {
    SyncResponse {
        request_id: req.request_id,
        epoch: [7; 16],
        cursor,
        more,
        acks: acks.to_vec(),
        ..SyncResponse::default()
    }
}

/// One round: plan, request, answer by `server`, commits; returns the request and what next.
fn round(
    mem: &mut Mem,
    s: &mut Session,
    id: u8,
    server: impl FnOnce(&SyncRequest) -> SyncResponse,
) -> (SyncRequest, After) {
    let plan = mem.plan(s);
    for (id, heads) in &plan.already_acked {
        mem.commit(&Commit {
            acks: vec![(id.clone(), heads.clone())],
            ..Commit::default()
        });
    }
    let req = s.request(plan.pushes, plan.pushed_heads, [id; 16]);
    let resp = server(&req);
    for c in s.on_response(&resp).unwrap() {
        mem.commit(&c);
    }
    let after = s.committed(Vec::new()).unwrap();
    (req, after)
}

fn outbox_ids(mem: &Mem) -> Vec<String> {
    mem.outbox.iter().map(|(x, _)| x.clone()).collect()
}

#[test]
fn issue11_batches_the_outbox_and_finishes_when_acked() {
    let mut mem = Mem::default();
    for i in 0..3 {
        mem.put(visit(&format!("rec-{i}"), &format!("走访 {i}")));
    }
    // A batch limit below one document: one document per request.
    let mut s = Session::new(config(10), [7; 16], 0, 3);
    let mut sent = Vec::new();
    for n in 0..3u8 {
        let (req, after) = round(&mut mem, &mut s, n + 1, |r| {
            answer(r, &[0], 1 + n as u64, false)
        });
        assert_eq!(after, After::Pulled);
        assert_eq!(req.pushes.len(), 1);
        sent.push(req.pushes[0].doc_id.clone());
        let ids = outbox_ids(&mem);
        let next = s.next(ids.iter().map(String::as_str)).unwrap();
        assert_eq!(next, if n < 2 { Next::Again } else { Next::Done });
    }
    assert_eq!(sent, ["rec-0", "rec-1", "rec-2"]);
    assert!(mem.outbox.is_empty());
    assert_eq!(s.tally().sent, 3);
    assert_eq!(s.position(), ([7; 16], 3));
    assert!(
        s.take_progress()
            .contains(&Progress::Pushing { done: 3, total: 3 })
    );
}

#[test]
fn issue11_one_request_holds_what_fits_and_the_cursor_is_committed_with_the_data() {
    let mut mem = Mem::default();
    for i in 0..3 {
        mem.put(visit(&format!("rec-{i}"), "走访"));
    }
    let mut s = Session::new(config(2 << 20), [0; 16], 0, 3);
    let plan = mem.plan(&mut s);
    let req = s.request(plan.pushes, plan.pushed_heads, [1; 16]);
    assert_eq!(req.pushes.len(), 3);
    assert_eq!((req.epoch, req.cursor), ([0; 16], 0));
    let mut resp = answer(&req, &[0, 1, 2], 9, false);
    resp.changes.push(DocChanges {
        doc_id: "rec-x".into(),
        changes: vec![1],
    });
    let commits = s.on_response(&resp).unwrap();
    // One transaction: acks, pulled changes and the position together.
    assert_eq!(commits.len(), 1);
    assert!(commits[0].pulled);
    assert_eq!(commits[0].acks.len(), 3);
    assert_eq!(commits[0].position, Some(([7; 16], 9)));
}

#[test]
fn issue11_refusals_are_remembered_and_missing_deps_resend_the_whole_document() {
    let mut mem = Mem::default();
    mem.put(visit("rec-a", "走访"));
    mem.put(visit("rec-b", "走访"));
    let mut d = RecordDoc::load(&mem.docs["rec-b"]).unwrap();
    let first = d.heads();
    edit(&mut d, "改");
    mem.docs.insert("rec-b".into(), d.save_after(&[]));
    // The server acknowledged rec-b's first change before: only the edit is pushed.
    mem.outbox[1].1 = first.clone();
    let mut s = Session::new(config(2 << 20), [7; 16], 0, 2);
    let (req, _) = round(&mut mem, &mut s, 1, |r| {
        let mut a = answer(r, &[], 1, false);
        a.refused.push(Refusal {
            doc_id: "rec-a".into(),
            code: RefusalCode::Forbidden,
            field: String::new(),
            reason: "no".into(),
        });
        a.refused.push(Refusal {
            doc_id: "rec-b".into(),
            code: RefusalCode::MissingDeps,
            field: String::new(),
            reason: "push the whole document".into(),
        });
        a
    });
    let small = req.pushes[1].changes.len();
    assert!(mem.refused.contains_key("rec-a"));
    assert!(
        !mem.refused.contains_key("rec-b"),
        "missing deps is no refusal to remember"
    );
    let ids = outbox_ids(&mem);
    assert_eq!(s.next(ids.iter().map(String::as_str)).unwrap(), Next::Again);
    // Next round: rec-a is not pushed again; rec-b goes whole.
    let (req, _) = round(&mut mem, &mut s, 2, |r| answer(r, &[0], 2, false));
    assert_eq!(req.pushes.len(), 1);
    assert_eq!(req.pushes[0].doc_id, "rec-b");
    assert!(req.pushes[0].changes.len() > small);
    let ids = outbox_ids(&mem);
    assert_eq!(s.next(ids.iter().map(String::as_str)).unwrap(), Next::Done);
    assert_eq!(s.tally().refused.len(), 1);
    // A new sync skips rec-a while it stays at the refused heads.
    let mut s = Session::new(config(2 << 20), [7; 16], 2, 1);
    let plan = mem.plan(&mut s);
    assert!(plan.pushes.is_empty());
    assert!(s.handled("rec-a"));
}

#[test]
fn issue11_a_document_already_acked_leaves_without_a_push() {
    let mut mem = Mem::default();
    mem.put(visit("rec-a", "走访"));
    let heads = RecordDoc::load(&mem.docs["rec-a"]).unwrap().heads();
    mem.outbox[0].1 = heads.clone();
    let mut s = Session::new(config(2 << 20), [7; 16], 0, 1);
    let plan = mem.plan(&mut s);
    assert!(plan.pushes.is_empty());
    assert_eq!(plan.already_acked, vec![("rec-a".to_string(), heads)]);
}

#[test]
fn issue11_protocol_errors_stuck_cursor_double_resync_foreign_answer() {
    let mut mem = Mem::default();
    let mut s = Session::new(config(1 << 20), [7; 16], 5, 0);
    // "More" with a cursor that did not move, and nothing pushed: stuck.
    round(&mut mem, &mut s, 1, |r| answer(r, &[], 5, true));
    assert_eq!(
        s.next(std::iter::empty()).unwrap_err().0,
        "the server said more changes wait but its cursor did not move"
    );
    // An answer to another request.
    let mut s = Session::new(config(1 << 20), [7; 16], 0, 0);
    let req = s.request(vec![], vec![], [1; 16]);
    let mut resp = answer(&req, &[], 0, false);
    resp.request_id = [2; 16];
    assert!(s.on_response(&resp).is_err());
    // An ack of a push never sent.
    let mut s = Session::new(config(1 << 20), [7; 16], 0, 0);
    let req = s.request(vec![], vec![], [1; 16]);
    assert!(s.on_response(&answer(&req, &[0], 0, false)).is_err());
    // Resync, the fallback, then resync again.
    let mut s = Session::new(config(1 << 20), [1; 16], 3, 0);
    let resync = |r: &SyncRequest| SyncResponse {
        resync: true,
        ..answer(r, &[], 40, false)
    };
    let (_, after) = round(&mut mem, &mut s, 1, resync);
    assert_eq!(
        after,
        After::Fallback {
            epoch: [7; 16],
            cursor: 40
        }
    );
    assert_eq!(s.fallback_done().position, Some(([7; 16], 0)));
    let plan = mem.plan(&mut s);
    let req = s.request(plan.pushes, plan.pushed_heads, [2; 16]);
    s.on_response(&resync(&req)).unwrap();
    assert_eq!(
        s.committed(Vec::new()).unwrap_err().0,
        "the server asked for a resync again right after one"
    );
}

#[test]
fn issue11_the_broken_engine_commits_the_cursor_before_the_data() {
    let mut s = Session::new(config(1 << 20), [7; 16], 0, 0);
    s.inject(Fault::CursorBeforeData);
    let req = s.request(vec![], vec![], [1; 16]);
    let commits = s.on_response(&answer(&req, &[], 9, false)).unwrap();
    assert_eq!(commits.len(), 2);
    assert_eq!(commits[0].position, Some(([7; 16], 9)));
    assert!(!commits[0].pulled);
    assert!(commits[1].pulled);
}

/// The fallback of a device against automerge's own sync on the other side, until settled.
#[test]
fn issue11_fallback_settles_two_diverged_replicas() {
    let mut ours = visit("rec-a", "走访");
    let mut theirs = RecordDoc::load(&ours.save_after(&[])).unwrap();
    edit(&mut ours, "我们的");
    let other = Author::new("member-0002", "device-2", &[2; 16]).unwrap();
    theirs
        .edit(
            &other,
            T + 2,
            &[Edit::Set {
                field: "summary".into(),
                value: serde_json::json!("他们的"),
            }],
        )
        .unwrap();
    let mut store: HashMap<String, Vec<u8>> = HashMap::new();
    store.insert("rec-a".into(), ours.save_after(&[]));
    let read = |store: &HashMap<String, Vec<u8>>, id: &str| -> Result<fallback::Read, ()> {
        Ok(match store.get(id) {
            Some(b) => fallback::Read::Doc(Box::new(RecordDoc::load(b).unwrap())),
            None => fallback::Read::Missing,
        })
    };
    let mut fb = Fallback::new(vec!["rec-a".into()], Vec::new(), [7; 16], 12, 1 << 20);
    let mut server_state = automerge::sync::State::new();
    let mut n = 0u8;
    while !fb.settled() {
        n += 1;
        assert!(n < 20, "the fallback does not settle");
        let (req, _) = fb.next_request([n; 16], |id| read(&store, id)).unwrap();
        let Some(req) = req else { break };
        assert_eq!(
            (req.epoch, req.cursor, req.max_response_bytes),
            ([7; 16], 12, 1)
        );
        let mut resp = SyncResponse {
            request_id: req.request_id,
            ..SyncResponse::default()
        };
        for m in &req.am_sync {
            let msg = automerge::sync::Message::decode(&m.message).unwrap();
            theirs.receive_sync_message(&mut server_state, msg).unwrap();
            if let Some(out) = theirs.generate_sync_message(&mut server_state) {
                resp.am_sync.push(sanjin_core::protocol::DocSync {
                    doc_id: m.doc_id.clone(),
                    message: out.encode(),
                });
            }
        }
        let answer = fb.on_response(resp, |id| read(&store, id)).unwrap();
        for (id, bytes) in answer.apply {
            let mut d = RecordDoc::load(&store[&id]).unwrap();
            d.apply_changes(&bytes).unwrap();
            store.insert(id, d.save_after(&[]));
        }
    }
    let mut ours = RecordDoc::load(&store["rec-a"]).unwrap();
    assert!(crate::same_heads(&ours.heads(), &theirs.heads()));
}

#[test]
fn issue11_pull_plan_and_envelope() {
    use crate::server::{Pull, check_envelope, plan_pull};
    let req = |epoch, cursor, max| SyncRequest {
        epoch,
        cursor,
        max_response_bytes: max,
        ..SyncRequest::default()
    };
    assert_eq!(
        plan_pull(&req([7; 16], 3, 0), [7; 16], Some(3), 9, 100, 1000),
        Pull::From {
            seq: 3,
            budget: 100
        }
    );
    assert_eq!(
        plan_pull(&req([7; 16], 3, 5000), [7; 16], Some(3), 9, 100, 1000),
        Pull::From {
            seq: 3,
            budget: 1000
        }
    );
    // A device that never synced is welcome; another epoch, an unknown or future cursor is not.
    assert!(matches!(
        plan_pull(&req([0; 16], 0, 1), [7; 16], Some(0), 9, 100, 1000),
        Pull::From { .. }
    ));
    assert_eq!(
        plan_pull(&req([1; 16], 3, 1), [7; 16], Some(3), 9, 100, 1000),
        Pull::Resync
    );
    assert_eq!(
        plan_pull(&req([7; 16], 3, 1), [7; 16], None, 9, 100, 1000),
        Pull::Resync
    );
    assert_eq!(
        plan_pull(&req([7; 16], 30, 1), [7; 16], Some(30), 9, 100, 1000),
        Pull::Resync
    );
    assert_eq!(
        check_envelope("bad id!", b"", 10).unwrap_err().0,
        RefusalCode::Malformed
    );
    assert_eq!(
        check_envelope("rec-a", &[0; 11], 10).unwrap_err().2,
        "11 bytes of changes; the server accepts at most 10 per document"
    );
}

#[test]
fn issue11_same_heads_ignores_order() {
    let mut a = visit("rec-a", "走访");
    let mut b = RecordDoc::load(&a.save_after(&[])).unwrap();
    edit(&mut a, "甲");
    let other = Author::new("member-0002", "device-2", &[2; 16]).unwrap();
    b.edit(
        &other,
        T + 2,
        &[Edit::Set {
            field: "summary".into(),
            value: serde_json::json!("乙"),
        }],
    )
    .unwrap();
    a.merge(&mut b).unwrap();
    let heads = a.heads();
    assert_eq!(heads.len(), 2);
    let reversed: Vec<ChangeHash> = heads.iter().rev().copied().collect();
    assert!(crate::same_heads(&heads, &reversed));
    assert!(!crate::same_heads(&heads, &heads[..1]));
}

/// The server's push policy over facts held in memory.
mod policy {
    use std::collections::HashMap;

    use automerge::AutoCommit;
    use sanjin_core::domain::RecordKind;
    use sanjin_core::protocol::RefusalCode;
    use sanjin_core::workflow::EventType;
    use sanjin_core::{ChangeHash, RecordDoc};

    use super::{T, author, edit, visit};
    use crate::server::{Author, Changes, Facts, Refused, Writer, judge_changes, judge_record};

    #[derive(Clone, Debug)]
    struct Acct {
        member: String,
        group: String,
    }

    impl Writer for Acct {
        fn member(&self) -> &str {
            &self.member
        }
        fn role(&self) -> String {
            "member".into()
        }
        fn may_write(&self, kind: RecordKind, group: Option<&str>) -> bool {
            !kind.is_directory() && group == Some(self.group.as_str())
        }
    }

    struct Mem(HashMap<String, Author<Acct>>);

    impl Facts for Mem {
        type Account = Acct;
        type Error = ();
        fn author(&mut self, actor: &str) -> Result<Option<Author<Acct>>, ()> {
            Ok(self.0.get(actor).cloned())
        }
        fn may_review(&mut self, _: &Acct, _: Option<&str>, _: Option<&str>) -> Result<bool, ()> {
            Ok(false)
        }
    }

    fn facts(group: &str, revoked: bool) -> Mem {
        let mut m = HashMap::new();
        m.insert(
            hex(&[1; 16]),
            Author {
                device: "device-1".into(),
                revoked,
                account: Acct {
                    member: "member-0001".into(),
                    group: group.into(),
                },
            },
        );
        Mem(m)
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Judges a push of `doc` (all its changes) to a server without it.
    fn judge(facts: &mut Mem, doc: &mut RecordDoc, signed: bool) -> (Changes, AutoCommit) {
        let pusher = facts.0.values().next().map_or(
            Acct {
                member: "member-0001".into(),
                group: "group-01".into(),
            },
            |a| a.account.clone(),
        );
        let mut am = AutoCommit::new();
        am.load_incremental(&doc.save_after(&[])).unwrap();
        let yes = |_: &ChangeHash, _: &str| true;
        let no = |_: &ChangeHash, _: &str| false;
        let sig: &dyn Fn(&ChangeHash, &str) -> bool = if signed { &yes } else { &no };
        let out = judge_changes(facts, &pusher, &mut am, false, &[], None, 100, sig).unwrap();
        (out, am)
    }

    fn refusal(c: Changes) -> Refused {
        match c {
            Changes::Refused(r) => r,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn issue11_policy_lands_a_signed_record_of_the_pushers_group() {
        let mut f = facts("group-01", false);
        let mut doc = visit("rec-a", "走访");
        edit(&mut doc, "改");
        let (out, am) = judge(&mut f, &mut doc, true);
        let Changes::All { changes, owners } = out else {
            panic!("not all landed: {out:?}")
        };
        assert_eq!(changes.len(), 2);
        assert!(owners.values().all(|d| d == "device-1"));
        let pusher = f.0.values().next().unwrap().account.clone();
        let (mut rec, landing) =
            judge_record(&mut f, &pusher, "rec-a", am, None, &changes, false, T)
                .unwrap()
                .unwrap();
        assert!(
            landing.log_whole,
            "a record new to the server is logged whole"
        );
        assert!(crate::same_heads(&landing.heads, &rec.heads()));
        assert_eq!(landing.after.group.as_deref(), Some("group-01"));
        // A step dated more than a day after the server's clock: refused.
        doc.transition(&author(), T + 10, EventType::Submit, None)
            .unwrap();
        let (out, am) = judge(&mut f, &mut doc, true);
        let Changes::All { changes, .. } = out else {
            panic!()
        };
        let early = T - 2 * 24 * 3600 * 1000;
        let r = judge_record(&mut f, &pusher, "rec-a", am, None, &changes, false, early)
            .unwrap()
            .unwrap_err();
        assert_eq!((r.0, r.1.as_str()), (RefusalCode::InvalidField, "status"));
    }

    #[test]
    fn issue11_policy_refuses_each_change_with_the_servers_words() {
        let mut doc = visit("rec-a", "走访");
        // Another group's record.
        let r = refusal(judge(&mut facts("group-02", false), &mut doc, true).0);
        assert_eq!(r.0, RefusalCode::Forbidden);
        assert_eq!(
            r.2,
            "member-0001 (member) may not write a visit of group group-01"
        );
        // Unsigned.
        let r = refusal(judge(&mut facts("group-01", false), &mut doc, false).0);
        assert_eq!(r.0, RefusalCode::BadSignature);
        assert!(r.2.ends_with("no valid signature by device device-1, whose actor made it"));
        // Revoked.
        let r = refusal(judge(&mut facts("group-01", true), &mut doc, true).0);
        assert_eq!(r.0, RefusalCode::Revoked);
        // No enrolled device for the actor.
        let r = refusal(judge(&mut Mem(HashMap::new()), &mut doc, true).0);
        assert_eq!(r.0, RefusalCode::ForeignActor);
        assert!(r.2.contains("which is no enrolled device"));
    }

    #[test]
    fn issue11_policy_missing_deps_and_partial_landing() {
        let mut f = facts("group-01", false);
        let mut doc = visit("rec-a", "走访");
        let first = doc.heads();
        edit(&mut doc, "改");
        // Only the edit, to a server without the record: missing dependencies.
        let pusher = f.0.values().next().unwrap().account.clone();
        let mut am = AutoCommit::new();
        am.load_incremental(&doc.save_after(&first)).unwrap();
        let yes = |_: &ChangeHash, _: &str| true;
        let r =
            refusal(judge_changes(&mut f, &pusher, &mut am, false, &[], None, 10, &yes).unwrap());
        assert_eq!(r.0, RefusalCode::MissingDeps);
        // The edit made by an unknown device on top of a good record: the record lands alone.
        let mut doc = visit("rec-b", "走访");
        let other = sanjin_core::Author::new("member-0001", "device-9", &[9; 16]).unwrap();
        doc.edit(
            &other,
            T + 5,
            &[sanjin_core::Edit::Set {
                field: "title".into(),
                value: serde_json::json!("别人"),
            }],
        )
        .unwrap();
        let (out, _) = judge(&mut f, &mut doc, true);
        let Changes::Some { kept, refusal, .. } = out else {
            panic!("not partial: {out:?}")
        };
        assert_eq!(kept.len(), 1);
        assert_eq!(refusal.0, RefusalCode::ForeignActor);
        assert!(refusal.2.starts_with("change "));
    }
}
