//! Realtime events as on the wire (protocols.md §4). Client events are typed for sending (but for
//! the per-frame audio append, `model::audio::append_event`) and
//! read back flat by the mock; server events are read flat (one struct, `type` names the
//! event) so audio deltas borrow their base64 without copying, and written typed by the mock.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

// ---------- client → server ----------

/// An event we send to the model.
#[derive(Debug, Serialize)]
#[serde(tag = "type")]
pub enum ClientEvent<'a> {
    #[serde(rename = "session.update")]
    SessionUpdate { session: serde_json::Value },
    #[serde(rename = "conversation.item.truncate")]
    Truncate { item_id: &'a str, content_index: u32, audio_end_ms: u64 },
    #[serde(rename = "response.cancel")]
    Cancel,
    #[serde(rename = "response.create")]
    ResponseCreate {
        #[serde(skip_serializing_if = "Option::is_none")]
        response: Option<ResponseParams<'a>>,
    },
    #[serde(rename = "conversation.item.create")]
    ItemCreate { item: Item<'a> },
}

#[derive(Debug, Serialize)]
pub struct ResponseParams<'a> {
    pub instructions: &'a str,
}

/// Conversation items we create.
#[derive(Debug, Serialize)]
#[serde(tag = "type")]
pub enum Item<'a> {
    #[serde(rename = "message")]
    Message { role: &'a str, content: [InputText<'a>; 1] },
    #[serde(rename = "function_call_output")]
    FunctionCallOutput { call_id: &'a str, output: &'a str },
}

#[derive(Debug, Serialize)]
pub struct InputText<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub text: &'a str,
}

impl ClientEvent<'_> {
    pub fn to_json(&self) -> String {
        // Plain strings, integers and JSON values always serialize.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A client event read back (by the mock model): flat, unknown fields ignored.
#[derive(Debug, Deserialize)]
pub struct ClientEventRaw<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(default, borrow, deserialize_with = "crate::wire_json::opt_cow")]
    pub audio: Option<Cow<'a, str>>,
    #[serde(default)]
    pub item_id: Option<String>,
    #[serde(default)]
    pub content_index: Option<u32>,
    #[serde(default)]
    pub audio_end_ms: Option<serde_json::Number>,
    #[serde(default)]
    pub session: Option<serde_json::Value>,
    #[serde(default)]
    pub item: Option<serde_json::Value>,
    #[serde(default)]
    pub response: Option<serde_json::Value>,
}

// ---------- server → client ----------

/// A server event read flat; `kind` says which fields matter.
#[derive(Debug, Deserialize)]
pub struct ServerEventRaw<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(default, borrow, deserialize_with = "crate::wire_json::opt_cow")]
    pub response_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "crate::wire_json::opt_cow")]
    pub item_id: Option<Cow<'a, str>>,
    #[serde(default)]
    pub content_index: Option<u32>,
    #[serde(default, borrow, deserialize_with = "crate::wire_json::opt_cow")]
    pub delta: Option<Cow<'a, str>>,
    #[serde(default)]
    pub transcript: Option<String>,
    #[serde(default)]
    pub call_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
    #[serde(default)]
    pub audio_start_ms: Option<u64>,
    #[serde(default)]
    pub audio_end_ms: Option<u64>,
    #[serde(default)]
    pub response: Option<ResponseObject>,
    #[serde(default)]
    pub error: Option<ErrorObject>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct ResponseObject {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub status_details: Option<serde_json::Value>,
    #[serde(default)]
    pub output: Vec<serde_json::Value>,
    #[serde(default)]
    pub usage: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct ErrorObject {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub param: Option<String>,
    #[serde(default)]
    pub event_id: Option<String>,
}

/// The audio delta, written typed (the mock's hot path).
#[derive(Debug, Serialize)]
pub struct AudioDeltaOut<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub event_id: &'a str,
    pub response_id: &'a str,
    pub item_id: &'a str,
    pub output_index: u32,
    pub content_index: u32,
    pub delta: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn client_events_have_ga_shapes() {
        let v: serde_json::Value = serde_json::from_str(
            &ClientEvent::Truncate { item_id: "item_1", content_index: 0, audio_end_ms: 1840 }.to_json(),
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"type":"conversation.item.truncate","item_id":"item_1","content_index":0,"audio_end_ms":1840})
        );
        let v: serde_json::Value = serde_json::from_str(
            &ClientEvent::ItemCreate { item: Item::FunctionCallOutput { call_id: "call_1", output: "{}" } }.to_json(),
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"type":"conversation.item.create","item":{"type":"function_call_output","call_id":"call_1","output":"{}"}})
        );
        let v: serde_json::Value = serde_json::from_str(
            &ClientEvent::ItemCreate {
                item: Item::Message { role: "user", content: [InputText { kind: "input_text", text: "hi" }] },
            }
            .to_json(),
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]}})
        );
        assert_eq!(ClientEvent::Cancel.to_json(), r#"{"type":"response.cancel"}"#);
        assert_eq!(ClientEvent::ResponseCreate { response: None }.to_json(), r#"{"type":"response.create"}"#);
    }

    #[test]
    fn server_events_parse_flat_with_borrowed_delta() {
        let text = r#"{"type":"response.output_audio.delta","event_id":"e","response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":0,"delta":"AAAA"}"#;
        let e: ServerEventRaw = serde_json::from_str(text).unwrap();
        assert_eq!(e.kind, "response.output_audio.delta");
        assert!(matches!(e.delta, Some(Cow::Borrowed("AAAA"))));
        let text = r#"{"type":"error","event_id":"e","error":{"type":"invalid_request_error","code":"response_cancel_not_active","message":"no","param":null,"event_id":null}}"#;
        let e: ServerEventRaw = serde_json::from_str(text).unwrap();
        assert_eq!(e.error.unwrap().code.as_deref(), Some("response_cancel_not_active"));
    }
}
