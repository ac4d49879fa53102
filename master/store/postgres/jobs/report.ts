// report on PostgreSQL: results from a node, each accepted only for the job's current lease
// (running, on that node, under that attempt) as the core's rules decide (onReport), and
// applied with writes guarded by that lease. Rows are locked in seq order, as heartbeats and
// sweeps lock them: two masters taking overlapping batches cannot deadlock. The jobs a batch
// finishes are written with one statement, their attempts and the jobs, however
// many there are (a round trip per job was most of a drain's time on PostgreSQL), and their
// dependents are read only when a job waits on one of them.
import { sql } from "kysely";
import { isCurrentLease, isFinal, onReport, type HandOut, type Transition } from "../../../queue/transitions.js";
import { priorityName } from "../../pages.js";
import type { JobError, JobReport, ReportManyResult, ReportOutcome } from "../../types.js";
import { changed, rowsOf, type PgContext } from "../context.js";
import { PREPARED, type Tx } from "../database.js";
import type { JobRow } from "../rows.js";
import { endAttempt, errorWithoutNul, factsOf, failDependentsOf, nextAgingAt, releaseDependents, withoutNul } from "./lifecycle.js";

type Lease = Pick<
  JobRow,
  "seq" | "id" | "status" | "node_id" | "attempt" | "retry_count" | "max_retries" | "effective_priority" | "cancel_requested" | "type" | "priority" | "started_at"
>;

function normalizeError(error: JobError | undefined): JobError {
  const normalized: JobError = { message: error?.message ?? "failed without a message", retryable: error?.retryable !== false };
  if (error?.code !== undefined) normalized.code = error.code;
  return normalized;
}

const NO_SEQUENTIAL_SCANS = sql`SET LOCAL enable_seqscan = off`;
const SEQUENTIAL_SCANS = sql`SET LOCAL enable_seqscan = on`;

/** A job the batch finishes: its lease's attempt ended and the job written final, with the others'. */
interface Finish {
  lease: Lease;
  report: JobReport;
  transition: Transition;
  error: JobError | null;
}

/**
 * Write the jobs a batch finishes, all at once: one statement updates their attempts and the
 * jobs (each still guarded by its lease: running, that attempt) and says whether any job waits
 * on one of them; only then are their dependents read and released or failed.
 */
async function finishAll(ctx: PgContext, tx: Tx, finishes: readonly Finish[], at: string): Promise<void> {
  if (finishes.length === 0) return;
  const attempts = finishes.map(({ lease, report, transition, error }) => ({
    job_id: lease.id,
    attempt: lease.attempt,
    outcome: transition.attemptOutcome ?? report.status,
    reported: report.status,
    error: error === null ? null : JSON.stringify(errorWithoutNul(error)),
    log_tail: report.logTail === undefined || report.logTail === null ? null : withoutNul(report.logTail),
  }));
  // JSON values travel as text, so that a result of JSON null is stored as null, not as no result.
  const jobs = finishes.map(({ lease, report, transition, error }) => ({
    seq: lease.seq,
    attempt: lease.attempt,
    status: transition.status,
    result: transition.status === "completed" ? JSON.stringify(report.result ?? null) : null,
    error: error === null || transition.status === "canceled" ? null : JSON.stringify(errorWithoutNul(error)),
    failure_reason: transition.failureReason,
  }));
  const ids = finishes.map((finish) => finish.lease.id);
  // Prepared, so planned once per connection (its generic plan is kept), and so planned for
  // keys only, whatever the statistics say: left to the planner, a young table's statistics
  // (a drain's first seconds, a plan kept from then) made it read every attempt, or every
  // running job through jobs_running, for each batch; and with `= ANY` of the keys
  // added, it joined each attempt found against the whole batch again (300 results: 0.35 s).
  // So no sequential scans for this statement: each row of the batch finds its attempt and
  // its job through their primary keys, with `(status = 'running') IS TRUE` keeping the
  // planner off the partial indexes of running jobs.
  await tx.db.executeQuery(NO_SEQUENTIAL_SCANS.compile(tx.db));
  const [written] = await rowsOf(
    tx,
    sql<{ waited_on: boolean }>`${PREPARED}
      WITH attempts AS (
        UPDATE job_attempts AS a SET outcome = r.outcome, reported = r.reported, error = r.error::json, log_tail = r.log_tail, finished_at = ${at}
        FROM json_to_recordset(${JSON.stringify(attempts)}::json) AS r(job_id text, attempt integer, outcome text, reported text, error text, log_tail text)
        WHERE a.job_id = r.job_id AND a.attempt = r.attempt AND a.outcome = 'running'
      ), finished AS (
        UPDATE jobs AS j SET status = r.status, result = r.result::json, error = r.error::json, failure_reason = r.failure_reason,
          progress = CASE WHEN r.status = 'completed' THEN 100 ELSE j.progress END,
          progress_message = CASE WHEN r.status = 'completed' THEN NULL ELSE j.progress_message END,
          stall_at = NULL, lease_expires_at = NULL, finished_at = ${at}, updated_at = ${at}
        FROM json_to_recordset(${JSON.stringify(jobs)}::json) AS r(seq bigint, attempt integer, status text, result text, error text, failure_reason text)
        WHERE j.seq = r.seq AND (j.status = 'running') IS TRUE AND j.attempt = r.attempt
      )
      SELECT EXISTS (SELECT 1 FROM job_dependencies WHERE depends_on_id = ANY(${ids}::text[])) AS waited_on`,
  );
  if (written?.waited_on !== true) return;
  // The dependents' statements plan as they would anywhere else.
  await tx.db.executeQuery(SEQUENTIAL_SCANS.compile(tx.db));
  await releaseDependents(
    ctx,
    tx,
    finishes.filter((finish) => finish.transition.dependents === "release").map((finish) => finish.lease.id),
    at,
  );
  await failDependentsOf(
    tx,
    finishes.filter((finish) => finish.transition.dependents === "fail").map((finish) => finish.lease.id),
    at,
  );
}

/** Apply what the rules decided for a report of the current lease that does not finish its job (a retry), guarded by that lease. */
async function requeue(ctx: PgContext, tx: Tx, lease: Lease, report: JobReport, transition: Transition): Promise<void> {
  const now = ctx.clock.now();
  const at = now.toISOString();
  const error = report.status === "failed" ? normalizeError(report.error) : null;
  const { status } = transition;
  await endAttempt(tx, { jobId: lease.id, attempt: lease.attempt, outcome: transition.attemptOutcome ?? report.status, reported: report.status, error, logTail: report.logTail ?? null, at });
  const readyAt = transition.readyAt ?? now;
  await changed(
    tx,
    sql`UPDATE jobs SET status = ${status}, error = ${error === null ? null : JSON.stringify(errorWithoutNul(error))}::json, retry_count = ${transition.retryCount},
          ready_at = ${readyAt.toISOString()}, aging_at = ${status === "pending" ? nextAgingAt(lease.effective_priority, now, ctx.policy.agingMs) : null},
          node_id = NULL, stall_at = NULL, lease_expires_at = NULL, updated_at = ${at}
        WHERE seq = ${lease.seq} AND status = 'running' AND attempt = ${lease.attempt}`,
  );
}

export async function reportResults(ctx: PgContext, tx: Tx, params: { nodeId: string; reports: JobReport[] }): Promise<ReportManyResult> {
  const ids = [...new Set(params.reports.map((report) => report.jobId))].sort();
  // Each id looked up through its unique index, then the rows locked in seq order. (With
  // `id = ANY(…)` the planner read the whole table for batches of 100 or more while its
  // statistics were young: 10 ms for 100 ids at 20,000 jobs, against 0.5 ms so.)
  const rows = await rowsOf(
    tx,
    sql<Lease>`${PREPARED}WITH wanted AS (
                 SELECT j.seq FROM unnest(${ids}::text[]) AS u(id) CROSS JOIN LATERAL (SELECT seq FROM jobs WHERE jobs.id = u.id LIMIT 1) j
               )
               SELECT l.* FROM (SELECT seq FROM wanted ORDER BY seq OFFSET 0) w
               CROSS JOIN LATERAL (
                 SELECT seq, id, status, node_id, attempt, retry_count, max_retries, effective_priority, cancel_requested, type, priority, started_at
                 FROM jobs WHERE jobs.seq = w.seq FOR UPDATE
               ) l`,
  );
  const leases = new Map(rows.map((row) => [row.id, row]));
  const items: ReportOutcome[] = [];
  const finishes: Finish[] = [];
  // Attempts this batch ended, as job_attempts will read once the batch's writes are made.
  const endedHere = new Map<string, HandOut>();
  const now = ctx.clock.now();
  for (const report of params.reports) {
    const lease = leases.get(report.jobId);
    if (!lease) {
      items.push({ jobId: report.jobId, verdict: "not_found" });
      continue;
    }
    const facts = factsOf(lease);
    let handed: HandOut | null = null;
    if (!isCurrentLease(facts, params.nodeId, report.attempt)) {
      handed = endedHere.get(`${lease.id}\u0000${report.attempt}`) ?? null;
      if (handed === null) {
        const [row] = await rowsOf(
          tx,
          sql<{ node_id: string; reported: string | null }>`SELECT node_id, reported FROM job_attempts WHERE job_id = ${lease.id} AND attempt = ${report.attempt}`,
        );
        handed = row ? { nodeId: row.node_id, reported: row.reported } : null;
      }
    }
    const decision = onReport(facts, handed, { ...report, nodeId: params.nodeId }, { now, retryDelayMs: ctx.policy.retryDelayMs });
    if (decision.verdict !== "accepted") {
      items.push({ jobId: report.jobId, verdict: decision.verdict });
      continue;
    }
    const { transition } = decision;
    if (transition.finished) {
      finishes.push({ lease, report, transition, error: report.status === "failed" ? normalizeError(report.error) : null });
    } else {
      await requeue(ctx, tx, lease, report, transition);
    }
    // The same job reported twice in one batch: the second sees what the first did.
    endedHere.set(`${lease.id}\u0000${lease.attempt}`, { nodeId: params.nodeId, reported: report.status });
    leases.set(lease.id, { ...lease, status: transition.status, node_id: transition.status === "running" ? lease.node_id : isFinal(transition.status) ? lease.node_id : null });
    const startedAt = lease.started_at === null ? null : new Date(lease.started_at).getTime();
    items.push({
      jobId: report.jobId,
      verdict: "accepted",
      effect: {
        type: lease.type,
        priority: priorityName(lease.priority),
        status: transition.status,
        failureReason: transition.finished ? transition.failureReason : null,
        runMs: startedAt === null ? null : Math.max(0, now.getTime() - startedAt),
      },
    });
  }
  await finishAll(ctx, tx, finishes, now.toISOString());
  tx.mark({
    claimable: items.some((item) => item.verdict === "accepted"),
    scheduled: items.some((item) => item.effect?.status === "scheduled"),
    finished: items.filter((item) => item.effect !== undefined && isFinal(item.effect.status)).map((item) => item.jobId),
  });
  return { items };
}
