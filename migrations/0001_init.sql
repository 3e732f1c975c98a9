-- voxbridge control-plane schema (SQLite). Times are Unix milliseconds (UTC).

CREATE TABLE calls (
    id               TEXT PRIMARY KEY,
    provider         TEXT NOT NULL,
    direction        TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    to_number        TEXT NOT NULL,
    from_number      TEXT,
    status           TEXT NOT NULL,
    instructions     TEXT,
    greeting         TEXT,
    voice            TEXT,
    metadata         TEXT NOT NULL DEFAULT '{}',
    dedupe_key       TEXT,
    call_window      TEXT,
    webhook_url      TEXT,
    provider_call_id TEXT,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
-- A live dedupe key names one call.
CREATE UNIQUE INDEX calls_live_dedupe ON calls (dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'dialing', 'ringing', 'in_progress');
CREATE INDEX calls_created ON calls (created_at DESC, id DESC);

CREATE TABLE call_status_history (
    call_id TEXT NOT NULL,
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    status  TEXT NOT NULL,
    detail  TEXT,
    at      INTEGER NOT NULL
);
CREATE INDEX call_status_history_call ON call_status_history (call_id, seq);

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY,
    call_id      TEXT NOT NULL,
    kind         TEXT NOT NULL DEFAULT 'dial',
    to_number    TEXT NOT NULL,
    priority     INTEGER NOT NULL DEFAULT 0,
    run_at       INTEGER NOT NULL,
    -- queued → running → done | failed | queued (retry); canceled; orphaned (lease expired:
    -- reconcile with the provider before dialling again)
    state        TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'canceled', 'orphaned')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
    lease_owner  TEXT,
    lease_until  INTEGER,
    last_error   TEXT,
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER
);
CREATE INDEX jobs_due ON jobs (state, priority DESC, run_at, id);
-- At most one call in progress per destination number, enforced by the database.
CREATE UNIQUE INDEX jobs_one_running_per_number ON jobs (to_number) WHERE state IN ('running', 'orphaned');

CREATE TABLE transcripts (
    call_id  TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    speaker  TEXT NOT NULL,
    text     TEXT NOT NULL,
    at_ms    INTEGER NOT NULL,
    heard_ms INTEGER,
    PRIMARY KEY (call_id, seq)
);

CREATE TABLE idempotency_keys (
    key        TEXT PRIMARY KEY,
    call_id    TEXT NOT NULL,
    response   TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE webhook_events (
    provider TEXT NOT NULL,
    event_id TEXT NOT NULL,
    seen_at  INTEGER NOT NULL,
    PRIMARY KEY (provider, event_id)
);
