//! Barge-in end to end at real-time speed: the caller talks over the answer; the carrier gets
//! `clear`; the model gets `conversation.item.truncate` with an integer `audio_end_ms` within
//! 20 ms of what the fake carrier actually played (less the path's documented delay) and never
//! above what the model sent.

mod common;

use common::*;
use voxbridge::config::AudioMode;

/// `preamble`: the model answers with two items per response, the first this long (ms of
/// carrier audio it takes); the barge-in lands in the second.
async fn barge_in(mode: AudioMode, path_delay_ms: f64, preamble: Option<(u64, f64)>) {
    let mut mock = mock_options();
    mock.preamble_ms = preamble.map(|(ms, _)| ms);
    let h = start(config(mode), mock).await;
    let report = replay(&h, "barge-in", 1.0, None).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    let call = &report.per_call[0];
    assert_eq!(call.clears.len(), 1, "exactly one barge-in: {:?}", call.clears);
    let clear = &call.clears[0];
    assert!(clear.heard_in_spurt_ms > 200.0, "the answer had been playing: {clear:?}");
    assert!(clear.discarded_ms > 0.0, "audio was still queued at the carrier: {clear:?}");

    let conn = h.mock.as_ref().unwrap().log.get(0).unwrap();
    let t = conn
        .lock()
        .unwrap()
        .truncations
        .iter()
        .find(|t| t.audio_end_ms.unwrap_or(0) > 0)
        .cloned()
        .expect("a truncate for the interrupted item");
    assert!(t.accepted, "model accepted the truncation: {t:?}");
    let end = t.audio_end_ms.unwrap() as f64;
    assert!(end <= t.item_sent_ms.unwrap() as f64, "never above what the model sent: {t:?}");
    let before = preamble.map_or(0.0, |(_, carrier_ms)| carrier_ms);
    let heard = clear.heard_in_spurt_ms - before - path_delay_ms;
    if preamble.is_some() {
        assert!(heard > 100.0, "the barge-in landed in the second item: {clear:?}");
        let log = conn.lock().unwrap();
        let interrupted: Vec<_> = log.truncations.iter().filter(|t| t.audio_end_ms.unwrap_or(0) > 0).collect();
        assert_eq!(interrupted.len(), 1, "only the item being heard is cut: {interrupted:?}");
    }
    eprintln!("truncate at {end} ms, carrier heard {heard:.1} ms (path delay {path_delay_ms} ms)");
    assert!((end - heard).abs() <= 20.0, "audio_end_ms {end} vs heard {heard:.1}");
    let item = t.item_id.clone();

    // The stored transcript says how much of the interrupted answer the caller heard.
    let http = http_client();
    let list: serde_json::Value =
        http.get(format!("http://{}/v1/calls", h.addr)).send().await.unwrap().json().await.unwrap();
    let id = list["calls"][0]["id"].as_str().unwrap().to_string();
    let mut entries = Vec::new();
    for _ in 0..100 {
        let t: serde_json::Value =
            http.get(format!("http://{}/v1/calls/{id}/transcript", h.addr)).send().await.unwrap().json().await.unwrap();
        entries = t["entries"].as_array().cloned().unwrap_or_default();
        if !entries.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let cut: Vec<_> = entries.iter().filter(|e| e["heard_ms"].is_u64()).collect();
    assert_eq!(cut.len(), 1, "exactly the interrupted answer ({item}) carries heard_ms: {entries:?}");
    assert_eq!(cut[0]["speaker"], "assistant");
    assert_eq!(cut[0]["heard_ms"].as_u64().unwrap() as f64, end, "the same point the model was told");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g711_barge_in_truncates_at_what_the_caller_heard() {
    barge_in(AudioMode::G711, 0.0, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcm16_barge_in_truncates_at_what_the_caller_heard() {
    // Outbound 24 kHz → 8 kHz resampler delay (ADR 0010).
    barge_in(AudioMode::Pcm16, 1.875, None).await;
}

/// Two items per response (a 400 ms preamble, then the answer), barge-in during the answer:
/// the answer is truncated at what the caller heard of it (before: about 96 ms beyond, the
/// preamble's queued frames counted against the answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g711_barge_in_during_a_responses_second_item_truncates_that_item() {
    barge_in(AudioMode::G711, 0.0, Some((400, 400.0))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcm16_barge_in_during_a_responses_second_item_truncates_that_item() {
    // The preamble's 400 ms plus the resampler's flushed tail, padded to a whole frame: 420 ms.
    barge_in(AudioMode::Pcm16, 1.875, Some((400, 420.0))).await;
}
