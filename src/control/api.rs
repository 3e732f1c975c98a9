//! The user's API (`/v1`): queue an outbound call, read one, list them, cancel one, metrics.
//! Bodies are validated in `call_request`; errors take the contract's shape from `error`.

use crate::store::{CallRecords, OutboundCalls};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde_json::Value;

use super::AppState;
use super::call_request;
use super::error::ApiError;
use super::openapi::{ApiMetrics, CallPage, CreateCallBody, ErrorEnvelope, PatchCallBody, Transcript, TranscriptEntry};
use crate::call::driver::CallCommand;
use crate::lifecycle::status::CallStatus;
use crate::providers::carrier::Provider;
use crate::store::outbound::{ListFilter, OutboundPatch};
use crate::store::resource::{CallResource, HistoryEntry, rfc3339};
use crate::store::{Cancel, JobStore};

const MAX_IDEMPOTENCY_KEY: usize = 255;

/// One call with its status history and, while queued, its queue position.
async fn full_resource(state: &AppState, id: &str) -> Result<CallResource, ApiError> {
    let view = state.store.call_view(id).await?.ok_or_else(|| ApiError::not_found("call"))?;
    let mut r = view.to_resource(&state.bridge.prices);
    r.history = state.store.get_call(id).await?.map(|c| {
        c.history
            .iter()
            .map(|(s, at, d)| HistoryEntry { status: s.as_str().into(), at: rfc3339(*at), detail: d.clone() })
            .collect()
    });
    if let (CallStatus::Queued, Some(job)) = (view.status, view.job_id) {
        r.queue_position = state.store.queue_position(job).await?;
    }
    Ok(r)
}

/// `POST /v1/calls`.
#[utoipa::path(post, path = "/v1/calls", tag = "calls", request_body = CreateCallBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "the same key (within 24 h) returns the same call; reused with another body: 422")),
    responses(
        (status = 201, description = "queued", body = CallResource, headers(("Location" = String, description = "/v1/calls/{id}"))),
        (status = 200, description = "the same Idempotency-Key, or a live (or windowed) dedupe_key: the existing call", body = CallResource),
        (status = 400, description = "not JSON", body = ErrorEnvelope),
        (status = 401, description = "no or a wrong API key", body = ErrorEnvelope),
        (status = 403, description = "no keys configured and not from loopback, or a browser Origin", body = ErrorEnvelope),
        (status = 413, description = "body over 2 MiB", body = ErrorEnvelope),
        (status = 415, description = "not application/json", body = ErrorEnvelope),
        (status = 422, description = "a field is invalid (the message names it)", body = ErrorEnvelope),
        (status = 429, description = "over VOXBRIDGE_API_RATE_LIMIT (Retry-After)", body = ErrorEnvelope),
        (status = 503, description = "the database is unavailable", body = ErrorEnvelope),
    ))]
pub async fn create_call(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return ApiError::bad_request("invalid_json", format!("body is not JSON: {e}")).into_response(),
    };
    let idempotency_key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(k)) if !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY => Some(k.to_string()),
        Some(_) => return ApiError::invalid("Idempotency-Key", "must be 1 to 255 visible characters").into_response(),
    };
    let (status, id) = match super::create::create(&state, &body, None, idempotency_key.as_deref()).await {
        Ok(created) => created,
        Err(e) => return e.into_response(),
    };
    match full_resource(&state, &id).await {
        Ok(r) => {
            let location = [(axum::http::header::LOCATION, format!("/v1/calls/{id}"))];
            (status, location, Json(r)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// `GET /v1/calls/{id}`.
#[utoipa::path(get, path = "/v1/calls/{id}", tag = "calls", params(("id" = String, Path)),
    responses(
        (status = 200, description = "the call, with its history", body = CallResource),
        (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope),
    ))]
pub async fn get_call(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match full_resource(&state, &id).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Default)]
pub struct ListQuery {
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    campaign: Option<String>,
    to: Option<String>,
    metadata: Option<(String, String)>,
    agent_id: Option<String>,
    direction: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

impl ListQuery {
    /// The list's parameters; one it does not know is an error rather than silently ignored
    /// (a typo'd filter must not return every call).
    fn parse(query: Option<&str>) -> Result<ListQuery, ApiError> {
        let mut q = ListQuery::default();
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            if let Some(key) = k.strip_prefix("metadata.") {
                if q.metadata.is_some() {
                    return Err(ApiError::bad_request("unknown_parameter", "one metadata.KEY filter at a time"));
                }
                q.metadata = Some((key.to_string(), v.into_owned()));
                continue;
            }
            let slot = match k.as_ref() {
                "status" => &mut q.status,
                "limit" => &mut q.limit,
                "cursor" => &mut q.cursor,
                "campaign" => &mut q.campaign,
                "to" => &mut q.to,
                "agent_id" => &mut q.agent_id,
                "direction" => &mut q.direction,
                "since" => &mut q.since,
                "until" => &mut q.until,
                other => {
                    return Err(ApiError::bad_request(
                        "unknown_parameter",
                        format!(
                            "unknown list parameter {other:?}; known: status, campaign, to, agent_id, direction, since, until, metadata.KEY, limit, cursor"
                        ),
                    ));
                }
            };
            *slot = Some(v.into_owned());
        }
        Ok(q)
    }
}

/// `GET /v1/calls?status=&limit=&cursor=`: newest first; `next_cursor` continues.
#[utoipa::path(get, path = "/v1/calls", tag = "calls",
    params(
        ("status" = Option<String>, Query, description = "a call status"),
        ("campaign" = Option<String>, Query),
        ("to" = Option<String>, Query, description = "E.164"),
        ("metadata.KEY" = Option<String>, Query, description = "calls whose metadata KEY equals the value (one at a time)"),
        ("agent_id" = Option<String>, Query, description = "calls made from this agent"),
        ("direction" = Option<String>, Query, description = "inbound or outbound"),
        ("since" = Option<String>, Query, description = "created at or after this RFC 3339 time"),
        ("until" = Option<String>, Query, description = "created before this RFC 3339 time"),
        ("limit" = Option<i64>, Query, description = "1 … 100, default 20"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "newest first", body = CallPage),
        (status = 400, description = "an unknown parameter", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope),
    ))]
pub async fn list_calls(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let q = match ListQuery::parse(query.as_deref()) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => match CallStatus::parse(s) {
            Some(s) => Some(s),
            None => return ApiError::invalid("status", "is not a call status").into_response(),
        },
    };
    let limit = match q.limit.as_deref().map(str::parse::<i64>) {
        None => 20,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => return ApiError::invalid("limit", "must be a whole number from 1 to 100").into_response(),
    };
    let before = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => match c.split_once('_').and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_string()))) {
            Some(b) => Some(b),
            None => return ApiError::invalid("cursor", "is not a cursor from a previous page").into_response(),
        },
    };
    let filter = ListFilter {
        status,
        campaign: q.campaign.filter(|c| !c.is_empty()),
        to: q.to.filter(|t| !t.is_empty()),
        metadata: q.metadata,
        agent_id: q.agent_id.filter(|a| !a.is_empty()),
        direction: match q.direction.as_deref() {
            None | Some("") => None,
            Some(d @ ("inbound" | "outbound")) => Some(d.to_string()),
            Some(_) => return ApiError::invalid("direction", "must be inbound or outbound").into_response(),
        },
        created_from: match time_param("since", q.since.as_deref()) {
            Ok(t) => t,
            Err(e) => return e.into_response(),
        },
        created_before: match time_param("until", q.until.as_deref()) {
            Ok(t) => t,
            Err(e) => return e.into_response(),
        },
    };
    match state.store.list_calls(&filter, before, limit).await {
        Ok(page) => {
            let next = (page.len() as i64 == limit)
                .then(|| page.last().map(|c| format!("{}_{}", c.created_at, c.id)))
                .flatten();
            let calls = page.iter().map(|c| c.to_resource(&state.bridge.prices)).collect();
            Json(CallPage { calls, next_cursor: next }).into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// A list's time bound (RFC 3339), in ms.
fn time_param(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse::<Timestamp>()
            .map(|t| Some(t.as_millisecond()))
            .map_err(|_| ApiError::invalid(name, "must be an RFC 3339 time like 2026-12-07T00:00:00Z")),
    }
}

/// `POST /v1/calls/{id}/cancel`: a queued call is canceled; a live one is hung up through the
/// provider (202, the status callback records the end); a finished one is a conflict.
#[utoipa::path(post, path = "/v1/calls/{id}/cancel", tag = "calls", params(("id" = String, Path)),
    responses(
        (status = 200, description = "a queued call, canceled", body = CallResource),
        (status = 202, description = "a live call, being hung up (its carrier reports the end)", body = CallResource),
        (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, description = "already finished", body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope),
    ))]
pub async fn cancel_call(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let view = match state.store.call_view(&id).await {
        Ok(Some(v)) => v,
        Ok(None) => return ApiError::not_found("call").into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let outcome = match state.store.cancel_outbound(&id, Timestamp::now().as_millisecond()).await {
        Ok(o) => o,
        Err(e) => return ApiError::from(e).into_response(),
    };
    // An inbound call has no job: it is live when its record says so.
    let live = matches!(view.status, CallStatus::Dialing | CallStatus::Ringing | CallStatus::InProgress);
    let status = match outcome {
        Cancel::Canceled => StatusCode::OK,
        Cancel::Running | Cancel::Finished if live => {
            // The stream, if it is live here, hangs up through its carrier (or closes); otherwise
            // the carrier is asked directly.
            let here = state.bridge.command(&id, CallCommand::HangUp);
            let provider = Provider::parse(&view.provider).unwrap_or(Provider::Twilio);
            match &view.provider_call_id {
                _ if here => {}
                Some(sid) if state.bridge.carriers.is_configured(provider) => {
                    if let Err(e) = state.bridge.carriers.hang_up(provider, sid).await {
                        return ApiError::unavailable("provider_unavailable", e.to_string()).into_response();
                    }
                }
                _ if matches!(outcome, Cancel::Running) => {}
                _ => {
                    return ApiError::conflict(
                        "not_live_here",
                        format!("call is {} but its stream is not on this server and no carrier credentials are set to hang it up", view.status),
                    )
                    .into_response();
                }
            }
            StatusCode::ACCEPTED
        }
        Cancel::Running | Cancel::Finished => {
            return ApiError::conflict("call_finished", format!("call is {}; nothing to cancel", view.status))
                .into_response();
        }
    };
    match full_resource(&state, &id).await {
        Ok(r) => (status, Json(r)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /v1/metrics`: calls by status, queue depth, live calls.
#[utoipa::path(get, path = "/v1/metrics", tag = "operations",
    responses((status = 200, body = ApiMetrics), (status = 401, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    match state.store.call_counts().await {
        Ok(counts) => {
            let by_status: serde_json::Map<String, Value> =
                counts.calls_by_status.into_iter().map(|(s, n)| (s, n.into())).collect();
            Json(ApiMetrics {
                calls_by_status: Value::Object(by_status),
                queue_depth: counts.queued_jobs,
                live_calls: state.bridge.admission.live(),
            })
            .into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /v1/calls/{id}/transcript`: both sides, in order, with times since the stream started.
#[utoipa::path(get, path = "/v1/calls/{id}/transcript", tag = "calls", params(("id" = String, Path)),
    responses(
        (status = 200, body = Transcript),
        (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope),
    ))]
pub async fn transcript(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.store.call_view(&id).await {
        Ok(Some(_)) => {}
        Ok(None) => return ApiError::not_found("call").into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    }
    match state.store.transcript(&id).await {
        Ok(lines) => {
            let entries = lines
                .into_iter()
                .map(|l| TranscriptEntry { speaker: l.speaker, text: l.text, at_ms: l.at_ms, heard_ms: l.heard_ms })
                .collect();
            Json(Transcript { call_id: id, entries }).into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `PATCH /v1/calls/{id}`: change a call that has not started dialling (409 otherwise).
#[utoipa::path(patch, path = "/v1/calls/{id}", tag = "calls", params(("id" = String, Path)), request_body = PatchCallBody,
    responses(
        (status = 200, description = "changed", body = CallResource),
        (status = 400, description = "not JSON", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, description = "no longer queued", body = ErrorEnvelope),
        (status = 422, description = "a field is invalid or cannot be changed", body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope),
    ))]
pub async fn patch_call(State(state): State<AppState>, Path(id): Path<String>, body: Bytes) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return ApiError::bad_request("invalid_json", format!("body is not JSON: {e}")).into_response(),
    };
    let patch = match call_request::parse_patch(&body, Timestamp::now(), state.config.webhook_allow_private) {
        Ok(p) => p,
        Err(e) => return ApiError::invalid(&e.field, &e.problem).into_response(),
    };
    let view = match state.store.call_view(&id).await {
        Ok(Some(v)) => v,
        Ok(None) => return ApiError::not_found("call").into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    // A new schedule or window moves the next attempt; the other one comes from the record.
    let now = Timestamp::now();
    let run_at = if patch.scheduled_at.is_some() || patch.call_window.is_some() {
        let window = match &patch.call_window {
            Some((w, _)) => Some(w.clone()),
            None if patch.clear_call_window => None,
            None => view.call_window.as_deref().and_then(crate::queue::policy::CallWindow::from_json),
        };
        let base = patch
            .scheduled_at
            .map_or_else(|| view.next_attempt_at.unwrap_or(now.as_millisecond()), |t| t.as_millisecond());
        let at = Timestamp::from_millisecond(base.max(now.as_millisecond())).unwrap_or(now);
        Some(window.map_or(at, |w| w.next_opening(at)).as_millisecond())
    } else {
        None
    };
    let changes = OutboundPatch {
        instructions: patch.instructions,
        greeting: patch.greeting,
        voice: patch.voice,
        metadata: patch.metadata.map(|m| Value::Object(m).to_string()),
        call_window: patch.call_window.map(|(_, w)| w.to_string()),
        clear_call_window: patch.clear_call_window,
        webhook_url: patch.webhook_url,
        priority: patch.priority,
        max_attempts: patch.max_attempts,
        run_at,
    };
    match state.store.patch_outbound(&id, &changes, now.as_millisecond()).await {
        Ok(true) => match full_resource(&state, &id).await {
            Ok(r) => Json(r).into_response(),
            Err(e) => e.into_response(),
        },
        Ok(false) => {
            ApiError::conflict("not_queued", format!("call is {}; only a queued call can be changed", view.status))
                .into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}
