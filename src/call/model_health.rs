//! Whether the model can be reached, as the calls found it, and the circuit breaker built on it
//! (reliability row 2). Each call's final connect outcome (after any failover) is noted.
//! Readiness reports a model whose latest connects failed, so a load balancer sends new calls to
//! an instance whose model answers. After [`TRIP_AFTER`] failed connects in a row the breaker
//! opens for [`COOL_OFF_MS`]: callers get the apology at once instead of each waiting out a
//! connect timeout, and outbound dials wait in the queue; then one trial connect decides.
//! Time is passed in.

use std::sync::Mutex;

use crate::store::Millis;

/// A failure older than this, with nothing since, no longer says anything about now.
pub const RECENT_MS: Millis = 120_000;
/// Failed connects in a row that open the breaker.
pub const TRIP_AFTER: u32 = 3;
/// How long an open breaker refuses to try.
pub const COOL_OFF_MS: Millis = 30_000;
/// A trial connect that said nothing for this long (its call went away) no longer blocks others.
const TRIAL_MS: Millis = 15_000;

#[derive(Debug, Default)]
struct Seen {
    last_ok: Option<Millis>,
    last_fail: Option<(Millis, String)>,
    failures_in_row: u32,
    open_until: Option<Millis>,
    trial_since: Option<Millis>,
}

#[derive(Debug, Default)]
pub struct ModelHealth {
    seen: Mutex<Seen>,
}

/// Whether a call may try to reach the model now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Try,
    /// The breaker is open: why, for the call's record.
    Skip(String),
}

impl ModelHealth {
    /// A call's connect to the model ended at `now`: `Ok`, or the error.
    pub fn note(&self, outcome: Result<(), &str>, now: Millis) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.trial_since = None;
        match outcome {
            Ok(()) => {
                seen.last_ok = Some(now);
                seen.failures_in_row = 0;
                seen.open_until = None;
            }
            Err(e) => {
                seen.last_fail = Some((now, e.to_string()));
                seen.failures_in_row += 1;
                if seen.failures_in_row >= TRIP_AFTER {
                    seen.open_until = Some(now + COOL_OFF_MS);
                }
            }
        }
    }

    /// Whether a call starting at `now` may connect: not while the breaker is open; once its
    /// cool-off is over, one trial at a time.
    pub fn gate(&self, now: Millis) -> Gate {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let Some(until) = seen.open_until else { return Gate::Try };
        let failed = seen.failures_in_row;
        if now < until {
            return Gate::Skip(format!(
                "the model failed {failed} connects in a row; not tried again for {} s",
                (until - now + 999) / 1000
            ));
        }
        if seen.trial_since.is_some_and(|t| now - t < TRIAL_MS) {
            return Gate::Skip(format!("the model failed {failed} connects in a row; a trial connect is under way"));
        }
        seen.trial_since = Some(now);
        Gate::Try
    }

    /// The breaker is open at `now` (outbound dials wait).
    pub fn is_open(&self, now: Millis) -> bool {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).open_until.is_some_and(|t| now < t)
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

    #[test]
    fn three_failures_in_a_row_open_the_breaker_until_a_trial_succeeds() {
        let h = ModelHealth::default();
        h.note(Err("refused"), 0);
        h.note(Err("refused"), 100);
        h.note(Ok(()), 200);
        h.note(Err("refused"), 300);
        h.note(Err("refused"), 400);
        assert_eq!(h.gate(500), Gate::Try, "a success in between: not three in a row");
        assert!(!h.is_open(500));
        h.note(Err("refused"), 500);
        assert!(h.is_open(501));
        assert!(matches!(h.gate(501), Gate::Skip(why) if why.contains("3 connects in a row") && why.contains("30 s")));
        assert!(matches!(h.gate(500 + COOL_OFF_MS - 1), Gate::Skip(_)));
        // The cool-off is over: one trial, the others wait for it.
        let after = 500 + COOL_OFF_MS;
        assert!(!h.is_open(after));
        assert_eq!(h.gate(after), Gate::Try);
        assert!(matches!(h.gate(after + 1), Gate::Skip(why) if why.contains("trial")));
        // It fails: open again.
        h.note(Err("refused"), after + 10);
        assert!(h.is_open(after + 11));
        // A trial whose call vanished blocks nobody for long; a successful one closes it.
        let later = after + 10 + COOL_OFF_MS;
        assert_eq!(h.gate(later), Gate::Try);
        assert_eq!(h.gate(later + TRIAL_MS), Gate::Try, "the silent trial was forgotten");
        h.note(Ok(()), later + TRIAL_MS + 1);
        assert_eq!(h.gate(later + TRIAL_MS + 2), Gate::Try);
        assert!(!h.is_open(later + TRIAL_MS + 2));
    }
}
