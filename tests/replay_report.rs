//! `voxbridge replay` tells the truth (issue 13): a call the AI failed, or that the server cut
//! short, is a failed call with its reason; every fixture given is played; the report says
//! whether and how soon the AI answered; a model reconnect is not a barge-in; a clean call
//! leaves the server's gap counter at zero.

mod common;

use std::time::Duration;

use common::*;
use voxbridge::config::AudioMode;
use voxbridge::replay::{self, ReplayOptions, Target};

fn options(h_url: String, fixtures: &[&str], concurrency: usize, speed: f64) -> ReplayOptions {
    ReplayOptions {
        fixtures: fixtures.iter().map(|f| fixture_path(f)).collect(),
        target: Target {
            url: h_url,
            public_url: PUBLIC_URL.into(),
            auth_token: None,
            speed,
            voice_path: "/twilio/voice".into(),
            call_sid: None,
            telnyx: None,
            twilio_api: None,
            keep_heard: false,
            probe: None,
        },
        concurrency,
        ramp: Duration::ZERO,
        progress: false,
        per_call: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_model_is_a_failed_call_with_its_reason() {
    let mut c = config(AudioMode::G711);
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    c.realtime_url = format!("ws://{}/v1/realtime", closed.local_addr().unwrap());
    drop(closed);
    c.model_connect_timeout_ms = 300;
    let h = start_with_model(c).await;
    let report = replay(&h, "dtmf", 4.0, None).await;
    assert_eq!((report.calls, report.failed_calls, report.ai_answered), (1, 1, 0), "{report:?}");
    let line = voxbridge::replay::report::call_line(&report.per_call[0]);
    assert!(line.contains("FAILED: the server ended the stream with 1011"), "{line}");
    assert!(line.contains("AI never heard"), "{line}");
    assert!(report.text().contains("1 failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_mid_call_fails_the_call() {
    voxbridge::install_tls();
    let mock = voxbridge::mock_realtime::spawn_local(mock_options()).await.unwrap();
    let mut c = config(AudioMode::G711);
    c.realtime_url = mock.url();
    c.drain_timeout_s = 0;
    let app = voxbridge::app::App::build(c).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.serve(listener, async move {
        let _ = stop_rx.await;
    }));
    let run = tokio::spawn(replay::run(options(format!("http://{addr}"), &["several-turns"], 1, 1.0)));
    assert!(eventually(Duration::from_secs(5), || mock.log.count() == 1).await, "the call is up");
    stop_tx.send(()).unwrap();
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.failed_calls, 1, "{:?}", report.errors);
    assert!(report.errors[0].contains("1001"), "{:?}", report.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_given_is_played_and_each_call_says_how_the_ai_answered() {
    let h = start(config(AudioMode::G711), mock_options()).await;
    let report =
        replay::run(options(format!("http://{}", h.addr), &["dtmf", "greeting-and-answer"], 1, 4.0)).await.unwrap();
    assert_eq!((report.calls, report.failed_calls, report.ai_answered), (2, 0, 2), "{:?}", report.errors);
    let mut played: Vec<&str> = report.per_call.iter().map(|c| c.fixture.as_str()).collect();
    played.sort();
    assert!(played[0].ends_with("dtmf.jsonl") && played[1].ends_with("greeting-and-answer.jsonl"), "{played:?}");
    let answer = report.per_call.iter().find(|c| c.fixture.ends_with("greeting-and-answer.jsonl")).unwrap();
    assert!(answer.turns.first_audio_ms.is_some());
    assert!(!answer.turns.response_latency_ms.is_empty(), "the answer to the caller's words was timed");
    assert!(report.first_audio.count == 2 && report.response_latency.count >= 1);
    // A clean call: the server saw no sequence gap (mark echoes are numbered in line).
    let server = report.server.as_ref().expect("server figures");
    assert_eq!(server.caller_messages_missing, 0);
    assert_eq!(server.lost_frames, 0);
    let text = report.text();
    assert!(text.contains("dtmf.jsonl: ok; AI first heard at"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_reconnect_is_not_counted_as_a_barge_in() {
    let opts =
        voxbridge::mock_realtime::MockOptions { drop_first_after: Some(Duration::from_secs(4)), ..mock_options() };
    let h = start(config(AudioMode::G711), opts).await;
    let report = replay(&h, "several-turns", 2.0, None).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    assert_eq!(h.mock.as_ref().unwrap().log.count(), 2, "the model was reconnected");
    let server = report.server.as_ref().unwrap();
    assert_eq!(server.model_reconnects, 1);
    let clears = &report.per_call[0].clears;
    assert!(
        report.barge_ins as usize == clears.iter().filter(|c| c.by_caller).count(),
        "only the caller's cuts are barge-ins: {clears:?}"
    );
    eprintln!("barge-ins {} (server {}), other cuts {}", report.barge_ins, server.barge_ins, report.other_cuts);
    assert_eq!(report.barge_ins, server.barge_ins, "the same barge-ins the server counted");
}
