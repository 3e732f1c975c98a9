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

/// A server without API keys, at `public_url`.
async fn keyless(public_url: &str) -> Harness {
    let mut c = config(AudioMode::G711);
    c.api_keys = None;
    c.public_url = public_url.into();
    start(c, mock_options()).await
}

async fn create_call(h: &Harness, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new()
        .post(format!("http://{}/v1/calls", h.addr))
        .json(&serde_json::json!({"to": "+19005550100", "from": "+15557654321", "instructions": "secret"}));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or_default())
}

/// The README's tunnel recipe: a public URL, no API keys, and a tunnel that connects from
/// loopback. `/v1` must not trust that loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_api_keys_a_public_server_refuses_the_api_even_from_loopback() {
    let h = keyless(PUBLIC_URL).await;
    let (status, body) = create_call(&h, &[]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("VOXBRIDGE_API_KEYS"), "{body}");
    let list = reqwest::Client::new().get(format!("http://{}/v1/calls", h.addr)).send().await.unwrap();
    assert_eq!(list.status(), 403, "no call (nor its instructions) listed for a stranger");
    let rows: i64 = {
        let store = h.bridge.store.as_ref().unwrap();
        let filter = voxbridge::store::outbound::ListFilter::default();
        voxbridge::store::OutboundCalls::list_calls(store, &filter, None, 10).await.unwrap().len() as i64
    };
    assert_eq!(rows, 0, "nothing was created");
}

/// A local public URL and no keys: this host may use the API, but not a request a proxy or
/// tunnel on this host forwarded (it is someone else's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_api_keys_a_forwarded_request_is_not_this_host() {
    let h = keyless("http://localhost:8080").await;
    for header in ["Forwarded", "X-Forwarded-For", "X-Real-IP", "Cf-Connecting-Ip", "Fly-Client-IP"] {
        let value = if header == "Forwarded" { "for=203.0.113.7" } else { "203.0.113.7" };
        let (status, body) = create_call(&h, &[(header, value)]).await;
        assert_eq!(status, 403, "{header}: {body}");
    }
    assert_eq!(create_call(&h, &[]).await.0, 201, "this host itself");
}

/// A local public URL serves unsigned carrier requests to this host only: a forwarded one gets
/// no TwiML, so no token and no model session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_carrier_requests_in_local_mode_are_for_this_host_only() {
    let h = keyless("http://localhost:8080").await;
    let http = reqwest::Client::new();
    let voice = |forwarded: bool| {
        let mut req = http.post(format!("http://{}/twilio/voice", h.addr)).form(&[("CallSid", SID)]);
        if forwarded {
            req = req.header("X-Forwarded-For", "198.51.100.4");
        }
        req.send()
    };
    assert_eq!(voice(true).await.unwrap().status(), 403);
    assert_eq!(voice(false).await.unwrap().status(), 200);
    let forwarded = upgrade(h.addr, "/media/twilio", &[("X-Forwarded-For", "198.51.100.4")]).await;
    assert_eq!(forwarded.err().map(|(status, _)| status), Some(403), "a forwarded media upgrade");
    assert_eq!(h.mock.as_ref().unwrap().log.count(), 0);
}

/// Unsigned upgrades are served (a tunnel during development): idle strangers from many
/// addresses fill the pending cap, and a real caller still gets in — the oldest stranger is shed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_strangers_filling_the_pending_cap_do_not_keep_a_caller_out() {
    let mut c = config(AudioMode::G711);
    c.max_pending_streams = 8;
    c.max_pending_streams_per_ip = 2;
    c.start_timeout_ms = 60_000;
    let h = start(c, mock_options()).await;
    // 12 addresses × 3 sockets, as many as the caps let in.
    let mut idle = Vec::new();
    let mut refused = 0;
    for a in 2..14u8 {
        for _ in 0..3 {
            match upgrade_from(std::net::Ipv4Addr::new(127, 0, 0, a), h.addr).await {
                Ok(ws) => idle.push(ws),
                Err(status) => {
                    assert_eq!(status, 503);
                    refused += 1;
                }
            }
        }
    }
    assert_eq!(refused, 12, "the third socket of each address is over its per-address cap");
    assert_eq!(h.bridge.admission.pending(), 6, "unsigned sockets hold at most three quarters of the cap");
    // A real caller: its upgrade is admitted, its `start` proves its call.
    let (_, start) = inbound_start(&format!("http://{}", h.addr), &http_client()).await;
    let mut ws = connect_media(h.addr, None).await.expect("a caller is not refused");
    send(&mut ws, start).await;
    let mock = h.mock.as_ref().unwrap();
    assert!(eventually(Duration::from_secs(5), || mock.log.count() == 1).await, "the caller reached the AI");
    // The oldest strangers were shed: their sockets are closed.
    let shed = close_code(&mut idle[0], Duration::from_secs(5)).await;
    assert!(shed.is_some(), "the oldest stranger's socket was closed");
}

/// A media upgrade from the loopback address `from` (127.0.0.0/8 is all this host's).
async fn upgrade_from(from: std::net::Ipv4Addr, to: std::net::SocketAddr) -> Result<Ws, u16> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((from, 0).into()).unwrap();
    let stream = socket.connect(to).await.unwrap();
    match tokio_tungstenite::client_async(
        format!("ws://{to}/media/twilio"),
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
    )
    .await
    {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

/// On Fly with unsigned upgrades served (a tunnel during development), nothing is proven at the
/// upgrade: a stranger's upgrade naming another machine earns no `fly-replay` there, it is
/// served (or refused) where it lands like any unproven socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_upgrade_is_never_steered_to_another_machine() {
    let mut c = config(AudioMode::G711);
    c.fly_machine_id = "3d8d9e2b7e1289".into();
    let h = start(c, mock_options()).await;
    match upgrade(h.addr, "/media/twilio/91857d2f653e83", &[]).await {
        Ok(_) => {}
        Err((status, headers)) => panic!("refused {status} with {headers:?}: no replay for an unproven upgrade"),
    }
}
