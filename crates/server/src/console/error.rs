//! The console's one error type: every handler returns `Result<Response, ConsoleError>`, and every
//! way a console request can fail (not signed in, a refused sign-in, a throttled one, a page the
//! account may not see, bad input, a request the extractors refused, a server fault) renders as
//! the same Chinese page that says what to do, with the console's security headers (added by the
//! router's layer like on any other console response).

use std::fmt;
use std::time::Duration;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::html::Who;
use super::{Session, html, redirect};

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// Not signed in, or the session ended: to the sign-in page (303).
    SignIn,
    /// The sign-in form again, saying what was wrong (400 nothing typed, 401 refused).
    Login { status: StatusCode, message: String },
    /// Too many sign-in attempts: 429, the sign-in form, and `Retry-After`.
    Throttled(Duration),
    /// 403: the account may not do or see this.
    Forbidden(String),
    /// 400: what was asked for cannot be understood; the message says how to ask.
    Bad(String),
    /// 404: no such record, photo or page.
    NotFound(String),
    /// 422: the data of one record stops an export (nothing a retry would fix).
    Unprocessable(String),
    /// A request the extractors refused (a form too large, sent as something else than a form,
    /// or a query or form that does not decode), with the extractor's status.
    Rejected { status: StatusCode, message: String },
    /// 500: logged when made; the message says what to do.
    Internal(String),
}

/// A console request that failed: what went wrong, and who was signed in (the error page then
/// carries the same header as every other page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConsoleError {
    pub kind: ErrorKind,
    pub who: Option<Who>,
}

/// What a member of staff is told about a fault of the server.
pub(crate) const INTERNAL: &str = "服务器内部出错，请稍后再试；如仍出错请联系管理员查看服务器日志";

impl From<ErrorKind> for ConsoleError {
    fn from(kind: ErrorKind) -> Self {
        ConsoleError { kind, who: None }
    }
}

impl ConsoleError {
    pub fn sign_in() -> Self {
        ErrorKind::SignIn.into()
    }

    pub fn login(status: StatusCode, message: impl Into<String>) -> Self {
        ErrorKind::Login {
            status,
            message: message.into(),
        }
        .into()
    }

    pub fn throttled(wait: Duration) -> Self {
        ErrorKind::Throttled(wait).into()
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ErrorKind::Forbidden(message.into()).into()
    }

    pub fn bad(message: impl Into<String>) -> Self {
        ErrorKind::Bad(message.into()).into()
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ErrorKind::NotFound(message.into()).into()
    }

    /// A fault of the server: logged here, told as [`INTERNAL`].
    pub fn internal(e: impl fmt::Display) -> Self {
        tracing::error!(error = %e, "console");
        ErrorKind::Internal(INTERNAL.into()).into()
    }

    /// The page is for this signed-in account (its header line and sign-out form).
    pub fn seen_by(mut self, s: &Session) -> Self {
        self.who = Some(Who::of(s));
        self
    }

    pub fn status(&self) -> StatusCode {
        match &self.kind {
            ErrorKind::SignIn => StatusCode::SEE_OTHER,
            ErrorKind::Login { status, .. } | ErrorKind::Rejected { status, .. } => *status,
            ErrorKind::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Forbidden(_) => StatusCode::FORBIDDEN,
            ErrorKind::Bad(_) => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound(_) => StatusCode::NOT_FOUND,
            ErrorKind::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let status = self.status();
        match self.kind {
            ErrorKind::SignIn => redirect("/console/login"),
            ErrorKind::Login { message, .. } => {
                super::html_response(status, html::login(Some(&message)))
            }
            ErrorKind::Throttled(wait) => {
                let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
                let minutes = secs.div_ceil(60);
                let mut r = super::html_response(
                    status,
                    html::login(Some(&format!(
                        "登录尝试过于频繁，请 {minutes} 分钟后再试；如忘记密码，请联系管理员重设（sanjin admin set-password）"
                    ))),
                );
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    r.headers_mut().insert(RETRY_AFTER, v);
                }
                r
            }
            ErrorKind::Forbidden(message)
            | ErrorKind::Bad(message)
            | ErrorKind::NotFound(message)
            | ErrorKind::Unprocessable(message)
            | ErrorKind::Rejected { message, .. }
            | ErrorKind::Internal(message) => super::html_response(
                status,
                html::page("出错了", self.who.as_ref(), html::error_body(&message)),
            ),
        }
    }
}

/// A query string the console cannot read (a parameter given twice, or not text): a page, never
/// axum's plain-text answer.
impl From<QueryRejection> for ConsoleError {
    fn from(r: QueryRejection) -> Self {
        tracing::info!(rejection = %r.body_text(), "console query refused");
        ErrorKind::Rejected {
            status: r.status(),
            message: "网址中的参数不对（某项重复或无法识别），请从工作台页面重新进入".into(),
        }
        .into()
    }
}

/// A form the console cannot read.
impl From<FormRejection> for ConsoleError {
    fn from(r: FormRejection) -> Self {
        tracing::info!(rejection = %r.body_text(), "console form refused");
        let status = r.status();
        let message = match (&r, status) {
            (FormRejection::InvalidFormContentType(_), _) => "表单提交方式不对，请从工作台页面提交",
            (_, StatusCode::PAYLOAD_TOO_LARGE) => "提交的内容过多，请缩短后再提交",
            (FormRejection::FailedToDeserializeForm(_), _)
            | (FormRejection::FailedToDeserializeFormBody(_), _) => {
                "表单内容不对（某项重复或无法识别），请刷新页面后重试"
            }
            _ => "表单未能收到，请刷新页面后重试",
        };
        ErrorKind::Rejected {
            status,
            message: message.into(),
        }
        .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Account, Role};

    fn session() -> Session {
        Session {
            account: Account::new("office-01", Role::Staff, None, "王秘书"),
            csrf: "c5rf".into(),
        }
    }

    async fn body(r: Response) -> String {
        let b = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn issue11_console_error_renders_every_kind_as_a_chinese_page() {
        let s = session();
        for (e, status, needle) in [
            (
                ConsoleError::forbidden("这条记录不属于您的活动组"),
                StatusCode::FORBIDDEN,
                "这条记录不属于您的活动组",
            ),
            (
                ConsoleError::bad("季度格式应为 年-季度，如 2025-2"),
                StatusCode::BAD_REQUEST,
                "季度格式应为 年-季度，如 2025-2",
            ),
            (
                ConsoleError::not_found("没有编号为 <x> 的记录"),
                StatusCode::NOT_FOUND,
                "没有编号为 &lt;x&gt; 的记录",
            ),
            (
                ErrorKind::Unprocessable("第 7 行".into()).into(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "第 7 行",
            ),
            (
                ConsoleError::internal("disk on fire"),
                StatusCode::INTERNAL_SERVER_ERROR,
                INTERNAL,
            ),
        ] {
            let e = e.seen_by(&s);
            assert_eq!(e.status(), status);
            let r = e.into_response();
            assert_eq!(r.status(), status);
            assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
            assert_eq!(r.headers()["cache-control"], "no-store");
            let page = body(r).await;
            assert!(page.contains(needle), "{needle}: {page}");
            assert!(
                page.contains("<title>出错了 · 三进工作台</title>"),
                "{page}"
            );
            assert!(page.contains("返回工作概况"), "{page}");
            // The signed-in header: name, role, sign-out with the session's token.
            assert!(page.contains("王秘书（机关工作人员）"), "{page}");
            assert!(
                page.contains("<input type=\"hidden\" name=\"csrf\" value=\"c5rf\">"),
                "{page}"
            );
            assert!(!page.contains("disk on fire"), "no internals: {page}");
        }
        // Without a session: no account line.
        let page = body(ConsoleError::bad("x").into_response()).await;
        assert!(!page.contains("/console/logout"), "{page}");

        let r = ConsoleError::sign_in().into_response();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()["location"], "/console/login");

        let r = ConsoleError::login(StatusCode::UNAUTHORIZED, "账号或密码不对").into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let page = body(r).await;
        assert!(page.contains("账号或密码不对") && page.contains("id=\"signin\""));

        let r = ConsoleError::throttled(Duration::from_millis(61_500)).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()["retry-after"], "62");
        let page = body(r).await;
        assert!(page.contains("请 2 分钟后再试"), "{page}");
    }
}
