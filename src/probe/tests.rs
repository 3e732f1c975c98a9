//! Probe frames through the bridge's own codecs and resamplers: every frame is recognised once,
//! in order, at the time its middle arrived.

use std::time::{Duration, Instant};

use super::code::FrameId;
use super::signal::{self, Decoder, FRAME, Level};
use crate::media::SampleRate;
use crate::media::transcode::{self, Codec, StreamFormat, Transcoder};
use crate::media::vad::Vad;

fn frames(stream: u32, n: u32, level: impl Fn(u32) -> Level, rate: u32) -> Vec<i16> {
    let mut pcm = Vec::new();
    for i in 0..n {
        signal::synth(FrameId::new(stream, i), level(i), rate, &mut pcm);
    }
    pcm
}

/// Decodes `chunks` (8 kHz samples, each arriving 20 ms after the last from `t0`).
fn recognise(chunks: &[Vec<i16>], t0: Instant) -> (Vec<(FrameId, Duration)>, u64) {
    let mut d = Decoder::new();
    let mut found = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let at = t0 + Duration::from_millis(20 * i as u64);
        d.push(c, at, &mut |id, when| found.push((id, when - t0)));
    }
    d.finish(&mut |id, when| found.push((id, when - t0)));
    (found, d.undecodable)
}

fn ids(found: &[(FrameId, Duration)]) -> Vec<u16> {
    found.iter().map(|(id, _)| id.index).collect()
}

#[test]
fn loud_frames_are_speech_and_quiet_frames_silence_to_a_voice_activity_detector() {
    let loud = frames(1, 25, |_| Level::Loud, 8000);
    let quiet = frames(1, 25, |_| Level::Quiet, 8000);
    let mut vad = Vad::new(8000, 300, 500, 300);
    let mut events = 0;
    vad.push(&quiet, |_| events += 1);
    assert_eq!(events, 0, "quiet probe frames are silence");
    vad.push(&loud, |_| events += 1);
    assert!(vad.is_speaking(), "loud probe frames are speech");
    let peak = loud.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(peak < 32_000, "no clipping: {peak}");
}

#[test]
fn every_frame_survives_g711_at_both_levels_and_arrives_when_its_middle_does() {
    for codec in [Codec::Pcmu, Codec::Pcma] {
        let pcm = frames(77, 60, |i| if i % 3 == 0 { Level::Quiet } else { Level::Loud }, 8000);
        let mut bytes = Vec::new();
        transcode::encode_samples(codec, &pcm, &mut bytes);
        let chunks: Vec<Vec<i16>> = bytes
            .chunks(FRAME)
            .map(|c| {
                let mut s = Vec::new();
                transcode::decode_samples(codec, c, &mut s);
                s
            })
            .collect();
        let t0 = Instant::now();
        let (found, junk) = recognise(&chunks, t0);
        assert_eq!(ids(&found), (0..60).collect::<Vec<u16>>(), "{codec:?}");
        assert!(found.iter().all(|(id, _)| id.stream == 77));
        // Frame i's middle is in the chunk that arrived at 20·i ms.
        assert!(found.iter().enumerate().all(|(i, (_, t))| *t == Duration::from_millis(20 * i as u64)));
        assert_eq!(junk, 0);
    }
}

#[test]
fn audio_held_back_a_frame_is_seen_as_a_frame_late() {
    // The first 20 ms arrive empty-handed; every chunk then carries the previous frame: each
    // frame's middle reaches the receiver 20 ms after it was due.
    let pcm = frames(3, 30, |_| Level::Loud, 8000);
    let mut chunks = vec![Vec::new()];
    chunks.extend(pcm.chunks(FRAME).map(<[i16]>::to_vec));
    let (found, _) = recognise(&chunks, Instant::now());
    assert_eq!(found.len(), 30);
    assert!(found.iter().enumerate().all(|(i, (_, t))| *t == Duration::from_millis(20 * (i as u64 + 1))));
}

#[test]
fn frames_survive_the_bridges_resamplers_both_ways() {
    // Uplink in pcm16 mode: μ-law 8 kHz → 24 kHz PCM, looked at as 8 kHz (every third sample).
    let pcm = frames(5, 100, |i| if (i / 10) % 2 == 0 { Level::Loud } else { Level::Quiet }, 8000);
    let mut ulaw = Vec::new();
    transcode::encode_samples(Codec::Pcmu, &pcm, &mut ulaw);
    let mut up = Transcoder::new(StreamFormat::PCMU_8K, StreamFormat::PCM_24K).unwrap();
    let mut phase = 0;
    let chunks: Vec<Vec<i16>> = ulaw
        .chunks(FRAME)
        .map(|c| {
            let mut out = Vec::new();
            up.process(c, &mut out);
            let mut s = Vec::new();
            transcode::decode_samples(Codec::PcmLe, &out, &mut s);
            let mut s8 = Vec::new();
            signal::to_8k(&s, 24_000, &mut phase, &mut s8);
            s8
        })
        .collect();
    let (found, junk) = recognise(&chunks, Instant::now());
    assert_eq!(ids(&found), (0..100).collect::<Vec<u16>>());
    assert_eq!(junk, 0);

    // Downlink: 24 kHz answers in 100 ms deltas → μ-law 8 kHz, each answer's tail flushed, so
    // every answer starts a little later on the frame grid than the last.
    let mut down = Transcoder::new(StreamFormat::PCM_24K, StreamFormat::PCMU_8K).unwrap();
    let mut chunks = Vec::new();
    let mut next = 0;
    for answer_frames in [25u32, 40, 15, 30, 50, 20] {
        let pcm = (next..next + answer_frames).fold(Vec::new(), |mut v, i| {
            signal::synth(FrameId::new(9, i), Level::Loud, 24_000, &mut v);
            v
        });
        next += answer_frames;
        let mut le = Vec::new();
        transcode::encode_samples(Codec::PcmLe, &pcm, &mut le);
        let deltas: Vec<&[u8]> = le.chunks(4800).collect();
        for (j, delta) in deltas.iter().enumerate() {
            let mut out = Vec::new();
            down.process(delta, &mut out);
            if j + 1 == deltas.len() {
                down.flush(&mut out);
            }
            let mut s = Vec::new();
            transcode::decode_samples(Codec::Pcmu, &out, &mut s);
            chunks.push(s);
        }
    }
    let (found, _) = recognise(&chunks, Instant::now());
    assert_eq!(ids(&found), (0..next as u16).collect::<Vec<u16>>(), "every answer's frames, once, in order");
}

#[test]
fn frames_are_found_wherever_the_stream_starts_and_after_a_cut() {
    for skip in [0usize, 3, 37, 80, 121, 159] {
        let pcm = frames(11, 20, |_| Level::Loud, 8000);
        let mut d = Decoder::new();
        let mut found = Vec::new();
        let t = Instant::now();
        for c in pcm[skip..].chunks(FRAME) {
            d.push(c, t, &mut |id, _| found.push(id.index));
        }
        d.finish(&mut |id, _| found.push(id.index));
        let first = if skip <= 56 { 0 } else { 1 };
        assert_eq!(found, (first..20).collect::<Vec<u16>>(), "starting {skip} samples in");
    }
    // A cut (a `clear`) mid-frame, then another answer: both answers' whole frames are found.
    let a = frames(2, 10, |_| Level::Loud, 8000);
    let b = (10..20).fold(Vec::new(), |mut v, i| {
        signal::synth(FrameId::new(2, i), Level::Loud, 8000, &mut v);
        v
    });
    let mut d = Decoder::new();
    let mut found = Vec::new();
    let t = Instant::now();
    d.push(&a[..7 * FRAME + 50], t, &mut |id, _| found.push(id.index));
    d.reset();
    for c in b.chunks(FRAME) {
        d.push(c, t, &mut |id, _| found.push(id.index));
    }
    d.finish(&mut |id, _| found.push(id.index));
    assert_eq!(found, (0..7).chain(10..20).collect::<Vec<u16>>());
}

#[test]
fn wide_band_frames_are_recognised_at_8_khz() {
    let pcm = frames(4, 30, |_| Level::Quiet, 16_000);
    let mut be = Vec::new();
    transcode::encode_samples(Codec::L16, &pcm, &mut be);
    let mut phase = 0;
    let chunks: Vec<Vec<i16>> = be
        .chunks(640)
        .map(|c| {
            let mut s = Vec::new();
            transcode::decode_samples(Codec::L16, c, &mut s);
            let mut s8 = Vec::new();
            signal::to_8k(&s, SampleRate::HZ_16000.hz(), &mut phase, &mut s8);
            s8
        })
        .collect();
    let (found, _) = recognise(&chunks, Instant::now());
    assert_eq!(ids(&found), (0..30).collect::<Vec<u16>>());
}

#[test]
fn silence_and_noise_are_no_frames() {
    let mut d = Decoder::new();
    let mut n = 0;
    let silence = vec![0i16; 8000];
    d.push(&silence, Instant::now(), &mut |_, _| n += 1);
    let mut x = 12345u32;
    let noise: Vec<i16> = (0..8000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            ((x >> 16) as i16) / 4
        })
        .collect();
    d.push(&noise, Instant::now(), &mut |_, _| n += 1);
    d.finish(&mut |_, _| n += 1);
    assert_eq!(n, 0);
    assert!(d.undecodable >= 90);
}
