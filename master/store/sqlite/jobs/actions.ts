// cancel, retry and setPriority: what people do to a job through the API.
import {
  PRIORITY_WEIGHTS,
  type ActorParams,
  type JobActionOutcome,
  type JobStatus,
  type PriorityName,
} from "../../types.js";
import type { StoreContext } from "../context.js";
import { toJob, type JobRow } from "../rows.js";
import { canChangePriority, onCancel, onRetry } from "../../../queue/transitions.js";
import { reprioritized } from "../../../queue/aging.js";
import { factsOf, failDependents, reopenDependents, requeueRetried } from "./lifecycle.js";

function load(ctx: StoreContext, id: string): JobRow | undefined {
  return ctx.db.get(ctx.db.kysely.selectFrom("jobs").selectAll().where("id", "=", id));
}

function reload(ctx: StoreContext, seq: number): JobRow {
  return ctx.db.get(ctx.db.kysely.selectFrom("jobs").selectAll().where("seq", "=", seq)) as JobRow;
}

/**
 * Cancel (onCancel): a waiting job ends canceled at once and its dependents fail; a
 * running one is asked to stop (its node hears of it at its next heartbeat).
 */
export function cancelJob(ctx: StoreContext, params: ActorParams): JobActionOutcome {
  const { db, audit } = ctx;
  return db.transaction(() => {
    const job = load(ctx, params.id);
    if (!job) return { ok: false, reason: "not_found" };
    const decision = onCancel(factsOf(job));
    if (!decision.ok) return { ok: false, reason: "conflict", status: job.status as JobStatus };
    const transition = decision.transition;
    if (transition === null) return { ok: true, job: toJob(job) };
    const at = ctx.clock.now().toISOString();
    const base = { entity_type: "job", entity_id: job.id, client_id: params.actor };
    if (transition.cancelRequested) {
      db.run(
        db.kysely
          .updateTable("jobs")
          .set({ cancel_requested: 1, updated_at: at })
          .where("seq", "=", job.seq)
          .where("status", "=", job.status)
          .where("attempt", "=", job.attempt),
      );
      audit.write({ ...base, event_type: "job.cancel_requested", details: { node_id: job.node_id, attempt: job.attempt } }, at);
    } else {
      db.run(
        db.kysely
          .updateTable("jobs")
          .set({ status: transition.status, aging_at: null, finished_at: at, updated_at: at })
          .where("seq", "=", job.seq)
          .where("status", "=", job.status),
      );
      audit.write({ ...base, event_type: "job.canceled", details: { from: job.status } }, at);
      ctx.signal.mark({ finished: [job.id] });
      failDependents(ctx, [job.id], at);
    }
    return { ok: true, job: toJob(reload(ctx, job.seq)) };
  });
}

/** Retry (onRetry): a failed or canceled job back to the queue now, with retry_count 0 and the same id. */
export function retryJob(ctx: StoreContext, params: ActorParams): JobActionOutcome {
  const { db, audit } = ctx;
  return db.transaction(() => {
    const job = load(ctx, params.id);
    if (!job) return { ok: false, reason: "not_found" };
    const now = ctx.clock.now();
    const at = now.toISOString();
    const dependencies = db.all(
      db.kysely
        .selectFrom("job_dependencies as d")
        .innerJoin("jobs as j", "j.id", "d.depends_on_id")
        .select(["j.id", "j.status"])
        .where("d.job_id", "=", job.id),
    );
    const decision = onRetry(factsOf(job), dependencies.map((d) => ({ id: d.id, status: d.status as JobStatus })), now);
    if (!decision.ok) return { ok: false, reason: "conflict", status: job.status as JobStatus, detail: decision.detail };
    const status = decision.transition?.status ?? "pending";
    requeueRetried(ctx, job, { status, retryCount: decision.transition?.retryCount ?? 0, now, at });
    audit.write(
      { event_type: "job.retried", entity_type: "job", entity_id: job.id, client_id: params.actor, details: { from: job.status, status } },
      at,
    );
    reopenDependents(ctx, job.id, at, params.actor);
    ctx.signal.mark({ claimable: status === "pending" });
    return { ok: true, job: toJob(reload(ctx, job.seq)) };
  });
}

/** Re-prioritise a job that is not running yet. */
export function setJobPriority(ctx: StoreContext, params: ActorParams & { priority: PriorityName }): JobActionOutcome {
  const { db, audit } = ctx;
  return db.transaction(() => {
    const job = load(ctx, params.id);
    if (!job) return { ok: false, reason: "not_found" };
    if (!canChangePriority({ status: job.status as JobStatus })) return { ok: false, reason: "conflict", status: job.status as JobStatus };
    const now = ctx.clock.now();
    const at = now.toISOString();
    const weight = PRIORITY_WEIGHTS[params.priority];
    // A pending job keeps the credit it earned waiting.
    const { effective, agingAt } = reprioritized(weight, job.status === "pending", new Date(job.ready_at), now, ctx.policy.agingMs);
    db.run(
      db.kysely
        .updateTable("jobs")
        .set({ priority: weight, effective_priority: effective, aging_at: agingAt, updated_at: at })
        .where("seq", "=", job.seq)
        .where("status", "=", job.status),
    );
    audit.write(
      {
        event_type: "job.priority_changed",
        entity_type: "job",
        entity_id: job.id,
        client_id: params.actor,
        details: { from: toJob(job).priority, to: params.priority },
      },
      at,
    );
    return { ok: true, job: toJob(reload(ctx, job.seq)) };
  });
}
