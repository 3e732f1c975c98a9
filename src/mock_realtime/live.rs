//! The mock model's GPT-Live side (`/v1/live/sessions`), sans-IO: `session.start` checked
//! against the SDK's `SessionConfig` fields and answered with `session.started`; output audio
//! streamed at real-time pace (silence included) in 100 ms deltas; the caller's speech makes it
//! yield at once (full duplex), and each finished caller turn is answered with an echo; after
//! `end_call_after` turns the Responses backend calls `end_call` (inside `response.event`
//! envelopes); `session.commentary.append` is spoken; `session.close` is answered with the final
//! usage in `session.closed`.

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::Conversation;
use super::conversation::MockOptions;
use super::log::ConnectionLog;
use super::probe::ProbeSide;
use super::voice;
use crate::media::transcode::{self, StreamFormat};
use crate::media::vad::{Vad, VadEvent};

/// The fields `SessionConfig` declares (openai.types.live, 3.57): the service refuses others.
const SESSION_FIELDS: &[&str] =
    &["model", "audio", "client", "delegation", "input", "instructions", "safety_identifier", "store", "triggers"];

/// Longest caller utterance kept for the echo answer.
const MAX_UTTERANCE: Duration = Duration::from_secs(8);

pub struct LiveMock {
    opts: MockOptions,
    log: Arc<Mutex<ConnectionLog>>,
    format: Option<StreamFormat>,
    model: String,
    vad: Vad,
    seq: u64,
    /// Output queued to speak (model format); streamed from `sent`.
    speech: Vec<u8>,
    sent: usize,
    /// The output clock: the next delta is due then (`None` before the session started).
    next_at: Option<Instant>,
    started_at: Option<Instant>,
    /// When the next `session.usage.updated` is due (once a minute, as the service does).
    usage_at: Option<Instant>,
    utterance: Vec<u8>,
    turns: u32,
    decoded: Vec<i16>,
    closed: bool,
    /// Probe mode: the record, and the model-side indexes of the frames still queued in `speech`
    /// (answers are planned in order, so always one run).
    probe: Option<(ProbeSide, Range<u32>)>,
}

impl LiveMock {
    pub fn new(opts: MockOptions, log: Arc<Mutex<ConnectionLog>>) -> LiveMock {
        let probe = opts.probe.as_ref().map(|b| (ProbeSide::new(b), 0..0));
        LiveMock {
            opts,
            log,
            format: None,
            model: String::new(),
            vad: Vad::new(8000, 300, 500, 0),
            seq: 0,
            speech: Vec::new(),
            sent: 0,
            next_at: None,
            started_at: None,
            usage_at: None,
            utterance: Vec::new(),
            turns: 0,
            decoded: Vec::new(),
            closed: false,
            probe,
        }
    }

    fn event(&mut self, mut v: Value) -> String {
        self.seq += 1;
        v["event_id"] = json!(format!("event_{:04}", self.seq));
        v.to_string()
    }

    fn error(&mut self, code: &str, message: &str) -> String {
        self.lock().errors_sent.push(code.to_string());
        self.event(
            json!({"type": "error", "error": {"type": "invalid_request_error", "code": code, "message": message}}),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ConnectionLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn session(&self) -> Value {
        json!({"id": "sess_mock", "expires_at": 0, "model": self.model, "status": "active"})
    }

    fn usage(&self, now: Instant) -> Value {
        let secs = self.started_at.map_or(0.0, |s| now.saturating_duration_since(s).as_secs_f64());
        json!({"seconds": (secs * 1000.0).round() / 1000.0})
    }

    /// Queues `ms` of speech (after what is being said).
    fn say(&mut self, ms: u64, text: &str, out: &mut Vec<String>) {
        let Some(fmt) = self.format else { return };
        let pcm = voice::phrase(fmt.rate, ms);
        let mut bytes = Vec::new();
        transcode::encode_samples(fmt.codec, &pcm, &mut bytes);
        self.speak(bytes, text, out);
    }

    fn speak(&mut self, audio: Vec<u8>, text: &str, out: &mut Vec<String>) {
        let response = {
            let mut log = self.lock();
            log.responses += 1;
            log.responses
        };
        // Probe mode: as long an answer, made of frames that say which they are.
        let audio = match (self.probe.as_mut(), self.format) {
            (Some((p, queued)), Some(fmt)) => {
                let frames = (audio.len() / fmt.frame_bytes_20ms()).max(1);
                let (base, audio) = p.answer(frames, response, fmt);
                if queued.start == queued.end {
                    queued.start = base;
                }
                queued.end = base + frames as u32;
                audio
            }
            _ => audio,
        };
        self.speech.drain(..self.sent.min(self.speech.len()));
        self.sent = 0;
        self.speech.extend_from_slice(&audio);
        out.push(
            self.event(json!({"type": "session.output_transcript.delta", "delta": text, "start_ms": 0, "end_ms": 0})),
        );
    }

    fn on_start(&mut self, session: &Value, now: Instant, out: &mut Vec<String>) {
        if self.format.is_some() {
            out.push(self.error("session_already_started", "The session has started."));
            return;
        }
        self.lock().session_updates.push(session.clone());
        if let Some(bad) = session.as_object().and_then(|o| o.keys().find(|k| !SESSION_FIELDS.contains(&k.as_str()))) {
            let message = format!("Unknown parameter: 'session.{bad}'.");
            out.push(self.error("unknown_parameter", &message));
            return;
        }
        let f = &session["audio"]["format"];
        let format = match (f["type"].as_str(), f["rate"].as_u64()) {
            (Some("audio/pcmu"), Some(8000)) => StreamFormat::PCMU_8K,
            (Some("audio/pcma"), Some(8000)) => StreamFormat::PCMA_8K,
            (Some("audio/pcm"), Some(24000)) => StreamFormat::PCM_24K,
            _ => {
                out.push(
                    self.error("invalid_value", "audio.format must be audio/pcm (16000 or 24000) or G.711 at 8000"),
                );
                return;
            }
        };
        self.model = session["model"].as_str().unwrap_or_default().to_string();
        self.format = Some(format);
        self.vad = Vad::new(format.rate.hz(), 300, 500, 0);
        self.next_at = Some(now);
        self.started_at = Some(now);
        self.usage_at = Some(now + Duration::from_secs(60));
        let mut resolved = self.session();
        resolved["audio"] = session["audio"].clone();
        resolved["delegation"] = session["delegation"].clone();
        out.push(self.event(json!({"type": "session.started", "session": resolved})));
    }

    fn on_audio(&mut self, bytes: &[u8], now: Instant, out: &mut Vec<String>) {
        let Some(fmt) = self.format else { return };
        if self.opts.record_audio {
            self.lock().audio_in.extend_from_slice(bytes);
        }
        transcode::decode_samples(fmt.codec, bytes, &mut self.decoded);
        if let Some((p, _)) = self.probe.as_mut() {
            p.hear(&self.decoded, fmt.rate.hz(), now);
        }
        let mut events = Vec::new();
        self.vad.push(&self.decoded, |e| events.push(e));
        if self.vad.is_speaking() || !events.is_empty() {
            let room = fmt.bytes_for_ms(MAX_UTTERANCE.as_millis() as u64).saturating_sub(self.utterance.len());
            self.utterance.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        for e in events {
            match e {
                VadEvent::Started { .. } => {
                    self.utterance.clear();
                    self.utterance.extend_from_slice(bytes);
                    // Full duplex: talked over, the model stops at once (the rest is never said).
                    if self.sent < self.speech.len() {
                        self.lock().interruptions += 1;
                        self.speech.truncate(self.sent);
                        if let Some((_, queued)) = self.probe.as_mut() {
                            queued.start = queued.end;
                        }
                    }
                }
                VadEvent::Stopped { .. } => self.end_turn(fmt, out),
            }
        }
    }

    fn end_turn(&mut self, fmt: StreamFormat, out: &mut Vec<String>) {
        let secs = fmt.samples_in_bytes(self.utterance.len()) as f64 / fmt.rate.hz() as f64;
        let heard = format!("(caller spoke for {secs:.1} s)");
        out.push(
            self.event(json!({"type": "session.input_transcript.delta", "delta": heard, "start_ms": 0, "end_ms": 0})),
        );
        self.turns += 1;
        if let Some((name, arguments)) = self.opts.scripted_tool(self.turns) {
            // The Responses backend calls a tool (`end_call`: it decides the call is over).
            let delegation = format!("del_{:04}", self.turns);
            out.push(self.event(json!({"type": "session.delegation.created", "offset_ms": 0, "delegation": {"id": delegation, "type": "delegation", "target": "responses"}})));
            let call = json!({"type": "function_call", "id": "fc_1", "call_id": format!("call_{:04}", self.turns), "name": name, "arguments": arguments, "status": "completed"});
            out.push(self.event(json!({"type": "response.event", "delegation_id": delegation, "event": {"type": "response.output_item.done", "output_index": 0, "sequence_number": 1, "item": call}})));
            out.push(self.backend_done(vec![call]));
            return;
        }
        let audio = std::mem::take(&mut self.utterance);
        self.speak(audio, &format!("You said something that lasted {secs:.1} seconds."), out);
    }

    /// The backend's response ends (with its tokens).
    fn backend_done(&mut self, output: Vec<Value>) -> String {
        self.seq += 1;
        let id = format!("resp_{:04}", self.seq);
        self.event(json!({"type": "response.event", "event": {"type": "response.completed", "sequence_number": 2, "response": {"id": id, "object": "response", "status": "completed", "output": output, "usage": {"input_tokens": 150, "output_tokens": 12, "total_tokens": 162}}}}))
    }
}

impl Conversation for LiveMock {
    fn is_closed(&self) -> bool {
        self.closed
    }
    fn next_deadline(&self) -> Option<Instant> {
        self.next_at
    }
    fn on_client_text(&mut self, text: &str, now: Instant, out: &mut Vec<String>) {
        let Ok(ev) = serde_json::from_str::<Value>(text) else {
            out.push(self.error("invalid_json", "Could not parse the event."));
            return;
        };
        let kind = ev["type"].as_str().unwrap_or_default().to_string();
        if self.format.is_none() && kind != "session.start" {
            out.push(self.error("session_not_started", "Send session.start first."));
            return;
        }
        match kind.as_str() {
            "session.start" => self.on_start(&ev["session"], now, out),
            "session.input_audio.append" => {
                let mut bytes = Vec::new();
                if ev["audio"].as_str().is_some_and(|a| B64.decode_vec(a.as_bytes(), &mut bytes).is_ok()) {
                    self.on_audio(&bytes, now, out);
                } else {
                    out.push(self.error("invalid_value", "audio is not base64"));
                }
            }
            "session.commentary.append" => {
                let content = ev["content"].as_str().unwrap_or_default().to_string();
                self.lock().response_requests.push(content.to_lowercase());
                let ms = if content.to_lowercase().contains("goodbye") { 800 } else { 1500 };
                let said = if ms == 800 { "Goodbye, and thank you for calling!".to_string() } else { content };
                self.say(ms, &said, out);
            }
            "session.instructions.append" | "session.thinking.append" => {
                self.lock().items.push(ev.clone());
            }
            "response.item.create" => {
                self.lock().items.push(ev["item"].clone());
            }
            "response.create" => {
                self.lock().response_requests.push(String::new());
                out.push(self.backend_done(Vec::new()));
            }
            "session.close" => {
                self.closed = true;
                let (session, usage) = (self.session(), self.usage(now));
                out.push(self.event(
                    json!({"type": "session.closed", "reason": "close_requested", "session": session, "usage": usage}),
                ));
            }
            "session.update" | "session.input_audio.mute" | "session.input_audio.unmute" => {}
            _ => out.push(self.error("unknown_event", "Unknown client event type.")),
        }
    }
    /// Sends the output deltas that are due: speech while there is some, silence otherwise.
    fn poll(&mut self, now: Instant, out: &mut Vec<String>) {
        let (Some(fmt), Some(mut at)) = (self.format, self.next_at) else { return };
        let chunk = fmt.bytes_for_ms(self.opts.chunk_ms).max(1);
        let interval = Duration::from_secs_f64(self.opts.chunk_ms as f64 / 1000.0 / self.opts.live_speed.max(0.01));
        while at <= now && !self.closed {
            let mut delta = vec![fmt.codec.silence_byte(); chunk];
            let n = (self.speech.len() - self.sent).min(chunk);
            delta[..n].copy_from_slice(&self.speech[self.sent..self.sent + n]);
            self.sent += n;
            if let Some((p, queued)) = self.probe.as_mut() {
                // Probe answers are whole frames, and deltas whole frames of them.
                let frames = (n / fmt.frame_bytes_20ms()).min(queued.len()) as u32;
                p.sent_each(queued.start..queued.start + frames, now);
                queued.start += frames;
            }
            if fmt.codec.bytes_per_sample() == 2 {
                delta[n..].fill(0);
            }
            out.push(json!({"type": "session.output_audio.delta", "delta": B64.encode(&delta)}).to_string());
            at += interval;
        }
        if let Some(due) = self.usage_at.filter(|d| *d <= now) {
            self.usage_at = Some(due + Duration::from_secs(60));
            let usage = self.usage(now);
            out.push(self.event(json!({"type": "session.usage.updated", "usage": usage})));
        }
        self.next_at = Some(at);
    }
}
