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
    /// How often its attempt already went back to the queue uncounted.
    pub uncounted_releases: i64,
}

/// How many times an orphaned attempt the carrier has no call of goes back to the queue
/// uncounted (its worker may have died before the dial left: the callee heard nothing, so a
/// call with one attempt is still dialled) before such attempts count — a crash loop, or a
/// carrier refusing creates while workers die, cannot dial a call for ever.
pub const UNCOUNTED_RELEASES: i64 = 2;

impl Orphan {
    /// Whether its attempt, of which the carrier has no call, counts.
    pub fn counts_when_not_found(&self) -> bool {
        self.uncounted_releases >= UNCOUNTED_RELEASES
    }
}
