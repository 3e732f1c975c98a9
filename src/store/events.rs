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

/// One event of a call as its log shows it: what was sent, where, and how each attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub id: i64,
    /// The id consumers see.
    pub event_id: String,
    pub event: String,
    pub status: String,
    pub url: String,
    pub at: Millis,
    /// `pending`, `delivered` or `failed` (given up on).
    pub state: String,
    pub attempts: i64,
    /// When a pending event is tried (again).
    pub next_at: Millis,
    pub last_error: Option<String>,
    pub deliveries: Vec<DeliveryAttempt>,
}

/// One attempt to deliver an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub at: Millis,
    /// `delivered`, `failed` (tried again while attempts remain) or `refused` (a private target).
    pub result: String,
    pub error: Option<String>,
}

/// How one delivery attempt went, as the deliverer records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempted<'a> {
    Delivered,
    /// Failed with this error; tried again at the given time.
    Retry(&'a str, Millis),
    /// Failed with this error for good (out of attempts).
    GaveUp(&'a str),
    /// The target was refused (private address): never tried again.
    Refused(&'a str),
}

impl Attempted<'_> {
    /// The attempt's result as the log names it.
    pub fn result(&self) -> &'static str {
        match self {
            Attempted::Delivered => "delivered",
            Attempted::Retry(..) | Attempted::GaveUp(_) => "failed",
            Attempted::Refused(_) => "refused",
        }
    }

    pub fn error(&self) -> Option<&str> {
        match *self {
            Attempted::Delivered => None,
            Attempted::Retry(e, _) | Attempted::GaveUp(e) | Attempted::Refused(e) => Some(e),
        }
    }
}

/// Joins each event with its attempts (`attempts` ordered by event, then time).
pub fn with_attempts(mut events: Vec<EventRecord>, attempts: Vec<(i64, DeliveryAttempt)>) -> Vec<EventRecord> {
    let mut by_event: std::collections::HashMap<i64, Vec<DeliveryAttempt>> = std::collections::HashMap::new();
    for (id, a) in attempts {
        by_event.entry(id).or_default().push(a);
    }
    for e in &mut events {
        e.deliveries = by_event.remove(&e.id).unwrap_or_default();
    }
    events
}
