-- What the AI says when a machine answers (NULL: hang up on machines).
ALTER TABLE calls ADD COLUMN voicemail_message TEXT;
