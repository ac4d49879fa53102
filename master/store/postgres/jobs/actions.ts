// cancel, retry and setPriority on PostgreSQL: what people do to a job through the API.
import { sql } from "kysely";
import { canChangePriority, onCancel, onRetry } from "../../../queue/transitions.js";
import { PRIORITY_WEIGHTS, type ActorParams, type JobActionOutcome, type JobStatus, type PriorityName } from "../../types.js";
import { changed, rowsOf, writeAudit, type PgContext } from "../context.js";
import type { Tx } from "../database.js";
import { toJob, type JobRow } from "../rows.js";
import { reprioritized } from "../../../queue/aging.js";
import { factsOf, failDependentsOf, reopenDependents, requeueRetried } from "./lifecycle.js";

async function lock(tx: Tx, id: string): Promise<JobRow | undefined> {
  return (await rowsOf(tx, sql<JobRow>`SELECT * FROM jobs WHERE id = ${id} FOR UPDATE`))[0];
}

async function reload(tx: Tx, seq: number): Promise<JobRow> {
  return (await rowsOf(tx, sql<JobRow>`SELECT * FROM jobs WHERE seq = ${seq}`))[0] as JobRow;
}

/** Cancel (onCancel): a waiting job ends canceled at once; a running one is asked to stop. */
export async function cancelJob(ctx: PgContext, tx: Tx, params: ActorParams): Promise<JobActionOutcome> {
  const job = await lock(tx, params.id);
  if (!job) return { ok: false, reason: "not_found" };
  const decision = onCancel(factsOf(job));
  if (!decision.ok) return { ok: false, reason: "conflict", status: job.status as JobStatus };
  const transition = decision.transition;
  if (transition === null) return { ok: true, job: toJob(job) };
  const at = ctx.clock.now().toISOString();
  const base = { entity_type: "job", entity_id: job.id, client_id: params.actor };
  if (transition.cancelRequested) {
    await changed(tx, sql`UPDATE jobs SET cancel_requested = true, updated_at = ${at} WHERE seq = ${job.seq} AND status = ${job.status} AND attempt = ${job.attempt}`);
    await writeAudit(tx.db, [{ ...base, event_type: "job.cancel_requested", details: { node_id: job.node_id, attempt: job.attempt } }], at);
  } else {
    await changed(tx, sql`UPDATE jobs SET status = ${transition.status}, aging_at = NULL, finished_at = ${at}, updated_at = ${at} WHERE seq = ${job.seq} AND status = ${job.status}`);
    await writeAudit(tx.db, [{ ...base, event_type: "job.canceled", details: { from: job.status } }], at);
    tx.mark({ finished: [job.id] });
    await failDependentsOf(tx, [job.id], at);
  }
  return { ok: true, job: toJob(await reload(tx, job.seq)) };
}

/** Retry (onRetry): a failed or canceled job back to the queue now, with retry_count 0 and the same id. */
export async function retryJob(ctx: PgContext, tx: Tx, params: ActorParams): Promise<JobActionOutcome> {
  const job = await lock(tx, params.id);
  if (!job) return { ok: false, reason: "not_found" };
  const now = ctx.clock.now();
  const at = now.toISOString();
  const dependencies = await rowsOf(
    tx,
    sql<{ id: string; status: string }>`SELECT j.id, j.status FROM job_dependencies d JOIN jobs j ON j.id = d.depends_on_id WHERE d.job_id = ${job.id}`,
  );
  const decision = onRetry(factsOf(job), dependencies.map((d) => ({ id: d.id, status: d.status as JobStatus })), now);
  if (!decision.ok) return { ok: false, reason: "conflict", status: job.status as JobStatus, detail: decision.detail };
  const status = decision.transition?.status ?? "pending";
  await requeueRetried(ctx, tx, job, { status, retryCount: decision.transition?.retryCount ?? 0, now, at });
  await writeAudit(tx.db, [{ event_type: "job.retried", entity_type: "job", entity_id: job.id, client_id: params.actor, details: { from: job.status, status } }], at);
  await reopenDependents(tx, job.id, at, params.actor);
  tx.mark({ claimable: status === "pending" });
  return { ok: true, job: toJob(await reload(tx, job.seq)) };
}

/** Re-prioritise a job that is not running yet; a pending job keeps the credit it earned waiting. */
export async function setJobPriority(ctx: PgContext, tx: Tx, params: ActorParams & { priority: PriorityName }): Promise<JobActionOutcome> {
  const job = await lock(tx, params.id);
  if (!job) return { ok: false, reason: "not_found" };
  if (!canChangePriority({ status: job.status as JobStatus })) return { ok: false, reason: "conflict", status: job.status as JobStatus };
  const now = ctx.clock.now();
  const at = now.toISOString();
  const weight = PRIORITY_WEIGHTS[params.priority];
  // A pending job keeps the credit it earned waiting.
  const { effective, agingAt } = reprioritized(weight, job.status === "pending", new Date(job.ready_at), now, ctx.policy.agingMs);
  await changed(tx, sql`UPDATE jobs SET priority = ${weight}, effective_priority = ${effective}, aging_at = ${agingAt}, updated_at = ${at} WHERE seq = ${job.seq} AND status = ${job.status}`);
  await writeAudit(
    tx.db,
    [{ event_type: "job.priority_changed", entity_type: "job", entity_id: job.id, client_id: params.actor, details: { from: toJob(job).priority, to: params.priority } }],
    at,
  );
  return { ok: true, job: toJob(await reload(tx, job.seq)) };
}
