-- Quotas (API.md §4): how many jobs each client has not yet finished (blocked, scheduled,
-- pending or running), read by every submit of a `client` role. Kept by triggers in the
-- transaction that changes a job, whichever verb or sweeper changes it, so it is exact
-- and a submit reads one row instead of counting a million.
CREATE TABLE client_job_counts (
  client_id TEXT PRIMARY KEY,
  unfinished INTEGER NOT NULL DEFAULT 0
);

INSERT INTO client_job_counts (client_id, unfinished)
  SELECT client_id, count(*) FROM jobs
  WHERE status NOT IN ('completed', 'failed', 'canceled')
  GROUP BY client_id;

CREATE TRIGGER jobs_count_submitted AFTER INSERT ON jobs
WHEN new.status NOT IN ('completed', 'failed', 'canceled')
BEGIN
  INSERT INTO client_job_counts (client_id, unfinished) VALUES (new.client_id, 1)
    ON CONFLICT (client_id) DO UPDATE SET unfinished = unfinished + 1;
END;

CREATE TRIGGER jobs_count_finished AFTER UPDATE OF status ON jobs
WHEN old.status NOT IN ('completed', 'failed', 'canceled')
  AND new.status IN ('completed', 'failed', 'canceled')
BEGIN
  UPDATE client_job_counts SET unfinished = unfinished - 1 WHERE client_id = new.client_id;
END;

-- A retry of a failed or canceled job makes it unfinished again.
CREATE TRIGGER jobs_count_reopened AFTER UPDATE OF status ON jobs
WHEN old.status IN ('completed', 'failed', 'canceled')
  AND new.status NOT IN ('completed', 'failed', 'canceled')
BEGIN
  INSERT INTO client_job_counts (client_id, unfinished) VALUES (new.client_id, 1)
    ON CONFLICT (client_id) DO UPDATE SET unfinished = unfinished + 1;
END;

-- Retention deletes only finished jobs; this keeps the count right whatever deletes a job.
CREATE TRIGGER jobs_count_deleted AFTER DELETE ON jobs
WHEN old.status NOT IN ('completed', 'failed', 'canceled')
BEGIN
  UPDATE client_job_counts SET unfinished = unfinished - 1 WHERE client_id = old.client_id;
END;
