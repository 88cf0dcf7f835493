//! The meeting's messages on the TLS stream: one frame is `kind u8 | length u32 LE | bytes`.
//! Decoding never panics and never allocates more than the frame's bytes, bounded by
//! [`MAX_FRAME`]; an unknown kind is an error, not a skip.

use std::io::{Read, Write};

use super::MeetError;

/// The protocol's version, in the QR payload and the first message.
pub const MEET_VERSION: u16 = 1;
/// The largest frame either side accepts (a bundle part is at most this).
pub const MAX_FRAME: usize = 32 << 20;

/// Why a side refused the other, sent as a code so each side words it in its own language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Refusal {
    WrongKey = 1,
    WrongCode = 2,
    CodeClosed = 3,
    Expired = 4,
    NotByServer = 5,
    OtherGroup = 6,
    Revoked = 7,
    BadProof = 8,
    NewerVersion = 9,
    Busy = 10,
    Stopped = 11,
}

impl Refusal {
    fn from_u8(b: u8) -> Option<Refusal> {
        use Refusal::*;
        Some(match b {
            1 => WrongKey,
            2 => WrongCode,
            3 => CodeClosed,
            4 => Expired,
            5 => NotByServer,
            6 => OtherGroup,
            7 => Revoked,
            8 => BadProof,
            9 => NewerVersion,
            10 => Busy,
            11 => Stopped,
            _ => return None,
        })
    }
}

/// One message of the meeting (docs/PROTOCOL.md, "Phone to phone").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// Joiner → leader: the version and the QR's one-time key.
    HelloKey { version: u16, key: Vec<u8> },
    /// Joiner → leader: the version and the joiner's SPAKE2 message (the six-digit code).
    HelloCode { version: u16, spake: Vec<u8> },
    /// Leader → joiner: the leader's SPAKE2 message and its confirmation (HMAC of the
    /// certificate fingerprint it serves and the TLS exporter, under the SPAKE2 key).
    CodeReply { spake: Vec<u8>, confirm: [u8; 32] },
    /// Joiner → leader: the joiner's confirmation (the fingerprint it saw).
    CodeConfirm { confirm: [u8; 32] },
    /// Either side: its device certificate and its signature over the session transcript.
    Proof { cert: Vec<u8>, signature: [u8; 64] },
    /// Either side: the refusal's code and a short detail (a group or device id, never a name).
    Refused { why: Refusal, detail: String },
    /// Leader → joiner: both proofs checked, the exchange may start.
    Accepted,
    /// Either side: its summary (`doc id → heads`), encoded by [`encode_summary`].
    Summary(Vec<u8>),
    /// Either side: one bundle part.
    Part(Vec<u8>),
    /// Either side: no more parts in this phase.
    Done,
    /// Either side: what it imported (counts), so both can report.
    Report { landed: u32, refused: u32 },
    /// Joiner → leader: originals wanted after the records (policy flag).
    WantOriginals(bool),
}

impl Msg {
    fn kind(&self) -> u8 {
        match self {
            Msg::HelloKey { .. } => 1,
            Msg::HelloCode { .. } => 2,
            Msg::CodeReply { .. } => 3,
            Msg::CodeConfirm { .. } => 4,
            Msg::Proof { .. } => 5,
            Msg::Refused { .. } => 6,
            Msg::Accepted => 7,
            Msg::Summary(_) => 8,
            Msg::Part(_) => 9,
            Msg::Done => 10,
            Msg::Report { .. } => 11,
            Msg::WantOriginals(_) => 12,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        match self {
            Msg::HelloKey { version, key: v } | Msg::HelloCode { version, spake: v } => {
                b.extend_from_slice(&version.to_le_bytes());
                b.extend_from_slice(v);
            }
            Msg::CodeReply { spake, confirm } => {
                b.extend_from_slice(confirm);
                b.extend_from_slice(spake);
            }
            Msg::CodeConfirm { confirm } => b.extend_from_slice(confirm),
            Msg::Proof { cert, signature } => {
                b.extend_from_slice(signature);
                b.extend_from_slice(cert);
            }
            Msg::Refused { why, detail } => {
                b.push(*why as u8);
                b.extend_from_slice(detail.as_bytes());
            }
            Msg::Accepted | Msg::Done => {}
            Msg::Summary(v) | Msg::Part(v) => b.extend_from_slice(v),
            Msg::Report { landed, refused } => {
                b.extend_from_slice(&landed.to_le_bytes());
                b.extend_from_slice(&refused.to_le_bytes());
            }
            Msg::WantOriginals(w) => b.push(u8::from(*w)),
        }
        b
    }

    pub fn decode(kind: u8, b: Vec<u8>) -> Result<Msg, MeetError> {
        let bad = || MeetError::Protocol("a message from the other phone is malformed");
        let fixed = |b: &[u8], n: usize| -> Result<(), MeetError> {
            if b.len() < n { Err(bad()) } else { Ok(()) }
        };
        Ok(match kind {
            1 | 2 => {
                fixed(&b, 2)?;
                let version = u16::from_le_bytes([b[0], b[1]]);
                let v = b[2..].to_vec();
                if kind == 1 {
                    Msg::HelloKey { version, key: v }
                } else {
                    Msg::HelloCode { version, spake: v }
                }
            }
            3 => {
                fixed(&b, 32)?;
                Msg::CodeReply {
                    confirm: b[..32].try_into().map_err(|_| bad())?,
                    spake: b[32..].to_vec(),
                }
            }
            4 => Msg::CodeConfirm {
                confirm: b.as_slice().try_into().map_err(|_| bad())?,
            },
            5 => {
                fixed(&b, 64)?;
                Msg::Proof {
                    signature: b[..64].try_into().map_err(|_| bad())?,
                    cert: b[64..].to_vec(),
                }
            }
            6 => {
                fixed(&b, 1)?;
                let why = Refusal::from_u8(b[0]).ok_or_else(bad)?;
                let detail: String = String::from_utf8_lossy(&b[1..]).chars().take(80).collect();
                Msg::Refused { why, detail }
            }
            7 => Msg::Accepted,
            8 => Msg::Summary(b),
            9 => Msg::Part(b),
            10 => Msg::Done,
            11 => {
                if b.len() != 8 {
                    return Err(bad());
                }
                Msg::Report {
                    landed: u32::from_le_bytes(b[..4].try_into().map_err(|_| bad())?),
                    refused: u32::from_le_bytes(b[4..].try_into().map_err(|_| bad())?),
                }
            }
            12 => Msg::WantOriginals(b.first().copied().unwrap_or(0) == 1),
            _ => return Err(bad()),
        })
    }
}

/// Counts the bytes of frames, both ways, for the report and the benchmark.
#[derive(Debug, Default, Clone, Copy)]
pub struct Bytes {
    pub sent: u64,
    pub received: u64,
}

/// Writes one frame.
pub fn send<W: Write>(w: &mut W, m: &Msg, bytes: &mut Bytes) -> Result<(), MeetError> {
    let body = m.encode();
    let mut head = [0u8; 5];
    head[0] = m.kind();
    head[1..].copy_from_slice(&(body.len() as u32).to_le_bytes());
    w.write_all(&head)?;
    w.write_all(&body)?;
    w.flush()?;
    bytes.sent += 5 + body.len() as u64;
    Ok(())
}

/// Reads one frame; a frame over [`MAX_FRAME`] is refused before its bytes are read.
pub fn recv<R: Read>(r: &mut R, bytes: &mut Bytes) -> Result<Msg, MeetError> {
    let mut head = [0u8; 5];
    r.read_exact(&mut head)?;
    let len = u32::from_le_bytes(head[1..].try_into().expect("4 bytes")) as usize;
    if len > MAX_FRAME {
        return Err(MeetError::Protocol(
            "the other phone sent a message that is too large",
        ));
    }
    let mut body = Vec::new();
    r.take(len as u64).read_to_end(&mut body)?;
    if body.len() != len {
        return Err(MeetError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    bytes.received += 5 + len as u64;
    Msg::decode(head[0], body)
}

/// A summary's bytes: count u32, then per document its id (u16 length + bytes) and heads
/// (u16 count + 32 bytes each).
pub fn encode_summary(items: &[(String, Vec<automerge::ChangeHash>)]) -> Vec<u8> {
    let mut b = Vec::with_capacity(items.len() * 64);
    b.extend_from_slice(&(items.len() as u32).to_le_bytes());
    for (id, heads) in items {
        b.extend_from_slice(&(id.len() as u16).to_le_bytes());
        b.extend_from_slice(id.as_bytes());
        b.extend_from_slice(&(heads.len() as u16).to_le_bytes());
        for h in heads {
            b.extend_from_slice(&h.0);
        }
    }
    b
}

/// The inverse of [`encode_summary`]; bounded by the bytes present.
pub fn decode_summary(
    mut b: &[u8],
) -> Result<std::collections::HashMap<String, Vec<automerge::ChangeHash>>, MeetError> {
    let bad = || MeetError::Protocol("the other phone's summary is malformed");
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if b.len() < n {
            return None;
        }
        let (h, t) = b.split_at(n);
        *b = t;
        Some(h)
    }
    let n = u32::from_le_bytes(take(&mut b, 4).ok_or_else(bad)?.try_into().expect("4"));
    let mut out = std::collections::HashMap::new();
    for _ in 0..n {
        let l = u16::from_le_bytes(take(&mut b, 2).ok_or_else(bad)?.try_into().expect("2"));
        let id = std::str::from_utf8(take(&mut b, l as usize).ok_or_else(bad)?)
            .map_err(|_| bad())?
            .to_string();
        let k = u16::from_le_bytes(take(&mut b, 2).ok_or_else(bad)?.try_into().expect("2"));
        let mut heads = Vec::with_capacity((k as usize).min(b.len() / 32));
        for _ in 0..k {
            let h: [u8; 32] = take(&mut b, 32).ok_or_else(bad)?.try_into().expect("32");
            heads.push(automerge::ChangeHash(h));
        }
        out.insert(id, heads);
    }
    if !b.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue12_frames_round_trip_and_bad_frames_are_errors() {
        let msgs = [
            Msg::HelloKey {
                version: 1,
                key: b"KEY".to_vec(),
            },
            Msg::HelloCode {
                version: 1,
                spake: vec![7; 33],
            },
            Msg::CodeReply {
                spake: vec![1; 33],
                confirm: [2; 32],
            },
            Msg::CodeConfirm { confirm: [3; 32] },
            Msg::Proof {
                cert: vec![4; 100],
                signature: [5; 64],
            },
            Msg::Refused {
                why: Refusal::OtherGroup,
                detail: "group-02".into(),
            },
            Msg::Accepted,
            Msg::Summary(encode_summary(&[(
                "r1".into(),
                vec![automerge::ChangeHash([9; 32])],
            )])),
            Msg::Part(vec![1, 2, 3]),
            Msg::Done,
            Msg::Report {
                landed: 3,
                refused: 1,
            },
            Msg::WantOriginals(true),
        ];
        for m in msgs {
            let mut buf = Vec::new();
            let mut n = Bytes::default();
            send(&mut buf, &m, &mut n).unwrap();
            assert_eq!(n.sent, buf.len() as u64);
            let back = recv(&mut buf.as_slice(), &mut Bytes::default()).unwrap();
            assert_eq!(back, m);
            // Every truncation is an error, never a panic.
            for cut in 0..buf.len() {
                assert!(recv(&mut &buf[..cut], &mut Bytes::default()).is_err());
            }
        }
        let mut huge = vec![9u8];
        huge.extend_from_slice(&(MAX_FRAME as u32 + 1).to_le_bytes());
        assert!(recv(&mut huge.as_slice(), &mut Bytes::default()).is_err());
        assert!(Msg::decode(200, vec![]).is_err());
        let s = encode_summary(&[
            ("a".into(), vec![]),
            ("b".into(), vec![automerge::ChangeHash([1; 32])]),
        ]);
        let d = decode_summary(&s).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d["b"], vec![automerge::ChangeHash([1; 32])]);
        for cut in 0..s.len() {
            assert!(decode_summary(&s[..cut]).is_err());
        }
    }
}
