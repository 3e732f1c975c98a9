//! Twilio's routes: the voice webhook answers `<Connect><Stream>` with a one-time stream
//! token; the media upgrade is signature-checked, admitted, then bridged. Both fail closed
//! when `TWILIO_AUTH_TOKEN` is set, and unsigned ones are refused when the public URL is not
//! local unless the operator allowed them (`control::unsigned`).

use crate::store::{CallRecords, OutboundCalls};
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};

use super::call_events::now_ms;
use super::error::ApiError;
use super::steer::{self, Steer};
use super::{AppState, MAX_CARRIER_MESSAGE};
use crate::call::admission::{Gate, Proof};
use crate::call::driver::{self, Opening};
use crate::lifecycle::status::CallStatus;
use crate::providers::carrier::{MACHINE_PARAM, Provider};
use crate::providers::twilio::TwilioSession;
use crate::providers::twilio::{signature, status, twiml};
use crate::store::calls::{NewCallRecord, ProviderEvent};
use crate::telemetry;

const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// `POST /twilio/voice`: an inbound call.
pub async fn voice(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = match signed_form(&state, peer, &headers, "/twilio/voice", query.as_deref(), &body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    // The only carrier id this call's hang-up and transfer will act on: checked here, where it
    // is signed, and never taken from the media stream's `start`.
    let call_sid = param(&params, "CallSid");
    if !crate::providers::rest::is_call_id(call_sid) {
        return ApiError::bad_request("invalid_webhook", "CallSid is missing or not a call sid").into_response();
    }
    if state.bridge.admission.is_draining() {
        return xml(twiml::say_hangup(&state.bridge.carriers.apology));
    }
    let call_id = format!("c_{:016x}", rand::random::<u64>());
    let (from, to) = (param(&params, "From"), param(&params, "To"));
    let served = super::inbound::choose(&state, &call_id, Provider::Twilio, from, to).await;
    if served.reject {
        tracing::info!(call_id, "inbound call rejected by the inbound webhook");
        return xml(twiml::reject());
    }
    let token = state.bridge.tokens.mint(&call_id, crate::store::now_ms());
    let record = NewCallRecord {
        id: call_id.clone(),
        provider: "twilio".into(),
        inbound: true,
        to_number: to.to_string(),
        from_number: Some(from.to_string()).filter(|f| !f.is_empty()),
        status: CallStatus::Ringing,
        webhook_url: served.webhook_url.clone(),
        provider_call_id: Some(call_sid.to_string()),
        config: served.config.clone(),
        agent: served.agent.clone(),
    };
    // The caller must hear the AI even if the record cannot be written; log and go on.
    if let Err(e) = state.store.insert_call(&record, now_ms()).await {
        tracing::error!(error = %e, call_id, "cannot record the inbound call");
    }
    super::inbound::note(&state, &call_id, &served).await;
    let stream_url = stream_url(&state, None);
    tracing::info!(call_id, from = %telemetry::redact_number(param(&params, "From")), "inbound call");
    xml(twiml::connect_stream(&stream_url, &[("call_id", &call_id), ("token", &token)], &state.bridge.carriers.apology))
}

/// `GET /media/twilio`: the media stream upgrade. Signature first (403), then a place among the
/// sockets still waiting to prove their call (503 beyond the caps); the live-call slot is taken
/// only once `start` carries the call's one-time token.
pub async fn media(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    stream(state, peer, headers, ws, None).await
}

/// `GET /media/twilio/{machine}`: the same, for an outbound call dialled by `machine` (on Fly,
/// with pre-warm): replayed there by Fly's proxy unless this is that machine (`control::steer`).
pub async fn media_for_machine(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(machine): Path<String>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    stream(state, peer, headers, ws, Some(machine)).await
}

async fn stream(
    state: AppState,
    peer: SocketAddr,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
    machine: Option<String>,
) -> Response {
    let url = stream_url(&state, machine.as_deref());
    if let Err(e) = check_signature(&state, peer, &headers, &url, &[]) {
        telemetry::call_refused(if e.code == "signature_required" { "unsigned" } else { "signature" });
        return e.into_response();
    }
    // Only a signed upgrade is steered: unsigned, nothing is proven before `start`, and a
    // stranger's upgrade would earn a replay to any machine it names.
    let signed = state.config.twilio_auth_token.is_some();
    let steered_to = machine.as_deref().filter(|_| signed);
    let arrival = match steer::steer(&state.config.fly_machine_id, steered_to, &headers) {
        Steer::Serve(arrival) => arrival,
        Steer::ReplayTo(machine) => return steer::replay_to(&machine),
    };
    let proof = if signed { Proof::Signed } else { Proof::Unsigned };
    let pending = match super::call_events::admit_pending(&state, peer.ip(), arrival, proof) {
        Ok(pending) => pending,
        Err(refused) => return refused.into_response(),
    };
    let bridge = state.bridge.clone();
    ws.max_message_size(MAX_CARRIER_MESSAGE)
        .max_frame_size(MAX_CARRIER_MESSAGE)
        .read_buffer_size(super::CARRIER_READ_BUFFER)
        .write_buffer_size(super::CARRIER_WRITE_BUFFER)
        .on_upgrade(move |socket| {
            let opening = Opening {
                provider: Provider::Twilio,
                session: TwilioSession::new(),
                authorized_call_id: None,
                resume: None,
            };
            driver::run(bridge, socket, Gate::Pending(pending), opening)
        })
}

/// `GET|POST /twiml/{call_id}`: TwiML for a call voxbridge placed. A call whose attempt is in
/// progress gets `<Connect><Stream>` with its id and a one-time token; anything else a polite
/// goodbye.
pub async fn outbound_twiml(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(call_id): Path<String>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // A GET carries its parameters in the (signed) URL; only a POST body adds form fields.
    let body = if method == Method::POST { body } else { Bytes::new() };
    if let Err(e) = signed_form(&state, peer, &headers, &format!("/twiml/{call_id}"), query.as_deref(), &body) {
        return e.into_response();
    }
    let live = matches!(
        state.store.call_view(&call_id).await,
        Ok(Some(v)) if v.direction == "outbound" && matches!(v.status, CallStatus::Dialing | CallStatus::Ringing | CallStatus::InProgress)
    );
    if !live || state.bridge.admission.is_draining() {
        return xml(twiml::say_hangup("Sorry, this call is no longer available. Goodbye."));
    }
    let token = state.bridge.tokens.mint(&call_id, crate::store::now_ms());
    // The machine that dialled the call (and holds its pre-warmed session) rides in the path.
    let machine = url::form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == MACHINE_PARAM)
        .map(|(_, v)| v.into_owned())
        .filter(|m| steer::is_machine_id(m));
    let stream_url = stream_url(&state, machine.as_deref());
    xml(twiml::connect_stream(&stream_url, &[("call_id", &call_id), ("token", &token)], &state.bridge.carriers.apology))
}

/// Our media stream's public URL (Twilio signs the upgrade with it), naming `machine` if any.
pub(super) fn stream_url(state: &AppState, machine: Option<&str>) -> String {
    match machine {
        Some(machine) => format!("{}/media/twilio/{machine}", state.config.public_ws_base()),
        None => format!("{}/media/twilio", state.config.public_ws_base()),
    }
}

/// `POST /webhooks/twilio/status?call_id=…`: call progress. Signed, idempotent (each
/// `CallSid` + `SequenceNumber` once), forward-only; answered fast with 204.
pub async fn status(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = match signed_form(&state, peer, &headers, "/webhooks/twilio/status", query.as_deref(), &body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let query = query.unwrap_or_default();
    let arg = |name: &str| query_arg(&query, name);
    // The attempt is in the URL we gave with the dial (absent on URLs from before it was).
    let attempt = arg("attempt").and_then(|a| a.parse::<i64>().ok());
    let Some(call_id) = arg("call_id") else {
        return ApiError::bad_request("missing_call_id", "the status URL carries no call_id").into_response();
    };
    // The async answering-machine verdict comes without a CallStatus.
    if param(&params, "CallStatus").is_empty() && !param(&params, "AnsweredBy").is_empty() {
        return answered_by(&state, &call_id, param(&params, "CallSid"), param(&params, "AnsweredBy")).await;
    }
    let cb = match status::parse(&params) {
        Ok(cb) => cb,
        Err(e) => return ApiError::bad_request("invalid_callback", e.to_string()).into_response(),
    };
    let event_id = match cb.sequence {
        Some(seq) => format!("{}:{seq}", cb.call_sid),
        None => format!("{}:{}:{}", cb.call_sid, cb.status, cb.answered_by.as_deref().unwrap_or("")),
    };
    let detail = cb.sip_code.map(|c| format!("sip {c}"));
    tracing::info!(call_id, status = %cb.status, "twilio status");
    let event = ProviderEvent {
        provider: "twilio",
        event_id: &event_id,
        call_id: &call_id,
        provider_call_id: &cb.call_sid,
        attempt,
        status: cb.status,
        detail: detail.as_deref(),
        carrier_seconds: cb.duration_s.map(|s| s as i64),
    };
    super::call_events::apply_status(&state, &event).await
}

/// Records who answered the attempt (the message has ended: `DetectMessageEnd`); on a machine
/// the AI leaves the call's message, or the call is hung up.
async fn answered_by(state: &AppState, call_id: &str, call_sid: &str, answered_by: &str) -> Response {
    super::call_events::answered_by(state, Provider::Twilio, call_id, call_sid, answered_by, true).await
}

/// The form fields of a Twilio request to `path`, after checking its signature against the
/// public URL with the raw query string (the one place Twilio HTTP requests are authenticated).
pub(super) fn signed_form(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Result<Vec<(String, String)>, ApiError> {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let mut url = state.config.public_http(path);
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        url.push('?');
        url.push_str(q);
    }
    check_signature(state, peer, headers, &url, &params)?;
    Ok(params)
}

/// Checks the request's `X-Twilio-Signature` against `url` (our public URL for it). Each kind of
/// refusal is logged once per source address, with the URL that was checked — a wrong
/// `VOXBRIDGE_PUBLIC_URL` (proxy, tunnel) shows as every signature failing against that URL.
fn check_signature(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    url: &str,
    params: &[(String, String)],
) -> Result<(), ApiError> {
    let Some(token) = state.config.twilio_auth_token.as_deref() else {
        return super::unsigned::allow(&state.config, Provider::Twilio, peer.ip(), headers, url);
    };
    let Some(given) = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()) else {
        if telemetry::first_from("twilio_missing_signature", peer.ip()) {
            tracing::warn!(url, peer = %peer.ip(), "Twilio request without X-Twilio-Signature refused (logged once per source)");
        }
        return Err(ApiError::forbidden("missing X-Twilio-Signature"));
    };
    if signature::validate(token, url, params, given) {
        Ok(())
    } else {
        if telemetry::first_from("twilio_bad_signature", peer.ip()) {
            tracing::warn!(
                url,
                peer = %peer.ip(),
                "X-Twilio-Signature does not match (checked against this URL: is VOXBRIDGE_PUBLIC_URL what Twilio calls?); logged once per source"
            );
        }
        Err(ApiError::forbidden("X-Twilio-Signature does not match"))
    }
}

/// A parameter of a (signed) callback URL's query.
pub(super) fn query_arg(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

pub(super) fn param<'a>(params: &'a [(String, String)], name: &str) -> &'a str {
    params.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v)
}

pub(super) fn xml(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}
