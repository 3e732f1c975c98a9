//! The user's API (`/v1`). For now: `GET /v1/metrics`. Errors come from `control::error`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::error::ApiError;

/// `GET /v1/metrics`: calls by status, queue depth, live calls.
pub async fn metrics(State(state): State<AppState>) -> Response {
    match state.store.call_counts().await {
        Ok(counts) => {
            let by_status: serde_json::Map<String, serde_json::Value> =
                counts.calls_by_status.into_iter().map(|(s, n)| (s, n.into())).collect();
            Json(json!({
                "calls_by_status": by_status,
                "queue_depth": counts.queued_jobs,
                "live_calls": state.bridge.admission.live(),
            }))
            .into_response()
        }
        Err(e) => ApiError::unavailable("store_unavailable", e.to_string()).into_response(),
    }
}
