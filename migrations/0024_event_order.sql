-- A call's event waits while an earlier one of the same call is pending (events go out in order,
-- retries included): the outbox looks that up by call.
CREATE INDEX event_deliveries_call ON event_deliveries (call_id, id);
