//! `POST /v1/calls` bodies, validated field by field (pure): every problem names its field, so
//! the API answers 422 with something a developer can act on, never a 500.

use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::providers::carrier::Provider;
use crate::queue::policy::{CallWindow, WindowError};

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

impl FieldError {
    fn new(field: &str, problem: impl Into<String>) -> FieldError {
        FieldError { field: field.to_string(), problem: problem.into() }
    }
}

/// A valid request, normalized.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRequest {
    pub to: String,
    pub from: String,
    pub provider: String,
    pub instructions: Option<String>,
    pub greeting: Option<String>,
    pub voice: Option<String>,
    pub metadata: Map<String, Value>,
    pub scheduled_at: Option<Timestamp>,
    pub priority: i64,
    pub max_attempts: i64,
    pub dedupe_key: Option<String>,
    /// A second call with the same `dedupe_key` within this many seconds of the first one's
    /// creation returns the first, even if it has ended.
    pub dedupe_window_s: Option<i64>,
    /// Not dialled by then: the call ends `expired`.
    pub expires_at: Option<Timestamp>,
    pub campaign: Option<String>,
    /// The call's duration cap in seconds.
    pub max_duration_s: Option<i64>,
    /// The call's spending cap in USD.
    pub max_cost_usd: Option<f64>,
    /// The model for this call (else `VOXBRIDGE_REALTIME_MODEL`).
    pub model: Option<String>,
    /// `realtime` or `live` (else `VOXBRIDGE_MODEL_API`).
    pub model_api: Option<String>,
    /// Reasoning effort, for a model that takes one (`gpt-realtime-2`…).
    pub reasoning_effort: Option<String>,
    pub call_window: Option<(CallWindow, Value)>,
    pub webhook_url: Option<String>,
    /// Detect answering machines (the call ends `voicemail`); implied by a voicemail message.
    pub machine_detection: bool,
    /// Left on a machine before hanging up.
    pub voicemail_message: Option<String>,
    /// The JSON Schema of the outcome the AI reports (`report_outcome`); checked to compile.
    pub outcome_schema: Option<Value>,
    /// The call's own tools, checked (names, schemas, URLs).
    pub tools: Vec<crate::model::UserTool>,
    /// Where the AI may hand the caller over (`transfer_call`).
    pub transfer_to: Vec<crate::model::TransferTarget>,
    /// The agent whose fields it was made from ([`with_agent`] merged them in already).
    pub agent_id: Option<String>,
    /// What the agent's templates were filled with.
    pub variables: Map<String, Value>,
    /// Post-call analysis asked for (`{"summary", "schema"?, "success_criteria"?, "model"?}`).
    pub analysis: Option<Value>,
    /// The AI may press keys on the phone (`press_digits`).
    pub dtmf_out: bool,
    /// Both sides of the call are recorded.
    pub record: bool,
}

impl CallRequest {
    /// When the first attempt may run: not before `scheduled_at` (or now), inside the window.
    pub fn first_run(&self, now: Timestamp) -> Timestamp {
        let at = self.scheduled_at.map_or(now, |s| s.max(now));
        self.call_window.as_ref().map_or(at, |(w, _)| w.next_opening(at))
    }
}

pub const FIELDS: &[&str] = &[
    "to",
    "from",
    "provider",
    "instructions",
    "greeting",
    "voice",
    "metadata",
    "scheduled_at",
    "priority",
    "max_attempts",
    "dedupe_key",
    "dedupe_window_s",
    "expires_at",
    "campaign",
    "max_duration_s",
    "max_cost_usd",
    "model",
    "model_api",
    "reasoning_effort",
    "call_window",
    "webhook_url",
    "machine_detection",
    "voicemail_message",
    "outcome_schema",
    "tools",
    "transfer_to",
    "agent_id",
    "variables",
    "analysis",
    "dtmf_out",
    "record",
];

/// Validates a parsed JSON body; `default_from` is the configured caller id.
/// Server-wide defaults a request may leave out.
#[derive(Debug, Clone)]
pub struct Defaults<'a> {
    pub provider: Provider,
    pub twilio_from: Option<&'a str>,
    pub telnyx_from: Option<&'a str>,
    /// `VOXBRIDGE_DEFAULT_CALL_WINDOW`, for calls that give none.
    pub call_window: Option<(CallWindow, Value)>,
    /// `VOXBRIDGE_REALTIME_MODEL`, for Realtime calls that name no model.
    pub model: &'a str,
    /// `VOXBRIDGE_MODEL_API`, for calls that choose no API.
    pub model_api: crate::model::ModelApi,
    /// The time the request is judged at (a `scheduled_at` more than a minute before it is refused).
    pub now: Timestamp,
    /// `VOXBRIDGE_WEBHOOK_ALLOW_PRIVATE`: a `webhook_url` or tool `url` may name a private or
    /// internal host.
    pub allow_private_targets: bool,
    /// `VOXBRIDGE_RECORDINGS` is set: a call may ask to be recorded.
    pub recordings: bool,
}

impl<'a> Defaults<'a> {
    /// What a `POST /v1/calls` may leave out, from the server's configuration (its default
    /// window already checked at start-up: [`default_window`]).
    pub fn from_config(config: &'a crate::config::Config, now: Timestamp) -> Defaults<'a> {
        Defaults {
            provider: config.default_provider,
            twilio_from: config.twilio_from_number.as_deref(),
            telnyx_from: config.telnyx_from_number.as_deref(),
            call_window: default_window(config).ok().flatten(),
            model: &config.realtime_model,
            model_api: config.model_api.into(),
            now,
            allow_private_targets: config.webhook_allow_private,
            recordings: config.recordings_on(),
        }
    }
}

/// Defaults for unit tests: Twilio without a caller id, `gpt-realtime`, judged at
/// 2026-12-07T12:00:00Z, no private targets.
#[cfg(test)]
pub(crate) fn test_defaults() -> Defaults<'static> {
    Defaults {
        provider: Provider::Twilio,
        twilio_from: None,
        telnyx_from: None,
        call_window: None,
        model: "gpt-realtime",
        model_api: crate::model::ModelApi::Realtime,
        now: "2026-12-07T12:00:00Z".parse().unwrap(),
        allow_private_targets: false,
        recordings: true,
    }
}

/// `VOXBRIDGE_DEFAULT_CALL_WINDOW`, parsed with the API's own rules (start-up refuses a bad one).
pub fn default_window(
    config: &crate::config::Config,
) -> Result<Option<(CallWindow, Value)>, crate::config::ConfigError> {
    let Some(raw) = config.default_call_window.as_deref().filter(|r| !r.trim().is_empty()) else {
        return Ok(None);
    };
    let problem = |p: String| crate::config::ConfigError { variable: "VOXBRIDGE_DEFAULT_CALL_WINDOW", problem: p };
    let json: Value = serde_json::from_str(raw).map_err(|e| problem(format!("not JSON ({e}): {raw}")))?;
    parse_window(&json).map(Some).map_err(|e| problem(format!("{}: {}", e.field, e.problem)))
}

/// The largest schema taken (`outcome_schema`, a tool's `parameters`; its JSON text): each is
/// sent with every model session.
const MAX_SCHEMA: usize = 16 * 1024;

/// An `http(s)://` URL with a host (`webhook_url`, a tool's `url`).
fn is_http_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.host_str().is_some())
}

/// Where the server will POST (`webhook_url`, a tool's `url`): an http(s) URL whose host, when
/// it is an address or an internal name, is public — refused here, at creation, as well as when
/// the POST connects (a name resolving to a private address is only known then).
fn target_url(field: &str, url: &str, allow_private: bool) -> Result<(), FieldError> {
    let Some(parsed) = url::Url::parse(url).ok().filter(|_| is_http_url(url) && url.len() <= 2_000) else {
        return Err(FieldError::new(field, "must be an http(s) URL"));
    };
    let checked = match parsed.host() {
        _ if allow_private => Ok(()),
        Some(url::Host::Domain(d)) => crate::webhooks::target::check_name(d),
        Some(url::Host::Ipv4(ip)) => crate::webhooks::target::check_ip(ip.into()),
        Some(url::Host::Ipv6(ip)) => crate::webhooks::target::check_ip(ip.into()),
        None => Err(crate::webhooks::target::Refused::BadUrl),
    };
    checked.map_err(|e| {
        FieldError::new(field, format!("{e}: not a public target (VOXBRIDGE_WEBHOOK_ALLOW_PRIVATE=true allows it)"))
    })
}

/// `outcome_schema`: a JSON Schema object for an object, which compiles.
fn outcome_schema(obj: &Map<String, Value>) -> Result<Option<Value>, FieldError> {
    let schema = match obj.get("outcome_schema") {
        None | Some(Value::Null) => return Ok(None),
        Some(s @ Value::Object(_)) => s,
        Some(_) => return Err(FieldError::new("outcome_schema", "must be a JSON Schema object")),
    };
    if schema.to_string().len() > MAX_SCHEMA {
        return Err(FieldError::new("outcome_schema", format!("must be at most {MAX_SCHEMA} bytes of JSON")));
    }
    crate::model::ObjectSchema::new(schema.clone()).map_err(|e| FieldError::new("outcome_schema", e))?;
    Ok(Some(schema.clone()))
}

/// The most tools of its own a call may have.
const MAX_TOOLS: usize = 16;
/// Names the server's own tools use (a call's tools may not take them).
const BUILT_IN_TOOLS: [&str; 4] =
    [crate::model::END_CALL_TOOL, crate::model::REPORT_OUTCOME_TOOL, "transfer_call", crate::model::PRESS_DIGITS_TOOL];

/// `tools`: `[{"name", "description", "parameters", "url"}]`, each named `tools[i].field` when
/// wrong.
fn tools(obj: &Map<String, Value>, allow_private: bool) -> Result<Vec<crate::model::UserTool>, FieldError> {
    let list = match obj.get("tools") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) if list.len() <= MAX_TOOLS => list,
        Some(_) => return Err(FieldError::new("tools", format!("must be an array of at most {MAX_TOOLS} tools"))),
    };
    let mut tools: Vec<crate::model::UserTool> = Vec::with_capacity(list.len());
    for (i, tool) in list.iter().enumerate() {
        let field = |f: &str| format!("tools[{i}].{f}");
        let Some(t) = tool.as_object() else {
            return Err(FieldError::new(&format!("tools[{i}]"), "must be an object"));
        };
        if let Some(unknown) =
            t.keys().find(|k| !["name", "description", "parameters", "url", "timeout_ms"].contains(&k.as_str()))
        {
            return Err(FieldError::new(&field(unknown), "unknown field"));
        }
        let name = t.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)) {
            return Err(FieldError::new(&field("name"), "must be 1 to 64 letters, digits, '_' or '-'"));
        }
        if BUILT_IN_TOOLS.contains(&name) || tools.iter().any(|other| other.name == name) {
            return Err(FieldError::new(
                &field("name"),
                format!("{name} is taken (a built-in tool or an earlier one)"),
            ));
        }
        let description = match t.get("description") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(d)) if d.chars().count() <= 1_024 => d.clone(),
            Some(_) => return Err(FieldError::new(&field("description"), "must be text of at most 1024 characters")),
        };
        let parameters = match t.get("parameters") {
            None | Some(Value::Null) => serde_json::json!({"type": "object", "properties": {}}),
            Some(p @ Value::Object(_)) if p.to_string().len() <= MAX_SCHEMA => {
                crate::model::ObjectSchema::new(p.clone()).map_err(|e| FieldError::new(&field("parameters"), e))?;
                p.clone()
            }
            Some(_) => {
                let problem = format!("must be a JSON Schema object of at most {MAX_SCHEMA} bytes");
                return Err(FieldError::new(&field("parameters"), problem));
            }
        };
        let url = t.get("url").and_then(Value::as_str).unwrap_or_default();
        target_url(&field("url"), url, allow_private)?;
        let timeout_ms = match t.get("timeout_ms") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(ms) if (100..=30_000).contains(&ms) => Some(ms),
                _ => {
                    return Err(FieldError::new(
                        &field("timeout_ms"),
                        "must be a whole number of ms from 100 to 30000",
                    ));
                }
            },
        };
        tools.push(crate::model::UserTool {
            name: name.to_string(),
            description,
            parameters,
            url: url.to_string(),
            timeout_ms,
        });
    }
    Ok(tools)
}

/// The most targets a call's AI may transfer to.
const MAX_TRANSFER_TARGETS: usize = 10;

/// `transfer_to`: `[{"to": E.164 or "sip:…", "description"}]`.
fn transfer_to(obj: &Map<String, Value>) -> Result<Vec<crate::model::TransferTarget>, FieldError> {
    let list = match obj.get("transfer_to") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) if list.len() <= MAX_TRANSFER_TARGETS => list,
        Some(_) => {
            let problem = format!("must be an array of at most {MAX_TRANSFER_TARGETS} targets");
            return Err(FieldError::new("transfer_to", problem));
        }
    };
    let mut targets: Vec<crate::model::TransferTarget> = Vec::with_capacity(list.len());
    for (i, target) in list.iter().enumerate() {
        let field = |f: &str| format!("transfer_to[{i}].{f}");
        let Some(t) = target.as_object() else {
            return Err(FieldError::new(&format!("transfer_to[{i}]"), "must be an object"));
        };
        if let Some(unknown) =
            t.keys().find(|k| !["to", "description", "timeout_s", "on_no_answer", "message"].contains(&k.as_str()))
        {
            return Err(FieldError::new(&field(unknown), "unknown field"));
        }
        let to = if t.get("to").and_then(Value::as_str).is_some_and(|s| s.starts_with("sip:")) {
            let sip = t["to"].as_str().unwrap_or_default();
            let ok = sip.len() <= 256 && sip.contains('@') && !sip.chars().any(|c| c.is_whitespace() || c.is_control());
            if !ok {
                return Err(FieldError::new(&field("to"), "must be a SIP address like sip:desk@pbx.example.com"));
            }
            sip.to_string()
        } else {
            e164(t, "to")
                .map_err(|e| FieldError::new(&field("to"), format!("{} or a sip: address", e.problem)))?
                .ok_or_else(|| FieldError::new(&field("to"), "is required"))?
        };
        if targets.iter().any(|other| other.to == to) {
            return Err(FieldError::new(&field("to"), "is listed twice"));
        }
        let description = match t.get("description") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(d)) if d.chars().count() <= 500 => d.clone(),
            Some(_) => return Err(FieldError::new(&field("description"), "must be text of at most 500 characters")),
        };
        let timeout_s = match t.get("timeout_s") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64().filter(|s| (5..=120).contains(s)) {
                Some(s) => Some(s as u32),
                None => return Err(FieldError::new(&field("timeout_s"), "must be whole seconds from 5 to 120")),
            },
        };
        let on_no_answer = match t.get("on_no_answer") {
            None | Some(Value::Null) => None,
            Some(v) => match serde_json::from_value::<crate::model::OnNoAnswer>(v.clone()) {
                Ok(o) => Some(o),
                Err(_) => return Err(FieldError::new(&field("on_no_answer"), "must be \"return\" or \"message\"")),
            },
        };
        let message = match t.get("message") {
            None | Some(Value::Null) => None,
            Some(Value::String(m)) if !m.trim().is_empty() && m.chars().count() <= 500 => Some(m.clone()),
            Some(_) => return Err(FieldError::new(&field("message"), "must be text of 1 to 500 characters")),
        };
        targets.push(crate::model::TransferTarget { to, description, timeout_s, on_no_answer, message });
    }
    Ok(targets)
}

/// How far in the past a `scheduled_at` may be (clock skew, a slow client) before it is a
/// mistake rather than "now".
const SCHEDULED_AT_SLACK_S: i64 = 60;

pub fn parse(body: &Value, defaults: &Defaults<'_>) -> Result<CallRequest, FieldError> {
    let Some(obj) = body.as_object() else { return Err(FieldError::new("body", "must be a JSON object")) };
    if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(FieldError::new(unknown, "unknown field"));
    }
    let to = e164(obj, "to")?.ok_or_else(|| FieldError::new("to", "is required"))?;
    let provider = match text(obj, "provider", 16)? {
        None => defaults.provider,
        Some(p) => {
            Provider::parse(&p).ok_or_else(|| FieldError::new("provider", "must be \"twilio\" or \"telnyx\""))?
        }
    };
    let default_from = match provider {
        Provider::Twilio => defaults.twilio_from,
        Provider::Telnyx => defaults.telnyx_from,
    };
    let from = match e164(obj, "from")? {
        Some(f) => f,
        None => default_from.map(str::to_string).ok_or_else(|| {
            let variable = match provider {
                Provider::Twilio => "TWILIO_FROM_NUMBER",
                Provider::Telnyx => "TELNYX_FROM_NUMBER",
            };
            FieldError::new("from", format!("is required: give \"from\" (your carrier number), or set {variable}"))
        })?,
    };
    let provider = provider.as_str().to_string();
    let metadata = match obj.get("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) if Value::Object(m.clone()).to_string().len() <= 16 * 1024 => m.clone(),
        Some(Value::Object(_)) => return Err(FieldError::new("metadata", "must be at most 16 KiB of JSON")),
        Some(_) => return Err(FieldError::new("metadata", "must be an object")),
    };
    let scheduled_at = match text(obj, "scheduled_at", 64)? {
        None => None,
        Some(s) => {
            let at = s
                .parse::<Timestamp>()
                .map_err(|_| FieldError::new("scheduled_at", "must be an RFC 3339 time like 2026-11-22T17:00:00Z"))?;
            if at.as_second() < defaults.now.as_second() - SCHEDULED_AT_SLACK_S {
                return Err(FieldError::new(
                    "scheduled_at",
                    format!("is in the past ({at}; now is {}): leave it out to call as soon as possible", defaults.now),
                ));
            }
            Some(at)
        }
    };
    let call_window = match obj.get("call_window") {
        None | Some(Value::Null) => defaults.call_window.clone(),
        Some(w) => Some(parse_window(w)?),
    };
    let webhook_url = text(obj, "webhook_url", 2000)?;
    if let Some(url) = webhook_url.as_deref() {
        target_url("webhook_url", url, defaults.allow_private_targets)?;
    }
    let dedupe_key = text(obj, "dedupe_key", 200)?;
    if dedupe_key.as_deref() == Some("") {
        return Err(FieldError::new("dedupe_key", "must not be empty"));
    }
    let dedupe_window_s = int(obj, "dedupe_window_s", 1, 366 * 86_400)?;
    let campaign = text(obj, "campaign", 100)?;
    let max_duration_s = int(obj, "max_duration_s", 1, 14_400)?;
    let model = text(obj, "model", 100)?;
    if model
        .as_deref()
        .is_some_and(|m| m.is_empty() || !m.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)))
    {
        return Err(FieldError::new(
            "model",
            "must be a model name like gpt-realtime (letters, digits, '-', '_', '.', ':')",
        ));
    }
    let model_api = text(obj, "model_api", 20)?;
    let api = match model_api.as_deref() {
        None => defaults.model_api,
        Some(a) => crate::model::ModelApi::parse(a)
            .ok_or_else(|| FieldError::new("model_api", "must be \"realtime\" or \"live\""))?,
    };
    if let Some(m) = model.as_deref()
        && !known_model(api, m, defaults.model)
    {
        let family = match api {
            crate::model::ModelApi::Realtime => "an OpenAI Realtime model (gpt-realtime…)",
            crate::model::ModelApi::Live => "a GPT-Live model (gpt-live…)",
        };
        return Err(FieldError::new("model", format!("{m} is not {family}")));
    }
    let voice = text(obj, "voice", 64)?;
    if let Some(v) = voice.as_deref()
        && !VOICES.contains(&v)
    {
        return Err(FieldError::new(
            "voice",
            format!("{v} is not a voice the model has (one of {})", VOICES.join(", ")),
        ));
    }
    let outcome_schema = outcome_schema(obj)?;
    let tools = tools(obj, defaults.allow_private_targets)?;
    let transfer_to = transfer_to(obj)?;
    let reasoning_effort = text(obj, "reasoning_effort", 10)?;
    if let Some(effort) = reasoning_effort.as_deref() {
        if !REASONING_EFFORTS.contains(&effort) {
            return Err(FieldError::new("reasoning_effort", "must be one of minimal, low, medium, high, xhigh"));
        }
        // GPT-Live passes it to its Responses backend; Realtime only to a model that takes one.
        let model = model.as_deref().unwrap_or(defaults.model);
        if api == crate::model::ModelApi::Realtime && !crate::model::realtime::session::takes_reasoning(model) {
            return Err(FieldError::new(
                "reasoning_effort",
                format!("model {model} takes no reasoning effort (the gpt-realtime-2 models do)"),
            ));
        }
    }
    let max_cost_usd = match obj.get("max_cost_usd") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_f64() {
            Some(usd) if usd > 0.0 && usd <= 1_000.0 => Some(usd),
            _ => return Err(FieldError::new("max_cost_usd", "must be a number of US dollars above 0, at most 1000")),
        },
    };
    if campaign.as_deref().is_some_and(|c| !valid_campaign(c)) {
        return Err(FieldError::new("campaign", "must be 1 to 100 letters, digits, '-', '_' or '.'"));
    }
    let expires_at = match text(obj, "expires_at", 64)? {
        None => None,
        Some(s) => {
            let at = s
                .parse::<Timestamp>()
                .map_err(|_| FieldError::new("expires_at", "must be an RFC 3339 time like 2026-11-22T17:00:00Z"))?;
            if at <= defaults.now {
                return Err(FieldError::new("expires_at", "is already past"));
            }
            if scheduled_at.is_some_and(|s| at <= s) {
                return Err(FieldError::new("expires_at", "is not after scheduled_at"));
            }
            Some(at)
        }
    };
    if dedupe_window_s.is_some() && dedupe_key.is_none() {
        return Err(FieldError::new("dedupe_window_s", "needs a dedupe_key to apply to"));
    }
    Ok(CallRequest {
        to,
        from,
        provider,
        instructions: text(obj, "instructions", 16_000)?,
        greeting: text(obj, "greeting", 1_000)?,
        voice,
        metadata,
        scheduled_at,
        priority: int(obj, "priority", -100, 100)?.unwrap_or(0),
        max_attempts: int(obj, "max_attempts", 1, 10)?.unwrap_or(3),
        dedupe_key,
        dedupe_window_s,
        expires_at,
        campaign,
        max_duration_s,
        max_cost_usd,
        model,
        model_api,
        reasoning_effort,
        outcome_schema,
        tools,
        transfer_to,
        call_window,
        webhook_url,
        machine_detection: match obj.get("machine_detection") {
            None | Some(Value::Null) => obj.get("voicemail_message").is_some_and(|v| !v.is_null()),
            Some(Value::Bool(b)) => *b || obj.get("voicemail_message").is_some_and(|v| !v.is_null()),
            Some(_) => return Err(FieldError::new("machine_detection", "must be true or false")),
        },
        voicemail_message: text(obj, "voicemail_message", 1_000)?,
        agent_id: text(obj, "agent_id", 64)?,
        variables: variables(obj)?,
        analysis: analysis(obj)?,
        dtmf_out: match obj.get("dtmf_out") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(FieldError::new("dtmf_out", "must be true or false")),
        },
        record: match obj.get("record") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::Bool(true)) if defaults.recordings => true,
            Some(Value::Bool(true)) => {
                return Err(FieldError::new("record", "recordings are off on this server (set VOXBRIDGE_RECORDINGS)"));
            }
            Some(_) => return Err(FieldError::new("record", "must be true or false")),
        },
    })
}

/// `analysis`: `{"summary": bool, "schema": JSON Schema of an object, "success_criteria": text,
/// "model": text}`, at least one of the first three; returned with `summary` set.
fn analysis(obj: &Map<String, Value>) -> Result<Option<Value>, FieldError> {
    let a = match obj.get("analysis") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(a)) => a,
        Some(_) => return Err(FieldError::new("analysis", "must be an object like {\"summary\": true}")),
    };
    if let Some(k) = a.keys().find(|k| !["summary", "schema", "success_criteria", "model"].contains(&k.as_str())) {
        return Err(FieldError::new(
            &format!("analysis.{k}"),
            "unknown field (summary, schema, success_criteria, model)",
        ));
    }
    let summary = match a.get("summary") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(FieldError::new("analysis.summary", "must be true or false")),
    };
    let mut out = Map::new();
    out.insert("summary".into(), summary.into());
    if let Some(schema) = a.get("schema").filter(|v| !v.is_null()) {
        if !schema.is_object() || schema.to_string().len() > MAX_SCHEMA {
            let problem = format!("must be a JSON Schema object of at most {MAX_SCHEMA} bytes");
            return Err(FieldError::new("analysis.schema", problem));
        }
        crate::model::ObjectSchema::new(schema.clone()).map_err(|e| FieldError::new("analysis.schema", e))?;
        out.insert("schema".into(), schema.clone());
    }
    match a.get("success_criteria") {
        None | Some(Value::Null) => {}
        Some(Value::String(c)) if !c.trim().is_empty() && c.chars().count() <= 2_000 => {
            out.insert("success_criteria".into(), c.clone().into());
        }
        Some(_) => return Err(FieldError::new("analysis.success_criteria", "must be text of 1 to 2000 characters")),
    }
    match a.get("model") {
        None | Some(Value::Null) => {}
        Some(Value::String(m))
            if !m.is_empty()
                && m.len() <= 100
                && m.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)) =>
        {
            out.insert("model".into(), m.clone().into());
        }
        Some(_) => return Err(FieldError::new("analysis.model", "must be a model name like gpt-5-mini")),
    }
    if !summary && out.len() == 1 {
        return Err(FieldError::new("analysis", "asks for nothing: give summary: true, a schema or success_criteria"));
    }
    Ok(Some(Value::Object(out)))
}

/// The most variables a call may carry.
const MAX_VARIABLES: usize = 64;

/// `variables`: `{"key": "text"}`, keys as templates name them.
fn variables(obj: &Map<String, Value>) -> Result<Map<String, Value>, FieldError> {
    let vars = match obj.get("variables") {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::Object(v)) if v.len() <= MAX_VARIABLES => v,
        Some(_) => {
            let problem =
                format!("must be an object of at most {MAX_VARIABLES} texts, like {{\"first_name\": \"Ada\"}}");
            return Err(FieldError::new("variables", problem));
        }
    };
    for (k, v) in vars {
        if !super::template::valid_key(k) {
            return Err(FieldError::new(
                &format!("variables.{k}"),
                "a key is 1 to 64 letters, digits, '_', '-' or '.'",
            ));
        }
        if v.as_str().is_none_or(|t| t.chars().count() > 2_000) {
            return Err(FieldError::new(&format!("variables.{k}"), "must be text of at most 2000 characters"));
        }
    }
    Ok(vars.clone())
}

/// The fields of a call that are templates.
pub const TEMPLATES: [&str; 2] = ["instructions", "greeting"];

/// A `POST /v1/calls` body made from `agent` (its stored fields): the agent's fields, then the
/// call's own over them (a `null` on the call keeps the agent's), with the templates filled from
/// the call's `variables` — with an agent or variables, a `{{key}}` without a value is an error
/// naming the key. Without either the body is returned as it is.
pub fn with_agent(body: &Value, agent: Option<&Map<String, Value>>) -> Result<Value, FieldError> {
    let Some(obj) = body.as_object() else { return Ok(body.clone()) };
    if agent.is_none() && !obj.contains_key("variables") {
        return Ok(body.clone());
    }
    let mut merged = agent.cloned().unwrap_or_default();
    merged.extend(obj.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())));
    let vars = variables(&merged)?;
    for field in TEMPLATES {
        let Some(Value::String(template)) = merged.get(field) else { continue };
        super::template::keys(template).map_err(|e| FieldError::new(field, e))?;
        let filled = super::template::fill(template, &vars).map_err(|key| {
            FieldError::new("variables", format!("has no value for {{{{{key}}}}}, used by the {field}"))
        })?;
        merged.insert(field.to_string(), Value::String(filled));
    }
    Ok(Value::Object(merged))
}

/// A `PATCH /v1/calls/{id}` body: only what may change before dialling.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallPatch {
    pub instructions: Option<String>,
    pub greeting: Option<String>,
    pub voice: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub scheduled_at: Option<Timestamp>,
    pub priority: Option<i64>,
    pub max_attempts: Option<i64>,
    pub call_window: Option<(CallWindow, Value)>,
    /// `"call_window": null`: the call has no window any more.
    pub clear_call_window: bool,
    pub webhook_url: Option<String>,
}

/// Fields fixed once a call exists (who is called, how, and its identity).
pub const IMMUTABLE: &[&str] = &[
    "to",
    "from",
    "provider",
    "dedupe_key",
    "dedupe_window_s",
    "expires_at",
    "machine_detection",
    "voicemail_message",
    "campaign",
    "max_duration_s",
    "max_cost_usd",
    "model",
    "model_api",
    "reasoning_effort",
    "outcome_schema",
    "tools",
    "transfer_to",
    "agent_id",
    "variables",
    "analysis",
    "dtmf_out",
    "record",
];

/// The voices OpenAI's speech-to-speech models speak with (Realtime's `voice`; GPT-Live takes
/// the same names).
pub const VOICES: [&str; 10] =
    ["alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"];

/// Whether `model` is one `api` serves: the server's own default, or a model of its family (a
/// name checked here rather than when the callee answers, when the session would fail).
fn known_model(api: crate::model::ModelApi, model: &str, default: &str) -> bool {
    let families: &[&str] = match api {
        crate::model::ModelApi::Realtime => {
            &["gpt-realtime", "gpt-4o-realtime-preview", "gpt-4o-mini-realtime-preview"]
        }
        crate::model::ModelApi::Live => &["gpt-live"],
    };
    model == default || families.iter().any(|f| model == *f || model.starts_with(&format!("{f}-")))
}

/// What `reasoning_effort` may say (OpenAI's `RealtimeReasoningEffort`).
const REASONING_EFFORTS: [&str; 5] = ["minimal", "low", "medium", "high", "xhigh"];

/// A campaign name fits in a URL path segment as it is.
pub fn valid_campaign(name: &str) -> bool {
    !name.is_empty() && name.len() <= 100 && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// A `call_window` object (also `VOXBRIDGE_DEFAULT_CALL_WINDOW`): the window and its JSON.
pub fn parse_window(w: &Value) -> Result<(CallWindow, Value), FieldError> {
    let Value::Object(m) = w else {
        return Err(FieldError::new("call_window", "must be an object with timezone, start, end, days"));
    };
    if let Some(k) = m.keys().find(|k| !["timezone", "start", "end", "days"].contains(&k.as_str())) {
        return Err(FieldError::new(
            &format!("call_window.{k}"),
            "is not a call window field (timezone, start, end, days)",
        ));
    }
    let field = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let days: Vec<String> = match m.get("days") {
        None => Vec::new(),
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(FieldError::new("call_window.days", "must name at least one day (leave it out for every day)"));
        }
        Some(Value::Array(a)) => a.iter().map(|d| d.as_str().unwrap_or("?").to_string()).collect(),
        Some(_) => return Err(FieldError::new("call_window.days", "must be a list like [\"mon\",\"tue\"]")),
    };
    let window = CallWindow::parse(&field("timezone"), &field("start"), &field("end"), &days).map_err(|e| {
        let f = match e {
            WindowError::TimeZone(_) => "call_window.timezone",
            WindowError::Time { field: "start", .. } => "call_window.start",
            WindowError::Time { .. } | WindowError::Order => "call_window.end",
            WindowError::Day(_) | WindowError::NoDays => "call_window.days",
        };
        FieldError::new(f, e.to_string())
    })?;
    Ok((window, w.clone()))
}

/// Validates a patch with the same rules as a new call; `to`, `from`, `provider` and
/// `dedupe_key` cannot change.
pub fn parse_patch(body: &Value, now: Timestamp, allow_private_targets: bool) -> Result<CallPatch, FieldError> {
    let Some(obj) = body.as_object() else { return Err(FieldError::new("body", "must be a JSON object")) };
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str()) || IMMUTABLE.contains(&k.as_str())) {
        let problem = if FIELDS.contains(&k.as_str()) { "cannot be changed" } else { "unknown field" };
        return Err(FieldError::new(k, problem));
    }
    // `null` clears only where "none" means something (no call window); elsewhere it would
    // change nothing, silently: refused instead.
    if let Some(k) = obj.iter().find(|(k, v)| v.is_null() && *k != "call_window").map(|(k, _)| k) {
        return Err(FieldError::new(k, "cannot be null (leave it out to keep the current value)"));
    }
    // Reuse the full validation on a body with a placeholder number.
    let mut full = obj.clone();
    full.insert("to".into(), "+10000000000".into());
    let placeholder = Defaults {
        provider: Provider::Twilio,
        twilio_from: Some("+10000000000"),
        telnyx_from: None,
        call_window: None,
        model: "",
        model_api: crate::model::ModelApi::Realtime,
        now,
        allow_private_targets,
        recordings: true,
    };
    let v = parse(&Value::Object(full), &placeholder)?;
    Ok(CallPatch {
        instructions: v.instructions,
        greeting: v.greeting,
        voice: v.voice,
        metadata: obj.contains_key("metadata").then_some(v.metadata),
        scheduled_at: v.scheduled_at,
        priority: obj.contains_key("priority").then_some(v.priority),
        max_attempts: obj.contains_key("max_attempts").then_some(v.max_attempts),
        call_window: v.call_window,
        clear_call_window: obj.get("call_window").is_some_and(Value::is_null),
        webhook_url: v.webhook_url,
    })
}

fn text(obj: &Map<String, Value>, field: &str, max_chars: usize) -> Result<Option<String>, FieldError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max_chars => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(FieldError::new(field, format!("must be at most {max_chars} characters"))),
        Some(_) => Err(FieldError::new(field, "must be a string")),
    }
}

fn int(obj: &Map<String, Value>, field: &str, min: i64, max: i64) -> Result<Option<i64>, FieldError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(FieldError::new(field, format!("must be a whole number from {min} to {max}"))),
        },
    }
}

/// An E.164 number: `+`, then 7 to 15 digits, not starting with 0.
fn e164(obj: &Map<String, Value>, field: &str) -> Result<Option<String>, FieldError> {
    let Some(s) = text(obj, field, 16)? else { return Ok(None) };
    if is_e164(&s) { Ok(Some(s)) } else { Err(FieldError::new(field, "must be an E.164 number like +15551234567")) }
}

/// Whether `s` is E.164: `+`, then 7 to 15 digits, not starting with 0.
pub fn is_e164(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or("");
    (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults(from: Option<&str>) -> Defaults<'_> {
        let now = "2026-11-20T12:00:00Z".parse().unwrap();
        Defaults {
            provider: Provider::Twilio,
            twilio_from: from,
            telnyx_from: from,
            call_window: None,
            model: "gpt-realtime",
            model_api: crate::model::ModelApi::Realtime,
            now,
            allow_private_targets: false,
            recordings: false,
        }
    }
    use serde_json::json;

    #[test]
    fn a_default_call_window_is_checked_at_start_up_and_applies_to_calls_without_one() {
        let mut c = crate::config::Config::defaults();
        c.default_call_window = Some(r#"{"timezone":"Mars/Base","start":"09:00","end":"17:00"}"#.into());
        let e = default_window(&c).unwrap_err();
        assert_eq!(e.variable, "VOXBRIDGE_DEFAULT_CALL_WINDOW");
        assert!(e.problem.starts_with("call_window.timezone"), "{}", e.problem);
        c.default_call_window = Some("09:00-17:00".into());
        assert!(default_window(&c).unwrap_err().problem.starts_with("not JSON"));
        c.default_call_window = Some(r#"{"timezone":"America/New_York","start":"09:00","end":"20:00"}"#.into());
        default_window(&c).unwrap();
        let now = "2026-11-20T12:00:00Z".parse().unwrap();
        let d = Defaults::from_config(&c, now);
        let body = serde_json::json!({"to": "+15551234567", "from": "+15557654321"});
        let r = parse(&body, &d).unwrap();
        assert_eq!(r.call_window.as_ref().unwrap().1["timezone"], "America/New_York", "the default applies");
        let own = serde_json::json!({"to": "+15551234567", "from": "+15557654321",
            "call_window": {"timezone": "UTC", "start": "10:00", "end": "11:00"}});
        let r = parse(&own, &d).unwrap();
        assert_eq!(r.call_window.as_ref().unwrap().1["timezone"], "UTC", "a call's own window wins");
    }

    #[test]
    fn reasoning_effort_only_for_a_model_that_takes_one() {
        let d = defaults(Some("+15557654321"));
        let ok =
            parse(&json!({"to": "+15551230001", "model": "gpt-realtime-2", "reasoning_effort": "high"}), &d).unwrap();
        assert_eq!(ok.reasoning_effort.as_deref(), Some("high"));
        let none = parse(&json!({"to": "+15551230001"}), &d).unwrap();
        assert_eq!(none.reasoning_effort, None);
        // The server's model (gpt-realtime here) takes none; a wrong value is named too.
        let e = parse(&json!({"to": "+15551230001", "reasoning_effort": "high"}), &d).unwrap_err();
        assert_eq!(e.field, "reasoning_effort");
        assert!(e.problem.contains("gpt-realtime takes no reasoning effort"), "{}", e.problem);
        assert_eq!(
            err(json!({"to": "+15551230001", "model": "gpt-realtime-2", "reasoning_effort": "max"})),
            "reasoning_effort"
        );
        assert_eq!(
            err(json!({"to": "+15551230001", "model": "gpt-realtime-2", "reasoning_effort": 3})),
            "reasoning_effort"
        );
        let patch = parse_patch(&json!({"reasoning_effort": "low"}), "2026-11-20T12:00:00Z".parse().unwrap(), false);
        assert_eq!(patch.unwrap_err().field, "reasoning_effort", "fixed at creation, as the model is");
    }

    fn err(body: Value) -> String {
        parse(&body, &defaults(Some("+15557654321"))).unwrap_err().field
    }

    #[test]
    fn a_calls_own_tools_are_checked_field_by_field() {
        let d = defaults(Some("+15557654321"));
        let tool = |extra: Value| {
            let mut t = json!({"name": "check_calendar", "url": "https://tools.example/calendar"});
            t.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            t
        };
        let ok =
            parse(&json!({"to": "+15551230001", "tools": [tool(json!({"description": "Free slots."}))]}), &d).unwrap();
        assert_eq!(ok.tools.len(), 1);
        assert_eq!(ok.tools[0].parameters, json!({"type": "object", "properties": {}}), "no parameters: none");
        assert_eq!(ok.tools[0].description, "Free slots.");
        assert!(parse(&json!({"to": "+15551230001"}), &d).unwrap().tools.is_empty());
        let field = |tools: Value| parse(&json!({"to": "+15551230001", "tools": tools}), &d).unwrap_err().field;
        assert_eq!(field(json!({})), "tools");
        assert_eq!(field(json!(vec![tool(json!({})); 17])), "tools", "at most 16");
        assert_eq!(field(json!(["x"])), "tools[0]");
        assert_eq!(field(json!([tool(json!({"name": "has space"}))])), "tools[0].name");
        assert_eq!(field(json!([tool(json!({"name": "report_outcome"}))])), "tools[0].name", "built in");
        assert_eq!(field(json!([tool(json!({})), tool(json!({}))])), "tools[1].name", "twice");
        assert_eq!(field(json!([tool(json!({"url": "not a url"}))])), "tools[0].url");
        assert_eq!(field(json!([tool(json!({"description": 5}))])), "tools[0].description");
        assert_eq!(
            field(json!([tool(json!({"parameters": {"type": "object", "properties": {"a": {"type": 1}}}}))])),
            "tools[0].parameters"
        );
        assert_eq!(field(json!([tool(json!({"secret": "x"}))])), "tools[0].secret");
    }

    #[test]
    fn an_outcome_schema_must_be_an_object_schema_that_compiles_and_is_fixed_at_creation() {
        let d = defaults(Some("+15557654321"));
        let schema = json!({"type": "object", "properties": {"confirmed": {"type": "boolean"}}});
        let ok = parse(&json!({"to": "+15551230001", "outcome_schema": schema}), &d).unwrap();
        assert_eq!(ok.outcome_schema, Some(schema));
        assert_eq!(parse(&json!({"to": "+15551230001", "outcome_schema": null}), &d).unwrap().outcome_schema, None);
        let problem = |s: Value| {
            let e = parse(&json!({"to": "+15551230001", "outcome_schema": s}), &d).unwrap_err();
            assert_eq!(e.field, "outcome_schema");
            e.problem
        };
        assert!(problem(json!("object")).contains("JSON Schema object"));
        assert!(problem(json!({"type": "array"})).contains(r#""type": "object""#));
        assert!(
            problem(json!({"type": "object", "properties": {"a": {"type": 5}}})).contains("not a valid JSON Schema")
        );
        let huge = json!({"type": "object", "description": "x".repeat(20_000)});
        assert!(problem(huge).contains("16384 bytes"));
        let patch =
            parse_patch(&json!({"outcome_schema": {"type": "object"}}), "2026-11-20T12:00:00Z".parse().unwrap(), false);
        assert_eq!(patch.unwrap_err().field, "outcome_schema");
    }

    #[test]
    fn only_to_is_required_and_defaults_apply() {
        let r = parse(&json!({"to": "+15551234567"}), &defaults(Some("+15557654321"))).unwrap();
        assert_eq!(
            (r.from.as_str(), r.provider.as_str(), r.priority, r.max_attempts),
            ("+15557654321", "twilio", 0, 3)
        );
        assert_eq!(parse(&json!({"to": "+15551234567"}), &defaults(None)).unwrap_err().field, "from");
    }

    #[test]
    fn every_bad_field_is_named() {
        assert_eq!(err(json!([])), "body");
        assert_eq!(err(json!({})), "to");
        assert_eq!(err(json!({"to": "5551234567"})), "to");
        assert_eq!(err(json!({"to": "+0551234567"})), "to");
        assert_eq!(err(json!({"to": 15551234567u64})), "to");
        assert_eq!(err(json!({"to": "+15551234567", "from": "me"})), "from");
        assert_eq!(err(json!({"to": "+15551234567", "provider": "skype"})), "provider");
        assert_eq!(err(json!({"to": "+15551234567", "priority": 1000})), "priority");
        assert_eq!(err(json!({"to": "+15551234567", "max_attempts": 0})), "max_attempts");
        assert_eq!(err(json!({"to": "+15551234567", "metadata": "x"})), "metadata");
        assert_eq!(err(json!({"to": "+15551234567", "scheduled_at": "tomorrow"})), "scheduled_at");
        // The defaults judge at 2026-11-20T12:00:00Z: a minute's slack, no more.
        assert_eq!(err(json!({"to": "+15551234567", "scheduled_at": "2026-11-20T11:58:59Z"})), "scheduled_at");
        let r = parse(&json!({"to": "+15551234567", "scheduled_at": "2026-11-20T11:59:30Z"}), &defaults(Some("+1555")));
        assert!(r.is_ok(), "within the slack");
        assert_eq!(err(json!({"to": "+15551234567", "greeting": "x".repeat(1001)})), "greeting");
        assert_eq!(err(json!({"to": "+15551234567", "webhook_url": "ftp://x"})), "webhook_url");
        // A private or internal target is refused at creation (and again when the POST connects).
        for private in
            ["http://127.0.0.1:9/x", "http://10.0.0.5/hook", "http://[::ffff:169.254.169.254]/", "http://db.internal/"]
        {
            assert_eq!(err(json!({"to": "+15551234567", "webhook_url": private})), "webhook_url", "{private}");
            let tool = json!({"name": "t", "description": "d", "parameters": {"type": "object"}, "url": private});
            assert_eq!(err(json!({"to": "+15551234567", "tools": [tool]})), "tools[0].url", "{private}");
        }
        let allowed = Defaults { allow_private_targets: true, ..defaults(Some("+15557654321")) };
        assert!(parse(&json!({"to": "+15551234567", "webhook_url": "http://127.0.0.1:9/x"}), &allowed).is_ok());
        assert_eq!(err(json!({"to": "+15551234567", "dedupe_key": ""})), "dedupe_key");
        assert_eq!(err(json!({"to": "+15551234567", "dedupe_window_s": 3600})), "dedupe_window_s", "needs a key");
        assert_eq!(err(json!({"to": "+15551234567", "expires_at": "2026-11-20T11:00:00Z"})), "expires_at", "past");
        let late =
            json!({"to": "+15551234567", "scheduled_at": "2026-11-21T10:00:00Z", "expires_at": "2026-11-21T09:00:00Z"});
        assert_eq!(err(late), "expires_at", "before the schedule");
        assert_eq!(err(json!({"to": "+15551234567", "dedupe_key": "k", "dedupe_window_s": 0})), "dedupe_window_s");
        assert_eq!(err(json!({"to": "+15551234567", "surprise": 1})), "surprise");
        let w = |w: Value| err(json!({"to": "+15551234567", "call_window": w}));
        assert_eq!(w(json!({"timezone": "Nowhere/City", "start": "09:00", "end": "17:00"})), "call_window.timezone");
        assert_eq!(w(json!({"timezone": "UTC", "start": "9", "end": "17:00"})), "call_window.start");
        assert_eq!(w(json!({"timezone": "UTC", "start": "18:00", "end": "17:00"})), "call_window.end");
        assert_eq!(
            w(json!({"timezone": "UTC", "start": "09:00", "end": "17:00", "days": ["someday"]})),
            "call_window.days"
        );
    }

    #[test]
    fn the_first_attempt_waits_for_schedule_and_window() {
        let body = json!({"to": "+15551234567", "scheduled_at": "2026-11-21T02:00:00Z",
            "call_window": {"timezone": "America/Los_Angeles", "start": "09:00", "end": "17:00", "days": ["mon","tue","wed","thu","fri"]}});
        let r = parse(&body, &defaults(Some("+15557654321"))).unwrap();
        let now: Timestamp = "2026-11-20T12:00:00Z".parse().unwrap();
        // Friday 18:00 PST → Monday 09:00 PST.
        assert_eq!(r.first_run(now), "2026-11-23T17:00:00Z".parse().unwrap());
        let plain = parse(&json!({"to": "+15551234567"}), &defaults(Some("+15557654321"))).unwrap();
        assert_eq!(plain.first_run(now), now);
    }
}
