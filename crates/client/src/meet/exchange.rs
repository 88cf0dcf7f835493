//! The exchange once both devices are verified: summaries, then the joiner's bundle parts of
//! what the leader lacks, then the leader's parts of what the joiner lacks, each imported with
//! the same checks as any bundle; then, by policy, photo originals the same way. Half duplex
//! (one side sends while the other reads), so neither side can block the other on a full
//! buffer.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Mutex, PoisonError};

use automerge::ChangeHash;
use sanjin_core::sign::DeviceCert;
use sanjin_store::{Selection, Store};

use super::MeetError;
use super::MeetStep;
use super::wire::{Bytes, Msg, decode_summary, encode_summary, recv, send};

/// Who was on the other end (from its verified certificate; the member id, never a name).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Peer {
    pub member: String,
    pub device: String,
    pub role: String,
    pub group: Option<String>,
}

impl Peer {
    pub(crate) fn of(c: &DeviceCert) -> Peer {
        Peer {
            member: c.member.clone(),
            device: c.device.clone(),
            role: c.role.clone(),
            group: c.group.clone(),
        }
    }
}

/// A record the receiving side refused, with the reason in Chinese (names the field).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RefusedDoc {
    pub doc_id: String,
    pub reason: String,
}

/// A record that became conflicted: concurrent edits of the same field on two phones.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConflictDoc {
    pub doc_id: String,
    /// The conflicted fields (`status` for a contested workflow state).
    pub fields: Vec<String>,
}

/// One side's account of one exchange.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ExchangeReport {
    pub peer: Peer,
    /// Records sent to the other side (documents with changes it lacked).
    pub sent: usize,
    /// Records that arrived and landed here (new or changed).
    pub landed: usize,
    /// Records that arrived and were refused here.
    pub refused: Vec<RefusedDoc>,
    /// Records that became conflicted by this import, with the conflicted fields.
    pub conflicts: Vec<ConflictDoc>,
    /// What the other side reported of its own import.
    pub peer_landed: u32,
    pub peer_refused: u32,
    pub originals_sent: usize,
    pub originals_received: usize,
    pub parts_sent: usize,
    pub parts_received: usize,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// The outcome of importing one batch of parts.
#[derive(Debug, Default)]
pub(crate) struct Imported {
    pub landed: usize,
    pub refused: Vec<RefusedDoc>,
    pub conflicts: Vec<ConflictDoc>,
    pub originals: usize,
}

fn send_parts<S: Read + Write>(
    s: &mut S,
    bytes: &mut Bytes,
    parts: &[Vec<u8>],
    step: &mut dyn FnMut(MeetStep),
) -> Result<(), MeetError> {
    for (i, p) in parts.iter().enumerate() {
        step(MeetStep::Sending {
            done: i,
            total: parts.len(),
        });
        send(s, &Msg::Part(p.clone()), bytes)?;
    }
    send(s, &Msg::Done, bytes)
}

/// Lands one received part into the running account.
type Land<'a> = dyn FnMut(&[u8], &mut Imported) -> Result<(), MeetError> + 'a;

/// Receives the other side's parts until `Done` and lands each as it arrives: a reader thread
/// takes the frames off the connection while this one imports, so the link keeps carrying
/// the next parts during an import. The number of parts received.
fn recv_and_import<S: Read + Write + Send>(
    s: &mut S,
    bytes: &mut Bytes,
    step: &mut dyn FnMut(MeetStep),
    land: &mut Land<'_>,
) -> Result<(Imported, usize), MeetError> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<u8>, MeetError>>(8);
    std::thread::scope(|sc| {
        sc.spawn(move || {
            loop {
                let item = match recv(s, bytes) {
                    Ok(Msg::Part(p)) => Ok(p),
                    Ok(Msg::Done) => return,
                    Ok(_) => Err(MeetError::Protocol("unexpected message among bundle parts")),
                    Err(e) => Err(e),
                };
                let last = item.is_err();
                if tx.send(item).is_err() || last {
                    return;
                }
            }
        });
        let mut out = Imported::default();
        let mut n = 0;
        let mut failed = None;
        // Until the reader ends (`Done`, an error): after a failure the rest is drained, not
        // imported.
        for item in rx {
            match item {
                Ok(p) => {
                    n += 1;
                    step(MeetStep::Receiving { parts: n });
                    if failed.is_none()
                        && let Err(e) = land(&p, &mut out)
                    {
                        failed = Some(e);
                    }
                }
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok((out, n)),
        }
    })
}

fn expect_report<S: Read + Write>(s: &mut S, bytes: &mut Bytes) -> Result<(u32, u32), MeetError> {
    match recv(s, bytes)? {
        Msg::Report { landed, refused } => Ok((landed, refused)),
        _ => Err(MeetError::Protocol(
            "unexpected message instead of the import report",
        )),
    }
}

fn report_of(i: &Imported) -> Msg {
    Msg::Report {
        landed: i.landed as u32,
        refused: i.refused.len() as u32,
    }
}

/// The joiner's exchange.
pub(crate) fn joiner<S: Read + Write + Send>(
    s: &mut S,
    bytes: &mut Bytes,
    store: &mut Store,
    sel: &Selection,
    originals: bool,
    step: &mut dyn FnMut(MeetStep),
) -> Result<ExchangeReport, MeetError> {
    let mut r = ExchangeReport::default();
    step(MeetStep::Summaries);
    send(s, &Msg::WantOriginals(originals), bytes)?;
    send(
        s,
        &Msg::Summary(encode_summary(&summary(store, sel)?)),
        bytes,
    )?;
    let theirs = match recv(s, bytes)? {
        Msg::Summary(b) => decode_summary(&b)?,
        _ => {
            return Err(MeetError::Protocol(
                "unexpected message instead of the summary",
            ));
        }
    };
    let (parts, docs) = record_parts(store, sel, &theirs)?;
    r.sent = docs;
    r.parts_sent = parts.len();
    send_parts(s, bytes, &parts, step)?;
    (r.peer_landed, r.peer_refused) = expect_report(s, bytes)?;
    let (got, n) = recv_and_import(s, bytes, step, &mut |p, out| import_one(store, p, out))?;
    r.parts_received = n;
    step(MeetStep::Importing);
    send(s, &report_of(&got), bytes)?;
    r.landed = got.landed;
    r.refused = got.refused;
    r.conflicts = got.conflicts;
    if originals {
        step(MeetStep::Originals);
        let (parts, n) = original_parts(store, sel)?;
        r.originals_sent = n;
        r.parts_sent += parts.len();
        send_parts(s, bytes, &parts, step)?;
        expect_report(s, bytes)?;
        let (got, n) = recv_and_import(s, bytes, step, &mut |p, out| import_one(store, p, out))?;
        r.parts_received += n;
        send(s, &report_of(&got), bytes)?;
        r.originals_received = got.originals;
    }
    Ok(r)
}

/// The leader's exchange; `store` is locked only while it is read or written, so concurrent
/// joiners' transfers overlap and their imports run one at a time.
pub(crate) fn leader<S: Read + Write + Send>(
    s: &mut S,
    bytes: &mut Bytes,
    store: &Mutex<Store>,
    sel: &Selection,
    allow_originals: bool,
) -> Result<ExchangeReport, MeetError> {
    let lock = || store.lock().unwrap_or_else(PoisonError::into_inner);
    let mut r = ExchangeReport::default();
    let originals = match recv(s, bytes)? {
        Msg::WantOriginals(w) => w && allow_originals,
        _ => {
            return Err(MeetError::Protocol(
                "unexpected first message of the exchange",
            ));
        }
    };
    let theirs = match recv(s, bytes)? {
        Msg::Summary(b) => decode_summary(&b)?,
        _ => {
            return Err(MeetError::Protocol(
                "unexpected message instead of the summary",
            ));
        }
    };
    let mine = summary(&lock(), sel)?;
    send(s, &Msg::Summary(encode_summary(&mine)), bytes)?;
    let mut nothing = |_: MeetStep| {};
    let (got, n) = recv_and_import(s, bytes, &mut nothing, &mut |p, out| {
        import_one(&mut lock(), p, out)
    })?;
    r.parts_received = n;
    send(s, &report_of(&got), bytes)?;
    r.landed = got.landed;
    r.refused = got.refused;
    r.conflicts = got.conflicts;
    // After the import: the joiner also gets what earlier joiners brought.
    let (parts, docs) = record_parts(&lock(), sel, &theirs)?;
    r.sent = docs;
    r.parts_sent = parts.len();
    send_parts(s, bytes, &parts, &mut nothing)?;
    (r.peer_landed, r.peer_refused) = expect_report(s, bytes)?;
    if originals {
        let (got, n) = recv_and_import(s, bytes, &mut nothing, &mut |p, out| {
            import_one(&mut lock(), p, out)
        })?;
        r.parts_received += n;
        send(s, &report_of(&got), bytes)?;
        r.originals_received = got.originals;
        let (parts, n) = original_parts(&lock(), sel)?;
        r.originals_sent = n;
        r.parts_sent += parts.len();
        send_parts(s, bytes, &parts, &mut nothing)?;
        expect_report(s, bytes)?;
    }
    Ok(r)
}

// ---- The store and the bundle format (issue 12's shared design) ----

/// The records a session is about: the group of whichever side is a member or leader (an
/// office device meets a group's phones with that group's records).
pub(crate) fn selection(mine: &DeviceCert, theirs: &DeviceCert) -> Selection {
    let group = mine.group.clone().or_else(|| theirs.group.clone());
    match &group {
        Some(g) => Selection::group(g),
        None => Selection::default(),
    }
}

fn summary(store: &Store, sel: &Selection) -> Result<Vec<(String, Vec<ChangeHash>)>, MeetError> {
    Ok(store.summary(sel)?)
}

fn fill(b: &mut [u8]) {
    getrandom::fill(b).expect("the OS provides randomness");
}

/// Bundle parts of the records the other side lacks (`theirs`: its summary), sealed to the
/// group's key and the server's like any bundle; the number of records in them.
fn record_parts(
    store: &Store,
    sel: &Selection,
    theirs: &HashMap<String, Vec<ChangeHash>>,
) -> Result<(Vec<Vec<u8>>, usize), MeetError> {
    let e = crate::bundle::build_parts(
        store,
        sel,
        Some(theirs),
        Some(PART_SIZE),
        sanjin_store::now_ms(),
        &mut fill,
    )
    .map_err(bundle_error)?;
    let docs = e.docs.iter().filter(|d| !d.outside).count();
    Ok((e.parts, docs))
}

/// Bundle parts of the photo originals waiting on this device for the selection's records
/// (without the records: those went before), and how many. Sealed and signed like any bundle.
fn original_parts(store: &Store, sel: &Selection) -> Result<(Vec<Vec<u8>>, usize), MeetError> {
    use sanjin_sync::bundle::{self as format, Audience};
    let with = Selection {
        with_originals: true,
        ..sel.clone()
    };
    let (payload, _) = store.bundle_payload(&with, None)?;
    let n = payload.originals.len();
    if n == 0 {
        return Ok((Vec::new(), 0));
    }
    let payload = sanjin_sync::bundle::Payload {
        docs: Vec::new(),
        sigs: Vec::new(),
        certs: Vec::new(),
        revocations: None,
        receipts: Vec::new(),
        originals: payload.originals,
        cargo: Vec::new(),
    };
    let key = store.signing_key().ok_or(MeetError::NotEnrolled)?.clone();
    let cert = store
        .cert(&store.identity().device)?
        .filter(|c| c.public_key == key.public())
        .ok_or(MeetError::NotEnrolled)?;
    let directory = store
        .key_directory()?
        .ok_or_else(|| bundle_error(crate::bundle::BundleFailure::NoKeys))?;
    let server = (
        crate::bundle::SERVER_RECIPIENT.to_string(),
        directory.server_box,
    );
    let (audience, recipients) = match &sel.audience {
        Some(g) => {
            let k = directory
                .group(g)
                .ok_or_else(|| bundle_error(crate::bundle::BundleFailure::NoGroupKey(g.clone())))?;
            (
                Audience::Group {
                    group: g.clone(),
                    epoch: k.epoch,
                },
                vec![
                    (sanjin_store::group_recipient(g, k.epoch), k.public),
                    server,
                ],
            )
        }
        None => (Audience::Server, vec![server]),
    };
    let parts = format::export(
        payload,
        &key,
        &cert,
        audience,
        &recipients,
        PART_SIZE,
        sanjin_store::now_ms(),
        &mut fill,
    )
    .map_err(|e| MeetError::Bundle(e.zh()))?;
    Ok((parts, n))
}

/// The largest bundle part a session sends (a record larger than that goes alone).
const PART_SIZE: usize = 256 << 10;

fn bundle_error(e: crate::bundle::BundleFailure) -> MeetError {
    match e {
        crate::bundle::BundleFailure::Store(s) => MeetError::Store(s),
        e => MeetError::Bundle(e.zh()),
    }
}

/// Imports one of the other side's parts as any bundle part (verified, opened, judged per
/// record); a refused part or record is reported, the rest kept.
fn import_one(store: &mut Store, p: &[u8], out: &mut Imported) -> Result<(), MeetError> {
    {
        match crate::bundle::import_bundle(store, p, sanjin_store::now_ms()) {
            Ok(pr) => {
                let r = pr.report;
                out.landed += r.added + r.updated;
                out.originals += r.originals;
                for d in r.records {
                    if d.outcome == sanjin_store::Outcome::Refused || !d.reason.is_empty() {
                        out.refused.push(RefusedDoc {
                            doc_id: d.id,
                            reason: d.reason,
                        });
                    }
                }
                for c in r.new_conflicts {
                    if out.conflicts.iter().all(|d| d.doc_id != c) {
                        let fields = store
                            .load(&c)
                            .ok()
                            .and_then(|mut d| d.view().ok())
                            .map(|v| v.conflicts.into_iter().map(|c| c.field).collect())
                            .unwrap_or_default();
                        out.conflicts.push(ConflictDoc { doc_id: c, fields });
                    }
                }
            }
            Err(crate::bundle::BundleFailure::Store(e)) => return Err(e.into()),
            Err(e) => out.refused.push(RefusedDoc {
                doc_id: String::new(),
                reason: e.zh(),
            }),
        }
    }
    Ok(())
}
