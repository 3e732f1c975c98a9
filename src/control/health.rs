//! Liveness, readiness (503 while draining) and the Prometheus exposition.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::AppState;
use crate::telemetry;

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 when the database answers a read and takes a write, and the server is not draining;
/// 503 otherwise.
/// The body says so, too, while carrier requests are accepted unsigned on purpose.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (status, mut body) = if state.bridge.admission.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, String::from("draining\n"))
    } else {
        let wait = std::time::Duration::from_secs(2);
        match tokio::time::timeout(wait, state.store.ping()).await {
            Ok(Ok(())) => match tokio::time::timeout(wait, state.store.probe_write(crate::store::now_ms())).await {
                Ok(Ok(())) => (StatusCode::OK, String::from("ready\n")),
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

pub async fn metrics() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], telemetry::prometheus().render())
}
