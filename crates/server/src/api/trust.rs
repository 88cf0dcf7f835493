//! `POST /v1/trust` (issue 12): what a device needs to seal, open and check bundles — the
//! server's signed key directory and revocation list, the secrets of the caller's group(s), and
//! signed receipts for records that reached the server through another device. Authenticated
//! like `/v1/sync`: nothing of the body is read before the device's credentials are checked.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::routing::post;

use super::read_body;
use crate::error::AppError;
use crate::model::{TrustAnswer, TrustRequest};
use crate::state::{AppState, precheck};

/// The largest trust request: up to `MAX_RECEIPTS_PER_REQUEST` record ids.
const TRUST_BODY_BYTES: usize = 64 << 10;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/v1/trust", post(trust))
}

async fn trust(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TrustAnswer>, AppError> {
    let authorization = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    precheck(&state, authorization.as_deref()).await?;
    let body = read_body(&headers, body, TRUST_BODY_BYTES).await?;
    let req: TrustRequest = if body.is_empty() {
        TrustRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| AppError::BadMessage(format!("the trust request is not valid: {e}")))?
    };
    let asked = req.receipts_for.len();
    let (device, answer) = state
        .with_data(move |d| -> Result<_, AppError> {
            let caller = d.authenticate(authorization.as_deref())?;
            let answer = d.trust(&caller, &req)?;
            Ok((caller.device_id, answer))
        })
        .await??;
    tracing::info!(
        %device,
        asked,
        receipts = answer.receipts.len(),
        group_secrets = answer.group_secrets.len(),
        "trust"
    );
    Ok(Json(answer))
}
