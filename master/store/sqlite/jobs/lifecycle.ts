// Transitions shared by several verbs: a lease ending without a report, a job
// finishing (its dependents released or failed), aging arithmetic.
// Every function here runs inside its caller's transaction.
import { sql } from "kysely";
import { nextAgingAt } from "../../../queue/aging.js";
import { dependencyFailureEvents, graphOf, planDependencyFailures } from "../../../queue/dependency-failures.js";
import { onDependenciesCompleted, onDependencyRetried, onLeaseEnd, type JobFacts, type Transition } from "../../../queue/transitions.js";
import { type JobStatus, type LeaseEndReason, type RescuedJob } from "../../types.js";
import type { StoreContext } from "../context.js";
import { inJsonArray, param } from "../database.js";
import type { JobRow } from "../rows.js";
import { endAttempt } from "./attempts.js";

export { agedWeight, nextAgingAt } from "../../../queue/aging.js";

/** What ending a lease needs of a running job. */
export type EndingLease = Pick<
  JobRow,
  "seq" | "id" | "status" | "node_id" | "attempt" | "retry_count" | "max_retries" | "cancel_requested" | "effective_priority"
>;

export const ENDING_LEASE_COLUMNS = [
  "seq", "id", "status", "node_id", "attempt", "retry_count", "max_retries", "cancel_requested", "effective_priority",
] as const satisfies readonly (keyof EndingLease)[];

/** The facts the job's rules read, from a row. */
export function factsOf(row: Pick<JobRow, "status" | "attempt" | "node_id" | "retry_count" | "max_retries" | "cancel_requested">): JobFacts {
  return {
    status: row.status as JobStatus,
    attempt: row.attempt,
    nodeId: row.node_id,
    retryCount: row.retry_count,
    maxRetries: row.max_retries,
    cancelRequested: row.cancel_requested === 1,
  };
}

/**
 * A lease that ended in a final state (canceled after a cancel was asked, failed with its
 * retries spent), guarded by the lease it was decided from; its dependents fail.
 */
function finishEnded(ctx: StoreContext, job: EndingLease, transition: Transition, reason: LeaseEndReason, actor: string | null, at: string): void {
  const { db, audit } = ctx;
  db.prepared<{ seq: number; attempt: number; status: string; failureReason: string | null; reason: string; at: string }>("lease-end-final", () =>
    db.kysely
      .updateTable("jobs")
      .set({
        status: param("status"),
        failure_reason: param("failureReason"),
        lease_end_reason: param("reason"),
        stall_at: null,
        lease_expires_at: null,
        finished_at: param("at"),
        updated_at: param("at"),
      })
      .where("seq", "=", param("seq"))
      .where("status", "=", sql.lit("running"))
      .where("attempt", "=", param("attempt")),
  ).run({ seq: job.seq, attempt: job.attempt, status: transition.status, failureReason: transition.failureReason, reason: transition.status === "canceled" ? "canceled" : reason, at });
  const details =
    transition.status === "canceled"
      ? { node_id: job.node_id, attempt: job.attempt, reason }
      : { node_id: job.node_id, attempt: job.attempt, failure_reason: transition.failureReason, reason };
  audit.write({ entity_type: "job", entity_id: job.id, client_id: actor, event_type: `job.${transition.status}`, details }, at);
  ctx.signal.mark({ finished: [job.id] });
  failDependents(ctx, [job.id], at);
}

/**
 * Running jobs whose leases ended without a report from their node (node dead,
 * stalled, node left), each as the job's rules decide (onLeaseEnd): back to the queue,
 * canceled, or failed. The jobs going back to the queue, nearly all of them, go in one
 * statement, and every job's first audit row in another (a dead node's sweep may end
 * hundreds of leases; a statement each cost about twice as much).
 */
export function endLeases(
  ctx: StoreContext,
  jobs: readonly EndingLease[],
  reason: LeaseEndReason,
  event: "job.reassigned" | "job.stalled",
  actor: string | null,
): RescuedJob[] {
  if (jobs.length === 0) return [];
  const { db, audit } = ctx;
  const now = ctx.clock.now();
  const at = now.toISOString();
  audit.writeMany(
    jobs.map((job) => ({
      event_type: event,
      entity_type: "job",
      entity_id: job.id,
      client_id: actor,
      details: { node_id: job.node_id, attempt: job.attempt, reason },
    })),
    at,
  );
  const requeue: { seq: number; attempt: number; retry_count: number; aging_at: string | null }[] = [];
  const rescued = jobs.map((job): RescuedJob => {
    const transition = onLeaseEnd(factsOf(job), reason, now);
    endAttempt(ctx, { jobId: job.id, attempt: job.attempt, outcome: transition.attemptOutcome ?? "reassigned", reported: null, error: null, logTail: null, at });
    if (transition.finished) finishEnded(ctx, job, transition, reason, actor, at);
    else requeue.push({ seq: job.seq, attempt: job.attempt, retry_count: transition.retryCount, aging_at: nextAgingAt(job.effective_priority, now, ctx.policy.agingMs) });
    const outcome = transition.status === "canceled" ? "canceled" : transition.status === "failed" ? "failed" : "requeued";
    return { jobId: job.id, nodeId: job.node_id, outcome };
  });
  // Straight back to pending, at their old place in line (seq is kept): the lost
  // time was the node's, not the jobs'. NOT INDEXED: by seq, the primary key.
  if (requeue.length > 0) {
    db.preparedSql<{ jobs: string; at: string; reason: string }>("requeue", () =>
      sql`
        UPDATE jobs NOT INDEXED
        SET status = 'pending', retry_count = back.value ->> 'retry_count', node_id = NULL, stall_at = NULL,
            lease_expires_at = NULL, ready_at = ${param("at")}, aging_at = back.value ->> 'aging_at',
            lease_end_reason = ${param("reason")}, updated_at = ${param("at")}
        FROM json_each(${param("jobs")}) AS back
        WHERE jobs.seq = back.value ->> 'seq' AND jobs.status = 'running' AND jobs.attempt = back.value ->> 'attempt'`,
    ).run({ jobs: JSON.stringify(requeue), at, reason });
  }
  // Ended leases free their nodes' slots, and re-queued jobs are ready.
  ctx.signal.mark({ claimable: true });
  return rescued;
}

/**
 * Jobs completed: each blocked dependent whose dependencies are now all
 * completed is released (and the commit signal told of it).
 */
export function releaseDependents(ctx: StoreContext, jobIds: readonly string[], at: string): void {
  const { db, audit } = ctx;
  const now = new Date(at);
  // One prepared read for all the jobs just completed: it runs for every result
  // batch, and most jobs have no dependents. A dependent of two of them shows up
  // twice; it is released once. CROSS JOIN keeps SQLite's order (dependencies
  // first): with an IN list it would rather walk every blocked job.
  const found = db
    .prepared<{ jobIds: string }, Pick<JobRow, "seq" | "id" | "run_at" | "effective_priority" | "client_id">>("blocked-dependents", () =>
      db.kysely
        .selectFrom("job_dependencies as d")
        .crossJoin("jobs as j")
        .whereRef("j.id", "=", "d.job_id")
        .select(["j.seq", "j.id", "j.run_at", "j.effective_priority", "j.client_id"])
        .where("d.depends_on_id", "in", inJsonArray<string>("jobIds"))
        .where("j.status", "=", sql.lit("blocked")),
    )
    .all({ jobIds: JSON.stringify(jobIds) });
  if (found.length === 0) return;
  const dependents = [...new Map(found.map((dependent) => [dependent.seq, dependent])).values()];
  // A job many others wait on (a fan-in's root) releases them all here: prepared too.
  const unfinished = db.prepared<{ jobId: string }, { id: string }>("unfinished-dependency", () =>
    db.kysely
      .selectFrom("job_dependencies as d")
      .innerJoin("jobs as j", "j.id", "d.depends_on_id")
      .select("j.id")
      .where("d.job_id", "=", param("jobId"))
      .where("j.status", "!=", sql.lit("completed"))
      .limit(1),
  );
  const release = db.prepared<{ seq: number; status: string; readyAt: string; agingAt: string | null; at: string }>("release", () =>
    db.kysely
      .updateTable("jobs")
      .set({ status: param("status"), ready_at: param("readyAt"), aging_at: param("agingAt"), updated_at: param("at") })
      .where("seq", "=", param("seq"))
      .where("status", "=", sql.lit("blocked")),
  );
  for (const dependent of dependents) {
    if (unfinished.get({ jobId: dependent.id })) continue;
    const { status, readyAt } = onDependenciesCompleted(dependent.run_at === null ? null : new Date(dependent.run_at), now);
    const scheduled = status === "scheduled";
    release.run({
      seq: dependent.seq,
      status,
      readyAt: readyAt.toISOString(),
      agingAt: scheduled ? null : nextAgingAt(dependent.effective_priority, now, ctx.policy.agingMs),
      at,
    });
    audit.write(
      {
        event_type: "job.released",
        entity_type: "job",
        entity_id: dependent.id,
        client_id: null,
        details: { status },
      },
      at,
    );
    ctx.signal.mark({ claimable: !scheduled, scheduled });
  }
}

type Dependent = Pick<JobRow, "seq" | "id" | "status" | "attempt" | "node_id" | "retry_count" | "max_retries" | "cancel_requested" | "failure_reason">;

/** The jobs that wait on `jobId` (through job_dependencies_reverse), oldest first, with what the rules read. */
function dependentsOf(ctx: StoreContext, jobId: string): Dependent[] {
  const { db } = ctx;
  return db
    .prepared<{ jobId: string }, Dependent>("dependents", () =>
      db.kysely
        .selectFrom("job_dependencies as d")
        .innerJoin("jobs as j", "j.id", "d.job_id")
        .select(["j.seq", "j.id", "j.status", "j.attempt", "j.node_id", "j.retry_count", "j.max_retries", "j.cancel_requested", "j.failure_reason"])
        .where("d.depends_on_id", "=", param("jobId"))
        .orderBy("j.seq"),
    )
    .all({ jobId });
}

/**
 * Jobs ended failed or canceled, in the order the verb ended them: every job waiting on one of
 * them, directly or not, fails (planDependencyFailures names the dependency each one's audit
 * row gives), from one read of the blocked jobs they reach.
 */
export function failDependents(ctx: StoreContext, jobIds: readonly string[], at: string): void {
  if (jobIds.length === 0) return;
  const { db, audit } = ctx;
  // CROSS JOIN keeps SQLite's order (the ended jobs, then their links, then the jobs linked):
  // without statistics it would rather walk every blocked job, and every job for the last join.
  const rows = db
    .preparedSql<{ jobIds: string }, Dependent & { dependency: string }>("blocked-dependents-reached", () =>
      sql`
        WITH RECURSIVE reached(job_id, depends_on_id) AS (
          SELECT d.job_id, d.depends_on_id FROM json_each(${param("jobIds")}) AS ended CROSS JOIN job_dependencies d CROSS JOIN jobs j
          WHERE d.depends_on_id = ended.value AND j.id = d.job_id AND j.status = 'blocked'
          UNION
          SELECT d.job_id, d.depends_on_id FROM reached r CROSS JOIN job_dependencies d CROSS JOIN jobs j
          WHERE d.depends_on_id = r.job_id AND j.id = d.job_id AND j.status = 'blocked'
        )
        SELECT j.seq, j.id, j.status, j.attempt, j.node_id, j.retry_count, j.max_retries, j.cancel_requested, j.failure_reason, r.depends_on_id AS dependency
        FROM reached r CROSS JOIN jobs j WHERE j.id = r.job_id
        ORDER BY j.seq`,
    )
    .all({ jobIds: JSON.stringify(jobIds) });
  if (rows.length === 0) return;
  const { jobs, graph } = graphOf<Dependent>(rows, factsOf);
  const failDependent = db.prepared<{ seq: number; status: string; failureReason: string | null; at: string }>("fail-dependent", () =>
    db.kysely
      .updateTable("jobs")
      .set({ status: param("status"), failure_reason: param("failureReason"), finished_at: param("at"), updated_at: param("at") })
      .where("seq", "=", param("seq"))
      .where("status", "=", sql.lit("blocked")),
  );
  const failures = planDependencyFailures(jobIds, graph);
  const written = failures.filter(
    ({ id, transition }) => failDependent.run({ seq: (jobs.get(id) as Dependent).seq, status: transition.status, failureReason: transition.failureReason, at }) > 0,
  );
  if (written.length === 0) return;
  audit.writeMany(
    dependencyFailureEvents(written),
    at,
  );
  ctx.signal.mark({ finished: written.map(({ id }) => id) });
}

/**
 * A retried job (onRetry) back to `status` (pending, or blocked on its dependencies) with
 * its lease, progress and outcome cleared, guarded by the status it was read in; answers
 * the rows changed (0: something changed it first).
 */
export function requeueRetried(
  ctx: StoreContext,
  job: Pick<JobRow, "seq" | "status" | "priority">,
  change: { status: JobStatus; retryCount: number; now: Date; at: string },
): number {
  const { db } = ctx;
  const requeue = db.prepared<{ seq: number; from: string; status: string; retryCount: number; priority: number; agingAt: string | null; at: string }>(
    "retry-requeue",
    () =>
      db.kysely
        .updateTable("jobs")
        .set({
          status: param("status"),
          retry_count: param("retryCount"),
          effective_priority: param("priority"),
          node_id: null,
          ready_at: param("at"),
          aging_at: param("agingAt"),
          stall_at: null,
          progress: null,
          progress_message: null,
          result: null,
          error: null,
          failure_reason: null,
          cancel_requested: 0,
          lease_end_reason: null,
          started_at: null,
          finished_at: null,
          updated_at: param("at"),
        })
        .where("seq", "=", param("seq"))
        .where("status", "=", param("from")),
  );
  const { status, now, at } = change;
  const agingAt = status === "pending" ? nextAgingAt(job.priority, now, ctx.policy.agingMs) : null;
  return requeue.run({ seq: job.seq, from: job.status, status, retryCount: change.retryCount, priority: job.priority, agingAt, at });
}

/**
 * A failed or canceled job is retried: the jobs that failed only because of it
 * wait for it again (blocked), so retrying the root of a chain resumes the chain
 * (onDependencyRetried).
 */
export function reopenDependents(ctx: StoreContext, jobId: string, at: string, actor: string | null): void {
  const { db, audit } = ctx;
  const dependencyStatuses = db.prepared<{ jobId: string }, { status: string }>("dependency-statuses", () =>
    db.kysely
      .selectFrom("job_dependencies as d")
      .innerJoin("jobs as j", "j.id", "d.depends_on_id")
      .select("j.status")
      .where("d.job_id", "=", param("jobId")),
  );
  const reopen = db.prepared<{ seq: number; at: string }>("reopen-dependent", () =>
    db.kysely
      .updateTable("jobs")
      .set({ status: sql.lit("blocked"), failure_reason: null, finished_at: null, updated_at: param("at") })
      .where("seq", "=", param("seq"))
      .where("status", "=", sql.lit("failed")),
  );
  const stack = [jobId];
  while (stack.length > 0) {
    const dependency = stack.pop() as string;
    for (const dependent of dependentsOf(ctx, dependency)) {
      const statuses = dependencyStatuses.all({ jobId: dependent.id }).map((row) => row.status as JobStatus);
      const transition = onDependencyRetried({ ...factsOf(dependent), failureReason: dependent.failure_reason }, statuses);
      if (!transition || reopen.run({ seq: dependent.seq, at }) === 0) continue;
      audit.write(
        {
          event_type: "job.retried",
          entity_type: "job",
          entity_id: dependent.id,
          client_id: actor,
          details: { status: transition.status, because: dependency },
        },
        at,
      );
      stack.push(dependent.id);
    }
  }
}
