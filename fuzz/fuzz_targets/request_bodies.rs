//! `POST /v1/calls`, `PATCH /v1/calls/{id}` and `/v1/agents` bodies (any JSON).
#![no_main]

use libfuzzer_sys::fuzz_target;
use voxbridge::control::{agent_request, call_request};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let defaults = call_request::Defaults {
        provider: voxbridge::providers::carrier::Provider::Twilio,
        twilio_from: Some("+15557654321"),
        telnyx_from: None,
        call_window: None,
        model: "gpt-realtime",
        model_api: voxbridge::model::ModelApi::Realtime,
        now: "2026-12-07T12:00:00Z".parse().unwrap(),
        allow_private_targets: false,
        recordings: true,
    };
    let _ = call_request::parse(&body, &defaults);
    let _ = call_request::parse_patch(&body, defaults.now, false);
    let _ = agent_request::parse(&body, &defaults);
    let _ = call_request::with_agent(&body, body.as_object());
});
