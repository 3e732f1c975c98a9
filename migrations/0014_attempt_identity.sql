-- Each attempt of an outbound call has its own identity from before the dial: its number travels
-- in the carrier's callbacks (Twilio's status URL, Telnyx's client_state), so they are applied
-- even before the carrier's call id is known, and reconciliation asks about the right attempt.
ALTER TABLE calls ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
-- When the current attempt was dialled (finds a call whose id was never stored, by number).
ALTER TABLE calls ADD COLUMN attempt_started_at INTEGER;
