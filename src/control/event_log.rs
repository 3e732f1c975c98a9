//! A call's event log through the API: every event sent to the business's endpoint with each
//! delivery attempt (`GET /v1/calls/{id}/events`), and sending one again
//! (`POST /v1/events/{id}/redeliver`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::openapi::ErrorEnvelope;
use crate::store::events::EventRecord;
use crate::store::resource::rfc3339;
use crate::store::{EventOutbox, OutboundCalls};

/// A call's events, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventLog {
    pub call_id: String,
    pub events: Vec<EventLogEntry>,
}

/// One event and how its delivery went.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventLogEntry {
    /// The id the endpoint received (`evt_…`); redeliver by it.
    pub id: String,
    /// `call.<status>`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// RFC 3339: when the call reached the status.
    pub created_at: String,
    /// Where it is sent.
    pub url: String,
    /// `pending` (to be sent, or retried), `delivered`, or `failed` (given up on).
    pub state: String,
    pub attempts: i64,
    /// While pending: when it is tried (again).
    pub next_attempt_at: Option<String>,
    pub last_error: Option<String>,
    pub deliveries: Vec<DeliveryEntry>,
}

/// One delivery attempt.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryEntry {
    pub at: String,
    /// `delivered`, `failed` (tried again while attempts remain) or `refused` (a private target).
    pub result: String,
    pub error: Option<String>,
}

impl From<EventRecord> for EventLogEntry {
    fn from(e: EventRecord) -> EventLogEntry {
        EventLogEntry {
            id: e.event_id,
            event_type: e.event,
            created_at: rfc3339(e.at),
            url: e.url,
            next_attempt_at: (e.state == "pending").then(|| rfc3339(e.next_at)),
            state: e.state,
            attempts: e.attempts,
            last_error: e.last_error,
            deliveries: e
                .deliveries
                .into_iter()
                .map(|d| DeliveryEntry { at: rfc3339(d.at), result: d.result, error: d.error })
                .collect(),
        }
    }
}

/// `GET /v1/calls/{id}/events`.
#[utoipa::path(get, path = "/v1/calls/{id}/events", tag = "events", params(("id" = String, Path)),
    responses(
        (status = 200, description = "the call's events, oldest first, with their delivery attempts", body = EventLog),
        (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope),
    ))]
pub async fn call_events(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.store.call_view(&id).await {
        Ok(Some(_)) => {}
        Ok(None) => return ApiError::not_found("call").into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    }
    match state.store.event_log(&id).await {
        Ok(events) => {
            Json(EventLog { call_id: id, events: events.into_iter().map(Into::into).collect() }).into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `POST /v1/events/{id}/redeliver`: the event is sent again (a fresh series of attempts), in
/// its call's order: the call's later events that are still pending wait for it.
#[utoipa::path(post, path = "/v1/events/{id}/redeliver", tag = "events", params(("id" = String, Path)),
    responses(
        (status = 202, description = "queued for delivery", body = EventLogEntry),
        (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope),
    ))]
pub async fn redeliver(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let call_id = match state.store.redeliver(&id, crate::store::now_ms()).await {
        Ok(Some(call_id)) => call_id,
        Ok(None) => return ApiError::not_found("event").into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    match state.store.event_log(&call_id).await {
        Ok(events) => match events.into_iter().find(|e| e.event_id == id) {
            Some(e) => (StatusCode::ACCEPTED, Json(EventLogEntry::from(e))).into_response(),
            None => ApiError::not_found("event").into_response(),
        },
        Err(e) => ApiError::from(e).into_response(),
    }
}
