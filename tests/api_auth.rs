//! `/v1` requires a bearer key when keys are configured (401 in the contract's error shape
//! otherwise) and allows only loopback when none are; `GET /v1/metrics` reports calls by
//! status, queue depth and live calls.

mod common;

use common::*;
use voxbridge::config::AudioMode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_needs_a_key_when_keys_are_configured() {
    let mut c = config(AudioMode::G711);
    c.api_keys = Some("vb_test_key_1,vb_test_key_2".into());
    let h = start(c, mock_options()).await;
    let http = http_client();
    let url = format!("http://{}/v1/metrics", h.addr);
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(http.get(&url).bearer_auth("vb_test_key_3").send().await.unwrap().status(), 401);
    // An inbound call creates a record; metrics count it.
    http.post(format!("http://{}/twilio/voice", h.addr))
        .form(&[("CallSid", "CA1"), ("To", "+15550001111")])
        .send()
        .await
        .unwrap();
    let resp = http.get(&url).bearer_auth("vb_test_key_2").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let m: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(m["calls_by_status"]["ringing"], 1);
    assert_eq!(m["queue_depth"], 0);
    assert_eq!(m["live_calls"], 0);
    // The health routes stay open.
    assert_eq!(http.get(format!("http://{}/healthz", h.addr)).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keys_loopback_may_call_the_api() {
    let h = start(config(AudioMode::G711), mock_options()).await;
    let resp = http_client().get(format!("http://{}/v1/metrics", h.addr)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_rate_limit_a_key_gets_429_with_retry_after_and_others_are_unaffected() {
    let mut c = common::config(voxbridge::config::AudioMode::G711);
    c.api_keys = Some("k1,k2".into());
    c.api_rate_limit = std::num::NonZeroU32::new(1);
    let h = common::start(c, common::mock_options()).await;
    let http = http_client();
    let url = format!("http://{}/v1/calls", h.addr);
    let get = |key: &'static str| http.get(&url).bearer_auth(key).send();
    // 1 per second, bursts of 2.
    assert_eq!(get("k1").await.unwrap().status(), 200);
    assert_eq!(get("k1").await.unwrap().status(), 200);
    let limited = get("k1").await.unwrap();
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(get("k2").await.unwrap().status(), 200, "another key has its own budget");
}
