//! voxbridge: one always-on binary that puts an AI voice model on the phone.
//!
//! Map (read in this order):
//! - [`media`]: pure audio — G.711, L16, resampling, rings, reframing, transcoding.
//! - [`providers`]: carriers' wire formats and sans-IO sessions (Twilio), TwiML, signatures, REST.
//! - [`model`]: the model seam — neutral commands and events, the tool registry, and its two
//!   protocols: OpenAI Realtime ([`model::realtime`]) and GPT-Live ([`model::live`]).
//! - [`call`]: the bridge — sans-IO core, playback/barge-in, the driver task, admission.
//! - [`control`]: axum routes; [`app`]: wiring and graceful drain; [`config`]; [`telemetry`].
//! - [`fixture`], [`replay`], [`mock_realtime`]: the developers' loop.
//! - [`queue`], [`store`], [`webhooks`]: the control plane — policy, SQL, events to the user's app.
//! - [`wire_json`]: serde helpers shared by the wire modules.

pub mod analysis;
pub mod app;
pub mod call;
pub mod config;
pub mod connections;
pub mod control;
pub mod doctor;
pub mod fixture;
pub mod lifecycle;
pub mod media;
pub mod mock_realtime;
pub mod model;
pub mod pricing;
pub mod probe;
pub mod providers;
pub mod queue;
pub mod recording;
pub mod replay;
pub mod store;
pub mod telemetry;
pub mod webhooks;
pub mod wire_json;

/// Installs rustls' ring provider as the process default (once; later calls are no-ops).
pub fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
