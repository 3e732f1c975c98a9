//! The mock model's side of a probe run (`voxbridge replay --serve-model`, ADR 0015): caller
//! probe frames recognised as they arrive, answers made of probe frames, both timed in the
//! shared record. Used by the Realtime and the GPT-Live conversations alike.

use std::sync::Arc;
use std::time::Instant;

use crate::media::transcode::{self, StreamFormat};
use crate::probe::book::ModelFrame;
use crate::probe::signal;
use crate::probe::{Book, Decoder, FrameId, Level, ModelEar, ModelSide};

/// Probe mode: this connection's stream number, its record, and its ear for caller frames.
pub struct ProbeSide {
    id: u16,
    side: Arc<ModelSide>,
    ear: ModelEar,
    decoder: Decoder,
    phase: usize,
    pcm8k: Vec<i16>,
}

impl ProbeSide {
    pub fn new(book: &Book) -> ProbeSide {
        let (id, side) = book.open_model();
        ProbeSide {
            id,
            side,
            ear: ModelEar::new(book.clone(), id),
            decoder: Decoder::new(),
            phase: 0,
            pcm8k: Vec::new(),
        }
    }

    /// Caller audio (`rate` Hz samples) arrived at `now`.
    pub fn hear(&mut self, pcm: &[i16], rate: u32, now: Instant) {
        self.pcm8k.clear();
        signal::to_8k(pcm, rate, &mut self.phase, &mut self.pcm8k);
        let ear = &mut self.ear;
        self.decoder.push(&self.pcm8k, now, &mut |id, at| ear.heard(id, at));
    }

    /// An answer of `frames` probe frames for response `response`: its first index, its audio.
    pub fn answer(&mut self, frames: usize, response: u32, fmt: StreamFormat) -> (u32, Vec<u8>) {
        let base = {
            let mut line = self.side.lock();
            let base = line.frames.len() as u32;
            line.frames.extend((0..frames).map(|_| ModelFrame { sent: None, response }));
            base
        };
        let mut pcm = Vec::new();
        for i in 0..frames as u32 {
            signal::synth(FrameId::new(self.id as u32, base + i), Level::Loud, fmt.rate.hz(), &mut pcm);
        }
        let mut audio = Vec::with_capacity(pcm.len() * 2);
        transcode::encode_samples(fmt.codec, &pcm, &mut audio);
        (base, audio)
    }

    /// The frames with these model-side indexes left at `now`.
    pub fn sent_each(&self, indexes: impl Iterator<Item = u32>, now: Instant) {
        let mut line = self.side.lock();
        for i in indexes {
            if let Some(f) = line.frames.get_mut(i as usize) {
                f.sent.get_or_insert(now);
            }
        }
    }
}

impl Drop for ProbeSide {
    fn drop(&mut self) {
        self.side.close();
    }
}
