//! What an attempt's end means for the call, decided once, in Rust: the carrier's final status
//! and the bridge's reason for ending the stream (if a stream ran) give the call's status, its
//! `end_reason` and whether the attempt may be retried. A call the AI failed is never
//! `completed`: it is `failed` with the reason, retried like `no_answer` (contract, "Additions").
//! Pure.

/// True for `answered_by` values (the vocabulary the store keeps: Twilio's `AnsweredBy`, and
/// Telnyx's verdicts mapped to it) that mean a machine or fax answered.
pub fn is_machine(answered_by: &str) -> bool {
    answered_by.starts_with("machine") || answered_by == "fax"
}

use super::status::CallStatus;

/// The stream reasons that mean the AI failed the callee (they heard at most the apology).
pub const AI_FAILURES: [&str; 4] = ["model_unreachable", "model_lost", "model_error", "stream_never_started"];

/// The outcome of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub status: CallStatus,
    pub end_reason: &'static str,
    /// Another attempt may be made while attempts remain.
    pub retryable: bool,
}

/// The outcome of an attempt the carrier reports as `reported` (a terminal status), given the
/// bridge's reason for ending its stream, if it ran one.
pub fn attempt_outcome(reported: CallStatus, stream_end: Option<&str>) -> Outcome {
    let out = |status, end_reason, retryable| Outcome { status, end_reason, retryable };
    match (reported, stream_end) {
        (CallStatus::Completed, Some(r)) if AI_FAILURES.contains(&r) => out(CallStatus::Failed, known(r), true),
        (CallStatus::Completed, Some("transferred")) => out(CallStatus::Transferred, "transferred", false),
        // The carrier refused the transfer: the caller heard the apology; not dialled again.
        (CallStatus::Completed, Some("transfer_failed")) => out(CallStatus::Failed, "transfer_failed", false),
        (CallStatus::Completed, Some(r)) => out(CallStatus::Completed, known(r), false),
        (CallStatus::Completed, None) => out(CallStatus::Completed, "caller_hung_up", false),
        (CallStatus::Voicemail, Some(_)) => out(CallStatus::Voicemail, "voicemail_left", false),
        (CallStatus::Voicemail, None) => out(CallStatus::Voicemail, "machine_hung_up", false),
        (CallStatus::Busy, _) => out(CallStatus::Busy, "busy", true),
        (CallStatus::NoAnswer, _) => out(CallStatus::NoAnswer, "no_answer", true),
        (CallStatus::Canceled, _) => out(CallStatus::Canceled, "canceled", false),
        (CallStatus::Expired, _) => out(CallStatus::Expired, "expired", false),
        (CallStatus::Failed, Some(r)) if AI_FAILURES.contains(&r) => out(CallStatus::Failed, known(r), true),
        (status, _) => out(status, "dial_failed", false),
    }
}

/// The `&'static` spelling of a stream reason (the codes `call::EndReason` writes).
fn known(reason: &str) -> &'static str {
    const CODES: [&str; 16] = [
        "caller_hung_up",
        "end_call",
        "canceled",
        "carrier_idle",
        "carrier_too_slow",
        "shutdown",
        "unauthorized",
        "model_unreachable",
        "model_lost",
        "model_error",
        "stream_never_started",
        "voicemail_left",
        "max_duration",
        "max_cost",
        "transferred",
        "transfer_failed",
    ];
    CODES.into_iter().find(|c| *c == reason).unwrap_or("caller_hung_up")
}

#[cfg(test)]
mod tests {
    use super::*;
    use CallStatus::*;

    #[test]
    fn a_call_the_ai_failed_is_failed_and_retryable_never_completed() {
        for r in AI_FAILURES {
            let o = attempt_outcome(Completed, Some(r));
            assert_eq!((o.status, o.end_reason, o.retryable), (Failed, r, true), "{r}");
        }
        assert_eq!(
            attempt_outcome(Completed, Some("end_call")),
            Outcome { status: Completed, end_reason: "end_call", retryable: false }
        );
        assert_eq!(attempt_outcome(Completed, Some("caller_hung_up")).status, Completed);
        assert_eq!(
            attempt_outcome(Completed, Some("transferred")),
            Outcome { status: Transferred, end_reason: "transferred", retryable: false },
            "the call ends when the caller leaves the human: transferred"
        );
        assert_eq!(
            attempt_outcome(Completed, Some("transfer_failed")),
            Outcome { status: Failed, end_reason: "transfer_failed", retryable: false }
        );
        assert_eq!(
            attempt_outcome(Completed, None).end_reason,
            "caller_hung_up",
            "no stream reason: the caller hung up"
        );
    }

    #[test]
    fn carrier_outcomes_keep_their_meaning() {
        assert_eq!(attempt_outcome(Busy, None), Outcome { status: Busy, end_reason: "busy", retryable: true });
        assert_eq!(attempt_outcome(NoAnswer, None).end_reason, "no_answer");
        assert_eq!(
            attempt_outcome(Failed, None),
            Outcome { status: Failed, end_reason: "dial_failed", retryable: false }
        );
        assert_eq!(attempt_outcome(Voicemail, Some("end_call")).end_reason, "voicemail_left");
        assert_eq!(attempt_outcome(Voicemail, None).end_reason, "machine_hung_up");
        assert_eq!(attempt_outcome(Canceled, None).end_reason, "canceled");
        assert_eq!(attempt_outcome(Expired, None).end_reason, "expired");
    }
}
