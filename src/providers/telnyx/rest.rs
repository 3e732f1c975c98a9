//! Telnyx Call Control v2 commands voxbridge sends (protocols.md §3.2–3.4): dial with a
//! bidirectional RTP stream, answer with one, hang up, read whether a call is alive. Bearer
//! auth against a configurable base URL; every command carries a `command_id`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::providers::rest::{self, RestError};

const PROVIDER: &str = "Telnyx";
/// "Call has already ended" (HTTP 422 on commands to a dead call).
const CALL_ENDED: &str = "90018";

/// The codec Telnyx streams to us and we stream back (the same both ways: no transcoding at
/// Telnyx).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StreamCodec {
    #[value(name = "PCMU")]
    Pcmu,
    #[value(name = "PCMA")]
    Pcma,
    #[value(name = "L16")]
    L16,
    #[value(name = "OPUS")]
    Opus,
}

impl StreamCodec {
    /// The wire name (case-sensitive at Telnyx).
    pub fn as_str(self) -> &'static str {
        match self {
            StreamCodec::Pcmu => "PCMU",
            StreamCodec::Pcma => "PCMA",
            StreamCodec::L16 => "L16",
            StreamCodec::Opus => "OPUS",
        }
    }

    /// The bidirectional sampling rate we ask for.
    pub fn rate(self) -> u32 {
        match self {
            StreamCodec::Pcmu | StreamCodec::Pcma => 8000,
            StreamCodec::L16 | StreamCodec::Opus => 16000,
        }
    }
}

/// Where and how Telnyx should stream a call's audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    /// `wss://…/media/telnyx?call_id=…&token=…` (the token is the socket's only credential).
    pub url: String,
    pub codec: StreamCodec,
}

impl Stream {
    /// The streaming fields of a command. `stream_bidirectional_sampling_rate` exists on `dial`
    /// (and `streaming_start`) only: Telnyx's API and SDK have no such field on `answer`, where
    /// the codec's own rate applies.
    fn fields(&self, body: &mut Value, with_rate: bool) {
        body["stream_url"] = json!(self.url);
        body["stream_track"] = json!("inbound_track");
        body["stream_codec"] = json!(self.codec.as_str());
        body["stream_bidirectional_mode"] = json!("rtp");
        body["stream_bidirectional_codec"] = json!(self.codec.as_str());
        if with_rate {
            body["stream_bidirectional_sampling_rate"] = json!(self.codec.rate());
        }
        body["stream_bidirectional_target_legs"] = json!("self");
    }
}

/// An outbound call to place.
#[derive(Debug, Clone, PartialEq)]
pub struct Dial {
    pub call_id: String,
    pub to: String,
    pub from: String,
    pub webhook_url: String,
    pub timeout_secs: u32,
    pub machine_detection: bool,
    pub stream: Stream,
    /// Distinguishes attempts of one call (the `command_id` must not repeat across them).
    pub attempt: i64,
    /// Telnyx ends the call after this many seconds (`time_limit_secs`, 30–14400).
    pub time_limit_secs: u32,
}

impl Dial {
    /// The `POST /v2/calls` body.
    pub fn body(&self, connection_id: &str) -> Value {
        let mut body = json!({
            "connection_id": connection_id,
            "to": self.to,
            "from": self.from,
            "webhook_url": self.webhook_url,
            "webhook_url_method": "POST",
            "client_state": attempt_state(&self.call_id, self.attempt),
            "command_id": format!("dial-{}-{}", self.call_id, self.attempt),
            "timeout_secs": self.timeout_secs.clamp(5, 600),
            "time_limit_secs": self.time_limit_secs.clamp(30, 14_400),
        });
        if self.machine_detection {
            // `detect_beep` also reports the end of a machine's greeting (when to leave a message).
            body["answering_machine_detection"] = json!("detect_beep");
            body["answering_machine_detection_config"] = json!({"total_analysis_time_millis": 5000});
        }
        self.stream.fields(&mut body, true);
        body
    }
}

/// `client_state` for our call id: base64 of `{"call_id": …}` (echoed in webhooks and `start`).
pub fn client_state(call_id: &str) -> String {
    B64.encode(json!({ "call_id": call_id }).to_string())
}

/// `client_state` for one attempt of an outbound call: base64 of `{"call_id": …, "attempt": n}`,
/// so its webhooks are matched to the attempt even before its `call_control_id` is stored.
pub fn attempt_state(call_id: &str, attempt: i64) -> String {
    B64.encode(json!({ "call_id": call_id, "attempt": attempt }).to_string())
}

/// `client_state` of a transfer's leg to `to` (the human's): its webhooks say how it went.
pub fn transfer_state(call_id: &str, to: &str) -> String {
    B64.encode(json!({ "call_id": call_id, "transfer_to": to }).to_string())
}

/// The target a `client_state` of a transfer's leg names.
pub fn transfer_of(client_state: &str) -> Option<String> {
    decode_state(client_state)?["transfer_to"].as_str().map(str::to_string)
}

/// The attempt a `client_state` of ours names, if it names one.
pub fn attempt_of(client_state: &str) -> Option<i64> {
    decode_state(client_state)?["attempt"].as_i64()
}

/// `client_state` for our call id, asking whoever gets the next `call.speak.ended` to hang up.
fn client_state_hang_up_after_speech(call_id: &str) -> String {
    B64.encode(json!({ "call_id": call_id, "then": "hang_up" }).to_string())
}

/// A `client_state` of ours, decoded.
fn decode_state(client_state: &str) -> Option<Value> {
    serde_json::from_slice(&B64.decode(client_state.trim()).ok()?).ok()
}

/// Whether a `client_state` asks for a hang-up once the speech has ended.
pub fn hangs_up_after_speech(client_state: &str) -> bool {
    decode_state(client_state).is_some_and(|v| v["then"] == "hang_up")
}

/// Our call id from a `client_state`, if it is one of ours.
pub fn call_id_of(client_state: &str) -> Option<String> {
    decode_state(client_state)?["call_id"].as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// A Telnyx account's Call Control client.
#[derive(Clone)]
pub struct TelnyxRest {
    http: reqwest::Client,
    base: String,
    api_key: String,
    connection_id: String,
}

impl std::fmt::Debug for TelnyxRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelnyxRest")
            .field("base", &self.base)
            .field("connection_id", &self.connection_id)
            .finish_non_exhaustive()
    }
}

impl TelnyxRest {
    /// The Call Control application calls are placed on.
    pub fn connection_id(&self) -> &str {
        &self.connection_id
    }

    pub fn new(base: &str, api_key: &str, connection_id: &str) -> TelnyxRest {
        TelnyxRest {
            http: rest::http_client(),
            base: base.trim_end_matches('/').to_string(),
            api_key: api_key.into(),
            connection_id: connection_id.into(),
        }
    }

    /// Places a call; returns its `call_control_id`.
    pub async fn dial(&self, dial: &Dial) -> Result<String, RestError> {
        let (status, v) = self.post("/v2/calls", &dial.body(&self.connection_id)).await?;
        match v["data"]["call_control_id"].as_str() {
            Some(id) if !id.is_empty() => Ok(id.to_string()),
            _ => Err(RestError::Unavailable {
                provider: PROVIDER,
                status,
                message: "answer carried no call_control_id".into(),
            }),
        }
    }

    /// Answers an inbound call, with streaming on when `stream` is given.
    pub async fn answer(&self, call_control_id: &str, call_id: &str, stream: Option<&Stream>) -> Result<(), RestError> {
        let mut body = json!({"client_state": client_state(call_id), "command_id": format!("answer-{call_id}")});
        if let Some(stream) = stream {
            stream.fields(&mut body, false);
        }
        self.post(&action(call_control_id, "answer")?, &body).await.map(drop)
    }

    /// Transfers a live call to `to` (a number or `sip:…`): Telnyx dials it and bridges the
    /// caller over.
    pub async fn transfer(&self, call_control_id: &str, call_id: &str, to: &str, ring_s: u32) -> Result<(), RestError> {
        let body = json!({"to": to, "timeout_secs": ring_s.clamp(5, 120), "client_state": transfer_state(call_id, to),
            "command_id": format!("transfer-{call_control_id}-{:08x}", rand::random::<u32>())});
        self.post(&action(call_control_id, "transfer")?, &body).await.map(drop)
    }

    /// Streams a live call to us again (`streaming_start`: a caller back from a transfer nobody
    /// answered).
    pub async fn start_streaming(
        &self,
        call_control_id: &str,
        call_id: &str,
        stream: &Stream,
    ) -> Result<(), RestError> {
        let mut body = json!({"client_state": client_state(call_id),
            "command_id": format!("stream-{call_control_id}-{:08x}", rand::random::<u32>())});
        stream.fields(&mut body, true);
        self.post(&action(call_control_id, "streaming_start")?, &body).await.map(drop)
    }

    /// Presses `digits` on the call (`send_dtmf`: `w` half a second, `W` a second between keys).
    pub async fn send_dtmf(&self, call_control_id: &str, digits: &str) -> Result<(), RestError> {
        let body = json!({"digits": digits, "duration_millis": 250,
            "command_id": format!("dtmf-{call_control_id}-{:08x}", rand::random::<u32>())});
        self.post(&action(call_control_id, "send_dtmf")?, &body).await.map(drop)
    }

    /// Hangs a call up. A call that already ended (422 / 90018, or 404) is success.
    pub async fn hang_up(&self, call_control_id: &str, command_id: &str) -> Result<(), RestError> {
        let body = json!({ "command_id": command_id });
        match self.post(&action(call_control_id, "hangup")?, &body).await {
            Ok(_) => Ok(()),
            Err(RestError::Rejected { status: 404, .. }) => Ok(()),
            Err(RestError::Rejected { status: 422, message, .. }) if message.starts_with(CALL_ENDED) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Speaks `text` on the call with Telnyx's basic voice. From now on the call's webhooks carry
    /// a `client_state` asking for a hang-up at `call.speak.ended`, so any machine can do it.
    pub async fn speak_then_hang_up(&self, call_control_id: &str, call_id: &str, text: &str) -> Result<(), RestError> {
        let body = json!({"payload": text, "voice": "female", "language": "en-US",
            "client_state": client_state_hang_up_after_speech(call_id), "command_id": format!("speak-{call_control_id}")});
        self.post(&action(call_control_id, "speak")?, &body).await.map(drop)
    }

    /// Whether the call is still up (`GET /v2/calls/{id}`, `data.is_alive`).
    pub async fn is_alive(&self, call_control_id: &str) -> Result<bool, RestError> {
        let url = format!("{}/v2/calls/{}", self.base, rest::call_id_segment(PROVIDER, call_control_id)?);
        let (_, v) = self.send(self.http.get(url)).await?;
        Ok(v["data"]["is_alive"].as_bool().unwrap_or(false))
    }

    /// The `call_control_id` of the live call on our connection whose `client_state` names this
    /// attempt (`GET /v2/connections/{id}/active_calls`, every page), if there is one.
    pub async fn find_active(&self, call_id: &str, attempt: i64) -> Result<Option<String>, RestError> {
        let mut after: Option<String> = None;
        // A bound on pages: a connection has at most a few thousand live calls.
        for _ in 0..40 {
            let mut url = format!(
                "{}/v2/connections/{}/active_calls?page[size]=250",
                self.base,
                rest::path_segment(&self.connection_id)
            );
            if let Some(cursor) = &after {
                url.push_str("&page[after]=");
                url.push_str(&url::form_urlencoded::byte_serialize(cursor.as_bytes()).collect::<String>());
            }
            let (_, v) = self.send(self.http.get(url)).await?;
            let calls = v["data"].as_array().cloned().unwrap_or_default();
            let found = calls.iter().find(|c| {
                let state = c["client_state"].as_str().unwrap_or_default();
                call_id_of(state).as_deref() == Some(call_id) && attempt_of(state) == Some(attempt)
            });
            if let Some(c) = found {
                return Ok(c["call_control_id"].as_str().map(str::to_string));
            }
            match v["meta"]["cursors"]["after"].as_str() {
                Some(cursor) if !calls.is_empty() && v["meta"]["next"].is_string() => after = Some(cursor.to_string()),
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), RestError> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body)).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<(u16, Value), RestError> {
        match rest::send(PROVIDER, request.bearer_auth(&self.api_key)).await? {
            Ok((status, body)) => Ok((status, serde_json::from_str(&body).unwrap_or_default())),
            Err((status, body)) => Err(classify(status, &body)),
        }
    }
}

/// `/v2/calls/{id}/actions/{name}`; an id not of a call control id's shape is never sent.
fn action(call_control_id: &str, name: &str) -> Result<String, RestError> {
    Ok(format!("/v2/calls/{}/actions/{name}", rest::call_id_segment(PROVIDER, call_control_id)?))
}

/// Maps `{"errors": [{"code", "title", "detail"}]}` to an error; the message starts with the
/// code so callers can recognise `90018`.
pub fn classify(status: u16, body: &str) -> RestError {
    let v: Value = serde_json::from_str(body).unwrap_or_default();
    let e = &v["errors"][0];
    let code = match &e["code"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    let text = e["detail"].as_str().or(e["title"].as_str()).unwrap_or("no message");
    let message = if code.is_empty() { text.to_string() } else { format!("{code}: {text}") };
    RestError::from_status(PROVIDER, status, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_state_round_trips_and_matches_the_protocol_example() {
        assert_eq!(call_id_of("eyJjYWxsX2lkIjoiY183S3EyIn0=").as_deref(), Some("c_7Kq2"));
        assert_eq!(call_id_of(&client_state("c_abc")).as_deref(), Some("c_abc"));
        assert_eq!(call_id_of("bm90IGpzb24="), None);
        assert_eq!(call_id_of("***"), None);
        // The apology's state still names the call, and asks for a hang-up after the speech.
        let after = client_state_hang_up_after_speech("c_abc");
        assert_eq!(call_id_of(&after).as_deref(), Some("c_abc"));
        assert!(hangs_up_after_speech(&after));
        assert!(!hangs_up_after_speech(&client_state("c_abc")));
        assert!(!hangs_up_after_speech("***"));
    }

    #[test]
    fn the_dial_body_asks_for_a_bidirectional_rtp_stream() {
        let dial = Dial {
            call_id: "c_1".into(),
            to: "+15551230001".into(),
            from: "+15557650002".into(),
            webhook_url: "https://v.example/webhooks/telnyx".into(),
            timeout_secs: 2,
            machine_detection: true,
            stream: Stream { url: "wss://v.example/media/telnyx?call_id=c_1&token=t".into(), codec: StreamCodec::Pcma },
            attempt: 2,
            time_limit_secs: 1860,
        };
        let b = dial.body("conn");
        assert_eq!(b["connection_id"], "conn");
        assert_eq!(b["stream_bidirectional_mode"], "rtp");
        assert_eq!(
            (b["stream_codec"].as_str(), b["stream_bidirectional_codec"].as_str()),
            (Some("PCMA"), Some("PCMA"))
        );
        assert_eq!(b["stream_track"], "inbound_track");
        assert_eq!(b["timeout_secs"], 5, "clamped to Telnyx's 5–600");
        assert_eq!(b["time_limit_secs"], 1860, "the carrier's backstop behind the duration cap");
        assert_eq!(b["answering_machine_detection"], "detect_beep");
        assert_eq!(b["command_id"], "dial-c_1-2");
        assert_eq!(call_id_of(b["client_state"].as_str().unwrap()).as_deref(), Some("c_1"));
        assert_eq!(attempt_of(b["client_state"].as_str().unwrap()), Some(2), "the attempt travels too");
        assert_eq!(attempt_of(&client_state("c_1")), None, "an inbound call's state names no attempt");
    }

    #[test]
    fn errors_keep_the_code_and_are_classified_by_status() {
        let e = classify(422, r#"{"errors":[{"code":"90018","title":"Call has already ended","detail":"x"}]}"#);
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("90018: x"), "{e}");
        assert!(classify(503, "oops").is_retryable());
        assert!(classify(429, "").is_retryable());
        assert!(!classify(400, r#"{"errors":[{"code":10015,"title":"Invalid to"}]}"#).is_retryable());
    }
}
