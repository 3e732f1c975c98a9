//! How a transfer ended and what follows, pure: the carrier's word for the human's leg (Twilio's
//! `DialCallStatus`, Telnyx's leg B events) becomes answered or not; not answered, the caller
//! comes back to the AI or hears the message and the call ends. A call is `transferred` only
//! when the human answered.

/// How the human's leg ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialled {
    Answered,
    NotAnswered(Unanswered),
    /// The caller hung up while the human's phone rang: there is no one to come back.
    CallerGone,
}

/// Why the human did not take the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    NoAnswer,
    Busy,
    Failed,
}

impl Unanswered {
    pub fn as_str(self) -> &'static str {
        match self {
            Unanswered::NoAnswer => "no_answer",
            Unanswered::Busy => "busy",
            Unanswered::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Unanswered> {
        match s {
            "no_answer" => Some(Unanswered::NoAnswer),
            "busy" => Some(Unanswered::Busy),
            "failed" => Some(Unanswered::Failed),
            _ => None,
        }
    }

    /// What the AI is told when the caller comes back to it.
    pub fn tell_model(self, to: &str) -> String {
        let why = match self {
            Unanswered::NoAnswer => "nobody answered",
            Unanswered::Busy => "the line was busy",
            Unanswered::Failed => "the call could not be connected",
        };
        format!(
            "You tried to transfer the caller to {to}, but {why}. The caller is back with you now. Tell them \
             briefly that the transfer did not go through, and offer to take a message or arrange a call-back."
        )
    }
}

/// Twilio's `DialCallStatus` (the `<Dial action>` callback).
pub fn twilio_dial(status: &str) -> Dialled {
    match status {
        "completed" | "answered" => Dialled::Answered,
        "busy" => Dialled::NotAnswered(Unanswered::Busy),
        "no-answer" => Dialled::NotAnswered(Unanswered::NoAnswer),
        "canceled" => Dialled::CallerGone,
        _ => Dialled::NotAnswered(Unanswered::Failed),
    }
}

/// Telnyx's `hangup_cause` of a leg B that ended without being answered.
pub fn telnyx_unanswered(cause: &str) -> Unanswered {
    match cause {
        "user_busy" | "busy" => Unanswered::Busy,
        "timeout" | "no_answer" | "originator_cancel" => Unanswered::NoAnswer,
        _ => Unanswered::Failed,
    }
}

/// What follows a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterTransfer {
    /// The human has the caller: the call ends `transferred` (when they hang up).
    Transferred,
    /// The caller comes back to the AI, which is told why.
    Return(Unanswered),
    /// The caller hears the message, then the call ends `transfer_failed`.
    Message(Unanswered),
    /// Nobody is left on the line: the call ends as the caller hung up.
    Ended,
}

/// `message`: the target's `on_no_answer` is `message` (else the caller returns).
pub fn after(dialled: Dialled, message: bool) -> AfterTransfer {
    match dialled {
        Dialled::Answered => AfterTransfer::Transferred,
        Dialled::CallerGone => AfterTransfer::Ended,
        Dialled::NotAnswered(why) if message => AfterTransfer::Message(why),
        Dialled::NotAnswered(why) => AfterTransfer::Return(why),
    }
}

/// What the caller hears when a transfer fails and the target gave no `message`.
pub const DEFAULT_MESSAGE: &str =
    "Sorry, no one could take your call right now. We will get back to you as soon as we can. Goodbye.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_answered_leg_is_a_transfer() {
        assert_eq!(after(twilio_dial("completed"), false), AfterTransfer::Transferred);
        assert_eq!(after(twilio_dial("answered"), true), AfterTransfer::Transferred);
        assert_eq!(after(twilio_dial("no-answer"), false), AfterTransfer::Return(Unanswered::NoAnswer));
        assert_eq!(after(twilio_dial("busy"), true), AfterTransfer::Message(Unanswered::Busy));
        assert_eq!(after(twilio_dial("failed"), false), AfterTransfer::Return(Unanswered::Failed));
        assert_eq!(after(twilio_dial("something-new"), false), AfterTransfer::Return(Unanswered::Failed));
        assert_eq!(after(twilio_dial("canceled"), false), AfterTransfer::Ended);
        assert_eq!(telnyx_unanswered("timeout"), Unanswered::NoAnswer);
        assert_eq!(telnyx_unanswered("user_busy"), Unanswered::Busy);
        assert_eq!(telnyx_unanswered("call_rejected"), Unanswered::Failed);
        for u in [Unanswered::NoAnswer, Unanswered::Busy, Unanswered::Failed] {
            assert_eq!(Unanswered::parse(u.as_str()), Some(u));
            assert!(u.tell_model("+15550001111").contains("+15550001111"));
        }
    }
}
