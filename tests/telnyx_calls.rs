//! Telnyx end to end against a fake Telnyx (Call Control API on loopback, webhooks signed with a
//! real Ed25519 key pair, the replay client as the media side): inbound and outbound calls per
//! codec with the audio the model receives checked, reordering, the one-time stream token,
//! hang-up by command, webhook signatures, duplicates and disorder, hang-up causes and AMD.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use voxbridge::config::AudioMode;
use voxbridge::media::{Codec, SampleRate, StreamFormat};
use voxbridge::providers::telnyx::media::Wire;
use voxbridge::providers::telnyx::rest::{StreamCodec, call_id_of, client_state};
use voxbridge::providers::telnyx::signature::{public_key_base64, sign};
use voxbridge::replay::telnyx::TelnyxReplay;
use voxbridge::replay::telnyx_api::{Command, FakeTelnyx};

const SECRET: [u8; 32] = TELNYX_SECRET;
const WAIT: Duration = Duration::from_secs(5);

struct T {
    h: Harness,
    api: FakeTelnyx,
    http: reqwest::Client,
}

async fn setup(mode: AudioMode, codec: StreamCodec) -> T {
    setup_with(mode, codec, |_| {}).await
}

async fn setup_with(mode: AudioMode, codec: StreamCodec, tweak: impl FnOnce(&mut voxbridge::config::Config)) -> T {
    let (api, mut c) = telnyx_config(mode, codec).await;
    tweak(&mut c);
    let h = start(c, mock_options()).await;
    T { h, api, http: http_client() }
}

/// [`setup`] with a model that behaves as `mock` says.
async fn setup_mock(mode: AudioMode, codec: StreamCodec, mock: voxbridge::mock_realtime::MockOptions) -> T {
    let (api, c) = telnyx_config(mode, codec).await;
    let h = start(c, mock).await;
    T { h, api, http: http_client() }
}

fn player(api: &FakeTelnyx, dialed: bool, shuffle: bool) -> TelnyxReplay {
    TelnyxReplay { api: api.clone(), signing_key: Some(SECRET), shuffle, dialed }
}

/// Posts a webhook with this event id, signed by `key` with the timestamp `skew_s` from now.
async fn webhook_as(t: &T, id: &str, event_type: &str, payload: Value, key: Option<&[u8; 32]>, skew_s: i64) -> u16 {
    signed_webhook(&t.http, t.h.addr, id, event_type, payload, key, skew_s).await
}

/// A webhook signed with the fake Telnyx's key, to the server at `addr`.
async fn webhook_at(
    http: &reqwest::Client,
    addr: std::net::SocketAddr,
    id: &str,
    event_type: &str,
    payload: Value,
) -> u16 {
    signed_webhook(http, addr, id, event_type, payload, Some(&SECRET), 0).await
}

async fn signed_webhook(
    http: &reqwest::Client,
    addr: std::net::SocketAddr,
    id: &str,
    event_type: &str,
    payload: Value,
    key: Option<&[u8; 32]>,
    skew_s: i64,
) -> u16 {
    let body = voxbridge::replay::telnyx::webhook_body(id, event_type, payload);
    let mut req = http.post(format!("http://{addr}/webhooks/telnyx")).body(body.clone());
    if let Some(key) = key {
        let ts = (jiff::Timestamp::now().as_second() + skew_s).to_string();
        req = req.header("telnyx-timestamp", &ts).header("telnyx-signature-ed25519", sign(key, &ts, body.as_bytes()));
    }
    req.send().await.unwrap().status().as_u16()
}

async fn webhook(t: &T, id: &str, event_type: &str, payload: Value) -> u16 {
    webhook_as(t, id, event_type, payload, Some(&SECRET), 0).await
}

/// A payload about outbound call `call_id` on carrier call `ccid`.
fn about(call_id: &str, ccid: &str, extra: Value) -> Value {
    let mut p = json!({"call_control_id": ccid, "client_state": client_state(call_id), "from": "+15557650002",
        "to": "+15551230001"});
    p.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    p
}

async fn create(t: &T, body: Value) -> String {
    let resp = t.http.post(format!("http://{}/v1/calls", t.h.addr)).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
}

async fn call(t: &T, id: &str) -> Value {
    t.http.get(format!("http://{}/v1/calls/{id}", t.h.addr)).send().await.unwrap().json().await.unwrap()
}

fn history(c: &Value) -> Vec<String> {
    c["history"].as_array().unwrap().iter().map(|e| e["status"].as_str().unwrap().to_string()).collect()
}

async fn nth_dial(t: &T, n: usize) -> Command {
    let ok = eventually(WAIT, || t.api.commands().iter().filter(|c| c.action == "dial").count() >= n).await;
    assert!(ok, "dial {n} was sent");
    t.api.commands().into_iter().filter(|c| c.action == "dial").nth(n - 1).unwrap()
}

async fn hangup_for(t: &T, ccid: &str) -> Option<Command> {
    t.api.wait_for(WAIT, |c| c.action == "hangup" && c.call_control_id == ccid).await
}

fn model_format(t: &T) -> String {
    let conn = t.h.mock.as_ref().unwrap().log.get(0).unwrap();
    let conn = conn.lock().unwrap();
    conn.session_updates[0]["audio"]["input"]["format"]["type"].as_str().unwrap().to_string()
}

/// An outbound call dialled and answered, its dial command checked for the configured codec both
/// ways; the replay then plays the callee's side.
async fn dialled_and_answered(t: &T, codec: &str, rate: u64) -> Command {
    let id = create(t, json!({"to": "+15551230001"})).await;
    let dial = nth_dial(t, 1).await;
    let b = &dial.body;
    assert_eq!(
        (b["stream_codec"].as_str(), b["stream_bidirectional_codec"].as_str()),
        (Some(codec), Some(codec)),
        "{b}"
    );
    assert_eq!(b["stream_bidirectional_sampling_rate"].as_u64(), Some(rate));
    assert_eq!(webhook(t, "ans", "call.answered", about(&id, &dial.call_control_id, json!({}))).await, 204);
    dial
}

async fn model_audio(t: &T) -> Vec<u8> {
    model_audio_in(&t.h, 0).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_pcmu_call_arrives_bit_exact_through_shuffled_frames_and_is_hung_up_by_command() {
    let t = setup(AudioMode::G711, StreamCodec::Pcmu).await;
    let report = replay_telnyx(&t.h, "greeting-and-answer", 4.0, player(&t.api, false, true)).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    // Answered with a bidirectional RTP stream in the configured codec, bearer-authenticated.
    let answer = t.api.commands().into_iter().find(|c| c.action == "answer").expect("answered");
    assert_eq!(answer.authorization.as_deref(), Some("Bearer KEYtest"));
    assert_eq!(answer.body["stream_bidirectional_mode"], "rtp");
    assert!(
        answer.body.get("stream_bidirectional_sampling_rate").is_none(),
        "Telnyx's answer command has no sampling rate (dial and streaming_start only)"
    );
    assert_eq!(
        (answer.body["stream_codec"].as_str(), answer.body["stream_track"].as_str()),
        (Some("PCMU"), Some("inbound_track"))
    );
    let url = answer.body["stream_url"].as_str().unwrap();
    assert!(url.starts_with("wss://voice.test/media/telnyx?call_id=c_") && url.contains("&token="), "{url}");
    // PCMU passes straight through: every byte, in order, although pairs arrived swapped.
    assert_eq!(model_format(&t), "audio/pcmu");
    assert_same(
        &model_audio(&t).await,
        &telnyx_caller_audio("greeting-and-answer", Wire::Samples(StreamFormat::PCMU_8K)),
    );
    let call = &report.per_call[0];
    assert!(call.audio_received_ms > 3000.0, "caller heard {} ms", call.audio_received_ms);
    assert!(call.marks_received > 0 && call.marks_echoed == call.marks_received);
    // Closing the stream does not end a Telnyx call: the bridge sent the hang-up command.
    let hangup = hangup_for(&t, &answer.call_control_id).await.expect("hang-up command sent");
    assert!(hangup.body["command_id"].as_str().is_some_and(|c| !c.is_empty()));
    // The inbound call was recorded and ended by the replayed call.hangup.
    let list: Value = t.http.get(format!("http://{}/v1/calls", t.h.addr)).send().await.unwrap().json().await.unwrap();
    let c = &list["calls"][0];
    assert_eq!((c["provider"].as_str(), c["direction"].as_str()), (Some("telnyx"), Some("inbound")));
    assert_eq!(call_status(&t, c["id"].as_str().unwrap()).await, "completed");
}

/// Byte-for-byte equality, reported by length and first difference (not a megabyte dump).
fn assert_same(got: &[u8], want: &[u8]) {
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    assert!(got == want, "model got {} bytes, caller sent {}; first difference at {first:?}", got.len(), want.len());
}

async fn wait_status(t: &T, id: &str, want: &str) -> bool {
    for _ in 0..100 {
        if call_status(t, id).await == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn call_status(t: &T, id: &str) -> String {
    call(t, id).await["status"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_pcma_passes_straight_through_as_audio_pcma() {
    let t = setup(AudioMode::G711, StreamCodec::Pcma).await;
    dialled_and_answered(&t, "PCMA", 8000).await;
    let report = replay_telnyx(&t.h, "greeting-and-answer", 4.0, player(&t.api, true, false)).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    assert_eq!(model_format(&t), "audio/pcma");
    let sent = telnyx_caller_audio("greeting-and-answer", Wire::Samples(StreamFormat::PCMA_8K));
    assert!(!sent.is_empty());
    assert_same(&model_audio(&t).await, &sent);
    assert!(report.per_call[0].audio_received_ms > 3000.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbound_gpt_live_call_passes_pcma_straight_through_both_ways() {
    let (api, mut c) = telnyx_config(AudioMode::G711, StreamCodec::Pcma).await;
    c.model_api = voxbridge::config::ModelApiArg::Live;
    let h = start(c, voxbridge::mock_realtime::MockOptions { live_speed: 4.0, ..mock_options() }).await;
    let t = T { h, api, http: http_client() };
    dialled_and_answered(&t, "PCMA", 8000).await;
    let report = replay_telnyx(&t.h, "greeting-and-answer", 4.0, player(&t.api, true, false)).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    let conn = t.h.mock.as_ref().unwrap().log.get(0).unwrap();
    let start = conn.lock().unwrap().session_updates[0].clone();
    assert_eq!(start["audio"]["format"], json!({"type": "audio/pcma", "rate": 8000}), "a GPT-Live session: {start}");
    let sent = telnyx_caller_audio("greeting-and-answer", Wire::Samples(StreamFormat::PCMA_8K));
    assert_same(&model_audio(&t).await, &sent);
    assert!(report.per_call[0].audio_received_ms > 1500.0, "greeting and answer heard: {:?}", report.per_call[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_l16_at_16khz_is_decoded_and_resampled_for_the_model_with_high_snr() {
    let t = setup(AudioMode::G711, StreamCodec::L16).await;
    dialled_and_answered(&t, "L16", 16000).await;
    let report = replay_telnyx(&t.h, "greeting-and-answer", 4.0, player(&t.api, true, false)).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    // Even in g711 mode, L16 is not G.711: it is decoded and resampled to 24 kHz PCM.
    assert_eq!(model_format(&t), "audio/pcm");
    let l16 = StreamFormat { codec: Codec::L16, rate: SampleRate::HZ_16000 };
    let sent = be_samples(&telnyx_caller_audio("greeting-and-answer", Wire::Samples(l16)));
    let got = le_samples(&model_audio(&t).await);
    assert!(
        got.len() * 2 >= sent.len() * 3 - 960,
        "24 kHz is 1.5 samples per 16 kHz sample: {} vs {}",
        got.len(),
        sent.len()
    );
    let (lag, snr) = snr_16k_vs_24k(&sent, &got);
    eprintln!("L16 16 kHz → 24 kHz: lag {lag} samples at 24 kHz, telephone-band SNR {snr:.1} dB");
    assert!(snr >= 35.0, "SNR {snr:.1} dB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbound_call_is_dialled_streamed_and_completed() {
    let t = setup(AudioMode::G711, StreamCodec::Pcmu).await;
    let id = create(&t, json!({"to": "+15551230001", "instructions": "You are Ada.", "provider": "telnyx"})).await;
    let dial = nth_dial(&t, 1).await;
    let b = &dial.body;
    assert_eq!(dial.authorization.as_deref(), Some("Bearer KEYtest"));
    assert_eq!(
        (b["connection_id"].as_str(), b["to"].as_str(), b["from"].as_str()),
        (Some("conn-1"), Some("+15551230001"), Some("+15557650002"))
    );
    assert_eq!(b["webhook_url"], "https://voice.test/webhooks/telnyx");
    assert_eq!(call_id_of(b["client_state"].as_str().unwrap()).as_deref(), Some(id.as_str()));
    assert_eq!(
        (b["stream_bidirectional_mode"].as_str(), b["stream_bidirectional_codec"].as_str()),
        (Some("rtp"), Some("PCMU"))
    );
    assert_eq!(b["timeout_secs"], 30);
    assert_eq!(b["command_id"], format!("dial-{id}-1"));
    assert!(b["stream_url"].as_str().unwrap().contains(&format!("call_id={id}&token=")));
    assert!(b.get("answering_machine_detection").is_none());
    let ccid = dial.call_control_id.clone();
    assert_eq!(webhook(&t, "e1", "call.initiated", about(&id, &ccid, json!({"direction": "outgoing"}))).await, 204);
    assert_eq!(webhook(&t, "e2", "call.answered", about(&id, &ccid, json!({}))).await, 204);
    let report = replay_telnyx(&t.h, "greeting-and-answer", 4.0, player(&t.api, true, false)).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    assert!(hangup_for(&t, &ccid).await.is_some(), "the bridge hung up by command");
    let c = call(&t, &id).await;
    assert_eq!(c["status"], "completed", "{c}");
    assert_eq!(history(&c), ["queued", "dialing", "ringing", "in_progress", "completed"]);
    let conn = t.h.mock.as_ref().unwrap().log.get(0).unwrap();
    assert_eq!(conn.lock().unwrap().session_updates[0]["instructions"], "You are Ada.");
    let transcript: Value =
        t.http.get(format!("http://{}/v1/calls/{id}/transcript", t.h.addr)).send().await.unwrap().json().await.unwrap();
    assert!(transcript["entries"].as_array().is_some_and(|e| !e.is_empty()), "{transcript}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_needs_an_unused_token_for_its_call_and_nothing_reaches_the_model_otherwise() {
    // Without ring-time pre-warm, every model session counted here is one a stream opened.
    let t = setup_with(AudioMode::G711, StreamCodec::Pcmu, |c| c.prewarm = false).await;
    let id = create(&t, json!({"to": "+15551230001"})).await;
    let url = nth_dial(&t, 1).await.body["stream_url"].as_str().unwrap().to_string();
    let query = url.split_once('?').unwrap().1.to_string();
    let token = query.split("token=").nth(1).unwrap().to_string();
    let connect = |q: String| {
        let addr = t.h.addr;
        async move {
            match tokio_tungstenite::connect_async(format!("ws://{addr}/media/telnyx?{q}")).await {
                Ok((ws, _)) => Ok(ws),
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
                Err(e) => panic!("{e}"),
            }
        }
    };
    assert_eq!(connect(String::new()).await.err(), Some(403), "no token");
    assert_eq!(connect(format!("call_id={id}&token=0123")).await.err(), Some(403), "wrong token");
    assert_eq!(connect(format!("call_id=c_other&token={token}")).await.err(), Some(403), "token of another call");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(t.h.mock.as_ref().unwrap().log.count(), 0, "no model session was opened");
    // The token is signed for its call (ADR 0013): the misuse did not spend it; it works once.
    let first = connect(query.clone()).await;
    assert!(first.is_ok(), "its own call's stream is accepted");
    drop(first);
    assert_eq!(connect(query.clone()).await.err(), Some(403), "replayed token");
    // A fresh token (the next dial's) is accepted.
    let id2 = create(&t, json!({"to": "+15551230002"})).await;
    let url2 = nth_dial(&t, 2).await.body["stream_url"].as_str().unwrap().to_string();
    assert!(url2.contains(&id2));
    assert!(connect(url2.split_once('?').unwrap().1.to_string()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_must_be_signed_fresh_and_by_the_configured_key() {
    let t = setup(AudioMode::G711, StreamCodec::Pcmu).await;
    let id = create(&t, json!({"to": "+15551230001"})).await;
    let ccid = nth_dial(&t, 1).await.call_control_id;
    let answered = || about(&id, &ccid, json!({}));
    assert_eq!(webhook_as(&t, "s1", "call.answered", answered(), None, 0).await, 403, "unsigned");
    assert_eq!(webhook_as(&t, "s2", "call.answered", answered(), Some(&[0x24; 32]), 0).await, 403, "other key");
    assert_eq!(webhook_as(&t, "s3", "call.answered", answered(), Some(&SECRET), -301).await, 403, "stale");
    assert_eq!(webhook_as(&t, "s4", "call.answered", answered(), Some(&SECRET), 301).await, 403, "future");
    assert_eq!(call_status(&t, &id).await, "dialing", "nothing was applied");
    assert_eq!(webhook_as(&t, "s5", "call.answered", answered(), Some(&SECRET), -299).await, 204);
    assert_eq!(call_status(&t, &id).await, "in_progress");
    // Signed but not JSON: a clear 400.
    let ts = jiff::Timestamp::now().as_second().to_string();
    let resp = t
        .http
        .post(format!("http://{}/webhooks/telnyx", t.h.addr))
        .header("telnyx-timestamp", &ts)
        .header("telnyx-signature-ed25519", sign(&SECRET, &ts, b"nope"))
        .body("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // The clocks' skew is watched (reliability.md row 18).
    let metrics = t.http.get(format!("http://{}/metrics", t.h.addr)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("voxbridge_webhook_clock_skew_seconds{provider=\"telnyx\"}"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_out_of_order_webhooks_never_move_a_call_backwards() {
    let t = setup(AudioMode::G711, StreamCodec::Pcmu).await;
    let id = create(&t, json!({"to": "+15551230001"})).await;
    let ccid = nth_dial(&t, 1).await.call_control_id;
    let hangup = about(&id, &ccid, json!({"hangup_cause": "normal_clearing", "sip_hangup_cause": "200"}));
    // Delivered shuffled (answered before initiated, the hang-up twice, the rest late).
    assert_eq!(webhook(&t, "w2", "call.answered", about(&id, &ccid, json!({}))).await, 204);
    assert_eq!(webhook(&t, "w3", "call.hangup", hangup.clone()).await, 204);
    assert_eq!(webhook(&t, "w3", "call.hangup", hangup).await, 204);
    assert_eq!(webhook(&t, "w1", "call.initiated", about(&id, &ccid, json!({"direction": "outgoing"}))).await, 204);
    assert_eq!(webhook(&t, "w2", "call.answered", about(&id, &ccid, json!({}))).await, 204);
    let c = call(&t, &id).await;
    assert_eq!(c["status"], "completed");
    assert_eq!(history(&c), ["queued", "dialing", "in_progress", "completed"]);
    // Events about calls that are not ours are acknowledged and ignored.
    assert_eq!(webhook(&t, "w9", "call.answered", json!({"call_control_id": "v3:someone-else"})).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_is_retried_after_the_backoff_and_no_answer_ends_the_last_attempt() {
    let t = setup(AudioMode::G711, StreamCodec::Pcmu).await;
    let id = create(&t, json!({"to": "+15551230001", "max_attempts": 2})).await;
    let first = nth_dial(&t, 1).await.call_control_id;
    let busy = about(&id, &first, json!({"hangup_cause": "user_busy", "sip_hangup_cause": "486"}));
    assert_eq!(webhook(&t, "b1", "call.hangup", busy).await, 204);
    assert_eq!(call_status(&t, &id).await, "queued");
    let second = nth_dial(&t, 2).await;
    assert_eq!(second.body["command_id"], format!("dial-{id}-2"), "a new command id per attempt");
    // A late event from the first attempt changes nothing.
    assert_eq!(webhook(&t, "b2", "call.answered", about(&id, &first, json!({}))).await, 204);
    assert_eq!(call_status(&t, &id).await, "dialing");
    let timeout = about(&id, &second.call_control_id, json!({"hangup_cause": "timeout"}));
    assert_eq!(webhook(&t, "b3", "call.hangup", timeout).await, 204);
    let c = call(&t, &id).await;
    assert_eq!((c["status"].as_str(), c["attempts"].as_i64()), (Some("no_answer"), Some(2)));
    // Other causes are final at once.
    let id = create(&t, json!({"to": "+15551230002", "max_attempts": 3})).await;
    let ccid = nth_dial(&t, 3).await.call_control_id;
    let gone = about(&id, &ccid, json!({"hangup_cause": "not_found", "sip_hangup_cause": "404"}));
    assert_eq!(webhook(&t, "b4", "call.hangup", gone).await, 204);
    let c = call(&t, &id).await;
    assert_eq!((c["status"].as_str(), c["attempts"].as_i64()), (Some("failed"), Some(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_errors_are_final_on_4xx_and_retried_on_5xx() {
    let t = setup(AudioMode::G711, StreamCodec::Pcmu).await;
    t.api.fail_next(422, "10015");
    let id = create(&t, json!({"to": "+15551230001", "max_attempts": 3})).await;
    nth_dial(&t, 1).await;
    let ok = wait_status(&t, &id, "failed").await;
    assert!(ok, "a 4xx dial is final");
    assert!(call(&t, &id).await["last_error"].as_str().unwrap().contains("10015"));
    t.api.fail_next(503, "90000");
    let id = create(&t, json!({"to": "+15551230002", "max_attempts": 3})).await;
    nth_dial(&t, 3).await; // the 503, then the retry after the backoff
    let c = call(&t, &id).await;
    assert_eq!((c["status"].as_str(), c["attempts"].as_i64()), (Some("dialing"), Some(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_detection_hangs_up_on_machines_and_faxes_and_lets_humans_talk() {
    let t = setup(AudioMode::G711, StreamCodec::Pcmu).await;
    let answered_by = |n: usize, result: &'static str, message: Option<&'static str>| {
        let t = &t;
        async move {
            let mut body = json!({"to": format!("+1555123000{n}"), "machine_detection": true});
            if let Some(m) = message {
                body["voicemail_message"] = m.into();
            }
            let id = create(t, body).await;
            let dial = nth_dial(t, n).await;
            assert_eq!(dial.body["answering_machine_detection"], "detect_beep");
            let ccid = dial.call_control_id;
            assert_eq!(webhook(t, &format!("a{n}"), "call.answered", about(&id, &ccid, json!({}))).await, 204);
            let ev = format!("m{n}");
            let status =
                webhook(t, &ev, "call.machine.detection.ended", about(&id, &ccid, json!({"result": result}))).await;
            assert_eq!(status, 204);
            (id, ccid)
        }
    };
    // A machine, no message: hung up at once; the call ends as voicemail.
    let (id, ccid) = answered_by(1, "machine", None).await;
    assert!(hangup_for(&t, &ccid).await.is_some(), "hung up on the machine");
    let hangup = about(&id, &ccid, json!({"hangup_cause": "normal_clearing"}));
    assert_eq!(webhook(&t, "h1", "call.hangup", hangup).await, 204);
    assert_eq!(call_status(&t, &id).await, "voicemail");
    // A fax is hung up on even when there is a message to leave.
    let (_, fax) = answered_by(2, "fax_detected", Some("Please call us back.")).await;
    assert!(hangup_for(&t, &fax).await.is_some(), "hung up on the fax");
    // A human talks: no hang-up.
    let (id, human) = answered_by(3, "human", Some("Please call us back.")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!t.api.commands().iter().any(|c| c.action == "hangup" && c.call_control_id == human));
    assert_eq!(call_status(&t, &id).await, "in_progress");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_machine_the_ai_keeps_quiet_until_the_beep_then_leaves_the_message_and_hangs_up() {
    let t = setup(AudioMode::G711, StreamCodec::Pcmu).await;
    let message = "Hi, Acme Dental here, please call us back.";
    let id = create(&t, json!({"to": "+15551230001", "voicemail_message": message})).await;
    let dial = nth_dial(&t, 1).await;
    assert_eq!(dial.body["answering_machine_detection"], "detect_beep", "a message implies detection");
    let ccid = dial.call_control_id;
    assert_eq!(webhook(&t, "a1", "call.answered", about(&id, &ccid, json!({}))).await, 204);
    let mock = t.h.mock.clone().unwrap();
    let asked = || mock.log.get(0).map(|c| c.lock().unwrap().response_requests.clone()).unwrap_or_default();
    let hangups = || t.api.commands().iter().filter(|c| c.action == "hangup" && c.call_control_id == ccid).count();
    let stream = replay_telnyx(&t.h, "several-turns", 1.0, player(&t.api, true, false));
    let machine = async {
        assert!(eventually(WAIT, || mock.log.count() == 1).await, "bridged to the model");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let verdict = about(&id, &ccid, json!({"result": "machine"}));
        assert_eq!(webhook(&t, "m1", "call.machine.detection.ended", verdict.clone()).await, 204);
        assert_eq!(webhook(&t, "m1", "call.machine.detection.ended", verdict).await, 204, "redelivered");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(hangups(), 0, "the machine is still greeting");
        assert!(!asked().iter().any(|i| i.contains("please call us back")), "no message before the beep");
        let beep = about(&id, &ccid, json!({"result": "beep_detected"}));
        assert_eq!(webhook(&t, "g1", "call.machine.greeting.ended", beep).await, 200);
    };
    let (report, ()) = tokio::time::timeout(Duration::from_secs(30), async { tokio::join!(stream, machine) })
        .await
        .expect("the bridge ended the call");
    assert_eq!(report.per_call[0].server_close_code, Some(1000), "ended by the bridge after the message");
    assert!(asked().iter().any(|i| i.contains("please call us back")), "the message was requested: {:?}", asked());
    assert!(hangup_for(&t, &ccid).await.is_some(), "hung up by command after the message");
    assert_eq!(hangups(), 1, "one verdict, one hang-up");
    assert_eq!(call_status(&t, &id).await, "voicemail", "the replay's call.hangup ended it as voicemail");
}

/// Two server processes on one PostgreSQL database: the media stream is on A, every webhook lands
/// on B. The verdict and the beep reach the call through the database (a command A takes), so
/// the message is still left at the beep. (Needs `VOXBRIDGE_TEST_POSTGRES_URL`; `.ci/run` sets it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_beep_webhook_landing_on_the_instance_without_the_call_still_gets_the_message_left() {
    use common::process::{Server, free_port, spawn_server_with, wait_ready};
    let Some(server) = test_postgres() else {
        eprintln!("VOXBRIDGE_TEST_POSTGRES_URL is not set: this test needs two instances on PostgreSQL");
        return;
    };
    voxbridge::install_tls();
    let db = fresh_postgres_database(&server);
    let api = FakeTelnyx::spawn("127.0.0.1:0").await.unwrap();
    let mock = voxbridge::mock_realtime::spawn_local(mock_options()).await.unwrap();
    let public_key = public_key_base64(&SECRET);
    let env = [
        ("TELNYX_API_KEY", "KEYtest"),
        ("TELNYX_CONNECTION_ID", "conn-1"),
        ("TELNYX_FROM_NUMBER", "+15557650002"),
        ("TELNYX_PUBLIC_KEY", public_key.as_str()),
        ("TELNYX_API_BASE", api.url.as_str()),
        ("VOXBRIDGE_TELNYX_CODEC", "PCMU"),
        ("VOXBRIDGE_DEFAULT_PROVIDER", "telnyx"),
        ("VOXBRIDGE_AUDIO_MODE", "g711"),
        // The model session read below is the stream's (on A); a session pre-warmed by
        // whichever instance dialled would be another connection.
        ("VOXBRIDGE_PREWARM", "false"),
    ];
    let spawn = |name: &'static str| {
        let port = free_port();
        let mut env = env.to_vec();
        env.push(("VOXBRIDGE_INSTANCE_ID", name));
        (port, Server(spawn_server_with(port, &db, "http://127.0.0.1:1", &mock.url(), &env)))
    };
    let ((a, _a), (b, _b)) = (spawn("a"), spawn("b"));
    wait_ready(a).await;
    wait_ready(b).await;
    let (a, b): (std::net::SocketAddr, std::net::SocketAddr) =
        (format!("127.0.0.1:{a}").parse().unwrap(), format!("127.0.0.1:{b}").parse().unwrap());
    let http = http_client();
    let message = "Hi, Acme Dental here, please call us back.";
    let resp = http
        .post(format!("http://{b}/v1/calls"))
        .json(&json!({"to": "+15551230001", "voicemail_message": message}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let dialled = eventually(WAIT, || api.commands().iter().any(|c| c.action == "dial")).await;
    assert!(dialled, "dialled by one of the two");
    let ccid = api.commands().into_iter().find(|c| c.action == "dial").unwrap().call_control_id;
    assert_eq!(webhook_at(&http, b, "a1", "call.answered", about(&id, &ccid, json!({}))).await, 204);
    let asked = || mock.log.get(0).map(|c| c.lock().unwrap().response_requests.clone()).unwrap_or_default();
    let a_url = format!("http://{a}");
    let stream = replay_telnyx_to(&a_url, "several-turns", 1.0, player(&api, true, false));
    let machine = async {
        assert!(eventually(WAIT, || mock.log.count() == 1).await, "bridged to the model on A");
        let verdict = about(&id, &ccid, json!({"result": "machine"}));
        assert_eq!(webhook_at(&http, b, "m1", "call.machine.detection.ended", verdict).await, 204);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!asked().iter().any(|i| i.contains("please call us back")), "no message before the beep");
        let beep = about(&id, &ccid, json!({"result": "beep_detected"}));
        assert_eq!(webhook_at(&http, b, "g1", "call.machine.greeting.ended", beep).await, 200);
    };
    let (report, ()) = tokio::time::timeout(Duration::from_secs(30), async { tokio::join!(stream, machine) })
        .await
        .expect("the bridge ended the call");
    assert_eq!(report.per_call[0].server_close_code, Some(1000), "ended by A after the message");
    assert!(asked().iter().any(|i| i.contains("please call us back")), "the message was left: {:?}", asked());
    let hung_up = api.wait_for(WAIT, |c| c.action == "hangup" && c.call_control_id == ccid).await;
    assert!(hung_up.is_some(), "hung up after the message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_call_is_answered_once_and_a_failed_stream_is_hung_up() {
    let t = setup(AudioMode::G711, StreamCodec::Pcmu).await;
    let initiated = json!({"call_control_id": "v3:in-1", "direction": "incoming", "state": "parked",
        "from": "+15550001111", "to": "+15557654321"});
    assert_eq!(webhook(&t, "i1", "call.initiated", initiated.clone()).await, 200);
    assert_eq!(webhook(&t, "i1", "call.initiated", initiated).await, 200, "redelivered");
    let answer = t.api.wait_for(WAIT, |c| c.action == "answer").await.expect("answered");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(t.api.commands().iter().filter(|c| c.action == "answer").count(), 1, "answered once");
    let call_id = call_id_of(answer.body["client_state"].as_str().unwrap()).unwrap();
    assert_eq!(call(&t, &call_id).await["direction"], "inbound");
    let failed = json!({"call_control_id": "v3:in-1", "client_state": answer.body["client_state"],
        "failure_reason": "connection_failed", "stream_type": "websocket"});
    assert_eq!(webhook(&t, "i2", "streaming.failed", failed).await, 200);
    assert!(hangup_for(&t, "v3:in-1").await.is_some(), "a call nobody can talk on is hung up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_server_answers_an_inbound_call_only_to_apologize() {
    let t = setup(AudioMode::G711, StreamCodec::Pcmu).await;
    t.h.bridge.admission.start_draining();
    let initiated = json!({"call_control_id": "v3:in-drain", "direction": "incoming", "state": "parked",
        "from": "+15550001111", "to": "+15557654321"});
    assert_eq!(webhook(&t, "d1", "call.initiated", initiated).await, 200);
    let answer = t.api.wait_for(WAIT, |c| c.action == "answer").await.expect("answered");
    assert!(answer.body.get("stream_url").is_none(), "no stream: this machine takes no new calls");
    let speak = t.api.wait_for(WAIT, |c| c.action == "speak").await.expect("apology");
    assert_eq!(speak.body["payload"], voxbridge::providers::carrier::DEFAULT_APOLOGY);
    let ended = json!({"call_control_id": "v3:in-drain", "client_state": speak.body["client_state"]});
    assert_eq!(webhook(&t, "d2", "call.speak.ended", ended).await, 200);
    assert!(hangup_for(&t, "v3:in-drain").await.is_some(), "hung up after the apology");
}

#[cfg(feature = "opus")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_opus_is_decoded_for_the_model_and_the_answer_is_sent_as_20ms_packets() {
    use voxbridge::media::opus::OpusCodec;
    let t = setup(AudioMode::G711, StreamCodec::Opus).await;
    dialled_and_answered(&t, "OPUS", 16000).await;
    let report = replay_telnyx(&t.h, "greeting-and-answer", 4.0, player(&t.api, true, true)).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    assert_eq!(model_format(&t), "audio/pcm");
    // The reference is what the caller's packets decode to with a separate decoder.
    let mut reference = OpusCodec::new(SampleRate::HZ_16000).unwrap();
    let mut pcm = Vec::new();
    for packet in telnyx_caller_payloads("greeting-and-answer", Wire::Opus(SampleRate::HZ_16000)) {
        reference.decode(&packet, &mut pcm).unwrap();
    }
    let sent = le_samples(&pcm);
    let got = le_samples(&model_audio(&t).await);
    let (lag, snr) = snr_16k_vs_24k(&sent, &got);
    eprintln!("Opus 16 kHz → 24 kHz: lag {lag} samples at 24 kHz, telephone-band SNR {snr:.1} dB");
    assert!(snr >= 35.0, "SNR {snr:.1} dB");
    // The answer came back as Opus, one 20 ms packet per message, and played in full.
    let call = &report.per_call[0];
    assert!(call.audio_received_ms > 3000.0, "caller heard {} ms", call.audio_received_ms);
    assert!((call.audio_received_ms / call.media_received as f64 - 20.0).abs() < 1e-9);
    assert!(call.marks_received > 0 && call.marks_echoed == call.marks_received);
}

/// The fields of a replay report that must not depend on the carrier.
fn summary(r: &voxbridge::replay::Report) -> (u64, usize, u64) {
    let c = &r.per_call[0];
    (c.frames_sent, c.clears.len(), r.failed_calls as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fixtures_give_the_same_report_through_telnyx_as_through_twilio() {
    let t = setup(AudioMode::G711, StreamCodec::Pcmu).await;
    let mut heard_at_clear = 0.0;
    for (name, speed) in [("several-turns", 4.0), ("dtmf", 4.0), ("barge-in", 1.0)] {
        let twilio = replay(&t.h, name, speed, None).await;
        let telnyx = replay_telnyx(&t.h, name, speed, player(&t.api, false, false)).await;
        assert_eq!(summary(&twilio), summary(&telnyx), "{name}: frames sent, barge-ins, failures");
        let (a, b) = (&twilio.per_call[0], &telnyx.per_call[0]);
        assert!(a.marks_echoed == a.marks_received && b.marks_echoed == b.marks_received);
        if let Some(c) = b.clears.first() {
            heard_at_clear = c.heard_in_spurt_ms;
        }
        let heard = (a.audio_received_ms - b.audio_received_ms).abs();
        assert!(
            heard <= 0.1 * a.audio_received_ms.max(1.0),
            "{name}: heard {} vs {} ms",
            a.audio_received_ms,
            b.audio_received_ms
        );
    }
    // The Telnyx barge-in: `clear` was sent and the model was truncated at what the caller heard.
    let log = &t.h.mock.as_ref().unwrap().log;
    let conn = log.get(log.count() - 1).unwrap();
    let conn = conn.lock().unwrap();
    let cut = conn.truncations.iter().find(|t| t.audio_end_ms.unwrap_or(0) > 0).expect("a truncate");
    assert!(cut.accepted && cut.audio_end_ms <= cut.item_sent_ms, "{cut:?}");
    let end = cut.audio_end_ms.unwrap() as f64;
    assert!((end - heard_at_clear).abs() <= 20.0, "audio_end_ms {end} vs heard {heard_at_clear:.1}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_model_is_unreachable_telnyx_speaks_the_apology_then_hangs_up() {
    // As Twilio's TwiML says the apology after the stream, Telnyx is told to speak it.
    let (api, mut c) = telnyx_config(AudioMode::G711, StreamCodec::Pcmu).await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    c.realtime_url = format!("ws://{}/v1/realtime", closed.local_addr().unwrap());
    drop(closed);
    c.apology = "Lo sentimos, inténtelo más tarde.".into();
    let t = T { h: start_with_model(c).await, api, http: http_client() };
    let ccid = dialled_and_answered(&t, "PCMU", 8000).await.call_control_id;
    let report = replay_telnyx(&t.h, "greeting-and-answer", 4.0, player(&t.api, true, false)).await;
    assert_eq!(report.per_call[0].server_close_code, Some(1011), "the stream closed: no model");
    let speak = t.api.wait_for(WAIT, |c| c.action == "speak" && c.call_control_id == ccid).await.expect("apology");
    assert_eq!(speak.body["payload"], "Lo sentimos, inténtelo más tarde.", "VOXBRIDGE_APOLOGY");
    assert_eq!(speak.body["voice"], "female");
    let hangups = || t.api.commands().iter().filter(|c| c.action == "hangup" && c.call_control_id == ccid).count();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hangups(), 0, "not while the apology plays");
    // Telnyx reports the speech done, with the client_state the speak command set.
    let state = speak.body["client_state"].clone();
    let ended = json!({"call_control_id": ccid, "client_state": state, "status": "completed"});
    assert_eq!(webhook(&t, "sp1", "call.speak.ended", ended.clone()).await, 200);
    assert!(hangup_for(&t, &ccid).await.is_some(), "hung up once the apology was spoken");
    // A machine that was not waiting for that speech (it asked elsewhere) hangs up as well.
    assert_eq!(webhook(&t, "sp2", "call.speak.ended", ended).await, 200);
    assert!(eventually(WAIT, || hangups() == 2).await, "the client_state asks any machine to hang up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_telnyx_call_replays_through_telnyx() {
    let dir = std::env::temp_dir().join(format!("vb-record-telnyx-{}", rand::random::<u64>()));
    let t = setup_with(AudioMode::G711, StreamCodec::Pcma, |c| c.record_dir = Some(dir.clone())).await;
    let report = replay_telnyx(&t.h, "several-turns", 4.0, player(&t.api, false, true)).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    let first = model_audio(&t).await;
    // The transcript is written after the fixture is closed: both there means the fixture is whole.
    let ok = eventually(WAIT, || std::fs::read_dir(&dir).map(|d| d.count() >= 2).unwrap_or(false));
    assert!(ok.await, "fixture and transcript written");
    let path = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    let recorded = voxbridge::fixture::Fixture::read(&path).unwrap();
    assert_eq!(recorded.header.as_ref().unwrap().provider, "telnyx");
    // The recording keeps the frames as they arrived (shuffled); played again as Telnyx would,
    // in chunk order, it gives the model the same audio. As Twilio it is refused clearly.
    let opts = voxbridge::replay::ReplayOptions {
        fixtures: vec![path.clone()],
        target: voxbridge::replay::Target {
            url: format!("http://{}", t.h.addr),
            public_url: PUBLIC_URL.into(),
            auth_token: None,
            speed: 4.0,
            voice_path: String::new(),
            call_sid: None,
            telnyx: Some(player(&t.api, false, false)),
            twilio_api: None,
            keep_heard: false,
            probe: None,
        },
        concurrency: 1,
        ramp: Duration::ZERO,
        progress: false,
        per_call: true,
    };
    let as_twilio = voxbridge::replay::ReplayOptions {
        fixtures: vec![path.clone()],
        target: voxbridge::replay::Target { telnyx: None, ..opts.target.clone() },
        ..opts.clone()
    };
    let refused = voxbridge::replay::run(as_twilio).await.expect_err("Telnyx frames cannot be played as Twilio");
    assert!(refused.to_string().contains("--provider telnyx"), "{refused}");
    let again = voxbridge::replay::run(opts).await.expect("the recording loads");
    assert_eq!(again.failed_calls, 0, "{:?}", again.errors);
    let second = model_audio_in(&t.h, 1).await;
    assert_same(&second, &first);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_still_live_at_the_drain_deadline_hears_the_apology_then_is_hung_up() {
    let (api, mut c) = telnyx_config(AudioMode::G711, StreamCodec::Pcmu).await;
    // The model session counted as "bridged" is the stream's, not one opened while ringing.
    c.prewarm = false;
    let mock = voxbridge::mock_realtime::spawn_local(mock_options()).await.unwrap();
    c.realtime_url = mock.url();
    c.drain_timeout_s = 1;
    let database_url = c.database_url.clone();
    let app = voxbridge::app::App::build(c).await.unwrap();
    let bridge = std::sync::Arc::clone(&app.bridge);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(listener, async move {
        let _ = stop_rx.await;
    }));
    let t = T { h: Harness { addr, bridge, mock: Some(mock.clone()), database_url }, api, http: http_client() };
    let ccid = dialled_and_answered(&t, "PCMU", 8000).await.call_control_id;
    let stream = replay_telnyx(&t.h, "several-turns", 1.0, player(&t.api, true, false));
    let deploy = async {
        assert!(eventually(WAIT, || mock.log.count() == 1).await, "bridged to the model");
        stop_tx.send(()).unwrap();
        let speak = t.api.wait_for(WAIT, |c| c.action == "speak" && c.call_control_id == ccid).await.expect("apology");
        assert!(!t.api.commands().iter().any(|c| c.action == "hangup"), "not hung up over the apology");
        // Speech takes seconds: the server waits for it past its usual 2 s for calls to close.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let ended = json!({"call_control_id": ccid, "client_state": speak.body["client_state"]});
        assert_eq!(webhook(&t, "sd1", "call.speak.ended", ended).await, 200, "webhooks still served while draining");
    };
    let (report, ()) = tokio::join!(stream, deploy);
    assert_eq!(report.per_call[0].server_close_code, Some(1001), "ended by the drain");
    assert!(hangup_for(&t, &ccid).await.is_some(), "hung up after the apology");
    tokio::time::timeout(Duration::from_secs(10), server).await.expect("server exits").unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceling_a_live_telnyx_call_hangs_it_up_by_command() {
    let t = setup(AudioMode::G711, StreamCodec::Pcmu).await;
    let id = create(&t, json!({"to": "+15551230001"})).await;
    let ccid = nth_dial(&t, 1).await.call_control_id;
    assert_eq!(webhook(&t, "c1", "call.answered", about(&id, &ccid, json!({}))).await, 204);
    let resp = t.http.post(format!("http://{}/v1/calls/{id}/cancel", t.h.addr)).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let hangup = hangup_for(&t, &ccid).await.expect("hang-up command");
    assert_eq!(hangup.body["command_id"], format!("hangup-{ccid}"));
    // Telnyx answers a hang-up of a call that already ended with 422 / 90018: still a success.
    t.api.fail_next(422, "90018");
    let resp = t.http.post(format!("http://{}/v1/calls/{id}/cancel", t.h.addr)).send().await.unwrap();
    assert_eq!(resp.status(), 202, "90018 means the call is already gone: not an error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_never_starts_is_closed_and_its_call_hung_up() {
    use futures_util::SinkExt;
    let t = setup_with(AudioMode::G711, StreamCodec::Pcmu, |c| {
        c.start_timeout_ms = 300;
        // Every model session counted here would be one a stream opened.
        c.prewarm = false;
    })
    .await;
    let id = create(&t, json!({"to": "+15551230001"})).await;
    let dial = nth_dial(&t, 1).await;
    assert!(wait_status(&t, &id, "dialing").await);
    let query = dial.body["stream_url"].as_str().unwrap().split_once('?').unwrap().1.to_string();
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/media/telnyx?{query}", t.h.addr)).await.unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::Text(r#"{"event":"connected","version":"1.0.0"}"#.into()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut ws, Duration::from_secs(3)).await, Some(1008), "no start: policy close");
    assert!(hangup_for(&t, &dial.call_control_id).await.is_some(), "the Telnyx call is not left up silent");
    assert_eq!(t.h.mock.as_ref().unwrap().log.count(), 0, "no model session");
}

/// On Fly, the machine that dialled names itself in the stream URL; a stream that lands on
/// another machine is replayed to it by Fly's proxy before its one-time token is spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_fly_a_stream_for_another_machine_is_replayed_there_with_its_token_unspent() {
    const ME: &str = "3d8d9e2b7e1289";
    let t = setup_with(AudioMode::G711, StreamCodec::Pcmu, |c| c.fly_machine_id = ME.into()).await;
    create(&t, json!({"to": "+15551230001"})).await;
    let url = nth_dial(&t, 1).await.body["stream_url"].as_str().unwrap().to_string();
    let query = url.split_once('?').unwrap().1.to_string();
    assert!(query.ends_with(&format!("&machine={ME}")), "{url}");
    let elsewhere = query.replace(ME, "91857d2f653e83");
    // A stranger's stream (no genuine token) is refused here, not replayed.
    let forged = "/media/telnyx?call_id=c_x&token=0123&machine=91857d2f653e83";
    assert_eq!(upgrade(t.h.addr, forged, &[]).await.err().unwrap().0, 403);
    let (status, headers) = upgrade(t.h.addr, &format!("/media/telnyx?{elsewhere}"), &[]).await.err().unwrap();
    assert_eq!((status, headers["fly-replay"].to_str().unwrap()), (409, "prefer_instance=91857d2f653e83"));
    assert!(upgrade(t.h.addr, &format!("/media/telnyx?{query}"), &[]).await.is_ok(), "the token was not spent");
    // Spent now: the same token earns no replay (issue 21), it is refused where it lands.
    let (status, headers) = upgrade(t.h.addr, &format!("/media/telnyx?{elsewhere}"), &[]).await.err().unwrap();
    assert_eq!(status, 403, "a spent token is not steered: {headers:?}");
    // Replayed once already, a stream is served where it lands: the token's rules apply as ever.
    let replayed = [("fly-replay-src", "instance=91857d2f653e83;t=1")];
    assert_eq!(upgrade(t.h.addr, &format!("/media/telnyx?{elsewhere}"), &replayed).await.err().unwrap().0, 403);
}

/// Plays the callee of a dialled Telnyx call as Telnyx would, from `stream_url`: `start`, then
/// the fixture's frames (faster than real time); the socket stays open (the caller stays on the
/// line: nothing hangs up leg A).
async fn stream_leg(t: &T, stream_url: &str, ccid: &str, client_state: &Value, fixture_name: &str) -> Ws {
    use futures_util::SinkExt;
    let path = stream_url.split_once("voice.test").map(|(_, p)| p.to_string()).expect("our public URL");
    let mut ws = upgrade(t.h.addr, &path, &[]).await.map_err(|(s, _)| s).expect("the stream is taken");
    let opened = voxbridge::replay::telnyx::Opened {
        stream_url: stream_url.to_string(),
        call_control_id: ccid.to_string(),
        client_state: client_state.as_str().map(str::to_string),
        encoding: "PCMU".into(),
        rate: 8000,
    };
    ws.send(opened.start_frame().into()).await.unwrap();
    let wire = Wire::Samples(StreamFormat::PCMU_8K);
    let prepared = voxbridge::replay::telnyx::prepare(
        &voxbridge::replay::client::Prepared::new(&fixture(fixture_name)),
        wire,
        false,
    )
    .unwrap();
    for step in prepared.steps.iter().filter(|s| s.kind == voxbridge::replay::client::Kind::Media) {
        ws.send(step.text.to_string().into()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    ws
}

/// Plays whatever the server sends at once (each mark echoed as it comes) until it closes the
/// stream.
async fn play_out(ws: &mut Ws) {
    use futures_util::{SinkExt, StreamExt};
    let mut seq = 10_000;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
        let Ok(v) = serde_json::from_str::<Value>(msg.to_text().unwrap_or_default()) else { break };
        if v["event"] == "mark" {
            seq += 1;
            let echo = voxbridge::replay::telnyx::mark_echo(seq, v["mark"]["name"].as_str().unwrap_or_default());
            if ws.send(echo.into()).await.is_err() {
                break;
            }
        }
    }
}

/// A dialled Telnyx call whose AI hands the caller to `to` (its `transfer_to`): the transfer
/// command, checked, and leg A's call control id.
async fn transferring(t: &T, transfer_to: Value) -> (String, String, Ws) {
    let to = transfer_to[0]["to"].as_str().unwrap().to_string();
    let id = create(t, json!({"to": "+15551230061", "provider": "telnyx", "transfer_to": transfer_to})).await;
    let dial = nth_dial(t, 1).await;
    let ccid = dial.call_control_id.clone();
    assert_eq!(webhook(t, "t1", "call.answered", about(&id, &ccid, json!({}))).await, 204);
    let stream_url = dial.body["stream_url"].as_str().unwrap().to_string();
    let mut ws = stream_leg(t, &stream_url, &ccid, &dial.body["client_state"], "greeting-and-answer").await;
    play_out(&mut ws).await;
    let transfer = t.api.wait_for(WAIT, |c| c.action == "transfer" && c.call_control_id == ccid).await;
    let transfer = transfer.expect("transferred by command");
    assert_eq!(transfer.body["to"], to.as_str());
    let state = transfer.body["client_state"].as_str().unwrap();
    assert_eq!(voxbridge::providers::telnyx::rest::transfer_of(state).as_deref(), Some(to.as_str()));
    assert!(!t.api.commands().iter().any(|c| c.action == "hangup" && c.call_control_id == ccid), "not hung up");
    (id, ccid, ws)
}

/// A webhook of the human's leg (leg B) of call `id`'s transfer to `to`.
fn leg_b(id: &str, to: &str, extra: Value) -> Value {
    let state = voxbridge::providers::telnyx::rest::transfer_state(id, to);
    let mut p = json!({"call_control_id": "v3:leg-b", "client_state": state, "from": "+15557650002", "to": to});
    p.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    p
}

/// Telnyx: the AI's `transfer_call` becomes `actions/transfer` (ring time, the leg's own
/// `client_state`), the call is not hung up; it is `transferred` only when leg B answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_telnyx_transfer_is_transferred_when_the_human_answers() {
    let mock = voxbridge::mock_realtime::MockOptions {
        call_tool_at: Some((1, "transfer_call".into(), r#"{"to": "sip:desk@pbx.example.com"}"#.into())),
        ..mock_options()
    };
    let t = setup_mock(AudioMode::G711, StreamCodec::Pcmu, mock).await;
    let (id, ccid, _ws) = transferring(&t, json!([{"to": "sip:desk@pbx.example.com", "timeout_s": 20}])).await;
    let transfer = t.api.commands().into_iter().find(|c| c.action == "transfer").unwrap();
    assert_eq!(transfer.body["timeout_secs"], 20);
    // Leg B rings (its events never touch the caller's call), then the desk answers.
    let initiated = leg_b(&id, "sip:desk@pbx.example.com", json!({"direction": "outgoing"}));
    assert_eq!(webhook(&t, "b1", "call.initiated", initiated).await, 200);
    assert_eq!(call_status(&t, &id).await, "in_progress");
    assert_eq!(webhook(&t, "b2", "call.answered", leg_b(&id, "sip:desk@pbx.example.com", json!({}))).await, 200);
    // The caller and the desk talk, then the caller hangs up: the call ends transferred.
    let hangup = about(&id, &ccid, json!({"hangup_cause": "normal_clearing", "hangup_source": "caller"}));
    assert_eq!(webhook(&t, "t2", "call.hangup", hangup).await, 204);
    assert!(wait_status(&t, &id, "transferred").await, "{}", call(&t, &id).await);
    let c = call(&t, &id).await;
    assert_eq!(
        (c["end_reason"].as_str(), c["transferred_to"].as_str()),
        (Some("transferred"), Some("sip:desk@pbx.example.com"))
    );
}

/// Telnyx: leg B times out — the caller's leg is streamed to us again and the AI, given the
/// conversation so far, is told nobody answered; with `on_no_answer: message`, leg B busy, the
/// caller hears the message and the call ends `transfer_failed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_telnyx_transfer_nobody_takes_returns_the_caller_or_says_the_message() {
    let mock = voxbridge::mock_realtime::MockOptions {
        call_tool_at: Some((1, "transfer_call".into(), r#"{"to": "+15550001111"}"#.into())),
        ..mock_options()
    };
    let t = setup_mock(AudioMode::G711, StreamCodec::Pcmu, mock).await;
    let (id, ccid, _ws) = transferring(&t, json!([{"to": "+15550001111"}])).await;
    let sessions = t.h.mock.as_ref().unwrap().log.count();
    let hung = leg_b(&id, "+15550001111", json!({"hangup_cause": "timeout", "hangup_source": "callee"}));
    assert_eq!(webhook(&t, "b3", "call.hangup", hung).await, 200);
    let again = t.api.wait_for(WAIT, |c| c.action == "streaming_start" && c.call_control_id == ccid).await;
    let again = again.expect("the caller's leg is streamed again");
    let url = again.body["stream_url"].as_str().unwrap().to_string();
    assert!(url.contains("resume=no_answer") && url.contains("transfer_to=%2B15550001111"), "{url}");
    assert_eq!(call_status(&t, &id).await, "in_progress");
    let _back = stream_leg(&t, &url, &ccid, &again.body["client_state"], "greeting-and-answer").await;
    let mock = t.h.mock.clone().unwrap();
    assert!(eventually(WAIT, || mock.log.count() > sessions).await, "a new session");
    let conn = mock.log.get(mock.log.count() - 1).unwrap();
    assert!(eventually(WAIT, || !conn.lock().unwrap().response_requests.is_empty()).await);
    let first = conn.lock().unwrap().response_requests[0].clone();
    assert!(first.contains("nobody answered") && first.contains("+15550001111"), "{first}");

    // A target whose fallback is the message.
    let t = setup_mock(
        AudioMode::G711,
        StreamCodec::Pcmu,
        voxbridge::mock_realtime::MockOptions {
            call_tool_at: Some((1, "transfer_call".into(), r#"{"to": "+15550002222"}"#.into())),
            ..mock_options()
        },
    )
    .await;
    let targets = json!([{"to": "+15550002222", "on_no_answer": "message", "message": "Sorry, all lines are busy."}]);
    let (id, ccid, _ws) = transferring(&t, targets).await;
    let busy = leg_b(&id, "+15550002222", json!({"hangup_cause": "user_busy", "hangup_source": "callee"}));
    assert_eq!(webhook(&t, "b4", "call.hangup", busy).await, 200);
    let speak = t.api.wait_for(WAIT, |c| c.action == "speak" && c.call_control_id == ccid).await;
    assert_eq!(speak.expect("the message is said").body["payload"], "Sorry, all lines are busy.");
    let hangup = about(&id, &ccid, json!({"hangup_cause": "normal_clearing", "hangup_source": "callee"}));
    assert_eq!(webhook(&t, "t9", "call.hangup", hangup).await, 204);
    assert!(wait_status(&t, &id, "failed").await, "{}", call(&t, &id).await);
    assert_eq!(call(&t, &id).await["end_reason"], "transfer_failed");
}
