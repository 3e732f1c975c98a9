//! Which unfinished attempts are overdue a word from their carrier, decided in Rust, pure: the
//! sweeper asks the carrier about these and applies what it says, so a lost final callback
//! (Twilio does not retry status callbacks by default) never holds a concurrency slot or a
//! number for good.

use std::time::Duration;

use super::Millis;
use super::attempt::Attempt;
use super::status::CallStatus;

/// How long each phase may go without a carrier callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// The ring timeout the carrier was given.
    pub ring_timeout: Duration,
    /// Slack for a callback in flight (`VOXBRIDGE_STATUS_GRACE_MS`).
    pub grace: Duration,
    /// The server's duration cap, for calls that set none.
    pub max_call_duration: Duration,
}

/// Whether the carrier is overdue with news of `a` at `now`: still dialling or ringing longer
/// than the ring timeout allows; live after the bridge ended its stream (the final status should
/// follow within seconds); or live past the carrier's own time limit (the cap plus a minute).
pub fn is_overdue(a: &Attempt, d: &Deadlines, now: Millis) -> bool {
    let ms = |d: Duration| d.as_millis() as i64;
    let quiet = now - a.updated_at;
    match a.status {
        CallStatus::Dialing | CallStatus::Ringing => quiet > ms(d.ring_timeout + d.grace),
        CallStatus::InProgress => {
            let cap = a.max_duration_s.map_or(d.max_call_duration, |s| Duration::from_secs(s.max(0) as u64));
            let past_limit = a.answered_at.is_some_and(|t| now - t > ms(cap + Duration::from_secs(60) + d.grace));
            (a.stream_ended && quiet > ms(d.grace)) || past_limit
        }
        _ => false,
    }
}

/// Whether no call of attempt `a` can still be up at `now`, whatever the carrier would say: it
/// started longer ago than ringing, the longest call the carrier lets it have (the cap plus the
/// minute of `TimeLimit` slack) and the grace together. Reconciliation that never got an answer
/// ends such an attempt instead of asking for ever.
pub fn past_any_call(a: &Attempt, d: &Deadlines, now: Millis) -> bool {
    let cap = a.max_duration_s.map_or(d.max_call_duration, |s| Duration::from_secs(s.max(0) as u64));
    let longest = d.ring_timeout + cap + Duration::from_secs(60) + d.grace;
    let started = a.started_at.unwrap_or(a.updated_at);
    now - started > longest.as_millis() as i64
}

/// How long to wait before asking the carrier again about an attempt after `failures` failed
/// asks in a row: 1 s, doubling, at most a minute (a carrier that cannot answer is not asked in
/// a loop).
pub fn ask_again_after(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(status: CallStatus, updated_at: Millis) -> Attempt {
        Attempt {
            call_id: "c".into(),
            status,
            attempt: 1,
            provider_call_id: Some("CA1".into()),
            started_at: Some(0),
            provider: "twilio".into(),
            to_number: "+15550000001".into(),
            from_number: None,
            updated_at,
            answered_at: None,
            stream_ended: false,
            max_duration_s: None,
        }
    }

    const D: Deadlines = Deadlines {
        ring_timeout: Duration::from_secs(30),
        grace: Duration::from_secs(60),
        max_call_duration: Duration::from_secs(1800),
    };

    #[test]
    fn an_attempt_is_past_any_call_after_ringing_its_longest_call_and_the_grace() {
        let mut a = attempt(CallStatus::Dialing, 0);
        let longest = (30 + 1800 + 60 + 60) * 1000;
        assert!(!past_any_call(&a, &D, longest));
        assert!(past_any_call(&a, &D, longest + 1));
        a.max_duration_s = Some(60);
        assert!(past_any_call(&a, &D, (30 + 60 + 60 + 60) * 1000 + 1), "its own cap");
    }

    #[test]
    fn asking_a_carrier_that_cannot_answer_backs_off_to_a_minute() {
        let secs: Vec<u64> = (1..=9).map(|n| ask_again_after(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn ringing_is_overdue_only_after_the_ring_timeout_and_the_grace() {
        assert!(!is_overdue(&attempt(CallStatus::Ringing, 0), &D, 90_000));
        assert!(is_overdue(&attempt(CallStatus::Ringing, 0), &D, 90_001));
        assert!(is_overdue(&attempt(CallStatus::Dialing, 0), &D, 90_001));
    }

    #[test]
    fn a_live_call_is_overdue_once_its_stream_ended_quietly_or_past_the_carriers_limit() {
        let mut a = attempt(CallStatus::InProgress, 0);
        a.answered_at = Some(0);
        assert!(!is_overdue(&a, &D, 600_000), "talking for ten minutes is fine");
        a.stream_ended = true;
        assert!(!is_overdue(&a, &D, 60_000), "the final callback may be in flight");
        assert!(is_overdue(&a, &D, 60_001));
        a.stream_ended = false;
        a.max_duration_s = Some(20);
        assert!(!is_overdue(&a, &D, 140_000));
        assert!(is_overdue(&a, &D, 140_001), "cap + the carrier's minute + grace");
    }

    #[test]
    fn finished_and_queued_calls_are_never_overdue() {
        for s in [CallStatus::Queued, CallStatus::Completed, CallStatus::Busy] {
            assert!(!is_overdue(&attempt(s, 0), &D, i64::MAX / 2));
        }
    }
}
