//! `/v1/calls` through the real HTTP stack and a real SQLite file: create (201) with the
//! contract's resource, `Idempotency-Key` replay and live `dedupe_key` (200, the same call, also
//! under a concurrent burst), field-named validation (422, never 500), newest-first paging with a
//! cursor and a status filter, cancel (200, then 409), 404 for unknown calls; an inbound Twilio
//! call's status follows its stream.

mod common;

use common::*;
use serde_json::{Value, json};
use voxbridge::config::AudioMode;

async fn server() -> (Harness, reqwest::Client, String) {
    let mut c = config(AudioMode::G711);
    c.twilio_from_number = Some("+15557654321".into());
    let h = start(c, mock_options()).await;
    let base = format!("http://{}/v1/calls", h.addr);
    (h, http_client(), base)
}

async fn post(http: &reqwest::Client, url: &str, body: Value, key: Option<&str>) -> (u16, Value) {
    let mut req = http.post(url).json(&body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_then_read_the_call_resource() {
    let (_h, http, base) = server().await;
    let body = json!({"to": "+15551234567", "instructions": "Confirm tomorrow.", "greeting": "Hi!", "metadata": {"lead_id": "abc"}, "priority": 2, "max_attempts": 4});
    let (status, call) = post(&http, &base, body, None).await;
    assert_eq!(status, 201, "{call}");
    assert_eq!(call["status"], "queued");
    assert_eq!(call["direction"], "outbound");
    assert_eq!(call["from"], "+15557654321", "the configured caller id");
    assert_eq!(call["metadata"]["lead_id"], "abc");
    assert_eq!(
        (call["attempts"].as_i64(), call["max_attempts"].as_i64(), call["priority"].as_i64()),
        (Some(0), Some(4), Some(2))
    );
    assert!(call["next_attempt_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(call["history"][0]["status"], "queued");
    let got: Value =
        http.get(format!("{base}/{}", call["id"].as_str().unwrap())).send().await.unwrap().json().await.unwrap();
    assert_eq!(got["id"], call["id"]);
    assert_eq!(got["instructions"], "Confirm tomorrow.");
    let missing = http.get(format!("{base}/c_nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["error"]["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_and_dedupe_keys_return_the_existing_call() {
    let (_h, http, base) = server().await;
    let (s1, first) = post(&http, &base, json!({"to": "+15551234567"}), Some("req-1")).await;
    let (s2, again) = post(&http, &base, json!({"to": "+15551234567"}), Some("req-1")).await;
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(again["id"], first["id"], "the first answer is replayed");
    // The same key with another request is a client bug, not a replay (as payment APIs answer).
    let (s3, _) = post(&http, &base, json!({"to": "+15559999999"}), Some("req-1")).await;
    assert_eq!(s3, 422);
    // 20 concurrent requests with one dedupe key create one call.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (http, base) = (http.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            post(&http, &base, json!({"to": "+15552223333", "dedupe_key": "lead-7"}), None).await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    let mut created = 0;
    for t in tasks {
        let (status, call) = t.await.unwrap();
        created += usize::from(status == 201);
        ids.insert(call["id"].as_str().unwrap().to_string());
    }
    assert_eq!((created, ids.len()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_get_422_naming_the_field() {
    let (_h, http, base) = server().await;
    for (body, field) in [
        (json!({}), "to"),
        (json!({"to": "555"}), "to"),
        (json!({"to": "+15551234567", "max_attempts": 99}), "max_attempts"),
        (
            json!({"to": "+15551234567", "call_window": {"timezone": "Mars/Base", "start": "09:00", "end": "17:00"}}),
            "call_window.timezone",
        ),
        (json!({"to": "+15551234567", "scheduled_at": "soon"}), "scheduled_at"),
        (json!({"to": "+15551234567", "extra": true}), "extra"),
    ] {
        let (status, err) = post(&http, &base, body, None).await;
        assert_eq!(status, 422);
        assert_eq!(err["error"]["code"], "invalid_field");
        assert!(err["error"]["message"].as_str().unwrap().starts_with(&format!("{field}:")), "{err}");
    }
    let resp = http.post(&base).header("content-type", "application/json").body("{nope").send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "invalid_json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_newest_first_and_cancel_works_once() {
    let (_h, http, base) = server().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let (_, c) = post(&http, &base, json!({"to": format!("+1555000000{i}")}), None).await;
        ids.push(c["id"].as_str().unwrap().to_string());
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let page1: Value = http.get(format!("{base}?limit=2")).send().await.unwrap().json().await.unwrap();
    let got: Vec<&str> = page1["calls"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(got, [ids[4].as_str(), ids[3].as_str()]);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let page2: Value = http.get(format!("{base}?limit=2&cursor={cursor}")).send().await.unwrap().json().await.unwrap();
    let got: Vec<&str> = page2["calls"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(got, [ids[2].as_str(), ids[1].as_str()]);

    let cancel = |id: String| {
        let (http, base) = (http.clone(), base.clone());
        async move { http.post(format!("{base}/{id}/cancel")).send().await.unwrap() }
    };
    let first = cancel(ids[0].clone()).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.json::<Value>().await.unwrap()["status"], "canceled");
    assert_eq!(cancel(ids[0].clone()).await.status(), 409);
    let canceled: Value = http.get(format!("{base}?status=canceled")).send().await.unwrap().json().await.unwrap();
    assert_eq!(canceled["calls"].as_array().unwrap().len(), 1);
    assert_eq!(http.get(format!("{base}?status=nonsense")).send().await.unwrap().status(), 422);
    assert_eq!(http.get(format!("{base}?cursor=garbage")).send().await.unwrap().status(), 422);
    let metrics: Value = http.get(format!("http://{}/v1/metrics", _h.addr)).send().await.unwrap().json().await.unwrap();
    assert_eq!((metrics["calls_by_status"]["queued"].as_i64(), metrics["queue_depth"].as_i64()), (Some(4), Some(4)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_calls_show_their_position_and_wait_without_provider_credentials() {
    let (_h, http, base) = server().await;
    let (_, low) = post(&http, &base, json!({"to": "+15550000001", "priority": 0}), None).await;
    let (_, high) = post(&http, &base, json!({"to": "+15550000002", "priority": 5}), None).await;
    // The worker polls every 500 ms; with no Twilio credentials nothing is dialled or failed.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let get = |id: &Value| {
        let (http, base) = (http.clone(), base.clone());
        let id = id["id"].as_str().unwrap().to_string();
        async move { http.get(format!("{base}/{id}")).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let (l, h) = (get(&low).await, get(&high).await);
    assert_eq!((l["status"].as_str(), h["status"].as_str()), (Some("queued"), Some("queued")));
    assert_eq!((h["queue_position"].as_i64(), l["queue_position"].as_i64()), (Some(1), Some(2)), "priority first");
    // The call says why it is not dialled, naming what to set.
    let why = l["last_error"].as_str().expect("a reason while it waits");
    assert!(why.contains("TWILIO_ACCOUNT_SID") && why.contains("TWILIO_AUTH_TOKEN"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_caller_id_names_the_variable_that_fixes_it() {
    let h = start(config(AudioMode::G711), mock_options()).await;
    let http = http_client();
    let base = format!("http://{}/v1/calls", h.addr);
    let (status, body) = post(&http, &base, json!({"to": "+15550000003"}), None).await;
    assert_eq!(status, 422);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("from: ") && message.contains("TWILIO_FROM_NUMBER"), "{message}");
    let (_, body) = post(&http, &base, json!({"to": "+15550000003", "provider": "telnyx"}), None).await;
    assert!(body["error"]["message"].as_str().unwrap().contains("TELNYX_FROM_NUMBER"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_changes_a_queued_call_and_refuses_otherwise() {
    let (_h, http, base) = server().await;
    let (_, c) = post(&http, &base, json!({"to": "+15550000009", "instructions": "old"}), None).await;
    let url = format!("{base}/{}", c["id"].as_str().unwrap());
    let resp = http
        .patch(&url)
        .json(&json!({"instructions": "new", "priority": 7, "scheduled_at": "2099-01-05T15:00:00Z",
            "call_window": {"timezone": "Europe/Paris", "start": "09:00", "end": "12:00", "days": ["mon"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let p: Value = resp.json().await.unwrap();
    assert_eq!((p["instructions"].as_str(), p["priority"].as_i64()), (Some("new"), Some(7)));
    // 2099-01-05 is a Monday; 15:00 UTC is after the Paris window → next Monday 09:00 CET.
    assert_eq!(p["next_attempt_at"], "2099-01-12T08:00:00Z");
    // `null` clears the window (issue 24: it changed nothing, silently); with a new schedule the
    // next attempt is that time itself.
    let cleared = http
        .patch(&url)
        .json(&json!({"call_window": null, "scheduled_at": "2099-01-05T15:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    let p: Value = cleared.json().await.unwrap();
    assert!(p.get("call_window").is_some_and(Value::is_null), "{p}");
    assert_eq!(p["next_attempt_at"], "2099-01-05T15:00:00Z");
    // Elsewhere `null` would change nothing: refused, naming the field.
    let null = http.patch(&url).json(&json!({"instructions": null})).send().await.unwrap();
    assert_eq!(null.status(), 422);
    let message = null.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.starts_with("instructions: cannot be null"), "{message}");
    let bad = http.patch(&url).json(&json!({"to": "+15550000000"})).send().await.unwrap();
    assert_eq!(bad.status(), 422);
    assert!(
        bad.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().starts_with("to: cannot be changed")
    );
    assert_eq!(http.patch(&url).json(&json!({"priority": 500})).send().await.unwrap().status(), 422);
    assert_eq!(http.post(format!("{url}/cancel")).send().await.unwrap().status(), 200);
    assert_eq!(http.patch(&url).json(&json!({"priority": 1})).send().await.unwrap().status(), 409, "no longer queued");
    assert_eq!(http.patch(format!("{base}/c_missing")).json(&json!({})).send().await.unwrap().status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_twilio_call_is_in_progress_while_streaming_and_completed_after() {
    // Twilio sends no status callback of ours for inbound calls: the stream is their status.
    let (h, http, base) = server().await;
    // Two calls of the same fixture: each call's status is its own.
    for _ in 0..2 {
        let report = replay(&h, "dtmf", 4.0, None).await;
        assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    }
    let list: Value = http.get(&base).send().await.unwrap().json().await.unwrap();
    let ids: Vec<String> = list["calls"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().into()).collect();
    assert_eq!(ids.len(), 2);
    let mut sids = Vec::new();
    for id in ids {
        let get = || {
            let (http, url) = (http.clone(), format!("{base}/{id}"));
            async move { http.get(url).send().await.unwrap().json::<Value>().await.unwrap() }
        };
        let mut call = get().await;
        for _ in 0..50 {
            if call["status"] == "completed" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            call = get().await;
        }
        assert_eq!(call["direction"], "inbound");
        let history: Vec<&str> =
            call["history"].as_array().unwrap().iter().map(|e| e["status"].as_str().unwrap()).collect();
        assert_eq!(history, ["ringing", "in_progress", "completed"], "{call}");
        sids.push(call["provider_call_id"].as_str().unwrap().to_string());
    }
    assert!(sids[0].starts_with("CA") && sids[0] != sids[1], "each call's own CallSid: {sids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_inbound_call_can_be_hung_up_through_the_api() {
    let (h, http, base) = server().await;
    // The voice webhook answers with the stream's call id and token, as Twilio would get them.
    let (id, start) = inbound_start(&format!("http://{}", h.addr), &http).await;
    let mut ws = connect_media(h.addr, None).await.unwrap();
    send(&mut ws, start).await;
    assert!(eventually(std::time::Duration::from_secs(5), || h.bridge.admission.live() == 1).await);
    let resp = http.post(format!("{base}/{id}/cancel")).send().await.unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    assert_eq!(close_code(&mut ws, std::time::Duration::from_secs(5)).await, Some(1000), "the stream is ended");
    assert!(eventually(std::time::Duration::from_secs(5), || h.bridge.admission.live() == 0).await);
    // Ended now: a second cancel has nothing to do.
    let mut second = 0;
    for _ in 0..50 {
        second = http.post(format!("{base}/{id}/cancel")).send().await.unwrap().status().as_u16();
        if second == 409 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(second, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_what_it_would_otherwise_misread() {
    let (h, http, base) = server().await;
    // 201 says where the new call lives.
    let resp = http.post(&base).json(&json!({"to": "+15550000010"})).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let id = resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/v1/calls/{id}"));
    // A typo'd filter is an error, not "every call".
    let resp = http.get(format!("{base}?stauts=queued")).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "unknown_parameter");
    // call_window: unknown keys and an empty day list are refused.
    let window = |w: Value| json!({"to": "+15550000011", "call_window": w});
    let w = json!({"timezone": "UTC", "start": "09:00", "end": "17:00", "dayz": ["mon"]});
    let (status, body) = post(&http, &base, window(w), None).await;
    assert_eq!(status, 422);
    assert!(body["error"]["message"].as_str().unwrap().starts_with("call_window.dayz"), "{body}");
    let w = json!({"timezone": "UTC", "start": "09:00", "end": "17:00", "days": []});
    let (status, body) = post(&http, &base, window(w), None).await;
    assert_eq!(status, 422);
    assert!(body["error"]["message"].as_str().unwrap().starts_with("call_window.days"), "{body}");
    // A time in the past is a mistake, not "now".
    let (status, body) =
        post(&http, &base, json!({"to": "+15550000015", "scheduled_at": "2020-01-01T00:00:00Z"}), None).await;
    assert_eq!(status, 422);
    assert!(body["error"]["message"].as_str().unwrap().starts_with("scheduled_at: is in the past"), "{body}");
    // An Idempotency-Key replays only its own request.
    let (first, a) = post(&http, &base, json!({"to": "+15550000012"}), Some("k-1")).await;
    let (again, b) = post(&http, &base, json!({"to": "+15550000012"}), Some("k-1")).await;
    assert_eq!((first, again), (201, 200));
    assert_eq!(a["id"], b["id"]);
    let (other, body) = post(&http, &base, json!({"to": "+15550000013"}), Some("k-1")).await;
    assert_eq!(other, 422, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().starts_with("Idempotency-Key"), "{body}");
    // A body over the limit is refused in the error envelope.
    let huge = format!(r#"{{"to":"+15550000014","instructions":"{}"}}"#, "x".repeat(3 * 1024 * 1024));
    let resp = http.post(&base).header("content-type", "application/json").body(huge).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "body_too_large");
    drop(h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_require_a_bearer_token() {
    let mut c = config(AudioMode::G711);
    c.metrics_token = Some("scrape-secret".into());
    let h = start(c, mock_options()).await;
    let http = http_client();
    let url = format!("http://{}/metrics", h.addr);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(http.get(&url).bearer_auth("wrong").send().await.unwrap().status(), 401);
    let ok = http.get(&url).bearer_auth("scrape-secret").send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("voxbridge_"));
}
