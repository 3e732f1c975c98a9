//! Unit tests of the sans-IO call core: no sockets, an explicit clock.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::*;
use crate::media::transcode::StreamFormat;
use crate::providers::twilio::TwilioSession;

const START: &str = r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"customParameters":{},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#;

fn core(model: StreamFormat, lead_ms: u64, t0: Instant) -> CallCore<TwilioSession> {
    let mut s = TwilioSession::new();
    assert!(matches!(s.receive(START), CarrierEvent::Start(_)));
    let cfg = CoreConfig {
        carrier_format: StreamFormat::PCMU_8K,
        model_format: model,
        playout_lead: Duration::from_millis(lead_ms),
        greeting: None,
        response_timeout: Duration::from_secs(5),
        session_max: Duration::from_secs(3300),
        max_duration: None,
        cost_cap: None,
    };
    let mut c = CallCore::new(s, cfg, realtime(), t0).unwrap();
    c.on_model_connected();
    assert_eq!(drain(&mut c).len(), 1);
    c
}

/// A Realtime session's settings, μ-law (tests add tools to them).
fn pcmu_realtime() -> crate::model::ModelConfig {
    crate::model::ModelConfig::defaults(
        crate::model::ModelApi::Realtime,
        "gpt-realtime",
        crate::model::ModelAudio::Pcmu,
    )
}

/// A core whose model session, with `config`, is connected (what it opened with not drained).
fn core_with(config: crate::model::ModelConfig, t0: Instant) -> CallCore<TwilioSession> {
    let mut s = TwilioSession::new();
    assert!(matches!(s.receive(START), CarrierEvent::Start(_)));
    let cfg = CoreConfig {
        carrier_format: StreamFormat::PCMU_8K,
        model_format: StreamFormat::PCMU_8K,
        playout_lead: Duration::from_millis(5_000),
        greeting: None,
        response_timeout: Duration::from_secs(5),
        session_max: Duration::from_secs(3300),
        max_duration: None,
        cost_cap: None,
    };
    let mut c = CallCore::new(s, cfg, crate::model::open(config), t0).unwrap();
    c.on_model_connected();
    c
}

/// A Realtime session (the format is the core's to choose; the protocol only names it).
fn realtime() -> Box<dyn ModelProtocol> {
    let config = crate::model::ModelConfig::defaults(
        crate::model::ModelApi::Realtime,
        "gpt-realtime",
        crate::model::ModelAudio::Pcmu,
    );
    crate::model::open(config)
}

fn drain(c: &mut CallCore<TwilioSession>) -> Vec<Output> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

fn delta(resp: &str, item: &str, audio: &[u8]) -> String {
    format!(
        r#"{{"type":"response.output_audio.delta","event_id":"e","response_id":"{resp}","item_id":"{item}","output_index":0,"content_index":0,"delta":"{}"}}"#,
        B64.encode(audio)
    )
}

fn created(resp: &str) -> String {
    format!(
        r#"{{"type":"response.created","event_id":"e","response":{{"id":"{resp}","status":"in_progress","output":[]}}}}"#
    )
}

fn done(resp: &str, output: &str) -> String {
    format!(
        r#"{{"type":"response.done","event_id":"e","response":{{"id":"{resp}","status":"completed","output":[{output}]}}}}"#
    )
}

/// Carrier media payloads and mark names among `outs`.
fn carrier(outs: &[Output]) -> (Vec<Vec<u8>>, Vec<String>, usize) {
    let (mut media, mut marks, mut clears) = (Vec::new(), Vec::new(), 0);
    for o in outs {
        if let Output::Carrier(text, _) = o {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            match v["event"].as_str().unwrap() {
                "media" => media.push(B64.decode(v["media"]["payload"].as_str().unwrap()).unwrap()),
                "mark" => marks.push(v["mark"]["name"].as_str().unwrap().to_string()),
                "clear" => clears += 1,
                e => panic!("unexpected {e}"),
            }
        }
    }
    (media, marks, clears)
}

fn model(outs: &[Output]) -> Vec<serde_json::Value> {
    outs.iter()
        .filter_map(|o| {
            if let Output::Model(t) | Output::ModelStart(t) = o { Some(serde_json::from_str(t).unwrap()) } else { None }
        })
        .collect()
}

fn mark(name: &str) -> String {
    format!(r#"{{"event":"mark","streamSid":"MZ1","mark":{{"name":"{name}"}}}}"#)
}

#[test]
fn passthrough_reframes_model_audio_into_20ms_frames_with_a_mark_per_batch() {
    let t0 = Instant::now();
    let mut c = core(StreamFormat::PCMU_8K, 5_000, t0);
    let audio: Vec<u8> = (0..400u32).map(|i| i as u8).collect();
    c.on_model_text(&delta("r1", "i1", &audio), t0);
    let (media, marks, _) = carrier(&drain(&mut c));
    assert_eq!(media, vec![audio[..320].to_vec()], "whole 20 ms frames, batched in one message");
    assert_eq!(marks, vec!["m1"]);
    c.on_model_text(r#"{"type":"response.output_audio.done","response_id":"r1","item_id":"i1"}"#, t0);
    let (media, _, _) = carrier(&drain(&mut c));
    let mut last = audio[320..].to_vec();
    last.resize(160, 0xFF);
    assert_eq!(media, vec![last], "the tail is padded with μ-law silence");
}

#[test]
fn caller_audio_goes_to_the_model_verbatim_in_passthrough() {
    let t0 = Instant::now();
    let mut c = core(StreamFormat::PCMU_8K, 5_000, t0);
    let frame: Vec<u8> = (0..160u32).map(|i| (i * 3) as u8).collect();
    let media = format!(r#"{{"event":"media","streamSid":"MZ1","media":{{"payload":"{}"}}}}"#, B64.encode(&frame));
    assert_eq!(c.on_carrier_text(&media, t0), CarrierInput::Media(1));
    let (json, since) = c.pull_model_audio(t0 + Duration::from_millis(1)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["type"], "input_audio_buffer.append");
    assert_eq!(B64.decode(v["audio"].as_str().unwrap()).unwrap(), frame);
    assert_eq!(since, t0);
    assert!(c.pull_model_audio(t0).is_none());
}

#[test]
fn toward_the_model_the_oldest_audio_is_dropped_and_counted() {
    let t0 = Instant::now();
    let mut s = TwilioSession::new();
    let _ = s.receive(START);
    let cfg = CoreConfig {
        carrier_format: StreamFormat::PCMU_8K,
        model_format: StreamFormat::PCMU_8K,
        playout_lead: Duration::from_secs(1),
        greeting: None,
        response_timeout: Duration::from_secs(5),
        session_max: Duration::from_secs(3300),
        max_duration: None,
        cost_cap: None,
    };
    let mut c = CallCore::new(s, cfg, realtime(), t0).unwrap();
    // The model is not connected yet: 1.5 s of caller audio arrives.
    for i in 0..75u8 {
        let media =
            format!(r#"{{"event":"media","streamSid":"MZ1","media":{{"payload":"{}"}}}}"#, B64.encode([i; 160]));
        c.on_carrier_text(&media, t0);
    }
    assert_eq!(c.stats().bytes_dropped_to_model, 25 * 160);
    assert!(c.pull_model_audio(t0).is_none(), "nothing is sent before the model is connected");
    c.on_model_connected();
    let (json, _) = c.pull_model_audio(t0).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let first = B64.decode(v["audio"].as_str().unwrap()).unwrap();
    assert_eq!(first[0], 25, "the newest second survives; the oldest half second was dropped");
}

#[test]
fn barge_in_clears_truncates_and_drops_in_flight_deltas() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut c = core(StreamFormat::PCMU_8K, 5_000, t0);
    c.on_model_text(&created("r1"), t0);
    c.on_model_text(&delta("r1", "i1", &[0x55; 1600]), t0);
    let (media, marks, _) = carrier(&drain(&mut c));
    assert_eq!((media.len(), marks.len()), (2, 2), "200 ms in two 100 ms batches");
    c.on_carrier_text(&mark(&marks[0]), t0 + ms(100));
    c.on_model_text(
        r#"{"type":"input_audio_buffer.speech_started","audio_start_ms":1000,"item_id":"u1"}"#,
        t0 + ms(171),
    );
    let outs = drain(&mut c);
    let (_, _, clears) = carrier(&outs);
    assert_eq!(clears, 1);
    let m = model(&outs);
    assert_eq!(m.len(), 1, "no response.cancel: the server VAD already cancelled (interrupt_response)");
    assert_eq!(m[0]["type"], "conversation.item.truncate");
    assert_eq!(m[0]["item_id"], "i1");
    assert_eq!(m[0]["audio_end_ms"], 171, "100 ms confirmed by the mark + 71 ms since");
    // A delta of the cancelled response still in flight must not reach the caller.
    c.on_model_text(&delta("r1", "i1", &[0x55; 800]), t0 + ms(72));
    assert!(drain(&mut c).is_empty());
    assert_eq!(c.stats().deltas_discarded, 1);
    assert_eq!(c.stats().barge_ins, 1);
    // Flushed marks echoed after the clear are recognised, not counted as unknown.
    c.on_carrier_text(&mark(&marks[1]), t0 + ms(173));
    assert_eq!(c.stats().marks_unknown, 0);
    // The next response plays normally.
    c.on_model_text(&done("r1", ""), t0 + ms(80));
    c.on_model_text(&created("r2"), t0 + ms(900));
    c.on_model_text(&delta("r2", "i2", &[0x11; 160]), t0 + ms(900));
    assert_eq!(carrier(&drain(&mut c)).0.len(), 1);
}

#[test]
fn speech_with_nothing_playing_is_not_a_barge_in() {
    let t0 = Instant::now();
    let mut c = core(StreamFormat::PCMU_8K, 5_000, t0);
    c.on_model_text(r#"{"type":"input_audio_buffer.speech_started","audio_start_ms":0,"item_id":"u1"}"#, t0);
    assert!(drain(&mut c).is_empty());
    assert_eq!(c.stats().barge_ins, 0);
}

#[test]
fn dtmf_becomes_a_user_item() {
    let t0 = Instant::now();
    let mut c = core(StreamFormat::PCMU_8K, 5_000, t0);
    c.on_carrier_text(r#"{"event":"dtmf","streamSid":"MZ1","dtmf":{"track":"inbound_track","digit":"7"}}"#, t0);
    let m = model(&drain(&mut c));
    assert_eq!(m[0]["type"], "conversation.item.create");
    assert!(m[0]["item"]["content"][0]["text"].as_str().unwrap().contains("\"7\""));
}

#[test]
fn end_call_without_audio_asks_for_a_goodbye_then_hangs_up_once_it_has_played() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut c = core(StreamFormat::PCMU_8K, 5_000, t0);
    c.on_model_text(&created("r1"), t0);
    c.on_model_text(r#"{"type":"response.function_call_arguments.done","response_id":"r1","item_id":"f1","call_id":"call_1","name":"end_call","arguments":"{}"}"#, t0);
    c.on_model_text(&done("r1", ""), t0);
    let m = model(&drain(&mut c));
    assert_eq!(m[0]["item"]["type"], "function_call_output");
    assert_eq!(m[0]["item"]["call_id"], "call_1");
    assert_eq!(m[1]["type"], "response.create");
    // The goodbye plays; the call ends only when its marks come back.
    c.on_model_text(&created("r2"), t0 + ms(10));
    c.on_model_text(&delta("r2", "i2", &[0x22; 320]), t0 + ms(10));
    c.on_model_text(&done("r2", ""), t0 + ms(20));
    let outs = drain(&mut c);
    assert!(!outs.iter().any(|o| matches!(o, Output::HangUp)), "not before the goodbye has played");
    let (_, marks, _) = carrier(&outs);
    c.on_carrier_text(&mark(marks.last().unwrap()), t0 + ms(50));
    let outs = drain(&mut c);
    assert_eq!(outs, vec![Output::HangUp, Output::End(EndReason::EndCallTool)]);
}

#[test]
fn playout_is_bounded_by_the_lead_and_released_on_time() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut c = core(StreamFormat::PCMU_8K, 300, t0);
    c.on_model_text(&delta("r1", "i1", &[0x33; 8000]), t0); // one second of audio
    let (media, marks, _) = carrier(&drain(&mut c));
    let sent: usize = media.iter().map(Vec::len).sum();
    assert_eq!(sent, 2400, "300 ms ahead of playback at most");
    let deadline = c.next_deadline(t0).expect("held audio needs a timer");
    assert!(deadline > t0);
    // Without echoes nothing is known to have played: nothing more is sent.
    c.on_tick(t0 + ms(250));
    assert!(drain(&mut c).is_empty());
    // The carrier confirms 200 ms played; 50 ms later the lead allows 250 ms more.
    c.on_carrier_text(&mark(&marks[1]), t0 + ms(200));
    c.on_tick(t0 + ms(250));
    let (media, _, _) = carrier(&drain(&mut c));
    let sent: usize = media.iter().map(Vec::len).sum();
    assert!((1600..=2000).contains(&sent), "released as playback advanced: {sent} bytes");
}

#[test]
fn a_small_lead_still_releases_held_audio_as_it_plays() {
    // The full-duplex lead (200 ms) is no larger than the release hysteresis.
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut c = core(StreamFormat::PCMU_8K, 200, t0);
    c.on_model_text(&delta("r1", "i1", &[0x33; 8000]), t0); // one second of audio at once
    let (media, marks, _) = carrier(&drain(&mut c));
    assert_eq!(media.iter().map(Vec::len).sum::<usize>(), 1600, "200 ms ahead at most");
    c.on_carrier_text(&mark(&marks[1]), t0 + ms(200));
    c.on_tick(t0 + ms(200));
    let (media, _, _) = carrier(&drain(&mut c));
    assert!(!media.is_empty(), "what played makes room for more");
}

#[test]
fn fatal_model_errors_end_the_call_and_others_do_not() {
    let t0 = Instant::now();
    let mut c = core(StreamFormat::PCMU_8K, 5_000, t0);
    c.on_model_text(r#"{"type":"error","error":{"type":"invalid_request_error","code":"response_cancel_not_active","message":"no"}}"#, t0);
    assert!(drain(&mut c).is_empty());
    c.on_model_text(
        r#"{"type":"error","error":{"type":"invalid_request_error","code":"session_expired","message":"over"}}"#,
        t0,
    );
    assert!(matches!(drain(&mut c).as_slice(), [Output::End(EndReason::ModelFatal(_))]));
    assert!(c.is_ended());
}

#[test]
fn pcm16_model_audio_is_resampled_to_carrier_frames() {
    let t0 = Instant::now();
    let mut c = core(StreamFormat::PCM_24K, 5_000, t0);
    // 100 ms of 24 kHz PCM16 = 4800 bytes → five 20 ms μ-law frames.
    c.on_model_text(&delta("r1", "i1", &[0u8; 4800]), t0);
    let (media, _, _) = carrier(&drain(&mut c));
    assert_eq!(media.concat().len(), 800, "five 20 ms μ-law frames");
}

#[test]
fn keys_pressed_while_the_model_connects_follow_the_session_setup() {
    let t0 = Instant::now();
    let mut s = TwilioSession::new();
    let _ = s.receive(START);
    let cfg = CoreConfig {
        carrier_format: StreamFormat::PCMU_8K,
        model_format: StreamFormat::PCMU_8K,
        playout_lead: Duration::from_secs(1),
        greeting: Some("Hi!".into()),
        response_timeout: Duration::from_secs(5),
        session_max: Duration::from_secs(3300),
        max_duration: None,
        cost_cap: None,
    };
    let mut c = CallCore::new(s, cfg, realtime(), t0).unwrap();
    c.on_carrier_text(r#"{"event":"dtmf","streamSid":"MZ1","dtmf":{"digit":"1"}}"#, t0);
    c.on_model_connected();
    let kinds: Vec<String> = model(&drain(&mut c)).iter().map(|v| v["type"].as_str().unwrap().to_string()).collect();
    assert_eq!(kinds, ["session.update", "response.create", "conversation.item.create"]);
}

#[test]
fn outbound_counters_are_reported() {
    let t0 = Instant::now();
    let mut c = core(StreamFormat::PCMU_8K, 5_000, t0);
    c.on_model_text(&delta("r1", "i1", &[0x44; 800]), t0);
    let _ = drain(&mut c);
    assert_eq!(c.stats().frames_to_caller, 5);
    assert_eq!(c.stats().bytes_refused_to_caller, 0);
}

#[test]
fn leaving_a_voicemail_speaks_the_message_then_hangs_up() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut c = core(StreamFormat::PCMU_8K, 5_000, t0);
    c.leave_voicemail("Please call us back.", t0);
    let m = model(&drain(&mut c));
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["type"], "response.create");
    assert!(m[0]["response"]["instructions"].as_str().unwrap().contains("Please call us back."));
    c.on_model_text(&created("r1"), t0);
    c.on_model_text(&delta("r1", "i1", &[0x66; 320]), t0);
    c.on_model_text(&done("r1", ""), t0 + ms(5));
    let (_, marks, _) = carrier(&drain(&mut c));
    c.on_carrier_text(&mark(marks.last().unwrap()), t0 + ms(40));
    assert_eq!(drain(&mut c), vec![Output::HangUp, Output::End(EndReason::EndCallTool)]);
}

#[test]
fn a_voicemail_waits_for_the_cancelled_answer_to_finish() {
    let t0 = Instant::now();
    let mut c = core(StreamFormat::PCMU_8K, 5_000, t0);
    c.on_model_text(&created("r1"), t0);
    c.on_model_text(&delta("r1", "i1", &[0x66; 1600]), t0);
    let _ = drain(&mut c);
    c.leave_voicemail("Call us back.", t0);
    let outs = drain(&mut c);
    assert_eq!(carrier(&outs).2, 1, "playback cleared");
    let kinds: Vec<String> = model(&outs).iter().map(|v| v["type"].as_str().unwrap().to_string()).collect();
    assert_eq!(kinds, ["conversation.item.truncate", "response.cancel"], "no response.create while one is active");
    c.on_model_text(&done("r1", ""), t0);
    let m = model(&drain(&mut c));
    assert_eq!(m[0]["type"], "response.create", "requested once the cancelled answer is done");
    assert_eq!(c.stats().barge_ins, 0, "not a caller barge-in");
}

#[test]
fn while_a_machine_greets_the_ai_keeps_quiet_and_speaks_at_the_beep() {
    let t0 = Instant::now();
    let mut c = core(StreamFormat::PCMU_8K, 5_000, t0);
    c.on_model_text(&created("r1"), t0);
    c.on_model_text(&delta("r1", "i1", &[0x66; 1600]), t0);
    let _ = drain(&mut c);
    c.await_beep("Call us back.", t0);
    let outs = drain(&mut c);
    assert_eq!(carrier(&outs).2, 1, "playback cleared");
    let kinds: Vec<String> = model(&outs).iter().map(|v| v["type"].as_str().unwrap().to_string()).collect();
    assert_eq!(kinds, ["response.cancel", "conversation.item.truncate"]);
    assert_eq!(c.next_deadline(t0), Some(t0 + ending::BEEP_WAIT));
    // The model answers the greeting: cancelled, nothing reaches the machine.
    c.on_model_text(&done("r1", ""), t0);
    c.on_model_text(&created("r2"), t0);
    c.on_model_text(&delta("r2", "i2", &[0x66; 800]), t0);
    let outs = drain(&mut c);
    assert!(carrier(&outs).0.is_empty(), "no audio during the greeting");
    assert_eq!(model(&outs).iter().filter(|v| v["type"] == "response.cancel").count(), 1);
    c.on_model_text(&done("r2", ""), t0);
    // The beep: the message is requested, and the wait is over.
    c.leave_voicemail("Call us back.", t0 + Duration::from_secs(3));
    let m = model(&drain(&mut c));
    assert_eq!(m[0]["type"], "response.create");
    assert!(m[0]["response"]["instructions"].as_str().unwrap().contains("Call us back."));
    c.on_tick(t0 + ending::BEEP_WAIT);
    assert!(model(&drain(&mut c)).is_empty(), "the message is requested once");
}

#[test]
fn a_beep_never_reported_leaves_the_message_at_the_deadline() {
    let t0 = Instant::now();
    let mut c = core(StreamFormat::PCMU_8K, 5_000, t0);
    c.await_beep("Call us back.", t0);
    let _ = drain(&mut c);
    c.on_tick(t0 + ending::BEEP_WAIT - Duration::from_millis(1));
    assert!(drain(&mut c).is_empty());
    c.on_tick(t0 + ending::BEEP_WAIT);
    let m = model(&drain(&mut c));
    assert_eq!(m.len(), 1);
    assert!(m[0]["response"]["instructions"].as_str().unwrap().contains("Call us back."));
}

#[test]
fn caller_messages_the_carrier_numbered_but_never_sent_are_reported() {
    let t0 = Instant::now();
    let mut c = core(StreamFormat::PCMU_8K, 5_000, t0);
    let media = |seq: u64| {
        format!(r#"{{"event":"media","sequenceNumber":"{seq}","streamSid":"MZ1","media":{{"payload":"/w=="}}}}"#)
    };
    c.on_carrier_text(&media(2), t0);
    assert_eq!(c.stats().caller_messages_missing, 0);
    c.on_carrier_text(&media(5), t0);
    assert_eq!(c.stats().caller_messages_missing, 2);
}

#[test]
fn a_lost_model_is_replaced_by_a_session_that_knows_the_conversation() {
    let t0 = Instant::now();
    let mut c = core(StreamFormat::PCMU_8K, 5_000, t0);
    c.on_model_text(
        r#"{"type":"conversation.item.input_audio_transcription.completed","event_id":"e","item_id":"u1","content_index":0,"transcript":"Is Tuesday free?"}"#,
        t0,
    );
    c.on_model_text(&created("r1"), t0);
    c.on_model_text(&delta("r1", "i1", &[0x66; 1600]), t0);
    c.on_model_text(
        r#"{"type":"response.output_audio_transcript.done","event_id":"e","response_id":"r1","item_id":"i1","output_index":0,"content_index":0,"transcript":"Yes, Tuesday at ten."}"#,
        t0,
    );
    let _ = drain(&mut c);
    assert!(c.on_model_lost(t0 + Duration::from_millis(100)));
    let outs = drain(&mut c);
    assert_eq!(carrier(&outs).2, 1, "the lost answer stops playing at once");
    assert!(model(&outs).is_empty(), "nothing goes to a session that is gone");
    // The caller keeps talking while the new session connects: held, not sent.
    let media = format!(r#"{{"event":"media","streamSid":"MZ1","media":{{"payload":"{}"}}}}"#, B64.encode([0x11; 160]));
    c.on_carrier_text(&media, t0 + Duration::from_millis(120));
    assert!(!c.has_model_audio());
    c.on_model_reconnected();
    let kinds: Vec<(String, String)> = model(&drain(&mut c))
        .iter()
        .map(|v| {
            let item = &v["item"];
            (
                v["type"].as_str().unwrap().into(),
                format!(
                    "{}:{}",
                    item["role"].as_str().unwrap_or(""),
                    item["content"][0]["text"].as_str().unwrap_or("")
                ),
            )
        })
        .collect();
    let expected = [
        ("session.update", ":"),
        ("conversation.item.create", "user:Is Tuesday free?"),
        ("conversation.item.create", "assistant:Yes, Tuesday at ten."),
        ("response.create", ":"),
    ];
    assert_eq!(kinds, expected.map(|(a, b)| (a.to_string(), b.to_string())));
    assert!(c.has_model_audio(), "the held caller audio follows");
    assert!(!c.is_ended());
}

#[test]
fn a_model_lost_while_the_call_is_ending_ends_it() {
    let t0 = Instant::now();
    let mut c = core(StreamFormat::PCMU_8K, 5_000, t0);
    c.leave_voicemail("Call us back.", t0);
    let _ = drain(&mut c);
    assert!(!c.on_model_lost(t0));
    assert_eq!(drain(&mut c), vec![Output::End(EndReason::ModelLost)]);
}

#[test]
fn the_callers_last_audio_reaches_the_model_before_the_call_ends() {
    let t0 = Instant::now();
    let mut c = core(StreamFormat::PCMU_8K, 5_000, t0);
    let media = format!(r#"{{"event":"media","streamSid":"MZ1","media":{{"payload":"{}"}}}}"#, B64.encode([0x22; 160]));
    c.on_carrier_text(&media, t0);
    assert!(c.has_model_audio(), "waiting for the model writer");
    c.on_carrier_text(
        r#"{"event":"stop","sequenceNumber":"3","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}"#,
        t0,
    );
    let outs = drain(&mut c);
    let appended: Vec<u8> = model(&outs)
        .iter()
        .filter(|v| v["type"] == "input_audio_buffer.append")
        .flat_map(|v| B64.decode(v["audio"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(appended, vec![0x22; 160]);
    assert_eq!(outs.last(), Some(&Output::End(EndReason::CarrierStopped)));
}

#[test]
fn at_the_duration_cap_the_ai_is_told_to_wrap_up_then_says_goodbye_and_hangs_up() {
    let t0 = Instant::now();
    let mut s = TwilioSession::new();
    assert!(matches!(s.receive(START), CarrierEvent::Start(_)));
    let cfg = CoreConfig {
        carrier_format: StreamFormat::PCMU_8K,
        model_format: StreamFormat::PCMU_8K,
        playout_lead: Duration::from_millis(200),
        greeting: None,
        response_timeout: Duration::from_secs(5),
        session_max: Duration::from_secs(3300),
        max_duration: Some(Duration::from_secs(60)),
        cost_cap: None,
    };
    let mut c = CallCore::new(s, cfg, realtime(), t0).unwrap();
    c.on_model_connected();
    drain(&mut c);
    let at = |s: u64| t0 + Duration::from_secs(s);
    assert_eq!(c.next_deadline(at(1)), Some(at(40)), "the wrap-up note is due 20 s before the cap");
    c.on_tick(at(39));
    assert!(drain(&mut c).is_empty());
    c.on_tick(at(40));
    let note = drain(&mut c);
    assert!(
        matches!(&note[..], [Output::Model(m)] if m.contains("\"role\":\"system\"") && m.contains("20 seconds")),
        "{note:?}"
    );
    assert_eq!(c.next_deadline(at(41)), Some(at(60)), "then the cap itself");
    c.on_tick(at(60));
    let goodbye = drain(&mut c);
    assert!(
        goodbye.iter().any(|o| matches!(o, Output::Model(m) if m.contains("response.create") && m.contains("goodbye"))),
        "{goodbye:?}"
    );
    // The goodbye plays; once its response is done and nothing is left to play, the call ends.
    c.on_model_text(&created("r_bye"), at(61));
    c.on_model_text(&done("r_bye", ""), at(62));
    c.on_tick(at(62));
    let end = drain(&mut c);
    assert!(end.contains(&Output::HangUp), "{end:?}");
    assert!(end.contains(&Output::End(EndReason::MaxDuration)), "{end:?}");
}

#[test]
fn at_its_cost_cap_the_ai_wraps_up_then_says_goodbye_and_the_call_ends_max_cost() {
    let t0 = Instant::now();
    let mut s = TwilioSession::new();
    assert!(matches!(s.receive(START), CarrierEvent::Start(_)));
    // $64 per million output audio tokens, a carrier at $0.01 a minute, $0.10 spent before.
    let prices = crate::pricing::Prices::default();
    let mut meter = prices.meter("gpt-realtime", "twilio", 0.10);
    meter.carrier_per_minute = Some(0.01);
    let cfg = CoreConfig {
        carrier_format: StreamFormat::PCMU_8K,
        model_format: StreamFormat::PCMU_8K,
        playout_lead: Duration::from_millis(200),
        greeting: None,
        response_timeout: Duration::from_secs(5),
        session_max: Duration::from_secs(3300),
        max_duration: None,
        cost_cap: Some(CostCap { max_usd: 0.21, meter }),
    };
    let mut c = CallCore::new(s, cfg, realtime(), t0).unwrap();
    c.on_model_connected();
    drain(&mut c);
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let done_with = |resp: &str, output_audio: u64| {
        format!(
            r#"{{"type":"response.done","event_id":"e","response":{{"id":"{resp}","status":"completed","output":[],"usage":{{"total_tokens":{output_audio},"input_tokens":0,"output_tokens":{output_audio},"input_token_details":{{"text_tokens":0,"audio_tokens":0,"cached_tokens":0}},"output_token_details":{{"text_tokens":0,"audio_tokens":{output_audio}}}}}}}}}"#
        )
    };
    // $0.10 before + $0.01 carrier + 1,000 tokens ($0.064) = $0.174: under 85 % of $0.21 ($0.1785).
    c.on_model_text(&created("r1"), at(1_000));
    c.on_model_text(&done_with("r1", 1_000), at(2_000));
    let outs = drain(&mut c);
    assert!(outs.is_empty(), "nothing yet: {outs:?}");
    // The second minute's carrier charge crosses 85 % ($0.184): the note.
    assert_eq!(c.next_deadline(at(3_000)), Some(at(60_001)), "checked when the carrier charges the next minute");
    c.on_tick(at(60_001));
    let note = drain(&mut c);
    assert!(matches!(&note[..], [Output::Model(m)] if m.contains("budget")), "{note:?}");
    // Another 500 tokens ($0.032) reach the cap ($0.216): goodbye, then the call ends `max_cost`.
    c.on_model_text(&created("r2"), at(61_000));
    c.on_model_text(&done_with("r2", 500), at(62_000));
    let goodbye = drain(&mut c);
    assert!(
        goodbye.iter().any(|o| matches!(o, Output::Model(m) if m.contains("response.create") && m.contains("goodbye"))),
        "{goodbye:?}"
    );
    c.on_model_text(&created("r_bye"), at(63_000));
    c.on_model_text(&done("r_bye", ""), at(64_000));
    c.on_tick(at(64_000));
    let end = drain(&mut c);
    assert!(end.contains(&Output::End(EndReason::MaxCost)), "{end:?}");
    assert_eq!(EndReason::MaxCost.code(), "max_cost");
}

#[test]
fn a_reported_outcome_is_saved_only_when_it_matches_the_schema_and_the_model_goes_on() {
    let t0 = Instant::now();
    let schema = serde_json::json!({"type": "object", "properties": {"confirmed": {"type": "boolean"}},
        "required": ["confirmed"], "additionalProperties": false});
    let mut config = pcmu_realtime();
    config.tools = config.tools.with_outcome(crate::model::ObjectSchema::new(schema).unwrap());
    let mut c = core_with(config, t0);
    let start = model(&drain(&mut c));
    let tools = start[0]["session"]["tools"].as_array().unwrap();
    assert!(tools.iter().any(|t| t["name"] == "report_outcome"), "offered to the model: {tools:?}");
    let report = |call: &str, arguments: &str| {
        serde_json::json!({"type": "response.function_call_arguments.done", "response_id": "r1", "item_id": "f1",
            "call_id": call, "name": "report_outcome", "arguments": arguments})
        .to_string()
    };
    // Wrong: the model is told why and asked to go on; nothing is saved.
    c.on_model_text(&created("r1"), t0);
    c.on_model_text(&report("call_1", r#"{"confirmed": "yes"}"#), t0);
    c.on_model_text(&done("r1", ""), t0);
    let outs = drain(&mut c);
    assert!(!outs.iter().any(|o| matches!(o, Output::Outcome(_))), "{outs:?}");
    let m = model(&outs);
    assert_eq!(m[0]["item"]["type"], "function_call_output");
    assert!(m[0]["item"]["output"].as_str().unwrap().contains("/confirmed"), "{}", m[0]);
    assert_eq!(m[1]["type"], "response.create");
    // Right: saved, acknowledged, and the conversation goes on (no hang-up).
    c.on_model_text(&created("r2"), t0);
    c.on_model_text(&report("call_2", r#"{"confirmed": true}"#), t0);
    c.on_model_text(&done("r2", ""), t0);
    let outs = drain(&mut c);
    assert!(outs.contains(&Output::Outcome(serde_json::json!({"confirmed": true}))), "{outs:?}");
    assert!(!outs.iter().any(|o| matches!(o, Output::HangUp | Output::End(_))));
    let m = model(&outs);
    assert_eq!(
        (m[0]["item"]["output"].as_str(), m[1]["type"].as_str()),
        (Some(r#"{"ok":true}"#), Some("response.create"))
    );
}

#[test]
fn the_model_waits_for_the_calls_own_tools_and_goes_on_once_all_have_answered() {
    let t0 = Instant::now();
    let mut config = pcmu_realtime();
    let tool = |name: &str| crate::model::UserTool {
        name: name.into(),
        description: String::new(),
        parameters: serde_json::json!({"type": "object"}),
        url: format!("https://example.com/{name}"),
        timeout_ms: None,
    };
    config.tools = config.tools.with_user_tools(&[tool("a"), tool("b")]);
    let mut c = core_with(config, t0);
    drain(&mut c);
    let call = |id: &str, name: &str| {
        serde_json::json!({"type": "response.function_call_arguments.done", "response_id": "r1", "item_id": id,
            "call_id": id, "name": name, "arguments": "{\"x\":1}"})
        .to_string()
    };
    c.on_model_text(&created("r1"), t0);
    c.on_model_text(&call("call_a", "a"), t0);
    c.on_model_text(&call("call_b", "b"), t0);
    c.on_model_text(&done("r1", ""), t0);
    let outs = drain(&mut c);
    let posts: Vec<(String, String)> = outs
        .iter()
        .filter_map(|o| match o {
            Output::UserTool { call_id, url, .. } => Some((call_id.clone(), url.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        posts,
        [("call_a".into(), "https://example.com/a".into()), ("call_b".into(), "https://example.com/b".into())]
    );
    assert!(model(&outs).is_empty(), "nothing for the model until the tools answer: {outs:?}");
    c.on_tool_output("call_b", r#"{"ok":2}"#, t0);
    let m = model(&drain(&mut c));
    assert_eq!(m.len(), 1, "b's output only; still waiting for a: {m:?}");
    assert_eq!(
        (m[0]["item"]["call_id"].as_str(), m[0]["item"]["output"].as_str()),
        (Some("call_b"), Some(r#"{"ok":2}"#))
    );
    c.on_tool_output("call_a", r#"{"error":"the tool a failed: answered 500"}"#, t0);
    let m = model(&drain(&mut c));
    assert_eq!((m[0]["item"]["call_id"].as_str(), m[1]["type"].as_str()), (Some("call_a"), Some("response.create")));
}

#[test]
fn a_transfer_to_a_listed_target_is_announced_then_handed_to_the_carrier_instead_of_a_hang_up() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut config = pcmu_realtime();
    let desk = crate::model::TransferTarget::new("+15550001111", "sales");
    config.tools = config.tools.with_transfer(&[desk]);
    let mut c = core_with(config, t0);
    drain(&mut c);
    let transfer = |resp: &str, to: &str| {
        serde_json::json!({"type": "response.function_call_arguments.done", "response_id": resp, "item_id": "f1",
            "call_id": format!("call_{resp}"), "name": "transfer_call", "arguments": format!("{{\"to\":\"{to}\"}}")})
        .to_string()
    };
    // Not a listed target: refused back to the model, the call goes on.
    c.on_model_text(&created("r1"), t0);
    c.on_model_text(&transfer("r1", "+15559999999"), t0);
    c.on_model_text(&done("r1", ""), t0);
    let outs = drain(&mut c);
    assert!(!outs.iter().any(|o| matches!(o, Output::Transfer(_) | Output::End(_))), "{outs:?}");
    let m = model(&outs);
    assert!(m[0]["item"]["output"].as_str().unwrap().contains("error"), "{}", m[0]);
    // Listed, with nothing said yet: the caller is told, and once that has played, handed over.
    c.on_model_text(&created("r2"), t0);
    c.on_model_text(&transfer("r2", "+15550001111"), t0);
    c.on_model_text(&done("r2", ""), t0);
    let m = model(&drain(&mut c));
    assert!(m[1]["response"]["instructions"].as_str().unwrap().contains("transferring"), "{m:?}");
    c.on_model_text(&created("r3"), t0 + ms(10));
    c.on_model_text(&delta("r3", "i3", &[0x22; 320]), t0 + ms(10));
    c.on_model_text(&done("r3", ""), t0 + ms(20));
    let outs = drain(&mut c);
    assert!(!outs.iter().any(|o| matches!(o, Output::Transfer(_))), "not before the line has played");
    let (_, marks, _) = carrier(&outs);
    c.on_carrier_text(&mark(marks.last().unwrap()), t0 + ms(50));
    let outs = drain(&mut c);
    assert_eq!(outs, vec![Output::Transfer("+15550001111".into()), Output::End(EndReason::Transferred)]);
}

/// The business's `crm` tool, with its own `timeout_ms` (or the default).
fn crm_tool(timeout_ms: Option<u64>) -> crate::model::UserTool {
    crate::model::UserTool {
        name: "crm".into(),
        description: String::new(),
        parameters: serde_json::json!({"type": "object"}),
        url: "https://example.com/crm".into(),
        timeout_ms,
    }
}

#[test]
fn a_slow_tool_is_waited_for_with_a_soft_filler_after_700_ms_that_gives_way_to_the_answer() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut config = pcmu_realtime();
    config.tools = config.tools.with_user_tools(&[crm_tool(Some(3_000))]);
    let mut c = core_with(config, t0);
    drain(&mut c);
    let call = serde_json::json!({"type": "response.function_call_arguments.done", "response_id": "r1",
        "item_id": "f1", "call_id": "call_1", "name": "crm", "arguments": "{}"})
    .to_string();
    c.on_model_text(&created("r1"), t0);
    c.on_model_text(&call, t0);
    c.on_model_text(&done("r1", ""), t0);
    let outs = drain(&mut c);
    assert!(
        outs.iter().any(|o| matches!(o, Output::UserTool { timeout, .. } if *timeout == ms(3_000))),
        "the tool's own timeout goes with it: {outs:?}"
    );
    // Dead air for 700 ms at most, then the filler, paced: never more than 100 ms ahead.
    assert_eq!(c.next_deadline(t0), Some(t0 + ms(700)));
    c.on_tick(t0 + ms(699));
    assert!(carrier(&drain(&mut c)).0.is_empty(), "nothing before 700 ms");
    let mut heard = Vec::new();
    let mut now = t0 + ms(700);
    while now < t0 + ms(3_000) {
        c.on_tick(now);
        let (media, _, clears) = carrier(&drain(&mut c));
        assert_eq!(clears, 0);
        heard.extend(media.concat());
        now = c.next_deadline(now).unwrap();
    }
    assert_eq!(heard.len(), 8 * 2_300, "2.3 s of filler in 2.3 s of waiting");
    assert!(heard.iter().any(|b| *b != 0xff), "not silence");
    // The answer: the filler stops and its queue is cleared; the model is asked to go on.
    c.on_tool_output("call_1", r#"{"ok":true}"#, t0);
    let outs = drain(&mut c);
    assert_eq!(carrier(&outs).2, 1, "queued filler cleared: {outs:?}");
    assert_eq!(model(&outs).last().unwrap()["type"], "response.create");
    c.on_tick(now + ms(500));
    assert!(carrier(&drain(&mut c)).0.is_empty(), "no filler once answered");
    // The answer's audio plays at once.
    c.on_model_text(&created("r2"), now);
    c.on_model_text(&delta("r2", "i2", &[0x22; 160]), now);
    assert_eq!(carrier(&drain(&mut c)).0.concat(), vec![0x22; 160]);
}

#[test]
fn a_tool_answering_within_700_ms_gets_no_filler_and_the_ai_speaking_meanwhile_stops_it() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut config = pcmu_realtime();
    config.tools = config.tools.with_user_tools(&[crm_tool(None)]);
    let mut c = core_with(config, t0);
    drain(&mut c);
    let call = |r: &str, id: &str| {
        serde_json::json!({"type": "response.function_call_arguments.done", "response_id": r,
            "item_id": id, "call_id": id, "name": "crm", "arguments": "{}"})
        .to_string()
    };
    c.on_model_text(&created("r1"), t0);
    c.on_model_text(&call("r1", "c1"), t0);
    c.on_model_text(&done("r1", ""), t0);
    let outs = drain(&mut c);
    assert!(outs.iter().any(|o| matches!(o, Output::UserTool { timeout, .. } if *timeout == ms(5_000))), "default 5 s");
    c.on_tool_output("c1", "{}", t0);
    let (media, _, clears) = carrier(&drain(&mut c));
    assert!(media.is_empty() && clears == 0, "answered in time: nothing played, nothing cleared");
    c.on_tick(t0 + ms(800));
    assert!(carrier(&drain(&mut c)).0.is_empty());
    // A second wait, during which the AI starts speaking: the filler yields to it.
    c.on_model_text(&created("r2"), t0 + ms(900));
    c.on_model_text(&call("r2", "c2"), t0 + ms(900));
    c.on_model_text(&done("r2", ""), t0 + ms(900));
    drain(&mut c);
    c.on_tick(t0 + ms(1_600));
    assert!(!carrier(&drain(&mut c)).0.is_empty(), "filler after 700 ms");
    c.on_model_text(&created("r3"), t0 + ms(1_650));
    c.on_model_text(&delta("r3", "i3", &[0x22; 160]), t0 + ms(1_650));
    let (media, _, clears) = carrier(&drain(&mut c));
    assert_eq!((clears, media.concat()), (1, vec![0x22; 160]), "filler cleared, the AI heard at once");
}

#[test]
fn press_digits_on_twilio_plays_the_keys_as_tones_ahead_of_what_the_ai_says_next() {
    let t0 = Instant::now();
    let mut config = pcmu_realtime();
    config.tools = config.tools.with_press_digits();
    let mut c = core_with(config, t0);
    drain(&mut c);
    let press = |r: &str, digits: &str| {
        serde_json::json!({"type": "response.function_call_arguments.done", "response_id": r, "item_id": r,
            "call_id": format!("call_{r}"), "name": "press_digits", "arguments": format!("{{\"digits\":\"{digits}\"}}")})
        .to_string()
    };
    c.on_model_text(&created("r1"), t0);
    c.on_model_text(&press("r1", "1w2#"), t0);
    c.on_model_text(&done("r1", ""), t0);
    let outs = drain(&mut c);
    assert!(!outs.iter().any(|o| matches!(o, Output::SendDtmf(_))), "Twilio has no DTMF command");
    let m = model(&outs);
    assert_eq!(
        (m[0]["item"]["output"].as_str(), m[1]["type"].as_str()),
        (Some(r#"{"ok":true}"#), Some("response.create"))
    );
    // The AI's next words come after the keys.
    c.on_model_text(&created("r2"), t0);
    c.on_model_text(&delta("r2", "i2", &[0x22; 800]), t0);
    let mut heard = carrier(&outs).0.concat();
    let mut now = t0;
    for _ in 0..100 {
        now += Duration::from_millis(100);
        c.on_tick(now);
        let outs = drain(&mut c);
        for name in carrier(&outs).1 {
            c.on_carrier_text(&mark(&name), now);
        }
        heard.extend(carrier(&outs).0.concat());
    }
    let tones_len = 8 * (3 * 200 + 500);
    assert!(heard.len() >= tones_len + 800, "{}", heard.len());
    let mut pcm = Vec::new();
    crate::media::transcode::decode_samples(crate::media::transcode::Codec::Pcmu, &heard[..tones_len], &mut pcm);
    assert_eq!(crate::media::dtmf::detect(&pcm, 8_000), "12#", "the keys, heard by the carrier");
    assert_eq!(&heard[tones_len..tones_len + 800], &[0x22; 800][..], "then the AI, untouched");
    assert!(c.transcript().entries.iter().any(|l| l.text == "[pressed 1w2#]"), "the transcript says so");
    // Keys that are not keys: an error back to the model, nothing played.
    c.on_model_text(&created("r3"), now);
    c.on_model_text(&press("r3", "12x"), now);
    c.on_model_text(&done("r3", ""), now);
    let outs = drain(&mut c);
    assert!(model(&outs)[0]["item"]["output"].as_str().unwrap().contains("error"));
}

const END_CALL: &str = r#"{"type":"response.function_call_arguments.done","response_id":"rt","item_id":"ft","call_id":"call_t","name":"end_call","arguments":"{}"}"#;

#[test]
fn end_call_right_after_the_ai_spoke_asks_for_no_second_goodbye() {
    // GPT-Live's tool calls come apart from its speech: the goodbye was the audio just before.
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut c = core(StreamFormat::PCMU_8K, 5_000, t0);
    c.on_model_text(&created("r1"), t0);
    c.on_model_text(&delta("r1", "i1", &[0x22; 320]), t0);
    c.on_model_text(&done("r1", ""), t0 + ms(10));
    let (_, marks, _) = carrier(&drain(&mut c));
    c.on_carrier_text(&mark(marks.last().unwrap()), t0 + ms(40));
    drain(&mut c);
    c.on_model_text(&created("rt"), t0 + ms(500));
    c.on_model_text(END_CALL, t0 + ms(500));
    c.on_model_text(&done("rt", ""), t0 + ms(500));
    let outs = drain(&mut c);
    assert!(!model(&outs).iter().any(|m| m["type"] == "response.create"), "no second goodbye: {outs:?}");
    assert!(outs.ends_with(&[Output::HangUp, Output::End(EndReason::EndCallTool)]), "hung up at once: {outs:?}");
    // The caller spoke after the AI's last words: those were no goodbye, one is asked for.
    let mut c = core(StreamFormat::PCMU_8K, 5_000, t0);
    c.on_model_text(&created("r1"), t0);
    c.on_model_text(&delta("r1", "i1", &[0x22; 320]), t0);
    c.on_model_text(&done("r1", ""), t0 + ms(10));
    let (_, marks, _) = carrier(&drain(&mut c));
    c.on_carrier_text(&mark(marks.last().unwrap()), t0 + ms(40));
    c.on_model_text(
        r#"{"type":"input_audio_buffer.speech_started","event_id":"e","audio_start_ms":100,"item_id":"u1"}"#,
        t0 + ms(100),
    );
    drain(&mut c);
    c.on_model_text(&created("rt"), t0 + ms(900));
    c.on_model_text(END_CALL, t0 + ms(900));
    c.on_model_text(&done("rt", ""), t0 + ms(900));
    assert_eq!(model(&drain(&mut c)).last().unwrap()["type"], "response.create", "a goodbye is asked for");
}

#[test]
fn a_goodbye_asked_for_that_never_begins_does_not_hold_the_line_open() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut c = core(StreamFormat::PCMU_8K, 5_000, t0);
    c.on_model_text(&created("rt"), t0);
    c.on_model_text(END_CALL, t0);
    c.on_model_text(&done("rt", ""), t0);
    let outs = drain(&mut c);
    assert_eq!(model(&outs).last().unwrap()["type"], "response.create", "nothing said lately: a goodbye is asked for");
    assert_eq!(c.next_deadline(t0), Some(t0 + ms(2_500)));
    c.on_tick(t0 + ms(2_499));
    assert!(!drain(&mut c).iter().any(|o| matches!(o, Output::HangUp)));
    c.on_tick(t0 + ms(2_500));
    assert_eq!(drain(&mut c), vec![Output::HangUp, Output::End(EndReason::EndCallTool)], "not 15 s of silence");
}

#[test]
fn a_committed_turn_the_model_never_answers_counts_as_a_lost_model() {
    let t0 = Instant::now();
    let mut c = core(StreamFormat::PCMU_8K, 300, t0);
    c.on_model_connected();
    drain(&mut c);
    let committed = r#"{"type":"input_audio_buffer.committed","event_id":"e","item_id":"i1","previous_item_id":null}"#;
    // Answered in time: nothing happens.
    c.on_model_text(committed, t0);
    assert_eq!(c.next_deadline(t0), Some(t0 + Duration::from_secs(5)), "the watchdog is armed");
    c.on_model_text(&created("r1"), t0 + Duration::from_secs(1));
    c.on_tick(t0 + Duration::from_secs(6));
    assert!(!drain(&mut c).contains(&Output::ModelStalled));
    // Not answered: the session is lost once the watchdog falls due, once.
    let t1 = t0 + Duration::from_secs(10);
    c.on_model_text(committed, t1);
    c.on_tick(t1 + Duration::from_millis(4_999));
    assert!(!drain(&mut c).contains(&Output::ModelStalled), "not before 5 s");
    c.on_tick(t1 + Duration::from_secs(5));
    assert_eq!(drain(&mut c).iter().filter(|o| **o == Output::ModelStalled).count(), 1);
    c.on_tick(t1 + Duration::from_secs(9));
    assert!(!drain(&mut c).contains(&Output::ModelStalled), "said once");
}

#[test]
fn an_old_session_is_replaced_at_a_quiet_moment_with_the_conversation_and_no_seam() {
    let t0 = Instant::now();
    let mut c = core(StreamFormat::PCMU_8K, 300, t0);
    c.config.session_max = Duration::from_secs(60);
    c.on_model_connected();
    c.on_model_text(r#"{"type":"session.created","event_id":"e","session":{"id":"s1"}}"#, t0);
    drain(&mut c);
    assert_eq!(c.next_deadline(t0), Some(t0 + Duration::from_secs(60)));
    // Due while the caller talks: not now, looked at again shortly.
    let due = t0 + Duration::from_secs(60);
    c.on_model_text(
        r#"{"type":"input_audio_buffer.speech_started","event_id":"e","audio_start_ms":0,"item_id":"i"}"#,
        due,
    );
    c.on_tick(due);
    assert!(!drain(&mut c).contains(&Output::RotateSession), "not while the caller is mid-turn");
    let committed = r#"{"type":"input_audio_buffer.committed","event_id":"e","item_id":"i","previous_item_id":null}"#;
    c.on_model_text(committed, due + Duration::from_millis(100));
    c.on_model_text(&created("r1"), due + Duration::from_millis(200));
    c.on_model_text(&done("r1", ""), due + Duration::from_millis(300));
    c.on_tick(due + Duration::from_millis(500));
    assert!(!drain(&mut c).contains(&Output::RotateSession), "not within a second of the caller's words");
    c.on_tick(due + Duration::from_secs(2));
    assert_eq!(drain(&mut c), vec![Output::RotateSession]);
    // The new session gets the conversation, and is asked to say nothing.
    assert!(c.on_model_rotated());
    c.on_model_rotated_in();
    let outs = drain(&mut c);
    assert!(matches!(outs.first(), Some(Output::ModelStart(_))), "{outs:?}");
    assert!(!model(&outs).iter().any(|m| m["type"] == "response.create"), "no seam the caller hears: {outs:?}");
}
