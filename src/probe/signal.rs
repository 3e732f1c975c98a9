//! Probe frames as sound, and recognising them again in a stream that went through the bridge
//! (G.711 quantisation, resampling to and from 16 or 24 kHz, re-chunking).
//!
//! A frame is 20 ms of 13 tones out of 26 at k × 125 Hz (k = 2..=27: 250–3375 Hz, inside the
//! telephone band). A window of 8 ms holds a whole number of cycles of every tone, so the tones
//! are orthogonal over any 8 ms inside one frame: the detector looks at the frame's middle
//! 8 ms (6–14 ms), which tolerates the stream's frame grid being up to 6 ms off (resampler
//! delay, a flushed tail between answers). A frame counts as arrived when its middle has.
//! Hand-written: no crate does this narrow job (26 Goertzel bins and a constant-weight code).

use std::collections::VecDeque;
use std::f64::consts::PI;
use std::sync::OnceLock;
use std::time::Instant;

use super::code::{FrameId, TONES};

/// The detector's rate: every stream is looked at as 8 kHz samples.
pub const RATE: u32 = 8_000;
/// Samples in a 20 ms frame at [`RATE`].
pub const FRAME: usize = 160;
/// The window's start in the frame (6 ms) and its length (8 ms).
pub const WINDOW_START: usize = 48;
pub const WINDOW: usize = 64;
/// The lowest tone's bin (k × 125 Hz).
const FIRST_BIN: usize = 2;
/// A detection counts when the 13th strongest tone is this much above the 14th.
const VALID_DB: f64 = 10.0;
/// Below this margin a locked stream looks for the frames' centre again.
const CENTRED_DB: f64 = 20.0;
/// A tone weaker than this (amplitude ~5 of 32767) is no tone (silence is no frame).
const FLOOR_POWER: f64 = (5.0 * WINDOW as f64 / 2.0) * (5.0 * WINDOW as f64 / 2.0);
/// Offsets tried when looking for the frames' centre.
const SCAN_STEP: usize = 4;

/// How loud a probe frame is: the caller's speech and silence keep their shape, so a model's
/// voice-activity detector hears the same turns as with the recorded audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Mean |amplitude| ≈ 2,000: speech to any VAD.
    Loud,
    /// Mean |amplitude| ≈ 60: silence to a VAD, still 30 dB above G.711's quantisation.
    Quiet,
}

impl Level {
    fn amplitude(self) -> f32 {
        match self {
            Level::Loud => 1000.0,
            Level::Quiet => 30.0,
        }
    }
}

/// One cosine per tone for 20 ms at `rate` (phases spread so the 13 tones never all peak together).
fn tone_table(rate: u32) -> Vec<f32> {
    let n = rate as usize / 50;
    let mut t = Vec::with_capacity(TONES * n);
    for k in 0..TONES {
        let f = ((k + FIRST_BIN) * 125) as f64;
        let phase = PI * (k * k) as f64 / TONES as f64;
        t.extend((0..n).map(|i| (2.0 * PI * f * i as f64 / rate as f64 + phase).cos() as f32));
    }
    t
}

fn table(rate: u32) -> &'static [f32] {
    static T8: OnceLock<Vec<f32>> = OnceLock::new();
    static T16: OnceLock<Vec<f32>> = OnceLock::new();
    static T24: OnceLock<Vec<f32>> = OnceLock::new();
    static T48: OnceLock<Vec<f32>> = OnceLock::new();
    let cell = match rate {
        8_000 => &T8,
        16_000 => &T16,
        24_000 => &T24,
        _ => &T48,
    };
    cell.get_or_init(|| tone_table(rate))
}

/// Appends frame `id`'s 20 ms at `rate` (8, 16, 24 or 48 kHz) to `out`.
pub fn synth(id: FrameId, level: Level, rate: u32, out: &mut Vec<i16>) {
    let rate = match rate {
        8_000 | 16_000 | 24_000 => rate,
        _ => 48_000,
    };
    let n = rate as usize / 50;
    let t = table(rate);
    let tones = id.tones();
    let a = level.amplitude();
    let start = out.len();
    out.resize(start + n, 0);
    let mut acc = vec![0f32; n];
    for k in (0..TONES).filter(|k| tones & (1 << k) != 0) {
        for (s, &c) in acc.iter_mut().zip(&t[k * n..(k + 1) * n]) {
            *s += c;
        }
    }
    for (o, s) in out[start..].iter_mut().zip(acc) {
        *o = (s * a).round().clamp(-32768.0, 32767.0) as i16;
    }
}

/// Every `step`th sample of `samples`: a stream at `step` × 8 kHz seen at 8 kHz (the bridge's
/// resamplers leave nothing above 4 kHz worth aliasing).
pub fn to_8k(samples: &[i16], rate: u32, phase: &mut usize, out: &mut Vec<i16>) {
    let step = (rate / RATE).max(1) as usize;
    while *phase < samples.len() {
        out.push(samples[*phase]);
        *phase += step;
    }
    *phase -= samples.len();
}

/// What the window starting at `w[0]` (at least [`WINDOW`] samples) says: an identity and
/// its margin in dB, or nothing.
pub fn detect(w: &[i16]) -> Option<(FrameId, f64)> {
    static COEFFS: OnceLock<[f64; TONES]> = OnceLock::new();
    let coeffs =
        COEFFS.get_or_init(|| std::array::from_fn(|k| 2.0 * (2.0 * PI * (k + FIRST_BIN) as f64 / WINDOW as f64).cos()));
    let w = &w[..WINDOW];
    let mut power = [(0f64, 0usize); TONES];
    for ((k, p), &coeff) in power.iter_mut().enumerate().zip(coeffs) {
        let (mut s1, mut s2) = (0f64, 0f64);
        for &x in w {
            let s0 = x as f64 + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        *p = (s1 * s1 + s2 * s2 - coeff * s1 * s2, k);
    }
    // The 13 strongest first (in any order), the 13th strongest at [12].
    power.select_nth_unstable_by(12, |a, b| b.0.total_cmp(&a.0));
    let on = power[12].0;
    let off = power[13..].iter().fold(0f64, |m, p| m.max(p.0));
    if on < FLOOR_POWER {
        return None;
    }
    let margin = 10.0 * (on / off.max(1e-9)).log10();
    if margin < VALID_DB {
        return None;
    }
    let mask = power[..13].iter().fold(0u32, |m, &(_, k)| m | 1 << k);
    FrameId::from_tones(mask).map(|id| (id, margin))
}

/// Finds probe frames in one direction of one stream as its audio arrives, and when each
/// arrived (`push` is told the arrival time of every chunk; time is passed in).
#[derive(Debug, Default)]
pub struct Decoder {
    /// 8 kHz samples from stream position `base` on.
    buf: Vec<i16>,
    base: u64,
    /// (end position, arrival) of the chunks still in `buf`.
    chunks: VecDeque<(u64, Instant)>,
    /// Locked: where the next frame starts. Otherwise: where the search resumes.
    next: u64,
    locked: bool,
    /// While searching: (identity, first offset, last offset) of the current run of detections.
    run: Option<(FrameId, u64, u64)>,
    /// Where the current search began.
    search_from: u64,
    /// A search never starts before this (just past the last lock): every search moves on.
    floor: u64,
    /// The frames reported last (a search may pass over them again).
    recent: [Option<FrameId>; 4],
    /// Frame-sized stretches that held no probe frame.
    pub undecodable: u64,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    fn end(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    fn window(&self, at: u64) -> &[i16] {
        let i = (at + WINDOW_START as u64 - self.base) as usize;
        &self.buf[i..i + WINDOW]
    }

    /// When the sample at `pos` arrived.
    fn arrival(&self, pos: u64) -> Instant {
        self.chunks.iter().find(|(end, _)| *end > pos).or(self.chunks.back()).map(|c| c.1).unwrap_or_else(Instant::now)
    }

    /// The audio stopped and starts again somewhere else (a `clear`): search afresh.
    pub fn reset(&mut self) {
        self.locked = false;
        self.run = None;
        self.next = self.end();
        self.search_from = self.next;
    }

    /// Feeds 8 kHz samples that arrived at `at`; `found` hears each frame recognised, with the
    /// arrival of its middle.
    pub fn push(&mut self, samples: &[i16], at: Instant, found: &mut impl FnMut(FrameId, Instant)) {
        self.buf.extend_from_slice(samples);
        let end = self.end();
        if samples.is_empty() {
            return;
        }
        self.chunks.push_back((end, at));
        self.decode(found, false);
        self.trim();
    }

    /// The stream ended: a search in progress settles on what it has.
    pub fn finish(&mut self, found: &mut impl FnMut(FrameId, Instant)) {
        self.decode(found, true);
    }

    fn decode(&mut self, found: &mut impl FnMut(FrameId, Instant), last_call: bool) {
        let need = (WINDOW_START + WINDOW) as u64;
        loop {
            if self.locked {
                if self.next + need > self.end() {
                    return;
                }
                let at = self.next;
                let hit = detect(self.window(at));
                if let Some((id, _)) = hit {
                    self.emit(id, at, found);
                }
                self.next = at + FRAME as u64;
                if hit.is_none_or(|(_, margin)| margin < CENTRED_DB) {
                    // Lost or drifting off the frames' middle: search again from a frame back
                    // (frames found again are not reported twice).
                    self.locked = false;
                    self.next = at.saturating_sub(FRAME as u64).max(self.base).max(self.floor);
                    self.search_from = self.next;
                }
                continue;
            }
            // Searching: slide until a run of detections of one frame ends; lock on its middle.
            if self.next + need > self.end() {
                if last_call && let Some((id, first, last)) = self.run.take() {
                    self.lock_on(id, first, last, found);
                    continue;
                }
                return;
            }
            let hit = detect(self.window(self.next)).map(|(id, _)| id);
            match (self.run, hit) {
                (Some((id, first, _)), Some(h)) if h == id => self.run = Some((id, first, self.next)),
                (Some((id, first, last)), _) => {
                    self.run = None;
                    self.lock_on(id, first, last, found);
                    continue;
                }
                (None, Some(h)) => self.run = Some((h, self.next, self.next)),
                (None, None) => {
                    if self.next >= self.search_from + FRAME as u64 {
                        self.undecodable += 1;
                        self.search_from += FRAME as u64;
                    }
                }
            }
            self.next += SCAN_STEP as u64;
        }
    }

    fn lock_on(&mut self, id: FrameId, first: u64, last: u64, found: &mut impl FnMut(FrameId, Instant)) {
        let centre = first + (last - first) / 2;
        self.emit(id, centre, found);
        self.floor = centre + SCAN_STEP as u64;
        self.locked = true;
        self.next = centre + FRAME as u64;
    }

    fn emit(&mut self, id: FrameId, at: u64, found: &mut impl FnMut(FrameId, Instant)) {
        if !self.recent.contains(&Some(id)) {
            self.recent.rotate_right(1);
            self.recent[0] = Some(id);
            found(id, self.arrival(at + (WINDOW_START + WINDOW) as u64 - 1));
        }
    }

    /// Drops what no frame can still need.
    fn trim(&mut self) {
        let keep_from = self.next.min(self.run.map_or(u64::MAX, |r| r.1)).saturating_sub(FRAME as u64);
        if keep_from > self.base + 4 * FRAME as u64 {
            let cut = (keep_from - self.base) as usize;
            self.buf.drain(..cut);
            self.base = keep_from;
            while self.chunks.front().is_some_and(|c| c.0 <= self.base) {
                self.chunks.pop_front();
            }
        }
    }
}
