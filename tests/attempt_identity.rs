//! Each attempt of an outbound call is known before its dial: its callbacks are applied even
//! when they beat the carrier's create answer, an earlier attempt's late callbacks change
//! nothing, and a final callback that never comes is swept (the carrier is asked), so the call
//! ends truthfully and its slot and number are freed. Real server, fake Twilio on loopback.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::Path;
use axum::routing::{get, post};
use common::*;
use serde_json::{Value, json};
use voxbridge::config::AudioMode;

const TOKEN: &str = "twilio-token";

#[derive(Default)]
struct Fake {
    /// Each dial's form.
    dials: Vec<Vec<(String, String)>>,
    /// What `GET …/Calls/{sid}.json` says.
    status: String,
    /// Attempt 1's `busy` is sent to the status URL before its create answer.
    busy_before_answer: bool,
    fetched: Vec<String>,
}

type Shared = Arc<Mutex<Fake>>;

/// Fake Twilio REST; `server` is where it sends callbacks (set once the server runs).
async fn fake_twilio(fake: Shared, server: Arc<OnceLock<SocketAddr>>) -> String {
    let (f1, f2) = (Arc::clone(&fake), Arc::clone(&fake));
    let app = axum::Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Calls.json",
            post(move |body: String| {
                let (fake, server) = (Arc::clone(&f1), Arc::clone(&server));
                async move {
                    let form: Vec<(String, String)> =
                        url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                    let callback = field(&form, "StatusCallback").to_string();
                    let (n, busy) = {
                        let mut f = fake.lock().unwrap();
                        f.dials.push(form);
                        (f.dials.len(), f.busy_before_answer && f.dials.len() == 1)
                    };
                    let sid = format!("CA_{n}");
                    if busy {
                        // A fast busy: the callback reaches the server before this answer does.
                        let path = callback.strip_prefix(PUBLIC_URL).unwrap().to_string();
                        let form = form_of(&[("CallSid", &sid), ("CallStatus", "busy"), ("SequenceNumber", "1")]);
                        let addr = *server.get().unwrap();
                        let r = post_signed_to(addr, &http_client(), TOKEN, &path, &form).await;
                        assert_eq!(r.status(), 204);
                    }
                    (axum::http::StatusCode::CREATED, axum::Json(json!({"sid": sid, "status": "queued"})))
                }
            }),
        )
        .route(
            "/2010-04-01/Accounts/{account}/Calls/{sid}",
            get(move |Path((_, sid)): Path<(String, String)>| {
                let fake = Arc::clone(&f2);
                async move {
                    let mut f = fake.lock().unwrap();
                    f.fetched.push(sid.clone());
                    axum::Json(json!({"sid": sid.trim_end_matches(".json"), "status": f.status}))
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn form_of(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    form(pairs)
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

async fn server(fake: &Shared, tune: impl FnOnce(&mut voxbridge::config::Config)) -> Harness {
    let addr = Arc::new(OnceLock::new());
    let twilio = fake_twilio(Arc::clone(fake), Arc::clone(&addr)).await;
    let mut c = config(AudioMode::G711);
    c.allow_unsigned = false;
    c.twilio_account_sid = Some("ACtest".into());
    c.twilio_auth_token = Some(TOKEN.into());
    c.twilio_from_number = Some("+15557654321".into());
    c.twilio_api_base = twilio;
    c.worker_poll_ms = 20;
    c.retry_base_ms = 300;
    c.retry_cap_ms = 300;
    tune(&mut c);
    let h = start(c, mock_options()).await;
    addr.set(h.addr).unwrap();
    h
}

async fn create(h: &Harness, body: Value) -> String {
    let resp = http_client().post(format!("http://{}/v1/calls", h.addr)).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
}

async fn call(h: &Harness, id: &str) -> Value {
    http_client().get(format!("http://{}/v1/calls/{id}", h.addr)).send().await.unwrap().json().await.unwrap()
}

/// A status callback for `attempt`, as Twilio sends it to the URL it was given.
async fn callback(h: &Harness, id: &str, attempt: u32, sid: &str, status: &str, seq: u32) -> u16 {
    let path = format!("/webhooks/twilio/status?call_id={id}&attempt={attempt}");
    let form = form(&[("CallSid", sid), ("CallStatus", status), ("SequenceNumber", &seq.to_string())]);
    post_signed(h, &http_client(), TOKEN, &path, &form).await.status().as_u16()
}

async fn wait_status(h: &Harness, id: &str, status: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let c = call(h, id).await;
        if c["status"] == status || Instant::now() > deadline {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn dials(fake: &Shared) -> usize {
    fake.lock().unwrap().dials.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_that_beats_the_create_answer_is_retried_and_a_late_callback_of_it_changes_nothing() {
    let fake: Shared = Arc::new(Mutex::new(Fake { busy_before_answer: true, ..Default::default() }));
    let h = server(&fake, |_| {}).await;
    let id = create(&h, json!({"to": "+15551230001", "max_attempts": 2})).await;
    // Attempt 1 is busy before Twilio even answered the create: the call is retried, not stuck
    // in `dialing` (before, its callback was dropped as another attempt's).
    assert!(eventually(Duration::from_secs(5), || dials(&fake) == 2).await, "attempt 2 dialled");
    let form = fake.lock().unwrap().dials[1].clone();
    assert!(field(&form, "StatusCallback").ends_with(&format!("call_id={id}&attempt=2")), "{form:?}");
    // Attempt 2's ringing may beat its create answer too.
    assert_eq!(callback(&h, &id, 2, "CA_2", "ringing", 1).await, 204);
    assert_eq!(callback(&h, &id, 2, "CA_2", "in-progress", 2).await, 204);
    // Attempt 1's late `completed` (another sid, another attempt) changes nothing.
    assert_eq!(callback(&h, &id, 1, "CA_1", "completed", 9).await, 204);
    let c = call(&h, &id).await;
    assert_eq!((c["status"].as_str(), c["provider_call_id"].as_str()), (Some("in_progress"), Some("CA_2")), "{c}");
    // The final callback carries the seconds Twilio bills: usage and cost use them.
    let path = format!("/webhooks/twilio/status?call_id={id}&attempt=2");
    let fields =
        form_of(&[("CallSid", "CA_2"), ("CallStatus", "completed"), ("SequenceNumber", "3"), ("CallDuration", "75")]);
    assert_eq!(post_signed(&h, &http_client(), TOKEN, &path, &fields).await.status(), 204);
    let c = call(&h, &id).await;
    assert_eq!((c["status"].as_str(), c["attempts"].as_i64()), (Some("completed"), Some(2)), "{c}");
    assert_eq!(c["usage"]["carrier_seconds"], 75.0, "{c}");
    assert_eq!(c["cost"]["carrier_usd"], 2.0 * 0.014, "two started minutes at the built-in Twilio rate");
    let history: Vec<&str> = c["history"].as_array().unwrap().iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert_eq!(history, ["queued", "dialing", "busy", "queued", "dialing", "ringing", "in_progress", "completed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_final_callback_is_swept_the_call_ends_truthfully_and_its_number_is_free() {
    let fake: Shared = Arc::new(Mutex::new(Fake { status: "in-progress".into(), ..Default::default() }));
    let h = server(&fake, |c| {
        c.status_grace_ms = 300;
        c.max_concurrent_calls = 1;
    })
    .await;
    let id = create(&h, json!({"to": "+15551230002", "max_attempts": 1})).await;
    let next = create(&h, json!({"to": "+15551230002"})).await;
    assert!(eventually(Duration::from_secs(5), || dials(&fake) == 1).await);
    assert_eq!(callback(&h, &id, 1, "CA_1", "in-progress", 1).await, 204);
    // The callee talks to the AI and hangs up: the stream ends ...
    let report = replay_via(&h, "greeting-and-answer", 4.0, Some(TOKEN), &format!("/twiml/{id}")).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    let ended = Instant::now();
    // ... and Twilio's `completed` callback is lost. While Twilio says the call is up, it stays.
    assert!(eventually(Duration::from_secs(5), || !fake.lock().unwrap().fetched.is_empty()).await, "asked");
    assert_eq!(call(&h, &id).await["status"], "in_progress");
    assert_eq!(dials(&fake), 1, "the next call to that number waits");
    fake.lock().unwrap().status = "completed".into();
    let c = wait_status(&h, &id, "completed", Duration::from_secs(5)).await;
    let delay = ended.elapsed();
    assert_eq!((c["status"].as_str(), c["end_reason"].as_str()), (Some("completed"), Some("caller_hung_up")), "{c}");
    let history = c["history"].as_array().unwrap();
    assert_eq!(history.last().unwrap()["detail"], "reconciled with the carrier");
    println!("sweeper: final status {} ms after the stream ended (grace 300 ms, asked every grace)", delay.as_millis());
    // The slot and the number are free: the next call to the same number is dialled.
    assert!(eventually(Duration::from_secs(5), || dials(&fake) == 2).await, "the next call is dialled");
    assert_eq!(call(&h, &next).await["status"], "dialing");
    let metrics = reqwest::get(format!("http://{}/metrics", h.addr)).await.unwrap().text().await.unwrap();
    // (Metrics are per process: other tests here sweep too.)
    let swept = metrics.lines().find_map(|l| l.strip_prefix("voxbridge_calls_swept_total ")?.parse::<f64>().ok());
    assert!(swept.is_some_and(|n| n >= 1.0), "counted: {swept:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ringing_call_whose_no_answer_was_lost_is_swept_and_retried_like_a_callback() {
    let fake: Shared = Arc::new(Mutex::new(Fake { status: "no-answer".into(), ..Default::default() }));
    let h = server(&fake, |c| {
        c.status_grace_ms = 200;
        c.ring_timeout_s = 1;
    })
    .await;
    let id = create(&h, json!({"to": "+15551230003", "max_attempts": 2})).await;
    assert!(eventually(Duration::from_secs(5), || dials(&fake) == 1).await);
    assert_eq!(callback(&h, &id, 1, "CA_1", "ringing", 1).await, 204);
    // No `no-answer` ever comes; the sweeper asks after the ring timeout and retries.
    assert!(eventually(Duration::from_secs(6), || dials(&fake) == 2).await, "retried like a no_answer callback");
    let c = call(&h, &id).await;
    let history: Vec<&str> = c["history"].as_array().unwrap().iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert!(history.contains(&"no_answer"), "{history:?}");
    assert_eq!(c["attempts"], 2);
}
