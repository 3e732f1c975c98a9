//! Twilio: Media Streams wire format and session, TwiML, request signatures and REST.
//! Everything but `rest` is pure; `rest` is the one file here that does I/O.

pub mod rest;
pub mod session;
pub mod signature;
pub mod status;
pub mod twiml;
pub mod wire;

pub use session::TwilioSession;
