//! One attempt of an outbound call as the carrier may know it: what reconciliation and the
//! sweeper ask the carrier about. Plain data, read by the store, judged here and in `queue`.

use super::Millis;
use super::status::CallStatus;

/// One attempt of an outbound call as the carrier may know it.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub call_id: String,
    pub status: CallStatus,
    /// Its number (1 for the first dial).
    pub attempt: i64,
    /// The carrier's id, once known.
    pub provider_call_id: Option<String>,
    /// When it was dialled.
    pub started_at: Option<Millis>,
    pub provider: String,
    pub to_number: String,
    pub from_number: Option<String>,
    /// Last change of the call (status, stream end).
    pub updated_at: Millis,
    pub answered_at: Option<Millis>,
    /// The bridge has ended its stream (the carrier's final word is due).
    pub stream_ended: bool,
    pub max_duration_s: Option<i64>,
}

/// A job whose worker died, with its call's current attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Orphan {
    pub job_id: i64,
    pub attempt: Attempt,
}
