//! The mock model's "voice": a synthetic, speech-like signal (a 140 Hz buzz with formant-ish
//! harmonics and syllable-rate envelope), so greetings and goodbyes carry real audio energy.

use crate::media::SampleRate;

/// `ms` milliseconds of speech-like audio as 16-bit samples at `rate`.
pub fn phrase(rate: SampleRate, ms: u64) -> Vec<i16> {
    let n = rate.samples_in_ms(ms) as usize;
    let fs = rate.hz() as f64;
    (0..n)
        .map(|i| {
            let t = i as f64 / fs;
            let f0 = 140.0 + 20.0 * (2.0 * std::f64::consts::PI * 0.7 * t).sin();
            let mut v = 0.0;
            for (h, amp) in [(1.0, 0.6), (2.0, 0.3), (4.0, 0.25), (7.0, 0.12), (12.0, 0.06)] {
                v += amp * (2.0 * std::f64::consts::PI * f0 * h * t).sin();
            }
            let syllables = (0.5 - 0.5 * (2.0 * std::f64::consts::PI * 4.0 * t).cos()).powf(0.6);
            let fade = (t * 20.0).min(1.0) * ((n as f64 / fs - t) * 20.0).clamp(0.0, 1.0);
            (v * syllables * fade * 9000.0) as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrase_has_the_length_and_energy_asked_for() {
        let p = phrase(SampleRate::HZ_24000, 500);
        assert_eq!(p.len(), 12_000);
        let mean: f64 = p.iter().map(|&s| (s as f64).abs()).sum::<f64>() / p.len() as f64;
        assert!(mean > 1000.0, "mean {mean}");
    }
}
