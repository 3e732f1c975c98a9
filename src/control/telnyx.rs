//! Telnyx's routes: the media upgrade, admitted only with the one-time token we put in the
//! stream URL (Telnyx signs nothing there), and the Call Control webhook, Ed25519-checked when
//! `TELNYX_PUBLIC_KEY` is set, deduplicated by event id and answered fast.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::Digest;

use super::call_events::{self, now_ms};
use super::error::ApiError;
use super::steer::{self, Steer};
use super::{AppState, MAX_CARRIER_MESSAGE};
use crate::call::admission::Gate;
use crate::call::driver::{self, Opening};
use crate::lifecycle::status::CallStatus;
use crate::providers::carrier::Provider;
use crate::providers::telnyx::media::TelnyxSession;
use crate::providers::telnyx::rest::{attempt_of, call_id_of, hangs_up_after_speech};
use crate::providers::telnyx::signature::SignatureError;
use crate::providers::telnyx::webhook::{self, Meaning, Webhook};
use crate::store::calls::{NewCallRecord, ProviderEvent};
use crate::store::{CallRecords, OutboundCalls};
use crate::telemetry;

const PROVIDER: &str = "telnyx";

#[derive(Deserialize)]
pub struct StreamQuery {
    #[serde(default)]
    call_id: String,
    #[serde(default)]
    token: String,
    /// The machine that dialled the call (`control::steer`).
    #[serde(default)]
    machine: Option<String>,
    /// A caller back from a transfer nobody answered: why, and where it went.
    #[serde(default)]
    resume: Option<String>,
    #[serde(default)]
    transfer_to: Option<String>,
}

/// `GET /media/telnyx?call_id=…&token=…[&machine=…]`: the media stream upgrade. A stream named
/// for another machine is replayed there first (on Fly: `control::steer`; its token unspent).
/// A missing, wrong, expired or already used token is refused with 403 before any model
/// session opens.
pub async fn media(
    State(state): State<AppState>,
    Query(q): Query<StreamQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    // Only a stream with a genuine, unspent token is worth a replay (checked, not spent here): a
    // stranger's, or a replayed one, is refused here.
    let named = match q.machine.as_deref() {
        Some(m) if state.bridge.token_unspent(&q.token, &q.call_id).await => Some(m),
        _ => None,
    };
    let arrival = match steer::steer(&state.config.fly_machine_id, named, &headers) {
        Steer::Serve(arrival) => arrival,
        Steer::ReplayTo(machine) => return steer::replay_to(&machine),
    };
    let slot = match call_events::admit(&state, arrival) {
        Ok(slot) => slot,
        Err(refused) => return refused.into_response(),
    };
    if !state.bridge.redeem_token(&q.token, &q.call_id).await {
        telemetry::call_refused("stream_token");
        tracing::warn!(call_id = q.call_id, "Telnyx stream without a valid one-time token: refused");
        return ApiError::forbidden_api("stream token missing, used or wrong").into_response();
    }
    let bridge = state.bridge.clone();
    ws.max_message_size(MAX_CARRIER_MESSAGE)
        .max_frame_size(MAX_CARRIER_MESSAGE)
        .read_buffer_size(super::CARRIER_READ_BUFFER)
        .write_buffer_size(super::CARRIER_WRITE_BUFFER)
        .on_upgrade(move |socket| {
            let opening = Opening {
                provider: Provider::Telnyx,
                session: TelnyxSession::new(),
                authorized_call_id: Some(q.call_id),
                resume: q.resume.zip(q.transfer_to),
            };
            driver::run(bridge, socket, Gate::Live(slot), opening)
        })
}

/// `POST /webhooks/telnyx`: Call Control events.
pub async fn webhook(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if state.telnyx_key.is_none()
        && let Err(refused) =
            super::unsigned::allow(&state.config, Provider::Telnyx, peer.ip(), &headers, "/webhooks/telnyx")
    {
        return refused.into_response();
    }
    if let Some(key) = &state.telnyx_key {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let now = now_ms() / 1000;
        match key.verify(header("telnyx-signature-ed25519"), header("telnyx-timestamp"), &body, now) {
            Ok(skew) => telemetry::webhook_clock_skew(PROVIDER, skew),
            Err(e) => {
                if let SignatureError::Stale(skew) = e {
                    telemetry::webhook_clock_skew(PROVIDER, skew);
                }
                if telemetry::first_from("telnyx_bad_signature", peer.ip()) {
                    tracing::warn!(error = %e, peer = %peer.ip(), "bad Telnyx webhook signature (logged once per source)");
                }
                return ApiError::forbidden(format!("Telnyx signature refused: {e}")).into_response();
            }
        }
    }
    let event = match webhook::parse(&body) {
        Ok(w) => w,
        Err(e) => return ApiError::bad_request("invalid_webhook", e.to_string()).into_response(),
    };
    let meaning = webhook::meaning(&event);
    tracing::debug!(event_type = event.event_type, id = event.id, "telnyx webhook");
    // Status changes and machine verdicts are deduplicated atomically with what they record;
    // the other events act once: seen first, forgotten again if acting on them failed.
    let act_once = !matches!(meaning, Meaning::Status(_) | Meaning::AnsweredBy(_) | Meaning::Info);
    if act_once {
        match state.store.first_sighting(PROVIDER, &event.id, now_ms()).await {
            Ok(true) => {}
            Ok(false) => return StatusCode::OK.into_response(),
            Err(e) => {
                tracing::error!(error = %e, "cannot record a Telnyx webhook");
                return ApiError::unavailable("store_unavailable", "event not recorded; retry").into_response();
            }
        }
    }
    let response = act(&state, &event, meaning).await;
    if act_once && response.status().is_server_error() {
        // Telnyx redelivers a failed webhook: let that delivery act.
        if let Err(e) = state.store.forget_sighting(PROVIDER, &event.id).await {
            tracing::error!(error = %e, id = event.id, "cannot forget a failed Telnyx webhook; its redelivery is lost");
        }
    }
    response
}

/// Acts on a new (or status) event.
async fn act(state: &AppState, event: &Webhook, meaning: Meaning) -> Response {
    if meaning == Meaning::Incoming {
        return incoming(state, event).await;
    }
    // Events about calls that are not ours (no client_state of ours) are acknowledged and dropped.
    let Some(call_id) = event.client_state.as_deref().and_then(call_id_of) else {
        return StatusCode::OK.into_response();
    };
    // The human's leg of a transfer: how it went decides the caller's call, never its status.
    if let Some(to) = event.client_state.as_deref().and_then(crate::providers::telnyx::rest::transfer_of) {
        return transfer_leg(state, event, meaning, &call_id, &to).await;
    }
    let ccid = event.call_control_id.as_str();
    match meaning {
        Meaning::Status(status) => {
            let detail = event.hangup_cause.as_ref().map(|c| match &event.sip_hangup_cause {
                Some(sip) => format!("{c} (sip {sip})"),
                None => c.clone(),
            });
            let ev = ProviderEvent {
                provider: PROVIDER,
                event_id: &event.id,
                call_id: &call_id,
                provider_call_id: ccid,
                attempt: event.client_state.as_deref().and_then(attempt_of),
                status,
                detail: detail.as_deref(),
                carrier_seconds: None,
            };
            call_events::apply_status(state, &ev).await
        }
        Meaning::AnsweredBy(answered_by) => {
            call_events::answered_by(state, Provider::Telnyx, &call_id, ccid, answered_by, false).await
        }
        Meaning::GreetingEnded => call_events::machine_greeting_ended(state, Provider::Telnyx, &call_id, ccid).await,
        Meaning::SpeechEnded => {
            // The apology was spoken: hang up, unless the machine that asked for it does.
            let asked = event.client_state.as_deref().is_some_and(hangs_up_after_speech);
            if !state.bridge.carriers.speech_ended(ccid) && asked {
                state.bridge.carriers.hang_up_soon(Provider::Telnyx, ccid);
            }
            StatusCode::OK.into_response()
        }
        Meaning::StreamFailed(reason) => {
            // Without the stream nobody talks to the callee: end the call.
            tracing::warn!(call_id, reason, "Telnyx could not stream the call; hanging up");
            telemetry::call_ended("stream_failed");
            state.bridge.carriers.hang_up_soon(Provider::Telnyx, ccid);
            StatusCode::OK.into_response()
        }
        Meaning::Incoming | Meaning::Info => StatusCode::OK.into_response(),
    }
}

/// A new inbound call (seen for the first time): record it and answer it with streaming (in the
/// background, so Telnyx gets its 2xx at once). The call id derives from the call control id.
async fn incoming(state: &AppState, event: &Webhook) -> Response {
    let ccid = event.call_control_id.clone();
    if !crate::providers::rest::is_call_id(&ccid) {
        return ApiError::bad_request("invalid_webhook", "call_control_id is not a call control id").into_response();
    }
    if !state.bridge.carriers.is_configured(Provider::Telnyx) {
        tracing::warn!("inbound Telnyx call without TELNYX_API_KEY: not answered");
        return StatusCode::OK.into_response();
    }
    let call_id = inbound_call_id(&ccid);
    if state.bridge.admission.is_draining() {
        tracing::warn!(call_id, "inbound Telnyx call while draining: the caller gets the apology");
        let carriers = state.bridge.carriers.clone();
        tokio::spawn(async move {
            if let Err(e) = carriers.answer_to_apologize(&ccid, &call_id).await {
                tracing::warn!(error = %e, call_id, "cannot apologize to the inbound Telnyx call");
            }
        });
        return StatusCode::OK.into_response();
    }
    let served = super::inbound::choose(state, &call_id, Provider::Telnyx, &event.from, &event.to).await;
    if served.reject {
        tracing::info!(call_id, "inbound Telnyx call rejected by the inbound webhook");
        let carriers = state.bridge.carriers.clone();
        tokio::spawn(async move {
            if let Err(e) = carriers.hang_up(Provider::Telnyx, &ccid).await {
                tracing::warn!(error = %e, call_id, "cannot reject the inbound Telnyx call");
            }
        });
        return StatusCode::OK.into_response();
    }
    let record = NewCallRecord {
        id: call_id.clone(),
        provider: PROVIDER.into(),
        inbound: true,
        to_number: event.to.clone(),
        from_number: Some(event.from.clone()).filter(|f| !f.is_empty()),
        status: CallStatus::Ringing,
        webhook_url: served.webhook_url.clone(),
        provider_call_id: Some(ccid.clone()),
        config: served.config.clone(),
        agent: served.agent.clone(),
    };
    // The caller must hear the AI even if the record cannot be written; log and go on.
    if let Err(e) = state.store.insert_call(&record, now_ms()).await {
        tracing::error!(error = %e, call_id, "cannot record the inbound call");
    }
    super::inbound::note(state, &call_id, &served).await;
    tracing::info!(call_id, from = %telemetry::redact_number(&event.from), "inbound Telnyx call");
    let carriers = state.bridge.carriers.clone();
    tokio::spawn(async move {
        if let Err(e) = carriers.answer_telnyx(&ccid, &call_id).await {
            tracing::warn!(error = %e, call_id, "cannot answer the inbound Telnyx call");
        }
    });
    StatusCode::OK.into_response()
}

/// `c_` and 16 hex digits of SHA-256 of the call control id.
fn inbound_call_id(call_control_id: &str) -> String {
    let digest = sha2::Sha256::digest(call_control_id.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("c_{hex}")
}

/// An event of a transfer's leg to `to` (the human's): answered, the call is theirs; hung up
/// unanswered, the caller comes back to the AI (a new stream) or hears the message.
async fn transfer_leg(state: &AppState, event: &Webhook, meaning: Meaning, call_id: &str, to: &str) -> Response {
    use crate::lifecycle::transfer::{self, AfterTransfer, Dialled};
    let Some(target) = super::transfer::target_of(state, call_id, to).await else {
        return StatusCode::OK.into_response();
    };
    let dialled = match meaning {
        Meaning::Status(CallStatus::InProgress) => Dialled::Answered,
        Meaning::Status(s) if s.is_terminal() => {
            let answered = matches!(state.store.call_view(call_id).await, Ok(Some(v)) if v.transferred_to.is_some());
            if answered {
                return StatusCode::OK.into_response(); // the human hung up: the caller's leg ends by itself
            }
            Dialled::NotAnswered(transfer::telnyx_unanswered(event.hangup_cause.as_deref().unwrap_or("")))
        }
        _ => return StatusCode::OK.into_response(),
    };
    let next = transfer::after(dialled, target.ends_with_message());
    tracing::info!(call_id, to, ?next, "telnyx transfer leg");
    let Some(caller) = state.store.call_view(call_id).await.ok().flatten().and_then(|v| v.provider_call_id) else {
        return StatusCode::OK.into_response();
    };
    super::transfer::settle(state, Provider::Telnyx, call_id, &caller, &target, next).await;
    let carriers = &state.bridge.carriers;
    let acted = match next {
        AfterTransfer::Return(why) => carriers.resume_telnyx(&caller, call_id, why.as_str(), to).await,
        AfterTransfer::Message(_) => {
            carriers.say_then_hang_up_telnyx(&caller, call_id, super::transfer::message_of(&target)).await
        }
        AfterTransfer::Transferred | AfterTransfer::Ended => Ok(()),
    };
    if let Err(e) = acted {
        tracing::warn!(error = %e, call_id, "cannot bring the caller back after the transfer; hanging up");
        state.bridge.carriers.hang_up_soon(Provider::Telnyx, &caller);
    }
    StatusCode::OK.into_response()
}
