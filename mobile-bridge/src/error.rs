//! The one public error of the bridge. Every variant says what the app can do about it; every
//! message is about the kind of problem, never its content: no member names, no record fields,
//! no values the member typed, no file paths.

use sanjin_core::domain::RecordKind;
use sanjin_core::{Reason, ValidationError};

/// What went wrong, for the foreign side. `message_zh` is for members; the English `Display`
/// (the exception's message) is for logs.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum ApiError {
    /// A value the member can correct: show `message_zh` next to the field `field` (a schema
    /// name such as `start`, or `record`/`status`/`kind`/`id`). `reason` is a stable code:
    /// `empty`, `too_long`, `bad_format`, `unknown_value`, `out_of_range`, `unknown_field`,
    /// `wrong_edit`, `no_conflict`, `invalid_transition`, `not_a_transition`, `deleted`, …
    #[error("invalid input: field `{field}`: {reason}")]
    InvalidInput {
        field: String,
        reason: String,
        message_zh: String,
    },
    /// No record with this id on the device (or not an id at all).
    #[error("no such record")]
    NotFound { message_zh: String },
    /// A photo was refused: not JPEG, PNG or WebP by its content, damaged, or too large to
    /// decode safely. `reason` is a stable code: `empty`, `unsupported`, `corrupt`,
    /// `too_large` (pixels), `file_too_large` (bytes), `too_much_memory`. `message_zh` says which
    /// formats and sizes are accepted.
    #[error("the photo was refused: {reason}")]
    PhotoRefused { reason: String, message_zh: String },
    /// The store file (or a file given to the call) does not exist, or its folder does not.
    #[error("file not found")]
    FileMissing { message_zh: String },
    /// The file is not a sanjin device store.
    #[error("not a sanjin device store")]
    NotAStore { message_zh: String },
    /// `create` on a file that already holds a store: open it instead.
    #[error("the store already exists")]
    StoreExists { message_zh: String },
    /// The store was closed; open it again.
    #[error("the store is closed")]
    StoreClosed { message_zh: String },
    /// The store or the server is newer than this app: update the app. Nothing was changed.
    #[error("upgrade needed")]
    UpgradeNeeded { message_zh: String },
    /// A record is stored damaged; the rest of the store works. Get it again by syncing or
    /// merging from a colleague's device.
    #[error("a record is damaged")]
    Damaged { message_zh: String },
    /// The device is not enrolled with a sync server: enroll first.
    #[error("not enrolled")]
    NotEnrolled { message_zh: String },
    /// The enrollment code is invalid, used, expired or for another member; or the device is
    /// already enrolled. Ask the administrator for a new code.
    #[error("enrollment refused")]
    EnrollmentRefused { message_zh: String },
    /// The server address is not a valid `https://host:port` (plain http only on loopback).
    #[error("bad server address")]
    BadServerAddress { message_zh: String },
    /// No connection, or it broke or timed out. Everything saved stays saved: retry later.
    #[error("offline or the connection broke")]
    Offline { message_zh: String },
    /// The server's certificate is not trusted (or the pinned certificate is not a certificate).
    #[error("the server's certificate is not trusted")]
    Untrusted { message_zh: String },
    /// The server refused this device's credentials (revoked): contact the administrator.
    #[error("the device is not authorized")]
    Unauthorized { message_zh: String },
    /// The server is unavailable or answered with an error (`status` is the HTTP status, 0 when
    /// the answer could not be read). Retry later.
    #[error("server error (HTTP {status})")]
    Server { status: u16, message_zh: String },
    /// The sync was cancelled; what was applied until then is saved.
    #[error("cancelled")]
    Cancelled { message_zh: String },
    /// The database failed (disk full, I/O error, locked too long). Retry; if it persists,
    /// report it.
    #[error("storage error")]
    Storage { message_zh: String },
    /// A bundle (issue 12) could not be made or a part of one was refused; the other parts
    /// are not affected. `reason` is a stable code: `not_a_bundle`, `newer` (update the app),
    /// `truncated`, `damaged`, `cert_not_by_server`, `exporter_revoked`, `bad_signature`,
    /// `too_large`, `bad_recipient`, `no_keys` (sync once first), `no_group_key`, `unknown_member`,
    /// `not_enrolled`.
    #[error("bundle refused: {reason}")]
    BundleRefused { reason: String, message_zh: String },
    /// A phone-to-phone session (issue 12) refused this phone or the other: `reason` is a stable
    /// code: `bad_code`, `newer`, `not_enrolled`, `offline`, `fingerprint_mismatch`,
    /// `wrong_key`, `wrong_code`, `code_closed`, `expired`, `stopped`, `cert_not_by_server`,
    /// `other_group`, `revoked`, `bad_proof`, `refused_by_peer`, `protocol`. Nothing saved
    /// was touched; `message_zh` says what to do.
    #[error("meeting refused: {reason}")]
    MeetRefused { reason: String, message_zh: String },
    /// A bug in sanjin (a panic caught at the boundary). The store was reopened; report it.
    #[error("internal error")]
    Internal { message_zh: String },
}

impl ApiError {
    pub(crate) fn closed() -> Self {
        ApiError::StoreClosed {
            message_zh: "数据文件已关闭，请重新打开".into(),
        }
    }

    pub(crate) fn internal() -> Self {
        ApiError::Internal {
            message_zh: "程序内部错误，操作未完成；已保存的记录不会丢失，请向管理员报告".into(),
        }
    }

    pub(crate) fn not_found() -> Self {
        ApiError::NotFound {
            message_zh: "找不到这条记录".into(),
        }
    }

    pub(crate) fn invalid(kind: RecordKind, e: ValidationError) -> Self {
        let reason = reason_code(&e.reason).to_string();
        // The member-facing text without the value that was typed.
        let redacted = ValidationError::new(e.field.clone(), redact(e.reason));
        ApiError::InvalidInput {
            message_zh: redacted.zh(kind),
            field: e.field,
            reason,
        }
    }

    /// An input problem that is not about one field of a record.
    pub(crate) fn input(field: &str, reason: &str, message_zh: &str) -> Self {
        ApiError::InvalidInput {
            field: field.into(),
            reason: reason.into(),
            message_zh: message_zh.into(),
        }
    }
}

fn reason_code(r: &Reason) -> &'static str {
    match r {
        Reason::Empty => "empty",
        Reason::TooLong { .. } => "too_long",
        Reason::EndBeforeStart => "end_before_start",
        Reason::TooLongDuration { .. } => "too_long_duration",
        Reason::UnknownValue { .. } => "unknown_value",
        Reason::BadFormat { .. } => "bad_format",
        Reason::OutOfRange { .. } => "out_of_range",
        Reason::MonthNotInQuarter { .. } => "month_not_in_quarter",
        Reason::EmptyOnSubmit { .. } => "empty_on_submit",
        Reason::UnknownField { .. } => "unknown_field",
        Reason::WrongEdit { .. } => "wrong_edit",
        Reason::NoConflict => "no_conflict",
        Reason::InvalidTransition { .. } => "invalid_transition",
        Reason::NotATransition { .. } => "not_a_transition",
        Reason::Deleted => "deleted",
        Reason::ControlCharacter => "control_character",
        Reason::Malformed { .. } => "malformed",
        Reason::BadThumbnail { .. } => "bad_thumbnail",
        Reason::TooMany { .. } => "too_many",
        Reason::TooLarge { .. } => "too_large",
        // A change the server would refuse, refused on the phone first (issue 10), e.g.
        // `conflict_resolution`: a leader must resolve.
        Reason::Refused { code, .. } => code.code(),
    }
}

/// The reason with what the member typed left out.
fn redact(r: Reason) -> Reason {
    const HIDDEN: &str = "…";
    match r {
        Reason::UnknownValue { what, choices, .. } => Reason::UnknownValue {
            what,
            value: HIDDEN.into(),
            choices,
        },
        Reason::BadFormat { expected, .. } => Reason::BadFormat {
            value: HIDDEN.into(),
            expected,
        },
        Reason::OutOfRange { min, max, .. } => Reason::OutOfRange {
            value: HIDDEN.into(),
            min,
            max,
        },
        other => other,
    }
}

impl From<sanjin_core::Error> for ApiError {
    fn from(e: sanjin_core::Error) -> Self {
        core_error(RecordKind::Visit, e)
    }
}

/// A core error about a record of `kind` (for the Chinese field labels).
pub(crate) fn core_error(kind: RecordKind, e: sanjin_core::Error) -> ApiError {
    use sanjin_core::Error as E;
    match e {
        E::Invalid(v) => ApiError::invalid(kind, v),
        E::BadId(_) => ApiError::input(
            "id",
            "bad_format",
            "编号无效：只能用字母、数字、- 或 _，最长 64 位",
        ),
        E::UnknownSchema { .. } => ApiError::UpgradeNeeded {
            message_zh: "这条记录由更新版本的 sanjin 写入，请升级应用".into(),
        },
        E::Corrupt { .. } | E::Mismatch { .. } | E::Automerge(_) => ApiError::Damaged {
            message_zh: "这条记录无法读取，可通过同步或从组内其他设备合并取回".into(),
        },
    }
}

pub(crate) fn store_error(kind: RecordKind, e: sanjin_store::Error) -> ApiError {
    use sanjin_store::Error as E;
    match e {
        E::Core(c) => core_error(kind, c),
        E::NotFound(_) => ApiError::not_found(),
        E::Missing(_) => ApiError::FileMissing {
            message_zh: "找不到数据文件，请确认路径，或先创建数据文件".into(),
        },
        E::NotAStore(_) => ApiError::NotAStore {
            message_zh: "这个文件不是 sanjin 设备数据文件".into(),
        },
        E::NewerSchema { .. } => ApiError::UpgradeNeeded {
            message_zh: "数据文件由更新版本的 sanjin 创建，请升级应用；文件未被改动".into(),
        },
        E::AlreadyInitialized(_) => ApiError::StoreExists {
            message_zh: "这个文件已是一位委员的数据文件，请直接打开".into(),
        },
        E::Damaged { .. } => ApiError::Damaged {
            message_zh: "这条记录已损坏，可通过同步或从组内其他设备合并取回".into(),
        },
        E::Database(e) => database_error(&e),
        E::NotServerData(_) | E::NewerServerSchema { .. } => ApiError::NotAStore {
            message_zh: "这个文件不是 sanjin 设备数据文件".into(),
        },
        E::NoServerKey => ApiError::NotEnrolled {
            message_zh: "本设备还没有服务器的密钥：请先注册，并在有信号时同步一次".into(),
        },
    }
}

fn database_error(e: &sanjin_store::DbError) -> ApiError {
    use sanjin_store::DbErrorKind as C;
    match e.kind {
        C::CannotOpen => ApiError::FileMissing {
            message_zh: "无法打开数据文件：目录不存在或无权访问".into(),
        },
        C::NotADatabase => ApiError::NotAStore {
            message_zh: "这个文件不是 sanjin 设备数据文件".into(),
        },
        C::DiskFull => ApiError::Storage {
            message_zh: "存储空间已满，请清理手机空间后重试；已保存的记录不会丢失".into(),
        },
        _ => ApiError::Storage {
            message_zh: "数据文件读写失败，请重试；如反复出现请向管理员报告".into(),
        },
    }
}

impl From<sanjin_store::Error> for ApiError {
    fn from(e: sanjin_store::Error) -> Self {
        store_error(RecordKind::Visit, e)
    }
}

/// What the client was doing: the same HTTP status means different things while enrolling and
/// while syncing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Enroll,
    Sync,
}

pub(crate) fn client_error(e: sanjin_client::Error, phase: Phase) -> ApiError {
    use sanjin_client::Error as E;
    let refused = || ApiError::EnrollmentRefused {
        message_zh: "注册码无效、已使用或不属于本人，请向管理员索取新的注册码".into(),
    };
    match e {
        E::NotEnrolled => ApiError::NotEnrolled {
            message_zh: "本设备尚未注册到同步服务器，请先注册".into(),
        },
        E::BadUrl(_) | E::InsecureUrl => ApiError::BadServerAddress {
            message_zh: "服务器地址无效：应为 https://主机名:端口（http:// 仅限本机）".into(),
        },
        E::ServerKeyMismatch => ApiError::Untrusted {
            message_zh: "服务器的密钥与注册时记下的不同，连接已中止：这个地址上可能是另一台服务器。请向管理员核对服务器地址；如服务器确实换了密钥，请用管理员提供的新证书重新注册本设备"
                .into(),
        },
        E::BadCertificate | E::Tls(_) => ApiError::Untrusted {
            message_zh: "无法验证服务器的证书，连接已中止；请确认服务器地址和管理员提供的证书"
                .into(),
        },
        E::BadRecordId => ApiError::not_found(),
        E::WrongMember => refused(),
        E::Network(_) | E::Timeout(_) => ApiError::Offline {
            message_zh: "无法连接服务器，请在有信号时重试；已保存的记录不会丢失".into(),
        },
        E::Http { status, code } => match (phase, status, code.as_str()) {
            (Phase::Enroll, 401 | 403 | 404 | 409, _) | (_, _, "code_used") => refused(),
            (Phase::Sync, 401, _) => ApiError::Unauthorized {
                message_zh: "设备已被停用或凭据无效，请联系管理员；已保存的记录不会丢失".into(),
            },
            (_, _, "unsupported_version") => ApiError::UpgradeNeeded {
                message_zh: "服务器与本应用的同步协议版本不一致，请升级应用".into(),
            },
            (_, 403, _) => ApiError::Unauthorized {
                message_zh: "服务器拒绝了本设备的请求（无权限），请联系管理员".into(),
            },
            (_, status, _) => ApiError::Server {
                status,
                message_zh: "服务器暂时无法处理，请稍后重试；已保存的记录不会丢失".into(),
            },
        },
        E::Decode(_) | E::Protocol(_) => ApiError::Server {
            status: 0,
            message_zh: "服务器的应答无法识别，请确认服务器地址，必要时升级应用".into(),
        },
        E::Cancelled => ApiError::Cancelled {
            message_zh: "同步已取消；已完成的部分已保存".into(),
        },
        E::Store(s) => store_error(RecordKind::Visit, s),
        E::Media(m) => media_error(m),
        E::Io(_) => ApiError::FileMissing {
            message_zh: "无法读取或写入该文件，请确认文件存在且可访问".into(),
        },
    }
}

/// The media crate's messages name formats and sizes, never the file or its content.
fn media_error(m: sanjin_media::MediaError) -> ApiError {
    use sanjin_media::MediaError as M;
    let reason = match &m {
        M::Empty => "empty",
        M::Unsupported { .. } => "unsupported",
        M::Corrupt { .. } => "corrupt",
        M::TooLarge { .. } => "too_large",
        M::FileTooLarge { .. } => "file_too_large",
        M::TooMuchMemory { .. } => "too_much_memory",
        // Making the thumbnail failed: not the photo's fault.
        M::Encode { .. } => return ApiError::internal(),
    };
    ApiError::PhotoRefused {
        reason: reason.into(),
        message_zh: m.zh(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12: a server with another key pair than the pinned one is `Untrusted`, and the
    /// message says what happened and what to do, apart from an unreadable certificate's.
    #[test]
    fn issue12_another_server_key_is_untrusted_with_what_to_do() {
        for phase in [Phase::Enroll, Phase::Sync] {
            let ApiError::Untrusted { message_zh } =
                client_error(sanjin_client::Error::ServerKeyMismatch, phase)
            else {
                panic!("Untrusted")
            };
            assert!(
                message_zh.contains("服务器的密钥与注册时记下的不同")
                    && message_zh.contains("核对服务器地址")
                    && message_zh.contains("重新注册"),
                "{message_zh}"
            );
            let ApiError::Untrusted { message_zh: other } =
                client_error(sanjin_client::Error::BadCertificate, phase)
            else {
                panic!("Untrusted")
            };
            assert_ne!(message_zh, other);
        }
    }

    /// Issue 6: messages for the foreign side carry no value the member typed.
    #[test]
    fn invalid_input_messages_hide_the_typed_value() {
        let e = ValidationError::new(
            "start",
            Reason::BadFormat {
                value: "张三 13800000000".into(),
                expected: "date and time",
            },
        );
        let api = ApiError::invalid(RecordKind::Visit, e);
        let text = format!("{api} {api:?}");
        assert!(
            !text.contains("张三") && !text.contains("13800000000"),
            "{text}"
        );
        let ApiError::InvalidInput {
            field,
            reason,
            message_zh,
        } = api
        else {
            panic!("an input error")
        };
        assert_eq!((field.as_str(), reason.as_str()), ("start", "bad_format"));
        assert!(message_zh.contains("开始时间"), "{message_zh}");
    }

    /// Issue 6: every photo refusal is `PhotoRefused` with a stable reason code and the media
    /// crate's Chinese message (formats and sizes only); a failure to make the thumbnail is
    /// ours, `Internal`.
    #[test]
    fn photo_refusals_map_to_reason_codes() {
        use sanjin_media::{Format, MediaError as M};
        let cases = [
            (M::Empty, "empty"),
            (
                M::Unsupported {
                    detected: Some("text"),
                },
                "unsupported",
            ),
            (
                M::Corrupt {
                    format: Format::Jpeg,
                    detail: "cut off".into(),
                },
                "corrupt",
            ),
            (
                M::TooLarge {
                    size: Some((100_000, 100_000)),
                    max_side: 12_000,
                    max_pixels: 100_000_000,
                },
                "too_large",
            ),
            (
                M::FileTooLarge {
                    len: 1 << 30,
                    max: 64 << 20,
                },
                "file_too_large",
            ),
            (
                M::TooMuchMemory {
                    max_alloc: 512 << 20,
                },
                "too_much_memory",
            ),
        ];
        for (m, code) in cases {
            let e = client_error(sanjin_client::Error::Media(m), Phase::Sync);
            let ApiError::PhotoRefused { reason, message_zh } = e else {
                panic!("{code}: {e:?}")
            };
            assert_eq!(reason, code);
            assert!(!message_zh.is_empty());
        }
        let encode = M::Encode {
            what: "thumbnail",
            detail: "x".into(),
        };
        let e = client_error(sanjin_client::Error::Media(encode), Phase::Sync);
        assert!(matches!(e, ApiError::Internal { .. }), "{e:?}");
        let io = sanjin_client::Error::Io("/sdcard/DCIM/张三.jpg: No such file".into());
        let e = client_error(io, Phase::Sync);
        let text = format!("{e} {e:?}");
        assert!(
            matches!(e, ApiError::FileMissing { .. }) && !text.contains("张三"),
            "{text}"
        );
    }
}
