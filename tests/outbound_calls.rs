//! Outbound calls end to end: `POST /v1/calls` → the worker dials a fake Twilio (the documented
//! form) → Twilio (played by this test) fetches `/twiml/{id}`, streams the call through the bridge
//! to the mock model with the call's own instructions → status callbacks → `completed` with a
//! transcript. Busy is retried at the backoff time; when attempts run out the call ends busy.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use common::twilio::*;
use common::*;
use serde_json::{Value, json};
use voxbridge::providers::twilio::signature;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_call_is_dialled_bridged_and_completed_with_a_transcript() {
    let (h, dials, http) = setup().await;
    let id = create(
        &h,
        &http,
        json!({"to": "+15551230001", "instructions": "You are Ada from Acme Dental.", "greeting": "Hi, this is Ada."}),
    )
    .await;
    assert!(wait_dials(&dials, 1).await, "the worker dialled");
    let form = dials.lock().unwrap()[0].clone();
    assert_eq!(field(&form, "To"), "+15551230001");
    assert_eq!(field(&form, "From"), "+15557654321");
    assert_eq!(field(&form, "Url"), format!("{PUBLIC_URL}/twiml/{id}"));
    assert_eq!(field(&form, "StatusCallback"), format!("{PUBLIC_URL}/webhooks/twilio/status?call_id={id}&attempt=1"));
    assert_eq!(call(&h, &http, &id).await["status"], "dialing");

    status_callback(&h, &http, &id, "CA_out_1", "ringing", 1).await;
    status_callback(&h, &http, &id, "CA_out_1", "in-progress", 2).await;
    let report = replay_via(&h, "greeting-and-answer", 4.0, Some(TOKEN), &format!("/twiml/{id}")).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    status_callback(&h, &http, &id, "CA_out_1", "completed", 3).await;

    let c = call(&h, &http, &id).await;
    assert_eq!(c["status"], "completed");
    assert_eq!(c["attempts"], 1);
    let history: Vec<&str> = c["history"].as_array().unwrap().iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert_eq!(history, ["queued", "dialing", "ringing", "in_progress", "completed"]);
    // The model was configured from the call record.
    let conn = h.mock.as_ref().unwrap().log.get(0).unwrap();
    assert_eq!(conn.lock().unwrap().session_updates[0]["instructions"], "You are Ada from Acme Dental.");
    let transcript: Value =
        http.get(format!("http://{}/v1/calls/{id}/transcript", h.addr)).send().await.unwrap().json().await.unwrap();
    let entries = transcript["entries"].as_array().unwrap();
    assert!(entries.iter().any(|e| e["speaker"] == "caller"), "{transcript}");
    assert!(entries.iter().any(|e| e["speaker"] == "assistant"), "{transcript}");
    let metrics = http.get(format!("http://{}/metrics", h.addr)).send().await.unwrap().text().await.unwrap();
    for name in [
        "voxbridge_queue_claims_total",
        "voxbridge_call_transitions_total{status=\"completed\"}",
        "voxbridge_queue_depth",
    ] {
        assert!(metrics.contains(name), "{name} exported");
    }
    // A finished call's TwiML is a goodbye, not a stream.
    let sig = signature::compute(TOKEN, &format!("{PUBLIC_URL}/twiml/{id}"), &[]);
    let xml = http
        .post(format!("http://{}/twiml/{id}", h.addr))
        .header("X-Twilio-Signature", sig)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(xml.contains("<Hangup/>") && !xml.contains("<Stream"), "{xml}");
    // What a business reads off it: why and when it ended, how long it lasted.
    assert_eq!(c["end_reason"], "caller_hung_up", "{c}");
    let (answered, ended) = (c["answered_at"].as_str().unwrap(), c["ended_at"].as_str().unwrap());
    let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
    assert!(t(answered) <= t(ended));
    let duration = c["duration_s"].as_f64().unwrap();
    let ms = t(ended).as_millisecond() - t(answered).as_millisecond();
    assert!((ms as f64 / 1000.0 - duration).abs() < 0.002, "{c}");
    // Usage summed from the model's response.done, priced from the built-in table.
    let usage = &c["usage"];
    assert!(usage["model"]["output_audio_tokens"].as_u64().unwrap() > 0, "{usage}");
    assert_eq!(usage["carrier_seconds"].as_f64(), Some(duration.ceil()));
    let cost = &c["cost"];
    assert_eq!(cost["currency"], "USD");
    let (model_usd, carrier_usd) = (cost["model_usd"].as_f64().unwrap(), cost["carrier_usd"].as_f64().unwrap());
    assert!(model_usd > 0.0 && carrier_usd > 0.0, "{cost}");
    assert!((cost["total_usd"].as_f64().unwrap() - (model_usd + carrier_usd)).abs() < 1e-6);
    let metrics = http.get(format!("http://{}/metrics", h.addr)).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("voxbridge_model_tokens_total{model=\"gpt-realtime\",kind=\"output_audio\"}"),
        "spend is exported"
    );
    assert!(metrics.contains("voxbridge_model_cost_microusd_total{model=\"gpt-realtime\"}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_model_is_refused_ends_failed_model_unreachable_and_is_retried() {
    let (hook, events) = event_receiver().await;
    let (twilio, dials, _) = fake_twilio().await;
    let mut c = outbound_config(twilio, Some(hook));
    c.model_connect_timeout_ms = 300;
    // A model that refuses every connection.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    c.realtime_url = format!("ws://{}/v1/realtime", closed.local_addr().unwrap());
    drop(closed);
    let h = start_with_model(c).await;
    let http = http_client();
    let id = create(&h, &http, json!({"to": "+15551230009", "max_attempts": 2})).await;
    for attempt in 1..=2u32 {
        assert!(wait_dials(&dials, attempt as usize).await, "attempt {attempt} dialled");
        let sid = format!("CA_out_{attempt}");
        status_callback(&h, &http, &id, &sid, "in-progress", 1).await;
        // The callee answers; the bridge cannot reach the model and closes the stream (1011).
        let report = replay_via(&h, "dtmf", 4.0, Some(TOKEN), &format!("/twiml/{id}")).await;
        assert_eq!(report.failed_calls, 1, "the AI failed the callee");
        // Twilio plays the apology, hangs up, and reports "completed".
        status_callback(&h, &http, &id, &sid, "completed", 2).await;
        if attempt == 1 {
            let c = call(&h, &http, &id).await;
            assert_eq!(c["status"], "queued", "retried like no_answer: {c}");
            assert!(c["end_reason"].is_null(), "the call lives on");
        }
    }
    let c = call(&h, &http, &id).await;
    assert_eq!((c["status"].as_str(), c["end_reason"].as_str()), (Some("failed"), Some("model_unreachable")), "{c}");
    assert_eq!(c["attempts"], 2);
    let history: Vec<&str> = c["history"].as_array().unwrap().iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert!(!history.contains(&"completed"), "never completed: {history:?}");
    let failed = || {
        events
            .lock()
            .unwrap()
            .iter()
            .find(|e| e["type"] == "call.failed" && e["data"]["call"]["id"] == id.as_str())
            .cloned()
    };
    assert!(eventually(Duration::from_secs(5), || failed().is_some()).await, "the app hears call.failed");
    assert_eq!(failed().unwrap()["data"]["call"]["end_reason"], "model_unreachable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_is_retried_after_the_backoff_then_completes() {
    let (h, dials, http) = setup().await;
    let id = create(&h, &http, json!({"to": "+15551230002", "max_attempts": 3})).await;
    assert!(wait_dials(&dials, 1).await);
    status_callback(&h, &http, &id, "CA_out_1", "busy", 1).await;
    let c = call(&h, &http, &id).await;
    assert_eq!(c["status"], "queued", "busy with attempts left goes back to the queue");
    assert!(c["next_attempt_at"].is_string());
    // A late event from the first attempt changes nothing.
    status_callback(&h, &http, &id, "CA_out_1", "completed", 2).await;
    assert_eq!(call(&h, &http, &id).await["status"], "queued");
    assert!(wait_dials(&dials, 2).await, "dialled again after the backoff");
    status_callback(&h, &http, &id, "CA_out_2", "in-progress", 1).await;
    status_callback(&h, &http, &id, "CA_out_2", "completed", 2).await;
    let c = call(&h, &http, &id).await;
    assert_eq!((c["status"].as_str(), c["attempts"].as_i64()), (Some("completed"), Some(2)));
    let history: Vec<&str> = c["history"].as_array().unwrap().iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert_eq!(history, ["queued", "dialing", "busy", "queued", "dialing", "in_progress", "completed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_attempts_run_out_the_call_ends_busy() {
    let (h, dials, http) = setup().await;
    let id = create(&h, &http, json!({"to": "+15551230003", "max_attempts": 1})).await;
    assert!(wait_dials(&dials, 1).await);
    status_callback(&h, &http, &id, "CA_out_1", "busy", 1).await;
    assert_eq!(call(&h, &http, &id).await["status"], "busy");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(dials.lock().unwrap().len(), 1, "never dialled again");
    let m: Value = http.get(format!("http://{}/v1/metrics", h.addr)).send().await.unwrap().json().await.unwrap();
    assert_eq!(m["queue_depth"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceling_a_live_call_hangs_it_up_through_twilio() {
    let (h, dials, hangups, http) = setup_full(None).await;
    let id = create(&h, &http, json!({"to": "+15551230004"})).await;
    assert!(wait_dials(&dials, 1).await);
    status_callback(&h, &http, &id, "CA_out_1", "in-progress", 1).await;
    let resp = http.post(format!("http://{}/v1/calls/{id}/cancel", h.addr)).send().await.unwrap();
    assert_eq!(resp.status(), 202, "live: hang-up requested");
    let (sid, body) = hangups.lock().unwrap()[0].clone();
    assert_eq!((sid.as_str(), body.as_str()), ("CA_out_1.json", "Status=completed"));
    status_callback(&h, &http, &id, "CA_out_1", "completed", 2).await;
    assert_eq!(call(&h, &http, &id).await["status"], "completed");
}

/// The user's app: its URL for events, and the events it received.
async fn event_sink() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let s = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/events",
        post(move |body: String| {
            let s = Arc::clone(&s);
            async move {
                s.lock().unwrap().push(serde_json::from_str(&body).unwrap());
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/events", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (hook, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_app_gets_call_completed_with_the_transcript() {
    let (hook, seen) = event_sink().await;
    let (h, dials, _, http) = setup_full(Some(hook)).await;
    let id = create(&h, &http, json!({"to": "+15551230005"})).await;
    assert!(wait_dials(&dials, 1).await);
    status_callback(&h, &http, &id, "CA_out_1", "in-progress", 1).await;
    let report = replay_via(&h, "dtmf", 4.0, Some(TOKEN), &format!("/twiml/{id}")).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    status_callback(&h, &http, &id, "CA_out_1", "completed", 2).await;
    let done = || seen.lock().unwrap().iter().any(|e| e["type"] == "call.completed");
    assert!(eventually(Duration::from_secs(5), done).await, "call.completed delivered");
    let events = seen.lock().unwrap().clone();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["call.queued", "call.dialing", "call.in_progress", "call.completed"]);
    let transcript = events[3]["data"]["transcript"].as_array().unwrap();
    assert!(transcript.iter().any(|l| l["text"] == "[DTMF 4]"), "{transcript:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_answer_is_hung_up_and_the_call_ends_as_voicemail() {
    let (h, dials, hangups, http) = setup_full(None).await;
    let id = create(&h, &http, json!({"to": "+15551230006", "machine_detection": true, "max_attempts": 3})).await;
    assert!(wait_dials(&dials, 1).await);
    let form = dials.lock().unwrap()[0].clone();
    assert_eq!((field(&form, "MachineDetection"), field(&form, "AsyncAmd")), ("DetectMessageEnd", "true"));
    status_callback(&h, &http, &id, "CA_out_1", "in-progress", 1).await;
    // The async AMD callback: AnsweredBy, no CallStatus.
    let amd = common::form(&[
        ("CallSid", "CA_out_1"),
        ("AnsweredBy", "machine_end_beep"),
        ("MachineDetectionDuration", "2100"),
    ]);
    let resp = post_signed(&h, &http, TOKEN, &format!("/webhooks/twilio/status?call_id={id}"), &amd).await;
    assert_eq!(resp.status(), 204);
    assert!(eventually(Duration::from_secs(3), || !hangups.lock().unwrap().is_empty()).await, "hung up on the machine");
    status_callback(&h, &http, &id, "CA_out_1", "completed", 3).await;
    let c = call(&h, &http, &id).await;
    assert_eq!((c["status"].as_str(), c["answered_by"].as_str()), (Some("voicemail"), Some("machine_end_beep")));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(dials.lock().unwrap().len(), 1, "voicemail is final, not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_machine_the_ai_leaves_the_calls_voicemail_message_then_hangs_up() {
    let (h, dials, hangups, http) = setup_full(None).await;
    let id = create(
        &h,
        &http,
        json!({"to": "+15551230007", "voicemail_message": "Hi, Acme Dental here, please call us back."}),
    )
    .await;
    assert!(wait_dials(&dials, 1).await);
    let form = dials.lock().unwrap()[0].clone();
    assert_eq!(field(&form, "MachineDetection"), "DetectMessageEnd", "a voicemail message implies detection");
    status_callback(&h, &http, &id, "CA_out_1", "in-progress", 1).await;
    // The stream runs while the machine verdict arrives.
    let h2 = Harness {
        addr: h.addr,
        bridge: Arc::clone(&h.bridge),
        mock: h.mock.clone(),
        database_url: h.database_url.clone(),
    };
    let path = format!("/twiml/{id}");
    let stream = tokio::spawn(async move { replay_via(&h2, "several-turns", 1.0, Some(TOKEN), &path).await });
    let mock = h.mock.clone().unwrap();
    assert!(eventually(Duration::from_secs(5), || mock.log.count() == 1).await, "bridged to the model");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let amd = common::form(&[("CallSid", "CA_out_1"), ("AnsweredBy", "machine_end_beep")]);
    assert_eq!(
        post_signed(&h, &http, TOKEN, &format!("/webhooks/twilio/status?call_id={id}"), &amd).await.status(),
        204
    );
    let report =
        tokio::time::timeout(Duration::from_secs(20), stream).await.expect("the bridge ended the call").unwrap();
    assert_eq!(report.per_call[0].server_close_code, Some(1000), "ended by the bridge after the message");
    let conn = mock.log.get(0).unwrap();
    let asked = conn.lock().unwrap().response_requests.clone();
    assert!(asked.iter().any(|i| i.contains("please call us back")), "the message was requested: {asked:?}");
    assert!(eventually(Duration::from_secs(3), || !hangups.lock().unwrap().is_empty()).await, "hung up through Twilio");
    status_callback(&h, &http, &id, "CA_out_1", "completed", 3).await;
    assert_eq!(call(&h, &http, &id).await["status"], "voicemail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_campaign_dials_no_one_until_resumed_and_lists_filter_by_campaign_number_and_metadata() {
    let (h, dials, http) = setup().await;
    let base = format!("http://{}/v1", h.addr);
    // Paused before it has any call: a property of the name.
    let paused: Value = http.post(format!("{base}/campaigns/spring/pause")).send().await.unwrap().json().await.unwrap();
    assert_eq!((paused["paused"].as_bool(), paused["queued"].as_i64()), (Some(true), Some(0)));
    let a = create(&h, &http, json!({"to": "+15551110001", "campaign": "spring", "metadata": {"lead": 7}})).await;
    let b = create(&h, &http, json!({"to": "+15551110002", "campaign": "spring", "metadata": {"lead": "x"}})).await;
    // Queued after the campaign's calls, so dialled first only because they are paused.
    create(&h, &http, json!({"to": "+15551110003"})).await;
    assert!(wait_dials(&dials, 1).await);
    assert_eq!(field(&dials.lock().unwrap()[0], "To"), "+15551110003", "the paused calls were skipped");
    assert_eq!(call(&h, &http, &a).await["status"], "queued");
    // Filters.
    let ids = |q: &str| {
        let (http, url) = (http.clone(), format!("{base}/calls?{q}"));
        async move {
            let v: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            let mut ids: Vec<String> =
                v["calls"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect();
            ids.sort();
            ids
        }
    };
    let mut spring = vec![a.clone(), b.clone()];
    spring.sort();
    assert_eq!(ids("campaign=spring").await, spring);
    assert_eq!(ids("to=%2B15551110002").await, vec![b.clone()]);
    assert_eq!(ids("metadata.lead=7").await, vec![a.clone()]);
    assert_eq!(ids("campaign=spring&metadata.lead=x").await, vec![b.clone()]);
    assert_eq!(call(&h, &http, &a).await["campaign"], "spring");
    // Resumed: both go out.
    let resumed: Value =
        http.post(format!("{base}/campaigns/spring/resume")).send().await.unwrap().json().await.unwrap();
    assert_eq!((resumed["paused"].as_bool(), resumed["queued"].as_i64()), (Some(false), Some(2)));
    assert!(wait_dials(&dials, 3).await, "dialled once resumed");
    // Cancel: the queued calls of a campaign end canceled; nothing else is touched.
    http.post(format!("{base}/campaigns/fall/pause")).send().await.unwrap();
    let c = create(&h, &http, json!({"to": "+15551110004", "campaign": "fall"})).await;
    let canceled: Value =
        http.post(format!("{base}/campaigns/fall/cancel")).send().await.unwrap().json().await.unwrap();
    assert_eq!(canceled["canceled"], 1);
    let v = call(&h, &http, &c).await;
    assert_eq!((v["status"].as_str(), v["end_reason"].as_str()), (Some("canceled"), Some("canceled")));
    let bad = http.post(format!("{base}/campaigns/fall/explode")).send().await.unwrap();
    assert_eq!(bad.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_at_its_duration_cap_says_goodbye_and_ends_max_duration() {
    let (h, dials, hangups, http) = setup_full(None).await;
    let id = create(&h, &http, json!({"to": "+15551230011", "max_duration_s": 2})).await;
    assert!(wait_dials(&dials, 1).await);
    let form = dials.lock().unwrap()[0].clone();
    assert_eq!(field(&form, "TimeLimit"), "62", "Twilio's own limit a minute behind the cap");
    status_callback(&h, &http, &id, "CA_out_1", "in-progress", 1).await;
    // The callee would talk for longer than the cap allows.
    let report = replay_via(&h, "several-turns", 2.0, Some(TOKEN), &format!("/twiml/{id}")).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    assert_eq!(report.per_call[0].server_close_code, Some(1000), "the bridge ended the call");
    let hung_up = || !hangups.lock().unwrap().is_empty();
    assert!(eventually(Duration::from_secs(5), hung_up).await, "hung up through Twilio");
    let (sid, _) = hangups.lock().unwrap()[0].clone();
    assert_eq!(sid, "CA_out_1.json", "the call on record is the one hung up");
    status_callback(&h, &http, &id, "CA_out_1", "completed", 2).await;
    let c = call(&h, &http, &id).await;
    assert_eq!((c["status"].as_str(), c["end_reason"].as_str()), (Some("completed"), Some("max_duration")), "{c}");
    let conn = h.mock.as_ref().unwrap().log.get(0).unwrap();
    let (items, requests) = {
        let c = conn.lock().unwrap();
        (c.items.clone(), c.response_requests.clone())
    };
    assert!(items.iter().any(|i| i["role"] == "system"), "told to wrap up: {items:?}");
    assert!(requests.iter().any(|r| r.contains("goodbye")), "{requests:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_at_its_cost_cap_says_goodbye_and_ends_max_cost() {
    let (h, dials, hangups, http) = setup_full(None).await;
    // The carrier's first minute alone ($0.014, built-in table) is over this budget.
    let id = create(&h, &http, json!({"to": "+15551230012", "max_cost_usd": 0.01})).await;
    assert_eq!(call(&h, &http, &id).await["max_cost_usd"], 0.01);
    assert!(wait_dials(&dials, 1).await);
    status_callback(&h, &http, &id, "CA_out_1", "in-progress", 1).await;
    let report = replay_via(&h, "several-turns", 2.0, Some(TOKEN), &format!("/twiml/{id}")).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    assert_eq!(report.per_call[0].server_close_code, Some(1000), "the bridge ended the call");
    assert!(eventually(Duration::from_secs(5), || !hangups.lock().unwrap().is_empty()).await, "hung up");
    status_callback(&h, &http, &id, "CA_out_1", "completed", 2).await;
    let c = call(&h, &http, &id).await;
    assert_eq!((c["status"].as_str(), c["end_reason"].as_str()), (Some("completed"), Some("max_cost")), "{c}");
    let conn = h.mock.as_ref().unwrap().log.get(0).unwrap();
    let requests = conn.lock().unwrap().response_requests.clone();
    assert!(requests.iter().any(|r| r.contains("budget") && r.contains("goodbye")), "{requests:?}");
    // A bad cap is refused with the field named.
    let resp = http
        .post(format!("http://{}/v1/calls", h.addr))
        .json(&json!({"to": "+15551230013", "max_cost_usd": -1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    assert!(resp.text().await.unwrap().contains("max_cost_usd"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_can_choose_its_model_and_its_api() {
    let (h, dials, http) = setup().await;
    let id =
        create(&h, &http, json!({"to": "+15551230014", "model": "gpt-realtime-mini", "model_api": "realtime"})).await;
    assert_eq!(call(&h, &http, &id).await["model"], "gpt-realtime-mini");
    assert!(wait_dials(&dials, 1).await && prewarmed(&h, 1).await);
    status_callback(&h, &http, &id, "CA_out_1", "in-progress", 1).await;
    let report = replay_via(&h, "greeting-and-answer", 4.0, Some(TOKEN), &format!("/twiml/{id}")).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    let conn = h.mock.as_ref().unwrap().log.get(0).unwrap();
    assert_eq!(
        conn.lock().unwrap().session_updates[0]["model"],
        "gpt-realtime-mini",
        "the session runs the call's model"
    );
    // A GPT-Live call: its record says so and the session is a Live one, with the effort for
    // its Responses backend.
    let id = create(&h, &http, json!({"to": "+15551230017", "model_api": "live", "reasoning_effort": "low"})).await;
    assert_eq!(call(&h, &http, &id).await["model_api"], "live");
    assert!(wait_dials(&dials, 2).await && prewarmed(&h, 2).await);
    status_callback(&h, &http, &id, "CA_out_2", "in-progress", 1).await;
    let report = replay_via(&h, "greeting-and-answer", 4.0, Some(TOKEN), &format!("/twiml/{id}")).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    let conn = h.mock.as_ref().unwrap().log.get(1).unwrap();
    let start = conn.lock().unwrap().session_updates[0].clone();
    assert_eq!(start["model"], "gpt-live-1.1", "{start}");
    assert_eq!(start["delegation"]["responses"]["reasoning"]["effort"], "low", "{start}");
    for (body, field) in [
        (json!({"to": "+15551230015", "model_api": "other"}), "model_api"),
        (json!({"to": "+15551230015", "model": "bad model!"}), "model"),
        // The server's model (gpt-realtime) takes no reasoning effort.
        (json!({"to": "+15551230015", "reasoning_effort": "high"}), "reasoning_effort"),
    ] {
        let resp = http.post(format!("http://{}/v1/calls", h.addr)).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 422, "{body}");
        assert!(resp.text().await.unwrap().contains(field));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reasoning_model_gets_the_calls_reasoning_effort() {
    let (h, dials, http) = setup().await;
    let body = json!({"to": "+15551230016", "model": "gpt-realtime-2", "reasoning_effort": "high"});
    let id = create(&h, &http, body).await;
    let resource = call(&h, &http, &id).await;
    assert_eq!(
        (resource["model"].as_str(), resource["reasoning_effort"].as_str()),
        (Some("gpt-realtime-2"), Some("high"))
    );
    assert!(wait_dials(&dials, 1).await);
    status_callback(&h, &http, &id, "CA_out_1", "in-progress", 1).await;
    let report = replay_via(&h, "greeting-and-answer", 4.0, Some(TOKEN), &format!("/twiml/{id}")).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    let conn = h.mock.as_ref().unwrap().log.get(0).unwrap();
    let session = conn.lock().unwrap().session_updates[0].clone();
    assert_eq!(session["model"], "gpt-realtime-2");
    assert_eq!(session["reasoning"], json!({"effort": "high"}), "sent as the session's reasoning effort");
}

/// Ring-time pre-warm: the call's model session opens, is configured and is asked for the
/// greeting once the carrier accepted the dial — before any stream — and the stream takes that
/// very session over (one connection, one greeting).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_session_opens_while_the_phone_rings_and_the_stream_takes_it_over() {
    let (twilio, dials, _) = fake_twilio().await;
    let mock = voxbridge::mock_realtime::MockOptions { first_audio_delay_ms: 400, ..mock_options() };
    let h = start(outbound_config(twilio, None), mock).await;
    let http = http_client();
    let id = create(&h, &http, json!({"to": "+15551230021"})).await;
    assert!(wait_dials(&dials, 1).await);
    let log = h.mock.as_ref().unwrap().log.clone();
    // The phone rings until the greeting's audio is coming (the model's delay spent meanwhile).
    let greeted = || log.get(0).is_some_and(|c| c.lock().unwrap().deltas_sent > 0);
    assert!(eventually(Duration::from_secs(5), greeted).await, "the greeting is made while the phone rings");
    status_callback(&h, &http, &id, "CA_out_1", "in-progress", 1).await;
    let report = replay_via(&h, "greeting-and-answer", 4.0, Some(TOKEN), &format!("/twiml/{id}")).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    assert_eq!(log.count(), 1, "the pre-warmed session served the call");
    let conn = log.get(0).unwrap();
    let greetings = conn.lock().unwrap().response_requests.iter().filter(|r| r.contains("greeting")).count();
    assert_eq!(greetings, 1, "greeted once");
    assert_eq!(conn.lock().unwrap().session_updates.len(), 1, "configured once");
    let call = &report.per_call[0];
    assert!(call.audio_received_ms > 1500.0, "the greeting and an answer were heard: {call:?}");
    eprintln!("stream start → first greeting audio with pre-warm: {:?} ms", call.turns.first_audio_ms);
}

/// A pre-warmed session whose callee never answers is closed as soon as the attempt ends, and
/// the greeting it was billed for is in the call's usage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_calls_pre_warmed_session_is_closed_at_once() {
    let (h, dials, http) = setup().await;
    let id = create(&h, &http, json!({"to": "+15551230022", "max_attempts": 1})).await;
    assert!(wait_dials(&dials, 1).await);
    let log = h.mock.as_ref().unwrap().log.clone();
    // The greeting is made in full while the phone rings.
    let greeted = || log.get(0).is_some_and(|c| c.lock().unwrap().responses_done >= 1);
    assert!(eventually(Duration::from_secs(5), greeted).await, "opened and greeting while ringing");
    assert!(log.get(0).unwrap().lock().unwrap().closed_at.is_none());
    status_callback(&h, &http, &id, "CA_out_1", "no-answer", 1).await;
    let closed = || log.get(0).unwrap().lock().unwrap().closed_at.is_some();
    assert!(eventually(Duration::from_secs(2), closed).await, "closed once nobody answered");
    assert_eq!(h.bridge.prewarms.len(), 0);
    let mut tokens = 0;
    for _ in 0..100 {
        tokens = call(&h, &http, &id).await["usage"]["model"]["output_audio_tokens"].as_u64().unwrap_or(0);
        if tokens > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(tokens > 0, "the unheard greeting's tokens are the call's too");
}

/// `VOXBRIDGE_PREWARM=false`: nothing opens before the stream starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pre_warm_the_session_opens_when_the_stream_starts() {
    let (twilio, dials, _) = fake_twilio().await;
    let mut c = outbound_config(twilio, None);
    c.prewarm = false;
    let mock = voxbridge::mock_realtime::MockOptions { first_audio_delay_ms: 400, ..mock_options() };
    let h = start(c, mock).await;
    let http = http_client();
    let id = create(&h, &http, json!({"to": "+15551230023"})).await;
    assert!(wait_dials(&dials, 1).await);
    status_callback(&h, &http, &id, "CA_out_1", "in-progress", 1).await;
    let log = h.mock.as_ref().unwrap().log.clone();
    assert_eq!(log.count(), 0, "no session before the stream");
    let report = replay_via(&h, "greeting-and-answer", 4.0, Some(TOKEN), &format!("/twiml/{id}")).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    assert_eq!(log.count(), 1);
    eprintln!("stream start → first greeting audio without pre-warm: {:?} ms", report.per_call[0].turns.first_audio_ms);
}

/// Several machines on Fly: the machine that dialled (and pre-warmed) a call names itself in the
/// TwiML URL, the TwiML puts it in the stream's path, and the stream is served there with the
/// pre-warmed session — kept even while that machine drains. A stream named for another
/// machine is answered with `fly-replay` for Fly's proxy (no socket, no slot, no session), and
/// served where it lands once replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_fly_the_stream_is_steered_to_the_machine_holding_the_pre_warmed_session() {
    const ME: &str = "3d8d9e2b7e1289";
    const OTHER: &str = "91857d2f653e83";
    let (twilio, dials, _) = fake_twilio().await;
    let mut c = outbound_config(twilio, None);
    c.fly_machine_id = ME.into();
    let h = start(c, mock_options()).await;
    let http = http_client();
    let id = create(&h, &http, json!({"to": "+15551230024"})).await;
    assert!(wait_dials(&dials, 1).await);
    let twiml_url = field(&dials.lock().unwrap()[0], "Url").to_string();
    assert_eq!(twiml_url, format!("{PUBLIC_URL}/twiml/{id}?machine={ME}"), "the dialling machine names itself");
    let log = h.mock.as_ref().unwrap().log.clone();
    assert!(eventually(Duration::from_secs(5), || log.count() == 1).await, "pre-warmed while ringing");

    // A stream named for another machine: replayed there by the proxy, nothing held here.
    let other_path = format!("/media/twilio/{OTHER}");
    let sig = signature::compute(TOKEN, &format!("{}{other_path}", PUBLIC_URL.replace("http", "ws")), &[]);
    let (status, headers) = upgrade(h.addr, &other_path, &[("X-Twilio-Signature", &sig)]).await.err().unwrap();
    assert_eq!((status, headers["fly-replay"].to_str().unwrap()), (409, "prefer_instance=91857d2f653e83"));
    assert_eq!(h.bridge.admission.pending(), 0);
    // The same, unsigned: refused before any steering.
    assert_eq!(upgrade(h.addr, &other_path, &[]).await.err().unwrap().0, 403);
    // Replayed once already (that machine was gone): served where it landed.
    let replayed = [("X-Twilio-Signature", sig.as_str()), ("fly-replay-src", "instance=91857d2f653e83;t=1")];
    let ws = upgrade(h.addr, &other_path, &replayed).await.expect("served here");
    drop(ws);

    // Twilio fetches the TwiML (the URL it was given) and streams where it says: this machine,
    // whose pre-warmed session serves the call.
    status_callback(&h, &http, &id, "CA_out_1", "in-progress", 1).await;
    let voice_path = twiml_url.trim_start_matches(PUBLIC_URL).to_string();
    let report = replay_via(&h, "greeting-and-answer", 4.0, Some(TOKEN), &voice_path).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    assert_eq!(log.count(), 1, "the pre-warmed session served the call");
    assert!(report.per_call[0].audio_received_ms > 1500.0, "{:?}", report.per_call[0]);

    // Draining, a machine still takes a stream steered to it (a call it dialled), no other.
    h.bridge.admission.start_draining();
    let mine = format!("/media/twilio/{ME}");
    let sig = signature::compute(TOKEN, &format!("{}{mine}", PUBLIC_URL.replace("http", "ws")), &[]);
    assert!(upgrade(h.addr, &mine, &[("X-Twilio-Signature", &sig)]).await.is_ok(), "its own call");
    let sig = signature::compute(TOKEN, &format!("{}/media/twilio", PUBLIC_URL.replace("http", "ws")), &[]);
    assert_eq!(connect_media(h.addr, Some(&sig)).await.err(), Some(503), "a new one goes elsewhere");
}

/// A call with an `outcome_schema`, on either API: the AI is offered `report_outcome` with that
/// schema as its parameters; what it reports (valid) is acknowledged and becomes the call's
/// `outcome`, in the API and in the events the user's app receives.
async fn the_outcome_the_ai_reports_is_kept_on_the_call(api: &str) {
    let (hook, seen) = event_sink().await;
    let (twilio, dials, _) = fake_twilio().await;
    let reported = r#"{"confirmed": true, "notes": "Tuesday at 3 works"}"#;
    let mock = voxbridge::mock_realtime::MockOptions {
        call_tool_at: Some((1, "report_outcome".into(), reported.to_string())),
        live_speed: 4.0,
        ..mock_options()
    };
    let h = start(outbound_config(twilio, Some(hook)), mock).await;
    let http = http_client();
    let schema = json!({"type": "object", "additionalProperties": false, "required": ["confirmed"],
        "properties": {"confirmed": {"type": "boolean"}, "notes": {"type": "string"}}});
    let id = create(&h, &http, json!({"to": "+15551230031", "outcome_schema": schema, "model_api": api})).await;
    assert!(wait_dials(&dials, 1).await && prewarmed(&h, 1).await);
    let c = call(&h, &http, &id).await;
    assert_eq!((c["outcome"].clone(), c["outcome_schema"].clone()), (Value::Null, schema.clone()));
    status_callback(&h, &http, &id, "CA_out_1", "in-progress", 1).await;
    let report = replay_via(&h, "greeting-and-answer", 4.0, Some(TOKEN), &format!("/twiml/{id}")).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    let conn = h.mock.as_ref().unwrap().log.get(0).unwrap();
    let (start, items) = {
        let log = conn.lock().unwrap();
        (log.session_updates[0].clone(), log.items.clone())
    };
    // Realtime lists tools in the session, GPT-Live in its Responses delegation.
    let tools = if api == "live" { &start["delegation"]["responses"]["tools"] } else { &start["tools"] };
    let offered = tools.as_array().unwrap().iter().find(|t| t["name"] == "report_outcome").cloned();
    assert_eq!(offered.map(|t| t["parameters"].clone()), Some(schema), "offered with the call's schema");
    let answer = items.iter().find(|i| i["type"] == "function_call_output").expect("the report was answered");
    assert_eq!(answer["output"], r#"{"ok":true}"#);
    let expected: Value = serde_json::from_str(reported).unwrap();
    assert_eq!(call(&h, &http, &id).await["outcome"], expected);
    status_callback(&h, &http, &id, "CA_out_1", "completed", 2).await;
    let done = || seen.lock().unwrap().iter().any(|e| e["type"] == "call.completed");
    assert!(eventually(Duration::from_secs(5), done).await, "call.completed delivered");
    let events = seen.lock().unwrap().clone();
    let completed = events.iter().find(|e| e["type"] == "call.completed").unwrap();
    assert_eq!(completed["data"]["call"]["outcome"], expected, "{completed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outcome_a_realtime_ai_reports_is_kept_on_the_call() {
    the_outcome_the_ai_reports_is_kept_on_the_call("realtime").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outcome_a_gpt_live_ai_reports_is_kept_on_the_call() {
    the_outcome_the_ai_reports_is_kept_on_the_call("live").await;
}

/// A call with tools of its own: the AI is offered them; its call of one is POSTed to the tool's
/// URL, signed as events are, with the call's id and metadata; the JSON answer goes back to the
/// model as the function's output, and the model is asked to go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ais_call_of_a_calls_own_tool_is_posted_signed_and_its_answer_goes_back() {
    type Seen = Arc<Mutex<Vec<(String, String)>>>;
    let seen: Seen = Arc::default();
    let s = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/tools/calendar",
        post(move |headers: axum::http::HeaderMap, body: String| {
            let s = Arc::clone(&s);
            async move {
                let signature = headers.get("voxbridge-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
                s.lock().unwrap().push((signature.to_string(), body));
                axum::Json(json!({"slots": ["Tue 15:00", "Wed 09:30"]}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tool_url = format!("http://{}/tools/calendar", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (twilio, dials, _) = fake_twilio().await;
    let mut config = outbound_config(twilio, None);
    config.webhook_secret = Some("whsec_tools".into());
    let mock = voxbridge::mock_realtime::MockOptions {
        call_tool_at: Some((1, "check_calendar".into(), r#"{"day": "tuesday"}"#.into())),
        ..mock_options()
    };
    let h = start(config, mock).await;
    let http = http_client();
    let parameters = json!({"type": "object", "properties": {"day": {"type": "string"}}, "required": ["day"]});
    let tool = json!({"name": "check_calendar", "description": "Free slots on a day.", "parameters": parameters,
        "url": tool_url});
    let body = json!({"to": "+15551230041", "metadata": {"lead": "L-7"}, "tools": [tool]});
    let id = create(&h, &http, body).await;
    assert_eq!(call(&h, &http, &id).await["tools"], json!([tool]), "echoed as given");
    assert!(wait_dials(&dials, 1).await && prewarmed(&h, 1).await);
    status_callback(&h, &http, &id, "CA_out_1", "in-progress", 1).await;
    let report = replay_via(&h, "greeting-and-answer", 4.0, Some(TOKEN), &format!("/twiml/{id}")).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    let conn = h.mock.as_ref().unwrap().log.get(0).unwrap();
    let (start, items, requests) = {
        let log = conn.lock().unwrap();
        (log.session_updates[0].clone(), log.items.clone(), log.response_requests.clone())
    };
    let offered = start["tools"].as_array().unwrap().iter().find(|t| t["name"] == "check_calendar").cloned();
    assert_eq!(
        offered.map(|t| (t["description"].clone(), t["parameters"].clone())),
        Some((json!("Free slots on a day."), parameters))
    );
    // The business's endpoint got the call, signed.
    let (signature, posted) = seen.lock().unwrap().first().cloned().expect("the tool was called");
    let posted_json: Value = serde_json::from_str(&posted).unwrap();
    assert_eq!(
        posted_json,
        json!({"call_id": id, "tool": "check_calendar", "arguments": {"day": "tuesday"}, "metadata": {"lead": "L-7"}})
    );
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!(
        voxbridge::webhooks::signing::verify("whsec_tools", &signature, posted.as_bytes(), now, 300),
        "{signature}"
    );
    // Its answer is the function's output, and the model goes on.
    let answer = items.iter().find(|i| i["type"] == "function_call_output").expect("answered");
    assert_eq!(answer["output"], r#"{"slots":["Tue 15:00","Wed 09:30"]}"#);
    assert!(requests.len() >= 2, "a response asked for after the output: {requests:?}");
    // A tool named like a built-in, or with a bad URL, is refused at creation.
    for (tools, field) in [
        (json!([{"name": "end_call", "url": "https://x.example/t"}]), "tools[0].name"),
        (json!([{"name": "t", "url": "ftp://x.example/t"}]), "tools[0].url"),
        (json!([{"name": "t", "url": "https://x.example/t", "parameters": {"type": "string"}}]), "tools[0].parameters"),
    ] {
        let resp = http
            .post(format!("http://{}/v1/calls", h.addr))
            .json(&json!({"to": "+15551230042", "tools": tools}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 422);
        assert!(resp.text().await.unwrap().contains(field), "{field}");
    }
}

/// Issue 22: a call scheduled ahead is dialled when it falls due, not at the next poll (here
/// 30 s away): the dialler sleeps until the earliest queued job's time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_call_is_dialled_when_due_not_at_the_next_poll() {
    let (twilio, dials, _) = fake_twilio().await;
    let mut c = outbound_config(twilio, None);
    c.worker_poll_ms = 30_000;
    let h = start(c, mock_options()).await;
    let http = http_client();
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_millis(1500);
    let id = create(&h, &http, json!({"to": "+15551230077", "scheduled_at": at.to_string()})).await;
    assert_eq!(call(&h, &http, &id).await["status"], "queued");
    assert!(wait_dials(&dials, 1).await, "dialled once due, long before the poll");
    assert!(jiff::Timestamp::now() >= at, "not before it was due");
}
