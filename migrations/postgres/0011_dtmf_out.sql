-- The AI may press keys on the phone (`press_digits`), when the call or its agent says so.
ALTER TABLE calls ADD COLUMN dtmf_out BOOLEAN NOT NULL DEFAULT FALSE;
