//! Phone to phone (issue 12): `MeetSession` serves a local session from the leader's phone,
//! `meet_join` joins one. Thin wrappers over `sanjin_client::meet`: no logic here, and the
//! errors name no person (a group or device id at most). Both work on a connection of their
//! own, so the app stays usable; call them from a background thread.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sanjin_client::meet::{self, MeetError};
use sanjin_store::{Durability, Store};

use crate::error::ApiError;
use crate::guard::guard;
use crate::store::DeviceStore;
use crate::sync::SyncCancel;

/// How a session is served; `None` keeps the default.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct MeetSettings {
    /// How long the session accepts joiners, in minutes (10 by default).
    #[uniffi(default)]
    pub minutes: Option<u32>,
    /// Where to listen, `addr:port` (default every interface, a free port).
    #[uniffi(default)]
    pub bind: Option<String>,
    /// Photo originals after the records (both sides must ask).
    #[uniffi(default)]
    pub originals: bool,
}

/// A record the receiving phone refused, with the reason in Chinese.
#[derive(Debug, Clone, uniffi::Record)]
pub struct MeetRefusedRecord {
    /// Empty when a whole part was refused.
    pub record_id: String,
    pub reason_zh: String,
}

/// A record that became conflicted: the leader resolves it.
#[derive(Debug, Clone, uniffi::Record)]
pub struct MeetConflict {
    pub record_id: String,
    pub fields: Vec<String>,
}

/// One exchange, from this phone's side.
#[derive(Debug, Clone, uniffi::Record)]
pub struct MeetReport {
    /// The other phone's member id and device id (from its verified certificate).
    pub peer_member: String,
    pub peer_device: String,
    /// Records that arrived and landed here.
    pub landed: u32,
    /// Records sent to the other phone.
    pub sent: u32,
    pub refused: Vec<MeetRefusedRecord>,
    pub conflicts: Vec<MeetConflict>,
    pub originals_sent: u32,
    pub originals_received: u32,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

impl MeetReport {
    fn of(r: &meet::ExchangeReport) -> MeetReport {
        MeetReport {
            peer_member: r.peer.member.clone(),
            peer_device: r.peer.device.clone(),
            landed: r.landed as u32,
            sent: r.sent as u32,
            refused: r
                .refused
                .iter()
                .map(|d| MeetRefusedRecord {
                    record_id: d.doc_id.clone(),
                    reason_zh: d.reason.clone(),
                })
                .collect(),
            conflicts: r
                .conflicts
                .iter()
                .map(|c| MeetConflict {
                    record_id: c.doc_id.clone(),
                    fields: c.fields.clone(),
                })
                .collect(),
            originals_sent: r.originals_sent as u32,
            originals_received: r.originals_received as u32,
            bytes_sent: r.bytes_sent,
            bytes_received: r.bytes_received,
        }
    }
}

/// One joiner as the leader's phone saw it: its report, or why it did not join.
#[derive(Debug, Clone, uniffi::Record)]
pub struct MeetPeer {
    pub report: Option<MeetReport>,
    pub error_zh: Option<String>,
}

/// The session now, for the leader's screen.
#[derive(Debug, Clone, uniffi::Record)]
pub struct MeetStatus {
    pub peers: Vec<MeetPeer>,
    /// Joiners being served now.
    pub active: u32,
    /// The six-digit code still works (not closed by three wrong codes, not expired).
    pub code_open: bool,
    pub expired: bool,
    pub stopped: bool,
    pub remaining_seconds: u32,
}

fn status_of(s: meet::MeetStatus) -> MeetStatus {
    MeetStatus {
        peers: s
            .peers
            .iter()
            .map(|p| MeetPeer {
                report: p.exchange.as_ref().map(MeetReport::of),
                error_zh: p.error.clone(),
            })
            .collect(),
        active: s.active as u32,
        code_open: s.code_open,
        expired: s.expired,
        stopped: s.stopped,
        remaining_seconds: (s.remaining_ms / 1000) as u32,
    }
}

/// The bridge's error for a meeting error: a refusal's stable `reason` and the Chinese text.
fn meet_error(e: MeetError) -> ApiError {
    let reason = match &e {
        MeetError::BadTarget => "bad_code",
        MeetError::Newer => "newer",
        MeetError::NotEnrolled => "not_enrolled",
        MeetError::Unreachable(..) | MeetError::Io(_) => "offline",
        MeetError::FingerprintMismatch => "fingerprint_mismatch",
        MeetError::WrongKey => "wrong_key",
        MeetError::WrongCode { .. } => "wrong_code",
        MeetError::CodeClosed => "code_closed",
        MeetError::Expired => "expired",
        MeetError::Stopped => "stopped",
        MeetError::NotByServer { .. } => "cert_not_by_server",
        MeetError::OtherGroup { .. } => "other_group",
        MeetError::Revoked { .. } => "revoked",
        MeetError::BadProof { .. } => "bad_proof",
        MeetError::RefusedBy(_) => "refused_by_peer",
        MeetError::Cancelled => {
            return ApiError::Cancelled { message_zh: e.zh() };
        }
        MeetError::Store(_) => {
            return ApiError::Storage {
                message_zh: "本机数据库出错：请重启三进后重试".into(),
            };
        }
        MeetError::Protocol(_) | MeetError::Tls(_) | MeetError::Bundle(_) => "protocol",
    };
    ApiError::MeetRefused {
        reason: reason.into(),
        message_zh: e.zh(),
    }
}

/// A second connection to the app's store file, for a session that runs beside the app.
fn own_connection(store: &DeviceStore) -> Result<Store, ApiError> {
    let path = store.with(|s| Ok(s.path().to_path_buf()))?;
    Store::open(&path, Durability::Full).map_err(|_| ApiError::Storage {
        message_zh: "无法打开本机数据文件：请重启三进后重试".into(),
    })
}

/// A local session served from this phone (the leader's, often the Wi-Fi hotspot). Show
/// `qr_text` as a QR code and `code` for typing; poll `status`; `stop` when done (it also stops
/// by itself at the expiry, refusing new joiners).
#[derive(uniffi::Object)]
pub struct MeetSession {
    inner: Mutex<Option<meet::MeetSession>>,
    qr: String,
    code: String,
}

#[uniffi::export]
impl MeetSession {
    /// Opens a session on the store's records (this phone must be enrolled).
    #[uniffi::constructor]
    pub fn serve(store: Arc<DeviceStore>, settings: MeetSettings) -> Result<Arc<Self>, ApiError> {
        guard(|| {
            let mut opts = meet::ServeOptions::default();
            if let Some(m) = settings.minutes {
                opts.ttl = Duration::from_secs(u64::from(m.clamp(1, 120)) * 60);
            }
            if let Some(b) = &settings.bind {
                opts.bind = b.parse().map_err(|_| {
                    ApiError::input("bind", "bad_format", "监听地址应为“地址:端口”")
                })?;
            }
            opts.originals = settings.originals;
            let s = meet::MeetSession::serve(own_connection(&store)?, opts).map_err(meet_error)?;
            Ok(Arc::new(MeetSession {
                qr: s.qr_text(),
                code: s.invite().code_text(),
                inner: Mutex::new(Some(s)),
            }))
        })
    }

    /// `sanjin-meet:1:<addr>:<port>:<key>:<fingerprint>`: render it as a QR code.
    pub fn qr_text(&self) -> String {
        self.qr.clone()
    }

    /// `123456@addr:port`: what a member types when scanning is not possible.
    pub fn code(&self) -> String {
        self.code.clone()
    }

    pub fn status(&self) -> MeetStatus {
        let s = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match s.as_ref() {
            Some(s) => status_of(s.status()),
            None => MeetStatus {
                peers: Vec::new(),
                active: 0,
                code_open: false,
                expired: false,
                stopped: true,
                remaining_seconds: 0,
            },
        }
    }

    /// Stops the session (waits for joiners being served) and answers the final status.
    pub fn stop(&self) -> MeetStatus {
        let mut slot = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.take() {
            Some(mut s) => status_of(s.stop()),
            None => MeetStatus {
                peers: Vec::new(),
                active: 0,
                code_open: false,
                expired: false,
                stopped: true,
                remaining_seconds: 0,
            },
        }
    }
}

/// Joins a session with the scanned QR text or a typed `123456@addr:port`, and exchanges
/// records (and, `originals`, photo originals) with the leader's phone. Blocking: call it from
/// a background thread; `cancel` stops it (what was imported stays).
#[uniffi::export]
pub fn meet_join(
    store: Arc<DeviceStore>,
    target: String,
    originals: bool,
    cancel: Option<Arc<SyncCancel>>,
) -> Result<MeetReport, ApiError> {
    guard(|| {
        let mut s = own_connection(&store)?;
        let handle = meet::MeetCancel::new();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // The app cancels through the same object as a sync; a watcher relays it.
        let watcher = cancel.map(|c| {
            let (h, d) = (handle.clone(), done.clone());
            std::thread::spawn(move || {
                while !d.load(std::sync::atomic::Ordering::SeqCst) {
                    if c.is_cancelled() {
                        h.cancel();
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        });
        let r = meet::join(
            &mut s,
            &target,
            meet::JoinOptions {
                originals,
                cancel: Some(handle),
                ..meet::JoinOptions::default()
            },
        );
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(w) = watcher {
            let _ = w.join();
        }
        r.map(|r| MeetReport::of(&r)).map_err(meet_error)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sanjin_client::bundle::testing::TestTrust;
    use sanjin_core::domain::RecordData;
    use sanjin_core::{RecordDoc, testdata};
    use sanjin_store::Identity;

    const T0: i64 = 1_747_616_400_000;

    fn phone(
        dir: &std::path::Path,
        t: &TestTrust,
        n: u8,
        role: &str,
        group: &str,
    ) -> Arc<DeviceStore> {
        let path = dir.join(format!("p{n}.sqlite"));
        let identity = Identity {
            member: format!("member-{n:04}"),
            device: format!("device-{n:02}"),
            actor: vec![n; 16],
        };
        let mut s = Store::init(&path, &identity, Durability::Normal).unwrap();
        t.enroll(&mut s, 100 + n, role, Some(group), T0);
        let mut v = testdata::visit();
        v.group = group.into();
        let mut doc =
            RecordDoc::create(&format!("v-{n:02}"), &RecordData::Visit(v), &s.author(), T0)
                .unwrap();
        s.insert(&mut doc, true).unwrap();
        drop(s);
        DeviceStore::open(path.to_string_lossy().into_owned()).unwrap()
    }

    /// Issue 12: the bridge serves and joins through `sanjin_client::meet`; refusals are
    /// `MeetRefused` with a stable reason and no personal data.
    #[test]
    fn issue12_bridge_serves_joins_and_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let t = TestTrust::new(5, &["group-01", "group-02"], T0);
        let leader = phone(dir.path(), &t, 2, "leader", "group-01");
        let member = phone(dir.path(), &t, 1, "member", "group-01");
        let stranger = phone(dir.path(), &t, 27, "member", "group-02");
        let session = MeetSession::serve(
            leader,
            MeetSettings {
                minutes: Some(1),
                bind: Some("127.0.0.1:0".into()),
                originals: false,
            },
        )
        .unwrap();
        assert!(session.qr_text().starts_with("sanjin-meet:1:127.0.0.1:"));
        let r = meet_join(member.clone(), session.code(), false, None).unwrap();
        assert_eq!(
            (r.peer_member.as_str(), r.landed, r.sent),
            ("member-0002", 1, 1)
        );
        match meet_join(stranger, session.qr_text(), false, None) {
            Err(ApiError::MeetRefused { reason, message_zh }) => {
                assert_eq!(reason, "other_group");
                assert!(message_zh.contains("另一个活动组"), "{message_zh}");
                assert!(!message_zh.contains("member-0027"));
            }
            other => panic!("{other:?}"),
        }
        match meet_join(member, "123@x".into(), false, None) {
            Err(ApiError::MeetRefused { reason, .. }) => assert_eq!(reason, "bad_code"),
            other => panic!("{other:?}"),
        }
        let st = session.stop();
        assert!(st.stopped);
        assert_eq!(st.peers.iter().filter(|p| p.report.is_some()).count(), 1);
        assert_eq!(session.status().peers.len(), 0);
    }
}
