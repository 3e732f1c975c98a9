//! Telnyx: webhook signatures now; media streaming, Call Control and webhooks come with issue 4.
//! Pure, like the Twilio module.

pub mod media;
pub mod reorder;
pub mod signature;
