//! Twilio's routes: the voice webhook answers `<Connect><Stream>` with a one-time stream
//! token; the media upgrade is admitted, signature-checked, then bridged. Both fail closed
//! when `TWILIO_AUTH_TOKEN` is set.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::{AppState, MAX_CARRIER_MESSAGE};
use crate::call::admission::Refusal;
use crate::call::driver;
use crate::providers::twilio::{signature, twiml};
use crate::telemetry;

/// Spoken when the stream closes on purpose (model unavailable, shutdown).
const APOLOGY: &str = "Sorry, our assistant is not available right now. Please call again later. Goodbye.";
const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// `POST /twilio/voice`: an inbound call.
pub async fn voice(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let mut url = state.config.public_http("/twilio/voice");
    if let Some(q) = query {
        url.push('?');
        url.push_str(&q);
    }
    if let Err(e) = check_signature(&state, &headers, &url, &params) {
        return e.into_response();
    }
    if state.bridge.admission.is_draining() {
        return xml(twiml::say_hangup(APOLOGY));
    }
    let call_id = format!("c_{:016x}", rand::random::<u64>());
    let token = state.bridge.tokens.mint(&call_id, Instant::now());
    let stream_url = format!("{}/media/twilio", state.config.public_ws_base());
    tracing::info!(call_id, from = %telemetry::redact_number(param(&params, "From")), "inbound call");
    xml(twiml::connect_stream(&stream_url, &[("call_id", &call_id), ("token", &token)], APOLOGY))
}

/// `GET /media/twilio`: the media stream upgrade.
pub async fn media(State(state): State<AppState>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    let slot = match state.bridge.admission.try_admit() {
        Ok(slot) => slot,
        Err(Refusal::Full) => {
            telemetry::call_refused("full");
            return ApiError::unavailable("at_capacity", "too many live calls").into_response();
        }
        Err(Refusal::Draining) => {
            telemetry::call_refused("draining");
            return ApiError::unavailable("draining", "server is shutting down").into_response();
        }
    };
    let url = format!("{}/media/twilio", state.config.public_ws_base());
    if let Err(e) = check_signature(&state, &headers, &url, &[]) {
        telemetry::call_refused("signature");
        return e.into_response();
    }
    let bridge = state.bridge.clone();
    ws.max_message_size(MAX_CARRIER_MESSAGE)
        .max_frame_size(MAX_CARRIER_MESSAGE)
        .read_buffer_size(super::CARRIER_READ_BUFFER)
        .on_upgrade(move |socket| driver::run_twilio(bridge, socket, slot))
}

fn check_signature(
    state: &AppState,
    headers: &HeaderMap,
    url: &str,
    params: &[(String, String)],
) -> Result<(), ApiError> {
    let Some(token) = state.config.twilio_auth_token.as_deref() else {
        return Ok(());
    };
    let Some(given) = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()) else {
        return Err(ApiError::forbidden("missing X-Twilio-Signature"));
    };
    if signature::validate(token, url, params, given) {
        Ok(())
    } else {
        tracing::warn!(url, "bad Twilio signature");
        Err(ApiError::forbidden("X-Twilio-Signature does not match"))
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> &'a str {
    params.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v)
}

fn xml(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}
