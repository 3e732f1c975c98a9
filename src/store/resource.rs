//! The call resource: what the API answers and events carry, one typed shape for both. Its
//! OpenAPI schema is derived from this type (`GET /v1/openapi.json`), so the document and the
//! answers cannot drift apart.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::Millis;
use super::outbound::CallView;
use crate::model::Usage;
use crate::pricing::{Cost, Prices};

/// A JSON array stored as text (`[]` when there is none).
fn array(text: Option<&str>) -> Value {
    match text.and_then(|s| serde_json::from_str(s).ok()) {
        Some(list @ Value::Array(_)) => list,
        _ => Value::Array(Vec::new()),
    }
}

/// A call (contract: "Call resource", with the second round's fields).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CallResource {
    /// `c_` and 16 hex digits.
    pub id: String,
    /// `queued`, `dialing`, `ringing`, `in_progress`, `completed`, `no_answer`, `busy`, `failed`,
    /// `canceled`, `voicemail`, `expired` or `transferred`.
    pub status: String,
    /// `outbound` or `inbound`.
    pub direction: String,
    /// `twilio` or `telnyx`.
    pub provider: String,
    pub to: String,
    pub from: Option<String>,
    pub instructions: Option<String>,
    pub greeting: Option<String>,
    pub voice: Option<String>,
    /// The caller's own JSON object, as given.
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub dedupe_key: Option<String>,
    /// `{"timezone", "start", "end", "days"}` as given, or `null`.
    #[schema(value_type = Option<Object>)]
    pub call_window: Value,
    pub webhook_url: Option<String>,
    pub priority: Option<i64>,
    /// Attempts made so far.
    pub attempts: i64,
    pub max_attempts: Option<i64>,
    /// RFC 3339, while queued.
    pub next_attempt_at: Option<String>,
    pub provider_call_id: Option<String>,
    pub last_error: Option<String>,
    pub machine_detection: bool,
    pub answered_by: Option<String>,
    pub voicemail_message: Option<String>,
    pub expires_at: Option<String>,
    /// How often a call window or a paused campaign moved the next attempt.
    pub reschedules: i64,
    pub campaign: Option<String>,
    pub max_duration_s: Option<i64>,
    pub max_cost_usd: Option<f64>,
    /// The model that serves the call (its request's `model`, else the server's once it ran).
    pub model: Option<String>,
    /// The reasoning effort asked for (`null`: the model's default).
    pub reasoning_effort: Option<String>,
    /// The API it asked for (`realtime` or `live`; `null`: the server's).
    pub model_api: Option<String>,
    /// The JSON Schema the AI's reported outcome must match, as given (`null`: none).
    #[schema(value_type = Option<Object>)]
    pub outcome_schema: Value,
    /// The structured result the AI reported through `report_outcome` (valid against
    /// `outcome_schema`; the last report), or `null`.
    #[schema(value_type = Option<Object>)]
    pub outcome: Value,
    /// The call's own tools, as given (`[{"name", "description", "parameters", "url"}]`; `[]`:
    /// none).
    #[schema(value_type = Vec<Object>)]
    pub tools: Value,
    /// Where the AI may hand the caller over, as given (`[{"to", "description"}]`; `[]`: none).
    #[schema(value_type = Vec<Object>)]
    pub transfer_to: Value,
    /// The target a transfer went to, or `null`.
    pub transferred_to: Option<String>,
    /// The agent the call was made from (`null`: none), and its version when the call was
    /// created: editing the agent later changes nothing of this call.
    pub agent_id: Option<String>,
    pub agent_version: Option<i64>,
    /// The values its agent's templates were filled with (`{"key": "text"}`), or `null`.
    #[schema(value_type = Option<Object>)]
    pub variables: Value,
    /// Post-call analysis (`null` until done, or when none was asked for): `{"summary", "data",
    /// "success", "model", "usage", "cost_usd"}`, or `{"error": …}` when it could not be done.
    #[schema(value_type = Option<Object>)]
    pub analysis: Value,
    /// The AI may press keys on the phone (`press_digits`).
    pub dtmf_out: bool,
    /// The call is recorded (both sides, as the caller heard them).
    pub record: bool,
    /// The API path of its recording (`/v1/calls/{id}/recording`, a 2-channel WAV) once the
    /// call has ended and the file is complete, `null` before, without one, or once retention
    /// deleted it. `call.recording_ready` says when it is kept where `VOXBRIDGE_RECORDINGS` says.
    pub recording_url: Option<String>,
    /// What went wrong keeping the recording (a failing upload is retried), or `null`.
    pub recording_error: Option<String>,
    /// Why the call ended (`null` while it lives): `caller_hung_up`, `end_call`, `transferred`,
    /// `transfer_failed`, `voicemail_left`,
    /// `machine_hung_up`, `canceled`, `max_duration`, `max_cost`, `model_unreachable`,
    /// `model_lost`, `model_error`, `carrier_idle`, `stream_never_started`, `no_answer`, `busy`,
    /// `dial_failed`, `expired`, `shutdown`.
    pub end_reason: Option<String>,
    pub answered_at: Option<String>,
    pub ended_at: Option<String>,
    /// Seconds from answer to end (`null` if never answered or still live).
    pub duration_s: Option<f64>,
    pub usage: CallUsage,
    /// `null` when no price is known.
    pub cost: Option<Cost>,
    pub created_at: String,
    pub updated_at: String,
    /// Status changes, oldest first (one call's answers only, not lists or events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryEntry>>,
    /// Place in the queue (queued calls, one call's answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<i64>,
}

/// What a call used, summed over its attempts.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CallUsage {
    pub model: Usage,
    /// Seconds connected: the carrier's own count (Twilio `CallDuration`) when it gave one, else
    /// answer to end rounded up (`null` if never answered).
    pub carrier_seconds: Option<f64>,
}

/// One status a call entered.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct HistoryEntry {
    pub status: String,
    /// RFC 3339.
    pub at: String,
    pub detail: Option<String>,
}

/// RFC 3339 of a Unix millisecond time.
pub fn rfc3339(ms: Millis) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| String::new(), |t| t.to_string())
}

impl CallView {
    /// The call resource, its `cost` priced from `prices`: what the API and the events show.
    pub fn to_resource(&self, prices: &Prices) -> CallResource {
        let json = |s: Option<&str>| s.and_then(|s| serde_json::from_str(s).ok()).unwrap_or(Value::Null);
        let duration_s = self.duration_s();
        // The carrier's own count when it gave one; else answer to end, rounded up.
        let carrier_seconds = self.carrier_seconds.map(|s| s as f64).or(duration_s.map(f64::ceil));
        CallResource {
            id: self.id.clone(),
            status: self.status.as_str().into(),
            direction: self.direction.clone(),
            provider: self.provider.clone(),
            to: self.to_number.clone(),
            from: self.from_number.clone(),
            instructions: self.instructions.clone(),
            greeting: self.greeting.clone(),
            voice: self.voice.clone(),
            metadata: json(Some(&self.metadata)),
            dedupe_key: self.dedupe_key.clone(),
            call_window: json(self.call_window.as_deref()),
            webhook_url: self.webhook_url.clone(),
            priority: self.priority,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            next_attempt_at: self.next_attempt_at.map(rfc3339),
            provider_call_id: self.provider_call_id.clone(),
            last_error: self.last_error.clone(),
            machine_detection: self.machine_detection,
            answered_by: self.answered_by.clone(),
            voicemail_message: self.voicemail_message.clone(),
            expires_at: self.expires_at.map(rfc3339),
            reschedules: self.reschedules,
            campaign: self.campaign.clone(),
            max_duration_s: self.max_duration_s,
            max_cost_usd: self.max_cost_usd,
            model: self.model.clone(),
            reasoning_effort: self.reasoning_effort.clone(),
            model_api: self.model_api.clone(),
            outcome_schema: json(self.outcome_schema.as_deref()),
            outcome: json(self.outcome.as_deref()),
            tools: array(self.tools.as_deref()),
            transfer_to: array(self.transfer_to.as_deref()),
            transferred_to: self.transferred_to.clone(),
            agent_id: self.agent_id.clone(),
            agent_version: self.agent_version,
            variables: json(self.variables.as_deref()),
            analysis: json(self.analysis.as_deref()),
            dtmf_out: self.dtmf_out,
            record: self.record,
            recording_url: matches!(
                self.recording_state.as_deref(),
                Some(crate::store::recordings::PENDING | crate::store::recordings::STORED)
            )
            .then(|| format!("/v1/calls/{}/recording", self.id)),
            recording_error: self.recording_error.clone(),
            end_reason: self.end_reason.clone(),
            answered_at: self.answered_at.map(rfc3339),
            ended_at: self.ended_at.map(rfc3339),
            duration_s,
            usage: CallUsage { model: self.usage, carrier_seconds },
            cost: Prices::with_analysis(
                prices.cost(self.model.as_deref(), &self.usage, &self.provider, carrier_seconds),
                json(self.analysis.as_deref())["cost_usd"].as_f64(),
            ),
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
            history: None,
            queue_position: None,
        }
    }

    /// The call resource as JSON (events).
    pub fn to_priced_resource(&self, prices: &Prices) -> Value {
        serde_json::to_value(self.to_resource(prices)).unwrap_or(Value::Null)
    }

    /// Seconds from answer to end (`None` if never answered or still live).
    pub fn duration_s(&self) -> Option<f64> {
        Some((self.ended_at? - self.answered_at?).max(0) as f64 / 1000.0)
    }
}
