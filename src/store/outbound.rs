//! Outbound calls requested through the API, as every backend stores them, and the read model
//! the API shows (one call with its job, newest-first pages): one SQL text and one row mapping
//! for every backend.

use super::Millis;

pub use crate::lifecycle::attempt::{Attempt, Orphan};
use crate::lifecycle::status::CallStatus;

/// A validated outbound call request.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundCall {
    pub id: String,
    pub provider: String,
    pub to_number: String,
    pub from_number: Option<String>,
    pub instructions: Option<String>,
    pub greeting: Option<String>,
    pub voice: Option<String>,
    /// JSON object text.
    pub metadata: String,
    pub dedupe_key: Option<String>,
    /// JSON object text of the window, as given.
    pub call_window: Option<String>,
    pub webhook_url: Option<String>,
    pub priority: i64,
    pub max_attempts: i64,
    /// First attempt time (after the call window).
    pub run_at: Millis,
    /// Ask the provider to detect answering machines (the call ends `voicemail`).
    pub machine_detection: bool,
    /// Spoken to a machine before hanging up (else the machine is hung up on at once).
    pub voicemail_message: Option<String>,
    /// Not dialled by then: the call ends `expired`.
    pub expires_at: Option<Millis>,
    /// The batch it belongs to (pause, resume, cancel, filter by it).
    pub campaign: Option<String>,
    /// Its duration cap in seconds (`None`: the server's).
    pub max_duration_s: Option<i64>,
    /// Its spending cap in USD (`None`: none).
    pub max_cost_usd: Option<f64>,
    /// The model it asked for (`None`: the server's).
    pub model: Option<String>,
    /// Reasoning effort for a model that takes one (`minimal` … `xhigh`).
    pub reasoning_effort: Option<String>,
    /// The API it asked for (`realtime` or `live`; `None`: the server's).
    pub model_api: Option<String>,
    /// JSON Schema text of the outcome the AI reports (`report_outcome`), as given.
    pub outcome_schema: Option<String>,
    /// JSON array text of its own tools (`model::UserTool`), as checked.
    pub tools: Option<String>,
    /// JSON array text of where the AI may transfer the caller (`model::TransferTarget`).
    pub transfer_to: Option<String>,
    /// With `dedupe_key`: an earlier call with the key created less than this long ago is
    /// returned even if it has ended (a live one always is).
    pub dedupe_window_ms: Option<Millis>,
    /// A digest of the request that created it: an `Idempotency-Key` reused with another
    /// request is refused (empty: not compared).
    pub request_digest: String,
    /// The agent it was made from, its version and the variables filled in.
    pub agent: Option<super::agents::AgentUse>,
    /// Post-call analysis asked for (JSON text).
    pub analysis: Option<String>,
    /// The AI may press keys (`press_digits`).
    pub dtmf_out: bool,
    /// The call is recorded.
    pub record: bool,
}

impl OutboundCall {
    /// What it has beyond a plain call's columns.
    pub fn extras(&self) -> super::agents::CallExtras<'_> {
        super::agents::CallExtras {
            agent: self.agent.as_ref(),
            analysis: self.analysis.as_deref(),
            dtmf_out: self.dtmf_out,
            record: self.record,
        }
    }
}

/// What `create_outbound` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    New(String),
    /// The same `Idempotency-Key`, or a live call with the same dedupe key.
    Existing(String),
    /// The `Idempotency-Key` was used before with a different request (for this call).
    KeyReused(String),
}

/// One call as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallView {
    pub id: String,
    pub direction: String,
    pub provider: String,
    pub status: CallStatus,
    pub to_number: String,
    pub from_number: Option<String>,
    pub instructions: Option<String>,
    pub greeting: Option<String>,
    pub voice: Option<String>,
    pub metadata: String,
    pub dedupe_key: Option<String>,
    pub call_window: Option<String>,
    pub webhook_url: Option<String>,
    pub provider_call_id: Option<String>,
    pub last_error: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// From the dial job, when there is one.
    pub priority: Option<i64>,
    pub attempts: i64,
    pub max_attempts: Option<i64>,
    /// When the next attempt may run (queued jobs only).
    pub next_attempt_at: Option<Millis>,
    pub job_id: Option<i64>,
    pub machine_detection: bool,
    pub answered_by: Option<String>,
    pub voicemail_message: Option<String>,
    pub expires_at: Option<Millis>,
    /// How often a call window (or a missing carrier) moved the next attempt.
    pub reschedules: i64,
    /// Why the call ended (`None` while it lives).
    pub end_reason: Option<String>,
    pub answered_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    pub campaign: Option<String>,
    /// The model that served the call and its tokens, summed.
    pub model: Option<String>,
    pub usage: crate::model::Usage,
    pub max_duration_s: Option<i64>,
    pub max_cost_usd: Option<f64>,
    /// What the carrier billed, when it said (else the answer-to-end duration is used).
    pub carrier_seconds: Option<i64>,
    pub reasoning_effort: Option<String>,
    pub model_api: Option<String>,
    /// JSON Schema text, as given.
    pub outcome_schema: Option<String>,
    /// The outcome the AI reported (JSON text), if it did.
    pub outcome: Option<String>,
    /// Its own tools (JSON array text).
    pub tools: Option<String>,
    /// Where the AI may transfer the caller (JSON array text).
    pub transfer_to: Option<String>,
    /// Where the AI transferred the caller.
    pub transferred_to: Option<String>,
    /// The agent it was made from, and that agent's version then.
    pub agent_id: Option<String>,
    pub agent_version: Option<i64>,
    /// The variables its templates were filled with (JSON object text).
    pub variables: Option<String>,
    /// Its post-call analysis (JSON text: the result, or `{"error": …}`), once done.
    pub analysis: Option<String>,
    /// The AI may press keys (`press_digits`).
    pub dtmf_out: bool,
    /// The call is to be recorded.
    pub record: bool,
    /// Where its recording is (`pending` upload, `stored`, `deleted`), its size, what went wrong.
    pub recording_state: Option<String>,
    pub recording_bytes: Option<i64>,
    pub recording_error: Option<String>,
}

/// Which calls a list shows (each `None`: any).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListFilter {
    pub status: Option<CallStatus>,
    pub campaign: Option<String>,
    pub to: Option<String>,
    /// One `metadata.KEY=VALUE`: the metadata's top-level `KEY` equals `VALUE` (as text).
    pub metadata: Option<(String, String)>,
    /// Made from this agent.
    pub agent_id: Option<String>,
    /// `inbound` or `outbound`.
    pub direction: Option<String>,
    /// Created at or after this time (ms).
    pub created_from: Option<Millis>,
    /// Created before this time (ms).
    pub created_before: Option<Millis>,
}

/// The API's view of calls (a call and its latest dial job), followed by `$tail`.
macro_rules! view_sql {
    ($tail:literal) => {
        concat!(
            "SELECT c.id, c.direction, c.provider, c.status, c.to_number, c.from_number, c.instructions, c.greeting,
                    c.voice, c.metadata, c.dedupe_key, c.call_window, c.webhook_url, c.provider_call_id, c.last_error,
                    c.created_at, c.updated_at, j.priority, COALESCE(j.attempts, 0), j.max_attempts,
                    CASE WHEN j.state = 'queued' THEN j.run_at END, j.id, c.machine_detection, c.answered_by, c.voicemail_message,
                    c.expires_at, c.reschedules, c.end_reason, c.answered_at, c.ended_at, c.campaign,
                    c.model, c.input_audio_tokens, c.output_audio_tokens, c.input_text_tokens, c.output_text_tokens,
                    c.cached_input_tokens, c.max_duration_s, c.max_cost_usd, c.carrier_seconds, c.reasoning_effort,
                    c.live_seconds, c.model_api, c.outcome_schema, c.outcome, c.tools, c.transfer_to, c.transferred_to,
                    c.agent_id, c.agent_version, c.variables, c.analysis, c.dtmf_out,
                    c.record, c.recording_state, c.recording_bytes, c.recording_error
             FROM calls c LEFT JOIN jobs j ON j.id = (SELECT MAX(id) FROM jobs WHERE call_id = c.id)",
            $tail
        )
    };
}

/// One call by id (`$1`).
pub(crate) const VIEW_ONE: &str = view_sql!(" WHERE c.id = $1");

pub(crate) use view_sql;

/// Changes to a queued call (`None` = unchanged).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutboundPatch {
    pub instructions: Option<String>,
    pub greeting: Option<String>,
    pub voice: Option<String>,
    pub metadata: Option<String>,
    pub call_window: Option<String>,
    /// The call has no window any more (`call_window` is then `None`).
    pub clear_call_window: bool,
    pub webhook_url: Option<String>,
    pub priority: Option<i64>,
    pub max_attempts: Option<i64>,
    pub run_at: Option<Millis>,
}
