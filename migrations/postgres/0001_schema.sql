-- The PostgreSQL store: the same tables as the SQLite migrations up to 0017, in one step.
-- Times are Unix milliseconds (BIGINT), as in SQLite; domain rules live in Rust (src/lifecycle).

CREATE TABLE calls (
    id                  TEXT PRIMARY KEY,
    provider            TEXT NOT NULL,
    direction           TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    to_number           TEXT NOT NULL,
    from_number         TEXT,
    status              TEXT NOT NULL,
    instructions        TEXT,
    greeting            TEXT,
    voice               TEXT,
    metadata            TEXT NOT NULL DEFAULT '{}',
    dedupe_key          TEXT,
    call_window         TEXT,
    webhook_url         TEXT,
    provider_call_id    TEXT,
    last_error          TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    machine_detection   BOOLEAN NOT NULL DEFAULT FALSE,
    answered_by         TEXT,
    voicemail_message   TEXT,
    expires_at          BIGINT,
    reschedules         BIGINT NOT NULL DEFAULT 0,
    end_reason          TEXT,
    answered_at         BIGINT,
    ended_at            BIGINT,
    stream_end          TEXT,
    campaign            TEXT,
    model               TEXT,
    input_audio_tokens  BIGINT NOT NULL DEFAULT 0,
    output_audio_tokens BIGINT NOT NULL DEFAULT 0,
    input_text_tokens   BIGINT NOT NULL DEFAULT 0,
    output_text_tokens  BIGINT NOT NULL DEFAULT 0,
    cached_input_tokens BIGINT NOT NULL DEFAULT 0,
    max_duration_s      BIGINT,
    attempt             BIGINT NOT NULL DEFAULT 0,
    attempt_started_at  BIGINT,
    max_cost_usd        DOUBLE PRECISION,
    carrier_seconds     BIGINT,
    reasoning_effort    TEXT
);
CREATE UNIQUE INDEX calls_live_dedupe ON calls (dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'dialing', 'ringing', 'in_progress');
CREATE INDEX calls_created ON calls (created_at DESC, id DESC);
CREATE INDEX calls_expiring ON calls (expires_at) WHERE expires_at IS NOT NULL AND status = 'queued';
CREATE INDEX calls_campaign ON calls (campaign, created_at) WHERE campaign IS NOT NULL;
CREATE INDEX calls_to ON calls (to_number, created_at);
CREATE INDEX calls_open ON calls (status) WHERE status IN ('dialing', 'ringing', 'in_progress');

CREATE TABLE call_status_history (
    call_id TEXT NOT NULL,
    seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    status  TEXT NOT NULL,
    detail  TEXT,
    at      BIGINT NOT NULL
);
CREATE INDEX call_status_history_call ON call_status_history (call_id, seq);

CREATE TABLE jobs (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_id      TEXT NOT NULL,
    kind         TEXT NOT NULL DEFAULT 'dial',
    to_number    TEXT NOT NULL,
    priority     BIGINT NOT NULL DEFAULT 0,
    run_at       BIGINT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'canceled', 'orphaned')),
    attempts     BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL CHECK (max_attempts >= 1),
    lease_owner  TEXT,
    lease_until  BIGINT,
    last_error   TEXT,
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    -- While running or orphaned: one of the cap's slots, 0 ≤ slot < VOXBRIDGE_MAX_CONCURRENT_CALLS.
    slot         BIGINT
);
CREATE INDEX jobs_due ON jobs (priority DESC, run_at, id) WHERE state = 'queued';
CREATE INDEX jobs_live ON jobs (state) WHERE state IN ('running', 'orphaned');
CREATE INDEX jobs_call ON jobs (call_id, id);
-- The global cap across every instance: each job in progress holds a slot of its own.
CREATE UNIQUE INDEX jobs_slot ON jobs (slot) WHERE state IN ('running', 'orphaned');
-- One live call per number, across every instance.
CREATE UNIQUE INDEX jobs_one_running_per_number ON jobs (to_number) WHERE state IN ('running', 'orphaned');

CREATE TABLE transcripts (
    call_id  TEXT NOT NULL,
    seq      BIGINT NOT NULL,
    speaker  TEXT NOT NULL,
    text     TEXT NOT NULL,
    at_ms    BIGINT NOT NULL,
    heard_ms BIGINT,
    PRIMARY KEY (call_id, seq)
);

CREATE TABLE idempotency_keys (
    key        TEXT PRIMARY KEY,
    call_id    TEXT NOT NULL,
    response   TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE webhook_events (
    provider TEXT NOT NULL,
    event_id TEXT NOT NULL,
    seen_at  BIGINT NOT NULL,
    PRIMARY KEY (provider, event_id)
);
CREATE INDEX webhook_events_seen ON webhook_events (seen_at);

CREATE TABLE event_deliveries (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_id    TEXT NOT NULL,
    url        TEXT NOT NULL,
    event      TEXT NOT NULL,
    status     TEXT NOT NULL,
    at         BIGINT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts   BIGINT NOT NULL DEFAULT 0,
    next_at    BIGINT NOT NULL,
    last_error TEXT,
    event_id   TEXT
);
CREATE INDEX event_deliveries_due ON event_deliveries (next_at) WHERE state = 'pending';
CREATE INDEX event_deliveries_at ON event_deliveries (at);
CREATE INDEX event_deliveries_call ON event_deliveries (call_id, id);

CREATE TABLE store_probe (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL
);

CREATE TABLE campaigns (
    name       TEXT PRIMARY KEY,
    paused     BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at BIGINT NOT NULL
);

-- Values every instance on this database shares, made once (the stream-token key).
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Commands for a live call from an instance that does not hold it (a Telnyx beep webhook
-- landing elsewhere): the holder is told by NOTIFY voxbridge_commands (payload: the call id) and
-- takes its commands by deleting them; a command nobody takes is withdrawn by its sender.
CREATE TABLE call_commands (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_id    TEXT NOT NULL,
    command    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX call_commands_call ON call_commands (call_id, id);
