//! Shared harness for the integration scenarios: a real server on 127.0.0.1:0, a real mock
//! model on another loopback port, the real replay client, and raw WebSocket helpers.
#![allow(dead_code, unreachable_pub)]

pub mod process;
pub mod twilio;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use voxbridge::app::App;
use voxbridge::call::driver::Bridge;
use voxbridge::config::{AudioMode, Config};
use voxbridge::fixture::Fixture;
use voxbridge::mock_realtime::{self, MockHandle, MockOptions};
use voxbridge::replay::{self, ReplayOptions, Report, Target};

pub const PUBLIC_URL: &str = "https://voice.test";
/// The API key every test server takes (`VOXBRIDGE_API_KEYS`): with a public URL that is not
/// local, `/v1` refuses every request without one (issue 21).
pub const API_KEY: &str = "vb_test_api_key";

/// An HTTP client that presents [`API_KEY`] (a request's own `Authorization` wins).
pub fn http_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {API_KEY}").parse().unwrap());
    reqwest::Client::builder().default_headers(headers).build().unwrap()
}
/// A real Ed25519 secret key for the fake Telnyx (its public half is the server's key).
pub const TELNYX_SECRET: [u8; 32] = [0x42; 32];

pub struct Harness {
    pub addr: SocketAddr,
    pub bridge: Arc<Bridge>,
    pub mock: Option<MockHandle>,
    /// The server's SQLite database, for tests that inspect what it recorded.
    pub database_url: String,
}

pub fn config(mode: AudioMode) -> Config {
    let mut c = Config::defaults();
    c.public_url = PUBLIC_URL.into();
    c.audio_mode = mode;
    c.openai_api_key = Some("sk-test".into());
    c.database_url = temp_database_url();
    // PUBLIC_URL is not local: tests that play Twilio unsigned say so, as an operator would,
    // and the API takes a key.
    c.allow_unsigned = true;
    c.api_keys = Some(API_KEY.into());
    c
}

/// The PostgreSQL server the suite runs against when `VOXBRIDGE_TEST_POSTGRES_URL` names one
/// (`.ci/run` starts one and runs the store suite and the end-to-end call tests on it too).
pub fn test_postgres() -> Option<String> {
    std::env::var("VOXBRIDGE_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty())
}

/// A fresh database per server (tests never share one): a new PostgreSQL database when
/// `VOXBRIDGE_TEST_POSTGRES_URL` is set, else a SQLite file.
pub fn temp_database_url() -> String {
    match test_postgres() {
        Some(server) => fresh_postgres_database(&server),
        None => sqlite_url(),
    }
}

/// A fresh SQLite file (removed with the OS temp dir), for what only SQLite has.
pub fn sqlite_url() -> String {
    let dir = std::env::temp_dir().join(format!("vb-test-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    format!("sqlite://{}", dir.join("voxbridge.db").display())
}

/// Creates an empty database on `server` and returns its URL (on a thread of its own: callers
/// may be inside a runtime or not).
pub fn fresh_postgres_database(server: &str) -> String {
    let server = server.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(voxbridge::store::postgres::create_database(&server, "vb_test")).expect("test PostgreSQL reachable")
    })
    .join()
    .unwrap()
}

pub fn mock_options() -> MockOptions {
    MockOptions { record_audio: true, ..MockOptions::default() }
}

/// Server + mock model.
pub async fn start(mut config: Config, mock: MockOptions) -> Harness {
    voxbridge::install_tls();
    let mock = mock_realtime::spawn_local(mock).await.expect("mock starts");
    config.realtime_url = mock.url();
    config.live_url = mock.live_url();
    let mut h = start_with_model(config).await;
    h.mock = Some(mock);
    h
}

/// Server pointed at whatever `config.realtime_url` says.
pub async fn start_with_model(config: Config) -> Harness {
    voxbridge::install_tls();
    let database_url = config.database_url.clone();
    let app = App::build(config).await.expect("config valid");
    let (addr, bridge, mock) = app.spawn_local().await.expect("server starts");
    Harness { addr, bridge, mock, database_url }
}

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(format!("{name}.jsonl"))
}

pub fn fixture(name: &str) -> Fixture {
    Fixture::read(&fixture_path(name)).expect("fixture readable")
}

/// Every caller audio byte a fixture sends, in order.
pub fn fixture_audio(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for step in fixture(name).steps {
        let v: serde_json::Value = serde_json::from_str(&step.text).unwrap();
        if v["event"] == "media" {
            out.extend(
                base64::engine::general_purpose::STANDARD.decode(v["media"]["payload"].as_str().unwrap()).unwrap(),
            );
        }
    }
    out
}

pub async fn replay(h: &Harness, name: &str, speed: f64, auth_token: Option<&str>) -> Report {
    replay_via(h, name, speed, auth_token, "/twilio/voice").await
}

/// Replays a fixture, taking the TwiML from `voice_path` (e.g. `/twiml/{call_id}`). A call the
/// server placed is streamed as Twilio would: with the sid its dial was answered with (waited
/// for on the server's record).
pub async fn replay_via(h: &Harness, name: &str, speed: f64, auth_token: Option<&str>, voice_path: &str) -> Report {
    let call_sid = match voice_path.strip_prefix("/twiml/") {
        Some(rest) => Some(dialled_sid(h, rest.split('?').next().unwrap_or_default()).await),
        None => None,
    };
    replay_call(h.addr, name, speed, auth_token, voice_path, call_sid.as_deref()).await
}

/// The carrier sid on record for call `id` (its dial's answer), once it is there.
pub async fn dialled_sid(h: &Harness, id: &str) -> String {
    let store = h.bridge.store.as_ref().expect("a store");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let view = voxbridge::store::OutboundCalls::call_view(store, id).await.unwrap();
        if let Some(sid) = view.and_then(|v| v.provider_call_id) {
            return sid;
        }
        assert!(tokio::time::Instant::now() < deadline, "call {id} was never dialled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// [`replay_via`] a server (or a proxy in front of servers) at `addr`, inbound.
pub async fn replay_at(addr: SocketAddr, name: &str, speed: f64, auth_token: Option<&str>, voice_path: &str) -> Report {
    replay_call(addr, name, speed, auth_token, voice_path, None).await
}

/// [`replay_at`], the carrier's call id being `call_sid` (a dialled call's).
pub async fn replay_call(
    addr: SocketAddr,
    name: &str,
    speed: f64,
    auth_token: Option<&str>,
    voice_path: &str,
    call_sid: Option<&str>,
) -> Report {
    let opts = replay_options(addr, name, speed, auth_token, voice_path, call_sid);
    replay::run(opts).await.expect("fixture loads")
}

/// What [`replay_call`] plays: one call of fixture `name` as Twilio, against `addr`.
pub fn replay_options(
    addr: SocketAddr,
    name: &str,
    speed: f64,
    auth_token: Option<&str>,
    voice_path: &str,
    call_sid: Option<&str>,
) -> ReplayOptions {
    ReplayOptions {
        fixtures: vec![fixture_path(name)],
        target: Target {
            url: format!("http://{addr}"),
            public_url: PUBLIC_URL.into(),
            auth_token: auth_token.map(str::to_string),
            speed,
            voice_path: voice_path.to_string(),
            call_sid: call_sid.map(str::to_string),
            telnyx: None,
            twilio_api: None,
            probe: None,
            keep_heard: false,
        },
        concurrency: 1,
        ramp: Duration::ZERO,
        progress: false,
        per_call: true,
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens `/media/twilio` directly; `Err` carries the HTTP status of a refused upgrade.
pub async fn connect_media(addr: SocketAddr, signature: Option<&str>) -> Result<Ws, u16> {
    let headers: Vec<(&str, &str)> = signature.map(|s| ("X-Twilio-Signature", s)).into_iter().collect();
    upgrade(addr, "/media/twilio", &headers).await.map_err(|(status, _)| status)
}

/// Opens a media stream at `path` (and query) with `headers`; `Err` carries a refused
/// upgrade's status and headers.
pub async fn upgrade(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Ws, (u16, tokio_tungstenite::tungstenite::http::HeaderMap)> {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (name, value) in headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        req.headers_mut().insert(name, value.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err((resp.status().as_u16(), resp.headers().clone())),
        Err(e) => panic!("unexpected connect error: {e}"),
    }
}

/// `start` for call `call_id` carrying a one-time token minted for it (as TwiML would give it).
pub fn start_for(h: &Harness, call_id: &str) -> String {
    let token = h.bridge.tokens.mint(call_id, voxbridge::store::now_ms());
    start_msg(&[("call_id", call_id), ("token", &token)])
}

pub fn start_msg(params: &[(&str, &str)]) -> String {
    let params: serde_json::Map<String, serde_json::Value> =
        params.iter().map(|(k, v)| (k.to_string(), (*v).into())).collect();
    serde_json::json!({"event": "start", "sequenceNumber": "1", "streamSid": "MZtest", "start": {
        "accountSid": "ACtest", "streamSid": "MZtest", "callSid": "CAtest", "tracks": ["inbound"],
        "customParameters": params, "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
    .to_string()
}

pub fn media_msg(payload: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(payload);
    format!(
        r#"{{"event":"media","streamSid":"MZtest","media":{{"track":"inbound","chunk":"1","timestamp":"0","payload":"{b64}"}}}}"#
    )
}

pub async fn send(ws: &mut Ws, text: impl Into<String>) {
    ws.send(Message::Text(text.into().into())).await.expect("send");
}

/// Reads until the server closes; returns the close code (None: closed without a frame).
pub async fn close_code(ws: &mut Ws, within: Duration) -> Option<u16> {
    let fut = async {
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    };
    tokio::time::timeout(within, fut).await.expect("server closed the stream in time")
}

/// Polls `cond` every 10 ms for up to `within`.
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

/// 16-bit little-endian PCM bytes as samples (written here, not the crate's conversion, so a
/// reference stays independent of the code it checks).
pub fn le_samples(bytes: &[u8]) -> Vec<i16> {
    bytes.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect()
}

/// 16-bit big-endian (network order, L16) PCM bytes as samples.
pub fn be_samples(bytes: &[u8]) -> Vec<i16> {
    bytes.chunks_exact(2).map(|c| i16::from_be_bytes([c[0], c[1]])).collect()
}

/// The caller audio the mock model's `i`th connection received, once the bridge has closed that
/// connection (the last appends may still be in flight when the replay client finishes).
pub async fn model_audio_in(h: &Harness, i: usize) -> Vec<u8> {
    let mock = h.mock.as_ref().expect("a mock model");
    let closed = || mock.log.get(i).is_some_and(|c| c.lock().unwrap().closed_at.is_some());
    assert!(eventually(Duration::from_secs(5), closed).await, "model connection {i} was closed");
    mock.log.get(i).unwrap().lock().unwrap().audio_in.clone()
}

/// POSTs `form` to `path`, signed as Twilio signs it (against `PUBLIC_URL`).
pub async fn post_signed(
    h: &Harness,
    http: &reqwest::Client,
    token: &str,
    path: &str,
    form: &[(String, String)],
) -> reqwest::Response {
    post_signed_to(h.addr, http, token, path, form).await
}

/// [`post_signed`] to a server known by its address (fakes that call back into it).
pub async fn post_signed_to(
    addr: SocketAddr,
    http: &reqwest::Client,
    token: &str,
    path: &str,
    form: &[(String, String)],
) -> reqwest::Response {
    let sig = voxbridge::providers::twilio::signature::compute(token, &format!("{PUBLIC_URL}{path}"), form);
    http.post(format!("http://{addr}{path}")).header("X-Twilio-Signature", sig).form(form).send().await.unwrap()
}

/// Form fields from `(name, value)` pairs.
pub fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Asks the (signed) voice webhook for TwiML and returns the stream's `<Parameter>`s.
pub async fn voice_params(
    h: &Harness,
    http: &reqwest::Client,
    token: &str,
    fields: &[(&str, &str)],
) -> Vec<(String, String)> {
    let xml = post_signed(h, http, token, "/twilio/voice", &form(fields)).await.text().await.unwrap();
    voxbridge::providers::twilio::twiml::parse_connect_stream(&xml).expect("TwiML with <Connect><Stream>").1
}

/// The G.712 telephone band's upper edge, applied identically to both signals: a 255-tap
/// Hann-windowed sinc low-pass at 3.4 kHz (8 kHz sampling).
pub fn telephone_band(x: &[i16]) -> Vec<f64> {
    let taps = 255usize;
    let fc = 3400.0 / 8000.0;
    let h: Vec<f64> = (0..taps)
        .map(|i| {
            let m = i as f64 - (taps - 1) as f64 / 2.0;
            let sinc = if m == 0.0 {
                2.0 * fc
            } else {
                (2.0 * std::f64::consts::PI * fc * m).sin() / (std::f64::consts::PI * m)
            };
            sinc * (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (taps - 1) as f64).cos())
        })
        .collect();
    (0..x.len())
        .map(|n| {
            h.iter()
                .enumerate()
                .filter_map(|(i, c)| (n + i).checked_sub(taps / 2).and_then(|j| x.get(j)).map(|&s| c * s as f64))
                .sum()
        })
        .collect()
}

pub fn energy(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum()
}

pub fn snr_db(reference: &[f64], got: &[f64]) -> f64 {
    let noise: f64 = reference.iter().zip(got).map(|(r, g)| (r - g).powi(2)).sum();
    10.0 * (energy(reference) / noise.max(1.0)).log10()
}

/// Replays a fixture as Telnyx through `telnyx` (its fake API must be the server's).
pub async fn replay_telnyx(
    h: &Harness,
    name: &str,
    speed: f64,
    telnyx: voxbridge::replay::telnyx::TelnyxReplay,
) -> Report {
    replay_telnyx_to(&format!("http://{}", h.addr), name, speed, telnyx).await
}

/// [`replay_telnyx`] to a server known by its URL (a server process).
pub async fn replay_telnyx_to(
    url: &str,
    name: &str,
    speed: f64,
    telnyx: voxbridge::replay::telnyx::TelnyxReplay,
) -> Report {
    let opts = ReplayOptions {
        fixtures: vec![fixture_path(name)],
        target: Target {
            url: url.to_string(),
            public_url: PUBLIC_URL.into(),
            auth_token: None,
            speed,
            voice_path: String::new(),
            call_sid: None,
            telnyx: Some(telnyx),
            twilio_api: None,
            keep_heard: false,
            probe: None,
        },
        concurrency: 1,
        ramp: Duration::ZERO,
        progress: false,
        per_call: true,
    };
    replay::run(opts).await.expect("fixture loads")
}

/// The media payloads a Telnyx replay of `name` sends in `wire`, in sequence order.
pub fn telnyx_caller_payloads(name: &str, wire: voxbridge::providers::telnyx::media::Wire) -> Vec<Vec<u8>> {
    let prepared = voxbridge::replay::telnyx::prepare(&replay::client::Prepared::new(&fixture(name)), wire, false)
        .expect("fixture converts");
    prepared
        .steps
        .iter()
        .filter(|s| s.kind == replay::client::Kind::Media)
        .map(|step| {
            let v: serde_json::Value = serde_json::from_str(&step.text).unwrap();
            base64::engine::general_purpose::STANDARD.decode(v["media"]["payload"].as_str().unwrap()).unwrap()
        })
        .collect()
}

/// The caller audio a Telnyx replay of `name` sends in `wire`, concatenated.
pub fn telnyx_caller_audio(name: &str, wire: voxbridge::providers::telnyx::media::Wire) -> Vec<u8> {
    telnyx_caller_payloads(name, wire).concat()
}

/// SNR in dB of a 24 kHz signal against a 16 kHz reference, compared on the common 8 kHz grid
/// (every 2nd reference sample, every 3rd received one) at the best lag, both limited to the
/// telephone band; with the lag in 24 kHz samples.
pub fn snr_16k_vs_24k(sent: &[i16], got: &[i16]) -> (usize, f64) {
    let reference: Vec<i16> = sent.iter().step_by(2).copied().collect();
    let (lag, _) = (0..960usize)
        .map(|lag| {
            let noise: f64 = reference
                .iter()
                .enumerate()
                .map(|(k, &r)| (r as f64 - got.get(3 * k + lag).copied().unwrap_or(0) as f64).powi(2))
                .sum();
            (lag, noise)
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    let aligned: Vec<i16> = (0..reference.len()).map(|k| got.get(3 * k + lag).copied().unwrap_or(0)).collect();
    (lag, snr_db(&telephone_band(&reference), &telephone_band(&aligned)))
}

/// An outbound call due at `run_at`, for tests that drive the store and worker directly.
pub fn due_call(id: &str, provider: &str, run_at: i64) -> voxbridge::store::outbound::OutboundCall {
    voxbridge::store::outbound::OutboundCall {
        id: id.into(),
        provider: provider.into(),
        to_number: "+15551234567".into(),
        from_number: Some("+15557654321".into()),
        instructions: None,
        greeting: None,
        voice: None,
        metadata: "{}".into(),
        dedupe_key: None,
        call_window: None,
        webhook_url: None,
        priority: 0,
        max_attempts: 3,
        run_at,
        machine_detection: false,
        voicemail_message: None,
        request_digest: String::new(),
        agent: None,
        analysis: None,
        dtmf_out: false,
        record: false,
        dedupe_window_ms: None,
        expires_at: None,
        campaign: None,
        max_duration_s: None,
        max_cost_usd: None,
        model: None,
        reasoning_effort: None,
        model_api: None,
        outcome_schema: None,
        tools: None,
        transfer_to: None,
    }
}

/// Worker settings for tests, with this lease.
pub fn dialer_config(lease: Duration) -> voxbridge::queue::worker::DialerConfig {
    voxbridge::queue::worker::DialerConfig {
        poll: Duration::from_millis(10),
        lease,
        max_running: 5,
        ring_timeout_s: 30,
        retry: voxbridge::lifecycle::retry::RetryPolicy::default(),
        retain_done: Duration::from_secs(3600),
        retain_failed: Duration::from_secs(3600),
        retain_calls: Duration::from_secs(86_400),
        max_dials_per_second: None,
        max_call_duration_s: 1800,
        status_grace: Duration::from_secs(60),
    }
}

/// Carriers with a Twilio that cannot be reached: each dial fails at once (and counts its attempt).
pub fn unreachable_twilio() -> voxbridge::providers::carrier::Carriers {
    voxbridge::providers::carrier::Carriers {
        twilio: Some(voxbridge::providers::twilio::rest::TwilioRest::new("http://127.0.0.1:9", "ACtest", "tok")),
        telnyx: None,
        public_url: "https://voice.test".into(),
        tokens: Default::default(),
        speeches: Default::default(),
        apology: voxbridge::providers::carrier::DEFAULT_APOLOGY.into(),
        machine: None,
    }
}

/// The user's app: a local webhook receiver keeping every event body it gets (answers 204).
pub async fn event_receiver() -> (String, Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
    let seen: Arc<std::sync::Mutex<Vec<serde_json::Value>>> = Arc::default();
    let s = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/events",
        axum::routing::post(move |body: String| {
            let s = Arc::clone(&s);
            async move {
                s.lock().unwrap().push(serde_json::from_str(&body).unwrap_or(serde_json::Value::Null));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// An inbound call as Twilio starts it (unsigned voice webhook): its call id and the `start`
/// message carrying the TwiML's parameters.
pub async fn inbound_start(base: &str, http: &reqwest::Client) -> (String, String) {
    let xml = http
        .post(format!("{base}/twilio/voice"))
        .form(&[("CallSid", "CAtest"), ("From", "+15551112222")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (_, params) = voxbridge::providers::twilio::twiml::parse_connect_stream(&xml).expect("TwiML with a stream");
    let id = params.iter().find(|(k, _)| k == "call_id").expect("a call id").1.clone();
    let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    (id, start_msg(&p))
}

/// The fake Telnyx and a server configuration pointing at it.
pub async fn telnyx_config(
    mode: AudioMode,
    codec: voxbridge::providers::telnyx::rest::StreamCodec,
) -> (voxbridge::replay::telnyx_api::FakeTelnyx, voxbridge::config::Config) {
    let api = voxbridge::replay::telnyx_api::FakeTelnyx::spawn("127.0.0.1:0").await.unwrap();
    let mut c = config(mode);
    c.telnyx_api_key = Some("KEYtest".into());
    c.telnyx_connection_id = Some("conn-1".into());
    c.telnyx_from_number = Some("+15557650002".into());
    c.telnyx_public_key = Some(voxbridge::providers::telnyx::signature::public_key_base64(&TELNYX_SECRET));
    c.telnyx_api_base = api.url.clone();
    c.telnyx_codec = codec;
    c.default_provider = voxbridge::providers::carrier::Provider::Telnyx;
    c.worker_poll_ms = 20;
    c.retry_base_ms = 400;
    c.retry_cap_ms = 400;
    (api, c)
}

/// Runs `scripts/<script>` (a Python oracle: a vendor's SDK, a validator) on `input`. `None`
/// when the oracle's package is not installed (the script exits 2) — allowed on a developer
/// machine (said on stderr), never under CI, which installs it (`pip install <package>`).
pub fn python_oracle(script: &str, input: &std::path::Path, package: &str) -> Option<std::process::Output> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts").join(script);
    match std::process::Command::new("python3").arg(script).arg(input).output() {
        Ok(o) if o.status.code().is_some_and(|c| c != 2) => Some(o),
        _ => {
            assert!(std::env::var_os("CI").is_none(), "CI must install the oracle (pip install {package})");
            eprintln!("{package} is not installed here: not checked against it");
            None
        }
    }
}
