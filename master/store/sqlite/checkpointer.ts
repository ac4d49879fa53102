// WAL checkpoints in a worker thread.
//
// With SQLite's automatic checkpoints, the commit that pushes the WAL past 1,000
// pages copies them back into the database file and fsyncs it, on the event
// loop: about a quarter of the master's time in the store under load. Here a
// second connection in its own thread runs PASSIVE checkpoints instead (they
// never block the writer, and the writer restarts the WAL once one caught up),
// so a commit only appends to the WAL.
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { Synchronous } from "./database.js";

export interface CheckpointerParams {
  path: string;
  synchronous: Synchronous;
  /** Pause between checkpoints while the WAL is small. */
  intervalMs?: number;
  /** From this many pages in the WAL, the writer is asked to start it over (onLongWal). */
  restartFrames?: number;
  /** A checkpoint failed (a full disk, say); the thread tries again later. */
  onError?: (message: string) => void;
  /**
   * The WAL is long and the thread has caught up: the writer's connection should
   * run a PASSIVE checkpoint itself (a few pages) so that its next transaction
   * starts the WAL over.
   */
  onLongWal?: () => void;
  /** The thread is gone for good: the caller turns automatic checkpoints back on. */
  onExit?: () => void;
}

export interface Checkpointer {
  stop(): Promise<void>;
}

// The thread's code (CommonJS, evaluated): a loop of PASSIVE checkpoints, at once again
// while each finds 1,000 pages or more, else after a pause; "stop" ends it. The WAL
// is started over from about 16 MB (4,096 pages of 4 KiB).
const THREAD = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.path, { timeout: 1000 });
db.pragma("synchronous = " + workerData.synchronous);
db.pragma("cache_size = -2048");
let timer;
let stopped = false;
function checkpoint(mode) {
  const [status] = db.pragma("wal_checkpoint(" + mode + ")");
  return status || { busy: 0, log: 0, checkpointed: 0 };
}
function next(log) {
  if (!stopped) timer = log >= 1000 ? setImmediate(round) : setTimeout(round, workerData.intervalMs);
}
function round() {
  let log = 0;
  try {
    const status = checkpoint("PASSIVE");
    log = status.log - status.checkpointed;
    // Under steady writes the writer never finds the WAL fully copied when it begins a
    // transaction, so it never starts the file over. Once the WAL is long and this
    // thread has caught up, the writer's own connection copies the last few pages
    // between two of its transactions (onLongWal) and its next one starts over. This
    // thread waits for "resume" meanwhile: two checkpoints at once, one would fail.
    if (status.log >= workerData.restartFrames && log < 1000) return parentPort.postMessage({ long: true });
  } catch (error) {
    parentPort.postMessage({ error: String(error && error.message || error) });
  }
  next(log);
}
parentPort.on("message", (message) => {
  if (message === "resume") return next(0);
  if (message !== "stop") return;
  stopped = true;
  clearTimeout(timer);
  clearImmediate(timer);
  db.close();
  parentPort.close();
});
round();
`;

const driver = createRequire(import.meta.url).resolve("better-sqlite3");

export function startCheckpointer(params: CheckpointerParams): Checkpointer {
  const thread = new Worker(THREAD, {
    eval: true,
    workerData: {
      driver,
      path: params.path,
      synchronous: params.synchronous === "normal" ? "NORMAL" : "FULL",
      intervalMs: params.intervalMs ?? 100,
      restartFrames: params.restartFrames ?? 4096,
    },
  });
  let stopping = false;
  const exited = new Promise<void>((resolve) => {
    thread.once("exit", () => {
      if (!stopping) params.onExit?.();
      resolve();
    });
  });
  thread.on("message", (message: { error?: string; long?: boolean }) => {
    if (message.error) params.onError?.(message.error);
    if (message.long) {
      params.onLongWal?.();
      thread.postMessage("resume");
    }
  });
  thread.on("error", (error) => params.onError?.(error.message));
  // The thread must not keep a master that is done from exiting.
  thread.unref();
  return {
    async stop() {
      stopping = true;
      // Referenced again: a process with nothing else to do must still wait for the exit.
      thread.ref();
      thread.postMessage("stop");
      await exited;
    },
  };
}
