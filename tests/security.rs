//! Signatures fail closed when `TWILIO_AUTH_TOKEN` is set: unsigned or forged requests get 403
//! and never cause a model connection; a stream must present its one-time token.

mod common;

use std::time::Duration;

use common::*;
use voxbridge::config::AudioMode;
use voxbridge::providers::twilio::{signature, twiml};

const TOKEN: &str = "test-auth-token";

fn secured() -> voxbridge::config::Config {
    let mut c = config(AudioMode::G711);
    c.twilio_auth_token = Some(TOKEN.into());
    c.twilio_account_sid = Some("ACtest".into());
    c
}

fn stream_url() -> String {
    format!("{}/media/twilio", PUBLIC_URL.replace("https://", "wss://"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_or_forged_upgrades_get_403_and_no_model_socket() {
    let h = start(secured(), mock_options()).await;
    assert_eq!(connect_media(h.addr, None).await.err(), Some(403));
    assert_eq!(connect_media(h.addr, Some("bm90IGl0")).await.err(), Some(403));
    let wrong_key = signature::compute("another-token", &stream_url(), &[]);
    assert_eq!(connect_media(h.addr, Some(&wrong_key)).await.err(), Some(403));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.mock.as_ref().unwrap().log.count(), 0, "no model session for an unsigned caller");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_webhook_requires_a_valid_signature() {
    let h = start(secured(), mock_options()).await;
    let http = http_client();
    let url = format!("http://{}/twilio/voice", h.addr);
    let params = [("CallSid", "CA1"), ("From", "+15551234567")];
    let resp = http.post(&url).form(&params).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_signature");
    let owned: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let sig = signature::compute(TOKEN, &format!("{PUBLIC_URL}/twilio/voice"), &owned);
    let resp = http.post(&url).header("X-Twilio-Signature", sig).form(&params).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let (stream, params) = twiml::parse_connect_stream(&resp.text().await.unwrap()).unwrap();
    assert_eq!(stream, stream_url());
    // Expiry, nonce and MAC (call::stream_token): 64 hex digits.
    assert!(params.iter().any(|(k, v)| k == "token" && v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_call_runs_end_to_end() {
    let h = start(secured(), mock_options()).await;
    let report = replay(&h, "dtmf", 4.0, Some(TOKEN)).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    assert_eq!(h.mock.as_ref().unwrap().log.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_upgrade_without_a_valid_stream_token_is_closed_before_any_model_session() {
    let h = start(secured(), mock_options()).await;
    let sig = signature::compute(TOKEN, &stream_url(), &[]);
    // Forged token.
    let mut ws = connect_media(h.addr, Some(&sig)).await.expect("signed upgrade accepted");
    send(&mut ws, start_msg(&[("call_id", "c_x"), ("token", "forged")])).await;
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, Some(1008));
    // A real token, used twice: the second use is refused.
    let http = http_client();
    let params = voice_params(&h, &http, TOKEN, &[("CallSid", "CAtest")]).await;
    let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut first = connect_media(h.addr, Some(&sig)).await.unwrap();
    send(&mut first, start_msg(&p)).await;
    assert!(
        eventually(Duration::from_secs(5), || h.mock.as_ref().unwrap().log.count() == 1).await,
        "first use bridges"
    );
    let mut second = connect_media(h.addr, Some(&sig)).await.unwrap();
    send(&mut second, start_msg(&p)).await;
    assert_eq!(close_code(&mut second, Duration::from_secs(5)).await, Some(1008));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.mock.as_ref().unwrap().log.count(), 1, "no model session for a replayed token");
}
