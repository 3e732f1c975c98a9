//! The statements both backends run, written once (`$n` placeholders, which SQLite takes as
//! well): wherever a rule of the domain is in SQL (which statuses are live, what a `PATCH` may
//! change, when a job is spent, what retention keeps), it is here, not in two dialects. What
//! differs between the backends — locking (`FOR UPDATE`, `SKIP LOCKED`), upserts, `MAX` vs
//! `GREATEST`, the claim itself — and trivial one-line reads stay with each backend.

/// Renews the lease of job `$1` held by `$2` until `$3`.
pub(crate) const HEARTBEAT: &str =
    "UPDATE jobs SET lease_until = $3 WHERE id = $1 AND state = 'running' AND lease_owner = $2";

/// Call `$1`, if still queued, waits because of `$2` ([`super::waiting_note`]).
pub(crate) const NOTE_WAITING: &str = "UPDATE calls SET last_error = $2 WHERE id = $1 AND status = 'queued'";

/// Attempt `$2` of call `$1` starts at `$3`: the previous attempt's carrier id, verdict and
/// stream end no longer hold, nor does a note on why it waited (a queued call's `last_error` is
/// only ever that note: a requeued attempt's failure is in its history).
pub(crate) const START_ATTEMPT: &str =
    "UPDATE calls SET stream_end = NULL, attempt = $2, attempt_started_at = $3, provider_call_id = NULL,
     answered_by = NULL, last_error = NULL
     WHERE id = $1";

/// Job `$1` held by `$2` is done at `$3`.
pub(crate) const COMPLETE: &str =
    "UPDATE jobs SET state = 'done', finished_at = $3, lease_owner = NULL, lease_until = NULL
     WHERE id = $1 AND state = 'running' AND lease_owner = $2";

/// 1-based position of queued job `$1` in claim order.
pub(crate) const QUEUE_POSITION: &str = "
SELECT 1 + (SELECT COUNT(*) FROM jobs o WHERE o.state = 'queued' AND (
        o.priority > me.priority
        OR (o.priority = me.priority AND (o.run_at < me.run_at OR (o.run_at = me.run_at AND o.id < me.id)))))
FROM jobs me WHERE me.id = $1 AND me.state = 'queued'";

/// Whether provider `$1`'s event (or token) `$2` was seen already.
pub(crate) const SIGHTED: &str = "SELECT EXISTS (SELECT 1 FROM webhook_events WHERE provider = $1 AND event_id = $2)";

/// When the next queued job not yet due at `$1` falls due (a paused campaign's wait for its
/// resume, which wakes the dialler itself).
pub(crate) const NEXT_RUN_AT: &str = "
SELECT MIN(j.run_at) FROM jobs j
WHERE j.state = 'queued' AND j.run_at > $1
  AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.id = j.call_id
                    AND c.campaign IN (SELECT name FROM campaigns WHERE paused))";

/// A dial on carrier account `$1` at `$2` (µs), paced by `$3` (interval, µs) and `$4`
/// (tolerance, µs) — `lifecycle::pace::Pace::take` as one conditional upsert: the new TAT when
/// allowed, no row when not. (`CASE` rather than `MAX`/`GREATEST`: both dialects run it.)
pub(crate) const TAKE_DIAL: &str = "
INSERT INTO dial_pace (carrier, tat) VALUES ($1, $2 + $3)
ON CONFLICT (carrier) DO UPDATE
    SET tat = (CASE WHEN dial_pace.tat > $2 THEN dial_pace.tat ELSE $2 END) + $3
    WHERE (CASE WHEN dial_pace.tat > $2 THEN dial_pace.tat ELSE $2 END) - $2 <= $4
RETURNING tat";

/// Carrier account `$1`'s pacing TAT (µs).
pub(crate) const DIAL_TAT: &str = "SELECT tat FROM dial_pace WHERE carrier = $1";

/// A call record, first written by its stream or a carrier webhook (`$8`: created and updated at).
pub(crate) const INSERT_CALL: &str =
    "INSERT INTO calls (id, provider, direction, to_number, from_number, status, webhook_url, created_at, updated_at,
     provider_call_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)";

/// Adds a session's usage to call `$1` (served by model `$2`).
pub(crate) const ADD_USAGE: &str = "UPDATE calls SET model = $2, input_audio_tokens = input_audio_tokens + $3,
     output_audio_tokens = output_audio_tokens + $4, input_text_tokens = input_text_tokens + $5,
     output_text_tokens = output_text_tokens + $6, cached_input_tokens = cached_input_tokens + $7,
     live_seconds = live_seconds + $8
     WHERE id = $1";

/// A line in call `$1`'s history at `$2` saying `$3`, under its current status.
pub(crate) const NOTE_HISTORY: &str =
    "INSERT INTO call_status_history (call_id, status, at, detail) SELECT id, status, $2, $3 FROM calls WHERE id = $1";

/// One transcript line of call `$1`.
pub(crate) const INSERT_TRANSCRIPT_LINE: &str =
    "INSERT INTO transcripts (call_id, seq, speaker, text, at_ms, heard_ms) VALUES ($1, $2, $3, $4, $5, $6)";

/// Call `$1` is `$2` from `$3` (answered then, if that is its first `in_progress`).
pub(crate) const RECORD_STATUS: &str = "UPDATE calls SET status = $2, updated_at = $3,
     answered_at = CASE WHEN $2 = 'in_progress' THEN COALESCE(answered_at, $3) ELSE answered_at END
     WHERE id = $1";

/// Job `$1` queued again for `$2`, its attempt having failed with `$3`.
pub(crate) const REQUEUE_JOB: &str = "UPDATE jobs SET state = 'queued', run_at = $2, last_error = $3, lease_owner = NULL, lease_until = NULL WHERE id = $1";

/// Job `$1` ends as `$2` at `$3` with `$4`.
pub(crate) const FINISH_JOB: &str = "UPDATE jobs SET state = $2, finished_at = $3, last_error = $4, lease_owner = NULL, lease_until = NULL WHERE id = $1";

/// A new queued job (a new outbound call's dial job too); its id.
pub(crate) const ENQUEUE_JOB: &str =
    "INSERT INTO jobs (call_id, to_number, priority, run_at, state, max_attempts, created_at)
     VALUES ($1, $2, $3, $4, 'queued', $5, $6) RETURNING id";

/// Orphaned job `$1` back to the queue, or failed when its attempts are spent.
pub(crate) const REQUEUE_ORPHAN: &str = "UPDATE jobs SET
     state = CASE WHEN attempts < max_attempts THEN 'queued' ELSE 'failed' END,
     finished_at = CASE WHEN attempts < max_attempts THEN NULL ELSE $2 END,
     run_at = $2, lease_owner = NULL, lease_until = NULL
     WHERE id = $1 AND state = 'orphaned'";

/// Jobs done before `$1`, and failed or canceled before `$2`, go (retention).
pub(crate) const PRUNE_JOBS: &str = "DELETE FROM jobs WHERE (state = 'done' AND finished_at < $1)
     OR (state IN ('failed', 'canceled') AND finished_at < $2)";

/// Job `$1` ends its attempt by the failure rule (`store::failure_rule`).
pub(crate) const FAIL_JOB: &str =
    "UPDATE jobs SET state = $2, run_at = COALESCE($3, run_at), finished_at = $4, last_error = $5,
     lease_owner = NULL, lease_until = NULL
     WHERE id = $1";

/// A claimed job `$1` of owner `$2` goes back to the queue until `$3`, its attempt not counted.
pub(crate) const DEFER_CLAIMED: &str =
    "UPDATE jobs SET state = 'queued', run_at = $3, attempts = attempts - 1, lease_owner = NULL, lease_until = NULL
     WHERE id = $1 AND state = 'running' AND lease_owner = $2 RETURNING call_id";

/// The queued job of call `$1` is canceled at `$2`: the call expired.
pub(crate) const EXPIRE_JOB: &str = "UPDATE jobs SET state = 'canceled', finished_at = $2, last_error = 'expired'
     WHERE call_id = $1 AND state = 'queued'";

/// Campaign `$1` paused or not (`$2`) at `$3`.
pub(crate) const SET_CAMPAIGN_PAUSED: &str = "INSERT INTO campaigns (name, paused, updated_at) VALUES ($1, $2, $3)
     ON CONFLICT (name) DO UPDATE SET paused = $2, updated_at = $3";

/// The queued jobs of campaign `$1`'s calls are canceled at `$2`.
pub(crate) const CANCEL_CAMPAIGN_JOBS: &str =
    "UPDATE jobs SET state = 'canceled', finished_at = $2, last_error = 'campaign canceled'
     WHERE state = 'queued' AND call_id IN (SELECT id FROM calls WHERE campaign = $1 AND status = 'queued')
     RETURNING call_id";

/// Orphaned jobs with what reconciliation asks the carrier.
pub(crate) const ORPHANS: &str =
    "SELECT j.id, j.call_id, c.status, c.attempt, c.provider_call_id, c.attempt_started_at, c.provider,
     c.to_number, c.from_number, j.uncounted_releases
     FROM jobs j JOIN calls c ON c.id = j.call_id WHERE j.state = 'orphaned'";

/// Outbound attempts the carrier has not finished (dialling, ringing or live).
pub(crate) const OPEN_ATTEMPTS: &str =
    "SELECT id, status, attempt, provider_call_id, attempt_started_at, provider, to_number, from_number,
     updated_at, answered_at, stream_end IS NOT NULL, max_duration_s
     FROM calls WHERE direction = 'outbound' AND status IN ('dialing', 'ringing', 'in_progress')";

/// The settings a `PATCH` changes on queued call `$1` (`NULL`: unchanged; `$9`: the call window
/// is cleared).
pub(crate) const PATCH_CALL: &str =
    "UPDATE calls SET instructions = COALESCE($2, instructions), greeting = COALESCE($3, greeting),
     voice = COALESCE($4, voice), metadata = COALESCE($5, metadata),
     call_window = CASE WHEN $9 THEN NULL ELSE COALESCE($6, call_window) END,
     webhook_url = COALESCE($7, webhook_url), updated_at = $8
     WHERE id = $1";

/// The queue settings a `PATCH` changes on call `$1`'s queued job (`NULL`: unchanged).
pub(crate) const PATCH_JOB: &str =
    "UPDATE jobs SET priority = COALESCE($2, priority), max_attempts = COALESCE($3, max_attempts),
     run_at = COALESCE($4, run_at) WHERE id = $1";

/// Finished calls created before `$1` (a call whose recording is kept waits for the recordings
/// worker to delete it first).
macro_rules! prunable_calls {
    () => {
        "SELECT id FROM calls WHERE created_at < $1 AND status NOT IN ('queued', 'dialing', 'ringing', 'in_progress')
           AND (recording_state IS NULL OR recording_state NOT IN ('pending', 'stored'))"
    };
}

/// Retention: the prunable calls' history and transcripts, then the calls (in one transaction;
/// the last statement's count is the calls deleted).
pub(crate) const PRUNE_CALLS: [&str; 3] = [
    concat!("DELETE FROM call_status_history WHERE call_id IN (", prunable_calls!(), ")"),
    concat!("DELETE FROM transcripts WHERE call_id IN (", prunable_calls!(), ")"),
    concat!("DELETE FROM calls WHERE id IN (", prunable_calls!(), ")"),
];

/// Orphaned job `$1` is `$2`'s again, leased until `$3`.
pub(crate) const ADOPT_ORPHAN: &str =
    "UPDATE jobs SET state = 'running', lease_owner = $2, lease_until = $3 WHERE id = $1 AND state = 'orphaned'";

/// A call with dedupe key `$1` that still holds it (live, or ended within the window).
pub(crate) const DEDUPE_MATCH: &str = "SELECT id FROM calls WHERE dedupe_key = $1
     AND (status IN ('queued', 'dialing', 'ringing', 'in_progress') OR created_at >= $2)
     ORDER BY created_at DESC LIMIT 1";

/// A new outbound call, queued.
pub(crate) const INSERT_OUTBOUND_CALL: &str =
    "INSERT INTO calls (id, provider, direction, to_number, from_number, status, instructions, greeting, voice,
     metadata, dedupe_key, call_window, webhook_url, created_at, updated_at, machine_detection, voicemail_message,
     expires_at, campaign, max_duration_s, max_cost_usd, model, reasoning_effort, model_api, outcome_schema, tools, transfer_to)
     VALUES ($1, $2, 'outbound', $3, $4, 'queued', $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)";

/// An inbound call whose stream never started says so.
pub(crate) const NEVER_STARTED: &str = "UPDATE calls SET last_error = 'stream never started' WHERE id = $1";

/// Call `$1` ends for reason `$2` at `$3` (the first end keeps its time).
pub(crate) const FINISH_CALL: &str =
    "UPDATE calls SET end_reason = $2, ended_at = COALESCE(ended_at, $3) WHERE id = $1";

/// The carrier billed call `$1` another `$2` seconds.
pub(crate) const ADD_CARRIER_SECONDS: &str =
    "UPDATE calls SET carrier_seconds = COALESCE(carrier_seconds, 0) + $2 WHERE id = $1";

/// Call `$1` became `$2` at `$3` (`$4`: why, if known).
pub(crate) const INSERT_HISTORY: &str =
    "INSERT INTO call_status_history (call_id, status, at, detail) VALUES ($1, $2, $3, $4)";

/// Call `$1`, if still queued, is canceled at `$2`.
pub(crate) const CANCEL_QUEUED_CALL: &str =
    "UPDATE calls SET status = 'canceled', updated_at = $2 WHERE id = $1 AND status = 'queued'";

/// Call `$1` was canceled at `$2` through the API.
pub(crate) const CANCELED_BY_API: &str =
    "INSERT INTO call_status_history (call_id, status, at, detail) VALUES ($1, 'canceled', $2, 'by API')";

/// Who answered attempt `$2` of call `$1`: the first verdict for the attempt stands.
pub(crate) const RECORD_ANSWERED_BY: &str =
    "UPDATE calls SET answered_by = $3 WHERE id = $1 AND provider_call_id = $2 AND answered_by IS NULL";

/// Call `$1` is queued again at `$2`, because of `$3`.
pub(crate) const QUEUED_AGAIN: &str =
    "INSERT INTO call_status_history (call_id, status, at, detail) VALUES ($1, 'queued', $2, $3)";

/// Call `$1` was rescheduled (at `$2`) once more.
pub(crate) const COUNT_RESCHEDULE: &str =
    "UPDATE calls SET reschedules = reschedules + 1, updated_at = $2 WHERE id = $1";

/// Call `$1` expired undialled at `$2`: it ended then, for that reason.
pub(crate) const EXPIRED: &str =
    "UPDATE calls SET last_error = 'expired: expires_at passed before a dial started', end_reason = 'expired',
     ended_at = COALESCE(ended_at, $2) WHERE id = $1";

/// Job `$1` ends as `$2` at `$3`.
pub(crate) const CLOSE_JOB: &str =
    "UPDATE jobs SET state = $2, finished_at = $3, lease_owner = NULL, lease_until = NULL WHERE id = $1";

/// A new call `$1` is queued at `$2`.
pub(crate) const QUEUED_HISTORY: &str =
    "INSERT INTO call_status_history (call_id, status, at) VALUES ($1, 'queued', $2)";

/// Event `$1` was delivered.
pub(crate) const EVENT_DELIVERED: &str =
    "UPDATE event_deliveries SET state = 'delivered', attempts = attempts + 1 WHERE id = $1";

/// Event `$1` failed with `$3`; tried again at `$2`.
pub(crate) const EVENT_RETRY: &str =
    "UPDATE event_deliveries SET attempts = attempts + 1, next_at = $2, last_error = $3 WHERE id = $1";

/// Event `$1` failed for good with `$2`.
pub(crate) const EVENT_FAILED: &str =
    "UPDATE event_deliveries SET state = 'failed', attempts = attempts + 1, last_error = $2 WHERE id = $1";

/// Delivery attempt of event `$1` at `$2`: `$3` (`delivered`, `failed`, `refused`), error `$4`.
pub(crate) const EVENT_ATTEMPT: &str =
    "INSERT INTO event_attempts (delivery_id, at, result, error) VALUES ($1, $2, $3, $4)";

/// Call `$1`'s events, oldest first, as its log shows them.
pub(crate) const EVENT_LOG: &str =
    "SELECT id, COALESCE(event_id, 'evt_' || id), event, status, url, at, state, attempts,
     next_at, last_error FROM event_deliveries WHERE call_id = $1 ORDER BY id";

/// Every delivery attempt of call `$1`'s events, by event then time.
pub(crate) const EVENT_LOG_ATTEMPTS: &str = "SELECT a.delivery_id, a.at, a.result, a.error FROM event_attempts a
     JOIN event_deliveries d ON d.id = a.delivery_id WHERE d.call_id = $1 ORDER BY a.delivery_id, a.at, a.id";

/// Event `$1` (the id consumers see) is sent again from `$2`, a fresh series of attempts; its
/// call's id, or nothing for an unknown event.
pub(crate) const REDELIVER: &str = "UPDATE event_deliveries SET state = 'pending', attempts = 0, next_at = $2
     WHERE COALESCE(event_id, 'evt_' || id) = $1 RETURNING call_id";

/// Job `$1` is canceled at `$2`.
pub(crate) const CANCEL_JOB: &str = "UPDATE jobs SET state = 'canceled', finished_at = $2 WHERE id = $1";

/// Running jobs whose lease ran out before `$1` are orphaned.
pub(crate) const EXPIRE_LEASES: &str =
    "UPDATE jobs SET state = 'orphaned' WHERE state = 'running' AND lease_until < $1 RETURNING id";

/// The AI reported call `$1`'s outcome `$2` (JSON text; the last report wins).
pub(crate) const SAVE_OUTCOME: &str = "UPDATE calls SET outcome = $2 WHERE id = $1";

/// The AI transferred call `$1` to `$2`.
pub(crate) const SAVE_TRANSFERRED_TO: &str = "UPDATE calls SET transferred_to = $2 WHERE id = $1";
