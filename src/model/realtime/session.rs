//! OpenAI Realtime (GA shape only), sans-IO: the `session.update` for a call, neutral commands
//! as client events, server events as neutral [`ModelEvent`]s (audio base64-decoded into a
//! reused buffer), the response lifecycle, tool calls collected until their response is done,
//! and errors classed fatal or not.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::json;

use super::wire::{ClientEvent, InputText, Item, ResponseParams, ServerEventRaw};
use crate::model::audio::append_event;
use crate::model::{
    HistoryLine, ModelApi, ModelCommand, ModelConfig, ModelError, ModelEvent, ModelProtocol, ToolCall, Usage,
};

/// Whether `model` takes a reasoning effort (`session.reasoning.effort`): the gpt-realtime-2
/// family does; earlier Realtime models refuse the field.
pub fn takes_reasoning(model: &str) -> bool {
    model.starts_with("gpt-realtime-2")
}

/// The `session.update` event for a call (GA shape, `session.type` set).
pub fn session_update(c: &ModelConfig) -> String {
    let transcription = match &c.transcription_model {
        Some(m) => json!({"model": m}),
        None => serde_json::Value::Null,
    };
    let mut session = json!({
        "type": "realtime",
        "model": c.model,
        "output_modalities": ["audio"],
        "instructions": c.instructions,
        "audio": {
            "input": {
                "format": c.audio.wire(),
                "transcription": transcription,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": c.vad_threshold,
                    "prefix_padding_ms": c.vad_prefix_ms,
                    "silence_duration_ms": c.vad_silence_ms,
                    "create_response": true,
                    "interrupt_response": true
                }
            },
            "output": {"format": c.audio.wire(), "voice": c.voice}
        },
        "tools": c.tools.functions(),
        "tool_choice": "auto"
    });
    if let Some(effort) = c.reasoning_effort.as_deref().filter(|_| takes_reasoning(&c.model)) {
        session["reasoning"] = json!({"effort": effort});
    }
    ClientEvent::SessionUpdate { session }.to_json()
}

/// Error codes after which the session cannot continue (protocols.md §4.5, reliability #3, #5, #6).
const FATAL_CODES: &[&str] = &[
    "session_expired",
    "invalid_api_key",
    "insufficient_quota",
    "beta_api_shape_disabled",
    "model_not_found",
    "session_not_found",
];

/// Classifies an error event: authentication and session-ending codes are fatal; invalid client
/// events (a cancel race, an active response) are not.
pub fn classify_error(kind: &str, code: &str) -> bool {
    FATAL_CODES.contains(&code) || matches!(kind, "authentication_error" | "permission_error")
}

/// One call's Realtime session.
#[derive(Debug)]
pub struct RealtimeSession {
    config: ModelConfig,
    active_response: Option<String>,
    tool_calls: Vec<ToolCall>,
    /// Items whose audio is not content part 0 (rare): truncation names the part.
    content_index: Vec<(String, u32)>,
    audio: Vec<u8>,
    /// Scratch for a received string handed out borrowed (a transcript, a response id).
    text: String,
}

impl RealtimeSession {
    pub fn new(config: ModelConfig) -> RealtimeSession {
        // Buffers grow to the largest delta once (800 bytes of G.711 or 4.8 KB of PCM per 100 ms),
        // not to a guess for every call.
        RealtimeSession {
            config,
            active_response: None,
            tool_calls: Vec::new(),
            content_index: Vec::new(),
            audio: Vec::new(),
            text: String::new(),
        }
    }

    fn transcript<'s>(
        &'s mut self,
        item: Option<&'s str>,
        transcript: Option<String>,
        assistant: bool,
    ) -> ModelEvent<'s> {
        let Some(item_id) = item else {
            return ModelEvent::Malformed;
        };
        self.text.clear();
        self.text.push_str(transcript.as_deref().unwrap_or_default());
        if assistant {
            ModelEvent::AssistantTranscript { item_id, text: &self.text }
        } else {
            ModelEvent::CallerTranscript { text: &self.text }
        }
    }
}

impl ModelProtocol for RealtimeSession {
    fn api(&self) -> ModelApi {
        ModelApi::Realtime
    }

    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn ready(&self) -> bool {
        true
    }

    fn active_response(&self) -> Option<&str> {
        self.active_response.as_deref()
    }

    fn full_duplex(&self) -> bool {
        false
    }

    fn encode(&mut self, cmd: ModelCommand<'_>, out: &mut dyn FnMut(String)) {
        match cmd {
            ModelCommand::Start { history } => {
                out(session_update(&self.config));
                for line in history {
                    out(history_item(line));
                }
            }
            ModelCommand::Audio(audio) => {
                out(append_event("input_audio_buffer.append", audio));
            }
            ModelCommand::Greet(greeting) => {
                let instructions =
                    format!("Start the call by saying exactly this greeting, then wait for the caller: \"{greeting}\"");
                out(response_create(Some(&instructions)));
            }
            ModelCommand::Dtmf(digit) => {
                let text = format!("[The caller pressed the key \"{digit}\" on their phone keypad.]");
                out(message("user", "input_text", &text));
            }
            ModelCommand::Note(text) => out(message("system", "input_text", text)),
            ModelCommand::Respond(instructions) => out(response_create(instructions)),
            ModelCommand::Cancel => out(ClientEvent::Cancel.to_json()),
            ModelCommand::TruncateAtHeard { item_id, heard_ms } => {
                let content_index =
                    self.content_index.iter().find(|(i, _)| i == item_id).map_or(0, |(_, index)| *index);
                out(ClientEvent::Truncate { item_id, content_index, audio_end_ms: heard_ms }.to_json());
            }
            ModelCommand::ToolResult { call_id, output } => {
                out(ClientEvent::ItemCreate { item: Item::FunctionCallOutput { call_id, output } }.to_json())
            }
            // Closing the socket ends a Realtime session; its responses were billed as they ended.
            ModelCommand::Close => {}
        }
    }

    fn receive<'s>(&'s mut self, text: &'s str) -> ModelEvent<'s> {
        let Ok(raw) = serde_json::from_str::<ServerEventRaw<'s>>(text) else {
            return ModelEvent::Malformed;
        };
        match raw.kind.as_ref() {
            "input_audio_buffer.speech_started" => ModelEvent::SpeechStarted,
            "input_audio_buffer.committed" => ModelEvent::TurnEnded,
            "response.created" => {
                let id = raw.response.map(|r| r.id).unwrap_or_default();
                self.active_response = Some(id);
                ModelEvent::ResponseCreated { response_id: self.active_response.as_deref().unwrap_or_default() }
            }
            "response.output_audio.delta" => {
                let (Some(resp), Some(item), Some(delta)) = (raw.response_id, raw.item_id, raw.delta) else {
                    return ModelEvent::Malformed;
                };
                self.audio.clear();
                if B64.decode_vec(delta.as_bytes(), &mut self.audio).is_err() {
                    return ModelEvent::Malformed;
                }
                let (Some(resp), Some(item)) = (frame_str(Some(resp)), frame_str(Some(item))) else {
                    return ModelEvent::Malformed;
                };
                match raw.content_index.unwrap_or(0) {
                    0 => {}
                    index => {
                        if !self.content_index.iter().any(|(i, _)| i == item) {
                            self.content_index.push((item.to_string(), index));
                        }
                    }
                }
                ModelEvent::AudioDelta { response_id: resp, item_id: item, audio: &self.audio, quiet_ms: 0 }
            }
            "response.output_audio.done" => match frame_str(raw.response_id) {
                Some(r) => {
                    // The answer's audio is over: its decode buffer is not kept between answers.
                    self.audio = Vec::new();
                    ModelEvent::AudioDone { response_id: r }
                }
                None => ModelEvent::Malformed,
            },
            "response.output_audio_transcript.done" => self.transcript(frame_str(raw.item_id), raw.transcript, true),
            "conversation.item.input_audio_transcription.completed" => {
                self.transcript(frame_str(raw.item_id), raw.transcript, false)
            }
            "response.function_call_arguments.done" => {
                self.tool_calls.push(ToolCall {
                    call_id: raw.call_id.unwrap_or_default(),
                    name: raw.name.unwrap_or_default(),
                    arguments: raw.arguments.unwrap_or_default(),
                });
                ModelEvent::Other
            }
            "response.done" => {
                let response = raw.response.unwrap_or_default();
                if self.active_response.as_deref() == Some(response.id.as_str()) {
                    self.active_response = None;
                }
                self.content_index.clear();
                let status = match response.status.as_str() {
                    "completed" => "completed",
                    "cancelled" => "cancelled",
                    "incomplete" => "incomplete",
                    "failed" => "failed",
                    _ => "unknown",
                };
                // The id is stored so the event can borrow it for the caller's bookkeeping.
                self.text.clear();
                self.text.push_str(&response.id);
                let usage = response.usage.as_ref().map(Usage::from_response).unwrap_or_default();
                ModelEvent::ResponseDone {
                    response_id: &self.text,
                    status,
                    tool_calls: std::mem::take(&mut self.tool_calls),
                    usage,
                }
            }
            "error" => {
                let e = raw.error.unwrap_or_default();
                let code = e.code.unwrap_or_default();
                ModelEvent::Error(ModelError {
                    fatal: classify_error(&e.kind, &code),
                    kind: e.kind,
                    code,
                    message: e.message,
                })
            }
            _ => ModelEvent::Other,
        }
    }
}

/// A line of the conversation so far, for a new session after the old one was lost: the
/// caller's words as a user message, the AI's as an assistant message (GA `output_text`).
fn history_item(line: &HistoryLine<'_>) -> String {
    if line.from_caller {
        message("user", "input_text", line.text)
    } else {
        message("assistant", "output_text", line.text)
    }
}

fn message(role: &str, kind: &'static str, text: &str) -> String {
    ClientEvent::ItemCreate { item: Item::Message { role, content: [InputText { kind, text }] } }.to_json()
}

/// Asks for a response, optionally with one-off instructions.
fn response_create(instructions: Option<&str>) -> String {
    ClientEvent::ResponseCreate { response: instructions.map(|i| ResponseParams { instructions: i }) }.to_json()
}

/// An id borrowed from the frame. Ids never contain JSON escapes, so serde hands them back
/// borrowed; an escaped (owned) id is treated as malformed rather than copied.
fn frame_str(s: Option<Cow<'_, str>>) -> Option<&str> {
    match s? {
        Cow::Borrowed(b) => Some(b),
        Cow::Owned(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::{END_CALL_TOOL, ModelAudio};

    fn config(audio: ModelAudio) -> ModelConfig {
        ModelConfig {
            instructions: "Be brief.".into(),
            greeting: Some("Hello!".into()),
            ..ModelConfig::defaults(ModelApi::Realtime, "gpt-realtime", audio)
        }
    }

    fn encode(s: &mut RealtimeSession, cmd: ModelCommand<'_>) -> Vec<String> {
        let mut out = Vec::new();
        s.encode(cmd, &mut |f| out.push(f));
        out
    }

    fn one(s: &mut RealtimeSession, cmd: ModelCommand<'_>) -> String {
        let mut frames = encode(s, cmd);
        assert_eq!(frames.len(), 1);
        frames.remove(0)
    }

    #[test]
    fn reasoning_effort_is_sent_only_to_a_model_that_takes_one() {
        let session = |model: &str, effort: Option<&str>| {
            let c = ModelConfig {
                model: model.into(),
                reasoning_effort: effort.map(str::to_string),
                ..config(ModelAudio::Pcmu)
            };
            serde_json::from_str::<serde_json::Value>(&session_update(&c)).unwrap()["session"].clone()
        };
        assert_eq!(session("gpt-realtime-2", Some("high"))["reasoning"], json!({"effort": "high"}));
        assert!(session("gpt-realtime-2", None).get("reasoning").is_none(), "the model's default");
        assert!(session("gpt-realtime", Some("high")).get("reasoning").is_none(), "older models refuse it");
    }

    #[test]
    fn session_update_is_ga_shaped() {
        let v: serde_json::Value = serde_json::from_str(&session_update(&config(ModelAudio::Pcmu))).unwrap();
        assert_eq!(v["type"], "session.update");
        assert_eq!(v["session"]["type"], "realtime");
        assert_eq!(v["session"]["audio"]["input"]["format"]["type"], "audio/pcmu");
        assert_eq!(v["session"]["audio"]["output"]["voice"], "marin");
        assert_eq!(v["session"]["audio"]["input"]["turn_detection"]["type"], "server_vad");
        assert_eq!(v["session"]["audio"]["input"]["turn_detection"]["interrupt_response"], true);
        assert_eq!(v["session"]["tools"][0]["name"], END_CALL_TOOL);
        assert!(v["session"].get("modalities").is_none(), "beta field must not appear");
        let v: serde_json::Value = serde_json::from_str(&session_update(&config(ModelAudio::Pcm24k))).unwrap();
        assert_eq!(v["session"]["audio"]["output"]["format"], json!({"type":"audio/pcm","rate":24000}));
    }

    #[test]
    fn response_lifecycle_and_tool_calls() {
        let mut s = RealtimeSession::new(config(ModelAudio::Pcmu));
        let created = r#"{"type":"response.created","event_id":"e1","response":{"object":"realtime.response","id":"resp_1","status":"in_progress","output":[]}}"#;
        assert_eq!(s.receive(created), ModelEvent::ResponseCreated { response_id: "resp_1" });
        assert_eq!(s.active_response(), Some("resp_1"));
        let delta = r#"{"type":"response.output_audio.delta","event_id":"e2","response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":0,"delta":"/38A"}"#;
        assert_eq!(
            s.receive(delta),
            ModelEvent::AudioDelta {
                response_id: "resp_1",
                item_id: "item_1",
                audio: &[0xFF, 0x7F, 0x00],
                quiet_ms: 0
            }
        );
        let call = r#"{"type":"response.function_call_arguments.done","event_id":"e3","response_id":"resp_1","item_id":"item_2","output_index":1,"call_id":"call_9","name":"end_call","arguments":"{}"}"#;
        assert_eq!(s.receive(call), ModelEvent::Other);
        let done =
            r#"{"type":"response.done","event_id":"e4","response":{"id":"resp_1","status":"completed","output":[]}}"#;
        let ModelEvent::ResponseDone { response_id, status, tool_calls, usage } = s.receive(done) else { panic!() };
        assert!(usage.is_zero(), "no usage reported");
        assert_eq!((response_id, status), ("resp_1", "completed"));
        assert_eq!(
            tool_calls,
            vec![ToolCall { call_id: "call_9".into(), name: "end_call".into(), arguments: "{}".into() }]
        );
        assert_eq!(s.active_response(), None);
    }

    #[test]
    fn errors_are_classified() {
        let mut s = RealtimeSession::new(config(ModelAudio::Pcmu));
        let e = r#"{"type":"error","event_id":"e","error":{"type":"invalid_request_error","code":"response_cancel_not_active","message":"no active response","param":null,"event_id":null}}"#;
        let ModelEvent::Error(err) = s.receive(e) else { panic!() };
        assert!(!err.fatal);
        let e = r#"{"type":"error","event_id":"e","error":{"type":"invalid_request_error","code":"session_expired","message":"over"}}"#;
        let ModelEvent::Error(err) = s.receive(e) else { panic!() };
        assert!(err.fatal);
        assert!(classify_error("authentication_error", ""));
        assert_eq!(s.receive("nope"), ModelEvent::Malformed);
        assert_eq!(s.receive(r#"{"type":"rate_limits.updated","rate_limits":[]}"#), ModelEvent::Other);
    }

    #[test]
    fn truncation_names_the_content_part_the_audio_came_in() {
        let mut s = RealtimeSession::new(config(ModelAudio::Pcmu));
        let delta = r#"{"type":"response.output_audio.delta","event_id":"e","response_id":"r","item_id":"item_7","output_index":0,"content_index":2,"delta":"AA=="}"#;
        assert!(matches!(s.receive(delta), ModelEvent::AudioDelta { item_id: "item_7", .. }));
        let t = one(&mut s, ModelCommand::TruncateAtHeard { item_id: "item_7", heard_ms: 40 });
        assert_eq!(
            t,
            r#"{"type":"conversation.item.truncate","item_id":"item_7","content_index":2,"audio_end_ms":40}"#
        );
        let t = one(&mut s, ModelCommand::TruncateAtHeard { item_id: "item_8", heard_ms: 40 });
        assert!(t.contains(r#""content_index":0"#));
    }

    #[test]
    fn client_event_builders() {
        let mut s = RealtimeSession::new(config(ModelAudio::Pcmu));
        assert_eq!(
            one(&mut s, ModelCommand::Audio(&[0xFF, 0xFF])),
            r#"{"type":"input_audio_buffer.append","audio":"//8="}"#
        );
        let v: serde_json::Value = serde_json::from_str(&one(&mut s, ModelCommand::Dtmf('5'))).unwrap();
        assert!(v["item"]["content"][0]["text"].as_str().unwrap().contains("\"5\""));
        let v: serde_json::Value = serde_json::from_str(&one(&mut s, ModelCommand::Greet("Hi there"))).unwrap();
        assert!(v["response"]["instructions"].as_str().unwrap().contains("Hi there"));
        let history =
            [HistoryLine { from_caller: true, text: "Tuesday?" }, HistoryLine { from_caller: false, text: "Sure." }];
        let frames = encode(&mut s, ModelCommand::Start { history: &history });
        assert_eq!(frames.len(), 3, "the session, then the conversation so far");
        assert_eq!(
            frames[1],
            r#"{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"Tuesday?"}]}}"#
        );
        let v: serde_json::Value = serde_json::from_str(&frames[2]).unwrap();
        assert_eq!(
            (v["item"]["role"].as_str(), v["item"]["content"][0]["type"].as_str()),
            (Some("assistant"), Some("output_text"))
        );
    }
}

#[cfg(test)]
mod never_panics {
    use super::*;
    use crate::model::ModelAudio;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the model (or something pretending to be it) sends, parsing never panics.
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,400}", prefix in prop_oneof![Just(""), Just(r#"{"type":"response.output_audio.delta","response_id":"r","item_id":"i","delta":""#), Just(r#"{"type":"response.done","response":"#), Just(r#"{"type":"error","error":"#)]) {
            let mut s = RealtimeSession::new(ModelConfig::defaults(ModelApi::Realtime, "gpt-realtime", ModelAudio::Pcmu));
            let joined = format!("{prefix}{text}");
            let _ = s.receive(&joined);
        }
    }
}
