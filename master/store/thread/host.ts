// The store's thread: the SQLite store opened here, its verbs run for the master's event
// loop one message at a time, in the order they came (see client.ts).
import { parentPort, workerData } from "node:worker_threads";
import { createQueuePolicy } from "../../queue/policy.js";
import { openSqliteStore } from "../sqlite/index.js";
import { systemClock, type Store } from "../types.js";
import { isVerb, sendError, type Call, type HostData, type HostMessage } from "./wire.js";

const port = parentPort;
if (!port) throw new Error("host.js runs as the store's worker thread (see client.ts)");
const send = (message: HostMessage) => port.postMessage(message);
const data = workerData as HostData;

let store: Store | undefined;
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
  // Sent at COMMIT, before the verb's answer (which waits for nothing else): the event loop's
  // listeners hear a change before its caller is answered, as with the store in process.
  store.onCommitted((change) => send({ kind: "committed", change }));
  send({ kind: "opened" });
} catch (error) {
  send({ kind: "open_failed", error: sendError(error) });
  port.close();
}

/** Runs one call: a verb the store's interface names, on the store or one of its aggregates. */
async function run(call: Call): Promise<unknown> {
  if (!store || !isVerb(call.target, call.method)) throw new Error(`the store has no verb ${call.target}.${call.method}`);
  const owner = (call.target === "" ? store : store[call.target as keyof Store]) as unknown as Record<string, (...args: unknown[]) => unknown>;
  return owner[call.method]?.(...call.args);
}

port.on("message", (call: Call) => {
  // A verb that throws at once, and an answer that cannot be sent, are refusals of that call
  // alone: the thread goes on serving the others.
  void run(call)
    .then((value) => {
      try {
        send({ kind: "answer", id: call.id, value });
      } catch (error) {
        send({ kind: "refusal", id: call.id, error: sendError(error) });
      }
      if (call.target === "" && call.method === "close") port.close();
    })
    .catch((error: unknown) => send({ kind: "refusal", id: call.id, error: sendError(error) }));
});
