//! Outbound calls on SQLite: the call, its dial job and the idempotency key are written in one
//! transaction; a repeated key or a live dedupe key returns the existing call.

use super::SqliteStore;
use crate::lifecycle::status::CallStatus;
use crate::store::outbound::{Attempt, Orphan};
use crate::store::outbound::{CallView, Created, ListFilter, OutboundCall, OutboundPatch, VIEW_ONE, view_sql};
use crate::store::{Cancel, JobStore, Millis, OutboundCalls, StoreError, row, sql};

/// A page of calls, newest first (SQLite's JSON functions for the metadata filter).
const VIEW_PAGE: &str = view_sql!(
    " WHERE (?1 IS NULL OR c.status = ?1) AND (c.created_at, c.id) < (?2, ?3)
        AND (?5 IS NULL OR c.campaign = ?5) AND (?6 IS NULL OR c.to_number = ?6)
        AND (?7 IS NULL OR CAST(json_extract(c.metadata, ?7) AS TEXT) = ?8)
        AND (?9 IS NULL OR c.agent_id = ?9) AND (?10 IS NULL OR c.direction = ?10)
        AND (?11 IS NULL OR c.created_at >= ?11) AND (?12 IS NULL OR c.created_at < ?12)
      ORDER BY c.created_at DESC, c.id DESC LIMIT ?4"
);

impl OutboundCalls for SqliteStore {
    /// Creates the call, its history row, its dial job and the idempotency record atomically.
    async fn create_outbound(
        &self,
        call: &OutboundCall,
        idempotency_key: Option<&str>,
        now: Millis,
    ) -> Result<Created, StoreError> {
        // Through the group commit: concurrent creations share one fsync (ADR 0008).
        let (call, key) = (call.clone(), idempotency_key.map(str::to_string));
        self.commits()
            .write(move |tx| {
                Box::pin(async move { crate::store::create::sqlite::create_in(tx, &call, key.as_deref(), now).await })
            })
            .await
    }

    async fn call_view(&self, id: &str) -> Result<Option<CallView>, StoreError> {
        let row = sqlx::query(VIEW_ONE).bind(id).fetch_optional(self.reader()).await?;
        Ok(row.as_ref().map(row::view).transpose()?)
    }

    /// Newest first; `before` is the `(created_at, id)` of the last call of the previous page.
    async fn list_calls(
        &self,
        filter: &ListFilter,
        before: Option<(Millis, String)>,
        limit: i64,
    ) -> Result<Vec<CallView>, StoreError> {
        let (at, id) = before.unwrap_or((i64::MAX, String::new()));
        // A JSON path naming one top-level key, quoted so the key is taken literally.
        let path = filter.metadata.as_ref().map(|(k, _)| format!("$.\"{}\"", k.replace('"', "\\\"")));
        let rows = sqlx::query(VIEW_PAGE)
            .bind(filter.status.map(|s| s.as_str()))
            .bind(at)
            .bind(id)
            .bind(limit)
            .bind(filter.campaign.as_deref())
            .bind(filter.to.as_deref())
            .bind(path)
            .bind(filter.metadata.as_ref().map(|(_, v)| v.as_str()))
            .bind(filter.agent_id.as_deref())
            .bind(filter.direction.as_deref())
            .bind(filter.created_from)
            .bind(filter.created_before)
            .fetch_all(self.reader())
            .await?;
        row::all(&rows, row::view)
    }

    /// Cancels a call that has not been dialled; reports a live one (hang it up through the
    /// provider) or a finished one.
    async fn cancel_outbound(&self, call_id: &str, now: Millis) -> Result<Cancel, StoreError> {
        let job: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM jobs WHERE call_id = ?1")
            .bind(call_id)
            .fetch_one(self.reader())
            .await?;
        let Some(job) = job else { return Ok(Cancel::Finished) };
        let outcome = self.cancel(job, now).await?;
        if outcome == Cancel::Canceled {
            let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
            sqlx::query(sql::CANCEL_QUEUED_CALL).bind(call_id).bind(now).execute(&mut *tx).await?;
            sqlx::query(sql::CANCELED_BY_API).bind(call_id).bind(now).execute(&mut *tx).await?;
            super::events::enqueue(&mut tx, call_id, "canceled", now).await?;
            super::calls::finish(&mut tx, call_id, "canceled", now).await?;
            tx.commit().await?;
        }
        Ok(outcome)
    }

    /// Records an answering-machine verdict for the attempt with this provider call id.
    async fn record_answered_by(
        &self,
        call_id: &str,
        provider_call_id: &str,
        answered_by: &str,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query(sql::RECORD_ANSWERED_BY)
            .bind(call_id)
            .bind(provider_call_id)
            .bind(answered_by)
            .execute(self.writer())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// The window closed between scheduling and claiming: back to the queue at `run_at`, the
    /// attempt not counted.
    async fn defer_claimed(
        &self,
        job_id: i64,
        owner: &str,
        run_at: Millis,
        why: Option<&str>,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let call_id: Option<String> = sqlx::query_scalar(sql::DEFER_CLAIMED)
            .bind(job_id)
            .bind(owner)
            .bind(run_at)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(call_id) = call_id else { return Ok(false) };
        let Some(why) = why else {
            tx.commit().await?;
            return Ok(true);
        };
        // A trace in the history (no status change, so no event) and the count.
        let until = jiff::Timestamp::from_millisecond(run_at).map(|t| t.to_string()).unwrap_or_default();
        sqlx::query(sql::QUEUED_AGAIN)
            .bind(&call_id)
            .bind(now)
            .bind(format!("rescheduled to {until}: {why}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::COUNT_RESCHEDULE).bind(&call_id).bind(now).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn expire_overdue(&self, now: Millis) -> Result<Vec<String>, StoreError> {
        const OVERDUE: &str = "SELECT id FROM calls WHERE status = 'queued' AND expires_at < ?1";
        // Read first (every dialler tick asks): a write transaction only when there is work.
        let any: Option<String> = sqlx::query_scalar(OVERDUE).bind(now).fetch_optional(self.reader()).await?;
        if any.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let mut expired = Vec::new();
        for id in sqlx::query_scalar::<_, String>(OVERDUE).bind(now).fetch_all(&mut *tx).await? {
            // Only a call whose dial has not started: its job still waits in the queue.
            let waiting = sqlx::query(sql::EXPIRE_JOB).bind(&id).bind(now).execute(&mut *tx).await?.rows_affected();
            if waiting == 0 {
                continue;
            }
            super::calls::set_status(
                &mut tx,
                &id,
                CallStatus::Expired,
                Some("expires_at passed before a dial started"),
                now,
            )
            .await?;
            sqlx::query(sql::EXPIRED).bind(&id).bind(now).execute(&mut *tx).await?;
            expired.push(id);
        }
        tx.commit().await?;
        Ok(expired)
    }

    async fn set_campaign_paused(&self, name: &str, paused: bool, now: Millis) -> Result<i64, StoreError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(sql::SET_CAMPAIGN_PAUSED).bind(name).bind(paused).bind(now).execute(&mut *tx).await?;
        let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM calls WHERE campaign = ?1 AND status = 'queued'")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(queued)
    }

    async fn cancel_campaign(&self, name: &str, now: Millis) -> Result<Vec<String>, StoreError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        // Only calls waiting in the queue: live ones are left alone.
        let ids: Vec<String> =
            sqlx::query_scalar(sql::CANCEL_CAMPAIGN_JOBS).bind(name).bind(now).fetch_all(&mut *tx).await?;
        for id in &ids {
            super::calls::set_status(&mut tx, id, CallStatus::Canceled, Some("campaign canceled"), now).await?;
            super::calls::finish(&mut tx, id, "canceled", now).await?;
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn note_waiting(&self, call_id: &str, why: &str) -> Result<(), StoreError> {
        sqlx::query(sql::NOTE_WAITING)
            .bind(call_id)
            .bind(crate::store::waiting_note(why))
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// A worker claimed the call's job: attempt `attempt` of the call is being dialled. The
    /// previous attempt's carrier id and verdict no longer hold.
    async fn start_attempt(&self, call_id: &str, attempt: i64, now: Millis) -> Result<(), StoreError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        super::calls::set_status(&mut tx, call_id, CallStatus::Dialing, None, now).await?;
        sqlx::query(sql::START_ATTEMPT).bind(call_id).bind(attempt).bind(now).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The provider accepted attempt `attempt`: its events carry `provider_call_id`. (Its
    /// callbacks may have said so first; a later attempt's id is never overwritten.)
    async fn attempt_dialed(&self, call_id: &str, attempt: i64, provider_call_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE calls SET provider_call_id = ?3 WHERE id = ?1 AND attempt = ?2")
            .bind(call_id)
            .bind(attempt)
            .bind(provider_call_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// The provider refused or could not take the call: retry at `retry_at` when retryable and
    /// attempts remain, else the call fails with the provider's message.
    #[allow(clippy::too_many_arguments)]
    async fn attempt_failed(
        &self,
        job_id: i64,
        owner: &str,
        call_id: &str,
        error: &str,
        retryable: bool,
        retry_at: Millis,
        now: Millis,
    ) -> Result<crate::store::AfterFailure, StoreError> {
        // The job and its call change in one transaction.
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let after = super::fail_in(&mut tx, job_id, owner, now, error, retryable, retry_at).await?;
        match after {
            crate::store::AfterFailure::Requeued { .. } => {
                super::calls::set_status(&mut tx, call_id, CallStatus::Queued, Some(error), now).await?;
            }
            crate::store::AfterFailure::Final => {
                super::calls::set_status(&mut tx, call_id, CallStatus::Failed, Some(error), now).await?;
                super::calls::finish(&mut tx, call_id, "dial_failed", now).await?;
                sqlx::query("UPDATE calls SET last_error = ?2 WHERE id = ?1")
                    .bind(call_id)
                    .bind(error)
                    .execute(&mut *tx)
                    .await?;
            }
            crate::store::AfterFailure::NotOwner => {}
        }
        tx.commit().await?;
        Ok(after)
    }

    /// Orphaned jobs (their worker died) with what reconciliation needs to ask the carrier.
    async fn orphans(&self) -> Result<Vec<Orphan>, StoreError> {
        let rows = sqlx::query(sql::ORPHANS).fetch_all(self.reader()).await?;
        row::all(&rows, row::orphan)
    }

    /// Outbound attempts the carrier has not finished yet (dialling, ringing or live), for the
    /// sweeper to judge which are overdue.
    async fn open_attempts(&self) -> Result<Vec<Attempt>, StoreError> {
        let rows = sqlx::query(sql::OPEN_ATTEMPTS).fetch_all(self.reader()).await?;
        row::all(&rows, row::attempt)
    }

    /// An orphaned job whose attempt never reached the carrier (the worker died before the
    /// dial, or the carrier has no call for it): back to the queue now, the attempt not counted,
    /// the call `queued` again with `detail` in its history.
    async fn release_orphan(&self, job_id: i64, call_id: &str, detail: &str, now: Millis) -> Result<bool, StoreError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let n = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = MAX(attempts - 1, 0), uncounted_releases = uncounted_releases + 1, run_at = ?2, lease_owner = NULL,
                 lease_until = NULL
             WHERE id = ?1 AND state = 'orphaned'",
        )
        .bind(job_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM calls WHERE id = ?1").bind(call_id).fetch_optional(&mut *tx).await?;
        if n == 1 && status.as_deref() != Some(CallStatus::Queued.as_str()) {
            super::calls::record_status(&mut tx, call_id, CallStatus::Queued, Some(detail), now).await?;
            sqlx::query("UPDATE calls SET provider_call_id = NULL WHERE id = ?1")
                .bind(call_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Closes an orphaned job whose call has already ended (its outcome was applied elsewhere).
    async fn close_orphan(&self, job_id: i64, now: Millis) -> Result<(), StoreError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let status: Option<String> = sqlx::query_scalar(
            "SELECT c.status FROM jobs j JOIN calls c ON c.id = j.call_id WHERE j.id = ?1 AND j.state = 'orphaned'",
        )
        .bind(job_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(status) = status.as_deref().and_then(CallStatus::parse).filter(|s| s.is_terminal()) {
            sqlx::query(sql::CLOSE_JOB).bind(job_id).bind(status.job_state()).bind(now).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Applies `patch` if the call is still waiting in the queue; `false` if it is not (being
    /// dialled, live or finished).
    async fn patch_outbound(&self, call_id: &str, patch: &OutboundPatch, now: Millis) -> Result<bool, StoreError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let queued: Option<i64> = sqlx::query_scalar(
            "SELECT j.id FROM calls c JOIN jobs j ON j.call_id = c.id
             WHERE c.id = ?1 AND c.status = 'queued' AND j.state = 'queued' ORDER BY j.id DESC LIMIT 1",
        )
        .bind(call_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(job) = queued else { return Ok(false) };
        sqlx::query(sql::PATCH_CALL)
            .bind(call_id)
            .bind(&patch.instructions)
            .bind(&patch.greeting)
            .bind(&patch.voice)
            .bind(&patch.metadata)
            .bind(&patch.call_window)
            .bind(&patch.webhook_url)
            .bind(now)
            .bind(patch.clear_call_window)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::PATCH_JOB)
            .bind(job)
            .bind(patch.priority)
            .bind(patch.max_attempts)
            .bind(patch.run_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes call records (with history and transcripts) created before `before`, except
    /// calls still in progress.
    async fn prune_calls(&self, before: Millis) -> Result<u64, StoreError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let mut n = 0;
        for statement in sql::PRUNE_CALLS {
            n = sqlx::query(statement).bind(before).execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Takes over an orphaned job whose call is still live at the provider.
    async fn adopt_orphan(&self, job_id: i64, owner: &str, lease_until: Millis) -> Result<bool, StoreError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let n = sqlx::query(sql::ADOPT_ORPHAN)
            .bind(job_id)
            .bind(owner)
            .bind(lease_until)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }
}
