// Transitions shared by several verbs: a lease ending without a report, a job
// finishing (its dependents released or failed), aging arithmetic.
// Every function here runs inside its caller's transaction.
import { sql } from "kysely";
import { AGING_CEILING_WEIGHT, type LeaseEndReason, type RescuedJob } from "../../types.js";
import type { StoreContext } from "../context.js";
import { inJsonArray, param } from "../database.js";
import type { JobRow } from "../rows.js";

/** When aging next lifts a job of `weight` that became ready at `readyAt`; null once at the ceiling. */
export function nextAgingAt(weight: number, readyAt: Date, agingMs: number): string | null {
  if (weight >= AGING_CEILING_WEIGHT) return null;
  return new Date(readyAt.getTime() + agingMs).toISOString();
}

/** The class a job of `weight` has reached after waiting since `readyAt` (API.md §2). */
export function agedWeight(weight: number, readyAt: Date, now: Date, agingMs: number): number {
  if (weight >= AGING_CEILING_WEIGHT) return weight;
  const intervals = Math.floor((now.getTime() - readyAt.getTime()) / agingMs);
  return Math.min(AGING_CEILING_WEIGHT, weight + Math.max(0, intervals));
}

/** What ending a lease needs of a running job. */
export type EndingLease = Pick<
  JobRow,
  "seq" | "id" | "node_id" | "attempt" | "retry_count" | "max_retries" | "cancel_requested" | "effective_priority"
>;

export const ENDING_LEASE_COLUMNS = [
  "seq", "id", "node_id", "attempt", "retry_count", "max_retries", "cancel_requested", "effective_priority",
] as const satisfies readonly (keyof EndingLease)[];

/** A job whose lease ended after a cancel was asked: canceled, and its dependents fail. */
function cancelEnded(ctx: StoreContext, job: EndingLease, reason: LeaseEndReason, actor: string | null, at: string): "canceled" {
  const { db, audit } = ctx;
  db.prepared<{ seq: number; at: string }>("lease-end-canceled", () =>
    db.kysely
      .updateTable("jobs")
      .set({
        status: sql.lit("canceled"),
        lease_end_reason: sql.lit("canceled"),
        stall_at: null,
        lease_expires_at: null,
        finished_at: param("at"),
        updated_at: param("at"),
      })
      .where("seq", "=", param("seq")),
  ).run({ seq: job.seq, at });
  audit.write(
    { entity_type: "job", entity_id: job.id, client_id: actor, event_type: "job.canceled", details: { attempt: job.attempt, reason } },
    at,
  );
  failDependents(ctx, job.id, at);
  return "canceled";
}

/** A job whose lease ended with its retries spent: failed, and its dependents fail. */
function failEnded(ctx: StoreContext, job: EndingLease, reason: LeaseEndReason, actor: string | null, at: string): "failed" {
  const { db, audit } = ctx;
  db.prepared<{ seq: number; at: string; reason: string }>("lease-end-failed", () =>
    db.kysely
      .updateTable("jobs")
      .set({
        status: sql.lit("failed"),
        failure_reason: sql.lit("max_retries_exceeded"),
        lease_end_reason: param("reason"),
        stall_at: null,
        lease_expires_at: null,
        finished_at: param("at"),
        updated_at: param("at"),
      })
      .where("seq", "=", param("seq")),
  ).run({ seq: job.seq, at, reason });
  audit.write(
    {
      entity_type: "job",
      entity_id: job.id,
      client_id: actor,
      event_type: "job.failed",
      details: { attempt: job.attempt, failure_reason: "max_retries_exceeded", reason },
    },
    at,
  );
  failDependents(ctx, job.id, at);
  return "failed";
}

/**
 * Running jobs whose leases ended without a report from their node (node dead,
 * stalled, node left): each canceled if a cancel was asked, else back to the
 * queue, or failed once `max_retries` is spent. The jobs going back to the queue,
 * nearly all of them, go in one statement, and every job's first audit row in
 * another (a dead node's sweep may end hundreds of leases; a statement each cost
 * about twice as much).
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
  const requeue: { seq: number; retry_count: number; aging_at: string | null }[] = [];
  const rescued = jobs.map((job): RescuedJob => {
    let outcome: RescuedJob["outcome"] = "requeued";
    if (job.cancel_requested === 1) outcome = cancelEnded(ctx, job, reason, actor, at);
    else if (job.retry_count + 1 > job.max_retries) outcome = failEnded(ctx, job, reason, actor, at);
    else requeue.push({ seq: job.seq, retry_count: job.retry_count + 1, aging_at: nextAgingAt(job.effective_priority, now, ctx.policy.agingMs) });
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
        WHERE jobs.seq = back.value ->> 'seq'`,
    ).run({ jobs: JSON.stringify(requeue), at, reason });
  }
  return rescued;
}

/**
 * Jobs completed: each blocked dependent whose dependencies are now all
 * completed is released. Answers how many became pending.
 */
export function releaseDependents(ctx: StoreContext, jobIds: readonly string[], at: string): number {
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
  if (found.length === 0) return 0;
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
      .where("seq", "=", param("seq")),
  );
  let ready = 0;
  for (const dependent of dependents) {
    if (unfinished.get({ jobId: dependent.id })) continue;
    const runAt = dependent.run_at === null ? null : new Date(dependent.run_at);
    const scheduled = runAt !== null && runAt > now;
    const readyAt = scheduled ? runAt : now;
    release.run({
      seq: dependent.seq,
      status: scheduled ? "scheduled" : "pending",
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
        details: { status: scheduled ? "scheduled" : "pending" },
      },
      at,
    );
    if (!scheduled) ready += 1;
  }
  return ready;
}

/** The ids of the jobs that wait on `jobId` (through job_dependencies_reverse). */
function dependentsOf(ctx: StoreContext, jobId: string): string[] {
  const { db } = ctx;
  return db
    .prepared<{ jobId: string }, { job_id: string }>("dependents", () =>
      db.kysely.selectFrom("job_dependencies").select("job_id").where("depends_on_id", "=", param("jobId")),
    )
    .all({ jobId })
    .map((row) => row.job_id);
}

/** A job ended failed or canceled: every job waiting on it, directly or not, fails. */
export function failDependents(ctx: StoreContext, jobId: string, at: string): void {
  const { db, audit } = ctx;
  const failDependent = db.prepared<{ id: string; at: string }>("fail-dependent", () =>
    db.kysely
      .updateTable("jobs")
      .set({ status: sql.lit("failed"), failure_reason: sql.lit("dependency_failed"), finished_at: param("at"), updated_at: param("at") })
      .where("id", "=", param("id"))
      .where("status", "=", sql.lit("blocked")),
  );
  const stack = [jobId];
  while (stack.length > 0) {
    const dependency = stack.pop() as string;
    for (const id of dependentsOf(ctx, dependency)) {
      const failed = failDependent.run({ id, at });
      if (failed === 0) continue;
      audit.write(
        {
          event_type: "job.failed",
          entity_type: "job",
          entity_id: id,
          client_id: null,
          details: { failure_reason: "dependency_failed", dependency },
        },
        at,
      );
      stack.push(id);
    }
  }
}

/**
 * A failed or canceled job is retried: the jobs that failed only because of it
 * wait for it again (blocked), so retrying the root of a chain resumes the chain.
 */
export function reopenDependents(ctx: StoreContext, jobId: string, at: string, actor: string | null): void {
  const { db, audit } = ctx;
  const stack = [jobId];
  while (stack.length > 0) {
    const dependency = stack.pop() as string;
    const reopened = dependentsOf(ctx, dependency).filter((id) => {
      // Not while another of its dependencies is still failed: it would wait forever.
      const stillFailed = db.get(
        db.kysely
          .selectFrom("job_dependencies as d")
          .innerJoin("jobs as j", "j.id", "d.depends_on_id")
          .select("j.seq")
          .where("d.job_id", "=", id)
          .where("j.status", "in", [sql.lit("failed"), sql.lit("canceled")])
          .limit(1),
      );
      if (stillFailed) return false;
      return (
        db.run(
          db.kysely
            .updateTable("jobs")
            .set({ status: "blocked", failure_reason: null, finished_at: null, updated_at: at })
            .where("id", "=", id)
            .where("status", "=", sql.lit("failed"))
            .where("failure_reason", "=", "dependency_failed"),
        ) > 0
      );
    });
    for (const id of reopened) {
      audit.write(
        {
          event_type: "job.retried",
          entity_type: "job",
          entity_id: id,
          client_id: actor,
          details: { status: "blocked", because: dependency },
        },
        at,
      );
      stack.push(id);
    }
  }
}
