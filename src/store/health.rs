//! How the store's writes are going: readiness must not say "ready" while the database refuses
//! writes (a full disk refuses inserts while the readiness probe's one-row rewrite still fits),
//! and every refused write is counted, whoever asked for it (an API request, a carrier webhook,
//! the call bridge). Noted by [`Store`](super::Store) around each write method.

use std::sync::atomic::{AtomicBool, Ordering};

use super::StoreError;

/// The outcome of the latest write: failing from a refused write until a write succeeds.
#[derive(Debug, Default)]
pub struct WriteHealth {
    failing: AtomicBool,
}

impl WriteHealth {
    /// Notes a write's result. A refusal by the database (not a rule: a duplicate key is an
    /// answer) counts in `voxbridge_store_write_failures_total{what}`; a success clears the
    /// failure only for a write that `grows` the database (a no-op write fits on a full disk).
    pub fn note<T>(&self, what: &'static str, result: &Result<T, StoreError>, grows: bool) {
        match result {
            Ok(_) if grows => self.failing.store(false, Ordering::Release),
            Ok(_) => {}
            Err(e) if refused(e) => {
                self.failing.store(true, Ordering::Release);
                metrics::counter!("voxbridge_store_write_failures_total", "what" => what).increment(1);
            }
            Err(_) => {}
        }
    }

    /// The latest write was refused, and none has succeeded since.
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }
}

fn refused(e: &StoreError) -> bool {
    match e {
        StoreError::Database(sqlx::Error::Database(d)) => !(d.is_unique_violation() || d.is_foreign_key_violation()),
        StoreError::Database(sqlx::Error::RowNotFound) => false,
        StoreError::Database(_) | StoreError::Commit(_) => true,
        StoreError::Migrate(_) | StoreError::Pragma { .. } | StoreError::Url(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_write_makes_it_failing_until_a_write_succeeds() {
        let h = WriteHealth::default();
        assert!(!h.failing());
        h.note::<()>("x", &Err(StoreError::Commit("disk full".into())), true);
        assert!(h.failing());
        h.note::<()>("x", &Err(StoreError::Database(sqlx::Error::RowNotFound)), true);
        assert!(h.failing(), "an answer is not a success");
        h.note("claim", &Ok(()), false);
        assert!(h.failing(), "a write that may have changed nothing proves nothing");
        h.note("insert", &Ok(()), true);
        assert!(!h.failing());
        h.note::<()>("x", &Err(StoreError::Database(sqlx::Error::PoolTimedOut)), false);
        assert!(h.failing());
    }
}
