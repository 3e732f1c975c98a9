//! Replaying a call as Telnyx would: the signed `call.initiated` webhook, the answer command
//! caught by the fake Call Control API (its stream URL with the one-time token, its codec), the
//! fixture's frames in Telnyx's shapes and that codec, `call.answered` / `call.hangup` around it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::client::Pace;
use super::client::{Kind, Prepared, PreparedStep, Target};
use super::telnyx_api::{Command, FakeTelnyx};
use crate::media::StreamFormat;
use crate::media::opus::OpusCodec;
use crate::media::reframe::Reframer;
use crate::media::transcode::Transcoder;
use crate::providers::telnyx::media::{Wire, stream_format, wire_format};
use crate::providers::telnyx::signature;

/// How long to wait for voxbridge to answer or dial.
const COMMAND_WAIT: Duration = Duration::from_secs(10);
/// How long an outbound replay waits for the server to dial (a person creates the call meanwhile).
const DIAL_WAIT: Duration = Duration::from_secs(120);
const STREAM_ID: &str = "replay-stream";

/// The Telnyx side of a replay.
#[derive(Debug, Clone)]
pub struct TelnyxReplay {
    /// The fake Call Control API the server's `TELNYX_API_BASE` points at.
    pub api: FakeTelnyx,
    /// Secret key whose public half is the server's `TELNYX_PUBLIC_KEY` (webhooks unsigned without).
    pub signing_key: Option<[u8; 32]>,
    /// Swap neighbouring media frames (Telnyx does not guarantee order).
    pub shuffle: bool,
    /// Stream the call the server dialled (the oldest dial not yet played) instead of calling in.
    pub dialed: bool,
}

/// A call Telnyx is about to stream.
#[derive(Debug, Clone)]
pub struct Opened {
    pub stream_url: String,
    pub call_control_id: String,
    pub client_state: Option<String>,
    /// Encoding and rate as Telnyx names them (`PCMU`, 8000).
    pub encoding: String,
    pub rate: u32,
}

impl Opened {
    fn from_command(c: &Command) -> Result<Opened, String> {
        let b = &c.body;
        let stream_url = b["stream_url"].as_str().ok_or("the command carried no stream_url")?.to_string();
        if b["stream_bidirectional_mode"] != "rtp" {
            return Err("the command did not ask for bidirectional RTP (no audio would play)".into());
        }
        let encoding = b["stream_bidirectional_codec"].as_str().unwrap_or("PCMU").to_string();
        // `answer` carries no rate (Telnyx has none there): the codec's own applies.
        let natural = if matches!(encoding.as_str(), "L16" | "OPUS") { 16_000 } else { 8_000 };
        let rate = b["stream_bidirectional_sampling_rate"].as_u64().map_or(natural, |r| r as u32);
        Ok(Opened {
            stream_url,
            call_control_id: c.call_control_id.clone(),
            client_state: b["client_state"].as_str().map(str::to_string),
            encoding,
            rate,
        })
    }

    pub fn wire(&self) -> Result<Wire, String> {
        wire_format(&self.encoding, Some(self.rate)).ok_or_else(|| format!("replay cannot play {}", self.encoding))
    }

    /// This call's `start` frame.
    pub fn start_frame(&self) -> String {
        json!({"event": "start", "sequence_number": "1", "stream_id": STREAM_ID, "start": {
            "user_id": "replay", "call_control_id": self.call_control_id, "call_session_id": "replay-session",
            "from": "+15550000000", "to": "+15557654321", "client_state": self.client_state,
            "media_format": {"encoding": self.encoding, "sample_rate": self.rate, "channels": 1}}})
        .to_string()
    }
}

/// Sets the call up: calls in (webhook → answer) or picks up the server's dial.
pub async fn open(target: &Target, t: &TelnyxReplay, n: usize) -> Result<Opened, String> {
    if t.dialed {
        let dial = t.api.take_dial(DIAL_WAIT).await.ok_or("the server dialled nobody within two minutes")?;
        let opened = Opened::from_command(&dial)?;
        // The callee picks up (a second `call.answered`, if a test sent its own, changes nothing).
        let payload = json!({"call_control_id": opened.call_control_id, "client_state": opened.client_state,
            "from": dial.body["from"], "to": dial.body["to"], "state": "answered"});
        post_webhook(target, t, "call.answered", payload).await?;
        return Ok(opened);
    }
    let ccid = format!("v3:replay-{n}-{:016x}", rand::random::<u64>());
    let payload = json!({"call_control_id": ccid, "direction": "incoming", "state": "parked",
        "from": format!("+1555{:07}", n % 10_000_000), "to": "+15557654321", "connection_id": "replay"});
    post_webhook(target, t, "call.initiated", payload).await?;
    let answer = t
        .api
        .wait_for(COMMAND_WAIT, |c| c.action == "answer" && c.call_control_id == ccid)
        .await
        .ok_or("the server did not answer the call")?;
    let opened = Opened::from_command(&answer)?;
    let payload = json!({"call_control_id": ccid, "client_state": opened.client_state, "state": "answered"});
    post_webhook(target, t, "call.answered", payload).await?;
    Ok(opened)
}

/// A transfer of the call (`actions/transfer`): the stand-in's desk answers its leg (the leg's
/// own `call.answered`, with the transfer's `client_state`), as a person picking up would.
pub async fn desk_answers(target: &Target, t: &TelnyxReplay, opened: &Opened) -> Result<(), String> {
    let transfer = t
        .api
        .commands()
        .into_iter()
        .rev()
        .find(|c| c.action == "transfer" && c.call_control_id == opened.call_control_id);
    let Some(transfer) = transfer else { return Ok(()) };
    let payload = json!({"call_control_id": format!("{}-desk", opened.call_control_id),
        "client_state": transfer.body["client_state"], "to": transfer.body["to"], "state": "answered"});
    post_webhook(target, t, "call.answered", payload).await
}

/// The call is over on the phone side.
pub async fn hang_up(target: &Target, t: &TelnyxReplay, opened: &Opened) -> Result<(), String> {
    let payload = json!({"call_control_id": opened.call_control_id, "client_state": opened.client_state,
        "hangup_cause": "normal_clearing", "hangup_source": "caller", "sip_hangup_cause": "200"});
    post_webhook(target, t, "call.hangup", payload).await
}

/// Posts a Call Control webhook, signed when a key is set.
pub async fn post_webhook(target: &Target, t: &TelnyxReplay, event_type: &str, payload: Value) -> Result<(), String> {
    let body = webhook_body(&format!("{:032x}", rand::random::<u128>()), event_type, payload);
    let mut req = super::http()
        .post(format!("{}/webhooks/telnyx", target.url.trim_end_matches('/')))
        .header("content-type", "application/json")
        .body(body.clone());
    if let Some(key) = &t.signing_key {
        let ts = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()).to_string();
        req = req
            .header("telnyx-timestamp", &ts)
            .header("telnyx-signature-ed25519", signature::sign(key, &ts, body.as_bytes()));
    }
    let resp = req.send().await.map_err(|e| format!("{event_type} webhook failed: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{event_type} webhook answered {}", resp.status()));
    }
    Ok(())
}

/// A Call Control webhook body (the envelope of protocols.md §3.5, with a delivery `meta`).
pub fn webhook_body(id: &str, event_type: &str, payload: Value) -> String {
    json!({"data": {"record_type": "event", "event_type": event_type, "id": id,
        "occurred_at": "2026-11-21T12:00:00.000000Z", "payload": payload}, "meta": {"attempt": 1}})
    .to_string()
}

/// A mark echo in Telnyx's shape.
pub fn mark_echo(seq: u64, name: &str) -> String {
    json!({"event": "mark", "sequence_number": seq.to_string(), "stream_id": STREAM_ID, "mark": {"name": name}})
        .to_string()
}

/// How received audio in `wire` plays (Opus: 20 ms per message).
pub fn pace(wire: Wire) -> Pace {
    let f = wire.bridge_format();
    let frame_bytes = matches!(wire, Wire::Opus(_)).then(|| f.frame_bytes_20ms() as u64);
    Pace { bytes_per_ms: f.bytes_for_ms(1) as f64, frame_bytes, keep_heard: None }
}

/// The fixture's frames as Telnyx would send them in `wire`: audio transcoded from the
/// fixture's own format (Twilio fixtures are μ-law 8 kHz), re-cut into 20 ms frames (one Opus
/// packet each for Opus) with sequence numbers and chunks; `start` is rebuilt per call. A recorded
/// Telnyx call keeps its frames as they arrived: their audio is taken in `media.chunk` order.
pub fn prepare(fixture: &Prepared, wire: Wire, shuffle: bool) -> Result<Prepared, String> {
    let to = wire.bridge_format();
    let mut opus = match wire {
        Wire::Opus(rate) => Some(OpusCodec::new(rate).map_err(|e| e.to_string())?),
        Wire::Samples(_) => None,
    };
    let mut from = StreamFormat::PCMU_8K;
    let mut transcoder: Option<Transcoder> = None;
    let mut reframer = Reframer::new(to.frame_bytes_20ms());
    let mut seq = 1u64;
    let mut chunk = 0u64;
    let mut steps = Vec::with_capacity(fixture.steps.len());
    let mut out = Vec::new();
    let mut payloads = payloads_in_chunk_order(fixture).into_iter();
    for step in &fixture.steps {
        // Media steps were read (in chunk order) above; only the others are parsed here.
        let parse = || serde_json::from_str::<Value>(&step.text).unwrap_or_default();
        let push = |steps: &mut Vec<PreparedStep>, kind, text: String, frame: u64| {
            let (text, voiced, frame) = (Utf8Bytes::from(text), step.voiced, frame as u32);
            steps.push(PreparedStep { t_ms: step.t_ms, kind, text, voiced, frame })
        };
        match step.kind {
            Kind::Start => {
                // A recorded Telnyx fixture says its own format.
                let v = parse();
                let f = &v["start"]["media_format"];
                if let Some(enc) = f["encoding"].as_str() {
                    from = stream_format(enc, f["sample_rate"].as_u64().map(|r| r as u32)).ok_or("fixture codec")?;
                }
                push(&mut steps, Kind::Start, String::new(), 0);
            }
            Kind::Media => {
                let payload = B64.decode(payloads.next().unwrap_or_default()).map_err(|e| e.to_string())?;
                let tc = match &mut transcoder {
                    Some(tc) => tc,
                    None => transcoder.insert(Transcoder::new(from, to).map_err(|e| e.to_string())?),
                };
                out.clear();
                tc.process(&payload, &mut out);
                reframer.push(&out, |frame| {
                    let frame = match opus.as_mut() {
                        Some(codec) => codec.encode(frame).map(<[u8]>::to_vec).unwrap_or_default(),
                        None => frame.to_vec(),
                    };
                    seq += 1;
                    chunk += 1;
                    let text = json!({"event": "media", "sequence_number": seq.to_string(), "stream_id": STREAM_ID,
                        "media": {"track": "inbound", "chunk": chunk.to_string(),
                        "timestamp": ((chunk - 1) * 20).to_string(), "payload": B64.encode(&frame)}});
                    push(&mut steps, Kind::Media, text.to_string(), chunk - 1);
                });
            }
            Kind::Mark => {}
            Kind::Other => {
                seq += 1;
                let v = parse();
                let text = match v["event"].as_str() {
                    Some("connected") => json!({"event": "connected", "version": "1.0.0"}),
                    Some("stop") => json!({"event": "stop", "sequence_number": seq.to_string(), "stream_id": STREAM_ID,
                        "stop": {"user_id": "replay", "call_control_id": "replay"}}),
                    Some("dtmf") => json!({"event": "dtmf", "sequence_number": seq.to_string(), "stream_id": STREAM_ID,
                        "occurred_at": "2026-11-21T12:00:00.000000Z", "dtmf": {"digit": v["dtmf"]["digit"]}}),
                    _ => v.clone(),
                };
                push(&mut steps, Kind::Other, text.to_string(), 0);
            }
        }
    }
    if shuffle {
        let media: Vec<usize> = (0..steps.len()).filter(|&i| steps[i].kind == Kind::Media).collect();
        for pair in media.chunks_exact(2) {
            // The frames trade places on the wire; their timing slots stay.
            let (a, b) = (pair[0], pair[1]);
            let (first, second) = steps.split_at_mut(b);
            let (a, b) = (&mut first[a], &mut second[0]);
            std::mem::swap(&mut a.text, &mut b.text);
            std::mem::swap(&mut a.voiced, &mut b.voiced);
            std::mem::swap(&mut a.frame, &mut b.frame);
        }
    }
    Ok(Prepared { steps })
}

/// The fixture's media payloads (base64), ordered by `media.chunk` where frames carry one (a
/// stable sort: Twilio fixtures, without chunks, keep their order).
fn payloads_in_chunk_order(fixture: &Prepared) -> Vec<String> {
    let mut media: Vec<(u64, String)> = fixture
        .steps
        .iter()
        .filter(|s| s.kind == Kind::Media)
        .map(|s| {
            let v: Value = serde_json::from_str(&s.text).unwrap_or_default();
            let chunk = crate::wire_json::lenient_u64(&v["media"]["chunk"]).ok().flatten().unwrap_or(0);
            (chunk, v["media"]["payload"].as_str().unwrap_or_default().to_string())
        })
        .collect();
    media.sort_by_key(|(chunk, _)| *chunk);
    media.into_iter().map(|(_, payload)| payload).collect()
}
