//! The event outbox: a row per call status change for calls with a webhook URL, written in the
//! status change's own transaction, then delivered (and retried) by `webhooks::deliverer`.

use super::Millis;

/// An event waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvent {
    pub id: i64,
    /// The id consumers see (`evt_` + 24 hex digits).
    pub event_id: String,
    pub call_id: String,
    pub url: String,
    pub event: String,
    pub status: String,
    pub at: Millis,
    pub attempts: i64,
}
