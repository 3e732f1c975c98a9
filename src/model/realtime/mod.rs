//! The OpenAI Realtime API (GA shape only): wire events, the sans-IO protocol session (config,
//! response lifecycle, tool calls, error classes) and the WebSocket connection that dials both
//! OpenAI APIs.

pub mod connection;
pub mod session;
pub mod wire;

pub use session::RealtimeSession;
