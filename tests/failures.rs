//! Peers that fail: the model refuses, black-holes the handshake, drops mid-call (a new session
//! takes over, once) or sends a fatal error; the carrier never sends `start` or vanishes. Each
//! ends the call with a defined close (so Twilio's fallback TwiML speaks), never a hang, and the
//! model socket is closed.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use voxbridge::config::AudioMode;

fn fast_timeouts() -> voxbridge::config::Config {
    let mut c = config(AudioMode::G711);
    c.model_connect_timeout_ms = 300;
    c.start_timeout_ms = 300;
    c
}

async fn open_call(h: &Harness) -> Ws {
    let mut ws = connect_media(h.addr, None).await.unwrap();
    send(&mut ws, start_for(h, "c_fail")).await;
    send(&mut ws, media_msg(&[0xFF; 160])).await;
    ws
}

#[derive(Clone, Copy)]
enum Script {
    /// Accept TCP, never answer the WebSocket handshake.
    BlackHole,
    /// Complete the handshake, read `session.update`, then drop the connection.
    DropAfterSetup,
    /// Send `error` with a fatal code after `session.update`.
    Fatal,
    /// Read `session.update`, then neither read nor write again, socket open (a stalled peer).
    Stall,
}

/// A fake model scripted per connection; returns its URL and how many connections it took.
async fn fake_model(script: Script) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/v1/realtime", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&count);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            match script {
                Script::BlackHole => held.push(tcp),
                Script::DropAfterSetup | Script::Fatal | Script::Stall => {
                    tokio::spawn(async move {
                        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                        let _ = ws.next().await; // session.update
                        if let Script::Fatal = script {
                            let e = r#"{"type":"error","event_id":"e1","error":{"type":"invalid_request_error","code":"session_expired","message":"Your session hit the maximum duration."}}"#;
                            let _ = ws.send(Message::Text(e.into())).await;
                            tokio::time::sleep(Duration::from_secs(5)).await;
                        }
                        if let Script::Stall = script {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                        }
                        drop(ws);
                    });
                }
            }
        }
    });
    (url, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_refusing_connections_closes_the_carrier_socket_with_1011() {
    let mut c = fast_timeouts();
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    c.realtime_url = format!("ws://{}/v1/realtime", closed.local_addr().unwrap());
    drop(closed);
    let h = start_with_model(c).await;
    let ready = |h: &Harness| {
        let url = format!("http://{}/readyz", h.addr);
        async move {
            let r = reqwest::get(url).await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(ready(&h).await.0, 200, "nothing known about the model yet");
    let mut ws = open_call(&h).await;
    assert_eq!(close_code(&mut ws, Duration::from_secs(10)).await, Some(1011));
    // Readiness says the model cannot be reached (new calls are better sent elsewhere).
    let (status, body) = ready(&h).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("model unreachable"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_handshake_timeout_is_retried_once_then_the_carrier_socket_closes() {
    let mut c = fast_timeouts();
    let (url, attempts) = fake_model(Script::BlackHole).await;
    c.realtime_url = url;
    let h = start_with_model(c).await;
    let t0 = Instant::now();
    let mut ws = open_call(&h).await;
    assert_eq!(close_code(&mut ws, Duration::from_secs(10)).await, Some(1011));
    assert_eq!(attempts.load(Ordering::SeqCst), 2, "one connect plus one retry");
    eprintln!("closed after {:?} (two 300 ms timeouts)", t0.elapsed());
    assert!(t0.elapsed() >= Duration::from_millis(600), "both attempts waited for their timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_lost_twice_ends_the_call_with_1011_after_one_new_session() {
    let mut c = fast_timeouts();
    let (url, connections) = fake_model(Script::DropAfterSetup).await;
    c.realtime_url = url;
    let h = start_with_model(c).await;
    let mut ws = open_call(&h).await;
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, Some(1011));
    assert_eq!(connections.load(Ordering::SeqCst), 2, "one new session was tried, no more");
    assert!(eventually(Duration::from_secs(2), || h.bridge.admission.live() == 0).await, "no call left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_model_error_ends_the_call() {
    let mut c = fast_timeouts();
    let (url, _) = fake_model(Script::Fatal).await;
    c.realtime_url = url;
    let h = start_with_model(c).await;
    let mut ws = open_call(&h).await;
    assert_eq!(close_code(&mut ws, Duration::from_secs(3)).await, Some(1011));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_start_within_the_deadline_closes_with_1008_and_opens_no_model_session() {
    let h = start(fast_timeouts(), mock_options()).await;
    let mut ws = connect_media(h.addr, None).await.unwrap();
    send(&mut ws, r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#).await;
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, Some(1008));
    assert_eq!(h.mock.as_ref().unwrap().log.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carrier_vanishing_closes_the_model_socket_and_frees_the_call() {
    let h = start(fast_timeouts(), mock_options()).await;
    let ws = open_call(&h).await;
    let mock = h.mock.as_ref().unwrap();
    assert!(eventually(Duration::from_secs(5), || mock.log.count() == 1).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Drop the TCP connection without a close frame (the caller's network died).
    let dropped_at = Instant::now();
    drop(ws);
    let conn = mock.log.get(0).unwrap();
    assert!(
        eventually(Duration::from_secs(2), || conn.lock().unwrap().closed_at.is_some()).await,
        "model socket closed"
    );
    let took = conn.lock().unwrap().closed_at.unwrap().saturating_duration_since(dropped_at);
    eprintln!("model socket closed {took:?} after the carrier vanished");
    assert!(eventually(Duration::from_secs(2), || h.bridge.admission.live() == 0).await, "call slot released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_lost_mid_call_is_replaced_by_a_session_that_knows_the_conversation() {
    let opts =
        voxbridge::mock_realtime::MockOptions { drop_first_after: Some(Duration::from_secs(4)), ..mock_options() };
    let h = start(config(AudioMode::G711), opts).await;
    let report = replay(&h, "several-turns", 2.0, None).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    let mock = h.mock.as_ref().unwrap();
    assert_eq!(mock.log.count(), 2, "one new session");
    let (first, second) = (mock.log.get(0).unwrap(), mock.log.get(1).unwrap());
    let (first, second) = (first.lock().unwrap(), second.lock().unwrap());
    assert!(first.responses >= 1 && first.closed_at.is_some(), "the first session talked, then dropped");
    assert_eq!(second.session_updates.len(), 1, "the new session is configured");
    let history: Vec<(&str, &str)> = second
        .items
        .iter()
        .map(|i| (i["role"].as_str().unwrap_or(""), i["content"][0]["type"].as_str().unwrap_or("")))
        .collect();
    assert!(
        history.contains(&("user", "input_text")) && history.contains(&("assistant", "output_text")),
        "{history:?}"
    );
    assert!(second.response_requests[0].contains("line dropped"), "it says it is back first");
    assert!(!second.audio_in.is_empty() && second.responses >= 2, "the conversation went on");
    assert_eq!(report.per_call[0].server_close_code, Some(1000), "a normal end (a lost model closes with 1011)");
}

/// Reliability row 7: the model commits the caller's turn and answers nothing. Past
/// `VOXBRIDGE_MODEL_RESPONSE_TIMEOUT_MS` its session counts as lost: a new one gets the
/// conversation and says it is back; when that one stalls too, the call ends `model_lost` with
/// the apology (no caller left waiting on a model that will never answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_never_answers_a_turn_is_replaced_then_the_call_ends_with_the_apology() {
    let opts = voxbridge::mock_realtime::MockOptions { stall_on_turn: Some(1), ..mock_options() };
    let mut c = config(AudioMode::G711);
    c.model_response_timeout_ms = 800;
    let h = start(c, opts).await;
    let report = replay(&h, "several-turns", 2.0, None).await;
    let mock = h.mock.as_ref().unwrap();
    assert_eq!(mock.log.count(), 2, "one new session after the first stalled");
    let (first, second) = (mock.log.get(0).unwrap(), mock.log.get(1).unwrap());
    assert!(first.lock().unwrap().closed_at.is_some(), "the stalled session was given up");
    let resumed = second.lock().unwrap().response_requests[0].clone();
    assert!(resumed.contains("line dropped"), "the new one says it is back first: {resumed}");
    assert_eq!(report.per_call[0].server_close_code, Some(1011), "then the call ends for the AI's failure");
    let http = http_client();
    let list: serde_json::Value =
        http.get(format!("http://{}/v1/calls", h.addr)).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["calls"][0]["end_reason"], "model_lost", "{list}");
}

/// Reliability row 6: a model session nears its limit (here after 2 s instead of 55 minutes): at
/// the next quiet moment it is closed and a new one gets the conversation so far, saying nothing
/// (no "I am back"): the caller hears no seam and the call goes on to its normal end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_model_session_is_replaced_at_a_quiet_moment_without_a_seam() {
    let mut c = config(AudioMode::G711);
    c.model_session_rotate_s = 2;
    let h = start(c, mock_options()).await;
    let report = replay(&h, "several-turns", 2.0, None).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    assert_eq!(report.per_call[0].server_close_code, Some(1000), "a normal end");
    let mock = h.mock.as_ref().unwrap();
    assert!(mock.log.count() >= 2, "the session was replaced");
    let (first, second) = (mock.log.get(0).unwrap(), mock.log.get(1).unwrap());
    assert!(first.lock().unwrap().closed_at.is_some(), "the old session was closed");
    let (items, requests) = {
        let log = second.lock().unwrap();
        (log.items.len(), log.response_requests.clone())
    };
    assert!(items > 0, "the new session got the conversation so far");
    assert!(!requests.iter().any(|r| r.contains("line dropped")), "nothing said about it: {requests:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_socket_that_goes_silent_counts_as_lost() {
    let mut c = fast_timeouts();
    c.model_idle_timeout_ms = 600;
    let (url, connections) = fake_model(Script::Stall).await;
    c.realtime_url = url;
    let h = start_with_model(c).await;
    let mut ws = open_call(&h).await;
    // Silent, not even answering pings: lost after 600 ms, a new session (as silent), then the end.
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, Some(1011));
    assert_eq!(connections.load(Ordering::SeqCst), 2, "the silent socket was replaced once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_but_healthy_model_answers_pings_and_the_call_goes_on() {
    let mut c = config(AudioMode::G711);
    c.model_idle_timeout_ms = 300;
    let h = start(c, mock_options()).await;
    // No greeting, and the caller only sends silence: the model says nothing for seconds.
    let mut ws = connect_media(h.addr, None).await.unwrap();
    send(&mut ws, start_for(&h, "c_quiet")).await;
    for _ in 0..100 {
        send(&mut ws, media_msg(&[0xFF; 160])).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mock = h.mock.as_ref().unwrap();
    assert_eq!(mock.log.count(), 1, "no new session: the pongs kept it alive");
    assert_eq!(h.bridge.admission.live(), 1, "the call is still up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_stream_that_goes_silent_ends_the_call_so_the_caller_hears_the_apology() {
    let mut c = config(AudioMode::G711);
    c.carrier_idle_timeout_ms = 300;
    let h = start(c, mock_options()).await;
    let mut ws = open_call(&h).await; // start and one frame, then nothing
    let t0 = Instant::now();
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, Some(1011), "Twilio then says the apology TwiML");
    eprintln!("closed {:?} after the last frame (300 ms watchdog)", t0.elapsed());
    assert!(eventually(Duration::from_secs(2), || h.bridge.admission.live() == 0).await, "no call left behind");
}

/// Reliability row 2: a model that keeps failing opens the circuit breaker after three failed
/// connects in a row. The next caller hears the apology at once (no connect is tried, nothing to
/// wait out), readiness says why, and outbound calls wait in the queue, their attempts unspent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_keeps_failing_opens_the_breaker_callers_get_the_apology_at_once_and_dials_wait() {
    let (twilio, dials, _) = common::twilio::fake_twilio().await;
    let mut c = common::twilio::outbound_config(twilio, None);
    c.model_connect_timeout_ms = 300;
    let (url, connections) = fake_model(Script::BlackHole).await;
    c.realtime_url = url;
    let h = start_with_model(c).await;
    for n in 1..=3 {
        let mut ws = signed_call(&h).await;
        assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, Some(1011), "call {n}: the apology");
    }
    let tried = connections.load(Ordering::SeqCst);
    assert_eq!(tried, 6, "each of the three calls tried twice");
    // Open: the fourth caller is not made to wait for a connect that will not come.
    let started = Instant::now();
    let mut ws = signed_call(&h).await;
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, Some(1011));
    let waited = started.elapsed();
    assert_eq!(connections.load(Ordering::SeqCst), tried, "no connect was tried");
    eprintln!("the fourth caller heard the apology after {} ms", waited.as_millis());
    let ready = reqwest::get(format!("http://{}/readyz", h.addr)).await.unwrap();
    assert_eq!(ready.status(), 503);
    // An outbound call waits in the queue while the breaker is open (checked over 1 s of 20 ms
    // dialler rounds: a wait by design, the breaker's cool-off being 30 s).
    let http = http_client();
    let id = common::twilio::create(&h, &http, serde_json::json!({"to": "+15551230099"})).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(dials.lock().unwrap().is_empty(), "nothing dialled while the model cannot be reached");
    let call = common::twilio::call(&h, &http, &id).await;
    assert_eq!((call["status"].as_str(), call["attempts"].as_i64()), (Some("queued"), Some(0)), "{call}");
}

/// [`open_call`] on a server that checks Twilio's signatures (`TWILIO_AUTH_TOKEN` set).
async fn signed_call(h: &Harness) -> Ws {
    let sig = voxbridge::providers::twilio::signature::compute(
        common::twilio::TOKEN,
        &format!("{}/media/twilio", PUBLIC_URL.replace("https://", "wss://")),
        &[],
    );
    let mut ws = connect_media(h.addr, Some(&sig)).await.unwrap();
    send(&mut ws, start_for(h, "c_fail")).await;
    send(&mut ws, media_msg(&[0xFF; 160])).await;
    ws
}
