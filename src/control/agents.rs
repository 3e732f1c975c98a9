//! `/v1/agents` and `/v1/numbers`: what a business configures once (an agent: instructions and
//! greeting as templates, tools, transfer targets, outcome, caps) and the phone numbers whose
//! inbound calls each agent serves. Bodies are checked in `agent_request`; storage is
//! `store::agents`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::AppState;
use super::agent_request::{self, AgentBody};
use super::call_request::Defaults;
use super::error::ApiError;
use super::openapi::{AgentBody as AgentBodyDoc, ErrorEnvelope, NumberBody};
use crate::store::agents::{Agent, Changed, Number, Removed};
use crate::store::resource::rfc3339;

/// An agent (its current version): its identity, and its call fields as given (a field it does
/// not set is left out: the call's own, or the server's default, applies).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, ToSchema)]
pub struct AgentResource {
    /// `ag_` and 16 hex digits.
    pub id: String,
    pub name: String,
    /// 1 at creation, + 1 with every change; a call keeps the version it was created with.
    pub version: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub greeting: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_api: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub tools: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub transfer_to: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub outcome_schema: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub analysis: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_duration_s: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub call_window: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_detection: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voicemail_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtmf_out: Option<bool>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Agent> for AgentResource {
    fn from(a: &Agent) -> AgentResource {
        let mut all = fields(a);
        all.insert("id".into(), a.id.clone().into());
        all.insert("name".into(), a.name.clone().into());
        all.insert("version".into(), a.version.into());
        all.insert("created_at".into(), rfc3339(a.created_at).into());
        all.insert("updated_at".into(), rfc3339(a.updated_at).into());
        // Stored by this server after the checks `agent_request` makes: every field fits.
        serde_json::from_value(Value::Object(all)).unwrap_or_else(|e| {
            tracing::error!(agent = a.id, error = %e, "an agent's stored fields do not read back");
            AgentResource { id: a.id.clone(), name: a.name.clone(), version: a.version, ..AgentResource::default() }
        })
    }
}

/// An agent's stored call fields (an object; written by this server only).
pub fn fields(a: &Agent) -> Map<String, Value> {
    match serde_json::from_str(&a.config) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// The agents, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentList {
    pub agents: Vec<AgentResource>,
}

/// A number bound to an agent.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NumberResource {
    /// E.164.
    pub number: String,
    pub agent_id: String,
    /// `twilio`, `telnyx`, or `null` (either).
    pub provider: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Number> for NumberResource {
    fn from(n: &Number) -> NumberResource {
        NumberResource {
            number: n.e164.clone(),
            agent_id: n.agent_id.clone(),
            provider: n.provider.clone(),
            created_at: rfc3339(n.created_at),
            updated_at: rfc3339(n.updated_at),
        }
    }
}

/// The bound numbers, in order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NumberList {
    pub numbers: Vec<NumberResource>,
}

fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request("invalid_json", format!("body is not JSON: {e}")))
}

fn body_of(a: &Agent) -> AgentBody {
    AgentBody { name: a.name.clone(), config: fields(a) }
}

/// `POST /v1/agents`.
#[utoipa::path(post, path = "/v1/agents", tag = "agents", request_body = AgentBodyDoc,
    responses(
        (status = 201, description = "created, version 1", body = AgentResource, headers(("Location" = String, description = "/v1/agents/{id}"))),
        (status = 400, description = "not JSON", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 422, description = "a field is invalid (the message names it)", body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope),
    ))]
pub async fn create_agent(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let now = Timestamp::now();
    let body = agent_request::parse(&json_body(&body)?, &Defaults::from_config(&state.config, now))?;
    let at = now.as_millisecond();
    let agent = Agent {
        id: format!("ag_{:016x}", rand::random::<u64>()),
        name: body.name,
        version: 1,
        config: Value::Object(body.config).to_string(),
        created_at: at,
        updated_at: at,
    };
    state.store.create_agent(&agent).await?;
    let location = [(axum::http::header::LOCATION, format!("/v1/agents/{}", agent.id))];
    Ok((StatusCode::CREATED, location, Json(AgentResource::from(&agent))).into_response())
}

/// `GET /v1/agents`.
#[utoipa::path(get, path = "/v1/agents", tag = "agents",
    responses((status = 200, description = "every agent, oldest first", body = AgentList),
        (status = 401, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn list_agents(State(state): State<AppState>) -> Result<Json<AgentList>, ApiError> {
    let agents = state.store.agents().await?;
    Ok(Json(AgentList { agents: agents.iter().map(AgentResource::from).collect() }))
}

/// `GET /v1/agents/{id}`.
#[utoipa::path(get, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, description = "the agent", body = AgentResource),
        (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn get_agent(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<AgentResource>, ApiError> {
    let agent = state.store.agent(&id).await?.ok_or_else(|| ApiError::not_found("agent"))?;
    Ok(Json(AgentResource::from(&agent)))
}

/// How often a `PATCH` reads again when another change landed between its read and its write.
const PATCH_TRIES: usize = 5;

/// `PATCH /v1/agents/{id}`.
#[utoipa::path(patch, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path)), request_body = AgentBodyDoc,
    responses((status = 200, description = "changed: version + 1 (calls already made keep theirs)", body = AgentResource),
        (status = 400, description = "not JSON", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, description = "changed by others too often meanwhile: try again", body = ErrorEnvelope),
        (status = 422, description = "a field is invalid (the message names it)", body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn patch_agent(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<AgentResource>, ApiError> {
    let body = json_body(&body)?;
    for _ in 0..PATCH_TRIES {
        let now = Timestamp::now();
        let current = state.store.agent(&id).await?.ok_or_else(|| ApiError::not_found("agent"))?;
        let next = agent_request::patch(&body_of(&current), &body, &Defaults::from_config(&state.config, now))?;
        let config = Value::Object(next.config).to_string();
        match state.store.change_agent(&id, current.version, &next.name, &config, now.as_millisecond()).await? {
            Changed::Done(agent) => return Ok(Json(AgentResource::from(&agent))),
            Changed::Missing => return Err(ApiError::not_found("agent")),
            Changed::Stale => continue,
        }
    }
    Err(ApiError::conflict("changed_meanwhile", "the agent kept changing while this change was made; try again"))
}

/// `DELETE /v1/agents/{id}`.
#[utoipa::path(delete, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path)),
    responses((status = 204, description = "removed"),
        (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, description = "a number or a call not yet ended uses it (the message says which)", body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn delete_agent(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    match state.store.remove_agent(&id).await? {
        Removed::Done => Ok(StatusCode::NO_CONTENT),
        Removed::Missing => Err(ApiError::not_found("agent")),
        Removed::InUse(why) => Err(ApiError::conflict("agent_in_use", format!("the agent is in use: {why}"))),
    }
}

/// `PUT /v1/numbers/{e164}`.
#[utoipa::path(put, path = "/v1/numbers/{e164}", tag = "numbers", params(("e164" = String, Path, description = "the number, E.164 (`+` may be sent as `%2B`)")),
    request_body = NumberBody,
    responses((status = 200, description = "bound: inbound calls to it are served by the agent", body = NumberResource),
        (status = 400, description = "not JSON", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 422, description = "not E.164, an unknown agent or provider (the message names the field)", body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn put_number(
    State(state): State<AppState>,
    Path(e164): Path<String>,
    body: Bytes,
) -> Result<Json<NumberResource>, ApiError> {
    let number = e164_path(&e164)?;
    let body = json_body(&body)?;
    let Some(obj) = body.as_object() else { return Err(ApiError::invalid("body", "must be a JSON object")) };
    if let Some(unknown) = obj.keys().find(|k| !["agent_id", "provider"].contains(&k.as_str())) {
        return Err(ApiError::invalid(unknown, "unknown field"));
    }
    let agent_id =
        obj.get("agent_id").and_then(Value::as_str).ok_or_else(|| ApiError::invalid("agent_id", "is required"))?;
    let provider = match obj.get("provider") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if crate::providers::carrier::Provider::parse(p).is_some() => Some(p.clone()),
        Some(_) => return Err(ApiError::invalid("provider", "must be \"twilio\" or \"telnyx\"")),
    };
    let now = Timestamp::now().as_millisecond();
    let n = Number { e164: number.clone(), agent_id: agent_id.to_string(), provider, created_at: now, updated_at: now };
    if !state.store.put_number(&n).await? {
        return Err(ApiError::invalid("agent_id", &format!("no agent {agent_id}")));
    }
    let stored = state.store.number(&number).await?.unwrap_or(n);
    Ok(Json(NumberResource::from(&stored)))
}

/// `GET /v1/numbers`.
#[utoipa::path(get, path = "/v1/numbers", tag = "numbers",
    responses((status = 200, description = "every bound number", body = NumberList),
        (status = 401, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn list_numbers(State(state): State<AppState>) -> Result<Json<NumberList>, ApiError> {
    let numbers = state.store.numbers().await?;
    Ok(Json(NumberList { numbers: numbers.iter().map(NumberResource::from).collect() }))
}

/// `DELETE /v1/numbers/{e164}`.
#[utoipa::path(delete, path = "/v1/numbers/{e164}", tag = "numbers", params(("e164" = String, Path)),
    responses((status = 204, description = "unbound: its inbound calls get the server's defaults again"),
        (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn delete_number(State(state): State<AppState>, Path(e164): Path<String>) -> Result<StatusCode, ApiError> {
    let number = e164_path(&e164)?;
    if state.store.remove_number(&number).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("number"))
    }
}

/// The number a path names: E.164 (a `+` sent as a space by a form-encoding client is taken back).
fn e164_path(raw: &str) -> Result<String, ApiError> {
    let number = match raw.strip_prefix(' ') {
        Some(rest) => format!("+{rest}"),
        None => raw.to_string(),
    };
    if super::call_request::is_e164(&number) {
        Ok(number)
    } else {
        Err(ApiError::invalid("e164", "must be an E.164 number like +15551234567"))
    }
}
