//! The sync protocol's messages, sans-IO: `encode` to bytes, `decode` from bytes. Transports
//! (HTTPS in `sanjin-server` / `sanjin-client`) only carry these bytes. The byte layout is
//! specified in `docs/PROTOCOL.md`; this module is its reference implementation.
//!
//! One exchange is one `SyncRequest` and one `SyncResponse`. In the common case it both pushes
//! what the server lacks (per-document change bytes) and pulls what the device lacks (the
//! server's change log after the device's cursor). When the cursor is not valid for the server
//! (a new phone restoring, a server restored from backup) the server says `resync`, and the two
//! sides run automerge's own sync protocol per document (`am_sync`) until both are quiet.

use std::collections::HashMap;

use automerge::ChangeHash;

use crate::sign::{ChangeSig, DeviceCert, SigKind, split_changes};

/// The protocol version this build speaks.
pub const VERSION: u16 = 3;
/// The first bytes of every frame.
pub const MAGIC: [u8; 2] = *b"SJ";
/// The largest decoded payload accepted: a bound on memory whatever the frame claims.
pub const MAX_PAYLOAD: usize = 64 << 20;
/// A compressed payload may decode to at most this many times its compressed size (issue 10:
/// a 2 KB zstd "bomb" of zeros claims 64 MiB). Real sync payloads (automerge changes, already
/// column-encoded) compress 2–20×.
pub const MAX_RATIO: usize = 1024;
/// Whatever the ratio, a compressed payload may always decode to this much (small frames of
/// very repetitive text stay decodable).
pub const MIN_PAYLOAD_BOUND: usize = 4 << 20;
/// The largest zstd window a frame may ask the decoder for (log2: 4 MiB). The levels of
/// [`compression_level`] (3, 15, 9) use windows of at most 4 MiB; a larger window is refused
/// before any memory is taken for it.
pub const MAX_WINDOW_LOG: u32 = 22;
/// Frame flag: the payload is zstd-compressed.
const FLAG_ZSTD: u8 = 1;
/// Kinds of frame.
const KIND_REQUEST: u8 = 1;
const KIND_RESPONSE: u8 = 2;

/// Why bytes could not be decoded. Each is a client error (HTTP 400), never a crash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a sanjin sync message (bad magic)")]
    BadMagic,
    #[error("protocol version {found} is not supported; this side speaks {supported}")]
    UnsupportedVersion { found: u16, supported: u16 },
    #[error("expected a {expected} message")]
    WrongKind { expected: &'static str },
    #[error("message truncated while reading {what}")]
    Truncated { what: &'static str },
    #[error("{what} is too large ({len} > {max})")]
    TooLarge {
        what: &'static str,
        len: u64,
        max: u64,
    },
    #[error("{what} is not valid UTF-8")]
    BadUtf8 { what: &'static str },
    #[error("{0} unexpected bytes after the message")]
    Trailing(usize),
    #[error("the compressed payload is corrupt or exceeds {MAX_PAYLOAD} bytes")]
    Decompress,
    /// The compressed payload decodes (or says it decodes) to more than its bound: the
    /// frame's declared size, [`MAX_RATIO`] times its compressed size (at least
    /// [`MIN_PAYLOAD_BOUND`]) and [`MAX_PAYLOAD`] (issue 10).
    #[error("the compressed payload decodes to more than {bound} bytes")]
    Bomb { bound: u64 },
    #[error("unknown flag bits {0:#x}")]
    UnknownFlags(u8),
    #[error("a signature names change {0}, which the message does not carry")]
    BadReference(u64),
    #[error("a certificate is damaged: {0}")]
    BadCertificate(String),
}

/// Changes of one document, in automerge's incremental format (a sequence of uncompressed
/// change chunks, or a whole saved document). The heads they lead to are not sent: they follow
/// from the changes (those that no other change in them depends on), and a hash is 32 bytes that
/// no compressor can shrink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocChanges {
    pub doc_id: String,
    pub changes: Vec<u8>,
}

/// An automerge sync-protocol message for one document (the fallback path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocSync {
    pub doc_id: String,
    pub message: Vec<u8>,
}

/// Why the server refused a pushed document. The rest of the batch still lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalCode {
    /// The device may not write this document (another group's record, directory, …).
    Forbidden = 1,
    /// A change is signed by an actor that is not this device's (or an enrolled device allowed
    /// to write the document).
    ForeignActor = 2,
    /// The bytes are not automerge changes, or the document is not a sanjin record.
    Malformed = 3,
    /// A workflow step the author's role may not take (a member approving, …).
    Role = 4,
    /// The changes depend on changes the server has not seen; push those first.
    MissingDeps = 5,
    /// The document is larger than the server accepts.
    TooLarge = 6,
    /// A change carries no valid signature by the key of the device that owns its actor
    /// (issue 10).
    BadSignature = 7,
    /// The change depends on a change that was refused (issue 10).
    DependsOnRefused = 8,
    /// The device that signed the change had been revoked when the server received it.
    Revoked = 9,
    /// A field's value breaks the schema: type, length, characters, photo reference (issue 10).
    InvalidField = 10,
    /// The change rewrites history: an existing workflow event, a deleted event, or an immutable
    /// root key (`schema`, `kind`, `id`, `by`, `dev`, `at`) (issue 10).
    HistoryRewrite = 11,
    /// The change claims another member or device than its signer: `by`/`dev` of a new record or
    /// event, or the change message (issue 10).
    Impersonation = 12,
    /// The change settles a conflict (overwrites several different concurrent values), which
    /// only the group's leader or staff may do (issue 10).
    ConflictResolution = 13,
}

impl RefusalCode {
    pub fn from_u8(b: u8) -> Option<RefusalCode> {
        Some(match b {
            1 => RefusalCode::Forbidden,
            2 => RefusalCode::ForeignActor,
            3 => RefusalCode::Malformed,
            4 => RefusalCode::Role,
            5 => RefusalCode::MissingDeps,
            6 => RefusalCode::TooLarge,
            7 => RefusalCode::BadSignature,
            8 => RefusalCode::DependsOnRefused,
            9 => RefusalCode::Revoked,
            10 => RefusalCode::InvalidField,
            11 => RefusalCode::HistoryRewrite,
            12 => RefusalCode::Impersonation,
            13 => RefusalCode::ConflictResolution,
            _ => return None,
        })
    }

    /// The code from its name (`bad_signature`, …).
    pub fn parse(code: &str) -> Option<RefusalCode> {
        (1..=13)
            .filter_map(RefusalCode::from_u8)
            .find(|c| c.code() == code)
    }

    pub fn code(self) -> &'static str {
        match self {
            RefusalCode::Forbidden => "forbidden",
            RefusalCode::ForeignActor => "foreign_actor",
            RefusalCode::Malformed => "malformed",
            RefusalCode::Role => "role",
            RefusalCode::MissingDeps => "missing_deps",
            RefusalCode::TooLarge => "too_large",
            RefusalCode::BadSignature => "bad_signature",
            RefusalCode::DependsOnRefused => "depends_on_refused",
            RefusalCode::Revoked => "revoked",
            RefusalCode::InvalidField => "invalid_field",
            RefusalCode::HistoryRewrite => "history_rewrite",
            RefusalCode::Impersonation => "impersonation",
            RefusalCode::ConflictResolution => "conflict_resolution",
        }
    }
}

impl RefusalCode {
    /// What the member reads on the phone (CLI and app): why, and what to do.
    pub fn zh(self) -> &'static str {
        match self {
            RefusalCode::Forbidden => "无权写入这条记录（不在本人活动组的范围内）",
            RefusalCode::ForeignActor => "记录中有不是由已登记设备做出的修改，服务器不予接收",
            RefusalCode::Malformed => "记录数据格式无效，服务器无法读取",
            RefusalCode::Role => {
                "本人的角色无权进行这一流转（如审核、退回、裁定），请由组长或机关工作人员处理"
            }
            RefusalCode::MissingDeps => "服务器缺少这条记录先前的修改，下次同步时将完整重发",
            RefusalCode::TooLarge => "记录过大，超出了服务器的限制",
            RefusalCode::BadSignature => {
                "修改缺少本设备的有效签名，服务器不予接收；请确认本机已登记（sanjin device enroll），仍不行请联系机关工作人员"
            }
            RefusalCode::DependsOnRefused => {
                "这条修改建立在一条被拒收的修改之上，因此也未被接收；请先处理被拒收的那条"
            }
            RefusalCode::Revoked => {
                "做出修改的设备已被注销，服务器不予接收；请联系机关工作人员重新登记"
            }
            RefusalCode::InvalidField => {
                "某个字段的内容不符合要求（类型、长度或字符），请按提示修改后再同步"
            }
            RefusalCode::HistoryRewrite => {
                "修改试图改写已有的流转记录或记录的基本信息，留痕不可更改"
            }
            RefusalCode::Impersonation => "修改冒用了其他委员或设备的名义，服务器不予接收",
            RefusalCode::ConflictResolution => "只有组长或机关工作人员可以裁定冲突，请等待组长处理",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub doc_id: String,
    pub code: RefusalCode,
    /// The field the refusal is about (its schema name), empty when it is about the whole
    /// record or a change (issue 10).
    pub field: String,
    /// English, for logs and operators; the client shows its own words for `code`.
    pub reason: String,
}

/// Device → server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncRequest {
    /// Idempotency key: a retry of the same request carries the same id.
    pub request_id: [u8; 16],
    /// The server epoch the cursor belongs to (zeros before the first sync).
    pub epoch: [u8; 16],
    /// The last change-log sequence number the device has applied.
    pub cursor: u64,
    /// How many bytes of changes the device wants at most in the response.
    pub max_response_bytes: u32,
    pub pushes: Vec<DocChanges>,
    pub am_sync: Vec<DocSync>,
    /// Signatures over the pushed changes (issue 10): the device's own changes under one
    /// signature, changes of other devices it relays under theirs.
    pub sigs: Vec<ChangeSig>,
    /// Certificates of the signers, for a receiver that may not know them.
    pub certs: Vec<DeviceCert>,
}

/// Server → device.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncResponse {
    pub request_id: [u8; 16],
    pub epoch: [u8; 16],
    /// The cursor to send next time (covers every change in `changes`).
    pub cursor: u64,
    /// More changes wait after `cursor`: ask again.
    pub more: bool,
    /// The cursor is not valid on this server: run the per-document fallback.
    pub resync: bool,
    /// The pushes the server now holds, as positions in the request's `pushes`, ascending: the
    /// device knows which heads it pushed, so an ack costs a byte, not a document id and 32-byte
    /// hashes.
    pub acks: Vec<u32>,
    pub refused: Vec<Refusal>,
    pub changes: Vec<DocChanges>,
    pub am_sync: Vec<DocSync>,
    /// Signatures over the changes in `changes` (and those of `am_sync`), as their signers made
    /// them: attribution travels with the change.
    pub sigs: Vec<ChangeSig>,
    /// Certificates of the signers (the device verifies them with the pinned server key).
    pub certs: Vec<DeviceCert>,
}

// ---------------------------------------------------------------- writing

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, b: u8) {
        self.0.push(b);
    }
    fn varint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn fixed(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    fn doc_changes(&mut self, d: &[DocChanges]) {
        self.varint(d.len() as u64);
        for c in d {
            self.bytes(c.doc_id.as_bytes());
            self.bytes(&c.changes);
        }
    }
    /// Signatures: each hash the frame carries as a change is named by its position among the
    /// frame's changes (ascending, gap-encoded: a push's own changes are `0 0 0 …`), any other as
    /// its 32 bytes.
    fn sigs(&mut self, sigs: &[ChangeSig], certs: &[DeviceCert], frame: &[DocChanges]) {
        let positions = frame_positions(frame);
        self.varint(sigs.len() as u64);
        for s in sigs {
            self.bytes(s.signer.as_bytes());
            self.u8(s.kind as u8);
            self.fixed(&s.signature);
            let mut refs: Vec<u64> = Vec::new();
            let mut literal: Vec<&ChangeHash> = Vec::new();
            for h in &s.hashes {
                match positions.get(h) {
                    Some(&p) => refs.push(p),
                    None => literal.push(h),
                }
            }
            refs.sort_unstable();
            self.varint(refs.len() as u64);
            let mut next = 0u64;
            for p in refs {
                self.varint(p - next);
                next = p + 1;
            }
            self.varint(literal.len() as u64);
            for h in literal {
                self.fixed(&h.0);
            }
        }
        self.varint(certs.len() as u64);
        for c in certs {
            self.bytes(&c.encode());
        }
    }
    fn doc_sync(&mut self, d: &[DocSync]) {
        self.varint(d.len() as u64);
        for s in d {
            self.bytes(s.doc_id.as_bytes());
            self.bytes(&s.message);
        }
    }
}

/// Every change the frame's documents carry, in order, with its position (the first position
/// of a hash that occurs twice).
fn frame_positions(frame: &[DocChanges]) -> HashMap<ChangeHash, u64> {
    let mut out = HashMap::new();
    let mut n = 0u64;
    for d in frame {
        for (h, _) in split_changes(&d.changes) {
            out.entry(h).or_insert(n);
            n += 1;
        }
    }
    out
}

fn frame_hashes(frame: &[DocChanges]) -> Vec<ChangeHash> {
    frame
        .iter()
        .flat_map(|d| split_changes(&d.changes).into_iter().map(|(h, _)| h))
        .collect()
}

/// Where a chain of change-log links starts (FNV-1a's offset basis).
pub const LOG_LINK_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

/// The link of a server change-log entry: FNV-1a over the entry's document id and heads (32
/// bytes each, in the order stored), continued from `prev`, the link of the entry before it
/// ([`LOG_LINK_BASIS`] for the first). A link thus stands for the whole log up to its entry,
/// and a cursor carries 20 bits of it: a server restored from a backup that has since logged
/// other entries, even ones identical at the cursor's own position, no longer recognises the
/// cursor and asks for a resync (issue 11: the simulated network found a device skipping
/// entries for good when the tag covered its entry alone). Entries logged before links existed
/// have none and stand for themselves: `log_link(LOG_LINK_BASIS, …)`, which was their tag.
pub fn log_link(prev: u64, doc_id: &str, heads: &[crate::ChangeHash]) -> u64 {
    let mut h = prev;
    let bytes = doc_id
        .as_bytes()
        .iter()
        .chain(heads.iter().flat_map(|c| c.0.iter()));
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The zstd level for a payload of `len` bytes. The everyday exchange (a few changes up, a few
/// colleagues' changes down, well under 128 KiB) gets a fast level: a higher one would save a
/// few hundred bytes and cost the server the CPU it needs to answer hundreds of devices at
/// once. Bulk frames (a day's records pushed, a fresh device's first pull) get a high level:
/// there the savings are tens of kilobytes, seconds on a 2G link, and such frames are rare.
/// Beyond 8 MiB the level drops again to bound the CPU of one answer. docs/BENCHMARKS.md has
/// the measurements behind these numbers.
pub fn compression_level(len: usize) -> i32 {
    match len {
        0..=0x2_0000 => 3,
        0x2_0001..=0x80_0000 => 15,
        _ => 9,
    }
}

/// Wraps a payload into a frame, compressing it when that makes it smaller.
fn frame(kind: u8, payload: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() / 2 + 8);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.push(kind);
    let compressed = if payload.len() > 64 {
        zstd::bulk::compress(&payload, compression_level(payload.len())).ok()
    } else {
        None
    };
    match compressed {
        Some(c) if c.len() < payload.len() => {
            out.push(FLAG_ZSTD);
            out.extend_from_slice(&c);
        }
        _ => {
            out.push(0);
            out.extend_from_slice(&payload);
        }
    }
    out
}

impl SyncRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::new());
        w.fixed(&self.request_id);
        w.fixed(&self.epoch);
        w.varint(self.cursor);
        w.varint(self.max_response_bytes as u64);
        w.doc_changes(&self.pushes);
        w.doc_sync(&self.am_sync);
        w.sigs(&self.sigs, &self.certs, &self.pushes);
        frame(KIND_REQUEST, w.0)
    }

    pub fn decode(bytes: &[u8]) -> Result<SyncRequest, DecodeError> {
        let payload = unframe(bytes, KIND_REQUEST, "request")?;
        let mut r = Reader { b: &payload, at: 0 };
        let mut m = SyncRequest {
            request_id: r.fixed16("request id")?,
            epoch: r.fixed16("epoch")?,
            cursor: r.varint("cursor")?,
            max_response_bytes: r.varint("max response bytes")?.min(u32::MAX as u64) as u32,
            pushes: r.doc_changes()?,
            am_sync: r.doc_sync()?,
            ..SyncRequest::default()
        };
        (m.sigs, m.certs) = r.sigs(&m.pushes)?;
        r.end()?;
        Ok(m)
    }
}

impl SyncResponse {
    /// The pushes of `request` this response acknowledges.
    pub fn acked<'a>(&'a self, request: &'a SyncRequest) -> impl Iterator<Item = &'a DocChanges> {
        self.acks
            .iter()
            .filter_map(|&i| request.pushes.get(i as usize))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::new());
        w.fixed(&self.request_id);
        w.fixed(&self.epoch);
        w.varint(self.cursor);
        w.u8(u8::from(self.more) | (u8::from(self.resync) << 1));
        // Positions, ascending, each as the gap from the previous one (mostly zeros).
        w.varint(self.acks.len() as u64);
        let mut next = 0u64;
        for &a in &self.acks {
            let a = u64::from(a);
            debug_assert!(a >= next, "acks ascend");
            w.varint(a.saturating_sub(next));
            next = a + 1;
        }
        w.varint(self.refused.len() as u64);
        for r in &self.refused {
            w.bytes(r.doc_id.as_bytes());
            w.u8(r.code as u8);
            w.bytes(r.field.as_bytes());
            w.bytes(r.reason.as_bytes());
        }
        w.doc_changes(&self.changes);
        w.doc_sync(&self.am_sync);
        w.sigs(&self.sigs, &self.certs, &self.changes);
        frame(KIND_RESPONSE, w.0)
    }

    pub fn decode(bytes: &[u8]) -> Result<SyncResponse, DecodeError> {
        let payload = unframe(bytes, KIND_RESPONSE, "response")?;
        let mut r = Reader { b: &payload, at: 0 };
        let request_id = r.fixed16("request id")?;
        let epoch = r.fixed16("epoch")?;
        let cursor = r.varint("cursor")?;
        let flags = r.u8("flags")?;
        if flags & !0b11 != 0 {
            return Err(DecodeError::UnknownFlags(flags));
        }
        let n = r.count("acks")?;
        let mut acks = Vec::with_capacity(n);
        let mut next = 0u64;
        for _ in 0..n {
            let a = next.saturating_add(r.varint("ack")?);
            if a > u64::from(u32::MAX) {
                return Err(DecodeError::TooLarge {
                    what: "ack position",
                    len: a,
                    max: u64::from(u32::MAX),
                });
            }
            acks.push(a as u32);
            next = a + 1;
        }
        let n = r.count("refusals")?;
        let mut refused = Vec::with_capacity(n);
        for _ in 0..n {
            let doc_id = r.string("doc id")?;
            let code = r.u8("refusal code")?;
            let code = RefusalCode::from_u8(code).ok_or(DecodeError::UnknownFlags(code))?;
            refused.push(Refusal {
                doc_id,
                code,
                field: r.string("field")?,
                reason: r.string("reason")?,
            });
        }
        let mut m = SyncResponse {
            request_id,
            epoch,
            cursor,
            more: flags & 1 != 0,
            resync: flags & 2 != 0,
            acks,
            refused,
            changes: r.doc_changes()?,
            am_sync: r.doc_sync()?,
            ..SyncResponse::default()
        };
        (m.sigs, m.certs) = r.sigs(&m.changes)?;
        r.end()?;
        Ok(m)
    }
}

// ---------------------------------------------------------------- reading

fn unframe(bytes: &[u8], kind: u8, expected: &'static str) -> Result<Vec<u8>, DecodeError> {
    if bytes.len() < 6 || bytes[..2] != MAGIC {
        return Err(
            if bytes.len() < 6
                && bytes.starts_with(&MAGIC[..bytes.len().min(2)])
                && !bytes.is_empty()
            {
                DecodeError::Truncated { what: "header" }
            } else {
                DecodeError::BadMagic
            },
        );
    }
    let version = u16::from_le_bytes([bytes[2], bytes[3]]);
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion {
            found: version,
            supported: VERSION,
        });
    }
    if bytes[4] != kind {
        return Err(DecodeError::WrongKind { expected });
    }
    let flags = bytes[5];
    if flags & !FLAG_ZSTD != 0 {
        return Err(DecodeError::UnknownFlags(flags));
    }
    let body = &bytes[6..];
    if flags & FLAG_ZSTD != 0 {
        decompress_capped(body)
    } else {
        if body.len() > MAX_PAYLOAD {
            return Err(DecodeError::TooLarge {
                what: "payload",
                len: body.len() as u64,
                max: MAX_PAYLOAD as u64,
            });
        }
        Ok(body.to_vec())
    }
}

/// The most bytes the payload of `frame` may decode to: its length when uncompressed; when
/// compressed, [`MAX_RATIO`] times the compressed length (at least [`MIN_PAYLOAD_BOUND`]), and
/// never more than [`MAX_PAYLOAD`] nor than the size the zstd frame declares. A server can
/// budget its memory with it before decoding.
pub fn payload_bound(frame: &[u8]) -> usize {
    match frame.get(5) {
        Some(&flags) if flags & FLAG_ZSTD != 0 => {
            let body = &frame[6..];
            let bound = ratio_bound(body.len());
            match zstd::zstd_safe::get_frame_content_size(body) {
                Ok(Some(declared)) => bound.min(usize::try_from(declared).unwrap_or(usize::MAX)),
                _ => bound,
            }
        }
        _ => frame.len().saturating_sub(6).min(MAX_PAYLOAD),
    }
}

fn ratio_bound(compressed: usize) -> usize {
    compressed
        .saturating_mul(MAX_RATIO)
        .clamp(MIN_PAYLOAD_BOUND, MAX_PAYLOAD)
}

/// One zstd frame decoded with the bounds of sync frames ([`MAX_RATIO`], [`MAX_PAYLOAD`], the
/// declared size, [`MAX_WINDOW_LOG`]); bundles decode their payloads with it (issue 12).
pub fn decompress_bounded(body: &[u8]) -> Result<Vec<u8>, DecodeError> {
    decompress_capped(body)
}

/// Streaming zstd decompression with its output bounded before it is produced: by the ratio
/// bound of [`payload_bound`], by the frame's declared content size (more is corrupt), and by
/// [`MAX_WINDOW_LOG`] for the decoder's own window. Memory follows the bytes actually produced
/// (at most the bound), never `MAX_PAYLOAD` reserved up front.
fn decompress_capped(body: &[u8]) -> Result<Vec<u8>, DecodeError> {
    use std::io::Read;
    let bound = ratio_bound(body.len());
    let declared = match zstd::zstd_safe::get_frame_content_size(body) {
        Ok(d) => d,
        Err(_) => return Err(DecodeError::Decompress),
    };
    let limit = match declared {
        Some(d) if d > bound as u64 => {
            return Err(DecodeError::Bomb {
                bound: bound as u64,
            });
        }
        Some(d) => d as usize,
        None => bound,
    };
    let mut decoder = zstd::stream::read::Decoder::with_buffer(body)
        .map_err(|_| DecodeError::Decompress)?
        .single_frame();
    decoder
        .window_log_max(MAX_WINDOW_LOG)
        .map_err(|_| DecodeError::Decompress)?;
    // A declared size is trusted up to the bound for the first allocation; otherwise the
    // output grows with what the decoder actually produces.
    let mut out: Vec<u8> = Vec::with_capacity(
        declared
            .map_or(body.len().saturating_mul(4), |d| d as usize)
            .min(limit),
    );
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = match decoder.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(DecodeError::Decompress),
        };
        if out.len() + n > limit {
            return Err(if declared.is_some() {
                // More than the frame said: corrupt (or lying).
                DecodeError::Decompress
            } else {
                DecodeError::Bomb {
                    bound: bound as u64,
                }
            });
        }
        if out.capacity() - out.len() < n {
            // Grow by doubling, but never past the limit.
            let want = (out.capacity().max(64 << 10) * 2).min(limit);
            out.reserve_exact(want.max(out.len() + n) - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
    if declared.is_some_and(|d| d as usize != out.len()) {
        return Err(DecodeError::Decompress);
    }
    // Nothing may follow the one frame.
    let rest = decoder.finish();
    if !rest.is_empty() {
        return Err(DecodeError::Trailing(rest.len()));
    }
    Ok(out)
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.b.len() - self.at < n {
            return Err(DecodeError::Truncated { what });
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }
    fn fixed16(&mut self, what: &'static str) -> Result<[u8; 16], DecodeError> {
        Ok(self.take(16, what)?.try_into().expect("16 bytes"))
    }
    fn varint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8(what)?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::TooLarge {
            what,
            len: u64::MAX,
            max: u64::MAX >> 1,
        })
    }
    /// A count of items, bounded by the bytes left (every item takes at least one byte).
    fn count(&mut self, what: &'static str) -> Result<usize, DecodeError> {
        let n = self.varint(what)?;
        let left = (self.b.len() - self.at) as u64;
        if n > left {
            return Err(DecodeError::Truncated { what });
        }
        Ok(n as usize)
    }
    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.varint(what)?;
        if n > (self.b.len() - self.at) as u64 {
            return Err(DecodeError::Truncated { what });
        }
        self.take(n as usize, what)
    }
    fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let b = self.bytes(what)?;
        if b.len() > 4096 {
            return Err(DecodeError::TooLarge {
                what,
                len: b.len() as u64,
                max: 4096,
            });
        }
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::BadUtf8 { what })
    }
    fn doc_changes(&mut self) -> Result<Vec<DocChanges>, DecodeError> {
        let n = self.count("documents")?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(DocChanges {
                doc_id: self.string("doc id")?,
                changes: self.bytes("changes")?.to_vec(),
            });
        }
        Ok(out)
    }
    fn doc_sync(&mut self) -> Result<Vec<DocSync>, DecodeError> {
        let n = self.count("sync messages")?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(DocSync {
                doc_id: self.string("doc id")?,
                message: self.bytes("sync message")?.to_vec(),
            });
        }
        Ok(out)
    }
    fn sigs(
        &mut self,
        frame: &[DocChanges],
    ) -> Result<(Vec<ChangeSig>, Vec<DeviceCert>), DecodeError> {
        let n = self.count("signatures")?;
        let mut hashes: Option<Vec<ChangeHash>> = None;
        let mut sigs = Vec::with_capacity(n);
        for _ in 0..n {
            let signer = self.string("signer")?;
            let kind = self.u8("signature kind")?;
            let kind = SigKind::from_u8(kind).ok_or(DecodeError::UnknownFlags(kind))?;
            let signature: [u8; 64] = self.take(64, "signature")?.try_into().expect("64 bytes");
            let nrefs = self.count("signature references")?;
            let mut covered = Vec::with_capacity(nrefs);
            if nrefs > 0 {
                let all = hashes.get_or_insert_with(|| frame_hashes(frame));
                let mut next = 0u64;
                for _ in 0..nrefs {
                    let p = next.saturating_add(self.varint("signature reference")?);
                    let h = all.get(p as usize).ok_or(DecodeError::BadReference(p))?;
                    covered.push(*h);
                    next = p.saturating_add(1);
                }
            }
            let nlit = self.count("signed hashes")?;
            for _ in 0..nlit {
                let h: [u8; 32] = self.take(32, "signed hash")?.try_into().expect("32 bytes");
                covered.push(ChangeHash(h));
            }
            covered.sort_unstable();
            covered.dedup();
            sigs.push(ChangeSig {
                signer,
                kind,
                hashes: covered,
                signature,
            });
        }
        let n = self.count("certificates")?;
        let mut certs = Vec::with_capacity(n);
        for _ in 0..n {
            let b = self.bytes("certificate")?;
            certs.push(
                DeviceCert::decode(b).map_err(|e| DecodeError::BadCertificate(e.to_string()))?,
            );
        }
        Ok((sigs, certs))
    }
    fn end(&self) -> Result<(), DecodeError> {
        match self.b.len() - self.at {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_request() -> SyncRequest {
        SyncRequest {
            request_id: [7; 16],
            epoch: [9; 16],
            cursor: 300,
            max_response_bytes: 1 << 20,
            pushes: vec![DocChanges {
                doc_id: "5f0c…visit".replace('…', "-"),
                changes: b"changes changes changes changes changes changes changes changes changes"
                    .to_vec(),
            }],
            am_sync: vec![DocSync {
                doc_id: "d".into(),
                message: vec![0x42, 1, 2, 3],
            }],
            ..SyncRequest::default()
        }
    }

    fn sample_response() -> SyncResponse {
        SyncResponse {
            request_id: [7; 16],
            epoch: [9; 16],
            cursor: 301,
            more: true,
            resync: false,
            acks: vec![0, 1, 5, 6, 300],
            refused: vec![Refusal {
                doc_id: "b".into(),
                code: RefusalCode::Forbidden,
                field: String::new(),
                reason: "other group".into(),
            }],
            changes: vec![DocChanges {
                doc_id: "c".into(),
                changes: vec![5; 300],
            }],
            am_sync: vec![],
            ..SyncResponse::default()
        }
    }

    #[test]
    fn issue10_signatures_travel_by_position_and_literal_hashes_and_round_trip() {
        use crate::sign::{DeviceKey, SigKind};
        use automerge::transaction::{CommitOptions, Transactable};
        let mut docs = Vec::new();
        let mut hashes = Vec::new();
        for i in 0..40 {
            let mut d = automerge::AutoCommit::new();
            d.put(automerge::ROOT, "n", i as i64).unwrap();
            d.commit_with(CommitOptions::default().with_message("m"));
            hashes.push(d.get_heads()[0]);
            docs.push(DocChanges {
                doc_id: format!("doc-{i}"),
                changes: d.save_after(&[]),
            });
        }
        let key = DeviceKey::from_seed([3; 32]);
        let elsewhere = ChangeHash([0xab; 32]);
        let own = ChangeSig::sign(
            &key,
            "dev-1",
            SigKind::Changes,
            hashes.iter().copied().chain([elsewhere]),
        );
        let cert = DeviceCert::issue(
            &key,
            "dev-1",
            &[1; 16],
            "member-0001",
            "member",
            Some("group-01"),
            key.public(),
            5,
        );
        let req = SyncRequest {
            pushes: docs,
            sigs: vec![own.clone()],
            certs: vec![cert],
            ..SyncRequest::default()
        };
        let bytes = req.encode();
        let back = SyncRequest::decode(&bytes).unwrap();
        assert_eq!(back, req);
        assert!(back.sigs[0].verify(&key.public()));
        // Forty hashes by position plus one literal: the signature costs its 64 bytes, a few
        // bytes of positions and 32 for the hash the frame does not carry.
        let without = SyncRequest {
            sigs: vec![],
            certs: vec![],
            ..req.clone()
        }
        .encode();
        assert!(
            bytes.len() < without.len() + 64 + 32 + 60 + 200,
            "{} vs {}",
            bytes.len(),
            without.len()
        );
        let resp = SyncResponse {
            changes: req.pushes.clone(),
            sigs: vec![own],
            ..SyncResponse::default()
        };
        assert_eq!(SyncResponse::decode(&resp.encode()).unwrap(), resp);
    }

    #[test]
    fn round_trips() {
        let r = sample_request();
        assert_eq!(SyncRequest::decode(&r.encode()).unwrap(), r);
        let s = sample_response();
        assert_eq!(SyncResponse::decode(&s.encode()).unwrap(), s);
        let empty = SyncRequest::default();
        assert_eq!(SyncRequest::decode(&empty.encode()).unwrap(), empty);
        assert!(
            s.encode().len() < 300,
            "compressible payloads are compressed"
        );
    }

    /// Every prefix of a valid message, and bytes flipped in it, fail cleanly (no panic).
    #[test]
    fn bad_bytes_fail_cleanly() {
        let bytes = sample_request().encode();
        for n in 0..bytes.len() {
            assert!(SyncRequest::decode(&bytes[..n]).is_err(), "prefix {n}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            let _ = SyncRequest::decode(&b);
        }
        assert_eq!(
            SyncRequest::decode(b"GET / HTTP/1.1"),
            Err(DecodeError::BadMagic)
        );
        let mut v2 = bytes.clone();
        v2[2] = 1;
        assert_eq!(
            SyncRequest::decode(&v2),
            Err(DecodeError::UnsupportedVersion {
                found: 1,
                supported: VERSION
            })
        );
        // Issue 10: a frame of version 2 (no signatures) is refused just as clearly.
        v2[2] = 2;
        assert_eq!(
            SyncRequest::decode(&v2),
            Err(DecodeError::UnsupportedVersion {
                found: 2,
                supported: VERSION
            })
        );
        assert_eq!(
            SyncResponse::decode(&bytes),
            Err(DecodeError::WrongKind {
                expected: "response"
            })
        );
        let mut trailing = sample_request();
        trailing.pushes.clear();
        let mut t = trailing.encode();
        if t[5] == 0 {
            t.push(0);
            assert_eq!(SyncRequest::decode(&t), Err(DecodeError::Trailing(1)));
        }
    }

    /// A frame whose zstd payload is `raw` compressed, with or without the declared size.
    fn zstd_frame(raw: &[u8], declare_size: bool) -> Vec<u8> {
        use std::io::Write;
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.push(KIND_REQUEST);
        out.push(FLAG_ZSTD);
        let body = if declare_size {
            zstd::bulk::compress(raw, 19).unwrap()
        } else {
            let mut e = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
            e.include_contentsize(false).unwrap();
            e.window_log(MAX_WINDOW_LOG).unwrap();
            e.write_all(raw).unwrap();
            e.finish().unwrap()
        };
        out.extend_from_slice(&body);
        out
    }

    /// Issue 10: a few KB of zstd claiming 64 MiB is refused once its output passes the ratio
    /// bound, whether the frame declares its size or not; nothing near 64 MiB is produced.
    #[test]
    fn issue10_zstd_bombs_are_refused_at_the_ratio_bound() {
        let zeros = vec![0u8; 64 << 20];
        for declare in [true, false] {
            let bomb = zstd_frame(&zeros, declare);
            assert!(bomb.len() < 8 << 10, "{} bytes", bomb.len());
            let bound = payload_bound(&bomb);
            assert_eq!(bound, MIN_PAYLOAD_BOUND, "declared {declare}");
            assert_eq!(
                SyncRequest::decode(&bomb),
                Err(DecodeError::Bomb {
                    bound: MIN_PAYLOAD_BOUND as u64
                }),
                "declared {declare}"
            );
        }
        // The bound grows with the compressed size, up to MAX_PAYLOAD.
        assert_eq!(ratio_bound(10 << 10), 10 << 20);
        assert_eq!(ratio_bound(1 << 30), MAX_PAYLOAD);
    }

    /// A legitimate, very compressible request inside the bound still decodes, with and
    /// without a declared size; a declared size that lies is refused.
    #[test]
    fn issue10_compressible_requests_within_the_bound_decode() {
        let mut req = sample_request();
        req.pushes[0].changes = vec![b'a'; 3 << 20];
        let payload = unframe(&req.encode(), KIND_REQUEST, "request").unwrap();
        for declare in [true, false] {
            let f = zstd_frame(&payload, declare);
            assert!(f.len() * MAX_RATIO < payload.len(), "above the plain ratio");
            assert_eq!(SyncRequest::decode(&f).unwrap(), req, "declared {declare}");
        }
        // Trailing garbage after the zstd frame is refused.
        let mut t = zstd_frame(&payload, true);
        t.extend_from_slice(b"xx");
        assert!(SyncRequest::decode(&t).is_err());
    }

    /// Frames this build encodes, at each of its compression levels, fit the decoder's window.
    #[test]
    fn issue10_frames_of_every_level_fit_the_window() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for len in [100 << 10, 1 << 20, 9 << 20] {
            // Text-like bytes: compressible, but not trivially.
            let changes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    b"abcdefgh \n0123"[(x % 14) as usize]
                })
                .collect();
            let mut req = sample_request();
            req.pushes[0].changes = changes;
            let bytes = req.encode();
            assert_eq!(bytes[5], FLAG_ZSTD, "{len}");
            assert_eq!(SyncRequest::decode(&bytes).unwrap(), req, "{len}");
        }
    }

    /// A frame asking for a window larger than MAX_WINDOW_LOG is refused.
    #[test]
    fn issue10_a_huge_window_is_refused() {
        use std::io::Write;
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        e.include_contentsize(false).unwrap();
        e.window_log(MAX_WINDOW_LOG + 3).unwrap();
        let mut raw = vec![0u8; 40];
        raw.extend((0..200_000u32).flat_map(|i| i.to_le_bytes()));
        e.write_all(&raw).unwrap();
        let body = e.finish().unwrap();
        let mut f = MAGIC.to_vec();
        f.extend_from_slice(&VERSION.to_le_bytes());
        f.push(KIND_REQUEST);
        f.push(FLAG_ZSTD);
        f.extend_from_slice(&body);
        assert_eq!(SyncRequest::decode(&f), Err(DecodeError::Decompress));
    }

    #[test]
    fn a_huge_count_is_refused_before_allocating() {
        let mut w = Writer(Vec::new());
        w.fixed(&[0; 16]);
        w.fixed(&[0; 16]);
        w.varint(0);
        w.varint(0);
        w.varint(u64::MAX >> 1); // claims an enormous number of documents
        let bytes = frame(KIND_REQUEST, w.0);
        assert!(matches!(
            SyncRequest::decode(&bytes),
            Err(DecodeError::Truncated { .. })
        ));
    }
}
