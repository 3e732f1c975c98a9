//! Pure audio: codecs, resampling, rings and reframing for one call's two directions.
//! No async, no I/O and no allocation per frame: every buffer is sized when a call starts.

pub mod dtmf;
pub mod g711;
pub mod opus;
pub mod pcm16;
pub mod reframe;
pub mod resample;
pub mod ring;
pub mod time;
pub mod transcode;
pub mod vad;

pub use time::SampleRate;
pub use transcode::{Codec, InboundPath, OutboundPath, StreamFormat};
