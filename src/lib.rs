//! voxbridge: an AI voice model on the phone.
pub mod media;
pub mod providers;
pub mod realtime;
pub mod wire_json;
