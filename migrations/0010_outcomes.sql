-- What a business reads off a call: why it ended (`end_reason`), when it was answered and ended
-- (ms), and the bridge's reason for ending the current attempt's stream (`stream_end`, the input
-- to the outcome rule in src/queue/outcome.rs).
ALTER TABLE calls ADD COLUMN end_reason TEXT;
ALTER TABLE calls ADD COLUMN answered_at INTEGER;
ALTER TABLE calls ADD COLUMN ended_at INTEGER;
ALTER TABLE calls ADD COLUMN stream_end TEXT;
