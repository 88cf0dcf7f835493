//! The joiner's side: connect, authenticate with the QR's key or the code, prove and judge the
//! device certificates, exchange.

use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustls::pki_types::ServerName;
use sanjin_store::Store;

use super::auth::{CodeJoiner, Role, Trust};
use super::exchange::{self, ExchangeReport};
use super::tls::{self, EXPORTER_LABEL, SERVER_NAME};
use super::wire::{Bytes, MEET_VERSION, Msg, recv, send};
use super::{MeetError, MeetStep, Target};

/// Cancels a running [`join`] from another thread: the connection is shut down, the join returns
/// [`MeetError::Cancelled`], and whatever was imported before stays (each import is whole).
#[derive(Debug, Default, Clone)]
pub struct MeetCancel(Arc<CancelInner>);

#[derive(Debug, Default)]
struct CancelInner {
    cancelled: AtomicBool,
    socket: Mutex<Option<TcpStream>>,
}

impl MeetCancel {
    pub fn new() -> MeetCancel {
        MeetCancel::default()
    }

    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::SeqCst);
        let s = self.0.socket.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = s.as_ref() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    fn attach(&self, s: &TcpStream) {
        *self.0.socket.lock().unwrap_or_else(PoisonError::into_inner) = s.try_clone().ok();
    }
}

/// How to join.
pub struct JoinOptions<'a> {
    /// Photo originals after the records (both ways).
    pub originals: bool,
    /// Connect and per-read/write timeout.
    pub timeout: Duration,
    pub cancel: Option<MeetCancel>,
    pub progress: Option<&'a mut dyn FnMut(&MeetStep)>,
}

impl Default for JoinOptions<'_> {
    fn default() -> Self {
        JoinOptions {
            originals: false,
            timeout: Duration::from_secs(60),
            cancel: None,
            progress: None,
        }
    }
}

/// Joins the session `target` (the QR text or `123456@addr:port`) and exchanges what each side
/// lacks. Nothing is saved before both devices are verified; what arrives is imported with
/// the same checks as any bundle.
pub fn join(
    store: &mut Store,
    target: &str,
    opts: JoinOptions<'_>,
) -> Result<ExchangeReport, MeetError> {
    let target = Target::parse(target)?;
    let trust = Trust::of(store)?;
    let cancel = opts.cancel.clone().unwrap_or_default();
    let mut progress = opts.progress;
    let mut step = |s: MeetStep| {
        if let Some(p) = progress.as_mut() {
            p(&s);
        }
    };
    let result = (|| {
        step(MeetStep::Connecting);
        let sock = TcpStream::connect_timeout(&target.addr(), opts.timeout)
            .map_err(|e| MeetError::Unreachable(target.addr(), e))?;
        cancel.attach(&sock);
        if cancel.is_cancelled() {
            return Err(MeetError::Cancelled);
        }
        sock.set_nodelay(true)?;
        sock.set_read_timeout(Some(opts.timeout))?;
        sock.set_write_timeout(Some(opts.timeout))?;
        step(MeetStep::Authenticating);
        let pin = match &target {
            Target::Qr { fingerprint, .. } => Some(*fingerprint),
            Target::Code { .. } => None,
        };
        let name = ServerName::try_from(SERVER_NAME).expect("a valid DNS name");
        let conn = rustls::ClientConnection::new(tls::client_config(pin)?, name)
            .map_err(|e| MeetError::Tls(e.to_string()))?;
        let mut s = rustls::StreamOwned::new(conn, sock);
        while s.conn.is_handshaking() {
            if let Err(e) = s.conn.complete_io(&mut s.sock) {
                let cert_refused = e
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<rustls::Error>())
                    .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
                return Err(if cert_refused {
                    MeetError::FingerprintMismatch
                } else {
                    e.into()
                });
            }
        }
        let seen = s
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or(MeetError::Protocol(
                "the leader's phone sent no certificate",
            ))
            .and_then(tls::spki_sha256)?;
        let exporter: [u8; 32] = s
            .conn
            .export_keying_material([0u8; 32], EXPORTER_LABEL, None)
            .map_err(|e| MeetError::Tls(e.to_string()))?;
        let mut bytes = Bytes::default();
        match &target {
            Target::Qr { key, .. } => send(
                &mut s,
                &Msg::HelloKey {
                    version: MEET_VERSION,
                    key: key.as_bytes().to_vec(),
                },
                &mut bytes,
            )?,
            Target::Code { code, .. } => {
                let (j, m) = CodeJoiner::start(code);
                send(
                    &mut s,
                    &Msg::HelloCode {
                        version: MEET_VERSION,
                        spake: m,
                    },
                    &mut bytes,
                )?;
                let (spake, confirm) = match recv(&mut s, &mut bytes)? {
                    Msg::CodeReply { spake, confirm } => (spake, confirm),
                    Msg::Refused { why, detail } => {
                        return Err(MeetError::from_refusal(why, detail));
                    }
                    _ => return Err(MeetError::Protocol("unexpected message after the code")),
                };
                let (mine, ok) = j.finish(&spake, &confirm, &seen, &exporter);
                send(&mut s, &Msg::CodeConfirm { confirm: mine }, &mut bytes)?;
                if !ok {
                    // The leader answers with the attempts left.
                    return Err(match recv(&mut s, &mut bytes) {
                        Ok(Msg::Refused { why, detail }) => MeetError::from_refusal(why, detail),
                        _ => MeetError::WrongCode { left: 0 },
                    });
                }
            }
        }
        step(MeetStep::Verifying);
        let leader = match recv(&mut s, &mut bytes)? {
            Msg::Proof { cert, signature } => {
                match trust.judge(Role::Leader, &cert, &signature, &exporter, &seen) {
                    Ok(c) => c,
                    Err((why, detail)) => {
                        let _ = send(
                            &mut s,
                            &Msg::Refused {
                                why,
                                detail: detail.clone(),
                            },
                            &mut bytes,
                        );
                        return Err(MeetError::from_judged(why, detail));
                    }
                }
            }
            Msg::Refused { why, detail } => return Err(MeetError::from_refusal(why, detail)),
            _ => {
                return Err(MeetError::Protocol(
                    "unexpected message instead of the leader's proof",
                ));
            }
        };
        send(
            &mut s,
            &trust.proof(Role::Joiner, &exporter, &seen),
            &mut bytes,
        )?;
        match recv(&mut s, &mut bytes)? {
            Msg::Accepted => {}
            Msg::Refused { why, detail } => return Err(MeetError::from_refusal(why, detail)),
            _ => {
                return Err(MeetError::Protocol(
                    "unexpected message instead of the acceptance",
                ));
            }
        }
        let mut report = exchange::joiner(
            &mut s,
            &mut bytes,
            store,
            &exchange::selection(&trust.cert, &leader),
            opts.originals,
            &mut step,
        )?;
        report.peer = exchange::Peer::of(&leader);
        report.bytes_sent = bytes.sent;
        report.bytes_received = bytes.received;
        s.conn.send_close_notify();
        let _ = s.conn.complete_io(&mut s.sock);
        step(MeetStep::Done);
        Ok(report)
    })();
    match result {
        Err(_) if cancel.is_cancelled() => Err(MeetError::Cancelled),
        r => r,
    }
}
