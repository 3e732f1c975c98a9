//! Telnyx media streaming, sans-IO (protocols.md §3.7): wire messages (counters as strings, two
//! error shapes, `Unknown` fallback), the per-call codec from `start.media_format`, inbound frames
//! reordered by `media.chunk` (or `sequence_number`), and outbound `media` / `mark` / `clear` without a stream id.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;

pub use super::format::{Wire, stream_format, wire_format};
use super::reorder::{Emit, Pushed, Reorder};
use crate::media::opus::OpusCodec;

use crate::providers::{CarrierCommand, CarrierEvent, CarrierSession, Ignored, StreamStart};

/// Frames the reorder window waits for (60 ms at 20 ms a frame).
const REORDER_WINDOW: usize = 3;

#[derive(Debug, Deserialize)]
struct Inbound<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(default, deserialize_with = "crate::wire_json::lenient_u64")]
    sequence_number: Option<u64>,
    #[serde(default, borrow, deserialize_with = "crate::wire_json::opt_cow")]
    stream_id: Option<Cow<'a, str>>,
    #[serde(default)]
    start: Option<Start>,
    #[serde(default, borrow)]
    media: Option<Media<'a>>,
    #[serde(default)]
    mark: Option<Mark>,
    #[serde(default)]
    dtmf: Option<Dtmf>,
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    payload: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Start {
    #[serde(default)]
    call_control_id: String,
    #[serde(default)]
    client_state: Option<String>,
    #[serde(default)]
    media_format: Option<Format>,
    #[serde(default)]
    custom_parameters: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
struct Format {
    encoding: String,
    #[serde(default)]
    sample_rate: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct Media<'a> {
    #[serde(default, borrow, deserialize_with = "crate::wire_json::opt_cow")]
    track: Option<Cow<'a, str>>,
    /// Media-only counter from 1 (`sequence_number` also counts marks, DTMF…).
    #[serde(default, deserialize_with = "crate::wire_json::lenient_u64")]
    chunk: Option<u64>,
    #[serde(borrow)]
    payload: Cow<'a, str>,
}

#[derive(Debug, Deserialize)]
struct Mark {
    name: String,
}

#[derive(Debug, Deserialize)]
struct Dtmf {
    digit: String,
}

/// What we send (typed: no JSON tree per frame). Telnyx needs no stream id on these.
#[derive(Debug, serde::Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum Outbound<'a> {
    Media { media: OutMedia<'a> },
    Mark { mark: OutMark<'a> },
    Clear,
}

#[derive(Debug, serde::Serialize)]
struct OutMedia<'a> {
    payload: &'a str,
}

#[derive(Debug, serde::Serialize)]
struct OutMark<'a> {
    name: &'a str,
}

/// Decodes each ready Opus packet (in order) into PCM.
struct OpusSink<'a> {
    codec: &'a mut OpusCodec,
    out: &'a mut Vec<u8>,
    failed: &'a mut u64,
}

impl Emit for OpusSink<'_> {
    fn emit(&mut self, packet: &[u8]) {
        if self.codec.decode(packet, self.out).is_err() {
            *self.failed += 1;
        }
    }
}

#[derive(Debug, PartialEq)]
enum State {
    AwaitingStart,
    Streaming,
    Stopped,
}

/// One Telnyx media socket.
#[derive(Debug)]
pub struct TelnyxSession {
    state: State,
    stream_id: Option<String>,
    /// Created at the first media frame, numbered by what that frame carries.
    reorder: Option<Reorder>,
    decoded: Vec<u8>,
    ready: Vec<u8>,
    mark_name: String,
    b64: String,
    /// Error frames Telnyx sent us (`(code, title)`), for logs and counters.
    pub errors: Vec<(String, String)>,
    /// The call's Opus coder, when the stream is Opus.
    opus: Option<OpusCodec>,
    /// Opus packets that would not decode or encode.
    pub opus_failures: u64,
}

impl Default for TelnyxSession {
    fn default() -> Self {
        Self::new()
    }
}

impl TelnyxSession {
    pub fn new() -> TelnyxSession {
        TelnyxSession {
            state: State::AwaitingStart,
            stream_id: None,
            reorder: None,
            decoded: Vec::with_capacity(1024),
            ready: Vec::with_capacity(4096),
            mark_name: String::with_capacity(32),
            b64: String::with_capacity(2048),
            errors: Vec::new(),
            opus: None,
            opus_failures: 0,
        }
    }

    /// Frames reordered, dropped as duplicates or late, and given up (lost).
    pub fn reorder_counts(&self) -> (u64, u64, u64) {
        self.reorder.as_ref().map_or((0, 0, 0), |r| (r.duplicates, r.late, r.lost))
    }

    pub fn receive<'s>(&'s mut self, text: &str) -> CarrierEvent<'s> {
        let Ok(msg) = serde_json::from_str::<Inbound>(text) else {
            return CarrierEvent::Ignored(Ignored::MalformedJson);
        };
        if self.state == State::Stopped && msg.event != "connected" {
            return CarrierEvent::Ignored(Ignored::AfterStop);
        }
        let foreign =
            |sid: &Option<Cow<str>>, mine: &Option<String>| matches!((sid, mine), (Some(a), Some(b)) if a != b);
        match msg.event.as_ref() {
            "connected" => CarrierEvent::Connected,
            "start" => {
                if self.state != State::AwaitingStart {
                    return CarrierEvent::Ignored(Ignored::DuplicateStart);
                }
                let Some(start) = msg.start else { return CarrierEvent::Ignored(Ignored::MissingField) };
                let Some(f) = start.media_format else { return CarrierEvent::Ignored(Ignored::MissingField) };
                let Some(wire) = wire_format(&f.encoding, f.sample_rate) else {
                    return CarrierEvent::Ignored(Ignored::UnsupportedFormat);
                };
                if let Wire::Opus(rate) = wire {
                    match OpusCodec::new(rate) {
                        Ok(codec) => self.opus = Some(codec),
                        Err(e) => {
                            self.errors.push(("opus".into(), e.to_string()));
                            return CarrierEvent::Ignored(Ignored::UnsupportedFormat);
                        }
                    }
                }
                let format = wire.bridge_format();
                self.state = State::Streaming;
                self.stream_id = msg.stream_id.as_deref().map(str::to_string);
                let mut params = start.custom_parameters.unwrap_or_default();
                if let Some(cs) = start.client_state {
                    params.insert("client_state".into(), cs);
                }
                CarrierEvent::Start(StreamStart {
                    stream_id: msg.stream_id.map(Cow::into_owned).unwrap_or_default(),
                    carrier_call_id: start.call_control_id,
                    format,
                    params,
                })
            }
            "media" => {
                if self.state == State::AwaitingStart {
                    return CarrierEvent::Ignored(Ignored::MediaBeforeStart);
                }
                if foreign(&msg.stream_id, &self.stream_id) {
                    return CarrierEvent::Ignored(Ignored::ForeignStream);
                }
                let Some(media) = msg.media else { return CarrierEvent::Ignored(Ignored::MissingField) };
                if media.track.as_deref().is_some_and(|t| t != "inbound") {
                    return CarrierEvent::Ignored(Ignored::UnknownEvent);
                }
                self.decoded.clear();
                if B64.decode_vec(media.payload.as_bytes(), &mut self.decoded).is_err() {
                    return CarrierEvent::Ignored(Ignored::BadBase64);
                }
                self.ready.clear();
                // Order by chunk (media only, from 1); fall back to the message sequence number.
                let key = media.chunk.map(|c| (c, true)).or(msg.sequence_number.map(|s| (s, false)));
                let pushed = match key {
                    Some((seq, is_chunk)) => {
                        let reorder = self.reorder.get_or_insert_with(|| {
                            if is_chunk { Reorder::expecting(REORDER_WINDOW, 1) } else { Reorder::new(REORDER_WINDOW) }
                        });
                        match self.opus.as_mut() {
                            Some(codec) => {
                                let mut sink =
                                    OpusSink { codec, out: &mut self.ready, failed: &mut self.opus_failures };
                                reorder.push(seq, &self.decoded, &mut sink)
                            }
                            None => reorder.push(seq, &self.decoded, &mut self.ready),
                        }
                    }
                    None => {
                        match self.opus.as_mut() {
                            Some(codec) => OpusSink { codec, out: &mut self.ready, failed: &mut self.opus_failures }
                                .emit(&self.decoded),
                            None => self.ready.extend_from_slice(&self.decoded),
                        }
                        Pushed::Accepted
                    }
                };
                match pushed {
                    Pushed::Accepted if self.ready.is_empty() => CarrierEvent::Held,
                    Pushed::Accepted => CarrierEvent::Media { payload: &self.ready },
                    Pushed::Duplicate | Pushed::Late => CarrierEvent::Ignored(Ignored::OutOfOrder),
                }
            }
            "mark" => match msg.mark {
                Some(m) => {
                    self.mark_name = m.name;
                    CarrierEvent::Mark { name: &self.mark_name }
                }
                None => CarrierEvent::Ignored(Ignored::MissingField),
            },
            "dtmf" => match msg.dtmf.as_ref().and_then(|d| d.digit.chars().next()) {
                Some(d) if d.is_ascii_digit() || d == '*' || d == '#' => CarrierEvent::Dtmf { digit: d },
                _ => CarrierEvent::Ignored(Ignored::MissingField),
            },
            "stop" => {
                self.state = State::Stopped;
                CarrierEvent::Stop
            }
            "error" => {
                let e = msg.error.or(msg.payload).unwrap_or_default();
                let code = match &e["code"] {
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::String(s) => s.clone(),
                    _ => String::new(),
                };
                self.errors.push((code, e["title"].as_str().unwrap_or_default().to_string()));
                CarrierEvent::Ignored(Ignored::CarrierError)
            }
            _ => CarrierEvent::Ignored(Ignored::UnknownEvent),
        }
    }

    pub fn encode(&mut self, cmd: CarrierCommand<'_>) -> Option<String> {
        if self.state != State::Streaming {
            return None;
        }
        let msg = match cmd {
            CarrierCommand::Media(bytes) => {
                self.b64.clear();
                match self.opus.as_mut() {
                    // One 20 ms frame per message (`max_frames_per_message`), one packet each.
                    Some(codec) => match codec.encode(bytes) {
                        Ok(packet) => B64.encode_string(packet, &mut self.b64),
                        Err(_) => {
                            self.opus_failures += 1;
                            return None;
                        }
                    },
                    None => B64.encode_string(bytes, &mut self.b64),
                }
                Outbound::Media { media: OutMedia { payload: &self.b64 } }
            }
            CarrierCommand::Mark(name) => Outbound::Mark { mark: OutMark { name } },
            CarrierCommand::Clear => Outbound::Clear,
        };
        // Plain strings always serialize.
        serde_json::to_string(&msg).ok()
    }
}

impl CarrierSession for TelnyxSession {
    fn receive<'s>(&'s mut self, text: &str) -> CarrierEvent<'s> {
        TelnyxSession::receive(self, text)
    }
    fn encode(&mut self, cmd: CarrierCommand<'_>) -> Option<String> {
        TelnyxSession::encode(self, cmd)
    }
    fn max_frames_per_message(&self) -> usize {
        if self.opus.is_some() { 1 } else { usize::MAX }
    }
    fn sends_dtmf(&self) -> bool {
        true
    }
    fn messages_missing(&self) -> u64 {
        self.reorder_counts().2
    }
    fn flush_held(&mut self) -> &[u8] {
        self.ready.clear();
        if let Some(reorder) = self.reorder.as_mut() {
            match self.opus.as_mut() {
                Some(codec) => {
                    reorder.flush(&mut OpusSink { codec, out: &mut self.ready, failed: &mut self.opus_failures })
                }
                None => reorder.flush(&mut self.ready),
            }
        }
        &self.ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{Codec, SampleRate, StreamFormat};
    use serde_json::json;

    fn start(encoding: &str, rate: u32) -> String {
        json!({"event": "start", "sequence_number": "1", "stream_id": "s1", "start": {"call_control_id": "v3:abc",
            "client_state": "eyJjYWxsX2lkIjoiY18xIn0=", "media_format": {"encoding": encoding, "sample_rate": rate, "channels": 1}}})
        .to_string()
    }

    fn media(seq: u64, payload: &[u8]) -> String {
        json!({"event": "media", "sequence_number": seq.to_string(), "stream_id": "s1",
            "media": {"track": "inbound", "chunk": (seq - 1).to_string(), "timestamp": "0", "payload": B64.encode(payload)}})
        .to_string()
    }

    #[test]
    fn the_codec_comes_from_each_calls_start() {
        for (enc, rate, want) in [
            ("PCMU", 8000, Some(StreamFormat::PCMU_8K)),
            ("audio/x-mulaw", 8000, Some(StreamFormat::PCMU_8K)),
            ("PCMA", 8000, Some(StreamFormat::PCMA_8K)),
            ("L16", 16000, Some(StreamFormat { codec: Codec::L16, rate: SampleRate::HZ_16000 })),
            ("L16", 8000, Some(StreamFormat { codec: Codec::L16, rate: SampleRate::HZ_8000 })),
            ("OPUS", 16000, Some(StreamFormat { codec: Codec::PcmLe, rate: SampleRate::HZ_16000 })),
            ("G722", 8000, None),
            ("AMR-WB", 16000, None),
        ] {
            assert_eq!(stream_format(enc, Some(rate)), want, "{enc} {rate}");
        }
        let mut s = TelnyxSession::new();
        let CarrierEvent::Start(st) = s.receive(&start("PCMA", 8000)) else { panic!() };
        assert_eq!(
            (st.format, st.carrier_call_id.as_str(), st.stream_id.as_str()),
            (StreamFormat::PCMA_8K, "v3:abc", "s1")
        );
        assert_eq!(st.params["client_state"], "eyJjYWxsX2lkIjoiY18xIn0=");
    }

    #[test]
    fn opus_streams_are_carried_only_with_the_opus_feature() {
        let mut s = TelnyxSession::new();
        let ev = s.receive(&start("OPUS", 16000));
        if cfg!(feature = "opus") {
            assert!(matches!(ev, CarrierEvent::Start(_)), "{ev:?}");
            assert_eq!(CarrierSession::max_frames_per_message(&s), 1, "one packet per message");
            let m: serde_json::Value =
                serde_json::from_str(&s.encode(CarrierCommand::Media(&[0u8; 640])).unwrap()).unwrap();
            let packet = B64.decode(m["media"]["payload"].as_str().unwrap()).unwrap();
            assert!(!packet.is_empty() && packet.len() < 640, "an Opus packet, not raw PCM");
        } else {
            assert_eq!(ev, CarrierEvent::Ignored(Ignored::UnsupportedFormat));
            assert!(s.errors[0].1.contains("--features opus"), "{:?}", s.errors);
        }
    }

    #[test]
    fn out_of_order_frames_come_out_in_order_and_duplicates_are_dropped() {
        let mut s = TelnyxSession::new();
        let _ = s.receive(&start("PCMU", 8000));
        assert_eq!(s.receive(&media(2, b"a")), CarrierEvent::Media { payload: b"a" });
        assert_eq!(s.receive(&media(4, b"c")), CarrierEvent::Held);
        assert_eq!(s.receive(&media(3, b"b")), CarrierEvent::Media { payload: b"bc" });
        assert_eq!(s.receive(&media(3, b"b")), CarrierEvent::Ignored(Ignored::OutOfOrder));
        assert_eq!(s.reorder_counts(), (0, 1, 0));
        // Chunk 4 never comes: once the window is full the stream goes on without it.
        let _ = s.receive(&media(6, b"e"));
        let _ = s.receive(&media(7, b"f"));
        assert_eq!(s.receive(&media(8, b"g")), CarrierEvent::Media { payload: b"efg" });
        assert_eq!(s.messages_missing(), 1);
        // The stream stops while frames wait behind a gap: they are released, the gap skipped.
        assert_eq!(s.receive(&media(10, b"i")), CarrierEvent::Held);
        assert_eq!(s.receive(&media(11, b"j")), CarrierEvent::Held);
        assert_eq!(s.flush_held(), b"ij");
        assert_eq!(s.messages_missing(), 2);
        assert_eq!(s.flush_held(), b"", "nothing twice");
    }

    #[test]
    fn both_error_shapes_are_read_and_commands_carry_no_stream_id() {
        let mut s = TelnyxSession::new();
        assert_eq!(s.encode(CarrierCommand::Clear), None, "nothing before start");
        let _ = s.receive(&start("PCMU", 8000));
        let _ = s.receive(
            r#"{"event":"error","stream_id":"s1","payload":{"code":100003,"title":"malformed_frame","detail":"x"}}"#,
        );
        let _ = s.receive(r#"{"event":"error","stream_id":"s1","sequence_number":"6","error":{"code":"100005","title":"rate_limit_reached"}}"#);
        assert_eq!(
            s.errors,
            [("100003".to_string(), "malformed_frame".to_string()), ("100005".into(), "rate_limit_reached".into())]
        );
        assert_eq!(s.encode(CarrierCommand::Clear).unwrap(), r#"{"event":"clear"}"#);
        let m: serde_json::Value =
            serde_json::from_str(&s.encode(CarrierCommand::Media(&[0xFF, 0xFF])).unwrap()).unwrap();
        assert_eq!(m, json!({"event": "media", "media": {"payload": "//8="}}));
        assert_eq!(s.receive(r#"{"event":"surprise"}"#), CarrierEvent::Ignored(Ignored::UnknownEvent));
        assert_eq!(s.receive(&media(9, b"x").replace("s1", "s2")), CarrierEvent::Ignored(Ignored::ForeignStream));
    }
}
