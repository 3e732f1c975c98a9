//! Events to the user's app: each status change is POSTed to the call's webhook URL, signed
//! (`Voxbridge-Signature`), in order; private and loopback targets are refused unless the
//! operator allows them.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;
use voxbridge::store::EventOutbox;

use axum::routing::post;
use common::*;
use serde_json::{Value, json};
use voxbridge::config::AudioMode;
use voxbridge::store::Store;
use voxbridge::webhooks::signing;

type Seen = Arc<Mutex<Vec<(Option<String>, String)>>>;

async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: axum::http::HeaderMap, body: String| {
            let s = Arc::clone(&s);
            async move {
                let sig = headers.get(signing::HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
                s.lock().unwrap().push((sig, body));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_changes_are_delivered_signed_and_in_order() {
    let (hook, seen) = receiver().await;
    let mut c = config(AudioMode::G711);
    c.twilio_from_number = Some("+15557654321".into());
    c.webhook_secret = Some("whsec_test".into());
    c.webhook_allow_private = true;
    c.worker_poll_ms = 20;
    let h = start(c, mock_options()).await;
    let http = http_client();
    let call: Value = http
        .post(format!("http://{}/v1/calls", h.addr))
        .json(&json!({"to": "+15551239999", "webhook_url": hook, "metadata": {"lead": 7}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = call["id"].as_str().unwrap();
    http.post(format!("http://{}/v1/calls/{id}/cancel", h.addr)).send().await.unwrap();
    assert!(eventually(Duration::from_secs(5), || seen.lock().unwrap().len() >= 2).await, "two events delivered");
    let events = seen.lock().unwrap().clone();
    let mut types = Vec::new();
    for (sig, body) in &events {
        let sig = sig.as_deref().expect("signed");
        assert!(signing::verify("whsec_test", sig, body.as_bytes(), now_s(), 300), "valid signature");
        assert!(!signing::verify("whsec_other", sig, body.as_bytes(), now_s(), 300));
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["data"]["call"]["id"], id);
        assert_eq!(v["data"]["call"]["metadata"]["lead"], 7);
        types.push(v["type"].as_str().unwrap().to_string());
    }
    assert_eq!(types, ["call.queued", "call.canceled"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_targets_are_refused_by_default() {
    let (hook, seen) = receiver().await;
    let mut c = config(AudioMode::G711);
    c.twilio_from_number = Some("+15557654321".into());
    c.worker_poll_ms = 20;
    // The operator's own target is checked when its POST connects (a name may resolve to a
    // private address only then).
    c.webhook_url = Some(hook.clone());
    let h = start(c, mock_options()).await;
    let http = http_client();
    // A literal private address on a call is refused at creation (issue 21).
    let resp = http
        .post(format!("http://{}/v1/calls", h.addr))
        .json(&json!({"to": "+15551238888", "webhook_url": hook}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().starts_with("webhook_url:"), "{body}");
    let call: Value = http
        .post(format!("http://{}/v1/calls", h.addr))
        .json(&json!({"to": "+15551238888"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = call["id"].as_str().unwrap().to_string();
    let store = Store::open(&h.database_url).await.unwrap();
    let mut refused = false;
    for _ in 0..250 {
        let events = store.call_events(&id).await.unwrap();
        if events.first().is_some_and(|(_, state, _)| state == "failed") {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the delivery was refused");
    let events = store.call_events(&id).await.unwrap();
    assert!(events[0].2.as_deref().unwrap().contains("not a public address"), "{events:?}");
    assert!(seen.lock().unwrap().is_empty(), "nothing reached the loopback target");
}

/// A target that accepts requests and never answers; counts the requests it holds.
async fn black_hole() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let held = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = Arc::clone(&held);
    let app = axum::Router::new().route(
        "/hook",
        post(move || {
            let h = Arc::clone(&h);
            async move {
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                std::future::pending::<()>().await;
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_target_does_not_hold_up_other_calls_events() {
    let (dead, held) = black_hole().await;
    let (live, seen) = receiver().await;
    let mut c = config(AudioMode::G711);
    c.twilio_from_number = Some("+15557654321".into());
    c.webhook_allow_private = true;
    c.worker_poll_ms = 20;
    let h = start(c, mock_options()).await;
    let http = http_client();
    let create = |to: &str, hook: &str| {
        http.post(format!("http://{}/v1/calls", h.addr)).json(&json!({"to": to, "webhook_url": hook})).send()
    };
    // Six calls' events go to the dead target first (it answers none of them).
    for i in 0..6 {
        assert_eq!(create(&format!("+1555000000{i}"), &dead).await.unwrap().status(), 201);
    }
    let n = Arc::clone(&held);
    assert!(
        eventually(Duration::from_secs(5), || n.load(std::sync::atomic::Ordering::SeqCst) >= 4).await,
        "the dead target holds deliveries"
    );
    assert_eq!(create("+15550000099", &live).await.unwrap().status(), 201);
    assert!(
        eventually(Duration::from_secs(4), || !seen.lock().unwrap().is_empty()).await,
        "another target's event arrives while the dead target still holds its requests (timeout 5 s)"
    );
    assert!(held.load(std::sync::atomic::Ordering::SeqCst) <= 4, "at most 4 deliveries in flight to one target");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_call_sends_its_events_to_the_default_webhook_with_the_whole_call() {
    let (hook, seen) = receiver().await;
    let mut c = config(AudioMode::G711);
    c.webhook_url = Some(hook);
    c.webhook_allow_private = true;
    c.worker_poll_ms = 20;
    let h = start(c, mock_options()).await;
    let report = replay(&h, "greeting-and-answer", 4.0, None).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    let done = || seen.lock().unwrap().iter().any(|(_, b)| b.contains("\"call.completed\""));
    assert!(eventually(Duration::from_secs(10), done).await, "call.completed delivered");
    let events: Vec<Value> = seen.lock().unwrap().iter().map(|(_, b)| serde_json::from_str(b).unwrap()).collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["call.ringing", "call.in_progress", "call.completed"]);
    let ids: std::collections::HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "distinct ids");
    assert!(ids.iter().all(|id| id.starts_with("evt_") && id.len() == 28), "{ids:?}");
    let completed = &events[2]["data"];
    assert_eq!(completed["call"]["direction"], "inbound");
    assert_eq!(completed["call"]["status"], "completed");
    assert_eq!(events[0]["data"]["call"]["status"], "ringing", "each event carries its own status");
    assert!(completed["call"]["provider_call_id"].as_str().unwrap().starts_with("CA"), "the whole call resource");
    assert!(completed["call"].get("created_at").is_some());
    assert!(!completed["transcript"].as_array().unwrap().is_empty(), "the transcript comes with it");
}

/// A call's events go out in order, retries included: the first delivery fails, and the event
/// that followed it waits for its retry instead of overtaking it (issue 24).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_event_is_not_overtaken_by_the_next_one() {
    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let failed_once = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (a, f) = (Arc::clone(&accepted), Arc::clone(&failed_once));
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: String| {
            let (a, f) = (Arc::clone(&a), Arc::clone(&f));
            async move {
                if !f.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                }
                let v: Value = serde_json::from_str(&body).unwrap();
                a.lock().unwrap().push(v["type"].as_str().unwrap().to_string());
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut c = config(AudioMode::G711);
    c.twilio_from_number = Some("+15557654321".into());
    c.webhook_allow_private = true;
    c.worker_poll_ms = 20;
    let h = start(c, mock_options()).await;
    let http = http_client();
    // No carrier configured: the call stays queued until it is canceled.
    let call: Value = http
        .post(format!("http://{}/v1/calls", h.addr))
        .json(&json!({"to": "+15551237777", "webhook_url": hook}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = call["id"].as_str().unwrap();
    assert!(eventually(Duration::from_secs(5), || failed_once.load(std::sync::atomic::Ordering::SeqCst)).await);
    let resp = http.post(format!("http://{}/v1/calls/{id}/cancel", h.addr)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let both = || accepted.lock().unwrap().len() >= 2;
    assert!(eventually(Duration::from_secs(10), both).await, "both delivered: {:?}", accepted.lock().unwrap());
    assert_eq!(*accepted.lock().unwrap(), ["call.queued", "call.canceled"], "in order, the retry first");
    // The call's event log says what was sent and how each attempt went.
    let log = |http: reqwest::Client| {
        let url = format!("http://{}/v1/calls/{id}/events", h.addr);
        async move { http.get(url).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let results = |e: &Value| -> Vec<String> {
        e["deliveries"].as_array().unwrap().iter().map(|d| d["result"].as_str().unwrap().to_string()).collect()
    };
    // An attempt is recorded just after the endpoint answered: wait for it in the log.
    let mut events = log(http.clone()).await;
    for _ in 0..200 {
        if !results(&events["events"][1]).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        events = log(http.clone()).await;
    }
    let queued = &events["events"][0];
    assert_eq!(
        (queued["type"].as_str(), queued["state"].as_str()),
        (Some("call.queued"), Some("delivered")),
        "{events}"
    );
    assert_eq!(results(queued), ["failed", "delivered"]);
    assert!(queued["deliveries"][0]["error"].as_str().unwrap().contains("500"), "{queued}");
    assert_eq!(results(&events["events"][1]), ["delivered"]);
    // Sent again on request, with the same id.
    let event_id = queued["id"].as_str().unwrap().to_string();
    let resp = http.post(format!("http://{}/v1/events/{event_id}/redeliver", h.addr)).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.json::<Value>().await.unwrap()["state"], "pending");
    let thrice = || accepted.lock().unwrap().len() >= 3;
    assert!(eventually(Duration::from_secs(10), thrice).await, "redelivered");
    assert_eq!(accepted.lock().unwrap()[2], "call.queued");
    let mut again = log(http.clone()).await;
    for _ in 0..200 {
        if results(&again["events"][0]).len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        again = log(http.clone()).await;
    }
    assert_eq!(results(&again["events"][0]), ["failed", "delivered", "delivered"], "{again}");
    let unknown = http.post(format!("http://{}/v1/events/evt_nope/redeliver", h.addr)).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let no_call = http.get(format!("http://{}/v1/calls/c_nope/events", h.addr)).send().await.unwrap();
    assert_eq!(no_call.status(), 404);
}
