// The SQLite store on a thread of its own: the master's event loop keeps HTTP (parsing,
// validation, encoding, auth) and each verb goes to the thread that owns the database as one
// message, answered in the order it came. A drained job costs the one thread of a master
// about 40 µs, two thirds of it SQLite: split, the two halves run on two cores. Measured on
// 2 cores (bench/README, "17:15–18:25"), the crossings cost about as much as the split
// gains there, and the store's thread is the bottleneck: GAFFER_STORE_THREAD is off by default.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { PolicyParams } from "../../queue/policy.js";
import type { Synchronous } from "../sqlite/database.js";
import type { ReaderErrorKind } from "../sqlite/reader.js";
import { memoryRateLimits } from "../rate-limits.js";
import { CommitListeners } from "../commit-listeners.js";
import { ThreadCalls } from "../thread-calls.js";
import { StorageUnreachableError, type Store, type StoreDescription } from "../types.js";
import { AGGREGATES, receiveError, VERBS, type Aggregate, type Call, type HostData, type HostMessage } from "./wire.js";

/**
 * The thread's code: beside this file once built. Run from source (vitest), the thread still
 * runs the build's host.js (Node 20 cannot start a thread from TypeScript): `npm test` builds first.
 */
function hostFile(): string {
  const beside = fileURLToPath(new URL("./host.js", import.meta.url));
  if (existsSync(beside)) return beside;
  const built = fileURLToPath(new URL("../../../dist/master/store/thread/host.js", import.meta.url));
  if (!existsSync(built)) throw new Error(`the store's thread runs ${built}, which is not built yet: npm run build`);
  return built;
}

export interface ThreadStoreParams {
  path: string;
  synchronous: Synchronous;
  policy: PolicyParams;
  onCheckpointError?: ((message: string) => void) | undefined;
  onReaderError?: ((message: string, kind: ReaderErrorKind) => void) | undefined;
  onListenerError?: ((error: unknown) => void) | undefined;
  /** The thread stopped while the store was open (every verb from then on is refused). */
  onThreadExit?: ((error: Error) => void) | undefined;
  /** Tests: the thread, once started. */
  onThreadStarted?: ((thread: Worker) => void) | undefined;
}

/** Opens the store in its thread; resolves once it is open, checked and migrated (or rejects as openSqliteStore would throw). */
export function openThreadStore(params: ThreadStoreParams): Promise<Store> {
  const { retryDelayS, retryMaxDelayS, stallGraceS, agingS, nodeTimeoutS } = params.policy;
  const data: HostData = { path: params.path, synchronous: params.synchronous, policy: { retryDelayS, retryMaxDelayS, stallGraceS, agingS, nodeTimeoutS } };
  // Held while it opens and while a call waits: an idle store never keeps the process from exiting.
  const thread = new Worker(hostFile(), { workerData: data });
  params.onThreadStarted?.(thread);
  const calls = new ThreadCalls<unknown>(thread);
  const listeners = new CommitListeners(params.onListenerError);
  let closing = false;
  let opened = false;

  const call = (target: string, method: string, args: unknown[]): Promise<unknown> =>
    calls.call((id) => thread.postMessage({ id, target, method, args } satisfies Call));
  /** An aggregate whose every verb is a message to the thread. */
  const aggregate = (target: Aggregate): unknown => Object.fromEntries(VERBS[target].map((verb) => [verb, (...args: unknown[]) => call(target, verb, args)]));

  return new Promise<Store>((resolve, reject) => {
    const store: Store = {
      dialect: "sqlite" as const,
      onCommitted: (listener) => listeners.subscribe(listener),
      durable: () => call("", "durable", []) as Promise<void>,
      describe: async () => ({ ...((await call("", "describe", [])) as StoreDescription), store_thread: true }),
      probeWrite: () => call("", "probeWrite", []) as Promise<void>,
      // Through the thread: a thread that no longer answers fails /ready as a stuck event loop would.
      ping: () => call("", "ping", []) as Promise<void>,
      leads: async () => true,
      rateLimits: memoryRateLimits,
      async close() {
        if (calls.gone) return;
        closing = true;
        try {
          await call("", "close", []);
        } finally {
          await thread.terminate();
        }
      },
      ...(Object.fromEntries(AGGREGATES.map((name) => [name, aggregate(name)])) as Pick<Store, Aggregate>),
    };

    thread.on("message", (message: HostMessage) => {
      switch (message.kind) {
        case "answer":
        case "refusal": {
          const waiter = calls.settle(message.id);
          if (message.kind === "answer") waiter?.resolve(message.value);
          else waiter?.reject(receiveError(message.error));
          return;
        }
        case "committed":
          return listeners.tell(message.change);
        case "opened":
          opened = true;
          calls.release();
          return resolve(store);
        case "open_failed":
          reject(receiveError(message.error));
          void thread.terminate();
          return;
        case "checkpoint_error":
          return params.onCheckpointError?.(message.message);
        case "reader_error":
          return params.onReaderError?.(message.message, message.readerKind);
        case "listener_error":
          return params.onListenerError?.(new Error(message.message));
      }
    });
    const stop = (error: Error) => {
      if (!calls.fail(error)) return;
      reject(error);
      if (opened && !closing) params.onThreadExit?.(error);
    };
    // Refused as a database out of reach: a 503 for the requests in flight while the master stops.
    thread.on("error", (error) => stop(new StorageUnreachableError(`the store's thread failed: ${error.message}`, "STORE_THREAD_FAILED")));
    // An answer this side cannot read (nested too deep): its caller would wait for ever.
    thread.on("messageerror", (error) => {
      stop(new StorageUnreachableError(`an answer of the store's thread could not be read: ${error.message}`, "STORE_THREAD_FAILED"));
      void thread.terminate();
    });
    thread.on("exit", (code) => stop(new StorageUnreachableError(`the store's thread stopped (exit code ${code})`, "STORE_THREAD_EXIT")));
  });
}
