// submit on PostgreSQL: new jobs, all or nothing per request, with idempotency keys and
// dependencies. One transaction may hold several requests (the single submits of a moment,
// submit-group.ts), each decided as if alone. The rows, their dependencies, the clients'
// counts and the audit go in with one statement; a key another master stored a moment ago
// (ON CONFLICT) answers that master's job, as a key seen before does.
import { sql } from "kysely";
import { isFinal, onSubmit } from "../../../queue/transitions.js";
import { submittedColumns } from "../../pages.js";
import { type Job, type JobStatus, type SubmitJobParams, type SubmitOptions, type SubmitOutcome } from "../../types.js";
import { rowsOf, writeAudit, type AuditEvent, type PgContext } from "../context.js";
import type { Tx } from "../database.js";
import { toJob, type JobRow } from "../rows.js";
import { jobOf } from "../../wire.js";
import { laneOf } from "../lanes.js";
import { nextAgingAt } from "./lifecycle.js";

/** One submit as the caller asked it: a batch is all or nothing, and so is each request of a group. */
export interface SubmitRequest {
  jobs: SubmitJobParams[];
  options: SubmitOptions;
}

type Refusal = Extract<SubmitOutcome, { ok: false }>;

/**
 * Where a job's answer comes from: a row stored before, the job of an earlier place among
 * these requests (a key repeated: request, position), or a new job (the request's fresh[n]).
 */
type Slot = { row: JobRow } | { request: number; position: number } | { fresh: number };

/** A new job as decided, before it is a row. */
interface Fresh {
  job: SubmitJobParams;
  dependsOn: string[];
  status: JobStatus;
  failureReason: string | null;
}

/** A request refused, or what it answers and the new jobs it stores. */
type Decision = Refusal | { slots: Slot[]; fresh: Fresh[] };

/** What the requests' jobs need looked up, for all of them at once: keys stored before, and their dependencies. */
interface Lookups {
  existing: Map<string, JobRow>;
  dependencies: Map<string, { client_id: string; status: string }>;
}

const keyOf = (clientId: string, key: string) => `${clientId}\u0000${key}`;

/** The rows the requests' idempotency keys name (read once their clients' counts are locked, if they are). */
async function lookUpKeys(tx: Tx, jobs: SubmitJobParams[]): Promise<Lookups["existing"]> {
  const keyed = jobs.filter((job) => job.idempotencyKey !== null);
  const existing = new Map<string, JobRow>();
  if (keyed.length === 0) return existing;
  const rows = await rowsOf(
    tx,
    sql<JobRow>`SELECT j.* FROM jobs j JOIN jsonb_to_recordset(${JSON.stringify(keyed.map((job) => ({ c: job.clientId, k: job.idempotencyKey })))}::jsonb) AS w(c text, k text)
                ON j.client_id = w.c AND j.idempotency_key = w.k`,
  );
  for (const row of rows) existing.set(keyOf(row.client_id, row.idempotency_key ?? ""), row);
  return existing;
}

/**
 * The requests' dependencies, locked (FOR SHARE) until the new jobs commit: a report that
 * finishes one on another master waits, and then sees the new job among its dependents.
 * Taken before the counts' locks, in the order a report takes them (its job, then the counts).
 */
async function lookUpDependencies(tx: Tx, jobs: SubmitJobParams[]): Promise<Lookups["dependencies"]> {
  const dependencyIds = [...new Set(jobs.flatMap((job) => job.dependsOn))];
  const dependencies = new Map<string, { client_id: string; status: string }>();
  if (dependencyIds.length === 0) return dependencies;
  const rows = await rowsOf(tx, sql<{ id: string; client_id: string; status: string }>`
      SELECT id, client_id, status FROM jobs WHERE id = ANY(${dependencyIds}::text[]) ORDER BY seq FOR SHARE`);
  for (const row of rows) dependencies.set(row.id, row);
  return dependencies;
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


/** Submit inside the caller's transaction (a verb's own, or a schedule's tick); the quota's counts are locked first. */
export async function submitJobs(ctx: PgContext, tx: Tx, jobs: SubmitJobParams[], options: SubmitOptions = {}): Promise<SubmitOutcome> {
  const [outcome] = await submitRequests(ctx, tx, [{ jobs, options }]);
  if (!outcome) throw new Error("submit answered nothing");
  return outcome;
}

/**
 * Each request decided as if alone, in order: refused (an unknown dependency; with `counts`,
 * the quota), or its answers and new jobs. A later request sees what the earlier ones
 * accepted: their jobs count towards the quota, their idempotency keys answer with their jobs.
 * `counts`: the clients' unfinished jobs now (those of requests with a quota), or undefined
 * to leave the quota unchecked. Pure: the same requests, look-ups and counts decide alike.
 */
function decide(requests: SubmitRequest[], lookups: Lookups, counts: ReadonlyMap<string, number> | undefined, now: Date): Decision[] {
  const running = new Map(counts);
  /** Keys of the jobs accepted so far, and where their answers are. */
  const taken = new Map<string, { request: number; position: number }>();
  const decisions: Decision[] = [];
  for (const [r, request] of requests.entries()) {
    const slots: Slot[] = [];
    const fresh: Fresh[] = [];
    const keysHere = new Map<string, number>();
    let refusal: Refusal | undefined;
    for (const [index, job] of request.jobs.entries()) {
      if (job.idempotencyKey !== null) {
        const key = keyOf(job.clientId, job.idempotencyKey);
        const here = keysHere.get(key);
        const earlier = taken.get(key) ?? (here === undefined ? undefined : { request: r, position: here });
        if (earlier !== undefined) {
          slots.push(earlier);
          continue;
        }
        const row = lookups.existing.get(key);
        if (row) {
          slots.push({ row });
          continue;
        }
        keysHere.set(key, index);
      }
      const dependsOn = [...new Set(job.dependsOn)];
      const statuses: JobStatus[] = [];
      for (const id of dependsOn) {
        const row = lookups.dependencies.get(id);
        if (!row || row.client_id !== job.clientId) {
          refusal = { ok: false, reason: "unknown_dependency", index, dependency: id };
          break;
        }
        statuses.push(row.status as JobStatus);
      }
      if (refusal) break;
      const { status, failureReason } = onSubmit(statuses, job.runAt, now);
      slots.push({ fresh: fresh.length });
      fresh.push({ job, dependsOn, status, failureReason });
    }
    const maxUnfinished = request.options.maxUnfinished;
    if (!refusal && counts !== undefined && maxUnfinished !== undefined) {
      const added = new Map<string, number>();
      for (const { job } of fresh) added.set(job.clientId, (added.get(job.clientId) ?? 0) + 1);
      for (const [clientId, count] of [...added].sort(([a], [b]) => (a < b ? -1 : 1))) {
        const unfinished = running.get(clientId) ?? 0;
        if (unfinished + count > maxUnfinished) {
          refusal = { ok: false, reason: "quota_exceeded", unfinished, limit: maxUnfinished };
          break;
        }
      }
    }
    if (refusal) {
      decisions.push(refusal);
      continue;
    }
    for (const [key, position] of keysHere) taken.set(key, { request: r, position });
    for (const { job, status } of fresh) if (running.has(job.clientId) && !isFinal(status)) running.set(job.clientId, (running.get(job.clientId) ?? 0) + 1);
    decisions.push({ slots, fresh });
  }
  return decisions;
}

/** Thrown when submits that did not lock their counts first turn out to have passed a quota: the transaction is undone and run again, locking them first. */
export class QuotaRace extends Error {
  constructor() {
    super("a quota was reached by submits that did not lock its count first");
  }
}

export interface SubmitMode {
  /**
   * Take the counts' locks only at the end, in the statement that adds the new jobs to them,
   * and check the quota then (QuotaRace if one was passed): the locks are held from there to
   * COMMIT only, not through the whole transaction. A client whose count was seen near its
   * limit is locked first all the same.
   */
  late: boolean;
  /** The unfinished count last seen committed, by client (this master's, for `late`). */
  seen: Map<string, number>;
}

/**
 * Several submits in one transaction, each answered as if it had been alone, in order
 * (decide): a request refused stores nothing and leaves the others be. Every request's new
 * jobs, their dependencies, the clients' counts and the audit rows go in with one statement.
 */
export async function submitRequests(ctx: PgContext, tx: Tx, requests: SubmitRequest[], mode?: SubmitMode): Promise<SubmitOutcome[]> {
  const jobs = requests.flatMap((request) => request.jobs);
  const dependencies = await lookUpDependencies(tx, jobs);
  // The most jobs the quota could be asked for, by client, and the lowest limit each is held to.
  const asked = new Map<string, { jobs: number; limit: number }>();
  for (const { jobs, options } of requests) {
    if (options.maxUnfinished === undefined) continue;
    for (const job of jobs) {
      const entry = asked.get(job.clientId) ?? { jobs: 0, limit: options.maxUnfinished };
      asked.set(job.clientId, { jobs: entry.jobs + 1, limit: Math.min(entry.limit, options.maxUnfinished) });
    }
  }
  const nearLimit = [...asked].some(([clientId, { jobs, limit }]) => (mode?.seen.get(clientId) ?? 0) + jobs > limit);
  const locked = mode?.late && !nearLimit ? undefined : await lockCounts(tx, [...asked.keys()]);
  // Keys after the counts: one another master committed while this waited for them is its job, not one more towards the quota.
  const lookups: Lookups = { existing: await lookUpKeys(tx, jobs), dependencies };
  const now = ctx.clock.now();
  const at = now.toISOString();
  const decisions = decide(requests, lookups, locked, now);
  // The rows, and the jobs as they will be answered.
  const rows: NewRow[] = [];
  /** Each row's payload as the caller turned it into JSON (rows[n]'s is payloads[n]). */
  const payloads: string[] = [];
  const links: { job_id: string; depends_on_id: string }[] = [];
  /** Each accepted request's first row (its fresh[n] is rows[first + n]). */
  const firstRow: number[] = [];
  let events: AuditEvent[] = [];
  // Lanes made in this transaction are known to the store only once it commits.
  const lanes = new Map<string, number>();
  for (const [r, decision] of decisions.entries()) {
    firstRow.push(rows.length);
    if (!("slots" in decision)) continue;
    for (const { job, dependsOn, status, failureReason } of decision.fresh) {
      rows.push(await newRow(ctx, tx, lanes, job, dependsOn, status, failureReason, now));
      payloads.push(job.payloadJson);
      const id = (rows[rows.length - 1] as NewRow).id;
      for (const dependency of dependsOn) links.push({ job_id: id, depends_on_id: dependency });
    }
    const request = requests[r] as SubmitRequest;
    events.push(...submittedEvents(rows.slice(firstRow[r]).map((row) => jobOf(row)), request.options.batch ?? request.jobs.length > 1));
  }
  const written = await writeJobs(tx, rows, payloads, links, events, at);
  if (written.inserted.size < rows.length) {
    // Some keys were stored by another master since the look-up: those jobs are theirs, not new.
    events = [];
    for (const [r, decision] of decisions.entries()) {
      if (!("slots" in decision)) continue;
      const created = decision.fresh.map((_, n) => rows[(firstRow[r] ?? 0) + n] as NewRow).filter((row) => written.inserted.has(row.id));
      const request = requests[r] as SubmitRequest;
      events.push(...submittedEvents(created.map((row) => jobOf(row)), request.options.batch ?? request.jobs.length > 1));
    }
    await writeAudit(tx.db, events, at);
  }
  if (mode) {
    if (locked === undefined && asked.size > 0) {
      // The counts before these jobs, as locked now: decided with them, is any request refused?
      const before = new Map<string, number>();
      const added = new Map<string, number>();
      for (const row of rows) if (written.inserted.has(row.id) && !isFinal(row.status as JobStatus)) added.set(row.client_id, (added.get(row.client_id) ?? 0) + 1);
      for (const [clientId, unfinished] of written.counts) if (asked.has(clientId)) before.set(clientId, unfinished - (added.get(clientId) ?? 0));
      if (decide(requests, lookups, before, now).some((decision) => !("slots" in decision) && decision.reason === "quota_exceeded")) throw new QuotaRace();
    }
    const { seen } = mode;
    for (const clientId of asked.keys()) {
      const unfinished = written.counts.get(clientId) ?? locked?.get(clientId);
      if (unfinished !== undefined) tx.afterCommit(() => seen.set(clientId, unfinished));
    }
  }
  // Answers, request by request (a repeated key answers the job of the place it names).
  const answers: { job: Job; created: boolean }[][] = [];
  const outcomes: SubmitOutcome[] = [];
  for (const [r, decision] of decisions.entries()) {
    const items: { job: Job; created: boolean }[] = [];
    answers.push(items);
    if (!("slots" in decision)) {
      outcomes.push(decision);
      continue;
    }
    for (const slot of decision.slots) {
      if ("row" in slot) items.push({ job: toJob(slot.row), created: false });
      else if ("request" in slot) items.push({ job: (answers[slot.request]?.[slot.position] as { job: Job }).job, created: false });
      else {
        const row = rows[(firstRow[r] ?? 0) + slot.fresh] as NewRow;
        if (written.inserted.has(row.id)) {
          // The row holds no payload (newRow): the answer takes the one submitted.
          const job = jobOf(row);
          job.payload = decision.fresh[slot.fresh]?.job.payload ?? null;
          items.push({ job, created: true });
        }
        else {
          const [theirs] = await rowsOf(tx, sql<JobRow>`SELECT * FROM jobs WHERE client_id = ${row.client_id} AND idempotency_key = ${row.idempotency_key}`);
          if (!theirs) throw new Error(`job ${row.id} was neither stored nor found by its idempotency key`);
          items.push({ job: toJob(theirs), created: false });
        }
      }
    }
    outcomes.push({ ok: true, items });
  }
  const stored = rows.filter((row) => written.inserted.has(row.id));
  tx.mark({ claimable: stored.some((row) => row.status === "pending"), scheduled: stored.some((row) => row.status === "scheduled") });
  return outcomes;
}

/**
 * A job row as the INSERT takes it (seq comes from the table), its payload first and null: the
 * payload goes in as the caller's JSON text (rowsJson).
 */
type NewRow = Omit<JobRow, "seq">;

async function newRow(
  ctx: PgContext,
  tx: Tx,
  lanes: Map<string, number>,
  job: SubmitJobParams,
  dependsOn: string[],
  status: JobStatus,
  failureReason: string | null,
  now: Date,
): Promise<NewRow> {
  const at = now.toISOString();
  const requires = [...new Set(job.requires)].sort();
  return {
    payload: null,
    ...submittedColumns(job, status, failureReason, now, at, (weight) => nextAgingAt(weight, now, ctx.policy.agingMs)),
    lane: await laneOf(tx, ctx.lanes, lanes, job.type, requires, at),
    requires,
    depends_on: dependsOn,
    tags: job.tags,
    cancel_requested: false,
  };
}

/** How each row's JSON begins (newRow puts a null payload first); found nowhere else in it. */
const ROW_START = '{"payload":null,';

/**
 * The rows as json_to_recordset takes them, each row's payload the caller's JSON text (not
 * turned into JSON a second time): the rows in JSON at once, then the texts spliced in where
 * each row begins. ROW_START cannot occur inside a row: in a string its quotes would be
 * escaped, and no other object of a new row has a key that can be null (tags map to strings).
 */
function rowsJson(rows: NewRow[], payloads: string[]): string {
  const parts = JSON.stringify(rows).split(ROW_START);
  if (parts.length !== rows.length + 1) throw new Error(`the rows' JSON has ${parts.length - 1} row starts for ${rows.length} rows`);
  let text = parts[0] ?? "";
  for (let n = 1; n < parts.length; n++) text += `{"payload":${payloads[n - 1] ?? "null"},${parts[n] ?? ""}`;
  return text;
}

/**
 * One statement: the new jobs (a payload of JSON null, which json_to_recordset reads as SQL
 * NULL, as JSON null again), their dependencies, their clients' unfinished counts (locked
 * from here to COMMIT, in client order as every writer of the counts takes them) and the
 * audit rows. A key stored by another transaction since the look-up (another master)
 * conflicts: that row is not inserted, and then no audit row is written here (the caller
 * writes those of the jobs that were). Answers the ids inserted and each client's count now.
 */
async function writeJobs(
  tx: Tx,
  rows: NewRow[],
  payloads: string[],
  links: { job_id: string; depends_on_id: string }[],
  events: AuditEvent[],
  at: string,
): Promise<{ inserted: Set<string>; counts: Map<string, number> }> {
  const inserted = new Set<string>();
  const counts = new Map<string, number>();
  if (rows.length === 0) return { inserted, counts };
  const result = await rowsOf(
    tx,
    sql<{ id: string | null; client_id: string | null; unfinished: number | null }>`
      WITH ins AS (
        INSERT INTO jobs (id, client_id, type, lane, payload, priority, effective_priority, status, max_retries, timeout_s,
                          run_at, ready_at, aging_at, requires, depends_on, idempotency_key, tags, failure_reason,
                          created_at, updated_at, finished_at)
        SELECT id, client_id, type, lane, coalesce(payload, 'null'::json), priority, effective_priority, status, max_retries, timeout_s,
               run_at, ready_at, aging_at, requires, depends_on, idempotency_key, tags, failure_reason,
               created_at, updated_at, finished_at
        FROM json_to_recordset(${rowsJson(rows, payloads)}::json) AS r(
          id text, client_id text, type text, lane integer, payload json, priority integer, effective_priority integer,
          status text, max_retries integer, timeout_s double precision, run_at timestamptz, ready_at timestamptz,
          aging_at timestamptz, requires jsonb, depends_on jsonb, idempotency_key text, tags json, failure_reason text,
          created_at timestamptz, updated_at timestamptz, finished_at timestamptz)
        ON CONFLICT (client_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
        RETURNING id, client_id, status
      ), links AS (
        INSERT INTO job_dependencies (job_id, depends_on_id)
        SELECT l.job_id, l.depends_on_id FROM jsonb_to_recordset(${JSON.stringify(links)}::jsonb) AS l(job_id text, depends_on_id text)
        WHERE l.job_id IN (SELECT id FROM ins)
      ), counts AS (
        INSERT INTO client_job_counts AS c (client_id, unfinished)
        SELECT client_id, count(*) FILTER (WHERE status NOT IN ('completed', 'failed', 'canceled')) FROM ins GROUP BY client_id ORDER BY client_id
        ON CONFLICT (client_id) DO UPDATE SET unfinished = c.unfinished + excluded.unfinished
        RETURNING client_id, unfinished
      ), audit AS (
        INSERT INTO audit_log (event_type, entity_type, entity_id, client_id, details, created_at)
        SELECT a.event_type, a.entity_type, a.entity_id, a.client_id, a.details, ${at}::timestamptz
        FROM json_to_recordset(${JSON.stringify(events)}::json) AS a(event_type text, entity_type text, entity_id text, client_id text, details json)
        WHERE (SELECT count(*) FROM ins) = ${rows.length}
      )
      SELECT id, NULL::text AS client_id, NULL::integer AS unfinished FROM ins
      UNION ALL SELECT NULL, client_id, unfinished FROM counts`,
  );
  for (const row of result) {
    if (row.id !== null) inserted.add(row.id);
    else if (row.client_id !== null && row.unfinished !== null) counts.set(row.client_id, row.unfinished);
  }
  return { inserted, counts };
}
