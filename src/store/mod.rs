//! All SQL lives here. The store's operations are traits ([`JobStore`], [`CallRecords`],
//! [`OutboundCalls`], [`EventOutbox`]) over neutral types; [`sqlite::SqliteStore`] is the embedded
//! default and [`postgres::PgStore`] serves several instances sharing one queue. [`Store`] is the
//! one the server holds, chosen by the URL's scheme.

pub mod agents;
pub mod analysis;
mod backend;
pub mod calls;
pub mod campaigns;
mod create;
pub mod events;
pub mod health;
pub mod outbound;
pub mod postgres;
pub mod recordings;
pub mod resource;
mod row;
mod run;
pub(crate) mod sql;
pub mod sqlite;

use std::future::Future;

use calls::{Applied, CallCounts, CallRecord, NewCallRecord, ProviderEvent, TranscriptLine};
use events::PendingEvent;
use outbound::{CallView, Created, ListFilter, OutboundCall, OutboundPatch};

/// Unix milliseconds (UTC): the only time unit persisted.
pub use crate::lifecycle::Millis;

/// A database URL without its password, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// The wall clock as [`Millis`].
pub fn now_ms() -> Millis {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("PRAGMA {pragma} is {actual:?}, expected {expected:?}; refusing to run")]
    Pragma { pragma: &'static str, expected: String, actual: String },
    #[error("bad database URL {0:?}")]
    Url(String),
    #[error("write not committed: {0}")]
    Commit(String),
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub call_id: String,
    pub to_number: String,
    pub priority: i64,
    pub run_at: Millis,
    pub max_attempts: i64,
}

/// A job a worker holds under a lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub id: i64,
    pub call_id: String,
    pub to_number: String,
    /// Including this one.
    pub attempts: i64,
    pub max_attempts: i64,
    pub lease_until: Millis,
}

/// What happened to a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    Requeued {
        run_at: Millis,
    },
    Final,
    /// The lease was no longer ours (expired and taken over): nothing changed.
    NotOwner,
}

/// What a failed attempt does to its job, decided once for every backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FailureRule {
    /// The job's next state (`queued` or `failed`).
    pub state: &'static str,
    /// Its new `run_at` (requeued) or unchanged (`None`).
    pub run_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    pub after: AfterFailure,
}

/// A failed attempt is retried at `retry_at` when it may be and attempts remain; else the job
/// fails for good.
pub(crate) fn failure_rule(
    attempts: i64,
    max_attempts: i64,
    retryable: bool,
    retry_at: Millis,
    now: Millis,
) -> FailureRule {
    if retryable && attempts < max_attempts {
        FailureRule {
            state: "queued",
            run_at: Some(retry_at),
            finished_at: None,
            after: AfterFailure::Requeued { run_at: retry_at },
        }
    } else {
        FailureRule { state: "failed", run_at: None, finished_at: Some(now), after: AfterFailure::Final }
    }
}

/// The `last_error` of a queued call that waits undialled because of `why`
/// ([`OutboundCalls::note_waiting`], [`sql::NOTE_WAITING`]).
pub(crate) fn waiting_note(why: &str) -> String {
    format!("not dialled: {why}")
}

/// What `cancel` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    /// It was waiting: now canceled.
    Canceled,
    /// It is being dialled or is live: the caller must hang up through the provider.
    Running,
    /// Already finished (or unknown).
    Finished,
}

/// The queue's persistent operations. Every method is one atomic transaction.
pub trait JobStore: Send + Sync {
    fn enqueue(&self, job: NewJob, now: Millis) -> impl Future<Output = Result<i64, StoreError>> + Send;
    /// Claims the most urgent due job — highest priority, then earliest `run_at` — unless
    /// `max_running` jobs are running or one is already running for the same number.
    fn claim(
        &self,
        owner: &str,
        now: Millis,
        lease_ms: i64,
        max_running: i64,
    ) -> impl Future<Output = Result<Option<Claimed>, StoreError>> + Send;
    /// Extends a lease; `false` when it is no longer ours.
    fn heartbeat(&self, id: i64, owner: &str, until: Millis) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn complete(&self, id: i64, owner: &str, now: Millis) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Records a failed attempt: requeued at `retry_at` when `retryable` and attempts remain,
    /// else final.
    fn fail(
        &self,
        id: i64,
        owner: &str,
        now: Millis,
        error: &str,
        retryable: bool,
        retry_at: Millis,
    ) -> impl Future<Output = Result<AfterFailure, StoreError>> + Send;
    fn cancel(&self, id: i64, now: Millis) -> impl Future<Output = Result<Cancel, StoreError>> + Send;
    /// Running jobs whose lease ran out become `orphaned` (a call may have been dialled: the
    /// reconciler asks the provider before any new attempt). Returns their ids.
    fn expire_leases(&self, now: Millis) -> impl Future<Output = Result<Vec<i64>, StoreError>> + Send;
    /// After reconciliation found no live call: back to the queue at `run_at`.
    fn requeue_orphan(&self, id: i64, run_at: Millis) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// 1-based position among due-or-not queued jobs in claim order; `None` if not queued.
    fn queue_position(&self, id: i64) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;
    /// Takes a dial on carrier account `carrier` at `now` under `pace`, for every dialler of
    /// this store: `Ok(())`, or `Err(ms)` when the next dial is allowed.
    fn take_dial(
        &self,
        carrier: &str,
        pace: crate::lifecycle::pace::Pace,
        now: Millis,
    ) -> impl Future<Output = Result<Result<(), Millis>, StoreError>> + Send;
    /// When the earliest queued job not due at `now` falls due (the dialler sleeps until then).
    fn next_run_at(&self, now: Millis) -> impl Future<Output = Result<Option<Millis>, StoreError>> + Send;
    /// Deletes finished job rows older than the given ages; returns how many.
    fn prune(
        &self,
        now: Millis,
        done_age_ms: i64,
        failed_age_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// Call records, status history, provider events, transcripts.
pub trait CallRecords: Send + Sync {
    /// Adds a stream's model usage to the call (summed over sessions and attempts).
    fn add_usage(
        &self,
        call_id: &str,
        model: &str,
        usage: &crate::model::Usage,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The AI handed the caller over to `to`.
    fn save_transferred_to(&self, call_id: &str, to: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The outcome the AI reported (JSON text, already valid against the call's schema).
    fn save_outcome(&self, call_id: &str, outcome: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A note in the call's history under its current status (a model failover, say).
    fn note_history(
        &self,
        call_id: &str,
        detail: &str,
        now: Millis,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The bridge's reason for ending the current attempt's stream (`EndReason::code`): judged,
    /// with the carrier's final status, by `queue::outcome` when the attempt ends.
    fn note_stream_end(
        &self,
        call_id: &str,
        reason: &str,
        now: Millis,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Retention for the bookkeeping tables, which otherwise grow with every call: idempotency
    /// keys and carrier-event sightings (and, shared, commands nobody took) older than
    /// `before_keys` / `before_sightings`, and event deliveries finished (delivered or given up)
    /// before `before_deliveries`. Returns rows deleted.
    fn prune_bookkeeping(
        &self,
        before_keys: Millis,
        before_sightings: Millis,
        before_deliveries: Millis,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Inbound calls still `ringing` that were created before `before`: their stream never
    /// started (its one-time token has expired), so they end `failed` ("stream never started").
    /// Returns their ids.
    fn fail_unstarted_inbound(
        &self,
        before: Millis,
        now: Millis,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    fn insert_call(&self, call: &NewCallRecord, now: Millis) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn get_call(&self, id: &str) -> impl Future<Output = Result<Option<CallRecord>, StoreError>> + Send;
    /// Notes a provider event id; `true` the first time it is seen (webhooks are redelivered).
    fn first_sighting(
        &self,
        provider: &str,
        event_id: &str,
        now: Millis,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Forgets a sighting whose handling failed, so that the provider's redelivery is acted on.
    fn forget_sighting(&self, provider: &str, event_id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Whether [`first_sighting`](Self::first_sighting) already saw it (a read; notes nothing).
    fn sighted(&self, provider: &str, event_id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Applies a provider status event once: dedupes by `(provider, event_id)` and moves the
    /// status only forward. For an outbound call the event must belong to the attempt in
    /// progress (its `CallSid`); a terminal status ends that attempt's job — a busy or unanswered
    /// attempt goes back to the queue at `retry_at` while attempts remain.
    fn apply_provider_event(
        &self,
        ev: &ProviderEvent<'_>,
        retry_at: Millis,
        now: Millis,
    ) -> impl Future<Output = Result<Applied, StoreError>> + Send;
    fn call_counts(&self) -> impl Future<Output = Result<CallCounts, StoreError>> + Send;
    /// Replaces the call's transcript.
    fn save_transcript(
        &self,
        call_id: &str,
        lines: &[TranscriptLine],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn transcript(&self, call_id: &str) -> impl Future<Output = Result<Vec<TranscriptLine>, StoreError>> + Send;
}

/// Outbound calls requested through the API, their attempts and retention.
pub trait OutboundCalls: Send + Sync {
    /// Creates the call, its history row, its dial job and the idempotency record atomically.
    fn create_outbound(
        &self,
        call: &OutboundCall,
        idempotency_key: Option<&str>,
        now: Millis,
    ) -> impl Future<Output = Result<Created, StoreError>> + Send;
    fn call_view(&self, id: &str) -> impl Future<Output = Result<Option<CallView>, StoreError>> + Send;
    /// Newest first; `before` is the `(created_at, id)` of the last call of the previous page.
    fn list_calls(
        &self,
        filter: &ListFilter,
        before: Option<(Millis, String)>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<CallView>, StoreError>> + Send;
    /// Cancels a call that has not been dialled; reports a live one (hang it up through the
    /// provider) or a finished one.
    fn cancel_outbound(&self, call_id: &str, now: Millis) -> impl Future<Output = Result<Cancel, StoreError>> + Send;
    /// Records an answering-machine verdict for the attempt with this provider call id: `true`
    /// for the attempt's first verdict, `false` for a redelivery or another attempt's.
    fn record_answered_by(
        &self,
        call_id: &str,
        provider_call_id: &str,
        answered_by: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The window closed between scheduling and claiming (or the carrier is missing): back to
    /// the queue at `run_at`, the attempt not counted. With `why` (a window or a pause moved it),
    /// the deferral is written to the call's history and counted in `reschedules`.
    fn defer_claimed(
        &self,
        job_id: i64,
        owner: &str,
        run_at: Millis,
        why: Option<&str>,
        now: Millis,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Pauses (or resumes) the campaign `name`, known or not; returns how many of its calls wait.
    fn set_campaign_paused(
        &self,
        name: &str,
        paused: bool,
        now: Millis,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;
    /// Cancels the campaign's queued calls (live ones are left alone); returns their ids.
    fn cancel_campaign(&self, name: &str, now: Millis) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    /// Queued calls whose `expires_at` has passed end `expired` (their job canceled, an event
    /// sent); returns their ids. A call being dialled is left alone.
    fn expire_overdue(&self, now: Millis) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    /// Why a queued call is not being dialled (shown as its `last_error`, "not dialled: {why}");
    /// cleared when the next attempt starts.
    fn note_waiting(&self, call_id: &str, why: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A worker claimed the call's job: attempt `attempt` of the call is being dialled.
    fn start_attempt(
        &self,
        call_id: &str,
        attempt: i64,
        now: Millis,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The provider accepted attempt `attempt`: its events carry `provider_call_id`.
    fn attempt_dialed(
        &self,
        call_id: &str,
        attempt: i64,
        provider_call_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The provider refused or could not take the call: retry at `retry_at` when retryable and
    /// attempts remain, else the call fails with the provider's message.
    #[allow(clippy::too_many_arguments)]
    fn attempt_failed(
        &self,
        job_id: i64,
        owner: &str,
        call_id: &str,
        error: &str,
        retryable: bool,
        retry_at: Millis,
        now: Millis,
    ) -> impl Future<Output = Result<AfterFailure, StoreError>> + Send;
    /// Orphaned jobs (their worker died) with the attempt reconciliation asks the carrier about.
    fn orphans(&self) -> impl Future<Output = Result<Vec<outbound::Orphan>, StoreError>> + Send;
    /// Outbound attempts not finished yet (dialling, ringing, live), for the sweeper.
    fn open_attempts(&self) -> impl Future<Output = Result<Vec<outbound::Attempt>, StoreError>> + Send;
    /// An orphaned job whose attempt never reached the carrier: queued again now, the attempt
    /// not counted, its call `queued` with `detail` in the history; `false` if no longer orphaned.
    fn release_orphan(
        &self,
        job_id: i64,
        call_id: &str,
        detail: &str,
        now: Millis,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Closes an orphaned job whose call has already ended.
    fn close_orphan(&self, job_id: i64, now: Millis) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Applies `patch` if the call is still waiting in the queue; `false` if it is not (being
    /// dialled, live or finished).
    fn patch_outbound(
        &self,
        call_id: &str,
        patch: &OutboundPatch,
        now: Millis,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Deletes call records (with history and transcripts) created before `before`, except
    /// calls still in progress.
    fn prune_calls(&self, before: Millis) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Takes over an orphaned job whose call is still live at the provider.
    fn adopt_orphan(
        &self,
        job_id: i64,
        owner: &str,
        lease_until: Millis,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// The outbox of events to the user's app.
pub trait EventOutbox: Send + Sync {
    /// Events due now, oldest first.
    fn due_events(&self, now: Millis, limit: i64)
    -> impl Future<Output = Result<Vec<PendingEvent>, StoreError>> + Send;
    /// Records a delivery attempt made at `now` (in the event's log too): delivered, to be
    /// retried, or given up on.
    fn event_attempted(
        &self,
        id: i64,
        outcome: events::Attempted<'_>,
        now: Millis,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Call `call_id`'s events, oldest first, each with its delivery attempts.
    fn event_log(&self, call_id: &str) -> impl Future<Output = Result<Vec<events::EventRecord>, StoreError>> + Send;
    /// Sends event `event_id` again from `now` (a fresh series of attempts); its call's id, or
    /// `None` for an unknown event.
    fn redeliver(&self, event_id: &str, now: Millis)
    -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// (state, last_error) of every event of a call, oldest first (tests, diagnostics).
    fn call_events(
        &self,
        call_id: &str,
    ) -> impl Future<Output = Result<Vec<(String, String, Option<String>)>, StoreError>> + Send;
}

pub use backend::Store;

/// What another instance announced about a call (PostgreSQL `NOTIFY`; [`Store::listen`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallNotice {
    /// A command waits for this call, for the instance where it is live.
    Command(String),
    /// The call's attempt ended, or its stream started elsewhere: a session pre-warmed for it is
    /// not needed.
    PrewarmUnneeded(String),
}
