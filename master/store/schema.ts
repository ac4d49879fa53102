// Kysely's view of the tables in migrations/: every query in the store is typed by it.
// Columns are as stored: ISO-8601 text timestamps, JSON as text, 0/1 booleans.
import type { Generated } from "kysely";

export interface JobsTable {
  seq: Generated<number>;
  id: string;
  client_id: string;
  type: string;
  payload: string;
  priority: number;
  effective_priority: number;
  status: string;
  node_id: string | null;
  attempt: number;
  retry_count: number;
  max_retries: number;
  timeout_s: number;
  run_at: string | null;
  ready_at: string;
  stall_at: string | null;
  lease_expires_at: string | null;
  aging_at: string | null;
  requires: string;
  requires_key: string;
  /** lanes.id: the job's type and label set (dispatch reads one lane at a time). */
  lane: number;
  depends_on: string;
  idempotency_key: string | null;
  tags: string;
  progress: number | null;
  progress_message: string | null;
  progress_logged_at: string | null;
  result: string | null;
  error: string | null;
  failure_reason: string | null;
  cancel_requested: number;
  lease_end_reason: string | null;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
}

/** One hand-out of a job to a node (migrations/sqlite/0003_job_attempts.sql). */
export interface JobAttemptsTable {
  job_id: string;
  attempt: number;
  node_id: string;
  started_at: string;
  finished_at: string | null;
  outcome: string;
  reported: string | null;
  error: string | null;
  log_tail: string | null;
}

/** Flow control of one job type (migrations/sqlite/0004_job_types.sql). */
export interface JobTypesTable {
  type: string;
  max_running: number | null;
  paused: number;
  updated_at: string;
}

/** Each client's jobs not yet finished, kept by triggers (migrations/sqlite/0005_client_job_counts.sql). */
export interface ClientJobCountsTable {
  client_id: string;
  unfinished: number;
}

/** Fair share (API.md §5a, migrations/sqlite/0007_fair_share.sql): each client's line per lane and priority, filled only while on. */
export interface FairQueueTable {
  lane: number;
  effective_priority: number;
  client_id: string;
  head_seq: number;
  pending: number;
  running: number;
}

/** Each client's running jobs, while fair share is on. */
export interface FairClientsTable {
  client_id: string;
  running: number;
}

export interface JobDependenciesTable {
  job_id: string;
  depends_on_id: string;
}

export interface LanesTable {
  id: Generated<number>;
  type: string;
  requires_key: string;
  labels: string;
  created_at: string;
}

export interface NodesTable {
  id: string;
  name: string;
  client_id: string;
  status: string;
  labels: string;
  /** JSON array of the job types it runs; null: any type. */
  types: string | null;
  capacity: number;
  hardware: string;
  version: string | null;
  registered_at: string;
  last_heartbeat: string;
  updated_at: string;
}

export interface ClientsTable {
  id: string;
  name: string;
  role: string;
  secret_hash: string | null;
  created_at: string;
  disabled_at: string | null;
}

export interface AuthTokensTable {
  id: string;
  client_id: string;
  token_hash: string;
  expires_at: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface AuditLogTable {
  id: Generated<number>;
  event_type: string;
  entity_type: string;
  entity_id: string;
  client_id: string | null;
  details: string;
  created_at: string;
}

export interface SettingsTable {
  key: string;
  value: string;
  updated_at: string;
}

export interface SchedulesTable {
  id: string;
  client_id: string;
  name: string;
  cron: string;
  timezone: string;
  job: string;
  enabled: number;
  next_run_at: string | null;
  last_run_at: string | null;
  last_skipped_at: string | null;
  last_skip_reason: string | null;
  last_skip_message: string | null;
  created_at: string;
  updated_at: string;
}

export interface SchemaMigrationsTable {
  version: number;
  name: string;
  checksum: string;
  applied_at: string;
}

export interface DatabaseSchema {
  jobs: JobsTable;
  job_dependencies: JobDependenciesTable;
  job_attempts: JobAttemptsTable;
  job_types: JobTypesTable;
  client_job_counts: ClientJobCountsTable;
  fair_queue: FairQueueTable;
  fair_clients: FairClientsTable;
  lanes: LanesTable;
  nodes: NodesTable;
  clients: ClientsTable;
  auth_tokens: AuthTokensTable;
  audit_log: AuditLogTable;
  settings: SettingsTable;
  schedules: SchedulesTable;
  schema_migrations: SchemaMigrationsTable;
}
