// The store's thread: the SQLite store opened here, its verbs run for the master's event
// loop one message at a time, in the order they came (see client.ts).
import { parentPort, workerData } from "node:worker_threads";
import { createQueuePolicy } from "../../queue/policy.js";
import { openSqliteStore } from "../sqlite/index.js";
import { systemClock, type Store } from "../types.js";
import { AGGREGATES, sendError, type Aggregate, type Call, type HostData, type HostMessage } from "./wire.js";

const port = parentPort;
if (!port) throw new Error("host.js runs as the store's worker thread (see client.ts)");
const send = (message: HostMessage) => port.postMessage(message);
const data = workerData as HostData;

/** The methods of an aggregate, its classes' included: what the event loop's side may call. */
function verbsOf(aggregate: object): string[] {
  const names = new Set<string>();
  for (let at: object | null = aggregate; at && at !== Object.prototype; at = Object.getPrototypeOf(at) as object | null) {
    for (const name of Object.getOwnPropertyNames(at)) {
      if (name !== "constructor" && typeof (aggregate as Record<string, unknown>)[name] === "function") names.add(name);
    }
  }
  return [...names];
}

let store: Store;
try {
  store = openSqliteStore({
    path: data.path,
    synchronous: data.synchronous,
    clock: systemClock,
    policy: createQueuePolicy(data.policy),
    backgroundCheckpoints: true,
    readerThread: true,
    syncOffThread: true,
    onCheckpointError: (message) => send({ kind: "checkpoint_error", message }),
    onReaderError: (message, readerKind) => send({ kind: "reader_error", message, readerKind }),
    onListenerError: (error) => send({ kind: "listener_error", message: (error as Error).message }),
  });
  store.onCommitted((change) => send({ kind: "committed", change }));
  send({ kind: "opened", verbs: Object.fromEntries(AGGREGATES.map((name) => [name, verbsOf(store[name])])) as Record<Aggregate, string[]> });
} catch (error) {
  send({ kind: "open_failed", error: sendError(error) });
  port.close();
}

/** The verbs the thread answers: the store's own and its aggregates'. */
function verb(target: string, method: string): ((...args: unknown[]) => Promise<unknown>) | undefined {
  const owner = (target === "" ? store : store[target as keyof Store]) as unknown as Record<string, unknown> | undefined;
  const fn = owner?.[method];
  return typeof fn === "function" ? (fn as (...args: unknown[]) => Promise<unknown>).bind(owner) : undefined;
}

port.on("message", (call: Call) => {
  const fn = verb(call.target, call.method);
  if (!fn) {
    send({ kind: "refusal", id: call.id, error: { name: "Error", message: `the store has no verb ${call.target}.${call.method}` } });
    return;
  }
  fn(...call.args).then(
    (value) => {
      send({ kind: "answer", id: call.id, value });
      if (call.target === "" && call.method === "close") port.close();
    },
    (error: unknown) => send({ kind: "refusal", id: call.id, error: sendError(error) }),
  );
});
