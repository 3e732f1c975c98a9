-- Post-call analysis: what the call asked for (`analysis_request`, the validated JSON of its
-- `analysis` field), what came back (`analysis`, JSON: the result or {"error": …}), and the
-- analysis worker's state (attempts so far; not before `analysis_next_at`, which is also the
-- lease of the instance working on it).
ALTER TABLE calls ADD COLUMN analysis_request TEXT;
ALTER TABLE calls ADD COLUMN analysis TEXT;
ALTER TABLE calls ADD COLUMN analysis_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN analysis_next_at INTEGER;
CREATE INDEX calls_analysis_due ON calls (ended_at) WHERE analysis_request IS NOT NULL AND analysis IS NULL;
