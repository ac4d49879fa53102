// The facts behind GET /jobs/:id/why, read as the dispatcher reads them: the job's lane,
// the nodes that could take it, and the pending jobs ahead of it in the lanes those nodes
// cover (one range of the dispatch index per lane, counted up to a cap).
import { sql } from "kysely";
import { canRun, type WhyFacts } from "../../../queue/why.js";
import type { JobStatus } from "../../types.js";
import type { StoreContext } from "../context.js";
import { selectNodes } from "../nodes.js";
import { toNode } from "../rows.js";

/** Past this many jobs ahead, in all its lanes together, `jobs_ahead` is null: counting further costs too much. */
export const JOBS_AHEAD_CAP = 10_000;

export function whyFacts(ctx: StoreContext, id: string): Omit<WhyFacts, "paused"> | undefined {
  const { db } = ctx;
  const job = db.get(
    db.kysely.selectFrom("jobs").select(["seq", "id", "status", "type", "requires", "ready_at", "lane", "effective_priority"]).where("id", "=", id),
  );
  if (!job) return undefined;
  const status = job.status as JobStatus;
  const requires = JSON.parse(job.requires) as string[];
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
  if (status === "pending") {
    const lanes = new Set<number>([job.lane]);
    for (const node of nodes) if (canRun(node, job.type, requires)) for (const lane of ctx.lanes.coveredBy(node.labels, node.types)) lanes.add(lane);
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
