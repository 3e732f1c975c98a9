//! The contract's call statuses and the only way they change: forward. A late or duplicated
//! provider callback (`ringing` after `completed`) changes nothing. Pure.

use std::fmt;

/// A call's status (contract.md "Call statuses").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallStatus {
    Queued,
    Dialing,
    Ringing,
    InProgress,
    Completed,
    NoAnswer,
    Busy,
    Failed,
    Canceled,
    /// A machine answered.
    Voicemail,
    /// Its `expires_at` passed before a dial started.
    Expired,
    /// The AI handed the caller to a human (`transfer_call`).
    Transferred,
}

impl CallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Queued => "queued",
            CallStatus::Dialing => "dialing",
            CallStatus::Ringing => "ringing",
            CallStatus::InProgress => "in_progress",
            CallStatus::Completed => "completed",
            CallStatus::NoAnswer => "no_answer",
            CallStatus::Busy => "busy",
            CallStatus::Failed => "failed",
            CallStatus::Canceled => "canceled",
            CallStatus::Voicemail => "voicemail",
            CallStatus::Expired => "expired",
            CallStatus::Transferred => "transferred",
        }
    }

    pub fn parse(s: &str) -> Option<CallStatus> {
        [
            CallStatus::Queued,
            CallStatus::Dialing,
            CallStatus::Ringing,
            CallStatus::InProgress,
            CallStatus::Completed,
            CallStatus::NoAnswer,
            CallStatus::Busy,
            CallStatus::Failed,
            CallStatus::Canceled,
            CallStatus::Voicemail,
            CallStatus::Expired,
            CallStatus::Transferred,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// No provider event moves a call out of these.
    pub fn is_terminal(self) -> bool {
        self.rank() == 4
    }

    /// The state of the dial job of a call that ended with this status: a call that reached
    /// someone is `done`, anything else `failed`.
    pub fn job_state(self) -> &'static str {
        if matches!(self, CallStatus::Completed | CallStatus::Voicemail | CallStatus::Transferred) {
            "done"
        } else {
            "failed"
        }
    }

    fn rank(self) -> u8 {
        match self {
            CallStatus::Queued => 0,
            CallStatus::Dialing => 1,
            CallStatus::Ringing => 2,
            CallStatus::InProgress => 3,
            _ => 4,
        }
    }

    /// The status after a provider reports `incoming`, or `None` when it changes nothing
    /// (a duplicate, a late event, anything after a terminal status).
    pub fn advance(self, incoming: CallStatus) -> Option<CallStatus> {
        (!self.is_terminal() && incoming.rank() > self.rank()).then_some(incoming)
    }
}

impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CallStatus::*;

    #[test]
    fn statuses_only_move_forward() {
        assert_eq!(Queued.advance(Dialing), Some(Dialing));
        assert_eq!(Dialing.advance(InProgress), Some(InProgress), "a skipped ringing is fine");
        assert_eq!(InProgress.advance(Ringing), None, "late ringing");
        assert_eq!(Ringing.advance(Ringing), None, "duplicate");
        assert_eq!(Completed.advance(Ringing), None);
        assert_eq!(Completed.advance(Failed), None, "terminal is terminal");
        assert_eq!(Ringing.advance(Busy), Some(Busy));
        for s in [Completed, NoAnswer, Busy, Failed, Canceled, Voicemail] {
            assert!(s.is_terminal());
            assert_eq!(CallStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(CallStatus::parse("in-progress"), None, "contract spelling only");
    }
}
