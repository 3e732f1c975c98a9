//! Every parser that takes outside bytes, fed arbitrary input (issue 27, row 13): text, and JSON
//! shaped like what each expects with its values scrambled. None may panic; each must answer
//! (an error or an ignored frame is fine). Property tests under `cargo test` (a few thousand
//! inputs per parser per run); the same parsers are cargo-fuzz targets for long runs
//! (`fuzz/fuzz_targets/`, `scripts/fuzz.sh`).

use proptest::prelude::*;
use serde_json::{Value, json};

/// Arbitrary JSON, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        // Values the parsers look for, in the wrong places.
        prop_oneof![
            Just("media"),
            Just("start"),
            Just("stop"),
            Just("mark"),
            Just("dtmf"),
            Just("AAAA"),
            Just("+15551234567")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    "[a-z_]{1,12}",
                    Just("event".to_string()),
                    Just("type".to_string()),
                    Just("media".to_string()),
                    Just("payload".to_string()),
                    Just("data".to_string()),
                    Just("delta".to_string()),
                    Just("response".to_string()),
                    Just("to".to_string()),
                    Just("tools".to_string()),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Arbitrary text, or arbitrary JSON as text.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,200}", any_json().prop_map(|v| v.to_string())]
}

/// A frame of `kind` (`event` or `type`) naming one of `names`, with scrambled fields.
fn shaped(kind: &'static str, names: &'static [&'static str]) -> impl Strategy<Value = String> {
    (prop::sample::select(names), any_json()).prop_map(move |(name, body)| {
        let mut v = match body {
            Value::Object(m) => Value::Object(m),
            other => json!({"x": other}),
        };
        v[kind] = json!(name);
        v.to_string()
    })
}

const CARRIER_EVENTS: &[&str] = &["connected", "start", "media", "mark", "dtmf", "stop", "error"];
const MODEL_EVENTS: &[&str] = &[
    "session.created",
    "session.updated",
    "response.created",
    "response.output_audio.delta",
    "response.output_audio.done",
    "response.done",
    "response.function_call_arguments.done",
    "input_audio_buffer.speech_started",
    "conversation.item.input_audio_transcription.completed",
    "response.output_audio_transcript.done",
    "error",
    "session.output_audio.delta",
    "session.output_transcript.delta",
    "response.event",
    "session.delegation.created",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn carrier_media_messages(text in prop_oneof![any_text(), shaped("event", CARRIER_EVENTS)]) {
        use voxbridge::providers::CarrierSession;
        let mut twilio = voxbridge::providers::twilio::TwilioSession::new();
        let _ = twilio.receive(&text);
        let mut telnyx = voxbridge::providers::telnyx::media::TelnyxSession::new();
        let _ = CarrierSession::receive(&mut telnyx, &text);
    }

    #[test]
    fn model_server_events(text in prop_oneof![any_text(), shaped("type", MODEL_EVENTS)]) {
        for api in [voxbridge::model::ModelApi::Realtime, voxbridge::model::ModelApi::Live] {
            let config = voxbridge::model::ModelConfig::defaults(api, "gpt-realtime", voxbridge::model::ModelAudio::Pcmu);
            let mut model = voxbridge::model::open(config);
            let _ = model.receive(&text);
        }
    }

    #[test]
    fn webhook_bodies_and_signatures(body in any_text(), header in ".{0,120}", ts in "[0-9]{0,12}") {
        let _ = voxbridge::providers::telnyx::webhook::parse(body.as_bytes());
        let key = voxbridge::providers::telnyx::signature::PublicKey::from_base64(
            &voxbridge::providers::telnyx::signature::public_key_base64(&[7; 32]),
        )
        .unwrap();
        prop_assert!(key.verify(Some(&header), Some(&ts), body.as_bytes(), 1_765_000_000).is_err());
        let params = vec![("Body".to_string(), body.clone())];
        prop_assert!(!voxbridge::providers::twilio::signature::validate("tok", "https://x.test/v", &params, &header));
        prop_assert!(!voxbridge::webhooks::signing::verify("whsec", &header, body.as_bytes(), 1_765_000_000, 300));
        let _ = voxbridge::control::inbound::parse_answer(body.as_bytes());
    }

    #[test]
    fn stream_tokens(token in ".{0,100}", call_id in ".{0,30}") {
        let tokens = voxbridge::providers::stream_token::StreamTokens::new([3; 32]);
        prop_assert!(tokens.check(&token, &call_id, 1_765_000_000_000).is_none());
    }

    #[test]
    fn call_and_agent_bodies(body in any_json()) {
        let defaults = voxbridge::control::call_request::Defaults {
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
        let _ = voxbridge::control::call_request::parse(&body, &defaults);
        let _ = voxbridge::control::call_request::parse_patch(&body, defaults.now, false);
        let _ = voxbridge::control::agent_request::parse(&body, &defaults);
        let _ = voxbridge::control::call_request::with_agent(&body, body.as_object());
    }

    #[test]
    fn user_json_schemas(schema in any_json(), arguments in any_text()) {
        if let Ok(s) = voxbridge::model::ObjectSchema::new(schema) {
            let _ = s.check(&arguments);
        }
    }

    #[test]
    fn templates_scripts_and_fixture_lines(text in any_text(), vars in any_json()) {
        let _ = voxbridge::control::template::keys(&text);
        let empty = serde_json::Map::new();
        let _ = voxbridge::control::template::fill(&text, vars.as_object().unwrap_or(&empty));
        let _ = voxbridge::mock_realtime::script::Script::parse(&text);
        let path = std::env::temp_dir().join(format!("vb-fuzz-{}.jsonl", std::process::id()));
        std::fs::write(&path, format!("{text}\n{}\n", json!({"t_ms": 0, "msg": vars}))).unwrap();
        let _ = voxbridge::fixture::Fixture::read(&path);
    }
}
