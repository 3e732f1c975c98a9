//! Media time as types: a sample rate turns sample counts into durations and back,
//! so milliseconds, samples and bytes never mix as bare integers.

use std::time::Duration;

/// Samples per second of one mono stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SampleRate(u32);

impl SampleRate {
    /// Telephone band: G.711 and narrow-band L16.
    pub const HZ_8000: SampleRate = SampleRate(8_000);
    /// Wide band: L16 16 kHz, G.722.
    pub const HZ_16000: SampleRate = SampleRate(16_000);
    /// OpenAI Realtime `audio/pcm`.
    pub const HZ_24000: SampleRate = SampleRate(24_000);

    /// A rate from a number received on the wire; `None` for zero.
    pub const fn new(hz: u32) -> Option<SampleRate> {
        if hz == 0 { None } else { Some(SampleRate(hz)) }
    }

    pub const fn hz(self) -> u32 {
        self.0
    }

    /// Samples in one 20 ms telephony frame.
    pub const fn frame_20ms(self) -> usize {
        (self.0 / 50) as usize
    }

    /// Samples in `ms` milliseconds (rounded down).
    pub const fn samples_in_ms(self, ms: u64) -> u64 {
        ms * self.0 as u64 / 1000
    }

    /// Whole milliseconds covered by `samples` (rounded down): the unit of `audio_end_ms`.
    pub const fn millis_floor(self, samples: u64) -> u64 {
        samples * 1000 / self.0 as u64
    }

    /// Exact duration of `samples` (nanosecond resolution).
    pub fn duration_of(self, samples: u64) -> Duration {
        Duration::from_nanos(samples.saturating_mul(1_000_000_000) / self.0 as u64)
    }

    /// Samples played in `d` at this rate (rounded down).
    pub fn samples_in(self, d: Duration) -> u64 {
        (d.as_nanos() * self.0 as u128 / 1_000_000_000) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_down_and_agree() {
        let r = SampleRate::HZ_8000;
        assert_eq!(r.frame_20ms(), 160);
        assert_eq!(SampleRate::HZ_16000.frame_20ms(), 320);
        assert_eq!(SampleRate::HZ_24000.frame_20ms(), 480);
        assert_eq!(r.millis_floor(160), 20);
        assert_eq!(r.millis_floor(167), 20);
        assert_eq!(SampleRate::HZ_24000.millis_floor(47), 1);
        assert_eq!(r.samples_in_ms(1_000), 8_000);
        assert_eq!(r.duration_of(8), Duration::from_millis(1));
        assert_eq!(r.samples_in(Duration::from_micros(2_500)), 20);
        assert_eq!(SampleRate::new(0), None);
    }
}
