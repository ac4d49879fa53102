// Bulk cancel and retry on PostgreSQL (API.md §5, Bulk): every job a filter matches, oldest
// first, up to `max`, each decided by the same rules as the one-job actions (onCancel,
// onRetry) and applied with the same guarded writes, in one transaction with one audit row.
// The jobs taken are locked in seq order (a claim or a report on another master waits).
import { sql } from "kysely";
import { onCancel, onRetry } from "../../../queue/transitions.js";
import type { BulkActionOutcome, BulkActionParams, JobStatus } from "../../types.js";
import { changed as changedRows, rowsOf, writeAudit, type PgContext } from "../context.js";
import type { Tx } from "../database.js";
import type { JobRow } from "../rows.js";
import { filterClauses, where } from "./filter.js";
import { factsOf, failDependents, reopenDependents, requeueRetried } from "./lifecycle.js";

type Candidate = Pick<JobRow, "seq" | "id" | "status" | "attempt" | "node_id" | "retry_count" | "max_retries" | "cancel_requested" | "priority">;

async function candidates(tx: Tx, params: BulkActionParams): Promise<{ taken: Candidate[]; more: boolean }> {
  const rows = await rowsOf(
    tx,
    sql<Candidate>`SELECT seq, id, status, attempt, node_id, retry_count, max_retries, cancel_requested, priority FROM jobs
                   ${where(filterClauses(params.filter))} ORDER BY seq LIMIT ${params.max + 1}
                   ${params.dryRun ? sql`` : sql`FOR UPDATE`}`,
  );
  return { taken: rows.slice(0, params.max), more: rows.length > params.max };
}

async function audit(tx: Tx, action: "canceled" | "retried", params: BulkActionParams, outcome: BulkActionOutcome, ids: string[], at: string): Promise<void> {
  await writeAudit(
    tx.db,
    [{ event_type: `jobs.${action}`, entity_type: "jobs", entity_id: ids[0] ?? "", client_id: params.actor, details: { filter: params.shownFilter, max: params.max, ...outcome, ids } }],
    at,
  );
}

export async function cancelMatching(ctx: PgContext, tx: Tx, params: BulkActionParams): Promise<BulkActionOutcome> {
  const { taken, more } = await candidates(tx, params);
  const at = ctx.clock.now().toISOString();
  const changed: string[] = [];
  const finished: string[] = [];
  for (const job of taken) {
    const decision = onCancel(factsOf(job));
    if (!decision.ok || decision.transition === null) continue;
    if (params.dryRun) {
      changed.push(job.id);
      continue;
    }
    if (decision.transition.cancelRequested) {
      const n = await changedRows(tx, sql`UPDATE jobs SET cancel_requested = true, updated_at = ${at} WHERE seq = ${job.seq} AND status = 'running' AND attempt = ${job.attempt}`);
      if (n > 0) changed.push(job.id);
      continue;
    }
    // Zero rows: an earlier job's cancel already failed it as a dependent.
    const n = await changedRows(tx, sql`UPDATE jobs SET status = 'canceled', aging_at = NULL, finished_at = ${at}, updated_at = ${at} WHERE seq = ${job.seq} AND status = ${job.status}`);
    if (n === 0) continue;
    changed.push(job.id);
    finished.push(job.id);
    await failDependents(tx, job.id, at);
  }
  const outcome = { matched: taken.length, changed: changed.length, more };
  if (params.dryRun) return outcome;
  if (finished.length > 0) tx.mark({ finished });
  await audit(tx, "canceled", params, outcome, changed, at);
  return outcome;
}

export async function retryMatching(ctx: PgContext, tx: Tx, params: BulkActionParams): Promise<BulkActionOutcome> {
  const { taken, more } = await candidates(tx, params);
  const now = ctx.clock.now();
  const at = now.toISOString();
  const changed: string[] = [];
  let ready = 0;
  for (const job of taken) {
    // Read at its turn: an earlier job of this action may be one of its dependencies.
    const dependencies = await rowsOf(
      tx,
      sql<{ id: string; status: string }>`SELECT j.id, j.status FROM job_dependencies d JOIN jobs j ON j.id = d.depends_on_id WHERE d.job_id = ${job.id}`,
    );
    const decision = onRetry(factsOf(job), dependencies.map((d) => ({ id: d.id, status: d.status as JobStatus })), now);
    if (!decision.ok) continue;
    if (params.dryRun) {
      changed.push(job.id);
      continue;
    }
    const status = decision.transition?.status ?? "pending";
    const n = await requeueRetried(ctx, tx, job, { status, retryCount: decision.transition?.retryCount ?? 0, now, at });
    // Zero rows: an earlier job's retry already made it wait for that job again.
    if (n === 0) continue;
    changed.push(job.id);
    if (status === "pending") ready += 1;
    await reopenDependents(tx, job.id, at, params.actor);
  }
  const outcome = { matched: taken.length, changed: changed.length, more };
  if (params.dryRun) return outcome;
  if (ready > 0) tx.mark({ claimable: true });
  await audit(tx, "retried", params, outcome, changed, at);
  return outcome;
}
