-- Recordings: asked for by the call (or its agent); where the recording is (`recording_state`:
-- pending, stored, deleted), its size, and what went wrong storing it.
ALTER TABLE calls ADD COLUMN record BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE calls ADD COLUMN recording_state TEXT;
ALTER TABLE calls ADD COLUMN recording_bytes BIGINT;
ALTER TABLE calls ADD COLUMN recording_error TEXT;
