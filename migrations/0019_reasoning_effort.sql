-- A call's reasoning effort for reasoning-capable Realtime models (gpt-realtime-2).
ALTER TABLE calls ADD COLUMN reasoning_effort TEXT;
