// A job's history as GET /jobs/:id/events shows it, built the same way by every dialect:
// its submission (from the job), its attempts (hand-outs, and the results their nodes
// reported) and the audit rows about it (cancel, retry, the master's decisions), oldest first.
import { decodeCursor, encodeCursor } from "./pages.js";
import type { AuditEntry, Job, JobAttempt, JobEvent, Page, PageParams } from "./types.js";

/** An attempt with what its node reported (null: the master ended it). */
export type ReportedAttempt = JobAttempt & { reported: string | null };

/** What an attempt adds to its job's history: its hand-out, and its end when its node reported it. */
function attemptEvents(job: Job, attempt: ReportedAttempt, last: boolean): JobEvent[] {
  const on = { client_id: null, node_id: attempt.node_id, attempt: attempt.attempt };
  const events: JobEvent[] = [{ ...on, event_type: "job.assigned", created_at: attempt.started_at, details: { node_id: attempt.node_id, attempt: attempt.attempt } }];
  // An attempt the master ended (node dead or left, stalled, canceled) has the master's audit row instead.
  if (attempt.reported === null || attempt.finished_at === null) return events;
  const details: Record<string, unknown> = { node_id: attempt.node_id, attempt: attempt.attempt };
  let type: string;
  if (attempt.outcome === "completed") type = "job.completed";
  else if (attempt.outcome === "canceled") type = "job.canceled";
  else if (attempt.error?.retryable === false || (last && job.status === "failed")) {
    type = "job.failed";
    // Its own reason: the job may have been retried by hand and have another one now.
    const reason = attempt.error?.retryable === false ? "non_retryable" : last ? job.failure_reason : "max_retries_exceeded";
    Object.assign(details, { failure_reason: reason, error: attempt.error });
  } else {
    type = "job.retry_scheduled";
    details.error = attempt.error;
  }
  events.push({ ...on, event_type: type, created_at: attempt.finished_at, details });
  return events;
}

function auditEvent(entry: Pick<AuditEntry, "event_type" | "created_at" | "client_id" | "details">): JobEvent {
  const event: JobEvent = { event_type: entry.event_type, created_at: entry.created_at, client_id: entry.client_id, details: entry.details };
  if (typeof entry.details.node_id === "string") event.node_id = entry.details.node_id;
  if (typeof entry.details.attempt === "number") event.attempt = entry.details.attempt;
  return event;
}

/**
 * The page of a job's history; `audited`: its audit rows, oldest first, without those its
 * job and attempts tell. A job's history is short, so it is built whole and paged by position.
 */
export function jobHistory(job: Job, attempts: readonly ReportedAttempt[], audited: readonly AuditEntry[], params: PageParams): Page<JobEvent> {
  const submitted: JobEvent = { event_type: "job.submitted", created_at: job.created_at, client_id: job.client_id, details: { type: job.type, priority: job.priority } };
  const history = [submitted, ...audited.map((entry) => auditEvent(entry)), ...attempts.flatMap((attempt, index) => attemptEvents(job, attempt, index === attempts.length - 1))];
  // Stable: at the same millisecond the audit rows (the submission first) stay ahead.
  history.sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0));
  const start = decodeCursor(params.cursor) ?? 0;
  const items = history.slice(start, start + params.limit);
  const end = start + items.length;
  return { items, next_cursor: end < history.length ? encodeCursor(end) : null };
}
