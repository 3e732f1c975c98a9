//! The recording tap of one call, sans-IO: the caller's audio as it arrives and the AI's audio as
//! it is sent to the carrier go in (with the time), two time-aligned 8 kHz channels come out as
//! interleaved 16-bit PCM (left the caller, right the AI).
//!
//! The right channel is what the caller heard: a frame sent to the carrier plays after what is
//! queued there (or at once when nothing is), and a `clear` (barge-in, filler stop) drops what had
//! not played yet, so the channel is cut at that moment. Samples become final once the clock and
//! the caller's stream have both passed them; only what may still change is held (at most the
//! playout lead of AI audio), so memory per call is bounded whatever the call's length.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::media::SampleRate;
use crate::media::resample::ResampleSetupError;
use crate::media::transcode::{Codec, StreamFormat, Transcoder, decode_samples};

/// The recording's sample rate.
pub const RATE: SampleRate = SampleRate::HZ_8000;
/// Channels in the recording (left the caller, right the AI).
pub const CHANNELS: u16 = 2;
/// Final audio is handed out in pieces of at least this many samples (100 ms).
const CHUNK: u64 = 800;
/// A caller stream this far behind the clock has a gap (the carrier sent nothing): the caller's
/// channel resumes at the clock, silence in between.
const CALLER_SLACK: u64 = 1_600;
/// Audio older than this is final even when the caller's stream lags (bounds what is held).
const MAX_HELD: Duration = Duration::from_secs(2);

const RECORDING: StreamFormat = StreamFormat { codec: Codec::PcmLe, rate: RATE };

/// One call's two channels on their way to the recording.
#[derive(Debug)]
pub struct Tap {
    origin: Instant,
    caller: Transcoder,
    ai: Transcoder,
    scratch: Vec<u8>,
    samples: Vec<i16>,
    /// Sample index of the first held sample: everything before it has been handed out.
    base: u64,
    left: VecDeque<i16>,
    right: VecDeque<i16>,
    /// Where the caller's next sample goes.
    caller_end: u64,
    /// Where the AI's audio queued at the carrier ends (the next frame plays from here).
    ai_end: u64,
}

impl Tap {
    /// A tap for a call whose carrier speaks `carrier`, its time zero `now`.
    pub fn new(carrier: StreamFormat, now: Instant) -> Result<Tap, ResampleSetupError> {
        Ok(Tap {
            origin: now,
            caller: Transcoder::new(carrier, RECORDING)?,
            ai: Transcoder::new(carrier, RECORDING)?,
            scratch: Vec::new(),
            samples: Vec::new(),
            base: 0,
            left: VecDeque::new(),
            right: VecDeque::new(),
            caller_end: 0,
            ai_end: 0,
        })
    }

    /// The sample index of `now`.
    fn position(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_micros() as u64 * u64::from(RATE.hz()) / 1_000_000
    }

    /// Caller audio (the carrier's encoding) arrived at `now`.
    pub fn caller_audio(&mut self, payload: &[u8], now: Instant) {
        decode(&mut self.caller, payload, &mut self.scratch, &mut self.samples);
        let clock = self.position(now);
        let n = self.samples.len() as u64;
        if self.caller_end + CALLER_SLACK + n < clock {
            self.caller_end = clock - n;
        }
        let at = self.caller_end;
        write(&mut self.left, self.base, at, &self.samples);
        self.caller_end = at + n;
    }

    /// AI audio (the carrier's encoding) was sent to the carrier at `now`: it plays after what
    /// is queued there.
    pub fn ai_audio(&mut self, payload: &[u8], now: Instant) {
        decode(&mut self.ai, payload, &mut self.scratch, &mut self.samples);
        let at = self.ai_end.max(self.position(now));
        write(&mut self.right, self.base, at, &self.samples);
        self.ai_end = at + self.samples.len() as u64;
    }

    /// The carrier was told to drop what it holds (`clear`) at `now`: the AI's channel stops there.
    pub fn cut(&mut self, now: Instant) {
        let clock = self.position(now);
        if self.ai_end > clock {
            self.right.truncate(clock.saturating_sub(self.base) as usize);
            self.ai_end = clock;
        }
    }

    /// Appends the audio that became final (interleaved, little-endian) to `out` once there is
    /// at least 100 ms of it; returns the index of its first sample.
    pub fn take(&mut self, now: Instant, out: &mut Vec<u8>) -> Option<u64> {
        let clock = self.position(now);
        let lag_floor = clock.saturating_sub(self.position(self.origin + MAX_HELD));
        let settled = self.caller_end.min(clock).max(lag_floor);
        if settled < self.base + CHUNK {
            return None;
        }
        Some(self.emit(settled, out))
    }

    /// Everything up to the end of the call at `now` (AI audio still queued then was never
    /// heard); returns the index of the first sample appended.
    pub fn finish(&mut self, now: Instant, out: &mut Vec<u8>) -> u64 {
        self.cut(now);
        let end = self.position(now).max(self.caller_end);
        self.emit(end, out)
    }

    /// Hands out samples `base..end`, silence where a channel has none.
    fn emit(&mut self, end: u64, out: &mut Vec<u8>) -> u64 {
        let from = self.base;
        let n = end.saturating_sub(from) as usize;
        out.reserve(n * 4);
        for _ in 0..n {
            let l = self.left.pop_front().unwrap_or(0);
            let r = self.right.pop_front().unwrap_or(0);
            out.extend_from_slice(&l.to_le_bytes());
            out.extend_from_slice(&r.to_le_bytes());
        }
        self.base = end.max(from);
        from
    }
}

/// Carrier audio to 8 kHz samples.
fn decode(t: &mut Transcoder, payload: &[u8], scratch: &mut Vec<u8>, samples: &mut Vec<i16>) {
    scratch.clear();
    t.process(payload, scratch);
    samples.clear();
    decode_samples(Codec::PcmLe, scratch, samples);
}

/// Writes `samples` at index `at` into a channel whose first held sample is `base` (what falls
/// before it is dropped: it was handed out already).
fn write(channel: &mut VecDeque<i16>, base: u64, at: u64, samples: &[i16]) {
    let skip = base.saturating_sub(at) as usize;
    if skip >= samples.len() {
        return;
    }
    let start = (at + skip as u64 - base) as usize;
    let end = start + samples.len() - skip;
    if channel.len() < end {
        channel.resize(end, 0);
    }
    for (slot, s) in channel.range_mut(start..end).zip(&samples[skip..]) {
        *slot = *s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711;

    const MS: Duration = Duration::from_millis(1);

    fn ulaw(value: i16, samples: usize) -> Vec<u8> {
        vec![g711::ulaw_encode(value); samples]
    }

    fn channels(pcm: &[u8]) -> (Vec<i16>, Vec<i16>) {
        let s: Vec<i16> = pcm.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
        (s.iter().step_by(2).copied().collect(), s.iter().skip(1).step_by(2).copied().collect())
    }

    fn tap(t0: Instant) -> Tap {
        Tap::new(StreamFormat::PCMU_8K, t0).unwrap()
    }

    #[test]
    fn the_caller_is_left_and_the_ai_right_in_time() {
        let t0 = Instant::now();
        let mut tap = tap(t0);
        let mut out = Vec::new();
        for i in 0..10u32 {
            tap.caller_audio(&ulaw(1000, 160), t0 + 20 * MS * i);
        }
        // 100 ms of AI audio sent at 60 ms: it plays from there.
        tap.ai_audio(&ulaw(-2000, 800), t0 + 60 * MS);
        let at = tap.finish(t0 + 200 * MS, &mut out);
        assert_eq!(at, 0);
        let (left, right) = channels(&out);
        assert_eq!(left.len(), 1600, "the recording lasts as long as the call");
        let (l, r) = (g711::ulaw_decode(g711::ulaw_encode(1000)), g711::ulaw_decode(g711::ulaw_encode(-2000)));
        assert!(left.iter().all(|&s| s == l));
        assert!(right[..480].iter().all(|&s| s == 0), "silence before the AI spoke");
        assert!(right[480..1280].iter().all(|&s| s == r));
        assert!(right[1280..].iter().all(|&s| s == 0));
    }

    #[test]
    fn frames_sent_ahead_play_after_what_is_queued_and_a_clear_cuts_them() {
        let t0 = Instant::now();
        let mut tap = tap(t0);
        let mut out = Vec::new();
        // 500 ms sent at once at 0 ms, then 100 ms more at 100 ms (queued behind: 500..600 ms).
        tap.ai_audio(&ulaw(3000, 4000), t0);
        tap.ai_audio(&ulaw(-3000, 800), t0 + 100 * MS);
        // A barge-in at 250 ms: the caller heard 250 ms of it.
        tap.cut(t0 + 250 * MS);
        tap.ai_audio(&ulaw(500, 160), t0 + 300 * MS);
        tap.finish(t0 + 700 * MS, &mut out);
        let (_, right) = channels(&out);
        assert_eq!(right.len(), 5600);
        let heard = right.iter().position(|&s| s == 0).unwrap();
        assert_eq!(heard, 2000, "cut at 250 ms");
        assert!(right[2000..2400].iter().all(|&s| s == 0));
        assert!(right[2400..2560].iter().all(|&s| s != 0), "a frame after the cut plays at once");
        assert!(right[2560..].iter().all(|&s| s == 0), "nothing queued behind the cut survived it");
    }

    #[test]
    fn final_audio_is_handed_out_as_it_settles_and_memory_stays_bounded() {
        let t0 = Instant::now();
        let mut tap = tap(t0);
        let mut out = Vec::new();
        let mut next = 0;
        // Ten minutes of a call: caller frames every 20 ms, the AI talking a third of the time.
        for i in 0..30_000u32 {
            let now = t0 + 20 * MS * i;
            tap.caller_audio(&ulaw(100, 160), now);
            if i % 3 == 0 {
                tap.ai_audio(&ulaw(200, 160), now);
            }
            if let Some(at) = tap.take(now, &mut out) {
                assert_eq!(at, next, "pieces follow one another");
                next = out.len() as u64 / 4;
            }
            assert!(tap.left.len() + tap.right.len() <= 2 * 1600, "held: {} + {}", tap.left.len(), tap.right.len());
        }
        assert!(out.len() as u64 / 4 >= 30_000 * 160 - 1600);
    }

    #[test]
    fn a_caller_gap_is_silence_and_a_stalled_caller_does_not_hold_the_ai() {
        let t0 = Instant::now();
        let mut tap = tap(t0);
        let mut out = Vec::new();
        tap.caller_audio(&ulaw(1000, 160), t0);
        // Nothing from the caller for three seconds, the AI speaking meanwhile.
        for i in 0..150u32 {
            tap.ai_audio(&ulaw(2000, 160), t0 + 20 * MS * i);
            tap.take(t0 + 20 * MS * i, &mut out);
            assert!(tap.right.len() <= 16_000 + 800 + 160, "held: {}", tap.right.len());
        }
        tap.caller_audio(&ulaw(1000, 160), t0 + 3000 * MS);
        tap.finish(t0 + 3500 * MS, &mut out);
        let (left, right) = channels(&out);
        assert_eq!(left.len(), 28_000);
        assert!(left[..160].iter().all(|&s| s != 0));
        assert!(left[160..23_840].iter().all(|&s| s == 0), "the gap is silence");
        assert!(left[23_840..24_000].iter().all(|&s| s != 0), "the caller resumes where the clock is");
        assert!(right[..24_000].iter().all(|&s| s != 0), "the AI's three seconds, whole");
    }
}
