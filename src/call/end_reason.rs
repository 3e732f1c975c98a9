//! Why a call ended: the metric label, the close code the carrier's socket gets, and whether
//! the caller is owed the apology (Twilio's TwiML says it; Telnyx is told to speak it).

/// Most a stream may send before its `start` (Twilio's `connected` + `start` take about 1 KiB,
/// Telnyx's less): a socket that has not proven its call cannot make the server hold more.
pub const MAX_PRESTART_BYTES: usize = 8 * 1024;

/// A carrier frame the WebSocket layer refused; it decides the close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// Over the message size limit: 1009.
    TooLarge,
    /// A text frame that is not UTF-8: 1007 (RFC 6455 §7.4.1).
    InvalidUtf8,
}

/// Why a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    CarrierStopped,
    CarrierLost,
    CarrierTooSlow,
    /// The stream stayed open but sent nothing for too long.
    CarrierIdle,
    ModelLost,
    ModelFatal(String),
    ModelConnectFailed(String),
    NoStart,
    Unauthorized,
    /// The stream sent more than [`MAX_PRESTART_BYTES`] before its `start`.
    PrestartFlood,
    /// The stream proved its call, but every live-call slot is taken (or the server drains).
    NoCapacity,
    EndCallTool,
    /// Hung up through the API (`POST /v1/calls/{id}/cancel`).
    Canceled,
    /// The call reached its duration cap: the AI said goodbye and hung up.
    MaxDuration,
    /// The call reached its `max_cost_usd`: the AI said goodbye and hung up.
    MaxCost,
    /// The AI handed the caller to a human: the carrier took the call over.
    Transferred,
    /// The AI asked for a transfer the carrier refused: the caller hears the apology.
    TransferFailed,
    Shutdown,
}

impl EndReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            EndReason::CarrierStopped => "carrier_stopped",
            EndReason::CarrierLost => "carrier_lost",
            EndReason::CarrierTooSlow => "carrier_too_slow",
            EndReason::CarrierIdle => "carrier_idle",
            EndReason::ModelLost => "model_lost",
            EndReason::ModelFatal(_) => "model_fatal",
            EndReason::ModelConnectFailed(_) => "model_connect_failed",
            EndReason::NoStart => "no_start",
            EndReason::Unauthorized => "unauthorized",
            EndReason::PrestartFlood => "prestart_flood",
            EndReason::NoCapacity => "no_capacity",
            EndReason::EndCallTool => "end_call",
            EndReason::Canceled => "canceled",
            EndReason::MaxDuration => "max_duration",
            EndReason::MaxCost => "max_cost",
            EndReason::Transferred => "transferred",
            EndReason::TransferFailed => "transfer_failed",
            EndReason::Shutdown => "shutdown",
        }
    }

    /// The contract's `end_reason` code for a stream that ended so (judged with the carrier's
    /// final status by `queue::outcome`).
    pub fn code(&self) -> &'static str {
        match self {
            EndReason::CarrierStopped | EndReason::CarrierLost => "caller_hung_up",
            EndReason::CarrierTooSlow => "carrier_too_slow",
            EndReason::CarrierIdle => "carrier_idle",
            EndReason::ModelLost => "model_lost",
            EndReason::ModelFatal(_) => "model_error",
            EndReason::ModelConnectFailed(_) => "model_unreachable",
            EndReason::NoStart => "stream_never_started",
            EndReason::Unauthorized | EndReason::PrestartFlood | EndReason::NoCapacity => "unauthorized",
            EndReason::EndCallTool => "end_call",
            EndReason::Canceled => "canceled",
            EndReason::MaxDuration => "max_duration",
            EndReason::MaxCost => "max_cost",
            EndReason::Transferred => "transferred",
            EndReason::TransferFailed => "transfer_failed",
            EndReason::Shutdown => "shutdown",
        }
    }

    /// Whether the call goes on at the carrier after the stream (the caller was handed over), so
    /// nothing ends it by command.
    pub fn hands_over(&self) -> bool {
        matches!(self, EndReason::Transferred)
    }

    /// Whether the caller is still there and the AI failed them, so they are owed the apology
    /// before the call ends (not when they hung up, nor when the AI ended the call itself).
    pub fn apologizes(&self) -> bool {
        matches!(
            self,
            EndReason::ModelLost
                | EndReason::ModelFatal(_)
                | EndReason::ModelConnectFailed(_)
                | EndReason::CarrierTooSlow
                | EndReason::CarrierIdle
                | EndReason::Shutdown
                | EndReason::TransferFailed
        )
    }

    /// Close code and reason for the carrier socket, or `None` when it is already gone.
    pub fn carrier_close(&self, violation: Option<Violation>) -> (Option<u16>, &'static str) {
        match violation {
            Some(Violation::TooLarge) => return (Some(1009), "message too big"),
            Some(Violation::InvalidUtf8) => return (Some(1007), "invalid UTF-8"),
            None => {}
        }
        match self {
            EndReason::CarrierLost => (None, ""),
            EndReason::CarrierStopped => (Some(1000), "stream stopped"),
            EndReason::EndCallTool => (Some(1000), "call ended"),
            EndReason::Canceled => (Some(1000), "call canceled"),
            EndReason::MaxDuration => (Some(1000), "call duration cap reached"),
            EndReason::MaxCost => (Some(1000), "call cost cap reached"),
            EndReason::Transferred => (Some(1000), "call transferred"),
            EndReason::TransferFailed => (Some(1011), "transfer failed"),
            EndReason::Shutdown => (Some(1001), "server shutting down"),
            EndReason::NoStart | EndReason::Unauthorized => (Some(1008), "policy violation"),
            EndReason::PrestartFlood => (Some(1008), "too much before start"),
            EndReason::NoCapacity => (Some(1013), "try again later"),
            EndReason::CarrierTooSlow => (Some(1011), "carrier not reading"),
            EndReason::CarrierIdle => (Some(1011), "no media from the carrier"),
            EndReason::ModelLost | EndReason::ModelFatal(_) | EndReason::ModelConnectFailed(_) => {
                (Some(1011), "model unavailable")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_caller_the_ai_failed_is_owed_the_apology() {
        let failed = [
            EndReason::ModelLost,
            EndReason::ModelFatal("x".into()),
            EndReason::ModelConnectFailed("x".into()),
            EndReason::CarrierTooSlow,
            EndReason::CarrierIdle,
            EndReason::Shutdown,
        ];
        assert!(failed.iter().all(EndReason::apologizes));
        let gone_or_done =
            [EndReason::CarrierStopped, EndReason::CarrierLost, EndReason::EndCallTool, EndReason::NoStart];
        assert!(!gone_or_done.iter().any(EndReason::apologizes));
    }

    #[test]
    fn a_refused_frame_decides_the_close_code() {
        assert_eq!(EndReason::CarrierLost.carrier_close(Some(Violation::TooLarge)).0, Some(1009));
        assert_eq!(EndReason::CarrierLost.carrier_close(Some(Violation::InvalidUtf8)).0, Some(1007));
        assert_eq!(EndReason::CarrierLost.carrier_close(None).0, None);
        assert_eq!(EndReason::PrestartFlood.carrier_close(None).0, Some(1008));
        assert_eq!(EndReason::NoCapacity.carrier_close(None).0, Some(1013));
    }
}
