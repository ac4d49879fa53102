// Job, node and audit rows ↔ the objects the API shows (clients, tokens and schedules convert
// beside their verbs): their JSON parsed, then shaped by ../wire.ts as every dialect's are.
// Priority names, ids, cursors and pages are the dialects' common ../pages.ts.
import type { JobsTable, NodesTable, AuditLogTable } from "../schema.js";
import type { AuditEntry, Job, JobError, Node } from "../types.js";
import { jobOf, nodeOf } from "../wire.js";

export { decodeCursor, encodeCursor, pageOf, priorityName, timeOrderedId } from "../pages.js";

export type JobRow = Omit<JobsTable, "seq"> & { seq: number };
export type NodeRow = NodesTable & { running: number | null };
export type AuditRow = Omit<AuditLogTable, "id"> & { id: number };

/**
 * A job's, an attempt's or an audit row's JSON column; `fallback` for NULL, and for text that is
 * not JSON: a row edited by hand (with the sqlite3 shell, say) shows with that column as its
 * fallback, rather than failing the whole answer or list page it is part of. A claim hands such
 * a payload over as null too (jobs/claim.ts). A node's columns stay strict (nodeJson).
 */
export function parseJson<T>(text: string | null, fallback: T): T {
  if (text === null) return fallback;
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    if (error instanceof SyntaxError) return fallback;
    throw error;
  }
}

/**
 * A node's JSON column, which must be JSON: a fallback there would change what the node runs
 * (types NULL means every type), so a hand-edited one fails loudly, in its answers and its claims.
 */
export function nodeJson<T>(text: string | null, fallback: T): T {
  return text === null ? fallback : (JSON.parse(text) as T);
}

/** JSON columns already parsed (a job just submitted): converting need not parse what it just wrote. */
export interface ParsedJobColumns {
  payload: unknown;
  requires: string[];
  depends_on: string[];
  tags: Record<string, string>;
}

/**
 * Field by field, not `{ ...row, payload: … }`: a spread of a row this wide into a literal
 * that overrides some of its keys was V8's slow path (a few µs a job in a batch's answer).
 */
export function toJob(row: Omit<JobRow, "seq">, parsed?: ParsedJobColumns): Job {
  return jobOf({
    id: row.id,
    client_id: row.client_id,
    type: row.type,
    payload: parsed ? parsed.payload : parseJson<unknown>(row.payload, null),
    priority: row.priority,
    effective_priority: row.effective_priority,
    status: row.status,
    node_id: row.node_id,
    attempt: row.attempt,
    retry_count: row.retry_count,
    max_retries: row.max_retries,
    timeout_s: row.timeout_s,
    run_at: row.run_at,
    requires: parsed ? parsed.requires : parseJson<string[]>(row.requires, []),
    depends_on: parsed ? parsed.depends_on : parseJson<string[]>(row.depends_on, []),
    idempotency_key: row.idempotency_key,
    tags: parsed ? parsed.tags : parseJson<Record<string, string>>(row.tags, {}),
    progress: row.progress,
    progress_message: row.progress_message,
    result: parseJson<unknown>(row.result, null),
    error: parseJson<JobError | null>(row.error, null),
    failure_reason: row.failure_reason,
    cancel_requested: row.cancel_requested === 1,
    created_at: row.created_at,
    updated_at: row.updated_at,
    started_at: row.started_at,
    finished_at: row.finished_at,
  });
}


export function toNode(row: NodeRow): Node {
  return nodeOf({
    ...row,
    labels: nodeJson<string[]>(row.labels, []),
    types: nodeJson<string[] | null>(row.types, null),
    hardware: nodeJson<Record<string, unknown>>(row.hardware, {}),
  });
}

export function toAuditEntry(row: AuditRow): AuditEntry {
  return {
    id: row.id,
    event_type: row.event_type,
    entity_type: row.entity_type,
    entity_id: row.entity_id,
    client_id: row.client_id,
    details: parseJson<Record<string, unknown>>(row.details, {}),
    created_at: row.created_at,
  };
}

