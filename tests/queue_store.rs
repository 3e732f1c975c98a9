//! The durable queue on real SQLite files — and on PostgreSQL when `VOXBRIDGE_TEST_POSTGRES_URL`
//! is set (`.ci/run` runs it both ways): settings verified, claim order, the global cap and
//! one-call-per-number under a burst (also with concurrent claimers), retries with backoff,
//! lease expiry into reconciliation, cancellation, queue position, retention — and a property
//! test against a simple model. Also the once-only records webhooks rely on: event sightings and
//! machine verdicts.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use voxbridge::store::{CallRecords, OutboundCalls};

use proptest::prelude::*;
use voxbridge::store::sqlite::SqliteStore;
use voxbridge::store::{AfterFailure, Cancel, JobStore, NewJob, Store, StoreError};

/// A fresh database of the backend under test.
struct TempDb(String);

impl TempDb {
    fn new() -> TempDb {
        TempDb(common::temp_database_url())
    }
    fn url(&self) -> String {
        self.0.clone()
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        if let Some(path) = self.0.strip_prefix("sqlite://").map(PathBuf::from) {
            let _ = path.parent().map(std::fs::remove_dir_all);
        }
    }
}

fn job(call: &str, number: &str, priority: i64, run_at: i64) -> NewJob {
    NewJob { call_id: call.into(), to_number: number.into(), priority, run_at, max_attempts: 3 }
}

const LEASE: i64 = 30_000;

#[tokio::test]
async fn sqlite_settings_are_verified_and_survive_reopening() {
    let db = TempDb(common::sqlite_url());
    let store = SqliteStore::open(&db.url()).await.unwrap();
    assert_eq!(store.pragma("journal_mode").await.unwrap(), "wal");
    assert_eq!(store.pragma("synchronous").await.unwrap(), "2", "FULL");
    assert_eq!(store.pragma("busy_timeout").await.unwrap(), "5000");
    let id = store.enqueue(job("c1", "+15550000001", 0, 0), 0).await.unwrap();
    drop(store);
    let store = SqliteStore::open(&db.url()).await.unwrap();
    assert_eq!(store.queue_position(id).await.unwrap(), Some(1), "the job is still there after reopening");
    assert!(matches!(SqliteStore::open("mysql://nope").await, Err(StoreError::Url(_))));
}

#[tokio::test]
async fn claims_follow_priority_then_time_and_wait_for_run_at() {
    let db = TempDb::new();
    let s = Store::open(&db.url()).await.unwrap();
    let late = s.enqueue(job("late", "+1", 0, 5_000), 0).await.unwrap();
    let low = s.enqueue(job("low", "+2", 0, 100), 0).await.unwrap();
    let high = s.enqueue(job("high", "+3", 5, 200), 0).await.unwrap();
    assert_eq!(s.queue_position(high).await.unwrap(), Some(1));
    assert_eq!(s.queue_position(low).await.unwrap(), Some(2));
    assert_eq!(s.queue_position(late).await.unwrap(), Some(3));
    assert_eq!(s.claim("w", 1_000, LEASE, 10).await.unwrap().unwrap().call_id, "high");
    assert_eq!(s.claim("w", 1_000, LEASE, 10).await.unwrap().unwrap().call_id, "low");
    assert_eq!(s.claim("w", 1_000, LEASE, 10).await.unwrap(), None, "not due yet");
    let c = s.claim("w", 5_000, LEASE, 10).await.unwrap().unwrap();
    assert_eq!((c.call_id.as_str(), c.attempts, c.lease_until), ("late", 1, 5_000 + LEASE));
    assert_eq!(s.queue_position(c.id).await.unwrap(), None, "running jobs have no queue position");
}

#[tokio::test]
async fn a_burst_of_100_respects_the_global_cap_and_one_call_per_number() {
    let db = TempDb::new();
    let s = Store::open(&db.url()).await.unwrap();
    for i in 0..100 {
        s.enqueue(job(&format!("c{i}"), &format!("+1555000{:04}", i % 10), 0, 0), 0).await.unwrap();
    }
    // 20 claimers race; the cap is 7 and only 10 distinct numbers exist.
    let mut tasks = Vec::new();
    for w in 0..20 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { s.claim(&format!("w{w}"), 1, LEASE, 7).await.unwrap() }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.unwrap());
    }
    assert_eq!(claimed.len(), 7, "exactly the cap");
    let numbers: HashSet<_> = claimed.iter().map(|c| c.to_number.clone()).collect();
    assert_eq!(numbers.len(), 7, "never two live calls to one number");
    assert!(!s.complete(claimed[0].id, "not-the-owner", 2).await.unwrap(), "only the lease holder completes");
    // Hand the racers' jobs back (lease expiry, reconciled as not dialled), then drain the queue
    // with one worker, checking the invariants after every claim.
    assert_eq!(s.expire_leases(LEASE + 2).await.unwrap().len(), 7);
    for c in &claimed {
        assert!(s.requeue_orphan(c.id, 0).await.unwrap());
    }
    let mut live: HashMap<i64, String> = HashMap::new();
    let mut done = 0;
    let mut now = LEASE + 3;
    loop {
        while let Some(c) = s.claim("drain", now, LEASE, 7).await.unwrap() {
            assert!(live.len() < 7);
            assert!(!live.values().any(|n| *n == c.to_number), "second live call to {}", c.to_number);
            live.insert(c.id, c.to_number);
        }
        let Some((&id, _)) = live.iter().next() else { break };
        assert!(s.complete(id, "drain", now).await.unwrap());
        live.remove(&id);
        done += 1;
        now += 1;
    }
    assert_eq!(done, 100);
}

#[tokio::test]
async fn retryable_failures_back_off_and_spend_max_attempts() {
    let db = TempDb::new();
    let s = Store::open(&db.url()).await.unwrap();
    let id = s.enqueue(job("c", "+1", 0, 0), 0).await.unwrap();
    let c = s.claim("w", 0, LEASE, 5).await.unwrap().unwrap();
    assert_eq!(s.fail(c.id, "w", 10, "busy", true, 300_000).await.unwrap(), AfterFailure::Requeued { run_at: 300_000 });
    assert_eq!(s.claim("w", 299_999, LEASE, 5).await.unwrap(), None, "not before the backoff");
    let c = s.claim("w", 300_000, LEASE, 5).await.unwrap().unwrap();
    assert_eq!(c.attempts, 2);
    assert_eq!(s.fail(c.id, "someone-else", 1, "x", true, 0).await.unwrap(), AfterFailure::NotOwner);
    assert!(matches!(
        s.fail(c.id, "w", 300_010, "no-answer", true, 900_000).await.unwrap(),
        AfterFailure::Requeued { .. }
    ));
    let c = s.claim("w", 900_000, LEASE, 5).await.unwrap().unwrap();
    assert_eq!(c.attempts, 3);
    assert_eq!(s.fail(c.id, "w", 900_010, "busy", true, 2_000_000).await.unwrap(), AfterFailure::Final, "3 of 3 spent");
    assert_eq!(s.claim("w", 3_000_000, LEASE, 5).await.unwrap(), None);
    // A final (4xx) failure does not retry even with attempts left.
    s.enqueue(job("d", "+2", 0, 0), 0).await.unwrap();
    let d = s.claim("w", 0, LEASE, 5).await.unwrap().unwrap();
    assert_eq!(s.fail(d.id, "w", 1, "21211 invalid number", false, 0).await.unwrap(), AfterFailure::Final);
    let _ = id;
}

#[tokio::test]
async fn an_expired_lease_is_reconciled_before_any_new_dial() {
    let db = TempDb::new();
    let s = Store::open(&db.url()).await.unwrap();
    s.enqueue(job("c", "+1", 0, 0), 0).await.unwrap();
    let c = s.claim("dead-worker", 0, 1_000, 5).await.unwrap().unwrap();
    assert!(s.heartbeat(c.id, "dead-worker", 2_000).await.unwrap());
    assert!(s.expire_leases(1_500).await.unwrap().is_empty(), "the heartbeat extended the lease");
    assert_eq!(s.expire_leases(2_001).await.unwrap(), vec![c.id]);
    assert!(!s.heartbeat(c.id, "dead-worker", 9_000).await.unwrap(), "a lost lease cannot be extended");
    assert!(!s.complete(c.id, "dead-worker", 3_000).await.unwrap());
    // Orphaned: not claimable, and still blocks its number.
    s.enqueue(job("other", "+1", 0, 0), 0).await.unwrap();
    assert_eq!(s.claim("w2", 3_000, 1_000, 5).await.unwrap(), None);
    assert_eq!(s.cancel(c.id, 3_000).await.unwrap(), Cancel::Running, "a possibly live call must be hung up");
    // The reconciler found no live call at the provider: back to the queue, behind the job for
    // the same number that was waiting already (equal priority, earlier run_at).
    assert!(s.requeue_orphan(c.id, 3_000).await.unwrap());
    let other = s.claim("w2", 3_000, 1_000, 5).await.unwrap().unwrap();
    assert_eq!(other.call_id, "other");
    assert_eq!(s.claim("w2", 3_000, 1_000, 5).await.unwrap(), None, "same number: waits");
    assert!(s.complete(other.id, "w2", 3_100).await.unwrap());
    let again = s.claim("w2", 3_200, 1_000, 5).await.unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (c.id, 2), "the second attempt, counted");
}

#[tokio::test]
async fn cancel_and_retention() {
    let db = TempDb::new();
    let s = Store::open(&db.url()).await.unwrap();
    let a = s.enqueue(job("a", "+1", 0, 0), 0).await.unwrap();
    assert_eq!(s.cancel(a, 10).await.unwrap(), Cancel::Canceled);
    assert_eq!(s.cancel(a, 11).await.unwrap(), Cancel::Finished);
    assert_eq!(s.cancel(9999, 11).await.unwrap(), Cancel::Finished);
    let b = s.enqueue(job("b", "+2", 0, 0), 0).await.unwrap();
    let c = s.claim("w", 0, LEASE, 5).await.unwrap().unwrap();
    assert_eq!(c.id, b);
    assert!(s.complete(b, "w", 20).await.unwrap());
    let day = 86_400_000;
    // Completed kept 24 h, failed/canceled 7 days.
    assert_eq!(s.prune(20 + day - 1, day, 7 * day).await.unwrap(), 0);
    assert_eq!(s.prune(20 + day + 1, day, 7 * day).await.unwrap(), 1);
    assert_eq!(s.prune(10 + 7 * day + 1, day, 7 * day).await.unwrap(), 1);
}

#[derive(Debug, Clone)]
enum Op {
    Enqueue { number: u8, priority: i8, delay: u16 },
    Claim,
    Complete(usize),
    Fail { pick: usize, retryable: bool },
    Expire,
    Reconcile(usize),
    Cancel(usize),
    Tick(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..4, -2i8..3, 0u16..500).prop_map(|(number, priority, delay)| Op::Enqueue { number, priority, delay }),
        4 => Just(Op::Claim),
        2 => any::<usize>().prop_map(Op::Complete),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(pick, retryable)| Op::Fail { pick, retryable }),
        1 => Just(Op::Expire),
        1 => any::<usize>().prop_map(Op::Reconcile),
        1 => any::<usize>().prop_map(Op::Cancel),
        2 => (0u16..2_000).prop_map(Op::Tick),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random enqueue/claim/complete/fail/expire/reconcile/cancel sequences keep the invariants:
    /// never more than the cap in progress, never two in progress for one number, attempts never
    /// above the maximum, a job claimed only while due and queued.
    #[test]
    fn random_operations_keep_the_queue_invariants(ops in prop::collection::vec(op(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let db = TempDb::new();
            let s = Store::open(&db.url()).await.unwrap();
            const CAP: i64 = 2;
            let mut now: i64 = 0;
            let mut queued: HashMap<i64, (String, i64)> = HashMap::new(); // id → (number, run_at)
            let mut running: HashMap<i64, String> = HashMap::new();
            let mut orphaned: HashMap<i64, String> = HashMap::new();
            for op in ops {
                match op {
                    Op::Enqueue { number, priority, delay } => {
                        let n = format!("+1{number}");
                        let run_at = now + delay as i64;
                        let id = s.enqueue(NewJob { call_id: "c".into(), to_number: n.clone(), priority: priority as i64, run_at, max_attempts: 2 }, now).await.unwrap();
                        queued.insert(id, (n, run_at));
                    }
                    Op::Claim => {
                        if let Some(c) = s.claim("w", now, 1_000, CAP).await.unwrap() {
                            let (n, run_at) = queued.remove(&c.id).expect("claimed a job that was queued");
                            prop_assert!(run_at <= now, "claimed before due");
                            prop_assert!(c.attempts <= c.max_attempts);
                            running.insert(c.id, n);
                        }
                    }
                    Op::Complete(pick) => {
                        if let Some(&id) = running.keys().nth(pick % running.len().max(1)) {
                            prop_assert!(s.complete(id, "w", now).await.unwrap());
                            running.remove(&id);
                        }
                    }
                    Op::Fail { pick, retryable } => {
                        if let Some(&id) = running.keys().nth(pick % running.len().max(1)) {
                            let n = running.remove(&id).unwrap();
                            match s.fail(id, "w", now, "x", retryable, now + 100).await.unwrap() {
                                AfterFailure::Requeued { run_at } => { queued.insert(id, (n, run_at)); }
                                AfterFailure::Final => {}
                                AfterFailure::NotOwner => prop_assert!(false, "we held the lease"),
                            }
                        }
                    }
                    Op::Expire => {
                        for id in s.expire_leases(now).await.unwrap() {
                            let n = running.remove(&id).expect("only running jobs expire");
                            orphaned.insert(id, n);
                        }
                    }
                    Op::Reconcile(pick) => {
                        if let Some(&id) = orphaned.keys().nth(pick % orphaned.len().max(1)) {
                            let n = orphaned.remove(&id).unwrap();
                            prop_assert!(s.requeue_orphan(id, now).await.unwrap());
                            if s.queue_position(id).await.unwrap().is_some() {
                                queued.insert(id, (n, now));
                            }
                        }
                    }
                    Op::Cancel(pick) => {
                        if let Some(&id) = queued.keys().nth(pick % queued.len().max(1)) {
                            prop_assert_eq!(s.cancel(id, now).await.unwrap(), Cancel::Canceled);
                            queued.remove(&id);
                        }
                    }
                    Op::Tick(ms) => now += ms as i64,
                }
                let live: Vec<&String> = running.values().chain(orphaned.values()).collect();
                prop_assert!(live.len() as i64 <= CAP, "cap exceeded: {}", live.len());
                let distinct: HashSet<&&String> = live.iter().collect();
                prop_assert_eq!(distinct.len(), live.len(), "two live calls to one number");
            }
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn old_finished_calls_are_pruned_but_live_ones_kept() {
    use voxbridge::queue::status::CallStatus;
    use voxbridge::store::calls::NewCallRecord;
    let db = TempDb::new();
    let s = Store::open(&db.url()).await.unwrap();
    let rec = |id: &str, status| NewCallRecord {
        id: id.into(),
        provider: "twilio".into(),
        inbound: true,
        to_number: "+1".into(),
        from_number: None,
        status,
        webhook_url: None,
        provider_call_id: None,
        config: None,
        agent: None,
    };
    s.insert_call(&rec("old-done", CallStatus::Completed), 1_000).await.unwrap();
    s.insert_call(&rec("old-live", CallStatus::InProgress), 1_000).await.unwrap();
    s.insert_call(&rec("new-done", CallStatus::Completed), 9_000).await.unwrap();
    assert_eq!(s.prune_calls(5_000).await.unwrap(), 1);
    assert!(s.get_call("old-done").await.unwrap().is_none());
    assert!(s.get_call("old-live").await.unwrap().is_some(), "a call in progress is never pruned");
    assert!(s.get_call("new-done").await.unwrap().is_some());
}

#[tokio::test]
async fn a_due_job_outside_its_call_window_is_deferred_at_claim_time_without_an_attempt() {
    use std::time::Duration;
    use voxbridge::queue::policy::CallWindow;
    use voxbridge::queue::worker::Dialer;
    use voxbridge::store::outbound::OutboundCall;
    voxbridge::install_tls();
    let db = TempDb::new();
    let s = Store::open(&db.url()).await.unwrap();
    // A window open all day, but only on a weekday that is not today (in UTC).
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).weekday();
    let other = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][today.next().to_monday_zero_offset() as usize];
    let window = serde_json::json!({"timezone": "UTC", "start": "00:00", "end": "23:59", "days": [other]}).to_string();
    let now = jiff::Timestamp::now().as_millisecond();
    // Due now, e.g. a retry whose backoff ran past closing time.
    let call =
        OutboundCall { call_window: Some(window.clone()), ..common::due_call("c_window", "twilio", now - 1_000) };
    s.create_outbound(&call, None, now).await.unwrap();
    // A Twilio that cannot be reached: an attempted dial would fail and count an attempt.
    let config = common::dialer_config(Duration::from_secs(30));
    let mut dialer = Dialer::new(s.clone(), common::unreachable_twilio(), config);
    dialer.tick().await.unwrap();
    let view = s.call_view("c_window").await.unwrap().unwrap();
    assert_eq!(view.status, voxbridge::queue::status::CallStatus::Queued);
    assert_eq!(view.attempts, 0, "no attempt was spent");
    let opening = CallWindow::from_json(&window).unwrap().next_opening(jiff::Timestamp::now()).as_millisecond();
    assert_eq!(view.next_attempt_at, Some(opening), "deferred to the window's next opening");
    // The deferral leaves a trace and is counted.
    assert_eq!(view.reschedules, 1);
    let history = s.get_call("c_window").await.unwrap().unwrap().history;
    let last = history.last().unwrap();
    assert_eq!(last.0, voxbridge::queue::status::CallStatus::Queued);
    assert!(last.2.as_deref().unwrap().ends_with("outside the call window"), "{last:?}");
}

#[tokio::test]
async fn an_event_is_seen_once_unless_forgotten_and_a_verdict_is_kept_per_attempt() {
    let db = TempDb::new();
    let s = Store::open(&db.url()).await.unwrap();
    assert!(s.first_sighting("telnyx", "ev1", 0).await.unwrap());
    assert!(!s.first_sighting("telnyx", "ev1", 1).await.unwrap(), "a redelivery");
    assert!(s.first_sighting("twilio", "ev1", 1).await.unwrap(), "ids are per provider");
    s.forget_sighting("telnyx", "ev1").await.unwrap();
    assert!(s.first_sighting("telnyx", "ev1", 2).await.unwrap(), "a failed event acts on redelivery");

    s.create_outbound(&common::due_call("c1", "telnyx", 0), None, 0).await.unwrap();
    s.start_attempt("c1", 1, 0).await.unwrap();
    s.attempt_dialed("c1", 1, "v3:one").await.unwrap();
    assert!(!s.record_answered_by("c1", "v3:other", "machine").await.unwrap(), "another attempt's verdict");
    assert!(s.record_answered_by("c1", "v3:one", "machine").await.unwrap());
    assert!(!s.record_answered_by("c1", "v3:one", "machine").await.unwrap(), "a redelivered verdict");
    assert!(!s.record_answered_by("c1", "v3:one", "human").await.unwrap(), "the first verdict stands");
    assert_eq!(s.call_view("c1").await.unwrap().unwrap().answered_by.as_deref(), Some("machine"));
    s.start_attempt("c1", 2, 0).await.unwrap();
    s.attempt_dialed("c1", 2, "v3:two").await.unwrap();
    assert_eq!(s.call_view("c1").await.unwrap().unwrap().answered_by, None, "a new attempt starts unjudged");
    assert!(s.record_answered_by("c1", "v3:two", "human").await.unwrap());
}

#[tokio::test]
async fn call_completed_waits_for_the_transcript_and_no_longer() {
    use voxbridge::queue::status::CallStatus;
    use voxbridge::store::EventOutbox;
    use voxbridge::store::calls::{ProviderEvent, TranscriptLine};
    let db = TempDb::new();
    let s = Store::open(&db.url()).await.unwrap();
    let line = TranscriptLine { speaker: "caller".into(), text: "hi".into(), at_ms: 10, heard_ms: None };
    // Taken once per round, as the deliverer does (PostgreSQL leases what it hands out).
    let completed_in = |due: &[voxbridge::store::events::PendingEvent], id: &str| {
        due.iter().any(|e| e.call_id == id && e.status == "completed")
    };
    for (id, sid, transcript_first) in [("c1", "CA1", false), ("c2", "CA2", true)] {
        let mut call = common::due_call(id, "twilio", 0);
        call.webhook_url = Some("https://example.test/hook".into());
        s.create_outbound(&call, None, 0).await.unwrap();
        s.start_attempt(id, 1, 1).await.unwrap();
        s.attempt_dialed(id, 1, sid).await.unwrap();
        if transcript_first {
            s.save_transcript(id, std::slice::from_ref(&line)).await.unwrap();
        }
        let ev = ProviderEvent {
            provider: "twilio",
            event_id: sid,
            call_id: id,
            provider_call_id: sid,
            attempt: None,
            status: CallStatus::Completed,
            detail: None,
            carrier_seconds: None,
        };
        s.apply_provider_event(&ev, 0, 1_000).await.unwrap();
    }
    // A call's events go out in order: `call.completed` waits behind the earlier ones.
    let mut due = s.due_events(1_000, 100).await.unwrap();
    assert!(due.iter().all(|e| e.status != "completed"), "{due:?}");
    while due.iter().any(|e| e.status != "completed") {
        for e in due.iter().filter(|e| e.status != "completed") {
            s.event_attempted(e.id, voxbridge::store::events::Attempted::Delivered, 1_000).await.unwrap();
        }
        due = s.due_events(1_000, 100).await.unwrap();
    }
    assert!(!completed_in(&due, "c1"), "completed before the transcript: it waits");
    assert!(completed_in(&due, "c2"), "the transcript was there: due at once");
    s.save_transcript("c1", &[line]).await.unwrap();
    let due = s.due_events(1_000, 100).await.unwrap();
    assert!(completed_in(&due, "c1"), "due as soon as the transcript is saved");
}

#[tokio::test]
async fn an_inbound_call_whose_stream_never_started_ends_failed_not_ringing() {
    use voxbridge::queue::status::CallStatus;
    use voxbridge::store::calls::NewCallRecord;
    let db = TempDb::new();
    let s = Store::open(&db.url()).await.unwrap();
    let inbound = |id: &str, status| NewCallRecord {
        id: id.into(),
        provider: "twilio".into(),
        inbound: true,
        to_number: "+15550000001".into(),
        from_number: None,
        status,
        webhook_url: None,
        provider_call_id: None,
        config: None,
        agent: None,
    };
    s.insert_call(&inbound("c_stuck", CallStatus::Ringing), 1_000).await.unwrap();
    s.insert_call(&inbound("c_talking", CallStatus::InProgress), 1_000).await.unwrap();
    s.insert_call(&inbound("c_fresh", CallStatus::Ringing), 200_000).await.unwrap();
    // Nothing older than the cut-off yet: nothing changes (and no write happens).
    assert!(s.fail_unstarted_inbound(500, 300_000).await.unwrap().is_empty());
    let failed = s.fail_unstarted_inbound(151_000, 300_000).await.unwrap();
    assert_eq!(failed, ["c_stuck"], "only the ringing call created before the cut-off");
    let stuck = s.get_call("c_stuck").await.unwrap().unwrap();
    assert_eq!(stuck.status, CallStatus::Failed);
    assert_eq!(stuck.history.last().unwrap().2.as_deref(), Some("stream never started"));
    assert_eq!(s.get_call("c_talking").await.unwrap().unwrap().status, CallStatus::InProgress);
    assert_eq!(s.get_call("c_fresh").await.unwrap().unwrap().status, CallStatus::Ringing);
    assert!(s.fail_unstarted_inbound(151_000, 300_000).await.unwrap().is_empty(), "once");
}

#[tokio::test]
async fn commands_nobody_took_are_pruned_with_the_bookkeeping() {
    let db = TempDb::new();
    let s = Store::open(&db.url()).await.unwrap();
    // SQLite has one process: commands never leave it.
    let Store::Postgres(pg) = &s else { return };
    pg.send_command("c1", r#"{"command":"hang_up"}"#, 1_000).await.unwrap();
    assert_eq!(s.prune_bookkeeping(500, 500, 500).await.unwrap(), 0, "not that old");
    assert_eq!(s.prune_bookkeeping(2_000, 2_000, 2_000).await.unwrap(), 1, "the command left behind");
    assert!(pg.take_commands("c1").await.unwrap().is_empty());
}

#[tokio::test]
async fn bookkeeping_tables_are_pruned_by_age() {
    use voxbridge::store::EventOutbox;
    use voxbridge::store::outbound::{Created, OutboundCall};
    let db = TempDb::new();
    let s = Store::open(&db.url()).await.unwrap();
    let hooked = |id: &str| OutboundCall {
        webhook_url: Some("https://hooks.example.com/e".into()),
        ..common::due_call(id, "twilio", 1_000)
    };
    assert!(matches!(s.create_outbound(&hooked("c_old"), Some("k-old"), 1_000).await.unwrap(), Created::New(_)));
    assert!(s.first_sighting("twilio", "CA1:1", 1_000).await.unwrap());
    let sent = s.due_events(5_000, 10).await.unwrap();
    assert_eq!(sent.len(), 1, "call.queued");
    s.event_attempted(sent[0].id, voxbridge::store::events::Attempted::Delivered, 1_000).await.unwrap();
    // A newer call's event is still pending: kept whatever its age.
    s.create_outbound(&hooked("c_new"), None, 1_500).await.unwrap();
    assert_eq!(s.prune_bookkeeping(500, 500, 500).await.unwrap(), 0, "nothing that old");
    assert_eq!(
        s.prune_bookkeeping(2_000, 2_000, 2_000).await.unwrap(),
        3,
        "the key, the sighting, the delivered event"
    );
    assert!(s.first_sighting("twilio", "CA1:1", 3_000).await.unwrap(), "the sighting was forgotten");
    assert_eq!(s.due_events(5_000, 10).await.unwrap().len(), 1, "the pending event stays");
    let again = s.create_outbound(&hooked("c_again"), Some("k-old"), 3_000).await.unwrap();
    assert!(matches!(again, Created::New(_)), "an expired key makes a new call");
}

#[tokio::test]
async fn a_dedupe_window_holds_even_after_the_first_call_ended() {
    use voxbridge::store::outbound::{Created, OutboundCall};
    let db = TempDb::new();
    let s = Store::open(&db.url()).await.unwrap();
    let keyed = |id: &str, window_s: Option<i64>| OutboundCall {
        dedupe_key: Some("signup-42".into()),
        dedupe_window_ms: window_s.map(|w| w * 1000),
        ..common::due_call(id, "twilio", 0)
    };
    let Created::New(first) = s.create_outbound(&keyed("c_1", None), None, 1_000).await.unwrap() else {
        panic!("the first call is new")
    };
    assert_eq!(s.cancel_outbound(&first, 2_000).await.unwrap(), Cancel::Canceled, "it ends");
    let hour = Some(3_600);
    let within = s.create_outbound(&keyed("c_2", hour), None, 1_000 + 1_800_000).await.unwrap();
    assert_eq!(within, Created::Existing(first.clone()), "within the hour: the first call, though it ended");
    let after = s.create_outbound(&keyed("c_3", hour), None, 1_000 + 3_600_001).await.unwrap();
    assert_eq!(after, Created::New("c_3".into()), "after the window: a new call");
    let no_window = s.create_outbound(&keyed("c_4", None), None, 1_000 + 3_600_002).await.unwrap();
    assert_eq!(no_window, Created::Existing("c_3".into()), "without a window only a live call dedupes (c_3 is queued)");
}

#[tokio::test]
async fn a_call_not_dialled_by_its_expiry_ends_expired_and_is_never_claimed() {
    use voxbridge::queue::status::CallStatus;
    use voxbridge::store::EventOutbox;
    use voxbridge::store::outbound::OutboundCall;
    let db = TempDb::new();
    let s = Store::open(&db.url()).await.unwrap();
    let expiring = |id: &str, number: &str, expires_at| OutboundCall {
        to_number: number.into(),
        expires_at: Some(expires_at),
        webhook_url: Some("https://hooks.example.com/e".into()),
        ..common::due_call(id, "twilio", 0)
    };
    s.create_outbound(&expiring("c_late", "+15550000001", 5_000), None, 0).await.unwrap();
    s.create_outbound(&expiring("c_soon", "+15550000002", 60_000), None, 0).await.unwrap();
    // Past its expiry, a call is not claimed even before the sweeper runs.
    let claimed = s.claim("w", 6_000, LEASE, 10).await.unwrap().expect("the other call");
    assert_eq!(claimed.call_id, "c_soon");
    assert!(s.claim("w", 6_000, LEASE, 10).await.unwrap().is_none());
    assert!(s.expire_overdue(4_000).await.unwrap().is_empty(), "not yet");
    assert_eq!(s.expire_overdue(6_000).await.unwrap(), ["c_late"]);
    assert!(s.expire_overdue(70_000).await.unwrap().is_empty(), "a call being dialled is left alone");
    let view = s.call_view("c_late").await.unwrap().unwrap();
    assert_eq!(view.status, CallStatus::Expired);
    let prices = voxbridge::pricing::Prices::default();
    let resource = view.to_resource(&prices);
    assert_eq!(resource.expires_at.as_deref(), Some("1970-01-01T00:00:05Z"));
    assert_eq!(resource.end_reason.as_deref(), Some("expired"), "an expired call says why it ended");
    assert_eq!(resource.ended_at.as_deref(), Some("1970-01-01T00:00:06Z"));
    let events: Vec<String> = s.call_events("c_late").await.unwrap().into_iter().map(|(e, _, _)| e).collect();
    assert_eq!(events, ["call.queued", "call.expired"]);
}

#[tokio::test]
async fn dials_are_paced_per_carrier_account() {
    use std::time::Duration;
    use voxbridge::queue::worker::Dialer;
    voxbridge::install_tls();
    let db = TempDb::new();
    let s = Store::open(&db.url()).await.unwrap();
    let now = jiff::Timestamp::now().as_millisecond();
    for i in 0..4 {
        let mut call = common::due_call(&format!("c_pace{i}"), "twilio", now - 1_000);
        call.to_number = format!("+1555000100{i}");
        s.create_outbound(&call, None, now).await.unwrap();
    }
    let config = voxbridge::queue::worker::DialerConfig {
        max_dials_per_second: std::num::NonZeroU32::new(1),
        ..common::dialer_config(Duration::from_secs(30))
    };
    // Unreachable: each dial fails at once and counts its attempt, which is what is counted here.
    let mut dialer = Dialer::new(s.clone(), common::unreachable_twilio(), config);
    dialer.tick().await.unwrap();
    let mut attempted = 0;
    for i in 0..4 {
        attempted += s.call_view(&format!("c_pace{i}")).await.unwrap().unwrap().attempts;
    }
    assert_eq!(attempted, 1, "one dial in the first second; the others wait, their attempts not spent");
}

/// Each attempt has its identity before the dial: a callback naming it is applied even before
/// the create answer stored its sid (and records the sid); callbacks of an earlier attempt, and
/// an earlier attempt's late create answer, change nothing.
#[tokio::test]
async fn a_callback_that_beats_the_create_answer_is_applied_to_its_own_attempt() {
    use voxbridge::queue::status::CallStatus;
    use voxbridge::store::calls::{Applied, ProviderEvent};
    let db = TempDb::new();
    let s = Store::open(&db.url()).await.unwrap();
    let mut call = common::due_call("c1", "twilio", 0);
    call.max_attempts = 3;
    s.create_outbound(&call, None, 0).await.unwrap();
    let ev = |event_id: &'static str, sid: &'static str, attempt, status| ProviderEvent {
        provider: "twilio",
        event_id,
        call_id: "c1",
        provider_call_id: sid,
        attempt: Some(attempt),
        status,
        detail: None,
        carrier_seconds: None,
    };
    let job = s.claim("w", 0, 60_000, 10).await.unwrap().unwrap();
    s.start_attempt("c1", job.attempts, 1).await.unwrap();
    // Attempt 1's `initiated` and `busy` arrive before Calls.create answers.
    let initiated = s.apply_provider_event(&ev("e1", "CA1", 1, CallStatus::Dialing), 5_000, 2).await.unwrap();
    assert_eq!(initiated, Applied::Stale, "no change of status");
    assert_eq!(
        s.call_view("c1").await.unwrap().unwrap().provider_call_id.as_deref(),
        Some("CA1"),
        "but the sid is kept"
    );
    let busy = s.apply_provider_event(&ev("e2", "CA1", 1, CallStatus::Busy), 5_000, 3).await.unwrap();
    assert!(matches!(busy, Applied::Retrying { after: CallStatus::Busy, .. }), "{busy:?}");
    // The create answer comes late; the call is queued for attempt 2 and attempt 2 starts.
    s.attempt_dialed("c1", 1, "CA1").await.unwrap();
    let job = s.claim("w", 5_000, 60_000, 10).await.unwrap().unwrap();
    assert_eq!(job.attempts, 2);
    s.start_attempt("c1", 2, 5_001).await.unwrap();
    assert_eq!(s.call_view("c1").await.unwrap().unwrap().provider_call_id, None, "attempt 2 has no sid yet");
    // Attempt 2's ringing beats its create answer; attempt 1's late `completed` is stale.
    let ringing = s.apply_provider_event(&ev("e3", "CA2", 2, CallStatus::Ringing), 0, 5_002).await.unwrap();
    assert_eq!(ringing, Applied::Advanced(CallStatus::Ringing));
    let late = s.apply_provider_event(&ev("e4", "CA1", 1, CallStatus::Completed), 0, 5_003).await.unwrap();
    assert_eq!(late, Applied::Stale);
    s.attempt_dialed("c1", 1, "CA1").await.unwrap();
    let view = s.call_view("c1").await.unwrap().unwrap();
    assert_eq!((view.status, view.provider_call_id.as_deref()), (CallStatus::Ringing, Some("CA2")));
}

/// A job whose worker died before it dialled goes back to the queue with its attempt uncounted
/// and its call `queued` (even with `max_attempts` 1: it never stays `dialing`).
#[tokio::test]
async fn an_orphan_that_never_reached_the_carrier_is_released_uncounted() {
    use voxbridge::queue::status::CallStatus;
    let db = TempDb::new();
    let s = Store::open(&db.url()).await.unwrap();
    s.create_outbound(&common::due_call("c1", "twilio", 0), None, 0).await.unwrap();
    let job = s.claim("w", 0, 100, 10).await.unwrap().unwrap();
    s.start_attempt("c1", job.attempts, 1).await.unwrap();
    assert_eq!(s.expire_leases(1_000).await.unwrap(), vec![job.id]);
    let orphans = s.orphans().await.unwrap();
    assert_eq!(orphans.len(), 1);
    assert_eq!((orphans[0].attempt.attempt, orphans[0].attempt.provider_call_id.as_deref()), (1, None));
    assert!(s.release_orphan(job.id, "c1", "re-queued: test", 1_001).await.unwrap());
    assert!(!s.release_orphan(job.id, "c1", "re-queued: test", 1_002).await.unwrap(), "once");
    let view = s.call_view("c1").await.unwrap().unwrap();
    assert_eq!((view.status, view.attempts), (CallStatus::Queued, 0));
    let history = s.get_call("c1").await.unwrap().unwrap().history;
    assert_eq!(history.last().unwrap().2.as_deref(), Some("re-queued: test"));
    assert!(s.claim("w", 1_002, 100, 10).await.unwrap().is_some(), "dialled again");
}

/// A note on why a queued call is not dialled is cleared when an attempt starts; a failed
/// attempt's requeued call says why in its history, not in a note the next attempt would keep.
#[tokio::test]
async fn a_note_on_why_a_call_waits_is_cleared_when_an_attempt_starts() {
    let db = TempDb::new();
    let s = Store::open(&db.url()).await.unwrap();
    let mut call = common::due_call("c1", "twilio", 0);
    call.max_attempts = 3;
    s.create_outbound(&call, None, 0).await.unwrap();
    let last_error = || async { s.call_view("c1").await.unwrap().unwrap().last_error };
    s.note_waiting("c1", "TWILIO_AUTH_TOKEN is not set").await.unwrap();
    assert_eq!(last_error().await.as_deref(), Some("not dialled: TWILIO_AUTH_TOKEN is not set"));
    let job = s.claim("w", 0, 60_000, 10).await.unwrap().unwrap();
    s.start_attempt("c1", job.attempts, 1).await.unwrap();
    assert_eq!(last_error().await, None, "the note no longer holds");
    let after = s.attempt_failed(job.id, "w", "c1", "carrier said 503", true, 10, 2).await.unwrap();
    assert_eq!(after, AfterFailure::Requeued { run_at: 10 });
    s.note_waiting("c1", "TWILIO_AUTH_TOKEN is not set").await.unwrap();
    assert_eq!(last_error().await.as_deref(), Some("not dialled: TWILIO_AUTH_TOKEN is not set"), "queued again");
    let job = s.claim("w", 10, 60_000, 10).await.unwrap().unwrap();
    s.start_attempt("c1", job.attempts, 11).await.unwrap();
    assert_eq!(last_error().await, None);
    // Dialled and failed for good: the error is the call's.
    let after = s.attempt_failed(job.id, "w", "c1", "carrier said 400", false, 0, 12).await.unwrap();
    assert_eq!(after, AfterFailure::Final);
    assert_eq!(last_error().await.as_deref(), Some("carrier said 400"));
    s.note_waiting("c1", "TWILIO_AUTH_TOKEN is not set").await.unwrap();
    assert_eq!(last_error().await.as_deref(), Some("carrier said 400"), "a finished call takes no note");
}

/// The dial pace is kept in the store, so every dialler of it shares it: two handles (two
/// instances on PostgreSQL) take from one bucket; time is passed in.
#[tokio::test]
async fn the_dial_pace_is_shared_by_every_dialler_of_the_store() {
    use voxbridge::lifecycle::pace::Pace;
    let db = TempDb::new();
    let (a, b) = (Store::open(&db.url()).await.unwrap(), Store::open(&db.url()).await.unwrap());
    let pace = Pace::per_second(std::num::NonZeroU32::new(2).unwrap());
    let t = 1_000_000;
    assert_eq!(a.take_dial("twilio:AC1", pace, t).await.unwrap(), Ok(()));
    assert_eq!(b.take_dial("twilio:AC1", pace, t).await.unwrap(), Ok(()), "a second's burst, across handles");
    let next = a.take_dial("twilio:AC1", pace, t).await.unwrap().expect_err("the burst is spent");
    assert!(next > t && next <= t + 501, "next allowed at {next}");
    assert_eq!(b.take_dial("twilio:AC1", pace, next - 2).await.unwrap().map_err(|_| ()), Err(()), "not before");
    assert_eq!(b.take_dial("twilio:AC1", pace, next).await.unwrap(), Ok(()));
    assert_eq!(a.take_dial("telnyx:conn", pace, t).await.unwrap(), Ok(()), "each carrier account its own pace");
}

/// A fake Twilio whose call list answers `status` with `body`; counts the list requests.
async fn twilio_listing(
    status: u16,
    body: &'static str,
) -> (voxbridge::providers::carrier::Carriers, Arc<AtomicUsize>) {
    let asked = Arc::new(AtomicUsize::new(0));
    let a = Arc::clone(&asked);
    // A create is answered 500 (and counted 1000 times over, to tell it from a list request).
    let c = Arc::clone(&asked);
    let app = axum::Router::new().route(
        "/2010-04-01/Accounts/{account}/Calls.json",
        axum::routing::get(move || {
            let a = Arc::clone(&a);
            async move {
                a.fetch_add(1, Ordering::SeqCst);
                (axum::http::StatusCode::from_u16(status).unwrap(), body)
            }
        })
        .post(move || {
            let c = Arc::clone(&c);
            async move {
                c.fetch_add(1000, Ordering::SeqCst);
                (axum::http::StatusCode::INTERNAL_SERVER_ERROR, r#"{"code": 20500, "message": "oops"}"#)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut carriers = common::unreachable_twilio();
    carriers.twilio = Some(voxbridge::providers::twilio::rest::TwilioRest::new(&url, "ACtest", "tok"));
    (carriers, asked)
}

/// An orphaned attempt whose dial had started (the worker died mid-dial), started at `started`.
async fn orphan_dialling(s: &Store, id: &str, max_attempts: i64, started: i64) {
    let mut call = common::due_call(id, "twilio", 0);
    call.max_attempts = max_attempts;
    call.to_number = format!("+1555{:07}", id.len() * 1000 + id.bytes().map(usize::from).sum::<usize>());
    // Created when it started (retention keeps a finished call a day).
    s.create_outbound(&call, None, started - 10).await.unwrap();
    orphan_again(s, id, started).await;
}

/// Call `id`'s queued job is claimed by a worker that starts its dial and dies.
async fn orphan_again(s: &Store, id: &str, started: i64) {
    let job = s.claim("dead", started - 5, 100, 10).await.unwrap().unwrap();
    assert_eq!(job.call_id, id);
    s.start_attempt(id, job.attempts, started).await.unwrap();
    assert_eq!(s.expire_leases(started + 1_000).await.unwrap(), vec![job.id]);
}

/// Issue 27: an attempt whose dial had started and of which the carrier has no call goes back
/// uncounted a bounded number of times (the callee heard nothing: a one-attempt call is still
/// dialled), then counts — a crash loop while the carrier refuses creates cannot dial a call for
/// ever (before: re-queued uncounted every time).
#[tokio::test]
async fn an_orphan_the_carrier_has_no_call_of_counts_its_attempt() {
    use voxbridge::lifecycle::attempt::UNCOUNTED_RELEASES;
    use voxbridge::queue::status::CallStatus;
    use voxbridge::queue::worker::{Dialer, DialerConfig};
    voxbridge::install_tls();
    let db = TempDb::new();
    let s = Store::open(&db.url()).await.unwrap();
    let now = jiff::Timestamp::now().as_millisecond();
    let (carriers, asked) = twilio_listing(200, r#"{"calls": []}"#).await;
    // This dialler only reconciles (no room to dial): each round, the worker that claimed the
    // call dies mid-dial again.
    let config = DialerConfig { max_running: 0, ..common::dialer_config(std::time::Duration::from_secs(30)) };
    let mut dialer = Dialer::new(s.clone(), carriers, config);
    orphan_dialling(&s, "c_gone", 1, now).await;
    for round in 0..=UNCOUNTED_RELEASES {
        if round > 0 {
            orphan_again(&s, "c_gone", now + round * 10_000).await;
        }
        dialer.tick().await.unwrap();
        let view = s.call_view("c_gone").await.unwrap().unwrap();
        if round < UNCOUNTED_RELEASES {
            assert_eq!((view.status, view.attempts), (CallStatus::Queued, 0), "round {round}: uncounted: {view:?}");
        } else {
            assert_eq!((view.status, view.attempts), (CallStatus::Failed, 1), "then it counts: {view:?}");
        }
    }
    assert_eq!(asked.load(Ordering::SeqCst), (UNCOUNTED_RELEASES + 1) as usize, "asked each time; never dialled");
    let history = s.get_call("c_gone").await.unwrap().unwrap().history;
    assert!(
        history.iter().any(|(_, _, d)| d.as_deref().is_some_and(|d| d.contains("no call for this attempt"))),
        "{history:?}"
    );
}

/// Issue 27: a carrier that cannot answer about an orphaned attempt is asked again after a
/// back-off, not on every round (before: 12,542 list requests in 10 minutes); once no call of
/// the attempt can still be up, the attempt ends, failed, with the reason, and is not redialled.
#[tokio::test]
async fn a_carrier_that_cannot_answer_is_asked_with_back_off_until_the_attempt_ends() {
    use voxbridge::queue::status::CallStatus;
    use voxbridge::queue::worker::Dialer;
    voxbridge::install_tls();
    let db = TempDb::new();
    let s = Store::open(&db.url()).await.unwrap();
    let now = jiff::Timestamp::now().as_millisecond();
    orphan_dialling(&s, "c_recent", 3, now).await;
    let (carriers, asked) = twilio_listing(404, r#"{"code": 20404, "message": "not found"}"#).await;
    let mut dialer = Dialer::new(s.clone(), carriers, common::dialer_config(std::time::Duration::from_secs(30)));
    for _ in 0..20 {
        dialer.tick().await.unwrap();
    }
    assert_eq!(asked.load(Ordering::SeqCst), 1, "asked once, then backed off");
    let view = s.call_view("c_recent").await.unwrap().unwrap();
    assert_eq!(view.status, CallStatus::Dialing, "it may be live: left alone meanwhile");
    // An attempt started long enough ago that no call of it can be up (ring + cap + a minute + grace).
    orphan_dialling(&s, "c_old", 3, now - 3 * 3_600_000).await;
    dialer.tick().await.unwrap();
    let view = s.call_view("c_old").await.unwrap().unwrap();
    assert_eq!(view.status, CallStatus::Failed, "{view:?}");
    assert!(view.last_error.as_deref().unwrap().contains("never said what became of attempt 1"), "{view:?}");
    assert_eq!(s.claim("w", now + 86_400_000, 100, 10).await.unwrap().map(|j| j.call_id), None, "not redialled");
}
