//! voxbridge: an AI voice model on the phone.
pub mod call;
pub mod config;
pub mod fixture;
pub mod media;
pub mod providers;
pub mod realtime;
pub mod telemetry;
pub mod wire_json;
