//! DTMF reaches the model as a conversation item; the `end_call` tool says goodbye and hangs up
//! through Twilio's REST API; recording writes a replayable fixture and the transcript; a
//! shutdown drains (readiness off, new calls refused) and then ends live calls.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::post;
use common::*;
use voxbridge::config::AudioMode;
use voxbridge::fixture::Fixture;
use voxbridge::mock_realtime::MockOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_digits_reach_the_model_as_conversation_items() {
    let h = start(config(AudioMode::G711), mock_options()).await;
    let report = replay(&h, "dtmf", 4.0, None).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    let conn = h.mock.as_ref().unwrap().log.get(0).unwrap();
    let items = conn.lock().unwrap().items.clone();
    let texts: Vec<String> =
        items.iter().filter_map(|i| i["content"][0]["text"].as_str().map(str::to_string)).collect();
    for digit in ["4", "2", "7", "#"] {
        assert!(texts.iter().any(|t| t.contains(&format!("\"{digit}\""))), "digit {digit} in {texts:?}");
    }
    assert!(items.iter().all(|i| i["role"] == "user" && i["type"] == "message"));
}

type Hangups = Arc<Mutex<Vec<(String, String, String)>>>;

/// A fake Twilio REST API: records `POST …/Calls/{sid}.json` with its auth and form body.
async fn fake_twilio() -> (String, Hangups) {
    let seen: Hangups = Arc::default();
    let app = axum::Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Calls/{sid}",
            post(
                |State(seen): State<Hangups>,
                 Path((_, sid)): Path<(String, String)>,
                 headers: axum::http::HeaderMap,
                 body: String| async move {
                    let auth =
                        headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                    seen.lock().unwrap().push((sid.clone(), auth, body));
                    (
                        axum::http::StatusCode::OK,
                        axum::Json(serde_json::json!({"sid": sid.trim_end_matches(".json"), "status": "completed"})),
                    )
                },
            ),
        )
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_call_tool_says_goodbye_then_hangs_up_through_twilio() {
    let (twilio, hangups) = fake_twilio().await;
    let mut c = config(AudioMode::G711);
    c.twilio_account_sid = Some("ACtest".into());
    c.twilio_auth_token = Some("tok".into());
    c.twilio_api_base = twilio;
    let h = start(c, MockOptions { end_call_after: Some(1), ..mock_options() }).await;
    let report = replay(&h, "greeting-and-answer", 4.0, Some("tok")).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    assert_eq!(report.per_call[0].server_close_code, Some(1000), "the bridge ended the stream itself");
    let conn = h.mock.as_ref().unwrap().log.get(0).unwrap();
    let items = conn.lock().unwrap().items.clone();
    assert!(items.iter().any(|i| i["type"] == "function_call_output"), "the tool call got its output: {items:?}");
    assert!(eventually(Duration::from_secs(2), || !hangups.lock().unwrap().is_empty()).await, "REST hang-up sent");
    let (sid, auth, body) = hangups.lock().unwrap()[0].clone();
    // The call the stream belongs to: its CallSid, as the voice webhook and `start` gave it.
    let list: serde_json::Value =
        http_client().get(format!("http://{}/v1/calls", h.addr)).send().await.unwrap().json().await.unwrap();
    let call_sid = list["calls"][0]["provider_call_id"].as_str().unwrap().to_string();
    assert!(call_sid.starts_with("CA"));
    assert_eq!(sid, format!("{call_sid}.json"));
    assert!(auth.starts_with("Basic "));
    assert_eq!(body, "Status=completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_writes_a_replayable_fixture_and_the_transcript() {
    let dir = std::env::temp_dir().join(format!("vb-record-{}", rand::random::<u64>()));
    let mut c = config(AudioMode::G711);
    c.record_dir = Some(dir.clone());
    let h = start(c, mock_options()).await;
    let report = replay(&h, "dtmf", 4.0, None).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    assert!(
        eventually(Duration::from_secs(2), || std::fs::read_dir(&dir).map(|d| d.count() >= 2).unwrap_or(false)).await
    );
    let mut recorded = None;
    let mut transcript = None;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".transcript.json") {
            transcript = Some(std::fs::read_to_string(&path).unwrap());
        } else if name.ends_with(".jsonl") {
            recorded = Some(Fixture::read(&path).unwrap());
        }
    }
    let recorded = recorded.expect("fixture written");
    assert_eq!(recorded.header.as_ref().unwrap().provider, "twilio");
    let original = fixture("dtmf");
    // Replay numbers its messages afresh (as Twilio numbers a stream): compare all else.
    let media = |f: &Fixture| {
        f.steps
            .iter()
            .filter(|s| s.text.contains("\"media\""))
            .map(|s| {
                let mut v: serde_json::Value = serde_json::from_str(&s.text).unwrap();
                v.as_object_mut().unwrap().remove("sequenceNumber");
                v
            })
            .collect::<Vec<_>>()
    };
    let (got, want) = (media(&recorded), media(&original));
    assert_eq!(got.len(), want.len(), "every media frame recorded");
    assert!(got == want, "every media frame recorded verbatim but for its sequence number, in order");
    assert!(recorded.steps.windows(2).all(|w| w[0].t_ms <= w[1].t_ms));
    let t: serde_json::Value = serde_json::from_str(&transcript.expect("transcript written")).unwrap();
    let entries = t["entries"].as_array().unwrap();
    assert!(entries.iter().any(|e| e["speaker"] == "caller" && e["text"] == "[DTMF 4]"));
    assert!(entries.iter().any(|e| e["speaker"] == "assistant"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_then_ends_live_calls() {
    voxbridge::install_tls();
    let mock = voxbridge::mock_realtime::spawn_local(mock_options()).await.unwrap();
    let mut c = config(AudioMode::G711);
    c.realtime_url = mock.url();
    c.drain_timeout_s = 1;
    let app = voxbridge::app::App::build(c).await.unwrap();
    let token = app.bridge.tokens.mint("c_drain", voxbridge::store::now_ms());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(listener, async move {
        let _ = stop_rx.await;
    }));
    let mut ws = connect_media(addr, None).await.unwrap();
    send(&mut ws, start_msg(&[("call_id", "c_drain"), ("token", &token)])).await;
    assert!(eventually(Duration::from_secs(5), || mock.log.count() == 1).await);
    stop_tx.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503, "not ready while draining");
    assert_eq!(connect_media(addr, None).await.err(), Some(503), "no new calls while draining");
    // The live call keeps going until the drain timeout, then is ended with 1001.
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, Some(1001));
    tokio::time::timeout(Duration::from_secs(5), server).await.expect("server exits").unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_needs_the_database() {
    let h = start(config(AudioMode::G711), mock_options()).await;
    let ready = reqwest::get(format!("http://{}/readyz", h.addr)).await.unwrap();
    assert_eq!(ready.status(), 200);
    // A database URL that cannot be opened stops start-up with the variable named.
    let mut c = config(AudioMode::G711);
    c.database_url = "sqlite:///nonexistent-dir/x/y.db".into();
    let err = voxbridge::app::App::build(c).await.err().expect("start-up refused");
    assert_eq!(err.variable, "VOXBRIDGE_DATABASE_URL");
    let mut c = config(AudioMode::G711);
    // An unreachable PostgreSQL server too, without printing the password.
    c.database_url = "postgres://vb:hunter2@127.0.0.1:1/voxbridge".into();
    let err = voxbridge::app::App::build(c).await.err().expect("start-up refused");
    assert_eq!(err.variable, "VOXBRIDGE_DATABASE_URL");
    assert!(err.problem.contains("PostgreSQL server must be reachable"), "{}", err.problem);
    assert!(!err.problem.contains("hunter2"), "{}", err.problem);
}

/// A fake Twilio REST "create call" endpoint answering a scripted status.
async fn fake_twilio_create(status: u16, body: &'static str) -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let s2 = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/2010-04-01/Accounts/{account}/Calls.json",
        post(move |headers: axum::http::HeaderMap, body_in: String| {
            let seen = Arc::clone(&s2);
            async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                seen.lock().unwrap().push((auth, body_in));
                (axum::http::StatusCode::from_u16(status).unwrap(), body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_create_call_sends_the_documented_form_and_classifies_errors() {
    use voxbridge::providers::twilio::rest::{NewCall, TwilioRest};
    voxbridge::install_tls();
    let call = NewCall {
        to: "+15551230001".into(),
        from: "+15557650002".into(),
        twiml_url: "https://voice.test/twiml/c_1".into(),
        status_callback: "https://voice.test/webhooks/twilio/status".into(),
        timeout_s: 30,
        machine_detection: true,
        time_limit_s: 1860,
    };
    let (base, seen) = fake_twilio_create(201, r#"{"sid":"CA9b2d","status":"queued"}"#).await;
    let rest = TwilioRest::new(&base, "ACtest", "secret");
    assert_eq!(rest.create_call(&call).await.unwrap(), "CA9b2d");
    let (auth, body) = seen.lock().unwrap()[0].clone();
    assert_eq!(auth, "Basic QUN0ZXN0OnNlY3JldA==", "basic auth: account SID and token");
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let get = |k: &str| form.iter().filter(|(n, _)| n == k).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
    assert_eq!(get("To"), ["+15551230001"]);
    assert_eq!(get("Url"), ["https://voice.test/twiml/c_1"]);
    assert_eq!(get("StatusCallbackEvent"), ["initiated", "ringing", "answered", "completed"]);
    assert_eq!(get("MachineDetection"), ["DetectMessageEnd"]);
    assert_eq!(get("Timeout"), ["30"]);
    assert_eq!(get("TimeLimit"), ["1860"], "the carrier's backstop behind the duration cap");

    let (base, _) = fake_twilio_create(
        400,
        r#"{"code":21211,"message":"The 'To' number is not a valid phone number.","status":400}"#,
    )
    .await;
    let err = TwilioRest::new(&base, "ACtest", "secret").create_call(&call).await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("not a valid phone number"));
    let (base, _) = fake_twilio_create(503, "").await;
    assert!(TwilioRest::new(&base, "ACtest", "secret").create_call(&call).await.unwrap_err().is_retryable());
    let (base, _) = fake_twilio_create(429, r#"{"code":20429,"message":"Too Many Requests"}"#).await;
    assert!(TwilioRest::new(&base, "ACtest", "secret").create_call(&call).await.unwrap_err().is_retryable());
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    assert!(
        TwilioRest::new(&dead, "ACtest", "secret").create_call(&call).await.unwrap_err().is_retryable(),
        "network errors retry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_api_key_calls_are_served_by_the_embedded_mock_model() {
    let mut c = voxbridge::config::Config::defaults();
    c.public_url = PUBLIC_URL.into();
    c.database_url = temp_database_url();
    c.allow_unsigned = true;
    assert!(c.openai_api_key.is_none() && c.uses_embedded_mock());
    let h = start_with_model(c).await;
    let mock = h.mock.clone().expect("the embedded mock model is running");
    let report = replay(&h, "greeting-and-answer", 4.0, None).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    assert_eq!(mock.log.count(), 1, "the call went to the embedded mock");
    assert!(report.per_call[0].audio_received_ms > 1000.0, "the mock answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_shutdown_leaves_a_complete_database_file() {
    let mut c = config(AudioMode::G711);
    c.twilio_from_number = Some("+15557654321".into());
    // About the SQLite file itself, whatever backend the suite runs on.
    c.database_url = sqlite_url();
    let db_url = c.database_url.clone();
    let app = voxbridge::app::App::build(c).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(listener, async move {
        let _ = stop_rx.await;
    }));
    let resp = http_client()
        .post(format!("http://{addr}/v1/calls"))
        .json(&serde_json::json!({"to": "+15551230001"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server).await.expect("server exits").unwrap().unwrap();
    // Copy the database file alone (no -wal, no -shm), as a careless backup would.
    let path = std::path::PathBuf::from(db_url.trim_start_matches("sqlite://"));
    let wal = path.with_extension("db-wal");
    assert!(std::fs::metadata(&wal).map_or(true, |m| m.len() == 0), "the WAL was folded in");
    let copy = std::env::temp_dir().join(format!("vb-copy-{}.db", rand::random::<u64>()));
    std::fs::copy(&path, &copy).unwrap();
    let store = voxbridge::store::sqlite::SqliteStore::open(&format!("sqlite://{}", copy.display())).await.unwrap();
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    let counts = voxbridge::store::CallRecords::call_counts(&store).await.unwrap();
    assert_eq!(counts.queued_jobs, 1, "the call is in the copied file");
    let _ = std::fs::remove_file(copy);
}
