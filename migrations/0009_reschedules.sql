-- How often a call window (or a missing carrier) moved a call's next attempt.
ALTER TABLE calls ADD COLUMN reschedules INTEGER NOT NULL DEFAULT 0;
