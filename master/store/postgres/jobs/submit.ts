// submit on PostgreSQL: new jobs, all or nothing, with idempotency keys and dependencies.
// The rows go in with one INSERT from a JSON array; a key another master stored a moment
// ago (ON CONFLICT) answers that master's job, as a key seen before does.
import { sql } from "kysely";
import { isFinal, onSubmit } from "../../../queue/transitions.js";
import { timeOrderedId } from "../../pages.js";
import { PRIORITY_WEIGHTS, type Job, type JobStatus, type SubmitJobParams, type SubmitOptions, type SubmitOutcome } from "../../types.js";
import { rowsOf, writeAudit, type AuditEvent, type PgContext } from "../context.js";
import type { Tx } from "../database.js";
import { toJob, type JobRow } from "../rows.js";
import { laneOf } from "../lanes.js";
import { nextAgingAt } from "./lifecycle.js";

/** One submit as the caller asked it: a batch is all or nothing, and so is each request of a group. */
export interface SubmitRequest {
  jobs: SubmitJobParams[];
  options: SubmitOptions;
}

type Refusal = Extract<SubmitOutcome, { ok: false }>;

/** Where a job's answer comes from: a row stored before, a job of this transaction (request, position), or a row to insert. */
type Slot = { row: JobRow } | { request: number; position: number } | { index: number };

/** What the requests' jobs need looked up, for all of them at once: keys stored before, and their dependencies. */
interface Lookups {
  existing: Map<string, JobRow>;
  dependencies: Map<string, { client_id: string; status: string }>;
}

const keyOf = (clientId: string, key: string) => `${clientId}\u0000${key}`;

/**
 * The rows the requests' idempotency keys name, and their dependencies. The dependencies are
 * locked (FOR SHARE) until the new jobs commit: a report that finishes one on another master
 * waits, and then sees the new job among its dependents.
 */
async function lookUp(tx: Tx, jobs: SubmitJobParams[]): Promise<Lookups> {
  const keyed = jobs.filter((job) => job.idempotencyKey !== null);
  const existing = new Map<string, JobRow>();
  if (keyed.length > 0) {
    const rows = await rowsOf(
      tx,
      sql<JobRow>`SELECT j.* FROM jobs j JOIN jsonb_to_recordset(${JSON.stringify(keyed.map((job) => ({ c: job.clientId, k: job.idempotencyKey })))}::jsonb) AS w(c text, k text)
                  ON j.client_id = w.c AND j.idempotency_key = w.k`,
    );
    for (const row of rows) existing.set(keyOf(row.client_id, row.idempotency_key ?? ""), row);
  }
  const dependencyIds = [...new Set(jobs.flatMap((job) => job.dependsOn))];
  const dependencies = new Map<string, { client_id: string; status: string }>();
  if (dependencyIds.length > 0) {
    const rows = await rowsOf(tx, sql<{ id: string; client_id: string; status: string }>`
        SELECT id, client_id, status FROM jobs WHERE id = ANY(${dependencyIds}::text[]) ORDER BY seq FOR SHARE`);
    for (const row of rows) dependencies.set(row.id, row);
  }
  return { existing, dependencies };
}

/**
 * The unfinished counts of the clients whose requests have a quota (API.md §4), each row made if
 * new and locked until the transaction ends (DO UPDATE locks the row it meets): another submit
 * of these clients, on any master, waits for this one. In client order, as every writer of the
 * counts locks them (migrations/postgres/0004), so two cannot deadlock.
 */
async function lockCounts(tx: Tx, clientIds: string[]): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  if (clientIds.length === 0) return counts;
  const rows = await rowsOf(
    tx,
    sql<{ client_id: string; unfinished: number }>`INSERT INTO client_job_counts AS c (client_id, unfinished)
      SELECT client_id, 0 FROM unnest(${[...new Set(clientIds)].sort()}::text[]) AS u(client_id) ORDER BY client_id
      ON CONFLICT (client_id) DO UPDATE SET unfinished = c.unfinished RETURNING client_id, unfinished`,
  );
  for (const row of rows) counts.set(row.client_id, row.unfinished);
  return counts;
}

/** The audit of a submission: one job.submitted for a single job, one jobs.submitted for a batch. */
function submittedEvents(jobs: readonly Job[], batch: boolean): AuditEvent[] {
  const [first] = jobs;
  if (first === undefined) return [];
  const decided: AuditEvent[] = jobs
    .filter((job) => job.status === "failed")
    .map((job) => ({ event_type: "job.failed", entity_type: "job", entity_id: job.id, client_id: job.client_id, details: { failure_reason: job.failure_reason } }));
  if (!batch && jobs.length === 1) {
    return [{ event_type: "job.submitted", entity_type: "job", entity_id: first.id, client_id: first.client_id, details: { type: first.type, priority: first.priority, status: first.status } }, ...decided];
  }
  const ids = jobs.map((job) => job.id);
  return [{ event_type: "jobs.submitted", entity_type: "jobs", entity_id: first.id, client_id: first.client_id, details: { count: ids.length, ids } }, ...decided];
}


/** Submit inside the caller's transaction (a verb's own, or a schedule's tick). */
export async function submitJobs(ctx: PgContext, tx: Tx, jobs: SubmitJobParams[], options: SubmitOptions = {}): Promise<SubmitOutcome> {
  const [outcome] = await submitRequests(ctx, tx, [{ jobs, options }]);
  if (!outcome) throw new Error("submit answered nothing");
  return outcome;
}

/** A job row as the INSERT takes it (seq comes from the table). */
type NewRow = Omit<JobRow, "seq">;

/**
 * Several submits in one transaction, each answered as if it had been alone, in order: a
 * request refused (an unknown dependency, its client's quota) stores nothing and leaves the
 * others be; a later request sees what the earlier ones stored (their jobs count towards the
 * quota, their idempotency keys answer with their jobs). Every request's new jobs go in with
 * one INSERT, the counts with one upsert, the audit rows with one INSERT.
 */
export async function submitRequests(ctx: PgContext, tx: Tx, requests: SubmitRequest[]): Promise<SubmitOutcome[]> {
  const { existing, dependencies } = await lookUp(tx, requests.flatMap((request) => request.jobs));
  const counts = await lockCounts(
    tx,
    requests.filter((request) => request.options.maxUnfinished !== undefined).flatMap((request) => request.jobs.map((job) => job.clientId)),
  );
  const now = ctx.clock.now();
  const at = now.toISOString();
  const rows: NewRow[] = [];
  const links: { job_id: string; depends_on_id: string }[] = [];
  // Lanes made in this transaction are known to the store only once it commits.
  const lanes = new Map<string, number>();
  /** Keys of the jobs the requests accepted so far store, and where their answers are. */
  const taken = new Map<string, { request: number; position: number }>();
  const decided: (Refusal | Slot[])[] = [];
  for (const [r, request] of requests.entries()) {
    const slots: Slot[] = [];
    const fresh: { job: SubmitJobParams; dependsOn: string[]; status: JobStatus; failureReason: string | null }[] = [];
    const keysHere = new Map<string, number>();
    let refusal: Refusal | undefined;
    for (const [index, job] of request.jobs.entries()) {
      if (job.idempotencyKey !== null) {
        const key = keyOf(job.clientId, job.idempotencyKey);
        const earlier = taken.get(key) ?? (keysHere.has(key) ? { request: r, position: keysHere.get(key) as number } : undefined);
        if (earlier !== undefined) {
          slots.push(earlier);
          continue;
        }
        const row = existing.get(key);
        if (row) {
          slots.push({ row });
          continue;
        }
        keysHere.set(key, index);
      }
      const dependsOn = [...new Set(job.dependsOn)];
      const statuses: JobStatus[] = [];
      for (const id of dependsOn) {
        const row = dependencies.get(id);
        if (!row || row.client_id !== job.clientId) refusal ??= { ok: false, reason: "unknown_dependency", index, dependency: id };
        else statuses.push(row.status as JobStatus);
      }
      if (refusal) break;
      const { status, failureReason } = onSubmit(statuses, job.runAt, now);
      fresh.push({ job, dependsOn, status, failureReason });
      slots.push({ index: -1 });
    }
    const maxUnfinished = request.options.maxUnfinished;
    if (!refusal && maxUnfinished !== undefined) {
      const added = new Map<string, number>();
      for (const { job } of fresh) added.set(job.clientId, (added.get(job.clientId) ?? 0) + 1);
      for (const [clientId, count] of [...added].sort(([a], [b]) => (a < b ? -1 : 1))) {
        const unfinished = counts.get(clientId) ?? 0;
        if (unfinished + count > maxUnfinished) {
          refusal = { ok: false, reason: "quota_exceeded", unfinished, limit: maxUnfinished };
          break;
        }
      }
    }
    if (refusal) {
      decided.push(refusal);
      continue;
    }
    // Accepted: its jobs are rows to insert, its keys answer the requests after it, its jobs count.
    for (const [key, position] of keysHere) taken.set(key, { request: r, position });
    let next = 0;
    for (const [position, slot] of slots.entries()) {
      if (!("index" in slot)) continue;
      const { job, dependsOn, status, failureReason } = fresh[next++] as (typeof fresh)[number];
      if (counts.has(job.clientId) && !isFinal(status)) counts.set(job.clientId, (counts.get(job.clientId) ?? 0) + 1);
      const weight = PRIORITY_WEIGHTS[job.priority];
      const requires = [...new Set(job.requires)].sort();
      const id = timeOrderedId(now.getTime());
      rows.push({
        id,
        client_id: job.clientId,
        type: job.type,
        lane: await laneOf(tx, ctx.lanes, lanes, job.type, requires, at),
        payload: job.payload ?? null,
        priority: weight,
        effective_priority: weight,
        status,
        node_id: null,
        attempt: 0,
        retry_count: 0,
        max_retries: job.maxRetries,
        timeout_s: job.timeoutS,
        run_at: job.runAt === null ? null : job.runAt.toISOString(),
        ready_at: status === "scheduled" && job.runAt !== null ? job.runAt.toISOString() : at,
        stall_at: null,
        lease_expires_at: null,
        aging_at: status === "pending" ? nextAgingAt(weight, now, ctx.policy.agingMs) : null,
        requires,
        depends_on: dependsOn,
        idempotency_key: job.idempotencyKey,
        tags: job.tags,
        progress: null,
        progress_message: null,
        progress_logged_at: null,
        result: null,
        error: null,
        failure_reason: failureReason,
        cancel_requested: false,
        lease_end_reason: null,
        created_at: at,
        updated_at: at,
        started_at: null,
        finished_at: status === "failed" ? at : null,
      });
      for (const dependency of dependsOn) links.push({ job_id: id, depends_on_id: dependency });
      slots[position] = { index: rows.length - 1 };
    }
    decided.push(slots);
  }
  const inserted = await insertRows(tx, rows, links);
  // Answers, request by request (a repeated key answers the job of the slot it names).
  const answers: { job: Job; created: boolean }[][] = [];
  const outcomes: SubmitOutcome[] = [];
  const events: AuditEvent[] = [];
  const added = new Map<string, number>();
  for (const [r, decision] of decided.entries()) {
    const items: { job: Job; created: boolean }[] = [];
    answers.push(items);
    if (!Array.isArray(decision)) {
      outcomes.push(decision);
      continue;
    }
    const created: Job[] = [];
    for (const slot of decision) {
      if ("row" in slot) items.push({ job: toJob(slot.row), created: false });
      else if ("request" in slot) items.push({ job: (answers[slot.request]?.[slot.position] as { job: Job }).job, created: false });
      else {
        const row = rows[slot.index] as NewRow;
        const stored = inserted.get(row.id);
        if (stored) {
          const job = toJob(stored);
          items.push({ job, created: true });
          created.push(job);
          if (!isFinal(job.status)) added.set(job.client_id, (added.get(job.client_id) ?? 0) + 1);
        } else {
          // Its key was stored by another transaction since the look-up (another master): that job answers.
          const [theirs] = await rowsOf(tx, sql<JobRow>`SELECT * FROM jobs WHERE client_id = ${row.client_id} AND idempotency_key = ${row.idempotency_key}`);
          if (!theirs) throw new Error(`job ${row.id} was neither stored nor found by its idempotency key`);
          items.push({ job: toJob(theirs), created: false });
        }
      }
    }
    events.push(...submittedEvents(created, requests[r]?.options.batch ?? (requests[r]?.jobs.length ?? 0) > 1));
    outcomes.push({ ok: true, items });
  }
  // The clients' counts of jobs not yet finished (the triggers keep them from here on).
  if (added.size > 0) {
    const clients = [...added.keys()].sort();
    await tx.db.executeQuery(
      sql`INSERT INTO client_job_counts AS c (client_id, unfinished)
          SELECT client_id, n FROM unnest(${clients}::text[], ${clients.map((id) => added.get(id))}::int[]) AS u(client_id, n) ORDER BY client_id
          ON CONFLICT (client_id) DO UPDATE SET unfinished = c.unfinished + excluded.unfinished`.compile(tx.db),
    );
  }
  await writeAudit(tx.db, events, at);
  const stored = [...inserted.values()];
  tx.mark({ claimable: stored.some((row) => row.status === "pending"), scheduled: stored.some((row) => row.status === "scheduled") });
  return outcomes;
}

/**
 * Every new job with one statement, and their dependencies with another. A key stored by
 * another transaction since the look-up (another master) conflicts: that row is not inserted,
 * and the caller answers with the other's job, as for a key seen before.
 */
async function insertRows(tx: Tx, rows: NewRow[], links: { job_id: string; depends_on_id: string }[]): Promise<Map<string, JobRow>> {
  const inserted = new Map<string, JobRow>();
  if (rows.length === 0) return inserted;
  const stored = await rowsOf(
    tx,
    sql<JobRow>`
      INSERT INTO jobs (id, client_id, type, lane, payload, priority, effective_priority, status, max_retries, timeout_s,
                        run_at, ready_at, aging_at, requires, depends_on, idempotency_key, tags, failure_reason,
                        created_at, updated_at, finished_at)
      SELECT id, client_id, type, lane, payload, priority, effective_priority, status, max_retries, timeout_s,
             run_at, ready_at, aging_at, requires, depends_on, idempotency_key, tags, failure_reason,
             created_at, updated_at, finished_at
      FROM json_to_recordset(${JSON.stringify(rows)}::json) AS r(
        id text, client_id text, type text, lane integer, payload json, priority integer, effective_priority integer,
        status text, max_retries integer, timeout_s double precision, run_at timestamptz, ready_at timestamptz,
        aging_at timestamptz, requires jsonb, depends_on jsonb, idempotency_key text, tags json, failure_reason text,
        created_at timestamptz, updated_at timestamptz, finished_at timestamptz)
      ON CONFLICT (client_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
      RETURNING *`.$castTo<JobRow>(),
  );
  for (const row of stored) inserted.set(row.id, row);
  const kept = links.filter((link) => inserted.has(link.job_id));
  if (kept.length > 0) {
    await tx.db.executeQuery(
      sql`INSERT INTO job_dependencies (job_id, depends_on_id)
          SELECT job_id, depends_on_id FROM jsonb_to_recordset(${JSON.stringify(kept)}::jsonb) AS l(job_id text, depends_on_id text)`.compile(tx.db),
    );
  }
  return inserted;
}
