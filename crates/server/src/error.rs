//! Errors of the server: [`Error`] for the library (admin functions, start-up), [`AppError`] for
//! what an HTTP client is told. Clients never see internals: an internal error is logged with its
//! details and answered with a bare `500 internal`.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Everything that can go wrong in the server's library functions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] sanjin_store::Error),
    #[error(transparent)]
    Core(#[from] sanjin_core::Error),
    #[error(transparent)]
    Fixtures(#[from] sanjin_core::import::ImportError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `sanjin.sqlite` in the data folder is not a server's database (a device store, …).
    #[error("{0} is not a sanjin server database")]
    NotServerData(PathBuf),
    /// The server tables were written by a newer sanjin.
    #[error("the server tables are of schema {found}; this sanjin knows up to {supported}")]
    NewerSchema { found: i64, supported: i64 },
    #[error("no account for member {0}")]
    UnknownAccount(String),
    #[error("no device {0}")]
    UnknownDevice(String),
    #[error("no record {0}")]
    UnknownRecord(String),
    #[error("{0} already exists")]
    Exists(String),
    /// Bad input to an admin function; the message says what.
    #[error("{0}")]
    Invalid(String),
    /// The account may not do this (issue 13: staff of a county chapter changing another
    /// chapter's directory); the message says why, in Chinese.
    #[error("{0}")]
    Forbidden(String),
    /// Plain HTTP was asked for on an address that is not loopback.
    #[error("plain HTTP is only allowed on a loopback address, not {0}")]
    PlainNotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

/// An error answered to an HTTP client: a 4xx status with `{"error": code, "message": …}`, or a
/// bare 500 for internal failures (logged here, never shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppError {
    /// 400 `bad_message`: undecodable body (truncated, garbage, bad magic, bad JSON).
    BadMessage(String),
    /// 400 `unsupported_version`.
    UnsupportedVersion(String),
    /// 401 `unauthorized`: missing, wrong or revoked credentials; unknown or expired code.
    Unauthorized(String),
    /// 403 `forbidden`.
    Forbidden(String),
    /// 404 `not_found`.
    NotFound(String),
    /// 409 `code_used`: the enrollment code was used already.
    CodeUsed(String),
    /// 409 with another code (`device_exists`, `actor_in_use`).
    Conflict { code: &'static str, message: String },
    /// 401 `member_retired` (issue 13): the device's member retired; the message (Chinese) says
    /// how to hand the unsynced records to the office.
    Retired(String),
    /// 413 `too_large`.
    TooLarge(String),
    /// 503 `shutting_down`.
    ShuttingDown,
    /// 500 `internal`; the text is logged, not sent.
    Internal(String),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadMessage(_) | AppError::UnsupportedVersion(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) | AppError::Retired(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::CodeUsed(_) | AppError::Conflict { .. } => StatusCode::CONFLICT,
            AppError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable error code of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadMessage(_) => "bad_message",
            AppError::UnsupportedVersion(_) => "unsupported_version",
            AppError::Unauthorized(_) => "unauthorized",
            AppError::Retired(_) => "member_retired",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound(_) => "not_found",
            AppError::CodeUsed(_) => "code_used",
            AppError::Conflict { code, .. } => code,
            AppError::TooLarge(_) => "too_large",
            AppError::ShuttingDown => "shutting_down",
            AppError::Internal(_) => "internal",
        }
    }

    /// The English message for operators.
    pub fn message(&self) -> String {
        match self {
            AppError::BadMessage(m)
            | AppError::UnsupportedVersion(m)
            | AppError::Unauthorized(m)
            | AppError::Forbidden(m)
            | AppError::NotFound(m)
            | AppError::CodeUsed(m)
            | AppError::Conflict { message: m, .. }
            | AppError::Retired(m)
            | AppError::TooLarge(m) => m.clone(),
            AppError::ShuttingDown => "the server is shutting down; try again shortly".into(),
            AppError::Internal(_) => "internal server error".into(),
        }
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Internal(detail) => write!(f, "internal: {detail}"),
            other => write!(f, "{}: {}", other.code(), other.message()),
        }
    }
}

impl std::error::Error for AppError {}

impl From<Error> for AppError {
    fn from(e: Error) -> AppError {
        AppError::Internal(e.to_string())
    }
}

impl From<sanjin_store::Error> for AppError {
    fn from(e: sanjin_store::Error) -> AppError {
        AppError::Internal(e.to_string())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match &self {
            AppError::Internal(detail) => tracing::error!(error = %detail, "internal error"),
            other => tracing::info!(
                status = other.status().as_u16(),
                error = other.code(),
                reason = %other.message(),
                "request refused"
            ),
        }
        let body = serde_json::json!({ "error": self.code(), "message": self.message() });
        (self.status(), Json(body)).into_response()
    }
}

/// What a client is told about a sync body that does not decode.
pub(crate) fn decode_error(e: sanjin_core::protocol::DecodeError) -> AppError {
    match e {
        sanjin_core::protocol::DecodeError::UnsupportedVersion { .. } => {
            AppError::UnsupportedVersion(e.to_string())
        }
        other => AppError::BadMessage(other.to_string()),
    }
}
