// Rows → the objects the API shows, once for every dialect: from a row whose JSON columns are
// parsed, whose flags are booleans and whose timestamps are ISO text. Each dialect's rows.ts
// brings its own rows to that shape (SQLite parses its JSON text; PostgreSQL's pool already
// gives it) and calls here.
import { priorityName } from "./pages.js";
import type { Job, TakenJob, JobError, JobStatus, Node, NodeStatus } from "./types.js";

export interface ParsedJobRow {
  id: string;
  client_id: string;
  type: string;
  payload: unknown;
  priority: number;
  effective_priority: number;
  status: string;
  node_id: string | null;
  attempt: number;
  retry_count: number;
  max_retries: number;
  timeout_s: number;
  run_at: string | null;
  requires: string[];
  depends_on: string[];
  idempotency_key: string | null;
  tags: Record<string, string>;
  progress: number | null;
  progress_message: string | null;
  result: unknown;
  error: JobError | null;
  failure_reason: string | null;
  cancel_requested: boolean;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export function jobOf(row: ParsedJobRow): Job {
  return {
    id: row.id,
    type: row.type,
    payload: row.payload ?? null,
    client_id: row.client_id,
    priority: priorityName(row.priority),
    effective_priority: priorityName(row.effective_priority),
    status: row.status as JobStatus,
    attempt: row.attempt,
    retry_count: row.retry_count,
    max_retries: row.max_retries,
    node_id: row.node_id,
    timeout_s: row.timeout_s,
    run_at: row.run_at,
    requires: row.requires,
    depends_on: row.depends_on,
    idempotency_key: row.idempotency_key,
    tags: row.tags,
    progress: row.progress,
    progress_message: row.progress_message,
    result: row.result ?? null,
    error: row.error,
    failure_reason: row.failure_reason,
    cancel_requested: row.cancel_requested,
    created_at: row.created_at,
    updated_at: row.updated_at,
    started_at: row.started_at,
    finished_at: row.finished_at,
  };
}

/**
 * A job a claim took; `payload`: its JSON text as stored, or null where the dialect found the
 * stored text not to be JSON (a row edited by hand): then it goes to its node as null, marked.
 */
export function takenJobOf(row: Pick<ParsedJobRow, "id" | "type" | "attempt" | "priority" | "timeout_s" | "created_at"> & { payload: string | null }): TakenJob {
  const taken: TakenJob = {
    id: row.id,
    type: row.type,
    payloadJson: row.payload ?? "null",
    attempt: row.attempt,
    priority: priorityName(row.priority),
    timeout_s: row.timeout_s,
    created_at: row.created_at,
  };
  if (row.payload === null) taken.payloadUnreadable = true;
  return taken;
}

export interface ParsedNodeRow {
  id: string;
  name: string;
  client_id: string;
  status: string;
  labels: string[];
  types: string[] | null;
  capacity: number;
  hardware: Record<string, unknown>;
  version: string | null;
  registered_at: string;
  last_heartbeat: string;
  running: number | null;
}

export function nodeOf(row: ParsedNodeRow): Node {
  return {
    id: row.id,
    name: row.name,
    client_id: row.client_id,
    status: row.status as NodeStatus,
    labels: row.labels,
    capacity: row.capacity,
    types: row.types,
    running: row.running ?? 0,
    hardware: row.hardware,
    version: row.version,
    registered_at: row.registered_at,
    last_heartbeat: row.last_heartbeat,
  };
}
