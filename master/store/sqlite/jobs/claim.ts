// claim: hand ready jobs to a node, highest effective priority first, then FIFO,
// only those whose `requires` its labels cover, never past its free capacity.
import { sql } from "kysely";
import type { ClaimOutcome } from "../../types.js";
import type { StoreContext } from "../context.js";
import { param, type Prepared } from "../database.js";
import { toClaimedJob, type JobRow } from "../rows.js";
import { reviveNode } from "../node-lifecycle.js";

type Head = Pick<JobRow, "seq" | "effective_priority" | "timeout_s" | "ready_at">;
type Taken = Pick<JobRow, "id" | "type" | "payload" | "attempt" | "priority" | "timeout_s" | "created_at">;

export interface ClaimStatements {
  node: Prepared<{ id: string; status: string; labels: string; capacity: number }, { nodeId: string }>;
  running: Prepared<{ n: number }, { nodeId: string }>;
  head: Prepared<Head, { key: string; limit: number }>;
  take: Prepared<Taken, { seq: number; nodeId: string; at: string; stallAt: string; leaseExpiresAt: string }>;
}

export function prepareClaim(ctx: StoreContext): ClaimStatements {
  const { db } = ctx;
  const k = db.kysely;
  return {
    node: db.prepare(k.selectFrom("nodes").select(["id", "status", "labels", "capacity"]).where("id", "=", param("nodeId"))),
    running: db.prepare(
      k
        .selectFrom("jobs")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("node_id", "=", param("nodeId"))
        .where("status", "=", sql.lit("running")),
    ),
    // One range of the partial index jobs_dispatch per requirement set.
    head: db.prepare(
      k
        .selectFrom("jobs")
        .select(["seq", "effective_priority", "timeout_s", "ready_at"])
        .where("status", "=", sql.lit("pending"))
        .where("requires_key", "=", param("key"))
        .orderBy("effective_priority", "desc")
        .orderBy("seq")
        .limit(param("limit")),
    ),
    take: db.prepare(
      k
        .updateTable("jobs")
        .set({
          status: sql.lit("running"),
          node_id: param("nodeId"),
          attempt: sql`attempt + 1`,
          started_at: param("at"),
          updated_at: param("at"),
          stall_at: param("stallAt"),
          lease_expires_at: param("leaseExpiresAt"),
          aging_at: null,
          progress: null,
          progress_message: null,
          lease_end_reason: null,
        })
        .where("seq", "=", param("seq"))
        .where("status", "=", sql.lit("pending"))
        .returning(["id", "type", "payload", "attempt", "priority", "timeout_s", "created_at"]),
    ),
  };
}

function byDispatchOrder(a: Head, b: Head): number {
  return b.effective_priority - a.effective_priority || a.seq - b.seq;
}

export function claimJobs(
  ctx: StoreContext,
  statements: ClaimStatements,
  params: { nodeId: string; max: number },
): ClaimOutcome {
  return ctx.db.transaction(() => {
    const node = statements.node.get({ nodeId: params.nodeId });
    if (!node) return { ok: false, reason: "not_found" };
    if (node.status === "offline") return { ok: false, reason: "offline" };
    if (node.status === "draining") return { ok: true, items: [] };
    const now = ctx.clock.now();
    const at = now.toISOString();
    // A claim is a sign of life: a node declared dead that asks for work is back.
    if (node.status === "dead") reviveNode(ctx, node.id, at);
    const running = statements.running.get({ nodeId: node.id })?.n ?? 0;
    const limit = Math.min(params.max, node.capacity - running);
    if (limit <= 0) return { ok: true, items: [] };
    const labels = JSON.parse(node.labels) as string[];
    const candidates: Head[] = [];
    for (const key of ctx.requirementSets.coveredBy(labels)) {
      candidates.push(...statements.head.all({ key, limit }));
    }
    const chosen = candidates.length > limit ? candidates.sort(byDispatchOrder).slice(0, limit) : candidates.sort(byDispatchOrder);
    const leaseExpiresAt = new Date(now.getTime() + ctx.policy.leaseMs).toISOString();
    const items = [];
    const waitedMs: number[] = [];
    for (const head of chosen) {
      const stallAt = new Date(now.getTime() + 2 * head.timeout_s * 1000 + ctx.policy.stallGraceMs).toISOString();
      const taken = statements.take.get({ seq: head.seq, nodeId: node.id, at, stallAt, leaseExpiresAt });
      if (!taken) continue;
      ctx.audit.write(
        {
          event_type: "job.assigned",
          entity_type: "job",
          entity_id: taken.id,
          client_id: null,
          details: { node_id: node.id, attempt: taken.attempt },
        },
        at,
      );
      items.push(toClaimedJob(taken));
      waitedMs.push(Math.max(0, now.getTime() - new Date(head.ready_at).getTime()));
    }
    return { ok: true, items, waitedMs };
  });
}
