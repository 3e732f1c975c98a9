//! Sans-IO Twilio Media Streams session: text frames in, neutral carrier events out; neutral
//! commands in, text frames out. Enforces the stream's order (`start` first, one stream id).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::wire::{InboundRaw, OutMark, OutMedia, Outbound};
use crate::media::{Codec, SampleRate, StreamFormat};
use crate::providers::{CarrierCommand, CarrierEvent, Ignored, StreamStart};

#[derive(Debug, PartialEq)]
enum State {
    AwaitingStart,
    Streaming { stream_sid: String },
    Stopped,
}

/// One Twilio media socket's protocol state, with reusable decode/encode buffers.
#[derive(Debug)]
pub struct TwilioSession {
    state: State,
    payload: Vec<u8>,
    b64: String,
    mark_name: String,
    /// Last `sequenceNumber` seen; numbers skipped are counted, not fatal (Twilio runs over TCP).
    last_sequence: Option<u64>,
    sequence_gaps: u64,
}

impl Default for TwilioSession {
    fn default() -> Self {
        Self::new()
    }
}

impl TwilioSession {
    pub fn new() -> TwilioSession {
        TwilioSession {
            state: State::AwaitingStart,
            payload: Vec::with_capacity(1024),
            b64: String::with_capacity(2048),
            mark_name: String::with_capacity(64),
            last_sequence: None,
            sequence_gaps: 0,
        }
    }

    /// The stream id once `start` has arrived.
    pub fn stream_sid(&self) -> Option<&str> {
        match &self.state {
            State::Streaming { stream_sid } => Some(stream_sid),
            _ => None,
        }
    }

    /// Sequence numbers skipped so far.
    pub fn sequence_gaps(&self) -> u64 {
        self.sequence_gaps
    }

    /// Parses one text frame.
    pub fn receive<'s>(&'s mut self, text: &str) -> CarrierEvent<'s> {
        let msg: InboundRaw = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(_) => return CarrierEvent::Ignored(Ignored::MalformedJson),
        };
        if let Some(seq) = msg.sequence_number {
            if let Some(last) = self.last_sequence
                && seq > last + 1
            {
                self.sequence_gaps += seq - last - 1;
            }
            self.last_sequence = Some(seq);
        }
        if self.state == State::Stopped && msg.event != "connected" {
            return CarrierEvent::Ignored(Ignored::AfterStop);
        }
        match msg.event.as_ref() {
            "connected" => CarrierEvent::Connected,
            "start" => self.on_start(msg),
            "media" => {
                let Some(media) = msg.media else {
                    return CarrierEvent::Ignored(Ignored::MissingField);
                };
                if let Err(e) = self.check_stream(msg.stream_sid.as_deref()) {
                    return CarrierEvent::Ignored(e);
                }
                if media.track.as_deref().is_some_and(|t| t != "inbound") {
                    return CarrierEvent::Ignored(Ignored::UnknownEvent);
                }
                self.payload.clear();
                if B64.decode_vec(media.payload.as_bytes(), &mut self.payload).is_err() {
                    return CarrierEvent::Ignored(Ignored::BadBase64);
                }
                CarrierEvent::Media { payload: &self.payload }
            }
            "mark" => {
                let Some(mark) = msg.mark else {
                    return CarrierEvent::Ignored(Ignored::MissingField);
                };
                if let Err(e) = self.check_stream(msg.stream_sid.as_deref()) {
                    return CarrierEvent::Ignored(e);
                }
                self.mark_name.clear();
                self.mark_name.push_str(&mark.name);
                CarrierEvent::Mark { name: &self.mark_name }
            }
            "dtmf" => {
                let Some(dtmf) = msg.dtmf else {
                    return CarrierEvent::Ignored(Ignored::MissingField);
                };
                if let Err(e) = self.check_stream(msg.stream_sid.as_deref()) {
                    return CarrierEvent::Ignored(e);
                }
                match dtmf.digit.chars().next() {
                    Some(d) if dtmf.digit.len() == 1 && (d.is_ascii_digit() || d == '*' || d == '#') => {
                        CarrierEvent::Dtmf { digit: d }
                    }
                    _ => CarrierEvent::Ignored(Ignored::MissingField),
                }
            }
            "stop" => {
                if let Err(e) = self.check_stream(msg.stream_sid.as_deref()) {
                    return CarrierEvent::Ignored(e);
                }
                self.state = State::Stopped;
                CarrierEvent::Stop
            }
            _ => CarrierEvent::Ignored(Ignored::UnknownEvent),
        }
    }

    fn on_start(&mut self, msg: InboundRaw) -> CarrierEvent<'static> {
        if self.state != State::AwaitingStart {
            return CarrierEvent::Ignored(Ignored::DuplicateStart);
        }
        let Some(start) = msg.start else {
            return CarrierEvent::Ignored(Ignored::MissingField);
        };
        let stream_sid = if start.stream_sid.is_empty() {
            msg.stream_sid.map(|s| s.into_owned()).unwrap_or_default()
        } else {
            start.stream_sid.clone()
        };
        if stream_sid.is_empty() {
            return CarrierEvent::Ignored(Ignored::MissingField);
        }
        // Twilio documents μ-law 8 kHz mono only; anything else is refused, not guessed at.
        let format = match &start.media_format {
            None => StreamFormat::PCMU_8K,
            Some(f) if f.encoding == "audio/x-mulaw" && f.channels == 1 => {
                match SampleRate::new(f.sample_rate as u32) {
                    Some(rate) => StreamFormat { codec: Codec::Pcmu, rate },
                    None => return CarrierEvent::Ignored(Ignored::UnsupportedFormat),
                }
            }
            Some(_) => return CarrierEvent::Ignored(Ignored::UnsupportedFormat),
        };
        if format != StreamFormat::PCMU_8K {
            return CarrierEvent::Ignored(Ignored::UnsupportedFormat);
        }
        self.state = State::Streaming { stream_sid: stream_sid.clone() };
        CarrierEvent::Start(StreamStart {
            stream_id: stream_sid,
            carrier_call_id: start.call_sid,
            format,
            params: start.custom_parameters,
        })
    }

    fn check_stream(&self, sid: Option<&str>) -> Result<(), Ignored> {
        match &self.state {
            State::AwaitingStart => Err(Ignored::MediaBeforeStart),
            State::Stopped => Err(Ignored::AfterStop),
            State::Streaming { stream_sid } => match sid {
                Some(s) if s == stream_sid => Ok(()),
                _ => Err(Ignored::ForeignStream),
            },
        }
    }

    /// Serializes a command; `None` before `start` (nothing may be sent without a stream id).
    pub fn encode(&mut self, cmd: CarrierCommand<'_>) -> Option<String> {
        let State::Streaming { stream_sid } = &self.state else {
            return None;
        };
        let msg = match cmd {
            CarrierCommand::Media(bytes) => {
                self.b64.clear();
                B64.encode_string(bytes, &mut self.b64);
                Outbound::Media { stream_sid, media: OutMedia { payload: &self.b64 } }
            }
            CarrierCommand::Mark(name) => Outbound::Mark { stream_sid, mark: OutMark { name } },
            CarrierCommand::Clear => Outbound::Clear { stream_sid },
        };
        // Serializing plain strings into a String cannot fail.
        serde_json::to_string(&msg).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str = r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"customParameters":{"call_id":"c1","token":"tok"},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#;

    fn media(sid: &str, payload: &str) -> String {
        format!(
            r#"{{"event":"media","sequenceNumber":"2","streamSid":"{sid}","media":{{"track":"inbound","chunk":"1","timestamp":"0","payload":"{payload}"}}}}"#
        )
    }

    #[test]
    fn media_before_start_is_ignored_and_nothing_can_be_sent() {
        let mut s = TwilioSession::new();
        assert_eq!(s.receive(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#), CarrierEvent::Connected);
        assert_eq!(s.receive(&media("MZ1", "/w==")), CarrierEvent::Ignored(Ignored::MediaBeforeStart));
        assert_eq!(s.encode(CarrierCommand::Clear), None);
    }

    #[test]
    fn start_then_media_decodes_payload() {
        let mut s = TwilioSession::new();
        let CarrierEvent::Start(start) = s.receive(START) else { panic!("start expected") };
        assert_eq!(start.stream_id, "MZ1");
        assert_eq!(start.carrier_call_id, "CA1");
        assert_eq!(start.params["token"], "tok");
        assert_eq!(start.format, StreamFormat::PCMU_8K);
        assert_eq!(s.receive(&media("MZ1", "/38A")), CarrierEvent::Media { payload: &[0xFF, 0x7F, 0x00] });
    }

    #[test]
    fn bad_input_is_classified_not_fatal() {
        let mut s = TwilioSession::new();
        let _ = s.receive(START);
        assert_eq!(s.receive("{not json"), CarrierEvent::Ignored(Ignored::MalformedJson));
        assert_eq!(s.receive(&media("MZ1", "!!!")), CarrierEvent::Ignored(Ignored::BadBase64));
        assert_eq!(s.receive(&media("MZ9", "/w==")), CarrierEvent::Ignored(Ignored::ForeignStream));
        assert_eq!(
            s.receive(r#"{"event":"surprise","streamSid":"MZ1"}"#),
            CarrierEvent::Ignored(Ignored::UnknownEvent)
        );
        assert_eq!(s.receive(START), CarrierEvent::Ignored(Ignored::DuplicateStart));
        assert_eq!(s.receive(r#"{"event":"media","streamSid":"MZ1"}"#), CarrierEvent::Ignored(Ignored::MissingField));
        // The stream still works after all of that.
        assert_eq!(s.receive(&media("MZ1", "/w==")), CarrierEvent::Media { payload: &[0xFF] });
    }

    #[test]
    fn mark_dtmf_stop_and_after_stop() {
        let mut s = TwilioSession::new();
        let _ = s.receive(START);
        assert_eq!(
            s.receive(r#"{"event":"mark","sequenceNumber":"3","streamSid":"MZ1","mark":{"name":"a:20:1"}}"#),
            CarrierEvent::Mark { name: "a:20:1" }
        );
        assert_eq!(
            s.receive(r##"{"event":"dtmf","streamSid":"MZ1","dtmf":{"track":"inbound_track","digit":"#"}}"##),
            CarrierEvent::Dtmf { digit: '#' }
        );
        assert_eq!(
            s.receive(r#"{"event":"dtmf","streamSid":"MZ1","dtmf":{"digit":"12"}}"#),
            CarrierEvent::Ignored(Ignored::MissingField)
        );
        assert_eq!(
            s.receive(r#"{"event":"stop","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}"#),
            CarrierEvent::Stop
        );
        assert_eq!(s.receive(&media("MZ1", "/w==")), CarrierEvent::Ignored(Ignored::AfterStop));
    }

    #[test]
    fn non_ulaw_format_is_refused() {
        let mut s = TwilioSession::new();
        let start = START.replace("audio/x-mulaw", "audio/x-alaw");
        assert_eq!(s.receive(&start), CarrierEvent::Ignored(Ignored::UnsupportedFormat));
        assert_eq!(s.stream_sid(), None);
    }

    #[test]
    fn encodes_commands_with_stream_sid_and_base64() {
        let mut s = TwilioSession::new();
        let _ = s.receive(START);
        let media: serde_json::Value =
            serde_json::from_str(&s.encode(CarrierCommand::Media(&[0xFF, 0xFF])).unwrap()).unwrap();
        assert_eq!(media["media"]["payload"], "//8=");
        assert_eq!(media["streamSid"], "MZ1");
        assert!(s.encode(CarrierCommand::Clear).unwrap().contains(r#""event":"clear""#));
    }

    #[test]
    fn sequence_gaps_are_counted() {
        let mut s = TwilioSession::new();
        let _ = s.receive(START);
        let _ = s.receive(&media("MZ1", "/w==").replace(r#""sequenceNumber":"2""#, r#""sequenceNumber":"5""#));
        assert_eq!(s.sequence_gaps(), 3, "2, 3 and 4 never came");
    }
}

#[cfg(test)]
mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a carrier sends, parsing returns an event; it never panics.
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,400}", prefix in prop_oneof![Just(""), Just(r#"{"event":"media","streamSid":"MZ1","media":{"payload":""#), Just(r#"{"event":"start","start":"#)]) {
            let mut s = TwilioSession::new();
            let _ = s.receive(r#"{"event":"start","streamSid":"MZ1","start":{"streamSid":"MZ1","callSid":"CA1"}}"#);
            let _ = s.receive(&format!("{prefix}{text}"));
            let _ = s.encode(CarrierCommand::Media(text.as_bytes()));
        }
    }
}
