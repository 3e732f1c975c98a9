//! Issue 21, tried as an attacker would, against the real server on loopback: a live call's
//! stream token re-spelt opens nothing; a stream's `start` naming another carrier call is closed
//! and makes no request to the carrier, whose REST paths only ever name the call on record.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use voxbridge::config::AudioMode;
use voxbridge::providers::twilio::signature;

const TOKEN: &str = "test-auth-token";
const SID: &str = "CA0123456789abcdef0123456789abcdef";

/// Every request the fake Twilio REST API received: (method, path).
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A fake Twilio REST API that answers everything 200 and records what was asked of it.
async fn fake_twilio() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = Arc::clone(&seen);
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let s = Arc::clone(&s);
        async move {
            s.lock().unwrap().push((req.method().to_string(), req.uri().path().to_string()));
            axum::Json(serde_json::json!({"status": "completed"}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn secured(twilio: Option<String>) -> voxbridge::config::Config {
    let mut c = config(AudioMode::G711);
    c.allow_unsigned = false;
    c.twilio_auth_token = Some(TOKEN.into());
    c.twilio_account_sid = Some("ACtest".into());
    if let Some(base) = twilio {
        c.twilio_api_base = base;
    }
    c
}

fn upgrade_signature() -> String {
    signature::compute(TOKEN, &format!("{}/media/twilio", PUBLIC_URL.replace("https://", "wss://")), &[])
}

/// A `start` for `params`, naming `call_sid` as the carrier's call.
fn start_naming(params: &[(String, String)], call_sid: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(&start_msg(&[])).unwrap();
    v["start"]["callSid"] = call_sid.into();
    v["start"]["customParameters"] =
        params.iter().map(|(k, val)| (k.clone(), serde_json::Value::from(val.clone()))).collect();
    v.to_string()
}

fn token_of(params: &[(String, String)]) -> String {
    params.iter().find(|(k, _)| k == "token").expect("a token").1.clone()
}

fn with_token(params: &[(String, String)], token: &str) -> Vec<(String, String)> {
    params.iter().map(|(k, v)| (k.clone(), if k == "token" { token.to_string() } else { v.clone() })).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_calls_token_re_spelt_opens_no_second_session() {
    let h = start(secured(None), mock_options()).await;
    let http = http_client();
    let params = voice_params(&h, &http, TOKEN, &[("CallSid", SID), ("From", "+15551112222")]).await;
    let mut live = connect_media(h.addr, Some(&upgrade_signature())).await.unwrap();
    send(&mut live, start_naming(&params, SID)).await;
    let mock = h.mock.as_ref().unwrap();
    assert!(eventually(Duration::from_secs(5), || mock.log.count() == 1).await, "the call is live");
    let token = token_of(&params);
    assert!(token.starts_with('0'), "an expiry in Unix ms has leading zeros: {token}");
    // Each decodes (with `from_str_radix`) to the very expiry and nonce of the live call's token.
    // (The MAC part is compared as text: only expiry and nonce could be re-spelt.)
    let respelt = [
        format!("{}{}", token[..32].to_ascii_uppercase(), &token[32..]),
        format!("+{}", &token[1..]),
        format!("+{}{}", token[1..32].to_ascii_uppercase(), &token[32..]),
    ];
    for (i, t) in respelt.iter().enumerate() {
        assert_ne!(t, &token);
        let mut ws = connect_media(h.addr, Some(&upgrade_signature())).await.unwrap();
        send(&mut ws, start_naming(&with_token(&params, t), SID)).await;
        assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, Some(1008), "spelling {i}: {t}");
    }
    assert_eq!(mock.log.count(), 1, "no second model session on the live call");
    let conn = mock.log.get(0).unwrap();
    assert!(conn.lock().unwrap().closed_at.is_none(), "the real call goes on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_naming_another_carrier_call_is_closed_and_only_the_call_on_record_is_hung_up() {
    let (twilio, seen) = fake_twilio().await;
    let h = start(secured(Some(twilio)), mock_options()).await;
    let http = http_client();
    let mock = h.mock.as_ref().unwrap();
    let forged = [
        "../../../../Accounts/AC1/IncomingPhoneNumbers/PN1",
        "CAffffffffffffffffffffffffffffffff", // another call's sid, well formed
    ];
    for other in forged {
        // A fresh token of a real call: the token is right, the carrier call is not.
        let params = voice_params(&h, &http, TOKEN, &[("CallSid", SID)]).await;
        let mut ws = connect_media(h.addr, Some(&upgrade_signature())).await.unwrap();
        send(&mut ws, start_naming(&params, other)).await;
        assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, Some(1008), "{other}");
    }
    assert_eq!(mock.log.count(), 0, "no model session for a stream naming another call");
    // The real stream of a call, hung up through the API: the sid on record is the one asked.
    let params = voice_params(&h, &http, TOKEN, &[("CallSid", SID)]).await;
    let call_id = params.iter().find(|(k, _)| k == "call_id").unwrap().1.clone();
    let mut ws = connect_media(h.addr, Some(&upgrade_signature())).await.unwrap();
    send(&mut ws, start_naming(&params, SID)).await;
    assert!(eventually(Duration::from_secs(5), || mock.log.count() == 1).await, "the real call is live");
    let resp = http.post(format!("http://{}/v1/calls/{call_id}/cancel", h.addr)).send().await.unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    assert!(eventually(Duration::from_secs(5), || !seen.lock().unwrap().is_empty()).await, "hung up");
    let own = format!("/2010-04-01/Accounts/ACtest/Calls/{SID}.json");
    for (method, path) in seen.lock().unwrap().iter() {
        assert_eq!((method.as_str(), path.as_str()), ("POST", own.as_str()), "nothing outside the call's own path");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_webhook_whose_call_sid_is_not_a_sid_is_refused() {
    let mut c = config(AudioMode::G711);
    c.public_url = "http://localhost:8080".into();
    let h = start(c, mock_options()).await;
    let resp = http_client()
        .post(format!("http://{}/twilio/voice", h.addr))
        .form(&[("CallSid", "../../Accounts/AC1/IncomingPhoneNumbers/PN1")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}
