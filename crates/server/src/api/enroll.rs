//! Enrollment (`POST /v1/enroll`: a one-time code for a device's credentials) and the signing
//! key of a device enrolled before signatures (`POST /v1/device/key`, issue 10).

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};

use super::json_error;
use crate::error::AppError;
use crate::model::{EnrollRequest, Enrollment};
use crate::state::{AppState, authenticate};

/// The largest enrollment request (a code, a device id, an actor, a label): a few hundred bytes.
const ENROLL_BODY_BYTES: usize = 64 << 10;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/enroll",
            post(enroll).layer(DefaultBodyLimit::max(ENROLL_BODY_BYTES)),
        )
        .route("/v1/device/key", post(register_key))
}

async fn enroll(
    State(state): State<AppState>,
    body: Result<Json<EnrollRequest>, JsonRejection>,
) -> Result<Json<Enrollment>, AppError> {
    let Json(req) = body.map_err(|e| json_error(&state, e))?;
    let out = state.with_data(move |d| d.enroll(&req)).await??;
    tracing::info!(device = %out.device_id, member = %out.member, role = %out.role, "device enrolled");
    Ok(Json(out))
}

/// A device enrolled before signatures registers its public key (issue 10).
async fn register_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<crate::model::KeyRequest>, JsonRejection>,
) -> Result<Json<crate::model::KeyRegistration>, AppError> {
    let caller = authenticate(&state, &headers).await?;
    let Json(req) = body.map_err(|e| json_error(&state, e))?;
    let device = caller.device_id.clone();
    let out = state
        .with_data(move |d| d.register_key(&caller, &req.public_key))
        .await??;
    tracing::info!(%device, "device signing key registered");
    Ok(Json(out))
}
