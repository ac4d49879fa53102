// The facts behind GET /jobs/:id/why on PostgreSQL, read as a claim reads them: the job's
// lane, the nodes that could take it, its type's gates, and the pending jobs ahead of it in
// the lanes those nodes cover (one range of jobs_dispatch per lane, counted up to a cap).
import { sql } from "kysely";
import { canRun, type NodeFacts, type WhyFacts } from "../../../queue/why.js";
import type { JobStatus } from "../../types.js";
import type { PgContext } from "../context.js";
import { runningOfType } from "../job-types.js";
import { NODE_SELECT } from "../nodes.js";
import { toNode, type JobRow, type NodeRow } from "../rows.js";

/** Past this many jobs ahead, in all its lanes together, `jobs_ahead` is null: counting further costs too much. */
export const JOBS_AHEAD_CAP = 10_000;

type WhyJob = Pick<JobRow, "seq" | "id" | "status" | "type" | "requires" | "ready_at" | "lane" | "effective_priority">;

export async function whyFacts(ctx: PgContext, id: string): Promise<Omit<WhyFacts, "paused"> | undefined> {
  const { db } = ctx;
  const job = await db.one(sql<WhyJob>`SELECT seq, id, status, type, requires, ready_at, lane, effective_priority FROM jobs WHERE id = ${id}`);
  if (!job) return undefined;
  const status = job.status as JobStatus;
  const waitingOn =
    status === "blocked"
      ? await db.run(sql<{ id: string; status: JobStatus }>`
          SELECT j.id, j.status FROM job_dependencies d JOIN jobs j ON j.id = d.depends_on_id
          WHERE d.job_id = ${job.id} AND j.status <> 'completed' ORDER BY j.seq`)
      : [];
  const nodes = (await db.run(sql<NodeRow>`${NODE_SELECT} WHERE n.status IN ('online', 'draining') ORDER BY n.seq`)).map((row) => {
    const node = toNode(row);
    return { ...node, status: node.status as "online" | "draining" };
  });
  const jobsAhead = status === "pending" ? await countAhead(ctx, job, nodes.filter((node) => canRun(node, job.type, job.requires))) : null;
  const setting = await db.one(sql<{ max_running: number | null; paused: boolean }>`SELECT max_running, paused FROM job_types WHERE type = ${job.type}`);
  const maxRunning = setting?.max_running ?? null;
  const typeControl = { paused: setting?.paused ?? false, maxRunning, running: maxRunning === null ? 0 : await runningOfType(db, job.type) };
  return { status, type: job.type, requires: job.requires, readyAt: status === "scheduled" ? job.ready_at : null, waitingOn, nodes, jobsAhead, typeControl };
}

/**
 * Pending jobs ahead of `job` in dispatch order in its own lane and every lane its eligible
 * nodes cover (those nodes take from all of them by the same order); null at the cap.
 */
async function countAhead(ctx: PgContext, job: WhyJob, eligible: readonly Pick<NodeFacts, "labels" | "types">[]): Promise<number | null> {
  const nodes = JSON.stringify(eligible.map((node) => ({ labels: node.labels, types: node.types })));
  // Two ranges of jobs_dispatch per lane: higher priorities, then the same priority submitted earlier.
  const row = await ctx.db.one(sql<{ n: number }>`
    WITH lanes_ahead AS (
      SELECT ${job.lane}::integer AS id
      UNION
      SELECT l.id FROM lanes l JOIN jsonb_to_recordset(${nodes}::jsonb) AS n(labels jsonb, types jsonb)
        ON l.labels <@ n.labels AND (n.types IS NULL OR n.types @> jsonb_build_array(l.type))
    )
    SELECT count(*) AS n FROM (
      SELECT 1 FROM (
        (SELECT 1 FROM jobs j JOIN lanes_ahead a ON j.lane = a.id
         WHERE j.status = 'pending' AND j.effective_priority > ${job.effective_priority} LIMIT ${JOBS_AHEAD_CAP})
        UNION ALL
        (SELECT 1 FROM jobs j JOIN lanes_ahead a ON j.lane = a.id
         WHERE j.status = 'pending' AND j.effective_priority = ${job.effective_priority} AND j.seq < ${job.seq} LIMIT ${JOBS_AHEAD_CAP})
      ) both_ranges LIMIT ${JOBS_AHEAD_CAP}
    ) ahead`);
  const n = row?.n ?? 0;
  return n >= JOBS_AHEAD_CAP ? null : n;
}
