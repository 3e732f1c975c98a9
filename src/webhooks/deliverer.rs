//! Delivers the event outbox: resolves the target, refuses private addresses (unless allowed),
//! connects to the address it checked (no second lookup, no redirects), signs the body, and
//! retries failures with backoff (2^n s, at most 5 min) up to a limit. Calls are delivered
//! concurrently (each call's events in order), at most a few at a time per target.

use crate::store::{CallRecords, EventOutbox, OutboundCalls, now_ms};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};
use tracing::{info, warn};

use super::post::{Failure, Guard, post_json};
use crate::store::Store;
use crate::store::events::{Attempted, PendingEvent};

#[derive(Debug, Clone)]
pub struct DelivererConfig {
    /// Signs every body when set.
    pub secret: Option<String>,
    /// Deliver to loopback/private addresses too (local development, tests).
    pub allow_private: bool,
    pub poll: Duration,
    pub max_attempts: i64,
    pub timeout: Duration,
    /// Prices the call's `cost` in the payload.
    pub prices: crate::pricing::Prices,
}

/// Deliveries in flight at once, all targets together.
const MAX_IN_FLIGHT: usize = 64;
/// Deliveries in flight at once to one target (`host:port`): a slow or dead endpoint holds at
/// most this many, and never delays another target's events.
const PER_TARGET: usize = 4;

/// The calls with deliveries under way — each with its events still to send, in order, one at a
/// time — and the per-target limits.
#[derive(Default)]
struct Dispatch {
    calls: Mutex<Calls>,
    targets: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Events handed to a call's task and not yet recorded. A store that offers an event again
/// while it is under way (SQLite, one process) is not sent it twice; one that leases what it
/// offers (PostgreSQL, several instances) has its events queued behind the call's earlier ones
/// rather than left until the lease runs out.
///
/// An event recorded while a poll was reading the outbox may come back in that poll's (stale)
/// answer: it is remembered until the next poll begins, so it is not sent twice.
#[derive(Default)]
struct Calls {
    queues: HashMap<String, std::collections::VecDeque<PendingEvent>>,
    taken: HashSet<i64>,
    recorded_this_poll: HashSet<i64>,
}

impl Dispatch {
    /// Queues `ev` behind its call's events; `true` when the call needs a task to send them.
    fn offer(&self, ev: PendingEvent) -> bool {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        if calls.recorded_this_poll.contains(&ev.id) || !calls.taken.insert(ev.id) {
            return false;
        }
        let idle = !calls.queues.contains_key(&ev.call_id);
        calls.queues.entry(ev.call_id.clone()).or_default().push_back(ev);
        idle
    }

    /// The call's next event, or `None` (and the call is no longer busy).
    fn next(&self, call_id: &str) -> Option<PendingEvent> {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let ev = calls.queues.get_mut(call_id).and_then(|q| q.pop_front());
        if ev.is_none() {
            calls.queues.remove(call_id);
        }
        ev
    }

    /// The call's event will be retried: its later events handed over already are let go (not
    /// sent before it); the outbox offers them again once it went out.
    fn hold_back(&self, call_id: &str) {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(later) = calls.queues.get_mut(call_id).map(std::mem::take) {
            for ev in later {
                calls.taken.remove(&ev.id);
            }
        }
    }

    fn recorded(&self, id: i64) {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.taken.remove(&id);
        calls.recorded_this_poll.insert(id);
    }

    /// A poll of the outbox begins: it sees every record made so far.
    fn begin_poll(&self) {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).recorded_this_poll.clear();
    }
}

impl Dispatch {
    fn target(&self, url: &str) -> Arc<Semaphore> {
        let key = url::Url::parse(url)
            .ok()
            .map(|u| format!("{}:{}", u.host_str().unwrap_or(""), u.port_or_known_default().unwrap_or(0)))
            .unwrap_or_default();
        let mut targets = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        // Forget idle targets now and then, so the map stays as small as the live set.
        if targets.len() > 1024 {
            targets.retain(|_, s| s.available_permits() < PER_TARGET);
        }
        Arc::clone(targets.entry(key).or_insert_with(|| Arc::new(Semaphore::new(PER_TARGET))))
    }
}

/// Runs until `shutdown` turns true. Each poll hands every call with due events to its own
/// task (unless one is already running for that call), so targets are served concurrently.
pub async fn run(store: Store, config: DelivererConfig, mut shutdown: watch::Receiver<bool>) {
    if config.secret.is_none() {
        info!("VOXBRIDGE_WEBHOOK_SECRET not set: webhook events are sent unsigned");
    }
    let dispatch = Arc::new(Dispatch::default());
    let all = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let config = Arc::new(config);
    loop {
        dispatch.begin_poll();
        match store.due_events(now_ms(), MAX_IN_FLIGHT as i64).await {
            Ok(events) => {
                for ev in events {
                    let call_id = ev.call_id.clone();
                    if !dispatch.offer(ev) {
                        continue; // queued behind the call's earlier events, or already under way
                    }
                    let (store, config, dispatch, all) =
                        (store.clone(), Arc::clone(&config), Arc::clone(&dispatch), Arc::clone(&all));
                    tokio::spawn(async move {
                        while let Some(ev) = dispatch.next(&call_id) {
                            if let (Ok(_slot), Ok(_to_target)) =
                                (Arc::clone(&all).acquire_owned().await, dispatch.target(&ev.url).acquire_owned().await)
                                && deliver_and_record(&store, &config, &ev).await == Sent::Retrying
                            {
                                dispatch.hold_back(&call_id);
                            }
                            dispatch.recorded(ev.id);
                        }
                    });
                }
            }
            Err(e) => warn!(error = %e, "webhook outbox unavailable"),
        }
        tokio::select! {
            _ = tokio::time::sleep(config.poll) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// What became of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// Delivered, or given up on (refused, or out of attempts): the call's next event may go.
    Settled,
    /// To be tried again: the call's later events wait for it.
    Retrying,
}

async fn deliver_and_record(store: &Store, config: &DelivererConfig, ev: &PendingEvent) -> Sent {
    let outcome = deliver(store, config, ev).await;
    let result = match &outcome {
        Ok(()) => "delivered",
        Err(Failure::Refused(_)) => "refused",
        Err(Failure::Failed(_)) => "failed",
    };
    metrics::counter!("voxbridge_webhook_deliveries_total", "result" => result).increment(1);
    let record = match &outcome {
        Ok(()) => Attempted::Delivered,
        Err(Failure::Refused(e)) => Attempted::Refused(e.as_str()),
        Err(Failure::Failed(e)) if ev.attempts + 1 >= config.max_attempts => Attempted::GaveUp(e.as_str()),
        Err(Failure::Failed(e)) => {
            let backoff = Duration::from_secs(2u64.pow(ev.attempts.clamp(0, 8) as u32)).min(Duration::from_secs(300));
            Attempted::Retry(e.as_str(), now_ms() + backoff.as_millis() as i64)
        }
    };
    if let Err(e) = &outcome {
        warn!(call_id = %ev.call_id, event = %ev.event, error = ?e, "webhook delivery failed");
    }
    let sent = if matches!(record, Attempted::Retry(..)) { Sent::Retrying } else { Sent::Settled };
    if let Err(e) = store.event_attempted(ev.id, record, now_ms()).await {
        warn!(error = %e, "cannot record a webhook delivery");
    }
    sent
}

async fn deliver(store: &Store, config: &DelivererConfig, ev: &PendingEvent) -> Result<(), Failure> {
    let body = body(store, ev, &config.prices).await.to_string();
    let guard = Guard { secret: config.secret.clone(), allow_private: config.allow_private, timeout: config.timeout };
    post_json(&ev.url, body, &guard).await.map(drop)
}

/// `{"id","type","created_at","data":{"call":{…the call resource…},"transcript":[…]}}`: the call
/// as `GET /v1/calls/{id}` shows it, with `status` as of this event; the transcript (with what
/// the caller heard of each interrupted answer) comes with `call.completed`.
async fn body(store: &Store, ev: &PendingEvent, prices: &crate::pricing::Prices) -> Value {
    let created = jiff::Timestamp::from_millisecond(ev.at).map(|t| t.to_string()).unwrap_or_default();
    let mut call = match store.call_view(&ev.call_id).await {
        Ok(Some(c)) => c.to_priced_resource(prices),
        _ => json!({"id": ev.call_id}),
    };
    // The call's status as of this event (an event about something else, such as
    // `call.analyzed`, leaves the current one).
    if crate::lifecycle::status::CallStatus::parse(&ev.status).is_some() {
        call["status"] = ev.status.clone().into();
    }
    let mut data = json!({"call": call});
    if ev.event == "call.completed" {
        let lines = store.transcript(&ev.call_id).await.unwrap_or_default();
        data["transcript"] = lines
            .iter()
            .map(|l| json!({"speaker": l.speaker, "text": l.text, "at_ms": l.at_ms, "heard_ms": l.heard_ms}))
            .collect();
    }
    json!({"id": ev.event_id, "type": ev.event, "created_at": created, "data": data})
}

#[cfg(test)]
mod dispatch_tests {
    use super::*;

    fn event(id: i64) -> PendingEvent {
        PendingEvent {
            id,
            event_id: format!("evt_{id}"),
            call_id: "call_1".into(),
            url: "http://127.0.0.1:9/hook".into(),
            event: "call.queued".into(),
            status: "queued".into(),
            at: 0,
            attempts: 0,
        }
    }

    #[test]
    fn an_event_recorded_while_a_poll_read_the_outbox_is_not_sent_again_by_that_poll() {
        let d = Dispatch::default();
        assert!(d.offer(event(1)), "a new event starts its call's task");
        assert!(!d.offer(event(1)), "under way: not offered twice");
        assert_eq!(d.next("call_1").map(|e| e.id), Some(1));
        // Delivered and recorded while the next poll's query was running: its stale answer
        // still lists the event.
        d.recorded(1);
        assert!(d.next("call_1").is_none(), "the call's task has nothing more and ends");
        assert!(!d.offer(event(1)), "the stale answer does not send it again");
        // The poll after sees the record: an event still due (a retry) is offered again.
        d.begin_poll();
        assert!(d.offer(event(1)));
    }
}
