// Reading jobs: one job, filtered lists (newest first), a job's events, queue stats.
import { sql } from "kysely";
import {
  JOB_STATUSES,
  NODE_STATUSES,
  PRIORITY_NAMES,
  type Job,
  type JobEvent,
  type JobStatus,
  type ListJobsParams,
  type NodeStatus,
  type Page,
  type PageParams,
  type PriorityName,
  type QueueStats,
} from "../../types.js";
import type { StoreContext } from "../context.js";
import { readQuery, readRows, type ThreadReader } from "../reader.js";
import { decodeCursor, pageOf, parseJson, priorityName, toAuditEntry, toJob } from "../rows.js";
import { jobHistory } from "../../history.js";
import { listAttempts } from "./attempts.js";
import { compileFiltered, filtersGiven, whereFilter } from "./filter.js";

export function getJob(ctx: StoreContext, id: string): Job | undefined {
  const row = ctx.db.get(ctx.db.kysely.selectFrom("jobs").selectAll().where("id", "=", id));
  return row ? toJob(row) : undefined;
}

/** Ids per statement: well under SQLite's limit of bound parameters. */
const IDS_PER_READ = 500;

export function finalAmong(ctx: StoreContext, ids: readonly string[]): string[] {
  const waiting = new Set<string>();
  for (let i = 0; i < ids.length; i += IDS_PER_READ) {
    const chunk = ids.slice(i, i + IDS_PER_READ);
    const rows = ctx.db.all(
      ctx.db.kysely.selectFrom("jobs").select("id").where("id", "in", chunk).where("status", "not in", ["completed", "failed", "canceled"]),
    );
    for (const row of rows) waiting.add(row.id);
  }
  return ids.filter((id) => !waiting.has(id));
}

/**
 * A page of jobs, newest first. With no filter, or only a status or only a client, it
 * reads one index range (a page of 50: 1.2 ms); running jobs are all read and sorted, and
 * completed ones, which have no index, are found by walking back through the jobs (most
 * match, but not behind a backlog), both in the reader thread. Any other filter, or two of them, walks
 * back through the jobs until it has a page, all of them if few match (55-160 ms at
 * 300,000 jobs here): those lists are read in the reader thread when there is one, not on
 * the event loop. The others stay on the master's connection: the thread's round trip
 * would add about a millisecond, and its copies of every row memory.
 */
export async function listJobs(ctx: StoreContext, params: ListJobsParams, reader?: ThreadReader): Promise<Page<Job>> {
  const { db } = ctx;
  const before = decodeCursor(params.cursor);
  let query = db.kysely.selectFrom("jobs").selectAll().orderBy("seq", "desc").limit(params.limit + 1);
  if (before !== undefined) query = query.where("seq", "<", before);
  query = whereFilter(query, params);
  const filters = filtersGiven(params);
  // Completed jobs have no index of their own: most jobs are, but behind a backlog the walk
  // to a page of them can be long.
  // Running jobs are all read and sorted (up to the cluster's capacity: 30 ms at 20,000).
  const walksFar =
    filters.length > 1 ||
    (filters.length === 1 && ((params.status === undefined && params.clientId === undefined) || params.status === "completed" || params.status === "running"));
  return pageOf(await readQuery(db, walksFar ? reader : undefined, compileFiltered(query, params)), params.limit, (row) => row.seq, toJob);
}

/**
 * What a job's history takes from the job and its attempts rather than from audit_log, where
 * databases made before migration 0003 still hold them (they would show twice).
 */
const NODE_EVENTS = ["job.submitted", "job.assigned", "job.completed", "job.retry_scheduled"];

function isNodeReported(details: string): boolean {
  const parsed = parseJson<{ node_id?: unknown; reason?: unknown } | null>(details, null);
  return parsed?.node_id !== undefined && parsed?.reason === undefined;
}

/**
 * A job's history, oldest first (../history.ts): its submission, its attempts and every audit
 * row about it but those its job and attempts tell.
 */
export function jobEvents(ctx: StoreContext, params: PageParams & { jobId: string }): Page<JobEvent> {
  const { db } = ctx;
  const job = getJob(ctx, params.jobId);
  if (!job) return { items: [], next_cursor: null };
  const audited = db
    .all(
      db.kysely
        .selectFrom("audit_log")
        .selectAll()
        .where("entity_type", "=", "job")
        .where("entity_id", "=", job.id)
        .where("event_type", "not in", NODE_EVENTS)
        .orderBy("id"),
    )
    // A job.failed a node's report wrote before 0003 (a node, and no lease-end reason as the
    // master's own have): its attempt tells it now.
    .filter((row) => !(row.event_type === "job.failed" && isNodeReported(row.details)))
    .map((row) => toAuditEntry(row));
  return jobHistory(job, listAttempts(ctx, job.id), audited, params);
}

function zeroes<K extends string>(keys: readonly K[]): Record<K, number> {
  return Object.fromEntries(keys.map((key) => [key, 0])) as Record<K, number>;
}

/** The states jobs_by_status holds. */
const INDEXED_STATUSES = ["blocked", "scheduled", "pending", "failed", "canceled"] as const;

/**
 * The queue's stats (see reader.ts). The jobs by status: every job counted through the smallest
 * index, each state but completed through its partial index (jobs_by_status, jobs_running), and
 * the completed the rest; a count grouped by status would read the whole table (no index has
 * every job's status: completed jobs have none).
 */
function statsQueries(ctx: StoreContext) {
  const k = ctx.db.kysely;
  const counts = [
    sql`(SELECT count(*) FROM jobs) AS total`,
    sql`(SELECT count(*) FROM jobs WHERE status = 'running') AS running`,
    ...INDEXED_STATUSES.map((status) => sql`(SELECT count(*) FROM jobs WHERE status = ${sql.lit(status)}) AS ${sql.ref(status)}`),
  ];
  return [
    sql<Record<string, number>>`SELECT ${sql.join(counts)}`,
    k
      .selectFrom("jobs")
      .select((eb) => ["effective_priority", eb.fn.countAll<number>().as("n")])
      .where("status", "=", sql.lit("pending"))
      .groupBy("effective_priority"),
    k.selectFrom("jobs").select((eb) => eb.fn.min("ready_at").as("ready_at")).where("status", "=", sql.lit("pending")),
    k.selectFrom("nodes").select((eb) => ["status", eb.fn.countAll<number>().as("n")]).groupBy("status"),
  ] as const;
}

type Counted<K extends string> = Record<K, unknown> & { n: number };

function statsOf(
  ctx: StoreContext,
  [[counted], byPriority, oldestRows, byNode]: [Record<string, number>[], Counted<"effective_priority">[], { ready_at: unknown }[], Counted<"status">[]],
): QueueStats {
  const jobs = zeroes<JobStatus>(JOB_STATUSES);
  let others = 0;
  for (const status of [...INDEXED_STATUSES, "running"] as const) {
    jobs[status] = counted?.[status] ?? 0;
    others += jobs[status];
  }
  jobs.completed = Math.max(0, (counted?.total ?? 0) - others);
  const pendingByPriority = zeroes<PriorityName>(PRIORITY_NAMES);
  for (const row of byPriority) pendingByPriority[priorityName(row.effective_priority as number)] += row.n;
  const nodes = zeroes<NodeStatus>(NODE_STATUSES);
  for (const row of byNode) nodes[row.status as NodeStatus] = row.n;
  const oldestAt = (oldestRows[0]?.ready_at as string | null | undefined) ?? null;
  return {
    jobs,
    pending_by_priority: pendingByPriority,
    oldest_pending_age_s:
      oldestAt === null ? null : Math.max(0, (ctx.clock.now().getTime() - new Date(oldestAt).getTime()) / 1000),
    nodes,
  };
}

export async function queueStats(ctx: StoreContext, reader?: ThreadReader): Promise<QueueStats> {
  const rows = await readRows(ctx.db, reader, statsQueries(ctx).map((query) => query.compile(ctx.db.kysely)));
  return statsOf(ctx, rows as Parameters<typeof statsOf>[1]);
}
