//! Twilio Media Streams messages exactly as on the wire (protocols.md §1.3–1.4).
//! Counters arrive as strings (sometimes numbers): parsed leniently; unknown events and fields
//! are kept as `Unknown` / ignored so a new Twilio message never ends a call.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One inbound message, flattened: the `event` names which optional body is present.
#[derive(Debug, Deserialize)]
pub struct InboundRaw<'a> {
    #[serde(borrow)]
    pub event: Cow<'a, str>,
    #[serde(rename = "streamSid", default, borrow, deserialize_with = "crate::wire_json::opt_cow")]
    pub stream_sid: Option<Cow<'a, str>>,
    #[serde(rename = "sequenceNumber", default, deserialize_with = "crate::wire_json::lenient_u64")]
    pub sequence_number: Option<u64>,
    #[serde(default)]
    pub start: Option<StartBody>,
    #[serde(default, borrow)]
    pub media: Option<MediaBody<'a>>,
    #[serde(default)]
    pub mark: Option<MarkBody>,
    #[serde(default)]
    pub dtmf: Option<DtmfBody>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct StartBody {
    #[serde(rename = "accountSid", default)]
    pub account_sid: String,
    #[serde(rename = "streamSid", default)]
    pub stream_sid: String,
    #[serde(rename = "callSid", default)]
    pub call_sid: String,
    #[serde(default)]
    pub tracks: Vec<String>,
    #[serde(rename = "customParameters", default)]
    pub custom_parameters: BTreeMap<String, String>,
    #[serde(rename = "mediaFormat", default)]
    pub media_format: Option<MediaFormat>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct MediaFormat {
    pub encoding: String,
    #[serde(rename = "sampleRate", deserialize_with = "crate::wire_json::lenient_u64_req")]
    pub sample_rate: u64,
    #[serde(default = "one", deserialize_with = "crate::wire_json::lenient_u64_req")]
    pub channels: u64,
}

fn one() -> u64 {
    1
}

#[derive(Debug, Deserialize)]
pub struct MediaBody<'a> {
    #[serde(default, borrow, deserialize_with = "crate::wire_json::opt_cow")]
    pub track: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "crate::wire_json::lenient_u64")]
    pub chunk: Option<u64>,
    #[serde(default, deserialize_with = "crate::wire_json::lenient_u64")]
    pub timestamp: Option<u64>,
    #[serde(borrow)]
    pub payload: Cow<'a, str>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct MarkBody {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct DtmfBody {
    #[serde(default)]
    pub track: Option<String>,
    pub digit: String,
}

/// A message we send. Twilio accepts only these three on a bidirectional stream.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Outbound<'a> {
    Media {
        #[serde(rename = "streamSid")]
        stream_sid: &'a str,
        media: OutMedia<'a>,
    },
    Mark {
        #[serde(rename = "streamSid")]
        stream_sid: &'a str,
        mark: OutMark<'a>,
    },
    Clear {
        #[serde(rename = "streamSid")]
        stream_sid: &'a str,
    },
}

#[derive(Debug, Serialize)]
pub struct OutMedia<'a> {
    pub payload: &'a str,
}

#[derive(Debug, Serialize)]
pub struct OutMark<'a> {
    pub name: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_start_with_string_counters() {
        let text = r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"customParameters":{"call_id":"c_1","token":"t"},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"extra":true}"#;
        let m: InboundRaw = serde_json::from_str(text).unwrap();
        assert_eq!(m.event, "start");
        assert_eq!(m.sequence_number, Some(1));
        let s = m.start.unwrap();
        assert_eq!(s.call_sid, "CA1");
        assert_eq!(s.custom_parameters["call_id"], "c_1");
        assert_eq!(s.media_format.unwrap().sample_rate, 8000);
    }

    #[test]
    fn media_counters_accept_strings_or_numbers_and_payload_borrows() {
        let text = r#"{"event":"media","sequenceNumber":3,"streamSid":"MZ1","media":{"track":"inbound","chunk":"2","timestamp":"20","payload":"fn5+"}}"#;
        let m: InboundRaw = serde_json::from_str(text).unwrap();
        let media = m.media.unwrap();
        assert_eq!((media.chunk, media.timestamp), (Some(2), Some(20)));
        assert!(matches!(media.payload, Cow::Borrowed("fn5+")));
    }

    #[test]
    fn outbound_messages_have_the_documented_shape() {
        let media =
            serde_json::to_value(Outbound::Media { stream_sid: "MZ1", media: OutMedia { payload: "AAA=" } }).unwrap();
        assert_eq!(media, serde_json::json!({"event":"media","streamSid":"MZ1","media":{"payload":"AAA="}}));
        let mark = serde_json::to_value(Outbound::Mark { stream_sid: "MZ1", mark: OutMark { name: "m1" } }).unwrap();
        assert_eq!(mark, serde_json::json!({"event":"mark","streamSid":"MZ1","mark":{"name":"m1"}}));
        let clear = serde_json::to_value(Outbound::Clear { stream_sid: "MZ1" }).unwrap();
        assert_eq!(clear, serde_json::json!({"event":"clear","streamSid":"MZ1"}));
    }
}
