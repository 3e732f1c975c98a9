//! [`Store`]: the backend the server runs on, chosen by the database URL's scheme. Every trait
//! method passes straight to the backend (the match below is the only place that names both).

use std::sync::Arc;

use tokio::sync::Notify;

use super::calls::{Applied, CallCounts, CallRecord, NewCallRecord, ProviderEvent, TranscriptLine};
use super::events::PendingEvent;
use super::outbound::{Attempt, CallView, Created, ListFilter, Orphan, OutboundCall, OutboundPatch};
use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use super::{
    AfterFailure, CallNotice, CallRecords, Cancel, Claimed, EventOutbox, JobStore, Millis, NewJob, OutboundCalls,
    StoreError,
};

/// The store: an embedded SQLite file or a shared PostgreSQL database.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// Runs `$e` with `$s` bound to whichever backend `$self` is.
macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Sqlite($s) => $e,
            Store::Postgres($s) => $e,
        }
    };
}

/// [`each!`] for a write: its result is noted in the store's [`WriteHealth`](super::health::WriteHealth)
/// (readiness, and `voxbridge_store_write_failures_total{what}` for every refused write).
/// `grows`: a write that adds rows, whose success shows the database takes writes again (one
/// that may change nothing, such as a claim on an empty queue, proves nothing: `keeps`).
macro_rules! written {
    ($self:ident, $what:literal, grows, $s:ident => $e:expr) => {{
        let result = each!($self, $s => $e);
        $self.health().note($what, &result, true);
        result
    }};
    ($self:ident, $what:literal, keeps, $s:ident => $e:expr) => {{
        let result = each!($self, $s => $e);
        $self.health().note($what, &result, false);
        result
    }};
}

impl Store {
    /// How the store's writes are going (readiness).
    pub fn health(&self) -> &super::health::WriteHealth {
        each!(self, s => s.health())
    }

    /// `sqlite://…` (created if missing) or `postgres://…` / `postgresql://…`; migrated.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Store::Postgres(PgStore::open(url).await?))
        } else if url.starts_with("sqlite:") {
            Ok(Store::Sqlite(SqliteStore::open(url).await?))
        } else {
            Err(StoreError::Url(url.to_string()))
        }
    }

    /// Several instances may share this store (PostgreSQL).
    pub fn shared(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// Answers a trivial query (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        each!(self, s => s.ping().await)
    }

    /// Writes one row (readiness): fails while the database refuses writes.
    pub async fn probe_write(&self, now: Millis) -> Result<(), StoreError> {
        each!(self, s => s.probe_write(now).await)
    }

    /// Closes every connection (shutdown); SQLite first folds its WAL into the file.
    pub async fn close(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.close().await,
            Store::Postgres(s) => {
                s.close().await;
                Ok(())
            }
        }
    }

    /// Leaves `command` (JSON) for live call `call_id` on whichever instance holds it and tells
    /// them all; its id, or `None` where no other instance can hold it (SQLite).
    pub async fn send_command(&self, call_id: &str, command: &str, now: Millis) -> Result<Option<i64>, StoreError> {
        match self {
            Store::Sqlite(_) => Ok(None),
            Store::Postgres(s) => s.send_command(call_id, command, now).await.map(Some),
        }
    }

    /// Tells every other instance that a session pre-warmed for `call_id` is not needed
    /// ([`CallNotice::PrewarmUnneeded`]); nothing where no other instance can hold one (SQLite).
    pub async fn prewarm_unneeded(&self, call_id: &str) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(_) => Ok(()),
            Store::Postgres(s) => s.prewarm_unneeded(call_id).await,
        }
    }

    /// Takes the commands other instances left for `call_id`, oldest first.
    pub async fn take_commands(&self, call_id: &str) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Sqlite(_) => Ok(Vec::new()),
            Store::Postgres(s) => s.take_commands(call_id).await,
        }
    }

    /// Whether command `id` still waits to be taken.
    pub async fn command_waiting(&self, id: i64) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(_) => Ok(false),
            Store::Postgres(s) => s.command_waiting(id).await,
        }
    }

    /// Withdraws command `id` if nobody took it: `true` when it was still waiting.
    pub async fn withdraw_command(&self, id: i64) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(_) => Ok(false),
            Store::Postgres(s) => s.withdraw_command(id).await,
        }
    }

    /// A 32-byte secret named `name`, made at random by the first instance that asks and the
    /// same for every instance on this database afterwards.
    pub async fn shared_key(&self, name: &str) -> Result<[u8; 32], StoreError> {
        let candidate: [u8; 32] = rand::random();
        let hex: String = candidate.iter().map(|b| format!("{b:02x}")).collect();
        let stored = each!(self, s => s.shared_setting(name, &hex).await)?;
        let bytes: Vec<u8> =
            (0..stored.len() / 2).filter_map(|i| u8::from_str_radix(stored.get(2 * i..2 * i + 2)?, 16).ok()).collect();
        bytes.try_into().map_err(|_| StoreError::Commit(format!("setting {name} is not 32 hex bytes")))
    }

    /// For the life of the process: wakes `jobs` whenever any instance queues a job, and passes
    /// `calls` what another instance announced about a call (PostgreSQL `LISTEN`). SQLite has
    /// one process: its jobs are queued (or moved) through this store, which wakes `jobs` itself,
    /// and what concerns a call stays in-process.
    pub fn listen(&self, jobs: Arc<Notify>, calls: impl Fn(CallNotice) + Send + 'static) {
        match self {
            Store::Postgres(s) => {
                let s = s.clone();
                tokio::spawn(async move {
                    if let Err(e) = s.listen(|| jobs.notify_one(), calls).await {
                        tracing::warn!(error = %e, "announcements unavailable; the dialler polls");
                    }
                });
            }
            Store::Sqlite(s) => s.wake_on_jobs(jobs),
        }
    }

    /// A job was queued or may have moved (created, resumed, rescheduled): an SQLite store wakes
    /// its dialler (PostgreSQL's `NOTIFY` does the same for new jobs on every instance; the
    /// dialler sleeps no longer than until the earliest job falls due either way).
    fn jobs_changed<T>(&self, result: &Result<T, StoreError>) {
        if let (Store::Sqlite(s), Ok(_)) = (self, result) {
            s.jobs_changed();
        }
    }
}

impl JobStore for Store {
    async fn enqueue(&self, job: NewJob, now: Millis) -> Result<i64, StoreError> {
        let queued = written!(self, "enqueue", grows, s => s.enqueue(job, now).await);
        self.jobs_changed(&queued);
        queued
    }
    async fn claim(
        &self,
        owner: &str,
        now: Millis,
        lease_ms: i64,
        max_running: i64,
    ) -> Result<Option<Claimed>, StoreError> {
        written!(self, "claim", keeps, s => s.claim(owner, now, lease_ms, max_running).await)
    }
    async fn heartbeat(&self, id: i64, owner: &str, until: Millis) -> Result<bool, StoreError> {
        written!(self, "heartbeat", keeps, s => s.heartbeat(id, owner, until).await)
    }
    async fn complete(&self, id: i64, owner: &str, now: Millis) -> Result<bool, StoreError> {
        written!(self, "complete", keeps, s => s.complete(id, owner, now).await)
    }
    async fn fail(
        &self,
        id: i64,
        owner: &str,
        now: Millis,
        error: &str,
        retryable: bool,
        retry_at: Millis,
    ) -> Result<AfterFailure, StoreError> {
        written!(self, "fail", keeps, s => s.fail(id, owner, now, error, retryable, retry_at).await)
    }
    async fn cancel(&self, id: i64, now: Millis) -> Result<Cancel, StoreError> {
        written!(self, "cancel", keeps, s => s.cancel(id, now).await)
    }
    async fn expire_leases(&self, now: Millis) -> Result<Vec<i64>, StoreError> {
        written!(self, "expire_leases", keeps, s => s.expire_leases(now).await)
    }
    async fn requeue_orphan(&self, id: i64, run_at: Millis) -> Result<bool, StoreError> {
        written!(self, "requeue_orphan", keeps, s => s.requeue_orphan(id, run_at).await)
    }
    async fn queue_position(&self, id: i64) -> Result<Option<i64>, StoreError> {
        each!(self, s => s.queue_position(id).await)
    }
    async fn take_dial(
        &self,
        carrier: &str,
        pace: crate::lifecycle::pace::Pace,
        now: Millis,
    ) -> Result<Result<(), Millis>, StoreError> {
        written!(self, "take_dial", keeps, s => s.take_dial(carrier, pace, now).await)
    }
    async fn next_run_at(&self, now: Millis) -> Result<Option<Millis>, StoreError> {
        each!(self, s => s.next_run_at(now).await)
    }
    async fn prune(&self, now: Millis, done_age_ms: i64, failed_age_ms: i64) -> Result<u64, StoreError> {
        written!(self, "prune", keeps, s => s.prune(now, done_age_ms, failed_age_ms).await)
    }
}

impl CallRecords for Store {
    async fn add_usage(&self, call_id: &str, model: &str, usage: &crate::model::Usage) -> Result<(), StoreError> {
        written!(self, "add_usage", keeps, s => s.add_usage(call_id, model, usage).await)
    }
    async fn save_transferred_to(&self, call_id: &str, to: &str) -> Result<(), StoreError> {
        written!(self, "save_transferred_to", keeps, s => s.save_transferred_to(call_id, to).await)
    }
    async fn save_outcome(&self, call_id: &str, outcome: &str) -> Result<(), StoreError> {
        written!(self, "save_outcome", grows, s => s.save_outcome(call_id, outcome).await)
    }
    async fn note_history(&self, call_id: &str, detail: &str, now: Millis) -> Result<(), StoreError> {
        written!(self, "note_history", grows, s => s.note_history(call_id, detail, now).await)
    }
    async fn note_stream_end(&self, call_id: &str, reason: &str, now: Millis) -> Result<(), StoreError> {
        written!(self, "note_stream_end", grows, s => s.note_stream_end(call_id, reason, now).await)
    }
    async fn prune_bookkeeping(
        &self,
        before_keys: Millis,
        before_sightings: Millis,
        before_deliveries: Millis,
    ) -> Result<u64, StoreError> {
        written!(self, "prune_bookkeeping", keeps, s => s.prune_bookkeeping(before_keys, before_sightings, before_deliveries).await)
    }
    async fn fail_unstarted_inbound(&self, before: Millis, now: Millis) -> Result<Vec<String>, StoreError> {
        written!(self, "fail_unstarted_inbound", keeps, s => s.fail_unstarted_inbound(before, now).await)
    }
    async fn insert_call(&self, call: &NewCallRecord, now: Millis) -> Result<(), StoreError> {
        written!(self, "insert_call", grows, s => s.insert_call(call, now).await)
    }
    async fn get_call(&self, id: &str) -> Result<Option<CallRecord>, StoreError> {
        each!(self, s => s.get_call(id).await)
    }
    async fn first_sighting(&self, provider: &str, event_id: &str, now: Millis) -> Result<bool, StoreError> {
        written!(self, "first_sighting", grows, s => s.first_sighting(provider, event_id, now).await)
    }
    async fn forget_sighting(&self, provider: &str, event_id: &str) -> Result<(), StoreError> {
        written!(self, "forget_sighting", keeps, s => s.forget_sighting(provider, event_id).await)
    }
    async fn sighted(&self, provider: &str, event_id: &str) -> Result<bool, StoreError> {
        each!(self, s => s.sighted(provider, event_id).await)
    }
    async fn apply_provider_event(
        &self,
        ev: &ProviderEvent<'_>,
        retry_at: Millis,
        now: Millis,
    ) -> Result<Applied, StoreError> {
        written!(self, "apply_provider_event", keeps, s => s.apply_provider_event(ev, retry_at, now).await)
    }
    async fn call_counts(&self) -> Result<CallCounts, StoreError> {
        each!(self, s => s.call_counts().await)
    }
    async fn save_transcript(&self, call_id: &str, lines: &[TranscriptLine]) -> Result<(), StoreError> {
        written!(self, "save_transcript", grows, s => s.save_transcript(call_id, lines).await)
    }
    async fn transcript(&self, call_id: &str) -> Result<Vec<TranscriptLine>, StoreError> {
        each!(self, s => s.transcript(call_id).await)
    }
}

impl OutboundCalls for Store {
    async fn create_outbound(
        &self,
        call: &OutboundCall,
        key: Option<&str>,
        now: Millis,
    ) -> Result<Created, StoreError> {
        let created = written!(self, "create_outbound", grows, s => s.create_outbound(call, key, now).await);
        self.jobs_changed(&created);
        created
    }
    async fn call_view(&self, id: &str) -> Result<Option<CallView>, StoreError> {
        each!(self, s => s.call_view(id).await)
    }
    async fn list_calls(
        &self,
        filter: &ListFilter,
        before: Option<(Millis, String)>,
        limit: i64,
    ) -> Result<Vec<CallView>, StoreError> {
        each!(self, s => s.list_calls(filter, before, limit).await)
    }
    async fn cancel_outbound(&self, call_id: &str, now: Millis) -> Result<Cancel, StoreError> {
        written!(self, "cancel_outbound", keeps, s => s.cancel_outbound(call_id, now).await)
    }
    async fn record_answered_by(
        &self,
        call_id: &str,
        provider_call_id: &str,
        answered_by: &str,
    ) -> Result<bool, StoreError> {
        written!(self, "record_answered_by", keeps, s => s.record_answered_by(call_id, provider_call_id, answered_by).await)
    }
    async fn defer_claimed(
        &self,
        job_id: i64,
        owner: &str,
        run_at: Millis,
        why: Option<&str>,
        now: Millis,
    ) -> Result<bool, StoreError> {
        written!(self, "defer_claimed", keeps, s => s.defer_claimed(job_id, owner, run_at, why, now).await)
    }
    async fn set_campaign_paused(&self, name: &str, paused: bool, now: Millis) -> Result<i64, StoreError> {
        let waiting = written!(self, "set_campaign_paused", keeps, s => s.set_campaign_paused(name, paused, now).await);
        self.jobs_changed(&waiting);
        waiting
    }
    async fn cancel_campaign(&self, name: &str, now: Millis) -> Result<Vec<String>, StoreError> {
        written!(self, "cancel_campaign", keeps, s => s.cancel_campaign(name, now).await)
    }
    async fn expire_overdue(&self, now: Millis) -> Result<Vec<String>, StoreError> {
        written!(self, "expire_overdue", keeps, s => s.expire_overdue(now).await)
    }
    async fn note_waiting(&self, call_id: &str, why: &str) -> Result<(), StoreError> {
        written!(self, "note_waiting", keeps, s => s.note_waiting(call_id, why).await)
    }
    async fn start_attempt(&self, call_id: &str, attempt: i64, now: Millis) -> Result<(), StoreError> {
        written!(self, "start_attempt", keeps, s => s.start_attempt(call_id, attempt, now).await)
    }
    async fn attempt_dialed(&self, call_id: &str, attempt: i64, provider_call_id: &str) -> Result<(), StoreError> {
        written!(self, "attempt_dialed", keeps, s => s.attempt_dialed(call_id, attempt, provider_call_id).await)
    }
    async fn attempt_failed(
        &self,
        job_id: i64,
        owner: &str,
        call_id: &str,
        error: &str,
        retryable: bool,
        retry_at: Millis,
        now: Millis,
    ) -> Result<AfterFailure, StoreError> {
        written!(self, "attempt_failed", keeps, s => s.attempt_failed(job_id, owner, call_id, error, retryable, retry_at, now).await)
    }
    async fn orphans(&self) -> Result<Vec<Orphan>, StoreError> {
        each!(self, s => s.orphans().await)
    }
    async fn open_attempts(&self) -> Result<Vec<Attempt>, StoreError> {
        each!(self, s => s.open_attempts().await)
    }
    async fn release_orphan(&self, job_id: i64, call_id: &str, detail: &str, now: Millis) -> Result<bool, StoreError> {
        written!(self, "release_orphan", keeps, s => s.release_orphan(job_id, call_id, detail, now).await)
    }
    async fn close_orphan(&self, job_id: i64, now: Millis) -> Result<(), StoreError> {
        written!(self, "close_orphan", keeps, s => s.close_orphan(job_id, now).await)
    }
    async fn patch_outbound(&self, call_id: &str, patch: &OutboundPatch, now: Millis) -> Result<bool, StoreError> {
        let patched = written!(self, "patch_outbound", keeps, s => s.patch_outbound(call_id, patch, now).await);
        self.jobs_changed(&patched);
        patched
    }
    async fn prune_calls(&self, before: Millis) -> Result<u64, StoreError> {
        written!(self, "prune_calls", keeps, s => s.prune_calls(before).await)
    }
    async fn adopt_orphan(&self, job_id: i64, owner: &str, lease_until: Millis) -> Result<bool, StoreError> {
        written!(self, "adopt_orphan", keeps, s => s.adopt_orphan(job_id, owner, lease_until).await)
    }
}

impl EventOutbox for Store {
    async fn due_events(&self, now: Millis, limit: i64) -> Result<Vec<PendingEvent>, StoreError> {
        each!(self, s => s.due_events(now, limit).await)
    }
    async fn event_attempted(
        &self,
        id: i64,
        outcome: super::events::Attempted<'_>,
        now: Millis,
    ) -> Result<(), StoreError> {
        written!(self, "event_attempted", grows, s => s.event_attempted(id, outcome, now).await)
    }
    async fn event_log(&self, call_id: &str) -> Result<Vec<super::events::EventRecord>, StoreError> {
        each!(self, s => s.event_log(call_id).await)
    }
    async fn redeliver(&self, event_id: &str, now: Millis) -> Result<Option<String>, StoreError> {
        written!(self, "redeliver", keeps, s => s.redeliver(event_id, now).await)
    }
    async fn call_events(&self, call_id: &str) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
        each!(self, s => s.call_events(call_id).await)
    }
}
