-- Flow control per job type (API.md §5a): a cluster-wide limit of running jobs and a
-- pause. A type with no row has neither. Rows are made by PUT /api/v1/types/:type, for
-- a type that has jobs or not yet.
CREATE TABLE job_types (
  type TEXT PRIMARY KEY,
  max_running INTEGER,              -- NULL: no limit
  paused INTEGER NOT NULL DEFAULT 0, -- 1: none of its jobs is handed out
  updated_at TEXT NOT NULL
);
