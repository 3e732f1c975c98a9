-- The sweeper reads the calls whose carrier has not finished them every worker poll: a partial
-- index keeps that read proportional to the live calls, not to the whole retained table.
CREATE INDEX calls_open ON calls (status) WHERE status IN ('dialing', 'ringing', 'in_progress');
