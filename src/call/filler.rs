//! What the caller hears while the AI waits for one of the business's tools: after
//! [`FILLER_AFTER`] of silence, a soft tone (a short, quiet 440 Hz pip once a second, faded in
//! and out) instead of dead air, generated in the carrier's format and paced in real time, so at
//! most [`AHEAD`] of it is ever queued at the carrier; the answer clears that and plays at once.
//! Sans-IO: time is passed in.

use std::time::{Duration, Instant};

use crate::media::transcode::{StreamFormat, encode_samples};

/// Silence the caller may hear before the filler starts.
pub const FILLER_AFTER: Duration = Duration::from_millis(700);
/// Filler queued at the carrier ahead of real time, at most (and sent at once).
pub const AHEAD: Duration = Duration::from_millis(100);
/// The pip: this long, once every [`PERIOD`], at [`LEVEL`].
const PIP: Duration = Duration::from_millis(120);
const PERIOD: Duration = Duration::from_secs(1);
/// About −26 dBFS: heard as "still there", never mistaken for speech.
const LEVEL: f64 = 1_600.0;
const PITCH_HZ: f64 = 440.0;
/// Fade in and out of each pip (no click).
const FADE: Duration = Duration::from_millis(15);

/// A tool wait's filler.
#[derive(Debug)]
pub struct Filler {
    format: StreamFormat,
    /// When the filler's next audio is due (the first at the wait's start + [`FILLER_AFTER`]).
    next_at: Instant,
    /// Samples generated so far.
    position: u64,
    samples: Vec<i16>,
    encoded: Vec<u8>,
}

impl Filler {
    /// A wait that began at `now`, for a carrier speaking `format`.
    pub fn new(now: Instant, format: StreamFormat) -> Filler {
        Filler { format, next_at: now + FILLER_AFTER, position: 0, samples: Vec::new(), encoded: Vec::new() }
    }

    /// When [`due`](Self::due) has audio next.
    pub fn deadline(&self) -> Instant {
        self.next_at
    }

    /// Whether any filler was sent (it is then cleared from the carrier when the wait ends).
    pub fn started(&self) -> bool {
        self.position > 0
    }

    /// The filler due at `now` ([`AHEAD`] of it, in the carrier's format), if any.
    pub fn due(&mut self, now: Instant) -> Option<&[u8]> {
        if now < self.next_at {
            return None;
        }
        let hz = self.format.rate.hz() as u64;
        let n = (hz * AHEAD.as_millis() as u64 / 1000) as usize;
        self.samples.clear();
        self.samples.extend((0..n as u64).map(|i| sample(self.position + i, hz)));
        self.position += n as u64;
        self.next_at += AHEAD;
        // A late tick (a busy runtime) does not send a burst: the filler restarts from now.
        if self.next_at < now {
            self.next_at = now + AHEAD;
        }
        self.encoded.clear();
        encode_samples(self.format.codec, &self.samples, &mut self.encoded);
        Some(&self.encoded)
    }
}

/// Sample `i` of the filler at `hz`.
fn sample(i: u64, hz: u64) -> i16 {
    let t = (i % (PERIOD.as_millis() as u64 * hz / 1000)) as f64 / hz as f64;
    let pip = PIP.as_secs_f64();
    if t >= pip {
        return 0;
    }
    let fade = FADE.as_secs_f64();
    let envelope = (t / fade).min((pip - t) / fade).min(1.0);
    (LEVEL * envelope * (2.0 * std::f64::consts::PI * PITCH_HZ * t).sin()) as i16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::transcode::decode_samples;

    #[test]
    fn nothing_before_700_ms_then_paced_soft_pips_in_the_carriers_format() {
        let t0 = Instant::now();
        let mut f = Filler::new(t0, StreamFormat::PCMU_8K);
        assert!(f.due(t0 + Duration::from_millis(699)).is_none());
        assert!(!f.started());
        let mut all = Vec::new();
        let mut now = t0 + FILLER_AFTER;
        for _ in 0..20 {
            let chunk = f.due(now).expect("due").to_vec();
            assert_eq!(chunk.len(), 800, "100 ms of μ-law at 8 kHz");
            assert!(f.due(now).is_none(), "no more than 100 ms ahead");
            all.extend(chunk);
            now = f.deadline();
        }
        assert!(f.started());
        let mut pcm = Vec::new();
        decode_samples(StreamFormat::PCMU_8K.codec, &all, &mut pcm);
        // Two seconds: two pips of 120 ms, quiet between them, never loud.
        let loud: Vec<usize> = pcm.iter().enumerate().filter(|(_, s)| s.abs() > 400).map(|(i, _)| i / 8000).collect();
        assert!(!loud.is_empty() && loud.iter().all(|s| *s < 2));
        assert!(loud.contains(&0) && loud.contains(&1), "a pip each second");
        assert!(pcm.iter().all(|s| s.abs() <= 1_700), "soft");
        let between = &pcm[(0.2 * 8000.0) as usize..(0.9 * 8000.0) as usize];
        assert!(between.iter().all(|s| s.abs() < 16), "silence between pips");
    }

    #[test]
    fn a_late_tick_restarts_the_pace_instead_of_bursting() {
        let t0 = Instant::now();
        let mut f = Filler::new(t0, StreamFormat::PCMU_8K);
        let late = t0 + Duration::from_secs(3);
        assert_eq!(f.due(late).unwrap().len(), 800);
        assert!(f.due(late).is_none());
        assert_eq!(f.deadline(), late + AHEAD);
    }
}
