//! Telnyx Call Control webhooks (protocols.md §3.5), pure: the envelope parsed from the
//! (already signature-checked) raw body, and what each event means for a call — a status, an
//! inbound call to answer, an answering-machine verdict, a stream failure, or nothing.

use serde::Deserialize;

use crate::lifecycle::status::CallStatus;

/// One webhook, with the fields voxbridge uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// `data.id`: unique per event (the dedupe key; Telnyx redelivers).
    pub id: String,
    pub event_type: String,
    pub call_control_id: String,
    pub client_state: Option<String>,
    pub direction: Option<String>,
    pub from: String,
    pub to: String,
    pub hangup_cause: Option<String>,
    pub sip_hangup_cause: Option<String>,
    /// AMD `result`.
    pub result: Option<String>,
    pub failure_reason: Option<String>,
}

/// Why a webhook body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("not a Telnyx webhook: {0}")]
    Malformed(String),
    #[error("missing field {0}")]
    Missing(&'static str),
}

#[derive(Deserialize)]
struct Envelope {
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    id: String,
    #[serde(default)]
    event_type: String,
    #[serde(default)]
    payload: Payload,
}

#[derive(Deserialize, Default)]
struct Payload {
    #[serde(default)]
    call_control_id: String,
    #[serde(default)]
    client_state: Option<String>,
    #[serde(default)]
    direction: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    hangup_cause: Option<String>,
    #[serde(default)]
    sip_hangup_cause: Option<String>,
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    failure_reason: Option<String>,
}

/// Parses the raw body.
pub fn parse(body: &[u8]) -> Result<Webhook, WebhookError> {
    let Envelope { data } = serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    if data.id.is_empty() {
        return Err(WebhookError::Missing("data.id"));
    }
    if data.event_type.is_empty() {
        return Err(WebhookError::Missing("data.event_type"));
    }
    let p = data.payload;
    Ok(Webhook {
        id: data.id,
        event_type: data.event_type,
        call_control_id: p.call_control_id,
        client_state: p.client_state.filter(|s| !s.is_empty()),
        direction: p.direction,
        from: p.from.unwrap_or_default(),
        to: p.to.unwrap_or_default(),
        hangup_cause: p.hangup_cause,
        sip_hangup_cause: p.sip_hangup_cause,
        result: p.result,
        failure_reason: p.failure_reason,
    })
}

/// What a webhook means for the call it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Meaning {
    /// The call moved to this status (forward-only when applied).
    Status(CallStatus),
    /// A new inbound call: answer it with streaming.
    Incoming,
    /// The answering-machine verdict, as an `answered_by` value (`human`, `machine`, `fax`,
    /// `unknown`).
    AnsweredBy(&'static str),
    /// A machine's greeting ended (the beep): time to leave the message.
    GreetingEnded,
    /// The media stream could not be opened or failed.
    StreamFailed(String),
    /// Text we asked Telnyx to speak has been spoken (or cut short).
    SpeechEnded,
    /// Logged only (`streaming.started`, DTMF, unknown events…).
    Info,
}

/// Interprets a webhook.
pub fn meaning(w: &Webhook) -> Meaning {
    match w.event_type.as_str() {
        "call.initiated" if w.direction.as_deref() == Some("incoming") => Meaning::Incoming,
        "call.initiated" => Meaning::Status(CallStatus::Ringing),
        "call.answered" => Meaning::Status(CallStatus::InProgress),
        "call.hangup" => Meaning::Status(hangup_status(w.hangup_cause.as_deref().unwrap_or("unspecified"))),
        "call.machine.detection.ended" | "call.machine.premium.detection.ended" => {
            Meaning::AnsweredBy(answered_by(w.result.as_deref().unwrap_or("")))
        }
        "call.machine.greeting.ended" | "call.machine.premium.greeting.ended" => Meaning::GreetingEnded,
        "call.speak.ended" => Meaning::SpeechEnded,
        "streaming.failed" => Meaning::StreamFailed(w.failure_reason.clone().unwrap_or_else(|| "unknown".into())),
        _ => Meaning::Info,
    }
}

/// `hangup_cause` → the contract's status. Busy and unanswered calls are retried by the queue;
/// every other cause is final.
pub fn hangup_status(cause: &str) -> CallStatus {
    match cause {
        "normal_clearing" | "time_limit" => CallStatus::Completed,
        "user_busy" | "call_rejected" => CallStatus::Busy,
        "timeout" | "no_answer" => CallStatus::NoAnswer,
        "originator_cancel" => CallStatus::Canceled,
        _ => CallStatus::Failed,
    }
}

/// AMD results (standard and premium) in the `answered_by` vocabulary the store uses.
fn answered_by(result: &str) -> &'static str {
    match result {
        "human" | "human_residence" | "human_business" => "human",
        "machine" => "machine",
        "fax_detected" => "fax",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, payload: serde_json::Value) -> Webhook {
        let body = serde_json::json!({"data": {"record_type": "event", "id": "e1", "event_type": event_type,
            "occurred_at": "2026-11-21T12:00:42.123456Z", "payload": payload}, "meta": {"attempt": 1}});
        parse(body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn the_protocol_example_parses() {
        let body = br#"{"data":{"record_type":"event","event_type":"call.hangup","id":"0ccc7b54-4df3-4bca-a65a-3da1ecc777f0","occurred_at":"2026-11-21T12:00:42.123456Z","payload":{"call_control_id":"v3:Qm9vb2xlYW4tY2FsbC1jb250cm9sLWlk","client_state":"eyJjYWxsX2lkIjoiY183S3EyIn0=","from":"+15557650002","to":"+15551230001","state":"hangup","hangup_cause":"normal_clearing","hangup_source":"callee","sip_hangup_cause":"200"}}}"#;
        let w = parse(body).unwrap();
        assert_eq!(w.id, "0ccc7b54-4df3-4bca-a65a-3da1ecc777f0");
        assert_eq!(w.call_control_id, "v3:Qm9vb2xlYW4tY2FsbC1jb250cm9sLWlk");
        assert_eq!(w.client_state.as_deref(), Some("eyJjYWxsX2lkIjoiY183S3EyIn0="));
        assert_eq!(meaning(&w), Meaning::Status(CallStatus::Completed));
        assert_eq!(
            parse(b"{}").unwrap_err(),
            WebhookError::Malformed("missing field `data` at line 1 column 2".into())
        );
        assert_eq!(parse(br#"{"data":{"event_type":"call.hangup"}}"#).unwrap_err(), WebhookError::Missing("data.id"));
    }

    #[test]
    fn hangup_causes_map_to_the_contract_with_busy_and_no_answer_retryable() {
        for (cause, want) in [
            ("normal_clearing", CallStatus::Completed),
            ("time_limit", CallStatus::Completed),
            ("user_busy", CallStatus::Busy),
            ("call_rejected", CallStatus::Busy),
            ("timeout", CallStatus::NoAnswer),
            ("no_answer", CallStatus::NoAnswer),
            ("originator_cancel", CallStatus::Canceled),
            ("not_found", CallStatus::Failed),
            ("unspecified", CallStatus::Failed),
            ("something_new", CallStatus::Failed),
        ] {
            assert_eq!(hangup_status(cause), want, "{cause}");
        }
    }

    #[test]
    fn events_mean_what_the_bridge_acts_on() {
        use serde_json::json;
        assert_eq!(meaning(&event("call.initiated", json!({"direction": "incoming"}))), Meaning::Incoming);
        assert_eq!(
            meaning(&event("call.initiated", json!({"direction": "outgoing"}))),
            Meaning::Status(CallStatus::Ringing)
        );
        assert_eq!(meaning(&event("call.answered", json!({}))), Meaning::Status(CallStatus::InProgress));
        for (ev, result, want) in [
            ("call.machine.detection.ended", "human", "human"),
            ("call.machine.detection.ended", "machine", "machine"),
            ("call.machine.detection.ended", "not_sure", "unknown"),
            ("call.machine.premium.detection.ended", "human_business", "human"),
            ("call.machine.premium.detection.ended", "fax_detected", "fax"),
            ("call.machine.premium.detection.ended", "silence", "unknown"),
        ] {
            assert_eq!(meaning(&event(ev, json!({"result": result}))), Meaning::AnsweredBy(want), "{ev} {result}");
        }
        assert_eq!(
            meaning(&event("call.machine.greeting.ended", json!({"result": "beep_detected"}))),
            Meaning::GreetingEnded
        );
        assert_eq!(
            meaning(&event("streaming.failed", json!({"failure_reason": "connection_failed"}))),
            Meaning::StreamFailed("connection_failed".into())
        );
        assert_eq!(meaning(&event("streaming.started", json!({}))), Meaning::Info);
        assert_eq!(meaning(&event("call.speak.ended", json!({"status": "completed"}))), Meaning::SpeechEnded);
    }
}
