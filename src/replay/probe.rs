//! One replayed call's probe frames (`--serve-model`): the caller's audio replaced by frames
//! that say which they are (loud where the recording speaks, quiet where it does not), the
//! model's audio recognised as it arrives, and the call's one-way figures once it is over.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::client::replace_field;
use crate::media::transcode::{self, StreamFormat};
use crate::probe::book::CallLine;
use crate::probe::code::{FrameId, STREAMS, unwrap_index};
use crate::probe::signal;
use crate::probe::{Book, Decoder, Level, OneWayCall, tally};

/// How long a finished call waits for its model connections to close (their last frames).
const MODEL_CLOSE_WAIT: Duration = Duration::from_secs(3);

/// What the caller heard from one model connection.
#[derive(Debug, Default)]
struct Heard {
    last: Option<u32>,
    at: HashMap<u32, Instant>,
}

pub struct CallProbe {
    book: Book,
    tag: u16,
    line: Arc<Mutex<CallLine>>,
    /// The carrier's audio format, both ways.
    wire: StreamFormat,
    decoder: Decoder,
    phase: usize,
    heard: HashMap<u16, Heard>,
    clears: Vec<Instant>,
    hung_up: Option<Instant>,
    pcm: Vec<i16>,
    bytes: Vec<u8>,
    pcm8k: Vec<i16>,
}

impl CallProbe {
    /// Call `n` of the run, speaking `wire`.
    pub fn new(book: &Book, n: usize, wire: StreamFormat) -> CallProbe {
        let tag = (n as u32 % STREAMS) as u16;
        CallProbe {
            line: book.open_call(tag),
            book: book.clone(),
            tag,
            wire,
            decoder: Decoder::new(),
            phase: 0,
            heard: HashMap::new(),
            clears: Vec::new(),
            hung_up: None,
            pcm: Vec::new(),
            bytes: Vec::new(),
            pcm8k: Vec::new(),
        }
    }

    /// `text` (a carrier `media` frame) with its payload replaced by probe frame `index` (its
    /// place in the stream, which may be sent just before its predecessor); sent at `now`.
    pub fn caller_frame(&mut self, text: &Utf8Bytes, index: u32, voiced: bool, now: Instant) -> Utf8Bytes {
        {
            let mut line = self.line.lock().unwrap_or_else(|e| e.into_inner());
            let i = index as usize;
            if line.sent.len() <= i {
                // A frame sent ahead of its predecessor: theirs is written when it is sent.
                line.sent.resize(i + 1, now);
            }
            line.sent[i] = now;
        }
        self.pcm.clear();
        let level = if voiced { Level::Loud } else { Level::Quiet };
        signal::synth(FrameId::new(self.tag as u32, index), level, self.wire.rate.hz(), &mut self.pcm);
        self.bytes.clear();
        transcode::encode_samples(self.wire.codec, &self.pcm, &mut self.bytes);
        replace_field(text, "payload", &B64.encode(&self.bytes))
    }

    /// A `media` payload from the server arrived at `now`.
    pub fn model_audio(&mut self, payload_b64: &str, now: Instant) {
        self.bytes.clear();
        if B64.decode_vec(payload_b64, &mut self.bytes).is_err() {
            return;
        }
        transcode::decode_samples(self.wire.codec, &self.bytes, &mut self.pcm);
        self.pcm8k.clear();
        signal::to_8k(&self.pcm, self.wire.rate.hz(), &mut self.phase, &mut self.pcm8k);
        let heard = &mut self.heard;
        self.decoder.push(&self.pcm8k, now, &mut |id, at| note_heard(heard, id, at));
    }

    /// The server cleared the caller's audio.
    pub fn clear(&mut self, now: Instant) {
        self.clears.push(now);
        self.decoder.reset();
        self.phase = 0;
    }

    /// The caller hung up (the stream's last message was sent).
    pub fn hang_up(&mut self, now: Instant) {
        self.hung_up.get_or_insert(now);
    }

    /// The call is over: waits for its model connections to close, then tallies both ways.
    pub async fn finish(mut self) -> OneWayCall {
        let heard = &mut self.heard;
        self.decoder.finish(&mut |id, at| note_heard(heard, id, at));
        let hung_up = self.hung_up.unwrap_or_else(Instant::now);
        let models: Vec<u16> = self.line.lock().unwrap_or_else(|e| e.into_inner()).models.clone();
        let sides: Vec<_> = models.iter().filter_map(|m| self.book.model(*m).map(|s| (*m, s))).collect();
        let _ = tokio::time::timeout(MODEL_CLOSE_WAIT, async {
            for (_, side) in &sides {
                side.closed().await;
            }
        })
        .await;
        let mut out = OneWayCall::default();
        {
            let line = self.line.lock().unwrap_or_else(|e| e.into_inner());
            tally::caller_to_model(&line.sent, &line.arrived, &mut out);
        }
        let empty = HashMap::new();
        for (m, side) in &sides {
            let heard = self.heard.get(m).map_or(&empty, |h| &h.at);
            tally::model_to_caller(&side.lock().frames, heard, &self.clears, hung_up, &mut out);
            self.book.forget_model(*m);
        }
        out.undecodable = self.decoder.undecodable;
        self.book.close_call(self.tag);
        out
    }
}

/// Model frame `id` reached the caller at `at` (the first time counts).
fn note_heard(heard: &mut HashMap<u16, Heard>, id: FrameId, at: Instant) {
    let h = heard.entry(id.stream).or_default();
    let index = unwrap_index(h.last, id.index);
    h.last = Some(index);
    h.at.entry(index).or_insert(at);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frames_payload_is_replaced_and_nothing_else() {
        let t = Utf8Bytes::from(r#"{"event":"media","media":{"track":"inbound","payload":"//8="},"streamSid":"MZ1"}"#);
        assert_eq!(
            replace_field(&t, "payload", "AAAA").as_str(),
            r#"{"event":"media","media":{"track":"inbound","payload":"AAAA"},"streamSid":"MZ1"}"#
        );
    }

    #[test]
    fn a_caller_frame_carries_its_call_and_index_and_is_booked_as_sent_even_ahead_of_its_predecessor() {
        let book = Book::default();
        let mut p = CallProbe::new(&book, 4101, StreamFormat::PCMU_8K);
        let t = Utf8Bytes::from(r#"{"event":"media","media":{"payload":"//8="}}"#);
        let (t0, t1) = (Instant::now(), Instant::now() + Duration::from_millis(20));
        let second = p.caller_frame(&t, 1, false, t0);
        p.caller_frame(&t, 0, true, t1);
        let v: serde_json::Value = serde_json::from_str(second.as_str()).unwrap();
        let bytes = B64.decode(v["media"]["payload"].as_str().unwrap()).unwrap();
        assert_eq!(bytes.len(), 160);
        let mut pcm = Vec::new();
        transcode::decode_samples(transcode::Codec::Pcmu, &bytes, &mut pcm);
        let (id, _) = signal::detect(&pcm[signal::WINDOW_START..]).expect("a probe frame");
        assert_eq!(id, FrameId::new(4101, 1));
        assert_eq!(book.call(id.stream).unwrap().lock().unwrap().sent, [t1, t0], "each frame's own send time");
    }
}
