//! What both carriers' routes do once a request is authenticated and parsed: admit a media
//! stream, apply a call status (idempotent, forward-only, retries), act on a machine answer.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use std::net::IpAddr;

use crate::call::admission::{Arrival, PendingSlot, Proof, Refusal, Slot};
use crate::call::driver::CallCommand;
use crate::lifecycle::outcome::is_machine;
use crate::providers::carrier::Provider;
use crate::store::calls::ProviderEvent;
use crate::store::{CallRecords, OutboundCalls};
use crate::telemetry;

pub use crate::store::now_ms;

/// A live-call slot for a media upgrade whose call is already proven, or the 503 that refuses it.
pub fn admit(state: &AppState, arrival: Arrival) -> Result<Slot, ApiError> {
    state.bridge.admission.try_admit_as(arrival).map_err(refused)
}

/// A place for a media upgrade that proves its call only in `start`, or the 503 that refuses it.
pub fn admit_pending(state: &AppState, peer: IpAddr, arrival: Arrival, proof: Proof) -> Result<PendingSlot, ApiError> {
    state.bridge.admission.try_pending_as(peer, arrival, proof).map_err(refused)
}

fn refused(refusal: Refusal) -> ApiError {
    let (reason, code, message) = match refusal {
        Refusal::Full => ("full", "at_capacity", "too many live calls"),
        Refusal::Draining => ("draining", "draining", "server is shutting down"),
        Refusal::PendingFull => ("pending_full", "at_capacity", "too many streams waiting to start"),
        Refusal::PendingPerPeer => {
            ("pending_per_peer", "at_capacity", "too many streams waiting to start from this address")
        }
    };
    telemetry::call_refused(reason);
    ApiError::unavailable(code, message)
}

/// Applies a carrier's status event; 204 when recorded (or a duplicate / stale), 503 when the
/// store failed (the carrier retries).
pub async fn apply_status(state: &AppState, event: &ProviderEvent<'_>) -> Response {
    let view = state.store.call_view(event.call_id).await.ok().flatten();
    // Busy / no answer: the next attempt waits for the backoff of the attempts made so far.
    let attempts = view.as_ref().map_or(1, |v| v.attempts.max(1));
    let backoff = state.retry.backoff(attempts as u32, rand::random::<f64>());
    let retry_at = now_ms() + backoff.as_millis() as i64;
    if event.status.is_terminal() && view.is_none_or(|v| v.direction == "outbound") {
        // An attempt that ended before (or without) its stream needs no pre-warmed model,
        // wherever it is held (only an outbound call, one this server dialled, may have one).
        state.bridge.release_prewarm(event.call_id);
    }
    match state.store.apply_provider_event(event, retry_at, now_ms()).await {
        Ok(applied) => {
            tracing::info!(call_id = event.call_id, provider = event.provider, status = %event.status, ?applied, "call status");
            crate::queue::worker::count_applied(applied);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, call_id = event.call_id, "cannot record a status event");
            ApiError::unavailable("store_unavailable", "status not recorded; retry").into_response()
        }
    }
}

/// Records who answered the attempt. A machine (or fax) ends the call as `voicemail`: with
/// `speak_now` the AI leaves the call's message first (when it has one and its stream is live
/// here), otherwise — or without a message — the call is hung up. Without `speak_now` a
/// machine with a message waits for [`machine_greeting_ended`].
pub async fn answered_by(
    state: &AppState,
    provider: Provider,
    call_id: &str,
    carrier_call_id: &str,
    answered_by: &str,
    speak_now: bool,
) -> Response {
    match state.store.record_answered_by(call_id, carrier_call_id, answered_by).await {
        Ok(true) => {}
        Ok(false) => return StatusCode::NO_CONTENT.into_response(), // another attempt's verdict
        Err(e) => return ApiError::from(e).into_response(),
    }
    tracing::info!(call_id, answered_by, provider = provider.as_str(), "answering-machine detection");
    if !is_machine(answered_by) {
        return StatusCode::NO_CONTENT.into_response();
    }
    // A fax gets no message; a machine with one may have to wait for its beep (the AI keeps
    // quiet meanwhile; if the call is not live here, the beep's event decides).
    let message = if answered_by == "fax" { None } else { voicemail_message(state, call_id).await };
    match message {
        Some(message) if !speak_now => {
            state.bridge.command_anywhere(call_id, CallCommand::AwaitBeep(message)).await;
        }
        message => leave_message_or_hang_up(state, provider, call_id, carrier_call_id, message).await,
    }
    StatusCode::NO_CONTENT.into_response()
}

/// The machine's greeting ended (the beep): leave the call's message, or hang up. 503 when the
/// call cannot be read (the carrier redelivers).
pub async fn machine_greeting_ended(
    state: &AppState,
    provider: Provider,
    call_id: &str,
    carrier_call_id: &str,
) -> Response {
    let view = match state.store.call_view(call_id).await {
        Ok(view) => view,
        Err(e) => return ApiError::from(e).into_response(),
    };
    if let Some(view) = view.filter(|v| v.answered_by.as_deref().is_some_and(is_machine)) {
        leave_message_or_hang_up(state, provider, call_id, carrier_call_id, view.voicemail_message).await;
    }
    StatusCode::OK.into_response()
}

async fn voicemail_message(state: &AppState, call_id: &str) -> Option<String> {
    state.store.call_view(call_id).await.ok().flatten().and_then(|v| v.voicemail_message)
}

async fn leave_message_or_hang_up(
    state: &AppState,
    provider: Provider,
    call_id: &str,
    carrier_call_id: &str,
    message: Option<String>,
) {
    if let Some(message) = message
        && state.bridge.command_anywhere(call_id, CallCommand::LeaveVoicemail(message)).await
    {
        return;
    }
    if state.bridge.carriers.is_configured(provider) {
        // Answer the carrier now; hang up in the background.
        state.bridge.carriers.hang_up_soon(provider, carrier_call_id);
    }
}
