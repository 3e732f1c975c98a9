//! `GET /v1/openapi.json`: the API described from the code. Each `/v1` handler carries its
//! `#[utoipa::path]` (method, path, parameters, answers) and is mounted through
//! `utoipa_axum::routes!`, so a route cannot be served without being documented; answers are
//! the typed structs below and [`CallResource`], whose schemas are derived from the same types
//! the handlers serialize. The request bodies are validated by hand (`call_request`, for its
//! field-named 422s); their schema types here are checked against its field lists by a test.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::model::Usage;
use crate::pricing::Cost;
use crate::store::resource::{CallResource, CallUsage, HistoryEntry};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "voxbridge",
        description = "Queue, follow and manage AI phone calls. Every error is `{\"error\": {\"code\", \"message\"}}`."
    ),
    components(schemas(
        CallResource,
        CallUsage,
        HistoryEntry,
        Usage,
        Cost,
        ErrorEnvelope,
        ErrorBody,
        CallWindowBody,
        CallEvent,
        CallEventData,
        TranscriptEntry,
        crate::control::event_log::EventLog,
        crate::control::event_log::EventLogEntry,
        crate::control::event_log::DeliveryEntry
    )),
    modifiers(&BearerKeys),
    security(("api_key" = []))
)]
pub struct ApiDoc;

/// `Authorization: Bearer <key>` from `VOXBRIDGE_API_KEYS` (without keys: loopback only).
struct BearerKeys;

impl Modify for BearerKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build();
        components.add_security_scheme("api_key", SecurityScheme::Http(bearer));
    }
}

/// The contract's error shape.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// snake_case, stable: `invalid_field`, `not_found`, `rate_limited`, `store_unavailable`, …
    pub code: String,
    pub message: String,
}

/// An event POSTed to a call's `webhook_url` (or `VOXBRIDGE_WEBHOOK_URL`), signed with
/// `VOXBRIDGE_WEBHOOK_SECRET`; a call's events are sent in order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallEvent {
    /// Unique per event (`evt_…`): a redelivery carries the same id.
    pub id: String,
    /// `call.` and the status the call reached: `call.queued`, `call.dialing`, `call.ringing`,
    /// `call.in_progress`, `call.completed`, `call.no_answer`, `call.busy`, `call.failed`,
    /// `call.canceled`, `call.voicemail`, `call.expired`, `call.transferred`; or what became of
    /// it after its end, its status unchanged: `call.analyzed` (the post-call analysis is in
    /// `analysis`), `call.recording_ready` (the recording is stored at `recording_url`).
    #[serde(rename = "type")]
    pub event_type: String,
    /// RFC 3339.
    pub created_at: String,
    pub data: CallEventData,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallEventData {
    /// The call as `GET /v1/calls/{id}` shows it, with `status` as of this event.
    pub call: CallResource,
    /// With `call.completed` only: both sides, in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcript: Option<Vec<TranscriptEntry>>,
}

/// Completes the generated document where the route annotations leave it short of OpenAPI 3.1:
/// every response gets a `description` (required; the error answers share the contract's
/// shape, so their meaning follows from the status), and the events sent to the user's
/// endpoint are described under `webhooks`.
pub fn complete(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for op in operations.into_iter().flatten() {
            for (status, response) in op.responses.responses.iter_mut() {
                if let RefOr::T(r) = response
                    && r.description.is_empty()
                {
                    r.description = status_meaning(status).to_string();
                }
            }
        }
    }
    doc.webhooks = Some(event_webhooks());
}

/// What an answer with `status` means on this API (its body, for errors, the error envelope).
fn status_meaning(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "created",
        "202" => "accepted: under way",
        "204" => "done; no body",
        "400" => "the body is not valid JSON",
        "401" => "no or a wrong API key",
        "403" => "refused (see the error's message)",
        "404" => "not found",
        "409" => "conflicts with the call's state",
        "415" => "the body must be application/json",
        "422" => "a field is invalid (the message names it)",
        "429" => "over the rate limit; retry after Retry-After",
        "503" => "unavailable for now (store, carrier, or draining); retry",
        _ => "see the error's code and message",
    }
}

/// `webhooks`: the event every call sends to its endpoint.
fn event_webhooks() -> utoipa::openapi::path::Paths {
    use utoipa::openapi::path::{OperationBuilder, PathItem, PathsBuilder};
    use utoipa::openapi::request_body::RequestBodyBuilder;
    use utoipa::openapi::{Content, HttpMethod, Ref, Response};
    let body = RequestBodyBuilder::new()
        .description(Some("the event; `Voxbridge-Signature` signs it when a secret is set"))
        .content("application/json", Content::new(Some(Ref::from_schema_name("CallEvent"))))
        .required(Some(utoipa::openapi::Required::True))
        .build();
    let operation = OperationBuilder::new()
        .summary(Some("A call changed status"))
        .description(Some(
            "POSTed to the call's `webhook_url` (else `VOXBRIDGE_WEBHOOK_URL`) each time the call's status \
             changes. Any 2xx acknowledges it; anything else (or no answer within 5 s) is retried with back-off.",
        ))
        .request_body(Some(body))
        .response("200", Response::new("acknowledged (any 2xx)"));
    PathsBuilder::new().path("callEvent", PathItem::new(HttpMethod::Post, operation)).build()
}

/// A page of calls, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallPage {
    pub calls: Vec<CallResource>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// Both sides of a call, in order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Transcript {
    pub call_id: String,
    pub entries: Vec<TranscriptEntry>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TranscriptEntry {
    /// `caller` or `assistant`.
    pub speaker: String,
    pub text: String,
    /// Milliseconds since the stream started.
    pub at_ms: i64,
    /// For the assistant: how much of it the caller heard before a barge-in (ms), else `null`.
    pub heard_ms: Option<i64>,
}

/// Counts for a dashboard.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiMetrics {
    /// Calls by status.
    #[schema(value_type = Object)]
    pub calls_by_status: Value,
    pub queue_depth: i64,
    pub live_calls: usize,
}

/// `pause` / `resume`: what the campaign is now and how many of its calls are queued.
/// `cancel`: how many queued calls were canceled, and which.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignAnswer {
    pub campaign: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canceled: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls: Option<Vec<String>>,
}

/// When a call may ring, in the callee's time zone.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallWindowBody {
    /// IANA name, e.g. `America/Los_Angeles`.
    pub timezone: String,
    /// `HH:MM`.
    pub start: String,
    /// `HH:MM` (before `start`: the window spans midnight).
    pub end: String,
    /// `mon` … `sun`; left out: every day.
    pub days: Option<Vec<String>>,
}

/// `POST /v1/calls`. Only `to` is required; an unknown field is a 422 naming it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCallBody {
    /// E.164.
    pub to: String,
    /// E.164; default `TWILIO_FROM_NUMBER` / `TELNYX_FROM_NUMBER`.
    pub from: Option<String>,
    /// `twilio` (default) or `telnyx`.
    pub provider: Option<String>,
    pub instructions: Option<String>,
    pub greeting: Option<String>,
    pub voice: Option<String>,
    /// Any JSON object; echoed in the resource and events.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// RFC 3339; more than 60 s in the past is a 422.
    pub scheduled_at: Option<String>,
    /// −100 … 100 (higher first).
    pub priority: Option<i64>,
    /// 1 … 10 (default 3).
    pub max_attempts: Option<i64>,
    /// A live call with the same key is returned instead of a new one.
    pub dedupe_key: Option<String>,
    /// With `dedupe_key`: also an ended call created less than this many seconds before.
    pub dedupe_window_s: Option<i64>,
    /// RFC 3339: not dialled by then, the call ends `expired`.
    pub expires_at: Option<String>,
    pub campaign: Option<String>,
    /// 1 … 14400; default `VOXBRIDGE_MAX_CALL_DURATION_S`.
    pub max_duration_s: Option<i64>,
    /// Above 0, at most 1000.
    pub max_cost_usd: Option<f64>,
    /// The model for this call; default the API's (`VOXBRIDGE_REALTIME_MODEL` or
    /// `VOXBRIDGE_LIVE_MODEL`).
    pub model: Option<String>,
    /// `realtime` (OpenAI Realtime) or `live` (OpenAI GPT-Live); default `VOXBRIDGE_MODEL_API`.
    pub model_api: Option<String>,
    /// `minimal`, `low`, `medium`, `high` or `xhigh`: for Realtime, only a model that takes one
    /// (the `gpt-realtime-2` family; else 422), sent as the session's `reasoning.effort`; for
    /// GPT-Live, its Responses backend's.
    pub reasoning_effort: Option<String>,
    pub call_window: Option<CallWindowBody>,
    /// Where this call's events go (default `VOXBRIDGE_WEBHOOK_URL`).
    pub webhook_url: Option<String>,
    pub machine_detection: Option<bool>,
    /// Left on a machine (implies `machine_detection`).
    pub voicemail_message: Option<String>,
    /// A JSON Schema (`"type": "object"`, at most 16 KB): the AI gets a `report_outcome` tool
    /// whose arguments must validate against it, and the call's `outcome` is what it reported.
    #[schema(value_type = Option<Object>)]
    pub outcome_schema: Option<Value>,
    /// At most 16 functions of the caller's own, offered to the AI: `{"name", "description",
    /// "parameters": JSON Schema, "url"}`. A call is `POST`ed to `url` as `{"call_id", "tool",
    /// "arguments", "metadata"}`, signed as events are; the JSON answer (or `{"error": …}` after
    /// its `timeout_ms`, 100–30000, default 5000, or a non-2xx) is the function's output; after
    /// 700 ms of waiting the caller hears a soft filler.
    #[schema(value_type = Option<Vec<Object>>)]
    pub tools: Option<Vec<Value>>,
    /// At most 10 `{"to": E.164 or "sip:…", "description", "timeout_s"? (5–120, default 25),
    /// "on_no_answer"? ("return": the caller comes back to the AI, the default; "message": the
    /// `message` is said and the call ends `transfer_failed`), "message"?}`: where the AI may hand
    /// the caller over with its built-in `transfer_call` (`transferred` once the person answered).
    #[schema(value_type = Option<Vec<Object>>)]
    pub transfer_to: Option<Vec<Value>>,
    /// An agent (`ag_…`) whose fields the call takes (its own fields win); the call keeps the
    /// agent's current version whatever changes later.
    pub agent_id: Option<String>,
    /// `{"key": "text"}` filling the agent's (or the call's) `{{key}}` templates in
    /// `instructions` and `greeting`; a key a template uses without a value is a 422.
    #[schema(value_type = Option<Object>)]
    pub variables: Option<Value>,
    /// After the call, the transcript goes to the OpenAI Responses API: `{"summary": true,
    /// "schema": JSON Schema of the data to extract, "success_criteria": "text", "model"?}`
    /// (default model `VOXBRIDGE_ANALYSIS_MODEL`). The result is the call's `analysis` and the
    /// `call.analyzed` event.
    #[schema(value_type = Option<Object>)]
    pub analysis: Option<Value>,
    /// The AI gets `press_digits` (`{"digits": "1w23#"}`, `w` a half-second pause) to get through
    /// phone menus: Telnyx `send_dtmf`; on Twilio, DTMF tones in the media stream.
    pub dtmf_out: Option<bool>,
    /// Record both sides of the call as the caller heard them (a 2-channel WAV at
    /// `recording_url`); refused (422) while `VOXBRIDGE_RECORDINGS` is `off`.
    pub record: Option<bool>,
}

/// `POST /v1/agents`, `PATCH /v1/agents/{id}`: what a business configures once for many calls
/// (each field as on `POST /v1/calls`; `instructions` and `greeting` are `{{key}}` templates).
/// `name` is required at creation; in a `PATCH`, `null` removes a field.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentBody {
    pub name: Option<String>,
    pub instructions: Option<String>,
    pub greeting: Option<String>,
    pub voice: Option<String>,
    pub model: Option<String>,
    pub model_api: Option<String>,
    pub reasoning_effort: Option<String>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub tools: Option<Vec<Value>>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub transfer_to: Option<Vec<Value>>,
    #[schema(value_type = Option<Object>)]
    pub outcome_schema: Option<Value>,
    /// Post-call analysis, as on `POST /v1/calls`.
    #[schema(value_type = Option<Object>)]
    pub analysis: Option<Value>,
    /// Not available on this server yet: `true` is a 422.
    pub record: Option<bool>,
    pub max_duration_s: Option<i64>,
    pub max_cost_usd: Option<f64>,
    pub call_window: Option<CallWindowBody>,
    pub webhook_url: Option<String>,
    pub machine_detection: Option<bool>,
    pub voicemail_message: Option<String>,
    pub dtmf_out: Option<bool>,
}

/// `PUT /v1/numbers/{e164}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NumberBody {
    /// The agent that serves inbound calls to the number.
    pub agent_id: String,
    /// `twilio` or `telnyx`: only calls through that carrier (default: either).
    pub provider: Option<String>,
}

/// `PATCH /v1/calls/{id}` (queued calls only). Who is called, how, and the caps are fixed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchCallBody {
    pub instructions: Option<String>,
    pub greeting: Option<String>,
    pub voice: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub scheduled_at: Option<String>,
    pub priority: Option<i64>,
    pub max_attempts: Option<i64>,
    pub call_window: Option<CallWindowBody>,
    pub webhook_url: Option<String>,
}

/// The document, with every `/v1` route the router mounts (see `control::router`).
pub async fn document(
    axum::extract::State(doc): axum::extract::State<std::sync::Arc<utoipa::openapi::OpenApi>>,
) -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json((*doc).clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::call_request::{FIELDS, IMMUTABLE};

    fn properties(schema: &str) -> Vec<String> {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut names: Vec<String> = doc["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{schema} in the document"))
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_request_schemas_name_exactly_the_fields_the_validator_takes() {
        let mut fields: Vec<String> = FIELDS.iter().map(|s| s.to_string()).collect();
        fields.sort();
        assert_eq!(schema_properties::<CreateCallBody>(), fields);
        let mut patchable: Vec<String> =
            FIELDS.iter().filter(|f| !IMMUTABLE.contains(f)).map(|s| s.to_string()).collect();
        patchable.sort();
        assert_eq!(schema_properties::<PatchCallBody>(), patchable);
        assert!(properties("CallResource").contains(&"end_reason".to_string()));
        let mut agent: Vec<String> = crate::control::agent_request::FIELDS.iter().map(|s| s.to_string()).collect();
        agent.sort();
        assert_eq!(schema_properties::<AgentBody>(), agent);
    }

    fn schema_properties<T: utoipa::PartialSchema>() -> Vec<String> {
        let v = serde_json::to_value(T::schema()).unwrap();
        let mut names: Vec<String> = v["properties"].as_object().unwrap().keys().cloned().collect();
        names.sort();
        names
    }
}
