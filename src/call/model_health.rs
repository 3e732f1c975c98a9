//! Whether the model can be reached, as the calls found it: each call's final connect outcome
//! (after any failover) is noted; readiness reports a model whose latest connects failed, so a
//! load balancer sends new calls to an instance whose model answers, and an operator sees why.
//! Time is passed in.

use std::sync::Mutex;

use crate::store::Millis;

/// A failure older than this, with nothing since, no longer says anything about now.
pub const RECENT_MS: Millis = 120_000;

#[derive(Debug, Default)]
struct Seen {
    last_ok: Option<Millis>,
    last_fail: Option<(Millis, String)>,
}

#[derive(Debug, Default)]
pub struct ModelHealth {
    seen: Mutex<Seen>,
}

impl ModelHealth {
    /// A call's connect to the model ended at `now`: `Ok`, or the error.
    pub fn note(&self, outcome: Result<(), &str>, now: Millis) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match outcome {
            Ok(()) => seen.last_ok = Some(now),
            Err(e) => seen.last_fail = Some((now, e.to_string())),
        }
    }

    /// Why the model looks unreachable at `now`: the latest connect failed, within [`RECENT_MS`].
    pub fn unreachable(&self, now: Millis) -> Option<String> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let (at, error) = seen.last_fail.as_ref()?;
        let newer = seen.last_ok.is_none_or(|ok| ok < *at);
        (newer && now - at <= RECENT_MS).then(|| format!("{} s ago: {error}", (now - at) / 1000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_recent_outcome_decides() {
        let h = ModelHealth::default();
        assert_eq!(h.unreachable(0), None, "nothing known: nothing said");
        h.note(Err("connection refused"), 1_000);
        assert_eq!(h.unreachable(3_000).as_deref(), Some("2 s ago: connection refused"));
        h.note(Ok(()), 4_000);
        assert_eq!(h.unreachable(5_000), None, "a call got through since");
        h.note(Err("timeout"), 6_000);
        assert!(h.unreachable(6_000 + RECENT_MS).is_some());
        assert_eq!(h.unreachable(6_001 + RECENT_MS), None, "too old to say anything about now");
    }
}
