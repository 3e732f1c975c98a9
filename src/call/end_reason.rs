//! Why a call ended: the metric label, the close code the carrier's socket gets, and whether
//! the caller is owed the apology (Twilio's TwiML says it; Telnyx is told to speak it).

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
    EndCallTool,
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
            EndReason::EndCallTool => "end_call",
            EndReason::Shutdown => "shutdown",
        }
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
        )
    }

    /// Close code and reason for the carrier socket, or `None` when it is already gone.
    pub fn carrier_close(&self, too_large: bool) -> (Option<u16>, &'static str) {
        if too_large {
            return (Some(1009), "message too big");
        }
        match self {
            EndReason::CarrierLost => (None, ""),
            EndReason::CarrierStopped => (Some(1000), "stream stopped"),
            EndReason::EndCallTool => (Some(1000), "call ended"),
            EndReason::Shutdown => (Some(1001), "server shutting down"),
            EndReason::NoStart | EndReason::Unauthorized => (Some(1008), "policy violation"),
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
}
