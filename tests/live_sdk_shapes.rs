//! Every GPT-Live event the bridge sends (each neutral command, encoded) and every one the mock
//! model sends in a scripted conversation (so every one the bridge parses in the end-to-end
//! tests) is checked against the vendor's SDK: the `openai` Python package's `openai.types.live`
//! models (`scripts/check_live_events.py`). `.ci/run` installs the SDK; without it (a developer
//! machine) the test says so and passes, under CI it fails.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use voxbridge::media::g711;
use voxbridge::mock_realtime::live::LiveMock;
use voxbridge::mock_realtime::{Conversation, MockOptions};
use voxbridge::model::live::LiveSession;
use voxbridge::model::{HistoryLine, ModelApi, ModelAudio, ModelCommand, ModelConfig, ModelProtocol};

fn client_events(audio: ModelAudio) -> Vec<String> {
    let config = ModelConfig {
        reasoning_effort: Some("low".into()),
        greeting: Some("Hello!".into()),
        ..ModelConfig::defaults(ModelApi::Live, "gpt-live-1.1", audio)
    };
    let mut s = LiveSession::new(config);
    let history =
        [HistoryLine { from_caller: true, text: "Is Tuesday free?" }, HistoryLine { from_caller: false, text: "Yes." }];
    let mut out = Vec::new();
    for cmd in [
        ModelCommand::Start { history: &[] },
        ModelCommand::Start { history: &history },
        ModelCommand::Audio(&[0xFF; 160]),
        ModelCommand::Greet("Hello! How can I help?"),
        ModelCommand::Dtmf('5'),
        ModelCommand::Note("Wrap up now."),
        ModelCommand::Respond(Some("Say a brief, polite goodbye.")),
        ModelCommand::Respond(None),
        ModelCommand::ToolResult { call_id: "call_1", output: r#"{"ok":true}"# },
        ModelCommand::Close,
    ] {
        s.encode(cmd, &mut |f| out.push(f));
    }
    out
}

/// A scripted conversation with the mock: start, greeting, caller speech, the backend's
/// `end_call`, its output, the goodbye, a minute's usage, the close.
fn server_events() -> Vec<String> {
    let opts = MockOptions { end_call_after: Some(1), ..MockOptions::default() };
    let mut mock = LiveMock::new(opts, Arc::default());
    let t0 = Instant::now();
    let mut out = Vec::new();
    let mut client = client_events(ModelAudio::Pcmu).into_iter();
    mock.on_client_text(&client.next().unwrap(), t0, &mut out);
    mock.on_client_text(
        r#"{"type":"session.commentary.append","content":"Hello!","delegation_id":null}"#,
        t0,
        &mut out,
    );
    mock.poll(t0 + Duration::from_millis(300), &mut out);
    let tone: Vec<u8> = (0..800).map(|i| g711::ulaw_encode(if i % 2 == 0 { 6000 } else { -6000 })).collect();
    let append = |bytes: &[u8]| {
        use base64::Engine;
        json!({"type": "session.input_audio.append", "audio": base64::engine::general_purpose::STANDARD.encode(bytes)})
            .to_string()
    };
    mock.on_client_text(&append(&tone), t0, &mut out);
    mock.on_client_text(&append(&[0xFF; 8000]), t0, &mut out);
    mock.on_client_text(
        r#"{"type":"response.item.create","item":{"type":"function_call_output","call_id":"call_0001","output":"{}"}}"#,
        t0,
        &mut out,
    );
    mock.on_client_text(r#"{"type":"response.create"}"#, t0, &mut out);
    mock.on_client_text(r#"{"type":"session.no_such_event"}"#, t0, &mut out);
    mock.poll(t0 + Duration::from_secs(61), &mut out);
    mock.on_client_text(r#"{"type":"session.close"}"#, t0 + Duration::from_secs(61), &mut out);
    out
}

#[test]
fn every_live_event_matches_the_vendors_sdk() {
    let mut lines = Vec::new();
    for audio in [ModelAudio::Pcmu, ModelAudio::Pcma, ModelAudio::Pcm24k] {
        for e in client_events(audio) {
            lines.push(json!({"dir": "client", "event": serde_json::from_str::<Value>(&e).unwrap()}));
        }
    }
    let server = server_events();
    let kinds: Vec<String> = server
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap()["type"].as_str().unwrap().to_string())
        .collect();
    for kind in [
        "session.started",
        "session.output_audio.delta",
        "session.output_transcript.delta",
        "session.input_transcript.delta",
        "session.delegation.created",
        "response.event",
        "session.usage.updated",
        "session.closed",
        "error",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "the script covers {kind}: {kinds:?}");
    }
    for e in server {
        lines.push(json!({"dir": "server", "event": serde_json::from_str::<Value>(&e).unwrap()}));
    }
    let path = std::env::temp_dir().join(format!("vb-live-events-{}.jsonl", std::process::id()));
    std::fs::write(&path, lines.iter().map(|l| l.to_string() + "\n").collect::<String>()).unwrap();
    let Some(out) = common::python_oracle("check_live_events.py", &path, "openai") else { return };
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}");
    assert!(
        out.status.success(),
        "events that do not match the SDK:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
