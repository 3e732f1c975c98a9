//! The mock model's conversation, sans-IO: client events in, server events out, plus a clock
//! for streaming answers. Speaks the GA protocol: VAD turns, echo answers in chunks faster than
//! real time, transcripts, usage, `truncate`/`cancel` honoured, an optional scripted `end_call`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::Conversation;
use super::log::{ConnectionLog, TruncationLog};
use super::probe::ProbeSide;
use super::voice;
use crate::media::transcode::{self, StreamFormat};
use crate::media::vad::{Vad, VadEvent};
use crate::model::ModelAudio;
use crate::model::realtime::wire::{AudioDeltaOut, ClientEventRaw};

/// How the mock behaves.
#[derive(Debug, Clone)]
pub struct MockOptions {
    /// Answer audio is streamed this many times faster than real time.
    pub speed: f64,
    /// GPT-Live output pace (the service streams at real time: 1.0).
    pub live_speed: f64,
    /// A realistic model's delay from a response's start to its first audio.
    pub first_audio_delay_ms: u64,
    /// Audio per delta.
    pub chunk_ms: u64,
    /// After this many answered caller turns, the answer ends with an `end_call` tool call.
    pub end_call_after: Option<u32>,
    /// The answer to this caller turn (1 = the first) ends with a call of this tool (its name,
    /// then its arguments as JSON text): `report_outcome`, or one of the call's own.
    pub call_tool_at: Option<(u32, String, String)>,
    /// Keep every byte of caller audio in the log (tests).
    pub record_audio: bool,
    /// Fault injection: the first connection is dropped (no close frame) this long after it
    /// opened, as a model outage mid-call looks to the bridge.
    pub drop_first_after: Option<Duration>,
    /// Fault injection: this caller turn of every Realtime session (1 = the first) is committed
    /// and never answered, as a stalled model looks to the bridge.
    pub stall_on_turn: Option<u32>,
    /// Fault injection: once this many connections (of either API) were opened, the Realtime
    /// endpoint answers 503, as an API that went down does.
    pub realtime_down_after: Option<usize>,
    /// Answer with two assistant items per response, as current models may (a short preamble,
    /// then the answer): the first this long, the rest in a second item (`output_index` 1).
    pub preamble_ms: Option<u64>,
    /// A rehearsal script: what the AI says and does after each caller turn (over
    /// `call_tool_at`; `end_call_after` still ends the call).
    pub script: Option<std::sync::Arc<super::script::Script>>,
    /// Probe mode (`voxbridge replay --serve-model`): caller probe frames are recognised on
    /// arrival and answers are probe frames, both timed in this record.
    pub probe: Option<crate::probe::Book>,
}

impl MockOptions {
    /// The tool call (name, arguments) the answer to caller turn `turn` ends with, if any.
    pub(super) fn scripted_tool(&self, turn: u32) -> Option<(String, String)> {
        if self.end_call_after.is_some_and(|n| turn >= n) {
            return Some(("end_call".into(), r#"{"reason":"caller is done"}"#.to_string()));
        }
        if let Some(action) = self.script.as_ref().and_then(|s| s.turn(turn)).and_then(|t| t.action.clone()) {
            return Some(action);
        }
        let call = self.call_tool_at.as_ref().filter(|(at, _, _)| *at == turn);
        call.map(|(_, name, arguments)| (name.clone(), arguments.clone()))
    }

    /// What the script has the AI say after caller turn `turn`, if it says.
    pub(super) fn scripted_words(&self, turn: u32) -> Option<String> {
        self.script.as_ref().and_then(|s| s.turn(turn)).and_then(|t| t.say.clone())
    }
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            speed: 4.0,
            live_speed: 1.0,
            first_audio_delay_ms: 0,
            chunk_ms: 100,
            end_call_after: None,
            call_tool_at: None,
            record_audio: false,
            drop_first_after: None,
            stall_on_turn: None,
            realtime_down_after: None,
            preamble_ms: None,
            script: None,
            probe: None,
        }
    }
}

/// Longest caller utterance kept for the echo answer.
const MAX_UTTERANCE: Duration = Duration::from_secs(8);

struct Streaming {
    response_id: String,
    /// The response's assistant items: id, where its audio ends in `audio`, its transcript.
    items: Vec<(String, usize, String)>,
    /// The item being streamed (its `output_index`).
    current: usize,
    audio: Vec<u8>,
    sent: usize,
    next_at: Instant,
    /// The tool call the response ends with (name, arguments), if any.
    tool: Option<(String, String)>,
    /// Probe mode: the model-side index of the answer's first frame.
    probe_base: Option<u32>,
}

impl Streaming {
    fn item_id(&self) -> &str {
        &self.items[self.current].0
    }

    /// Where the current item's audio starts in `audio`.
    fn item_start(&self) -> usize {
        if self.current == 0 { 0 } else { self.items[self.current - 1].1 }
    }
}

pub struct MockSession {
    opts: MockOptions,
    log: Arc<Mutex<ConnectionLog>>,
    audio: ModelAudio,
    session: Value,
    vad: Vad,
    utterance: Vec<u8>,
    user_item: Option<String>,
    turns: u32,
    seq: u64,
    streaming: Option<Streaming>,
    /// Audio sent per assistant item (ms), for validating truncation.
    item_ms: HashMap<String, u64>,
    goodbye_pending: bool,
    decoded: Vec<i16>,
    append_buf: Vec<u8>,
    probe: Option<ProbeSide>,
}

impl MockSession {
    pub fn new(opts: MockOptions, log: Arc<Mutex<ConnectionLog>>) -> MockSession {
        let audio = ModelAudio::Pcm24k;
        let probe = opts.probe.as_ref().map(ProbeSide::new);
        let session = json!({"type": "realtime", "object": "realtime.session", "model": "gpt-realtime",
            "output_modalities": ["audio"], "instructions": "",
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": {"type": "server_vad"}},
                      "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"}}});
        MockSession {
            vad: Vad::new(audio.format().rate.hz(), 300, 500, 300),
            opts,
            log,
            audio,
            session,
            utterance: Vec::new(),
            user_item: None,
            turns: 0,
            seq: 0,
            streaming: None,
            item_ms: HashMap::new(),
            goodbye_pending: false,
            decoded: Vec::new(),
            append_buf: Vec::new(),
            probe,
        }
    }

    fn id(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("{prefix}_{:04}", self.seq)
    }

    fn event(&mut self, mut v: Value) -> String {
        v["event_id"] = json!(self.id("event"));
        v.to_string()
    }

    /// The first server event.
    pub fn hello(&mut self) -> String {
        let session = self.session.clone();
        self.event(json!({"type": "session.created", "session": session}))
    }

    fn on_session_update(&mut self, update: Value, out: &mut Vec<String>) {
        if update["type"] != "realtime" {
            out.push(self.error(
                "invalid_request_error",
                "missing_required_parameter",
                "Missing required parameter: 'session.type'.",
            ));
            return;
        }
        merge(&mut self.session, &update);
        if let Some(a) = ModelAudio::from_wire(&self.session["audio"]["input"]["format"]) {
            self.audio = a;
        }
        let td = &self.session["audio"]["input"]["turn_detection"];
        let silence = td["silence_duration_ms"].as_u64().unwrap_or(500) as u32;
        let prefix = td["prefix_padding_ms"].as_u64().unwrap_or(300) as u32;
        self.vad = Vad::new(self.audio.format().rate.hz(), 300, silence, prefix);
        self.lock().session_updates.push(update);
        let session = self.session.clone();
        out.push(self.event(json!({"type": "session.updated", "session": session})));
    }

    fn on_audio(&mut self, bytes: &[u8], now: Instant, out: &mut Vec<String>) {
        if self.opts.record_audio {
            self.lock().audio_in.extend_from_slice(bytes);
        }
        self.decoded.clear();
        decode(self.audio.format(), bytes, &mut self.decoded);
        if let Some(p) = self.probe.as_mut() {
            p.hear(&self.decoded, self.audio.format().rate.hz(), now);
        }
        let mut events = Vec::new();
        self.vad.push(&self.decoded, |e| events.push(e));
        let max = self.audio.format().bytes_for_ms(MAX_UTTERANCE.as_millis() as u64);
        if self.vad.is_speaking() || !events.is_empty() {
            let room = max.saturating_sub(self.utterance.len());
            self.utterance.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        for e in events {
            match e {
                VadEvent::Started { audio_start_ms } => {
                    let item = self.id("item");
                    self.user_item = Some(item.clone());
                    self.utterance.clear();
                    self.utterance.extend_from_slice(bytes);
                    out.push(self.event(json!({"type": "input_audio_buffer.speech_started", "audio_start_ms": audio_start_ms, "item_id": item})));
                    if self.streaming.is_some() {
                        self.lock().interruptions += 1;
                        self.cancel("turn_detected", out);
                    }
                }
                VadEvent::Stopped { audio_end_ms } => self.end_turn(audio_end_ms, now, out),
            }
        }
    }

    fn end_turn(&mut self, audio_end_ms: u64, now: Instant, out: &mut Vec<String>) {
        let item = self.user_item.take().unwrap_or_else(|| self.id("item"));
        let fmt = self.audio.format();
        let secs = fmt.samples_in_bytes(self.utterance.len()) as f64 / fmt.rate.hz() as f64;
        out.push(self.event(
            json!({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": audio_end_ms, "item_id": item}),
        ));
        out.push(
            self.event(json!({"type": "input_audio_buffer.committed", "item_id": item, "previous_item_id": null})),
        );
        out.push(self.event(json!({"type": "conversation.item.added", "item": {"id": item, "object": "realtime.item", "type": "message", "role": "user", "status": "completed", "content": [{"type": "input_audio", "transcript": null}]}})));
        let transcript = format!("(caller spoke for {secs:.1} s)");
        out.push(self.event(json!({"type": "conversation.item.input_audio_transcription.completed", "item_id": item, "content_index": 0, "transcript": transcript, "usage": {"type": "duration", "seconds": secs}})));
        self.turns += 1;
        if self.opts.stall_on_turn == Some(self.turns) {
            return;
        }
        let tool = self.opts.scripted_tool(self.turns);
        let audio = std::mem::take(&mut self.utterance);
        let words = self.opts.scripted_words(self.turns);
        let words = words.unwrap_or_else(|| format!("You said something that lasted {secs:.1} seconds."));
        self.start_response(audio, words, tool, now, out);
    }

    fn start_response(
        &mut self,
        audio: Vec<u8>,
        transcript: String,
        tool: Option<(String, String)>,
        now: Instant,
        out: &mut Vec<String>,
    ) {
        let response_id = self.id("resp");
        let response = {
            let mut log = self.lock();
            log.responses += 1;
            log.responses
        };
        // Probe mode: as long an answer, made of frames that say which they are.
        let fmt = self.audio.format();
        let (probe_base, audio) = match self.probe.as_mut() {
            Some(p) => {
                let frames = (audio.len() / fmt.frame_bytes_20ms()).max(1);
                let (base, audio) = p.answer(frames, response, fmt);
                (Some(base), audio)
            }
            None => (None, audio),
        };
        out.push(self.event(json!({"type": "response.created", "response": {"object": "realtime.response", "id": response_id, "status": "in_progress", "output": []}})));
        // With a preamble, the answer comes as two items (each a whole number of samples).
        let split = self.opts.preamble_ms.map(|ms| fmt.bytes_for_ms(ms)).filter(|&b| b > 0 && b < audio.len());
        let mut items = Vec::new();
        if let Some(b) = split {
            items.push((self.id("item"), b, "One moment.".to_string()));
        }
        items.push((self.id("item"), audio.len(), transcript));
        let next_at = now + Duration::from_millis(self.opts.first_audio_delay_ms);
        let s = Streaming { response_id, items, current: 0, audio, sent: 0, next_at, tool, probe_base };
        self.announce_item(&s, out);
        self.streaming = Some(s);
    }

    /// `response.output_item.added` and `response.content_part.added` for the current item.
    fn announce_item(&mut self, s: &Streaming, out: &mut Vec<String>) {
        let (rid, iid, index) = (s.response_id.as_str(), s.item_id(), s.current);
        out.push(self.event(json!({"type": "response.output_item.added", "response_id": rid, "output_index": index, "item": {"id": iid, "object": "realtime.item", "type": "message", "role": "assistant", "status": "in_progress", "content": []}})));
        out.push(self.event(json!({"type": "response.content_part.added", "response_id": rid, "item_id": iid, "output_index": index, "content_index": 0, "part": {"type": "audio", "transcript": ""}})));
        self.item_ms.insert(iid.to_string(), 0);
    }

    /// The current item's audio is complete: its `done` events.
    fn item_done(&mut self, s: &Streaming, out: &mut Vec<String>) {
        let (rid, iid, index) = (s.response_id.as_str(), s.item_id(), s.current);
        let transcript = &s.items[s.current].2;
        out.push(self.event(json!({"type": "response.output_audio.done", "response_id": rid, "item_id": iid, "output_index": index, "content_index": 0})));
        out.push(self.event(json!({"type": "response.output_audio_transcript.done", "response_id": rid, "item_id": iid, "output_index": index, "content_index": 0, "transcript": transcript})));
    }

    fn finish_response(&mut self, out: &mut Vec<String>) {
        let Some(s) = self.streaming.take() else {
            return;
        };
        self.item_done(&s, out);
        let rid = s.response_id.as_str();
        let mut output: Vec<Value> = s
            .items
            .iter()
            .map(|(iid, _, transcript)| json!({"id": iid, "object": "realtime.item", "type": "message", "role": "assistant", "status": "completed", "content": [{"type": "output_audio", "transcript": transcript}]}))
            .collect();
        if let Some((name, arguments)) = &s.tool {
            let call_id = self.id("call");
            let fc_item = self.id("item");
            if name == "end_call" {
                self.goodbye_pending = false;
            }
            let index = output.len();
            out.push(self.event(json!({"type": "response.function_call_arguments.done", "response_id": rid, "item_id": fc_item, "output_index": index, "call_id": call_id, "name": name, "arguments": arguments})));
            output.push(json!({"id": fc_item, "object": "realtime.item", "type": "function_call", "status": "completed", "call_id": call_id, "name": name, "arguments": arguments}));
        }
        self.lock().responses_done += 1;
        let tokens = 20 + s.audio.len() as u64 / 100;
        out.push(self.event(json!({"type": "response.done", "response": {"object": "realtime.response", "id": rid, "status": "completed", "status_details": null, "output": output, "usage": {"total_tokens": tokens + 40, "input_tokens": 40, "output_tokens": tokens, "output_token_details": {"text_tokens": 10, "audio_tokens": tokens - 10}}}})));
    }

    fn cancel(&mut self, reason: &str, out: &mut Vec<String>) {
        let Some(s) = self.streaming.take() else {
            return;
        };
        out.push(self.event(json!({"type": "response.output_audio.done", "response_id": s.response_id, "item_id": s.item_id(), "output_index": s.current, "content_index": 0})));
        out.push(self.event(json!({"type": "response.done", "response": {"object": "realtime.response", "id": s.response_id, "status": "cancelled", "status_details": {"type": "cancelled", "reason": reason}, "output": [], "usage": null}})));
    }

    fn on_truncate(&mut self, item_id: String, end: Option<u64>, content_index: u32, out: &mut Vec<String>) {
        let sent = self.item_ms.get(&item_id).copied();
        let valid = matches!((sent, end), (Some(s), Some(e)) if e <= s);
        self.lock().truncations.push(TruncationLog {
            item_id: item_id.clone(),
            audio_end_ms: end,
            item_sent_ms: sent,
            accepted: valid,
        });
        if valid {
            out.push(self.event(json!({"type": "conversation.item.truncated", "item_id": item_id, "content_index": content_index, "audio_end_ms": end})));
        } else {
            out.push(self.error(
                "invalid_request_error",
                "invalid_value",
                "audio_end_ms must be an integer no larger than the item's audio.",
            ));
        }
    }

    fn error(&mut self, kind: &str, code: &str, message: &str) -> String {
        self.lock().errors_sent.push(code.to_string());
        self.event(json!({"type": "error", "error": {"type": kind, "code": code, "message": message, "param": null, "event_id": null}}))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ConnectionLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Conversation for MockSession {
    /// When `poll` must run next.
    fn next_deadline(&self) -> Option<Instant> {
        self.streaming.as_ref().map(|s| s.next_at)
    }
    /// One client text frame.
    fn on_client_text(&mut self, text: &str, now: Instant, out: &mut Vec<String>) {
        let Ok(ev) = serde_json::from_str::<ClientEventRaw>(text) else {
            out.push(self.error("invalid_request_error", "invalid_json", "Could not parse the event."));
            return;
        };
        match ev.kind.as_ref() {
            "session.update" => self.on_session_update(ev.session.unwrap_or_default(), out),
            "input_audio_buffer.append" => {
                let mut bytes = std::mem::take(&mut self.append_buf);
                bytes.clear();
                if ev.audio.is_some_and(|a| B64.decode_vec(a.as_bytes(), &mut bytes).is_ok()) {
                    self.on_audio(&bytes, now, out);
                } else {
                    out.push(self.error("invalid_request_error", "invalid_value", "audio is not base64"));
                }
                self.append_buf = bytes;
            }
            "conversation.item.truncate" => {
                let item_id = ev.item_id.unwrap_or_default();
                let end = ev.audio_end_ms.as_ref().and_then(|n| n.as_u64());
                self.on_truncate(item_id, end, ev.content_index.unwrap_or(0), out);
            }
            "response.cancel" => {
                self.lock().cancels += 1;
                if self.streaming.is_some() {
                    self.cancel("client_cancelled", out);
                } else {
                    out.push(self.error(
                        "invalid_request_error",
                        "response_cancel_not_active",
                        "Cancellation failed: no active response found",
                    ));
                }
            }
            "conversation.item.create" => {
                let mut item = ev.item.unwrap_or_default();
                self.lock().items.push(item.clone());
                if item.get("id").is_none() {
                    item["id"] = json!(self.id("item"));
                }
                out.push(self.event(json!({"type": "conversation.item.added", "item": item})));
            }
            "response.create" => {
                if self.streaming.is_some() {
                    out.push(self.error(
                        "invalid_request_error",
                        "conversation_already_has_active_response",
                        "Conversation already has an active response in progress.",
                    ));
                    return;
                }
                let instructions =
                    ev.response.as_ref().and_then(|r| r["instructions"].as_str()).unwrap_or_default().to_lowercase();
                self.lock().response_requests.push(instructions.clone());
                let (ms, transcript) = if self.goodbye_pending || instructions.contains("goodbye") {
                    self.goodbye_pending = false;
                    (800, "Goodbye, and thank you for calling!")
                } else if instructions.contains("greeting") {
                    (1500, "Hello! How can I help you today?")
                } else {
                    (1000, "Is there anything else I can help with?")
                };
                let pcm = voice::phrase(self.audio.format().rate, ms);
                let audio = encode(self.audio.format(), &pcm);
                self.start_response(audio, transcript.to_string(), None, now, out);
            }
            "input_audio_buffer.clear" => out.push(self.event(json!({"type": "input_audio_buffer.cleared"}))),
            _ => out.push(self.error("invalid_request_error", "unknown_event", "Unknown client event type.")),
        }
    }
    /// Sends the answer chunks that are due.
    fn poll(&mut self, now: Instant, out: &mut Vec<String>) {
        let fmt = self.audio.format();
        let chunk = fmt.bytes_for_ms(self.opts.chunk_ms).max(1);
        let interval = Duration::from_secs_f64(self.opts.chunk_ms as f64 / 1000.0 / self.opts.speed.max(0.01));
        while let Some(s) = self.streaming.as_mut() {
            if s.next_at > now {
                return;
            }
            if s.sent >= s.audio.len() {
                self.finish_response(out);
                return;
            }
            if s.sent >= s.items[s.current].1 {
                // The next item of the same response begins.
                let mut s = self.streaming.take().expect("streaming");
                self.item_done(&s, out);
                s.current += 1;
                self.announce_item(&s, out);
                self.streaming = Some(s);
                continue;
            }
            let end = (s.sent + chunk).min(s.items[s.current].1);
            let b64 = B64.encode(&s.audio[s.sent..end]);
            if let (Some(p), Some(base)) = (self.probe.as_ref(), s.probe_base) {
                let fb = fmt.frame_bytes_20ms();
                p.sent_each(base + (s.sent / fb) as u32..base + (end / fb) as u32, now);
            }
            s.sent = end;
            s.next_at += interval;
            let ms = fmt.rate.millis_floor(fmt.samples_in_bytes(s.sent - s.item_start()));
            let (rid, iid, index) = (s.response_id.clone(), s.item_id().to_string(), s.current);
            self.item_ms.insert(iid.clone(), ms);
            let event_id = self.id("event");
            let delta = AudioDeltaOut {
                kind: "response.output_audio.delta",
                event_id: &event_id,
                response_id: &rid,
                item_id: &iid,
                output_index: index as u32,
                content_index: 0,
                delta: &b64,
            };
            out.push(serde_json::to_string(&delta).unwrap_or_default());
            self.lock().deltas_sent += 1;
        }
    }
}

fn merge(base: &mut Value, update: &Value) {
    match (base, update) {
        (Value::Object(b), Value::Object(u)) => {
            for (k, v) in u {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, u) => *b = u.clone(),
    }
}

fn decode(fmt: StreamFormat, bytes: &[u8], out: &mut Vec<i16>) {
    transcode::decode_samples(fmt.codec, bytes, out);
}

fn encode(fmt: StreamFormat, pcm: &[i16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(pcm.len() * 2);
    transcode::encode_samples(fmt.codec, pcm, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_names_its_content_part_as_the_sdk_types_do() {
        let mut s = MockSession::new(MockOptions::default(), Arc::default());
        let mut out = Vec::new();
        s.on_client_text(r#"{"type":"response.create"}"#, Instant::now(), &mut out);
        let part = out
            .iter()
            .map(|t| serde_json::from_str::<Value>(t).unwrap())
            .find(|e| e["type"] == "response.content_part.added")
            .expect("a content part is announced");
        // openai-python's `ResponseContentPartAddedEvent.part.type` is Literal["text", "audio"].
        assert_eq!(part["part"]["type"], "audio");
    }
}
