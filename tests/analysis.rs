//! Post-call analysis end to end on loopback (issue 24), on whichever store the suite runs: a
//! call whose agent asks for an analysis is answered and ends, its transcript goes to a fake
//! OpenAI Responses API (failing twice first), and the structured answer lands on the call, in
//! its cost and in `call.analyzed`; a server killed between a call's end and its analysis leaves
//! it to the next one.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use voxbridge::config::AudioMode;

/// The fake Responses API: fails the first `failures` requests with a 500, then answers with
/// `answer` as the output text; keeps each request (body, authorization).
struct FakeResponses {
    url: String,
    requests: Arc<Mutex<Vec<(Value, String)>>>,
}

async fn fake_responses(failures: usize, answer: Value) -> FakeResponses {
    let requests: Arc<Mutex<Vec<(Value, String)>>> = Arc::default();
    let (r, count) = (Arc::clone(&requests), Arc::new(AtomicUsize::new(0)));
    let app = axum::Router::new().route(
        "/v1/responses",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let (r, count, answer) = (Arc::clone(&r), Arc::clone(&count), answer.clone());
            async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                r.lock().unwrap().push((serde_json::from_str(&body).unwrap_or(Value::Null), auth));
                if count.fetch_add(1, Ordering::SeqCst) < failures {
                    let e = json!({"error": {"message": "The server is overloaded", "type": "server_error"}});
                    return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, axum::Json(e));
                }
                let body = response_body(&answer);
                (axum::http::StatusCode::OK, axum::Json(body))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/responses", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakeResponses { url, requests }
}

/// The Responses API's answer with `answer` as its output text, as `openai.types.responses.Response`
/// has it.
fn response_body(answer: &Value) -> Value {
    json!({"id": "resp_1", "object": "response", "created_at": 1765130000, "status": "completed",
        "model": "gpt-5-mini-2025-08-07", "parallel_tool_calls": true, "tool_choice": "auto", "tools": [],
        "output": [{"type": "reasoning", "id": "rs_1", "summary": []},
                   {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": answer.to_string(), "annotations": []}]}],
        "usage": {"input_tokens": 800, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                  "output_tokens": 120, "output_tokens_details": {"reasoning_tokens": 64}, "total_tokens": 920}})
}

fn agent_with_analysis() -> Value {
    json!({"name": "Bookings", "instructions": "Book a check-up.",
           "analysis": {"summary": true, "success_criteria": "A time was agreed.",
                        "schema": {"type": "object", "properties": {"slot": {"type": "string"}}, "required": ["slot"]}}})
}

fn good_answer() -> Value {
    json!({"summary": "The caller booked Tuesday at nine.", "success": true, "data": {"slot": "tuesday 09:00"}})
}

/// Creates the agent and binds the replay's number to it, at the server `base`.
async fn bind_agent(base: &str) {
    let http = http_client();
    let agent: Value =
        http.post(format!("{base}/v1/agents")).json(&agent_with_analysis()).send().await.unwrap().json().await.unwrap();
    let put = http.put(format!("{base}/v1/numbers/+15557654321")).json(&json!({"agent_id": agent["id"]})).send().await;
    assert_eq!(put.unwrap().status(), 200);
}

/// The only call at `base` once its analysis is in (or after ten seconds, to say what is missing).
async fn analysed(base: &str) -> Value {
    let http = http_client();
    let mut call = Value::Null;
    for _ in 0..400 {
        let list: Value = http.get(format!("{base}/v1/calls")).send().await.unwrap().json().await.unwrap();
        call = list["calls"][0].clone();
        if !call["analysis"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    call
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_call_is_analysed_through_two_failures_priced_and_sent_as_call_analyzed() {
    let fake = fake_responses(2, good_answer()).await;
    let (hook, events) = event_receiver().await;
    let mut c = config(AudioMode::G711);
    c.analysis_url = fake.url.clone();
    c.analysis_retry_ms = 50;
    c.webhook_url = Some(hook);
    c.webhook_allow_private = true;
    let h = start(c, mock_options()).await;
    let base = format!("http://{}", h.addr);
    bind_agent(&base).await;
    let report = replay(&h, "greeting-and-answer", 4.0, None).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);

    let call = analysed(&base).await;
    let a = &call["analysis"];
    assert_eq!(a["summary"], "The caller booked Tuesday at nine.", "{call}");
    assert_eq!((a["success"].as_bool(), &a["data"]), (Some(true), &json!({"slot": "tuesday 09:00"})));
    assert_eq!(
        (a["model"].as_str(), &a["usage"]),
        (Some("gpt-5-mini"), &json!({"input_tokens": 800, "output_tokens": 120}))
    );
    let usd = (800.0 * 0.25 + 120.0 * 2.0) / 1e6;
    assert!((a["cost_usd"].as_f64().unwrap() - usd).abs() < 1e-9, "{a}");
    assert!((call["cost"]["analysis_usd"].as_f64().unwrap() - usd).abs() < 1e-9, "{}", call["cost"]);
    let parts = call["cost"]["model_usd"].as_f64().unwrap() + call["cost"]["carrier_usd"].as_f64().unwrap() + usd;
    assert!(
        (call["cost"]["total_usd"].as_f64().unwrap() - parts).abs() < 2e-6,
        "in the call's total: {}",
        call["cost"]
    );

    // Three requests: two failed, the third answered; each the transcript as heard, with the key.
    let requests = fake.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3, "retried after each failure");
    let (body, auth) = &requests[2];
    assert_eq!(auth, "Bearer sk-test");
    assert_eq!(body["model"], "gpt-5-mini");
    let input = body["input"].as_str().unwrap();
    assert!(input.contains("Caller: ") && input.contains("Assistant: "), "{input}");
    assert_eq!(body["text"]["format"]["schema"]["properties"]["data"]["required"], json!(["slot"]));
    assert!(body["instructions"].as_str().unwrap().contains("A time was agreed."));
    // Both sides of the exchange as the vendor's SDK types them (`.ci/run` installs `openai`).
    let exchange = std::env::temp_dir().join(format!("vb-analysis-{}.json", std::process::id()));
    std::fs::write(&exchange, json!({"request": body, "response": response_body(&good_answer())}).to_string()).unwrap();
    if let Some(out) = python_oracle("check_responses_shapes.py", &exchange, "openai") {
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "not what the SDK types:\n{report}{}", String::from_utf8_lossy(&out.stderr));
    }

    // `call.analyzed` carries the analysis, the call's status unchanged.
    let id = call["id"].as_str().unwrap().to_string();
    let got = || events.lock().unwrap().iter().find(|e| e["type"] == "call.analyzed").cloned();
    assert!(eventually(Duration::from_secs(10), || got().is_some()).await, "call.analyzed sent");
    let event = got().unwrap();
    assert_eq!(event["data"]["call"]["id"], id.as_str());
    assert_eq!(event["data"]["call"]["status"], "completed");
    assert_eq!(event["data"]["call"]["analysis"]["data"]["slot"], "tuesday 09:00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_never_fits_the_schema_ends_as_an_error_on_the_call() {
    let fake = fake_responses(0, json!({"summary": "x", "success": true, "data": {"when": "?"}})).await;
    let mut c = config(AudioMode::G711);
    c.analysis_url = fake.url.clone();
    c.analysis_retry_ms = 20;
    let h = start(c, mock_options()).await;
    let base = format!("http://{}", h.addr);
    bind_agent(&base).await;
    assert_eq!(replay(&h, "greeting-and-answer", 4.0, None).await.failed_calls, 0);
    let call = analysed(&base).await;
    let error = call["analysis"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("does not match the schema"), "{call}");
    assert_eq!(call["analysis"]["attempts"], 5);
    assert_eq!(fake.requests.lock().unwrap().len(), 5, "given up after five tries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_before_the_analysis_leaves_it_to_the_next_one() {
    voxbridge::install_tls();
    let mock = voxbridge::mock_realtime::spawn_local(mock_options()).await.unwrap();
    let db = temp_database_url();
    // The first server's analyses go nowhere (a port with nothing listening).
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1/responses", l.local_addr().unwrap())
    };
    let port = common::process::free_port();
    let env = [("VOXBRIDGE_ANALYSIS_URL", dead.as_str()), ("VOXBRIDGE_ANALYSIS_RETRY_MS", "50")];
    let mut first = common::process::spawn_server_with(port, &db, "http://127.0.0.1:9", &mock.url(), &env);
    common::process::wait_ready(port).await;
    let base = format!("http://127.0.0.1:{port}");
    bind_agent(&base).await;
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let report = replay_at(addr, "greeting-and-answer", 4.0, Some("tok"), "/twilio/voice").await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    // Killed as a crash would: the call has ended, its analysis is not done.
    first.kill().unwrap();
    first.wait().unwrap();

    let fake = fake_responses(0, good_answer()).await;
    let port = common::process::free_port();
    let env = [("VOXBRIDGE_ANALYSIS_URL", fake.url.as_str()), ("VOXBRIDGE_ANALYSIS_RETRY_MS", "50")];
    let mut second = common::process::spawn_server_with(port, &db, "http://127.0.0.1:9", &mock.url(), &env);
    common::process::wait_ready(port).await;
    let call = analysed(&format!("http://127.0.0.1:{port}")).await;
    assert_eq!(call["analysis"]["data"]["slot"], "tuesday 09:00", "{call}");
    assert_eq!(fake.requests.lock().unwrap().len(), 1);
    second.kill().unwrap();
    second.wait().unwrap();
}
