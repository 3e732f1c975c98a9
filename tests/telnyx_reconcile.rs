//! A Telnyx call whose dialling worker died is reconciled with Telnyx (`GET /v2/calls/{id}`,
//! `is_alive`) before anyone is dialled again: a live call is adopted, an ended one finished.
//! Real SQLite file, the real worker, the stand-in Call Control API.

mod common;

use std::time::Duration;

use common::temp_database_url;
use voxbridge::providers::carrier::{Carriers, TelnyxLink};
use voxbridge::providers::telnyx::rest::{StreamCodec, TelnyxRest};
use voxbridge::queue::status::CallStatus;
use voxbridge::queue::worker::Dialer;
use voxbridge::replay::telnyx_api::FakeTelnyx;
use voxbridge::store::{OutboundCalls, Store};

fn dialer(store: &Store, api: &FakeTelnyx) -> Dialer {
    let carriers = Carriers {
        twilio: None,
        telnyx: Some(TelnyxLink { rest: TelnyxRest::new(&api.url, "KEY", "conn"), codec: StreamCodec::Pcmu }),
        public_url: "https://voice.test".into(),
        tokens: Default::default(),
        speeches: Default::default(),
        apology: voxbridge::providers::carrier::DEFAULT_APOLOGY.into(),
        machine: None,
    };
    let config = common::dialer_config(Duration::from_millis(200));
    Dialer::new(store.clone(), carriers, config)
}

/// Dials a Telnyx call with one worker, which then dies; returns its call control id.
async fn dialled_then_orphaned(store: &Store, api: &FakeTelnyx) -> String {
    let now = jiff::Timestamp::now().as_millisecond();
    let call = common::due_call("c_orphan", "telnyx", now - 1_000);
    store.create_outbound(&call, None, now).await.unwrap();
    let mut first = dialer(store, api);
    first.tick().await.unwrap();
    let dials: Vec<_> = api.commands().into_iter().filter(|c| c.action == "dial").collect();
    assert_eq!(dials.len(), 1);
    drop(first); // the worker dies holding the lease
    tokio::time::sleep(Duration::from_millis(300)).await;
    dials[0].call_control_id.clone()
}

#[tokio::test]
async fn a_call_still_alive_at_telnyx_is_adopted_not_redialled() {
    let store = Store::open(&temp_database_url()).await.unwrap();
    let api = FakeTelnyx::spawn("127.0.0.1:0").await.unwrap();
    let ccid = dialled_then_orphaned(&store, &api).await;
    dialer(&store, &api).tick().await.unwrap();
    let asked = api.commands().iter().any(|c| c.action == "status" && c.call_control_id == ccid);
    assert!(asked, "Telnyx was asked about the call");
    assert_eq!(api.commands().iter().filter(|c| c.action == "dial").count(), 1, "nobody dialled twice");
    assert_eq!(store.call_view("c_orphan").await.unwrap().unwrap().status, CallStatus::Dialing, "adopted, still live");
}

#[tokio::test]
async fn a_call_that_ended_at_telnyx_is_finished_not_redialled() {
    let store = Store::open(&temp_database_url()).await.unwrap();
    let api = FakeTelnyx::spawn("127.0.0.1:0").await.unwrap();
    let ccid = dialled_then_orphaned(&store, &api).await;
    // The call ended while nobody watched (the stand-in reports a hung-up call as not alive).
    let rest = TelnyxRest::new(&api.url, "KEY", "conn");
    rest.hang_up(&ccid, "test").await.unwrap();
    dialer(&store, &api).tick().await.unwrap();
    assert_eq!(api.commands().iter().filter(|c| c.action == "dial").count(), 1, "nobody dialled twice");
    let view = store.call_view("c_orphan").await.unwrap().unwrap();
    assert_eq!(view.status, CallStatus::Failed, "never answered, gone: failed");
}

/// The worker died inside the dial's round trip: Telnyx placed the call, its answer (the call
/// control id) never reached the store. The next worker finds the call among the connection's
/// active calls by the attempt in its `client_state` and adopts it: nobody is dialled twice.
/// With no such call at Telnyx the attempt is re-queued uncounted and dialled again.
#[tokio::test]
async fn an_attempt_whose_dial_answer_was_lost_is_found_by_its_client_state() {
    use voxbridge::providers::telnyx::rest::{Dial, Stream};
    use voxbridge::store::JobStore;
    for placed in [true, false] {
        let store = Store::open(&temp_database_url()).await.unwrap();
        let api = FakeTelnyx::spawn("127.0.0.1:0").await.unwrap();
        let rest = TelnyxRest::new(&api.url, "KEY", "conn");
        let now = jiff::Timestamp::now().as_millisecond();
        // Another call to the number, live at Telnyx: not ours to adopt.
        let other = |call_id: &str, attempt| Dial {
            call_id: call_id.into(),
            to: "+15551230001".into(),
            from: "+15557654321".into(),
            webhook_url: "https://voice.test/webhooks/telnyx".into(),
            timeout_secs: 30,
            machine_detection: false,
            stream: Stream { url: "wss://voice.test/media/telnyx".into(), codec: StreamCodec::Pcmu },
            attempt,
            time_limit_secs: 600,
        };
        rest.dial(&other("c_other", 1)).await.unwrap();
        store.create_outbound(&common::due_call("c_lost", "telnyx", now - 1_000), None, now).await.unwrap();
        let job = store.claim("dead-worker", now, 100, 10).await.unwrap().unwrap();
        store.start_attempt("c_lost", job.attempts, now).await.unwrap();
        if placed {
            rest.dial(&other("c_lost", job.attempts)).await.unwrap(); // its answer is lost
        }
        store.expire_leases(now + 1_000).await.unwrap();
        dialer(&store, &api).tick().await.unwrap();
        let dials = api.commands().iter().filter(|c| c.action == "dial").count();
        let view = store.call_view("c_lost").await.unwrap().unwrap();
        if placed {
            assert_eq!(dials, 2, "nobody dialled twice (one dial is the other call's)");
            assert_eq!(view.provider_call_id.as_deref(), Some("v3:fake-dial-2"), "found by its client_state");
            assert_eq!(view.status, CallStatus::Dialing, "adopted, still live");
        } else {
            assert_eq!(dials, 2, "not placed: dialled now");
            assert_eq!(view.attempts, 1, "the lost attempt was not counted");
        }
    }
}
