//! `voxbridge mock-realtime`: a local stand-in for the OpenAI Realtime API (GA wire protocol)
//! for demos, tests and benchmarks, and the embedded default when no API key is configured.

pub mod conversation;
pub mod live;
pub mod log;
pub mod probe;
pub mod script;
pub mod server;
pub mod voice;

pub use conversation::MockOptions;
pub use log::MockLog;
pub use server::{MockHandle, serve, spawn_local, spawn_local_with};

use std::time::Instant;

/// A mock model's conversation, sans-IO: what the server loop drives for either protocol
/// ([`conversation::MockSession`] for Realtime, [`live::LiveMock`] for GPT-Live).
pub trait Conversation {
    /// A client frame arrived at `now`; what the model says to it is pushed to `out`.
    fn on_client_text(&mut self, text: &str, now: Instant, out: &mut Vec<String>);
    /// Time has come to `now` (at or after [`next_deadline`](Self::next_deadline)).
    fn poll(&mut self, now: Instant, out: &mut Vec<String>);
    /// When the conversation next speaks of its own accord.
    fn next_deadline(&self) -> Option<Instant>;
    /// The model ended the session (it closes the socket after what it said last).
    fn is_closed(&self) -> bool {
        false
    }
}
