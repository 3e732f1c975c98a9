//! The OpenAI Realtime API (GA shape only): wire events, the sans-IO model session (config,
//! response lifecycle, tool calls, error classes) and the WebSocket connection that dials it.

pub mod connection;
pub mod session;
pub mod wire;

pub use session::{ModelAudio, ModelConfig, ModelSession};
