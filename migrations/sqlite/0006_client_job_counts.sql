-- Quotas (API.md §4): how many jobs each client has not yet finished (blocked, scheduled,
-- pending or running), read by every submit of a `client` role, so that a submit reads one
-- row instead of counting a million. Always exact, in the transaction that changes a job:
-- a submit adds its new jobs in one statement per batch (master/store/sqlite/quotas.ts),
-- and the triggers below follow every other change, whichever verb or sweeper makes it.
CREATE TABLE client_job_counts (
  client_id TEXT PRIMARY KEY,
  unfinished INTEGER NOT NULL DEFAULT 0
);

INSERT INTO client_job_counts (client_id, unfinished)
  SELECT client_id, count(*) FROM jobs
  WHERE status NOT IN ('completed', 'failed', 'canceled')
  GROUP BY client_id;

-- The final statuses are spelled out with OR, not IN (...): in a trigger, an IN list is
-- built again for every row, and claims and reports update many rows at once.
CREATE TRIGGER jobs_count_finished AFTER UPDATE OF status ON jobs
WHEN NOT (old.status = 'completed' OR old.status = 'failed' OR old.status = 'canceled')
  AND (new.status = 'completed' OR new.status = 'failed' OR new.status = 'canceled')
BEGIN
  UPDATE client_job_counts SET unfinished = unfinished - 1 WHERE client_id = new.client_id;
END;

-- A retry of a failed or canceled job makes it unfinished again.
CREATE TRIGGER jobs_count_reopened AFTER UPDATE OF status ON jobs
WHEN (old.status = 'completed' OR old.status = 'failed' OR old.status = 'canceled')
  AND NOT (new.status = 'completed' OR new.status = 'failed' OR new.status = 'canceled')
BEGIN
  INSERT INTO client_job_counts (client_id, unfinished) VALUES (new.client_id, 1)
    ON CONFLICT (client_id) DO UPDATE SET unfinished = unfinished + 1;
END;

-- Retention deletes only finished jobs; this keeps the count right whatever deletes a job.
CREATE TRIGGER jobs_count_deleted AFTER DELETE ON jobs
WHEN NOT (old.status = 'completed' OR old.status = 'failed' OR old.status = 'canceled')
BEGIN
  UPDATE client_job_counts SET unfinished = unfinished - 1 WHERE client_id = old.client_id;
END;
