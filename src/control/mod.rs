//! HTTP and WebSocket routes (axum). Handlers check signatures and admission, then hand the
//! work to the call bridge; no carrier JSON or audio handling lives here.

pub mod agent_request;
pub mod agents;
pub mod api;
pub mod auth;
pub mod batch;
pub mod call_events;
pub mod call_request;
pub mod campaigns;
pub mod create;
pub mod error;
pub mod event_log;
pub mod health;
pub mod inbound;
pub mod openapi;
pub mod peer;
pub mod recording;
pub mod steer;
pub mod telnyx;
pub mod template;
pub mod transfer;
pub mod twilio;
pub mod unsigned;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::call::driver::Bridge;
use crate::config::Config;
use crate::store::Store;

/// Shared state of the routes.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub bridge: Arc<Bridge>,
    pub store: Store,
    /// Bearer keys for `/v1` (empty: loopback only).
    pub api_keys: Arc<Vec<String>>,
    pub retry: crate::lifecycle::retry::RetryPolicy,
    /// `VOXBRIDGE_API_RATE_LIMIT`, per API key (or peer address).
    pub rate_limit: Option<Arc<auth::RateLimit>>,
    /// `TELNYX_PUBLIC_KEY`, parsed once (validated at start-up); with it webhooks must be signed.
    pub telnyx_key: Option<crate::providers::telnyx::signature::PublicKey>,
}

/// Largest WebSocket message accepted from a carrier (OWASP suggests ≤ 64 KiB).
pub const MAX_CARRIER_MESSAGE: usize = 64 * 1024;
/// tungstenite zero-fills its read buffer up to this size on every socket read (128 KiB by
/// default: a fifth of the server's CPU in a 100-call profile). Carrier frames are ~300 bytes.
pub const CARRIER_READ_BUFFER: usize = 4 * 1024;
/// Outgoing messages gather until this much is queued, then go out (128 KiB by default: a
/// carrier falling behind kept ~9 KiB per call). A `media` + `mark` pair (~1.2 KiB for Twilio)
/// still leaves in one write.
pub const CARRIER_WRITE_BUFFER: usize = 4 * 1024;

/// Counts each carrier webhook by its answer (`voxbridge_webhooks_total{provider,result}`).
async fn count_twilio(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    count("twilio", next.run(request).await)
}

async fn count_telnyx(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    count("telnyx", next.run(request).await)
}

fn count(provider: &'static str, response: axum::response::Response) -> axum::response::Response {
    crate::telemetry::webhook_answered(provider, response.status());
    response
}

/// The `/v1` routes and their OpenAPI document, from the same handler list: a route cannot be
/// served without being described.
fn v1() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    use utoipa::OpenApi;
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(api::metrics))
        .routes(routes!(api::create_call, api::list_calls))
        .routes(routes!(batch::create_batch))
        .routes(routes!(api::get_call, api::patch_call))
        .routes(routes!(api::cancel_call))
        .routes(routes!(api::transcript))
        .routes(routes!(campaigns::campaign_action))
        .routes(routes!(campaigns::campaign))
        .routes(routes!(event_log::call_events))
        .routes(routes!(recording::recording))
        .routes(routes!(event_log::redeliver))
        .routes(routes!(agents::create_agent, agents::list_agents))
        .routes(routes!(agents::get_agent, agents::patch_agent, agents::delete_agent))
        .routes(routes!(agents::put_number, agents::delete_number))
        .routes(routes!(agents::list_numbers))
        .split_for_parts()
}

/// The OpenAPI document of the `/v1` routes (`GET /v1/openapi.json`).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut doc = v1().1;
    let path = utoipa::openapi::path::PathItem::new(
        utoipa::openapi::HttpMethod::Get,
        utoipa::openapi::path::OperationBuilder::new()
            .summary(Some("This document (OpenAPI 3.1); no key needed"))
            .tag("operations")
            .security(utoipa::openapi::security::SecurityRequirement::default())
            .response("200", utoipa::openapi::Response::new("the OpenAPI document")),
    );
    doc.paths.paths.insert("/v1/openapi.json".into(), path);
    openapi::complete(&mut doc);
    doc
}

pub fn router(state: AppState) -> Router {
    let doc = std::sync::Arc::new(openapi_document());
    let v1 = v1()
        .0
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_api_key))
        .layer(axum::middleware::map_response(error::envelope_plain_errors));
    Router::new()
        .merge(v1)
        .route("/v1/openapi.json", get(openapi::document).with_state(doc))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/twilio/voice", post(twilio::voice).route_layer(axum::middleware::from_fn(count_twilio)))
        .route("/media/twilio", get(twilio::media))
        .route("/media/twilio/{machine}", get(twilio::media_for_machine))
        .route("/webhooks/twilio/status", post(twilio::status).route_layer(axum::middleware::from_fn(count_twilio)))
        .route(
            "/webhooks/twilio/dial",
            post(transfer::twilio_dial).route_layer(axum::middleware::from_fn(count_twilio)),
        )
        .route("/media/telnyx", get(telnyx::media))
        .route("/webhooks/telnyx", post(telnyx::webhook).route_layer(axum::middleware::from_fn(count_telnyx)))
        .route(
            "/twiml/{call_id}",
            get(twilio::outbound_twiml)
                .post(twilio::outbound_twiml)
                .route_layer(axum::middleware::from_fn(count_twilio)),
        )
        .with_state(state)
}
