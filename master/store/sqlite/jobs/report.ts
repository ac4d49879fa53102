// report: results from a node, each accepted only for the job's current lease
// (status running, same node, same attempt), as the job's rules decide (onReport).
// Each accepted report ends its attempt in job_attempts, with the handler's log tail;
// the audit log is for the master's and people's decisions, not a node's results.
import { sql, type RawBuilder } from "kysely";
import type { JobError, JobReport, JobStatus, ReportManyResult, ReportOutcome } from "../../types.js";
import type { StoreContext } from "../context.js";
import { inJsonArray, param, type Prepared } from "../database.js";
import { textList, unpackedText } from "../packed-texts.js";
import { priorityName, type JobRow } from "../rows.js";
import { isCurrentLease, isFinal, onReport, type HandOut, type Transition } from "../../../queue/transitions.js";
import { endAttempt, endCompletedAttempts, handOut } from "./attempts.js";
import { factsOf, failDependents, nextAgingAt, releaseDependents } from "./lifecycle.js";

type Lease = Pick<
  JobRow,
  | "seq" | "id" | "status" | "node_id" | "attempt" | "retry_count" | "max_retries"
  | "effective_priority" | "cancel_requested" | "type" | "priority" | "started_at"
>;

const LEASE_COLUMNS = [
  "seq", "id", "status", "node_id", "attempt", "retry_count", "max_retries", "effective_priority",
  "cancel_requested", "type", "priority", "started_at",
] as const satisfies readonly (keyof Lease)[];

type Completed = Pick<JobRow, "id" | "attempt" | "type" | "priority" | "started_at">;

interface Finish {
  seq: number;
  status: string;
  result: string | null;
  error: string | null;
  failureReason: string | null;
  attempt: number;
  at: string;
}

export interface ReportStatements {
  lease: Prepared<Lease, { id: string }>;
  /** `ids`: a JSON array of job ids. */
  leases: Prepared<Lease, { ids: string }>;
  /**
   * Completes the listed jobs that are this node's current leases with no cancel
   * asked, and answers those. `done`: a JSON array of {id, attempt, result} (result as JSON text).
   */
  complete: Prepared<Completed, { done: string; nodeId: string; at: string }>;
  /** `complete` with the results packed (packed-texts.ts): `done`'s items {id, attempt, from, bytes} in `results`. */
  completePacked: Prepared<Completed, { done: string; results: Buffer; nodeId: string; at: string }>;
  finish: Prepared<unknown, Finish>;
  retryLater: Prepared<
    unknown,
    { seq: number; status: string; error: string; retryCount: number; readyAt: string; attempt: number; at: string; agingAt: string | null }
  >;
}

/**
 * Many completions in one statement, each checked against its lease in the same pass (no
 * read before): the rules' answer to a completion of the current lease with no cancel asked
 * is `completed` (onReport), and this applies it where exactly that holds; every other
 * report goes through onReport one by one. Found by id: the unary + keeps SQLite from
 * walking the node's running jobs (jobs_running) and the whole list for each. `result`: the
 * result's text, from a `done` row.
 */
function completeSql(result: RawBuilder<unknown>): RawBuilder<Completed> {
  return sql<Completed>`
    UPDATE jobs
    SET status = 'completed', result = ${result}, error = NULL, failure_reason = NULL,
        progress = 100, progress_message = NULL, stall_at = NULL, lease_expires_at = NULL, finished_at = ${param("at")}, updated_at = ${param("at")}
    FROM json_each(${param("done")}) AS done
    WHERE jobs.id = done.value ->> 'id' AND +jobs.status = 'running' AND +jobs.node_id = ${param("nodeId")}
      AND jobs.attempt = done.value ->> 'attempt' AND jobs.cancel_requested = 0
    RETURNING jobs.id, jobs.attempt, jobs.type, jobs.priority, jobs.started_at`;
}

export function prepareReport(ctx: StoreContext): ReportStatements {
  const { db } = ctx;
  const k = db.kysely;
  return {
    lease: db.prepare(
      k.selectFrom("jobs").select(LEASE_COLUMNS).where("id", "=", param("id")),
    ),
    leases: db.prepare(k.selectFrom("jobs").select(LEASE_COLUMNS).where("id", "in", inJsonArray<string>("ids"))),
    complete: db.prepareSql(completeSql(sql`done.value ->> 'result'`)),
    completePacked: db.prepareSql(completeSql(unpackedText("results"))),
    finish: db.prepare(
      k
        .updateTable("jobs")
        .set({
          status: param("status"),
          result: param("result"),
          error: param("error"),
          failure_reason: param("failureReason"),
          // Completed means 100 % done, whatever the last heartbeat said.
          progress: sql<number | null>`CASE WHEN ${param("status")} = 'completed' THEN 100 ELSE progress END`,
          progress_message: sql<string | null>`CASE WHEN ${param("status")} = 'completed' THEN NULL ELSE progress_message END`,
          stall_at: null,
          lease_expires_at: null,
          finished_at: param("at"),
          updated_at: param("at"),
        })
        .where("seq", "=", param("seq"))
        .where("status", "=", sql.lit("running"))
        .where("attempt", "=", param("attempt")),
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
          updated_at: param("at"),
        })
        .where("seq", "=", param("seq"))
        .where("status", "=", sql.lit("running"))
        .where("attempt", "=", param("attempt")),
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
  status: JobStatus;
  failureReason: string | null;
}

/** Apply what the job's rules decided for a report of the current lease (onReport), guarded by that lease. */
function apply(ctx: StoreContext, statements: ReportStatements, lease: Lease, report: JobReport, transition: Transition): Accepted {
  const now = ctx.clock.now();
  const at = now.toISOString();
  const error = report.status === "failed" ? normalizeError(report.error) : null;
  const { status, failureReason } = transition;
  endAttempt(ctx, {
    jobId: lease.id,
    attempt: lease.attempt,
    outcome: transition.attemptOutcome ?? report.status,
    reported: report.status,
    error,
    logTail: report.logTail ?? null,
    at,
  });
  if (transition.finished) {
    statements.finish.run({
      seq: lease.seq,
      status,
      result: status === "completed" ? JSON.stringify(report.result ?? null) : null,
      // A job ended canceled has no error of its own: what its node said is on the attempt.
      error: error === null || status === "canceled" ? null : JSON.stringify(error),
      failureReason,
      attempt: lease.attempt,
      at,
    });
    if (transition.dependents === "release") releaseDependents(ctx, [lease.id], at);
    if (transition.dependents === "fail") failDependents(ctx, [lease.id], at);
    return { status, failureReason };
  }
  const readyAt = transition.readyAt ?? now;
  statements.retryLater.run({
    seq: lease.seq,
    status,
    error: JSON.stringify(error),
    retryCount: transition.retryCount,
    readyAt: readyAt.toISOString(),
    agingAt: status === "pending" ? nextAgingAt(lease.effective_priority, now, ctx.policy.agingMs) : null,
    attempt: lease.attempt,
    at,
  });
  return { status, failureReason: null };
}

/**
 * The plain completions of a batch (distinct jobs), applied together in one UPDATE
 * that checks each lease as it goes, and their attempts ended in another. Answers the
 * jobs it completed; every other report takes the one-by-one path.
 */
function completeMany(ctx: StoreContext, statements: ReportStatements, reports: JobReport[], nodeId: string) {
  const at = ctx.clock.now().toISOString();
  const { list, blob } = textList(
    reports.map((report) => ({ id: report.jobId, attempt: report.attempt })),
    reports.map((report) => JSON.stringify(report.result ?? null)),
    "result",
  );
  const completed =
    blob === null ? statements.complete.all({ done: list, nodeId, at }) : statements.completePacked.all({ done: list, results: blob, nodeId, at });
  if (completed.length > 0) {
    const tails = new Map(reports.map((report) => [report.jobId, report.logTail ?? null]));
    endCompletedAttempts(
      ctx,
      completed.map((job) => ({ id: job.id, attempt: job.attempt, logTail: tails.get(job.id) ?? null })),
      at,
    );
  }
  releaseDependents(
    ctx,
    completed.map((job) => job.id),
    at,
  );
  return new Map(completed.map((job) => [job.id, job]));
}

/** What an accepted report did, for the metrics; `nowMs`: when the batch is applied. */
function effectOf(job: Pick<JobRow, "type" | "priority" | "started_at">, outcome: Pick<Accepted, "status" | "failureReason">, nowMs: number) {
  const startedAt = job.started_at === null ? null : new Date(job.started_at).getTime();
  return {
    type: job.type,
    priority: priorityName(job.priority),
    status: outcome.status,
    failureReason: outcome.failureReason,
    runMs: startedAt === null ? null : Math.max(0, nowMs - startedAt),
  };
}

export function reportResults(
  ctx: StoreContext,
  statements: ReportStatements,
  params: { nodeId: string; reports: JobReport[] },
): ReportManyResult {
  return ctx.db.transaction(() => {
    const ids = params.reports.map((report) => report.jobId);
    // Plain completions of distinct jobs first, together. Unless a job is reported
    // twice in this batch: then the second must see what the first changed, so each
    // is read and applied in turn.
    const together = ids.length > 1 && new Set(ids).size === ids.length;
    const plain = together ? params.reports.filter((report) => report.status === "completed") : [];
    const completed = plain.length > 0 ? completeMany(ctx, statements, plain, params.nodeId) : new Map<string, Completed>();
    // The rest (failures, cancels asked, stale and repeated reports) are read together too.
    const rest = params.reports.filter((report) => !completed.has(report.jobId));
    const leases =
      together && rest.length > 1
        ? new Map(statements.leases.all({ ids: JSON.stringify(rest.map((report) => report.jobId)) }).map((lease) => [lease.id, lease]))
        : undefined;
    const items: ReportOutcome[] = [];
    const nowMs = ctx.clock.now().getTime();
    for (const report of params.reports) {
      const done = completed.get(report.jobId);
      if (done) {
        items.push({ jobId: report.jobId, verdict: "accepted", effect: effectOf(done, { status: "completed", failureReason: null }, nowMs) });
        continue;
      }
      const lease = leases ? leases.get(report.jobId) : statements.lease.get({ id: report.jobId });
      if (!lease) {
        items.push({ jobId: report.jobId, verdict: "not_found" });
        continue;
      }
      const facts = factsOf(lease);
      // Who was handed the attempt reported, read only for a report that is not the current lease's.
      let handed: HandOut | null = null;
      if (!isCurrentLease(facts, params.nodeId, report.attempt)) {
        const row = handOut(ctx, lease.id, report.attempt);
        handed = row ? { nodeId: row.node_id, reported: row.reported } : null;
      }
      const decision = onReport(facts, handed, { ...report, nodeId: params.nodeId }, { now: ctx.clock.now(), retryDelayMs: ctx.policy.retryDelayMs });
      if (decision.verdict !== "accepted") {
        items.push({ jobId: report.jobId, verdict: decision.verdict });
        continue;
      }
      const accepted = apply(ctx, statements, lease, report, decision.transition);
      items.push({ jobId: report.jobId, verdict: "accepted", effect: effectOf(lease, accepted, nowMs) });
    }
    // An accepted result frees a slot on its node even when it makes nothing ready.
    ctx.signal.mark({
      claimable: items.some((item) => item.verdict === "accepted"),
      scheduled: items.some((item) => item.effect?.status === "scheduled"),
      finished: items.filter((item) => item.effect !== undefined && isFinal(item.effect.status)).map((item) => item.jobId),
    });
    return { items };
  });
}
