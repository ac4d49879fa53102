// The facts behind GET /jobs/:id/why, read as the dispatcher reads them: the job's lane,
// the nodes that could take it, and the pending jobs ahead of it in the lanes those nodes
// cover (one range of the dispatch index per lane, counted up to a cap).
import { sql } from "kysely";
import { canRun, type WhyFacts } from "../../../queue/why.js";
import type { JobStatus } from "../../types.js";
import type { StoreContext } from "../context.js";
import { selectNodes } from "../nodes.js";
import { parseJson, toNode } from "../rows.js";

/** Past this many jobs ahead, in all its lanes together, `jobs_ahead` is null: counting further costs too much. */
export const JOBS_AHEAD_CAP = 10_000;

export function whyFacts(ctx: StoreContext, id: string): Omit<WhyFacts, "paused"> | undefined {
  const { db } = ctx;
  const job = db.get(
    db.kysely
      .selectFrom("jobs")
      .select(["seq", "id", "client_id", "status", "type", "requires", "ready_at", "lane", "effective_priority"])
      .where("id", "=", id),
  );
  if (!job) return undefined;
  const status = job.status as JobStatus;
  const requires = parseJson<string[]>(job.requires, []);
  const waitingOn =
    status === "blocked"
      ? db.all(
          db.kysely
            .selectFrom("job_dependencies as d")
            .innerJoin("jobs as j", "j.id", "d.depends_on_id")
            .select(["j.id", "j.status"])
            .where("d.job_id", "=", job.id)
            .where("j.status", "!=", "completed"),
        ).map((row) => ({ id: row.id, status: row.status as JobStatus }))
      : [];
  const nodes = db
    .all(selectNodes(ctx).where("nodes.status", "in", ["online", "draining"]))
    .map((row) => {
      const node = toNode(row);
      return { ...node, status: node.status as "online" | "draining" };
    });
  let jobsAhead: number | null = null;
  let fairShare: WhyFacts["fairShare"];
  if (status === "pending") {
    const lanes = new Set<number>([job.lane]);
    for (const node of nodes) if (canRun(node, job.type, requires)) for (const lane of ctx.lanes.coveredBy(node.labels, node.types)) lanes.add(lane);
    if (ctx.fair.on) {
      const place = fairPlace(ctx, [...lanes], job);
      fairShare = { clientId: job.client_id, running: place.running, clientsAhead: place.clientsAhead };
      // Next only when nothing goes first; past that, how many go first depends on every client's fill.
      jobsAhead = place.clientsAhead === 0 && place.higher === 0 && place.own === 0 ? 0 : null;
      const setting = ctx.types.get(job.type);
      const typeControl = { paused: setting.paused, maxRunning: setting.maxRunning, running: setting.maxRunning === null ? 0 : ctx.types.running(job.type) };
      return { status, type: job.type, requires, readyAt: null, waitingOn, nodes, jobsAhead, typeControl, fairShare };
    }
    let counted: number | null = 0;
    for (const lane of lanes) {
      const ahead = countAhead(ctx, lane, job.effective_priority, job.seq, JOBS_AHEAD_CAP - counted);
      if (ahead === null) {
        counted = null;
        break;
      }
      counted += ahead;
    }
    jobsAhead = counted;
  }
  const setting = ctx.types.get(job.type);
  const typeControl = { paused: setting.paused, maxRunning: setting.maxRunning, running: setting.maxRunning === null ? 0 : ctx.types.running(job.type) };
  return { status, type: job.type, requires, readyAt: status === "scheduled" ? job.ready_at : null, waitingOn, nodes, jobsAhead, typeControl };
}

/**
 * Pending jobs of one lane ahead of (priority, seq) in dispatch order: two ranges of
 * jobs_dispatch, reading at most `cap` entries in all; null once the cap is reached.
 */
function countAhead(ctx: StoreContext, lane: number, priority: number, seq: number, cap: number): number | null {
  const { db } = ctx;
  const [higher] = db.allSql<{ n: number }>(sql`
    SELECT count(*) AS n FROM (SELECT 1 FROM jobs INDEXED BY jobs_dispatch
      WHERE status = 'pending' AND lane = ${lane} AND effective_priority > ${priority} LIMIT ${cap})`);
  const first = higher?.n ?? 0;
  if (first >= cap) return null;
  const [same] = db.allSql<{ n: number }>(sql`
    SELECT count(*) AS n FROM (SELECT 1 FROM jobs INDEXED BY jobs_dispatch
      WHERE status = 'pending' AND lane = ${lane} AND effective_priority = ${priority} AND seq < ${seq} LIMIT ${cap - first})`);
  const total = first + (same?.n ?? 0);
  return total >= cap ? null : total;
}

/**
 * A pending job's place under fair share, in `lanes` at its priority: its client's running
 * jobs; the other clients whose next job goes before its client's (fewer running, or as many
 * and an older head: fair_queue_order, at most JOBS_AHEAD_CAP of them read); its client's
 * jobs before it; and whether any job of a higher priority is pending there.
 */
function fairPlace(
  ctx: StoreContext,
  lanes: number[],
  job: { seq: number; client_id: string; effective_priority: number },
): { running: number; clientsAhead: number | null; own: number; higher: number } {
  const { db } = ctx;
  const inLanes = sql.join(lanes.map((lane) => sql`${lane}`));
  const [client] = db.allSql<{ running: number | null; head: number | null }>(sql`
    SELECT (SELECT running FROM fair_clients WHERE client_id = ${job.client_id}) AS running,
           (SELECT min(head_seq) FROM fair_queue
            WHERE lane IN (${inLanes}) AND effective_priority = ${job.effective_priority} AND client_id = ${job.client_id}) AS head`);
  const running = client?.running ?? 0;
  const head = client?.head ?? job.seq;
  const [ahead] = db.allSql<{ n: number }>(sql`
    SELECT count(DISTINCT client_id) AS n FROM (
      SELECT client_id FROM fair_queue INDEXED BY fair_queue_order
      WHERE lane IN (${inLanes}) AND effective_priority = ${job.effective_priority} AND client_id <> ${job.client_id}
        AND (running < ${running} OR (running = ${running} AND head_seq < ${head}))
      LIMIT ${JOBS_AHEAD_CAP})`);
  const clients = ahead?.n ?? 0;
  const [own] = db.allSql<{ n: number }>(sql`
    SELECT count(*) AS n FROM (SELECT 1 FROM jobs
      WHERE status = 'pending' AND lane IN (${inLanes}) AND effective_priority = ${job.effective_priority}
        AND client_id = ${job.client_id} AND seq < ${job.seq} LIMIT 1)`);
  const [higher] = db.allSql<{ n: number }>(sql`
    SELECT count(*) AS n FROM (SELECT 1 FROM fair_queue
      WHERE lane IN (${inLanes}) AND effective_priority > ${job.effective_priority} LIMIT 1)`);
  return { running, clientsAhead: clients >= JOBS_AHEAD_CAP ? null : clients, own: own?.n ?? 0, higher: higher?.n ?? 0 };
}
