//! The event outbox on PostgreSQL: a row per call status change for calls with a webhook URL,
//! written in the status change's own transaction.

use super::PgStore;
use crate::store::events::{Attempted, EventRecord, PendingEvent};
use crate::store::{EventOutbox, Millis, StoreError, row};

/// A connection inside a write transaction (or a savepoint of one).
type Tx = sqlx::PgConnection;

/// `call.completed` carries the transcript, which the bridge saves when the stream closes; a
/// "completed" that arrives before that waits for it (see [`transcript_saved`]), at most this long.
const COMPLETED_DELAY_MS: Millis = 2_000;

/// Adds `call.<status>` to the outbox if the call has a webhook URL.
pub(crate) async fn enqueue(tx: &mut Tx, call_id: &str, status: &str, now: Millis) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO event_deliveries (call_id, url, event, status, at, state, next_at, event_id)
         SELECT id, webhook_url, 'call.' || $2, $2, $3, 'pending', $3 + CASE
             WHEN $2 = 'completed' AND NOT EXISTS (SELECT 1 FROM transcripts WHERE call_id = $1) THEN $4 ELSE 0 END,
             'evt_' || substr(replace(gen_random_uuid()::text, '-', ''), 1, 24)
         FROM calls WHERE id = $1 AND webhook_url IS NOT NULL",
    )
    .bind(call_id)
    .bind(status)
    .bind(now)
    .bind(COMPLETED_DELAY_MS)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The call's transcript is saved: a `call.completed` waiting for it is due now (one already
/// leased for delivery, `next_at` past the wait, is left alone).
pub(super) async fn transcript_saved(tx: &mut Tx, call_id: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE event_deliveries SET next_at = LEAST(next_at, at)
         WHERE call_id = $1 AND status = 'completed' AND state = 'pending' AND attempts = 0 AND next_at <= at + $2",
    )
    .bind(call_id)
    .bind(COMPLETED_DELAY_MS)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// How long an instance holds the events it took for delivery (longer than a delivery's
/// timeout), so that two instances do not send the same event.
const DELIVERY_LEASE_MS: Millis = 30_000;

impl EventOutbox for PgStore {
    /// Events due now, oldest first, leased to this instance for [`DELIVERY_LEASE_MS`]: another
    /// instance offers them again only if this one has not recorded an attempt by then. A call's
    /// event waits while an earlier one of the same call is still to be sent (a retry
    /// included): events go out in order; one given up on lets the next go.
    async fn due_events(&self, now: Millis, limit: i64) -> Result<Vec<PendingEvent>, StoreError> {
        let rows = sqlx::query(
            "UPDATE event_deliveries SET next_at = $1 + $3
             WHERE id IN (SELECT id FROM event_deliveries d WHERE state = 'pending' AND next_at <= $1
                            AND NOT EXISTS (SELECT 1 FROM event_deliveries e
                                WHERE e.call_id = d.call_id AND e.id < d.id AND e.state = 'pending')
                          ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
             RETURNING id, call_id, url, event, status, at, attempts, COALESCE(event_id, 'evt_' || id)",
        )
        .bind(now)
        .bind(limit)
        .bind(DELIVERY_LEASE_MS)
        .fetch_all(self.pool())
        .await?;
        let mut events = row::all(&rows, row::pending_event)?;
        events.sort_by_key(|e| e.id);
        Ok(events)
    }

    /// Records a delivery attempt: the event's state, and a line in its log.
    async fn event_attempted(&self, id: i64, outcome: Attempted<'_>, now: Millis) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        crate::store::run::event_attempted::<sqlx::Postgres>(&mut tx, id, outcome, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn event_log(&self, call_id: &str) -> Result<Vec<EventRecord>, StoreError> {
        crate::store::run::event_log(self.pool(), call_id).await
    }

    async fn redeliver(&self, event_id: &str, now: Millis) -> Result<Option<String>, StoreError> {
        crate::store::run::redeliver(self.pool(), event_id, now).await
    }

    /// (state, last_error) of every event of a call, oldest first (tests, diagnostics).
    async fn call_events(&self, call_id: &str) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
        let rows = sqlx::query("SELECT event, state, last_error FROM event_deliveries WHERE call_id = $1 ORDER BY id")
            .bind(call_id)
            .fetch_all(self.pool())
            .await?;
        row::all(&rows, row::event_state)
    }
}
