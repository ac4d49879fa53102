// Flow control per job type on PostgreSQL (API.md §5a): paused types and cluster-wide limits
// of running jobs. Several masters change and read them, so nothing is kept in memory: a
// claim reads the gates, and takes jobs of a limited type only under the lock of that type's
// row, so that the limit holds across masters (jobs/claim.ts); a change of a gate waits for the
// claims in flight, and claims wait for it, on one advisory lock (typeGatesLock).
import { sql } from "kysely";
import type { JobTypeInfo, JobTypeStore } from "../types.js";
import { rowsOf, writeAudit, type PgContext } from "./context.js";
import { ADVISORY_CLASS, type PostgresDatabase } from "./database.js";

interface TypeRow {
  type: string;
  max_running: number | null;
  paused: boolean;
}

/**
 * The advisory lock's keys a claim holds shared while it reads and applies the type gates
 * (jobs/claim.ts), and a change of a gate holds alone.
 */
export function typeGatesLock(schema: string) {
  return sql`${ADVISORY_CLASS}::integer, hashtext(${`gaffer.type-gates.${schema}`})`;
}

/** Jobs of `type` running now, anywhere. */
export async function runningOfType(db: PostgresDatabase, type: string): Promise<number> {
  return (await db.one(sql<{ n: number }>`SELECT count(*) AS n FROM jobs WHERE status = 'running' AND type = ${type}`))?.n ?? 0;
}

/** GET and PUT /api/v1/types: the settings with each type's counts. */
export class PostgresJobTypeStore implements JobTypeStore {
  constructor(private readonly ctx: PgContext) {}

  async list(params: { since: Date }): Promise<JobTypeInfo[]> {
    return this.read(params.since);
  }

  /** The types' settings and counts; `only`: one type's (PUT answers it without counting the others). */
  private async read(since: Date, only?: string): Promise<JobTypeInfo[]> {
    const ofType = only === undefined ? sql`` : sql` AND type = ${only}`;
    const { db } = this.ctx;
    const [settings, laneTypes, live, finished] = await Promise.all([
      db.run(sql<TypeRow>`SELECT type, max_running, paused FROM job_types WHERE true${ofType}`),
      db.run(sql<{ type: string }>`SELECT DISTINCT type FROM lanes WHERE true${ofType}`),
      db.run(sql<{ type: string; status: string; n: number }>`
        SELECT type, status, count(*) AS n FROM jobs WHERE status = 'pending'${ofType} GROUP BY type, status
        UNION ALL
        SELECT type, status, count(*) AS n FROM jobs WHERE status = 'running'${ofType} GROUP BY type, status`),
      db.run(sql<{ type: string; status: string; n: number }>`
        SELECT type, status, count(*) AS n FROM jobs
        WHERE finished_at IS NOT NULL AND finished_at >= ${since.toISOString()} AND status IN ('completed', 'failed')${ofType}
        GROUP BY type, status`),
    ]);
    const info = new Map<string, JobTypeInfo>();
    const of = (type: string): JobTypeInfo => {
      let entry = info.get(type);
      if (!entry) {
        entry = { type, max_running: null, paused: false, pending: 0, running: 0, completed_1h: 0, failed_1h: 0 };
        info.set(type, entry);
      }
      return entry;
    };
    if (only !== undefined) of(only);
    for (const row of laneTypes) of(row.type);
    for (const row of settings) Object.assign(of(row.type), { max_running: row.max_running, paused: row.paused });
    for (const row of live) {
      if (row.status === "pending") of(row.type).pending = row.n;
      else of(row.type).running = row.n;
    }
    for (const row of finished) {
      if (row.status === "completed") of(row.type).completed_1h = row.n;
      else of(row.type).failed_1h = row.n;
    }
    return [...info.values()].sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
  }

  async set(params: { type: string; maxRunning?: number | null; paused?: boolean; actor: string | null; since: Date }): Promise<JobTypeInfo> {
    const { db, clock } = this.ctx;
    await db.transaction(async (tx) => {
      const at = clock.now().toISOString();
      // Alone on the gates' lock: claims that read the gates before this change commit first (a
      // claim that had read "no limit" could otherwise start jobs after a lower limit counted
      // the running ones without them), and claims after it wait for this commit.
      await sql`SELECT pg_advisory_xact_lock(${typeGatesLock(db.schema)})`.execute(tx.db);
      // A type set for the first time gets its row first, so that there is a row to lock.
      await sql`INSERT INTO job_types (type, max_running, paused, updated_at) VALUES (${params.type}, NULL, false, ${at})
                ON CONFLICT (type) DO NOTHING`.execute(tx.db);
      const [row] = await rowsOf(tx, sql<TypeRow>`SELECT type, max_running, paused FROM job_types WHERE type = ${params.type} FOR UPDATE`);
      const from = { maxRunning: row?.max_running ?? null, paused: row?.paused ?? false };
      const to = { maxRunning: params.maxRunning === undefined ? from.maxRunning : params.maxRunning, paused: params.paused ?? from.paused };
      await sql`UPDATE job_types SET max_running = ${to.maxRunning}, paused = ${to.paused}, updated_at = ${at} WHERE type = ${params.type}`.execute(tx.db);
      await writeAudit(
        tx.db,
        [
          {
            event_type: "type.changed",
            entity_type: "type",
            entity_id: params.type,
            client_id: params.actor,
            details: { from: { max_running: from.maxRunning, paused: from.paused }, to: { max_running: to.maxRunning, paused: to.paused } },
          },
        ],
        at,
      );
      // Resumed, or a limit raised or lifted: waiting claims may take its jobs now.
      const more = (from.paused && !to.paused) || (from.maxRunning !== null && (to.maxRunning === null || to.maxRunning > from.maxRunning));
      tx.mark({ claimable: more });
    });
    const [found] = await this.read(params.since, params.type);
    if (!found) throw new Error(`type ${params.type} was set but is not listed`);
    return found;
  }
}
