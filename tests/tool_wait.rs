//! While the AI waits for one of the business's tools (issue 25): after ~700 ms of silence the
//! caller hears a soft filler instead of dead air, cleared the moment the answer comes; a tool
//! that does not answer within its `timeout_ms` is an error the AI is told. End to end on
//! loopback: the replayed caller's received audio, the fake model's log.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use voxbridge::config::AudioMode;

/// The business's tool: answers after `delay` (`None`: never), keeping each call.
async fn tool(delay: Option<Duration>) -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let s = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/lookup",
        axum::routing::post(move |body: String| {
            let s = Arc::clone(&s);
            async move {
                s.lock().unwrap().push(serde_json::from_str(&body).unwrap_or(Value::Null));
                match delay {
                    // A slow CRM: the wait itself is what is tested.
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending::<()>().await,
                }
                axum::Json(json!({"customer": "Ada", "tier": "gold"}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/lookup", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// A server whose model calls `lookup` at the caller's first turn, the replay's number bound to
/// an agent with that tool (`timeout_ms` as given); the replayed call's report and the server.
async fn call_with_tool(delay: Option<Duration>, timeout_ms: u64) -> (voxbridge::replay::Report, Harness) {
    call_on(delay, timeout_ms, "realtime").await
}

/// [`call_with_tool`] on the model API `api`.
async fn call_on(delay: Option<Duration>, timeout_ms: u64, api: &str) -> (voxbridge::replay::Report, Harness) {
    let (url, seen) = tool(delay).await;
    let mut c = config(AudioMode::G711);
    c.webhook_allow_private = true;
    let mock = voxbridge::mock_realtime::MockOptions {
        call_tool_at: Some((1, "lookup".into(), "{}".into())),
        live_speed: 4.0,
        ..mock_options()
    };
    let h = start(c, mock).await;
    let http = http_client();
    let agent =
        json!({"name": "Desk", "model_api": api, "tools": [{"name": "lookup", "url": url, "timeout_ms": timeout_ms}]});
    let agent: Value =
        http.post(format!("http://{}/v1/agents", h.addr)).json(&agent).send().await.unwrap().json().await.unwrap();
    let bind = json!({"agent_id": agent["id"]});
    let put = http.put(format!("http://{}/v1/numbers/+15557654321", h.addr)).json(&bind).send().await.unwrap();
    assert_eq!(put.status(), 200);
    let report = replay(&h, "several-turns", 2.0, None).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    assert_eq!(seen.lock().unwrap().len(), 1, "the tool was called");
    (report, h)
}

/// What the model was told the tool answered.
fn tool_output(h: &Harness) -> String {
    let conn = h.mock.as_ref().unwrap().log.get(0).unwrap();
    let log = conn.lock().unwrap();
    let item = log.items.iter().find(|i| i["type"] == "function_call_output").cloned();
    item.and_then(|i| i["output"].as_str().map(str::to_string)).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_second_tool_fills_the_wait_with_a_soft_tone_and_its_answer_plays_at_once() {
    let (fast, h) = call_with_tool(Some(Duration::ZERO), 5_000).await;
    assert!(tool_output(&h).contains("gold"));
    let (slow, h) = call_with_tool(Some(Duration::from_secs(3)), 5_000).await;
    assert!(tool_output(&h).contains("gold"), "the answer reached the model: {}", tool_output(&h));
    // 3 s of waiting, in which the caller also hears the AI answer its next turn: the silences
    // beyond 700 ms are filled (more audio heard than when the tool answers at once), and what
    // of the filler is still queued when the answer comes is cleared.
    let filler_ms = slow.audio_received_ms - fast.audio_received_ms;
    assert!((1_000.0..=2_700.0).contains(&filler_ms), "{filler_ms} ms more audio heard: fast {fast:?}, slow {slow:?}");
    let clears = |r: &voxbridge::replay::Report| r.per_call[0].clears.len();
    assert_eq!(clears(&fast), 0, "an answer in time: nothing to clear");
    assert!(clears(&slow) >= 1, "the filler gave way: {slow:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_that_does_not_answer_within_its_timeout_is_an_error_the_ai_is_told() {
    let (_, h) = call_with_tool(None, 400).await;
    let output = tool_output(&h);
    assert!(output.contains("did not answer within 400 ms"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gpt_live_call_fills_a_slow_tools_wait_too() {
    let (slow, h) = call_on(Some(Duration::from_secs(3)), 5_000, "live").await;
    let conn = h.mock.as_ref().unwrap().log.get(0).unwrap();
    assert!(conn.lock().unwrap().session_updates[0]["delegation"].is_object(), "a GPT-Live session");
    assert!(!slow.per_call[0].clears.is_empty(), "the filler played and gave way to the answer: {slow:?}");
}
