// Transitions shared by several verbs on PostgreSQL: a lease ending without a report, a
// job finishing (its dependents released or failed), a retried job's dependents reopened.
// Every function here runs inside its caller's transaction; the rules are the core's
// (master/queue/transitions.ts), applied with writes guarded by the state they read.
import { sql } from "kysely";
import {
  onDependenciesCompleted,
  onDependencyFailed,
  onDependencyRetried,
  onLeaseEnd,
  type JobFacts,
} from "../../../queue/transitions.js";
import { type AttemptOutcome, type JobError, type JobStatus, type LeaseEndReason, type RescuedJob } from "../../types.js";
import { nextAgingAt } from "../../../queue/aging.js";
import { changed, rowsOf, writeAudit, type PgContext } from "../context.js";
import type { Tx } from "../database.js";
import type { JobRow } from "../rows.js";

export { nextAgingAt } from "../../../queue/aging.js";

/** The facts the job's rules read, from a row. */
export function factsOf(row: Pick<JobRow, "status" | "attempt" | "node_id" | "retry_count" | "max_retries" | "cancel_requested">): JobFacts {
  return {
    status: row.status as JobStatus,
    attempt: row.attempt,
    nodeId: row.node_id,
    retryCount: row.retry_count,
    maxRetries: row.max_retries,
    cancelRequested: row.cancel_requested,
  };
}

/** What ending a lease needs of a running job. */
export type EndingLease = Pick<
  JobRow,
  "seq" | "id" | "status" | "node_id" | "attempt" | "retry_count" | "max_retries" | "cancel_requested" | "effective_priority"
>;

export const ENDING_LEASE_SELECT = sql.raw("seq, id, status, node_id, attempt, retry_count, max_retries, cancel_requested, effective_priority");

export interface AttemptEnd {
  jobId: string;
  attempt: number;
  outcome: AttemptOutcome;
  reported: "completed" | "failed" | null;
  error: JobError | null;
  logTail: string | null;
  at: string;
}

/**
 * PostgreSQL stores no NUL character in text or JSON: a handler that printed one (binary
 * output, `find -print0`) has it dropped from its log tail and error, not its report refused.
 */
export function withoutNul(text: string): string {
  return text.includes("\u0000") ? text.replaceAll("\u0000", "") : text;
}

/** A job error with NUL characters dropped from its text. */
export function errorWithoutNul(error: JobError): JobError {
  const clean: JobError = { ...error, message: withoutNul(error.message) };
  if (error.code !== undefined) clean.code = withoutNul(error.code);
  return clean;
}

/** End a running attempt (one already ended stays as it is). */
export async function endAttempt(tx: Tx, end: AttemptEnd): Promise<void> {
  await changed(
    tx,
    sql`UPDATE job_attempts SET outcome = ${end.outcome}, reported = ${end.reported},
          error = ${end.error === null ? null : JSON.stringify(errorWithoutNul(end.error))}::json, log_tail = ${end.logTail === null ? null : withoutNul(end.logTail)}, finished_at = ${end.at}
        WHERE job_id = ${end.jobId} AND attempt = ${end.attempt} AND outcome = 'running'`,
  );
}

/**
 * Running jobs whose leases ended without a report from their node (node dead or left,
 * stalled, lease expired), each as the rules decide (onLeaseEnd): back to the queue at its
 * old place in line, canceled, or failed. The rows must have been read FOR UPDATE.
 */
export async function endLeases(
  ctx: PgContext,
  tx: Tx,
  jobs: readonly EndingLease[],
  reason: LeaseEndReason,
  event: "job.reassigned" | "job.stalled",
  actor: string | null,
): Promise<RescuedJob[]> {
  if (jobs.length === 0) return [];
  const now = ctx.clock.now();
  const at = now.toISOString();
  await writeAudit(
    tx.db,
    jobs.map((job) => ({ event_type: event, entity_type: "job", entity_id: job.id, client_id: actor, details: { node_id: job.node_id, attempt: job.attempt, reason } })),
    at,
  );
  const rescued: RescuedJob[] = [];
  for (const job of jobs) {
    const transition = onLeaseEnd(factsOf(job), reason, now);
    await endAttempt(tx, { jobId: job.id, attempt: job.attempt, outcome: transition.attemptOutcome ?? "reassigned", reported: null, error: null, logTail: null, at });
    if (transition.finished) {
      const canceled = transition.status === "canceled";
      await changed(
        tx,
        sql`UPDATE jobs SET status = ${transition.status}, failure_reason = ${transition.failureReason},
              lease_end_reason = ${canceled ? "canceled" : reason}, stall_at = NULL, lease_expires_at = NULL,
              finished_at = ${at}, updated_at = ${at}
            WHERE seq = ${job.seq} AND status = 'running' AND attempt = ${job.attempt}`,
      );
      const details = canceled
        ? { node_id: job.node_id, attempt: job.attempt, reason }
        : { node_id: job.node_id, attempt: job.attempt, failure_reason: transition.failureReason, reason };
      await writeAudit(tx.db, [{ entity_type: "job", entity_id: job.id, client_id: actor, event_type: `job.${transition.status}`, details }], at);
      tx.mark({ finished: [job.id] });
      await failDependents(tx, job.id, at);
    } else {
      // Straight back to pending at its old place in line (seq is kept): the lost time was the node's.
      await changed(
        tx,
        sql`UPDATE jobs SET status = 'pending', retry_count = ${transition.retryCount}, node_id = NULL, stall_at = NULL,
              lease_expires_at = NULL, ready_at = ${at}, aging_at = ${nextAgingAt(job.effective_priority, now, ctx.policy.agingMs)},
              lease_end_reason = ${reason}, updated_at = ${at}
            WHERE seq = ${job.seq} AND status = 'running' AND attempt = ${job.attempt}`,
      );
    }
    rescued.push({ jobId: job.id, nodeId: job.node_id, outcome: transition.status === "canceled" ? "canceled" : transition.status === "failed" ? "failed" : "requeued" });
  }
  // Ended leases free their nodes' slots, and re-queued jobs are ready.
  tx.mark({ claimable: true });
  return rescued;
}

/** Jobs completed: each blocked dependent whose dependencies are now all completed is released. */
export async function releaseDependents(ctx: PgContext, tx: Tx, jobIds: readonly string[], at: string): Promise<number> {
  if (jobIds.length === 0) return 0;
  const now = new Date(at);
  const dependents = await rowsOf(
    tx,
    sql<Pick<JobRow, "seq" | "id" | "run_at" | "effective_priority">>`
      SELECT seq, id, run_at, effective_priority FROM jobs
      WHERE status = 'blocked' AND id IN (SELECT job_id FROM job_dependencies WHERE depends_on_id = ANY(${[...jobIds]}::text[]))
      ORDER BY seq FOR UPDATE`,
  );
  let ready = 0;
  for (const dependent of dependents) {
    const [unfinished] = await rowsOf(
      tx,
      sql<{ id: string }>`SELECT j.id FROM job_dependencies d JOIN jobs j ON j.id = d.depends_on_id
                          WHERE d.job_id = ${dependent.id} AND j.status <> 'completed' LIMIT 1`,
    );
    if (unfinished) continue;
    const { status, readyAt } = onDependenciesCompleted(dependent.run_at === null ? null : new Date(dependent.run_at), now);
    const scheduled = status === "scheduled";
    const agingAt = scheduled ? null : nextAgingAt(dependent.effective_priority, now, ctx.policy.agingMs);
    const n = await changed(
      tx,
      sql`UPDATE jobs SET status = ${status}, ready_at = ${readyAt.toISOString()}, aging_at = ${agingAt}, updated_at = ${at}
          WHERE seq = ${dependent.seq} AND status = 'blocked'`,
    );
    if (n === 0) continue;
    await writeAudit(tx.db, [{ event_type: "job.released", entity_type: "job", entity_id: dependent.id, client_id: null, details: { status } }], at);
    if (!scheduled) ready += 1;
    tx.mark({ claimable: !scheduled, scheduled });
  }
  return ready;
}

type Dependent = Pick<JobRow, "seq" | "id" | "status" | "attempt" | "node_id" | "retry_count" | "max_retries" | "cancel_requested" | "failure_reason">;

async function dependentsOf(tx: Tx, jobId: string): Promise<Dependent[]> {
  return rowsOf(
    tx,
    sql<Dependent>`SELECT j.seq, j.id, j.status, j.attempt, j.node_id, j.retry_count, j.max_retries, j.cancel_requested, j.failure_reason
                   FROM job_dependencies d JOIN jobs j ON j.id = d.job_id WHERE d.depends_on_id = ${jobId}
                   ORDER BY j.seq FOR UPDATE OF j`,
  );
}

/** A job ended failed or canceled: every job waiting on it, directly or not, fails (onDependencyFailed). */
export async function failDependents(tx: Tx, jobId: string, at: string): Promise<void> {
  const stack = [jobId];
  while (stack.length > 0) {
    const dependency = stack.pop() as string;
    for (const dependent of await dependentsOf(tx, dependency)) {
      const transition = onDependencyFailed(factsOf(dependent));
      if (!transition) continue;
      const n = await changed(
        tx,
        sql`UPDATE jobs SET status = ${transition.status}, failure_reason = ${transition.failureReason}, finished_at = ${at}, updated_at = ${at}
            WHERE seq = ${dependent.seq} AND status = 'blocked'`,
      );
      if (n === 0) continue;
      await writeAudit(
        tx.db,
        [{ event_type: "job.failed", entity_type: "job", entity_id: dependent.id, client_id: null, details: { failure_reason: transition.failureReason, dependency } }],
        at,
      );
      tx.mark({ finished: [dependent.id] });
      stack.push(dependent.id);
    }
  }
}

/** A failed or canceled job is retried: the jobs that failed only because of it wait for it again. */
/**
 * A retried job (onRetry) back to `status` (pending, or blocked on its dependencies) with
 * its lease, progress and outcome cleared, guarded by the status it was read in; answers
 * the rows changed (0: something changed it first).
 */
export async function requeueRetried(
  ctx: PgContext,
  tx: Tx,
  job: Pick<JobRow, "seq" | "status" | "priority">,
  change: { status: JobStatus; retryCount: number; now: Date; at: string },
): Promise<number> {
  const { status, now, at } = change;
  const agingAt = status === "pending" ? nextAgingAt(job.priority, now, ctx.policy.agingMs) : null;
  return changed(
    tx,
    sql`UPDATE jobs SET status = ${status}, retry_count = ${change.retryCount}, effective_priority = priority, node_id = NULL, ready_at = ${at},
          aging_at = ${agingAt}, stall_at = NULL, progress = NULL, progress_message = NULL, result = NULL, error = NULL,
          failure_reason = NULL, cancel_requested = false, lease_end_reason = NULL, started_at = NULL, finished_at = NULL, updated_at = ${at}
        WHERE seq = ${job.seq} AND status = ${job.status}`,
  );
}

export async function reopenDependents(tx: Tx, jobId: string, at: string, actor: string | null): Promise<void> {
  const stack = [jobId];
  while (stack.length > 0) {
    const dependency = stack.pop() as string;
    for (const dependent of await dependentsOf(tx, dependency)) {
      const statuses = await rowsOf(
        tx,
        sql<{ status: string }>`SELECT j.status FROM job_dependencies d JOIN jobs j ON j.id = d.depends_on_id WHERE d.job_id = ${dependent.id}`,
      );
      const transition = onDependencyRetried({ ...factsOf(dependent), failureReason: dependent.failure_reason }, statuses.map((row) => row.status as JobStatus));
      if (!transition) continue;
      const n = await changed(
        tx,
        sql`UPDATE jobs SET status = 'blocked', failure_reason = NULL, finished_at = NULL, updated_at = ${at}
            WHERE seq = ${dependent.seq} AND status = 'failed'`,
      );
      if (n === 0) continue;
      await writeAudit(
        tx.db,
        [{ event_type: "job.retried", entity_type: "job", entity_id: dependent.id, client_id: actor, details: { status: transition.status, because: dependency } }],
        at,
      );
      stack.push(dependent.id);
    }
  }
}

/** A node declared dead that shows a sign of life (heartbeat, claim) is back. */
export async function reviveNode(tx: Tx, nodeId: string, at: string): Promise<void> {
  const n = await changed(tx, sql`UPDATE nodes SET status = 'online', last_heartbeat = ${at}, updated_at = ${at} WHERE id = ${nodeId} AND status = 'dead'`);
  if (n > 0) await writeAudit(tx.db, [{ event_type: "node.recovered", entity_type: "node", entity_id: nodeId, client_id: null, details: {} }], at);
}
