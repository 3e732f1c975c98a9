-- How many times a job's orphaned attempt went back to the queue uncounted (the carrier had no
-- call of it): bounded, so a crash loop cannot dial a call for ever (lifecycle::attempt).
ALTER TABLE jobs ADD COLUMN uncounted_releases BIGINT NOT NULL DEFAULT 0;
