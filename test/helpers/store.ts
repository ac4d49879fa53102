// Every store test runs against each dialect in this list (PostgreSQL joins it later).
import { join } from "node:path";
import { createQueuePolicy } from "../../master/queue/policy.js";
import type { OpenStoreParams } from "../../master/store/open.js";
import { SqliteDatabase } from "../../master/store/sqlite/database.js";
import { createSqliteStore } from "../../master/store/sqlite/index.js";
import {
  PRIORITY_WEIGHTS,
  type PriorityName,
  type QueuePolicy,
  type Store,
  type SubmitJobParams,
} from "../../master/store/types.js";
import { FakeClock } from "./clock.js";
import { tempDir } from "./temp.js";

export interface TestStore {
  store: Store;
  clock: FakeClock;
  policy: QueuePolicy;
  path: string;
}

export interface TestStoreOptions {
  retryDelayS?: number;
  retryMaxDelayS?: number;
  stallGraceS?: number;
  agingS?: number;
  nodeTimeoutS?: number;
  /** Flush group commits off the event loop with this fdatasync (see heldFlushes). */
  fdatasync?: (fd: number) => Promise<void>;
  /** Long reads in the store's reader thread, as the master does. */
  readerThread?: boolean;
}

export interface Dialect {
  name: string;
  open(options?: TestStoreOptions): TestStore;
}

/** A SQLite test store, and the connection it runs on (for tests that write beside its verbs). */
export interface SqliteTestStore extends TestStore {
  database: SqliteDatabase;
}

/** A store over a SQLite connection the test opens itself: with its own WAL flush, and at hand. */
export function openSqliteTestStore(options: TestStoreOptions = {}): SqliteTestStore {
  const clock = new FakeClock();
  // random() = 0.5 puts the jitter at exactly 0, so delays are the nominal ones.
  const policy = createQueuePolicy(
    {
      retryDelayS: options.retryDelayS ?? 5,
      retryMaxDelayS: options.retryMaxDelayS ?? 300,
      stallGraceS: options.stallGraceS ?? 300,
      agingS: options.agingS ?? 300,
      nodeTimeoutS: options.nodeTimeoutS ?? 60,
    },
    () => 0.5,
  );
  const path = join(tempDir(), "gaffer.db");
  const { fdatasync, readerThread } = options;
  const database = new SqliteDatabase({ path, synchronous: "full", syncOffThread: fdatasync !== undefined, fdatasync });
  return { store: createSqliteStore(database, { path, clock, policy, readerThread }), database, clock, policy, path };
}

export const dialects: Dialect[] = [{ name: "sqlite", open: openSqliteTestStore }];

/**
 * Opens the store a master's config names as the master would (`serving`: checkpoints and
 * long reads in threads, flushes off the event loop), over a SQLite connection the test
 * opens: flushed with `fdatasync` when given, and kept in `database` once opened.
 */
export function sqliteStoreOpener(fdatasync?: (fd: number) => Promise<void>) {
  const opener = {
    database: undefined as SqliteDatabase | undefined,
    open(params: OpenStoreParams): Store {
      const { config, serving = false, ...rest } = params;
      const database = new SqliteDatabase({ path: config.db, synchronous: config.dbSynchronous ?? "full", syncOffThread: serving, fdatasync });
      opener.database = database;
      return createSqliteStore(database, { ...rest, path: config.db, backgroundCheckpoints: serving, readerThread: serving });
    },
  };
  return opener;
}

/** A job as a client would submit it, with the config's defaults. */
export function jobParams(overrides: Partial<SubmitJobParams> = {}): SubmitJobParams {
  return {
    clientId: "client-a",
    type: "echo",
    payload: {},
    priority: "medium",
    maxRetries: 3,
    timeoutS: 60,
    runAt: null,
    requires: [],
    dependsOn: [],
    idempotencyKey: null,
    tags: {},
    ...overrides,
  };
}

export async function submit(store: Store, overrides: Partial<SubmitJobParams> = {}) {
  const outcome = await store.jobs.submit([jobParams(overrides)]);
  if (!outcome.ok) throw new Error(`submit failed: ${outcome.reason}`);
  const item = outcome.items[0];
  if (!item) throw new Error("submit answered nothing");
  return item.job;
}

export async function register(
  store: Store,
  name = "node-1",
  labels: string[] = [],
  capacity = 10,
  clientId = "worker-a",
  types: string[] | null = null,
) {
  const { node } = await store.nodes.register({ clientId, name, labels, capacity, types, version: "test", hardware: {} });
  return node;
}

export async function claim(store: Store, nodeId: string, max = 10) {
  const outcome = await store.jobs.claim({ nodeId, max });
  if (!outcome.ok) throw new Error(`claim failed: ${outcome.reason}`);
  return outcome.items;
}

export function weight(name: PriorityName): number {
  return PRIORITY_WEIGHTS[name];
}
