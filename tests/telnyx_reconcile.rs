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
use voxbridge::store::sqlite::SqliteStore;
use voxbridge::store::{OutboundCalls, Store};

fn dialer(store: &Store, api: &FakeTelnyx) -> Dialer {
    let carriers = Carriers {
        twilio: None,
        telnyx: Some(TelnyxLink { rest: TelnyxRest::new(&api.url, "KEY", "conn"), codec: StreamCodec::Pcmu }),
        public_url: "https://voice.test".into(),
        tokens: Default::default(),
        speeches: Default::default(),
        apology: voxbridge::providers::carrier::DEFAULT_APOLOGY.into(),
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
    let store = SqliteStore::open(&temp_database_url()).await.unwrap();
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
    let store = SqliteStore::open(&temp_database_url()).await.unwrap();
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
