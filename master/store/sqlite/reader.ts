// Long reads in a worker thread, on a read-only connection of its own. Queue stats
// count every job by status: at 200,000 jobs that took 65 ms, so at a million a
// third of a second in which the master answered nothing, every dashboard poll
// (5 s) and every metrics scrape. In WAL mode this connection reads beside the
// master's writes; the statements of one read share a snapshot.
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { SqliteDatabase } from "./database.js";

export interface Statement {
  sql: string;
  parameters: readonly unknown[];
}

export interface ThreadReader {
  /** The rows of each statement, read in one transaction on the thread's connection. */
  read(statements: Statement[]): Promise<Record<string, unknown>[][]>;
  close(): Promise<void>;
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
export async function readRows(db: SqliteDatabase, reader: ThreadReader | undefined, statements: Statement[]): Promise<Record<string, unknown>[][]> {
  if (reader) {
    try {
      return await reader.read(statements);
    } catch {
      // The thread is gone (or its read failed): read here rather than fail a dashboard.
    }
  }
  return statements.map((statement) => db.allCompiled<Record<string, unknown>>(statement));
}

interface Pending {
  resolve: (rows: Record<string, unknown>[][]) => void;
  reject: (error: Error) => void;
}

export function startReader(path: string): ThreadReader {
  // A small heap and page cache: a scan reads each page once (the OS keeps the file cached),
  // and the answers are a few rows; the master's memory budget is for its own work.
  const thread = new Worker(THREAD, { eval: true, workerData: { driver, path }, resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 } });
  const pending = new Map<number, Pending>();
  let nextId = 0;
  let gone: Error | undefined;
  const fail = (error: Error) => {
    gone ??= error;
    for (const waiting of pending.values()) waiting.reject(error);
    pending.clear();
  };
  const exited = new Promise<void>((resolve) => {
    thread.once("exit", () => {
      fail(new Error("the reader thread exited"));
      resolve();
    });
  });
  thread.on("error", (error) => fail(error));
  thread.on("message", (message: { id: number; rows?: Record<string, unknown>[][]; error?: string }) => {
    const waiting = pending.get(message.id);
    if (!waiting) return;
    pending.delete(message.id);
    if (message.error !== undefined) waiting.reject(new Error(message.error));
    else waiting.resolve(message.rows ?? []);
  });
  // Idle, the thread must not keep a master that is done from exiting; a read keeps it.
  thread.unref();
  return {
    read(statements) {
      if (gone) return Promise.reject(gone);
      const id = nextId++;
      if (pending.size === 0) thread.ref();
      return new Promise<Record<string, unknown>[][]>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        thread.postMessage({ id, statements });
      }).finally(() => {
        if (pending.size === 0 && !gone) thread.unref();
      });
    },
    async close() {
      if (gone) return;
      thread.ref();
      thread.postMessage("stop");
      await exited;
    },
  };
}
