//! The resampler's numbers for ADR 0010: delay, worst in-band SNR against the exact tone (every
//! 100 Hz up to the band's top: 3.4 kHz with 8 kHz on one side, 7 kHz otherwise), and worst
//! rejection of tones that would alias into the band (down) — for voxbridge's polyphase FIR and,
//! for comparison, rubato's sinc resampler (`Async::new_sinc`, `FixedAsync::Input`, 20 ms chunks)
//! at two filter lengths. Run: `cargo bench --bench resampler_quality`.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Async, FixedAsync, Resampler, SincInterpolationParameters, WindowFunction};
use voxbridge::media::SampleRate;
use voxbridge::media::resample::StreamResampler;

fn sine(rate: u32, hz: f64, n: usize, delay: f64) -> Vec<f64> {
    (0..n).map(|i| 0.5 * (2.0 * std::f64::consts::PI * hz * (i as f64 - delay) / rate as f64).sin()).collect()
}

/// A resampler under test: resample a whole signal (fed in 20 ms pieces), its delay in output samples.
trait Subject {
    fn run(&mut self, input: &[f64]) -> Vec<f64>;
    fn delay(&self) -> f64;
}

struct Ours(StreamResampler, SampleRate);

impl Subject for Ours {
    fn run(&mut self, input: &[f64]) -> Vec<f64> {
        let mut out = Vec::new();
        let pcm: Vec<i16> = input.iter().map(|v| (v * 32767.0).round() as i16).collect();
        for piece in pcm.chunks(97) {
            self.0.process(piece, &mut out);
        }
        out.iter().map(|&s| s as f64 / 32767.0).collect()
    }
    fn delay(&self) -> f64 {
        self.0.delay().as_secs_f64() * self.1.hz() as f64
    }
}

struct Rubato(Async<f64>, usize);

impl Subject for Rubato {
    fn run(&mut self, input: &[f64]) -> Vec<f64> {
        let mut out = Vec::new();
        let mut buf = vec![0.0; self.0.output_frames_max()];
        for chunk in input.chunks_exact(self.1) {
            let i = InterleavedSlice::new(chunk, 1, self.1).unwrap();
            let n = buf.len();
            let mut o = InterleavedSlice::new_mut(&mut buf[..], 1, n).unwrap();
            let (_, produced) = self.0.process_into_buffer(&i, &mut o, None).unwrap();
            out.extend_from_slice(&buf[..produced]);
        }
        out
    }
    fn delay(&self) -> f64 {
        self.0.output_delay() as f64
    }
}

/// SNR of a tone: the best-fitting sinusoid at `hz` (least squares on sine and cosine, so any
/// delay or phase) against what is left over.
fn tone_snr(x: &[f64], hz: f64, rate: u32) -> (f64, f64) {
    let w = 2.0 * std::f64::consts::PI * hz / rate as f64;
    let (mut ss, mut cc, mut sc, mut xs, mut xc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, &v) in x.iter().enumerate() {
        let (s, c) = (w * i as f64).sin_cos();
        ss += s * s;
        cc += c * c;
        sc += s * c;
        xs += v * s;
        xc += v * c;
    }
    let det = ss * cc - sc * sc;
    let (a, b) = ((xs * cc - xc * sc) / det, (xc * ss - xs * sc) / det);
    let (mut sig, mut noise) = (0.0, 0.0);
    for (i, &v) in x.iter().enumerate() {
        let (s, c) = (w * i as f64).sin_cos();
        let fit = a * s + b * c;
        sig += fit * fit;
        noise += (v - fit) * (v - fit);
    }
    // (SNR, the tone's gain in dB: the input is 0.5 full scale)
    (10.0 * (sig / noise.max(1e-30)).log10(), 20.0 * ((a * a + b * b).sqrt() / 0.5).log10())
}

fn measure(make: &dyn Fn() -> Box<dyn Subject>, from: u32, to: u32) -> (f64, f64, f64, Option<f64>) {
    let band = if from.min(to) == 8_000 { 3_400.0 } else { 7_000.0 };
    let mut worst_snr = f64::MAX;
    let mut worst_gain = 0.0f64;
    let mut delay = 0.0;
    let mut tone = 100.0;
    while tone <= band {
        let mut s = make();
        let out = s.run(&sine(from, tone, from as usize / 2, 0.0));
        delay = s.delay();
        let (snr, gain) = tone_snr(&out[to as usize / 25..], tone, to);
        worst_snr = worst_snr.min(snr);
        worst_gain = if gain.abs() > worst_gain.abs() { gain } else { worst_gain };
        tone += 100.0;
    }
    let rejection = (to < from).then(|| {
        let nyquist = to as f64 / 2.0;
        let mut worst = f64::MAX;
        let mut tone = 2.0 * nyquist - band;
        while tone < from as f64 / 2.0 {
            let mut s = make();
            let input = sine(from, tone, from as usize / 2, 0.0);
            let out = s.run(&input);
            let skip = to as usize / 50;
            let p = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64;
            worst = worst.min(10.0 * (p(&input) / p(&out[skip..]).max(1e-30)).log10());
            tone += 200.0;
        }
        worst
    });
    (delay / to as f64 * 1000.0, worst_snr, worst_gain, rejection)
}

fn main() {
    let pairs =
        [(8_000u32, 24_000u32), (24_000, 8_000), (16_000, 24_000), (24_000, 16_000), (8_000, 16_000), (16_000, 8_000)];
    println!(
        "| resampler | pair | delay | holdback | worst in-band tone SNR | worst in-band gain | worst alias rejection |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (from, to) in pairs {
        let rate = |hz| match hz {
            8_000 => SampleRate::HZ_8000,
            16_000 => SampleRate::HZ_16000,
            _ => SampleRate::HZ_24000,
        };
        let ours = move || -> Box<dyn Subject> {
            Box::new(Ours(StreamResampler::new(rate(from), rate(to)).unwrap(), rate(to)))
        };
        let (d, snr, gain, rej) = measure(&ours, from, to);
        let rej = rej.map_or("—".to_string(), |r| format!("{r:.1} dB"));
        println!("| polyphase FIR (ours) | {from} → {to} | {d:.3} ms | none | {snr:.1} dB | {gain:+.3} dB | {rej} |");
        for sinc_len in [64, 128] {
            let chunk = from as usize / 50;
            let make = move || -> Box<dyn Subject> {
                let params = SincInterpolationParameters::new(sinc_len, WindowFunction::BlackmanHarris2);
                let r =
                    Async::<f64>::new_sinc(to as f64 / from as f64, 1.0, &params, chunk, 1, FixedAsync::Input).unwrap();
                Box::new(Rubato(r, chunk))
            };
            let (d, snr, gain, rej) = measure(&make, from, to);
            let rej = rej.map_or("—".to_string(), |r| format!("{r:.1} dB"));
            println!(
                "| rubato sinc, sinc_len {sinc_len} | {from} → {to} | {d:.3} ms | up to 20 ms (whole chunks) | {snr:.1} dB | {gain:+.3} dB | {rej} |"
            );
        }
    }
}
