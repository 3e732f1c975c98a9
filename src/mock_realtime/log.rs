//! What the mock model saw, per connection, for tests and the replay report to inspect.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct TruncationLog {
    pub item_id: String,
    pub audio_end_ms: Option<u64>,
    /// Audio the mock had sent for that item, in ms (None: unknown item).
    pub item_sent_ms: Option<u64>,
    pub accepted: bool,
}

#[derive(Debug, Default)]
pub struct ConnectionLog {
    pub opened_at: Option<Instant>,
    pub closed_at: Option<Instant>,
    pub authorization: Option<String>,
    pub session_updates: Vec<Value>,
    pub audio_in: Vec<u8>,
    pub items: Vec<Value>,
    /// The `instructions` of each `response.create` ("" when none).
    pub response_requests: Vec<String>,
    pub truncations: Vec<TruncationLog>,
    pub cancels: u32,
    pub responses: u32,
    /// Audio deltas sent.
    pub deltas_sent: u64,
    /// Responses that finished (`response.done` with `completed`).
    pub responses_done: u32,
    pub interruptions: u32,
    pub errors_sent: Vec<String>,
}

/// The connections the mock accepted, in order: every one (tests), or the latest few (a
/// long-running mock: the server's built-in one, `voxbridge mock-realtime`), so its memory does
/// not grow with every call (the soak found ~21 KB per call kept otherwise).
#[derive(Debug, Default, Clone)]
pub struct MockLog {
    connections: Arc<Mutex<Kept>>,
    /// Keep only this many of the latest connections' logs.
    keep: Option<usize>,
}

#[derive(Debug, Default)]
struct Kept {
    logs: std::collections::VecDeque<Arc<Mutex<ConnectionLog>>>,
    /// Logs let go (the oldest): connection `i` is `logs[i - dropped]`.
    dropped: usize,
}

impl MockLog {
    /// A log that keeps the latest `n` connections' logs (the count stays exact).
    pub fn bounded(n: usize) -> MockLog {
        MockLog { keep: Some(n.max(1)), ..MockLog::default() }
    }

    pub fn open(&self) -> Arc<Mutex<ConnectionLog>> {
        let c = Arc::new(Mutex::new(ConnectionLog { opened_at: Some(Instant::now()), ..Default::default() }));
        let mut kept = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        kept.logs.push_back(Arc::clone(&c));
        if self.keep.is_some_and(|n| kept.logs.len() > n) {
            kept.logs.pop_front();
            kept.dropped += 1;
        }
        c
    }

    /// Connections accepted so far.
    pub fn count(&self) -> usize {
        let kept = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        kept.dropped + kept.logs.len()
    }

    /// The `i`th connection's log (`None` when a bounded log let it go).
    pub fn get(&self, i: usize) -> Option<Arc<Mutex<ConnectionLog>>> {
        let kept = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        kept.logs.get(i.checked_sub(kept.dropped)?).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounded_log_keeps_the_latest_and_counts_all() {
        let log = MockLog::bounded(2);
        for _ in 0..5 {
            log.open();
        }
        assert_eq!(log.count(), 5);
        assert!(log.get(2).is_none() && log.get(3).is_some() && log.get(4).is_some() && log.get(5).is_none());
        let all = MockLog::default();
        all.open();
        all.open();
        assert!(all.get(0).is_some() && all.count() == 2);
    }
}
