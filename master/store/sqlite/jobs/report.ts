// report: results from a node, each accepted only for the job's current lease
// (status running, same node, same attempt); the same accepted report again is a
// harmless duplicate, anything older is a stale attempt that changes nothing.
import { sql } from "kysely";
import type { JobError, JobReport, JobStatus, ReportManyResult, ReportOutcome } from "../../types.js";
import type { StoreContext } from "../context.js";
import { inJsonArray, param, type Prepared } from "../database.js";
import { priorityName, type JobRow } from "../rows.js";
import { failDependents, nextAgingAt, releaseDependents } from "./lifecycle.js";

type Lease = Pick<
  JobRow,
  | "seq" | "id" | "status" | "node_id" | "attempt" | "retry_count" | "max_retries"
  | "effective_priority" | "cancel_requested" | "reported_attempt" | "reported_status"
  | "type" | "priority" | "started_at"
>;

const LEASE_COLUMNS = [
  "seq", "id", "status", "node_id", "attempt", "retry_count", "max_retries", "effective_priority",
  "cancel_requested", "reported_attempt", "reported_status", "type", "priority", "started_at",
] as const satisfies readonly (keyof Lease)[];

interface Finish {
  seq: number;
  status: string;
  result: string | null;
  error: string | null;
  failureReason: string | null;
  attempt: number;
  reported: string;
  at: string;
}

export interface ReportStatements {
  lease: Prepared<Lease, { id: string }>;
  /** `ids`: a JSON array of job ids. */
  leases: Prepared<Lease, { ids: string }>;
  /** `done`: a JSON array of {seq, attempt, result} (result as JSON text). */
  complete: Prepared<unknown, { done: string; at: string }>;
  finish: Prepared<unknown, Finish>;
  retryLater: Prepared<
    unknown,
    { seq: number; status: string; error: string; retryCount: number; readyAt: string; attempt: number; at: string; agingAt: string | null }
  >;
}

export function prepareReport(ctx: StoreContext): ReportStatements {
  const { db } = ctx;
  const k = db.kysely;
  return {
    lease: db.prepare(
      k.selectFrom("jobs").select(LEASE_COLUMNS).where("id", "=", param("id")),
    ),
    leases: db.prepare(k.selectFrom("jobs").select(LEASE_COLUMNS).where("id", "in", inJsonArray<string>("ids"))),
    // Many completions in one statement; NOT INDEXED: by seq, the primary key (see claim).
    complete: db.prepareSql(sql`
      UPDATE jobs NOT INDEXED
      SET status = 'completed', result = done.value ->> 'result', error = NULL, failure_reason = NULL,
          reported_attempt = done.value ->> 'attempt', reported_status = 'completed',
          stall_at = NULL, lease_expires_at = NULL, finished_at = ${param("at")}, updated_at = ${param("at")}
      FROM json_each(${param("done")}) AS done
      WHERE jobs.seq = done.value ->> 'seq' AND jobs.status = 'running'`),
    finish: db.prepare(
      k
        .updateTable("jobs")
        .set({
          status: param("status"),
          result: param("result"),
          error: param("error"),
          failure_reason: param("failureReason"),
          reported_attempt: param("attempt"),
          reported_status: param("reported"),
          stall_at: null,
          lease_expires_at: null,
          finished_at: param("at"),
          updated_at: param("at"),
        })
        .where("seq", "=", param("seq"))
        .where("status", "=", sql.lit("running")),
    ),
    retryLater: db.prepare(
      k
        .updateTable("jobs")
        .set({
          status: param("status"),
          error: param("error"),
          retry_count: param("retryCount"),
          ready_at: param("readyAt"),
          aging_at: param("agingAt"),
          node_id: null,
          stall_at: null,
          lease_expires_at: null,
          reported_attempt: param("attempt"),
          reported_status: sql.lit("failed"),
          updated_at: param("at"),
        })
        .where("seq", "=", param("seq"))
        .where("status", "=", sql.lit("running")),
    ),
  };
}

function normalizeError(error: JobError | undefined): JobError {
  const message = error?.message ?? "failed without a message";
  const normalized: JobError = { message, retryable: error?.retryable !== false };
  if (error?.code !== undefined) normalized.code = error.code;
  return normalized;
}

interface Accepted {
  /** Jobs that became ready (a retry without delay, released dependents). */
  ready: number;
  status: JobStatus;
  failureReason: string | null;
}

/** Accept one report for the current lease. */
function accept(ctx: StoreContext, statements: ReportStatements, lease: Lease, report: JobReport, nodeId: string): Accepted {
  const now = ctx.clock.now();
  const at = now.toISOString();
  const base = { entity_type: "job", entity_id: lease.id, client_id: null };
  const details = { node_id: nodeId, attempt: lease.attempt };
  const error = report.status === "failed" ? normalizeError(report.error) : null;
  const finish = (status: string, failureReason: string | null) =>
    statements.finish.run({
      seq: lease.seq,
      status,
      result: report.status === "completed" ? JSON.stringify(report.result ?? null) : null,
      error: error === null ? null : JSON.stringify(error),
      failureReason,
      attempt: lease.attempt,
      reported: report.status,
      at,
    });

  if (lease.cancel_requested === 1) {
    finish("canceled", null);
    ctx.audit.write({ ...base, event_type: "job.canceled", details: { ...details, reported: report.status } }, at);
    failDependents(ctx, lease.id, at);
    return { ready: 0, status: "canceled", failureReason: null };
  }
  if (error === null) {
    finish("completed", null);
    ctx.audit.write({ ...base, event_type: "job.completed", details }, at);
    return { ready: releaseDependents(ctx, [lease.id], at), status: "completed", failureReason: null };
  }
  const retryCount = lease.retry_count + 1;
  if (!error.retryable || retryCount > lease.max_retries) {
    const failureReason = error.retryable ? "max_retries_exceeded" : "non_retryable";
    finish("failed", failureReason);
    ctx.audit.write(
      { ...base, event_type: "job.failed", details: { ...details, failure_reason: failureReason, error } },
      at,
    );
    failDependents(ctx, lease.id, at);
    return { ready: 0, status: "failed", failureReason };
  }
  const delayMs = Math.max(0, ctx.policy.retryDelayMs(retryCount));
  const readyAt = new Date(now.getTime() + delayMs);
  const status = delayMs > 0 ? "scheduled" : "pending";
  statements.retryLater.run({
    seq: lease.seq,
    status,
    error: JSON.stringify(error),
    retryCount,
    readyAt: readyAt.toISOString(),
    agingAt: status === "pending" ? nextAgingAt(lease.effective_priority, now, ctx.policy.agingMs) : null,
    attempt: lease.attempt,
    at,
  });
  ctx.audit.write(
    {
      ...base,
      event_type: "job.retry_scheduled",
      details: { ...details, retry_count: retryCount, delay_s: delayMs / 1000, ready_at: readyAt.toISOString(), error },
    },
    at,
  );
  return { ready: status === "pending" ? 1 : 0, status, failureReason: null };
}

/** Plain completions of current leases, applied together: one UPDATE, one audit INSERT. */
function completeMany(ctx: StoreContext, statements: ReportStatements, done: { lease: Lease; report: JobReport }[], nodeId: string): number {
  if (done.length === 0) return 0;
  const at = ctx.clock.now().toISOString();
  statements.complete.run({
    done: JSON.stringify(
      done.map(({ lease, report }) => ({ seq: lease.seq, attempt: lease.attempt, result: JSON.stringify(report.result ?? null) })),
    ),
    at,
  });
  ctx.audit.writeMany(
    done.map(({ lease }) => ({
      event_type: "job.completed",
      entity_type: "job",
      entity_id: lease.id,
      client_id: null,
      details: { node_id: nodeId, attempt: lease.attempt },
    })),
    at,
  );
  return releaseDependents(
    ctx,
    done.map(({ lease }) => lease.id),
    at,
  );
}

export function reportResults(
  ctx: StoreContext,
  statements: ReportStatements,
  params: { nodeId: string; reports: JobReport[] },
): ReportManyResult {
  return ctx.db.transaction(() => {
    const ids = params.reports.map((report) => report.jobId);
    // Every lease in one read, and plain completions applied together, unless a job is
    // reported twice in this batch: then the second must see what the first changed, so
    // each is read and applied in turn.
    const together = ids.length > 1 && new Set(ids).size === ids.length;
    const leases = together ? new Map(statements.leases.all({ ids: JSON.stringify(ids) }).map((lease) => [lease.id, lease])) : undefined;
    const completions: { lease: Lease; report: JobReport }[] = [];
    const items: ReportOutcome[] = [];
    let ready = 0;
    for (const report of params.reports) {
      const lease = leases ? leases.get(report.jobId) : statements.lease.get({ id: report.jobId });
      if (!lease) {
        items.push({ jobId: report.jobId, verdict: "not_found" });
      } else if (lease.status === "running" && lease.node_id === params.nodeId && lease.attempt === report.attempt) {
        let outcome: Pick<Accepted, "status" | "failureReason">;
        if (together && report.status === "completed" && lease.cancel_requested !== 1) {
          completions.push({ lease, report });
          outcome = { status: "completed", failureReason: null };
        } else {
          const accepted = accept(ctx, statements, lease, report, params.nodeId);
          ready += accepted.ready;
          outcome = accepted;
        }
        const startedAt = lease.started_at === null ? null : new Date(lease.started_at).getTime();
        items.push({
          jobId: report.jobId,
          verdict: "accepted",
          effect: {
            type: lease.type,
            priority: priorityName(lease.priority),
            status: outcome.status,
            failureReason: outcome.failureReason,
            runMs: startedAt === null ? null : Math.max(0, ctx.clock.now().getTime() - startedAt),
          },
        });
      } else if (lease.reported_attempt === report.attempt && lease.reported_status === report.status) {
        items.push({ jobId: report.jobId, verdict: "duplicate" });
      } else {
        items.push({ jobId: report.jobId, verdict: "stale_attempt" });
      }
    }
    ready += completeMany(ctx, statements, completions, params.nodeId);
    return { items, ready };
  });
}
