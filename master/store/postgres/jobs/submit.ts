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

type Checked =
  | { kind: "existing"; row: JobRow }
  | { kind: "repeat"; of: number }
  | { kind: "new"; job: SubmitJobParams; dependsOn: string[]; dependencies: JobStatus[] };

/**
 * First pass: look everything up; an unknown dependency refuses the whole batch before any
 * write. The dependencies are locked (FOR SHARE) until the new jobs commit: a report that
 * finishes one on another master waits, and then sees the new job among its dependents.
 */
async function check(tx: Tx, jobs: SubmitJobParams[]): Promise<Checked[] | Extract<SubmitOutcome, { ok: false }>> {
  const checked: Checked[] = [];
  const keysInBatch = new Map<string, number>();
  const keyed = jobs.filter((job) => job.idempotencyKey !== null);
  const existing = new Map<string, JobRow>();
  if (keyed.length > 0) {
    const rows = await rowsOf(
      tx,
      sql<JobRow>`SELECT j.* FROM jobs j JOIN jsonb_to_recordset(${JSON.stringify(keyed.map((job) => ({ c: job.clientId, k: job.idempotencyKey })))}::jsonb) AS w(c text, k text)
                  ON j.client_id = w.c AND j.idempotency_key = w.k`,
    );
    for (const row of rows) existing.set(`${row.client_id}\u0000${row.idempotency_key}`, row);
  }
  const dependencyIds = [...new Set(jobs.flatMap((job) => job.dependsOn))];
  const dependencies = new Map<string, { client_id: string; status: string }>();
  if (dependencyIds.length > 0) {
    const rows = await rowsOf(tx, sql<{ id: string; client_id: string; status: string }>`
        SELECT id, client_id, status FROM jobs WHERE id = ANY(${dependencyIds}::text[]) ORDER BY seq FOR SHARE`);
    for (const row of rows) dependencies.set(row.id, row);
  }
  for (const [index, job] of jobs.entries()) {
    if (job.idempotencyKey !== null) {
      const key = `${job.clientId}\u0000${job.idempotencyKey}`;
      const earlier = keysInBatch.get(key);
      if (earlier !== undefined) {
        checked.push({ kind: "repeat", of: earlier });
        continue;
      }
      const row = existing.get(key);
      if (row) {
        checked.push({ kind: "existing", row });
        continue;
      }
      keysInBatch.set(key, index);
    }
    const dependsOn = [...new Set(job.dependsOn)];
    const statuses: JobStatus[] = [];
    for (const id of dependsOn) {
      const row = dependencies.get(id);
      if (!row || row.client_id !== job.clientId) return { ok: false, reason: "unknown_dependency", index, dependency: id };
      statuses.push(row.status as JobStatus);
    }
    checked.push({ kind: "new", job, dependsOn, dependencies: statuses });
  }
  return checked;
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

/**
 * Whether the new jobs would take their client past `maxUnfinished` (API.md §4). The client's
 * count is locked until the transaction ends: another submit of the client, on any master,
 * waits for this one.
 */
async function overQuota(tx: Tx, checked: Checked[], maxUnfinished: number | undefined): Promise<Extract<SubmitOutcome, { ok: false }> | undefined> {
  if (maxUnfinished === undefined) return undefined;
  const added = new Map<string, number>();
  for (const entry of checked) if (entry.kind === "new") added.set(entry.job.clientId, (added.get(entry.job.clientId) ?? 0) + 1);
  for (const [clientId, count] of [...added].sort(([a], [b]) => (a < b ? -1 : 1))) {
    // One round trip: the row made if new, locked either way (DO UPDATE locks the row it meets), and read.
    const [row] = await rowsOf(
      tx,
      sql<{ unfinished: number }>`INSERT INTO client_job_counts AS c (client_id, unfinished) VALUES (${clientId}, 0)
        ON CONFLICT (client_id) DO UPDATE SET unfinished = c.unfinished RETURNING unfinished`,
    );
    const unfinished = row?.unfinished ?? 0;
    if (unfinished + count > maxUnfinished) return { ok: false, reason: "quota_exceeded", unfinished, limit: maxUnfinished };
  }
  return undefined;
}

/** Submit inside the caller's transaction (a verb's own, or a schedule's tick). */
export async function submitJobs(ctx: PgContext, tx: Tx, jobs: SubmitJobParams[], options: SubmitOptions = {}): Promise<SubmitOutcome> {
  const batch = options.batch ?? jobs.length > 1;
  const checked = await check(tx, jobs);
  if (!Array.isArray(checked)) return checked;
  const refused = await overQuota(tx, checked, options.maxUnfinished);
  if (refused) return refused;
  const now = ctx.clock.now();
  const at = now.toISOString();
  const rows: (Omit<JobRow, "seq"> & { seq?: number })[] = [];
  const links: { job_id: string; depends_on_id: string }[] = [];
  const slots: ({ row: JobRow; created: boolean } | { repeat: number } | { index: number })[] = [];
  // Lanes made in this transaction are known to the store only once it commits.
  const lanes = new Map<string, number>();
  for (const entry of checked) {
    if (entry.kind === "existing") slots.push({ row: entry.row, created: false });
    else if (entry.kind === "repeat") slots.push({ repeat: entry.of });
    else {
      const { job, dependsOn, dependencies } = entry;
      const { status, failureReason } = onSubmit(dependencies, job.runAt, now);
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
      slots.push({ index: rows.length - 1 });
    }
  }
  const inserted = new Map<string, JobRow>();
  if (rows.length > 0) {
    // One statement for every new job. A key stored by another transaction since the
    // check (another master) conflicts: that job is answered instead, as a key seen before.
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
    if (links.length > 0) {
      await tx.db.executeQuery(
        sql`INSERT INTO job_dependencies (job_id, depends_on_id)
            SELECT job_id, depends_on_id FROM jsonb_to_recordset(${JSON.stringify(links.filter((link) => inserted.has(link.job_id)))}::jsonb)
              AS l(job_id text, depends_on_id text)`.compile(tx.db),
      );
    }
  }
  const items: { job: Job; created: boolean }[] = [];
  const created: Job[] = [];
  for (const slot of slots) {
    if ("repeat" in slot) {
      items.push({ job: (items[slot.repeat] as { job: Job }).job, created: false });
    } else if ("row" in slot) {
      items.push({ job: toJob(slot.row), created: slot.created });
    } else {
      const row = rows[slot.index] as Omit<JobRow, "seq">;
      const stored = inserted.get(row.id);
      if (stored) {
        const job = toJob(stored);
        items.push({ job, created: true });
        created.push(job);
      } else {
        const [theirs] = await rowsOf(tx, sql<JobRow>`SELECT * FROM jobs WHERE client_id = ${row.client_id} AND idempotency_key = ${row.idempotency_key}`);
        if (!theirs) throw new Error(`job ${row.id} was neither stored nor found by its idempotency key`);
        items.push({ job: toJob(theirs), created: false });
      }
    }
  }
  // The client's count of jobs not yet finished (the triggers keep it from here on).
  const unfinished = new Map<string, number>();
  for (const job of created) if (!isFinal(job.status)) unfinished.set(job.client_id, (unfinished.get(job.client_id) ?? 0) + 1);
  for (const [clientId, count] of unfinished) {
    await tx.db.executeQuery(
      sql`INSERT INTO client_job_counts (client_id, unfinished) VALUES (${clientId}, ${count})
          ON CONFLICT (client_id) DO UPDATE SET unfinished = client_job_counts.unfinished + excluded.unfinished`.compile(tx.db),
    );
  }
  await writeAudit(tx.db, submittedEvents(created, batch), at);
  tx.mark({ claimable: created.some((job) => job.status === "pending"), scheduled: created.some((job) => job.status === "scheduled") });
  return { ok: true, items };
}
