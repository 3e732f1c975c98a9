-- Model usage summed over a call's sessions and attempts, and the model that served it.
ALTER TABLE calls ADD COLUMN model TEXT;
ALTER TABLE calls ADD COLUMN input_audio_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN output_audio_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN input_text_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN output_text_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN cached_input_tokens INTEGER NOT NULL DEFAULT 0;
