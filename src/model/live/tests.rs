//! The GPT-Live session against the shapes of `openai.types.live` (3.57).

use serde_json::{Value, json};

use super::*;
use crate::media::transcode::encode_samples;
use crate::model::{ModelAudio, ModelCommand};

fn session(audio: ModelAudio) -> LiveSession {
    let config = ModelConfig {
        instructions: "Be brief.".into(),
        voice: "cedar".into(),
        reasoning_effort: Some("low".into()),
        ..ModelConfig::defaults(ModelApi::Live, "gpt-live-1.1", audio)
    };
    LiveSession::new(config)
}

fn encode(s: &mut LiveSession, cmd: ModelCommand<'_>) -> Vec<Value> {
    let mut out = Vec::new();
    s.encode(cmd, &mut |f| out.push(serde_json::from_str(&f).unwrap()));
    out
}

fn delta(fmt: ModelAudio, samples: &[i16]) -> String {
    let mut bytes = Vec::new();
    encode_samples(fmt.format().codec, samples, &mut bytes);
    json!({"type": "session.output_audio.delta", "delta": B64.encode(bytes)}).to_string()
}

/// 100 ms at 8 kHz: loud (a square wave) or silent.
fn chunk(loud: bool) -> Vec<i16> {
    (0..800)
        .map(|i| {
            if !loud {
                0
            } else if i % 2 == 0 {
                4000
            } else {
                -4000
            }
        })
        .collect()
}

#[test]
fn session_start_has_the_sdk_shape() {
    let mut s = session(ModelAudio::Pcmu);
    let history =
        [HistoryLine { from_caller: true, text: "Tuesday?" }, HistoryLine { from_caller: false, text: "Sure." }];
    let start = encode(&mut s, ModelCommand::Start { history: &history });
    assert_eq!(start.len(), 1);
    let v = &start[0];
    assert_eq!(v["type"], "session.start");
    let session = &v["session"];
    assert_eq!(session["model"], "gpt-live-1.1");
    assert_eq!(session["instructions"], "Be brief.");
    assert_eq!(session["audio"], json!({"format": {"type": "audio/pcmu", "rate": 8000}, "output": {"voice": "cedar"}}));
    let d = &session["delegation"];
    assert_eq!(d["type"], "responses");
    assert_eq!(d["responses"]["model"], crate::model::DEFAULT_LIVE_BACKEND_MODEL);
    assert_eq!(d["responses"]["reasoning"], json!({"effort": "low"}));
    assert_eq!(d["responses"]["tools"][0]["type"], "function");
    assert_eq!(d["responses"]["tools"][0]["name"], "end_call");
    assert_eq!(
        session["input"][0],
        json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Tuesday?"}]})
    );
    assert_eq!(session["input"][1]["content"][0]["type"], "output_text");
    // Only fields `SessionConfig` declares: the service rejects unknown ones.
    let known =
        ["model", "audio", "client", "delegation", "input", "instructions", "safety_identifier", "store", "triggers"];
    for k in session.as_object().unwrap().keys() {
        assert!(known.contains(&k.as_str()), "unknown session field {k}");
    }
    let pcm = session_for(ModelAudio::Pcm24k);
    assert_eq!(pcm["session"]["audio"]["format"], json!({"type": "audio/pcm", "rate": 24000}));
    assert!(pcm["session"].get("input").is_none(), "no history, no input");
}

fn session_for(audio: ModelAudio) -> Value {
    serde_json::from_str(&session(audio).session_start(&[])).unwrap()
}

#[test]
fn commands_have_the_sdk_shapes_and_waiting_for_started() {
    let mut s = session(ModelAudio::Pcmu);
    assert!(!s.ready(), "nothing but session.start before session.started");
    assert_eq!(s.receive(r#"{"type":"session.started","event_id":"e1","session":{"id":"sess_1","expires_at":0,"model":"gpt-live-1.1","status":"active"}}"#), ModelEvent::Started);
    assert!(s.ready());
    assert_eq!(
        encode(&mut s, ModelCommand::Audio(&[0xFF, 0xFF])),
        vec![json!({"type": "session.input_audio.append", "audio": "//8="})]
    );
    let greet = encode(&mut s, ModelCommand::Greet("Hi there"));
    assert_eq!(greet[0]["type"], "session.instructions.append");
    assert_eq!(greet[1], json!({"type": "session.commentary.append", "content": "Hi there", "delegation_id": null}));
    assert_eq!(
        encode(&mut s, ModelCommand::Note("wrap up"))[0],
        json!({"type": "session.thinking.append", "content": "wrap up", "delegation_id": null})
    );
    assert_eq!(encode(&mut s, ModelCommand::Respond(None)), vec![json!({"type": "response.create"})]);
    assert_eq!(
        encode(&mut s, ModelCommand::ToolResult { call_id: "call_1", output: "{}" }),
        vec![
            json!({"type": "response.item.create", "item": {"type": "function_call_output", "call_id": "call_1", "output": "{}"}})
        ]
    );
    assert!(encode(&mut s, ModelCommand::Cancel).is_empty(), "no client event cancels speech");
    assert!(encode(&mut s, ModelCommand::TruncateAtHeard { item_id: "x", heard_ms: 10 }).is_empty());
    assert_eq!(s.active_response(), None);
    assert!(s.full_duplex());
}

#[test]
fn output_is_cut_into_turns_by_its_level() {
    let mut s = session(ModelAudio::Pcmu);
    let (loud, quiet) = (delta(ModelAudio::Pcmu, &chunk(true)), delta(ModelAudio::Pcmu, &chunk(false)));
    assert_eq!(s.receive(&quiet), ModelEvent::Other, "silence between turns is not forwarded");
    let ModelEvent::AudioDelta { response_id, audio, quiet_ms, .. } = s.receive(&loud) else { panic!() };
    assert_eq!((response_id, audio.len(), quiet_ms), ("live_turn_1", 800, 0));
    for expected in [100, 200, 300] {
        let ModelEvent::AudioDelta { quiet_ms, .. } = s.receive(&quiet) else { panic!() };
        assert_eq!(quiet_ms, expected, "quiet inside a turn is forwarded and counted");
    }
    let ModelEvent::ResponseDone { response_id, tool_calls, .. } = s.receive(&quiet) else { panic!() };
    assert_eq!((response_id, tool_calls.len()), ("live_turn_1", 0));
    assert_eq!(s.receive(&quiet), ModelEvent::Other);
    assert!(matches!(s.receive(&loud), ModelEvent::AudioDelta { response_id: "live_turn_2", .. }));
    // Half a chunk of sound, then quiet: the delta says how long the output has been quiet.
    let mut half = chunk(true);
    half[400..].fill(0);
    let ModelEvent::AudioDelta { quiet_ms, .. } = s.receive(&delta(ModelAudio::Pcmu, &half)) else { panic!() };
    assert_eq!(quiet_ms, 50);
}

#[test]
fn backend_function_calls_come_with_the_response_and_its_tokens() {
    let mut s = session(ModelAudio::Pcmu);
    let item = json!({"type": "response.event", "event_id": "e2", "delegation_id": "del_1", "event": {"type": "response.output_item.done", "output_index": 0, "sequence_number": 3, "item": {"type": "function_call", "id": "fc_1", "call_id": "call_9", "name": "end_call", "arguments": "{\"reason\":\"done\"}", "status": "completed"}}});
    assert_eq!(s.receive(&item.to_string()), ModelEvent::Other);
    let done = json!({"type": "response.event", "event_id": "e3", "event": {"type": "response.completed", "sequence_number": 4, "response": {"id": "resp_b1", "status": "completed", "usage": {"input_tokens": 120, "output_tokens": 9, "total_tokens": 129}}}});
    let done = done.to_string();
    let ModelEvent::ResponseDone { response_id, status, tool_calls, usage } = s.receive(&done) else { panic!() };
    assert_eq!((response_id, status), ("resp_b1", "completed"));
    assert_eq!(
        tool_calls,
        vec![ToolCall { call_id: "call_9".into(), name: "end_call".into(), arguments: "{\"reason\":\"done\"}".into() }]
    );
    assert_eq!((usage.input_text_tokens, usage.output_text_tokens), (120, 9));
}

#[test]
fn usage_reports_running_seconds_as_increments() {
    let mut s = session(ModelAudio::Pcmu);
    let usage =
        |secs: f64| json!({"type": "session.usage.updated", "event_id": "e", "usage": {"seconds": secs}}).to_string();
    assert_eq!(s.receive(&usage(60.0)), ModelEvent::Usage(Usage { live_seconds: 60.0, ..Usage::default() }));
    assert_eq!(s.receive(&usage(60.0)), ModelEvent::Other);
    let closed = json!({"type": "session.closed", "event_id": "e", "reason": "close_requested", "session": {"id": "s", "expires_at": 0, "model": "gpt-live-1.1", "status": "active"}, "usage": {"seconds": 75.5}});
    assert_eq!(s.receive(&closed.to_string()), ModelEvent::Usage(Usage { live_seconds: 15.5, ..Usage::default() }));
}

#[test]
fn transcripts_and_errors() {
    let mut s = session(ModelAudio::Pcmu);
    let t = json!({"type": "session.input_transcript.delta", "event_id": "e", "delta": "hello ", "start_ms": 10, "end_ms": 400});
    assert_eq!(s.receive(&t.to_string()), ModelEvent::TranscriptDelta { from_caller: true, text: "hello " });
    let t = json!({"type": "session.output_transcript.delta", "event_id": "e", "delta": "Hi!", "start_ms": 500, "end_ms": 900});
    assert_eq!(s.receive(&t.to_string()), ModelEvent::TranscriptDelta { from_caller: false, text: "Hi!" });
    let e = json!({"type": "error", "event_id": "e", "error": {"type": "invalid_request_error", "code": "unknown_parameter", "message": "Unknown parameter: 'session.foo'."}});
    let ModelEvent::Error(err) = s.receive(&e.to_string()) else { panic!() };
    assert!(err.fatal, "a refused session.start ends the session");
    s.receive(r#"{"type":"session.started","event_id":"e1","session":{}}"#);
    let ModelEvent::Error(err) = s.receive(&e.to_string()) else { panic!() };
    assert!(!err.fatal, "a refused command in a running session is not fatal");
    assert_eq!(s.receive("not json"), ModelEvent::Malformed);
    assert_eq!(s.receive(r#"{"type":"info","event_id":"e","code":"x","message":"y"}"#), ModelEvent::Other);
}
