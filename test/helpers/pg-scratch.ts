// A PostgreSQL store's context in a schema of its own, for the tests of the PostgreSQL verbs
// written before the PostgreSQL job store: what a claim, a cancel and the stall sweep do to a
// job is done here with the same writes, so nodes, schedules, types and why can be driven.
import pg from "pg";
import { sql } from "kysely";
import { createQueuePolicy } from "../../master/queue/policy.js";
import { rowsOf, type PgContext } from "../../master/store/postgres/context.js";
import { PostgresDatabase, parseNotice, quoteIdent } from "../../master/store/postgres/database.js";
import { ENDING_LEASE_SELECT, endLeases, type EndingLease } from "../../master/store/postgres/jobs/lifecycle.js";
import { submitJobs } from "../../master/store/postgres/jobs/submit.js";
import { migratePostgres } from "../../master/store/postgres/migrate.js";
import type { JobRow } from "../../master/store/postgres/rows.js";
import type { Committed, Job, SubmitJobParams } from "../../master/store/types.js";
import { FakeClock } from "./clock.js";
import { jobParams } from "./store.js";

export const TEST_DATABASE_URL = process.env.GAFFER_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** Whether a PostgreSQL server answers at TEST_DATABASE_URL. */
export async function postgresReachable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export interface PgScratch {
  ctx: PgContext;
  clock: FakeClock;
  /** What the commits announced with NOTIFY, in order. */
  heard: Committed[];
  /** Resolves once every notice committed so far has been heard. */
  settle(): Promise<void>;
  /** Another connection pool on the same schema: a second master. */
  second(): PgContext;
  close(): Promise<void>;
}

export async function openScratch(options: { nodeTimeoutS?: number; stallGraceS?: number } = {}): Promise<PgScratch> {
  const schema = `t_${Math.random().toString(36).slice(2, 12)}`;
  const clock = new FakeClock();
  const policy = createQueuePolicy(
    { retryDelayS: 5, retryMaxDelayS: 300, stallGraceS: options.stallGraceS ?? 300, agingS: 300, nodeTimeoutS: options.nodeTimeoutS ?? 60 },
    () => 0.5,
  );
  const db = new PostgresDatabase({ url: TEST_DATABASE_URL, schema, max: 4 });
  const migrated = await migratePostgres(db);
  if (migrated.error) throw migrated.error;
  const listener = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await listener.connect();
  const heard: Committed[] = [];
  const marks = new Map<string, () => void>();
  listener.on("notification", (message) => {
    const payload = message.payload ?? "";
    const mark = marks.get(payload);
    if (mark) return mark();
    const change = parseNotice(payload);
    if (change) heard.push(change);
  });
  await listener.query(`LISTEN ${quoteIdent(db.channel)}`);
  const others: PostgresDatabase[] = [];
  let sent = 0;
  return {
    ctx: { db, clock, policy, lanes: new Map() },
    clock,
    heard,
    async settle() {
      // Notices arrive in the order they were committed: once this one is here, so are all before it.
      const payload = `settle-${++sent}`;
      const arrived = new Promise<void>((resolve) => marks.set(payload, resolve));
      await db.run(sql`SELECT pg_notify(${db.channel}, ${payload})`);
      await arrived;
      marks.delete(payload);
    },
    second() {
      const other = new PostgresDatabase({ url: TEST_DATABASE_URL, schema, max: 4 });
      others.push(other);
      return { db: other, clock, policy, lanes: new Map() };
    },
    async close() {
      await listener.end();
      for (const other of others) await other.close();
      await sql.raw(`DROP SCHEMA ${quoteIdent(schema)} CASCADE`).execute(db.kysely);
      await db.close();
    },
  };
}

export async function submit(ctx: PgContext, overrides: Partial<SubmitJobParams> = {}): Promise<Job> {
  const outcome = await ctx.db.transaction((tx) => submitJobs(ctx, tx, [jobParams(overrides)]));
  if (!outcome.ok) throw new Error(`submit failed: ${outcome.reason}`);
  return (outcome.items[0] as { job: Job }).job;
}

export async function jobRow(ctx: PgContext, id: string): Promise<JobRow> {
  const row = await ctx.db.one(sql<JobRow>`SELECT * FROM jobs WHERE id = ${id}`);
  if (!row) throw new Error(`no job ${id}`);
  return row;
}

/** What a claim writes: the node's next pending jobs in dispatch order, up to its free capacity. */
export async function claim(ctx: PgContext, nodeId: string, max = 10): Promise<string[]> {
  return ctx.db.transaction(async (tx) => {
    const now = ctx.clock.now();
    const at = now.toISOString();
    const leaseExpiresAt = new Date(now.getTime() + ctx.policy.leaseMs).toISOString();
    const [node] = await rowsOf(tx, sql<{ capacity: number; running: number }>`
      SELECT capacity, (SELECT count(*) FROM jobs WHERE node_id = n.id AND status = 'running') AS running FROM nodes n WHERE id = ${nodeId} FOR UPDATE`);
    const limit = Math.min(max, (node?.capacity ?? 0) - (node?.running ?? 0));
    if (limit <= 0) return [];
    const taken = await rowsOf(tx, sql<{ id: string; attempt: number; seq: number }>`
      UPDATE jobs SET status = 'running', node_id = ${nodeId}, attempt = attempt + 1, started_at = ${at}, updated_at = ${at},
        lease_expires_at = ${leaseExpiresAt},
        stall_at = ${at}::timestamptz + make_interval(secs => 2 * timeout_s + ${ctx.policy.stallGraceMs / 1000}),
        aging_at = NULL, progress = NULL, progress_message = NULL, lease_end_reason = NULL
      WHERE seq IN (SELECT seq FROM jobs WHERE status = 'pending' ORDER BY effective_priority DESC, seq LIMIT ${limit} FOR UPDATE SKIP LOCKED)
      RETURNING id, attempt, seq`);
    taken.sort((a, b) => a.seq - b.seq);
    for (const job of taken) {
      await sql`INSERT INTO job_attempts (job_id, attempt, node_id, started_at) VALUES (${job.id}, ${job.attempt}, ${nodeId}, ${at})`.execute(tx.db);
      await sql`INSERT INTO audit_log (event_type, entity_type, entity_id, client_id, details, created_at)
                VALUES ('job.assigned', 'job', ${job.id}, NULL, '{}'::jsonb, ${at})`.execute(tx.db);
    }
    return taken.map((job) => job.id);
  });
}

/** What a cancel asks of a running job: its node is told at its next heartbeat. */
export async function requestCancel(ctx: PgContext, id: string): Promise<void> {
  await ctx.db.run(sql`UPDATE jobs SET cancel_requested = true WHERE id = ${id} AND status = 'running'`);
}

/** What the stalled-job sweep does to a running job. */
export async function stall(ctx: PgContext, id: string): Promise<void> {
  await ctx.db.transaction(async (tx) => {
    const rows = await rowsOf(tx, sql<EndingLease>`SELECT ${ENDING_LEASE_SELECT} FROM jobs WHERE id = ${id} AND status = 'running' FOR UPDATE`);
    await endLeases(ctx, tx, rows, "stalled", "job.stalled", null);
  });
}

/** A job's audit rows, oldest first. */
export async function auditOf(ctx: PgContext, entityId: string): Promise<{ event_type: string; details: Record<string, unknown> }[]> {
  return ctx.db.run(sql<{ event_type: string; details: Record<string, unknown> }>`
    SELECT event_type, details FROM audit_log WHERE entity_id = ${entityId} ORDER BY id`);
}
