-- Each event gets an id of its own, unguessable and unique across databases (consumers
-- deduplicate by it); rows from before keep `evt_<rowid>`.
ALTER TABLE event_deliveries ADD COLUMN event_id TEXT;
