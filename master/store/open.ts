// Opening a store from the config: the one door from outside master/store/ to a dialect's
// folder. The master, the offline commands and `gaffer migrate`/`backup`/`restore` come here.
import { dirname } from "node:path";
import type { Worker } from "node:worker_threads";
import { SqliteDatabase } from "./sqlite/database.js";
import { openSqliteStore } from "./sqlite/index.js";
import { migrate, migrationStatus, type MigrationStatus } from "./sqlite/migrate.js";
import { makePrivateDir } from "./sqlite/private-files.js";
import type { ReaderErrorKind } from "./sqlite/reader.js";
import type { Clock, QueuePolicy, Store } from "./types.js";
import type { PolicyParams } from "../queue/policy.js";
import { openThreadStore } from "./thread/client.js";

export { backupDatabase, BackupError, restoreDatabase } from "./sqlite/backup.js";
export type { MigrationStatus } from "./sqlite/migrate.js";
export type { ReaderErrorKind } from "./sqlite/reader.js";

/**
 * The PostgreSQL store, loaded only when a database URL is given: a master on SQLite never
 * loads it or `pg` (about 4 MB of its heap).
 */
const postgres = () => import("./postgres/index.js");

/** The part of the config that says where the database is and what a commit is worth. */
export interface StoreConfig {
  /** The SQLite file (GAFFER_DB); not used when databaseUrl is given. */
  db: string;
  /** A PostgreSQL database (GAFFER_DATABASE_URL): every master on it is one cluster (API.md §12). */
  databaseUrl?: string | undefined;
  /** GAFFER_DB_SYNCHRONOUS (default "full"). */
  dbSynchronous?: "full" | "normal";
  /** GAFFER_STORE_THREAD (default "off"): "on", a serving master's SQLite store runs on a thread of its own. */
  storeThread?: "on" | "off";
}

export interface OpenStoreParams {
  config: StoreConfig;
  clock: Clock;
  policy: QueuePolicy;
  /**
   * What `policy` was made from, with the system's clock and Math.random: given to a serving
   * master with storeThread on, its SQLite store runs on a thread of its own, which makes its
   * policy from these (a test's clock or random cannot cross to a thread: it leaves this out).
   */
  policyParams?: PolicyParams;
  /** The store's thread stopped: every verb is refused from then on (the master exits). */
  onStoreThreadExit?: (error: Error) => void;
  /** Tests: the store's thread, once started. */
  onStoreThreadStarted?: (thread: Worker) => void;
  /**
   * A long-running master: WAL checkpoints and long reads in worker threads, group
   * commits flushed off the event loop. Short-lived tools and tests leave it off.
   */
  serving?: boolean;
  /** A background checkpoint failed; it is tried again. */
  onCheckpointError?: (message: string) => void;
  /** The reader thread stopped or a read in it failed (the read ran on the event loop instead). */
  onReaderError?: (message: string, kind: ReaderErrorKind) => void;
  /** A listener of onCommitted threw (the others still heard the change). */
  onListenerError?: (error: unknown) => void;
  /** PostgreSQL: the connection that hears other masters' commits failed; it is made again. */
  onListenError?: (message: string) => void;
  /** PostgreSQL: this master ran the cluster's sweepers and lost the lock (its connection failed). */
  onLeadLost?: (message: string) => void;
  /** PostgreSQL: how often the master that runs the sweepers checks its lock by itself (the sweep interval; at least every 5 s). */
  leadCheckMs?: number;
  /** PostgreSQL: a shared rate limit's counter failed or was late; this master counted in its memory. */
  onRateLimitFallback?: (error: unknown) => void;
}

/**
 * Opens, checks and migrates the store the config names: PostgreSQL when it names a
 * database URL, else the SQLite file (its folder made 0700 and the file 0600 if need be).
 */
export async function openStore(params: OpenStoreParams): Promise<Store> {
  const { config, serving = false, policyParams: _policyParams, onStoreThreadExit: _threadExit, onStoreThreadStarted: _threadStarted, onCheckpointError: _checkpoint, onReaderError: _reader, onListenError, onLeadLost, leadCheckMs, onRateLimitFallback, ...rest } = params;
  if (config.databaseUrl !== undefined) {
    const { openPostgresStore } = await postgres();
    return openPostgresStore({ ...rest, url: config.databaseUrl, onListenError, onLeadLost, leadCheckMs, onRateLimitFallback });
  }
  if (config.db !== ":memory:") makePrivateDir(dirname(config.db));
  if (serving && params.policyParams && config.db !== ":memory:" && config.storeThread === "on") {
    return openThreadStore({
      path: config.db,
      synchronous: config.dbSynchronous ?? "full",
      policy: params.policyParams,
      onCheckpointError: params.onCheckpointError,
      onReaderError: params.onReaderError,
      onListenerError: params.onListenerError,
      onThreadExit: params.onStoreThreadExit,
      onThreadStarted: params.onStoreThreadStarted,
    });
  }
  return openSqliteStore({
    ...rest,
    onCheckpointError: params.onCheckpointError,
    onReaderError: params.onReaderError,
    path: config.db,
    synchronous: config.dbSynchronous,
    backgroundCheckpoints: serving,
    readerThread: serving,
    syncOffThread: serving,
  });
}

export interface MigrateStoreResult {
  applied: { version: number; name: string }[];
  /** Why applying stopped; `statuses` is then empty. */
  error?: Error;
  /** Every migration's state after applying. */
  statuses: MigrationStatus[];
}

/** Apply the pending migrations (none with `statusOnly`), then answer each one's state. */
export async function migrateStore(config: StoreConfig, options: { statusOnly?: boolean } = {}): Promise<MigrateStoreResult> {
  if (config.databaseUrl !== undefined) {
    const { migratePostgres, PostgresDatabase, postgresMigrationStatus } = await postgres();
    const db = new PostgresDatabase({ url: config.databaseUrl, max: 1, queryTimeoutMs: 0 });
    try {
      if (options.statusOnly) return { applied: [], statuses: await postgresMigrationStatus(db) };
      const result = await migratePostgres(db);
      if (result.error) return { applied: result.applied, error: result.error, statuses: [] };
      return { applied: result.applied, statuses: await postgresMigrationStatus(db) };
    } finally {
      await db.close();
    }
  }
  if (config.db !== ":memory:") makePrivateDir(dirname(config.db));
  const db = new SqliteDatabase({ path: config.db });
  try {
    if (options.statusOnly) return { applied: [], statuses: migrationStatus(db) };
    const result = migrate(db);
    if (result.error) return { applied: result.applied, error: result.error, statuses: [] };
    return { applied: result.applied, statuses: migrationStatus(db) };
  } finally {
    db.close();
  }
}
