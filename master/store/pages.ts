// What every dialect's verbs share in their answers: priority names, time-ordered ids,
// list cursors and pages, the columns of a job as submitted, a quota skip's message.
import { randomUUID } from "node:crypto";
import { InvalidCursorError, PRIORITY_WEIGHTS, type JobStatus, type PriorityName, type SubmitJobParams } from "./types.js";

const NAME_BY_WEIGHT = new Map<number, PriorityName>(
  Object.entries(PRIORITY_WEIGHTS).map(([name, weight]) => [weight, name as PriorityName]),
);

export function priorityName(weight: number): PriorityName {
  return NAME_BY_WEIGHT.get(weight) ?? "medium";
}

/**
 * A UUID in version 7's layout: 48 bits of milliseconds first, then randomness.
 * Ids made close in time sort close together, so inserting a job touches the
 * right-hand edge of the id indexes instead of a random page of them.
 */
export function timeOrderedId(at: number): string {
  if (at !== idTime.at) {
    const time = at.toString(16).padStart(12, "0");
    idTime.at = at;
    idTime.prefix = `${time.slice(0, 8)}-${time.slice(8, 12)}-7`;
  }
  return idTime.prefix + randomUUID().slice(15);
}

/** The ids' time part of the last millisecond asked for: a batch's ids share it. */
const idTime = { at: -1, prefix: "" };

/**
 * Opaque list cursors: the sort key of the last item shown (a seq or id, drawn at insert).
 * On PostgreSQL rows commit in another order than they drew their keys, so a walk through
 * the pages shows each row committed before its first page once, and may leave out one
 * committed during the walk though it sorts among the rows already shown (README, Scaling out).
 */
export function encodeCursor(value: number): string {
  return Buffer.from(String(value)).toString("base64url");
}

export function decodeCursor(cursor: string | undefined): number | undefined {
  if (cursor === undefined) return undefined;
  const text = Buffer.from(cursor, "base64url").toString();
  const value = Number(text);
  if (!/^[0-9]{1,16}$/.test(text) || !Number.isSafeInteger(value)) throw new InvalidCursorError(cursor);
  return value;
}

export function pageOf<Row, T>(rows: Row[], limit: number, key: (row: Row) => number, convert: (row: Row) => T) {
  const more = rows.length > limit;
  const shown = more ? rows.slice(0, limit) : rows;
  const last = shown[shown.length - 1];
  return {
    items: shown.map((row) => convert(row)),
    next_cursor: more && last !== undefined ? encodeCursor(key(last)) : null,
  };
}

/**
 * A new job's columns that both dialects write alike: what onSubmit decided (`status`,
 * `failureReason`) at `now` (`at`, as text), the first aging time of a pending job from `agingAt(weight)`.
 * Each store adds its own: the payload, the lane, requires, depends_on, tags (as text on
 * SQLite, JSON on PostgreSQL) and cancel_requested (0 or false).
 */
export function submittedColumns(job: SubmitJobParams, status: JobStatus, failureReason: string | null, now: Date, at: string, agingAt: (weight: number) => string | null) {
  const weight = PRIORITY_WEIGHTS[job.priority];
  return {
    id: timeOrderedId(now.getTime()),
    client_id: job.clientId,
    type: job.type,
    priority: weight,
    effective_priority: weight,
    status,
    node_id: null,
    attempt: 0,
    retry_count: 0,
    max_retries: job.maxRetries,
    timeout_s: job.timeoutS,
    run_at: job.runAt === null ? null : job.runAt.toISOString(),
    ready_at: status === "scheduled" && job.runAt !== null ? job.runAt.toISOString() : at,
    stall_at: null,
    lease_expires_at: null,
    aging_at: status === "pending" ? agingAt(weight) : null,
    idempotency_key: job.idempotencyKey,
    progress: null,
    progress_message: null,
    progress_logged_at: null,
    result: null,
    error: null,
    failure_reason: failureReason,
    lease_end_reason: null,
    created_at: at,
    updated_at: at,
    started_at: null,
    finished_at: status === "failed" ? at : null,
  };
}

/** What a schedule's owner is told of a tick skipped for its quota (last_skip_message). */
export function quotaSkipMessage(limit: number): string {
  return `its client had ${limit} jobs not yet finished, as many as GAFFER_CLIENT_MAX_QUEUED allows`;
}
