//! `press_digits` (issue 25): offered when the call or its agent sets `dtmf_out`; on Telnyx the
//! keys are the `send_dtmf` command the fake Call Control API receives, on Twilio tones played in
//! the media stream (their content is checked by Goertzel in `call::core`'s unit test; here, end
//! to end, that they were pressed and said in the transcript).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use voxbridge::config::AudioMode;
use voxbridge::providers::telnyx::rest::StreamCodec;

fn pressing() -> voxbridge::mock_realtime::MockOptions {
    voxbridge::mock_realtime::MockOptions {
        call_tool_at: Some((1, "press_digits".into(), r#"{"digits": "1w2"}"#.into())),
        ..mock_options()
    }
}

fn offered(h: &Harness) -> Vec<String> {
    let conn = h.mock.as_ref().unwrap().log.get(0).unwrap();
    let start = conn.lock().unwrap().session_updates[0].clone();
    start["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbound_telnyx_call_presses_keys_through_send_dtmf() {
    let (api, c) = telnyx_config(AudioMode::G711, StreamCodec::Pcmu).await;
    let h = start(c, pressing()).await;
    let http = http_client();
    let resp = http
        .post(format!("http://{}/v1/calls", h.addr))
        .json(&json!({"to": "+15551230001", "dtmf_out": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let call: Value = resp.json().await.unwrap();
    assert_eq!(call["dtmf_out"], true);
    let player = voxbridge::replay::telnyx::TelnyxReplay {
        api: api.clone(),
        signing_key: Some(TELNYX_SECRET),
        shuffle: false,
        dialed: true,
    };
    let report = replay_telnyx(&h, "greeting-and-answer", 4.0, player).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    assert!(offered(&h).iter().any(|t| t == "press_digits"), "{:?}", offered(&h));
    let dtmf = api.wait_for(Duration::from_secs(5), |c| c.action == "send_dtmf").await.expect("send_dtmf sent");
    assert_eq!(dtmf.body["digits"], "1w2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twilio_call_whose_agent_sets_dtmf_out_presses_keys_in_band() {
    let h = start(config(AudioMode::G711), pressing()).await;
    let http = http_client();
    let base = format!("http://{}", h.addr);
    let agent: Value = http
        .post(format!("{base}/v1/agents"))
        .json(&json!({"name": "Menu walker", "dtmf_out": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(agent["dtmf_out"], true);
    let put = http.put(format!("{base}/v1/numbers/+15557654321")).json(&json!({"agent_id": agent["id"]})).send().await;
    assert_eq!(put.unwrap().status(), 200);
    let report = replay(&h, "greeting-and-answer", 4.0, None).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    assert!(offered(&h).iter().any(|t| t == "press_digits"));
    let list: Value = http.get(format!("{base}/v1/calls")).send().await.unwrap().json().await.unwrap();
    let id = list["calls"][0]["id"].as_str().unwrap();
    let transcript: Value =
        http.get(format!("{base}/v1/calls/{id}/transcript")).send().await.unwrap().json().await.unwrap();
    let pressed = transcript["entries"].as_array().unwrap().iter().any(|e| e["text"] == "[pressed 1w2]");
    assert!(pressed, "{transcript}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_dtmf_out_no_keys_can_be_pressed() {
    let h = start(config(AudioMode::G711), mock_options()).await;
    assert_eq!(replay(&h, "greeting-and-answer", 4.0, None).await.failed_calls, 0);
    assert!(!offered(&h).iter().any(|t| t == "press_digits"));
}
