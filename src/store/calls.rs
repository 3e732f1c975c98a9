//! Call records, provider events and transcripts as every backend stores them.

use super::Millis;
use crate::lifecycle::status::CallStatus;

/// A call to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCallRecord {
    pub id: String,
    pub provider: String,
    pub inbound: bool,
    pub to_number: String,
    pub from_number: Option<String>,
    pub status: CallStatus,
    /// Where this call's events go (inbound calls: `VOXBRIDGE_WEBHOOK_URL`).
    pub webhook_url: Option<String>,
    /// The carrier's id of the call, from a signed webhook (Twilio's voice webhook, Telnyx's
    /// `call.initiated`): the only id hang-up and transfer will act on.
    pub provider_call_id: Option<String>,
    /// An agent's configuration for it (`None`: the server's defaults).
    pub config: Option<super::agents::CallConfig>,
    /// The agent it was made from.
    pub agent: Option<super::agents::AgentUse>,
}

impl NewCallRecord {
    /// What it has beyond a plain call's columns (the agent; the analysis and keys its agent
    /// asked for).
    pub fn extras(&self) -> super::agents::CallExtras<'_> {
        super::agents::CallExtras {
            agent: self.agent.as_ref(),
            analysis: self.config.as_ref().and_then(|c| c.analysis.as_deref()),
            dtmf_out: self.config.as_ref().is_some_and(|c| c.dtmf_out),
            record: self.config.as_ref().is_some_and(|c| c.record),
        }
    }
}

/// A call with its history.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    pub id: String,
    pub provider: String,
    pub status: CallStatus,
    pub provider_call_id: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// (status, at, detail), oldest first.
    pub history: Vec<(CallStatus, Millis, Option<String>)>,
}

/// A provider's report about a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderEvent<'a> {
    pub provider: &'a str,
    /// Unique per event at that provider (dedupe key).
    pub event_id: &'a str,
    pub call_id: &'a str,
    pub provider_call_id: &'a str,
    /// The attempt it is about, when the carrier echoes it (our status URL or client_state);
    /// `None`: judged by `provider_call_id` alone.
    pub attempt: Option<i64>,
    pub status: CallStatus,
    pub detail: Option<&'a str>,
    /// The seconds the carrier billed, when its final report says (Twilio `CallDuration`).
    pub carrier_seconds: Option<i64>,
}

/// What applying a provider event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The status moved forward.
    Advanced(CallStatus),
    /// Seen before (same event id): nothing changed.
    Duplicate,
    /// Late or backwards (`ringing` after `completed`): recorded as seen, nothing changed.
    Stale,
    /// No such call.
    UnknownCall,
    /// The attempt ended `after` (busy, no answer); the next one may run at `run_at`.
    Retrying { after: CallStatus, run_at: Millis },
}

/// Counts for the API's metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallCounts {
    pub calls_by_status: Vec<(String, i64)>,
    pub queued_jobs: i64,
}

/// One transcript line as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptLine {
    pub speaker: String,
    pub text: String,
    pub at_ms: i64,
    pub heard_ms: Option<i64>,
}
