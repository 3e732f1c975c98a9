//! A fake Twilio REST API and the helpers of tests that dial through it (outbound calls,
//! transfers).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use serde_json::{Value, json};
use voxbridge::config::AudioMode;

use super::*;

pub const TOKEN: &str = "outbound-token";

pub type Dials = Arc<Mutex<Vec<Vec<(String, String)>>>>;
pub type HangUps = Arc<Mutex<Vec<(String, String)>>>;

/// Fake Twilio REST: `POST …/Calls.json` → 201 with sids CA_out_1, CA_out_2, …
pub async fn fake_twilio() -> (String, Dials, HangUps) {
    let dials: Dials = Arc::default();
    let hangups: HangUps = Arc::default();
    let d = Arc::clone(&dials);
    let hu = Arc::clone(&hangups);
    let app = axum::Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Calls/{sid}",
            post(move |axum::extract::Path((_, sid)): axum::extract::Path<(String, String)>, body: String| {
                let hu = Arc::clone(&hu);
                async move {
                    hu.lock().unwrap().push((sid, body));
                    axum::Json(json!({"status": "completed"}))
                }
            }),
        )
        .route(
            "/2010-04-01/Accounts/{account}/Calls.json",
            post(move |body: String| {
                let d = Arc::clone(&d);
                async move {
                    let form: Vec<(String, String)> =
                        url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                    let n = {
                        let mut v = d.lock().unwrap();
                        v.push(form);
                        v.len()
                    };
                    (
                        axum::http::StatusCode::CREATED,
                        axum::Json(json!({"sid": format!("CA_out_{n}"), "status": "queued"})),
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, dials, hangups)
}

pub async fn setup() -> (Harness, Dials, reqwest::Client) {
    let (h, dials, _, http) = setup_full(None).await;
    (h, dials, http)
}

pub async fn setup_full(webhook: Option<String>) -> (Harness, Dials, HangUps, reqwest::Client) {
    let (twilio, dials, hangups) = fake_twilio().await;
    let h = start(outbound_config(twilio, webhook), mock_options()).await;
    (h, dials, hangups, http_client())
}

/// A server that dials through the fake Twilio at `twilio`, polls fast and retries soon.
pub fn outbound_config(twilio: String, webhook: Option<String>) -> voxbridge::config::Config {
    let mut c = config(AudioMode::G711);
    c.twilio_account_sid = Some("ACtest".into());
    c.twilio_auth_token = Some(TOKEN.into());
    c.twilio_from_number = Some("+15557654321".into());
    c.twilio_api_base = twilio;
    c.worker_poll_ms = 20;
    c.retry_base_ms = 400;
    c.retry_cap_ms = 400;
    c.webhook_url = webhook;
    c.webhook_allow_private = true;
    c
}

pub async fn create(h: &Harness, http: &reqwest::Client, body: Value) -> String {
    let resp = http.post(format!("http://{}/v1/calls", h.addr)).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
}

pub async fn call(h: &Harness, http: &reqwest::Client, id: &str) -> Value {
    http.get(format!("http://{}/v1/calls/{id}", h.addr)).send().await.unwrap().json().await.unwrap()
}

pub async fn status_callback(h: &Harness, http: &reqwest::Client, id: &str, sid: &str, status: &str, seq: u32) {
    let seq = seq.to_string();
    let path = format!("/webhooks/twilio/status?call_id={id}");
    let resp = post_signed(
        h,
        http,
        TOKEN,
        &path,
        &form(&[("CallSid", sid), ("CallStatus", status), ("SequenceNumber", &seq)]),
    )
    .await;
    assert_eq!(resp.status(), 204);
}

pub async fn wait_dials(dials: &Dials, n: usize) -> bool {
    eventually(Duration::from_secs(5), || dials.lock().unwrap().len() >= n).await
}

/// Waits until the model has had `n` connections: a dialled call's session is pre-warmed (once
/// the dial's answer is in) before the test plays the callee, so the stream takes it over.
pub async fn prewarmed(h: &Harness, n: usize) -> bool {
    let mock = h.mock.clone().unwrap();
    eventually(Duration::from_secs(5), || mock.log.count() >= n).await
}

pub fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}
