//! Probe frames: audio that says which frame it is, so a replay that plays both the caller and
//! the model can time every 20 ms frame one way, end to end, on one clock — what the server's
//! own histograms cannot see (audio it holds back before measuring) — and count the frames that
//! never arrived. Used by `voxbridge replay --serve-model` and the mock model.

pub mod book;
pub mod code;
pub mod signal;
pub mod tally;

pub use book::{Book, ModelEar, ModelSide};
pub use code::FrameId;
pub use signal::{Decoder, Level};
pub use tally::{Lost, OneWayCall};

#[cfg(test)]
mod tests;
