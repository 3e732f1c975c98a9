//! Telephony carriers: each speaks its own wire protocol and turns it into these neutral
//! events and commands, so the call bridge never sees carrier JSON. No sockets here.

use std::collections::BTreeMap;

use crate::media::StreamFormat;

pub mod carrier;
pub mod rest;
pub mod stream_token;
pub mod telnyx;
pub mod twilio;

/// What a carrier's media socket told us, after parsing and validation.
#[derive(Debug, PartialEq)]
pub enum CarrierEvent<'a> {
    /// The socket is up; no stream yet.
    Connected,
    /// The stream began: from here on media flows and commands may be sent.
    Start(StreamStart),
    /// Caller audio in the stream's format (already base64-decoded).
    Media { payload: &'a [u8] },
    /// Playback reached (or `clear` flushed) the mark with this name.
    Mark { name: &'a str },
    /// The caller pressed a key.
    Dtmf { digit: char },
    /// The carrier ended the stream.
    Stop,
    /// A frame is held until an earlier one arrives (carriers that reorder).
    Held,
    /// Not acted on; counted by reason.
    Ignored(Ignored),
}

/// The stream's identity and format, from the carrier's `start` message.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamStart {
    /// Carrier stream id (Twilio `streamSid`).
    pub stream_id: String,
    /// Carrier call id (Twilio `CallSid`), used for REST hang-up.
    pub carrier_call_id: String,
    pub format: StreamFormat,
    /// Parameters we put in the stream URL or TwiML (`call_id`, `token`).
    pub params: BTreeMap<String, String>,
}

/// Why a carrier message was ignored. Each is counted in metrics; none ends a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ignored {
    MalformedJson,
    BadBase64,
    UnknownEvent,
    MissingField,
    MediaBeforeStart,
    ForeignStream,
    DuplicateStart,
    AfterStop,
    UnsupportedFormat,
    BinaryFrame,
    /// A duplicate or a frame older than what was already played.
    OutOfOrder,
    /// The carrier reported an error on the stream.
    CarrierError,
}

impl Ignored {
    pub fn as_str(self) -> &'static str {
        match self {
            Ignored::MalformedJson => "malformed_json",
            Ignored::BadBase64 => "bad_base64",
            Ignored::UnknownEvent => "unknown_event",
            Ignored::MissingField => "missing_field",
            Ignored::MediaBeforeStart => "media_before_start",
            Ignored::ForeignStream => "foreign_stream",
            Ignored::DuplicateStart => "duplicate_start",
            Ignored::AfterStop => "after_stop",
            Ignored::UnsupportedFormat => "unsupported_format",
            Ignored::BinaryFrame => "binary_frame",
            Ignored::OutOfOrder => "out_of_order",
            Ignored::CarrierError => "carrier_error",
        }
    }
}

/// What the bridge asks the carrier to do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CarrierCommand<'a> {
    /// Play this audio (stream format) after what is queued.
    Media(&'a [u8]),
    /// Tell us when playback reaches this point.
    Mark(&'a str),
    /// Drop all queued audio now (pending marks come back).
    Clear,
}

/// A carrier's media-socket protocol, sans-IO: text frames in, neutral events out; neutral
/// commands in, text frames out (`None` when nothing may be sent yet).
pub trait CarrierSession: Send {
    fn receive<'s>(&'s mut self, text: &str) -> CarrierEvent<'s>;
    fn encode(&mut self, cmd: CarrierCommand<'_>) -> Option<String>;
    /// The carrier presses keys on command (Telnyx `send_dtmf`); otherwise DTMF goes in band,
    /// as tones in the audio (Twilio's stream has no DTMF command).
    fn sends_dtmf(&self) -> bool {
        false
    }
    /// Most 20 ms frames one `media` message may carry (packet codecs: one).
    fn max_frames_per_message(&self) -> usize {
        usize::MAX
    }
    /// Inbound messages the carrier numbered that never arrived in time to be used: counted
    /// (exported as a metric), never fatal.
    fn messages_missing(&self) -> u64 {
        0
    }
    /// At the end of the stream: audio still held for reordering, in order, gaps skipped.
    fn flush_held(&mut self) -> &[u8] {
        &[]
    }
}

impl CarrierSession for twilio::TwilioSession {
    fn receive<'s>(&'s mut self, text: &str) -> CarrierEvent<'s> {
        twilio::TwilioSession::receive(self, text)
    }
    fn encode(&mut self, cmd: CarrierCommand<'_>) -> Option<String> {
        twilio::TwilioSession::encode(self, cmd)
    }
    fn messages_missing(&self) -> u64 {
        self.sequence_gaps()
    }
}
