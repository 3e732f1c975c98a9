//! Stream formats and the per-call transcoder between a carrier format and the model's format.
//! Identical formats pass bytes through untouched (bit-exact); otherwise decode → resample →
//! encode through buffers sized once per call.

use std::time::Duration;

use super::SampleRate;
use super::g711;
use super::pcm16;
use super::resample::{ResampleSetupError, StreamResampler};

/// Sample encodings voxbridge moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 μ-law (Twilio, Telnyx PCMU, OpenAI `audio/pcmu`).
    Pcmu,
    /// G.711 A-law (Telnyx PCMA, OpenAI `audio/pcma`).
    Pcma,
    /// 16-bit linear, big-endian (Telnyx L16, network order).
    L16,
    /// 16-bit linear, little-endian (OpenAI `audio/pcm`).
    PcmLe,
}

impl Codec {
    pub const fn bytes_per_sample(self) -> usize {
        match self {
            Codec::Pcmu | Codec::Pcma => 1,
            Codec::L16 | Codec::PcmLe => 2,
        }
    }

    /// The byte that encodes silence (for padding a last partial frame).
    pub const fn silence_byte(self) -> u8 {
        match self {
            Codec::Pcmu => g711::ULAW_SILENCE,
            Codec::Pcma => g711::ALAW_SILENCE,
            Codec::L16 | Codec::PcmLe => 0,
        }
    }
}

/// A mono stream's encoding and rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamFormat {
    pub codec: Codec,
    pub rate: SampleRate,
}

impl StreamFormat {
    /// Twilio Media Streams, both directions.
    pub const PCMU_8K: StreamFormat = StreamFormat { codec: Codec::Pcmu, rate: SampleRate::HZ_8000 };
    pub const PCMA_8K: StreamFormat = StreamFormat { codec: Codec::Pcma, rate: SampleRate::HZ_8000 };
    /// OpenAI `audio/pcm` (24 kHz only).
    pub const PCM_24K: StreamFormat = StreamFormat { codec: Codec::PcmLe, rate: SampleRate::HZ_24000 };

    /// Bytes in one 20 ms frame.
    pub const fn frame_bytes_20ms(self) -> usize {
        self.rate.frame_20ms() * self.codec.bytes_per_sample()
    }

    /// Samples in `bytes` bytes of this format.
    pub const fn samples_in_bytes(self, bytes: usize) -> u64 {
        (bytes / self.codec.bytes_per_sample()) as u64
    }

    /// Bytes for `ms` milliseconds.
    pub const fn bytes_for_ms(self, ms: u64) -> usize {
        self.rate.samples_in_ms(ms) as usize * self.codec.bytes_per_sample()
    }
}

/// Largest input handled in one pass; bigger inputs are processed in slices of this size (one
/// 20 ms frame: the per-call buffers stay small, and the resampler streams anyway).
const SLICE_MS: u64 = 20;

/// Converts one direction of one call from `from` to `to`.
#[derive(Debug)]
pub struct Transcoder {
    from: StreamFormat,
    to: StreamFormat,
    resampler: Option<StreamResampler>,
    decoded: Box<[i16]>,
    resampled: Vec<i16>,
}

/// Carrier → model.
pub type InboundPath = Transcoder;
/// Model → carrier.
pub type OutboundPath = Transcoder;

impl Transcoder {
    pub fn new(from: StreamFormat, to: StreamFormat) -> Result<Transcoder, ResampleSetupError> {
        let resampler = if from.rate == to.rate { None } else { Some(StreamResampler::new(from.rate, to.rate)?) };
        // A passthrough needs no buffers at all.
        let slice = if from == to { 0 } else { from.rate.samples_in_ms(SLICE_MS) as usize };
        let resampled_cap = resampler.as_ref().map_or(0, |r| r.max_output_for(slice) + to.rate.frame_20ms() * 4);
        Ok(Transcoder {
            from,
            to,
            resampler,
            decoded: vec![0; slice].into_boxed_slice(),
            resampled: Vec::with_capacity(resampled_cap),
        })
    }

    pub fn from(&self) -> StreamFormat {
        self.from
    }

    pub fn to(&self) -> StreamFormat {
        self.to
    }

    /// True when bytes are forwarded verbatim.
    pub fn is_passthrough(&self) -> bool {
        self.from == self.to
    }

    /// Signal delay added by this path (resampler only).
    pub fn delay(&self) -> Duration {
        self.resampler.as_ref().map_or(Duration::ZERO, |r| r.delay())
    }

    /// Output bytes that `input_bytes` can produce at most (plus a flush); size sinks with it.
    pub fn max_output_bytes(&self, input_bytes: usize) -> usize {
        let samples = input_bytes / self.from.codec.bytes_per_sample();
        let out = samples * self.to.rate.hz() as usize / self.from.rate.hz() as usize;
        (out + 3 * self.to.rate.frame_20ms()) * self.to.codec.bytes_per_sample()
    }

    /// Converts `input`, appending the result to `out`.
    pub fn process(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if self.is_passthrough() {
            out.extend_from_slice(input);
            return;
        }
        let step = self.decoded.len() * self.from.codec.bytes_per_sample();
        for slice in input.chunks(step) {
            let n = decode(self.from.codec, slice, &mut self.decoded);
            match self.resampler.as_mut() {
                None => encode(self.to.codec, &self.decoded[..n], out),
                Some(r) => {
                    self.resampled.clear();
                    r.process(&self.decoded[..n], &mut self.resampled);
                    encode(self.to.codec, &self.resampled, out);
                }
            }
        }
    }

    /// Pushes out audio held inside the resampler (end of an answer). No-op when not resampling.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        if let Some(r) = self.resampler.as_mut() {
            self.resampled.clear();
            r.flush(&mut self.resampled);
            encode(self.to.codec, &self.resampled, out);
        }
    }
}

/// `bytes` of `codec` as 16-bit samples, replacing `out`'s contents.
pub fn decode_samples(codec: Codec, bytes: &[u8], out: &mut Vec<i16>) {
    out.resize(bytes.len() / codec.bytes_per_sample(), 0);
    let n = decode(codec, bytes, out);
    out.truncate(n);
}

/// Samples as `codec` bytes, appended to `out`.
pub fn encode_samples(codec: Codec, samples: &[i16], out: &mut Vec<u8>) {
    encode(codec, samples, out);
}

fn decode(codec: Codec, input: &[u8], out: &mut [i16]) -> usize {
    match codec {
        Codec::Pcmu => g711::ulaw_decode_into(input, out),
        Codec::Pcma => g711::alaw_decode_into(input, out),
        Codec::L16 => pcm16::be_bytes_to_samples(input, out),
        Codec::PcmLe => pcm16::le_bytes_to_samples(input, out),
    }
}

fn encode(codec: Codec, input: &[i16], out: &mut Vec<u8>) {
    match codec {
        Codec::Pcmu => out.extend(input.iter().map(|&s| g711::ulaw_encode(s))),
        Codec::Pcma => out.extend(input.iter().map(|&s| g711::alaw_encode(s))),
        Codec::L16 => pcm16::samples_to_be_bytes(input, out),
        Codec::PcmLe => pcm16::samples_to_le_bytes(input, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_formats_pass_through_bit_exact() {
        let mut t = Transcoder::new(StreamFormat::PCMU_8K, StreamFormat::PCMU_8K).unwrap();
        assert!(t.is_passthrough());
        let input: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        t.process(&input, &mut out);
        assert_eq!(out, input);
    }

    #[test]
    fn ulaw_to_pcm24k_and_back_keeps_length_and_shape() {
        let mut up = Transcoder::new(StreamFormat::PCMU_8K, StreamFormat::PCM_24K).unwrap();
        let mut down = Transcoder::new(StreamFormat::PCM_24K, StreamFormat::PCMU_8K).unwrap();
        let tone: Vec<u8> = (0..8000).map(|i| g711::ulaw_encode((8000.0 * (i as f64 * 0.2).sin()) as i16)).collect();
        let mut pcm = Vec::with_capacity(up.max_output_bytes(tone.len()));
        for frame in tone.chunks(160) {
            up.process(frame, &mut pcm);
        }
        // One second of 8 kHz in, one second of 24 kHz PCM16 out (48 000 bytes).
        assert_eq!(pcm.len(), 48_000);
        let mut back = Vec::new();
        down.process(&pcm, &mut back);
        assert_eq!(back.len(), 8000);
        // 1.875 ms each way (45 samples at 24 kHz, 15 at 8 kHz).
        assert_eq!(up.delay() + down.delay(), Duration::from_micros(3_750));
    }

    #[test]
    fn bytes_and_frames_follow_the_format() {
        assert_eq!(StreamFormat::PCMU_8K.frame_bytes_20ms(), 160);
        assert_eq!(StreamFormat::PCM_24K.frame_bytes_20ms(), 960);
        let l16 = StreamFormat { codec: Codec::L16, rate: SampleRate::HZ_16000 };
        assert_eq!(l16.frame_bytes_20ms(), 640);
        assert_eq!(StreamFormat::PCM_24K.bytes_for_ms(1), 48);
        assert_eq!(StreamFormat::PCM_24K.samples_in_bytes(96), 48);
    }
}
