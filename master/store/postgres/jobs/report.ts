// report on PostgreSQL: results from a node, each accepted only for the job's current lease
// (running, on that node, under that attempt) as the core's rules decide (onReport), and
// applied with writes guarded by that lease. Rows are locked in seq order, as heartbeats and
// sweeps lock them: two masters taking overlapping batches cannot deadlock.
import { sql } from "kysely";
import { isCurrentLease, isFinal, onReport, type HandOut, type Transition } from "../../../queue/transitions.js";
import { priorityName } from "../../pages.js";
import type { JobError, JobReport, JobStatus, ReportManyResult, ReportOutcome } from "../../types.js";
import { changed, rowsOf, type PgContext } from "../context.js";
import type { Tx } from "../database.js";
import type { JobRow } from "../rows.js";
import { endAttempt, factsOf, failDependents, nextAgingAt, releaseDependents, errorWithoutNul } from "./lifecycle.js";

type Lease = Pick<
  JobRow,
  "seq" | "id" | "status" | "node_id" | "attempt" | "retry_count" | "max_retries" | "effective_priority" | "cancel_requested" | "type" | "priority" | "started_at"
>;

function normalizeError(error: JobError | undefined): JobError {
  const normalized: JobError = { message: error?.message ?? "failed without a message", retryable: error?.retryable !== false };
  if (error?.code !== undefined) normalized.code = error.code;
  return normalized;
}

/** Apply what the rules decided for a report of the current lease, guarded by that lease. */
async function apply(ctx: PgContext, tx: Tx, lease: Lease, report: JobReport, transition: Transition): Promise<{ status: JobStatus; failureReason: string | null }> {
  const now = ctx.clock.now();
  const at = now.toISOString();
  const error = report.status === "failed" ? normalizeError(report.error) : null;
  const { status, failureReason } = transition;
  await endAttempt(tx, { jobId: lease.id, attempt: lease.attempt, outcome: transition.attemptOutcome ?? report.status, reported: report.status, error, logTail: report.logTail ?? null, at });
  if (transition.finished) {
    const completed = status === "completed";
    await changed(
      tx,
      sql`UPDATE jobs SET status = ${status},
            result = ${completed ? JSON.stringify(report.result ?? null) : null}::json,
            error = ${error === null || status === "canceled" ? null : JSON.stringify(errorWithoutNul(error))}::json,
            failure_reason = ${failureReason},
            progress = CASE WHEN ${completed} THEN 100 ELSE progress END,
            progress_message = CASE WHEN ${completed} THEN NULL ELSE progress_message END,
            stall_at = NULL, lease_expires_at = NULL, finished_at = ${at}, updated_at = ${at}
          WHERE seq = ${lease.seq} AND status = 'running' AND attempt = ${lease.attempt}`,
    );
    if (transition.dependents === "release") await releaseDependents(ctx, tx, [lease.id], at);
    if (transition.dependents === "fail") await failDependents(tx, lease.id, at);
    return { status, failureReason };
  }
  const readyAt = transition.readyAt ?? now;
  await changed(
    tx,
    sql`UPDATE jobs SET status = ${status}, error = ${error === null ? null : JSON.stringify(errorWithoutNul(error))}::json, retry_count = ${transition.retryCount},
          ready_at = ${readyAt.toISOString()}, aging_at = ${status === "pending" ? nextAgingAt(lease.effective_priority, now, ctx.policy.agingMs) : null},
          node_id = NULL, stall_at = NULL, lease_expires_at = NULL, updated_at = ${at}
        WHERE seq = ${lease.seq} AND status = 'running' AND attempt = ${lease.attempt}`,
  );
  return { status, failureReason: null };
}

export async function reportResults(ctx: PgContext, tx: Tx, params: { nodeId: string; reports: JobReport[] }): Promise<ReportManyResult> {
  const ids = [...new Set(params.reports.map((report) => report.jobId))].sort();
  const rows = await rowsOf(
    tx,
    sql<Lease>`SELECT seq, id, status, node_id, attempt, retry_count, max_retries, effective_priority, cancel_requested, type, priority, started_at
               FROM jobs WHERE id = ANY(${ids}::text[]) ORDER BY seq FOR UPDATE`,
  );
  const leases = new Map(rows.map((row) => [row.id, row]));
  const items: ReportOutcome[] = [];
  for (const report of params.reports) {
    const lease = leases.get(report.jobId);
    if (!lease) {
      items.push({ jobId: report.jobId, verdict: "not_found" });
      continue;
    }
    const facts = factsOf(lease);
    let handed: HandOut | null = null;
    if (!isCurrentLease(facts, params.nodeId, report.attempt)) {
      const [row] = await rowsOf(
        tx,
        sql<{ node_id: string; reported: string | null }>`SELECT node_id, reported FROM job_attempts WHERE job_id = ${lease.id} AND attempt = ${report.attempt}`,
      );
      handed = row ? { nodeId: row.node_id, reported: row.reported } : null;
    }
    const now = ctx.clock.now();
    const decision = onReport(facts, handed, { ...report, nodeId: params.nodeId }, { now, retryDelayMs: ctx.policy.retryDelayMs });
    if (decision.verdict !== "accepted") {
      items.push({ jobId: report.jobId, verdict: decision.verdict });
      continue;
    }
    const accepted = await apply(ctx, tx, lease, report, decision.transition);
    // The same job reported twice in one batch: the second sees what the first did.
    leases.set(lease.id, { ...lease, status: accepted.status, node_id: accepted.status === "running" ? lease.node_id : isFinal(accepted.status) ? lease.node_id : null });
    const startedAt = lease.started_at === null ? null : new Date(lease.started_at).getTime();
    items.push({
      jobId: report.jobId,
      verdict: "accepted",
      effect: {
        type: lease.type,
        priority: priorityName(lease.priority),
        status: accepted.status,
        failureReason: accepted.failureReason,
        runMs: startedAt === null ? null : Math.max(0, now.getTime() - startedAt),
      },
    });
  }
  tx.mark({
    claimable: items.some((item) => item.verdict === "accepted"),
    scheduled: items.some((item) => item.effect?.status === "scheduled"),
    finished: items.filter((item) => item.effect !== undefined && isFinal(item.effect.status)).map((item) => item.jobId),
  });
  return { items };
}
