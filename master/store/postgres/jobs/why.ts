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
import { readFairShareMode } from "../fair-share.js";

/** Past this many jobs ahead, in all its lanes together, `jobs_ahead` is null: counting further costs too much. */
export const JOBS_AHEAD_CAP = 10_000;

type WhyJob = Pick<JobRow, "seq" | "id" | "client_id" | "status" | "type" | "requires" | "ready_at" | "lane" | "effective_priority">;

export async function whyFacts(ctx: PgContext, id: string): Promise<Omit<WhyFacts, "paused"> | undefined> {
  const { db } = ctx;
  const job = await db.one(sql<WhyJob>`SELECT seq, id, client_id, status, type, requires, ready_at, lane, effective_priority FROM jobs WHERE id = ${id}`);
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
  const eligible = nodes.filter((node) => canRun(node, job.type, job.requires));
  const fair = status === "pending" && (await readFairShareMode(db.kysely)) === "clients" ? await fairPlace(ctx, job, eligible) : undefined;
  // Under fair share: next only when nothing goes first; past that, how many go first depends on every client's fill.
  const jobsAhead =
    status !== "pending" ? null : fair ? (fair.clientsAhead === 0 && fair.higher === 0 && fair.own === 0 ? 0 : null) : await countAhead(ctx, job, eligible);
  const setting = await db.one(sql<{ max_running: number | null; paused: boolean }>`SELECT max_running, paused FROM job_types WHERE type = ${job.type}`);
  const maxRunning = setting?.max_running ?? null;
  const typeControl = { paused: setting?.paused ?? false, maxRunning, running: maxRunning === null ? 0 : await runningOfType(db, job.type) };
  const fairShare = fair ? { clientId: job.client_id, running: fair.running, clientsAhead: fair.clientsAhead } : undefined;
  return {
    status,
    type: job.type,
    requires: job.requires,
    readyAt: status === "scheduled" ? job.ready_at : null,
    waitingOn,
    nodes,
    jobsAhead,
    typeControl,
    ...(fairShare ? { fairShare } : {}),
  };
}

/** Its own lane and every lane its eligible nodes cover (those nodes take from all of them by the same order). */
function lanesAhead(job: WhyJob, eligible: readonly Pick<NodeFacts, "labels" | "types">[]) {
  const nodes = JSON.stringify(eligible.map((node) => ({ labels: node.labels, types: node.types })));
  return sql`
    SELECT ${job.lane}::integer AS id
    UNION
    SELECT l.id FROM lanes l JOIN jsonb_to_recordset(${nodes}::jsonb) AS n(labels jsonb, types jsonb)
      ON l.labels <@ n.labels AND (n.types IS NULL OR n.types @> jsonb_build_array(l.type))`;
}

/**
 * A pending job's place under fair share (API.md §5a), in those lanes at its priority: its
 * client's running jobs; the other clients whose next job goes before its client's (fewer
 * running, or as many and an older head; at most JOBS_AHEAD_CAP of them read); whether its
 * client has jobs before it there; whether any job of a higher priority is pending there.
 */
async function fairPlace(ctx: PgContext, job: WhyJob, eligible: readonly Pick<NodeFacts, "labels" | "types">[]) {
  const row = await ctx.db.one(sql<{ running: number; clients: number; own: number; higher: number }>`
    WITH lanes_ahead AS (${lanesAhead(job, eligible)}),
    mine AS (
      SELECT coalesce((SELECT running FROM fair_clients WHERE client_id = ${job.client_id}), 0) AS running,
             coalesce((SELECT min(f.head_seq) FROM fair_queue f JOIN lanes_ahead a ON f.lane = a.id
                       WHERE f.effective_priority = ${job.effective_priority} AND f.client_id = ${job.client_id}), ${job.seq}) AS head
    )
    SELECT mine.running,
      (SELECT count(DISTINCT client_id) FROM (
         SELECT f.client_id FROM fair_queue f JOIN lanes_ahead a ON f.lane = a.id
         WHERE f.effective_priority = ${job.effective_priority} AND f.client_id <> ${job.client_id}
           AND (f.running < mine.running OR (f.running = mine.running AND f.head_seq < mine.head))
         LIMIT ${JOBS_AHEAD_CAP}) c) AS clients,
      (SELECT count(*) FROM (SELECT 1 FROM jobs j JOIN lanes_ahead a ON j.lane = a.id
         WHERE j.status = 'pending' AND j.effective_priority = ${job.effective_priority} AND j.client_id = ${job.client_id}
           AND j.seq < ${job.seq} LIMIT 1) o) AS own,
      (SELECT count(*) FROM (SELECT 1 FROM fair_queue f JOIN lanes_ahead a ON f.lane = a.id
         WHERE f.effective_priority > ${job.effective_priority} LIMIT 1) h) AS higher
    FROM mine`);
  const clients = row?.clients ?? 0;
  return { running: row?.running ?? 0, clientsAhead: clients >= JOBS_AHEAD_CAP ? null : clients, own: row?.own ?? 0, higher: row?.higher ?? 0 };
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
