// Open a PostgreSQL store: connect, migrate, listen for commits, and wire the aggregates.
// Several masters may open the same database at once: they are one cluster (API.md §12).
import { sql } from "kysely";
import type { Clock, QueuePolicy, Store } from "../types.js";
import { PostgresAuditStore, PostgresSettingsStore } from "./audit.js";
import { PostgresClientStore, PostgresTokenStore } from "./clients.js";
import type { PgContext } from "./context.js";
import { PostgresDatabase } from "./database.js";
import { PostgresJobTypeStore } from "./job-types.js";
import { PostgresJobStore } from "./jobs/index.js";
import { DEFAULT_LEAD_CHECK_MS, Leadership } from "./leader.js";
import { CommitListener } from "./listener.js";
import { migratePostgres, postgresMigrationsDir } from "./migrate.js";
import { PostgresNodeStore } from "./nodes.js";
import { PostgresRateLimitStore } from "./rate-limits.js";
import { PostgresScheduleStore } from "./schedules.js";

export { PostgresDatabase } from "./database.js";
export { migratePostgres, postgresMigrationStatus } from "./migrate.js";

export interface OpenPostgresStoreParams {
  url: string;
  /** The schema the tables live in (default "public"; tests give each store its own). */
  schema?: string;
  clock: Clock;
  policy: QueuePolicy;
  migrationsDir?: string;
  /** Pool size (default 10). */
  poolSize?: number;
  /** A listener of onCommitted threw (the others still heard the change). */
  onListenerError?: (error: unknown) => void;
  /** The LISTEN connection failed; it is made again. */
  onListenError?: (message: string) => void;
  /** This master held the lead (ran the sweepers) and lost it: its connection failed. */
  onLeadLost?: (message: string) => void;
  /** How often the master that leads checks its lock by itself (the sweep interval), at least every 5 s. */
  leadCheckMs?: number;
  /** A shared rate limit's counter failed or was late: this master counted in its memory. */
  onRateLimitFallback?: (error: unknown) => void;
}

/** Thrown to roll the write probe back once it went through. */
class ProbeDone extends Error {}

/** Connects, migrates (under the migration lock) and starts listening; throws with a clear message if it cannot. */
export async function openPostgresStore(params: OpenPostgresStoreParams): Promise<Store> {
  // Migrations on a connection of their own, with no statement timeout: an index on a big
  // table, or the wait for another master's migration, may take longer than any request should.
  const migrating = new PostgresDatabase({ url: params.url, schema: params.schema, max: 1, queryTimeoutMs: 0 });
  try {
    const migrated = await migratePostgres(migrating, params.migrationsDir ?? postgresMigrationsDir(), params.clock.now());
    if (migrated.error) throw migrated.error;
  } finally {
    await migrating.close();
  }
  const db = new PostgresDatabase({ url: params.url, schema: params.schema, max: params.poolSize });
  let listener: CommitListener | undefined;
  try {
    listener = new CommitListener({ url: params.url, channel: db.channel, origin: db.origin, onListenerError: params.onListenerError, onConnectionError: params.onListenError });
    await listener.start();
    const commits = listener;
    db.onCommit = (change) => commits.tell(change);
  } catch (error) {
    await listener?.close();
    await db.close();
    throw error;
  }
  const commits = listener;
  const leadership = new Leadership({ url: params.url, key: `gaffer.lead.${db.schema}`, onLost: params.onLeadLost, checkEveryMs: Math.min(params.leadCheckMs ?? DEFAULT_LEAD_CHECK_MS, DEFAULT_LEAD_CHECK_MS) });
  const ctx: PgContext = { db, clock: params.clock, policy: params.policy, lanes: new Map() };
  const jobs = new PostgresJobStore(ctx);
  const rateLimits = new PostgresRateLimitStore(db, { onFallback: params.onRateLimitFallback });
  return {
    dialect: "postgres",
    onCommitted: (fn) => commits.subscribe(fn),
    // A commit is on disk when COMMIT answers (synchronous_commit); the signal comes after it.
    durable: async () => undefined,
    leads: () => leadership.holds(),
    async ping() {
      await db.one(sql`SELECT 1 AS one`);
    },
    async describe() {
      const row = await db.one(sql<{ version: string; database: string; size_bytes: number; synchronous_commit: string }>`
        SELECT current_setting('server_version') AS version, current_database() AS database,
               pg_database_size(current_database()) AS size_bytes, current_setting('synchronous_commit') AS synchronous_commit`);
      return {
        dialect: "postgres",
        database: row?.database,
        schema: db.schema,
        server_version: row?.version,
        size_bytes: row?.size_bytes,
        synchronous_commit: row?.synchronous_commit,
      };
    },
    async probeWrite() {
      try {
        await db.transaction(async (tx) => {
          await sql`INSERT INTO settings (key, value, updated_at) VALUES ('write_probe', repeat('x', 65536), now())
                    ON CONFLICT (key) DO UPDATE SET value = excluded.value`.execute(tx.db);
          throw new ProbeDone();
        });
      } catch (error) {
        if (!(error instanceof ProbeDone)) throw error;
      }
    },
    jobs,
    nodes: new PostgresNodeStore(ctx),
    schedules: new PostgresScheduleStore(ctx),
    types: new PostgresJobTypeStore(ctx),
    audit: new PostgresAuditStore(ctx),
    settings: new PostgresSettingsStore(ctx),
    clients: new PostgresClientStore(ctx),
    tokens: new PostgresTokenStore(ctx),
    rateLimits,
    close: async () => {
      // Its last counts sent while the pool is still open (bounded: a late sync is given up on).
      await rateLimits.close();
      await leadership.close();
      await commits.close();
      await db.close();
    },
  };
}

export { postgresMigrationsDir };
