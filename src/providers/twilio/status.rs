//! Twilio call-progress callbacks (protocols.md §2.5): the form fields that matter, mapped to the
//! contract's statuses. `AnsweredBy` machine results make the outcome `voicemail`. Pure.

use crate::lifecycle::status::CallStatus;

/// One status callback, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCallback {
    pub call_sid: String,
    pub status: CallStatus,
    /// Twilio's own order of events; requests may arrive out of order.
    pub sequence: Option<u64>,
    pub answered_by: Option<String>,
    pub duration_s: Option<u64>,
    pub sip_code: Option<u16>,
}

/// Why a callback could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    #[error("missing field {0}")]
    Missing(&'static str),
    #[error("unknown CallStatus {0:?}")]
    UnknownStatus(String),
}

/// Parses the (already signature-checked) form body.
pub fn parse(params: &[(String, String)]) -> Result<StatusCallback, StatusError> {
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let call_sid = get("CallSid").filter(|s| !s.is_empty()).ok_or(StatusError::Missing("CallSid"))?;
    let raw = get("CallStatus").ok_or(StatusError::Missing("CallStatus"))?;
    let answered_by = get("AnsweredBy").map(str::to_string);
    let machine = answered_by.as_deref().is_some_and(crate::lifecycle::outcome::is_machine);
    let status = match raw {
        "queued" | "initiated" => CallStatus::Dialing,
        "ringing" => CallStatus::Ringing,
        "in-progress" => CallStatus::InProgress,
        "completed" if machine => CallStatus::Voicemail,
        "completed" => CallStatus::Completed,
        "busy" => CallStatus::Busy,
        "no-answer" => CallStatus::NoAnswer,
        "failed" => CallStatus::Failed,
        "canceled" => CallStatus::Canceled,
        other => return Err(StatusError::UnknownStatus(other.to_string())),
    };
    Ok(StatusCallback {
        call_sid: call_sid.to_string(),
        status,
        sequence: get("SequenceNumber").and_then(|s| s.parse().ok()),
        answered_by,
        duration_s: get("CallDuration").and_then(|s| s.parse().ok()),
        sip_code: get("SipResponseCode").and_then(|s| s.parse().ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn every_twilio_status_maps_to_the_contract() {
        for (twilio, ours) in [
            ("queued", CallStatus::Dialing),
            ("initiated", CallStatus::Dialing),
            ("ringing", CallStatus::Ringing),
            ("in-progress", CallStatus::InProgress),
            ("completed", CallStatus::Completed),
            ("busy", CallStatus::Busy),
            ("no-answer", CallStatus::NoAnswer),
            ("failed", CallStatus::Failed),
            ("canceled", CallStatus::Canceled),
        ] {
            let cb = parse(&form(&[("CallSid", "CA1"), ("CallStatus", twilio)])).unwrap();
            assert_eq!(cb.status, ours, "{twilio}");
        }
    }

    #[test]
    fn documented_example_parses_with_sequence_and_duration() {
        let cb = parse(&form(&[
            ("AccountSid", "AC1"),
            ("CallSid", "CA9"),
            ("CallStatus", "completed"),
            ("CallDuration", "42"),
            ("SipResponseCode", "200"),
            ("SequenceNumber", "3"),
        ]))
        .unwrap();
        assert_eq!((cb.sequence, cb.duration_s, cb.sip_code), (Some(3), Some(42), Some(200)));
    }

    #[test]
    fn machine_answers_end_as_voicemail_and_bad_forms_are_errors() {
        let cb = parse(&form(&[("CallSid", "CA1"), ("CallStatus", "completed"), ("AnsweredBy", "machine_end_beep")]))
            .unwrap();
        assert_eq!(cb.status, CallStatus::Voicemail);
        let human = parse(&form(&[("CallSid", "CA1"), ("CallStatus", "completed"), ("AnsweredBy", "human")])).unwrap();
        assert_eq!(human.status, CallStatus::Completed);
        assert_eq!(parse(&form(&[("CallStatus", "ringing")])).unwrap_err(), StatusError::Missing("CallSid"));
        assert_eq!(
            parse(&form(&[("CallSid", "CA1"), ("CallStatus", "teleported")])).unwrap_err(),
            StatusError::UnknownStatus("teleported".into())
        );
    }
}
