-- One row per hand-out of a job to a node (API.md §5 attempts, §11): written by the
-- claim, ended by the node's report or by the master (the lease ended, the job was
-- canceled), with the end of what the handler wrote.
--
-- WITHOUT ROWID, keyed by (job_id, attempt): a hand-out adds one small row to one
-- b-tree, where an audit row adds three (the table and its two indexes). A long
-- log_tail goes to overflow pages, which only reading it touches.
CREATE TABLE job_attempts (
  job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  attempt INTEGER NOT NULL,
  node_id TEXT NOT NULL,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  outcome TEXT NOT NULL DEFAULT 'running', -- running|completed|failed|reassigned|stalled|canceled
  reported TEXT,                           -- what its node reported (completed|failed); NULL: it ended otherwise
  error TEXT,                              -- JSON {message, code?, retryable}, as jobs.error
  log_tail TEXT,                           -- the end of the handler's stdout and stderr
  PRIMARY KEY (job_id, attempt)
) WITHOUT ROWID;

-- What a database made before this knows of each job's last hand-out; earlier ones
-- were recorded only in the audit log.
INSERT INTO job_attempts (job_id, attempt, node_id, started_at, finished_at, outcome, reported, error)
  SELECT id, attempt, node_id, started_at, finished_at,
         CASE WHEN status IN ('running', 'completed', 'failed', 'canceled') THEN status ELSE 'reassigned' END,
         CASE WHEN reported_attempt = attempt THEN reported_status END,
         error
  FROM jobs
  WHERE attempt > 0 AND node_id IS NOT NULL AND started_at IS NOT NULL;
