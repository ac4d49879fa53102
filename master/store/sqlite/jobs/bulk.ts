// Bulk cancel and retry (API.md §5, Bulk): every job a filter matches, oldest first, up to
// `max`, each decided by the same rules as the one-job actions (onCancel, onRetry) and
// applied with the same guarded writes, all in one transaction with one audit row.
import { sql } from "kysely";
import type { BulkActionOutcome, BulkActionParams, JobStatus } from "../../types.js";
import type { StoreContext } from "../context.js";
import { inJsonArray, param } from "../database.js";
import type { JobRow } from "../rows.js";
import { onCancel, onRetry } from "../../../queue/transitions.js";
import { compileFiltered, whereFilter } from "./filter.js";
import { factsOf, failDependents, reopenDependents, requeueRetried } from "./lifecycle.js";

type Candidate = Pick<JobRow, "seq" | "id" | "status" | "attempt" | "node_id" | "retry_count" | "max_retries" | "cancel_requested" | "priority">;

/** The jobs taken, oldest first: up to max, and one more to tell whether others match. */
function candidates(ctx: StoreContext, params: BulkActionParams): { taken: Candidate[]; more: boolean } {
  const { db } = ctx;
  const query = whereFilter(
    db.kysely
      .selectFrom("jobs")
      .select(["seq", "id", "status", "attempt", "node_id", "retry_count", "max_retries", "cancel_requested", "priority"]),
    params.filter,
  )
    .orderBy("seq", "asc")
    .limit(params.max + 1);
  const rows = db.allCompiled(compileFiltered(query, params.filter)) as Candidate[];
  return { taken: rows.slice(0, params.max), more: rows.length > params.max };
}

/**
 * Which of these jobs have dependencies (`side: "job_id"`) or dependents (`"depends_on_id"`):
 * one read for all of them, so that the many with none cost no read of their own.
 */
function linked(ctx: StoreContext, jobs: readonly Candidate[], side: "job_id" | "depends_on_id"): Set<string> {
  const { db } = ctx;
  const rows = db
    .prepared<{ jobIds: string }, { id: string }>(`bulk-linked-${side}`, () =>
      db.kysely
        .selectFrom("job_dependencies")
        .select(`${side} as id`)
        .distinct()
        .where(side, "in", inJsonArray<string>("jobIds")),
    )
    .all({ jobIds: JSON.stringify(jobs.map((job) => job.id)) });
  return new Set(rows.map((row) => row.id));
}

function audit(ctx: StoreContext, action: "canceled" | "retried", params: BulkActionParams, outcome: BulkActionOutcome, ids: string[], at: string): void {
  ctx.audit.write(
    {
      event_type: `jobs.${action}`,
      entity_type: "jobs",
      entity_id: ids[0] ?? "",
      client_id: params.actor,
      details: { filter: params.shownFilter, max: params.max, ...outcome, ids },
    },
    at,
  );
}

/**
 * Cancel (onCancel) each job taken: a waiting one ends canceled at once and its dependents
 * fail; a running one is asked to stop, and its node hears it at its next heartbeat.
 */
export function cancelMatching(ctx: StoreContext, params: BulkActionParams): BulkActionOutcome {
  const { db } = ctx;
  return db.transaction(() => {
    const { taken, more } = candidates(ctx, params);
    const at = ctx.clock.now().toISOString();
    const end = db.prepared<{ seq: number; status: string; at: string }>("bulk-cancel-waiting", () =>
      db.kysely
        .updateTable("jobs")
        .set({ status: sql.lit("canceled"), aging_at: null, finished_at: param("at"), updated_at: param("at") })
        .where("seq", "=", param("seq"))
        .where("status", "=", param("status")),
    );
    const ask = db.prepared<{ seq: number; attempt: number; at: string }>("bulk-cancel-running", () =>
      db.kysely
        .updateTable("jobs")
        .set({ cancel_requested: 1, updated_at: param("at") })
        .where("seq", "=", param("seq"))
        .where("status", "=", sql.lit("running"))
        .where("attempt", "=", param("attempt")),
    );
    const changed: string[] = [];
    const finished: string[] = [];
    const waitedOn = params.dryRun ? new Set<string>() : linked(ctx, taken, "depends_on_id");
    for (const job of taken) {
      const decision = onCancel(factsOf(job));
      if (!decision.ok || decision.transition === null) continue;
      if (params.dryRun) {
        changed.push(job.id);
        continue;
      }
      if (decision.transition.cancelRequested) {
        if (ask.run({ seq: job.seq, attempt: job.attempt, at }) > 0) changed.push(job.id);
        continue;
      }
      // Zero rows: an earlier job's cancel already failed it as a dependent.
      if (end.run({ seq: job.seq, status: job.status, at }) === 0) continue;
      changed.push(job.id);
      finished.push(job.id);
      if (waitedOn.has(job.id)) failDependents(ctx, [job.id], at);
    }
    const outcome = { matched: taken.length, changed: changed.length, more };
    if (params.dryRun) return outcome;
    if (finished.length > 0) ctx.signal.mark({ finished });
    audit(ctx, "canceled", params, outcome, changed, at);
    return outcome;
  });
}

/**
 * Retry (onRetry) each job taken: a failed or canceled one goes back to the queue now, with
 * retry_count 0 (blocked again while a dependency has not completed), and the jobs that
 * failed only because of it wait for it again; one whose dependency failed is left as it is.
 */
export function retryMatching(ctx: StoreContext, params: BulkActionParams): BulkActionOutcome {
  const { db } = ctx;
  return db.transaction(() => {
    const { taken, more } = candidates(ctx, params);
    const now = ctx.clock.now();
    const at = now.toISOString();
    const dependencies = db.prepared<{ jobId: string }, { id: string; status: string }>("bulk-retry-dependencies", () =>
      db.kysely
        .selectFrom("job_dependencies as d")
        .innerJoin("jobs as j", "j.id", "d.depends_on_id")
        .select(["j.id", "j.status"])
        .where("d.job_id", "=", param("jobId")),
    );
    const changed: string[] = [];
    let ready = 0;
    const waiting = linked(ctx, taken, "job_id");
    const waitedOn = params.dryRun ? new Set<string>() : linked(ctx, taken, "depends_on_id");
    for (const job of taken) {
      // Read at its turn: an earlier job of this action may be one of its dependencies.
      const found = waiting.has(job.id)
        ? dependencies.all({ jobId: job.id }).map((dependency) => ({ id: dependency.id, status: dependency.status as JobStatus }))
        : [];
      const decision = onRetry(factsOf(job), found, now);
      if (!decision.ok) continue;
      if (params.dryRun) {
        changed.push(job.id);
        continue;
      }
      const status = decision.transition?.status ?? "pending";
      // Zero rows: an earlier job's retry already made it wait for that job again.
      if (requeueRetried(ctx, job, { status, retryCount: decision.transition?.retryCount ?? 0, now, at }) === 0) continue;
      changed.push(job.id);
      if (status === "pending") ready += 1;
      if (waitedOn.has(job.id)) reopenDependents(ctx, job.id, at, params.actor);
    }
    const outcome = { matched: taken.length, changed: changed.length, more };
    if (params.dryRun) return outcome;
    if (ready > 0) ctx.signal.mark({ claimable: true });
    audit(ctx, "retried", params, outcome, changed, at);
    return outcome;
  });
}
