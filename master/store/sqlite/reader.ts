// Long reads in a worker thread, on a read-only connection of its own. Queue stats
// count every job by status: at 200,000 jobs that took 65 ms, so at a million a
// third of a second in which the master answered nothing, every dashboard poll
// (5 s) and every metrics scrape; the throughput chart and the lists no index
// serves are as long. In WAL mode this connection reads beside the master's writes;
// the statements of one read share a snapshot.
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { CompiledQuery } from "kysely";
import type { SqliteDatabase } from "./database.js";
import { toBindable, type Compiled } from "./statements.js";
import { ThreadCalls } from "../thread-calls.js";

export interface ThreadReader {
  /** The rows of each statement, read in one transaction on the thread's connection. */
  read(statements: Compiled[]): Promise<Record<string, unknown>[][]>;
  /** The running thread's id; undefined while there is none (it stopped and has not restarted). */
  readonly threadId: number | undefined;
  close(): Promise<void>;
}

/** What went wrong: the thread stopped, or one read in it failed while it runs on. */
export type ReaderErrorKind = "stopped" | "read failed";

export interface ReaderOptions {
  /**
   * The thread stopped (out of its heap, say), or a read in it failed: either way that
   * read, and every read until the thread restarts, runs on the master's connection.
   */
  onError?: (message: string, kind: ReaderErrorKind) => void;
  /** How long after the thread stopped the next read starts a new one (default a minute). */
  restartAfterMs?: number;
  /** Told of each thread it starts (to watch its resources; tests stop it as a failure would). */
  onThreadStarted?: (thread: Worker) => void;
}

// The thread's code (CommonJS, evaluated). Each message: { id, statements }; each answer
// { id, rows } or { id, error }; "stop" ends it.
const THREAD = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.path, { readonly: true, fileMustExist: true, timeout: 1000 });
db.pragma("cache_size = -1024");
const prepared = new Map();
function statement(sql) {
  let stmt = prepared.get(sql);
  if (!stmt) {
    stmt = db.prepare(sql);
    prepared.set(sql, stmt);
  }
  return stmt;
}
const read = db.transaction((statements) => statements.map((s) => statement(s.sql).all(s.parameters)));
parentPort.on("message", (message) => {
  if (message === "stop") {
    db.close();
    parentPort.close();
    return;
  }
  try {
    parentPort.postMessage({ id: message.id, rows: read(message.statements) });
  } catch (error) {
    parentPort.postMessage({ id: message.id, error: String((error && error.message) || error) });
  }
});
`;

const driver = createRequire(import.meta.url).resolve("better-sqlite3");

/**
 * The rows of each statement, read in the reader thread when there is one (off the event
 * loop, one snapshot); without one, or when its read fails, on the master's connection.
 */
export async function readRows(db: SqliteDatabase, reader: ThreadReader | undefined, statements: Compiled[]): Promise<Record<string, unknown>[][]> {
  if (reader) {
    try {
      // Bound as on the master's connection (a boolean as 1 or 0), which the thread cannot do.
      return await reader.read(statements.map((statement) => ({ sql: statement.sql, parameters: statement.parameters.map((value) => toBindable(value)) })));
    } catch {
      // The thread is gone (or its read failed): read here rather than fail a dashboard.
    }
  }
  return statements.map((statement) => db.allCompiled<Record<string, unknown>>(statement));
}

/** The rows of one compiled query, read as readRows() reads. */
export async function readQuery<Row>(db: SqliteDatabase, reader: ThreadReader | undefined, query: CompiledQuery<Row>): Promise<Row[]> {
  const [rows = []] = await readRows(db, reader, [query]);
  return rows as Row[];
}

/** A statement failed in the thread (the thread itself still runs). */
class ReadFailed extends Error {}

interface Thread {
  read(statements: Compiled[]): Promise<Record<string, unknown>[][]>;
  stop(): Promise<void>;
  readonly gone: Error | undefined;
  readonly threadId: number;
}

/** One thread and its connection; `onGone` once, when it stops for any reason. */
function startThread(path: string, onGone: (error: Error) => void, onStarted?: (thread: Worker) => void): Thread {
  // A small young generation and page cache: a scan reads each page once (the OS keeps the
  // file cached), and the answers are a few rows; the master's memory budget is for its own
  // work. No cap on the old generation: a worker that reaches one can abort the whole
  // process instead of only itself (nodejs/node#47224; an answer of 100 MB did so here).
  const thread = new Worker(THREAD, { eval: true, workerData: { driver, path }, resourceLimits: { maxYoungGenerationSizeMb: 4 } });
  onStarted?.(thread);
  const calls = new ThreadCalls<Record<string, unknown>[][]>(thread);
  const fail = (error: Error) => {
    if (calls.fail(error)) onGone(error);
  };
  const exited = new Promise<void>((resolve) => {
    thread.once("exit", (code) => {
      fail(new Error(`the reader thread exited (code ${code})`));
      resolve();
    });
  });
  thread.on("error", (error) => fail(error));
  thread.on("message", (message: { id: number; rows?: Record<string, unknown>[][]; error?: string }) => {
    const waiting = calls.settle(message.id);
    if (!waiting) return;
    if (message.error !== undefined) waiting.reject(new ReadFailed(message.error));
    else waiting.resolve(message.rows ?? []);
  });
  // Idle, the thread must not keep a master that is done from exiting; a read keeps it.
  calls.release();
  return {
    threadId: thread.threadId,
    get gone() {
      return calls.gone;
    },
    read(statements) {
      return calls.call((id) => thread.postMessage({ id, statements }));
    },
    async stop() {
      if (calls.gone) return;
      thread.ref();
      thread.postMessage("stop");
      await exited;
    },
  };
}

/**
 * The reader thread, started again on the first read a minute (restartAfterMs) after it
 * stopped; every stop and every failed read is told to onError.
 */
export function startReader(path: string, options: ReaderOptions = {}): ThreadReader {
  const restartAfterMs = options.restartAfterMs ?? 60_000;
  let closed = false;
  let stoppedAt = 0;
  const start = () =>
    startThread(path, (error) => {
      stoppedAt = Date.now();
      if (!closed) options.onError?.(`the reader thread stopped (${error.message}); long reads run on the event loop until it starts again`, "stopped");
    }, options.onThreadStarted);
  let thread = start();
  return {
    get threadId() {
      return thread.gone ? undefined : thread.threadId;
    },
    async read(statements) {
      if (closed) throw new Error("the reader thread is closed");
      if (thread.gone && Date.now() - stoppedAt >= restartAfterMs) thread = start();
      try {
        return await thread.read(statements);
      } catch (error) {
        if (error instanceof ReadFailed) options.onError?.(`a read in the reader thread failed (${error.message}); read on the event loop instead`, "read failed");
        throw error;
      }
    },
    close() {
      closed = true;
      return thread.stop();
    },
  };
}
