//! How a transfer ended, as the carrier says it (signed): Twilio asks the `<Dial action>` URL
//! what the caller does next; Telnyx sends the human's leg's own webhooks. Answered, the call is
//! the human's and ends `transferred`; not answered, the caller comes back to the AI on a new
//! stream (told why, with the conversation so far) or hears the message and the call ends
//! `transfer_failed` (`lifecycle::transfer` decides).

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use super::twilio::{param, query_arg, signed_form, stream_url, xml};
use crate::lifecycle::status::CallStatus;
use crate::lifecycle::transfer::{self, AfterTransfer};
use crate::model::TransferTarget;
use crate::providers::carrier::Provider;
use crate::providers::twilio::twiml;
use crate::store::{CallRecords, OutboundCalls};

/// `POST /webhooks/twilio/dial?call_id=…&to=…`: the human's leg of a transfer ended
/// (`DialCallStatus`); the answer is the caller's next TwiML.
pub async fn twilio_dial(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = match signed_form(&state, peer, &headers, "/webhooks/twilio/dial", query.as_deref(), &body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let query = query.unwrap_or_default();
    let (Some(call_id), Some(to)) = (query_arg(&query, "call_id"), query_arg(&query, "to")) else {
        return ApiError::bad_request("missing_call_id", "the dial URL carries no call_id or to").into_response();
    };
    let carrier_call_id = param(&params, "CallSid").to_string();
    let dial_status = param(&params, "DialCallStatus");
    tracing::info!(call_id, to, dial_status, "twilio transfer leg ended");
    let Some(target) = target_of(&state, &call_id, &to).await else {
        return xml(twiml::say_hangup("Sorry, this call is no longer available. Goodbye."));
    };
    let next = transfer::after(transfer::twilio_dial(dial_status), target.ends_with_message());
    settle(&state, Provider::Twilio, &call_id, &carrier_call_id, &target, next).await;
    match next {
        AfterTransfer::Transferred | AfterTransfer::Ended => xml(twiml::hang_up()),
        AfterTransfer::Message(_) => xml(twiml::say_hangup(message_of(&target))),
        AfterTransfer::Return(why) => {
            let token = state.bridge.tokens.mint(&call_id, crate::store::now_ms());
            let url = stream_url(&state, None);
            let params =
                [("call_id", call_id.as_str()), ("token", &token), ("resume", why.as_str()), ("transfer_to", &to)];
            xml(twiml::connect_stream(&url, &params, &state.bridge.carriers.apology))
        }
    }
}

/// The call's transfer target `to` (`None`: no such call, or it has ended).
pub async fn target_of(state: &AppState, call_id: &str, to: &str) -> Option<TransferTarget> {
    let view = state.store.call_view(call_id).await.ok().flatten()?;
    if view.status.is_terminal() {
        return None;
    }
    let targets: Vec<TransferTarget> =
        view.transfer_to.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
    Some(targets.into_iter().find(|t| t.to == to).unwrap_or_else(|| TransferTarget::new(to, "")))
}

/// What the caller hears when nobody took the transfer and the call ends.
pub fn message_of(target: &TransferTarget) -> &str {
    target.message.as_deref().unwrap_or(transfer::DEFAULT_MESSAGE)
}

/// Records what follows a transfer: how the attempt ended (read when the carrier reports the
/// call's end), a line in its history, and, for a Twilio inbound call (whose end no status
/// callback reports), the end itself unless the caller is back with the AI.
pub async fn settle(
    state: &AppState,
    provider: Provider,
    call_id: &str,
    carrier_call_id: &str,
    target: &TransferTarget,
    next: AfterTransfer,
) {
    let bridge = &state.bridge;
    let to = target.to.as_str();
    let (noted, note) = match next {
        AfterTransfer::Transferred => {
            if let Err(e) = state.store.save_transferred_to(call_id, to).await {
                tracing::warn!(error = %e, call_id, "cannot record where the call was transferred");
            }
            ("transferred", format!("transfer to {to} answered"))
        }
        AfterTransfer::Message(why) => {
            ("transfer_failed", format!("transfer to {to} not taken ({}): the caller heard the message", why.as_str()))
        }
        AfterTransfer::Return(why) => {
            ("caller_hung_up", format!("transfer to {to} not taken ({}): the caller is back with the AI", why.as_str()))
        }
        AfterTransfer::Ended => ("caller_hung_up", format!("the caller hung up while {to} rang")),
    };
    if let Err(e) = state.store.note_stream_end(call_id, noted, crate::store::now_ms()).await {
        tracing::warn!(error = %e, call_id, "cannot record how the transfer ended");
    }
    bridge.note_history(call_id, &note).await;
    if !matches!(next, AfterTransfer::Return(_)) {
        bridge.stream_status(provider, call_id, carrier_call_id, CallStatus::Completed).await;
    }
}
