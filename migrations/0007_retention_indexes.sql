-- Retention deletes by age from these bookkeeping tables every minute: index the age.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
CREATE INDEX webhook_events_seen ON webhook_events (seen_at);
CREATE INDEX event_deliveries_at ON event_deliveries (at);
