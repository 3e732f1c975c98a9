//! The bridge: one call = one driver task over a sans-IO core that knows both the carrier
//! and the model; plus admission, stream tokens, transcripts and recording.

pub mod admission;
pub mod bridge;
pub mod core;
pub mod downlink;
pub mod driver;
pub mod end_reason;
pub mod filler;
pub mod model_health;
pub mod playback;
pub mod prewarm;
pub mod transcript;
mod writer;
