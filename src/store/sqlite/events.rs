//! The event outbox on SQLite: a row per call status change for calls with a webhook URL,
//! written in the status change's own transaction.

use super::SqliteStore;
use crate::store::events::{Attempted, EventRecord, PendingEvent};
use crate::store::{EventOutbox, Millis, StoreError, row};

/// A connection inside a write transaction (or a savepoint of one).
type Tx = sqlx::SqliteConnection;

/// `call.completed` carries the transcript, which the bridge saves when the stream closes; a
/// "completed" that arrives before that waits for it (see [`transcript_saved`]), at most this long.
const COMPLETED_DELAY_MS: Millis = 2_000;

/// Adds `call.<status>` to the outbox if the call has a webhook URL.
pub(crate) async fn enqueue(tx: &mut Tx, call_id: &str, status: &str, now: Millis) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO event_deliveries (call_id, url, event, status, at, state, next_at, event_id)
         SELECT id, webhook_url, 'call.' || ?2, ?2, ?3, 'pending', ?3 + CASE
             WHEN ?2 = 'completed' AND NOT EXISTS (SELECT 1 FROM transcripts WHERE call_id = ?1) THEN ?4 ELSE 0 END,
             'evt_' || lower(hex(randomblob(12)))
         FROM calls WHERE id = ?1 AND webhook_url IS NOT NULL",
    )
    .bind(call_id)
    .bind(status)
    .bind(now)
    .bind(COMPLETED_DELAY_MS)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The call's transcript is saved: a `call.completed` waiting for it is due now.
pub(super) async fn transcript_saved(tx: &mut Tx, call_id: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE event_deliveries SET next_at = MIN(next_at, at)
         WHERE call_id = ?1 AND status = 'completed' AND state = 'pending' AND attempts = 0",
    )
    .bind(call_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

impl EventOutbox for SqliteStore {
    /// Events due now, oldest first.
    /// Events due now, oldest first; a call's event waits while an earlier one of the same call
    /// is still to be sent (a retry included): events go out in order, and one given up on lets
    /// the next go.
    async fn due_events(&self, now: Millis, limit: i64) -> Result<Vec<PendingEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, call_id, url, event, status, at, attempts, COALESCE(event_id, 'evt_' || id) FROM event_deliveries d
             WHERE state = 'pending' AND next_at <= ?1 AND NOT EXISTS (SELECT 1 FROM event_deliveries e
                 WHERE e.call_id = d.call_id AND e.id < d.id AND e.state = 'pending')
             ORDER BY id LIMIT ?2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        row::all(&rows, row::pending_event)
    }

    /// Records a delivery attempt: the event's state, and a line in its log.
    async fn event_attempted(&self, id: i64, outcome: Attempted<'_>, now: Millis) -> Result<(), StoreError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        crate::store::run::event_attempted::<sqlx::Sqlite>(&mut tx, id, outcome, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn event_log(&self, call_id: &str) -> Result<Vec<EventRecord>, StoreError> {
        crate::store::run::event_log(self.reader(), call_id).await
    }

    async fn redeliver(&self, event_id: &str, now: Millis) -> Result<Option<String>, StoreError> {
        crate::store::run::redeliver(self.writer(), event_id, now).await
    }

    /// (state, last_error) of every event of a call, oldest first (tests, diagnostics).
    async fn call_events(&self, call_id: &str) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
        let rows = sqlx::query("SELECT event, state, last_error FROM event_deliveries WHERE call_id = ?1 ORDER BY id")
            .bind(call_id)
            .fetch_all(self.reader())
            .await?;
        row::all(&rows, row::event_state)
    }
}
