//! The outbound call queue. `policy` is pure (backoff, call windows, outcome classes); the
//! claim/lease machinery lives in `store/` (all SQL) and the workers that dial come next.

pub mod policy;
pub mod worker;

/// The statuses live in `lifecycle` (shared with the store); re-exported for existing users.
pub use crate::lifecycle::status;
