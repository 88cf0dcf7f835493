//! Phone to phone without any server (issue 12): a leader's phone serves a short-lived session
//! on the local network; members' phones join it with the QR text or the six-digit code, and
//! both exchange what the other lacks as bundle parts, imported with the same checks as any
//! bundle (signatures against device certificates, scope by the certificates' roles).
//!
//! Blocking `std::net` and rustls (no async runtime): call it from a background thread. The
//! session runs in steps an app can show ([`MeetStep`]) and cancel ([`MeetCancel`]).
//!
//! - [`MeetSession::serve`] opens the session: a certificate made for this session only, a
//!   one-time key and a six-digit code, an expiry (10 minutes by default). [`Invite`] is what
//!   the leader's phone shows: `sanjin-meet:1:<addr>:<port>:<key>:<spki sha256 hex>` as a QR,
//!   and the code. Joiners are served each on a thread of its own; the leader's store is one
//!   writer behind a mutex, so concurrent joiners import one at a time.
//! - [`join`] connects with the QR text (TLS pinned to the fingerprint, then the key) or with
//!   `123456@addr:port` (SPAKE2 over the code inside TLS, whose key confirms the certificate
//!   fingerprint each side saw: a man in the middle must guess the code online, and three wrong
//!   codes or the expiry close it).
//! - Then both sides prove their device certificate (verified against the server key each store
//!   pinned at enrollment) by signing the channel's transcript; another group's device (unless
//!   staff or admin), a revoked device, a tampered certificate are refused before anything is
//!   exchanged, with a Chinese message ([`MeetError::zh`]) saying what to do.
//!
//! Wire: docs/PROTOCOL.md, "Phone to phone".

mod auth;
mod exchange;
mod join;
mod serve;
mod tls;
mod wire;

use std::net::{IpAddr, SocketAddr};

pub use exchange::{ConflictDoc, ExchangeReport, Peer, RefusedDoc};
pub use join::{JoinOptions, MeetCancel, join};
pub use serve::{MeetSession, MeetStatus, PeerReport, ServeOptions};
pub use wire::MEET_VERSION;

/// The QR payload's prefix.
pub const QR_PREFIX: &str = "sanjin-meet";

/// The steps of a session, for a progress display.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum MeetStep {
    Connecting,
    /// TLS, then the key or the code.
    Authenticating,
    /// Both device certificates.
    Verifying,
    Summaries,
    /// Sending bundle parts: `done` of `total`.
    Sending {
        done: usize,
        total: usize,
    },
    Receiving {
        parts: usize,
    },
    Importing,
    Originals,
    Done,
}

/// What the leader's phone shows and a joiner types or scans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub addr: SocketAddr,
    /// The one-time key (base32, no padding).
    pub key: String,
    /// SHA-256 of the session certificate's public key.
    pub fingerprint: [u8; 32],
    /// Six digits.
    pub code: String,
}

impl Invite {
    /// `sanjin-meet:1:<addr>:<port>:<key>:<fingerprint hex>`.
    pub fn qr_text(&self) -> String {
        format!(
            "{QR_PREFIX}:{MEET_VERSION}:{}:{}:{}:{}",
            self.addr.ip(),
            self.addr.port(),
            self.key,
            crate::hex(&self.fingerprint)
        )
    }

    /// `123456@addr:port`, what a member types.
    pub fn code_text(&self) -> String {
        match self.addr.ip() {
            IpAddr::V6(ip) => format!("{}@[{ip}]:{}", self.code, self.addr.port()),
            IpAddr::V4(ip) => format!("{}@{ip}:{}", self.code, self.addr.port()),
        }
    }

    /// The QR code drawn with Unicode half blocks, for a terminal.
    pub fn qr_terminal(&self) -> String {
        use qrcode::render::unicode::Dense1x2;
        match qrcode::QrCode::new(self.qr_text().as_bytes()) {
            Ok(q) => q
                .render::<Dense1x2>()
                .dark_color(Dense1x2::Light)
                .light_color(Dense1x2::Dark)
                .quiet_zone(true)
                .build(),
            Err(_) => String::new(),
        }
    }
}

/// How a joiner reaches the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// From the QR: the fingerprint is pinned, the key proves the joiner saw the QR.
    Qr {
        addr: SocketAddr,
        key: String,
        fingerprint: [u8; 32],
    },
    /// Typed: the six-digit code and the address shown beside it.
    Code { addr: SocketAddr, code: String },
}

impl Target {
    /// Parses the QR text or `123456@addr:port`.
    pub fn parse(s: &str) -> Result<Target, MeetError> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix(QR_PREFIX).and_then(|r| r.strip_prefix(':')) {
            let (version, rest) = rest.split_once(':').ok_or(MeetError::BadTarget)?;
            let version: u16 = version.parse().map_err(|_| MeetError::BadTarget)?;
            if version > MEET_VERSION {
                return Err(MeetError::Newer);
            }
            let mut tail = rest.rsplitn(4, ':');
            let fp = tail.next().ok_or(MeetError::BadTarget)?;
            let key = tail.next().ok_or(MeetError::BadTarget)?;
            let port = tail.next().ok_or(MeetError::BadTarget)?;
            let host = tail.next().ok_or(MeetError::BadTarget)?;
            let fingerprint: [u8; 32] = crate::unhex(fp)
                .and_then(|b| b.try_into().ok())
                .ok_or(MeetError::BadTarget)?;
            if key.is_empty() || key.len() > 64 {
                return Err(MeetError::BadTarget);
            }
            return Ok(Target::Qr {
                addr: addr(host, port)?,
                key: key.to_string(),
                fingerprint,
            });
        }
        let (code, at) = s.split_once('@').ok_or(MeetError::BadTarget)?;
        let code = code.trim();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MeetError::BadTarget);
        }
        let (host, port) = at.trim().rsplit_once(':').ok_or(MeetError::BadTarget)?;
        Ok(Target::Code {
            addr: addr(host, port)?,
            code: code.to_string(),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        match self {
            Target::Qr { addr, .. } | Target::Code { addr, .. } => *addr,
        }
    }
}

fn addr(host: &str, port: &str) -> Result<SocketAddr, MeetError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = host.parse().map_err(|_| MeetError::BadTarget)?;
    let port: u16 = port.parse().map_err(|_| MeetError::BadTarget)?;
    Ok(SocketAddr::new(ip, port))
}

/// Everything that can stop a meeting. [`MeetError::zh`] says it to a member with what to do;
/// no message carries a resident's or a member's name.
#[derive(Debug, thiserror::Error)]
pub enum MeetError {
    #[error("not a meeting QR text or code")]
    BadTarget,
    #[error("the meeting was made by a newer sanjin")]
    Newer,
    #[error("this device is not enrolled (no device certificate)")]
    NotEnrolled,
    #[error("cannot reach the leader's phone at {0}: {1}")]
    Unreachable(SocketAddr, std::io::Error),
    #[error("the leader's certificate does not match the QR code")]
    FingerprintMismatch,
    #[error("wrong one-time key")]
    WrongKey,
    #[error("wrong code ({left} attempts left)")]
    WrongCode { left: u32 },
    #[error("the code is closed after three wrong attempts")]
    CodeClosed,
    #[error("the meeting has expired")]
    Expired,
    #[error("the meeting was closed by the leader")]
    Stopped,
    #[error(
        "the other phone's device certificate is not from this server or was altered ({device})"
    )]
    NotByServer { device: String },
    #[error("the other phone belongs to another group ({group})")]
    OtherGroup { group: String },
    #[error("the other phone's device is revoked ({device})")]
    Revoked { device: String },
    #[error("the other phone's proof of its device key is invalid ({device})")]
    BadProof { device: String },
    /// The other side refused this phone (its reason, worded here).
    #[error("refused by the other phone: {0}")]
    RefusedBy(Box<MeetError>),
    #[error("cancelled")]
    Cancelled,
    #[error("protocol: {0}")]
    Protocol(&'static str),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] sanjin_store::Error),
    #[error("bundle: {0}")]
    Bundle(String),
}

impl MeetError {
    /// The message a member reads: what happened and what to do.
    pub fn zh(&self) -> String {
        match self {
            MeetError::BadTarget => "无法识别的会面码：请扫描组长手机上的二维码，或输入“六位数字@地址:端口”（例如 123456@192.168.43.1:7443）。".into(),
            MeetError::Newer => "这个会面由更新版本的三进发起：请先升级本机的三进，再扫码加入。".into(),
            MeetError::NotEnrolled => "本机尚未登记（没有设备证书）：请先在有信号时连上服务器登记本机（sanjin device enroll），再参加会面同步。".into(),
            MeetError::Unreachable(a, _) => format!("连不上组长的手机（{a}）：请确认两部手机连在同一个 Wi-Fi 或组长的热点上，且组长仍在会面中。"),
            MeetError::FingerprintMismatch => "对方手机的证书与二维码不符：可能有人冒充组长，请不要继续，重新扫描组长手机上当前显示的二维码。".into(),
            MeetError::WrongKey => "二维码已失效（不是本次会面的二维码）：请扫描组长手机上当前显示的二维码。".into(),
            MeetError::WrongCode { left } => format!("会面码不对（或有人在中间拦截）：请核对组长手机上显示的六位数字后重试，还可再试 {left} 次。"),
            MeetError::CodeClosed => "会面码已因连续输错三次而关闭：请扫描组长手机上的二维码加入，或请组长重新开启会面。".into(),
            MeetError::Expired => "会面已过期：请组长重新开启会面（sanjin device meet --serve），再扫码或输入新的会面码。".into(),
            MeetError::Stopped => "组长已结束会面：如还需同步，请组长重新开启会面。".into(),
            MeetError::NotByServer { device } => format!("对方手机（设备 {device}）的设备证书不是本机登记的服务器签发的，或已被改动：不接收它的记录。请对方在有信号时连上服务器重新登记后再会面。"),
            MeetError::OtherGroup { group } => format!("对方手机属于另一个活动组（{group}）：会面同步只在同组成员之间进行，请找本组组长的手机加入。"),
            MeetError::Revoked { device } => format!("对方设备（{device}）已被注销：不接收它的记录。请对方联系机关工作人员重新登记。"),
            MeetError::BadProof { device } => format!("对方手机（设备 {device}）无法证明持有自己的设备密钥：不接收它的记录。请对方重新登记本机后再会面。"),
            MeetError::RefusedBy(why) => format!("对方手机拒绝了本机：{}", why.zh_as_judged()),
            MeetError::Cancelled => "会面同步已取消：已收到并核对过的记录已保存，其余未改动，可随时重新加入。".into(),
            MeetError::Protocol(_) | MeetError::Tls(_) => "与对方手机的通信出错：请双方都更新到同一版本的三进后重新加入会面。".into(),
            MeetError::Io(_) => "与对方手机的连接中断：已保存的记录未受影响，请靠近组长的手机后重新加入会面。".into(),
            MeetError::Store(e) => format!("本机数据库出错：{e}。请重启三进后重试。"),
            MeetError::Bundle(_) => "对方发来的数据无法读取：已保存的记录未受影响，请双方更新三进后重新加入会面。".into(),
        }
    }

    /// The words for a refusal the other phone made of this one (the detail names this phone's
    /// own device or group).
    fn zh_as_judged(&self) -> String {
        match self {
            MeetError::NotByServer { device } => format!(
                "本机（设备 {device}）的设备证书无法核实（不是对方登记的服务器签发的，或已被改动）。请在有信号时连上服务器重新登记本机（sanjin device enroll）后再会面。"
            ),
            MeetError::OtherGroup { group } => format!(
                "本机属于活动组 {group}，与对方不是同一个活动组：会面同步只在同组成员之间进行，请找本组组长的手机加入。"
            ),
            MeetError::Revoked { device } => format!(
                "本机（设备 {device}）已被注销，它的记录不能被接收。请联系机关工作人员重新登记本机。"
            ),
            MeetError::BadProof { device } => format!(
                "本机（设备 {device}）未能证明持有自己的设备密钥。请在有信号时重新登记本机后再会面。"
            ),
            other => other.zh(),
        }
    }

    /// The refusal this error is sent as, when the other side should hear it.
    fn refusal(&self) -> Option<(wire::Refusal, String)> {
        use wire::Refusal as R;
        Some(match self {
            MeetError::WrongKey => (R::WrongKey, String::new()),
            MeetError::WrongCode { left } => (R::WrongCode, left.to_string()),
            MeetError::CodeClosed => (R::CodeClosed, String::new()),
            MeetError::Expired => (R::Expired, String::new()),
            MeetError::Stopped => (R::Stopped, String::new()),
            MeetError::Newer => (R::NewerVersion, String::new()),
            MeetError::NotByServer { device } => (R::NotByServer, device.clone()),
            MeetError::OtherGroup { group } => (R::OtherGroup, group.clone()),
            MeetError::Revoked { device } => (R::Revoked, device.clone()),
            MeetError::BadProof { device } => (R::BadProof, device.clone()),
            _ => return None,
        })
    }

    /// A refusal received from the other side. The detail names the receiver's own
    /// group or device when the other side judged this one, so it is kept as sent.
    fn from_refusal(why: wire::Refusal, detail: String) -> MeetError {
        use wire::Refusal as R;
        match why {
            R::WrongKey => MeetError::WrongKey,
            R::WrongCode => MeetError::WrongCode {
                left: detail.parse().unwrap_or(0),
            },
            R::CodeClosed => MeetError::CodeClosed,
            R::Expired => MeetError::Expired,
            R::Stopped | R::Busy => MeetError::Stopped,
            R::NewerVersion => MeetError::Newer,
            R::NotByServer => {
                MeetError::RefusedBy(Box::new(MeetError::NotByServer { device: detail }))
            }
            R::OtherGroup => {
                MeetError::RefusedBy(Box::new(MeetError::OtherGroup { group: detail }))
            }
            R::Revoked => MeetError::RefusedBy(Box::new(MeetError::Revoked { device: detail })),
            R::BadProof => MeetError::RefusedBy(Box::new(MeetError::BadProof { device: detail })),
        }
    }

    fn from_judged(why: wire::Refusal, detail: String) -> MeetError {
        use wire::Refusal as R;
        match why {
            R::NotByServer => MeetError::NotByServer { device: detail },
            R::OtherGroup => MeetError::OtherGroup { group: detail },
            R::Revoked => MeetError::Revoked { device: detail },
            _ => MeetError::BadProof { device: detail },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue12_targets_parse_from_qr_text_and_typed_code() {
        let inv = Invite {
            addr: "192.168.43.1:7443".parse().unwrap(),
            key: "ABCDEFGHIJKLMNOPQRSTUVWXYZ".into(),
            fingerprint: [0xab; 32],
            code: "012345".into(),
        };
        let qr = inv.qr_text();
        assert!(qr.starts_with("sanjin-meet:1:192.168.43.1:7443:ABCDEFGHIJKLMNOPQRSTUVWXYZ:abab"));
        assert_eq!(
            Target::parse(&qr).unwrap(),
            Target::Qr {
                addr: inv.addr,
                key: inv.key.clone(),
                fingerprint: [0xab; 32]
            }
        );
        assert_eq!(
            Target::parse(&inv.code_text()).unwrap(),
            Target::Code {
                addr: inv.addr,
                code: "012345".into()
            }
        );
        let v6 = Invite {
            addr: "[fe80::1]:9".parse().unwrap(),
            ..inv.clone()
        };
        assert_eq!(Target::parse(&v6.qr_text()).unwrap().addr(), v6.addr);
        assert_eq!(Target::parse(&v6.code_text()).unwrap().addr(), v6.addr);
        assert!(!inv.qr_terminal().is_empty());
        for bad in [
            "",
            "12345@1.2.3.4:5",
            "abcdef@1.2.3.4:5",
            "123456@host:5",
            "sanjin-meet:1:1.2.3.4:5:K:zz",
        ] {
            assert!(
                matches!(Target::parse(bad), Err(MeetError::BadTarget)),
                "{bad}"
            );
        }
        assert!(matches!(
            Target::parse(&qr.replacen(":1:", ":2:", 1)),
            Err(MeetError::Newer)
        ));
    }
}
