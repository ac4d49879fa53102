-- Nodes say which job types they run (API.md §6), and dispatch reads one lane per
-- job type and `requires` label set: a node claims only from the lanes it can run,
-- so jobs of types it has no handler for, like jobs needing labels it lacks, never
-- stand in its way.

ALTER TABLE nodes ADD COLUMN types TEXT; -- JSON array of the job types it runs, sorted; NULL: any type

-- Every (type, label set) of a job ever submitted. A claim looks only at the lanes
-- its node covers: the node has all the lane's labels and runs its type.
CREATE TABLE lanes (
  id INTEGER PRIMARY KEY,
  type TEXT NOT NULL,
  requires_key TEXT NOT NULL,       -- labels joined by ',' ('' for none)
  labels TEXT NOT NULL,             -- the same labels as a JSON array
  created_at TEXT NOT NULL,
  UNIQUE (type, requires_key)
);
INSERT INTO lanes (type, requires_key, labels, created_at)
  SELECT type, requires_key, min(requires), min(created_at) FROM jobs GROUP BY type, requires_key;

ALTER TABLE jobs ADD COLUMN lane INTEGER NOT NULL DEFAULT 0; -- lanes.id
UPDATE jobs SET lane = (SELECT id FROM lanes WHERE lanes.type = jobs.type AND lanes.requires_key = jobs.requires_key);

-- Dispatch: the ready jobs of one lane in priority, then submission order.
DROP INDEX jobs_dispatch;
CREATE INDEX jobs_dispatch ON jobs (lane, effective_priority DESC, seq) WHERE status = 'pending';

-- The label sets alone are lanes now.
DROP TABLE requirement_sets;
