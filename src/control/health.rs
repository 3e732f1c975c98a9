//! Liveness, readiness (503 while draining) and the Prometheus exposition.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::AppState;
use crate::telemetry;

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 when the database answers a read and takes a write, the server is not draining, and the
/// calls' latest connect to the model did not fail (within two minutes); 503 otherwise.
/// The body says so, too, while carrier requests are accepted unsigned on purpose.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (status, mut body) = if state.bridge.admission.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, String::from("draining\n"))
    } else {
        let wait = std::time::Duration::from_secs(2);
        match tokio::time::timeout(wait, state.store.ping()).await {
            Ok(Ok(())) => match tokio::time::timeout(wait, state.store.probe_write(crate::store::now_ms())).await {
                // The probe rewrites a row that still fits on a full disk: a write refused since
                // the last one that succeeded says more.
                Ok(Ok(())) if state.store.health().failing() => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    String::from(
                        "database cannot write: the latest write was refused (disk full?); ready once a write succeeds\n",
                    ),
                ),
                Ok(Ok(())) => match state.bridge.model_health.unreachable(crate::store::now_ms()) {
                    // The calls' latest connects to the model failed: new calls are better
                    // sent where the model answers (each caller here hears the apology).
                    Some(why) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("model unreachable: the latest call's connect failed {why}\n"),
                    ),
                    None => (StatusCode::OK, String::from("ready\n")),
                },
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "readiness: the database cannot write");
                    (StatusCode::SERVICE_UNAVAILABLE, String::from("database cannot write (disk full?)\n"))
                }
                Err(_) => (StatusCode::SERVICE_UNAVAILABLE, String::from("database cannot write in time\n")),
            },
            _ => (StatusCode::SERVICE_UNAVAILABLE, String::from("database unavailable\n")),
        }
    };
    if let Some(warning) = super::unsigned::readiness_warning(&state.config) {
        body.push_str(warning);
    }
    (status, body)
}

/// The Prometheus exposition; with `VOXBRIDGE_METRICS_TOKEN` set, only for its bearer.
pub async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> axum::response::Response {
    if let Some(token) = state.config.metrics_token.as_deref() {
        let given =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|h| h.strip_prefix("Bearer "));
        if !given.is_some_and(|g| super::auth::constant_time_eq(g.trim().as_bytes(), token.as_bytes())) {
            return super::error::ApiError::unauthorized("GET /metrics needs the VOXBRIDGE_METRICS_TOKEN bearer")
                .into_response();
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], telemetry::prometheus().render()).into_response()
}
