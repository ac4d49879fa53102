// claim: hand ready jobs to a node, highest effective priority first, then FIFO,
// only those whose `requires` its labels cover, never past its free capacity.
import { sql } from "kysely";
import type { ClaimOutcome } from "../../types.js";
import type { StoreContext } from "../context.js";
import { param, type Prepared } from "../database.js";
import { toClaimedJob, type JobRow } from "../rows.js";
import { reviveNode } from "../node-lifecycle.js";

type Head = Pick<JobRow, "seq" | "effective_priority" | "timeout_s" | "ready_at">;
type Taken = Pick<JobRow, "seq" | "id" | "type" | "payload" | "attempt" | "priority" | "timeout_s" | "created_at">;

export interface ClaimStatements {
  node: Prepared<{ id: string; status: string; labels: string; capacity: number }, { nodeId: string }>;
  running: Prepared<{ n: number }, { nodeId: string }>;
  head: Prepared<Head, { key: string; limit: number }>;
  /** `chosen`: a JSON array of {seq, stall_at}. */
  take: Prepared<Taken, { chosen: string; nodeId: string; at: string; leaseExpiresAt: string }>;
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
    // All the chosen jobs in one statement (a statement per job cost twice as much per
    // job). NOT INDEXED: rows are found by seq, the primary key; without it SQLite
    // would rather walk every pending job through jobs_status_seq.
    take: db.prepareSql(sql<Taken>`
      UPDATE jobs NOT INDEXED
      SET status = 'running', node_id = ${param("nodeId")}, attempt = attempt + 1,
          started_at = ${param("at")}, updated_at = ${param("at")},
          stall_at = chosen.value ->> 'stall_at', lease_expires_at = ${param("leaseExpiresAt")},
          aging_at = NULL, progress = NULL, progress_message = NULL, lease_end_reason = NULL
      FROM json_each(${param("chosen")}) AS chosen
      WHERE jobs.seq = chosen.value ->> 'seq' AND jobs.status = 'pending'
      RETURNING jobs.seq, jobs.id, jobs.type, jobs.payload, jobs.attempt, jobs.priority, jobs.timeout_s, jobs.created_at`),
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
    if (chosen.length === 0) return { ok: true, items: [], waitedMs: [] };
    const leaseExpiresAt = new Date(now.getTime() + ctx.policy.leaseMs).toISOString();
    const stallAt = (timeoutS: number) => new Date(now.getTime() + 2 * timeoutS * 1000 + ctx.policy.stallGraceMs).toISOString();
    const taken = statements.take.all({
      chosen: JSON.stringify(chosen.map((head) => ({ seq: head.seq, stall_at: stallAt(head.timeout_s) }))),
      nodeId: node.id,
      at,
      leaseExpiresAt,
    });
    // RETURNING gives no order: put them back in dispatch order.
    const bySeq = new Map(taken.map((row) => [row.seq, row]));
    const items = [];
    const waitedMs: number[] = [];
    for (const head of chosen) {
      const row = bySeq.get(head.seq);
      if (!row) continue;
      items.push(toClaimedJob(row));
      waitedMs.push(Math.max(0, now.getTime() - new Date(head.ready_at).getTime()));
    }
    ctx.audit.writeMany(
      items.map((item) => ({
        event_type: "job.assigned",
        entity_type: "job",
        entity_id: item.id,
        client_id: null,
        details: { node_id: node.id, attempt: item.attempt },
      })),
      at,
    );
    return { ok: true, items, waitedMs };
  });
}
