//! `POST /v1/bundle` (issue 12): a device uploads one bundle part — the cargo sealed to the
//! server that it carried for others, or any part it holds — and the server imports it as
//! `sanjin admin import-bundle` does (`ServerData::import_bundle_part`): verified, opened with
//! the server's box key, every document through the push policy of a sync push. Authenticated
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
use crate::relay::PartReport;
use crate::state::{AppState, precheck};

/// The media type of a bundle part.
pub const BUNDLE_CONTENT_TYPE: &str = "application/x-sanjin-bundle";
/// The largest part accepted in one request (a part with photo originals).
pub const BUNDLE_BODY_BYTES: usize = 32 << 20;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/v1/bundle", post(bundle))
}

async fn bundle(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<PartReport>, AppError> {
    let authorization = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    precheck(&state, authorization.as_deref()).await?;
    let body = read_body(&headers, body, BUNDLE_BODY_BYTES).await?;
    let bytes = body.len();
    let (device, report) = state
        .with_data(move |d| -> Result<_, AppError> {
            let caller = d.authenticate(authorization.as_deref())?;
            let report = d.import_bundle_part(&body, Some(&caller))?;
            Ok((caller.device_id, report))
        })
        .await??;
    let (landed, held, refused) = report.counts();
    tracing::info!(
        %device,
        bytes,
        part_refused = report.refused.as_ref().map(|r| r.code),
        landed,
        held,
        refused,
        originals = report.originals,
        receipts = report.receipts.len(),
        "bundle"
    );
    Ok(Json(report))
}
