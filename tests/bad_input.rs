//! Bad carrier input never ends a call or touches another: malformed JSON, bad base64, unknown
//! events, binary frames, media before `start`, a foreign `streamSid` are ignored (and counted);
//! an oversized message closes the socket with 1009 before any model session; the live-call cap
//! answers 503 at the upgrade.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use voxbridge::config::AudioMode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_are_survived_and_audio_keeps_flowing() {
    let h = start(config(AudioMode::G711), mock_options()).await;
    let mut ws = connect_media(h.addr, None).await.unwrap();
    send(&mut ws, r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#).await;
    send(&mut ws, media_msg(&[1; 160])).await; // before start
    send(&mut ws, start_for(&h, "c_bad")).await;
    send(&mut ws, "{not json").await;
    send(&mut ws, r#"{"event":"media","streamSid":"MZtest","media":{"payload":"***"}}"#).await;
    send(&mut ws, r#"{"event":"media","streamSid":"MZother","media":{"payload":"AAAA"}}"#).await;
    send(&mut ws, r#"{"event":"brand-new-event","streamSid":"MZtest"}"#).await;
    send(&mut ws, r#"{"event":"media","streamSid":"MZtest"}"#).await;
    ws.send(Message::Binary(vec![0u8; 64].into())).await.unwrap();
    send(&mut ws, r#"{"event":"mark","streamSid":"MZtest","mark":{"name":"never-sent"}}"#).await;
    let good: Vec<u8> = (0..160u32).map(|i| (i % 251) as u8).collect();
    for _ in 0..10 {
        send(&mut ws, media_msg(&good)).await;
    }
    let mock = h.mock.as_ref().unwrap();
    let arrived = eventually(Duration::from_secs(5), || {
        mock.log.get(0).is_some_and(|c| c.lock().unwrap().audio_in.len() >= 1600)
    })
    .await;
    assert!(arrived, "valid audio after the garbage reached the model");
    let conn = mock.log.get(0).unwrap();
    let audio = conn.lock().unwrap().audio_in.clone();
    assert_eq!(audio, good.repeat(10), "only the valid frames, verbatim, in order");
    // The call is still alive: a normal stop ends it cleanly.
    send(&mut ws, r#"{"event":"stop","streamSid":"MZtest","stop":{}}"#).await;
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, Some(1000));
    let metrics = reqwest::get(format!("http://{}/metrics", h.addr)).await.unwrap().text().await.unwrap();
    for reason in [
        "malformed_json",
        "bad_base64",
        "foreign_stream",
        "unknown_event",
        "binary_frame",
        "media_before_start",
        "missing_field",
    ] {
        assert!(
            metrics.contains(&format!("voxbridge_ignored_frames_total{{reason=\"{reason}\"}}")),
            "{reason} counted"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_closes_with_1009_before_any_model_session() {
    let h = start(config(AudioMode::G711), mock_options()).await;
    let mut ws = connect_media(h.addr, None).await.unwrap();
    send(&mut ws, "x".repeat(100 * 1024)).await;
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, Some(1009));
    assert_eq!(h.mock.as_ref().unwrap().log.count(), 0);
    // Another call is unaffected.
    let report = replay(&h, "dtmf", 8.0, None).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_call_cap_answers_503_at_the_upgrade() {
    let mut c = config(AudioMode::G711);
    c.max_live_calls = 1;
    let h = start(c, mock_options()).await;
    let mut first = connect_media(h.addr, None).await.unwrap();
    send(&mut first, start_for(&h, "c_1")).await;
    // The live slot is taken once `start` proves the call (not at the upgrade).
    assert!(eventually(Duration::from_secs(5), || h.bridge.admission.live() == 1).await);
    assert_eq!(connect_media(h.addr, None).await.err(), Some(503));
    send(&mut first, r#"{"event":"stop","streamSid":"MZtest","stop":{}}"#).await;
    assert_eq!(close_code(&mut first, Duration::from_secs(5)).await, Some(1000));
    assert!(eventually(Duration::from_secs(2), || h.bridge.admission.live() == 0).await);
    assert!(connect_media(h.addr, None).await.is_ok(), "a slot frees when a call ends");
}
