//! Telnyx: media streaming, Call Control v2 commands, webhooks and their Ed25519 signatures.
//! Pure except the REST client, like the Twilio module.

pub mod format;
pub mod media;
pub mod reorder;
pub mod rest;
pub mod signature;
pub mod webhook;
