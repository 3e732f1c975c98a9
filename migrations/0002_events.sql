-- Events to the user's app (one row per call status change with a webhook URL).
CREATE TABLE event_deliveries (
    id         INTEGER PRIMARY KEY,
    call_id    TEXT NOT NULL,
    url        TEXT NOT NULL,
    event      TEXT NOT NULL,
    status     TEXT NOT NULL,
    at         INTEGER NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_at    INTEGER NOT NULL,
    last_error TEXT
);
CREATE INDEX event_deliveries_due ON event_deliveries (state, next_at);
