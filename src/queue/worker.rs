//! The dialling worker: claims due calls under the global and per-number caps, places them
//! through the call's carrier, keeps its leases alive while they run, and reconciles calls whose worker died
//! with the provider before anyone is dialled again. The status webhook ends each attempt.

use crate::store::{CallRecords, Millis, OutboundCalls, now_ms};
use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::lifecycle::retry::RetryPolicy;
use crate::lifecycle::status::CallStatus;
use crate::lifecycle::sweep;
use crate::providers::carrier::{CallState, CarrierError, Carriers, DialRequest, Provider};
use crate::store::JobStore;
use crate::store::Store;
use crate::store::calls::{Applied, ProviderEvent};
use crate::store::outbound::{Attempt, Orphan};
use crate::telemetry;

/// What the worker needs to know.
#[derive(Debug, Clone)]
pub struct DialerConfig {
    pub poll: Duration,
    pub lease: Duration,
    pub max_running: i64,
    pub ring_timeout_s: u32,
    pub retry: RetryPolicy,
    /// How long finished jobs (completed; failed or canceled) and finished calls are kept.
    pub retain_done: Duration,
    pub retain_failed: Duration,
    pub retain_calls: Duration,
    /// `VOXBRIDGE_MAX_DIALS_PER_SECOND`: dials per second per carrier account (carriers refuse
    /// bursts above their CPS); `None`: unpaced.
    pub max_dials_per_second: Option<std::num::NonZeroU32>,
    /// `VOXBRIDGE_MAX_CALL_DURATION_S`, for the carrier's backstop time limit.
    pub max_call_duration_s: u32,
    /// `VOXBRIDGE_STATUS_GRACE_MS`: how long past a deadline a carrier may be silent before the
    /// sweeper asks it.
    pub status_grace: Duration,
}

/// How long after its stream token expired an inbound call still `ringing` is given up on.
const UNSTARTED_GRACE: Duration = Duration::from_secs(30);

/// An `Idempotency-Key` answers with its call for this long (as payment APIs keep theirs).
const IDEMPOTENCY_KEY_TTL_MS: i64 = 24 * 3_600_000;

/// What became of a claimed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialled {
    /// Dialled, deferred or failed: the worker may claim the next.
    Done,
    /// Its carrier's dial pace is used up: back in the queue, no more claims this round.
    Paced,
}

/// Retention runs at most this often.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

pub struct Dialer {
    store: Store,
    carriers: Carriers,
    config: DialerConfig,
    owner: String,
    /// Jobs this worker holds: id → call id.
    held: HashMap<i64, String>,
    last_prune: Option<std::time::Instant>,
    /// The dial pace per carrier account (`VOXBRIDGE_MAX_DIALS_PER_SECOND`), kept in the store
    /// so it holds for every instance together.
    pace: Option<crate::lifecycle::pace::Pace>,
    /// When the sweeper last asked the carrier about a call (asked again a grace later).
    swept: HashMap<String, std::time::Instant>,
    /// Orphaned jobs whose carrier could not answer: failed asks in a row, and when to ask again.
    unanswered: HashMap<i64, (u32, std::time::Instant)>,
    /// Shutting down: no new claims; the calls held keep their leases until they end.
    draining: bool,
    /// Woken when a job is queued anywhere (PostgreSQL `NOTIFY`): claim without waiting for the poll.
    wake: std::sync::Arc<tokio::sync::Notify>,
    /// How many calls this worker holds (read by the drain, which waits for them).
    holding: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Told of each dial the carrier accepted (the bridge pre-warms the call's model session).
    on_dialled: Option<OnDialled>,
    /// While this says so, nothing is dialled (the model's circuit breaker is open).
    hold: Option<Hold>,
}

/// A hook that holds dials back while it answers `true`.
pub type Hold = std::sync::Arc<dyn Fn() -> bool + Send + Sync>;

/// A hook for a dial the carrier accepted: the call id and its carrier.
pub type OnDialled = std::sync::Arc<dyn Fn(&str, Provider) + Send + Sync>;

/// What the carrier says about an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Ended {
        sid: String,
        status: CallStatus,
    },
    Live {
        sid: String,
    },
    /// The carrier has no call for it: the dial never reached it.
    NotFound,
}

impl Dialer {
    pub fn new(store: Store, carriers: Carriers, config: DialerConfig) -> Dialer {
        let owner = format!("worker-{}-{:08x}", std::process::id(), rand::random::<u32>());
        let pace = config.max_dials_per_second.map(crate::lifecycle::pace::Pace::per_second);
        Dialer {
            store,
            carriers,
            config,
            owner,
            held: HashMap::new(),
            last_prune: None,
            pace,
            swept: HashMap::new(),
            unanswered: HashMap::new(),
            draining: false,
            wake: Default::default(),
            holding: Default::default(),
            on_dialled: None,
            hold: None,
        }
    }

    /// Dials nothing while `hold` says so (calls wait in the queue, their attempts unspent).
    pub fn hold_while(mut self, hold: Hold) -> Dialer {
        self.hold = Some(hold);
        self
    }

    /// Calls `hook` for each dial the carrier accepts (while the phone rings).
    pub fn on_dialled(mut self, hook: OnDialled) -> Dialer {
        self.on_dialled = Some(hook);
        self
    }

    /// Names the leases after this instance (`VOXBRIDGE_INSTANCE_ID`), so a lease says which
    /// instance holds a call.
    pub fn named(mut self, instance: &str) -> Dialer {
        self.owner = format!("{instance}/{}", self.owner);
        self
    }

    /// How many calls this worker holds a lease on, kept current after every round.
    pub fn holding(&self) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
        std::sync::Arc::clone(&self.holding)
    }

    /// Notifying this claims at once instead of at the next poll.
    pub fn waker(&self) -> std::sync::Arc<tokio::sync::Notify> {
        std::sync::Arc::clone(&self.wake)
    }

    /// Runs for the life of the process. Once `shutdown` turns true it claims no more calls (the
    /// other instances take them) but keeps the leases of the calls it holds until they end.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        info!(owner = %self.owner, "dialling worker started");
        if !self.any_carrier() {
            warn!("no carrier credentials (Twilio or Telnyx): outbound calls stay queued until they are set");
        }
        loop {
            // Checked before every round: a wake-up may win the race with the shutdown signal.
            if !self.draining && *shutdown.borrow() {
                info!(owner = %self.owner, held = self.held.len(), "draining: no new claims");
                self.draining = true;
            }
            if let Err(e) = self.tick().await {
                warn!(error = %e, "dialling worker: store error; retrying");
            }
            self.holding.store(self.held.len(), std::sync::atomic::Ordering::Relaxed);
            // A call scheduled (or retried, or deferred to its window) wakes the dialler when it
            // falls due, not at the next poll.
            let next_due = if self.draining {
                None
            } else {
                self.store.next_run_at(now_ms()).await.unwrap_or_else(|e| {
                    warn!(error = %e, "dialling worker: cannot read the next due call; waiting for the poll");
                    None
                })
            };
            let sleep = next_wake(now_ms(), self.config.poll, next_due, !self.held.is_empty(), self.config.lease);
            let wake = std::sync::Arc::clone(&self.wake);
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = wake.notified(), if !self.draining => {}
                changed = shutdown.changed(), if !self.draining => {
                    // A closed channel (the server is gone) drains too.
                    if changed.is_err() {
                        self.draining = true;
                    }
                }
            }
        }
    }

    /// One round: renew leases, reconcile orphans, dial what is due.
    ///
    /// (The round's successor is due after [`next_wake`].)
    pub async fn tick(&mut self) -> Result<(), crate::store::StoreError> {
        let lease_ms = self.config.lease.as_millis() as i64;
        let mut done = Vec::new();
        for &id in self.held.keys() {
            if !self.store.heartbeat(id, &self.owner, now_ms() + lease_ms).await? {
                done.push(id);
            }
        }
        for id in done {
            self.held.remove(&id);
        }
        let expired = self.store.expire_leases(now_ms()).await?;
        telemetry::queue_leases_expired(expired.len());
        self.reconcile().await?;
        self.sweep().await?;
        for call_id in self.store.expire_overdue(now_ms()).await? {
            info!(call_id, "expired: expires_at passed before a dial started");
            telemetry::call_transition(CallStatus::Expired.as_str());
        }
        // Without provider credentials calls wait in the queue (nothing is lost) until configured;
        // so they do while the model cannot be reached (its breaker is open).
        let held = self.hold.as_ref().is_some_and(|h| h());
        if held {
            telemetry::dials_held();
        }
        while self.any_carrier()
            && !self.draining
            && !held
            && let Some(job) = self.store.claim(&self.owner, now_ms(), lease_ms, self.config.max_running).await?
        {
            telemetry::queue_claimed();
            if self.dial(job).await? == Dialled::Paced {
                break; // this carrier's pace is used up for now: the next tick goes on
            }
        }
        telemetry::queue_depth(self.store.call_counts().await?.queued_jobs);
        // An inbound call whose stream never came (its token expired unused) is not left ringing.
        let stale = now_ms() - (crate::providers::stream_token::TOKEN_TTL + UNSTARTED_GRACE).as_millis() as i64;
        for call_id in self.store.fail_unstarted_inbound(stale, now_ms()).await? {
            warn!(call_id, "inbound call failed: its media stream never started");
            telemetry::call_transition(CallStatus::Failed.as_str());
        }
        if self.last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            self.last_prune = Some(std::time::Instant::now());
            let now = now_ms();
            let ms = |d: Duration| d.as_millis() as i64;
            let jobs = self.store.prune(now, ms(self.config.retain_done), ms(self.config.retain_failed)).await?;
            let calls = self.store.prune_calls(now - ms(self.config.retain_calls)).await?;
            let day = 86_400_000;
            let bookkeeping = self
                .store
                .prune_bookkeeping(now - IDEMPOTENCY_KEY_TTL_MS, now - 7 * day, now - ms(self.config.retain_failed))
                .await?;
            if jobs + calls + bookkeeping > 0 {
                info!(jobs, calls, bookkeeping, "retention: deleted finished rows");
            }
        }
        Ok(())
    }

    fn any_carrier(&self) -> bool {
        self.carriers.is_configured(Provider::Twilio) || self.carriers.is_configured(Provider::Telnyx)
    }

    async fn dial(&mut self, job: crate::store::Claimed) -> Result<Dialled, crate::store::StoreError> {
        let Some(view) = self.store.call_view(&job.call_id).await? else { return Ok(Dialled::Done) };
        // The window is checked again now: a retry's backoff may have pushed it past closing.
        if let Some(window) = view.call_window.as_deref().and_then(super::policy::CallWindow::from_json) {
            let now = jiff::Timestamp::now();
            if !window.contains(now) {
                let opening = window.next_opening(now).as_millisecond();
                info!(call_id = %view.id, "outside the call window: deferred to its next opening");
                self.store
                    .defer_claimed(job.id, &self.owner, opening, Some("outside the call window"), now_ms())
                    .await?;
                return Ok(Dialled::Done);
            }
        }
        let backoff = self.config.retry.backoff(job.attempts as u32, rand::random::<f64>());
        let retry_at = now_ms() + backoff.as_millis() as i64;
        let provider = Provider::parse(&view.provider).unwrap_or(Provider::Twilio);
        if let Some(why) = self.carriers.not_dialled_because(provider) {
            warn!(call_id = %view.id, provider = provider.as_str(), "carrier not configured: call deferred a minute");
            // Not a reschedule (`last_error` says why it waits): no history row a minute.
            self.store.defer_claimed(job.id, &self.owner, now_ms() + 60_000, None, now_ms()).await?;
            self.store.note_waiting(&view.id, why).await?;
            return Ok(Dialled::Done);
        }
        if let Some(pace) = self.pace
            && let Err(next) = self.store.take_dial(&self.carriers.account_key(provider), pace, now_ms()).await?
        {
            // Back to the queue, the attempt not counted; not a reschedule either.
            self.store.defer_claimed(job.id, &self.owner, next, None, now_ms()).await?;
            telemetry::dial_paced(provider.as_str());
            return Ok(Dialled::Paced);
        }
        self.store.start_attempt(&job.call_id, job.attempts, now_ms()).await?;
        let request = DialRequest {
            call_id: &view.id,
            to: &view.to_number,
            from: view.from_number.as_deref().unwrap_or_default(),
            ring_timeout_s: self.config.ring_timeout_s,
            machine_detection: view.machine_detection,
            attempt: job.attempts,
            // The carrier's limit is a backstop a minute behind the AI's goodbye at the cap.
            time_limit_s: view.max_duration_s.map_or(self.config.max_call_duration_s, |s| s as u32) + 60,
        };
        match self.carriers.dial(provider, &request).await {
            Ok(sid) => {
                info!(call_id = %view.id, attempt = job.attempts, "dialled");
                self.store.attempt_dialed(&job.call_id, job.attempts, &sid).await?;
                if let Some(hook) = &self.on_dialled {
                    hook(&job.call_id, provider);
                }
                self.held.insert(job.id, job.call_id);
            }
            Err(e) => {
                warn!(call_id = %view.id, error = %e, retryable = e.is_retryable(), "dial failed");
                telemetry::queue_dial_failed(e.is_retryable());
                self.store
                    .attempt_failed(
                        job.id,
                        &self.owner,
                        &job.call_id,
                        &e.to_string(),
                        e.is_retryable(),
                        retry_at,
                        now_ms(),
                    )
                    .await?;
            }
        }
        Ok(Dialled::Done)
    }

    /// A job whose worker died may have a live call: ask the carrier about its attempt before
    /// anyone is dialled again, and apply what it says as its callback would have been.
    async fn reconcile(&mut self) -> Result<(), crate::store::StoreError> {
        let orphans = self.store.orphans().await?;
        self.unanswered.retain(|job, _| orphans.iter().any(|o| o.job_id == *job));
        for orphan in orphans {
            let orphan_counts = orphan.counts_when_not_found();
            let Orphan { job_id, attempt: a, .. } = orphan;
            if self.unanswered.get(&job_id).is_some_and(|(_, next)| std::time::Instant::now() < *next) {
                continue; // its carrier could not answer lately: asked again after a back-off
            }
            if a.status == CallStatus::Queued {
                // Claimed, never dialled.
                self.store
                    .release_orphan(job_id, &a.call_id, "re-queued: its worker stopped before dialling", now_ms())
                    .await?;
                continue;
            }
            if a.status.is_terminal() {
                self.store.close_orphan(job_id, now_ms()).await?;
                continue;
            }
            match self.ask_carrier(&a).await {
                Ok(Verdict::NotFound) if !orphan_counts => {
                    // Its worker may have died before the dial left: the callee heard nothing.
                    info!(call_id = %a.call_id, attempt = a.attempt, "reconciled: the carrier has no call for this attempt; re-queued");
                    let why = "re-queued: the carrier has no call for this attempt";
                    self.store.release_orphan(job_id, &a.call_id, why, now_ms()).await?;
                }
                Ok(Verdict::NotFound) => {
                    // Released uncounted often enough already: the create may have been sent and
                    // refused (a 5xx) each time, so now the attempt counts — a crash loop, or a
                    // carrier refusing creates while workers die, cannot dial a call for ever.
                    info!(call_id = %a.call_id, attempt = a.attempt, "reconciled: the carrier has no call for this attempt; counted");
                    let lease_until = now_ms() + self.config.lease.as_millis() as i64;
                    if self.store.adopt_orphan(job_id, &self.owner, lease_until).await? {
                        // Dialled again at once while attempts remain (the callee heard nothing).
                        let why = "the carrier has no call for this attempt (its dial failed or never went out)";
                        self.store
                            .attempt_failed(job_id, &self.owner, &a.call_id, why, true, now_ms(), now_ms())
                            .await?;
                    }
                }
                Ok(Verdict::Ended { sid, status }) => {
                    info!(call_id = %a.call_id, %status, "reconciled an orphaned call: it had ended");
                    self.apply_verdict(&a, &sid, status).await?;
                    self.store.close_orphan(job_id, now_ms()).await?;
                }
                Ok(Verdict::Live { sid }) => {
                    // Still up at the carrier: adopt it; its status callback ends it.
                    info!(call_id = %a.call_id, "reconciled an orphaned call: still live, adopting it");
                    self.store.attempt_dialed(&a.call_id, a.attempt, &sid).await?;
                    let lease_until = now_ms() + self.config.lease.as_millis() as i64;
                    if self.store.adopt_orphan(job_id, &self.owner, lease_until).await? {
                        self.held.insert(job_id, a.call_id);
                    }
                }
                Err(CarrierError::NotConfigured(_)) => {}
                Err(e) => self.unanswered_ask(job_id, &a, &e).await?,
            }
            if !matches!(self.unanswered.get(&job_id), Some((_, next)) if std::time::Instant::now() < *next) {
                self.unanswered.remove(&job_id);
            }
        }
        Ok(())
    }

    /// The carrier could not say what became of orphaned attempt `a`: asked again after a
    /// back-off ([`sweep::ask_again_after`]); once no call of it can be up any more
    /// ([`sweep::past_any_call`]), the attempt ends — failed, not dialled again (it may have been
    /// placed), with the reason on record — instead of holding its slot and number for ever.
    async fn unanswered_ask(
        &mut self,
        job_id: i64,
        a: &Attempt,
        e: &CarrierError,
    ) -> Result<(), crate::store::StoreError> {
        if sweep::past_any_call(a, &self.deadlines(), now_ms()) {
            warn!(call_id = %a.call_id, error = %e, "the carrier never said what became of an orphaned attempt: ended");
            let lease_until = now_ms() + self.config.lease.as_millis() as i64;
            if self.store.adopt_orphan(job_id, &self.owner, lease_until).await? {
                let why = format!(
                    "reconciliation: the carrier never said what became of attempt {} ({e}); its time limit has \
                     passed, so it is not live; not dialled again (it may have been placed)",
                    a.attempt
                );
                self.store.attempt_failed(job_id, &self.owner, &a.call_id, &why, false, now_ms(), now_ms()).await?;
            }
            self.unanswered.remove(&job_id);
            return Ok(());
        }
        let failures = self.unanswered.get(&job_id).map_or(0, |(n, _)| *n) + 1;
        let wait = sweep::ask_again_after(failures);
        warn!(call_id = %a.call_id, error = %e, failures, retry_in_s = wait.as_secs(), "cannot reconcile an orphaned call yet");
        self.unanswered.insert(job_id, (failures, std::time::Instant::now() + wait));
        Ok(())
    }

    fn deadlines(&self) -> sweep::Deadlines {
        sweep::Deadlines {
            ring_timeout: Duration::from_secs(self.config.ring_timeout_s.into()),
            grace: self.config.status_grace,
            max_call_duration: Duration::from_secs(self.config.max_call_duration_s.into()),
        }
    }

    /// Asks the carrier about every attempt overdue a callback ([`sweep::is_overdue`]) and
    /// applies what it says: a lost final callback frees the slot and the number.
    async fn sweep(&mut self) -> Result<(), crate::store::StoreError> {
        let deadlines = self.deadlines();
        let open = self.store.open_attempts().await?;
        let open_ids: std::collections::HashSet<&str> = open.iter().map(|a| a.call_id.as_str()).collect();
        self.swept.retain(|id, _| open_ids.contains(id.as_str()));
        let now = now_ms();
        for a in open.iter().filter(|a| sweep::is_overdue(a, &deadlines, now)) {
            // An attempt with no carrier id is being dialled (its worker holds it) or is an
            // orphan (reconciled above).
            if a.provider_call_id.is_none() || self.swept.get(&a.call_id).is_some_and(|t| t.elapsed() < deadlines.grace)
            {
                continue;
            }
            self.swept.insert(a.call_id.clone(), std::time::Instant::now());
            match self.ask_carrier(a).await {
                Ok(Verdict::Ended { sid, status }) => {
                    warn!(call_id = %a.call_id, %status, "the carrier's final status never came: swept");
                    telemetry::call_swept();
                    self.apply_verdict(a, &sid, status).await?;
                }
                Ok(_) => {}
                Err(CarrierError::NotConfigured(_)) => {}
                Err(e) => warn!(call_id = %a.call_id, error = %e, "cannot ask the carrier about an overdue call"),
            }
        }
        Ok(())
    }

    /// The carrier's word on an attempt, found by its id or, when that was never stored, by
    /// [`Carriers::find_attempt`].
    async fn ask_carrier(&self, a: &Attempt) -> Result<Verdict, CarrierError> {
        let sid = match &a.provider_call_id {
            Some(sid) => sid.clone(),
            None => match self.carriers.find_attempt(a).await? {
                Some(sid) => sid,
                None => return Ok(Verdict::NotFound),
            },
        };
        let provider = Provider::parse(&a.provider).unwrap_or(Provider::Twilio);
        Ok(match self.carriers.call_state(provider, &sid).await? {
            // Telnyx says only "not alive": an answered call completed; one that never was, failed.
            CallState::Ended(status) => Verdict::Ended {
                sid,
                status: status.unwrap_or(if a.status == CallStatus::InProgress {
                    CallStatus::Completed
                } else {
                    CallStatus::Failed
                }),
            },
            CallState::Live => Verdict::Live { sid },
        })
    }

    /// Applies a status found by asking the carrier as its callback would have been (one event
    /// per attempt and status: the same retry rules, no double application).
    async fn apply_verdict(&self, a: &Attempt, sid: &str, status: CallStatus) -> Result<(), crate::store::StoreError> {
        let event_id = format!("reconciled:{}:{}:{status}", a.call_id, a.attempt);
        let ev = ProviderEvent {
            provider: &a.provider,
            event_id: &event_id,
            call_id: &a.call_id,
            provider_call_id: sid,
            attempt: Some(a.attempt),
            status,
            detail: Some("reconciled with the carrier"),
            carrier_seconds: None,
        };
        let backoff = self.config.retry.backoff(a.attempt.max(1) as u32, rand::random::<f64>());
        let applied = self.store.apply_provider_event(&ev, now_ms() + backoff.as_millis() as i64, now_ms()).await?;
        count_applied(applied);
        Ok(())
    }
}

/// Counts what applying a carrier's status did (callbacks and reconciliation alike).
/// How long the dialler sleeps after a round at `now`: until the poll, the next queued job falls
/// due (`next_due`), or — while it holds leases — a third of a lease has passed (leases are
/// renewed each round), whichever comes first. Never less than a millisecond (no busy loop).
pub fn next_wake(now: Millis, poll: Duration, next_due: Option<Millis>, holding: bool, lease: Duration) -> Duration {
    let mut wait = poll;
    if let Some(due) = next_due {
        wait = wait.min(Duration::from_millis(due.saturating_sub(now).max(0) as u64));
    }
    if holding {
        wait = wait.min(lease / 3);
    }
    wait.max(Duration::from_millis(1))
}

pub fn count_applied(applied: Applied) {
    match applied {
        Applied::Advanced(s) => telemetry::call_transition(s.as_str()),
        Applied::Retrying { after, .. } => {
            telemetry::call_transition(after.as_str());
            telemetry::queue_retry(after.as_str());
        }
        Applied::Duplicate | Applied::Stale | Applied::UnknownCall => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dialler_wakes_for_the_next_due_call_and_its_leases_not_only_at_the_poll() {
        let (poll, lease) = (Duration::from_secs(30), Duration::from_secs(30));
        let now = 1_000_000;
        assert_eq!(next_wake(now, poll, None, false, lease), poll, "nothing scheduled: the poll");
        assert_eq!(next_wake(now, poll, Some(now + 5_000), false, lease), Duration::from_secs(5), "the due call");
        assert_eq!(next_wake(now, poll, Some(now + 60_000), false, lease), poll, "the poll first");
        assert_eq!(next_wake(now, poll, Some(now + 60_000), true, lease), Duration::from_secs(10), "a lease to renew");
        assert_eq!(next_wake(now, poll, Some(now - 5), false, lease), Duration::from_millis(1), "late: at once");
    }
}
