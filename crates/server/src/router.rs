//! The router: every route of the server in one place — `/health` here, the device API
//! (`api`), photo originals (`blobs`), the staff console (`console`) — and what wraps them all
//! (body limits, refusing new requests while shutting down).

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sanjin_core::protocol;

use crate::error::AppError;
use crate::state::AppState;

/// The router of the sync server.
pub fn app(state: AppState) -> Router {
    let limit = state.0.body_limit;
    Router::new()
        .route("/health", get(health))
        .merge(crate::api::enroll::routes())
        .merge(crate::api::sync::routes())
        .merge(crate::api::trust::routes())
        .merge(crate::api::bundle::routes())
        .merge(crate::console::routes())
        .merge(crate::blobs::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            refuse_when_closing,
        ))
        .with_state(state)
}

async fn refuse_when_closing(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.is_shutting_down() {
        return AppError::ShuttingDown.into_response();
    }
    next.run(req).await
}

async fn not_found() -> AppError {
    AppError::NotFound("no such endpoint".into())
}

async fn health() -> Response {
    Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": protocol::VERSION,
    }))
    .into_response()
}
