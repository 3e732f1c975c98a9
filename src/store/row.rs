//! Rows into the store's types, written once for every backend: both select the same columns in
//! the same order (the SQL next to each call names them), and [`Cells`] reads a column of either.

use sqlx::Row;

use super::calls::TranscriptLine;
use super::events::PendingEvent;
use super::outbound::{Attempt, CallView, Orphan};
use crate::lifecycle::status::CallStatus;

/// Reads column `i` of a row as one of the types the store keeps.
pub(crate) trait Cells {
    fn text(&self, i: usize) -> Result<String, sqlx::Error>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, i: usize) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, sqlx::Error>;
    fn flag(&self, i: usize) -> Result<bool, sqlx::Error>;
    fn opt_real(&self, i: usize) -> Result<Option<f64>, sqlx::Error>;

    /// A status column (an unknown one reads as `failed`, never as a panic).
    fn status(&self, i: usize) -> Result<CallStatus, sqlx::Error> {
        Ok(CallStatus::parse(&self.text(i)?).unwrap_or(CallStatus::Failed))
    }
}

macro_rules! cells {
    ($row:ty) => {
        impl Cells for $row {
            fn text(&self, i: usize) -> Result<String, sqlx::Error> {
                self.try_get(i)
            }
            fn opt_text(&self, i: usize) -> Result<Option<String>, sqlx::Error> {
                self.try_get(i)
            }
            fn int(&self, i: usize) -> Result<i64, sqlx::Error> {
                self.try_get(i)
            }
            fn opt_int(&self, i: usize) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(i)
            }
            fn flag(&self, i: usize) -> Result<bool, sqlx::Error> {
                self.try_get(i)
            }
            fn opt_real(&self, i: usize) -> Result<Option<f64>, sqlx::Error> {
                self.try_get(i)
            }
        }
    };
}
cells!(sqlx::sqlite::SqliteRow);
cells!(sqlx::postgres::PgRow);

/// Maps every row with `f`.
pub(crate) fn all<R: Cells, T>(
    rows: &[R],
    f: impl Fn(&R) -> Result<T, sqlx::Error>,
) -> Result<Vec<T>, super::StoreError> {
    Ok(rows.iter().map(f).collect::<Result<_, _>>()?)
}

/// `call_view` / `list_calls`: the columns of `outbound::VIEW_ONE`.
pub(crate) fn view(r: &impl Cells) -> Result<CallView, sqlx::Error> {
    Ok(CallView {
        id: r.text(0)?,
        direction: r.text(1)?,
        provider: r.text(2)?,
        status: r.status(3)?,
        to_number: r.text(4)?,
        from_number: r.opt_text(5)?,
        instructions: r.opt_text(6)?,
        greeting: r.opt_text(7)?,
        voice: r.opt_text(8)?,
        metadata: r.text(9)?,
        dedupe_key: r.opt_text(10)?,
        call_window: r.opt_text(11)?,
        webhook_url: r.opt_text(12)?,
        provider_call_id: r.opt_text(13)?,
        last_error: r.opt_text(14)?,
        created_at: r.int(15)?,
        updated_at: r.int(16)?,
        priority: r.opt_int(17)?,
        attempts: r.int(18)?,
        max_attempts: r.opt_int(19)?,
        next_attempt_at: r.opt_int(20)?,
        job_id: r.opt_int(21)?,
        machine_detection: r.flag(22)?,
        answered_by: r.opt_text(23)?,
        voicemail_message: r.opt_text(24)?,
        expires_at: r.opt_int(25)?,
        reschedules: r.int(26)?,
        end_reason: r.opt_text(27)?,
        answered_at: r.opt_int(28)?,
        ended_at: r.opt_int(29)?,
        campaign: r.opt_text(30)?,
        model: r.opt_text(31)?,
        usage: crate::model::Usage {
            input_audio_tokens: r.int(32)? as u64,
            output_audio_tokens: r.int(33)? as u64,
            input_text_tokens: r.int(34)? as u64,
            output_text_tokens: r.int(35)? as u64,
            cached_input_tokens: r.int(36)? as u64,
            live_seconds: r.opt_real(41)?.unwrap_or(0.0),
        },
        max_duration_s: r.opt_int(37)?,
        max_cost_usd: r.opt_real(38)?,
        carrier_seconds: r.opt_int(39)?,
        reasoning_effort: r.opt_text(40)?,
        model_api: r.opt_text(42)?,
        outcome_schema: r.opt_text(43)?,
        outcome: r.opt_text(44)?,
        tools: r.opt_text(45)?,
        transfer_to: r.opt_text(46)?,
        transferred_to: r.opt_text(47)?,
        agent_id: r.opt_text(48)?,
        agent_version: r.opt_int(49)?,
        variables: r.opt_text(50)?,
        analysis: r.opt_text(51)?,
        dtmf_out: r.flag(52)?,
        record: r.flag(53)?,
        recording_state: r.opt_text(54)?,
        recording_bytes: r.opt_int(55)?,
        recording_error: r.opt_text(56)?,
    })
}

/// `open_attempts`: id, status, attempt, provider_call_id, attempt_started_at, provider,
/// to_number, from_number, updated_at, answered_at, stream_end IS NOT NULL, max_duration_s.
pub(crate) fn attempt(r: &impl Cells) -> Result<Attempt, sqlx::Error> {
    Ok(Attempt {
        call_id: r.text(0)?,
        status: r.status(1)?,
        attempt: r.int(2)?,
        provider_call_id: r.opt_text(3)?,
        started_at: r.opt_int(4)?,
        provider: r.text(5)?,
        to_number: r.text(6)?,
        from_number: r.opt_text(7)?,
        updated_at: r.int(8)?,
        answered_at: r.opt_int(9)?,
        stream_ended: r.flag(10)?,
        max_duration_s: r.opt_int(11)?,
    })
}

/// `orphans`: j.id, then the attempt's columns as far as reconciliation needs them (call id,
/// status, attempt, provider_call_id, attempt_started_at, provider, to_number, from_number).
pub(crate) fn orphan(r: &impl Cells) -> Result<Orphan, sqlx::Error> {
    Ok(Orphan {
        job_id: r.int(0)?,
        attempt: Attempt {
            call_id: r.text(1)?,
            status: r.status(2)?,
            attempt: r.int(3)?,
            provider_call_id: r.opt_text(4)?,
            started_at: r.opt_int(5)?,
            provider: r.text(6)?,
            to_number: r.text(7)?,
            from_number: r.opt_text(8)?,
            updated_at: 0,
            answered_at: None,
            stream_ended: false,
            max_duration_s: None,
        },
        uncounted_releases: r.int(9)?,
    })
}

/// `due_events`: id, call_id, url, event, status, at, attempts, event id.
pub(crate) fn pending_event(r: &impl Cells) -> Result<PendingEvent, sqlx::Error> {
    Ok(PendingEvent {
        id: r.int(0)?,
        call_id: r.text(1)?,
        url: r.text(2)?,
        event: r.text(3)?,
        status: r.text(4)?,
        at: r.int(5)?,
        attempts: r.int(6)?,
        event_id: r.text(7)?,
    })
}

/// `transcript`: speaker, text, at_ms, heard_ms.
pub(crate) fn transcript_line(r: &impl Cells) -> Result<TranscriptLine, sqlx::Error> {
    Ok(TranscriptLine { speaker: r.text(0)?, text: r.text(1)?, at_ms: r.int(2)?, heard_ms: r.opt_int(3)? })
}

/// `call_events`: event, state, last_error.
pub(crate) fn event_state(r: &impl Cells) -> Result<(String, String, Option<String>), sqlx::Error> {
    Ok((r.text(0)?, r.text(1)?, r.opt_text(2)?))
}

/// An event of a call's log ([`sql::EVENT_LOG`](super::sql::EVENT_LOG)), without its attempts.
pub(crate) fn event_record(r: &impl Cells) -> Result<super::events::EventRecord, sqlx::Error> {
    Ok(super::events::EventRecord {
        id: r.int(0)?,
        event_id: r.text(1)?,
        event: r.text(2)?,
        status: r.text(3)?,
        url: r.text(4)?,
        at: r.int(5)?,
        state: r.text(6)?,
        attempts: r.int(7)?,
        next_at: r.int(8)?,
        last_error: r.opt_text(9)?,
        deliveries: Vec::new(),
    })
}

/// A delivery attempt ([`sql::EVENT_LOG_ATTEMPTS`](super::sql::EVENT_LOG_ATTEMPTS)) and its event's row id.
pub(crate) fn delivery_attempt(r: &impl Cells) -> Result<(i64, super::events::DeliveryAttempt), sqlx::Error> {
    Ok((r.int(0)?, super::events::DeliveryAttempt { at: r.int(1)?, result: r.text(2)?, error: r.opt_text(3)? }))
}

/// A history row (status, at, detail); `None` for a status this build does not know.
pub(crate) fn history(r: &impl Cells) -> Option<(CallStatus, crate::lifecycle::Millis, Option<String>)> {
    Some((CallStatus::parse(&r.text(0).ok()?)?, r.int(1).ok()?, r.opt_text(2).ok()?))
}
