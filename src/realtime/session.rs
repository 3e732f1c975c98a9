//! Sans-IO model session: the GA `session.update` for a call, server events turned into
//! typed [`ModelEvent`]s (audio base64-decoded into a reused buffer), the response lifecycle,
//! tool calls collected until their response is done, and errors classed fatal or not.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::json;

use super::wire::{ClientEvent, InputText, Item, ResponseParams, ServerEventRaw};
use crate::media::StreamFormat;

/// The name of the built-in tool that ends the call.
pub const END_CALL_TOOL: &str = "end_call";

/// The model's audio format for both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelAudio {
    /// `audio/pcmu`: G.711 μ-law 8 kHz, passed through from Twilio untouched.
    Pcmu,
    /// `audio/pcma`: G.711 A-law 8 kHz.
    Pcma,
    /// `audio/pcm` at 24 kHz, 16-bit little-endian.
    Pcm24k,
}

impl ModelAudio {
    pub fn format(self) -> StreamFormat {
        match self {
            ModelAudio::Pcmu => StreamFormat::PCMU_8K,
            ModelAudio::Pcma => StreamFormat::PCMA_8K,
            ModelAudio::Pcm24k => StreamFormat::PCM_24K,
        }
    }

    fn wire(self) -> serde_json::Value {
        match self {
            ModelAudio::Pcmu => json!({"type": "audio/pcmu"}),
            ModelAudio::Pcma => json!({"type": "audio/pcma"}),
            ModelAudio::Pcm24k => json!({"type": "audio/pcm", "rate": 24000}),
        }
    }

    /// The format for a call whose carrier speaks `carrier`: in g711 mode PCMU and PCMA pass
    /// straight through; every other carrier format is decoded and resampled to 24 kHz PCM.
    pub fn for_carrier(self, carrier: StreamFormat) -> ModelAudio {
        match (self, carrier) {
            (ModelAudio::Pcm24k, _) => ModelAudio::Pcm24k,
            (_, StreamFormat::PCMU_8K) => ModelAudio::Pcmu,
            (_, StreamFormat::PCMA_8K) => ModelAudio::Pcma,
            _ => ModelAudio::Pcm24k,
        }
    }

    /// Reads a session's `audio.input.format` object.
    pub fn from_wire(v: &serde_json::Value) -> Option<ModelAudio> {
        match v["type"].as_str()? {
            "audio/pcmu" => Some(ModelAudio::Pcmu),
            "audio/pcma" => Some(ModelAudio::Pcma),
            "audio/pcm" if v["rate"].as_u64().unwrap_or(24_000) == 24_000 => Some(ModelAudio::Pcm24k),
            _ => None,
        }
    }
}

/// Whether `model` takes a reasoning effort (`session.reasoning.effort`): the gpt-realtime-2
/// family does; earlier Realtime models refuse the field.
pub fn takes_reasoning(model: &str) -> bool {
    model.starts_with("gpt-realtime-2")
}

/// Everything the model needs to know about one call.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub model: String,
    pub instructions: String,
    pub voice: String,
    /// When set, the AI speaks first with this greeting.
    pub greeting: Option<String>,
    pub audio: ModelAudio,
    /// Input transcription model (`None` turns caller transcripts off).
    pub transcription_model: Option<String>,
    pub vad_threshold: f32,
    pub vad_silence_ms: u32,
    pub vad_prefix_ms: u32,
    /// `session.reasoning.effort`, sent only to a model that takes one ([`takes_reasoning`]).
    pub reasoning_effort: Option<String>,
}

impl ModelConfig {
    /// The `session.update` event for this call (GA shape, `session.type` set).
    pub fn session_update(&self) -> String {
        let transcription = match &self.transcription_model {
            Some(m) => json!({"model": m}),
            None => serde_json::Value::Null,
        };
        let session = json!({
            "type": "realtime",
            "model": self.model,
            "output_modalities": ["audio"],
            "instructions": self.instructions,
            "audio": {
                "input": {
                    "format": self.audio.wire(),
                    "transcription": transcription,
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": self.vad_threshold,
                        "prefix_padding_ms": self.vad_prefix_ms,
                        "silence_duration_ms": self.vad_silence_ms,
                        "create_response": true,
                        "interrupt_response": true
                    }
                },
                "output": {"format": self.audio.wire(), "voice": self.voice}
            },
            "tools": [{
                "type": "function",
                "name": END_CALL_TOOL,
                "description": "End the phone call. Call this once the conversation is finished and you have said goodbye.",
                "parameters": {
                    "type": "object",
                    "properties": {"reason": {"type": "string", "description": "Why the call is ending."}},
                    "required": []
                }
            }],
            "tool_choice": "auto"
        });
        let mut session = session;
        if let Some(effort) = self.reasoning_effort.as_deref().filter(|_| takes_reasoning(&self.model)) {
            session["reasoning"] = json!({"effort": effort});
        }
        ClientEvent::SessionUpdate { session }.to_json()
    }
}

/// A model error and whether the call can go on.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelError {
    pub fatal: bool,
    pub kind: String,
    pub code: String,
    pub message: String,
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

/// A function call the model made, delivered when its response is done.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub call_id: String,
    pub name: String,
    pub arguments: String,
}

/// A server event, typed.
#[derive(Debug, PartialEq)]
pub enum ModelEvent<'a> {
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    ResponseCreated {
        response_id: &'a str,
    },
    AudioDelta {
        response_id: &'a str,
        item_id: &'a str,
        content_index: u32,
        audio: &'a [u8],
    },
    AudioDone {
        response_id: &'a str,
        item_id: &'a str,
    },
    AssistantTranscript {
        item_id: &'a str,
        text: &'a str,
    },
    UserTranscript {
        item_id: &'a str,
        text: &'a str,
    },
    ResponseDone {
        response_id: &'a str,
        status: &'a str,
        tool_calls: Vec<ToolCall>,
        /// What this response was billed (zero when the model reported none).
        usage: super::wire::Usage,
    },
    Truncated {
        item_id: &'a str,
        audio_end_ms: u64,
    },
    Error(ModelError),
    /// Parsed but not acted on.
    Other,
    /// Not JSON or not a Realtime event.
    Malformed,
}

/// Per-call model protocol state.
#[derive(Debug, Default)]
pub struct ModelSession {
    active_response: Option<String>,
    tool_calls: Vec<ToolCall>,
    audio: Vec<u8>,
    b64: String,
}

impl ModelSession {
    pub fn new() -> ModelSession {
        // Buffers grow to the largest delta once (800 bytes of G.711 or 4.8 KB of PCM per 100 ms),
        // not to a guess for every call.
        ModelSession::default()
    }

    /// The response being generated, if any.
    pub fn active_response(&self) -> Option<&str> {
        self.active_response.as_deref()
    }

    /// Parses one server text frame.
    pub fn receive<'s>(&'s mut self, text: &'s str) -> ModelEvent<'s> {
        let Ok(raw) = serde_json::from_str::<ServerEventRaw<'s>>(text) else {
            return ModelEvent::Malformed;
        };
        match raw.kind.as_ref() {
            "session.created" => ModelEvent::SessionCreated,
            "session.updated" => ModelEvent::SessionUpdated,
            "input_audio_buffer.speech_started" => ModelEvent::SpeechStarted,
            "input_audio_buffer.speech_stopped" => ModelEvent::SpeechStopped,
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
                ModelEvent::AudioDelta {
                    response_id: resp,
                    item_id: item,
                    content_index: raw.content_index.unwrap_or(0),
                    audio: &self.audio,
                }
            }
            "response.output_audio.done" => match (frame_str(raw.response_id), frame_str(raw.item_id)) {
                (Some(r), Some(i)) => ModelEvent::AudioDone { response_id: r, item_id: i },
                _ => ModelEvent::Malformed,
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
                let status = match response.status.as_str() {
                    "completed" => "completed",
                    "cancelled" => "cancelled",
                    "incomplete" => "incomplete",
                    "failed" => "failed",
                    _ => "unknown",
                };
                // The id is stored so the event can borrow it for the caller's bookkeeping.
                self.b64.clear();
                self.b64.push_str(&response.id);
                let usage = response.usage.as_ref().map(super::wire::Usage::from_response).unwrap_or_default();
                ModelEvent::ResponseDone {
                    response_id: &self.b64,
                    status,
                    tool_calls: std::mem::take(&mut self.tool_calls),
                    usage,
                }
            }
            "conversation.item.truncated" => match frame_str(raw.item_id) {
                Some(item_id) => ModelEvent::Truncated { item_id, audio_end_ms: raw.audio_end_ms.unwrap_or(0) },
                None => ModelEvent::Malformed,
            },
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

    fn transcript<'s>(
        &'s mut self,
        item: Option<&'s str>,
        transcript: Option<String>,
        assistant: bool,
    ) -> ModelEvent<'s> {
        let Some(item_id) = item else {
            return ModelEvent::Malformed;
        };
        self.b64.clear();
        self.b64.push_str(transcript.as_deref().unwrap_or_default());
        if assistant {
            ModelEvent::AssistantTranscript { item_id, text: &self.b64 }
        } else {
            ModelEvent::UserTranscript { item_id, text: &self.b64 }
        }
    }

    /// `input_audio_buffer.append` for model-format audio.
    pub fn append(&mut self, audio: &[u8]) -> String {
        self.b64.clear();
        B64.encode_string(audio, &mut self.b64);
        ClientEvent::Append { audio: &self.b64 }.to_json()
    }

    pub fn truncate(item_id: &str, content_index: u32, audio_end_ms: u64) -> String {
        ClientEvent::Truncate { item_id, content_index, audio_end_ms }.to_json()
    }

    pub fn cancel() -> String {
        ClientEvent::Cancel.to_json()
    }

    /// A keypad press, as a user message the model can read.
    pub fn dtmf(digit: char) -> String {
        let text = format!("[The caller pressed the key \"{digit}\" on their phone keypad.]");
        ClientEvent::ItemCreate {
            item: Item::Message { role: "user", content: [InputText { kind: "input_text", text: &text }] },
        }
        .to_json()
    }

    /// A line of the conversation so far, for a new session after the old one was lost: the
    /// caller's words as a user message, the AI's as an assistant message (GA `output_text`).
    pub fn history(from_caller: bool, text: &str) -> String {
        let (role, kind) = if from_caller { ("user", "input_text") } else { ("assistant", "output_text") };
        ClientEvent::ItemCreate { item: Item::Message { role, content: [InputText { kind, text }] } }.to_json()
    }

    /// A note for the model only (a system message in the conversation), e.g. "wrap up now".
    pub fn system_note(text: &str) -> String {
        ClientEvent::ItemCreate {
            item: Item::Message { role: "system", content: [InputText { kind: "input_text", text }] },
        }
        .to_json()
    }

    /// Asks for a response, optionally with one-off instructions.
    pub fn response_create(instructions: Option<&str>) -> String {
        ClientEvent::ResponseCreate { response: instructions.map(|i| ResponseParams { instructions: i }) }.to_json()
    }

    /// The greeting as a response the AI speaks first.
    pub fn greeting(greeting: &str) -> String {
        let instructions =
            format!("Start the call by saying exactly this greeting, then wait for the caller: \"{greeting}\"");
        Self::response_create(Some(&instructions))
    }

    pub fn function_output(call_id: &str, output: &str) -> String {
        ClientEvent::ItemCreate { item: Item::FunctionCallOutput { call_id, output } }.to_json()
    }
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

    fn config(audio: ModelAudio) -> ModelConfig {
        ModelConfig {
            model: "gpt-realtime".into(),
            instructions: "Be brief.".into(),
            voice: "marin".into(),
            greeting: Some("Hello!".into()),
            audio,
            transcription_model: Some("gpt-4o-mini-transcribe".into()),
            vad_threshold: 0.5,
            vad_silence_ms: 500,
            vad_prefix_ms: 300,
            reasoning_effort: None,
        }
    }

    #[test]
    fn reasoning_effort_is_sent_only_to_a_model_that_takes_one() {
        let session = |model: &str, effort: Option<&str>| {
            let c = ModelConfig {
                model: model.into(),
                reasoning_effort: effort.map(str::to_string),
                ..config(ModelAudio::Pcmu)
            };
            serde_json::from_str::<serde_json::Value>(&c.session_update()).unwrap()["session"].clone()
        };
        assert_eq!(session("gpt-realtime-2", Some("high"))["reasoning"], json!({"effort": "high"}));
        assert!(session("gpt-realtime-2", None).get("reasoning").is_none(), "the model's default");
        assert!(session("gpt-realtime", Some("high")).get("reasoning").is_none(), "older models refuse it");
    }

    #[test]
    fn session_update_is_ga_shaped() {
        let v: serde_json::Value = serde_json::from_str(&config(ModelAudio::Pcmu).session_update()).unwrap();
        assert_eq!(v["type"], "session.update");
        assert_eq!(v["session"]["type"], "realtime");
        assert_eq!(v["session"]["audio"]["input"]["format"]["type"], "audio/pcmu");
        assert_eq!(v["session"]["audio"]["output"]["voice"], "marin");
        assert_eq!(v["session"]["audio"]["input"]["turn_detection"]["type"], "server_vad");
        assert_eq!(v["session"]["audio"]["input"]["turn_detection"]["interrupt_response"], true);
        assert_eq!(v["session"]["tools"][0]["name"], END_CALL_TOOL);
        assert!(v["session"].get("modalities").is_none(), "beta field must not appear");
        let v: serde_json::Value = serde_json::from_str(&config(ModelAudio::Pcm24k).session_update()).unwrap();
        assert_eq!(v["session"]["audio"]["output"]["format"], json!({"type":"audio/pcm","rate":24000}));
    }

    #[test]
    fn response_lifecycle_and_tool_calls() {
        let mut s = ModelSession::new();
        let created = r#"{"type":"response.created","event_id":"e1","response":{"object":"realtime.response","id":"resp_1","status":"in_progress","output":[]}}"#;
        assert_eq!(s.receive(created), ModelEvent::ResponseCreated { response_id: "resp_1" });
        assert_eq!(s.active_response(), Some("resp_1"));
        let delta = r#"{"type":"response.output_audio.delta","event_id":"e2","response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":0,"delta":"/38A"}"#;
        assert_eq!(
            s.receive(delta),
            ModelEvent::AudioDelta {
                response_id: "resp_1",
                item_id: "item_1",
                content_index: 0,
                audio: &[0xFF, 0x7F, 0x00]
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
        let mut s = ModelSession::new();
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
    fn client_event_builders() {
        let mut s = ModelSession::new();
        assert_eq!(s.append(&[0xFF, 0xFF]), r#"{"type":"input_audio_buffer.append","audio":"//8="}"#);
        let v: serde_json::Value = serde_json::from_str(&ModelSession::dtmf('5')).unwrap();
        assert!(v["item"]["content"][0]["text"].as_str().unwrap().contains("\"5\""));
        let v: serde_json::Value = serde_json::from_str(&ModelSession::greeting("Hi there")).unwrap();
        assert!(v["response"]["instructions"].as_str().unwrap().contains("Hi there"));
        assert_eq!(
            ModelSession::history(true, "Tuesday?"),
            r#"{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"Tuesday?"}]}}"#
        );
        let v: serde_json::Value = serde_json::from_str(&ModelSession::history(false, "Sure.")).unwrap();
        assert_eq!(
            (v["item"]["role"].as_str(), v["item"]["content"][0]["type"].as_str()),
            (Some("assistant"), Some("output_text"))
        );
    }
}

#[cfg(test)]
mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the model (or something pretending to be it) sends, parsing never panics.
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,400}", prefix in prop_oneof![Just(""), Just(r#"{"type":"response.output_audio.delta","response_id":"r","item_id":"i","delta":""#), Just(r#"{"type":"response.done","response":"#), Just(r#"{"type":"error","error":"#)]) {
            let mut s = ModelSession::new();
            let joined = format!("{prefix}{text}");
            let _ = s.receive(&joined);
        }
    }
}
