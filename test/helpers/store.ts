// Every store test runs against each dialect in this list: SQLite, and PostgreSQL when a server answers.
import { join } from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { createQueuePolicy } from "../../master/queue/policy.js";
import { PG_TYPES } from "../../master/store/postgres/database.js";
import { openPostgresStore } from "../../master/store/postgres/index.js";
import type { OpenStoreParams } from "../../master/store/open.js";
import { SqliteDatabase } from "../../master/store/sqlite/database.js";
import { createSqliteStore } from "../../master/store/sqlite/index.js";
import {
  PRIORITY_WEIGHTS,
  submittedPayload,
  type PriorityName,
  type QueuePolicy,
  type Store,
  type SubmitJobParams,
} from "../../master/store/types.js";
import { afterEach, beforeEach } from "vitest";
import { FakeClock } from "./clock.js";
import { releaseSchema, takeSchema, useSchema } from "./postgres-schemas.js";
import { removeTempDirs, tempDir } from "./temp.js";

export interface TestStore {
  store: Store;
  clock: FakeClock;
  policy: QueuePolicy;
  /** SQLite: the database file. */
  path: string;
  /** Raw SQL against the store's database, for checks of what it wrote (SQL both dialects read alike). */
  query(text: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  /**
   * Another store on the same database (a restart, or a second master); PostgreSQL: `url` reaches
   * the server another way (a proxy), `onRateLimitFallback` hears its limits fall back to memory.
   */
  reopen(options?: { url?: string; onRateLimitFallback?: (error: unknown) => void }): Promise<Store>;
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
  name: "sqlite" | "postgres";
  open(options?: TestStoreOptions): Promise<TestStore>;
}

/** A store of `dialect` for each test, given to `use` before it and closed after it (with the test's temporary folders). */
export function storePerTest(dialect: Dialect, use: (t: TestStore) => void, options?: TestStoreOptions): void {
  let current: TestStore | undefined;
  beforeEach(async () => {
    current = await dialect.open(options);
    use(current);
  });
  afterEach(async () => {
    await current?.store.close();
    current = undefined;
    removeTempDirs();
  });
}

function testPolicy(options: TestStoreOptions): QueuePolicy {
  // random() = 0.5 puts the jitter at exactly 0, so delays are the nominal ones.
  return createQueuePolicy(
    {
      retryDelayS: options.retryDelayS ?? 5,
      retryMaxDelayS: options.retryMaxDelayS ?? 300,
      stallGraceS: options.stallGraceS ?? 300,
      agingS: options.agingS ?? 300,
      nodeTimeoutS: options.nodeTimeoutS ?? 60,
    },
    () => 0.5,
  );
}

/** A SQLite test store, and the connection it runs on (for tests that write beside its verbs). */
export interface SqliteTestStore extends TestStore {
  database: SqliteDatabase;
}

/** A store over a SQLite connection the test opens itself: with its own WAL flush, and at hand. */
export function openSqliteTestStore(options: TestStoreOptions = {}): SqliteTestStore {
  const clock = new FakeClock();
  const policy = testPolicy(options);
  const path = join(tempDir(), "gaffer.db");
  const { fdatasync, readerThread } = options;
  const database = new SqliteDatabase({ path, synchronous: "full", syncOffThread: fdatasync !== undefined, fdatasync });
  return {
    store: createSqliteStore(database, { path, clock, policy, readerThread }),
    database,
    clock,
    policy,
    path,
    async query(text, params = []) {
      // As an operator's sqlite3 beside the master: a write waits its turn (busy timeout).
      const db = new Database(path, { timeout: 5000 });
      try {
        const statement = db.prepare(text);
        if (statement.reader) return statement.all(...params) as Record<string, unknown>[];
        statement.run(...params);
        return [];
      } finally {
        db.close();
      }
    },
    reopen: async () => createSqliteStore(new SqliteDatabase({ path, synchronous: "full" }), { path, clock, policy }),
  };
}

const sqlite: Dialect = { name: "sqlite", open: async (options) => openSqliteTestStore(options) };

/** The PostgreSQL the tests use: GAFFER_TEST_DATABASE_URL, else the local server as Debian installs it. */
export const TEST_DATABASE_URL = process.env.GAFFER_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

async function postgresAnswers(): Promise<boolean> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL, connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    await client.query("SELECT 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

const postgres: Dialect = {
  name: "postgres",
  async open(options = {}) {
    const clock = new FakeClock();
    const policy = testPolicy(options);
    // Each test store a schema of its own: emptied from the pool of this test file's, or new (postgres-schemas.ts).
    const schema = await takeSchema(TEST_DATABASE_URL);
    const generation = schema.generation;
    const open = async (url = TEST_DATABASE_URL, onRateLimitFallback?: (error: unknown) => void) => {
      const store = await openPostgresStore({ url, schema: schema.name, clock, policy, poolSize: 4, onRateLimitFallback });
      const close = store.close.bind(store);
      let closed = false;
      store.close = async () => {
        await close();
        if (!closed) releaseSchema(schema);
        closed = true;
      };
      return store;
    };
    // A schema whose store did not open stays out of the pool.
    const store = await open();
    const admin = new pg.Pool({ connectionString: TEST_DATABASE_URL, max: 1, options: `-c search_path=${schema.name} -c timezone=UTC`, types: PG_TYPES });
    const close = store.close.bind(store);
    store.close = async () => {
      await admin.end().catch(() => undefined);
      await close();
    };
    return {
      store,
      clock,
      policy,
      path: "",
      async query(text, params = []) {
        // The SQLite-style ? placeholders become $1, $2, …
        let n = 0;
        const result = await admin.query(text.replace(/\?/g, () => `$${++n}`), params);
        return result.rows as Record<string, unknown>[];
      },
      reopen: async (reopening = {}) => {
        useSchema(schema, generation);
        try {
          return await open(reopening.url, reopening.onRateLimitFallback);
        } catch (error) {
          releaseSchema(schema);
          throw error;
        }
      },
    };
  },
};

/** Every store test runs against each dialect here: PostgreSQL when a server answers (required in CI). */
export const dialects: Dialect[] = [sqlite];
if (await postgresAnswers()) dialects.push(postgres);
else {
  const message = `no PostgreSQL at ${TEST_DATABASE_URL} (set GAFFER_TEST_DATABASE_URL, or install and start Debian's postgresql)`;
  if (process.env.GAFFER_REQUIRE_TOOLS === "1") throw new Error(`${message} (GAFFER_REQUIRE_TOOLS=1 makes it required)`);
  process.stderr.write(`\n*** SKIPPED the store tests on PostgreSQL: ${message} ***\n\n`);
}

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

/** A count of the store's commits that said jobs may be claimable: what wakes the dispatcher. */
export function claimableWakes(store: Store): { count: number } {
  const wakes = { count: 0 };
  store.onCommitted((change) => {
    if (change.claimable) wakes.count += 1;
  });
  return wakes;
}

/** A job as a client would submit it, with the config's defaults (the payload's JSON made from `payload` unless given). */
export function jobParams(overrides: Partial<SubmitJobParams> = {}): SubmitJobParams {
  return {
    clientId: "client-a",
    type: "echo",
    ...submittedPayload("payload" in overrides ? overrides.payload : {}),
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
