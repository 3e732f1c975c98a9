-- A call not dialled by this time (ms) ends `expired` instead of going out late.
ALTER TABLE calls ADD COLUMN expires_at INTEGER;
CREATE INDEX calls_expiring ON calls (expires_at) WHERE expires_at IS NOT NULL AND status = 'queued';
