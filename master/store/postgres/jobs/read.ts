// Reading jobs on PostgreSQL: one job, filtered lists (newest first), a job's attempts and
// history, queue stats and throughput.
import { sql } from "kysely";
import { jobHistory, type ReportedAttempt } from "../../history.js";
import { decodeCursor, pageOf, priorityName } from "../../pages.js";
import {
  JOB_STATUSES,
  NODE_STATUSES,
  PRIORITY_NAMES,
  type AuditEntry,
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
import type { PgContext } from "../context.js";
import { toJob, type JobRow } from "../rows.js";
import { filterClauses, where } from "./filter.js";

export async function getJob(ctx: PgContext, id: string): Promise<Job | undefined> {
  const row = await ctx.db.one(sql<JobRow>`SELECT * FROM jobs WHERE id = ${id}`);
  return row ? toJob(row) : undefined;
}

export async function finalAmong(ctx: PgContext, ids: readonly string[]): Promise<string[]> {
  if (ids.length === 0) return [];
  const open = await ctx.db.run(sql<{ id: string }>`
    SELECT id FROM jobs WHERE id = ANY(${[...ids]}::text[]) AND status NOT IN ('completed', 'failed', 'canceled')`);
  const waiting = new Set(open.map((row) => row.id));
  return ids.filter((id) => !waiting.has(id));
}

/**
 * A page of jobs, newest first. Running jobs are all read from jobs_running and sorted (a
 * subquery the planner plans alone: OFFSET 0); a LIMIT left to it walks jobs_pkey back
 * through every newer job, every pending one of a backlog, to find them. Completed jobs have
 * no index of their own: most jobs are, and jobs_pkey's walk finds them.
 */
export async function listJobs(ctx: PgContext, params: ListJobsParams): Promise<Page<Job>> {
  const before = decodeCursor(params.cursor);
  const clauses = filterClauses(params);
  if (before !== undefined) clauses.push(sql`seq < ${before}`);
  const matching = params.status === "running" ? sql`(SELECT * FROM jobs ${where(clauses)} OFFSET 0) AS jobs` : sql`jobs ${where(clauses)}`;
  const rows = await ctx.db.run(sql<JobRow>`SELECT * FROM ${matching} ORDER BY seq DESC LIMIT ${params.limit + 1}`);
  return pageOf(rows, params.limit, (row) => row.seq, toJob);
}

/** The attempts of one job, oldest first, with what each node reported. */
export async function listAttempts(ctx: PgContext, jobId: string): Promise<ReportedAttempt[]> {
  return ctx.db.run(sql<ReportedAttempt>`
    SELECT a.attempt, a.node_id, n.name AS node_name, a.started_at, a.finished_at, a.outcome, a.reported, a.error, a.log_tail
    FROM job_attempts a LEFT JOIN nodes n ON n.id = a.node_id
    WHERE a.job_id = ${jobId} ORDER BY a.attempt`);
}

/** What a job's history takes from the job and its attempts rather than from its audit rows. */
const NODE_EVENTS = ["job.submitted", "job.assigned", "job.completed", "job.retry_scheduled"];

export async function jobEvents(ctx: PgContext, params: PageParams & { jobId: string }): Promise<Page<JobEvent>> {
  const job = await getJob(ctx, params.jobId);
  if (!job) return { items: [], next_cursor: null };
  const [attempts, audited] = await Promise.all([
    listAttempts(ctx, job.id),
    ctx.db.run(sql<AuditEntry>`
      SELECT id, event_type, entity_type, entity_id, client_id, details, created_at FROM audit_log
      WHERE entity_type = 'job' AND entity_id = ${job.id} AND NOT (event_type = ANY(${NODE_EVENTS}::text[]))
      ORDER BY id`),
  ]);
  return jobHistory(job, attempts, audited, params);
}

function zeroes<K extends string>(keys: readonly K[]): Record<K, number> {
  return Object.fromEntries(keys.map((key) => [key, 0])) as Record<K, number>;
}

export async function queueStats(ctx: PgContext): Promise<QueueStats> {
  const [byStatus, byPriority, oldest, byNode] = await Promise.all([
    ctx.db.run(sql<{ status: string; n: number }>`SELECT status, count(*) AS n FROM jobs GROUP BY status`),
    ctx.db.run(sql<{ effective_priority: number; n: number }>`SELECT effective_priority, count(*) AS n FROM jobs WHERE status = 'pending' GROUP BY effective_priority`),
    ctx.db.one(sql<{ ready_at: string | null }>`SELECT min(ready_at) AS ready_at FROM jobs WHERE status = 'pending'`),
    ctx.db.run(sql<{ status: string; n: number }>`SELECT status, count(*) AS n FROM nodes GROUP BY status`),
  ]);
  const jobs = zeroes<JobStatus>(JOB_STATUSES);
  for (const row of byStatus) jobs[row.status as JobStatus] = row.n;
  const pendingByPriority = zeroes<PriorityName>(PRIORITY_NAMES);
  for (const row of byPriority) pendingByPriority[priorityName(row.effective_priority)] += row.n;
  const nodes = zeroes<NodeStatus>(NODE_STATUSES);
  for (const row of byNode) nodes[row.status as NodeStatus] = row.n;
  const oldestAt = oldest?.ready_at ?? null;
  return {
    jobs,
    pending_by_priority: pendingByPriority,
    oldest_pending_age_s: oldestAt === null ? null : Math.max(0, (ctx.clock.now().getTime() - new Date(oldestAt).getTime()) / 1000),
    nodes,
  };
}

export async function throughput(ctx: PgContext, since: Date): Promise<{ minute: string; completed: number; failed: number }[]> {
  return ctx.db.run(sql<{ minute: string; completed: number; failed: number }>`
    SELECT date_trunc('minute', finished_at) AS minute,
           count(*) FILTER (WHERE status = 'completed') AS completed,
           count(*) FILTER (WHERE status = 'failed') AS failed
    FROM jobs WHERE finished_at IS NOT NULL AND finished_at >= ${since.toISOString()}
    GROUP BY 1 ORDER BY 1`);
}
