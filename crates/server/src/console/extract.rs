//! What the console reads from a request: the signed-in session, the peer's address, and query
//! strings and forms decoded by axum's `Query` and `Form` into the structs below. A refused
//! extraction is a [`ConsoleError`] (a Chinese page), never axum's plain-text rejection.

use axum::extract::{ConnectInfo, Form, FromRequest, FromRequestParts, Query, Request};
use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::ConsoleError;
use super::{Session, auth};
use crate::state::AppState;

/// The signed-in session; without one the request is sent to the sign-in page. The session is
/// also left in the request's extensions, so that a later extractor's error page carries the
/// account's header line.
pub(crate) struct SignedIn(pub Session);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(t) = token(&parts.headers) else {
            return Err(ConsoleError::sign_in());
        };
        match state.with_data(move |d| auth::session(d, &t)).await {
            Ok(Ok(Some(s))) => {
                parts.extensions.insert(s.clone());
                Ok(SignedIn(s))
            }
            Ok(Ok(None)) => Err(ConsoleError::sign_in()),
            Ok(Err(e)) => Err(ConsoleError::internal(e)),
            Err(e) => Err(ConsoleError::internal(e)),
        }
    }
}

/// The session cookie's token, if it has the shape of one.
pub(crate) fn token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == auth::COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The peer's address, when the server was started with connection info (`spawn` does); tests
/// that drive the router without a socket have none.
pub(crate) struct ClientIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// A query string decoded by `axum::extract::Query`; refused as a console error page.
pub(crate) struct ConsoleQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ConsoleQuery<T> {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(ConsoleQuery(q)),
            Err(r) => Err(seen(
                ConsoleError::from(r),
                parts.extensions.get::<Session>(),
            )),
        }
    }
}

/// A form decoded by `axum::Form` (within the route's body limit); refused as a console error
/// page.
pub(crate) struct ConsoleForm<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ConsoleForm<T> {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let who = req.extensions().get::<Session>().cloned();
        match Form::<T>::from_request(req, state).await {
            Ok(Form(f)) => Ok(ConsoleForm(f)),
            Err(r) => Err(seen(ConsoleError::from(r), who.as_ref())),
        }
    }
}

fn seen(e: ConsoleError, s: Option<&Session>) -> ConsoleError {
    match s {
        Some(s) => e.seen_by(s),
        None => e,
    }
}

// ------------------------------------------------------------------ queries and forms

/// `/console/dashboard?q=2025-2`: a quarter, this one if none.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DashboardQuery {
    pub q: Option<String>,
}

/// `/console/records?kind=…&q=…&group=…&from=…&to=…&status=…&type=…&conflicts=1&page=2`. Values
/// are kept as they were sent (the pager repeats them); an unreadable page number is page 1; `q`
/// (issue 13) searches titles and texts within the other filters.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RecordsQuery {
    pub kind: Option<String>,
    pub group: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub status: Option<String>,
    #[serde(rename = "type")]
    pub ty: Option<String>,
    pub conflicts: Option<String>,
    pub page: Option<String>,
    pub q: Option<String>,
}

impl RecordsQuery {
    /// The filters the pager keeps, in the order of its links, with what was sent.
    pub fn kept(&self) -> [(&'static str, Option<&str>); 7] {
        [
            ("q", self.q.as_deref()),
            ("group", self.group.as_deref()),
            ("from", self.from.as_deref()),
            ("to", self.to.as_deref()),
            ("status", self.status.as_deref()),
            ("type", self.ty.as_deref()),
            ("conflicts", self.conflicts.as_deref()),
        ]
    }
}

/// `/console/records/{id}?msg=resolved`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RecordQuery {
    pub msg: Option<String>,
}

/// `/console/export` and `/console/export/file`: period, group, format.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ExportQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub group: Option<String>,
    pub format: Option<String>,
}

/// The sign-in form.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    pub account: String,
    #[serde(default)]
    pub password: String,
}

/// A form that only carries the session's CSRF token (sign-out).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// A conflict's resolution: the field and the chosen value as JSON.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ResolveForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub field: String,
    pub value: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::extract::DefaultBodyLimit;
    use axum::http::{StatusCode, Uri};
    use axum::routing::{get, post};
    use tower::ServiceExt;

    #[derive(Debug, Deserialize)]
    struct Probe {
        account: String,
        password: String,
        x: String,
        bad: String,
    }

    /// What the hand-written decoder it replaces did: `+` is a space, `%XX` a byte, UTF-8 text,
    /// a broken escape kept as it is.
    #[test]
    fn issue11_forms_decode_like_before() {
        let uri: Uri = "/x?account=member-0002&password=a%26b+c%3D&x=%E7%BB%84&bad=%zz&"
            .parse()
            .unwrap();
        let Query(f) = Query::<Probe>::try_from_uri(&uri).unwrap();
        assert_eq!(f.account, "member-0002");
        assert_eq!(f.password, "a&b c=");
        assert_eq!(f.x, "组");
        assert_eq!(f.bad, "%zz");
    }

    async fn call(app: &Router, req: axum::http::Request<Body>) -> (StatusCode, String, String) {
        let res = app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let ty = res.headers()["content-type"].to_str().unwrap().to_string();
        let b = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, ty, String::from_utf8_lossy(&b).into_owned())
    }

    #[tokio::test]
    async fn issue11_extractor_rejections_are_console_error_pages() {
        let app = Router::new()
            .route(
                "/q",
                get(|ConsoleQuery(q): ConsoleQuery<RecordsQuery>| async move {
                    format!("{:?}/{:?}", q.kind, q.page)
                }),
            )
            .route(
                "/f",
                post(|ConsoleForm(f): ConsoleForm<ResolveForm>| async move {
                    format!("{}/{:?}", f.field, f.value)
                })
                .layer(DefaultBodyLimit::max(64)),
            );
        let get_ = |uri: &str| axum::http::Request::get(uri).body(Body::empty()).unwrap();
        let form = |ty: Option<&str>, body: &str| {
            let mut b = axum::http::Request::post("/f");
            if let Some(t) = ty {
                b = b.header("content-type", t);
            }
            b.body(Body::from(body.to_string())).unwrap()
        };
        const FORM: &str = "application/x-www-form-urlencoded";

        // What decodes reaches the handler; unknown parameters are ignored as before.
        let (s, _, b) = call(&app, get_("/q?kind=opinion&page=x&other=1")).await;
        assert_eq!(
            (s, b.as_str()),
            (StatusCode::OK, "Some(\"opinion\")/Some(\"x\")")
        );
        let (s, _, b) = call(&app, form(Some(FORM), "field=title&value=%22x%22")).await;
        assert_eq!(
            (s, b.as_str()),
            (StatusCode::OK, "title/Some(\"\\\"x\\\"\")")
        );

        // Refusals keep axum's status but are pages in Chinese that say what to do.
        for (what, req, status, needle) in [
            (
                "a parameter given twice",
                get_("/q?kind=visit&kind=plan"),
                StatusCode::BAD_REQUEST,
                "请从工作台页面重新进入",
            ),
            (
                "not a form",
                form(Some("application/json"), "{}"),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "请从工作台页面提交",
            ),
            (
                "no content type",
                form(None, "field=title"),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "请从工作台页面提交",
            ),
            (
                "over the body limit",
                form(Some(FORM), &format!("field={}", "x".repeat(100))),
                StatusCode::PAYLOAD_TOO_LARGE,
                "请缩短后再提交",
            ),
            (
                "a field given twice",
                form(Some(FORM), "field=a&field=b"),
                StatusCode::UNPROCESSABLE_ENTITY,
                "请刷新页面后重试",
            ),
        ] {
            let (s, ty, b) = call(&app, req).await;
            assert_eq!(s, status, "{what}");
            assert_eq!(ty, "text/html; charset=utf-8", "{what}");
            assert!(b.contains(needle) && b.contains("出错了"), "{what}: {b}");
        }
    }
}
