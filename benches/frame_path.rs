//! The per-frame hot path each way, through the real call core: a Twilio media frame in →
//! `input_audio_buffer.append` out, and a 20 ms model delta in → carrier `media` + `mark` out
//! (and the mark's echo back). Plus the stages alone. Goal: ≤ 10 µs per 20 ms frame each way.

use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use criterion::{Criterion, criterion_group, criterion_main};
use voxbridge::call::core::{CallCore, CoreConfig, Output};
use voxbridge::media::SampleRate;
use voxbridge::media::g711;
use voxbridge::media::resample::StreamResampler;
use voxbridge::media::transcode::StreamFormat;
use voxbridge::model::{ModelApi, ModelAudio, ModelConfig};
use voxbridge::providers::twilio::TwilioSession;

const START: &str = r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ4c7e0a2b9d1f40c6a83e5b17d2c9f0a1","start":{"accountSid":"AC1","streamSid":"MZ4c7e0a2b9d1f40c6a83e5b17d2c9f0a1","callSid":"CA1","tracks":["inbound"],"customParameters":{},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#;

fn speechy_ulaw(n: usize) -> Vec<u8> {
    (0..n).map(|i| g711::ulaw_encode((8000.0 * (i as f64 * 0.37).sin() * (i as f64 * 0.011).cos()) as i16)).collect()
}

fn core(model: StreamFormat) -> CallCore<TwilioSession> {
    let mut s = TwilioSession::new();
    let _ = s.receive(START);
    let cfg = CoreConfig {
        carrier_format: StreamFormat::PCMU_8K,
        model_format: model,
        playout_lead: Duration::from_secs(3600),
        greeting: None,
        max_duration: None,
        cost_cap: None,
        response_timeout: Duration::from_secs(5),
        session_max: Duration::from_secs(3300),
    };
    let audio = if model == StreamFormat::PCMU_8K { ModelAudio::Pcmu } else { ModelAudio::Pcm24k };
    let protocol = voxbridge::model::open(ModelConfig::defaults(ModelApi::Realtime, "gpt-realtime", audio));
    let mut c = CallCore::new(s, cfg, protocol, Instant::now()).expect("core");
    c.on_model_connected();
    while c.poll_output().is_some() {}
    c
}

fn media_frame(seq: u64) -> String {
    format!(
        r#"{{"event":"media","sequenceNumber":"{seq}","streamSid":"MZ4c7e0a2b9d1f40c6a83e5b17d2c9f0a1","media":{{"track":"inbound","chunk":"{seq}","timestamp":"{}","payload":"{}"}}}}"#,
        seq * 20,
        B64.encode(speechy_ulaw(160))
    )
}

fn bench_inbound(c: &mut Criterion, name: &str, model: StreamFormat) {
    let mut core = core(model);
    let frame = media_frame(7);
    c.bench_function(name, |b| {
        b.iter(|| {
            let now = Instant::now();
            black_box(core.on_carrier_text(black_box(&frame), now));
            black_box(core.pull_model_audio(now))
        })
    });
}

fn bench_outbound(c: &mut Criterion, name: &str, model: StreamFormat) {
    let mut core = core(model);
    let audio: Vec<u8> = match model.codec {
        voxbridge::media::Codec::PcmLe => {
            speechy_ulaw(480).iter().flat_map(|&b| g711::ulaw_decode(b).to_le_bytes()).collect()
        }
        _ => speechy_ulaw(160),
    };
    let delta = format!(
        r#"{{"type":"response.output_audio.delta","event_id":"event_B4","response_id":"resp_R1","item_id":"item_B7x2","output_index":0,"content_index":0,"delta":"{}"}}"#,
        B64.encode(&audio)
    );
    let mut echo = String::new();
    c.bench_function(name, |b| {
        b.iter(|| {
            let now = Instant::now();
            core.on_model_text(black_box(&delta), now);
            while let Some(out) = core.poll_output() {
                if let Output::Carrier(text, _) = &out
                    && let Some(i) = text.find("\"name\":\"")
                {
                    let name = &text[i + 8..text.len() - 3];
                    echo.clear();
                    echo.push_str(
                        r#"{"event":"mark","streamSid":"MZ4c7e0a2b9d1f40c6a83e5b17d2c9f0a1","mark":{"name":""#,
                    );
                    echo.push_str(name);
                    echo.push_str(r#""}}"#);
                }
                black_box(out);
            }
            // The carrier's echo of this frame's mark is part of the per-frame cost.
            black_box(core.on_carrier_text(&echo, now));
        })
    });
}

fn frame_path(c: &mut Criterion) {
    bench_inbound(c, "caller→model g711 (parse, b64, ring, append json)", StreamFormat::PCMU_8K);
    bench_inbound(c, "caller→model pcm16 (+ μ-law decode, 8→24 kHz, LE)", StreamFormat::PCM_24K);
    bench_outbound(c, "model→caller g711 (delta parse, reframe, media+mark, echo)", StreamFormat::PCMU_8K);
    bench_outbound(c, "model→caller pcm16 (+ 24→8 kHz, μ-law encode)", StreamFormat::PCM_24K);
}

fn stages(c: &mut Criterion) {
    let ulaw = speechy_ulaw(160);
    let mut pcm = [0i16; 160];
    c.bench_function("stage: μ-law decode 160", |b| b.iter(|| g711::ulaw_decode_into(black_box(&ulaw), &mut pcm)));
    c.bench_function("stage: μ-law encode 160", |b| {
        b.iter(|| pcm.iter().map(|&s| g711::ulaw_encode(s)).fold(0u8, |a, x| a ^ x))
    });
    let mut up = StreamResampler::new(SampleRate::HZ_8000, SampleRate::HZ_24000).expect("resampler");
    let mut out = Vec::with_capacity(2048);
    c.bench_function("stage: resample 8→24 kHz, 20 ms", |b| {
        b.iter(|| {
            out.clear();
            up.process(black_box(&pcm), &mut out);
        })
    });
    let mut down = StreamResampler::new(SampleRate::HZ_24000, SampleRate::HZ_8000).expect("resampler");
    let wide = vec![1000i16; 480];
    c.bench_function("stage: resample 24→8 kHz, 20 ms", |b| {
        b.iter(|| {
            out.clear();
            down.process(black_box(&wide), &mut out);
        })
    });
    let mut session = TwilioSession::new();
    let _ = session.receive(START);
    let frame = media_frame(9);
    c.bench_function("stage: Twilio media parse + base64", |b| {
        b.iter(|| matches!(session.receive(black_box(&frame)), voxbridge::providers::CarrierEvent::Media { .. }))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = frame_path, stages
}
criterion_main!(benches);
