// Open a SQLite store: connect, check, migrate, and wire the aggregates together.
import { statSync } from "node:fs";
import { CorruptDatabaseError, type Clock, type QueuePolicy, type Store } from "../types.js";
import { memoryRateLimits } from "../rate-limits.js";
import { AuditWriter, SqliteAuditStore } from "./audit.js";
import { SqliteClientStore } from "./clients.js";
import { SqliteScheduleStore } from "./schedules.js";
import { SqliteSettingsStore } from "./settings.js";
import { SqliteTokenStore } from "./tokens.js";
import type { StoreContext } from "./context.js";
import { CommitSignal } from "./commit-signal.js";
import { JobTypeSettings, SqliteJobTypeStore } from "./job-types.js";
import { FairShare } from "./fair-share.js";
import { startCheckpointer, type Checkpointer, type CheckpointerParams } from "./checkpointer.js";
import { SqliteDatabase, type Synchronous } from "./database.js";
import { translateError } from "./errors.js";
import { SqliteJobStore } from "./jobs/index.js";
import { defaultMigrationsDir, migrate } from "./migrate.js";
import { createLanes } from "./lanes.js";
import { SqliteNodeStore } from "./nodes.js";
import { startReader, type ReaderErrorKind } from "./reader.js";

export { SqliteDatabase } from "./database.js";
export { migrate, migrationStatus, defaultMigrationsDir } from "./migrate.js";

/** What a SQLite store needs beside its connection. */
export interface SqliteStoreParams {
  /** The database file the connection has open (":memory:" for none). */
  path: string;
  clock: Clock;
  policy: QueuePolicy;
  migrationsDir?: string;
  /**
   * WAL checkpoints in a worker thread instead of inside commits (the master
   * turns this on; short-lived tools and tests need not pay for a thread).
   */
  backgroundCheckpoints?: boolean | Pick<CheckpointerParams, "intervalMs" | "restartFrames">;
  /** A background checkpoint failed; it is tried again. */
  onCheckpointError?: (message: string) => void;
  /**
   * Long reads (queue stats, throughput, lists no index serves) in a worker thread with a read-only
   * connection of its own, not on the event loop (the master turns this on).
   */
  readerThread?: boolean;
  /** The reader thread stopped or a read in it failed (the read ran on the event loop instead). */
  onReaderError?: (message: string, kind: ReaderErrorKind) => void;
  /** A listener of onCommitted threw (the others still heard the change). */
  onListenerError?: (error: unknown) => void;
}

export interface OpenSqliteStoreParams extends SqliteStoreParams {
  synchronous?: Synchronous;
  /** Group commits flush the WAL on the thread pool (see SqliteDatabase's syncOffThread). */
  syncOffThread?: boolean;
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** PRAGMA quick_check: a corrupt file is refused with a message that says what to do. */
function checkIntegrity(db: SqliteDatabase, path: string): void {
  const rows = db.sqlite.pragma("quick_check(20)") as { quick_check: string }[];
  const problems = rows.map((row) => row.quick_check).filter((line) => line !== "ok");
  if (problems.length > 0) {
    throw new CorruptDatabaseError(
      `the database ${path} is corrupt (PRAGMA quick_check: ${problems.slice(0, 5).join("; ")}); ` +
        `restore a backup with: gaffer restore BACKUP.db --db ${path}`,
    );
  }
}

/** Hand checkpoints to a thread; should the thread die, the connection checkpoints itself again. */
function backgroundCheckpoints(db: SqliteDatabase, params: SqliteStoreParams): Checkpointer {
  const automatic = db.sqlite.pragma("wal_autocheckpoint", { simple: true }) as number;
  db.sqlite.pragma("wal_autocheckpoint = 0");
  return startCheckpointer({
    ...(typeof params.backgroundCheckpoints === "object" ? params.backgroundCheckpoints : {}),
    path: params.path,
    synchronous: db.durability,
    onError: params.onCheckpointError,
    onLongWal: () => {
      if (!db.sqlite.open || db.sqlite.inTransaction) return;
      try {
        db.sqlite.pragma("wal_checkpoint(PASSIVE)");
      } catch (error) {
        params.onCheckpointError?.((error as Error).message);
      }
    },
    onExit: () => {
      if (db.sqlite.open) db.sqlite.pragma(`wal_autocheckpoint = ${automatic}`);
    },
  });
}

/** Thrown to roll the write probe back once it went through. */
class ProbeDone extends Error {}

/** Opens, verifies and migrates the database; throws with a clear message if it cannot. */
export function openSqliteStore(params: OpenSqliteStoreParams): Store {
  let db: SqliteDatabase;
  try {
    db = new SqliteDatabase({ path: params.path, synchronous: params.synchronous ?? "full", syncOffThread: params.syncOffThread });
  } catch (error) {
    if ((error as { code?: string }).code === "SQLITE_NOTADB") {
      throw new CorruptDatabaseError(`${params.path} is not a SQLite database (or is corrupt); restore a backup with gaffer restore`);
    }
    throw error;
  }
  return createSqliteStore(db, params);
}

/**
 * The store over a connection opened already (openSqliteStore's, or a test's that holds its
 * WAL flushes or writes beside the verbs): verifies and migrates the database, then wires the
 * aggregates together. The store owns the connection from here: it closes it, and on failure.
 */
export function createSqliteStore(db: SqliteDatabase, params: SqliteStoreParams): Store {
  try {
    if (params.path !== ":memory:") checkIntegrity(db, params.path);
    const migrated = migrate(db, params.migrationsDir ?? defaultMigrationsDir(), params.clock.now());
    if (migrated.error) throw migrated.error;
    const audit = new AuditWriter(db);
    const signal = new CommitSignal(db, params.onListenerError);
    const ctx: StoreContext = {
      db,
      clock: params.clock,
      policy: params.policy,
      audit,
      lanes: createLanes(db),
      types: new JobTypeSettings(db),
      fair: new FairShare(db),
      signal,
    };
    const reader = params.readerThread && params.path !== ":memory:" ? startReader(params.path, { onError: params.onReaderError }) : undefined;
    const jobs = new SqliteJobStore(ctx, reader);
    const checkpointer = params.backgroundCheckpoints && params.path !== ":memory:" ? backgroundCheckpoints(db, params) : undefined;
    return {
      dialect: "sqlite",
      onCommitted: (listener) => signal.subscribe(listener),
      durable: () => db.durable(),
      // One master per SQLite file: it runs everything.
      leads: async () => true,
      async describe() {
        const pragma = (name: string) => db.sqlite.pragma(name, { simple: true }) as unknown;
        return {
          dialect: "sqlite",
          path: params.path,
          size_bytes: fileSize(params.path),
          wal_bytes: fileSize(`${params.path}-wal`),
          page_size: pragma("page_size"),
          page_count: pragma("page_count"),
          freelist_count: pragma("freelist_count"),
          journal_mode: pragma("journal_mode"),
          // What an acknowledged commit is worth; with syncOffThread the connection itself says NORMAL.
          synchronous: db.durability,
          commit_flush: db.flushesOffThread ? "thread pool" : "in COMMIT",
          sqlite_version: (db.sqlite.prepare("SELECT sqlite_version() AS v").get() as { v: string }).v,
          // On a thread of its own (store/thread/), HTTP on the event loop: the thread's client says true.
          store_thread: false,
        };
      },
      async ping() {},
      async probeWrite() {
        // A write that needs new pages (64 KiB), undone at once: updating a row in place
        // would succeed on a full disk and prove nothing.
        const probe = db.sqlite.transaction(() => {
          db.sqlite
            .prepare("INSERT INTO settings (key, value, updated_at) VALUES ('write_probe', hex(randomblob(32768)), ?)")
            .run(params.clock.now().toISOString());
          throw new ProbeDone();
        });
        try {
          probe.immediate();
        } catch (error) {
          if (!(error instanceof ProbeDone)) throw translateError(error);
        }
      },
      jobs,
      schedules: new SqliteScheduleStore(ctx, jobs),
      types: new SqliteJobTypeStore(ctx, reader),
      nodes: new SqliteNodeStore(ctx),
      audit: new SqliteAuditStore(ctx, reader),
      settings: new SqliteSettingsStore(ctx),
      clients: new SqliteClientStore(ctx),
      tokens: new SqliteTokenStore(ctx),
      // One master: its limits count in its memory.
      rateLimits: memoryRateLimits,
      close: async () => {
        await reader?.close();
        await checkpointer?.stop();
        db.close();
      },
    };
  } catch (error) {
    db.close();
    throw error;
  }
}
