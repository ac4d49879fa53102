// Job, node and audit rows ↔ the objects the API shows (clients, tokens and schedules convert
// beside their verbs): their JSON parsed, then shaped by ../wire.ts as every dialect's are.
// Priority names, ids, cursors and pages are the dialects' common ../pages.ts.
import type { JobsTable, NodesTable, AuditLogTable } from "../schema.js";
import type { AuditEntry, ClaimedJob, Job, JobError, Node } from "../types.js";
import { claimedJobOf, jobOf, nodeOf } from "../wire.js";

export { decodeCursor, encodeCursor, pageOf, priorityName, timeOrderedId } from "../pages.js";

export type JobRow = Omit<JobsTable, "seq"> & { seq: number };
export type NodeRow = NodesTable & { running: number | null };
export type AuditRow = Omit<AuditLogTable, "id"> & { id: number };

function parseJson<T>(text: string | null, fallback: T): T {
  if (text === null) return fallback;
  return JSON.parse(text) as T;
}

/** JSON columns already parsed (a job just submitted): converting need not parse what it just wrote. */
export interface ParsedJobColumns {
  payload: unknown;
  requires: string[];
  depends_on: string[];
  tags: Record<string, string>;
}

export function toJob(row: Omit<JobRow, "seq">, parsed?: ParsedJobColumns): Job {
  return jobOf({
    ...row,
    payload: parsed ? parsed.payload : parseJson<unknown>(row.payload, null),
    requires: parsed ? parsed.requires : parseJson<string[]>(row.requires, []),
    depends_on: parsed ? parsed.depends_on : parseJson<string[]>(row.depends_on, []),
    tags: parsed ? parsed.tags : parseJson<Record<string, string>>(row.tags, {}),
    result: parseJson<unknown>(row.result, null),
    error: parseJson<JobError | null>(row.error, null),
    cancel_requested: row.cancel_requested === 1,
  });
}

export function toClaimedJob(row: Pick<JobRow, "id" | "type" | "payload" | "attempt" | "priority" | "timeout_s" | "created_at">): ClaimedJob {
  return claimedJobOf({ ...row, payload: parseJson<unknown>(row.payload, null) });
}

export function toNode(row: NodeRow): Node {
  return nodeOf({
    ...row,
    labels: parseJson<string[]>(row.labels, []),
    types: parseJson<string[] | null>(row.types, null),
    hardware: parseJson<Record<string, unknown>>(row.hardware, {}),
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

