-- gaffer's first schema. Plain SQL, readable by the sqlite3 3.40 CLI:
-- timestamps are ISO-8601 UTC text with milliseconds, JSON is text,
-- statuses are words, priorities are the class weights of API.md §2
-- (live 10, high 3, medium 2, low 1, batch 0).
--
-- Every statement is IF NOT EXISTS so that `sqlite3 x.db < 0001_init.sql`
-- on an empty file and the master's own migrator give the same schema,
-- and the migrator can adopt a database made that way.
-- Released migrations are never edited: the master refuses to start when an
-- applied migration's checksum changed. Add 0002_….sql instead.

CREATE TABLE IF NOT EXISTS clients (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('admin', 'client', 'worker')),
  secret_hash TEXT,                 -- scrypt hash; never the secret itself
  created_at TEXT NOT NULL,
  disabled_at TEXT
);

CREATE TABLE IF NOT EXISTS auth_tokens (
  id TEXT PRIMARY KEY,              -- the token's jti
  client_id TEXT NOT NULL REFERENCES clients (id),
  token_hash TEXT NOT NULL UNIQUE,  -- SHA-256 of the JWT, hex; never the token itself
  expires_at TEXT NOT NULL,
  created_at TEXT NOT NULL,
  last_used_at TEXT,
  revoked_at TEXT
);
CREATE INDEX IF NOT EXISTS auth_tokens_client ON auth_tokens (client_id, created_at);
CREATE INDEX IF NOT EXISTS auth_tokens_expiry ON auth_tokens (expires_at);

CREATE TABLE IF NOT EXISTS nodes (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  client_id TEXT NOT NULL,          -- the worker credential that registered it
  status TEXT NOT NULL CHECK (status IN ('online', 'draining', 'dead', 'offline')),
  labels TEXT NOT NULL DEFAULT '[]',
  capacity INTEGER NOT NULL CHECK (capacity >= 1),
  hardware TEXT NOT NULL DEFAULT '{}',
  version TEXT,
  registered_at TEXT NOT NULL,
  last_heartbeat TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (client_id, name)
);
-- The dead-node sweeper: live nodes silent since before a cut-off.
CREATE INDEX IF NOT EXISTS nodes_liveness ON nodes (status, last_heartbeat);

CREATE TABLE IF NOT EXISTS jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, -- submission order: strict FIFO within a priority class
  id TEXT NOT NULL UNIQUE,
  client_id TEXT NOT NULL,
  type TEXT NOT NULL,
  payload TEXT NOT NULL,            -- JSON
  priority INTEGER NOT NULL,        -- the class asked for (weight)
  effective_priority INTEGER NOT NULL, -- after aging; dispatch orders by it
  status TEXT NOT NULL CHECK (status IN
    ('blocked', 'scheduled', 'pending', 'running', 'completed', 'failed', 'canceled')),
  node_id TEXT REFERENCES nodes (id),
  attempt INTEGER NOT NULL DEFAULT 0,     -- lease number: +1 each time the job is handed to a node
  retry_count INTEGER NOT NULL DEFAULT 0, -- +1 each time the job goes back to the queue
  max_retries INTEGER NOT NULL,
  timeout_s REAL NOT NULL,
  run_at TEXT,                      -- as asked: not before then
  ready_at TEXT NOT NULL,           -- scheduled: when it becomes pending; pending: since when (aging)
  stall_at TEXT,                    -- running: when the stalled-job sweeper takes it back
  lease_expires_at TEXT,            -- running: the node must list it in a heartbeat before then
  aging_at TEXT,                    -- pending below high: when aging lifts it one class next
  requires TEXT NOT NULL DEFAULT '[]',   -- JSON array of labels, sorted
  requires_key TEXT NOT NULL DEFAULT '', -- the same labels joined by ','; dispatch groups by it
  depends_on TEXT NOT NULL DEFAULT '[]', -- JSON array of job ids (also in job_dependencies)
  idempotency_key TEXT,
  tags TEXT NOT NULL DEFAULT '{}',  -- JSON object of strings
  progress REAL,
  progress_message TEXT,
  progress_logged_at TEXT,          -- last job.progress audit row (at most one a minute)
  result TEXT,                      -- JSON
  error TEXT,                       -- JSON {"message", "code"?, "retryable"}
  failure_reason TEXT,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  lease_end_reason TEXT,            -- why the last lease ended without a report: node_dead, stalled, lease_expired, node_left, canceled
  reported_attempt INTEGER,         -- the attempt whose report was accepted last (idempotent re-sends)
  reported_status TEXT,             -- and what it reported: completed or failed
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  started_at TEXT,
  finished_at TEXT
);
-- Dispatch: the ready jobs of one requirement set in priority, then submission order.
CREATE INDEX IF NOT EXISTS jobs_dispatch ON jobs (requires_key, effective_priority DESC, seq)
  WHERE status = 'pending';
-- Promotion of delayed jobs and retries whose backoff ended.
CREATE INDEX IF NOT EXISTS jobs_scheduled ON jobs (ready_at) WHERE status = 'scheduled';
-- Aging: pending jobs due to rise a class (never above high = 3).
CREATE INDEX IF NOT EXISTS jobs_aging ON jobs (aging_at)
  WHERE status = 'pending' AND aging_at IS NOT NULL;
-- A node's jobs (capacity, heartbeats, dead-node rescue).
CREATE INDEX IF NOT EXISTS jobs_node ON jobs (node_id, status) WHERE node_id IS NOT NULL;
-- The stalled-job sweeper, and leases no heartbeat renewed.
CREATE INDEX IF NOT EXISTS jobs_stall ON jobs (stall_at) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS jobs_lease ON jobs (lease_expires_at) WHERE status = 'running';
-- Lists, newest first.
CREATE INDEX IF NOT EXISTS jobs_status_seq ON jobs (status, seq);
CREATE INDEX IF NOT EXISTS jobs_client_seq ON jobs (client_id, seq);
-- Retention of finished jobs.
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs (client_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;

CREATE TABLE IF NOT EXISTS job_dependencies (
  job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  depends_on_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  PRIMARY KEY (job_id, depends_on_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS job_dependencies_reverse ON job_dependencies (depends_on_id);

-- The distinct `requires` sets ever submitted: a claim looks only at the
-- sets its node's labels cover, so jobs no node can run never slow it down.
CREATE TABLE IF NOT EXISTS requirement_sets (
  key TEXT PRIMARY KEY,             -- labels joined by ','
  labels TEXT NOT NULL,             -- JSON array
  created_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS audit_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  event_type TEXT NOT NULL,         -- job.submitted, node.dead, … (API.md §7)
  entity_type TEXT NOT NULL,        -- job, node, client, token, master
  entity_id TEXT NOT NULL,
  client_id TEXT,                   -- who caused it; NULL for the master's own sweepers
  details TEXT NOT NULL DEFAULT '{}', -- JSON
  created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_entity ON audit_log (entity_type, entity_id, id);
CREATE INDEX IF NOT EXISTS audit_log_created ON audit_log (created_at);

CREATE TABLE IF NOT EXISTS settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  updated_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS schedules (
  id TEXT PRIMARY KEY,
  client_id TEXT NOT NULL,
  name TEXT NOT NULL,
  cron TEXT NOT NULL,
  timezone TEXT NOT NULL DEFAULT 'UTC',
  job TEXT NOT NULL,                -- JSON: the job to submit on each tick
  enabled INTEGER NOT NULL DEFAULT 1,
  next_run_at TEXT,
  last_run_at TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (client_id, name)
);
CREATE INDEX IF NOT EXISTS schedules_due ON schedules (next_run_at) WHERE enabled = 1;
