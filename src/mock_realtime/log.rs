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

/// All connections the mock accepted, in order.
#[derive(Debug, Default, Clone)]
pub struct MockLog {
    pub connections: Arc<Mutex<Vec<Arc<Mutex<ConnectionLog>>>>>,
}

impl MockLog {
    pub fn open(&self) -> Arc<Mutex<ConnectionLog>> {
        let c = Arc::new(Mutex::new(ConnectionLog { opened_at: Some(Instant::now()), ..Default::default() }));
        self.connections.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::clone(&c));
        c
    }

    pub fn count(&self) -> usize {
        self.connections.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The `i`th connection's log.
    pub fn get(&self, i: usize) -> Option<Arc<Mutex<ConnectionLog>>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner()).get(i).cloned()
    }
}
