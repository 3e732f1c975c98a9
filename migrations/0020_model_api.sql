-- The API a call asked for (`model_api`: realtime or live; NULL: the server's) and the GPT-Live
-- seconds it was billed.
ALTER TABLE calls ADD COLUMN model_api TEXT;
ALTER TABLE calls ADD COLUMN live_seconds REAL NOT NULL DEFAULT 0;
