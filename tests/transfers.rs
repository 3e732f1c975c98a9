//! Transfers that cannot lose the caller (issue 25), on Twilio: the AI's `transfer_call` becomes a
//! `<Dial>` with the target's ring time, the call's own number as caller id and an `action` URL;
//! Twilio's signed callback says how the human's leg went. Answered: the call ends `transferred`.
//! Not answered: the caller comes back to the AI on a new stream — the new session gets the
//! conversation so far and is told the transfer failed — or hears the message and the call ends
//! `transfer_failed`. A forged callback is refused. (Telnyx: `tests/telnyx_calls.rs`.)

mod common;

use common::twilio::*;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use voxbridge::providers::twilio::signature;

/// A call whose AI hands the caller to `targets[0]` once it has answered; played until the
/// handover. Returns the harness, the call and the TwiML Twilio was told to run.
async fn handed_over(targets: Value) -> (Harness, reqwest::Client, String, String) {
    handed_over_on(targets, "realtime").await
}

/// [`handed_over`], the call served by `model_api` (`realtime` or `live`).
async fn handed_over_on(targets: Value, model_api: &str) -> (Harness, reqwest::Client, String, String) {
    let (twilio, dials, updates) = fake_twilio().await;
    let to = targets[0]["to"].as_str().unwrap().to_string();
    let mock = voxbridge::mock_realtime::MockOptions {
        call_tool_at: Some((1, "transfer_call".into(), json!({"to": to}).to_string())),
        live_speed: 4.0,
        ..mock_options()
    };
    let h = start(outbound_config(twilio, None), mock).await;
    let http = http_client();
    let id = create(&h, &http, json!({"to": "+15551230051", "transfer_to": targets, "model_api": model_api})).await;
    assert!(wait_dials(&dials, 1).await && prewarmed(&h, 1).await);
    status_callback(&h, &http, &id, "CA_out_1", "in-progress", 1).await;
    let report = replay_via(&h, "greeting-and-answer", 4.0, Some(TOKEN), &format!("/twiml/{id}")).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    assert_eq!(report.per_call[0].server_close_code, Some(1000), "the bridge closed the stream after the handover");
    let updates = updates.lock().unwrap().clone();
    assert_eq!(updates.len(), 1, "one update of the live call, no hang-up: {updates:?}");
    let form: Vec<(String, String)> = url::form_urlencoded::parse(updates[0].1.as_bytes()).into_owned().collect();
    (h, http, id, field(&form, "Twiml").to_string())
}

/// Twilio's `<Dial action>` callback for call `id`'s transfer to `to`, signed with `token`.
async fn dial_ended(
    h: &Harness,
    http: &reqwest::Client,
    id: &str,
    to: &str,
    status: &str,
    token: &str,
) -> reqwest::Response {
    let to = url::form_urlencoded::byte_serialize(to.as_bytes()).collect::<String>();
    let path = format!("/webhooks/twilio/dial?call_id={id}&to={to}");
    let form = form(&[("CallSid", "CA_out_1"), ("DialCallStatus", status), ("DialCallSid", "CA_desk_1")]);
    post_signed(h, http, token, &path, &form).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answered_transfer_ends_transferred_and_a_forged_callback_is_refused() {
    let targets = json!([{"to": "+15550001111", "description": "sales desk", "timeout_s": 15},
                         {"to": "sip:desk@pbx.example.com"}]);
    let (h, http, id, twiml) = handed_over(targets).await;
    let conn = h.mock.as_ref().unwrap().log.get(0).unwrap();
    let start = conn.lock().unwrap().session_updates[0].clone();
    let offered = start["tools"].as_array().unwrap().iter().find(|t| t["name"] == "transfer_call").cloned().unwrap();
    assert_eq!(offered["parameters"]["properties"]["to"]["enum"], json!(["+15550001111", "sip:desk@pbx.example.com"]));
    // The human rings 15 s, sees the call's own number, and Twilio will ask us what next.
    let action = format!("https://voice.test/webhooks/twilio/dial?call_id={id}&amp;to=%2B15550001111");
    let dial = format!(
        "<Dial action=\"{action}\" method=\"POST\" timeout=\"15\" callerId=\"+15557654321\"><Number>+15550001111</Number></Dial>"
    );
    assert!(twiml.contains(&dial), "{twiml}");
    let c = call(&h, &http, &id).await;
    assert_eq!((c["status"].as_str(), c["transferred_to"].as_str()), (Some("in_progress"), None), "not yet: {c}");

    // A forged callback (wrong key, or none) changes nothing.
    assert_eq!(dial_ended(&h, &http, &id, "+15550001111", "completed", "not-the-token").await.status(), 403);
    let unsigned = http
        .post(format!("http://{}/webhooks/twilio/dial?call_id={id}&to=%2B15550001111", h.addr))
        .form(&form(&[("CallSid", "CA_out_1"), ("DialCallStatus", "completed")]))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 403);
    assert_eq!(call(&h, &http, &id).await["transferred_to"], Value::Null);

    // The desk answered and the conversation ended: the caller's leg hangs up, the call is
    // `transferred` once Twilio says it is over.
    let resp = dial_ended(&h, &http, &id, "+15550001111", "completed", TOKEN).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("<Response><Hangup/></Response>"));
    status_callback(&h, &http, &id, "CA_out_1", "completed", 2).await;
    let c = call(&h, &http, &id).await;
    assert_eq!(
        (c["status"].as_str(), c["end_reason"].as_str(), c["transferred_to"].as_str()),
        (Some("transferred"), Some("transferred"), Some("+15550001111")),
        "{c}"
    );
    for (targets, field) in [
        (json!([{"to": "+15550001111", "timeout_s": 2}]), "transfer_to[0].timeout_s"),
        (json!([{"to": "+15550001111", "on_no_answer": "voicemail"}]), "transfer_to[0].on_no_answer"),
        (json!([{"to": "+15550001111", "message": ""}]), "transfer_to[0].message"),
        (json!([{"to": "555"}]), "transfer_to[0].to"),
        (json!([{"to": "+15550001111"}, {"to": "+15550001111"}]), "transfer_to[1].to"),
    ] {
        let body = json!({"to": "+15551230052", "transfer_to": targets});
        let resp = http.post(format!("http://{}/v1/calls", h.addr)).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 422);
        assert!(resp.text().await.unwrap().contains(field), "{field}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_answers_and_the_caller_comes_back_to_the_ai_which_knows_why() {
    comes_back("realtime").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_answers_and_the_caller_comes_back_to_a_gpt_live_ai_which_knows_why() {
    comes_back("live").await;
}

async fn comes_back(model_api: &str) {
    let targets = json!([{"to": "+15550001111", "description": "sales desk"}]);
    let (h, http, id, _) = handed_over_on(targets, model_api).await;
    let heard_before = h.mock.as_ref().unwrap().log.count();
    let resp = dial_ended(&h, &http, &id, "+15550001111", "no-answer", TOKEN).await;
    assert_eq!(resp.status(), 200);
    let twiml = resp.text().await.unwrap();
    // The caller's leg is streamed to us again, its parameters saying why.
    let (url, params) = voxbridge::providers::twilio::twiml::parse_connect_stream(&twiml).expect("a stream");
    assert_eq!(url, "wss://voice.test/media/twilio");
    let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert!(p.contains(&("call_id", id.as_str())) && p.contains(&("resume", "no_answer")), "{p:?}");
    assert!(p.contains(&("transfer_to", "+15550001111")), "{p:?}");

    // Twilio opens it (signed), on the same call.
    let sig = signature::compute(TOKEN, &url, &[]);
    let mut ws = connect_media(h.addr, Some(&sig)).await.expect("the stream is taken");
    let custom: serde_json::Map<String, Value> = p.iter().map(|(k, v)| (k.to_string(), (*v).into())).collect();
    let start = json!({"event": "start", "sequenceNumber": "1", "streamSid": "MZback", "start": {
        "accountSid": "ACtest", "streamSid": "MZback", "callSid": "CA_out_1", "tracks": ["inbound"],
        "customParameters": custom, "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}});
    ws.send(start.to_string().into()).await.unwrap();
    for _ in 0..10 {
        ws.send(media_msg(&[0xFF; 160]).into()).await.unwrap();
    }
    // A new session: the conversation so far, and the AI is asked to say the transfer failed.
    let mock = h.mock.clone().unwrap();
    assert!(eventually(Duration::from_secs(10), || mock.log.count() > heard_before).await, "a new session");
    let conn = mock.log.get(mock.log.count() - 1).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || !conn.lock().unwrap().response_requests.is_empty()).await,
        "the AI is asked to speak"
    );
    let (items, requests) = {
        let log = conn.lock().unwrap();
        (log.items.clone(), log.response_requests.clone())
    };
    assert!(requests[0].contains("nobody answered") && requests[0].contains("+15550001111"), "{requests:?}");
    let earlier = match model_api {
        "live" => !items.is_empty() || conn.lock().unwrap().session_updates[0].to_string().contains("assistant"),
        _ => items.iter().any(|i| i["type"] == "message" && i["role"] == "assistant"),
    };
    assert!(earlier, "the conversation so far is in the new session: {items:?}");
    // The AI talks to the caller again.
    let mut audio = false;
    for _ in 0..200 {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(m))) if m.to_text().unwrap_or_default().contains("\"media\"") => {
                audio = true;
                break;
            }
            Ok(Some(Ok(_))) => {}
            _ => break,
        }
    }
    assert!(audio, "the caller hears the AI again");
    let c = call(&h, &http, &id).await;
    assert_eq!((c["status"].as_str(), c["transferred_to"].as_str()), (Some("in_progress"), None), "{c}");
    let history = c["history"].to_string();
    assert!(history.contains("not taken (no_answer): the caller is back with the AI"), "{history}");
    // The caller hangs up: the call ends as any call does, not `transferred`.
    drop(ws);
    status_callback(&h, &http, &id, "CA_out_1", "completed", 2).await;
    let c = call(&h, &http, &id).await;
    assert_eq!(c["status"], "completed", "{c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_desk_with_a_message_ends_the_call_transfer_failed() {
    let targets = json!([{"to": "+15550001111", "on_no_answer": "message",
                          "message": "Our team is busy; we will call you back today."}]);
    let (h, http, id, _) = handed_over(targets).await;
    let resp = dial_ended(&h, &http, &id, "+15550001111", "busy", TOKEN).await;
    assert_eq!(resp.status(), 200);
    let twiml = resp.text().await.unwrap();
    assert!(twiml.contains("<Say>Our team is busy; we will call you back today.</Say><Hangup/>"), "{twiml}");
    status_callback(&h, &http, &id, "CA_out_1", "completed", 2).await;
    let c = call(&h, &http, &id).await;
    assert_eq!((c["status"].as_str(), c["end_reason"].as_str()), (Some("failed"), Some("transfer_failed")), "{c}");
    assert_eq!(c["transferred_to"], Value::Null);
    assert!(c["history"].to_string().contains("not taken (busy): the caller heard the message"), "{}", c["history"]);
}
