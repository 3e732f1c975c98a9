-- The call's duration cap in seconds (NULL: VOXBRIDGE_MAX_CALL_DURATION_S).
ALTER TABLE calls ADD COLUMN max_duration_s INTEGER;
