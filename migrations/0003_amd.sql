-- Answering-machine detection per call, and what it found.
ALTER TABLE calls ADD COLUMN machine_detection INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN answered_by TEXT;
