//! Secure by default (issue 8): a public server with no carrier secret refuses unsigned carrier
//! requests unless the operator opens them on purpose; a stream gets a call only with the call's
//! one-time token; sockets that have not proven a call are capped apart from live calls and may
//! not make the server hold more than a few KiB; `/v1` without keys refuses browser requests.
//! Real server, real sockets on loopback (strangers connect from 127.0.0.2).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use voxbridge::config::AudioMode;

/// What an operator gets who sets a public URL and an OpenAI key but no carrier secrets.
fn public_unsigned() -> voxbridge::config::Config {
    let mut c = config(AudioMode::G711);
    c.allow_unsigned = false;
    c
}

/// Opens `/media/twilio` from the loopback address `from` (a different "peer" than 127.0.0.1).
async fn connect_media_from(addr: SocketAddr, from: &str) -> Result<Ws, u16> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let req = format!("ws://{addr}/media/twilio").into_client_request().unwrap();
    match tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(tcp)).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("unexpected connect error: {e}"),
    }
}

async fn rows(h: &Harness, sql: &'static str) -> i64 {
    if h.database_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&h.database_url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap()
    } else {
        let pool = sqlx::PgPool::connect(&h.database_url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_server_without_carrier_secrets_refuses_unsigned_requests_and_streams() {
    let h = start(public_unsigned(), mock_options()).await;
    let http = http_client();
    let base = format!("http://{}", h.addr);
    let voice = http.post(format!("{base}/twilio/voice")).form(&[("CallSid", "CA1"), ("From", "+15551234567")]);
    let resp = voice.send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "signature_required");
    assert!(body["error"]["message"].as_str().unwrap().contains("TWILIO_AUTH_TOKEN"), "{body}");
    for path in ["/twiml/c_any", "/webhooks/twilio/status?call_id=c_any", "/webhooks/telnyx"] {
        let resp = http.post(format!("{base}{path}")).body("{}").send().await.unwrap();
        assert_eq!(resp.status(), 403, "{path}");
    }
    assert_eq!(connect_media(h.addr, None).await.err(), Some(403), "no unsigned media stream");
    // Webhooks are counted by provider and result.
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    for provider in ["twilio", "telnyx"] {
        let line = format!("voxbridge_webhooks_total{{provider=\"{provider}\",result=\"refused\"}} ");
        let n: f64 = metrics.lines().find_map(|l| l.strip_prefix(&line)).unwrap_or("0").trim().parse().unwrap();
        assert!(n >= 1.0, "{line}: {n}");
    }
    assert_eq!(rows(&h, "SELECT COUNT(*) FROM calls").await, 0, "a refused request writes no row");
    assert_eq!(h.mock.as_ref().unwrap().log.count(), 0, "and opens no model session");
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert!(!ready.text().await.unwrap().contains("ALLOW_UNSIGNED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowing_unsigned_requests_on_purpose_serves_them_and_says_so_on_readyz() {
    let mut c = public_unsigned();
    c.allow_unsigned = true;
    let h = start(c, mock_options()).await;
    let ready = reqwest::get(format!("http://{}/readyz", h.addr)).await.unwrap();
    assert_eq!(ready.status(), 200);
    assert!(ready.text().await.unwrap().contains("VOXBRIDGE_ALLOW_UNSIGNED=true"));
    let report = replay(&h, "dtmf", 8.0, None).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    assert_eq!(h.mock.as_ref().unwrap().log.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_public_url_serves_unsigned_requests_without_being_told() {
    let mut c = public_unsigned();
    c.public_url = "http://localhost:8080".into();
    let h = start(c, mock_options()).await;
    let resp =
        http_client().post(format!("http://{}/twilio/voice", h.addr)).form(&[("CallSid", "CA1")]).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ready = reqwest::get(format!("http://{}/readyz", h.addr)).await.unwrap().text().await.unwrap();
    assert!(!ready.contains("ALLOW_UNSIGNED"), "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_naming_a_queued_calls_id_gets_nothing_of_it() {
    // Unsigned requests allowed: the stream token is what protects the call.
    let h = start(config(AudioMode::G711), mock_options()).await;
    let http = http_client();
    let (status, call) = {
        let resp = http
            .post(format!("http://{}/v1/calls", h.addr))
            .json(&json!({"to": "+15551230000", "from": "+15557654321", "instructions": "SECRET: the customer owes $4,210."}))
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 201, "{call}");
    let id = call["id"].as_str().unwrap();
    for params in [vec![("call_id", id)], vec![("call_id", id), ("token", "00000000000000000000000000000000")]] {
        let mut ws = connect_media(h.addr, None).await.expect("upgrade accepted");
        send(&mut ws, start_msg(&params)).await;
        assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, Some(1008), "{params:?}");
    }
    assert_eq!(h.mock.as_ref().unwrap().log.count(), 0, "no model session, so no instructions sent anywhere");
    assert_eq!(rows(&h, "SELECT COUNT(*) FROM transcripts").await, 0, "nothing written into that call");
    let view: Value = http.get(format!("http://{}/v1/calls/{id}", h.addr)).send().await.unwrap().json().await.unwrap();
    assert_eq!(view["status"], "queued", "the call is untouched: {view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_that_never_start_hold_no_live_slot_and_are_capped_per_peer() {
    let mut c = config(AudioMode::G711);
    c.max_live_calls = 2;
    c.max_pending_streams_per_ip = 4;
    c.start_timeout_ms = 30_000;
    let h = start(c, mock_options()).await;
    // A stranger on 127.0.0.2 opens upgrades and never sends `start`.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(connect_media_from(h.addr, "127.0.0.2").await.expect("within the per-peer cap"));
    }
    assert_eq!(connect_media_from(h.addr, "127.0.0.2").await.err(), Some(503), "the fifth from that peer");
    assert_eq!(h.bridge.admission.live(), 0, "waiting sockets hold no live-call slot");
    assert!(eventually(Duration::from_secs(2), || h.bridge.admission.pending() == 4).await);
    let metrics = reqwest::get(format!("http://{}/metrics", h.addr)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"voxbridge_calls_refused_total{reason="pending_per_peer"} 1"#), "{metrics}");
    // Real callers (from 127.0.0.1) still get both live slots.
    let (a, b) = tokio::join!(replay(&h, "dtmf", 8.0, None), replay(&h, "dtmf", 8.0, None));
    assert_eq!((a.failed_calls, b.failed_calls), (0, 0), "{:?} {:?}", a.errors, b.errors);
    assert_eq!(h.mock.as_ref().unwrap().log.count(), 2);
    drop(idle);
    assert!(eventually(Duration::from_secs(5), || h.bridge.admission.pending() == 0).await, "places free on close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proven_stream_with_no_live_slot_left_is_closed_with_1013() {
    let mut c = config(AudioMode::G711);
    c.max_live_calls = 1;
    let h = start(c, mock_options()).await;
    // Both upgrade while the server is empty; the first to prove its call takes the slot.
    let mut first = connect_media(h.addr, None).await.unwrap();
    let mut second = connect_media(h.addr, None).await.unwrap();
    send(&mut first, start_for(&h, "c_first")).await;
    assert!(eventually(Duration::from_secs(5), || h.bridge.admission.live() == 1).await);
    send(&mut second, start_for(&h, "c_second")).await;
    assert_eq!(close_code(&mut second, Duration::from_secs(5)).await, Some(1013));
    assert_eq!(h.bridge.admission.live(), 1, "the first call keeps its slot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_before_start_is_bounded() {
    let h = start(config(AudioMode::G711), mock_options()).await;
    let mut ws = connect_media(h.addr, None).await.unwrap();
    // Each message is within the 64 KiB message limit; together they pass the pre-start bound.
    let junk = json!({"event": "noise", "pad": "x".repeat(3000)}).to_string();
    for _ in 0..3 {
        if ws.send(Message::Text(junk.clone().into())).await.is_err() {
            break;
        }
    }
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, Some(1008));
    assert_eq!(h.mock.as_ref().unwrap().log.count(), 0);
    assert!(eventually(Duration::from_secs(2), || h.bridge.admission.pending() == 0).await);
    // Twilio's real opening (`connected`, then `start`) is far below it.
    let report = replay(&h, "dtmf", 8.0, None).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_frame_that_is_not_utf8_closes_with_1007() {
    let h = start(config(AudioMode::G711), mock_options()).await;
    for started in [false, true] {
        let mut ws = connect_media(h.addr, None).await.unwrap();
        if started {
            send(&mut ws, start_for(&h, "c_utf8")).await;
        }
        let bad = Frame::message(vec![0x7b, 0xff, 0xfe, 0x7d], OpCode::Data(Data::Text), true);
        ws.send(Message::Frame(bad)).await.unwrap();
        assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, Some(1007), "started: {started}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_api_keys_v1_refuses_browser_pages_and_non_json_bodies() {
    // Without keys the API serves this host only, and only while the public URL is local too.
    let mut c = config(AudioMode::G711);
    c.api_keys = None;
    c.public_url = "http://localhost:8080".into();
    let h = start(c, mock_options()).await;
    let http = http_client();
    let url = format!("http://{}/v1/calls", h.addr);
    let body = json!({"to": "+15551230000", "from": "+15557654321"}).to_string();
    // A page's cross-site "simple" request: text/plain, no preflight.
    let plain = http.post(&url).header("content-type", "text/plain").body(body.clone()).send().await.unwrap();
    assert_eq!(plain.status(), 415);
    assert_eq!(plain.json::<Value>().await.unwrap()["error"]["code"], "unsupported_media_type");
    let from_page = http
        .post(&url)
        .header("origin", "http://localhost:3000")
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(from_page.status(), 403);
    let list = http.get(&url).header("origin", "http://evil.example").send().await.unwrap();
    assert_eq!(list.status(), 403, "reads too: a page must not read transcripts");
    assert_eq!(rows(&h, "SELECT COUNT(*) FROM calls").await, 0, "no call was placed");
    // The app's own request (JSON, no Origin) works.
    let ok = http.post(&url).header("content-type", "application/json").body(body).send().await.unwrap();
    assert_eq!(ok.status(), 201);
    // With keys configured, a keyed request is the app's own whatever it carries.
    let mut c = config(AudioMode::G711);
    c.api_keys = Some("k1".into());
    let keyed = start(c, mock_options()).await;
    let resp = http
        .get(format!("http://{}/v1/calls", keyed.addr))
        .header("origin", "https://dashboard.example")
        .bearer_auth("k1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}
