//! `POST /v1/calls/batch`: up to 1,000 calls in one request (a campaign's list), each created
//! as `POST /v1/calls` would create it, with one answer saying which were created and why the
//! others were not (207: each item has its own status). Fields given next to `calls` apply to
//! every call that does not give its own (`agent_id`, `campaign`, `from`…).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::AppState;
use super::create::{self, Agents};
use super::error::ApiError;
use super::openapi::ErrorEnvelope;

/// The most calls one batch may carry.
pub const MAX_BATCH: usize = 1_000;

/// Calls created at once: the store's group commit (SQLite) or pool (PostgreSQL) takes them
/// together, while one batch cannot take every connection from the rest of the API.
const IN_FLIGHT: usize = 16;

/// One call of a batch, as it went.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchItem {
    /// Its place in `calls`, from 0.
    pub index: usize,
    /// 201 created, 200 an existing call (a live `dedupe_key`), 422 invalid, 503 not stored.
    pub status: u16,
    /// The call's id (201, 200).
    pub id: Option<String>,
    /// Why it was not created (422, 503).
    pub error: Option<super::openapi::ErrorBody>,
}

/// What a batch did, item by item in the order given.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchAnswer {
    pub created: usize,
    pub existing: usize,
    pub failed: usize,
    pub results: Vec<BatchItem>,
}

/// `POST /v1/calls/batch`.
#[utoipa::path(post, path = "/v1/calls/batch", tag = "calls",
    request_body(content = Object, description = "`{\"calls\": [call bodies as for POST /v1/calls], …fields for every call}`; at most 1000 calls. For a batch sent again, give each call a `dedupe_key`."),
    responses(
        (status = 207, description = "each call's own status, in order", body = BatchAnswer),
        (status = 400, description = "not JSON", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 413, description = "body over 2 MiB", body = ErrorEnvelope),
        (status = 422, description = "no `calls`, more than 1000, or a shared field unknown", body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope),
    ))]
pub async fn create_batch(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<BatchAnswer>), ApiError> {
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("body is not JSON: {e}")))?;
    let Some(obj) = body.as_object() else { return Err(ApiError::invalid("body", "must be a JSON object")) };
    let calls = match obj.get("calls") {
        Some(Value::Array(calls)) if !calls.is_empty() && calls.len() <= MAX_BATCH => calls,
        _ => return Err(ApiError::invalid("calls", &format!("must be an array of 1 to {MAX_BATCH} call bodies"))),
    };
    let mut shared = obj.clone();
    shared.remove("calls");
    if let Some(k) = shared.keys().find(|k| !super::call_request::FIELDS.contains(&k.as_str())) {
        return Err(ApiError::invalid(k, "unknown field"));
    }
    // Agents read once for the whole batch.
    let mut agents = Agents::new();
    for call in calls {
        if let Some(Value::String(id)) = call.get("agent_id").or_else(|| shared.get("agent_id"))
            && !agents.contains_key(id)
        {
            agents.insert(id.clone(), state.store.agent(id).await?);
        }
    }
    let shared = std::sync::Arc::new(shared);
    let items: Vec<(usize, Value)> = calls.iter().cloned().enumerate().collect();
    let results: Vec<BatchItem> = futures_util::stream::iter(items)
        .map(|(index, call)| {
            let (state, shared, mut agents) = (state.clone(), std::sync::Arc::clone(&shared), agents.clone());
            async move {
                let body = with_shared(&call, &shared);
                match create::create(&state, &body, Some(&mut agents), None).await {
                    Ok((status, id)) => BatchItem { index, status: status.as_u16(), id: Some(id), error: None },
                    Err(e) => BatchItem { index, status: e.status.as_u16(), id: None, error: Some(e.body()) },
                }
            }
        })
        .buffered(IN_FLIGHT)
        .collect()
        .await;
    let count = |s: u16| results.iter().filter(|r| r.status == s).count();
    let (created, existing) = (count(201), count(200));
    let answer = BatchAnswer { created, existing, failed: results.len() - created - existing, results };
    Ok((StatusCode::MULTI_STATUS, Json(answer)))
}

/// `call` with the batch's shared fields under its own (a call that is not an object stays as it
/// is, and is refused as one).
fn with_shared(call: &Value, shared: &Map<String, Value>) -> Value {
    let Some(own) = call.as_object() else { return call.clone() };
    let mut body = shared.clone();
    body.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
    Value::Object(body)
}
