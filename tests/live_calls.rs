//! GPT-Live calls end to end on loopback: the call chooses the API (`model_api`, or
//! `VOXBRIDGE_MODEL_API`), the bridge speaks GPT-Live to the mock at `/v1/live/sessions`
//! (`session.start`, paced output, full duplex), and the call's record shows what it cost.
//! Failover: a chosen API that cannot be reached gives way to the other one.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use voxbridge::config::{AudioMode, Config, ModelApiArg};
use voxbridge::media::g711;
use voxbridge::mock_realtime::{self, MockOptions};

fn live_options() -> MockOptions {
    MockOptions { live_speed: 4.0, ..mock_options() }
}

/// Server + mock serving both APIs; `VOXBRIDGE_MODEL_API=live`.
async fn start_live(mut c: Config, mock: MockOptions) -> Harness {
    voxbridge::install_tls();
    let mock = mock_realtime::spawn_local(mock).await.expect("mock starts");
    c.model_api = ModelApiArg::Live;
    c.realtime_url = mock.url();
    c.live_url = mock.live_url();
    let mut h = start_with_model(c).await;
    h.mock = Some(mock);
    h
}

/// The only call's record (the replayed call is an inbound one) once `done` says so (or after
/// four seconds, for the assertions to tell what is missing).
async fn only_call(h: &Harness, done: impl Fn(&Value) -> bool) -> Value {
    let http = http_client();
    let mut call = Value::Null;
    for _ in 0..200 {
        let list: Value = http.get(format!("http://{}/v1/calls", h.addr)).send().await.unwrap().json().await.unwrap();
        let id = list["calls"][0]["id"].as_str().unwrap().to_string();
        call = http.get(format!("http://{}/v1/calls/{id}", h.addr)).send().await.unwrap().json().await.unwrap();
        if done(&call) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    call
}

fn ended(call: &Value) -> bool {
    !call["end_reason"].is_null()
}

fn ended_and_billed(call: &Value) -> bool {
    ended(call) && call["usage"]["model"]["live_seconds"].as_f64().unwrap_or(0.0) > 0.0
}

fn session_start(h: &Harness, i: usize) -> Value {
    let conn = h.mock.as_ref().unwrap().log.get(i).unwrap();
    conn.lock().unwrap().session_updates[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_g711_live_call_passes_audio_through_bit_exact_greets_and_bills_seconds() {
    let h = start_live(config(AudioMode::G711), live_options()).await;
    let report = replay(&h, "greeting-and-answer", 4.0, None).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    let audio_in = model_audio_in(&h, 0).await;
    assert_eq!(audio_in, fixture_audio("greeting-and-answer"), "the model receives the caller's bytes verbatim");
    let session = session_start(&h, 0);
    assert_eq!(session["model"], "gpt-live-1.1");
    assert_eq!(session["audio"]["format"], serde_json::json!({"type": "audio/pcmu", "rate": 8000}));
    assert_eq!(session["instructions"], Config::defaults().instructions, "the call's instructions");
    assert_eq!(session["audio"]["output"]["voice"], "marin");
    assert_eq!(session["delegation"]["type"], "responses");
    assert_eq!(session["delegation"]["responses"]["tools"][0]["name"], "end_call");
    let conn = h.mock.as_ref().unwrap().log.get(0).unwrap();
    {
        let log = conn.lock().unwrap();
        assert_eq!(log.authorization.as_deref(), Some("Bearer sk-test"));
        assert_eq!(log.response_requests[0], Config::defaults().greeting.to_lowercase(), "the greeting is spoken");
        assert!(log.errors_sent.is_empty(), "every event was accepted: {:?}", log.errors_sent);
    }
    let call = &report.per_call[0];
    assert!(call.audio_received_ms > 1500.0, "the caller heard the greeting and an answer: {call:?}");
    let record = only_call(&h, ended_and_billed).await;
    let usage = &record["usage"]["model"];
    assert!(usage["live_seconds"].as_f64().unwrap() > 0.0, "the session's seconds are billed: {record}");
    assert_eq!(record["model"], "gpt-live-1.1");
    assert!(record["cost"]["model_usd"].as_f64().unwrap() > 0.0, "priced per minute: {record}");
    // Both sides' words, from the transcript deltas.
    let http = http_client();
    let t: Value = http
        .get(format!("http://{}/v1/calls/{}/transcript", h.addr, record["id"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let speakers: Vec<&str> = t["entries"].as_array().unwrap().iter().filter_map(|e| e["speaker"].as_str()).collect();
    assert!(speakers.contains(&"caller") && speakers.contains(&"assistant"), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pcm16_live_call_resamples_with_high_snr() {
    let h = start_live(config(AudioMode::Pcm16), live_options()).await;
    let report = replay(&h, "greeting-and-answer", 4.0, None).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    assert_eq!(session_start(&h, 0)["audio"]["format"], serde_json::json!({"type": "audio/pcm", "rate": 24000}));
    let got = le_samples(&model_audio_in(&h, 0).await);
    let reference: Vec<i16> = fixture_audio("greeting-and-answer").iter().map(|&b| g711::ulaw_decode(b)).collect();
    assert_eq!(got.len(), reference.len() * 3);
    // Aligned by the resampler's documented delay, as for Realtime.
    let delay = voxbridge::media::resample::StreamResampler::new(
        voxbridge::media::SampleRate::HZ_8000,
        voxbridge::media::SampleRate::HZ_24000,
    )
    .unwrap()
    .delay();
    let lag = (delay.as_micros() * 24 / 1000) as usize;
    let aligned: Vec<i16> = (0..reference.len()).map(|k| got.get(3 * k + lag).copied().unwrap_or(0)).collect();
    let best = snr_db(&telephone_band(&reference), &telephone_band(&aligned));
    assert!(best >= 35.0, "telephone-band SNR {best:.1} dB");
    assert!(report.per_call[0].audio_received_ms > 1500.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_call_through_responses_delegation_says_goodbye_then_hangs_up() {
    let h = start_live(config(AudioMode::G711), MockOptions { end_call_after: Some(1), ..live_options() }).await;
    let report = replay(&h, "greeting-and-answer", 4.0, None).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    assert_eq!(report.per_call[0].server_close_code, Some(1000), "the bridge ended the stream itself");
    let conn = h.mock.as_ref().unwrap().log.get(0).unwrap();
    {
        let log = conn.lock().unwrap();
        assert!(
            log.items.iter().any(|i| i["type"] == "function_call_output" && i["call_id"] == "call_0001"),
            "the backend's call got its output: {:?}",
            log.items
        );
        assert!(log.response_requests.iter().any(|r| r.contains("goodbye")), "{:?}", log.response_requests);
    }
    let record = only_call(&h, ended_and_billed).await;
    assert_eq!(record["end_reason"], "end_call", "{record}");
    assert!(record["usage"]["model"]["input_text_tokens"].as_u64().unwrap() > 0, "the backend's tokens: {record}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_talking_over_the_ai_stops_its_audio_when_the_model_yields() {
    let h = start_live(config(AudioMode::G711), MockOptions { live_speed: 1.0, ..mock_options() }).await;
    let report = replay(&h, "barge-in", 1.0, None).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    let conn = h.mock.as_ref().unwrap().log.get(0).unwrap();
    assert!(conn.lock().unwrap().interruptions >= 1, "the model yielded to the caller");
    let call = &report.per_call[0];
    eprintln!("clears: {:?}", call.clears);
    // The clear drops what was still queued at the carrier. (How much of the answer had played
    // is not asserted: on a loaded machine the carrier's 200 ms queue can run dry mid-answer, and
    // the replay then counts the next delta as a new stretch of speech.)
    call.clears
        .iter()
        .find(|c| c.by_caller && c.discarded_ms > 0.0)
        .unwrap_or_else(|| panic!("a clear once the model yielded mid-answer: {call:?}"));
    let errors = conn.lock().unwrap().errors_sent.clone();
    assert!(errors.is_empty(), "no Realtime cancel or truncate reached GPT-Live: {errors:?}");
    eprintln!("caller starts talking → AI audio stops at the caller (GPT-Live): {:?} ms", call.turns.barge_in_stop_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_fails_over_to_the_other_and_says_so_in_the_history() {
    for (chosen, served) in [(ModelApiArg::Live, "realtime"), (ModelApiArg::Realtime, "live")] {
        voxbridge::install_tls();
        let mock = mock_realtime::spawn_local(live_options()).await.unwrap();
        let mut c = config(AudioMode::G711);
        c.model_api = chosen;
        let dead = format!("ws://127.0.0.1:{}/v1/dead", common::process::free_port());
        (c.realtime_url, c.live_url) = match chosen {
            ModelApiArg::Live => (mock.url(), dead),
            ModelApiArg::Realtime => (dead, mock.live_url()),
        };
        c.model_connect_timeout_ms = 2_000;
        let mut h = start_with_model(c).await;
        h.mock = Some(mock);
        let report = replay(&h, "greeting-and-answer", 4.0, None).await;
        assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
        assert!(report.per_call[0].audio_received_ms > 1000.0, "the caller heard an AI, not the apology");
        let session = session_start(&h, 0);
        assert_eq!(session.get("delegation").is_some(), served == "live", "served by {served}: {session}");
        let record = only_call(&h, ended).await;
        let history = record["history"].as_array().unwrap();
        assert!(
            history.iter().any(|e| e["detail"].as_str().is_some_and(|d| d.contains(&format!("served by {served}")))),
            "{record}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_failover_off_an_unreachable_api_is_model_unreachable() {
    let mock = mock_realtime::spawn_local(live_options()).await.unwrap();
    let mut c = config(AudioMode::G711);
    c.model_api = ModelApiArg::Live;
    c.model_failover = false;
    c.realtime_url = mock.url();
    c.live_url = format!("ws://127.0.0.1:{}/v1/dead", common::process::free_port());
    let mut h = start_with_model(c).await;
    h.mock = Some(mock);
    let _ = replay(&h, "greeting-and-answer", 4.0, None).await;
    assert_eq!(h.mock.as_ref().unwrap().log.count(), 0, "the other API was not tried");
    let record = only_call(&h, ended).await;
    assert_eq!(record["end_reason"], "model_unreachable", "{record}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keypad_presses_reach_a_live_model() {
    let h = start_live(config(AudioMode::G711), live_options()).await;
    let report = replay(&h, "dtmf", 4.0, None).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    let conn = h.mock.as_ref().unwrap().log.get(0).unwrap();
    assert!(eventually(Duration::from_secs(2), || conn.lock().unwrap().closed_at.is_some()).await);
    let items = conn.lock().unwrap().items.clone();
    let digits: Vec<&Value> = items
        .iter()
        .filter(|i| {
            i["type"] == "session.instructions.append"
                && i["content"].as_str().unwrap_or("").contains("pressed the key")
        })
        .collect();
    assert!(!digits.is_empty(), "DTMF went to the model as instructions: {items:?}");
    assert!(digits.iter().all(|d| d["delegation_id"].is_null()), "{digits:?}");
}

/// A Realtime session lost mid-call whose API then cannot be reached: the call goes on with
/// GPT-Live, told the conversation so far and that the line dropped, and the history says so —
/// the caller does not hear the apology.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_lost_mid_call_whose_api_is_down_is_replaced_by_the_other_api() {
    let opts =
        MockOptions { drop_first_after: Some(Duration::from_secs(4)), realtime_down_after: Some(1), ..live_options() };
    let h = start(config(AudioMode::G711), opts).await;
    let report = replay(&h, "several-turns", 2.0, None).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    let mock = h.mock.as_ref().unwrap();
    assert_eq!(mock.log.count(), 2, "the Realtime session, then a GPT-Live one");
    assert!(session_start(&h, 0).get("delegation").is_none(), "first: Realtime");
    let live = session_start(&h, 1);
    assert!(live.get("delegation").is_some(), "then GPT-Live: {live}");
    {
        let second = mock.log.get(1).unwrap();
        let second = second.lock().unwrap();
        assert!(second.response_requests[0].contains("line dropped"), "it says it is back first");
        assert!(!second.audio_in.is_empty(), "the caller's audio reached it");
    }
    assert_eq!(report.per_call[0].server_close_code, Some(1000), "a normal end, not the apology's 1011");
    let record = only_call(&h, ended).await;
    let history = record["history"].as_array().unwrap();
    assert!(history.iter().any(|e| e["detail"].as_str().is_some_and(|d| d.contains("served by live"))), "{record}");
}
