//! Twilio status callbacks: signed (403 otherwise), mapped to the contract's statuses,
//! idempotent (a repeated callback changes nothing) and forward-only (a late `ringing` after
//! `completed` changes nothing), recorded with history. Inbound calls create the record.

mod common;

use common::*;
use voxbridge::config::AudioMode;
use voxbridge::queue::status::CallStatus;
use voxbridge::store::CallRecords;
use voxbridge::store::Store;

const TOKEN: &str = "status-token";

async fn inbound_call(h: &Harness, http: &reqwest::Client) -> String {
    let params =
        voice_params(h, http, TOKEN, &[("CallSid", "CA77"), ("From", "+15551112222"), ("To", "+15553334444")]).await;
    params.into_iter().find(|(k, _)| k == "call_id").unwrap().1
}

async fn callback(h: &Harness, http: &reqwest::Client, call_id: &str, pairs: &[(&str, &str)], signed: bool) -> u16 {
    let path = format!("/webhooks/twilio/status?call_id={call_id}");
    if signed {
        return post_signed(h, http, TOKEN, &path, &form(pairs)).await.status().as_u16();
    }
    http.post(format!("http://{}{path}", h.addr)).form(&form(pairs)).send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_are_signed_idempotent_and_forward_only() {
    let mut c = config(AudioMode::G711);
    c.twilio_auth_token = Some(TOKEN.into());
    let h = start(c, mock_options()).await;
    let http = http_client();
    let call_id = inbound_call(&h, &http).await;
    let store = Store::open(&h.database_url).await.unwrap();
    assert_eq!(store.get_call(&call_id).await.unwrap().unwrap().status, CallStatus::Ringing, "inbound call recorded");

    let answered = [("CallSid", "CA77"), ("CallStatus", "in-progress"), ("SequenceNumber", "1")];
    assert_eq!(callback(&h, &http, &call_id, &answered, false).await, 403, "unsigned");
    assert_eq!(callback(&h, &http, &call_id, &answered, true).await, 204);
    let done = [
        ("CallSid", "CA77"),
        ("CallStatus", "completed"),
        ("SequenceNumber", "3"),
        ("CallDuration", "42"),
        ("SipResponseCode", "200"),
    ];
    for _ in 0..3 {
        assert_eq!(callback(&h, &http, &call_id, &done, true).await, 204, "duplicates are answered 2xx");
    }
    let late = [("CallSid", "CA77"), ("CallStatus", "ringing"), ("SequenceNumber", "2")];
    assert_eq!(callback(&h, &http, &call_id, &late, true).await, 204);

    let rec = store.get_call(&call_id).await.unwrap().unwrap();
    assert_eq!(rec.status, CallStatus::Completed);
    assert_eq!(rec.provider_call_id.as_deref(), Some("CA77"));
    let statuses: Vec<CallStatus> = rec.history.iter().map(|h| h.0).collect();
    assert_eq!(
        statuses,
        [CallStatus::Ringing, CallStatus::InProgress, CallStatus::Completed],
        "one entry per real change"
    );
    assert_eq!(rec.history[2].2.as_deref(), Some("sip 200"));

    assert_eq!(callback(&h, &http, &call_id, &[("CallStatus", "completed")], true).await, 400, "no CallSid");
    assert_eq!(callback(&h, &http, &call_id, &[("CallSid", "CA77"), ("CallStatus", "teleported")], true).await, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_answer_ends_as_voicemail() {
    let mut c = config(AudioMode::G711);
    c.twilio_auth_token = Some(TOKEN.into());
    let h = start(c, mock_options()).await;
    let http = http_client();
    let call_id = inbound_call(&h, &http).await;
    let pairs =
        [("CallSid", "CA77"), ("CallStatus", "completed"), ("AnsweredBy", "machine_end_beep"), ("SequenceNumber", "4")];
    assert_eq!(callback(&h, &http, &call_id, &pairs, true).await, 204);
    let store = Store::open(&h.database_url).await.unwrap();
    assert_eq!(store.get_call(&call_id).await.unwrap().unwrap().status, CallStatus::Voicemail);
}
