//! A replayed call with the mock model: caller audio reaches the model (bit-exact in `g711`
//! mode, ≥ 35 dB SNR after delay alignment in `pcm16` mode) and the model's answers reach
//! the caller, with marks echoed.

mod common;

use common::*;
use voxbridge::config::AudioMode;
use voxbridge::media::g711;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g711_mode_forwards_caller_audio_bit_exact_and_answers_reach_the_caller() {
    let h = start(config(AudioMode::G711), mock_options()).await;
    let report = replay(&h, "greeting-and-answer", 4.0, None).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    let mock = h.mock.as_ref().unwrap();
    assert_eq!(mock.log.count(), 1);
    let audio_in = model_audio_in(&h, 0).await;
    let conn = mock.log.get(0).unwrap();
    let conn = conn.lock().unwrap();
    assert_eq!(conn.session_updates[0]["audio"]["input"]["format"]["type"], "audio/pcmu");
    assert_eq!(conn.authorization.as_deref(), Some("Bearer sk-test"), "bearer auth on the model socket");
    assert_eq!(conn.session_updates[0]["type"], "realtime", "GA session.update");
    assert_eq!(audio_in, fixture_audio("greeting-and-answer"), "model must receive the caller's bytes verbatim");
    // Greeting + one echoed answer were played to the caller, and every frame's mark came back.
    let call = &report.per_call[0];
    assert!(conn.responses >= 2, "responses: {}", conn.responses);
    assert!(call.audio_received_ms > 3000.0, "caller heard {} ms", call.audio_received_ms);
    assert_eq!(call.marks_echoed, call.marks_received);
    assert!(call.marks_received > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcm16_mode_resamples_caller_audio_to_24k_with_high_snr() {
    let h = start(config(AudioMode::Pcm16), mock_options()).await;
    let report = replay(&h, "greeting-and-answer", 4.0, None).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    let audio_in = model_audio_in(&h, 0).await;
    let conn = h.mock.as_ref().unwrap().log.get(0).unwrap();
    let conn = conn.lock().unwrap();
    assert_eq!(conn.session_updates[0]["audio"]["input"]["format"]["type"], "audio/pcm");
    let got = le_samples(&audio_in);
    let reference: Vec<i16> = fixture_audio("greeting-and-answer").iter().map(|&b| g711::ulaw_decode(b)).collect();
    assert_eq!(got.len(), reference.len() * 3, "24 kHz output is three samples per 8 kHz input sample");
    // Align by the best lag (the resampler's documented 1.875 ms = 45 samples), then compare every
    // third sample.
    let (lag, snr) = (0..480usize)
        .map(|lag| {
            let (mut sig, mut noise) = (0f64, 0f64);
            for (k, &r) in reference.iter().enumerate() {
                let Some(&g) = got.get(3 * k + lag) else {
                    break;
                };
                sig += (r as f64).powi(2);
                noise += (r as f64 - g as f64).powi(2);
            }
            (lag, 10.0 * (sig / noise.max(1.0)).log10())
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    let documented = voxbridge::media::resample::StreamResampler::new(
        voxbridge::media::SampleRate::HZ_8000,
        voxbridge::media::SampleRate::HZ_24000,
    )
    .unwrap()
    .delay();
    assert_eq!(lag as u128, documented.as_micros() * 24 / 1000, "the documented delay ({documented:?})");
    assert!(documented <= std::time::Duration::from_millis(2));
    let aligned: Vec<i16> = (0..reference.len()).map(|k| got.get(3 * k + lag).copied().unwrap_or(0)).collect();
    let (r_band, g_band) = (telephone_band(&reference), telephone_band(&aligned));
    let band_snr = snr_db(&r_band, &g_band);
    let out_of_band = 1.0 - energy(&r_band) / energy(&reference.iter().map(|&s| s as f64).collect::<Vec<_>>());
    eprintln!(
        "full-band SNR {snr:.1} dB, telephone-band SNR {band_snr:.1} dB, reference energy above 3.4 kHz {:.3}%",
        out_of_band * 100.0
    );
    assert!(band_snr >= 60.0, "telephone-band SNR {band_snr:.1} dB");
}
