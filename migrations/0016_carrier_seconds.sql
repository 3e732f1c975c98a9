-- Seconds the carrier billed (Twilio's CallDuration on the final callback), when it says.
ALTER TABLE calls ADD COLUMN carrier_seconds INTEGER;
