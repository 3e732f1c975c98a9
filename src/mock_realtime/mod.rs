//! `voxbridge mock-realtime`: a local stand-in for the OpenAI Realtime API (GA wire protocol)
//! for demos, tests and benchmarks, and the embedded default when no API key is configured.

pub mod conversation;
pub mod live;
pub mod log;
pub mod probe;
pub mod server;
pub mod voice;

pub use conversation::MockOptions;
pub use log::MockLog;
pub use server::{MockHandle, serve, spawn_local};
