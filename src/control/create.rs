//! Creating one outbound call from a `POST /v1/calls` body (also each of a batch's): its agent's
//! fields merged in and its templates filled, the body checked (`call_request`), the call and its
//! dial job written at once.

use axum::http::StatusCode;
use jiff::Timestamp;
use serde_json::Value;
use sha2::Digest;

use super::AppState;
use super::call_request;
use super::error::ApiError;
use crate::providers::carrier::Provider;
use crate::store::OutboundCalls;
use crate::store::agents::{Agent, AgentUse};
use crate::store::outbound::{Created, OutboundCall};

/// Agents already read (a batch reads each once).
pub type Agents = std::collections::HashMap<String, Option<Agent>>;

/// Creates the call `body` asks for: `201` and its id, or `200` and an existing call's (the same
/// `Idempotency-Key`, a live dedupe key). `agents` caches the agents read.
pub async fn create(
    state: &AppState,
    body: &Value,
    agents: Option<&mut Agents>,
    idempotency_key: Option<&str>,
) -> Result<(StatusCode, String), ApiError> {
    let now = Timestamp::now();
    let agent = agent_of(state, body, agents).await?;
    let fields = agent.as_ref().map(super::agents::fields);
    let resolved = call_request::with_agent(body, fields.as_ref())?;
    let req = call_request::parse(&resolved, &call_request::Defaults::from_config(&state.config, now))?;
    let call = OutboundCall {
        id: format!("c_{:016x}", rand::random::<u64>()),
        provider: req.provider.clone(),
        to_number: req.to.clone(),
        from_number: Some(req.from.clone()),
        instructions: req.instructions.clone(),
        greeting: req.greeting.clone(),
        voice: req.voice.clone(),
        metadata: Value::Object(req.metadata.clone()).to_string(),
        dedupe_key: req.dedupe_key.clone(),
        dedupe_window_ms: req.dedupe_window_s.map(|s| s * 1000),
        expires_at: req.expires_at.map(|t| t.as_millisecond()),
        campaign: req.campaign.clone(),
        max_duration_s: req.max_duration_s,
        max_cost_usd: req.max_cost_usd,
        model: req.model.clone(),
        reasoning_effort: req.reasoning_effort.clone(),
        model_api: req.model_api.clone(),
        outcome_schema: req.outcome_schema.as_ref().map(Value::to_string),
        tools: (!req.tools.is_empty()).then(|| serde_json::to_string(&req.tools).unwrap_or_default()),
        transfer_to: (!req.transfer_to.is_empty()).then(|| serde_json::to_string(&req.transfer_to).unwrap_or_default()),
        call_window: req.call_window.as_ref().map(|(_, w)| w.to_string()),
        webhook_url: req.webhook_url.clone().or_else(|| state.config.webhook_url.clone()),
        priority: req.priority,
        max_attempts: req.max_attempts,
        run_at: req.first_run(now).as_millisecond(),
        machine_detection: req.machine_detection,
        voicemail_message: req.voicemail_message.clone(),
        // serde_json's maps keep keys sorted: the same request always gives the same text.
        request_digest: sha2::Sha256::digest(body.to_string().as_bytes()).iter().map(|b| format!("{b:02x}")).collect(),
        analysis: req.analysis.as_ref().map(Value::to_string),
        dtmf_out: req.dtmf_out,
        record: req.record,
        agent: agent.map(|a| AgentUse {
            agent_id: a.id,
            agent_version: a.version,
            variables: Value::Object(req.variables.clone()).to_string(),
        }),
    };
    match state.store.create_outbound(&call, idempotency_key, now.as_millisecond()).await? {
        Created::New(id) => {
            let provider = Provider::parse(&req.provider).unwrap_or(Provider::Twilio);
            if let Some(why) = state.bridge.carriers.not_dialled_because(provider)
                && let Err(e) = state.store.note_waiting(&id, why).await
            {
                tracing::warn!(error = %e, call_id = id, "cannot note why the call waits");
            }
            Ok((StatusCode::CREATED, id))
        }
        Created::Existing(id) => Ok((StatusCode::OK, id)),
        Created::KeyReused(id) => Err(ApiError::invalid(
            "Idempotency-Key",
            &format!("was used for call {id} with a different request; use a new key for a new call"),
        )),
    }
}

/// The agent `body` names (at the version read now, which the call keeps).
async fn agent_of(state: &AppState, body: &Value, cache: Option<&mut Agents>) -> Result<Option<Agent>, ApiError> {
    let id = match body.get("agent_id") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(id)) => id,
        Some(_) => return Err(ApiError::invalid("agent_id", "must be an agent's id (ag_…)")),
    };
    let found = match cache {
        Some(cache) => match cache.get(id) {
            Some(known) => known.clone(),
            None => {
                let read = state.store.agent(id).await?;
                cache.insert(id.clone(), read.clone());
                read
            }
        },
        None => state.store.agent(id).await?,
    };
    found.map(Some).ok_or_else(|| ApiError::invalid("agent_id", &format!("no agent {id}")))
}
