//! What a campaign's calls came to: counts by status, by why they ended, and how many reported an
//! outcome — one statement, run the same way on both backends.

use std::collections::BTreeMap;

use sqlx::{Database, Decode, Encode, Executor, IntoArguments, Pool, Type};

use super::StoreError;
use super::backend::Store;
use super::row::Cells;

/// A campaign's calls, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CampaignCounts {
    pub paused: bool,
    pub total: i64,
    pub by_status: BTreeMap<String, i64>,
    /// Ended calls by `end_reason`.
    pub by_end_reason: BTreeMap<String, i64>,
    /// Calls whose AI reported an outcome (`report_outcome`).
    pub outcomes_reported: i64,
}

/// Status, end reason (`''` while live), outcome reported, count: one row per combination.
const COUNTS: &str = "SELECT status, COALESCE(end_reason, ''), outcome IS NOT NULL, COUNT(*) FROM calls
     WHERE campaign = $1 GROUP BY status, COALESCE(end_reason, ''), outcome IS NOT NULL";

const PAUSED: &str = "SELECT paused FROM campaigns WHERE name = $1";

async fn counts<DB>(pool: &Pool<DB>, name: &str) -> Result<CampaignCounts, StoreError>
where
    DB: Database,
    DB::Row: Cells,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Decode<'q, DB> + Type<DB>,
    (bool,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let mut c = CampaignCounts::default();
    for row in sqlx::query(COUNTS).bind(name).fetch_all(pool).await? {
        let (status, reason, reported, n) = (row.text(0)?, row.text(1)?, row.flag(2)?, row.int(3)?);
        c.total += n;
        *c.by_status.entry(status).or_default() += n;
        if !reason.is_empty() {
            *c.by_end_reason.entry(reason).or_default() += n;
        }
        if reported {
            c.outcomes_reported += n;
        }
    }
    c.paused = sqlx::query_scalar(PAUSED).bind(name).fetch_optional(pool).await?.unwrap_or(false);
    Ok(c)
}

impl Store {
    /// Campaign `name`'s calls, counted.
    pub async fn campaign_counts(&self, name: &str) -> Result<CampaignCounts, StoreError> {
        match self {
            Store::Sqlite(s) => counts(s.reader(), name).await,
            Store::Postgres(p) => counts(p.pool(), name).await,
        }
    }
}
