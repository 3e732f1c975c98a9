//! Call records and their status history on PostgreSQL (the same rules as SQLite's; rows read
//! before a change are locked `FOR UPDATE`, as another instance may change them too). Provider events are applied idempotently
//! (each event id once) and monotonically (`CallStatus::advance`), in one transaction.

use sqlx::Row;

use super::PgStore;
use crate::lifecycle::outcome::{Outcome, attempt_outcome};
use crate::lifecycle::status::CallStatus;
use crate::store::calls::{Applied, CallCounts, CallRecord, NewCallRecord, ProviderEvent, TranscriptLine};
use crate::store::{CallRecords, Millis, StoreError, row, sql};

impl CallRecords for PgStore {
    async fn insert_call(&self, call: &NewCallRecord, now: Millis) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(sql::INSERT_CALL)
            .bind(&call.id)
            .bind(&call.provider)
            .bind(if call.inbound { "inbound" } else { "outbound" })
            .bind(&call.to_number)
            .bind(&call.from_number)
            .bind(call.status.as_str())
            .bind(&call.webhook_url)
            .bind(now)
            .bind(&call.provider_call_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO call_status_history (call_id, status, at) VALUES ($1, $2, $3)")
            .bind(&call.id)
            .bind(call.status.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if let Some(config) = &call.config {
            crate::store::agents::postgres::configure_call(&mut tx, &call.id, config).await?;
        }
        let extras = call.extras();
        crate::store::agents::postgres::set_extras(&mut tx, &call.id, &extras).await?;
        super::events::enqueue(&mut tx, &call.id, call.status.as_str(), now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_call(&self, id: &str) -> Result<Option<CallRecord>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT id, provider, status, provider_call_id, created_at, updated_at FROM calls WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        else {
            return Ok(None);
        };
        let history = sqlx::query("SELECT status, at, detail FROM call_status_history WHERE call_id = $1 ORDER BY seq")
            .bind(id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .filter_map(row::history)
            .collect();
        let status: String = row.try_get(2)?;
        Ok(Some(CallRecord {
            id: row.try_get(0)?,
            provider: row.try_get(1)?,
            status: CallStatus::parse(&status).unwrap_or(CallStatus::Failed),
            provider_call_id: row.try_get(3)?,
            created_at: row.try_get(4)?,
            updated_at: row.try_get(5)?,
            history,
        }))
    }

    /// Applies a provider status event once: dedupes by `(provider, event_id)` and moves the
    /// status only forward. For an outbound call the event must belong to the attempt in
    /// progress (its `CallSid`); a terminal status ends that attempt's job — a busy or unanswered
    /// attempt goes back to the queue at `retry_at` while attempts remain.
    async fn apply_provider_event(
        &self,
        ev: &ProviderEvent<'_>,
        retry_at: Millis,
        now: Millis,
    ) -> Result<Applied, StoreError> {
        let mut tx = self.pool().begin().await?;
        let applied = apply_event(&mut tx, ev, retry_at, now).await?;
        tx.commit().await?;
        Ok(applied)
    }

    async fn first_sighting(&self, provider: &str, event_id: &str, now: Millis) -> Result<bool, StoreError> {
        note_event(self.pool(), provider, event_id, now).await
    }

    async fn forget_sighting(&self, provider: &str, event_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM webhook_events WHERE provider = $1 AND event_id = $2")
            .bind(provider)
            .bind(event_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn sighted(&self, provider: &str, event_id: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(sql::SIGHTED).bind(provider).bind(event_id).fetch_one(self.pool()).await?)
    }

    async fn call_counts(&self) -> Result<CallCounts, StoreError> {
        let rows = sqlx::query("SELECT status, COUNT(*) FROM calls GROUP BY status ORDER BY status")
            .fetch_all(self.pool())
            .await?;
        let calls_by_status =
            rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<_, sqlx::Error>>()?;
        let queued_jobs =
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'queued'").fetch_one(self.pool()).await?;
        Ok(CallCounts { calls_by_status, queued_jobs })
    }

    async fn add_usage(&self, call_id: &str, model: &str, u: &crate::model::Usage) -> Result<(), StoreError> {
        sqlx::query(sql::ADD_USAGE)
            .bind(call_id)
            .bind(model)
            .bind(u.input_audio_tokens as i64)
            .bind(u.output_audio_tokens as i64)
            .bind(u.input_text_tokens as i64)
            .bind(u.output_text_tokens as i64)
            .bind(u.cached_input_tokens as i64)
            .bind(u.live_seconds)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn save_transferred_to(&self, call_id: &str, to: &str) -> Result<(), StoreError> {
        sqlx::query(sql::SAVE_TRANSFERRED_TO).bind(call_id).bind(to).execute(self.pool()).await?;
        Ok(())
    }

    async fn save_outcome(&self, call_id: &str, outcome: &str) -> Result<(), StoreError> {
        sqlx::query(sql::SAVE_OUTCOME).bind(call_id).bind(outcome).execute(self.pool()).await?;
        Ok(())
    }

    async fn note_history(&self, call_id: &str, detail: &str, now: Millis) -> Result<(), StoreError> {
        sqlx::query(sql::NOTE_HISTORY).bind(call_id).bind(now).bind(detail).execute(self.pool()).await?;
        Ok(())
    }

    async fn note_stream_end(&self, call_id: &str, reason: &str, now: Millis) -> Result<(), StoreError> {
        sqlx::query("UPDATE calls SET stream_end = $2, updated_at = $3 WHERE id = $1")
            .bind(call_id)
            .bind(reason)
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn prune_bookkeeping(
        &self,
        before_keys: Millis,
        before_sightings: Millis,
        before_deliveries: Millis,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let mut n = 0;
        for (sql, before) in [
            ("DELETE FROM idempotency_keys WHERE created_at < $1", before_keys),
            ("DELETE FROM webhook_events WHERE seen_at < $1", before_sightings),
            ("DELETE FROM event_deliveries WHERE at < $1 AND state IN ('delivered', 'failed')", before_deliveries),
            // A command whose sender died while waiting for it to be taken (else it withdraws it).
            ("DELETE FROM call_commands WHERE created_at < $1", before_sightings),
        ] {
            n += sqlx::query(sql).bind(before).execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn fail_unstarted_inbound(&self, before: Millis, now: Millis) -> Result<Vec<String>, StoreError> {
        const STALE: &str = "SELECT id FROM calls WHERE direction = 'inbound' AND status = 'ringing' AND created_at < $1 FOR UPDATE SKIP LOCKED";
        // Read first (every dialler tick asks): a write transaction only when there is work.
        let any: Option<String> = sqlx::query_scalar(STALE).bind(before).fetch_optional(self.pool()).await?;
        if any.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool().begin().await?;
        let ids: Vec<String> = sqlx::query_scalar(STALE).bind(before).fetch_all(&mut *tx).await?;
        for id in &ids {
            set_status(&mut tx, id, CallStatus::Failed, Some("stream never started"), now).await?;
            finish(&mut tx, id, "stream_never_started", now).await?;
            sqlx::query(sql::NEVER_STARTED).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// Replaces the call's transcript (a `call.completed` waiting for it becomes due).
    async fn save_transcript(&self, call_id: &str, lines: &[TranscriptLine]) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM transcripts WHERE call_id = $1").bind(call_id).execute(&mut *tx).await?;
        for (seq, l) in lines.iter().enumerate() {
            sqlx::query(sql::INSERT_TRANSCRIPT_LINE)
                .bind(call_id)
                .bind(seq as i64)
                .bind(&l.speaker)
                .bind(&l.text)
                .bind(l.at_ms)
                .bind(l.heard_ms)
                .execute(&mut *tx)
                .await?;
        }
        super::events::transcript_saved(&mut tx, call_id).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn transcript(&self, call_id: &str) -> Result<Vec<TranscriptLine>, StoreError> {
        let rows =
            sqlx::query("SELECT speaker, text, at_ms, heard_ms FROM transcripts WHERE call_id = $1 ORDER BY seq")
                .bind(call_id)
                .fetch_all(self.pool())
                .await?;
        row::all(&rows, row::transcript_line)
    }
}

/// A connection inside a write transaction (or a savepoint of one).
type Tx = sqlx::PgConnection;

/// Applies one provider event inside a write transaction (see `apply_provider_event`).
async fn apply_event(
    tx: &mut Tx,
    ev: &ProviderEvent<'_>,
    retry_at: Millis,
    now: Millis,
) -> Result<Applied, StoreError> {
    let ProviderEvent { provider, event_id, call_id, provider_call_id, attempt, status, detail, carrier_seconds } = *ev;
    let row = sqlx::query(
        "SELECT status, direction, provider_call_id, answered_by, stream_end, attempt FROM calls WHERE id = $1 FOR UPDATE",
    )
    .bind(call_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(Applied::UnknownCall) };
    let current: String = row.try_get(0)?;
    let Some(current) = CallStatus::parse(&current) else { return Ok(Applied::UnknownCall) };
    let outbound = row.try_get::<String, _>(1)? == "outbound";
    let sid: Option<String> = row.try_get(2)?;
    // A machine answered this attempt (async AMD said so earlier): it ends as voicemail.
    let machine = row.try_get::<Option<String>, _>(3)?.as_deref().is_some_and(crate::lifecycle::outcome::is_machine);
    let status = if status == CallStatus::Completed && machine { CallStatus::Voicemail } else { status };
    let stream_end: Option<String> = row.try_get(4)?;
    let fresh = note_event(&mut *tx, provider, event_id, now).await?;
    let current_attempt: i64 = row.try_get(5)?;
    // An event names its attempt when the carrier echoes it; otherwise its carrier id must be
    // the current attempt's. A call back in the queue has no attempt running.
    let other_attempt = match attempt {
        Some(n) => n != current_attempt,
        None => sid.as_deref().is_some_and(|s| s != provider_call_id),
    } || (outbound && current == CallStatus::Queued);
    if fresh && !other_attempt && sid.is_none() && !provider_call_id.is_empty() {
        // The attempt's carrier id, learnt from its callback (it may beat the create answer).
        sqlx::query("UPDATE calls SET provider_call_id = $2 WHERE id = $1")
            .bind(call_id)
            .bind(provider_call_id)
            .execute(&mut *tx)
            .await?;
    }
    let result = if !fresh {
        Applied::Duplicate
    } else if other_attempt {
        Applied::Stale
    } else if let Some(next) = current.advance(status) {
        // A terminal report is judged with the bridge's reason (an AI failure is not `completed`).
        let outcome = next.is_terminal().then(|| attempt_outcome(next, stream_end.as_deref()));
        // Where the outcome overrules the carrier (it said completed; the AI had failed), the
        // history says why.
        let detail = match outcome {
            Some(o) if o.status != next => Some(format!("{} reported {next}: {}", provider, o.end_reason)),
            _ => detail.map(str::to_string),
        };
        if let Some(seconds) = carrier_seconds.filter(|_| next.is_terminal()) {
            // Summed over attempts: each answered attempt is billed.
            sqlx::query(sql::ADD_CARRIER_SECONDS).bind(call_id).bind(seconds).execute(&mut *tx).await?;
        }
        match outcome {
            // The attempt's end is written by `end_attempt`: announced only if the call ends.
            Some(o) => end_attempt(tx, call_id, o, detail.as_deref(), retry_at, now).await?,
            None => {
                set_status(tx, call_id, next, detail.as_deref(), now).await?;
                Applied::Advanced(next)
            }
        }
    } else {
        Applied::Stale
    };
    Ok(result)
}

/// Records a provider event id; `true` the first time (the dedupe of every webhook).
async fn note_event<'e>(
    db: impl sqlx::PgExecutor<'e>,
    provider: &str,
    event_id: &str,
    now: Millis,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "INSERT INTO webhook_events (provider, event_id, seen_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(provider)
    .bind(event_id)
    .bind(now)
    .execute(db)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Sets a call's status, appends the history row and sends `call.<status>`.
pub(super) async fn set_status(
    tx: &mut Tx,
    call_id: &str,
    status: CallStatus,
    detail: Option<&str>,
    now: Millis,
) -> Result<(), StoreError> {
    record_status(tx, call_id, status, detail, now).await?;
    super::events::enqueue(tx, call_id, status.as_str(), now).await
}

/// Sets a call's status and appends the history row, with no event: an attempt that ended and
/// is retried shows in the history but sends no `call.<status>` until the call ends so.
pub(super) async fn record_status(
    tx: &mut Tx,
    call_id: &str,
    status: CallStatus,
    detail: Option<&str>,
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query(sql::RECORD_STATUS).bind(call_id).bind(status.as_str()).bind(now).execute(&mut *tx).await?;
    sqlx::query(sql::INSERT_HISTORY)
        .bind(call_id)
        .bind(status.as_str())
        .bind(now)
        .bind(detail)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The call has ended for good: why and when.
pub(super) async fn finish(tx: &mut Tx, call_id: &str, end_reason: &str, now: Millis) -> Result<(), StoreError> {
    sqlx::query(sql::FINISH_CALL).bind(call_id).bind(end_reason).bind(now).execute(&mut *tx).await?;
    Ok(())
}

/// The attempt in progress ended with `status`: requeue it (busy, no answer, attempts left) or
/// finish its job.
async fn end_attempt(
    tx: &mut Tx,
    call_id: &str,
    outcome: Outcome,
    detail: Option<&str>,
    retry_at: Millis,
    now: Millis,
) -> Result<Applied, StoreError> {
    let status = outcome.status;
    let job = sqlx::query(
        "SELECT id, attempts, max_attempts FROM jobs WHERE call_id = $1 AND state IN ('running', 'orphaned') ORDER BY id DESC LIMIT 1 FOR UPDATE",
    )
    .bind(call_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(job) = job else {
        set_status(tx, call_id, status, detail, now).await?;
        finish(tx, call_id, outcome.end_reason, now).await?;
        return Ok(Applied::Advanced(status));
    };
    let (id, attempts, max): (i64, i64, i64) = (job.try_get(0)?, job.try_get(1)?, job.try_get(2)?);
    if outcome.retryable && attempts < max {
        record_status(tx, call_id, status, detail, now).await?;
        sqlx::query(sql::REQUEUE_JOB).bind(id).bind(retry_at).bind(outcome.end_reason).execute(&mut *tx).await?;
        // The next attempt starts with no stream reason of its own yet.
        sqlx::query("UPDATE calls SET stream_end = NULL WHERE id = $1").bind(call_id).execute(&mut *tx).await?;
        let detail = format!("retry scheduled after {}", outcome.end_reason);
        set_status(tx, call_id, CallStatus::Queued, Some(&detail), now).await?;
        super::announce(tx).await?;
        return Ok(Applied::Retrying { after: status, run_at: retry_at });
    }
    set_status(tx, call_id, status, detail, now).await?;
    let state = status.job_state();
    sqlx::query(sql::FINISH_JOB).bind(id).bind(state).bind(now).bind(outcome.end_reason).execute(&mut *tx).await?;
    finish(tx, call_id, outcome.end_reason, now).await?;
    Ok(Applied::Advanced(status))
}
