// submit: new jobs, all or nothing, with idempotency keys and dependencies.
import { isFinal, onSubmit } from "../../../queue/transitions.js";
import { type Job, type JobStatus, type SubmitJobParams, type SubmitOptions, type SubmitOutcome } from "../../types.js";
import type { AuditEvent } from "../audit.js";
import type { StoreContext } from "../context.js";
import { param, type Prepared } from "../database.js";
import { addUnfinished, unfinishedJobs } from "../quotas.js";
import { submittedColumns } from "../../pages.js";
import { toJob, type JobRow } from "../rows.js";
import { sql } from "kysely";
import { nextAgingAt } from "./lifecycle.js";

type NewJobRow = Omit<JobRow, "seq">;

/**
 * The columns every new job has alike (submittedColumns and build write these values): in
 * the INSERT as SQL literals. The test that reads back every shape of job submitted holds
 * the answer, made from the row, to what was stored.
 */
const NEW_JOB_CONSTANTS = {
  node_id: null,
  attempt: 0,
  retry_count: 0,
  stall_at: null,
  lease_expires_at: null,
  progress: null,
  progress_message: null,
  progress_logged_at: null,
  result: null,
  error: null,
  lease_end_reason: null,
  started_at: null,
  cancel_requested: 0,
} satisfies Partial<NewJobRow>;

export interface SubmitStatements {
  insert: Prepared<unknown, NewJobRow>;
  byKey: Prepared<JobRow, { clientId: string; key: string }>;
  dependency: Prepared<{ id: string; client_id: string; status: string }, { id: string }>;
  linkDependency: Prepared<unknown, { jobId: string; dependsOn: string }>;
}

export function prepareSubmit(ctx: StoreContext): SubmitStatements {
  const { db } = ctx;
  const columns: (keyof NewJobRow)[] = [
    "id", "client_id", "type", "payload", "priority", "effective_priority", "status", "node_id",
    "attempt", "retry_count", "max_retries", "timeout_s", "run_at", "ready_at", "stall_at", "lease_expires_at", "aging_at",
    "requires", "requires_key", "lane", "depends_on", "idempotency_key", "tags", "progress", "progress_message",
    "progress_logged_at", "result", "error", "failure_reason", "cancel_requested", "lease_end_reason",
    "created_at", "updated_at", "started_at", "finished_at",
  ];
  // What every new job has written as SQL, not bound at each insert (13 of its 35 values);
  // a job's answer is made from its row (toJob), so NEW_JOB_CONSTANTS is also what it says.
  const values = Object.fromEntries(
    columns.map((column) => [column, column in NEW_JOB_CONSTANTS ? sql.lit(NEW_JOB_CONSTANTS[column as keyof typeof NEW_JOB_CONSTANTS]) : param(column)]),
  ) as unknown as NewJobRow;
  return {
    insert: db.prepare(db.kysely.insertInto("jobs").values(values)),
    byKey: db.prepare(
      db.kysely
        .selectFrom("jobs")
        .selectAll()
        .where("client_id", "=", param("clientId"))
        .where("idempotency_key", "=", param("key")),
    ),
    dependency: db.prepare(
      db.kysely.selectFrom("jobs").select(["id", "client_id", "status"]).where("id", "=", param("id")),
    ),
    linkDependency: db.prepare(
      db.kysely.insertInto("job_dependencies").values({ job_id: param("jobId"), depends_on_id: param("dependsOn") }),
    ),
  };
}

/** What the first pass found for one job of the batch. */
type Checked =
  | { kind: "existing"; row: JobRow }
  | { kind: "repeat"; of: number }
  | { kind: "new"; job: SubmitJobParams; dependsOn: string[]; dependencies: { status: string }[] };

/**
 * First pass: look everything up. An unknown dependency refuses the whole batch
 * here, before anything is written, so a refusal never needs undoing.
 */
function check(statements: SubmitStatements, jobs: SubmitJobParams[]): Checked[] | Extract<SubmitOutcome, { ok: false }> {
  const checked: Checked[] = [];
  // Made at the first key: most submits carry none.
  let keysInBatch: Map<string, number> | undefined;
  for (let index = 0; index < jobs.length; index++) {
    const job = jobs[index] as SubmitJobParams;
    if (job.idempotencyKey !== null) {
      keysInBatch ??= new Map();
      const key = `${job.clientId}\u0000${job.idempotencyKey}`;
      const earlier = keysInBatch.get(key);
      if (earlier !== undefined) {
        checked.push({ kind: "repeat", of: earlier });
        continue;
      }
      const existing = statements.byKey.get({ clientId: job.clientId, key: job.idempotencyKey });
      if (existing) {
        checked.push({ kind: "existing", row: existing });
        continue;
      }
      keysInBatch.set(key, index);
    }
    const dependsOn = job.dependsOn.length === 0 ? [] : [...new Set(job.dependsOn)];
    const dependencies: { status: string }[] = [];
    for (const id of dependsOn) {
      const row = statements.dependency.get({ id });
      if (!row || row.client_id !== job.clientId) return { ok: false, reason: "unknown_dependency", index, dependency: id };
      dependencies.push(row);
    }
    checked.push({ kind: "new", job, dependsOn, dependencies });
  }
  return checked;
}

interface Built {
  row: NewJobRow;
  dependsOn: string[];
  events: AuditEvent[];
  job: Job;
  ready: boolean;
}

/** What every job of one batch shares: the time, and when aging first lifts each class. */
interface BatchTime {
  now: Date;
  at: string;
  /** By priority weight (a few small integers). */
  agingAt: (string | null | undefined)[];
}

function batchTime(ctx: StoreContext): BatchTime {
  const now = ctx.clock.now();
  return { now, at: now.toISOString(), agingAt: [] };
}

/** A pending job of `weight` made now first ages then (the same for the whole batch). */
function agingAtOf(ctx: StoreContext, time: BatchTime, weight: number): string | null {
  let agingAt = time.agingAt[weight];
  if (agingAt === undefined) {
    agingAt = nextAgingAt(weight, time.now, ctx.policy.agingMs);
    time.agingAt[weight] = agingAt;
  }
  return agingAt;
}

/** Second pass: one new job's row and audit rows, not yet written. */
function build(ctx: StoreContext, entry: Extract<Checked, { kind: "new" }>, time: BatchTime): Built {
  const { lanes } = ctx;
  const { now, at } = time;
  const { job, dependsOn, dependencies } = entry;
  const { status, failureReason } = onSubmit(dependencies.map((d) => d.status as JobStatus), job.runAt, now);
  const requires = lanes.keyOf(job.requires);
  // The common columns' object with this dialect's added to it, not spread into a new literal:
  // `{ ...columns, more }` of a row this wide cost about 10 µs a job in V8 (half a batch's
  // build), adding them costs well under one.
  const row: NewJobRow = Object.assign(submittedColumns(job, status, failureReason, now, at, (weight) => agingAtOf(ctx, time, weight)), {
    payload: job.payloadJson,
    requires: requires.labels.length === 0 ? "[]" : JSON.stringify(requires.labels),
    requires_key: requires.key,
    lane: lanes.laneOf(job.type, requires, at),
    depends_on: dependsOn.length === 0 ? "[]" : JSON.stringify(dependsOn),
    tags: JSON.stringify(job.tags),
    cancel_requested: 0,
  });
  const events: AuditEvent[] =
    status === "failed"
      ? [{ event_type: "job.failed", entity_type: "job", entity_id: row.id, client_id: job.clientId, details: { failure_reason: failureReason } }]
      : [];
  const parsed = { payload: job.payload ?? null, requires: requires.labels, depends_on: dependsOn, tags: job.tags };
  return { row, dependsOn, events, job: toJob(row, parsed), ready: status === "pending" };
}

/**
 * The submission's audit: one `job.submitted` row for a single job, one `jobs.submitted`
 * row with the count and ids for a batch (API.md §7), then what the rules decided at once
 * (a dependency already failed).
 */
function submittedEvents(built: readonly Built[], batch: boolean): AuditEvent[] {
  const [first] = built;
  if (first === undefined) return [];
  const decided = built.flatMap((entry) => entry.events);
  if (!batch && built.length === 1) {
    const { job } = first;
    return [{ event_type: "job.submitted", entity_type: "job", entity_id: job.id, client_id: job.client_id, details: { type: job.type, priority: job.priority, status: job.status } }, ...decided];
  }
  const ids = built.map((entry) => entry.job.id);
  return [{ event_type: "jobs.submitted", entity_type: "jobs", entity_id: first.job.id, client_id: first.job.client_id, details: { count: ids.length, ids } }, ...decided];
}

/**
 * Write the new rows, their links and their audit rows (one INSERT for all of
 * those). The jobs go in a statement each: one multi-row INSERT measured no
 * faster, the cost is in the table's indexes, and INSERT … SELECT from a JSON
 * array parses each row's object once per column.
 */
function write(ctx: StoreContext, statements: SubmitStatements, built: Built[], at: string, batch: boolean): void {
  const unfinished = new Map<string, number>();
  for (const { row, dependsOn } of built) {
    statements.insert.run(row);
    for (const dependency of dependsOn) statements.linkDependency.run({ jobId: row.id, dependsOn: dependency });
    if (!isFinal(row.status as JobStatus)) unfinished.set(row.client_id, (unfinished.get(row.client_id) ?? 0) + 1);
  }
  for (const [clientId, added] of unfinished) addUnfinished(ctx.db, clientId, added);
  ctx.audit.writeMany(submittedEvents(built, batch), at);
}

/**
 * Whether the new jobs would take their client past `maxUnfinished` (API.md §4). A submit
 * carries one client's jobs; those already stored under their idempotency key add nothing.
 */
function overQuota(ctx: StoreContext, checked: Checked[], maxUnfinished: number | undefined): Extract<SubmitOutcome, { ok: false }> | undefined {
  if (maxUnfinished === undefined) return undefined;
  const added = new Map<string, number>();
  for (const entry of checked) if (entry.kind === "new") added.set(entry.job.clientId, (added.get(entry.job.clientId) ?? 0) + 1);
  for (const [clientId, count] of added) {
    const unfinished = unfinishedJobs(ctx.db, clientId);
    if (unfinished + count > maxUnfinished) return { ok: false, reason: "quota_exceeded", unfinished, limit: maxUnfinished };
  }
  return undefined;
}

export function submitJobs(ctx: StoreContext, statements: SubmitStatements, jobs: SubmitJobParams[], options: SubmitOptions = {}): SubmitOutcome {
  const batch = options.batch ?? jobs.length > 1;
  return ctx.db.transaction(() => {
    const checked = check(statements, jobs);
    if (!Array.isArray(checked)) return checked;
    const refused = overQuota(ctx, checked, options.maxUnfinished);
    if (refused) return refused;
    const time = batchTime(ctx);
    const items: { job: Job; created: boolean }[] = [];
    const built: Built[] = [];
    for (const entry of checked) {
      if (entry.kind === "existing") items.push({ job: toJob(entry.row), created: false });
      else if (entry.kind === "repeat") items.push({ job: (items[entry.of] as { job: Job }).job, created: false });
      else {
        const made = build(ctx, entry, time);
        built.push(made);
        items.push({ job: made.job, created: true });
      }
    }
    write(ctx, statements, built, time.at, batch);
    ctx.signal.mark({ claimable: built.some((entry) => entry.ready), scheduled: built.some((entry) => entry.job.status === "scheduled") });
    return { ok: true as const, items };
  });
}
