//! Call records and their status history on SQLite. Provider events are applied idempotently
//! (each event id once) and monotonically (`CallStatus::advance`), in one transaction.

use sqlx::Row;

use super::sqlite::SqliteStore;
use super::{Millis, StoreError};
use crate::queue::status::CallStatus;

/// A call to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCallRecord {
    pub id: String,
    pub provider: String,
    pub inbound: bool,
    pub to_number: String,
    pub from_number: Option<String>,
    pub status: CallStatus,
}

/// A call with its history.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    pub id: String,
    pub provider: String,
    pub status: CallStatus,
    pub provider_call_id: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// (status, at, detail), oldest first.
    pub history: Vec<(CallStatus, Millis, Option<String>)>,
}

/// A provider's report about a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderEvent<'a> {
    pub provider: &'a str,
    /// Unique per event at that provider (dedupe key).
    pub event_id: &'a str,
    pub call_id: &'a str,
    pub provider_call_id: &'a str,
    pub status: CallStatus,
    pub detail: Option<&'a str>,
}

/// What applying a provider event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The status moved forward.
    Advanced(CallStatus),
    /// Seen before (same event id): nothing changed.
    Duplicate,
    /// Late or backwards (`ringing` after `completed`): recorded as seen, nothing changed.
    Stale,
    /// No such call.
    UnknownCall,
}

impl SqliteStore {
    pub async fn insert_call(&self, call: &NewCallRecord, now: Millis) -> Result<(), StoreError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO calls (id, provider, direction, to_number, from_number, status, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        )
        .bind(&call.id)
        .bind(&call.provider)
        .bind(if call.inbound { "inbound" } else { "outbound" })
        .bind(&call.to_number)
        .bind(&call.from_number)
        .bind(call.status.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO call_status_history (call_id, status, at) VALUES (?1, ?2, ?3)")
            .bind(&call.id)
            .bind(call.status.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_call(&self, id: &str) -> Result<Option<CallRecord>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT id, provider, status, provider_call_id, created_at, updated_at FROM calls WHERE id = ?1",
        )
        .bind(id)
        .fetch_optional(self.reader())
        .await?
        else {
            return Ok(None);
        };
        let history = sqlx::query("SELECT status, at, detail FROM call_status_history WHERE call_id = ?1 ORDER BY seq")
            .bind(id)
            .fetch_all(self.reader())
            .await?
            .into_iter()
            .filter_map(|r| {
                let status: String = r.try_get(0).ok()?;
                Some((CallStatus::parse(&status)?, r.try_get(1).ok()?, r.try_get(2).ok()?))
            })
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

    /// Applies a provider status event once: dedupes by `(provider, event_id)`, moves the
    /// status only forward, records the provider's call id and a history row.
    pub async fn apply_provider_event(&self, ev: &ProviderEvent<'_>, now: Millis) -> Result<Applied, StoreError> {
        let ProviderEvent { provider, event_id, call_id, provider_call_id, status, detail } = *ev;
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let current: Option<String> =
            sqlx::query_scalar("SELECT status FROM calls WHERE id = ?1").bind(call_id).fetch_optional(&mut *tx).await?;
        let Some(current) = current.as_deref().and_then(CallStatus::parse) else {
            return Ok(Applied::UnknownCall);
        };
        let fresh =
            sqlx::query("INSERT OR IGNORE INTO webhook_events (provider, event_id, seen_at) VALUES (?1, ?2, ?3)")
                .bind(provider)
                .bind(event_id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
        let result = if !fresh {
            Applied::Duplicate
        } else if let Some(next) = current.advance(status) {
            sqlx::query(
                "UPDATE calls SET status = ?2, updated_at = ?3, provider_call_id = COALESCE(provider_call_id, ?4) WHERE id = ?1",
            )
            .bind(call_id)
            .bind(next.as_str())
            .bind(now)
            .bind(provider_call_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO call_status_history (call_id, status, at, detail) VALUES (?1, ?2, ?3, ?4)")
                .bind(call_id)
                .bind(next.as_str())
                .bind(now)
                .bind(detail)
                .execute(&mut *tx)
                .await?;
            Applied::Advanced(next)
        } else {
            Applied::Stale
        };
        tx.commit().await?;
        Ok(result)
    }
}

/// Counts for the API's metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallCounts {
    pub calls_by_status: Vec<(String, i64)>,
    pub queued_jobs: i64,
}

impl SqliteStore {
    pub async fn call_counts(&self) -> Result<CallCounts, StoreError> {
        let rows = sqlx::query("SELECT status, COUNT(*) FROM calls GROUP BY status ORDER BY status")
            .fetch_all(self.reader())
            .await?;
        let calls_by_status =
            rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<_, sqlx::Error>>()?;
        let queued_jobs =
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'queued'").fetch_one(self.reader()).await?;
        Ok(CallCounts { calls_by_status, queued_jobs })
    }
}
