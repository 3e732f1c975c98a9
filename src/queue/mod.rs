//! The outbound call queue. `policy` is pure (backoff, call windows, outcome classes); the
//! claim/lease machinery lives in `store/` (all SQL) and the workers that dial come next.

pub mod outcome;
pub mod policy;
pub mod status;
pub mod sweep;
pub mod worker;
