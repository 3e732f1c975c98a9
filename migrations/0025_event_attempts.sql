-- Each delivery attempt of an event, for the call's event log (GET /v1/calls/{id}/events);
-- redelivery finds an event by the id consumers see.
CREATE TABLE event_attempts (
    id          INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES event_deliveries (id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    result      TEXT NOT NULL CHECK (result IN ('delivered', 'failed', 'refused')),
    error       TEXT
);
CREATE INDEX event_attempts_delivery ON event_attempts (delivery_id);
CREATE INDEX event_deliveries_event_id ON event_deliveries (event_id);
