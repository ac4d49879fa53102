// Bulk cancel and retry on PostgreSQL (API.md §5, Bulk): every job a filter matches, oldest
// first, up to `max`, each decided by the same rules as the one-job actions, worked out for
// the whole set from one read of the jobs and their dependency links (queue/bulk-plan.ts) and
// applied with a few set-based writes, each still guarded by the state it read, in one
// transaction with one audit row. The jobs taken are locked in seq order (a claim or a report
// on another master waits).
import { sql } from "kysely";
import { planCancels, planRetries, type PlannedJob, type RetryGraphJob } from "../../../queue/bulk-plan.js";
import { onCancel, onRetry } from "../../../queue/transitions.js";
import type { BulkActionOutcome, BulkActionParams, JobStatus } from "../../types.js";
import { rowsOf, writeAudit, type PgContext } from "../context.js";
import type { Tx } from "../database.js";
import type { JobRow } from "../rows.js";
import { filterClauses, where } from "./filter.js";
import { factsOf, failDependentsOf, requeueRetriedMany } from "./lifecycle.js";

type Candidate = Pick<JobRow, "seq" | "id" | "status" | "attempt" | "node_id" | "retry_count" | "max_retries" | "cancel_requested" | "priority" | "failure_reason">;

const CANDIDATE_SELECT = sql.raw("seq, id, status, attempt, node_id, retry_count, max_retries, cancel_requested, priority, failure_reason");

async function candidates(tx: Tx, params: BulkActionParams): Promise<{ taken: Candidate[]; more: boolean }> {
  const clauses = filterClauses(params.filter);
  // Running jobs are all read from jobs_running and the oldest taken (a subquery planned alone:
  // left to the planner, the LIMIT walked jobs_pkey from the oldest job through every finished
  // one); the rows are then locked by key, the filter checked again on what is locked.
  if (params.filter.status === "running") {
    clauses.push(sql`seq = ANY(ARRAY(SELECT seq FROM (SELECT seq FROM jobs ${where(filterClauses(params.filter))} OFFSET 0) AS running ORDER BY seq LIMIT ${params.max + 1}))`);
  }
  const rows = await rowsOf(
    tx,
    sql<Candidate>`SELECT ${CANDIDATE_SELECT} FROM jobs
                   ${where(clauses)} ORDER BY seq LIMIT ${params.max + 1}
                   ${params.dryRun ? sql`` : sql`FOR UPDATE`}`,
  );
  return { taken: rows.slice(0, params.max), more: rows.length > params.max };
}

const planned = (job: Candidate): PlannedJob => ({ id: job.id, ...factsOf(job) });

async function audit(tx: Tx, action: "canceled" | "retried", params: BulkActionParams, outcome: BulkActionOutcome, ids: string[], at: string): Promise<void> {
  await writeAudit(
    tx.db,
    [{ event_type: `jobs.${action}`, entity_type: "jobs", entity_id: ids[0] ?? "", client_id: params.actor, details: { filter: params.shownFilter, max: params.max, ...outcome, ids } }],
    at,
  );
}

/**
 * The blocked jobs among `taken` that a cancel of the waiting ones reaches through blocked
 * dependents: an earlier job's cancel fails them (dependency_failed) before their turn.
 */
async function failedByEarlierCancels(tx: Tx, taken: readonly Candidate[]): Promise<Set<string>> {
  const blocked = taken.filter((job) => job.status === "blocked").map((job) => job.id);
  if (blocked.length === 0) return new Set();
  const waiting = taken.filter((job) => job.status === "blocked" || job.status === "scheduled" || job.status === "pending").map((job) => job.id);
  const rows = await rowsOf(
    tx,
    sql<{ id: string }>`
      WITH RECURSIVE reached(id) AS (
        SELECT d.job_id FROM job_dependencies d JOIN jobs j ON j.id = d.job_id AND j.status = 'blocked'
        WHERE d.depends_on_id = ANY(${waiting}::text[])
        UNION
        SELECT d.job_id FROM reached r JOIN job_dependencies d ON d.depends_on_id = r.id JOIN jobs j ON j.id = d.job_id AND j.status = 'blocked'
      )
      SELECT id FROM reached WHERE id = ANY(${blocked}::text[])`,
  );
  return new Set(rows.map((row) => row.id));
}

export async function cancelMatching(ctx: PgContext, tx: Tx, params: BulkActionParams): Promise<BulkActionOutcome> {
  const { taken, more } = await candidates(tx, params);
  if (params.dryRun) {
    const changed = taken.filter((job) => {
      const decision = onCancel(factsOf(job));
      return decision.ok && decision.transition !== null;
    });
    return { matched: taken.length, changed: changed.length, more };
  }
  const at = ctx.clock.now().toISOString();
  const plan = planCancels(taken.map((job) => planned(job)), await failedByEarlierCancels(tx, taken));
  const byId = new Map(taken.map((job) => [job.id, job]));
  const pick = (ids: string[]) => ids.map((id) => byId.get(id) as Candidate);
  const asked = plan.stopRequested.length === 0 ? [] : await rowsOf(
    tx,
    sql<{ id: string }>`
      UPDATE jobs SET cancel_requested = true, updated_at = ${at}
      FROM jsonb_to_recordset(${JSON.stringify(pick(plan.stopRequested).map((job) => ({ seq: job.seq, attempt: job.attempt })))}::jsonb) AS c(seq bigint, attempt integer)
      WHERE jobs.seq = c.seq AND jobs.status = 'running' AND jobs.attempt = c.attempt AND NOT jobs.cancel_requested
      RETURNING jobs.id`,
  );
  const ended = plan.canceled.length === 0 ? [] : await rowsOf(
    tx,
    sql<{ id: string }>`
      UPDATE jobs SET status = 'canceled', aging_at = NULL, finished_at = ${at}, updated_at = ${at}
      FROM jsonb_to_recordset(${JSON.stringify(pick(plan.canceled).map((job) => ({ seq: job.seq, status: job.status })))}::jsonb) AS c(seq bigint, status text)
      WHERE jobs.seq = c.seq AND jobs.status = c.status
      RETURNING jobs.id`,
  );
  const changedIds = new Set([...asked, ...ended].map((row) => row.id));
  const endedIds = new Set(ended.map((row) => row.id));
  const finished = taken.filter((job) => endedIds.has(job.id)).map((job) => job.id);
  if (finished.length > 0) {
    tx.mark({ finished });
    await failDependentsOf(tx, finished, at);
  }
  const changed = taken.filter((job) => changedIds.has(job.id)).map((job) => job.id);
  const outcome = { matched: taken.length, changed: changed.length, more };
  await audit(tx, "canceled", params, outcome, changed, at);
  return outcome;
}

type GraphRow = Candidate & { taken: boolean };

/**
 * What the retries may reach, read once: the jobs taken and, through dependents that failed
 * only because of one (dependency_failed), the jobs a retry may make wait again, locked in seq
 * order; and the dependencies of all of them with their statuses.
 */
async function retryGraph(tx: Tx, taken: readonly Candidate[], lock: boolean): Promise<{ jobs: GraphRow[]; links: { job_id: string; depends_on_id: string; status: string }[] }> {
  if (taken.length === 0) return { jobs: [], links: [] };
  const ids = taken.map((job) => job.id);
  const reached = await rowsOf(
    tx,
    sql<GraphRow>`
      WITH RECURSIVE reached(id) AS (
        SELECT d.job_id FROM job_dependencies d JOIN jobs j ON j.id = d.job_id
        WHERE d.depends_on_id = ANY(${ids}::text[]) AND j.status = 'failed' AND j.failure_reason = 'dependency_failed'
        UNION
        SELECT d.job_id FROM reached r JOIN job_dependencies d ON d.depends_on_id = r.id JOIN jobs j ON j.id = d.job_id
        WHERE j.status = 'failed' AND j.failure_reason = 'dependency_failed'
      )
      SELECT ${CANDIDATE_SELECT}, false AS taken FROM jobs WHERE id IN (SELECT id FROM reached) AND NOT id = ANY(${ids}::text[])
      ORDER BY seq ${lock ? sql`FOR UPDATE` : sql``}`,
  );
  const jobs = [...taken.map((job) => ({ ...job, taken: true })), ...reached];
  const links = await rowsOf(
    tx,
    sql<{ job_id: string; depends_on_id: string; status: string }>`
      SELECT d.job_id, d.depends_on_id, j.status FROM job_dependencies d JOIN jobs j ON j.id = d.depends_on_id
      WHERE d.job_id = ANY(${jobs.map((job) => job.id)}::text[])`,
  );
  return { jobs, links };
}

export async function retryMatching(ctx: PgContext, tx: Tx, params: BulkActionParams): Promise<BulkActionOutcome> {
  const { taken, more } = await candidates(tx, params);
  const now = ctx.clock.now();
  const at = now.toISOString();
  const { jobs, links } = await retryGraph(tx, taken, !params.dryRun);
  const statuses = new Map<string, JobStatus>(jobs.map((job) => [job.id, job.status as JobStatus]));
  const dependencies = new Map<string, string[]>();
  const dependents = new Map<string, string[]>();
  const add = (map: Map<string, string[]>, key: string, value: string) => {
    const list = map.get(key);
    if (list) list.push(value);
    else map.set(key, [value]);
  };
  for (const link of links) {
    if (!statuses.has(link.depends_on_id)) statuses.set(link.depends_on_id, link.status as JobStatus);
    add(dependencies, link.job_id, link.depends_on_id);
  }
  // Each job's dependents in seq order (taken and reached are each in seq order, not together).
  for (const job of [...jobs].sort((a, b) => Number(a.seq) - Number(b.seq))) {
    for (const dependency of dependencies.get(job.id) ?? []) add(dependents, dependency, job.id);
  }
  if (params.dryRun) {
    const changed = taken.filter((job) => onRetry(factsOf(job), (dependencies.get(job.id) ?? []).map((id) => ({ id, status: statuses.get(id) as JobStatus })), now).ok);
    return { matched: taken.length, changed: changed.length, more };
  }
  const graphJobs = new Map<string, RetryGraphJob>(jobs.map((job) => [job.id, { ...planned(job), failureReason: job.failure_reason }]));
  const plan = planRetries(
    taken.map((job) => job.id),
    { jobs: graphJobs, dependencies, dependents, statuses },
    now,
  );
  const byId = new Map(jobs.map((job) => [job.id, job]));
  const done = await requeueRetriedMany(
    ctx,
    tx,
    plan.retried.map(({ id, status, retryCount }) => ({ job: byId.get(id) as GraphRow, status, retryCount })),
    now,
  );
  const retried = plan.retried.filter(({ id }) => done.has(String(byId.get(id)?.seq)));
  if (plan.reopened.length > 0) {
    const reopened = await rowsOf(
      tx,
      sql<{ id: string }>`
        UPDATE jobs SET status = 'blocked', failure_reason = NULL, finished_at = NULL, updated_at = ${at}
        WHERE seq = ANY(${plan.reopened.map(({ id }) => Number(byId.get(id)?.seq))}::bigint[]) AND status = 'failed'
        RETURNING id`,
    );
    const reopenedIds = new Set(reopened.map((row) => row.id));
    await writeAudit(
      tx.db,
      plan.reopened
        .filter(({ id }) => reopenedIds.has(id))
        .map(({ id, because }) => ({ event_type: "job.retried", entity_type: "job", entity_id: id, client_id: params.actor, details: { status: "blocked", because } })),
      at,
    );
  }
  const outcome = { matched: taken.length, changed: retried.length, more };
  if (retried.some(({ status }) => status === "pending")) tx.mark({ claimable: true });
  await audit(tx, "retried", params, outcome, retried.map(({ id }) => id), at);
  return outcome;
}
