//! DTMF in band: the tones of keypad digits (`press_digits` on a carrier whose media stream has
//! no DTMF command: Twilio), and a detector for them (tests, as a fake carrier hears them).
//! Hand-written: two sines per key and eight Goertzel bins are a few lines; no well-kept crate
//! does just this.

use std::f64::consts::PI;

const LOW: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const HIGH: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [['1', '2', '3', 'A'], ['4', '5', '6', 'B'], ['7', '8', '9', 'C'], ['*', '0', '#', 'D']];

/// Each key sounds this long, then this long of silence (ITU-T Q.24 asks ≥ 40 ms of each).
pub const TONE_MS: u32 = 100;
pub const GAP_MS: u32 = 100;
/// `w`: a pause of half a second (`W`: a second), as Telnyx's `send_dtmf` reads them.
pub const PAUSE_MS: u32 = 500;
/// Each of the two tones at about −9 dBFS (their sum well below full scale).
const AMPLITUDE: f64 = 11_000.0;

/// Whether `digits` is what `press_digits` takes: 1 to 32 of `0-9 * # A-D w W`.
pub fn valid(digits: &str) -> bool {
    (1..=32).contains(&digits.chars().count()) && digits.chars().all(|c| c.is_ascii_digit() || "*#ABCDwW".contains(c))
}

/// The frequencies of `key`, if it is one.
fn pair(key: char) -> Option<(f64, f64)> {
    KEYS.iter().enumerate().find_map(|(r, row)| row.iter().position(|k| *k == key).map(|c| (LOW[r], HIGH[c])))
}

/// The audio of `digits` at `rate` Hz (16-bit samples).
pub fn tones(digits: &str, rate: u32) -> Vec<i16> {
    let per_ms = rate as usize / 1000;
    let mut out = Vec::new();
    for key in digits.chars() {
        let pause = match key {
            'w' => Some(PAUSE_MS),
            'W' => Some(2 * PAUSE_MS),
            _ => None,
        };
        if let Some(ms) = pause {
            out.resize(out.len() + ms as usize * per_ms, 0);
            continue;
        }
        let Some((low, high)) = pair(key) else { continue };
        let n = TONE_MS as usize * per_ms;
        out.extend((0..n).map(|i| {
            let t = i as f64 / rate as f64;
            (AMPLITUDE * ((2.0 * PI * low * t).sin() + (2.0 * PI * high * t).sin())) as i16
        }));
        out.resize(out.len() + GAP_MS as usize * per_ms, 0);
    }
    out
}

/// Goertzel power of `freq` over `x` at `rate`.
fn power(x: &[i16], freq: f64, rate: u32) -> f64 {
    let w = 2.0 * PI * freq / rate as f64;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s = v as f64 + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// The keys heard in `x` (`rate` Hz), in order: a key counts once per run of 20 ms windows in
/// which its two tones dominate.
pub fn detect(x: &[i16], rate: u32) -> String {
    let window = rate as usize / 50;
    let mut out = String::new();
    let mut last: Option<char> = None;
    for w in x.chunks_exact(window) {
        let energy: f64 = w.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() * window as f64 / 2.0;
        let best = |freqs: &[f64; 4]| {
            let p: Vec<f64> = freqs.iter().map(|f| power(w, *f, rate)).collect();
            let (i, max) = p.iter().enumerate().fold((0, 0.0), |a, (i, v)| if *v > a.1 { (i, *v) } else { a });
            let second = p.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, v)| *v).fold(0.0, f64::max);
            (i, max, second)
        };
        let (r, lp, l2) = best(&LOW);
        let (c, hp, h2) = best(&HIGH);
        // Both tones clear of the others (×10 in power) and most of the window's energy.
        let key = (energy > 0.0 && lp > 10.0 * l2 && hp > 10.0 * h2 && (lp + hp) > 0.5 * energy).then(|| KEYS[r][c]);
        if key.is_some() && key != last {
            out.extend(key);
        }
        last = key;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sound_as_their_tones_and_are_heard_back_in_order_through_g711() {
        let pcm = tones("1w23#", 8_000);
        assert_eq!(pcm.len(), 8 * (4 * (TONE_MS + GAP_MS) + PAUSE_MS) as usize);
        assert_eq!(detect(&pcm, 8_000), "123#");
        // Through μ-law, as a carrier hears it.
        let mut mulaw = Vec::new();
        crate::media::transcode::encode_samples(crate::media::transcode::Codec::Pcmu, &pcm, &mut mulaw);
        let mut back = Vec::new();
        crate::media::transcode::decode_samples(crate::media::transcode::Codec::Pcmu, &mulaw, &mut back);
        assert_eq!(detect(&back, 8_000), "123#");
        assert_eq!(detect(&tones("00", 8_000), 8_000), "00", "a key twice, with its gap between");
        assert_eq!(detect(&tones("9*", 24_000), 24_000), "9*");
        assert_eq!(detect(&vec![0; 8_000], 8_000), "");
    }

    #[test]
    fn only_keypad_digits_and_pauses_are_valid() {
        assert!(valid("1w23#") && valid("*0#") && valid("W"));
        assert!(!valid("") && !valid("12x") && !valid(&"1".repeat(33)) && !valid("1 2"));
    }
}
