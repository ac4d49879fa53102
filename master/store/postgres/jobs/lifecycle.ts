// Transitions shared by several verbs on PostgreSQL: a lease ending without a report, a
// job finishing (its dependents released or failed), a retried job's dependents reopened.
// Every function here runs inside its caller's transaction; the rules are the core's
// (master/queue/transitions.ts), applied with writes guarded by the state they read.
import { sql } from "kysely";
import {
  onDependenciesCompleted,
  onDependencyRetried,
  onLeaseEnd,
  type JobFacts,
} from "../../../queue/transitions.js";
import { type AttemptOutcome, type JobError, type JobStatus, type LeaseEndReason, type RescuedJob } from "../../types.js";
import { nextAgingAt } from "../../../queue/aging.js";
import { dependencyFailureEvents, graphOf, planDependencyFailures } from "../../../queue/dependency-failures.js";
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
 * old place in line, canceled, or failed. One statement changes them all, each guarded by
 * "still running on that node under that attempt"; one ends their attempts and one writes
 * their audit rows. Answers the jobs changed. The rows should have been read FOR UPDATE.
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
  const ends = jobs.map((job) => ({ job, transition: onLeaseEnd(factsOf(job), reason, now) }));
  const rows = ends.map(({ job, transition }) => ({
    seq: job.seq,
    was: job.status,
    attempt: job.attempt,
    node_id: job.node_id,
    status: transition.status,
    retry_count: transition.retryCount,
    failure_reason: transition.failureReason,
    // Re-queued straight back to pending at its old place in line (seq is kept): the lost time was the node's.
    aging_at: transition.finished ? null : nextAgingAt(job.effective_priority, now, ctx.policy.agingMs),
    lease_end_reason: transition.status === "canceled" ? "canceled" : reason,
    finished: transition.finished,
  }));
  // Each job looked up by seq alone, its guard (status, node, attempt as read) a filter that no
  // index serves: with the guard as index conditions the planner, whose statistics are young
  // after a burst (few running, node_id all NULL), joined every running job of the table or of
  // the node for each batch (EXPLAIN ANALYZE in bench/README).
  const done = await rowsOf(
    tx,
    sql<{ seq: string }>`
      UPDATE jobs SET status = e.status, retry_count = e.retry_count,
        failure_reason = CASE WHEN e.finished THEN e.failure_reason ELSE jobs.failure_reason END,
        node_id = CASE WHEN e.finished THEN jobs.node_id END,
        ready_at = CASE WHEN e.finished THEN jobs.ready_at ELSE ${at}::timestamptz END,
        aging_at = CASE WHEN e.finished THEN jobs.aging_at ELSE e.aging_at END,
        finished_at = CASE WHEN e.finished THEN ${at}::timestamptz ELSE jobs.finished_at END,
        stall_at = NULL, lease_expires_at = NULL, lease_end_reason = e.lease_end_reason, updated_at = ${at}
      FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
        AS e(seq bigint, was text, attempt integer, node_id text, status text, retry_count integer, failure_reason text,
             aging_at timestamptz, lease_end_reason text, finished boolean)
      WHERE jobs.seq = e.seq AND (jobs.status, jobs.node_id, jobs.attempt) IS NOT DISTINCT FROM (e.was, e.node_id, e.attempt)
      RETURNING jobs.seq`,
  );
  const changedSeqs = new Set(done.map((row) => String(row.seq)));
  const ended = ends.filter(({ job }) => changedSeqs.has(String(job.seq)));
  if (ended.length === 0) return [];
  await changed(
    tx,
    sql`UPDATE job_attempts a SET outcome = e.outcome, reported = NULL, error = NULL, log_tail = NULL, finished_at = ${at}
        FROM jsonb_to_recordset(${JSON.stringify(ended.map(({ job, transition }) => ({ job_id: job.id, attempt: job.attempt, was: "running", outcome: transition.attemptOutcome ?? "reassigned" })))}::jsonb)
          AS e(job_id text, attempt integer, was text, outcome text)
        WHERE a.job_id = e.job_id AND a.attempt = e.attempt AND a.outcome IS NOT DISTINCT FROM e.was`,
  );
  const finished = ended.filter(({ transition }) => transition.finished);
  await writeAudit(
    tx.db,
    [
      ...ended.map(({ job }) => ({ event_type: event, entity_type: "job", entity_id: job.id, client_id: actor, details: { node_id: job.node_id, attempt: job.attempt, reason } })),
      ...finished.map(({ job, transition }) => ({
        event_type: `job.${transition.status}`,
        entity_type: "job",
        entity_id: job.id,
        client_id: actor,
        details:
          transition.status === "canceled"
            ? { node_id: job.node_id, attempt: job.attempt, reason }
            : { node_id: job.node_id, attempt: job.attempt, failure_reason: transition.failureReason, reason },
      })),
    ],
    at,
  );
  if (finished.length > 0) {
    const ids = finished.map(({ job }) => job.id);
    tx.mark({ finished: ids });
    await failDependentsOf(tx, ids, at);
  }
  // Ended leases free their nodes' slots, and re-queued jobs are ready.
  tx.mark({ claimable: true });
  return ended.map(({ job, transition }) => ({
    jobId: job.id,
    nodeId: job.node_id,
    outcome: transition.status === "canceled" ? "canceled" : transition.status === "failed" ? "failed" : "requeued",
  }));
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

/**
 * Jobs ended failed or canceled, in the order the verb ended them: every job waiting on one of
 * them, directly or not, fails (planDependencyFailures names the dependency each one's audit
 * row gives). One read of the blocked jobs they reach, locked in seq order, one write, one
 * audit insert.
 * The read is one snapshot: a job submitted at that moment with a dependency deep in the
 * chain (locked FOR SHARE by its submit, submit.ts) would not be reached. It cannot commit
 * then: a job depends only on its own client's jobs, and the submit and the statement that
 * ended this chain both write that client's count (client_job_counts), so one waits for the
 * other to commit, or they deadlock and one is run again. Keep it so, or read again once
 * the rows are locked.
 */
export async function failDependentsOf(tx: Tx, jobIds: readonly string[], at: string): Promise<void> {
  if (jobIds.length === 0) return;
  const rows = await rowsOf(
    tx,
    sql<Dependent & { dependency: string }>`
      WITH RECURSIVE reached(job_id, depends_on_id) AS (
        SELECT d.job_id, d.depends_on_id FROM job_dependencies d JOIN jobs j ON j.id = d.job_id
        WHERE d.depends_on_id = ANY(${[...jobIds]}::text[]) AND j.status = 'blocked'
        UNION
        SELECT d.job_id, d.depends_on_id FROM reached r JOIN job_dependencies d ON d.depends_on_id = r.job_id JOIN jobs j ON j.id = d.job_id
        WHERE j.status = 'blocked'
      )
      SELECT j.seq, j.id, j.status, j.attempt, j.node_id, j.retry_count, j.max_retries, j.cancel_requested, j.failure_reason, r.depends_on_id AS dependency
      FROM reached r JOIN jobs j ON j.id = r.job_id
      ORDER BY j.seq FOR UPDATE OF j`,
  );
  if (rows.length === 0) return;
  const { jobs, graph } = graphOf<Dependent>(rows, factsOf);
  const failures = planDependencyFailures(jobIds, graph);
  if (failures.length === 0) return;
  const done = await rowsOf(
    tx,
    sql<{ id: string }>`
      UPDATE jobs SET status = f.status, failure_reason = f.failure_reason, finished_at = ${at}, updated_at = ${at}
      FROM jsonb_to_recordset(${JSON.stringify(failures.map((f) => ({ seq: jobs.get(f.id)?.seq, status: f.transition.status, failure_reason: f.transition.failureReason })))}::jsonb)
        AS f(seq bigint, status text, failure_reason text)
      WHERE jobs.seq = f.seq AND jobs.status = 'blocked'
      RETURNING jobs.id`,
  );
  const failed = new Set(done.map((row) => row.id));
  const written = failures.filter((f) => failed.has(f.id));
  if (written.length === 0) return;
  await writeAudit(
    tx.db,
    dependencyFailureEvents(written),
    at,
  );
  tx.mark({ finished: written.map((f) => f.id) });
}

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
  const done = await requeueRetriedMany(ctx, tx, [{ job, status: change.status, retryCount: change.retryCount }], change.now);
  return done.size;
}

/** Retried jobs as requeueRetried, with one statement; answers the seqs of those changed. */
export async function requeueRetriedMany(
  ctx: PgContext,
  tx: Tx,
  retried: readonly { job: Pick<JobRow, "seq" | "status" | "priority">; status: JobStatus; retryCount: number }[],
  now: Date,
): Promise<Set<string>> {
  if (retried.length === 0) return new Set();
  const at = now.toISOString();
  const rows = retried.map(({ job, status, retryCount }) => ({
    seq: job.seq,
    was: job.status,
    status,
    retry_count: retryCount,
    aging_at: status === "pending" ? nextAgingAt(job.priority, now, ctx.policy.agingMs) : null,
  }));
  const done = await rowsOf(
    tx,
    sql<{ seq: string }>`
      UPDATE jobs SET status = r.status, retry_count = r.retry_count, effective_priority = priority, node_id = NULL, ready_at = ${at},
        aging_at = r.aging_at, stall_at = NULL, progress = NULL, progress_message = NULL, result = NULL, error = NULL,
        failure_reason = NULL, cancel_requested = false, lease_end_reason = NULL, started_at = NULL, finished_at = NULL, updated_at = ${at}
      FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS r(seq bigint, was text, status text, retry_count integer, aging_at timestamptz)
      WHERE jobs.seq = r.seq AND jobs.status = r.was
      RETURNING jobs.seq`,
  );
  return new Set(done.map((row) => String(row.seq)));
}

/** A failed or canceled job is retried: the jobs that failed only because of it wait for it again. */
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
