//! One replayed call, played as the carrier would: Twilio's signed voice webhook, the TwiML's
//! stream URL and token and a signed upgrade (or Telnyx's, see `telnyx`), the fixture's messages
//! at their times, real-time playback of what the server sends, marks echoed when their audio
//! has played, `clear` honoured.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::playout::Playout;
use super::probe::CallProbe;
use super::turns::{Turns, voiced_ulaw_base64};
use crate::fixture::Fixture;
use crate::media::transcode::StreamFormat;
use crate::providers::telnyx::format::Wire;
use crate::providers::twilio::{signature, twiml};

/// μ-law at 8 kHz: bytes per millisecond of playback (Twilio).
const BYTES_PER_MS: f64 = 8.0;
/// After the fixture's last message, wait this long for the server's last frames.
const DRAIN: Duration = Duration::from_millis(300);

/// How to reach the server and play.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port` of the server.
    pub url: String,
    /// The public URL the server signs against (defaults to `url`).
    pub public_url: String,
    pub auth_token: Option<String>,
    pub speed: f64,
    /// Where the TwiML comes from: `/twilio/voice` for an inbound call, `/twiml/{call_id}` for
    /// one the server placed.
    pub voice_path: String,
    /// The carrier's id of the call (Twilio `CallSid`): for a call the server placed, the sid
    /// its dial was answered with, as Twilio would send; made up per call when `None`.
    pub call_sid: Option<String>,
    /// Play as Telnyx instead of Twilio.
    pub telnyx: Option<super::telnyx::TelnyxReplay>,
    /// Twilio, outbound: play the callee of each call the server dials through this stand-in
    /// REST API (status callbacks, the TwiML fetch, the stream), instead of calling in.
    pub twilio_api: Option<super::twilio_api::FakeTwilio>,
    /// The model is played in this process too (`--serve-model`): caller audio becomes probe
    /// frames and every frame is timed one way, end to end, on this record.
    pub probe: Option<crate::probe::Book>,
    /// Keep what the caller heard, byte for byte ([`CallReport::heard`]; tests compare it with
    /// the server's recording).
    pub keep_heard: bool,
}

/// How fast received audio plays.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub bytes_per_ms: f64,
    /// Packet codecs (Opus): every `media` message is one 20 ms frame of this many PCM bytes,
    /// whatever its payload's size.
    pub frame_bytes: Option<u64>,
    /// Keep what plays, this byte being silence ([`Target::keep_heard`]; Twilio's μ-law).
    pub keep_heard: Option<u8>,
}

/// How this call's carrier words the frames that differ per call.
enum Dialect {
    /// `seq`: the last `sequenceNumber` sent. Every message this client sends is numbered
    /// consecutively (fixture frames renumbered, mark echoes in line), as Twilio numbers its
    /// stream, so the server sees no gap that is not there.
    Twilio {
        params: Vec<(String, String)>,
        call_sid: String,
        stream_sid: String,
        seq: u64,
    },
    Telnyx {
        start: String,
        seq: u64,
    },
}

impl Dialect {
    fn start(&mut self, recorded: &str) -> Utf8Bytes {
        match self {
            Dialect::Twilio { params, call_sid, stream_sid, .. } => {
                let text = start_for_this_call(recorded, params, call_sid, stream_sid);
                self.number(&Utf8Bytes::from(text))
            }
            Dialect::Telnyx { start, .. } => start.clone().into(),
        }
    }

    /// A recorded frame with this stream's next sequence number (Twilio).
    fn number(&mut self, text: &Utf8Bytes) -> Utf8Bytes {
        match self {
            Dialect::Twilio { seq, .. } => {
                *seq += 1;
                renumber(text, *seq)
            }
            Dialect::Telnyx { .. } => text.clone(),
        }
    }

    fn echo(&mut self, name: &str) -> String {
        match self {
            Dialect::Twilio { stream_sid, seq, .. } => {
                *seq += 1;
                serde_json::json!({"event": "mark", "sequenceNumber": seq.to_string(),
                "streamSid": stream_sid, "mark": {"name": name}})
                .to_string()
            }
            Dialect::Telnyx { seq, .. } => {
                *seq += 1;
                super::telnyx::mark_echo(*seq, name)
            }
        }
    }
}

/// `text` with its `"sequenceNumber":"…"` value replaced by `seq` (unchanged if it has none).
fn renumber(text: &Utf8Bytes, seq: u64) -> Utf8Bytes {
    replace_field(text, "sequenceNumber", &seq.to_string())
}

/// `text` with the first `"key":"…"` string value replaced by `value` (unchanged if it has
/// none): frames are re-worded per call without parsing them (ours carry no escapes).
pub(crate) fn replace_field(text: &Utf8Bytes, key: &str, value: &str) -> Utf8Bytes {
    let s: &str = text.as_ref();
    let pat = format!("\"{key}\":\"");
    let Some(at) = s.find(&pat) else { return text.clone() };
    let start = at + pat.len();
    let Some(len) = s[start..].find('"') else { return text.clone() };
    Utf8Bytes::from(format!("{}{value}{}", &s[..start], &s[start + len..]))
}

/// One barge-in as the fake carrier saw it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClearSeen {
    pub at_ms: u64,
    /// Where the answer was cut: how much of it had played.
    pub heard_in_spurt_ms: f64,
    pub discarded_ms: f64,
    /// The caller was speaking: a barge-in (else a cut for another reason, e.g. a reconnect).
    pub by_caller: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CallReport {
    pub fixture: String,
    pub frames_sent: u64,
    pub media_received: u64,
    pub audio_received_ms: f64,
    pub marks_received: u64,
    pub marks_echoed: u64,
    pub clears: Vec<ClearSeen>,
    pub server_close_code: Option<u16>,
    /// Why the call failed, as a caller would say it (`None`: it worked).
    pub error: Option<String>,
    pub duration_ms: u64,
    /// Whether the AI was heard at all, how soon, how soon after each of the caller's turns.
    pub turns: Turns,
    /// Every frame timed one way, and the frames that never arrived (`--serve-model`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub one_way: Option<crate::probe::OneWayCall>,
    /// What the caller heard (carrier encoding, silence where nothing played), on the stream's
    /// clock from its opening; kept when the target asks.
    #[serde(skip)]
    pub heard: Option<Vec<u8>>,
}

/// Plays `fixture` once against `target`.
pub async fn run_call(target: &Target, name: &str, fixture: Arc<Prepared>, n: usize) -> CallReport {
    let mut report = CallReport { fixture: name.to_string(), ..Default::default() };
    let started = Instant::now();
    if let Err(e) = play(target, &fixture, n, &mut report).await {
        report.error = Some(e);
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

async fn play(target: &Target, fixture: &Prepared, n: usize, report: &mut CallReport) -> Result<(), String> {
    if let (None, Some(api)) = (&target.telnyx, &target.twilio_api) {
        return play_dialled_twilio(target, api, fixture, n, report).await;
    }
    let Some(t) = &target.telnyx else {
        let (stream_url, params, call_sid) = voice_webhook(target, n).await?;
        let mut request = ws_request(target, &stream_url)?;
        if let Some(token) = &target.auth_token {
            let sig = signature::compute(token, &stream_url, &[]);
            request.headers_mut().insert("X-Twilio-Signature", HeaderValue::from_str(&sig).map_err(|e| e.to_string())?);
        }
        let mut dialect = Dialect::Twilio { params, call_sid, stream_sid: "MZreplay".into(), seq: 0 };
        let keep_heard = target.keep_heard.then_some(crate::media::g711::ULAW_SILENCE);
        let pace = Pace { bytes_per_ms: BYTES_PER_MS, frame_bytes: None, keep_heard };
        let mut probe = target.probe.as_ref().map(|b| CallProbe::new(b, n, StreamFormat::PCMU_8K));
        let result = stream(request, &fixture.steps, &mut dialect, pace, target.speed, report, probe.as_mut()).await;
        if let Some(p) = probe {
            report.one_way = Some(p.finish().await);
        }
        return result;
    };
    let opened = super::telnyx::open(target, t, n).await?;
    let wire = opened.wire()?;
    let prepared = super::telnyx::prepare(fixture, wire, t.shuffle)?;
    let request = ws_request(target, &opened.stream_url)?;
    let mut dialect = Dialect::Telnyx { start: opened.start_frame(), seq: 0 };
    let mut probe = match (&target.probe, wire) {
        (None, _) => None,
        (Some(b), Wire::Samples(format)) => Some(CallProbe::new(b, n, format)),
        (Some(_), Wire::Opus(_)) => {
            return Err("probe frames need PCMU, PCMA or L16 on the wire (Opus is lossy)".into());
        }
    };
    let pace = super::telnyx::pace(wire);
    let result = stream(request, &prepared.steps, &mut dialect, pace, target.speed, report, probe.as_mut()).await;
    super::telnyx::desk_answers(target, t, &opened).await?;
    super::telnyx::hang_up(target, t, &opened).await?;
    if let Some(p) = probe {
        report.one_way = Some(p.finish().await);
    }
    result
}

/// How long an outbound replay waits for the server to dial (a person creates the call meanwhile).
const DIAL_WAIT: Duration = Duration::from_secs(120);

/// Twilio's part of a call the server dialled through the stand-in API: it rings and is
/// answered (status callbacks), the TwiML is fetched and streamed, then it completes.
async fn play_dialled_twilio(
    target: &Target,
    api: &super::twilio_api::FakeTwilio,
    fixture: &Prepared,
    n: usize,
    report: &mut CallReport,
) -> Result<(), String> {
    let dial = api.take_dial(DIAL_WAIT).await.ok_or("the server dialled nobody within two minutes")?;
    let public = target.public_url.trim_end_matches('/');
    let voice_path = dial
        .field("Url")
        .strip_prefix(public)
        .ok_or_else(|| format!("the dial's Url {} is not under the public URL {public}", dial.field("Url")))?
        .to_string();
    let callback = dial.field("StatusCallback").to_string();
    let started = Instant::now();
    status_callback(target, &callback, &dial.sid, &[("CallStatus", "ringing"), ("SequenceNumber", "0")]).await?;
    status_callback(target, &callback, &dial.sid, &[("CallStatus", "in-progress"), ("SequenceNumber", "1")]).await?;
    let placed = Target { voice_path, call_sid: Some(dial.sid.clone()), twilio_api: None, ..target.clone() };
    let result = Box::pin(play(&placed, fixture, n, report)).await;
    desk_answers_twilio(target, api, &dial.sid).await?;
    let seconds = started.elapsed().as_secs().max(1).to_string();
    let done = [("CallStatus", "completed"), ("SequenceNumber", "2"), ("CallDuration", seconds.as_str())];
    status_callback(target, &callback, &dial.sid, &done).await?;
    result
}

/// A transfer of call `sid` (the server redirected it to a `<Dial action>`): the stand-in's desk
/// answers, talks and hangs up, and Twilio asks the action URL what next (signed), as it does
/// when a dialled leg ends.
async fn desk_answers_twilio(target: &Target, api: &super::twilio_api::FakeTwilio, sid: &str) -> Result<(), String> {
    let redirects = api.updates(sid);
    let Some(action) = redirects.iter().rev().find_map(|form| {
        let twiml = form.iter().find(|(k, _)| k == "Twiml").map(|(_, v)| v.as_str())?;
        let start = twiml.find("<Dial action=\"")? + "<Dial action=\"".len();
        let end = twiml[start..].find('"')?;
        Some(twiml[start..start + end].replace("&amp;", "&"))
    }) else {
        return Ok(());
    };
    let fields = [("DialCallStatus", "completed"), ("DialCallDuration", "1"), ("DialCallSid", "CAdesk")];
    status_callback(target, &action, sid, &fields).await
}

/// Posts one of Twilio's status callbacks for `sid` to `callback` (a public URL), signed.
async fn status_callback(target: &Target, callback: &str, sid: &str, fields: &[(&str, &str)]) -> Result<(), String> {
    if callback.is_empty() {
        return Ok(());
    }
    let public = target.public_url.trim_end_matches('/');
    let path = callback.strip_prefix(public).ok_or_else(|| format!("StatusCallback {callback} is not ours"))?;
    let mut params: Vec<(String, String)> = vec![("CallSid".into(), sid.into())];
    params.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let mut req = super::http().post(format!("{}{path}", target.url.trim_end_matches('/'))).form(&params);
    if let Some(token) = &target.auth_token {
        req = req.header("X-Twilio-Signature", signature::compute(token, callback, &params));
    }
    let resp = req.send().await.map_err(|e| format!("status callback failed: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("status callback answered {}", resp.status()));
    }
    Ok(())
}

/// The upgrade request for `stream_url`'s path and query on the server we talk to.
fn ws_request(
    target: &Target,
    stream_url: &str,
) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, String> {
    let url = url::Url::parse(stream_url).map_err(|e| format!("bad stream URL: {e}"))?;
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let ws_base = crate::providers::carrier::ws_base(&target.url);
    format!("{ws_base}{path}").into_client_request().map_err(|e| e.to_string())
}

/// Opens the media socket and plays `steps` on it.
async fn stream(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    steps: &[PreparedStep],
    dialect: &mut Dialect,
    pace: Pace,
    speed: f64,
    report: &mut CallReport,
    mut probe: Option<&mut CallProbe>,
) -> Result<(), String> {
    // Small read buffer: tungstenite zero-fills it on every read; frames are ~300 bytes.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4 * 1024);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
        .await
        .map_err(|e| format!("media upgrade failed: {e}"))?;
    let (mut tx, mut rx) = ws.split();

    let speed = speed.max(0.01);
    let bytes_per_ms = pace.bytes_per_ms;
    let t0 = Instant::now();
    let mut steps = steps.iter().peekable();
    let mut playout = match pace.keep_heard {
        Some(silence) => Playout::keeping_heard(silence),
        None => Playout::new(),
    };
    let mut last_advance = t0;
    let mut carry = 0.0f64;
    let mut done_at: Option<Instant> = None;
    let mut echoes = Vec::new();
    loop {
        let next_step = steps.peek().map(|s| t0 + Duration::from_secs_f64(s.t_ms as f64 / 1000.0 / speed));
        let next_mark = playout_mark_deadline(&playout, last_advance, speed, bytes_per_ms);
        tokio::select! {
            _ = sleep_until(next_step), if next_step.is_some() => {
                let Some(step) = steps.next() else { continue };
                let text = match step.kind {
                    Kind::Mark => continue,
                    Kind::Start => {
                        report.turns.started(Instant::now());
                        dialect.start(&step.text)
                    }
                    Kind::Media => {
                        report.frames_sent += 1;
                        let now = Instant::now();
                        report.turns.caller_frame(step.voiced, now);
                        match probe.as_deref_mut() {
                            Some(p) => dialect.number(&p.caller_frame(&step.text, step.frame, step.voiced, now)),
                            None => dialect.number(&step.text),
                        }
                    }
                    Kind::Other => dialect.number(&step.text),
                };
                if tx.send(Message::Text(text)).await.is_err() {
                    return Err(cut_short(report));
                }
                if steps.peek().is_none() {
                    let now = Instant::now();
                    done_at = Some(now + DRAIN);
                    if let Some(p) = probe.as_deref_mut() {
                        p.hang_up(now);
                    }
                }
            }
            _ = sleep_until(next_mark), if next_mark.is_some() => {
                advance(&mut playout, &mut last_advance, &mut carry, speed * bytes_per_ms, &mut echoes);
            }
            _ = sleep_until(done_at), if done_at.is_some() => break,
            msg = rx.next() => {
                advance(&mut playout, &mut last_advance, &mut carry, speed * bytes_per_ms, &mut echoes);
                match msg {
                    Some(Ok(Message::Text(text))) => {
                        on_server(&text, &mut playout, report, t0, &mut echoes, pace, probe.as_deref_mut())
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let code = frame.as_ref().map(|f| u16::from(f.code));
                        report.server_close_code = code;
                        if code != Some(1000) {
                            let why = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                            return Err(format!(
                                "the server ended the stream with {} {why}",
                                code.map_or("no close code".to_string(), |c| c.to_string())
                            ));
                        }
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(format!("{} ({e})", cut_short(report))),
                    None if steps.peek().is_some() => return Err(cut_short(report)),
                    None => break,
                }
            }
        }
        for name in echoes.drain(..) {
            let echo = dialect.echo(&name);
            report.marks_echoed += 1;
            if tx.send(Message::Text(echo.into())).await.is_err() {
                break;
            }
        }
    }
    let _ = tx.send(Message::Close(None)).await;
    advance(&mut playout, &mut last_advance, &mut carry, speed * bytes_per_ms, &mut echoes);
    report.heard = playout.take_heard();
    if report.media_received == 0 {
        return Err("the AI never answered: no audio in the whole call".into());
    }
    Ok(())
}

/// The stream went away before the fixture ended (a server stopped or crashed mid-call).
fn cut_short(report: &CallReport) -> String {
    format!("the stream dropped mid-call after {} caller frames (server gone?)", report.frames_sent)
}

/// What a fixture step is, decided once per fixture rather than per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Start,
    Media,
    /// A recorded mark echo: skipped (this client echoes the marks of this run itself).
    Mark,
    Other,
}

#[derive(Debug, Clone)]
pub struct PreparedStep {
    pub t_ms: u64,
    pub kind: Kind,
    /// Shared, cheaply cloned frame text.
    pub text: Utf8Bytes,
    /// A caller media frame that holds speech (decided once per fixture).
    pub voiced: bool,
    /// A caller media frame's place in its stream, from 0 (`--shuffle` moves frames on the
    /// wire, not their places: a probe frame is named by its place).
    pub frame: u32,
}

/// A fixture ready to send from many calls at once.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub steps: Vec<PreparedStep>,
}

impl Prepared {
    pub fn new(fixture: &Fixture) -> Prepared {
        let mut frames = 0u32;
        let steps = fixture
            .steps
            .iter()
            .map(|s| {
                let v = serde_json::from_str::<serde_json::Value>(&s.text).unwrap_or_default();
                let kind = match v["event"].as_str() {
                    Some("start") => Kind::Start,
                    Some("media") => Kind::Media,
                    Some("mark") => Kind::Mark,
                    _ => Kind::Other,
                };
                let voiced = kind == Kind::Media && v["media"]["payload"].as_str().is_some_and(voiced_ulaw_base64);
                let frame = frames;
                frames += u32::from(kind == Kind::Media);
                PreparedStep { t_ms: s.t_ms, kind, text: Utf8Bytes::from(s.text.clone()), voiced, frame }
            })
            .collect();
        Prepared { steps }
    }
}

/// The fixture's `start` with this call's TwiML parameters (call id, one-time token).
fn start_for_this_call(text: &str, params: &[(String, String)], call_sid: &str, stream_sid: &mut String) -> String {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(text) else { return text.to_string() };
    let map: serde_json::Map<String, serde_json::Value> =
        params.iter().map(|(k, val)| (k.clone(), val.clone().into())).collect();
    v["start"]["customParameters"] = map.into();
    v["start"]["callSid"] = call_sid.into();
    if let Some(sid) = v["streamSid"].as_str() {
        *stream_sid = sid.to_string();
    }
    v.to_string()
}

/// Handles one server frame. Media is counted without decoding (base64 length arithmetic):
/// at 1000 calls this client shares the machine with the server it measures.
fn on_server(
    text: &str,
    playout: &mut Playout,
    report: &mut CallReport,
    t0: Instant,
    echoes: &mut Vec<String>,
    pace: Pace,
    probe: Option<&mut CallProbe>,
) {
    let bytes_per_ms = pace.bytes_per_ms;
    match field(text, "event") {
        Some("media") => {
            if let (Some(p), Some(payload)) = (probe, field(text, "payload")) {
                p.model_audio(payload, Instant::now());
            }
            let bytes = pace.frame_bytes.unwrap_or_else(|| field(text, "payload").map_or(0, base64_len));
            report.turns.ai_audio(playout.queued() == 0, Instant::now());
            report.media_received += 1;
            report.audio_received_ms += bytes as f64 / bytes_per_ms;
            playout.push_audio(bytes);
            if pace.keep_heard.is_some()
                && let Some(audio) = field(text, "payload").and_then(|p| BASE64.decode(p).ok())
            {
                playout.push_content(&audio);
            }
        }
        Some("mark") => {
            report.marks_received += 1;
            if let Some(name) = field(text, "name")
                && let Some(now) = playout.push_mark(name.to_string())
            {
                echoes.push(now);
            }
        }
        Some("clear") => {
            if let Some(p) = probe {
                p.clear(Instant::now());
            }
            let c = playout.clear();
            let by_caller = report.turns.clear(Instant::now());
            report.clears.push(ClearSeen {
                at_ms: t0.elapsed().as_millis() as u64,
                heard_in_spurt_ms: c.heard_in_spurt as f64 / bytes_per_ms,
                discarded_ms: c.discarded as f64 / bytes_per_ms,
                by_caller,
            });
            echoes.extend(c.flushed_marks);
        }
        _ => {}
    }
}

/// The string value of `"key":"…"` in a frame whose strings carry no escapes (ours never do).
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":\"");
    let start = text.find(&pat)? + pat.len();
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

/// Decoded length of standard base64 text.
fn base64_len(b64: &str) -> u64 {
    let pad = b64.bytes().rev().take_while(|&c| c == b'=').count();
    (b64.len() / 4 * 3).saturating_sub(pad) as u64
}

/// Plays what `rate` (bytes per ms × speed) allows since the last call.
fn advance(playout: &mut Playout, last: &mut Instant, carry: &mut f64, rate: f64, echoes: &mut Vec<String>) {
    let now = Instant::now();
    let exact = now.duration_since(*last).as_secs_f64() * 1000.0 * rate + *carry;
    let whole = exact.floor();
    *carry = exact - whole;
    *last = now;
    playout.advance(whole as u64, echoes);
}

/// When the next queued mark will have played (queued audio before it, at playback speed).
fn playout_mark_deadline(playout: &Playout, last: Instant, speed: f64, bytes_per_ms: f64) -> Option<Instant> {
    let bytes = playout.bytes_until_next_mark()?;
    Some(last + Duration::from_secs_f64(bytes as f64 / bytes_per_ms / 1000.0 / speed))
}

/// Posts the voice webhook as Twilio would; the stream URL and parameters from the TwiML, and
/// this call's `CallSid` (its stream's `start` carries the same).
async fn voice_webhook(target: &Target, n: usize) -> Result<(String, Vec<(String, String)>, String), String> {
    let call_sid = target.call_sid.clone().unwrap_or_else(|| format!("CA{:032x}", rand::random::<u128>()));
    let params: Vec<(String, String)> = [
        ("AccountSid", "ACreplay00000000000000000000000000".to_string()),
        ("ApiVersion", "2010-04-01".into()),
        ("CallSid", call_sid.clone()),
        ("CallStatus", "ringing".into()),
        ("Direction", "inbound".into()),
        ("From", format!("+1555{:07}", n % 10_000_000)),
        ("To", "+15557654321".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let url = format!("{}{}", target.url.trim_end_matches('/'), target.voice_path);
    let mut req = super::http().post(&url).form(&params);
    if let Some(token) = &target.auth_token {
        let signed = format!("{}{}", target.public_url.trim_end_matches('/'), target.voice_path);
        req = req.header("X-Twilio-Signature", signature::compute(token, &signed, &params));
    }
    let resp = req.send().await.map_err(|e| format!("voice webhook failed: {e}"))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!("voice webhook answered {status}: {body}"));
    }
    let (url, stream_params) = twiml::parse_connect_stream(&body)
        .ok_or_else(|| format!("voice webhook answered no <Connect><Stream>: {body}"))?;
    Ok((url, stream_params, call_sid))
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_base64_lengths() {
        let frame = r#"{"event":"media","streamSid":"MZ1","media":{"payload":"//8="}}"#;
        assert_eq!(field(frame, "event"), Some("media"));
        assert_eq!(field(frame, "payload").map(base64_len), Some(2));
        assert_eq!(base64_len("AAAA"), 3);
        assert_eq!(base64_len("AAAAAA=="), 4);
        assert_eq!(field(r#"{"event":"mark","mark":{"name":"m7"}}"#, "name"), Some("m7"));
    }

    #[test]
    fn recorded_frames_are_renumbered_in_line() {
        let frame = Utf8Bytes::from(r#"{"event":"media","sequenceNumber":"412","media":{"payload":"//8="}}"#);
        assert_eq!(
            renumber(&frame, 3).as_str(),
            r#"{"event":"media","sequenceNumber":"3","media":{"payload":"//8="}}"#
        );
        let mut d = Dialect::Twilio { params: vec![], call_sid: "CA1".into(), stream_sid: "MZ1".into(), seq: 0 };
        assert!(d.number(&frame).as_str().contains(r#""sequenceNumber":"1""#));
        assert!(d.echo("m1").contains(r#""sequenceNumber":"2""#), "echoes continue the same count");
        let plain = Utf8Bytes::from(r#"{"event":"connected"}"#);
        assert_eq!(renumber(&plain, 9), plain);
    }
}
