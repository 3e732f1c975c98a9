-- Calls grouped by campaign; a campaign's pause is a property of its name (it may have no calls
-- yet): paused campaigns' calls stay queued and are not claimed.
ALTER TABLE calls ADD COLUMN campaign TEXT;
CREATE INDEX calls_campaign ON calls (campaign, created_at) WHERE campaign IS NOT NULL;
CREATE INDEX calls_to ON calls (to_number, created_at);
CREATE TABLE campaigns (
    name       TEXT PRIMARY KEY,
    paused     INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);
