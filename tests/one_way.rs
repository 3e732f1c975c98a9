//! `voxbridge replay --serve-model` (issue 11): with the model played in the replay's own
//! process, every 20 ms frame is recognised by its content where it arrives — caller frames at
//! the model, answer frames at the caller — and timed one way on one clock; frames that never
//! arrive are counted by where they were. Both audio modes, Twilio and Telnyx (PCMA, L16).

mod common;

use std::time::Duration;

use common::*;
use voxbridge::config::AudioMode;
use voxbridge::mock_realtime::MockOptions;
use voxbridge::probe::Book;
use voxbridge::providers::telnyx::rest::StreamCodec;
use voxbridge::replay::report::Report;
use voxbridge::replay::telnyx::TelnyxReplay;
use voxbridge::replay::telnyx_api::FakeTelnyx;
use voxbridge::replay::{self, ReplayOptions, Target};

const SECRET: [u8; 32] = TELNYX_SECRET;
const FIXTURES: [&str; 2] = ["greeting-and-answer", "barge-in"];

fn probed_model(book: &Book) -> MockOptions {
    MockOptions { probe: Some(book.clone()), ..mock_options() }
}

fn options(h: &Harness, book: &Book, telnyx: Option<TelnyxReplay>) -> ReplayOptions {
    ReplayOptions {
        fixtures: FIXTURES.iter().map(|f| fixture_path(f)).collect(),
        target: Target {
            url: format!("http://{}", h.addr),
            public_url: PUBLIC_URL.into(),
            auth_token: None,
            speed: 4.0,
            voice_path: if telnyx.is_some() { String::new() } else { "/twilio/voice".into() },
            call_sid: None,
            telnyx,
            twilio_api: None,
            keep_heard: false,
            probe: Some(book.clone()),
        },
        concurrency: 2,
        ramp: Duration::ZERO,
        progress: false,
        per_call: true,
    }
}

/// Every caller frame reached the model and every answer frame the caller, each timed.
fn assert_every_frame_timed(report: &Report, what: &str) {
    assert_eq!(report.failed_calls, 0, "{what}: {:?}", report.errors);
    let w = report.one_way.as_ref().unwrap_or_else(|| panic!("{what}: no one-way figures"));
    let up = &w.caller_to_model;
    assert_eq!(up.frames, report.frames_sent, "{what}: every caller frame is accounted for");
    assert_eq!(up.latency.count, up.frames, "{what}: every caller frame was recognised at the model: {w:?}");
    assert_eq!(up.lost.total(), 0, "{what}: {w:?}");
    let down = &w.model_to_caller;
    assert!(down.frames >= 100, "{what}: the AI spoke: {w:?}");
    assert_eq!(down.lost.total(), 0, "{what}: {w:?}");
    assert_eq!(down.latency.count + w.cleared, down.frames, "{what}: every answer frame was heard or cleared: {w:?}");
    for d in [up, down] {
        assert!(d.latency.p50_ms >= 0.0 && d.latency.p50_ms <= d.latency.p99_ms && d.latency.p99_ms <= d.max_ms);
    }
    let text = report.text();
    assert!(text.contains("one way, end to end, every frame by its content"), "{text}");
    for call in &report.per_call {
        let o = call.one_way.as_ref().expect("per call too");
        assert_eq!(o.to_model_frames, call.frames_sent, "{}", call.fixture);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_frame_is_timed_one_way_in_both_audio_modes() {
    for mode in [AudioMode::G711, AudioMode::Pcm16] {
        let book = Book::default();
        let h = start(config(mode), probed_model(&book)).await;
        let report = replay::run(options(&h, &book, None)).await.unwrap();
        assert_every_frame_timed(&report, &format!("{mode:?}"));
        // The mock heard probe frames, not the recording: the model's ear is what timed them.
        let mock = h.mock.as_ref().unwrap();
        assert_eq!(mock.log.count(), 2, "one model session per call");
    }
}

async fn telnyx_server(mode: AudioMode, codec: StreamCodec, book: &Book) -> (Harness, FakeTelnyx) {
    let (api, c) = telnyx_config(mode, codec).await;
    (start(c, probed_model(book)).await, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telnyx_frames_are_timed_in_pcma_and_l16_also_when_delivered_out_of_order() {
    // PCMA with neighbouring frames swapped on the wire, as Telnyx may deliver them: the server
    // puts them back in order, and each is still timed as the frame it is.
    for (mode, codec, shuffle) in
        [(AudioMode::G711, StreamCodec::Pcma, true), (AudioMode::Pcm16, StreamCodec::L16, false)]
    {
        let book = Book::default();
        let (h, api) = telnyx_server(mode, codec, &book).await;
        let player = TelnyxReplay { api, signing_key: Some(SECRET), shuffle, dialed: false };
        let report = replay::run(options(&h, &book, Some(player))).await.unwrap();
        assert_every_frame_timed(&report, &format!("Telnyx {codec:?} in {mode:?}, shuffled: {shuffle}"));
    }
}

#[cfg(feature = "opus")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opus_cannot_carry_probe_frames_and_the_replay_says_so() {
    let book = Book::default();
    let (h, api) = telnyx_server(AudioMode::Pcm16, StreamCodec::Opus, &book).await;
    let player = TelnyxReplay { api, signing_key: Some(SECRET), shuffle: false, dialed: false };
    let mut opts = options(&h, &book, Some(player));
    opts.fixtures.truncate(1);
    opts.concurrency = 1;
    let report = replay::run(opts).await.unwrap();
    assert_eq!(report.failed_calls, 1);
    assert!(report.errors[0].contains("Opus is lossy"), "{:?}", report.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpt_live_frames_are_timed_in_both_audio_modes() {
    for mode in [AudioMode::G711, AudioMode::Pcm16] {
        let book = Book::default();
        let mut c = config(mode);
        c.model_api = voxbridge::config::ModelApiArg::Live;
        let h = start(c, MockOptions { live_speed: 4.0, ..probed_model(&book) }).await;
        let report = replay::run(options(&h, &book, None)).await.unwrap();
        assert_every_frame_timed(&report, &format!("GPT-Live, {mode:?}"));
    }
}
