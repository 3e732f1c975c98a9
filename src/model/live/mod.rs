//! OpenAI GPT-Live (`/v1/live/sessions`), sans-IO. Full duplex: the model listens while it
//! speaks and decides itself when to yield, so there is nothing to cancel or truncate; its output
//! streams at real-time pace, silence included. The session cuts that stream into turns by its
//! level (a turn starts with sound and ends after [`TURN_END_QUIET_MS`] of quiet), so the core
//! sees responses as from Realtime; silence between turns is not forwarded. Tools run under
//! Responses delegation: the backend's function calls come inside `response.event` envelopes
//! and are answered with `response.item.create` + `response.create`. Shapes follow the `openai`
//! Python package's `openai.types.live` models (3.57).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::media::transcode::decode_samples;
use crate::model::audio::append_event;
use crate::model::realtime::session::classify_error;
use crate::model::{
    HistoryLine, ModelApi, ModelCommand, ModelConfig, ModelError, ModelEvent, ModelProtocol, ToolCall, Usage,
};

/// Mean absolute amplitude (16-bit scale) over 10 ms that counts as sound.
const QUIET_LEVEL: u64 = 300;
/// Quiet this long ends a turn of speech.
pub const TURN_END_QUIET_MS: u32 = 400;
/// `input` holds at most this many messages (SDK `SessionConfig.input`).
const MAX_HISTORY: usize = 128;

/// What the backend model is told (its tools are the call's).
const BACKEND_INSTRUCTIONS: &str = "You carry out tasks for a voice agent on a phone call. Call end_call when the \
     conversation is finished and the caller has been told goodbye.";

/// A server event read flat; `type` says which fields matter.
#[derive(Debug, Deserialize)]
struct ServerEventRaw<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(default, borrow)]
    delta: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    event: Option<Value>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

/// One call's GPT-Live session.
#[derive(Debug)]
pub struct LiveSession {
    config: ModelConfig,
    started: bool,
    /// `session.closed` came.
    closed: bool,
    /// Billed seconds reported so far (the events carry the session's running total).
    seconds: f64,
    /// The turn being spoken, if any, and how long its output has been quiet.
    in_turn: bool,
    turn: u64,
    turn_id: String,
    quiet_ms: u32,
    tool_calls: Vec<ToolCall>,
    response_id: String,
    audio: Vec<u8>,
    samples: Vec<i16>,
    /// Scratch for a received string handed out borrowed (a transcript, a response id).
    text: String,
}

impl LiveSession {
    pub fn new(config: ModelConfig) -> LiveSession {
        LiveSession {
            config,
            started: false,
            closed: false,
            seconds: 0.0,
            in_turn: false,
            turn: 0,
            turn_id: String::new(),
            quiet_ms: 0,
            tool_calls: Vec::new(),
            response_id: String::new(),
            audio: Vec::new(),
            samples: Vec::new(),
            text: String::new(),
        }
    }

    /// The `session.start` event: model, instructions, audio, voice, the Responses backend with
    /// the call's tools, and the conversation so far.
    pub fn session_start(&self, history: &[HistoryLine<'_>]) -> String {
        let c = &self.config;
        let mut responses = json!({
            "model": c.backend_model,
            "instructions": BACKEND_INSTRUCTIONS,
            "tools": c.tools.functions(),
        });
        if let Some(effort) = &c.reasoning_effort {
            responses["reasoning"] = json!({"effort": effort});
        }
        let mut session = json!({
            "model": c.model,
            "instructions": c.instructions,
            "audio": {"format": c.audio.live_wire(), "output": {"voice": c.voice}},
            "delegation": {"type": "responses", "responses": responses},
        });
        if !history.is_empty() {
            let skip = history.len().saturating_sub(MAX_HISTORY);
            let input: Vec<Value> = history[skip..]
                .iter()
                .map(|l| {
                    if l.from_caller {
                        json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": l.text}]})
                    } else {
                        json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": l.text}]})
                    }
                })
                .collect();
            session["input"] = Value::Array(input);
        }
        json!({"type": "session.start", "session": session}).to_string()
    }

    /// One output delta: a turn starts with sound and ends after [`TURN_END_QUIET_MS`] of quiet.
    fn output_delta(&mut self) -> ModelEvent<'_> {
        let fmt = self.config.audio.format();
        decode_samples(fmt.codec, &self.audio, &mut self.samples);
        let window = (fmt.rate.hz() / 100) as usize;
        let (mut loud, mut trailing_quiet) = (false, 0u32);
        for w in self.samples.chunks(window.max(1)) {
            let level = w.iter().map(|s| s.unsigned_abs() as u64).sum::<u64>() / w.len() as u64;
            let ms = (w.len() * 1000 / fmt.rate.hz() as usize) as u32;
            if level > QUIET_LEVEL {
                loud = true;
                trailing_quiet = 0;
            } else {
                trailing_quiet += ms;
            }
        }
        if !self.in_turn {
            if !loud {
                return ModelEvent::Other;
            }
            self.in_turn = true;
            self.turn += 1;
            self.turn_id.clear();
            self.turn_id.push_str(&format!("live_turn_{}", self.turn));
            self.quiet_ms = 0;
        }
        if loud {
            self.quiet_ms = trailing_quiet;
        } else {
            self.quiet_ms += trailing_quiet;
            if self.quiet_ms >= TURN_END_QUIET_MS {
                // The turn is over; this delta is silence, and the silence after it is not sent on.
                self.in_turn = false;
                return ModelEvent::ResponseDone {
                    response_id: &self.turn_id,
                    status: "completed",
                    tool_calls: Vec::new(),
                    usage: Usage::default(),
                };
            }
        }
        ModelEvent::AudioDelta {
            response_id: &self.turn_id,
            item_id: &self.turn_id,
            audio: &self.audio,
            quiet_ms: self.quiet_ms,
        }
    }

    /// An event of the Responses backend (`response.event`): function calls are collected until
    /// the response ends, which reports them with the backend's tokens.
    fn backend_event(&mut self, event: Value) -> ModelEvent<'_> {
        match event["type"].as_str().unwrap_or_default() {
            "response.output_item.done" if event["item"]["type"] == "function_call" => {
                let item = &event["item"];
                let text = |k: &str| item[k].as_str().unwrap_or_default().to_string();
                self.tool_calls.push(ToolCall {
                    call_id: text("call_id"),
                    name: text("name"),
                    arguments: text("arguments"),
                });
                ModelEvent::Other
            }
            kind @ ("response.completed" | "response.done" | "response.failed" | "response.incomplete") => {
                let response = &event["response"];
                self.response_id.clear();
                self.response_id.push_str(response["id"].as_str().unwrap_or_default());
                let status = match (kind, response["status"].as_str()) {
                    (_, Some("completed")) | ("response.completed", _) => "completed",
                    (_, Some("incomplete")) | ("response.incomplete", _) => "incomplete",
                    (_, Some("cancelled")) => "cancelled",
                    _ => "failed",
                };
                ModelEvent::ResponseDone {
                    response_id: &self.response_id,
                    status,
                    tool_calls: std::mem::take(&mut self.tool_calls),
                    usage: Usage::from_responses_api(&response["usage"]),
                }
            }
            _ => ModelEvent::Other,
        }
    }

    /// The seconds billed since the last report (the events carry running totals).
    fn seconds(&mut self, usage: Option<Value>) -> ModelEvent<'static> {
        let total = usage.as_ref().and_then(|u| u["seconds"].as_f64()).unwrap_or(self.seconds);
        let new = (total - self.seconds).max(0.0);
        self.seconds = self.seconds.max(total);
        if new > 0.0 { ModelEvent::Usage(Usage { live_seconds: new, ..Usage::default() }) } else { ModelEvent::Other }
    }
}

fn append(kind: &str, content: &str) -> String {
    json!({"type": kind, "content": content, "delegation_id": null}).to_string()
}

impl ModelProtocol for LiveSession {
    fn api(&self) -> ModelApi {
        ModelApi::Live
    }

    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn ready(&self) -> bool {
        self.started
    }

    fn active_response(&self) -> Option<&str> {
        None
    }

    fn full_duplex(&self) -> bool {
        true
    }

    fn is_closed(&self) -> bool {
        self.closed
    }

    fn encode(&mut self, cmd: ModelCommand<'_>, out: &mut dyn FnMut(String)) {
        match cmd {
            ModelCommand::Start { history } => out(self.session_start(history)),
            ModelCommand::Audio(audio) => {
                out(append_event("session.input_audio.append", audio));
            }
            ModelCommand::Greet(greeting) => {
                let how =
                    format!("Open the call by greeting the caller with exactly this, then listen: \"{greeting}\"");
                out(append("session.instructions.append", &how));
                out(append("session.commentary.append", greeting));
            }
            ModelCommand::Dtmf(digit) => {
                let text = format!("The caller just pressed the key \"{digit}\" on their phone keypad.");
                out(append("session.instructions.append", &text));
            }
            ModelCommand::Note(text) => out(append("session.thinking.append", text)),
            ModelCommand::Respond(Some(instructions)) => out(append("session.commentary.append", instructions)),
            ModelCommand::Respond(None) => out(json!({"type": "response.create"}).to_string()),
            // The model decides when it stops talking; the bridge only stops local playout.
            ModelCommand::Cancel | ModelCommand::TruncateAtHeard { .. } => {}
            ModelCommand::Close => out(json!({"type": "session.close"}).to_string()),
            ModelCommand::ToolResult { call_id, output } => out(json!({
                "type": "response.item.create",
                "item": {"type": "function_call_output", "call_id": call_id, "output": output}
            })
            .to_string()),
        }
    }

    fn receive<'s>(&'s mut self, text: &'s str) -> ModelEvent<'s> {
        let Ok(raw) = serde_json::from_str::<ServerEventRaw<'s>>(text) else {
            return ModelEvent::Malformed;
        };
        match raw.kind {
            "session.started" => {
                self.started = true;
                ModelEvent::Started
            }
            "session.output_audio.delta" => {
                let Some(delta) = raw.delta else { return ModelEvent::Malformed };
                self.audio.clear();
                if B64.decode_vec(delta.as_bytes(), &mut self.audio).is_err() {
                    return ModelEvent::Malformed;
                }
                self.output_delta()
            }
            kind @ ("session.input_transcript.delta" | "session.output_transcript.delta") => {
                self.text.clear();
                self.text.push_str(raw.delta.as_deref().unwrap_or_default());
                ModelEvent::TranscriptDelta { from_caller: kind == "session.input_transcript.delta", text: &self.text }
            }
            "response.event" => match raw.event {
                Some(event) => self.backend_event(event),
                None => ModelEvent::Malformed,
            },
            "session.usage.updated" => self.seconds(raw.usage),
            "session.closed" => {
                self.closed = true;
                self.seconds(raw.usage)
            }
            "error" => {
                let e = raw.error.unwrap_or_default();
                let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
                let (kind, code) = (s("type"), s("code"));
                // A session that never started cannot go on (its configuration was refused).
                let fatal = !self.started || classify_error(&kind, &code);
                ModelEvent::Error(ModelError { fatal, kind, code, message: s("message") })
            }
            _ => ModelEvent::Other,
        }
    }
}

#[cfg(test)]
mod tests;
