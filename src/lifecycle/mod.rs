//! A call's lifecycle, decided in Rust once and shared by the store (which records it) and the
//! queue (which acts on it): the statuses and how they move (`status`), what an attempt's end
//! means for the call (`outcome`), which attempts are overdue a word from their carrier
//! (`sweep`), and the attempt those questions are about (`attempt`). Pure; neither `store` nor
//! `queue` is imported here, so they no longer import each other's rules.

pub mod attempt;
pub mod outcome;
pub mod pace;
pub mod retry;
pub mod status;
pub mod sweep;
pub mod transfer;

/// Unix time in milliseconds (the store's unit).
pub type Millis = i64;
